/* SPDX-License-Identifier: MIT */
/* test_optim.c - the update rules against values worked out by hand for the first steps (momentum
 * buffers, Nesterov, dampening, weight decay coupled and decoupled, Adam's bias correction,
 * RMSprop centred and with momentum, Adagrad's lr decay), then against an independent double
 * reference over several steps with changing gradients (Lion over 400 steps against its paper's
 * algorithm); NaN/Inf gradients refused; clipping
 * edge cases; schedules; and a small classifier whose loss must fall under every optimizer.
 *
 * The hand values in comments are the arithmetic written out, for one parameter p0 = 1 with a
 * constant gradient g = 0.5 unless said otherwise. */
#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One scalar parameter p (value p0) with a fixed gradient g; runs `steps` updates and returns p
 * after each in out[]. */
static void run_scalar(const sp_optim_config *c, double p0, const double *g, int steps, double lr, double *out)
{
    sp_params *ps = sp_params_new();
    sp_tensor *p = sp_param(ps, "p", 1, 1);
    p->data[0] = (sp_real)p0;
    sp_optim *o = sp_optim_new(ps, c);
    assert_non_null(o);
    for (int k = 0; k < steps; k++) {
        p->grad[0] = (sp_real)g[k];
        assert_int_equal(sp_optim_step(o, lr), SP_OK);
        out[k] = p->data[0];
    }
    assert_int_equal(sp_optim_steps(o), steps);
    sp_optim_free(o);
    sp_params_free(ps);
}

static const double G05[4] = {0.5, 0.5, 0.5, 0.5};

static void expect(const double *got, const double *want, int n, const char *what)
{
    char msg[96];
    for (int k = 0; k < n; k++) {
        snprintf(msg, sizeof msg, "%s, step %d", what, k + 1);
        sp_test_close(got[k], want[k], 2e-6, 1e-7, msg);
    }
}

static void test_sgd_by_hand(void **state)
{
    (void)state;
    double out[4];
    sp_optim_config c = sp_optim_defaults(SP_SGD);
    /* plain: p -= 0.1 * 0.5 each step */
    run_scalar(&c, 1, G05, 3, 0.1, out);
    expect(out, (double[]){0.95, 0.90, 0.85}, 3, "sgd");
    /* momentum 0.9: buf 0.5, 0.95, 1.355 -> p 0.95, 0.855, 0.7195 */
    c.momentum = 0.9;
    run_scalar(&c, 1, G05, 3, 0.1, out);
    expect(out, (double[]){0.95, 0.855, 0.7195}, 3, "sgd momentum");
    /* nesterov: buf 0.5, 0.95; step d = g + 0.9 buf = 0.95, 1.355 -> p 0.905, 0.7695 */
    c.nesterov = 1;
    run_scalar(&c, 1, G05, 2, 0.1, out);
    expect(out, (double[]){0.905, 0.7695}, 2, "sgd nesterov");
    /* weight decay 0.1, dampening 0.5: d1 = 0.5 + 0.1 = 0.6, buf = 0.6 (first step undamped),
     * p = 0.94; d2 = 0.5 + 0.094 = 0.594, buf = 0.54 + 0.297 = 0.837, p = 0.8563 */
    c.nesterov = 0, c.dampening = 0.5, c.weight_decay = 0.1;
    run_scalar(&c, 1, G05, 2, 0.1, out);
    expect(out, (double[]){0.94, 0.8563}, 2, "sgd momentum+dampening+wd");
}

