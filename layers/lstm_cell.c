/* SPDX-License-Identifier: MIT */
/* lstm_cell.c - the LSTM of torch.nn.LSTM and its variants, as compositions of ops.
 *
 * Gates stacked i, f, g, o (PyTorch). With a = x W_ih^T + b_ih (from project(), all steps at once)
 * plus h W_hh^T + b_hh (one matmul per step), split into a_i, a_f, a_g, a_o:
 *
 *   i = sigmoid(a_i)   f = sigmoid(a_f)   g = tanh(a_g)   o = sigmoid(a_o)
 *   c' = f * c + i * g
 *   h' = o * tanh(c')
 *
 * Variants (any combination):
 *   SP_LSTM_PEEPHOLE  (Gers, Schraudolph & Schmidhuber 2002), diagonal weights p_i, p_f, p_o, stored
 *                     as rows of "weight_peep_l<k>" [3, H] (rows p_i, p_o, [2, H], when coupled):
 *                       i = sigmoid(a_i + p_i * c)   f = sigmoid(a_f + p_f * c)
 *                       o = sigmoid(a_o + p_o * c')        (o sees the new cell)
 *   SP_LSTM_COUPLED   (CIFG, Greff et al. 2017) no forget block, gates stacked i, g, o (G = 3H):
 *                       f = 1 - i
 *   proj_size P       (LSTMP, Sak et al. 2014; torch proj_size): h' = (o * tanh(c')) W_hr^T with
 *                     W_hr [P, H]; the recurrent input is the P-wide h, so W_hh is [G, P].
 * State: h [B, O] (O = P or H) is state[0], c [B, H] is state[1].
 */
#include "cell_table.h"
#include "layers_internal.h"

#include <math.h>

/* sigmoid(a + p * c) with p a row [1, H] of the peephole weights, or sigmoid(a) without one. */
static sp_tensor *gate(sp_tape *t, sp_tensor *a, const sp_cell *c, int peep_row, sp_tensor *cell, const char *name)
{
    if (c->w_peep) a = sp_add(t, a, sp_mul(t, cell, sp_slice_rows(t, c->w_peep, peep_row, 1)));
    return sp_name(t, sp_sigmoid(t, a), "%s", name);
}

/* Only the plain LSTM runs as one op: peepholes, coupling and projection go step by step. */
sp_tensor *sp__lstm_seq(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, int T, const int *lengths)
{
    if (c->w_peep || c->w_hr || (c->lstm_flags & SP_LSTM_COUPLED)) return NULL;
    return sp_lstm_seq(t, xp, c->w_hh, state[0], state[1], T, lengths);
}

sp_status sp__lstm_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out)
{
    int H = c->hidden_size, coupled = c->lstm_flags & SP_LSTM_COUPLED;
    sp_tensor *h = sp__rec_input(t, c, state[0]), *cell = state[1]; /* h only feeds the recurrent product */
    if (!c->w_peep && !coupled && !c->cand_mask) {
        /* the standard cell's gate math is one fused op (the composition below, checked equal in
         * tests/test_ops_grad.c): [h' | c'] = lstm_cell(xp + h W_hh^T, c) */
        sp_tensor *hc = sp_name(t, sp_lstm_cell(t, xp, sp__recurrent(t, c, h, 0, c->gate_size), cell), "cell");
        sp_tensor *h2 = sp_slice_cols(t, hc, 0, H);
        out[1] = sp_name(t, sp_slice_cols(t, hc, H, H), "c");
        out[0] = sp_name(t, c->w_hr ? sp_matmul_ex(t, h2, 0, c->w_hr, 1) : h2, "h");
        return sp_tape_status(t);
    }
    sp_tensor *a = sp_name(t, sp_matmul_bias(t, h, 0, c->w_hh, 1, xp), "gates"); /* xp + h W_hh^T */
    /* column blocks: i, f, g, o  or (coupled) i, g, o */
    int bi = 0, bf = H, bg = coupled ? H : 2 * H, bo = coupled ? 2 * H : 3 * H;
    sp_tensor *i = gate(t, sp_slice_cols(t, a, bi, H), c, 0, cell, "input");
    sp_tensor *f = coupled ? sp_name(t, sp_one_minus(t, i), "forget")
                           : gate(t, sp_slice_cols(t, a, bf, H), c, 1, cell, "forget");
    sp_tensor *g = sp_name(t, sp_tanh(t, sp_slice_cols(t, a, bg, H)), "candidate");
    if (c->cand_mask) g = sp_mul(t, g, c->cand_mask); /* Semeniuta et al.: c' = f c + i d(g) */
    sp_tensor *c2 = sp_name(t, sp_add(t, sp_mul(t, f, cell), sp_mul(t, i, g)), "c");
    sp_tensor *o = gate(t, sp_slice_cols(t, a, bo, H), c, coupled ? 1 : 2, c2, "output");
    sp_tensor *h2 = sp_mul(t, o, sp_tanh(t, c2));
    if (c->w_hr) h2 = sp_matmul_ex(t, h2, 0, c->w_hr, 1);
    out[0] = sp_name(t, h2, "h");
    out[1] = c2;
    return sp_tape_status(t);
}

