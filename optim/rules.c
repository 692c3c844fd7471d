/* SPDX-License-Identifier: MIT */
/* rules.c - the optimizer table: every update rule (SGD, RMSprop, Adagrad, Adam, AdamW, Lion) as
 * one row (name, defaults, the fields it checks, its state slabs, its step), and the table of
 * configuration fields that sp_optim_new checks and checkpoints save.
 *
 * Every step is one flat loop over the parameter slab, written to follow torch.optim 1.13's
 * single-tensor code path operation for operation (same state, same order of arithmetic, the
 * scalars cast to the real type the way torch casts them for a float tensor), so a float run here
 * and a float run in PyTorch stay within rounding of each other (Lion, which torch.optim lacks,
 * follows its paper's Algorithm 2; see lion_step). Elementwise loops are
 * deterministic whatever the thread count, which exact resume relies on.
 *
 * A new rule is an enum value in spool/optim.h and, here, a step function and a row (docs/optim.md
 * walks through one). */
#include "optim_internal.h"
#include "../ops/vec.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define FIELD(n, torch, type, range) {#n, torch, offsetof(sp_optim_config, n), type, range}
const sp_optim_field sp_optim_fields[] = {
    FIELD(lr, "lr", 0, SP_FIELD_NONNEG),
    FIELD(weight_decay, "weight_decay", 0, SP_FIELD_NONNEG),
    FIELD(momentum, "momentum", 0, SP_FIELD_NONNEG),
    FIELD(dampening, "dampening", 0, SP_FIELD_FINITE),
    FIELD(nesterov, "nesterov", 1, SP_FIELD_FLAG),
    FIELD(alpha, "alpha", 0, SP_FIELD_UNIT),
    FIELD(centered, "centered", 1, SP_FIELD_FLAG),
    FIELD(lr_decay, "lr_decay", 0, SP_FIELD_NONNEG),
    FIELD(initial_accumulator_value, "initial_accumulator_value", 0, SP_FIELD_NONNEG),
    FIELD(beta1, "betas[0]", 0, SP_FIELD_UNIT_OPEN),
    FIELD(beta2, "betas[1]", 0, SP_FIELD_UNIT_OPEN),
    FIELD(amsgrad, "amsgrad", 1, SP_FIELD_FLAG),
    FIELD(eps, "eps", 0, SP_FIELD_POSITIVE),
};
#undef FIELD
const int sp_optim_n_fields = (int)(sizeof sp_optim_fields / sizeof sp_optim_fields[0]);

const sp_optim_field *sp__optim_field(const char *name)
{
    for (int i = 0; name && i < sp_optim_n_fields; i++)
        if (strcmp(sp_optim_fields[i].name, name) == 0) return &sp_optim_fields[i];
    return NULL;
}

double sp__optim_field_get(const sp_optim_config *c, const sp_optim_field *f)
{
    const char *at = (const char *)c + f->offset;
    if (f->is_int) return *(const int *)at;
    return *(const double *)at;
}

/* ----------------------------------------------------------------------- SGD */

static sp_status sgd_check(const sp_optim_config *c)
{
    if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
        return sp_fail(SP_ERR_ARG, "sp_optim_new sgd: nesterov needs momentum > 0 and dampening 0 "
                       "(momentum %g, dampening %g)", c->momentum, c->dampening);
    return SP_OK;
}

/* Non-finite x (in a dry run: the step would store it). */
#define BAD(x) (!isfinite(x))
#ifdef SP_USE_DOUBLE
#define SQRT_R sqrt
#else
#define SQRT_R sqrtf
#endif

