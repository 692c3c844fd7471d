/* SPDX-License-Identifier: MIT */
/* import.c - sp_onnx_load_weights (include/spool/onnx.h): the weights of an ONNX file's
 * recurrent operators (and of its embedding and linear head) into a model spool built, so a
 * network exported by torch.onnx.export (or by sp_onnx_export) can be fine-tuned here.
 *
 * The file is unpacked by protobuf-c with ONNX's own schema (sp_onnx.pb-c.h, as export.c writes
 * it). Only the weights are read, never the graph's computation: the caller's model says what the
 * network is, and every node the weights come from is checked against it (operator, direction,
 * sizes, the attributes that change what the weights mean: linear_before_reset, input_forget,
 * activations, clip). The gate blocks are moved back from ONNX's order to spool's with the same
 * table export.c writes them with (sp__onnx_gate_perm), and B = [Wb, Rb] is split into b_ih and
 * b_hh. Everything is converted into buffers of its own first, and copied into the parameters only
 * when the whole file has been read: a failed load changes nothing (tests/test_onnx.c and the
 * fuzz harness tests/fuzz/fuzz_onnx.c check it). */
#include "sp_onnx.pb-c.h"
#include "onnx_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef SpOnnx__NodeProto node_t;
typedef SpOnnx__TensorProto tensor_t;
typedef SpOnnx__GraphProto graph_t;

/* The largest file read (a guard against /dev/zero and the like, not a limit of the format). */
#define MAX_FILE ((size_t)1 << 31)
/* How deep messages may nest inside the file (a graph in an attribute in a node in a graph ...):
 * protobuf-c unpacks recursively, so a hostile file could otherwise exhaust the stack. */
#define MAX_DEPTH 64

/* A parameter's new values, kept until the whole file is read. */
typedef struct {
    sp_tensor *dst;
    sp_real *v; /* dst->rows x dst->cols, row-major */
} pending;

typedef struct {
    const graph_t *g;
    const char *who;  /* "sp_onnx_load_weights <path>" for messages */
    pending p[SP_RNN_MAX_LAYERS * 2 * 5 + 3];
    int np;
} rd;

static const char *str(const char *s) { return s ? s : ""; }

/* ----------------------------------------------------------- nesting depth */

/* Depth of the message nesting of buf (a message of descriptor d), walked without recursion into
 * protobuf-c: 0 if it stays within MAX_DEPTH and is well-formed enough to walk, -1 otherwise
 * (protobuf-c then reports whatever else is wrong with it). */
static int depth_ok(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len)
{
    struct {
        const ProtobufCMessageDescriptor *d;
        const uint8_t *p, *end;
    } st[MAX_DEPTH];
    int top = 0;
    st[0].d = d, st[0].p = buf, st[0].end = buf + len;
    while (top >= 0) {
        if (st[top].p >= st[top].end) {
            top--;
            continue;
        }
        uint64_t key = 0, n = 0;
        int shift = 0;
        const uint8_t *p = st[top].p, *end = st[top].end;
        do {
            if (p >= end || shift > 63) return -1;
            key |= (uint64_t)(*p & 0x7f) << shift, shift += 7;
        } while (*p++ & 0x80);
        unsigned wire = (unsigned)(key & 7);
        if (wire == 0) {
            do
                if (p >= end) return -1;
            while (*p++ & 0x80);
        } else if (wire == 1 || wire == 5) {
            if ((size_t)(end - p) < (wire == 1 ? 8u : 4u)) return -1;
            p += wire == 1 ? 8 : 4;
        } else if (wire == 2) {
            shift = 0;
            do {
                if (p >= end || shift > 63) return -1;
                n |= (uint64_t)(*p & 0x7f) << shift, shift += 7;
            } while (*p++ & 0x80);
            if (n > (uint64_t)(end - p)) return -1;
            const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(st[top].d, (unsigned)(key >> 3));
            st[top].p = p + n;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (top + 1 >= MAX_DEPTH) return -1;
                top++;
                st[top].d = f->descriptor, st[top].p = p, st[top].end = p + n;
            }
            continue;
        } else
            return -1;
        st[top].p = p;
    }
    return 0;
}

/* ------------------------------------------------------------------ lookups */

