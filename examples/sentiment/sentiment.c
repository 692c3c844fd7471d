/* SPDX-License-Identifier: MIT */
/* sentiment.c - spool-sentiment: a sentence classifier, the many-to-one shape of a recurrent
 * network. Words -> learned embedding -> (Bi)LSTM or GRU -> one vector per sentence (the last
 * state, or the mean or max of the outputs over the sentence's real steps) -> a logistic
 * output (one logit, sigmoid cross-entropy) or a 2-way softmax. Scored by accuracy.
 *
 * Sentences of mixed lengths share a batch in random order: the runner gets per-row lengths, so
 * padding never changes a state, and the pooling only looks at real steps.
 *
 *   spool-sentiment train [options]               train, keep the best model (dev accuracy)
 *   spool-sentiment eval --model M [--test FILE]  accuracy of a saved model
 *   spool-sentiment predict --model M "a sentence" P(positive), the recurrence run forward only
 *                                                 (sp_stream_run; --tape: on a tape, the same numbers)
 *   spool-sentiment export --model M --onnx FILE  the model as ONNX (docs/onnx.md); --ids OUT: the
 *                                                 --test split as its input, for ONNX Runtime
 */
#include "spool.h"
#include "spool/layers.h"
#include "spool/optim.h"

#include "common/dist.h"
#include "common/opts.h"
#include "common/progress.h"
#include "common/text.h"
#include "sentiment_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *prog = "spool-sentiment";

/* ================================================================================== model */

typedef enum { POOL_LAST, POOL_MEAN, POOL_MAX } pool_kind;
static const char *pool_names[] = {"last", "mean", "max"};

/* --cell: the index into these is stored as "gru=" in the checkpoint (0 lstm, 1 gru as before). */
static const char *const cell_names[] = {"lstm", "gru", "mingru", "minlstm"};
static const sp_cell_kind cell_kinds[] = {SP_CELL_LSTM, SP_CELL_GRU_RESET_AFTER_MATMUL, SP_CELL_MINGRU, SP_CELL_MINLSTM};
static const char *const cell_titles[] = {"LSTM", "GRU", "minGRU", "minLSTM"};
enum { N_CELLS = 4 };

typedef struct {
    int embed, hidden, layers, bidir, gru /* the cell: index into cell_names */, softmax, min_count;
    pool_kind pool;
    double dropout;
} sent_config;

typedef struct {
    sent_config cfg;
    ex_vocab *words; /* id 0 = "<unk>" */
    sp_params *ps;
    sp_embed emb;
    sp_rnn rnn;
    sp_linear out;
} sent_model;

static int model_build(sent_model *m, sp_rng *rng)
{
    const sent_config *c = &m->cfg;
    if (!(m->ps = sp_params_new())) return -1;
    sp_cell_kind kind = cell_kinds[c->gru];
    if (sp_embed_init(&m->emb, m->ps, "embed", m->words->n, c->embed, rng) ||
        sp_rnn_init(&m->rnn, m->ps, "rnn", kind, c->embed, c->hidden, c->layers, c->bidir, NULL, rng) ||
        sp_linear_init(&m->out, m->ps, "out", sp_rnn_out_size(&m->rnn), c->softmax ? 2 : 1, 1, rng))
        return -1;
    return 0;
}

static void model_free(sent_model *m)
{
    sp_params_free(m->ps);
    ex_vocab_free(m->words);
    memset(m, 0, sizeof *m);
}

/* A batch of B sentences in the [T*B] time-major layout (row t*B + b is word t of sentence b);
 * ids are -1 at padding (zero embedding rows). */
typedef struct {
    int T, B;
    int *len, *ids, *label;
} sent_batch;

static void batch_fill(sent_batch *b, const sent_model *m, const sent_corpus *c, const int *ids_all, const int *idx,
                       int B, double unk_p, double word_drop, sp_rng *rng)
{
    int T = 1;
    for (int i = 0; i < B; i++) T = c->len[idx[i]] > T ? c->len[idx[i]] : T;
    b->T = T, b->B = B;
    for (int i = 0; i < B; i++) b->len[i] = c->len[idx[i]], b->label[i] = c->label[idx[i]];
    for (int t = 0; t < T; t++)
        for (int i = 0; i < B; i++) {
            int id = -1;
            if (t < c->len[idx[i]]) {
                id = ids_all[c->start[idx[i]] + t];
                if (unk_p > 0 && id > 0 && m->words->count[id] == 1 && sp_rng_uniform(rng) < unk_p) id = 0;
                if (word_drop > 0 && sp_rng_uniform(rng) < word_drop) id = 0; /* any word */
            }
            b->ids[t * B + i] = id;
        }
}

/* Logits [B, 1] (logistic) or [B, 2] (softmax) from the stack's output seq [T*B, O] and the last
 * layer's final h of each direction (fin[1] NULL when one-directional). */
static sp_tensor *model_head(sp_tape *t, const sent_model *m, const sent_batch *b, sp_tensor *seq, sp_tensor **fin,
                             int train, sp_rng *rng)
{
    const sent_config *c = &m->cfg;
    sp_tensor *v; /* [B, out] one vector per sentence */
    if (c->pool == POOL_LAST) /* forward: state after the real last word; backward: after reading word 0 */
        v = c->bidir ? sp_concat(t, fin, 2) : fin[0];
    else if (c->pool == POOL_MEAN)
        v = sp_seq_mean(t, seq, b->T, b->B, b->len);
    else
        v = sp_seq_max(t, seq, b->T, b->B, b->len);
    return sp_linear_forward(t, &m->out, sp_dropout(t, v, c->dropout, rng, train));
}

/* Logits for a batch, everything on the tape (training, eval, predict --tape). */
static sp_tensor *model_forward(sp_tape *t, const sent_model *m, const sent_batch *b, int train, sp_rng *rng)
{
    const sent_config *c = &m->cfg;
    int T = b->T, B = b->B;
    sp_tensor *x = sp_dropout(t, sp_embed_forward(t, &m->emb, b->ids, T * B), c->dropout, rng, train);
    sp_rnn_opts ro = {.lengths = b->len, .between_layers_dropout = c->dropout, .rng = rng, .train = train};
    sp_rnn_out ho;
    if (sp_rnn_run(t, &m->rnn, x, T, B, &ro, &ho) != SP_OK) return NULL;
    int L = c->layers - 1;
    sp_tensor *fin[2] = {ho.final.s[L][0][0], ho.final.s[L][1][0]};
    return model_head(t, m, b, ho.out, fin, train, rng);
}

