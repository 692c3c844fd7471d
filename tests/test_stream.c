/* SPDX-License-Identifier: MIT */
/* test_stream.c - streaming inference in the float build, where small products run from packed
 * copies of the weights (ops/packed.c) that the stream keeps from step to step (sp_tape_rewind):
 * its outputs over 40 steps equal sp_rnn_run's on the whole sequence to float rounding, for a
 * 2-layer LSTM, GRU, minGRU and minLSTM (whose run is one gated_scan over all steps, whose step is
 * a product and the same math from elementwise ops) at batch 1 and 3, and the stream's tape stays the same size; token
 * input through sp_stream_set_table equals the stream fed the embedding rows, bit for bit;
 * sp_stream_run (whole sequences, bidirectional too, with lengths) equals sp_rnn_run. */
#include "helpers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { T = 40, I = 8, H = 32 };

static void test_stream_equals_the_tape_path_in_float(void **state)
{
    (void)state;
    sp_cell_kind kinds[4] = {SP_CELL_LSTM, SP_CELL_GRU_RESET_AFTER_MATMUL, SP_CELL_MINGRU, SP_CELL_MINLSTM};
    for (int k = 0; k < 4; k++)
        for (int B = 1; B <= 3; B += 2) {
            sp_params *ps = sp_params_new();
            sp_rng rng;
            sp_rng_seed(&rng, 11 + k);
            sp_rnn rnn;
            assert_int_equal(sp_rnn_init(&rnn, ps, "s", kinds[k], I, H, 2, 0, NULL, &rng), SP_OK);
            sp_tape *t = sp_tape_new();
            sp_tensor *x = sp_test_const(t, T * B, I, 5);
            sp_rnn_out r;
            assert_int_equal(sp_rnn_run(t, &rnn, x, T, B, NULL, &r), SP_OK);
            sp_stream *s = sp_stream_new(&rnn, B, NULL);
            assert_non_null(s);
            size_t bytes = 0;
            double worst = 0;
            for (int step = 0; step < T; step++) {
                sp_tape *st = sp_stream_begin(s);
                sp_tensor *xs = sp_const(st, B, I);
                memcpy(xs->data, sp_at(x, step * B, 0), sizeof(sp_real) * B * I);
                sp_tensor *h = sp_stream_step(s, xs);
                assert_non_null(h);
                for (int i = 0; i < B; i++)
                    for (int j = 0; j < H; j++) {
                        double a = *sp_at(h, i, j), b = *sp_at(r.out, step * B + i, j);
                        worst = fmax(worst, fabs(a - b));
                        sp_test_close(a, b, 1e-4, 1e-5, "stream vs tape (float)");
                    }
                if (step == 1) bytes = sp_tape_bytes(st);
                if (step > 1) assert_true(sp_tape_bytes(st) == bytes);
            }
            print_message("# %s B=%d: max |stream - tape| over %d steps %.2g\n", sp_cell_kind_name(&rnn.cell[0][0]), B, T,
                          worst);
            sp_stream_free(s);
            sp_tape_free(t);
            sp_params_free(ps);
        }
}

static void test_stream_errors(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_rng rng;
    sp_rng_seed(&rng, 1);
    sp_rnn rnn;
    assert_int_equal(sp_rnn_init(&rnn, ps, "b", SP_CELL_LSTM, I, H, 1, 1, NULL, &rng), SP_OK);
    assert_null(sp_stream_new(&rnn, 1, NULL)); /* bidirectional: a stream cannot see the future */
    assert_non_null(strstr(sp_last_error(), "stream"));
    rnn.bidirectional = 0;
    sp_stream *s = sp_stream_new(&rnn, 2, NULL);
    sp_tape *st = sp_stream_begin(s);
    assert_null(sp_stream_step(s, sp_const(st, 3, I))); /* 3 rows for B = 2 */
    assert_non_null(strstr(sp_tape_errmsg(st), "B = 2"));
    assert_null(sp_stream_step(s, NULL)); /* no begin */
    sp_stream_free(s);
    sp_params_free(ps);
}

/* Token input through the table (sp_stream_set_table): bit for bit the stream fed the embedding
 * rows, for an LSTM and a GRU at B = 2 with a padding id (-1: a zero row); errors named. */
