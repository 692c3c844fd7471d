/* SPDX-License-Identifier: MIT */
/* examples/ner/ner_eval.c - CoNLL file reading, BIO spans, entity-level P/R/F1 and the
 * most-frequent-tag baseline for spool-ner (see ner_eval.h for the rules). */
#include "ner_eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ tags */

int ner_tag_split(const char *tag, char *prefix, const char **type)
{
    if (!strcmp(tag, "O")) {
        *prefix = 'O', *type = "";
        return 0;
    }
    if ((tag[0] == 'B' || tag[0] == 'I') && tag[1] == '-' && tag[2] != '\0') {
        *prefix = tag[0], *type = tag + 2;
        return 0;
    }
    return -1;
}

/* j may follow i (i < 0: sentence start) under the BIO rules */
static int bio_may_follow(const char *prev, const char *tag)
{
    char pj, pi = 'O';
    const char *tj, *ti = "";
    if (ner_tag_split(tag, &pj, &tj) != 0 || pj != 'I') return 1;
    if (prev && ner_tag_split(prev, &pi, &ti) != 0) pi = 'O';
    return prev && pi != 'O' && !strcmp(ti, tj);
}

void ner_bio_allowed(const char *const *tags, int K, unsigned char *allowed, unsigned char *start)
{
    for (int j = 0; j < K; j++) {
        start[j] = (unsigned char)bio_may_follow(NULL, tags[j]);
        for (int i = 0; i < K; i++) allowed[i * K + j] = (unsigned char)bio_may_follow(tags[i], tags[j]);
    }
}

int ner_bio_valid(const char *const *tags, int n)
{
    for (int i = 0; i < n; i++)
        if (!bio_may_follow(i ? tags[i - 1] : NULL, tags[i])) return 0;
    return 1;
}

/* ----------------------------------------------------------------- spans */

int ner_spans(const char *const *tags, int n, ner_span *out)
{
    int count = 0, open = 0;
    for (int i = 0; i < n; i++) {
        char p;
        const char *ty;
        if (ner_tag_split(tags[i], &p, &ty) != 0) p = 'O', ty = "";
        /* end of the open span: before O, before any B-, before another type */
        if (open && (p != 'I' || strcmp(ty, out[count - 1].type) != 0)) {
            out[count - 1].end = i;
            open = 0;
        }
        /* start: B-X always; I-X when nothing of type X is open (an I- without a B-) */
        if (p == 'B' || (p == 'I' && !open)) {
            out[count].begin = i, out[count].end = n, out[count].type = ty;
            count++, open = 1;
        }
    }
    return count;
}

/* ---------------------------------------------------------------- scorer */

ner_scorer *ner_scorer_new(void)
{
    ner_scorer *s = calloc(1, sizeof *s);
    if (!s || !(s->types = ex_vocab_new())) {
        free(s);
        return NULL;
    }
    return s;
}

void ner_scorer_free(ner_scorer *s)
{
    if (!s) return;
    ex_vocab_free(s->types);
    free(s->gold), free(s->pred), free(s->correct), free(s);
}

static int type_index(ner_scorer *s, const char *type)
{
    int k = ex_vocab_find(s->types, type);
    if (k >= 0) return k;
    k = ex_vocab_add(s->types, type);
    if (k < 0) return -1;
    if (k >= s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        int *g = realloc(s->gold, sizeof(int) * cap);
        if (g) s->gold = g;
        int *p = realloc(s->pred, sizeof(int) * cap);
        if (p) s->pred = p;
        int *c = realloc(s->correct, sizeof(int) * cap);
        if (c) s->correct = c;
        if (!g || !p || !c) return -1;
        s->cap = cap;
    }
    s->gold[k] = s->pred[k] = s->correct[k] = 0;
    return k;
}

int ner_scorer_add(ner_scorer *s, const char *const *gold, const char *const *pred, int n)
{
    if (n <= 0) return 0;
    ner_span *gs = malloc(sizeof(ner_span) * (size_t)n), *ps = malloc(sizeof(ner_span) * (size_t)n);
    int rc = -1;
    if (!gs || !ps) goto out;
    int ng = ner_spans(gold, n, gs), np = ner_spans(pred, n, ps);
    for (int i = 0; i < ng; i++) {
        int k = type_index(s, gs[i].type);
        if (k < 0) goto out;
        s->gold[k]++;
    }
    /* both lists are sorted by begin and spans do not overlap: one merge pass */
    int j = 0;
    for (int i = 0; i < np; i++) {
        int k = type_index(s, ps[i].type);
        if (k < 0) goto out;
        s->pred[k]++;
        while (j < ng && gs[j].begin < ps[i].begin) j++;
        if (j < ng && gs[j].begin == ps[i].begin && gs[j].end == ps[i].end && !strcmp(gs[j].type, ps[i].type))
            s->correct[k]++;
    }
    for (int i = 0; i < n; i++) s->n_tokens_correct += !strcmp(gold[i], pred[i]);
    s->n_tokens += n;
    rc = 0;
out:
    free(gs), free(ps);
    return rc;
}