/* The tensor named name: an initializer, or the value of a Constant node; NULL if none. */
static const tensor_t *find_tensor(const rd *r, const char *name)
{
    if (!name || !*name) return NULL;
    for (size_t i = 0; i < r->g->n_initializer; i++)
        if (r->g->initializer[i] && !strcmp(str(r->g->initializer[i]->name), name)) return r->g->initializer[i];
    for (size_t i = 0; i < r->g->n_node; i++) {
        const node_t *n = r->g->node[i];
        if (!n || strcmp(str(n->op_type), "Constant") || n->n_output != 1 || strcmp(str(n->output[0]), name)) continue;
        for (size_t a = 0; a < n->n_attribute; a++)
            if (n->attribute[a] && !strcmp(str(n->attribute[a]->name), "value") && n->attribute[a]->t)
                return n->attribute[a]->t;
    }
    return NULL;
}

static const SpOnnx__AttributeProto *find_attr(const node_t *n, const char *name)
{
    for (size_t a = 0; a < n->n_attribute; a++)
        if (n->attribute[a] && !strcmp(str(n->attribute[a]->name), name)) return n->attribute[a];
    return NULL;
}

static int64_t attr_int(const node_t *n, const char *name, int64_t dflt)
{
    const SpOnnx__AttributeProto *a = find_attr(n, name);
    return a && a->has_i ? a->i : dflt;
}

/* The attribute's string (bytes, not NUL-terminated) equals s? dflt if absent. */
static int attr_str_is(const node_t *n, const char *name, const char *s, int dflt)
{
    const SpOnnx__AttributeProto *a = find_attr(n, name);
    if (!a || !a->has_s) return dflt;
    return a->s.len == strlen(s) && !memcmp(a->s.data, s, a->s.len);
}

static const char *input(const node_t *n, size_t k) { return k < n->n_input ? str(n->input[k]) : ""; }

static const char *shape_str(const tensor_t *t, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = 0;
    at += (size_t)snprintf(buf, n, "[");
    for (size_t i = 0; i < t->n_dims && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%lld", i ? ", " : "", (long long)t->dims[i]);
    if (at < n) snprintf(buf + at, n - at, "]");
    return buf;
}

/* The values of tensor t (float or double, in float_data/double_data or raw_data), which must
 * have the shape dims[0..nd) (nd = -1: any shape with `count` elements), into a new array of
 * *count values. NULL with the message set (naming what the tensor is for, what, and the node). */
static sp_real *values(rd *r, const tensor_t *t, const char *what, const node_t *n, int nd, const int64_t *dims,
                       size_t *count)
{
    char sh[160], want[160];
    const char *tn = str(t->name), *nn = n ? str(n->name) : "";
    size_t cnt = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || (t->dims[i] > 0 && cnt > SIZE_MAX / 16 / (size_t)t->dims[i]))
            return sp_fail(SP_ERR_FORMAT, "%s: node \"%s\": %s \"%s\" has dimensions %s", r->who, nn, what, tn,
                           shape_str(t, sh, sizeof sh)), NULL;
        cnt *= (size_t)t->dims[i];
    }
    if (nd >= 0) {
        int same = t->n_dims == (size_t)nd;
        size_t at = (size_t)snprintf(want, sizeof want, "[");
        for (int i = 0; i < nd; i++) {
            same = same && t->dims[i] == dims[i];
            if (at < sizeof want) at += (size_t)snprintf(want + at, sizeof want - at, "%s%lld", i ? ", " : "", (long long)dims[i]);
        }
        if (at < sizeof want) snprintf(want + at, sizeof want - at, "]");
        if (!same)
            return sp_fail(SP_ERR_SHAPE, "%s: node \"%s\": %s \"%s\" is %s, the model needs %s", r->who, nn, what, tn,
                           shape_str(t, sh, sizeof sh), want), NULL;
    } else if (cnt != *count)
        return sp_fail(SP_ERR_SHAPE, "%s: node \"%s\": %s \"%s\" is %s, the model needs %zu values", r->who, nn, what, tn,
                       shape_str(t, sh, sizeof sh), *count), NULL;
    if (t->has_data_location && t->data_location == SP_ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return sp_fail(SP_ERR_FORMAT, "%s: node \"%s\": %s \"%s\" is stored outside the file (external data), "
                                      "which is not read", r->who, nn, what, tn), NULL;
    int dt = t->has_data_type ? t->data_type : 0;
    if (dt != SP_ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && dt != SP_ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE)
        return sp_fail(SP_ERR_FORMAT, "%s: node \"%s\": %s \"%s\" has data type %d (float or double needed)", r->who, nn,
                       what, tn, dt), NULL;
    int dbl = dt == SP_ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
    size_t es = dbl ? 8 : 4, have = t->has_raw_data ? t->raw_data.len / es : dbl ? t->n_double_data : t->n_float_data;
    if (have != cnt || (t->has_raw_data && t->raw_data.len % es))
        return sp_fail(SP_ERR_FORMAT, "%s: node \"%s\": %s \"%s\" of shape %s holds %zu values", r->who, nn, what, tn,
                       shape_str(t, sh, sizeof sh), have), NULL;
    sp_real *v = malloc(sizeof *v * (cnt ? cnt : 1));
    if (!v) return sp_fail(SP_ERR_NOMEM, "%s: out of memory for \"%s\" (%zu values)", r->who, tn, cnt), NULL;
    for (size_t i = 0; i < cnt; i++) {
        double x;
        if (t->has_raw_data) { /* little-endian, whatever the host */
            const uint8_t *b = t->raw_data.data + i * es;
            uint64_t u = 0;
            for (size_t k = 0; k < es; k++) u |= (uint64_t)b[k] << (8 * k);
            if (dbl) memcpy(&x, &u, 8);
            else {
                uint32_t u32 = (uint32_t)u;
                float f;
                memcpy(&f, &u32, 4);
                x = f;
            }
        } else
            x = dbl ? t->double_data[i] : t->float_data[i];
        if (!isfinite(x)) {
            free(v);
            return sp_fail(SP_ERR_NONFINITE, "%s: node \"%s\": %s \"%s\" holds %g at element %zu", r->who, nn, what, tn,
                           x, i), NULL;
        }
        v[i] = (sp_real)x;
    }
    *count = cnt;
    return v;
}

