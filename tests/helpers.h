/* SPDX-License-Identifier: MIT */
/* helpers.h - what every test shares: cmocka includes in the order cmocka 1.1.5 needs, a
 * tolerance assert, random fills, the central finite-difference gradient checker, and the runner
 * of the PyTorch comparison scripts. */
#ifndef SP_TEST_HELPERS_H
#define SP_TEST_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "spool.h"

/* |a - b| <= atol + rtol * max(|a|, |b|), else fail printing both and `what`. */
void sp_test_close(double a, double b, double rtol, double atol, const char *what);

/* Fill a tensor with uniform values in [lo, hi). */
void sp_test_fill(sp_tensor *x, sp_rng *r, double lo, double hi);

/* A tape constant rows x cols filled with uniform values in [-1, 1) from seed. */
sp_tensor *sp_test_const(sp_tape *t, int rows, int cols, uint64_t seed);

/* Builds the loss for a gradient check on a freshly reset tape. Everything it differentiates
 * with respect to must be a parameter of the set given to sp_gradcheck. */
typedef sp_tensor *(*sp_test_build)(sp_tape *t, void *ctx);

typedef struct {
    double rtol, atol, h;  /* defaults 1e-6, 1e-9, 1e-6 (double build) */
    int perturb;           /* >= 0: add 1e-4 relative to this analytic component (test the test) */
} sp_gradcheck_opts;

/* Compares the analytic gradient of every element of every parameter in ps with a central
 * difference. Returns the number of components outside tolerance (0 = pass) and prints the worst
 * one. */
int sp_gradcheck(sp_params *ps, sp_test_build build, void *ctx, const sp_gradcheck_opts *o);

/* One forward and backward of build's loss on a fresh tape, the gradients zeroed first: returns the
 * loss and copies every gradient of ps into grad (ps->numel values). */
double sp_test_loss_and_grads(sp_params *ps, sp_test_build build, void *ctx, double *grad);

/* Backward twice through build's loss on one tape, reset in between and the gradients not zeroed:
 * fails unless the second pass leaves exactly twice the first's gradients (accumulation). */
void sp_test_second_backward_adds(sp_params *ps, sp_test_build build, void *ctx);

/* Runs `PY SCRIPT FILE` (a comparison with PyTorch: tests/test_*_torch.py), then removes FILE;
 * returns the script's exit status (77: no torch), or -1 if it could not run. */
int sp_test_python(const char *py, const char *script, const char *file);
/* Such a test's arguments, PYTHON SCRIPT (meson passes both), into *py and *script: 1, or 0 after
 * printing the usage (then exit with 2). */
int sp_test_python_args(int argc, char **argv, const char **py, const char **script);

#endif
