/* SPDX-License-Identifier: MIT */
/* elementwise.c - add, sub, mul (with broadcast of b), scale, 1 - x, sigmoid, tanh, relu, softplus and
 * dropout, forward and backward side by side.
 *
 * All are bandwidth-bound loops over rows (a row has `stride`, so views work) and run under
 * OpenMP when the tensor is big enough to pay for waking the threads (SP_PAR_MIN_ELEMS elements).
 */
#include "vec.h"

#include <math.h>

/* _Pragma cannot expand arguments, so the size goes through a variable declared before the loop. */
#define ROWS_PARALLEL(n)                                                                           \
    const size_t omp_n_ = (n);                                                                     \
    _Pragma("omp parallel for if(omp_n_ >= SP_PAR_MIN_ELEMS) num_threads(sp__threads_now()) schedule(static)")

/* --------------------------------------------------- binary, broadcast b */

/* b fits a if it has a's shape, is a row [1, C], a column [R, 1] or a scalar [1, 1]. */
static sp_record *binary(sp_tape *t, sp_op op, sp_tensor *a, sp_tensor *b)
{
    sp_tensor *in[2] = {a, b};
    if (!sp__ready(t, op, in, 2)) return NULL;
    if ((b->rows != a->rows && b->rows != 1) || (b->cols != a->cols && b->cols != 1)) {
        sp__shape_error(t, op, "b must have a's shape or broadcast as [1 x C], [R x 1] or [1 x 1]", a, b);
        return NULL;
    }
    return sp__record(t, op, a->rows, a->cols, in, 2);
}

/* Row i of a broadcast operand, and whether its columns advance (1) or repeat one value (0). */
static inline const sp_real *brow(const sp_tensor *b, const sp_real *p, int i)
{
    return p + (size_t)(b->rows == 1 ? 0 : i) * b->stride;
}

static inline int broadcasts(const sp_tensor *a, const sp_tensor *b)
{
    return b->rows != a->rows || b->cols != a->cols;
}

/* The loops below are split by broadcast kind so each inner loop is a plain restrict-qualified
 * stream the compiler vectorises. */

/* o = a + k b */
static void row_axpy(sp_real *restrict o, const sp_real *restrict a, const sp_real *restrict b, int bcols, sp_real k, int C)
{
    if (bcols == 1) {
        sp_real v = k * b[0];
        for (int j = 0; j < C; j++) o[j] = a[j] + v;
    } else {
        for (int j = 0; j < C; j++) o[j] = a[j] + k * b[j];
    }
}

/* o = a * b */
static void row_mul(sp_real *restrict o, const sp_real *restrict a, const sp_real *restrict b, int bcols, int C)
{
    if (bcols == 1) {
        sp_real v = b[0];
        for (int j = 0; j < C; j++) o[j] = a[j] * v;
    } else {
        for (int j = 0; j < C; j++) o[j] = a[j] * b[j];
    }
}

/* d += k g */
static void row_acc(sp_real *restrict d, const sp_real *restrict g, sp_real k, int C)
{
    for (int j = 0; j < C; j++) d[j] += k * g[j];
}

/* d += g * b */
static void row_acc_mul(sp_real *restrict d, const sp_real *restrict g, const sp_real *restrict b, int bcols, int C)
{
    if (bcols == 1) {
        sp_real v = b[0];
        for (int j = 0; j < C; j++) d[j] += g[j] * v;
    } else {
        for (int j = 0; j < C; j++) d[j] += g[j] * b[j];
    }
}

/* Gradient of a broadcast operand: sum g (times a, if a is given) over the broadcast dims into db.
 * Serial: rows of a broadcast b collide. */
