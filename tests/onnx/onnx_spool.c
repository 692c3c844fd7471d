/* SPDX-License-Identifier: MIT */
/* onnx_spool.c - the spool half of tests/onnx/onnx_check.py: builds one small model per case
 * (every built-in cell kind and variant and a custom cell, 1 and 2 layers, one- and
 * bidirectional, every merge, embedding / one-hot / float input, with and without a head,
 * trainable initial states), exports each with sp_onnx_export to DIR/<case>.onnx and writes
 * spool's own forward outputs on two inputs to DIR/<case>.io. The kinds ONNX has an operator
 * for use it; the others (LSTMP, LN cells, update-only GRU, MGU, minGRU, minLSTM, the custom
 * cell) are a Scan over their recorded step. The runs:
 *   run a: T 7, B 5, unsorted lengths {7, 1, 0, 4, 6} (a length-1 and a length-0 row), an id
 *          < 0 inside a real step (a zero input row), random initial states fed as inputs;
 *   run b: T 3, B 2, no lengths and no states fed (the graph's defaults: whole sequences, the
 *          exported initial states).
 * Neither shape is one the graph was made with: the export has no shapes but the layers'.
 * The .io file is a list of arrays, each a text line "name dtype ndim d0 d1 ..." (dtype f32,
 * i64 or i32) followed by its little-endian bytes; names with a "run." prefix are fed to the
 * model, "want." ones are what spool computed. Usage: onnx_spool DIR (prints the case names). */
#include "spool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define V 11 /* vocabulary of token inputs */
#define E 6  /* embedding / feature size */
#define H 5  /* hidden size */

typedef struct {
    const char *name;
    sp_cell_kind kind;
    int flags, proj; /* LSTM flags, proj_size */
} kind_t;

static const kind_t KINDS[] = {
    {"lstm", SP_CELL_LSTM, 0, 0},
    {"lstm_peephole", SP_CELL_LSTM, SP_LSTM_PEEPHOLE, 0},
    {"lstm_coupled", SP_CELL_LSTM, SP_LSTM_COUPLED, 0},
    {"lstm_peephole_coupled", SP_CELL_LSTM, SP_LSTM_PEEPHOLE | SP_LSTM_COUPLED, 0},
    {"gru", SP_CELL_GRU_RESET_AFTER_MATMUL, 0, 0},
    {"gru_reset_before", SP_CELL_GRU_RESET_BEFORE_MATMUL, 0, 0},
    {"rnn_tanh", SP_CELL_RNN_TANH, 0, 0},
    {"rnn_relu", SP_CELL_RNN_RELU, 0, 0},
    /* no ONNX operator: a Scan over the recorded step */
    {"lstmp", SP_CELL_LSTM, 0, 3},
    {"lstmp_peephole_coupled", SP_CELL_LSTM, SP_LSTM_PEEPHOLE | SP_LSTM_COUPLED, 2},
    {"gru_update_only", SP_CELL_GRU_UPDATE_ONLY, 0, 0},
    {"ln_lstm", SP_CELL_LN_LSTM, 0, 0},
    {"ln_gru", SP_CELL_LN_GRU, 0, 0},
    {"mgu", SP_CELL_MGU, 0, 0},
    {"mingru", SP_CELL_MINGRU, 0, 0},
    {"minlstm", SP_CELL_MINLSTM, 0, 0},
    {"custom_mgu", SP_CELL_CUSTOM, 0, 0}, /* my_mgu below: a user's cell from public ops */
};
#define NKINDS ((int)(sizeof KINDS / sizeof KINDS[0]))

enum { IN_EMBED, IN_ONEHOT, IN_FLOAT };

static int fail(const char *what)
{
    fprintf(stderr, "onnx_spool: %s: %s\n", what, sp_last_error());
    return 1;
}

static void put(FILE *f, const char *name, const char *dtype, int ndim, const long *dims, const void *data, size_t esize)
{
    size_t n = 1;
    fprintf(f, "%s %s %d", name, dtype, ndim);
    for (int i = 0; i < ndim; i++) fprintf(f, " %ld", dims[i]), n *= (size_t)dims[i];
    fputc('\n', f);
    fwrite(data, esize, n, f);
}

static void put_f32(FILE *f, const char *name, int ndim, const long *dims, const sp_real *v)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = (float)v[i];
    put(f, name, "f32", ndim, dims, x, 4);
    free(x);
}