static void test_stream_table_equals_embedding_rows(void **state)
{
    (void)state;
    enum { V = 7, E = 5 };
    sp_cell_kind kinds[2] = {SP_CELL_LSTM, SP_CELL_GRU_RESET_AFTER_MATMUL};
    for (int k = 0; k < 2; k++) {
        sp_params *ps = sp_params_new();
        sp_rng rng;
        sp_rng_seed(&rng, 21 + k);
        sp_embed emb;
        sp_rnn rnn;
        assert_int_equal(sp_embed_init(&emb, ps, "e", V, E, &rng), SP_OK);
        assert_int_equal(sp_rnn_init(&rnn, ps, "s", kinds[k], E, H, 2, 0, NULL, &rng), SP_OK);
        sp_stream *a = sp_stream_new(&rnn, 2, NULL), *b = sp_stream_new(&rnn, 2, NULL);
        assert_non_null(a), assert_non_null(b);
        assert_null(sp_stream_step_ids(b, (int[]){0, 1})); /* no table yet (and no begin) */
        sp_tape *tb = sp_stream_begin(b);
        assert_null(sp_stream_step_ids(b, (int[]){0, 1}));
        assert_non_null(strstr(sp_tape_errmsg(tb), "sp_stream_set_table"));
        assert_int_equal(sp_stream_set_table(b, emb.weight), SP_OK);
        double worst = 0;
        for (int step = 0; step < 30; step++) {
            int ids[2] = {step % V, step % 4 == 3 ? -1 : (step * 3 + 1) % V};
            sp_tape *ta = sp_stream_begin(a);
            sp_tensor *ha = sp_stream_step(a, sp_embed_forward(ta, &emb, ids, 2));
            sp_stream_begin(b);
            sp_tensor *hb = sp_stream_step_ids(b, ids);
            assert_non_null(ha), assert_non_null(hb);
            for (int i = 0; i < 2 * H; i++) worst = fmax(worst, fabs((double)ha->data[i] - hb->data[i]));
            assert_memory_equal(ha->data, hb->data, sizeof(sp_real) * 2 * H);
        }
        print_message("# %s table: max |ids - rows| %.2g\n", sp_cell_kind_name(&rnn.cell[0][0]), worst);
        tb = sp_stream_begin(b);
        assert_null(sp_stream_step_ids(b, (int[]){V, 0})); /* past the table */
        assert_non_null(strstr(sp_tape_errmsg(tb), "outside the table"));
        sp_tape *t = sp_tape_new();
        assert_int_equal(sp_stream_set_table(b, sp_const(t, V, E + 1)), SP_ERR_SHAPE); /* wrong width */
        assert_non_null(strstr(sp_last_error(), "stream table"));
        sp_tape_free(t);
        sp_stream_free(a), sp_stream_free(b);
        sp_params_free(ps);
    }
}

/* sp_stream_run against sp_rnn_run (evaluation) on whole sequences with lengths: a 2-layer
 * bidirectional LSTM (concat), a bidirectional GRU (sum, then mean), a 2-layer LSTM with zoneout:
 * every output equal (==, so a padding zero may differ in sign). */
static void test_stream_run_equals_rnn_run(void **state)
{
    (void)state;
    enum { TT = 17, B = 3 };
    const int len[B] = {TT, 9, 1};
    struct {
        sp_cell_kind kind;
        int layers, bidir;
        sp_merge merge;
        double zoneout;
    } cases[] = {{SP_CELL_LSTM, 2, 1, SP_MERGE_CONCAT, 0},
                 {SP_CELL_GRU_RESET_AFTER_MATMUL, 1, 1, SP_MERGE_SUM, 0},
                 {SP_CELL_GRU_RESET_AFTER_MATMUL, 2, 1, SP_MERGE_MEAN, 0},
                 {SP_CELL_LSTM, 2, 0, SP_MERGE_CONCAT, 0.3}};
    for (int k = 0; k < 4; k++) {
        sp_params *ps = sp_params_new();
        sp_rng rng;
        sp_rng_seed(&rng, 31 + k);
        sp_rnn rnn;
        assert_int_equal(sp_rnn_init(&rnn, ps, "r", cases[k].kind, I, H, cases[k].layers, cases[k].bidir, NULL, &rng),
                         SP_OK);
        rnn.merge = cases[k].merge;
        if (cases[k].merge != SP_MERGE_CONCAT) /* layer 2 reads H columns */
            for (int d = 0; d < 2 && cases[k].layers > 1; d++) {
                sp_params *p2 = ps;
                assert_int_equal(sp_cell_init(&rnn.cell[1][d], cases[k].kind, p2, "r2", 1, d, H, H, NULL, &rng), SP_OK);
            }
        sp_cell_noise nz = {cases[k].zoneout, cases[k].zoneout, 0, 0, NULL, 0, 0};
        sp_tape *t = sp_tape_new();
        sp_tensor *x = sp_test_const(t, TT * B, I, 7 + k);
        sp_rnn_opts ro = {.lengths = len, .noise = nz};
        sp_rnn_out r;
        assert_int_equal(sp_rnn_run(t, &rnn, x, TT, B, &ro, &r), SP_OK);
        int O = sp_rnn_out_size(&rnn);
        sp_real *out = malloc(sizeof(sp_real) * TT * B * O);
        assert_int_equal(sp_stream_run(&rnn, x->data, TT, B, len, &nz, out), SP_OK);
        double worst = 0;
        int differ = 0;
        for (int i = 0; i < TT * B; i++)
            for (int j = 0; j < O; j++) {
                double a = out[(size_t)i * O + j], b = *sp_at(r.out, i, j);
                worst = fmax(worst, fabs(a - b));
                differ += a != b;
            }
        print_message("# stream run %s layers %d bidir %d merge %d zoneout %g: max |run - tape| %.2g\n",
                      sp_cell_kind_name(&rnn.cell[0][0]), cases[k].layers, cases[k].bidir, (int)cases[k].merge,
                      cases[k].zoneout, worst);
        assert_int_equal(differ, 0);
        free(out);
        sp_tape_free(t);
        sp_params_free(ps);
    }
    sp_rnn bad = {0};
    assert_int_equal(sp_stream_run(&bad, NULL, 1, 1, NULL, NULL, NULL), SP_ERR_ARG);
    assert_non_null(strstr(sp_last_error(), "stream run"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_equals_the_tape_path_in_float),
        cmocka_unit_test(test_stream_errors),
        cmocka_unit_test(test_stream_table_equals_embedding_rows),
        cmocka_unit_test(test_stream_run_equals_rnn_run),
    };
    return cmocka_run_group_tests_name("stream", tests, NULL, NULL);
}
