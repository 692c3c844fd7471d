/* SPDX-License-Identifier: MIT */
/* vec.c - picks the elementwise kernel table (vec.h) for the CPU the library runs on.
 *
 * Chosen on first use, not at load (loading the library runs nothing): the widest of avx512
 * (x86-64-v4: AVX-512 F, BW, DQ, VL), avx2 (x86-64-v3: AVX2, FMA, BMI2) and baseline that the CPU
 * supports, capped by the environment variable SPOOL_CPU (baseline, avx2 or avx512; avx512bf16 and
 * amx mean avx512 here and cap the bf16 product kernels, ops/bf16.c) when it is
 * set, so a user can compare them or avoid one. A SPOOL_CPU naming more than the CPU has is
 * ignored (it is a cap); a word that is none of these is refused at spool's first use
 * (autograd/runtime.c), so a typo cannot go unnoticed. sp_info() reports the choice. */
#include "vec.h"
#include "../autograd/noise.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* 0 baseline, 1 avx2, 2 avx512: what this CPU (and its OS, which cpuid reports) can run */
static int cpu_level(void)
{
    int have = 0;
#if defined(SP_VEC_X86) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2")) have = 1;
    if (have && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        have = 2;
#endif
    return have;
}

static int level_of(const char *name)
{
    /* avx512bf16 and amx cap only the bf16 product kernels (ops/bf16.c); the vector kernels are avx512's */
    return !strcmp(name, "baseline") ? 0 : !strcmp(name, "avx2") ? 1
         : !strcmp(name, "avx512") || !strcmp(name, "avx512bf16") || !strcmp(name, "amx") ? 2 : -1;
}

int sp__vec_name_known(const char *name) { return name && level_of(name) >= 0; }

const sp_vec_kernels *sp__vec_table(const char *name)
{
    int l = name ? level_of(name) : -1;
    if (l < 0 || l > cpu_level()) return NULL;
#ifdef SP_VEC_X86
    if (l == 2) return &sp__vec_avx512;
    if (l == 1) return &sp__vec_avx2;
#endif
    return &sp__vec_baseline;
}

static const sp_vec_kernels *choose(void)
{
    int have = cpu_level();
    const char *want = getenv("SPOOL_CPU");
    if (want && level_of(want) >= 0 && level_of(want) < have) have = level_of(want);
    static const char *const names[] = {"baseline", "avx2", "avx512"};
    return sp__vec_table(names[have]);
}

const sp_vec_kernels *sp__vec(void)
{
    static const sp_vec_kernels *_Atomic chosen;
    const sp_vec_kernels *k = atomic_load_explicit(&chosen, memory_order_acquire);
    if (!k) {
        k = choose();
        atomic_store_explicit(&chosen, k, memory_order_release);
    }
    return k;
}

/* autograd/noise.h: the mask's rows on the team (large masks: dropout between the layers of a long
 * run), each row through the table's kernel, every element from its own coordinates alone. */
void sp__noise_fill(sp_real *m, int R, int C, double p, sp_real keep, uint64_t key, uint64_t what, int64_t row0)
{
    const uint64_t hw = sp__noise_what(key, what), thr = sp__noise_threshold(p);
    const sp_vec_kernels *V = sp__vec();
    const size_t n_ = (size_t)R * C;
#pragma omp parallel for if (n_ >= SP_PAR_MIN_ELEMS) num_threads(sp__threads_now()) schedule(static)
    for (int i = 0; i < R; i++) V->noise_row(m + (size_t)i * C, C, sp__noise_row(hw, (uint64_t)(row0 + i)), thr, keep);
}
