/* SPDX-License-Identifier: MIT */
/* test_dist.c - the MPI data-parallel API (include/spool/dist.h), run under mpirun by
 * tests/test_dist.sh. One program, one mode per run:
 *
 *   equiv    N ranks of B rows each train k steps; every rank also trains a single-process copy
 *            on the concatenated N*B batch. Parameters must agree to a stated tolerance, the ranks
 *            must agree bitwise, for SGD and Adam, small and default buckets, and rows of very
 *            different lengths (so the ranks hold different numbers of real tokens).
 *   mismatch rank 1 has another configuration / parameter layout: every rank gets the error.
 *   timeout  rank 1 stops answering: rank 0's all-reduce fails within its timeout (exit 3).
 *   die      rank 1 is killed (SIGKILL) before a step; the others are ended by the launcher and
 *            say so from a SIGTERM handler.
 * Every rank prints "rank R: ..." lines; the script greps them. Exit 0 = this rank's checks held. */
#include "spool.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { V = 11, E = 6, H = 12, B = 3, TMAX = 9, STEPS = 6 };

typedef struct {
    sp_params *ps;
    sp_embed emb;
    sp_rnn rnn;
    sp_linear head;
} model;

static int rank_;

static int model_init(model *m, int hidden, uint64_t seed)
{
    sp_rng rng;
    sp_rng_seed(&rng, seed);
    m->ps = sp_params_new();
    if (!m->ps || sp_embed_init(&m->emb, m->ps, "embed", V, E, &rng) ||
        sp_rnn_init(&m->rnn, m->ps, "rnn", SP_CELL_LSTM, E, hidden, 1, 0, NULL, &rng) ||
        sp_linear_init(&m->head, m->ps, "head", hidden, V, 1, &rng)) {
        printf("rank %d: model: %s\n", rank_, sp_last_error());
        return -1;
    }
    return 0;
}

/* Rows [r0, r0+nr) of step s's global batch: lengths from 1 to TMAX, skewed by row so that
 * the ranks' token counts differ a lot; ids from a per-step generator. Time-major, T = the
 * longest of these rows; padding targets -1. Returns the real targets. */
static long make_batch(int s, int nrows_total, int r0, int nr, int *in, int *tgt, int *T)
{
    int len[64], ids[64][TMAX + 1];
    sp_rng g;
    sp_rng_seed(&g, 1000 + (uint64_t)s);
    for (int r = 0; r < nrows_total; r++) {
        len[r] = r % 3 == 0 ? TMAX : 1 + sp_rng_below(&g, r % 2 ? 3 : TMAX);
        for (int t = 0; t <= TMAX; t++) ids[r][t] = sp_rng_below(&g, V);
    }
    *T = 1;
    for (int r = r0; r < r0 + nr; r++)
        if (len[r] > *T) *T = len[r];
    long real = 0;
    for (int t = 0; t < *T; t++)
        for (int b = 0; b < nr; b++) {
            int r = r0 + b, pad = t >= len[r];
            in[t * nr + b] = pad ? 0 : ids[r][t];
            tgt[t * nr + b] = pad ? -1 : ids[r][t + 1];
            real += !pad;
        }
    return real;
}

/* One training step on rows [r0, r0+nr); with d, the gradients are averaged across ranks. */
static int step(model *m, sp_optim *opt, sp_tape *t, sp_dist *d, int s, int nrows_total, int r0, int nr)
{
    int in[TMAX * 64], tgt[TMAX * 64], T;
    long real = make_batch(s, nrows_total, r0, nr, in, tgt, &T);
    sp_tape_reset(t);
    sp_params_zero_grad(m->ps);
    sp_tensor *x = sp_embed_forward(t, &m->emb, in, T * nr);
    sp_rnn_out out;
    sp_rnn_opts ro = {0};
    if (x) sp_rnn_run(t, &m->rnn, x, T, nr, &ro, &out);
    sp_tensor *loss = sp_tape_status(t) ? NULL : sp_softmax_xent(t, sp_linear_forward(t, &m->head, out.out), tgt, NULL);
    if (!loss || sp_backward(t, loss)) { printf("rank %d: step: %s\n", rank_, sp_tape_errmsg(t)); return -1; }
    if (d && sp_dist_allreduce_grads(d, m->ps, (double)real, NULL)) {
        printf("rank %d: %s\n", rank_, sp_last_error());
        return -1;
    }
    double norm;
    if (sp_clip_grad_norm(m->ps, 1.0, &norm) || sp_optim_step(opt, 0.3)) {
        printf("rank %d: update: %s\n", rank_, sp_last_error());
        return -1;
    }
    return 0;
}

