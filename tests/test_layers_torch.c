/* SPDX-License-Identifier: MIT */
/* test_layers_torch.c - forward parity with PyTorch (double build). spool builds a stack with
 * PyTorch names (empty prefix), writes its parameters and a padded batch to a text file, and
 * tests/test_layers_torch.py loads the same state_dict into torch.nn.RNN/GRU/LSTM (strict, so
 * names and shapes must match) and runs it on pack_padded_sequence of the batch (unsorted
 * lengths). Outputs and final states (h_n, c_n per layer and direction) must agree to 1e-10.
 * Variants torch lacks are compared with the script's own transcription of their equations.
 * Skips (77) when python3 or torch is missing. */
#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *mode;     /* torch mode, or GRU_RB / GRU_UO / LSTM_VAR for the script's own equations */
    sp_cell_kind kind;
    int flags, P, L, D;
} parity_case;

enum { T = 5, B = 3, I = 3, H = 4 };

static const parity_case cases[] = {
    {"RNN_TANH", SP_CELL_RNN_TANH, 0, 0, 1, 1},
    {"RNN_RELU", SP_CELL_RNN_RELU, 0, 0, 2, 2},
    {"GRU", SP_CELL_GRU_RESET_AFTER_MATMUL, 0, 0, 2, 2},
    {"LSTM", SP_CELL_LSTM, 0, 0, 2, 2},
    {"LSTM", SP_CELL_LSTM, 0, 2, 2, 2},
    {"GRU_RB", SP_CELL_GRU_RESET_BEFORE_MATMUL, 0, 0, 1, 2},
    {"GRU_UO", SP_CELL_GRU_UPDATE_ONLY, 0, 0, 1, 1},
    {"LSTM_VAR", SP_CELL_LSTM, SP_LSTM_PEEPHOLE, 0, 1, 2},
    {"LSTM_VAR", SP_CELL_LSTM, SP_LSTM_COUPLED, 0, 1, 1},
    {"LSTM_VAR", SP_CELL_LSTM, SP_LSTM_PEEPHOLE | SP_LSTM_COUPLED, 2, 1, 2},
};

static const char *script_path(void)
{
    static char path[1024];
    const char *src = __FILE__; /* "../tests/test_layers_torch.c" relative to the build dir, or absolute */
    const char *env = getenv("SPOOL_SOURCE_DIR");
    if (env) snprintf(path, sizeof path, "%s/tests/test_layers_torch.py", env);
    else snprintf(path, sizeof path, "%.*s.py", (int)(strlen(src) - 2), src);
    if (access(path, R_OK) == 0) return path;
    /* tests run from <build>/ or <build>/tests: try one more level up */
    static char up[1100];
    snprintf(up, sizeof up, "../%s", path);
    if (access(up, R_OK) == 0) return up;
    /* <source>/<build>/tests/test_layers_torch -> <source>/tests/test_layers_torch.py */
    char exe[900];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = 0;
    for (int k = 0; k < 3; k++) {
        char *slash = strrchr(exe, '/');
        if (!slash) return NULL;
        *slash = 0;
    }
    snprintf(up, sizeof up, "%s/tests/test_layers_torch.py", exe);
    return access(up, R_OK) == 0 ? up : NULL;
}

/* The first of $SPOOL_PYTHON, python3, /usr/bin/python3 that can import torch, or NULL. */
static const char *torch_python(void)
{
    const char *env = getenv("SPOOL_PYTHON");
    const char *cand[3] = {env, "python3", "/usr/bin/python3"};
    static char cmd[600];
    for (int k = 0; k < 3; k++) {
        if (!cand[k] || !*cand[k]) continue;
        snprintf(cmd, sizeof cmd, "%s -c 'import torch' >/dev/null 2>&1", cand[k]);
        if (system(cmd) == 0) return cand[k];
    }
    return NULL;
}

static void write_tensor(FILE *f, const char *tag, const char *name, const sp_tensor *x)
{
    fprintf(f, "%s %s %d %d\n", tag, name, x->rows, x->cols);
    for (int i = 0; i < x->rows; i++)
        for (int j = 0; j < x->cols; j++) fprintf(f, "%.17g%c", (double)*sp_at(x, i, j), j + 1 == x->cols ? '\n' : ' ');
}

