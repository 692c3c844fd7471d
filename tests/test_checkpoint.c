/* SPDX-License-Identifier: MIT */
/* test_checkpoint.c - safetensors checkpoints: the bytes on disk follow the format (length
 * prefix, JSON header, little-endian F32 data, PyTorch-style 1-D biases), round trips are exact,
 * prefixes select a sub-module, metadata and the table of contents can be read before loading,
 * writing is atomic, every kind of bad file is refused with a message and leaves the model
 * untouched, and training resumed from a checkpoint is bit-identical to an uninterrupted run.
 * Hostile files (seeded mutations) are in test_checkpoint_fuzz.c.
 */
#include "helpers.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static int group_setup(void **state)
{
    (void)state;
    sp_set_threads(1); /* tiny models: threads only add barrier waits on a busy machine */
    snprintf(dir, sizeof dir, "test_checkpoint_%s.d", SP_REAL_NAME); /* float and double runs in parallel */
    mkdir(dir, 0755);
    return 0;
}

static const char *path_in(const char *name)
{
    static char p[4][320];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len + 1);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    fclose(f);
}

/* A small model shaped like an LSTM layer plus a linear head. */
static sp_params *model(int H, uint64_t seed)
{
    sp_params *ps = sp_params_new();
    sp_tensor *w = sp_param(ps, "lstm.weight_ih_l0", 4 * H, 3);
    sp_tensor *b = sp_param_vec(ps, "lstm.bias_ih_l0", 4 * H);
    sp_tensor *f = sp_param(ps, "fc.weight", 2, H);
    assert_true(w && b && f);
    sp_rng r;
    sp_rng_seed(&r, seed);
    /* float-representable, so that round trips are exact in the double build too */
    for (size_t i = 0; i < ps->numel; i++) ps->value[i] = (sp_real)(float)(sp_rng_uniform(&r) - 0.5);
    return ps;
}

static uint64_t le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = (v << 8) | b[k];
    return v;
}

