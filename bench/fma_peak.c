/* SPDX-License-Identifier: MIT */
/* fma_peak.c - spool-fma-peak: the FP32 fused multiply-add peak of one core, and its bf16 peaks,
 * measured.
 *
 * bench/RESULTS.md reports each configuration's GEMM GFLOP/s as a fraction of what the core can do
 * at all. That limit is measured here rather than taken from a data sheet (clock, FMA units and
 * vector width vary, and a VM may not run at the nominal clock): 12 independent chains of 512-bit
 * FMAs (enough to cover the FMA latency on every x86 core with two FMA units), on the calling
 * thread, timed by that thread's CPU clock so a busy machine does not lower the figure; the best
 * of 5 rounds. Needs AVX-512 (else it says so and exits 1). One JSON line with --json.
 * The bf16 peaks, where the CPU has them: vdpbf16ps (AVX512_BF16: 32 products per instruction)
 * in the same 12 chains, and on an AMX CPU with spool built with oneDNN the rate of a large bf16
 * product through it ([1024 x 1024] x [1024 x 1024], one thread) - the bf16 limit spool's products
 * meet there, since spool reaches AMX only through oneDNN (ops/amx.c). */
#include "common/opts.h"
#include "../ops/amx.h"

#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    double seconds;
    int json;
} cfg;

#define C cfg
static const ex_opt OPTS[] = {
    EX_OPT("seconds", EX_DBL, C, seconds, "0.2", 0.001, 60, 0, "S", "seconds per round (5 rounds)"),
    EX_OPT("json", EX_FLAG, C, json, NULL, 0, 0, 0, NULL, "one JSON line"),
};
#undef C
static const ex_cli CLI = {"spool-fma-peak",
                           "Usage: spool-fma-peak [options]\n"
                           "Measures the FP32 FMA peak of one core (12 chains of AVX-512 FMAs) in GFLOP/s,\n"
                           "and its bf16 peaks (vdpbf16ps chains; AMX through oneDNN where spool uses it).\n",
                           NULL, NULL, NULL, OPTS, sizeof OPTS / sizeof OPTS[0], 0, NULL};

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* n rounds of STEP on 12 independent accumulators (12 named variables, not an array, so they stay
 * in registers), then their sum, so that nothing can be folded away. */
#define CHAINS(STEP)                                                                                      \
    __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2), a3 = _mm512_set1_ps(3); \
    __m512 a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5), a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7); \
    __m512 a8 = _mm512_set1_ps(8), a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11); \
    for (long k = 0; k < n; k++) {                                                                        \
        STEP(a0), STEP(a1), STEP(a2), STEP(a3), STEP(a4), STEP(a5);                                       \
        STEP(a6), STEP(a7), STEP(a8), STEP(a9), STEP(a10), STEP(a11);                                     \
    }                                                                                                     \
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),                 \
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));                \
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));                  \
    return _mm512_reduce_add_ps(s)

/* 12 chains of FMAs on 16 floats each: 384 flops per round */
__attribute__((target("avx512f"), noinline)) static float chains(long n)
{
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
#define FMA(x) x = _mm512_fmadd_ps(x, m, c)
    CHAINS(FMA);
#undef FMA
}

/* 12 chains of vdpbf16ps, 32 bf16 products each: 768 flops per round */
__attribute__((target("avx512f,avx512bf16"), noinline)) static float dp_chains(long n)
{
    const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3380);
#define DP(v) v = _mm512_dpbf16_ps(v, x, y)
    CHAINS(DP);
#undef DP
}

/* best of 5 rounds of `seconds` each: fn(n) does n rounds of `flops` */
static double peak_of(float (*fn)(long), double flops, double seconds)
{
    long n = 1 << 16;
    double t0 = cpu_s();
    volatile float sink = fn(n);
    double t1 = cpu_s() - t0;
    n = (long)(n * seconds / (t1 > 1e-6 ? t1 : 1e-6)) + 1;
    double best = 0;
    for (int r = 0; r < 5; r++) {
        t0 = cpu_s();
        sink += fn(n);
        double g = flops * (double)n / (cpu_s() - t0) * 1e-9;
        if (g > best) best = g;
    }
    (void)sink;
    return best;
}

/* a [1024]^3 bf16 product through oneDNN on one thread, best of 5 (0: AMX not in use) */
static double amx_rate(void)
{
    const int n = 1024;
    size_t bytes = sp__amx_gemm_scratch(0, 0, n, n, n, n, 0, 1);
    float *a = calloc((size_t)n * n, sizeof *a), *c = calloc((size_t)n * n, sizeof *c);
    void *scratch = bytes ? aligned_alloc(64, (bytes + 63) / 64 * 64) : NULL;
    double best = 0;
    for (int r = 0; a && c && scratch && r < 6; r++) {
        double t0 = cpu_s();
        if (!sp__amx_gemm(0, 0, n, n, n, a, n, NULL, 0, a, n, NULL, 0, NULL, 0, c, n, 1, scratch, bytes)) break;
        double g = 2.0 * n * n * n / (cpu_s() - t0) * 1e-9;
        if (r > 0 && g > best) best = g; /* round 0 makes the primitive */
    }
    free(a), free(c), free(scratch);
    return best;
}

int main(int argc, char **argv)
{
    cfg c = {0};
    ex_args args;
    int rc = ex_cli_parse(&CLI, argc, argv, &c, &args);
    if (rc >= 0) return rc;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) {
        fprintf(stderr, "spool-fma-peak: this CPU has no AVX-512; the peak is not measured\n");
        return EX_EXIT_FAIL;
    }
    double best = peak_of(chains, 384.0, c.seconds);
    double dp = __builtin_cpu_supports("avx512bf16") ? peak_of(dp_chains, 768.0, c.seconds) : 0;
    double amx = sp__amx_ok() ? amx_rate() : 0;
    if (c.json) {
        printf("{\"fma_peak_gflops\": %.1f, \"bf16_dp_peak_gflops\": %.1f, \"bf16_amx_gflops\": %.1f, "
               "\"bf16_peak_gflops\": %.1f, \"rounds\": 5}\n",
               best, dp, amx, amx > dp ? amx : dp > 0 ? dp : best);
    } else {
        printf("FP32 FMA peak of one core: %.1f GFLOP/s (12 chains of AVX-512 FMAs, best of 5)\n", best);
        if (dp > 0) printf("bf16 vdpbf16ps peak of one core: %.1f GFLOP/s (12 chains, best of 5; %.2fx FP32)\n", dp, dp / best);
        else printf("bf16 vdpbf16ps: this CPU has no AVX512_BF16\n");
        if (amx > 0) printf("bf16 on AMX through oneDNN: %.1f GFLOP/s ([1024]^3 matmul, one thread; %.2fx FP32)\n", amx, amx / best);
    }
    return 0;
}
