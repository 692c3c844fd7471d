/* SPDX-License-Identifier: MIT */
/* test_ctc_torch.c - sp_ctc_loss against torch.nn.functional.ctc_loss in float64
 * (tests/test_ctc_torch.py), double build: random batches of random frame and label lengths with
 * forced repeated labels, blank ids other than 0, concatenated and padded labels, every reduction
 * with and without zero_infinity (then with rows that have no alignment). Values and gradients
 * with respect to the logits must agree to 1e-10. Input lengths are >= 1 here: PyTorch reads
 * frame 0 of a row of length 0 (tests/test_ctc.c checks spool's length-0 rows).
 * Arguments: python3 and the script (meson passes both). Exits 77 (skipped) without torch, so this
 * test does not use the TAP protocol. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *py, *script;

enum { CASES = 24, MAX_T = 30, MAX_B = 6 };

typedef struct {
    int T, B, C, blank, stride;
    int in_len[MAX_B], lab_len[MAX_B];
    int lab[MAX_B * MAX_T]; /* padded, MAX_T per row */
} ctc_case;

/* A random class other than the blank. */
static int label(sp_rng *r, const ctc_case *c)
{
    int k = sp_rng_below(r, c->C - 1);
    return k >= c->blank ? k + 1 : k;
}

/* Frames a label row needs (one per label, one more between equal neighbours). */
static int needed(const int *lab, int L)
{
    int n = L;
    for (int i = 1; i < L; i++) n += lab[i] == lab[i - 1];
    return n;
}

static void make_case(ctc_case *c, sp_rng *r, int k, int infeasible)
{
    memset(c, 0, sizeof *c);
    c->T = 1 + sp_rng_below(r, MAX_T);
    c->B = (infeasible ? 2 : 1) + sp_rng_below(r, MAX_B - 1);
    c->C = 2 + sp_rng_below(r, 6); /* few classes: many repeats */
    c->blank = k % 3 == 0 ? 0 : k % 3 == 1 ? c->C - 1 : sp_rng_below(r, c->C);
    for (int b = 0; b < c->B; b++) {
        int Tb = c->in_len[b] = b == 0 ? c->T : 1 + sp_rng_below(r, c->T);
        int *lab = c->lab + b * MAX_T, L = 0;
        int want = infeasible && b == 1 ? Tb + 1 : sp_rng_below(r, Tb / 2 + 2); /* row 1: no alignment */
        for (int i = 0; i < want && i < MAX_T; i++) {
            lab[L] = L > 0 && sp_rng_uniform(r) < 0.3 ? lab[L - 1] : label(r, c); /* a repeat at times */
            L++;
            if (!(infeasible && b == 1) && needed(lab, L) > Tb) {
                L--;
                break;
            }
        }
        c->lab_len[b] = L;
    }
    c->stride = k % 2 ? MAX_T : 0;
}

static void put_ints(FILE *f, const char *what, const int *v, int n)
{
    fprintf(f, "%s", what);
    for (int i = 0; i < n; i++) fprintf(f, " %d", v[i]);
    fprintf(f, "\n");
}

/* Writes case c (logits from seed), then spool's loss and gradient for each reduction. */
static void run_case(FILE *f, const ctc_case *c, uint64_t seed, int zero_inf)
{
    sp_params *ps = sp_params_new();
    sp_tensor *x = sp_param(ps, "x", c->T * c->B, c->C);
    sp_rng r;
    sp_rng_seed(&r, seed);
    sp_test_fill(x, &r, -3, 3);
    int packed[MAX_B * MAX_T], n = 0;
    for (int b = 0; b < c->B; b++)
        for (int i = 0; i < c->lab_len[b]; i++) packed[n++] = c->lab[b * MAX_T + i];
    fprintf(f, "case %d %d %d %d %d\n", c->T, c->B, c->C, c->blank, zero_inf);
    put_ints(f, "in_len", c->in_len, c->B);
    put_ints(f, "lab_len", c->lab_len, c->B);
    put_ints(f, "labels", packed, n);
    fprintf(f, "logits");
    for (int i = 0; i < c->T * c->B * c->C; i++) fprintf(f, " %.17g", (double)x->data[i]);
    fprintf(f, "\n");
    static const char *names[3] = {"mean", "sum", "none"};
    for (int red = 0; red < 3; red++) {
        sp_params_zero_grad(ps);
        sp_tape *t = sp_tape_new();
        sp_ctc_opts o = {.blank = c->blank, .reduction = (sp_ctc_reduction)red, .zero_infinity = zero_inf,
                         .label_stride = c->stride};
        sp_tensor *l = sp_ctc_loss(t, x, c->T, c->B, c->in_len, c->stride ? c->lab : packed, c->lab_len, &o);
        if (!l) print_error("# %s\n", sp_tape_errmsg(t));
        assert_non_null(l);
        /* none: the sum over rows seeds every row's gradient with 1, as torch's .sum().backward() */
        assert_int_equal(sp_backward(t, red == SP_CTC_NONE ? sp_sum(t, l) : l), SP_OK);
        fprintf(f, "loss %s %d", names[red], l->rows);
        for (int i = 0; i < l->rows; i++) fprintf(f, " %.17g", (double)l->data[i]);
        fprintf(f, "\ngrad");
        for (int i = 0; i < c->T * c->B * c->C; i++) fprintf(f, " %.17g", (double)x->grad[i]);
        fprintf(f, "\n");
        sp_tape_free(t);
    }
    sp_params_free(ps);
}

static void test_ctc_loss_matches_pytorch(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "ctc_torch_%d.txt", (int)getpid()); /* in the build directory */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    sp_rng r;
    sp_rng_seed(&r, 2006);
    for (int k = 0; k < CASES; k++) {
        ctc_case c;
        int zero_inf = k >= CASES / 2;
        make_case(&c, &r, k, zero_inf && k % 2 == 0);
        run_case(f, &c, 500 + (uint64_t)k, zero_inf);
    }
    fclose(f);
    assert_int_equal(sp_test_python(py, script, path), 0);
}

int main(int argc, char **argv)
{
    if (!sp_test_python_args(argc, argv, &py, &script)) return 2;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import torch' 2>/dev/null", py);
    int rc = system(cmd);
    if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
        printf("# skip: no torch for %s (this test compares sp_ctc_loss with torch.nn.functional.ctc_loss)\n", py);
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_ctc_loss_matches_pytorch)};
    return cmocka_run_group_tests_name("ctc_torch", tests, NULL, NULL);
}
