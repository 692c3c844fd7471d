/* SPDX-License-Identifier: MIT */
/* test_gemm_tn.c - float build: spool's own weight-gradient kernel (ops/packed.c, sp__gemm_tn:
 * C += A^T B summed over tokens) against a plain double loop, over shapes around its edges (row
 * tiles of 8, column strips of 32 and 16, every partial strip of 17..31 columns, blocks of 256
 * tokens, a narrow C run as its transpose), with strides wider than the rows, on 1 and 2 threads,
 * and through sp__gemm_threads, which routes such products to it. */
#include "helpers.h"
#include "../ops/kernels.h"

#include <math.h>
#include <stdlib.h>

static void check(int M, int N, int K, int threads, int via_gemm)
{
    int lda = M + 3, ldb = N + 5, ldc = N + 1;
    sp_rng r;
    sp_rng_seed(&r, (uint64_t)(M * 7919 + N * 31 + K));
    float *A = malloc(sizeof(float) * (size_t)K * lda), *B = malloc(sizeof(float) * (size_t)K * ldb);
    float *C = malloc(sizeof(float) * (size_t)M * ldc);
    double *R = malloc(sizeof(double) * (size_t)M * ldc);
    assert_true(A && B && C && R);
    for (size_t i = 0; i < (size_t)K * lda; i++) A[i] = (float)(2 * sp_rng_uniform(&r) - 1);
    for (size_t i = 0; i < (size_t)K * ldb; i++) B[i] = (float)(2 * sp_rng_uniform(&r) - 1);
    for (size_t i = 0; i < (size_t)M * ldc; i++) R[i] = C[i] = (float)(2 * sp_rng_uniform(&r) - 1);
    for (int k = 0; k < K; k++)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) R[(size_t)m * ldc + n] += (double)A[(size_t)k * lda + m] * B[(size_t)k * ldb + n];
    if (via_gemm) sp__gemm_threads(1, 0, M, N, K, A, lda, B, ldb, 1, C, ldc, threads);
    else if (!sp__gemm_tn(M, N, K, A, lda, B, ldb, C, ldc, threads)) {
        /* it declines only where it says it does (or on a CPU without AVX-512) */
        assert_true(K < 64 || M < 8 || N < 8 || (M < 96 && N < 96) || !__builtin_cpu_supports("avx512f"));
        free(A), free(B), free(C), free(R);
        return;
    }
    char what[96];
    snprintf(what, sizeof what, "C[M=%d, N=%d] after K=%d, %d threads%s", M, N, K, threads, via_gemm ? ", via gemm" : "");
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) sp_test_close(C[(size_t)m * ldc + n], R[(size_t)m * ldc + n], 1e-5, 1e-4, what);
        for (int n = N; n < ldc; n++) /* past N: untouched */
            assert_true(C[(size_t)m * ldc + n] == (float)R[(size_t)m * ldc + n]);
    }
    free(A), free(B), free(C), free(R);
}

static void test_shapes(void **state)
{
    (void)state;
    /* M or N >= 96 (else it declines): wide C as it is, narrow C (N < 96) through its transpose */
    const int Ms[] = {8, 13, 100, 130}, Ns[] = {16, 20, 45, 100, 130}, Ks[] = {64, 257, 600};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 5; b++)
            for (int c = 0; c < 3; c++)
                for (int th = 1; th <= 2; th++) check(Ms[a], Ns[b], Ks[c], th, 0);
}

/* every width of a partial 32-column strip that takes a second vector (17..31 columns, the one
 * whose mask is cols - 16 lanes), as C itself (N = 96 + w) and through its transpose (M = 96 + w):
 * the shapes above leave only 2..13 columns over */
static void test_partial_strips(void **state)
{
    (void)state;
    for (int w = 17; w <= 31; w++) {
        check(8, 96 + w, 64, 1, 0);
        check(96 + w, 16, 64, 1, 0);
    }
}

/* the product as the weight gradients ask for it, also where the kernel declines (few tokens,
 * narrow, short) and BLIS runs */
static void test_through_gemm(void **state)
{
    (void)state;
    check(96, 128, 512, 2, 1);
    check(1024, 65, 300, 2, 1); /* a one-hot input's dW_ih: transposed */
    check(65, 65, 300, 1, 1);
    check(7, 40, 10, 1, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_shapes), cmocka_unit_test(test_partial_strips),
                                       cmocka_unit_test(test_through_gemm)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
