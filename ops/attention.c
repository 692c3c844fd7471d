/* SPDX-License-Identifier: MIT */
/* attention.c - the attention ops of encoder-decoders, forward and backward side by side:
 * dot-product scores (Luong et al. 2015), additive scores (Bahdanau et al. 2015) and the context
 * vector, over an encoder sequence in spool's layout [S*B, D] (row s*B + b = step s of sequence
 * b) against one decoder step [B, D]. Masking for variable lengths is an op of its own that
 * replaces the padded scores (adding -1e30 to them kept an Inf or NaN score), then sp_softmax
 * gives padding weight exactly 0; the context skips rows of weight 0 and the score ops skip
 * positions whose gradient is 0, so what padding holds (Inf, NaN) never reaches a result or a
 * gradient. The layer that uses them is layers/attention.c. Their sums of products are products
 * too: in bf16 mode (sp_tape_set_precision) each factor is rounded to bf16 as it is multiplied (R
 * below), the sums stay fp32, as in the matmul op; the record keeps its precision (iattr[3]). */
#include "../autograd/tape_internal.h"
#include "bf16.h"

#include <math.h>
#include <string.h>

#define G(x, i, j) ((x)->grad + (size_t)(i) * (x)->stride + (j)) /* input gradients share data's stride */

/* a factor of a product in precision bf (the record's iattr[3]): as it is, or rounded to bf16 */
static inline sp_real R(int bf, sp_real x)
{
#ifndef SP_USE_DOUBLE
    return bf ? sp__bf16_value(x) : x;
#else
    (void)bf;
    return x;
#endif
}

static int check(sp_tape *t, sp_op op, sp_tensor *q, sp_tensor *keys, int S, const char *kname)
{
    if (S <= 0 || keys->rows != S * q->rows) {
        char why[160];
        snprintf(why, sizeof why, "%s must be [S*B x D] with S = %d and B = the query's rows", kname, S);
        sp__shape_error(t, op, why, q, keys);
        return 0;
    }
    if (keys->cols != q->cols) {
        sp__shape_error(t, op, "query and keys need the same columns D", q, keys);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ dot */

sp_tensor *sp_attn_dot(sp_tape *t, sp_tensor *q, sp_tensor *keys, int S)
{
    sp_tensor *in[2] = {q, keys};
    if (!sp__ready(t, SP_OP_ATTN_DOT, in, 2) || !check(t, SP_OP_ATTN_DOT, q, keys, S, "keys")) return NULL;
    int B = q->rows, D = q->cols;
    sp_record *r = sp__record(t, SP_OP_ATTN_DOT, B, S, in, 2);
    if (!r) return NULL;
    r->iattr[0] = S;
    const int bf = r->iattr[3] = t->precision == SP_PREC_BF16;
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) {
            const sp_real *qb = sp_at(q, b, 0), *k = sp_at(keys, s * B + b, 0);
            sp_real e = 0;
            for (int d = 0; d < D; d++) e += R(bf, qb[d]) * R(bf, k[d]);
            r->out->data[(size_t)b * S + s] = e;
        }
    return r->out;
}

void sp__attn_dot_backward(sp_record *r)
{
    sp_tensor *q = r->in[0], *keys = r->in[1], *o = r->out;
    int S = r->iattr[0], B = q->rows, D = q->cols, bf = r->iattr[3];
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) {
            sp_real g = R(bf, o->grad[(size_t)b * S + s]);
            if (g == 0) continue; /* a masked position: its key row is never read */
            const sp_real *qb = sp_at(q, b, 0), *k = sp_at(keys, s * B + b, 0);
            if (q->grad)
                for (int d = 0; d < D; d++) *G(q, b, d) += g * R(bf, k[d]);
            if (keys->grad)
                for (int d = 0; d < D; d++) *G(keys, s * B + b, d) += g * R(bf, qb[d]);
        }
}

/* ------------------------------------------------------------- additive */

sp_tensor *sp_attn_additive(sp_tape *t, sp_tensor *q, sp_tensor *keys, sp_tensor *v, int S)
{
    sp_tensor *in[3] = {q, keys, v};
    if (!sp__ready(t, SP_OP_ATTN_ADDITIVE, in, 3) || !check(t, SP_OP_ATTN_ADDITIVE, q, keys, S, "keys")) return NULL;
    int B = q->rows, D = q->cols;
    if (v->rows != 1 || v->cols != D) {
        sp__shape_error(t, SP_OP_ATTN_ADDITIVE, "v must be a row [1 x D]", q, v);
        return NULL;
    }
    sp_record *r = sp__record(t, SP_OP_ATTN_ADDITIVE, B, S, in, 3);
    if (!r) return NULL;
    sp_real *u = sp__alloc_raw(t, (size_t)S * B * D * sizeof(sp_real)); /* tanh(q + k), for the backward */
    if (!u) return NULL;
    r->saved = u;
    r->iattr[0] = S;
    const int bf = r->iattr[3] = t->precision == SP_PREC_BF16;
    for (int s = 0; s < S; s++)
        for (int b = 0; b < B; b++) {
            const sp_real *qb = sp_at(q, b, 0), *k = sp_at(keys, s * B + b, 0);
            sp_real *ui = u + ((size_t)s * B + b) * D, e = 0;
            for (int d = 0; d < D; d++) {
                ui[d] = SP_TANH(qb[d] + k[d]);
                e += R(bf, v->data[d]) * R(bf, ui[d]);
            }
            r->out->data[(size_t)b * S + s] = e;
        }
    return r->out;
}

