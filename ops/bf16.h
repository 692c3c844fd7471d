/* SPDX-License-Identifier: MIT */
/* bf16.h - products with bf16-rounded operands and fp32 sums (ops/bf16.c), for the ops that run
 * products (matmul.c, packed.c, seq.c). Internal to ops/; float build only. */
#ifndef SP_BF16_H
#define SP_BF16_H

#include "../autograd/tape_internal.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SP_BF16_MR 8  /* rows of op(A) per tile */
#define SP_BF16_NR 32 /* columns of op(B) per panel */

/* x rounded to bf16 (nearest even; subnormals to signed zero, NaN stays NaN), and back. */
static inline uint16_t sp__bf16_inline(float x)
{
    uint32_t u;
    __builtin_memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u); /* zero, subnormal: signed 0 */
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* NaN stays (quiet) NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even (may carry into the exponent: Inf) */
    return (uint16_t)(u >> 16);
}
/* x as the bf16 it rounds to, back in a float: an operand of a bf16 product (the ops with loops of
 * their own, such as attention's, multiply these) */
static inline float sp__bf16_value(float x)
{
    uint32_t u = (uint32_t)sp__bf16_inline(x) << 16;
    float y;
    __builtin_memcpy(&y, &u, 4);
    return y;
}
uint16_t sp__bf16(float x);
float sp__bf16_float(uint16_t b);
float sp__bf16_round(float x);
/* out[j] = bf16(x[2j]) | bf16(x[2j+1]) << 16 for j < (n + 1) / 2 (x[n] read as 0): n values
 * rounded into bf16 side by side, vectorised where the CPU allows. */
void sp__bf16_pairs(const float *x, int n, uint32_t *out);
/* Test hook: conversion set `which` (0 portable, 1 AVX-512 integer rounding, 2 AVX512_BF16's
 * instruction) on x0 (and x1): pairs of x0, and x0/x1 interleaved. 0 where the CPU cannot. */
int sp__bf16_convert_with(int which, const float *x0, const float *x1, int n, uint32_t *pairs, uint32_t *rows2);

/* op(W) [K, N] (op(W)(k, n) = trans ? W[n ldw + k] : W[k ldw + n]) as bf16 pair panels:
 * sp__bf16_panels_size(K, N) uint16 values, 64-byte aligned by the caller. */
size_t sp__bf16_panels_size(int K, int N);
void sp__bf16_pack_panels(const float *W, int ldw, int trans, int K, int N, uint16_t *Bp);

/* C[M, N] (+)= A[M, K] op(W) from the panels, on the calling thread; abuf holds
 * sp__bf16_abuf_size(M, K) words (A rounded and paired), 64-byte aligned. */
size_t sp__bf16_abuf_size(int M, int K);
void sp__bf16_panels_gemm(int M, int N, int K, const float *A, int lda, const uint16_t *Bp, float *C, int ldc,
                          int accumulate, uint32_t *abuf);

/* The same in two parts, for callers that split the panels between threads: A rounded and
 * paired once (sp__bf16_pack_a), then panel p (columns 32p ..) of every row (sp__bf16_panel). */
void sp__bf16_pack_a(int M, int K, const float *A, int lda, uint32_t *abuf);
void sp__bf16_panel(int M, int K, const uint32_t *abuf, const uint16_t *Bp, int p, int N, float *C, int ldc,
                    int accumulate);

/* C[M, N] = op(A) op(B) + beta C with bf16 operands, on up to `threads` threads; scratch holds
 * sp__gemm_bf16_scratch(M, N, K, threads) bytes. */
size_t sp__gemm_bf16_scratch(int M, int N, int K, int threads);
void sp__gemm_bf16(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                   float *C, int ldc, int threads, void *scratch);

/* The micro-kernel in use (sp_info), and those this CPU can run, from the portable one up
 * (returns their count); sp__bf16_kernel_gemm runs kernel i of that list (tests). */
const char *sp__bf16_kernel_name(void);
int sp__bf16_kernels(const char **names, int max);
int sp__bf16_kernel_gemm(int kernel, int M, int N, int K, const float *A, int lda, const uint16_t *Bp, float *C,
                         int ldc, int accumulate, uint32_t *abuf);

#endif