static ner_prf prf(int gold, int pred, int correct)
{
    ner_prf r = {gold, pred, correct, 0, 0, 0};
    if (pred > 0) r.precision = (double)correct / pred;
    if (gold > 0) r.recall = (double)correct / gold;
    if (r.precision + r.recall > 0) r.f1 = 2 * r.precision * r.recall / (r.precision + r.recall);
    return r;
}

ner_prf ner_scorer_total(const ner_scorer *s)
{
    int g = 0, p = 0, c = 0;
    for (int k = 0; k < s->types->n; k++) g += s->gold[k], p += s->pred[k], c += s->correct[k];
    return prf(g, p, c);
}

ner_prf ner_scorer_type(const ner_scorer *s, int k) { return prf(s->gold[k], s->pred[k], s->correct[k]); }

static const ex_vocab *sort_vocab;
static int by_name(const void *a, const void *b)
{
    return strcmp(sort_vocab->word[*(const int *)a], sort_vocab->word[*(const int *)b]);
}

void ner_scorer_print(const ner_scorer *s, FILE *f, const char *title)
{
    ner_prf t = ner_scorer_total(s);
    fprintf(f, "%s: %d tokens, %d gold entities, %d found, %d correct; tag accuracy %.2f%%\n", title,
            s->n_tokens, t.gold, t.pred, t.correct, s->n_tokens ? 100.0 * s->n_tokens_correct / s->n_tokens : 0.0);
    fprintf(f, "%s: precision %6.2f%%  recall %6.2f%%  F1 %6.2f\n", title, 100 * t.precision, 100 * t.recall,
            100 * t.f1);
    int n = s->types->n, *order = malloc(sizeof(int) * (n ? n : 1));
    if (!order) return;
    for (int k = 0; k < n; k++) order[k] = k;
    sort_vocab = s->types;
    qsort(order, (size_t)n, sizeof(int), by_name);
    for (int i = 0; i < n; i++) {
        ner_prf r = ner_scorer_type(s, order[i]);
        fprintf(f, "%s: %17s  precision %6.2f%%  recall %6.2f%%  F1 %6.2f  (%d gold, %d found)\n", title,
                s->types->word[order[i]], 100 * r.precision, 100 * r.recall, 100 * r.f1, r.gold, r.pred);
    }
    free(order);
}

/* ---------------------------------------------------------------- corpus */

static char *trim(char *b, char *e)
{
    while (b < e && (*b == ' ' || *b == '\r')) b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\r')) e--;
    *e = '\0';
    return b;
}

