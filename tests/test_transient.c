/* SPDX-License-Identifier: MIT */
/* test_transient.c - SP_TRANSIENT (include/spool/core.h): a node that one op reads holds its
 * gradient in place of its values when no backward reads them (the op table's no_read,
 * autograd/tape.c), and a whole-sequence LSTM or RNN keeps its gates there (sp__keep). Checked:
 * the gradients are bit for bit those of the same graph without the flag (the bias's to 1e-13), for the LSTM, RNN and
 * GRU ops, full and variable lengths; the seq op keeps its gates in xp's memory when it is its only
 * reader, and not when a mul reads xp, directly or through a view; an op that reads xp after the keeper fails with a message; a keeper recorded after the
 * loss leaves exact zeros; and the recurrent layers mark their projection, so a whole LSTM
 * layer passes a gradient check with it. Double build. */
#include "helpers.h"
#include "../autograd/tape_internal.h"

#include <string.h>

enum { T = 5, B = 3, I = 4, H = 6 };

typedef struct {
    sp_params *ps;
    sp_tensor *w_ih, *w_hh, *bias, *w_out, *b_hn;
} model;

static void model_init(model *m)
{
    m->ps = sp_params_new();
    m->w_ih = sp_param(m->ps, "w_ih", 4 * H, I);
    m->w_hh = sp_param(m->ps, "w_hh", 4 * H, H);
    m->bias = sp_param(m->ps, "bias", 1, 4 * H);
    m->w_out = sp_param(m->ps, "w_out", H, 2);
    m->b_hn = sp_param(m->ps, "b_hn", 1, H);
    sp_rng r;
    sp_rng_seed(&r, 5);
    sp_test_fill(m->w_ih, &r, -0.5, 0.5), sp_test_fill(m->w_hh, &r, -0.5, 0.5);
    sp_test_fill(m->bias, &r, -0.5, 0.5), sp_test_fill(m->w_out, &r, -0.5, 0.5), sp_test_fill(m->b_hn, &r, -0.5, 0.5);
}

/* xp = x W_ih^T + b, through sp_lstm_seq (kind 0, or sp_rnn_seq: kind 1, sp_gru_seq: kind 2) and
 * loss = sum((h W_out)^2), where xp is also read by a mul recorded before the seq op (mode 1),
 * through a view before it (mode 2), or only by the seq op (mode 0), with the last row's length
 * 2 when varlen. Returns the gradients, concatenated, and in *where: 0 xp's gradient has its own
 * memory, 1 it took the place of xp's data (zeroed), 2 the seq op kept its gates there (sp__keep). */
enum { GMAX = 4 };
static void run(model *m, int kind, int transient, int mode, int varlen, double *grads, int *where)
{
    int G = kind == 0 ? 4 * H : kind == 1 ? H : 3 * H, lengths[B] = {T, T, 2};
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_test_const(t, T * B, I, 11);
    sp_tensor *w_ih = sp_slice_rows(t, m->w_ih, 0, G), *bias = sp_slice_cols(t, m->bias, 0, G);
    sp_tensor *w_hh = sp_slice_rows(t, m->w_hh, 0, G);
    sp_tensor *xp = sp_matmul_bias(t, x, 0, w_ih, 1, bias);
    if (transient) xp->flags |= SP_TRANSIENT;
    sp_tensor *extra = NULL;
    if (mode == 1) extra = sp_sum(t, sp_mul(t, xp, xp));
    if (mode == 2) {
        sp_tensor *v = sp_slice_rows(t, xp, 0, B);
        extra = sp_sum(t, sp_mul(t, v, v));
    }
    sp_tensor *h0 = sp_const(t, B, H), *c0 = sp_const(t, B, H);
    const int *len = varlen ? lengths : NULL;
    sp_tensor *all = kind == 0 ? sp_lstm_seq(t, xp, w_hh, h0, c0, T, len)
                   : kind == 1 ? sp_rnn_seq(t, xp, w_hh, h0, 0, T, len)
                               : sp_gru_seq(t, xp, w_hh, m->b_hn, h0, T, len);
    sp_tensor *y = sp_matmul(t, sp_slice_rows(t, all, 0, T * B), m->w_out);
    sp_tensor *loss = sp_sum(t, sp_mul(t, y, y));
    if (extra) loss = sp_add(t, loss, extra);
    assert_int_equal(sp_tape_status(t), SP_OK);
    int kept = (xp->flags & SP__KEPT) != 0;
    sp_params_zero_grad(m->ps);
    assert_int_equal(sp_backward(t, loss), SP_OK);
    *where = xp->grad != xp->data ? 0 : kept ? 2 : 1;
    size_t n = 0;
    sp_tensor *ws[] = {m->w_ih, m->w_hh, m->bias, m->w_out, m->b_hn};
    for (int k = 0; k < 5; k++)
        for (int i = 0; i < ws[k]->rows * ws[k]->cols; i++) grads[n++] = ws[k]->grad[i];
    assert_int_equal(xp->flags & (1 << 30), 0); /* the internal marker is gone again */
    sp_tape_free(t);
}

