/* SPDX-License-Identifier: MIT */
/* bf16.c - matrix products with bf16-rounded operands and fp32 accumulation (SP_PREC_BF16).
 *
 * Mixed precision as Kalamkar et al. 2019 and oneDNN do it: both operands of a product are
 * rounded to bfloat16 (8-bit significand, fp32's exponent), their products (exact in fp32) are
 * summed in fp32, and everything else - master weights, gradients, the cell state, gate math,
 * losses - stays fp32. Only the products change, so precision is a property of the product
 * (the matmul op and the whole-sequence ops read it from the tape, sp_tape_set_precision).
 *
 * One packed format for every kernel: op(B) [K, N] as panels of 32 columns, each holding K/2
 * pairs (k = 2j, 2j + 1) per column side by side, Bp[p][j][n][2]; a tile of 8 rows of op(A) as
 * pairs ap[j][r], one 32-bit word each. Rounding is round-to-nearest-even with subnormals
 * flushed to zero (what the AVX512_BF16 instructions do to their inputs, so every kernel
 * multiplies the same operands). Three interchangeable micro-kernels sum over the pairs:
 *  - tile_dp_avx512: vdpbf16ps (AVX512_BF16: 32 products into 16 fp32 lanes per instruction,
 *    twice the FP32 FMA rate on AMD Zen 4/5);
 *  - tile_fma_avx512: the same pairs widened to fp32 (a shift) and summed by FMAs, for AVX-512
 *    CPUs without AVX512_BF16: the same numbers up to summation order, at the fp32 speed;
 *  - tile_c: portable C, for every other CPU (and SPOOL_CPU=baseline/avx2).
 * The first the CPU can run is chosen on first use, capped by SPOOL_CPU (avx512 rules out
 * vdpbf16ps); sp_info() names it. tests/test_bf16.c checks each one the CPU runs against a
 * double-precision sum of the same rounded operands. The double build has no bf16 mode.
 */
#include "bf16.h"
#include "vec.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(SP_USE_DOUBLE)
#define SP_BF16_X86 1
#include <immintrin.h>
#endif

#define MR SP_BF16_MR
#define NR SP_BF16_NR
#define KC 512      /* rows of op(B) packed at a time by sp__gemm_bf16 (256 pairs: 32 KB a panel) */
#define PGROUP 4    /* panels per unit of work of sp__gemm_bf16 */

uint16_t sp__bf16(float x) { return sp__bf16_inline(x); }

float sp__bf16_float(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

float sp__bf16_round(float x) { return sp__bf16_float(sp__bf16(x)); }

/* ------------------------------------------------------------------ packing */

/* The two conversions every packing is made of (a portable and an AVX-512 form of each, the
 * same bits): pairs of neighbours, out[j] = bf16(x[2j]) | bf16(x[2j+1]) << 16 for j < (n+1)/2,
 * and pairs across two rows, out[i] = bf16(x0[i]) | bf16(x1[i]) << 16 for i < n (x1 NULL: 0). */
typedef void (*pairs_fn)(const float *x, int n, uint32_t *out);
typedef void (*rows2_fn)(const float *x0, const float *x1, int n, uint32_t *out);

static void pairs_c(const float *x, int n, uint32_t *out)
{
    for (int j = 0; 2 * j < n; j++) out[j] = sp__bf16(x[2 * j]) | (2 * j + 1 < n ? (uint32_t)sp__bf16(x[2 * j + 1]) << 16 : 0);
}

static void rows2_c(const float *x0, const float *x1, int n, uint32_t *out)
{
    for (int i = 0; i < n; i++) out[i] = sp__bf16(x0[i]) | (x1 ? (uint32_t)sp__bf16(x1[i]) << 16 : 0);
}

#ifdef SP_BF16_X86
/* sp__bf16 on 16 lanes: the bf16 in the low half of each 32-bit lane */
__attribute__((target("avx512f"), always_inline)) static inline __m512i round16(__m512i u)
{
    const __m512i top = _mm512_srli_epi32(u, 16);
    __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(top, _mm512_set1_epi32(1)))), 16);
    __mmask16 zero = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000));
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_mov_epi32(r, zero, _mm512_and_si512(top, _mm512_set1_epi32(0x8000)));
    return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(top, _mm512_set1_epi32(0x40)));
}

