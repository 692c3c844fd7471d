/* SPDX-License-Identifier: MIT */
/* seq.c - the runner: one cell unrolled over T steps of a batch [T*B, I].
 *
 * BPTT needs nothing here: each step's ops go on the tape and sp_backward walks them. What the
 * runner adds is (1) one input projection for all steps (one GEMM instead of T), (2) variable
 * lengths: at a step where row b is padding, its state is carried unchanged and its output is 0,
 *     s_t = m * s_new + (1 - m) * s_{t-1},   y_t = m * h_new,   m = [t < len_b]  (a [B, 1] constant),
 * skipped entirely when every row is real, and the step is not run at all when every row is
 * padding, (3) the reverse direction by reversing each row within its length before and after,
 * and (4) one sp_concat_rows of the step outputs so a head runs one GEMM over all steps. */
#include "cell_table.h"
#include "layers_internal.h"

#include <stdio.h>
#include <string.h>

sp_tensor *sp_variational_mask(sp_tape *t, int B, int C, double p, sp_rng *rng)
{
    if (sp_tape_status(t) != SP_OK) return NULL;
    if (!(p >= 0 && p < 1) || (p > 0 && !rng)) {
        sp_tape_fail(t, SP_ERR_ARG, "variational dropout: p = %g must be in [0, 1) and rng given", p);
        return NULL;
    }
    if (p == 0) return NULL;
    return sp_name(t, sp__dropout_const(t, B, C, p, sp__noise_key(rng), SP_NOISE_VARIATIONAL, 0), "dropout_mask");
}

sp_tensor *sp__noise_const(sp_tape *t, int R, int C, double p, sp_real keep, uint64_t key, uint64_t what, int64_t row0)
{
    sp_tensor *m = sp_const(t, R, C);
    if (m) sp__noise_fill(m->data, R, C, p, keep, key, what, row0);
    return m;
}

/* The initial state k: zeros, the caller's [B, S], or a [1, S] row broadcast to B rows. */
static sp_tensor *initial(sp_tape *t, const sp_cell *c, int k, sp_tensor *given, int B)
{
    int S = c->state_size[k];
    if (given && given->cols == S && given->rows == B) return given;
    if (!given || (given->cols == S && given->rows == 1)) {
        sp_tensor *zero = sp_name(t, sp_const(t, B, S), "%s0", k ? "c" : "h");
        return given ? sp_name(t, sp_add(t, zero, given), "%s0", k ? "c" : "h") : zero; /* broadcast the row */
    }
    sp_tape_fail(t, SP_ERR_SHAPE, "seq \"%s\": initial state %d \"%s\" is [%d x %d], must be [%d x %d] or [1 x %d]",
                 c->name, k, given->name, given->rows, given->cols, B, S, S);
    return NULL;
}

/* Repeat a [B, C] mask T times -> [T*B, C] constant, so one mask covers the all-steps projection. */
static sp_tensor *tile_mask(sp_tape *t, const sp_cell *c, sp_tensor *mask, int T, int B)
{
    if (mask->rows != B || mask->cols != c->input_size) {
        sp_tape_fail(t, SP_ERR_SHAPE, "seq \"%s\": input mask \"%s\" is [%d x %d], must be [B = %d x I = %d]", c->name,
                     mask->name, mask->rows, mask->cols, B, c->input_size);
        return NULL;
    }
    sp_tensor *m = sp_const(t, T * B, mask->cols);
    if (m)
        for (int s = 0; s < T; s++)
            for (int b = 0; b < B; b++)
                memcpy(sp_at(m, s * B + b, 0), sp_at(mask, b, 0), (size_t)mask->cols * sizeof(sp_real));
    return m;
}

static sp_status check_step(sp_tape *t, const sp_cell *c, int s, sp_tensor **ns, int B)
{
    for (int k = 0; k < c->n_state && sp_tape_status(t) == SP_OK; k++)
        if (!ns[k] || ns[k]->rows != B || ns[k]->cols != c->state_size[k])
            sp_tape_fail(t, SP_ERR_SHAPE, "seq \"%s\" step %d: new state %d is %s [%d x %d], must be [%d x %d]",
                         c->name, s, k, ns[k] ? ns[k]->name : "NULL", ns[k] ? ns[k]->rows : 0, ns[k] ? ns[k]->cols : 0,
                         B, c->state_size[k]);
    return sp_tape_status(t);
}

/* Zoneout of state k: s = s_old + keep * (s_new - s_old), keep = 1 - d with d ~ Bernoulli(z) per
 * element in training (rows row0.. of the mask (key, what)), keep = 1 - z (the expectation) at
 * evaluation. */
