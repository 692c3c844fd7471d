/* SPDX-License-Identifier: MIT */
/* export.c - sp_onnx_export (include/spool/onnx.h): a model's inference graph as an ONNX file.
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
 *   - each layer is one LSTM/GRU/RNN node with layout 0 (time-major; ONNX Runtime's CPU kernel
 *     refuses layout 1) and sequence_lens; its weights are spool's with the gate blocks reordered;
 *   - ONNX Runtime gives a final state of zeros for a row of length 0 where spool (and the
 *     definition: no step read) keeps the initial state, so every final state passes a Where on
 *     length > 0 (tests/test_onnx.py checks it);
 *   - the head is a Gemm with transB on the [time*batch, O] rows, so its weight keeps spool's
 *     (PyTorch's) layout and name.
 * Anything else is refused before a byte is written (check_model). */
#include "sp_onnx.pb-c.h"
#include "../autograd/file_internal.h"
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
    return push(b, &b->nodes, n) ? NULL : n;
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
    memcpy(d, dims, sizeof *d * (size_t)ndim);
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

/* A spool tensor [rows, cols] as a float initializer of its own name; as_vector: 1-D [rows*cols]. */
static const char *init_tensor(ox *b, const sp_tensor *x, int as_vector)
{
    uint8_t *raw;
    int64_t dims[2] = {x->rows, x->cols}, n = (int64_t)x->rows * x->cols;
    const char *name = ox_str(b, "%s", x->name);
    if (!init_raw(b, name, F32, as_vector ? 1 : 2, as_vector ? &n : dims, 4, &raw)) return NULL;
    for (int i = 0; i < x->rows; i++)
        for (int j = 0; j < x->cols; j++) put_f32(raw + 4 * ((size_t)i * x->cols + j), *sp_at(x, i, j));
    return name;
}

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

/* The ONNX operator of a cell, or NULL (and *why says what) if it has none. A built-in kind
 * whose step or project function was replaced is a custom cell: its math is not the kind's. */
static const char *onnx_op(const sp_cell *c, const char **why)
{
    const sp_cell_def *d = sp__cell_def(c->kind);
    *why = "ONNX has LSTM, GRU and RNN operators only; a Scan over the cell's step is not supported yet";
    if (!d || c->step != d->step || c->project != d->project) {
        *why = "a custom cell (its step is not a built-in one); a Scan over the cell's step is not supported yet";
        return NULL;
    }
    switch (c->kind) {
    case SP_CELL_RNN_TANH:
    case SP_CELL_RNN_RELU: return "RNN";
    case SP_CELL_GRU_RESET_AFTER_MATMUL:
    case SP_CELL_GRU_RESET_BEFORE_MATMUL: return "GRU";
    case SP_CELL_LSTM:
        if (c->out_size != c->hidden_size || c->w_hr) {
            *why = "ONNX's LSTM operator has no projection (proj_size)";
            return NULL;
        }
        return "LSTM";
    default: return NULL;
    }
}

static int same_cell(const sp_cell *a, const sp_cell *c)
{
    return a->kind == c->kind && a->lstm_flags == c->lstm_flags && a->input_size == c->input_size &&
           a->hidden_size == c->hidden_size && a->out_size == c->out_size && a->step == c->step &&
           a->project == c->project && !a->w_peep == !c->w_peep;
}

static int shape_is(const sp_tensor *x, int rows, int cols) { return x && x->rows == rows && x->cols == cols; }

