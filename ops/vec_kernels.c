/* SPDX-License-Identifier: MIT */
/* vec_kernels.c - one table of elementwise kernels (vec.h), compiled once per instruction set.
 *
 * meson builds this file three times with different -march flags and SP_VEC_ISA naming the
 * build (its table is sp__vec_baseline, sp__vec_avx2 or sp__vec_avx512); the code is the same,
 * the compiler vectorises it for each. The math itself is in cell_rows.h and fastmath.h, shared
 * with the per-step fused cells, so every table computes the same formulas (tests/test_vec.c
 * checks the tables against each other). Nothing here is exported. */
#include "cell_rows.h"
#include "vec.h"
#include "../autograd/noise.h"

#include <math.h>

#ifndef SP_VEC_ISA
#error "vec_kernels.c is compiled by meson with -DSP_VEC_ISA=baseline, avx2 or avx512 (see meson.build)"
#endif
/* Each build's functions carry its name (lstm_fwd_avx512, ...), so a disassembly tells them apart
 * (tests/test_portable.sh checks that vector instructions appear only in these). */
#define SP_CAT2(a, b) a##_##b
#define SP_CAT(a, b) SP_CAT2(a, b)
#define FN(name) SP_CAT(name, SP_VEC_ISA)
#define SP_STR2(a) #a
#define SP_STR(a) SP_STR2(a)

static void FN(lstm_fwd)(const sp_real *x, const sp_real *y, const sp_real *cp, sp_real *sv, sp_real *h, sp_real *c,
                     int H)
{
    sp__lstm_row_fwd(x, y, cp, sv, h, c, H);
}

static void FN(lstm_bwd)(const sp_real *sv, const sp_real *c, const sp_real *dh, const sp_real *dcn, const sp_real *cp,
                         sp_real *da, sp_real *dc, int H)
{
    sp__lstm_row_bwd(sv, c, dh, dcn, cp, da, dc, H);
}

static void FN(gru_fwd)(const sp_real *x, const sp_real *y, const sp_real *bn, const sp_real *hp, sp_real *sv,
                        sp_real *hn, sp_real *h, int H)
{
    sp__gru_row_fwd(x, y, bn, hp, sv, hn, h, H);
}

static void FN(gru_bwd)(const sp_real *sv, const sp_real *hn, const sp_real *dh, const sp_real *hp, sp_real *dx,
                        sp_real *dy, int H)
{
    sp__gru_row_bwd(sv, hn, dh, hp, dx, dy, H);
}

static void FN(tanh_add)(const sp_real *x, const sp_real *restrict y, sp_real *restrict sv, sp_real *restrict h,
                         int n) /* x may be sv: then only sv is used */
{
    if (x == sv) for (int j = 0; j < n; j++) sv[j] = sp_tanh_r(sv[j] + y[j]);
    else for (int j = 0; j < n; j++) sv[j] = sp_tanh_r(x[j] + y[j]);
    for (int j = 0; j < n; j++) h[j] = sv[j];
}

static void FN(sigmoid_n)(const sp_real *restrict x, sp_real *restrict y, int n)
{
    for (int j = 0; j < n; j++) y[j] = sp_sigmoid_r(x[j]);
}

static void FN(tanh_n)(const sp_real *restrict x, sp_real *restrict y, int n)
{
    for (int j = 0; j < n; j++) y[j] = sp_tanh_r(x[j]);
}

/* Below this, exp(x - max) is under the smallest normal float: the weight is 0 exactly (the float
 * sp_exp_r clamps at -87 and would give 1.65e-38, so masked attention weights were not 0). */
#ifdef SP_USE_DOUBLE
#define SOFTMAX_ZERO_BELOW (-745.2)
#else
#define SOFTMAX_ZERO_BELOW (-87.0f)
#endif

