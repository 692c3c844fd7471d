/* SPDX-License-Identifier: MIT */
/* wordlm.c - spool-wordlm: a word-level language model. It tokenises a real corpus (by default
 * the Pang & Lee movie-review sentences in examples/data/sentiment-mr), builds a vocabulary with
 * <unk> for rare words and <eos> at sentence ends, trains an LSTM (or GRU / vanilla RNN) to
 * predict each next word, reports held-out perplexity, and then scores sentences word by word
 * (P(sentence) = prod_k P(w_k | w_<k) * P(<eos> | w_1..w_n)) or samples new ones.
 *
 *   spool-wordlm train  [options]              train, evaluate, save CKPT and CKPT.vocab
 *   spool-wordlm eval   --load CKPT [--test F] held-out perplexity
 *   spool-wordlm score  --load CKPT "a sentence" ...
 *   spool-wordlm sample --load CKPT [--n 5] [--temperature 1]
 */
#include "spool.h"
#include "spool/layers.h"
#include "spool/optim.h"
#include "common/opts.h"
#include "common/progress.h"
#include "common/text.h"
#include "wordlm_data.h"
#include "wordlm_lm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "spool-wordlm"

typedef struct {
    const char *cmd, *train, *test, *cell, *save, *load;
    int epochs, batch, emb, hidden, min_count, max_sent, n, maxlen, threads, allow_unk;
    double lr, clip, dropout, temperature;
    uint64_t seed;
    const char *sentences[64];
    int n_sentences;
} options;

enum { TRAIN = 1, EVAL = 2, SCORE = 4, SAMPLE = 8 };
#define T options
static const ex_opt OPTS[] = {
    EX_OPT("train", EX_STR, T, train, NULL, 0, 0, TRAIN, "FILE",
           "training sentences (default: the bundled sentiment-mr/train.tsv);\n"
           "                        .tsv: the text before the first TAB of each line; else every line"),
    EX_OPT("test", EX_STR, T, test, NULL, 0, 0, TRAIN | EVAL, "FILE", "held-out sentences (default: the bundled sentiment-mr/test.tsv)"),
    EX_OPT("min-count", EX_INT, T, min_count, "3", 1, 1000000, TRAIN, "N", "words seen fewer than N times in training become <unk>"),
    EX_OPT("max-sentences", EX_INT, T, max_sent, "0", 0, 100000000, TRAIN, "N", "use only the first N training sentences (0 = all)"),
    EX_OPT("epochs", EX_INT, T, epochs, "6", 0, 100000, TRAIN, "N", "passes over the training sentences"),
    EX_OPT("batch", EX_INT, T, batch, "32", 1, 4096, TRAIN, "B", "sentences per update"),
    EX_CHOICE("cell", EX_STR, T, cell, "lstm", "lstm|gru|rnn|mingru|minlstm", TRAIN, "KIND", "recurrent cell"),
    EX_OPT("emb", EX_INT, T, emb, "128", 1, 4096, TRAIN, "E", "word embedding size"),
    EX_OPT("hidden", EX_INT, T, hidden, "256", 1, 8192, TRAIN, "H", "hidden size"),
    EX_OPT("dropout", EX_DBL, T, dropout, "0.3", 0, 0.95, TRAIN, "P", "dropout on embeddings and outputs while training"),
    EX_OPT("lr", EX_DBL, T, lr, "0.002", 0, 10, TRAIN, "X", "Adam learning rate (halved after every epoch from the 3rd)"),
    EX_OPT("clip", EX_DBL, T, clip, "5", 0, 1e9, TRAIN, "X", "gradient-norm clipping, 0 = off"),
    EX_OPT("seed", EX_U64, T, seed, "1", 0, 0, TRAIN | SAMPLE, "S", "seed of shuffling, initialisation and sampling"),
    EX_OPT("save", EX_STR, T, save, "wordlm.safetensors", 0, 0, TRAIN, "CKPT",
           "checkpoint after every epoch (vocabulary in CKPT.vocab)"),
    EX_OPT("load", EX_STR, T, load, NULL, 0, 0, EVAL | SCORE | SAMPLE, "CKPT", "model for eval / score / sample"),
    EX_OPT("n", EX_INT, T, n, "5", 0, 100000, SAMPLE, "N", "sentences to sample"),
    EX_OPT("temperature", EX_DBL, T, temperature, "1", 1e-3, 100, SAMPLE, "X", "sampling temperature"),
    EX_OPT("max-len", EX_INT, T, maxlen, "40", 1, 10000, SAMPLE, "N", "longest sampled sentence in words"),
    EX_OPT("allow-unk", EX_FLAG, T, allow_unk, NULL, 0, 0, SAMPLE, NULL, "let sampling draw <unk>"),
    EX_OPT_THREADS(T, threads, 0),
    EX_OPT_PRECISION(0),
};
#undef T
static const char *const CMDS[] = {"train", "eval", "score", "sample", NULL};
static const ex_cli CLI = {PROG,
                           "Usage: " PROG " train  [options]                  train, report held-out perplexity, save\n"
                           "       " PROG " eval   --load CKPT [--test FILE]   perplexity of a saved model\n"
                           "       " PROG " score  --load CKPT \"a sentence\" ... P(sentence) and each word's P(w | before)\n"
                           "       " PROG " sample --load CKPT [--n N] [--temperature X] [--seed S]\n"
                           "Word-level language model (embedding -> LSTM/GRU/RNN -> softmax over the vocabulary).\n",
                           ex_usage_data, CMDS, NULL, OPTS, sizeof OPTS / sizeof OPTS[0], 64, "sentences"};

