/* SPDX-License-Identifier: MIT */
/* onnx_torch.c - the spool half of tests/onnx/make_torch_onnx.py: for each case, DIR/<case>.onnx
 * (written by torch.onnx.export) and DIR/<case>.io (the case's configuration "cfg", its input
 * "ids" or "x", PyTorch's outputs; the .io format of onnx_spool.c), builds the model spool would
 * (sp_rnn_init with its own random weights, embedding, head), reads the file's weights with
 * sp_onnx_load_weights, runs spool's forward and writes DIR/<case>.out: "y" or "logits", "hn",
 * "cn" (PyTorch's layout: [L*D, B, H]). The script compares them with PyTorch's.
 *
 * Before that, each case checks the refusals on the same file: a model one hidden unit larger,
 * one input column wider (the message must give W's shape in the file and in the model), one
 * layer short, of another cell kind, and (bidirectional files) one-directional; each must
 * fail with a message naming the node (and, for sizes, both shapes), and leave every parameter as
 * it was (a failed load changes nothing). Usage: onnx_torch DIR CASE... */
#include "spool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K_LSTM, K_GRU, K_RNN_TANH, K_RNN_RELU }; /* cfg[0], as make_torch_onnx.py writes it */
static const sp_cell_kind KIND[] = {SP_CELL_LSTM, SP_CELL_GRU_RESET_AFTER_MATMUL, SP_CELL_RNN_TANH, SP_CELL_RNN_RELU};

typedef struct {
    char name[32], dtype[8];
    int ndim;
    long dims[4];
    void *data;
} arr;

static int read_io(const char *path, arr *a, int max)
{
    FILE *f = fopen(path, "rb");
    int n = 0;
    if (!f) return -1;
    while (n < max && fscanf(f, "%31s %7s %d", a[n].name, a[n].dtype, &a[n].ndim) == 3 && a[n].ndim <= 4) {
        size_t cnt = 1, es = strcmp(a[n].dtype, "i64") ? 4 : 8;
        for (int i = 0; i < a[n].ndim; i++)
            if (fscanf(f, "%ld", &a[n].dims[i]) != 1) return fclose(f), -1;
            else cnt *= (size_t)a[n].dims[i];
        if (fgetc(f) != '\n' || !(a[n].data = malloc(es * cnt + 1)) || fread(a[n].data, es, cnt, f) != cnt) return fclose(f), -1;
        n++;
    }
    fclose(f);
    return n;
}

static const arr *get(const arr *a, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(a[i].name, name)) return &a[i];
    return NULL;
}

static void put_f32(FILE *f, const char *name, int ndim, const long *dims, const float *v)
{
    size_t n = 1;
    fprintf(f, "%s f32 %d", name, ndim);
    for (int i = 0; i < ndim; i++) fprintf(f, " %ld", dims[i]), n *= (size_t)dims[i];
    fputc('\n', f);
    fwrite(v, 4, n, f);
}

typedef struct {
    sp_params *ps;
    sp_rnn rnn;
    sp_embed emb;
    sp_linear head;
    sp_onnx_model m;
} model_t;

/* cfg: kind, I, H, L, D, V (0: float input), head */
static int build(model_t *md, const long *cfg, int kind, int H, int L, int D)
{
    sp_rng rng;
    sp_rng_seed(&rng, 7);
    memset(md, 0, sizeof *md);
    md->ps = sp_params_new();
    int I = (int)cfg[1], V = (int)cfg[5];
    if (!md->ps || sp_rnn_init(&md->rnn, md->ps, "rnn", KIND[kind], I, H, L, D == 2, NULL, &rng) != SP_OK) return -1;
    if (V && sp_embed_init(&md->emb, md->ps, "emb", V, I, &rng) != SP_OK) return -1;
    if (cfg[6] && sp_linear_init(&md->head, md->ps, "head", D * H, V, 1, &rng) != SP_OK) return -1;
    md->m.rnn = &md->rnn;
    md->m.embed = V ? &md->emb : NULL;
    md->m.head = cfg[6] ? &md->head : NULL;
    return 0;
}

static int verbose = 1; /* print the messages of the first case's refusals */

/* A load that must fail: its message must name a node of the file (and `also`), and no
 * parameter may change. */
static int refused(const char *onnx, const char *what, const long *cfg, int kind, int H, int L, int D, const char *also)
{
    model_t md;
    if (build(&md, cfg, kind, H, L, D)) return fprintf(stderr, "onnx_torch: %s: build: %s\n", what, sp_last_error()), 1;
    sp_real *before = malloc(sizeof(sp_real) * md.ps->numel);
    memcpy(before, md.ps->value, sizeof(sp_real) * md.ps->numel);
    int bad = 0;
    if (sp_onnx_load_weights(onnx, &md.m) == SP_OK) bad = fprintf(stderr, "onnx_torch: %s: %s loaded\n", onnx, what);
    else {
        const char *e = sp_last_error();
        if (verbose) printf("#   %s refused: %s\n", what, e);
        if (!strstr(e, "node \"") && !strstr(e, "recurrent layers"))
            bad = fprintf(stderr, "onnx_torch: %s: the message names no node\n", what);
        if (also && !strstr(e, also)) bad = fprintf(stderr, "onnx_torch: %s: the message lacks \"%s\"\n", what, also);
        if (memcmp(before, md.ps->value, sizeof(sp_real) * md.ps->numel))
            bad = fprintf(stderr, "onnx_torch: %s: a failed load changed parameters\n", what);
    }
    free(before);
    sp_params_free(md.ps);
    return bad != 0;
}

