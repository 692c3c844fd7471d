/* SPDX-License-Identifier: MIT */
/* data.c - what spool-charlm reads and writes besides the model: the bundled or given text
 * turned into a vocabulary and training / held-out ids, and checkpoints (sp_save / sp_load plus
 * the metadata that makes a run resumable: configuration, vocabulary, step, carried state). */
#include "charlm.h"
#include "common/opts.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ERRN 1024
static char err[ERRN];

/* ------------------------------------------------------------------ data */

/* examples/common/opts.c finds them: $SPOOL_DATA, share/spool/data, or the source tree */
static const char *data_dir(void)
{
    const char *d = ex_data_dir();
    return d ? d : "(bundled data not found)";
}

/* Splits a decoded text for held-out data: every 10th non-empty line (lines), or the last 10%
 * of the characters (stream, the usual 90/10 convention of nanoGPT). */
static void split_text(const uint32_t *txt, long n, int lines, uint32_t **tr, long *ntr, uint32_t **va, long *nva)
{
    *tr = malloc(sizeof(uint32_t) * (size_t)(n + 1));
    *va = malloc(sizeof(uint32_t) * (size_t)(n + 1));
    if (!*tr || !*va) { fprintf(stderr, "spool-charlm: out of memory\n"); exit(1); }
    if (!lines) {
        long cut = (long)(0.9 * (double)n);
        memcpy(*tr, txt, sizeof(uint32_t) * (size_t)cut);
        memcpy(*va, txt + cut, sizeof(uint32_t) * (size_t)(n - cut));
        *ntr = cut;
        *nva = n - cut;
        return;
    }
    long a = 0, b = 0, lineno = 0, i = 0;
    while (i < n) {
        long j = i;
        while (j < n && txt[j] != '\n') j++;
        int empty = j == i;
        if (!empty) lineno++;
        int to_valid = !empty && lineno % 10 == 0;
        for (long k = i; k < j; k++) (to_valid ? *va : *tr)[to_valid ? b++ : a++] = txt[k];
        if (to_valid) (*va)[b++] = '\n';
        else (*tr)[a++] = '\n';
        i = j + 1;
    }
    *ntr = a;
    *nva = b;
}

static int decode_file(const char *path, uint32_t **cp, long *n)
{
    size_t len;
    unsigned char *buf = cl_read_file(path, &len, err, ERRN);
    if (!buf) return cl_fail("%s", err);
    char e2[256];
    *n = cl_utf8_decode(buf, len, cp, e2, sizeof e2);
    free(buf);
    if (*n < 0) return cl_fail("%s: %s", path, e2);
    return 0;
}

/* Loads the training and held-out text of o. vocab == NULL: build the vocabulary from the
 * training file; else use it (from a checkpoint). need_train = 0 skips the training ids. */
int cl_load_corpus(const cl_opts *o, cl_corpus *c, const cl_vocab *vocab, int need_train)
{
    memset(c, 0, sizeof *c);
    const char *d = o->data;
    int bundled = 1, stream_default = 0;
    /* Paths are stored one per line in the checkpoint's configuration: a newline would split it. */
    if (strpbrk(d, "\n\r") || strpbrk(o->valid, "\n\r"))
        return cl_fail("--%s: a file name with a line break is not supported", strpbrk(d, "\n\r") ? "data" : "valid");
    if (!strcmp(d, "names") || !strcmp(d, "dinos")) {
        snprintf(c->train_path, sizeof c->train_path, "%s/%s/train.txt", data_dir(), d);
        snprintf(c->valid_path, sizeof c->valid_path, "%s/%s/test.txt", data_dir(), d);
    } else if (!strcmp(d, "shakespeare")) {
        snprintf(c->train_path, sizeof c->train_path, "%s/tinyshakespeare/input.txt", data_dir());
        stream_default = 1;
    } else {
        bundled = 0;
        snprintf(c->train_path, sizeof c->train_path, "%s", d);
    }
    if (o->valid[0]) snprintf(c->valid_path, sizeof c->valid_path, "%s", o->valid);

    uint32_t *txt = NULL, *vtxt = NULL;
    long n = 0, nv = 0;
    if (decode_file(c->train_path, &txt, &n)) {
        if (bundled) fprintf(stderr, "spool-charlm: (%s)\n", ex_data_hint());
        return 1;
    }
    if (!strcmp(o->mode, "lines")) c->lines = 1;
    else if (!strcmp(o->mode, "stream")) c->lines = 0;
    else if (!strcmp(o->mode, "auto")) {
        long longest = 0, cur = 0;
        for (long i = 0; i < n; i++) {
            cur = txt[i] == '\n' ? 0 : cur + 1;
            if (cur > longest) longest = cur;
        }
        c->lines = !stream_default && longest <= 100;
    } else {
        free(txt);
        return cl_fail("--mode must be lines, stream or auto, not '%s'", o->mode);
    }
    cl_vocab own = {0};
    if (!vocab) {
        if (cl_vocab_build(&own, txt, n, c->lines)) { free(txt); return cl_fail("out of memory"); }
        if (own.V < 2) { free(txt); cl_vocab_free(&own); return cl_fail("%s: fewer than 2 distinct characters", c->train_path); }
        vocab = &own;
    }
    uint32_t *tr = txt;
    long ntr = n;
    if (c->valid_path[0]) {
        if (decode_file(c->valid_path, &vtxt, &nv)) { free(txt); cl_vocab_free(&own); return 1; }
    } else {
        split_text(txt, n, c->lines, &tr, &ntr, &vtxt, &nv);
        snprintf(c->valid_path, sizeof c->valid_path, "%.*s (%s)", CL_STR, c->train_path,
                 c->lines ? "every 10th line" : "last 10%");
        free(txt);
        txt = NULL;
    }
    int rc = 0;
    if (need_train && cl_data_make(&c->train, vocab, tr, ntr, c->lines, c->train_path, err, ERRN)) rc = cl_fail("%s", err);
    if (!rc && cl_data_make(&c->valid, vocab, vtxt, nv, c->lines, c->valid_path, err, ERRN)) rc = cl_fail("%s", err);
    if (tr != txt) free(tr);
    free(txt);
    free(vtxt);
    if (rc) { cl_vocab_free(&own); cl_data_free(&c->train); return rc; }
    if (vocab == &own) c->vocab = own;
    else {
        c->vocab.V = vocab->V;
        c->vocab.cp = malloc(sizeof(uint32_t) * (size_t)vocab->V);
        memcpy(c->vocab.cp, vocab->cp, sizeof(uint32_t) * (size_t)vocab->V);
    }
    return 0;
}

