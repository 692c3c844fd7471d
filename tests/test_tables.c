/* SPDX-License-Identifier: MIT */
/* test_tables.c - the extension tables check themselves: every row of the op table
 * (ops/table.c), the cell table (layers/cell_table.c) and the optimizer table (optim/rules.c),
 * so that a new row that forgets a column fails here rather than silently at run time.
 *   ops:        a name, unique, and a backward or an explicit reason for none (constant, leaf,
 *               view); that every op has a gradient-test case is checked in test_ops_grad.c;
 *   cells:      the columns filled, sp_cell_init builds the kind with the row's name, PyTorch
 *               mode and state layout, every parameter it makes receives a gradient, and the
 *               gradients through a padded sequence match central differences;
 *   optimizers: the columns filled, every field a row names exists, the defaults (and every slot
 *               turned on) pass sp_optim_new with the row's slots, a few steps lower a quadratic,
 *               and a checkpoint of the state round-trips exactly, after which both continue alike.
 * Double build (for the finite differences). */
#include "helpers.h"

#include "../autograd/tape_internal.h"
#include "../layers/cell_table.h"
#include "../optim/optim_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------------- ops */

static void test_op_rows(void **state)
{
    (void)state;
    for (int op = 0; op < SP_OP__COUNT; op++) {
        const sp_op_def *d = &sp_op_table[op];
        if (!d->name || !*d->name) print_error("# op %d has no row (no name)\n", op);
        assert_true(d->name && *d->name);
        if (!d->backward == !d->no_backward)
            print_error("# op \"%s\": needs exactly one of a backward and a reason for none\n", d->name);
        assert_true(!d->backward != !d->no_backward);
        assert_string_equal(sp_op_name((sp_op)op), d->name);
        for (int k = 0; k < op; k++) assert_true(strcmp(sp_op_table[k].name, d->name) != 0);
    }
}

/* -------------------------------------------------------------------- cells */

enum { T = 3, B = 2, I = 3, H = 4 };
static const int lens[B] = {3, 1};

typedef struct {
    sp_cell c;
    sp_params *ps;
} cell_case;

static sp_tensor *weighted(sp_tape *t, sp_tensor *x, uint64_t seed)
{
    sp_tensor *w = sp_const(t, x->rows, x->cols);
    sp_rng r;
    sp_rng_seed(&r, seed);
    sp_test_fill(w, &r, -1, 1);
    return sp_sum(t, sp_mul(t, x, w));
}

/* Loss: weighted sum of the outputs and of every final state, x a fixed constant. */
static sp_tensor *cell_loss(sp_tape *t, void *ctx)
{
    cell_case *cc = ctx;
    sp_tensor *x = sp_const(t, T * B, I);
    sp_rng r;
    sp_rng_seed(&r, 17);
    sp_test_fill(x, &r, -1, 1);
    sp_seq_opts o = {.lengths = lens};
    sp_seq_out out;
    if (sp_seq_run(t, &cc->c, x, T, B, &o, &out) != SP_OK) return NULL;
    sp_tensor *l = weighted(t, out.out, 5);
    for (int k = 0; k < cc->c.n_state; k++) l = sp_add(t, l, weighted(t, out.final[k], 6 + (uint64_t)k));
    return l;
}

