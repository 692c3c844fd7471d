/* SPDX-License-Identifier: MIT */
/* vanishing_data.h - the plain-C half of spool-vanishing: the "recall the first symbol" task,
 * the hidden size that gives each cell the same parameter budget, and the small statistics the
 * program reports. No tensors here, so tests/test_vanishing.c can check it on hand-made cases. */
#ifndef SPOOL_EXAMPLES_VANISHING_DATA_H
#define SPOOL_EXAMPLES_VANISHING_DATA_H

#include <stdint.h>

/* The task with gap T: a sequence of L = T + 2 steps over I = K + D + 1 one-hot symbols.
 *   step 0        one of K "key" symbols (ids 0..K-1): what must be remembered;
 *   steps 1..T    distractors drawn from D other symbols (ids K..K+D-1);
 *   step T+1      the query marker (id K+D): now answer.
 * The target at the last step is the key; only that step is scored, so the only way to do
 * better than chance (1/K) is to carry the key across all T distractors. */
typedef struct {
    int T, K, D;
} vn_task;

static inline int vn_steps(const vn_task *k) { return k->T + 2; }
static inline int vn_inputs(const vn_task *k) { return k->K + k->D + 1; }

/* B sequences into sym[L*B] (time-major: step s of row b is sym[s*B + b]) and key[B], from a
 * splitmix64 state (so a batch depends only on the state it is given). */
void vn_make_batch(const vn_task *k, int B, uint64_t *state, int *sym, int *key);

/* Parameters of one layer of cell kind over I inputs with H units, plus a linear head H -> K:
 * gates * (H*I + H*H + 2*H) + H*K + K, with gates 1 (RNN), 3 (GRU), 4 (LSTM). */
long vn_param_count(int gates, int I, int H, int K);
/* The largest H whose count is at most budget (at least 1). */
int vn_hidden_for_budget(int gates, int I, int K, long budget);

/* Fraction of argmax(logits[b]) == key[b] over B rows of K logits (row-major, stride K). */
double vn_accuracy(const float *logits, const int *key, int B, int K);

/* Euclidean norm of n numbers, accumulated in double. */
double vn_norm(const float *x, long n);

#endif
