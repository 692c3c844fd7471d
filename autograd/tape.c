/* SPDX-License-Identifier: MIT */
/* tape.c - the tape: a chunked bump arena for activations and the record of every op, and
 * sp_backward, which walks that record in reverse.
 *
 * Recording order is already a topological order, so backward needs no graph search: allocate a
 * zeroed gradient for every node that needs one (a view's gradient aliases its base's, so slices
 * cost nothing backward), seed d loss = 1 and call each op's backward from last to first. Every
 * backward kernel accumulates (+=), which is what makes a weight used at every time step receive
 * the sum of its per-step gradients: BPTT is this loop, nothing more.
 */
#include "tape_internal.h"

#include <omp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>


#define SP_ALIGN 64
#define SP_MIN_CHUNK ((size_t)1 << 20)
#define SP_MAX_ALLOC (SIZE_MAX / 4) /* no request above this can succeed; keeps sizes from wrapping */

/* ------------------------------------------------------------------ arena */

static sp_chunk *chunk_new(sp_tape *t, size_t size)
{
    sp_chunk *c = malloc(sizeof *c);
    if (!c) return NULL;
    c->mem = aligned_alloc(SP_ALIGN, (size + SP_ALIGN - 1) / SP_ALIGN * SP_ALIGN);
    if (!c->mem) {
        free(c);
        return NULL;
    }
    c->size = size;
    c->used = 0;
    c->next = NULL;
    t->mallocs += 2;
    return c;
}

static void chunks_free(sp_chunk *c)
{
    while (c) {
        sp_chunk *n = c->next;
        free(c->mem);
        free(c);
        c = n;
    }
}

static void *arena_alloc(sp_tape *t, size_t bytes)
{
    if (bytes > SP_MAX_ALLOC) return NULL; /* rounding up below would wrap to 0 */
    bytes = (bytes + SP_ALIGN - 1) / SP_ALIGN * SP_ALIGN;
    if (bytes == 0) bytes = SP_ALIGN;
    /* Walk forward through the chunks kept from earlier steps before asking for a new one. */
    while (t->cur && t->cur->used + bytes > t->cur->size && t->cur->next) {
        t->cur = t->cur->next;
        t->cur->used = 0;
    }
    if (!t->cur || t->cur->used + bytes > t->cur->size) {
        size_t last = t->cur ? t->cur->size : 0;
        size_t size = last * 2 > bytes ? last * 2 : bytes;
        if (size < SP_MIN_CHUNK) size = SP_MIN_CHUNK;
        sp_chunk *c = chunk_new(t, size);
        if (!c) return NULL;
        if (t->cur) t->cur->next = c;
        else t->chunks = c;
        t->cur = c;
    }
    void *p = t->cur->mem + t->cur->used;
    t->cur->used += bytes;
    return p;
}

void *sp__alloc_raw(sp_tape *t, size_t bytes)
{
    void *p = arena_alloc(t, bytes);
    if (!p)
        sp_tape_fail(t, SP_ERR_NOMEM, "tape: out of memory allocating %zu bytes (arena holds %zu)",
                     bytes, sp_tape_capacity(t));
    return p;
}

/* memset on the team for a large buffer (gradient buffers of long sequences are tens of MiB: one
 * core's store bandwidth is about half what two give on the machines measured). */
void sp__zero(void *p, size_t bytes)
{
    int nt = bytes >= ((size_t)8 << 20) ? sp__threads_now() : 1;
    if (nt < 2) {
        memset(p, 0, bytes);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        size_t k = (size_t)omp_get_thread_num(), n = (size_t)omp_get_num_threads();
        size_t a = k ? bytes / n * k / 64 * 64 : 0, b = k + 1 < n ? bytes / n * (k + 1) / 64 * 64 : bytes;
        memset((char *)p + a, 0, b - a);
    }
}

void *sp__alloc(sp_tape *t, size_t bytes)
{
    void *p = sp__alloc_raw(t, bytes);
    if (p) sp__zero(p, bytes);
    return p;
}

