/* SPDX-License-Identifier: MIT */
/* gru_cell.c - gated recurrent units in the three forms people mean by "GRU", named by what they
 * do (arXiv 1406.1078 v1/v2 vs v3, Keras reset_after).
 *
 * Gates are stacked r, z, n (PyTorch order); xr = x W_ir^T + b_ir etc. come from project(), and
 * hr = h W_hr^T + b_hr etc. are one recurrent matmul per step.
 *
 *   SP_CELL_GRU_RESET_AFTER_MATMUL (torch.nn.GRU, cuDNN, Keras reset_after=True):
 *     r = sigmoid(xr + hr)      z = sigmoid(xz + hz)
 *     n = tanh(xn + r * (h W_hn^T + b_hn))
 *     h' = (1 - z) * n + z * h  = n + z * (h - n)
 *   SP_CELL_GRU_RESET_BEFORE_MATMUL (Keras reset_after=False, most course notes):
 *     r, z as above;  n = tanh(xn + (r * h) W_hn^T + b_hn);  h' as above.
 *     The n block needs r first, so each step runs two recurrent matmuls (r,z rows, then n rows).
 *     Its W_hh is stored as "weight_hh_resetbefore_l<k>" so PyTorch cannot load it as a GRU.
 *   SP_CELL_GRU_UPDATE_ONLY (no reset gate; gates z, n, G = 2H):
 *     z = sigmoid(xz + hz)      n = tanh(xn + hn)      h' = n + z * (h - n)
 *
 *   SP_CELL_MGU (minimal gated unit, Zhou et al. 2016; gates f, n, G = 2H):
 *     f = sigmoid(xf + hf)      n = tanh(xn + (f * h) W_hn^T + b_hn)      h' = n + (1 - f) * (h - n)
 *     One gate plays both parts: it resets h inside the candidate and it lets the candidate in
 *     (h' = (1 - f) h + f n). Its W_hh is "weight_hh_mgu_l<k>", its own name as no PyTorch cell
 *     has this math.
 *
 * z keeps the old state (PyTorch's sign convention).
 */
#include "cell_table.h"
#include "layers_internal.h"

#include <math.h>

/* h' = n + z * (h - n) */
static sp_tensor *gru_update(sp_tape *t, sp_tensor *z, sp_tensor *n, sp_tensor *h)
{
    return sp_name(t, sp_add(t, n, sp_mul(t, z, sp_sub(t, h, n))), "h");
}

/* The reset-after GRU's n block r * (h W_hn^T + b_hn) has b_hn inside the product term, so that
 * block of b_hh stays out of the projection (the step passes it to sp_gru_cell). */
sp_tensor *sp__gru_after_project(sp_tape *t, const sp_cell *c, sp_tensor *x)
{
    int H = c->hidden_size;
    sp_tensor *b = sp_add(t, c->b_ih, c->b_hh);
    sp_tensor *parts[2] = {sp_slice_cols(t, b, 0, 2 * H), sp_slice_cols(t, c->b_ih, 2 * H, H)};
    return sp__project_with_bias(t, c, x, sp_concat(t, parts, 2));
}

sp_status sp__gru_after_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out)
{
    /* the fused op is exactly this composition (tests/test_ops_grad.c checks both ways):
     *   rz = s(xp_rz + gh_rz), n = tanh(xp_n + r (gh_n + b_hn)), h' = n + z (h - n) */
    int H = c->hidden_size;
    sp_tensor *h = state[0], *gh = sp__recurrent(t, c, sp__rec_input(t, c, h), 0, 3 * H);
    sp_tensor *b_hn = sp_slice_cols(t, c->b_hh, 2 * H, H);
    if (!c->cand_mask) {
        out[0] = sp_name(t, sp_gru_cell(t, xp, gh, b_hn, h), "h");
        return sp_tape_status(t);
    }
    /* candidate dropout needs n itself: the fused op's composition, with d(n) */
    sp_tensor *rz = sp_sigmoid(t, sp_add(t, sp_slice_cols(t, xp, 0, 2 * H), sp_slice_cols(t, gh, 0, 2 * H)));
    sp_tensor *r = sp_name(t, sp_slice_cols(t, rz, 0, H), "reset"), *z = sp_name(t, sp_slice_cols(t, rz, H, H), "update");
    sp_tensor *n = sp_tanh(t, sp_add(t, sp_slice_cols(t, xp, 2 * H, H), sp_mul(t, r, sp_add(t, sp_slice_cols(t, gh, 2 * H, H), b_hn))));
    out[0] = gru_update(t, z, sp_mul(t, sp_name(t, n, "candidate"), c->cand_mask), h);
    return sp_tape_status(t);
}

