/* optim.c - the update rules (SGD, RMSprop, Adagrad, Adam, AdamW), gradient clipping and
 * learning-rate schedules.
 *
 * Every rule is one flat loop over the parameter slab, written to follow torch.optim 1.13's
 * single-tensor code path operation for operation (same state, same order of arithmetic, the
 * scalars cast to the real type the way torch casts them for a float tensor), so a float run here
 * and a float run in PyTorch stay within rounding of each other. Elementwise loops are
 * deterministic whatever the thread count, which exact resume relies on.
 */
#include "optim_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { PAR_MIN = 1 << 15 }; /* below this many elements threads cost more than they give */

sp_optim_config sp_optim_defaults(sp_optim_kind kind)
{
    sp_optim_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    switch (kind) {
    case SP_SGD: c.lr = 0.01; break;
    case SP_RMSPROP: c.lr = 1e-2, c.alpha = 0.99, c.eps = 1e-8; break;
    case SP_ADAGRAD: c.lr = 1e-2, c.eps = 1e-10; break;
    case SP_ADAM: c.lr = 1e-3, c.beta1 = 0.9, c.beta2 = 0.999, c.eps = 1e-8; break;
    case SP_ADAMW: c.lr = 1e-3, c.beta1 = 0.9, c.beta2 = 0.999, c.eps = 1e-8, c.weight_decay = 1e-2; break;
    }
    return c;
}

const char *sp_optim_kind_name(sp_optim_kind kind)
{
    switch (kind) {
    case SP_SGD: return "sgd";
    case SP_RMSPROP: return "rmsprop";
    case SP_ADAGRAD: return "adagrad";
    case SP_ADAM: return "adam";
    case SP_ADAMW: return "adamw";
    }
    return NULL;
}

static sp_status check_config(const sp_optim_config *c)
{
    const char *k = sp_optim_kind_name(c->kind);
    if (!k) return sp_fail(SP_ERR_ARG, "sp_optim_new: unknown optimizer kind %d", (int)c->kind);
    if (!(c->weight_decay >= 0) || !isfinite(c->weight_decay))
        return sp_fail(SP_ERR_ARG, "sp_optim_new %s: weight_decay %g must be >= 0", k, c->weight_decay);
    switch (c->kind) {
    case SP_SGD:
        if (!(c->momentum >= 0) || !isfinite(c->momentum) || !isfinite(c->dampening))
            return sp_fail(SP_ERR_ARG, "sp_optim_new sgd: momentum %g must be >= 0", c->momentum);
        if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
            return sp_fail(SP_ERR_ARG, "sp_optim_new sgd: nesterov needs momentum > 0 and dampening 0 "
                           "(momentum %g, dampening %g)", c->momentum, c->dampening);
        return SP_OK;
    case SP_RMSPROP:
        if (!(c->alpha >= 0 && c->alpha <= 1) || !(c->momentum >= 0) || !isfinite(c->momentum))
            return sp_fail(SP_ERR_ARG, "sp_optim_new rmsprop: need 0 <= alpha <= 1 and momentum >= 0 "
                           "(alpha %g, momentum %g)", c->alpha, c->momentum);
        break;
    case SP_ADAGRAD:
        if (!(c->lr_decay >= 0) || !(c->initial_accumulator_value >= 0) || !isfinite(c->lr_decay) ||
            !isfinite(c->initial_accumulator_value))
            return sp_fail(SP_ERR_ARG, "sp_optim_new adagrad: lr_decay %g and initial_accumulator_value %g "
                           "must be >= 0", c->lr_decay, c->initial_accumulator_value);
        break;
    case SP_ADAM:
    case SP_ADAMW:
        if (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1))
            return sp_fail(SP_ERR_ARG, "sp_optim_new %s: betas (%g, %g) must be in [0, 1)", k, c->beta1, c->beta2);
        break;
    }
    if (!(c->eps > 0) || !isfinite(c->eps)) return sp_fail(SP_ERR_ARG, "sp_optim_new %s: eps %g must be > 0", k, c->eps);
    return SP_OK;
}