void *sp__scratch(sp_tape *t, size_t bytes)
{
    if (bytes > SP_MAX_ALLOC) {
        sp_tape_fail(t, SP_ERR_NOMEM, "tape: out of memory for %zu bytes of scratch", bytes);
        return NULL;
    }
    if (bytes > t->scratch_size) {
        free(t->scratch);
        t->scratch = aligned_alloc(SP_ALIGN, (bytes + SP_ALIGN - 1) / SP_ALIGN * SP_ALIGN);
        t->scratch_size = t->scratch ? bytes : 0;
        t->mallocs++;
        if (!t->scratch) sp_tape_fail(t, SP_ERR_NOMEM, "tape: out of memory for %zu bytes of scratch", bytes);
    }
    return t->scratch;
}

void *sp_tape_alloc(sp_tape *t, size_t bytes)
{
    if (!t) {
        sp_fail(SP_ERR_ARG, "sp_tape_alloc: tape is NULL");
        return NULL;
    }
    if (t->status != SP_OK) return NULL;
    return sp__alloc(t, bytes);
}

size_t sp_tape_bytes(const sp_tape *t)
{
    size_t n = 0;
    if (!t) return 0;
    for (const sp_chunk *c = t->chunks; c; c = c->next) {
        n += c->used;
        if (c == t->cur) break;
    }
    return n;
}

size_t sp_tape_capacity(const sp_tape *t)
{
    size_t n = 0;
    if (!t) return 0;
    for (const sp_chunk *c = t->chunks; c; c = c->next) n += c->size;
    return n;
}

/* ------------------------------------------------------------------- tape */

static _Atomic int default_precision; /* what new tapes start with (sp_set_precision); SP_PREC_FP32 */

sp_tape *sp_tape_new(void)
{
    if (sp_runtime_init() != SP_OK) return NULL;
    sp_tape *t = calloc(1, sizeof *t);
    if (!t) {
        sp_fail(SP_ERR_NOMEM, "sp_tape_new: out of memory");
        return NULL;
    }
    t->precision = default_precision;
    return t;
}

void sp_tape_free(sp_tape *t)
{
    if (!t) return;
    chunks_free(t->chunks);
    free(t->rec);
    free(t->scratch);
    for (int op = 0; op < SP_OP__COUNT; op++)
        if (t->op_state[op] && sp_op_table[op].free_state) sp_op_table[op].free_state(t->op_state[op]);
    free(t);
}

void **sp__op_state(sp_tape *t, sp_op op) { return &t->op_state[op]; }

static void reset_op_states(sp_tape *t)
{
    for (int op = 0; op < SP_OP__COUNT; op++)
        if (t->op_state[op] && sp_op_table[op].reset) sp_op_table[op].reset(t->op_state[op]);
}

void sp_tape_reset(sp_tape *t) { sp__tape_reset_ex(t, 0); }

void sp__tape_reset_ex(sp_tape *t, int keep_op_state)
{
    if (!t) return;
    size_t used = sp_tape_bytes(t);
    if (used > t->high_water) t->high_water = used;
    /* Several chunks mean the first step outgrew the first guess: replace them by one chunk that
     * holds the high-water mark, so later steps run in a single block with no malloc. */
    if (t->chunks && t->chunks->next) {
        chunks_free(t->chunks);
        t->chunks = t->cur = NULL;
        sp_chunk *c = chunk_new(t, t->high_water + t->high_water / 4);
        t->chunks = t->cur = c; /* NULL on failure: the next alloc retries and reports */
    }
    if (t->chunks) t->chunks->used = 0;
    t->cur = t->chunks;
    t->n_rec = 0;
    t->n_shadow = 0;
    t->backward_done = 0;
    if (!keep_op_state) reset_op_states(t); /* e.g. parameters may have changed since an op packed them */
    t->status = SP_OK;
    t->msg[0] = 0;
    t->scope[0] = 0;
}

