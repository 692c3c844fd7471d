/* SPDX-License-Identifier: MIT */
/* test_attn_pad.c - padding never reaches an attention result, in the float build (whose fast exp
 * clamps at -87, so a softmax alone leaves 1.65e-38 on a masked score). B = 4 sequences of
 * lengths 3, 5, 1, 2 over S = 5 encoder steps, the padded key and value rows filled with junk:
 *   - the attention weights of padded steps are exactly 0;
 *   - with Inf, -Inf and NaN in the padded rows (and with large finite junk) the context and
 *     every gradient (query, the real key and value rows, the additive scorer's v) equal those
 *     of each sequence run alone over its real steps, the padded rows get gradient 0, and
 *     everything is finite: dot and additive scores as ops, and the layer (dot, general). */
#include "helpers.h"

#include <math.h>
#include <string.h>

enum { B = 4, S = 5, D = 3 };
static const int len[B] = {3, 5, 1, 2};

/* What one run gives: the context [B', D] and the gradients of q, keys, values and v. */
typedef struct {
    sp_real c[B * D], gq[B * D], gk[S * B * D], gval[S * B * D], gv[D], w[B * S];
} result;

/* Inputs of the padded run: real rows uniform in [-1, 1), padded rows junk (junk 0: large finite,
 * 1: Inf, -Inf and NaN in turn). */
typedef struct {
    sp_real q[B * D], k[S * B * D], val[S * B * D], v[D], wl[B * D]; /* wl: the loss's weights */
} inputs;

static void make_inputs(inputs *in, int junk)
{
    sp_rng r;
    sp_rng_seed(&r, 5);
    const sp_real bad[3] = {INFINITY, -INFINITY, NAN};
    for (int i = 0; i < B * D; i++) in->q[i] = (sp_real)(2 * sp_rng_uniform(&r) - 1);
    for (int i = 0; i < B * D; i++) in->wl[i] = (sp_real)(2 * sp_rng_uniform(&r) - 1);
    for (int d = 0; d < D; d++) in->v[d] = (sp_real)(2 * sp_rng_uniform(&r) - 1);
    for (int s = 0; s < S; s++)
        for (int b = 0; b < B; b++)
            for (int d = 0; d < D; d++) {
                size_t i = ((size_t)s * B + b) * D + d;
                int pad = s >= len[b];
                in->k[i] = pad ? (junk ? bad[(s + b + d) % 3] : (sp_real)(300 + 7 * d)) : (sp_real)(2 * sp_rng_uniform(&r) - 1);
                in->val[i] = pad ? (junk ? bad[(s + 2 * b + d) % 3] : (sp_real)(-500 + d)) : (sp_real)(2 * sp_rng_uniform(&r) - 1);
            }
}

static sp_tensor *leaf_from(sp_tape *t, int rows, const sp_real *x)
{
    sp_tensor *l = sp_leaf(t, rows, D);
    if (l) memcpy(l->data, x, sizeof(sp_real) * (size_t)rows * D);
    return l;
}

/* Scores (dot or additive), sp_attn_mask (if lengths), sp_softmax, sp_attn_context over Bn
 * sequences of Sn steps; loss sum(c * wl); backward. */
static void run_ops(int additive, int Bn, int Sn, const int *lengths, const sp_real *q, const sp_real *k,
                    const sp_real *val, const sp_real *v, const sp_real *wl, result *res)
{
    sp_tape *t = sp_tape_new();
    sp_tensor *tq = leaf_from(t, Bn, q), *tk = leaf_from(t, Sn * Bn, k), *tval = leaf_from(t, Sn * Bn, val);
    sp_tensor *tv = sp_leaf(t, 1, D), *twl = sp_const(t, Bn, D);
    memcpy(tv->data, v, sizeof(sp_real) * D);
    memcpy(twl->data, wl, sizeof(sp_real) * (size_t)Bn * D);
    sp_tensor *e = additive ? sp_attn_additive(t, tq, tk, tv, Sn) : sp_attn_dot(t, tq, tk, Sn);
    sp_tensor *w = sp_softmax(t, sp_attn_mask(t, e, lengths));
    sp_tensor *c = sp_attn_context(t, w, tval, Sn);
    assert_int_equal(sp_backward(t, sp_sum(t, sp_mul(t, c, twl))), SP_OK);
    memcpy(res->c, c->data, sizeof(sp_real) * (size_t)Bn * D);
    memcpy(res->w, w->data, sizeof(sp_real) * (size_t)Bn * Sn);
    memcpy(res->gq, tq->grad, sizeof(sp_real) * (size_t)Bn * D);
    memcpy(res->gk, tk->grad, sizeof(sp_real) * (size_t)Sn * Bn * D);
    memcpy(res->gval, tval->grad, sizeof(sp_real) * (size_t)Sn * Bn * D);
    memcpy(res->gv, tv->grad, sizeof(sp_real) * D);
    sp_tape_free(t);
}

/* Sequence b alone over its real steps (B' = 1, S' = len[b]), from the padded run's inputs. */
static void run_alone(int additive, const inputs *in, int b, result *res)
{
    sp_real k[S * D], val[S * D];
    for (int s = 0; s < len[b]; s++) {
        memcpy(k + s * D, in->k + ((size_t)s * B + b) * D, sizeof(sp_real) * D);
        memcpy(val + s * D, in->val + ((size_t)s * B + b) * D, sizeof(sp_real) * D);
    }
    run_ops(additive, 1, len[b], NULL, in->q + b * D, k, val, in->v, in->wl + b * D, res);
}

static void check_finite(const sp_real *x, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i])) fail_msg("%s[%d] = %g is not finite", what, i, (double)x[i]);
}

