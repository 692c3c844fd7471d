/* test_ops_grad.c - every op's backward against central finite differences, in the double build.
 *
 * Each case builds a scalar loss from parameters A, B (C) through the op under test, then a
 * weighted sum with fixed random weights, so every output element has its own gradient. The last
 * tests check the checker: a gradient off by 1e-4 relative in a single component must fail. */
#include "helpers.h"

#include <math.h>
#include <string.h>

typedef struct {
    int op;
    sp_params *ps;
    sp_tensor *a, *b, *c;
} grad_case;

/* sum(x * w) with w fixed random in [-1, 1): a loss whose gradient differs per element. */
static sp_tensor *weighted_sum(sp_tape *t, sp_tensor *x)
{
    if (!x) return NULL;
    sp_tensor *w = sp_const(t, x->rows, x->cols);
    if (!w) return NULL;
    sp_rng r;
    sp_rng_seed(&r, 99);
    sp_test_fill(w, &r, -1, 1);
    return sp_sum(t, sp_mul(t, x, w));
}

enum {
    MATMUL_NN, MATMUL_TN, MATMUL_NT, MATMUL_TT, MATMUL_BIAS, MATMUL_ADDEND, MATMUL_SHARED,
    ADD, ADD_ROW, ADD_COL, ADD_SCALAR, SUB, SUB_ROW, MUL, MUL_ROW, MUL_COL,
    SCALE, ONE_MINUS, SIGMOID, TANH, RELU, SOFTMAX, XENT, XENT_PADDED, BCE, BCE_MASKED,
    SUM, MEAN, CONCAT, CONCAT_ROWS, SLICE_COLS, SLICE_ROWS, SLICE_OF_SLICE, SPLIT, EMBEDDING, DROPOUT, LSTM_CELL, GRU_CELL, LSTM_CELL_VS_COMPOSED, GRU_CELL_VS_COMPOSED,
    CASE_COUNT
};

static const char *case_name[CASE_COUNT] = {
    "matmul", "matmul A^T", "matmul B^T", "matmul A^T B^T", "matmul B^T + bias", "matmul + full addend",
    "matmul with a weight shared by several products (stacked weight-gradient GEMM)", "add", "add row bias", "add column",
    "add scalar", "sub", "sub row", "mul", "mul row", "mul column", "scale", "one_minus", "sigmoid",
    "tanh", "relu", "softmax", "softmax_xent", "softmax_xent with padding", "sigmoid_bce",
    "sigmoid_bce masked", "sum", "mean", "concat", "concat rows", "slice cols", "slice rows", "slice of slice",
    "split", "embedding", "dropout", "lstm_cell", "gru_cell",
    "lstm_cell minus its composed form", "gru_cell minus its composed form",
};

/* The fused cells' math from basic ops, as a custom cell would write it. */
static sp_tensor *composed_lstm(sp_tape *t, sp_tensor *xp, sp_tensor *hp, sp_tensor *c_prev)
{
    sp_tensor *q[4];
    if (sp_split_cols(t, sp_add(t, xp, hp), 4, q) != SP_OK) return NULL;
    sp_tensor *i = sp_sigmoid(t, q[0]), *f = sp_sigmoid(t, q[1]), *g = sp_tanh(t, q[2]), *o = sp_sigmoid(t, q[3]);
    sp_tensor *c = sp_add(t, sp_mul(t, f, c_prev), sp_mul(t, i, g));
    sp_tensor *hc[2] = {sp_mul(t, o, sp_tanh(t, c)), c};
    return sp_concat(t, hc, 2);
}

static sp_tensor *composed_gru(sp_tape *t, sp_tensor *xp, sp_tensor *hp, sp_tensor *b_hn, sp_tensor *h_prev)
{
    sp_tensor *x[3], *h[3];
    if (sp_split_cols(t, xp, 3, x) != SP_OK || sp_split_cols(t, hp, 3, h) != SP_OK) return NULL;
    sp_tensor *r = sp_sigmoid(t, sp_add(t, x[0], h[0])), *z = sp_sigmoid(t, sp_add(t, x[1], h[1]));
    sp_tensor *n = sp_tanh(t, sp_add(t, x[2], sp_mul(t, r, sp_add(t, h[2], b_hn))));
    return sp_add(t, sp_mul(t, sp_one_minus(t, z), n), sp_mul(t, z, h_prev));
}

