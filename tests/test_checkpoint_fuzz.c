/* SPDX-License-Identifier: MIT */
/* test_checkpoint_fuzz.c - hostile checkpoint files. The JSON parser's strictness on hand-made
 * headers, then thousands of seeded mutations of one valid checkpoint (model + Adam state + RNG)
 * fed to sp_load_mem.
 *
 * Mutations come in two honest classes:
 *   structural  built so that the result is NOT a valid checkpoint for this model (truncated,
 *               bad length prefix, wrong dtype, bad shape or offsets, duplicate keys, broken
 *               JSON, bad escapes, wrong types, unknown keys or names, ...): every one must be
 *               refused with a message and leave the model, optimizer and RNG as they were;
 *   random      one random byte changed in the header, or bits flipped in the data: these may
 *               still be valid files. If one loads, the header case must give exactly the
 *               original values (a header byte cannot validly move data), the data case may
 *               differ from the original in at most one value.
 * The counts are printed. Run under the ASan/UBSan build to check bounds and leaks too.
 *
 * Checked once against the reference reader (Python safetensors 0.8.0, not part of the suite):
 * of the structural mutations it refuses about 70%; the rest are valid containers that do not
 * fit this model (I32 for F32, transposed shapes, renamed tensors, bad RNG text, another
 * optimizer kind) or that spool refuses on purpose where the reference is lenient: duplicate
 * keys (the format's README forbids them; the reference keeps the last), unknown keys in a tensor
 * entry, a NUL in a name, more than 8 dimensions. Every header change the reference accepts but
 * spool refuses is a model mismatch, never a format disagreement.
 */
#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------ JSON strictness */

static unsigned char *st_file(const char *json, size_t dlen, size_t *len)
{
    size_t n = strlen(json);
    *len = 8 + n + dlen;
    unsigned char *b = calloc(1, *len);
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)((uint64_t)n >> (8 * k));
    memcpy(b + 8, json, n);
    return b;
}

static sp_ckpt_info *parse_json(const char *json, size_t dlen)
{
    size_t len;
    unsigned char *b = st_file(json, dlen, &len);
    sp_ckpt_info *ci = sp_ckpt_parse(b, len);
    free(b);
    return ci;
}

static void expect_bad(const char *json, size_t dlen, const char *needle)
{
    sp_ckpt_info *ci = parse_json(json, dlen);
    if (ci || !strstr(sp_last_error(), needle)) {
        print_error("# header %s: expected an error with \"%s\", got %s\n", json, needle,
                    ci ? "success" : sp_last_error());
        sp_ckpt_close(ci);
        fail();
    }
}

#define T1 "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"

