/* SPDX-License-Identifier: MIT */
/* layers_internal.h - what the files of layers/ share: the cells' two products (project.c),
 * parameter creation (init.c), step masks and scopes (cell.c), sequence checks (pool.c). The cell
 * families' functions are in cell_table.h. Not installed; users see only spool/layers.h. */
#ifndef SP_LAYERS_INTERNAL_H
#define SP_LAYERS_INTERNAL_H

#include "spool.h"
#include "../autograd/noise.h" /* counter-based dropout and zoneout masks */

/* x [N, I] -> x W_ih^T + b_ih + b_hh [N, G]: the built-in cells' project() (project.c). */
sp_tensor *sp__project_ih(sp_tape *t, const sp_cell *c, sp_tensor *x);
/* x [N, I] -> x W_ih^T + bias, bias [1, G] (for a cell that folds in only part of b_hh). */
sp_tensor *sp__project_with_bias(sp_tape *t, const sp_cell *c, sp_tensor *x, sp_tensor *bias);
/* h W_hh^T [B, n] for the rows [r0, r0+n) of W_hh (b_hh is already in the projection). */
sp_tensor *sp__recurrent(sp_tape *t, const sp_cell *c, sp_tensor *h, int r0, int n);

/* The recurrent product's input: h, or h * c->h_mask under recurrent (variational) dropout. */
static inline sp_tensor *sp__rec_input(sp_tape *t, const sp_cell *c, sp_tensor *h)
{
    return c->h_mask ? sp_mul(t, h, c->h_mask) : h;
}

/* "<pre><what><sfx>" into a static-size buffer; the weight is U(+-bound). NULL on error. */
sp_tensor *sp__param(sp_params *ps, const char *pre, const char *what, const char *sfx, int rows, int cols,
                     double bound, sp_rng *rng);
/* The same for a bias [1, n], stored 1-D in checkpoints (sp_param_vec). */
sp_tensor *sp__bias(sp_params *ps, const char *pre, const char *what, const char *sfx, int n, double bound,
                    sp_rng *rng);
sp_tensor *sp__bias_uniform(sp_params *ps, const char *name, int n, double bound, sp_rng *rng);

/* A tape constant [R, 1] with 1 where step t is real for row b (t < len[b]), else 0; NULL if every
 * row is real at t (the caller skips masking). *all_pad is set when no row is real. */
sp_tensor *sp__step_mask(sp_tape *t, int tstep, int B, const int *lengths, int *all_pad);

/* A tape constant [R, C]: rows row0.. of the noise mask (key, what), each element 0 with
 * probability p, else keep (autograd/error.c draws it). NULL if the tape failed. */
sp_tensor *sp__noise_const(sp_tape *t, int R, int C, double p, sp_real keep, uint64_t key, uint64_t what, int64_t row0);
/* The same as an inverted dropout mask: 0 or 1 / (1 - p). */
static inline sp_tensor *sp__dropout_const(sp_tape *t, int R, int C, double p, uint64_t key, uint64_t what, int64_t row0)
{
    return sp__noise_const(t, R, C, p, (sp_real)(1 / (1 - p)), key, what, row0);
}

/* Checks that seq is [T*B, C] with T, B > 0 and lengths (if any) in [0, T]; else fails the tape
 * with a message naming `what`. Returns 1 if fine. */
int sp__check_seq(sp_tape *t, const char *what, const sp_tensor *seq, int T, int B, const int *lengths);

/* Set the tape scope to "<outer>/<leaf...>" (outer = the scope the runner was called with). */
void sp__scope_push(sp_tape *t, const char *outer, const char *fmt, ...) SP_PRINTF(3, 4);

#endif
