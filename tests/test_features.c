/* SPDX-License-Identifier: MIT */
/* test_features.c - layer norm, attention, segments and streaming (double build):
 *   layer_norm: finite differences (and the checker catches a 1e-4 error), values against a
 *     hand computation; the LN-LSTM / LN-GRU cells over T = 6 steps by finite differences;
 *   attention ops (dot, additive, context, mask) by finite differences, values by hand, masked
 *     steps get exactly zero weight; the attention layer of every kind by finite differences;
 *   recomputed segments: loss and every gradient equal to one whole run on the plain tape (to
 *     rounding: 1e-12) with every dropout and zoneout on (each piece, from the run's rng state
 *     and its first step as step0, draws the run's masks, and again in the recomputation), the
 *     scratch tape holds one segment;
 *   streaming inference: the same outputs as sp_rnn_run, and a constant tape size per step. */
#include "helpers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static sp_tensor *weighted_sum(sp_tape *t, sp_tensor *x, uint64_t seed)
{
    if (!x) return NULL;
    sp_tensor *w = sp_const(t, x->rows, x->cols);
    sp_rng r;
    sp_rng_seed(&r, seed);
    sp_test_fill(w, &r, -1, 1);
    return sp_sum(t, sp_mul(t, x, w));
}

static void fill_params(sp_params *ps, uint64_t seed)
{
    sp_rng r;
    sp_rng_seed(&r, seed);
    for (size_t k = 0; k < ps->numel; k++) ps->value[k] = (sp_real)(2 * sp_rng_uniform(&r) - 1);
}

/* ------------------------------------------------------------------ ops */

enum { LN_FULL, LN_NO_AFFINE, LN_VIEW, ATT_DOT, ATT_ADD, ATT_CTX, ATT_MASKED_CHAIN, OP_CASES };
static const char *op_case_name[OP_CASES] = {"layer_norm", "layer_norm without gain/bias", "layer_norm of a view",
                                             "attn_dot", "attn_additive", "attn_context", "masked attention chain"};

typedef struct {
    int op;
    sp_params *ps;
    sp_tensor *a, *b, *c;
} op_case;

enum { S = 4, AB = 3, D = 5 };

static sp_tensor *op_build(sp_tape *t, void *ctx)
{
    op_case *g = ctx;
    static const int len[AB] = {4, 2, 3};
    switch (g->op) {
    case LN_FULL: return weighted_sum(t, sp_layer_norm(t, g->a, g->b, g->c), 1);
    case LN_NO_AFFINE: return weighted_sum(t, sp_layer_norm(t, sp_tanh(t, g->a), NULL, NULL), 2);
    case LN_VIEW: return weighted_sum(t, sp_layer_norm(t, sp_slice_cols(t, g->a, 1, 5), sp_slice_cols(t, g->b, 0, 5), NULL), 3);
    case ATT_DOT: return weighted_sum(t, sp_attn_dot(t, g->a, g->b, S), 4);
    case ATT_ADD: return weighted_sum(t, sp_attn_additive(t, g->a, g->b, g->c, S), 5);
    case ATT_CTX: return weighted_sum(t, sp_attn_context(t, sp_softmax(t, g->a), g->b, S), 6);
    case ATT_MASKED_CHAIN: { /* scores -> mask -> softmax -> context, keys = values */
        sp_tensor *w = sp_softmax(t, sp_attn_mask(t, sp_attn_additive(t, g->a, g->b, g->c, S), len));
        return weighted_sum(t, sp_attn_context(t, w, g->b, S), 7);
    }
    }
    return NULL;
}

static void op_make(op_case *g, int op)
{
    int ar = 4, ac = 6, br = 1, bc = 6, cr = 1, cc = 6;
    if (op == LN_NO_AFFINE) br = cr = 0;
    if (op == LN_VIEW) cr = 0;
    if (op == ATT_DOT) ar = AB, ac = D, br = S * AB, bc = D, cr = 0;
    if (op == ATT_ADD || op == ATT_MASKED_CHAIN) ar = AB, ac = D, br = S * AB, bc = D, cr = 1, cc = D;
    if (op == ATT_CTX) ar = AB, ac = S, br = S * AB, bc = D, cr = 0;
    g->op = op;
    g->ps = sp_params_new();
    g->a = sp_param(g->ps, "A", ar, ac);
    g->b = br ? sp_param(g->ps, "B", br, bc) : NULL;
    g->c = cr ? sp_param(g->ps, "C", cr, cc) : NULL;
    fill_params(g->ps, 200 + op);
}