sp_tensor *sp__gru_after_seq(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, int T,
                             const int *lengths)
{
    int H = c->hidden_size;
    return sp_gru_seq(t, xp, c->w_hh, sp_slice_cols(t, c->b_hh, 2 * H, H), state[0], T, lengths);
}

sp_status sp__gru_before_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out)
{
    int H = c->hidden_size;
    sp_tensor *h = state[0], *hr = sp__rec_input(t, c, h), *gh = sp__recurrent(t, c, hr, 0, 2 * H);
    sp_tensor *rz = sp_sigmoid(t, sp_add(t, sp_slice_cols(t, xp, 0, 2 * H), gh));
    sp_tensor *r = sp_name(t, sp_slice_cols(t, rz, 0, H), "reset");
    sp_tensor *z = sp_name(t, sp_slice_cols(t, rz, H, H), "update");
    sp_tensor *hn = sp__recurrent(t, c, sp_mul(t, r, hr), 2 * H, H);
    sp_tensor *n = sp_name(t, sp_tanh(t, sp_add(t, sp_slice_cols(t, xp, 2 * H, H), hn)), "candidate");
    out[0] = gru_update(t, z, c->cand_mask ? sp_mul(t, n, c->cand_mask) : n, h);
    return sp_tape_status(t);
}

sp_status sp__gru_update_only_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state,
                                   sp_tensor **out)
{
    int H = c->hidden_size;
    sp_tensor *h = state[0], *pre = sp_matmul_bias(t, sp__rec_input(t, c, h), 0, c->w_hh, 1, xp); /* xp + h W_hh^T */
    sp_tensor *z = sp_name(t, sp_sigmoid(t, sp_slice_cols(t, pre, 0, H)), "update");
    sp_tensor *n = sp_name(t, sp_tanh(t, sp_slice_cols(t, pre, H, H)), "candidate");
    out[0] = gru_update(t, z, c->cand_mask ? sp_mul(t, n, c->cand_mask) : n, h);
    return sp_tape_status(t);
}

sp_status sp__mgu_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out)
{
    int H = c->hidden_size;
    sp_tensor *h = state[0];
    sp_tensor *f = sp_name(t, sp_sigmoid(t, sp_add(t, sp_slice_cols(t, xp, 0, H), sp__recurrent(t, c, h, 0, H))), "forget");
    sp_tensor *hn = sp__recurrent(t, c, sp_mul(t, f, h), H, H);
    sp_tensor *n = sp_name(t, sp_tanh(t, sp_add(t, sp_slice_cols(t, xp, H, H), hn)), "candidate");
    out[0] = gru_update(t, sp_one_minus(t, f), n, h);
    return sp_tape_status(t);
}

static sp_status gru_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o,
                          sp_rng *rng, int gates, const char *hh)
{
    int I = c->input_size, H = c->hidden_size, G = gates * H;
    double k = 1 / sqrt((double)H);
    c->gate_size = G;
    if (!(c->w_ih = sp__param(ps, pre, "weight_ih", sfx, G, I, k, rng)) ||
        !(c->w_hh = sp__param(ps, pre, hh, sfx, G, H, k, rng)) ||
        !(c->b_ih = sp__bias(ps, pre, "bias_ih", sfx, G, k, rng)) ||
        !(c->b_hh = sp__bias(ps, pre, "bias_hh", sfx, G, k, rng)))
        return sp_last_status();
    if (o->orthogonal)
        for (int g = 0; g < gates; g++)
            if (sp_init_orthogonal(c->w_hh, g * H, H, rng) != SP_OK) return sp_last_status();
    return SP_OK;
}

sp_status sp__gru_update_only_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx,
                                   const sp_cell_opts *o, sp_rng *rng)
{
    return gru_init(c, ps, pre, sfx, o, rng, 2, "weight_hh");
}

sp_status sp__gru_before_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o,
                              sp_rng *rng)
{
    return gru_init(c, ps, pre, sfx, o, rng, 3, "weight_hh_resetbefore");
}

sp_status sp__gru_after_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o,
                             sp_rng *rng)
{
    return gru_init(c, ps, pre, sfx, o, rng, 3, "weight_hh");
}

sp_status sp__mgu_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o, sp_rng *rng)
{
    return gru_init(c, ps, pre, sfx, o, rng, 2, "weight_hh_mgu");
}
