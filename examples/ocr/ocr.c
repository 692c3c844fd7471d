/* SPDX-License-Identifier: MIT */
/* ocr.c - spool-ocr: printed text-line recognition, the long-input, short-output shape of a
 * recurrent network trained without alignments. A line image, scaled to a fixed height, is read
 * column by column (each frame: --stack neighbouring columns of pixels, so a 40-character line
 * is a few hundred frames) by a bidirectional LSTM stack; a linear layer scores, at every frame,
 * the 95 printable ASCII characters and the CTC blank, and the CTC loss (sp_ctc_loss) sums over
 * every alignment of the line's text to the frames. Decoding: the best path (sp_ctc_greedy), or a
 * prefix beam search (sp_ctc_beam_search) with a spool-charlm model fused in (--lm, ocr_lm.c).
 *
 * Training data are made at every step (ocr_render.c): lines of the bundled corpora drawn by
 * FreeType in one of the training fonts at a random size, rotation, blur, contrast and noise, each
 * line standardised (ocr_standardize) before the model reads it. The test set (`render`) uses
 * other fonts and sentences that training never sees (ocr_data.c's split), the validation set
 * (`render --split val`) other sentences in the training fonts.
 *
 *   spool-ocr train [options]                 train; the model (and its optimizer state, for
 *                                             --resume) in --out every --checkpoint-every steps
 *   spool-ocr render --out-dir DIR            the fixed test set: PGM images + clean.tsv, degraded.tsv
 *                                             (--split val: validation lines, for tuning)
 *   spool-ocr eval --model M INDEX.tsv...     character and word error rates per index
 *   spool-ocr recognize --model M IMAGE...    the text of each image (PGM or PNG)
 *   spool-ocr bench [options]                 training-step timing on rendered batches (docs/ocr.md)
 *   spool-ocr text --split S --out FILE       the sentences of one split as text, one a line: the
 *                                             training text of a --lm that never saw a test line
 */
#include "spool.h"
#include "spool/layers.h"
#include "spool/optim.h"

#include "common/atomic.h"
#include "common/opts.h"
#include "common/progress.h"
#include "common/text.h"
#include "ocr_data.h"
#include "ocr_lm.h"
#include "ocr_render.h"

#define OCR_MAX_FONTS 32 /* eval --by-font: fonts told apart (lines of any more count in the total only) */

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *prog = "spool-ocr";

/* ================================================================================== model */

typedef struct {
    int height, stack, hidden, layers;
} ocr_config;

typedef struct {
    ocr_config cfg;
    sp_params *ps;
    sp_rnn rnn;
    sp_linear out;
} ocr_model;

static int frame_size(const ocr_config *c) { return c->height * c->stack; }

static int model_build(ocr_model *m, sp_rng *rng)
{
    m->ps = sp_params_new();
    if (!m->ps) return -1;
    if (sp_rnn_init(&m->rnn, m->ps, "lstm", SP_CELL_LSTM, frame_size(&m->cfg), m->cfg.hidden, m->cfg.layers, 1, NULL,
                    rng) ||
        sp_linear_init(&m->out, m->ps, "out", sp_rnn_out_size(&m->rnn), OCR_CLASSES, 1, rng))
        return -1;
    return 0;
}

static void model_free(ocr_model *m)
{
    sp_params_free(m->ps);
    memset(m, 0, sizeof *m);
}

static int model_save(const ocr_model *m, const char *path, const sp_optim *opt, sp_rng *rng, long step)
{
    char cfg[128], st[32];
    snprintf(cfg, sizeof cfg, "height=%d stack=%d hidden=%d layers=%d", m->cfg.height, m->cfg.stack, m->cfg.hidden,
             m->cfg.layers);
    snprintf(st, sizeof st, "%ld", step);
    sp_kv meta[] = {{"ocr.config", cfg}, {"ocr.step", st}};
    sp_ckpt_opts o = {.meta = meta, .n_meta = 2, .rng = rng};
    if (sp_save(path, m->ps, opt, &o) != SP_OK) {
        fprintf(stderr, "%s: saving '%s': %s\n", prog, path, sp_last_error());
        return -1;
    }
    return 0;
}

/* The saved configuration rebuilt, then its weights loaded (and opt's state and rng if given). */
static int model_load(ocr_model *m, const char *path, sp_optim **opt, const sp_optim_config *oc, sp_rng *rng,
                      long *step)
{
    memset(m, 0, sizeof *m);
    sp_ckpt_info *ci = sp_ckpt_open(path);
    if (!ci) {
        fprintf(stderr, "%s: cannot open model '%s': %s\n", prog, path, sp_last_error());
        return -1;
    }
    const char *cfg = sp_ckpt_meta(ci, "ocr.config"), *st = sp_ckpt_meta(ci, "ocr.step");
    ocr_config *c = &m->cfg;
    int ok = cfg && sscanf(cfg, "height=%d stack=%d hidden=%d layers=%d", &c->height, &c->stack, &c->hidden,
                           &c->layers) == 4 && c->height >= 8 && c->height <= 256 && c->stack >= 1 && c->stack <= 8 &&
             c->hidden >= 1 && c->hidden <= 4096 && c->layers >= 1 && c->layers <= SP_RNN_MAX_LAYERS;
    if (step) *step = st ? atol(st) : 0;
    sp_ckpt_close(ci);
    if (!ok) {
        fprintf(stderr, "%s: '%s' is not a spool-ocr model (no valid ocr.config metadata)\n", prog, path);
        return -1;
    }
    sp_rng r0;
    sp_rng_seed(&r0, 0);
    if (model_build(m, &r0)) {
        fprintf(stderr, "%s: building the model of '%s': %s\n", prog, path, sp_last_error());
        model_free(m);
        return -1;
    }
    if (opt && !(*opt = sp_optim_new(m->ps, oc))) {
        fprintf(stderr, "%s: %s\n", prog, sp_last_error());
        model_free(m);
        return -1;
    }
    sp_ckpt_opts lo = {.rng = rng};
    if (sp_load(path, m->ps, opt ? *opt : NULL, &lo) != SP_OK) {
        fprintf(stderr, "%s: loading '%s': %s\n", prog, path, sp_last_error());
        if (opt) sp_optim_free(*opt), *opt = NULL;
        model_free(m);
        return -1;
    }
    return 0;
}

