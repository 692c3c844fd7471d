/* SPDX-License-Identifier: MIT */
/* test_onnx.c - sp_onnx_export's refusals and its file handling, without ONNX Runtime (the
 * numbers are tests/onnx/onnx_check.py's): every built-in kind exports; a custom step exports
 * when its ops have ONNX forms, and otherwise (an op without one, a constant or a row slice of
 * the batch) is an SP_ERR_ARG naming the layer, the cell, the op and the node, and
 * leaves an existing file at the path as it was; sizes that do not chain are SP_ERR_SHAPE; a
 * path that is a directory is SP_ERR_IO; pooling, sigmoid, extra token inputs and tensors as
 * outputs export, and their misuses (unknown pool, softmax with sigmoid, names the graph has,
 * duplicate outputs, tables that do not add up to the input) are refused; a good export leaves
 * one file and no temp file. In a
 * library built without ONNX (TEST_HAVE_ONNX 0), every export is SP_ERR_STATE saying what to
 * install. sp_onnx_load_weights: an exported file reads back into other weights as the same
 * parameters, for every kind with an ONNX operator; bad files (missing, a directory, truncated,
 * NaN in the last tensor, nested too deep) and models that do not match (size, depth, kind,
 * variant, embedding, a head the file lacks, a Scan) are refused naming node and shapes, and a
 * failed load changes no parameter (as the safetensors loader, test_checkpoint.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "spool.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/spool_test_onnx.%ld", (long)getpid());
    return mkdir(dir, 0700);
}

static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[600];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') snprintf(p, sizeof p, "%s/%s", dir, e->d_name), remove(p);
    if (d) closedir(d);
    return rmdir(dir);
}

/* Files in dir (temp files of the atomic writer included). */
static int files_in_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

typedef struct {
    sp_params *ps;
    sp_embed emb;
    sp_rnn rnn;
    sp_linear head;
    sp_onnx_model m;
} model_t;

/* embedding (V 7, E 4) -> kind (H 3, L layers, D directions) -> head (7) -> softmax */
static void make_seeded(model_t *x, sp_cell_kind kind, const sp_cell_opts *co, int L, int bidir, uint64_t seed)
{
    sp_rng rng;
    sp_rng_seed(&rng, seed);
    memset(x, 0, sizeof *x);
    x->ps = sp_params_new();
    assert_int_equal(sp_embed_init(&x->emb, x->ps, "embed", 7, 4, &rng), SP_OK);
    assert_int_equal(sp_rnn_init(&x->rnn, x->ps, "rnn", kind, 4, 3, L, bidir, co, &rng), SP_OK);
    assert_int_equal(sp_linear_init(&x->head, x->ps, "head", sp_rnn_out_size(&x->rnn), 7, 1, &rng), SP_OK);
    x->m.embed = &x->emb, x->m.rnn = &x->rnn, x->m.head = &x->head, x->m.softmax = 1;
}

static void make(model_t *x, sp_cell_kind kind, const sp_cell_opts *co, int L, int bidir)
{
    make_seeded(x, kind, co, L, bidir, 5);
}

/* The export of m (or of the recording g) fails with status s, the message has every one of the
 * words (ap, NULL-terminated), and the file at the path (if any) is untouched. */
static void refused_ap(const sp_onnx_model *m, const sp_onnx_tape *g, sp_status s, va_list ap)
{
    char path[300], buf[16] = {0};
    snprintf(path, sizeof path, "%s/old.onnx", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("old", f);
    fclose(f);
    sp_clear_error();
    assert_int_equal(m ? sp_onnx_export(m, path) : sp_onnx_export_tape(g, path), s);
    for (const char *w; (w = va_arg(ap, const char *));)
        if (!strstr(sp_last_error(), w)) fail_msg("'%s' not in the message: %s", w, sp_last_error());
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "old");
    assert_int_equal(files_in_dir(), 1);
    remove(path);
}

static void refused(const sp_onnx_model *m, sp_status s, ...)
{
    va_list ap;
    va_start(ap, s);
    refused_ap(m, NULL, s, ap);
    va_end(ap);
}

static void refused_tape(const sp_onnx_tape *g, sp_status s, ...)
{
    va_list ap;
    va_start(ap, s);
    refused_ap(NULL, g, s, ap);
    va_end(ap);
}

