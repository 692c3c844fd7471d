/* SPDX-License-Identifier: MIT */
/* ner.c - spool-ner: a named-entity tagger, the many-to-many (Tx = Ty) shape of a recurrent
 * network. Each word becomes a vector (a learned word embedding, a small casing embedding and,
 * with --chars, the two final states of a character-level BiLSTM run over the word's letters);
 * a bidirectional LSTM reads the sentence both ways, and a linear layer scores each word's BIO
 * tags. The output layer is a linear-chain CRF (--output crf, the default: transition scores
 * between tags, the sentence's log-likelihood by the forward algorithm, Viterbi decoding that
 * forbids I-X after anything but B-X/I-X) or a per-token softmax (--output softmax). Scored by entity-level precision/recall/F1 with exact span matching (the CoNLL
 * rules, see ner_eval.h), next to the most-frequent-tag baseline computed on the same data.
 *
 * Batches hold sentences of mixed lengths in random order: the runners get per-row lengths, the
 * loss ignores padded positions (target -1), so nothing is sorted or packed.
 *
 *   spool-ner train [options]             train, keep the best model (dev F1), score on test
 *   spool-ner eval --model M --test FILE  score a saved model
 *   spool-ner tag --model M "some text"   tag a sentence (words split on spaces and punctuation); the
 *                                         BiLSTMs run forward only (sp_stream_run; --tape: on a tape)
 *   spool-ner export --model M --onnx F   emission scores and the CRF as ONNX (docs/onnx.md)
 */
#include "spool.h"
#include "spool/layers.h"
#include "spool/optim.h"

#include "common/opts.h"
#include "common/progress.h"
#include "common/text.h"
#include "ner_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *prog = "spool-ner";

/* ================================================================================== model */

enum { N_CASES = 6, MAX_WORD_CHARS = 24 };

typedef struct {
    int embed, case_dim, hidden, layers, chars, char_embed, char_hidden;
    int crf; /* 1: CRF output layer, 0: per-token softmax */
    double dropout;
} ner_config;

typedef struct {
    ner_config cfg;
    ex_vocab *words;   /* normalised training words; id 0 = "<unk>" */
    ex_vocab *tags;    /* BIO tags of the training data */
    ex_vocab *chars;   /* UTF-8 characters of the training words; id 0 = "<unk>" (with --chars) */
    sp_params *ps;
    sp_embed wemb, cemb, chemb;
    sp_rnn rnn, char_rnn;
    sp_linear out;
    sp_tensor *trans, *tstart, *tend;          /* CRF: [K, K] transitions, [1, K] first/last tag */
    unsigned char *allowed, *allowed_start;    /* BIO masks for decoding (ner_bio_allowed) */
} ner_model;

/* Lower-case and map every digit to 0: "1984" and "2001" share one embedding. */
static void normalise(const char *w, char *buf, size_t cap)
{
    size_t i = 0;
    for (; w[i] && i + 1 < cap; i++) {
        char ch = w[i];
        buf[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : (ch >= '0' && ch <= '9') ? '0' : ch;
    }
    buf[i] = '\0';
}

/* What lower-casing threw away, as one of N_CASES classes: capitals are the strongest single cue
 * for names, and a word embedding of the lower-cased form cannot see them. */
static int case_id(const char *w)
{
    int up = 0, low = 0, dig = 0;
    for (const unsigned char *p = (const unsigned char *)w; *p; p++) {
        if (*p >= 'A' && *p <= 'Z') up++;
        else if ((*p >= 'a' && *p <= 'z') || *p >= 0x80) low++;
        else if (*p >= '0' && *p <= '9') dig++;
    }
    if (!up && !low) return dig ? 4 : 5;         /* number / punctuation */
    if (!up) return 0;                           /* lower */
    if (!low) return 2;                          /* ALL CAPS */
    if (up == 1 && w[0] >= 'A' && w[0] <= 'Z') return 1; /* Initial */
    return 3;                                    /* miXed */
}

/* The UTF-8 characters of w, at most max of them (long URLs keep their first max). */
static int split_chars(const char *w, char out[][5], int max)
{
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)w; *p && n < max; n++) {
        int l = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 1;
        int k = 0;
        for (; k < l && p[k]; k++) out[n][k] = (char)p[k];
        out[n][k] = '\0';
        p += k;
    }
    return n;
}

static int model_build(ner_model *m, sp_rng *rng)
{
    ner_config *c = &m->cfg;
    m->ps = sp_params_new();
    if (!m->ps) return -1;
    int I = c->embed + c->case_dim + (c->chars ? 2 * c->char_hidden : 0);
    if (sp_embed_init(&m->wemb, m->ps, "word_embed", m->words->n, c->embed, rng) ||
        sp_embed_init(&m->cemb, m->ps, "case_embed", N_CASES, c->case_dim, rng))
        return -1;
    if (c->chars && (sp_embed_init(&m->chemb, m->ps, "char_embed", m->chars->n, c->char_embed, rng) ||
                     sp_rnn_init(&m->char_rnn, m->ps, "char_lstm", SP_CELL_LSTM, c->char_embed, c->char_hidden, 1,
                                 1, NULL, rng)))
        return -1;
    if (sp_rnn_init(&m->rnn, m->ps, "lstm", SP_CELL_LSTM, I, c->hidden, c->layers, 1, NULL, rng) ||
        sp_linear_init(&m->out, m->ps, "out", sp_rnn_out_size(&m->rnn), m->tags->n, 1, rng))
        return -1;
    int K = m->tags->n;
    if (c->crf) { /* transition scores start at 0: no preference until trained */
        m->trans = sp_param(m->ps, "crf/transitions", K, K);
        m->tstart = sp_param(m->ps, "crf/start", 1, K);
        m->tend = sp_param(m->ps, "crf/end", 1, K);
        if (!m->trans || !m->tstart || !m->tend) return -1;
    }
    m->allowed = malloc((size_t)K * K), m->allowed_start = malloc((size_t)K);
    if (!m->allowed || !m->allowed_start) return -1;
    ner_bio_allowed((const char *const *)m->tags->word, K, m->allowed, m->allowed_start);
    return 0;
}

static void model_free(ner_model *m)
{
    sp_params_free(m->ps);
    ex_vocab_free(m->words), ex_vocab_free(m->tags), ex_vocab_free(m->chars);
    free(m->allowed), free(m->allowed_start);
    memset(m, 0, sizeof *m);
}

/* ================================================================================ batches */

/* One batch in the [T*B] time-major layout: row t*B + b is word t of sentence b. */
typedef struct {
    int T, B, Tc;
    int *len;          /* [B] words per sentence */
    int *wid, *cid;    /* [T*B] word and casing ids; -1 at padding (zero embedding row) */
    int *tgt;          /* [T*B] gold tag ids; -1 at padding (ignored by the loss) */
    /* Characters: the character BiLSTM runs once per DISTINCT word of the batch (U of them), not
     * per position, and its result is gathered back to the positions by uidx. */
    int U;
    int *uidx;         /* [T*B] index of the position's word among the distinct words; -1 at padding */
    int *chid, *clen;  /* [Tc*U] character ids (row tc*U + u) and [U] word lengths in characters */
    const char **word; /* [T*B] the words as written (or lower-cased, see batch_fill), NULL at padding */
    char *low;         /* lower-cased copies of the words of lower-cased sentences */
    size_t low_cap;
} ner_batch;

