/* SPDX-License-Identifier: MIT */
/* dist.c - spool-charlm under mpirun: joining the group when launched by an MPI
 * launcher, the configuration check, quiet ranks > 0, the carried state of every rank's tracks
 * gathered for rank 0's checkpoint (and handed back on resume), and the data position stored in
 * checkpoints so a run resumes with the same or another number of ranks, and what a rank says
 * when the launcher ends it (whether a checkpoint exists). train.c uses these. */
#include "charlm.h"
#include "../common/dist.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cl_rank = -1;

/* What a rank says when the launcher ends it (SIGTERM: another rank failed, or Ctrl-C on
 * mpirun). Built outside the handler, which only write(2)s it (snprintf is not
 * async-signal-safe); two buffers, so the handler never sees one half rewritten. */
static char term_msg[2][CL_STR + 400];
static size_t term_len[2];
static volatile sig_atomic_t term_cur;

static void term_set(const char *ckpt_state)
{
    int k = !term_cur;
    int n = snprintf(term_msg[k], sizeof term_msg[k],
                     "spool-charlm: rank %d: ended by the launcher (SIGTERM): another rank failed or the job was "
                     "stopped; %s\n", cl_rank, ckpt_state);
    term_len[k] = n > 0 && (size_t)n < sizeof term_msg[k] ? (size_t)n : strlen(term_msg[k]);
    term_cur = k;
}

static void on_term(int sig)
{
    (void)sig;
    int k = term_cur;
    if (write(2, term_msg[k], term_len[k]) < 0) _exit(143);
    _exit(143);
}

void cl_dist_saved(const char *path, long step)
{
    if (cl_rank < 0) return;
    char s[CL_STR + 120];
    snprintf(s, sizeof s, "the last checkpoint %s (step %ld) is intact (continue with --resume)", path, step);
    term_set(s);
}

int cl_dist_start(sp_dist **d, cl_opts *o)
{
    sp_dist_opts dopt = {.timeout_s = o->dist_timeout};
    if (ex_dist_join("spool-charlm", &dopt, "--dist-timeout", d)) return 1;
    if (!*d || sp_dist_size(*d) == 1) return 0; /* not launched, or mpirun -np 1: exactly one process */
    cl_rank = sp_dist_rank(*d);
    /* one thread per rank unless asked otherwise: N ranks share the machine's cores */
    if (!cl_opts_given("threads")) o->threads = 1;
    char s[CL_STR + 120];
    if (o->resume) snprintf(s, sizeof s, "the checkpoint %s this run resumed from is intact (continue with --resume)", o->checkpoint);
    else snprintf(s, sizeof s, "this run wrote no checkpoint yet (nothing to resume from)");
    term_set(s);
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
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
