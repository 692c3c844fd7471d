/* SPDX-License-Identifier: MIT */
/* min_cell.c - minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", arXiv
 * 2410.01201): gates that read only the input, so the recurrence is linear in h,
 *   h_t = a_t * h_{t-1} + b_t,
 * every product runs once over all T steps (the projection) and the recurrence is one scan instead
 * of T steps. Both cells have the form a = 1 - sigmoid(z), b = sigmoid(z) h~, which is
 * sp_gated_scan (ops/scan.c): the sigmoid, the 1 - s, the product with the candidate and the scan
 * in one pass forward and one back (as seven ops it was a third of a minGRU training step at
 * T = 1024; docs/mingru.md). Gates from project() = x W_ih^T + b_ih:
 *
 *   SP_CELL_MINGRU (gates z, h~; G = 2H):
 *     h' = (1 - sigmoid(z)) h + sigmoid(z) h~
 *   SP_CELL_MINLSTM (gates f, i, h~; G = 3H), the forget and input gates normalised to sum 1:
 *     f' = f / (f + i), i' = 1 - f' = sigmoid(z) with z = log i - log f
 *        = softplus(-x_f) - softplus(-x_i)                           h' = f' h + i' h~
 *     (f = sigmoid(x_f), i = sigmoid(x_i); the log domain, as the paper's code does, so it neither
 *     overflows nor divides by ~0.)
 *
 * The candidate is linear, h~ = x W_h^T + b_h, the cells as the paper defines them (its sections
 * 3.1 and 3.2). Its code replaces h~ by a positive g(h~) (x + 1/2 for x >= 0, sigmoid(x) below)
 * only because its scan runs in log space, where log h~ must exist; spool's scan runs in linear
 * space and needs no sign, and g composed from public ops would cost six elementwise passes forward
 * and six back per layer (docs/mingru.md). Stability needs nothing more: a + (1 - a) = 1 with a in
 * (0, 1), so h is a convex mix of h0 and the candidates and stays within their range whatever the
 * length of the run.
 *
 * The state is h alone ([B, H]); there are no recurrent weights, so recurrent dropout (h_mask)
 * has nothing to act on and is ignored; candidate dropout multiplies h~. The step (streaming
 * inference, zoneout, dropout masks) is the same math from elementwise ops on one step's rows,
 * equal to the scan to rounding. Parameters: "weight_ih_mingru_l<k>" [G, I] and
 * "bias_ih_mingru_l<k>" [G] (likewise "minlstm"), names of their own since no PyTorch module has
 * this math. bench/peer_min.py has the paper's PyTorch code, both its log-space parallel form and
 * its sequential form. */
#include "cell_table.h"
#include "layers_internal.h"

#include <math.h>

/* The gate z and candidate c of the gated scan from the projected rows xp [N, G] (any N: one step
 * or all steps): h' = (1 - sigmoid(z)) h + sigmoid(z) c. */
static void gate_and_candidate(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor **z, sp_tensor **cand)
{
    int H = c->hidden_size, mg = c->kind == SP_CELL_MINGRU;
    *cand = sp_name(t, sp_slice_cols(t, xp, (mg ? 1 : 2) * H, H), "candidate");
    if (c->cand_mask) *cand = sp_mul(t, *cand, c->cand_mask);
    if (mg) {
        *z = sp_name(t, sp_slice_cols(t, xp, 0, H), "update");
    } else { /* sigmoid(z) = i / (f + i) = 1 - f': z = log i - log f */
        sp_tensor *sf = sp_softplus(t, sp_scale(t, sp_slice_cols(t, xp, 0, H), -1)); /* -log f */
        sp_tensor *si = sp_softplus(t, sp_scale(t, sp_slice_cols(t, xp, H, H), -1)); /* -log i */
        *z = sp_name(t, sp_sub(t, sf, si), "input");
    }
}

sp_tensor *sp__min_project(sp_tape *t, const sp_cell *c, sp_tensor *x)
{
    return sp__project_with_bias(t, c, x, c->b_ih);
}

/* One step, h' = h + sigmoid(z) (c - h), from elementwise ops: the scan's math on B rows, equal to it
 * to rounding (the scan's kernel may fuse the multiply-add), and ops the ONNX exporter translates
 * (a scan over one step would hand it a [2B, H] result and a row slice of the batch). */
sp_status sp__min_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out)
{
    sp_tensor *z, *cand, *h = state[0];
    gate_and_candidate(t, c, xp, &z, &cand);
    out[0] = sp_name(t, sp_add(t, h, sp_mul(t, sp_sigmoid(t, z), sp_sub(t, cand, h))), "h");
    return sp_tape_status(t);
}

sp_tensor *sp__min_seq(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, int T, const int *lengths)
{
    sp_tensor *z, *cand;
    gate_and_candidate(t, c, xp, &z, &cand);
    return sp_gated_scan(t, z, cand, state[0], T, lengths);
}

static sp_status min_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, int gates, const char *w,
                          const char *bias, sp_rng *rng)
{
    int G = gates * c->hidden_size;
    double k = 1 / sqrt((double)c->hidden_size);
    c->gate_size = G;
    if (!(c->w_ih = sp__param(ps, pre, w, sfx, G, c->input_size, k, rng)) ||
        !(c->b_ih = sp__bias(ps, pre, bias, sfx, G, k, rng)))
        return sp_last_status();
    return SP_OK;
}

sp_status sp__mingru_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o,
                          sp_rng *rng)
{
    (void)o; /* orthogonal: no recurrent weights to make orthogonal */
    return min_init(c, ps, pre, sfx, 2, "weight_ih_mingru", "bias_ih_mingru", rng);
}

sp_status sp__minlstm_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o,
                           sp_rng *rng)
{
    (void)o;
    return min_init(c, ps, pre, sfx, 3, "weight_ih_minlstm", "bias_ih_minlstm", rng);
}