static void without_onnx(void **state)
{
    (void)state;
    assert_int_equal(sp_onnx_available(), TEST_HAVE_ONNX);
    if (TEST_HAVE_ONNX) return; /* the other tests are its tests */
    model_t x;
    make(&x, SP_CELL_LSTM, NULL, 1, 0);
    refused(&x.m, SP_ERR_STATE, "built without ONNX", "libonnx-dev", NULL);
    assert_int_equal(sp_onnx_load_weights("model.onnx", &x.m), SP_ERR_STATE);
    assert_non_null(strstr(sp_last_error(), "built without ONNX"));
    assert_int_equal(sp_onnx_load_weights_mem((const unsigned char *)"", 0, &x.m, NULL), SP_ERR_STATE);
    sp_onnx_tape g = {0};
    refused_tape(&g, SP_ERR_STATE, "sp_onnx_export_tape", "built without ONNX", NULL);
    sp_params_free(x.ps);
}

static void writes_one_file(void **state)
{
    (void)state;
    if (!TEST_HAVE_ONNX) return; /* without_onnx checks the stubs */
    model_t x;
    make(&x, SP_CELL_GRU_RESET_AFTER_MATMUL, NULL, 2, 1);
    char path[300];
    snprintf(path, sizeof path, "%s/gru.onnx", dir);
    assert_int_equal(sp_onnx_export(&x.m, path), SP_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 100);
    assert_int_equal(files_in_dir(), 1);
    /* a directory in the way: refused, nothing left behind */
    snprintf(path, sizeof path, "%s/sub.onnx", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(sp_onnx_export(&x.m, path), SP_ERR_IO);
    assert_non_null(strstr(sp_last_error(), "not a regular file"));
    assert_int_equal(files_in_dir(), 2);
    rmdir(path);
    snprintf(path, sizeof path, "%s/gru.onnx", dir);
    remove(path);
    assert_int_equal(sp_onnx_export(NULL, path), SP_ERR_ARG);
    assert_int_equal(sp_onnx_export(&x.m, NULL), SP_ERR_ARG);
    sp_params_free(x.ps);
}

/* The path at dir/name exported from m (or the recording g): SP_OK and one file. */
static void exports_either(const sp_onnx_model *m, const sp_onnx_tape *g, const char *name)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    if ((m ? sp_onnx_export(m, path) : sp_onnx_export_tape(g, path)) != SP_OK) fail_msg("%s: %s", name, sp_last_error());
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 100);
    assert_int_equal(files_in_dir(), 1);
    remove(path);
}

static void exports(const sp_onnx_model *m, const char *name) { exports_either(m, NULL, name); }

/* Every kind without an ONNX operator is a Scan over its recorded step (ONNX Runtime checks the
 * numbers in onnx_ort). */
static void exports_every_kind(void **state)
{
    (void)state;
    if (!TEST_HAVE_ONNX) return; /* without_onnx checks the stubs */
    static const sp_cell_kind scan[] = {SP_CELL_GRU_UPDATE_ONLY, SP_CELL_LN_LSTM, SP_CELL_LN_GRU, SP_CELL_MGU,
                                        SP_CELL_MINGRU, SP_CELL_MINLSTM};
    for (size_t i = 0; i < sizeof scan / sizeof scan[0]; i++) {
        model_t x;
        make(&x, scan[i], NULL, 2, 1);
        exports(&x.m, "scan");
        sp_params_free(x.ps);
    }
    model_t x;
    sp_cell_opts co = {0};
    co.proj_size = 2;
    make(&x, SP_CELL_LSTM, &co, 1, 0);
    exports(&x.m, "lstmp");
    sp_params_free(x.ps);
}

static sp_status tanh_step(sp_tape *t, const sp_cell *c, sp_tensor *x, sp_tensor *const *state, sp_tensor **out)
{
    (void)c, (void)x;
    out[0] = sp_tanh(t, state[0]);
    return sp_tape_status(t);
}

static sp_status mean_step(sp_tape *t, const sp_cell *c, sp_tensor *x, sp_tensor *const *state, sp_tensor **out)
{
    (void)c, (void)x;
    out[0] = sp_add(t, state[0], sp_name(t, sp_mean(t, state[0]), "avg"));
    return sp_tape_status(t);
}

static sp_status batch_const_step(sp_tape *t, const sp_cell *c, sp_tensor *x, sp_tensor *const *state, sp_tensor **out)
{
    (void)x;
    out[0] = sp_add(t, state[0], sp_name(t, sp_const(t, state[0]->rows, c->hidden_size), "bias_rows"));
    return sp_tape_status(t);
}

static sp_status row_step(sp_tape *t, const sp_cell *c, sp_tensor *x, sp_tensor *const *state, sp_tensor **out)
{
    (void)c, (void)x;
    out[0] = sp_add(t, state[0], sp_name(t, sp_slice_rows(t, state[0], 0, 1), "first_row"));
    return sp_tape_status(t);
}

static sp_status failing_step(sp_tape *t, const sp_cell *c, sp_tensor *x, sp_tensor *const *state, sp_tensor **out)
{
    (void)c;
    out[0] = sp_add(t, state[0], x); /* [B, 3] + [B, 9]: a shape error */
    return sp_tape_status(t);
}

