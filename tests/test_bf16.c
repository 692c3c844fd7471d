/* SPDX-License-Identifier: MIT */
/* test_bf16.c - float build: mixed-precision products (ops/bf16.c, SP_PREC_BF16).
 *  - rounding to bf16 at its edges (ties to even, carry into the exponent, Inf, NaN, subnormals);
 *  - every micro-kernel this CPU runs (portable C, AVX-512 FMA, vdpbf16ps) against a double sum of
 *    the same rounded operands, over shapes around the tile edges (8 rows, 32- and 16-column
 *    strips, odd K), with the bound of an fp32 sum: |c - ref| <= 2 K u sum |a b| (u = 2^-24);
 *  - the whole product sp__gemm_bf16 in all four transposes, beta 0 and 1, 1 and 2 threads,
 *    K past its 512-row blocks, leaving C's padding alone;
 *  - the matmul op and the whole-sequence recurrences in bf16 mode against the fp32 mode: forward
 *    values and every gradient within a stated tolerance (bf16 keeps 8 significant bits: 2^-8
 *    relative per operand), and the precision recorded by the op, not read at backward time.
 */
#include "helpers.h"
#include "../ops/bf16.h"
#include "../ops/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float bits_f(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static void test_round(void **state)
{
    (void)state;
    assert_int_equal(sp__bf16(1.0f), 0x3f80);
    assert_int_equal(sp__bf16(-2.0f), 0xc000);
    assert_int_equal(sp__bf16(bits_f(0x3f808000u)), 0x3f80); /* tie, even below: stays */
    assert_int_equal(sp__bf16(bits_f(0x3f818000u)), 0x3f82); /* tie, odd below: up to even */
    assert_int_equal(sp__bf16(bits_f(0x3f808001u)), 0x3f81); /* just above the tie: up */
    assert_int_equal(sp__bf16(bits_f(0x3f807fffu)), 0x3f80); /* just below: down */
    assert_int_equal(sp__bf16(bits_f(0x3fffffffu)), 0x4000); /* carries into the exponent */
    assert_int_equal(sp__bf16(bits_f(0x7f7fffffu)), 0x7f80); /* FLT_MAX rounds to Inf */
    assert_int_equal(sp__bf16(INFINITY), 0x7f80);
    assert_int_equal(sp__bf16(-INFINITY), 0xff80);
    assert_true(isnan(sp__bf16_round(NAN)));
    assert_true(isnan(sp__bf16_float(sp__bf16(bits_f(0x7f800001u))))); /* a NaN whose payload is only low bits */
    assert_int_equal(sp__bf16(bits_f(0x00400000u)), 0x0000);           /* subnormal: +0 */
    assert_int_equal(sp__bf16(bits_f(0x80000001u)), 0x8000);           /* -subnormal: -0 */
    assert_int_equal(sp__bf16(bits_f(0x00800000u)), 0x0080);           /* FLT_MIN is kept */
    for (int i = 0; i < 1000; i++) { /* within half an ulp of bf16: 2^-8 relative, its unit roundoff */
        float x = (float)((i - 500) * 0.37 + 1e-3 * i * i);
        float y = sp__bf16_round(x);
        assert_true(fabsf(y - x) <= fabsf(x) * 0x1p-8f);
    }
}

/* the packing's conversions (vectorised where the CPU allows) give sp__bf16's bits, specials too */
static void test_pack_bits(void **state)
{
    (void)state;
    const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x3fffffffu, 0x7f7fffffu, 0x7f800000u, 0xff800000u,
                                0x7fc00000u, 0x7f800001u, 0xffffffffu, 0x00400000u, 0x80000001u, 0x00800000u, 0, 0x80000000u};
    sp_rng r;
    sp_rng_seed(&r, 2);
    for (int trans = 0; trans < 2; trans++) {
        const int K = 37, N = 45; /* odd K (a half pair), a partial panel */
        float *W = malloc(sizeof(float) * K * N);
        for (int i = 0; i < K * N; i++) W[i] = i % 5 == 0 ? bits_f(special[i / 5 % 14]) : (float)(sp_rng_uniform(&r) * 8 - 4);
        uint16_t *Bp = aligned_alloc(64, (sp__bf16_panels_size(K, N) * 2 + 63) / 64 * 64);
        sp__bf16_pack_panels(W, trans ? K : N, trans, K, N, Bp);
        const int K2 = (K + 1) / 2;
        for (int k = 0; k < 2 * K2; k++)
            for (int n = 0; n < 64; n++) {
                uint16_t want = k < K && n < N ? sp__bf16(trans ? W[n * K + k] : W[k * N + n]) : 0;
                assert_int_equal(Bp[((size_t)(n / 32) * K2 * 32 + (k / 2) * 32 + n % 32) * 2 + k % 2], want);
            }
        free(W), free(Bp);
    }
}

