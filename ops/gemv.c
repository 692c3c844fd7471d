/* SPDX-License-Identifier: MIT */
/* gemv.c - one-row products y (+)= x op(W) from the packed panels of ops/packed.c, for batch 1
 * (streaming inference: sampling, scoring, prediction one sequence at a time).
 *
 * packed.c's micro-tile at one row keeps two accumulators (one panel of 32 columns), so each k
 * waits for the previous FMA of the same chain: K x (FMA latency) cycles per panel, about half
 * of what the loads allow (perf on spool-charlm sample, 1x256 LSTM: 73 % of the time in that
 * tile). Here two panels advance together (four independent chains), so the loop runs at the
 * rate of the loads, and successive calls on one weight walk its panels in alternate directions
 * (the panels last read are still in the L2 cache). Every output is still summed the same way
 * as the tile sums it (FMA from zero over k = 0 .. K-1, then + y when accumulating), so the
 * results are bit for bit those of the tile and of every product that goes through it
 * (tests/test_gemv.c, both directions). */
#include "kernels.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(SP_USE_DOUBLE)
#include <immintrin.h>

#define NR 32 /* columns per panel, as in packed.c */

/* G consecutive panels p0 .. p0+G-1 (G a compile-time constant after inlining). */
__attribute__((target("avx512f"), always_inline)) static inline void group(int G, int N, int K, const float *x,
                                                                            const float *Bp, int p0, float *y,
                                                                            int accumulate)
{
    __m512 a0[8], a1[8];
    const float *b[8];
    for (int g = 0; g < G; g++) {
        a0[g] = a1[g] = _mm512_setzero_ps();
        b[g] = Bp + (size_t)(p0 + g) * K * NR;
    }
    for (int k = 0; k < K; k++) {
        __m512 xk = _mm512_set1_ps(x[k]);
        for (int g = 0; g < G; g++) {
            a0[g] = _mm512_fmadd_ps(xk, _mm512_load_ps(b[g] + (size_t)k * NR), a0[g]);
            a1[g] = _mm512_fmadd_ps(xk, _mm512_load_ps(b[g] + (size_t)k * NR + 16), a1[g]);
        }
    }
    for (int g = 0; g < G; g++) {
        int n0 = (p0 + g) * NR, cols = N - n0 < NR ? N - n0 : NR;
        __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
        __mmask16 m1 = cols >= NR ? 0xFFFF : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1) : 0;
        float *c = y + n0;
        if (accumulate) {
            a0[g] = _mm512_add_ps(a0[g], _mm512_maskz_loadu_ps(m0, c));
            a1[g] = _mm512_add_ps(a1[g], _mm512_maskz_loadu_ps(m1, c + 16));
        }
        _mm512_mask_storeu_ps(c, m0, a0[g]);
        _mm512_mask_storeu_ps(c + 16, m1, a1[g]);
    }
}

/* Which way each recently used weight was last walked: a one-row product is usually the same
 * weight once per step (sampling: W_hh, then the head), and the panels of W_hh alone fill the
 * L2 cache, so walking them the other way each time starts from the panels still cached. The
 * panels are independent columns: the order changes no sum. */
static _Thread_local struct {
    const float *bp;
    int reverse;
} walked[4];

__attribute__((target("avx512f"))) void sp__panels_gemv_avx512(int N, int K, const float *x, const float *Bp, float *y,
                                                                int accumulate)
{
    int P = (N + NR - 1) / NR, w = 0;
    while (w < 4 && walked[w].bp != Bp) w++;
    if (w == 4) { /* not seen lately: replaces the oldest entry */
        memmove(walked + 1, walked, 3 * sizeof walked[0]);
        walked[0].bp = Bp, walked[0].reverse = 1, w = 0;
    }
    int reverse = walked[w].reverse = !walked[w].reverse;
    /* two panels at a time (four FMA chains): on this project's machine (Zen 4) faster than one
     * panel and than 4 or 8 at a time, which spread the loads over more streams than the
     * prefetchers follow (a 1 MB W_hh, ~25 % faster than 8 at a time) */
    if (!reverse) {
        int p = 0;
        for (; p + 2 <= P; p += 2) group(2, N, K, x, Bp, p, y, accumulate);
        if (p < P) group(1, N, K, x, Bp, p, y, accumulate);
    } else {
        int p = P;
        if (P % 2) group(1, N, K, x, Bp, --p, y, accumulate);
        for (; p >= 2; p -= 2) group(2, N, K, x, Bp, p - 2, y, accumulate);
    }
}

#else

void sp__panels_gemv_avx512(int N, int K, const float *x, const float *Bp, float *y, int accumulate)
{
    (void)N, (void)K, (void)x, (void)Bp, (void)y, (void)accumulate;
}

#endif