static int batch_alloc(ner_batch *b, int B, int T)
{
    size_t n = (size_t)B * T;
    b->len = malloc(sizeof(int) * B);
    b->wid = malloc(sizeof(int) * n), b->cid = malloc(sizeof(int) * n), b->tgt = malloc(sizeof(int) * n);
    b->chid = malloc(sizeof(int) * n * MAX_WORD_CHARS), b->clen = malloc(sizeof(int) * n);
    b->word = malloc(sizeof(char *) * n), b->uidx = malloc(sizeof(int) * n);
    return (b->len && b->wid && b->cid && b->tgt && b->chid && b->clen && b->word && b->uidx) ? 0 : -1;
}

static void batch_free(ner_batch *b)
{
    free(b->len), free(b->wid), free(b->cid), free(b->tgt), free(b->chid), free(b->clen), free(b->word);
    free(b->uidx), free(b->low);
}

/* Fill b with sentences idx[0..B) of c. unk_p > 0 (training) replaces each word seen once in
 * training by <unk> with that probability, so the <unk> embedding is trained on rare words.
 * Each sentence is lower-cased with probability lower_p (>= 1: always): its casing classes and
 * characters then see what a user typing in lower case gives, so the model cannot rely on
 * capitals alone. Returns 0, or -1 if out of memory. */
static int batch_fill(ner_batch *b, const ner_model *m, const ner_corpus *c, const int *idx, int B, double unk_p,
                      double lower_p, sp_rng *rng)
{
    int T = 1;
    for (int i = 0; i < B; i++) T = c->len[idx[i]] > T ? c->len[idx[i]] : T;
    b->T = T, b->B = B, b->Tc = 1;
    char norm[256], ch[MAX_WORD_CHARS][5];
    unsigned char lower[B];
    size_t need = 0, used = 0;
    for (int i = 0; i < B; i++) {
        b->len[i] = c->len[idx[i]];
        lower[i] = lower_p >= 1 || (lower_p > 0 && sp_rng_uniform(rng) < lower_p);
        for (int k = 0; lower[i] && k < b->len[i]; k++) need += strlen(c->word[c->start[idx[i]] + k]) + 1;
    }
    if (need > b->low_cap) {
        char *p = realloc(b->low, need);
        if (!p) return -1;
        b->low = p, b->low_cap = need;
    }
    for (int t = 0; t < T; t++)
        for (int i = 0; i < B; i++) {
            int r = t * B + i;
            if (t >= c->len[idx[i]]) {
                b->wid[r] = b->cid[r] = b->tgt[r] = -1, b->clen[r] = 0, b->word[r] = NULL;
                continue;
            }
            int k = c->start[idx[i]] + t;
            const char *w = c->word[k];
            if (lower[i]) { /* ASCII capitals only: the word embedding is lower-cased the same way */
                char *l = b->low + used;
                size_t n = strlen(w);
                for (size_t j = 0; j <= n; j++) l[j] = (w[j] >= 'A' && w[j] <= 'Z') ? (char)(w[j] - 'A' + 'a') : w[j];
                used += n + 1;
                w = l;
            }
            normalise(w, norm, sizeof norm);
            int id = ex_vocab_find(m->words, norm);
            if (id < 0) id = 0;
            if (unk_p > 0 && id > 0 && m->words->count[id] == 1 && sp_rng_uniform(rng) < unk_p) id = 0;
            b->wid[r] = id, b->cid[r] = case_id(w), b->word[r] = w;
            b->tgt[r] = c->tag ? c->tag[k] : -1;
        }
    if (!m->cfg.chars) return 0;
    ex_vocab *distinct = ex_vocab_new();
    if (!distinct) return -1;
    int N = T * B;
    b->U = 0;
    for (int n = 0; n < N; n++) {
        b->uidx[n] = b->word[n] ? ex_vocab_add(distinct, b->word[n]) : -1;
        if (b->uidx[n] == b->U) {
            b->clen[b->U] = split_chars(b->word[n], ch, MAX_WORD_CHARS);
            if (b->clen[b->U] > b->Tc) b->Tc = b->clen[b->U];
            b->U++;
        }
    }
    for (int u = 0; u < b->U; u++) {
        int l = split_chars(distinct->word[u], ch, MAX_WORD_CHARS);
        for (int j = 0; j < b->Tc; j++) {
            int id = -1;
            if (j < l) id = ex_vocab_find(m->chars, ch[j]), id = id < 0 ? 0 : id;
            b->chid[(size_t)j * b->U + u] = id;
        }
    }
    ex_vocab_free(distinct);
    return 0;
}

/* ================================================================================ forward */

/* Tag scores [T*B, K] for a batch. train != 0 turns on dropout (drawn from rng). */
static sp_tensor *model_forward(sp_tape *t, const ner_model *m, const ner_batch *b, int train, sp_rng *rng)
{
    const ner_config *c = &m->cfg;
    int N = b->T * b->B;
    sp_tensor *parts[3];
    int np = 0;
    parts[np++] = sp_embed_forward(t, &m->wemb, b->wid, N);  /* [T*B, embed] */
    parts[np++] = sp_embed_forward(t, &m->cemb, b->cid, N);  /* [T*B, case_dim] */
    if (c->chars) {
        /* Each distinct word of the batch is one row of a character batch [Tc*U, char_embed]; the
         * BiLSTM's two final states summarise the word. sp_embedding then gathers those U rows to
         * the T*B positions like a lookup table (zero rows at padding); its backward adds the
         * gradients of every occurrence of a word into that word's row. */
        sp_tape_scope(t, "chars");
        sp_tensor *xc = sp_embed_forward(t, &m->chemb, b->chid, b->Tc * b->U);
        sp_rnn_opts ro = {.lengths = b->clen};
        sp_rnn_out co;
        if (sp_rnn_run(t, &m->char_rnn, xc, b->Tc, b->U, &ro, &co) != SP_OK) return NULL;
        sp_tensor *fin[2] = {co.final.s[0][0][0], co.final.s[0][1][0]};
        sp_tensor *per_word = sp_concat(t, fin, 2);          /* [U, 2 char_hidden] */
        parts[np++] = sp_embedding(t, per_word, b->uidx, N); /* [T*B, 2 char_hidden] */
        sp_tape_scope(t, NULL);
    }
    sp_tensor *x = sp_dropout(t, sp_concat(t, parts, np), c->dropout, rng, train);
    sp_rnn_opts ro = {.lengths = b->len, .between_layers_dropout = c->dropout, .rng = rng, .train = train};
    sp_rnn_out ho;
    if (sp_rnn_run(t, &m->rnn, x, b->T, b->B, &ro, &ho) != SP_OK) return NULL;
    sp_tensor *h = sp_dropout(t, ho.out, c->dropout, rng, train);   /* [T*B, 2 hidden] */
    return sp_linear_forward(t, &m->out, h);                        /* [T*B, K] */
}

