/* SPDX-License-Identifier: MIT */
/* dist_mpi.c - data-parallel training on MPI (include/spool/dist.h): joining a communicator,
 * configuration checks, parameter broadcast and the bucketed, weighted gradient all-reduce.
 * Built only when meson finds MPI (-Dmpi); dist_none.c stands in otherwise.
 *
 * Every collective is nonblocking (MPI_Iallreduce, MPI_Ibcast, MPI_Iallgather, MPI_Comm_idup)
 * and polled with MPI_Testall against a deadline, on a communicator whose error handler is
 * MPI_ERRORS_RETURN, so neither an MPI error nor a silent rank aborts or hangs the caller: both
 * become an sp_status with a message. */
#include "spool/dist.h"

#include <mpi.h>

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef SP_USE_DOUBLE
#define SP_MPI_REAL MPI_DOUBLE
#else
#define SP_MPI_REAL MPI_FLOAT
#endif

struct sp_dist {
    MPI_Comm comm;
    int rank, size;
    size_t bucket;        /* elements per all-reduce bucket */
    double timeout;       /* seconds; < 0 = none */
    int broken;           /* a collective failed or timed out: the group is unusable */
    MPI_Request *req;     /* scratch for the buckets of one all-reduce */
    int req_cap;
    double reduce_s;
    int64_t reduce_calls;
};

static int g_groups;       /* groups joined and not yet left */
static int g_initialised;  /* MPI_Init_thread was ours, so the last leave finalises */

int sp_dist_available(void) { return 1; }

int sp_dist_launched(void)
{
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static sp_status mpi_fail(sp_dist *d, const char *what, int code)
{
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(code, msg, &len);
    if (d) d->broken = 1;
    return sp_fail(SP_ERR_STATE, "%s: MPI error on rank %d: %s", what, d ? d->rank : -1, msg);
}

/* Polls n requests until all are done, the deadline passes or one fails. Spins briefly, then
 * sleeps 20 us between polls so an oversubscribed machine keeps its cores for the other ranks. */
static sp_status wait_all(sp_dist *d, int n, MPI_Request *req, const char *what)
{
    double t0 = now_s();
    for (long polls = 0;; polls++) {
        int done = 0, rc = MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(d, what, rc);
        if (done) return SP_OK;
        if (d->timeout >= 0 && now_s() - t0 > d->timeout) {
            d->broken = 1;
            return sp_fail(SP_ERR_STATE,
                           "%s: rank %d of %d waited %.0f s without an answer from every rank (one died, hangs "
                           "or runs a different program); the group cannot continue",
                           what, d->rank, d->size, d->timeout);
        }
        if (polls > 2000) {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
    }
}

static sp_status usable(const sp_dist *d, const char *what)
{
    if (!d) return sp_fail(SP_ERR_ARG, "%s: no group (NULL sp_dist)", what);
    if (d->broken) return sp_fail(SP_ERR_STATE, "%s: an earlier collective of this group failed", what);
    return SP_OK;
}

sp_dist *sp_dist_join(const sp_dist_opts *o)
{
    sp_dist_opts def = {0};
    if (!o) o = &def;
    if (o->timeout_s != o->timeout_s) { sp_fail(SP_ERR_ARG, "sp_dist_join: timeout_s is NaN"); return NULL; }
    int inited = 0, finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) { sp_fail(SP_ERR_STATE, "sp_dist_join: MPI was already finalised in this process"); return NULL; }
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) { mpi_fail(NULL, "sp_dist_join: MPI_Init_thread", rc); return NULL; }
        g_initialised = 1;
    }
    sp_dist *d = calloc(1, sizeof *d);
    if (!d) { sp_fail(SP_ERR_NOMEM, "sp_dist_join: out of memory"); return NULL; }
    d->timeout = o->timeout_s == 0 ? SP_DIST_DEFAULT_TIMEOUT_S : o->timeout_s;
    size_t bb = o->bucket_bytes ? o->bucket_bytes : (size_t)4 << 20;
    d->bucket = bb / sizeof(sp_real);
    if (d->bucket < 1) d->bucket = 1;
    if (d->bucket > (size_t)INT_MAX) d->bucket = (size_t)INT_MAX;
    d->comm = MPI_COMM_NULL;
    MPI_Comm base = o->comm ? *(const MPI_Comm *)o->comm : MPI_COMM_WORLD;
    MPI_Request r;
    int rc = MPI_Comm_idup(base, &d->comm, &r);
    if (rc == MPI_SUCCESS) {
        MPI_Comm_rank(base, &d->rank);
        MPI_Comm_size(base, &d->size);
        if (wait_all(d, 1, &r, "sp_dist_join") != SP_OK) { free(d); return NULL; }
        rc = MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    }
    if (rc != MPI_SUCCESS) {
        mpi_fail(d, "sp_dist_join", rc);
        free(d);
        return NULL;
    }
    MPI_Comm_rank(d->comm, &d->rank);
    MPI_Comm_size(d->comm, &d->size);
    g_groups++;
    return d;
}

