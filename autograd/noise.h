/* SPDX-License-Identifier: MIT */
/* noise.h - counter-based noise masks, shared by ops/ (dropout) and layers/ (the sequence runner,
 * the stack): the hash here, the key and the bits in error.c beside the generator the keys come
 * from, the fill in ops/vec.c (a vector kernel of vec.h per instruction set).
 *
 * Noise masks (dropout, zoneout) are counter-based: a key (one 64-bit draw from the caller's
 * sp_rng per op or per run) and an element's coordinates (what the mask is for, row, column) give
 * the element's uniform, whatever else was drawn before or is drawn after. So a mask does not
 * depend on the order masks are drawn in, and a sequence cut into pieces (sp_segment) draws from
 * one key the masks its whole run draws, each step by its absolute index. */
#ifndef SP_NOISE_H
#define SP_NOISE_H

#include "spool.h"

enum {
    SP_NOISE_DROPOUT = 1,   /* sp_dropout */
    SP_NOISE_VARIATIONAL,   /* sp_variational_mask */
    SP_NOISE_ZONEOUT_H,     /* sequence runner: per step, rows (step0 + s) * B + b */
    SP_NOISE_ZONEOUT_C,
    SP_NOISE_RECURRENT,     /* per sequence: rows b */
    SP_NOISE_CANDIDATE,     /* per step */
    SP_NOISE_OUTPUT,        /* sp_rnn_run's output dropout, per step */
    SP_NOISE_LAYER,         /* sp_rnn_run: the key of layer l's runner */
    SP_NOISE_BETWEEN = 16,  /* + l: sp_rnn_run's dropout after layer l, per step */
    SP_NOISE_INPUT = 32     /* + l: sp_rnn_run's variational dropout of layer l's input, per sequence */
};
/* splitmix64's finaliser: every input bit reaches every output bit. Inline (always, also at -O0)
 * so that each instruction-set build of ops/vec_kernels.c carries its own vectorised copy. */
#if defined(__GNUC__)
#define SP_NOISE_INLINE static inline __attribute__((always_inline))
#else
#define SP_NOISE_INLINE static inline
#endif
SP_NOISE_INLINE uint64_t sp__mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* the three stages of sp__noise_bits, so a mask mixes its key once and each row once */
SP_NOISE_INLINE uint64_t sp__noise_what(uint64_t key, uint64_t what)
{
    return sp__mix64(key + 0x9E3779B97F4A7C15ull * (what + 1));
}
SP_NOISE_INLINE uint64_t sp__noise_row(uint64_t h, uint64_t row)
{
    return sp__mix64(h ^ (row * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull));
}
SP_NOISE_INLINE uint64_t sp__noise_col(uint64_t h, uint64_t col)
{
    return sp__mix64(h ^ (col * 0xAEF17502108EF2D9ull + 0x9E3779B97F4A7C15ull));
}
/* An element drops when its top 32 bits, as a uniform u / 2^32 in [0, 1), fall under p: u < p 2^32,
 * that is u < ceil(p 2^32) for an integer u (the threshold the row kernels compare with). */
SP_NOISE_INLINE uint64_t sp__noise_threshold(double p)
{
    double x = p * 4294967296.0;
    uint64_t c = (uint64_t)x;
    return (double)c < x ? c + 1 : c;
}
/* A key: one 64-bit draw from r. */
uint64_t sp__noise_key(sp_rng *r);
/* The 64 bits of (key, what, row, col): splitmix64's finaliser over each coordinate in turn. */
uint64_t sp__noise_bits(uint64_t key, uint64_t what, uint64_t row, uint64_t col);
/* m[i * C + j] (R x C, dense) = 0 with probability p, else keep: the element (row0 + i, j) of the
 * mask (key, what). In ops/vec.c: rows on the team, each through the vector row kernel. */
void sp__noise_fill(sp_real *m, int R, int C, double p, sp_real keep, uint64_t key, uint64_t what, int64_t row0);
/* sp_dropout of x with the mask (key, what) from row row0 on (rows of x are rows row0.. of it). */
sp_tensor *sp__dropout_at(sp_tape *t, sp_tensor *x, double p, uint64_t key, uint64_t what, int64_t row0);

#endif
