/* SPDX-License-Identifier: MIT */
/* test_layers_seq.c - what the runners promise beyond correct gradients (test_layers.c has those):
 * the all-steps input projection equals the step-by-step form, padding changes nothing, a
 * length-0 row gives no NaN, the bidirectional layout, stateful carry with row reset and a clear
 * batch-size error, a shared weight receives the sum of its per-step gradients, generation and
 * encoder-decoder from `step` calls, PyTorch names and shapes, initialisation options, errors,
 * the dot export of an unrolled stack, and a custom cell (public ops only) that trains.
 * Double build, so "equal" below means equal to ~1e-12. */
#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T = 6, B = 3, I = 3, H = 4 };

static const sp_cell_kind all_kinds[] = {SP_CELL_RNN_TANH, SP_CELL_RNN_RELU, SP_CELL_GRU_UPDATE_ONLY,
                                         SP_CELL_GRU_RESET_BEFORE_MATMUL, SP_CELL_GRU_RESET_AFTER_MATMUL, SP_CELL_LSTM};

static sp_tensor *const_filled(sp_tape *t, int rows, int cols, uint64_t seed)
{
    sp_tensor *x = sp_const(t, rows, cols);
    sp_rng r;
    sp_rng_seed(&r, seed);
    sp_test_fill(x, &r, -1, 1);
    return x;
}

static void assert_rows_equal(const sp_tensor *a, int ra, const sp_tensor *b, int rb, int n, double tol,
                              const char *what)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < a->cols; j++) sp_test_close(*sp_at(a, ra + i, j), *sp_at(b, rb + i, j), tol, tol, what);
}

static int all_finite(const sp_real *p, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (!isfinite((double)p[k])) return 0;
    return 1;
}

/* ------------------------------------------------------------- projection */

/* sp_seq_run projects all T*B rows in one matmul; sp_cell_forward projects one step at a time. */
static void test_all_steps_projection_equals_step_by_step(void **state)
{
    (void)state;
    sp_cell_opts variants[] = {{0}, {SP_LSTM_PEEPHOLE | SP_LSTM_COUPLED, 2, 0, 0}};
    for (size_t k = 0; k < sizeof all_kinds / sizeof all_kinds[0] + 1; k++) {
        sp_cell_kind kind = k < 6 ? all_kinds[k] : SP_CELL_LSTM;
        sp_params *ps = sp_params_new();
        sp_rng rng;
        sp_rng_seed(&rng, 3 + k);
        sp_cell c;
        assert_int_equal(sp_cell_init(&c, kind, ps, "p", 0, 0, I, H, &variants[k == 6], &rng), SP_OK);
        sp_tape *t = sp_tape_new();
        sp_tensor *x = const_filled(t, T * B, I, 11);
        sp_seq_out r;
        assert_int_equal(sp_seq_run(t, &c, x, T, B, NULL, &r), SP_OK);
        sp_tensor *st[2], *ns[2];
        assert_int_equal(sp_cell_zero_state(t, &c, B, st), SP_OK);
        for (int s = 0; s < T; s++) {
            assert_int_equal(sp_cell_forward(t, &c, sp_slice_rows(t, x, s * B, B), st, ns), SP_OK);
            assert_rows_equal(r.out, s * B, ns[0], 0, B, 1e-12, "projected vs step-by-step output");
            st[0] = ns[0], st[1] = ns[1];
        }
        for (int j = 0; j < c.n_state; j++) assert_rows_equal(r.final[j], 0, st[j], 0, B, 1e-12, "final state");
        sp_tape_free(t);
        sp_params_free(ps);
    }
}

/* ----------------------------------------------------------------- masking */

/* A padded batch against each row run alone at its own length: same outputs at real steps, zero
 * outputs at padded steps, same final state; garbage in the padded input changes nothing. */
static void test_padding_changes_nothing(void **state)
{
    (void)state;
    const int len[B] = {4, 6, 2};
    for (size_t k = 0; k < sizeof all_kinds / sizeof all_kinds[0]; k++) {
        for (int rev = 0; rev < 2; rev++) {
            sp_params *ps = sp_params_new();
            sp_rng rng;
            sp_rng_seed(&rng, 40 + k);
            sp_cell c;
            assert_int_equal(sp_cell_init(&c, all_kinds[k], ps, "m", 0, rev, I, H, NULL, &rng), SP_OK);
            sp_tape *t = sp_tape_new();
            sp_tensor *x = const_filled(t, T * B, I, 5);
            sp_tensor *xg = const_filled(t, T * B, I, 5); /* same, but padding is garbage */
            for (int s = 0; s < T; s++)
                for (int b = 0; b < B; b++)
                    if (s >= len[b])
                        for (int j = 0; j < I; j++) *sp_at(xg, s * B + b, j) = (sp_real)(1e3 * (j + 1));
            sp_seq_opts o = {len, NULL, rev, NULL, {}};
            sp_seq_out r, rg;
            assert_int_equal(sp_seq_run(t, &c, x, T, B, &o, &r), SP_OK);
            assert_int_equal(sp_seq_run(t, &c, xg, T, B, &o, &rg), SP_OK);
            assert_rows_equal(r.out, 0, rg.out, 0, T * B, 0, "garbage in padding changed the output");
            for (int b = 0; b < B; b++) {
                /* row b alone, unpadded, length len[b] */
                sp_tensor *xb = sp_const(t, len[b], I);
                for (int s = 0; s < len[b]; s++) memcpy(sp_at(xb, s, 0), sp_at(x, s * B + b, 0), I * sizeof(sp_real));
                sp_seq_opts ob = {NULL, NULL, rev, NULL, {}};
                sp_seq_out rb;
                assert_int_equal(sp_seq_run(t, &c, xb, len[b], 1, &ob, &rb), SP_OK);
                for (int s = 0; s < T; s++)
                    for (int j = 0; j < c.out_size; j++)
                        sp_test_close(*sp_at(r.out, s * B + b, j), s < len[b] ? *sp_at(rb.out, s, j) : 0, 1e-12, 1e-12,
                                      "padded batch vs row alone");
                for (int q = 0; q < c.n_state; q++) assert_rows_equal(r.final[q], b, rb.final[q], 0, 1, 1e-12, "final");
            }
            sp_tape_free(t);
            sp_params_free(ps);
        }
    }
}

