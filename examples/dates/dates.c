/* SPDX-License-Identifier: MIT */
/* dates.c - spool-dates: an encoder-decoder (many-to-many with Tx != Ty) that translates dates
 * written by people ("the 3rd of March 1998", "3/3/98", "Tuesday, March 3, 1998") into ISO
 * 1998-03-03.
 *
 * Model: characters -> embedding -> bidirectional encoder; the two final states, joined, are the
 * context c. The decoder starts from h0 = tanh(W c + b) and at every step reads the embedding of
 * the previous output character together with c (Cho et al. 2014 feed the summary at every
 * step, so the decoder never has to carry it alone), then a linear head over the 11 output
 * characters. Training uses teacher forcing; decoding is greedy or beam search. The data are
 * generated from a seed (dates_data.c), with train and test disjoint by date.
 *
 * `spool-dates export` writes the model as two ONNX graphs, the encoder and one decoder step
 * (docs/onnx.md), so that the decoding loop stays in the caller's code as it is here.
 *
 * Everything is spool's public API: layers (embedding, cells, bidirectional runner, linear),
 * ops, the optimizer, safetensors checkpoints and the ONNX export. */
#include "spool.h"
#include "spool/layers.h"
#include "spool/optim.h"
#include "common/atomic.h"
#include "common/gnuplot.h"
#include "common/opts.h"
#include "common/progress.h"
#include "common/text.h"
#include "dates_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "spool-dates"
#define TEXT_CAP 192 /* the long spelled-out formats run to ~75 characters, in prose to ~180 */

typedef struct {
    int cell_kind, E, H, HD;
    sp_params *ps;
    sp_embed in_emb, out_emb;
    sp_cell enc_f, enc_b, dec;
    sp_linear bridge, head;
    int attn;         /* 0: the fixed context; else 1 + sp_attn_kind (attention over the encoder outputs) */
    sp_attention att;
} model;

typedef struct {
    int steps, batch, emb, hidden, dec_hidden, eval_every, test_n, beam, show, threads;
    double lr, clip, test_frac, min_logprob;
    uint64_t seed;
    const char *cell, *save, *resume, *load, *eval_file, *attention, *heatmap, *formats;
    const char *translate[32];
    int n_translate;
} options;

static int add_translate(const char *v, void *base, char *err, size_t errn)
{
    options *o = base;
    if (o->n_translate == 32) {
        snprintf(err, errn, "at most 32 --translate texts");
        return -1;
    }
    o->translate[o->n_translate++] = v;
    return 0;
}

#define T options
static const ex_opt OPTS[] = {
    EX_OPT("steps", EX_INT, T, steps, "3000", 0, 100000000, 0, "N", "training updates"),
    EX_OPT("batch", EX_INT, T, batch, "64", 1, 65536, 0, "B", "examples per update"),
    EX_CHOICE("cell", EX_STR, T, cell, "lstm", "lstm|gru|mingru|minlstm", 0, "KIND", "recurrent cell"),
    EX_OPT("emb", EX_INT, T, emb, "32", 1, 4096, 0, "E", "character embedding size"),
    EX_OPT("hidden", EX_INT, T, hidden, "64", 1, 4096, 0, "H", "encoder hidden size per direction"),
    EX_OPT("dec-hidden", EX_INT, T, dec_hidden, "128", 1, 4096, 0, "H", "decoder hidden size"),
    EX_OPT("lr", EX_DBL, T, lr, "0.003", 0, 10, 0, "X", "Adam learning rate"),
    EX_OPT("clip", EX_DBL, T, clip, "5", 0, 1e9, 0, "X", "clip the gradient norm at X, 0 = off"),
    EX_OPT("seed", EX_U64, T, seed, "1", 0, 0, 0, "S", "seed of the data, the split and the initialisation"),
    EX_OPT("test-frac", EX_DBL, T, test_frac, "0.1", 0.001, 0.9, 0, "F", "fraction of the dates held out for test"),
    EX_OPT("test-n", EX_INT, T, test_n, "2000", 1, 1000000, 0, "N", "test examples"),
    EX_OPT("eval-every", EX_INT, T, eval_every, "500", 1, 100000000, 0, "N", "greedy test accuracy every N updates"),
    EX_OPT("beam", EX_INT, T, beam, "4", 1, 64, 0, "K", "beam width for the final evaluation (1 = greedy only)"),
    EX_OPT("show", EX_INT, T, show, "8", 0, 1000000, 0, "N", "print N test examples with both decodings"),
    EX_OPT("save", EX_STR, T, save, "dates.safetensors", 0, 0, 0, "PATH", "checkpoint written at every evaluation and at the end"),
    EX_OPT("resume", EX_STR, T, resume, NULL, 0, 0, 0, "PATH", "continue training from a checkpoint (model, optimizer, rng)"),
    EX_OPT("load", EX_STR, T, load, NULL, 0, 0, 0, "PATH", "load a model for --translate"),
    EX_CALLBACK("translate", add_translate, NULL, 0, "TEXT",
                "translate TEXT (repeatable; needs --load): the date and the log-probability of the decoded sequence"),
    EX_OPT("min-logprob", EX_DBL, T, min_logprob, "-0.5", -1e9, 0, 0, "X",
           "under this log-probability of the best reading, say the date cannot be read"),
    EX_OPT("eval-file", EX_STR, T, eval_file, NULL, 0, 0, 0, "FILE",
           "with --load: exact match over FILE's 'text<TAB>YYYY-MM-DD' lines and 'text<TAB>-' ones that\n"
           "      are no date (right when refused), skipping the model's training days, and at 8 thresholds\n"
           "      (FILE a path, or a bundled file: choose --min-logprob on dates_human_dev.tsv)"),
    EX_CHOICE("attention", EX_STR, T, attention, "none", "none|additive|general|dot", 0, "KIND",
              "attention over the encoder outputs: additive (Bahdanau), general or dot (Luong), none = fixed context"),
    EX_OPT("heatmap", EX_STR, T, heatmap, NULL, 0, 0, 0, "SVG",
           "with --attention: after training, draw the alignment of 4 test examples with gnuplot (data in SVG.tsv)"),
    EX_CHOICE("formats", EX_STR, T, formats, "short", "short|long|all|prose", 0, "SET",
              "input formats of the generated data: the 24 short ones, the harder split of 6 long ones with\n"
              "      spelled-out numbers (\"the twenty-third of march, nineteen ninety-eight\"), all 30, or the\n"
              "      long ones inside a sentence (\"we last heard from her on ... at about half past ten\")"),
    EX_OPT_THREADS(T, threads, 0),
    EX_OPT_PRECISION(0),
};
#undef T

/* The generator's format set of --formats. */
static int format_set(const options *o)
{
    const char *f = o->formats ? o->formats : "short";
    return !strcmp(f, "long") ? DT_LONG : !strcmp(f, "all") ? DT_ALL : !strcmp(f, "prose") ? DT_PROSE : DT_SHORT;
}

static void usage_more(FILE *f)
{
    fprintf(f, "\nSupported years: %d to %d (two-digit years: 50-99 -> 19xx, 00-49 -> 20xx); a year outside\n"
               "them is refused, not guessed. The text is lower-cased, commas dropped and spaces collapsed first.\n"
               "A reading is refused when the text does not name its day, month and year (in digits or words).\n",
            DT_YEAR0, DT_YEAR1);
    fprintf(f, "\nThe formats it learns (shown for 1998-03-03):\n");
    for (int k = 0; k < dt_nformats(); k++) fprintf(f, "    %s\n", dt_format_name(k));
}
static const ex_cli CLI = {PROG,
                           "Usage: " PROG " [options]                      train, evaluate, save a checkpoint\n"
                           "       " PROG " --load CKPT --translate TEXT ...  translate with a saved model\n"
                           "       " PROG " export --load CKPT --onnx PREFIX    the model as ONNX (" PROG " export --help)\n"
                           "Encoder-decoder over characters: human-written dates -> ISO YYYY-MM-DD.\n",
                           usage_more, NULL, NULL, OPTS, sizeof OPTS / sizeof OPTS[0], 0, NULL};