static void test_file_layout_and_round_trip(void **state)
{
    (void)state;
    sp_params *a = model(2, 1), *b = model(2, 2);
    sp_kv meta[] = {{"cell", "lstm"}, {"hidden", "2"}, {"note", "quote \" backslash \\ tab \t é"}};
    sp_ckpt_opts o = {NULL, meta, 3, NULL};
    const char *p = path_in("layout.safetensors");
    assert_int_equal(sp_save(p, a, NULL, &o), SP_OK);
    size_t len;
    unsigned char *f = slurp(p, &len);
    uint64_t n = le64(f);
    assert_true(n > 0 && 8 + n <= len);
    assert_int_equal((8 + n) % 8, 0);                      /* header padded with spaces */
    assert_int_equal(len - 8 - n, 4 * a->numel);           /* F32 data, nothing else */
    assert_int_equal(f[8], '{');
    char *hdr = strndup((const char *)f + 8, n);
    assert_non_null(strstr(hdr, "\"lstm.bias_ih_l0\":{\"dtype\":\"F32\",\"shape\":[8],"));
    assert_non_null(strstr(hdr, "\"lstm.weight_ih_l0\":{\"dtype\":\"F32\",\"shape\":[8,3],"));
    /* alphabetical order: fc.weight [2 x 2] first at 0..16, then the bias at 16..48 */
    assert_non_null(strstr(hdr, "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}"));
    assert_non_null(strstr(hdr, "\"data_offsets\":[16,48]"));
    /* the bias' third value, little-endian F32 at data offset 16 + 8 */
    sp_tensor *bias = sp_params_find(a, "lstm.bias_ih_l0");
    const unsigned char *d = f + 8 + n + 16 + 8;
    uint32_t u = (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
    float x;
    memcpy(&x, &u, 4);
    assert_true(x == (float)bias->data[2]);
    free(hdr);
    free(f);

    assert_int_equal(sp_load(p, b, NULL, NULL), SP_OK);
    assert_memory_equal(a->value, b->value, a->numel * sizeof(sp_real));

    sp_ckpt_info *ci = sp_ckpt_open(p);
    assert_non_null(ci);
    assert_string_equal(sp_ckpt_meta(ci, "cell"), "lstm");
    assert_string_equal(sp_ckpt_meta(ci, "hidden"), "2");
    assert_string_equal(sp_ckpt_meta(ci, "note"), meta[2].value);
    assert_string_equal(sp_ckpt_meta(ci, "spool.real"), SP_REAL_NAME);
    assert_null(sp_ckpt_meta(ci, "missing"));
    assert_int_equal(sp_ckpt_n_meta(ci), 5); /* 3 of ours + spool.version, spool.real */
    assert_string_equal(sp_ckpt_meta_at(ci, 0)->key, "cell");
    assert_null(sp_ckpt_meta_at(ci, 5));
    assert_int_equal(sp_ckpt_n_tensors(ci), 3);
    assert_string_equal(sp_ckpt_tensor_at(ci, 0)->name, "fc.weight");
    const sp_ckpt_tensor *t = sp_ckpt_find(ci, "lstm.weight_ih_l0");
    assert_true(t && t->ndim == 2 && t->shape[0] == 8 && t->shape[1] == 3);
    assert_string_equal(t->dtype, "F32");
    assert_int_equal(sp_ckpt_find(ci, "lstm.bias_ih_l0")->ndim, 1);
    sp_ckpt_close(ci);
    sp_params_free(a);
    sp_params_free(b);
}

/* The table of contents is enough to rebuild a model of the saved size before loading. */
/* The set owns its layout: offsets fixed at creation survive the slabs growing, and the stored
 * shape comes from how a parameter was made (sp_param_vec: 1-D), never from its name. */
static void test_layout_owned_by_the_set(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_tensor *w = sp_param(ps, "bias_looking.bias", 1, 3), *v = sp_param_vec(ps, "v", 3);
    for (int k = 0; k < 40; k++) { /* enough parameters that the slabs move */
        char nm[16];
        snprintf(nm, sizeof nm, "m%d", k);
        assert_non_null(sp_param(ps, nm, 16, 16));
    }
    size_t off = 0;
    for (int i = 0; i < ps->count; i++) {
        const sp_tensor *p = ps->list[i];
        assert_int_equal(p->offset, off);
        assert_ptr_equal(p->data, ps->value + off);
        assert_ptr_equal(p->grad, ps->grad + off);
        off += sp_numel(p);
    }
    assert_int_equal(off, ps->numel);
    assert_true(!(w->flags & SP_PARAM_1D) && (v->flags & SP_PARAM_1D) && v->rows == 1);
    const char *path = path_in("layout.safetensors");
    assert_int_equal(sp_save(path, ps, NULL, NULL), SP_OK);
    sp_ckpt_info *ci = sp_ckpt_open(path);
    assert_non_null(ci);
    const sp_ckpt_tensor *tw = sp_ckpt_find(ci, "bias_looking.bias"), *tv = sp_ckpt_find(ci, "v");
    assert_true(tw && tw->ndim == 2 && tw->shape[0] == 1 && tw->shape[1] == 3);
    assert_true(tv && tv->ndim == 1 && tv->shape[0] == 3);
    sp_ckpt_close(ci);
    sp_params_free(ps);
}

static void test_rebuild_from_metadata(void **state)
{
    (void)state;
    sp_params *a = model(5, 3);
    sp_kv meta[] = {{"hidden", "5"}};
    sp_ckpt_opts o = {NULL, meta, 1, NULL};
    const char *p = path_in("rebuild.safetensors");
    assert_int_equal(sp_save(p, a, NULL, &o), SP_OK);
    sp_ckpt_info *ci = sp_ckpt_open(p);
    int H = atoi(sp_ckpt_meta(ci, "hidden"));
    assert_int_equal(H, 5);
    assert_int_equal(sp_ckpt_find(ci, "fc.weight")->shape[1], 5);
    sp_ckpt_close(ci);
    sp_params *b = model(H, 4);
    assert_int_equal(sp_load(p, b, NULL, NULL), SP_OK);
    assert_memory_equal(a->value, b->value, a->numel * sizeof(sp_real));
    sp_params_free(a);
    sp_params_free(b);
}

static void test_prefix_selects_a_submodule(void **state)
{
    (void)state;
    sp_params *a = model(2, 5), *b = model(2, 6);
    const char *p = path_in("prefix.safetensors");
    sp_ckpt_opts o = {"lstm.", NULL, 0, NULL};
    assert_int_equal(sp_save(p, a, NULL, &o), SP_OK);
    sp_ckpt_info *ci = sp_ckpt_open(p);
    assert_int_equal(sp_ckpt_n_tensors(ci), 2);
    assert_non_null(sp_ckpt_find(ci, "weight_ih_l0"));
    assert_non_null(sp_ckpt_find(ci, "bias_ih_l0"));
    sp_ckpt_close(ci);
    sp_tensor *fc = sp_params_find(b, "fc.weight");
    sp_real fc_before = fc->data[0];
    assert_int_equal(sp_load(p, b, NULL, &o), SP_OK);
    assert_memory_equal(sp_params_find(a, "lstm.weight_ih_l0")->data, sp_params_find(b, "lstm.weight_ih_l0")->data,
                        24 * sizeof(sp_real));
    assert_true(fc->data[0] == fc_before);
    /* without the prefix the names do not match the model: strict refusal */
    assert_int_equal(sp_load(p, b, NULL, NULL), SP_ERR_FORMAT);
    assert_non_null(strstr(sp_last_error(), "unexpected tensor \"bias_ih_l0\""));
    o.prefix = "nothing.";
    assert_int_equal(sp_save(p, a, NULL, &o), SP_ERR_ARG);
    sp_params_free(a);
    sp_params_free(b);
}

static void test_atomic_write(void **state)
{
    (void)state;
    sp_params *a = model(2, 7), *b = model(2, 8);
    const char *p = path_in("atomic.safetensors");
    assert_int_equal(sp_save(p, a, NULL, NULL), SP_OK);
    size_t len0, len1;
    unsigned char *f0 = slurp(p, &len0);
    /* a failing save (reserved metadata key) leaves the old file as it was */
    sp_kv bad[] = {{"spool.mine", "x"}};
    sp_ckpt_opts o = {NULL, bad, 1, NULL};
    assert_int_equal(sp_save(p, b, NULL, &o), SP_ERR_ARG);
    unsigned char *f1 = slurp(p, &len1);
    assert_true(len0 == len1 && memcmp(f0, f1, len0) == 0);
    free(f1);
    /* overwriting replaces the whole file */
    assert_int_equal(sp_save(p, b, NULL, NULL), SP_OK);
    sp_params *c = model(2, 9);
    assert_int_equal(sp_load(p, c, NULL, NULL), SP_OK);
    assert_memory_equal(b->value, c->value, b->numel * sizeof(sp_real));
    /* an unwritable place: an I/O error naming the path, no file */
    assert_int_equal(sp_save("test_checkpoint_no_such_dir/x.safetensors", a, NULL, NULL), SP_ERR_IO);
    assert_non_null(strstr(sp_last_error(), "test_checkpoint_no_such_dir"));
    /* a NaN weight is refused before anything is written */
    b->value[3] = (sp_real)NAN;
    assert_int_equal(sp_save(p, b, NULL, NULL), SP_ERR_NONFINITE);
    assert_non_null(strstr(sp_last_error(), "\"lstm.weight_ih_l0\""));
    assert_int_equal(sp_load(p, c, NULL, NULL), SP_OK); /* the previous file is intact */
    /* no temporary files left behind */
    DIR *dd = opendir(dir);
    struct dirent *e;
    while ((e = readdir(dd))) assert_null(strstr(e->d_name, ".tmp."));
    closedir(dd);
    free(f0);
    sp_params_free(a);
    sp_params_free(b);
    sp_params_free(c);
}

/* Each bad file is refused with a message naming the problem, and b keeps its values. */
static void expect_refused(const char *p, sp_params *b, sp_optim *opt, const char *needle)
{
    sp_real *before = malloc(b->numel * sizeof *before);
    memcpy(before, b->value, b->numel * sizeof *before);
    sp_status st = sp_load(p, b, opt, NULL);
    if (st == SP_OK || !strstr(sp_last_error(), needle)) {
        print_error("# expected a refusal mentioning \"%s\", got %s: %s\n", needle, sp_status_str(st), sp_last_error());
        fail();
    }
    assert_memory_equal(before, b->value, b->numel * sizeof *before);
    free(before);
}

static void test_bad_files_refused_model_untouched(void **state)
{
    (void)state;
    sp_params *a = model(2, 10), *b = model(2, 11), *wrong = model(3, 12);
    const char *p = path_in("good.safetensors"), *q = path_in("bad.safetensors");
    assert_int_equal(sp_save(p, a, NULL, NULL), SP_OK);
    size_t len;
    unsigned char *f = slurp(p, &len);
    uint64_t n = le64(f);

    expect_refused(path_in("does-not-exist.safetensors"), b, NULL, "cannot open");
    assert_null(sp_ckpt_open(path_in("does-not-exist.safetensors")));
    assert_int_equal(sp_last_status(), SP_ERR_IO);
    expect_refused(dir, b, NULL, "cannot read"); /* a directory */
    spit(q, f, len - 1);
    expect_refused(q, b, NULL, "truncated");
    spit(q, f, 8 + n / 2);
    expect_refused(q, b, NULL, "past the end");
    spit(q, f, 5);
    expect_refused(q, b, NULL, "shorter than");
    /* NaN in the data: a valid container, but not a usable model */
    unsigned char *g = malloc(len);
    memcpy(g, f, len);
    g[len - 1] = 0x7f, g[len - 2] = 0xc0, g[len - 3] = 0, g[len - 4] = 0;
    spit(q, g, len);
    expect_refused(q, b, NULL, "element");
    /* a model of another size: names the tensor and both shapes */
    expect_refused(p, wrong, NULL, "has shape [8 x 3], parameter \"lstm.weight_ih_l0\" is [12 x 3]");
    /* a model with an extra parameter: missing tensor; with one fewer: unexpected tensor */
    sp_params *more = model(2, 13);
    sp_param_vec(more, "fc.bias", 2);
    expect_refused(p, more, NULL, "\"fc.bias\"");
    sp_params *less = sp_params_new();
    sp_param(less, "fc.weight", 2, 2);
    expect_refused(p, less, NULL, "unexpected tensor");
    /* asking for optimizer state the file does not have */
    sp_optim_config c = sp_optim_defaults(SP_ADAM);
    sp_optim *o = sp_optim_new(b, &c);
    expect_refused(p, b, o, "optimizer state");
    /* asking for an RNG state the file does not have */
    sp_rng r = {{1, 2}};
    sp_ckpt_opts ro = {NULL, NULL, 0, &r};
    assert_int_equal(sp_load(p, b, NULL, &ro), SP_ERR_FORMAT);
    assert_true(r.s[0] == 1 && r.s[1] == 2);
    sp_optim_free(o);
    free(g);
    free(f);
    sp_params_free(a);
    sp_params_free(b);
    sp_params_free(wrong);
    sp_params_free(more);
    sp_params_free(less);
}

/* ---------------------------------------------------------- exact resume */

enum { RB = 6, RI = 3, RH = 5 };

typedef struct {
    sp_params *ps;
    sp_tensor *W1, *b1, *W2;
    sp_optim *opt;
    sp_rng rng;
    sp_tape *t;
} trainer;

static void trainer_init(trainer *tr, const sp_optim_config *c, uint64_t seed)
{
    tr->ps = sp_params_new();
    tr->W1 = sp_param(tr->ps, "W1", RI, RH);
    tr->b1 = sp_param(tr->ps, "b1", 1, RH);
    tr->W2 = sp_param(tr->ps, "W2", RH, 1);
    sp_rng r;
    sp_rng_seed(&r, seed);
    for (size_t i = 0; i < tr->ps->numel; i++) tr->ps->value[i] = (sp_real)(sp_rng_uniform(&r) - 0.5);
    tr->opt = sp_optim_new(tr->ps, c);
    sp_rng_seed(&tr->rng, seed + 1000);
    tr->t = sp_tape_new();
}

static void trainer_free(trainer *tr)
{
    sp_tape_free(tr->t);
    sp_optim_free(tr->opt);
    sp_params_free(tr->ps);
}

/* One step of regression with dropout (so the RNG is part of the state) and a cosine schedule. */
static void train_step(trainer *tr)
{
    sp_tape *t = tr->t;
    sp_tape_reset(t);
    sp_params_zero_grad(tr->ps);
    sp_tensor *x = sp_const(t, RB, RI), *y = sp_const(t, RB, 1);
    for (int i = 0; i < RB * RI; i++) x->data[i] = (sp_real)(sp_rng_uniform(&tr->rng) * 2 - 1);
    for (int i = 0; i < RB; i++) y->data[i] = x->data[i * RI] - 0.5f * x->data[i * RI + 2];
    sp_tensor *h = sp_dropout(t, sp_tanh(t, sp_add(t, sp_matmul(t, x, tr->W1), tr->b1)), 0.2, &tr->rng, 1);
    sp_tensor *d = sp_sub(t, sp_matmul(t, h, tr->W2), y);
    assert_int_equal(sp_backward(t, sp_mean(t, sp_mul(t, d, d))), SP_OK);
    assert_int_equal(sp_clip_grad_norm(tr->ps, 1.0, NULL), SP_OK);
    sp_schedule s = {SP_SCHED_COSINE, 0.05, 0, 0, 3, 20, 0.001};
    assert_int_equal(sp_optim_step(tr->opt, sp_schedule_lr(&s, sp_optim_steps(tr->opt))), SP_OK);
}

static void test_exact_resume(void **state)
{
    (void)state;
    enum { K = 7 };
    sp_optim_config cs[6];
    for (int k = 0; k < 5; k++) cs[k] = sp_optim_defaults((sp_optim_kind)k);
    cs[0].momentum = 0.9, cs[0].nesterov = 1;
    cs[1].momentum = 0.5, cs[1].centered = 1;
    cs[3].amsgrad = 1;
    cs[5] = sp_optim_defaults(SP_SGD);
    for (int k = 0; k < 6; k++) {
        trainer a, b;
        trainer_init(&a, &cs[k], 1);
        trainer_init(&b, &cs[k], 99); /* another init: everything must come from the file */
        for (int s = 0; s < K; s++) train_step(&a);
        const char *p = path_in("resume.safetensors");
        sp_ckpt_opts o = {NULL, NULL, 0, &a.rng};
        assert_int_equal(sp_save(p, a.ps, a.opt, &o), SP_OK);
        for (int s = 0; s < K; s++) train_step(&a);
        o.rng = &b.rng;
        assert_int_equal(sp_load(p, b.ps, b.opt, &o), SP_OK);
        assert_int_equal(sp_optim_steps(b.opt), K);
        for (int s = 0; s < K; s++) train_step(&b);
#ifdef SP_USE_DOUBLE
        /* the double build stores F32: resumed runs agree to float rounding, not bit for bit */
        for (size_t i = 0; i < a.ps->numel; i++) sp_test_close(a.ps->value[i], b.ps->value[i], 1e-4, 1e-6, "resume");
#else
        assert_memory_equal(a.ps->value, b.ps->value, a.ps->numel * sizeof(sp_real));
        for (int s = 0; s < sp_optim_nslots(a.opt); s++)
            assert_memory_equal(sp_optim_slot(a.opt, s), sp_optim_slot(b.opt, s), a.ps->numel * sizeof(sp_real));
#endif
        assert_true(a.rng.s[0] == b.rng.s[0] && a.rng.s[1] == b.rng.s[1]);
        /* the same file loads into a model-only program (optimizer tensors ignored) */
        trainer c;
        trainer_init(&c, &cs[k], 5);
        assert_int_equal(sp_load(p, c.ps, NULL, NULL), SP_OK);
        /* and into an optimizer of another kind it is refused */
        sp_optim_config other = sp_optim_defaults(cs[k].kind == SP_ADAGRAD ? SP_ADAM : SP_ADAGRAD);
        sp_optim *oo = sp_optim_new(c.ps, &other);
        assert_int_equal(sp_load(p, c.ps, oo, NULL), SP_ERR_FORMAT);
        assert_non_null(strstr(sp_last_error(), "optimizer"));
        sp_optim_free(oo);
        trainer_free(&c);
        trainer_free(&a);
        trainer_free(&b);
    }
    /* same kind, different slots (momentum on/off): refused rather than half-loaded */
    trainer a, b;
    sp_optim_config m = sp_optim_defaults(SP_SGD), plain = m;
    m.momentum = 0.9;
    trainer_init(&a, &m, 1);
    trainer_init(&b, &plain, 2);
    train_step(&a);
    const char *p = path_in("resume2.safetensors");
    assert_int_equal(sp_save(p, a.ps, a.opt, NULL), SP_OK);
    assert_int_equal(sp_load(p, b.ps, b.opt, NULL), SP_ERR_FORMAT);
    assert_non_null(strstr(sp_last_error(), "momentum_buffer"));
    trainer_free(&a);
    trainer_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_layout_and_round_trip),
        cmocka_unit_test(test_layout_owned_by_the_set),
        cmocka_unit_test(test_rebuild_from_metadata),
        cmocka_unit_test(test_prefix_selects_a_submodule),
        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_bad_files_refused_model_untouched),
        cmocka_unit_test(test_exact_resume),
    };
    return cmocka_run_group_tests_name("checkpoint", tests, group_setup, NULL);
}