static void test_adam_bias_correction_by_hand(void **state)
{
    (void)state;
    double out[4];
    sp_optim_config c = sp_optim_defaults(SP_ADAM);
    /* With a constant gradient the bias-corrected moments are g and g^2 at every step, so each
     * step moves p by lr (to eps): 0.9, 0.8, 0.7. Without the correction the first step would be
     * 0.1 * 0.05 / sqrt(0.00025) = 0.316. */
    run_scalar(&c, 1, G05, 3, 0.1, out);
    expect(out, (double[]){0.9, 0.8, 0.7}, 3, "adam constant gradient");
    /* g = 0.5 then -0.25: m2 = 0.045 - 0.025 = 0.02, v2 = 0.00024975 + 0.0000625 = 0.00031225,
     * m^ = 0.02 / 0.19 = 0.1052632, v^ = 0.00031225 / 0.001999 = 0.1562031, sqrt = 0.3952254,
     * p2 = 0.9 - 0.1 * 0.1052632 / 0.3952254 = 0.8733663 */
    run_scalar(&c, 1, (double[]){0.5, -0.25}, 2, 0.1, out);
    expect(out, (double[]){0.9, 0.8733663}, 2, "adam changing gradient");
    /* L2 weight decay goes through the moments (sign-like step stays lr): 0.9 */
    c.weight_decay = 0.01;
    run_scalar(&c, 1, G05, 1, 0.1, out);
    expect(out, (double[]){0.9}, 1, "adam + L2");
    /* amsgrad keeps the max of v: g = 1 then 0.1: v1 = 0.001, v2 = 0.000999 + 0.00001 = 0.001009
     * (> v1, so max = v2); m2 = 0.09 + 0.01 = 0.1; m^ = 0.1/0.19, v^ = 0.001009/0.001999;
     * p2 = 0.9 - 0.1 * 0.5263158 / 0.7104590 = 0.8259189 (torch.optim.Adam agrees) */
    c = sp_optim_defaults(SP_ADAM);
    c.amsgrad = 1;
    run_scalar(&c, 1, (double[]){1, 0.1}, 2, 0.1, out);
    expect(out, (double[]){0.9, 0.8259189}, 2, "adam amsgrad");
}

static void test_adamw_decoupled_decay_by_hand(void **state)
{
    (void)state;
    double out[4];
    sp_optim_config c = sp_optim_defaults(SP_ADAMW);
    assert_true(c.weight_decay == 0.01);
    /* p = 1 * (1 - 0.1 * 0.01) = 0.999, then - 0.1 -> 0.899 (Adam with L2 gives 0.9) */
    run_scalar(&c, 1, G05, 1, 0.1, out);
    expect(out, (double[]){0.899}, 1, "adamw");
    /* zero gradient: only the decay acts, 0.999^k */
    run_scalar(&c, 1, (double[]){0, 0, 0}, 3, 0.1, out);
    expect(out, (double[]){0.999, 0.998001, 0.997002999}, 3, "adamw zero gradient");
}

static void test_lion_by_hand(void **state)
{
    (void)state;
    double out[4];
    sp_optim_config c = sp_optim_defaults(SP_LION);
    assert_true(c.lr == 1e-4 && c.beta1 == 0.9 && c.beta2 == 0.99 && c.weight_decay == 0);
    /* g = 0.5, -0.5, 0: sign(0.9*0 + 0.1*0.5) = +1 -> p 0.9, m = 0.005;
     * sign(0.9*0.005 - 0.05) = -1 -> p 1.0, m = 0.00495 - 0.005 = -0.00005;
     * sign(0.9*-0.00005 + 0) = -1 -> p 1.1 */
    run_scalar(&c, 1, (double[]){0.5, -0.5, 0}, 3, 0.1, out);
    expect(out, (double[]){0.9, 1.0, 1.1}, 3, "lion");
    /* decoupled decay: 1 * (1 - 0.1 * 0.5) - 0.1 = 0.85; a zero interpolation moves nothing but the decay */
    c.weight_decay = 0.5;
    run_scalar(&c, 1, (double[]){0.5}, 1, 0.1, out);
    expect(out, (double[]){0.85}, 1, "lion decay");
    run_scalar(&c, 1, (double[]){0}, 1, 0.1, out);
    expect(out, (double[]){0.95}, 1, "lion sign(0) = 0");
}

