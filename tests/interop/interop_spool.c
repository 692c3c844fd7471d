/* SPDX-License-Identifier: MIT */
/* interop_spool.c - the spool half of the PyTorch checkpoint interoperability test
 * (tests/interop/interop.py drives it).
 *
 *   interop_spool save DIR    builds the recurrent stacks listed below with random weights, runs
 *                             one random batch through each and writes, per model NAME,
 *                             DIR/spool_NAME.safetensors (the model only, PyTorch state_dict names,
 *                             configuration in __metadata__) and DIR/spool_NAME_io.safetensors
 *                             (input, output, h_n, c_n in PyTorch's layouts);
 *   interop_spool check DIR NAME
 *                             rebuilds the model described by the metadata of
 *                             DIR/torch_NAME.safetensors (written from a torch.nn module), loads
 *                             it, runs DIR/torch_NAME_io.safetensors' input through it and compares
 *                             with PyTorch's outputs and final states; prints the largest
 *                             differences, exit status 1 if one is above 1e-5;
 *   interop_spool optim DIR   for each optimizer configuration k below: a small parameter set
 *                             (optim_k_init), the gradients of STEPS steps (optim_k_grads), and
 *                             the parameters plus optimizer state after those steps with a cosine
 *                             learning rate (optim_k_final); the script replays the steps with
 *                             torch.optim, configured from the file's metadata, and compares.
 * Sequences are full length (no padding) so that both sides run the same computation.
 */
#include "spool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name, *mode;
    int I, H, L, bidir, proj, T, B;
} model_cfg;

/* The stacks written by `save`: the common shapes (2-layer bidirectional LSTM, a GRU, an
 * RNN) plus LSTMP and a relu RNN, which have their own parameter names and shapes. */
static const model_cfg models[] = {
    {"lstm", "LSTM", 5, 7, 2, 1, 0, 6, 3},
    {"gru", "GRU", 5, 6, 2, 0, 0, 6, 3},
    {"rnn", "RNN_TANH", 5, 4, 2, 1, 0, 5, 2},
    {"lstmp", "LSTM", 4, 6, 2, 1, 3, 5, 2},
    {"rnn_relu", "RNN_RELU", 3, 5, 1, 0, 0, 4, 2},
};

static int usage(FILE *f, int rc)
{
    fprintf(f, "usage: interop_spool save DIR\n"
               "       interop_spool check DIR NAME\n"
               "       interop_spool optim DIR\n"
               "Writes spool checkpoints for PyTorch (save) or checks a PyTorch-written one (check);\n"
               "see tests/interop/interop.py.\n");
    return rc;
}

static sp_cell_kind kind_of(const char *mode)
{
    if (!strcmp(mode, "LSTM")) return SP_CELL_LSTM;
    if (!strcmp(mode, "GRU")) return SP_CELL_GRU_RESET_AFTER_MATMUL;
    if (!strcmp(mode, "RNN_RELU")) return SP_CELL_RNN_RELU;
    if (!strcmp(mode, "RNN_TANH")) return SP_CELL_RNN_TANH;
    return SP_CELL_CUSTOM;
}

static int build(const model_cfg *m, sp_params *ps, sp_rnn *r, sp_rng *rng)
{
    sp_cell_opts o = {0};
    o.proj_size = m->proj;
    if (kind_of(m->mode) == SP_CELL_CUSTOM) {
        fprintf(stderr, "interop_spool: unknown mode \"%s\"\n", m->mode);
        return 0;
    }
    if (sp_rnn_init(r, ps, "m", kind_of(m->mode), m->I, m->H, m->L, m->bidir, &o, rng) != SP_OK) {
        fprintf(stderr, "interop_spool: %s: %s\n", m->name, sp_last_error());
        return 0;
    }
    return 1;
}