/* ================================================================================ batches */

/* Lines as frames in the [T*B, F] time-major layout (row t*B + b: frame t of line b), zero
 * after a line's end; labels concatenated (row b's label_len[b] classes follow row b-1's). */
typedef struct {
    int T, B, F;
    float *x;          /* [T*B*F] */
    int *len;          /* [B] frames per line */
    int *labels, *label_len, n_labels;
    size_t cap_x;
    int cap_b, cap_l;
} ocr_batch;

static void batch_free(ocr_batch *b)
{
    free(b->x), free(b->len), free(b->labels), free(b->label_len);
    memset(b, 0, sizeof *b);
}

/* Columns [W, H] of B lines (cols[i], widths w[i]; each standardised in place first,
 * ocr_standardize) into frames of `stack` columns each. */
static int batch_set(ocr_batch *b, const ocr_config *c, float *const *cols, const int *w, const char *const *text,
                     int B)
{
    int F = frame_size(c), T = 1, nl = 0;
    for (int i = 0; i < B; i++) {
        int t = (w[i] + c->stack - 1) / c->stack;
        T = t > T ? t : T;
        nl += text ? (int)strlen(text[i]) : 0;
    }
    size_t nx = (size_t)T * B * F;
    if (nx > b->cap_x) {
        float *p = realloc(b->x, sizeof(float) * nx);
        if (!p) return -1;
        b->x = p, b->cap_x = nx;
    }
    if (B > b->cap_b) {
        int *l = realloc(b->len, sizeof(int) * B);
        if (l) b->len = l;
        int *ll = l ? realloc(b->label_len, sizeof(int) * B) : NULL;
        if (ll) b->label_len = ll;
        if (!l || !ll) return -1;
        b->cap_b = B;
    }
    if (nl + 1 > b->cap_l) {
        int *p = realloc(b->labels, sizeof(int) * (nl + 1));
        if (!p) return -1;
        b->labels = p, b->cap_l = nl + 1;
    }
    b->T = T, b->B = B, b->F = F, b->n_labels = 0;
    memset(b->x, 0, sizeof(float) * nx);
    int H = c->height;
    for (int i = 0; i < B; i++) {
        b->len[i] = (w[i] + c->stack - 1) / c->stack;
        ocr_standardize(cols[i], (size_t)w[i] * H);
        for (int x = 0; x < w[i]; x++)
            memcpy(b->x + ((size_t)(x / c->stack) * B + i) * F + (size_t)(x % c->stack) * H, cols[i] + (size_t)x * H,
                   sizeof(float) * H);
        b->label_len[i] = 0;
        for (const char *p = text ? text[i] : ""; *p; p++) {
            int k = ocr_class_of((unsigned char)*p);
            if (k > 0) b->labels[b->n_labels++] = k, b->label_len[i]++;
        }
    }
    return 0;
}

/* A training batch: B random training lines, each in a random training font and style. */
static int batch_render(ocr_batch *b, const ocr_config *c, const ocr_corpus *corp, ocr_fonts *fonts, int B,
                        int degrade, sp_rng *rng, long *pixels)
{
    float **cols = calloc((size_t)B, sizeof(float *));
    int *w = malloc(sizeof(int) * B), rc = -1;
    const char **text = malloc(sizeof(char *) * B);
    char err[256];
    if (!cols || !w || !text) goto out;
    for (int i = 0; i < B; i++) {
        text[i] = corp->line[corp->train[sp_rng_below(rng, corp->n_train)]];
        int f = sp_rng_below(rng, ocr_fonts_count(fonts));
        ocr_style s;
        ocr_style_random(&s, degrade, rng);
        ocr_image im;
        if (ocr_render(fonts, f, text[i], &s, rng, &im, err, sizeof err)) {
            fprintf(stderr, "%s: rendering '%s' in %s: %s\n", prog, text[i], ocr_fonts_name(fonts, f), err);
            goto out;
        }
        if (pixels) *pixels += (long)im.w * im.h;
        cols[i] = ocr_columns(&im, c->height, &w[i]);
        ocr_image_free(&im);
        if (!cols[i]) goto out;
    }
    rc = batch_set(b, c, cols, w, text, B);
out:
    for (int i = 0; cols && i < B; i++) free(cols[i]);
    free(cols), free(w), free(text);
    if (rc) fprintf(stderr, "%s: out of memory making a batch\n", prog);
    return rc;
}

/* ================================================================================ forward */

/* Per-frame class scores [T*B, OCR_CLASSES] of a batch, on t. */
static sp_tensor *model_forward(sp_tape *t, const ocr_model *m, const ocr_batch *b)
{
    sp_tensor *x = sp_const(t, b->T * b->B, b->F);
    if (!x) return NULL;
    for (int r = 0; r < b->T * b->B; r++)
        for (int j = 0; j < b->F; j++) *sp_at(x, r, j) = (sp_real)b->x[(size_t)r * b->F + j];
    sp_rnn_opts ro = {.lengths = b->len};
    sp_rnn_out ho;
    if (sp_rnn_run(t, &m->rnn, x, b->T, b->B, &ro, &ho) != SP_OK) return NULL;
    return sp_linear_forward(t, &m->out, ho.out);
}

/* How eval and recognize decode: the best path (beam 0), or a prefix beam search, with the
 * language model's shallow fusion when lm is set. */
typedef struct {
    int beam;
    const sp_ctc_lm *lm;
    double lm_weight, lm_bonus;
} ocr_decoder;

