/* SPDX-License-Identifier: MIT */
/* test_noise.c - zoneout, recurrent (variational hidden-to-hidden) dropout and candidate dropout,
 * the sp_cell_noise options of every built-in cell. Double build.
 *   - evaluation: recurrent and candidate dropout are the identity; zoneout is its expectation
 *     z s_{t-1} + (1 - z) s_new, checked against a step-by-step loop over sp_cell_forward;
 *   - training: each option reproduces a hand-written reference with the runner's masks (one key
 *     from the seed, each mask keyed by what it is for and the step; zoneout: every element is
 *     either the previous state or the fresh one), the same seed gives the same run, another
 *     seed another run;
 *   - gradients: finite differences over T = 5 steps for every cell kind with all options on;
 *   - the keyed masks themselves: drop rate, the same elements in any drawing order. */
#include "helpers.h"
#include "../autograd/noise.h"

#include <math.h>
#include <string.h>

enum { T = 5, B = 3, I = 3, H = 4 };

typedef struct {
    sp_cell_kind kind;
    int flags, proj;
} kind_case;

static const kind_case kinds[] = {
    {SP_CELL_RNN_TANH, 0, 0}, {SP_CELL_RNN_RELU, 0, 0}, {SP_CELL_GRU_UPDATE_ONLY, 0, 0},
    {SP_CELL_GRU_RESET_BEFORE_MATMUL, 0, 0}, {SP_CELL_GRU_RESET_AFTER_MATMUL, 0, 0}, {SP_CELL_LSTM, 0, 0},
    {SP_CELL_LSTM, SP_LSTM_PEEPHOLE, 0}, {SP_CELL_LSTM, SP_LSTM_COUPLED, 0}, {SP_CELL_LSTM, 0, 2},
    {SP_CELL_LN_LSTM, 0, 0}, {SP_CELL_LN_GRU, 0, 0},
};
#define NKINDS ((int)(sizeof kinds / sizeof kinds[0]))

static void make_cell(sp_cell *c, sp_params *ps, int k)
{
    sp_rng rng;
    sp_rng_seed(&rng, 70 + k);
    sp_cell_opts o = {0};
    o.lstm_flags = kinds[k].flags;
    o.proj_size = kinds[k].proj;
    assert_int_equal(sp_cell_init(c, kinds[k].kind, ps, "n", 0, 0, I, H, &o, &rng), SP_OK);
    /* layer-norm gains and biases away from their 1 / 0 init, so the test sees them */
    for (int j = 0; j < 3; j++) {
        if (c->ln_gain[j]) sp_test_fill(c->ln_gain[j], &rng, 0.5, 1.5);
        if (c->ln_bias[j]) sp_test_fill(c->ln_bias[j], &rng, -0.5, 0.5);
    }
}

static void assert_same(const sp_tensor *a, const sp_tensor *b, double tol, const char *what)
{
    assert_int_equal(a->rows, b->rows);
    assert_int_equal(a->cols, b->cols);
    for (int i = 0; i < a->rows; i++)
        for (int j = 0; j < a->cols; j++) sp_test_close(*sp_at(a, i, j), *sp_at(b, i, j), tol, tol, what);
}

static double max_diff(const sp_tensor *a, const sp_tensor *b)
{
    double m = 0;
    for (int i = 0; i < a->rows; i++)
        for (int j = 0; j < a->cols; j++) m = fmax(m, fabs((double)*sp_at(a, i, j) - (double)*sp_at(b, i, j)));
    return m;
}

/* ---------------------------------------------------------------- evaluation */

