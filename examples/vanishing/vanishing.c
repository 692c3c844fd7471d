/* SPDX-License-Identifier: MIT */
/* vanishing.c - spool-vanishing: vanishing (and exploding) gradients, shown on a task that needs
 * memory over a gap of T steps: read a key symbol, then T distractors, then a query; answer the
 * key (vanishing_data.h). For each gap T and each cell (vanilla tanh RNN, GRU, LSTM), all with
 * the same parameter budget, it trains a model and reports held-out accuracy (chance is 1/K).
 *
 * It also reads the tape after sp_backward: ||dL/dh<t>|| for every step t of one batch, where L
 * is the loss at the last step. The program runs the cell's own step function in its own loop
 * (exactly what sp_seq_run does) so that it keeps a pointer to every step's output h<t>; each of
 * those nodes' ->grad is dL/dh<t> until the tape is reset. A vanilla RNN whose recurrent matrix
 * is scaled up shows the opposite failure, exploding gradients, and a short SGD run with and
 * without norm clipping shows what clipping does about it. Tables go to stdout, data (.tsv) and
 * plots (gnuplot, SVG) to --out-dir. */
#include "spool.h"
#include "spool/layers.h"
#include "spool/optim.h"
#include "common/opts.h"
#include "common/progress.h"
#include "common/text.h"
#include "common/atomic.h"
#include "common/gnuplot.h"
#include "vanishing_data.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PROG "spool-vanishing"
#define MAXG 16

typedef struct {
    const char *name;
    sp_cell_kind kind;
    int gates;
} cellspec;

static const cellspec CELLS[] = {{"rnn", SP_CELL_RNN_TANH, 1},
                                 {"gru", SP_CELL_GRU_RESET_AFTER_MATMUL, 3},
                                 {"lstm", SP_CELL_LSTM, 4}};
enum { NCELLS = 3 };

typedef struct {
    int gaps[MAXG], ngaps, use[NCELLS];
    int K, D, steps, batch, eval_every, test_n, grad_gap, explode_gap, explode_steps, threads, no_plot;
    long budget;
    double lr, clip, target, explode_scale, explode_lr, gate_bias;
    double explode_lrs[MAXG]; /* more SGD learning rates for the with/without clipping table */
    int n_explode_lrs;
    uint64_t seed;
    const char *out_dir, *save_dir, *eval;
} options;

typedef struct {
    const cellspec *spec;
    sp_params *ps;
    sp_cell cell;
    sp_linear head;
    int H;
} net;

/* A comma list with an empty item ("2,,3", ",2", "2,") is a typing slip, not a shorter list, and
 * one longer than the buffer would be cut: both are refused, naming the option. */
static int bad_list(const char *opt, const char *s, size_t cap, char *err, size_t errn)
{
    size_t n = strlen(s);
    if (n >= cap) {
        snprintf(err, errn, "%s: list too long", opt);
        return -1;
    }
    if (!n || s[0] == ',' || s[n - 1] == ',' || strstr(s, ",,")) {
        snprintf(err, errn, "%s: empty item in '%s'", opt, s);
        return -1;
    }
    return 0;
}

static int set_gaps(const char *s, void *base, char *err, size_t errn)
{
    options *o = base;
    char buf[256];
    if (bad_list("--gaps", s, sizeof buf, err, errn)) return -1;
    snprintf(buf, sizeof buf, "%s", s);
    int n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        long v;
        if (n == MAXG) {
            snprintf(err, errn, "--gaps: at most %d gaps", MAXG);
            return -1;
        }
        if (ex_parse_long("--gaps", tok, 1, 100000, &v, err, errn)) return -1;
        o->gaps[n++] = (int)v;
    }
    if (n == 0) {
        snprintf(err, errn, "--gaps needs at least one gap");
        return -1;
    }
    o->ngaps = n;
    return 0;
}

static int set_explode_lrs(const char *s, void *base, char *err, size_t errn)
{
    options *o = base;
    char buf[256];
    if (*s && bad_list("--explode-lrs", s, sizeof buf, err, errn)) return -1; /* "": no rates */
    snprintf(buf, sizeof buf, "%s", s);
    o->n_explode_lrs = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (o->n_explode_lrs == MAXG) {
            snprintf(err, errn, "--explode-lrs: at most %d rates", MAXG);
            return -1;
        }
        if (ex_parse_real("--explode-lrs", tok, 1e-9, 100, &o->explode_lrs[o->n_explode_lrs], err, errn)) return -1;
        o->n_explode_lrs++;
    }
    return 0;
}

static int set_cells(const char *s, void *base, char *err, size_t errn)
{
    options *o = base;
    char buf[64];
    if (bad_list("--cells", s, sizeof buf, err, errn)) return -1;
    snprintf(buf, sizeof buf, "%s", s);
    memset(o->use, 0, sizeof o->use);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int found = 0;
        for (int c = 0; c < NCELLS; c++)
            if (!strcmp(tok, CELLS[c].name)) o->use[c] = found = 1;
        if (!found) {
            snprintf(err, errn, "--cells: unknown cell '%s' (rnn, gru, lstm)", tok);
            return -1;
        }
    }
    if (!o->use[0] && !o->use[1] && !o->use[2]) {
        snprintf(err, errn, "--cells selects no cell");
        return -1;
    }
    return 0;
}

