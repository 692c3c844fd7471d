/* SPDX-License-Identifier: MIT */
/* helpers.c - the finite-difference checker and small test utilities (see helpers.h). */
#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

void sp_test_close(double a, double b, double rtol, double atol, const char *what)
{
    double tol = atol + rtol * fmax(fabs(a), fabs(b));
    if (!(fabs(a - b) <= tol)) {
        print_error("# %s: %.10g vs %.10g (|diff| %.3g > tol %.3g)\n", what, a, b, fabs(a - b), tol);
        fail();
    }
}

void sp_test_fill(sp_tensor *x, sp_rng *r, double lo, double hi)
{
    for (int i = 0; i < x->rows; i++)
        for (int j = 0; j < x->cols; j++) *sp_at(x, i, j) = (sp_real)(lo + (hi - lo) * sp_rng_uniform(r));
}

static double loss_at(sp_tape *t, sp_test_build build, void *ctx)
{
    sp_tape_reset(t);
    sp_tensor *l = build(t, ctx);
    if (!l) {
        print_error("# gradcheck: build failed: %s\n", sp_tape_errmsg(t));
        return NAN;
    }
    return l->data[0];
}

int sp_gradcheck(sp_params *ps, sp_test_build build, void *ctx, const sp_gradcheck_opts *o)
{
    sp_gradcheck_opts d = {1e-6, 1e-9, 1e-6, -1};
    if (o) d = *o;
    sp_tape *t = sp_tape_new();
    sp_params_zero_grad(ps);
    sp_tape_reset(t);
    sp_tensor *l = build(t, ctx);
    if (!l || sp_backward(t, l) != SP_OK) {
        print_error("# gradcheck: forward/backward failed: %s\n", sp_tape_errmsg(t));
        sp_tape_free(t);
        return -1;
    }
    size_t n = ps->numel;
    double *analytic = malloc(n * sizeof *analytic);
    for (size_t k = 0; k < n; k++) analytic[k] = ps->grad[k];
    if (d.perturb >= 0 && (size_t)d.perturb < n)
        analytic[d.perturb] += 1e-4 * fmax(fabs(analytic[d.perturb]), 1e-3);
    int bad = 0;
    double worst = 0;
    size_t worst_k = 0;
    double worst_a = 0, worst_n = 0;
    for (size_t k = 0; k < n; k++) {
        sp_real v = ps->value[k];
        ps->value[k] = v + (sp_real)d.h;
        double lp = loss_at(t, build, ctx);
        ps->value[k] = v - (sp_real)d.h;
        double lm = loss_at(t, build, ctx);
        ps->value[k] = v;
        double num = (lp - lm) / (2 * d.h), a = analytic[k];
        double tol = d.atol + d.rtol * fmax(fabs(a), fabs(num));
        double ratio = fabs(a - num) / tol;
        if (!(ratio <= 1)) bad++;
        if (!(ratio <= worst)) {
            worst = ratio;
            worst_k = k;
            worst_a = a;
            worst_n = num;
        }
    }
    if (bad) {
        /* name the parameter holding the worst component */
        const char *pname = "?";
        size_t off = 0;
        for (int i = 0; i < ps->count; i++) {
            size_t m = sp_numel(ps->list[i]);
            if (worst_k < off + m) {
                pname = ps->list[i]->name;
                break;
            }
            off += m;
        }
        print_message("# gradcheck: %d of %zu components off; worst %s[%zu]: analytic %.10g numeric %.10g\n",
                      bad, n, pname, worst_k - off, worst_a, worst_n);
    }
    free(analytic);
    sp_tape_free(t);
    return bad;
}

sp_tensor *sp_test_const(sp_tape *t, int rows, int cols, uint64_t seed)
{
    sp_tensor *x = sp_const(t, rows, cols);
    if (!x) return NULL;
    sp_rng r;
    sp_rng_seed(&r, seed);
    sp_test_fill(x, &r, -1, 1);
    return x;
}

double sp_test_loss_and_grads(sp_params *ps, sp_test_build build, void *ctx, double *grad)
{
    sp_tape *t = sp_tape_new();
    sp_params_zero_grad(ps);
    sp_tensor *l = build(t, ctx);
    assert_non_null(l);
    assert_int_equal(sp_backward(t, l), SP_OK);
    double loss = l->data[0];
    for (size_t k = 0; k < ps->numel; k++) grad[k] = ps->grad[k];
    sp_tape_free(t);
    return loss;
}

void sp_test_second_backward_adds(sp_params *ps, sp_test_build build, void *ctx)
{
    size_t n = ps->numel;
    double *one = malloc(n * sizeof *one);
    sp_tape *t = sp_tape_new();
    assert_non_null(one);
    sp_params_zero_grad(ps);
    assert_int_equal(sp_backward(t, build(t, ctx)), SP_OK);
    for (size_t k = 0; k < n; k++) one[k] = ps->grad[k];
    sp_tape_reset(t);
    assert_int_equal(sp_backward(t, build(t, ctx)), SP_OK); /* no zero_grad in between */
    for (size_t k = 0; k < n; k++) sp_test_close(ps->grad[k], 2 * one[k], 1e-12, 1e-14, "second backward adds");
    sp_tape_free(t);
    free(one);
}

int sp_test_python(const char *py, const char *script, const char *file)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", py, script, file);
    int rc = system(cmd);
    remove(file);
    return rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int sp_test_python_args(int argc, char **argv, const char **py, const char **script)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s PYTHON SCRIPT\n", argv[0]);
        return 0;
    }
    *py = argv[1];
    *script = argv[2];
    return 1;
}