static void test_eval_dropouts_are_identity_and_zoneout_its_expectation(void **state)
{
    (void)state;
    for (int k = 0; k < NKINDS; k++) {
        sp_params *ps = sp_params_new();
        sp_cell c;
        make_cell(&c, ps, k);
        sp_tape *t = sp_tape_new();
        sp_tensor *x = sp_test_const(t, T * B, I, 5);
        sp_seq_out plain, dropped, zoned;
        assert_int_equal(sp_seq_run(t, &c, x, T, B, NULL, &plain), SP_OK);
        sp_seq_opts o = {0};
        o.noise = (sp_cell_noise){0, 0, 0.5, 0.5, NULL, 0, 0}; /* eval: no rng needed */
        assert_int_equal(sp_seq_run(t, &c, x, T, B, &o, &dropped), SP_OK);
        assert_same(plain.out, dropped.out, 0, "eval recurrent/candidate dropout is not the identity");
        double zh = 0.3, zc = c.n_state > 1 ? 0.6 : 0;
        o.noise = (sp_cell_noise){zh, zc, 0, 0, NULL, 0, 0};
        assert_int_equal(sp_seq_run(t, &c, x, T, B, &o, &zoned), SP_OK);
        /* reference: s = z s + (1 - z) step(s), one sp_cell_forward at a time */
        sp_tensor *st[2], *ns[2];
        assert_int_equal(sp_cell_zero_state(t, &c, B, st), SP_OK);
        for (int s = 0; s < T; s++) {
            assert_int_equal(sp_cell_forward(t, &c, sp_slice_rows(t, x, s * B, B), st, ns), SP_OK);
            for (int q = 0; q < c.n_state; q++) {
                double z = q ? zc : zh;
                st[q] = sp_add(t, sp_scale(t, st[q], z), sp_scale(t, ns[q], 1 - z));
            }
            sp_tensor *ys = sp_slice_rows(t, zoned.out, s * B, B);
            assert_same(ys, st[0], 1e-12, "eval zoneout vs its expectation, step by step");
        }
        assert_true(max_diff(zoned.out, plain.out) > 1e-3); /* and it did something */
        sp_tape_free(t);
        sp_params_free(ps);
    }
}

/* ------------------------------------------------------------------ training */

/* Zoneout in training: at every step every element of h (and c) is either its previous value or
 * the value one plain step from the previous (zoned) state computes; both happen. */
static void test_train_zoneout_keeps_or_updates_each_element(void **state)
{
    (void)state;
    for (int k = 0; k < NKINDS; k++) {
        sp_params *ps = sp_params_new();
        sp_cell c;
        make_cell(&c, ps, k);
        sp_tape *t = sp_tape_new();
        sp_tensor *x = sp_test_const(t, T * B, I, 6);
        sp_rng rng;
        sp_rng_seed(&rng, 12);
        sp_seq_opts o = {0};
        o.noise = (sp_cell_noise){0.4, c.n_state > 1 ? 0.5 : 0, 0, 0, &rng, 1, 0};
        sp_seq_out r;
        assert_int_equal(sp_seq_run(t, &c, x, T, B, &o, &r), SP_OK);
        /* replay: the states are not returned per step, so rebuild them from the outputs (h) and,
         * for c, by trying both possibilities against the final state at the end */
        sp_tensor *st[2], *ns[2];
        assert_int_equal(sp_cell_zero_state(t, &c, B, st), SP_OK);
        int kept = 0, updated = 0;
        sp_rng_seed(&rng, 12); /* the runner draws one key; h's and c's masks are keyed by step */
        const uint64_t key = sp__noise_key(&rng);
        for (int s = 0; s < T; s++) {
            assert_int_equal(sp_cell_forward(t, &c, sp_slice_rows(t, x, s * B, B), st, ns), SP_OK);
            for (int q = 0; q < c.n_state; q++) {
                double z = q ? o.noise.zoneout_c : o.noise.zoneout_h;
                sp_tensor *nq = sp_const(t, B, c.state_size[q]);
                for (int i = 0; i < B; i++)
                    for (int j = 0; j < c.state_size[q]; j++) {
                        sp_real m = 1; /* the (s * B + i, j) element of the step-keyed mask: 0 = zone out */
                        if (z > 0) {
                            sp_real row[16];
                            sp__noise_fill(row, 1, c.state_size[q], z, 1, key, q ? SP_NOISE_ZONEOUT_C : SP_NOISE_ZONEOUT_H,
                                           (int64_t)s * B + i);
                            m = row[j];
                        }
                        int keep = m == 0;
                        *sp_at(nq, i, j) = keep ? *sp_at(st[q], i, j) : *sp_at(ns[q], i, j);
                        if (q == 0) {
                            double y = *sp_at(r.out, s * B + i, j);
                            int is_old = fabs(y - *sp_at(st[q], i, j)) < 1e-12;
                            int is_new = fabs(y - *sp_at(ns[q], i, j)) < 1e-12;
                            assert_true(keep ? is_old : is_new);
                            kept += keep, updated += !keep;
                        }
                    }
                st[q] = nq;
            }
        }
        assert_true(kept > 0 && updated > 0);
        for (int q = 0; q < c.n_state; q++) assert_same(r.final[q], st[q], 1e-12, "final zoned state");
        sp_tape_free(t);
        sp_params_free(ps);
    }
}

