/* SPDX-License-Identifier: MIT */
/* stream_run.c - sp_stream_run: a whole stack, one-directional or bidirectional, over a batch of
 * whole sequences, forward only, for prediction and tagging after training.
 *
 * Each layer and direction is a one-layer stream (layers/stream.c) stepped over the sequences, so
 * nothing is recorded for a backward pass and the only memory beyond one step's tape is a layer's
 * output, which the next layer reads (a bidirectional layer needs its whole input before its
 * backward half can start; a one-directional stack could run in O(1), sp_stream does that).
 * Variable lengths follow the runners (layers/seq.c): output rows past a length are zero and
 * the backward half starts from each row's real end; a row's real steps come first in either
 * direction, so the steps after them (zero input) are never seen. Directions are joined as sp_bidir_run joins them (concat, sum, mean, product).
 * The outputs equal sp_rnn_run's in evaluation mode (tests/test_stream.c). */
#include "layers_internal.h"

#include <stdlib.h>
#include <string.h>

/* One direction of one layer: in [T*B, I] -> dst rows t*B + b at columns col0 .. col0 + O of a
 * row of ld reals (dst zeroed by the caller). */
static sp_status run_dir(const sp_cell *c, int reverse, const sp_real *in, int T, int B, const int *len,
                         const sp_cell_noise *noise, sp_real *dst, int ld, int col0)
{
    sp_rnn one;
    memset(&one, 0, sizeof one);
    one.num_layers = 1;
    one.cell[0][0] = *c;
    sp_stream *s = sp_stream_new(&one, B, noise);
    if (!s) return sp_last_status();
    int I = c->input_size, O = c->out_size, maxlen = 0;
    for (int b = 0; b < B; b++) maxlen = (len ? len[b] : T) > maxlen ? (len ? len[b] : T) : maxlen;
    int *tb = malloc(sizeof(int) * (size_t)B);
    sp_status st = tb ? SP_OK : sp_fail(SP_ERR_NOMEM, "stream run \"%s\": out of memory", c->name);
    for (int step = 0; st == SP_OK && step < maxlen; step++) {
        /* the row's time index, -1 once the row is done (in either direction its real steps come
         * first, so what its state does afterwards is never seen) */
        for (int b = 0; b < B; b++) {
            int L = len ? len[b] : T;
            tb[b] = step < L ? (reverse ? L - 1 - step : step) : -1;
        }
        sp_tape *t = sp_stream_begin(s);
        sp_tensor *x = sp_const(t, B, I);
        for (int b = 0; x && b < B; b++)
            if (tb[b] >= 0) memcpy(sp_at(x, b, 0), in + ((size_t)tb[b] * B + b) * I, sizeof(sp_real) * I);
            else memset(sp_at(x, b, 0), 0, sizeof(sp_real) * I);
        sp_tensor *h = x ? sp_stream_step(s, x) : NULL;
        if (!h) {
            st = sp_fail(sp_tape_status(t) != SP_OK ? sp_tape_status(t) : SP_ERR_NOMEM, "stream run: %s", sp_tape_errmsg(t));
            break;
        }
        for (int b = 0; b < B; b++)
            if (tb[b] >= 0) memcpy(dst + ((size_t)tb[b] * B + b) * ld + col0, sp_at(h, b, 0), sizeof(sp_real) * O);
    }
    free(tb);
    sp_stream_free(s);
    return st;
}

sp_status sp_stream_run(const sp_rnn *r, const sp_real *x, int T, int B, const int *lengths,
                        const sp_cell_noise *noise, sp_real *out)
{
    if (!r || !x || !out || T < 1 || B < 1 || r->num_layers < 1 || r->num_layers > SP_RNN_MAX_LAYERS)
        return sp_fail(SP_ERR_ARG, "stream run: needs a stack of 1..%d layers, x, out, T >= 1 and B >= 1 (T = %d, B = %d)",
                       SP_RNN_MAX_LAYERS, T, B);
    if (lengths)
        for (int b = 0; b < B; b++)
            if (lengths[b] < 0 || lengths[b] > T)
                return sp_fail(SP_ERR_ARG, "stream run: lengths[%d] = %d is outside [0, T = %d]", b, lengths[b], T);
    int bi = r->bidirectional != 0, L = r->num_layers;
    size_t rows = (size_t)T * B, most = 0;
    for (int l = 0; l < L; l++) {
        int Of = r->cell[l][0].out_size, Ob = bi ? r->cell[l][1].out_size : 0;
        if (bi && r->merge != SP_MERGE_CONCAT && Of != Ob)
            return sp_fail(SP_ERR_SHAPE, "stream run \"%s\" + \"%s\": merge %d needs equal output sizes, have %d and %d",
                           r->cell[l][0].name, r->cell[l][1].name, (int)r->merge, Of, Ob);
        most = (size_t)(Of + Ob) > most ? (size_t)(Of + Ob) : most;
    }
    /* layer outputs alternate between two buffers (the last layer writes out); fwd/bwd halves of a
     * merge other than concat go to a third */
    sp_real *buf[3] = {NULL, NULL, NULL};
    sp_status st = SP_OK;
    for (int k = 0; k < 3 && st == SP_OK; k++)
        if (!(buf[k] = malloc(sizeof(sp_real) * rows * most)))
            st = sp_fail(SP_ERR_NOMEM, "stream run: out of memory for %zu x %zu", rows, most);
    const sp_real *in = x;
    for (int l = 0; l < L && st == SP_OK; l++) {
        const sp_cell *cf = &r->cell[l][0], *cb = &r->cell[l][1];
        int Of = cf->out_size, Ob = bi ? cb->out_size : 0;
        int concat = !bi || r->merge == SP_MERGE_CONCAT, O = concat ? Of + Ob : Of;
        sp_real *y = l == L - 1 ? out : buf[l & 1], *halves = concat ? y : buf[2];
        int ld = concat ? O : Of + Ob;
        memset(halves, 0, sizeof(sp_real) * rows * ld);
        st = run_dir(cf, 0, in, T, B, lengths, noise, halves, ld, 0);
        if (st == SP_OK && bi) st = run_dir(cb, 1, in, T, B, lengths, noise, halves, ld, Of);
        if (st == SP_OK && !concat)
            for (size_t i = 0; i < rows; i++) {
                const sp_real *f = halves + i * ld, *b = f + Of;
                sp_real *o = y + i * O;
                for (int j = 0; j < O; j++)
                    o[j] = r->merge == SP_MERGE_SUM    ? f[j] + b[j]
                           : r->merge == SP_MERGE_MEAN ? (f[j] + b[j]) * (sp_real)0.5
                                                       : f[j] * b[j];
            }
        in = y;
    }
    for (int k = 0; k < 3; k++) free(buf[k]);
    return st;
}
