/* SPDX-License-Identifier: MIT */
/* custom_cell.c - is a cell written by a user as fast as the built-in one?
 *
 * Times one training step (forward over T steps, backward, no optimizer) of:
 *   builtin    the library's LSTM (SP_CELL_LSTM) through sp_seq_run;
 *   user       an LSTM written here from public ops only, through the same runner, using the
 *              public fused op sp_lstm_cell as the built-in does: nothing is reserved to the library;
 *   user-basic the same cell from elementary ops only (split, sigmoid, tanh, mul, add): what the
 *              fused op saves;
 *   user-nop   user-basic without project(): each step multiplies its own input rows, the form a
 *              first attempt usually takes (T small GEMMs instead of one big one).
 * Runs alternate (A, B, C, A, B, C, ...) so load on a shared machine hits all alike; medians are
 * printed with the ratio user / builtin. The weights are shared, so all three compute the same
 * numbers; the program checks that before timing.
 */
#include "spool.h"
#include "common/opts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------ the user's cell (public API only) */

typedef struct {
    sp_tensor *w_ih, *w_hh, *b_ih, *b_hh; /* PyTorch layout, gates i, f, g, o */
} user_lstm;

static sp_tensor *user_project(sp_tape *t, const sp_cell *c, sp_tensor *x)
{
    const user_lstm *p = c->user;
    return sp_add(t, sp_matmul_ex(t, x, 0, p->w_ih, 1), p->b_ih);
}

/* The fused form: both biases in the projection, xp + h W_hh^T inside sp_lstm_cell. */
static sp_tensor *user_project_fused(sp_tape *t, const sp_cell *c, sp_tensor *x)
{
    const user_lstm *p = c->user;
    return sp_matmul_bias(t, x, 0, p->w_ih, 1, sp_add(t, p->b_ih, p->b_hh));
}

static sp_status user_step_fused(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out)
{
    const user_lstm *p = c->user;
    int H = c->hidden_size;
    sp_tensor *hc = sp_lstm_cell(t, xp, sp_matmul_ex(t, state[0], 0, p->w_hh, 1), state[1]);
    out[0] = sp_slice_cols(t, hc, 0, H);
    out[1] = sp_slice_cols(t, hc, H, H);
    return sp_tape_status(t);
}

/* xp: projected input rows (with project) or raw input rows (without). */
static sp_status user_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out)
{
    const user_lstm *p = c->user;
    int H = c->hidden_size;
    if (!c->project) xp = user_project(t, c, xp);
    sp_tensor *a = sp_add(t, xp, sp_add(t, sp_matmul_ex(t, state[0], 0, p->w_hh, 1), p->b_hh));
    sp_tensor *g4[4];
    if (sp_split_cols(t, a, 4, g4) != SP_OK) return sp_tape_status(t);
    sp_tensor *i = sp_sigmoid(t, g4[0]), *f = sp_sigmoid(t, g4[1]), *g = sp_tanh(t, g4[2]), *o = sp_sigmoid(t, g4[3]);
    (void)H;
    out[1] = sp_add(t, sp_mul(t, f, state[1]), sp_mul(t, i, g));
    out[0] = sp_mul(t, o, sp_tanh(t, out[1]));
    return sp_tape_status(t);
}

/* ---------------------------------------------------------------------- timing */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One training step; returns seconds, or -1 on error (message printed). out0 gets out[0][0]. */
static double step(sp_tape *t, sp_params *ps, const sp_cell *c, const sp_real *xdata, int T, int B, double *out0)
{
    double t0 = now();
    sp_tape_reset(t);
    sp_params_zero_grad(ps);
    sp_tensor *x = sp_const(t, T * B, c->input_size);
    if (x) memcpy(x->data, xdata, sizeof(sp_real) * T * B * c->input_size);
    sp_seq_out r;
    if (sp_seq_run(t, c, x, T, B, NULL, &r) != SP_OK || sp_backward(t, sp_mean(t, r.out)) != SP_OK) {
        fprintf(stderr, "custom_cell: %s\n", sp_tape_errmsg(t));
        return -1;
    }
    *out0 = r.out->data[(size_t)T * B * c->out_size - 1];
    return now() - t0;
}

typedef struct {
    int T, B, I, H, iters, threads;
} cc_opts;