/* A [B, C] dropout mask (p = 0.5) of the key: rows row0.. of the mask `what` (autograd/noise.h). */
static sp_tensor *keyed_mask(sp_tape *t, int C, uint64_t key, uint64_t what, int64_t row0)
{
    sp_tensor *m = sp_const(t, B, C);
    sp__noise_fill(m->data, B, C, 0.5, 2, key, what, row0);
    return m;
}

/* Recurrent dropout on the vanilla RNN and candidate dropout on the LSTM against their equations
 * written out with the runner's masks: one key from the seed, the h mask per sequence, a candidate
 * mask per step keyed by the step. */
static void test_train_dropouts_match_their_equations(void **state)
{
    (void)state;
    for (int which = 0; which < 2; which++) {
        int k = which ? 5 : 0; /* rnn_tanh, lstm */
        sp_params *ps = sp_params_new();
        sp_cell c;
        make_cell(&c, ps, k);
        sp_tape *t = sp_tape_new();
        sp_tensor *x = sp_test_const(t, T * B, I, 7);
        sp_rng rng;
        sp_rng_seed(&rng, 4);
        sp_seq_opts o = {0};
        o.noise = (sp_cell_noise){0, 0, which ? 0.0 : 0.5, which ? 0.5 : 0.0, &rng, 1, 0};
        sp_seq_out r;
        assert_int_equal(sp_seq_run(t, &c, x, T, B, &o, &r), SP_OK);
        sp_rng_seed(&rng, 4); /* the runner's one key, its masks keyed by what they are and the step */
        const uint64_t key = sp__noise_key(&rng);
        sp_tensor *hm = which ? NULL : keyed_mask(t, H, key, SP_NOISE_RECURRENT, 0);
        sp_tensor *h = sp_const(t, B, H), *cs = sp_const(t, B, H);
        sp_tensor *bias = sp_add(t, c.b_ih, c.b_hh);
        for (int s = 0; s < T; s++) {
            sp_tensor *xt = sp_slice_rows(t, x, s * B, B);
            if (!which) {
                sp_tensor *pre = sp_add(t, sp_add(t, sp_matmul_ex(t, xt, 0, c.w_ih, 1), bias),
                                        sp_matmul_ex(t, sp_mul(t, h, hm), 0, c.w_hh, 1));
                h = sp_tanh(t, pre);
            } else {
                sp_tensor *gm = keyed_mask(t, H, key, SP_NOISE_CANDIDATE, (int64_t)s * B);
                sp_tensor *a = sp_add(t, sp_add(t, sp_matmul_ex(t, xt, 0, c.w_ih, 1), bias), sp_matmul_ex(t, h, 0, c.w_hh, 1));
                sp_tensor *q[4];
                assert_int_equal(sp_split_cols(t, a, 4, q), SP_OK);
                sp_tensor *g = sp_mul(t, sp_tanh(t, q[2]), gm);
                cs = sp_add(t, sp_mul(t, sp_sigmoid(t, q[1]), cs), sp_mul(t, sp_sigmoid(t, q[0]), g));
                h = sp_mul(t, sp_sigmoid(t, q[3]), sp_tanh(t, cs));
            }
            assert_same(sp_slice_rows(t, r.out, s * B, B), h, 1e-12, which ? "candidate dropout" : "recurrent dropout");
        }
        /* same seed: same run; another seed: another run */
        sp_seq_out again, other;
        sp_rng_seed(&rng, 4);
        assert_int_equal(sp_seq_run(t, &c, x, T, B, &o, &again), SP_OK);
        assert_same(r.out, again.out, 0, "same seed, same run");
        sp_rng_seed(&rng, 5);
        assert_int_equal(sp_seq_run(t, &c, x, T, B, &o, &other), SP_OK);
        assert_true(max_diff(r.out, other.out) > 1e-6);
        sp_tape_free(t);
        sp_params_free(ps);
    }
}