/* Everything that would make the file wrong or unreadable, checked before anything is built. */
static sp_status check_model(const sp_onnx_model *m)
{
    const sp_rnn *r = m->rnn;
    if (!r || r->num_layers < 1 || r->num_layers > SP_RNN_MAX_LAYERS)
        return sp_fail(SP_ERR_ARG, "sp_onnx_export: %s", r ? "the stack's num_layers is out of [1, SP_RNN_MAX_LAYERS]"
                                                           : "the model has no recurrent stack (rnn is NULL)");
    if (m->noise && (m->noise->zoneout_h > 0 || m->noise->zoneout_c > 0))
        return sp_fail(SP_ERR_ARG, "sp_onnx_export: zoneout (h %g, c %g) is not supported: its evaluation form "
                                   "s = z s' + (1 - z) s_new has no ONNX recurrent operator", m->noise->zoneout_h,
                       m->noise->zoneout_c);
    int D = r->bidirectional ? 2 : 1, in = r->cell[0][0].input_size;
    if (m->embed && (!m->embed->weight || m->embed->dim != in || !shape_is(m->embed->weight, m->embed->num, m->embed->dim)))
        return sp_fail(SP_ERR_SHAPE, "sp_onnx_export: the embedding (%d x %d) does not feed the stack's input size %d",
                       m->embed->num, m->embed->dim, in);
    if (!m->embed && m->one_hot && m->one_hot != in)
        return sp_fail(SP_ERR_SHAPE, "sp_onnx_export: one-hot input of size %d does not feed the stack's input size %d",
                       m->one_hot, in);
    if (m->one_hot < 0) return sp_fail(SP_ERR_ARG, "sp_onnx_export: one_hot = %d must be >= 0", m->one_hot);
    for (int l = 0; l < r->num_layers; l++) {
        const sp_cell *c = &r->cell[l][0];
        for (int d = 0; d < D; d++) {
            const sp_cell *cd = &r->cell[l][d];
            const char *why;
            if (!onnx_op(cd, &why))
                return sp_fail(SP_ERR_ARG, "sp_onnx_export: layer %d (cell \"%s\", %s) cannot be exported: %s", l,
                               cd->name, sp_cell_kind_name(cd), why);
            if (d && !same_cell(c, cd))
                return sp_fail(SP_ERR_ARG, "sp_onnx_export: layer %d: the directions' cells \"%s\" (%s, H %d) and \"%s\" "
                                           "(%s, H %d) differ; ONNX's bidirectional operators need one kind and size",
                               l, c->name, sp_cell_kind_name(c), c->hidden_size, cd->name, sp_cell_kind_name(cd),
                               cd->hidden_size);
            if (cd->input_size != in)
                return sp_fail(SP_ERR_SHAPE, "sp_onnx_export: layer %d (cell \"%s\") reads %d columns, the layer below gives %d",
                               l, cd->name, cd->input_size, in);
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
    if (m->softmax && !m->head) return sp_fail(SP_ERR_ARG, "sp_onnx_export: softmax needs a head (head is NULL)");
    for (const char *const *kv = m->metadata; kv && *kv; kv += 2)
        if (!kv[1]) return sp_fail(SP_ERR_ARG, "sp_onnx_export: metadata key \"%s\" has no value (NULL)", kv[0]);
    return SP_OK;
}

/* ------------------------------------------------------------------ the layers */

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

/* What one layer needs from the graph around it. */
typedef struct {
    const char *x;        /* [T, B, I] */
    const char *len;      /* int32 [B], every entry in [0, T] */
    const char *len_pos;  /* bool [1, B, 1]: length > 0 */
    const char *bdim;     /* int64 [1]: B */
} layer_io;

/* Layer l: one LSTM/GRU/RNN node over both directions; returns its merged output [T, B, O']. */
static const char *layer(ox *b, const sp_onnx_model *m, int l, const layer_io *io)
{
    const sp_rnn *r = m->rnn;
    const sp_cell *c = &r->cell[l][0];
    const char *why, *op = onnx_op(c, &why);
    int D = r->bidirectional ? 2 : 1, H = c->hidden_size, I = c->input_size;
    int lstm = c->kind == SP_CELL_LSTM, coupled = lstm && (c->lstm_flags & SP_LSTM_COUPLED);
    int peep = lstm && c->w_peep;
    /* ONNX block j <- spool block perm[j]: LSTM i,o,f,c <- i,f,g,o (coupled: i,g,o, no f);
     * GRU z,r,h <- r,z,n; peepholes i,o,f <- i,f,o (coupled: i,o) */
    static const int P_LSTM[4] = {0, 3, 1, 2}, P_CIFG[4] = {0, 2, -1, 1}, P_GRU[3] = {1, 0, 2}, P_RNN[1] = {0};
    static const int P_PEEP[3] = {0, 2, 1}, P_PEEP_CIFG[3] = {0, 1, -1};
    const int *perm = lstm ? (coupled ? P_CIFG : P_LSTM) : !strcmp(op, "GRU") ? P_GRU : P_RNN;
    int nblk = lstm ? 4 : !strcmp(op, "GRU") ? 3 : 1;
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
        if (peep) {
            sp_tensor pt = *cd->w_peep; /* rows of diagonals: as gate blocks of one column each */
            for (int j = 0; j < 3; j++)
                for (int k = 0; k < H; k++) {
                    int row = (coupled ? P_PEEP_CIFG : P_PEEP)[j];
                    P[(size_t)d * 3 * H + (size_t)j * H + k] = row < 0 ? 0.0f : (float)*sp_at(&pt, row, k);
                }
        }
    }
    int64_t dw[3] = {D, G, I}, dr[3] = {D, G, H}, db[2] = {D, 2 * G}, dp[2] = {D, 3 * H};
    const char *wn = init_f32(b, ox_str(b, "%s.W", c->name), 3, dw, W);
    const char *rn = init_f32(b, ox_str(b, "%s.R", c->name), 3, dr, R);
    const char *bn = init_f32(b, ox_str(b, "%s.B", c->name), 2, db, Bv);
    const char *pn = peep ? init_f32(b, ox_str(b, "%s.P", c->name), 2, dp, P) : NULL;

    /* initial states: inputs "h0_l<l>" / "c0_l<l>" with a [D, 1, S] default, broadcast to [D, B, S] */
    const char *s0[2] = {NULL, NULL}, *sn[2] = {NULL, NULL};
    for (int k = 0; k < c->n_state; k++) {
        int S = c->state_size[k];
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
        s0[k] = OP2(b, "Expand", name, shape);
        sn[k] = tmp(b, k ? "Y_c" : "Y_h");
    }
    const char *y = tmp(b, "Y");
    const char *in[8] = {io->x, wn, rn, bn, io->len, s0[0], s0[1], pn};
    int nin = lstm ? (peep ? 8 : 7) : 6;
    const char *outs[3] = {y, sn[0], sn[1]};
    node_t *n = node(b, op, c->name, nin, in, lstm ? 3 : 2, outs);
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
        int64_t vd[3] = {D, 0, c->state_size[k]};
        const char *sym[3] = {NULL, "batch", NULL};
        if (!fin || !node(b, "Where", NULL, 3, in3, 1, &fin) || !value(b, &b->outputs, fin, F32, 3, vd, sym)) return NULL;
    }
    /* Y [T, D, B, H] -> [T, B, O'] */
    if (D == 1) return OP2(b, "Squeeze", y, const_i64(b, "axes", 1, (int64_t[]){1}));
    if (r->merge == SP_MERGE_CONCAT) {
        node_t *tr;
        const char *yt = op3(b, &tr, "Transpose", NULL, y, NULL, NULL);
        attr_ints(b, tr, "perm", 4, (int64_t[]){0, 2, 1, 3});
        return OP2(b, "Reshape", yt, const_i64(b, "shape", 3, (int64_t[]){0, 0, -1}));
    }
    const char *halves[2] = {tmp(b, "fwd"), tmp(b, "bwd")};
    node_t *sp = node(b, "Split", NULL, 1, &y, 2, halves);
    attr_int(b, sp, "axis", 1);
    const char *z = OP2(b, r->merge == SP_MERGE_MUL ? "Mul" : "Add", halves[0], halves[1]);
    if (r->merge == SP_MERGE_MEAN) {
        int64_t one = 1;
        z = OP2(b, "Mul", z, init_f32(b, tmp(b, "half"), 1, &one, (float[]){0.5f}));
    }
    return OP2(b, "Squeeze", z, const_i64(b, "axes", 1, (int64_t[]){1}));
}

