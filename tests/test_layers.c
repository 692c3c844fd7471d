/* SPDX-License-Identifier: MIT */
/* test_layers.c - gradients of every recurrent cell and runner against central finite differences
 * (double build). For each case the checked parameter set holds the cell weights AND the input
 * sequence AND the initial state, so one check covers dL/dW, dL/dx and dL/dh0. The loss weights
 * every output step and every final state with fixed random numbers, T >= 5.
 * The last test checks the check: a gradient off by 1e-4 relative in one component must fail. */
#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { T = 5, B = 3, I = 3, H = 4 };

typedef enum { RUN_SEQ, RUN_BIDIR, RUN_STACK, RUN_POOL } run_kind;

typedef struct {
    const char *name;
    sp_cell_kind kind, kind2;  /* kind2: backward / second-layer cell (mixing kinds) */
    sp_cell_opts opts;
    run_kind run;
    int masked;                /* lengths {5, 0, 3} instead of all T */
    int layers, bidir;         /* RUN_STACK */
    sp_merge merge;
    int trainable_init;        /* [1, S] parameters broadcast, instead of [B, S] given states */
    int dropout;               /* RUN_STACK: between-layers + variational dropout, re-seeded per build */
} case_spec;

typedef struct {
    case_spec s;
    sp_params *ps;
    sp_tensor *x;
    sp_cell c1, c2;
    sp_rnn rnn;
    sp_tensor *init1[SP_CELL_MAX_STATE], *init2[SP_CELL_MAX_STATE];
    sp_rnn_state rinit;
} grad_case;

static const int masked_len[B] = {5, 0, 3};

/* sum(x * w), w fixed random per shape and salt */
static sp_tensor *wsum(sp_tape *t, sp_tensor *x, int salt)
{
    if (!x) return NULL;
    sp_tensor *w = sp_const(t, x->rows, x->cols);
    if (!w) return NULL;
    sp_rng r;
    sp_rng_seed(&r, 77 + (uint64_t)salt);
    sp_test_fill(w, &r, -1, 1);
    return sp_sum(t, sp_mul(t, x, w));
}

static sp_tensor *add_finals(sp_tape *t, sp_tensor *loss, sp_tensor *const *fin, int n, int salt)
{
    for (int k = 0; k < n; k++) loss = sp_add(t, loss, wsum(t, fin[k], salt + k));
    return loss;
}

static sp_tensor *build(sp_tape *t, void *ctx)
{
    grad_case *g = ctx;
    const int *len = g->s.masked ? masked_len : NULL;
    switch (g->s.run) {
    case RUN_SEQ: {
        sp_seq_opts o = {len, g->init1, 0, NULL, {}};
        sp_seq_out r;
        if (sp_seq_run(t, &g->c1, g->x, T, B, &o, &r) != SP_OK) return NULL;
        return add_finals(t, wsum(t, r.out, 1), r.final, g->c1.n_state, 10);
    }
    case RUN_BIDIR: {
        sp_bidir_opts o = {len, g->init1, g->init2, g->s.merge, NULL, {}};
        sp_bidir_out r;
        if (sp_bidir_run(t, &g->c1, &g->c2, g->x, T, B, &o, &r) != SP_OK) return NULL;
        sp_tensor *l = add_finals(t, wsum(t, r.out, 1), r.fwd_final, g->c1.n_state, 10);
        return add_finals(t, l, r.bwd_final, g->c2.n_state, 20);
    }
    case RUN_STACK: {
        sp_rng rng;
        sp_rng_seed(&rng, 5); /* the same dropout masks on every rebuild */
        sp_rnn_opts o = {len, &g->rinit, g->s.dropout ? 0.3 : 0, g->s.dropout ? 0.25 : 0, &rng, 1, {}, 0};
        sp_rnn_out r;
        if (sp_rnn_run(t, &g->rnn, g->x, T, B, &o, &r) != SP_OK) return NULL;
        sp_tensor *l = wsum(t, r.out, 1);
        for (int lay = 0; lay < g->rnn.num_layers; lay++)
            for (int d = 0; d <= g->rnn.bidirectional; d++)
                l = add_finals(t, l, r.final.s[lay][d], g->rnn.cell[lay][d].n_state, 10 * (lay * 2 + d + 1));
        return l;
    }
    case RUN_POOL: {
        sp_seq_opts o = {len, g->init1, 0, NULL, {}};
        sp_seq_out r;
        if (sp_seq_run(t, &g->c1, g->x, T, B, &o, &r) != SP_OK) return NULL;
        sp_tensor *l = wsum(t, sp_seq_last(t, r.out, T, B, len), 1);
        l = sp_add(t, l, wsum(t, sp_seq_mean(t, r.out, T, B, len), 2));
        return sp_add(t, l, wsum(t, sp_seq_max(t, r.out, T, B, len), 3));
    }
    }
    return NULL;
}

