/* SPDX-License-Identifier: MIT */
/* test_ops_grad.c - every op's backward against central finite differences, in the double build.
 *
 * The cases are one table (`cases` below), one row per case: its name, the op it is for, the
 * shapes of its parameters A, B (C, D) and the function that builds a scalar loss through the op,
 * mostly a weighted sum with fixed random weights so every output element has its own gradient.
 * Every op of the op table (ops/table.c) must have a case. The last tests check the checker: a
 * gradient off by 1e-4 relative in a single component must fail. */
#include "helpers.h"

#include <math.h>
#include <string.h>

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

/* ---------------------------------------------------------------- the cases */

/* Each case: a loss from up to four parameters A, B, C, D through the op under test. */
typedef sp_tensor *(*case_fn)(sp_tape *t, sp_tensor *const *p);
#define CASE(name) static sp_tensor *name(sp_tape *t, sp_tensor *const *p)
#define A p[0]
#define B p[1]
#define C p[2]
#define D p[3]

CASE(matmul_nn) { return weighted_sum(t, sp_matmul(t, A, B)); }
CASE(matmul_tn) { return weighted_sum(t, sp_matmul_ex(t, A, 1, B, 0)); }
CASE(matmul_nt) { return weighted_sum(t, sp_matmul_ex(t, A, 0, B, 1)); }
CASE(matmul_tt) { return weighted_sum(t, sp_matmul_ex(t, A, 1, B, 1)); }
CASE(matmul_bias) { return weighted_sum(t, sp_matmul_bias(t, A, 0, B, 1, C)); }
CASE(matmul_addend) { return weighted_sum(t, sp_matmul_bias(t, A, 0, B, 0, sp_tanh(t, C))); }
CASE(matmul_shared) /* B in three products (one on a strided view) and once transposed */
{
    sp_tensor *y1 = weighted_sum(t, sp_matmul(t, A, B));
    sp_tensor *y2 = weighted_sum(t, sp_matmul(t, sp_tanh(t, A), B));
    sp_tensor *y3 = weighted_sum(t, sp_matmul(t, sp_slice_cols(t, C, 1, 4), B));
    sp_tensor *y4 = weighted_sum(t, sp_matmul_ex(t, sp_slice_cols(t, C, 0, 5), 0, B, 1));
    return sp_add(t, sp_add(t, y1, y2), sp_add(t, y3, y4));
}
CASE(add) { return weighted_sum(t, sp_add(t, A, B)); }
CASE(sub) { return weighted_sum(t, sp_sub(t, A, B)); }
CASE(mul) { return weighted_sum(t, sp_mul(t, A, B)); }
CASE(scale) { return weighted_sum(t, sp_scale(t, A, -2.5)); }
CASE(one_minus) { return weighted_sum(t, sp_one_minus(t, A)); }
CASE(sigmoid) { return weighted_sum(t, sp_sigmoid(t, A)); }
CASE(tanh_) { return weighted_sum(t, sp_tanh(t, A)); }
CASE(relu) { return weighted_sum(t, sp_relu(t, A)); }
CASE(softmax) { return weighted_sum(t, sp_softmax(t, A)); }
CASE(xent) { return sp_softmax_xent(t, A, (int[4]){0, 3, 4, 1}, NULL); }
CASE(xent_padded) { return sp_softmax_xent(t, A, (int[4]){2, -1, 4, -1}, NULL); }
static sp_tensor *bce(sp_tape *t, sp_tensor *a, int masked)
{
    sp_tensor *z = sp_const(t, a->rows, a->cols), *m = NULL;
    sp_rng r;
    sp_rng_seed(&r, 5);
    sp_test_fill(z, &r, 0, 1);
    if (masked) {
        m = sp_const(t, a->rows, 1);
        for (int i = 0; i < a->rows; i++) m->data[i] = i % 3 != 1;
    }
    return sp_sigmoid_bce(t, a, z, m);
}
CASE(bce_plain) { return bce(t, A, 0); }
CASE(bce_masked) { return bce(t, A, 1); }
CASE(sum) { return sp_sum(t, sp_tanh(t, A)); }
CASE(mean) { return sp_mean(t, sp_tanh(t, A)); }
CASE(concat) { return weighted_sum(t, sp_concat(t, (sp_tensor *[3]){A, sp_tanh(t, B), C}, 3)); }
CASE(concat_rows) { return weighted_sum(t, sp_concat_rows(t, (sp_tensor *[3]){A, sp_tanh(t, B), C}, 3)); }
CASE(slice_cols) { return weighted_sum(t, sp_tanh(t, sp_slice_cols(t, sp_scale(t, A, 1.5), 1, 3))); }
CASE(slice_rows) { return weighted_sum(t, sp_tanh(t, sp_slice_rows(t, A, 2, 2))); }
CASE(slice_of_slice)
{
    sp_tensor *s = sp_slice_rows(t, sp_slice_cols(t, A, 1, 4), 1, 3);
    return sp_add(t, weighted_sum(t, sp_tanh(t, s)), weighted_sum(t, sp_sigmoid(t, A)));
}
CASE(split)
{
    sp_tensor *q[3];
    if (sp_split_cols(t, A, 3, q) != SP_OK) return NULL;
    return weighted_sum(t, sp_mul(t, sp_sigmoid(t, q[0]), sp_tanh(t, q[2])));
}
CASE(embedding) { return weighted_sum(t, sp_embedding(t, A, (int[6]){1, 4, 1, -1, 0, 4}, 6)); }
CASE(dropout)
{
    sp_rng r;
    sp_rng_seed(&r, 3); /* the same mask on every rebuild */
    return weighted_sum(t, sp_dropout(t, sp_tanh(t, A), 0.4, &r, 1));
}
CASE(lstm_cell)
{
    sp_tensor *o = sp_lstm_cell(t, A, C, B);
    /* h and c both feed the loss, as in a step followed by another step */
    return sp_add(t, weighted_sum(t, sp_slice_cols(t, o, 0, 3)), sp_sum(t, sp_tanh(t, sp_slice_cols(t, o, 3, 3))));
}
CASE(gru_cell) { return weighted_sum(t, sp_gru_cell(t, A, B, sp_slice_rows(t, C, 1, 1), C)); }
/* fused minus composed: the value must be 0 and so must every gradient */
static sp_tensor *fused_minus_composed(sp_tape *t, sp_tensor *f, sp_tensor *c)
{
    sp_tensor *d = weighted_sum(t, sp_sub(t, f, c));
    if (d && fabs(d->data[0]) > 1e-12) {
        print_error("# fused and composed forms differ: %g\n", (double)d->data[0]);
        return NULL;
    }
    return sp_add(t, d, weighted_sum(t, f));
}
CASE(lstm_vs_composed) { return fused_minus_composed(t, sp_lstm_cell(t, A, C, B), composed_lstm(t, A, C, B)); }
CASE(gru_vs_composed)
{
    sp_tensor *bn = sp_slice_rows(t, C, 1, 1);
    return fused_minus_composed(t, sp_gru_cell(t, A, B, bn, C), composed_gru(t, A, B, bn, C));
}
/* T = 3 steps of B = 2 rows, H = 2; row 1 is 1 step long. The whole output (every step's h, the
 * final h, every c) feeds the loss. */