static ex_args cli_args; /* what parse_args saw: which options were given (for --resume's check) */

static int attn_of(const char *name)
{
    return !name || !strcmp(name, "none") ? 0 : !strcmp(name, "dot") ? 1 + SP_ATTN_DOT
                                              : !strcmp(name, "general") ? 1 + SP_ATTN_GENERAL : 1 + SP_ATTN_ADDITIVE;
}

/* -1 to go on, else the exit status */
static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){0};
    ex_args args;
    int rc = ex_cli_parse(&CLI, argc, argv, o, &args);
    if (rc >= 0) return rc;
    cli_args = args;
    if (o->heatmap && (!o->attention || !strcmp(o->attention, "none"))) {
        fprintf(stderr, PROG ": --heatmap draws attention weights: it needs --attention additive|general|dot\n");
        return 2;
    }
    if ((o->n_translate || o->eval_file) && !o->load) {
        fprintf(stderr, PROG ": --translate and --eval-file need --load CKPT\n");
        return 2;
    }
    for (int i = 0; i < o->n_translate; i++)
        if (!o->translate[i][0]) {
            fprintf(stderr, PROG ": --translate needs a text, not an empty one (try --help)\n");
            return 2;
        }
    if (o->heatmap && !o->heatmap[0]) {
        fprintf(stderr, PROG ": --heatmap needs a file name, not an empty one (try --help)\n");
        return 2;
    }
    /* a fresh model with dot attention: its sizes must fit (resumed ones keep the checkpoint's) */
    if (!o->resume && !o->load && attn_of(o->attention) == 1 + SP_ATTN_DOT && o->dec_hidden != 2 * o->hidden) {
        fprintf(stderr, PROG ": --attention dot needs --dec-hidden = 2 x --hidden (%d), not %d (try --help)\n",
                2 * o->hidden, o->dec_hidden);
        return 2;
    }
    return -1;
}

/* ------------------------------------------------------------------- model */


static int model_init(model *m, const char *cell, int E, int H, int HD, const char *attention, sp_rng *rng)
{
    memset(m, 0, sizeof *m);
    m->attn = attn_of(attention);
    if (m->attn == 1 + SP_ATTN_DOT && HD != 2 * H) {
        sp_fail(SP_ERR_ARG, "--attention dot needs --dec-hidden = 2 x --hidden (%d), not %d", 2 * H, HD);
        return -1;
    }
    m->cell_kind = !strcmp(cell, "gru")       ? SP_CELL_GRU_RESET_AFTER_MATMUL
                   : !strcmp(cell, "mingru")  ? SP_CELL_MINGRU
                   : !strcmp(cell, "minlstm") ? SP_CELL_MINLSTM
                                              : SP_CELL_LSTM;
    m->E = E, m->H = H, m->HD = HD;
    m->ps = sp_params_new();
    if (!m->ps) return -1;
    sp_cell_opts co = {.forget_bias_one = m->cell_kind == SP_CELL_LSTM};
    if (sp_embed_init(&m->in_emb, m->ps, "enc_emb", dt_in_vocab(), E, rng) ||
        sp_cell_init(&m->enc_f, m->cell_kind, m->ps, "enc", 0, 0, E, H, &co, rng) ||
        sp_cell_init(&m->enc_b, m->cell_kind, m->ps, "enc", 0, 1, E, H, &co, rng) ||
        sp_linear_init(&m->bridge, m->ps, "bridge", 2 * H, HD, 1, rng) ||
        sp_embed_init(&m->out_emb, m->ps, "dec_emb", dt_out_vocab(), E, rng) ||
        sp_cell_init(&m->dec, m->cell_kind, m->ps, "dec", 0, 0, E + 2 * H, HD, &co, rng) ||
        sp_linear_init(&m->head, m->ps, "head", HD, dt_out_vocab() - 1, 1, rng))
        return -1;
    /* the query is the decoder's h, the keys the encoder's [fwd | bwd] outputs */
    if (m->attn && sp_attention_init(&m->att, m->ps, "attn", (sp_attn_kind)(m->attn - 1), HD, 2 * H, HD, rng)) return -1;
    return 0;
}

/* Encodes n texts: the context c [n, 2H] and the decoder's initial state. */
typedef struct {
    sp_tensor *ctx;
    sp_tensor *state[SP_CELL_MAX_STATE];
    sp_tensor *enc, *keys; /* attention: encoder outputs [Tx*n, 2H] and their keys */
    int Tx, *len;
    sp_tensor *weights;    /* attention weights [n, Tx] of the last decoder step */
} encoded;

/* What the decoder reads, from the encoder's context ctx [n, 2H] (its final states) and outputs
 * enc [Tx*n, 2H]: the keys of attention, and the decoder's first state h0 = tanh(W ctx + b) (and
 * a zero c for an LSTM). Shared by encode and the ONNX export, whose encoder graph ends with it. */
static void encoder_tail(sp_tape *t, const model *m, sp_tensor *ctx, sp_tensor *enc, int Tx, int *len, int n, encoded *e)
{
    e->ctx = ctx, e->enc = enc, e->Tx = Tx, e->len = len, e->weights = NULL;
    e->keys = m->attn ? sp_attention_keys(t, &m->att, enc) : NULL;
    sp_tape_scope(t, "bridge");
    e->state[0] = sp_tanh(t, sp_linear_forward(t, &m->bridge, ctx));
    e->state[1] = NULL;
    if (m->dec.n_state == 2) e->state[1] = sp_const(t, n, m->dec.state_size[1]);
    sp_tape_scope(t, NULL);
}

static int encode(sp_tape *t, const model *m, char (*texts)[TEXT_CAP], int n, encoded *e)
{
    int Tx = 1;
    /* the model reads the normalised text (dt_normalise: case, spaces, commas), in training too */
    char (*norm)[TEXT_CAP] = sp_tape_alloc(t, (size_t)n * TEXT_CAP);
    if (!norm) return -1;
    for (int b = 0; b < n; b++) {
        int L = dt_normalise(texts[b], norm[b], TEXT_CAP); /* never longer than the text */
        if (L > Tx) Tx = L;
    }
    int *ids = sp_tape_alloc(t, sizeof(int) * (size_t)Tx * n), *len = sp_tape_alloc(t, sizeof(int) * n);
    if (!ids || !len) return -1;
    for (int b = 0; b < n; b++) {
        len[b] = (int)strlen(norm[b]);
        for (int s = 0; s < Tx; s++) ids[s * n + b] = s < len[b] ? dt_in_id(norm[b][s]) : -1;
    }
    sp_tape_scope(t, "encoder");
    sp_tensor *x = sp_embed_forward(t, &m->in_emb, ids, Tx * n);
    sp_bidir_opts bo = {.lengths = len};
    sp_bidir_out out;
    if (sp_bidir_run(t, &m->enc_f, &m->enc_b, x, Tx, n, &bo, &out) != SP_OK) return -1;
    sp_tensor *both[2] = {out.fwd_final[0], out.bwd_final[0]};
    encoder_tail(t, m, sp_concat(t, both, 2), out.out, Tx, len, n, e);
    return sp_tape_status(t) == SP_OK ? 0 : -1;
}

