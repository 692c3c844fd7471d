/* SPDX-License-Identifier: MIT */
/* dist.c - spool-charlm under mpirun: joining the group when launched by an MPI
 * launcher, the configuration check, quiet ranks > 0, the carried state of every rank's tracks
 * gathered for rank 0's checkpoint (and handed back on resume), and the data position stored in
 * checkpoints so a run resumes with the same or another number of ranks. train.c uses these. */
#include "charlm.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cl_rank = -1;
static const char *term_ckpt = "";

static void on_term(int sig)
{
    char msg[CL_STR + 200];
    int n = snprintf(msg, sizeof msg,
                     "spool-charlm: rank %d: ended by the launcher (signal %d): another rank failed or the job was "
                     "stopped; the last checkpoint %s is intact (continue with --resume)\n", cl_rank, sig, term_ckpt);
    if (n > 0 && write(2, msg, (size_t)n) < 0) _exit(143);
    _exit(143);
}

int cl_dist_start(sp_dist **d, cl_opts *o)
{
    *d = NULL;
    if (!sp_dist_launched()) return 0;
    sp_dist_opts dopt = {.timeout_s = o->dist_timeout};
    *d = sp_dist_join(&dopt);
    if (!*d) return cl_fail("started by an MPI launcher, but %s", sp_last_error());
    if (sp_dist_size(*d) == 1) return 0; /* mpirun -np 1: exactly one process */
    cl_rank = sp_dist_rank(*d);
    /* one thread per rank unless asked otherwise: N ranks share the machine's cores */
    if (!cl_opts_given("threads")) o->threads = 1;
    term_ckpt = o->checkpoint;
    signal(SIGTERM, on_term);
    if (cl_rank > 0 && !freopen("/dev/null", "w", stdout)) return cl_fail("cannot silence stdout");
    return 0;
}

int cl_dist_check(sp_dist *d, const cl_opts *o, const cl_corpus *c)
{
    if (sp_dist_size(d) < 2) return 0;
    char *cfg = cl_opts_serialise(o), *voc = cl_vocab_to_string(&c->vocab);
    size_t n1 = cfg ? strlen(cfg) : 0, n2 = voc ? strlen(voc) : 0;
    char *all = malloc(n1 + n2 + 64);
    int rc = 0;
    if (!cfg || !voc || !all) rc = cl_fail("out of memory");
    else {
        snprintf(all, n1 + n2 + 64, "%s\n%s\n%s %ld %ld", cfg, voc, c->lines ? "lines" : "stream", c->train.n, c->valid.n);
        if (sp_dist_check(d, all, strlen(all), "the configuration (options, vocabulary, data sizes)") != SP_OK)
            rc = cl_fail("%s", sp_last_error());
    }
    free(cfg);
    free(voc);
    free(all);
    return rc;
}

/* full (N*B rows) <- every rank's B rows, on every rank: each rank puts its rows into a zeroed
 * buffer at its offset and the buffers are summed (adding zeros is exact). */
int cl_carry_gather(sp_dist *d, const sp_carry *local, sp_carry *full)
{
    int N = sp_dist_size(d), r = sp_dist_rank(d), B = local->B;
    for (int l = 0; l < SP_RNN_MAX_LAYERS; l++)
        for (int k = 0; k < SP_CELL_MAX_STATE; k++) {
            int cols = local->cols[l][0][k];
            if (!cols) continue;
            size_t n = (size_t)N * (size_t)B * (size_t)cols, off = (size_t)r * (size_t)B * (size_t)cols;
            double *buf = calloc(n, sizeof *buf);
            if (!buf) return cl_fail("out of memory");
            for (size_t i = 0; i < (size_t)B * (size_t)cols; i++) buf[off + i] = (double)local->data[l][0][k][i];
            if (n > (size_t)1 << 30 || sp_dist_sum(d, buf, (int)n) != SP_OK) {
                free(buf);
                return cl_fail("gathering the carried state: %s", sp_last_error());
            }
            for (size_t i = 0; i < n; i++) full->data[l][0][k][i] = (sp_real)buf[i];
            free(buf);
        }
    return 0;
}

/* local <- rank r's rows of full */
void cl_carry_scatter(const sp_carry *full, sp_carry *local, int r)
{
    for (int l = 0; l < SP_RNN_MAX_LAYERS; l++)
        for (int k = 0; k < SP_CELL_MAX_STATE; k++) {
            size_t n = (size_t)local->B * (size_t)local->cols[l][0][k];
            if (n) memcpy(local->data[l][0][k], full->data[l][0][k] + (size_t)r * n, n * sizeof(sp_real));
        }
}

void cl_pos_read(const char *path, cl_pos *p)
{
    sp_ckpt_info *ci = sp_ckpt_open(path);
    if (!ci) return;
    const char *s;
    if ((s = sp_ckpt_meta(ci, "charlm.examples"))) p->examples = strtol(s, NULL, 10);
    if ((s = sp_ckpt_meta(ci, "charlm.next_chunk"))) p->next_chunk = strtol(s, NULL, 10);
    if ((s = sp_ckpt_meta(ci, "charlm.chunks_per_epoch"))) p->per_epoch = strtol(s, NULL, 10);
    if ((s = sp_ckpt_meta(ci, "charlm.ranks"))) p->ranks = (int)strtol(s, NULL, 10);
    sp_ckpt_close(ci);
}
