/* SPDX-License-Identifier: MIT */
/* test_vec.c - the elementwise kernel tables of ops/vec.h, one per instruction set.
 *
 * The library is built for plain x86-64 and picks the AVX2 or AVX-512 build of
 * ops/vec_kernels.c at run time. Every table this CPU can run is checked against a scalar
 * reference in double precision (libm's exp and tanh), so a wrong kernel in any one build fails
 * here, not only where that build happens to be chosen; and the table sp__vec() chose must be the
 * one SPOOL_CPU asks for (meson runs this test twice: without it, and with SPOOL_CPU=baseline).
 * Float build: the tables differ only in vector width and FMA contraction, a few float ulps. */
#include "helpers.h"
#include "../ops/vec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const isas[] = {"baseline", "avx2", "avx512"};

static double sig(double x) { return 1 / (1 + exp(-x)); }

static void fill(sp_real *x, int n, sp_rng *r, double lo, double hi)
{
    for (int i = 0; i < n; i++) x[i] = (sp_real)(lo + (hi - lo) * sp_rng_uniform(r));
}

/* float kernels against double math: relative 1e-6 plus a little absolute slack */
#define CLOSE(a, b, what) sp_test_close((double)(a), (double)(b), 1e-6, 2e-7, what)

static void test_activations(void **state)
{
    (void)state;
    enum { N = 4001 }; /* odd: every vector width leaves a tail */
    sp_real *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    for (int i = 0; i < N; i++) x[i] = (sp_real)(-20.0 + 40.0 * i / (N - 1));
    x[N / 2 + 1] = (sp_real)0.01; /* tanh's small-argument branch */
    int tried = 0;
    for (int k = 0; k < 3; k++) {
        const sp_vec_kernels *V = sp__vec_table(isas[k]);
        if (!V) continue;
        tried++;
        assert_string_equal(V->isa, isas[k]);
        V->sigmoid(x, y, N);
        for (int i = 0; i < N; i++) CLOSE(y[i], sig(x[i]), "sigmoid");
        V->tanh(x, y, N);
        for (int i = 0; i < N; i++) CLOSE(y[i], tanh(x[i]), "tanh");
        V->softplus(x, y, N);
        for (int i = 0; i < N; i++) CLOSE(y[i], x[i] > 0 ? x[i] + log1p(exp(-x[i])) : log1p(exp(x[i])), "softplus");
        for (int i = 0; i < N; i++) y[i] = 1;
        V->softplus_bwd(x, x, y, N); /* dy = x */
        for (int i = 0; i < N; i++) CLOSE(y[i], 1 + x[i] * sig(x[i]), "softplus backward");
        sp_real lse = V->softmax(x + 100, y, 65);
        double mx = x[164], s = 0; /* x is increasing */
        for (int j = 0; j < 65; j++) s += exp(x[100 + j] - mx);
        CLOSE(lse, mx + log(s), "softmax log-sum-exp");
        for (int j = 0; j < 65; j++) CLOSE(y[j], exp(x[100 + j] - mx) / s, "softmax");
    }
    assert_true(tried >= 1);
    free(x);
    free(y);
}

/* One LSTM row (PyTorch's gate order i, f, g, o) and its backward, in double, as cell_rows.h
 * documents them. */
static void test_lstm_rows(void **state)
{
    (void)state;
    enum { H = 37 };
    sp_rng r;
    sp_rng_seed(&r, 7);
    sp_real x[4 * H], y[4 * H], cp[H], dh[H], dcn[H], sv[4 * H], h[H], c[H], da[4 * H], dc[H];
    sp_real sv2[4 * H], h2[H], c2[H];
    fill(x, 4 * H, &r, -3, 3);
    fill(y, 4 * H, &r, -3, 3);
    fill(cp, H, &r, -2, 2);
    fill(dh, H, &r, -1, 1);
    fill(dcn, H, &r, -1, 1);
    for (int k = 0; k < 3; k++) {
        const sp_vec_kernels *V = sp__vec_table(isas[k]);
        if (!V) continue;
        V->lstm_fwd(x, y, cp, sv, h, c, H);
        V->lstm_bwd(sv, c, dh, dcn, cp, da, dc, H);
        /* in place (x = sv, as the whole-sequence op runs it): the same numbers, bit for bit */
        memcpy(sv2, x, sizeof sv2);
        V->lstm_fwd(sv2, y, cp, sv2, h2, c2, H);
        assert_memory_equal(sv2, sv, sizeof sv);
        assert_memory_equal(h2, h, sizeof h);
        assert_memory_equal(c2, c, sizeof c);
        for (int j = 0; j < H; j++) {
            double i = sig((double)x[j] + y[j]), f = sig((double)x[H + j] + y[H + j]);
            double g = tanh((double)x[2 * H + j] + y[2 * H + j]), o = sig((double)x[3 * H + j] + y[3 * H + j]);
            double cc = f * cp[j] + i * g, tc = tanh(cc), hh = o * tc;
            CLOSE(c[j], cc, "lstm c");
            CLOSE(h[j], hh, "lstm h");
            double dcc = dcn[j] + dh[j] * o * (1 - tc * tc);
            CLOSE(dc[j], dcc, "lstm dc");
            CLOSE(da[j], dcc * g * i * (1 - i), "lstm da_i");
            CLOSE(da[H + j], dcc * cp[j] * f * (1 - f), "lstm da_f");
            CLOSE(da[2 * H + j], dcc * i * (1 - g * g), "lstm da_g");
            CLOSE(da[3 * H + j], dh[j] * tc * o * (1 - o), "lstm da_o");
        }
    }
}