/* The same logits (evaluation) with the stack run forward only (sp_stream_run: nothing recorded
 * for the recurrence, one step's tape per layer and direction); the pooling and the linear head,
 * a handful of ops, go on t. Equal to model_forward's (tests/test_sentiment_stream.sh). */
static sp_tensor *model_forward_stream(sp_tape *t, const sent_model *m, const sent_batch *b)
{
    const sent_config *c = &m->cfg;
    int T = b->T, B = b->B, E = m->emb.dim, O = sp_rnn_out_size(&m->rnn), Of = m->rnn.cell[c->layers - 1][0].out_size;
    sp_real *x = sp_tape_alloc(t, sizeof(sp_real) * (size_t)T * B * E);
    sp_tensor *seq = sp_const(t, T * B, O), *fin[2] = {sp_const(t, B, Of), c->bidir ? sp_const(t, B, Of) : NULL};
    if (!x || !seq || !fin[0] || (c->bidir && !fin[1])) return NULL;
    for (int i = 0; i < T * B; i++) /* embedding rows; padding (-1) is a zero row, as sp_embed_forward gives */
        if (b->ids[i] >= 0) memcpy(x + (size_t)i * E, sp_at(m->emb.weight, b->ids[i], 0), sizeof(sp_real) * E);
        else memset(x + (size_t)i * E, 0, sizeof(sp_real) * E);
    if (sp_stream_run(&m->rnn, x, T, B, b->len, NULL, seq->data) != SP_OK) {
        sp_tape_fail(t, sp_last_status(), "%s", sp_last_error());
        return NULL;
    }
    for (int i = 0; i < B; i++) { /* final h: the forward half at the last real word, the backward one at word 0 */
        int last = b->len[i] > 0 ? b->len[i] - 1 : 0;
        if (b->len[i] > 0) memcpy(sp_at(fin[0], i, 0), sp_at(seq, last * B + i, 0), sizeof(sp_real) * Of);
        else memset(sp_at(fin[0], i, 0), 0, sizeof(sp_real) * Of);
        if (fin[1] && b->len[i] > 0) memcpy(sp_at(fin[1], i, 0), sp_at(seq, i, Of), sizeof(sp_real) * Of);
        else if (fin[1]) memset(sp_at(fin[1], i, 0), 0, sizeof(sp_real) * Of);
    }
    return model_head(t, m, b, seq, fin, 0, NULL);
}

/* P(positive) of row r of the logits. */
static double prob_pos(const sent_model *m, const sp_tensor *logits, int r)
{
    const sp_real *z = sp_at(logits, r, 0);
    if (!m->cfg.softmax) return 1.0 / (1.0 + exp(-(double)z[0]));
    return 1.0 / (1.0 + exp((double)z[0] - (double)z[1]));
}

/* The loss of a batch: mean sigmoid cross-entropy of the single logit, or mean softmax
 * cross-entropy of the two. */
static sp_tensor *model_loss(sp_tape *t, const sent_model *m, sp_tensor *logits, const sent_batch *b)
{
    if (!logits) return NULL;
    if (m->cfg.softmax) return sp_softmax_xent(t, logits, b->label, NULL);
    sp_tensor *y = sp_const(t, b->B, 1);
    if (!y) return NULL;
    for (int i = 0; i < b->B; i++) *sp_at(y, i, 0) = (sp_real)b->label[i];
    return sp_sigmoid_bce(t, logits, y, NULL);
}

/* P(positive) for the sentences idx[0..n) of c; stream: the recurrence forward only. */
static int model_predict(const sent_model *m, const sent_corpus *c, const int *idx, int n, double *prob, int stream)
{
    enum { BATCH = 64 };
    int *ids = malloc(sizeof(int) * (c->words.n + 1)), rc = -1;
    sent_batch b = {0};
    b.len = malloc(sizeof(int) * BATCH), b.label = malloc(sizeof(int) * BATCH);
    b.ids = malloc(sizeof(int) * BATCH * (c->max_len > 0 ? c->max_len : 1));
    sp_tape *t = sp_tape_new();
    if (!ids || !b.len || !b.label || !b.ids || !t) goto out;
    sent_ids(c, m->words, 0, ids);
    for (int s0 = 0; s0 < n; s0 += BATCH) {
        int B = n - s0 < BATCH ? n - s0 : BATCH;
        batch_fill(&b, m, c, ids, idx + s0, B, 0, 0, NULL);
        sp_tape_reset(t);
        sp_tensor *logits = stream ? model_forward_stream(t, m, &b) : model_forward(t, m, &b, 0, NULL);
        if (!logits) {
            fprintf(stderr, "%s: %s\n", prog, sp_tape_errmsg(t));
            goto out;
        }
        for (int i = 0; i < B; i++) prob[s0 + i] = prob_pos(m, logits, i);
    }
    rc = 0;
out:
    free(ids), free(b.len), free(b.label), free(b.ids);
    sp_tape_free(t);
    return rc;
}

/* Accuracy on sentences idx[0..n) of c (all of c if idx is NULL); -1 on error. */
static double model_accuracy(const sent_model *m, const sent_corpus *c, const int *idx, int n, sent_confusion *conf)
{
    int *all = NULL, *lab = malloc(sizeof(int) * n);
    double *prob = malloc(sizeof(double) * n), acc = -1;
    if (!idx) {
        all = malloc(sizeof(int) * n);
        for (int i = 0; all && i < n; i++) all[i] = i;
        idx = all;
    }
    if (idx && lab && prob && !model_predict(m, c, idx, n, prob, 0)) {
        for (int i = 0; i < n; i++) lab[i] = c->label[idx[i]];
        sent_confusion cf = sent_score(lab, prob, n);
        if (conf) *conf = cf;
        acc = sent_accuracy(cf);
    }
    free(all), free(lab), free(prob);
    return acc;
}

