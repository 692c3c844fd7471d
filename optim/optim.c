/* SPDX-License-Identifier: MIT */
/* optim.c - the optimizer calls (create from a configuration, step, state slabs), gradient
 * norms and clipping, and learning-rate schedules. The update rules themselves, their defaults,
 * checks and state are rows of the optimizer table (rules.c); nothing here knows a particular
 * rule. */
#include "optim_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sp_optim_config sp_optim_defaults(sp_optim_kind kind)
{
    const sp_optim_def *d = sp__optim_def(kind);
    sp_optim_config c;
    memset(&c, 0, sizeof c);
    if (d) c = d->defaults;
    c.kind = kind;
    return c;
}

const char *sp_optim_kind_name(sp_optim_kind kind)
{
    const sp_optim_def *d = sp__optim_def(kind);
    return d ? d->name : NULL;
}

static const char *range_text(sp_field_range r)
{
    switch (r) {
    case SP_FIELD_NONNEG: return ">= 0";
    case SP_FIELD_POSITIVE: return "> 0";
    case SP_FIELD_UNIT: return "in [0, 1]";
    case SP_FIELD_UNIT_OPEN: return "in [0, 1)";
    default: return "finite";
    }
}

static int in_range(double v, sp_field_range r)
{
    switch (r) {
    case SP_FIELD_FLAG: return 1;
    case SP_FIELD_FINITE: return isfinite(v);
    case SP_FIELD_NONNEG: return v >= 0 && isfinite(v);
    case SP_FIELD_POSITIVE: return v > 0 && isfinite(v);
    case SP_FIELD_UNIT: return v >= 0 && v <= 1;
    case SP_FIELD_UNIT_OPEN: return v >= 0 && v < 1;
    }
    return 0;
}

/* The fields the kind's row lists, each in its range, then the row's own rule. */
static sp_status check_config(const sp_optim_config *c)
{
    const sp_optim_def *d = sp__optim_def(c->kind);
    if (!d) return sp_fail(SP_ERR_ARG, "sp_optim_new: unknown optimizer kind %d", (int)c->kind);
    for (const char *s = d->checks; s && *s;) {
        size_t len = strcspn(s, " ");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)len, s);
        const sp_optim_field *f = sp__optim_field(name);
        if (!f) return sp_fail(SP_ERR_STATE, "sp_optim_new %s: the table names no field \"%s\"", d->name, name);
        double v = sp__optim_field_get(c, f);
        if (!in_range(v, f->range))
            return sp_fail(SP_ERR_ARG, "sp_optim_new %s: %s %g must be %s", d->name, f->torch_name, v,
                           range_text(f->range));
        s += len;
        s += strspn(s, " ");
    }
    return d->check ? d->check(c) : SP_OK;
}

static double field_value(const sp_optim_config *c, const char *name)
{
    const sp_optim_field *f = sp__optim_field(name);
    return f ? sp__optim_field_get(c, f) : 0;
}

sp_optim *sp_optim_new(sp_params *ps, const sp_optim_config *cfg)
{
    if (!ps || !cfg) {
        sp_fail(SP_ERR_ARG, "sp_optim_new: %s is NULL", !ps ? "the parameter set" : "the configuration");
        return NULL;
    }
    if (check_config(cfg) != SP_OK) return NULL;
    const sp_optim_def *d = sp__optim_def(cfg->kind);
    sp_optim *o = calloc(1, sizeof *o);
    if (!o) goto nomem;
    o->ps = ps;
    o->cfg = *cfg;
    o->numel = ps->numel;
    for (int j = 0; j < SP_OPTIM_MAX_SLOTS && d->slots[j].name; j++) {
        const sp_optim_slot_def *sd = &d->slots[j];
        if (sd->when && field_value(cfg, sd->when) == 0) continue;
        sp_real *slab = calloc(o->numel ? o->numel : 1, sizeof(sp_real));
        if (!slab) goto nomem;
        o->slot_name[o->nslots] = sd->name;
        o->slot[o->nslots++] = o->by_row[j] = slab;
        if (sd->init) {
            const sp_real v = (sp_real)field_value(cfg, sd->init);
            for (size_t i = 0; i < o->numel; i++) slab[i] = v;
        }
    }
    return o;
nomem:
    sp_optim_free(o);
    sp_fail(SP_ERR_NOMEM, "sp_optim_new: out of memory for %zu parameters", ps->numel);
    return NULL;
}

void sp_optim_free(sp_optim *o)
{
    if (!o) return;
    for (int s = 0; s < o->nslots; s++) free(o->slot[s]);
    free(o);
}

const sp_optim_config *sp_optim_get_config(const sp_optim *o)
{
    if (!o) sp_fail(SP_ERR_ARG, "sp_optim_get_config: optimizer is NULL");
    return o ? &o->cfg : NULL;
}
int64_t sp_optim_steps(const sp_optim *o) { return o ? o->step : 0; }
int sp_optim_nslots(const sp_optim *o) { return o ? o->nslots : 0; }