static void test_cell_rows(void **state)
{
    (void)state;
    for (int kind = 0; kind < SP_CELL_CUSTOM; kind++) {
        const sp_cell_def *d = sp__cell_def((sp_cell_kind)kind);
        if (!d) print_error("# cell kind %d has no row\n", kind);
        assert_non_null(d);
        assert_true(d->name && d->scope && d->init && d->step);
        assert_true(d->n_state >= 1 && d->n_state <= SP_CELL_MAX_STATE);
        for (int k = 0; k < kind; k++) assert_true(strcmp(sp_cell_table[k].name, d->name) != 0);

        cell_case cc;
        cc.ps = sp_params_new();
        sp_rng rng;
        sp_rng_seed(&rng, 40 + (uint64_t)kind);
        assert_int_equal(sp_cell_init(&cc.c, (sp_cell_kind)kind, cc.ps, "", 0, 0, I, H, NULL, &rng), SP_OK);
        assert_string_equal(sp_cell_kind_name(&cc.c), d->name);
        const char *mode = sp_cell_pytorch_mode(&cc.c);
        assert_true(mode == d->pytorch_mode || (mode && d->pytorch_mode && !strcmp(mode, d->pytorch_mode)));
        assert_int_equal(cc.c.n_state, d->n_state);
        assert_int_equal(cc.c.state_size[0], cc.c.out_size);
        if (d->n_state > 1) assert_int_equal(cc.c.state_size[1], H);
        assert_true(cc.c.gate_size > 0 && cc.c.project == d->project && cc.c.step == d->step);
        assert_true(cc.ps->count > 0);

        /* every parameter the row made takes part: some gradient component is nonzero */
        sp_tape *t = sp_tape_new();
        sp_tensor *l = cell_loss(t, &cc);
        assert_non_null(l);
        assert_int_equal(sp_backward(t, l), SP_OK);
        for (int i = 0; i < cc.ps->count; i++) {
            const sp_tensor *p = cc.ps->list[i];
            double s = 0;
            for (size_t e = 0; e < sp_numel(p); e++) s += fabs((double)p->grad[e]);
            if (s == 0) print_error("# cell \"%s\": parameter \"%s\" gets no gradient\n", d->name, p->name);
            assert_true(s > 0);
        }
        sp_tape_free(t);
        sp_params_zero_grad(cc.ps);
        int bad = sp_gradcheck(cc.ps, cell_loss, &cc, NULL);
        if (bad) print_error("# cell \"%s\": %d gradient components wrong\n", d->name, bad);
        assert_int_equal(bad, 0);
        sp_params_free(cc.ps);
    }
    /* the custom kind has no row: sp_cell_init refuses it */
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 1);
    sp_cell c;
    assert_null(sp__cell_def(SP_CELL_CUSTOM));
    assert_int_equal(sp_cell_init(&c, SP_CELL_CUSTOM, ps, "", 0, 0, I, H, NULL, &rng), SP_ERR_ARG);
    sp_params_free(ps);
}

/* ------------------------------------------------------------- optimizers */

static int names_field(const char *name) { return name == NULL || sp__optim_field(name) != NULL; }

/* 0.5 * sum(w_i * p_i^2) with w_i in [1, 2): the gradient w_i p_i, its loss. */
static double quad_grad(sp_params *ps)
{
    double l = 0;
    for (size_t i = 0; i < ps->numel; i++) {
        double w = 1 + (double)(i % 7) / 7, p = ps->value[i];
        ps->grad[i] = (sp_real)(w * p);
        l += 0.5 * w * p * p;
    }
    return l;
}

static sp_params *quad_params(void)
{
    sp_params *ps = sp_params_new();
    sp_param(ps, "w", 3, 4);
    assert_non_null(sp_param_vec(ps, "b", 4));
    for (size_t i = 0; i < ps->numel; i++) ps->value[i] = (sp_real)(0.25 * ((double)(i % 5) - 2) + 0.1);
    return ps;
}

