/* SPDX-License-Identifier: MIT */
/* test_ln_torch.c - the layer-normalised cells against an independent PyTorch composition of
 * the same equations (tests/test_ln_torch.py: torch.nn.functional.layer_norm and the gates
 * written out), double build, T = 6 steps, gains and biases away from their 1 / 0 init.
 * Arguments: python3 and the script (meson passes both); exit 77 (skip) if torch is missing. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

enum { T = 6, B = 3, I = 4, H = 5 };

static const char *py, *script;

static void put(FILE *f, const char *name, const sp_tensor *x)
{
    fprintf(f, "tensor %s %d %d\n", name, x->rows, x->cols);
    for (int i = 0; i < x->rows; i++)
        for (int j = 0; j < x->cols; j++) fprintf(f, "%.17g%c", (double)*sp_at(x, i, j), j + 1 == x->cols ? '\n' : ' ');
}

static void test_ln_cells_match_a_pytorch_composition(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "ln_torch_%d.txt", (int)getpid()); /* in the build directory */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    sp_cell_kind kinds[2] = {SP_CELL_LN_LSTM, SP_CELL_LN_GRU};
    for (int k = 0; k < 2; k++) {
        sp_params *ps = sp_params_new();
        sp_rng rng;
        sp_rng_seed(&rng, 90 + k);
        sp_cell c;
        assert_int_equal(sp_cell_init(&c, kinds[k], ps, "", 0, 0, I, H, NULL, &rng), SP_OK);
        for (int j = 0; j < 3; j++) {
            if (c.ln_gain[j]) sp_test_fill(c.ln_gain[j], &rng, 0.5, 1.5);
            if (c.ln_bias[j]) sp_test_fill(c.ln_bias[j], &rng, -0.5, 0.5);
        }
        sp_tape *t = sp_tape_new();
        sp_tensor *x = sp_test_const(t, T * B, I, 7 + k);
        sp_seq_out r;
        assert_int_equal(sp_seq_run(t, &c, x, T, B, NULL, &r), SP_OK);
        fprintf(f, "case %s %d %d %d %d\n", sp_cell_kind_name(&c), T, B, I, H);
        for (int p = 0; p < ps->count; p++) put(f, ps->list[p]->name, ps->list[p]);
        put(f, "x", x);
        put(f, "out", r.out);
        put(f, "h_final", r.final[0]);
        if (c.n_state > 1) put(f, "c_final", r.final[1]);
        sp_tape_free(t);
        sp_params_free(ps);
    }
    fclose(f);
    int rc = sp_test_python(py, script, path);
    if (rc == 77) {
        print_message("# skip: no torch for %s\n", py);
        skip();
    }
    assert_int_equal(rc, 0);
}

int main(int argc, char **argv)
{
    if (!sp_test_python_args(argc, argv, &py, &script)) return 2;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_ln_cells_match_a_pytorch_composition)};
    return cmocka_run_group_tests_name("ln_torch", tests, NULL, NULL);
}
