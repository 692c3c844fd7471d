/* SPDX-License-Identifier: MIT */
/* project.c - the two products every built-in cell is made of, on PyTorch's weight layout: the
 * input projection x W_ih^T + b_ih (+ b_hh) of all steps at once, and the recurrent product
 * h W_hh^T of one step. The cell families (rnn_cell.c, gru_cell.c, lstm_cell.c) call these; they
 * sit in a file of their own so that the families depend on nothing that depends on them. */
#include "layers_internal.h"

/* Both biases join the input projection, once for all T*B rows, instead of b_hh being added at
 * every step: a pre-activation is x W_ih^T + b_ih + h W_hh^T + b_hh, and where b_hh stands outside
 * any product the sum is the same. (The reset-after GRU keeps one block of b_hh inside its step:
 * its row uses sp__gru_after_project, gru_cell.c.) */
sp_tensor *sp__project_ih(sp_tape *t, const sp_cell *c, sp_tensor *x)
{
    return sp__project_with_bias(t, c, x, sp_add(t, c->b_ih, c->b_hh));
}

sp_tensor *sp__project_with_bias(sp_tape *t, const sp_cell *c, sp_tensor *x, sp_tensor *bias)
{
    return sp_matmul_bias(t, x, 0, c->w_ih, 1, sp_name(t, bias, "bias"));
}

/* h W_hh^T for the rows [r0, r0+n) of W_hh (its biases are in the projection). */
sp_tensor *sp__recurrent(sp_tape *t, const sp_cell *c, sp_tensor *h, int r0, int n)
{
    sp_tensor *w = n == c->w_hh->rows ? c->w_hh : sp_slice_rows(t, c->w_hh, r0, n);
    return sp_matmul_ex(t, h, 0, w, 1);
}