sp_status sp_tape_set_precision(sp_tape *t, sp_precision p)
{
    if (!t || (p != SP_PREC_FP32 && p != SP_PREC_BF16))
        return sp_fail(SP_ERR_ARG, "sp_tape_set_precision: %s", !t ? "tape is NULL" : "unknown precision (SP_PREC_FP32 or SP_PREC_BF16)");
#ifdef SP_USE_DOUBLE
    if (p == SP_PREC_BF16)
        return sp_fail(SP_ERR_ARG, "sp_tape_set_precision: bf16 products need the float build (this is the double build)");
#endif
    t->precision = p;
    return SP_OK;
}

sp_precision sp_tape_precision(const sp_tape *t) { return t ? (sp_precision)t->precision : SP_PREC_FP32; }

sp_status sp_set_precision(sp_precision p)
{
    sp_tape probe = {0}; /* the same checks as a tape's */
    sp_status st = sp_tape_set_precision(&probe, p);
    if (st == SP_OK) default_precision = p;
    return st;
}

sp_precision sp_get_precision(void) { return (sp_precision)default_precision; }

sp_status sp_precision_parse(const char *name, sp_precision *p)
{
    if (name && !strcmp(name, "fp32")) *p = SP_PREC_FP32;
    else if (name && !strcmp(name, "bf16")) *p = SP_PREC_BF16;
    else return sp_fail(SP_ERR_ARG, "precision \"%s\": not one of fp32, bf16", name ? name : "(null)");
    return SP_OK;
}

const char *sp_precision_name(sp_precision p) { return p == SP_PREC_BF16 ? "bf16" : "fp32"; }

int sp_tape_count(const sp_tape *t) { return t ? t->n_rec : 0; }
int sp_tape_mallocs(const sp_tape *t) { return t ? t->mallocs : 0; }
sp_status sp_tape_status(const sp_tape *t) { return t ? t->status : SP_ERR_ARG; }
const char *sp_tape_errmsg(const sp_tape *t) { return t ? t->msg : "tape is NULL"; }

void sp_tape_fail(sp_tape *t, sp_status s, const char *fmt, ...)
{
    if (!t || t->status != SP_OK) return; /* keep the first error: it is the cause */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->msg, sizeof t->msg, fmt, ap);
    va_end(ap);
    t->status = s;
}

/* ------------------------------------------------------------------ names */

void sp_tape_scope(sp_tape *t, const char *fmt, ...)
{
    if (!t) return;
    t->scope[0] = 0;
    if (!fmt) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->scope, sizeof t->scope, fmt, ap);
    va_end(ap);
}

const char *sp_tape_get_scope(const sp_tape *t) { return t ? t->scope : ""; }

const char *sp__scope_name(sp_tape *t, const char *leaf)
{
    size_t ns = strlen(t->scope), nl = strlen(leaf);
    char *s = arena_alloc(t, ns + nl + 2);
    if (!s) return "";
    if (ns) {
        memcpy(s, t->scope, ns);
        s[ns++] = '/';
    }
    memcpy(s + ns, leaf, nl + 1);
    return s;
}

sp_tensor *sp_name(sp_tape *t, sp_tensor *x, const char *fmt, ...)
{
    if (!t || !x || (x->flags & SP_PARAM)) return x; /* parameter names belong to their set */
    char leaf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(leaf, sizeof leaf, fmt, ap);
    va_end(ap);
    x->name = sp__scope_name(t, leaf);
    return x;
}

/* ---------------------------------------------------------------- records */

int sp__ready(sp_tape *t, sp_op op, sp_tensor *const *in, int n)
{
    if (!t) {
        sp_fail(SP_ERR_ARG, "%s: tape is NULL", sp_op_name(op));
        return 0;
    }
    if (t->status != SP_OK) return 0;
    for (int i = 0; i < n; i++)
        if (!in[i]) {
            sp_tape_fail(t, SP_ERR_ARG, "%s \"%s\": input %d is NULL", sp_op_name(op),
                         sp__scope_name(t, sp_op_name(op)), i);
            return 0;
        }
    return 1;
}