static sp_tensor *zoneout(sp_tape *t, sp_tensor *fresh, sp_tensor *old, double z, const sp_cell_noise *n, uint64_t key,
                          uint64_t what, int64_t row0)
{
    if (!(z > 0)) return fresh;
    sp_tensor *keep;
    if (n->train) {
        keep = sp__noise_const(t, fresh->rows, fresh->cols, z, 1, key, what, row0);
    } else {
        keep = sp_const(t, 1, 1);
        if (keep) keep->data[0] = (sp_real)(1 - z);
    }
    if (!sp_name(t, keep, "zoneout_keep")) return NULL;
    return sp_add(t, old, sp_mul(t, sp_sub(t, fresh, old), keep));
}

static int check_noise(sp_tape *t, const sp_cell *c, const sp_cell_noise *n)
{
    double r[4] = {n->zoneout_h, n->zoneout_c, n->recurrent_dropout, n->candidate_dropout};
    static const char *what[4] = {"zoneout_h", "zoneout_c", "recurrent_dropout", "candidate_dropout"};
    int any = 0;
    for (int k = 0; k < 4; k++) {
        if (!(r[k] >= 0 && r[k] < 1)) {
            sp_tape_fail(t, SP_ERR_ARG, "seq \"%s\": %s = %g must be in [0, 1)", c->name, what[k], r[k]);
            return 0;
        }
        any |= r[k] > 0;
    }
    if (n->step0 < 0) {
        sp_tape_fail(t, SP_ERR_ARG, "seq \"%s\": noise step0 = %d must be >= 0", c->name, n->step0);
        return 0;
    }
    if (any && n->train && !n->rng) {
        sp_tape_fail(t, SP_ERR_ARG, "seq \"%s\": zoneout or recurrent/candidate dropout in training needs an rng", c->name);
        return 0;
    }
    return 1;
}

