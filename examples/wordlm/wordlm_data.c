/* SPDX-License-Identifier: MIT */
/* wordlm_data.c - reading sentences, the vocabulary with <eos>/<unk>, batches and perplexity for
 * spool-wordlm (see wordlm_data.h). */
#include "wordlm_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wl_read_sentences(const char *path, ex_words *words, int **sent_len, int *n_sent, char *err, size_t errlen)
{
    size_t len;
    char *buf = ex_read_file(path, &len, err, errlen);
    if (!buf) return -1;
    size_t bad;
    if (!ex_utf8_valid(buf, len, &bad)) { /* words would be cut mid-character: refuse, naming the place */
        int line = 1;
        for (size_t i = 0; i < bad; i++) line += buf[i] == '\n';
        snprintf(err, errlen, "%s: line %d: invalid UTF-8 (byte %zu of the file)", path, line, bad);
        free(buf);
        return -1;
    }
    ex_clean_text(buf, len);
    size_t pl = strlen(path);
    int tsv = pl > 4 && !strcmp(path + pl - 4, ".tsv"), n = 0, cap = 0, *sl = NULL;
    for (char *line = buf; line < buf + len;) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        char *end = nl ? nl : buf + len;
        char *stop = end;
        if (tsv) {
            char *tab = memchr(line, '\t', (size_t)(end - line));
            if (tab) stop = tab;
        }
        int k = ex_tokenize(line, (size_t)(stop - line), 1, words);
        if (k < 0) goto nomem;
        if (k > 0) {
            if (n == cap) {
                cap = cap ? 2 * cap : 1024;
                int *q = realloc(sl, sizeof(int) * (size_t)cap);
                if (!q) goto nomem;
                sl = q;
            }
            sl[n++] = k;
        }
        line = end + 1;
    }
    free(buf);
    if (n == 0) {
        snprintf(err, errlen, "%s: no sentences", path);
        free(sl);
        return -1;
    }
    *sent_len = sl, *n_sent = n;
    return 0;
nomem:
    snprintf(err, errlen, "%s: out of memory", path);
    free(buf), free(sl);
    return -1;
}

static const ex_vocab *sort_vocab;
static int by_count(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_vocab->count[i] != sort_vocab->count[j]) return sort_vocab->count[j] - sort_vocab->count[i];
    return strcmp(sort_vocab->word[i], sort_vocab->word[j]);
}

ex_vocab *wl_build_vocab(const ex_words *words, int min_count)
{
    ex_vocab *all = ex_vocab_new(), *v = ex_vocab_new();
    int *idx = NULL;
    if (!all || !v) goto fail;
    for (int i = 0; i < words->n; i++)
        if (ex_vocab_add(all, words->items[i]) < 0) goto fail;
    idx = malloc(sizeof(int) * (size_t)(all->n + 1));
    if (!idx) goto fail;
    for (int i = 0; i < all->n; i++) idx[i] = i;
    sort_vocab = all;
    qsort(idx, (size_t)all->n, sizeof(int), by_count);
    if (ex_vocab_add(v, "<eos>") != WL_EOS || ex_vocab_add(v, "<unk>") != WL_UNK) goto fail;
    for (int k = 0; k < all->n; k++) {
        int i = idx[k];
        if (all->count[i] < min_count) break;
        if (!strcmp(all->word[i], "<eos>") || !strcmp(all->word[i], "<unk>")) continue;
        int id = ex_vocab_add(v, all->word[i]);
        if (id < 0) goto fail;
        v->count[id] = all->count[i];
    }
    free(idx);
    ex_vocab_free(all);
    return v;
fail:
    free(idx);
    ex_vocab_free(all);
    ex_vocab_free(v);
    return NULL;
}

int wl_corpus_make(wl_corpus *c, const ex_vocab *v, const ex_words *words, const int *sent_len, int n_sent)
{
    memset(c, 0, sizeof *c);
    c->start = malloc(sizeof(int) * (size_t)n_sent), c->len = malloc(sizeof(int) * (size_t)n_sent);
    c->ids = malloc(sizeof(int) * (size_t)(words->n + 1));
    if (!c->start || !c->len || !c->ids) {
        wl_corpus_free(c);
        return -1;
    }
    long pos = 0;
    for (int i = 0; i < n_sent; i++) {
        c->start[i] = (int)pos, c->len[i] = sent_len[i];
        for (int k = 0; k < sent_len[i] && pos < words->n; k++, pos++) {
            int id = ex_vocab_find(v, words->items[pos]);
            c->ids[pos] = id < 0 ? WL_UNK : id;
        }
    }
    c->n = n_sent, c->n_ids = pos;
    return 0;
}

void wl_corpus_free(wl_corpus *c)
{
    free(c->start), free(c->len), free(c->ids);
    memset(c, 0, sizeof *c);
}

double wl_unk_rate(const wl_corpus *c)
{
    long u = 0;
    for (long i = 0; i < c->n_ids; i++) u += c->ids[i] == WL_UNK;
    return c->n_ids ? (double)u / (double)c->n_ids : 0;
}

int wl_batch_T(const wl_corpus *c, const int *which, int B)
{
    int T = 0;
    for (int b = 0; b < B; b++)
        if (c->len[which[b]] > T) T = c->len[which[b]];
    return T + 1;
}

long wl_batch_fill(const wl_corpus *c, const int *which, int B, int T, int *ids, int *tgt)
{
    long n = 0;
    for (int b = 0; b < B; b++) {
        const int *w = c->ids + c->start[which[b]];
        int L = c->len[which[b]];
        for (int t = 0; t < T; t++) {
            ids[t * B + b] = t == 0 ? WL_EOS : t <= L ? w[t - 1] : -1;
            tgt[t * B + b] = t < L ? w[t] : t == L ? WL_EOS : -1;
            n += t <= L;
        }
    }
    return n;
}

static const wl_corpus *sort_corpus;
static int by_len(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    return sort_corpus->len[i] != sort_corpus->len[j] ? sort_corpus->len[i] - sort_corpus->len[j] : i - j;
}

void wl_bucket_order(const wl_corpus *c, int *order, int window, sp_rng *rng)
{
    for (int i = 0; i < c->n; i++) order[i] = i;
    ex_shuffle(order, c->n, rng);
    sort_corpus = c;
    for (int i = 0; i < c->n; i += window)
        qsort(order + i, (size_t)(c->n - i < window ? c->n - i : window), sizeof(int), by_len);
}

double wl_perplexity(double nll, long n) { return n > 0 ? exp(nll / (double)n) : NAN; }