__attribute__((target("avx512f"))) static void pairs_avx512(const float *x, int n, uint32_t *out)
{
    for (int i = 0; i < n; i += 32) {
        const int m = n - i < 32 ? n - i : 32;
        const __mmask16 k0 = m >= 16 ? 0xffff : (__mmask16)((1u << m) - 1), k1 = m <= 16 ? 0 : m >= 32 ? 0xffff : (__mmask16)((1u << (m - 16)) - 1);
        const __m512i lohalf = _mm512_set1_epi64(0xffff), hihalf = _mm512_set1_epi64(0xffff0000);
        __m512i a = round16(_mm512_maskz_loadu_epi32(k0, x + i)), b = round16(_mm512_maskz_loadu_epi32(k1, x + i + 16));
        /* each 64-bit lane holds x[2j] and x[2j+1] in its two halves' low 16 bits: fold them */
        a = _mm512_or_si512(_mm512_and_si512(a, lohalf), _mm512_and_si512(_mm512_srli_epi64(a, 16), hihalf));
        b = _mm512_or_si512(_mm512_and_si512(b, lohalf), _mm512_and_si512(_mm512_srli_epi64(b, 16), hihalf));
        const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(a)), _mm512_cvtepi64_epi32(b), 1);
        const int pairs = (m + 1) / 2;
        _mm512_mask_storeu_epi32(out + i / 2, pairs >= 16 ? 0xffff : (__mmask16)((1u << pairs) - 1), both);
    }
}

__attribute__((target("avx512f"))) static void rows2_avx512(const float *x0, const float *x1, int n, uint32_t *out)
{
    for (int i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512i a = round16(_mm512_maskz_loadu_epi32(k, x0 + i));
        if (x1) a = _mm512_or_si512(a, _mm512_slli_epi32(round16(_mm512_maskz_loadu_epi32(k, x1 + i)), 16));
        _mm512_mask_storeu_epi32(out + i, k, a);
    }
}

/* The same with AVX512_BF16's conversion instruction, which rounds exactly as sp__bf16 does
 * (nearest even, subnormal inputs to signed zero, NaN kept quiet: tests/test_bf16.c checks the
 * bits): two instructions' worth of work where round16 takes a dozen. */
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw"))) static void pairs_cvt_avx512(const float *x, int n,
                                                                                       uint32_t *out)
{
    for (int i = 0; i < n; i += 32) {
        const int m = n - i < 32 ? n - i : 32;
        const __mmask16 k0 = m >= 16 ? 0xffff : (__mmask16)((1u << m) - 1), k1 = m <= 16 ? 0 : m >= 32 ? 0xffff : (__mmask16)((1u << (m - 16)) - 1);
        const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(k1, x + i + 16), _mm512_maskz_loadu_ps(k0, x + i));
        const int pairs = (m + 1) / 2;
        _mm512_mask_storeu_epi32(out + i / 2, pairs >= 16 ? 0xffff : (__mmask16)((1u << pairs) - 1), both);
    }
}

__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw"))) static void rows2_cvt_avx512(const float *x0, const float *x1,
                                                                                       int n, uint32_t *out)
{
    for (int i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512i a = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(k, x0 + i)));
        if (x1) a = _mm512_or_si512(a, _mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(k, x1 + i))), 16));
        _mm512_mask_storeu_epi32(out + i, k, a);
    }
}
#endif

static pairs_fn pairs_of(void);
static rows2_fn rows2_of(void);

size_t sp__bf16_panels_size(int K, int N) { return (size_t)((N + NR - 1) / NR) * ((K + 1) / 2) * NR * 2; }

