/* SPDX-License-Identifier: MIT */
/* amx.h - bf16 products on Intel AMX through oneDNN (ops/amx.c), for the ops whose products run
 * in bf16 (matmul.c, seq.c). Internal to ops/. Every function declines (returns 0) where AMX or
 * oneDNN is not there; the caller then runs bf16.c's kernels. */
#ifndef SP_AMX_H
#define SP_AMX_H

#include "../autograd/tape_internal.h"

#include <stddef.h>
#include <stdint.h>

/* 1 when bf16 products go to AMX: oneDNN built in, the CPU runs AMX-BF16, SPOOL_CPU unset or "amx". */
int sp__amx_ok(void);
/* "AMX through oneDNN X.Y.Z", or NULL when not in use. */
const char *sp__amx_name(void);

/* C[M, N] = op(A) op(B) + beta C (beta 0 or 1) with bf16 operands on `threads` threads; scratch
 * of at least sp__amx_gemm_scratch(...) bytes (the same arguments; 64-byte aligned; 0: oneDNN
 * refuses the shape). 0: declined, nothing done. abf (bbf), when not NULL, is A (B) as stored
 * already rounded, at stride la2 (lb2): a shadow (autograd/tape_internal.h), read instead of
 * rounding A (B) again. bias, when not NULL (beta 0 only), is an f32 row [N] added to every row
 * of C in the product's epilogue (no pass of its own). */
size_t sp__amx_gemm_scratch(int ta, int tb, int M, int N, int K, int ldc, float beta, int threads);
int sp__amx_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const uint16_t *abf, int la2,
                 const float *B, int ldb, const uint16_t *bbf, int lb2, const float *bias, float beta, float *C, int ldc,
                 int threads, void *scratch, size_t scratch_bytes);

/* A recurrent product: op(W) [K, N] (op(W)(k, n) = trans ? W[n ldw + k] : W[k ldw + n]) rounded
 * and blocked once (in t's arena), for products [m <= M, K] x op(W) -> [m, N] at stride N. */
typedef struct {
    void *prim, *pd, *w;
    int M, K, N, ldc, sum;   /* C [m <= M, N] at stride ldc, += with sum */
    size_t w_bytes, pad_bytes; /* the blocked weight; oneDNN's scratchpad per thread */
} sp_amx_prod;
int sp__amx_prod_init(sp_amx_prod *p, int M, int K, int N, const float *W, int ldw, int trans, sp_tape *t);
void sp__amx_prod_fini(sp_amx_prod *p);
/* sp__amx_prod_init in two parts, for a product kept from one tape epoch to the next (ops/packed.c):
 * the primitive (C at stride ldc, added to C when sum), then op(W) into wbuf (w_bytes, 64-byte
 * aligned, the caller's) whenever W has changed. */
int sp__amx_prod_make(sp_amx_prod *p, int M, int K, int N, int ldc, int sum);
int sp__amx_prod_weights(sp_amx_prod *p, const float *W, int ldw, int trans, void *wbuf);
/* 1 when q's product takes op(W) in the layout p's was blocked in (a product of another M may) */
int sp__amx_same_weights(const sp_amx_prod *p, const sp_amx_prod *q);

/* One thread's handle on a product: its stream and memories, its scratchpad (pad_bytes, 64-byte
 * aligned). sp__amx_run rounds A [m, K] (stride lda) into abf (M x K rounded up to even, bf16)
 * and writes C = A op(W). */
typedef struct {
    void *stream, *mem[4];
    int threads_before; /* the thread's OpenMP team size, restored by sp__amx_ctx_close */
} sp_amx_ctx;
int sp__amx_ctx_open(sp_amx_ctx *c, const sp_amx_prod *p, void *pad);
int sp__amx_run(sp_amx_ctx *c, const sp_amx_prod *p, int m, const float *A, int lda, uint16_t *abf, float *C);
void sp__amx_ctx_close(sp_amx_ctx *c);

#endif