/* A node [rows, cols] (a view's rows are stride apart) as the array dims (rows * cols values). */
static void put_node(FILE *f, const char *name, int ndim, const long *dims, const sp_tensor *x)
{
    sp_real *v = malloc(sizeof(sp_real) * sp_numel(x));
    for (int i = 0; i < x->rows; i++) memcpy(v + (size_t)i * x->cols, sp_at(x, i, 0), sizeof(sp_real) * (size_t)x->cols);
    put_f32(f, name, ndim, dims, v);
    free(v);
}

static void fill(sp_tensor *x, sp_rng *rng, double a)
{
    for (int i = 0; i < x->rows; i++)
        for (int j = 0; j < x->cols; j++) *sp_at(x, i, j) = (sp_real)((2 * sp_rng_uniform(rng) - 1) * a);
}

/* A user's cell, written from public ops only: the minimal gated unit with one weight matrix
 * [W_hf; W_hn] whose halves the step takes as rows of the parameter. */
static sp_tensor *my_project(sp_tape *t, const sp_cell *c, sp_tensor *x)
{
    return sp_matmul_bias(t, x, 0, c->w_ih, 1, c->b_ih);
}

static sp_status my_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out)
{
    int h = c->hidden_size;
    sp_tensor *f = sp_sigmoid(t, sp_add(t, sp_slice_cols(t, xp, 0, h),
                                        sp_matmul_ex(t, state[0], 0, sp_slice_rows(t, c->w_hh, 0, h), 1)));
    sp_tensor *n = sp_tanh(t, sp_add(t, sp_slice_cols(t, xp, h, h),
                                     sp_matmul_ex(t, sp_mul(t, f, state[0]), 0, sp_slice_rows(t, c->w_hh, h, h), 1)));
    out[0] = sp_add(t, n, sp_mul(t, sp_one_minus(t, f), sp_sub(t, state[0], n)));
    return sp_tape_status(t);
}

static int my_cell(sp_cell *c, sp_params *ps, int l, int d, int in, sp_rng *rng)
{
    memset(c, 0, sizeof *c);
    char name[96];
    c->kind = SP_CELL_CUSTOM;
    c->input_size = in, c->hidden_size = c->out_size = H, c->gate_size = 2 * H;
    c->n_state = 1, c->state_size[0] = H;
    snprintf(c->name, sizeof c->name, "mymgu%d%s", l, d ? "_reverse" : "");
    snprintf(name, sizeof name, "%s.w_ih", c->name);
    c->w_ih = sp_param_uniform(ps, name, 2 * H, in, 0.5, rng);
    snprintf(name, sizeof name, "%s.w_hh", c->name);
    c->w_hh = sp_param_uniform(ps, name, 2 * H, H, 0.5, rng);
    snprintf(name, sizeof name, "%s.b", c->name);
    c->b_ih = sp_param_uniform(ps, name, 1, 2 * H, 0.5, rng);
    c->project = my_project, c->step = my_step;
    return c->w_ih && c->w_hh && c->b_ih ? 0 : -1;
}

typedef struct {
    int input, L, D, has_head;
    sp_embed emb;
    sp_rnn rnn;
    sp_linear head;
    sp_rnn_state init; /* trainable initial states, or all NULL */
    sp_cell_noise nz;  /* zoneout rates (evaluation: their expectation) */
    sp_linear bridge;  /* the post case's (post_fn) */
    sp_attention att;
} model_t;

/* The post case's computation of the stack's values (sp_onnx_model.post): an encoder's bridge to
 * a decoder. hn [B, 2H] (the last layer's final h, directions side by side) and y [T*B, 2H] ->
 * out[0] h = tanh(W hn + b), out[1] c = zeros, out[2] keys = y W_k^T, out[3] the context of
 * additive attention from h over y, masked by len (NULL: whole rows). */
static int post_fn(sp_tape *t, const model_t *m, sp_tensor *hn, sp_tensor *y, int T, const int *len, sp_tensor **out)
{
    out[0] = sp_tanh(t, sp_linear_forward(t, &m->bridge, hn));
    out[1] = sp_const(t, hn->rows, H);
    out[2] = sp_attention_keys(t, &m->att, y);
    out[3] = sp_attention_step(t, &m->att, out[0], out[2], y, T, len, NULL);
    return sp_tape_status(t) == SP_OK ? 0 : -1;
}
static const char *const POST_OUT[4] = {"h", "c", "keys", "ctx"};

