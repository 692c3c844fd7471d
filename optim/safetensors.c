/* SPDX-License-Identifier: MIT */
/* safetensors.c - reading and writing the safetensors container.
 *
 * Layout: 8 bytes little-endian u64 N, N bytes of JSON header, then the data buffer. The header
 * maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
 * data buffer) plus an optional "__metadata__" object of string -> string. Validation follows
 * the reference reader (safetensors/src/tensor.rs, Metadata::validate): sizes agree with
 * shape x dtype with overflow checks, tensors cover the buffer from 0 to its end without gaps or
 * overlap, no duplicate names; and, stricter than it, no unknown keys in a tensor entry.
 * Every check happens before anything is returned, so callers see a whole valid table or none.
 */
#include "safetensors.h"
#include "json.h"
#include "../autograd/file_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Byte sizes of the dtypes of the format that have a whole number of bytes per element. */
static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1},
    {"F8_E4M3FNUZ", 1}, {"F8_E5M2FNUZ", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2}, {"BF16", 2},
    {"I32", 4}, {"U32", 4}, {"F32", 4}, {"F64", 8}, {"I64", 8}, {"U64", 8}, {"C64", 8},
};

static size_t dtype_size(const char *s, const char **canon)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(s, dtypes[i].name) == 0) {
            *canon = dtypes[i].name;
            return dtypes[i].size;
        }
    return 0;
}

void sp_ckpt_close(sp_ckpt_info *ci)
{
    if (!ci) return;
    for (int i = 0; i < ci->nt; i++) free((char *)ci->t[i].pub.name);
    for (int i = 0; i < ci->nm; i++) {
        free((char *)ci->meta[i].key);
        free((char *)ci->meta[i].value);
    }
    free(ci->t);
    free(ci->meta);
    free(ci);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const sp_st_entry *)a)->pub.name, ((const sp_st_entry *)b)->pub.name);
}