#define NG (4 * H * I + 4 * H * H + 4 * H + 2 * H + H)

/* Bit for bit the gradients of the same graph without the flag, for every kind, reader and
 * length (the bias's to 1e-13: a keeper leaves the column sums of xp's gradient, summed in its own
 * order, for the bias gradient to add: autograd/tape_internal.h's shadows); where the gradient lives: every kind keeps its gates in xp when the seq op is its only
 * reader (the GRU its y_n + b_hn, and later that part of dy, in a buffer of its own). */
static void test_in_place_when_nobody_reads(void **state)
{
    (void)state;
    model m;
    model_init(&m);
    static double plain[NG], flagged[NG];
    for (int kind = 0; kind < 3; kind++)
        for (int mode = 0; mode < 3; mode++)
            for (int varlen = 0; varlen < 2; varlen++) {
                int where;
                run(&m, kind, 0, mode, varlen, plain, &where);
                assert_int_equal(where, 0);
                run(&m, kind, 1, mode, varlen, flagged, &where);
                if (mode) assert_int_equal(where, 0); /* read by mul, directly or through a view: kept */
                else assert_int_equal(where, 2);
                for (int i = 0; i < NG; i++) {
                    /* the bias: a keeper sums xp's gradient as it writes it (another order) */
                    int is_bias = i >= 4 * H * I + 4 * H * H && i < 4 * H * I + 4 * H * H + 4 * H;
                    double tol = is_bias && where == 2 ? 1e-13 * (1 + fabs(plain[i])) : 0;
                    if (!(fabs(plain[i] - flagged[i]) <= tol))
                        fail_msg("kind %d mode %d varlen %d: gradient %d differs", kind, mode, varlen, i);
                }
            }
    sp_params_free(m.ps);
}

/* xp = x W_ih^T + b, transient, kept by an LSTM seq op recorded after *loss = sum(W_out^2). */
static sp_tensor *kept_projection(sp_tape *t, model *m, sp_tensor **loss)
{
    sp_tensor *x = sp_test_const(t, T * B, I, 11);
    sp_tensor *xp = sp_name(t, sp_matmul_bias(t, x, 0, m->w_ih, 1, m->bias), "proj");
    xp->flags |= SP_TRANSIENT;
    *loss = sp_sum(t, sp_mul(t, m->w_out, m->w_out));
    sp_tensor *h0 = sp_const(t, B, H), *c0 = sp_const(t, B, H);
    assert_non_null(sp_lstm_seq(t, xp, m->w_hh, h0, c0, T, NULL));
    assert_true(xp->flags & SP__KEPT);
    return xp;
}

/* Once the seq op has kept its gates in xp, nothing may read xp: recording such an op fails with
 * a message naming the node, instead of reading gates as if they were the projection. And a
 * keeper recorded after the loss never runs its backward, so the node's gradient is zeroed as
 * usual: W_ih, reached only through it, gets exactly 0 (not the gates left in the memory). */
static void test_after_the_keeper(void **state)
{
    (void)state;
    model m;
    model_init(&m);
    sp_tape *t = sp_tape_new();
    sp_tensor *loss, *xp = kept_projection(t, &m, &loss);
    assert_null(sp_mul(t, xp, xp));
    assert_int_not_equal(sp_tape_status(t), SP_OK);
    assert_non_null(strstr(sp_tape_errmsg(t), "\"proj\""));
    assert_non_null(strstr(sp_tape_errmsg(t), "transient"));
    sp_tape_reset(t);
    kept_projection(t, &m, &loss);
    sp_params_zero_grad(m.ps);
    assert_int_equal(sp_backward(t, loss), SP_OK);
    for (int i = 0; i < 4 * H * I; i++) assert_true(m.w_ih->grad[i] == 0);
    for (int i = 0; i < 4 * H; i++) assert_true(m.bias->grad[i] == 0);
    sp_tape_free(t);
    sp_params_free(m.ps);
}

/* The layer marks its projection: a whole LSTM layer's gradients with the runner as it is equal
 * a gradient check (so the in-place buffer is right, not only the same as before). */
typedef struct {
    sp_params *ps;
    sp_cell cell;
} layer;

static sp_tensor *layer_loss(sp_tape *t, void *ctx)
{
    layer *l = ctx;
    sp_tensor *x = sp_test_const(t, T * B, I, 3);
    sp_seq_out out = {0};
    sp_seq_opts o = {0};
    if (sp_seq_run(t, &l->cell, x, T, B, &o, &out) != SP_OK) return NULL;
    return sp_sum(t, sp_mul(t, out.out, out.out));
}