static int one_case(const char *dir, const char *name)
{
    char path[1024], onnx[1024];
    arr a[16];
    memset(a, 0, sizeof a);
    snprintf(path, sizeof path, "%s/%s.io", dir, name);
    snprintf(onnx, sizeof onnx, "%s/%s.onnx", dir, name);
    int n = read_io(path, a, 16), rc = 1;
    const arr *cfga = n > 0 ? get(a, n, "cfg") : NULL;
    if (!cfga) return fprintf(stderr, "onnx_torch: cannot read %s\n", path), 1;
    const long *cfg = cfga->data;
    int kind = (int)cfg[0], H = (int)cfg[2], L = (int)cfg[3], D = (int)cfg[4], V = (int)cfg[5];
    /* refusals first, on the same file */
    char shape[96];
    long wider[7];
    memcpy(wider, cfg, sizeof wider);
    wider[1]++;
    int G = (kind == K_LSTM ? 4 : kind == K_GRU ? 3 : 1) * H;
    snprintf(shape, sizeof shape, "is [%d, %d, %d], the model needs [%d, %d, %d]", D, G, (int)cfg[1], D, G, (int)cfg[1] + 1);
    int bad = refused(onnx, "a model of hidden size H + 1", cfg, kind, H + 1, L, D, "hidden_size");
    bad |= refused(onnx, "a model of input size I + 1", wider, kind, H, L, D, shape);
    if (L > 1) bad |= refused(onnx, "a model of one layer fewer", cfg, kind, H, L - 1, D, NULL);
    bad |= refused(onnx, "a model of another cell kind", cfg, kind == K_LSTM ? K_GRU : K_LSTM, H, L, D, NULL);
    if (D == 2) bad |= refused(onnx, "a one-directional model", cfg, kind, H, L, 1, "bidirectional");
    model_t md;
    sp_tape *t = NULL;
    FILE *f = NULL;
    if (bad || build(&md, cfg, kind, H, L, D)) goto out;
    if (sp_onnx_load_weights(onnx, &md.m) != SP_OK) {
        fprintf(stderr, "onnx_torch: %s: %s\n", name, sp_last_error());
        goto out;
    }
    t = sp_tape_new();
    const arr *in = get(a, n, V ? "ids" : "x");
    int T = (int)in->dims[0], B = (int)in->dims[1];
    sp_tensor *x;
    if (V) {
        int *ids = malloc(sizeof(int) * (size_t)(T * B));
        for (int i = 0; i < T * B; i++) ids[i] = (int)((const int64_t *)in->data)[i];
        x = sp_embed_forward(t, &md.emb, ids, T * B);
        free(ids);
    } else {
        x = sp_const(t, T * B, (int)cfg[1]);
        for (int i = 0; i < T * B; i++)
            for (int j = 0; j < cfg[1]; j++) *sp_at(x, i, j) = ((const float *)in->data)[(size_t)i * cfg[1] + j];
    }
    sp_rnn_opts ro = {0};
    sp_rnn_out o;
    if (sp_rnn_run(t, &md.rnn, x, T, B, &ro, &o) != SP_OK) {
        fprintf(stderr, "onnx_torch: %s: forward: %s\n", name, sp_tape_errmsg(t));
        goto out;
    }
    sp_tensor *y = cfg[6] ? sp_linear_forward(t, &md.head, o.out) : o.out;
    if (!y) goto out;
    snprintf(path, sizeof path, "%s/%s.out", dir, name);
    if (!(f = fopen(path, "wb"))) goto out;
    float *v = malloc(sizeof(float) * (size_t)(T * B) * (size_t)(y->cols + 2 * L * D * H));
    for (int i = 0; i < T * B; i++)
        for (int j = 0; j < y->cols; j++) v[(size_t)i * y->cols + j] = (float)*sp_at(y, i, j);
    put_f32(f, cfg[6] ? "logits" : "y", 3, (long[]){T, B, y->cols}, v);
    for (int k = 0; k < (kind == K_LSTM ? 2 : 1); k++) { /* PyTorch's h_n: layer-major, then direction */
        for (int l = 0; l < L; l++)
            for (int d = 0; d < D; d++)
                for (int b = 0; b < B; b++)
                    for (int j = 0; j < H; j++) v[(((size_t)l * D + d) * B + b) * H + j] = (float)*sp_at(o.final.s[l][d][k], b, j);
        put_f32(f, k ? "cn" : "hn", 3, (long[]){L * D, B, H}, v);
    }
    free(v);
    rc = 0;
out:
    if (f && fclose(f)) rc = 1;
    sp_tape_free(t);
    if (!bad) sp_params_free(md.ps);
    for (int i = 0; i < n; i++) free(a[i].data);
    return rc || bad;
}

int main(int argc, char **argv)
{
    if (argc < 3) return fprintf(stderr, "usage: onnx_torch DIR CASE...\n"), 2;
    int rc = 0;
    for (int i = 2; i < argc; i++, verbose = 0) rc |= one_case(argv[1], argv[i]);
    return rc;
}