/* spool's forward of one run, written as run.* and want.* arrays. */
static int run(FILE *f, model_t *m, const char *tag, int T, int B, const int *lengths, int feed_states, sp_rng *rng)
{
    sp_tape *t = sp_tape_new();
    int *ids = malloc(sizeof(int) * (size_t)(T * B));
    int64_t *ids64 = malloc(sizeof(int64_t) * (size_t)(T * B));
    char name[64];
    long dims[3];
    sp_tensor *x;
    if (m->input == IN_FLOAT) {
        x = sp_const(t, T * B, E);
        fill(x, rng, 1);
        dims[0] = T, dims[1] = B, dims[2] = E;
        snprintf(name, sizeof name, "run.%s.x", tag);
        put_f32(f, name, 3, dims, x->data);
    } else {
        for (int i = 0; i < T * B; i++) ids[i] = sp_rng_below(rng, V);
        if (lengths) /* padding steps get -1, and row 0 an id < 0 inside its real steps: zero rows */
            for (int i = 0; i < T * B; i++)
                if (i / B >= lengths[i % B] || i == 2 * B) ids[i] = -1;
        for (int i = 0; i < T * B; i++) ids64[i] = ids[i];
        dims[0] = T, dims[1] = B;
        snprintf(name, sizeof name, "run.%s.ids", tag);
        put(f, name, "i64", 2, dims, ids64, 8);
        if (m->input == IN_EMBED) x = sp_embed_forward(t, &m->emb, ids, T * B);
        else {
            x = sp_const(t, T * B, V);
            for (int i = 0; i < T * B; i++)
                if (ids[i] >= 0) *sp_at(x, i, ids[i]) = 1;
        }
    }
    if (lengths) {
        dims[0] = B;
        snprintf(name, sizeof name, "run.%s.lengths", tag);
        put(f, name, "i32", 1, dims, lengths, 4);
    }
    sp_rnn_state st = m->init;
    for (int l = 0; l < m->L && feed_states; l++)
        for (int k = 0; k < m->rnn.cell[l][0].n_state; k++) {
            int S = m->rnn.cell[l][0].state_size[k];
            sp_real *all = malloc(sizeof(sp_real) * (size_t)(m->D * B * S));
            for (int d = 0; d < m->D; d++) {
                st.s[l][d][k] = sp_const(t, B, S);
                fill(st.s[l][d][k], rng, 0.8);
                memcpy(all + (size_t)d * B * S, st.s[l][d][k]->data, sizeof(sp_real) * (size_t)(B * S));
            }
            dims[0] = m->D, dims[1] = B, dims[2] = S;
            snprintf(name, sizeof name, "run.%s.%s0_l%d", tag, k ? "c" : "h", l);
            put_f32(f, name, 3, dims, all);
            free(all);
        }
    sp_rnn_opts ro = {0};
    ro.lengths = lengths;
    ro.init = &st;
    ro.noise = m->nz;
    sp_rnn_out out;
    if (sp_rnn_run(t, &m->rnn, x, T, B, &ro, &out) != SP_OK) {
        fprintf(stderr, "onnx_spool: forward: %s\n", sp_tape_errmsg(t));
        return 1;
    }
    if (m->has_head) {
        sp_tensor *logits = sp_linear_forward(t, &m->head, out.out), *probs = sp_softmax(t, logits);
        if (!probs) return fprintf(stderr, "onnx_spool: head: %s\n", sp_tape_errmsg(t)), 1;
        dims[0] = T, dims[1] = B, dims[2] = V;
        snprintf(name, sizeof name, "want.%s.logits", tag);
        put_f32(f, name, 3, dims, logits->data);
        snprintf(name, sizeof name, "want.%s.probs", tag);
        put_f32(f, name, 3, dims, probs->data);
    } else {
        dims[0] = T, dims[1] = B, dims[2] = out.out->cols;
        snprintf(name, sizeof name, "want.%s.y", tag);
        put_f32(f, name, 3, dims, out.out->data);
    }
    for (int l = 0; l < m->L; l++)
        for (int k = 0; k < m->rnn.cell[l][0].n_state; k++) {
            int S = m->rnn.cell[l][0].state_size[k];
            sp_real *all = malloc(sizeof(sp_real) * (size_t)(m->D * B * S));
            for (int d = 0; d < m->D; d++)
                for (int b = 0; b < B; b++)
                    memcpy(all + ((size_t)d * B + b) * S, sp_at(out.final.s[l][d][k], b, 0), sizeof(sp_real) * (size_t)S);
            dims[0] = m->D, dims[1] = B, dims[2] = S;
            snprintf(name, sizeof name, "want.%s.%sn_l%d", tag, k ? "c" : "h", l);
            put_f32(f, name, 3, dims, all);
            free(all);
        }
    if (m->bridge.weight) { /* the post case: its outputs from the final states and the output */
        sp_tensor *last[2] = {out.final.s[m->L - 1][0][0], out.final.s[m->L - 1][1][0]}, *po[4];
        if (post_fn(t, m, sp_concat(t, last, 2), out.out, T, lengths, po))
            return fprintf(stderr, "onnx_spool: post: %s\n", sp_tape_errmsg(t)), 1;
        for (int k = 0; k < 4; k++) {
            int seq = k == 2;
            long d[3] = {seq ? T : B, seq ? B : po[k]->cols, po[k]->cols};
            snprintf(name, sizeof name, "want.%s.%s", tag, POST_OUT[k]);
            put_node(f, name, seq ? 3 : 2, d, po[k]);
        }
    }
    free(ids), free(ids64);
    sp_tape_free(t);
    return 0;
}