/* Rows of a tensor as one [rows x cols] array (a copy on t where rows are strided). */
static const sp_real *dense(sp_tape *t, const sp_tensor *x)
{
    if (!x || x->stride == x->cols) return x ? x->data : NULL;
    sp_tensor *c = sp_const(t, x->rows, x->cols);
    for (int i = 0; c && i < x->rows; i++) memcpy(sp_at(c, i, 0), sp_at((sp_tensor *)x, i, 0), sizeof(sp_real) * x->cols);
    return c ? c->data : NULL;
}

/* Runs a stack forward only over [T*B, I] rows (sp_stream_run) into a new [T*B, O] constant on t. */
static sp_tensor *run_forward_only(sp_tape *t, const sp_rnn *r, const sp_tensor *x, int T, int B, const int *len)
{
    const sp_real *xd = dense(t, x);
    sp_tensor *y = xd ? sp_const(t, T * B, sp_rnn_out_size(r)) : NULL;
    if (y && sp_stream_run(r, xd, T, B, len, NULL, y->data) != SP_OK) {
        sp_tape_fail(t, sp_last_status(), "%s", sp_last_error());
        return NULL;
    }
    return y;
}

/* The same tag scores (evaluation) with both BiLSTMs, the characters' and the words', run
 * forward only (sp_stream_run: nothing recorded for the recurrences); the embeddings, the gather
 * of the per-word vectors and the head go on t. Equal to model_forward's (tests/test_ner_stream.sh). */
static sp_tensor *model_forward_stream(sp_tape *t, const ner_model *m, const ner_batch *b)
{
    int N = b->T * b->B, np = 0;
    sp_tensor *parts[3];
    parts[np++] = sp_embed_forward(t, &m->wemb, b->wid, N);
    parts[np++] = sp_embed_forward(t, &m->cemb, b->cid, N);
    if (m->cfg.chars) {
        int U = b->U, Hc = m->char_rnn.cell[0][0].out_size;
        sp_tensor *seq = run_forward_only(t, &m->char_rnn, sp_embed_forward(t, &m->chemb, b->chid, b->Tc * U), b->Tc,
                                          U, b->clen);
        sp_tensor *per_word = seq ? sp_const(t, U, 2 * Hc) : NULL;
        if (!per_word) return NULL;
        for (int u = 0; u < U; u++) { /* final states: forward at the last character, backward at the first */
            int L = b->clen[u];
            if (L > 0) {
                memcpy(sp_at(per_word, u, 0), sp_at(seq, (L - 1) * U + u, 0), sizeof(sp_real) * Hc);
                memcpy(sp_at(per_word, u, Hc), sp_at(seq, u, Hc), sizeof(sp_real) * Hc);
            } else {
                memset(sp_at(per_word, u, 0), 0, sizeof(sp_real) * 2 * Hc);
            }
        }
        parts[np++] = sp_embedding(t, per_word, b->uidx, N);
    }
    sp_tensor *h = run_forward_only(t, &m->rnn, sp_concat(t, parts, np), b->T, b->B, b->len);
    return h ? sp_linear_forward(t, &m->out, h) : NULL;
}

static int argmax_row(const sp_tensor *x, int r)
{
    const sp_real *p = sp_at(x, r, 0);
    int best = 0;
    for (int j = 1; j < x->cols; j++)
        if (p[j] > p[best]) best = j;
    return best;
}

/* Tag every sentence of c with the model (lower-cased first if lower != 0); pred gets c->n_tok
 * tag ids. A CRF model decodes each sentence by Viterbi under the BIO masks, so its output is
 * always valid BIO; a softmax model takes each token's most likely tag. */
static int model_tag(const ner_model *m, const ner_corpus *c, int *pred, int batch, int lower, int stream,
                     double *score)
{
    ner_batch b = {0};
    int *idx = malloc(sizeof(int) * batch), rc = -1;
    int *path = malloc(sizeof(int) * (size_t)batch * (c->max_len > 0 ? c->max_len : 1));
    sp_tape *t = sp_tape_new();
    if (!idx || !path || !t || batch_alloc(&b, batch, c->max_len > 0 ? c->max_len : 1)) goto out;
    for (int s0 = 0; s0 < c->n_sent; s0 += batch) {
        int B = c->n_sent - s0 < batch ? c->n_sent - s0 : batch;
        for (int i = 0; i < B; i++) idx[i] = s0 + i;
        if (batch_fill(&b, m, c, idx, B, 0, lower, NULL)) goto out;
        sp_tape_reset(t);
        sp_tensor *logits = stream ? model_forward_stream(t, m, &b) : model_forward(t, m, &b, 0, NULL);
        if (!logits) {
            fprintf(stderr, "%s: %s\n", prog, sp_tape_errmsg(t));
            goto out;
        }
        if (m->cfg.crf && sp_crf_decode(logits, m->trans, m->tstart, m->tend, b.len, b.T, B, m->allowed,
                                        m->allowed_start, path, NULL) != SP_OK) {
            fprintf(stderr, "%s: %s\n", prog, sp_last_error());
            goto out;
        }
        for (int i = 0; i < B; i++)
            for (int k = 0; k < c->len[s0 + i]; k++)
            {
                int r = k * B + i, p = m->cfg.crf ? path[r] : argmax_row(logits, r);
                pred[c->start[s0 + i] + k] = p;
                if (score) score[c->start[s0 + i] + k] = *sp_at(logits, r, p); /* its emission score */
            }
    }
    rc = 0;
out:
    batch_free(&b);
    free(idx), free(path);
    sp_tape_free(t);
    return rc;
}

/* Entity-level scores of tag ids pred (or the baseline's if pred is NULL) against c's gold. */
static ner_scorer *score(const ner_corpus *c, const ex_vocab *tags, const int *pred, const ner_baseline *base)
{
    ner_scorer *s = ner_scorer_new();
    const char **g = malloc(sizeof(char *) * (c->max_len + 1)), **p = malloc(sizeof(char *) * (c->max_len + 1));
    for (int i = 0; s && g && p && i < c->n_sent; i++) {
        for (int k = 0; k < c->len[i]; k++) {
            int j = c->start[i] + k;
            g[k] = tags->word[c->tag[j]];
            p[k] = tags->word[pred ? pred[j] : ner_baseline_tag(base, c->word[j])];
        }
        if (ner_scorer_add(s, g, p, c->len[i])) {
            ner_scorer_free(s);
            s = NULL;
        }
    }
    free(g), free(p);
    return s;
}

/* ============================================================================ checkpoints */

/* The vocabularies travel inside the checkpoint's __metadata__ (string -> string), one entry per
 * line, so a single .safetensors file is the whole model. */
static char *join_vocab(const ex_vocab *v)
{
    size_t n = 1;
    for (int i = 0; i < v->n; i++) n += strlen(v->word[i]) + 1;
    char *s = malloc(n), *p = s;
    if (!s) return NULL;
    for (int i = 0; i < v->n; i++) p += sprintf(p, "%s%s", i ? "\n" : "", v->word[i]);
    *p = '\0';
    return s;
}

