/* SPDX-License-Identifier: MIT */
/* test_vanishing.c - the plain-C half of spool-vanishing (task layout, equal parameter budgets
 * checked against the parameters the layers really create, accuracy and norms on hand-made
 * cases) and the measurement it rests on: after sp_backward, the ->grad of a step's output
 * h<t> is dL/dh<t>, checked against the closed form at the last step and against central
 * differences at an early step. */
#include "helpers.h"
#include "vanishing_data.h"
#include "spool/layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_task_layout(void **state)
{
    (void)state;
    vn_task k = {7, 4, 3};
    enum { B = 50 };
    int L = vn_steps(&k), sym[9 * B], key[B], sym2[9 * B], key2[B], count[4] = {0};
    assert_int_equal(L, 9);
    assert_int_equal(vn_inputs(&k), 8);
    uint64_t s1 = 42, s2 = 42;
    vn_make_batch(&k, B, &s1, sym, key);
    vn_make_batch(&k, B, &s2, sym2, key2);
    assert_memory_equal(sym, sym2, sizeof sym);
    assert_memory_equal(key, key2, sizeof key);
    for (int b = 0; b < B; b++) {
        assert_true(key[b] >= 0 && key[b] < 4);
        assert_int_equal(sym[b], key[b]);
        count[key[b]]++;
        for (int s = 1; s <= 7; s++) assert_true(sym[s * B + b] >= 4 && sym[s * B + b] < 7);
        assert_int_equal(sym[8 * B + b], 7);
    }
    for (int j = 0; j < 4; j++) assert_true(count[j] > 0);
    vn_make_batch(&k, B, &s1, sym2, key2); /* the state moved on: a new batch */
    assert_true(memcmp(sym, sym2, sizeof sym) != 0);
}

/* The budget arithmetic must match what sp_cell_init + sp_linear_init really allocate. */
static void test_budget_matches_real_parameter_count(void **state)
{
    (void)state;
    const sp_cell_kind kinds[3] = {SP_CELL_RNN_TANH, SP_CELL_GRU_RESET_AFTER_MATMUL, SP_CELL_LSTM};
    const int gates[3] = {1, 3, 4};
    const int I = 17, K = 8;
    sp_rng r;
    sp_rng_seed(&r, 1);
    for (int c = 0; c < 3; c++) {
        int H = vn_hidden_for_budget(gates[c], I, K, 5000);
        assert_true(vn_param_count(gates[c], I, H, K) <= 5000);
        assert_true(vn_param_count(gates[c], I, H + 1, K) > 5000);
        sp_params *ps = sp_params_new();
        sp_cell cell;
        sp_linear head;
        assert_int_equal(sp_cell_init(&cell, kinds[c], ps, "rnn", 0, 0, I, H, NULL, &r), SP_OK);
        assert_int_equal(sp_linear_init(&head, ps, "head", H, K, 1, &r), SP_OK);
        assert_int_equal((long)ps->numel, vn_param_count(gates[c], I, H, K));
        sp_params_free(ps);
    }
    assert_int_equal(vn_param_count(1, 2, 3, 4), 1 * (3 * 2 + 3 * 3 + 2 * 3) + 3 * 4 + 4);
    assert_int_equal(vn_hidden_for_budget(4, 10, 2, 1), 1); /* never below one unit */
}

static void test_accuracy_and_norm(void **state)
{
    (void)state;
    const float lg[] = {1, 2, 0, /* argmax 1 */ 5, -1, 4, /* 0 */ 0, 0, 3 /* 2 */, -2, -1, -3 /* 1 */};
    const int key[] = {1, 0, 1, 2};
    sp_test_close(vn_accuracy(lg, key, 4, 3), 0.5, 0, 0, "two of four");
    sp_test_close(vn_accuracy(lg, key, 2, 3), 1.0, 0, 0, "first two");
    sp_test_close(vn_accuracy(lg, key, 0, 3), 0.0, 0, 0, "empty");
    const float x[] = {3, 4, 0, 0};
    sp_test_close(vn_norm(x, 4), 5, 1e-12, 0, "3-4-5");
}

/* A tanh RNN run step by step, keeping every h<t>; loss = softmax cross-entropy of a head at the
 * last step. Returns the loss node and fills hs[0..L-1]. */
typedef struct {
    sp_cell cell;
    sp_linear head;
    int L, B, I, K;
    const int *sym, *key;
    sp_tensor **hs;
    sp_tensor *h0; /* a parameter used as the state before step s0 */
    int s0;        /* first step run */
} rnn_case;

