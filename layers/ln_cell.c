/* SPDX-License-Identifier: MIT */
/* ln_cell.c - layer-normalised LSTM and GRU (Ba, Kiros & Hinton 2016, section 3.1 and appendix),
 * composed from ops (sp_layer_norm, ops/norm.c). LN(v; g, b) normalises each row over all its
 * columns (all gates at once) and applies gain g and bias b (rows, init 1 and 0); the LN biases
 * are the cells' only biases.
 *
 *   SP_CELL_LN_LSTM, gates i, f, g, o as nn.LSTM:
 *     a = LN(x W_ih^T; g_ih, b_ih) + LN(h W_hh^T; g_hh, b_hh)       [B, 4H]
 *     i, f, o = sigmoid(a_i, a_f, a_o)   g = tanh(a_g)
 *     c' = f * c + i * g
 *     h' = o * tanh(LN(c'; g_c, b_c))
 *   SP_CELL_LN_GRU, gates r, z, n as nn.GRU (reset after the product):
 *     xa = LN(x W_ih^T; g_ih, b_ih)   ha = LN(h W_hh^T; g_hh, b_hh)   [B, 3H]
 *     r = sigmoid(xa_r + ha_r)   z = sigmoid(xa_z + ha_z)
 *     n = tanh(xa_n + r * ha_n)
 *     h' = (1 - z) * n + z * h
 * The input half LN(x W_ih^T) is project(): one GEMM and one layer_norm over all T*B rows.
 * Parameters: "<prefix>.weight_ih_l<k>" [G, I], ".weight_hh_l<k>" [G, H], ".ln_ih_weight_l<k>" /
 * ".ln_ih_bias_l<k>" [1, G], ".ln_hh_weight_l<k>" / ".ln_hh_bias_l<k>" [1, G], and for the LSTM
 * ".ln_c_weight_l<k>" / ".ln_c_bias_l<k>" [1, H]. Zoneout, recurrent and candidate dropout apply
 * as to every built-in cell (sp_cell_noise). */
#include "cell_table.h"
#include "layers_internal.h"

#include <math.h>

sp_tensor *sp__ln_project(sp_tape *t, const sp_cell *c, sp_tensor *x)
{
    return sp_layer_norm(t, sp_matmul_ex(t, x, 0, c->w_ih, 1), c->ln_gain[0], c->ln_bias[0]);
}

static sp_tensor *ln_recurrent(sp_tape *t, const sp_cell *c, sp_tensor *h)
{
    return sp_name(t, sp_layer_norm(t, sp__recurrent(t, c, sp__rec_input(t, c, h), 0, c->gate_size), c->ln_gain[1],
                                    c->ln_bias[1]), "ln_hh");
}

sp_status sp__ln_lstm_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out)
{
    int H = c->hidden_size;
    sp_tensor *a = sp_name(t, sp_add(t, xp, ln_recurrent(t, c, state[0])), "gates"), *q[4];
    if (sp_split_cols(t, a, 4, q) != SP_OK) return sp_tape_status(t);
    sp_tensor *i = sp_name(t, sp_sigmoid(t, q[0]), "input"), *f = sp_name(t, sp_sigmoid(t, q[1]), "forget");
    sp_tensor *g = sp_name(t, sp_tanh(t, q[2]), "candidate"), *o = sp_name(t, sp_sigmoid(t, q[3]), "output");
    if (c->cand_mask) g = sp_mul(t, g, c->cand_mask);
    sp_tensor *c2 = sp_name(t, sp_add(t, sp_mul(t, f, state[1]), sp_mul(t, i, g)), "c");
    sp_tensor *cn = sp_name(t, sp_layer_norm(t, c2, c->ln_gain[2], c->ln_bias[2]), "ln_c");
    out[0] = sp_name(t, sp_mul(t, o, sp_tanh(t, cn)), "h");
    out[1] = c2;
    (void)H;
    return sp_tape_status(t);
}

sp_status sp__ln_gru_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out)
{
    int H = c->hidden_size;
    sp_tensor *h = state[0], *ha = ln_recurrent(t, c, h);
    sp_tensor *rz = sp_sigmoid(t, sp_add(t, sp_slice_cols(t, xp, 0, 2 * H), sp_slice_cols(t, ha, 0, 2 * H)));
    sp_tensor *r = sp_name(t, sp_slice_cols(t, rz, 0, H), "reset"), *z = sp_name(t, sp_slice_cols(t, rz, H, H), "update");
    sp_tensor *n = sp_name(t, sp_tanh(t, sp_add(t, sp_slice_cols(t, xp, 2 * H, H), sp_mul(t, r, sp_slice_cols(t, ha, 2 * H, H)))),
                           "candidate");
    if (c->cand_mask) n = sp_mul(t, n, c->cand_mask);
    out[0] = sp_name(t, sp_add(t, n, sp_mul(t, z, sp_sub(t, h, n))), "h");
    return sp_tape_status(t);
}

static sp_tensor *ones(sp_params *ps, const char *pre, const char *what, const char *sfx, int n, double v)
{
    sp_rng unused;
    sp_rng_seed(&unused, 0);
    sp_tensor *p = sp__param(ps, pre, what, sfx, 1, n, 0, &unused);
    if (p)
        for (int j = 0; j < n; j++) *sp_at(p, 0, j) = (sp_real)v;
    return p;
}

sp_status sp__ln_cell_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o,
                           sp_rng *rng)
{
    int I = c->input_size, H = c->hidden_size, lstm = c->kind == SP_CELL_LN_LSTM, gates = lstm ? 4 : 3, G = gates * H;
    double k = 1 / sqrt((double)H);
    if (o->lstm_flags || o->proj_size)
        return sp_fail(SP_ERR_ARG, "cell \"%s\": the layer-normalised LSTM takes no peephole, coupled or projection "
                       "option (only forget_bias_one)", c->name);
    c->gate_size = G;
    if (!(c->w_ih = sp__param(ps, pre, "weight_ih", sfx, G, I, k, rng)) ||
        !(c->w_hh = sp__param(ps, pre, "weight_hh", sfx, G, H, k, rng)) ||
        !(c->ln_gain[0] = ones(ps, pre, "ln_ih_weight", sfx, G, 1)) || !(c->ln_bias[0] = ones(ps, pre, "ln_ih_bias", sfx, G, 0)) ||
        !(c->ln_gain[1] = ones(ps, pre, "ln_hh_weight", sfx, G, 1)) || !(c->ln_bias[1] = ones(ps, pre, "ln_hh_bias", sfx, G, 0)))
        return sp_last_status();
    if (lstm && (!(c->ln_gain[2] = ones(ps, pre, "ln_c_weight", sfx, H, 1)) ||
                 !(c->ln_bias[2] = ones(ps, pre, "ln_c_bias", sfx, H, 0))))
        return sp_last_status();
    if (o->orthogonal)
        for (int g = 0; g < gates; g++)
            if (sp_init_orthogonal(c->w_hh, g * H, H, rng) != SP_OK) return sp_last_status();
    if (lstm && o->forget_bias_one)
        for (int j = 0; j < H; j++) *sp_at(c->ln_bias[0], 0, H + j) = 1;
    return SP_OK;
}
