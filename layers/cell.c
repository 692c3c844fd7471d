/* SPDX-License-Identifier: MIT */
/* cell.c - what every recurrent cell shares: creating a built-in cell (names and sizes here, the
 * kind's own parameters by its row of the cell table, layers/cell_table.c), zero and trainable
 * initial states, and one step from raw inputs (the building block of generation and decoders). */
#include "cell_table.h"
#include "layers_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

sp_status sp_cell_init(sp_cell *c, sp_cell_kind kind, sp_params *ps, const char *prefix, int layer, int reverse,
                       int I, int H, const sp_cell_opts *opts, sp_rng *rng)
{
    sp_cell_opts o = {0};
    if (opts) o = *opts;
    const char *pfx = prefix ? prefix : "";
    const sp_cell_def *d = sp__cell_def(kind);
    if (!c || !ps || !rng || I <= 0 || H <= 0 || layer < 0)
        return sp_fail(SP_ERR_ARG, "cell \"%s\" layer %d: %s", pfx, layer,
                       !c || !ps || !rng ? "cell, params and rng must not be NULL" : "sizes must be positive");
    if (I > SP_MAX_CELL_SIZE || H > SP_MAX_CELL_SIZE) /* gates * H and G x I must fit an int */
        return sp_fail(SP_ERR_ARG, "cell \"%s\" layer %d: sizes I = %d, H = %d above the maximum %d", pfx, layer, I,
                       H, SP_MAX_CELL_SIZE);
    if (!d) return sp_fail(SP_ERR_ARG, "cell \"%s\" layer %d: kind %d is not a built-in cell", pfx, layer, (int)kind);
    if (!(d->opts & SP_CELL_OPT_LSTM) && (o.lstm_flags || o.proj_size || o.forget_bias_one))
        return sp_fail(SP_ERR_ARG, "cell \"%s\" layer %d: LSTM options given for a %s cell", pfx, layer, d->scope);
    if (o.proj_size < 0 || (o.proj_size && o.proj_size >= H))
        return sp_fail(SP_ERR_ARG, "cell \"%s\" layer %d: proj_size %d must be 0 or in (0, H = %d)", pfx, layer,
                       o.proj_size, H);
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->input_size = I;
    c->hidden_size = H;
    c->out_size = H;
    c->n_state = d->n_state;
    c->project = d->project;
    c->step = d->step;
    snprintf(c->name, sizeof c->name, "%s%d%s", *pfx ? pfx : d->scope, layer, reverse ? "_reverse" : "");
    char pre[200], sfx[32];
    snprintf(pre, sizeof pre, "%s%s", pfx, *pfx ? "." : "");
    snprintf(sfx, sizeof sfx, "_l%d%s", layer, reverse ? "_reverse" : "");
    sp_status s = d->init(c, ps, pre, sfx, &o, rng);
    c->state_size[0] = c->out_size;
    if (c->n_state > 1) c->state_size[1] = H;
    return s;
}

const char *sp_cell_kind_name(const sp_cell *c)
{
    if (!c) return "?";
    const sp_cell_def *d = sp__cell_def(c->kind);
    if (!d) return "custom";
    const char *mode;
    return d->variant ? d->variant(c, &mode) : d->name;
}

const char *sp_cell_pytorch_mode(const sp_cell *c)
{
    const sp_cell_def *d = c ? sp__cell_def(c->kind) : NULL;
    if (!d) return NULL;
    const char *mode = d->pytorch_mode;
    if (d->variant) d->variant(c, &mode);
    return mode;
}

sp_status sp_cell_zero_state(sp_tape *t, const sp_cell *c, int B, sp_tensor **state)
{
    if (!c || !state) {
        sp_tape_fail(t, SP_ERR_ARG, "cell zero state: cell or state array is NULL");
        return sp_tape_status(t);
    }
    for (int k = 0; k < c->n_state; k++) state[k] = sp_name(t, sp_const(t, B, c->state_size[k]), "%s0", k ? "c" : "h");
    return sp_tape_status(t);
}

sp_status sp_cell_forward(sp_tape *t, const sp_cell *c, sp_tensor *x, sp_tensor *const *state, sp_tensor **new_state)
{
    if (sp_tape_status(t) != SP_OK) return sp_tape_status(t);
    if (!c || !c->step || !x || !state || !new_state) {
        sp_tape_fail(t, SP_ERR_ARG, "cell \"%s\": cell, step, input and states must not be NULL", c ? c->name : "?");
        return sp_tape_status(t);
    }
    if (x->cols != c->input_size) {
        sp_tape_fail(t, SP_ERR_SHAPE, "cell \"%s\": input \"%s\" [%d x %d] has %d columns, the cell takes I = %d",
                     c->name, x->name, x->rows, x->cols, x->cols, c->input_size);
        return sp_tape_status(t);
    }
    for (int k = 0; k < c->n_state; k++)
        if (!state[k] || state[k]->rows != x->rows || state[k]->cols != c->state_size[k]) {
            sp_tape_fail(t, SP_ERR_SHAPE, "cell \"%s\": state %d must be [%d x %d], is %s [%d x %d]", c->name, k,
                         x->rows, c->state_size[k], state[k] ? state[k]->name : "NULL", state[k] ? state[k]->rows : 0,
                         state[k] ? state[k]->cols : 0);
            return sp_tape_status(t);
        }
    sp_tensor *in = c->project ? c->project(t, c, x) : x;
    if (!in) return sp_tape_status(t);
    return c->step(t, c, in, state, new_state);
}

sp_status sp_cell_init_state(const sp_cell *c, sp_params *ps, const char *prefix, int layer, int reverse,
                             sp_tensor **init)
{
    if (!c || !ps || !init) return sp_fail(SP_ERR_ARG, "cell init state: cell, params and init must not be NULL");
    const char *pfx = prefix ? prefix : "";
    for (int k = 0; k < c->n_state; k++) {
        char name[256];
        snprintf(name, sizeof name, "%s%s%s_l%d%s", pfx, *pfx ? "." : "", k ? "c0" : "h0", layer,
                 reverse ? "_reverse" : "");
        if (!(init[k] = sp_param(ps, name, 1, c->state_size[k]))) return sp_last_status();
    }
    return SP_OK;
}

sp_tensor *sp__step_mask(sp_tape *t, int tstep, int B, const int *lengths, int *all_pad)
{
    *all_pad = 0;
    if (!lengths) return NULL;
    int real = 0;
    for (int b = 0; b < B; b++) real += tstep < lengths[b];
    if (real == B) return NULL;
    *all_pad = real == 0;
    sp_tensor *m = sp_name(t, sp_const(t, B, 1), "mask");
    if (m)
        for (int b = 0; b < B; b++) m->data[(size_t)b * m->stride] = tstep < lengths[b];
    return m;
}

void sp__scope_push(sp_tape *t, const char *outer, const char *fmt, ...)
{
    char leaf[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(leaf, sizeof leaf, fmt, ap);
    va_end(ap);
    if (outer && *outer) sp_tape_scope(t, "%s/%s", outer, leaf);
    else sp_tape_scope(t, "%s", leaf);
}
