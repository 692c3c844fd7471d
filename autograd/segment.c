/* SPDX-License-Identifier: MIT */
/* segment.c - memory-efficient backpropagation through time by recomputation (Chen et al. 2016
 * "sqrt(T) memory"; Gruslys et al. 2016): a segment of the forward pass (e.g. k time steps of a
 * recurrent net) runs on a scratch tape, and only its inputs and outputs stay on the main tape.
 * The scratch tape is rewound by the next segment, so its activations are dropped. In backward,
 * the segment's record runs the same function again on the scratch tape from the same inputs
 * (and the same rng state, so dropout and zoneout masks repeat), seeds its outputs with the
 * gradients the main walk delivered, walks the scratch tape, and adds the gradients of its
 * inputs into the main tape. Parameters used inside receive their gradients directly (they live
 * in their slabs, not on a tape).
 *
 * The seed is a surrogate loss on the scratch tape, sum_k sum(out_k * g_k) with g_k constants:
 * its gradient with respect to out_k is exactly g_k, so nothing in autograd/ needs to know about
 * segments; the op is one table line, this file, and the public ops. */
#include "tape_internal.h"

#include <string.h>

#define SP_SEGMENT_MAX 16

typedef struct {
    sp_segment_fn fn;
    void *user;
    sp_tape *scratch;
    sp_rng *rng, snap; /* rng state at the start of the forward, replayed by the recomputation */
    int n_in, n_out;
    int rows[SP_SEGMENT_MAX], cols[SP_SEGMENT_MAX];
} segment_saved;

/* The inputs on the scratch tape: parameters as they are, tape tensors as copies (leaves if they
 * need a gradient, constants otherwise). */
static int copy_inputs(sp_tape *s, int n, sp_tensor *const *in, sp_tensor **sin)
{
    for (int k = 0; k < n; k++) {
        if (in[k]->flags & SP_PARAM) {
            sin[k] = in[k];
            continue;
        }
        sin[k] = (in[k]->flags & SP_NEEDS_GRAD) ? sp_leaf(s, in[k]->rows, in[k]->cols) : sp_const(s, in[k]->rows, in[k]->cols);
        if (!sin[k]) return 0;
        for (int i = 0; i < in[k]->rows; i++)
            memcpy(sp_at(sin[k], i, 0), sp_at(in[k], i, 0), (size_t)in[k]->cols * sizeof(sp_real));
        sp_name(s, sin[k], "segment_in%d", k);
    }
    return 1;
}

static int run_fn(sp_tape *main, const segment_saved *g, sp_tensor *const *in, sp_tensor **sin, sp_tensor **sout)
{
    sp_tape *s = g->scratch;
    sp_tape_reset(s);
    if (!copy_inputs(s, g->n_in, in, sin)) {
        sp_tape_fail(main, sp_tape_status(s), "segment: %s", sp_tape_errmsg(s));
        return 0;
    }
    memset(sout, 0, (size_t)g->n_out * sizeof *sout);
    sp_status st = g->fn(s, g->user, sin, sout);
    for (int k = 0; st == SP_OK && k < g->n_out; k++)
        if (!sout[k]) sp_tape_fail(s, st = SP_ERR_ARG, "segment: the function returned no output %d", k);
    if (st == SP_OK) st = sp_tape_status(s);
    if (st != SP_OK) {
        sp_tape_fail(main, st, "segment: %s", sp_tape_errmsg(s));
        return 0;
    }
    return 1;
}