/* every conversion set the CPU runs gives sp__bf16's bits, at every length up to two vectors */
static void test_convert_sets(void **state)
{
    (void)state;
    const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x3fffffffu, 0x7f7fffffu, 0x7f800000u, 0xff800000u,
                                0x7fc00000u, 0x7f800001u, 0xffffffffu, 0x00400000u, 0x80000001u, 0x00800000u, 0, 0x80000000u};
    float x0[70], x1[70];
    sp_rng r;
    sp_rng_seed(&r, 9);
    for (int i = 0; i < 70; i++) {
        x0[i] = i % 3 == 0 ? bits_f(special[i / 3 % 14]) : (float)(sp_rng_uniform(&r) * 10 - 5);
        x1[i] = i % 4 == 1 ? bits_f(special[i % 14]) : (float)(sp_rng_uniform(&r) * 1e-3);
    }
    int sets = 0;
    for (int which = 0; which < 3; which++)
        for (int n = 1; n <= 70; n++) {
            uint32_t p[40] = {0}, q[72] = {0};
            if (!sp__bf16_convert_with(which, x0, x1, n, p, q)) break;
            sets += n == 1;
            for (int j = 0; 2 * j < n; j++)
                assert_int_equal(p[j], sp__bf16(x0[2 * j]) | (2 * j + 1 < n ? (uint32_t)sp__bf16(x0[2 * j + 1]) << 16 : 0));
            for (int i = 0; i < n; i++) assert_int_equal(q[i], sp__bf16(x0[i]) | (uint32_t)sp__bf16(x1[i]) << 16);
            assert_int_equal(p[(n + 1) / 2], 0); /* nothing written past the pairs */
            assert_int_equal(q[n], 0);
        }
    assert_true(sets >= 1);
}

static float *rnd(sp_rng *r, size_t n)
{
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = (float)(2 * sp_rng_uniform(r) - 1);
    return x;
}

/* op(A)(m, k) and op(B)(k, n) as stored */
static float at(const float *X, int ld, int t, int i, int j) { return t ? X[(size_t)j * ld + i] : X[(size_t)i * ld + j]; }

/* C (size M x ldc, the first N columns the product) against the double sum of the rounded
 * operands, plus beta C0 */
static void check_product(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                          const float *C0, float beta, const float *C, int ldc, const char *what)
{
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            double s = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double p = (double)sp__bf16_round(at(A, lda, ta, m, k)) * sp__bf16_round(at(B, ldb, tb, k, n));
                s += p, mag += fabs(p);
            }
            double ref = s + (beta != 0 ? (double)C0[(size_t)m * ldc + n] : 0);
            double got = C[(size_t)m * ldc + n], tol = 2.0 * (K + 2) * 0x1p-24 * (mag + fabs(ref)) + 1e-30;
            if (fabs(got - ref) > tol) {
                fprintf(stderr, "%s: M=%d N=%d K=%d ta=%d tb=%d: C[%d,%d] = %.9g, ref %.9g (tol %.3g)\n", what, M, N, K,
                        ta, tb, m, n, got, ref, tol);
                fail();
            }
        }
        for (int n = N; n < ldc; n++) assert_true(C[(size_t)m * ldc + n] == C0[(size_t)m * ldc + n]); /* untouched */
    }
}

