/* SPDX-License-Identifier: MIT */
/* wordlm_lm.h - the model of spool-wordlm: word embedding -> one recurrent layer -> linear head
 * over the vocabulary, with its loss, held-out perplexity, per-word scoring of a sentence and
 * sampling. Separate from the command line so the tests can evaluate a hand-set model. */
#ifndef SPOOL_EXAMPLES_WORDLM_LM_H
#define SPOOL_EXAMPLES_WORDLM_LM_H

#include "spool.h"
#include "spool/layers.h"
#include "wordlm_data.h"

typedef struct {
    int V, E, H;
    double dropout;        /* on the embeddings and on the recurrent outputs, training only */
    sp_cell_kind kind;
    sp_params *ps;
    sp_embed emb;
    sp_cell cell;
    sp_linear head;
} wl_model;

/* cell: "lstm", "gru", "rnn", "mingru" or "minlstm". Parameters "emb.weight", "rnn.*_l0" (PyTorch names), "head.*".
 * 0 or -1 (sp_last_error). */
int wl_model_init(wl_model *m, int V, int E, int H, const char *cell, double dropout, sp_rng *rng);
void wl_model_free(wl_model *m);

/* Mean cross-entropy over the real tokens of a batch (ids/tgt as wl_batch_fill, T steps, B rows).
 * row_loss (T*B floats, may be NULL) receives each token's -log p (0 at padding). train selects
 * dropout (needs rng). NULL on error (the tape's message). */
sp_tensor *wl_model_loss(sp_tape *t, const wl_model *m, const int *ids, const int *tgt, int T, int B,
                         float *row_loss, int train, sp_rng *rng);

/* Sum of -log p over every token (words and the closing <eos>) of every sentence of c, and
 * their count, in batches of B. 0 or -1 (message in the tape). */
int wl_eval(sp_tape *t, const wl_model *m, const wl_corpus *c, int B, double *nll, long *n);

/* logp[0..L]: the natural log of P(w_k | w_<k) for the L words of one sentence and of the final
 * <eos>; their sum is log P(sentence). 0 or -1. */
int wl_score(sp_tape *t, const wl_model *m, const int *ids, int L, double *logp);

/* Sample one sentence word by word from <eos> until <eos> or maxlen words, at temperature temp
 * (> 0; < 1 sharper). <unk> is never drawn unless allow_unk. Returns the number of words written
 * to out, or -1. */
int wl_sample(sp_tape *t, const wl_model *m, sp_rng *rng, double temp, int allow_unk, int maxlen, int *out);

#endif
