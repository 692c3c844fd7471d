/* SPDX-License-Identifier: MIT */
/* test_mutants.c - the tests that kill the backward-kernel mutants that once survived the suite
 * (scripts/mutants.txt, run by scripts/mutate.sh): a weight reached by two paths (a product and a penalty on the same tape), in
 * every path of the deferred weight gradient (single product, W or W^T; stacked steps, W or W^T,
 * more than 512 stacked rows so the stacking runs in several chunks); two backward passes without
 * zeroing add up; sp_seq_last value-tested (each row's own last step); a segment input that
 * other ops read too (its gradient adds up). Double build: central differences to ~1e-6. */
#include "helpers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int T, B, K, N, trans; /* steps of [B, K] x W (W [K, N], or [N, K] used transposed) */
    sp_tensor *W;
    sp_real *x; /* T*B*K inputs */
} prod_ctx;

/* loss = sum_t sum(tanh(x_t op(W))) + 0.3 sum(W * W): W reached by every step and by a penalty. */
static sp_tensor *build_prod(sp_tape *t, void *vc)
{
    prod_ctx *c = vc;
    sp_tensor *loss = NULL;
    for (int s = 0; s < c->T; s++) {
        sp_tensor *x = sp_const(t, c->B, c->K);
        memcpy(x->data, c->x + (size_t)s * c->B * c->K, sizeof(sp_real) * (size_t)c->B * c->K);
        sp_tensor *y = sp_sum(t, sp_tanh(t, sp_matmul_ex(t, x, 0, c->W, c->trans)));
        loss = loss ? sp_add(t, loss, y) : y;
    }
    sp_tensor *pen = sp_scale(t, sp_sum(t, sp_mul(t, c->W, c->W)), 0.3);
    return sp_add(t, pen, loss);
}

static void check_prod(int T, int B, int trans)
{
    sp_params *ps = sp_params_new();
    prod_ctx c = {T, B, 3, 4, trans, NULL, NULL};
    c.W = trans ? sp_param(ps, "W", c.N, c.K) : sp_param(ps, "W", c.K, c.N);
    sp_rng r;
    sp_rng_seed(&r, 11 + T + trans);
    sp_test_fill(c.W, &r, -0.8, 0.8);
    c.x = malloc(sizeof(sp_real) * (size_t)T * B * c.K);
    for (int i = 0; i < T * B * c.K; i++) c.x[i] = (sp_real)(2 * sp_rng_uniform(&r) - 1);
    assert_int_equal(sp_gradcheck(ps, build_prod, &c, NULL), 0);
    free(c.x);
    sp_params_free(ps);
}

static void test_two_paths_single(void **s) { (void)s; check_prod(1, 5, 0); }
static void test_two_paths_single_t(void **s) { (void)s; check_prod(1, 5, 1); }
static void test_two_paths_stacked(void **s) { (void)s; check_prod(140, 4, 0); }   /* 560 rows > 512 */
static void test_two_paths_stacked_t(void **s) { (void)s; check_prod(140, 4, 1); } /* x W^T, 560 rows */

/* A non-parameter right operand (an intermediate B = tanh(W)) and a concat input, each reached
 * by two paths: their backward must add to what the other path left, not overwrite it. */
typedef struct {
    sp_tensor *W, *V;
} inter_ctx;

static sp_tensor *build_inter(sp_tape *t, void *vc)
{
    inter_ctx *c = vc;
    sp_tensor *x = sp_const(t, 3, 4);
    for (int i = 0; i < 12; i++) x->data[i] = (sp_real)(0.1 * i - 0.5);
    sp_tensor *B = sp_tanh(t, c->W);                                  /* [4, 2], not a parameter */
    sp_tensor *y = sp_sum(t, sp_tanh(t, sp_matmul(t, x, B)));         /* first path to B */
    sp_tensor *yt = sp_sum(t, sp_tanh(t, sp_matmul_ex(t, x, 0, sp_tanh(t, c->V), 1))); /* B^T, non-param */
    sp_tensor *parts[2] = {B, sp_scale(t, B, 2)};
    sp_tensor *cat = sp_concat(t, parts, 2);                          /* second and third paths */
    sp_tensor *pen = sp_sum(t, sp_mul(t, cat, cat));
    sp_tensor *pen2 = sp_sum(t, sp_mul(t, B, B));                     /* a path after the concat */
    sp_tensor *crs[2] = {B, B};
    sp_tensor *pen3 = sp_sum(t, sp_tanh(t, sp_concat_rows(t, crs, 2)));
    return sp_add(t, sp_add(t, sp_add(t, y, yt), sp_add(t, pen, pen2)), pen3);
}

static void test_intermediate_two_paths(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    inter_ctx c = {sp_param(ps, "W", 4, 2), sp_param(ps, "V", 2, 4)};
    sp_rng r;
    sp_rng_seed(&r, 9);
    sp_test_fill(c.W, &r, -0.9, 0.9);
    sp_test_fill(c.V, &r, -0.9, 0.9);
    assert_int_equal(sp_gradcheck(ps, build_inter, &c, NULL), 0);
    sp_params_free(ps);
}