#define T options
static const ex_opt OPTS[] = {
    EX_CALLBACK("gaps", set_gaps, "5,10,20,50,100,200", 0, "LIST", "gaps T, comma separated"),
    EX_CALLBACK("cells", set_cells, "rnn,gru,lstm", 0, "LIST", "of rnn,gru,lstm"),
    EX_OPT("budget", EX_LONG, T, budget, "5000", 100, 100000000, 0, "N", "parameters per model, cell + head"),
    EX_OPT("symbols", EX_INT, T, K, "8", 2, 1000, 0, "K", "key symbols, chance = 1/K"),
    EX_OPT("distractors", EX_INT, T, D, "8", 1, 1000, 0, "D", "distractor symbols"),
    EX_OPT("steps", EX_INT, T, steps, "3000", 0, 100000000, 0, "N", "most updates per model"),
    EX_OPT("batch", EX_INT, T, batch, "32", 1, 65536, 0, "B", "sequences per update"),
    EX_OPT("lr", EX_DBL, T, lr, "0.005", 0, 10, 0, "X", "Adam learning rate"),
    EX_OPT("clip", EX_DBL, T, clip, "1", 0, 1e9, 0, "X", "gradient-norm clipping, 0 = off"),
    EX_OPT("gate-bias", EX_DBL, T, gate_bias, "5", -20, 20, 0, "X",
           "initial bias of the gate that keeps the state: LSTM forget gate,\n"
           "                        GRU update gate z (PyTorch's default init is about 0)"),
    EX_OPT("eval-every", EX_INT, T, eval_every, "100", 1, 100000000, 0, "N", "held-out accuracy every N updates"),
    EX_OPT("target", EX_DBL, T, target, "0.99", 0, 1.01, 0, "X", "stop a model early at this held-out accuracy"),
    EX_OPT("test-n", EX_INT, T, test_n, "1000", 1, 1000000, 0, "N", "held-out sequences"),
    EX_OPT("grad-gap", EX_INT, T, grad_gap, "100", 1, 100000, 0, "T", "gap of the gradient-norm profile"),
    EX_OPT("explode-scale", EX_DBL, T, explode_scale, "2", 0, 100, 0, "S",
           "recurrent matrix of the exploding RNN: S x orthogonal (0 = skip)"),
    EX_OPT("explode-gap", EX_INT, T, explode_gap, "20", 1, 100000, 0, "T", "gap of the clipping experiment"),
    EX_OPT("explode-steps", EX_INT, T, explode_steps, "400", 0, 1000000, 0, "N", "SGD updates with and without clipping"),
    EX_OPT("explode-lr", EX_DBL, T, explode_lr, "0.2", 0, 100, 0, "X", "SGD learning rate of that experiment (plotted)"),
    EX_CALLBACK("explode-lrs", set_explode_lrs, "0.1,0.05,0.02,0.01", 0, "LIST",
                "further SGD learning rates, with and without clipping, for the table of where clipping matters\n"
                "      (empty: none)"),
    EX_OPT("seed", EX_U64, T, seed, "1", 0, 0, 0, "S", "seed of data and initialisation"),
    EX_OPT("out-dir", EX_STR, T, out_dir, "vanishing-plots", 0, 0, 0, "DIR",
           ".tsv data, gnuplot script and SVG plots (created; the docs' figures: --out-dir docs/img)"),
    EX_OPT("no-plot", EX_FLAG, T, no_plot, NULL, 0, 0, 0, NULL, "write the data and script but do not run gnuplot"),
    EX_OPT("save-dir", EX_STR, T, save_dir, NULL, 0, 0, 0, "DIR", "save every trained model as DIR/vanishing_<cell>_T<T>.safetensors"),
    EX_OPT("eval", EX_STR, T, eval, NULL, 0, 0, 0, "CKPT", "load a saved model and report its accuracy"),
    EX_OPT_THREADS(T, threads, 0),
    EX_OPT_PRECISION(0),
};
#undef T
static const ex_cli CLI = {PROG,
                           "Usage: " PROG " [options]\n"
                           "       " PROG " --eval CKPT     accuracy of a saved model on fresh sequences\n"
                           "Trains a vanilla RNN, a GRU and an LSTM (same parameter budget) to recall the first symbol\n"
                           "of a sequence after T distractors, for several T; prints accuracy per T and cell and the\n"
                           "norm of dL/dh<t> for every step t of one batch; writes .tsv data and SVG plots.\n",
                           NULL, NULL, NULL, OPTS, sizeof OPTS / sizeof OPTS[0], 0, NULL};

/* -1 to go on, else the exit status */
static int parse_args(int argc, char **argv, options *o)
{
    char err[256];
    *o = (options){0};
    if (set_gaps("5,10,20,50,100,200", o, err, sizeof err) || set_cells("rnn,gru,lstm", o, err, sizeof err) ||
        set_explode_lrs("0.1,0.05,0.02,0.01", o, err, sizeof err))
        return 1;
    ex_args args;
    return ex_cli_parse(&CLI, argc, argv, o, &args);
}

/* -------------------------------------------------------------------- model */