static sp_tensor *build(sp_tape *t, void *ctx)
{
    grad_case *g = ctx;
    sp_tensor *A = g->a, *B = g->b, *C = g->c;
    switch (g->op) {
    case MATMUL_NN: return weighted_sum(t, sp_matmul(t, A, B));
    case MATMUL_TN: return weighted_sum(t, sp_matmul_ex(t, A, 1, B, 0));
    case MATMUL_NT: return weighted_sum(t, sp_matmul_ex(t, A, 0, B, 1));
    case MATMUL_TT: return weighted_sum(t, sp_matmul_ex(t, A, 1, B, 1));
    case MATMUL_BIAS: return weighted_sum(t, sp_matmul_bias(t, A, 0, B, 1, C));
    case MATMUL_ADDEND: return weighted_sum(t, sp_matmul_bias(t, A, 0, B, 0, sp_tanh(t, C)));
    case MATMUL_SHARED: { /* B in three products (one on a strided view) and once transposed */
        sp_tensor *y1 = weighted_sum(t, sp_matmul(t, A, B));
        sp_tensor *y2 = weighted_sum(t, sp_matmul(t, sp_tanh(t, A), B));
        sp_tensor *y3 = weighted_sum(t, sp_matmul(t, sp_slice_cols(t, C, 1, 4), B));
        sp_tensor *y4 = weighted_sum(t, sp_matmul_ex(t, sp_slice_cols(t, C, 0, 5), 0, B, 1));
        return sp_add(t, sp_add(t, y1, y2), sp_add(t, y3, y4));
    }
    case ADD: case ADD_ROW: case ADD_COL: case ADD_SCALAR: return weighted_sum(t, sp_add(t, A, B));
    case SUB: case SUB_ROW: return weighted_sum(t, sp_sub(t, A, B));
    case MUL: case MUL_ROW: case MUL_COL: return weighted_sum(t, sp_mul(t, A, B));
    case SCALE: return weighted_sum(t, sp_scale(t, A, -2.5));
    case ONE_MINUS: return weighted_sum(t, sp_one_minus(t, A));
    case SIGMOID: return weighted_sum(t, sp_sigmoid(t, A));
    case TANH: return weighted_sum(t, sp_tanh(t, A));
    case RELU: return weighted_sum(t, sp_relu(t, A));
    case SOFTMAX: return weighted_sum(t, sp_softmax(t, A));
    case XENT: {
        int tg[4] = {0, 3, 4, 1};
        return sp_softmax_xent(t, A, tg, NULL);
    }
    case XENT_PADDED: {
        int tg[4] = {2, -1, 4, -1};
        return sp_softmax_xent(t, A, tg, NULL);
    }
    case BCE: case BCE_MASKED: {
        sp_tensor *z = sp_const(t, A->rows, A->cols), *m = NULL;
        sp_rng r;
        sp_rng_seed(&r, 5);
        sp_test_fill(z, &r, 0, 1);
        if (g->op == BCE_MASKED) {
            m = sp_const(t, A->rows, 1);
            for (int i = 0; i < A->rows; i++) m->data[i] = i % 3 != 1;
        }
        return sp_sigmoid_bce(t, A, z, m);
    }
    case SUM: return sp_sum(t, sp_tanh(t, A));
    case MEAN: return sp_mean(t, sp_tanh(t, A));
    case CONCAT: {
        sp_tensor *xs[3] = {A, sp_tanh(t, B), C};
        return weighted_sum(t, sp_concat(t, xs, 3));
    }
    case CONCAT_ROWS: {
        sp_tensor *xs[3] = {A, sp_tanh(t, B), C};
        return weighted_sum(t, sp_concat_rows(t, xs, 3));
    }
    case SLICE_COLS: return weighted_sum(t, sp_tanh(t, sp_slice_cols(t, sp_scale(t, A, 1.5), 1, 3)));
    case SLICE_ROWS: return weighted_sum(t, sp_tanh(t, sp_slice_rows(t, A, 2, 2)));
    case SLICE_OF_SLICE: {
        sp_tensor *s = sp_slice_rows(t, sp_slice_cols(t, A, 1, 4), 1, 3);
        return sp_add(t, weighted_sum(t, sp_tanh(t, s)), weighted_sum(t, sp_sigmoid(t, A)));
    }
    case SPLIT: {
        sp_tensor *p[3];
        if (sp_split_cols(t, A, 3, p) != SP_OK) return NULL;
        return weighted_sum(t, sp_mul(t, sp_sigmoid(t, p[0]), sp_tanh(t, p[2])));
    }
    case EMBEDDING: {
        int ids[6] = {1, 4, 1, -1, 0, 4};
        return weighted_sum(t, sp_embedding(t, A, ids, 6));
    }
    case LSTM_CELL: {
        sp_tensor *o = sp_lstm_cell(t, A, C, B);
        /* h and c both feed the loss, as in a step followed by another step */
        return sp_add(t, weighted_sum(t, sp_slice_cols(t, o, 0, 3)), sp_sum(t, sp_tanh(t, sp_slice_cols(t, o, 3, 3))));
    }
    case GRU_CELL: return weighted_sum(t, sp_gru_cell(t, A, B, sp_slice_rows(t, C, 1, 1), C));
    case LSTM_CELL_VS_COMPOSED: case GRU_CELL_VS_COMPOSED: {
        /* fused minus composed: the value must be 0 and so must every gradient */
        int lstm = g->op == LSTM_CELL_VS_COMPOSED;
        sp_tensor *bn = lstm ? NULL : sp_slice_rows(t, C, 1, 1);
        sp_tensor *f = lstm ? sp_lstm_cell(t, A, C, B) : sp_gru_cell(t, A, B, bn, C);
        sp_tensor *c = lstm ? composed_lstm(t, A, C, B) : composed_gru(t, A, B, bn, C);
        sp_tensor *d = weighted_sum(t, sp_sub(t, f, c));
        if (d && fabs(d->data[0]) > 1e-12) {
            print_error("# fused and composed forms differ: %g\n", (double)d->data[0]);
            return NULL;
        }
        return sp_add(t, d, weighted_sum(t, f));
    }
    case DROPOUT: {
        sp_rng r;
        sp_rng_seed(&r, 3); /* the same mask on every rebuild */
        return weighted_sum(t, sp_dropout(t, sp_tanh(t, A), 0.4, &r, 1));
    }
    }
    return NULL;
}

