/* SPDX-License-Identifier: MIT */
/* test_ctc.c - CTC, double build. The loss op (ops/ctc.c): its value against the sum over every
 * frame-level path (all C^T of them) that collapses to the labels, a long row against the closed
 * form, rows of length 0, rows without an alignment with and without zero_infinity, the argument
 * errors, and the same numbers on 1 and 2 threads (finite differences are in test_ops_grad.c,
 * PyTorch in test_ctc_torch.c). The decoders (ops/ctc_decode.c) on hand-made score matrices whose
 * best labelling is known: greedy, a beam search that beats it, a wide beam against the
 * enumeration of every labelling, a language model that changes the answer; and the streaming
 * language model (layers/ctc_lm.c) against a direct stream. */
#include "helpers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Every labelling of T <= 8 frames over C classes (softmax of the rows x[t*B + b]) with its
 * probability, the sum over every path that collapses to it (repeats merged, blanks dropped), by
 * enumerating all C^T paths. A labelling is the key sum of (label + 1) (C + 1)^i, most recent
 * label in the lowest digit; returns how many there are in keys[] and p[]. */
enum { MAX_LABELLINGS = 4096 };
static long keys[MAX_LABELLINGS];
static double lab_p[MAX_LABELLINGS];

static int labellings(const sp_tensor *x, int T, int B, int b, int blank)
{
    int C = x->cols, n = 0, path[8];
    long total = 1;
    for (int s = 0; s < T; s++) total *= C;
    for (long code = 0; code < total; code++) {
        long c = code, key = 0;
        double q = 1;
        for (int s = 0; s < T; s++, c /= C) {
            path[s] = (int)(c % C);
            const sp_real *row = sp_at(x, s * B + b, 0);
            double z = 0;
            for (int k = 0; k < C; k++) z += exp((double)row[k]);
            q *= exp((double)row[path[s]]) / z;
            if (path[s] != blank && (s == 0 || path[s] != path[s - 1])) key = key * (C + 1) + path[s] + 1;
        }
        int i = 0;
        while (i < n && keys[i] != key) i++;
        if (i == n) keys[n] = key, lab_p[n++] = 0;
        lab_p[i] += q;
    }
    return n;
}

/* -log P(lab[0..L) | frames of row b) by enumeration. */
static double brute_force(const sp_tensor *x, int T, int B, int b, const int *lab, int L, int blank)
{
    long key = 0;
    for (int i = 0; i < L; i++) key = key * (x->cols + 1) + lab[i] + 1;
    int n = labellings(x, T, B, b, blank);
    for (int i = 0; i < n; i++)
        if (keys[i] == key) return -log(lab_p[i]);
    return INFINITY;
}

/* A parameter of rows x cols logits, uniform in [-scale, scale) from seed. */
static sp_tensor *random_logits(sp_params *ps, int rows, int cols, uint64_t seed, double scale)
{
    sp_tensor *x = sp_param(ps, "x", rows, cols);
    sp_rng r;
    sp_rng_seed(&r, seed);
    sp_test_fill(x, &r, -scale, scale);
    return x;
}

static void test_ctc_loss_is_the_sum_over_paths(void **state)
{
    (void)state;
    enum { T = 5, B = 5, C = 3 };
    /* repeats, a label sequence that needs every frame (1 1 2: 4 frames, 1 2 1 2 1: 5), none, a
     * row shorter than T */
    const int in_len[B] = {5, 5, 5, 3, 5}, lab_len[B] = {2, 3, 0, 1, 5};
    const int labels[] = {1, 1, 1, 1, 2, 2, 1, 2, 1, 2, 1};
    for (int blank = 0; blank < 2; blank++) {
        sp_tape *t = sp_tape_new();
        sp_tensor *x = sp_test_const(t, T * B, C, 11 + blank);
        for (size_t i = 0; i < sp_numel(x); i++) x->data[i] *= 2;
        int lab[11];
        for (int i = 0; i < 11; i++) lab[i] = blank == 0 ? labels[i] : labels[i] == 1 ? 0 : 2; /* blank 1 */
        sp_ctc_opts o = {.blank = blank, .reduction = SP_CTC_NONE};
        sp_tensor *l = sp_ctc_loss(t, x, T, B, in_len, lab, lab_len, &o);
        assert_non_null(l);
        assert_int_equal(l->rows, B);
        int off = 0;
        for (int b = 0; b < B; b++) {
            double want = brute_force(x, in_len[b], B, b, lab + off, lab_len[b], blank);
            sp_test_close(l->data[b], want, 1e-12, 0, "ctc loss vs the sum over all paths");
            off += lab_len[b];
        }
        sp_tape_free(t);
    }
}

