/* SPDX-License-Identifier: MIT */
/* test_packed_ref.c - float build: products whose right operand is a parameter (the ones the
 * packed-weight kernels may take, ops/packed.c) value-tested against the same products with that
 * operand copied into a tape constant (always the reference BLIS path), forward and backward,
 * over shapes around the micro-tile edges, with and without an addend. Public API only, so it
 * holds whatever the kernels look like inside. The double build compiles the packed kernels out;
 * this is the test that covers them. */
#include "helpers.h"

#include <math.h>
#include <string.h>

static void compare(int M, int K, int N, int trans, int addend, sp_rng *r)
{
    sp_params *ps = sp_params_new();
    sp_tensor *W = trans ? sp_param(ps, "W", N, K) : sp_param(ps, "W", K, N);
    sp_test_fill(W, r, -1, 1);
    sp_tape *t = sp_tape_new();
    sp_tensor *x1 = sp_leaf(t, M, K), *x2 = sp_leaf(t, M, K), *g = sp_const(t, M, N);
    sp_tensor *Wc = trans ? sp_leaf(t, N, K) : sp_leaf(t, K, N);
    sp_tensor *bias = addend == 1 ? sp_const(t, 1, N) : addend == 2 ? sp_const(t, M, N) : NULL;
    sp_test_fill(x1, r, -1, 1);
    memcpy(x2->data, x1->data, sizeof(sp_real) * (size_t)M * K);
    memcpy(Wc->data, W->data, sizeof(sp_real) * (size_t)K * N);
    sp_test_fill(g, r, -1, 1);
    if (bias) sp_test_fill(bias, r, -1, 1);
    sp_tensor *y1 = sp_matmul_bias(t, x1, 0, W, trans, bias), *y2 = sp_matmul_bias(t, x2, 0, Wc, trans, bias);
    sp_tensor *loss = sp_add(t, sp_sum(t, sp_mul(t, y1, g)), sp_sum(t, sp_mul(t, y2, g)));
    sp_params_zero_grad(ps);
    assert_int_equal(sp_backward(t, loss), SP_OK);
    char what[96];
    snprintf(what, sizeof what, "M %d K %d N %d trans %d addend %d", M, K, N, trans, addend);
    for (int i = 0; i < M * N; i++) sp_test_close(y1->data[i], y2->data[i], 1e-5, 1e-5, what);
    for (int i = 0; i < M * K; i++) sp_test_close(x1->grad[i], x2->grad[i], 1e-5, 1e-5, what);
    for (int i = 0; i < K * N; i++) sp_test_close(W->grad[i], Wc->grad[i], 1e-4, 1e-4, what);
    sp_tape_free(t);
    sp_params_free(ps);
}

static void test_packed_vs_reference(void **state)
{
    (void)state;
    sp_rng r;
    sp_rng_seed(&r, 3);
    const int Ms[] = {1, 7, 8, 9, 32, 33}, Ks[] = {5, 64, 100}, Ns[] = {31, 32, 33, 96, 130};
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 5; c++)
                for (int trans = 0; trans < 2; trans++) compare(Ms[a], Ks[b], Ns[c], trans, (a + b + c) % 3, &r);
}

/* The same parameter product on many steps of one tape (packed once, reused), with a
 * reference per step. */
static void test_packed_reused_steps(void **state)
{
    (void)state;
    sp_rng r;
    sp_rng_seed(&r, 4);
    const int T = 20, B = 8, H = 48;
    sp_params *ps = sp_params_new();
    sp_tensor *W = sp_param(ps, "W", 4 * H, H);
    sp_test_fill(W, &r, -0.3, 0.3);
    sp_tape *t = sp_tape_new();
    sp_tensor *Wc = sp_leaf(t, 4 * H, H);
    memcpy(Wc->data, W->data, sizeof(sp_real) * 4 * H * H);
    sp_tensor *h1 = sp_leaf(t, B, H), *h2 = sp_leaf(t, B, H);
    sp_test_fill(h1, &r, -1, 1);
    memcpy(h2->data, h1->data, sizeof(sp_real) * B * H);
    sp_tensor *a = h1, *b = h2;
    for (int s = 0; s < T; s++) {
        a = sp_tanh(t, sp_slice_cols(t, sp_matmul_ex(t, a, 0, W, 1), H, H));
        b = sp_tanh(t, sp_slice_cols(t, sp_matmul_ex(t, b, 0, Wc, 1), H, H));
    }
    sp_params_zero_grad(ps);
    assert_int_equal(sp_backward(t, sp_add(t, sp_sum(t, a), sp_sum(t, b))), SP_OK);
    for (int i = 0; i < B * H; i++) sp_test_close(a->data[i], b->data[i], 1e-4, 1e-5, "last state");
    for (int i = 0; i < B * H; i++) sp_test_close(h1->grad[i], h2->grad[i], 1e-4, 1e-5, "d first state");
    for (int i = 0; i < 4 * H * H; i++) sp_test_close(W->grad[i], Wc->grad[i], 1e-4, 1e-4, "dW");
    sp_tape_free(t);
    sp_params_free(ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packed_vs_reference),
        cmocka_unit_test(test_packed_reused_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