/* A user's step: exported when every op it records has an ONNX form, else refused naming the
 * layer, the cell, the op and the node. */
static void custom_steps(void **state)
{
    (void)state;
    if (!TEST_HAVE_ONNX) return; /* without_onnx checks the stubs */
    model_t x;
    make(&x, SP_CELL_GRU_RESET_AFTER_MATMUL, NULL, 2, 0);
    x.rnn.cell[1][0].step = tanh_step; /* a built-in kind whose step was replaced: the user's math */
    exports(&x.m, "tanh");
    x.rnn.cell[1][0].step = mean_step;
    refused(&x.m, SP_ERR_ARG, "layer 1 (cell \"rnn1\"", "op mean", "\"avg\"", "no ONNX mapping", NULL);
    x.rnn.cell[1][0].step = batch_const_step;
    refused(&x.m, SP_ERR_ARG, "layer 1", "bias_rows", "batch's rows", NULL);
    x.rnn.cell[1][0].step = row_step;
    refused(&x.m, SP_ERR_ARG, "layer 1", "first_row", "rows of the batch", NULL);
    x.rnn.cell[1][0].step = failing_step;
    refused(&x.m, SP_ERR_SHAPE, "layer 1", "recording its step failed", "add", NULL);
    x.rnn.cell[1][0].step = NULL;
    refused(&x.m, SP_ERR_ARG, "layer 1", "no step function", NULL);
    sp_params_free(x.ps);
    /* directions of other kinds: one Scan each; of other sizes: refused (h0_l<k> holds both) */
    make(&x, SP_CELL_RNN_TANH, NULL, 1, 1);
    sp_rng rng;
    sp_rng_seed(&rng, 1);
    assert_int_equal(sp_cell_init(&x.rnn.cell[0][1], SP_CELL_RNN_RELU, x.ps, "other", 0, 1, 4, 3, NULL, &rng), SP_OK);
    exports(&x.m, "mixed");
    assert_int_equal(sp_cell_init(&x.rnn.cell[0][1], SP_CELL_RNN_RELU, x.ps, "wider", 0, 1, 4, 5, NULL, &rng), SP_OK);
    refused(&x.m, SP_ERR_SHAPE, "layer 0", "different sizes", NULL);
    sp_params_free(x.ps);
}

static void refuses_options(void **state)
{
    (void)state;
    if (!TEST_HAVE_ONNX) return; /* without_onnx checks the stubs */
    model_t x;
    make(&x, SP_CELL_LSTM, NULL, 1, 0);
    sp_cell_noise nz = {0};
    nz.zoneout_c = 1.5;
    x.m.noise = &nz;
    refused(&x.m, SP_ERR_ARG, "zoneout rates (h 0, c 1.5) must be in [0, 1)", NULL);
    nz.zoneout_c = 0.1; /* its expectation at evaluation: a Scan */
    exports(&x.m, "zoneout");
    nz = (sp_cell_noise){0};
    x.m.noise = NULL;
    /* pooling, a sigmoid, extra token inputs, tensors as outputs (spool-sentiment, spool-ner) */
    x.m.pool = (sp_onnx_pool)7;
    refused(&x.m, SP_ERR_ARG, "unknown pool 7", NULL);
    x.m.pool = SP_ONNX_POOL_MAX;
    x.m.sigmoid = 1;
    refused(&x.m, SP_ERR_ARG, "softmax and sigmoid exclude each other", NULL);
    x.m.softmax = 0;
    exports(&x.m, "pooled");
    x.m.head = NULL;
    refused(&x.m, SP_ERR_ARG, "sigmoid needs a head", NULL);
    x.m.head = &x.head, x.m.sigmoid = 0, x.m.pool = SP_ONNX_POOL_NONE;
    sp_rng rng;
    sp_rng_seed(&rng, 4);
    sp_embed casing;
    assert_int_equal(sp_embed_init(&casing, x.ps, "casing", 3, 2, &rng), SP_OK);
    const sp_embed *extra[1] = {&casing};
    const char *bad_names[1] = {"lengths"}, *names[1] = {"case"};
    x.m.n_extra = 1, x.m.extra = extra, x.m.extra_names = bad_names;
    refused(&x.m, SP_ERR_ARG, "extra input 0 (\"lengths\")", NULL);
    x.m.extra_names = names;
    refused(&x.m, SP_ERR_SHAPE, "the embeddings (6 columns) does not feed the stack's input size 4", NULL);
    x.m.n_extra = 0;
    const sp_tensor *consts[2] = {x.head.weight, x.head.bias};
    const char *cn[2] = {"scores", "scores"};
    x.m.n_consts = 2, x.m.consts = consts, x.m.const_names = cn;
    refused(&x.m, SP_ERR_ARG, "two outputs named \"scores\"", NULL);
    cn[1] = "hn_l0";
    refused(&x.m, SP_ERR_ARG, "output 1 (\"hn_l0\")", NULL);
    cn[1] = "scores_2";
    refused(&x.m, SP_ERR_ARG, "output 1 (\"scores_2\")", NULL);
    cn[1] = "bias";
    exports(&x.m, "consts");
    x.m.n_consts = 0, x.m.softmax = 1, x.m.noise = &nz;
    nz.recurrent_dropout = 0.3; /* the identity at evaluation */
    exports(&x.m, "dropout");
    x.m.noise = NULL;
    x.m.head = NULL;
    refused(&x.m, SP_ERR_ARG, "softmax needs a head", NULL);
    x.m.head = &x.head, x.m.softmax = 0;
    x.emb.dim = 5;
    refused(&x.m, SP_ERR_SHAPE, "embedding", NULL);
    x.emb.dim = 4;
    x.m.embed = NULL, x.m.one_hot = 9;
    refused(&x.m, SP_ERR_SHAPE, "one-hot input of size 9", NULL);
    x.m.one_hot = 0;
    x.head.in = 2;
    refused(&x.m, SP_ERR_SHAPE, "head", NULL);
    x.head.in = 3;
    x.m.rnn = NULL;
    refused(&x.m, SP_ERR_ARG, "no recurrent stack", NULL);
    x.m.rnn = &x.rnn;
    /* a default initial state of the wrong shape */
    sp_rnn_state init = {0};
    init.s[0][0][1] = sp_param(x.ps, "c0_bad", 2, 3);
    x.m.init = &init;
    refused(&x.m, SP_ERR_SHAPE, "initial state 1 of layer 0", "c0_bad", NULL);
    sp_params_free(x.ps);
}

