/* SPDX-License-Identifier: MIT */
/* test_scan.c - sp_linear_scan and sp_gated_scan (ops/scan.c) in the double build: against the
 * step-by-step composition of sp_sigmoid, sp_one_minus, sp_mul and sp_add a user would write (values and every gradient to 1e-12, with
 * a row of length 0 and a weight reached by two paths), accumulation over two backward calls,
 * one thread against two and three on the column split and on the time chunks (batch 1, small H), its
 * argument errors, and sp_softplus's values in both tails. Finite differences are in test_ops_grad.c. */
#include "helpers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    sp_params *ps;
    sp_tensor *w, *h0; /* w [I, 2H]: a = sigmoid(x w[:, :H]), b = x w[:, H:] (w reached twice) */
    int T, B, I, H;
    const int *len;
    int composed;
    int gated;      /* sp_gated_scan(z, c): a = 1 - sigmoid(z), b = sigmoid(z) c */
    double a_shift; /* added before the sigmoid: a near 1 keeps long chunks' products away from 0 */
} scan_case;

/* The same [(T+1)B, H] result from per-step ops: state kept and output 0 at padded steps. */
static sp_tensor *composition(sp_tape *t, const scan_case *g, sp_tensor *a, sp_tensor *b)
{
    int T = g->T, B = g->B, H = g->H;
    sp_tensor **ys = sp_tape_alloc(t, (size_t)(T + 1) * sizeof *ys), *h = g->h0;
    for (int s = 0; s < T; s++) {
        sp_tensor *fresh = sp_add(t, sp_mul(t, sp_slice_rows(t, a, s * B, B), h), sp_slice_rows(t, b, s * B, B));
        sp_tensor *m = sp_const(t, B, 1);
        for (int k = 0; k < B; k++) m->data[k] = !g->len || s < g->len[k];
        ys[s] = sp_mul(t, fresh, m);
        h = sp_add(t, ys[s], sp_mul(t, h, sp_one_minus(t, m)));
    }
    ys[T] = h;
    (void)H;
    return sp_concat_rows(t, ys, T + 1);
}

static sp_tensor *build(sp_tape *t, void *ctx)
{
    scan_case *g = ctx;
    int N = g->T * g->B, H = g->H;
    sp_tensor *x = sp_test_const(t, N, g->I, 11), *p = sp_matmul(t, x, g->w);
    sp_tensor *shift = sp_const(t, 1, 1);
    if (!shift) return NULL;
    shift->data[0] = (sp_real)g->a_shift;
    sp_tensor *y, *a, *b = sp_slice_cols(t, p, H, H);
    if (g->gated) { /* z = -(x w + shift): a = 1 - sigmoid(z) = sigmoid(x w + shift) as below */
        sp_tensor *z = sp_scale(t, sp_add(t, sp_slice_cols(t, p, 0, H), shift), -1);
        if (g->composed) {
            sp_tensor *s = sp_sigmoid(t, z);
            y = composition(t, g, sp_one_minus(t, s), sp_mul(t, s, b));
        } else {
            y = sp_gated_scan(t, z, b, g->h0, g->T, g->len);
        }
    } else {
        a = sp_sigmoid(t, sp_add(t, sp_slice_cols(t, p, 0, H), shift));
        y = g->composed ? composition(t, g, a, b) : sp_linear_scan(t, a, b, g->h0, g->T, g->len);
    }
    if (!y) return NULL;
    return sp_sum(t, sp_mul(t, y, sp_test_const(t, y->rows, y->cols, 3)));
}

static void make(scan_case *g, int T, int B, int I, int H, const int *len, int seed)
{
    memset(g, 0, sizeof *g);
    g->T = T, g->B = B, g->I = I, g->H = H, g->len = len;
    g->ps = sp_params_new();
    g->w = sp_param(g->ps, "w", I, 2 * H);
    g->h0 = sp_param(g->ps, "h0", B, H);
    assert_non_null(g->h0);
    sp_rng r;
    sp_rng_seed(&r, (uint64_t)seed);
    for (size_t k = 0; k < g->ps->numel; k++) g->ps->value[k] = (sp_real)(2 * sp_rng_uniform(&r) - 1);
}

static double run(scan_case *g, double *grad) { return sp_test_loss_and_grads(g->ps, build, g, grad); }

static void test_scan_equals_composition(void **state)
{
    (void)state;
    const int len[3] = {5, 2, 0}; /* full, short, empty: h0 is the empty row's final state */
    for (int variant = 0; variant < 4; variant++) { /* lengths or none, linear or gated */
        scan_case g;
        make(&g, 5, 3, 4, 70, variant & 1 ? NULL : len, 7); /* H = 70: two strips, the second of 6 */
        g.gated = variant >> 1;
        size_t n = g.ps->numel;
        double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        double la = run(&g, a);
        g.composed = 1;
        double lb = run(&g, b);
        sp_test_close(la, lb, 1e-12, 1e-12, "loss of linear_scan vs its composition");
        for (size_t k = 0; k < n; k++) sp_test_close(a[k], b[k], 1e-12, 1e-12, "gradient of linear_scan vs composition");
        /* finite differences through the same loss (the weight reached by two paths) */
        g.composed = 0;
        sp_params_free(g.ps);
        make(&g, 4, 2, 3, 3, variant & 1 ? NULL : (int[2]){4, 0}, 8);
        g.gated = variant >> 1;
        assert_int_equal(sp_gradcheck(g.ps, build, &g, NULL), 0);
        sp_params_free(g.ps);
        free(a);
        free(b);
    }
}

