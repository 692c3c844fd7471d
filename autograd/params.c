/* SPDX-License-Identifier: MIT */
/* params.c - a model's parameters: two slabs (values, gradients) with named views into them.
 *
 * Parameters outlive the tape. Keeping them in one slab each makes zeroing the gradients one
 * memset and lets optimizers and checkpoints treat the whole model as a flat array. The slabs
 * grow while a model is being built; every parameter's data/grad pointers are rebased then.
 * The set owns the layout: each parameter records its element offset in the slabs (`offset`,
 * fixed at creation) and how a checkpoint stores it (SP_PARAM_1D: [n] instead of [1, n]), so
 * optimizers, clipping and checkpoints read that instead of re-deriving it.
 */
#include "tape_internal.h"

#include <stdlib.h>
#include <string.h>


sp_params *sp_params_new(void)
{
    if (sp_runtime_init() != SP_OK) return NULL;
    sp_params *ps = calloc(1, sizeof *ps);
    if (!ps) sp_fail(SP_ERR_NOMEM, "sp_params_new: out of memory");
    return ps;
}

void sp_params_free(sp_params *ps)
{
    if (!ps) return;
    for (int i = 0; i < ps->count; i++) {
        free((char *)ps->list[i]->name);
        free(ps->list[i]);
    }
    free(ps->list);
    free(ps->value);
    free(ps->grad);
    free(ps);
}

sp_tensor *sp_params_find(const sp_params *ps, const char *name)
{
    if (!ps || !name) {
        sp_fail(SP_ERR_ARG, "sp_params_find: %s is NULL", ps ? "name" : "params");
        return NULL;
    }
    for (int i = 0; i < ps->count; i++)
        if (strcmp(ps->list[i]->name, name) == 0) return ps->list[i];
    return NULL;
}

static void rebase(sp_params *ps)
{
    for (int i = 0; i < ps->count; i++) {
        sp_tensor *p = ps->list[i];
        p->data = ps->value + p->offset;
        p->grad = ps->grad + p->offset;
    }
}

static int grow_slabs(sp_params *ps, size_t need)
{
    if (need <= ps->cap) return 1;
    size_t cap = ps->cap ? ps->cap : 1024;
    while (cap < need) cap *= 2;
    if (cap > SIZE_MAX / 2 / sizeof(sp_real)) return 0;
    /* Rebase after each realloc: if the second one fails, the first slab has moved already and
     * the parameters must not keep pointing into the freed one. */
    sp_real *v = realloc(ps->value, cap * sizeof *v);
    if (!v) return 0;
    ps->value = v;
    rebase(ps);
    sp_real *g = realloc(ps->grad, cap * sizeof *g);
    if (!g) return 0;
    ps->grad = g;
    ps->cap = cap;
    rebase(ps);
    return 1;
}

sp_tensor *sp_param(sp_params *ps, const char *name, int rows, int cols)
{
    if (!ps || !name || !*name) {
        sp_fail(SP_ERR_ARG, "sp_param: %s", !ps ? "parameter set is NULL" : "a parameter needs a name");
        return NULL;
    }
    if (rows <= 0 || cols <= 0 || (size_t)rows * (size_t)cols > ((size_t)1 << 40)) {
        sp_fail(SP_ERR_SHAPE, "sp_param \"%s\": bad shape [%d x %d]", name, rows, cols);
        return NULL;
    }
    if (sp_params_find(ps, name)) {
        sp_fail(SP_ERR_ARG, "sp_param \"%s\": a parameter of that name exists already", name);
        return NULL;
    }
    size_t n = (size_t)rows * cols;
    if (ps->count == ps->list_cap) {
        int cap = ps->list_cap ? 2 * ps->list_cap : 16;
        sp_tensor **l = realloc(ps->list, (size_t)cap * sizeof *l);
        if (!l) goto nomem;
        ps->list = l;
        ps->list_cap = cap;
    }
    sp_tensor *p = calloc(1, sizeof *p);
    char *nm = strdup(name);
    if (!p || !nm || !grow_slabs(ps, ps->numel + n)) {
        free(p);
        free(nm);
        goto nomem;
    }
    p->offset = ps->numel;
    p->data = ps->value + p->offset;
    p->grad = ps->grad + p->offset;
    memset(p->data, 0, n * sizeof(sp_real));
    memset(p->grad, 0, n * sizeof(sp_real));
    p->rows = rows;
    p->cols = cols;
    p->stride = cols;
    p->flags = SP_PARAM | SP_NEEDS_GRAD;
    p->id = -1;
    p->name = nm;
    ps->list[ps->count++] = p;
    ps->numel += n;
    return p;
nomem:
    sp_fail(SP_ERR_NOMEM, "sp_param \"%s\": out of memory for [%d x %d]", name, rows, cols);
    return NULL;
}

sp_tensor *sp_param_vec(sp_params *ps, const char *name, int n)
{
    sp_tensor *p = sp_param(ps, name, 1, n);
    if (p) p->flags |= SP_PARAM_1D;
    return p;
}

void sp_params_zero_grad(sp_params *ps)
{
    if (ps && ps->numel) memset(ps->grad, 0, ps->numel * sizeof(sp_real));
}