sp_status sp_segment(sp_tape *t, sp_tape *scratch, sp_segment_fn fn, void *user, sp_rng *rng, int n_in,
                     sp_tensor *const *in, int n_out, sp_tensor **out)
{
    if (!t) return SP_ERR_ARG;
    if (t->status != SP_OK) return t->status;
    if (!scratch || scratch == t || !fn || n_in < 0 || n_in > SP_SEGMENT_MAX || n_out < 1 || n_out > SP_SEGMENT_MAX ||
        (n_in && !in) || !out) {
        sp_tape_fail(t, SP_ERR_ARG, "segment: needs a scratch tape other than the main one, a function, 0..%d inputs "
                     "and 1..%d outputs (have %d, %d)", SP_SEGMENT_MAX, SP_SEGMENT_MAX, n_in, n_out);
        return t->status;
    }
    if (!sp__ready(t, SP_OP_SEGMENT, in, n_in)) return t->status;
    segment_saved g = {fn, user, scratch, rng, {{0, 0}}, n_in, n_out, {0}, {0}};
    if (rng) g.snap = *rng;
    sp_tensor *sin[SP_SEGMENT_MAX], *sout[SP_SEGMENT_MAX];
    if (!run_fn(t, &g, in, sin, sout)) return t->status;
    size_t total = 0;
    int needs = 0;
    for (int k = 0; k < n_out; k++) {
        g.rows[k] = sout[k]->rows;
        g.cols[k] = sout[k]->cols;
        total += sp_numel(sout[k]);
        needs |= sout[k]->flags & SP_NEEDS_GRAD;
    }
    if (total > 0x7fffffff) {
        sp_tape_fail(t, SP_ERR_SHAPE, "segment: outputs of %zu elements are too many", total);
        return t->status;
    }
    sp_record *r = sp__record(t, SP_OP_SEGMENT, 1, (int)total, in, n_in);
    segment_saved *sv = r ? sp__alloc_raw(t, sizeof *sv) : NULL;
    if (!sv) return t->status;
    *sv = g;
    r->saved = sv;
    sp_tensor *all = r->out;
    all->flags |= needs; /* parameters used inside are not inputs, yet the outputs depend on them */
    size_t off = 0;
    for (int k = 0; k < n_out; k++) {
        for (int i = 0; i < g.rows[k]; i++)
            memcpy(all->data + off + (size_t)i * g.cols[k], sp_at(sout[k], i, 0), (size_t)g.cols[k] * sizeof(sp_real));
        sp_record *v = sp__record_view(t, SP_OP_SLICE, all, off, g.rows[k], g.cols[k]);
        if (!v) return t->status;
        v->out->stride = g.cols[k]; /* packed one after the other in the [1, total] row */
        out[k] = sp_name(t, v->out, "segment_out%d", k);
        off += (size_t)g.rows[k] * g.cols[k];
    }
    return t->status;
}

void sp__segment_backward(sp_record *r)
{
    sp_tape *t = r->tape;
    const segment_saved *g = r->saved;
    sp_rng now;
    if (g->rng) {
        now = *g->rng;
        *g->rng = g->snap;
    }
    sp_tensor *sin[SP_SEGMENT_MAX], *sout[SP_SEGMENT_MAX];
    int ok = run_fn(t, g, r->in, sin, sout);
    if (g->rng) *g->rng = now;
    if (!ok) return;
    sp_tape *s = g->scratch;
    sp_tensor *loss = NULL;
    size_t off = 0;
    for (int k = 0; k < g->n_out; k++) {
        if (sout[k]->rows != g->rows[k] || sout[k]->cols != g->cols[k]) {
            sp_tape_fail(t, SP_ERR_STATE, "segment: recomputed output %d is [%d x %d], was [%d x %d] (the function "
                         "must do the same thing every time)", k, sout[k]->rows, sout[k]->cols, g->rows[k], g->cols[k]);
            return;
        }
        if (sout[k]->flags & SP_NEEDS_GRAD) {
            sp_tensor *seed = sp_const(s, g->rows[k], g->cols[k]);
            if (!seed) break;
            memcpy(seed->data, r->out->grad + off, (size_t)g->rows[k] * g->cols[k] * sizeof(sp_real));
            sp_tensor *term = sp_sum(s, sp_mul(s, sout[k], seed));
            loss = loss ? sp_add(s, loss, term) : term;
        }
        off += (size_t)g->rows[k] * g->cols[k];
    }
    if (!loss || sp_backward(s, loss) != SP_OK) {
        if (sp_tape_status(s) != SP_OK) sp_tape_fail(t, sp_tape_status(s), "segment backward: %s", sp_tape_errmsg(s));
        return;
    }
    for (int k = 0; k < g->n_in; k++) {
        sp_tensor *x = r->in[k];
        if ((x->flags & SP_PARAM) || !x->grad || !sin[k]->grad) continue;
        for (int i = 0; i < x->rows; i++) {
            sp_real *d = x->grad + (size_t)i * x->stride;
            const sp_real *gs = sin[k]->grad + (size_t)i * sin[k]->stride;
            for (int j = 0; j < x->cols; j++) d[j] += gs[j];
        }
    }
}