static void test_kernels(void **state)
{
    (void)state;
    const char *names[4];
    int nk = sp__bf16_kernels(names, 4);
    assert_true(nk >= 1);
    const int Ms[] = {1, 7, 8, 9, 17}, Ns[] = {1, 16, 17, 31, 32, 33, 100}, Ks[] = {1, 2, 3, 16, 31, 64, 257};
    sp_rng r;
    sp_rng_seed(&r, 7);
    for (int kk = 0; kk < nk; kk++)
        for (int a = 0; a < 5; a++)
            for (int b = 0; b < 7; b++)
                for (int c = 0; c < 7; c++)
                    for (int acc = 0; acc < 2; acc++) {
                        int M = Ms[a], N = Ns[b], K = Ks[c], lda = K + 3, ldc = N + 2;
                        float *A = rnd(&r, (size_t)M * lda), *W = rnd(&r, (size_t)K * N), *C = rnd(&r, (size_t)M * ldc);
                        float *C0 = malloc((size_t)M * ldc * sizeof(float));
                        memcpy(C0, C, (size_t)M * ldc * sizeof(float));
                        uint16_t *Bp = aligned_alloc(64, (sp__bf16_panels_size(K, N) * 2 + 63) / 64 * 64);
                        uint32_t *ab = malloc(sp__bf16_abuf_size(M, K) * 4);
                        int trans = (a + b + c) & 1; /* op(W) = W or W^T as packed */
                        float *Wt = malloc((size_t)K * N * sizeof(float));
                        for (int k = 0; k < K; k++)
                            for (int n = 0; n < N; n++) Wt[(size_t)n * K + k] = W[(size_t)k * N + n];
                        sp__bf16_pack_panels(trans ? Wt : W, trans ? K : N, trans, K, N, Bp);
                        assert_true(sp__bf16_kernel_gemm(kk, M, N, K, A, lda, Bp, C, ldc, acc, ab));
                        check_product(0, 0, M, N, K, A, lda, W, N, C0, (float)acc, C, ldc, names[kk]);
                        free(A), free(W), free(Wt), free(C), free(C0), free(Bp), free(ab);
                    }
    assert_false(sp__bf16_kernel_gemm(nk, 1, 1, 1, NULL, 1, NULL, NULL, 1, 0, NULL)); /* one it cannot run */
    /* one row (streaming's own kernel) has the bits of the same row in a batch: the stream then
     * computes what the batch does */
    for (int kk = 0; kk < nk; kk++)
        for (int N = 1; N <= 300; N += 37) {
            const int K = 45;
            float *A = rnd(&r, 3 * K), *W = rnd(&r, (size_t)K * N), *C1 = calloc(N, 4), *C3 = calloc(3 * (size_t)N, 4);
            uint16_t *Bp = aligned_alloc(64, (sp__bf16_panels_size(K, N) * 2 + 63) / 64 * 64);
            uint32_t *ab = malloc(sp__bf16_abuf_size(3, K) * 4);
            sp__bf16_pack_panels(W, N, 0, K, N, Bp);
            assert_true(sp__bf16_kernel_gemm(kk, 1, N, K, A, K, Bp, C1, N, 0, ab));
            assert_true(sp__bf16_kernel_gemm(kk, 3, N, K, A, K, Bp, C3, N, 0, ab));
            assert_memory_equal(C1, C3, (size_t)N * 4);
            free(A), free(W), free(C1), free(C3), free(Bp), free(ab);
        }
}

static void test_gemm(void **state)
{
    (void)state;
    sp_rng r;
    sp_rng_seed(&r, 11);
    const int shapes[][3] = {{1, 1, 1}, {9, 33, 5}, {64, 100, 300}, {130, 40, 1100}, {17, 257, 513}};
    for (int s = 0; s < 5; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int beta = 0; beta < 2; beta++)
                    for (int th = 1; th <= 2; th++) {
                        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                        int lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 2, ldc = N + 3;
                        float *A = rnd(&r, (size_t)(ta ? K : M) * lda), *B = rnd(&r, (size_t)(tb ? N : K) * ldb);
                        float *C = rnd(&r, (size_t)M * ldc), *C0 = malloc((size_t)M * ldc * sizeof(float));
                        memcpy(C0, C, (size_t)M * ldc * sizeof(float));
                        void *scratch = malloc(sp__gemm_bf16_scratch(M, N, K, th));
                        sp__gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, (float)beta, C, ldc, th, scratch);
                        check_product(ta, tb, M, N, K, A, lda, B, ldb, C0, (float)beta, C, ldc, "sp__gemm_bf16");
                        free(A), free(B), free(C), free(C0), free(scratch);
                    }
}

