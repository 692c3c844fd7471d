/* SPDX-License-Identifier: MIT */
/* charlm.h - shared declarations of spool-charlm, the character-level language model example:
 * text (UTF-8 decoding, vocabulary, data sets, batches), the model (embedding, stacked cells,
 * linear head), options, error messages and the plot (progress lines, the clock and the log file:
 * ../common/progress.h). One header because the program is one program split into files only to
 * keep each file readable. */
#ifndef CHARLM_H
#define CHARLM_H

#include "spool.h"
#include "../common/progress.h"

#include <stdint.h>
#include <stdio.h>

/* ------------------------------------------------------------------ text */

/* Decodes UTF-8 into code points. Returns the count, or -1 with a message in err naming the
 * byte offset of the first invalid sequence. *out is malloc'ed (free it). */
long cl_utf8_decode(const unsigned char *s, size_t n, uint32_t **out, char *err, size_t errn);
/* Appends the UTF-8 encoding of cp to buf (at least 5 bytes free); returns bytes written. */
int cl_utf8_encode(uint32_t cp, char *buf);
/* A printable form of a code point for messages and tables: 'a', '\n', ' ', U+00E9 'é'. */
const char *cl_cp_show(uint32_t cp, char *buf, size_t n);

/* Reads a whole file (common/text.c's ex_read_bytes, at most CL_MAX_FILE bytes); NULL with
 * message in err. */
unsigned char *cl_read_file(const char *path, size_t *len, char *err, size_t errn);

#define CL_BOUNDARY 0xFFFFFFFFu /* the start/end token of line-per-example data */

typedef struct {
    int V;
    uint32_t *cp; /* sorted; in lines mode cp[0] is CL_BOUNDARY */
} cl_vocab;

/* Builds the vocabulary of a decoded training text. lines != 0: '\n' separates examples (it is
 * not a symbol; the boundary token takes id 0). */
int cl_vocab_build(cl_vocab *v, const uint32_t *text, long n, int lines);
int cl_vocab_id(const cl_vocab *v, uint32_t cp); /* -1 if absent */
void cl_vocab_free(cl_vocab *v);
/* "-1,97,98" form for the checkpoint's metadata, and back. */
char *cl_vocab_to_string(const cl_vocab *v);
int cl_vocab_from_string(cl_vocab *v, const char *s, char *err, size_t errn);

/* A data split as token ids. lines mode: n_seq sequences, seq i is ids[start[i] .. start[i+1]).
 * stream mode: one sequence of n ids. */
typedef struct {
    int lines;
    int *ids;
    long n;
    long *start;
    int n_seq;
    int max_len;
} cl_data;

/* Text -> ids; a character missing from the vocabulary is an error naming it and its position.
 * lines mode drops empty lines and a trailing '\r'. what names the split in messages. */
int cl_data_make(cl_data *d, const cl_vocab *v, const uint32_t *text, long n, int lines,
                 const char *what, char *err, size_t errn);
void cl_data_free(cl_data *d);

/* Batches, time-major: row t*B + b. in/tgt have T*B entries; -1 marks padding. */
typedef struct {
    int T, B;
    int *in, *tgt;
    long predicted; /* targets that are not padding */
} cl_batch;

/* lines: B sequences by index idx[0..B-1], each as [BOS c1..cn] -> [c1..cn EOS]. */
void cl_batch_lines(cl_batch *b, const cl_data *d, const int *idx, int B);
/* stream: B tracks of length L = n / B; chunk k of each track covers positions
 * [k*T, k*T + T) -> shifted by one. Chunks per epoch: (L - 1) / T. */
long cl_stream_chunks(const cl_data *d, int B, int T);
void cl_batch_stream(cl_batch *b, const cl_data *d, int B, int T, long chunk);
/* The same from position pos of every track (pos + T < L): the tail of a split. */
void cl_batch_stream_at(cl_batch *b, const cl_data *d, int B, int T, long pos);
void cl_batch_free(cl_batch *b);

/* ----------------------------------------------------------------- model */

/* Embedding -> stack of recurrent layers (spool's layers API) -> dropout -> linear head. */
typedef struct {
    char cell[24];     /* see cl_cell_list() */
    int V, E, H, P, L; /* vocab, embedding, hidden, projection (lstmp; else 0), layers */
    double dropout;    /* between layers and before the head */
    int orthogonal, forget_bias_one;
    double zoneout_h, zoneout_c, recurrent_dropout, candidate_dropout; /* sp_cell_noise of every layer */
} cl_model_cfg;