sp_optim *sp_optim_new(sp_params *ps, const sp_optim_config *cfg)
{
    if (!ps || !cfg) {
        sp_fail(SP_ERR_ARG, "sp_optim_new: %s is NULL", !ps ? "the parameter set" : "the configuration");
        return NULL;
    }
    if (check_config(cfg) != SP_OK) return NULL;
    sp_optim *o = calloc(1, sizeof *o);
    if (!o) goto nomem;
    o->ps = ps;
    o->cfg = *cfg;
    o->numel = ps->numel;
    const sp_optim_config *c = cfg;
    switch (c->kind) {
    case SP_SGD:
        if (c->momentum != 0) o->slot_name[o->nslots++] = "momentum_buffer";
        break;
    case SP_RMSPROP:
        o->slot_name[o->nslots++] = "square_avg";
        if (c->momentum > 0) o->slot_name[o->nslots++] = "momentum_buffer";
        if (c->centered) o->slot_name[o->nslots++] = "grad_avg";
        break;
    case SP_ADAGRAD: o->slot_name[o->nslots++] = "sum"; break;
    case SP_ADAM:
    case SP_ADAMW:
        o->slot_name[o->nslots++] = "exp_avg";
        o->slot_name[o->nslots++] = "exp_avg_sq";
        if (c->amsgrad) o->slot_name[o->nslots++] = "max_exp_avg_sq";
        break;
    }
    for (int s = 0; s < o->nslots; s++) {
        o->slot[s] = calloc(o->numel ? o->numel : 1, sizeof(sp_real));
        if (!o->slot[s]) goto nomem;
    }
    if (c->kind == SP_ADAGRAD)
        for (size_t i = 0; i < o->numel; i++) o->slot[0][i] = (sp_real)c->initial_accumulator_value;
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

const sp_optim_config *sp_optim_get_config(const sp_optim *o) { return o ? &o->cfg : NULL; }
int64_t sp_optim_steps(const sp_optim *o) { return o ? o->step : 0; }
int sp_optim_nslots(const sp_optim *o) { return o ? o->nslots : 0; }
const char *sp_optim_slot_name(const sp_optim *o, int i) { return o && i >= 0 && i < o->nslots ? o->slot_name[i] : NULL; }
sp_real *sp_optim_slot(const sp_optim *o, int i) { return o && i >= 0 && i < o->nslots ? o->slot[i] : NULL; }

sp_real *sp_optim_slot_by_name(const sp_optim *o, const char *name)
{
    for (int s = 0; o && name && s < o->nslots; s++)
        if (strcmp(o->slot_name[s], name) == 0) return o->slot[s];
    return NULL;
}

/* The first parameter with a non-finite gradient, or NULL if all are finite. */
static const sp_tensor *first_nonfinite(const sp_params *ps, size_t *where)
{
    int bad = 0;
    const sp_real *g = ps->grad;
#pragma omp parallel for reduction(| : bad) if (ps->numel > PAR_MIN) schedule(static)
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

    const sp_optim_config *c = &o->cfg;
    const size_t n = o->numel;
    sp_real *restrict p = ps->value;
    const sp_real *restrict g = ps->grad;
    const sp_real wd = (sp_real)c->weight_decay, eps = (sp_real)c->eps, lr_r = (sp_real)lr;
    o->step++;
    const double step = (double)o->step;

    switch (c->kind) {
    case SP_SGD: {
        const sp_real mu = (sp_real)c->momentum, damp = (sp_real)(1 - c->dampening);
        sp_real *restrict buf = o->slot[0];
        const int first = o->step == 1, nesterov = c->nesterov, has_mom = c->momentum != 0;
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (size_t i = 0; i < n; i++) {
            sp_real d = g[i];
            if (wd != 0) d = d + wd * p[i];
            if (has_mom) {
                buf[i] = first ? d : buf[i] * mu + damp * d;
                d = nesterov ? d + mu * buf[i] : buf[i];
            }
            p[i] = p[i] + (-lr_r) * d;
        }
        break;
    }
    case SP_RMSPROP: {
        const sp_real a = (sp_real)c->alpha, one_a = (sp_real)(1 - c->alpha), mu = (sp_real)c->momentum;
        sp_real *restrict sq = o->slot[0];
        sp_real *restrict buf = sp_optim_slot_by_name(o, "momentum_buffer");
        sp_real *restrict gavg = sp_optim_slot_by_name(o, "grad_avg");
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (size_t i = 0; i < n; i++) {
            sp_real d = g[i];
            if (wd != 0) d = d + wd * p[i];
            sq[i] = sq[i] * a + one_a * (d * d);
            sp_real avg;
            if (gavg) {
                gavg[i] = gavg[i] * a + one_a * d;
                sp_real v = sq[i] - gavg[i] * gavg[i];
                avg = sqrt(v > 0 ? v : 0); /* rounding can take v a hair below 0 */
            } else {
                avg = sqrt(sq[i]);
            }
            avg = avg + eps;
            if (buf) {
                buf[i] = buf[i] * mu + d / avg;
                p[i] = p[i] + (-lr_r) * buf[i];
            } else {
                p[i] = p[i] + (-lr_r) * (d / avg);
            }
        }
        break;
    }
    case SP_ADAGRAD: {
        const sp_real clr = (sp_real)(lr / (1 + (step - 1) * c->lr_decay));
        sp_real *restrict sum = o->slot[0];
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (size_t i = 0; i < n; i++) {
            sp_real d = g[i];
            if (wd != 0) d = d + wd * p[i];
            sum[i] = sum[i] + d * d;
            sp_real sd = (sp_real)sqrt(sum[i]) + eps;
            p[i] = p[i] + (-clr) * (d / sd);
        }
        break;
    }
    case SP_ADAM:
    case SP_ADAMW: {
        const int decoupled = c->kind == SP_ADAMW, ams = c->amsgrad;
        const sp_real b1 = (sp_real)c->beta1, b2 = (sp_real)c->beta2;
        const sp_real one_b1 = (sp_real)(1 - c->beta1), one_b2 = (sp_real)(1 - c->beta2);
        const double bc1 = 1 - pow(c->beta1, step), bc2 = 1 - pow(c->beta2, step);
        const sp_real step_size = (sp_real)(lr / bc1), bc2_sqrt = (sp_real)sqrt(bc2);
        const sp_real shrink = (sp_real)(1 - lr * c->weight_decay);
        sp_real *restrict m = o->slot[0], *restrict v = o->slot[1], *restrict vmax = o->slot[2];
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (size_t i = 0; i < n; i++) {
            sp_real d = g[i];
            if (decoupled) p[i] = p[i] * shrink;
            else if (wd != 0) d = d + wd * p[i];
            m[i] = m[i] * b1 + one_b1 * d;
            v[i] = v[i] * b2 + one_b2 * (d * d);
            sp_real s = v[i];
            if (ams) {
                if (vmax[i] < v[i] || isnan(v[i])) vmax[i] = v[i];
                s = vmax[i];
            }
            sp_real denom = (sp_real)sqrt(s) / bc2_sqrt + eps;
            p[i] = p[i] + (-step_size) * (m[i] / denom);
        }
        break;
    }
    }
    return SP_OK;
}

/* ---------------------------------------------------------------- clipping */

static double grad_norm(const sp_params *ps)
{
    const sp_real *g = ps->grad;
    double ss = 0;
#pragma omp parallel for reduction(+ : ss) if (ps->numel > PAR_MIN) schedule(static)
    for (size_t i = 0; i < ps->numel; i++) ss += (double)g[i] * (double)g[i];
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
static sp_status norm_or_fail(sp_params *ps, const char *who, double *norm)
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