/* ============================================================================ checkpoints */

static int model_save(const sent_model *m, const char *path, const sp_optim *opt, sp_rng *rng, int epoch)
{
    const sent_config *c = &m->cfg;
    char cfg[256], ep[32];
    snprintf(cfg, sizeof cfg, "embed=%d hidden=%d layers=%d bidir=%d gru=%d softmax=%d pool=%d dropout=%g",
             c->embed, c->hidden, c->layers, c->bidir, c->gru, c->softmax, (int)c->pool, c->dropout);
    snprintf(ep, sizeof ep, "%d", epoch);
    size_t n = 1;
    for (int i = 0; i < m->words->n; i++) n += strlen(m->words->word[i]) + 1;
    char *w = malloc(n), *p = w;
    if (!w) return -1;
    for (int i = 0; i < m->words->n; i++) p += sprintf(p, "%s%s", i ? "\n" : "", m->words->word[i]);
    *p = '\0';
    /* the vocabulary travels in the header's __metadata__, so one file is the whole model */
    sp_kv meta[] = {{"sentiment.config", cfg}, {"sentiment.epoch", ep}, {"sentiment.words", w}};
    sp_ckpt_opts o = {.meta = meta, .n_meta = 3, .rng = rng};
    sp_status st = sp_save(path, m->ps, opt, &o);
    free(w);
    if (st != SP_OK) fprintf(stderr, "%s: saving '%s': %s\n", prog, path, sp_last_error());
    return st == SP_OK ? 0 : -1;
}

static int model_load(sent_model *m, const char *path, int *epoch)
{
    memset(m, 0, sizeof *m);
    sp_ckpt_info *ci = sp_ckpt_open(path);
    if (!ci) {
        fprintf(stderr, "%s: cannot open model '%s': %s\n", prog, path, sp_last_error());
        return -1;
    }
    const char *cfg = sp_ckpt_meta(ci, "sentiment.config"), *w = sp_ckpt_meta(ci, "sentiment.words");
    const char *ep = sp_ckpt_meta(ci, "sentiment.epoch");
    sent_config *c = &m->cfg;
    int pool = 0;
    if (!cfg || !w ||
        sscanf(cfg, "embed=%d hidden=%d layers=%d bidir=%d gru=%d softmax=%d pool=%d dropout=%lf", &c->embed,
               &c->hidden, &c->layers, &c->bidir, &c->gru, &c->softmax, &pool, &c->dropout) != 8 ||
        pool < 0 || pool > 2 || c->gru < 0 || c->gru >= N_CELLS) {
        fprintf(stderr, "%s: '%s' is not a spool-sentiment model (no sentiment.config/words metadata)\n", prog, path);
        sp_ckpt_close(ci);
        return -1;
    }
    c->pool = (pool_kind)pool;
    if (epoch) *epoch = ep ? atoi(ep) : 0;
    m->words = ex_vocab_new();
    char *copy = strdup(w);
    for (char *p = copy, *nl; m->words && copy && p; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        if (ex_vocab_add(m->words, p) >= 0) m->words->count[m->words->n - 1] = 0;
    }
    free(copy);
    sp_ckpt_close(ci);
    sp_rng rng;
    sp_rng_seed(&rng, 0);
    if (!m->words || model_build(m, &rng) || sp_load(path, m->ps, NULL, NULL) != SP_OK) {
        fprintf(stderr, "%s: loading '%s': %s\n", prog, path, sp_last_error());
        return -1;
    }
    return 0;
}

/* =================================================================================== train */

typedef struct {
    const char *train, *test, *out, *resume, *data, *model, *cell, *pool, *output, *onnx, *ids, *init_from;
    int epochs, batch, limit, threads, log_every, tape, digits;
    double lr, clip, unk_p, word_drop, dev_frac, weight_decay, embed_init;
    uint64_t seed;
    sent_config cfg;
} train_opts;