static sp_record *record_push(sp_tape *t, sp_op op, sp_tensor *const *in, int n)
{
    if (t->n_rec == t->cap_rec) {
        int cap = t->cap_rec ? 2 * t->cap_rec : 256;
        sp_record *r = realloc(t->rec, (size_t)cap * sizeof *r);
        if (!r) {
            sp_tape_fail(t, SP_ERR_NOMEM, "%s: out of memory growing the tape to %d records",
                         sp_op_name(op), cap);
            return NULL;
        }
        t->rec = r;
        t->cap_rec = cap;
        t->mallocs++;
    }
    sp_tensor *out = sp__alloc(t, sizeof *out);
    sp_tensor **ins = n ? sp__alloc(t, (size_t)n * sizeof *ins) : NULL;
    if (!out || (n && !ins)) return NULL;
    int needs = 0;
    for (int i = 0; i < n; i++) {
        if (in[i]->flags & SP__KEPT) { /* sp__keep: its one reader has overwritten it */
            sp_tape_fail(t, SP_ERR_ARG, "%s \"%s\": input \"%s\" is transient and its one reader has kept its "
                         "saved values in its memory: nothing may read it after that reader", sp_op_name(op),
                         sp__scope_name(t, sp_op_name(op)), in[i]->name);
            return NULL;
        }
        ins[i] = in[i];
        needs |= in[i]->flags & SP_NEEDS_GRAD;
    }
    sp_record *r = &t->rec[t->n_rec];
    memset(r, 0, sizeof *r);
    r->op = op;
    r->tape = t;
    r->in = ins;
    r->n_in = n;
    r->out = out;
    out->flags = needs;
    out->id = t->n_rec++;
    out->name = sp__scope_name(t, sp_op_name(op));
    return r;
}

sp_record *sp__record(sp_tape *t, sp_op op, int rows, int cols, sp_tensor *const *in, int n)
{
    sp_record *r = record_push(t, op, in, n);
    if (!r) return NULL;
    /* Not zeroed: every forward kernel writes its whole output. */
    sp_real *data = sp__alloc_raw(t, (size_t)rows * cols * sizeof(sp_real));
    if (!data) return NULL;
    r->out->data = data;
    r->out->rows = rows;
    r->out->cols = cols;
    r->out->stride = cols;
    return r;
}

/* Forget the shadows that overlap x's memory (it is about to be overwritten). */
static void drop_shadows(sp_tape *t, const sp_tensor *x)
{
    const char *lo = (const char *)x->data, *hi = lo + ((size_t)x->rows * x->stride) * sizeof(sp_real);
    for (int i = 0; i < t->n_shadow; i++) {
        const sp__shadow *s = &t->shadow[i];
        const char *a = (const char *)s->p, *b = a + (size_t)s->rows * s->ld * sizeof(sp_real);
        if (a < hi && lo < b) t->shadow[i--] = t->shadow[--t->n_shadow];
    }
}

int sp__keep(sp_tape *t, sp_tensor *x)
{
    if (!(x->flags & SP_TRANSIENT) || (x->flags & (SP_VIEW | SP_PARAM | SP__KEPT)) || x->id < 0 ||
        x->id >= t->n_rec - 1 || t->rec[x->id].out != x || !(sp_op_table[t->rec[x->id].op].no_read & SP_NO_READ_OUT))
        return 0;
    for (int i = x->id + 1; i < t->n_rec - 1; i++) /* the last record is the keeper itself */
        for (int k = 0; k < t->rec[i].n_in; k++)
            if (t->rec[i].in[k] == x) return 0;
    x->flags |= SP__KEPT;
    drop_shadows(t, x);
    return 1;
}

void sp__shadow_put(sp_tape *t, const sp_real *p, int rows, int cols, int ld, const uint16_t *bf, int ld2,
                    const sp_real *sums)
{
    if (!p || rows < 1 || cols < 1 || (!bf && !sums)) return;
    int i = 0; /* a registration for the same matrix joins (or replaces) its entry */
    while (i < t->n_shadow && !(t->shadow[i].p == p && t->shadow[i].rows == rows && t->shadow[i].cols == cols &&
                                t->shadow[i].ld == ld))
        i++;
    if (i == SP__SHADOWS) return;
    sp__shadow *s = &t->shadow[i];
    if (i == t->n_shadow++) *s = (sp__shadow){.p = p, .rows = rows, .cols = cols, .ld = ld};
    if (bf) s->bf = bf, s->ld2 = ld2;
    if (sums) s->sums = sums;
}

