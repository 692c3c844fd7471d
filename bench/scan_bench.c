/* SPDX-License-Identifier: MIT */
/* scan_bench.c - spool-scan-bench: sp_linear_scan or sp_gated_scan (ops/scan.c) alone, forward
 * and backward, at one shape and thread count; the best of --reps passes, as one JSON line.
 *
 * The scan does 1 multiply-add per element forward and about 3 backward, on 3 streams of T*B*H
 * values each way (a, b, h forward; a, h, dh and the two gradients backward), so it runs at the
 * speed of memory, not of arithmetic: the line gives the bytes it moves per second alongside the
 * time (the gated scan also computes a sigmoid per element each way, and reads z and c backward).
 * a is drawn in (0.5, 1), b and h0 in (-1, 1); z for the gated scan in (-1, 1).
 * The loss is the sum of every output (a loss of the final state alone would leave most gradients
 * decaying through the subnormal range, slow on x86 and unlike training); "bwd_ms" is the whole
 * backward call with that sum's passes, "loss_ms" the same sum of a tensor of the output's shape
 * forward and back alone, so bwd_ms - loss_ms is the scan's backward with the zeroing of its
 * gradient buffers. "triad_gb_s" is what the machine streams on the same threads, a[i] = b[i] +
 * s c[i] over two of the inputs and the output (three streams; the scan's bound). */
#include "common/opts.h"

#include <stdio.h>
#include <time.h>

typedef struct {
    int T, B, H, threads, reps, gated;
} cfg;

#define C cfg
static const ex_opt OPTS[] = {
    EX_OPT("seq", EX_INT, C, T, "4096", 1, 1 << 20, 0, "T", "time steps"),
    EX_OPT("batch", EX_INT, C, B, "32", 1, 1 << 16, 0, "B", "rows"),
    EX_OPT("hidden", EX_INT, C, H, "256", 1, 1 << 16, 0, "H", "columns"),
    EX_OPT("threads", EX_INT, C, threads, "1", 1, SP_MAX_THREADS, 0, "N", "threads"),
    EX_OPT("reps", EX_INT, C, reps, "10", 1, 100000, 0, "R", "passes; the best is reported"),
    EX_OPT("gated", EX_FLAG, C, gated, "0", 0, 0, 0, NULL, "time sp_gated_scan(z = a, c = b) instead"),
};
#undef C
static const ex_cli CLI = {"spool-scan-bench",
                           "Usage: spool-scan-bench [options]\n"
                           "Times sp_linear_scan (or sp_gated_scan) forward and backward on [T*B, H] and prints one\n"
                           "JSON line.\n",
                           NULL, NULL, NULL, OPTS, sizeof OPTS / sizeof OPTS[0], 0, NULL};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv)
{
    cfg c;
    ex_args args;
    int rc = ex_cli_parse(&CLI, argc, argv, &c, &args);
    if (rc >= 0) return rc;
    if ((double)c.T * c.B * c.H > 1 << 28) {
        fprintf(stderr, "spool-scan-bench: T*B*H = %.0f is above 2^28 elements\n", (double)c.T * c.B * c.H);
        return EX_EXIT_USAGE;
    }
    sp_init(&(sp_init_opts){.threads = c.threads, .flags = SP_INIT_FIXED_THREADS});
    sp_params *ps = sp_params_new();
    sp_tensor *a = ps ? sp_param(ps, "a", c.T * c.B, c.H) : NULL, *b = a ? sp_param(ps, "b", c.T * c.B, c.H) : NULL;
    sp_tensor *h0 = b ? sp_param(ps, "h0", c.B, c.H) : NULL;
    sp_tensor *y = h0 ? sp_param(ps, "y", (c.T + 1) * c.B, c.H) : NULL; /* the loss alone */
    sp_tape *t = sp_tape_new();
    if (!y || !t) {
        fprintf(stderr, "spool-scan-bench: %s\n", sp_last_error());
        return EX_EXIT_FAIL;
    }
    sp_rng r;
    sp_rng_seed(&r, 1);
    for (size_t k = 0; k < ps->numel; k++) ps->value[k] = (sp_real)(2 * sp_rng_uniform(&r) - 1);
    for (size_t k = 0; k < sp_numel(a); k++) a->data[k] = (sp_real)(0.5 + 0.5 * sp_rng_uniform(&r));
    double fwd = 1e30, bwd = 1e30, loss = 1e30, triad = 1e30;
    const size_t nn = sp_numel(a);
    for (int i = 0; i < c.reps; i++) {
        sp_tape_reset(t);
        double t0 = now_s();
        sp_tensor *h = c.gated ? sp_gated_scan(t, a, b, h0, c.T, NULL) : sp_linear_scan(t, a, b, h0, c.T, NULL);
        double t1 = now_s();
        if (!h || sp_backward(t, sp_sum(t, h)) != SP_OK) {
            fprintf(stderr, "spool-scan-bench: %s\n", sp_tape_errmsg(t));
            return EX_EXIT_FAIL;
        }
        double t2 = now_s();
        fwd = t1 - t0 < fwd ? t1 - t0 : fwd;
        bwd = t2 - t1 < bwd ? t2 - t1 : bwd;
        sp_tape_reset(t);
        t0 = now_s();
        if (sp_backward(t, sp_sum(t, y)) != SP_OK) {
            fprintf(stderr, "spool-scan-bench: %s\n", sp_tape_errmsg(t));
            return EX_EXIT_FAIL;
        }
        t1 = now_s();
        loss = t1 - t0 < loss ? t1 - t0 : loss;
        sp_real *ya = y->data, *aa = a->data, *ba = b->data;
#pragma omp parallel for num_threads(c.threads) schedule(static)
        for (size_t k = 0; k < nn; k++) ya[k] = aa[k] + (sp_real)0.5 * ba[k];
        t2 = now_s();
        triad = t2 - t1 < triad ? t2 - t1 : triad;
    }
    double n = (double)c.T * c.B * c.H, bytes = n * sizeof(sp_real);
    printf("{\"op\": \"%s\", \"T\": %d, \"B\": %d, \"H\": %d, \"threads\": %d, \"fwd_ms\": %.3f, \"bwd_ms\": %.3f, "
           "\"loss_ms\": %.3f, \"fwd_gb_s\": %.2f, \"triad_gb_s\": %.2f, \"ns_per_element_fwd_bwd\": %.3f}\n",
           c.gated ? "gated_scan" : "linear_scan", c.T, c.B, c.H, c.threads, 1e3 * fwd, 1e3 * bwd, 1e3 * loss, 3 * bytes / fwd * 1e-9, 3 * bytes / triad * 1e-9,
           1e9 * (fwd + bwd - loss) / n);
    sp_tape_free(t);
    sp_params_free(ps);
    return 0;
}