static void test_rmsprop_by_hand(void **state)
{
    (void)state;
    double out[4];
    sp_optim_config c = sp_optim_defaults(SP_RMSPROP);
    /* sq1 = 0.0025, avg 0.05, p = 1 - 0.01 * 10 = 0.9; sq2 = 0.004975, avg 0.07053368,
     * p = 0.9 - 0.01 * 7.088812 = 0.8291119 */
    run_scalar(&c, 1, G05, 2, 0.01, out);
    expect(out, (double[]){0.9, 0.8291119}, 2, "rmsprop");
    /* centred: grad_avg 0.005, var 0.0025 - 0.000025 = 0.002475, p = 1 - 0.005/0.04974937 = 0.8994962 */
    c.centered = 1;
    run_scalar(&c, 1, G05, 1, 0.01, out);
    expect(out, (double[]){0.8994962}, 1, "rmsprop centered");
    /* momentum 0.9: buf 10 then 9 + 7.088812 -> p 0.9, 0.7391119 */
    c.centered = 0, c.momentum = 0.9;
    run_scalar(&c, 1, G05, 2, 0.01, out);
    expect(out, (double[]){0.9, 0.7391119}, 2, "rmsprop momentum");
}

static void test_adagrad_by_hand(void **state)
{
    (void)state;
    double out[4];
    sp_optim_config c = sp_optim_defaults(SP_ADAGRAD);
    /* sum 0.25, 0.5 -> p 0.9, 0.9 - 0.05/0.7071068 = 0.8292893 */
    run_scalar(&c, 1, G05, 2, 0.1, out);
    expect(out, (double[]){0.9, 0.8292893}, 2, "adagrad");
    /* lr_decay 0.5: second step uses lr 0.1/1.5 -> 0.9 - 0.04714045 = 0.8528595 */
    c.lr_decay = 0.5;
    run_scalar(&c, 1, G05, 2, 0.1, out);
    expect(out, (double[]){0.9, 0.8528595}, 2, "adagrad lr_decay");
    /* initial accumulator 0.75: sum 1 -> p = 1 - 0.05 = 0.95 */
    c.lr_decay = 0, c.initial_accumulator_value = 0.75;
    run_scalar(&c, 1, G05, 1, 0.1, out);
    expect(out, (double[]){0.95}, 1, "adagrad initial accumulator");
}

/* ----------------------------------------- many elements against a double reference */

typedef struct {
    double p, m, v, vmax, b, ga;
} ref_state;

/* torch.optim's formulas in double, one element. */
static void ref_step(const sp_optim_config *c, ref_state *s, double g, double lr, int t)
{
    switch (c->kind) {
    case SP_SGD:
        g += c->weight_decay * s->p;
        if (c->momentum != 0) {
            s->b = t == 1 ? g : c->momentum * s->b + (1 - c->dampening) * g;
            g = c->nesterov ? g + c->momentum * s->b : s->b;
        }
        s->p -= lr * g;
        break;
    case SP_RMSPROP: {
        g += c->weight_decay * s->p;
        s->v = c->alpha * s->v + (1 - c->alpha) * g * g;
        double avg;
        if (c->centered) {
            s->ga = c->alpha * s->ga + (1 - c->alpha) * g;
            avg = sqrt(s->v - s->ga * s->ga) + c->eps;
        } else {
            avg = sqrt(s->v) + c->eps;
        }
        if (c->momentum > 0) {
            s->b = c->momentum * s->b + g / avg;
            s->p -= lr * s->b;
        } else {
            s->p -= lr * g / avg;
        }
        break;
    }
    case SP_ADAGRAD:
        g += c->weight_decay * s->p;
        if (t == 1) s->v = c->initial_accumulator_value;
        s->v += g * g;
        s->p -= lr / (1 + (t - 1) * c->lr_decay) * g / (sqrt(s->v) + c->eps);
        break;
    case SP_ADAM:
    case SP_ADAMW:
        if (c->kind == SP_ADAMW) s->p *= 1 - lr * c->weight_decay;
        else g += c->weight_decay * s->p;
        s->m = c->beta1 * s->m + (1 - c->beta1) * g;
        s->v = c->beta2 * s->v + (1 - c->beta2) * g * g;
        s->vmax = fmax(s->vmax, s->v);
        double vh = (c->amsgrad ? s->vmax : s->v) / (1 - pow(c->beta2, t));
        s->p -= lr * (s->m / (1 - pow(c->beta1, t))) / (sqrt(vh) + c->eps);
        break;
    default: break;
    }
}