/* A case's two runs of a model (run): a, 7 steps of 5 rows with unsorted lengths {7, 1, 0, 4, 6}
 * and states fed; b, 3 steps of 2 rows with the graph's defaults. */
static int model_runs(FILE *f, void *m, sp_rng *rng)
{
    static const int lengths[5] = {7, 1, 0, 4, 6};
    return run(f, m, "a", 7, 5, lengths, 1, rng) || run(f, m, "b", 3, 2, NULL, 0, rng);
}

/* DIR/<cname>.io written by runs (model_runs, step_runs); then the case's name printed and its
 * parameters freed. 0, or 1 with the message printed. */
static int write_io(const char *dir, const char *cname, sp_params *ps, int (*runs)(FILE *, void *, sp_rng *), void *arg,
                    sp_rng *rng)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.io", dir, cname);
    FILE *f = fopen(path, "wb");
    if (!f) return perror(path), 1;
    int rc = runs(f, arg, rng);
    if (fclose(f) != 0 || rc) return 1;
    printf("%s\n", cname);
    sp_params_free(ps);
    return 0;
}

static int one_case(const char *dir, const kind_t *k, int L, int D, sp_merge merge, int input, int trained_init,
                    double zoneout, uint64_t seed)
{
    static const char *in_name[3] = {"embed", "onehot", "float"}, *merge_name[4] = {"concat", "sum", "mean", "mul"};
    char cname[160], path[512];
    snprintf(cname, sizeof cname, "%s_l%d_%s%s%s_%s%s%s", k->name, L, D == 2 ? "bi" : "uni", D == 2 ? "_" : "",
             D == 2 ? merge_name[merge] : "", in_name[input], trained_init ? "_h0" : "", zoneout > 0 ? "_zoneout" : "");
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, seed);
    model_t m;
    memset(&m, 0, sizeof m);
    m.input = input, m.L = L, m.D = D, m.has_head = input != IN_FLOAT;
    m.nz.zoneout_h = zoneout, m.nz.zoneout_c = zoneout * 1.5;
    int I = input == IN_ONEHOT ? V : E;
    sp_cell_opts co = {0};
    co.lstm_flags = k->flags;
    co.proj_size = k->proj;
    if (input == IN_EMBED && sp_embed_init(&m.emb, ps, "embed", V, E, &rng)) return fail(cname);
    /* the stack as sp_rnn_init makes it, but each layer reads the merged width of the one below */
    m.rnn.num_layers = L, m.rnn.bidirectional = D == 2, m.rnn.merge = merge;
    int O = k->proj ? k->proj : H;
    for (int l = 0, in = I; l < L; l++, in = D == 2 ? sp_merge_cols(merge, O, O) : O)
        for (int d = 0; d < D; d++)
            if (k->kind == SP_CELL_CUSTOM ? my_cell(&m.rnn.cell[l][d], ps, l, d, in, &rng) != 0
                                          : sp_cell_init(&m.rnn.cell[l][d], k->kind, ps, "rnn", l, d, in, H, &co, &rng) != SP_OK)
                return fail(cname);
    if (m.has_head && sp_linear_init(&m.head, ps, "head", sp_rnn_out_size(&m.rnn), V, 1, &rng)) return fail(cname);
    if (trained_init) {
        if (sp_rnn_init_state(&m.rnn, ps, "rnn", &m.init)) return fail(cname);
    }
    /* PyTorch's init is small: widen the weights so the gates leave their linear range */
    for (int i = 0; i < ps->count; i++) fill(ps->list[i], &rng, 0.9);
    sp_onnx_model om = {0};
    om.rnn = &m.rnn;
    om.embed = input == IN_EMBED ? &m.emb : NULL;
    om.one_hot = input == IN_ONEHOT ? V : 0;
    om.head = m.has_head ? &m.head : NULL;
    om.softmax = m.has_head;
    om.init = trained_init ? &m.init : NULL;
    om.noise = &m.nz;
    snprintf(path, sizeof path, "%s/%s.onnx", dir, cname);
    if (sp_onnx_export(&om, path) != SP_OK) return fail(cname);
    return write_io(dir, cname, ps, model_runs, &m, &rng);
}