sp_status sp__lstm_cell_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o,
                             sp_rng *rng)
{
    int I = c->input_size, H = c->hidden_size, coupled = o->lstm_flags & SP_LSTM_COUPLED;
    int gates = coupled ? 3 : 4, G = gates * H, O = o->proj_size ? o->proj_size : H;
    double k = 1 / sqrt((double)H);
    c->lstm_flags = o->lstm_flags & (SP_LSTM_PEEPHOLE | SP_LSTM_COUPLED);
    c->gate_size = G;
    c->out_size = O;
    /* Creation order follows torch's state_dict order: ih, hh, biases, then hr. */
    if (!(c->w_ih = sp__param(ps, pre, "weight_ih", sfx, G, I, k, rng)) ||
        !(c->w_hh = sp__param(ps, pre, "weight_hh", sfx, G, O, k, rng)) ||
        !(c->b_ih = sp__bias(ps, pre, "bias_ih", sfx, G, k, rng)) ||
        !(c->b_hh = sp__bias(ps, pre, "bias_hh", sfx, G, k, rng)))
        return sp_last_status();
    if (o->proj_size && !(c->w_hr = sp__param(ps, pre, "weight_hr", sfx, O, H, k, rng))) return sp_last_status();
    if ((o->lstm_flags & SP_LSTM_PEEPHOLE) &&
        !(c->w_peep = sp__param(ps, pre, "weight_peep", sfx, gates - 1, H, k, rng)))
        return sp_last_status();
    if (o->orthogonal)
        for (int g = 0; g < gates; g++)
            if (sp_init_orthogonal(c->w_hh, g * H, H, rng) != SP_OK) return sp_last_status();
    if (o->forget_bias_one && !coupled)
        for (int j = 0; j < H; j++) {
            *sp_at(c->b_ih, 0, H + j) = 1;
            *sp_at(c->b_hh, 0, H + j) = 0;
        }
    return SP_OK;
}

/* "lstm", "lstm+peephole", ..., "lstm+peephole+coupled+projection"; PyTorch has the plain cell
 * and the projection (proj_size) one, no peephole or coupled gates. */
const char *sp__lstm_variant(const sp_cell *c, const char **pytorch_mode)
{
    static const char *names[8] = {"lstm", "lstm+peephole", "lstm+coupled", "lstm+peephole+coupled",
                                   "lstm+projection", "lstm+peephole+projection", "lstm+coupled+projection",
                                   "lstm+peephole+coupled+projection"};
    if (c->lstm_flags) *pytorch_mode = NULL;
    return names[(c->lstm_flags & 3) | (c->out_size < c->hidden_size ? 4 : 0)];
}