static sp_tensor *run_case(sp_tape *t, void *ctx)
{
    rnn_case *c = ctx;
    sp_tensor *x = sp_const(t, c->L * c->B, c->I);
    for (int r = 0; r < c->L * c->B; r++) *sp_at(x, r, c->sym[r]) = 1;
    sp_tensor *state[SP_CELL_MAX_STATE] = {c->h0}, *ns[SP_CELL_MAX_STATE];
    for (int s = c->s0; s < c->L; s++) {
        if (sp_cell_forward(t, &c->cell, sp_slice_rows(t, x, s * c->B, c->B), state, ns) != SP_OK) return NULL;
        state[0] = c->hs[s] = ns[0];
    }
    return sp_softmax_xent(t, sp_linear_forward(t, &c->head, state[0]), c->key, NULL);
}

static void test_grad_of_step_outputs(void **state)
{
    (void)state;
    enum { L = 6, B = 3, I = 4, K = 3, H = 5 };
    const int sym[L * B] = {0, 1, 2, 3, 3, 2, 1, 0, 1, 2, 2, 2, 0, 0, 1, 3, 3, 3};
    const int key[B] = {2, 0, 1};
    sp_tensor *hs[L];
    sp_rng r;
    sp_rng_seed(&r, 11);
    sp_params *ps = sp_params_new();
    rnn_case c = {.L = L, .B = B, .I = I, .K = K, .sym = sym, .key = key, .hs = hs};
    assert_int_equal(sp_cell_init(&c.cell, SP_CELL_RNN_TANH, ps, "rnn", 0, 0, I, H, NULL, &r), SP_OK);
    assert_int_equal(sp_linear_init(&c.head, ps, "head", H, K, 1, &r), SP_OK);
    c.h0 = sp_param(ps, "h0", B, H);
    sp_test_fill(c.h0, &r, -0.5, 0.5);
    for (size_t k = 0; k < ps->numel; k++) ps->value[k] *= 2; /* larger weights: a less trivial chain */

    sp_tape *t = sp_tape_new();
    sp_params_zero_grad(ps);
    sp_tensor *loss = run_case(t, &c);
    assert_non_null(loss);
    assert_int_equal(sp_backward(t, loss), SP_OK);

    /* last step: dL/dh = (softmax(z) - onehot(key)) W_head / B */
    sp_tensor *h = hs[L - 1];
    assert_non_null(h->grad);
    for (int b = 0; b < B; b++) {
        double z[K], mx = -1e300, sum = 0;
        for (int j = 0; j < K; j++) {
            z[j] = c.head.bias->data[j];
            for (int i = 0; i < H; i++) z[j] += *sp_at(h, b, i) * c.head.weight->data[j * H + i];
            mx = fmax(mx, z[j]);
        }
        for (int j = 0; j < K; j++) sum += exp(z[j] - mx);
        for (int i = 0; i < H; i++) {
            double g = 0;
            for (int j = 0; j < K; j++) g += (exp(z[j] - mx) / sum - (j == key[b])) * c.head.weight->data[j * H + i];
            sp_test_close(h->grad[(size_t)b * h->stride + i], g / B, 1e-4, 1e-7, "dL/dh<L-1>");
        }
    }
    /* an early step: restart the same computation from a parameter holding h<2>'s values; its
     * gradient, and central differences of the loss in it, must equal the ->grad read from the
     * tape of the full run */
    enum { S = 2 };
    double read[B * H];
    for (int b = 0; b < B; b++)
        for (int i = 0; i < H; i++) read[b * H + i] = hs[S]->grad[(size_t)b * hs[S]->stride + i];
    double total = 0;
    for (int k = 0; k < B * H; k++) total += fabs(read[k]);
    assert_true(total > 1e-6); /* something reached it */
    sp_tensor *hs2 = sp_param(ps, "h_start", B, H);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < H; i++) hs2->data[b * H + i] = *sp_at(hs[S], b, i);
    sp_tape_free(t);
    c.h0 = hs2, c.s0 = S + 1;
    t = sp_tape_new();
    sp_params_zero_grad(ps);
    assert_int_equal(sp_backward(t, run_case(t, &c)), SP_OK);
    for (int k = 0; k < B * H; k++) sp_test_close(hs2->grad[k], read[k], 1e-5, 1e-8, "restarted dL/dh<2>");
    sp_tape_free(t);
    for (int k = 0; k < B * H; k++) {
        const double eps = 1e-2;
        sp_real keep = hs2->data[k];
        double f[2];
        for (int side = 0; side < 2; side++) {
            sp_tape *u = sp_tape_new();
            hs2->data[k] = keep + (sp_real)(side ? -eps : eps);
            f[side] = run_case(u, &c)->data[0];
            sp_tape_free(u);
        }
        hs2->data[k] = keep;
        sp_test_close(read[k], (f[0] - f[1]) / (2 * eps), 2e-2, 1e-5, "dL/dh<2> vs central differences");
    }
    sp_params_free(ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_layout),
        cmocka_unit_test(test_budget_matches_real_parameter_count),
        cmocka_unit_test(test_accuracy_and_norm),
        cmocka_unit_test(test_grad_of_step_outputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
