/* packed_gemm_proto.c - how fast could the recurrent product be if W_hh were packed once per step?
 *
 * A measurement for PROFILE.md, not library code. A recurrent layer computes h_t W^T ([B, H] x
 * [H, G], W stored [G, H] as PyTorch does) once per time step with the same W. BLIS packs W into
 * its panel format on every call, which dominates at B = 32. Here W is packed ONCE into panels of
 * 32 output columns ([G/32][H][32], the transpose done while packing), and a plain AVX-512
 * register-blocked kernel (8 rows x 32 columns of accumulators, broadcast A, two FMAs per row and
 * k) computes the product from the packed panels. The program checks the result against BLIS and
 * prints GFLOP/s of both, plus the cost of one pack in units of calls. CPU time of this thread.
 */
#include "spool.h"

#include <cblas.h>
#include <getopt.h>
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MR 8  /* rows of C per micro-tile */
#define NR 32 /* columns per packed panel: two 16-float vectors */

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Bp[p][k][j] = W[p*NR + j][k]: panel p holds output columns p*NR .. p*NR+NR-1, row k contiguous. */
static void pack_wt(const float *W, int N, int K, float *Bp)
{
    for (int p = 0; p < N / NR; p++)
        for (int j = 0; j < NR; j++)
            for (int k = 0; k < K; k++) Bp[((size_t)p * K + k) * NR + j] = W[(size_t)(p * NR + j) * K + k];
}

__attribute__((target("avx512f"))) static void tile(const float *A, int lda, const float *bp, int K, float *C, int ldc)
{
    __m512 c[MR][2];
    for (int r = 0; r < MR; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        __m512 b0 = _mm512_load_ps(bp + (size_t)k * NR), b1 = _mm512_load_ps(bp + (size_t)k * NR + 16);
        for (int r = 0; r < MR; r++) {
            __m512 a = _mm512_set1_ps(A[(size_t)r * lda + k]);
            c[r][0] = _mm512_fmadd_ps(a, b0, c[r][0]);
            c[r][1] = _mm512_fmadd_ps(a, b1, c[r][1]);
        }
    }
    for (int r = 0; r < MR; r++) {
        _mm512_storeu_ps(C + (size_t)r * ldc, c[r][0]);
        _mm512_storeu_ps(C + (size_t)r * ldc + 16, c[r][1]);
    }
}

/* C[M, N] = A[M, K] W^T from the packed panels. */
static void gemm_packed(int M, int N, int K, const float *A, const float *Bp, float *C)
{
    for (int p = 0; p < N / NR; p++)
        for (int i = 0; i < M; i += MR) tile(A + (size_t)i * K, K, Bp + (size_t)p * K * NR, K, C + (size_t)i * N + p * NR, N);
}

/* 64-byte aligned floats; aligned_alloc wants a size that is a multiple of the alignment. */
static float *alloc64(size_t n) { return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64); }

int main(int argc, char **argv)
{
    int M = 32, N = 1024, K = 256, o;
    static const struct option opts[] = {{"rows", 1, 0, 'm'}, {"out", 1, 0, 'n'}, {"in", 1, 0, 'k'},
                                         {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o == 'm') M = atoi(optarg);
        else if (o == 'n') N = atoi(optarg);
        else if (o == 'k') K = atoi(optarg);
        else if (o == 'h') {
            printf("usage: spool-packed-gemm-proto [--rows M (32)] [--out N (1024)] [--in K (256)]\n"
                   "Times C[M,N] = A[M,K] W^T (W [N,K]) with W packed once, against BLIS sgemm.\n"
                   "M must be a multiple of %d and N of %d. Needs AVX-512.\n", MR, NR);
            return 0;
        } else {
            fprintf(stderr, "spool-packed-gemm-proto: bad option '%s' (try --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (M <= 0 || N <= 0 || K <= 0 || M % MR || N % NR || (double)N * K > 1e8 || (double)M * K > 1e8) {
        fprintf(stderr, "spool-packed-gemm-proto: need M %% %d == 0, N %% %d == 0, positive sizes\n", MR, NR);
        return 2;
    }
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) {
        printf("spool-packed-gemm-proto: this CPU has no AVX-512, nothing to measure\n");
        return 0;
    }
    sp_set_threads(1);
    (void)sp_info(); /* BLIS with spool's kernel set */
    size_t nA = (size_t)M * K, nW = (size_t)N * K, nC = (size_t)M * N;
    float *A = alloc64(nA), *W = alloc64(nW), *Bp = alloc64(nW), *C = alloc64(nC), *C2 = alloc64(nC);
    if (!A || !W || !Bp || !C || !C2) {
        fprintf(stderr, "spool-packed-gemm-proto: out of memory\n");
        return 1;
    }
    sp_rng rng;
    sp_rng_seed(&rng, 1);
    for (size_t i = 0; i < nA; i++) A[i] = (float)sp_rng_uniform(&rng) - 0.5f;
    for (size_t i = 0; i < nW; i++) W[i] = (float)sp_rng_uniform(&rng) - 0.5f;

    double t = cpu_s();
    int packs = 0;
    do {
        pack_wt(W, N, K, Bp);
        packs++;
    } while (cpu_s() - t < 0.05);
    double t_pack = (cpu_s() - t) / packs;

    gemm_packed(M, N, K, A, Bp, C);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, A, K, W, K, 0, C2, N);
    double err = 0, ref = 0;
    for (size_t i = 0; i < nC; i++) {
        err = fmax(err, fabs((double)C[i] - C2[i]));
        ref = fmax(ref, fabs((double)C2[i]));
    }
    if (!(err <= 1e-5 * (ref + 1) * K)) {
        fprintf(stderr, "spool-packed-gemm-proto: result differs from BLIS by %g\n", err);
        return 1;
    }
    double best_p = 1e30, best_b = 1e30;
    for (int round = 0; round < 5; round++) {
        int reps = 0;
        t = cpu_s();
        do gemm_packed(M, N, K, A, Bp, C), reps++;
        while (cpu_s() - t < 0.05);
        best_p = fmin(best_p, (cpu_s() - t) / reps);
        reps = 0;
        t = cpu_s();
        do cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, A, K, W, K, 0, C2, N), reps++;
        while (cpu_s() - t < 0.05);
        best_b = fmin(best_b, (cpu_s() - t) / reps);
    }
    double f = 2.0 * M * N * K;
    printf("C[%d,%d] = A[%d,%d] W^T: packed-once AVX-512 %.1f GFLOP/s, BLIS sgemm (NT) %.1f GFLOP/s; "
           "one pack costs %.3f ms = %.1f packed calls; max |diff| %.2g\n",
           M, N, M, K, f / best_p * 1e-9, f / best_b * 1e-9, 1e3 * t_pack, t_pack / best_p, err);
    free(A), free(W), free(Bp), free(C), free(C2);
    return 0;
}
