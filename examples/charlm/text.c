/* SPDX-License-Identifier: MIT */
/* text.c - from bytes to batches for spool-charlm: strict UTF-8 decoding (so a bad file is
 * reported with its byte offset instead of training on garbage), the code-point vocabulary,
 * data splits as token ids, and the two batch layouts (one example per line, or running text
 * cut into chunks whose state is carried from one chunk to the next). */
#include "charlm.h"
#include "../common/text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

long cl_utf8_decode(const unsigned char *s, size_t n, uint32_t **out, char *err, size_t errn)
{
    uint32_t *cp = malloc(sizeof(uint32_t) * (n + 1));
    if (!cp) {
        snprintf(err, errn, "out of memory decoding %zu bytes", n);
        return -1;
    }
    long k = 0;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        int len;
        uint32_t v, min;
        if (c < 0x80) { cp[k++] = c; i++; continue; }
        else if ((c & 0xE0) == 0xC0) { len = 2; v = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; v = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; v = c & 0x07; min = 0x10000; }
        else goto bad;
        if (i + (size_t)len > n) goto bad;
        for (int j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80) goto bad;
            v = (v << 6) | (s[i + j] & 0x3F);
        }
        /* overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8 */
        if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) goto bad;
        cp[k++] = v;
        i += (size_t)len;
    }
    *out = cp;
    return k;
bad:
    snprintf(err, errn, "invalid UTF-8 at byte offset %zu (byte 0x%02X)", i, s[i]);
    free(cp);
    return -1;
}

