/* SPDX-License-Identifier: MIT */
/* bidir.c - a bidirectional layer over any pair of cells.
 *
 * The forward cell reads each row from its start; the backward cell reads each row from its REAL
 * end (len_b - 1 down to 0; padding is never read, unlike running backwards from T - 1). Both
 * outputs come back in the original time order, so at step t the merged output sees the row's past
 * (forward half) and its future (backward half). Layout of the merged output (pinned by a test):
 *   concat: columns [0, Of) forward, [Of, Of + Ob) backward;  sum, mean, mul: elementwise.
 * Final states are returned per direction, never mixed: the forward one after step len_b - 1, the
 * backward one after it read step 0 (what a classifier wants from each direction). */
#include "layers_internal.h"

#include <string.h>

int sp_merge_cols(sp_merge m, int Of, int Ob) { return m == SP_MERGE_CONCAT ? Of + Ob : Of; }

sp_status sp_bidir_run(sp_tape *t, const sp_cell *fwd, const sp_cell *bwd, sp_tensor *x, int T, int B,
                       const sp_bidir_opts *opts, sp_bidir_out *out)
{
    if (out) memset(out, 0, sizeof *out);
    if (sp_tape_status(t) != SP_OK) return sp_tape_status(t);
    sp_bidir_opts o = {0};
    if (opts) o = *opts;
    if (!fwd || !bwd || !out) {
        sp_tape_fail(t, SP_ERR_ARG, "bidir: cells and out must not be NULL");
        return sp_tape_status(t);
    }
    if (o.merge != SP_MERGE_CONCAT && fwd->out_size != bwd->out_size) {
        sp_tape_fail(t, SP_ERR_SHAPE, "bidir \"%s\" + \"%s\": merge %d needs equal output sizes, have %d and %d",
                     fwd->name, bwd->name, (int)o.merge, fwd->out_size, bwd->out_size);
        return sp_tape_status(t);
    }
    sp_seq_opts fo = {o.lengths, o.init_fwd, 0, o.input_mask, o.noise};
    sp_seq_opts bo = {o.lengths, o.init_bwd, 1, o.input_mask, o.noise};
    sp_seq_out fr, br;
    if (sp_seq_run(t, fwd, x, T, B, &fo, &fr) != SP_OK || sp_seq_run(t, bwd, x, T, B, &bo, &br) != SP_OK)
        return sp_tape_status(t);
    sp_tensor *y;
    switch (o.merge) {
    case SP_MERGE_SUM: y = sp_add(t, fr.out, br.out); break;
    case SP_MERGE_MEAN: y = sp_scale(t, sp_add(t, fr.out, br.out), 0.5); break;
    case SP_MERGE_MUL: y = sp_mul(t, fr.out, br.out); break;
    default: {
        sp_tensor *both[2] = {fr.out, br.out};
        y = sp_concat(t, both, 2);
    }
    }
    if (!y) return sp_tape_status(t);
    out->out = y;
    out->fwd_out = fr.out;
    out->bwd_out = br.out;
    memcpy(out->fwd_final, fr.final, sizeof fr.final);
    memcpy(out->bwd_final, br.final, sizeof br.final);
    return SP_OK;
}