/* -1 to go on, else the exit status */
static int parse_args(int argc, char **argv, options *o)
{
    static char trainp[1200], testp[1200];
    *o = (options){0};
    ex_args args;
    int rc = ex_cli_parse(&CLI, argc, argv, o, &args);
    if (rc >= 0) return rc;
    o->cmd = CMDS[args.cmd];
    if (args.npos && strcmp(o->cmd, "score")) {
        fprintf(stderr, PROG ": unexpected argument '%s' (try --help)\n", args.pos[0]);
        return 2;
    }
    for (int i = 0; i < args.npos; i++) o->sentences[o->n_sentences++] = args.pos[i];
    if (strcmp(o->cmd, "train") && !o->load) {
        fprintf(stderr, PROG ": %s needs --load CKPT\n", o->cmd);
        return 2;
    }
    if (!strcmp(o->cmd, "score") && !o->n_sentences) {
        fprintf(stderr, PROG ": score needs at least one sentence\n");
        return 2;
    }
    if (!o->train) o->train = ex_data_path("sentiment-mr/train.tsv", trainp, sizeof trainp);
    if (!o->test) o->test = ex_data_path("sentiment-mr/test.tsv", testp, sizeof testp);
    if ((!*o->train && !strcmp(o->cmd, "train")) || (!*o->test && strcmp(o->cmd, "score") && strcmp(o->cmd, "sample"))) {
        fprintf(stderr, PROG ": no --train/--test FILE given and %s\n", ex_data_hint());
        return 1;
    }
    return -1;
}

/* Reads a file of sentences into word ids with vocabulary v (built here from it if *v is NULL). */
static int load_corpus(const char *path, int max_sent, int min_count, ex_vocab **v, wl_corpus *c)
{
    ex_words w = {0};
    int *sl = NULL, ns = 0, rc = -1;
    char err[512];
    if (wl_read_sentences(path, &w, &sl, &ns, err, sizeof err)) {
        fprintf(stderr, PROG ": %s\n", err);
        return -1;
    }
    if (max_sent > 0 && ns > max_sent) {
        long keep = 0;
        for (int i = 0; i < max_sent; i++) keep += sl[i];
        while (w.n > keep) free(w.items[--w.n]);
        ns = max_sent;
    }
    if (!*v) *v = wl_build_vocab(&w, min_count);
    if (!*v || wl_corpus_make(c, *v, &w, sl, ns)) fprintf(stderr, PROG ": out of memory\n");
    else rc = 0;
    free(sl);
    ex_words_free(&w);
    return rc;
}

static char *vocab_path(const char *ckpt)
{
    size_t n = strlen(ckpt) + 7;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s.vocab", ckpt);
    return p;
}

/* FNV-1a over the words in id order: the checkpoint stores it, so a .vocab file of another run (or
 * of an interrupted save) is caught at load instead of silently pairing ids with other words. */
static void vocab_hash(const ex_vocab *v, char *out, size_t n)
{
    unsigned long long h = 1469598103934665603ULL;
    for (int k = 0; k < v->n; k++)
        for (const unsigned char *p = (const unsigned char *)v->word[k];; p++) {
            h = (h ^ *p) * 1099511628211ULL; /* the terminating 0 separates words */
            if (!*p) break;
        }
    snprintf(out, n, "%016llx", h);
}

/* The checkpoint first, then its vocabulary, each atomically: a failed checkpoint save leaves the
 * previous pair as it was; a failed vocabulary save is reported, and the hash check at load says
 * the pair does not match. */