/* Slot i of o; NULL past the last (the end of a walk, no error) or, with a message, for no optimizer. */
static int slot_ok(const sp_optim *o, int i, const char *who)
{
    if (!o) sp_fail(SP_ERR_ARG, "%s: optimizer is NULL", who);
    return o && i >= 0 && i < o->nslots;
}
const char *sp_optim_slot_name(const sp_optim *o, int i) { return slot_ok(o, i, "sp_optim_slot_name") ? o->slot_name[i] : NULL; }
sp_real *sp_optim_slot(const sp_optim *o, int i) { return slot_ok(o, i, "sp_optim_slot") ? o->slot[i] : NULL; }

sp_real *sp_optim_slot_by_name(const sp_optim *o, const char *name)
{
    if (!o || !name) {
        sp_fail(SP_ERR_ARG, "sp_optim_slot_by_name: %s is NULL", o ? "name" : "optimizer");
        return NULL;
    }
    for (int s = 0; s < o->nslots; s++)
        if (strcmp(o->slot_name[s], name) == 0) return o->slot[s];
    return NULL;
}

/* The first parameter with a non-finite gradient, or NULL if all are finite. */
static const sp_tensor *first_nonfinite(const sp_params *ps, size_t *where)
{
    int bad = 0;
    const sp_real *g = ps->grad;
#pragma omp parallel for reduction(| : bad) if (ps->numel > SP_PAR_MIN_OPTIM_ELEMS) num_threads(sp__threads_now()) schedule(static)
    for (size_t i = 0; i < ps->numel; i++) bad |= !isfinite(g[i]);
    if (!bad) return NULL;
    for (int k = 0; k < ps->count; k++) {
        const sp_tensor *p = ps->list[k];
        for (size_t e = 0; e < sp_numel(p); e++)
            if (!isfinite(p->grad[e])) {
                *where = e;
                return p;
            }
    }
    return NULL;
}

static sp_status nonfinite_error(const char *who, const sp_tensor *p, size_t e)
{
    return sp_fail(SP_ERR_NONFINITE, "%s: gradient of \"%s\" [%d x %d] is %s at element %zu; nothing was changed",
                   who, p->name, p->rows, p->cols, isnan(p->grad[e]) ? "NaN" : "Inf", e);
}

sp_status sp_optim_step(sp_optim *o, double lr)
{
    if (!o) return sp_fail(SP_ERR_ARG, "sp_optim_step: optimizer is NULL");
    const char *k = sp_optim_kind_name(o->cfg.kind);
    sp_params *ps = o->ps;
    if (ps->numel != o->numel)
        return sp_fail(SP_ERR_STATE, "sp_optim_step %s: the parameter set has %zu elements, the optimizer was "
                       "made for %zu (parameters added after sp_optim_new)", k, ps->numel, o->numel);
    if (!(lr >= 0) || !isfinite(lr)) return sp_fail(SP_ERR_ARG, "sp_optim_step %s: lr %g must be >= 0", k, lr);
    size_t e = 0;
    const sp_tensor *bad = first_nonfinite(ps, &e);
    if (bad) return nonfinite_error("sp_optim_step", bad, e);

    sp_optim_update u = {&o->cfg, o->numel, ps->value, ps->grad, {NULL}, lr, o->step + 1, 1};
    memcpy(u.slot, o->by_row, sizeof u.slot);
    const sp_optim_def *def = sp__optim_def(o->cfg.kind);
    /* Dry run first: an update of finite gradients can still overflow (a huge lr, a tiny eps);
     * such a step is refused with the first parameter it would break, and nothing changes. */
    if (def->step(&u)) {
        size_t off = 0;
        for (int j = 0; j < ps->count; j++) {
            const sp_tensor *p = ps->list[j];
            sp_optim_update w = u;
            w.n = sp_numel(p), w.p = ps->value + off, w.g = ps->grad + off;
            for (int s = 0; s < SP_OPTIM_MAX_SLOTS; s++) w.slot[s] = u.slot[s] ? u.slot[s] + off : NULL;
            if (def->step(&w))
                return sp_fail(SP_ERR_NONFINITE, "sp_optim_step %s: the update of \"%s\" [%d x %d] would make it or "
                               "its state non-finite (lr %g); nothing was changed", k, p->name, p->rows, p->cols, lr);
            off += w.n;
        }
        return sp_fail(SP_ERR_NONFINITE, "sp_optim_step %s: the update would be non-finite; nothing was changed", k);
    }
    u.dry = 0;
    o->step++;
    def->step(&u);
    return SP_OK;
}

/* ---------------------------------------------------------------- clipping */