/* Two classes of equal score, one label over T frames: T (T + 1) / 2 alignments (blanks, a run
 * of the label, blanks), each of probability 2^-T. No underflow at T = 3000. */
static void test_ctc_loss_long_row_closed_form(void **state)
{
    (void)state;
    enum { T = 3000 };
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_leaf(t, T, 2); /* zeros */
    sp_tensor *l = sp_ctc_loss(t, x, T, 1, NULL, (int[1]){1}, (int[1]){1}, NULL);
    assert_non_null(l);
    sp_test_close(l->data[0], T * log(2.0) - log((double)T * (T + 1) / 2), 1e-12, 0, "closed form");
    assert_int_equal(sp_backward(t, l), SP_OK);
    /* frame 0: P(label) = P(the run starts at 0) = T / (T (T + 1) / 2) = 2 / (T + 1); the gradient
     * of the label's logit is softmax - posterior = 1/2 - 2 / (T + 1) */
    sp_test_close(x->grad[1], 0.5 - 2.0 / (T + 1), 1e-9, 0, "gradient at frame 0");
    for (int i = 0; i < 2 * T; i++) assert_true(isfinite(x->grad[i]));
    sp_tape_free(t);
}

/* A row of length 0 and no labels costs 0 and gets no gradient, without NaN in any reduction; with
 * labels it has no alignment: an error, or 0 with zero_infinity. */
static void test_ctc_loss_empty_rows(void **state)
{
    (void)state;
    enum { T = 3, B = 3, C = 4 };
    for (int red = 0; red < 3; red++) {
        sp_params *ps = sp_params_new();
        sp_tensor *x = random_logits(ps, T * B, C, 4, 1);
        sp_tape *t = sp_tape_new();
        sp_ctc_opts o = {.reduction = (sp_ctc_reduction)red};
        /* row 0 normal, row 1 length 0 and no labels, row 2 three frames and no labels */
        sp_tensor *l = sp_ctc_loss(t, x, T, B, (int[B]){3, 0, 3}, (int[2]){2, 3}, (int[B]){2, 0, 0}, &o);
        assert_non_null(l);
        if (red == SP_CTC_NONE) {
            assert_true(l->data[0] > 0);
            assert_true(l->data[1] == 0);
            assert_true(l->data[2] > 0); /* all blanks: -sum log p(blank) */
        }
        assert_int_equal(sp_backward(t, red == SP_CTC_NONE ? sp_sum(t, l) : l), SP_OK);
        for (int i = 0; i < T * B * C; i++) assert_true(isfinite(x->grad[i]));
        for (int s = 0; s < T; s++)
            for (int k = 0; k < C; k++) assert_true(x->grad[(s * B + 1) * C + k] == 0);
        sp_tape_free(t);
        t = sp_tape_new();
        sp_params_zero_grad(ps);
        assert_null(sp_ctc_loss(t, x, T, B, (int[B]){3, 0, 3}, (int[3]){2, 3, 1}, (int[B]){2, 1, 0}, &o));
        assert_non_null(strstr(sp_tape_errmsg(t), "ctc_loss"));
        assert_non_null(strstr(sp_tape_errmsg(t), "row 1 has 1 labels"));
        sp_tape_free(t);
        t = sp_tape_new();
        o.zero_infinity = 1;
        l = sp_ctc_loss(t, x, T, B, (int[B]){3, 0, 3}, (int[3]){2, 3, 1}, (int[B]){2, 1, 0}, &o);
        assert_non_null(l);
        if (red == SP_CTC_NONE) assert_true(l->data[1] == 0);
        assert_int_equal(sp_backward(t, red == SP_CTC_NONE ? sp_sum(t, l) : l), SP_OK);
        for (int i = 0; i < T * B * C; i++) assert_true(isfinite(x->grad[i]));
        sp_tape_free(t);
        sp_params_free(ps);
    }
}

/* No alignment because of repeats (1 1 needs 3 frames): zero_infinity gives 0 for that row and
 * leaves its frames' gradient 0; the mean still divides by B, as PyTorch. */