/* Sizes of the io tensors: input [T*B, I], output [T*B, D*O], h_n [L*D*B, O], c_n [L*D*B, H]. */
static void io_params(const model_cfg *m, sp_params *io)
{
    int D = m->bidir ? 2 : 1, O = m->proj ? m->proj : m->H;
    sp_param(io, "input", m->T * m->B, m->I);
    sp_param(io, "output", m->T * m->B, D * O);
    sp_param(io, "h_n", m->L * D * m->B, O);
    if (!strcmp(m->mode, "LSTM")) sp_param(io, "c_n", m->L * D * m->B, m->H);
}

/* Runs input through r; writes output and final states into io's tensors of those names, or
 * compares with them (compare != 0), returning the largest difference in *diff[3]. */
static int forward(const model_cfg *m, const sp_rnn *r, sp_params *io, int compare, double diff[3])
{
    int D = m->bidir ? 2 : 1, ok = 1;
    sp_tape *t = sp_tape_new();
    sp_tensor *in = sp_params_find(io, "input");
    sp_tensor *x = sp_const(t, m->T * m->B, m->I);
    if (x) memcpy(x->data, in->data, sp_numel(in) * sizeof(sp_real));
    sp_rnn_out out;
    if (sp_rnn_run(t, r, x, m->T, m->B, NULL, &out) != SP_OK) {
        fprintf(stderr, "interop_spool: %s: %s\n", m->name, sp_tape_errmsg(t));
        sp_tape_free(t);
        return 0;
    }
    const char *names[3] = {"output", "h_n", "c_n"};
    for (int k = 0; k < 3; k++) {
        sp_tensor *dst = sp_params_find(io, names[k]);
        diff[k] = 0;
        if (!dst) continue;
        for (int row = 0; row < dst->rows; row++) {
            const sp_tensor *src = out.out;
            int sr = row;
            if (k > 0) { /* PyTorch's h_n/c_n: (layer * D + direction, batch) */
                int ld = row / m->B, b = row % m->B;
                src = out.final.s[ld / D][ld % D][k - 1];
                sr = b;
            }
            if (!src || src->cols != dst->cols) {
                fprintf(stderr, "interop_spool: %s: %s has %d columns, expected %d\n", m->name, names[k],
                        src ? src->cols : -1, dst->cols);
                ok = 0;
                break;
            }
            for (int j = 0; j < dst->cols; j++) {
                sp_real v = *sp_at(src, sr, j);
                if (compare) diff[k] = fmax(diff[k], fabs((double)v - (double)*sp_at(dst, row, j)));
                else *sp_at(dst, row, j) = v;
            }
        }
    }
    sp_tape_free(t);
    return ok;
}

static void config_meta(const model_cfg *m, char vals[8][32], sp_kv *kv)
{
    const char *keys[8] = {"mode", "input_size", "hidden_size", "num_layers", "bidirectional", "proj_size", "T", "B"};
    int v[8] = {0, m->I, m->H, m->L, m->bidir, m->proj, m->T, m->B};
    for (int k = 0; k < 8; k++) {
        if (k == 0) snprintf(vals[k], 32, "%s", m->mode);
        else snprintf(vals[k], 32, "%d", v[k]);
        kv[k] = (sp_kv){keys[k], vals[k]};
    }
}