/* A row of length 0 keeps its initial state, outputs zeros, and nothing anywhere becomes NaN,
 * forward or backward, through a bidirectional stack and every pooling head. */
static void test_length_zero_row_gives_no_nan(void **state)
{
    (void)state;
    const int len[B] = {0, 5, 0};
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 8);
    sp_rnn rnn;
    assert_int_equal(sp_rnn_init(&rnn, ps, "lstm", SP_CELL_LSTM, I, H, 2, 1, NULL, &rng), SP_OK);
    sp_rnn_state init;
    assert_int_equal(sp_rnn_init_state(&rnn, ps, "lstm", &init), SP_OK);
    for (int k = 0; k < init.s[0][0][0]->cols; k++) *sp_at(init.s[0][0][0], 0, k) = (sp_real)0.5; /* h0 of layer 0 */
    sp_tape *t = sp_tape_new();
    sp_tensor *x = const_filled(t, T * B, I, 2);
    sp_rnn_opts o = {len, &init, 0, 0, NULL, 0, {}, 0};
    sp_rnn_out r;
    assert_int_equal(sp_rnn_run(t, &rnn, x, T, B, &o, &r), SP_OK);
    int O = sp_rnn_out_size(&rnn);
    sp_tensor *l = sp_add(t, sp_mean(t, sp_seq_mean(t, r.out, T, B, len)), sp_mean(t, sp_seq_max(t, r.out, T, B, len)));
    l = sp_add(t, l, sp_mean(t, sp_seq_last(t, r.out, T, B, len)));
    l = sp_add(t, l, sp_mean(t, r.final.s[1][1][1]));
    assert_int_equal(sp_backward(t, l), SP_OK);
    assert_true(isfinite((double)l->data[0]));
    assert_true(all_finite(r.out->data, sp_numel(r.out)));
    assert_true(all_finite(ps->grad, ps->numel));
    for (int s = 0; s < T; s++)
        for (int j = 0; j < O; j++) {
            assert_true(*sp_at(r.out, s * B + 0, j) == 0);
            assert_true(*sp_at(r.out, s * B + 2, j) == 0);
        }
    /* final state of the empty row is its (broadcast) initial state */
    for (int j = 0; j < H; j++) sp_test_close(*sp_at(r.final.s[0][0][0], 0, j), 0.5, 0, 0, "empty row keeps h0");
    sp_tape_free(t);
    sp_params_free(ps);
}

/* -------------------------------------------------------------- bidirectional */

/* Pins the layout: concat columns [0, Of) are the forward cell's outputs in time order, [Of, Of+Ob)
 * the backward cell's, where the backward cell read row b from ITS real end: its output at step t
 * is what it has after reading steps len-1 .. t. Final states per direction, explicitly. */
static void test_bidirectional_layout(void **state)
{
    (void)state;
    const int len[B] = {6, 3, 1};
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 21);
    sp_cell f, b;
    assert_int_equal(sp_cell_init(&f, SP_CELL_LSTM, ps, "bi", 0, 0, I, H, NULL, &rng), SP_OK);
    assert_int_equal(sp_cell_init(&b, SP_CELL_GRU_RESET_AFTER_MATMUL, ps, "bi", 0, 1, I, 2, NULL, &rng), SP_OK);
    assert_string_equal(b.name, "bi0_reverse");
    sp_tape *t = sp_tape_new();
    sp_tensor *x = const_filled(t, T * B, I, 9);
    sp_bidir_opts o = {len, NULL, NULL, SP_MERGE_CONCAT, NULL, {}};
    sp_bidir_out r;
    assert_int_equal(sp_bidir_run(t, &f, &b, x, T, B, &o, &r), SP_OK);
    assert_int_equal(r.out->cols, H + 2);
    assert_int_equal(sp_merge_cols(SP_MERGE_CONCAT, H, 2), H + 2);
    for (int row = 0; row < B; row++) {
        int L = len[row];
        /* forward by hand: step through row's real steps */
        sp_tensor *st[2], *ns[2];
        sp_cell_zero_state(t, &f, 1, st);
        for (int s = 0; s < L; s++) {
            sp_cell_forward(t, &f, sp_slice_rows(t, x, s * B + row, 1), st, ns);
            for (int j = 0; j < H; j++)
                sp_test_close(*sp_at(r.out, s * B + row, j), ns[0]->data[j], 1e-12, 1e-12, "fwd half");
            st[0] = ns[0], st[1] = ns[1];
        }
        for (int j = 0; j < H; j++)
            sp_test_close(*sp_at(r.fwd_final[0], row, j), st[0]->data[j], 1e-12, 1e-12, "fwd final");
        /* backward by hand: from the real end L-1 down to 0 */
        sp_tensor *bs[1], *bn[1];
        sp_cell_zero_state(t, &b, 1, bs);
        for (int s = L - 1; s >= 0; s--) {
            sp_cell_forward(t, &b, sp_slice_rows(t, x, s * B + row, 1), bs, bn);
            for (int j = 0; j < 2; j++)
                sp_test_close(*sp_at(r.out, s * B + row, H + j), bn[0]->data[j], 1e-12, 1e-12, "bwd half");
            bs[0] = bn[0];
        }
        for (int j = 0; j < 2; j++)
            sp_test_close(*sp_at(r.bwd_final[0], row, j), bs[0]->data[j], 1e-12, 1e-12, "bwd final");
        for (int s = L; s < T; s++)
            for (int j = 0; j < H + 2; j++) assert_true(*sp_at(r.out, s * B + row, j) == 0);
    }
    assert_int_equal(sp_tape_status(t), SP_OK);
    /* sum / mean / mul merges of two equal-size cells */
    sp_cell b2;
    assert_int_equal(sp_cell_init(&b2, SP_CELL_RNN_TANH, ps, "bi2", 0, 1, I, H, NULL, &rng), SP_OK);
    for (int m = SP_MERGE_SUM; m <= SP_MERGE_MUL; m++) {
        sp_bidir_opts om = {len, NULL, NULL, (sp_merge)m, NULL, {}};
        sp_bidir_out rm;
        assert_int_equal(sp_bidir_run(t, &f, &b2, x, T, B, &om, &rm), SP_OK);
        assert_int_equal(rm.out->cols, H);
        for (size_t e = 0; e < sp_numel(rm.out); e++) {
            double a = rm.fwd_out->data[e], c = rm.bwd_out->data[e];
            double want = m == SP_MERGE_SUM ? a + c : m == SP_MERGE_MEAN ? (a + c) / 2 : a * c;
            sp_test_close(rm.out->data[e], want, 1e-12, 1e-12, "merge");
        }
    }
    /* unequal sizes cannot be summed: a clear error */
    o.merge = SP_MERGE_SUM;
    assert_int_not_equal(sp_bidir_run(t, &f, &b, x, T, B, &o, &r), SP_OK);
    assert_non_null(strstr(sp_tape_errmsg(t), "equal output sizes"));
    sp_tape_free(t);
    sp_params_free(ps);
}