static void test_ctc_loss_zero_infinity(void **state)
{
    (void)state;
    enum { T = 2, B = 2, C = 3 };
    sp_params *ps = sp_params_new();
    sp_tensor *x = random_logits(ps, T * B, C, 5, 1);
    sp_tape *t = sp_tape_new();
    assert_null(sp_ctc_loss(t, x, T, B, NULL, (int[4]){1, 2, 1, 1}, (int[2]){2, 2}, NULL));
    assert_non_null(strstr(sp_tape_errmsg(t), "row 1 has 2 labels that need 3 frames"));
    sp_tape_reset(t);
    sp_ctc_opts o = {.zero_infinity = 1, .reduction = SP_CTC_NONE};
    sp_tensor *l = sp_ctc_loss(t, x, T, B, NULL, (int[4]){1, 2, 1, 1}, (int[2]){2, 2}, &o);
    assert_non_null(l);
    double l0 = l->data[0];
    assert_true(l0 > 0 && l->data[1] == 0);
    sp_tape_reset(t);
    o.reduction = SP_CTC_MEAN;
    l = sp_ctc_loss(t, x, T, B, NULL, (int[4]){1, 2, 1, 1}, (int[2]){2, 2}, &o);
    sp_test_close(l->data[0], l0 / 2 / 2, 1e-14, 0, "mean: row loss / labels / B");
    assert_int_equal(sp_backward(t, l), SP_OK);
    for (int s = 0; s < T; s++)
        for (int k = 0; k < C; k++) {
            assert_true(x->grad[(s * B + 1) * C + k] == 0);
            assert_true(x->grad[(s * B + 0) * C + k] != 0);
        }
    sp_tape_free(t);
    sp_params_free(ps);
}

static void expect_error(sp_tensor *(*make)(sp_tape *t), const char *what)
{
    sp_tape *t = sp_tape_new();
    assert_null(make(t));
    const char *m = sp_tape_errmsg(t);
    if (!strstr(m, "ctc_loss") || !strstr(m, what)) print_error("# message \"%s\" lacks \"%s\"\n", m, what);
    assert_non_null(strstr(m, "ctc_loss"));
    assert_non_null(strstr(m, what));
    sp_tape_free(t);
}
#define X sp_const(t, 6, 4)
static sp_tensor *bad_rows(sp_tape *t) { return sp_ctc_loss(t, X, 4, 2, NULL, (int[1]){1}, (int[2]){1, 0}, NULL); }
static sp_tensor *bad_blank(sp_tape *t)
{
    return sp_ctc_loss(t, X, 3, 2, NULL, (int[1]){1}, (int[2]){1, 0}, &(sp_ctc_opts){.blank = 4});
}
static sp_tensor *label_is_blank(sp_tape *t)
{
    return sp_ctc_loss(t, X, 3, 2, NULL, (int[2]){1, 2}, (int[2]){1, 1}, &(sp_ctc_opts){.blank = 2});
}
static sp_tensor *label_too_big(sp_tape *t) { return sp_ctc_loss(t, X, 3, 2, NULL, (int[1]){4}, (int[2]){0, 1}, NULL); }
static sp_tensor *bad_length(sp_tape *t) { return sp_ctc_loss(t, X, 3, 2, (int[2]){3, 4}, NULL, (int[2]){0, 0}, NULL); }
static sp_tensor *no_lengths(sp_tape *t) { return sp_ctc_loss(t, X, 3, 2, NULL, NULL, NULL, NULL); }
static sp_tensor *bad_reduction(sp_tape *t)
{
    return sp_ctc_loss(t, X, 3, 2, NULL, NULL, (int[2]){0, 0}, &(sp_ctc_opts){.reduction = (sp_ctc_reduction)7});
}
static sp_tensor *over_stride(sp_tape *t)
{
    return sp_ctc_loss(t, X, 3, 2, NULL, (int[4]){1, 1, 1, 1}, (int[2]){1, 3}, &(sp_ctc_opts){.label_stride = 2});
}
#undef X

static void test_ctc_loss_errors(void **state)
{
    (void)state;
    expect_error(bad_rows, "are not T*B = 4*2 rows");
    expect_error(bad_blank, "blank 4 is not one of the 4 classes");
    expect_error(label_is_blank, "label 0 of row 1 is 2");
    expect_error(label_too_big, "label 0 of row 1 is 4");
    expect_error(bad_length, "input_lengths[1] = 4");
    expect_error(no_lengths, "label lengths are NULL");
    expect_error(bad_reduction, "reduction 7");
    expect_error(over_stride, "label_lengths[1] = 3 is over label_stride");
    /* no labels at all: labels may be NULL, padded or not */
    sp_tape *t = sp_tape_new();
    assert_non_null(sp_ctc_loss(t, sp_const(t, 6, 4), 3, 2, NULL, NULL, (int[2]){0, 0}, &(sp_ctc_opts){.label_stride = 4}));
    assert_non_null(sp_ctc_loss(t, sp_const(t, 6, 4), 3, 2, NULL, NULL, (int[2]){0, 0}, NULL));
    sp_tape_free(t);
}

