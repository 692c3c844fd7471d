/* SPDX-License-Identifier: MIT */
/* wordlm_lm.c - word-level language model of spool-wordlm (see wordlm_lm.h): the whole sequence
 * goes through sp_seq_run and one head GEMM over all T*B steps; scoring is one such forward over
 * the sentence, and sampling streams one word at a time through sp_stream (forward-only, the
 * state stepped in place, one step's memory). */
#include "wordlm_lm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int wl_model_init(wl_model *m, int V, int E, int H, const char *cell, double dropout, sp_rng *rng)
{
    memset(m, 0, sizeof *m);
    m->V = V, m->E = E, m->H = H, m->dropout = dropout;
    if (!strcmp(cell, "lstm")) m->kind = SP_CELL_LSTM;
    else if (!strcmp(cell, "gru")) m->kind = SP_CELL_GRU_RESET_AFTER_MATMUL;
    else if (!strcmp(cell, "rnn")) m->kind = SP_CELL_RNN_TANH;
    else if (!strcmp(cell, "mingru")) m->kind = SP_CELL_MINGRU;
    else if (!strcmp(cell, "minlstm")) m->kind = SP_CELL_MINLSTM;
    else return sp_fail(SP_ERR_ARG, "wordlm: unknown cell '%s' (lstm, gru, rnn, mingru, minlstm)", cell), -1;
    m->ps = sp_params_new();
    if (!m->ps) return -1;
    sp_cell_opts co = {.forget_bias_one = m->kind == SP_CELL_LSTM};
    if (sp_embed_init(&m->emb, m->ps, "emb", V, E, rng) ||
        sp_cell_init(&m->cell, m->kind, m->ps, "rnn", 0, 0, E, H, &co, rng) ||
        sp_linear_init(&m->head, m->ps, "head", H, V, 1, rng))
        return -1;
    /* N(0, 1) embeddings (torch's default) make the first steps needlessly violent; 0.1 is the
     * usual scale for word LMs (Zaremba et al. 2014 used U(-0.1, 0.1)). */
    for (size_t k = 0; k < sp_numel(m->emb.weight); k++) m->emb.weight->data[k] *= (sp_real)0.1;
    return 0;
}

void wl_model_free(wl_model *m)
{
    sp_params_free(m->ps);
    m->ps = NULL;
}

sp_tensor *wl_model_loss(sp_tape *t, const wl_model *m, const int *ids, const int *tgt, int T, int B,
                         float *row_loss, int train, sp_rng *rng)
{
    int *len = sp_tape_alloc(t, sizeof(int) * (size_t)B);
    if (!len) return NULL;
    for (int b = 0; b < B; b++) {
        len[b] = 0;
        for (int s = 0; s < T; s++) len[b] += ids[s * B + b] >= 0;
    }
    sp_tensor *x = sp_embed_forward(t, &m->emb, ids, T * B);
    x = sp_dropout(t, x, m->dropout, rng, train);
    sp_seq_opts so = {.lengths = len};
    sp_seq_out out;
    if (sp_seq_run(t, &m->cell, x, T, B, &so, &out) != SP_OK) return NULL;
    sp_tensor *h = sp_dropout(t, out.out, m->dropout, rng, train);
    return sp_softmax_xent(t, sp_linear_forward(t, &m->head, h), tgt, row_loss);
}

int wl_eval(sp_tape *t, const wl_model *m, const wl_corpus *c, int B, double *nll, long *n)
{
    int *which = malloc(sizeof(int) * (size_t)B), *ids = NULL, *tgt = NULL;
    float *rl = NULL;
    int cap = 0, rc = 0;
    *nll = 0, *n = 0;
    for (int i = 0; i < c->n && !rc; i += B) {
        int nb = c->n - i < B ? c->n - i : B;
        for (int b = 0; b < nb; b++) which[b] = i + b;
        int T = wl_batch_T(c, which, nb);
        if (T * nb > cap) {
            cap = T * nb;
            free(ids), free(tgt), free(rl);
            ids = malloc(sizeof(int) * (size_t)cap), tgt = malloc(sizeof(int) * (size_t)cap);
            rl = malloc(sizeof(float) * (size_t)cap);
            if (!ids || !tgt || !rl) {
                rc = -1;
                break;
            }
        }
        *n += wl_batch_fill(c, which, nb, T, ids, tgt);
        sp_tape_reset(t);
        if (!wl_model_loss(t, m, ids, tgt, T, nb, rl, 0, NULL)) {
            rc = -1;
            break;
        }
        for (int k = 0; k < T * nb; k++) *nll += rl[k];
    }
    free(which), free(ids), free(tgt), free(rl);
    return rc;
}

int wl_score(sp_tape *t, const wl_model *m, const int *ids, int L, double *logp)
{
    int T = L + 1;
    sp_tape_reset(t);
    int *in = sp_tape_alloc(t, sizeof(int) * (size_t)T), *tg = sp_tape_alloc(t, sizeof(int) * (size_t)T);
    float *rl = sp_tape_alloc(t, sizeof(float) * (size_t)T);
    if (!in || !tg || !rl) return -1;
    for (int s = 0; s < T; s++) in[s] = s ? ids[s - 1] : WL_EOS, tg[s] = s < L ? ids[s] : WL_EOS;
    if (!wl_model_loss(t, m, in, tg, T, 1, rl, 0, NULL)) return -1;
    for (int s = 0; s < T; s++) logp[s] = -(double)rl[s];
    return 0;
}

int wl_sample(sp_tape *t, const wl_model *m, sp_rng *rng, double temp, int allow_unk, int maxlen, int *out)
{
    (void)t; /* streaming inference (sp_stream): one word's memory, whatever the length */
    sp_rnn one = {0};
    one.num_layers = 1;
    one.cell[0][0] = m->cell;
    sp_stream *s = sp_stream_new(&one, 1, NULL);
    double *p = malloc(sizeof(double) * (size_t)m->V);
    if (!p || !s) {
        free(p);
        sp_stream_free(s);
        return -1;
    }
    int prev = WL_EOS, n = 0, ok = 1;
    while (n < maxlen) {
        sp_tape *st = sp_stream_begin(s);
        sp_tensor *h = sp_stream_step(s, sp_embed_forward(st, &m->emb, &prev, 1));
        sp_tensor *lg = h ? sp_linear_forward(st, &m->head, h) : NULL;
        if (!lg) {
            ok = 0;
            break;
        }
        double mx = -INFINITY, z = 0;
        for (int v = 0; v < m->V; v++) mx = fmax(mx, lg->data[v] / temp);
        for (int v = 0; v < m->V; v++) z += p[v] = (v == WL_UNK && !allow_unk) ? 0 : exp(lg->data[v] / temp - mx);
        double u = sp_rng_uniform(rng) * z, acc = 0;
        int w = m->V - 1;
        for (int v = 0; v < m->V; v++)
            if ((acc += p[v]) > u && p[v] > 0) {
                w = v;
                break;
            }
        if (w == WL_EOS) break;
        out[n++] = prev = w;
    }
    free(p);
    sp_stream_free(s);
    return ok ? n : -1;
}