/* A new pending copy into parameter dst (its values: rows x cols, row-major, zeros). */
static sp_real *pend(rd *r, sp_tensor *dst)
{
    sp_real *v = calloc((size_t)dst->rows * (size_t)dst->cols + 1, sizeof *v);
    if (!v) return sp_fail(SP_ERR_NOMEM, "%s: out of memory for \"%s\"", r->who, dst->name), NULL;
    r->p[r->np].dst = dst, r->p[r->np].v = v, r->np++;
    return v;
}

/* ------------------------------------------------------------ the recurrent layers */

static int is_rnn_op(const node_t *n)
{
    const char *op = str(n->op_type);
    return (!n->domain || !*n->domain || !strcmp(n->domain, "ai.onnx")) &&
           (!strcmp(op, "LSTM") || !strcmp(op, "GRU") || !strcmp(op, "RNN"));
}

/* Is the activations attribute of n, if any, the list want[0..k) repeated D times? */
static int activations_are(const node_t *n, const char *const *want, int k, int D)
{
    const SpOnnx__AttributeProto *a = find_attr(n, "activations");
    if (!a) return 1;
    if (a->n_strings != (size_t)(k * D)) return 0;
    for (int i = 0; i < k * D; i++) {
        const char *w = want[i % k];
        if (a->strings[i].len != strlen(w) || strncasecmp((const char *)a->strings[i].data, w, a->strings[i].len)) return 0;
    }
    return 1;
}

