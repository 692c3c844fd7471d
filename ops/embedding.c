/* SPDX-License-Identifier: MIT */
/* embedding.c - lookup of rows of a table by integer ids; the gradient scatters back into those
 * rows. Equivalent to a one-hot matmul, without the V-wide zeros. */
#include "../autograd/tape_internal.h"

#include <string.h>

sp_tensor *sp_embedding(sp_tape *t, sp_tensor *table, const int *ids, int n)
{
    if (!sp__ready(t, SP_OP_EMBEDDING, &table, 1)) return NULL;
    if (!ids || n <= 0) {
        sp_tape_fail(t, SP_ERR_ARG, "embedding \"%s\": needs ids and n > 0 (n = %d)", table->name, n);
        return NULL;
    }
    int V = table->rows, D = table->cols;
    for (int i = 0; i < n; i++)
        if (ids[i] >= V) {
            sp_tape_fail(t, SP_ERR_ARG, "embedding \"%s\": id[%d] = %d is outside table \"%s\" [%d x %d]",
                         sp__scope_name(t, "embedding"), i, ids[i], table->name, V, D);
            return NULL;
        }
    sp_record *r = sp__record(t, SP_OP_EMBEDDING, n, D, &table, 1);
    if (!r) return NULL;
    int *saved = sp__alloc(t, (size_t)n * sizeof *saved);
    if (!saved) return NULL;
    memcpy(saved, ids, (size_t)n * sizeof *saved);
    r->saved = saved;
    for (int i = 0; i < n; i++) {
        sp_real *dst = r->out->data + (size_t)i * D;
        if (ids[i] >= 0) memcpy(dst, sp_at(table, ids[i], 0), (size_t)D * sizeof(sp_real));
        else memset(dst, 0, (size_t)D * sizeof(sp_real)); /* padding */
    }
    return r->out;
}

/* out[i] = table[ids[i]]   =>   dtable[ids[i]] += dout[i] */
void sp__embedding_backward(sp_record *r)
{
    sp_tensor *tb = r->in[0], *o = r->out;
    if (!tb->grad) return;
    const int *ids = r->saved;
    int D = o->cols;
    for (int i = 0; i < o->rows; i++) {
        if (ids[i] < 0) continue;
        sp_real *dst = tb->grad + (size_t)ids[i] * tb->stride;
        const sp_real *src = o->grad + (size_t)i * D;
        for (int j = 0; j < D; j++) dst[j] += src[j];
    }
}
