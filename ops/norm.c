/* SPDX-License-Identifier: MIT */
/* norm.c - layer normalisation (Ba, Kiros & Hinton 2016), forward and backward side by side.
 *
 *   y = (x - mean) / sqrt(var + eps) * gain + bias,  per row, over its C columns (biased var)
 *
 * It is the op of the layer-normalised cells (layers/ln_cell.c) and of any user model. The row's
 * mean and 1/sqrt(var + eps) are kept for the backward; x-hat is recomputed there from x.
 * Backward, with xh = (x - mean) rstd and dxh = dy * gain:
 *   dx = rstd (dxh - mean(dxh) - xh mean(dxh xh)),  dgain += sum_rows dy xh,  dbias += sum_rows dy
 */
#include "../autograd/tape_internal.h"

#include <math.h>


typedef struct {
    sp_real *mean, *rstd; /* per row */
} ln_saved;

sp_tensor *sp_layer_norm(sp_tape *t, sp_tensor *x, sp_tensor *gain, sp_tensor *bias)
{
    if (!sp__ready(t, SP_OP_LAYER_NORM, &x, 1)) return NULL;
    int R = x->rows, C = x->cols;
    sp_tensor *p[2] = {gain, bias};
    for (int k = 0; k < 2; k++)
        if (p[k] && (p[k]->rows != 1 || p[k]->cols != C)) {
            sp__shape_error(t, SP_OP_LAYER_NORM, k ? "bias must be a row [1 x C] of x's columns"
                                                   : "gain must be a row [1 x C] of x's columns", x, p[k]);
            return NULL;
        }
    sp_tensor *in[3] = {x, gain, bias};
    int n = 1;
    if (gain) in[n++] = gain;
    if (bias) in[n++] = bias;
    sp_record *r = sp__record(t, SP_OP_LAYER_NORM, R, C, in, n);
    if (!r) return NULL;
    ln_saved *s = sp__alloc_raw(t, sizeof *s);
    sp_real *buf = sp__alloc_raw(t, 2 * (size_t)R * sizeof(sp_real));
    if (!s || !buf) return NULL;
    s->mean = buf;
    s->rstd = buf + R;
    r->saved = s;
    r->iattr[0] = gain != NULL;
    r->iattr[1] = bias != NULL;
    sp_tensor *o = r->out;
    for (int i = 0; i < R; i++) {
        const sp_real *xi = sp_at(x, i, 0);
        double m = 0, v = 0;
        for (int j = 0; j < C; j++) m += xi[j];
        m /= C;
        for (int j = 0; j < C; j++) v += (xi[j] - m) * (xi[j] - m);
        v /= C;
        sp_real rs = (sp_real)(1 / sqrt(v + SP_LN_EPS)), mu = (sp_real)m;
        s->mean[i] = mu;
        s->rstd[i] = rs;
        sp_real *oi = o->data + (size_t)i * C;
        for (int j = 0; j < C; j++) {
            sp_real y = (xi[j] - mu) * rs;
            if (gain) y *= gain->data[j];
            if (bias) y += bias->data[j];
            oi[j] = y;
        }
    }
    return o;
}

void sp__layer_norm_backward(sp_record *r)
{
    sp_tensor *x = r->in[0], *o = r->out;
    sp_tensor *gain = r->iattr[0] ? r->in[1] : NULL, *bias = r->iattr[1] ? r->in[1 + r->iattr[0]] : NULL;
    const ln_saved *s = r->saved;
    int R = o->rows, C = o->cols;
    for (int i = 0; i < R; i++) {
        const sp_real *xi = sp_at(x, i, 0), *gi = o->grad + (size_t)i * C;
        sp_real mu = s->mean[i], rs = s->rstd[i];
        double a = 0, b = 0; /* mean(dxh), mean(dxh xh) */
        for (int j = 0; j < C; j++) {
            sp_real xh = (xi[j] - mu) * rs, d = gain ? gi[j] * gain->data[j] : gi[j];
            a += d;
            b += d * xh;
            if (gain && gain->grad) gain->grad[j] += gi[j] * xh;
            if (bias && bias->grad) bias->grad[j] += gi[j];
        }
        if (!x->grad) continue;
        sp_real ma = (sp_real)(a / C), mb = (sp_real)(b / C);
        sp_real *dx = x->grad + (size_t)i * x->stride;
        for (int j = 0; j < C; j++) {
            sp_real xh = (xi[j] - mu) * rs, d = gain ? gi[j] * gain->data[j] : gi[j];
            dx[j] += rs * (d - ma - xh * mb);
        }
    }
}
