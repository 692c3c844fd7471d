/* SPDX-License-Identifier: MIT */
/* dist_bench.c - spool-dist-bench: what data-parallel training on MPI costs and buys.
 *
 * Times training steps of a char-LM of the examples' shape (embedding -> LSTM stack -> linear
 * head over V symbols, softmax cross-entropy, global-norm clipping, Adam) on random symbols, and
 * splits each step into compute (forward, backward, clipping, update) and the gradient all-reduce
 * (sp_dist_allreduce_grads). --batch is the GLOBAL batch: alone the process takes all of it, under
 * `mpirun -np N` each rank takes batch / N rows, so the runs do the same work per step and their
 * tokens/s compare directly. Rank 0 prints medians over --steps steps after --warmup, and a model
 * of the same step on 8-64 machines from the measured figures:
 *   all-reduce time(N) = 2 (N-1)/N x gradient bytes / bandwidth + 2 (N-1) x buckets x latency
 * (a ring all-reduce: each rank sends and receives 2 (N-1)/N of the slab, in 2 (N-1) rounds per
 * bucket), with --bw-gbs and --latency-us as the assumed network; weak scaling (every machine
 * keeps the measured per-rank batch and compute), no overlap of compute and communication.
 * bench/README.md has the measured tables. */
#include "spool.h"
#include "common/dist.h"
#include "common/opts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int hidden, layers, embed, vocab, batch, seq, steps, warmup, threads, bucket_kb;
    double bw_gbs, latency_us;
    int json;
} bench_opts;

static const ex_opt OPTS[] = {
    EX_OPT("hidden", EX_INT, bench_opts, hidden, "128", 1, 8192, 0, "H", "LSTM hidden units"),
    EX_OPT("layers", EX_INT, bench_opts, layers, "1", 1, SP_RNN_MAX_LAYERS, 0, "L", "stacked LSTM layers"),
    EX_OPT("embed", EX_INT, bench_opts, embed, "32", 1, 8192, 0, "E", "embedding size"),
    EX_OPT("vocab", EX_INT, bench_opts, vocab, "65", 2, 1 << 20, 0, "V", "symbols"),
    EX_OPT("batch", EX_INT, bench_opts, batch, "32", 1, 1 << 16, 0, "B", "global batch: rows per step over all ranks"),
    EX_OPT("seq", EX_INT, bench_opts, seq, "64", 1, 1 << 16, 0, "T", "time steps per row"),
    EX_OPT("steps", EX_INT, bench_opts, steps, "30", 1, 1 << 20, 0, "N", "timed steps"),
    EX_OPT("warmup", EX_INT, bench_opts, warmup, "3", 0, 1 << 20, 0, "N", "untimed steps first"),
    EX_OPT_THREADS(bench_opts, threads, 0),
    EX_OPT_PRECISION(0),
    EX_OPT("bucket-kb", EX_INT, bench_opts, bucket_kb, "4096", 1, 1 << 22, 0, "KB", "all-reduce bucket size"),
    EX_OPT("bw-gbs", EX_DBL, bench_opts, bw_gbs, "1.25", 1e-3, 1e4, 0, "GB/s",
           "assumed network bandwidth per machine for the model (1.25 = 10 Gbit/s Ethernet)"),
    EX_OPT("latency-us", EX_DBL, bench_opts, latency_us, "25", 0, 1e6, 0, "US", "assumed latency of one message for the model"),
    EX_OPT("json", EX_FLAG, bench_opts, json, "0", 0, 0, 0, NULL, "one JSON line instead of the table"),
};