/* ----------------------------------------------------------- stateful carry */

/* T = 6 as one batch vs two batches of 3 with the state carried: same outputs. After a row reset,
 * that row continues from zeros. A batch of another size is a clear error. */
static void test_stateful_carry(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 31);
    sp_rnn rnn;
    assert_int_equal(sp_rnn_init(&rnn, ps, "lstm", SP_CELL_LSTM, I, H, 2, 0, NULL, &rng), SP_OK);
    sp_tape *t = sp_tape_new();
    sp_tensor *x = const_filled(t, T * B, I, 4);
    sp_rnn_out full;
    assert_int_equal(sp_rnn_run(t, &rnn, x, T, B, NULL, &full), SP_OK);
    sp_tensor *ref = full.out;
    sp_tensor *second_zero; /* the second half run from zero state, for the reset row */
    sp_rnn_out rz;
    assert_int_equal(sp_rnn_run(t, &rnn, sp_slice_rows(t, x, 3 * B, 3 * B), 3, B, NULL, &rz), SP_OK);
    second_zero = rz.out;

    sp_carry carry;
    assert_int_equal(sp_carry_init(&carry, &rnn, B), SP_OK);
    sp_tape *t2 = sp_tape_new();
    for (int half = 0; half < 2; half++) {
        sp_tape_reset(t2);
        sp_tensor *xh = sp_const(t2, 3 * B, I);
        memcpy(xh->data, sp_at(x, half * 3 * B, 0), sizeof(sp_real) * 3 * B * I);
        sp_rnn_state init;
        assert_int_equal(sp_carry_load(t2, &carry, B, &init), SP_OK);
        sp_rnn_opts o = {NULL, &init, 0, 0, NULL, 0, {}, 0};
        sp_rnn_out r;
        assert_int_equal(sp_rnn_run(t2, &rnn, xh, 3, B, &o, &r), SP_OK);
        for (int row = 0; row < B; row++)
            for (int s = 0; s < 3; s++) {
                const sp_tensor *want = half == 1 && row == 1 ? second_zero : ref;
                int wrow = half == 1 && row == 1 ? s * B + row : (half * 3 + s) * B + row;
                assert_rows_equal(r.out, s * B + row, want, wrow, 1, 1e-12, "carried state continues the sequence");
            }
        assert_int_equal(sp_carry_save(&carry, &r.final), SP_OK);
        if (half == 0) assert_int_equal(sp_carry_reset_row(&carry, 1), SP_OK);
        /* a loss on the second half sends no gradient into the carried constants: backward works */
        if (half == 1) assert_int_equal(sp_backward(t2, sp_mean(t2, r.out)), SP_OK);
    }
    /* batch of 2 rows with a 3-row carry */
    sp_tape_reset(t2);
    sp_rnn_state init;
    assert_int_equal(sp_carry_load(t2, &carry, 2, &init), SP_ERR_SHAPE);
    print_message("# expected error: %s\n", sp_tape_errmsg(t2));
    assert_non_null(strstr(sp_tape_errmsg(t2), "carried state has 3 rows, batch has 2"));
    /* saving a final state of the wrong batch size is refused too */
    sp_tape_reset(t2);
    sp_rnn_out r2;
    sp_tensor *x2 = const_filled(t2, 2 * 2, I, 1);
    assert_int_equal(sp_rnn_run(t2, &rnn, x2, 2, 2, NULL, &r2), SP_OK);
    assert_int_equal(sp_carry_save(&carry, &r2.final), SP_ERR_SHAPE);
    assert_non_null(strstr(sp_last_error(), "carry holds [3 x"));
    assert_int_equal(sp_carry_reset_row(&carry, 3), SP_ERR_ARG);
    sp_carry_free(&carry);
    sp_tape_free(t2);
    sp_tape_free(t);
    sp_params_free(ps);
}

/* ------------------------------------------------------ shared across time */

/* The built-in RNN's W_hh is used at every step; a hand-unrolled copy that gives step s its own
 * W_s (same values) shows dL/dW_hh = sum_s dL/dW_s. */