static void test_json_parser_strictness(void **state)
{
    (void)state;
    sp_ckpt_info *ci = parse_json(" {} \t\n\r   ", 0);
    assert_non_null(ci);
    assert_int_equal(sp_ckpt_n_tensors(ci), 0);
    sp_ckpt_close(ci);
    /* rank-0 and empty tensors, escapes decoded to UTF-8, metadata read back */
    ci = parse_json("{\"__metadata__\":{\"k\\n\":\"v\\\"\\u00e9\\ud83d\\ude00\"},"
                    "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                    "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
                    "\"a\\u00e9\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}   ", 6);
    assert_non_null(ci);
    assert_int_equal(sp_ckpt_n_tensors(ci), 3);
    assert_string_equal(sp_ckpt_meta(ci, "k\n"), "v\"\xc3\xa9\xf0\x9f\x98\x80");
    assert_non_null(sp_ckpt_find(ci, "a\xc3\xa9"));
    assert_int_equal(sp_ckpt_find(ci, "s")->ndim, 0);
    sp_ckpt_close(ci);

    expect_bad("{\"a\":" T1 ",\"a\":" T1 "}", 4, "duplicate key");
    expect_bad("{\"a\":" T1 ",}", 4, "expected a string key");
    expect_bad("{\"a\":" T1 "} x", 4, "trailing characters");
    expect_bad("{\"a\":" T1, 4, "expected ','");
    expect_bad("[]", 0, "not a JSON object");
    expect_bad("", 0, "end of text");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4, "leading zero");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.],\"data_offsets\":[0,4]}}", 4, "bad fraction");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e],\"data_offsets\":[0,4]}}", 4, "bad exponent");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[+1],\"data_offsets\":[0,4]}}", 4, "unexpected character");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "non-negative integer");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "non-negative integer");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[NaN],\"data_offsets\":[0,4]}}", 4, "unexpected character");
    expect_bad("{'a':1}", 0, "expected a string key");
    expect_bad("{\"a\":1 // c\n}", 0, "expected ','");
    expect_bad("{\"a\":tru}", 0, "unexpected character");
    expect_bad("{\"a\x01\":1}", 0, "control character");
    expect_bad("{\"a\\x\":1}", 0, "bad escape");
    expect_bad("{\"a\\u12\":1}", 0, "bad \\u escape");
    expect_bad("{\"a\\ud800\":1}", 0, "high surrogate");
    expect_bad("{\"a\\udc00\":1}", 0, "lone low surrogate");
    expect_bad("{\"a\xc0\xaf\":1}", 0, "invalid UTF-8");       /* overlong '/' */
    expect_bad("{\"a\xed\xa0\x80\":1}", 0, "invalid UTF-8");   /* a surrogate in UTF-8 */
    expect_bad("{\"a\xf4\x90\x80\x80\":1}", 0, "invalid UTF-8"); /* above U+10FFFF */
    expect_bad("{\"a\xe2\x82\":1}", 0, "invalid UTF-8");       /* cut short */
    expect_bad("{\"a", 0, "unterminated");
    expect_bad("{\"a\\u0000b\":" T1 "}", 4, "NUL");
    char deep[200];
    memset(deep, '[', 60);
    memset(deep + 60, ']', 60);
    deep[120] = 0;
    char js[300];
    snprintf(js, sizeof js, "{\"x\":%s}", deep);
    expect_bad(js, 0, "nesting deeper");
    /* a flood of tiny values is cut off before it costs gigabytes of nodes */
    size_t flood_n = 2 * (1u << 21) + 64;
    char *flood = malloc(flood_n + 16);
    size_t k = (size_t)sprintf(flood, "{\"x\":[");
    while (k < flood_n) flood[k++] = '0', flood[k++] = ',';
    strcpy(flood + k, "0]}");
    expect_bad(flood, 0, "more than");
    free(flood);
    /* the safetensors layer on top */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "other than");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "lacks");
    expect_bad("{\"a\":{\"dtype\":\"Q8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "dtype");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "differs from shape");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "end before begin");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "gap, overlap");
    expect_bad("{\"a\":" T1 ",\"b\":" T1 "}", 8, "gap, overlap");
    expect_bad("{\"a\":" T1 "}", 5, "trailing bytes");
    expect_bad("{\"a\":" T1 "}", 3, "truncated");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "overflow");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "8 dimensions");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,18446744073709551620]}}", 4, "non-negative integer");
    expect_bad("{\"__metadata__\":{\"a\":1}}", 0, "not a string");
    expect_bad("{\"__metadata__\":[]}", 0, "not an object");
    /* length prefix beyond the file or the 100 MB limit */
    unsigned char b[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    assert_null(sp_ckpt_parse(b, 10));
    assert_non_null(strstr(sp_last_error(), "limit"));
    b[0] = 9, b[1] = b[2] = b[3] = b[4] = b[5] = b[6] = b[7] = 0;
    assert_null(sp_ckpt_parse(b, 10));
    assert_non_null(strstr(sp_last_error(), "past the end"));
}

/* ------------------------------------------------------- mutation fuzzing */