static ex_vocab *split_vocab(const char *s)
{
    ex_vocab *v = ex_vocab_new();
    char *copy = strdup(s ? s : "");
    for (char *p = copy, *nl; v && copy && p; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        if (ex_vocab_add(v, p) < 0) ex_vocab_free(v), v = NULL;
        else v->count[v->n - 1] = 0;
    }
    free(copy);
    return v;
}

static int model_save(const ner_model *m, const char *path, const sp_optim *opt, sp_rng *rng, int epoch)
{
    const ner_config *c = &m->cfg;
    char cfg[256], ep[32];
    snprintf(cfg, sizeof cfg,
             "embed=%d case_dim=%d hidden=%d layers=%d chars=%d char_embed=%d char_hidden=%d dropout=%g crf=%d",
             c->embed, c->case_dim, c->hidden, c->layers, c->chars, c->char_embed, c->char_hidden, c->dropout, c->crf);
    snprintf(ep, sizeof ep, "%d", epoch);
    char *w = join_vocab(m->words), *tg = join_vocab(m->tags), *ch = m->chars ? join_vocab(m->chars) : strdup("");
    sp_kv meta[] = {{"ner.config", cfg}, {"ner.epoch", ep}, {"ner.words", w}, {"ner.tags", tg}, {"ner.chars", ch}};
    sp_ckpt_opts o = {.meta = meta, .n_meta = 5, .rng = rng};
    sp_status st = (w && tg && ch) ? sp_save(path, m->ps, opt, &o) : SP_ERR_NOMEM;
    free(w), free(tg), free(ch);
    if (st != SP_OK) fprintf(stderr, "%s: saving '%s': %s\n", prog, path, sp_last_error());
    return st == SP_OK ? 0 : -1;
}

/* Rebuild the saved configuration and vocabularies, then load the weights. */
static int model_load(ner_model *m, const char *path, int *epoch)
{
    memset(m, 0, sizeof *m);
    sp_ckpt_info *ci = sp_ckpt_open(path);
    if (!ci) {
        fprintf(stderr, "%s: cannot open model '%s': %s\n", prog, path, sp_last_error());
        return -1;
    }
    const char *cfg = sp_ckpt_meta(ci, "ner.config"), *w = sp_ckpt_meta(ci, "ner.words");
    const char *tg = sp_ckpt_meta(ci, "ner.tags"), *ch = sp_ckpt_meta(ci, "ner.chars"), *ep = sp_ckpt_meta(ci, "ner.epoch");
    ner_config *c = &m->cfg;
    if (!cfg || !w || !tg ||
        sscanf(cfg, "embed=%d case_dim=%d hidden=%d layers=%d chars=%d char_embed=%d char_hidden=%d dropout=%lf crf=%d",
               &c->embed, &c->case_dim, &c->hidden, &c->layers, &c->chars, &c->char_embed, &c->char_hidden,
               &c->dropout, &c->crf) < 8) { /* models saved before the CRF have no crf= (softmax) */
        fprintf(stderr, "%s: '%s' is not a spool-ner model (no ner.config/ner.words/ner.tags metadata)\n", prog, path);
        sp_ckpt_close(ci);
        return -1;
    }
    if (epoch) *epoch = ep ? atoi(ep) : 0;
    m->words = split_vocab(w), m->tags = split_vocab(tg), m->chars = c->chars ? split_vocab(ch) : NULL;
    sp_ckpt_close(ci);
    sp_rng rng;
    sp_rng_seed(&rng, 0);
    if (!m->words || !m->tags || (c->chars && !m->chars) || model_build(m, &rng) ||
        sp_load(path, m->ps, NULL, NULL) != SP_OK) {
        fprintf(stderr, "%s: loading '%s': %s\n", prog, path, sp_last_error());
        return -1;
    }
    return 0;
}

/* =================================================================================== train */

typedef struct {
    const char *train, *dev, *test, *out, *resume, *data, *model, *output, *onnx, *ids, *init_from;
    int epochs, batch, limit, threads, log_every, tokens, tape, scores;
    double lr, clip, unk_p, embed_init, lower_p;
    uint64_t seed;
    ner_config cfg;
} train_opts;