/* ------------------------------------------------------------------ the graph */

static sp_status build(ox *b, const sp_onnx_model *m, SpOnnx__GraphProto *g)
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
    if (tokens) { /* ids < 0 are zero rows: look up max(id, 0), multiply by (id >= 0) */
        const char *zero = init_i64(b, tmp(b, "zero"), 1, (int64_t[]){0});
        const char *idx = OP2(b, "Max", x0, zero);
        const char *keep = op3(b, &n, "Cast", NULL, OP2(b, "GreaterOrEqual", x0, zero), NULL, NULL);
        attr_int(b, n, "to", F32);
        keep = OP2(b, "Unsqueeze", keep, const_i64(b, "axes", 1, (int64_t[]){2}));
        const char *rows;
        if (m->embed) {
            rows = op3(b, &n, "Gather", NULL, init_tensor(b, m->embed->weight, 0), idx, NULL);
            attr_int(b, n, "axis", 0);
        } else {
            int64_t two = 2;
            rows = op3(b, NULL, "OneHot", NULL, idx, const_i64(b, "depth", 1, (int64_t[]){m->one_hot}),
                       init_f32(b, tmp(b, "onehot_values"), 1, &two, (float[]){0, 1}));
        }
        x = OP2(b, "Mul", rows, keep);
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

    layer_io io = {x, len, len_pos, bdim};
    for (int l = 0; l < r->num_layers && !b->failed; l++) io.x = layer(b, m, l, &io);
    const char *y = io.x;
    int O = sp_rnn_out_size(r);
    if (!m->head) {
        int64_t dy[3] = {0, 0, O};
        if (!op3(b, NULL, "Identity", "y", y, NULL, NULL) || !value(b, &b->outputs, "y", F32, 3, dy, TB)) return SP_ERR_NOMEM;
    } else {
        int V = m->head->out;
        const char *rows = OP2(b, "Reshape", y, const_i64(b, "shape", 2, (int64_t[]){-1, O}));
        const char *z = op3(b, &n, "Gemm", NULL, rows, init_tensor(b, m->head->weight, 0),
                            m->head->bias ? init_tensor(b, m->head->bias, 1) : NULL);
        attr_int(b, n, "transB", 1);
        const char *shape = op3(b, &n, "Concat", NULL, tb, const_i64(b, "dim", 1, (int64_t[]){V}), NULL);
        attr_int(b, n, "axis", 0);
        int64_t dz[3] = {0, 0, V};
        if (!op3(b, NULL, "Reshape", "logits", z, shape, NULL) || !value(b, &b->outputs, "logits", F32, 3, dz, TB))
            return SP_ERR_NOMEM;
        if (m->softmax) {
            op3(b, &n, "Softmax", "probs", "logits", NULL, NULL);
            attr_int(b, n, "axis", -1);
            if (!value(b, &b->outputs, "probs", F32, 3, dz, TB)) return SP_ERR_NOMEM;
        }
    }
    if (b->failed) return SP_ERR_NOMEM;
    g->name = "spool";
    g->n_node = b->nodes.n, g->node = (node_t **)b->nodes.v;
    g->n_initializer = b->inits.n, g->initializer = (tensor_t **)b->inits.v;
    g->n_input = b->inputs.n, g->input = (value_t **)b->inputs.v;
    g->n_output = b->outputs.n, g->output = (value_t **)b->outputs.v;
    return SP_OK;
}