/* Lion over many steps against its paper (Chen et al. 2023, Algorithm 2), in double:
 *   c = beta1 m + (1 - beta1) g;  p = p (1 - lr lambda) - lr sign(c);  m = beta2 m + (1 - beta2) g.
 * The momentum follows beta2 and the interpolation beta1: with beta1 != beta2 and a gradient with
 * a slow and a fast part, the two differ, and after hundreds of steps the slot exp_avg and the
 * parameters show which was used where. A sign whose interpolation is within float rounding of 0
 * is taken from spool's run (the reference keeps following it). */
static void test_lion_matches_paper(void **state)
{
    (void)state;
    enum { N = 37, STEPS = 400 };
    const double betas[2][2] = {{0.9, 0.99}, {0.8, 0.97}};
    for (int k = 0; k < 2; k++) {
        sp_optim_config c = sp_optim_defaults(SP_LION);
        c.beta1 = betas[k][0], c.beta2 = betas[k][1], c.weight_decay = 0.1;
        sp_params *ps = sp_params_new();
        sp_param(ps, "a", 5, 5);
        sp_param(ps, "b", 1, 12);
        sp_rng r;
        sp_rng_seed(&r, 40 + k);
        double p[N], m[N];
        for (int i = 0; i < N; i++) ps->value[i] = (sp_real)(sp_rng_uniform(&r) * 2 - 1), p[i] = ps->value[i], m[i] = 0;
        sp_optim *o = sp_optim_new(ps, &c);
        assert_non_null(o);
        const sp_real *slot = sp_optim_slot_by_name(o, "exp_avg");
        assert_non_null(slot);
        int ties = 0;
        for (int t = 1; t <= STEPS; t++) {
            const double lr = 0.01;
            for (int i = 0; i < N; i++) {
                ps->grad[i] = (sp_real)(0.6 * sin(t / 17.0 + i) + 0.4 * (2 * sp_rng_uniform(&r) - 1));
                double g = ps->grad[i], ci = c.beta1 * m[i] + (1 - c.beta1) * g;
                p[i] = p[i] * (1 - lr * c.weight_decay) - lr * ((ci > 0) - (ci < 0));
                m[i] = c.beta2 * m[i] + (1 - c.beta2) * g;
                if (fabs(ci) < 1e-5) p[i] = NAN; /* decided by rounding: read spool's below */
            }
            assert_int_equal(sp_optim_step(o, lr), SP_OK);
            char what[64];
            snprintf(what, sizeof what, "lion beta1 %g beta2 %g step %d", c.beta1, c.beta2, t);
            for (int i = 0; i < N; i++) {
                if (isnan(p[i])) p[i] = ps->value[i], ties++;
                sp_test_close(ps->value[i], p[i], 1e-5, 1e-5, what);
                sp_test_close(slot[i], m[i], 1e-5, 1e-6, what);
            }
        }
        assert_true(ties < N * STEPS / 100);
        sp_optim_free(o);
        sp_params_free(ps);
    }
}