/* Layer l of the stack from node n. */
static sp_status read_layer(rd *r, const sp_rnn *rnn, int l, const node_t *n)
{
    const sp_cell *c = &rnn->cell[l][0];
    const char *op = sp__onnx_op(c), *nn = str(n->name), *nop = str(n->op_type);
    if (!op || (rnn->bidirectional && sp__onnx_op(&rnn->cell[l][1]) != op))
        return sp_fail(SP_ERR_ARG, "%s: layer %d of the model (cell \"%s\", %s) has no ONNX operator: node \"%s\" (%s) "
                                   "cannot fill it", r->who, l, c->name, sp_cell_kind_name(c), nn, nop);
    int D = rnn->bidirectional ? 2 : 1, H = c->hidden_size, I = c->input_size;
    int lstm = !strcmp(op, "LSTM"), gru = !strcmp(op, "GRU");
    int coupled = lstm && (c->lstm_flags & SP_LSTM_COUPLED);
    if (strcmp(nop, op))
        return sp_fail(SP_ERR_ARG, "%s: node \"%s\" is %s, layer %d of the model is %s (cell \"%s\", %s)", r->who, nn,
                       nop, l, op, c->name, sp_cell_kind_name(c));
    int fdir = attr_str_is(n, "direction", "forward", 1), bdir = attr_str_is(n, "direction", "bidirectional", 0);
    if (!(D == 2 ? bdir : fdir))
        return sp_fail(SP_ERR_ARG, "%s: node \"%s\" (%s) runs %s, layer %d of the model is %s", r->who, nn, nop,
                       bdir ? "bidirectional" : fdir ? "forward" : "in reverse only", l,
                       D == 2 ? "bidirectional" : "forward");
    int64_t hs = attr_int(n, "hidden_size", H);
    if (hs != H)
        return sp_fail(SP_ERR_SHAPE, "%s: node \"%s\" (%s) has hidden_size %lld, layer %d of the model %d", r->who, nn,
                       nop, (long long)hs, l, H);
    if (find_attr(n, "clip") || find_attr(n, "activation_alpha") || find_attr(n, "activation_beta"))
        return sp_fail(SP_ERR_ARG, "%s: node \"%s\" (%s) has clip or activation parameters, which spool's cells do not "
                                   "have", r->who, nn, nop);
    static const char *const A_LSTM[3] = {"Sigmoid", "Tanh", "Tanh"}, *const A_GRU[2] = {"Sigmoid", "Tanh"};
    static const char *const A_TANH[1] = {"Tanh"}, *const A_RELU[1] = {"Relu"};
    int acts = lstm ? activations_are(n, A_LSTM, 3, D)
             : gru  ? activations_are(n, A_GRU, 2, D)
                    : (c->kind == SP_CELL_RNN_RELU ? find_attr(n, "activations") && activations_are(n, A_RELU, 1, D)
                                                   : activations_are(n, A_TANH, 1, D));
    if (!acts)
        return sp_fail(SP_ERR_ARG, "%s: node \"%s\" (%s): its activations are not those of layer %d of the model (%s)",
                       r->who, nn, nop, l, sp_cell_kind_name(c));
    if (gru && attr_int(n, "linear_before_reset", 0) != (c->kind == SP_CELL_GRU_RESET_AFTER_MATMUL))
        return sp_fail(SP_ERR_ARG, "%s: node \"%s\" (GRU) has linear_before_reset = %lld, layer %d of the model is %s "
                                   "(linear_before_reset = 1 is gru_reset_after_matmul, PyTorch's)", r->who, nn,
                       (long long)attr_int(n, "linear_before_reset", 0), l, sp_cell_kind_name(c));
    if (lstm && !!attr_int(n, "input_forget", 0) != !!coupled)
        return sp_fail(SP_ERR_ARG, "%s: node \"%s\" (LSTM) has input_forget = %lld, layer %d of the model is %s", r->who,
                       nn, (long long)attr_int(n, "input_forget", 0), l, sp_cell_kind_name(c));
    int nblk;
    const int *pp, *perm = sp__onnx_gate_perm(c, &nblk, &pp);
    int64_t G = (int64_t)nblk * H;
    const tensor_t *tw = find_tensor(r, input(n, 1)), *tr = find_tensor(r, input(n, 2));
    const tensor_t *tb = find_tensor(r, input(n, 3)), *tp = lstm ? find_tensor(r, input(n, 7)) : NULL;
    if (!tw || !tr || (*input(n, 3) && !tb) || (lstm && *input(n, 7) && !tp))
        return sp_fail(SP_ERR_FORMAT, "%s: node \"%s\" (%s): its weights (%s) are not initializers or constants of "
                                      "the file", r->who, nn, nop, !tw ? "W" : !tr ? "R" : !tb ? "B" : "P");
    size_t cnt;
    sp_real *W = values(r, tw, "W", n, 3, (int64_t[]){D, G, I}, &cnt);
    sp_real *R = W ? values(r, tr, "R", n, 3, (int64_t[]){D, G, H}, &cnt) : NULL;
    sp_real *B = R && tb ? values(r, tb, "B", n, 2, (int64_t[]){D, 2 * G}, &cnt) : NULL;
    sp_real *P = R && (!tb || B) && tp ? values(r, tp, "P", n, 2, (int64_t[]){D, 3 * H}, &cnt) : NULL;
    sp_status st = !W || !R || (tb && !B) || (tp && !P) ? sp_last_status() : SP_OK;
    for (int d = 0; d < D && st == SP_OK; d++) {
        const sp_cell *cd = &rnn->cell[l][d];
        if (cd->input_size != I || cd->hidden_size != H || !cd->w_ih || !cd->w_hh) {
            st = sp_fail(SP_ERR_SHAPE, "%s: layer %d of the model: cell \"%s\" is not the shape of cell \"%s\"", r->who, l,
                         cd->name, c->name);
            break;
        }
        /* what the file has and the model has not: nonzero biases or peepholes */
        const char *extra = NULL;
        for (int64_t k = 0; B && !cd->b_ih && k < 2 * G; k++) extra = B[(size_t)d * 2 * G + k] != 0 ? "biases" : extra;
        for (int64_t k = 0; P && !cd->w_peep && k < 3 * H; k++) extra = P[(size_t)d * 3 * H + k] != 0 ? "peepholes" : extra;
        if (extra) {
            st = sp_fail(SP_ERR_ARG, "%s: node \"%s\" (%s) has %s, cell \"%s\" of the model has none", r->who, nn, nop,
                         extra, cd->name);
            break;
        }
        sp_real *wi = pend(r, cd->w_ih), *wh = wi ? pend(r, cd->w_hh) : NULL;
        sp_real *bi = wh && cd->b_ih ? pend(r, cd->b_ih) : NULL, *bh = (bi || !cd->b_ih) && cd->b_hh ? pend(r, cd->b_hh) : NULL;
        sp_real *pe = cd->w_peep && (bh || !cd->b_hh) ? pend(r, cd->w_peep) : NULL;
        if (!wh || (cd->b_ih && !bi) || (cd->b_hh && !bh) || (cd->w_peep && !pe)) {
            st = SP_ERR_NOMEM;
            break;
        }
        for (int j = 0; j < nblk; j++) {
            if (perm[j] < 0) continue; /* the forget block of a coupled LSTM: input_forget ignores it */
            for (int h = 0; h < H; h++) {
                size_t g = (size_t)perm[j] * H + h, o = (size_t)j * H + h;
                memcpy(wi + g * I, W + ((size_t)d * G + o) * I, sizeof *wi * (size_t)I);
                memcpy(wh + g * H, R + ((size_t)d * G + o) * H, sizeof *wh * (size_t)H);
                if (bi && B) bi[g] = B[(size_t)d * 2 * G + o];
                if (bh && B) bh[g] = B[(size_t)d * 2 * G + G + o];
            }
        }
        for (int j = 0; pe && P && j < 3; j++)
            for (int h = 0; pp[j] >= 0 && h < H; h++) pe[(size_t)pp[j] * H + h] = P[(size_t)d * 3 * H + (size_t)j * H + h];
    }
    free(W), free(R), free(B), free(P);
    return st;
}