static void test_layer_gradcheck(void **state)
{
    (void)state;
    layer l = {sp_params_new(), {0}};
    sp_rng r;
    sp_rng_seed(&r, 9);
    assert_int_equal(sp_cell_init(&l.cell, SP_CELL_LSTM, l.ps, "lstm", 0, 0, I, H, NULL, &r), SP_OK);
    sp_tape *t = sp_tape_new();
    sp_tensor *loss = layer_loss(t, &l);
    assert_non_null(loss);
    assert_int_equal(sp_backward(t, loss), SP_OK);
    int marked = 0, in_place = 0; /* the runner marked its projection, and it took the place */
    for (int i = 0; i < sp_tape_count(t); i++) {
        const sp_tensor *n = t->rec[i].out;
        if ((n->flags & SP_TRANSIENT)) marked++, in_place += n->grad == n->data;
    }
    assert_int_equal(marked, 1);
    assert_int_equal(in_place, 1);
    sp_tape_free(t);
    assert_int_equal(sp_gradcheck(l.ps, layer_loss, &l, NULL), 0);
    sp_params_free(l.ps);
}

/* The bias gradient from the column sums the keeper leaves (autograd/tape_internal.h): with
 * several chunks of rows (B = 37: five chunks of 8, the last one short, one row of length 0) and
 * enough work for the seq op to split the batch, it equals the gradient of the same graph without
 * the flag (to 1e-13), and 1, 2 and 3 threads give the same bits. */
static void test_bias_sums(void **state)
{
    (void)state;
    enum { BB = 37, TT = 4, II = 8, HH = 96, GG = 4 * HH };
    sp_params *ps = sp_params_new();
    sp_tensor *w_ih = sp_param(ps, "w_ih", GG, II), *w_hh = sp_param(ps, "w_hh", GG, HH);
    sp_tensor *bias = sp_param(ps, "bias", 1, GG), *w_out = sp_param(ps, "w_out", HH, 2);
    sp_rng r;
    sp_rng_seed(&r, 9);
    sp_test_fill(w_ih, &r, -0.5, 0.5), sp_test_fill(w_hh, &r, -0.2, 0.2), sp_test_fill(bias, &r, -0.5, 0.5);
    sp_test_fill(w_out, &r, -0.5, 0.5);
    int lengths[BB];
    for (int b = 0; b < BB; b++) lengths[b] = b == 5 ? 0 : 1 + (b * 7) % TT;
    static double got[4][GG];
    for (int run = 0; run < 4; run++) { /* run 0: not transient; 1-3: kept, on 1, 2, 3 threads */
        sp_set_threads(run ? run : 1);
        sp_tape *t = sp_tape_new();
        sp_tensor *x = sp_test_const(t, TT * BB, II, 11);
        sp_tensor *xp = sp_matmul_bias(t, x, 0, w_ih, 1, bias);
        if (run) xp->flags |= SP_TRANSIENT;
        sp_tensor *h0 = sp_const(t, BB, HH), *c0 = sp_const(t, BB, HH);
        sp_tensor *all = sp_lstm_seq(t, xp, w_hh, h0, c0, TT, lengths);
        sp_tensor *y = sp_matmul(t, sp_slice_rows(t, all, 0, TT * BB), w_out);
        sp_tensor *loss = sp_sum(t, sp_mul(t, y, y));
        assert_int_equal(sp_tape_status(t), SP_OK);
        assert_int_equal((xp->flags & SP__KEPT) != 0, run != 0);
        sp_params_zero_grad(ps);
        assert_int_equal(sp_backward(t, loss), SP_OK);
        for (int j = 0; j < GG; j++) got[run][j] = bias->grad[j];
        sp_tape_free(t);
    }
    for (int j = 0; j < GG; j++) {
        if (!(fabs(got[1][j] - got[0][j]) <= 1e-13 * (1 + fabs(got[0][j]))))
            fail_msg("bias gradient %d: %.17g kept, %.17g not", j, got[1][j], got[0][j]);
        if (got[2][j] != got[1][j] || got[3][j] != got[1][j])
            fail_msg("bias gradient %d: %.17g / %.17g / %.17g on 1 / 2 / 3 threads", j, got[1][j], got[2][j], got[3][j]);
    }
    sp_set_threads(1);
    sp_params_free(ps);
}

int main(void)
{
    sp_init(&(sp_init_opts){.flags = SP_INIT_FIXED_THREADS}); /* test_bias_sums: threads even on a busy machine */
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_in_place_when_nobody_reads),
                                       cmocka_unit_test(test_after_the_keeper),
                                       cmocka_unit_test(test_layer_gradcheck), cmocka_unit_test(test_bias_sums)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
