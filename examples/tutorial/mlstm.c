/* SPDX-License-Identifier: MIT */
/* mlstm.c - the program of docs/tutorial.md: a recurrent cell that spool does not have (the
 * multiplicative LSTM), written from public ops, its gradients checked by finite differences,
 * trained, and its graph written as Graphviz dot. The tutorial shows this file piece by piece;
 * tests/test_docs.py checks that its pieces are this file. */
#include "spool.h"
#include "common/opts.h" /* the examples' command line: --help, --version, --info, checked numbers */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The multiplicative LSTM (Krause et al. 2016): an LSTM whose gates see m, a product of the
 * input and the previous output, where a plain LSTM has h:
 *   m            = (x W_m^T + b_m) * (h U_m^T)
 *   [i, f, g, o] = x W_g^T + b_g + m U^T
 *   c' = sigmoid(f) c + sigmoid(i) tanh(g),   h' = sigmoid(o) tanh(c')                        */
typedef struct {
    sp_tensor *W, *b;   /* [5H, I], [1, 5H]: W_g and W_m stacked, so one product serves both */
    sp_tensor *U, *U_m; /* [4H, H], [H, H] */
    int detach;         /* 1: the step copies its state off the tape (a bug on purpose, see check) */
} mlstm;

/* The input half of every step at once: x [T*B, I] -> [T*B, 5H]. The runner calls it once per
 * sequence, so the whole input side is one large matrix product. */
static sp_tensor *mlstm_project(sp_tape *t, const sp_cell *c, sp_tensor *x)
{
    const mlstm *p = c->user;
    return sp_matmul_bias(t, x, 0, p->W, 1, p->b);
}

/* A copy of x's values that the tape does not connect to x: no gradient flows back through it,
 * as with anything computed from ->data in plain C. */
static sp_tensor *detached(sp_tape *t, const sp_tensor *x)
{
    sp_tensor *copy = sp_const(t, x->rows, x->cols);
    for (int i = 0; copy && i < x->rows; i++) memcpy(sp_at(copy, i, 0), sp_at(x, i, 0), sizeof(sp_real) * x->cols);
    return copy;
}

/* One time step: xp is this step's rows of the projection [B, 5H], state = {h, c}. */
static sp_status mlstm_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out)
{
    const mlstm *p = c->user;
    int H = c->hidden_size;
    sp_tensor *h = state[0], *c_prev = state[1];
    if (p->detach) h = detached(t, h), c_prev = detached(t, c_prev);
    sp_tensor *m = sp_mul(t, sp_slice_cols(t, xp, 4 * H, H), sp_matmul_ex(t, h, 0, p->U_m, 1));
    /* the gates are an LSTM's: the public fused op that the built-in LSTM uses computes them */
    sp_tensor *hc = sp_lstm_cell(t, sp_slice_cols(t, xp, 0, 4 * H), sp_matmul_ex(t, m, 0, p->U, 1), c_prev);
    out[0] = sp_slice_cols(t, hc, 0, H); /* h' */
    out[1] = sp_slice_cols(t, hc, H, H); /* c' */
    return sp_tape_status(t);
}

static sp_status mlstm_init(sp_cell *c, mlstm *p, sp_params *ps, int I, int H, sp_rng *rng)
{
    double k = 1 / sqrt((double)H); /* U(-k, k), as PyTorch initialises its LSTM */
    p->W = sp_param_uniform(ps, "mlstm.W", 5 * H, I, k, rng);
    p->b = sp_param_uniform(ps, "mlstm.b", 1, 5 * H, k, rng);
    p->U = sp_param_uniform(ps, "mlstm.U", 4 * H, H, k, rng);
    p->U_m = sp_param_uniform(ps, "mlstm.U_m", H, H, k, rng);
    if (!p->W || !p->b || !p->U || !p->U_m) return sp_last_status();
    *c = (sp_cell){.kind = SP_CELL_CUSTOM, .input_size = I, .hidden_size = H, .out_size = H, .gate_size = 5 * H,
                   .n_state = 2, .state_size = {H, H}, .project = mlstm_project, .step = mlstm_step, .user = p,
                   .name = "mlstm"};
    return SP_OK;
}

/* The task: at every step, say which number came DELAY steps earlier, which takes memory.
 * A batch is B sequences of T numbers in [-1, 1]; the loss is the mean squared error over the
 * steps that have an answer. */
enum { B = 16, DELAY = 2 };

