/* SPDX-License-Identifier: MIT */
/* cell_rows.h - the gate math of one batch row of an LSTM or GRU step, forward and backward,
 * shared by the per-step ops (sp_lstm_cell, sp_gru_cell: ops/fused.c) and the whole-sequence ops
 * (sp_lstm_seq, sp_gru_seq: ops/seq.c), so both compute exactly the same numbers. Only
 * ops/vec_kernels.c includes it, once per instruction set; the ops call it through vec.h's table.
 *
 * Each is a few simple loops over restrict pointers rather than one loop doing everything: simple
 * loops vectorise (with the branch-free exp of fastmath.h), one big loop does not. */
#ifndef SP_CELL_ROWS_H
#define SP_CELL_ROWS_H

#include "fastmath.h"

/* a = x + y (y may be NULL) [4H], pre-activations in PyTorch's order i, f, g, o; cp = c_prev [H]:
 *   i = s(a_i)  f = s(a_f)  g = tanh(a_g)  o = s(a_o)  c = f cp + i g  h = o tanh(c)
 * sv [4H] receives i, f, g, o. x may be sv itself (the whole-sequence op keeps its gates in the
 * input projection's memory): then only sv is used, so x need not be restrict. */
SP_MATH_INLINE void sp__lstm_row_fwd(const sp_real *x, const sp_real *restrict y, const sp_real *restrict cp,
                                    sp_real *restrict sv, sp_real *restrict h, sp_real *restrict c, int H)
{
    if (x == sv) {
        if (y) for (int j = 0; j < 4 * H; j++) sv[j] += y[j];
    } else if (y) {
        for (int j = 0; j < 4 * H; j++) sv[j] = x[j] + y[j];
    } else {
        for (int j = 0; j < 4 * H; j++) sv[j] = x[j];
    }
    for (int j = 0; j < 2 * H; j++) sv[j] = sp_sigmoid_r(sv[j]);          /* i, f */
    for (int j = 2 * H; j < 3 * H; j++) sv[j] = sp_tanh_r(sv[j]);         /* g */
    for (int j = 3 * H; j < 4 * H; j++) sv[j] = sp_sigmoid_r(sv[j]);      /* o */
    for (int j = 0; j < H; j++) c[j] = sv[H + j] * cp[j] + sv[j] * sv[2 * H + j];
    for (int j = 0; j < H; j++) h[j] = sp_tanh_r(c[j]);
    for (int j = 0; j < H; j++) h[j] *= sv[3 * H + j];
}

/* From the saved sv [4H], this step's c [H] (tanh(c) is recomputed: the same function of the same
 * value, so the same number as in the forward pass, and 20 % less to save), the gradients dh of h
 * and dcn of c, and cp = c_prev:
 *   dc = dcn + dh o (1 - tanh(c)^2)
 *   da_i = dc g i(1-i)   da_f = dc cp f(1-f)   da_g = dc i (1-g^2)   da_o = dh tanh(c) o(1-o)
 * into da [4H] and dc [H]; the caller adds dc f to c_prev's gradient. */
SP_MATH_INLINE void sp__lstm_row_bwd(const sp_real *restrict sv, const sp_real *restrict c, const sp_real *restrict dh,
                                    const sp_real *restrict dcn, const sp_real *restrict cp, sp_real *restrict da,
                                    sp_real *restrict dc, int H)
{
    for (int j = 0; j < H; j++) dc[j] = sp_tanh_r(c[j]); /* tanh(c), for the moment */
    for (int j = 0; j < H; j++) {
        sp_real o = sv[3 * H + j], tc = dc[j];
        dc[j] = dcn[j] + dh[j] * o * (1 - tc * tc);
        da[3 * H + j] = dh[j] * tc * o * (1 - o);
    }
    sp_real *restrict di = da, *restrict df = da + H, *restrict dg = da + 2 * H; /* disjoint: vectorises */
    for (int j = 0; j < H; j++) {
        sp_real i = sv[j], f = sv[H + j], g = sv[2 * H + j];
        di[j] = dc[j] * g * i * (1 - i);
        df[j] = dc[j] * cp[j] * f * (1 - f);
        dg[j] = dc[j] * i * (1 - g * g);
    }
}

/* GRU, reset-after: x = xp row [3H] (r, z, n), y = h_prev W_hh^T row [3H], bn = b_hn [H] or NULL:
 *   r = s(x_r + y_r)  z = s(x_z + y_z)  n = tanh(x_n + r (y_n + bn))  h = (1 - z) n + z hp
 * sv [3H] receives r, z, n and hn [H] y_n + bn. x may be sv itself (in place, as for the LSTM):
 * then only sv is used. */
SP_MATH_INLINE void sp__gru_row_fwd(const sp_real *x, const sp_real *restrict y, const sp_real *restrict bn,
                                   const sp_real *restrict hp, sp_real *restrict sv, sp_real *restrict hn,
                                   sp_real *restrict h, int H)
{
    if (bn) for (int j = 0; j < H; j++) hn[j] = y[2 * H + j] + bn[j];
    else for (int j = 0; j < H; j++) hn[j] = y[2 * H + j];
    if (x == sv) {
        for (int j = 0; j < 2 * H; j++) sv[j] = sp_sigmoid_r(sv[j] + y[j]); /* r, z */
        for (int j = 0; j < H; j++) sv[2 * H + j] = sp_tanh_r(sv[2 * H + j] + sv[j] * hn[j]); /* n */
    } else {
        for (int j = 0; j < 2 * H; j++) sv[j] = sp_sigmoid_r(x[j] + y[j]);
        for (int j = 0; j < H; j++) sv[2 * H + j] = sp_tanh_r(x[2 * H + j] + sv[j] * hn[j]);
    }
    for (int j = 0; j < H; j++) h[j] = (1 - sv[H + j]) * sv[2 * H + j] + sv[H + j] * hp[j];
}

/* From sv [3H], hn [H], dh and hp = h_prev:  da_n = dh (1-z)(1-n^2)  da_r = da_n hn r(1-r)
 * da_z = dh (hp - n) z(1-z). dx [3H] = (da_r, da_z, da_n) is the gradient of xp, dy [3H] =
 * (da_r, da_z, da_n r) that of h_prev W_hh^T (and da_n r that of b_hn); h_prev also gets dh z. */
SP_MATH_INLINE void sp__gru_row_bwd(const sp_real *restrict sv, const sp_real *restrict hnv, const sp_real *restrict dh,
                                   const sp_real *restrict hp, sp_real *restrict dx, sp_real *restrict dy, int H)
{
    for (int j = 0; j < H; j++) {
        sp_real rr = sv[j], z = sv[H + j], n = sv[2 * H + j], hn = hnv[j];
        sp_real dan = dh[j] * (1 - z) * (1 - n * n);
        sp_real dr = dan * hn * rr * (1 - rr), dz = dh[j] * (hp[j] - n) * z * (1 - z);
        dx[j] = dy[j] = dr;
        dx[H + j] = dy[H + j] = dz;
        dx[2 * H + j] = dan;
        dy[2 * H + j] = dan * rr;
    }
}

#endif