/* ------------------------------------------------------------ embedding and head */

/* The embedding: the first Gather whose data is a float matrix of the file. */
static sp_status read_embed(rd *r, const sp_embed *e)
{
    for (size_t i = 0; i < r->g->n_node; i++) {
        const node_t *n = r->g->node[i];
        if (!n || strcmp(str(n->op_type), "Gather") || attr_int(n, "axis", 0) != 0) continue;
        const tensor_t *t = find_tensor(r, input(n, 0));
        if (!t || t->n_dims != 2) continue;
        size_t cnt;
        sp_real *v = values(r, t, "the embedding table", n, 2, (int64_t[]){e->num, e->dim}, &cnt);
        sp_real *dst = v ? pend(r, e->weight) : NULL;
        if (dst) memcpy(dst, v, sizeof *v * cnt);
        free(v);
        return dst ? SP_OK : sp_last_status();
    }
    return sp_fail(SP_ERR_ARG, "%s: the model has an embedding (%d x %d), the file has none (no Gather from a matrix "
                               "of the file)", r->who, e->num, e->dim);
}

/* The linear head: the first Gemm, or MatMul (+ Add), after the last recurrent node, whose weight
 * is a matrix of the file. Gemm with transB = 1 has spool's (PyTorch's) [out, in] layout;
 * MatMul and Gemm without it have [in, out]. */