static void test_rules_match_double_reference(void **state)
{
    (void)state;
    enum { N = 37, STEPS = 6 };
    sp_optim_config cs[9];
    for (int k = 0; k < 5; k++) cs[k] = sp_optim_defaults((sp_optim_kind)k);
    cs[0].momentum = 0.8, cs[0].weight_decay = 0.05, cs[0].dampening = 0.2;
    cs[1].momentum = 0.5, cs[1].centered = 1, cs[1].weight_decay = 0.02;
    cs[2].lr_decay = 0.1, cs[2].initial_accumulator_value = 0.1, cs[2].weight_decay = 0.03;
    cs[3].amsgrad = 1, cs[3].weight_decay = 0.01;
    cs[4].amsgrad = 1;
    cs[5] = sp_optim_defaults(SP_SGD), cs[5].momentum = 0.9, cs[5].nesterov = 1;
    cs[6] = sp_optim_defaults(SP_RMSPROP);
    cs[7] = sp_optim_defaults(SP_ADAM), cs[7].beta1 = 0.5, cs[7].beta2 = 0.9;
    cs[8] = sp_optim_defaults(SP_ADAMW), cs[8].weight_decay = 0.3;
    for (int k = 0; k < 9; k++) {
        sp_params *ps = sp_params_new();
        sp_tensor *a = sp_param(ps, "a", 5, 5), *b = sp_param(ps, "b", 1, 12);
        assert_true(a && b && ps->numel == N);
        sp_rng r;
        sp_rng_seed(&r, 100 + k);
        ref_state ref[N];
        memset(ref, 0, sizeof ref);
        for (int i = 0; i < N; i++) ps->value[i] = (sp_real)(sp_rng_uniform(&r) * 2 - 1), ref[i].p = ps->value[i];
        sp_optim *o = sp_optim_new(ps, &cs[k]);
        assert_non_null(o);
        for (int t = 1; t <= STEPS; t++) {
            double lr = 0.05 / t;
            for (int i = 0; i < N; i++) {
                ps->grad[i] = (sp_real)(sp_rng_uniform(&r) * 2 - 1);
                ref_step(&cs[k], &ref[i], ps->grad[i], lr, t);
            }
            assert_int_equal(sp_optim_step(o, lr), SP_OK);
            char what[64];
            snprintf(what, sizeof what, "%s config %d step %d", sp_optim_kind_name(cs[k].kind), k, t);
            for (int i = 0; i < N; i++) sp_test_close(ps->value[i], ref[i].p, 1e-5, 1e-6, what);
        }
        sp_optim_free(o);
        sp_params_free(ps);
    }
}

static void test_nonfinite_gradient_refused(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_param(ps, "w", 2, 3);
    sp_tensor *b = sp_param(ps, "decoder.bias", 1, 3);
    for (size_t i = 0; i < ps->numel; i++) ps->value[i] = (sp_real)i, ps->grad[i] = 0.1f;
    sp_optim_config c = sp_optim_defaults(SP_ADAM);
    sp_optim *o = sp_optim_new(ps, &c);
    assert_int_equal(sp_optim_step(o, 0.1), SP_OK);
    sp_real before[9], m_before[9];
    memcpy(before, ps->value, sizeof before);
    memcpy(m_before, sp_optim_slot_by_name(o, "exp_avg"), sizeof m_before);
    for (int kind = 0; kind < 2; kind++) {
        b->grad[1] = kind ? (sp_real)INFINITY : (sp_real)NAN;
        assert_int_equal(sp_optim_step(o, 0.1), SP_ERR_NONFINITE);
        assert_non_null(strstr(sp_last_error(), "decoder.bias"));
        assert_non_null(strstr(sp_last_error(), kind ? "Inf" : "NaN"));
        assert_memory_equal(before, ps->value, sizeof before);
        assert_memory_equal(m_before, sp_optim_slot_by_name(o, "exp_avg"), sizeof m_before);
        assert_int_equal(sp_optim_steps(o), 1);
    }
    b->grad[1] = 0.1f;
    assert_int_equal(sp_optim_step(o, 0.1), SP_OK);
    assert_int_equal(sp_optim_steps(o), 2);
    /* parameters added after the optimizer: refused, not read out of bounds */
    sp_param(ps, "late", 4, 4);
    assert_int_equal(sp_optim_step(o, 0.1), SP_ERR_STATE);
    assert_int_equal(sp_optim_step(o, -1), SP_ERR_STATE);
    sp_optim_free(o);
    sp_params_free(ps);
}

