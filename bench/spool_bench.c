/* SPDX-License-Identifier: MIT */
/* spool_bench.c - spool's side of the benchmark against the PyTorch peer (bench/peer_torch.py).
 *
 * One character-level language-model training step, the same arithmetic as the peer, with the
 * same flags and the same JSON keys so compare.py can put the two side by side:
 *   one-hot [T*B, V] -> L layers of RNN(tanh) | GRU | LSTM (optionally bidirectional, zero
 *   initial state every step) -> linear head [H*D, V] -> mean softmax cross-entropy over all T*B
 *   positions -> backward -> global-norm clip 5.0 -> Adam(lr 2e-3).
 * The input is a dense one-hot matrix (not an embedding lookup) because the peer multiplies by
 * one too; the data are random tokens from a fixed seed, a pool of 8 batches encoded once outside
 * the timed region and cycled. Timing follows the peer: warm-up steps, then --steps timed steps
 * (0: as many as fit in --target-seconds, estimated from the warm-up).
 *
 * Extra keys over the peer's: gflops (model GEMM FLOPs of the step, see step_gemms.h, divided by
 * the median step time), gflop_per_step, tape_mb (arena reserved), tape_records (ops recorded in
 * one step) and the library's info line.
 */
#include "spool.h"
#include "bench_model.h"
#include "step_gemms.h"
#include "common/atomic.h"
#include "common/opts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef bench_cfg cfg;

/* The options, one table of the shared option layer (examples/common/opts.h). */
static int set_cell(const char *v, void *base, char *err, size_t errn)
{
    if (!step_gates(v)) {
        snprintf(err, errn, "--cell must be rnn, gru, lstm, mingru or minlstm, got '%s'", v);
        return -1;
    }
    ((cfg *)base)->cell = v;
    return 0;
}

#define C cfg
static const ex_opt OPTS[] = {
    EX_CALLBACK("cell", set_cell, NULL, 0, "rnn|gru|lstm|mingru|minlstm", "recurrent cell (default: lstm)"),
    EX_OPT("hidden", EX_INT, C, H, "256", 1, 1 << 16, 0, "H", "hidden size"),
    EX_OPT("layers", EX_INT, C, L, "1", 1, SP_RNN_MAX_LAYERS, 0, "L", "stacked layers"),
    EX_OPT("batch", EX_INT, C, B, "32", 1, 1 << 16, 0, "B", "sequences per step"),
    EX_OPT("seq", EX_INT, C, T, "64", 1, 1 << 16, 0, "T", "time steps"),
    EX_OPT("vocab", EX_INT, C, V, "65", 2, 1 << 20, 0, "V", "vocabulary (one-hot width)"),
    EX_OPT("threads", EX_INT, C, threads, "1", 0, EX_MAX_THREADS, 0, "N", "threads (0 = all cores)"),
    EX_OPT("steps", EX_INT, C, steps, "0", 0, 100000000, 0, "S", "timed steps (0: auto from --target-seconds)"),
    EX_OPT("warmup", EX_INT, C, warmup, "3", 0, 1000000, 0, "W", "untimed warm-up steps"),
    EX_OPT("target-seconds", EX_DBL, C, target_seconds, "10", 0, 1e9, 0, "X", "seconds of timed steps when --steps is 0"),
    EX_OPT("bidirectional", EX_FLAG, C, bidir, NULL, 0, 0, 0, NULL, "bidirectional layers"),
    EX_OPT("embedding", EX_INT, C, E, "0", 0, 1 << 16, 0, "E", "input through an embedding of width E (0: one-hot)"),
    EX_OPT("varlen", EX_FLAG, C, varlen, NULL, 0, 0, 0, NULL,
           "rows of lengths uniform in [max(1, T/4), T], unsorted; loss over real positions"),
    EX_OPT("forward-only", EX_FLAG, C, fwd_only, NULL, 0, 0, 0, NULL, "forward + loss only"),
    EX_OPT_PRECISION(0), /* the peer's --autocast bf16 is --precision bf16 */
    EX_OPT("seed", EX_LONG, C, seed, "1234", 0, 2147483647, 0, "S", "random seed"),
    EX_OPT("lr", EX_DBL, C, lr, "2e-3", 0, 1e9, 0, "LR", "Adam learning rate"),
    EX_OPT("clip", EX_DBL, C, clip, "5.0", 0, 1e9, 0, "C", "global-norm clip"),
    EX_OPT("dump", EX_STR, C, dump_dir, NULL, 0, 0, 0, "DIR",
           "instead of timing: run one step on batch 0 and write DIR/init.safetensors,\n"
           "                        DIR/step1.safetensors (parameters before and after), DIR/tokens.txt and\n"
           "                        DIR/loss.txt, for bench/check_same_math.py to redo the step in PyTorch"),
};
#undef C
static const ex_cli CLI = {"spool-bench",
                           "Usage: spool-bench [options]\n"
                           "One char-LM training step (one-hot -> RNN/GRU/LSTM/minGRU/minLSTM -> linear -> softmax xent ->\n"
                           "backward -> clip 5.0 -> Adam 2e-3), timed; prints one JSON line with the keys of\n"
                           "bench/peer_torch.py plus gflops and peak RSS.\n",
                           NULL, NULL, NULL, OPTS, sizeof OPTS / sizeof OPTS[0], 0, NULL};

