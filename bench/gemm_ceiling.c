/* SPDX-License-Identifier: MIT */
/* gemm_ceiling.c - how fast BLIS SGEMM runs at the shapes of one char-LM training step.
 *
 * The step's products are listed by step_gemms.h (the same list the bench counts FLOPs from).
 * Each shape is timed on its own, in a loop over fresh-enough operands, with the kernel set and
 * thread count spool uses. Summing count * time over the list gives the time a step would take
 * if it did nothing but its GEMMs at BLIS's speed: the "GEMM ceiling" in tokens/s, against which
 * the bench's measured step (and the peer's) can be read as a fraction. With one thread the
 * timing is the thread's CPU time (steady on a busy machine), with more it is wall time. Both forms of the
 * recurrent weight gradient are reported: T products with K = B (plain BPTT) and one with K = T*B
 * (batched over steps). A large square SGEMM gives the machine's peak for reference.
 */
#include "spool.h"
#include "step_gemms.h"
#include "common/opts.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* With one thread BLIS computes in the calling thread, so its CPU time is the time the GEMM
 * really ran: on a shared, busy machine that is far steadier than wall time. With more threads
 * only wall time means anything. */
static clockid_t clock_id = CLOCK_MONOTONIC;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds per call of C[M,N] (+)= op(A) op(B): the best of 3 rounds of >= min_s each. */
static double time_gemm(const step_gemm *g, float *A, float *Bm, float *C, double min_s)
{
    int lda = g->ta ? g->M : g->K, ldb = g->tb ? g->K : g->N;
    double best = 1e30;
    for (int round = 0; round < 3; round++) {
        int reps = 0;
        double t0 = now_s(), el;
        do {
            cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans,
                        g->M, g->N, g->K, 1.0f, A, lda, Bm, ldb, 1.0f, C, g->N);
            reps++;
            el = now_s() - t0;
        } while (el < min_s);
        if (el / reps < best) best = el / reps;
    }
    return best;
}

typedef struct {
    const char *cell;
    int H, L, B, T, V, bidirectional, threads, json, layouts;
    double min_s;
} ceiling_opts;

#define C ceiling_opts
static const ex_opt OPTS[] = {
    EX_CHOICE("cell", EX_STR, C, cell, "lstm", "rnn|gru|lstm", 0, "CELL", "the cell of the step"),
    EX_OPT("hidden", EX_INT, C, H, "256", 1, 65536, 0, "H", "hidden size"),
    EX_OPT("layers", EX_INT, C, L, "1", 1, 64, 0, "L", "layers"),
    EX_OPT("batch", EX_INT, C, B, "32", 1, 65536, 0, "B", "batch size"),
    EX_OPT("seq", EX_INT, C, T, "64", 1, 1000000, 0, "T", "steps per sequence"),
    EX_OPT("vocab", EX_INT, C, V, "65", 2, 1000000, 0, "V", "vocabulary size"),
    EX_OPT("bidirectional", EX_FLAG, C, bidirectional, NULL, 0, 0, 0, NULL, "both directions"),
    EX_OPT("threads", EX_INT, C, threads, "1", 0, EX_MAX_THREADS, 0, "N", "threads (0 = OMP_NUM_THREADS or all cores)"),
    EX_OPT("min-seconds", EX_DBL, C, min_s, "0.05", 1e-6, 3600, 0, "S", "time each shape at least this long"),
    EX_OPT("json", EX_FLAG, C, json, NULL, 0, 0, 0, NULL, "one JSON line"),
    EX_OPT("layouts", EX_FLAG, C, layouts, NULL, 0, 0, 0, NULL, "also time the 4 transpose layouts of each shape: which BLIS packs fastest"),
};
#undef C
static const ex_cli CLI = {"spool-gemm-ceiling",
                           "Usage: spool-gemm-ceiling [options]\n"
                           "Times BLIS SGEMM at every matrix shape of one training step and prints GFLOP/s per\n"
                           "shape and the GEMM-only bound of the step in tokens/s (--json: one JSON line).\n",
                           NULL, NULL, NULL, OPTS, sizeof OPTS / sizeof OPTS[0], 0, NULL};

