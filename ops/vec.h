/* SPDX-License-Identifier: MIT */
/* vec.h - the elementwise kernels that want the CPU's widest vectors, chosen at run time.
 *
 * The library is built for plain x86-64 by default (it must run on any x86-64 CPU), and code
 * built that way vectorises with 4-wide SSE2 at best: the LSTM's gate math alone then took 36 %
 * of a training step instead of 6 % (LSTM H=256, measured on this project's machine). The loops
 * that matter — the gate math of a recurrent row, forward and backward (cell_rows.h), and the
 * exp/sigmoid/tanh passes of the elementwise ops and the softmax — live in vec_kernels.c, which
 * meson compiles three times: for x86-64 (SSE2), x86-64-v3 (AVX2, FMA) and x86-64-v4 (AVX-512).
 * sp__vec() picks the best table the CPU supports on first use (cpuid through
 * __builtin_cpu_supports), or the one SPOOL_CPU names (baseline, avx2, avx512: never more than the
 * CPU has). The matrix products have their own dispatch: BLIS picks its kernels at its init, and
 * the packed recurrent kernel (packed.c) checks for AVX-512 itself. Internal to ops/. */
#ifndef SP_VEC_H
#define SP_VEC_H

#include "../autograd/tape_internal.h"

typedef struct {
    const char *isa; /* "avx512", "avx2", "baseline" */
    /* cell_rows.h, one batch row */
    void (*lstm_fwd)(const sp_real *x, const sp_real *y, const sp_real *cp, sp_real *sv, sp_real *h, sp_real *c,
                     int H);
    void (*lstm_bwd)(const sp_real *sv, const sp_real *c, const sp_real *dh, const sp_real *dcn, const sp_real *cp,
                     sp_real *da, sp_real *dc, int H);
    void (*gru_fwd)(const sp_real *x, const sp_real *y, const sp_real *bn, const sp_real *hp, sp_real *sv,
                    sp_real *hn, sp_real *h, int H);
    void (*gru_bwd)(const sp_real *sv, const sp_real *hn, const sp_real *dh, const sp_real *hp, sp_real *dx,
                    sp_real *dy, int H);
    /* h = sv = tanh(x + y) [n] (the tanh RNN's row); x may be sv */
    void (*tanh_add)(const sp_real *x, const sp_real *y, sp_real *sv, sp_real *h, int n);
    /* y = f(x) over n contiguous values */
    void (*sigmoid)(const sp_real *x, sp_real *y, int n);
    void (*tanh)(const sp_real *x, sp_real *y, int n);
    /* y = softmax(x) over one row of n; returns its log-sum-exp */
    sp_real (*softmax)(const sp_real *x, sp_real *y, int n);
    /* Adam without weight decay or AMSGrad (optim/rules.c) over n values: m, v, p updated in
     * place; k = {beta1, 1 - beta1, beta2, 1 - beta2, lr / bias correction 1,
     * sqrt(bias correction 2), eps} */
    void (*adam)(sp_real *p, const sp_real *g, sp_real *m, sp_real *v, size_t n, const sp_real k[7]);
    /* the whole-sequence ops' per-row passes (ops/seq.c), over n values:
     * y = a + b (+ c, if not NULL); y += x; y = a b; y = d (1 - s^2) (tanh's derivative) */
    void (*add3)(sp_real *y, const sp_real *a, const sp_real *b, const sp_real *c, int n);
    void (*acc)(sp_real *y, const sp_real *x, int n);
    void (*mul)(sp_real *y, const sp_real *a, const sp_real *b, int n);
    void (*tanh_grad)(sp_real *y, const sp_real *d, const sp_real *s, int n);
    /* the gated scan's rows (ops/scan.c), n columns, s = sigmoid(z):
     * fwd: h += s (c - h), out = h (out may be NULL);  ab: a = 1 - s, b = s c;
     * bwd: g += dout; dc += g s; dz += g (c - hp) s (1 - s); g *= 1 - s (dz, dc may be NULL) */
    /* y = softplus(x); dx += dy sigmoid(x) (its derivative), over n values */
    void (*softplus)(const sp_real *x, sp_real *y, int n);
    void (*softplus_bwd)(const sp_real *x, const sp_real *dy, sp_real *dx, int n);
    /* one row of a noise mask (autograd/noise.h): m[j] = sp__noise_col(hr, j) >> 32 < thr ? 0 : keep */
    void (*noise_row)(sp_real *m, int n, uint64_t hr, uint64_t thr, sp_real keep);
    void (*gscan_fwd)(const sp_real *z, const sp_real *c, sp_real *h, sp_real *out, int n);
    void (*gscan_ab)(const sp_real *z, const sp_real *c, sp_real *a, sp_real *b, int n);
    void (*gscan_bwd)(const sp_real *z, const sp_real *c, const sp_real *hp, const sp_real *dout, sp_real *g,
                      sp_real *dz, sp_real *dc, int n);
} sp_vec_kernels;

/* The table for this CPU, chosen once (thread-safe: every thread computes the same answer). */
const sp_vec_kernels *sp__vec(void);

/* The table of that name ("baseline", "avx2", "avx512") if this build has it and this CPU can run
 * it, else NULL (tests compare the tables with each other). */
const sp_vec_kernels *sp__vec_table(const char *name);

/* Whether name is one of the words SPOOL_CPU takes ("baseline", "avx2", "avx512"); the runtime
 * refuses any other word at first use (autograd/runtime.c). */
int sp__vec_name_known(const char *name);

/* The builds of vec_kernels.c (avx2 and avx512 on x86-64 only). */
extern const sp_vec_kernels sp__vec_baseline, sp__vec_avx2, sp__vec_avx512;

#endif