static int sgd_step(const sp_optim_update *u)
{
    const sp_optim_config *c = u->cfg;
    const size_t n = u->n;
    sp_real *restrict p = u->p;
    const sp_real *restrict g = u->g;
    const sp_real wd = (sp_real)c->weight_decay, lr_r = (sp_real)u->lr;
    const sp_real mu = (sp_real)c->momentum, damp = (sp_real)(1 - c->dampening);
    sp_real *restrict buf = u->slot[0];
    const int first = u->step == 1, nesterov = c->nesterov, has_mom = c->momentum != 0, dry = u->dry;
    int bad = 0;
#pragma omp parallel for reduction(| : bad) if (n > SP_PAR_MIN_OPTIM_ELEMS) num_threads(sp__threads_now()) schedule(static)
    for (size_t i = 0; i < n; i++) {
        sp_real d = g[i], nb = 0;
        if (wd != 0) d = d + wd * p[i];
        if (has_mom) {
            nb = first ? d : buf[i] * mu + damp * d;
            d = nesterov ? d + mu * nb : nb;
        }
        sp_real np = p[i] + (-lr_r) * d;
        if (dry) bad |= BAD(np) | BAD(nb);
        else {
            if (has_mom) buf[i] = nb;
            p[i] = np;
        }
    }
    return bad;
}

/* ------------------------------------------------------------------- RMSprop */

static int rmsprop_step(const sp_optim_update *u)
{
    const sp_optim_config *c = u->cfg;
    const size_t n = u->n;
    sp_real *restrict p = u->p;
    const sp_real *restrict g = u->g;
    const sp_real wd = (sp_real)c->weight_decay, eps = (sp_real)c->eps, lr_r = (sp_real)u->lr;
    const sp_real a = (sp_real)c->alpha, one_a = (sp_real)(1 - c->alpha), mu = (sp_real)c->momentum;
    sp_real *restrict sq = u->slot[0];
    sp_real *restrict buf = u->slot[1];
    sp_real *restrict gavg = u->slot[2];
    const int dry = u->dry;
    int bad = 0;
#pragma omp parallel for reduction(| : bad) if (n > SP_PAR_MIN_OPTIM_ELEMS) num_threads(sp__threads_now()) schedule(static)
    for (size_t i = 0; i < n; i++) {
        sp_real d = g[i], ngavg = 0, nbuf = 0, np;
        if (wd != 0) d = d + wd * p[i];
        sp_real nsq = sq[i] * a + one_a * (d * d);
        sp_real avg;
        if (gavg) {
            ngavg = gavg[i] * a + one_a * d;
            sp_real v = nsq - ngavg * ngavg;
            avg = sqrt(v > 0 ? v : 0); /* rounding can take v a hair below 0 */
        } else {
            avg = sqrt(nsq);
        }
        avg = avg + eps;
        if (buf) {
            nbuf = buf[i] * mu + d / avg;
            np = p[i] + (-lr_r) * nbuf;
        } else {
            np = p[i] + (-lr_r) * (d / avg);
        }
        if (dry) bad |= BAD(np) | BAD(nsq) | BAD(ngavg) | BAD(nbuf);
        else {
            sq[i] = nsq;
            if (gavg) gavg[i] = ngavg;
            if (buf) buf[i] = nbuf;
            p[i] = np;
        }
    }
    return bad;
}

/* ------------------------------------------------------------------- Adagrad */

static int adagrad_step(const sp_optim_update *u)
{
    const sp_optim_config *c = u->cfg;
    const size_t n = u->n;
    sp_real *restrict p = u->p;
    const sp_real *restrict g = u->g;
    const sp_real wd = (sp_real)c->weight_decay, eps = (sp_real)c->eps;
    const sp_real clr = (sp_real)(u->lr / (1 + ((double)u->step - 1) * c->lr_decay));
    sp_real *restrict sum = u->slot[0];
    const int dry = u->dry;
    int bad = 0;
#pragma omp parallel for reduction(| : bad) if (n > SP_PAR_MIN_OPTIM_ELEMS) num_threads(sp__threads_now()) schedule(static)
    for (size_t i = 0; i < n; i++) {
        sp_real d = g[i];
        if (wd != 0) d = d + wd * p[i];
        sp_real nsum = sum[i] + d * d;
        sp_real sd = (sp_real)sqrt(nsum) + eps;
        sp_real np = p[i] + (-clr) * (d / sd);
        if (dry) bad |= BAD(np) | BAD(nsum);
        else sum[i] = nsum, p[i] = np;
    }
    return bad;
}