/* rec_scale > 0 replaces each gate block of the recurrent matrix by rec_scale x an orthogonal one. */
static int net_init(net *n, const cellspec *spec, int I, int H, int K, double rec_scale, double gate_bias, sp_rng *rng)
{
    memset(n, 0, sizeof *n);
    n->spec = spec, n->H = H;
    n->ps = sp_params_new();
    if (!n->ps || sp_cell_init(&n->cell, spec->kind, n->ps, "rnn", 0, 0, I, H, NULL, rng) ||
        sp_linear_init(&n->head, n->ps, "head", H, K, 1, rng))
        return -1;
    /* The gate that keeps the old state is rows [H, 2H) in both PyTorch layouts (LSTM i,f,g,o: f;
     * GRU r,z,n: z). A positive bias makes the cell remember by default, so the gradient through
     * the state path starts near 1 per step instead of shrinking geometrically (Gers et al. 2000;
     * Tallec & Ollivier 2018 push the same idea further with "chrono" initialisation). */
    if (spec->kind != SP_CELL_RNN_TANH)
        for (int j = 0; j < H; j++) {
            *sp_at(n->cell.b_ih, 0, H + j) = (sp_real)gate_bias;
            *sp_at(n->cell.b_hh, 0, H + j) = 0;
        }
    if (rec_scale > 0) {
        for (int g = 0; g < spec->gates; g++)
            if (sp_init_orthogonal(n->cell.w_hh, g * H, H, rng)) return -1;
        for (size_t k = 0; k < sp_numel(n->cell.w_hh); k++) n->cell.w_hh->data[k] *= (sp_real)rec_scale;
    }
    return 0;
}

/* The loss of one batch; every step's output h<t> goes to hs[0..L-1] (may be NULL) and the
 * logits' values to logits[B*K] (may be NULL). */
static sp_tensor *forward(sp_tape *t, const net *n, const vn_task *task, const int *sym, const int *key, int B,
                          sp_tensor **hs, float *logits)
{
    int L = vn_steps(task), I = vn_inputs(task);
    sp_tensor *x = sp_const(t, L * B, I);
    if (!x) return NULL;
    for (int r = 0; r < L * B; r++) *sp_at(x, r, sym[r]) = 1;
    sp_tensor *xp = n->cell.project ? n->cell.project(t, &n->cell, x) : x;
    sp_tensor *state[SP_CELL_MAX_STATE] = {0}, *ns[SP_CELL_MAX_STATE] = {0};
    if (sp_cell_zero_state(t, &n->cell, B, state) != SP_OK) return NULL;
    for (int s = 0; s < L; s++) {
        sp_tape_scope(t, "%s/t%d", n->cell.name, s);
        if (n->cell.step(t, &n->cell, sp_slice_rows(t, xp, s * B, B), state, ns) != SP_OK) return NULL;
        for (int k = 0; k < n->cell.n_state; k++) state[k] = ns[k];
        if (hs) hs[s] = ns[0];
    }
    sp_tape_scope(t, "head");
    sp_tensor *lg = sp_linear_forward(t, &n->head, state[0]);
    sp_tape_scope(t, NULL);
    if (lg && logits)
        for (int b = 0; b < B; b++)
            for (int j = 0; j < task->K; j++) logits[b * task->K + j] = (float)*sp_at(lg, b, j);
    return sp_softmax_xent(t, lg, key, NULL);
}

/* Held-out accuracy on test_n sequences from a fixed stream (the same for every model of a gap). */
static double evaluate(sp_tape *t, const net *n, const vn_task *task, int test_n, uint64_t seed)
{
    const int chunk = 250;
    uint64_t st = seed ^ 0x7e57ull ^ ((uint64_t)task->T << 32);
    int L = vn_steps(task), *sym = malloc(sizeof(int) * (size_t)L * chunk), *key = malloc(sizeof(int) * chunk);
    float *lg = malloc(sizeof(float) * (size_t)chunk * task->K);
    double ok = 0;
    int done = 0;
    while (sym && key && lg && done < test_n) {
        int B = test_n - done < chunk ? test_n - done : chunk;
        vn_make_batch(task, B, &st, sym, key);
        sp_tape_reset(t);
        if (!forward(t, n, task, sym, key, B, NULL, lg)) {
            done = -1;
            break;
        }
        ok += vn_accuracy(lg, key, B, task->K) * B;
        done += B;
    }
    free(sym), free(key), free(lg);
    return done > 0 ? ok / done : -1;
}

/* ||dL/dh<t>|| (Frobenius over the batch) for t = 0..L-1 of one batch, into norms[L]. */
static int grad_profile(sp_tape *t, net *n, const vn_task *task, int B, uint64_t seed, double *norms)
{
    int L = vn_steps(task), rc = -1;
    int *sym = malloc(sizeof(int) * (size_t)L * B), *key = malloc(sizeof(int) * B);
    sp_tensor **hs = malloc(sizeof(sp_tensor *) * (size_t)L);
    uint64_t st = seed ^ 0x9a9aull;
    if (sym && key && hs) {
        vn_make_batch(task, B, &st, sym, key);
        sp_tape_reset(t);
        sp_params_zero_grad(n->ps);
        sp_tensor *loss = forward(t, n, task, sym, key, B, hs, NULL);
        if (loss && sp_backward(t, loss) == SP_OK) {
            for (int s = 0; s < L; s++) {
                sp_tensor *h = hs[s];
                double q = 0;
                for (int r = 0; h->grad && r < h->rows; r++)
                    for (int j = 0; j < h->cols; j++) q += (double)h->grad[(size_t)r * h->stride + j] * h->grad[(size_t)r * h->stride + j];
                norms[s] = sqrt(q);
            }
            rc = 0;
        }
    }
    free(sym), free(key), free(hs);
    return rc;
}