/* ------------------------------------------------------------ sp_onnx_load_weights */

/* Loading path (or buf, len when buf is not NULL) into x fails with status s, the message has
 * every one of the NULL-terminated words, and no parameter of x changed. */
static void load_refused(const char *path, const unsigned char *buf, size_t len, model_t *x, sp_status s, ...)
{
    sp_real *before = malloc(x->ps->numel * sizeof *before);
    memcpy(before, x->ps->value, x->ps->numel * sizeof *before);
    sp_clear_error();
    assert_int_equal(buf ? sp_onnx_load_weights_mem(buf, len, &x->m, "test") : sp_onnx_load_weights(path, &x->m), s);
    va_list ap;
    va_start(ap, s);
    for (const char *w; (w = va_arg(ap, const char *));)
        if (!strstr(sp_last_error(), w)) fail_msg("'%s' not in the message: %s", w, sp_last_error());
    va_end(ap);
    assert_memory_equal(before, x->ps->value, x->ps->numel * sizeof *before);
    free(before);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*len + 1);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

/* What sp_onnx_export wrote reads back into a model of other weights as the same parameters,
 * exactly: every gate block and bias where it came from, for every kind with an ONNX operator. */
static void loads_back(void **state)
{
    (void)state;
    if (!TEST_HAVE_ONNX) return;
    static const struct {
        sp_cell_kind kind;
        int flags, L, bidir;
    } K[] = {{SP_CELL_LSTM, 0, 2, 1},
             {SP_CELL_LSTM, SP_LSTM_PEEPHOLE, 1, 1},
             {SP_CELL_LSTM, SP_LSTM_COUPLED | SP_LSTM_PEEPHOLE, 2, 0},
             {SP_CELL_GRU_RESET_AFTER_MATMUL, 0, 2, 1},
             {SP_CELL_GRU_RESET_BEFORE_MATMUL, 0, 1, 0},
             {SP_CELL_RNN_TANH, 0, 2, 0},
             {SP_CELL_RNN_RELU, 0, 1, 1}};
    char path[300];
    snprintf(path, sizeof path, "%s/back.onnx", dir);
    for (size_t k = 0; k < sizeof K / sizeof K[0]; k++) {
        sp_cell_opts co = {.lstm_flags = K[k].flags};
        model_t a, b;
        make_seeded(&a, K[k].kind, &co, K[k].L, K[k].bidir, 5);
        make_seeded(&b, K[k].kind, &co, K[k].L, K[k].bidir, 9);
        assert_int_equal(a.ps->numel, b.ps->numel);
        assert_true(memcmp(a.ps->value, b.ps->value, a.ps->numel * sizeof(sp_real)) != 0);
        assert_int_equal(sp_onnx_export(&a.m, path), SP_OK);
        if (sp_onnx_load_weights(path, &b.m) != SP_OK) fail_msg("kind %zu: %s", k, sp_last_error());
        assert_memory_equal(a.ps->value, b.ps->value, a.ps->numel * sizeof(sp_real));
        sp_params_free(a.ps), sp_params_free(b.ps);
        remove(path);
    }
}