void sp__attn_additive_backward(sp_record *r)
{
    sp_tensor *q = r->in[0], *keys = r->in[1], *v = r->in[2], *o = r->out;
    int S = r->iattr[0], B = q->rows, D = q->cols, bf = r->iattr[3];
    const sp_real *u = r->saved;
    for (int s = 0; s < S; s++)
        for (int b = 0; b < B; b++) {
            sp_real g = R(bf, o->grad[(size_t)b * S + s]);
            if (g == 0) continue; /* a masked position: its key row is never read */
            const sp_real *ui = u + ((size_t)s * B + b) * D;
            for (int d = 0; d < D; d++) {
                sp_real pre = g * R(bf, v->data[d]) * (1 - ui[d] * ui[d]);
                if (q->grad) *G(q, b, d) += pre;
                if (keys->grad) *G(keys, s * B + b, d) += pre;
                if (v->grad) *G(v, 0, d) += g * R(bf, ui[d]);
            }
        }
}

/* -------------------------------------------------------------- context */

sp_tensor *sp_attn_context(sp_tape *t, sp_tensor *a, sp_tensor *values, int S)
{
    sp_tensor *in[2] = {a, values};
    if (!sp__ready(t, SP_OP_ATTN_CONTEXT, in, 2)) return NULL;
    int B = a->rows, D = values->cols;
    if (a->cols != S || values->rows != S * B) {
        sp__shape_error(t, SP_OP_ATTN_CONTEXT, "weights must be [B x S] and values [S*B x D]", a, values);
        return NULL;
    }
    sp_record *r = sp__record(t, SP_OP_ATTN_CONTEXT, B, D, in, 2);
    if (!r) return NULL;
    r->iattr[0] = S;
    const int bf = r->iattr[3] = t->precision == SP_PREC_BF16;
    for (int b = 0; b < B; b++) {
        sp_real *cb = r->out->data + (size_t)b * D;
        for (int d = 0; d < D; d++) cb[d] = 0;
        for (int s = 0; s < S; s++) {
            sp_real w = R(bf, *sp_at(a, b, s));
            if (w == 0) continue; /* padding (or a weight that underflowed): its row is not read */
            const sp_real *vs = sp_at(values, s * B + b, 0);
            for (int d = 0; d < D; d++) cb[d] += w * R(bf, vs[d]);
        }
    }
    return r->out;
}

void sp__attn_context_backward(sp_record *r)
{
    sp_tensor *a = r->in[0], *values = r->in[1], *o = r->out;
    int S = r->iattr[0], B = a->rows, D = values->cols, bf = r->iattr[3];
    for (int b = 0; b < B; b++) {
        const sp_real *g = o->grad + (size_t)b * D;
        for (int s = 0; s < S; s++) {
            const sp_real *vs = sp_at(values, s * B + b, 0);
            if (a->grad) {
                sp_real dot = 0;
                for (int d = 0; d < D; d++) dot += R(bf, g[d]) * R(bf, vs[d]);
                *G(a, b, s) += dot;
            }
            if (values->grad) {
                sp_real w = R(bf, *sp_at(a, b, s));
                for (int d = 0; d < D; d++) *G(values, s * B + b, d) += w * R(bf, g[d]);
            }
        }
    }
}

/* ---------------------------------------------------------------- mask */

sp_tensor *sp_attn_mask(sp_tape *t, sp_tensor *scores, const int *lengths)
{
    if (!lengths || !scores) return scores;
    if (!sp__ready(t, SP_OP_ATTN_MASK, &scores, 1)) return NULL;
    int B = scores->rows, S = scores->cols;
    for (int b = 0; b < B; b++)
        if (lengths[b] < 0 || lengths[b] > S) {
            sp_tape_fail(t, SP_ERR_ARG, "attn_mask \"%s\": length %d of row %d is outside [0, S = %d]", scores->name,
                         lengths[b], b, S);
            return NULL;
        }
    sp_record *r = sp__record(t, SP_OP_ATTN_MASK, B, S, &scores, 1);
    int *len = r ? sp__alloc_raw(t, (size_t)B * sizeof *len) : NULL;
    if (!len) return NULL;
    memcpy(len, lengths, (size_t)B * sizeof *len);
    r->saved = len;
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++)
            r->out->data[(size_t)b * S + s] = s < len[b] ? *sp_at(scores, b, s) : (sp_real)-1e30;
    return r->out;
}

/* the real scores take the gradient; the masked ones are constants */
void sp__attn_mask_backward(sp_record *r)
{
    sp_tensor *x = r->in[0], *o = r->out;
    const int *len = r->saved;
    if (!x->grad) return;
    for (int b = 0; b < o->rows; b++)
        for (int s = 0; s < len[b]; s++) *G(x, b, s) += o->grad[(size_t)b * o->cols + s];
}