CASE(lstm_seq) { return weighted_sum(t, sp_lstm_seq(t, A, B, C, D, 3, (int[2]){3, 1})); }
CASE(gru_seq) { return weighted_sum(t, sp_gru_seq(t, A, B, C, D, 3, (int[2]){3, 1})); }
CASE(rnn_seq_tanh) { return weighted_sum(t, sp_rnn_seq(t, A, B, C, 0, 3, (int[2]){3, 1})); }
CASE(rnn_seq_relu) { return weighted_sum(t, sp_rnn_seq(t, A, B, C, 1, 3, (int[2]){3, 1})); }
/* linear_scan: T = 3 steps of B = 2 rows, H = 2; row 1 is 1 step long (or 0: h0 is its final
 * state). a and b as column views of one [6, 4] parameter in the second case (strided rows). */
CASE(linear_scan) { return weighted_sum(t, sp_linear_scan(t, A, B, C, 3, (int[2]){3, 1})); }
CASE(linear_scan_empty_row) { return weighted_sum(t, sp_linear_scan(t, sp_sigmoid(t, A), B, C, 3, (int[2]){3, 0})); }
CASE(linear_scan_views)
{
    return weighted_sum(t, sp_linear_scan(t, sp_slice_cols(t, A, 0, 2), sp_slice_cols(t, A, 2, 2), B, 3, NULL));
}
/* gated_scan: the same shapes; z and c as column views in the third case, and that case's z large
 * (sigmoid near 0 and 1, where its derivative is small). */