static sp_status save_net(const char *path, const net *n, const vn_task *task, double acc)
{
    char T[16], K[16], D[16], H[16], A[32];
    snprintf(T, sizeof T, "%d", task->T), snprintf(K, sizeof K, "%d", task->K), snprintf(D, sizeof D, "%d", task->D);
    snprintf(H, sizeof H, "%d", n->H), snprintf(A, sizeof A, "%.4f", acc);
    sp_kv meta[] = {{"model", "spool-vanishing"}, {"cell", n->spec->name}, {"gap", T}, {"symbols", K},
                    {"distractors", D}, {"hidden", H}, {"accuracy", A}};
    sp_ckpt_opts co = {.meta = meta, .n_meta = 7};
    return sp_save(path, n->ps, NULL, &co);
}

/* --------------------------------------------------------------------- runs */

typedef struct {
    double acc, seconds; /* acc: at the end of training */
    double best;         /* the best held-out accuracy of any evaluation on the way */
    int steps, best_step;
} result;

/* Train one cell on one gap with Adam (clipping as configured); stops early at the target. */
static int train_one(const options *o, const cellspec *spec, const vn_task *task, sp_tape *t, result *res, net *out)
{
    int I = vn_inputs(task), H = vn_hidden_for_budget(spec->gates, I, task->K, o->budget), L = vn_steps(task);
    sp_rng rng;
    sp_rng_seed(&rng, o->seed * 1000003u + (uint64_t)task->T);
    net n;
    if (net_init(&n, spec, I, H, task->K, 0, o->gate_bias, &rng)) {
        fprintf(stderr, PROG ": %s\n", sp_last_error());
        return -1;
    }
    sp_optim_config oc = sp_optim_defaults(SP_ADAM);
    sp_optim *opt = sp_optim_new(n.ps, &oc);
    int *sym = malloc(sizeof(int) * (size_t)L * o->batch), *key = malloc(sizeof(int) * o->batch);
    if (!opt || !sym || !key) return -1;
    uint64_t st = o->seed ^ ((uint64_t)task->T << 20) ^ 0x11ull;
    double t0 = ex_now(), acc = 1.0 / task->K, loss_sum = 0, best = 0;
    int s = 0, rc = 0, ln = 0, best_step = 0;
    ex_progress pg; /* on a terminal a redrawn update line between the evaluation lines */
    ex_progress_init(&pg, o->steps, 0, 0);
    for (s = 0; s < o->steps; s++) {
        vn_make_batch(task, o->batch, &st, sym, key);
        sp_tape_reset(t);
        sp_params_zero_grad(n.ps);
        sp_tensor *loss = forward(t, &n, task, sym, key, o->batch, NULL, NULL);
        if (!loss || sp_backward(t, loss) != SP_OK) {
            fprintf(stderr, PROG ": %s\n", sp_tape_errmsg(t));
            rc = -1;
            break;
        }
        sp_status ss = o->clip > 0 ? sp_clip_grad_norm(n.ps, o->clip, NULL) : SP_OK;
        if (ss == SP_OK) ss = sp_optim_step(opt, o->lr);
        if (ss != SP_OK) {
            ex_progress_line(&pg, stdout, "    %s T=%d: update %d: %s (training stopped)", spec->name, task->T, s, sp_last_error());
            break;
        }
        loss_sum += loss->data[0], ln++;
        ex_progress_step(&pg, s + 1, "%s T=%d  loss %.4f", spec->name, task->T, loss_sum / ln);
        if ((s + 1) % o->eval_every == 0) {
            acc = evaluate(t, &n, task, o->test_n, o->seed);
            if (acc > best) best = acc, best_step = s + 1;
            ex_progress_line(&pg, stdout, "    %-4s T=%-4d update %5d  loss %.4f  held-out accuracy %.3f  %.1f s", spec->name,
                             task->T, s + 1, loss_sum / ln, acc, ex_now() - t0);
            loss_sum = 0, ln = 0;
            if (acc >= o->target) {
                s++;
                break;
            }
        }
    }
    ex_progress_done(&pg);
    if (!rc && (o->steps == 0 || s % o->eval_every)) acc = evaluate(t, &n, task, o->test_n, o->seed);
    if (acc > best) best = acc, best_step = s;
    res->acc = acc, res->steps = s, res->seconds = ex_now() - t0;
    res->best = best, res->best_step = best_step;
    if (rc == 0 && acc < 0) rc = -1;
    if (rc == 0 && o->save_dir) {
        char path[1024];
        snprintf(path, sizeof path, "%s/vanishing_%s_T%d.safetensors", o->save_dir, spec->name, task->T);
        if (save_net(path, &n, task, acc) != SP_OK) {
            fprintf(stderr, PROG ": %s\n", sp_last_error());
            rc = -1;
        }
    }
    sp_optim_free(opt);
    free(sym), free(key);
    if (out && rc == 0) *out = n;
    else sp_params_free(n.ps);
    return rc;
}

/* The exploding case: SGD on a scaled-up vanilla RNN, once without and once with clipping. The
 * norm (before clipping) and the loss of every update go to tsv columns. */
