/* SPDX-License-Identifier: MIT */
/* rnn_cell.c - the vanilla (Elman) recurrent cell, torch.nn.RNN's math and layout.
 *
 *   h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),   act = tanh or relu
 *
 * W_ih [H, I], W_hh [H, H], b_ih, b_hh [1, H]. The x_t W_ih^T + b_ih half comes from project()
 * for all steps at once; the step adds the recurrent half and applies the nonlinearity.
 */
#include "cell_table.h"
#include "layers_internal.h"

#include <math.h>

/* xp + h W_hh^T in one node: the step's projected rows are the product's addend. Recurrent
 * dropout masks h before the product; candidate dropout masks the new h. */
static sp_status rnn_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out, int relu)
{
    sp_tensor *pre = sp_matmul_bias(t, sp__rec_input(t, c, state[0]), 0, c->w_hh, 1, xp);
    sp_tensor *h = relu ? sp_relu(t, pre) : sp_tanh(t, pre);
    out[0] = sp_name(t, c->cand_mask ? sp_mul(t, h, c->cand_mask) : h, "h");
    return sp_tape_status(t);
}

sp_status sp__rnn_tanh_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out)
{
    return rnn_step(t, c, xp, state, out, 0);
}

sp_status sp__rnn_relu_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out)
{
    return rnn_step(t, c, xp, state, out, 1);
}

sp_tensor *sp__rnn_seq(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, int T, const int *lengths)
{
    return sp_rnn_seq(t, xp, c->w_hh, state[0], c->kind == SP_CELL_RNN_RELU, T, lengths);
}

sp_status sp__rnn_cell_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o,
                            sp_rng *rng)
{
    int I = c->input_size, H = c->hidden_size;
    double k = 1 / sqrt((double)H);
    c->gate_size = H;
    if (!(c->w_ih = sp__param(ps, pre, "weight_ih", sfx, H, I, k, rng)) ||
        !(c->w_hh = sp__param(ps, pre, "weight_hh", sfx, H, H, k, rng)) ||
        !(c->b_ih = sp__bias(ps, pre, "bias_ih", sfx, H, k, rng)) ||
        !(c->b_hh = sp__bias(ps, pre, "bias_hh", sfx, H, k, rng)))
        return sp_last_status();
    if (o->orthogonal && sp_init_orthogonal(c->w_hh, 0, H, rng) != SP_OK) return sp_last_status();
    return SP_OK;
}