CASE(gated_scan) { return weighted_sum(t, sp_gated_scan(t, A, B, C, 3, (int[2]){3, 1})); }
CASE(gated_scan_empty_row) { return weighted_sum(t, sp_gated_scan(t, A, B, C, 3, (int[2]){3, 0})); }
CASE(gated_scan_views)
{
    return weighted_sum(t, sp_gated_scan(t, sp_scale(t, sp_slice_cols(t, A, 0, 2), 4), sp_slice_cols(t, A, 2, 2), B, 3,
                                         NULL));
}
CASE(softplus) { return weighted_sum(t, sp_softplus(t, sp_scale(t, A, 8))); } /* both tails */
/* T = 2, B = 2, K = 3; row 1 is 1 step long (its tag at step 1 is junk and must be ignored). */
CASE(crf_nll) { return sp_crf_nll(t, sp_tanh(t, A), B, C, D, (int[4]){0, 2, 1, 77}, (int[2]){2, 1}, 2, 2); }
/* T = 4, B = 3, C = 4: row 0 reads a repeat (1 1 needs 3 of its 4 frames), row 1 two labels on 3
 * frames with blank 2, row 2 no labels on 2 frames; frames past a length are never read. */
static sp_tensor *ctc(sp_tape *t, sp_tensor *a, sp_ctc_reduction red, int stride)
{
    static const int packed[4] = {1, 1, 3, 0}, padded[6] = {1, 1, 3, 0, 77, 77};
    sp_ctc_opts o = {.blank = 2, .reduction = red, .label_stride = stride};
    sp_tensor *l = sp_ctc_loss(t, a, 4, 3, (int[3]){4, 3, 2}, stride ? padded : packed, (int[3]){2, 2, 0}, &o);
    return red == SP_CTC_NONE ? weighted_sum(t, l) : l;
}
CASE(ctc_mean) { return ctc(t, sp_scale(t, A, 2), SP_CTC_MEAN, 0); }
CASE(ctc_sum_padded) { return ctc(t, A, SP_CTC_SUM, 2); }
CASE(ctc_none) { return ctc(t, sp_tanh(t, A), SP_CTC_NONE, 0); }
CASE(layer_norm) { return weighted_sum(t, sp_layer_norm(t, A, B, C)); }
CASE(layer_norm_plain) { return weighted_sum(t, sp_layer_norm(t, sp_tanh(t, A), NULL, NULL)); }
/* S = 4 encoder steps of 3 sequences, D = 5 */
CASE(attn_dot) { return weighted_sum(t, sp_attn_dot(t, A, B, 4)); }
CASE(attn_additive) { return weighted_sum(t, sp_attn_additive(t, A, B, C, 4)); }
CASE(attn_context) { return weighted_sum(t, sp_attn_context(t, sp_softmax(t, A), B, 4)); }
/* lengths 4, 2, 0 of S = 4: the masked scores take no gradient, the real ones all of theirs */
CASE(attn_mask)
{
    sp_tensor *e = sp_tanh(t, A);
    return sp_add(t, weighted_sum(t, sp_softmax(t, sp_attn_mask(t, e, (int[3]){4, 2, 0}))), weighted_sum(t, e));
}
/* a recomputed segment: tanh(A B) built on a scratch tape, recomputed by the backward */
static sp_tape *scratch;
static sp_status segment_piece(sp_tape *t, void *user, sp_tensor *const *in, sp_tensor **out)
{
    (void)user;
    out[0] = sp_tanh(t, sp_matmul(t, in[0], in[1]));
    return sp_tape_status(t);
}
CASE(segment)
{
    sp_tensor *out[1] = {NULL}, *in[2] = {sp_scale(t, A, 0.5), B};
    if (sp_segment(t, scratch, segment_piece, NULL, NULL, 2, in, 1, out) != SP_OK) return NULL;
    return weighted_sum(t, out[0]);
}
#undef A
#undef B
#undef C
#undef D

