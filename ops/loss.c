/* SPDX-License-Identifier: MIT */
/* loss.c - softmax, the fused losses (softmax cross-entropy, sigmoid binary cross-entropy) and
 * the reductions sum and mean. Each loss is a [1 x 1] node, ready for sp_backward.
 *
 * Losses are fused with their nonlinearity because the separate forms are unstable (log of a
 * softmax that underflowed) and slower; their gradients are the familiar p - y. */
#include "vec.h"

#include <math.h>

/* Row-wise softmax of x into y (both R x C; y dense). Subtracting the row max keeps exp finite.
 * Returns nothing; log-sum-exp per row is written to lse if not NULL. */
static void softmax_rows(const sp_tensor *x, sp_real *y, sp_real *lse)
{
    int R = x->rows, C = x->cols;
    const sp_vec_kernels *V = sp__vec();
    const size_t omp_n_ = sp_numel(x);
#pragma omp parallel for if(omp_n_ >= SP_PAR_MIN_ELEMS) num_threads(sp__threads_now()) schedule(static)
    for (int i = 0; i < R; i++) {
        sp_real l = V->softmax(sp_at(x, i, 0), y + (size_t)i * C, C);
        if (lse) lse[i] = l;
    }
}

sp_tensor *sp_softmax(sp_tape *t, sp_tensor *x)
{
    if (!sp__ready(t, SP_OP_SOFTMAX, &x, 1)) return NULL;
    sp_record *r = sp__record(t, SP_OP_SOFTMAX, x->rows, x->cols, &x, 1);
    if (!r) return NULL;
    softmax_rows(x, r->out->data, NULL);
    return r->out;
}

/* y = softmax(x) per row   =>   dx = y * (dy - sum_j dy_j y_j). A weight of exactly 0 (masked
 * attention) contributes nothing and gets nothing, even where dy is Inf or NaN (the gradient of
 * a context with respect to the weight of a padded value row that holds Inf). */
void sp__softmax_backward(sp_record *r)
{
    sp_tensor *x = r->in[0], *y = r->out;
    if (!x->grad) return;
    int C = y->cols;
    for (int i = 0; i < y->rows; i++) {
        const sp_real *yi = y->data + (size_t)i * C, *gi = y->grad + (size_t)i * C;
        sp_real dot = 0;
        for (int j = 0; j < C; j++) dot += yi[j] == 0 ? 0 : gi[j] * yi[j];
        sp_real *dx = x->grad + (size_t)i * x->stride;
        for (int j = 0; j < C; j++) dx[j] += yi[j] == 0 ? 0 : yi[j] * (gi[j] - dot);
    }
}

/* ----------------------------------------------------- softmax xent */

typedef struct {
    int *target;   /* R targets, < 0 = padding */
    sp_real *prob; /* R x C softmax, kept for the backward */
    int count;     /* real rows */
} xent_saved;

sp_tensor *sp_softmax_xent(sp_tape *t, sp_tensor *logits, const int *target, float *row_loss)
{
    if (!sp__ready(t, SP_OP_SOFTMAX_XENT, &logits, 1)) return NULL;
    if (!target) {
        sp_tape_fail(t, SP_ERR_ARG, "softmax_xent \"%s\": targets are NULL", logits->name);
        return NULL;
    }
    int R = logits->rows, C = logits->cols;
    for (int i = 0; i < R; i++)
        if (target[i] >= C) {
            sp_tape_fail(t, SP_ERR_ARG, "softmax_xent \"%s\": target[%d] = %d is not a class of \"%s\" [%d x %d]",
                         sp__scope_name(t, "softmax_xent"), i, target[i], logits->name, R, C);
            return NULL;
        }
    sp_record *r = sp__record(t, SP_OP_SOFTMAX_XENT, 1, 1, &logits, 1);
    if (!r) return NULL;
    xent_saved *s = sp__alloc(t, sizeof *s);
    int *tg = sp__alloc(t, (size_t)R * sizeof *tg);
    sp_real *prob = sp__alloc(t, (size_t)R * C * sizeof *prob);
    sp_real *lse = sp__alloc(t, (size_t)R * sizeof *lse);
    if (!s || !tg || !prob || !lse) return NULL;
    softmax_rows(logits, prob, lse);
    double sum = 0;
    int count = 0;
    for (int i = 0; i < R; i++) {
        tg[i] = target[i];
        double li = 0;
        if (tg[i] >= 0) { /* -log p = lse - x_target */
            li = (double)lse[i] - (double)*sp_at(logits, i, tg[i]);
            sum += li;
            count++;
        }
        if (row_loss) row_loss[i] = (float)li;
    }
    s->target = tg;
    s->prob = prob;
    s->count = count;
    r->saved = s;
    r->out->data[0] = (sp_real)(sum / (count > 0 ? count : 1));
    return r->out;
}

/* L = (1/N) sum_i -log p[i, y_i]   =>   dlogits[i] += dL * (p[i] - onehot(y_i)) / N, real rows only */
void sp__softmax_xent_backward(sp_record *r)
{
    sp_tensor *x = r->in[0];
    if (!x->grad) return;
    const xent_saved *s = r->saved;
    int R = x->rows, C = x->cols;
    sp_real g = r->out->grad[0] / (s->count > 0 ? s->count : 1);
    const size_t omp_n_ = sp_numel(x);
#pragma omp parallel for if(omp_n_ >= SP_PAR_MIN_ELEMS) num_threads(sp__threads_now()) schedule(static)
    for (int i = 0; i < R; i++) {
        if (s->target[i] < 0) continue;
        const sp_real *p = s->prob + (size_t)i * C;
        sp_real *dx = x->grad + (size_t)i * x->stride;
        for (int j = 0; j < C; j++) dx[j] += g * p[j];
        dx[s->target[i]] -= g;
    }
}