static int by_begin(const void *a, const void *b)
{
    const sp_st_entry *x = *(const sp_st_entry *const *)a, *y = *(const sp_st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static sp_ckpt_info *format_error(sp_ckpt_info *ci, sj_value *root, const char *fmt, ...) SP_PRINTF(3, 4);

static sp_ckpt_info *format_error(sp_ckpt_info *ci, sj_value *root, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sp_fail(SP_ERR_FORMAT, "safetensors: %s", msg);
    sp_ckpt_close(ci);
    sp__json_free(root);
    return NULL;
}

/* One tensor entry of the header into e (name already set). NULL on success, else why not. */
static const char *parse_entry(const sj_value *v, sp_st_entry *e)
{
    if (v->type != SJ_OBJ) return "entry is not an object";
    for (int k = 0; k < v->n; k++)
        if (strcmp(v->keys[k], "dtype") && strcmp(v->keys[k], "shape") && strcmp(v->keys[k], "data_offsets"))
            return "entry has a key other than dtype, shape, data_offsets";
    const sj_value *dt = sp__json_get(v, "dtype"), *sh = sp__json_get(v, "shape"), *off = sp__json_get(v, "data_offsets");
    if (!dt || !sh || !off) return "entry lacks dtype, shape or data_offsets";
    if (dt->type != SJ_STR || !(e->elem = dtype_size(dt->s, &e->pub.dtype))) return "unknown or unsupported dtype";
    if (sh->type != SJ_ARR) return "shape is not an array";
    if (sh->n > 8) return "shape has more than 8 dimensions";
    uint64_t numel = 1;
    int overflow = 0;
    for (int d = 0; d < sh->n; d++) {
        const sj_value *x = &sh->items[d];
        if (x->type != SJ_NUM || !x->is_int || x->i < 0) return "shape entry is not a non-negative integer";
        e->pub.shape[d] = x->i;
        uint64_t u = (uint64_t)x->i;
        if (u && numel > UINT64_MAX / u) overflow = 1;
        else numel *= u;
    }
    e->pub.ndim = sh->n;
    if (off->type != SJ_ARR || off->n != 2) return "data_offsets is not a pair";
    for (int d = 0; d < 2; d++)
        if (off->items[d].type != SJ_NUM || !off->items[d].is_int || off->items[d].i < 0)
            return "data_offsets entry is not a non-negative integer";
    e->begin = (uint64_t)off->items[0].i;
    e->end = (uint64_t)off->items[1].i;
    if (e->end < e->begin) return "data_offsets end before begin";
    if (overflow || numel > UINT64_MAX / e->elem) return "shape x dtype size overflows";
    if (e->end - e->begin != numel * e->elem) return "data_offsets size differs from shape x dtype size";
    return NULL;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n), d[n] = 0;
    return d;
}

sp_ckpt_info *sp_st_parse_header(const unsigned char *hdr, size_t hdr_len, uint64_t data_len)
{
    char err[256];
    sj_value *root = sp__json_parse((const char *)hdr, hdr_len, err, sizeof err);
    if (!root) return format_error(NULL, NULL, "header is not valid JSON: %s", err);
    if (root->type != SJ_OBJ) return format_error(NULL, root, "header is not a JSON object");
    sp_ckpt_info *ci = calloc(1, sizeof *ci);
    if (!ci || !(ci->t = calloc((size_t)root->n + 1, sizeof *ci->t))) {
        int n = root->n; /* read before root is freed */
        sp_ckpt_close(ci);
        sp__json_free(root);
        sp_fail(SP_ERR_NOMEM, "safetensors: out of memory for a header of %d entries", n);
        return NULL;
    }
    ci->data_len = data_len;
    for (int k = 0; k < root->n; k++) {
        const char *key = root->keys[k];
        const sj_value *v = &root->items[k];
        if (strlen(key) != root->key_lens[k]) return format_error(ci, root, "a name contains a NUL character");
        if (strcmp(key, "__metadata__") == 0) {
            if (v->type != SJ_OBJ) return format_error(ci, root, "__metadata__ is not an object");
            if (!(ci->meta = calloc((size_t)v->n + 1, sizeof *ci->meta)))
                return format_error(ci, root, "out of memory for metadata");
            for (int j = 0; j < v->n; j++) {
                const sj_value *s = &v->items[j];
                if (s->type != SJ_STR) return format_error(ci, root, "__metadata__ value of \"%.80s\" is not a string", v->keys[j]);
                if (strlen(v->keys[j]) != v->key_lens[j] || strlen(s->s) != s->len)
                    return format_error(ci, root, "__metadata__ contains a NUL character");
                ci->meta[j].key = dup_n(v->keys[j], v->key_lens[j]);
                ci->meta[j].value = dup_n(s->s, s->len);
                ci->nm++;
                if (!ci->meta[j].key || !ci->meta[j].value) return format_error(ci, root, "out of memory for metadata");
            }
            continue;
        }
        sp_st_entry *e = &ci->t[ci->nt];
        const char *why = parse_entry(v, e);
        if (!(e->pub.name = dup_n(key, root->key_lens[k]))) return format_error(ci, root, "out of memory");
        ci->nt++;
        if (why) return format_error(ci, root, "tensor \"%.120s\": %s", key, why);
    }
    sp__json_free(root);
    root = NULL;
    /* Coverage: sorted by begin, each starts where the previous ended, the last ends at the
     * end of the buffer. This rejects gaps, overlaps, out-of-range offsets and trailing bytes. */
    sp_st_entry **order = malloc(((size_t)ci->nt + 1) * sizeof *order);
    if (!order) return format_error(ci, NULL, "out of memory");
    for (int i = 0; i < ci->nt; i++) order[i] = &ci->t[i];
    qsort(order, (size_t)ci->nt, sizeof *order, by_begin);
    uint64_t at = 0;
    for (int i = 0; i < ci->nt; i++) {
        if (order[i]->begin != at) {
            const char *nm = order[i]->pub.name;
            uint64_t b = order[i]->begin;
            free(order);
            return format_error(ci, NULL, "tensor \"%.120s\" starts at byte %llu of the data, expected %llu "
                                "(gap, overlap or bad offset)", nm, (unsigned long long)b, (unsigned long long)at);
        }
        at = order[i]->end;
    }
    free(order);
    if (at != data_len)
        return format_error(ci, NULL, "tensors cover %llu bytes but the data buffer has %llu (truncated or "
                            "trailing bytes)", (unsigned long long)at, (unsigned long long)data_len);
    qsort(ci->t, (size_t)ci->nt, sizeof *ci->t, by_name);
    return ci;
}

static uint64_t le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = (v << 8) | b[k];
    return v;
}