/* ------------------------------------------------- recorded graphs (sp_onnx_export_tape) */

/* A decoder step with attention: the previous token's embedding and the attention context
 * over an encoder's outputs (of K = H columns, so that dot attention fits) into a cell, then a
 * head; every kind of attention, a cell with one state and one with two. */
typedef struct {
    sp_embed emb;     /* V x E */
    sp_attention att; /* query H, keys H, additive size 4 */
    sp_cell cell;     /* E + H -> H */
    sp_linear head;   /* H -> V */
} step_t;

/* One step on t: prev ids [B], state [B, H] (h, and c for an LSTM), enc [T*B, H] with lengths
 * len (NULL: whole rows) -> out[0] logits, out[1..n_state] the next states, out[n_state + 1] the
 * attention weights [B, T]. The keys are made here from enc, so a product over a sequence is in
 * the graph too. */
static int step_fn(sp_tape *t, const step_t *s, const int *prev, int B, sp_tensor **state, sp_tensor *enc, int T,
                   const int *len, sp_tensor **out)
{
    sp_tensor *w = NULL, *ns[SP_CELL_MAX_STATE] = {NULL, NULL};
    sp_tensor *ctx = sp_attention_step(t, &s->att, state[0], sp_attention_keys(t, &s->att, enc), enc, T, len, &w);
    sp_tensor *x[2] = {sp_embed_forward(t, &s->emb, prev, B), ctx};
    if (sp_cell_forward(t, &s->cell, sp_concat(t, x, 2), state, ns) != SP_OK) return -1;
    out[0] = sp_linear_forward(t, &s->head, ns[0]);
    for (int k = 0; k < s->cell.n_state; k++) out[1 + k] = ns[k];
    out[1 + s->cell.n_state] = w;
    return sp_tape_status(t) == SP_OK ? 0 : -1;
}