void sp__bf16_pack_panels(const float *W, int ldw, int trans, int K, int N, uint16_t *Bp)
{
    const int P = (N + NR - 1) / NR, K2 = (K + 1) / 2;
    const pairs_fn pairs = pairs_of();
    const rows2_fn rows2 = rows2_of();
    const size_t n_ = (size_t)K * N;
#pragma omp parallel for if(n_ >= SP_PAR_MIN_PACK_ELEMS) num_threads(sp__threads_now()) schedule(static)
    for (int p = 0; p < P; p++) {
        uint32_t *dst = (uint32_t *)(Bp + (size_t)p * K2 * NR * 2); /* dst[j NR + n]: the pair (2j, 2j+1) of column n */
        const int cols = N - p * NR < NR ? N - p * NR : NR;
        if (!trans) /* op(W) rows 2j and 2j+1 are W's */
            for (int j = 0; j < K2; j++) {
                const float *w0 = W + (size_t)(2 * j) * ldw + p * NR;
                rows2(w0, 2 * j + 1 < K ? w0 + ldw : NULL, cols, dst + (size_t)j * NR);
                for (int n = cols; n < NR; n++) dst[(size_t)j * NR + n] = 0;
            }
        else { /* column n of op(W) is W's row n: its pairs, then down the panel */
            uint32_t tmp[512];
            for (int n = 0; n < NR; n++)
                for (int j0 = 0; j0 < K2; j0 += 512) {
                    const int jn = K2 - j0 < 512 ? K2 - j0 : 512;
                    if (n < cols) pairs(W + (size_t)(p * NR + n) * ldw + 2 * j0, K - 2 * j0 < 1024 ? K - 2 * j0 : 1024, tmp);
                    for (int j = 0; j < jn; j++) dst[(size_t)(j0 + j) * NR + n] = n < cols ? tmp[j] : 0;
                }
        }
    }
}

/* Rows 0 .. mr of op(A) [mr, K] (op(A)(r, k) = ta ? A[k lda + r] : A[r lda + k]) as pairs,
 * ap[j * MR + r] = bf16(A(r, 2j)) | bf16(A(r, 2j+1)) << 16, zero past mr and K. */
static void pack_a(int mr, int K, const float *A, int lda, int ta, uint32_t *ap)
{
    const int K2 = (K + 1) / 2;
    if (!ta) {
        const pairs_fn pairs = pairs_of();
        uint32_t tmp[512];
        for (int r = 0; r < MR; r++)
            for (int j0 = 0; j0 < K2; j0 += 512) {
                const int jn = K2 - j0 < 512 ? K2 - j0 : 512;
                if (r < mr) pairs(A + (size_t)r * lda + 2 * j0, K - 2 * j0 < 1024 ? K - 2 * j0 : 1024, tmp);
                for (int j = 0; j < jn; j++) ap[(size_t)(j0 + j) * MR + r] = r < mr ? tmp[j] : 0;
            }
    } else {
        const rows2_fn rows2 = rows2_of();
        for (int j = 0; j < K2; j++) {
            const float *a0 = A + (size_t)(2 * j) * lda;
            rows2(a0, 2 * j + 1 < K ? a0 + lda : NULL, mr, ap + (size_t)j * MR);
            for (int r = mr; r < MR; r++) ap[(size_t)j * MR + r] = 0;
        }
    }
}

/* ------------------------------------------------------------------ micro-kernels */

/* C[mr x cols] (+)= sum over K2 pairs of ap (a tile, MR rows) times one panel bp: every kernel
 * keeps MR x NR fp32 sums and stores the first mr rows and cols columns. */
typedef void (*tile_fn)(int mr, int K2, const uint32_t *ap, const uint16_t *bp, float *C, int ldc, int cols,
                        int accumulate);

static float lo_f(uint32_t v) { return sp__bf16_float((uint16_t)v); }
static float hi_f(uint32_t v) { return sp__bf16_float((uint16_t)(v >> 16)); }

static void tile_c(int mr, int K2, const uint32_t *ap, const uint16_t *bp, float *C, int ldc, int cols, int accumulate)
{
    float acc[MR][NR];
    memset(acc, 0, sizeof acc);
    for (int j = 0; j < K2; j++) {
        const uint16_t *b = bp + (size_t)j * NR * 2;
        for (int r = 0; r < MR; r++) {
            const float a0 = lo_f(ap[(size_t)j * MR + r]), a1 = hi_f(ap[(size_t)j * MR + r]);
            for (int n = 0; n < NR; n++) acc[r][n] += a0 * sp__bf16_float(b[2 * n]) + a1 * sp__bf16_float(b[2 * n + 1]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int n = 0; n < cols; n++) C[(size_t)r * ldc + n] = acc[r][n] + (accumulate ? C[(size_t)r * ldc + n] : 0);
}

#ifdef SP_BF16_X86
#define STORE_TILE()                                                                                       \
    do {                                                                                                   \
        __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);                               \
        __mmask16 m1 = cols >= NR ? 0xFFFF : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1) : 0;         \
        for (int r = 0; r < mr; r++) {                                                                     \
            float *c = C + (size_t)r * ldc;                                                                \
            if (accumulate) {                                                                              \
                c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, c));                                \
                c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, c + 16));                           \
            }                                                                                              \
            _mm512_mask_storeu_ps(c, m0, c0[r]);                                                           \
            _mm512_mask_storeu_ps(c + 16, m1, c1[r]);                                                      \
        }                                                                                                  \
    } while (0)

