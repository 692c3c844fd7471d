/* SPDX-License-Identifier: MIT */
/* ctc_decode.c - reading label sequences out of the per-frame scores a CTC-trained model gives
 * (no tape: inference only). sp_ctc_greedy takes the best class of every frame and collapses the
 * path (repeats merged, blanks dropped): fast, and the most likely path, but not the most likely
 * labelling, which sums over all of its paths. */
#include "../autograd/tape_internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

/* Shapes and lengths of the decoders' inputs; sets sp_last_error naming `what`. */
static sp_status decode_check(const char *what, const sp_tensor *x, int T, int B, const int *in_len, int blank,
                              const int *out, const int *out_len)
{
    if (!x || !out || !out_len) return sp_fail(SP_ERR_ARG, "%s: scores, out and out_len must not be NULL", what);
    if (T < 1 || B < 1 || (long long)T * B != x->rows)
        return sp_fail(SP_ERR_SHAPE, "%s: scores \"%s\" [%d x %d] are not T*B = %d*%d rows", what, x->name, x->rows,
                       x->cols, T, B);
    if (blank < 0 || blank >= x->cols)
        return sp_fail(SP_ERR_ARG, "%s: blank %d is not one of the %d classes of \"%s\"", what, blank, x->cols, x->name);
    for (int b = 0; in_len && b < B; b++)
        if (in_len[b] < 0 || in_len[b] > T)
            return sp_fail(SP_ERR_ARG, "%s: input_lengths[%d] = %d is outside [0, T = %d]", what, b, in_len[b], T);
    return SP_OK;
}

sp_status sp_ctc_greedy(const sp_tensor *scores, int T, int B, const int *input_lengths, int blank, int *out,
                        int *out_len, double *score)
{
    sp_status st = decode_check("ctc_greedy", scores, T, B, input_lengths, blank, out, out_len);
    if (st != SP_OK) return st;
    int C = scores->cols;
    for (int b = 0; b < B; b++) {
        int Tb = input_lengths ? input_lengths[b] : T, n = 0, prev = -1;
        double sum = 0;
        for (int t = 0; t < Tb; t++) {
            const sp_real *x = sp_at(scores, t * B + b, 0);
            int k = 0;
            double m = -DBL_MAX, s = 0;
            for (int j = 0; j < C; j++)
                if ((double)x[j] > m) m = (double)x[j], k = j;
            for (int j = 0; j < C; j++) s += exp((double)x[j] - m);
            sum -= log(s); /* log_softmax of the best class: x_k - m - log sum exp(x - m) */
            if (k != blank && k != prev) out[(size_t)b * T + n++] = k;
            prev = k;
        }
        out_len[b] = n;
        if (score) score[b] = sum;
    }
    return SP_OK;
}
