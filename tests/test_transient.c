/* SPDX-License-Identifier: MIT */
/* test_transient.c - SP_TRANSIENT (include/spool/core.h): a node whose values nobody reads after
 * the forward pass holds its gradient in their place, but only when no backward reads them
 * (the op table's no_read, autograd/tape.c). Checked: an input projection feeding a whole-
 * sequence LSTM takes the place (and the gradients are bit for bit those of the same graph
 * without the flag), the same node feeding an op that reads it, or read through a view, keeps its
 * values; and the recurrent layers mark their projection, so a whole LSTM layer's gradients
 * stay equal to the flag-free ones. Double build. */
#include "helpers.h"
#include "../autograd/tape_internal.h"

#include <string.h>

enum { T = 5, B = 3, I = 4, H = 6 };

typedef struct {
    sp_params *ps;
    sp_tensor *w_ih, *w_hh, *bias, *w_out;
} model;

static void model_init(model *m)
{
    m->ps = sp_params_new();
    m->w_ih = sp_param(m->ps, "w_ih", 4 * H, I);
    m->w_hh = sp_param(m->ps, "w_hh", 4 * H, H);
    m->bias = sp_param(m->ps, "bias", 1, 4 * H);
    m->w_out = sp_param(m->ps, "w_out", H, 2);
    sp_rng r;
    sp_rng_seed(&r, 5);
    sp_test_fill(m->w_ih, &r, -0.5, 0.5), sp_test_fill(m->w_hh, &r, -0.5, 0.5);
    sp_test_fill(m->bias, &r, -0.5, 0.5), sp_test_fill(m->w_out, &r, -0.5, 0.5);
}

/* xp = x W_ih^T + b, through sp_lstm_seq (mode 0), or also read by a mul (mode 1), or read
 * through a view by a mul (mode 2); loss = sum((h W_out)^2). Returns the gradients, concatenated,
 * and whether xp's gradient took the place of its data. */
static int run(model *m, int transient, int mode, double *grads)
{
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_test_const(t, T * B, I, 11);
    sp_tensor *xp = sp_matmul_bias(t, x, 0, m->w_ih, 1, m->bias);
    if (transient) xp->flags |= SP_TRANSIENT;
    sp_tensor *h0 = sp_const(t, B, H), *c0 = sp_const(t, B, H);
    sp_tensor *all = sp_lstm_seq(t, xp, m->w_hh, h0, c0, T, NULL);
    sp_tensor *y = sp_matmul(t, sp_slice_rows(t, all, 0, T * B), m->w_out);
    sp_tensor *loss = sp_sum(t, sp_mul(t, y, y));
    if (mode == 1) loss = sp_add(t, loss, sp_sum(t, sp_mul(t, xp, xp)));
    if (mode == 2) {
        sp_tensor *v = sp_slice_rows(t, xp, 0, B);
        loss = sp_add(t, loss, sp_sum(t, sp_mul(t, v, v)));
    }
    sp_params_zero_grad(m->ps);
    assert_int_equal(sp_backward(t, loss), SP_OK);
    int in_place = xp->grad == xp->data;
    size_t n = 0;
    sp_tensor *ws[] = {m->w_ih, m->w_hh, m->bias, m->w_out};
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < ws[k]->rows * ws[k]->cols; i++) grads[n++] = ws[k]->grad[i];
    assert_int_equal(xp->flags & (1 << 30), 0); /* the internal marker is gone again */
    sp_tape_free(t);
    return in_place;
}

#define NG (4 * H * I + 4 * H * H + 4 * H + 2 * H)

static void test_in_place_when_nobody_reads(void **state)
{
    (void)state;
    model m;
    model_init(&m);
    static double plain[NG], flagged[NG];
    for (int mode = 0; mode < 3; mode++) {
        assert_int_equal(run(&m, 0, mode, plain), 0);
        int in_place = run(&m, 1, mode, flagged);
        assert_int_equal(in_place, mode == 0); /* read by mul, directly or through a view: kept */
        for (int i = 0; i < NG; i++) assert_true(plain[i] == flagged[i]);
    }
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

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_in_place_when_nobody_reads),
                                       cmocka_unit_test(test_layer_gradcheck)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