static void test_shared_weight_gets_sum_of_step_gradients(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 17);
    sp_cell c;
    assert_int_equal(sp_cell_init(&c, SP_CELL_RNN_TANH, ps, "rnn", 0, 0, I, H, NULL, &rng), SP_OK);
    sp_tensor *Ws[T];
    for (int s = 0; s < T; s++) {
        char nm[32];
        snprintf(nm, sizeof nm, "W_step%d", s);
        Ws[s] = sp_param(ps, nm, H, H);
        memcpy(Ws[s]->data, c.w_hh->data, sizeof(sp_real) * H * H);
    }
    sp_tape *t = sp_tape_new();
    sp_tensor *x = const_filled(t, T * B, I, 6);
    sp_seq_out r;
    assert_int_equal(sp_seq_run(t, &c, x, T, B, NULL, &r), SP_OK);
    assert_int_equal(sp_backward(t, sp_mean(t, r.out)), SP_OK);
    sp_tape *t2 = sp_tape_new();
    sp_tensor *h = sp_const(t2, B, H), *ys[T];
    for (int s = 0; s < T; s++) {
        sp_tensor *xs = sp_matmul_ex(t2, sp_slice_rows(t2, x, s * B, B), 0, c.w_ih, 1);
        sp_tensor *rec = sp_add(t2, sp_matmul_ex(t2, h, 0, Ws[s], 1), c.b_hh);
        h = ys[s] = sp_tanh(t2, sp_add(t2, sp_add(t2, xs, c.b_ih), rec));
    }
    assert_int_equal(sp_backward(t2, sp_mean(t2, sp_concat_rows(t2, ys, T))), SP_OK);
    double nonzero = 0;
    for (int e = 0; e < H * H; e++) {
        double sum = 0;
        for (int s = 0; s < T; s++) sum += Ws[s]->grad[e];
        nonzero += fabs(sum);
        sp_test_close(c.w_hh->grad[e], sum, 1e-12, 1e-14, "dL/dW_hh vs sum of per-step gradients");
    }
    assert_true(nonzero > 0);
    assert_true(fabs((double)Ws[T - 1]->grad[0] - (double)Ws[1]->grad[0]) > 0); /* steps really differ */
    sp_tape_free(t2);
    sp_tape_free(t);
    sp_params_free(ps);
}

/* ------------------------------------------- generation and encoder-decoder */

/* One-to-many: feed each output back as the next input with sp_cell_forward. It must equal running
 * the same inputs through sp_seq_run. Encoder-decoder: the encoder's final state starts a decoder;
 * a loss on the decoder sends gradient into the encoder's weights. */
static void test_generation_and_encoder_decoder(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 12);
    sp_cell enc, dec;
    assert_int_equal(sp_cell_init(&enc, SP_CELL_LSTM, ps, "enc", 0, 0, I, H, NULL, &rng), SP_OK);
    assert_int_equal(sp_cell_init(&dec, SP_CELL_LSTM, ps, "dec", 0, 0, H, H, NULL, &rng), SP_OK);
    sp_tape *t = sp_tape_new();
    sp_tensor *x = const_filled(t, T * B, I, 3);
    sp_seq_out e;
    assert_int_equal(sp_seq_run(t, &enc, x, T, B, NULL, &e), SP_OK);
    /* decoder: start from the encoder state, input = previous output (the first is h_enc) */
    sp_tensor *st[2] = {e.final[0], e.final[1]}, *ns[2], *in = e.final[0], *gen[4];
    for (int s = 0; s < 4; s++) {
        sp_tape_scope(t, "dec/t%d", s);
        assert_int_equal(sp_cell_forward(t, &dec, in, st, ns), SP_OK);
        gen[s] = in = ns[0];
        st[0] = ns[0], st[1] = ns[1];
    }
    sp_tape_scope(t, NULL);
    sp_tensor *g = sp_concat_rows(t, gen, 4);
    /* the same inputs through the runner */
    sp_tensor *ins[4] = {e.final[0], gen[0], gen[1], gen[2]};
    sp_tensor *init[2] = {e.final[0], e.final[1]};
    sp_seq_opts o = {NULL, init, 0, NULL, {}};
    sp_seq_out d;
    assert_int_equal(sp_seq_run(t, &dec, sp_concat_rows(t, ins, 4), 4, B, &o, &d), SP_OK);
    assert_rows_equal(g, 0, d.out, 0, 4 * B, 1e-12, "generation loop vs runner");
    assert_int_equal(sp_backward(t, sp_mean(t, g)), SP_OK);
    double ge = 0;
    for (size_t k = 0; k < sp_numel(enc.w_ih); k++) ge += fabs(enc.w_ih->grad[k]);
    assert_true(ge > 0);
    sp_tape_free(t);
    sp_params_free(ps);
}

/* ------------------------------------------------------- names, init, errors */

static void expect_param(sp_params *ps, const char *name, int rows, int cols)
{
    sp_tensor *p = sp_params_find(ps, name);
    if (!p) {
        print_error("# missing parameter %s\n", name);
        fail();
    }
    assert_int_equal(p->rows, rows);
    assert_int_equal(p->cols, cols);
}

