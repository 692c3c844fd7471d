/* SPDX-License-Identifier: MIT */
/* ctc_lm.c - a trained character-level language model (token table -> one-directional stack ->
 * linear head, spool-charlm's model) as sp_ctc_beam_search's language model (sp_ctc_lm), read
 * through a stream (layers/stream.c): the new prefixes of a frame are one batched step of a stream
 * of `rows` rows, their states copied in from their parents' and out again.
 *
 * A state is the prefix's next-label log-probabilities (C + 1 doubles, kept so a label the model
 * does not know can pass the state on unchanged) followed by every layer's state row. */
#include "layers_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    sp_ctc_lm lm; /* first: what sp_ctc_lm_stream_new hands out */
    sp_stream *s;
    sp_rnn rnn;
    sp_linear head;
    int C, V, bos, eos, rows;
    int *label_token, *ids, *row_of; /* [C], [rows], [rows] */
    double *lsm;                     /* [V] */
} stream_lm;

static double *lm_logp(void *state) { return state; }

static sp_real *lm_row(const stream_lm *m, void *state) { return (sp_real *)((double *)state + m->C + 1); }

/* The states of the stream's row r to or from the flat state st (to_stream: st -> row). */
static void copy_row(stream_lm *m, int r, void *st, int to_stream)
{
    sp_real *p = lm_row(m, st);
    for (int l = 0; l < m->rnn.num_layers; l++)
        for (int k = 0; k < m->rnn.cell[l][0].n_state; k++) {
            int S = m->rnn.cell[l][0].state_size[k];
            sp_real *row = sp_stream_state(m->s, l, k) + (size_t)r * S;
            if (to_stream) memcpy(row, p, sizeof(sp_real) * S);
            else memcpy(p, row, sizeof(sp_real) * S);
            p += S;
        }
}

/* The label distribution from one row of the head's logits into logp (C + 1 values). */
static void fill_logp(stream_lm *m, const sp_real *logits, double *logp)
{
    double mx = -DBL_MAX, s = 0;
    for (int v = 0; v < m->V; v++) mx = (double)logits[v] > mx ? (double)logits[v] : mx;
    for (int v = 0; v < m->V; v++) s += exp((double)logits[v] - mx);
    for (int v = 0; v < m->V; v++) m->lsm[v] = (double)logits[v] - mx - log(s);
    for (int c = 0; c < m->C; c++) logp[c] = m->label_token[c] >= 0 ? m->lsm[m->label_token[c]] : -log((double)m->V);
    logp[m->C] = m->eos >= 0 ? m->lsm[m->eos] : 0;
}

/* One step of the rows whose ids are set (the others read a zero row, their output unused). */
static sp_status step_rows(stream_lm *m, int n, void *const *to, double *const *logp)
{
    sp_tape *t = sp_stream_begin(m->s);
    sp_tensor *h = sp_stream_step_ids(m->s, m->ids);
    sp_tensor *y = h ? sp_linear_forward(t, &m->head, h) : NULL;
    if (!y) return sp_fail(sp_tape_status(t), "ctc language model: %s", sp_tape_errmsg(t));
    for (int r = 0; r < n; r++) {
        copy_row(m, r, to[m->row_of[r]], 0);
        fill_logp(m, sp_at(y, r, 0), lm_logp(to[m->row_of[r]]));
        memcpy(logp[m->row_of[r]], lm_logp(to[m->row_of[r]]), sizeof(double) * (m->C + 1));
    }
    return SP_OK;
}

static sp_status lm_start(void *user, void *state, double *logp)
{
    stream_lm *m = user;
    memset(state, 0, m->lm.state_size);
    if (m->bos < 0) { /* nothing read yet: the uniform guess */
        double *lp = lm_logp(state);
        for (int c = 0; c < m->C; c++) lp[c] = -log((double)m->V);
        lp[m->C] = m->eos >= 0 ? -log((double)m->V) : 0;
        memcpy(logp, lp, sizeof(double) * (m->C + 1));
        return SP_OK;
    }
    for (int r = 0; r < m->rows; r++) m->ids[r] = -1;
    m->ids[0] = m->bos;
    m->row_of[0] = 0;
    copy_row(m, 0, state, 1);
    return step_rows(m, 1, (void *const[1]){state}, (double *const[1]){logp});
}

