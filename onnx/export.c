/* SPDX-License-Identifier: MIT */
/* export.c - sp_onnx_export (include/spool/onnx.h): a model's inference graph as an ONNX file;
 * sp_onnx_export_tape: a computation recorded on a tape (a decoder step) as a graph of its own.
 *
 * The graph is built as protobuf-c messages of ONNX's own schema (sp_onnx.pb-c.h, generated from
 * onnx.proto by onnx/meson.build) and packed by protobuf-c, then written through the atomic
 * writer (autograd/file.c). Every message, string and array of one export comes from the
 * builder's list of allocations, freed in one place whatever happened.
 *
 * What the graph computes, and why each piece is there:
 *   - shapes come from the input at run time (Shape), so time and batch are free;
 *   - "lengths" defaults to -1 = the whole sequence (Where), so a caller streaming one token at
 *     a time needs not feed it;
 *   - the initial states are inputs with defaults [D, 1, S] broadcast (Expand) to the batch;
 *   - a layer whose cells ONNX has an operator for is one LSTM/GRU/RNN node with layout 0
 *     (time-major; ONNX Runtime's CPU kernel refuses layout 1) and sequence_lens; its weights are
 *     spool's with the gate blocks reordered;
 *   - any other layer is a Scan per direction: the cell's input projection and its step are
 *     recorded once on a tape with probe inputs (record) and their records translated into ONNX
 *     nodes (translate), the projection in the main graph over all steps, the step as the Scan's
 *     body, with the step's length mask and zoneout as sp_seq_run applies them; the backward
 *     direction reads its rows reversed within their lengths (ReverseSequence), as sp_bidir_run;
 *   - ONNX Runtime's operators give a final state of zeros for a row of length 0 where spool
 *     (and the definition: no step read) keeps the initial state, so their final states pass a Where on
 *     length > 0 (tests/onnx/onnx_check.py checks it);
 *   - the head is a Gemm with transB on the [time*batch, O] rows, so its weight keeps spool's
 *     (PyTorch's) layout and name;
 *   - a recorded computation (sp_onnx_tape: a model's post, or a graph of its own) goes through
 *     the same translation as a Scan's step, limited to what its outputs need (tape_nodes), with
 *     its sequences [S*B, C] as [time, batch, C] values: columns are axis -1 everywhere, so the
 *     same nodes serve rows and sequences; attention scores are [batch, time].
 * Anything else is refused before a byte is written (check_model, check_tape, and translate for
 * what a recording does). */
#include "sp_onnx.pb-c.h"
#include "onnx_internal.h"
#include "../autograd/file_internal.h"
#include "../autograd/tape_internal.h" /* the records of a step, translated into a Scan's body */
#include "../layers/cell_table.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef SpOnnx__NodeProto node_t;
typedef SpOnnx__TensorProto tensor_t;
typedef SpOnnx__ValueInfoProto value_t;
typedef SpOnnx__AttributeProto attr_t;

enum { F32 = SP_ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, I64 = SP_ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
       I32 = SP_ONNX__TENSOR_PROTO__DATA_TYPE__INT32, BOOL = SP_ONNX__TENSOR_PROTO__DATA_TYPE__BOOL };

/* A growing array of pointers (nodes, initializers, inputs, outputs, a node's attributes). */
typedef struct {
    void **v;
    size_t n, cap;
} plist;

typedef struct {
    plist mem;                /* every allocation of this export */
    plist nodes, inits, inputs, outputs;
    plist *cur;               /* where node() puts nodes: &nodes, or a Scan body's list */
    plist params, pnames;     /* parameters already written as initializers (value or transposed) */
    int serial;               /* for unique names of intermediate values */
    int failed;               /* out of memory somewhere: the export fails with SP_ERR_NOMEM */
} ox;

static int push(ox *b, plist *l, void *p)
{
    if (!p || b->failed) return -1;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        void **v = realloc(l->v, cap * sizeof *v);
        if (!v) return b->failed = 1, -1;
        l->v = v, l->cap = cap;
    }
    l->v[l->n++] = p;
    return 0;
}

/* Zeroed memory owned by the builder (NULL and b->failed when out of memory). */
static void *ox_alloc(ox *b, size_t bytes)
{
    if (b->failed) return NULL;
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p || push(b, &b->mem, p)) {
        free(p);
        b->failed = 1;
        return NULL;
    }
    return p;
}