typedef struct {
    sp_cell cell;
    sp_linear head; /* h -> the answer */
    int T;
    sp_real *x; /* the batch: [T*B] numbers, time outermost (row t*B + b is step t of sequence b) */
} model;

static void new_batch(model *md, sp_rng *rng)
{
    for (int k = 0; k < md->T * B; k++) md->x[k] = (sp_real)(2 * sp_rng_uniform(rng) - 1);
}

static sp_tensor *loss(sp_tape *t, model *md)
{
    int n = md->T * B;
    sp_tensor *x = sp_const(t, n, 1), *target = sp_const(t, n, 1), *mask = sp_const(t, n, 1);
    if (!x || !target || !mask) return NULL;
    sp_name(t, x, "x"), sp_name(t, target, "target"), sp_name(t, mask, "mask"); /* names in the graph */
    for (int k = 0; k < n; k++) { /* row k is step k / B of sequence k % B */
        *sp_at(x, k, 0) = md->x[k];
        if (k >= DELAY * B) *sp_at(target, k, 0) = md->x[k - DELAY * B], *sp_at(mask, k, 0) = 1;
    }
    sp_seq_out r;
    if (sp_seq_run(t, &md->cell, x, md->T, B, NULL, &r) != SP_OK) return NULL;
    sp_tape_scope(t, "loss"); /* the nodes from here on are "loss/...", one cluster in the graph */
    sp_tensor *err = sp_mul(t, sp_sub(t, sp_linear_forward(t, &md->head, r.out), target), mask);
    return sp_scale(t, sp_sum(t, sp_mul(t, err, err)), 1.0 / (n - DELAY * B));
}

/* Says what failed, with the library's message: the tape's first error, else the last error of a
 * call without a tape. */
static int failed(sp_tape *t, const char *what)
{
    const char *msg = t && *sp_tape_errmsg(t) ? sp_tape_errmsg(t) : sp_last_error();
    fprintf(stderr, "spool-tutorial: %s%s%s\n", what, *msg ? ": " : "", msg);
    return EX_EXIT_FAIL;
}

/* The loss of the current batch, forward only (the tape is rewound first). */
static double loss_value(sp_tape *t, model *md)
{
    sp_tape_reset(t);
    sp_tensor *l = loss(t, md);
    return l ? l->data[0] : NAN;
}

/* Every gradient that sp_backward gives, against central differences of the loss,
 *   numeric = (L(w + e) - L(w - e)) / 2e   for each element w of each parameter;
 * per parameter, the relative error |analytic - numeric| / (|analytic| + |numeric|), where |v|
 * is the length of the vector of all its elements. The library computes in float (7 digits),
 * so e is large: the loss must move well above its rounding, yet its curvature hardly count.
 * With e = 0.05, right gradients agree to about 1e-3 and wrong ones are off by 1e-1 or more. */
static int check(sp_tape *t, sp_params *ps, model *md)
{
    sp_tape_reset(t);
    sp_params_zero_grad(ps);
    sp_tensor *l = loss(t, md);
    if (!l || sp_backward(t, l) != SP_OK) return failed(t, "check");
    double worst = 0;
    for (int i = 0; i < ps->count; i++) {
        sp_tensor *p = ps->list[i];
        double diff = 0, a2 = 0, n2 = 0;
        for (size_t k = 0; k < sp_numel(p); k++) {
            sp_real w = p->data[k], up = w + (sp_real)0.05, down = w - (sp_real)0.05;
            p->data[k] = up;
            double l_up = loss_value(t, md);
            p->data[k] = down;
            double l_down = loss_value(t, md);
            p->data[k] = w;
            double numeric = (l_up - l_down) / ((double)up - down), analytic = p->grad[k];
            diff += (analytic - numeric) * (analytic - numeric);
            a2 += analytic * analytic, n2 += numeric * numeric;
        }
        double rel = sqrt(diff) / (sqrt(a2) + sqrt(n2) + 1e-30);
        printf("%-11s [%3d x %3d]  relative error %.1e\n", p->name, p->rows, p->cols, rel);
        if (!(rel <= worst)) worst = rel;
    }
    printf("%s: the worst is %.1e (right: about 1e-3; wrong: 1e-1 or more)\n", worst < 2e-2 ? "ok" : "WRONG", worst);
    return worst < 2e-2 ? EX_EXIT_OK : EX_EXIT_FAIL;
}

typedef struct {
    int steps, hidden, seq, detach;
    double lr;
    uint64_t seed;
    const char *dot;
} tutorial_opts;