enum { TRAIN = 1, EVAL = 2, PREDICT = 4, EXPORT = 8 };
#define T train_opts
static const ex_opt OPTS[] = {
    EX_OPT("data", EX_STR, T, data, NULL, 0, 0, TRAIN | EVAL | PREDICT | EXPORT, "DIR",
           "directory with train.tsv and test.tsv, or a bundled set: sentiment-mr (the default) or\n"
           "      sentiment-uci; also names the default model file"),
    EX_OPT("train", EX_STR, T, train, NULL, 0, 0, TRAIN, "FILE", "training split instead of DIR/train.tsv (sentence<TAB>0|1 lines)"),
    EX_OPT("test", EX_STR, T, test, NULL, 0, 0, TRAIN | EVAL | EXPORT, "FILE", "test split instead of DIR/test.tsv"),
    EX_OPT("dev-frac", EX_DBL, T, dev_frac, "0.1", 0, 0.9, TRAIN, "F",
           "share of the training lines held out (seeded) to pick the best epoch"),
    EX_OPT("out", EX_STR, T, out, NULL, 0, 0, TRAIN, "FILE",
           "best model (by dev accuracy), safetensors; FILE.last holds the last epoch with optimizer state, for\n"
           "      --resume (default: sentiment-mr.safetensors, named after --data's folder: sentiment-uci...)"),
    EX_OPT("resume", EX_STR, T, resume, NULL, 0, 0, TRAIN, "FILE", "continue from a FILE.last checkpoint (same data and options)"),
    EX_OPT("init-from", EX_STR, T, init_from, NULL, 0, 0, TRAIN, "FILE",
           "start from the weights of an ONNX file of the same shape and vocabulary (the data and options\n"
           "      give it): embedding, LSTM or GRU stack and head, as export wrote them or PyTorch (docs/onnx.md)"),
    EX_OPT("model", EX_STR, T, model, NULL, 0, 0, EVAL | PREDICT | EXPORT, "FILE",
           "the trained model (default: what train writes for --data)"),
    EX_CHOICE("cell", EX_STR, T, cell, "lstm", "lstm|gru|mingru|minlstm", TRAIN, "KIND", "recurrent cell"),
    EX_OPT("bidir", EX_FLAG, T, cfg.bidir, NULL, 0, 0, TRAIN, NULL, "bidirectional"),
    EX_OPT("layers", EX_INT, T, cfg.layers, "1", 1, SP_RNN_MAX_LAYERS, TRAIN, "L", "stacked layers"),
    EX_OPT("hidden", EX_INT, T, cfg.hidden, "100", 1, 4096, TRAIN, "H", "hidden size"),
    EX_OPT("embed", EX_INT, T, cfg.embed, "100", 1, 4096, TRAIN, "D", "word embedding size"),
    EX_CHOICE("pool", EX_STR, T, pool, "max", "last|mean|max", TRAIN, "HOW",
              "sentence vector: final state(s), or mean/max over real steps"),
    EX_CHOICE("output", EX_STR, T, output, "logistic", "logistic|softmax", TRAIN, "KIND",
              "one logit + sigmoid, or two + softmax"),
    EX_OPT("embed-init", EX_DBL, T, embed_init, "0.1", 0, 10, TRAIN, "S",
           "word vectors start as N(0, S^2) (torch.nn.Embedding: S = 1)"),
    EX_OPT("dropout", EX_DBL, T, cfg.dropout, "0.5", 0, 0.95, TRAIN, "P", "on the embeddings, between layers and on the sentence vector"),
    EX_OPT("min-count", EX_INT, T, cfg.min_count, "1", 1, 1 << 30, TRAIN, "N", "words seen fewer times in training become <unk>"),
    EX_OPT("unk", EX_DBL, T, unk_p, "0", 0, 1, TRAIN, "P", "replace words seen once by <unk> with probability P while training"),
    EX_OPT("word-dropout", EX_DBL, T, word_drop, "0", 0, 0.95, TRAIN, "P",
           "replace any word by <unk> with probability P while training"),
    EX_OPT("epochs", EX_INT, T, epochs, "10", 1, 100000, TRAIN, "N", "passes over the training data"),
    EX_OPT("batch", EX_INT, T, batch, "32", 1, 4096, TRAIN, "B", "sentences per update"),
    EX_OPT("lr", EX_DBL, T, lr, "0.001", 0, 10, TRAIN, "X", "Adam learning rate"),
    EX_OPT("clip", EX_DBL, T, clip, "5", 1e-6, 1e6, TRAIN, "X", "clip the global gradient norm at X"),
    EX_OPT("weight-decay", EX_DBL, T, weight_decay, "0", 0, 1, TRAIN, "W", "L2 weight decay"),
    EX_OPT("limit", EX_INT, T, limit, "0", 0, 1 << 30, TRAIN, "N", "use only the first N training lines (0 = all)"),
    EX_OPT("seed", EX_U64, T, seed, "1", 0, 0, TRAIN, "S", "random seed"),
    EX_OPT_THREADS(T, threads, 0),
    EX_OPT_PRECISION(0),
    EX_OPT("log-every", EX_INT, T, log_every, "50", 0, 1 << 30, TRAIN, "N", "a progress line every N batches (redrawn in place on a terminal; 0 = none)"),
    EX_OPT("tape", EX_FLAG, T, tape, NULL, 0, 0, PREDICT, NULL,
           "run the recurrence on a tape as training does, not the streaming forward-only path (same numbers)"),
    EX_OPT("digits", EX_INT, T, digits, "4", 1, 17, PREDICT, "N", "decimals of P(positive)"),
    EX_OPT("onnx", EX_STR, T, onnx, NULL, 0, 0, EXPORT, "FILE", "the ONNX file to write (required; docs/onnx.md)"),
    EX_OPT("ids", EX_STR, T, ids, NULL, 0, 0, EXPORT, "FILE",
           "also write the --test split as the model's input: one sentence a line, label<TAB>word ids"),
};
#undef T
static const char *const CMDS[] = {"train", "eval", "predict", "export", NULL};
static const ex_cli CLI = {"spool-sentiment",
                           "Usage: spool-sentiment train [options]        train a recurrent sentence classifier\n"
                           "       spool-sentiment eval --model M [--test FILE]\n"
                           "       spool-sentiment predict --model M \"a sentence\" ...   prints P(positive) per sentence\n"
                           "       spool-sentiment predict --model M < FILE    one sentence per line of stdin\n"
                           "       spool-sentiment export --model M --onnx FILE [--ids FILE]   the model as ONNX (P(positive))\n",
                           ex_usage_data, CMDS, NULL, OPTS, sizeof OPTS / sizeof OPTS[0], EX_MAX_POS, "sentence"};

/* Under mpirun: N ranks split every step's N x --batch sentences, the gradients are
 * averaged weighted by sentences, rank 0 alone evaluates on dev, prints and saves. The epoch's
 * order is then a function of (seed, epoch), the same on every rank, and the noise (dropout,
 * <unk>, word dropout) of each rank one of (seed, rank, epoch), so a run resumed from FILE.last
 * with any number of ranks repeats the uninterrupted one. Alone, nothing of this applies. */
static sp_dist *dist;
static int dist_together; /* the failure was the same on every rank: leave without aborting */

static int dist_start(train_opts *o)
{
    sp_dist_opts dopt = {.timeout_s = SP_DIST_DEFAULT_TIMEOUT_S};
    if (ex_dist_join(prog, &dopt, NULL, &dist)) return 1; /* under a watchdog: a rank that never joins */
    if (!dist) return 0;
    if (sp_dist_size(dist) > 1 && o->threads == 0) sp_set_threads(1); /* the ranks share the cores */
    if (sp_dist_rank(dist) > 0 && !freopen("/dev/null", "w", stdout)) return 1;
    return 0;
}

static int do_train_ranks(const train_opts *o);
static ex_args cli_args; /* what main parsed: which options were given (for --resume's check) */

static int do_train(const train_opts *o)
{
    int rc = do_train_ranks(o);
    if (rc && sp_dist_size(dist) > 1 && !dist_together) sp_dist_abort(dist, 1);
    sp_dist_leave(dist);
    return rc;
}