enum { TRAIN = 1, EVAL = 2, TAG = 4, EXPORT = 8 };
#define T train_opts
static const ex_opt OPTS[] = {
    EX_OPT("data", EX_STR, T, data, NULL, 0, 0, TRAIN | EVAL | TAG | EXPORT, "DIR",
           "directory with train.tsv, dev.tsv, test.tsv, or the name of a bundled set: ner-wikigold\n"
           "      (the default) or ner-wnut17"),
    EX_OPT("train", EX_STR, T, train, NULL, 0, 0, TRAIN, "FILE",
           "training split instead of DIR/train.tsv (token<TAB>BIO-tag lines, blank line between sentences)"),
    EX_OPT("dev", EX_STR, T, dev, NULL, 0, 0, TRAIN, "FILE", "dev split instead of DIR/dev.tsv"),
    EX_OPT("test", EX_STR, T, test, NULL, 0, 0, TRAIN | EVAL | EXPORT, "FILE", "test split instead of DIR/test.tsv"),
    EX_OPT("out", EX_STR, T, out, NULL, 0, 0, TRAIN, "FILE",
           "best model (by dev F1), safetensors (default: named after --data's folder, ner-wikigold.safetensors,\n"
           "                        ner-wnut17.safetensors etc.; -softmax.safetensors with --output softmax);\n"
           "                        FILE.last holds the last epoch with optimizer state, for --resume"),
    EX_OPT("resume", EX_STR, T, resume, NULL, 0, 0, TRAIN, "FILE",
           "continue from a FILE.last checkpoint (same data and options)"),
    EX_OPT("init-from", EX_STR, T, init_from, NULL, 0, 0, TRAIN, "FILE",
           "start the word embedding, the BiLSTM and the output layer from the weights of an ONNX file of the\n"
           "                        same shape and vocabulary (as export wrote them, or PyTorch's); the casing\n"
           "                        embedding, the CRF and --chars start fresh (docs/onnx.md)"),
    EX_OPT("model", EX_STR, T, model, NULL, 0, 0, EVAL | TAG | EXPORT, "FILE",
           "the trained model (default: what train writes for --data/--output)"),
    EX_OPT("epochs", EX_INT, T, epochs, "15", 1, 100000, TRAIN, "N", "passes over the training data"),
    EX_OPT("batch", EX_INT, T, batch, "16", 1, 4096, TRAIN, "B", "sentences per update"),
    EX_OPT("lr", EX_DBL, T, lr, "0.002", 0, 10, TRAIN, "X", "Adam learning rate"),
    EX_OPT("clip", EX_DBL, T, clip, "5", 1e-6, 1e6, TRAIN, "X", "clip the global gradient norm at X"),
    EX_OPT("embed", EX_INT, T, cfg.embed, "64", 1, 4096, TRAIN, "D", "word embedding size (words lower-cased, digits -> 0)"),
    EX_OPT("case-dim", EX_INT, T, cfg.case_dim, "8", 1, 256, TRAIN, "D",
           "casing-class embedding size (lower/Initial/CAPS/miXed/number/punct)"),
    EX_OPT("hidden", EX_INT, T, cfg.hidden, "96", 1, 4096, TRAIN, "H", "LSTM size per direction"),
    EX_OPT("layers", EX_INT, T, cfg.layers, "1", 1, SP_RNN_MAX_LAYERS, TRAIN, "L", "BiLSTM layers"),
    EX_OPT("chars", EX_FLAG, T, cfg.chars, NULL, 0, 0, TRAIN, NULL, "add a character-level BiLSTM per word"),
    EX_OPT("char-embed", EX_INT, T, cfg.char_embed, "24", 1, 1024, TRAIN, "D", "character embedding size (--chars)"),
    EX_OPT("char-hidden", EX_INT, T, cfg.char_hidden, "24", 1, 1024, TRAIN, "H", "character BiLSTM size (--chars)"),
    EX_OPT("embed-init", EX_DBL, T, embed_init, "0.1", 0, 10, TRAIN, "S",
           "embeddings start as N(0, S^2) (torch.nn.Embedding: S = 1)"),
    EX_OPT("dropout", EX_DBL, T, cfg.dropout, "0.5", 0, 0.95, TRAIN, "P",
           "on the word vectors, between layers and before the output layer"),
    EX_OPT("unk", EX_DBL, T, unk_p, "0.5", 0, 1, TRAIN, "P", "replace words seen once in training by <unk> with probability P"),
    EX_CHOICE("output", EX_STR, T, output, "crf", "crf|softmax", TRAIN | EVAL | TAG | EXPORT, "KIND",
              "crf: tag transitions + Viterbi decoding (always valid BIO);\n"
              "                        softmax: each token's most likely tag on its own"),
    EX_OPT("lower", EX_DBL, T, lower_p, "0.2", 0, 1, TRAIN, "P",
           "lower-case each training sentence with probability P (so lower-case\n"
           "                        text is not blind; the result line also scores a lower-cased test)"),
    EX_OPT("tokens", EX_FLAG, T, tokens, NULL, 0, 0, TAG, NULL, "also one line per token with its tag"),
    EX_OPT("tape", EX_FLAG, T, tape, NULL, 0, 0, TAG, NULL,
           "run the BiLSTMs on a tape as training does, not the streaming forward-only path (same tags)"),
    EX_OPT("scores", EX_FLAG, T, scores, NULL, 0, 0, TAG, NULL, "with --tokens: each tag's emission score too"),
    EX_OPT("limit", EX_INT, T, limit, "0", 0, 1 << 30, TRAIN, "N", "use only the first N training sentences (0 = all)"),
    EX_OPT("seed", EX_U64, T, seed, "1", 0, 0, TRAIN, "S", "random seed"),
    EX_OPT_THREADS(T, threads, 0),
    EX_OPT_PRECISION(0),
    EX_OPT("log-every", EX_INT, T, log_every, "20", 0, 1 << 30, TRAIN, "N", "a progress line every N batches (redrawn in place on a terminal; 0 = none)"),
    EX_OPT("onnx", EX_STR, T, onnx, NULL, 0, 0, EXPORT, "FILE", "the ONNX file to write (required; docs/onnx.md)"),
    EX_OPT("ids", EX_STR, T, ids, NULL, 0, 0, EXPORT, "FILE",
           "also write the --test split as the model's inputs: one sentence a line, word ids<TAB>case ids<TAB>gold tag ids"),
};
#undef T
static const char *const CMDS[] = {"train", "eval", "tag", "export", NULL};
static const ex_cli CLI = {"spool-ner",
                           "Usage: spool-ner train [options]       train a BiLSTM(-CRF) tagger, score it on the test split\n"
                           "       spool-ner eval --model M [--test FILE]\n"
                           "       spool-ner tag --model M \"some text to tag\"\n"
                           "       spool-ner export --model M --onnx FILE [--ids FILE]   emission scores and the CRF as ONNX\n",
                           ex_usage_data, CMDS, NULL, OPTS, sizeof OPTS / sizeof OPTS[0], 1, "text"};

static ex_args cli_args; /* what main parsed: which options were given (for --resume's check) */