/* Reads "out R C" + values, then "final l d k R C" + values; compares with spool's tensors. */
static int compare(const char *path, const sp_tensor *out, const sp_rnn_state *fin, const char *what)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int bad = 0, R, C, finals = 0;
    char tag[16];
    while (fscanf(f, "%15s", tag) == 1) {
        const sp_tensor *x;
        if (strcmp(tag, "out") == 0) {
            if (fscanf(f, "%d %d", &R, &C) != 2) break;
            x = out;
        } else {
            int l, d, k;
            if (fscanf(f, "%d %d %d %d %d", &l, &d, &k, &R, &C) != 5) break;
            x = fin->s[l][d][k];
            finals++;
        }
        if (!x || x->rows != R || x->cols != C) {
            print_error("# %s: %s shape [%d x %d] vs torch [%d x %d]\n", what, tag, x ? x->rows : 0, x ? x->cols : 0, R,
                        C);
            fclose(f);
            return -1;
        }
        for (int i = 0; i < R; i++)
            for (int j = 0; j < C; j++) {
                double v;
                if (fscanf(f, "%lf", &v) != 1) bad++;
                double a = *sp_at(x, i, j);
                if (!(fabs(a - v) <= 1e-10 + 1e-10 * fabs(v))) {
                    if (bad < 3) print_error("# %s: %s[%d][%d] spool %.12g torch %.12g\n", what, tag, i, j, a, v);
                    bad++;
                }
            }
    }
    fclose(f);
    return finals > 0 ? bad : -1;
}

#define NCASE (int)(sizeof cases / sizeof cases[0])

static void test_matches_pytorch(void **state)
{
    (void)state;
    const char *script = script_path(), *py = torch_python();
    if (!script || !py) {
        print_message("# skip: python3 with torch or tests/test_layers_torch.py not found\n");
        skip();
    }
    const int len[B] = {3, 5, 1}; /* unsorted; torch's packing needs len >= 1 */
    char in[NCASE][64], outp[NCASE][64], cmd[4096];
    sp_params *ps[NCASE];
    sp_rnn r[NCASE];
    sp_tape *t[NCASE];
    sp_rnn_out res[NCASE];
    int n = snprintf(cmd, sizeof cmd, "%s '%s'", py, script);
    for (int ci = 0; ci < NCASE; ci++) {
        const parity_case *pc = &cases[ci];
        snprintf(in[ci], sizeof in[ci], "/tmp/spool_lt_in_%d_%d.txt", (int)getpid(), ci);
        snprintf(outp[ci], sizeof outp[ci], "/tmp/spool_lt_out_%d_%d.txt", (int)getpid(), ci);
        n += snprintf(cmd + n, sizeof cmd - n, " %s %s", in[ci], outp[ci]);
        ps[ci] = sp_params_new();
        sp_rng rng;
        sp_rng_seed(&rng, 500 + ci);
        sp_cell_opts o = {pc->flags, pc->P, 0, 0};
        assert_int_equal(sp_rnn_init(&r[ci], ps[ci], "", pc->kind, I, H, pc->L, pc->D - 1, &o, &rng), SP_OK);
        t[ci] = sp_tape_new();
        sp_tensor *x = sp_const(t[ci], T * B, I);
        sp_test_fill(x, &rng, -1, 1);
        sp_rnn_opts ro = {len, NULL, 0, 0, NULL, 0, {}, 0};
        assert_int_equal(sp_rnn_run(t[ci], &r[ci], x, T, B, &ro, &res[ci]), SP_OK);
        FILE *f = fopen(in[ci], "w");
        assert_non_null(f);
        fprintf(f, "config mode %s flags %d L %d D %d T %d B %d I %d H %d P %d\nlengths", pc->mode, pc->flags, pc->L,
                pc->D, T, B, I, H, pc->P);
        for (int b = 0; b < B; b++) fprintf(f, " %d", len[b]);
        fputc('\n', f);
        for (int k = 0; k < ps[ci]->count; k++) write_tensor(f, "param", ps[ci]->list[k]->name, ps[ci]->list[k]);
        write_tensor(f, "x", "x", x);
        fclose(f);
    }
    int rc = system(cmd), failed = 0;
    for (int ci = 0; ci < NCASE; ci++) {
        const parity_case *pc = &cases[ci];
        char what[96];
        snprintf(what, sizeof what, "%s (%s, L=%d, D=%d)", pc->mode, sp_cell_kind_name(&r[ci].cell[0][0]), pc->L,
                 pc->D);
        int bad = rc == 0 ? compare(outp[ci], res[ci].out, &res[ci].final, what) : -1;
        if (bad != 0) {
            print_error("# parity case %s: %s\n", what, rc ? "script failed" : "values differ");
            failed++;
        } else {
            print_message("# %s: matches\n", what);
        }
        sp_tape_free(t[ci]);
        sp_params_free(ps[ci]);
        remove(in[ci]);
        remove(outp[ci]);
    }
    assert_int_equal(failed, 0);
}

int main(void)
{
    /* Tiny matrices: BLIS threads only add wake-up cost (100x on a loaded 2-core machine). */
    sp_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_pytorch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