static char *ox_str(ox *b, const char *fmt, ...) SP_PRINTF(2, 3);
static char *ox_str(ox *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? ox_alloc(b, (size_t)n + 1) : NULL;
    if (s) {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return s;
}

/* A fresh name for an intermediate value: "<hint>_<n>". */
static const char *tmp(ox *b, const char *hint) { return ox_str(b, "%s_%d", hint, b->serial++); }

/* ------------------------------------------------------------------------ nodes */

/* A node op(in...) -> out[0..nout); in and out are NULL-free name lists. */
static node_t *node(ox *b, const char *op, const char *name, int nin, const char *const *in, int nout,
                    const char *const *out)
{
    node_t *n = ox_alloc(b, sizeof *n);
    char **ins = ox_alloc(b, sizeof(char *) * (size_t)(nin ? nin : 1));
    char **outs = ox_alloc(b, sizeof(char *) * (size_t)nout);
    if (!n || !ins || !outs) return NULL;
    sp_onnx__node_proto__init(n);
    for (int i = 0; i < nin; i++) ins[i] = (char *)(in[i] ? in[i] : "");
    for (int i = 0; i < nout; i++) outs[i] = (char *)out[i];
    n->n_input = (size_t)nin, n->input = ins;
    n->n_output = (size_t)nout, n->output = outs;
    n->op_type = (char *)op;
    n->name = ox_str(b, "%s_%d", name ? name : op, b->serial++);
    return push(b, b->cur, n) ? NULL : n;
}

/* One-output node op(a[, c[, d]]) -> a fresh value (or `out` if not NULL); its name, or NULL. */
static const char *op3(ox *b, node_t **made, const char *op, const char *out, const char *a, const char *c,
                       const char *d)
{
    const char *in[3] = {a, c, d};
    int nin = d ? 3 : c ? 2 : 1;
    const char *o = out ? out : tmp(b, op);
    node_t *n = o ? node(b, op, NULL, nin, in, 1, &o) : NULL;
    if (made) *made = n;
    return n ? o : NULL;
}
#define OP2(b, op, a, c) op3(b, NULL, op, NULL, a, c, NULL)

static attr_t *attr(ox *b, node_t *n, const char *name, SpOnnx__AttributeProto__AttributeType type)
{
    attr_t *a = n ? ox_alloc(b, sizeof *a) : NULL;
    if (!a) return NULL;
    sp_onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1, a->type = type;
    /* the node's attribute array grows one at a time: nodes have at most a handful */
    attr_t **v = ox_alloc(b, sizeof *v * (n->n_attribute + 1));
    if (!v) return NULL;
    if (n->n_attribute) memcpy(v, n->attribute, sizeof *v * n->n_attribute);
    v[n->n_attribute++] = a;
    n->attribute = v;
    return a;
}

static void attr_int(ox *b, node_t *n, const char *name, int64_t v)
{
    attr_t *a = attr(b, n, name, SP_ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = 1, a->i = v;
}

static void attr_ints(ox *b, node_t *n, const char *name, int k, const int64_t *v)
{
    attr_t *a = attr(b, n, name, SP_ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *c = a ? ox_alloc(b, sizeof *c * (size_t)k) : NULL;
    if (c) memcpy(c, v, sizeof *c * (size_t)k), a->n_ints = (size_t)k, a->ints = c;
}


static void attr_float(ox *b, node_t *n, const char *name, float v)
{
    attr_t *a = attr(b, n, name, SP_ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = 1, a->f = v;
}

static void attr_strs(ox *b, node_t *n, const char *name, int k, const char *const *v, int as_list)
{
    attr_t *a = attr(b, n, name, as_list ? SP_ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS
                                         : SP_ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    if (!a) return;
    if (!as_list) {
        a->has_s = 1, a->s.len = strlen(v[0]), a->s.data = (uint8_t *)v[0];
        return;
    }
    ProtobufCBinaryData *s = ox_alloc(b, sizeof *s * (size_t)k);
    if (!s) return;
    for (int i = 0; i < k; i++) s[i].len = strlen(v[i]), s[i].data = (uint8_t *)v[i];
    a->n_strings = (size_t)k, a->strings = s;
}

/* ----------------------------------------------------------------- initializers */

/* An initializer of ndim dims; its raw bytes (n elements of esize bytes, little-endian as ONNX
 * requires) are filled by the caller through *raw. Returns its name. */
static const char *init_raw(ox *b, const char *name, int type, int ndim, const int64_t *dims, size_t esize,
                            uint8_t **raw)
{
    tensor_t *t = ox_alloc(b, sizeof *t);
    int64_t *d = ox_alloc(b, sizeof *d * (size_t)(ndim ? ndim : 1));
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    uint8_t *bytes = ox_alloc(b, n * esize);
    if (!t || !d || !bytes || !name) return NULL;
    sp_onnx__tensor_proto__init(t);
    if (ndim) memcpy(d, dims, sizeof *d * (size_t)ndim);
    t->n_dims = (size_t)ndim, t->dims = d;
    t->has_data_type = 1, t->data_type = type;
    t->name = (char *)name;
    t->has_raw_data = 1, t->raw_data.len = n * esize, t->raw_data.data = bytes;
    *raw = bytes;
    return push(b, &b->inits, t) ? NULL : name;
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_f32(uint8_t *p, double v)
{
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, 4);
    put_le(p, u, 4);
}

/* A float initializer from values (n of them, in row-major order of dims). */
static const char *init_f32(ox *b, const char *name, int ndim, const int64_t *dims, const float *v)
{
    uint8_t *raw;
    if (!init_raw(b, name, F32, ndim, dims, 4, &raw)) return NULL;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    for (size_t i = 0; i < n; i++) put_f32(raw + 4 * i, v[i]);
    return name;
}

static const char *init_i64(ox *b, const char *name, int n, const int64_t *v)
{
    uint8_t *raw;
    int64_t d = n;
    if (!init_raw(b, name, I64, 1, &d, 8, &raw)) return NULL;
    for (int i = 0; i < n; i++) put_le(raw + 8 * i, (uint64_t)v[i], 8);
    return name;
}

static const char *init_i32(ox *b, const char *name, int n, const int32_t *v)
{
    uint8_t *raw;
    int64_t d = n;
    if (!init_raw(b, name, I32, 1, &d, 4, &raw)) return NULL;
    for (int i = 0; i < n; i++) put_le(raw + 4 * i, (uint32_t)v[i], 4);
    return name;
}

/* A 1-D int64 constant of k values (shapes, axes). */
static const char *const_i64(ox *b, const char *hint, int k, const int64_t *v) { return init_i64(b, tmp(b, hint), k, v); }

/* ------------------------------------------------------------- inputs and outputs */

/* A value info: elem type and dims; a dim > 0 is fixed, 0 a named axis (sym[i]), < 0 unknown. */
static value_t *value(ox *b, plist *l, const char *name, int type, int ndim, const int64_t *dims,
                      const char *const *sym)
{
    value_t *v = ox_alloc(b, sizeof *v);
    SpOnnx__TypeProto *tp = ox_alloc(b, sizeof *tp);
    SpOnnx__TypeProto__Tensor *tt = ox_alloc(b, sizeof *tt);
    SpOnnx__TensorShapeProto *sh = ox_alloc(b, sizeof *sh);
    SpOnnx__TensorShapeProto__Dimension **dv = ox_alloc(b, sizeof *dv * (size_t)ndim);
    if (!v || !tp || !tt || !sh || !dv) return NULL;
    sp_onnx__value_info_proto__init(v);
    sp_onnx__type_proto__init(tp);
    sp_onnx__type_proto__tensor__init(tt);
    sp_onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < ndim; i++) {
        SpOnnx__TensorShapeProto__Dimension *d = ox_alloc(b, sizeof *d);
        if (!d) return NULL;
        sp_onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] > 0) d->value_case = SP_ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE, d->dim_value = dims[i];
        else if (dims[i] == 0) d->value_case = SP_ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM, d->dim_param = (char *)sym[i];
        dv[i] = d;
    }
    sh->n_dim = (size_t)ndim, sh->dim = dv;
    tt->has_elem_type = 1, tt->elem_type = type, tt->shape = sh;
    tp->value_case = SP_ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, tp->tensor_type = tt;
    v->name = (char *)name, v->type = tp;
    return push(b, l, v) ? NULL : v;
}

static const char *const TB[3] = {"time", "batch", NULL}; /* the named axes of [time, batch, C] */

/* ----------------------------------------------------------------- the checks */

/* The ONNX operator of a cell, or NULL if its step is not exactly one (the layer is then a Scan
 * over its recorded step). A built-in kind whose step or project function was replaced is not
 * the kind any more: its math is the user's. */
const char *sp__onnx_op(const sp_cell *c)
{
    const sp_cell_def *d = sp__cell_def(c->kind);
    if (!d || c->step != d->step || c->project != d->project) return NULL;
    switch (c->kind) {
    case SP_CELL_RNN_TANH:
    case SP_CELL_RNN_RELU: return "RNN";
    case SP_CELL_GRU_RESET_AFTER_MATMUL:
    case SP_CELL_GRU_RESET_BEFORE_MATMUL: return "GRU";
    case SP_CELL_LSTM: return c->out_size == c->hidden_size && !c->w_hr ? "LSTM" : NULL; /* no projection in ONNX */
    default: return NULL;
    }
}

const int *sp__onnx_gate_perm(const sp_cell *c, int *nblk, const int **peep)
{
    /* ONNX block j <- spool block perm[j]: LSTM i,o,f,c <- i,f,g,o (coupled: i,g,o, no f);
     * GRU z,r,h <- r,z,n; peepholes i,o,f <- i,f,o (coupled: i,o) */
    static const int P_LSTM[4] = {0, 3, 1, 2}, P_CIFG[4] = {0, 2, -1, 1}, P_GRU[3] = {1, 0, 2}, P_RNN[1] = {0};
    static const int P_PEEP[3] = {0, 2, 1}, P_PEEP_CIFG[3] = {0, 1, -1};
    const char *op = sp__onnx_op(c);
    int lstm = op && !strcmp(op, "LSTM"), coupled = lstm && (c->lstm_flags & SP_LSTM_COUPLED);
    if (peep) *peep = lstm ? (coupled ? P_PEEP_CIFG : P_PEEP) : NULL;
    *nblk = lstm ? 4 : op && !strcmp(op, "GRU") ? 3 : 1;
    return lstm ? (coupled ? P_CIFG : P_LSTM) : op && !strcmp(op, "GRU") ? P_GRU : P_RNN;
}

static int same_cell(const sp_cell *a, const sp_cell *c)
{
    return a->kind == c->kind && a->lstm_flags == c->lstm_flags && a->input_size == c->input_size &&
           a->hidden_size == c->hidden_size && a->out_size == c->out_size && a->step == c->step &&
           a->project == c->project && !a->w_peep == !c->w_peep;
}

/* Layer l as one LSTM/GRU/RNN node (both directions the same operator and sizes, no zoneout,
 * whose evaluation form those operators cannot express)? */
static int op_layer(const sp_onnx_model *m, int l)
{
    const sp_rnn *r = m->rnn;
    if (m->noise && (m->noise->zoneout_h > 0 || m->noise->zoneout_c > 0)) return 0;
    return sp__onnx_op(&r->cell[l][0]) && (!r->bidirectional || (sp__onnx_op(&r->cell[l][1]) && same_cell(&r->cell[l][0], &r->cell[l][1])));
}

static int shape_is(const sp_tensor *x, int rows, int cols) { return x && x->rows == rows && x->cols == cols; }

/* A name a caller gives an input or output (sp_onnx_model.extra_names, const_names) must not be
 * one the graph has: not a name of the table in onnx.h, not "<hint>_<n>" (intermediate values),
 * not a parameter's (those have a '/' or '.'). */
#define FREE_RULE "no '.', '/' or ending in _<digits>"
#define NAME_RULE "not ids, x, lengths, y, logits, probs, [hc][0n]_l<k>; " FREE_RULE
static int name_free(const char *nm) /* of intermediate values' and parameters' names */
{
    if (!nm || !*nm || strchr(nm, '.') || strchr(nm, '/')) return 0;
    const char *u = strrchr(nm, '_');
    return !(u && u[1] && strspn(u + 1, "0123456789") == strlen(u + 1));
}

static int name_ok(const char *nm)
{
    static const char *const taken[] = {"ids", "x", "lengths", "y", "logits", "probs"};
    if (!name_free(nm)) return 0;
    for (size_t i = 0; i < sizeof taken / sizeof *taken; i++)
        if (!strcmp(nm, taken[i])) return 0;
    return !(strchr("hc", nm[0]) && nm[1] && strchr("0n", nm[1]) && !strncmp(nm + 2, "_l", 2));
}

/* node is a node recorded on t (not a parameter, nor a tensor of another tape). */
static int on_tape(const sp_tape *t, const sp_tensor *node)
{
    return node && !(node->flags & SP_PARAM) && node->id >= 0 && node->id < t->n_rec && t->rec[node->id].out == node;
}

/* What sp_onnx_tape says, checked before anything is built (who: the function, for messages);
 * post: g is an sp_onnx_model's post, whose inputs are values of the model's graph (names[0..n)
 * more names the graph has). */
static sp_status check_tape(const sp_onnx_tape *g, const char *who, const char *const *names, int n)
{
    if (!g->tape || sp_tape_status(g->tape) != SP_OK)
        return sp_fail(SP_ERR_ARG, "%s: %s", who, g->tape ? "the recording failed; its tape holds the error" : "tape is NULL");
    if (g->batch < 2 || g->steps < 0 || g->steps == 1 || (g->steps && (long)g->steps * g->batch > (1L << 30)))
        return sp_fail(SP_ERR_ARG, "%s: batch %d and steps %d: the batch must be >= 2 and the steps 0 (no sequence) or "
                                   ">= 2, so that their rows tell them apart", who, g->batch, g->steps);
    if (g->n_in < 0 || g->n_in > SP_ONNX_MAX_BIND || g->n_out < 1 || g->n_out > SP_ONNX_MAX_BIND ||
        (g->n_in && !g->in) || !g->out)
        return sp_fail(SP_ERR_ARG, "%s: %d inputs and %d outputs: 0 to %d inputs, 1 to %d outputs", who, g->n_in,
                       g->n_out, SP_ONNX_MAX_BIND, SP_ONNX_MAX_BIND);
    for (int i = 0; i < g->n_in + g->n_out + 1; i++) {
        int input = i < g->n_in, len = i == g->n_in + g->n_out;
        const sp_onnx_value *v = len ? NULL : input ? &g->in[i] : &g->out[i - g->n_in];
        const char *nm = len ? g->lengths : v->name;
        if (len && (!nm || names)) break; /* a post's masks read the graph's lengths */
        if (!(names ? (input ? nm != NULL : name_ok(nm)) : name_free(nm)))
            return sp_fail(SP_ERR_ARG, "%s: %s \"%s\" needs a name of its own (%s)", who, len ? "the lengths input" :
                           input ? "input" : "output", nm ? nm : "(null)", names ? NAME_RULE : FREE_RULE);
        for (int j = 0; j < i && !(names && input); j++) /* unique (a post's inputs name values of the graph) */
            if (!strcmp(nm, j < g->n_in ? g->in[j].name : g->out[j - g->n_in].name))
                return sp_fail(SP_ERR_ARG, "%s: two values of the graph are named \"%s\"", who, nm);
        for (int j = 0; names && !input && j < n; j++)
            if (names[j] && !strcmp(nm, names[j]))
                return sp_fail(SP_ERR_ARG, "%s: post: output \"%s\": the graph has a value of that name", who, nm);
        if (len) break;
        int rows = v->kind == SP_ONNX_SEQ ? g->steps * g->batch : g->batch;
        if ((unsigned)v->kind > SP_ONNX_IDS || (!input && v->kind == SP_ONNX_IDS) || (names && v->kind == SP_ONNX_IDS) ||
            (v->kind == SP_ONNX_SEQ && !g->steps))
            return sp_fail(SP_ERR_ARG, "%s: %s \"%s\": kind %d is not one of SP_ONNX_ROWS, SP_ONNX_SEQ (with steps >= 2)%s",
                           who, input ? "input" : "output", nm, (int)v->kind, input && !names ? " or SP_ONNX_IDS" : "");
        if (v->kind == SP_ONNX_IDS ? !v->node : !on_tape(g->tape, v->node))
            return sp_fail(SP_ERR_ARG, "%s: %s \"%s\" is bound to %s", who, input ? "input" : "output", nm,
                           v->node ? "a node that is not one recorded on the tape" : "no node (NULL)");
        if (v->kind != SP_ONNX_IDS && v->node->rows != rows)
            return sp_fail(SP_ERR_SHAPE, "%s: %s \"%s\" (node \"%s\" [%d x %d]) must have %d rows (%s)", who,
                           input ? "input" : "output", nm, v->node->name, v->node->rows, v->node->cols, rows,
                           v->kind == SP_ONNX_SEQ ? "steps x batch" : "the batch");
    }
    return SP_OK;
}

static const char *post_value(ox *b, const sp_onnx_model *m, const sp_onnx_value *v, const char *y, int *cols);

/* Everything that would make the file wrong or unreadable and can be seen without recording a
 * step, checked before anything is built (what a Scan's step does is checked as it is
 * translated, still before a byte is written). */
static sp_status check_model(const sp_onnx_model *m)
{
    const sp_rnn *r = m->rnn;
    if (!r || r->num_layers < 1 || r->num_layers > SP_RNN_MAX_LAYERS)
        return sp_fail(SP_ERR_ARG, "sp_onnx_export: %s", r ? "the stack's num_layers is out of [1, SP_RNN_MAX_LAYERS]"
                                                           : "the model has no recurrent stack (rnn is NULL)");
    if (m->noise && !(m->noise->zoneout_h >= 0 && m->noise->zoneout_h < 1 && m->noise->zoneout_c >= 0 &&
                      m->noise->zoneout_c < 1))
        return sp_fail(SP_ERR_ARG, "sp_onnx_export: zoneout rates (h %g, c %g) must be in [0, 1)", m->noise->zoneout_h,
                       m->noise->zoneout_c);
    int D = r->bidirectional ? 2 : 1, in = r->cell[0][0].input_size;
    int cols = m->embed ? m->embed->dim : 0;
    if (m->n_extra < 0 || m->n_extra > SP_ONNX_MAX_EXTRA || (m->n_extra && (!m->embed || !m->extra || !m->extra_names)))
        return sp_fail(SP_ERR_ARG, "sp_onnx_export: n_extra = %d needs embed, extra and extra_names and at most %d",
                       m->n_extra, SP_ONNX_MAX_EXTRA);
    for (int k = 0; k < m->n_extra; k++) {
        const sp_embed *e = m->extra[k];
        const char *nm = m->extra_names[k];
        if (!e || !e->weight || !shape_is(e->weight, e->num, e->dim) || !nm || !*nm || !strcmp(nm, "ids") ||
            !name_ok(nm))
            return sp_fail(SP_ERR_ARG, "sp_onnx_export: extra input %d (\"%s\") needs a table and a name of its own "
                                       "(%s)", k, nm ? nm : "(null)", NAME_RULE);
        cols += e->dim;
    }
    if (m->embed && (!m->embed->weight || cols != in || !shape_is(m->embed->weight, m->embed->num, m->embed->dim)))
        return sp_fail(SP_ERR_SHAPE, "sp_onnx_export: the embedding%s (%d columns) does not feed the stack's input size %d",
                       m->n_extra ? "s" : "", cols, in);
    if (!m->embed && m->one_hot && m->one_hot != in)
        return sp_fail(SP_ERR_SHAPE, "sp_onnx_export: one-hot input of size %d does not feed the stack's input size %d",
                       m->one_hot, in);
    if (m->one_hot < 0) return sp_fail(SP_ERR_ARG, "sp_onnx_export: one_hot = %d must be >= 0", m->one_hot);
    for (int l = 0; l < r->num_layers; l++) {
        const sp_cell *c = &r->cell[l][0];
        for (int d = 0; d < D; d++) {
            const sp_cell *cd = &r->cell[l][d];
            if (!cd->step || cd->n_state < 1 || cd->n_state > SP_CELL_MAX_STATE)
                return sp_fail(SP_ERR_ARG, "sp_onnx_export: layer %d (cell \"%s\") has no step function or %d states",
                               l, cd->name, cd->n_state);
            if (cd->input_size != in)
                return sp_fail(SP_ERR_SHAPE, "sp_onnx_export: layer %d (cell \"%s\") reads %d columns, the layer below gives %d",
                               l, cd->name, cd->input_size, in);
            if (d && (cd->n_state != c->n_state || cd->state_size[0] != c->state_size[0] ||
                      (c->n_state > 1 && cd->state_size[1] != c->state_size[1]) || cd->out_size != c->out_size))
                return sp_fail(SP_ERR_SHAPE, "sp_onnx_export: layer %d: the directions' cells \"%s\" and \"%s\" have "
                                             "states or outputs of different sizes (h0_l%d holds both)",
                               l, c->name, cd->name, l);
            for (int k = 0; k < cd->n_state; k++) {
                const sp_tensor *s0 = m->init ? m->init->s[l][d][k] : NULL;
                if (s0 && !shape_is(s0, 1, cd->state_size[k]))
                    return sp_fail(SP_ERR_SHAPE, "sp_onnx_export: initial state %d of layer %d (cell \"%s\") must be "
                                                 "[1 x %d], is \"%s\" [%d x %d]", k, l, cd->name,
                                   cd->state_size[k], s0->name, s0->rows, s0->cols);
            }
        }
        if (D == 2 && r->merge != SP_MERGE_CONCAT && r->merge != SP_MERGE_SUM && r->merge != SP_MERGE_MEAN &&
            r->merge != SP_MERGE_MUL)
            return sp_fail(SP_ERR_ARG, "sp_onnx_export: layer %d: unknown merge %d", l, (int)r->merge);
        in = D == 2 ? sp_merge_cols(r->merge, c->out_size, c->out_size) : c->out_size;
    }
    if (m->head && (!m->head->weight || m->head->in != in || !shape_is(m->head->weight, m->head->out, m->head->in) ||
                    (m->head->bias && !shape_is(m->head->bias, 1, m->head->out))))
        return sp_fail(SP_ERR_SHAPE, "sp_onnx_export: the head (%d -> %d) does not read the stack's %d output columns",
                       m->head->in, m->head->out, in);
    if ((m->softmax || m->sigmoid) && !m->head)
        return sp_fail(SP_ERR_ARG, "sp_onnx_export: %s needs a head (head is NULL)", m->softmax ? "softmax" : "sigmoid");
    if (m->softmax && m->sigmoid) return sp_fail(SP_ERR_ARG, "sp_onnx_export: softmax and sigmoid exclude each other");
    if ((unsigned)m->pool > SP_ONNX_POOL_MAX) return sp_fail(SP_ERR_ARG, "sp_onnx_export: unknown pool %d", (int)m->pool);
    if (m->n_consts < 0 || m->n_consts > SP_ONNX_MAX_EXTRA || (m->n_consts && (!m->consts || !m->const_names)))
        return sp_fail(SP_ERR_ARG, "sp_onnx_export: n_consts = %d needs consts and const_names and at most %d",
                       m->n_consts, SP_ONNX_MAX_EXTRA);
    for (int k = 0; k < m->n_consts; k++) {
        for (int j = 0; j < k; j++)
            if (m->const_names[j] && m->const_names[k] && !strcmp(m->const_names[j], m->const_names[k]))
                return sp_fail(SP_ERR_ARG, "sp_onnx_export: two outputs named \"%s\"", m->const_names[k]);
        if (!m->consts[k] || !name_ok(m->const_names[k]))
            return sp_fail(SP_ERR_ARG, "sp_onnx_export: output %d (\"%s\") needs a tensor and a name of its own (%s)", k,
                           m->const_names[k] ? m->const_names[k] : "(null)", NAME_RULE);
    }
    for (const char *const *kv = m->metadata; kv && *kv; kv += 2)
        if (!kv[1]) return sp_fail(SP_ERR_ARG, "sp_onnx_export: metadata key \"%s\" has no value (NULL)", kv[0]);
    if (m->post) { /* its outputs' names are new to the graph; its inputs name values of it */
        const char *names[2 * SP_ONNX_MAX_EXTRA];
        for (int k = 0; k < m->n_extra; k++) names[k] = m->extra_names[k];
        for (int k = 0; k < m->n_consts; k++) names[m->n_extra + k] = m->const_names[k];
        sp_status s = check_tape(m->post, "sp_onnx_export", names, m->n_extra + m->n_consts);
        for (int i = 0; s == SP_OK && i < m->post->n_in; i++) {
            const sp_onnx_value *v = &m->post->in[i];
            int cols = 0;
            if (!post_value(NULL, m, v, NULL, &cols))
                s = sp_fail(SP_ERR_ARG, "sp_onnx_export: post: input \"%s\" is none of the graph's values it may read: "
                                        "y (SP_ONNX_SEQ), hn_l<k> or cn_l<k> of a layer k with that state (SP_ONNX_ROWS)", v->name);
            else if (cols != v->node->cols)
                s = sp_fail(SP_ERR_SHAPE, "sp_onnx_export: post: input \"%s\" has %d columns in the graph, node \"%s\" %d",
                            v->name, cols, v->node->name, v->node->cols);
        }
        if (s) return s;
    }
    return SP_OK;
}

/* ------------------------------------------------------- a recorded step as ONNX nodes */

/* Rows of the probe inputs a step or projection is recorded on: a tensor made inside it with
 * this many rows depends on the batch, which a graph with a free batch axis cannot hold (an odd
 * size, so that a constant of the model itself is hardly ever taken for one of the batch). */
#define NPROBE 13

/* A parameter as an initializer of its own name (transposed: "<name>.T", [cols, rows]), written
 * once however often the graph reads it. */
static const char *param_name(ox *b, const sp_tensor *p, int transposed)
{
    for (size_t i = 0; i < b->params.n; i++)
        if (b->params.v[i] == p && ((const char *)b->pnames.v[i])[strlen(p->name)] == (transposed ? '.' : 0))
            return b->pnames.v[i];
    const char *name = ox_str(b, transposed ? "%s.T" : "%s", p->name);
    int64_t dims[2] = {transposed ? p->cols : p->rows, transposed ? p->rows : p->cols};
    uint8_t *raw;
    if (!name || !init_raw(b, name, F32, 2, dims, 4, &raw)) return NULL;
    for (int i = 0; i < p->rows; i++)
        for (int j = 0; j < p->cols; j++)
            put_f32(raw + 4 * (transposed ? (size_t)j * p->rows + i : (size_t)i * p->cols + j), *sp_at(p, i, j));
    if (push(b, &b->params, (void *)p) || push(b, &b->pnames, (void *)name)) return NULL;
    return name;
}

/* A spool tensor [rows, cols] (the embedding's or head's) as a float initializer of its own name;
 * as_vector: 1-D [rows*cols] (a Gemm's C). Written once, as param_name's, however often the graph
 * reads it. */
static const char *init_tensor(ox *b, const sp_tensor *x, int as_vector)
{
    if (!as_vector) return param_name(b, x, 0);
    for (size_t i = 0; i < b->params.n; i++)
        if (b->params.v[i] == x && !((const char *)b->pnames.v[i])[strlen(x->name)]) return b->pnames.v[i];
    uint8_t *raw;
    int64_t n = (int64_t)x->rows * x->cols;
    const char *name = ox_str(b, "%s", x->name);
    if (!init_raw(b, name, F32, 1, &n, 4, &raw)) return NULL;
    for (int i = 0; i < x->rows; i++)
        for (int j = 0; j < x->cols; j++) put_f32(raw + 4 * ((size_t)i * x->cols + j), *sp_at(x, i, j));
    return push(b, &b->params, (void *)x) || push(b, &b->pnames, (void *)name) ? NULL : name;
}

static const char *scalar_f32(ox *b, double v)
{
    uint8_t *raw;
    const char *name = tmp(b, "c");
    if (!init_raw(b, name, F32, 0, NULL, 4, &raw)) return NULL;
    put_f32(raw, v);
    return name;
}

/* What a translation knows: the name of each record's output (records from `from` on), and what
 * the values of the recording stand for. A step of a Scan has rows of the batch only (NPROBE of
 * them); a recorded graph (sp_onnx_tape) also sequences of S*B rows, ids bound to embedding
 * tables and the lengths its attention masks read. */
typedef struct {
    sp_tape *t;
    int from;
    const char **names;         /* by record index; preset: bound to a value of the graph */
    const char *who, *where;    /* "sp_onnx_export", "layer 1 (cell \"mgu1\")" for messages */
    int batch;                  /* rows that stand for the batch */
    int seq_rows;               /* rows of a sequence (S*B, time-major), [time, batch, C] in the graph; 0: none */
    const unsigned char *need;  /* NULL: every record from `from`; else only the marked ones */
    unsigned char *tcol;        /* per record: its columns are the time axis (attention scores), or NULL */
    const char *bdim;           /* int64 [1], the batch: a constant of the batch's rows, all equal, is
                                   broadcast to it (zeros of a fresh state); NULL: refused */
    const char *lengths;        /* int32 [B] (-1: the whole sequence) for attention masks, or NULL: refused */
    int n_ids;                  /* embedding tables whose lookups read an int64 [batch] input */
    const sp_tensor *const *id_table;
    const char *const *id_name;
} xl;

/* v is a value of the recording with a sequence's rows ([time, batch, C] in the graph). */
static int is_seq(const xl *x, const sp_tensor *v)
{
    return x->seq_rows > 0 && v->rows == x->seq_rows && !(v->flags & SP_PARAM);
}

/* v's columns are the time axis of the graph (attention scores and what is computed from them). */
static int is_tcol(const xl *x, const sp_tensor *v)
{
    return x->tcol && !(v->flags & SP_PARAM) && v->id >= x->from && v->id < sp_tape_count(x->t) && x->tcol[v->id];
}

/* The graph name of tensor v of the recording; NULL (with the message set) if it has none. */
static const char *vname(ox *b, const xl *x, const sp_tensor *v)
{
    if (v->flags & SP_PARAM) return param_name(b, v, 0);
    if (v->id >= x->from && v->id < sp_tape_count(x->t) && x->names[v->id]) return x->names[v->id];
    sp_fail(SP_ERR_ARG, "%s: %s: node \"%s\" comes from outside the recorded %s", x->who, x->where, v->name,
            x->need ? "graph" : "step");
    return NULL;
}

/* op(a) of a product: a, or its transpose (a parameter's is written transposed once). */
static const char *operand(ox *b, const xl *x, const sp_tensor *v, int trans)
{
    if (!trans) return vname(b, x, v);
    if (v->flags & SP_PARAM) return param_name(b, v, 1);
    node_t *n;
    const char *o = op3(b, &n, "Transpose", NULL, vname(b, x, v), NULL, NULL);
    attr_ints(b, n, "perm", 2, (int64_t[]){1, 0});
    return o;
}

/* Columns [c0, c0 + n) (axis -1: a sequence's too) or rows (axis 0) of a value. */
static const char *slice(ox *b, const char *v, int axis, int64_t c0, int64_t n)
{
    const char *in[4] = {v, const_i64(b, "starts", 1, &c0), const_i64(b, "ends", 1, (int64_t[]){c0 + n}),
                         const_i64(b, "axes", 1, (int64_t[]){axis})};
    const char *o = tmp(b, "Slice");
    return node(b, "Slice", NULL, 4, in, 1, &o) ? o : NULL;
}

/* The k equal column blocks of v into out[0..k). */
static void split_cols(ox *b, const char *v, int k, const char **out)
{
    for (int i = 0; i < k; i++) out[i] = tmp(b, "part");
    node_t *n = node(b, "Split", NULL, 1, &v, k, out);
    attr_int(b, n, "axis", -1);
}

/* Every row of x is its first row (a constant of the batch's rows that is one row repeated). */
static int rows_equal(const sp_tensor *x)
{
    for (int i = 1; i < x->rows; i++)
        if (memcmp(sp_at(x, i, 0), sp_at(x, 0, 0), sizeof(sp_real) * (size_t)x->cols)) return 0;
    return 1;
}

/* Rows of a table for int64 ids of any shape (rank axes), as sp_embedding: an id < 0 gives a zero
 * row, Gather(table, max(id, 0)) * (id >= 0). table NULL: one-hot rows of depth `one_hot`. */
static const char *lookup(ox *b, const char *table, int one_hot, const char *ids, int rank)
{
    node_t *n;
    const char *zero = init_i64(b, tmp(b, "zero"), 1, (int64_t[]){0});
    const char *idx = OP2(b, "Max", ids, zero);
    const char *keep = op3(b, &n, "Cast", NULL, OP2(b, "GreaterOrEqual", ids, zero), NULL, NULL);
    attr_int(b, n, "to", F32);
    keep = OP2(b, "Unsqueeze", keep, const_i64(b, "axes", 1, (int64_t[]){rank}));
    const char *rows;
    if (table) {
        rows = op3(b, &n, "Gather", NULL, table, idx, NULL);
        attr_int(b, n, "axis", 0);
    } else {
        int64_t two = 2;
        rows = op3(b, NULL, "OneHot", NULL, idx, const_i64(b, "depth", 1, (int64_t[]){one_hot}),
                   init_f32(b, tmp(b, "onehot_values"), 1, &two, (float[]){0, 1}));
    }
    return OP2(b, "Mul", rows, keep);
}

/* [S, B, C] -> the sum over C, as [B, S] (attention scores from per-step products). */
static const char *sum_scores(ox *b, const char *p)
{
    node_t *n;
    const char *e = op3(b, &n, "ReduceSum", NULL, p, const_i64(b, "axes", 1, (int64_t[]){2}), NULL);
    attr_int(b, n, "keepdims", 0);
    e = op3(b, &n, "Transpose", NULL, e, NULL, NULL);
    attr_ints(b, n, "perm", 2, (int64_t[]){1, 0});
    return e;
}

/* A 0-d int64 constant. */
static const char *scalar_i64(ox *b, int64_t v)
{
    uint8_t *raw;
    const char *name = tmp(b, "i");
    if (!init_raw(b, name, I64, 0, NULL, 8, &raw)) return NULL;
    put_le(raw, (uint64_t)v, 8);
    return name;
}

/* The translation's refusal: "<who>: <where>: <why>", SP_ERR_ARG. */
#define REFUSE(fmt, ...) return sp_fail(SP_ERR_ARG, "%s: %s: " fmt, x->who, x->where, __VA_ARGS__)

/* Records x->from .. end of the recording (those x->need marks, if set; not the bound ones) as
 * ONNX nodes (into b->cur). Each op maps onto the ONNX operators that compute it; an op without
 * one, or one that would fix the batch or the time axis of the graph, is an error naming it and
 * its node. Columns are axis -1, so a sequence ([T, B, C]) goes through the same nodes as rows. */
static sp_status translate(ox *b, const xl *x)
{
    sp_tape *t = x->t;
    for (int i = x->from; i < t->n_rec && !b->failed; i++) {
        const sp_record *r = &t->rec[i];
        const char *in[4] = {NULL, NULL, NULL, NULL}, *o = NULL, *op = sp_op_name(r->op), *nm = r->out->name;
        if (x->names[i] || (x->need && !x->need[i])) continue; /* an input, or nothing an output needs */
        if (r->op == SP_OP_CONST) {
            int rows = r->out->rows, of_batch = rows == x->batch && x->bdim && rows_equal(r->out);
            if ((rows == x->batch && !of_batch) || (x->seq_rows && rows == x->seq_rows))
                REFUSE("constant \"%s\" [%d x %d] has the batch's rows; a graph with a free batch "
                       "axis cannot hold it", nm, rows, r->out->cols);
            uint8_t *raw;
            int64_t dims[2] = {of_batch ? 1 : rows, r->out->cols};
            if (!(o = init_raw(b, tmp(b, "const"), F32, 2, dims, 4, &raw))) return SP_ERR_NOMEM;
            for (int k = 0; k < dims[0]; k++)
                for (int j = 0; j < r->out->cols; j++) put_f32(raw + 4 * ((size_t)k * r->out->cols + j), *sp_at(r->out, k, j));
            if (of_batch) { /* one row repeated (a fresh state's zeros): that row, broadcast to the batch */
                node_t *n;
                const char *shape = op3(b, &n, "Concat", NULL, x->bdim, const_i64(b, "dim", 1, (int64_t[]){r->out->cols}), NULL);
                attr_int(b, n, "axis", 0);
                o = OP2(b, "Expand", o, shape);
            }
            x->names[i] = o;
            continue;
        }
        for (int k = 0; k < r->n_in && k < 4; k++)
            if (r->op != SP_OP_MATMUL && r->op != SP_OP_SLICE && !(in[k] = vname(b, x, r->in[k]))) return sp_last_status();
        node_t *n = NULL;
        switch (r->op) {
        case SP_OP_MATMUL: { /* op(a) op(b) (+ addend); a sequence only as an untransposed a (x W) */
            const sp_tensor *a0 = r->in[0], *b0 = r->in[1];
            if ((is_seq(x, a0) && r->iattr[0]) || is_seq(x, b0))
                REFUSE("op %s (node \"%s\") multiplies a sequence (\"%s\") other than as the left, "
                       "untransposed operand, which has no ONNX form here", op, nm, is_seq(x, b0) ? b0->name : a0->name);
            if (is_tcol(x, a0) || is_tcol(x, b0))
                REFUSE("op %s (node \"%s\") multiplies attention scores or weights, whose columns are "
                       "the time axis of the graph", op, nm);
            const char *a = operand(b, x, a0, r->iattr[0]), *w = operand(b, x, b0, r->iattr[1]);
            if (!a || !w) return b->failed ? SP_ERR_NOMEM : sp_last_status();
            o = OP2(b, "MatMul", a, w);
            if (r->n_in == 3) {
                const char *add = vname(b, x, r->in[2]);
                if (!add) return sp_last_status();
                o = OP2(b, "Add", o, add);
            }
            break;
        }
        case SP_OP_ADD: o = OP2(b, "Add", in[0], in[1]); break; /* spool's broadcasts (row, column, */
        case SP_OP_SUB: o = OP2(b, "Sub", in[0], in[1]); break; /* scalar) are ONNX's */
        case SP_OP_MUL: o = OP2(b, "Mul", in[0], in[1]); break;
        case SP_OP_SCALE: o = OP2(b, "Mul", in[0], scalar_f32(b, (sp_real)r->fattr[0])); break;
        case SP_OP_ONE_MINUS: o = OP2(b, "Sub", scalar_f32(b, 1), in[0]); break;
        case SP_OP_SIGMOID: o = op3(b, NULL, "Sigmoid", NULL, in[0], NULL, NULL); break;
        case SP_OP_TANH: o = op3(b, NULL, "Tanh", NULL, in[0], NULL, NULL); break;
        case SP_OP_RELU: o = op3(b, NULL, "Relu", NULL, in[0], NULL, NULL); break;
        case SP_OP_SOFTPLUS: o = op3(b, NULL, "Softplus", NULL, in[0], NULL, NULL); break;
        case SP_OP_SOFTMAX:
            o = op3(b, &n, "Softmax", NULL, in[0], NULL, NULL);
            attr_int(b, n, "axis", -1);
            break;
        case SP_OP_CONCAT: {
            const char **ins = ox_alloc(b, sizeof *ins * (size_t)r->n_in);
            for (int k = 0; ins && k < r->n_in; k++)
                if (!(ins[k] = vname(b, x, r->in[k]))) return sp_last_status();
            o = tmp(b, "Concat");
            n = ins ? node(b, "Concat", NULL, r->n_in, ins, 1, &o) : NULL;
            attr_int(b, n, "axis", -1);
            break;
        }
        case SP_OP_SLICE: { /* a view: columns of any node, rows of a parameter or constant */
            const sp_tensor *v = r->in[0];
            size_t off = r->out->offset;
            int r0 = (int)(off / (size_t)v->stride), c0 = (int)(off % (size_t)v->stride);
            const char *src = vname(b, x, v);
            if (!src) return sp_last_status();
            if (is_tcol(x, v))
                REFUSE("op %s (node \"%s\") takes columns of attention scores or weights, whose "
                       "columns are the time axis of the graph", op, nm);
            if (r->out->rows == v->rows) o = slice(b, src, -1, c0, r->out->cols);
            else if ((v->rows == x->batch || is_seq(x, v)) && !(v->flags & SP_PARAM))
                REFUSE("node \"%s\" takes rows of the batch (\"%s\"), which a graph with a free "
                       "batch axis cannot do", nm, v->name);
            else o = slice(b, r->out->cols == v->cols ? src : slice(b, src, -1, c0, r->out->cols), 0, r0, r->out->rows);
            break;
        }
        case SP_OP_LAYER_NORM: { /* LayerNormalization over the last axis; gain and bias as 1-D */
            const sp_tensor *g = r->iattr[0] ? r->in[1] : NULL, *bias = r->iattr[1] ? r->in[1 + r->iattr[0]] : NULL;
            int64_t C = r->out->cols;
            const char *flat = const_i64(b, "shape", 1, (int64_t[]){-1});
            const char *gn = g ? OP2(b, "Reshape", in[1], flat) : NULL, *bn = bias ? OP2(b, "Reshape", in[1 + !!g], flat) : NULL;
            if (!g) {
                float *ones = ox_alloc(b, sizeof(float) * (size_t)C);
                for (int64_t j = 0; ones && j < C; j++) ones[j] = 1;
                gn = ones ? init_f32(b, tmp(b, "ones"), 1, &C, ones) : NULL;
            }
            o = op3(b, &n, "LayerNormalization", NULL, in[0], gn, bn);
            attr_int(b, n, "axis", -1);
            attr_float(b, n, "epsilon", (float)SP_LN_EPS);
            break;
        }
        case SP_OP_LSTM_CELL: { /* in: a = xp [B, 4H] (+ hp), c [B, H] -> [h' | c'], gates i, f, g, o */
            const char *a = r->n_in == 3 ? OP2(b, "Add", in[0], in[2]) : in[0], *q[4];
            split_cols(b, a, 4, q);
            const char *ig = OP2(b, "Mul", op3(b, NULL, "Sigmoid", NULL, q[0], NULL, NULL), op3(b, NULL, "Tanh", NULL, q[2], NULL, NULL));
            const char *c2 = OP2(b, "Add", OP2(b, "Mul", op3(b, NULL, "Sigmoid", NULL, q[1], NULL, NULL), in[1]), ig);
            const char *h2 = OP2(b, "Mul", op3(b, NULL, "Sigmoid", NULL, q[3], NULL, NULL), op3(b, NULL, "Tanh", NULL, c2, NULL, NULL));
            o = op3(b, &n, "Concat", NULL, h2, c2, NULL);
            attr_int(b, n, "axis", -1);
            break;
        }
        case SP_OP_GRU_CELL: { /* in: xp, hp [B, 3H] (r, z, n), h [B, H], b_hn; h' = n + z (h - n) */
            const char *q[3], *p[3];
            split_cols(b, in[0], 3, q);
            split_cols(b, in[1], 3, p);
            const char *rg = op3(b, NULL, "Sigmoid", NULL, OP2(b, "Add", q[0], p[0]), NULL, NULL);
            const char *zg = op3(b, NULL, "Sigmoid", NULL, OP2(b, "Add", q[1], p[1]), NULL, NULL);
            const char *hn = r->n_in == 4 ? OP2(b, "Add", p[2], in[3]) : p[2];
            const char *ng = op3(b, NULL, "Tanh", NULL, OP2(b, "Add", q[2], OP2(b, "Mul", rg, hn)), NULL, NULL);
            o = OP2(b, "Add", ng, OP2(b, "Mul", zg, OP2(b, "Sub", in[2], ng)));
            break;
        }
        case SP_OP_EMBEDDING: { /* the ids are an input bound to the table (sp_onnx_value SP_ONNX_IDS) */
            int k = 0;
            while (k < x->n_ids && x->id_table[k] != r->in[0]) k++;
            if (k == x->n_ids)
                REFUSE("op %s (node \"%s\") looks up ids through table \"%s\", which no input of the "
                       "graph gives (bind the table as an SP_ONNX_IDS input)", op, nm, r->in[0]->name);
            if (r->out->rows != x->batch)
                REFUSE("op %s (node \"%s\") looks up %d ids; the ids input \"%s\" has the batch's "
                       "%d", op, nm, r->out->rows, x->id_name[k], x->batch);
            for (int j = x->from; j < i; j++) /* one input per table: every lookup through it read the same ids */
                if (t->rec[j].op == SP_OP_EMBEDDING && t->rec[j].in[0] == r->in[0] &&
                    (t->rec[j].out->rows != x->batch || memcmp(t->rec[j].saved, r->saved, sizeof(int) * (size_t)x->batch)))
                    REFUSE("op %s (node \"%s\") and node \"%s\" look up other ids through table "
                           "\"%s\", which one input (\"%s\") cannot give", op, nm, t->rec[j].out->name,
                           r->in[0]->name, x->id_name[k]);
            o = lookup(b, in[0], 0, x->id_name[k], 1);
            break;
        }
        case SP_OP_ATTN_DOT:        /* e[b][s] = q_b . k_{s,b}: [S, B, D] products summed over D */
        case SP_OP_ATTN_ADDITIVE: { /* e[b][s] = v . tanh(q_b + k_{s,b}) */
            if (!is_seq(x, r->in[1]) || r->in[0]->rows != x->batch || is_seq(x, r->in[0]))
                REFUSE("op %s (node \"%s\") needs keys that are a sequence of the graph (\"%s\" is "
                       "[%d x %d]; an SP_ONNX_SEQ input or made from one) and a query of the batch's rows", op,
                       nm, r->in[1]->name, r->in[1]->rows, r->in[1]->cols);
            const char *p = r->op == SP_OP_ATTN_DOT ? OP2(b, "Mul", in[1], in[0])
                                                    : OP2(b, "Mul", op3(b, NULL, "Tanh", NULL, OP2(b, "Add", in[1], in[0]), NULL, NULL), in[2]);
            o = sum_scores(b, p);
            if (x->tcol) x->tcol[i] = 1;
            break;
        }
        case SP_OP_ATTN_MASK: { /* step s of row b is a score iff s < length[b]; the rest -1e30, as spool */
            if (!x->lengths)
                REFUSE("op %s (node \"%s\") masks by lengths that no input of the graph gives "
                       "(sp_onnx_tape.lengths)", op, nm);
            const char *S = op3(b, &n, "Shape", NULL, in[0], NULL, NULL);
            attr_int(b, n, "start", 1), attr_int(b, n, "end", 2);
            const char *len = op3(b, &n, "Cast", NULL, x->lengths, NULL, NULL);
            attr_int(b, n, "to", I64);
            len = op3(b, NULL, "Where", NULL, OP2(b, "Less", len, scalar_i64(b, 0)), S, len); /* -1: the whole row */
            const char *steps = op3(b, NULL, "Range", NULL, scalar_i64(b, 0), OP2(b, "Squeeze", S, const_i64(b, "axes", 1, (int64_t[]){0})),
                                    scalar_i64(b, 1));
            const char *mask = OP2(b, "Less", OP2(b, "Unsqueeze", steps, const_i64(b, "axes", 1, (int64_t[]){0})),
                                   OP2(b, "Unsqueeze", len, const_i64(b, "axes", 1, (int64_t[]){1})));
            o = op3(b, NULL, "Where", NULL, mask, in[0], scalar_f32(b, -1e30));
            break;
        }
        case SP_OP_ATTN_CONTEXT: { /* c_b = sum_s a[b][s] v_{s,b}; a weight of 0 takes nothing (0 * Inf: padding) */
            if (!is_seq(x, r->in[1]) || r->in[0]->rows != x->batch || is_seq(x, r->in[0]))
                REFUSE("op %s (node \"%s\") needs values that are a sequence of the graph (\"%s\" is "
                       "[%d x %d]; an SP_ONNX_SEQ input or made from one) and weights of the batch's rows", op,
                       nm, r->in[1]->name, r->in[1]->rows, r->in[1]->cols);
            const char *a = op3(b, &n, "Transpose", NULL, in[0], NULL, NULL);
            attr_ints(b, n, "perm", 2, (int64_t[]){1, 0});
            a = OP2(b, "Unsqueeze", a, const_i64(b, "axes", 1, (int64_t[]){2})); /* [S, B, 1] */
            const char *p = op3(b, NULL, "Where", NULL, OP2(b, "Equal", a, scalar_f32(b, 0)), scalar_f32(b, 0), OP2(b, "Mul", a, in[1]));
            o = op3(b, &n, "ReduceSum", NULL, p, const_i64(b, "axes", 1, (int64_t[]){0}), NULL);
            attr_int(b, n, "keepdims", 0);
            break;
        }
        default:
            REFUSE("op %s (node \"%s\") has no ONNX mapping", op, nm);
        }
        if (!o) return b->failed ? SP_ERR_NOMEM : sp_last_status();
        for (int k = 0; x->tcol && r->op != SP_OP_ATTN_CONTEXT && k < r->n_in; k++) /* what scores make is by step too */
            if (is_tcol(x, r->in[k])) x->tcol[i] = 1;
        x->names[i] = o;
    }
    return b->failed ? SP_ERR_NOMEM : SP_OK;
}
#undef REFUSE

/* A fresh recording of cell c's step (project = 0) or input projection (1) on probe inputs of
 * NPROBE rows: the cell as the runners call it at evaluation (no dropout masks). in[0] is the
 * input, in[1..] the states; out receives the outputs. NULL with the message set on failure. */
static sp_tape *record(const sp_cell *c, int project, int in_cols, sp_tensor **in, sp_tensor **out, const char *where)
{
    sp_cell cc = *c;
    cc.h_mask = cc.cand_mask = NULL;
    sp_tape *t = sp_tape_new();
    if (!t) return sp_fail(SP_ERR_NOMEM, "sp_onnx_export: %s: out of memory", where), NULL;
    in[0] = sp_const(t, NPROBE, in_cols);
    for (int k = 0; !project && k < c->n_state; k++) in[1 + k] = sp_const(t, NPROBE, c->state_size[k]);
    if (project) out[0] = c->project(t, &cc, in[0]);
    else c->step(t, &cc, in[0], in + 1, out);
    if (sp_tape_status(t) != SP_OK || !out[0]) {
        sp_fail(sp_tape_status(t) ? sp_tape_status(t) : SP_ERR_ARG, "sp_onnx_export: %s: recording its %s failed: %s",
                where, project ? "input projection" : "step", sp_tape_errmsg(t));
        sp_tape_free(t);
        return NULL;
    }
    return t;
}

/* ------------------------------------------------------------------ the layers */

/* What every layer needs from the graph around it. */
typedef struct {
    const char *x;        /* [T, B, I] */
    const char *tb;       /* int64 [2]: T, B */
    const char *len;      /* int32 [B], every entry in [0, T] */
    const char *len_pos;  /* bool [1, B, 1]: length > 0 */
    const char *bdim;     /* int64 [1]: B */
    const char *tdim;     /* int64 [1]: T */
    const char *mask;     /* bool [T, B, 1]: step t is real for row b (made by the first Scan layer) */
    const char *len_rev;  /* int64 [B]: max(length, 1), for ReverseSequence (likewise) */
} layer_io;

/* Input "<h|c>0_l<l>" with a [D, 1, S] default (m->init or zeros), broadcast to [D, B, S]. */
static const char *state_input(ox *b, const sp_onnx_model *m, int l, int k, const layer_io *io)
{
    const sp_rnn *r = m->rnn;
    int D = r->bidirectional ? 2 : 1, S = r->cell[l][0].state_size[k];
    float *v = ox_alloc(b, sizeof(float) * (size_t)(D * S));
    if (!v) return NULL;
    for (int d = 0; d < D; d++) {
        const sp_tensor *t0 = m->init ? m->init->s[l][d][k] : NULL;
        for (int j = 0; t0 && j < S; j++) v[(size_t)d * S + j] = (float)*sp_at(t0, 0, j);
    }
    const char *name = ox_str(b, "%s0_l%d", k ? "c" : "h", l);
    int64_t dd[3] = {D, 1, S}, vd[3] = {D, -1, S};
    if (!init_f32(b, name, 3, dd, v) || !value(b, &b->inputs, name, F32, 3, vd, NULL)) return NULL;
    node_t *cat;
    const char *shape = op3(b, &cat, "Concat", NULL, const_i64(b, "dim", 1, (int64_t[]){D}), io->bdim,
                            const_i64(b, "dim", 1, (int64_t[]){S}));
    attr_int(b, cat, "axis", 0);
    return OP2(b, "Expand", name, shape);
}

/* The output "<h|c>n_l<l>" [D, batch, S]. */
static int state_output(ox *b, const char *name, int D, int S)
{
    int64_t vd[3] = {D, 0, S};
    const char *sym[3] = {NULL, "batch", NULL};
    return value(b, &b->outputs, name, F32, 3, vd, sym) != NULL;
}

/* The two directions' outputs [T, B, O] as the layer's merge says. */
static const char *merge(ox *b, sp_merge mg, const char *f, const char *bw)
{
    node_t *n;
    if (mg == SP_MERGE_CONCAT) {
        const char *o = op3(b, &n, "Concat", NULL, f, bw, NULL);
        attr_int(b, n, "axis", -1);
        return o;
    }
    const char *z = OP2(b, mg == SP_MERGE_MUL ? "Mul" : "Add", f, bw);
    return mg == SP_MERGE_MEAN ? OP2(b, "Mul", z, scalar_f32(b, 0.5)) : z;
}

/* Gate blocks of a spool weight [G, cols] (or bias [1, G] with bias = 1) in ONNX's order: block j
 * of direction d's slice of dst is spool's block perm[j] (H rows each), zeros for perm[j] < 0. */
static void put_gates(float *dst, const sp_tensor *w, int bias, int H, int cols, const int *perm, int nblk)
{
    for (int j = 0; j < nblk; j++)
        for (int r = 0; r < H; r++)
            for (int k = 0; k < cols; k++) {
                int g = perm[j] * H + r;
                dst[((size_t)j * H + r) * cols + k] = perm[j] < 0 ? 0.0f : (float)(bias ? *sp_at(w, 0, g) : *sp_at(w, g, k));
            }
}

/* Layer l as one LSTM/GRU/RNN node over both directions; returns its merged output [T, B, O']. */
static const char *op_layer_nodes(ox *b, const sp_onnx_model *m, int l, const layer_io *io)
{
    const sp_rnn *r = m->rnn;
    const sp_cell *c = &r->cell[l][0];
    const char *op = sp__onnx_op(c);
    int D = r->bidirectional ? 2 : 1, H = c->hidden_size, I = c->input_size;
    int lstm = c->kind == SP_CELL_LSTM, coupled = lstm && (c->lstm_flags & SP_LSTM_COUPLED);
    int peep = lstm && c->w_peep;
    int nblk;
    const int *pp, *perm = sp__onnx_gate_perm(c, &nblk, &pp);
    int64_t G = (int64_t)nblk * H;
    float *W = ox_alloc(b, sizeof(float) * (size_t)(D * G * I)), *R = ox_alloc(b, sizeof(float) * (size_t)(D * G * H));
    float *Bv = ox_alloc(b, sizeof(float) * (size_t)(D * 2 * G)), *P = peep ? ox_alloc(b, sizeof(float) * (size_t)(D * 3 * H)) : NULL;
    if (!W || !R || !Bv || (peep && !P)) return NULL;
    for (int d = 0; d < D; d++) {
        const sp_cell *cd = &r->cell[l][d];
        put_gates(W + (size_t)d * G * I, cd->w_ih, 0, H, I, perm, nblk);
        put_gates(R + (size_t)d * G * H, cd->w_hh, 0, H, H, perm, nblk);
        put_gates(Bv + (size_t)d * 2 * G, cd->b_ih, 1, H, 1, perm, nblk);
        put_gates(Bv + (size_t)d * 2 * G + G, cd->b_hh, 1, H, 1, perm, nblk);
        for (int j = 0; peep && j < 3; j++) /* rows of diagonals */
            for (int k = 0; k < H; k++) {
                int row = pp[j];
                P[(size_t)d * 3 * H + (size_t)j * H + k] = row < 0 ? 0.0f : (float)*sp_at(cd->w_peep, row, k);
            }
    }
    int64_t dw[3] = {D, G, I}, dr[3] = {D, G, H}, db[2] = {D, 2 * G}, dp[2] = {D, 3 * H};
    const char *wn = init_f32(b, ox_str(b, "%s.W", c->name), 3, dw, W);
    const char *rn = init_f32(b, ox_str(b, "%s.R", c->name), 3, dr, R);
    const char *bn = init_f32(b, ox_str(b, "%s.B", c->name), 2, db, Bv);
    const char *pn = peep ? init_f32(b, ox_str(b, "%s.P", c->name), 2, dp, P) : NULL;
    const char *s0[2] = {NULL, NULL}, *sn[2] = {NULL, NULL};
    for (int k = 0; k < c->n_state; k++) {
        s0[k] = state_input(b, m, l, k, io);
        sn[k] = tmp(b, k ? "Y_c" : "Y_h");
    }
    const char *y = tmp(b, "Y");
    const char *in[8] = {io->x, wn, rn, bn, io->len, s0[0], s0[1], pn};
    const char *outs[3] = {y, sn[0], sn[1]};
    node_t *n = node(b, op, c->name, lstm ? (peep ? 8 : 7) : 6, in, lstm ? 3 : 2, outs);
    attr_int(b, n, "hidden_size", H);
    attr_int(b, n, "layout", 0);
    const char *dir = D == 2 ? "bidirectional" : "forward";
    attr_strs(b, n, "direction", 1, &dir, 0);
    if (lstm && coupled) attr_int(b, n, "input_forget", 1);
    if (c->kind == SP_CELL_GRU_RESET_AFTER_MATMUL) attr_int(b, n, "linear_before_reset", 1);
    if (!strcmp(op, "RNN")) {
        const char *act[2] = {c->kind == SP_CELL_RNN_RELU ? "Relu" : "Tanh", c->kind == SP_CELL_RNN_RELU ? "Relu" : "Tanh"};
        attr_strs(b, n, "activations", D, act, 1);
    }
    /* final states; a row of length 0 keeps its initial state (ONNX Runtime gives zeros there) */
    for (int k = 0; k < c->n_state; k++) {
        const char *in3[3] = {io->len_pos, sn[k], s0[k]}, *fin = ox_str(b, "%sn_l%d", k ? "c" : "h", l);
        if (!fin || !node(b, "Where", NULL, 3, in3, 1, &fin) || !state_output(b, fin, D, c->state_size[k])) return NULL;
    }
    /* Y [T, D, B, H] -> [T, B, O'] */
    if (D == 1) return OP2(b, "Squeeze", y, const_i64(b, "axes", 1, (int64_t[]){1}));
    const char *halves[2] = {tmp(b, "fwd"), tmp(b, "bwd")};
    node_t *sp = node(b, "Split", NULL, 1, &y, 2, halves);
    attr_int(b, sp, "axis", 1);
    const char *axes = const_i64(b, "axes", 1, (int64_t[]){1});
    return merge(b, r->merge, OP2(b, "Squeeze", halves[0], axes), OP2(b, "Squeeze", halves[1], axes));
}

/* Cell c's input projection of every step: x [T, B, I] -> [T, B, G] through the recorded
 * project(), or x itself for a cell without one. */
static const char *project_seq(ox *b, const sp_cell *c, const layer_io *io, const char *where, sp_status *st)
{
    if (!c->project) return io->x;
    sp_tensor *in[1], *out[1] = {NULL};
    sp_tape *t = record(c, 1, c->input_size, in, out, where);
    if (!t) return *st = sp_last_status(), NULL;
    xl x = {.t = t, .names = ox_alloc(b, sizeof(char *) * (size_t)sp_tape_count(t)), .who = "sp_onnx_export", .where = where, .batch = NPROBE};
    const char *y = NULL;
    if (x.names) {
        x.names[in[0]->id] = OP2(b, "Reshape", io->x, const_i64(b, "shape", 2, (int64_t[]){-1, c->input_size}));
        if ((*st = translate(b, &x)) == SP_OK && (y = vname(b, &x, out[0]))) {
            node_t *n;
            const char *shape = op3(b, &n, "Concat", NULL, io->tb, const_i64(b, "dim", 1, (int64_t[]){out[0]->cols}), NULL);
            attr_int(b, n, "axis", 0);
            y = OP2(b, "Reshape", y, shape);
        }
    }
    if (!y && *st == SP_OK) *st = b->failed ? SP_ERR_NOMEM : sp_last_status();
    sp_tape_free(t);
    return y;
}

/* io->mask (step t of row b is real iff t < len[b]: [T, B, 1]) and io->len_rev (max(len, 1),
 * int64), made once for the graph by whichever needs them first. */
static void make_mask(ox *b, layer_io *io)
{
    if (io->mask) return;
    node_t *n;
    const char *t32 = op3(b, &n, "Cast", NULL, io->tdim, NULL, NULL);
    attr_int(b, n, "to", I32);
    const char *zero = tmp(b, "zero"), *one = tmp(b, "one");
    uint8_t *raw;
    if (init_raw(b, zero, I32, 0, NULL, 4, &raw)) put_le(raw, 0, 4);
    if (init_raw(b, one, I32, 0, NULL, 4, &raw)) put_le(raw, 1, 4);
    const char *range = op3(b, NULL, "Range", NULL, zero, OP2(b, "Squeeze", t32, const_i64(b, "axes", 1, (int64_t[]){0})), one);
    const char *lt = OP2(b, "Less", OP2(b, "Unsqueeze", range, const_i64(b, "axes", 1, (int64_t[]){1})),
                         OP2(b, "Unsqueeze", io->len, const_i64(b, "axes", 1, (int64_t[]){0})));
    io->mask = OP2(b, "Unsqueeze", lt, const_i64(b, "axes", 1, (int64_t[]){2}));
    const char *len1 = OP2(b, "Max", io->len, one);
    io->len_rev = op3(b, &n, "Cast", NULL, len1, NULL, NULL);
    attr_int(b, n, "to", I64);
}

/* A Scan over cell c's recorded step: xp [T, B, G] and the masks in, states s0[k] [B, S] from;
 * the final states into sn[k], the outputs [T, B, O] returned. As sp_seq_run at evaluation:
 * zoneout (rates nz, may be NULL) keeps the expectation s = s' + (1 - z) (s_new - s'), and steps
 * past a row's length keep its state and give a zero row (Where on the step's mask). */
static const char *scan(ox *b, const sp_cell *c, const char *xp, const layer_io *io, const sp_cell_noise *nz,
                        const char *const *s0, const char **sn, const char *where, sp_status *st)
{
    sp_tensor *in[1 + SP_CELL_MAX_STATE], *out[SP_CELL_MAX_STATE] = {NULL, NULL};
    int cols = c->project ? c->gate_size : c->input_size;
    sp_tape *t = record(c, 0, cols, in, out, where);
    if (!t) return *st = sp_last_status(), NULL;
    plist body = {0}, bin = {0}, bout = {0}, *outer = b->cur;
    b->cur = &body;
    xl x = {.t = t, .names = ox_alloc(b, sizeof(char *) * (size_t)sp_tape_count(t)), .who = "sp_onnx_export", .where = where, .batch = NPROBE};
    const char *y = NULL, *names[2 * SP_CELL_MAX_STATE + 2];
    int n_state = c->n_state;
    int64_t unk[2] = {-1, -1};
    if (x.names) {
        for (int k = 0; k < n_state; k++) {
            x.names[in[1 + k]->id] = tmp(b, k ? "c" : "h");
            value(b, &bin, x.names[in[1 + k]->id], F32, 2, unk, NULL);
        }
        x.names[in[0]->id] = tmp(b, "x_t");
        const char *m_t = tmp(b, "mask_t");
        value(b, &bin, x.names[in[0]->id], F32, 2, unk, NULL);
        value(b, &bin, m_t, BOOL, 2, unk, NULL);
        if ((*st = translate(b, &x)) == SP_OK) {
            int ok = 1;
            const char *fresh[SP_CELL_MAX_STATE] = {NULL, NULL};
            for (int k = 0; ok && k < n_state; k++) {
                const char *old = x.names[in[1 + k]->id];
                double z = nz ? (k ? nz->zoneout_c : nz->zoneout_h) : 0;
                ok = (fresh[k] = vname(b, &x, out[k])) != NULL;
                if (ok && z > 0)
                    fresh[k] = OP2(b, "Add", old, OP2(b, "Mul", OP2(b, "Sub", fresh[k], old), scalar_f32(b, (sp_real)(1 - z))));
                const char *w3[3] = {m_t, fresh[k], old}; /* a padded step keeps the state */
                names[k] = tmp(b, k ? "c_next" : "h_next");
                ok = ok && node(b, "Where", NULL, 3, w3, 1, &names[k]) && value(b, &bout, names[k], F32, 2, unk, NULL);
            }
            const char *h = fresh[0], *w3[3] = {m_t, h, scalar_f32(b, 0)};
            names[n_state] = tmp(b, "y_t"); /* and gives a zero row */
            if (ok && h && node(b, "Where", NULL, 3, w3, 1, &names[n_state]) &&
                value(b, &bout, names[n_state], F32, 2, unk, NULL))
                y = names[n_state];
        }
    }
    b->cur = outer;
    SpOnnx__GraphProto *g = ox_alloc(b, sizeof *g);
    if (y && g) { /* the Scan node: states, then the two scan inputs; final states, then y */
        sp_onnx__graph_proto__init(g);
        g->name = (char *)tmp(b, "step");
        /* the body's arrays live as long as the export: copied into builder memory */
        void **nv = ox_alloc(b, sizeof *nv * (body.n ? body.n : 1)), **iv = ox_alloc(b, sizeof *iv * bin.n),
             **ov = ox_alloc(b, sizeof *ov * bout.n);
        if (nv && iv && ov) {
            memcpy(nv, body.v, sizeof *nv * body.n), memcpy(iv, bin.v, sizeof *iv * bin.n), memcpy(ov, bout.v, sizeof *ov * bout.n);
            g->n_node = body.n, g->node = (node_t **)nv;
            g->n_input = bin.n, g->input = (value_t **)iv;
            g->n_output = bout.n, g->output = (value_t **)ov;
            const char *sin[SP_CELL_MAX_STATE + 2], *sout[SP_CELL_MAX_STATE + 1];
            for (int k = 0; k < n_state; k++) sin[k] = s0[k], sout[k] = sn[k] = tmp(b, k ? "c_last" : "h_last");
            sin[n_state] = xp, sin[n_state + 1] = io->mask;
            sout[n_state] = y = tmp(b, "Y");
            node_t *n = node(b, "Scan", c->name, n_state + 2, sin, n_state + 1, sout);
            attr_int(b, n, "num_scan_inputs", 2);
            attr_t *a = attr(b, n, "body", SP_ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
            if (a) a->g = g;
        }
    } else if (*st == SP_OK) *st = b->failed ? SP_ERR_NOMEM : sp_last_status();
    free(body.v), free(bin.v), free(bout.v);
    sp_tape_free(t);
    if (b->failed) *st = SP_ERR_NOMEM;
    return *st == SP_OK ? y : NULL;
}

/* Layer l as a Scan per direction over its cells' recorded steps (any cell: built-in kinds
 * without an ONNX operator, custom cells). The backward direction runs the Scan on each row
 * reversed within its length (ReverseSequence) and reverses its outputs back, so it starts at
 * the row's real end as sp_bidir_run does. */
static const char *scan_layer(ox *b, const sp_onnx_model *m, int l, layer_io *io, sp_status *st)
{
    const sp_rnn *r = m->rnn;
    int D = r->bidirectional ? 2 : 1, n_state = r->cell[l][0].n_state;
    node_t *n;
    make_mask(b, io);
    const char *s0x[SP_CELL_MAX_STATE], *fin[2][SP_CELL_MAX_STATE] = {{NULL}}, *y[2] = {NULL, NULL};
    for (int k = 0; k < n_state; k++) s0x[k] = state_input(b, m, l, k, io);
    for (int d = 0; d < D; d++) {
        const sp_cell *c = &r->cell[l][d];
        char where[160];
        snprintf(where, sizeof where, "layer %d (cell \"%s\", %s)", l, c->name, sp_cell_kind_name(c));
        const char *xp = project_seq(b, c, io, where, st), *s0[SP_CELL_MAX_STATE];
        if (!xp) return NULL;
        if (d) {
            xp = op3(b, &n, "ReverseSequence", NULL, xp, io->len_rev, NULL);
            attr_int(b, n, "batch_axis", 1), attr_int(b, n, "time_axis", 0);
        }
        uint8_t *raw;
        const char *dir = init_raw(b, tmp(b, "dir"), I64, 0, NULL, 8, &raw); /* a scalar index drops the axis */
        if (dir) put_le(raw, (uint64_t)d, 8);
        for (int k = 0; k < n_state; k++) {
            s0[k] = op3(b, &n, "Gather", NULL, s0x[k], dir, NULL);
            attr_int(b, n, "axis", 0);
        }
        if (!(y[d] = scan(b, c, xp, io, m->noise, s0, fin[d], where, st))) return NULL;
        if (d) {
            y[d] = op3(b, &n, "ReverseSequence", NULL, y[d], io->len_rev, NULL);
            attr_int(b, n, "batch_axis", 1), attr_int(b, n, "time_axis", 0);
        }
    }
    const char *axis0 = const_i64(b, "axes", 1, (int64_t[]){0});
    for (int k = 0; k < n_state; k++) { /* [B, S] per direction -> [D, B, S] */
        const char *name = ox_str(b, "%sn_l%d", k ? "c" : "h", l);
        if (D == 1) op3(b, NULL, "Unsqueeze", name, fin[0][k], axis0, NULL);
        else {
            op3(b, &n, "Concat", name, OP2(b, "Unsqueeze", fin[0][k], axis0), OP2(b, "Unsqueeze", fin[1][k], axis0), NULL);
            attr_int(b, n, "axis", 0);
        }
        if (!state_output(b, name, D, r->cell[l][0].state_size[k])) return NULL;
    }
    return D == 1 ? y[0] : merge(b, r->merge, y[0], y[1]);
}

/* One vector per row from the stack's output y [T, B, O] (zero rows past each row's length) as
 * m->pool says, [B, *O]: the last layer's final h, directions concatenated (the forward one after
 * the row's last real step, the backward one after step 0); or the mean (sp_seq_mean) or max
 * (sp_seq_max) over the row's real steps, zeros for a row of length 0 as there. */
static const char *pool_rows(ox *b, const sp_onnx_model *m, layer_io *io, const char *y, int *O)
{
    const sp_rnn *r = m->rnn;
    node_t *n;
    if (m->pool == SP_ONNX_POOL_LAST) {
        int L = r->num_layers - 1, D = r->bidirectional ? 2 : 1, S = r->cell[L][0].state_size[0];
        const char *h = op3(b, &n, "Transpose", NULL, ox_str(b, "hn_l%d", L), NULL, NULL); /* [D, B, S] -> [B, D, S] */
        attr_ints(b, n, "perm", 3, (int64_t[]){1, 0, 2});
        *O = D * S;
        return OP2(b, "Reshape", h, const_i64(b, "shape", 2, (int64_t[]){0, D * S}));
    }
    make_mask(b, io);
    const char *axes1 = const_i64(b, "axes", 1, (int64_t[]){1});
    if (m->pool == SP_ONNX_POOL_MEAN) {
        const char *sum = op3(b, &n, "ReduceSum", NULL, y, const_i64(b, "axes", 1, (int64_t[]){0}), NULL);
        attr_int(b, n, "keepdims", 0);
        const char *cnt = op3(b, &n, "Cast", NULL, OP2(b, "Unsqueeze", io->len_rev, axes1), NULL, NULL);
        attr_int(b, n, "to", F32);
        return OP2(b, "Div", sum, cnt);
    }
    const char *masked = op3(b, NULL, "Where", NULL, io->mask, y, scalar_f32(b, -3.0e38));
    const char *mx = op3(b, &n, "ReduceMax", NULL, masked, NULL, NULL);
    attr_ints(b, n, "axes", 1, (int64_t[]){0});
    attr_int(b, n, "keepdims", 0);
    const char *pos = OP2(b, "Unsqueeze", OP2(b, "Greater", io->len, init_i32(b, tmp(b, "zero"), 1, (int32_t[]){0})), axes1);
    return op3(b, NULL, "Where", NULL, pos, mx, scalar_f32(b, 0));
}

/* ------------------------------------------------------------- recorded graphs */

/* The graph value a post's input names (sp_onnx_model.post): "y" the stack's output y (a
 * sequence), "hn_l<k>" / "cn_l<k>" layer k's final states [D, B, S] as rows [B, D*S]; with b NULL
 * only checked (*cols: the columns it has). NULL if the name is none of those. */
static const char *post_value(ox *b, const sp_onnx_model *m, const sp_onnx_value *v, const char *y, int *cols)
{
    const sp_rnn *r = m->rnn;
    int D = r->bidirectional ? 2 : 1, l = -1, end = 0;
    if (!strcmp(v->name, "y")) {
        *cols = sp_rnn_out_size(r);
        return v->kind == SP_ONNX_SEQ ? (b ? y : "y") : NULL;
    }
    if (v->kind != SP_ONNX_ROWS || !strchr("hc", v->name[0]) || sscanf(v->name + 1, "n_l%d%n", &l, &end) != 1 ||
        v->name[1 + end] || l < 0 || l >= r->num_layers || (v->name[0] == 'c' && r->cell[l][0].n_state < 2))
        return NULL;
    int S = r->cell[l][0].state_size[v->name[0] == 'c'];
    *cols = D * S;
    if (!b) return v->name;
    node_t *n;
    const char *h = op3(b, &n, "Transpose", NULL, v->name, NULL, NULL); /* [D, B, S] -> [B, D, S] -> [B, D*S] */
    attr_ints(b, n, "perm", 3, (int64_t[]){1, 0, 2});
    return OP2(b, "Reshape", h, const_i64(b, "shape", 2, (int64_t[]){0, D * S}));
}

/* The nodes of recorded graph g (checked by check_tape) into b->cur: its inputs are the graph
 * values val[i] (for SP_ONNX_IDS, the int64 ids), bdim the batch (int64 [1]) and lengths the
 * lengths its attention masks read (or NULL); its outputs become outputs of the graph. Only the
 * records the outputs depend on are translated, back to the bound inputs. */
static sp_status tape_nodes(ox *b, const sp_onnx_tape *g, const char *const *val, const char *bdim,
                            const char *lengths, const char *who, const char *where)
{
    sp_tape *t = g->tape;
    int n = t->n_rec, n_ids = 0;
    const char **names = ox_alloc(b, sizeof(char *) * (size_t)(n ? n : 1));
    unsigned char *need = ox_alloc(b, (size_t)(n ? n : 1)), *tcol = ox_alloc(b, (size_t)(n ? n : 1));
    const sp_tensor **tab = ox_alloc(b, sizeof *tab * (size_t)(g->n_in ? g->n_in : 1));
    const char **tname = ox_alloc(b, sizeof *tname * (size_t)(g->n_in ? g->n_in : 1));
    if (!names || !need || !tcol || !tab || !tname) return SP_ERR_NOMEM;
    for (int i = 0; i < g->n_in; i++) {
        const sp_onnx_value *v = &g->in[i];
        if (v->kind == SP_ONNX_IDS) tab[n_ids] = v->node, tname[n_ids++] = val[i];
        else names[v->node->id] = val[i];
    }
    for (int i = 0; i < g->n_out; i++) need[g->out[i].node->id] = 1;
    for (int i = n - 1; i >= 0; i--) { /* what the outputs need, back to the inputs */
        const sp_record *r = &t->rec[i];
        for (int k = 0; need[i] && !names[i] && k < r->n_in; k++)
            if (!(r->in[k]->flags & SP_PARAM) && r->in[k]->id >= 0 && r->in[k]->id < i) need[r->in[k]->id] = 1;
    }
    xl x = {.t = t, .names = names, .who = who, .where = where, .batch = g->batch, .seq_rows = g->steps * g->batch,
            .need = need, .tcol = tcol, .bdim = bdim, .lengths = lengths, .n_ids = n_ids, .id_table = tab,
            .id_name = tname};
    sp_status st = translate(b, &x);
    for (int i = 0; st == SP_OK && i < g->n_out; i++) {
        const sp_onnx_value *v = &g->out[i];
        const char *src = vname(b, &x, v->node);
        int seq = v->kind == SP_ONNX_SEQ, tc = is_tcol(&x, v->node);
        int64_t d[3] = {0, tc ? 0 : v->node->cols, v->node->cols};
        const char *sym[3] = {seq ? "time" : "batch", seq ? "batch" : "time", NULL};
        if (!src) st = sp_last_status();
        else if (!op3(b, NULL, "Identity", v->name, src, NULL, NULL) ||
                 !value(b, &b->outputs, v->name, F32, seq ? 3 : 2, d, sym))
            st = SP_ERR_NOMEM;
    }
    return b->failed ? SP_ERR_NOMEM : st;
}

/* ------------------------------------------------------------------ the graph */

static sp_status build(ox *b, const sp_onnx_model *m)
{
    const sp_rnn *r = m->rnn;
    int tokens = m->embed || m->one_hot, I = r->cell[0][0].input_size;
    /* the input and the sizes it gives */
    const char *x0 = tokens ? "ids" : "x";
    int64_t dx[3] = {0, 0, I};
    if (!value(b, &b->inputs, x0, tokens ? I64 : F32, tokens ? 2 : 3, dx, TB)) return SP_ERR_NOMEM;
    node_t *n;
    const char *tb = op3(b, &n, "Shape", NULL, x0, NULL, NULL);
    attr_int(b, n, "end", 2);
    const char *tdim = op3(b, &n, "Shape", NULL, x0, NULL, NULL);
    attr_int(b, n, "end", 1);
    const char *bdim = op3(b, &n, "Shape", NULL, x0, NULL, NULL);
    attr_int(b, n, "start", 1), attr_int(b, n, "end", 2);

    const char *x = x0;
    for (int k = 0; tokens && k <= m->n_extra; k++) { /* ids < 0 are zero rows, as in sp_embed_forward */
        const char *in = k ? m->extra_names[k - 1] : x0;
        if (k && !value(b, &b->inputs, in, I64, 2, dx, TB)) return SP_ERR_NOMEM;
        const char *part = lookup(b, m->embed ? init_tensor(b, (k ? m->extra[k - 1] : m->embed)->weight, 0) : NULL,
                                  m->one_hot, in, 2);
        if (!k) x = part;
        else {
            x = op3(b, &n, "Concat", NULL, x, part, NULL); /* the tables' columns side by side */
            attr_int(b, n, "axis", -1);
        }
    }
    /* lengths: -1 (the default, also what a caller feeds for "all") is the whole sequence */
    int64_t dl[1] = {-1};
    if (!init_i32(b, "lengths", 1, (int32_t[]){-1}) || !value(b, &b->inputs, "lengths", I32, 1, dl, NULL))
        return SP_ERR_NOMEM;
    const char *zero32 = init_i32(b, tmp(b, "zero"), 1, (int32_t[]){0});
    const char *lenb = OP2(b, "Expand", "lengths", bdim);
    const char *t32 = op3(b, &n, "Cast", NULL, tdim, NULL, NULL);
    attr_int(b, n, "to", I32);
    const char *len = op3(b, NULL, "Where", NULL, OP2(b, "Less", lenb, zero32), t32, lenb);
    const char *len_pos = OP2(b, "Unsqueeze", OP2(b, "Greater", len, zero32), const_i64(b, "axes", 2, (int64_t[]){0, 2}));

    layer_io io = {x, tb, len, len_pos, bdim, tdim, NULL, NULL};
    sp_status st = SP_OK;
    for (int l = 0; l < r->num_layers && !b->failed && st == SP_OK; l++)
        io.x = op_layer(m, l) ? op_layer_nodes(b, m, l, &io) : scan_layer(b, m, l, &io, &st);
    if (st != SP_OK) return st;
    const char *y = io.x, *stack_y = io.x;
    int O = sp_rnn_out_size(r), pooled = m->pool != SP_ONNX_POOL_NONE;
    static const char *const BATCH[2] = {"batch", NULL}; /* the named axis of [batch, C] */
    const char *const *axes = pooled ? BATCH : TB;
    int nd = pooled ? 2 : 3;
    if (pooled) y = pool_rows(b, m, &io, y, &O);
    if (!m->head) {
        int64_t dy[3] = {0, 0, 0};
        dy[nd - 1] = O;
        if (!op3(b, NULL, "Identity", "y", y, NULL, NULL) || !value(b, &b->outputs, "y", F32, nd, dy, axes)) return SP_ERR_NOMEM;
    } else {
        int V = m->head->out;
        const char *rows = pooled ? y : OP2(b, "Reshape", y, const_i64(b, "shape", 2, (int64_t[]){-1, O}));
        const char *z = op3(b, &n, "Gemm", pooled ? "logits" : NULL, rows, init_tensor(b, m->head->weight, 0),
                            m->head->bias ? init_tensor(b, m->head->bias, 1) : NULL);
        attr_int(b, n, "transB", 1);
        int64_t dz[3] = {0, 0, 0};
        dz[nd - 1] = V;
        if (!pooled) {
            const char *shape = op3(b, &n, "Concat", NULL, tb, const_i64(b, "dim", 1, (int64_t[]){V}), NULL);
            attr_int(b, n, "axis", 0);
            if (!op3(b, NULL, "Reshape", "logits", z, shape, NULL)) return SP_ERR_NOMEM;
        }
        if (!value(b, &b->outputs, "logits", F32, nd, dz, axes)) return SP_ERR_NOMEM;
        if (m->softmax || m->sigmoid) {
            op3(b, &n, m->sigmoid ? "Sigmoid" : "Softmax", "probs", "logits", NULL, NULL);
            if (!m->sigmoid) attr_int(b, n, "axis", -1);
            if (!value(b, &b->outputs, "probs", F32, nd, dz, axes)) return SP_ERR_NOMEM;
        }
    }
    for (int k = 0; k < m->n_consts; k++) { /* tensors of the model as outputs (e.g. a CRF's transitions) */
        const sp_tensor *c = m->consts[k];
        int64_t dc[2] = {c->rows, c->cols};
        float *v = ox_alloc(b, sizeof(float) * (size_t)c->rows * (size_t)c->cols);
        for (int i = 0; v && i < c->rows; i++)
            for (int j = 0; j < c->cols; j++) v[(size_t)i * c->cols + j] = (float)*sp_at(c, i, j);
        /* an initializer of its own name: the tensor's may be any (a tape's constants are all "const") */
        const char *init = v ? init_f32(b, ox_str(b, "%s.value", m->const_names[k]), 2, dc, v) : NULL;
        if (!init || !op3(b, NULL, "Identity", m->const_names[k], init, NULL, NULL) ||
            !value(b, &b->outputs, m->const_names[k], F32, 2, dc, NULL))
            return SP_ERR_NOMEM;
    }
    if (m->post) { /* a computation of the stack's values, e.g. an encoder's bridge to its decoder */
        const sp_onnx_tape *p = m->post;
        const char *val[SP_ONNX_MAX_BIND];
        int cols;
        for (int i = 0; i < p->n_in; i++)
            if (!(val[i] = post_value(b, m, &p->in[i], stack_y, &cols))) return SP_ERR_NOMEM;
        if ((st = tape_nodes(b, p, val, bdim, len, "sp_onnx_export", "post")) != SP_OK) return st;
    }
    return b->failed ? SP_ERR_NOMEM : SP_OK;
}

int sp_onnx_available(void) { return 1; }

/* Packs the graph g that b built, with metadata (key, value, ..., NULL), into an ONNX model and
 * writes it to path atomically; st is how the build went (SP_ERR_NOMEM: out of memory, said
 * here). Frees everything b holds. */
static sp_status write_model(ox *b, SpOnnx__GraphProto *g, sp_status st, const char *const *metadata,
                             const char *path, const char *who)
{
    SpOnnx__ModelProto model = SP_ONNX__MODEL_PROTO__INIT;
    SpOnnx__OperatorSetIdProto opset = SP_ONNX__OPERATOR_SET_ID_PROTO__INIT, *ops[1] = {&opset};
    uint8_t *buf = NULL;
    if (st == SP_OK) {
        g->name = "spool";
        g->n_node = b->nodes.n, g->node = (node_t **)b->nodes.v;
        g->n_initializer = b->inits.n, g->initializer = (tensor_t **)b->inits.v;
        g->n_input = b->inputs.n, g->input = (value_t **)b->inputs.v;
        g->n_output = b->outputs.n, g->output = (value_t **)b->outputs.v;
        opset.domain = "", opset.has_version = 1, opset.version = SP_ONNX_OPSET;
        model.has_ir_version = 1, model.ir_version = SP_ONNX_IR_VERSION;
        model.n_opset_import = 1, model.opset_import = ops;
        model.producer_name = "spool", model.producer_version = (char *)sp_version();
        model.graph = g;
        size_t nmeta = 0;
        while (metadata && metadata[2 * nmeta]) nmeta++;
        SpOnnx__StringStringEntryProto **kv = ox_alloc(b, sizeof *kv * nmeta);
        for (size_t i = 0; kv && i < nmeta; i++)
            if ((kv[i] = ox_alloc(b, sizeof **kv))) {
                sp_onnx__string_string_entry_proto__init(kv[i]);
                kv[i]->key = (char *)metadata[2 * i], kv[i]->value = (char *)metadata[2 * i + 1];
            }
        model.n_metadata_props = nmeta, model.metadata_props = kv;
        size_t len = b->failed ? 0 : sp_onnx__model_proto__get_packed_size(&model);
        buf = b->failed ? NULL : malloc(len ? len : 1);
        if (!buf) st = sp_fail(SP_ERR_NOMEM, "%s: '%s': out of memory (%zu bytes)", who, path, len);
        else {
            sp_onnx__model_proto__pack(&model, buf);
            sp_file *f = sp__file_begin(path, who);
            if (!f) st = sp_last_status();
            else if (fwrite(buf, 1, len, sp_file_stream(f)) != len) {
                sp_file_abort(f);
                st = sp_fail(SP_ERR_IO, "%s: cannot write '%s'", who, path);
            } else st = sp_file_commit(f);
        }
    } else if (st == SP_ERR_NOMEM) st = sp_fail(SP_ERR_NOMEM, "%s: '%s': out of memory building the graph", who, path);
    free(buf);
    for (size_t i = 0; i < b->mem.n; i++) free(b->mem.v[i]);
    free(b->mem.v), free(b->nodes.v), free(b->inits.v), free(b->inputs.v), free(b->outputs.v);
    free(b->params.v), free(b->pnames.v);
    return st;
}

sp_status sp_onnx_export(const sp_onnx_model *m, const char *path)
{
    if (!m || !path) return sp_fail(SP_ERR_ARG, "sp_onnx_export: %s is NULL", m ? "path" : "the model");
    sp_status s = check_model(m);
    if (s) return s;
    ox b = {0};
    b.cur = &b.nodes;
    SpOnnx__GraphProto g = SP_ONNX__GRAPH_PROTO__INIT;
    return write_model(&b, &g, build(&b, m), m->metadata, path, "sp_onnx_export");
}

sp_status sp_onnx_export_tape(const sp_onnx_tape *g, const char *path)
{
    const char *who = "sp_onnx_export_tape";
    if (!g || !path) return sp_fail(SP_ERR_ARG, "%s: %s is NULL", who, g ? "path" : "the recording");
    sp_status s = check_tape(g, who, NULL, 0);
    for (const char *const *kv = g->metadata; s == SP_OK && kv && *kv; kv += 2)
        if (!kv[1]) s = sp_fail(SP_ERR_ARG, "%s: metadata key \"%s\" has no value (NULL)", who, kv[0]);
    if (s) return s;
    ox b = {0};
    b.cur = &b.nodes;
    SpOnnx__GraphProto graph = SP_ONNX__GRAPH_PROTO__INIT;
    const char *val[SP_ONNX_MAX_BIND], *bdim = NULL, *const ROW[2] = {"batch", NULL};
    for (int i = 0; i < g->n_in; i++) { /* the inputs, and the batch from the first */
        const sp_onnx_value *v = &g->in[i];
        int seq = v->kind == SP_ONNX_SEQ, ids = v->kind == SP_ONNX_IDS;
        int64_t d[3] = {0, seq ? 0 : v->node->cols, v->node->cols};
        node_t *n;
        val[i] = v->name;
        if (!value(&b, &b.inputs, v->name, ids ? I64 : F32, ids ? 1 : seq ? 3 : 2, d, seq ? TB : ROW)) break;
        if (!bdim && (bdim = op3(&b, &n, "Shape", NULL, v->name, NULL, NULL)))
            attr_int(&b, n, "start", seq), attr_int(&b, n, "end", seq + 1);
    }
    int64_t dl[1] = {-1};
    if (g->lengths && (!init_i32(&b, g->lengths, 1, (int32_t[]){-1}) || !value(&b, &b.inputs, g->lengths, I32, 1, dl, NULL)))
        b.failed = 1;
    s = b.failed ? SP_ERR_NOMEM : tape_nodes(&b, g, val, bdim, g->lengths, who, "the recorded graph");
    return write_model(&b, &graph, s, g->metadata, path, who);
}