/* One reset-after GRU row and its backward (cell_rows.h), and the tanh RNN's row. */
static void test_gru_rnn_rows(void **state)
{
    (void)state;
    enum { H = 29 };
    sp_rng r;
    sp_rng_seed(&r, 11);
    sp_real x[3 * H], y[3 * H], bn[H], hp[H], dh[H], sv[4 * H], h[H], dx[3 * H], dy[3 * H], s1[H], h1[H];
    fill(x, 3 * H, &r, -3, 3);
    fill(y, 3 * H, &r, -3, 3);
    fill(bn, H, &r, -1, 1);
    fill(hp, H, &r, -1, 1);
    fill(dh, H, &r, -1, 1);
    for (int k = 0; k < 3; k++) {
        const sp_vec_kernels *V = sp__vec_table(isas[k]);
        if (!V) continue;
        V->gru_fwd(x, y, bn, hp, sv, sv + 3 * H, h, H);
        V->gru_bwd(sv, sv + 3 * H, dh, hp, dx, dy, H);
        sp_real g2[3 * H], hn2[H], hg2[H]; /* in place (x = sv): the same numbers, bit for bit */
        memcpy(g2, x, sizeof g2);
        V->gru_fwd(g2, y, bn, hp, g2, hn2, hg2, H);
        assert_memory_equal(g2, sv, sizeof g2);
        assert_memory_equal(hn2, sv + 3 * H, sizeof hn2);
        assert_memory_equal(hg2, h, sizeof hg2);
        V->tanh_add(x, y, s1, h1, H);
        sp_real s2[H], h2[H];
        memcpy(s2, x, sizeof s2);
        V->tanh_add(s2, y, s2, h2, H); /* in place */
        assert_memory_equal(s2, s1, sizeof s2);
        assert_memory_equal(h2, h1, sizeof h2);
        for (int j = 0; j < H; j++) {
            double rr = sig((double)x[j] + y[j]), z = sig((double)x[H + j] + y[H + j]);
            double hn = (double)y[2 * H + j] + bn[j], n = tanh(x[2 * H + j] + rr * hn);
            CLOSE(h[j], (1 - z) * n + z * hp[j], "gru h");
            double dan = dh[j] * (1 - z) * (1 - n * n);
            CLOSE(dx[j], dan * hn * rr * (1 - rr), "gru da_r");
            CLOSE(dx[H + j], dh[j] * (hp[j] - n) * z * (1 - z), "gru da_z");
            CLOSE(dx[2 * H + j], dan, "gru da_n");
            CLOSE(dy[2 * H + j], dan * rr, "gru dy_n");
            CLOSE(dy[j], dx[j], "gru dy_r");
            double t = tanh((double)x[j] + y[j]);
            CLOSE(h1[j], t, "rnn h");
            CLOSE(s1[j], t, "rnn saved");
        }
    }
}

/* Adam's common case (no weight decay, no AMSGrad) over a length that leaves tails. */
static void test_adam(void **state)
{
    (void)state;
    enum { N = 1003 };
    sp_rng r;
    sp_rng_seed(&r, 3);
    static sp_real p0[N], g[N], m0[N], v0[N], p[N], m[N], v[N];
    fill(p0, N, &r, -1, 1);
    fill(g, N, &r, -1, 1);
    fill(m0, N, &r, -0.1, 0.1);
    fill(v0, N, &r, 0, 0.01);
    const double b1 = 0.9, b2 = 0.999, lr = 2e-3, step = 3, eps = 1e-8;
    const double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
    const sp_real k[7] = {(sp_real)b1, (sp_real)(1 - b1), (sp_real)b2, (sp_real)(1 - b2), (sp_real)(lr / bc1),
                          (sp_real)sqrt(bc2), (sp_real)eps};
    for (int t = 0; t < 3; t++) {
        const sp_vec_kernels *V = sp__vec_table(isas[t]);
        if (!V) continue;
        memcpy(p, p0, sizeof p), memcpy(m, m0, sizeof m), memcpy(v, v0, sizeof v);
        V->adam(p, g, m, v, N, k);
        for (int i = 0; i < N; i++) {
            double nm = b1 * m0[i] + (1 - b1) * g[i], nv = b2 * v0[i] + (1 - b2) * g[i] * g[i];
            CLOSE(m[i], nm, "adam m");
            CLOSE(v[i], nv, "adam v");
            CLOSE(p[i], p0[i] - lr / bc1 * nm / (sqrt(nv) / sqrt(bc2) + eps), "adam p");
        }
    }
}