/* One decoder step from the previous characters prev[0..n) -> logits [n, 11]; state is updated. */
static sp_tensor *decode_step(sp_tape *t, const model *m, encoded *e, const int *prev, int n, sp_tensor **state,
                              int step)
{
    sp_tape_scope(t, "decoder/t%d", step);
    /* Bahdanau et al.: the context of step s attends from the state before it */
    sp_tensor *ctx = m->attn ? sp_attention_step(t, &m->att, state[0], e->keys, e->enc, e->Tx, e->len, &e->weights)
                             : e->ctx;
    sp_tensor *in[2] = {sp_embed_forward(t, &m->out_emb, prev, n), ctx};
    sp_tensor *ns[SP_CELL_MAX_STATE] = {0};
    if (sp_cell_forward(t, &m->dec, sp_concat(t, in, 2), state, ns) != SP_OK) return NULL;
    for (int k = 0; k < m->dec.n_state; k++) state[k] = ns[k];
    sp_tensor *logits = sp_linear_forward(t, &m->head, ns[0]);
    sp_tape_scope(t, NULL);
    return logits;
}

/* Teacher-forced loss over a batch of texts and ISO targets. */
static sp_tensor *batch_loss(sp_tape *t, const model *m, char (*texts)[TEXT_CAP], char (*iso)[11], int B)
{
    encoded e;
    if (encode(t, m, texts, B, &e)) return NULL;
    int *prev = sp_tape_alloc(t, sizeof(int) * B), *target = sp_tape_alloc(t, sizeof(int) * DT_TY * B);
    if (!prev || !target) return NULL;
    sp_tensor *outs[DT_TY];
    for (int b = 0; b < B; b++) prev[b] = DT_GO;
    /* The head runs per step here (not once over concat_rows of the states) because decode_step
     * is shared with inference; the head is small next to the recurrent GEMMs. */
    for (int s = 0; s < DT_TY; s++) {
        outs[s] = decode_step(t, m, &e, prev, B, e.state, s);
        if (!outs[s]) return NULL;
        for (int b = 0; b < B; b++) target[s * B + b] = prev[b] = dt_out_id(iso[b][s]);
    }
    return sp_softmax_xent(t, sp_concat_rows(t, outs, DT_TY), target, NULL);
}

/* Greedy decoding of n texts into out[n][11]. With attention and w != NULL, w[(b*DT_TY + s)*TEXT_CAP
 * + x] receives the weight output s of text b gave input character x, and *tx the padded length;
 * with lg != NULL, lg[(b*DT_TY + s)*V + v] the logit of character v at step s (V = 11). */
static int greedy_weights(sp_tape *t, const model *m, char (*texts)[TEXT_CAP], int n, char (*out)[11], sp_real *w,
                          int *tx, sp_real *lg_out)
{
    sp_tape_reset(t);
    encoded e;
    if (encode(t, m, texts, n, &e)) return -1;
    int *prev = sp_tape_alloc(t, sizeof(int) * n);
    if (!prev) return -1;
    for (int b = 0; b < n; b++) prev[b] = DT_GO;
    for (int s = 0; s < DT_TY; s++) {
        sp_tensor *lg = decode_step(t, m, &e, prev, n, e.state, s);
        if (!lg || (w && !e.weights)) return -1;
        for (int b = 0; b < n; b++) {
            int best = 0;
            for (int v = 1; v < lg->cols; v++)
                if (*sp_at(lg, b, v) > *sp_at(lg, b, best)) best = v;
            prev[b] = best;
            out[b][s] = dt_out_char(best);
            for (int v = 0; lg_out && v < lg->cols; v++) lg_out[((size_t)b * DT_TY + s) * lg->cols + v] = *sp_at(lg, b, v);
            for (int x = 0; w && x < e.Tx; x++) w[((size_t)b * DT_TY + s) * TEXT_CAP + x] = *sp_at(e.weights, b, x);
        }
    }
    for (int b = 0; b < n; b++) out[b][DT_TY] = 0;
    if (tx) *tx = e.Tx;
    return 0;
}

static int greedy(sp_tape *t, const model *m, char (*texts)[TEXT_CAP], int n, char (*out)[11], sp_real *lg)
{
    return greedy_weights(t, m, texts, n, out, NULL, NULL, lg);
}

/* Beam search with K hypotheses for one text. The K rows share the encoding; at each step every
 * hypothesis is extended by every character and the K best sums of log-probabilities are kept.
 * All outputs have length 10, so no length normalisation is needed. */
static int beam_one(sp_tape *t, const model *m, const char *text, int K, char *out, double *logprob)
{
    char (*rep)[TEXT_CAP] = malloc(sizeof *rep * (size_t)K);
    int V = dt_out_vocab() - 1, rc = -1;
    double *score = malloc(sizeof(double) * K), *cand = malloc(sizeof(double) * K * V);
    char (*hyp)[11] = calloc((size_t)K, 11), (*nhyp)[11] = calloc((size_t)K, 11);
    int *prev = malloc(sizeof(int) * K), *from = malloc(sizeof(int) * K);
    if (!rep || !score || !cand || !hyp || !nhyp || !prev || !from) goto done;
    for (int k = 0; k < K; k++) snprintf(rep[k], TEXT_CAP, "%s", text);
    sp_tape_reset(t);
    encoded e;
    if (encode(t, m, rep, K, &e)) goto done;
    for (int k = 0; k < K; k++) score[k] = k ? -INFINITY : 0, prev[k] = DT_GO;
    for (int s = 0; s < DT_TY; s++) {
        sp_tensor *lg = decode_step(t, m, &e, prev, K, e.state, s);
        if (!lg) goto done;
        for (int k = 0; k < K; k++) {
            double mx = -INFINITY, z = 0;
            for (int v = 0; v < V; v++) mx = fmax(mx, *sp_at(lg, k, v));
            for (int v = 0; v < V; v++) z += exp(*sp_at(lg, k, v) - mx);
            for (int v = 0; v < V; v++) cand[k * V + v] = score[k] + (*sp_at(lg, k, v) - mx - log(z));
        }
        /* pick the K best candidates (K is small: repeated arg-max) */
        for (int j = 0; j < K; j++) {
            int best = 0;
            for (int c = 1; c < K * V; c++)
                if (cand[c] > cand[best]) best = c;
            from[j] = best / V, prev[j] = best % V, score[j] = cand[best];
            memcpy(nhyp[j], hyp[from[j]], 11);
            nhyp[j][s] = dt_out_char(prev[j]);
            cand[best] = -INFINITY;
        }
        memcpy(hyp, nhyp, (size_t)K * 11);
        /* the surviving hypotheses continue from their parents' states: gather rows */
        for (int k = 0; k < m->dec.n_state; k++) {
            sp_tensor *st = sp_const(t, K, e.state[k]->cols);
            if (!st) goto done;
            for (int j = 0; j < K; j++)
                memcpy(sp_at(st, j, 0), sp_at(e.state[k], from[j], 0), sizeof(sp_real) * st->cols);
            e.state[k] = st;
        }
    }
    memcpy(out, hyp[0], 10);
    out[10] = 0;
    if (logprob) *logprob = score[0];
    rc = 0;
done:
    free(rep), free(score), free(cand), free(hyp), free(nhyp), free(prev), free(from);
    return rc;
}

/* ------------------------------------------------------------ checkpoints */

static sp_status save(const char *path, const model *m, const sp_optim *opt, const options *o, sp_rng *rng)
{
    char e[16], h[16], hd[16], sd[32], tf[32];
    snprintf(e, sizeof e, "%d", m->E), snprintf(h, sizeof h, "%d", m->H), snprintf(hd, sizeof hd, "%d", m->HD);
    snprintf(sd, sizeof sd, "%llu", (unsigned long long)o->seed), ex_fmt_shortest(o->test_frac, tf, sizeof tf);
    sp_kv meta[] = {{"model", "spool-dates"}, {"cell", o->cell}, {"emb", e}, {"hidden", h},
                    {"dec_hidden", hd}, {"seed", sd}, {"test_frac", tf}, {"attention", o->attention ? o->attention : "none"},
                    {"formats", o->formats ? o->formats : "short"}};
    sp_ckpt_opts co = {.meta = meta, .n_meta = 9, .rng = rng};
    return sp_save(path, m->ps, opt, &co);
}