static void test_new_ops_match_finite_differences(void **state)
{
    (void)state;
    for (int op = 0; op < OP_CASES; op++) {
        op_case g;
        op_make(&g, op);
        int bad = sp_gradcheck(g.ps, op_build, &g, NULL);
        if (bad) print_error("# %s: %d gradient components wrong\n", op_case_name[op], bad);
        assert_int_equal(bad, 0);
        sp_gradcheck_opts po = {1e-6, 1e-9, 1e-6, 1};
        assert_true(sp_gradcheck(g.ps, op_build, &g, &po) >= 1);
        sp_params_free(g.ps);
    }
}

/* Values by hand: row [1, 2, 3, 6] has mean 3, biased var 3.5. */
static void test_layer_norm_and_attention_values(void **state)
{
    (void)state;
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_const(t, 1, 4), *g = sp_const(t, 1, 4), *b = sp_const(t, 1, 4);
    sp_real xv[4] = {1, 2, 3, 6}, gv[4] = {1, 2, 0.5, -1}, bv[4] = {0, 1, 0, 0.25};
    memcpy(x->data, xv, sizeof xv), memcpy(g->data, gv, sizeof gv), memcpy(b->data, bv, sizeof bv);
    sp_tensor *y = sp_layer_norm(t, x, g, b);
    assert_non_null(y);
    double rs = 1 / sqrt(3.5 + 1e-5);
    for (int j = 0; j < 4; j++) sp_test_close(y->data[j], (xv[j] - 3) * rs * gv[j] + bv[j], 1e-12, 1e-12, "layer_norm value");
    /* gain of the wrong shape: an error naming the op */
    assert_null(sp_layer_norm(t, x, sp_const(t, 1, 3), NULL));
    assert_non_null(strstr(sp_tape_errmsg(t), "layer_norm"));
    sp_tape_reset(t);
    /* attention, B = 2, S = 3, D = 2: keys row s*B + b */
    sp_tensor *q = sp_const(t, 2, 2), *k = sp_const(t, 6, 2), *v = sp_const(t, 1, 2);
    sp_real qv[4] = {1, 0, 0.5, -1}, kv[12] = {1, 2, 3, 4, -1, 0, 0, 1, 2, 2, 1, -2}, vv[2] = {0.5, -2};
    memcpy(q->data, qv, sizeof qv), memcpy(k->data, kv, sizeof kv), memcpy(v->data, vv, sizeof vv);
    sp_tensor *e = sp_attn_dot(t, q, k, 3), *ea = sp_attn_additive(t, q, k, v, 3);
    assert_non_null(e);
    assert_non_null(ea);
    for (int bb = 0; bb < 2; bb++)
        for (int s = 0; s < 3; s++) {
            const sp_real *kr = kv + (s * 2 + bb) * 2, *qr = qv + bb * 2;
            sp_test_close(*sp_at(e, bb, s), qr[0] * kr[0] + qr[1] * kr[1], 1e-12, 1e-12, "attn_dot value");
            sp_test_close(*sp_at(ea, bb, s), vv[0] * tanh(qr[0] + kr[0]) + vv[1] * tanh(qr[1] + kr[1]), 1e-12, 1e-12,
                          "attn_additive value");
        }
    int len[2] = {2, 0};
    sp_tensor *w = sp_softmax(t, sp_attn_mask(t, e, len));
    assert_true(*sp_at(w, 0, 2) == 0);                 /* padding gets exactly zero weight */
    sp_test_close(*sp_at(w, 0, 0) + *sp_at(w, 0, 1), 1, 1e-12, 1e-12, "weights of real steps sum to 1");
    for (int s = 0; s < 3; s++) assert_true(isfinite((double)*sp_at(w, 1, s))); /* length 0: no NaN */
    sp_tensor *c = sp_attn_context(t, w, k, 3);
    for (int d = 0; d < 2; d++)
        sp_test_close(*sp_at(c, 0, d), *sp_at(w, 0, 0) * kv[0 + d] + *sp_at(w, 0, 1) * kv[4 + d], 1e-12, 1e-12,
                      "context value");
    int badlen[2] = {4, 0};
    assert_null(sp_attn_mask(t, e, badlen));
    sp_tape_free(t);
}

/* ------------------------------------------------------------ LN cells */

enum { T = 6, B = 3, I = 3, H = 4 };

typedef struct {
    sp_cell c;
    sp_attention att;
    int stack_layers;
    sp_rnn rnn;
} cell_ctx;