static sp_status read_head(rd *r, const sp_linear *h, size_t after)
{
    for (size_t i = after; i < r->g->n_node; i++) {
        const node_t *n = r->g->node[i];
        if (!n) continue;
        int gemm = !strcmp(str(n->op_type), "Gemm"), mm = !strcmp(str(n->op_type), "MatMul");
        const tensor_t *t = gemm || mm ? find_tensor(r, input(n, 1)) : NULL;
        if (!t || t->n_dims != 2) continue;
        const char *nn = str(n->name);
        if (gemm && (attr_int(n, "transA", 0) || (find_attr(n, "alpha") && find_attr(n, "alpha")->f != 1) ||
                     (find_attr(n, "beta") && find_attr(n, "beta")->f != 1)))
            return sp_fail(SP_ERR_ARG, "%s: node \"%s\" (Gemm): transA, alpha or beta other than spool's linear layer",
                           r->who, nn);
        int tb = gemm && attr_int(n, "transB", 0);
        size_t cnt;
        sp_real *v = values(r, t, "the head's weight", n, 2, tb ? (int64_t[]){h->out, h->in} : (int64_t[]){h->in, h->out}, &cnt);
        sp_real *w = v ? pend(r, h->weight) : NULL;
        for (int o = 0; w && o < h->out; o++)
            for (int k = 0; k < h->in; k++) w[(size_t)o * h->in + k] = tb ? v[(size_t)o * h->in + k] : v[(size_t)k * h->out + o];
        free(v);
        if (!w) return sp_last_status();
        /* the bias: Gemm's C, or an Add of a file vector to the MatMul's output */
        const tensor_t *tc = NULL;
        const node_t *bn = n;
        if (gemm) tc = find_tensor(r, input(n, 2));
        for (size_t k = i + 1; mm && !tc && k < r->g->n_node && n->n_output; k++) {
            const node_t *a = r->g->node[k];
            if (!a || strcmp(str(a->op_type), "Add")) continue;
            for (int s = 0; s < 2 && !tc; s++)
                if (!strcmp(input(a, (size_t)s), str(n->output[0]))) tc = find_tensor(r, input(a, (size_t)!s)), bn = a;
        }
        if (!tc) {
            if (h->bias && !pend(r, h->bias)) return sp_last_status(); /* none in the file: zero */
            return SP_OK;
        }
        cnt = (size_t)h->out;
        sp_real *b = values(r, tc, "the head's bias", bn, -1, NULL, &cnt);
        if (!b) return sp_last_status();
        sp_status st = SP_OK;
        for (size_t k = 0; !h->bias && k < cnt; k++)
            if (b[k] != 0) st = sp_fail(SP_ERR_ARG, "%s: node \"%s\": the file's head has a bias, the model's none", r->who, str(bn->name));
        sp_real *d = st == SP_OK && h->bias ? pend(r, h->bias) : NULL;
        if (d) memcpy(d, b, sizeof *b * cnt);
        else if (h->bias && st == SP_OK) st = sp_last_status();
        free(b);
        return st;
    }
    return sp_fail(SP_ERR_ARG, "%s: the model has a linear head (%d -> %d), the file has none after its last recurrent "
                               "node (no Gemm or MatMul with a matrix of the file)", r->who, h->in, h->out);
}

/* ---------------------------------------------------------------- the loader */