static void fill_init(sp_params *ps, const sp_cell *c, const char *tag, int trainable, sp_tensor **init)
{
    for (int k = 0; k < c->n_state; k++) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s.%s0", tag, k ? "c" : "h");
        init[k] = trainable ? NULL : sp_param(ps, nm, B, c->state_size[k]);
    }
    if (trainable) assert_int_equal(sp_cell_init_state(c, ps, tag, 0, 0, init), SP_OK);
}

static void setup_case(grad_case *g)
{
    sp_rng rng;
    sp_rng_seed(&rng, 2024);
    g->ps = sp_params_new();
    assert_non_null(g->ps);
    g->x = sp_param(g->ps, "x", T * B, I);
    if (g->s.run == RUN_STACK) {
        if (g->s.kind2 == g->s.kind) {
            assert_int_equal(
                sp_rnn_init(&g->rnn, g->ps, "rnn", g->s.kind, I, H, g->s.layers, g->s.bidir, &g->s.opts, &rng), SP_OK);
        } else { /* mixed kinds: layer 0 kind, layer 1 kind2 */
            memset(&g->rnn, 0, sizeof g->rnn);
            g->rnn.num_layers = 2;
            assert_int_equal(sp_cell_init(&g->rnn.cell[0][0], g->s.kind, g->ps, "mix", 0, 0, I, H, &g->s.opts, &rng),
                             SP_OK);
            assert_int_equal(sp_cell_init(&g->rnn.cell[1][0], g->s.kind2, g->ps, "mix", 1, 0,
                                          g->rnn.cell[0][0].out_size, 3, NULL, &rng),
                             SP_OK);
        }
        g->rnn.merge = g->s.merge;
        memset(&g->rinit, 0, sizeof g->rinit);
        if (g->s.trainable_init) assert_int_equal(sp_rnn_init_state(&g->rnn, g->ps, "rnn", &g->rinit), SP_OK);
        else /* first layer's forward state given, others zero */
            fill_init(g->ps, &g->rnn.cell[0][0], "given", 0, g->rinit.s[0][0]);
    } else {
        assert_int_equal(sp_cell_init(&g->c1, g->s.kind, g->ps, "c1", 0, 0, I, H, &g->s.opts, &rng), SP_OK);
        fill_init(g->ps, &g->c1, "c1", g->s.trainable_init, g->init1);
        if (g->s.run == RUN_BIDIR) {
            sp_cell_opts o2 = g->s.kind2 == SP_CELL_LSTM ? g->s.opts : (sp_cell_opts){0};
            int H2 = g->s.merge == SP_MERGE_CONCAT ? 3 : g->c1.out_size;
            assert_int_equal(sp_cell_init(&g->c2, g->s.kind2, g->ps, "c2", 0, 1, I, H2, &o2, &rng), SP_OK);
            fill_init(g->ps, &g->c2, "c2", g->s.trainable_init, g->init2);
        }
    }
    /* Every value (weights, inputs, states) in +-[0.1, 1): away from relu's kink, gates not saturated. */
    for (size_t k = 0; k < g->ps->numel; k++) {
        double v = 0.1 + 0.9 * sp_rng_uniform(&rng);
        g->ps->value[k] = (sp_real)(sp_rng_uniform(&rng) < 0.5 ? -v : v);
    }
}