static int do_train_ranks(const train_opts *o)
{
    const int N = sp_dist_size(dist), rank = sp_dist_rank(dist);
    char err[512];
    sent_corpus *tr = sent_read(o->train, o->limit, err, sizeof err), *te = NULL;
    if (tr) te = sent_read(o->test, 0, err, sizeof err);
    if (!te) {
        fprintf(stderr, "%s: %s\n", prog, err);
        sent_corpus_free(tr);
        return 1;
    }
    sp_rng rng;
    sp_rng_seed(&rng, o->seed);
    /* a seeded dev split out of the training lines (the files are ordered by label) */
    int *perm = malloc(sizeof(int) * tr->n);
    for (int i = 0; i < tr->n; i++) perm[i] = i;
    ex_shuffle(perm, tr->n, &rng);
    int n_dev = (int)(o->dev_frac * tr->n), n_fit = tr->n - n_dev;
    if (n_fit < 1) {
        fprintf(stderr, "%s: --dev-frac %g leaves no training lines\n", prog, o->dev_frac);
        return 1;
    }
    int *fit = perm, *dev = perm + n_fit;
    int pos = 0;
    for (int i = 0; i < tr->n; i++) pos += tr->label[i];
    printf("data: train %d sentences (%d positive), of which %d fit and %d dev; test %d; %d words in train\n",
           tr->n, pos, n_fit, n_dev, te->n, tr->words.n);

    sent_model m = {0};
    int start_epoch = 1;
    /* a refused resume frees what this function made (LeakSanitizer-clean error exits) */
#define RESUME_FAIL()                                                                                              \
    do {                                                                                                           \
        model_free(&m), free(perm), sent_corpus_free(tr), sent_corpus_free(te);                                    \
        return 1;                                                                                                  \
    } while (0)
    if (o->resume) {
        if (model_load(&m, o->resume, &start_epoch)) RESUME_FAIL();
        start_epoch++;
        static const char *const arch[] = {"cell", "bidir", "layers", "hidden", "embed", "pool", "output", NULL};
        train_opts st = *o;
        st.cfg = m.cfg;
        st.cell = cell_names[m.cfg.gru];
        st.output = m.cfg.softmax ? "softmax" : "logistic";
        st.pool = (unsigned)m.cfg.pool < 3 ? pool_names[m.cfg.pool] : o->pool;
        char why[256];
        if (ex_given_differs(&CLI, &cli_args, o, &st, arch, why, sizeof why)) {
            fprintf(stderr, "%s: resuming from '%s': %s\n", prog, o->resume, why);
            RESUME_FAIL();
        }
#undef RESUME_FAIL
    } else {
        m.cfg = o->cfg;
        /* vocabulary from the fit part only: dev and test words stay unseen */
        ex_vocab *all = ex_vocab_new();
        m.words = ex_vocab_new();
        if (!all || !m.words || ex_vocab_add(m.words, "<unk>") < 0) return 1;
        for (int j = 0; j < n_fit; j++)
            for (int k = 0; k < tr->len[fit[j]]; k++)
                if (ex_vocab_add(all, tr->words.items[tr->start[fit[j]] + k]) < 0) return 1;
        for (int i = 0; i < all->n; i++)
            if (all->count[i] >= m.cfg.min_count) {
                int id = ex_vocab_add(m.words, all->word[i]);
                if (id < 0) return 1;
                m.words->count[id] = all->count[i];
            }
        ex_vocab_free(all);
        if (model_build(&m, &rng)) {
            fprintf(stderr, "%s: building the model: %s\n", prog, sp_last_error());
            return 1;
        }
        /* sp_embed_init draws N(0, 1) like torch.nn.Embedding. Adam moves each weight by about lr
         * per update, and a word is updated only in batches that contain it, so vectors that
         * start at unit scale hardly move in a few epochs: start them small instead. */
        sp_tensor *E = m.emb.weight;
        for (int i = 0; i < E->rows; i++)
            for (int j = 0; j < E->cols; j++) *sp_at(E, i, j) *= (sp_real)o->embed_init;
    }
    if (o->resume) { /* counts for the <unk> replacement */
        for (int j = 0; j < n_fit; j++)
            for (int k = 0; k < tr->len[fit[j]]; k++) {
                int id = ex_vocab_find(m.words, tr->words.items[tr->start[fit[j]] + k]);
                if (id >= 0) m.words->count[id]++;
            }
    }
    const sent_config *c = &m.cfg;
    if (N > 1) { /* the same options, data and vocabulary everywhere, then rank 0's values */
        char all[1024];
        snprintf(all, sizeof all, "embed=%d hidden=%d layers=%d bidir=%d gru=%d softmax=%d pool=%d dropout=%g "
                 "epochs=%d batch=%d lr=%g clip=%g unk=%g wd=%g dev=%g decay=%g seed=%llu limit=%d train=%d test=%d words=%d",
                 c->embed, c->hidden, c->layers, c->bidir, c->gru, c->softmax, (int)c->pool, c->dropout, o->epochs,
                 o->batch, o->lr, o->clip, o->unk_p, o->word_drop, o->dev_frac, o->weight_decay,
                 (unsigned long long)o->seed, o->limit, tr->n, te->n, m.words->n);
        if (sp_dist_check(dist, all, strlen(all), "the configuration (options, data, vocabulary)") != SP_OK) {
            fprintf(stderr, "%s: rank %d: %s\n", prog, rank, sp_last_error());
            dist_together = 1;
            return 1;
        }
        printf("%d ranks (MPI), %d thread(s) each, each on --batch %d of every step's %d sentences; rank 0 reports and saves\n",
               N, sp_get_threads(), o->batch, N * o->batch);
    }
    printf("model: embed %d x %d, %s%s %d x %d layer(s), pool %s, %s output, %zu parameters\n", m.words->n, c->embed,
           c->bidir ? "Bi" : "", cell_titles[c->gru], c->hidden, c->layers, pool_names[c->pool],
           c->softmax ? "softmax" : "logistic", m.ps->numel);

    if (o->init_from) { /* the embedding, the stack and the head from an ONNX file (docs/onnx.md) */
        sp_onnx_model om = {.embed = &m.emb, .rnn = &m.rnn, .head = &m.out};
        if (sp_onnx_load_weights(o->init_from, &om) != SP_OK) {
            fprintf(stderr, "%s: --init-from: %s\n", prog, sp_last_error());
            model_free(&m), free(perm), sent_corpus_free(tr), sent_corpus_free(te);
            return 1;
        }
        printf("weights from %s\n", o->init_from);
    }
    sp_optim_config oc = sp_optim_defaults(SP_ADAM);
    oc.weight_decay = o->weight_decay;
    sp_optim *opt = sp_optim_new(m.ps, &oc);
    if (!opt) {
        fprintf(stderr, "%s: %s\n", prog, sp_last_error());
        return 1;
    }
    if (o->resume) {
        sp_ckpt_opts lo = {.rng = &rng};
        if (sp_load(o->resume, m.ps, opt, &lo) != SP_OK) {
            fprintf(stderr, "%s: resuming from '%s': %s\n", prog, o->resume, sp_last_error());
            return 1;
        }
        printf("resumed from %s at epoch %d\n", o->resume, start_epoch);
    }
    if (N > 1 && sp_dist_bcast_params(dist, m.ps, 0) != SP_OK) {
        fprintf(stderr, "%s: rank %d: %s\n", prog, rank, sp_last_error());
        dist_together = 1;
        return 1;
    }

    int *ids = malloc(sizeof(int) * (tr->words.n + 1));
    sent_batch b = {0};
    b.len = malloc(sizeof(int) * o->batch), b.label = malloc(sizeof(int) * o->batch);
    b.ids = malloc(sizeof(int) * o->batch * (tr->max_len > 0 ? tr->max_len : 1));
    size_t lastlen = strlen(o->out) + 8;
    char *last = malloc(lastlen);
    if (!ids || !b.len || !b.label || !b.ids || !last) return 1;
    snprintf(last, lastlen, "%s.last", o->out);
    sent_ids(tr, m.words, 0, ids);
    sp_tape *t = sp_tape_new();
    double best = -1, t0 = ex_now();
    int best_epoch = 0;
    int epochs_run = 0;
    ex_progress pg;
    ex_progress_init(&pg, 0, o->log_every, 0);
    pg.quiet = rank > 0; /* rank 0 reports */
    for (int ep = start_epoch; ep <= o->epochs; ep++) {
        sp_rng *noise = &rng, rank_rng;
        if (N > 1) {
            sp_rng order;
            sp_rng_seed(&order, o->seed * 0x9E3779B97F4A7C15ull + (uint64_t)ep);
            ex_shuffle(fit, n_fit, &order);
            sp_rng_seed(&rank_rng, (o->seed ^ 0xD5A61266F0C9392Cull) + 0x9E3779B97F4A7C15ull * (uint64_t)rank +
                                       0xBF58476D1CE4E5B9ull * (uint64_t)ep);
            noise = &rank_rng;
        } else
            ex_shuffle(fit, n_fit, &rng);
        double loss_sum = 0, te0 = ex_now();
        int nb = 0, correct = 0;
        epochs_run++;
        for (int s0 = 0; s0 < n_fit; s0 += o->batch * N) {
            /* this rank's share of the step's sentences (the last step may leave a rank none) */
            int lo = s0 + rank * o->batch, B = n_fit - lo < o->batch ? n_fit - lo : o->batch;
            if (B < 0) B = 0;
            sp_tape_reset(t);
            sp_params_zero_grad(m.ps);
            double lsum = 0, norm;
            int corr = 0;
            sp_tensor *logits = NULL;
            if (B > 0) {
                batch_fill(&b, &m, tr, ids, fit + lo, B, o->unk_p, o->word_drop, noise);
                logits = model_forward(t, &m, &b, 1, noise);
                sp_tensor *loss = model_loss(t, &m, logits, &b);
                if (sp_backward(t, loss) != SP_OK) {
                    fprintf(stderr, "%s: %s\n", prog, sp_tape_errmsg(t));
                    return 1;
                }
                for (int i = 0; i < B; i++) corr += (prob_pos(&m, logits, i) >= 0.5) == b.label[i];
                lsum = loss->data[0] * (double)B;
            }
            int Bsum = B;
            if (N > 1) { /* the step's loss and hits over all ranks, then the mean gradient */
                double sums[3] = {lsum, (double)B, (double)corr};
                if (sp_dist_sum(dist, sums, 3) != SP_OK || sp_dist_allreduce_grads(dist, m.ps, (double)B, NULL) != SP_OK) {
                    fprintf(stderr, "%s: rank %d: %s\n", prog, rank, sp_last_error());
                    return 1;
                }
                lsum = sums[0], Bsum = (int)sums[1], corr = (int)sums[2];
            }
            if (sp_clip_grad_norm(m.ps, o->clip, &norm) != SP_OK || sp_optim_step(opt, o->lr) != SP_OK) {
                fprintf(stderr, "%s: epoch %d batch %d: %s\n", prog, ep, nb, sp_last_error());
                dist_together = 1; /* the averaged gradients are the same on every rank */
                return 1;
            }
            correct += corr;
            loss_sum += lsum / Bsum, nb++;
            if (rank > 0) continue; /* rank 0 reports */
            if (o->log_every > 0)
                ex_progress_step(&pg, nb, "epoch %d  batch %4d/%d  loss %.4f  grad-norm %.2f  %.0f sentences/s", ep, nb,
                                 (n_fit + o->batch * N - 1) / (o->batch * N), loss_sum / nb, norm,
                                 (double)(s0 + Bsum) / (ex_now() - te0));
        }
        if (rank > 0) continue; /* held-out accuracy once, on rank 0; the others go on */
        double dacc = n_dev > 0 ? model_accuracy(&m, tr, dev, n_dev, NULL) : (double)correct / n_fit;
        if (dacc < 0) return 1;
        int better = dacc > best;
        ex_progress_line(&pg, stdout, "epoch %2d  train loss %.4f  train acc %.4f  %s acc %.4f%s  (%.1f s)", ep,
                         loss_sum / nb, (double)correct / n_fit, n_dev > 0 ? "dev" : "(no dev) train", dacc,
                         better ? "  best, saved" : "", ex_now() - te0);
        if (better) {
            best = dacc, best_epoch = ep;
            if (model_save(&m, o->out, NULL, NULL, ep)) return 1;
        }
        if (model_save(&m, last, opt, &rng, ep)) return 1;
    }
    double train_s = ex_now() - t0;
    if (rank > 0 && epochs_run > 0) best_epoch = -1; /* only rank 0 evaluates and saves */
    if (best_epoch == 0) {
        fprintf(stderr, "%s: nothing to train (epoch %d > --epochs %d)\n", prog, start_epoch, o->epochs);
        return 1;
    }
    sent_model bm = {0};
    sent_confusion cf;
    if (rank > 0) goto done;
    if (model_load(&bm, o->out, NULL)) return 1;
    double acc = model_accuracy(&bm, te, NULL, te->n, &cf);
    if (acc < 0) return 1;
    printf("result: test accuracy %.4f (%d/%d; tp %d tn %d fp %d fn %d) with the best dev epoch %d "
           "(dev acc %.4f); training %.1f s\n",
           acc, cf.tp + cf.tn, te->n, cf.tp, cf.tn, cf.fp, cf.fn, best_epoch, best, train_s);
    model_free(&bm);
done:
    sp_tape_free(t);
    sp_optim_free(opt);
    free(ids), free(b.len), free(b.label), free(b.ids), free(last), free(perm);
    model_free(&m);
    sent_corpus_free(tr), sent_corpus_free(te);
    return 0;
}