static int do_train(train_opts *o)
{
    char err[512];
    ex_vocab *tags = ex_vocab_new();
    if (!tags || ex_vocab_add(tags, "O") < 0) return 1;
    ner_corpus *tr = ner_read(o->train, tags, 1, o->limit, err, sizeof err), *dv = NULL, *te = NULL;
    /* a tag of dev/test that training lacks is an error (wrong file?), except with --limit, where a
     * slice of the training data may simply not reach it: the tag is then known but never trained */
    if (tr) dv = ner_read(o->dev, tags, o->limit > 0, 0, err, sizeof err);
    if (dv) te = ner_read(o->test, tags, o->limit > 0, 0, err, sizeof err);
    if (!te) {
        fprintf(stderr, "%s: %s\n", prog, err);
        ner_corpus_free(tr), ner_corpus_free(dv), ex_vocab_free(tags);
        return 1;
    }
    printf("data: train %d sentences / %d tokens, dev %d / %d, test %d / %d, %d tags\n", tr->n_sent, tr->n_tok,
           dv->n_sent, dv->n_tok, te->n_sent, te->n_tok, tags->n);

    /* the baseline, scored by the same code as the model */
    ner_baseline base;
    if (ner_baseline_fit(&base, tr, tags)) return 1;
    ner_scorer *bs = score(te, tags, NULL, &base);
    ner_prf base_f = ner_scorer_total(bs);
    ner_scorer_print(bs, stdout, "baseline test");
    ner_scorer_free(bs);

    ner_model m = {0};
    sp_rng rng;
    sp_rng_seed(&rng, o->seed);
    int start_epoch = 1;
    double t0 = ex_now();
    /* a refused resume frees what this function made (LeakSanitizer-clean error exits) */
#define RESUME_FAIL()                                                                                              \
    do {                                                                                                           \
        model_free(&m), ner_baseline_free(&base), ex_vocab_free(tags);                                             \
        ner_corpus_free(tr), ner_corpus_free(dv), ner_corpus_free(te);                                             \
        return 1;                                                                                                  \
    } while (0)
    if (o->resume) {
        int ep;
        if (model_load(&m, o->resume, &ep)) RESUME_FAIL();
        start_epoch = ep + 1;
        static const char *const arch[] = {"embed", "case-dim", "hidden", "layers", "chars", "char-embed",
                                           "char-hidden", "output", NULL};
        train_opts st = *o;
        st.cfg = m.cfg;
        st.output = m.cfg.crf ? "crf" : "softmax";
        char why[256];
        if (ex_given_differs(&CLI, &cli_args, o, &st, arch, why, sizeof why)) {
            fprintf(stderr, "%s: resuming from '%s': %s\n", prog, o->resume, why);
            RESUME_FAIL();
        }
        int same = m.tags->n == tags->n;
        for (int k = 0; same && k < tags->n; k++) same = !strcmp(m.tags->word[k], tags->word[k]);
        if (!same) {
            fprintf(stderr, "%s: '%s' was trained on another tag set than '%s'\n", prog, o->resume, o->train);
            RESUME_FAIL();
        }
#undef RESUME_FAIL
        ex_vocab_free(tags);
        tags = NULL;
    } else {
        m.cfg = o->cfg;
        m.tags = tags;
        m.words = ex_vocab_new();
        m.chars = m.cfg.chars ? ex_vocab_new() : NULL;
        char norm[256], ch[MAX_WORD_CHARS][5];
        ex_vocab_add(m.words, "<unk>");
        if (m.chars) ex_vocab_add(m.chars, "<unk>");
        for (int i = 0; i < tr->n_tok; i++) {
            normalise(tr->word[i], norm, sizeof norm);
            if (ex_vocab_add(m.words, norm) < 0) return 1;
            int l = m.chars ? split_chars(tr->word[i], ch, MAX_WORD_CHARS) : 0;
            for (int j = 0; j < l; j++)
                if (ex_vocab_add(m.chars, ch[j]) < 0) return 1;
        }
        if (model_build(&m, &rng)) {
            fprintf(stderr, "%s: building the model: %s\n", prog, sp_last_error());
            return 1;
        }
        /* sp_embed_init draws N(0, 1) like torch.nn.Embedding. Adam moves a weight by about lr
         * per update, and a rare word's row only in the batches that contain it, so rows that
         * start at unit scale barely move in a few epochs: start them small instead. */
        sp_tensor *tables[] = {m.wemb.weight, m.cemb.weight, m.cfg.chars ? m.chemb.weight : NULL};
        for (int k = 0; k < 3 && tables[k]; k++)
            for (int i = 0; i < tables[k]->rows; i++)
                for (int j = 0; j < tables[k]->cols; j++) *sp_at(tables[k], i, j) *= (sp_real)o->embed_init;
    }
    /* Rare-word counts decide the <unk> replacement; a resumed model's vocabulary has none. */
    if (o->resume) {
        char norm[256];
        for (int i = 0; i < tr->n_tok; i++) {
            normalise(tr->word[i], norm, sizeof norm);
            int id = ex_vocab_find(m.words, norm);
            if (id >= 0) m.words->count[id]++;
        }
    }
    const ner_config *c = &m.cfg;
    printf("model: words %d x %d, casing %d x %d, chars %s, BiLSTM %d x %d layer(s), %d tags, %zu parameters\n",
           m.words->n, c->embed, N_CASES, c->case_dim,
           c->chars ? "BiLSTM" : "off", c->hidden, c->layers, m.tags->n, m.ps->numel);

    if (o->init_from) { /* the word embedding, the stack and the head from an ONNX file (docs/onnx.md) */
        sp_onnx_model om = {.embed = &m.wemb, .rnn = &m.rnn, .head = &m.out};
        if (sp_onnx_load_weights(o->init_from, &om) != SP_OK) {
            fprintf(stderr, "%s: --init-from: %s\n", prog, sp_last_error());
            model_free(&m), ner_baseline_free(&base); /* the model owns the tag set */
            ner_corpus_free(tr), ner_corpus_free(dv), ner_corpus_free(te);
            return 1;
        }
        printf("weights from %s: word embedding, BiLSTM, output layer\n", o->init_from);
    }
    sp_optim_config oc = sp_optim_defaults(SP_ADAM);
    sp_optim *opt = sp_optim_new(m.ps, &oc);
    if (!opt) {
        fprintf(stderr, "%s: %s\n", prog, sp_last_error());
        return 1;
    }
    if (o->resume) { /* weights again, now with the optimizer state and the generator */
        sp_ckpt_opts lo = {.rng = &rng};
        if (sp_load(o->resume, m.ps, opt, &lo) != SP_OK) {
            fprintf(stderr, "%s: resuming from '%s': %s\n", prog, o->resume, sp_last_error());
            return 1;
        }
        printf("resumed from %s at epoch %d\n", o->resume, start_epoch);
    }

    int *order = malloc(sizeof(int) * tr->n_sent), *pred = malloc(sizeof(int) * (dv->n_tok + te->n_tok + 1));
    ner_batch b = {0};
    if (!order || !pred || batch_alloc(&b, o->batch, tr->max_len)) return 1;
    for (int i = 0; i < tr->n_sent; i++) order[i] = i;
    size_t lastlen = strlen(o->out) + 8;
    char *last = malloc(lastlen);
    snprintf(last, lastlen, "%s.last", o->out);
    sp_tape *t = sp_tape_new();
    double best_f1 = -1;
    int best_epoch = 0, step = 0;
    ex_progress pg;
    ex_progress_init(&pg, 0, o->log_every, 0);
    for (int ep = start_epoch; ep <= o->epochs; ep++) {
        ex_shuffle(order, tr->n_sent, &rng);
        double loss_sum = 0, te0 = ex_now();
        int nb = 0, tokens = 0;
        for (int s0 = 0; s0 < tr->n_sent; s0 += o->batch, step++) {
            int B = tr->n_sent - s0 < o->batch ? tr->n_sent - s0 : o->batch;
            if (batch_fill(&b, &m, tr, order + s0, B, o->unk_p, o->lower_p, &rng)) return 1;
            sp_tape_reset(t);
            sp_params_zero_grad(m.ps);
            sp_tensor *logits = model_forward(t, &m, &b, 1, &rng);
            /* CRF: the mean negative log-likelihood of each sentence's tag sequence (per sentence,
             * not per token as the softmax's, hence larger) */
            sp_tensor *loss = m.cfg.crf ? sp_crf_nll(t, logits, m.trans, m.tstart, m.tend, b.tgt, b.len, b.T, B)
                                        : sp_softmax_xent(t, logits, b.tgt, NULL);
            double norm;
            if (sp_backward(t, loss) != SP_OK) {
                fprintf(stderr, "%s: %s\n", prog, sp_tape_errmsg(t));
                return 1;
            }
            if (sp_clip_grad_norm(m.ps, o->clip, &norm) != SP_OK || sp_optim_step(opt, o->lr) != SP_OK) {
                fprintf(stderr, "%s: epoch %d batch %d: %s\n", prog, ep, nb, sp_last_error());
                return 1;
            }
            loss_sum += loss->data[0], nb++;
            for (int i = 0; i < B; i++) tokens += b.len[i];
            if (o->log_every > 0)
                ex_progress_step(&pg, nb, "epoch %d  batch %4d/%d  loss %.4f  grad-norm %.2f  %.0f tokens/s", ep, nb,
                                 (tr->n_sent + o->batch - 1) / o->batch, loss_sum / nb, norm, tokens / (ex_now() - te0));
        }
        if (model_tag(&m, dv, pred, 64, 0, 0, NULL)) return 1;
        ner_scorer *ds = score(dv, m.tags, pred, NULL);
        ner_prf df = ner_scorer_total(ds);
        ner_scorer_free(ds);
        int better = df.f1 > best_f1;
        ex_progress_line(&pg, stdout, "epoch %2d  train loss %.4f  dev P %.2f R %.2f F1 %.2f%s  (%.1f s, %.0f tokens/s)", ep,
                         loss_sum / nb, 100 * df.precision, 100 * df.recall, 100 * df.f1, better ? "  best, saved" : "",
                         ex_now() - te0, tokens / (ex_now() - te0));
        if (better) {
            best_f1 = df.f1, best_epoch = ep;
            if (model_save(&m, o->out, NULL, NULL, ep)) return 1;
        }
        if (model_save(&m, last, opt, &rng, ep)) return 1;
    }
    double train_s = ex_now() - t0;
    if (best_epoch == 0) { /* resumed past the last epoch: score what the file holds */
        fprintf(stderr, "%s: nothing to train (epoch %d > --epochs %d)\n", prog, start_epoch, o->epochs);
        return 1;
    }

    /* the best model on dev, scored once on test */
    ner_model best;
    if (model_load(&best, o->out, NULL) || model_tag(&best, te, pred, 64, 0, 0, NULL)) return 1;
    ner_scorer *ts = score(te, best.tags, pred, NULL);
    ner_prf tf = ner_scorer_total(ts);
    ner_scorer_print(ts, stdout, "model test");
    /* the same test text typed in lower case: what the casing augmentation (--lower) buys */
    if (model_tag(&best, te, pred, 64, 1, 0, NULL)) return 1;
    ner_scorer *ls = score(te, best.tags, pred, NULL);
    ner_prf lf = ner_scorer_total(ls);
    printf("result: test F1 %.2f (P %.2f R %.2f) with the best dev epoch %d (dev F1 %.2f); lower-cased test F1 %.2f; "
           "most-frequent-tag baseline F1 %.2f; output %s; training %.1f s\n",
           100 * tf.f1, 100 * tf.precision, 100 * tf.recall, best_epoch, 100 * best_f1, 100 * lf.f1, 100 * base_f.f1,
           best.cfg.crf ? "crf" : "softmax", train_s);
    ner_scorer_free(ts), ner_scorer_free(ls);
    model_free(&best);
    sp_tape_free(t);
    sp_optim_free(opt);
    batch_free(&b);
    free(order), free(pred), free(last);
    ner_baseline_free(&base);
    model_free(&m);
    ner_corpus_free(tr), ner_corpus_free(dv), ner_corpus_free(te);
    return 0;
}