/* Rebuild the model of a checkpoint's configuration (and read its seed/split) before loading. */
static int model_from_ckpt(const char *path, model *m, options *o)
{
    sp_ckpt_info *ci = sp_ckpt_open(path);
    if (!ci) {
        fprintf(stderr, PROG ": %s\n", sp_last_error());
        return -1;
    }
    const char *cell = sp_ckpt_meta(ci, "cell"), *e = sp_ckpt_meta(ci, "emb"), *h = sp_ckpt_meta(ci, "hidden"),
               *hd = sp_ckpt_meta(ci, "dec_hidden"), *sd = sp_ckpt_meta(ci, "seed"), *tf = sp_ckpt_meta(ci, "test_frac"),
               *kind = sp_ckpt_meta(ci, "model"), *att = sp_ckpt_meta(ci, "attention"), *fm = sp_ckpt_meta(ci, "formats");
    int ok = kind && !strcmp(kind, "spool-dates") && cell && e && h && hd && sd && tf &&
             (!strcmp(cell, "lstm") || !strcmp(cell, "gru") || !strcmp(cell, "mingru") || !strcmp(cell, "minlstm")) &&
             atoi(e) > 0 && atoi(h) > 0 && atoi(hd) > 0;
    if (ok) {
        static char cellbuf[8];
        snprintf(cellbuf, sizeof cellbuf, "%s", cell);
        o->cell = cellbuf, o->emb = atoi(e), o->hidden = atoi(h), o->dec_hidden = atoi(hd);
        o->seed = strtoull(sd, NULL, 10), o->test_frac = atof(tf);
        static char attbuf[16];
        snprintf(attbuf, sizeof attbuf, "%s", att ? att : "none"); /* older checkpoints: no attention */
        o->attention = attbuf;
        static char fmbuf[8];
        snprintf(fmbuf, sizeof fmbuf, "%s", fm && (!strcmp(fm, "long") || !strcmp(fm, "all") || !strcmp(fm, "prose")) ? fm : "short");
        o->formats = fmbuf; /* older checkpoints: the short formats */
    }
    sp_ckpt_close(ci);
    if (!ok) {
        fprintf(stderr, PROG ": %s is not a spool-dates checkpoint (metadata missing or wrong)\n", path);
        return -1;
    }
    sp_rng r;
    sp_rng_seed(&r, o->seed);
    if (model_init(m, o->cell, o->emb, o->hidden, o->dec_hidden, o->attention, &r)) {
        fprintf(stderr, PROG ": %s\n", sp_last_error());
        return -1;
    }
    return 0;
}

/* The trained model of a checkpoint, for --load and export: built as its metadata says, then
 * its weights. 0, or -1 with the message printed. */