static void test_bad_configs_rejected(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_param(ps, "w", 2, 2);
    sp_optim_config c = sp_optim_defaults(SP_SGD);
    c.nesterov = 1;
    assert_null(sp_optim_new(ps, &c));
    assert_non_null(strstr(sp_last_error(), "nesterov"));
    c = sp_optim_defaults(SP_ADAM);
    c.beta2 = 1;
    assert_null(sp_optim_new(ps, &c));
    assert_non_null(strstr(sp_last_error(), "betas"));
    c = sp_optim_defaults(SP_RMSPROP);
    c.eps = 0;
    assert_null(sp_optim_new(ps, &c));
    c = sp_optim_defaults(SP_ADAGRAD);
    c.kind = (sp_optim_kind)42;
    assert_null(sp_optim_new(ps, &c));
    c = sp_optim_defaults(SP_SGD);
    sp_optim *o = sp_optim_new(ps, &c);
    assert_non_null(o);
    assert_int_equal(sp_optim_nslots(o), 0);
    assert_int_equal(sp_optim_step(o, NAN), SP_ERR_ARG);
    sp_optim_free(o);
    sp_params_free(ps);
}

/* ---------------------------------------------------------------- clipping */

static void test_clip_norm_edges(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_tensor *a = sp_param(ps, "a", 1, 1), *b = sp_param(ps, "b", 1, 1);
    double norm = -1;
    /* zero gradient: norm 0, nothing changes, no division by zero */
    assert_int_equal(sp_clip_grad_norm(ps, 1.0, &norm), SP_OK);
    assert_true(norm == 0 && a->grad[0] == 0 && b->grad[0] == 0);
    assert_int_equal(sp_clip_grad_value(ps, 1.0, &norm), SP_OK);
    assert_true(norm == 0);
    /* norm of (3, 4) across two parameters is 5; exactly at the threshold: untouched */
    a->grad[0] = 3, b->grad[0] = 4;
    assert_int_equal(sp_clip_grad_norm(ps, 5.0, &norm), SP_OK);
    assert_true(norm == 5.0 && a->grad[0] == 3 && b->grad[0] == 4);
    /* below: untouched */
    assert_int_equal(sp_clip_grad_norm(ps, 7.0, &norm), SP_OK);
    assert_true(a->grad[0] == 3 && b->grad[0] == 4);
    /* above: scaled to the threshold, the norm before clipping is returned */
    assert_int_equal(sp_clip_grad_norm(ps, 1.0, &norm), SP_OK);
    sp_test_close(norm, 5.0, 1e-12, 0, "norm before clipping");
    sp_test_close(a->grad[0], 0.6, 1e-6, 0, "clipped a");
    sp_test_close(b->grad[0], 0.8, 1e-6, 0, "clipped b");
    assert_int_equal(sp_clip_grad_norm(ps, 1.0, &norm), SP_OK);
    sp_test_close(norm, 1.0, 1e-6, 0, "norm after clipping");
    /* NaN / Inf: reported, not applied */
    a->grad[0] = 3, b->grad[0] = (sp_real)NAN;
    assert_int_equal(sp_clip_grad_norm(ps, 1.0, &norm), SP_ERR_NONFINITE);
    assert_true(isnan(norm) && a->grad[0] == 3);
    assert_non_null(strstr(sp_last_error(), "\"b\""));
    b->grad[0] = (sp_real)-INFINITY;
    assert_int_equal(sp_clip_grad_value(ps, 1.0, &norm), SP_ERR_NONFINITE);
    assert_true(isinf(norm) && a->grad[0] == 3);
    assert_int_equal(sp_clip_grad_norm(ps, 0, &norm), SP_ERR_ARG);
    sp_params_free(ps);
}