const uint16_t *sp__shadow_get(sp_tape *t, const sp_real *p, int rows, int cols, int ld, int *ld2)
{
    for (int i = 0; i < t->n_shadow; i++) {
        const sp__shadow *s = &t->shadow[i];
        if (!s->bf || s->ld != ld || p < s->p) continue;
        const size_t off = (size_t)(p - s->p), r0 = off / (size_t)ld, c0 = off % (size_t)ld;
        if (r0 + (size_t)rows <= (size_t)s->rows && c0 + (size_t)cols <= (size_t)s->cols) {
            *ld2 = s->ld2;
            return s->bf + r0 * (size_t)s->ld2 + c0;
        }
    }
    return NULL;
}

const sp_real *sp__shadow_sums(sp_tape *t, const sp_real *p, int rows, int cols, int ld)
{
    for (int i = 0; i < t->n_shadow; i++) {
        const sp__shadow *s = &t->shadow[i];
        if (s->sums && s->p == p && s->rows == rows && s->cols == cols && s->ld == ld) return s->sums;
    }
    return NULL;
}

sp_record *sp__record_view(sp_tape *t, sp_op op, sp_tensor *x, size_t offset, int rows, int cols)
{
    sp_record *r = record_push(t, op, &x, 1);
    if (!r) return NULL;
    sp_tensor *o = r->out;
    o->data = x->data + offset;
    o->rows = rows;
    o->cols = cols;
    o->stride = x->stride;
    o->flags |= SP_VIEW;
    o->base = x;
    o->offset = offset;
    return r;
}

void sp__shape_error(sp_tape *t, sp_op op, const char *why, const sp_tensor *a, const sp_tensor *b)
{
    const char *out = sp__scope_name(t, sp_op_name(op));
    if (b)
        sp_tape_fail(t, SP_ERR_SHAPE, "%s \"%s\": %s: \"%s\" [%d x %d] vs \"%s\" [%d x %d]",
                     sp_op_name(op), out, why, a->name, a->rows, a->cols, b->name, b->rows, b->cols);
    else
        sp_tape_fail(t, SP_ERR_SHAPE, "%s \"%s\": %s: \"%s\" [%d x %d]", sp_op_name(op), out, why,
                     a->name, a->rows, a->cols);
}

static sp_tensor *leaf(sp_tape *t, sp_op op, int rows, int cols, int flags)
{
    if (!sp__ready(t, op, NULL, 0)) return NULL;
    if (rows <= 0 || cols <= 0) {
        sp_tape_fail(t, SP_ERR_SHAPE, "%s \"%s\": shape must be positive: [%d x %d]", sp_op_name(op),
                     sp__scope_name(t, sp_op_name(op)), rows, cols);
        return NULL;
    }
    sp_record *r = sp__record(t, op, rows, cols, NULL, 0);
    if (!r) return NULL;
    r->out->flags |= flags;
    memset(r->out->data, 0, (size_t)rows * cols * sizeof(sp_real));
    return r->out;
}

sp_tensor *sp_const(sp_tape *t, int rows, int cols) { return leaf(t, SP_OP_CONST, rows, cols, 0); }
sp_tensor *sp_leaf(sp_tape *t, int rows, int cols) { return leaf(t, SP_OP_LEAF, rows, cols, SP_NEEDS_GRAD); }

/* --------------------------------------------------------------- backward */


/* A transient node keeps its data unless every backward that could read it says it does not
 * (the op table's no_read): its producer's, and each consumer's for that input. A node read
 * through a view counts as read. Sets DATA_READ on the transient nodes that are read; clears it
 * on the others. */