/* spool's step on random inputs of T steps and B rows, written as run.* and want.* arrays. */
static int step_run(FILE *f, const step_t *s, const char *tag, int T, int B, const int *len, sp_rng *rng)
{
    static const char *const names[2] = {"h", "c"};
    sp_tape *t = sp_tape_new();
    int prev[8];
    int64_t prev64[8];
    char name[64];
    long d[2] = {B, H};
    sp_tensor *state[SP_CELL_MAX_STATE] = {NULL, NULL}, *out[4];
    for (int b = 0; b < B; b++) prev64[b] = prev[b] = b == 1 ? -1 : (int)sp_rng_below(rng, V); /* -1: a zero row */
    snprintf(name, sizeof name, "run.%s.prev", tag);
    put(f, name, "i64", 1, d, prev64, 8);
    for (int k = 0; k < s->cell.n_state; k++) {
        state[k] = sp_const(t, B, H);
        fill(state[k], rng, 0.8);
        snprintf(name, sizeof name, "run.%s.%s", tag, names[k]);
        put_f32(f, name, 2, d, state[k]->data);
    }
    sp_tensor *enc = sp_const(t, T * B, H);
    fill(enc, rng, 1);
    long de[3] = {T, B, H};
    snprintf(name, sizeof name, "run.%s.enc", tag);
    put_f32(f, name, 3, de, enc->data);
    if (len) {
        snprintf(name, sizeof name, "run.%s.lengths", tag);
        put(f, name, "i32", 1, d, len, 4);
    }
    if (step_fn(t, s, prev, B, state, enc, T, len, out)) return fprintf(stderr, "onnx_spool: step: %s\n", sp_tape_errmsg(t)), 1;
    for (int k = 0; k < 2 + s->cell.n_state; k++) {
        const char *nm = k == 0 ? "logits" : k == 1 + s->cell.n_state ? "weights" : k == 1 ? "h_next" : "c_next";
        long dk[2] = {B, out[k]->cols};
        snprintf(name, sizeof name, "want.%s.%s", tag, nm);
        put_node(f, name, 2, dk, out[k]); /* the states are views of the cell's output */
    }
    sp_tape_free(t);
    return 0;
}

/* A step case's two runs: a, 6 steps of 5 rows with lengths {6, 1, 0, 4, 5}; b, 3 steps of 2 rows
 * with the default lengths (whole rows). */
static int step_runs(FILE *f, void *s, sp_rng *rng)
{
    static const int lengths[5] = {6, 1, 0, 4, 5};
    return step_run(f, s, "a", 6, 5, lengths, rng) || step_run(f, s, "b", 3, 2, NULL, rng);
}

static int step_case(const char *dir, sp_attn_kind kind, sp_cell_kind cell, const char *cname, uint64_t seed)
{
    char path[512];
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, seed);
    step_t s;
    memset(&s, 0, sizeof s);
    if (sp_embed_init(&s.emb, ps, "emb", V, E, &rng) || sp_attention_init(&s.att, ps, "attn", kind, H, H, 4, &rng) ||
        sp_cell_init(&s.cell, cell, ps, "dec", 0, 0, E + H, H, NULL, &rng) || sp_linear_init(&s.head, ps, "head", H, V, 1, &rng))
        return fail(cname);
    for (int i = 0; i < ps->count; i++) fill(ps->list[i], &rng, 0.9);
    /* the recording: 13 rows, 7 steps, as no parameter has rows */
    enum { RB = 13, RT = 7 };
    sp_tape *t = sp_tape_new();
    int prev[RB], len[RB];
    for (int b = 0; b < RB; b++) prev[b] = b % V, len[b] = 1 + b % RT;
    sp_tensor *state[SP_CELL_MAX_STATE] = {sp_const(t, RB, H), s.cell.n_state > 1 ? sp_const(t, RB, H) : NULL};
    sp_tensor *enc = sp_const(t, RT * RB, H), *out[4];
    if (step_fn(t, &s, prev, RB, state, enc, RT, len, out)) return fprintf(stderr, "onnx_spool: %s: %s\n", cname, sp_tape_errmsg(t)), 1;
    int two = s.cell.n_state > 1;
    sp_onnx_value in[4] = {{"prev", s.emb.weight, SP_ONNX_IDS}, {"enc", enc, SP_ONNX_SEQ}, {"h", state[0], SP_ONNX_ROWS},
                           {"c", state[1], SP_ONNX_ROWS}};
    sp_onnx_value o[4] = {{"logits", out[0], SP_ONNX_ROWS}, {"h_next", out[1], SP_ONNX_ROWS},
                          {two ? "c_next" : "weights", out[2], SP_ONNX_ROWS}, {"weights", out[3], SP_ONNX_ROWS}};
    sp_onnx_tape g = {.tape = t, .batch = RB, .steps = RT, .n_in = 3 + two, .in = in, .n_out = 3 + two, .out = o,
                      .lengths = "lengths"};
    snprintf(path, sizeof path, "%s/%s.onnx", dir, cname);
    if (sp_onnx_export_tape(&g, path) != SP_OK) return fail(cname);
    sp_tape_free(t);
    return write_io(dir, cname, ps, step_runs, &s, &rng);
}

/* An encoder (embedding -> bidirectional LSTM) whose graph ends with post_fn (sp_onnx_model.post):
 * its outputs, from ONNX Runtime's own LSTM's values, against spool's on the same runs. */