void cl_corpus_free(cl_corpus *c)
{
    cl_vocab_free(&c->vocab);
    cl_data_free(&c->train);
    cl_data_free(&c->valid);
}

/* ----------------------------------------------------------- checkpoints */

cl_model_cfg cl_model_cfg_of(const cl_opts *o, int V)
{
    cl_model_cfg m = {0};
    snprintf(m.cell, sizeof m.cell, "%s", o->cell);
    m.V = V, m.E = o->embed, m.H = o->hidden, m.P = o->proj, m.L = o->layers;
    m.dropout = o->dropout;
    m.zoneout_h = o->zoneout_h;
    m.zoneout_c = o->zoneout_c;
    m.recurrent_dropout = o->recurrent_dropout;
    m.candidate_dropout = o->candidate_dropout;
    m.orthogonal = o->orthogonal, m.forget_bias_one = o->forget_bias;
    return m;
}

/* Carried state as hex of its raw numbers: exact, so a resumed run continues bit for bit. */
static char *carry_to_hex(const sp_carry *c)
{
    size_t bytes = 0;
    for (int l = 0; l < SP_RNN_MAX_LAYERS; l++)
        for (int k = 0; k < SP_CELL_MAX_STATE; k++) bytes += (size_t)c->cols[l][0][k] * (size_t)c->B * sizeof(sp_real);
    char *s = malloc(bytes * 2 + 32), *p = s;
    if (!s) return NULL;
    p += sprintf(p, "%d:%d:", c->B, (int)sizeof(sp_real));
    for (int l = 0; l < SP_RNN_MAX_LAYERS; l++)
        for (int k = 0; k < SP_CELL_MAX_STATE; k++) {
            const unsigned char *u = (const unsigned char *)c->data[l][0][k];
            size_t nb = (size_t)c->cols[l][0][k] * (size_t)c->B * sizeof(sp_real);
            for (size_t i = 0; i < nb; i++) p += sprintf(p, "%02x", u[i]);
        }
    return s;
}

/* A decimal field in 1..99999 followed by ':'; advances *s. -1 if malformed. */
static long carry_field(const char **s)
{
    long v = 0;
    const char *p = *s;
    while (*p >= '0' && *p <= '9' && v <= 99999) v = 10 * v + (*p++ - '0');
    if (p == *s || *p != ':' || v < 1 || v > 99999) return -1;
    *s = p + 1;
    return v;
}