__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw"))) static void
tile_dp_avx512(int mr, int K2, const uint32_t *ap, const uint16_t *bp, float *C, int ldc, int cols, int accumulate)
{
    __m512 c0[MR], c1[MR];
    for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
    for (int j = 0; j < K2; j++) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512(bp + (size_t)j * NR * 2);
        const __m512bh b1 = (__m512bh)_mm512_load_si512(bp + (size_t)j * NR * 2 + 32);
        for (int r = 0; r < MR; r++) {
            const __m512bh a = (__m512bh)_mm512_set1_epi32((int)ap[(size_t)j * MR + r]);
            c0[r] = _mm512_dpbf16_ps(c0[r], a, b0);
            c1[r] = _mm512_dpbf16_ps(c1[r], a, b1);
        }
    }
    STORE_TILE();
}

__attribute__((target("avx512f,avx512vl,avx512bw"))) static void
tile_fma_avx512(int mr, int K2, const uint32_t *ap, const uint16_t *bp, float *C, int ldc, int cols, int accumulate)
{
    __m512 c0[MR], c1[MR];
    const __m512i hi_mask = _mm512_set1_epi32((int)0xffff0000u);
    for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
    for (int j = 0; j < K2; j++) {
        const __m512i b0 = _mm512_load_si512(bp + (size_t)j * NR * 2), b1 = _mm512_load_si512(bp + (size_t)j * NR * 2 + 32);
        const __m512 b0l = _mm512_castsi512_ps(_mm512_slli_epi32(b0, 16)), b0h = _mm512_castsi512_ps(_mm512_and_si512(b0, hi_mask));
        const __m512 b1l = _mm512_castsi512_ps(_mm512_slli_epi32(b1, 16)), b1h = _mm512_castsi512_ps(_mm512_and_si512(b1, hi_mask));
        for (int r = 0; r < MR; r++) {
            const uint32_t v = ap[(size_t)j * MR + r];
            const __m512 al = _mm512_castsi512_ps(_mm512_set1_epi32((int)(v << 16)));
            const __m512 ah = _mm512_castsi512_ps(_mm512_set1_epi32((int)(v & 0xffff0000u)));
            c0[r] = _mm512_fmadd_ps(ah, b0h, _mm512_fmadd_ps(al, b0l, c0[r]));
            c1[r] = _mm512_fmadd_ps(ah, b1h, _mm512_fmadd_ps(al, b1l, c1[r]));
        }
    }
    STORE_TILE();
}

/* One row (M = 1: streaming at batch 1) over G <= 4 panels at once, so that 2G independent
 * sums hide the instruction latency; each sum is formed exactly as the tile forms it, so a
 * one-row product has the bits of the same row in a batch. xp holds the row's K2 pairs. */
#define GEMV_STORE()                                                                                       \
    for (int g = 0; g < G; g++) {                                                                          \
        const int n0 = (p0 + g) * NR, cols = N - n0 < NR ? N - n0 : NR;                                    \
        __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);                                \
        __mmask16 m1 = cols >= NR ? 0xFFFF : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1) : 0;         \
        if (accumulate) {                                                                                  \
            c0[g] = _mm512_add_ps(c0[g], _mm512_maskz_loadu_ps(m0, y + n0));                               \
            c1[g] = _mm512_add_ps(c1[g], _mm512_maskz_loadu_ps(m1, y + n0 + 16));                          \
        }                                                                                                  \
        _mm512_mask_storeu_ps(y + n0, m0, c0[g]);                                                          \
        _mm512_mask_storeu_ps(y + n0 + 16, m1, c1[g]);                                                     \
    }