static void reduce_into(const sp_tensor *b, const sp_tensor *o, const sp_tensor *a, sp_real k)
{
    int R = o->rows, C = o->cols;
    for (int i = 0; i < R; i++) {
        const sp_real *g = o->grad + (size_t)i * C, *ai = a ? sp_at(a, i, 0) : NULL;
        sp_real *d = b->grad + (size_t)(b->rows == 1 ? 0 : i) * b->stride;
        if (b->cols == 1) {
            sp_real s = 0;
            for (int j = 0; j < C; j++) s += ai ? g[j] * ai[j] : g[j];
            d[0] += k * s;
        } else if (ai) {
            for (int j = 0; j < C; j++) d[j] += k * g[j] * ai[j];
        } else {
            for (int j = 0; j < C; j++) d[j] += k * g[j];
        }
    }
}

/* sign = +1 (add) or -1 (sub). */
static sp_tensor *add_sub(sp_tape *t, sp_op op, sp_tensor *a, sp_tensor *b, sp_real sign)
{
    sp_record *r = binary(t, op, a, b);
    if (!r) return NULL;
    sp_tensor *o = r->out;
    int R = a->rows, C = a->cols;
    ROWS_PARALLEL(sp_numel(o))
    for (int i = 0; i < R; i++) row_axpy(o->data + (size_t)i * C, sp_at(a, i, 0), brow(b, b->data, i), b->cols, sign, C);
    return o;
}

sp_tensor *sp_add(sp_tape *t, sp_tensor *a, sp_tensor *b) { return add_sub(t, SP_OP_ADD, a, b, 1); }
sp_tensor *sp_sub(sp_tape *t, sp_tensor *a, sp_tensor *b) { return add_sub(t, SP_OP_SUB, a, b, -1); }

/* forward: out = a + sign * b   =>   da += dout, db += sign * dout (summed over broadcast dims) */
static void add_sub_backward(sp_record *r, sp_real sign)
{
    sp_tensor *a = r->in[0], *b = r->in[1], *o = r->out;
    int R = o->rows, C = o->cols;
    if (a->grad) {
        ROWS_PARALLEL(sp_numel(o))
        for (int i = 0; i < R; i++) row_acc(a->grad + (size_t)i * a->stride, o->grad + (size_t)i * C, 1, C);
    }
    if (b->grad) {
        if (broadcasts(a, b)) {
            reduce_into(b, o, NULL, sign);
        } else {
            ROWS_PARALLEL(sp_numel(o))
            for (int i = 0; i < R; i++) row_acc(b->grad + (size_t)i * b->stride, o->grad + (size_t)i * C, sign, C);
        }
    }
}

void sp__add_backward(sp_record *r) { add_sub_backward(r, 1); }
void sp__sub_backward(sp_record *r) { add_sub_backward(r, -1); }

sp_tensor *sp_mul(sp_tape *t, sp_tensor *a, sp_tensor *b)
{
    sp_record *r = binary(t, SP_OP_MUL, a, b);
    if (!r) return NULL;
    sp_tensor *o = r->out;
    int R = a->rows, C = a->cols;
    ROWS_PARALLEL(sp_numel(o))
    for (int i = 0; i < R; i++) row_mul(o->data + (size_t)i * C, sp_at(a, i, 0), brow(b, b->data, i), b->cols, C);
    return o;
}

/* forward: out = a * b   =>   da += dout * b, db += dout * a (summed over broadcast dims) */
void sp__mul_backward(sp_record *r)
{
    sp_tensor *a = r->in[0], *b = r->in[1], *o = r->out;
    int R = o->rows, C = o->cols;
    if (a->grad) {
        ROWS_PARALLEL(sp_numel(o))
        for (int i = 0; i < R; i++)
            row_acc_mul(a->grad + (size_t)i * a->stride, o->grad + (size_t)i * C, brow(b, b->data, i), b->cols, C);
    }
    if (b->grad) {
        if (broadcasts(a, b)) {
            reduce_into(b, o, a, 1);
        } else {
            ROWS_PARALLEL(sp_numel(o))
            for (int i = 0; i < R; i++)
                row_acc_mul(b->grad + (size_t)i * b->stride, o->grad + (size_t)i * C, sp_at(a, i, 0), C, C);
        }
    }
}

/* ---------------------------------------------------------------- unary */