#define DATA_READ (1 << 30) /* internal to sp_backward, never seen outside */
static void mark_data_read(sp_tape *t, int last)
{
    for (int i = 0; i <= last; i++) t->rec[i].out->flags &= ~DATA_READ;
    for (int i = 0; i <= last; i++) {
        const sp_record *r = &t->rec[i];
        unsigned nr = sp_op_table[r->op].no_read;
        if (!(nr & SP_NO_READ_OUT)) r->out->flags |= DATA_READ;
        for (int k = 0; k < r->n_in; k++) {
            sp_tensor *x = r->in[k];
            if (!x || (x->flags & SP_PARAM)) continue; /* parameters are never transient */
            if (x->flags & SP_VIEW) {
                if (!(x->base->flags & SP_PARAM)) x->base->flags |= DATA_READ;
            }
            else if (k >= 15 || !(nr & SP_NO_READ_IN(k))) x->flags |= DATA_READ;
        }
    }
}

sp_status sp_backward(sp_tape *t, sp_tensor *loss)
{
    if (!t) return SP_ERR_ARG;
    if (t->status != SP_OK) return t->status;
    if (!loss) {
        sp_tape_fail(t, SP_ERR_ARG, "backward: loss is NULL");
        return t->status;
    }
    if (loss->id < 0 || loss->id >= t->n_rec || t->rec[loss->id].out != loss) {
        sp_tape_fail(t, SP_ERR_ARG, "backward: loss \"%s\" was not recorded on this tape", loss->name);
        return t->status;
    }
    if (loss->rows != 1 || loss->cols != 1) {
        sp_tape_fail(t, SP_ERR_SHAPE, "backward: loss \"%s\" must be [1 x 1], is [%d x %d]", loss->name,
                     loss->rows, loss->cols);
        return t->status;
    }
    if (!(loss->flags & SP_NEEDS_GRAD)) {
        sp_tape_fail(t, SP_ERR_ARG, "backward: loss \"%s\" depends on no parameter or leaf", loss->name);
        return t->status;
    }
    if (t->backward_done) {
        sp_tape_fail(t, SP_ERR_STATE, "backward: already ran on this tape; sum the losses into one "
                     "node, or reset the tape and run the forward pass again");
        return t->status;
    }
    t->backward_done = 1;
    /* a node kept by an op recorded after the loss: that backward will not run to write it */
    for (int i = loss->id + 1; i < t->n_rec; i++)
        for (int k = 0; k < t->rec[i].n_in; k++) t->rec[i].in[k]->flags &= ~SP__KEPT;
    mark_data_read(t, loss->id);
    /* Forward order, so a view's base already has its gradient when the view asks for it. */
    for (int i = 0; i <= loss->id; i++) {
        sp_tensor *o = t->rec[i].out;
        if (!(o->flags & SP_NEEDS_GRAD) || o->grad) continue;
        if (o->flags & SP_VIEW) {
            o->grad = o->base->grad + o->offset;
        } else if ((o->flags & (SP_TRANSIENT | DATA_READ)) == SP_TRANSIENT) {
            o->grad = o->data; /* nobody reads the values again: the gradient takes their place */
            if (!(o->flags & SP__KEPT)) /* a kept node's keeper writes all of it (sp__keep) */
                sp__zero(o->grad, (size_t)o->rows * o->stride * sizeof(sp_real));
        } else {
            o->grad = sp__alloc(t, (size_t)o->rows * o->stride * sizeof(sp_real));
            if (!o->grad) return t->status;
        }
    }
    for (int i = 0; i <= loss->id; i++) t->rec[i].out->flags &= ~DATA_READ;
    loss->grad[0] += 1;
    for (int i = loss->id; i >= 0; i--) {
        sp_record *r = &t->rec[i];
        if (!r->out->grad) continue;
        if (sp_op_table[r->op].backward) sp_op_table[r->op].backward(r);
        else if (!sp_op_table[r->op].no_backward) { /* a table row left half-filled: say so, never skip */
            sp_tape_fail(t, SP_ERR_STATE, "backward: op \"%s\" (node \"%s\") has no backward in the op table",
                         sp_op_name(r->op), r->out->name);
            return t->status;
        }
    }
    for (int op = 0; op < SP_OP__COUNT; op++)
        if (sp_op_table[op].finish) sp_op_table[op].finish(t);
    reset_op_states(t); /* an optimizer step usually follows */
    return t->status;
}