static sp_real FN(softmax_n)(const sp_real *restrict x, sp_real *restrict y, int n)
{
    sp_real mx = x[0], s = 0;
    for (int j = 1; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    for (int j = 0; j < n; j++) y[j] = x[j] - mx < SOFTMAX_ZERO_BELOW ? 0 : sp_exp_r(x[j] - mx);
    for (int j = 0; j < n; j++) s += y[j];
    for (int j = 0; j < n; j++) y[j] /= s;
    return mx + SP_LOG(s);
}

#ifdef SP_USE_DOUBLE
#define SQRT_R sqrt
#else
#define SQRT_R sqrtf
#endif

static void FN(adam)(sp_real *restrict p, const sp_real *restrict g, sp_real *restrict m, sp_real *restrict v, size_t n,
                 const sp_real k[7])
{
    const sp_real b1 = k[0], one_b1 = k[1], b2 = k[2], one_b2 = k[3], step_size = k[4], bc2_sqrt = k[5], eps = k[6];
    for (size_t i = 0; i < n; i++) {
        sp_real d = g[i], nm = m[i] * b1 + one_b1 * d, nv = v[i] * b2 + one_b2 * (d * d);
        m[i] = nm, v[i] = nv;
        p[i] = p[i] + (-step_size) * (nm / (SQRT_R(nv) / bc2_sqrt + eps));
    }
}

static void FN(add3)(sp_real *restrict y, const sp_real *restrict a, const sp_real *restrict b,
                     const sp_real *restrict c, int n)
{
    if (c) for (int j = 0; j < n; j++) y[j] = a[j] + b[j] + c[j];
    else for (int j = 0; j < n; j++) y[j] = a[j] + b[j];
}

static void FN(acc)(sp_real *restrict y, const sp_real *restrict x, int n)
{
    for (int j = 0; j < n; j++) y[j] += x[j];
}

static void FN(mul)(sp_real *restrict y, const sp_real *restrict a, const sp_real *restrict b, int n)
{
    for (int j = 0; j < n; j++) y[j] = a[j] * b[j];
}

static void FN(tanh_grad)(sp_real *restrict y, const sp_real *restrict d, const sp_real *restrict s, int n)
{
    for (int j = 0; j < n; j++) y[j] = d[j] * (1 - s[j] * s[j]);
}

static void FN(softplus_n)(const sp_real *restrict x, sp_real *restrict y, int n)
{
    for (int j = 0; j < n; j++) y[j] = sp_softplus_r(x[j]);
}

static void FN(softplus_bwd)(const sp_real *restrict x, const sp_real *restrict dy, sp_real *restrict dx, int n)
{
    for (int j = 0; j < n; j++) dx[j] += dy[j] * sp_sigmoid_r(x[j]);
}

static void FN(noise_row)(sp_real *restrict m, int n, uint64_t hr, uint64_t thr, sp_real keep)
{
    for (int j = 0; j < n; j++) m[j] = sp__noise_col(hr, (uint64_t)j) >> 32 < thr ? 0 : keep;
}

/* The gated scan h_t = h_{t-1} + s_t (c_t - h_{t-1}), s = sigmoid(z): one row's columns. */
static void FN(gscan_fwd)(const sp_real *restrict z, const sp_real *restrict c, sp_real *restrict h,
                          sp_real *restrict out, int n)
{
    for (int j = 0; j < n; j++) h[j] += sp_sigmoid_r(z[j]) * (c[j] - h[j]);
    if (out) for (int j = 0; j < n; j++) out[j] = h[j];
}

static void FN(gscan_ab)(const sp_real *restrict z, const sp_real *restrict c, sp_real *restrict a,
                         sp_real *restrict b, int n)
{
    for (int j = 0; j < n; j++) {
        sp_real s = sp_sigmoid_r(z[j]);
        a[j] = 1 - s, b[j] = s * c[j];
    }
}

static void FN(gscan_bwd)(const sp_real *restrict z, const sp_real *restrict c, const sp_real *restrict hp,
                          const sp_real *restrict dout, sp_real *restrict g, sp_real *restrict dz,
                          sp_real *restrict dc, int n)
{
    if (dz && dc) /* the common case, one branch-free loop the compiler vectorises */
        for (int j = 0; j < n; j++) {
            sp_real s = sp_sigmoid_r(z[j]), gj = g[j] + dout[j];
            dc[j] += gj * s;
            dz[j] += gj * (c[j] - hp[j]) * (s * (1 - s));
            g[j] = gj * (1 - s);
        }
    else
        for (int j = 0; j < n; j++) {
            sp_real s = sp_sigmoid_r(z[j]), gj = g[j] + dout[j];
            if (dc) dc[j] += gj * s;
            if (dz) dz[j] += gj * (c[j] - hp[j]) * (s * (1 - s));
            g[j] = gj * (1 - s);
        }
}

const sp_vec_kernels SP_CAT(sp__vec, SP_VEC_ISA) = {
    SP_STR(SP_VEC_ISA), FN(lstm_fwd), FN(lstm_bwd), FN(gru_fwd), FN(gru_bwd), FN(tanh_add),
    FN(sigmoid_n), FN(tanh_n), FN(softmax_n), FN(adam), FN(add3), FN(acc), FN(mul), FN(tanh_grad),
    FN(softplus_n), FN(softplus_bwd), FN(noise_row), FN(gscan_fwd), FN(gscan_ab), FN(gscan_bwd)};
