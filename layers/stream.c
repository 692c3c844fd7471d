/* SPDX-License-Identifier: MIT */
/* stream.c - forward-only streaming inference: a stack stepped one time step at a time on its own
 * state, for sampling, scoring and prediction after training.
 *
 * The stream owns the state of every layer in buffers of its own and a private tape that is
 * rewound at the start of every step, so memory is one step's worth whatever the length of the
 * stream (O(1) per step, no malloc after the first step; the weights packed for the small
 * products are kept from step to step), nothing is kept for a backward pass,
 * and the state never sits on a tape longer than one step. Each step runs exactly the ops the
 * tape path runs (sp_cell_forward per layer, zoneout's evaluation expectation where set), so its
 * outputs equal those of sp_rnn_run over the whole sequence (tests/test_stream.c).
 * sp_stream_set_table keeps layer 0's input projection of every token of a small vocabulary,
 * made row by row with the same product a step runs, so a token stream skips that product. */
#include "layers_internal.h"

#include <stdlib.h>
#include <string.h>

struct sp_stream {
    sp_rnn rnn;        /* a copy: the cells' parameter pointers, sizes and step functions */
    sp_cell_noise noise;
    int B;
    sp_tape *tape;
    sp_real *state[SP_RNN_MAX_LAYERS][SP_CELL_MAX_STATE];
    int began;
    sp_real *tab;      /* sp_stream_set_table: tab_rows rows of tab_cols (layer 0's projected input) */
    int tab_rows, tab_cols, tab_projected;
};

sp_stream *sp_stream_new(const sp_rnn *r, int B, const sp_cell_noise *noise)
{
    if (!r || r->num_layers < 1 || r->num_layers > SP_RNN_MAX_LAYERS || r->bidirectional || B < 1) {
        sp_fail(SP_ERR_ARG, "stream: needs a one-directional stack of 1..%d layers and B >= 1 (have %s, B = %d)",
                SP_RNN_MAX_LAYERS, !r ? "NULL" : r->bidirectional ? "a bidirectional stack" : "a bad layer count", B);
        return NULL;
    }
    sp_stream *s = calloc(1, sizeof *s);
    if (!s) {
        sp_fail(SP_ERR_NOMEM, "stream: out of memory");
        return NULL;
    }
    s->rnn = *r;
    if (noise) s->noise = *noise;
    s->noise.train = 0;
    s->noise.rng = NULL;
    s->B = B;
    s->tape = sp_tape_new();
    int ok = s->tape != NULL;
    for (int l = 0; ok && l < r->num_layers; l++)
        for (int k = 0; ok && k < r->cell[l][0].n_state; k++)
            ok = (s->state[l][k] = calloc((size_t)B * r->cell[l][0].state_size[k], sizeof(sp_real))) != NULL;
    if (!ok) {
        sp_stream_free(s);
        sp_fail(SP_ERR_NOMEM, "stream: out of memory");
        return NULL;
    }
    return s;
}

void sp_stream_free(sp_stream *s)
{
    if (!s) return;
    for (int l = 0; l < SP_RNN_MAX_LAYERS; l++)
        for (int k = 0; k < SP_CELL_MAX_STATE; k++) free(s->state[l][k]);
    sp_tape_free(s->tape);
    free(s->tab);
    free(s);
}

void sp_stream_reset(sp_stream *s)
{
    if (!s) return;
    for (int l = 0; l < s->rnn.num_layers; l++)
        for (int k = 0; k < s->rnn.cell[l][0].n_state; k++)
            memset(s->state[l][k], 0, (size_t)s->B * s->rnn.cell[l][0].state_size[k] * sizeof(sp_real));
}

sp_real *sp_stream_state(sp_stream *s, int layer, int k)
{
    if (!s || layer < 0 || layer >= s->rnn.num_layers || k < 0 || k >= s->rnn.cell[layer][0].n_state) return NULL;
    return s->state[layer][k];
}

sp_tape *sp_stream_begin(sp_stream *s)
{
    if (!s) return NULL;
    sp_tape_rewind(s->tape); /* parameters are fixed while streaming: keep their packed copies */
    s->began = 1;
    return s->tape;
}

