/* SPDX-License-Identifier: MIT */
/* json.c - the strict JSON parser behind safetensors headers (see json.h for what "strict"
 * means). Recursive descent over a byte buffer that need not be NUL-terminated; every read is
 * bounds-checked against the end, because the buffer is whatever a file said it was.
 */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds for hostile input: nesting, and the number of values (a header of "[0,0,0,..." would
 * otherwise cost ~36 bytes of nodes per 2 bytes of text; 2M values is ~200k tensors). */
enum { SJ_MAX_DEPTH = 32, SJ_MAX_VALUES = 1 << 21 };

typedef struct {
    const unsigned char *p, *end, *start;
    char *err;
    size_t errlen;
    int failed;
    long values;
} sj_parser;

static void fail_at(sj_parser *ps, const char *fmt, ...)
{
    if (ps->failed) return;
    ps->failed = 1;
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(ps->err, ps->errlen, "%s at byte %zu", msg, (size_t)(ps->p - ps->start));
}

static void skip_ws(sj_parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

/* Length of the UTF-8 sequence at p (1..4) if valid, else 0. */
static int utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    if (c < 0x80) return 1;
    int n;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
    else return 0;
    if (end - p < n) return 0;
    for (int k = 1; k < n; k++) {
        if ((p[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    return n;
}

int sp__utf8_valid(const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf, *end = p + len;
    while (p < end) {
        int n = utf8_seq(p, end);
        if (!n) return 0;
        p += n;
    }
    return 1;
}

static int hex4(sj_parser *ps, unsigned *out)
{
    if (ps->end - ps->p < 4) return 0;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned c = ps->p[k], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        v = v * 16 + d;
    }
    ps->p += 4;
    *out = v;
    return 1;
}

static size_t put_utf8(unsigned char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* At the opening quote. The decoded string is never longer than its source. */
static int parse_string(sj_parser *ps, char **out, size_t *out_len)
{
    ps->p++;
    const unsigned char *q = ps->p;
    while (q < ps->end && *q != '"') q += (*q == '\\' && q + 1 < ps->end) ? 2 : 1;
    if (q >= ps->end) {
        fail_at(ps, "unterminated string");
        return 0;
    }
    unsigned char *o = malloc((size_t)(q - ps->p) + 1);
    if (!o) {
        fail_at(ps, "out of memory");
        return 0;
    }
    size_t n = 0;
    for (;;) {
        if (ps->p >= ps->end) {
            fail_at(ps, "unterminated string");
            goto bad;
        }
        unsigned c = *ps->p;
        if (c == '"') break;
        if (c < 0x20) {
            fail_at(ps, "control character 0x%02x in string", c);
            goto bad;
        }
        if (c != '\\') {
            int k = utf8_seq(ps->p, ps->end);
            if (!k) {
                fail_at(ps, "invalid UTF-8 in string");
                goto bad;
            }
            memcpy(o + n, ps->p, (size_t)k);
            n += (size_t)k;
            ps->p += k;
            continue;
        }
        ps->p++;
        if (ps->p >= ps->end) {
            fail_at(ps, "unterminated escape");
            goto bad;
        }
        c = *ps->p++;
        switch (c) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (!hex4(ps, &cp)) {
                fail_at(ps, "bad \\u escape");
                goto bad;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail_at(ps, "lone low surrogate in \\u escape");
                goto bad;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                    fail_at(ps, "high surrogate without its low half");
                    goto bad;
                }
                ps->p += 2;
                if (!hex4(ps, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    fail_at(ps, "bad low surrogate");
                    goto bad;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            /* \uXXXX is 6 source bytes and at most 3 output bytes; a pair is 12 and 4. */
            n += put_utf8(o + n, cp);
            break;
        }
        default:
            fail_at(ps, "bad escape \\%c", (c >= 0x20 && c < 0x7f) ? (int)c : '?');
            goto bad;
        }
    }
    ps->p++;
    o[n] = 0;
    *out = (char *)o;
    *out_len = n;
    return 1;
bad:
    free(o);
    return 0;
}

static int parse_number(sj_parser *ps, sj_value *v)
{
    const unsigned char *s = ps->p;
    int neg = 0, is_int = 1, overflow = 0;
    uint64_t mag = 0;
    if (ps->p < ps->end && *ps->p == '-') neg = 1, ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
        fail_at(ps, "bad number");
        return 0;
    }
    if (*ps->p == '0') {
        ps->p++;
        if (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            fail_at(ps, "leading zero in number");
            return 0;
        }
    } else {
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            unsigned d = *ps->p++ - '0';
            if (mag > (UINT64_MAX - d) / 10) overflow = 1;
            else mag = mag * 10 + d;
        }
    }
    if (ps->p < ps->end && *ps->p == '.') {
        is_int = 0;
        ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
            fail_at(ps, "bad fraction in number");
            return 0;
        }
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        is_int = 0;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
            fail_at(ps, "bad exponent in number");
            return 0;
        }
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    (void)s;
    v->type = SJ_NUM;
    if (is_int && !overflow && mag <= (uint64_t)INT64_MAX) {
        v->is_int = 1;
        v->i = neg ? -(int64_t)mag : (int64_t)mag;
    }
    return 1;
}

static int match_word(sj_parser *ps, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0) return 0;
    ps->p += n;
    return 1;
}

static void free_value(sj_value *v);