#define LSTM_OPTS(f, p) {f, p, 0, 0}

static const case_spec cases[] = {
    {"rnn tanh", SP_CELL_RNN_TANH, 0, {0}, RUN_SEQ, 0, 0, 0, 0, 0, 0},
    {"rnn relu", SP_CELL_RNN_RELU, 0, {0}, RUN_SEQ, 0, 0, 0, 0, 0, 0},
    {"gru update-only", SP_CELL_GRU_UPDATE_ONLY, 0, {0}, RUN_SEQ, 0, 0, 0, 0, 0, 0},
    {"gru reset-before-matmul", SP_CELL_GRU_RESET_BEFORE_MATMUL, 0, {0}, RUN_SEQ, 0, 0, 0, 0, 0, 0},
    {"gru reset-after-matmul", SP_CELL_GRU_RESET_AFTER_MATMUL, 0, {0}, RUN_SEQ, 0, 0, 0, 0, 0, 0},
    {"lstm", SP_CELL_LSTM, 0, {0}, RUN_SEQ, 0, 0, 0, 0, 0, 0},
    {"lstm peephole", SP_CELL_LSTM, 0, LSTM_OPTS(SP_LSTM_PEEPHOLE, 0), RUN_SEQ, 0, 0, 0, 0, 0, 0},
    {"lstm coupled", SP_CELL_LSTM, 0, LSTM_OPTS(SP_LSTM_COUPLED, 0), RUN_SEQ, 0, 0, 0, 0, 0, 0},
    {"lstm projection", SP_CELL_LSTM, 0, LSTM_OPTS(0, 2), RUN_SEQ, 0, 0, 0, 0, 0, 0},
    {"lstm peephole+coupled+projection", SP_CELL_LSTM, 0, LSTM_OPTS(SP_LSTM_PEEPHOLE | SP_LSTM_COUPLED, 3), RUN_SEQ, 0,
     0, 0, 0, 0, 0},
    {"lstm masked", SP_CELL_LSTM, 0, {0}, RUN_SEQ, 1, 0, 0, 0, 0, 0},
    {"gru reset-after masked", SP_CELL_GRU_RESET_AFTER_MATMUL, 0, {0}, RUN_SEQ, 1, 0, 0, 0, 0, 0},
    {"rnn tanh masked, trainable h0", SP_CELL_RNN_TANH, 0, {0}, RUN_SEQ, 1, 0, 0, 0, 1, 0},
    {"lstmp trainable h0 c0", SP_CELL_LSTM, 0, LSTM_OPTS(0, 3), RUN_SEQ, 0, 0, 0, 0, 1, 0},
    {"bidir lstm + gru concat masked",
     SP_CELL_LSTM,
     SP_CELL_GRU_RESET_AFTER_MATMUL,
     {0},
     RUN_BIDIR,
     1,
     0,
     0,
     SP_MERGE_CONCAT,
     0,
     0},
    {"bidir gru sum",
     SP_CELL_GRU_RESET_BEFORE_MATMUL,
     SP_CELL_GRU_RESET_BEFORE_MATMUL,
     {0},
     RUN_BIDIR,
     0,
     0,
     0,
     SP_MERGE_SUM,
     0,
     0},
    {"bidir rnn mean masked", SP_CELL_RNN_TANH, SP_CELL_RNN_TANH, {0}, RUN_BIDIR, 1, 0, 0, SP_MERGE_MEAN, 0, 0},
    {"bidir lstm mul masked", SP_CELL_LSTM, SP_CELL_LSTM, {0}, RUN_BIDIR, 1, 0, 0, SP_MERGE_MUL, 0, 0},
    {"stack 2 x lstm, dropouts", SP_CELL_LSTM, SP_CELL_LSTM, {0}, RUN_STACK, 0, 2, 0, 0, 0, 1},
    {"stack 2 x bidir gru masked, trainable init",
     SP_CELL_GRU_RESET_AFTER_MATMUL,
     SP_CELL_GRU_RESET_AFTER_MATMUL,
     {0},
     RUN_STACK,
     1,
     2,
     1,
     SP_MERGE_CONCAT,
     1,
     0},
    {"stack 3 x bidir lstmp masked, dropouts", SP_CELL_LSTM, SP_CELL_LSTM, LSTM_OPTS(0, 2), RUN_STACK, 1, 3, 1,
     SP_MERGE_CONCAT, 0, 1},
    {"stack lstm-peephole then gru-update-only masked", SP_CELL_LSTM, SP_CELL_GRU_UPDATE_ONLY,
     LSTM_OPTS(SP_LSTM_PEEPHOLE, 0), RUN_STACK, 1, 2, 0, 0, 0, 0},
    {"pooling last+mean+max masked", SP_CELL_GRU_RESET_AFTER_MATMUL, 0, {0}, RUN_POOL, 1, 0, 0, 0, 0, 0},
    /* minGRU and minLSTM: the whole recurrence is one linear_scan (layers/min_cell.c) */
    {"mingru masked", SP_CELL_MINGRU, 0, {0}, RUN_SEQ, 1, 0, 0, 0, 0, 0},
    {"minlstm masked, trainable h0", SP_CELL_MINLSTM, 0, {0}, RUN_SEQ, 1, 0, 0, 0, 1, 0},
    {"bidir mingru + minlstm concat masked", SP_CELL_MINGRU, SP_CELL_MINLSTM, {0}, RUN_BIDIR, 1, 0, 0, SP_MERGE_CONCAT,
     0, 0},
    {"stack 2 x bidir mingru masked, dropouts", SP_CELL_MINGRU, SP_CELL_MINGRU, {0}, RUN_STACK, 1, 2, 1,
     SP_MERGE_CONCAT, 0, 1},
    {"stack minlstm then lstm masked, trainable init", SP_CELL_MINLSTM, SP_CELL_LSTM, {0}, RUN_STACK, 1, 2, 0, 0, 1, 0},
};