/* ---------------------------------------------------------------- ops in bf16 vs fp32 */

/* |x - y| <= tol (max |y| over the set + 1e-3): gradients in bf16 differ from fp32 by a few
 * bf16 roundings relative to their scale */
static void close_set(const float *x, const float *y, size_t n, double tol, const char *what)
{
    double scale = 1e-3, worst = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(y[i]));
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)x[i] - y[i]));
    if (!(worst <= tol * scale)) {
        fprintf(stderr, "%s: bf16 differs from fp32 by %.3g (scale %.3g, tolerance %.3g)\n", what, worst, scale, tol * scale);
        fail();
    }
}

typedef struct {
    sp_params *ps;
    sp_tensor *w_ih, *w_hh, *b, *w_out;
    int B, T, I, H, G;
} seqnet;

/* loss = sum(head(seq(x W_ih^T + b)) * fixed weights): every product of a recurrent model */
static float run_seq(seqnet *n, int kind, int prec, const float *x, float *grads, float *xgrad)
{
    sp_tape *t = sp_tape_new();
    assert_int_equal(sp_tape_set_precision(t, prec), SP_OK);
    sp_params_zero_grad(n->ps);
    sp_tensor *X = sp_leaf(t, n->T * n->B, n->I);
    memcpy(X->data, x, sizeof(float) * (size_t)n->T * n->B * n->I);
    sp_tensor *xp = sp_matmul_bias(t, X, 0, n->w_ih, 1, n->b);
    sp_tensor *h0 = sp_const(t, n->B, n->H), *c0 = sp_const(t, n->B, n->H);
    for (int i = 0; i < n->B * n->H; i++) h0->data[i] = 0.1f * (float)((i % 7) - 3), c0->data[i] = 0.05f * (float)((i % 5) - 2);
    int lengths[16];
    for (int b = 0; b < n->B; b++) lengths[b] = n->T - (b % 3);
    sp_tensor *hs = kind == 0 ? sp_lstm_seq(t, xp, n->w_hh, h0, c0, n->T, lengths)
                  : kind == 1 ? sp_gru_seq(t, xp, n->w_hh, NULL, h0, n->T, lengths)
                              : sp_rnn_seq(t, xp, n->w_hh, h0, 0, n->T, lengths);
    assert_non_null(hs);
    sp_tensor *h = sp_slice_rows(t, hs, 0, n->T * n->B);
    sp_tensor *y = sp_matmul_ex(t, h, 0, n->w_out, 1);
    sp_tensor *wt = sp_const(t, y->rows, y->cols);
    for (int i = 0; i < y->rows * y->cols; i++) wt->data[i] = (float)((i * 37 % 11) - 5) / 5.0f;
    sp_tensor *loss = sp_sum(t, sp_mul(t, y, wt));
    assert_non_null(loss);
    sp_tape_set_precision(t, SP_PREC_FP32); /* backward follows what each record was made with */
    assert_int_equal(sp_backward(t, loss), SP_OK);
    float L = loss->data[0];
    memcpy(grads, n->ps->grad, n->ps->numel * sizeof(float));
    memcpy(xgrad, X->grad, sizeof(float) * (size_t)n->T * n->B * n->I);
    sp_tape_free(t);
    return L;
}