enum { N_STRUCT = 2400, N_HDR_FLIP = 600, N_DATA_FLIP = 600 };

typedef struct {
    unsigned char *b;
    size_t n, cap;
} buf;

static void bput(buf *x, const void *p, size_t n)
{
    if (x->n + n > x->cap) {
        x->cap = (x->n + n) * 2 + 64;
        x->b = realloc(x->b, x->cap);
    }
    memcpy(x->b + x->n, p, n);
    x->n += n;
}

static const char *hdr;   /* the valid file's header (NUL-terminated copy) */
static size_t hdr_n;
static const unsigned char *data;
static size_t data_n;

/* A file with header h (length prefix = its length unless n_override) and the original data. */
static buf assemble(const char *h, size_t hn)
{
    buf x = {0};
    unsigned char p8[8];
    for (int k = 0; k < 8; k++) p8[k] = (unsigned char)((uint64_t)hn >> (8 * k));
    bput(&x, p8, 8);
    bput(&x, h, hn);
    bput(&x, data, data_n);
    return x;
}

/* Replace [pos, pos+del) of the header with ins. */
static buf edit(size_t pos, size_t del, const char *ins)
{
    size_t il = strlen(ins), n = hdr_n - del + il;
    char *h = malloc(n + 1);
    memcpy(h, hdr, pos);
    memcpy(h + pos, ins, il);
    memcpy(h + pos + il, hdr + pos + del, hdr_n - pos - del);
    buf x = assemble(h, n);
    free(h);
    return x;
}

static int count_of(const char *pat)
{
    int c = 0;
    for (const char *p = hdr; (p = strstr(p, pat)); p++) c++;
    return c;
}

/* Offset of the k-th occurrence of pat (k < count_of(pat)). */
static size_t nth(const char *pat, int k)
{
    const char *p = hdr;
    for (;;) {
        p = strstr(p, pat);
        if (k-- == 0) return (size_t)(p - hdr);
        p++;
    }
}

/* The k-th tensor entry other than optim.step: [name start (after quote), name end), value range. */
typedef struct {
    size_t name0, name1, val0, val1;
} entry_pos;

static int n_entries;

static entry_pos entry_at(int k)
{
    size_t at = nth("{\"dtype\"", k);
    entry_pos e;
    e.val0 = at;
    e.val1 = (size_t)(strchr(hdr + at, '}') - hdr) + 1;
    e.name1 = at - 2; /* before ": */
    size_t q = e.name1 - 1;
    while (hdr[q] != '"') q--;
    e.name0 = q + 1;
    return e;
}