/* sp_grad_norm: the norm across parameters, nothing changed, NaN/Inf reported with its name. */
static void test_grad_norm(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_tensor *a = sp_param(ps, "a", 1, 2), *b = sp_param_vec(ps, "b", 1);
    double norm = -1;
    assert_int_equal(sp_grad_norm(ps, &norm), SP_OK);
    assert_true(norm == 0);
    a->grad[0] = 2, a->grad[1] = -4, b->grad[0] = 4; /* sqrt(4 + 16 + 16) = 6 */
    assert_int_equal(sp_grad_norm(ps, &norm), SP_OK);
    sp_test_close(norm, 6.0, 1e-12, 0, "grad norm");
    assert_true(a->grad[0] == 2 && a->grad[1] == -4 && b->grad[0] == 4);
    b->grad[0] = (sp_real)INFINITY;
    assert_int_equal(sp_grad_norm(ps, &norm), SP_ERR_NONFINITE);
    assert_true(isinf(norm));
    assert_non_null(strstr(sp_last_error(), "\"b\""));
    assert_int_equal(sp_grad_norm(NULL, &norm), SP_ERR_ARG);
    sp_params_free(ps);
}

static void test_clip_value(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_tensor *a = sp_param(ps, "a", 1, 4);
    a->grad[0] = 3, a->grad[1] = -4, a->grad[2] = 0.5f, a->grad[3] = -1;
    double norm;
    assert_int_equal(sp_clip_grad_value(ps, 1.0, &norm), SP_OK);
    sp_test_close(norm, sqrt(9 + 16 + 0.25 + 1), 1e-12, 0, "norm before value clipping");
    assert_true(a->grad[0] == 1 && a->grad[1] == -1 && a->grad[2] == 0.5f && a->grad[3] == -1);
    assert_int_equal(sp_clip_grad_value(ps, 0, NULL), SP_OK);
    for (int j = 0; j < 4; j++) assert_true(a->grad[j] == 0);
    sp_params_free(ps);
}

/* --------------------------------------------------------------- schedules */

static void test_schedules(void **state)
{
    (void)state;
    sp_schedule s = {SP_SCHED_CONSTANT, 0.1, 0, 0, 0, 0, 0};
    assert_true(sp_schedule_lr(&s, 0) == 0.1 && sp_schedule_lr(&s, 12345) == 0.1);
    s = (sp_schedule){SP_SCHED_STEP, 0.1, 3, 0.5, 0, 0, 0};
    double want_step[7] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025};
    for (int k = 0; k < 7; k++) sp_test_close(sp_schedule_lr(&s, k), want_step[k], 1e-15, 0, "step decay");
    s = (sp_schedule){SP_SCHED_COSINE, 1.0, 0, 0, 2, 10, 0.0};
    /* warm-up 0.5, 1; then 1 at s = 0, 0.5 half-way (step 6), 0.0380602 at step 9, 0 at the end */
    double want_cos[11] = {0.5, 1, 1, 0.9619398, 0.8535534, 0.6913417, 0.5, 0.3086583, 0.1464466, 0.0380602, 0};
    for (int k = 0; k <= 10; k++) sp_test_close(sp_schedule_lr(&s, k), want_cos[k], 1e-6, 1e-9, "cosine");
    sp_test_close(sp_schedule_lr(&s, 50), 0, 0, 0, "cosine after the end");
    s.min_lr = 0.1;
    sp_test_close(sp_schedule_lr(&s, 6), 0.55, 1e-12, 0, "cosine with floor, half-way");
    s.warmup = 10;
    assert_true(sp_schedule_lr(&s, 0) < 0);
    assert_non_null(strstr(sp_last_error(), "warmup"));
    s = (sp_schedule){SP_SCHED_STEP, 0.1, 0, 0.5, 0, 0, 0};
    assert_true(sp_schedule_lr(&s, 1) < 0);
}

/* ------------------------------------------- a small model learns with each */

enum { NB = 24, NI = 4, NH = 8, NC = 3 };

typedef struct {
    sp_tensor *W1, *b1, *W2, *b2;
    float x[NB * NI];
    int y[NB];
} mlp;

