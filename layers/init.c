/* SPDX-License-Identifier: MIT */
/* init.c - parameter initialisation for layers: uniform (PyTorch's default for RNNs and Linear)
 * and orthogonal blocks (Saxe et al. 2014, "Exact solutions to the nonlinear dynamics of learning
 * in deep linear neural networks"), used as an option for recurrent weights. Runs once at model
 * construction, so it may use the heap. */
#include "layers_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* p (a new parameter, or NULL) filled with U(-bound, bound) from rng. */
static sp_tensor *fill_uniform(sp_tensor *p, double bound, sp_rng *rng)
{
    if (!p) return NULL;
    for (int i = 0; i < p->rows; i++)
        for (int j = 0; j < p->cols; j++) *sp_at(p, i, j) = (sp_real)(bound * (2 * sp_rng_uniform(rng) - 1));
    return p;
}

static int have_rng(const char *who, const char *name, const sp_rng *rng)
{
    if (!rng) sp_fail(SP_ERR_ARG, "%s \"%s\": rng is NULL", who, name ? name : "?");
    return rng != NULL;
}

sp_tensor *sp_param_uniform(sp_params *ps, const char *name, int rows, int cols, double bound, sp_rng *rng)
{
    if (!have_rng("sp_param_uniform", name, rng)) return NULL;
    return fill_uniform(sp_param(ps, name, rows, cols), bound, rng);
}

sp_tensor *sp__bias_uniform(sp_params *ps, const char *name, int n, double bound, sp_rng *rng)
{
    if (!have_rng("bias", name, rng)) return NULL;
    return fill_uniform(sp_param_vec(ps, name, n), bound, rng);
}

sp_tensor *sp__param(sp_params *ps, const char *pre, const char *what, const char *sfx, int rows, int cols,
                     double bound, sp_rng *rng)
{
    char name[256];
    snprintf(name, sizeof name, "%s%s%s", pre, what, sfx);
    return sp_param_uniform(ps, name, rows, cols, bound, rng);
}

sp_tensor *sp__bias(sp_params *ps, const char *pre, const char *what, const char *sfx, int n, double bound,
                    sp_rng *rng)
{
    char name[256];
    snprintf(name, sizeof name, "%s%s%s", pre, what, sfx);
    return sp__bias_uniform(ps, name, n, bound, rng);
}

/* Modified Gram-Schmidt on m vectors of length len (rows of v, row-major). A vector that comes out
 * (nearly) dependent is redrawn, so the result is always orthonormal. */
static void gram_schmidt(double *v, int m, int len, sp_rng *rng)
{
    for (int a = 0; a < m; a++) {
        double *x = v + (size_t)a * len;
        for (int tries = 0; tries < 8; tries++) {
            for (int b = 0; b < a; b++) {
                const double *y = v + (size_t)b * len;
                double d = 0;
                for (int k = 0; k < len; k++) d += x[k] * y[k];
                for (int k = 0; k < len; k++) x[k] -= d * y[k];
            }
            double n = 0;
            for (int k = 0; k < len; k++) n += x[k] * x[k];
            n = sqrt(n);
            if (n > 1e-6) {
                for (int k = 0; k < len; k++) x[k] /= n;
                break;
            }
            for (int k = 0; k < len; k++) x[k] = sp_rng_normal(rng);
        }
    }
}

sp_status sp_init_orthogonal(sp_tensor *p, int r0, int n, sp_rng *rng)
{
    if (!p || !rng || r0 < 0 || n <= 0 || r0 > p->rows || n > p->rows - r0) /* no r0 + n: it can overflow */
        return sp_fail(SP_ERR_ARG, "sp_init_orthogonal \"%s\": rows [%d, %lld) of [%d x %d]%s", p ? p->name : "?", r0,
                       (long long)r0 + n, p ? p->rows : 0, p ? p->cols : 0, rng ? "" : " (rng NULL)");
    int C = p->cols;
    /* Orthonormal columns if the block is tall (n >= C), else orthonormal rows. */
    int cols_mode = n >= C, m = cols_mode ? C : n, len = cols_mode ? n : C;
    double *v = malloc((size_t)m * len * sizeof *v);
    if (!v) return sp_fail(SP_ERR_NOMEM, "sp_init_orthogonal \"%s\": out of memory", p->name);
    for (size_t k = 0; k < (size_t)m * len; k++) v[k] = sp_rng_normal(rng);
    gram_schmidt(v, m, len, rng);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < C; j++)
            *sp_at(p, r0 + i, j) = (sp_real)(cols_mode ? v[(size_t)j * len + i] : v[(size_t)i * len + j]);
    free(v);
    return SP_OK;
}
