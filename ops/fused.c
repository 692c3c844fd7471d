/* SPDX-License-Identifier: MIT */
/* fused.c - the elementwise part of an LSTM and of a GRU (reset-after) step as single ops.
 *
 * Composed from basic ops an LSTM step's gate math is ~12 records, each a pass over [B, H] memory
 * forward and another backward. Fused, it is one op each way with the gate activations saved for
 * the backward, and the "projected input + recurrent product" sum happens inside it, so a step is
 * just GEMM + this op. These are ordinary ops: same table, own gradient tests (also against their
 * composed forms); the built-in cells use them, and the composed forms stay available to users.
 * The per-row math lives in cell_rows.h, shared with the whole-sequence op (ops/seq.c), and is
 * called through the kernel table of vec.h, which has it vectorised for the CPU at hand.
 */
#include "vec.h"

#include <string.h>

#define ROWS_PARALLEL_IF(n)                                                                        \
    const size_t omp_n_ = (n);                                                                     \
    _Pragma("omp parallel for if(omp_n_ >= SP_PAR_MIN_CELL_ELEMS) num_threads(sp__threads_now()) schedule(static)")

/* d[j] += g[j], j < n (the same gate gradient goes to both summands of the pre-activation) */
static void row_add(sp_real *restrict d, const sp_real *restrict g, int n)
{
    for (int j = 0; j < n; j++) d[j] += g[j];
}

/* -------------------------------------------------------------- LSTM */

/* a = xp + hp [B, 4H], pre-activations in PyTorch's order i, f, g, o; c_prev [B, H]:
 *   i = s(a_i)  f = s(a_f)  g = tanh(a_g)  o = s(a_o)
 *   c = f c_prev + i g      h = o tanh(c)            out = [h | c]  [B, 2H]
 * saved: i, f, g, o, tanh(c)  [B, 5H] */
sp_tensor *sp_lstm_cell(sp_tape *t, sp_tensor *xp, sp_tensor *hp, sp_tensor *c_prev)
{
    sp_tensor *in[3] = {xp, c_prev, hp};
    if (!sp__ready(t, SP_OP_LSTM_CELL, in, 2)) return NULL;
    int B = c_prev->rows, H = c_prev->cols, n_in = hp ? 3 : 2;
    if (xp->rows != B || xp->cols != 4 * H) {
        sp__shape_error(t, SP_OP_LSTM_CELL, "gates must be [B x 4H] for c_prev [B x H]", xp, c_prev);
        return NULL;
    }
    if (hp && (hp->rows != B || hp->cols != 4 * H)) {
        sp__shape_error(t, SP_OP_LSTM_CELL, "recurrent gates must be [B x 4H] for c_prev [B x H]", hp, c_prev);
        return NULL;
    }
    sp_record *r = sp__record(t, SP_OP_LSTM_CELL, B, 2 * H, in, n_in);
    sp_real *s = r ? sp__alloc_raw(t, (size_t)B * 4 * H * sizeof(sp_real)) : NULL; /* i, f, g, o */
    if (!s) return NULL;
    r->saved = s;
    sp_real *out = r->out->data;
    ROWS_PARALLEL_IF((size_t)B * H)
    for (int b = 0; b < B; b++) {
        const sp_real *restrict x = sp_at(xp, b, 0), *restrict cp = sp_at(c_prev, b, 0);
        const sp_real *restrict y = hp ? sp_at(hp, b, 0) : NULL;
        sp_real *h = out + (size_t)b * 2 * H;
        sp__vec()->lstm_fwd(x, y, cp, s + (size_t)b * 4 * H, h, h + H, H);
    }
    return r->out;
}

/* dc = dout_c + dh o (1 - tanh(c)^2)
 * da_i = dc g i(1-i)   da_f = dc c_prev f(1-f)   da_g = dc i (1-g^2)   da_o = dh tanh(c) o(1-o)
 * dxp += da, dhp += da, dc_prev += dc f */
void sp__lstm_cell_backward(sp_record *r)
{
    sp_tensor *xp = r->in[0], *c_prev = r->in[1], *hp = r->n_in > 2 ? r->in[2] : NULL;
    int B = c_prev->rows, H = c_prev->cols;
    const sp_real *s = r->saved, *dout = r->out->grad;
    sp_real *scratch = sp__scratch(r->tape, (size_t)B * 5 * H * sizeof(sp_real));
    if (!scratch) return;
    ROWS_PARALLEL_IF((size_t)B * H)
    for (int b = 0; b < B; b++) {
        const sp_real *restrict sv = s + (size_t)b * 4 * H, *restrict dh = dout + (size_t)b * 2 * H;
        const sp_real *restrict c = r->out->data + (size_t)b * 2 * H + H; /* this step's c */
        const sp_real *restrict dcn = dh + H, *restrict cp = sp_at(c_prev, b, 0);
        sp_real *restrict da = scratch + (size_t)b * 5 * H, *restrict dc = da + 4 * H;
        sp__vec()->lstm_bwd(sv, c, dh, dcn, cp, da, dc, H);
        if (xp->grad) row_add(xp->grad + (size_t)b * xp->stride, da, 4 * H);
        if (hp && hp->grad) row_add(hp->grad + (size_t)b * hp->stride, da, 4 * H);
        if (c_prev->grad) {
            sp_real *restrict dcp = c_prev->grad + (size_t)b * c_prev->stride;
            for (int j = 0; j < H; j++) dcp[j] += dc[j] * sv[H + j];
        }
    }
}