static sp_record *unary(sp_tape *t, sp_op op, sp_tensor *x)
{
    if (!sp__ready(t, op, &x, 1)) return NULL;
    return sp__record(t, op, x->rows, x->cols, &x, 1);
}

/* Loops every unary op shares: y[i,j] = EXPR(x), dx[i,j] += dy[i,j] * DEXPR(x, y). */
#define UNARY_FORWARD(o, x, EXPR)                                                                  \
    do {                                                                                           \
        int R_ = (x)->rows, C_ = (x)->cols;                                                        \
        ROWS_PARALLEL(sp_numel(o))                                                                 \
        for (int i = 0; i < R_; i++)                                                               \
            for (int j = 0; j < C_; j++) {                                                         \
                sp_real v = *sp_at((x), i, j);                                                     \
                (o)->data[(size_t)i * C_ + j] = (EXPR);                                            \
            }                                                                                      \
    } while (0)

/* The same through a row kernel of vec.h, vectorised for the CPU at hand. */
#define UNARY_ROWS(o, x, FN)                                                                       \
    do {                                                                                           \
        int R_ = (x)->rows, C_ = (x)->cols;                                                        \
        const sp_vec_kernels *V_ = sp__vec();                                                      \
        ROWS_PARALLEL(sp_numel(o))                                                                 \
        for (int i = 0; i < R_; i++) V_->FN(sp_at((x), i, 0), (o)->data + (size_t)i * C_, C_);     \
    } while (0)

#define UNARY_BACKWARD(r, DEXPR)                                                                   \
    do {                                                                                           \
        sp_tensor *x_ = (r)->in[0], *o_ = (r)->out;                                                \
        if (!x_->grad) break;                                                                      \
        int R_ = o_->rows, C_ = o_->cols;                                                          \
        ROWS_PARALLEL(sp_numel(o_))                                                                \
        for (int i = 0; i < R_; i++)                                                               \
            for (int j = 0; j < C_; j++) {                                                         \
                sp_real v = *sp_at(x_, i, j), y = o_->data[(size_t)i * C_ + j];                    \
                (void)v, (void)y;                                                                  \
                x_->grad[(size_t)i * x_->stride + j] += o_->grad[(size_t)i * C_ + j] * (DEXPR);    \
            }                                                                                      \
    } while (0)

sp_tensor *sp_scale(sp_tape *t, sp_tensor *x, double s)
{
    sp_record *r = unary(t, SP_OP_SCALE, x);
    if (!r) return NULL;
    r->fattr[0] = s;
    sp_real k = (sp_real)s;
    UNARY_FORWARD(r->out, x, k * v);
    return r->out;
}
/* y = s x */
void sp__scale_backward(sp_record *r)
{
    sp_real k = (sp_real)r->fattr[0];
    UNARY_BACKWARD(r, k);
}

sp_tensor *sp_one_minus(sp_tape *t, sp_tensor *x)
{
    sp_record *r = unary(t, SP_OP_ONE_MINUS, x);
    if (r) UNARY_FORWARD(r->out, x, 1 - v);
    return r ? r->out : NULL;
}
/* y = 1 - x */
void sp__one_minus_backward(sp_record *r) { UNARY_BACKWARD(r, -1); }

sp_tensor *sp_sigmoid(sp_tape *t, sp_tensor *x)
{
    sp_record *r = unary(t, SP_OP_SIGMOID, x);
    if (r) UNARY_ROWS(r->out, x, sigmoid);
    return r ? r->out : NULL;
}
/* y = 1 / (1 + e^-x)   =>   dy/dx = y (1 - y) */
void sp__sigmoid_backward(sp_record *r) { UNARY_BACKWARD(r, y * (1 - y)); }

sp_tensor *sp_tanh(sp_tape *t, sp_tensor *x)
{
    sp_record *r = unary(t, SP_OP_TANH, x);
    if (r) UNARY_ROWS(r->out, x, tanh);
    return r ? r->out : NULL;
}
/* y = tanh x   =>   dy/dx = 1 - y^2 */
void sp__tanh_backward(sp_record *r) { UNARY_BACKWARD(r, 1 - y * y); }