static int save_all(const char *path, const wl_model *m, const ex_vocab *v, const options *o, const sp_optim *opt,
                    int epoch)
{
    char e[16], h[16], vs[16], ep[16], mc[16], dr[32];
    snprintf(e, sizeof e, "%d", m->E), snprintf(h, sizeof h, "%d", m->H), snprintf(vs, sizeof vs, "%d", m->V);
    snprintf(ep, sizeof ep, "%d", epoch), snprintf(mc, sizeof mc, "%d", o->min_count), snprintf(dr, sizeof dr, "%g", m->dropout);
    char vh[32];
    vocab_hash(v, vh, sizeof vh);
    sp_kv meta[] = {{"model", "spool-wordlm"}, {"cell", o->cell}, {"emb", e}, {"hidden", h}, {"vocab", vs},
                    {"epoch", ep}, {"min_count", mc}, {"dropout", dr}, {"train", o->train}, {"vocab_fnv", vh}};
    sp_ckpt_opts co = {.meta = meta, .n_meta = 10};
    char err[512], *vp = vocab_path(path);
    int rc = 0;
    if (!vp) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = -1;
    } else if (sp_save(path, m->ps, opt, &co) != SP_OK) {
        fprintf(stderr, PROG ": %s\n", sp_last_error());
        rc = -1;
    } else if (ex_vocab_save(v, vp, err, sizeof err)) {
        fprintf(stderr, PROG ": %s\n", err);
        rc = -1;
    }
    free(vp);
    return rc;
}

static int load_all(const char *path, wl_model *m, ex_vocab **v)
{
    char err[512], *vp = vocab_path(path);
    if (!vp) return -1;
    *v = ex_vocab_load(vp, err, sizeof err);
    free(vp);
    if (!*v) {
        fprintf(stderr, PROG ": %s\n", err);
        return -1;
    }
    sp_ckpt_info *ci = sp_ckpt_open(path);
    if (!ci) {
        fprintf(stderr, PROG ": %s\n", sp_last_error());
        ex_vocab_free(*v), *v = NULL; /* error exits free what they made (the caller returns) */
        return -1;
    }
    const char *kind = sp_ckpt_meta(ci, "model"), *cell = sp_ckpt_meta(ci, "cell"), *e = sp_ckpt_meta(ci, "emb"),
               *h = sp_ckpt_meta(ci, "hidden"), *vs = sp_ckpt_meta(ci, "vocab"), *vf = sp_ckpt_meta(ci, "vocab_fnv");
    char vh[32];
    vocab_hash(*v, vh, sizeof vh);
    int ok = kind && !strcmp(kind, "spool-wordlm") && cell && e && h && vs && atoi(e) > 0 && atoi(h) > 0 &&
             atoi(vs) == (*v)->n && (!vf || !strcmp(vf, vh)); /* older checkpoints have no hash */
    char cellbuf[16];
    int E = ok ? atoi(e) : 0, H = ok ? atoi(h) : 0;
    if (ok) snprintf(cellbuf, sizeof cellbuf, "%s", cell);
    sp_ckpt_close(ci);
    if (!ok) {
        fprintf(stderr, PROG ": %s is not a spool-wordlm checkpoint matching its .vocab file\n", path);
        ex_vocab_free(*v), *v = NULL;
        return -1;
    }
    sp_rng r;
    sp_rng_seed(&r, 0);
    if (wl_model_init(m, (*v)->n, E, H, cellbuf, 0, &r) || sp_load(path, m->ps, NULL, NULL) != SP_OK) {
        fprintf(stderr, PROG ": %s\n", sp_last_error());
        ex_vocab_free(*v), *v = NULL;
        wl_model_free(m);
        return -1;
    }
    return 0;
}

/* Add-one unigram perplexity of c under counts from train: the floor any context model must beat. */
static double unigram_ppl(const wl_corpus *train, const wl_corpus *c, int V)
{
    double *cnt = calloc((size_t)V, sizeof(double)), N = 0, nll = 0;
    if (!cnt) return NAN;
    for (long i = 0; i < train->n_ids; i++) cnt[train->ids[i]]++, N++;
    cnt[WL_EOS] += train->n, N += train->n;
    for (long i = 0; i < c->n_ids; i++) nll -= log((cnt[c->ids[i]] + 1) / (N + V));
    nll -= c->n * log((cnt[WL_EOS] + 1) / (N + V));
    free(cnt);
    return wl_perplexity(nll, c->n_ids + c->n);
}