/* Threads split the batch (B = 9 rows of up to 120 frames, above the threshold); every row is one
 * thread's and the reduction runs in row order, so 1 and 2 threads give the same bits. */
static void test_ctc_loss_threads(void **state)
{
    (void)state;
    enum { T = 120, B = 9, C = 20, L = 30 };
    sp_params *ps = sp_params_new();
    sp_tensor *x = random_logits(ps, T * B, C, 6, 2);
    sp_rng r;
    sp_rng_seed(&r, 7);
    int in_len[B], lab_len[B], lab[B * L];
    for (int b = 0; b < B; b++) {
        in_len[b] = T - 11 * b;
        lab_len[b] = L - 3 * b;
        for (int i = 0; i < L; i++) lab[b * L + i] = 1 + sp_rng_below(&r, C - 1);
    }
    double loss[2], *grad[2];
    for (int k = 0; k < 2; k++) {
        sp_set_threads(k + 1);
        sp_params_zero_grad(ps);
        sp_tape *t = sp_tape_new();
        sp_tensor *l = sp_ctc_loss(t, x, T, B, in_len, lab, lab_len, &(sp_ctc_opts){.label_stride = L});
        assert_non_null(l);
        loss[k] = l->data[0];
        assert_int_equal(sp_backward(t, l), SP_OK);
        grad[k] = malloc(sizeof(double) * T * B * C);
        for (int i = 0; i < T * B * C; i++) grad[k][i] = x->grad[i];
        sp_tape_free(t);
    }
    sp_set_threads(2);
    assert_true(loss[0] == loss[1]);
    assert_memory_equal(grad[0], grad[1], sizeof(double) * T * B * C);
    free(grad[0]);
    free(grad[1]);
    sp_params_free(ps);
}

/* ------------------------------------------------------------------ decoding */

/* A [T, C] matrix of probabilities (B = 1) as log-probabilities on a tape. */
static sp_tensor *probs(sp_tape *t, int T, int C, const double *p)
{
    sp_tensor *x = sp_const(t, T, C);
    for (int i = 0; i < T * C; i++) x->data[i] = (sp_real)log(p[i]);
    return x;
}

static void expect_labels(const int *out, int n, const int *want, int n_want, const char *what)
{
    int same = n == n_want;
    for (int i = 0; same && i < n; i++) same = out[i] == want[i];
    if (!same) {
        print_error("# %s: got", what);
        for (int i = 0; i < n; i++) print_error(" %d", out[i]);
        print_error(", want");
        for (int i = 0; i < n_want; i++) print_error(" %d", want[i]);
        print_error("\n");
    }
    assert_true(same);
}

/* Best path 1 1 0 1 2 2 0 0 with blank 0: "1 1 2" (the blank splits the repeat); row 1 stops after
 * 3 frames: "1"; the score is the best path's log-probability. */
static void test_ctc_greedy(void **state)
{
    (void)state;
    enum { T = 8, B = 2, C = 3 };
    static const int best[2][T] = {{1, 1, 0, 1, 2, 2, 0, 0}, {0, 1, 1, 2, 2, 2, 2, 2}};
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_const(t, T * B, C);
    double want_score[B] = {0, 0};
    for (int s = 0; s < T; s++)
        for (int b = 0; b < B; b++)
            for (int k = 0; k < C; k++) {
                double p = k == best[b][s] ? 0.5 + 0.05 * s : (0.5 - 0.05 * s) / 2;
                x->data[(s * B + b) * C + k] = (sp_real)log(p) + 3; /* logits: any shift */
                if (k == best[b][s] && (b == 0 || s < 3)) want_score[b] += log(p);
            }
    int out[B * T], len[B];
    double score[B];
    assert_int_equal(sp_ctc_greedy(x, T, B, (int[B]){T, 3}, 0, out, len, score), SP_OK);
    expect_labels(out, len[0], (int[3]){1, 1, 2}, 3, "greedy row 0");
    expect_labels(out + T, len[1], (int[1]){1}, 1, "greedy row 1");
    sp_test_close(score[0], want_score[0], 1e-12, 0, "greedy score row 0");
    sp_test_close(score[1], want_score[1], 1e-12, 0, "greedy score row 1");
    /* a row of length 0 decodes to nothing */
    assert_int_equal(sp_ctc_greedy(x, T, B, (int[B]){0, 0}, 0, out, len, NULL), SP_OK);
    assert_true(len[0] == 0 && len[1] == 0);
    /* errors name the decoder */
    assert_int_equal(sp_ctc_greedy(x, T, B, NULL, 3, out, len, NULL), SP_ERR_ARG);
    assert_non_null(strstr(sp_last_error(), "ctc_greedy: blank 3"));
    assert_int_equal(sp_ctc_greedy(x, 5, B, NULL, 0, out, len, NULL), SP_ERR_SHAPE);
    assert_int_equal(sp_ctc_greedy(x, T, B, (int[B]){9, 0}, 0, out, len, NULL), SP_ERR_ARG);
    assert_non_null(strstr(sp_last_error(), "input_lengths[0] = 9"));
    sp_tape_free(t);
}