sp_tensor *sp_relu(sp_tape *t, sp_tensor *x)
{
    sp_record *r = unary(t, SP_OP_RELU, x);
    if (r) UNARY_FORWARD(r->out, x, v > 0 ? v : 0);
    return r ? r->out : NULL;
}
/* y = max(x, 0)   =>   dy/dx = [x > 0] */
void sp__relu_backward(sp_record *r) { UNARY_BACKWARD(r, v > 0 ? 1 : 0); }

/* log(1 + e^x) = max(x, 0) + log1p(e^-|x|), which cannot overflow: a row kernel of vec.h
 * (fastmath.h's sp_softplus_r, a series instead of libm's logf, so it vectorises). */
sp_tensor *sp_softplus(sp_tape *t, sp_tensor *x)
{
    sp_record *r = unary(t, SP_OP_SOFTPLUS, x);
    if (r) UNARY_ROWS(r->out, x, softplus);
    return r ? r->out : NULL;
}
/* y = log(1 + e^x)   =>   dy/dx = sigmoid(x) (from x: 1 - e^-y loses its digits where y is tiny) */
void sp__softplus_backward(sp_record *r)
{
    sp_tensor *x = r->in[0], *o = r->out;
    if (!x->grad) return;
    int R = o->rows, C = o->cols;
    const sp_vec_kernels *V = sp__vec();
    ROWS_PARALLEL(sp_numel(o))
    for (int i = 0; i < R; i++) V->softplus_bwd(sp_at(x, i, 0), o->grad + (size_t)i * C, x->grad + (size_t)i * x->stride, C);
}

/* ------------------------------------------------------------- dropout */

sp_tensor *sp_dropout(sp_tape *t, sp_tensor *x, double p, sp_rng *rng, int train)
{
    if (!sp__ready(t, SP_OP_DROPOUT, &x, 1)) return NULL;
    if (!(p >= 0 && p < 1) || (train && p > 0 && !rng)) {
        sp_tape_fail(t, SP_ERR_ARG, "dropout \"%s\": p must be in [0, 1) and rng given in training (p = %g%s)",
                     x->name, p, rng ? "" : ", rng NULL");
        return NULL;
    }
    if (!train || p == 0) return x;
    return sp__dropout_at(t, x, p, sp__noise_key(rng), SP_NOISE_DROPOUT, 0);
}

sp_tensor *sp__dropout_at(sp_tape *t, sp_tensor *x, double p, uint64_t key, uint64_t what, int64_t row0)
{
    if (!sp__ready(t, SP_OP_DROPOUT, &x, 1)) return NULL;
    sp_record *r = sp__record(t, SP_OP_DROPOUT, x->rows, x->cols, &x, 1);
    if (!r) return NULL;
    size_t n = sp_numel(x);
    sp_real *mask = sp__alloc_raw(t, n * sizeof *mask);
    if (!mask) return NULL;
    r->saved = mask;
    sp__noise_fill(mask, x->rows, x->cols, p, (sp_real)(1 / (1 - p)), key, what, row0); /* keyed: any order */
    int R = x->rows, C = x->cols;
    sp_tensor *o = r->out;
    ROWS_PARALLEL(n)
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) o->data[(size_t)i * C + j] = *sp_at(x, i, j) * mask[(size_t)i * C + j];
    return o;
}

/* y = x * mask   =>   dx += dy * mask */
void sp__dropout_backward(sp_record *r)
{
    const sp_real *mask = r->saved;
    UNARY_BACKWARD(r, mask[(size_t)i * C_ + j]);
}

sp_tensor *sp_dropout_mask(sp_tape *t, sp_tensor *x, sp_tensor *mask)
{
    if (mask && (mask->flags & SP_NEEDS_GRAD)) {
        sp_tape_fail(t, SP_ERR_ARG, "dropout \"%s\": the mask \"%s\" must be a constant", x ? x->name : "?", mask->name);
        return NULL;
    }
    return sp_mul(t, x, mask);
}
