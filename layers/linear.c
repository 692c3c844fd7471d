/* SPDX-License-Identifier: MIT */
/* linear.c - the two non-recurrent layers every model needs around its RNN: a linear map
 * (torch.nn.Linear layout and init) and a token embedding (torch.nn.Embedding). */
#include "layers_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void join(char *dst, size_t n, const char *prefix, const char *what)
{
    snprintf(dst, n, "%s%s%s", prefix && *prefix ? prefix : "", prefix && *prefix ? "." : "", what);
}

sp_status sp_linear_init(sp_linear *l, sp_params *ps, const char *prefix, int in, int out, int with_bias,
                         sp_rng *rng)
{
    if (!l || in <= 0 || out <= 0)
        return sp_fail(SP_ERR_ARG, "linear \"%s\": bad sizes in = %d, out = %d", prefix ? prefix : "", in, out);
    memset(l, 0, sizeof *l);
    char name[256];
    double bound = 1 / sqrt((double)in);
    join(name, sizeof name, prefix, "weight");
    if (!(l->weight = sp_param_uniform(ps, name, out, in, bound, rng))) return sp_last_status();
    if (with_bias) {
        join(name, sizeof name, prefix, "bias");
        if (!(l->bias = sp__bias_uniform(ps, name, out, bound, rng))) return sp_last_status();
    }
    l->in = in;
    l->out = out;
    return SP_OK;
}

sp_tensor *sp_linear_forward(sp_tape *t, const sp_linear *l, sp_tensor *x)
{
    if (!l || !l->weight) {
        sp_tape_fail(t, SP_ERR_ARG, "linear: layer is NULL or not initialised");
        return NULL;
    }
    if (x && x->cols != l->in) {
        sp_tape_fail(t, SP_ERR_SHAPE, "linear \"%s\": input \"%s\" [%d x %d] has %d columns, layer takes %d",
                     l->weight->name, x->name, x->rows, x->cols, x->cols, l->in);
        return NULL;
    }
    return sp_matmul_bias(t, x, 0, l->weight, 1, l->bias);
}

sp_status sp_embed_init(sp_embed *e, sp_params *ps, const char *prefix, int num, int dim, sp_rng *rng)
{
    if (!e || num <= 0 || dim <= 0 || !rng)
        return sp_fail(SP_ERR_ARG, "embedding \"%s\": bad sizes num = %d, dim = %d or rng NULL",
                       prefix ? prefix : "", num, dim);
    memset(e, 0, sizeof *e);
    char name[256];
    join(name, sizeof name, prefix, "weight");
    if (!(e->weight = sp_param(ps, name, num, dim))) return sp_last_status();
    for (int i = 0; i < num; i++)
        for (int j = 0; j < dim; j++) *sp_at(e->weight, i, j) = (sp_real)sp_rng_normal(rng);
    e->num = num;
    e->dim = dim;
    return SP_OK;
}

sp_tensor *sp_embed_forward(sp_tape *t, const sp_embed *e, const int *ids, int n)
{
    if (!e || !e->weight) {
        sp_tape_fail(t, SP_ERR_ARG, "embedding: layer is NULL or not initialised");
        return NULL;
    }
    return sp_embedding(t, e->weight, ids, n);
}