/* Checks the 8-byte length against the limit and the file size; the header's JSON follows. */
static sp_status check_prefix(const unsigned char *b8, uint64_t file_len, uint64_t *n)
{
    if (file_len < 8) return sp_fail(SP_ERR_FORMAT, "safetensors: file of %llu bytes is shorter than the 8-byte "
                                     "header length", (unsigned long long)file_len);
    *n = le64(b8);
    if (*n > SP_ST_MAX_HEADER)
        return sp_fail(SP_ERR_FORMAT, "safetensors: header length %llu is above the 100 MB limit",
                       (unsigned long long)*n);
    if (*n > file_len - 8)
        return sp_fail(SP_ERR_FORMAT, "safetensors: header length %llu runs past the end of the file (%llu bytes)",
                       (unsigned long long)*n, (unsigned long long)file_len);
    return SP_OK;
}

sp_ckpt_info *sp_ckpt_parse(const unsigned char *buf, size_t len)
{
    uint64_t n = 0;
    if (!buf && len) {
        sp_fail(SP_ERR_ARG, "sp_ckpt_parse: buffer is NULL");
        return NULL;
    }
    if (check_prefix(buf, len, &n) != SP_OK) return NULL;
    sp_ckpt_info *ci = sp_st_parse_header(buf + 8, (size_t)n, len - 8 - n);
    if (ci) ci->data_start = 8 + n;
    return ci;
}

/* Prefix the thread's error message with the path. */
static void blame_path(const char *path)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", sp_last_error());
    sp_fail(sp_last_status(), "%s: %s", path, msg);
}