/* The text of each line of the batch into text[i] (malloc'd). */
static int decode(const ocr_model *m, const ocr_batch *b, sp_tape *t, const ocr_decoder *d, char **text)
{
    sp_tensor *logits = model_forward(t, m, b);
    if (!logits) {
        fprintf(stderr, "%s: %s\n", prog, sp_tape_errmsg(t));
        return -1;
    }
    int *out = malloc(sizeof(int) * (size_t)b->T * b->B), *olen = malloc(sizeof(int) * b->B), rc = 0;
    sp_ctc_beam_opts bo = {.beam = d->beam, .blank = 0, .lm = d->lm, .lm_weight = d->lm_weight,
                           .insertion_bonus = d->lm_bonus};
    if (!out || !olen ||
        (d->beam > 0 ? sp_ctc_beam_search(logits, b->T, b->B, b->len, &bo, out, olen, NULL)
                     : sp_ctc_greedy(logits, b->T, b->B, b->len, 0, out, olen, NULL)) != SP_OK) {
        fprintf(stderr, "%s: decoding: %s\n", prog, out && olen ? sp_last_error() : "out of memory");
        rc = -1;
    }
    for (int i = 0; !rc && i < b->B; i++) {
        text[i] = malloc((size_t)olen[i] + 1);
        if (!text[i]) {
            rc = -1;
            break;
        }
        for (int k = 0; k < olen[i]; k++) text[i][k] = ocr_char_of(out[(size_t)i * b->T + k]);
        text[i][olen[i]] = '\0';
    }
    free(out), free(olen);
    return rc;
}

/* ================================================================================ options */

typedef struct {
    const char *data, *fonts, *out, *model, *out_dir, *lm, *save_batches, *format, *split;
    long steps;
    int resume, batch, threads, log_every, checkpoint_every, max_chars, n_lines, clean, beam, warmup, show, by_font;
    double lr, min_lr, clip, size, lm_weight, lm_bonus;
    uint64_t seed;
    ocr_config cfg;
} ocr_opts;

enum { TRAIN = 1, EVAL = 2, RECOGNIZE = 4, RENDER = 8, BENCH = 16, TEXT = 32 };
#define T ocr_opts
static const ex_opt OPTS[] = {
    EX_OPT("data", EX_STR, T, data, NULL, 0, 0, TRAIN | RENDER | BENCH | TEXT, "DIR",
           "folder of the bundled corpora (tinyshakespeare/, sentiment-uci/, sentiment-mr/; default: the bundled data)"),
    EX_OPT("fonts", EX_STR, T, fonts, "/usr/share/fonts", 0, 0, TRAIN | RENDER | BENCH, "DIR",
           "fonts folder (Debian: fonts-dejavu-core, fonts-dejavu-extra, fonts-liberation2, fonts-urw-base35)"),
    EX_OPT("out", EX_STR, T, out, NULL, 0, 0, TRAIN | TEXT, "FILE",
           "train: the model, with its optimizer state and step, written every --checkpoint-every steps and at the "
           "end (default: ocr.safetensors); text: the file of sentences (required)"),
    EX_OPT("resume", EX_FLAG, T, resume, NULL, 0, 0, TRAIN, NULL,
           "continue the run saved in --out (the same lines and styles follow as without a break)"),
    EX_OPT("model", EX_STR, T, model, "ocr.safetensors", 0, 0, EVAL | RECOGNIZE, "FILE", "the trained model"),
    EX_OPT("out-dir", EX_STR, T, out_dir, "ocr-test", 0, 0, RENDER, "DIR",
           "where render writes the test images, clean.tsv and degraded.tsv"),
    EX_OPT("lines", EX_INT, T, n_lines, "200", 1, 1000000, RENDER, "N", "test sentences per variant (clean, degraded)"),
    EX_CHOICE("format", EX_STR, T, format, "pgm", "pgm|png", RENDER, "F",
              "image files: PGM (binary P5), or PNG (when built with libpng)"),
    EX_CHOICE("split", EX_STR, T, split, "test", "test|val|train", RENDER | TEXT, "S",
              "test: test sentences in the held-out fonts; val: validation sentences (for tuning) in the training "
              "fonts; train: training sentences in the training fonts (does the model read what it learned?); "
              "text: the sentences of that split (--split must be given)"),
    EX_OPT("size", EX_DBL, T, size, "32", 8, 200, RENDER, "PX", "font size of the test lines in pixels"),
    EX_OPT("steps", EX_LONG, T, steps, "20000", 1, 1e12, TRAIN | BENCH, "N", "training steps (bench: timed steps)"),
    EX_OPT("batch", EX_INT, T, batch, "32", 1, 4096, TRAIN | EVAL | BENCH, "B", "lines per step"),
    EX_OPT("lr", EX_DBL, T, lr, "0.005", 0, 10, TRAIN | BENCH, "X", "Adam learning rate (docs/ocr.md: how it was chosen)"),
    EX_OPT("min-lr", EX_DBL, T, min_lr, "0.0001", 0, 10, TRAIN, "X",
           "the learning rate falls from --lr to X over --steps (cosine; X = --lr: constant)"),
    EX_OPT("clip", EX_DBL, T, clip, "1", 1e-6, 1e6, TRAIN | BENCH, "X", "clip the global gradient norm at X"),
    EX_OPT("height", EX_INT, T, cfg.height, "32", 8, 256, TRAIN | BENCH, "PX", "lines are scaled to this height"),
    EX_OPT("stack", EX_INT, T, cfg.stack, "2", 1, 8, TRAIN | BENCH, "K",
           "columns per frame (2: a 40-character line is about 250 frames)"),
    EX_OPT("hidden", EX_INT, T, cfg.hidden, "256", 1, 4096, TRAIN | BENCH, "H", "LSTM size per direction"),
    EX_OPT("layers", EX_INT, T, cfg.layers, "2", 1, SP_RNN_MAX_LAYERS, TRAIN | BENCH, "L", "BiLSTM layers"),
    EX_OPT("max-chars", EX_INT, T, max_chars, "40", 4, 200, TRAIN | RENDER | BENCH | TEXT, "N",
           "corpus sentences are cut into lines of at most N characters"),
    EX_OPT("clean", EX_FLAG, T, clean, NULL, 0, 0, TRAIN, NULL, "train on clean lines only (no rotation, blur, noise)"),
    EX_OPT("lm", EX_STR, T, lm, NULL, 0, 0, EVAL | RECOGNIZE, "FILE",
           "a spool-charlm checkpoint (one-directional) fused into a beam search (shallow fusion)"),
    EX_OPT("beam", EX_INT, T, beam, "-1", -1, SP_CTC_MAX_BEAM, EVAL | RECOGNIZE, "N",
           "prefix beam search of width N; 0: the best path; -1: 16 with --lm, else 0"),
    EX_OPT("lm-weight", EX_DBL, T, lm_weight, "0.5", 0, 100, EVAL | RECOGNIZE, "A",
           "weight of the language model's log-probability (--lm; chosen on validation lines, docs/ocr.md)"),
    EX_OPT("lm-bonus", EX_DBL, T, lm_bonus, "2", -100, 100, EVAL | RECOGNIZE, "B",
           "added per character to a prefix's score (--lm: offsets the model's cost of each character; chosen on "
           "validation lines, docs/ocr.md)"),
    EX_OPT("show", EX_INT, T, show, "5", 0, 1 << 30, EVAL, "N", "print the first N misread lines"),
    EX_OPT("by-font", EX_FLAG, T, by_font, NULL, 0, 0, EVAL, NULL,
           "also the error rates per font (the part of an image's name after its number, as render names them)"),
    EX_OPT("warmup", EX_INT, T, warmup, "3", 0, 1000, BENCH, "N", "untimed steps first"),
    EX_OPT("save-batches", EX_STR, T, save_batches, NULL, 0, 0, BENCH, "FILE",
           "also write the timed batches for bench/peer_ocr.py --batches (the same lines in PyTorch)"),
    EX_OPT("checkpoint-every", EX_INT, T, checkpoint_every, "500", 0, 1 << 30, TRAIN, "N",
           "write --out every N steps (0: at the end only)"),
    EX_OPT("seed", EX_U64, T, seed, "1", 0, 0, TRAIN | RENDER | BENCH, "S", "random seed"),
    EX_OPT_THREADS(T, threads, 0),
    EX_OPT_PRECISION(TRAIN | EVAL | RECOGNIZE | BENCH),
    EX_OPT("log-every", EX_INT, T, log_every, "20", 0, 1 << 30, TRAIN, "N",
           "a progress line every N steps (redrawn in place on a terminal; 0 = none)"),
};
#undef T
static const char *const CMDS[] = {"train", "eval", "recognize", "render", "bench", "text", NULL};