static int equiv_case(sp_dist_opts *dopts, sp_optim_kind kind, double tol, const char *label)
{
    sp_dist *d = sp_dist_join(dopts);
    if (!d) { printf("rank %d: join: %s\n", rank_, sp_last_error()); return 1; }
    int N = sp_dist_size(d), r = sp_dist_rank(d), fails = 0;
    model md, ref;
    /* Different seeds per rank: the broadcast must make them identical. */
    if (model_init(&md, H, 7 + (uint64_t)r) || model_init(&ref, H, 7)) return 1;
    if (sp_dist_bcast_params(d, md.ps, 0)) { printf("rank %d: %s\n", r, sp_last_error()); return 1; }
    sp_optim_config oc = sp_optim_defaults(kind);
    sp_optim *o1 = sp_optim_new(md.ps, &oc), *o2 = sp_optim_new(ref.ps, &oc);
    sp_tape *t = sp_tape_new();
    if (!o1 || !o2 || !t) return 1;
    for (int s = 0; s < STEPS; s++)
        if (step(&md, o1, t, d, s, N * B, r * B, B) || step(&ref, o2, t, NULL, s, N * B, 0, N * B)) return 1;
    /* against one process on the concatenated batch */
    double maxd = 0, maxv = 0;
    for (size_t i = 0; i < md.ps->numel; i++) {
        double e = fabs((double)md.ps->value[i] - (double)ref.ps->value[i]);
        if (e > maxd) maxd = e;
        if (fabs((double)ref.ps->value[i]) > maxv) maxv = fabs((double)ref.ps->value[i]);
    }
    /* and the ranks against rank 0, bit for bit */
    size_t bytes = md.ps->numel * sizeof(sp_real);
    sp_real *r0 = malloc(bytes);
    memcpy(r0, md.ps->value, bytes);
    if (sp_dist_bcast(d, r0, bytes, 0)) { printf("rank %d: %s\n", r, sp_last_error()); return 1; }
    long differ = 0;
    for (size_t i = 0; i < md.ps->numel; i++) differ += memcmp(&r0[i], &md.ps->value[i], sizeof(sp_real)) != 0;
    /* the same step on a moved parameter must move both: a test that cannot fail is a defect */
    int moved = fabs((double)md.ps->value[0] - (double)r0[0]) == 0 && maxv > 0;
    printf("rank %d: %s: %d ranks, %d steps, %zu parameters: max |distributed - single| = %.3g (tolerance %.1g), "
           "%ld values differ from rank 0, %lld all-reduces in %.4f s\n",
           r, label, N, STEPS, md.ps->numel, maxd, tol, differ, (long long)sp_dist_reduce_calls(d),
           sp_dist_reduce_seconds(d));
    if (maxd > tol || differ || !moved) { printf("rank %d: FAIL %s\n", r, label); fails++; }
    free(r0);
    sp_tape_free(t);
    sp_optim_free(o1);
    sp_optim_free(o2);
    sp_params_free(md.ps);
    sp_params_free(ref.ps);
    sp_dist_leave(d);
    return fails;
}

/* built before the handler is installed: the handler only write(2)s (async-signal-safe) */
static char term_msg[128];

