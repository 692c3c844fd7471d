/* SPDX-License-Identifier: MIT */
/* pool.c - many-to-one readouts of a sequence [T*B, C] that respect each row's real length
 * (last real step, mean, max) and the per-row reversal used by the backward direction of a
 * bidirectional layer. Gathers use sp_embedding with the sequence as the table: an id picks a
 * row, -1 gives a zero row, and the gradient scatters back to exactly the picked rows. */
#include "layers_internal.h"

#include <string.h>

int sp__check_seq(sp_tape *t, const char *what, const sp_tensor *seq, int T, int B, const int *lengths)
{
    if (sp_tape_status(t) != SP_OK) return 0;
    if (!seq || T <= 0 || B <= 0 || seq->rows != T * B) {
        sp_tape_fail(t, SP_ERR_SHAPE, "%s: sequence \"%s\" [%d x %d] is not [T*B x C] with T = %d, B = %d", what,
                     seq ? seq->name : "NULL", seq ? seq->rows : 0, seq ? seq->cols : 0, T, B);
        return 0;
    }
    if (lengths)
        for (int b = 0; b < B; b++)
            if (lengths[b] < 0 || lengths[b] > T) {
                sp_tape_fail(t, SP_ERR_ARG, "%s: lengths[%d] = %d is outside [0, T = %d]", what, b, lengths[b], T);
                return 0;
            }
    return 1;
}

static int len_of(const int *lengths, int b, int T) { return lengths ? lengths[b] : T; }

sp_tensor *sp_seq_last(sp_tape *t, sp_tensor *seq, int T, int B, const int *lengths)
{
    if (!sp__check_seq(t, "seq_last", seq, T, B, lengths)) return NULL;
    int *ids = sp_tape_alloc(t, (size_t)B * sizeof *ids);
    if (!ids) return NULL;
    for (int b = 0; b < B; b++) {
        int L = len_of(lengths, b, T);
        ids[b] = L > 0 ? (L - 1) * B + b : -1;
    }
    return sp_name(t, sp_embedding(t, seq, ids, B), "last");
}

sp_tensor *sp_seq_reverse(sp_tape *t, sp_tensor *seq, int T, int B, const int *lengths)
{
    if (!sp__check_seq(t, "seq_reverse", seq, T, B, lengths)) return NULL;
    int *ids = sp_tape_alloc(t, (size_t)T * B * sizeof *ids);
    if (!ids) return NULL;
    for (int s = 0; s < T; s++)
        for (int b = 0; b < B; b++) {
            int L = len_of(lengths, b, T);
            ids[s * B + b] = s < L ? (L - 1 - s) * B + b : -1;
        }
    return sp_name(t, sp_embedding(t, seq, ids, T * B), "reversed");
}

/* Per-step column weights [B, 1]: w for rows real at step s, 0 for padding. */
static sp_tensor *step_weights(sp_tape *t, int s, int B, const int *lengths, int T, int mean)
{
    sp_tensor *w = sp_const(t, B, 1);
    if (w)
        for (int b = 0; b < B; b++) {
            int L = len_of(lengths, b, T);
            w->data[(size_t)b * w->stride] = s < L ? (mean ? (sp_real)1 / (sp_real)L : 1) : 0;
        }
    return w;
}

/* mean = sum_s x_s * w_s with w_s = [s < len] / max(len, 1): a length-0 row gets 0, not 0/0. */
sp_tensor *sp_seq_mean(sp_tape *t, sp_tensor *seq, int T, int B, const int *lengths)
{
    if (!sp__check_seq(t, "seq_mean", seq, T, B, lengths)) return NULL;
    sp_tensor *acc = NULL;
    for (int s = 0; s < T; s++) {
        sp_tensor *term = sp_mul(t, sp_slice_rows(t, seq, s * B, B), step_weights(t, s, B, lengths, T, 1));
        acc = acc ? sp_add(t, acc, term) : term;
    }
    return sp_name(t, acc, "mean");
}

/* max(m, x) = m + relu(x - m), applied only where step s is real; starts from step 0's real rows. */
sp_tensor *sp_seq_max(sp_tape *t, sp_tensor *seq, int T, int B, const int *lengths)
{
    if (!sp__check_seq(t, "seq_max", seq, T, B, lengths)) return NULL;
    sp_tensor *m = sp_mul(t, sp_slice_rows(t, seq, 0, B), step_weights(t, 0, B, lengths, T, 0));
    for (int s = 1; s < T; s++) {
        sp_tensor *up = sp_relu(t, sp_sub(t, sp_slice_rows(t, seq, s * B, B), m));
        m = sp_add(t, m, sp_mul(t, up, step_weights(t, s, B, lengths, T, 0)));
    }
    return sp_name(t, m, "max");
}