sp_ckpt_info *sp_ckpt_open(const char *path)
{
    if (!path) {
        sp_fail(SP_ERR_ARG, "sp_ckpt_open: path is NULL");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        sp_fail(SP_ERR_IO, "sp_ckpt_open: cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    unsigned char b8[8] = {0};
    unsigned char *hdr = NULL;
    sp_ckpt_info *ci = NULL;
    uint64_t n = 0;
    if (fstat(fileno(f), &st) != 0) {
        sp_fail(SP_ERR_IO, "sp_ckpt_open: cannot stat %s: %s", path, strerror(errno));
        goto out;
    }
    if ((st.st_size >= 8 && fread(b8, 1, 8, f) != 8)) {
        sp_fail(SP_ERR_IO, "sp_ckpt_open: cannot read %s", path);
        goto out;
    }
    if (check_prefix(b8, (uint64_t)st.st_size, &n) != SP_OK) {
        blame_path(path);
        goto out;
    }
    if (!(hdr = malloc(n ? n : 1))) {
        sp_fail(SP_ERR_NOMEM, "sp_ckpt_open: %s: out of memory for a %llu-byte header", path, (unsigned long long)n);
        goto out;
    }
    if (fread(hdr, 1, n, f) != n) {
        sp_fail(SP_ERR_IO, "sp_ckpt_open: cannot read the header of %s", path);
        goto out;
    }
    if (!(ci = sp_st_parse_header(hdr, n, (uint64_t)st.st_size - 8 - n))) blame_path(path);
    else ci->data_start = 8 + n;
out:
    free(hdr);
    fclose(f);
    return ci;
}

int sp_ckpt_n_meta(const sp_ckpt_info *ci) { return ci ? ci->nm : 0; }
const sp_kv *sp_ckpt_meta_at(const sp_ckpt_info *ci, int i) { return ci && i >= 0 && i < ci->nm ? &ci->meta[i] : NULL; }
int sp_ckpt_n_tensors(const sp_ckpt_info *ci) { return ci ? ci->nt : 0; }
const sp_ckpt_tensor *sp_ckpt_tensor_at(const sp_ckpt_info *ci, int i) { return ci && i >= 0 && i < ci->nt ? &ci->t[i].pub : NULL; }

const char *sp_ckpt_meta(const sp_ckpt_info *ci, const char *key)
{
    for (int i = 0; ci && key && i < ci->nm; i++)
        if (strcmp(ci->meta[i].key, key) == 0) return ci->meta[i].value;
    return NULL;
}

const sp_ckpt_tensor *sp_ckpt_find(const sp_ckpt_info *ci, const char *name)
{
    if (!ci || !name) return NULL;
    int lo = 0, hi = ci->nt - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(ci->t[mid].pub.name, name);
        if (!c) return &ci->t[mid].pub;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* ------------------------------------------------------------------ writer */

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (b->n + n + 1 > cap) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p, b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static void put_json_str(sbuf *b, const char *s)
{
    puts_(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            puts_(b, esc);
        } else {
            put(b, (const char *)&c, 1);
        }
    }
    puts_(b, "\"");
}

static int out_order(const void *a, const void *b)
{
    const sp_st_out *x = a, *y = b;
    int xi = x->src == NULL, yi = y->src == NULL;
    if (xi != yi) return yi - xi; /* I64 (8-byte alignment) first */
    return strcmp(x->name, y->name);
}

static void le32_put(unsigned char *o, uint32_t v)
{
    for (int k = 0; k < 4; k++) o[k] = (unsigned char)(v >> (8 * k));
}

static int write_tensor(FILE *f, const sp_st_out *t)
{
    unsigned char buf[4096];
    if (!t->src) {
        uint64_t v = (uint64_t)*t->i64;
        for (int k = 0; k < 8; k++) buf[k] = (unsigned char)(v >> (8 * k));
        return fwrite(buf, 1, 8, f) == 8;
    }
    size_t n = 1, i = 0;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    while (i < n) {
        size_t k = 0;
        for (; k < sizeof buf / 4 && i < n; k++, i++) {
            float x = (float)t->src[i];
            uint32_t u;
            memcpy(&u, &x, 4);
            le32_put(buf + 4 * k, u);
        }
        if (fwrite(buf, 4, k, f) != k) return 0;
    }
    return 1;
}

sp_status sp_st_write(const char *path, sp_st_out *ts, int nt, const sp_kv *meta, int nm)
{
    qsort(ts, (size_t)nt, sizeof *ts, out_order);
    sbuf h = {0};
    char num[64];
    puts_(&h, "{");
    if (nm > 0) {
        puts_(&h, "\"__metadata__\":{");
        for (int i = 0; i < nm; i++) {
            if (i) puts_(&h, ",");
            put_json_str(&h, meta[i].key);
            puts_(&h, ":");
            put_json_str(&h, meta[i].value);
        }
        puts_(&h, "}");
    }
    uint64_t at = 0;
    for (int i = 0; i < nt; i++) {
        uint64_t bytes = ts[i].src ? 4 : 8;
        for (int d = 0; d < ts[i].ndim; d++) bytes *= (uint64_t)ts[i].shape[d];
        if (i || nm > 0) puts_(&h, ",");
        put_json_str(&h, ts[i].name);
        puts_(&h, ts[i].src ? ":{\"dtype\":\"F32\",\"shape\":[" : ":{\"dtype\":\"I64\",\"shape\":[");
        for (int d = 0; d < ts[i].ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)ts[i].shape[d]);
            puts_(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)at,
                 (unsigned long long)(at + bytes));
        puts_(&h, num);
        at += bytes;
    }
    puts_(&h, "}");
    while (!h.oom && h.n % 8) puts_(&h, " ");
    if (h.oom) {
        free(h.s);
        return sp_fail(SP_ERR_NOMEM, "sp_save %s: out of memory for the header", path);
    }
    sp_file *w = sp__file_begin(path, "sp_save"); /* temp + fsync + rename; refuses devices and FIFOs */
    if (!w) {
        free(h.s);
        return sp_last_status();
    }
    FILE *f = sp_file_stream(w);
    unsigned char b8[8];
    for (int k = 0; k < 8; k++) b8[k] = (unsigned char)((uint64_t)h.n >> (8 * k));
    int ok = fwrite(b8, 1, 8, f) == 8 && fwrite(h.s, 1, h.n, f) == h.n;
    for (int i = 0; ok && i < nt; i++) ok = write_tensor(f, &ts[i]);
    sp_status st = sp_file_commit(w); /* a failed write above left the stream's error flag: reported here */
    free(h.s);
    return st;
}