/* Two backward passes without zeroing the gradients in between: the second adds to the first. */
static void test_backward_twice_adds(void **state)
{
    (void)state;
    for (int T = 1; T <= 140; T += 139)
        for (int trans = 0; trans < 2; trans++) {
            sp_params *ps = sp_params_new();
            prod_ctx c = {T, 4, 3, 4, trans, NULL, NULL};
            c.W = trans ? sp_param(ps, "W", c.N, c.K) : sp_param(ps, "W", c.K, c.N);
            sp_rng r;
            sp_rng_seed(&r, 5);
            sp_test_fill(c.W, &r, -0.8, 0.8);
            c.x = malloc(sizeof(sp_real) * (size_t)T * c.B * c.K);
            for (int i = 0; i < T * c.B * c.K; i++) c.x[i] = (sp_real)(2 * sp_rng_uniform(&r) - 1);
            sp_tape *t = sp_tape_new();
            sp_params_zero_grad(ps);
            assert_int_equal(sp_backward(t, build_prod(t, &c)), SP_OK);
            sp_real once[12];
            memcpy(once, c.W->grad, sizeof once);
            sp_tape_reset(t);
            assert_int_equal(sp_backward(t, build_prod(t, &c)), SP_OK);
            for (int i = 0; i < 12; i++) sp_test_close(c.W->grad[i], 2 * once[i], 1e-12, 1e-12, "second backward adds");
            sp_tape_free(t);
            free(c.x);
            sp_params_free(ps);
        }
}

/* sp_seq_last picks row b of step len[b]-1 (not T-1), zeros for length 0; its gradient lands there. */
static void test_seq_last_values(void **state)
{
    (void)state;
    const int T = 5, B = 4, C = 3, len[4] = {5, 2, 0, 1};
    sp_tape *t = sp_tape_new();
    sp_tensor *seq = sp_leaf(t, T * B, C);
    for (int i = 0; i < T * B * C; i++) seq->data[i] = (sp_real)(i + 1);
    sp_tensor *last = sp_seq_last(t, seq, T, B, len);
    assert_non_null(last);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < C; j++) {
            double want = len[b] ? seq->data[((size_t)(len[b] - 1) * B + b) * C + j] : 0;
            sp_test_close(last->data[b * C + j], want, 0, 0, "sp_seq_last value");
        }
    sp_tensor *w = sp_const(t, B, C);
    for (int i = 0; i < B * C; i++) w->data[i] = (sp_real)(i + 1);
    assert_int_equal(sp_backward(t, sp_sum(t, sp_mul(t, last, w))), SP_OK);
    for (int s = 0; s < T; s++)
        for (int b = 0; b < B; b++)
            for (int j = 0; j < C; j++) {
                double want = len[b] && s == len[b] - 1 ? w->data[b * C + j] : 0;
                sp_test_close(seq->grad[((size_t)s * B + b) * C + j], want, 0, 0, "sp_seq_last gradient");
            }
    sp_tape_free(t);
}

/* A segment input with a second consumer on the main tape, before and after the segment: h0 =
 * tanh(P) feeds the segment (h1 = tanh(h0 W), out of the segment) and a penalty recorded after
 * it (whose gradient reaches h0 first in the backward walk) and one before; the segment's
 * backward must add its share of dL/dh0 to theirs, not overwrite it. */
typedef struct {
    sp_tensor *P, *W;
    sp_tape *scratch;
} seg_ctx;

static sp_status seg_step(sp_tape *t, void *user, sp_tensor *const *in, sp_tensor **out)
{
    seg_ctx *c = user;
    out[0] = sp_tanh(t, sp_matmul(t, in[0], c->W));
    return sp_tape_status(t);
}

static sp_tensor *build_seg(sp_tape *t, void *vc)
{
    seg_ctx *c = vc;
    sp_tensor *h0 = sp_tanh(t, c->P), *h1;
    sp_tensor *before = sp_sum(t, sp_mul(t, h0, h0));
    if (sp_segment(t, c->scratch, seg_step, c, NULL, 1, &h0, 1, &h1) != SP_OK) return NULL;
    sp_tensor *after = sp_scale(t, sp_sum(t, sp_tanh(t, h0)), 0.7);
    return sp_add(t, sp_add(t, sp_sum(t, sp_mul(t, h1, h1)), after), before);
}

static void test_segment_input_two_consumers(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    seg_ctx c = {sp_param(ps, "P", 3, 4), sp_param(ps, "W", 4, 4), sp_tape_new()};
    sp_rng r;
    sp_rng_seed(&r, 23);
    sp_test_fill(c.P, &r, -1, 1);
    sp_test_fill(c.W, &r, -0.8, 0.8);
    assert_int_equal(sp_gradcheck(ps, build_seg, &c, NULL), 0);
    sp_tape_free(c.scratch);
    sp_params_free(ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_paths_single),   cmocka_unit_test(test_two_paths_single_t),
        cmocka_unit_test(test_two_paths_stacked),  cmocka_unit_test(test_two_paths_stacked_t),
        cmocka_unit_test(test_backward_twice_adds), cmocka_unit_test(test_seq_last_values),
        cmocka_unit_test(test_intermediate_two_paths), cmocka_unit_test(test_segment_input_two_consumers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