static int cmd_train(const options *o)
{
    ex_vocab *v = NULL;
    wl_corpus tr, te;
    if (load_corpus(o->train, o->max_sent, o->min_count, &v, &tr)) return 1;
    if (load_corpus(o->test, 0, o->min_count, &v, &te)) return 1;
    sp_rng rng;
    sp_rng_seed(&rng, o->seed);
    wl_model m;
    if (wl_model_init(&m, v->n, o->emb, o->hidden, o->cell, o->dropout, &rng)) {
        fprintf(stderr, PROG ": %s\n", sp_last_error());
        return 1;
    }
    sp_optim_config oc = sp_optim_defaults(SP_ADAM);
    sp_optim *opt = sp_optim_new(m.ps, &oc);
    if (!opt) {
        fprintf(stderr, PROG ": %s\n", sp_last_error());
        return 1;
    }
    printf(PROG ": %s: %d sentences, %ld words; %s: %d sentences, %ld words\n", o->train, tr.n, tr.n_ids, o->test,
           te.n, te.n_ids);
    printf("vocabulary %d (min count %d, with <eos> and <unk>); <unk> rate train %.3f, held-out %.3f\n", v->n,
           o->min_count, wl_unk_rate(&tr), wl_unk_rate(&te));
    printf("held-out perplexity of an add-one unigram model: %.1f\n", unigram_ppl(&tr, &te, v->n));
    printf("model: %s emb %d hidden %d dropout %g, %zu parameters | batch %d epochs %d lr %g seed %llu\n%s\n", o->cell,
           o->emb, o->hidden, o->dropout, m.ps->numel, o->batch, o->epochs, o->lr, (unsigned long long)o->seed, sp_info());
    fflush(stdout);

    int nb = (tr.n + o->batch - 1) / o->batch, B = o->batch, rc = 0;
    int *order = malloc(sizeof(int) * (size_t)tr.n), *border = malloc(sizeof(int) * (size_t)nb);
    int maxT = 1;
    for (int i = 0; i < tr.n; i++) maxT = tr.len[i] + 1 > maxT ? tr.len[i] + 1 : maxT;
    int *ids = malloc(sizeof(int) * (size_t)maxT * B), *tgt = malloc(sizeof(int) * (size_t)maxT * B);
    if (!order || !border || !ids || !tgt) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    sp_tape *t = sp_tape_new();
    double t0 = ex_now(), lr = o->lr, ppl = NAN;
    ex_progress pg; /* a batch line redrawn on a terminal only, never into a log file */
    ex_progress_init(&pg, 0, 0, 0);
    for (int ep = 1; ep <= o->epochs && !rc; ep++) {
        if (ep >= 3) lr *= 0.5;
        wl_bucket_order(&tr, order, 20 * B, &rng);
        for (int k = 0; k < nb; k++) border[k] = k;
        ex_shuffle(border, nb, &rng);
        double nll = 0, te0 = ex_now();
        long ntok = 0;
        for (int k = 0; k < nb; k++) {
            int *which = order + border[k] * B, n = tr.n - border[k] * B < B ? tr.n - border[k] * B : B;
            int T = wl_batch_T(&tr, which, n);
            long cnt = wl_batch_fill(&tr, which, n, T, ids, tgt);
            sp_tape_reset(t);
            sp_params_zero_grad(m.ps);
            sp_tensor *loss = wl_model_loss(t, &m, ids, tgt, T, n, NULL, 1, &rng);
            if (!loss || sp_backward(t, loss) != SP_OK) {
                fprintf(stderr, PROG ": %s\n", sp_tape_errmsg(t));
                rc = 1;
                break;
            }
            sp_status st = o->clip > 0 ? sp_clip_grad_norm(m.ps, o->clip, NULL) : SP_OK;
            if (st == SP_OK) st = sp_optim_step(opt, lr);
            if (st != SP_OK) {
                fprintf(stderr, PROG ": %s\n", sp_last_error());
                rc = 1;
                break;
            }
            nll += loss->data[0] * cnt, ntok += cnt;
            ex_progress_step(&pg, k + 1, "epoch %d  batch %d/%d  train perplexity %.1f  %.0f words/s", ep, k + 1, nb,
                             wl_perplexity(nll, ntok), ntok / (ex_now() - te0));
        }
        if (rc) break;
        double hn;
        long hc;
        if (wl_eval(t, &m, &te, 64, &hn, &hc)) {
            fprintf(stderr, PROG ": %s\n", sp_tape_errmsg(t));
            rc = 1;
            break;
        }
        ppl = wl_perplexity(hn, hc);
        ex_progress_line(&pg, stdout, "epoch %d  lr %g  train perplexity %.1f  held-out perplexity %.1f (%ld tokens)  %.0f s",
                         ep, lr, wl_perplexity(nll, ntok), ppl, hc, ex_now() - t0);
        if (o->save && save_all(o->save, &m, v, o, opt, ep)) rc = 1;
    }
    if (!rc)
        printf("final held-out perplexity %.2f after %d epochs, training %.1f s%s%s\n", ppl, o->epochs, ex_now() - t0,
               o->save ? "; checkpoint " : "", o->save ? o->save : "");
    sp_tape_free(t);
    sp_optim_free(opt);
    wl_model_free(&m);
    wl_corpus_free(&tr), wl_corpus_free(&te);
    ex_vocab_free(v);
    free(order), free(border), free(ids), free(tgt);
    return rc;
}