static const ex_cli CLI = {
    .prog = "spool-dist-bench",
    .usage = "Usage: spool-dist-bench [options]            (one process)\n"
             "       mpirun -np N spool-dist-bench [options] (N ranks sharing --batch)\n"
             "Time per training step of a char-LM split into compute and gradient all-reduce, and a\n"
             "model of the same step on 8-64 machines.\n",
    .opts = OPTS,
    .nopts = (int)(sizeof OPTS / sizeof OPTS[0]),
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double minimum(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
    return m;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int fail(sp_dist *d, const char *what, const char *msg)
{
    fprintf(stderr, "spool-dist-bench: rank %d: %s: %s\n", sp_dist_rank(d), what, msg);
    if (sp_dist_size(d) > 1) sp_dist_abort(d, 1);
    sp_dist_leave(d);
    return 1;
}

int main(int argc, char **argv)
{
    bench_opts o;
    ex_args args;
    int rc = ex_cli_parse(&CLI, argc, argv, &o, &args);
    if (rc >= 0) return rc;
    sp_dist *d = NULL;
    sp_dist_opts dopt = {.bucket_bytes = (size_t)o.bucket_kb * 1024, .timeout_s = 300};
    if (ex_dist_join("spool-dist-bench", &dopt, NULL, &d)) return 1; /* joins only under a launcher */
    const int N = sp_dist_size(d), rank = sp_dist_rank(d);
    if (o.batch % N) {
        if (rank == 0) fprintf(stderr, "spool-dist-bench: --batch %d is not a multiple of the %d ranks\n", o.batch, N);
        sp_dist_leave(d);
        return 2;
    }
    const int B = o.batch / N, T = o.seq;
    sp_set_threads(o.threads > 0 ? o.threads : (N > 1 ? 1 : 0));
    sp_rng rng;
    sp_rng_seed(&rng, 1);
    sp_params *ps = sp_params_new();
    sp_embed emb;
    sp_rnn rnn;
    sp_linear head;
    if (!ps || sp_embed_init(&emb, ps, "embed", o.vocab, o.embed, &rng) ||
        sp_rnn_init(&rnn, ps, "rnn", SP_CELL_LSTM, o.embed, o.hidden, o.layers, 0, NULL, &rng) ||
        sp_linear_init(&head, ps, "head", o.hidden, o.vocab, 1, &rng))
        return fail(d, "model", sp_last_error());
    if (d && sp_dist_bcast_params(d, ps, 0)) return fail(d, "broadcast", sp_last_error());
    sp_optim_config oc = sp_optim_defaults(SP_ADAM);
    sp_optim *opt = sp_optim_new(ps, &oc);
    sp_tape *t = sp_tape_new();
    int *in = malloc(sizeof(int) * (size_t)T * (size_t)B), *tgt = malloc(sizeof(int) * (size_t)T * (size_t)B);
    int total = o.warmup + o.steps;
    double *tc = calloc((size_t)total, sizeof(double)), *tr = calloc((size_t)total, sizeof(double)),
           *ts = calloc((size_t)total, sizeof(double)), *tw = calloc((size_t)total, sizeof(double));
    if (!opt || !t || !in || !tgt || !tc || !tr || !ts || !tw) return fail(d, "setup", "out of memory");
    sp_rng data;
    sp_rng_seed(&data, 100 + (uint64_t)rank);
    for (int s = 0; s < total; s++) {
        for (int i = 0; i < T * B; i++) in[i] = sp_rng_below(&data, o.vocab), tgt[i] = sp_rng_below(&data, o.vocab);
        double t0 = now_s();
        sp_tape_reset(t);
        sp_params_zero_grad(ps);
        sp_tensor *x = sp_embed_forward(t, &emb, in, T * B);
        sp_rnn_opts ro = {0};
        sp_rnn_out out;
        if (x) sp_rnn_run(t, &rnn, x, T, B, &ro, &out);
        sp_tensor *loss = sp_tape_status(t) ? NULL : sp_softmax_xent(t, sp_linear_forward(t, &head, out.out), tgt, NULL);
        if (!loss || sp_backward(t, loss)) return fail(d, "step", sp_tape_errmsg(t));
        double t1 = now_s();
        /* a one-number sum first: the time until the slowest rank arrives (load imbalance) is
         * then 'wait', and the all-reduce after it is the transfer alone */
        double one = 1;
        if (d && sp_dist_sum(d, &one, 1)) return fail(d, "sync", sp_last_error());
        double t1b = now_s();
        if (d && sp_dist_allreduce_grads(d, ps, (double)(T * B), NULL)) return fail(d, "all-reduce", sp_last_error());
        double t2 = now_s(), norm;
        if (sp_clip_grad_norm(ps, 5.0, &norm) || sp_optim_step(opt, 1e-3)) return fail(d, "update", sp_last_error());
        double t3 = now_s();
        tc[s] = (t1 - t0) + (t3 - t2);
        tw[s] = t1b - t1;
        tr[s] = t2 - t1b;
        ts[s] = t3 - t0;
    }
    /* the slowest rank sets the pace: take every rank's medians, report the maxima */
    /* fastest all-reduce: what the transfer costs when both ranks happen to run (the machine is shared) */
    double rmin = minimum(tr + o.warmup, o.steps);
    double m[4] = {median(tc + o.warmup, o.steps), median(tr + o.warmup, o.steps), median(ts + o.warmup, o.steps),
                   median(tw + o.warmup, o.steps)};
    if (d) {
        double all[4 * 64] = {0};
        int k = rank < 64 ? rank : 63;
        memcpy(all + 4 * k, m, sizeof m);
        if (sp_dist_sum(d, all, 4 * (N < 64 ? N : 64))) return fail(d, "gather", sp_last_error());
        for (int r = 0; r < (N < 64 ? N : 64); r++)
            for (int j = 0; j < 4; j++) m[j] = all[4 * r + j] > m[j] ? all[4 * r + j] : m[j];
    }
    if (rank == 0) {
        double gbytes = (double)ps->numel * sizeof(sp_real);
        double tok_s = (double)o.batch * T / m[2];
        int buckets = (int)ceil(gbytes / ((double)o.bucket_kb * 1024));
        if (o.json) {
            printf("{\"ranks\": %d, \"threads\": %d, \"hidden\": %d, \"layers\": %d, \"embed\": %d, \"vocab\": %d, "
                   "\"batch\": %d, \"seq\": %d, \"params\": %zu, \"step_s\": %.6f, \"compute_s\": %.6f, "
                   "\"wait_s\": %.6f, \"allreduce_s\": %.6f, \"tokens_per_s\": %.0f}\n",
                   N, sp_get_threads(), o.hidden, o.layers, o.embed, o.vocab, o.batch, T, ps->numel, m[2], m[0], m[3], m[1], tok_s);
        } else {
            printf("# %s\n", sp_info());
            printf("# LSTM %dx%d, embed %d, vocab %d: %zu parameters, %.2f MB of gradients; global batch %d x %d = %d tokens\n",
                   o.layers, o.hidden, o.embed, o.vocab, ps->numel, gbytes / 1e6, o.batch, T, o.batch * T);
            printf("ranks %d x %d thread(s), %d rows each: step %.2f ms: compute %.2f ms, waiting for the slowest rank "
                   "%.3f ms, all-reduce %.3f ms (%.1f%%; fastest %.3f ms); %.0f tokens/s (medians of %d steps; per part the slowest rank's)\n",
                   N, sp_get_threads(), B, 1e3 * m[2], 1e3 * m[0], 1e3 * m[3], 1e3 * m[1], 100 * m[1] / m[2], 1e3 * rmin, tok_s, o.steps);
            /* weak scaling: each machine keeps B rows and the measured compute */
            printf("# model, every machine with %d rows (%.2f ms compute), %.2f GB/s, %.0f us latency, %d bucket(s):\n",
                   B, 1e3 * m[0], o.bw_gbs, o.latency_us, buckets);
            printf("# %8s %14s %12s %12s\n", "machines", "all-reduce ms", "efficiency", "tokens/s");
            for (int n = 8; n <= 64; n *= 2) {
                double comm = 2.0 * (n - 1) / n * gbytes / (o.bw_gbs * 1e9) + 2.0 * (n - 1) * buckets * o.latency_us * 1e-6;
                double eff = m[0] / (m[0] + comm);
                printf("# %8d %14.3f %11.1f%% %12.0f\n", n, 1e3 * comm, 100 * eff, (double)n * B * T / (m[0] + comm));
            }
            /* bandwidth term = compute when rows x T tokens cost as much to compute as the slab to send */
            double per_tok = m[0] / ((double)B * T), bw_term = 2.0 * gbytes / (o.bw_gbs * 1e9);
            printf("# communication dominates (all-reduce > compute) below %.0f tokens per machine and step "
                   "(%.1f rows of %d) at this model size\n", bw_term / per_tok, bw_term / per_tok / T, T);
        }
    }
    free(in), free(tgt), free(tc), free(tr), free(ts), free(tw);
    sp_tape_free(t);
    sp_optim_free(opt);
    sp_params_free(ps);
    sp_dist_leave(d);
    return 0;
}
