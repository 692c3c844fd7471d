/* SPDX-License-Identifier: MIT */
/* kernels.h - the matrix-product kernels that ops share (ops/matmul.c, ops/packed.c), for ops that
 * run their own loops, such as the whole-sequence recurrences of ops/seq.c. Internal to ops/. */
#ifndef SP_KERNELS_H
#define SP_KERNELS_H

#include "../autograd/tape_internal.h"
#include "amx.h"

/* C[M,N] = op(A) op(B) + beta C through BLIS, row-major; sp__gemm picks one thread for small
 * products and sp_get_threads() otherwise, sp__gemm_threads runs on exactly `threads`. */
void sp__gemm(int ta, int tb, int M, int N, int K, const sp_real *A, int lda, const sp_real *B, int ldb, sp_real beta,
              sp_real *C, int ldc);
void sp__gemm_threads(int ta, int tb, int M, int N, int K, const sp_real *A, int lda, const sp_real *B, int ldb,
                      sp_real beta, sp_real *C, int ldc, int threads);
/* sp__gemm in a product precision (sp_precision): SP_PREC_BF16 runs ops/bf16.c's kernels with
 * scratch from t's matmul state (float build; the double build has only fp32). Not to be called
 * from two threads at once on one tape. */
void sp__gemm_p(sp_tape *t, int prec, int ta, int tb, int M, int N, int K, const sp_real *A, int lda, const sp_real *B,
                int ldb, sp_real beta, sp_real *C, int ldc);

/* Weights packed into panels for the AVX-512 micro-kernel (ops/packed.c). sp__panels_floats is
 * the size of op(W) [K, N] packed, or 0 when the kernel cannot run (double build, a CPU without
 * AVX-512, tiny shapes): callers then use sp__gemm. sp__panels_gemm runs on the calling thread:
 * C[M, N] (+)= A[M, K] op(W). */
size_t sp__panels_floats(int K, int N);
void sp__pack_panels(const sp_tensor *W, int trans, int K, int N, float *Bp);
void sp__panels_gemm(int M, int N, int K, const float *A, int lda, const float *Bp, float *C, int ldc, int accumulate);
/* The one-row case of sp__panels_gemm (ops/gemv.c), bit for bit the same sums, faster at M = 1. */
/* Only after the panels exist, i.e. on an AVX-512 CPU (the name says so: tests/test_portable.sh). */
void sp__panels_gemv_avx512(int N, int K, const float *x, const float *Bp, float *y, int accumulate);

/* C[M, N] += A^T B, A [K x M] at stride lda, B [K x N] at stride ldb: a weight gradient summed
 * over K tokens, on up to `threads` threads, by the AVX-512 kernel of packed.c (a narrow C, such
 * as a one-hot input's dW_ih [4H x 65], as its transpose). Returns 0 (and does nothing) where that
 * kernel does not run (no AVX-512, double build, few tokens, both sides under 96). */
int sp__gemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc, int threads);

/* The matmul op's state on a tape (sp__op_state(t, SP_OP_MATMUL)): weights packed for small
 * products, valid until the next reset (parameters change between steps), and the records whose
 * weight gradient backward deferred to sp__matmul_finish. */
#define SP_MAX_PACKED 64
#define SP__PACKED_AMX 2 /* a sp_packed.prec beside SP_PREC_FP32 and SP_PREC_BF16 */
#define SP_PACKED_MAX_ROWS 64 /* products with more rows of A go to BLIS */
typedef struct {
    const sp_real *w; /* the parameter's data */
    int trans, K, N;  /* which op(W) [K, N] was packed */
    int prec;         /* in which form: fp32 panels, bf16 pair panels (ops/bf16.c), or blocked for
                         AMX (SP__PACKED_AMX: buf is oneDNN's layout of op(W), amx its product) */
    sp_amx_prod amx;
    int valid;        /* packed since the last reset */
    void *buf;
    size_t cap;
} sp_packed;

typedef struct {
    sp_packed packed[SP_MAX_PACKED];
    int n_packed;
    sp_record **deferred;
    int n_deferred, cap_deferred;
    void *bf16_scratch, *bf16_a; /* sp__gemm_p's packing space; packed products' A rounded to bf16 */
    size_t bf16_scratch_cap, bf16_a_cap;
} sp_matmul_state;

/* The tape's matmul state, created on first use; NULL (and a tape error) if out of memory. */
sp_matmul_state *sp__matmul_state(sp_tape *t);
void sp__matmul_state_reset(void *state);
void sp__matmul_state_free(void *state);
/* At least `bytes` of the state's buffer *buf (capacity *cap), 64-byte aligned, grown as needed;
 * NULL (and a tape error) if out of memory. */
void *sp__matmul_buf(sp_tape *t, void **buf, size_t *cap, size_t bytes);

/* C[M, N] (+)= A[M, K] op(W) from W packed once per tape epoch; op(W)[k][n] = trans ? W[n][k] :
 * W[k][n], in precision prec (sp_precision). Returns 0 (and does nothing) when the product is not
 * one it handles: the caller then uses sp__gemm_p. */
int sp__packed_gemm(sp_tape *t, int prec, int M, int N, int K, const sp_real *A, int lda, const sp_tensor *W, int trans,
                    sp_real *C, int ldc, int accumulate);

#endif