static buf structural(sp_rng *r, int *op_out)
{
    char s[512];
    int op = sp_rng_below(r, 21);
    *op_out = op;
    entry_pos e = entry_at(sp_rng_below(r, n_entries));
    int is_step = strncmp(hdr + e.name0, "optim.step", 10) == 0;
    switch (op) {
    case 0: { /* truncation */
        buf x = assemble(hdr, hdr_n);
        x.n = (size_t)sp_rng_below(r, (int)x.n);
        return x;
    }
    case 1: { /* trailing bytes */
        buf x = assemble(hdr, hdr_n);
        int k = 1 + sp_rng_below(r, 16);
        for (int i = 0; i < k; i++) {
            unsigned char c = (unsigned char)sp_rng_u32(r);
            bput(&x, &c, 1);
        }
        return x;
    }
    case 2: { /* length prefix */
        buf x = assemble(hdr, hdr_n);
        uint64_t len = x.n, v[] = {0, 1, 7, hdr_n - 1, hdr_n + 1, hdr_n + 8, len - 8, len - 7, len,
                                   100000001ull, 1ull << 63, UINT64_MAX, (uint64_t)-8, (uint64_t)sp_rng_u32(r) << 32 | sp_rng_u32(r)};
        uint64_t n = v[sp_rng_below(r, (int)(sizeof v / sizeof v[0]))];
        for (int k = 0; k < 8; k++) x.b[k] = (unsigned char)(n >> (8 * k));
        return x;
    }
    case 3: { /* wrong dtype for a float tensor */
        static const char *d[] = {"\"F16\"", "\"BF16\"", "\"I32\"", "\"U32\"", "\"F64\"", "\"I64\"", "\"U64\"",
                                  "\"X32\"", "\"f32\"", "\"\"", "\"F32 \"", "\"BOOL\"", "\"C64\"", "\"F8_E4M3\"", "32", "null"};
        return edit(nth("\"F32\"", sp_rng_below(r, count_of("\"F32\""))), 5, d[sp_rng_below(r, 16)]);
    }
    case 4: { /* wrong dtype for the step counter */
        static const char *d[] = {"\"U64\"", "\"F64\"", "\"I32\"", "\"F32\"", "\"C64\""};
        return edit(nth("\"I64\"", 0), 5, d[sp_rng_below(r, 5)]);
    }
    case 5: { /* shape */
        if (is_step) e = entry_at(0 == strncmp(hdr + entry_at(0).name0, "optim.step", 10) ? 1 : 0);
        size_t a = (size_t)(strstr(hdr + e.val0, "\"shape\":[") - hdr) + 9, b = (size_t)(strchr(hdr + a, ']') - hdr);
        char old[64];
        snprintf(old, sizeof old, "%.*s", (int)(b - a), hdr + a);
        long d0 = atol(old);
        const char *comma = strchr(old, ',');
        long d1 = comma ? atol(comma + 1) : -1;
        switch (sp_rng_below(r, 9)) {
        case 0: snprintf(s, sizeof s, "%ld%s", d0 + 1, comma ? comma : ""); break;
        case 1: snprintf(s, sizeof s, "-%s", old); break;
        case 2: snprintf(s, sizeof s, "%ld.0%s", d0, comma ? comma : ""); break;
        case 3: snprintf(s, sizeof s, "%s,1", old); break; /* same size, rank 3 or 2: not this model */
        case 4: snprintf(s, sizeof s, "4294967296,4294967296,4294967296"); break;
        case 5: snprintf(s, sizeof s, d1 > 0 && d1 != d0 ? "%ld,%ld" : "%ld,%ld,3", comma ? d1 : d0 * 2, d0); break;
        case 6: snprintf(s, sizeof s, "\"%ld\"", d0); break;
        case 7: snprintf(s, sizeof s, "1,1,1,1,1,1,1,1,%s", old); break;
        default: snprintf(s, sizeof s, "%s]]", old); break;
        }
        return edit(a, b - a, s);
    }
    case 6: { /* data offsets */
        size_t a = (size_t)(strstr(hdr + e.val0, "\"data_offsets\":[") - hdr) + 16,
               b = (size_t)(strchr(hdr + a, ']') - hdr);
        unsigned long long o0 = strtoull(hdr + a, NULL, 10), o1 = strtoull(strchr(hdr + a, ',') + 1, NULL, 10);
        switch (sp_rng_below(r, 8)) {
        case 0: snprintf(s, sizeof s, "%llu,%llu", o0, o1 + 4); break;
        case 1: snprintf(s, sizeof s, "%llu,%llu", o0 + 4, o1 + 4); break;
        case 2: snprintf(s, sizeof s, "%llu,%llu", o1, o0); break;
        case 3: snprintf(s, sizeof s, "-4,%llu", o1); break;
        case 4: snprintf(s, sizeof s, "%llu", o0); break;
        case 5: snprintf(s, sizeof s, "%llu,%llu,%llu", o0, o1, o1); break;
        case 6: snprintf(s, sizeof s, "18446744073709551612,18446744073709551616"); break;
        default: snprintf(s, sizeof s, o0 ? "0,%llu" : "%llu,%llu", o0 ? o1 - o0 : o1 + 8, o1 + 8); break;
        }
        return edit(a, b - a, s);
    }
    case 7: { /* duplicate a tensor entry, or a metadata key */
        if (sp_rng_below(r, 2)) {
            snprintf(s, sizeof s, "\"%.*s,", (int)(e.val1 - e.name0), hdr + e.name0);
            return edit(e.name0 - 1, 0, s);
        }
        return edit(nth("{\"__metadata__\":{", 0) + 17, 0, "\"cell\":\"x\",");
    }
    case 8: { /* a byte that is never valid where it lands */
        static const unsigned char bad[] = {0x00, 0x01, 0x1f, 0x80, 0xbf, 0xc0, 0xc1, 0xf5, 0xff};
        char one[2] = {(char)bad[sp_rng_below(r, 9)], 0};
        size_t pos = (size_t)sp_rng_below(r, (int)hdr_n);
        if (!one[0]) { /* NUL: edit() works on C strings, so patch it in afterwards */
            buf x = edit(pos, 1, "?");
            x.b[8 + pos] = 0;
            return x;
        }
        return edit(pos, 1, one);
    }
    case 9: { /* delete a structural character */
        size_t pos;
        do pos = (size_t)sp_rng_below(r, (int)hdr_n);
        while (!strchr("{}[]:,\"", hdr[pos]));
        return edit(pos, 1, "");
    }
    case 10: { /* trailing comma */
        const char *pat = sp_rng_below(r, 2) ? "}" : "]";
        return edit(nth(pat, sp_rng_below(r, count_of(pat))), 0, ",");
    }
    case 11: { /* bad escapes in a name */
        static const char *esc[] = {"\\ud800", "\\udfff", "\\u0000", "\\x", "\\u12g4", "\\", "\\ud800\\u0041"};
        return edit(e.name0, 1, esc[sp_rng_below(r, 7)]);
    }
    case 12: { /* a metadata value of another type */
        static const char *v[] = {"5", "{}", "[\"a\"]", "null", "true", "-1.5e3"};
        return edit(nth("\"lstm\"", 0), 6, v[sp_rng_below(r, 6)]);
    }
    case 13: { /* __metadata__ not an object */
        size_t a = nth("{\"__metadata__\":{", 0) + 16, b = (size_t)(strchr(hdr + a, '}') - hdr) + 1;
        return edit(a, b - a, sp_rng_below(r, 2) ? "\"x\"" : "[]");
    }
    case 14: /* unknown key in an entry */
        return edit(e.val0 + 1, 0, "\"foo\":1,");
    case 15: /* a name the model does not have */
        return edit(e.name0, e.name1 - e.name0, sp_rng_below(r, 2) ? "zzz.unknown" : "");
    case 16: { /* nesting bomb */
        int d = 33 + sp_rng_below(r, 500);
        char *bomb = malloc((size_t)2 * d + 16);
        size_t k = (size_t)sprintf(bomb, "\"d\":");
        memset(bomb + k, '[', (size_t)d);
        memset(bomb + k + d, ']', (size_t)d);
        strcpy(bomb + k + 2 * d, ",");
        buf x = edit(1, 0, bomb);
        free(bomb);
        return x;
    }
    case 17: /* top level not an object */
        return sp_rng_below(r, 2) ? edit(0, 0, "[") : edit(0, hdr_n, "\"x\"");
    case 18: /* a tensor entry removed: its bytes are no longer covered */
        return edit(e.name0 - 1, e.val1 - e.name0 + 2, "");
    case 19: { /* RNG state garbled */
        size_t a = nth("\"spool.rng\":\"", 0) + 13 + (size_t)sp_rng_below(r, 33);
        return sp_rng_below(r, 2) ? edit(a, 1, "g") : edit(a, 1, "");
    }
    default: /* optimizer of another kind */
        return edit(nth("\"spool.optim.kind\":\"adam\"", 0) + 19, 6, "\"sgd\"");
    }
}