/* The whole-sequence ops' row passes: y = a + b (+ c), y += x, y = a b, y = d (1 - s^2). */
static void test_row_passes(void **state)
{
    (void)state;
    enum { N = 77 };
    sp_rng r;
    sp_rng_seed(&r, 13);
    sp_real a[N], b[N], c[N], y[N];
    fill(a, N, &r, -2, 2), fill(b, N, &r, -2, 2), fill(c, N, &r, -2, 2);
    for (int k = 0; k < 3; k++) {
        const sp_vec_kernels *V = sp__vec_table(isas[k]);
        if (!V) continue;
        V->add3(y, a, b, c, N);
        for (int j = 0; j < N; j++) CLOSE(y[j], (double)a[j] + b[j] + c[j], "add3");
        V->add3(y, a, b, NULL, N);
        for (int j = 0; j < N; j++) CLOSE(y[j], (double)a[j] + b[j], "add3 without c");
        V->acc(y, c, N);
        for (int j = 0; j < N; j++) CLOSE(y[j], (double)a[j] + b[j] + c[j], "acc");
        V->mul(y, a, b, N);
        for (int j = 0; j < N; j++) CLOSE(y[j], (double)a[j] * b[j], "mul");
        V->tanh_grad(y, a, b, N);
        for (int j = 0; j < N; j++) CLOSE(y[j], (double)a[j] * (1 - (double)b[j] * b[j]), "tanh_grad");
        /* the gated scan's rows: z = a, c = b, h = c at entry, dout = a */
        sp_real h[N], g[N], dz[N], dc[N], o[N];
        memcpy(h, c, sizeof h);
        V->gscan_fwd(a, b, h, o, N);
        for (int j = 0; j < N; j++) CLOSE(h[j], c[j] + sig(a[j]) * ((double)b[j] - c[j]), "gscan_fwd");
        for (int j = 0; j < N; j++) assert_true(o[j] == h[j]);
        V->gscan_ab(a, b, y, h, N);
        for (int j = 0; j < N; j++) CLOSE(y[j], 1 - sig(a[j]), "gscan_ab a");
        for (int j = 0; j < N; j++) CLOSE(h[j], sig(a[j]) * b[j], "gscan_ab b");
        for (int j = 0; j < N; j++) g[j] = c[j], dz[j] = 1, dc[j] = 2;
        V->gscan_bwd(a, b, c, a, g, dz, dc, N);
        for (int j = 0; j < N; j++) {
            double s = sig(a[j]), gj = (double)c[j] + a[j];
            CLOSE(dc[j], 2 + gj * s, "gscan_bwd dc");
            CLOSE(dz[j], 1 + gj * ((double)b[j] - c[j]) * s * (1 - s), "gscan_bwd dz");
            CLOSE(g[j], gj * (1 - s), "gscan_bwd g");
        }
    }
}

/* sp__vec() takes the widest table the CPU runs, capped by SPOOL_CPU; sp_info() names it. */
static void test_choice(void **state)
{
    (void)state;
    const char *want = getenv("SPOOL_CPU");
    const sp_vec_kernels *best = sp__vec_table("avx512");
    if (!best) best = sp__vec_table("avx2");
    if (!best) best = sp__vec_table("baseline");
    const sp_vec_kernels *expect = want && sp__vec_table(want) ? sp__vec_table(want) : best;
    assert_ptr_equal(sp__vec(), expect);
    char needle[64];
    snprintf(needle, sizeof needle, "vector %s,", expect->isa);
    assert_non_null(strstr(sp_info(), needle));
    assert_null(sp__vec_table("sse9"));
    assert_null(sp__vec_table(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_activations), cmocka_unit_test(test_lstm_rows), cmocka_unit_test(test_gru_rnn_rows),
        cmocka_unit_test(test_adam), cmocka_unit_test(test_row_passes), cmocka_unit_test(test_choice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