/* ============================================================================ eval, tag */

static int do_eval(const char *model, const char *test)
{
    ner_model m;
    char err[512];
    if (model_load(&m, model, NULL)) return 1;
    ner_corpus *te = ner_read(test, m.tags, 0, 0, err, sizeof err);
    if (!te) {
        fprintf(stderr, "%s: %s\n", prog, err);
        model_free(&m);
        return 1;
    }
    int *pred = malloc(sizeof(int) * te->n_tok);
    if (!pred || model_tag(&m, te, pred, 64, 0, 0, NULL)) return 1;
    ner_scorer *s = score(te, m.tags, pred, NULL);
    ner_scorer_print(s, stdout, "test");
    ner_scorer_free(s);
    free(pred);
    ner_corpus_free(te);
    model_free(&m);
    return 0;
}

/* The tagger as an ONNX file (docs/onnx.md): word ids "ids" and casing ids "case" [time, batch] and
 * lengths in, the emission scores "logits" [time, batch, K] out (and "probs" for a softmax
 * model); a CRF model adds its transition scores as outputs (crf_transitions [K, K], crf_start and
 * crf_end [1, K]) and the BIO masks its Viterbi decoding uses (bio_allowed [K, K], bio_allowed_start
 * [1, K]: 1 allowed, 0 forbidden), so a caller decodes as `eval` does. The vocabularies are in the
 * metadata. With ids_path, the test split as the graph's inputs (tests/onnx/onnx_programs.py). */
static int do_export(const char *model, const char *onnx, const char *test, const char *ids_path)
{
    if (!onnx) return fprintf(stderr, "%s: export needs --onnx FILE, the ONNX file to write (try --help)\n", prog), 2;
    ner_model m;
    if (model_load(&m, model, NULL)) return 1;
    if (m.cfg.chars) {
        fprintf(stderr, "%s: export: %s has a character BiLSTM per word (--chars), which the ONNX export does not "
                        "cover (it runs over each word's letters, a second sequence axis)\n", prog, model);
        model_free(&m);
        return 1;
    }
    int K = m.tags->n, rc = 0;
    char *words = join_vocab(m.words), *tags = join_vocab(m.tags), cfg[160];
    snprintf(cfg, sizeof cfg, "embed=%d case_dim=%d hidden=%d layers=%d output=%s", m.cfg.embed, m.cfg.case_dim,
             m.cfg.hidden, m.cfg.layers, m.cfg.crf ? "crf" : "softmax");
    const char *meta[] = {"ner.words", words ? words : "", "ner.tags", tags ? tags : "", "ner.unk", "0", "ner.cases",
                          "lower,Initial,CAPS,miXed,number,punct", "ner.config", cfg, NULL};
    sp_tape *t = sp_tape_new();
    sp_tensor *al = t ? sp_const(t, K, K) : NULL, *al0 = t ? sp_const(t, 1, K) : NULL;
    for (int i = 0; al && al0 && i < K; i++) {
        *sp_at(al0, 0, i) = m.allowed_start[i];
        for (int j = 0; j < K; j++) *sp_at(al, i, j) = m.allowed[i * K + j];
    }
    const sp_embed *extra[1] = {&m.cemb};
    const char *extra_names[1] = {"case"};
    const sp_tensor *consts[5] = {m.trans, m.tstart, m.tend, al, al0};
    const char *const_names[5] = {"crf_transitions", "crf_start", "crf_end", "bio_allowed", "bio_allowed_start"};
    sp_onnx_model om = {.embed = &m.wemb, .n_extra = 1, .extra = extra, .extra_names = extra_names, .rnn = &m.rnn,
                        .head = &m.out, .softmax = !m.cfg.crf, .n_consts = m.cfg.crf ? 5 : 0, .consts = consts,
                        .const_names = const_names, .metadata = meta};
    if (!words || !tags || !al || !al0) rc = fprintf(stderr, "%s: out of memory\n", prog) > 0;
    else if (sp_onnx_export(&om, onnx) != SP_OK) rc = fprintf(stderr, "%s: export: %s\n", prog, sp_last_error()) > 0;
    else
        printf("wrote %s: BiLSTM %d x %d, %d tags, %s; inputs ids, case [time, batch], lengths [batch]; outputs logits "
               "[time, batch, %d] (emission scores)%s\n", onnx, m.cfg.layers, m.cfg.hidden, K,
               m.cfg.crf ? "CRF" : "softmax", K,
               m.cfg.crf ? ", crf_transitions, crf_start, crf_end, bio_allowed, bio_allowed_start" : ", probs");
    if (!rc && ids_path) { /* the test split as the graph's inputs, filled as eval fills its batches */
        char err[512];
        ner_corpus *te = ner_read(test, m.tags, 0, 0, err, sizeof err);
        ner_batch b = {0};
        sp_file *f = NULL;
        if (!te) rc = fprintf(stderr, "%s: %s\n", prog, err) > 0;
        else if (batch_alloc(&b, 1, te->max_len > 0 ? te->max_len : 1)) rc = fprintf(stderr, "%s: out of memory\n", prog) > 0;
        else if (!(f = sp_file_begin(ids_path))) rc = fprintf(stderr, "%s: --ids: %s\n", prog, sp_last_error()) > 0;
        for (int i = 0; f && !rc && i < te->n_sent; i++) {
            FILE *o = sp_file_stream(f);
            if (batch_fill(&b, &m, te, &i, 1, 0, 0, NULL)) rc = fprintf(stderr, "%s: out of memory\n", prog) > 0;
            for (int k = 0; !rc && k < b.len[0]; k++) fprintf(o, "%s%d", k ? " " : "", b.wid[k]);
            fputc('\t', o);
            for (int k = 0; !rc && k < b.len[0]; k++) fprintf(o, "%s%d", k ? " " : "", b.cid[k]);
            fputc('\t', o);
            for (int k = 0; !rc && k < b.len[0]; k++) fprintf(o, "%s%d", k ? " " : "", te->tag[te->start[i] + k]);
            fputc('\n', o);
        }
        if (f && rc) sp_file_abort(f);
        else if (f && sp_file_commit(f) != SP_OK) rc = fprintf(stderr, "%s: --ids: %s\n", prog, sp_last_error()) > 0;
        else if (f) printf("wrote %s: %d sentences of %s as word ids, case ids, gold tag ids\n", ids_path, te->n_sent, test);
        batch_free(&b);
        ner_corpus_free(te);
    }
    sp_tape_free(t);
    free(words), free(tags);
    model_free(&m);
    return rc;
}