int cl_utf8_encode(uint32_t cp, char *b)
{
    if (cp < 0x80) { b[0] = (char)cp; return 1; }
    if (cp < 0x800) { b[0] = (char)(0xC0 | cp >> 6); b[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12); b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (char)(0xF0 | cp >> 18); b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); b[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

const char *cl_cp_show(uint32_t cp, char *buf, size_t n)
{
    char u[8] = {0};
    if (cp == CL_BOUNDARY) snprintf(buf, n, "<end>");
    else if (cp == '\n') snprintf(buf, n, "'\\n'");
    else if (cp == '\t') snprintf(buf, n, "'\\t'");
    else if (cp == '\r') snprintf(buf, n, "'\\r'");
    else if (cp < 0x20 || cp == 0x7F) snprintf(buf, n, "U+%04X", cp);
    else if (cp < 0x80) snprintf(buf, n, "'%c'", (char)cp);
    else {
        cl_utf8_encode(cp, u);
        snprintf(buf, n, "U+%04X '%s'", cp, u);
    }
    return buf;
}

unsigned char *cl_read_file(const char *path, size_t *len, char *err, size_t errn)
{
    return (unsigned char *)ex_read_bytes(path, len, CL_MAX_FILE, err, errn);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int cl_vocab_build(cl_vocab *v, const uint32_t *text, long n, int lines)
{
    uint32_t *tmp = malloc(sizeof(uint32_t) * (size_t)(n + 1));
    if (!tmp) return -1;
    long k = 0;
    for (long i = 0; i < n; i++)
        if (!(lines && (text[i] == '\n' || text[i] == '\r'))) tmp[k++] = text[i];
    qsort(tmp, (size_t)k, sizeof(uint32_t), cmp_u32);
    v->cp = malloc(sizeof(uint32_t) * (size_t)(k + 1));
    if (!v->cp) { free(tmp); return -1; }
    v->V = 0;
    if (lines) v->cp[v->V++] = CL_BOUNDARY;
    for (long i = 0; i < k; i++)
        if (i == 0 || tmp[i] != tmp[i - 1]) v->cp[v->V++] = tmp[i];
    free(tmp);
    return 0;
}

int cl_vocab_id(const cl_vocab *v, uint32_t cp)
{
    int lo = v->V > 0 && v->cp[0] == CL_BOUNDARY ? 1 : 0, hi = v->V - 1;
    if (cp == CL_BOUNDARY) return lo == 1 ? 0 : -1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (v->cp[mid] == cp) return mid;
        if (v->cp[mid] < cp) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

void cl_vocab_free(cl_vocab *v)
{
    free(v->cp);
    v->cp = NULL;
    v->V = 0;
}

char *cl_vocab_to_string(const cl_vocab *v)
{
    char *s = malloc((size_t)v->V * 12 + 2);
    if (!s) return NULL;
    size_t k = 0;
    for (int i = 0; i < v->V; i++)
        k += (size_t)sprintf(s + k, i ? ",%ld" : "%ld", v->cp[i] == CL_BOUNDARY ? -1L : (long)v->cp[i]);
    s[k] = 0;
    return s;
}

int cl_vocab_from_string(cl_vocab *v, const char *s, char *err, size_t errn)
{
    int cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    v->cp = malloc(sizeof(uint32_t) * (size_t)cap);
    v->V = 0;
    if (!v->cp) { snprintf(err, errn, "out of memory"); return -1; }
    const char *p = s;
    while (*p) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || (x < -1 || x > 0x10FFFF) || (x == -1 && v->V != 0) ||
            (v->V > 0 && x != -1 && v->cp[v->V - 1] != CL_BOUNDARY && (uint32_t)x <= v->cp[v->V - 1])) {
            snprintf(err, errn, "malformed vocabulary in checkpoint near \"%.20s\"", p);
            cl_vocab_free(v);
            return -1;
        }
        v->cp[v->V++] = x == -1 ? CL_BOUNDARY : (uint32_t)x;
        p = end;
        if (*p == ',') p++;
        else if (*p) {
            snprintf(err, errn, "malformed vocabulary in checkpoint near \"%.20s\"", p);
            cl_vocab_free(v);
            return -1;
        }
    }
    if (v->V < 2) {
        snprintf(err, errn, "vocabulary in checkpoint has %d symbols (need >= 2)", v->V);
        cl_vocab_free(v);
        return -1;
    }
    return 0;
}

int cl_data_make(cl_data *d, const cl_vocab *v, const uint32_t *text, long n, int lines,
                 const char *what, char *err, size_t errn)
{
    memset(d, 0, sizeof *d);
    d->lines = lines;
    d->ids = malloc(sizeof(int) * (size_t)(n + 1));
    d->start = malloc(sizeof(long) * (size_t)(n + 2));
    if (!d->ids || !d->start) {
        snprintf(err, errn, "out of memory");
        cl_data_free(d);
        return -1;
    }
    long line = 1, k = 0, line_start = 0;
    d->start[0] = 0;
    for (long i = 0; i <= n; i++) {
        if (lines && (i == n || text[i] == '\n')) {
            if (k > line_start) { /* empty lines are no examples */
                d->start[++d->n_seq] = k;
                if (k - line_start > d->max_len) d->max_len = (int)(k - line_start);
            }
            line_start = k;
            line++;
            continue;
        }
        if (i == n) break;
        if (lines && text[i] == '\r' && (i + 1 == n || text[i + 1] == '\n')) continue;
        int id = cl_vocab_id(v, text[i]);
        if (id < 0) {
            char sh[32];
            snprintf(err, errn, "%s: character %s (line %ld) is not in the vocabulary of the training data",
                     what, cl_cp_show(text[i], sh, sizeof sh), line);
            cl_data_free(d);
            return -1;
        }
        if (text[i] == '\n') line++;
        d->ids[k++] = id;
    }
    d->n = k;
    if (!lines) d->n_seq = 1, d->start[1] = k;
    if ((lines && d->n_seq == 0) || (!lines && k < 2)) {
        snprintf(err, errn, "%s: no data (%s)", what, lines ? "no non-empty line" : "fewer than 2 characters");
        cl_data_free(d);
        return -1;
    }
    return 0;
}

void cl_data_free(cl_data *d)
{
    free(d->ids);
    free(d->start);
    memset(d, 0, sizeof *d);
}

static void batch_alloc(cl_batch *b, int T, int B)
{
    size_t need = (size_t)T * (size_t)B;
    if ((size_t)b->T * (size_t)b->B < need || !b->in) {
        free(b->in);
        free(b->tgt);
        b->in = malloc(sizeof(int) * need);
        b->tgt = malloc(sizeof(int) * need);
        if (!b->in || !b->tgt) { fprintf(stderr, "spool-charlm: out of memory\n"); exit(1); }
    }
    b->T = T;
    b->B = B;
}

void cl_batch_lines(cl_batch *b, const cl_data *d, const int *idx, int B)
{
    int T = 0;
    for (int r = 0; r < B; r++) {
        int len = (int)(d->start[idx[r] + 1] - d->start[idx[r]]);
        if (len + 1 > T) T = len + 1;
    }
    batch_alloc(b, T, B);
    b->predicted = 0;
    for (int r = 0; r < B; r++) {
        const int *s = d->ids + d->start[idx[r]];
        int len = (int)(d->start[idx[r] + 1] - d->start[idx[r]]);
        for (int t = 0; t < T; t++) {
            int in = t == 0 ? 0 : (t <= len ? s[t - 1] : -1);
            int tg = t < len ? s[t] : (t == len ? 0 : -1);
            b->in[t * B + r] = in;
            b->tgt[t * B + r] = tg;
            b->predicted += tg >= 0;
        }
    }
}

long cl_stream_chunks(const cl_data *d, int B, int T)
{
    long L = d->n / B;
    return L < 2 ? 0 : (L - 1) / T;
}

void cl_batch_stream(cl_batch *b, const cl_data *d, int B, int T, long chunk)
{
    cl_batch_stream_at(b, d, B, T, chunk * T);
}

void cl_batch_stream_at(cl_batch *b, const cl_data *d, int B, int T, long pos)
{
    long L = d->n / B;
    batch_alloc(b, T, B);
    for (int r = 0; r < B; r++) {
        const int *s = d->ids + (size_t)r * (size_t)L + (size_t)pos;
        for (int t = 0; t < T; t++) {
            b->in[t * B + r] = s[t];
            b->tgt[t * B + r] = s[t + 1];
        }
    }
    b->predicted = (long)T * B;
}

void cl_batch_free(cl_batch *b)
{
    free(b->in);
    free(b->tgt);
    memset(b, 0, sizeof *b);
}