static int explode_run(const options *o, double lr, sp_tape *t, int clip, double *norm, double *loss, double *acc)
{
    vn_task task = {o->explode_gap, o->K, o->D};
    int I = vn_inputs(&task), H = vn_hidden_for_budget(1, I, task.K, o->budget), L = vn_steps(&task);
    sp_rng rng;
    sp_rng_seed(&rng, o->seed + 77);
    net n;
    if (net_init(&n, &CELLS[0], I, H, task.K, o->explode_scale, 0, &rng)) return -1;
    sp_optim_config oc = sp_optim_defaults(SP_SGD);
    sp_optim *opt = sp_optim_new(n.ps, &oc);
    int *sym = malloc(sizeof(int) * (size_t)L * o->batch), *key = malloc(sizeof(int) * o->batch);
    uint64_t st = o->seed ^ 0xe4e4ull;
    int s, rc = 0;
    for (s = 0; opt && sym && key && s < o->explode_steps; s++) {
        vn_make_batch(&task, o->batch, &st, sym, key);
        sp_tape_reset(t);
        sp_params_zero_grad(n.ps);
        sp_tensor *l = forward(t, &n, &task, sym, key, o->batch, NULL, NULL);
        if (!l || sp_backward(t, l) != SP_OK) {
            rc = -1;
            break;
        }
        double g = 0;
        sp_status ss = sp_clip_grad_norm(n.ps, clip ? 1.0 : 1e300, &g);
        norm[s] = g, loss[s] = l->data[0];
        if (ss == SP_OK) ss = sp_optim_step(opt, lr);
        if (ss != SP_OK) break; /* non-finite gradient: the run has blown up */
    }
    for (; s < o->explode_steps; s++) norm[s] = loss[s] = NAN;
    *acc = rc ? -1 : evaluate(t, &n, &task, o->test_n, o->seed);
    sp_optim_free(opt);
    sp_params_free(n.ps);
    free(sym), free(key);
    return rc;
}

/* ------------------------------------------------------------------ outputs */

/* One output file at a time, written atomically (examples/common/atomic.h). */
static ex_atomic out_file;

static FILE *open_out(const options *o, const char *name, char *path, size_t cap)
{
    char err[600];
    snprintf(path, cap, "%s/%s", o->out_dir, name);
    FILE *f = ex_atomic_open(&out_file, path, err, sizeof err);
    if (!f) fprintf(stderr, PROG ": %s\n", err);
    return f;
}

static int close_out(void) /* 0, or -1 with a message */
{
    char err[600];
    if (ex_atomic_commit(&out_file, err, sizeof err) == 0) return 0;
    fprintf(stderr, PROG ": %s\n", err);
    return -1;
}

static int write_plots(const options *o, int explode, int trained)
{
    char path[1024], trained_cmd[512] = "";
    if (trained)
        snprintf(trained_cmd, sizeof trained_cmd,
                 "set output 'vanishing_grad_trained.svg'\n"
                 "set title 'norm of dL/dh<t> after training (gap T = %d)'\n"
                 "plot for [c=2:*] 'vanishing_grad_trained.tsv' using 1:c with lines lw 2 title columnheader(c)\n",
                 o->grad_gap);
    FILE *f = open_out(o, "vanishing.gp", path, sizeof path);
    if (!f) return -1;
    int nu = 0; /* cells in the accuracy table: final accuracies, then the best ones */
    for (int c = 0; c < NCELLS; c++) nu += o->use[c];
    fprintf(f,
            "# gnuplot script written by spool-vanishing; run it in its own folder: gnuplot vanishing.gp\n"
            "set terminal svg size 760,440 dynamic noenhanced font 'sans,12'\n"
            "set datafile separator tab\nset key outside right\nset grid\n"
            "set output 'vanishing_grad.svg'\n"
            "set title 'norm of dL/dh<t> over one batch at initialisation (gap T = %d)'\n"
            "set xlabel 'time step t (loss at the last step)'\nset ylabel 'norm of dL/dh<t>'\nset logscale y\n"
            "set format y '%%.0e'\nset autoscale xfix\n"
            "plot for [c=2:*] 'vanishing_grad.tsv' using 1:c with lines lw 2 title columnheader(c)\n"
            "%s"
            "unset logscale y\nset format y '%%g'\nset autoscale xfixmin\nset logscale x\n"
            "set output 'vanishing_accuracy.svg'\n"
            "set title 'RNN / GRU / LSTM (equal budgets): held-out accuracy of recalling the first symbol after T distractors'\n"
            "set xlabel 'gap T'\nset ylabel 'accuracy'\nset yrange [0:1.05]\n"
            "plot for [c=2:%d] 'vanishing_accuracy.tsv' using 1:c with linespoints lw 2 pt 2*c+1 ps 1.3 "
            "title columnheader(c), for [c=%d:%d] 'vanishing_accuracy.tsv' using 1:c with linespoints lw 1 dt 3 "
            "pt 2*(c-%d)+1 ps 0.8 title columnheader(c), "
            "'vanishing_accuracy.tsv' using 1:(%g) with lines dt 2 lc rgb 'gray' title 'chance'\n",
            o->grad_gap, trained_cmd, 1 + nu, 2 + nu, 1 + 2 * nu, nu, 1.0 / o->K);
    if (explode)
        fprintf(f,
                "unset logscale x\nset yrange [*:*]\nset logscale y\nset format y '%%.0e'\n"
                "set output 'vanishing_explode.svg'\n"
                "set title 'vanilla RNN, W_hh = %g x orthogonal, SGD lr %g, gap %d: gradient norm before clipping'\n"
                "set xlabel 'update'\nset ylabel 'global gradient norm'\n"
                "plot 'vanishing_explode.tsv' using 1:2 with lines lw 2 title 'no clipping', "
                "'vanishing_explode.tsv' using 1:4 with lines lw 2 title 'clipped at norm 1'\n"
                "set output 'vanishing_explode_loss.svg'\nset title 'vanilla RNN, W_hh = %g x orthogonal, SGD lr %g: training loss'\n"
                "set ylabel 'loss'\n"
                "plot 'vanishing_explode.tsv' using 1:3 with lines lw 2 title 'no clipping', "
                "'vanishing_explode.tsv' using 1:5 with lines lw 2 title 'clipped at norm 1'\n",
                o->explode_scale, o->explode_lr, o->explode_gap, o->explode_scale, o->explode_lr);
    if (close_out()) return -1;
    if (o->no_plot) return 0;
    /* gnuplot runs in the output folder on the script just written (no shell, no path in it) */
    size_t len = 0;
    char err[600], *script = ex_read_file(path, &len, err, sizeof err);
    int r = script ? ex_gnuplot(o->out_dir, script, NULL, err, sizeof err) : -1;
    free(script);
    if (r != 0) {
        fprintf(stderr, PROG ": cannot draw the plots of %s: %s%s\n", path, err, r == 1 ? " (use --no-plot to skip)" : "");
        return -1;
    }
    printf("plots: %s/vanishing_grad.svg,%s vanishing_accuracy.svg%s\n", o->out_dir,
           trained ? " vanishing_grad_trained.svg," : "", explode ? ", vanishing_explode.svg, vanishing_explode_loss.svg" : "");
    return 0;
}