static void on_term(int sig)
{
    (void)sig;
    if (write(1, term_msg, strlen(term_msg)) < 0) _exit(5);
    _exit(4);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "equiv";
    setvbuf(stdout, NULL, _IOLBF, 0);
    sp_set_threads(1);
    if (!strcmp(mode, "equiv")) {
        /* Two groups after one another in one process: the first leave must not finalise. */
        sp_dist *outer = sp_dist_join(NULL);
        if (!outer) { printf("rank ?: join: %s\n", sp_last_error()); return 1; }
        rank_ = sp_dist_rank(outer);
        /* Tolerance: parameters are O(1); each all-reduce sums N float terms in another order
         * than the single process's backward (error ~ N * 2^-24 relative per element per step),
         * and clipping + the optimizer carry that through 6 steps. SGD stays near 1e-6; Adam
         * divides by sqrt(v), which turns a 1e-7 gradient difference on a tiny gradient into up
         * to lr * 1e-4, hence the looser bound. */
        sp_dist_opts small = {.bucket_bytes = 1000, .timeout_s = 60}, dflt = {.timeout_s = 60};
        int f = equiv_case(&small, SP_SGD, 2e-5, "sgd, 1000-byte buckets") +
                equiv_case(&dflt, SP_SGD, 2e-5, "sgd, default buckets") +
                equiv_case(&small, SP_ADAM, 2e-4, "adam, 1000-byte buckets");
        sp_dist_leave(outer);
        printf("rank %d: equiv %s\n", rank_, f ? "FAILED" : "passed");
        return f != 0;
    }
    sp_dist_opts o = {.timeout_s = !strcmp(mode, "timeout") ? 3 : 60};
    sp_dist *d = sp_dist_join(&o);
    if (!d) { printf("rank ?: join: %s\n", sp_last_error()); return 1; }
    rank_ = sp_dist_rank(d);
    if (!strcmp(mode, "mismatch")) {
        const char *cfg = rank_ == 1 ? "hidden=13" : "hidden=12";
        int got = 0;
        if (sp_dist_check(d, cfg, strlen(cfg), "model configuration") == SP_ERR_ARG) {
            printf("rank %d: check refused: %s\n", rank_, sp_last_error());
            got++;
        }
        model m;
        if (model_init(&m, rank_ == 1 ? H + 1 : H, 7)) return 1;
        if (sp_dist_bcast_params(d, m.ps, 0) == SP_ERR_ARG) {
            printf("rank %d: broadcast refused: %s\n", rank_, sp_last_error());
            got++;
        }
        const char *same = "hidden=12";
        if (sp_dist_check(d, same, strlen(same), "model configuration") == SP_OK) got++; /* still usable */
        sp_params_free(m.ps);
        sp_dist_leave(d);
        printf("rank %d: mismatch %s\n", rank_, got == 3 ? "passed" : "FAILED");
        return got != 3;
    }
    snprintf(term_msg, sizeof term_msg, "rank %d: ended by the launcher (SIGTERM): another rank failed\n", rank_);
    signal(SIGTERM, on_term);
    model m;
    if (model_init(&m, H, 7) || sp_dist_bcast_params(d, m.ps, 0)) return 1;
    sp_optim_config oc = sp_optim_defaults(SP_SGD);
    sp_optim *opt = sp_optim_new(m.ps, &oc);
    sp_tape *t = sp_tape_new();
    int N = sp_dist_size(d);
    for (int s = 0; s < 4; s++) {
        if (s == 2 && rank_ == 1) {
            if (!strcmp(mode, "die")) raise(SIGKILL);
            printf("rank 1: not answering\n");
            sleep(30); /* ended by the launcher long before */
        }
        if (step(&m, opt, t, d, s, N * B, rank_ * B, B)) {
            /* the message is printed by step(); the group is broken, so leave without finalising */
            sp_tape_free(t);
            sp_optim_free(opt);
            sp_params_free(m.ps);
            sp_dist_leave(d);
            return 3;
        }
    }
    printf("rank %d: %s: all steps done (unexpected)\n", rank_, mode);
    return 1;
}