static sp_status lm_advance(void *user, int n, const void *const *from, const int *labels, void *const *to,
                            double *const *logp)
{
    stream_lm *m = user;
    for (int i0 = 0; i0 < n;) { /* chunks of at most `rows` prefixes the model knows the label of */
        int r = 0, i = i0;
        for (int k = 0; k < m->rows; k++) m->ids[k] = -1;
        for (; i < n && r < m->rows; i++) {
            int c = labels[i], tok = c >= 0 && c < m->C ? m->label_token[c] : -1;
            if (tok < 0) { /* a label the model does not know: its state passes on */
                memcpy(to[i], from[i], m->lm.state_size);
                memcpy(logp[i], lm_logp(to[i]), sizeof(double) * (m->C + 1));
                continue;
            }
            copy_row(m, r, (void *)from[i], 1);
            m->ids[r] = tok;
            m->row_of[r++] = i;
        }
        if (r > 0) {
            sp_status st = step_rows(m, r, to, logp);
            if (st != SP_OK) return st;
        }
        i0 = i;
    }
    return SP_OK;
}

void sp_ctc_lm_stream_free(sp_ctc_lm *lm)
{
    stream_lm *m = (stream_lm *)lm;
    if (!m) return;
    sp_stream_free(m->s);
    free(m->label_token);
    free(m->ids);
    free(m->row_of);
    free(m->lsm);
    free(m);
}

sp_ctc_lm *sp_ctc_lm_stream_new(const sp_rnn *rnn, const sp_tensor *table, const sp_linear *head, int C,
                                const int *label_token, int bos, int eos, int rows)
{
    if (!rnn || !table || !head || !label_token || C < 1 || rows < 1) {
        sp_fail(SP_ERR_ARG, "ctc_lm_stream: rnn, table, head and label_token must not be NULL, C (%d) and rows (%d) >= 1", C,
                rows);
        return NULL;
    }
    int V = head->out;
    for (int c = 0; c < C; c++)
        if (label_token[c] >= V || label_token[c] < -1) {
            sp_fail(SP_ERR_ARG, "ctc_lm_stream: label_token[%d] = %d is not -1 or a token of the head's %d", c,
                    label_token[c], V);
            return NULL;
        }
    if (bos >= table->rows || eos >= V || bos < -1 || eos < -1) {
        sp_fail(SP_ERR_ARG, "ctc_lm_stream: bos %d (table of %d tokens) or eos %d (head of %d) is not -1 or a token", bos,
                table->rows, eos, V);
        return NULL;
    }
    stream_lm *m = calloc(1, sizeof *m);
    if (!m) {
        sp_fail(SP_ERR_NOMEM, "ctc_lm_stream: out of memory");
        return NULL;
    }
    *m = (stream_lm){.rnn = *rnn, .head = *head, .C = C, .V = V, .bos = bos, .eos = eos, .rows = rows};
    size_t reals = 0;
    for (int l = 0; l < rnn->num_layers && l < SP_RNN_MAX_LAYERS; l++)
        for (int k = 0; k < rnn->cell[l][0].n_state; k++) reals += (size_t)rnn->cell[l][0].state_size[k];
    m->lm = (sp_ctc_lm){.state_size = sizeof(double) * (C + 1) + sizeof(sp_real) * reals, .start = lm_start,
                        .advance = lm_advance, .user = m};
    m->label_token = malloc(sizeof(int) * C);
    m->ids = malloc(sizeof(int) * rows);
    m->row_of = malloc(sizeof(int) * rows);
    m->lsm = malloc(sizeof(double) * V);
    if (!m->label_token || !m->ids || !m->row_of || !m->lsm) {
        sp_ctc_lm_stream_free(&m->lm);
        sp_fail(SP_ERR_NOMEM, "ctc_lm_stream: out of memory");
        return NULL;
    }
    memcpy(m->label_token, label_token, sizeof(int) * C);
    m->s = sp_stream_new(rnn, rows, NULL); /* checks the stack (one direction) */
    if (!m->s || sp_stream_set_table(m->s, table) != SP_OK) {
        sp_status st = sp_last_status();
        char msg[400];
        snprintf(msg, sizeof msg, "%s", sp_last_error());
        sp_ctc_lm_stream_free(&m->lm);
        sp_fail(st, "ctc_lm_stream: %s", msg);
        return NULL;
    }
    return &m->lm;
}