/* a difference of more than 0.1 in held-out accuracy counts */
static const char *clip_verdict(double noclip, double clip)
{
    return clip - noclip > 0.1 ? "clipping helps" : noclip - clip > 0.1 ? "clipping hurts (smaller steps)" : "no difference";
}

static int eval_ckpt(const options *o)
{
    sp_ckpt_info *ci = sp_ckpt_open(o->eval);
    if (!ci) {
        fprintf(stderr, PROG ": %s\n", sp_last_error());
        return 1;
    }
    const char *m = sp_ckpt_meta(ci, "model"), *c = sp_ckpt_meta(ci, "cell"), *T = sp_ckpt_meta(ci, "gap"),
               *K = sp_ckpt_meta(ci, "symbols"), *D = sp_ckpt_meta(ci, "distractors"), *H = sp_ckpt_meta(ci, "hidden");
    const cellspec *spec = NULL;
    for (int k = 0; c && k < NCELLS; k++)
        if (!strcmp(c, CELLS[k].name)) spec = &CELLS[k];
    vn_task task = {T ? atoi(T) : 0, K ? atoi(K) : 0, D ? atoi(D) : 0};
    int h = H ? atoi(H) : 0, ok = m && !strcmp(m, "spool-vanishing") && spec && task.T >= 1 && task.K >= 2 &&
                                     task.D >= 1 && h >= 1;
    sp_ckpt_close(ci); /* the strings above belong to ci: everything needed is decided by now */
    if (!ok) {
        fprintf(stderr, PROG ": %s is not a spool-vanishing checkpoint\n", o->eval);
        return 1;
    }
    sp_rng rng;
    sp_rng_seed(&rng, 0);
    net n;
    if (net_init(&n, spec, vn_inputs(&task), h, task.K, 0, 0, &rng) || sp_load(o->eval, n.ps, NULL, NULL) != SP_OK) {
        fprintf(stderr, PROG ": %s\n", sp_last_error());
        return 1;
    }
    sp_tape *t = sp_tape_new();
    double acc = evaluate(t, &n, &task, o->test_n, o->seed + 12345);
    printf("%s: %s, hidden %d, gap T=%d: accuracy %.4f on %d fresh sequences (chance %.3f)\n", o->eval, spec->name, h,
           task.T, acc, o->test_n, 1.0 / task.K);
    sp_tape_free(t);
    sp_params_free(n.ps);
    return acc < 0;
}

/* An output directory: created if absent; 0, or 1 with a message if it cannot be made or exists
 * and is not a directory (which used to be found only at the first file, after all training). */