/* One row per case: the op it is for, and the shapes of its parameters ({0, 0}: not used). */
typedef struct {
    const char *name;
    sp_op op;
    int shape[4][2];
    case_fn build;
} grad_case;

#define AB(ar, ac, br, bc) {{ar, ac}, {br, bc}}
static const grad_case cases[] = {
    {"matmul", SP_OP_MATMUL, AB(3, 4, 4, 5), matmul_nn},
    {"matmul A^T", SP_OP_MATMUL, AB(4, 3, 4, 5), matmul_tn},
    {"matmul B^T", SP_OP_MATMUL, AB(3, 4, 5, 4), matmul_nt},
    {"matmul A^T B^T", SP_OP_MATMUL, AB(4, 3, 5, 4), matmul_tt},
    {"matmul B^T + bias", SP_OP_MATMUL, {{3, 4}, {5, 4}, {1, 5}}, matmul_bias},
    {"matmul + full addend", SP_OP_MATMUL, {{3, 4}, {4, 5}, {3, 5}}, matmul_addend},
    {"matmul with a weight shared by several products (stacked weight-gradient GEMM)", SP_OP_MATMUL,
     {{3, 4}, {4, 5}, {4, 6}}, matmul_shared},
    {"add", SP_OP_ADD, AB(4, 5, 4, 5), add},
    {"add row bias", SP_OP_ADD, AB(4, 5, 1, 5), add},
    {"add column", SP_OP_ADD, AB(4, 5, 4, 1), add},
    {"add scalar", SP_OP_ADD, AB(4, 5, 1, 1), add},
    {"sub", SP_OP_SUB, AB(4, 5, 4, 5), sub},
    {"sub row", SP_OP_SUB, AB(4, 5, 1, 5), sub},
    {"mul", SP_OP_MUL, AB(4, 5, 4, 5), mul},
    {"mul row", SP_OP_MUL, AB(4, 5, 1, 5), mul},
    {"mul column", SP_OP_MUL, AB(4, 5, 4, 1), mul},
    {"scale", SP_OP_SCALE, AB(4, 5, 4, 5), scale},
    {"one_minus", SP_OP_ONE_MINUS, AB(4, 5, 4, 5), one_minus},
    {"sigmoid", SP_OP_SIGMOID, AB(4, 5, 4, 5), sigmoid},
    {"tanh", SP_OP_TANH, AB(4, 5, 4, 5), tanh_},
    {"relu", SP_OP_RELU, AB(4, 5, 4, 5), relu},
    {"softmax", SP_OP_SOFTMAX, AB(4, 5, 4, 5), softmax},
    {"softmax_xent", SP_OP_SOFTMAX_XENT, AB(4, 5, 4, 5), xent},
    {"softmax_xent with padding", SP_OP_SOFTMAX_XENT, AB(4, 5, 4, 5), xent_padded},
    {"sigmoid_bce", SP_OP_SIGMOID_BCE, AB(4, 5, 4, 5), bce_plain},
    {"sigmoid_bce masked", SP_OP_SIGMOID_BCE, AB(4, 5, 4, 5), bce_masked},
    {"sum", SP_OP_SUM, AB(4, 5, 4, 5), sum},
    {"mean", SP_OP_MEAN, AB(4, 5, 4, 5), mean},
    {"concat", SP_OP_CONCAT, {{4, 5}, {4, 2}, {4, 3}}, concat},
    {"concat rows", SP_OP_CONCAT_ROWS, {{4, 5}, {2, 5}, {3, 5}}, concat_rows},
    {"slice cols", SP_OP_SLICE, AB(4, 5, 4, 5), slice_cols},
    {"slice rows", SP_OP_SLICE, AB(4, 5, 4, 5), slice_rows},
    {"slice of slice", SP_OP_SLICE, AB(4, 5, 4, 5), slice_of_slice},
    {"split", SP_OP_SLICE, AB(4, 6, 4, 5), split},
    {"embedding", SP_OP_EMBEDDING, AB(5, 3, 4, 5), embedding},
    {"dropout", SP_OP_DROPOUT, AB(4, 5, 4, 5), dropout},
    {"lstm_cell", SP_OP_LSTM_CELL, {{4, 12}, {4, 3}, {4, 12}}, lstm_cell},
    {"gru_cell", SP_OP_GRU_CELL, {{4, 9}, {4, 9}, {4, 3}}, gru_cell},
    {"lstm_cell minus its composed form", SP_OP_LSTM_CELL, {{4, 12}, {4, 3}, {4, 12}}, lstm_vs_composed},
    {"gru_cell minus its composed form", SP_OP_GRU_CELL, {{4, 9}, {4, 9}, {4, 3}}, gru_vs_composed},
    {"lstm_seq", SP_OP_LSTM_SEQ, {{6, 8}, {8, 2}, {2, 2}, {2, 2}}, lstm_seq},
    {"gru_seq", SP_OP_GRU_SEQ, {{6, 6}, {6, 2}, {1, 2}, {2, 2}}, gru_seq},
    {"rnn_seq tanh", SP_OP_RNN_SEQ, {{6, 2}, {2, 2}, {2, 2}}, rnn_seq_tanh},
    {"rnn_seq relu", SP_OP_RNN_SEQ, {{6, 2}, {2, 2}, {2, 2}}, rnn_seq_relu},
    {"crf_nll", SP_OP_CRF_NLL, {{4, 3}, {3, 3}, {1, 3}, {1, 3}}, crf_nll},
    {"layer_norm", SP_OP_LAYER_NORM, {{4, 6}, {1, 6}, {1, 6}}, layer_norm},
    {"layer_norm without gain and bias", SP_OP_LAYER_NORM, {{4, 6}}, layer_norm_plain},
    {"attn_dot", SP_OP_ATTN_DOT, AB(3, 5, 12, 5), attn_dot},
    {"attn_additive", SP_OP_ATTN_ADDITIVE, {{3, 5}, {12, 5}, {1, 5}}, attn_additive},
    {"attn_context", SP_OP_ATTN_CONTEXT, AB(3, 4, 12, 5), attn_context},
    {"attn_mask", SP_OP_ATTN_MASK, {{3, 4}}, attn_mask},
    {"segment (recomputed on a scratch tape)", SP_OP_SEGMENT, AB(3, 4, 4, 5), segment},
    {"linear_scan", SP_OP_LINEAR_SCAN, {{6, 2}, {6, 2}, {2, 2}}, linear_scan},
    {"linear_scan with a row of length 0", SP_OP_LINEAR_SCAN, {{6, 2}, {6, 2}, {2, 2}}, linear_scan_empty_row},
    {"linear_scan of column views", SP_OP_LINEAR_SCAN, AB(6, 4, 2, 2), linear_scan_views},
    {"gated_scan", SP_OP_GATED_SCAN, {{6, 2}, {6, 2}, {2, 2}}, gated_scan},
    {"gated_scan with a row of length 0", SP_OP_GATED_SCAN, {{6, 2}, {6, 2}, {2, 2}}, gated_scan_empty_row},
    {"gated_scan of column views", SP_OP_GATED_SCAN, AB(6, 4, 2, 2), gated_scan_views},
    {"softplus", SP_OP_SOFTPLUS, AB(4, 5, 4, 5), softplus},
    {"ctc_loss mean", SP_OP_CTC_LOSS, {{12, 4}}, ctc_mean},
    {"ctc_loss sum, padded labels", SP_OP_CTC_LOSS, {{12, 4}}, ctc_sum_padded},
    {"ctc_loss none", SP_OP_CTC_LOSS, {{12, 4}}, ctc_none},
};
#undef AB
enum { CASE_COUNT = (int)(sizeof cases / sizeof cases[0]) };