/* Shapes of A, B, C for each case. */
static void make_case(grad_case *g, int op)
{
    int ar = 4, ac = 5, br = 4, bc = 5, cr = 0, cc = 0;
    switch (op) {
    case MATMUL_NN: ar = 3, ac = 4, br = 4, bc = 5; break;
    case MATMUL_TN: ar = 4, ac = 3, br = 4, bc = 5; break;
    case MATMUL_NT: ar = 3, ac = 4, br = 5, bc = 4; break;
    case MATMUL_TT: ar = 4, ac = 3, br = 5, bc = 4; break;
    case MATMUL_BIAS: ar = 3, ac = 4, br = 5, bc = 4, cr = 1, cc = 5; break;
    case MATMUL_ADDEND: ar = 3, ac = 4, br = 4, bc = 5, cr = 3, cc = 5; break;
    case MATMUL_SHARED: ar = 3, ac = 4, br = 4, bc = 5, cr = 4, cc = 6; break;
    case ADD_ROW: case SUB_ROW: case MUL_ROW: br = 1; break;
    case ADD_COL: case MUL_COL: bc = 1; break;
    case ADD_SCALAR: br = 1, bc = 1; break;
    case CONCAT: bc = 2, cr = 4, cc = 3; break;
    case CONCAT_ROWS: br = 2, cr = 3, cc = 5; break;
    case SPLIT: ac = 6; break;
    case EMBEDDING: ar = 5, ac = 3; break;
    case LSTM_CELL: case LSTM_CELL_VS_COMPOSED: ar = 4, ac = 12, br = 4, bc = 3, cr = 4, cc = 12; break;
    case GRU_CELL: case GRU_CELL_VS_COMPOSED: ar = 4, ac = 9, br = 4, bc = 9, cr = 4, cc = 3; break;
    default: break;
    }
    g->op = op;
    g->ps = sp_params_new();
    g->a = sp_param(g->ps, "A", ar, ac);
    g->b = sp_param(g->ps, "B", br, bc);
    g->c = cr ? sp_param(g->ps, "C", cr, cc) : NULL;
    sp_rng r;
    sp_rng_seed(&r, 1000 + op);
    for (size_t k = 0; k < g->ps->numel; k++) {
        /* away from relu's kink at 0: |v| in [0.1, 1.1) */
        double v = 0.1 + sp_rng_uniform(&r);
        g->ps->value[k] = (sp_real)(sp_rng_uniform(&r) < 0.5 ? -v : v);
    }
}