int sp_onnx_available(void) { return 1; }

sp_status sp_onnx_export(const sp_onnx_model *m, const char *path)
{
    if (!m || !path) return sp_fail(SP_ERR_ARG, "sp_onnx_export: %s is NULL", m ? "path" : "the model");
    sp_status s = check_model(m);
    if (s) return s;
    ox b = {0};
    SpOnnx__GraphProto g = SP_ONNX__GRAPH_PROTO__INIT;
    SpOnnx__ModelProto model = SP_ONNX__MODEL_PROTO__INIT;
    SpOnnx__OperatorSetIdProto opset = SP_ONNX__OPERATOR_SET_ID_PROTO__INIT, *ops[1] = {&opset};
    uint8_t *buf = NULL;
    s = build(&b, m, &g);
    if (s == SP_OK) {
        opset.domain = "", opset.has_version = 1, opset.version = SP_ONNX_OPSET;
        model.has_ir_version = 1, model.ir_version = SP_ONNX_IR_VERSION;
        model.n_opset_import = 1, model.opset_import = ops;
        model.producer_name = "spool", model.producer_version = (char *)sp_version();
        model.graph = &g;
        size_t nmeta = 0;
        while (m->metadata && m->metadata[2 * nmeta]) nmeta++;
        SpOnnx__StringStringEntryProto **kv = ox_alloc(&b, sizeof *kv * nmeta);
        for (size_t i = 0; kv && i < nmeta; i++)
            if ((kv[i] = ox_alloc(&b, sizeof **kv))) {
                sp_onnx__string_string_entry_proto__init(kv[i]);
                kv[i]->key = (char *)m->metadata[2 * i], kv[i]->value = (char *)m->metadata[2 * i + 1];
            }
        model.n_metadata_props = nmeta, model.metadata_props = kv;
        size_t len = b.failed ? 0 : sp_onnx__model_proto__get_packed_size(&model);
        buf = b.failed ? NULL : malloc(len ? len : 1);
        if (!buf) s = sp_fail(SP_ERR_NOMEM, "sp_onnx_export: '%s': out of memory (%zu bytes)", path, len);
        else {
            sp_onnx__model_proto__pack(&model, buf);
            sp_file *f = sp__file_begin(path, "sp_onnx_export");
            if (!f) s = sp_last_status();
            else if (fwrite(buf, 1, len, sp_file_stream(f)) != len) {
                sp_file_abort(f);
                s = sp_fail(SP_ERR_IO, "sp_onnx_export: cannot write '%s'", path);
            } else s = sp_file_commit(f);
        }
    } else s = sp_fail(SP_ERR_NOMEM, "sp_onnx_export: '%s': out of memory building the graph", path);
    free(buf);
    for (size_t i = 0; i < b.mem.n; i++) free(b.mem.v[i]);
    free(b.mem.v), free(b.nodes.v), free(b.inits.v), free(b.inputs.v), free(b.outputs.v);
    return s;
}