/* Prefixes buf[0..*len) with a length-delimited field header (field f): a message inside one. */
static void wrap(unsigned char *buf, size_t *len, int f)
{
    unsigned char h[12];
    size_t n = 0, v = *len;
    h[n++] = (unsigned char)(f << 3 | 2);
    do h[n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)), v >>= 7;
    while (v);
    memmove(buf + n, buf, *len);
    memcpy(buf, h, n);
    *len += n;
}

/* Each bad file or mismatched model is refused with a message naming the problem (the node and
 * both shapes for sizes), and the model keeps every value: a failed load changes nothing, even
 * when it fails at the last tensor. */
static void load_refuses_model_untouched(void **state)
{
    (void)state;
    if (!TEST_HAVE_ONNX) return;
    model_t a, x;
    make_seeded(&a, SP_CELL_LSTM, NULL, 2, 1, 5);
    make_seeded(&x, SP_CELL_LSTM, NULL, 2, 1, 9);
    char path[300], bad[300];
    snprintf(path, sizeof path, "%s/a.onnx", dir);
    snprintf(bad, sizeof bad, "%s/bad.onnx", dir);
    *sp_at(a.head.bias, 0, 2) = 1234.5f; /* a value to find in the file */
    assert_int_equal(sp_onnx_export(&a.m, path), SP_OK);
    size_t len;
    unsigned char *f = slurp(path, &len);

    load_refused(bad, NULL, 0, &x, SP_ERR_IO, "cannot open", NULL);
    load_refused(dir, NULL, 0, &x, SP_ERR_IO, "not a regular file", NULL);
    load_refused(NULL, NULL, 0, &x, SP_ERR_ARG, "path is NULL", NULL);
    load_refused(NULL, f, len / 2, &x, SP_ERR_FORMAT, "not an ONNX model", NULL);
    load_refused(NULL, f, len - 1, &x, SP_ERR_FORMAT, "not an ONNX model", NULL);
    load_refused(NULL, (const unsigned char *)"", 0, &x, SP_ERR_FORMAT, "no graph", NULL);
    /* NaN in the head's bias, the last tensor read: everything before it was converted already */
    unsigned char *g = malloc(len), pat[4], nan[4] = {0, 0, 0xc0, 0x7f};
    float v = 1234.5f;
    memcpy(pat, &v, 4);
    memcpy(g, f, len);
    unsigned char *at = memmem(g, len, pat, 4);
    assert_non_null(at);
    memcpy(at, nan, 4);
    load_refused(NULL, g, len, &x, SP_ERR_NONFINITE, "head.bias", "nan", NULL);
    /* messages deeper than protobuf-c should recurse: graph > node > attribute > graph ... */
    unsigned char *deep = calloc(1, 4096);
    size_t dl = 0;
    for (int i = 0; i < 100; i++) wrap(deep, &dl, 6), wrap(deep, &dl, 5), wrap(deep, &dl, 1);
    wrap(deep, &dl, 7);
    load_refused(NULL, deep, dl, &x, SP_ERR_FORMAT, "nested deeper than", NULL);
    /* models that do not match the file: the node, the tensor, both shapes */
    model_t o;
    make_seeded(&o, SP_CELL_LSTM, NULL, 2, 1, 9);
    o.m.head = NULL;
    o.emb.num = 8; /* as if the table were [8 x 4] */
    load_refused(path, NULL, 0, &o, SP_ERR_ARG, "no [8 x 4] table", NULL);
    sp_params_free(o.ps);
    make_seeded(&o, SP_CELL_LSTM, NULL, 1, 1, 9);
    load_refused(path, NULL, 0, &o, SP_ERR_SHAPE, "node \"", "recurrent layer 1 of the file, the model has 1", NULL);
    sp_params_free(o.ps);
    make_seeded(&o, SP_CELL_GRU_RESET_BEFORE_MATMUL, NULL, 2, 1, 9);
    load_refused(path, NULL, 0, &o, SP_ERR_ARG, "is LSTM, layer 0 of the model is GRU", NULL);
    sp_params_free(o.ps);
    sp_cell_opts peep = {.lstm_flags = SP_LSTM_COUPLED};
    make_seeded(&o, SP_CELL_LSTM, &peep, 2, 1, 9);
    load_refused(path, NULL, 0, &o, SP_ERR_ARG, "input_forget = 0", NULL);
    sp_params_free(o.ps);
    /* an embedding of another size (the stack matches): the Gather's table, both shapes */
    sp_rng rng;
    sp_rng_seed(&rng, 3);
    memset(&o, 0, sizeof o);
    o.ps = sp_params_new();
    assert_int_equal(sp_embed_init(&o.emb, o.ps, "embed", 6, 4, &rng), SP_OK);
    assert_int_equal(sp_rnn_init(&o.rnn, o.ps, "rnn", SP_CELL_LSTM, 4, 3, 2, 1, NULL, &rng), SP_OK);
    o.m.embed = &o.emb, o.m.rnn = &o.rnn;
    load_refused(path, NULL, 0, &o, SP_ERR_SHAPE, "embedding table", "is [7, 4], the model needs [6, 4]", NULL);
    /* a head the file does not have: a file without one */
    assert_int_equal(sp_linear_init(&o.head, o.ps, "head", 6, 7, 1, &rng), SP_OK);
    model_t nohead;
    make_seeded(&nohead, SP_CELL_LSTM, NULL, 2, 1, 5);
    nohead.m.head = NULL, nohead.m.softmax = 0;
    assert_int_equal(sp_onnx_export(&nohead.m, bad), SP_OK);
    sp_params_free(nohead.ps);
    o.m.embed = NULL, o.m.head = &o.head;
    load_refused(bad, NULL, 0, &o, SP_ERR_ARG, "the file has none after its last recurrent node", NULL);
    sp_params_free(o.ps);
    /* a cell ONNX has no operator for is a Scan in the file: refused, naming the node */
    model_t mgu;
    make_seeded(&mgu, SP_CELL_MGU, NULL, 1, 0, 5);
    assert_int_equal(sp_onnx_export(&mgu.m, bad), SP_OK);
    load_refused(bad, NULL, 0, &mgu, SP_ERR_ARG, "is a Scan", NULL);
    sp_params_free(mgu.ps);
    /* and the good file still loads */
    assert_int_equal(sp_onnx_load_weights(path, &x.m), SP_OK);
    assert_memory_equal(a.ps->value, x.ps->value, a.ps->numel * sizeof(sp_real));
    free(f), free(g), free(deep);
    sp_params_free(a.ps), sp_params_free(x.ps);
    remove(path), remove(bad);
}