static sp_tensor *cell_build(sp_tape *t, void *ctx)
{
    cell_ctx *g = ctx;
    static const int len[B] = {6, 4, 5};
    sp_tensor *x = sp_test_const(t, T * B, I, 3);
    sp_seq_opts o = {0};
    o.lengths = len;
    sp_seq_out r;
    if (sp_seq_run(t, &g->c, x, T, B, &o, &r) != SP_OK) return NULL;
    sp_tensor *l = weighted_sum(t, r.out, 8);
    for (int k = 0; k < g->c.n_state; k++) l = sp_add(t, l, weighted_sum(t, sp_tanh(t, r.final[k]), 9 + k));
    return l;
}

static void test_ln_cells_match_finite_differences(void **state)
{
    (void)state;
    sp_cell_kind kinds[2] = {SP_CELL_LN_LSTM, SP_CELL_LN_GRU};
    for (int k = 0; k < 2; k++) {
        sp_params *ps = sp_params_new();
        sp_rng rng;
        sp_rng_seed(&rng, 5 + k);
        cell_ctx g = {0};
        assert_int_equal(sp_cell_init(&g.c, kinds[k], ps, "ln", 0, 0, I, H, NULL, &rng), SP_OK);
        assert_string_equal(sp_cell_kind_name(&g.c), k ? "ln_gru" : "ln_lstm");
        assert_null(sp_cell_pytorch_mode(&g.c));
        fill_params(ps, 40 + k);
        int bad = sp_gradcheck(ps, cell_build, &g, NULL);
        if (bad) print_error("# %s: %d gradient components wrong\n", sp_cell_kind_name(&g.c), bad);
        assert_int_equal(bad, 0);
        sp_gradcheck_opts po = {1e-6, 1e-9, 1e-6, 1};
        assert_true(sp_gradcheck(ps, cell_build, &g, &po) >= 1);
        sp_params_free(ps);
    }
}

/* ------------------------------------------------------- attention layer */

static sp_tensor *att_build(sp_tape *t, void *ctx)
{
    cell_ctx *g = ctx;
    static const int len[B] = {6, 2, 4};
    sp_tensor *enc = sp_tanh(t, sp_matmul_ex(t, sp_test_const(t, T * B, I, 4), 0, g->c.w_ih, 1)); /* [T*B, H] */
    sp_tensor *keys = sp_attention_keys(t, &g->att, enc), *q = sp_tanh(t, sp_matmul_ex(t, sp_test_const(t, B, I, 6), 0, g->c.w_ih, 1));
    sp_tensor *l = NULL;
    for (int step = 0; step < 3; step++) { /* a decoder reusing the keys, its query moving */
        sp_tensor *w, *c = sp_attention_step(t, &g->att, q, keys, enc, T, len, &w);
        if (!c || !w) return NULL;
        sp_tensor *term = sp_add(t, weighted_sum(t, c, 20 + step), weighted_sum(t, w, 30 + step));
        l = l ? sp_add(t, l, term) : term;
        q = sp_tanh(t, sp_add(t, q, c));
    }
    return l;
}

static void test_attention_layer_gradients(void **state)
{
    (void)state;
    for (int kind = SP_ATTN_DOT; kind <= SP_ATTN_ADDITIVE; kind++) {
        sp_params *ps = sp_params_new();
        sp_rng rng;
        sp_rng_seed(&rng, 9);
        cell_ctx g = {0};
        g.c.w_ih = sp_param(ps, "enc.w", H, I);
        assert_int_equal(sp_attention_init(&g.att, ps, "attn", kind, H, H, 5, &rng), SP_OK);
        fill_params(ps, 50 + kind);
        int bad = sp_gradcheck(ps, att_build, &g, NULL);
        if (bad) print_error("# attention kind %d: %d gradient components wrong\n", kind, bad);
        assert_int_equal(bad, 0);
        sp_params_free(ps);
    }
    sp_attention a;
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 1);
    assert_int_not_equal(sp_attention_init(&a, ps, "bad", SP_ATTN_DOT, 3, 4, 0, &rng), SP_OK); /* dot needs Q = K */
    sp_params_free(ps);
}

/* --------------------------------------------------------------- segments */

typedef struct {
    sp_rnn *rnn;
    sp_linear *head;
    const int *tgt; /* [T*B] */
    int T0, K;      /* this segment's first step and length */
    sp_rng *rng;
} seg_user;

/* K steps (from step T0) of a 2-layer stack with every dropout and zoneout from the carried
 * states, and the head's loss over those steps; outputs: loss, then every layer's states. */