typedef struct {
    cl_model_cfg cfg;
    sp_embed emb;
    sp_rnn rnn;
    sp_linear head;
} cl_model;

/* Creates the parameters in ps and initialises them from rng. -1 with the message in err. */
int cl_model_init(cl_model *m, const cl_model_cfg *cfg, sp_params *ps, sp_rng *rng, char *err, size_t errn);
/* Forward over a [T*B] batch of input ids: logits [T*B, V]. carry (may be NULL = zero state)
 * holds the initial state and receives the final one (plain numbers: truncated BPTT). */
sp_tensor *cl_model_forward(cl_model *m, sp_tape *t, const int *in, int T, int B, sp_carry *carry,
                            int train, sp_rng *rng);
/* The batch's training loss (mean cross-entropy over its `predicted` real targets). segment > 0:
 * the chunk runs in pieces of `segment` steps on `scratch` whose activations are dropped and
 * recomputed in backward (sp_segment): same loss and gradients to rounding, far less memory. */
sp_tensor *cl_model_loss(cl_model *m, sp_tape *t, sp_tape *scratch, const int *in, const int *tgt, int T, int B,
                         long predicted, sp_carry *carry, int train, sp_rng *rng, int segment);
/* Streaming inference with batch 1 (sp_stream): one character in, the logits of the next out
 * (valid until the next step); NULL with the message in err. */
sp_stream *cl_model_stream_new(const cl_model *m);
const sp_real *cl_model_stream_step(cl_model *m, sp_stream *s, int id, char *err, size_t errn);
int cl_cell_known(const char *name);
const char *cl_cell_list(void);

/* --------------------------------------------------------------- options */

#define CL_STR 512
/* Largest step count read from a checkpoint (step x batch stays far inside a long). */
#define CL_MAX_STEP (1L << 40)
/* Largest text file read (--data, --prime-file): /dev/zero or a wrong path must not eat memory. */
#define CL_MAX_FILE ((size_t)1 << 28)
typedef struct {
    /* files and data */
    char data[CL_STR], valid[CL_STR], mode[16], checkpoint[CL_STR], log[CL_STR], plot[CL_STR], dot[CL_STR];
    /* model */
    char cell[24];
    int hidden, layers, embed, proj, orthogonal, forget_bias;
    double dropout, zoneout_h, zoneout_c, recurrent_dropout, candidate_dropout;
    /* training */
    int seq, batch, segment;
    char optimizer[16], lr_schedule[16];
    double lr, beta1, beta2, eps, momentum, weight_decay, clip, min_lr, gamma;
    int warmup, step_size;
    long steps, stop_after;
    double epochs;
    long seed;
    double dist_timeout;
    int threads, eval_every, checkpoint_every, print_every, resume, progress;
    /* sampling, scoring, evaluation */
    double temperature;
    int top_k, max_len, count, eval_batch, eval_seq;
    char prime[CL_STR], prime_file[CL_STR], state[16], split[16];
    /* export; train --init-from */
    char onnx[CL_STR], init_from[CL_STR];
} cl_opts;

enum { CL_TRAIN = 1, CL_SAMPLE = 2, CL_EVAL = 4, CL_SCORE = 8, CL_PLOT = 16, CL_EXPORT = 32 };

/* Parses the command line into o (defaults first) with the shared option layer: *cmd is the
 * command's CL_* bit (CL_PLOT for plot), positional arguments go to pos[0..*npos-1] (at most 2).
 * Returns -1 to go on, or the exit status to return now (--help, --version, --info, errors). */
int cl_opts_parse(cl_opts *o, int argc, char **argv, int *cmd, char **pos, int *npos);
/* Prints "# name = value" for every option of cmd. */
void cl_opts_echo(const cl_opts *o, int cmd, FILE *f);
/* "key=value\n" lines of every option stored in checkpoints (model, data, training). */
char *cl_opts_serialise(const cl_opts *o);
/* Takes the stored options into o, except those given on the command line; a stored model
 * option given on the command line with another value is an error (-1, message in err). */
int cl_opts_merge_stored(cl_opts *o, const char *stored, int model_only, char *err, size_t errn);
int cl_opts_given(const char *name);

/* ------------------------------------------------------------------ ui */