ner_corpus *ner_read(const char *path, ex_vocab *tags, int add_tags, int limit, char *err, size_t errlen)
{
    size_t len;
    char *buf = ex_read_file(path, &len, err, errlen);
    if (!buf) return NULL;
    ner_corpus *c = calloc(1, sizeof *c);
    if (!c) goto nomem;
    int line = 0, in_sent = 0;
    char *p = buf, *end = buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        line++;
        char *tab = memchr(p, '\t', (size_t)(le - p));
        if (!tab && *trim(p, le) == '\0') { /* sentence boundary */
            if (in_sent && limit > 0 && c->n_sent >= limit) break;
            in_sent = 0;
        } else {
            if (!tab) {
                snprintf(err, errlen, "%s:%d: expected 'token<TAB>tag', found no TAB", path, line);
                goto fail;
            }
            if (memchr(tab + 1, '\t', (size_t)(le - tab - 1))) {
                snprintf(err, errlen, "%s:%d: more than one TAB on the line", path, line);
                goto fail;
            }
            char *word = trim(p, tab), *tag = trim(tab + 1, le);
            char pre;
            const char *ty;
            if (*word == '\0') {
                snprintf(err, errlen, "%s:%d: empty token", path, line);
                goto fail;
            }
            if (ner_tag_split(tag, &pre, &ty) != 0) {
                snprintf(err, errlen, "%s:%d: '%s' is not a BIO tag (O, B-TYPE or I-TYPE)", path, line, tag);
                goto fail;
            }
            int id = add_tags ? ex_vocab_add(tags, tag) : ex_vocab_find(tags, tag);
            if (id < 0) {
                if (add_tags) goto nomem;
                snprintf(err, errlen, "%s:%d: tag '%s' does not occur in the training data", path, line, tag);
                goto fail;
            }
            if (!in_sent) {
                if (limit > 0 && c->n_sent >= limit) break;
                if (c->n_sent == c->cap_sent) {
                    int cap = c->cap_sent ? 2 * c->cap_sent : 256;
                    int *st = realloc(c->start, sizeof(int) * (size_t)cap);
                    if (!st) goto nomem;
                    c->start = st;
                    int *ln = realloc(c->len, sizeof(int) * (size_t)cap);
                    if (!ln) goto nomem;
                    c->len = ln, c->cap_sent = cap;
                }
                c->start[c->n_sent] = c->n_tok, c->len[c->n_sent] = 0;
                c->n_sent++, in_sent = 1;
            }
            if (c->n_tok == c->cap_tok) {
                int cap = c->cap_tok ? 2 * c->cap_tok : 4096;
                char **wd = realloc(c->word, sizeof(char *) * (size_t)cap);
                if (!wd) goto nomem;
                c->word = wd;
                int *tg = realloc(c->tag, sizeof(int) * (size_t)cap);
                if (!tg) goto nomem;
                c->tag = tg, c->cap_tok = cap;
            }
            if (!(c->word[c->n_tok] = strdup(word))) goto nomem;
            c->tag[c->n_tok++] = id;
            if (++c->len[c->n_sent - 1] > c->max_len) c->max_len = c->len[c->n_sent - 1];
        }
        p = nl ? nl + 1 : end;
    }
    if (c->n_sent == 0) {
        snprintf(err, errlen, "%s: no sentences found", path);
        goto fail;
    }
    free(buf);
    return c;
nomem:
    snprintf(err, errlen, "%s: out of memory", path);
fail:
    ner_corpus_free(c);
    free(buf);
    return NULL;
}

void ner_corpus_free(ner_corpus *c)
{
    if (!c) return;
    for (int i = 0; i < c->n_tok; i++) free(c->word[i]);
    free(c->word), free(c->tag), free(c->start), free(c->len), free(c);
}

/* -------------------------------------------------------------- baseline */

int ner_baseline_fit(ner_baseline *b, const ner_corpus *train, const ex_vocab *tags)
{
    memset(b, 0, sizeof *b);
    b->o_tag = ex_vocab_find(tags, "O");
    if (b->o_tag < 0) b->o_tag = 0;
    if (!(b->words = ex_vocab_new())) return -1;
    for (int i = 0; i < train->n_tok; i++)
        if (ex_vocab_add(b->words, train->word[i]) < 0) return -1;
    int W = b->words->n, K = tags->n;
    int *count = calloc((size_t)W * K, sizeof(int)), *first = malloc(sizeof(int) * (size_t)W * K);
    b->best = malloc(sizeof(int) * (size_t)W);
    if (!count || !first || !b->best) {
        free(count), free(first);
        return -1;
    }
    for (int i = 0; i < train->n_tok; i++) { /* first[] breaks ties by first occurrence */
        int w = ex_vocab_find(b->words, train->word[i]);
        if (count[(size_t)w * K + train->tag[i]]++ == 0) first[(size_t)w * K + train->tag[i]] = i;
    }
    for (int w = 0; w < W; w++) {
        int best = -1;
        for (int k = 0; k < K; k++) {
            int ck = count[(size_t)w * K + k];
            if (ck == 0) continue;
            if (best < 0 || ck > count[(size_t)w * K + best] ||
                (ck == count[(size_t)w * K + best] && first[(size_t)w * K + k] < first[(size_t)w * K + best]))
                best = k;
        }
        b->best[w] = best;
    }
    free(count), free(first);
    return 0;
}

int ner_baseline_tag(const ner_baseline *b, const char *word)
{
    int w = ex_vocab_find(b->words, word);
    return w < 0 ? b->o_tag : b->best[w];
}

void ner_baseline_free(ner_baseline *b)
{
    ex_vocab_free(b->words);
    free(b->best);
    memset(b, 0, sizeof *b);
}
