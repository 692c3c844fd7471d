/* SPDX-License-Identifier: MIT */
/* examples/common/text.c - file and line reading, text cleaning, tokenising, vocabulary and option
 * parsing for the word-level examples (see text.h). Plain C, no spool tensors. */
#include "text.h"
#include "atomic.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------- files */

char *ex_read_bytes(const char *path, size_t *len, size_t max, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    int too_big = 0;
    for (;;) {
        if (!buf) break;
        if (n + 1 >= cap) { /* grow, to at most max + 1 bytes: /dev/zero costs max, not all memory */
            size_t nc = max && cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(buf, nc);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb, cap = nc;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (max && n >= max) { too_big = 1; break; }
        if (got == 0) break;
    }
    int bad = ferror(f), e = errno;
    fclose(f);
    if (too_big || !buf || bad) {
        if (too_big) snprintf(err, errlen, "'%s' is larger than %zu MiB (not a text file?)", path, max >> 20);
        else snprintf(err, errlen, "cannot read '%s': %s", path, !buf ? "out of memory" : e ? strerror(e) : "read error");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

char *ex_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    size_t n;
    char *buf = ex_read_bytes(path, &n, 0, err, errlen);
    if (buf && strlen(buf) != n) {
        snprintf(err, errlen, "'%s' contains NUL bytes: not a text file", path);
        free(buf);
        return NULL;
    }
    if (buf && len) *len = n;
    return buf;
}

int ex_lines_open(ex_lines *r, const char *path, size_t max, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        memset(r, 0, sizeof *r);
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    ex_lines_stream(r, f, path, max);
    r->own = 1;
    return 0;
}

void ex_lines_stream(ex_lines *r, FILE *f, const char *name, size_t max)
{
    memset(r, 0, sizeof *r);
    r->f = f, r->name = name, r->max = max;
}

int ex_lines_next(ex_lines *r, char **line, size_t *len, char *err, size_t errlen)
{
    size_t n = 0;
    int c;
    r->lineno++;
    while ((c = getc_unlocked(r->f)) != EOF && c != '\n') {
        if (c == 0) {
            snprintf(err, errlen, "%s:%ld: a NUL byte in line %ld (not a text file?)", r->name, r->lineno, r->lineno);
            return -1;
        }
        if (n >= r->max) {
            snprintf(err, errlen, "%s:%ld: line %ld is longer than %zu bytes", r->name, r->lineno, r->lineno, r->max);
            return -1;
        }
        if (n + 2 > r->cap) {
            size_t nc = r->cap ? 2 * r->cap : 256;
            char *nb = realloc(r->buf, nc);
            if (!nb) {
                snprintf(err, errlen, "%s:%ld: out of memory", r->name, r->lineno);
                return -1;
            }
            r->buf = nb, r->cap = nc;
        }
        r->buf[n++] = (char)c;
    }
    if (c == EOF && ferror(r->f)) {
        snprintf(err, errlen, "cannot read '%s' (line %ld): %s", r->name, r->lineno, errno ? strerror(errno) : "read error");
        return -1;
    }
    if (c == EOF && n == 0) {
        r->lineno--;
        return 0;
    }
    if (!r->buf && !(r->buf = malloc(r->cap = 256))) { /* an empty first line */
        snprintf(err, errlen, "%s:%ld: out of memory", r->name, r->lineno);
        return -1;
    }
    if (n && r->buf[n - 1] == '\r') n--;
    r->buf[n] = '\0';
    *line = r->buf;
    if (len) *len = n;
    return 1;
}

void ex_lines_close(ex_lines *r)
{
    if (r->own && r->f) fclose(r->f);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

int ex_write_file(const char *path, const char *data, size_t len, char *err, size_t errlen)
{
    ex_atomic a;
    FILE *f = ex_atomic_open(&a, path, err, errlen);
    if (!f) return -1;
    if (len && fwrite(data, 1, len, f) != len) {
        snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        ex_atomic_abort(&a);
        return -1;
    }
    return ex_atomic_commit(&a, err, errlen);
}

/* ---------------------------------------------------------------- cleaning */

void ex_clean_text(char *s, size_t len)
{
    unsigned char *u = (unsigned char *)s;
    for (size_t i = 0; i < len; i++) {
        if ((u[i] < 0x20 && u[i] != '\t' && u[i] != '\n') || u[i] == 0x7f) u[i] = ' ';
        else if (u[i] == 0xc2 && i + 1 < len && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f) /* C1 */
            u[i] = u[i + 1] = ' ', i++;
        else if (u[i] == 0xe2 && i + 2 < len && u[i + 1] == 0x80 && u[i + 2] == 0x8b) /* U+200B */
            u[i] = u[i + 1] = u[i + 2] = ' ', i += 2;
    }
}

int ex_utf8_valid(const char *s, size_t len, size_t *bad)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned c = u[i];
        int n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
        if (n < 0 || i + (size_t)n >= len + (n ? 0 : 1)) goto fail;
        unsigned cp = n ? c & (0x3f >> n) : c;
        for (int k = 1; k <= n; k++) {
            if (i + (size_t)k >= len || (u[i + k] & 0xc0) != 0x80) goto fail;
            cp = cp << 6 | (u[i + k] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            goto fail;
        i += (size_t)n + 1;
        continue;
    fail:
        if (bad) *bad = i;
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------- words */

int ex_words_push(ex_words *w, const char *s, size_t len)
{
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        char **ni = realloc(w->items, sizeof(char *) * cap);
        if (!ni) return -1;
        w->items = ni, w->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c) return -1;
    memcpy(c, s, len);
    c[len] = '\0';
    w->items[w->n++] = c;
    return 0;
}

void ex_words_clear(ex_words *w)
{
    for (int i = 0; i < w->n; i++) free(w->items[i]);
    w->n = 0;
}

void ex_words_free(ex_words *w)
{
    ex_words_clear(w);
    free(w->items);
    w->items = NULL, w->cap = 0;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_punct(unsigned char c) { return c < 0x80 && ispunct(c); }

int ex_tokenize(const char *s, size_t len, int lower, ex_words *out)
{
    int added = 0;
    char word[1024];
    size_t i = 0;
    while (i < len) {
        while (i < len && is_space((unsigned char)s[i])) i++;
        size_t b = i;
        while (i < len && !is_space((unsigned char)s[i])) i++;
        size_t e = i;
        if (b == e) continue;
        /* leading punctuation, one character per word */
        while (b < e && is_punct((unsigned char)s[b])) {
            if (ex_words_push(out, s + b, 1)) return -1;
            b++, added++;
        }
        size_t core_end = e;
        while (core_end > b && is_punct((unsigned char)s[core_end - 1])) core_end--;
        if (core_end > b) {
            size_t n = core_end - b < sizeof word ? core_end - b : sizeof word - 1;
            memcpy(word, s + b, n);
            if (lower)
                for (size_t k = 0; k < n; k++)
                    if (word[k] >= 'A' && word[k] <= 'Z') word[k] = (char)(word[k] - 'A' + 'a');
            if (ex_words_push(out, word, n)) return -1;
            added++;
        }
        for (size_t k = core_end; k < e; k++, added++)
            if (ex_words_push(out, s + k, 1)) return -1;
    }
    return added;
}

/* ------------------------------------------------------------------- vocab */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

ex_vocab *ex_vocab_new(void)
{
    ex_vocab *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->nslot = 1024;
    v->slot = calloc((size_t)v->nslot, sizeof(int));
    if (!v->slot) { free(v); return NULL; }
    return v;
}

void ex_vocab_free(ex_vocab *v)
{
    if (!v) return;
    for (int i = 0; i < v->n; i++) free(v->word[i]);
    free(v->word), free(v->count), free(v->slot), free(v);
}

static int find_slot(const ex_vocab *v, const char *w)
{
    size_t mask = (size_t)v->nslot - 1, k = (size_t)hash_str(w) & mask;
    while (v->slot[k] && strcmp(v->word[v->slot[k] - 1], w) != 0) k = (k + 1) & mask;
    return (int)k;
}

int ex_vocab_find(const ex_vocab *v, const char *w)
{
    return v->slot[find_slot(v, w)] - 1;
}

int ex_vocab_add(ex_vocab *v, const char *w)
{
    int k = find_slot(v, w);
    if (v->slot[k]) {
        v->count[v->slot[k] - 1]++;
        return v->slot[k] - 1;
    }
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 256;
        char **nw = realloc(v->word, sizeof(char *) * cap);
        if (!nw) return -1;
        v->word = nw;
        int *nc = realloc(v->count, sizeof(int) * cap);
        if (!nc) return -1;
        v->count = nc, v->cap = cap;
    }
    if (2 * (v->n + 1) > v->nslot) { /* grow and rehash, keeping ids */
        int ns = v->nslot * 2;
        int *nsl = calloc((size_t)ns, sizeof(int));
        if (!nsl) return -1;
        free(v->slot);
        v->slot = nsl, v->nslot = ns;
        for (int i = 0; i < v->n; i++) v->slot[find_slot(v, v->word[i])] = i + 1;
        k = find_slot(v, w);
    }
    v->word[v->n] = strdup(w);
    if (!v->word[v->n]) return -1;
    v->count[v->n] = 1;
    v->slot[k] = ++v->n;
    return v->n - 1;
}

int ex_vocab_save(const ex_vocab *v, const char *path, char *err, size_t errlen)
{
    size_t total = 0;
    for (int i = 0; i < v->n; i++) {
        if (strchr(v->word[i], '\n')) {
            snprintf(err, errlen, "vocabulary word %d contains a newline", i);
            return -1;
        }
        total += strlen(v->word[i]) + 1;
    }
    char *buf = malloc(total + 1), *p = buf;
    if (!buf) { snprintf(err, errlen, "out of memory"); return -1; }
    for (int i = 0; i < v->n; i++) {
        size_t l = strlen(v->word[i]);
        memcpy(p, v->word[i], l);
        p[l] = '\n';
        p += l + 1;
    }
    int rc = ex_write_file(path, buf, total, err, errlen);
    free(buf);
    return rc;
}

ex_vocab *ex_vocab_load(const char *path, char *err, size_t errlen)
{
    size_t len;
    char *buf = ex_read_file(path, &len, err, errlen);
    if (!buf) return NULL;
    ex_vocab *v = ex_vocab_new();
    char *p = buf;
    int line = 0;
    while (v && p < buf + len) {
        char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        if (!nl) {
            snprintf(err, errlen, "'%s': last line has no newline (truncated file?)", path);
            goto fail;
        }
        *nl = '\0';
        line++;
        if (ex_vocab_find(v, p) >= 0) {
            snprintf(err, errlen, "'%s' line %d: duplicate word '%s'", path, line, p);
            goto fail;
        }
        if (ex_vocab_add(v, p) < 0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        v->count[v->n - 1] = 0;
        p = nl + 1;
    }
    free(buf);
    if (!v) snprintf(err, errlen, "out of memory");
    return v;
fail:
    ex_vocab_free(v);
    free(buf);
    return NULL;
}

/* ------------------------------------------------------------------- misc */

void ex_shuffle(int *a, int n, sp_rng *rng)
{
    for (int i = n - 1; i > 0; i--) {
        int j = sp_rng_below(rng, i + 1), t = a[i];
        a[i] = a[j], a[j] = t;
    }
}
