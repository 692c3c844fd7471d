/* SPDX-License-Identifier: MIT */
/* examples/sentiment/sentiment_data.c - reading and tokenising labelled sentences, and accuracy, for
 * spool-sentiment (see sentiment_data.h). */
#include "sentiment_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int push_sentence(sent_corpus *c, const char *text, size_t len, int label, int *cap)
{
    if (c->n == *cap) {
        int nc = *cap ? 2 * *cap : 1024;
        int *s = realloc(c->start, sizeof(int) * nc);
        if (!s) return -1;
        c->start = s;
        int *l = realloc(c->len, sizeof(int) * nc);
        if (!l) return -1;
        c->len = l;
        int *b = realloc(c->label, sizeof(int) * nc);
        if (!b) return -1;
        c->label = b, *cap = nc;
    }
    c->start[c->n] = c->words.n;
    int got = ex_tokenize(text, len, 1, &c->words);
    if (got < 0) return -1;
    c->len[c->n] = got;
    c->label[c->n] = label;
    if (got > c->max_len) c->max_len = got;
    c->n++;
    return 0;
}

sent_corpus *sent_read(const char *path, int limit, char *err, size_t errlen)
{
    size_t len;
    char *buf = ex_read_file(path, &len, err, errlen);
    if (!buf) return NULL;
    ex_clean_text(buf, len);
    sent_corpus *c = calloc(1, sizeof *c);
    int cap = 0, line = 0;
    if (!c) goto nomem;
    char *p = buf, *end = buf + len;
    while (p < end && (limit <= 0 || c->n < limit)) {
        char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl ? nl : end;
        line++;
        char *tab = NULL;
        for (char *q = p; q < le; q++)
            if (*q == '\t') tab = q;
        int blank = 1;
        for (char *q = p; q < le; q++)
            if (*q != ' ') blank = 0;
        if (!blank) {
            if (!tab) {
                snprintf(err, errlen, "%s:%d: expected 'sentence<TAB>label', found no TAB", path, line);
                goto fail;
            }
            char *lb = tab + 1, *lend = le;
            while (lb < lend && *lb == ' ') lb++;
            while (lend > lb && lend[-1] == ' ') lend--;
            if (lend - lb != 1 || (*lb != '0' && *lb != '1')) {
                snprintf(err, errlen, "%s:%d: label must be 0 or 1, found '%.*s'", path, line, (int)(lend - lb), lb);
                goto fail;
            }
            if (push_sentence(c, p, (size_t)(tab - p), *lb - '0', &cap)) goto nomem;
        }
        p = nl ? nl + 1 : end;
    }
    if (c->n == 0) {
        snprintf(err, errlen, "%s: no labelled sentences found", path);
        goto fail;
    }
    free(buf);
    return c;
nomem:
    snprintf(err, errlen, "%s: out of memory", path);
fail:
    sent_corpus_free(c);
    free(buf);
    return NULL;
}

sent_corpus *sent_from_text(const char *text, char *err, size_t errlen)
{
    size_t len = strlen(text);
    char *copy = strdup(text);
    sent_corpus *c = calloc(1, sizeof *c);
    int cap = 0;
    if (!copy || !c) goto nomem;
    ex_clean_text(copy, len);
    if (push_sentence(c, copy, len, 0, &cap)) goto nomem;
    free(copy);
    return c;
nomem:
    snprintf(err, errlen, "out of memory");
    free(copy);
    sent_corpus_free(c);
    return NULL;
}

void sent_corpus_free(sent_corpus *c)
{
    if (!c) return;
    ex_words_free(&c->words);
    free(c->start), free(c->len), free(c->label), free(c);
}

void sent_ids(const sent_corpus *c, const ex_vocab *v, int unk, int *ids)
{
    for (int i = 0; i < c->words.n; i++) {
        int id = ex_vocab_find(v, c->words.items[i]);
        ids[i] = id < 0 ? unk : id;
    }
}

sent_confusion sent_score(const int *label, const double *prob, int n)
{
    sent_confusion c = {0, 0, 0, 0};
    for (int i = 0; i < n; i++) {
        int pos = prob[i] >= 0.5;
        if (label[i]) pos ? c.tp++ : c.fn++;
        else pos ? c.fp++ : c.tn++;
    }
    return c;
}

double sent_accuracy(sent_confusion c)
{
    int n = c.tp + c.tn + c.fp + c.fn;
    return n ? (double)(c.tp + c.tn) / n : 0.0;
}