static int do_tag(const char *model, const char *text, int tokens, int stream, int scores)
{
    ner_model m;
    if (model_load(&m, model, NULL)) return 1;
    ex_words w = {0};
    if (ex_tokenize(text, strlen(text), 0, &w) < 0) return 1;
    if (w.n == 0) {
        fprintf(stderr, "%s: tag: the text has no words\n", prog);
        model_free(&m);
        return 1;
    }
    /* a one-sentence corpus without gold tags */
    ner_corpus c = {.n_sent = 1, .n_tok = w.n, .max_len = w.n, .word = w.items};
    int start = 0, len = w.n, *pred = malloc(sizeof(int) * w.n);
    double *score = malloc(sizeof(double) * w.n);
    c.start = &start, c.len = &len;
    const char **tg = malloc(sizeof(char *) * w.n);
    ner_span *sp = malloc(sizeof(ner_span) * w.n);
    if (!pred || !tg || !sp || !score || model_tag(&m, &c, pred, 1, 0, stream, score)) return 1;
    /* the sentence with its entities in brackets, then one line per entity (and per token with
     * --tokens): "[PER Ada Lovelace] met [PER Charles Babbage] in [LOC London]" */
    for (int i = 0; i < w.n; i++) tg[i] = m.tags->word[pred[i]];
    int ns = ner_spans(tg, w.n, sp);
    for (int i = 0, k = 0; i < w.n; i++) {
        int opens = k < ns && sp[k].begin == i;
        if (opens) printf("%s[%s", i ? " " : "", sp[k].type);
        printf("%s%s", i || opens ? " " : "", w.items[i]);
        if (k < ns && sp[k].end == i + 1) printf("]"), k++;
    }
    printf("\n");
    for (int k = 0; k < ns; k++) {
        printf("%s\t", sp[k].type);
        for (int i = sp[k].begin; i < sp[k].end; i++) printf("%s%s", i > sp[k].begin ? " " : "", w.items[i]);
        printf("\t(words %d-%d)\n", sp[k].begin + 1, sp[k].end);
    }
    if (ns == 0) printf("(no entities)\n");
    for (int i = 0; tokens && i < w.n; i++)
        if (scores) printf("%s\t%s\t%.9g\n", w.items[i], tg[i], score[i]);
        else printf("%s\t%s\n", w.items[i], tg[i]);
    free(pred), free(tg), free(sp), free(score);
    ex_words_free(&w);
    model_free(&m);
    return 0;
}

/* ==================================================================================== main */

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* results and progress (stderr) interleave in the order written */
    train_opts o = {0};
    ex_args args;
    int rc = ex_cli_parse(&CLI, argc, argv, &o, &args);
    if (rc >= 0) return rc;
    cli_args = args;
    const char *cmd = CMDS[args.cmd], *model = o.model, *text = args.npos ? args.pos[0] : NULL;
    int tokens = o.tokens;
    if (args.npos && args.cmd != 2) {
        fprintf(stderr, "%s: unexpected argument '%s' for '%s' (try --help)\n", prog, text, cmd);
        return 2;
    }
    char datap[1024], trainp[1200], devp[1200], testp[1200];
    const char *data = o.data ? ex_data_resolve(o.data, datap, sizeof datap) : ex_data_path("ner-wikigold", datap, sizeof datap);
    o.cfg.crf = !strcmp(o.output, "crf");
    /* default model file: named after the data set and the output layer, in the working
     * directory, so the WikiGold and WNUT17 (CRF and softmax) models never overwrite each other */
    static char outp[1100];
    const char *base = o.data ? o.data : "ner-wikigold";
    const char *slash = strrchr(base, '/');
    base = slash && slash[1] ? slash + 1 : base;
    snprintf(outp, sizeof outp, "%s%s%s.safetensors", strncmp(base, "ner-", 4) ? "ner-" : "", base,
             o.cfg.crf ? "" : "-softmax");
    if (!o.out) o.out = outp;
    if (!model) model = outp;
    if (o.threads > 0) sp_set_threads(o.threads);
    if (!*data && args.cmd != 2 && (!o.test || (args.cmd == 0 && (!o.train || !o.dev)))) {
        fprintf(stderr, "%s: no --data DIR given and %s\n", prog, ex_data_hint());
        return 1;
    }
    snprintf(trainp, sizeof trainp, "%s/train.tsv", data);
    snprintf(devp, sizeof devp, "%s/dev.tsv", data);
    snprintf(testp, sizeof testp, "%s/test.tsv", data);
    if (!o.train) o.train = trainp;
    if (!o.dev) o.dev = devp;
    if (!o.test) o.test = testp;

    if (!strcmp(cmd, "eval")) return do_eval(model, o.test) ? 1 : 0;
    if (!strcmp(cmd, "export")) return do_export(model, o.onnx, o.test, o.ids);
    if (!strcmp(cmd, "tag")) {
        if (!text) {
            fprintf(stderr, "%s: tag needs the text to tag, e.g. spool-ner tag --model M \"Ada Lovelace met Babbage\"\n", prog);
            return 2;
        }
        return do_tag(model, text, tokens, !o.tape, o.scores) ? 1 : 0;
    }
    if (o.init_from && o.resume) {
        fprintf(stderr, "%s: --init-from and --resume exclude each other (a resumed run has its weights)\n", prog);
        return 2;
    }
    printf("%s", prog);
    for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
    printf("\nseed %llu | %s\n", (unsigned long long)o.seed, sp_info());
    return do_train(&o) ? 1 : 0;
}