static void test_pytorch_names_and_shapes(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 1);
    sp_rnn r;
    sp_cell_opts lp = {0, 2, 0, 0};
    assert_int_equal(sp_rnn_init(&r, ps, "lstm", SP_CELL_LSTM, 5, 4, 2, 1, &lp, &rng), SP_OK);
    expect_param(ps, "lstm.weight_ih_l0", 16, 5);
    expect_param(ps, "lstm.weight_hh_l0", 16, 2);
    expect_param(ps, "lstm.bias_ih_l0", 1, 16);
    expect_param(ps, "lstm.bias_hh_l0", 1, 16);
    expect_param(ps, "lstm.weight_hr_l0", 2, 4);
    expect_param(ps, "lstm.weight_ih_l0_reverse", 16, 5);
    expect_param(ps, "lstm.weight_hr_l0_reverse", 2, 4);
    expect_param(ps, "lstm.weight_ih_l1", 16, 4); /* P * dirs inputs */
    expect_param(ps, "lstm.weight_hh_l1_reverse", 16, 2);
    assert_int_equal(ps->count, 2 * 2 * 5);
    assert_int_equal(sp_rnn_out_size(&r), 4);
    assert_string_equal(sp_cell_pytorch_mode(&r.cell[0][0]), "LSTM");
    assert_string_equal(sp_cell_kind_name(&r.cell[0][0]), "lstm+projection");
    assert_string_equal(r.cell[1][1].name, "lstm1_reverse");

    sp_params *q = sp_params_new();
    sp_cell c;
    assert_int_equal(sp_cell_init(&c, SP_CELL_GRU_RESET_AFTER_MATMUL, q, "", 0, 0, 3, 4, NULL, &rng), SP_OK);
    expect_param(q, "weight_ih_l0", 12, 3);
    expect_param(q, "weight_hh_l0", 12, 4);
    assert_string_equal(sp_cell_pytorch_mode(&c), "GRU");
    assert_string_equal(c.name, "gru0");
    assert_int_equal(sp_cell_init(&c, SP_CELL_GRU_RESET_BEFORE_MATMUL, q, "rb", 0, 0, 3, 4, NULL, &rng), SP_OK);
    expect_param(q, "rb.weight_hh_resetbefore_l0", 12, 4);
    assert_null(sp_cell_pytorch_mode(&c));
    assert_int_equal(sp_cell_init(&c, SP_CELL_GRU_UPDATE_ONLY, q, "uo", 0, 0, 3, 4, NULL, &rng), SP_OK);
    expect_param(q, "uo.weight_ih_l0", 8, 3);
    assert_null(sp_cell_pytorch_mode(&c));
    sp_cell_opts pc = {SP_LSTM_PEEPHOLE | SP_LSTM_COUPLED, 0, 0, 0};
    assert_int_equal(sp_cell_init(&c, SP_CELL_LSTM, q, "pc", 2, 1, 3, 4, &pc, &rng), SP_OK);
    expect_param(q, "pc.weight_ih_l2_reverse", 12, 3);
    expect_param(q, "pc.weight_peep_l2_reverse", 2, 4);
    assert_null(sp_cell_pytorch_mode(&c));
    assert_string_equal(sp_cell_kind_name(&c), "lstm+peephole+coupled");
    assert_int_equal(sp_cell_init(&c, SP_CELL_RNN_RELU, q, "r", 0, 0, 3, 4, NULL, &rng), SP_OK);
    expect_param(q, "r.weight_hh_l0", 4, 4);
    assert_string_equal(sp_cell_pytorch_mode(&c), "RNN_RELU");
    /* linear and embedding */
    sp_linear lin;
    sp_embed emb;
    assert_int_equal(sp_linear_init(&lin, q, "head", 4, 7, 1, &rng), SP_OK);
    expect_param(q, "head.weight", 7, 4);
    expect_param(q, "head.bias", 1, 7);
    assert_int_equal(sp_embed_init(&emb, q, "emb", 10, 3, &rng), SP_OK);
    expect_param(q, "emb.weight", 10, 3);
    sp_params_free(q);
    sp_params_free(ps);
}

static void test_initialisation_options(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 99);
    sp_cell c, d;
    const int HH = 16;
    assert_int_equal(sp_cell_init(&c, SP_CELL_LSTM, ps, "u", 0, 0, 8, HH, NULL, &rng), SP_OK);
    double bound = 1 / sqrt((double)HH), mx = 0;
    for (size_t k = 0; k < ps->numel; k++) mx = fmax(mx, fabs(ps->value[k]));
    assert_true(mx <= bound && mx > 0.9 * bound); /* U(+-1/sqrt(H)) and actually spread */
    sp_cell_opts o = {0, 0, 1, 1};
    assert_int_equal(sp_cell_init(&d, SP_CELL_LSTM, ps, "o", 0, 0, 8, HH, &o, &rng), SP_OK);
    for (int g = 0; g < 4; g++) /* each gate block [H, H] of W_hh is orthogonal: W^T W = I */
        for (int a = 0; a < HH; a++)
            for (int b = 0; b < HH; b++) {
                double dot = 0;
                for (int i = 0; i < HH; i++) dot += *sp_at(d.w_hh, g * HH + i, a) * *sp_at(d.w_hh, g * HH + i, b);
                sp_test_close(dot, a == b, 1e-9, 1e-9, "orthogonal block");
            }
    for (int j = 0; j < HH; j++) {
        sp_test_close(*sp_at(d.b_ih, 0, HH + j), 1, 0, 0, "forget bias_ih = 1");
        sp_test_close(*sp_at(d.b_hh, 0, HH + j), 0, 0, 0, "forget bias_hh = 0");
    }
    /* orthogonal for a wide block (LSTMP W_hh [4H, P] has tall blocks; test a wide one directly) */
    sp_tensor *w = sp_param(ps, "wide", 3, 7);
    assert_int_equal(sp_init_orthogonal(w, 0, 3, &rng), SP_OK);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            double dot = 0;
            for (int j = 0; j < 7; j++) dot += *sp_at(w, a, j) * *sp_at(w, b, j);
            sp_test_close(dot, a == b, 1e-9, 1e-9, "orthonormal rows");
        }
    sp_params_free(ps);
}

