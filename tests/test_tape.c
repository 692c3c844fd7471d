/* SPDX-License-Identifier: MIT */
/* test_tape.c - the tape's promises: gradients accumulate (a value used twice, a weight shared
 * across steps gets the sum), chains of ops, reset and reuse without malloc, views without copy,
 * sticky errors that name the op, nodes and shapes, and the dot export. */
#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* y = x * x + x  (x used three times)  =>  dy/dx = 2x + 1 */
static void test_value_used_twice_accumulates(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_tensor *x = sp_param(ps, "x", 1, 3);
    x->data[0] = 0.5f, x->data[1] = -2, x->data[2] = 3;
    sp_tape *t = sp_tape_new();
    sp_tensor *y = sp_sum(t, sp_add(t, sp_mul(t, x, x), x));
    assert_int_equal(sp_backward(t, y), SP_OK);
    for (int j = 0; j < 3; j++) sp_test_close(x->grad[j], 2 * x->data[j] + 1, 1e-6, 1e-7, "d(x*x+x)/dx");
    sp_tape_free(t);
    sp_params_free(ps);
}

/* h_t = tanh(W h_{t-1}) over T steps: dL/dW equals the sum of the per-step contributions, each
 * measured by giving that step its own copy of W. R = 150 rows per step makes the stacked
 * weight-gradient GEMM (ops/matmul.c) run in several chunks of at most 512 rows. */
static void test_shared_weight_gets_sum_of_per_step_gradients(void **state)
{
    (void)state;
    enum { T = 5, H = 3, R = 150 };
    sp_params *ps = sp_params_new();
    sp_tensor *W = sp_param(ps, "W", H, H), *Wt[T];
    char nm[16];
    for (int k = 0; k < T; k++) {
        snprintf(nm, sizeof nm, "W%d", k);
        Wt[k] = sp_param(ps, nm, H, H);
    }
    sp_rng r;
    sp_rng_seed(&r, 7);
    sp_test_fill(W, &r, -0.8, 0.8);
    for (int k = 0; k < T; k++) memcpy(Wt[k]->data, W->data, sizeof(sp_real) * H * H);
    sp_tape *t = sp_tape_new();
    for (int pass = 0; pass < 2; pass++) {
        sp_tape_reset(t);
        sp_tensor *h = sp_const(t, R, H);
        for (int j = 0; j < R * H; j++) h->data[j] = (sp_real)(0.3 * (j % 7 - 3));
        for (int k = 0; k < T; k++) h = sp_tanh(t, sp_matmul(t, h, pass == 0 ? W : Wt[k]));
        assert_int_equal(sp_backward(t, sp_sum(t, h)), SP_OK);
    }
    for (int e = 0; e < H * H; e++) {
        double sum = 0;
        for (int k = 0; k < T; k++) sum += Wt[k]->grad[e];
        sp_test_close(W->grad[e], sum, 1e-4, 1e-5, "shared W grad vs sum of per-step grads");
    }
    sp_tape_free(t);
    sp_params_free(ps);
}

/* A chain: sigmoid(tanh(x W + b)) -> mean, checked by hand for a 1x1 case. */
static void test_chain_of_ops(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_tensor *W = sp_param(ps, "W", 1, 1), *b = sp_param(ps, "b", 1, 1);
    W->data[0] = 0.7f, b->data[0] = -0.2f;
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_const(t, 1, 1);
    x->data[0] = 1.5f;
    sp_tensor *y = sp_mean(t, sp_sigmoid(t, sp_tanh(t, sp_add(t, sp_matmul(t, x, W), b))));
    assert_int_equal(sp_backward(t, y), SP_OK);
    double u = 1.5 * 0.7 - 0.2, th = tanh(u), s = 1 / (1 + exp(-th));
    sp_test_close(y->data[0], s, 1e-6, 1e-7, "forward");
    double dth = s * (1 - s), du = dth * (1 - th * th);
    sp_test_close(W->grad[0], du * 1.5, 1e-5, 1e-7, "dW");
    sp_test_close(b->grad[0], du, 1e-5, 1e-7, "db");
    sp_tape_free(t);
    sp_params_free(ps);
}