static int cmd_loaded(const options *o)
{
    wl_model m;
    ex_vocab *v = NULL;
    if (load_all(o->load, &m, &v)) return 1;
    sp_tape *t = sp_tape_new();
    sp_rng rng;
    sp_rng_seed(&rng, o->seed);
    int rc = 0;
    if (!strcmp(o->cmd, "eval")) {
        wl_corpus te;
        double nll;
        long n;
        if (load_corpus(o->test, 0, o->min_count, &v, &te)) rc = 1;
        else if (wl_eval(t, &m, &te, 64, &nll, &n)) {
            fprintf(stderr, PROG ": %s\n", sp_tape_errmsg(t));
            rc = 1;
        } else {
            printf("%s: %d sentences, %ld tokens (words + <eos>), <unk> rate %.3f, perplexity %.2f\n", o->test, te.n, n,
                   wl_unk_rate(&te), wl_perplexity(nll, n));
        }
        if (!rc) wl_corpus_free(&te);
    } else if (!strcmp(o->cmd, "score")) {
        for (int s = 0; s < o->n_sentences && !rc; s++) {
            ex_words w = {0};
            if (ex_tokenize(o->sentences[s], strlen(o->sentences[s]), 1, &w) < 0) {
                rc = 1;
                break;
            }
            int *ids = malloc(sizeof(int) * (size_t)(w.n + 1));
            double *lp = malloc(sizeof(double) * (size_t)(w.n + 1));
            if (!ids || !lp) rc = 1;
            for (int k = 0; !rc && k < w.n; k++) {
                int id = ex_vocab_find(v, w.items[k]);
                ids[k] = id < 0 ? WL_UNK : id;
            }
            if (!rc && wl_score(t, &m, ids, w.n, lp)) {
                fprintf(stderr, PROG ": %s\n", sp_tape_errmsg(t));
                rc = 1;
            }
            if (!rc) {
                double sum = 0;
                printf("\"%s\"\n", o->sentences[s]);
                for (int k = 0; k <= w.n; k++) {
                    sum += lp[k];
                    const char *word = k < w.n ? w.items[k] : "<eos>";
                    printf("  %-20s %s P = %.6f  (log %.3f)\n", word, k < w.n && ids[k] == WL_UNK ? "<unk>" : "     ",
                           exp(lp[k]), lp[k]);
                }
                printf("  log P(sentence) = %.3f   P(sentence) = %.4g   per-word perplexity %.1f\n", sum, exp(sum),
                       exp(-sum / (w.n + 1)));
            }
            free(ids), free(lp);
            ex_words_free(&w);
        }
    } else {
        int *out = malloc(sizeof(int) * (size_t)o->maxlen);
        for (int s = 0; out && s < o->n && !rc; s++) {
            int n = wl_sample(t, &m, &rng, o->temperature, o->allow_unk, o->maxlen, out);
            if (n < 0) {
                fprintf(stderr, PROG ": %s\n", sp_tape_errmsg(t));
                rc = 1;
                break;
            }
            for (int k = 0; k < n; k++) printf("%s%s", k ? " " : "", v->word[out[k]]);
            printf("\n");
        }
        free(out);
    }
    sp_tape_free(t);
    wl_model_free(&m);
    ex_vocab_free(v);
    return rc;
}

int main(int argc, char **argv)
{
    options o;
    int prc = parse_args(argc, argv, &o);
    if (prc >= 0) return prc;
    if (o.threads) sp_set_threads(o.threads);
    return !strcmp(o.cmd, "train") ? cmd_train(&o) : cmd_loaded(&o);
}