/* ------------------------------------------------------------- Adam, AdamW */

static int adam_step(const sp_optim_update *u)
{
    const sp_optim_config *c = u->cfg;
    const size_t n = u->n;
    sp_real *restrict p = u->p;
    const sp_real *restrict g = u->g;
    const double lr = u->lr, step = (double)u->step;
    const sp_real wd = (sp_real)c->weight_decay, eps = (sp_real)c->eps;
    const int decoupled = c->kind == SP_ADAMW, ams = c->amsgrad;
    const sp_real b1 = (sp_real)c->beta1, b2 = (sp_real)c->beta2;
    const sp_real one_b1 = (sp_real)(1 - c->beta1), one_b2 = (sp_real)(1 - c->beta2);
    const double bc1 = 1 - pow(c->beta1, step), bc2 = 1 - pow(c->beta2, step);
    const sp_real step_size = (sp_real)(lr / bc1), bc2_sqrt = (sp_real)sqrt(bc2);
    const sp_real shrink = (sp_real)(1 - lr * c->weight_decay);
    sp_real *restrict m = u->slot[0], *restrict v = u->slot[1], *restrict vmax = u->slot[2];
    const int dry = u->dry;
    int bad = 0;
    if (!ams && !decoupled && wd == 0) { /* the common case, as branch-free loops that vectorise */
        if (dry) {
#pragma omp parallel for reduction(| : bad) if (n > SP_PAR_MIN_OPTIM_ELEMS) num_threads(sp__threads_now()) schedule(static)
            for (size_t i = 0; i < n; i++) {
                sp_real d = g[i], nm = m[i] * b1 + one_b1 * d, nv = v[i] * b2 + one_b2 * (d * d);
                sp_real np = p[i] + (-step_size) * (nm / (SQRT_R(nv) / bc2_sqrt + eps));
                bad |= BAD(np) | BAD(nm) | BAD(nv);
            }
            return bad;
        }
        /* the update itself through the kernel table (ops/vec.h): vectorised for this CPU */
        const sp_real k[7] = {b1, one_b1, b2, one_b2, step_size, bc2_sqrt, eps};
        void (*update)(sp_real *, const sp_real *, sp_real *, sp_real *, size_t, const sp_real *) = sp__vec()->adam;
        const size_t chunk = 4096;
        const size_t n_chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for if (n > SP_PAR_MIN_OPTIM_ELEMS) num_threads(sp__threads_now()) schedule(static)
        for (size_t c = 0; c < n_chunks; c++) {
            size_t i = c * chunk, len = n - i < chunk ? n - i : chunk;
            update(p + i, g + i, m + i, v + i, len, k);
        }
        return 0;
    }
#pragma omp parallel for reduction(| : bad) if (n > SP_PAR_MIN_OPTIM_ELEMS) num_threads(sp__threads_now()) schedule(static)
    for (size_t i = 0; i < n; i++) {
        sp_real d = g[i], pi = p[i], nvmax = 0;
        if (decoupled) pi = pi * shrink;
        else if (wd != 0) d = d + wd * pi;
        sp_real nm = m[i] * b1 + one_b1 * d;
        sp_real nv = v[i] * b2 + one_b2 * (d * d);
        sp_real s = nv;
        if (ams) {
            nvmax = vmax[i];
            if (nvmax < nv || isnan(nv)) nvmax = nv;
            s = nvmax;
        }
        sp_real denom = (sp_real)sqrt(s) / bc2_sqrt + eps;
        sp_real np = pi + (-step_size) * (nm / denom);
        if (dry) bad |= BAD(np) | BAD(nm) | BAD(nv) | BAD(nvmax);
        else {
            m[i] = nm, v[i] = nv, p[i] = np;
            if (ams) vmax[i] = nvmax;
        }
    }
    return bad;
}