/* ------------------------------------------------ recorded graphs (sp_onnx_export_tape) */

/* A decoder step recorded with B 5 rows and S 3 steps: the previous ids' embedding and the
 * additive attention of h over enc (lengths) into a GRU, then a head. */
typedef struct {
    sp_params *ps;
    sp_embed emb;
    sp_attention att;
    sp_cell cell;
    sp_linear head;
    sp_tape *t;
    int prev[5], len[5];
    sp_tensor *logits, *hnext, *weights;
    sp_onnx_value in[3], out[3];
    sp_onnx_tape g;
} step_t;

static void make_step(step_t *s)
{
    sp_rng rng;
    sp_rng_seed(&rng, 9);
    memset(s, 0, sizeof *s);
    s->ps = sp_params_new();
    assert_int_equal(sp_embed_init(&s->emb, s->ps, "emb", 7, 4, &rng), SP_OK);
    assert_int_equal(sp_attention_init(&s->att, s->ps, "attn", SP_ATTN_ADDITIVE, 3, 4, 5, &rng), SP_OK);
    assert_int_equal(sp_cell_init(&s->cell, SP_CELL_GRU_RESET_AFTER_MATMUL, s->ps, "dec", 0, 0, 8, 3, NULL, &rng), SP_OK);
    assert_int_equal(sp_linear_init(&s->head, s->ps, "head", 3, 7, 1, &rng), SP_OK);
    s->t = sp_tape_new();
    for (int b = 0; b < 5; b++) s->len[b] = 1 + b % 3, s->prev[b] = b;
    sp_tensor *enc = sp_const(s->t, 15, 4), *h = sp_const(s->t, 5, 3), *w = NULL, *ns[1] = {NULL};
    sp_tensor *ctx = sp_attention_step(s->t, &s->att, h, sp_attention_keys(s->t, &s->att, enc), enc, 3, s->len, &w);
    sp_tensor *x[2] = {sp_embed_forward(s->t, &s->emb, s->prev, 5), ctx};
    assert_int_equal(sp_cell_forward(s->t, &s->cell, sp_concat(s->t, x, 2), &h, ns), SP_OK);
    sp_tensor *logits = s->logits = sp_linear_forward(s->t, &s->head, ns[0]);
    s->hnext = ns[0], s->weights = w;
    sp_sum(s->t, logits); /* recorded, but no output needs it: not translated */
    assert_int_equal(sp_tape_status(s->t), SP_OK);
    s->in[0] = (sp_onnx_value){"prev", s->emb.weight, SP_ONNX_IDS};
    s->in[1] = (sp_onnx_value){"h", h, SP_ONNX_ROWS};
    s->in[2] = (sp_onnx_value){"enc", enc, SP_ONNX_SEQ};
    s->out[0] = (sp_onnx_value){"logits", logits, SP_ONNX_ROWS};
    s->out[1] = (sp_onnx_value){"h_next", ns[0], SP_ONNX_ROWS};
    s->out[2] = (sp_onnx_value){"weights", w, SP_ONNX_ROWS};
    s->g = (sp_onnx_tape){.tape = s->t, .batch = 5, .steps = 3, .n_in = 3, .in = s->in, .n_out = 3, .out = s->out,
                          .lengths = "lengths"};
}