__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw"))) static void
row_dp_avx512(int G, int N, int K2, const uint32_t *xp, const uint16_t *Bp, int p0, float *y, int accumulate)
{
    __m512 c0[4], c1[4];
    for (int g = 0; g < 4; g++) c0[g] = c1[g] = _mm512_setzero_ps();
    const uint16_t *b = Bp + (size_t)p0 * K2 * NR * 2;
    const size_t ps = (size_t)K2 * NR * 2;
    for (int j = 0; j < K2; j++) {
        const __m512bh a = (__m512bh)_mm512_set1_epi32((int)xp[j]);
        for (int g = 0; g < G; g++) {
            c0[g] = _mm512_dpbf16_ps(c0[g], a, (__m512bh)_mm512_load_si512(b + g * ps + (size_t)j * NR * 2));
            c1[g] = _mm512_dpbf16_ps(c1[g], a, (__m512bh)_mm512_load_si512(b + g * ps + (size_t)j * NR * 2 + 32));
        }
    }
    GEMV_STORE()
}

__attribute__((target("avx512f,avx512vl,avx512bw"))) static void
row_fma_avx512(int G, int N, int K2, const uint32_t *xp, const uint16_t *Bp, int p0, float *y, int accumulate)
{
    __m512 c0[4], c1[4];
    const __m512i hi_mask = _mm512_set1_epi32((int)0xffff0000u);
    for (int g = 0; g < 4; g++) c0[g] = c1[g] = _mm512_setzero_ps();
    const uint16_t *b = Bp + (size_t)p0 * K2 * NR * 2;
    const size_t ps = (size_t)K2 * NR * 2;
    for (int j = 0; j < K2; j++) {
        const __m512 al = _mm512_castsi512_ps(_mm512_set1_epi32((int)(xp[j] << 16)));
        const __m512 ah = _mm512_castsi512_ps(_mm512_set1_epi32((int)(xp[j] & 0xffff0000u)));
        for (int g = 0; g < G; g++) {
            const __m512i b0 = _mm512_load_si512(b + g * ps + (size_t)j * NR * 2);
            const __m512i b1 = _mm512_load_si512(b + g * ps + (size_t)j * NR * 2 + 32);
            c0[g] = _mm512_fmadd_ps(ah, _mm512_castsi512_ps(_mm512_and_si512(b0, hi_mask)),
                                    _mm512_fmadd_ps(al, _mm512_castsi512_ps(_mm512_slli_epi32(b0, 16)), c0[g]));
            c1[g] = _mm512_fmadd_ps(ah, _mm512_castsi512_ps(_mm512_and_si512(b1, hi_mask)),
                                    _mm512_fmadd_ps(al, _mm512_castsi512_ps(_mm512_slli_epi32(b1, 16)), c1[g]));
        }
    }
    GEMV_STORE()
}
#endif

/* ------------------------------------------------------------------ choosing a kernel */

/* y[0, N) (+)= the row's pairs xp times panels p0 .. p0+G-1 (G <= 4); NULL: the tile does it */
typedef void (*row_fn)(int G, int N, int K2, const uint32_t *xp, const uint16_t *Bp, int p0, float *y, int accumulate);

typedef struct {
    const char *name;
    tile_fn tile;
    row_fn row;
    pairs_fn pairs;
    rows2_fn rows2;
} bf16_kernel;

static const bf16_kernel kernels[] = {
    {"portable C", tile_c, NULL, pairs_c, rows2_c},
#ifdef SP_BF16_X86
    {"avx512 FMA on widened bf16", tile_fma_avx512, row_fma_avx512, pairs_avx512, rows2_avx512},
    {"avx512_bf16 vdpbf16ps", tile_dp_avx512, row_dp_avx512, pairs_avx512, rows2_avx512},
#endif
};

/* 0 portable, 1 avx512 FMA, 2 vdpbf16ps: the best this CPU runs, capped by SPOOL_CPU like the
 * vector kernels (vec.c: baseline/avx2 -> portable, avx512 -> FMA). vdpbf16ps only where it is
 * faster than the FMAs: AMD (Zen 4 and 5 run it at twice the FP32 FMA rate); Intel's cores run it
 * at half that rate (Sapphire Rapids, measured: 118 vs 233 GFLOP/s per core, docs/precision.md),
 * so there it is used only when SPOOL_CPU=avx512bf16 asks for it. */
