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

#include <cblas.h>
#include <getopt.h>
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

static void usage(FILE *f)
{
    fprintf(f, "usage: spool-gemm-ceiling [--cell rnn|gru|lstm (lstm)] [--hidden H (256)] [--layers L (1)]\n"
               "         [--batch B (32)] [--seq T (64)] [--vocab V (65)] [--bidirectional]\n"
               "         [--threads N (1; 0 = all cores)] [--min-seconds S (0.05)] [--json] [--layouts]\n"
               "Times BLIS SGEMM at every matrix shape of one training step and prints GFLOP/s per\n"
               "shape and the GEMM-only bound of the step in tokens/s (--json: one JSON line).\n"
               "--layouts also times each shape with the four transpose combinations of A and B\n"
               "(storing an operand transposed is free for weights): which layout BLIS packs fastest.\n");
}

int main(int argc, char **argv)
{
    const char *cell = "lstm";
    int H = 256, L = 1, B = 32, T = 64, V = 65, dirs = 1, threads = 1, json = 0, layouts = 0;
    double min_s = 0.05;
    static const struct option opts[] = {
        {"cell", 1, 0, 'c'}, {"hidden", 1, 0, 'H'}, {"layers", 1, 0, 'L'}, {"batch", 1, 0, 'B'},
        {"seq", 1, 0, 'T'}, {"vocab", 1, 0, 'V'}, {"bidirectional", 0, 0, 'd'},
        {"threads", 1, 0, 'n'}, {"min-seconds", 1, 0, 's'}, {"json", 0, 0, 'j'}, {"layouts", 0, 0, 'y'},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': cell = optarg; break;
        case 'H': H = atoi(optarg); break;
        case 'L': L = atoi(optarg); break;
        case 'B': B = atoi(optarg); break;
        case 'T': T = atoi(optarg); break;
        case 'V': V = atoi(optarg); break;
        case 'd': dirs = 2; break;
        case 'n': threads = atoi(optarg); break;
        case 's': min_s = atof(optarg); break;
        case 'j': json = 1; break;
        case 'y': layouts = 1; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "spool-gemm-ceiling: unknown option or missing value '%s' (try --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc || !step_gates(cell) || H < 1 || L < 1 || B < 1 || T < 1 || V < 2 ||
        threads < 0 || !(min_s > 0) || (double)T * B * (H > V ? H : V) > 1e9) {
        fprintf(stderr, "spool-gemm-ceiling: bad arguments (try --help)\n");
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