static int cmp_key(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

/* Duplicate keys are checked by sorting a copy of the key pointers; keys with an embedded NUL
 * compare by their first part, which can only report a false duplicate (an error anyway). */
static int has_duplicate(sj_value *v, const char **dup)
{
    if (v->n < 2) return 0;
    char **k = malloc((size_t)v->n * sizeof *k);
    if (!k) return -1;
    memcpy(k, v->keys, (size_t)v->n * sizeof *k);
    qsort(k, (size_t)v->n, sizeof *k, cmp_key);
    int d = 0;
    for (int i = 1; i < v->n && !d; i++)
        if (strcmp(k[i - 1], k[i]) == 0) d = 1, *dup = k[i];
    free(k);
    return d;
}

static int parse_value(sj_parser *ps, sj_value *v, int depth);

static int push_item(sj_parser *ps, sj_value *v, int *cap, int obj)
{
    if (v->n < *cap) return 1;
    int nc = *cap ? 2 * *cap : 4;
    sj_value *it = realloc(v->items, (size_t)nc * sizeof *it);
    if (it) v->items = it;
    if (obj && it) {
        char **k = realloc(v->keys, (size_t)nc * sizeof *k);
        if (k) v->keys = k;
        size_t *kl = k ? realloc(v->key_lens, (size_t)nc * sizeof *kl) : NULL;
        if (kl) v->key_lens = kl;
        if (!k || !kl) it = NULL;
    }
    if (!it) {
        fail_at(ps, "out of memory");
        return 0;
    }
    *cap = nc;
    return 1;
}

static int parse_container(sj_parser *ps, sj_value *v, int depth, int obj)
{
    char close = obj ? '}' : ']';
    int cap = 0;
    v->type = obj ? SJ_OBJ : SJ_ARR;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 1;
    }
    for (;;) {
        if (!push_item(ps, v, &cap, obj)) return 0;
        sj_value *it = &v->items[v->n];
        memset(it, 0, sizeof *it);
        if (obj) {
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != '"') {
                fail_at(ps, "expected a string key");
                return 0;
            }
            if (!parse_string(ps, &v->keys[v->n], &v->key_lens[v->n])) return 0;
            v->n++; /* the key is owned now; the value is filled in below */
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                fail_at(ps, "expected ':' after key");
                return 0;
            }
            ps->p++;
            if (!parse_value(ps, it, depth + 1)) return 0;
        } else {
            v->n++;
            if (!parse_value(ps, it, depth + 1)) return 0;
        }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            break;
        }
        fail_at(ps, "expected ',' or '%c'", close);
        return 0;
    }
    const char *dup = NULL;
    int d = obj ? has_duplicate(v, &dup) : 0;
    if (d < 0) fail_at(ps, "out of memory");
    else if (d) fail_at(ps, "duplicate key \"%.60s\"", dup);
    return d == 0;
}

static int parse_value(sj_parser *ps, sj_value *v, int depth)
{
    if (depth > SJ_MAX_DEPTH) {
        fail_at(ps, "nesting deeper than %d", SJ_MAX_DEPTH);
        return 0;
    }
    if (++ps->values > SJ_MAX_VALUES) {
        fail_at(ps, "more than %d values", SJ_MAX_VALUES);
        return 0;
    }
    skip_ws(ps);
    if (ps->p >= ps->end) {
        fail_at(ps, "unexpected end of text");
        return 0;
    }
    switch (*ps->p) {
    case '{': return parse_container(ps, v, depth, 1);
    case '[': return parse_container(ps, v, depth, 0);
    case '"':
        v->type = SJ_STR;
        return parse_string(ps, &v->s, &v->len);
    case 't':
    case 'f':
        v->type = SJ_BOOL;
        v->boolean = *ps->p == 't';
        if (match_word(ps, v->boolean ? "true" : "false")) return 1;
        break;
    case 'n':
        v->type = SJ_NULL;
        if (match_word(ps, "null")) return 1;
        break;
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) return parse_number(ps, v);
    }
    fail_at(ps, "unexpected character '%c'", (*ps->p >= 0x20 && *ps->p < 0x7f) ? *ps->p : '?');
    return 0;
}

static void free_value(sj_value *v)
{
    free(v->s);
    for (int i = 0; i < v->n; i++) {
        free_value(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->key_lens);
}

void sp__json_free(sj_value *v)
{
    if (!v) return;
    free_value(v);
    free(v);
}

sj_value *sp__json_parse(const char *text, size_t len, char *err, size_t errlen)
{
    sj_parser ps = {(const unsigned char *)text, (const unsigned char *)text + len,
                    (const unsigned char *)text, err, errlen, 0, 0};
    if (errlen) err[0] = 0;
    sj_value *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (parse_value(&ps, v, 0)) {
        skip_ws(&ps);
        if (ps.p != ps.end) fail_at(&ps, "trailing characters after the JSON value");
    }
    if (ps.failed) {
        sp__json_free(v);
        return NULL;
    }
    return v;
}

const sj_value *sp__json_get(const sj_value *obj, const char *key)
{
    if (!obj || obj->type != SJ_OBJ) return NULL;
    for (int i = 0; i < obj->n; i++)
        if (strlen(obj->keys[i]) == obj->key_lens[i] && strcmp(obj->keys[i], key) == 0) return &obj->items[i];
    return NULL;
}