static void test_padding_never_read(void **state)
{
    (void)state;
    for (int junk = 0; junk < 2; junk++)
        for (int additive = 0; additive < 2; additive++) {
            inputs in;
            make_inputs(&in, junk);
            result pad, one;
            memset(&pad, 0, sizeof pad);
            run_ops(additive, B, S, len, in.q, in.k, in.val, in.v, in.wl, &pad);
            char what[96];
            snprintf(what, sizeof what, "%s scores, %s padding", additive ? "additive" : "dot",
                     junk ? "Inf/NaN" : "finite junk");
            for (int b = 0; b < B; b++)
                for (int s = len[b]; s < S; s++)
                    if (pad.w[b * S + s] != 0) fail_msg("%s: weight of padded step %d of row %d is %g, not 0", what, s, b,
                                                        (double)pad.w[b * S + s]);
            check_finite(pad.c, B * D, "context");
            check_finite(pad.gq, B * D, "query gradient");
            check_finite(pad.gk, S * B * D, "keys gradient");
            check_finite(pad.gval, S * B * D, "values gradient");
            check_finite(pad.gv, D, "v gradient");
            sp_real gv[D] = {0};
            for (int b = 0; b < B; b++) {
                run_alone(additive, &in, b, &one);
                for (int d = 0; d < D; d++) {
                    sp_test_close(pad.c[b * D + d], one.c[d], 1e-5, 1e-6, what);
                    sp_test_close(pad.gq[b * D + d], one.gq[d], 1e-5, 1e-6, what);
                    gv[d] += one.gv[d];
                }
                for (int s = 0; s < S; s++)
                    for (int d = 0; d < D; d++) {
                        size_t i = ((size_t)s * B + b) * D + d;
                        int real = s < len[b];
                        sp_test_close(pad.gk[i], real ? one.gk[s * D + d] : 0, 1e-5, real ? 1e-6 : 0, what);
                        sp_test_close(pad.gval[i], real ? one.gval[s * D + d] : 0, 1e-5, real ? 1e-6 : 0, what);
                    }
            }
            for (int d = 0; d < D; d++) sp_test_close(pad.gv[d], gv[d], 1e-5, 1e-6, what);
        }
}

/* The layer (sp_attention_step): the encoder output is both keys and values; Inf/NaN in its
 * padded rows leave the context, the gradients of the query, the real encoder rows and the
 * layer's weight as each sequence alone gives them. */
static void test_layer_padding_never_read(void **state)
{
    (void)state;
    for (int kind = SP_ATTN_DOT; kind <= SP_ATTN_GENERAL; kind++) {
        sp_params *ps = sp_params_new();
        sp_rng r;
        sp_rng_seed(&r, 9);
        sp_attention a;
        assert_int_equal(sp_attention_init(&a, ps, "attn", (sp_attn_kind)kind, D, D, D, &r), SP_OK);
        inputs in;
        make_inputs(&in, 1);
        /* padded: all B sequences at once */
        sp_params_zero_grad(ps);
        sp_tape *t = sp_tape_new();
        sp_tensor *q = leaf_from(t, B, in.q), *enc = leaf_from(t, S * B, in.val), *wl = sp_const(t, B, D);
        memcpy(wl->data, in.wl, sizeof in.wl);
        sp_tensor *c = sp_attention_step(t, &a, q, sp_attention_keys(t, &a, enc), enc, S, len, NULL);
        assert_non_null(c);
        assert_int_equal(sp_backward(t, sp_sum(t, sp_mul(t, c, wl))), SP_OK);
        check_finite(c->data, B * D, "layer context");
        check_finite(enc->grad, S * B * D, "layer encoder gradient");
        check_finite(ps->grad, (int)ps->numel, "layer weight gradient");
        sp_real wgrad[64];
        assert_true(ps->numel <= 64);
        if (ps->numel) memcpy(wgrad, ps->grad, sizeof(sp_real) * ps->numel); /* the dot kind has no weight */
        /* each sequence alone: the weight's gradient adds up over them */
        sp_params_zero_grad(ps);
        for (int b = 0; b < B; b++) {
            sp_tape *t1 = sp_tape_new();
            sp_tensor *q1 = leaf_from(t1, 1, in.q + b * D), *enc1 = sp_leaf(t1, len[b], D), *wl1 = sp_const(t1, 1, D);
            for (int s = 0; s < len[b]; s++)
                memcpy(enc1->data + s * D, in.val + ((size_t)s * B + b) * D, sizeof(sp_real) * D);
            memcpy(wl1->data, in.wl + b * D, sizeof(sp_real) * D);
            sp_tensor *c1 = sp_attention_step(t1, &a, q1, sp_attention_keys(t1, &a, enc1), enc1, len[b], NULL, NULL);
            assert_int_equal(sp_backward(t1, sp_sum(t1, sp_mul(t1, c1, wl1))), SP_OK);
            for (int d = 0; d < D; d++) {
                sp_test_close(c->data[b * D + d], c1->data[d], 1e-5, 1e-6, "layer context");
                sp_test_close(q->grad[b * D + d], q1->grad[d], 1e-5, 1e-6, "layer query gradient");
            }
            for (int s = 0; s < S; s++)
                for (int d = 0; d < D; d++)
                    sp_test_close(enc->grad[((size_t)s * B + b) * D + d], s < len[b] ? enc1->grad[s * D + d] : 0, 1e-5,
                                  s < len[b] ? 1e-6 : 0, "layer encoder gradient");
            sp_tape_free(t1);
        }
        for (size_t i = 0; i < ps->numel; i++) sp_test_close(wgrad[i], ps->grad[i], 1e-5, 1e-6, "layer weight gradient");
        sp_tape_free(t);
        sp_params_free(ps);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_padding_never_read),
        cmocka_unit_test(test_layer_padding_never_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