static int kernel_level(void)
{
    int have = 0;
#ifdef SP_BF16_X86
    __builtin_cpu_init();
    if (sp__vec() == sp__vec_table("avx512")) have = 1; /* the vector kernels' choice, SPOOL_CPU included */
    const char *want = getenv("SPOOL_CPU");
    if (have && __builtin_cpu_supports("avx512bf16") &&
        (want && !strcmp(want, "avx512bf16") ? 1 : !want && __builtin_cpu_is("amd")))
        have = 2;
#endif
    return have;
}

/* the kernels this CPU can run at all, fastest or not (tests run each) */
static int kernel_max(void)
{
#ifdef SP_BF16_X86
    __builtin_cpu_init();
    if (sp__vec_table("avx512")) return __builtin_cpu_supports("avx512bf16") ? 2 : 1;
#endif
    return 0;
}

static const bf16_kernel *chosen(void)
{
    static const bf16_kernel *_Atomic k;
    const bf16_kernel *c = atomic_load_explicit(&k, memory_order_acquire);
    if (!c) {
        c = &kernels[kernel_level()];
#ifdef SP_BF16_X86
        static bf16_kernel fast; /* the chosen kernel with AVX512_BF16's conversions */
        if (kernel_level() >= 1 && __builtin_cpu_supports("avx512bf16")) {
            fast = *c, fast.pairs = pairs_cvt_avx512, fast.rows2 = rows2_cvt_avx512;
            c = &fast;
        }
#endif
        atomic_store_explicit(&k, c, memory_order_release);
    }
    return c;
}

const char *sp__bf16_kernel_name(void) { return chosen()->name; }
static pairs_fn pairs_of(void) { return chosen()->pairs; }
void sp__bf16_pairs(const float *x, int n, uint32_t *out) { chosen()->pairs(x, n, out); }

int sp__bf16_convert_with(int which, const float *x0, const float *x1, int n, uint32_t *pairs, uint32_t *rows2)
{
    pairs_fn p = which == 0 ? pairs_c : NULL;
    rows2_fn r = which == 0 ? rows2_c : NULL;
#ifdef SP_BF16_X86
    if (which == 1 && sp__vec_table("avx512")) p = pairs_avx512, r = rows2_avx512;
    if (which == 2 && sp__vec_table("avx512") && __builtin_cpu_supports("avx512bf16")) p = pairs_cvt_avx512, r = rows2_cvt_avx512;
#endif
    if (!p) return 0;
    p(x0, n, pairs);
    r(x0, x1, n, rows2);
    return 1;
}
static rows2_fn rows2_of(void) { return chosen()->rows2; }

int sp__bf16_kernels(const char **names, int max)
{
    int n = kernel_max() + 1;
    for (int i = 0; i < n && i < max; i++) names[i] = kernels[i].name;
    return n;
}

/* ------------------------------------------------------------------ products */

size_t sp__bf16_abuf_size(int M, int K) { return (size_t)((M + MR - 1) / MR) * ((K + 1) / 2) * MR; }

void sp__bf16_pack_a(int M, int K, const float *A, int lda, uint32_t *abuf)
{
    const size_t K2 = (size_t)(K + 1) / 2;
    for (int i = 0; i < M; i += MR) pack_a(M - i < MR ? M - i : MR, K, A + (size_t)i * lda, lda, 0, abuf + (i / MR) * K2 * MR);
}

static void panel_with(tile_fn tile, int M, int K, const uint32_t *abuf, const uint16_t *Bp, int p, int N, float *C,
                       int ldc, int accumulate)
{
    const int K2 = (K + 1) / 2, cols = N - p * NR < NR ? N - p * NR : NR;
    for (int i = 0; i < M; i += MR)
        tile(M - i < MR ? M - i : MR, K2, abuf + (size_t)(i / MR) * K2 * MR, Bp + (size_t)p * K2 * NR * 2,
             C + (size_t)i * ldc + p * NR, ldc, cols, accumulate);
}

void sp__bf16_panel(int M, int K, const uint32_t *abuf, const uint16_t *Bp, int p, int N, float *C, int ldc,
                    int accumulate)
{
    panel_with(chosen()->tile, M, K, abuf, Bp, p, N, C, ldc, accumulate);
}