/* ======================================================================= eval, predict */

static int do_eval(const char *model, const char *test)
{
    sent_model m;
    char err[512];
    if (model_load(&m, model, NULL)) return 1;
    sent_corpus *te = sent_read(test, 0, err, sizeof err);
    if (!te) {
        fprintf(stderr, "%s: %s\n", prog, err);
        model_free(&m);
        return 1;
    }
    sent_confusion cf;
    double acc = model_accuracy(&m, te, NULL, te->n, &cf);
    if (acc >= 0)
        printf("test accuracy %.4f (%d/%d; tp %d tn %d fp %d fn %d)\n", acc, cf.tp + cf.tn, te->n, cf.tp, cf.tn,
               cf.fp, cf.fn);
    sent_corpus_free(te);
    model_free(&m);
    return acc < 0;
}

static int predict_digits = 4;

/* P(positive) of one sentence: "p<TAB>label<TAB>(n words, k unknown)" (+ the sentence when it
 * came from stdin, so the lines can be matched up). 0, 1 if it has no words, -1 on error. */
static int predict_one(const sent_model *m, const char *text, int echo, int stream)
{
    char err[512];
    sent_corpus *c = sent_from_text(text, err, sizeof err);
    if (!c) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return -1;
    }
    int idx = 0, unknown = 0, rc = 1;
    double p;
    for (int i = 0; i < c->words.n; i++) unknown += ex_vocab_find(m->words, c->words.items[i]) < 0;
    if (c->words.n > 0) {
        rc = model_predict(m, c, &idx, 1, &p, stream) ? -1 : 0;
        if (!rc)
            printf("%.*f\t%s\t(%d words, %d unknown)%s%s\n", predict_digits, p, p >= 0.5 ? "positive" : "negative", c->words.n,
                   unknown, echo ? "\t" : "", echo ? text : "");
    }
    sent_corpus_free(c);
    return rc;
}