/* Every layer one step; layer 0 reads x [B, I], or (x NULL) xp [B, G], its input already projected. */
static sp_tensor *step(sp_stream *s, sp_tensor *x, sp_tensor *xp)
{
    sp_tape *t = s->tape;
    sp_tensor *h = x;
    for (int l = 0; l < s->rnn.num_layers; l++) {
        const sp_cell *c = &s->rnn.cell[l][0];
        sp_tensor *st[SP_CELL_MAX_STATE], *ns[SP_CELL_MAX_STATE] = {0};
        for (int k = 0; k < c->n_state; k++) {
            if (!(st[k] = sp_const(t, s->B, c->state_size[k]))) return NULL;
            memcpy(st[k]->data, s->state[l][k], (size_t)s->B * c->state_size[k] * sizeof(sp_real));
        }
        if ((l == 0 && !x ? c->step(t, c, xp, st, ns) : sp_cell_forward(t, c, h, st, ns)) != SP_OK) return NULL;
        for (int k = 0; k < c->n_state; k++) {
            double z = k ? s->noise.zoneout_c : s->noise.zoneout_h;
            sp_tensor *v = ns[k];
            if (z > 0 && k < 2) { /* zoneout at evaluation: its expectation, as sp_seq_run does */
                sp_tensor *keep = sp_const(t, 1, 1);
                if (!keep) return NULL;
                keep->data[0] = (sp_real)(1 - z);
                v = sp_add(t, st[k], sp_mul(t, sp_sub(t, v, st[k]), keep));
                if (!v) return NULL;
            }
            ns[k] = v;
        }
        for (int k = 0; k < c->n_state; k++)
            for (int i = 0; i < s->B; i++)
                memcpy(s->state[l][k] + (size_t)i * c->state_size[k], sp_at(ns[k], i, 0),
                       (size_t)c->state_size[k] * sizeof(sp_real));
        h = ns[0];
    }
    return h;
}

/* The checks every step makes: begun, tape healthy. */
static int step_ok(sp_stream *s)
{
    if (!s->began) {
        sp_tape_fail(s->tape, SP_ERR_STATE, "stream: call sp_stream_begin before each step");
        return 0;
    }
    s->began = 0;
    return sp_tape_status(s->tape) == SP_OK;
}

sp_tensor *sp_stream_step(sp_stream *s, sp_tensor *x)
{
    if (!s || !step_ok(s)) return NULL;
    if (!x || x->rows != s->B) {
        sp_tape_fail(s->tape, SP_ERR_SHAPE, "stream: input must have B = %d rows, has %d", s->B, x ? x->rows : 0);
        return NULL;
    }
    return step(s, x, NULL);
}

sp_status sp_stream_set_table(sp_stream *s, const sp_tensor *table)
{
    if (!s) return sp_fail(SP_ERR_ARG, "stream table: stream is NULL");
    const sp_cell *c = &s->rnn.cell[0][0];
    if (!table || table->cols != c->input_size || table->rows < 1)
        return sp_fail(SP_ERR_SHAPE, "stream table: needs [V, %d] rows (layer 0's input size), has %s [%d x %d]",
                       c->input_size, table ? table->name : "NULL", table ? table->rows : 0, table ? table->cols : 0);
    int V = table->rows, G = c->project ? c->gate_size : c->input_size;
    sp_real *tab = malloc(sizeof(sp_real) * (size_t)(V + 1) * G);
    sp_tape *t = sp_tape_new();
    sp_status st = tab && t ? SP_OK : sp_fail(SP_ERR_NOMEM, "stream table: out of memory for %d x %d", V + 1, G);
    /* one row at a time, as a step projects its one-row input: the same product, the same sums */
    for (int v = 0; st == SP_OK && v <= V; v++) {
        sp_tape_rewind(t);
        sp_tensor *x = sp_const(t, 1, c->input_size), *xp = x;
        if (x && v < V) memcpy(x->data, sp_at((sp_tensor *)table, v, 0), sizeof(sp_real) * c->input_size);
        if (x && v == V) memset(x->data, 0, sizeof(sp_real) * c->input_size); /* id < 0: a zero input row */
        if (x && c->project) xp = c->project(t, c, x);
        if (!xp || xp->cols != G) {
            st = sp_fail(sp_tape_status(t) != SP_OK ? sp_tape_status(t) : SP_ERR_SHAPE, "stream table: %s",
                         sp_tape_status(t) != SP_OK ? sp_tape_errmsg(t) : "the projection has an unexpected width");
            break;
        }
        memcpy(tab + (size_t)v * G, sp_at(xp, 0, 0), sizeof(sp_real) * G);
    }
    sp_tape_free(t);
    if (st != SP_OK) {
        free(tab);
        return st;
    }
    free(s->tab);
    s->tab = tab, s->tab_rows = V, s->tab_cols = G, s->tab_projected = c->project != NULL;
    return SP_OK;
}

sp_tensor *sp_stream_step_ids(sp_stream *s, const int *ids)
{
    if (!s || !step_ok(s)) return NULL;
    sp_tape *t = s->tape;
    if (!s->tab || !ids) {
        sp_tape_fail(t, SP_ERR_ARG, "stream: %s", !ids ? "ids is NULL" : "sp_stream_step_ids needs sp_stream_set_table first");
        return NULL;
    }
    sp_tensor *x = sp_const(t, s->B, s->tab_cols);
    if (!x) return NULL;
    for (int i = 0; i < s->B; i++) {
        if (ids[i] >= s->tab_rows) {
            sp_tape_fail(t, SP_ERR_ARG, "stream: id %d of row %d is outside the table's %d rows", ids[i], i, s->tab_rows);
            return NULL;
        }
        memcpy(sp_at(x, i, 0), s->tab + (size_t)(ids[i] < 0 ? s->tab_rows : ids[i]) * s->tab_cols,
               sizeof(sp_real) * s->tab_cols);
    }
    return s->tab_projected ? step(s, NULL, x) : step(s, x, NULL);
}
