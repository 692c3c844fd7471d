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
 * outputs equal those of sp_rnn_run over the whole sequence (tests/test_stream.c). */
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

sp_tensor *sp_stream_step(sp_stream *s, sp_tensor *x)
{
    if (!s) return NULL;
    sp_tape *t = s->tape;
    if (!s->began) {
        sp_tape_fail(t, SP_ERR_STATE, "stream: call sp_stream_begin before each step");
        return NULL;
    }
    s->began = 0;
    if (sp_tape_status(t) != SP_OK) return NULL;
    if (!x || x->rows != s->B) {
        sp_tape_fail(t, SP_ERR_SHAPE, "stream: input must have B = %d rows, has %d", s->B, x ? x->rows : 0);
        return NULL;
    }
    sp_tensor *h = x;
    for (int l = 0; l < s->rnn.num_layers; l++) {
        const sp_cell *c = &s->rnn.cell[l][0];
        sp_tensor *st[SP_CELL_MAX_STATE], *ns[SP_CELL_MAX_STATE] = {0};
        for (int k = 0; k < c->n_state; k++) {
            if (!(st[k] = sp_const(t, s->B, c->state_size[k]))) return NULL;
            memcpy(st[k]->data, s->state[l][k], (size_t)s->B * c->state_size[k] * sizeof(sp_real));
        }
        if (sp_cell_forward(t, c, h, st, ns) != SP_OK) return NULL;
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