static void test_seq_ops(void **state)
{
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        seqnet n = {.B = 12, .T = 9, .I = 20, .H = 40};
        n.G = (kind == 0 ? 4 : kind == 1 ? 3 : 1) * n.H;
        n.ps = sp_params_new();
        n.w_ih = sp_param(n.ps, "w_ih", n.G, n.I), n.w_hh = sp_param(n.ps, "w_hh", n.G, n.H);
        n.b = sp_param(n.ps, "b", 1, n.G), n.w_out = sp_param(n.ps, "w_out", 24, n.H);
        sp_rng r;
        sp_rng_seed(&r, 3 + kind);
        for (size_t i = 0; i < n.ps->numel; i++) n.ps->value[i] = (float)(0.6 * (2 * sp_rng_uniform(&r) - 1));
        float *x = rnd(&r, (size_t)n.T * n.B * n.I);
        size_t nx = (size_t)n.T * n.B * n.I;
        float *g32 = malloc(n.ps->numel * 4), *g16 = malloc(n.ps->numel * 4), *x32 = malloc(nx * 4), *x16 = malloc(nx * 4);
        float L32 = run_seq(&n, kind, SP_PREC_FP32, x, g32, x32);
        float L16 = run_seq(&n, kind, SP_PREC_BF16, x, g16, x16);
        char what[64];
        snprintf(what, sizeof what, "kind %d: loss", kind);
        close_set(&L16, &L32, 1, 2e-2, what);
        const char *names[] = {"w_ih", "w_hh", "b", "w_out"};
        for (int p = 0; p < 4; p++) {
            sp_tensor *v = sp_params_find(n.ps, names[p]);
            snprintf(what, sizeof what, "kind %d: d%s", kind, names[p]);
            close_set(g16 + (v->data - n.ps->value), g32 + (v->data - n.ps->value), (size_t)v->rows * v->cols, 3e-2, what);
        }
        snprintf(what, sizeof what, "kind %d: dx", kind);
        close_set(x16, x32, nx, 3e-2, what);
        /* and bf16 really rounds: the loss is not the fp32 one to the last bit */
        assert_true(L16 != L32);
        free(x), free(g32), free(g16), free(x32), free(x16);
        sp_params_free(n.ps);
    }
}

/* a product of a custom cell's step (few rows: the packed path) and a large one (the general
 * path), forward and both gradients, against the double product of rounded operands */
static void test_matmul_op(void **state)
{
    (void)state;
    const int Ms[] = {3, 200};
    for (int c = 0; c < 2; c++) {
        int M = Ms[c], K = 48, N = 70;
        sp_params *ps = sp_params_new();
        sp_tensor *W = sp_param(ps, "W", N, K);
        sp_rng r;
        sp_rng_seed(&r, 5);
        for (size_t i = 0; i < ps->numel; i++) ps->value[i] = (float)(2 * sp_rng_uniform(&r) - 1);
        sp_tape *t = sp_tape_new();
        assert_int_equal(sp_tape_set_precision(t, SP_PREC_BF16), SP_OK);
        assert_int_equal(sp_tape_precision(t), SP_PREC_BF16);
        sp_params_zero_grad(ps);
        sp_tensor *a = sp_leaf(t, M, K);
        for (int i = 0; i < M * K; i++) a->data[i] = (float)(2 * sp_rng_uniform(&r) - 1);
        sp_tensor *y = sp_matmul_ex(t, a, 0, W, 1);
        sp_tensor *g = sp_const(t, M, N);
        for (int i = 0; i < M * N; i++) g->data[i] = (float)(2 * sp_rng_uniform(&r) - 1);
        sp_tensor *loss = sp_sum(t, sp_mul(t, y, g));
        assert_int_equal(sp_backward(t, loss), SP_OK);
        float *zero = calloc((size_t)(M + N) * (K + N), sizeof(float));
        check_product(0, 1, M, N, K, a->data, K, W->data, K, zero, 0, y->data, N, "matmul forward");
        check_product(0, 0, M, K, N, g->data, N, W->data, K, zero, 0, a->grad, K, "matmul dA");
        check_product(1, 0, N, K, M, g->data, N, a->data, K, zero, 0, W->grad, K, "matmul dW");
        /* accumulation: the same step again on the reset tape, gradients not zeroed, adds the same
         * dW again; and an input used by two products gets the sum of both (the bf16 products add
         * into dA and dW, never overwrite them) */
        float *dw1 = malloc(sizeof(float) * N * K), *da1 = malloc(sizeof(float) * M * K), *av = malloc(sizeof(float) * M * K);
        float *gv = malloc(sizeof(float) * M * N);
        memcpy(dw1, W->grad, sizeof(float) * N * K), memcpy(da1, a->grad, sizeof(float) * M * K);
        memcpy(av, a->data, sizeof(float) * M * K), memcpy(gv, g->data, sizeof(float) * M * N);
        sp_tape_reset(t);
        a = sp_leaf(t, M, K);
        memcpy(a->data, av, sizeof(float) * M * K);
        g = sp_const(t, M, N);
        memcpy(g->data, gv, sizeof(float) * M * N);
        sp_tensor *y2 = sp_add(t, sp_matmul_ex(t, a, 0, W, 1), sp_matmul_ex(t, a, 0, W, 1)); /* two paths */
        assert_int_equal(sp_backward(t, sp_sum(t, sp_mul(t, y2, g))), SP_OK);
        for (int i = 0; i < N * K; i++) /* the two paths' dW are summed as one stacked product: its own order */
            assert_true(fabsf(W->grad[i] - 3 * dw1[i]) <= 1e-5f * (fabsf(3 * dw1[i]) + 1));
        for (int i = 0; i < M * K; i++) assert_true(a->grad[i] == 2 * da1[i]);
        free(dw1), free(da1), free(av), free(gv);
        free(zero);
        sp_tape_free(t);
        sp_params_free(ps);
    }
}