static double grad_norm(const sp_params *ps)
{
    const sp_real *g = ps->grad;
    double ss = 0;
    /* blocks of 1024 values, each summed in 8 lanes: one long chain of dependent double adds ran
     * at one add per 4 cycles (the compiler may not reorder it), 2.6 % of a bf16 LSTM step */
    const size_t n = ps->numel, nb = (n + 1023) / 1024;
#pragma omp parallel for reduction(+ : ss) if (n > SP_PAR_MIN_OPTIM_ELEMS) num_threads(sp__threads_now()) schedule(static)
    for (size_t b = 0; b < nb; b++) {
        const size_t i0 = b * 1024, i1 = i0 + 1024 < n ? i0 + 1024 : n;
        double acc[8] = {0};
        size_t i = i0;
        for (; i + 8 <= i1; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += (double)g[i + k] * (double)g[i + k];
        for (; i < i1; i++) acc[0] += (double)g[i] * (double)g[i];
        ss += ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
    if (isfinite(ss)) return sqrt(ss);
    /* Finite values whose squares overflow a double (only possible in the double build). */
    double mx = 0;
    for (size_t i = 0; i < ps->numel; i++) mx = fmax(mx, fabs((double)g[i]));
    if (!isfinite(mx)) return ss;
    ss = 0;
    for (size_t i = 0; i < ps->numel; i++) ss += ((double)g[i] / mx) * ((double)g[i] / mx);
    return mx * sqrt(ss);
}

/* Norm, or the error if any gradient is not finite (norm then NaN/Inf). */
static sp_status norm_or_fail(const sp_params *ps, const char *who, double *norm)
{
    if (!ps) return sp_fail(SP_ERR_ARG, "%s: parameter set is NULL", who);
    double nm = grad_norm(ps);
    if (norm) *norm = nm;
    if (isfinite(nm)) return SP_OK;
    size_t e = 0;
    const sp_tensor *bad = first_nonfinite(ps, &e);
    if (!bad) return sp_fail(SP_ERR_NONFINITE, "%s: gradient norm is not finite; nothing was changed", who);
    if (norm) *norm = isnan(bad->grad[e]) ? NAN : INFINITY;
    return nonfinite_error(who, bad, e);
}

sp_status sp_grad_norm(const sp_params *ps, double *norm)
{
    return norm_or_fail(ps, "sp_grad_norm", norm);
}

sp_status sp_clip_grad_value(sp_params *ps, double c, double *norm)
{
    if (!(c >= 0)) return sp_fail(SP_ERR_ARG, "sp_clip_grad_value: clip value %g must be >= 0", c);
    sp_status st = norm_or_fail(ps, "sp_clip_grad_value", norm);
    if (st != SP_OK) return st;
    const sp_real hi = (sp_real)c, lo = (sp_real)-c;
    sp_real *g = ps->grad;
    for (size_t i = 0; i < ps->numel; i++) g[i] = g[i] > hi ? hi : g[i] < lo ? lo : g[i];
    return SP_OK;
}

sp_status sp_clip_grad_norm(sp_params *ps, double max_norm, double *norm)
{
    if (!(max_norm > 0) || !isfinite(max_norm))
        return sp_fail(SP_ERR_ARG, "sp_clip_grad_norm: max_norm %g must be > 0 and finite", max_norm);
    double nm;
    sp_status st = norm_or_fail(ps, "sp_clip_grad_norm", &nm);
    if (norm) *norm = nm;
    if (st != SP_OK || nm <= max_norm) return st;
    const sp_real s = (sp_real)(max_norm / nm);
    sp_real *g = ps->grad;
    for (size_t i = 0; i < ps->numel; i++) g[i] *= s;
    return SP_OK;
}

/* --------------------------------------------------------------- schedules */

double sp_schedule_lr(const sp_schedule *s, int64_t step)
{
    if (!s) return sp_fail(SP_ERR_ARG, "sp_schedule_lr: schedule is NULL"), -1;
    if (step < 0) return sp_fail(SP_ERR_ARG, "sp_schedule_lr: step %lld < 0", (long long)step), -1;
    if (!(s->base_lr >= 0) || !isfinite(s->base_lr))
        return sp_fail(SP_ERR_ARG, "sp_schedule_lr: base_lr %g must be >= 0", s->base_lr), -1;
    switch (s->kind) {
    case SP_SCHED_CONSTANT: return s->base_lr;
    case SP_SCHED_STEP:
        if (s->step_size <= 0 || !(s->gamma >= 0))
            return sp_fail(SP_ERR_ARG, "sp_schedule_lr step: step_size %d must be > 0, gamma %g >= 0",
                           s->step_size, s->gamma), -1;
        return s->base_lr * pow(s->gamma, (double)(step / s->step_size));
    case SP_SCHED_COSINE:
        if (s->total <= 0 || s->warmup < 0 || s->warmup >= s->total || !(s->min_lr >= 0) || s->min_lr > s->base_lr)
            return sp_fail(SP_ERR_ARG, "sp_schedule_lr cosine: need 0 <= warmup (%d) < total (%d) and "
                           "0 <= min_lr (%g) <= base_lr (%g)", s->warmup, s->total, s->min_lr, s->base_lr), -1;
        if (step < s->warmup) return s->base_lr * (double)(step + 1) / s->warmup;
        if (step >= s->total) return s->min_lr;
        {
            double x = (double)(step - s->warmup) / (double)(s->total - s->warmup);
            return s->min_lr + (s->base_lr - s->min_lr) * 0.5 * (1 + cos(M_PI * x));
        }
    }
    return sp_fail(SP_ERR_ARG, "sp_schedule_lr: unknown schedule kind %d", (int)s->kind), -1;
}