static void test_optimizer_rows(void **state)
{
    (void)state;
    for (int i = 0; i < sp_optim_n_fields; i++) {
        const sp_optim_field *f = &sp_optim_fields[i];
        assert_true(f->name && f->torch_name);
        assert_true(f->offset + (f->is_int ? sizeof(int) : sizeof(double)) <= sizeof(sp_optim_config));
        assert_ptr_equal(sp__optim_field(f->name), f);
    }
    mkdir("test_tables.d", 0755);
    for (int kind = 0; kind < SP_OPTIM_KIND_COUNT; kind++) {
        const sp_optim_def *d = sp__optim_def((sp_optim_kind)kind);
        if (!d) print_error("# optimizer kind %d has no row\n", kind);
        assert_non_null(d);
        assert_true(d->name && d->step && d->checks);
        assert_int_equal(d->defaults.kind, kind);
        assert_string_equal(sp_optim_kind_name((sp_optim_kind)kind), d->name);
        for (int k = 0; k < kind; k++) assert_true(strcmp(sp_optim_table[k].name, d->name) != 0);
        /* every field the row checks exists */
        char words[256];
        snprintf(words, sizeof words, "%s", d->checks);
        for (char *w = strtok(words, " "); w; w = strtok(NULL, " ")) {
            if (!sp__optim_field(w)) print_error("# optimizer \"%s\" checks an unknown field \"%s\"\n", d->name, w);
            assert_non_null(sp__optim_field(w));
        }
        /* slots: named, unique, their conditions and initial values are fields; switch each on */
        sp_optim_config cfg = sp_optim_defaults((sp_optim_kind)kind);
        int nslots = 0;
        for (int j = 0; j < SP_OPTIM_MAX_SLOTS && d->slots[j].name; j++, nslots++) {
            assert_true(names_field(d->slots[j].when) && names_field(d->slots[j].init));
            for (int k = 0; k < j; k++) assert_true(strcmp(d->slots[k].name, d->slots[j].name) != 0);
            const sp_optim_field *f = sp__optim_field(d->slots[j].when);
            if (f && f->is_int) *(int *)((char *)&cfg + f->offset) = 1;
            else if (f) *(double *)((char *)&cfg + f->offset) = 0.5;
        }
        /* the defaults alone are valid */
        sp_params *ps = quad_params();
        sp_optim_config def = sp_optim_defaults((sp_optim_kind)kind);
        sp_optim *o = sp_optim_new(ps, &def);
        if (!o) print_error("# optimizer \"%s\": defaults refused: %s\n", d->name, sp_last_error());
        assert_non_null(o);
        sp_optim_free(o);
        /* every slot on: the row's slots, in order; five steps lower the loss */
        o = sp_optim_new(ps, &cfg);
        if (!o) print_error("# optimizer \"%s\": every slot on refused: %s\n", d->name, sp_last_error());
        assert_non_null(o);
        assert_int_equal(sp_optim_nslots(o), nslots);
        for (int j = 0; j < nslots; j++) assert_string_equal(sp_optim_slot_name(o, j), d->slots[j].name);
        double l0 = quad_grad(ps), lr = cfg.lr > 0 ? cfg.lr : 0.01;
        for (int s = 0; s < 5; s++) {
            assert_int_equal(sp_optim_step(o, 10 * lr), SP_OK);
            quad_grad(ps);
        }
        double l1 = quad_grad(ps);
        if (!(l1 < l0)) print_error("# optimizer \"%s\": loss %g -> %g\n", d->name, l0, l1);
        assert_true(l1 < l0);
        /* checkpoint round trip of values, state and step; both then take the same step */
        char path[128];
        snprintf(path, sizeof path, "test_tables.d/%s.safetensors", d->name);
        assert_int_equal(sp_save(path, ps, o, NULL), SP_OK);
        sp_params *ps2 = quad_params();
        sp_optim *o2 = sp_optim_new(ps2, &cfg);
        assert_int_equal(sp_load(path, ps2, o2, NULL), SP_OK);
        assert_int_equal(sp_optim_steps(o2), 5);
        /* stored as F32: what comes back is the F32 rounding of what was saved */
        for (int j = 0; j < nslots; j++)
            for (size_t e = 0; e < ps->numel; e++)
                assert_true((float)sp_optim_slot(o, j)[e] == (float)sp_optim_slot(o2, j)[e]);
        for (size_t e = 0; e < ps->numel; e++) assert_true((float)ps->value[e] == (float)ps2->value[e]);
        quad_grad(ps2);
        assert_int_equal(sp_optim_step(o, lr), SP_OK);
        assert_int_equal(sp_optim_step(o2, lr), SP_OK);
        for (size_t e = 0; e < ps->numel; e++) sp_test_close(ps->value[e], ps2->value[e], 1e-5, 1e-6, d->name);
        sp_optim_free(o2);
        sp_params_free(ps2);
        sp_optim_free(o);
        sp_params_free(ps);
    }
    /* outside the table: refused */
    sp_params *ps = quad_params();
    sp_optim_config bad = sp_optim_defaults(SP_SGD);
    bad.kind = SP_OPTIM_KIND_COUNT;
    assert_null(sp_optim_new(ps, &bad));
    assert_null(sp_optim_kind_name(SP_OPTIM_KIND_COUNT));
    sp_params_free(ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op_rows),
        cmocka_unit_test(test_cell_rows),
        cmocka_unit_test(test_optimizer_rows),
    };
    return cmocka_run_group_tests_name("tables", tests, NULL, NULL);
}