/* attention's own products: forward against the double sum of rounded factors, gradients
 * against the fp32 mode within the tolerance of the other products */
static float run_attn(int prec, int kind, float *grads, float *out)
{
    const int B = 3, S = 5, D = 20;
    sp_rng r;
    sp_rng_seed(&r, 17);
    sp_tape *t = sp_tape_new();
    assert_int_equal(sp_tape_set_precision(t, prec), SP_OK);
    sp_tensor *q = sp_leaf(t, B, D), *k = sp_leaf(t, S * B, D), *v = sp_leaf(t, 1, D);
    for (int i = 0; i < B * D; i++) q->data[i] = (float)(2 * sp_rng_uniform(&r) - 1);
    for (int i = 0; i < S * B * D; i++) k->data[i] = (float)(2 * sp_rng_uniform(&r) - 1);
    for (int i = 0; i < D; i++) v->data[i] = (float)(2 * sp_rng_uniform(&r) - 1);
    sp_tensor *e = kind == 0 ? sp_attn_dot(t, q, k, S) : sp_attn_additive(t, q, k, v, S);
    sp_tensor *c = sp_attn_context(t, sp_softmax(t, e), k, S);
    sp_tensor *w = sp_const(t, B, D);
    for (int i = 0; i < B * D; i++) w->data[i] = (float)((i % 7) - 3);
    sp_tensor *loss = sp_sum(t, sp_mul(t, c, w));
    assert_int_equal(sp_backward(t, loss), SP_OK);
    memcpy(out, e->data, sizeof(float) * B * S);
    memcpy(grads, q->grad, sizeof(float) * B * D);
    memcpy(grads + B * D, k->grad, sizeof(float) * S * B * D);
    if (kind == 0) /* the scores are bf16 products: the double sum of the rounded factors, fp32's bound */
        for (int b = 0; b < B; b++)
            for (int s = 0; s < S; s++) {
                double ref = 0, mag = 0;
                for (int d = 0; d < D; d++) {
                    double p = prec == SP_PREC_BF16 ? (double)sp__bf16_round(q->data[b * D + d]) * sp__bf16_round(k->data[(s * B + b) * D + d])
                                                    : (double)q->data[b * D + d] * k->data[(s * B + b) * D + d];
                    ref += p, mag += fabs(p);
                }
                assert_true(fabs(e->data[b * S + s] - ref) <= 2.0 * (D + 2) * 0x1p-24 * mag);
            }
    float L = loss->data[0];
    sp_tape_free(t);
    return L;
}