static int load_model(const char *path, model *m, options *o)
{
    if (model_from_ckpt(path, m, o)) return -1;
    if (sp_load(path, m->ps, NULL, NULL) != SP_OK) {
        fprintf(stderr, PROG ": %s\n", sp_last_error());
        sp_params_free(m->ps);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- evaluation */

typedef struct {
    int n;
    char (*text)[TEXT_CAP];
    char (*iso)[11];
    int *format;
} dataset;

static int make_test(dataset *d, const options *o)
{
    d->n = o->test_n;
    d->text = calloc((size_t)d->n, TEXT_CAP), d->iso = calloc((size_t)d->n, 11), d->format = calloc((size_t)d->n, sizeof(int));
    if (!d->text || !d->iso || !d->format) return -1;
    dt_gen g;
    dt_gen_init(&g, o->seed, o->test_frac, 1, 0);
    dt_gen_formats(&g, format_set(o));
    for (int i = 0; i < d->n; i++) dt_gen_next(&g, d->text[i], TEXT_CAP, d->iso[i], &d->format[i]);
    return 0;
}

/* Greedy exact match over d, in batches of 250; pred[i] the readings, lg (NULL, or d->n x DT_TY x
 * 11 values) their logits. */
static double eval_greedy(sp_tape *t, const model *m, const dataset *d, char (*pred)[11], sp_real *lg)
{
    const int chunk = 250, V = dt_out_vocab() - 1;
    for (int i = 0; i < d->n; i += chunk) {
        int n = d->n - i < chunk ? d->n - i : chunk;
        if (greedy(t, m, d->text + i, n, pred + i, lg ? lg + (size_t)i * DT_TY * V : NULL)) return -1;
    }
    const char **p = malloc(sizeof(char *) * d->n), **g = malloc(sizeof(char *) * d->n);
    if (!p || !g) return free(p), free(g), -1;
    for (int i = 0; i < d->n; i++) p[i] = pred[i], g[i] = d->iso[i];
    double acc = dt_exact_match(p, g, d->n);
    free(p), free(g);
    return acc;
}

static double eval_beam(sp_tape *t, const model *m, const dataset *d, int K, char (*pred)[11])
{
    for (int i = 0; i < d->n; i++)
        if (beam_one(t, m, d->text[i], K, pred[i], NULL)) return -1;
    const char **p = malloc(sizeof(char *) * d->n), **g = malloc(sizeof(char *) * d->n);
    if (!p || !g) return free(p), free(g), -1;
    for (int i = 0; i < d->n; i++) p[i] = pred[i], g[i] = d->iso[i];
    double acc = dt_exact_match(p, g, d->n);
    free(p), free(g);
    return acc;
}

/* 1, with the reason in why, when the reading iso's log-probability lp is under min; else 0. */
static int unsure(const char *iso, double lp, double min, char *why, int cap)
{
    if (lp >= min) return 0;
    snprintf(why, (size_t)cap, "not sure: best reading %s has log-probability %.3g < %g (--min-logprob)", iso, lp, min);
    return 1;
}

/* Read one date: normalise, refuse what the model cannot know (no number, a year outside the
 * range), beam-decode, and refuse a result that is not a real date or whose log-probability is
 * under the threshold. Returns 0 with iso set, 1 with why set (cannot read), -1 on error. */
static int read_date(sp_tape *t, const model *m, const options *o, const char *text, char *iso, double *logprob,
                     char *why, int cap)
{
    char norm[TEXT_CAP];
    *logprob = 0;
    if (!*text || strlen(text) >= TEXT_CAP || dt_normalise(text, norm, TEXT_CAP) < 0) {
        snprintf(why, (size_t)cap, "the text must have 1 to %d characters", TEXT_CAP - 1);
        return 1;
    }
    if (dt_check_input(norm, why, cap)) return 1;
    if (beam_one(t, m, norm, o->beam, iso, logprob)) return -1;
    dt_date d;
    if (dt_parse_iso(iso, &d)) {
        snprintf(why, (size_t)cap, "the model wrote %s, which is not a date", iso);
        return 1;
    }
    if (dt_supports(norm, d, why, cap)) return 1;
    return unsure(iso, *logprob, o->min_logprob, why, cap);
}

/* The thresholds --eval-file reports exact match at, so that --min-logprob can be chosen on a
 * dev file (examples/data/dates_human_dev.tsv) by reading one line per model. */
static const double eval_thresholds[] = {-0.02, -0.05, -0.1, -0.2, -0.3, -0.5, -1, -2};
#define N_EVAL_THRESHOLDS (int)(sizeof eval_thresholds / sizeof eval_thresholds[0])

/* --eval-file: exact match over 'text<TAB>YYYY-MM-DD' lines, and 'text<TAB>-' lines that are no
 * date (right when refused). A line whose date is one of this model's training days is skipped:
 * a score on seen days says nothing about unseen ones. Besides the score at --min-logprob it
 * prints the score at each of eval_thresholds and the log-probability range of right and of
 * wrong readings, which is what choosing the threshold needs. Returns 0, or -1 on error. */
static int eval_file(sp_tape *t, const model *m, const options *o)
{
    char pathbuf[4096];
    const char *path = ex_data_resolve(o->eval_file, pathbuf, sizeof pathbuf); /* or a bundled file */
    ex_lines in;
    char *line, err[700];
    if (ex_lines_open(&in, path, EX_LINE_MAX, err, sizeof err)) {
        fprintf(stderr, PROG ": %s\n", err);
        return -1;
    }
    options any = *o;
    any.min_logprob = -INFINITY; /* decode everything; the thresholds are applied below */
    int n = 0, ok = 0, refused = 0, seen = 0, rc = 0, got, at[N_EVAL_THRESHOLDS] = {0};
    int n_right = 0, n_wrong = 0;
    double lo_right = 0, hi_wrong = -INFINITY;
    while ((got = ex_lines_next(&in, &line, NULL, err, sizeof err)) > 0) {
        const char *gold, *text;
        dt_date gd;
        int nodate, kind = dt_eval_line(line, &text, &gold, &nodate, &gd);
        if (kind == 0) continue;
        if (kind < 0) {
            fprintf(stderr, PROG ": %s:%ld: expected 'text<TAB>YYYY-MM-DD' or 'text<TAB>-'\n", path, in.lineno);
            rc = -1;
            break;
        }
        if (!nodate && !dt_is_test_date(gd, o->seed, o->test_frac)) {
            seen++;
            continue;
        }
        char iso[11], why[160];
        double lp;
        int r = read_date(t, m, &any, text, iso, &lp, why, sizeof why);
        if (r < 0) {
            fprintf(stderr, PROG ": %s\n", sp_tape_errmsg(t));
            rc = -1;
            break;
        }
        n++;
        int right = r == 0 && !nodate && !strcmp(iso, gold); /* the reading, before any threshold */
        if (r == 0 && right) n_right++, lo_right = n_right == 1 || lp < lo_right ? lp : lo_right;
        if (r == 0 && !right) n_wrong++, hi_wrong = lp > hi_wrong ? lp : hi_wrong;
        for (int k = 0; k < N_EVAL_THRESHOLDS; k++)
            at[k] += r == 0 && lp >= eval_thresholds[k] ? right : nodate;
        int accept = r == 0 && !unsure(iso, lp, o->min_logprob, why, sizeof why);
        ok += accept ? right : nodate;
        refused += !accept;
        if (nodate && accept)
            printf("  read     %-32s no date, read %s  log-probability %.3g\n", line, iso, lp);
        else if (!nodate && !accept)
            printf("  refused  %-32s gold %s: %s\n", line, gold, why);
        else if (!nodate && !right)
            printf("  wrong    %-32s gold %s  read %s  log-probability %.3g\n", line, gold, iso, lp);
    }
    ex_lines_close(&in);
    if (got < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return -1;
    }
    if (rc) return rc;
    if (!n) {
        fprintf(stderr, PROG ": %s: no line to score (%d skipped: training days of this model)\n",
                o->eval_file, seen);
        return -1;
    }
    printf("%s: exact match %.4f (%d of %d; %d refused as unreadable", o->eval_file, (double)ok / n, ok, n, refused);
    if (seen) printf("; %d skipped: training days of this model", seen);
    printf(")\n  at --min-logprob");
    for (int k = 0; k < N_EVAL_THRESHOLDS; k++) printf(" %g: %.4f%s", eval_thresholds[k], (double)at[k] / n, k + 1 < N_EVAL_THRESHOLDS ? "," : "\n");
    printf("  log-probability of the %d right readings from %.3g up; of the %d wrong ones (no date included)", n_right,
           n_right ? lo_right : 0.0, n_wrong);
    if (n_wrong) printf(" up to %.3g\n", hi_wrong);
    else printf("\n");
    return 0;
}

static int translate(const options *o0)
{
    options o = *o0;
    model m;
    if (load_model(o.load, &m, &o)) return 1;
    sp_tape *t = sp_tape_new();
    int rc = 0;
    for (int i = 0; i < o.n_translate && rc != 2; i++) {
        char iso[11], why[160];
        double lp;
        int r = read_date(t, &m, &o, o.translate[i], iso, &lp, why, sizeof why);
        if (r < 0) {
            fprintf(stderr, PROG ": %s\n", sp_tape_errmsg(t));
            rc = 2;
        } else if (r > 0) {
            printf("%-32s cannot read this date: %s\n", o.translate[i], why); /* an answer, not a failure */
        } else {
            printf("%-32s %s  log-probability %.3g\n", o.translate[i], iso, lp);
        }
    }
    if (o.eval_file && rc != 2 && eval_file(t, &m, &o)) rc = 2;
    sp_tape_free(t);
    sp_params_free(m.ps);
    return rc ? 1 : 0;
}

/* ------------------------------------------------------------------- export */

/* spool-dates export: the model as two ONNX graphs (docs/onnx.md), the encoder and one decoder
 * step, so that the decoding loop (greedy, beam, when to stop) stays in the caller's code. */
typedef struct {
    const char *load, *onnx, *ids, *eval_file;
    int test_n, threads;
} export_opts;

#define X export_opts
static const ex_opt EXPORT_OPTS[] = {
    EX_OPT("load", EX_STR, X, load, NULL, 0, 0, 0, "CKPT", "the checkpoint to export (required)"),
    EX_OPT("onnx", EX_STR, X, onnx, NULL, 0, 0, 0, "PREFIX",
           "write PREFIX.encoder.onnx and PREFIX.decoder.onnx (required; docs/onnx.md runs them)"),
    EX_OPT("ids", EX_STR, X, ids, NULL, 0, 0, 0, "FILE",
           "also write the held-out test examples as the encoder's input, with spool's greedy decoding:\n"
           "      char ids<TAB>gold<TAB>greedy reading<TAB>its 10 x 11 logits"),
    EX_OPT("test-n", EX_INT, X, test_n, "2000", 1, 1000000, 0, "N", "held-out examples in --ids (as training's --test-n)"),
    EX_OPT("eval-file", EX_STR, X, eval_file, NULL, 0, 0, 0, "FILE",
           "--ids holds the dated lines of FILE ('text<TAB>YYYY-MM-DD'; a path or a bundled file) instead"),
    EX_OPT_THREADS(X, threads, 0),
};
#undef X
static const ex_cli EXPORT_CLI = {PROG " export", /* its messages say "try spool-dates export --help" */
                                  "Usage: " PROG " export --load CKPT --onnx PREFIX [--ids FILE]\n"
                                  "The model as two ONNX graphs: PREFIX.encoder.onnx (characters -> encoder states and the\n"
                                  "decoder's first state) and PREFIX.decoder.onnx (one decoder step: previous character,\n"
                                  "state, encoder states -> logits, next state, attention weights); docs/onnx.md.\n",
                                  NULL, NULL, NULL, EXPORT_OPTS, sizeof EXPORT_OPTS / sizeof EXPORT_OPTS[0], 0, NULL};

/* The dated lines of an --eval-file as a dataset (no-date lines and texts too long are left out). */
static int read_dated(const char *file, dataset *d)
{
    char pathbuf[4096], err[700], *line;
    const char *path = ex_data_resolve(file, pathbuf, sizeof pathbuf);
    ex_lines in;
    int got, cap = 0;
    *d = (dataset){0};
    if (ex_lines_open(&in, path, EX_LINE_MAX, err, sizeof err)) return fprintf(stderr, PROG ": %s\n", err), -1;
    while ((got = ex_lines_next(&in, &line, NULL, err, sizeof err)) > 0) {
        const char *text, *gold;
        dt_date gd;
        int nodate, kind = dt_eval_line(line, &text, &gold, &nodate, &gd);
        if (kind < 0) {
            fprintf(stderr, PROG ": %s:%ld: expected 'text<TAB>YYYY-MM-DD' or 'text<TAB>-'\n", path, in.lineno);
            got = -2;
            break;
        }
        if (kind == 0 || nodate || strlen(text) >= TEXT_CAP) continue;
        if (d->n == cap) {
            cap = cap ? 2 * cap : 256;
            void *a = realloc(d->text, (size_t)cap * TEXT_CAP), *b = a ? realloc(d->iso, (size_t)cap * 11) : NULL;
            if (a) d->text = a;
            if (b) d->iso = b;
            if (!a || !b) {
                snprintf(err, sizeof err, "out of memory");
                got = -1;
                break;
            }
        }
        snprintf(d->text[d->n], TEXT_CAP, "%s", text), snprintf(d->iso[d->n], 11, "%s", gold);
        d->n++;
    }
    ex_lines_close(&in);
    if (got == -1) fprintf(stderr, PROG ": %s\n", err);
    if (got >= 0 && !d->n) fprintf(stderr, PROG ": %s: no dated line\n", path), got = -1;
    return got < 0 ? -1 : 0;
}

/* --ids: the examples of d as the encoder's input (normalised, as encode reads them) with spool's
 * greedy reading and its logits, atomically. */
static int write_ids(sp_tape *t, const model *m, const dataset *d, const char *path, const char *what)
{
    const int V = dt_out_vocab() - 1;
    char (*pred)[11] = calloc((size_t)d->n, 11);
    sp_real *lg = malloc(sizeof(sp_real) * (size_t)d->n * DT_TY * V);
    double acc = pred && lg ? eval_greedy(t, m, d, pred, lg) : -1;
    sp_file *f = acc >= 0 ? sp_file_begin(path) : NULL;
    int rc = 0;
    if (!f) rc = fprintf(stderr, PROG ": --ids: %s\n", acc < 0 && sp_tape_status(t) ? sp_tape_errmsg(t) : pred && lg ? sp_last_error() : "out of memory") > 0;
    else {
        FILE *o = sp_file_stream(f);
        for (int i = 0; i < d->n; i++) {
            char norm[TEXT_CAP];
            dt_normalise(d->text[i], norm, TEXT_CAP);
            for (int k = 0; norm[k]; k++) fprintf(o, "%s%d", k ? " " : "", dt_in_id(norm[k]));
            fprintf(o, "\t%s\t%s\t", d->iso[i], pred[i]);
            for (int k = 0; k < DT_TY * V; k++) fprintf(o, "%s%.9g", k ? " " : "", (double)lg[(size_t)i * DT_TY * V + k]);
            fputc('\n', o);
        }
        if (sp_file_commit(f) != SP_OK) rc = fprintf(stderr, PROG ": --ids: %s\n", sp_last_error()) > 0;
        else printf("wrote %s: %d %s as char ids<TAB>gold<TAB>greedy<TAB>logits; spool's greedy exact match %.4f\n", path,
                    d->n, what, acc);
    }
    free(pred), free(lg);
    return rc;
}

/* The two graphs. Each is recorded once on probe inputs (PB rows for the batch, PS steps: sizes
 * no parameter has as rows) and translated by spool's ONNX export, so the files compute what
 * encode and decode_step compute: the encoder is the embedding and the bidirectional layer
 * (sp_onnx_export's own LSTM/GRU operator or Scan) followed by encoder_tail; the decoder is
 * decode_step (attention, the cell, the head) as sp_onnx_export_tape translates it. */
enum { PB = 13, PS = 7 };

static int export_graphs(const model *m, const char *prefix, const char *const *meta)
{
    char enc_path[4200], dec_path[4200];
    snprintf(enc_path, sizeof enc_path, "%s.encoder.onnx", prefix), snprintf(dec_path, sizeof dec_path, "%s.decoder.onnx", prefix);
    sp_rnn enc = {.num_layers = 1, .bidirectional = 1, .merge = SP_MERGE_CONCAT};
    enc.cell[0][0] = m->enc_f, enc.cell[0][1] = m->enc_b;
    int additive = m->attn == 1 + SP_ATTN_ADDITIVE, lstm = m->dec.n_state == 2, *len = malloc(sizeof(int) * PB), prev[PB];
    sp_tape *t = sp_tape_new(), *t2 = sp_tape_new();
    sp_status st = SP_ERR_NOMEM;
    if (t && t2 && len) {
        for (int b = 0; b < PB; b++) len[b] = 1 + b % PS, prev[b] = DT_GO;
        /* the encoder: the stack's final states (as the context) and outputs -> encoder_tail */
        encoded e;
        sp_tensor *ctx = sp_const(t, PB, 2 * m->H), *y = sp_const(t, PS * PB, 2 * m->H);
        encoder_tail(t, m, ctx, y, PS, len, PB, &e);
        sp_onnx_value ein[2] = {{"hn_l0", ctx, SP_ONNX_ROWS}, {"y", y, SP_ONNX_SEQ}}, eout[3];
        int no = 0;
        eout[no++] = (sp_onnx_value){"h", e.state[0], SP_ONNX_ROWS};
        if (lstm) eout[no++] = (sp_onnx_value){"c", e.state[1], SP_ONNX_ROWS};
        if (additive) eout[no++] = (sp_onnx_value){"keys", e.keys, SP_ONNX_SEQ};
        if (!m->attn) eout[no++] = (sp_onnx_value){"ctx", ctx, SP_ONNX_ROWS};
        sp_onnx_tape post = {.tape = t, .batch = PB, .steps = PS, .n_in = 2, .in = ein, .n_out = no, .out = eout};
        sp_onnx_model om = {.embed = &m->in_emb, .rnn = &enc, .post = &post, .metadata = meta};
        st = sp_onnx_export(&om, enc_path);
        /* the decoder step, from the state, the previous character and what the encoder gave */
        sp_tensor *state[SP_CELL_MAX_STATE] = {sp_const(t2, PB, m->HD), lstm ? sp_const(t2, PB, m->HD) : NULL};
        encoded d = {.ctx = sp_const(t2, PB, 2 * m->H), .enc = sp_const(t2, PS * PB, 2 * m->H), .Tx = PS, .len = len};
        d.keys = additive ? sp_const(t2, PS * PB, m->att.attn_size) : d.enc;
        sp_onnx_value din[6], dout[4];
        int ni = 0;
        no = 0;
        din[ni++] = (sp_onnx_value){"prev", m->out_emb.weight, SP_ONNX_IDS};
        din[ni++] = (sp_onnx_value){"h", state[0], SP_ONNX_ROWS};
        if (lstm) din[ni++] = (sp_onnx_value){"c", state[1], SP_ONNX_ROWS};
        if (m->attn) din[ni++] = (sp_onnx_value){"y", d.enc, SP_ONNX_SEQ};
        if (additive) din[ni++] = (sp_onnx_value){"keys", d.keys, SP_ONNX_SEQ};
        if (!m->attn) din[ni++] = (sp_onnx_value){"ctx", d.ctx, SP_ONNX_ROWS};
        sp_tensor *lg = st == SP_OK ? decode_step(t2, m, &d, prev, PB, state, 0) : NULL;
        dout[no++] = (sp_onnx_value){"logits", lg, SP_ONNX_ROWS};
        dout[no++] = (sp_onnx_value){"h_next", state[0], SP_ONNX_ROWS};
        if (lstm) dout[no++] = (sp_onnx_value){"c_next", state[1], SP_ONNX_ROWS};
        if (m->attn) dout[no++] = (sp_onnx_value){"attention", d.weights, SP_ONNX_ROWS};
        sp_onnx_tape dec = {.tape = t2, .batch = PB, .steps = m->attn ? PS : 0, .n_in = ni, .in = din, .n_out = no,
                            .out = dout, .lengths = m->attn ? "lengths" : NULL, .metadata = meta};
        if (st == SP_OK && !lg) st = sp_fail(sp_tape_status(t2), "%s", sp_tape_errmsg(t2));
        else if (st == SP_OK) st = sp_onnx_export_tape(&dec, dec_path);
    }
    if (st != SP_OK) fprintf(stderr, PROG ": export: %s\n", t && t2 && len ? sp_last_error() : "out of memory");
    else printf("wrote %s (ids [time, batch], lengths [batch] -> y, h%s%s%s) and %s (prev [batch], h%s%s%s -> logits, "
                "h_next%s%s)\n", enc_path, lstm ? ", c" : "", additive ? ", keys" : "", m->attn ? "" : ", ctx", dec_path,
                lstm ? ", c" : "", m->attn ? ", y, lengths" : ", ctx", additive ? ", keys" : "", lstm ? ", c_next" : "",
                m->attn ? ", attention" : "");
    sp_tape_free(t), sp_tape_free(t2), free(len);
    return st == SP_OK ? 0 : 1;
}

static int do_export(int argc, char **argv)
{
    export_opts xo = {0};
    ex_args args;
    int rc = ex_cli_parse(&EXPORT_CLI, argc, argv, &xo, &args);
    if (rc >= 0) return rc;
    if (!xo.load || !xo.onnx || !*xo.onnx) {
        fprintf(stderr, PROG ": export needs --load CKPT and --onnx PREFIX (try " PROG " export --help)\n");
        return 2;
    }
    if (xo.threads) sp_set_threads(xo.threads);
    options o = {0};
    model m;
    if (load_model(xo.load, &m, &o)) return 1;
    char cfg[160], go[8], ty[8];
    snprintf(cfg, sizeof cfg, "cell=%s emb=%d hidden=%d dec_hidden=%d attention=%s formats=%s", o.cell, m.E, m.H, m.HD,
             o.attention, o.formats);
    snprintf(go, sizeof go, "%d", DT_GO), snprintf(ty, sizeof ty, "%d", DT_TY);
    const char *meta[] = {"dates.input_chars", DT_IN_CHARS, "dates.output_chars", DT_OUT_CHARS, "dates.go", go,
                          "dates.steps", ty, "dates.config", cfg, NULL};
    rc = export_graphs(&m, xo.onnx, meta);
    if (!rc && xo.ids) {
        dataset d = {0};
        o.test_n = xo.test_n;
        sp_tape *t = sp_tape_new();
        if (!t || (xo.eval_file ? read_dated(xo.eval_file, &d) : make_test(&d, &o))) rc = 1;
        else rc = write_ids(t, &m, &d, xo.ids, xo.eval_file ? "dated lines" : "held-out examples");
        sp_tape_free(t);
        free(d.text), free(d.iso), free(d.format);
    }
    sp_params_free(m.ps);
    return rc;
}

/* ------------------------------------------------------------------ heatmap */

/* The attention weights of the first n test examples under greedy decoding, as one heatmap per
 * example: rows the 10 output characters, columns the input characters. Data in svg.tsv (one
 * gnuplot matrix block per example), the script in svg.gp (file names as ARG1/ARG2, so it can be
 * rerun on its own), drawn by common/gnuplot.c (no shell; every file written atomically). */
static int heatmap(sp_tape *t, const model *m, const dataset *d, int n, const char *svg)
{
    if (n > d->n) n = d->n;
    if (n > 4) n = 4;
    char out[4][11] = {{0}};
    static sp_real w[4 * DT_TY * TEXT_CAP];
    if (greedy_weights(t, m, d->text, n, out, w, NULL, NULL)) return -1;
    char tsv[1024], gp[1024], err[1200];
    snprintf(tsv, sizeof tsv, "%s.tsv", svg), snprintf(gp, sizeof gp, "%s.gp", svg);
    char *script = NULL;
    size_t slen = 0;
    FILE *g = open_memstream(&script, &slen);
    ex_atomic fa = {0}, ga = {0};
    FILE *f = g ? ex_atomic_open(&fa, tsv, err, sizeof err) : NULL;
    if (!f) {
        if (g) fclose(g);
        free(script);
        sp_fail(SP_ERR_IO, "%s", g ? err : "out of memory");
        return -1;
    }
    fprintf(g, "# written by spool-dates --heatmap: attention weights of %d test examples\n"
               "# redraw: gnuplot -c THIS.gp OUT.svg DATA.tsv (the .tsv written next to this file; no file\n"
               "# name is written into the script)\n"
               "set terminal svg size 1100,%d dynamic font 'sans,11'\nset output ARG1\n"
               "set multiplot layout %d,1\nset palette defined (0 'white', 1 '#08306b')\nset cbrange [0:1]\n"
               "unset key\nset yrange [9.5:-0.5]\n",
            n, 260 * n, n);
    for (int b = 0; b < n; b++) {
        char norm[TEXT_CAP];
        dt_normalise(d->text[b], norm, TEXT_CAP);
        int L = (int)strlen(norm);
        fprintf(f, "# example %d: \"%s\" -> %s (gold %s)\n", b, norm, out[b], d->iso[b]);
        for (int s = 0; s < DT_TY; s++)
            for (int x = 0; x < L; x++) fprintf(f, "%.4f%c", (double)w[((size_t)b * DT_TY + s) * TEXT_CAP + x], x + 1 == L ? '\n' : '\t');
        fprintf(f, "\n\n");
        fprintf(g, "set title \"%s  ->  %s\" noenhanced\nset xrange [-0.5:%d.5]\nset xtics (", norm, out[b], L - 1);
        for (int x = 0; x < L; x++) fprintf(g, "%s\"%c\" %d", x ? ", " : "", norm[x] == ' ' ? '_' : norm[x], x);
        fprintf(g, ") noenhanced\nset ytics (");
        for (int s = 0; s < DT_TY; s++) fprintf(g, "%s\"%c\" %d", s ? ", " : "", out[b][s], s);
        fprintf(g, ")\nplot ARG2 index %d matrix with image pixels\n", b);
    }
    fprintf(g, "unset multiplot\n");
    int bad = fclose(g) != 0 || !script;
    if (bad) snprintf(err, sizeof err, "out of memory"), ex_atomic_abort(&fa);
    else if (ex_atomic_commit(&fa, err, sizeof err)) bad = 1;
    else if (!(g = ex_atomic_open(&ga, gp, err, sizeof err)) || fputs(script, g) < 0 || ex_atomic_commit(&ga, err, sizeof err))
        bad = 1, ex_atomic_abort(&ga);
    if (bad) {
        free(script);
        sp_fail(SP_ERR_IO, "%s", err);
        return -1;
    }
    const char *args[] = {tsv, NULL};
    int r = ex_plot_svg(svg, script, args, err, sizeof err);
    free(script);
    if (r < 0) {
        sp_fail(SP_ERR_IO, "%s (data %s, script %s)", err, tsv, gp);
        return -1;
    }
    if (r > 0) printf("heatmap: gnuplot is not installed; data in %s, script in %s\n", tsv, gp);
    else printf("heatmap: attention of %d test examples in %s (data %s)\n", n, svg, tsv);
    return 0;
}

/* ------------------------------------------------------------------ training */

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "export")) return do_export(argc - 1, argv + 1);
    options o;
    int prc = parse_args(argc, argv, &o);
    if (prc >= 0) return prc;
    if (o.threads) sp_set_threads(o.threads);
    if (o.n_translate || o.eval_file) return translate(&o);
    char herr[600];
    if (o.heatmap && ex_check_regular(o.heatmap, herr, sizeof herr)) { /* before training, not after */
        fprintf(stderr, PROG ": --heatmap: %s\n", herr);
        return 1;
    }

    sp_rng rng;
    sp_rng_seed(&rng, o.seed);
    model m;
    if (o.resume) {
        static const char *const arch[] = {"cell", "emb", "hidden", "dec-hidden", "attention", NULL};
        options mine = o;
        char why[256];
        if (model_from_ckpt(o.resume, &m, &o)) return 1;
        if (ex_given_differs(&CLI, &cli_args, &mine, &o, arch, why, sizeof why)) {
            fprintf(stderr, PROG ": resuming from '%s': %s\n", o.resume, why);
            sp_params_free(m.ps);
            return 1;
        }
    } else if (model_init(&m, o.cell, o.emb, o.hidden, o.dec_hidden, o.attention, &rng)) {
        fprintf(stderr, PROG ": %s\n", sp_last_error());
        return 1;
    }
    sp_optim_config oc = sp_optim_defaults(SP_ADAM);
    sp_optim *opt = sp_optim_new(m.ps, &oc);
    if (!opt) {
        fprintf(stderr, PROG ": %s\n", sp_last_error());
        return 1;
    }
    if (o.resume) {
        sp_ckpt_opts co = {.rng = &rng};
        if (sp_load(o.resume, m.ps, opt, &co) != SP_OK) {
            fprintf(stderr, PROG ": %s\n", sp_last_error());
            return 1;
        }
    }
    dataset test;
    char (*pred)[11] = calloc((size_t)o.test_n, 11);
    char (*texts)[TEXT_CAP] = calloc((size_t)o.batch, TEXT_CAP);
    char (*iso)[11] = calloc((size_t)o.batch, 11);
    if (make_test(&test, &o) || !pred || !texts || !iso) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    printf(PROG ": cell %s emb %d hidden %d dec-hidden %d attention %s params %zu | batch %d steps %d lr %g seed %llu | "
           "%d formats (%s), %ld dates, test %.0f%% of them, %d test examples\n%s\n",
           o.cell, o.emb, o.hidden, o.dec_hidden, o.attention, m.ps->numel, o.batch, o.steps, o.lr,
           (unsigned long long)o.seed,
           format_set(&o) == DT_LONG || format_set(&o) == DT_PROSE ? dt_nformats_all() - dt_nformats() : format_set(&o) == DT_ALL ? dt_nformats_all() : dt_nformats(),
           o.formats, dt_range_days(), 100 * o.test_frac, o.test_n, sp_info());

    sp_tape *t = sp_tape_new();
    double t0 = ex_now(), loss_sum = 0, acc = 0;
    int loss_n = 0, rc = 0;
    int64_t start = sp_optim_steps(opt);
    ex_progress pg; /* on a terminal a redrawn step line between the evaluation lines */
    ex_progress_init(&pg, o.steps, 0, 0);
    for (int64_t s = start; s < o.steps; s++) {
        /* batch s is a function of (seed, s) only, so a resumed run sees the same data */
        dt_gen g;
        dt_gen_init(&g, o.seed, o.test_frac, 0, (uint64_t)s + 1);
        dt_gen_formats(&g, format_set(&o));
        for (int b = 0; b < o.batch; b++) dt_gen_next(&g, texts[b], TEXT_CAP, iso[b], NULL);
        sp_tape_reset(t);
        sp_params_zero_grad(m.ps);
        sp_tensor *loss = batch_loss(t, &m, texts, iso, o.batch);
        if (!loss || sp_backward(t, loss) != SP_OK) {
            fprintf(stderr, PROG ": step %lld: %s\n", (long long)s, sp_tape_errmsg(t));
            rc = 1;
            break;
        }
        double gnorm = 0;
        sp_status st = o.clip > 0 ? sp_clip_grad_norm(m.ps, o.clip, &gnorm) : SP_OK;
        if (st == SP_OK) st = sp_optim_step(opt, o.lr);
        if (st != SP_OK) {
            fprintf(stderr, PROG ": step %lld: %s\n", (long long)s, sp_last_error());
            rc = 1;
            break;
        }
        loss_sum += loss->data[0], loss_n++;
        int64_t done = s + 1;
        ex_progress_step(&pg, (long)done, "loss %.4f", loss_sum / loss_n);
        if (done % o.eval_every == 0 || done == o.steps) {
            acc = eval_greedy(t, &m, &test, pred, NULL);
            if (acc < 0) {
                fprintf(stderr, PROG ": evaluation: %s\n", sp_tape_errmsg(t));
                rc = 1;
                break;
            }
            ex_progress_line(&pg, stdout, "step %6lld  loss %.4f  test exact-match (greedy) %.4f  %.1f s", (long long)done,
                             loss_sum / loss_n, acc, ex_now() - t0);
            loss_sum = 0, loss_n = 0;
            if (o.save && save(o.save, &m, opt, &o, &rng) != SP_OK) {
                fprintf(stderr, PROG ": %s\n", sp_last_error());
                rc = 1;
                break;
            }
        }
    }
    ex_progress_done(&pg);
    double train_s = ex_now() - t0;
    if (!rc) {
        double t1 = ex_now();
        acc = eval_greedy(t, &m, &test, pred, NULL);
        double tg = ex_now() - t1;
        char(*bpred)[11] = calloc((size_t)o.test_n, 11);
        double bacc = -1, tb = 0;
        if (o.beam > 1 && bpred) {
            t1 = ex_now();
            bacc = eval_beam(t, &m, &test, o.beam, bpred);
            tb = ex_now() - t1;
        }
        if (acc < 0 || (o.beam > 1 && bacc < 0)) {
            fprintf(stderr, PROG ": evaluation: %s\n", sp_tape_errmsg(t));
            rc = 1;
        } else {
            for (int i = 0; i < o.show && i < test.n; i++)
                printf("  %-32s gold %s  greedy %s%s  beam %s%s\n", test.text[i], test.iso[i], pred[i],
                       strcmp(pred[i], test.iso[i]) ? " (wrong)" : "", o.beam > 1 ? bpred[i] : "-",
                       o.beam > 1 && strcmp(bpred[i], test.iso[i]) ? " (wrong)" : "");
            /* per-format accuracy shows which formats are still hard */
            int nf = dt_nformats_all(), *ok = calloc((size_t)nf, sizeof(int)), *cnt = calloc((size_t)nf, sizeof(int));
            for (int i = 0; ok && cnt && i < test.n; i++) {
                cnt[test.format[i]]++;
                ok[test.format[i]] += !strcmp(pred[i], test.iso[i]);
            }
            printf("\nper format (greedy):\n");
            for (int f = 0; ok && cnt && f < nf; f++)
                if (cnt[f]) printf("  %-24s %4d/%-4d %.3f\n", dt_format_name(f), ok[f], cnt[f], cnt[f] ? (double)ok[f] / cnt[f] : 0);
            free(ok), free(cnt);
            printf("test exact-match: greedy %.4f (%.1f s)", acc, tg);
            if (o.beam > 1) printf(", beam(%d) %.4f (%.1f s)", o.beam, bacc, tb);
            printf(" on %d held-out examples; training %.1f s\n", test.n, train_s);
            if (o.save) {
                if (save(o.save, &m, opt, &o, &rng) != SP_OK) {
                    fprintf(stderr, PROG ": %s\n", sp_last_error());
                    rc = 1;
                } else {
                    printf("checkpoint: %s\n", o.save);
                }
            }
            if (!rc && o.heatmap && m.attn && heatmap(t, &m, &test, 4, o.heatmap)) {
                fprintf(stderr, PROG ": heatmap: %s\n", sp_tape_status(t) ? sp_tape_errmsg(t) : sp_last_error());
                rc = 1;
            }
        }
        free(bpred);
    }
    sp_tape_free(t);
    sp_optim_free(opt);
    sp_params_free(m.ps);
    free(pred), free(texts), free(iso), free(test.text), free(test.iso), free(test.format);
    return rc;
}