static int make_dir(const char *opt, const char *dir)
{
    struct stat st;
    if (mkdir(dir, 0777) && errno != EEXIST) {
        fprintf(stderr, PROG ": %s: cannot create %s: %s\n", opt, dir, strerror(errno));
        return 1;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, PROG ": %s: %s exists and is not a directory\n", opt, dir);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    int prc = parse_args(argc, argv, &o);
    if (prc >= 0) return prc;
    if (o.threads) sp_set_threads(o.threads);
    if (o.eval) return eval_ckpt(&o);
    if (make_dir("--out-dir", o.out_dir) || (o.save_dir && make_dir("--save-dir", o.save_dir))) return 1;
    vn_task gt = {o.grad_gap, o.K, o.D};
    int I = vn_inputs(&gt), L = vn_steps(&gt);
    printf(PROG ": K %d key symbols (chance %.3f), D %d distractors, budget %ld parameters, Adam lr %g, clip %g, "
           "batch %d, up to %d updates, gate bias %g, seed %llu\n%s\n",
           o.K, 1.0 / o.K, o.D, o.budget, o.lr, o.clip, o.batch, o.steps, o.gate_bias, (unsigned long long)o.seed, sp_info());
    for (int c = 0; c < NCELLS; c++) {
        if (!o.use[c]) continue;
        int H = vn_hidden_for_budget(CELLS[c].gates, I, o.K, o.budget);
        printf("  %-4s hidden %3d  parameters %ld\n", CELLS[c].name, H, vn_param_count(CELLS[c].gates, I, H, o.K));
    }
    /* every failure below goes to done, which frees what was made */
    sp_tape *t = sp_tape_new();
    char path[1024];
    int rc = 0, ng = 0;
    net kept[NCELLS];
    int have_kept[NCELLS] = {0};
    double *nn = NULL, *ln = NULL, *nc = NULL, *lc = NULL;
    const char *gname[NCELLS + 1];
    FILE *f;

    /* 1. gradient norms at initialisation */
    double *gn = calloc((size_t)L * (NCELLS + 1), sizeof(double));
    if (!gn || !t) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = 1;
        goto done;
    }
    for (int c = 0; c < NCELLS + 1; c++) {
        if (c < NCELLS && !o.use[c]) continue;
        if (c == NCELLS && o.explode_scale <= 0) continue;
        sp_rng rng;
        sp_rng_seed(&rng, o.seed + 5);
        net n;
        const cellspec *spec = &CELLS[c < NCELLS ? c : 0];
        int H = vn_hidden_for_budget(spec->gates, I, o.K, o.budget);
        if (net_init(&n, spec, I, H, o.K, c == NCELLS ? o.explode_scale : 0, o.gate_bias, &rng) ||
            grad_profile(t, &n, &gt, o.batch, o.seed, gn + (size_t)ng * L)) {
            fprintf(stderr, PROG ": %s%s\n", sp_last_error(), sp_tape_errmsg(t));
            sp_params_free(n.ps);
            rc = 1;
            goto done;
        }
        static char xname[64];
        snprintf(xname, sizeof xname, "rnn W_hh=%gxorth", o.explode_scale);
        gname[ng++] = c < NCELLS ? spec->name : xname;
        sp_params_free(n.ps);
    }
    printf("\n||dL/dh<t>|| at initialisation, gap T=%d (loss at the last step t=%d):\n  %6s", o.grad_gap, L - 1, "t");
    for (int g = 0; g < ng; g++) printf("  %18s", gname[g]);
    printf("\n");
    int marks[] = {0, 1, 2, 5, 10, L / 4, L / 2, (3 * L) / 4, L - 5, L - 3, L - 2, L - 1};
    for (int k = 0, last = -1; k < (int)(sizeof marks / sizeof *marks); k++) {
        if (marks[k] <= last || marks[k] >= L) continue;
        last = marks[k];
        printf("  %6d", marks[k]);
        for (int g = 0; g < ng; g++) printf("  %18.3e", gn[(size_t)g * L + marks[k]]);
        printf("\n");
    }
    f = open_out(&o, "vanishing_grad.tsv", path, sizeof path);
    if (!f) {
        rc = 1;
        goto done;
    }
    fprintf(f, "t");
    for (int g = 0; g < ng; g++) fprintf(f, "\t%s", gname[g]);
    fprintf(f, "\n");
    for (int s = 0; s < L; s++) {
        fprintf(f, "%d", s);
        for (int g = 0; g < ng; g++) fprintf(f, "\t%.6e", gn[(size_t)g * L + s]);
        fprintf(f, "\n");
    }
    if (close_out()) {
        rc = 1;
        goto done;
    }

    /* 2. accuracy per gap and cell; the models of the profile gap are kept for a trained profile */
    result res[MAXG][NCELLS];
    memset(res, 0, sizeof res);
    for (int gi = 0; gi < o.ngaps && !rc; gi++) {
        vn_task task = {o.gaps[gi], o.K, o.D};
        for (int c = 0; c < NCELLS && !rc; c++) {
            if (!o.use[c]) continue;
            int keep = task.T == o.grad_gap;
            if (train_one(&o, &CELLS[c], &task, t, &res[gi][c], keep ? &kept[c] : NULL)) rc = 1;
            else if (keep) have_kept[c] = 1;
            if (!rc)
                printf("  %-4s T=%-4d accuracy %.3f after %d updates (best %.3f at update %d), %.1f s\n", CELLS[c].name,
                       task.T, res[gi][c].acc, res[gi][c].steps, res[gi][c].best, res[gi][c].best_step,
                       res[gi][c].seconds);
        }
    }
    if (rc) goto done;
    printf("\nheld-out accuracy (chance %.3f): the best evaluation / the end of training (updates used):\n  %6s",
           1.0 / o.K, "T");
    for (int c = 0; c < NCELLS; c++)
        if (o.use[c]) printf("  %22s", CELLS[c].name);
    printf("\n");
    f = open_out(&o, "vanishing_accuracy.tsv", path, sizeof path);
    if (!f) {
        rc = 1;
        goto done;
    }
    fprintf(f, "T");
    for (int c = 0; c < NCELLS; c++)
        if (o.use[c]) fprintf(f, "\t%s", CELLS[c].name);
    for (int c = 0; c < NCELLS; c++)
        if (o.use[c]) fprintf(f, "\t%s best", CELLS[c].name);
    fprintf(f, "\n");
    for (int gi = 0; gi < o.ngaps; gi++) {
        printf("  %6d", o.gaps[gi]);
        fprintf(f, "%d", o.gaps[gi]);
        for (int c = 0; c < NCELLS; c++) {
            if (!o.use[c]) continue;
            printf("  %6.3f / %6.3f (%5d)", res[gi][c].best, res[gi][c].acc, res[gi][c].steps);
            fprintf(f, "\t%.4f", res[gi][c].acc);
        }
        for (int c = 0; c < NCELLS; c++)
            if (o.use[c]) fprintf(f, "\t%.4f", res[gi][c].best);
        printf("\n");
        fprintf(f, "\n");
    }
    if (close_out()) {
        rc = 1;
        goto done;
    }

    /* 3. the profile again on the trained models of the profile gap */
    f = open_out(&o, "vanishing_grad_trained.tsv", path, sizeof path);
    if (!f) {
        rc = 1;
        goto done;
    }
    fprintf(f, "t");
    ng = 0;
    for (int c = 0; c < NCELLS; c++) {
        if (!have_kept[c]) continue;
        if (grad_profile(t, &kept[c], &gt, o.batch, o.seed, gn + (size_t)ng * L)) {
            ex_atomic_abort(&out_file);
            rc = 1;
            goto done;
        }
        fprintf(f, "\t%s (trained)", CELLS[c].name);
        gname[ng++] = CELLS[c].name;
        sp_params_free(kept[c].ps);
        have_kept[c] = 0;
    }
    fprintf(f, "\n");
    for (int s = 0; s < L; s++) {
        fprintf(f, "%d", s);
        for (int g = 0; g < ng; g++) fprintf(f, "\t%.6e", gn[(size_t)g * L + s]);
        fprintf(f, "\n");
    }
    if (close_out()) {
        rc = 1;
        goto done;
    }
    if (ng) {
        printf("\n||dL/dh<t>|| after training, gap T=%d: ratio first step / last step:", o.grad_gap);
        for (int g = 0; g < ng; g++) printf("  %s %.2e", gname[g], gn[(size_t)g * L] / gn[(size_t)g * L + L - 1]);
        printf("\n");
    }

    /* 4. exploding gradients and clipping */
    int explode = o.explode_scale > 0 && o.explode_steps > 0;
    if (explode) {
        int N = o.explode_steps;
        nn = malloc(sizeof(double) * N), ln = malloc(sizeof(double) * N), nc = malloc(sizeof(double) * N),
        lc = malloc(sizeof(double) * N);
        double a0, a1;
        if (!nn || !ln || !nc || !lc || explode_run(&o, o.explode_lr, t, 0, nn, ln, &a0) ||
            explode_run(&o, o.explode_lr, t, 1, nc, lc, &a1)) {
            fprintf(stderr, PROG ": exploding-gradient runs failed: %s\n", nn && ln && nc && lc ? sp_tape_errmsg(t) : "out of memory");
            rc = 1;
            goto done;
        }
        int bad0 = N, bad1 = N;
        double max0 = 0, max1 = 0;
        for (int s = N - 1; s >= 0; s--) {
            if (!isfinite(nn[s]) || !isfinite(ln[s])) bad0 = s;
            if (!isfinite(nc[s]) || !isfinite(lc[s])) bad1 = s;
        }
        for (int s = 0; s < N; s++) {
            if (isfinite(nn[s])) max0 = fmax(max0, nn[s]);
            if (isfinite(nc[s])) max1 = fmax(max1, nc[s]);
        }
        printf("\nexploding case: vanilla RNN with W_hh = %g x orthogonal, gap T=%d, SGD lr %g, %d updates\n",
               o.explode_scale, o.explode_gap, o.explode_lr, N);
        char w0[64] = "finite throughout", w1[64] = "finite throughout";
        if (bad0 < N) snprintf(w0, sizeof w0, "non-finite from update %d on", bad0);
        if (bad1 < N) snprintf(w1, sizeof w1, "non-finite from update %d on", bad1);
        printf("  no clipping : largest gradient norm %.3e, %s, last loss %.4f, held-out accuracy %.3f\n", max0, w0,
               ln[N - 1], a0);
        printf("  clip norm 1 : largest gradient norm %.3e, %s, last loss %.4f, held-out accuracy %.3f\n", max1, w1,
               lc[N - 1], a1);
        f = open_out(&o, "vanishing_explode.tsv", path, sizeof path);
        if (!f) {
        rc = 1;
        goto done;
    }
        fprintf(f, "update\tnorm_noclip\tloss_noclip\tnorm_clip\tloss_clip\n");
        for (int s = 0; s < N; s++) fprintf(f, "%d\t%.6e\t%.6e\t%.6e\t%.6e\n", s, nn[s], ln[s], nc[s], lc[s]);
        if (close_out()) {
        rc = 1;
        goto done;
    }
        /* where clipping matters: the same two runs at other learning rates */
        printf("\nthe same runs at each SGD learning rate: held-out accuracy without / with clipping at norm 1\n");
        printf("  %8s  %10s  %10s\n  %8g  %10.3f  %10.3f   %s\n", "lr", "no clip", "clip 1", o.explode_lr, a0, a1,
               clip_verdict(a0, a1));
        for (int k = 0; k < o.n_explode_lrs; k++) {
            double b0, b1;
            if (explode_run(&o, o.explode_lrs[k], t, 0, nn, ln, &b0) || explode_run(&o, o.explode_lrs[k], t, 1, nc, lc, &b1)) {
                fprintf(stderr, PROG ": exploding-gradient runs failed: %s\n", sp_tape_errmsg(t));
                rc = 1;
                goto done;
            }
            printf("  %8g  %10.3f  %10.3f   %s\n", o.explode_lrs[k], b0, b1, clip_verdict(b0, b1));
        }
    }
    if (write_plots(&o, explode, ng > 0)) rc = 1;
    printf("data: %s/vanishing_grad.tsv, vanishing_grad_trained.tsv, vanishing_accuracy.tsv%s, vanishing.gp\n",
           o.out_dir, explode ? ", vanishing_explode.tsv" : "");
done:
    for (int c = 0; c < NCELLS; c++)
        if (have_kept[c]) sp_params_free(kept[c].ps);
    free(nn), free(ln), free(nc), free(lc);
    free(gn);
    sp_tape_free(t);
    return rc;
}