static int hex_digit(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* Strict: "B:size:" then exactly two hex digits per byte of state, nothing after. The state is
 * written only once the whole string has been checked, so a bad one changes nothing. */
int cl_carry_from_hex(sp_carry *c, const char *s)
{
    long B = carry_field(&s), sz = B < 0 ? -1 : carry_field(&s);
    if (B != c->B || sz != (long)sizeof(sp_real)) return -1;
    size_t need = 0;
    for (int l = 0; l < SP_RNN_MAX_LAYERS; l++)
        for (int k = 0; k < SP_CELL_MAX_STATE; k++) need += (size_t)c->cols[l][0][k] * (size_t)c->B * sizeof(sp_real);
    if (strlen(s) != 2 * need) return -1;
    for (size_t i = 0; i < 2 * need; i++)
        if (hex_digit(s[i]) < 0) return -1;
    for (int l = 0; l < SP_RNN_MAX_LAYERS; l++)
        for (int k = 0; k < SP_CELL_MAX_STATE; k++) {
            unsigned char *u = (unsigned char *)c->data[l][0][k];
            size_t nb = (size_t)c->cols[l][0][k] * (size_t)c->B * sizeof(sp_real);
            for (size_t i = 0; i < nb; i++, s += 2) u[i] = (unsigned char)(hex_digit(s[0]) << 4 | hex_digit(s[1]));
        }
    return 0;
}

int cl_save_checkpoint(const char *path, const sp_params *ps, const sp_optim *opt, const cl_opts *o,
                           const cl_corpus *c, long step, const sp_carry *carry, sp_rng *rng, const cl_pos *pos)
{
    char *cfg = cl_opts_serialise(o), *voc = cl_vocab_to_string(&c->vocab), *hex = carry ? carry_to_hex(carry) : NULL;
    char stepbuf[32];
    snprintf(stepbuf, sizeof stepbuf, "%ld", step);
    sp_kv meta[] = {{"charlm.format", "1"}, {"charlm.config", cfg ? cfg : ""}, {"charlm.vocab", voc ? voc : ""},
                    {"charlm.mode", c->lines ? "lines" : "stream"}, {"charlm.step", stepbuf},
                    {"charlm.carry", hex ? hex : ""}, {"charlm.examples", ""}, {"charlm.next_chunk", ""},
                    {"charlm.chunks_per_epoch", ""}, {"charlm.ranks", ""}};
    char posbuf[4][32];
    if (pos) { /* the data position (dist.c): resuming with another number of ranks */
        long v[4] = {pos->examples, pos->next_chunk, pos->per_epoch, pos->ranks};
        for (int i = 0; i < 4; i++) {
            snprintf(posbuf[i], sizeof posbuf[i], "%ld", v[i]);
            meta[6 + i].value = posbuf[i];
        }
    }
    sp_ckpt_opts co = {.meta = meta, .n_meta = pos ? 10 : 6, .rng = rng};
    sp_status s = (cfg && voc) ? sp_save(path, ps, opt, &co) : SP_ERR_NOMEM;
    free(cfg);
    free(voc);
    free(hex);
    if (s != SP_OK) return cl_fail("cannot write checkpoint %s: %s", path, sp_last_error());
    return 0;
}

/* Reads the configuration and vocabulary of a checkpoint into o (see cl_opts_merge_stored). */
int cl_read_checkpoint_header(const char *path, cl_opts *o, int model_only, cl_vocab *v, int *lines,
                                  long *step, char **carry_hex)
{
    sp_ckpt_info *ci = sp_ckpt_open(path);
    if (!ci) return cl_fail("cannot read checkpoint: %s", sp_last_error());
    const char *fmt = sp_ckpt_meta(ci, "charlm.format"), *cfg = sp_ckpt_meta(ci, "charlm.config"),
               *voc = sp_ckpt_meta(ci, "charlm.vocab"), *mode = sp_ckpt_meta(ci, "charlm.mode"),
               *st = sp_ckpt_meta(ci, "charlm.step"), *hex = sp_ckpt_meta(ci, "charlm.carry");
    int rc = 0;
    if (!fmt || !cfg || !voc || !mode || !st) {
        rc = cl_fail("%s is not a spool-charlm checkpoint (no charlm.* metadata)", path);
    } else if (strcmp(fmt, "1")) {
        rc = cl_fail("%s: checkpoint format %s, this program reads format 1", path, fmt);
    } else if (cl_opts_merge_stored(o, cfg, model_only, err, ERRN)) {
        rc = cl_fail("%s: %s", path, err);
    } else if (cl_vocab_from_string(v, voc, err, ERRN)) {
        rc = cl_fail("%s: %s", path, err);
    } else {
        *lines = !strcmp(mode, "lines");
        char *end;
        errno = 0;
        long sv = strtol(st, &end, 10);
        if (errno || end == st || *end || sv < 0 || sv > CL_MAX_STEP) {
            rc = cl_fail("%s: stored charlm.step \"%.40s\" is not a step count in 0..%ld", path, st, (long)CL_MAX_STEP);
            cl_vocab_free(v); /* the caller frees nothing on error */
        } else {
            if (step) *step = sv;
            if (carry_hex) *carry_hex = hex && *hex ? strdup(hex) : NULL;
        }
    }
    sp_ckpt_close(ci);
    return rc;
}

