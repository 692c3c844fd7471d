/* SPDX-License-Identifier: MIT */
/* shape.c - concat along columns (a copy) and slices of rows or columns (views, no copy).
 *
 * A slice's gradient aliases its base's gradient (see sp_backward), so slicing costs nothing
 * backward either; this is what lets a layer run one GEMM over all time steps and hand each step
 * a row view of the result. */
#include "../autograd/tape_internal.h"

#include <string.h>

sp_tensor *sp_concat(sp_tape *t, sp_tensor *const *xs, int n)
{
    if (!sp__ready(t, SP_OP_CONCAT, NULL, 0)) return NULL; /* NULL tape: says so */
    if (!xs || n <= 0) {
        sp_tape_fail(t, SP_ERR_ARG, "concat \"%s\": needs at least one input (n = %d)",
                     sp__scope_name(t, "concat"), n);
        return NULL;
    }
    if (!sp__ready(t, SP_OP_CONCAT, xs, n)) return NULL;
    int C = 0;
    for (int k = 0; k < n; k++) {
        if (xs[k]->rows != xs[0]->rows) {
            sp__shape_error(t, SP_OP_CONCAT, "row counts differ", xs[0], xs[k]);
            return NULL;
        }
        C += xs[k]->cols;
    }
    sp_record *r = sp__record(t, SP_OP_CONCAT, xs[0]->rows, C, xs, n);
    if (!r) return NULL;
    sp_tensor *o = r->out;
    for (int i = 0; i < o->rows; i++) {
        sp_real *dst = o->data + (size_t)i * C;
        for (int k = 0; k < n; k++) {
            memcpy(dst, sp_at(xs[k], i, 0), (size_t)xs[k]->cols * sizeof(sp_real));
            dst += xs[k]->cols;
        }
    }
    return o;
}

/* out = [x_0 | x_1 | ...]   =>   dx_k += the columns of dout that x_k filled */
void sp__concat_backward(sp_record *r)
{
    sp_tensor *o = r->out;
    int off = 0;
    for (int k = 0; k < r->n_in; k++) {
        sp_tensor *x = r->in[k];
        if (x->grad)
            for (int i = 0; i < o->rows; i++)
                for (int j = 0; j < x->cols; j++) x->grad[(size_t)i * x->stride + j] += o->grad[(size_t)i * o->cols + off + j];
        off += x->cols;
    }
}

sp_tensor *sp_concat_rows(sp_tape *t, sp_tensor *const *xs, int n)
{
    if (!sp__ready(t, SP_OP_CONCAT, NULL, 0)) return NULL; /* NULL tape: says so */
    if (!xs || n <= 0) {
        sp_tape_fail(t, SP_ERR_ARG, "concat_rows \"%s\": needs at least one input (n = %d)",
                     sp__scope_name(t, "concat_rows"), n);
        return NULL;
    }
    if (!sp__ready(t, SP_OP_CONCAT_ROWS, xs, n)) return NULL;
    int R = 0, C = xs[0]->cols;
    for (int k = 0; k < n; k++) {
        if (xs[k]->cols != C) {
            sp__shape_error(t, SP_OP_CONCAT_ROWS, "column counts differ", xs[0], xs[k]);
            return NULL;
        }
        R += xs[k]->rows;
    }
    sp_record *r = sp__record(t, SP_OP_CONCAT_ROWS, R, C, xs, n);
    if (!r) return NULL;
    sp_real *dst = r->out->data;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < xs[k]->rows; i++, dst += C) memcpy(dst, sp_at(xs[k], i, 0), (size_t)C * sizeof(sp_real));
    return r->out;
}

/* out = [x_0; x_1; ...]   =>   dx_k += the rows of dout that x_k filled */
void sp__concat_rows_backward(sp_record *r)
{
    const sp_real *src = r->out->grad;
    int C = r->out->cols;
    for (int k = 0; k < r->n_in; k++) {
        sp_tensor *x = r->in[k];
        for (int i = 0; i < x->rows; i++, src += C)
            if (x->grad)
                for (int j = 0; j < C; j++) x->grad[(size_t)i * x->stride + j] += src[j];
    }
}

sp_tensor *sp_slice_cols(sp_tape *t, sp_tensor *x, int c0, int n)
{
    if (!sp__ready(t, SP_OP_SLICE, &x, 1)) return NULL;
    if (c0 < 0 || n <= 0 || c0 > x->cols || n > x->cols - c0) { /* no c0 + n: it can overflow */
        char why[96];
        snprintf(why, sizeof why, "columns [%d, %lld) out of range", c0, (long long)c0 + n);
        sp__shape_error(t, SP_OP_SLICE, why, x, NULL);
        return NULL;
    }
    sp_record *r = sp__record_view(t, SP_OP_SLICE, x, (size_t)c0, x->rows, n);
    return r ? r->out : NULL;
}

sp_tensor *sp_slice_rows(sp_tape *t, sp_tensor *x, int r0, int n)
{
    if (!sp__ready(t, SP_OP_SLICE, &x, 1)) return NULL;
    if (r0 < 0 || n <= 0 || r0 > x->rows || n > x->rows - r0) {
        char why[96];
        snprintf(why, sizeof why, "rows [%d, %lld) out of range", r0, (long long)r0 + n);
        sp__shape_error(t, SP_OP_SLICE, why, x, NULL);
        return NULL;
    }
    sp_record *r = sp__record_view(t, SP_OP_SLICE, x, (size_t)r0 * x->stride, n, x->cols);
    return r ? r->out : NULL;
}

sp_status sp_split_cols(sp_tape *t, sp_tensor *x, int n, sp_tensor **out)
{
    if (!sp__ready(t, SP_OP_SLICE, &x, 1)) return sp_tape_status(t);
    if (n <= 0 || !out || x->cols % n != 0) {
        char why[96];
        snprintf(why, sizeof why, "cannot split %d columns into %d equal parts", x->cols, n);
        sp__shape_error(t, SP_OP_SLICE, why, x, NULL);
        return t->status;
    }
    int w = x->cols / n;
    for (int k = 0; k < n; k++) out[k] = sp_slice_cols(t, x, k * w, w);
    return t->status;
}
