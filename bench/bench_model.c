/* SPDX-License-Identifier: MIT */
/* bench_model.c - the benchmark's model: the peer's char-LM built from spool's own layers and
 * optimizer, exactly as a user would write it.
 *
 * [sp_embed with --embedding] -> sp_rnn (a stack of RNN-tanh / GRU / LSTM / minGRU / minLSTM cells, optionally
 * bidirectional, PyTorch parameter names, layouts and initialisation; row lengths with --varlen)
 * -> sp_linear head -> sp_softmax_xent (padding targets are -1: mean over real positions); then sp_backward,
 * sp_clip_grad_norm and sp_optim_step with Adam. Parameter count matches torch.nn's.
 */
#include "bench_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const bench_model_name = "spool layers: sp_rnn + sp_linear";
const char *const bench_optim_name = "spool sp_clip_grad_norm + sp_optim Adam";

struct bench_model_impl {
    sp_embed emb;
    sp_rnn rnn;
    sp_linear head;
    sp_optim *opt;
};

static sp_cell_kind cell_kind(const char *cell)
{
    if (!strcmp(cell, "rnn")) return SP_CELL_RNN_TANH;
    if (!strcmp(cell, "gru")) return SP_CELL_GRU_RESET_AFTER_MATMUL; /* nn.GRU's form */
    if (!strcmp(cell, "mingru")) return SP_CELL_MINGRU;             /* bench/peer_min.py's */
    if (!strcmp(cell, "minlstm")) return SP_CELL_MINLSTM;
    return SP_CELL_LSTM;
}

int model_build(bench_model *m, const bench_cfg *c, sp_rng *rng)
{
    memset(m, 0, sizeof *m);
    if (c->L > SP_RNN_MAX_LAYERS) {
        fprintf(stderr, "spool-bench: --layers %d exceeds spool's %d\n", c->L, SP_RNN_MAX_LAYERS);
        return 1;
    }
    m->ps = sp_params_new();
    bench_model_impl *im = m->impl = calloc(1, sizeof *im);
    if (!m->ps || !im) {
        fprintf(stderr, "spool-bench: out of memory building the model\n");
        return 1;
    }
    if ((c->E && sp_embed_init(&im->emb, m->ps, "emb", c->V, c->E, rng) != SP_OK) ||
        sp_rnn_init(&im->rnn, m->ps, "rnn", cell_kind(c->cell), c->E ? c->E : c->V, c->H, c->L, c->bidir, NULL, rng) != SP_OK ||
        sp_linear_init(&im->head, m->ps, "head", sp_rnn_out_size(&im->rnn), c->V, 1, rng) != SP_OK) {
        fprintf(stderr, "spool-bench: building the model: %s\n", sp_last_error());
        return 1;
    }
    sp_optim_config oc = sp_optim_defaults(SP_ADAM);
    oc.lr = c->lr;
    if (!(im->opt = sp_optim_new(m->ps, &oc))) {
        fprintf(stderr, "spool-bench: making the optimizer: %s\n", sp_last_error());
        return 1;
    }
    return 0;
}

int model_step(bench_model *m, const bench_cfg *c, sp_tape *tp, const bench_batch *bt, double *loss)
{
    bench_model_impl *im = m->impl;
    const int TB = c->T * c->B, V = c->V;
    const int *target = bt->target;
    sp_tape_reset(tp);
    sp_tensor *x;
    if (c->E) {
        x = sp_embed_forward(tp, &im->emb, bt->ids, TB);
    } else if ((x = sp_const(tp, TB, V))) {
        for (size_t k = 0; k < (size_t)TB * V; k++) x->data[k] = (sp_real)bt->onehot[k];
    }
    sp_rnn_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.train = !c->fwd_only;
    ro.lengths = bt->lengths;
    sp_rnn_out out;
    memset(&out, 0, sizeof out);
    sp_tensor *l = NULL;
    if (sp_rnn_run(tp, &im->rnn, x, c->T, c->B, &ro, &out) == SP_OK)
        l = sp_softmax_xent(tp, sp_linear_forward(tp, &im->head, out.out), target, NULL);
    if (!l) {
        fprintf(stderr, "spool-bench: forward failed: %s\n", sp_tape_errmsg(tp));
        return 1;
    }
    *loss = l->data[0];
    if (c->fwd_only) return 0;
    sp_params_zero_grad(m->ps);
    if (sp_backward(tp, l) != SP_OK) {
        fprintf(stderr, "spool-bench: backward failed: %s\n", sp_tape_errmsg(tp));
        return 1;
    }
    double norm;
    if (sp_clip_grad_norm(m->ps, c->clip, &norm) != SP_OK || sp_optim_step(im->opt, c->lr) != SP_OK) {
        fprintf(stderr, "spool-bench: clip/optimizer step failed: %s\n", sp_last_error());
        return 1;
    }
    return 0;
}

void model_free(bench_model *m)
{
    if (m->impl) sp_optim_free(m->impl->opt);
    free(m->impl);
    sp_params_free(m->ps);
    memset(m, 0, sizeof *m);
}