static void test_every_layer_matches_finite_differences(void **state)
{
    (void)state;
    int failed = 0;
    sp_gradcheck_opts o = {1e-6, 1e-8, 1e-6, -1};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        grad_case gc = {.s = cases[i]}, *g = &gc;
        setup_case(g);
        int bad = sp_gradcheck(g->ps, build, g, &o);
        if (bad != 0) {
            print_error("# layer case \"%s\": %d gradient components wrong\n", g->s.name, bad);
            failed++;
        }
        /* the input and initial state really received gradient (not all zero) */
        double gx = 0;
        for (size_t k = 0; k < sp_numel(g->x); k++) gx += fabs(g->x->grad[k]);
        if (!(gx > 0)) {
            print_error("# layer case \"%s\": no gradient reached the input\n", g->s.name);
            failed++;
        }
        sp_params_free(g->ps);
    }
    assert_int_equal(failed, 0);
}

/* The check must catch a backward that is off in a single component of a recurrent weight. */
static void test_gradcheck_catches_a_wrong_component(void **state)
{
    (void)state;
    grad_case g = {.s = cases[5]}; /* lstm */
    setup_case(&g);
    sp_gradcheck_opts o = {1e-6, 1e-8, 1e-6, (int)(g.c1.w_hh->data - g.ps->value) + 7};
    print_message("# expecting one gradcheck failure below:\n");
    assert_int_equal(sp_gradcheck(g.ps, build, &g, &o), 1);
    sp_params_free(g.ps);
}

int main(void)
{
    /* Tiny matrices: BLIS threads only add wake-up cost (100x on a loaded 2-core machine). */
    sp_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_layer_matches_finite_differences),
        cmocka_unit_test(test_gradcheck_catches_a_wrong_component),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