/* Two frames of P(blank) = 0.6, P(1) = 0.4: the best path is blank blank (0.36), but "1" has
 * three paths (1 1, 1 -, - 1: 0.64). Greedy says "", the beam search "1"; an insertion bonus of -1
 * per label tips it back to "". */
static void test_ctc_beam_beats_greedy(void **state)
{
    (void)state;
    sp_tape *t = sp_tape_new();
    sp_tensor *x = probs(t, 2, 2, (double[4]){0.6, 0.4, 0.6, 0.4});
    int out[2], len[1];
    double score[1];
    assert_int_equal(sp_ctc_greedy(x, 2, 1, NULL, 0, out, len, score), SP_OK);
    expect_labels(out, len[0], NULL, 0, "greedy");
    sp_test_close(score[0], log(0.36), 1e-12, 0, "greedy score");
    assert_int_equal(sp_ctc_beam_search(x, 2, 1, NULL, NULL, out, len, score), SP_OK);
    expect_labels(out, len[0], (int[1]){1}, 1, "beam");
    sp_test_close(score[0], log(0.64), 1e-12, 0, "beam score");
    sp_ctc_beam_opts o = {.beam = 4, .insertion_bonus = -1};
    assert_int_equal(sp_ctc_beam_search(x, 2, 1, NULL, &o, out, len, score), SP_OK);
    expect_labels(out, len[0], NULL, 0, "beam with a bonus of -1");
    sp_test_close(score[0], log(0.36), 1e-12, 0, "beam score with a bonus of -1");
    sp_tape_free(t);
}

/* The most likely labelling of row b by enumeration, and its log-probability. */
static double best_labelling(const sp_tensor *x, int T, int B, int b, int blank, int *best, int *best_len)
{
    int C = x->cols, n = labellings(x, T, B, b, blank), w = 0;
    for (int i = 1; i < n; i++) w = lab_p[i] > lab_p[w] ? i : w;
    int tmp[8], m = 0;
    for (long key = keys[w]; key > 0; key /= C + 1) tmp[m++] = (int)(key % (C + 1)) - 1;
    for (int i = 0; i < m; i++) best[i] = tmp[m - 1 - i];
    *best_len = m;
    return log(lab_p[w]);
}

/* With a beam as large as the number of prefixes the search is exact: random scores, 2 rows of
 * different lengths, blank 0 and blank C-1; the winner and its log-probability equal the best of
 * the enumeration. A narrow beam finds a labelling no more likely than that. */
static void test_ctc_beam_exact_with_a_wide_beam(void **state)
{
    (void)state;
    enum { T = 6, B = 2 };
    for (int trial = 0; trial < 12; trial++) {
        int C = 3 + trial % 2, blank = trial % 3 == 2 ? C - 1 : 0, lens[B] = {T, T - 1 - trial % 3};
        sp_tape *t = sp_tape_new();
        sp_tensor *x = sp_test_const(t, T * B, C, 40 + trial);
        for (size_t i = 0; i < sp_numel(x); i++) x->data[i] *= 2.5;
        int out[B * T], len[B], nar[B * T], nlen[B];
        double score[B], nscore[B];
        sp_ctc_beam_opts o = {.beam = 5000, .blank = blank}, narrow = {.beam = 2, .blank = blank};
        assert_int_equal(sp_ctc_beam_search(x, T, B, lens, &o, out, len, score), SP_OK);
        assert_int_equal(sp_ctc_beam_search(x, T, B, lens, &narrow, nar, nlen, nscore), SP_OK);
        for (int b = 0; b < B; b++) {
            int want[8], n;
            double lp = best_labelling(x, lens[b], B, b, blank, want, &n);
            expect_labels(out + b * T, len[b], want, n, "wide beam vs enumeration");
            sp_test_close(score[b], lp, 1e-12, 0, "wide beam score");
            assert_true(nscore[b] <= lp + 1e-12);
        }
        sp_tape_free(t);
    }
}

