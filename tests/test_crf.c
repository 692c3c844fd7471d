/* SPDX-License-Identifier: MIT */
/* test_crf.c - the linear-chain CRF op (ops/crf.c), in the double build: sp_crf_nll against
 * central finite differences (emissions, transitions, start, end; padded steps and an empty
 * sequence in the batch), the checker failing on a gradient perturbed in each of the four inputs,
 * the loss against a brute-force sum over all K^L paths, Viterbi against brute-force argmax with
 * and without forbidden transitions, and errors on bad shapes and tags. */
#include "helpers.h"

#include <math.h>
#include <string.h>

enum { T = 4, B = 3, K = 4 };
static const int lens[B] = {4, 0, 3};
/* gold tags, row t*B + b; padded steps hold junk that must be ignored */
static const int gold[T * B] = {1, 99, 0, 2, -5, 3, 3, 7, 1, 0, 99, -1};

typedef struct {
    sp_params *ps;
    sp_tensor *e, *tr, *st, *en;
} crf_case;

static void make(crf_case *c, uint64_t seed)
{
    c->ps = sp_params_new();
    c->e = sp_param(c->ps, "emit", T * B, K);
    c->tr = sp_param(c->ps, "trans", K, K);
    c->st = sp_param(c->ps, "start", 1, K);
    c->en = sp_param(c->ps, "end", 1, K);
    assert_non_null(c->en);
    sp_rng r;
    sp_rng_seed(&r, seed);
    for (size_t k = 0; k < c->ps->numel; k++) c->ps->value[k] = (sp_real)(2 * sp_rng_uniform(&r) - 1);
}

static sp_tensor *build(sp_tape *t, void *ctx)
{
    crf_case *c = ctx;
    /* through a tanh so the emissions' gradient is also checked flowing into another op */
    return sp_crf_nll(t, sp_tanh(t, c->e), c->tr, c->st, c->en, gold, lens, T, B);
}

static void test_crf_nll_matches_finite_differences(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        crf_case c;
        make(&c, seed);
        assert_int_equal(sp_gradcheck(c.ps, build, &c, NULL), 0);
        sp_params_free(c.ps);
    }
}

/* A gradient off by 1e-4 relative in one component of each input must fail the check. The
 * components picked have nonzero gradients: emission row 0 (a real step), any transition, start
 * and end entries. */
static void test_checker_catches_a_wrong_crf_gradient(void **state)
{
    (void)state;
    crf_case c;
    make(&c, 7);
    int at[4] = {1, T * B * K + 5, T * B * K + K * K + 2, T * B * K + K * K + K + 3};
    for (int k = 0; k < 4; k++) {
        sp_gradcheck_opts o = {1e-6, 1e-9, 1e-6, at[k]};
        assert_true(sp_gradcheck(c.ps, build, &c, &o) >= 1);
    }
    sp_params_free(c.ps);
}

/* score of one path of sequence b (emissions ev = the values the op saw) */
static double path_score(const crf_case *c, const double *ev, int b, const int *y, int L)
{
    double s = c->st->data[y[0]] + ev[(0 * B + b) * K + y[0]];
    for (int t = 1; t < L; t++) s += c->tr->data[y[t - 1] * K + y[t]] + ev[(t * B + b) * K + y[t]];
    return s + c->en->data[y[L - 1]];
}

/* every path of length L in lexicographic order: returns 0 after the last */
static int next_path(int *y, int L)
{
    for (int t = L - 1; t >= 0; t--) {
        if (++y[t] < K) return 1;
        y[t] = 0;
    }
    return 0;
}

static int bio_ok(const unsigned char *allowed, const unsigned char *allowed_start, const int *y, int L)
{
    if (allowed_start && !allowed_start[y[0]]) return 0;
    for (int t = 1; t < L; t++)
        if (allowed && !allowed[y[t - 1] * K + y[t]]) return 0;
    return 1;
}

static void test_crf_nll_equals_brute_force(void **state)
{
    (void)state;
    crf_case c;
    make(&c, 11);
    sp_tape *t = sp_tape_new();
    sp_tensor *l = sp_crf_nll(t, c.e, c.tr, c.st, c.en, gold, lens, T, B);
    assert_non_null(l);
    double ev[T * B * K], want = 0;
    for (int i = 0; i < T * B * K; i++) ev[i] = c.e->data[i];
    int n = 0;
    for (int b = 0; b < B; b++) {
        int L = lens[b];
        if (!L) continue;
        n++;
        int y[T] = {0}, g[T];
        double z = 0;
        do z += exp(path_score(&c, ev, b, y, L));
        while (next_path(y, L));
        for (int s = 0; s < L; s++) g[s] = gold[s * B + b];
        want += log(z) - path_score(&c, ev, b, g, L);
    }
    sp_test_close(l->data[0], want / n, 1e-12, 1e-12, "crf nll vs the sum over all paths");
    sp_tape_free(t);
    sp_params_free(c.ps);
}