/* The loaded state of the target, to compare before/after. */
typedef struct {
    sp_real *v, *m, *s;
    int64_t step;
    sp_rng rng;
} snap;

static sp_params *tgt;
static sp_optim *tgt_opt;
static sp_rng tgt_rng;

static snap take(void)
{
    snap x;
    size_t n = tgt->numel * sizeof(sp_real);
    x.v = malloc(n), x.m = malloc(n), x.s = malloc(n);
    memcpy(x.v, tgt->value, n);
    memcpy(x.m, sp_optim_slot(tgt_opt, 0), n);
    memcpy(x.s, sp_optim_slot(tgt_opt, 1), n);
    x.step = sp_optim_steps(tgt_opt);
    x.rng = tgt_rng;
    return x;
}

static void drop(snap *x) { free(x->v), free(x->m), free(x->s); }

/* Number of values (parameters, optimizer state, step) that differ between two snapshots; the
 * RNG words that differ are added to *rng_d. */
static size_t ndiff(const snap *a, const snap *b, size_t *rng_d)
{
    size_t d = 0;
    for (size_t i = 0; i < tgt->numel; i++)
        d += (size_t)(memcmp(&a->v[i], &b->v[i], sizeof(sp_real)) != 0) +
             (size_t)(memcmp(&a->m[i], &b->m[i], sizeof(sp_real)) != 0) +
             (size_t)(memcmp(&a->s[i], &b->s[i], sizeof(sp_real)) != 0);
    *rng_d += (size_t)(a->rng.s[0] != b->rng.s[0]) + (size_t)(a->rng.s[1] != b->rng.s[1]);
    return d + (a->step != b->step);
}