static double train_step(sp_tape *t, sp_params *ps, sp_tensor *W)
{
    sp_tape_reset(t);
    sp_params_zero_grad(ps);
    sp_tensor *x = sp_const(t, 64, 32);
    for (int i = 0; i < 64 * 32; i++) x->data[i] = (sp_real)((i % 7) - 3) / 3;
    int tg[64];
    for (int i = 0; i < 64; i++) tg[i] = i % 7;
    sp_tensor *l = sp_softmax_xent(t, sp_matmul(t, sp_tanh(t, x), W), tg, NULL);
    assert_int_equal(sp_backward(t, l), SP_OK);
    for (size_t k = 0; k < ps->numel; k++) ps->value[k] -= (sp_real)0.5 * ps->grad[k];
    return l->data[0];
}

/* After the first step a training loop allocates nothing: same records, same arena, no malloc. */
static void test_reset_reuses_memory_and_gives_same_results(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_tensor *W = sp_param(ps, "W", 32, 10);
    sp_tape *t = sp_tape_new();
    double l0 = train_step(t, ps, W);
    train_step(t, ps, W); /* the second step may consolidate the arena into one chunk */
    int mallocs = sp_tape_mallocs(t);
    size_t cap = sp_tape_capacity(t);
    double last = l0;
    for (int s = 0; s < 20; s++) last = train_step(t, ps, W);
    assert_int_equal(sp_tape_mallocs(t), mallocs);
    assert_true(sp_tape_capacity(t) == cap);
    assert_true(last < l0 * 0.5); /* and it learns */
    sp_tape_free(t);
    sp_params_free(ps);
}

static void test_slices_are_views(void **state)
{
    (void)state;
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_leaf(t, 4, 6);
    size_t before = sp_tape_bytes(t);
    sp_tensor *s = sp_slice_cols(t, sp_slice_rows(t, x, 1, 2), 2, 3);
    assert_ptr_equal(s->data, x->data + 1 * 6 + 2);
    assert_int_equal(s->stride, 6);
    assert_true(sp_tape_bytes(t) - before < 1024); /* two small records, no 2x3 copy of data */
    /* gradients of a view land in the base */
    assert_int_equal(sp_backward(t, sp_sum(t, s)), SP_OK);
    double total = 0;
    for (int i = 0; i < 24; i++) total += x->grad[i];
    sp_test_close(total, 6, 0, 1e-9, "view gradient lands in base");
    assert_true(x->grad[1 * 6 + 2] == 1 && x->grad[0] == 0);
    sp_tape_free(t);
}

static void expect_error(sp_tape *t, sp_status want, const char *const *needles)
{
    assert_int_equal(sp_tape_status(t), want);
    const char *m = sp_tape_errmsg(t);
    for (; *needles; needles++)
        if (!strstr(m, *needles)) {
            print_error("# message \"%s\" lacks \"%s\"\n", m, *needles);
            fail();
        }
}