static void exports_tape(const sp_onnx_tape *g, const char *name) { exports_either(NULL, g, name); }

/* A recorded graph exports with its bindings, and every binding or op that would fix the batch or
 * the time axis, or has no ONNX form, is refused naming it; an old file stays as it was. */
static void tape_graphs(void **state)
{
    (void)state;
    if (!TEST_HAVE_ONNX) return; /* without_onnx checks the stubs */
    step_t s;
    make_step(&s);
    exports_tape(&s.g, "step");
    s.g.lengths = NULL;
    refused_tape(&s.g, SP_ERR_ARG, "sp_onnx_export_tape", "op attn_mask", "(node \"attn_mask\")", "lengths", NULL);
    s.g.lengths = "lengths";
    s.in[0].node = s.head.weight; /* the ids bound to another table */
    refused_tape(&s.g, SP_ERR_ARG, "op embedding", "table \"emb.weight\"", "SP_ONNX_IDS", NULL);
    s.in[0].node = s.emb.weight;
    s.in[2].kind = SP_ONNX_ROWS;
    refused_tape(&s.g, SP_ERR_SHAPE, "input \"enc\"", "[15 x 4]", "must have 5 rows", NULL);
    s.in[2].kind = SP_ONNX_SEQ;
    s.g.n_in = 2; /* enc unbound: a constant of the sequence's rows */
    refused_tape(&s.g, SP_ERR_ARG, "constant", "[15 x 4]", "batch's rows", NULL);
    s.g.n_in = 3;
    s.g.batch = 1;
    refused_tape(&s.g, SP_ERR_ARG, "batch 1", ">= 2", NULL);
    s.g.batch = 5, s.g.steps = 0;
    refused_tape(&s.g, SP_ERR_ARG, "input \"enc\"", "SP_ONNX_SEQ (with steps >= 2)", NULL);
    s.g.steps = 3;
    s.out[1].name = "h";
    refused_tape(&s.g, SP_ERR_ARG, "two values of the graph are named \"h\"", NULL);
    s.out[1].name = "h_2";
    refused_tape(&s.g, SP_ERR_ARG, "output \"h_2\" needs a name of its own", NULL);
    s.out[1].name = "h_next";
    s.out[2].node = s.head.weight;
    refused_tape(&s.g, SP_ERR_ARG, "output \"weights\"", "not one recorded on the tape", NULL);
    s.out[2].kind = SP_ONNX_IDS;
    refused_tape(&s.g, SP_ERR_ARG, "output \"weights\": kind 2", NULL);
    sp_tape *other = sp_tape_new();
    s.out[2] = (sp_onnx_value){"weights", sp_const(other, 5, 3), SP_ONNX_ROWS};
    refused_tape(&s.g, SP_ERR_ARG, "output \"weights\"", "not one recorded on the tape", NULL);
    sp_tape_free(other);
    sp_onnx_tape none = s.g;
    none.tape = NULL;
    refused_tape(&none, SP_ERR_ARG, "tape is NULL", NULL);
    assert_int_equal(sp_onnx_export_tape(NULL, "x.onnx"), SP_ERR_ARG);
    assert_int_equal(sp_onnx_export_tape(&s.g, NULL), SP_ERR_ARG);
    /* after the step: attention weights into a product (their columns are the time axis), a
     * constant of the batch's rows that is one row repeated (exported) or not, an op without
     * an ONNX form */
    s.out[2] = (sp_onnx_value){"spread", sp_matmul(s.t, s.logits, s.head.weight), SP_ONNX_ROWS};
    exports_tape(&s.g, "product");
    s.out[2].node = sp_matmul(s.t, s.weights, sp_param(s.ps, "by_step", 3, 2));
    refused_tape(&s.g, SP_ERR_ARG, "op matmul", "time axis", NULL);
    sp_tensor *zeros = sp_const(s.t, 5, 3);
    s.out[2].node = sp_add(s.t, s.hnext, zeros);
    exports_tape(&s.g, "zeros");
    *sp_at(zeros, 2, 1) = 1;
    refused_tape(&s.g, SP_ERR_ARG, "constant", "[5 x 3]", "batch's rows", NULL);
    s.out[2].node = sp_add(s.t, s.hnext, sp_name(s.t, sp_mean(s.t, s.hnext), "avg"));
    refused_tape(&s.g, SP_ERR_ARG, "op mean", "\"avg\"", "no ONNX mapping", NULL);
    s.out[2].node = sp_add(s.t, s.hnext, sp_name(s.t, sp_slice_rows(s.t, s.hnext, 0, 1), "first_row"));
    refused_tape(&s.g, SP_ERR_ARG, "\"first_row\"", "rows of the batch", NULL);
    sp_tape_free(s.t);
    sp_params_free(s.ps);
}

