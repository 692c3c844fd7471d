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
} model_t;

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
    free(ids), free(ids64);
    sp_tape_free(t);
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
    snprintf(path, sizeof path, "%s/%s.io", dir, cname);
    FILE *f = fopen(path, "wb");
    if (!f) return perror(path), 1;
    static const int lengths[5] = {7, 1, 0, 4, 6};
    int rc = run(f, &m, "a", 7, 5, lengths, 1, &rng) || run(f, &m, "b", 3, 2, NULL, 0, &rng);
    if (fclose(f) != 0 || rc) return 1;
    printf("%s\n", cname);
    sp_params_free(ps);
    return 0;
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
    return rc;
}