static int save_all(const char *dir)
{
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        const model_cfg *m = &models[i];
        sp_rng rng;
        sp_rng_seed(&rng, 1000 + i);
        sp_params *ps = sp_params_new(), *io = sp_params_new();
        sp_rnn r;
        if (!build(m, ps, &r, &rng)) return 1;
        io_params(m, io);
        sp_tensor *in = sp_params_find(io, "input");
        for (size_t e = 0; e < sp_numel(in); e++) in->data[e] = (sp_real)(2 * sp_rng_uniform(&rng) - 1);
        double unused[3];
        if (!forward(m, &r, io, 0, unused)) return 1;
        char vals[8][32], path[1024];
        sp_kv kv[8];
        config_meta(m, vals, kv);
        sp_ckpt_opts o = {"m.", kv, 8, NULL};
        snprintf(path, sizeof path, "%s/spool_%s.safetensors", dir, m->name);
        if (sp_save(path, ps, NULL, &o) != SP_OK) goto fail;
        snprintf(path, sizeof path, "%s/spool_%s_io.safetensors", dir, m->name);
        o.prefix = NULL;
        if (sp_save(path, io, NULL, &o) != SP_OK) goto fail;
        printf("spool: wrote %s/spool_%s.safetensors (%d tensors)\n", dir, m->name, ps->count);
        sp_params_free(ps);
        sp_params_free(io);
        continue;
    fail:
        fprintf(stderr, "interop_spool: %s\n", sp_last_error());
        return 1;
    }
    return 0;
}

static int meta_int(const sp_ckpt_info *ci, const char *key, int *out)
{
    const char *s = sp_ckpt_meta(ci, key);
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || *end || v < 0 || v > 100000) {
        fprintf(stderr, "interop_spool: metadata \"%s\" missing or not a small integer\n", key);
        return 0;
    }
    *out = (int)v;
    return 1;
}

static int check(const char *dir, const char *name)
{
    char path[1024], mode[32];
    snprintf(path, sizeof path, "%s/torch_%s.safetensors", dir, name);
    /* The configuration comes from the file: build the model it describes, then load. */
    sp_ckpt_info *ci = sp_ckpt_open(path);
    if (!ci) {
        fprintf(stderr, "interop_spool: %s\n", sp_last_error());
        return 1;
    }
    model_cfg m = {name, mode, 0, 0, 0, 0, 0, 0, 0};
    const char *md = sp_ckpt_meta(ci, "mode");
    snprintf(mode, sizeof mode, "%s", md ? md : "?");
    int ok = meta_int(ci, "input_size", &m.I) && meta_int(ci, "hidden_size", &m.H) &&
             meta_int(ci, "num_layers", &m.L) && meta_int(ci, "bidirectional", &m.bidir) &&
             meta_int(ci, "proj_size", &m.proj) && meta_int(ci, "T", &m.T) && meta_int(ci, "B", &m.B);
    sp_ckpt_close(ci);
    if (!ok) return 1;
    sp_rng rng;
    sp_rng_seed(&rng, 1);
    sp_params *ps = sp_params_new(), *io = sp_params_new();
    sp_rnn r;
    if (!build(&m, ps, &r, &rng)) return 1;
    io_params(&m, io);
    sp_ckpt_opts o = {"m.", NULL, 0, NULL};
    if (sp_load(path, ps, NULL, &o) != SP_OK) {
        fprintf(stderr, "interop_spool: %s\n", sp_last_error());
        return 1;
    }
    snprintf(path, sizeof path, "%s/torch_%s_io.safetensors", dir, name);
    if (sp_load(path, io, NULL, NULL) != SP_OK) {
        fprintf(stderr, "interop_spool: %s\n", sp_last_error());
        return 1;
    }
    double diff[3];
    if (!forward(&m, &r, io, 1, diff)) return 1;
    int pass = diff[0] <= 1e-5 && diff[1] <= 1e-5 && diff[2] <= 1e-5;
    char cn[32] = "";
    if (sp_params_find(io, "c_n")) snprintf(cn, sizeof cn, "  c_n %.3g", diff[2]);
    printf("torch -> spool %-9s max |diff| output %.3g  h_n %.3g%s  %s\n", name, diff[0], diff[1], cn,
           pass ? "ok" : "MISMATCH");
    fflush(stdout);
    sp_params_free(ps);
    sp_params_free(io);
    return pass ? 0 : 1;
}

/* ------------------------------------------------------------ optimizers */

enum { STEPS = 12 };