static void test_every_op_matches_finite_differences(void **state)
{
    (void)state;
    int failed = 0;
    for (int op = 0; op < CASE_COUNT; op++) {
        grad_case g;
        make_case(&g, op);
        int bad = sp_gradcheck(g.ps, build, &g, NULL);
        if (bad != 0) {
            print_error("# op case \"%s\": %d gradient components wrong\n", case_name[op], bad);
            failed++;
        }
        sp_params_free(g.ps);
    }
    assert_int_equal(failed, 0);
}

/* The checker must catch a gradient off by 1e-4 relative in one component, for every op: that is
 * how tight "tight enough to catch a wrong backward" is here. */
static void test_checker_rejects_a_slightly_wrong_gradient(void **state)
{
    (void)state;
    for (int op = 0; op < CASE_COUNT; op++) {
        grad_case g;
        make_case(&g, op);
        /* perturb a component that has a nonzero gradient (B of an unused case has none) */
        sp_gradcheck_opts o = {1e-6, 1e-9, 1e-6, 1};
        int bad = sp_gradcheck(g.ps, build, &g, &o);
        if (bad < 1) print_error("# checker missed a perturbed gradient in \"%s\"\n", case_name[op]);
        assert_true(bad >= 1);
        sp_params_free(g.ps);
    }
}

/* Non-finite differences would hide everything: make sure the loss is finite for extreme logits. */
static void test_losses_are_stable_for_huge_logits(void **state)
{
    (void)state;
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_leaf(t, 2, 3);
    sp_real v[6] = {1000, -1000, 0, -800, 900, 5};
    memcpy(x->data, v, sizeof v);
    int tg[2] = {1, 0};
    sp_tensor *l = sp_softmax_xent(t, x, tg, NULL);
    assert_non_null(l);
    sp_test_close(l->data[0], (2000.0 + 1700.0) / 2, 1e-9, 1e-9, "xent of extreme logits");
    sp_tensor *z = sp_const(t, 2, 3);
    sp_tensor *b = sp_sigmoid_bce(t, x, z, NULL);
    sp_test_close(b->data[0], (1000 + 0 + log(2.0) + 0 + 900 + (5 + log1p(exp(-5.0)))) / 6, 1e-9, 1e-9,
                  "bce of extreme logits");
    sp_tape_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_op_matches_finite_differences),
        cmocka_unit_test(test_checker_rejects_a_slightly_wrong_gradient),
        cmocka_unit_test(test_losses_are_stable_for_huge_logits),
    };
    return cmocka_run_group_tests_name("ops_grad", tests, NULL, NULL);
}