/* The sentences given on the command line, or (none given) every line of stdin. An empty
 * sentence, or stdin without any words, is refused with a message. */
static int do_predict(const char *model, char *const *texts, int n, int stream)
{
    sent_model m;
    if (model_load(&m, model, NULL)) return 1;
    int rc = 0, done = 0;
    for (int i = 0; i < n && rc >= 0; i++) {
        rc = predict_one(&m, texts[i], 0, stream);
        if (rc > 0) fprintf(stderr, "%s: predict: sentence %d has no words\n", prog, i + 1);
        done++;
    }
    if (n == 0) {
        ex_lines in;
        ex_lines_stream(&in, stdin, "stdin", EX_LINE_MAX);
        char *line, err[600];
        int got = 0;
        while (rc >= 0 && (got = ex_lines_next(&in, &line, NULL, err, sizeof err)) > 0) {
            int r = predict_one(&m, line, 1, stream);
            if (r < 0) rc = -1;
            done += r == 0;
        }
        long lineno = in.lineno;
        ex_lines_close(&in);
        if (rc >= 0 && got < 0) {
            fprintf(stderr, "%s: predict: %s\n", prog, err);
            rc = -1;
        }
        if (rc >= 0 && !done) {
            fprintf(stderr, "%s: predict: no sentence on stdin (%ld line(s) without words); give sentences as "
                            "arguments or one per line on stdin\n", prog, lineno);
            rc = 1;
        }
    }
    model_free(&m);
    return rc != 0;
}

/* ==================================================================================== export */

/* The model as an ONNX file (docs/onnx.md): ids [time, batch] and lengths in, "probs" out
 * (P(positive) [batch, 1] with the logistic output; [batch, 2] with softmax, column 1
 * positive), pooled as the model pools; the vocabulary in the metadata. With ids_path, the test
 * split as the graph's input: "label<TAB>id id ..." lines (tests/onnx/onnx_programs.py runs them
 * in ONNX Runtime and compares the accuracy with eval's). */