static void test_attention(void **state)
{
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        float g32[3 * 20 + 15 * 20], g16[3 * 20 + 15 * 20], e32[15], e16[15];
        float L32 = run_attn(SP_PREC_FP32, kind, g32, e32), L16 = run_attn(SP_PREC_BF16, kind, g16, e16);
        close_set(e16, e32, 15, 2e-2, kind ? "additive scores" : "dot scores");
        close_set(&L16, &L32, 1, 2e-2, "attention loss");
        close_set(g16, g32, sizeof g32 / sizeof g32[0], 3e-2, "attention gradients");
        assert_true(memcmp(e16, e32, sizeof e16) != 0); /* really rounded */
    }
}

/* the small products of a custom cell's steps (the cached packed weight: AMX where there is one),
 * with a batch that shrinks and grows within one tape epoch and with an addend (+= into C) */
static void test_packed_rows(void **state)
{
    (void)state;
    const int K = 48, N = 70, Ms[] = {5, 3, 7, 3, 64, 1};
    sp_params *ps = sp_params_new();
    sp_tensor *W = sp_param(ps, "W", N, K), *b = sp_param(ps, "b", 1, N);
    sp_rng r;
    sp_rng_seed(&r, 23);
    for (size_t i = 0; i < ps->numel; i++) ps->value[i] = (float)(2 * sp_rng_uniform(&r) - 1);
    sp_tape *t = sp_tape_new();
    assert_int_equal(sp_tape_set_precision(t, SP_PREC_BF16), SP_OK);
    for (int step = 0; step < 2; step++) { /* the second epoch re-packs from the same cache */
        sp_tape_reset(t);
        for (int k = 0; k < 6; k++) {
            int M = Ms[k];
            sp_tensor *a = sp_const(t, M, K);
            for (int i = 0; i < M * K; i++) a->data[i] = (float)(2 * sp_rng_uniform(&r) - 1);
            sp_tensor *y = k % 2 ? sp_matmul_bias(t, a, 0, W, 1, b) : sp_matmul_ex(t, a, 0, W, 1);
            assert_non_null(y);
            float *c0 = calloc((size_t)M * N, sizeof(float));
            for (int i = 0; i < M && k % 2; i++) memcpy(c0 + (size_t)i * N, b->data, sizeof(float) * N);
            check_product(0, 1, M, N, K, a->data, K, W->data, K, c0, (float)(k % 2), y->data, N, "packed rows");
            free(c0);
        }
    }
    sp_tape_free(t);
    sp_params_free(ps);
}

static void test_api(void **state)
{
    (void)state;
    sp_precision p = SP_PREC_BF16;
    assert_int_equal(sp_precision_parse("fp32", &p), SP_OK);
    assert_int_equal(p, SP_PREC_FP32);
    assert_int_equal(sp_precision_parse("bf16", &p), SP_OK);
    assert_int_equal(p, SP_PREC_BF16);
    assert_int_equal(sp_precision_parse("fp16", &p), SP_ERR_ARG);
    assert_non_null(strstr(sp_last_error(), "fp16"));
    assert_string_equal(sp_precision_name(SP_PREC_BF16), "bf16");
    assert_int_equal(sp_tape_set_precision(NULL, SP_PREC_BF16), SP_ERR_ARG);
    sp_tape *t = sp_tape_new();
    assert_int_equal(sp_tape_precision(t), SP_PREC_FP32); /* the default */
    assert_int_equal(sp_tape_set_precision(t, (sp_precision)7), SP_ERR_ARG);
    assert_int_equal(sp_tape_set_precision(t, SP_PREC_BF16), SP_OK);
    sp_tape_reset(t);
    assert_int_equal(sp_tape_precision(t), SP_PREC_BF16); /* a setting, kept across resets */
    sp_tape_free(t);
    assert_non_null(strstr(sp_info(), "bf16"));
}

int main(void)
{
    printf("# %s\n", sp_info()); /* which product kernels ran (SPOOL_CPU picks them) */
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_round), cmocka_unit_test(test_pack_bits), cmocka_unit_test(test_convert_sets), cmocka_unit_test(test_kernels),
                                       cmocka_unit_test(test_gemm), cmocka_unit_test(test_matmul_op),
                                       cmocka_unit_test(test_seq_ops), cmocka_unit_test(test_attention),
                                       cmocka_unit_test(test_packed_rows),
                                       cmocka_unit_test(test_api)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
