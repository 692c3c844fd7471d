/* fused.c - the elementwise part of an LSTM and of a GRU (reset-after) step as single ops.
 *
 * Composed from basic ops an LSTM step's gate math is ~12 records, each a pass over [B, H] memory
 * forward and another backward. Fused, it is one pass each way with the gate activations saved
 * for the backward. These are ordinary ops: same table, own gradient tests; the built-in cells use
 * them, and the composed forms stay available to cells written by users (layers/ shows both).
 */
#include "fastmath.h"

#include <string.h>

/* -------------------------------------------------------------- LSTM */

/* gates [B, 4H] pre-activations in PyTorch's order i, f, g, o; c_prev [B, H]:
 *   i = s(a_i)  f = s(a_f)  g = tanh(a_g)  o = s(a_o)
 *   c = f c_prev + i g      h = o tanh(c)            out = [h | c]  [B, 2H]
 * saved: i, f, g, o, tanh(c)  [B, 5H] */
sp_tensor *sp_lstm_cell(sp_tape *t, sp_tensor *gates, sp_tensor *c_prev)
{
    sp_tensor *in[2] = {gates, c_prev};
    if (!sp__ready(t, SP_OP_LSTM_CELL, in, 2)) return NULL;
    int B = c_prev->rows, H = c_prev->cols;
    if (gates->rows != B || gates->cols != 4 * H) {
        sp__shape_error(t, SP_OP_LSTM_CELL, "gates must be [B x 4H] for c_prev [B x H]", gates, c_prev);
        return NULL;
    }
    sp_record *r = sp__record(t, SP_OP_LSTM_CELL, B, 2 * H, in, 2);
    sp_real *s = r ? sp__alloc_raw(t, (size_t)B * 5 * H * sizeof(sp_real)) : NULL;
    if (!s) return NULL;
    r->saved = s;
    sp_real *out = r->out->data;
    const size_t omp_n_ = (size_t)B * H;
#pragma omp parallel for if(omp_n_ >= SP_OMP_MIN / 4) schedule(static)
    for (int b = 0; b < B; b++) {
        const sp_real *a = sp_at(gates, b, 0), *cp = sp_at(c_prev, b, 0);
        sp_real *sv = s + (size_t)b * 5 * H, *h = out + (size_t)b * 2 * H, *c = h + H;
        for (int j = 0; j < H; j++) {
            sp_real i = sp_sigmoid_r(a[j]), f = sp_sigmoid_r(a[H + j]), g = sp_tanh_r(a[2 * H + j]), o = sp_sigmoid_r(a[3 * H + j]);
            sp_real cn = f * cp[j] + i * g, tc = sp_tanh_r(cn);
            c[j] = cn;
            h[j] = o * tc;
            sv[j] = i, sv[H + j] = f, sv[2 * H + j] = g, sv[3 * H + j] = o, sv[4 * H + j] = tc;
        }
    }
    return r->out;
}

/* dc = dout_c + dh o (1 - tanh(c)^2)
 * da_i = dc g i(1-i)   da_f = dc c_prev f(1-f)   da_g = dc i (1-g^2)   da_o = dh tanh(c) o(1-o)
 * dc_prev += dc f */
void sp__lstm_cell_backward(sp_record *r)
{
    sp_tensor *gates = r->in[0], *c_prev = r->in[1];
    int B = c_prev->rows, H = c_prev->cols;
    const sp_real *s = r->saved, *dout = r->out->grad;
    const size_t omp_n_ = (size_t)B * H;
#pragma omp parallel for if(omp_n_ >= SP_OMP_MIN / 4) schedule(static)
    for (int b = 0; b < B; b++) {
        const sp_real *sv = s + (size_t)b * 5 * H, *dh = dout + (size_t)b * 2 * H, *dcn = dh + H;
        const sp_real *cp = sp_at(c_prev, b, 0);
        sp_real *da = gates->grad ? gates->grad + (size_t)b * gates->stride : NULL;
        sp_real *dcp = c_prev->grad ? c_prev->grad + (size_t)b * c_prev->stride : NULL;
        for (int j = 0; j < H; j++) {
            sp_real i = sv[j], f = sv[H + j], g = sv[2 * H + j], o = sv[3 * H + j], tc = sv[4 * H + j];
            sp_real dc = dcn[j] + dh[j] * o * (1 - tc * tc);
            if (da) {
                da[j] += dc * g * i * (1 - i);
                da[H + j] += dc * cp[j] * f * (1 - f);
                da[2 * H + j] += dc * i * (1 - g * g);
                da[3 * H + j] += dh[j] * tc * o * (1 - o);
            }
            if (dcp) dcp[j] += dc * f;
        }
    }
}