static int do_export(const char *model, const char *onnx, const char *test, const char *ids_path)
{
    if (!onnx) return fprintf(stderr, "%s: export needs --onnx FILE, the ONNX file to write (try --help)\n", prog), 2;
    sent_model m;
    if (model_load(&m, model, NULL)) return 1;
    size_t len = 1;
    for (int i = 0; i < m.words->n; i++) len += strlen(m.words->word[i]) + 1;
    char *words = malloc(len), cfg[160], *at = words;
    int rc = 0;
    for (int i = 0; words && i < m.words->n; i++) at += sprintf(at, "%s%s", i ? "\n" : "", m.words->word[i]);
    if (words) *at = 0;
    snprintf(cfg, sizeof cfg, "cell=%s layers=%d hidden=%d bidir=%d pool=%s output=%s", cell_names[m.cfg.gru], m.cfg.layers,
             m.cfg.hidden, m.cfg.bidir, pool_names[m.cfg.pool], m.cfg.softmax ? "softmax" : "logistic");
    const char *meta[] = {"sentiment.words", words ? words : "", "sentiment.unk", "0", "sentiment.config", cfg, NULL};
    static const sp_onnx_pool pools[3] = {SP_ONNX_POOL_LAST, SP_ONNX_POOL_MEAN, SP_ONNX_POOL_MAX};
    sp_onnx_model om = {.embed = &m.emb, .rnn = &m.rnn, .head = &m.out, .softmax = m.cfg.softmax,
                        .sigmoid = !m.cfg.softmax, .pool = pools[m.cfg.pool], .metadata = meta};
    if (!words) rc = fprintf(stderr, "%s: out of memory\n", prog) > 0;
    else if (sp_onnx_export(&om, onnx) != SP_OK) rc = fprintf(stderr, "%s: export: %s\n", prog, sp_last_error()) > 0;
    else
        printf("wrote %s: %s%s %d x %d, pool %s, %s output; inputs ids [time, batch] (word ids, -1 padding), lengths "
               "[batch]; output probs [batch, %d]%s\n", onnx, m.cfg.bidir ? "Bi" : "", cell_titles[m.cfg.gru], m.cfg.layers,
               m.cfg.hidden, pool_names[m.cfg.pool], m.cfg.softmax ? "softmax" : "logistic", m.cfg.softmax ? 2 : 1,
               m.cfg.softmax ? " (column 1: positive)" : " (P(positive))");
    if (!rc && ids_path) { /* the test split as the graph's input, atomically as every file */
        char err[512];
        sent_corpus *te = sent_read(test, 0, err, sizeof err);
        int *ids = te ? malloc(sizeof(int) * (size_t)(te->words.n + 1)) : NULL;
        sp_file *f = ids ? sp_file_begin(ids_path) : NULL;
        if (!te) rc = fprintf(stderr, "%s: %s\n", prog, err) > 0;
        else if (!f) rc = fprintf(stderr, "%s: --ids: %s\n", prog, ids ? sp_last_error() : "out of memory") > 0;
        else {
            sent_ids(te, m.words, 0, ids);
            FILE *o = sp_file_stream(f);
            for (int i = 0; i < te->n; i++) {
                fprintf(o, "%d\t", te->label[i]);
                for (int k = 0; k < te->len[i]; k++) fprintf(o, "%s%d", k ? " " : "", ids[te->start[i] + k]);
                fputc('\n', o);
            }
            if (sp_file_commit(f) != SP_OK) rc = fprintf(stderr, "%s: --ids: %s\n", prog, sp_last_error()) > 0;
            else printf("wrote %s: %d sentences of %s as label<TAB>word ids\n", ids_path, te->n, test);
        }
        free(ids);
        sent_corpus_free(te);
    }
    free(words);
    model_free(&m);
    return rc;
}

/* ==================================================================================== main */

int main(int argc, char **argv)
{
    train_opts o = {0};
    ex_args args;
    int rc = ex_cli_parse(&CLI, argc, argv, &o, &args);
    if (rc >= 0) return rc;
    cli_args = args;
    setvbuf(stdout, NULL, _IOLBF, 0); /* results and progress (stderr) interleave in the order written */
    const char *cmd = CMDS[args.cmd], *model = o.model, *text = args.npos ? args.pos[0] : NULL;
    if (args.npos && args.cmd != 2) {
        fprintf(stderr, "%s: unexpected argument '%s' for '%s' (try --help)\n", prog, text, cmd);
        return 2;
    }
    for (int k = 0; k < N_CELLS; k++)
        if (!strcmp(o.cell, cell_names[k])) o.cfg.gru = k;
    o.cfg.softmax = !strcmp(o.output, "softmax");
    for (int j = 0; j < 3; j++)
        if (!strcmp(o.pool, pool_names[j])) o.cfg.pool = (pool_kind)j;
    char datap[1024], trainp[1200], testp[1200];
    const char *data = o.data ? ex_data_resolve(o.data, datap, sizeof datap) : ex_data_path("sentiment-mr", datap, sizeof datap);
    if (o.threads > 0) sp_set_threads(o.threads);
    if (!*data && args.cmd != 2 && (!o.test || (args.cmd == 0 && !o.train))) {
        fprintf(stderr, "%s: no --data DIR given and %s\n", prog, ex_data_hint());
        return 1;
    }
    snprintf(trainp, sizeof trainp, "%s/train.tsv", data);
    snprintf(testp, sizeof testp, "%s/test.tsv", data);
    if (!o.train) o.train = trainp;
    if (!o.test) o.test = testp;
    /* default model file: named after the data set, in the working directory, so the MR and UCI
     * models never overwrite each other */
    char outp[1200];
    const char *base = strrchr(data, '/');
    base = base && base[1] ? base + 1 : *data ? data : "sentiment-mr";
    snprintf(outp, sizeof outp, "%s%s.safetensors", strncmp(base, "sentiment-", 10) ? "sentiment-" : "", base);
    if (!o.out) o.out = outp;
    if (!model) model = outp;
    if (!strcmp(cmd, "eval")) return do_eval(model, o.test) ? 1 : 0;
    if (!strcmp(cmd, "export")) return do_export(model, o.onnx, o.test, o.ids);
    predict_digits = o.digits;
    if (!strcmp(cmd, "predict")) return do_predict(model, args.pos, args.npos, !o.tape) ? 1 : 0;
    if (o.init_from && o.resume) {
        fprintf(stderr, "%s: --init-from and --resume exclude each other (a resumed run has its weights)\n", prog);
        return 2;
    }
    if (dist_start(&o)) return 1;
    printf("%s", prog);
    for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
    printf("\nseed %llu | %s\n", (unsigned long long)o.seed, sp_info());
    return do_train(&o) ? 1 : 0;
}