/* Adam on a fresh batch every step; prints the mean loss of every tenth of the run. */
static int train(sp_tape *t, sp_params *ps, model *md, const tutorial_opts *o, sp_rng *rng)
{
    sp_optim_config cfg = sp_optim_defaults(SP_ADAM);
    sp_optim *opt = sp_optim_new(ps, &cfg);
    if (!opt) return failed(t, "optimizer");
    int every = o->steps >= 10 ? o->steps / 10 : 1, rc = EX_EXIT_OK;
    double sum = 0, first = -1, last = 0;
    for (int s = 1; s <= o->steps && rc == EX_EXIT_OK; s++) {
        new_batch(md, rng);
        sp_tape_reset(t);
        sp_params_zero_grad(ps);
        sp_tensor *l = loss(t, md);
        if (!l || sp_backward(t, l) != SP_OK || sp_optim_step(opt, o->lr) != SP_OK) rc = failed(t, "train");
        else if (s == 1 && o->dot && sp_tape_dot_file(t, o->dot, 1) != SP_OK) rc = failed(t, o->dot);
        if (rc != EX_EXIT_OK) break;
        sum += l->data[0];
        if (s % every == 0 || s == o->steps) {
            last = sum / (s % every ? s % every : every);
            if (first < 0) first = last;
            printf("step %5d  loss %.4f\n", s, last);
            sum = 0;
        }
    }
    sp_optim_free(opt);
    if (rc == EX_EXIT_OK && o->dot) printf("wrote the graph of step 1 to %s\n", o->dot);
    if (rc == EX_EXIT_OK && o->steps >= 2 * every && !(last < first)) /* reported twice, learnt nothing */
        rc = failed(t, "the loss did not fall");
    return rc;
}

#define TRAIN 2 /* options of train only (bit i: command i; 0: both commands) */
static const ex_opt OPTS[] = {
    EX_OPT("hidden", EX_INT, tutorial_opts, hidden, "8", 1, 4096, 0, "H", "hidden units"),
    EX_OPT("seq", EX_INT, tutorial_opts, seq, "10", DELAY + 1, 100000, 0, "T", "steps per sequence"),
    EX_OPT("seed", EX_U64, tutorial_opts, seed, "1", 0, 0, 0, "S", "random seed (weights and data)"),
    EX_OPT("detach", EX_FLAG, tutorial_opts, detach, "0", 0, 0, 0, NULL,
           "the step copies its state off the tape (a bug on purpose: check fails)"),
    EX_OPT("steps", EX_INT, tutorial_opts, steps, "2000", 1, 100000000, TRAIN, "N", "training steps"),
    EX_OPT("lr", EX_DBL, tutorial_opts, lr, "0.01", 0, 10, TRAIN, "X", "Adam's learning rate"),
    EX_OPT("dot", EX_STR, tutorial_opts, dot, NULL, 0, 0, TRAIN, "FILE", "write the graph of the first step as Graphviz dot"),
};
static const char *const CMDS[] = {"check", "train", NULL};
static const ex_cli CLI = {"spool-tutorial",
                           "Usage: spool-tutorial check|train [options]\n"
                           "The multiplicative LSTM of docs/tutorial.md: check compares its gradients with finite\n"
                           "differences, train teaches it to repeat the number it saw two steps earlier.\n",
                           NULL, CMDS, NULL, OPTS, sizeof OPTS / sizeof OPTS[0], 0, NULL};

int main(int argc, char **argv)
{
    tutorial_opts o = {0};
    ex_args args;
    int rc = ex_cli_parse(&CLI, argc, argv, &o, &args);
    if (rc >= 0) return rc;
    sp_rng rng;
    sp_rng_seed(&rng, o.seed);
    sp_params *ps = sp_params_new();
    sp_tape *t = sp_tape_new();
    mlstm cell = {.detach = o.detach};
    model md = {.T = o.seq, .x = malloc(sizeof(sp_real) * (size_t)o.seq * B)};
    if (!ps || !t || !md.x || mlstm_init(&md.cell, &cell, ps, 1, o.hidden, &rng) != SP_OK ||
        sp_linear_init(&md.head, ps, "head", o.hidden, 1, 1, &rng) != SP_OK)
        rc = failed(t, "setup");
    else {
        new_batch(&md, &rng);
        rc = args.cmd == 0 ? check(t, ps, &md) : train(t, ps, &md, &o, &rng);
    }
    free(md.x);
    sp_tape_free(t);
    sp_params_free(ps);
    return rc;
}