/* A bigram model over labels 1..3 (a, b, c) as callbacks: the state is the last label (0 at the
 * start). After a it says c (0.9) rather than b (0.05); anything else is uniform. */
typedef struct {
    int calls, most;
    int fail_after;
} bigram;

static void bigram_logp(int last, double *logp)
{
    for (int c = 0; c < 4; c++) logp[c] = log(1.0 / 3);
    if (last == 1) logp[1] = log(0.05), logp[2] = log(0.05), logp[3] = log(0.9);
    logp[4] = log(0.5); /* end of text */
}

static sp_status bigram_start(void *user, void *st, double *logp)
{
    (void)user;
    *(int *)st = 0;
    bigram_logp(0, logp);
    return SP_OK;
}

static sp_status bigram_advance(void *user, int n, const void *const *from, const int *labels, void *const *to,
                                double *const *logp)
{
    bigram *g = user;
    (void)from;
    if (g->fail_after && g->calls >= g->fail_after) return sp_fail(SP_ERR_ARG, "bigram: told to fail");
    g->calls++;
    g->most = n > g->most ? n : g->most;
    for (int i = 0; i < n; i++) {
        *(int *)to[i] = labels[i];
        bigram_logp(labels[i], logp[i]);
    }
    return SP_OK;
}

/* Frame 0 says a, frame 1 b (0.5) or c (0.4), frame 2 blank: "ab" wins on the scores alone, "ac"
 * once the bigram's weight is 1: log 0.45 + log 1/3 + log 0.9 + log 0.5 > log 0.55 + log 1/3 + log 0.05. */
static void test_ctc_beam_lm_changes_the_answer(void **state)
{
    (void)state;
    static const double p[12] = {0.1, 0.8, 0.05, 0.05, 0.1, 0.0001, 0.4999, 0.4, 0.9, 0.0334, 0.0333, 0.0333};
    sp_tape *t = sp_tape_new();
    sp_tensor *x = probs(t, 3, 4, p);
    bigram g = {0};
    sp_ctc_lm lm = {sizeof(int), bigram_start, bigram_advance, &g};
    sp_ctc_beam_opts o = {.beam = 8, .lm = &lm, .lm_weight = 0};
    int out[3], len[1];
    double score[1];
    assert_int_equal(sp_ctc_beam_search(x, 3, 1, NULL, &o, out, len, score), SP_OK);
    expect_labels(out, len[0], (int[2]){1, 2}, 2, "no LM weight");
    assert_int_equal(g.calls, 0); /* weight 0: the model is not asked */
    o.lm_weight = 1;
    assert_int_equal(sp_ctc_beam_search(x, 3, 1, NULL, &o, out, len, score), SP_OK);
    expect_labels(out, len[0], (int[2]){1, 3}, 2, "with the LM");
    assert_true(g.calls > 0 && g.most <= 8);
    /* P_ctc("ac") is the sum over its paths a c -, a c c, a a c, - a c, a - c */
    double ctc = log(0.8 * 0.4 * 0.9 + 0.8 * 0.4 * 0.0333 + 0.8 * 0.0001 * 0.0333 + 0.1 * 0.0001 * 0.0333 + 0.8 * 0.1 * 0.0333);
    sp_test_close(score[0], ctc + log(1.0 / 3) + log(0.9) + log(0.5), 1e-9, 0, "fused score");
    /* a failing model stops the search with its status and message */
    g.fail_after = 1;
    assert_int_equal(sp_ctc_beam_search(x, 3, 1, NULL, &o, out, len, score), SP_ERR_ARG);
    assert_non_null(strstr(sp_last_error(), "told to fail"));
    sp_tape_free(t);
}

/* log_softmax of the next-token logits of a 1-row stream after reading ids[0..n) (a direct use of
 * the streaming path, against which the adapter is checked). */
static void direct_lm(const sp_rnn *rnn, const sp_embed *emb, const sp_linear *head, const int *ids, int n, double *lsm)
{
    sp_stream *s = sp_stream_new(rnn, 1, NULL);
    assert_non_null(s);
    assert_int_equal(sp_stream_set_table(s, emb->weight), SP_OK);
    const sp_tensor *y = NULL;
    for (int i = 0; i < n; i++) {
        sp_tape *t = sp_stream_begin(s);
        y = sp_linear_forward(t, head, sp_stream_step_ids(s, &ids[i]));
        assert_non_null(y);
    }
    double m = -INFINITY, z = 0;
    for (int v = 0; v < head->out; v++) m = fmax(m, (double)y->data[v]);
    for (int v = 0; v < head->out; v++) z += exp((double)y->data[v] - m);
    for (int v = 0; v < head->out; v++) lsm[v] = (double)y->data[v] - m - log(z);
    sp_stream_free(s);
}