static sp_status run(sp_tape *t, const sp_cell *cell, sp_tensor *x, int T, int B, const sp_seq_opts *o, sp_seq_out *out,
                     const char *outer)
{
    const int *len = o->lengths;
    const sp_cell_noise *nz = &o->noise;
    if (!check_noise(t, cell, nz)) return sp_tape_status(t);
    /* the runner's own copy, so the dropout masks can ride on it into the step */
    sp_cell cc = *cell;
    const sp_cell *c = &cc;
    int cand = nz->train && nz->candidate_dropout > 0;
    sp__scope_push(t, outer, "%s", c->name);
    sp_tensor *in = o->reverse ? sp_seq_reverse(t, x, T, B, len) : x;
    if (o->input_mask) in = sp_dropout_mask(t, in, tile_mask(t, c, o->input_mask, T, B));
    sp_tensor *xp = c->project ? sp_name(t, c->project(t, c, in), "projected") : in;
    /* only the cell reads the projection: a whole-sequence op keeps its gates in that memory and
     * leaves xp's gradient there (core.h, SP_TRANSIENT; at LSTM H = 256 that saves 10 MB a step) */
    if (xp && xp != in && !(xp->flags & (SP_VIEW | SP_PARAM))) xp->flags |= SP_TRANSIENT;
    sp_tensor *state[SP_CELL_MAX_STATE], *ns[SP_CELL_MAX_STATE];
    for (int k = 0; k < c->n_state; k++) state[k] = initial(t, c, k, o->init ? o->init[k] : NULL, B);
    /* zoneout (in training and, as its expectation, at evaluation) and dropout masks need the steps */
    int noisy = nz->zoneout_h > 0 || nz->zoneout_c > 0 || (nz->train && (nz->recurrent_dropout > 0 || cand));
    const sp_cell_def *def = sp__cell_def(c->kind);
    sp_tensor *all = xp && !noisy && def && def->seq && c->step == def->step ? def->seq(t, c, xp, state, T, len) : NULL;
    if (all) { /* the whole recurrence is one op (ops/seq.c): h rows of all steps, final h (, c) */
        sp_name(t, all, "cells");
        sp_tensor *y = sp_name(t, sp_slice_rows(t, all, 0, T * B), "out");
        out->out = o->reverse ? sp_seq_reverse(t, y, T, B, len) : y;
        out->final[0] = sp_name(t, sp_slice_rows(t, all, T * B, B), "h");
        if (c->n_state > 1) out->final[1] = sp_name(t, sp_slice_rows(t, all, (2 * T + 1) * B, B), "c");
        return sp_tape_status(t);
    }
    if (sp_tape_status(t) != SP_OK) return sp_tape_status(t);
    sp_tensor **ys = sp_tape_alloc(t, (size_t)T * sizeof *ys), *zero = NULL;
    if (!ys || !xp) return sp_tape_status(t);
    /* one key for every mask of this run; a step's masks are keyed by its absolute index, so a run
     * of steps [step0, step0 + T) from the same rng state draws what the whole run draws there */
    int drawn = nz->train && (nz->zoneout_h > 0 || nz->zoneout_c > 0 || nz->recurrent_dropout > 0 || cand);
    const uint64_t key = drawn ? sp__noise_key(nz->rng) : 0;
    if (nz->train && nz->recurrent_dropout > 0 &&
        !(cc.h_mask = sp_name(t, sp__dropout_const(t, B, c->out_size, nz->recurrent_dropout, key, SP_NOISE_RECURRENT, 0),
                              "h_mask")))
        return sp_tape_status(t);
    for (int s = 0; s < T; s++) {
        sp__scope_push(t, outer, "%s/t%d", c->name, s);
        int all_pad;
        sp_tensor *m = sp__step_mask(t, s, B, len, &all_pad);
        if (all_pad) { /* nothing real at this step: state stays, output is zero */
            ys[s] = zero ? zero : (zero = sp_const(t, B, c->out_size));
            continue;
        }
        memset(ns, 0, sizeof ns);
        const int64_t row0 = ((int64_t)nz->step0 + s) * B; /* this step's rows in the whole run's masks */
        if (cand && !(cc.cand_mask = sp_name(t, sp__dropout_const(t, B, c->hidden_size, nz->candidate_dropout, key,
                                                                  SP_NOISE_CANDIDATE, row0),
                                             "cand_mask")))
            return sp_tape_status(t);
        if (c->step(t, c, sp_slice_rows(t, xp, s * B, B), state, ns) != SP_OK || check_step(t, c, s, ns, B) != SP_OK)
            return sp_tape_status(t);
        for (int k = 0; k < c->n_state && k < 2; k++)
            if (!(ns[k] = zoneout(t, ns[k], state[k], k ? nz->zoneout_c : nz->zoneout_h, nz, key,
                                  k ? SP_NOISE_ZONEOUT_C : SP_NOISE_ZONEOUT_H, row0)))
                return sp_tape_status(t);
        if (!m) {
            ys[s] = ns[0];
            for (int k = 0; k < c->n_state; k++) state[k] = ns[k];
            continue;
        }
        sp_tensor *keep = sp_one_minus(t, m); /* a constant too: no gradient flows into masks */
        for (int k = 0; k < c->n_state; k++) {
            sp_tensor *fresh = sp_mul(t, ns[k], m);
            if (k == 0) ys[s] = sp_name(t, fresh, "y");
            state[k] = sp_name(t, sp_add(t, fresh, sp_mul(t, state[k], keep)), "%s", k ? "c_kept" : "h_kept");
        }
    }
    sp__scope_push(t, outer, "%s", c->name);
    sp_tensor *y = sp_name(t, sp_concat_rows(t, ys, T), "out");
    out->out = o->reverse ? sp_seq_reverse(t, y, T, B, len) : y;
    for (int k = 0; k < c->n_state; k++) out->final[k] = state[k];
    return sp_tape_status(t);
}

sp_status sp_seq_run(sp_tape *t, const sp_cell *c, sp_tensor *x, int T, int B, const sp_seq_opts *opts,
                     sp_seq_out *out)
{
    if (out) memset(out, 0, sizeof *out);
    if (sp_tape_status(t) != SP_OK) return sp_tape_status(t);
    if (!c || !c->step || !out || c->n_state < 1 || c->n_state > SP_CELL_MAX_STATE) {
        sp_tape_fail(t, SP_ERR_ARG, "seq \"%s\": %s", c ? c->name : "?",
                     !c || !c->step ? "cell or its step function is NULL"
                     : !out         ? "out is NULL"
                                    : "n_state must be 1 or 2");
        return sp_tape_status(t);
    }
    sp_seq_opts o = {0};
    if (opts) o = *opts;
    char what[96];
    snprintf(what, sizeof what, "seq \"%s\"", c->name);
    if (!sp__check_seq(t, what, x, T, B, o.lengths)) return sp_tape_status(t);
    if (x->cols != c->input_size) {
        sp_tape_fail(t, SP_ERR_SHAPE, "seq \"%s\": input \"%s\" [%d x %d] has %d columns, the cell takes I = %d",
                     c->name, x->name, x->rows, x->cols, x->cols, c->input_size);
        return sp_tape_status(t);
    }
    char outer[256];
    snprintf(outer, sizeof outer, "%s", sp_tape_get_scope(t));
    sp_status s = run(t, c, x, T, B, &o, out, outer);
    sp_tape_scope(t, "%s", outer);
    if (s != SP_OK) memset(out, 0, sizeof *out);
    return s;
}