static sp_tensor *mlp_loss(sp_tape *t, mlp *m)
{
    sp_tensor *x = sp_const(t, NB, NI);
    for (int i = 0; i < NB * NI; i++) x->data[i] = m->x[i];
    sp_tensor *h = sp_tanh(t, sp_add(t, sp_matmul(t, x, m->W1), m->b1));
    return sp_softmax_xent(t, sp_add(t, sp_matmul(t, h, m->W2), m->b2), m->y, NULL);
}

static void test_loss_falls_with_each_optimizer(void **state)
{
    (void)state;
    struct {
        sp_optim_config c;
        double lr;
    } runs[6];
    for (int k = 0; k < 5; k++) runs[k].c = sp_optim_defaults((sp_optim_kind)k);
    runs[0].lr = 0.3, runs[0].c.momentum = 0.9;
    runs[1].lr = 0.01;
    runs[2].lr = 0.1;
    runs[3].lr = 0.02;
    runs[4].lr = 0.02;
    runs[5].c = sp_optim_defaults(SP_SGD), runs[5].lr = 0.5;
    for (int k = 0; k < 6; k++) {
        sp_params *ps = sp_params_new();
        mlp m;
        m.W1 = sp_param(ps, "W1", NI, NH), m.b1 = sp_param(ps, "b1", 1, NH);
        m.W2 = sp_param(ps, "W2", NH, NC), m.b2 = sp_param(ps, "b2", 1, NC);
        sp_rng r;
        sp_rng_seed(&r, 5);
        sp_test_fill(m.W1, &r, -0.5, 0.5);
        sp_test_fill(m.W2, &r, -0.5, 0.5);
        for (int i = 0; i < NB; i++) {
            double s[NC] = {0};
            for (int j = 0; j < NI; j++) {
                m.x[i * NI + j] = (float)sp_rng_normal(&r);
                for (int c = 0; c < NC; c++) s[c] += m.x[i * NI + j] * ((j + c) % 3 - 1.0);
            }
            m.y[i] = s[0] > s[1] ? (s[0] > s[2] ? 0 : 2) : (s[1] > s[2] ? 1 : 2);
        }
        sp_optim *o = sp_optim_new(ps, &runs[k].c);
        sp_tape *t = sp_tape_new();
        double first = 0, last = 0;
        for (int step = 0; step < 150; step++) {
            sp_tape_reset(t);
            sp_params_zero_grad(ps);
            sp_tensor *l = mlp_loss(t, &m);
            assert_int_equal(sp_backward(t, l), SP_OK);
            double norm;
            assert_int_equal(sp_clip_grad_norm(ps, 5.0, &norm), SP_OK);
            assert_int_equal(sp_optim_step(o, runs[k].lr), SP_OK);
            if (step == 0) first = l->data[0];
            last = l->data[0];
        }
        print_message("# %-8s%s loss %.4f -> %.4f\n", sp_optim_kind_name(runs[k].c.kind),
                      runs[k].c.momentum ? "+mom" : "    ", first, last);
        assert_true(last < 0.5 * first);
        sp_tape_free(t);
        sp_optim_free(o);
        sp_params_free(ps);
    }
}

int main(void)
{
    sp_set_threads(1); /* tiny models: threads only add barrier waits on a busy machine */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_by_hand),
        cmocka_unit_test(test_adam_bias_correction_by_hand),
        cmocka_unit_test(test_adamw_decoupled_decay_by_hand),
        cmocka_unit_test(test_lion_by_hand),      cmocka_unit_test(test_lion_matches_paper),
        cmocka_unit_test(test_rmsprop_by_hand),
        cmocka_unit_test(test_adagrad_by_hand),
        cmocka_unit_test(test_rules_match_double_reference),
        cmocka_unit_test(test_nonfinite_gradient_refused),
        cmocka_unit_test(test_bad_configs_rejected),
        cmocka_unit_test(test_clip_norm_edges),
        cmocka_unit_test(test_grad_norm),
        cmocka_unit_test(test_clip_value),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_loss_falls_with_each_optimizer),
    };
    return cmocka_run_group_tests_name("optim", tests, NULL, NULL);
}