#define C cc_opts
static const ex_opt OPTS[] = {
    EX_OPT("seq", EX_INT, C, T, "50", 1, 100000, 0, "T", "steps"),
    EX_OPT("batch", EX_INT, C, B, "32", 1, 100000, 0, "B", "batch size"),
    EX_OPT("input", EX_INT, C, I, "128", 1, 100000, 0, "I", "input size"),
    EX_OPT("hidden", EX_INT, C, H, "256", 1, 100000, 0, "H", "hidden size"),
    EX_OPT("iters", EX_INT, C, iters, "20", 1, 100000, 0, "N", "timed steps of each form"),
    EX_OPT_THREADS(C, threads, 0),
    EX_OPT_PRECISION(0),
};
#undef C
static const ex_cli CLI = {"spool-custom-cell",
                           "Usage: spool-custom-cell [options]\n"
                           "Times a training step (forward + backward) of the built-in LSTM against the same LSTM\n"
                           "written from public ops (with the public fused op, from elementary ops, and without an\n"
                           "all-steps input projection) and prints median milliseconds and the ratio user / builtin.\n",
                           NULL, NULL, NULL, OPTS, sizeof OPTS / sizeof OPTS[0], 0, NULL};

int main(int argc, char **argv)
{
    cc_opts c;
    ex_args args;
    int prc = ex_cli_parse(&CLI, argc, argv, &c, &args);
    if (prc >= 0) return prc;
    int T = c.T, B = c.B, I = c.I, H = c.H, iters = c.iters, threads = c.threads;
    sp_set_threads(threads);
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 1);
    sp_cell builtin;
    if (!ps || sp_cell_init(&builtin, SP_CELL_LSTM, ps, "lstm", 0, 0, I, H, NULL, &rng) != SP_OK) {
        fprintf(stderr, "spool-custom-cell: %s\n", sp_last_error());
        return 1;
    }
    /* The user cells share the built-in cell's weights, so all compute the same numbers. */
    user_lstm up = {builtin.w_ih, builtin.w_hh, builtin.b_ih, builtin.b_hh};
    sp_cell user = {.kind = SP_CELL_CUSTOM, .input_size = I, .hidden_size = H, .out_size = H, .gate_size = 4 * H,
                    .n_state = 2, .state_size = {H, H}, .project = user_project, .step = user_step, .user = &up,
                    .name = "user"};
    sp_cell user_fused = user;
    user_fused.project = user_project_fused;
    user_fused.step = user_step_fused;
    snprintf(user_fused.name, sizeof user_fused.name, "user_fused");
    sp_cell user_nop = user;
    user_nop.project = NULL;
    snprintf(user_nop.name, sizeof user_nop.name, "user_noproject");

    sp_real *x = malloc(sizeof(sp_real) * T * B * I);
    double *tm[4];
    for (int k = 0; k < 4; k++) tm[k] = malloc(sizeof(double) * iters);
    sp_tape *t = sp_tape_new();
    if (!x || !t || !tm[0] || !tm[1] || !tm[2] || !tm[3]) {
        fprintf(stderr, "spool-custom-cell: out of memory\n");
        return 1;
    }
    for (size_t k = 0; k < (size_t)T * B * I; k++) x[k] = (sp_real)(2 * sp_rng_uniform(&rng) - 1);
    const sp_cell *cells[4] = {&builtin, &user_fused, &user, &user_nop};
    const char *names[4] = {"builtin", "user", "user-basic", "user-nop"};
    double o[4];
    for (int k = 0; k < 4; k++) /* warm-up (sizes the arena) and agreement check */
        if (step(t, ps, cells[k], x, T, B, &o[k]) < 0) return 1;
    if (fabs(o[1] - o[0]) > 1e-5 * (1 + fabs(o[0])) || fabs(o[2] - o[0]) > 1e-5 * (1 + fabs(o[0])) ||
        fabs(o[3] - o[0]) > 1e-5 * (1 + fabs(o[0]))) {
        fprintf(stderr, "spool-custom-cell: cells disagree (%g, %g, %g, %g)\n", o[0], o[1], o[2], o[3]);
        return 1;
    }
    for (int it = 0; it < iters; it++)
        for (int k = 0; k < 4; k++)
            if ((tm[k][it] = step(t, ps, cells[k], x, T, B, &o[k])) < 0) return 1;
    double med[4];
    for (int k = 0; k < 4; k++) med[k] = median(tm[k], iters);
    printf("# %s\n# LSTM T=%d B=%d I=%d H=%d, %d iterations, training step (forward + backward)\n", sp_info(), T, B, I,
           H, iters);
    for (int k = 0; k < 4; k++)
        printf("%-10s %9.3f ms  ratio to builtin %.3f\n", names[k], 1e3 * med[k], med[k] / med[0]);
    sp_tape_free(t);
    sp_params_free(ps);
    free(x);
    for (int k = 0; k < 4; k++) free(tm[k]);
    return 0;
}