static sp_status seg_fn(sp_tape *t, void *user, sp_tensor *const *in, sp_tensor **out)
{
    seg_user *u = user;
    sp_rnn_state init = {0};
    int n = 0;
    for (int l = 0; l < u->rnn->num_layers; l++)
        for (int k = 0; k < u->rnn->cell[l][0].n_state; k++) init.s[l][0][k] = in[1 + n++];
    sp_rnn_opts o = {0};
    o.init = &init;
    o.rng = u->rng;
    o.train = 1;
    o.between_layers_dropout = 0.3;
    o.variational_dropout = 0.2;
    o.output_dropout = 0.25;
    o.noise = (sp_cell_noise){0.2, 0.3, 0.2, 0.2, u->rng, 1, u->T0}; /* masks of steps T0.. of the whole run */
    sp_rnn_out r;
    if (sp_rnn_run(t, u->rnn, in[0], u->K, B, &o, &r) != SP_OK) return sp_tape_status(t);
    sp_tensor *logits = sp_linear_forward(t, u->head, r.out);
    out[0] = sp_scale(t, sp_softmax_xent(t, logits, u->tgt + u->T0 * B, NULL), (double)u->K / T);
    n = 0;
    for (int l = 0; l < u->rnn->num_layers; l++)
        for (int k = 0; k < u->rnn->cell[l][0].n_state; k++) out[1 + n++] = r.final.s[l][0][k];
    return sp_tape_status(t);
}

enum { SEG_T = 12, V = 5 };

static void test_segments_give_the_plain_gradients(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 3);
    sp_rnn rnn;
    sp_linear head;
    assert_int_equal(sp_rnn_init(&rnn, ps, "r", SP_CELL_LSTM, I, H, 2, 0, NULL, &rng), SP_OK);
    assert_int_equal(sp_linear_init(&head, ps, "head", H, V, 1, &rng), SP_OK);
    int tgt[SEG_T * B];
    for (int i = 0; i < SEG_T * B; i++) tgt[i] = (i * 7 + 3) % V;
    size_t n = ps->numel;
    sp_real *g_plain = calloc(n, sizeof(sp_real)), *g_seg = calloc(n, sizeof(sp_real));
    double loss[2];
    size_t scratch_bytes[3] = {0};
    for (int mode = 0; mode < 2; mode++) {
        {
            int K = mode ? 3 : SEG_T; /* mode 0: one whole run on the main tape; 1: recomputed pieces */
            sp_tape *t = sp_tape_new(), *scratch = sp_tape_new();
            sp_params_zero_grad(ps);
            sp_rng drop, start;
            sp_rng_seed(&drop, 77);
            start = drop;
            seg_user us[SEG_T]; /* one per segment: the recomputation reads it again in backward */
            sp_tensor *x = sp_test_const(t, SEG_T * B, I, 12);
            sp_tensor *st[4];
            for (int k = 0; k < 4; k++) st[k] = sp_const(t, B, H);
            sp_tensor *total = NULL;
            for (int t0 = 0; t0 < SEG_T; t0 += K) {
                seg_user *u = &us[t0 / K];
                *u = (seg_user){&rnn, &head, tgt, t0, K, &drop};
                drop = start; /* each piece from the run's rng state: its masks are the run's */
                sp_tensor *in[5] = {sp_slice_rows(t, x, t0 * B, K * B), st[0], st[1], st[2], st[3]}, *out[5];
                if (mode) {
                    assert_int_equal(sp_segment(t, scratch, seg_fn, u, &drop, 5, in, 5, out), SP_OK);
                    size_t sb = sp_tape_bytes(scratch);
                    if (t0 == 0) scratch_bytes[0] = sb;
                    else assert_true(sb <= scratch_bytes[0]); /* one segment at a time */
                } else {
                    assert_int_equal(seg_fn(t, u, in, out), SP_OK);
                }
                for (int k = 0; k < 4; k++) st[k] = out[1 + k];
                total = total ? sp_add(t, total, out[0]) : out[0];
            }
            /* the final states feed the loss too, so their gradients cross every segment */
            total = sp_add(t, total, weighted_sum(t, st[3], 5));
            assert_int_equal(sp_backward(t, total), SP_OK);
            loss[mode] = total->data[0];
            memcpy(mode ? g_seg : g_plain, ps->grad, n * sizeof(sp_real));
            if (mode) scratch_bytes[1] = sp_tape_bytes(t);
            else scratch_bytes[2] = sp_tape_bytes(t);
            sp_tape_free(t);
            sp_tape_free(scratch);
        }
    }
    sp_test_close(loss[1], loss[0], 1e-13, 1e-13, "segmented loss");
    double worst = 0;
    for (size_t k = 0; k < n; k++) {
        sp_test_close(g_seg[k], g_plain[k], 1e-12, 1e-13, "segmented gradient");
        worst = fmax(worst, fabs((double)g_seg[k] - (double)g_plain[k]));
    }
    print_message("# segments of 3 of 12 steps vs one run: max |gradient difference| %.3g; main tape %zu vs %zu bytes\n", worst,
                  scratch_bytes[1], scratch_bytes[2]);
    assert_true(scratch_bytes[1] < scratch_bytes[2] / 2); /* the main tape kept far less */
    free(g_plain);
    free(g_seg);
    sp_params_free(ps);
}