void sp_dist_leave(sp_dist *d)
{
    if (!d) return;
    int broken = d->broken;
    if (!broken && d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
    free(d->req);
    free(d);
    /* After a failed collective MPI_Finalize could wait for the missing ranks for ever, so a
     * broken group leaves MPI initialised: the program exits (the launcher ends the job). */
    if (--g_groups == 0 && g_initialised && !broken) {
        MPI_Finalize();
        g_initialised = 0;
    }
}

int sp_dist_rank(const sp_dist *d) { return d ? d->rank : 0; }
int sp_dist_size(const sp_dist *d) { return d ? d->size : 1; }
double sp_dist_reduce_seconds(const sp_dist *d) { return d ? d->reduce_s : 0; }
int64_t sp_dist_reduce_calls(const sp_dist *d) { return d ? d->reduce_calls : 0; }

void sp_dist_abort(sp_dist *d, int code)
{
    if (d) MPI_Abort(d->comm != MPI_COMM_NULL ? d->comm : MPI_COMM_WORLD, code);
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ull;
    return h;
}

/* Every rank's hash; on a mismatch every rank fails the same way. */
static sp_status check_hash(sp_dist *d, uint64_t h, const char *what, const char *fn)
{
    uint64_t *all = malloc(sizeof(uint64_t) * (size_t)d->size);
    if (!all) return sp_fail(SP_ERR_NOMEM, "%s: out of memory", fn);
    MPI_Request r;
    int rc = MPI_Iallgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, d->comm, &r);
    sp_status s = rc != MPI_SUCCESS ? mpi_fail(d, fn, rc) : wait_all(d, 1, &r, fn);
    if (s == SP_OK)
        for (int i = 1; i < d->size; i++)
            if (all[i] != all[0]) {
                s = sp_fail(SP_ERR_ARG, "%s: %s differs between ranks: rank %d has hash %016llx, rank 0 has %016llx "
                            "(this is rank %d of %d)", fn, what, i, (unsigned long long)all[i],
                            (unsigned long long)all[0], d->rank, d->size);
                break;
            }
    free(all);
    return s;
}

sp_status sp_dist_check(sp_dist *d, const void *bytes, size_t n, const char *what)
{
    sp_status s = usable(d, "sp_dist_check");
    if (s) return s;
    if (!bytes && n) return sp_fail(SP_ERR_ARG, "sp_dist_check: NULL bytes with n = %zu", n);
    return check_hash(d, fnv1a(0xCBF29CE484222325ull, bytes, n), what ? what : "the checked data", "sp_dist_check");
}

sp_status sp_dist_bcast(sp_dist *d, void *buf, size_t bytes, int root)
{
    sp_status s = usable(d, "sp_dist_bcast");
    if (s) return s;
    if (root < 0 || root >= d->size) return sp_fail(SP_ERR_ARG, "sp_dist_bcast: root %d outside 0..%d", root, d->size - 1);
    if (!buf && bytes) return sp_fail(SP_ERR_ARG, "sp_dist_bcast: NULL buffer");
    unsigned char *p = buf;
    while (bytes) {
        int n = bytes > (size_t)1 << 30 ? 1 << 30 : (int)bytes;
        MPI_Request r;
        int rc = MPI_Ibcast(p, n, MPI_BYTE, root, d->comm, &r);
        if (rc != MPI_SUCCESS) return mpi_fail(d, "sp_dist_bcast", rc);
        if ((s = wait_all(d, 1, &r, "sp_dist_bcast"))) return s;
        p += n;
        bytes -= (size_t)n;
    }
    return SP_OK;
}