static int post_case(const char *dir, uint64_t seed)
{
    const char *cname = "post_bilstm_bridge_attention";
    char path[512];
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, seed);
    model_t m;
    memset(&m, 0, sizeof m);
    m.input = IN_EMBED, m.L = 1, m.D = 2;
    if (sp_embed_init(&m.emb, ps, "embed", V, E, &rng) || sp_rnn_init(&m.rnn, ps, "rnn", SP_CELL_LSTM, E, H, 1, 1, NULL, &rng) ||
        sp_linear_init(&m.bridge, ps, "bridge", 2 * H, H, 1, &rng) ||
        sp_attention_init(&m.att, ps, "attn", SP_ATTN_ADDITIVE, H, 2 * H, 4, &rng))
        return fail(cname);
    for (int i = 0; i < ps->count; i++) fill(ps->list[i], &rng, 0.9);
    enum { RB = 13, RT = 7 };
    sp_tape *t = sp_tape_new();
    int len[RB];
    for (int b = 0; b < RB; b++) len[b] = 1 + b % RT;
    sp_tensor *hn = sp_const(t, RB, 2 * H), *y = sp_const(t, RT * RB, 2 * H), *po[4];
    if (post_fn(t, &m, hn, y, RT, len, po)) return fprintf(stderr, "onnx_spool: %s: %s\n", cname, sp_tape_errmsg(t)), 1;
    sp_onnx_value in[2] = {{"hn_l0", hn, SP_ONNX_ROWS}, {"y", y, SP_ONNX_SEQ}}, out[4];
    for (int k = 0; k < 4; k++) out[k] = (sp_onnx_value){POST_OUT[k], po[k], k == 2 ? SP_ONNX_SEQ : SP_ONNX_ROWS};
    sp_onnx_tape post = {.tape = t, .batch = RB, .steps = RT, .n_in = 2, .in = in, .n_out = 4, .out = out};
    sp_onnx_model om = {.embed = &m.emb, .rnn = &m.rnn, .post = &post};
    snprintf(path, sizeof path, "%s/%s.onnx", dir, cname);
    if (sp_onnx_export(&om, path) != SP_OK) return fail(cname);
    sp_tape_free(t);
    return write_io(dir, cname, ps, model_runs, &m, &rng);
}

int main(int argc, char **argv)
{
    if (argc != 2) return fprintf(stderr, "usage: onnx_spool DIR\n"), 2;
    if (!sp_onnx_available()) return fprintf(stderr, "onnx_spool: this spool was built without ONNX export\n"), 77;
    int rc = 0;
    uint64_t seed = 1;
    for (int k = 0; k < NKINDS; k++)
        for (int L = 1; L <= 2; L++)
            for (int D = 1; D <= 2; D++)
                rc |= one_case(argv[1], &KINDS[k], L, D, SP_MERGE_CONCAT, (int)(seed % 3), seed % 4 == 1, 0, seed), seed++;
    /* the other merges of a bidirectional stack, on one kind of each operator */
    for (int mg = SP_MERGE_SUM; mg <= SP_MERGE_MUL; mg++)
        for (int k = 0; k < NKINDS; k += 3) rc |= one_case(argv[1], &KINDS[k], 2, 2, (sp_merge)mg, (int)(seed % 3), 1, 0, seed), seed++;
    /* zoneout at evaluation (its expectation): every layer a Scan, ONNX's operators cannot mix states */
    for (int k = 0; k < NKINDS; k += 2) rc |= one_case(argv[1], &KINDS[k], 2, 1 + (k / 2) % 2, SP_MERGE_CONCAT, (int)(seed % 3), 0, 0.2, seed), seed++;
    /* recorded graphs: a decoder step with each kind of attention, an encoder with a post */
    rc |= step_case(argv[1], SP_ATTN_ADDITIVE, SP_CELL_LSTM, "step_additive_lstm", seed++);
    rc |= step_case(argv[1], SP_ATTN_DOT, SP_CELL_GRU_RESET_AFTER_MATMUL, "step_dot_gru", seed++);
    rc |= step_case(argv[1], SP_ATTN_GENERAL, SP_CELL_MINGRU, "step_general_mingru", seed++);
    rc |= post_case(argv[1], seed++);
    return rc;
}