static int optim_all(const char *dir)
{
    sp_optim_config cs[7];
    int n = 0;
    cs[n] = sp_optim_defaults(SP_SGD), cs[n].momentum = 0.9, cs[n].nesterov = 1, cs[n++].weight_decay = 0.01;
    cs[n] = sp_optim_defaults(SP_SGD), cs[n].momentum = 0.8, cs[n++].dampening = 0.1;
    cs[n] = sp_optim_defaults(SP_RMSPROP), cs[n].momentum = 0.5, cs[n].centered = 1, cs[n++].weight_decay = 0.01;
    cs[n] = sp_optim_defaults(SP_RMSPROP), n++;
    cs[n] = sp_optim_defaults(SP_ADAGRAD), cs[n].lr_decay = 0.01, cs[n++].initial_accumulator_value = 0.1;
    cs[n] = sp_optim_defaults(SP_ADAM), cs[n].amsgrad = 1, cs[n++].weight_decay = 0.01;
    cs[n] = sp_optim_defaults(SP_ADAMW), cs[n++].weight_decay = 0.1;
    for (int k = 0; k < n; k++) {
        sp_rng rng;
        sp_rng_seed(&rng, 500 + k);
        sp_params *ps = sp_params_new(), *gs = sp_params_new();
        sp_param(ps, "weight", 4, 5);
        sp_param_vec(ps, "bias", 5);
        for (size_t i = 0; i < ps->numel; i++) ps->value[i] = (sp_real)(2 * sp_rng_uniform(&rng) - 1);
        char path[1024], name[32], lrs[STEPS * 24] = "";
        size_t at = 0;
        for (int s = 0; s < STEPS; s++) {
            snprintf(name, sizeof name, "s%d.weight", s);
            sp_param(gs, name, 4, 5);
            snprintf(name, sizeof name, "s%d.bias", s);
            sp_param_vec(gs, name, 5);
        }
        for (size_t i = 0; i < gs->numel; i++) gs->value[i] = (sp_real)sp_rng_normal(&rng);
        snprintf(path, sizeof path, "%s/optim_%d_init.safetensors", dir, k);
        if (sp_save(path, ps, NULL, NULL) != SP_OK) goto fail;
        snprintf(path, sizeof path, "%s/optim_%d_grads.safetensors", dir, k);
        if (sp_save(path, gs, NULL, NULL) != SP_OK) goto fail;
        sp_optim *o = sp_optim_new(ps, &cs[k]);
        if (!o) goto fail;
        sp_schedule sch = {SP_SCHED_COSINE, cs[k].lr * 10, 0, 0, 2, STEPS, cs[k].lr};
        for (int s = 0; s < STEPS; s++) {
            memcpy(ps->grad, gs->value + (size_t)s * ps->numel, ps->numel * sizeof(sp_real));
            double lr = sp_schedule_lr(&sch, s);
            at += (size_t)snprintf(lrs + at, sizeof lrs - at, "%s%.17g", s ? "," : "", lr);
            if (sp_optim_step(o, lr) != SP_OK) goto fail;
        }
        char steps[16];
        snprintf(steps, sizeof steps, "%d", STEPS);
        sp_kv kv[2] = {{"lrs", lrs}, {"steps", steps}};
        sp_ckpt_opts co = {NULL, kv, 2, NULL};
        snprintf(path, sizeof path, "%s/optim_%d_final.safetensors", dir, k);
        if (sp_save(path, ps, o, &co) != SP_OK) goto fail;
        printf("spool: wrote %s (%s, %d steps)\n", path, sp_optim_kind_name(cs[k].kind), STEPS);
        sp_optim_free(o);
        sp_params_free(ps);
        sp_params_free(gs);
    }
    return 0;
fail:
    fprintf(stderr, "interop_spool: %s\n", sp_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return usage(stdout, 0);
    sp_set_threads(1);
    if (argc == 3 && !strcmp(argv[1], "save")) return save_all(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "check")) return check(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "optim")) return optim_all(argv[2]);
    return usage(stderr, 2);
}