sp_status sp_dist_sum(sp_dist *d, double *x, int n)
{
    sp_status s = usable(d, "sp_dist_sum");
    if (s) return s;
    if (n < 0 || (!x && n)) return sp_fail(SP_ERR_ARG, "sp_dist_sum: bad buffer (n = %d)", n);
    if (!n) return SP_OK;
    MPI_Request r;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, d->comm, &r);
    if (rc != MPI_SUCCESS) return mpi_fail(d, "sp_dist_sum", rc);
    return wait_all(d, 1, &r, "sp_dist_sum");
}

static uint64_t layout_hash(const sp_params *ps)
{
    uint64_t h = fnv1a(0xCBF29CE484222325ull, &ps->numel, sizeof ps->numel);
    for (int i = 0; i < ps->count; i++) {
        const sp_tensor *p = ps->list[i];
        int shape[2] = {p->rows, p->cols};
        h = fnv1a(h, p->name, strlen(p->name) + 1);
        h = fnv1a(h, shape, sizeof shape);
    }
    return h;
}

sp_status sp_dist_bcast_params(sp_dist *d, sp_params *ps, int root)
{
    sp_status s = usable(d, "sp_dist_bcast_params");
    if (s) return s;
    if (!ps) return sp_fail(SP_ERR_ARG, "sp_dist_bcast_params: NULL parameter set");
    if ((s = check_hash(d, layout_hash(ps), "the parameter layout (names, shapes, order)", "sp_dist_bcast_params")))
        return s;
    return sp_dist_bcast(d, ps->value, ps->numel * sizeof(sp_real), root);
}

sp_status sp_dist_allreduce_grads(sp_dist *d, sp_params *ps, double weight, double *total)
{
    static const char *fn = "sp_dist_allreduce_grads";
    sp_status s = usable(d, fn);
    if (s) return s;
    if (!ps) return sp_fail(SP_ERR_ARG, "%s: NULL parameter set", fn);
    if (!(weight >= 0) || isinf(weight)) return sp_fail(SP_ERR_ARG, "%s: weight %g is not finite and >= 0", fn, weight);
    double t0 = now_s();
    /* The layout travels with the weight: a rank with another parameter set would otherwise
     * sum unrelated numbers (or wait for a bucket that never comes). */
    double w[2] = {weight, (double)ps->numel};
    MPI_Request r;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, w, 2, MPI_DOUBLE, MPI_SUM, d->comm, &r);
    if (rc != MPI_SUCCESS) return mpi_fail(d, fn, rc);
    if ((s = wait_all(d, 1, &r, fn))) return s;
    if (w[1] != (double)ps->numel * d->size)
        return sp_fail(SP_ERR_ARG, "%s: the ranks' parameter sets differ in size (this rank has %zu numbers, the mean is %.1f)",
                       fn, ps->numel, w[1] / d->size);
    if (!(w[0] > 0)) return sp_fail(SP_ERR_ARG, "%s: the weights of all ranks sum to %g (must be > 0)", fn, w[0]);
    if (total) *total = w[0];
    size_t nb = ps->numel ? (ps->numel + d->bucket - 1) / d->bucket : 0;
    if (nb > (size_t)INT_MAX) return sp_fail(SP_ERR_ARG, "%s: too many buckets", fn);
    if ((int)nb > d->req_cap) {
        MPI_Request *q = realloc(d->req, sizeof(MPI_Request) * nb);
        if (!q) return sp_fail(SP_ERR_NOMEM, "%s: out of memory", fn);
        d->req = q;
        d->req_cap = (int)nb;
    }
    const sp_real scale = (sp_real)(weight / w[0]);
    /* Scale bucket k while bucket k-1 is on the wire; poke MPI between buckets so the earlier
     * transfers progress (Open MPI moves nonblocking collectives only inside MPI calls). */
    for (size_t k = 0; k < nb; k++) {
        sp_real *g = ps->grad + k * d->bucket;
        size_t n = ps->numel - k * d->bucket < d->bucket ? ps->numel - k * d->bucket : d->bucket;
        for (size_t i = 0; i < n; i++) g[i] *= scale;
        rc = MPI_Iallreduce(MPI_IN_PLACE, g, (int)n, SP_MPI_REAL, MPI_SUM, d->comm, &d->req[k]);
        if (rc != MPI_SUCCESS) return mpi_fail(d, fn, rc);
        int flag;
        MPI_Testall((int)k + 1, d->req, &flag, MPI_STATUSES_IGNORE);
    }
    s = wait_all(d, (int)nb, d->req, fn);
    d->reduce_s += now_s() - t0;
    d->reduce_calls++;
    return s;
}