static sp_status load(const buf *x)
{
    sp_ckpt_opts o = {NULL, NULL, 0, &tgt_rng};
    sp_clear_error();
    return sp_load_mem(x->b, x->n, tgt, tgt_opt, &o);
}

static sp_params *fuzz_model(uint64_t seed)
{
    sp_params *ps = sp_params_new();
    sp_param(ps, "lstm.weight_ih_l0", 8, 3);
    sp_param_vec(ps, "lstm.bias_ih_l0", 8);
    sp_param(ps, "fc.weight", 2, 2);
    sp_rng r;
    sp_rng_seed(&r, seed);
    for (size_t i = 0; i < ps->numel; i++) ps->value[i] = (sp_real)(sp_rng_uniform(&r) - 0.5), ps->grad[i] = (sp_real)(sp_rng_uniform(&r) - 0.5);
    return ps;
}

static void test_hostile_files(void **state)
{
    (void)state;
    /* the valid file: model + Adam after two steps + RNG + model configuration */
    sp_params *src = fuzz_model(1);
    sp_optim_config c = sp_optim_defaults(SP_ADAM);
    sp_optim *so = sp_optim_new(src, &c);
    assert_int_equal(sp_optim_step(so, 0.01), SP_OK);
    assert_int_equal(sp_optim_step(so, 0.01), SP_OK);
    sp_rng srng;
    sp_rng_seed(&srng, 77);
    sp_kv meta[] = {{"cell", "lstm"}, {"hidden", "2"}};
    sp_ckpt_opts so_opts = {NULL, meta, 2, &srng};
    const char *path = "test_checkpoint_fuzz.safetensors";
    assert_int_equal(sp_save(path, src, so, &so_opts), SP_OK);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *file = malloc(len);
    assert_int_equal(fread(file, 1, len, f), len);
    fclose(f);
    hdr_n = 0;
    for (int k = 7; k >= 0; k--) hdr_n = (hdr_n << 8) | file[k];
    hdr = strndup((const char *)file + 8, hdr_n);
    data = file + 8 + hdr_n;
    data_n = len - 8 - hdr_n;
    n_entries = count_of("{\"dtype\"");
    assert_int_equal(n_entries, 10);

    tgt = fuzz_model(2);
    tgt_opt = sp_optim_new(tgt, &c);
    sp_rng_seed(&tgt_rng, 5);
    buf orig = assemble(hdr, hdr_n);
    assert_int_equal(load(&orig), SP_OK);
    snap ref = take();
    assert_int_equal(ref.step, 2);
    assert_memory_equal(ref.v, src->value, src->numel * sizeof(sp_real));
    free(orig.b);

    sp_rng r;
    sp_rng_seed(&r, 2024);
    int per_op[32] = {0}, hdr_loaded = 0, hdr_refused = 0, data_loaded = 0, data_refused = 0;
    for (int i = 0; i < N_STRUCT + N_HDR_FLIP + N_DATA_FLIP; i++) {
        buf x;
        int op = -1, kind = i < N_STRUCT ? 0 : i < N_STRUCT + N_HDR_FLIP ? 1 : 2;
        if (kind == 0) {
            x = structural(&r, &op);
            per_op[op]++;
        } else {
            x = assemble(hdr, hdr_n);
            size_t pos = kind == 1 ? 8 + (size_t)sp_rng_below(&r, (int)hdr_n) : 8 + hdr_n + (size_t)sp_rng_below(&r, (int)data_n);
            unsigned char old = x.b[pos];
            do x.b[pos] = kind == 1 ? (unsigned char)sp_rng_u32(&r) : (unsigned char)(old ^ (1u << sp_rng_below(&r, 8)));
            while (x.b[pos] == old);
        }
        snap before = take();
        sp_status st = load(&x);
        snap after = take();
        if (st != SP_OK) {
            size_t rd = 0;
            if (!*sp_last_error() || ndiff(&before, &after, &rd) != 0 || rd != 0) {
                print_error("# mutation %d (kind %d, op %d): refused (%s) but message empty or model changed\n", i,
                            kind, op, sp_last_error());
                fail();
            }
            if (kind == 1) hdr_refused++;
            if (kind == 2) data_refused++;
        } else {
            if (kind == 0) {
                print_error("# structural mutation %d (op %d) was accepted\n", i, op);
                fail();
            }
            /* A header change can validly alter only metadata text, which includes the RNG words;
             * a data change alters one value (or the step), never the RNG. */
            size_t rd = 0, d = ndiff(&ref, &after, &rd);
            if ((kind == 1 && d != 0) || (kind == 2 && (d > 1 || rd != 0))) {
                print_error("# mutation %d (kind %d) loaded with %zu values, %zu RNG words changed\n", i, kind, d, rd);
                fail();
            }
            if (kind == 1) hdr_loaded++;
            else data_loaded++;
        }
        drop(&before);
        drop(&after);
        free(x.b);
    }
    char ops[256];
    size_t k = 0;
    for (int o = 0; o < 21; o++) k += (size_t)snprintf(ops + k, sizeof ops - k, "%s%d", o ? "," : "", per_op[o]);
    print_message("# hostile files: %d structural mutations, all refused, model untouched (per operator: %s)\n",
                  N_STRUCT, ops);
    print_message("# random header byte changes: %d refused, %d still valid (metadata text only: identical values)\n",
                  hdr_refused, hdr_loaded);
    print_message("# random data bit flips: %d refused (non-finite), %d loaded (one value changed)\n", data_refused,
                  data_loaded);
    for (int o = 0; o < 21; o++) assert_true(per_op[o] > 0);
    assert_true(hdr_refused > N_HDR_FLIP / 2);
    drop(&ref);
    sp_optim_free(tgt_opt);
    sp_params_free(tgt);
    sp_optim_free(so);
    sp_params_free(src);
    free((char *)hdr);
    free(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_parser_strictness),
        cmocka_unit_test(test_hostile_files),
    };
    return cmocka_run_group_tests_name("checkpoint_fuzz", tests, NULL, NULL);
}