static void test_scan_second_backward_adds(void **state)
{
    (void)state;
    const int len[2] = {3, 1};
    for (int gated = 0; gated < 2; gated++) {
        scan_case g;
        make(&g, 3, 2, 3, 4, len, 9);
        g.gated = gated;
        sp_test_second_backward_adds(g.ps, build, &g);
        sp_params_free(g.ps);
    }
}

/* Big enough for threads (T B H >= SP_PAR_MIN_ELEMS): B = 1, H = 8 is one strip, so two threads cut
 * time into chunks; B = 4, H = 130 splits the columns. Same numbers to rounding either way, and
 * the chunked result still equals the composition. */
static void test_scan_one_and_two_threads(void **state)
{
    (void)state;
    const int shapes[2][3] = {{4500, 1, 8}, {70, 4, 130}}, lens[2][4] = {{3001}, {70, 13, 0, 69}};
    for (int v = 0; v < 4; v++) { /* both shapes, linear and gated */
        int s = v & 1;
        scan_case g;
        make(&g, shapes[s][0], shapes[s][1], 2, shapes[s][2], lens[s], 10 + s);
        g.gated = v >> 1;
        g.a_shift = 9; /* a = 1 - O(1e-4): the state of step 0 still counts at step 4000 */
        size_t n = g.ps->numel;
        double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
        sp_set_threads(1);
        double la = run(&g, a);
        sp_set_threads(2);
        double lb = run(&g, b);
        sp_test_close(la, lb, 1e-12, 1e-12, "loss with 1 and 2 threads");
        for (size_t k = 0; k < n; k++) sp_test_close(a[k], b[k], 1e-10, 1e-12, "gradient with 1 and 2 threads");
        sp_set_threads(3); /* three chunks: the middle one's start is chained from the summaries */
        double l3 = run(&g, c);
        sp_set_threads(2);
        sp_test_close(la, l3, 1e-12, 1e-12, "loss with 1 and 3 threads");
        for (size_t k = 0; k < n; k++) sp_test_close(a[k], c[k], 1e-10, 1e-12, "gradient with 1 and 3 threads");
        if (s == 0) { /* the chunked path against the composition too */
            g.composed = 1;
            double lc = run(&g, c);
            sp_test_close(lb, lc, 1e-12, 1e-12, "loss of the time chunks vs the composition");
            for (size_t k = 0; k < n; k++) sp_test_close(b[k], c[k], 1e-10, 1e-12, "gradient of the chunks vs composition");
        }
        free(a);
        free(b);
        free(c);
        sp_params_free(g.ps);
    }
}

/* sp_softplus (minLSTM's gate normalisation) in both tails and around its series switch */
static void test_softplus_values(void **state)
{
    (void)state;
    static const double xs[] = {-800, -50, -20, -9.3, -9.2, -1, 0, 0.5, 9.2, 9.3, 30, 800};
    enum { N = sizeof xs / sizeof xs[0] };
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_const(t, 1, N);
    for (int k = 0; k < N; k++) x->data[k] = xs[k];
    sp_tensor *y = sp_softplus(t, x);
    assert_non_null(y);
    for (int k = 0; k < N; k++) {
        double want = xs[k] > 0 ? xs[k] + log1p(exp(-xs[k])) : log1p(exp(xs[k]));
        sp_test_close(y->data[k], want, 1e-14, 0, "softplus");
    }
    sp_tape_free(t);
}

static void test_scan_errors(void **state)
{
    (void)state;
    sp_tape *t = sp_tape_new();
    sp_tensor *a = sp_const(t, 6, 2), *h0 = sp_const(t, 2, 2);
    assert_null(sp_linear_scan(t, a, a, h0, 2, NULL)); /* 6 rows are not T*B = 4 */
    assert_non_null(strstr(sp_tape_errmsg(t), "linear_scan"));
    sp_tape_reset(t);
    a = sp_const(t, 6, 2), h0 = sp_const(t, 2, 2);
    assert_null(sp_linear_scan(t, a, sp_const(t, 6, 3), h0, 3, NULL)); /* b's shape */
    assert_non_null(strstr(sp_tape_errmsg(t), "b must have a's shape"));
    sp_tape_reset(t);
    a = sp_const(t, 6, 2), h0 = sp_const(t, 2, 2);
    assert_null(sp_linear_scan(t, a, a, h0, 3, (int[2]){3, 4})); /* a length past T */
    assert_non_null(strstr(sp_tape_errmsg(t), "lengths[1] = 4"));
    sp_tape_reset(t);
    a = sp_const(t, 6, 2), h0 = sp_const(t, 2, 2);
    assert_null(sp_gated_scan(t, a, sp_const(t, 6, 3), h0, 3, NULL)); /* c's shape */
    assert_non_null(strstr(sp_tape_errmsg(t), "gated_scan"));
    assert_non_null(strstr(sp_tape_errmsg(t), "c must have z's shape"));
    sp_tape_free(t);
}

int main(void)
{
    sp_init(&(sp_init_opts){.flags = SP_INIT_FIXED_THREADS}); /* two threads even on a busy machine */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_equals_composition),
        cmocka_unit_test(test_scan_second_backward_adds),
        cmocka_unit_test(test_scan_one_and_two_threads),
        cmocka_unit_test(test_softplus_values),
        cmocka_unit_test(test_scan_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
