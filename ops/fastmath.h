/* SPDX-License-Identifier: MIT */
/* fastmath.h - exp, sigmoid and tanh for the elementwise kernels.
 *
 * libm's expf/tanhf are scalar calls (about 30 ns per sigmoid here), and a training step calls
 * them millions of times. These are branch-free, so a loop over a row vectorises: exp by
 * Cody-Waite range reduction (x = n ln2 + r, |r| <= ln2/2), a degree-6 polynomial for e^r and the
 * exponent built from the bits of the rounded n. Relative error below 2e-7 (float rounding is
 * 6e-8). NaN stays NaN (comparisons with NaN are false, so the clamps let it through), which keeps
 * the optimizer's non-finite check working. The double build (gradient tests) uses libm.
 */
#ifndef SP_FASTMATH_H
#define SP_FASTMATH_H

#include "../autograd/tape_internal.h"

#include <stdint.h>
#include <string.h>

/* Always inlined, also at -O0: each instruction-set build of ops/vec_kernels.c must carry its own
 * copy of this math, compiled for its vector width (tests/test_portable.sh checks that no shared
 * out-of-line copy with AVX instructions is left behind). */
#if defined(__GNUC__)
#define SP_MATH_INLINE static inline __attribute__((always_inline))
#else
#define SP_MATH_INLINE static inline
#endif

#ifdef SP_USE_DOUBLE

SP_MATH_INLINE sp_real sp_exp_r(sp_real x) { return exp(x); }
SP_MATH_INLINE sp_real sp_tanh_r(sp_real x) { return tanh(x); }
SP_MATH_INLINE sp_real sp_sigmoid_r(sp_real x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }
SP_MATH_INLINE sp_real sp_softplus_r(sp_real x) { return (x > 0 ? x : 0) + log1p(exp(x > 0 ? -x : x)); }

#else

SP_MATH_INLINE float sp_exp_r(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* n = round(x / ln2): adding 1.5 * 2^23 leaves n in the low mantissa bits */
    const float magic = 12582912.0f;
    float t = x * 1.44269504088896341f + magic;
    float n = t - magic;
    float r = x - n * 0.693145751953125f - n * 1.428606765330187e-06f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666671633f + r * (0.041666645557f +
              r * (0.008333360776f + r * 0.001388788689f)))));
    uint32_t tb, sb;
    memcpy(&tb, &t, 4);
    sb = (tb - 0x4B400000u + 127u) << 23; /* 2^n */
    float scale;
    memcpy(&scale, &sb, 4);
    return p * scale;
}

SP_MATH_INLINE float sp_sigmoid_r(float x) { return 1.0f / (1.0f + sp_exp_r(-x)); }

SP_MATH_INLINE float sp_tanh_r(float x)
{
    float ax = x < 0 ? -x : x;
    float e = sp_exp_r(-2.0f * ax);
    float big = (1.0f - e) / (1.0f + e);
    float x2 = x * x;
    float small = ax * (1.0f + x2 * (-0.333333333f + x2 * 0.133333333f)); /* |x| < 1/16: series */
    float y = ax < 0.0625f ? small : big;
    return x < 0 ? -y : (x == x ? y : x);
}

/* softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e) with e = e^-|x| in (0, 1]. log1p(e) =
 * 2 atanh(s) with s = e / (2 + e) in (0, 1/3]: the odd series to s^13 is within 1e-8 relative
 * (the next term is s^15 / 15 <= 5e-9 of it), and keeps full relative accuracy as e -> 0, where it
 * is e itself. No log, no branch: the loop vectorises (libm's logf did not: minLSTM's two
 * softplus passes cost more than its whole scan). */
SP_MATH_INLINE float sp_softplus_r(float x)
{
    float e = sp_exp_r(x > 0 ? -x : x), s = e / (2.0f + e), s2 = s * s;
    float l = 2.0f * s * (1.0f + s2 * (0.333333333f + s2 * (0.2f + s2 * (0.142857143f + s2 * (0.111111111f +
              s2 * (0.0909090909f + s2 * 0.0769230769f))))));
    return (x > 0 ? x : 0.0f) + l;
}

#endif
#endif
