/* SPDX-License-Identifier: MIT */
/* test_seq_ops.c - the whole-sequence recurrence ops (ops/seq.c: LSTM, GRU, tanh/relu RNN) against
 * finite differences and against the per-step composition a user would write (matmul + lstm_cell,
 * gru_cell, tanh or relu per step).
 *
 * Built twice: linked to the double library it checks gradients by central differences and the
 * composition to 1e-12; linked to the float library (SEQ_F32) it checks the packed AVX-512 path
 * (the seq ops with W_hh packed, several threads) against the composition on BLIS, values and every
 * gradient, and that one and two threads give the same numbers. */
#include "helpers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { LSTM, GRU, RNN_TANH, RNN_RELU };
static const int gates[] = {4, 3, 1, 1};

typedef struct {
    sp_params *ps;
    sp_tensor *xp, *w, *h0, *c0, *bn; /* c0: LSTM only, bn (b_hn): GRU only */
    int kind, T, B, H;
    const int *len;
    int composed;
} seq_case;

static sp_tensor *weights(sp_tape *t, int rows, int cols, int seed)
{
    sp_tensor *w = sp_const(t, rows, cols);
    sp_rng r;
    sp_rng_seed(&r, (uint64_t)seed);
    sp_test_fill(w, &r, -1, 1);
    return w;
}

/* One step of the kind from basic and per-step ops, as a custom cell would write it. */
static void step(sp_tape *t, seq_case *g, sp_tensor *x, sp_tensor **hp, sp_tensor **cp)
{
    int H = g->H;
    if (g->kind == LSTM) {
        sp_tensor *hc = sp_lstm_cell(t, sp_matmul_bias(t, *hp, 0, g->w, 1, x), NULL, *cp);
        *hp = sp_slice_cols(t, hc, 0, H), *cp = sp_slice_cols(t, hc, H, H);
    } else if (g->kind == GRU) {
        *hp = sp_gru_cell(t, x, sp_matmul_ex(t, *hp, 0, g->w, 1), g->bn, *hp);
    } else {
        sp_tensor *a = sp_matmul_bias(t, *hp, 0, g->w, 1, x);
        *hp = g->kind == RNN_TANH ? sp_tanh(t, a) : sp_relu(t, a);
    }
}

/* The per-step composition, one row at a time for its own length (so no masks are involved):
 * outputs laid out like the seq op's ([h of all steps; final h] and, LSTM, the same for c). */
static sp_tensor *composed(sp_tape *t, seq_case *g)
{
    int T = g->T, B = g->B, H = g->H, lstm = g->kind == LSTM;
    sp_tensor **h = sp_tape_alloc(t, 2 * (size_t)(T + 1) * B * sizeof *h), *zero = sp_const(t, 1, H);
    for (int b = 0; b < B; b++) {
        int L = g->len ? g->len[b] : T;
        sp_tensor *hp = sp_slice_rows(t, g->h0, b, 1), *cp = lstm ? sp_slice_rows(t, g->c0, b, 1) : NULL;
        for (int s = 0; s < T; s++) {
            if (s >= L) {
                h[s * B + b] = h[(T + 1) * B + s * B + b] = zero;
                continue;
            }
            step(t, g, sp_slice_rows(t, g->xp, s * B + b, 1), &hp, &cp);
            h[s * B + b] = hp, h[(T + 1) * B + s * B + b] = cp;
        }
        h[T * B + b] = hp, h[(T + 1) * B + T * B + b] = cp;
    }
    return sp_concat_rows(t, h, (lstm ? 2 : 1) * (T + 1) * B);
}

static sp_tensor *forward(sp_tape *t, seq_case *g)
{
    if (g->composed) return composed(t, g);
    switch (g->kind) {
    case LSTM: return sp_lstm_seq(t, g->xp, g->w, g->h0, g->c0, g->T, g->len);
    case GRU: return sp_gru_seq(t, g->xp, g->w, g->bn, g->h0, g->T, g->len);
    default: return sp_rnn_seq(t, g->xp, g->w, g->h0, g->kind == RNN_RELU, g->T, g->len);
    }
}