int main(int argc, char **argv)
{
    ceiling_opts c;
    ex_args args;
    int prc = ex_cli_parse(&CLI, argc, argv, &c, &args);
    if (prc >= 0) return prc;
    const char *cell = c.cell;
    int H = c.H, L = c.L, B = c.B, T = c.T, V = c.V, dirs = c.bidirectional ? 2 : 1, threads = c.threads, json = c.json,
        layouts = c.layouts;
    double min_s = c.min_s;
    if ((double)T * B * (H > V ? H : V) > 1e9) {
        fprintf(stderr, "spool-gemm-ceiling: --seq x --batch x max(--hidden, --vocab) is over 1e9 (try --help)\n");
        return 2;
    }
    sp_set_threads(threads);
    if (sp_get_threads() == 1) clock_id = CLOCK_THREAD_CPUTIME_ID;
    char info[256];
    snprintf(info, sizeof info, "%s", sp_info());

    step_gemm per[64], all[64];
    int np = step_gemm_list(cell, H, L, B, T, V, dirs, 1, 1, per, 64);
    int na = step_gemm_list(cell, H, L, B, T, V, dirs, 1, 0, all, 64);
    /* Operands big enough for the largest shape; values are irrelevant to speed but kept finite. */
    size_t big = 0;
    for (int i = 0; i < np + na; i++) {
        const step_gemm *g = i < np ? &per[i] : &all[i - np];
        size_t a = (size_t)g->M * g->K, b = (size_t)g->K * g->N, c = (size_t)g->M * g->N;
        if (a > big) big = a;
        if (b > big) big = b;
        if (c > big) big = c;
    }
    const int SQ = 1024;
    if (big < (size_t)SQ * SQ) big = (size_t)SQ * SQ;
    float *A = malloc(big * sizeof *A), *Bm = malloc(big * sizeof *Bm), *C = calloc(big, sizeof *C);
    if (!A || !Bm || !C) {
        fprintf(stderr, "spool-gemm-ceiling: out of memory\n");
        return 1;
    }
    for (size_t k = 0; k < big; k++) A[k] = (float)(k % 7) * 0.01f, Bm[k] = (float)(k % 5) * 0.01f;

    step_gemm sq = {"square 1024^3", SQ, SQ, SQ, 0, 0, 1};
    double peak = 2.0 * SQ * SQ * SQ / time_gemm(&sq, A, Bm, C, 4 * min_s) * 1e-9;

    double t_per = 0, t_all = 0, f = step_gemm_flops(per, np);
    if (!json) printf("# %s\n# %s H=%d L=%d B=%d T=%d V=%d dirs=%d\n# %-44s %6s %6s %6s %6s %9s %9s\n",
                      info, cell, H, L, B, T, V, dirs, "product", "M", "N", "K", "count", "GFLOP/s", "ms/step");
    for (int pass = 0; pass < 2; pass++) {
        step_gemm *list = pass ? all : per;
        int n = pass ? na : np;
        for (int i = 0; i < n; i++) {
            /* The second list repeats every shape of the first except the batched dW. */
            if (pass && strstr(list[i].what, "all steps") == NULL) continue;
            double s = time_gemm(&list[i], A, Bm, C, min_s);
            double gf = 2.0 * list[i].M * (double)list[i].N * list[i].K / s * 1e-9;
            if (!json)
                printf("  %-44s %6d %6d %6d %6d %9.1f %9.3f\n", list[i].what, list[i].M, list[i].N,
                       list[i].K, list[i].count, gf, 1e3 * s * list[i].count);
            if (!pass) {
                t_per += s * list[i].count;
                if (!strstr(list[i].what, "per step")) t_all += s * list[i].count;
            } else {
                t_all += s * list[i].count;
            }
        }
    }
    if (layouts && !json) {
        printf("# GFLOP/s by operand layout (NN = both as stored row-major, TN = A stored transposed, ...)\n");
        printf("# %-44s %8s %8s %8s %8s\n", "product", "NN", "NT", "TN", "TT");
        for (int i = 0; i < np + na; i++) {
            step_gemm g = i < np ? per[i] : all[i - np];
            if (i >= np && !strstr(g.what, "all steps")) continue;
            printf("  %-44s", g.what);
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++) {
                    g.ta = ta, g.tb = tb;
                    double s = time_gemm(&g, A, Bm, C, min_s);
                    printf(" %8.1f", 2.0 * g.M * (double)g.N * g.K / s * 1e-9);
                }
            printf("\n");
        }
    }
    double tok = (double)T * B;
    if (json) {
        printf("{\"cell\": \"%s\", \"hidden\": %d, \"layers\": %d, \"batch\": %d, \"seq\": %d, "
               "\"vocab\": %d, \"bidirectional\": %s, \"threads\": %d, \"gflop_per_step\": %.4f, "
               "\"square_gflops\": %.1f, \"gemm_ms_per_step\": %.3f, \"gemm_ms_per_step_batched_dw\": %.3f, "
               "\"ceiling_tokens_per_s\": %.1f, \"ceiling_tokens_per_s_batched_dw\": %.1f, "
               "\"ceiling_gflops\": %.1f, \"info\": \"%s\"}\n",
               cell, H, L, B, T, V, dirs == 2 ? "true" : "false", threads, f * 1e-9, peak, 1e3 * t_per,
               1e3 * t_all, tok / t_per, tok / t_all, f / t_per * 1e-9, info);
    } else {
        printf("# square SGEMM 1024^3: %.1f GFLOP/s\n", peak);
        printf("# step: %.3f GFLOP; GEMMs alone take %.3f ms (per-step dW) / %.3f ms (batched dW)\n",
               f * 1e-9, 1e3 * t_per, 1e3 * t_all);
        printf("# GEMM ceiling: %.0f tokens/s (per-step dW), %.0f tokens/s (batched dW); %.1f GFLOP/s\n",
               tok / t_per, tok / t_all, f / t_per * 1e-9);
    }
    free(A), free(Bm), free(C);
    return 0;
}
