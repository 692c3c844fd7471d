/* SPDX-License-Identifier: MIT */
/* bench_model.h - the benchmark's model and its training step, kept apart from the timing and
 * reporting code in spool_bench.c so the step is easy to read on its own (and to profile). */
#ifndef SPOOL_BENCH_MODEL_H
#define SPOOL_BENCH_MODEL_H

#include "spool.h"

typedef struct {
    const char *cell;          /* "rnn", "gru", "lstm" */
    int H, L, B, T, V, threads, steps, warmup, bidir, fwd_only;
    int E, varlen;             /* --embedding E (0: one-hot input), --varlen */
    unsigned long seed;
    double target_seconds, lr, clip;
    const char *dump_dir;      /* --dump: write parameters before/after one step, then stop */
} bench_cfg;

typedef struct bench_model_impl bench_model_impl;

typedef struct {
    sp_params *ps;
    bench_model_impl *impl;
} bench_model;

extern const char *const bench_model_name;   /* how the recurrent layers are built */
extern const char *const bench_optim_name;   /* whose Adam and clipping run */

/* 0 on success; on failure prints why to stderr and returns nonzero. */
int model_build(bench_model *m, const bench_cfg *c, sp_rng *rng);
/* One batch: inputs as a [T*B, V] one-hot matrix, or (--embedding) token ids [T*B]; targets
 * [T*B] (-1 at padded positions); lengths [B] with --varlen, else NULL. */
typedef struct {
    const float *onehot;
    const int *ids, *target, *lengths;
} bench_batch;

/* One step: forward, loss (mean over real positions), and unless c->fwd_only backward, clip and
 * Adam. *loss receives the loss. Nonzero on failure (printed). */
int model_step(bench_model *m, const bench_cfg *c, sp_tape *tape, const bench_batch *batch, double *loss);
void model_free(bench_model *m);

#endif