/* sum(out * random): every output element, the final states included, gets its own gradient */
static sp_tensor *build(sp_tape *t, void *ctx)
{
    seq_case *g = ctx;
    sp_tensor *o = forward(t, g);
    if (!o) return NULL;
    return sp_sum(t, sp_mul(t, o, weights(t, o->rows, o->cols, 7)));
}

static void make(seq_case *g, int kind, int T, int B, int H, const int *len, int seed)
{
    memset(g, 0, sizeof *g);
    g->kind = kind, g->T = T, g->B = B, g->H = H, g->len = len;
    g->ps = sp_params_new();
    g->xp = sp_param(g->ps, "xp", T * B, gates[kind] * H);
    g->w = sp_param(g->ps, "w_hh", gates[kind] * H, H);
    g->h0 = sp_param(g->ps, "h0", B, H);
    if (kind == LSTM) g->c0 = sp_param(g->ps, "c0", B, H);
    if (kind == GRU) g->bn = sp_param(g->ps, "b_hn", 1, H);
    sp_rng r;
    sp_rng_seed(&r, (uint64_t)seed);
    for (size_t k = 0; k < g->ps->numel; k++) g->ps->value[k] = (sp_real)(2 * sp_rng_uniform(&r) - 1);
}

/* Loss and every gradient of one run: returns the loss, gradients copied into grad. */
static double run(seq_case *g, double *grad) { return sp_test_loss_and_grads(g->ps, build, g, grad); }

static void compare_with_composition(seq_case *g, double rtol, double atol)
{
    size_t n = g->ps->numel;
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    g->composed = 0;
    double la = run(g, a);
    g->composed = 1;
    double lb = run(g, b);
    g->composed = 0;
    sp_test_close(la, lb, rtol, atol, "loss of lstm_seq vs its composition");
    for (size_t k = 0; k < n; k++) sp_test_close(a[k], b[k], rtol, atol, "gradient of lstm_seq vs its composition");
    free(a);
    free(b);
}

#ifndef SEQ_F32

static void test_seq_gradcheck(void **state)
{
    (void)state;
    const int len[3] = {5, 2, 0}; /* full, short, empty */
    for (int kind = LSTM; kind <= RNN_RELU; kind++) {
        seq_case g;
        make(&g, kind, 5, 3, 4, len, 1 + kind);
        assert_int_equal(sp_gradcheck(g.ps, build, &g, NULL), 0);
        /* the checker sees a single wrong component of the weight gradient */
        sp_gradcheck_opts bad = {1e-6, 1e-9, 1e-6, (int)(g.w->data - g.ps->value) + 5};
        assert_int_not_equal(sp_gradcheck(g.ps, build, &g, &bad), 0);
        sp_params_free(g.ps);
        make(&g, kind, 6, 2, 3, NULL, 2); /* every row runs T steps */
        assert_int_equal(sp_gradcheck(g.ps, build, &g, NULL), 0);
        sp_params_free(g.ps);
    }
}

static void test_seq_equals_composition(void **state)
{
    (void)state;
    const int len[4] = {1, 6, 3, 6};
    for (int kind = LSTM; kind <= RNN_RELU; kind++) {
        seq_case g;
        make(&g, kind, 6, 4, 5, len, 3);
        compare_with_composition(&g, 1e-12, 1e-12);
        sp_params_free(g.ps);
    }
}

/* Accumulation: a weight reached twice (two lstm_seq ops share W_hh; one input feeds both) gets
 * the sum of both gradients, and a second backward on a fresh tape adds to the first. */
static sp_tensor *twice(sp_tape *t, void *ctx)
{
    seq_case *g = ctx;
    sp_tensor *a = sp_lstm_seq(t, g->xp, g->w, g->h0, g->c0, g->T, NULL);
    sp_tensor *b = sp_lstm_seq(t, sp_tanh(t, g->xp), g->w, g->c0, g->h0, g->T, g->len);
    return sp_add(t, sp_sum(t, sp_mul(t, a, weights(t, a->rows, a->cols, 3))),
                  sp_sum(t, sp_mul(t, b, weights(t, b->rows, b->cols, 4))));
}