static void test_errors_name_the_layer(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 2);
    sp_cell c;
    sp_cell_opts bad = {0, 4, 0, 0};
    assert_int_equal(sp_cell_init(&c, SP_CELL_LSTM, ps, "l", 0, 0, 3, 4, &bad, &rng), SP_ERR_ARG);
    assert_non_null(strstr(sp_last_error(), "proj_size"));
    assert_int_equal(sp_cell_init(&c, SP_CELL_GRU_RESET_AFTER_MATMUL, ps, "g", 0, 0, 3, 4, &bad, &rng), SP_ERR_ARG);
    assert_int_equal(sp_cell_init(&c, SP_CELL_LSTM, ps, "l", 0, 0, 3, 4, NULL, &rng), SP_OK);
    sp_cell dup;
    assert_int_equal(sp_cell_init(&dup, SP_CELL_LSTM, ps, "l", 0, 0, 3, 4, NULL, &rng), SP_ERR_ARG); /* duplicate */
    assert_non_null(strstr(sp_last_error(), "l.weight_ih_l0"));
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_const(t, T * B, 5);
    sp_seq_out r;
    assert_int_equal(sp_seq_run(t, &c, x, T, B, NULL, &r), SP_ERR_SHAPE);
    print_message("# expected error: %s\n", sp_tape_errmsg(t));
    assert_non_null(strstr(sp_tape_errmsg(t), "\"l0\""));
    assert_null(r.out);
    sp_tape_reset(t);
    x = sp_const(t, T * B, 3);
    int len[B] = {1, 7, 2};
    sp_seq_opts o = {len, NULL, 0, NULL, {}};
    assert_int_equal(sp_seq_run(t, &c, x, T, B, &o, &r), SP_ERR_ARG);
    assert_non_null(strstr(sp_tape_errmsg(t), "lengths[1] = 7"));
    sp_tape_reset(t);
    x = sp_const(t, T * B, 3);
    sp_tensor *h0 = sp_const(t, 2, 4), *init[2] = {h0, NULL};
    sp_seq_opts oi = {NULL, init, 0, NULL, {}};
    assert_int_equal(sp_seq_run(t, &c, x, T, B, &oi, &r), SP_ERR_SHAPE);
    assert_non_null(strstr(sp_tape_errmsg(t), "initial state 0"));
    sp_tape_reset(t);
    sp_rnn_opts ro = {NULL, NULL, 0.5, 0, NULL, 1, {}, 0};
    sp_rnn rnn;
    assert_int_equal(sp_rnn_init(&rnn, ps, "s", SP_CELL_RNN_TANH, 3, 4, 2, 0, NULL, &rng), SP_OK);
    sp_rnn_out rr;
    assert_int_equal(sp_rnn_run(t, &rnn, sp_const(t, T * B, 3), T, B, &ro, &rr), SP_ERR_ARG);
    assert_non_null(strstr(sp_tape_errmsg(t), "rng"));
    sp_tape_reset(t);
    sp_linear lin;
    assert_int_equal(sp_linear_init(&lin, ps, "head", 4, 2, 1, &rng), SP_OK);
    assert_null(sp_linear_forward(t, &lin, sp_const(t, 3, 5)));
    assert_non_null(strstr(sp_tape_errmsg(t), "head.weight"));
    sp_tape_reset(t);
    sp_tensor *y = sp_linear_forward(t, &lin, sp_const(t, 3, 4));
    assert_non_null(y);
    for (int i = 0; i < 3; i++) /* zero input: y = bias */
        for (int j = 0; j < 2; j++) sp_test_close(*sp_at(y, i, j), *sp_at(lin.bias, 0, j), 0, 0, "linear of 0 is the bias");
    sp_tape_free(t);
    sp_params_free(ps);
}

/* Dropout scopes: between_layers_dropout leaves the last layer's output alone, so with one layer it
 * is the identity; variational dropout uses one mask per sequence, so a zeroed input column of a
 * row is zeroed at every step (seen through a linear RNN cell of zero recurrent weight). */
static void test_dropout_scopes(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 4);
    sp_rnn one;
    assert_int_equal(sp_rnn_init(&one, ps, "one", SP_CELL_GRU_RESET_AFTER_MATMUL, I, H, 1, 0, NULL, &rng), SP_OK);
    sp_tape *t = sp_tape_new();
    sp_tensor *x = const_filled(t, T * B, I, 8);
    sp_rnn_out a, b;
    sp_rng dr;
    sp_rng_seed(&dr, 1);
    sp_rnn_opts o = {NULL, NULL, 0.5, 0, &dr, 1, {}, 0};
    assert_int_equal(sp_rnn_run(t, &one, x, T, B, NULL, &a), SP_OK);
    assert_int_equal(sp_rnn_run(t, &one, x, T, B, &o, &b), SP_OK);
    assert_rows_equal(a.out, 0, b.out, 0, T * B, 0, "between-layers dropout must not touch the last layer");
    /* runners leave the caller's scope as it was, with every dropout on */
    sp_tape_scope(t, "model");
    sp_rnn_opts ov = {NULL, NULL, 0.5, 0.5, &dr, 1, {}, 0};
    assert_int_equal(sp_rnn_run(t, &one, x, T, B, &ov, &b), SP_OK);
    assert_string_equal(sp_tape_get_scope(t), "model");
    assert_non_null(strstr(b.out->name, "model/"));
    sp_tape_scope(t, NULL);
    /* variational: mask [B, I] drawn once; the layer's input is x * mask at every step */
    sp_tensor *m = sp_variational_mask(t, B, I, 0.5, &dr);
    assert_non_null(m);
    int zeros = 0;
    for (size_t k = 0; k < sp_numel(m); k++) {
        assert_true(m->data[k] == 0 || fabs(m->data[k] - 2) < 1e-12);
        zeros += m->data[k] == 0;
    }
    assert_true(zeros > 0 && zeros < B * I);
    sp_cell c;
    assert_int_equal(sp_cell_init(&c, SP_CELL_RNN_RELU, ps, "v", 0, 0, I, I, NULL, &rng), SP_OK);
    memset(c.w_hh->data, 0, sizeof(sp_real) * I * I);
    memset(c.w_ih->data, 0, sizeof(sp_real) * I * I);
    memset(c.b_ih->data, 0, sizeof(sp_real) * I);
    memset(c.b_hh->data, 0, sizeof(sp_real) * I);
    for (int j = 0; j < I; j++) *sp_at(c.w_ih, j, j) = 1; /* h = relu(x * mask) */
    sp_tensor *xp = sp_const(t, T * B, I);
    for (size_t k = 0; k < sp_numel(xp); k++) xp->data[k] = 1;
    sp_seq_opts so = {NULL, NULL, 0, m, {}};
    sp_seq_out r;
    assert_int_equal(sp_seq_run(t, &c, xp, T, B, &so, &r), SP_OK);
    for (int s = 0; s < T; s++)
        for (int row = 0; row < B; row++)
            for (int j = 0; j < I; j++)
                sp_test_close(*sp_at(r.out, s * B + row, j), *sp_at(m, row, j), 0, 0, "same mask every step");
    assert_null(sp_variational_mask(t, B, I, 0, &dr));
    assert_int_equal(sp_tape_status(t), SP_OK);
    sp_tape_free(t);
    sp_params_free(ps);
}

