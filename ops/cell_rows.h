/* cell_rows.h - the gate math of one batch row of an LSTM step, forward and backward, shared by
 * the per-step op (sp_lstm_cell, ops/fused.c) and the whole-sequence op (sp_lstm_seq, ops/seq.c),
 * so both compute exactly the same numbers.
 *
 * Each is a few simple loops over restrict pointers rather than one loop doing everything: simple
 * loops vectorise (with the branch-free exp of fastmath.h), one big loop does not. */
#ifndef SP_CELL_ROWS_H
#define SP_CELL_ROWS_H

#include "fastmath.h"

/* a = x + y (y may be NULL) [4H], pre-activations in PyTorch's order i, f, g, o; cp = c_prev [H]:
 *   i = s(a_i)  f = s(a_f)  g = tanh(a_g)  o = s(a_o)  c = f cp + i g  h = o tanh(c)
 * sv [5H] receives i, f, g, o, tanh(c). */
static inline void sp__lstm_row_fwd(const sp_real *restrict x, const sp_real *restrict y, const sp_real *restrict cp,
                                    sp_real *restrict sv, sp_real *restrict h, sp_real *restrict c, int H)
{
    if (y) for (int j = 0; j < 4 * H; j++) sv[j] = x[j] + y[j];
    else for (int j = 0; j < 4 * H; j++) sv[j] = x[j];
    for (int j = 0; j < 2 * H; j++) sv[j] = sp_sigmoid_r(sv[j]);          /* i, f */
    for (int j = 2 * H; j < 3 * H; j++) sv[j] = sp_tanh_r(sv[j]);         /* g */
    for (int j = 3 * H; j < 4 * H; j++) sv[j] = sp_sigmoid_r(sv[j]);      /* o */
    for (int j = 0; j < H; j++) c[j] = sv[H + j] * cp[j] + sv[j] * sv[2 * H + j];
    for (int j = 0; j < H; j++) sv[4 * H + j] = sp_tanh_r(c[j]);
    for (int j = 0; j < H; j++) h[j] = sv[3 * H + j] * sv[4 * H + j];
}

/* From the saved sv [5H], the gradients dh of h and dcn of c, and cp = c_prev:
 *   dc = dcn + dh o (1 - tanh(c)^2)
 *   da_i = dc g i(1-i)   da_f = dc cp f(1-f)   da_g = dc i (1-g^2)   da_o = dh tanh(c) o(1-o)
 * into da [4H] and dc [H]; the caller adds dc f to c_prev's gradient. */
static inline void sp__lstm_row_bwd(const sp_real *restrict sv, const sp_real *restrict dh, const sp_real *restrict dcn,
                                    const sp_real *restrict cp, sp_real *restrict da, sp_real *restrict dc, int H)
{
    for (int j = 0; j < H; j++) {
        sp_real o = sv[3 * H + j], tc = sv[4 * H + j];
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

#endif