/* -1 to go on, else the exit status (0 after --help, 2 on a bad option). */
static int parse(int argc, char **argv, cfg *c)
{
    *c = (cfg){.cell = "lstm"};
    ex_args args;
    int rc = ex_cli_parse(&CLI, argc, argv, c, &args);
    if (rc >= 0) return rc;
    if ((double)c->T * c->B * (c->V > c->H ? c->V : c->H) * 4 > 8e9) {
        fprintf(stderr, "spool-bench: T*B*max(V,H) is too large for a benchmark\n");
        return 2;
    }
    return -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

/* A JSON number, or null for NaN/Inf (JSON has no NaN). buf must hold 32 chars. */
static const char *jnum(char *buf, double v)
{
    if (isfinite(v)) snprintf(buf, 32, "%.4f", v);
    else snprintf(buf, 32, "null");
    return buf;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int dump_file(const char *dir, const char *name, char *path, size_t n)
{
    if ((size_t)snprintf(path, n, "%s/%s", dir, name) >= n) {
        fprintf(stderr, "spool-bench: --dump path too long\n");
        return 0;
    }
    return 1;
}

/* --dump: parameters before and after one training step on batch 0, its tokens ([t][b], T+1
 * rows) and its loss, so check_same_math.py can run the same step in PyTorch and compare. */
static int dump_one_step(const cfg *c, bench_model *m, const bench_batch *bt, const int *tok0)
{
    char path[4096];
    if (!dump_file(c->dump_dir, "init.safetensors", path, sizeof path)) return 2;
    if (sp_save(path, m->ps, NULL, NULL) != SP_OK) {
        fprintf(stderr, "spool-bench: %s\n", sp_last_error());
        return 1;
    }
    sp_tape *tape = sp_tape_new();
    double loss;
    if (!tape || model_step(m, c, tape, bt, &loss)) return 1;
    sp_tape_free(tape);
    if (!dump_file(c->dump_dir, "step1.safetensors", path, sizeof path)) return 2;
    if (sp_save(path, m->ps, NULL, NULL) != SP_OK) {
        fprintf(stderr, "spool-bench: %s\n", sp_last_error());
        return 1;
    }
    const char *names[2] = {"tokens.txt", "loss.txt"};
    for (int f = 0; f < 2; f++) {
        if (!dump_file(c->dump_dir, names[f], path, sizeof path)) return 2;
        char err[4400];
        ex_atomic a = {0}; /* the examples' one atomic writer (common/atomic.h) */
        FILE *o = ex_atomic_open(&a, path, err, sizeof err);
        if (!o) {
            fprintf(stderr, "spool-bench: %s\n", err);
            return 1;
        }
        if (f == 0)
            for (int t = 0; t <= c->T; t++)
                for (int b = 0; b < c->B; b++) fprintf(o, "%d%c", tok0[t * c->B + b], b + 1 < c->B ? ' ' : '\n');
        else
            fprintf(o, "%.9g\n", loss);
        if (ex_atomic_commit(&a, err, sizeof err)) {
            fprintf(stderr, "spool-bench: %s\n", err);
            return 1;
        }
    }
    printf("spool-bench: wrote %s/{init,step1}.safetensors, tokens.txt, loss.txt (loss %.6f)\n", c->dump_dir, loss);
    return 0;
}

int main(int argc, char **argv)
{
    cfg c;
    int pr = parse(argc, argv, &c);
    if (pr >= 0) return pr;
    sp_set_threads(c.threads); /* 0 = all cores (OMP_NUM_THREADS if set) */
    const char *info = sp_info(); /* initialises BLIS with the kernel set spool chose */
    char info_copy[512];
    snprintf(info_copy, sizeof info_copy, "%s", info);
    double rss_init = rss_mb();

    const int B = c.B, T = c.T, V = c.V, NB = 8;
    sp_rng rng;
    sp_rng_seed(&rng, c.seed);
    bench_model m;
    if (model_build(&m, &c, &rng) != 0) return 1;

    /* The data pool: NB batches of T+1 random tokens per sequence, laid out [t][b] (time
     * outermost, as the ops want sequences); inputs are tokens 0..T-1, targets 1..T. With
     * --embedding the inputs stay ids; with --varlen each row gets a length in [max(1, T/4), T]
     * (as the peer's) and the targets past it are -1 (padding, ignored by the loss). */
    float *onehot = c.E ? NULL : calloc((size_t)NB * T * B * V, sizeof *onehot);
    int *ids = malloc((size_t)NB * T * B * sizeof *ids), *target = malloc((size_t)NB * T * B * sizeof *target);
    int *lens = malloc((size_t)NB * B * sizeof *lens), *tok0 = malloc((size_t)(T + 1) * B * sizeof *tok0);
    int *tok = malloc((size_t)(T + 1) * B * sizeof *tok);
    if ((!c.E && !onehot) || !ids || !target || !lens || !tok0 || !tok) {
        fprintf(stderr, "spool-bench: out of memory for the data pool\n");
        return 1;
    }
    double real_tokens[8];
    for (int k = 0; k < NB; k++) {
        for (int i = 0; i < (T + 1) * B; i++) tok[i] = sp_rng_below(&rng, V);
        int lo = T / 4 > 1 ? T / 4 : 1;
        real_tokens[k] = 0;
        for (int b = 0; b < B; b++) {
            lens[k * B + b] = c.varlen ? lo + sp_rng_below(&rng, T - lo + 1) : T;
            real_tokens[k] += lens[k * B + b];
        }
        for (int r = 0; r < T * B; r++) {
            if (onehot) onehot[((size_t)k * T * B + r) * V + tok[r]] = 1;
            ids[(size_t)k * T * B + r] = tok[r];
            target[(size_t)k * T * B + r] = r / B < lens[k * B + r % B] ? tok[r + B] : -1;
        }
        if (k == 0) memcpy(tok0, tok, (size_t)(T + 1) * B * sizeof *tok);
    }
    free(tok);
    bench_batch pool[8];
    for (int k = 0; k < NB; k++)
        pool[k] = (bench_batch){onehot ? onehot + (size_t)k * T * B * V : NULL, ids + (size_t)k * T * B,
                                target + (size_t)k * T * B, c.varlen ? lens + (size_t)k * B : NULL};
    if (c.dump_dir) {
        int rc = dump_one_step(&c, &m, &pool[0], tok0);
        model_free(&m);
        free(onehot), free(ids), free(target), free(lens), free(tok0);
        return rc;
    }
    free(tok0);

    sp_tape *tape = sp_tape_new();
    if (!tape) {
        fprintf(stderr, "spool-bench: %s\n", sp_last_error());
        return 1;
    }
    double *wtimes = malloc(sizeof(double) * (c.warmup > 0 ? c.warmup : 1));
    if (!wtimes) return 1;
    double loss_first = NAN, loss_last = NAN;
    for (int i = 0; i < c.warmup; i++) {
        double t0 = now_s(), l;
        if (model_step(&m, &c, tape, &pool[i % NB], &l))
            return 1;
        wtimes[i] = now_s() - t0;
        if (i == 0) loss_first = l;
    }
    int S = c.steps;
    if (S <= 0) {
        double est = c.warmup >= 2 ? fmin(wtimes[c.warmup - 1], wtimes[c.warmup - 2])
                                   : (c.warmup == 1 ? wtimes[0] : 0.05);
        double s = ceil(c.target_seconds / fmax(est, 1e-6));
        S = (int)fmax(5, fmin(100000, s));
    }
    double *times = malloc(sizeof(double) * S);
    if (!times) return 1;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double real = 0;
    for (int i = 0; i < S; i++) real += real_tokens[(c.warmup + i) % NB];
    double t_all = now_s();
    for (int i = 0; i < S; i++) {
        int k = (c.warmup + i) % NB;
        double t0 = now_s();
        if (model_step(&m, &c, tape, &pool[k], &loss_last))
            return 1;
        times[i] = now_s() - t0;
        if (i == 0 && c.warmup == 0) loss_first = loss_last;
    }
    double secs = now_s() - t_all;
    getrusage(RUSAGE_SELF, &ru1);
    qsort(times, S, sizeof *times, cmp_double);

    /* What BPTT must keep between forward and backward, as the seq ops store it: per layer and
     * direction the saved gate values (LSTM 5H, GRU 4H, RNN H per row and step) and the h (and c)
     * of every step; the head's logits [T*B, V] and its input. Working memory is compared to it. */
    int gates = !strcmp(c.cell, "lstm") ? 5 : !strcmp(c.cell, "gru") ? 4 : !strcmp(c.cell, "rnn") ? 1 : 2 * step_gates(c.cell),
        nstate = !strcmp(c.cell, "lstm") ? 2 : 1; /* min cells: their gate ops' outputs, about 2 per gate */
    double act_mb = ((double)c.L * (c.bidir ? 2 : 1) * T * B * c.H * (gates + nstate) + (double)T * B * V) * sizeof(float) / (1 << 20);
    step_gemm g[64];
    int ng = step_gemm_list(c.cell, c.H, c.L, B, T, V, c.bidir ? 2 : 1, !c.fwd_only, 1, g, 64);
    double flops = step_gemm_flops(g, ng);
    double ut = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + 1e-6 * (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec);
    double st = (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + 1e-6 * (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
    const char *arch = getenv("BLIS_ARCH_TYPE");
    char jl0[32], jl1[32];

    printf("{\"peer\": \"spool\", \"torch\": null, \"spool\": \"%s\", \"mode\": \"%s\", \"cell\": \"%s\", "
           "\"hidden\": %d, \"layers\": %d, \"batch\": %d, \"seq\": %d, \"vocab\": %d, "
           "\"bidirectional\": %s, \"threads\": %d, \"torch_threads\": %d, \"blis_arch_type\": \"%s\", "
           "\"steps\": %d, \"warmup\": %d, \"seconds\": %.4f, \"tokens_per_s\": %.1f, "
           "\"varlen\": %s, \"embedding\": %d, \"real_tokens_per_s\": %.1f, \"bptt_activations_mb\": %.1f, "
           "\"ms_per_step\": %.3f, \"ms_per_step_median\": %.3f, \"ms_per_step_min\": %.3f, "
           "\"peak_rss_mb\": %.1f, \"rss_after_import_mb\": %.1f, \"n_params\": %zu, "
           "\"cpu_util\": %.3f, \"sys_frac\": %.3f, \"minflt_per_step\": %.1f, "
           "\"loss_first\": %s, \"loss_last\": %s, "
           "\"gflop_per_step\": %.4f, \"gflops\": %.2f, \"tape_mb\": %.1f, \"tape_records\": %d, \"optimizer\": \"%s\", "
           "\"model\": \"%s\", \"precision\": \"%s\", \"autocast\": \"%s\", \"info\": \"%s\"}\n",
           SP_VERSION, c.fwd_only ? "forward" : "train", c.cell, c.H, c.L, B, T, V,
           c.bidir ? "true" : "false", c.threads, sp_get_threads(), arch ? arch : "unset", S,
           c.warmup, secs, (double)B * T * S / secs, c.varlen ? "true" : "false", c.E, real / secs, act_mb, 1000 * secs / S, 1000 * times[S / 2],
           1000 * times[0], rss_mb(), rss_init, m.ps->numel, (ut + st) / secs,
           st / fmax(1e-9, ut + st), (double)(ru1.ru_minflt - ru0.ru_minflt) / S, jnum(jl0, loss_first),
           jnum(jl1, loss_last), flops * 1e-9, flops * 1e-9 / times[S / 2],
           (double)sp_tape_capacity(tape) / (1 << 20), sp_tape_count(tape), bench_optim_name, bench_model_name,
           sp_precision_name(sp_get_precision()), sp_get_precision() == SP_PREC_BF16 ? "bf16" : "none", info_copy);
    fflush(stdout);
    sp_tape_free(tape);
    model_free(&m);
    free(onehot);
    free(ids);
    free(target);
    free(lens);
    free(wtimes);
    free(times);
    return 0;
}
