/* SPDX-License-Identifier: MIT */
/* noise.h - counter-based noise masks, shared by ops/ (dropout) and layers/ (the sequence runner,
 * the stack); implemented in error.c beside the generator they draw their keys from.
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
/* A key: one 64-bit draw from r. */
uint64_t sp__noise_key(sp_rng *r);
/* The 64 bits of (key, what, row, col): splitmix64's finaliser over each coordinate in turn. */
uint64_t sp__noise_bits(uint64_t key, uint64_t what, uint64_t row, uint64_t col);
/* m[i * C + j] (R x C, dense) = 0 with probability p, else keep: the element (row0 + i, j) of the
 * mask (key, what). */
void sp__noise_fill(sp_real *m, int R, int C, double p, sp_real keep, uint64_t key, uint64_t what, int64_t row0);
/* sp_dropout of x with the mask (key, what) from row row0 on (rows of x are rows row0.. of it). */
sp_tensor *sp__dropout_at(sp_tape *t, sp_tensor *x, double p, uint64_t key, uint64_t what, int64_t row0);

#endif