/* sp_ctc_lm_stream_new over a random 2-layer LSTM of 5 tokens (0 the boundary, bos and eos):
 * labels 1, 2, 3 are tokens 2, 3, 4, label 4 is unknown. Its distributions after a chain of labels
 * equal a direct stream's, through batches larger than its 3 rows and an unknown label (which
 * passes the state on); the beam search's score with it is -ctc_loss + weight * (the model's log
 * P of the winner and its end) + bonus * length. */
static void test_ctc_lm_stream(void **state)
{
    (void)state;
    enum { V = 5, E = 4, H = 6, C = 5, T = 5 };
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 77);
    sp_embed emb;
    sp_rnn rnn;
    sp_linear head;
    assert_int_equal(sp_embed_init(&emb, ps, "emb", V, E, &rng), SP_OK);
    assert_int_equal(sp_rnn_init(&rnn, ps, "rnn", SP_CELL_LSTM, E, H, 2, 0, NULL, &rng), SP_OK);
    assert_int_equal(sp_linear_init(&head, ps, "head", H, V, 1, &rng), SP_OK);
    const int label_token[C] = {-1, 2, 3, 4, -1};
    sp_ctc_lm *lm = sp_ctc_lm_stream_new(&rnn, emb.weight, &head, C, label_token, 0, 0, 3);
    assert_non_null(lm);
    unsigned char *st = malloc(lm->state_size * 8);
    double lp[8][C + 1], lsm[V];
    void *s[8];
    for (int i = 0; i < 8; i++) s[i] = st + i * lm->state_size;
    assert_int_equal(lm->start(lm->user, s[0], lp[0]), SP_OK);
    direct_lm(&rnn, &emb, &head, (int[1]){0}, 1, lsm);
    for (int c = 1; c < 4; c++) sp_test_close(lp[0][c], lsm[label_token[c]], 1e-12, 1e-14, "start");
    sp_test_close(lp[0][4], -log((double)V), 1e-12, 0, "unknown label");
    sp_test_close(lp[0][C], lsm[0], 1e-12, 1e-14, "end");
    /* five prefixes from the start at once (two chunks of 3 rows), one of them the unknown label */
    const int labels[5] = {1, 2, 4, 3, 1};
    assert_int_equal(lm->advance(lm->user, 5, (const void *const[5]){s[0], s[0], s[0], s[0], s[0]}, labels,
                                 (void *const[5]){s[1], s[2], s[3], s[4], s[5]},
                                 (double *const[5]){lp[1], lp[2], lp[3], lp[4], lp[5]}),
                     SP_OK);
    for (int i = 0; i < 5; i++) {
        if (labels[i] == 4) {
            for (int c = 1; c <= C; c++) assert_true(lp[1 + i][c] == lp[0][c]);
            continue;
        }
        direct_lm(&rnn, &emb, &head, (int[2]){0, label_token[labels[i]]}, 2, lsm);
        for (int c = 1; c < 4; c++) sp_test_close(lp[1 + i][c], lsm[label_token[c]], 1e-12, 1e-14, "after one label");
    }
    /* a chain: 3 then 2 then unknown then 1 */
    assert_int_equal(lm->advance(lm->user, 1, (const void *const[1]){s[4]}, (int[1]){2}, (void *const[1]){s[6]},
                                 (double *const[1]){lp[6]}), SP_OK);
    assert_int_equal(lm->advance(lm->user, 1, (const void *const[1]){s[6]}, (int[1]){4}, (void *const[1]){s[7]},
                                 (double *const[1]){lp[7]}), SP_OK);
    assert_int_equal(lm->advance(lm->user, 1, (const void *const[1]){s[7]}, (int[1]){1}, (void *const[1]){s[6]},
                                 (double *const[1]){lp[6]}), SP_OK);
    direct_lm(&rnn, &emb, &head, (int[4]){0, 4, 3, 2}, 4, lsm);
    for (int c = 1; c < 4; c++) sp_test_close(lp[6][c], lsm[label_token[c]], 1e-12, 1e-14, "after a chain");

    /* the search with it: its score is the fused score of its winner (a beam that keeps every
     * prefix: a narrow one leaves out the paths through the prefixes it dropped) */
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_test_const(t, T, C, 3);
    for (size_t i = 0; i < sp_numel(x); i++) x->data[i] *= 3;
    sp_ctc_beam_opts o = {.beam = 2000, .lm = lm, .lm_weight = 0.7, .insertion_bonus = 0.3};
    int out[T], len[1];
    double score[1];
    assert_int_equal(sp_ctc_beam_search(x, T, 1, NULL, &o, out, len, score), SP_OK);
    sp_tensor *l = sp_ctc_loss(t, x, T, 1, NULL, out, len, NULL);
    assert_non_null(l);
    double lm_sum = 0;
    assert_int_equal(lm->start(lm->user, s[0], lp[0]), SP_OK);
    for (int i = 0; i < len[0]; i++) {
        lm_sum += lp[i % 2][out[i]];
        assert_int_equal(lm->advance(lm->user, 1, (const void *const[1]){s[i % 2]}, &out[i], (void *const[1]){s[1 - i % 2]},
                                     (double *const[1]){lp[1 - i % 2]}), SP_OK);
    }
    lm_sum += lp[len[0] % 2][C];
    double want = -l->data[0] * (len[0] > 0 ? len[0] : 1) + 0.7 * lm_sum + 0.3 * len[0]; /* mean divided by the length */
    sp_test_close(score[0], want, 1e-10, 0, "fused score with the stream model");
    sp_tape_free(t);
    /* bad arguments */
    assert_null(sp_ctc_lm_stream_new(&rnn, emb.weight, &head, C, (int[C]){-1, 5, 2, 3, 4}, 0, 0, 3));
    assert_non_null(strstr(sp_last_error(), "label_token[1] = 5"));
    assert_null(sp_ctc_lm_stream_new(&rnn, emb.weight, &head, C, label_token, 7, 0, 3));
    free(st);
    sp_ctc_lm_stream_free(lm);
    sp_ctc_lm_stream_free(NULL);
    sp_params_free(ps);
}