static void test_shape_errors_name_op_nodes_and_shapes(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_tensor *W = sp_param(ps, "lstm0/W", 32, 256);
    sp_tape *t = sp_tape_new();
    sp_tape_scope(t, "lstm0/t3");
    sp_tensor *x = sp_name(t, sp_const(t, 8, 64), "x");
    assert_null(sp_matmul(t, x, W));
    expect_error(t, SP_ERR_SHAPE, (const char *[]){"matmul", "lstm0/t3/x", "[8 x 64]", "lstm0/W", "[32 x 256]", NULL});
    /* sticky: later ops return NULL, the first error stays */
    assert_null(sp_tanh(t, x));
    assert_int_equal(sp_backward(t, NULL), SP_ERR_SHAPE);
    expect_error(t, SP_ERR_SHAPE, (const char *[]){"matmul", NULL});

    struct { int kind; const char *needle; } cases[] = {
        {0, "add"}, {1, "concat"}, {2, "slice"}, {3, "softmax_xent"}, {4, "embedding"},
        {5, "dropout"}, {6, "backward"}, {7, "backward"}, {8, "split"}, {9, "sigmoid_bce"},
        {10, "input 1 is NULL"}, {11, "already ran"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        sp_tape_reset(t);
        assert_int_equal(sp_tape_status(t), SP_OK);
        sp_tensor *a = sp_leaf(t, 3, 4), *b = sp_leaf(t, 2, 4);
        int tg[3] = {0, 9, 1}, ids[2] = {0, 70};
        sp_rng r;
        sp_rng_seed(&r, 1);
        sp_tensor *p[3];
        switch (cases[c].kind) {
        case 0: assert_null(sp_add(t, a, b)); break;
        case 1: assert_null(sp_concat(t, (sp_tensor *[]){a, b}, 2)); break;
        case 2: assert_null(sp_slice_cols(t, a, 2, 3)); break;
        case 3: assert_null(sp_softmax_xent(t, a, tg, NULL)); break;
        case 4: assert_null(sp_embedding(t, W, ids, 2)); break;
        case 5: assert_null(sp_dropout(t, a, 1.0, &r, 1)); break;
        case 6: assert_int_not_equal(sp_backward(t, a), SP_OK); break;             /* not 1x1 */
        case 7: assert_int_not_equal(sp_backward(t, sp_sum(t, sp_const(t, 2, 2))), SP_OK); break;
        case 8: assert_int_not_equal(sp_split_cols(t, a, 3, p), SP_OK); break;
        case 9: assert_null(sp_sigmoid_bce(t, a, a, NULL)); break;
        case 10: assert_null(sp_mul(t, a, NULL)); break;
        case 11: {
            sp_tensor *l = sp_sum(t, a);
            assert_int_equal(sp_backward(t, l), SP_OK);
            assert_int_not_equal(sp_backward(t, l), SP_OK);
            break;
        }
        }
        expect_error(t, sp_tape_status(t), (const char *[]){cases[c].needle, NULL});
        assert_int_not_equal(sp_tape_status(t), SP_OK);
    }
    /* errors without a tape */
    assert_null(sp_param(ps, "lstm0/W", 2, 2));
    assert_non_null(strstr(sp_last_error(), "exists already"));
    assert_null(sp_param(ps, "bad", 0, 3));
    assert_non_null(strstr(sp_last_error(), "[0 x 3]"));
    sp_tape_free(t);
    sp_params_free(ps);
}

/* An all-padding batch: the loss is 0 and its gradient 0, never NaN. */
static void test_all_padding_gives_no_nan(void **state)
{
    (void)state;
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_leaf(t, 3, 4);
    int tg[3] = {-1, -1, -1};
    sp_tensor *l = sp_softmax_xent(t, x, tg, NULL);
    assert_int_equal(sp_backward(t, l), SP_OK);
    assert_true(l->data[0] == 0);
    for (int i = 0; i < 12; i++) assert_true(x->grad[i] == 0);
    sp_tape_free(t);
}

static void test_dot_export_renders(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_tensor *W = sp_param(ps, "rnn0/W", 4, 4);
    sp_tape *t = sp_tape_new();
    sp_tensor *h = sp_name(t, sp_const(t, 2, 4), "h0");
    for (int k = 0; k < 3; k++) {
        sp_tape_scope(t, "rnn0/t%d", k);
        h = sp_tanh(t, sp_matmul(t, h, W));
    }
    sp_tape_scope(t, "loss");
    sp_tensor *l = sp_sum(t, h);
    assert_non_null(l);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(sp_tape_dot(t, f, 1), SP_OK);
    fclose(f);
    assert_non_null(strstr(buf, "subgraph \"cluster_rnn0\""));
    assert_non_null(strstr(buf, "subgraph \"cluster_rnn0/t2\""));
    assert_non_null(strstr(buf, "rnn0/t1/tanh\\ntanh [2 x 4]"));
    assert_non_null(strstr(buf, "fillcolor=\"#fff2a8\"")); /* the parameter */
    assert_non_null(strstr(buf, "p0 -> n"));
    free(buf);
    const char *path = "test_tape_graph.dot";
    assert_int_equal(sp_tape_dot_file(t, path, 1), SP_OK);
    if (system("command -v dot >/dev/null 2>&1") == 0) {
        int rc = system("dot -Tsvg test_tape_graph.dot -o test_tape_graph.svg");
        assert_int_equal(rc, 0);
    } else {
        print_message("# graphviz 'dot' not installed: rendering not checked\n");
    }
    sp_tape_free(t);
    sp_params_free(ps);
}

/* Small products with a parameter as B go through ops/packed.c (weights packed once per tape):
 * odd sizes (13 rows: a partial 8-row tile; 50 columns: a masked 32-column panel), both layouts
 * of W, with a bias (accumulating into C) and backward (dA), against a plain double loop. */
static void test_packed_products_match_reference(void **state)
{
    (void)state;
    enum { M = 13, K = 40, N = 50 };
    sp_params *ps = sp_params_new();
    sp_tensor *Wt = sp_param(ps, "Wt", N, K), *Wn = sp_param(ps, "Wn", K, N), *bias = sp_param(ps, "bias", 1, N);
    sp_rng r;
    sp_rng_seed(&r, 11);
    sp_test_fill(Wt, &r, -1, 1);
    sp_test_fill(Wn, &r, -1, 1);
    sp_test_fill(bias, &r, -1, 1);
    sp_tape *t = sp_tape_new();
    for (int pass = 0; pass < 2; pass++) { /* the second pass reuses the packed panels' memory */
        sp_tape_reset(t);
        sp_tensor *A = sp_leaf(t, M, K), *G = sp_const(t, M, N);
        sp_test_fill(A, &r, -1, 1);
        sp_test_fill(G, &r, -1, 1);
        for (int layout = 0; layout < 2; layout++) {
            sp_tensor *W = layout ? Wt : Wn;
            sp_tensor *y = sp_matmul_bias(t, A, 0, W, layout, bias);
            sp_tensor *l = sp_sum(t, sp_mul(t, y, G));
            assert_int_equal(sp_backward(t, l), SP_OK);
            for (int i = 0; i < M; i++)
                for (int n = 0; n < N; n++) {
                    double ref = bias->data[n];
                    for (int k = 0; k < K; k++)
                        ref += (double)*sp_at(A, i, k) * (layout ? Wt->data[n * K + k] : Wn->data[k * N + n]);
                    sp_test_close(*sp_at(y, i, n), ref, 1e-5, 1e-5, "packed product");
                }
            for (int i = 0; i < M; i++)
                for (int k = 0; k < K; k++) {
                    double ref = 0;
                    for (int n = 0; n < N; n++)
                        ref += (double)*sp_at(G, i, n) * (layout ? Wt->data[n * K + k] : Wn->data[k * N + n]);
                    sp_test_close(A->grad[i * K + k], ref, 1e-5, 1e-5, "packed backward dA");
                }
            sp_tape_reset(t);
            A = sp_leaf(t, M, K), G = sp_const(t, M, N);
            sp_test_fill(A, &r, -1, 1);
            sp_test_fill(G, &r, -1, 1);
        }
    }
    sp_tape_free(t);
    sp_params_free(ps);
}

static void test_info_reports_blis_and_threads(void **state)
{
    (void)state;
    const char *s = sp_info();
    assert_non_null(strstr(s, "BLIS"));
    assert_non_null(strstr(s, "kernels"));
    sp_set_threads(1);
    assert_int_equal(sp_get_threads(), 1);
    assert_non_null(strstr(sp_info(), "threads 1"));
    sp_set_threads(0);
    assert_true(sp_get_threads() >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_used_twice_accumulates),
        cmocka_unit_test(test_shared_weight_gets_sum_of_per_step_gradients),
        cmocka_unit_test(test_chain_of_ops),
        cmocka_unit_test(test_reset_reuses_memory_and_gives_same_results),
        cmocka_unit_test(test_slices_are_views),
        cmocka_unit_test(test_shape_errors_name_op_nodes_and_shapes),
        cmocka_unit_test(test_all_padding_gives_no_nan),
        cmocka_unit_test(test_dot_export_renders),
        cmocka_unit_test(test_packed_products_match_reference),
        cmocka_unit_test(test_info_reports_blis_and_threads),
    };
    return cmocka_run_group_tests_name("tape", tests, NULL, NULL);
}