typedef struct {
    const grad_case *c;
    sp_params *ps;
    sp_tensor *p[4];
} case_run;

static sp_tensor *build(sp_tape *t, void *ctx)
{
    case_run *r = ctx;
    return r->c->build(t, r->p);
}

/* The case's parameters, filled from a seed of its own with |v| in [0.1, 1.1) (away from relu's
 * kink at 0). */
static void make_case(case_run *r, int k)
{
    static const char *names[4] = {"A", "B", "C", "D"};
    memset(r, 0, sizeof *r);
    r->c = &cases[k];
    r->ps = sp_params_new();
    for (int i = 0; i < 4 && r->c->shape[i][0]; i++) {
        r->p[i] = sp_param(r->ps, names[i], r->c->shape[i][0], r->c->shape[i][1]);
        assert_non_null(r->p[i]);
    }
    sp_rng rng;
    sp_rng_seed(&rng, 1000 + (uint64_t)k);
    for (size_t e = 0; e < r->ps->numel; e++) {
        double v = 0.1 + sp_rng_uniform(&rng);
        r->ps->value[e] = (sp_real)(sp_rng_uniform(&rng) < 0.5 ? -v : v);
    }
}

static void test_every_op_matches_finite_differences(void **state)
{
    (void)state;
    int failed = 0;
    for (int k = 0; k < CASE_COUNT; k++) {
        case_run g;
        make_case(&g, k);
        int bad = sp_gradcheck(g.ps, build, &g, NULL);
        if (bad != 0) {
            print_error("# op case \"%s\": %d gradient components wrong\n", cases[k].name, bad);
            failed++;
        }
        sp_params_free(g.ps);
    }
    assert_int_equal(failed, 0);
}