/* ------------------------------------------------------ sigmoid bce */

static int mask_fits(const sp_tensor *x, const sp_tensor *m)
{
    return m->rows == x->rows && (m->cols == x->cols || m->cols == 1);
}

static inline sp_real mask_at(const sp_tensor *m, int i, int j)
{
    return m ? *sp_at(m, i, m->cols == 1 ? 0 : j) : 1;
}

sp_tensor *sp_sigmoid_bce(sp_tape *t, sp_tensor *logits, sp_tensor *target, sp_tensor *mask)
{
    sp_tensor *in[3] = {logits, target, mask};
    if (!sp__ready(t, SP_OP_SIGMOID_BCE, in, 2)) return NULL;
    if (target->rows != logits->rows || target->cols != logits->cols) {
        sp__shape_error(t, SP_OP_SIGMOID_BCE, "targets must have the logits' shape", logits, target);
        return NULL;
    }
    if (mask && !mask_fits(logits, mask)) {
        sp__shape_error(t, SP_OP_SIGMOID_BCE, "mask must be [R x C] or [R x 1]", logits, mask);
        return NULL;
    }
    if ((target->flags & SP_NEEDS_GRAD) || (mask && (mask->flags & SP_NEEDS_GRAD))) {
        sp_tape_fail(t, SP_ERR_ARG, "sigmoid_bce \"%s\": targets and mask must be constants",
                     sp__scope_name(t, "sigmoid_bce"));
        return NULL;
    }
    sp_record *r = sp__record(t, SP_OP_SIGMOID_BCE, 1, 1, in, mask ? 3 : 2);
    if (!r) return NULL;
    double sum = 0, count = 0;
    for (int i = 0; i < logits->rows; i++)
        for (int j = 0; j < logits->cols; j++) {
            sp_real m = mask_at(mask, i, j);
            if (m == 0) continue;
            sp_real x = *sp_at(logits, i, j), z = *sp_at(target, i, j);
            /* log(1 + e^-|x|) + max(x, 0) - x z: stable for any x */
            sum += m * ((x > 0 ? x : 0) - x * z + SP_LOG1P(SP_EXP(-(x > 0 ? x : -x))));
            count += m;
        }
    r->fattr[0] = count > 0 ? count : 1;
    r->out->data[0] = (sp_real)(sum / r->fattr[0]);
    return r->out;
}

/* L = (1/N) sum m * bce(sigmoid(x), z)   =>   dx += dL * m * (sigmoid(x) - z) / N */
void sp__sigmoid_bce_backward(sp_record *r)
{
    sp_tensor *x = r->in[0], *z = r->in[1], *m = r->n_in > 2 ? r->in[2] : NULL;
    if (!x->grad) return;
    sp_real g = r->out->grad[0] / (sp_real)r->fattr[0];
    for (int i = 0; i < x->rows; i++)
        for (int j = 0; j < x->cols; j++) {
            sp_real v = *sp_at(x, i, j), s = v >= 0 ? 1 / (1 + SP_EXP(-v)) : SP_EXP(v) / (1 + SP_EXP(v));
            x->grad[(size_t)i * x->stride + j] += g * mask_at(m, i, j) * (s - *sp_at(z, i, j));
        }
}

/* ---------------------------------------------------------- sum, mean */

static sp_tensor *reduce(sp_tape *t, sp_op op, sp_tensor *x, double k)
{
    if (!sp__ready(t, op, &x, 1)) return NULL;
    sp_record *r = sp__record(t, op, 1, 1, &x, 1);
    if (!r) return NULL;
    double s = 0, acc[8] = {0}; /* eight partial sums: one chain of dependent adds ran at 4 cycles an
                                  * element (a sum over 33M values took 50 ms) */
    for (int i = 0; i < x->rows; i++) {
        const sp_real *xi = sp_at(x, i, 0);
        int j = 0;
        for (; j + 8 <= x->cols; j += 8)
            for (int l = 0; l < 8; l++) acc[l] += xi[j + l];
        for (; j < x->cols; j++) acc[j & 7] += xi[j];
    }
    for (int l = 0; l < 8; l++) s += acc[l];
    r->fattr[0] = k;
    r->out->data[0] = (sp_real)(s * k);
    return r->out;
}

sp_tensor *sp_sum(sp_tape *t, sp_tensor *x) { return reduce(t, SP_OP_SUM, x, 1); }
sp_tensor *sp_mean(sp_tape *t, sp_tensor *x) { return x ? reduce(t, SP_OP_MEAN, x, 1.0 / (double)sp_numel(x)) : reduce(t, SP_OP_MEAN, x, 1); }

/* y = k * sum x   =>   dx += k dy  (k = 1 for sum, 1/n for mean) */
static void reduce_backward(sp_record *r)
{
    sp_tensor *x = r->in[0];
    if (!x->grad) return;
    sp_real g = r->out->grad[0] * (sp_real)r->fattr[0];
    for (int i = 0; i < x->rows; i++)
        for (int j = 0; j < x->cols; j++) x->grad[(size_t)i * x->stride + j] += g;
}

void sp__sum_backward(sp_record *r) { reduce_backward(r); }
void sp__mean_backward(sp_record *r) { reduce_backward(r); }