static sp_status load(rd *r, const sp_onnx_model *m)
{
    const sp_rnn *rnn = m->rnn;
    if (!rnn || rnn->num_layers < 1 || rnn->num_layers > SP_RNN_MAX_LAYERS)
        return sp_fail(SP_ERR_ARG, "%s: %s", r->who, rnn ? "the stack's num_layers is out of [1, SP_RNN_MAX_LAYERS]"
                                                        : "the model has no recurrent stack (rnn is NULL)");
    int nr = 0;
    size_t last = 0;
    for (size_t i = 0; i < r->g->n_node; i++) {
        const node_t *n = r->g->node[i];
        if (!n) continue;
        const char *op = str(n->op_type);
        if (!strcmp(op, "Scan") || !strcmp(op, "Loop"))
            return sp_fail(SP_ERR_ARG, "%s: node \"%s\" is a %s: only the weights of LSTM, GRU and RNN operators are read",
                           r->who, str(n->name), op);
        if (!is_rnn_op(n)) continue;
        if (nr == rnn->num_layers)
            return sp_fail(SP_ERR_SHAPE, "%s: node \"%s\" (%s) is recurrent layer %d of the file, the model has %d", r->who,
                           str(n->name), op, nr, rnn->num_layers);
        sp_status st = read_layer(r, rnn, nr++, n);
        if (st != SP_OK) return st;
        last = i + 1;
    }
    if (nr != rnn->num_layers)
        return sp_fail(SP_ERR_SHAPE, "%s: the file has %d recurrent layers (LSTM, GRU or RNN nodes), the model %d",
                       r->who, nr, rnn->num_layers);
    if (m->embed) {
        if (!m->embed->weight || !(m->embed->weight->rows == m->embed->num && m->embed->weight->cols == m->embed->dim))
            return sp_fail(SP_ERR_ARG, "%s: the model's embedding has no [%d x %d] table", r->who, m->embed->num, m->embed->dim);
        sp_status st = read_embed(r, m->embed);
        if (st != SP_OK) return st;
    }
    if (m->head) {
        const sp_linear *h = m->head;
        if (!h->weight || h->weight->rows != h->out || h->weight->cols != h->in ||
            (h->bias && (h->bias->rows != 1 || h->bias->cols != h->out)))
            return sp_fail(SP_ERR_ARG, "%s: the model's head has no [%d x %d] weight", r->who, h->out, h->in);
        return read_head(r, h, last);
    }
    return SP_OK;
}

sp_status sp_onnx_load_weights_mem(const unsigned char *buf, size_t len, const sp_onnx_model *m, const char *name)
{
    char who[300];
    snprintf(who, sizeof who, "sp_onnx_load_weights %s", name ? name : "(memory)");
    if (!m || (!buf && len)) return sp_fail(SP_ERR_ARG, "%s: %s is NULL", who, !m ? "the model" : "the buffer");
    if (depth_ok(&sp_onnx__model_proto__descriptor, buf, len))
        return sp_fail(SP_ERR_FORMAT, "%s: not an ONNX model (not a protobuf ModelProto, or nested deeper than %d)", who,
                       MAX_DEPTH);
    SpOnnx__ModelProto *mp = sp_onnx__model_proto__unpack(NULL, len, buf);
    if (!mp) return sp_fail(SP_ERR_FORMAT, "%s: not an ONNX model (protobuf-c cannot unpack a ModelProto)", who);
    rd r = {.g = mp->graph, .who = who};
    sp_status st = r.g ? load(&r, m) : sp_fail(SP_ERR_FORMAT, "%s: the model has no graph", who);
    for (int i = 0; i < r.np; i++) {
        if (st == SP_OK) /* everything read: now, and only now, into the parameters */
            for (int k = 0; k < r.p[i].dst->rows; k++)
                memcpy(sp_at(r.p[i].dst, k, 0), r.p[i].v + (size_t)k * r.p[i].dst->cols, sizeof(sp_real) * (size_t)r.p[i].dst->cols);
        free(r.p[i].v);
    }
    sp_onnx__model_proto__free_unpacked(mp, NULL);
    return st;
}

sp_status sp_onnx_load_weights(const char *path, const sp_onnx_model *m)
{
    if (!path) return sp_fail(SP_ERR_ARG, "sp_onnx_load_weights: path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f) return sp_fail(SP_ERR_IO, "sp_onnx_load_weights: cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    unsigned char *buf = NULL;
    sp_status st;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > MAX_FILE)
        st = sp_fail(SP_ERR_IO, "sp_onnx_load_weights: %s is not a regular file of at most %zu bytes", path, MAX_FILE);
    else if (!(buf = malloc((size_t)sb.st_size + 1)))
        st = sp_fail(SP_ERR_NOMEM, "sp_onnx_load_weights: out of memory for %s", path);
    else if (fread(buf, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size)
        st = sp_fail(SP_ERR_IO, "sp_onnx_load_weights: cannot read %s", path);
    else
        st = sp_onnx_load_weights_mem(buf, (size_t)sb.st_size, m, path);
    free(buf);
    fclose(f);
    return st;
}