/* --------------------------------------------------------------- GRU */

/* xp = x W_ih^T + b_ih, hp = h_prev W_hh^T + b_hh, both [B, 3H] in PyTorch's order r, z, n:
 *   r = s(xp_r + hp_r)   z = s(xp_z + hp_z)   n = tanh(xp_n + r hp_n)
 *   h = (1 - z) n + z h_prev                                          out [B, H]
 * saved: r, z, n  [B, 3H] */
sp_tensor *sp_gru_cell(sp_tape *t, sp_tensor *xp, sp_tensor *hp, sp_tensor *h_prev)
{
    sp_tensor *in[3] = {xp, hp, h_prev};
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
    sp_record *r = sp__record(t, SP_OP_GRU_CELL, B, H, in, 3);
    sp_real *s = r ? sp__alloc_raw(t, (size_t)B * 3 * H * sizeof(sp_real)) : NULL;
    if (!s) return NULL;
    r->saved = s;
    const size_t omp_n_ = (size_t)B * H;
#pragma omp parallel for if(omp_n_ >= SP_OMP_MIN / 4) schedule(static)
    for (int b = 0; b < B; b++) {
        const sp_real *x = sp_at(xp, b, 0), *h = sp_at(hp, b, 0), *hv = sp_at(h_prev, b, 0);
        sp_real *sv = s + (size_t)b * 3 * H, *o = r->out->data + (size_t)b * H;
        for (int j = 0; j < H; j++) {
            sp_real rr = sp_sigmoid_r(x[j] + h[j]), z = sp_sigmoid_r(x[H + j] + h[H + j]);
            sp_real n = sp_tanh_r(x[2 * H + j] + rr * h[2 * H + j]);
            o[j] = (1 - z) * n + z * hv[j];
            sv[j] = rr, sv[H + j] = z, sv[2 * H + j] = n;
        }
    }
    return r->out;
}

/* dn = dh (1-z)   dz = dh (h_prev - n)   dh_prev += dh z
 * da_n = dn (1-n^2): dxp_n += da_n, dhp_n += da_n r;  dr = da_n hp_n
 * da_r = dr r(1-r): dxp_r, dhp_r += da_r;   da_z = dz z(1-z): dxp_z, dhp_z += da_z */
void sp__gru_cell_backward(sp_record *r)
{
    sp_tensor *xp = r->in[0], *hp = r->in[1], *h_prev = r->in[2];
    int B = h_prev->rows, H = h_prev->cols;
    const sp_real *s = r->saved;
    const size_t omp_n_ = (size_t)B * H;
#pragma omp parallel for if(omp_n_ >= SP_OMP_MIN / 4) schedule(static)
    for (int b = 0; b < B; b++) {
        const sp_real *sv = s + (size_t)b * 3 * H, *dh = r->out->grad + (size_t)b * H;
        const sp_real *hv = sp_at(h_prev, b, 0), *hpn = sp_at(hp, b, 2 * H);
        sp_real *dx = xp->grad ? xp->grad + (size_t)b * xp->stride : NULL;
        sp_real *dhp = hp->grad ? hp->grad + (size_t)b * hp->stride : NULL;
        sp_real *dhv = h_prev->grad ? h_prev->grad + (size_t)b * h_prev->stride : NULL;
        for (int j = 0; j < H; j++) {
            sp_real rr = sv[j], z = sv[H + j], n = sv[2 * H + j];
            sp_real dan = dh[j] * (1 - z) * (1 - n * n);
            sp_real dar = dan * hpn[j] * rr * (1 - rr);
            sp_real daz = dh[j] * (hv[j] - n) * z * (1 - z);
            if (dx) dx[j] += dar, dx[H + j] += daz, dx[2 * H + j] += dan;
            if (dhp) dhp[j] += dar, dhp[H + j] += daz, dhp[2 * H + j] += dan * rr;
            if (dhv) dhv[j] += dh[j] * z;
        }
    }
}