/* ---------------------------------------------------------------------- Lion */

/* Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2: the sign of an
 * interpolation of momentum and gradient, decoupled weight decay, then the momentum update. */
static int lion_step(const sp_optim_update *u)
{
    const sp_optim_config *c = u->cfg;
    const size_t n = u->n;
    sp_real *restrict p = u->p;
    const sp_real *restrict g = u->g;
    const sp_real lr = (sp_real)u->lr, shrink = (sp_real)(1 - u->lr * c->weight_decay);
    const sp_real b1 = (sp_real)c->beta1, b2 = (sp_real)c->beta2;
    const sp_real one_b1 = (sp_real)(1 - c->beta1), one_b2 = (sp_real)(1 - c->beta2);
    sp_real *restrict m = u->slot[0];
    const int dry = u->dry;
    int bad = 0;
#pragma omp parallel for reduction(| : bad) if (n > SP_PAR_MIN_OPTIM_ELEMS) num_threads(sp__threads_now()) schedule(static)
    for (size_t i = 0; i < n; i++) {
        sp_real d = m[i] * b1 + one_b1 * g[i];
        sp_real s = (sp_real)((d > 0) - (d < 0));
        sp_real np = p[i] * shrink - lr * s, nm = m[i] * b2 + one_b2 * g[i];
        if (dry) bad |= BAD(np) | BAD(nm);
        else {
            p[i] = np;
            m[i] = nm;
        }
    }
    return bad;
}

/* --------------------------------------------------------------------- table */

const sp_optim_def sp_optim_table[SP_OPTIM_KIND_COUNT] = {
    [SP_SGD] = {
        .name = "sgd",
        .defaults = {.kind = SP_SGD, .lr = 0.01},
        .checks = "weight_decay momentum dampening",
        .check = sgd_check,
        .slots = {{"momentum_buffer", .when = "momentum"}},
        .step = sgd_step},
    [SP_RMSPROP] = {
        .name = "rmsprop",
        .defaults = {.kind = SP_RMSPROP, .lr = 1e-2, .alpha = 0.99, .eps = 1e-8},
        .checks = "weight_decay alpha momentum eps",
        .slots = {{"square_avg"}, {"momentum_buffer", .when = "momentum"}, {"grad_avg", .when = "centered"}},
        .step = rmsprop_step},
    [SP_ADAGRAD] = {
        .name = "adagrad",
        .defaults = {.kind = SP_ADAGRAD, .lr = 1e-2, .eps = 1e-10},
        .checks = "weight_decay lr_decay initial_accumulator_value eps",
        .slots = {{"sum", .init = "initial_accumulator_value"}},
        .step = adagrad_step},
    [SP_ADAM] = {
        .name = "adam",
        .defaults = {.kind = SP_ADAM, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8},
        .checks = "weight_decay beta1 beta2 eps",
        .slots = {{"exp_avg"}, {"exp_avg_sq"}, {"max_exp_avg_sq", .when = "amsgrad"}},
        .step = adam_step},
    [SP_ADAMW] = {
        .name = "adamw",
        .defaults = {.kind = SP_ADAMW, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 1e-2},
        .checks = "weight_decay beta1 beta2 eps",
        .slots = {{"exp_avg"}, {"exp_avg_sq"}, {"max_exp_avg_sq", .when = "amsgrad"}},
        .step = adam_step},
    [SP_LION] = {
        .name = "lion",
        .defaults = {.kind = SP_LION, .lr = 1e-4, .beta1 = 0.9, .beta2 = 0.99},
        .checks = "weight_decay beta1 beta2",
        .slots = {{"exp_avg"}},
        .step = lion_step},
};

const sp_optim_def *sp__optim_def(sp_optim_kind kind)
{
    return (unsigned)kind < SP_OPTIM_KIND_COUNT && sp_optim_table[kind].name ? &sp_optim_table[kind] : NULL;
}