/* Every option through a stack: sp_rnn_opts.noise reaches every layer, eval switches it off. */
static void test_stack_passes_noise_and_eval_switches_it_off(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 2);
    sp_rnn rnn;
    assert_int_equal(sp_rnn_init(&rnn, ps, "s", SP_CELL_LSTM, I, H, 2, 0, NULL, &rng), SP_OK);
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_test_const(t, T * B, I, 9);
    sp_rnn_opts o = {0};
    sp_rnn_out plain, noisy, eval;
    assert_int_equal(sp_rnn_run(t, &rnn, x, T, B, &o, &plain), SP_OK);
    o.noise = (sp_cell_noise){0, 0, 0.3, 0.3, NULL, 0, 0};
    o.rng = &rng;
    o.train = 1;
    assert_int_equal(sp_rnn_run(t, &rnn, x, T, B, &o, &noisy), SP_OK);
    assert_true(max_diff(plain.out, noisy.out) > 1e-4);
    o.train = 0;
    assert_int_equal(sp_rnn_run(t, &rnn, x, T, B, &o, &eval), SP_OK);
    assert_same(plain.out, eval.out, 0, "eval stack with dropouts");
    /* a rate out of range is an error naming it */
    o.noise.zoneout_h = 1.5;
    assert_int_not_equal(sp_rnn_run(t, &rnn, x, T, B, &o, &eval), SP_OK);
    assert_non_null(strstr(sp_tape_errmsg(t), "zoneout_h"));
    sp_tape_free(t);
    sp_params_free(ps);
}

/* ----------------------------------------------------------------- gradients */

typedef struct {
    sp_cell c;
    int all;
} grad_ctx;

static sp_tensor *build(sp_tape *t, void *ctx)
{
    grad_ctx *g = ctx;
    sp_rng rng;
    sp_rng_seed(&rng, 31); /* the same masks at every rebuild */
    sp_seq_opts o = {0};
    o.noise = (sp_cell_noise){0.3, g->c.n_state > 1 ? 0.4 : 0, 0.3, 0.3, &rng, 1, 0};
    sp_tensor *x = sp_test_const(t, T * B, I, 3);
    sp_seq_out r;
    if (sp_seq_run(t, &g->c, x, T, B, &o, &r) != SP_OK) return NULL;
    sp_tensor *w = sp_test_const(t, T * B, g->c.out_size, 8);
    sp_tensor *l = sp_sum(t, sp_mul(t, r.out, w));
    if (g->c.n_state > 1) l = sp_add(t, l, sp_sum(t, sp_tanh(t, r.final[1])));
    return l;
}