static void usage_more(FILE *f)
{
    char tr[512], te[256];
    ocr_fonts_list(OCR_TRAIN, tr, sizeof tr);
    ocr_fonts_list(OCR_TEST, te, sizeof te);
    fprintf(f, "\nTraining fonts: %s.\nHeld-out fonts (render's test set only): %s.\n", tr, te);
    ex_usage_data(f);
}

static const ex_cli CLI = {"spool-ocr",
                           "Usage: spool-ocr train [options]             train a BiLSTM-CTC line recogniser on rendered lines\n"
                           "       spool-ocr render [--out-dir DIR]      write the held-out test set (PGM + TSV index; --split val)\n"
                           "       spool-ocr eval [--model M] INDEX.tsv...  character and word error rates\n"
                           "       spool-ocr recognize [--model M] IMAGE...  the text of each PGM/PNG line image\n"
                           "       spool-ocr bench [options]             time training steps on rendered batches\n"
                           "       spool-ocr text --split S --out FILE   the sentences of split S, one a line (a --lm's text)\n",
                           usage_more, CMDS, NULL, OPTS, sizeof OPTS / sizeof OPTS[0], EX_MAX_POS, "FILE"};

static ex_args cli_args;

static int load_corpus(const ocr_opts *o, ocr_corpus *c)
{
    char buf[2048], err[512];
    const char *dir = o->data ? o->data : ex_data_dir();
    if (!dir || !*dir) {
        fprintf(stderr, "%s: no --data DIR given and %s\n", prog, ex_data_hint());
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", dir);
    if (ocr_corpus_load(c, buf, o->max_chars, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return -1;
    }
    return 0;
}

static ocr_fonts *open_fonts(const ocr_opts *o, int set)
{
    char err[512], *missing;
    ocr_fonts *f = ocr_fonts_open(o->fonts, set, &missing, err, sizeof err);
    if (!f) fprintf(stderr, "%s: %s\n", prog, err);
    else if (missing) fprintf(stderr, "%s: warning: fonts not found, left out: %s\n", prog, missing);
    free(missing);
    return f;
}

/* ================================================================================== train */

static int train_step(sp_tape *t, ocr_model *m, sp_optim *opt, const ocr_batch *b, const ocr_opts *o, double lr,
                      double *loss, double *norm, double *ctc_s)
{
    sp_tape_reset(t);
    sp_params_zero_grad(m->ps);
    sp_tensor *logits = model_forward(t, m, b);
    /* zero_infinity: a line squeezed into fewer frames than its characters need (a tiny font at
     * --stack 2) adds nothing rather than stop the run */
    sp_ctc_opts co = {.blank = 0, .reduction = SP_CTC_MEAN, .zero_infinity = 1};
    double c0 = ex_now();
    sp_tensor *l = logits ? sp_ctc_loss(t, logits, b->T, b->B, b->len, b->labels, b->label_len, &co) : NULL;
    if (ctc_s) *ctc_s += ex_now() - c0;
    if (sp_backward(t, l) != SP_OK) {
        fprintf(stderr, "%s: %s\n", prog, sp_tape_errmsg(t));
        return -1;
    }
    if (sp_clip_grad_norm(m->ps, o->clip, norm) != SP_OK || sp_optim_step(opt, lr) != SP_OK) {
        fprintf(stderr, "%s: %s\n", prog, sp_last_error());
        return -1;
    }
    *loss = l->data[0];
    return 0;
}

static int do_train(ocr_opts *o)
{
    ocr_corpus corp;
    if (load_corpus(o, &corp)) return 1;
    ocr_fonts *fonts = open_fonts(o, OCR_TRAIN);
    if (!fonts) {
        ocr_corpus_free(&corp);
        return 1;
    }
    ocr_model m = {0};
    sp_optim *opt = NULL;
    sp_optim_config oc = sp_optim_defaults(SP_ADAM);
    sp_rng rng;
    sp_rng_seed(&rng, o->seed);
    long step = 0;
    int rc = 1;
    sp_tape *t = NULL;
    ocr_batch b = {0};
    if (o->resume) {
        if (model_load(&m, o->out, &opt, &oc, &rng, &step)) goto out;
        static const char *const arch[] = {"height", "stack", "hidden", "layers", NULL};
        ocr_opts st = *o;
        st.cfg = m.cfg;
        char why[256];
        if (ex_given_differs(&CLI, &cli_args, o, &st, arch, why, sizeof why)) {
            fprintf(stderr, "%s: resuming from '%s': %s\n", prog, o->out, why);
            goto out;
        }
        if (step >= o->steps) {
            fprintf(stderr, "%s: '%s' has done %ld of %ld steps: give a larger --steps to train on\n", prog, o->out,
                    step, o->steps);
            goto out;
        }
        printf("resumed from %s at step %ld\n", o->out, step);
    } else {
        m.cfg = o->cfg;
        if (model_build(&m, &rng) || !(opt = sp_optim_new(m.ps, &oc))) {
            fprintf(stderr, "%s: building the model: %s\n", prog, sp_last_error());
            goto out;
        }
    }
    printf("data: %d training lines, %d validation and %d test lines held out; %d training fonts\n", corp.n_train,
           corp.n_val, corp.n_test, ocr_fonts_count(fonts));
    printf("model: height %d, %d column(s) per frame, BiLSTM %d x %d layer(s), %d classes, %zu parameters\n",
           m.cfg.height, m.cfg.stack, m.cfg.hidden, m.cfg.layers, OCR_CLASSES, m.ps->numel);
    /* cosine over the whole run (warm-up 0: clipping at 1 bounds the first updates); on --resume
     * the saved step continues the same curve as long as --steps is the same */
    sp_schedule sched = {.kind = SP_SCHED_COSINE, .base_lr = o->lr, .total = o->steps > INT_MAX ? INT_MAX : (int)o->steps, .min_lr = o->min_lr};
    if (o->min_lr > o->lr) {
        fprintf(stderr, "%s: --min-lr %g is above --lr %g: the learning rate only falls\n", prog, o->min_lr, o->lr);
        goto out;
    }
    t = sp_tape_new();
    if (!t) goto out;
    ex_progress pg;
    ex_progress_init(&pg, o->steps, o->log_every, 0);
    pg.first = step;
    double t0 = ex_now(), ema = 0, ema_w = 0;
    long lines = 0;
    for (step = step + 1; step <= o->steps; step++) {
        double loss, norm;
        if (batch_render(&b, &m.cfg, &corp, fonts, o->batch, !o->clean, &rng, NULL) ||
            train_step(t, &m, opt, &b, o, sp_schedule_lr(&sched, step - 1), &loss, &norm, NULL))
            goto out;
        lines += o->batch;
        ema = 0.98 * ema + 0.02 * loss, ema_w = 0.98 * ema_w + 0.02;
        if (o->log_every > 0)
            ex_progress_step(&pg, step, "loss %.4f (mean %.4f)  grad-norm %.2f  lr %.2g  %.1f lines/s", loss,
                             ema / ema_w, norm, sp_schedule_lr(&sched, step - 1), lines / (ex_now() - t0));
        if ((o->checkpoint_every > 0 && step % o->checkpoint_every == 0) || step == o->steps)
            if (model_save(&m, o->out, opt, &rng, step)) goto out;
    }
    ex_progress_done(&pg);
    printf("result: %ld steps, last loss %.4f (running mean), %.1f s; model in %s\n", o->steps, ema / ema_w,
           ex_now() - t0, o->out);
    rc = 0;
out:
    batch_free(&b);
    sp_tape_free(t);
    sp_optim_free(opt);
    model_free(&m);
    ocr_fonts_free(fonts);
    ocr_corpus_free(&corp);
    return rc;
}

/* ============================================================================ eval, recognize */

/* Reads the images paths[0..n) and recognises them, batch at a time, into text[i]. A file that
 * cannot be read is an error (message naming it). */
static int recognize_files(const ocr_model *m, const ocr_decoder *d, char *const *paths, int n, int batch, char **text)
{
    sp_tape *t = sp_tape_new();
    ocr_batch b = {0};
    float **cols = calloc((size_t)batch, sizeof(float *));
    int *w = malloc(sizeof(int) * batch), rc = -1;
    char err[1200];
    if (!t || !cols || !w) goto out;
    for (int s0 = 0; s0 < n; s0 += batch) {
        int B = n - s0 < batch ? n - s0 : batch;
        for (int i = 0; i < B; i++) {
            ocr_image im;
            if (ocr_image_read(paths[s0 + i], &im, err, sizeof err)) {
                fprintf(stderr, "%s: %s\n", prog, err);
                goto out;
            }
            cols[i] = ocr_columns(&im, m->cfg.height, &w[i]);
            ocr_image_free(&im);
            if (!cols[i]) goto out;
        }
        sp_tape_reset(t);
        int bad = batch_set(&b, &m->cfg, cols, w, NULL, B) || decode(m, &b, t, d, text + s0);
        for (int i = 0; i < B; i++) free(cols[i]), cols[i] = NULL;
        if (bad) goto out;
    }
    rc = 0;
out:
    for (int i = 0; cols && i < batch; i++) free(cols[i]);
    free(cols), free(w);
    batch_free(&b);
    sp_tape_free(t);
    return rc;
}

/* The decoder of --beam/--lm into d (*lm holds the loaded model: ocr_lm_free it). The bonus
 * offsets the language model's cost of a character, so it is 0 without one: alone it only buys
 * insertions (a beam search without --lm given --lm-bonus 1 read "much" as "rmuch"). */
static int decoder_open(const ocr_opts *o, ocr_decoder *d, ocr_lm **lm)
{
    *d = (ocr_decoder){.beam = o->beam >= 0 ? o->beam : o->lm ? SP_CTC_DEFAULT_BEAM : 0, .lm_weight = o->lm_weight,
                       .lm_bonus = o->lm ? o->lm_bonus : 0};
    *lm = NULL;
    if (!o->lm) return 0;
    if (d->beam == 0) {
        fprintf(stderr, "%s: --lm needs a beam search: drop --beam 0 or give a width\n", prog);
        return -1;
    }
    if (!(*lm = ocr_lm_load(o->lm, d->beam))) return -1;
    d->lm = ocr_lm_get(*lm);
    return 0;
}

/* What eval and recognize read with: --model, and the decoder --beam and --lm ask for. */
static int reader_open(const ocr_opts *o, ocr_model *m, ocr_decoder *d, ocr_lm **lm)
{
    if (model_load(m, o->model, NULL, NULL, NULL, NULL)) return -1;
    if (decoder_open(o, d, lm)) {
        model_free(m);
        return -1;
    }
    return 0;
}

static int do_recognize(const ocr_opts *o, char *const *paths, int n)
{
    ocr_model m;
    ocr_decoder d;
    ocr_lm *lm;
    if (reader_open(o, &m, &d, &lm)) return 1;
    char **text = calloc((size_t)n, sizeof(char *));
    int rc = text ? recognize_files(&m, &d, paths, n, o->batch, text) : -1;
    for (int i = 0; !rc && i < n; i++) printf(n > 1 ? "%s\t%s\n" : "%s%s\n", n > 1 ? paths[i] : "", text[i]);
    for (int i = 0; text && i < n; i++) free(text[i]);
    free(text);
    ocr_lm_free(lm);
    model_free(&m);
    return rc ? 1 : 0;
}

static int eval_index(const ocr_model *m, const ocr_decoder *d, const ocr_opts *o, const char *index)
{
    ocr_index ix;
    char err[1200];
    if (ocr_index_read(index, &ix, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return -1;
    }
    /* image paths are relative to the index's folder */
    const char *slash = strrchr(index, '/');
    int dl = slash ? (int)(slash - index + 1) : 0, rc = -1;
    char **paths = calloc((size_t)ix.n, sizeof(char *)), **text = calloc((size_t)ix.n, sizeof(char *));
    for (int i = 0; paths && i < ix.n; i++) {
        size_t l = (size_t)dl + strlen(ix.file[i]) + 1;
        if (!(paths[i] = malloc(l))) goto out;
        if (ix.file[i][0] == '/') snprintf(paths[i], l, "%s", ix.file[i]);
        else snprintf(paths[i], l, "%.*s%s", dl, index, ix.file[i]);
    }
    if (!paths || !text) goto out;
    double t0 = ex_now();
    if (recognize_files(m, d, paths, ix.n, o->batch, text)) goto out;
    double secs = ex_now() - t0;
    ocr_score s = {0}, fs[OCR_MAX_FONTS] = {{0}};
    char fname[OCR_MAX_FONTS][64];
    int shown = 0, nf = 0;
    for (int i = 0; i < ix.n; i++) {
        long before = s.char_err;
        if (ocr_score_add(&s, ix.text[i], text[i])) goto out;
        if (o->by_font) { /* "0001-P052-Roman.pgm" -> "P052-Roman" */
            const char *b = strrchr(ix.file[i], '/'), *f = strchr(b ? b + 1 : ix.file[i], '-'), *e = strrchr(ix.file[i], '.');
            char name[64];
            snprintf(name, sizeof name, "%.*s", f && e > f ? (int)(e - f - 1) : 1, f && e > f ? f + 1 : "?");
            int k = 0;
            while (k < nf && strcmp(fname[k], name)) k++;
            if (k == nf && nf < OCR_MAX_FONTS) snprintf(fname[nf++], sizeof fname[0], "%s", name);
            if (k < nf && ocr_score_add(&fs[k], ix.text[i], text[i])) goto out;
        }
        if (s.char_err > before && shown < o->show) {
            printf("  %s\n    truth: %s\n    read:  %s\n", ix.file[i], ix.text[i], text[i]);
            shown++;
        }
    }
    printf("%s: CER %.2f%%  WER %.2f%%  (%ld lines, %ld exact; %ld characters, %ld words; %.1f lines/s)\n", index,
           100 * ocr_cer(&s), 100 * ocr_wer(&s), s.lines, s.exact, s.chars, s.words, ix.n / (secs > 0 ? secs : 1e-9));
    for (int k = 0; k < nf; k++)
        printf("  %-28s CER %.2f%%  WER %.2f%%  (%ld lines, %ld exact; %ld characters)\n", fname[k], 100 * ocr_cer(&fs[k]),
               100 * ocr_wer(&fs[k]), fs[k].lines, fs[k].exact, fs[k].chars);
    rc = 0;
out:
    for (int i = 0; i < ix.n; i++) {
        if (paths) free(paths[i]);
        if (text) free(text[i]);
    }
    free(paths), free(text);
    ocr_index_free(&ix);
    return rc;
}

static int do_eval(const ocr_opts *o, char *const *index, int n)
{
    ocr_model m;
    ocr_decoder d;
    ocr_lm *lm;
    if (reader_open(o, &m, &d, &lm)) return 1;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) rc = eval_index(&m, &d, o, index[i]);
    ocr_lm_free(lm);
    model_free(&m);
    return rc ? 1 : 0;
}

/* ================================================================================= render */

/* The test set: --lines held-out sentences, each in one held-out font (in turn), written twice:
 * clean (black on white, no rotation, blur or noise) under DIR/clean/, and degraded (rotation,
 * blur, grey levels and noise of ocr_style_random's test kind) under DIR/degraded/, with the
 * indexes DIR/clean.tsv and DIR/degraded.tsv. The same options give the same files. --split val
 * draws validation sentences and --split train training ones instead, both in the training fonts. */
static int make_dir(const char *d)
{
    if (mkdir(d, 0777) == 0 || errno == EEXIST) return 0;
    fprintf(stderr, "%s: cannot make folder '%s': %s\n", prog, d, strerror(errno));
    return -1;
}

/* The lines of --split: its OCR_SPLIT_* kind, and their indices into c->line in *pick. */
static int split_pick(const ocr_opts *o, const ocr_corpus *c, int **pick, int *n_pick)
{
    int split = !strcmp(o->split, "val") ? OCR_SPLIT_VAL : !strcmp(o->split, "train") ? OCR_SPLIT_TRAIN : OCR_SPLIT_TEST;
    *pick = split == OCR_SPLIT_VAL ? c->val : split == OCR_SPLIT_TRAIN ? c->train : c->test;
    *n_pick = split == OCR_SPLIT_VAL ? c->n_val : split == OCR_SPLIT_TRAIN ? c->n_train : c->n_test;
    return split;
}

static int do_render(const ocr_opts *o)
{
    ocr_corpus corp;
    if (load_corpus(o, &corp)) return 1;
    int *pick, n_pick, split = split_pick(o, &corp, &pick, &n_pick);
    ocr_fonts *fonts = n_pick ? open_fonts(o, split == OCR_SPLIT_TEST ? OCR_TEST : OCR_TRAIN) : NULL;
    int rc = 1;
    if (!n_pick) fprintf(stderr, "%s: the corpus has no %s lines\n", prog, o->split);
    char err[1200];
    static const char *const variant[2] = {"clean", "degraded"};
    char *idx = NULL;
    if (!fonts) goto out;
    if (!strcmp(o->format, "png") && !ocr_have_png()) {
        fprintf(stderr, "%s: --format png: this spool-ocr was built without libpng (apt-get install libpng-dev)\n", prog);
        goto out;
    }
    sp_rng rng;
    sp_rng_seed(&rng, o->seed);
    int n = o->n_lines < n_pick ? o->n_lines : n_pick;
    ex_shuffle(pick, n_pick, &rng); /* a seeded draw of distinct sentences */
    size_t cap = 64 + (size_t)n * (o->max_chars + 64);
    idx = malloc(cap);
    if (!idx || make_dir(o->out_dir)) goto out;
    for (int v = 0; v < 2; v++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", o->out_dir, variant[v]);
        if (make_dir(path)) goto out;
        size_t used = 0;
        for (int i = 0; i < n; i++) {
            const char *text = corp.line[pick[i]];
            int f = i % ocr_fonts_count(fonts);
            ocr_style s;
            if (v == 0) ocr_style_clean(&s, o->size);
            else ocr_style_random(&s, 2, &rng), s.size *= o->size / 32;
            ocr_image im;
            char file[256];
            snprintf(file, sizeof file, "%s/%04d-%s.%s", variant[v], i + 1, ocr_fonts_name(fonts, f), o->format);
            snprintf(path, sizeof path, "%s/%s", o->out_dir, file);
            if (ocr_render(fonts, f, text, &s, &rng, &im, err, sizeof err)) {
                fprintf(stderr, "%s: rendering '%s': %s\n", prog, text, err);
                goto out;
            }
            int bad = ocr_image_write(path, &im, err, sizeof err);
            ocr_image_free(&im);
            if (bad) {
                fprintf(stderr, "%s: %s\n", prog, err);
                goto out;
            }
            used += (size_t)snprintf(idx + used, cap - used, "%s\t%s\n", file, text);
        }
        snprintf(path, sizeof path, "%s/%s.tsv", o->out_dir, variant[v]);
        if (ex_write_file(path, idx, used, err, sizeof err)) {
            fprintf(stderr, "%s: %s\n", prog, err);
            goto out;
        }
        printf("%s: %d %s lines in %s/\n", path, n, variant[v], variant[v]);
    }
    rc = 0;
out:
    free(idx);
    ocr_fonts_free(fonts);
    ocr_corpus_free(&corp);
    return rc;
}

/* =================================================================================== text */

/* The sentences of --split, one a line, in the corpus's order, into --out (atomically): the very
 * lines that training draws (--split train), from the same loader and split as train, so that a
 * language model trained on them (spool-charlm train --data FILE) has seen no test or validation
 * sentence. */
static int do_text(const ocr_opts *o)
{
    ocr_corpus corp;
    if (load_corpus(o, &corp)) return 1;
    int *pick, n_pick;
    split_pick(o, &corp, &pick, &n_pick);
    size_t cap = 1;
    for (int i = 0; i < n_pick; i++) cap += strlen(corp.line[pick[i]]) + 1;
    char *buf = malloc(cap), err[1200];
    int rc = 1;
    if (!buf) {
        fprintf(stderr, "%s: out of memory\n", prog);
    } else {
        size_t used = 0;
        for (int i = 0; i < n_pick; i++) {
            size_t l = strlen(corp.line[pick[i]]);
            memcpy(buf + used, corp.line[pick[i]], l);
            used += l, buf[used++] = '\n';
        }
        if (ex_write_file(o->out, buf, used, err, sizeof err)) fprintf(stderr, "%s: %s\n", prog, err);
        else printf("%s: %d %s lines\n", o->out, n_pick, o->split), rc = 0;
    }
    free(buf);
    ocr_corpus_free(&corp);
    return rc;
}

/* ================================================================================== bench */

/* Writes the batches for bench/peer_ocr.py: a text header, then per batch its sizes, frame
 * counts, label counts and labels as text lines and its frames as raw little-endian float32
 * [T, B, F] (the layout of the batch; zeros past a line's end). */
static int save_batches(const char *path, const ocr_batch *bs, int nb, char *err, size_t errn)
{
    ex_atomic a = {0};
    FILE *f = ex_atomic_open(&a, path, err, errn);
    if (!f) return -1;
    fprintf(f, "spool-ocr-batches 1\n%d %d\n", nb, bs[0].F);
    for (int k = 0; k < nb; k++) {
        const ocr_batch *b = &bs[k];
        fprintf(f, "%d %d %d\n", b->T, b->B, b->n_labels);
        for (int i = 0; i < b->B; i++) fprintf(f, "%d%c", b->len[i], i + 1 < b->B ? ' ' : '\n');
        for (int i = 0; i < b->B; i++) fprintf(f, "%d%c", b->label_len[i], i + 1 < b->B ? ' ' : '\n');
        for (int i = 0; i < b->n_labels; i++) fprintf(f, "%d%c", b->labels[i], i + 1 < b->n_labels ? ' ' : '\n');
        fwrite(b->x, sizeof(float), (size_t)b->T * b->B * b->F, f);
    }
    if (ferror(f)) {
        snprintf(err, errn, "writing '%s' failed", path);
        ex_atomic_abort(&a);
        return -1;
    }
    return ex_atomic_commit(&a, err, errn);
}

/* Training steps on a pool of 8 rendered batches (made before the clock starts), as
 * bench/peer_ocr.py times PyTorch's: one JSON line with the step time and the share of it spent
 * in sp_ctc_loss (forward and gradient: the op computes both in one pass). */
static int do_bench(const ocr_opts *o)
{
    enum { NB = 8 };
    ocr_corpus corp;
    if (load_corpus(o, &corp)) return 1;
    ocr_fonts *fonts = open_fonts(o, OCR_TRAIN);
    ocr_model m = {.cfg = o->cfg};
    ocr_batch bs[NB];
    memset(bs, 0, sizeof bs);
    sp_optim *opt = NULL;
    sp_tape *t = NULL;
    int rc = 1;
    sp_rng rng;
    sp_rng_seed(&rng, o->seed);
    sp_optim_config oc = sp_optim_defaults(SP_ADAM);
    if (!fonts) goto out;
    if (model_build(&m, &rng) || !(opt = sp_optim_new(m.ps, &oc)) || !(t = sp_tape_new())) {
        fprintf(stderr, "%s: building the model: %s\n", prog, sp_last_error());
        goto out;
    }
    long frames = 0, real = 0;
    for (int k = 0; k < NB; k++) {
        if (batch_render(&bs[k], &m.cfg, &corp, fonts, o->batch, 1, &rng, NULL)) goto out;
        frames += (long)bs[k].T * bs[k].B;
        for (int i = 0; i < bs[k].B; i++) real += bs[k].len[i];
    }
    char err[1200];
    if (o->save_batches && save_batches(o->save_batches, bs, NB, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", prog, err);
        goto out;
    }
    double loss = 0, loss_first = 0, norm, ctc = 0;
    for (int i = 0; i < o->warmup; i++) {
        if (train_step(t, &m, opt, &bs[i % NB], o, o->lr, &loss, &norm, NULL)) goto out;
        if (i == 0) loss_first = loss;
    }
    double t0 = ex_now();
    long real_t = 0;
    for (long i = 0; i < o->steps; i++) {
        const ocr_batch *b = &bs[(o->warmup + i) % NB];
        if (train_step(t, &m, opt, b, o, o->lr, &loss, &norm, &ctc)) goto out;
        for (int r = 0; r < b->B; r++) real_t += b->len[r];
    }
    double secs = ex_now() - t0;
    printf("{\"peer\": \"spool\", \"mode\": \"train\", \"model\": \"ocr-bilstm-ctc\", \"hidden\": %d, \"layers\": %d, "
           "\"batch\": %d, \"features\": %d, \"mean_frames\": %.1f, \"padded_frames_per_batch\": %.1f, "
           "\"threads\": %d, \"precision\": \"%s\", \"steps\": %ld, \"warmup\": %d, \"seconds\": %.4f, "
           "\"ms_per_step\": %.3f, \"real_frames_per_s\": %.1f, \"ctc_ms_per_step\": %.3f, \"ctc_share\": %.4f, "
           "\"n_params\": %zu, \"loss_first\": %.4f, \"loss_last\": %.4f}\n",
           m.cfg.hidden, m.cfg.layers, o->batch, frame_size(&m.cfg), (double)real / (NB * o->batch),
           (double)frames / NB, sp_get_threads(), sp_get_precision() == SP_PREC_BF16 ? "bf16" : "fp32", o->steps,
           o->warmup, secs, 1000 * secs / o->steps, real_t / secs, 1000 * ctc / o->steps, ctc / secs, m.ps->numel,
           loss_first, loss);
    rc = 0;
out:
    for (int k = 0; k < NB; k++) batch_free(&bs[k]);
    sp_tape_free(t);
    sp_optim_free(opt);
    model_free(&m);
    ocr_fonts_free(fonts);
    ocr_corpus_free(&corp);
    return rc;
}

/* ==================================================================================== main */

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* results and progress (stderr) interleave in the order written */
    ocr_opts o = {0};
    ex_args args;
    int rc = ex_cli_parse(&CLI, argc, argv, &o, &args);
    if (rc >= 0) return rc;
    cli_args = args;
    if (args.cmd < 0) {
        fprintf(stderr, "%s: give a command: train, render, eval, recognize, bench or text (try --help)\n", prog);
        return 2;
    }
    const char *cmd = CMDS[args.cmd];
    int wants_pos = !strcmp(cmd, "eval") || !strcmp(cmd, "recognize");
    if (args.npos && !wants_pos) {
        fprintf(stderr, "%s: unexpected argument '%s' for '%s' (try --help)\n", prog, args.pos[0], cmd);
        return 2;
    }
    if (wants_pos && !args.npos) {
        fprintf(stderr, "%s: %s needs %s (try --help)\n", prog, cmd,
                !strcmp(cmd, "eval") ? "an index, e.g. spool-ocr eval ocr-test/clean.tsv"
                                     : "an image, e.g. spool-ocr recognize line.pgm");
        return 2;
    }
    if (!strcmp(cmd, "text") && (!ex_given(&CLI, &args, "split") || !o.out)) {
        fprintf(stderr, "%s: text needs --split (train, val or test) and --out FILE, e.g. spool-ocr text --split train "
                "--out ocr-lm-train.txt (try --help)\n", prog);
        return 2;
    }
    if (!o.lm && (ex_given(&CLI, &args, "lm-weight") || ex_given(&CLI, &args, "lm-bonus"))) {
        fprintf(stderr, "%s: --lm-weight and --lm-bonus weigh a language model: give it with --lm (try --help)\n", prog);
        return 2;
    }
    if (!o.out) o.out = "ocr.safetensors";
    if (o.threads > 0) sp_set_threads(o.threads);
    if (!strcmp(cmd, "text")) return do_text(&o);
    if (!strcmp(cmd, "eval")) return do_eval(&o, args.pos, args.npos);
    if (!strcmp(cmd, "recognize")) return do_recognize(&o, args.pos, args.npos);
    if (!strcmp(cmd, "render")) return do_render(&o) ? 1 : 0;
    if (!strcmp(cmd, "bench")) return do_bench(&o) ? 1 : 0;
    printf("%s", prog);
    for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
    printf("\nseed %llu | %s\n", (unsigned long long)o.seed, sp_info());
    return do_train(&o) ? 1 : 0;
}