/* Progress lines, the clock and the CSV log: ../common/progress.h (ex_progress, ex_now). */

/* Draws the loss curves of a CSV log into an SVG with gnuplot; 0 if drawn, 1 if gnuplot is not
 * installed (a note is printed), -1 on error. */
int cl_plot(const char *csv, const char *svg, const char *title);

/* --------------------------------------------- data, checkpoints, commands (data.c, ...) */

/* Prints "spool-charlm: <message>" on stderr; returns 1 (for `return cl_fail(...)`). */
int cl_fail(const char *fmt, ...) SP_PRINTF(1, 2);

typedef struct {
    cl_vocab vocab;
    cl_data train, valid;
    int lines;
    char train_path[CL_STR + 64], valid_path[CL_STR + 96];
} cl_corpus;

/* Loads the training and held-out text of o. vocab == NULL: build the vocabulary from the
 * training file; else use it (from a checkpoint). need_train = 0 skips the training ids. */
int cl_load_corpus(const cl_opts *o, cl_corpus *c, const cl_vocab *vocab, int need_train);
void cl_corpus_free(cl_corpus *c);
cl_model_cfg cl_model_cfg_of(const cl_opts *o, int V);
/* Where the data stands, stored in checkpoints so a run resumes with another number of ranks:
 * lines mode: examples consumed so far (of the endless sequence of per-epoch permutations);
 * stream mode: the chunk the next step reads, chunks per epoch, ranks (tracks = ranks * batch). */
typedef struct {
    long examples, next_chunk, per_epoch;
    int ranks;
} cl_pos;
/* pos (may be NULL) is stored as charlm.examples, .next_chunk, .chunks_per_epoch, .ranks. */
int cl_save_checkpoint(const char *path, const sp_params *ps, const sp_optim *opt, const cl_opts *o,
                       const cl_corpus *c, long step, const sp_carry *carry, sp_rng *rng, const cl_pos *pos);
/* Reads a checkpoint's configuration into o (cl_opts_merge_stored), its vocabulary into v, its
 * mode, step and carried state (hex; malloc'ed, may be NULL). */
int cl_read_checkpoint_header(const char *path, cl_opts *o, int model_only, cl_vocab *v, int *lines,
                              long *step, char **carry_hex);
int cl_carry_from_hex(sp_carry *c, const char *s);

/* Mean held-out loss in nats per predicted character (see train.c). */
double cl_evaluate(cl_model *m, sp_tape *t, const cl_data *d, int batch, int seq, int reset, long *count);

typedef struct {
    cl_vocab vocab;
    int lines;
    sp_params *ps;
    cl_model m;
} cl_trained;

int cl_cmd_train(cl_opts *o);

/* ---------------------------------------------------- under mpirun (dist.c) */

/* This process's rank when training with more than one rank, else -1; cl_fail prefixes its
 * messages with it and ranks > 0 draw no progress. */
extern int cl_rank;
/* Joins the group if launched by mpirun (else *d = NULL, nothing changes), under a watchdog that
 * ends the process if not every rank joins within --dist-timeout (../common/dist.h); with > 1
 * rank: one thread per rank unless --threads is given, stdout silenced on ranks > 0, a SIGTERM
 * handler that says the launcher ended the job and whether a checkpoint exists. */
int cl_dist_start(sp_dist **d, cl_opts *o);
/* After a checkpoint of `step` was written (every rank calls it once rank 0 said so): the SIGTERM
 * message names it from now on. */
void cl_dist_saved(const char *path, long step);
/* Every rank has the same options, vocabulary and data sizes (else every rank fails). */
int cl_dist_check(sp_dist *d, const cl_opts *o, const cl_corpus *c);
int cl_carry_gather(sp_dist *d, const sp_carry *local, sp_carry *full);
void cl_carry_scatter(const sp_carry *full, sp_carry *local, int r);
/* Fields the checkpoint has are set; the others keep their values. */
void cl_pos_read(const char *path, cl_pos *p);
int cl_cmd_sample(cl_opts *o);
int cl_cmd_eval(cl_opts *o);
int cl_cmd_score(cl_opts *o, const char *text);
/* Writes the checkpoint's model as an ONNX file (--onnx): logits, probabilities and every
 * layer's states, the vocabulary in its metadata (docs/onnx.md). */
int cl_cmd_export(cl_opts *o);

#endif