static void test_ctc_beam_errors(void **state)
{
    (void)state;
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_test_const(t, 4, 3, 1);
    int out[4], len[1];
    assert_int_equal(sp_ctc_beam_search(x, 4, 1, NULL, &(sp_ctc_beam_opts){.beam = -1}, out, len, NULL), SP_ERR_ARG);
    assert_non_null(strstr(sp_last_error(), "ctc_beam_search: beam -1"));
    assert_int_equal(sp_ctc_beam_search(x, 4, 1, NULL, &(sp_ctc_beam_opts){.lm_weight = NAN}, out, len, NULL), SP_ERR_ARG);
    sp_ctc_lm half = {sizeof(int), bigram_start, NULL, NULL};
    assert_int_equal(sp_ctc_beam_search(x, 4, 1, NULL, &(sp_ctc_beam_opts){.lm = &half, .lm_weight = 1}, out, len, NULL),
                     SP_ERR_ARG);
    assert_non_null(strstr(sp_last_error(), "no advance callback"));
    assert_int_equal(sp_ctc_beam_search(x, 4, 1, NULL, &(sp_ctc_beam_opts){.blank = 3}, out, len, NULL), SP_ERR_ARG);
    assert_int_equal(sp_ctc_beam_search(x, 2, 1, NULL, NULL, out, len, NULL), SP_ERR_SHAPE);
    x->data[4] = NAN; /* frame 1 */
    assert_int_equal(sp_ctc_beam_search(x, 4, 1, NULL, NULL, out, len, NULL), SP_ERR_ARG);
    assert_non_null(strstr(sp_last_error(), "at frame 1 of row 0"));
    sp_tape_free(t);
}

int main(void)
{
    sp_init(&(sp_init_opts){.flags = SP_INIT_FIXED_THREADS}); /* two threads even on a busy machine */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctc_loss_is_the_sum_over_paths),
        cmocka_unit_test(test_ctc_loss_long_row_closed_form),
        cmocka_unit_test(test_ctc_loss_empty_rows),
        cmocka_unit_test(test_ctc_loss_zero_infinity),
        cmocka_unit_test(test_ctc_loss_errors),
        cmocka_unit_test(test_ctc_loss_threads),
        cmocka_unit_test(test_ctc_greedy),
        cmocka_unit_test(test_ctc_beam_beats_greedy),
        cmocka_unit_test(test_ctc_beam_exact_with_a_wide_beam),
        cmocka_unit_test(test_ctc_beam_lm_changes_the_answer),
        cmocka_unit_test(test_ctc_beam_errors),
        cmocka_unit_test(test_ctc_lm_stream),
    };
    return cmocka_run_group_tests_name("ctc", tests, NULL, NULL);
}