static void panels_gemm_with(const bf16_kernel *kn, int M, int N, int K, const float *A, int lda, const uint16_t *Bp,
                             float *C, int ldc, int accumulate, uint32_t *abuf)
{
    const int P = (N + NR - 1) / NR;
    if (M == 1 && kn->row) { /* one row: its pairs side by side, four panels at a time */
        kn->pairs(A, K, abuf);
        for (int p = 0; p < P; p += 4) kn->row(P - p < 4 ? P - p : 4, N, (K + 1) / 2, abuf, Bp, p, C, accumulate);
        return;
    }
    sp__bf16_pack_a(M, K, A, lda, abuf);
    for (int p = 0; p < P; p++) panel_with(kn->tile, M, K, abuf, Bp, p, N, C, ldc, accumulate);
}

void sp__bf16_panels_gemm(int M, int N, int K, const float *A, int lda, const uint16_t *Bp, float *C, int ldc,
                          int accumulate, uint32_t *abuf)
{
    panels_gemm_with(chosen(), M, N, K, A, lda, Bp, C, ldc, accumulate, abuf);
}

int sp__bf16_kernel_gemm(int kernel, int M, int N, int K, const float *A, int lda, const uint16_t *Bp, float *C,
                         int ldc, int accumulate, uint32_t *abuf)
{
    if (kernel < 0 || kernel > kernel_max()) return 0;
    panels_gemm_with(&kernels[kernel], M, N, K, A, lda, Bp, C, ldc, accumulate, abuf);
    return 1;
}

size_t sp__gemm_bf16_scratch(int M, int N, int K, int threads)
{
    const int kc = K < KC ? K : KC;
    return sp__bf16_panels_size(kc, N) * sizeof(uint16_t) + (size_t)threads * sp__bf16_abuf_size(MR, kc) * sizeof(uint32_t) +
           64 * (size_t)(threads + 1);
}

void sp__gemm_bf16(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                   float *C, int ldc, int threads, void *scratch)
{
    if (beta != 0 && beta != 1)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] *= beta;
    if (K == 0) {
        if (beta == 0)
            for (int i = 0; i < M; i++) memset(C + (size_t)i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    const tile_fn tile = chosen()->tile;
    const int kc_max = K < KC ? K : KC, P = (N + NR - 1) / NR, tiles = (M + MR - 1) / MR;
    /* a unit of work is a row tile against every panel (its A packed once), or against PGROUP
     * panels when there are too few tiles to share out */
    const int groups = tiles >= 2 * threads ? 1 : (P + PGROUP - 1) / PGROUP, per_group = (P + groups - 1) / groups;
    const int units = tiles * groups;
    if (threads > units) threads = units;
    if (threads < 1) threads = 1;
    uint16_t *Bp = (uint16_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    uint32_t *abase = (uint32_t *)(((uintptr_t)(Bp + sp__bf16_panels_size(kc_max, N)) + 63) & ~(uintptr_t)63);
    const size_t aper = (sp__bf16_abuf_size(MR, kc_max) + 15) / 16 * 16;
    for (int k0 = 0; k0 < K; k0 += KC) {
        const int kc = K - k0 < KC ? K - k0 : KC, K2 = (kc + 1) / 2, acc = k0 > 0 || beta != 0;
        /* op(B) rows k0 .. k0+kc: B's rows (tb = 0) or columns (tb = 1) */
        sp__bf16_pack_panels(tb ? B + k0 : B + (size_t)k0 * ldb, ldb, tb, kc, N, Bp);
        const float *Ak = ta ? A + (size_t)k0 * lda : A + k0;
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
        for (int u = 0; u < units; u++) {
            uint32_t *ap = abase + (size_t)omp_get_thread_num() * aper;
            const int i = (u / groups) * MR, g = u % groups, mr = M - i < MR ? M - i : MR;
            pack_a(mr, kc, ta ? Ak + i : Ak + (size_t)i * lda, lda, ta, ap);
            for (int p = g * per_group; p < P && p < (g + 1) * per_group; p++)
                tile(mr, K2, ap, Bp + (size_t)p * K2 * NR * 2, C + (size_t)i * ldc + p * NR, ldc,
                     N - p * NR < NR ? N - p * NR : NR, acc);
        }
    }
}