/* --------------------------------------------------------------- no malloc */

/* After the first training step sized the arena, the next steps of a masked deep bidirectional
 * stack with dropout allocate nothing: every per-step constant, mask and index list is arena memory. */
static void test_steady_state_steps_do_not_malloc(void **state)
{
    (void)state;
    const int len[B] = {2, 6, 0};
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 10);
    sp_rnn rnn;
    assert_int_equal(sp_rnn_init(&rnn, ps, "lstm", SP_CELL_LSTM, I, H, 2, 1, NULL, &rng), SP_OK);
    sp_tape *t = sp_tape_new();
    int after_first = 0;
    for (int it = 0; it < 4; it++) {
        sp_tape_reset(t);
        sp_tensor *x = const_filled(t, T * B, I, 1 + it);
        sp_rnn_opts o = {len, NULL, 0.2, 0.2, &rng, 1, {}, 0};
        sp_rnn_out r;
        assert_int_equal(sp_rnn_run(t, &rnn, x, T, B, &o, &r), SP_OK);
        assert_int_equal(sp_backward(t, sp_mean(t, sp_seq_mean(t, r.out, T, B, len))), SP_OK);
        if (it == 1) after_first = sp_tape_mallocs(t); /* reset after step 0 may resize once */
        if (it > 1) assert_int_equal(sp_tape_mallocs(t), after_first);
    }
    sp_tape_free(t);
    sp_params_free(ps);
}

/* ---------------------------------------------------------------- dot export */

/* A 3-step 2-layer LSTM exported with clusters: one cluster per layer, one per step inside it.
 * With SPOOL_DOT_OUT set, the file is written there (docs/img/lstm-unrolled.svg is rendered from
 * it with `dot -Tsvg`). */
static void test_dot_export_clusters_layers_and_steps(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 5);
    sp_rnn r;
    /* a peephole LSTM runs step by step (the plain one is a single lstm_seq node per layer) */
    sp_cell_opts co = {0};
    co.lstm_flags = SP_LSTM_PEEPHOLE;
    assert_int_equal(sp_rnn_init(&r, ps, "lstm", SP_CELL_LSTM, 2, 3, 2, 0, &co, &rng), SP_OK);
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_name(t, const_filled(t, 3 * 1, 2, 1), "x");
    sp_rnn_out o;
    assert_int_equal(sp_rnn_run(t, &r, x, 3, 1, NULL, &o), SP_OK);
    assert_string_equal(sp_tape_get_scope(t), ""); /* runners restore the caller's scope */
    sp_tensor *loss = sp_name(t, sp_mean(t, o.out), "loss");
    assert_int_equal(sp_backward(t, loss), SP_OK);
    const char *env = getenv("SPOOL_DOT_OUT");
    char path[256];
    snprintf(path, sizeof path, "%s", env && *env ? env : "test_layers_unrolled.dot");
    assert_int_equal(sp_tape_dot_file(t, path, 1), SP_OK);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    assert_non_null(strstr(buf, "lstm1/t2/"));
    assert_non_null(strstr(buf, "lstm0/t0/"));
    assert_non_null(strstr(buf, "subgraph"));
    if (!(env && *env)) remove(path);
    sp_tape_free(t);
    sp_params_free(ps);
}

/* ----------------------------------------------------------- a custom cell */

/* ---- begin custom cell (the same code is shown in docs/layers.md) ---- */
/* A minimal gated unit (Zhou et al. 2016) written by a user from public ops only:
 *   f  = sigmoid(x W_f^T + h U_f^T + b_f)
 *   n  = tanh(x W_n^T + (f * h) U_n^T + b_n)
 *   h' = (1 - f) * h + f * n                                                                     */
typedef struct {
    sp_tensor *W, *U_f, *U_n, *b; /* W [2H, I] stacks W_f, W_n so one matmul projects both */
} mgu_params;

static sp_tensor *mgu_project(sp_tape *t, const sp_cell *c, sp_tensor *x) /* all steps: [T*B, 2H] */
{
    const mgu_params *p = c->user;
    return sp_add(t, sp_matmul_ex(t, x, 0, p->W, 1), p->b);
}

static sp_status mgu_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out)
{
    const mgu_params *p = c->user;
    int H = c->hidden_size;
    sp_tensor *h = state[0];
    sp_tensor *f = sp_sigmoid(t, sp_add(t, sp_slice_cols(t, xp, 0, H), sp_matmul_ex(t, h, 0, p->U_f, 1)));
    sp_tensor *n = sp_tanh(t, sp_add(t, sp_slice_cols(t, xp, H, H), sp_matmul_ex(t, sp_mul(t, f, h), 0, p->U_n, 1)));
    out[0] = sp_add(t, h, sp_mul(t, f, sp_sub(t, n, h))); /* (1 - f) h + f n */
    return sp_tape_status(t);
}

static sp_status mgu_init(sp_cell *c, mgu_params *p, sp_params *ps, int I, int H, sp_rng *rng)
{
    double k = 1 / sqrt((double)H);
    p->W = sp_param_uniform(ps, "mgu.W", 2 * H, I, k, rng);
    p->U_f = sp_param_uniform(ps, "mgu.U_f", H, H, k, rng);
    p->U_n = sp_param_uniform(ps, "mgu.U_n", H, H, k, rng);
    p->b = sp_param_uniform(ps, "mgu.b", 1, 2 * H, k, rng);
    if (!p->W || !p->U_f || !p->U_n || !p->b) return sp_last_status();
    *c = (sp_cell){.kind = SP_CELL_CUSTOM, .input_size = I, .hidden_size = H, .out_size = H, .gate_size = 2 * H,
                   .n_state = 1, .state_size = {H}, .project = mgu_project, .step = mgu_step, .user = p, .name = "mgu"};
    return SP_OK;
}
/* ---- end custom cell ---- */