static void test_gradients_with_every_option_on(void **state)
{
    (void)state;
    for (int k = 0; k < NKINDS; k++) {
        sp_params *ps = sp_params_new();
        grad_ctx g = {0};
        make_cell(&g.c, ps, k);
        int bad = sp_gradcheck(ps, build, &g, NULL);
        if (bad) print_error("# cell case %d (%s): %d gradient components wrong\n", k, sp_cell_kind_name(&g.c), bad);
        assert_int_equal(bad, 0);
        sp_gradcheck_opts po = {1e-6, 1e-9, 1e-6, 1};
        assert_true(sp_gradcheck(ps, build, &g, &po) >= 1); /* the check can fail */
        sp_params_free(ps);
    }
}

/* The keyed masks: a drop rate near p, the same elements whether a mask is drawn whole or a few
 * rows at a time in any order, and other elements for another key, purpose or row. */
static void test_keyed_masks(void **state)
{
    (void)state;
    enum { R = 200, C = 100 };
    static sp_real whole[R * C], part[R * C], other[R * C];
    sp__noise_fill(whole, R, C, 0.3, 1, 42, SP_NOISE_DROPOUT, 1000);
    int dropped = 0;
    for (int i = 0; i < R * C; i++) dropped += whole[i] == 0;
    sp_test_close(dropped / (double)(R * C), 0.3, 0, 0.01, "drop rate"); /* 5 sigma is 0.016 */
    for (int r0 = R - 7; r0 > -7; r0 -= 7) { /* backwards, 7 rows at a time */
        int lo = r0 < 0 ? 0 : r0;
        sp__noise_fill(part + (size_t)lo * C, r0 + 7 - lo, C, 0.3, 1, 42, SP_NOISE_DROPOUT, 1000 + lo);
    }
    assert_memory_equal(whole, part, sizeof whole);
    const uint64_t alt[3][3] = {{43, SP_NOISE_DROPOUT, 1000}, {42, SP_NOISE_ZONEOUT_H, 1000}, {42, SP_NOISE_DROPOUT, 1001}};
    for (int k = 0; k < 3; k++) {
        sp__noise_fill(other, R, C, 0.3, 1, alt[k][0], alt[k][1], (int64_t)alt[k][2]);
        int same = 0;
        for (int i = 0; i < R * C; i++) same += other[i] == whole[i];
        assert_true(same < 0.65 * R * C); /* independent masks agree on 0.7^2 + 0.3^2 = 58 % */
    }
}

/* The fill (a vector kernel per instruction set, rows on the team) against the element's bits read
 * as a uniform, the definition in noise.h, for rates whose threshold p 2^32 is whole and not. */
static void test_fill_equals_the_bits(void **state)
{
    (void)state;
    enum { R = 300, C = 77 }; /* odd C: every vector width leaves a tail; R C above the thread threshold */
    static sp_real m[R * C];
    const double ps[] = {0.3, 0.5, 0.25, 1e-9, 0.999999, 0.1 + 1.0 / 4294967296.0};
    for (int k = 0; k < 6; k++) {
        sp__noise_fill(m, R, C, ps[k], 2, 7, SP_NOISE_BETWEEN + 1, 12345);
        for (int i = 0; i < R; i++)
            for (int j = 0; j < C; j++) {
                double u = (double)(sp__noise_bits(7, SP_NOISE_BETWEEN + 1, 12345 + i, j) >> 32) / 4294967296.0;
                if (m[(size_t)i * C + j] != (u < ps[k] ? 0 : 2)) fail_msg("p = %.17g: element (%d, %d) disagrees", ps[k], i, j);
            }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_dropouts_are_identity_and_zoneout_its_expectation),
        cmocka_unit_test(test_train_zoneout_keeps_or_updates_each_element),
        cmocka_unit_test(test_train_dropouts_match_their_equations),
        cmocka_unit_test(test_stack_passes_noise_and_eval_switches_it_off),
        cmocka_unit_test(test_gradients_with_every_option_on),
        cmocka_unit_test(test_fill_equals_the_bits),
        cmocka_unit_test(test_keyed_masks),
    };
    return cmocka_run_group_tests_name("noise", tests, NULL, NULL);
}
