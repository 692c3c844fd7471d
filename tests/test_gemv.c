/* SPDX-License-Identifier: MIT */
/* test_gemv.c - the one-row kernel of ops/gemv.c (batch 1: streaming inference), through the
 * public API: a one-row product with a parameter equals, bit for bit, row 0 of the same product
 * over three rows (which runs packed.c's micro-tile), with and without an addend, for widths
 * around the 32-column panels and the 2/1-panel groups, walked both ways (a weight's successive
 * one-row products alternate direction); and both are close to the product
 * with the weight as a tape constant (the reference BLIS path). Bit equality is what lets the
 * stream equal the tape path; it is asserted where the packed kernels run (float build, AVX-512). */
#include "helpers.h"

#include <math.h>
#include <string.h>

static int packed_kernels(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return sizeof(sp_real) == 4 && __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

static void one_shape(int K, int N, int trans, int addend, sp_rng *r, int bitwise)
{
    sp_params *ps = sp_params_new();
    sp_tensor *W = trans ? sp_param(ps, "W", N, K) : sp_param(ps, "W", K, N);
    sp_test_fill(W, r, -1, 1);
    sp_tape *t = sp_tape_new();
    sp_tensor *x1 = sp_const(t, 1, K), *x3 = sp_const(t, 3, K), *Wc = trans ? sp_const(t, N, K) : sp_const(t, K, N);
    sp_tensor *bias = addend ? sp_const(t, 1, N) : NULL;
    sp_test_fill(x3, r, -1, 1);
    memcpy(x1->data, x3->data, sizeof(sp_real) * K);
    memcpy(Wc->data, W->data, sizeof(sp_real) * (size_t)K * N);
    if (bias) sp_test_fill(bias, r, -1, 1);
    sp_tensor *y1 = sp_matmul_bias(t, x1, 0, W, trans, bias), *y3 = sp_matmul_bias(t, x3, 0, W, trans, bias);
    sp_tensor *yr = sp_matmul_bias(t, x1, 0, Wc, trans, bias);
    sp_tensor *y1b = sp_matmul_bias(t, x1, 0, W, trans, bias); /* the same weight again: walked the other way */
    assert_non_null(y1), assert_non_null(y3), assert_non_null(yr), assert_non_null(y1b);
    if (bitwise) assert_memory_equal(y1->data, y1b->data, sizeof(sp_real) * N);
    char what[96];
    snprintf(what, sizeof what, "K %d N %d trans %d addend %d", K, N, trans, addend);
    if (bitwise && memcmp(y1->data, y3->data, sizeof(sp_real) * N)) {
        for (int j = 0; j < N; j++)
            if (y1->data[j] != y3->data[j]) print_message("# %s: column %d: %.9g vs %.9g\n", what, j, y1->data[j], y3->data[j]);
        fail_msg("one-row product differs from row 0 of the three-row one (%s)", what);
    }
    for (int j = 0; j < N; j++) {
        sp_test_close(y1->data[j], yr->data[j], 1e-5, 1e-5, what);
        sp_test_close(y3->data[j], yr->data[j], 1e-5, 1e-5, what);
    }
    sp_tape_free(t);
    sp_params_free(ps);
}

static void test_one_row_equals_the_tile(void **state)
{
    (void)state;
    sp_rng r;
    sp_rng_seed(&r, 17);
    int bitwise = packed_kernels();
    print_message("# bit-for-bit check %s\n", bitwise ? "on (float build, AVX-512)" : "off (no packed kernels here)");
    const int Ks[] = {16, 64, 257}, Ns[] = {16, 31, 32, 65, 100, 160, 256, 300, 1024};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 9; b++)
            for (int trans = 0; trans < 2; trans++) one_shape(Ks[a], Ns[b], trans, (a + b) % 2, &r, bitwise);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_row_equals_the_tile),
    };
    return cmocka_run_group_tests_name("gemv", tests, NULL, NULL);
}