/* Every op of the table appears in some case (the table of ops is ops/table.c; the view op
 * "slice" is exercised through its users). */
static void test_every_op_has_a_case(void **state)
{
    (void)state;
    int missing = 0;
    for (int op = 0; op < SP_OP__COUNT; op++) {
        if (op == SP_OP_CONST || op == SP_OP_LEAF) continue; /* no op to check: the inputs themselves */
        int n = 0;
        for (int k = 0; k < CASE_COUNT; k++) n += cases[k].op == (sp_op)op;
        if (!n) {
            print_error("# op %d \"%s\" has no gradient-test case in tests/test_ops_grad.c\n", op, sp_op_name((sp_op)op));
            missing++;
        }
    }
    assert_int_equal(missing, 0);
}

/* The checker must catch a gradient off by 1e-4 relative in one component, for every op: that is
 * how tight "tight enough to catch a wrong backward" is here. */
static void test_checker_rejects_a_slightly_wrong_gradient(void **state)
{
    (void)state;
    for (int k = 0; k < CASE_COUNT; k++) {
        case_run g;
        make_case(&g, k);
        /* perturb a component that has a nonzero gradient (component 1 is in A, used by every case) */
        sp_gradcheck_opts o = {1e-6, 1e-9, 1e-6, 1};
        int bad = sp_gradcheck(g.ps, build, &g, &o);
        if (bad < 1) print_error("# checker missed a perturbed gradient in \"%s\"\n", cases[k].name);
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

static int group_setup(void **state)
{
    (void)state;
    scratch = sp_tape_new();
    return scratch ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    sp_tape_free(scratch);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_op_has_a_case),
        cmocka_unit_test(test_every_op_matches_finite_differences),
        cmocka_unit_test(test_checker_rejects_a_slightly_wrong_gradient),
        cmocka_unit_test(test_losses_are_stable_for_huge_logits),
    };
    return cmocka_run_group_tests_name("ops_grad", tests, group_setup, group_teardown);
}