static void test_lstm_seq_accumulates(void **state)
{
    (void)state;
    const int len[2] = {2, 4};
    seq_case g;
    make(&g, LSTM, 4, 2, 3, len, 4);
    assert_int_equal(sp_gradcheck(g.ps, twice, &g, NULL), 0);
    sp_test_second_backward_adds(g.ps, twice, &g);
    sp_params_free(g.ps);
}

static void test_lstm_seq_errors(void **state)
{
    (void)state;
    seq_case g;
    make(&g, LSTM, 3, 2, 4, NULL, 5);
    sp_tape *t = sp_tape_new();
    assert_null(sp_lstm_seq(t, g.xp, g.w, g.h0, g.c0, 4, NULL)); /* 4 steps of 2 rows != 6 rows */
    assert_non_null(strstr(sp_tape_errmsg(t), "lstm_seq"));
    sp_tape_reset(t);
    const int bad[2] = {1, 7};
    assert_null(sp_lstm_seq(t, g.xp, g.w, g.h0, g.c0, 3, bad));
    assert_non_null(strstr(sp_tape_errmsg(t), "lengths[1] = 7"));
    sp_tape_reset(t);
    assert_null(sp_lstm_seq(t, g.xp, g.h0, g.h0, g.c0, 3, NULL)); /* w_hh of the wrong shape */
    assert_non_null(strstr(sp_tape_errmsg(t), "w_hh"));
    sp_tape_free(t);
    sp_params_free(g.ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seq_gradcheck),
        cmocka_unit_test(test_seq_equals_composition),
        cmocka_unit_test(test_lstm_seq_accumulates),
        cmocka_unit_test(test_lstm_seq_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* SEQ_F32: the packed float kernels against the BLIS composition */

/* B = 72 rows: the composition's per-step products have more rows than the packed kernel takes,
 * so they run on BLIS, while lstm_seq runs on packed panels: two independent paths. */
static void test_seq_packed_vs_reference(void **state)
{
    (void)state;
    enum { T = 4, B = 72, H = 32 };
    int len[B];
    for (int b = 0; b < B; b++) len[b] = (b * 7) % (T + 1);
    for (int kind = LSTM; kind <= RNN_RELU; kind++) {
        seq_case g;
        make(&g, kind, T, B, H, len, 6);
        for (size_t k = 0; k < g.ps->numel; k++) g.ps->value[k] *= 0.5f; /* keep gates off saturation */
        compare_with_composition(&g, 2e-4, 2e-5);
        size_t n = g.ps->numel;
        double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        sp_set_threads(1);
        double la = run(&g, a);
        sp_set_threads(2);
        double lb = run(&g, b);
        sp_test_close(la, lb, 1e-6, 1e-6, "loss with 1 and 2 threads");
        for (size_t k = 0; k < n; k++) sp_test_close(a[k], b[k], 1e-5, 1e-6, "gradient with 1 and 2 threads");
        free(a);
        free(b);
        sp_params_free(g.ps);
    }
}

/* The per-step fused cells' float kernels (sp_lstm_cell, sp_gru_cell: fast exp/sigmoid/tanh,
 * ops/cell_rows.h) against the same math from basic ops (sigmoid, tanh, mul, add), values and
 * gradients: the reference path for the fused kernels in the float build. */
typedef struct {
    sp_params *ps;
    sp_tensor *x, *h, *c, *bn;
    int gru, composed;
} cell_case;

static sp_tensor *cell_build(sp_tape *t, void *ctx)
{
    cell_case *g = ctx;
    sp_tensor *o;
    if (!g->gru) {
        if (!g->composed) {
            o = sp_lstm_cell(t, g->x, g->h, g->c);
        } else {
            sp_tensor *q[4];
            if (sp_split_cols(t, sp_add(t, g->x, g->h), 4, q) != SP_OK) return NULL;
            sp_tensor *i = sp_sigmoid(t, q[0]), *f = sp_sigmoid(t, q[1]), *gg = sp_tanh(t, q[2]), *oo = sp_sigmoid(t, q[3]);
            sp_tensor *c = sp_add(t, sp_mul(t, f, g->c), sp_mul(t, i, gg));
            sp_tensor *hc[2] = {sp_mul(t, oo, sp_tanh(t, c)), c};
            o = sp_concat(t, hc, 2);
        }
    } else {
        sp_tensor *hprev = sp_slice_cols(t, g->c, 0, g->c->cols);
        if (!g->composed) {
            o = sp_gru_cell(t, g->x, g->h, g->bn, hprev);
        } else {
            sp_tensor *x[3], *h[3];
            if (sp_split_cols(t, g->x, 3, x) != SP_OK || sp_split_cols(t, g->h, 3, h) != SP_OK) return NULL;
            sp_tensor *r = sp_sigmoid(t, sp_add(t, x[0], h[0])), *z = sp_sigmoid(t, sp_add(t, x[1], h[1]));
            sp_tensor *n = sp_tanh(t, sp_add(t, x[2], sp_mul(t, r, sp_add(t, h[2], g->bn))));
            o = sp_add(t, sp_mul(t, sp_one_minus(t, z), n), sp_mul(t, z, hprev));
        }
    }
    return o ? sp_sum(t, sp_mul(t, o, weights(t, o->rows, o->cols, 9))) : NULL;
}

static void test_fused_cells_vs_basic_ops(void **state)
{
    (void)state;
    enum { B = 5, H = 24 };
    for (int gru = 0; gru < 2; gru++) {
        cell_case g = {0};
        g.gru = gru;
        g.ps = sp_params_new();
        g.x = sp_param(g.ps, "x", B, (gru ? 3 : 4) * H);
        g.h = sp_param(g.ps, "h", B, (gru ? 3 : 4) * H);
        g.c = sp_param(g.ps, "c", B, H);
        g.bn = sp_param(g.ps, "bn", 1, H);
        sp_rng r;
        sp_rng_seed(&r, 11);
        for (size_t k = 0; k < g.ps->numel; k++) g.ps->value[k] = (sp_real)(4 * sp_rng_uniform(&r) - 2);
        size_t n = g.ps->numel;
        double *a = malloc(n * sizeof *a), la = 0, lb = 0;
        for (int pass = 0; pass < 2; pass++) {
            g.composed = pass;
            sp_tape *t = sp_tape_new();
            sp_params_zero_grad(g.ps);
            sp_tensor *l = cell_build(t, &g);
            assert_non_null(l);
            assert_int_equal(sp_backward(t, l), SP_OK);
            if (!pass) {
                la = l->data[0];
                for (size_t k = 0; k < n; k++) a[k] = g.ps->grad[k];
            } else {
                lb = l->data[0];
                for (size_t k = 0; k < n; k++) sp_test_close(a[k], g.ps->grad[k], 1e-5, 1e-6, "fused cell gradient vs basic ops");
            }
            sp_tape_free(t);
        }
        sp_test_close(la, lb, 1e-5, 1e-5, "fused cell value vs basic ops");
        free(a);
        sp_params_free(g.ps);
    }
}

/* Called from inside a host's parallel region (nested parallelism off, so spool's team has one
 * thread although it asks for two): every row is still computed. */
static void test_seq_inside_host_parallel_region(void **state)
{
    (void)state;
    enum { T = 3, B = 32, H = 64 }; /* B H G above the size where a second thread is taken */
    seq_case g;
    make(&g, LSTM, T, B, H, NULL, 8);
    size_t n = g.ps->numel;
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), lb = 0;
    sp_set_threads(2);
#pragma omp parallel num_threads(2)
    {
#pragma omp single
        lb = run(&g, b); /* first, on fresh memory: rows left undone would show */
    }
    double la = run(&g, a);
    sp_test_close(la, lb, 1e-6, 1e-6, "loss inside a host region");
    for (size_t k = 0; k < n; k++) sp_test_close(a[k], b[k], 1e-5, 1e-6, "gradient inside a host region");
    free(a);
    free(b);
    sp_params_free(g.ps);
}

int main(void)
{
    setenv("SPOOL_LOAD_AWARE", "0", 1); /* ask for 2 threads even on a busy machine (read at first use) */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fused_cells_vs_basic_ops),
        cmocka_unit_test(test_seq_inside_host_parallel_region),
        cmocka_unit_test(test_seq_packed_vs_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