/* sp_onnx_model.post: a computation of the stack's values after the graph, its inputs named
 * after them; misnamed, mis-sized or clashing bindings refused. */
static void post_graphs(void **state)
{
    (void)state;
    if (!TEST_HAVE_ONNX) return; /* without_onnx checks the stubs */
    model_t x;
    make(&x, SP_CELL_LSTM, NULL, 1, 1); /* states [2, B, 3]: hn_l0 is [B, 6] */
    x.m.head = NULL, x.m.softmax = 0;
    sp_rng rng;
    sp_rng_seed(&rng, 3);
    sp_linear bridge;
    assert_int_equal(sp_linear_init(&bridge, x.ps, "bridge", 6, 4, 1, &rng), SP_OK);
    sp_tape *t = sp_tape_new();
    sp_tensor *hn = sp_const(t, 5, 6), *y = sp_const(t, 15, 6);
    sp_tensor *h = sp_tanh(t, sp_linear_forward(t, &bridge, hn)), *keys = sp_matmul_ex(t, y, 0, bridge.weight, 1);
    sp_onnx_value in[2] = {{"hn_l0", hn, SP_ONNX_ROWS}, {"y", y, SP_ONNX_SEQ}};
    sp_onnx_value out[3] = {{"dec_h", h, SP_ONNX_ROWS}, {"keys", keys, SP_ONNX_SEQ}, {"dec_c", sp_const(t, 5, 4), SP_ONNX_ROWS}};
    sp_onnx_tape post = {.tape = t, .batch = 5, .steps = 3, .n_in = 2, .in = in, .n_out = 3, .out = out};
    x.m.post = &post;
    exports(&x.m, "post");
    in[0].name = "cn_l0"; /* an LSTM's c: [B, 6] too */
    exports(&x.m, "post_c");
    in[0].name = "hn_l1";
    refused(&x.m, SP_ERR_ARG, "post: input \"hn_l1\" is none of the graph's values", NULL);
    in[0].name = NULL;
    refused(&x.m, SP_ERR_ARG, "input \"(null)\" needs a name", NULL);
    in[0].name = "hn_l0";
    in[1].kind = SP_ONNX_ROWS;
    refused(&x.m, SP_ERR_SHAPE, "input \"y\"", "must have 5 rows", NULL);
    in[1].kind = SP_ONNX_SEQ;
    in[1].name = "hn_l0";
    refused(&x.m, SP_ERR_ARG, "input \"hn_l0\" is none of", NULL);
    in[1].name = "y";
    out[0].name = "logits";
    refused(&x.m, SP_ERR_ARG, "output \"logits\" needs a name of its own", NULL);
    out[0].name = "dec_h";
    const sp_tensor *consts[1] = {bridge.bias};
    const char *cn[1] = {"dec_h"};
    x.m.n_consts = 1, x.m.consts = consts, x.m.const_names = cn;
    refused(&x.m, SP_ERR_ARG, "post: output \"dec_h\": the graph has a value of that name", NULL);
    x.m.n_consts = 0;
    sp_tape_free(t);
    t = sp_tape_new(); /* a post of another width than the graph's value */
    sp_tensor *narrow = sp_const(t, 5, 3);
    sp_onnx_value in2[1] = {{"hn_l0", narrow, SP_ONNX_ROWS}}, out2[1] = {{"dec_h", sp_tanh(t, narrow), SP_ONNX_ROWS}};
    post = (sp_onnx_tape){.tape = t, .batch = 5, .n_in = 1, .in = in2, .n_out = 1, .out = out2};
    refused(&x.m, SP_ERR_SHAPE, "post: input \"hn_l0\" has 6 columns in the graph, node", NULL);
    sp_tape_free(t);
    sp_params_free(x.ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(without_onnx), cmocka_unit_test(writes_one_file), cmocka_unit_test(exports_every_kind),
        cmocka_unit_test(custom_steps), cmocka_unit_test(refuses_options), cmocka_unit_test(loads_back),
        cmocka_unit_test(load_refuses_model_untouched), cmocka_unit_test(tape_graphs), cmocka_unit_test(post_graphs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