static void test_segment_errors(void **state)
{
    (void)state;
    sp_tape *t = sp_tape_new();
    sp_tensor *out[1];
    assert_int_not_equal(sp_segment(t, t, seg_fn, NULL, NULL, 0, NULL, 1, out), SP_OK); /* scratch = main */
    assert_non_null(strstr(sp_tape_errmsg(t), "segment"));
    sp_tape_free(t);
}

/* -------------------------------------------------------------- streaming */

static void test_stream_equals_the_tape_path(void **state)
{
    (void)state;
    sp_cell_kind kinds[4] = {SP_CELL_LSTM, SP_CELL_GRU_RESET_AFTER_MATMUL, SP_CELL_LN_LSTM, SP_CELL_RNN_TANH};
    for (int k = 0; k < 4; k++) {
        sp_params *ps = sp_params_new();
        sp_rng rng;
        sp_rng_seed(&rng, 60 + k);
        sp_rnn rnn;
        sp_cell_opts co = {0};
        co.proj_size = k == 0 ? 2 : 0;
        assert_int_equal(sp_rnn_init(&rnn, ps, "s", kinds[k], I, H, 2, 0, &co, &rng), SP_OK);
        fill_params(ps, 70 + k);
        sp_cell_noise nz = {0.25, kinds[k] == SP_CELL_LSTM || kinds[k] == SP_CELL_LN_LSTM ? 0.5 : 0, 0.3, 0.3, NULL, 0, 0};
        sp_tape *t = sp_tape_new();
        sp_tensor *x = sp_test_const(t, T * B, I, 80);
        sp_rnn_opts ro = {0};
        ro.noise = nz;
        sp_rnn_out r;
        assert_int_equal(sp_rnn_run(t, &rnn, x, T, B, &ro, &r), SP_OK);
        sp_stream *s = sp_stream_new(&rnn, B, &nz);
        assert_non_null(s);
        size_t bytes = 0;
        for (int step = 0; step < T; step++) {
            sp_tape *st = sp_stream_begin(s);
            sp_tensor *xs = sp_const(st, B, I);
            memcpy(xs->data, sp_at(x, step * B, 0), (size_t)B * I * sizeof(sp_real));
            sp_tensor *h = sp_stream_step(s, xs);
            assert_non_null(h);
            for (int i = 0; i < B; i++)
                for (int j = 0; j < h->cols; j++)
                    sp_test_close(*sp_at(h, i, j), *sp_at(r.out, step * B + i, j), 1e-13, 1e-14, "stream vs tape output");
            if (step == 0) bytes = sp_tape_bytes(st);
            else assert_true(sp_tape_bytes(st) == bytes); /* O(1) per step */
        }
        for (int l = 0; l < 2; l++)
            for (int q = 0; q < rnn.cell[l][0].n_state; q++) {
                const sp_real *sv = sp_stream_state(s, l, q);
                for (int i = 0; i < B; i++)
                    for (int j = 0; j < rnn.cell[l][0].state_size[q]; j++)
                        sp_test_close(sv[i * rnn.cell[l][0].state_size[q] + j], *sp_at(r.final.s[l][0][q], i, j), 1e-13,
                                      1e-14, "stream vs tape final state");
            }
        sp_stream_reset(s);
        assert_true(sp_stream_state(s, 0, 0)[0] == 0);
        assert_null(sp_stream_state(s, 5, 0));
        sp_stream_free(s);
        sp_tape_free(t);
        sp_params_free(ps);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_ops_match_finite_differences),
        cmocka_unit_test(test_layer_norm_and_attention_values),
        cmocka_unit_test(test_ln_cells_match_finite_differences),
        cmocka_unit_test(test_attention_layer_gradients),
        cmocka_unit_test(test_segments_give_the_plain_gradients),
        cmocka_unit_test(test_segment_errors),
        cmocka_unit_test(test_stream_equals_the_tape_path),
    };
    return cmocka_run_group_tests_name("features", tests, NULL, NULL);
}