/* --------------------------------------------------------------- GRU */

/* xp = x W_ih^T + b_ih (+ b_hh's r and z parts), hp = h_prev W_hh^T, both [B, 3H] in order
 * r, z, n; b_hn [1, H] (or NULL) is the n part of b_hh, which must stay inside the reset:
 *   r = s(xp_r + hp_r)   z = s(xp_z + hp_z)   n = tanh(xp_n + r (hp_n + b_hn))
 *   h = (1 - z) n + z h_prev                                          out [B, H]
 * saved: r, z, n, hp_n + b_hn  [B, 4H] */
sp_tensor *sp_gru_cell(sp_tape *t, sp_tensor *xp, sp_tensor *hp, sp_tensor *b_hn, sp_tensor *h_prev)
{
    sp_tensor *in[4] = {xp, hp, h_prev, b_hn};
    if (!sp__ready(t, SP_OP_GRU_CELL, in, 3)) return NULL;
    int B = h_prev->rows, H = h_prev->cols;
    if (xp->rows != B || xp->cols != 3 * H) {
        sp__shape_error(t, SP_OP_GRU_CELL, "input projection must be [B x 3H] for h_prev [B x H]", xp, h_prev);
        return NULL;
    }
    if (hp->rows != B || hp->cols != 3 * H) {
        sp__shape_error(t, SP_OP_GRU_CELL, "hidden projection must be [B x 3H] for h_prev [B x H]", hp, h_prev);
        return NULL;
    }
    if (b_hn && (b_hn->rows != 1 || b_hn->cols != H)) {
        sp__shape_error(t, SP_OP_GRU_CELL, "b_hn must be [1 x H] for h_prev [B x H]", b_hn, h_prev);
        return NULL;
    }
    sp_record *r = sp__record(t, SP_OP_GRU_CELL, B, H, in, b_hn ? 4 : 3);
    sp_real *s = r ? sp__alloc_raw(t, (size_t)B * 4 * H * sizeof(sp_real)) : NULL;
    if (!s) return NULL;
    r->saved = s;
    ROWS_PARALLEL_IF((size_t)B * H)
    for (int b = 0; b < B; b++) {
        const sp_real *restrict x = sp_at(xp, b, 0), *restrict y = sp_at(hp, b, 0), *restrict hv = sp_at(h_prev, b, 0);
        const sp_real *restrict bn = b_hn ? b_hn->data : NULL;
        sp_real *sv = s + (size_t)b * 4 * H; /* r, z, n, then hn = hp_n + b_hn */
        sp__vec()->gru_fwd(x, y, bn, hv, sv, sv + 3 * H, r->out->data + (size_t)b * H, H);
    }
    return r->out;
}

/* dn = dh (1-z)   dz = dh (h_prev - n)   dh_prev += dh z
 * da_n = dn (1-n^2):  dxp_n += da_n,  dhp_n += da_n r,  db_hn += da_n r,  dr = da_n (hp_n + b_hn)
 * da_r = dr r(1-r):  dxp_r, dhp_r += da_r;    da_z = dz z(1-z):  dxp_z, dhp_z += da_z */
void sp__gru_cell_backward(sp_record *r)
{
    sp_tensor *xp = r->in[0], *hp = r->in[1], *h_prev = r->in[2], *b_hn = r->n_in > 3 ? r->in[3] : NULL;
    int B = h_prev->rows, H = h_prev->cols;
    const sp_real *s = r->saved;
    /* per row: dx [3H] (for xp) then dy [3H] (for hp; its n part also for b_hn) */
    sp_real *scratch = sp__scratch(r->tape, (size_t)B * 6 * H * sizeof(sp_real));
    if (!scratch) return;
    ROWS_PARALLEL_IF((size_t)B * H)
    for (int b = 0; b < B; b++) {
        const sp_real *restrict sv = s + (size_t)b * 4 * H, *restrict dh = r->out->grad + (size_t)b * H;
        sp_real *restrict dx = scratch + (size_t)b * 6 * H, *restrict dy = dx + 3 * H;
        sp__vec()->gru_bwd(sv, sv + 3 * H, dh, sp_at(h_prev, b, 0), dx, dy, H);
        if (xp->grad) row_add(xp->grad + (size_t)b * xp->stride, dx, 3 * H);
        if (hp->grad) row_add(hp->grad + (size_t)b * hp->stride, dy, 3 * H);
        if (h_prev->grad) {
            sp_real *restrict d = h_prev->grad + (size_t)b * h_prev->stride;
            for (int j = 0; j < H; j++) d[j] += dh[j] * sv[H + j];
        }
    }
    if (b_hn && b_hn->grad) /* serial: every row adds into the same bias */
        for (int b = 0; b < B; b++) row_add(b_hn->grad, scratch + (size_t)b * 6 * H + 5 * H, H);
}