/* Viterbi = the argmax over all (allowed) paths, for random scores, with and without a mask; a
 * masked decode never contains a forbidden transition. */
static void test_viterbi_is_the_best_allowed_path(void **state)
{
    (void)state;
    /* tags 0 = O, 1 = B-X, 2 = I-X, 3 = B-Y: I-X only after B-X or I-X, never first */
    unsigned char allowed[K * K], astart[K] = {1, 1, 0, 1};
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) allowed[i * K + j] = j != 2 || i == 1 || i == 2;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        crf_case c;
        make(&c, 100 + seed);
        c.tr->data[0 * K + 2] = 5; /* make the forbidden O -> I-X attractive */
        c.st->data[2] = 5;
        double ev[T * B * K];
        for (int i = 0; i < T * B * K; i++) ev[i] = c.e->data[i];
        for (int masked = 0; masked < 2; masked++) {
            int path[T * B];
            double score[B];
            assert_int_equal(sp_crf_decode(c.e, c.tr, c.st, c.en, lens, T, B, masked ? allowed : NULL,
                                           masked ? astart : NULL, path, score),
                             SP_OK);
            for (int b = 0; b < B; b++) {
                int L = lens[b], y[T] = {0}, best[T], got[T];
                for (int s = 0; s < T; s++)
                    if (s >= L) assert_int_equal(path[s * B + b], -1);
                if (!L) continue;
                double bs = -INFINITY;
                do {
                    if (masked && !bio_ok(allowed, astart, y, L)) continue;
                    double s = path_score(&c, ev, b, y, L);
                    if (s > bs) bs = s, memcpy(best, y, sizeof best);
                } while (next_path(y, L));
                for (int s = 0; s < L; s++) got[s] = path[s * B + b];
                if (masked) assert_true(bio_ok(allowed, astart, got, L));
                sp_test_close(score[b], bs, 1e-12, 1e-12, "viterbi score vs brute force");
                assert_memory_equal(got, best, sizeof(int) * L);
            }
        }
        sp_params_free(c.ps);
    }
}

static void test_crf_errors_name_the_problem(void **state)
{
    (void)state;
    crf_case c;
    make(&c, 3);
    sp_tape *t = sp_tape_new();
    int bad[T * B];
    memcpy(bad, gold, sizeof bad);
    bad[2] = K; /* a real step of sequence 2 */
    assert_null(sp_crf_nll(t, c.e, c.tr, c.st, c.en, bad, lens, T, B));
    assert_non_null(strstr(sp_tape_errmsg(t), "crf_nll"));
    assert_non_null(strstr(sp_tape_errmsg(t), "sequence 2"));
    sp_tape_reset(t);
    assert_null(sp_crf_nll(t, c.e, c.st, c.st, c.en, gold, lens, T, B)); /* transitions [1 x K] */
    assert_non_null(strstr(sp_tape_errmsg(t), "transitions"));
    sp_tape_reset(t);
    assert_null(sp_crf_nll(t, c.e, c.tr, c.st, c.en, gold, lens, T + 1, B));
    assert_non_null(strstr(sp_tape_errmsg(t), "T*B"));
    int path[T * B];
    unsigned char none[K] = {0};
    assert_int_equal(sp_crf_decode(c.e, c.tr, c.st, c.en, lens, T, B, NULL, none, path, NULL), SP_ERR_ARG);
    assert_non_null(strstr(sp_last_error(), "no path"));
    int badlen[B] = {4, 5, 1};
    assert_int_equal(sp_crf_decode(c.e, c.tr, c.st, c.en, badlen, T, B, NULL, NULL, path, NULL), SP_ERR_SHAPE);
    assert_non_null(strstr(sp_last_error(), "lengths[1]"));
    sp_tape_free(t);
    sp_params_free(c.ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crf_nll_matches_finite_differences),
        cmocka_unit_test(test_checker_catches_a_wrong_crf_gradient),
        cmocka_unit_test(test_crf_nll_equals_brute_force),
        cmocka_unit_test(test_viterbi_is_the_best_allowed_path),
        cmocka_unit_test(test_crf_errors_name_the_problem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