typedef struct {
    sp_cell *c;
    sp_linear *head;
    const sp_real *x; /* [TT*TB, 1] inputs */
    const int *len;
} mgu_ctx;

enum { TT = 8, TB = 4 };

/* Task: at every step, predict the input of the PREVIOUS step (needs memory). MSE over real steps. */
static sp_tensor *mgu_loss(sp_tape *t, void *ctx)
{
    mgu_ctx *m = ctx;
    sp_seq_opts o = {m->len, NULL, 0, NULL, {}};
    sp_seq_out r;
    sp_tensor *x = sp_const(t, TT * TB, 1);
    if (!x) return NULL;
    memcpy(x->data, m->x, sizeof(sp_real) * TT * TB);
    if (sp_seq_run(t, m->c, x, TT, TB, &o, &r) != SP_OK) return NULL;
    sp_tensor *pred = sp_linear_forward(t, m->head, r.out), *target = sp_const(t, TT * TB, 1),
              *mask = sp_const(t, TT * TB, 1);
    for (int s = 1; s < TT; s++)
        for (int b = 0; b < TB; b++) {
            target->data[s * TB + b] = m->x[(s - 1) * TB + b];
            mask->data[s * TB + b] = s < m->len[b];
        }
    sp_tensor *d = sp_mul(t, sp_sub(t, pred, target), mask);
    return sp_scale(t, sp_sum(t, sp_mul(t, d, d)), 1.0 / (TT * TB));
}

static void test_custom_cell_gradients_and_training(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 77);
    sp_cell c;
    mgu_params p;
    assert_int_equal(mgu_init(&c, &p, ps, 1, 6, &rng), SP_OK);
    sp_linear head;
    assert_int_equal(sp_linear_init(&head, ps, "head", 6, 1, 1, &rng), SP_OK);
    static const int len[TB] = {8, 5, 8, 3};
    sp_tape *t = sp_tape_new();
    sp_real xbuf[TT * TB];
    mgu_ctx m = {&c, &head, xbuf, len};
    for (int k = 0; k < TT * TB; k++) xbuf[k] = (sp_real)(2 * sp_rng_uniform(&rng) - 1);
    /* the custom cell's gradients are right (finite differences) */
    sp_gradcheck_opts go = {1e-6, 1e-8, 1e-6, -1};
    assert_int_equal(sp_gradcheck(ps, mgu_loss, &m, &go), 0);
    /* and it learns: plain SGD, fresh random batch each step */
    double first = 0, last = 0;
    for (int it = 0; it < 300; it++) {
        for (int k = 0; k < TT * TB; k++) xbuf[k] = (sp_real)(2 * sp_rng_uniform(&rng) - 1);
        sp_tape_reset(t);
        sp_params_zero_grad(ps);
        sp_tensor *l = mgu_loss(t, &m);
        assert_non_null(l);
        assert_int_equal(sp_backward(t, l), SP_OK);
        for (size_t k = 0; k < ps->numel; k++) ps->value[k] -= (sp_real)(0.5 * ps->grad[k]);
        if (it < 20) first += l->data[0] / 20;
        if (it >= 280) last += l->data[0] / 20;
    }
    print_message("# custom MGU cell: loss %.4f (first 20 steps) -> %.4f (last 20)\n", first, last);
    assert_true(last < 0.3 * first);
    sp_tape_free(t);
    sp_params_free(ps);
}

/* The MGU's forward against its equations written out for I = H = 1 (the table test in
 * test_tables.c checks its gradients). */
static void test_mgu_values_by_hand(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 1);
    sp_cell c;
    assert_int_equal(sp_cell_init(&c, SP_CELL_MGU, ps, "", 0, 0, 1, 1, NULL, &rng), SP_OK);
    assert_string_equal(c.w_hh->name, "weight_hh_mgu_l0");
    assert_null(sp_cell_pytorch_mode(&c));
    /* rows f, n */
    c.w_ih->data[0] = 0.5, c.w_ih->data[1] = -1, c.w_hh->data[0] = 2, c.w_hh->data[1] = 0.25;
    c.b_ih->data[0] = 0.1, c.b_ih->data[1] = 0.2, c.b_hh->data[0] = -0.3, c.b_hh->data[1] = 0.05;
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_const(t, 1, 1), *h = sp_const(t, 1, 1), *out[1];
    x->data[0] = 1, h->data[0] = 0.5;
    assert_int_equal(sp_cell_forward(t, &c, x, &h, out), SP_OK);
    double f = 1 / (1 + exp(-(0.5 * 1 + 0.1 + 2 * 0.5 - 0.3)));
    double n = tanh(-1 * 1 + 0.2 + 0.25 * (f * 0.5) + 0.05);
    sp_test_close(out[0]->data[0], (1 - f) * 0.5 + f * n, 1e-12, 1e-12, "mgu h'");
    sp_tape_free(t);
    sp_params_free(ps);
}

int main(void)
{
    /* Tiny matrices: BLIS threads only add wake-up cost (100x on a loaded 2-core machine). */
    sp_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_steps_projection_equals_step_by_step),
        cmocka_unit_test(test_padding_changes_nothing),
        cmocka_unit_test(test_length_zero_row_gives_no_nan),
        cmocka_unit_test(test_bidirectional_layout),
        cmocka_unit_test(test_stateful_carry),
        cmocka_unit_test(test_shared_weight_gets_sum_of_step_gradients),
        cmocka_unit_test(test_generation_and_encoder_decoder),
        cmocka_unit_test(test_pytorch_names_and_shapes),
        cmocka_unit_test(test_initialisation_options),
        cmocka_unit_test(test_errors_name_the_layer),
        cmocka_unit_test(test_dropout_scopes),
        cmocka_unit_test(test_steady_state_steps_do_not_malloc),
        cmocka_unit_test(test_dot_export_clusters_layers_and_steps),
        cmocka_unit_test(test_custom_cell_gradients_and_training),
        cmocka_unit_test(test_mgu_values_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
