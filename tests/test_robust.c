/* SPDX-License-Identifier: MIT */
/* test_robust.c - regression tests for defects the library had: sizes that
 * overflow int arithmetic (slices, tape allocations, orthogonal init, cell sizes), NULL handles
 * given to the small accessor calls, calls that returned NULL without a message, the thread cap,
 * a dot file renamed over a device or FIFO.
 * Each test here failed (crashed, overflowed or accepted the input) before its fix. */
#include "helpers.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A pid that no longer runs: a child that has exited and been reaped. */
static long dead_pid(void)
{
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    return (long)p;
}

static void test_save_targets(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_param(ps, "w", 2, 3);
    /* a FIFO (or device) is refused, not replaced by a regular file */
    unlink("robust_fifo.safetensors");
    assert_int_equal(mkfifo("robust_fifo.safetensors", 0600), 0);
    sp_clear_error();
    assert_int_equal(sp_save("robust_fifo.safetensors", ps, NULL, NULL), SP_ERR_IO);
    assert_non_null(strstr(sp_last_error(), "not a regular file"));
    struct stat st;
    assert_int_equal(stat("robust_fifo.safetensors", &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    unlink("robust_fifo.safetensors");
    /* temp files of a killed save (dead pid) are removed by the next save; a live process's stay */
    char stale[64], live[64];
    snprintf(stale, sizeof stale, "robust.safetensors.tmp.%ld.0", dead_pid());
    snprintf(live, sizeof live, "robust.safetensors.tmp.%ld.0", (long)getppid());
    FILE *f = fopen(stale, "w");
    assert_non_null(f);
    fclose(f);
    assert_non_null(f = fopen(live, "w"));
    fclose(f);
    assert_int_equal(sp_save("robust.safetensors", ps, NULL, NULL), SP_OK);
    assert_int_not_equal(access(stale, F_OK), 0);
    assert_int_equal(access(live, F_OK), 0);
    unlink(live);
    unlink("robust.safetensors");
    sp_params_free(ps);
}

/* sp_tape_dot_file renamed its temp file over any path: --dot /dev/null (as root) replaced the
 * system's /dev/null with a regular file and reported success. It now shares sp_save's writer
 * (sp_file_begin), which refuses a target that is not a regular file; a FIFO stands in for the
 * device here. */
static void test_dot_file_targets(void **state)
{
    (void)state;
    sp_tape *t = sp_tape_new();
    sp_params *ps = sp_params_new();
    sp_tensor *w = sp_param(ps, "w", 2, 2);
    sp_tensor *y = sp_add(t, w, w);
    assert_non_null(y);
    unlink("robust_fifo.dot");
    assert_int_equal(mkfifo("robust_fifo.dot", 0600), 0);
    sp_clear_error();
    assert_int_equal(sp_tape_dot_file(t, "robust_fifo.dot", 1), SP_ERR_IO);
    assert_non_null(strstr(sp_last_error(), "sp_tape_dot_file: refusing to replace"));
    assert_non_null(strstr(sp_last_error(), "a FIFO"));
    struct stat st;
    assert_int_equal(stat("robust_fifo.dot", &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    unlink("robust_fifo.dot");
    /* a regular target is written (and no temp file is left) */
    assert_int_equal(sp_tape_dot_file(t, "robust.dot", 1), SP_OK);
    assert_int_equal(stat("robust.dot", &st), 0);
    assert_true(S_ISREG(st.st_mode) && st.st_size > 0);
    unlink("robust.dot");
    /* the public writer: abort leaves the target as it was, commit replaces it, a FIFO is refused */
    sp_file *f = sp_file_begin("robust.txt");
    assert_non_null(f);
    fputs("one\n", sp_file_stream(f));
    assert_int_equal(sp_file_commit(f), SP_OK);
    f = sp_file_begin("robust.txt");
    assert_non_null(f);
    assert_non_null(strstr(sp_file_temp(f), "robust.txt.tmp."));
    fputs("two\n", sp_file_stream(f));
    sp_file_abort(f);
    char buf[8] = "";
    FILE *r = fopen("robust.txt", "r");
    assert_non_null(r);
    assert_non_null(fgets(buf, sizeof buf, r));
    fclose(r);
    assert_string_equal(buf, "one\n");
    unlink("robust.txt");
    assert_int_equal(mkfifo("robust_fifo.txt", 0600), 0);
    assert_null(sp_file_begin("robust_fifo.txt"));
    assert_int_equal(sp_file_check("robust_fifo.txt"), SP_ERR_IO);
    assert_int_equal(sp_file_check("robust_missing.txt"), SP_OK);
    unlink("robust_fifo.txt");
    sp_params_free(ps);
    sp_tape_free(t);
}

static void test_slice_overflow(void **state)
{
    (void)state;
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_const(t, 4, 8);
    assert_null(sp_slice_cols(t, x, 1, INT_MAX));
    assert_int_equal(sp_tape_status(t), SP_ERR_SHAPE);
    assert_non_null(strstr(sp_tape_errmsg(t), "out of range"));
    sp_tape_reset(t);
    x = sp_const(t, 4, 8);
    assert_null(sp_slice_rows(t, x, 2, INT_MAX));
    assert_int_equal(sp_tape_status(t), SP_ERR_SHAPE);
    sp_tape_reset(t);
    x = sp_const(t, 4, 8);
    assert_null(sp_slice_rows(t, x, INT_MAX, 2));
    assert_int_equal(sp_tape_status(t), SP_ERR_SHAPE);
    sp_tape_reset(t);
    x = sp_const(t, 4, 8); /* the edges still work */
    sp_tensor *v = sp_slice_cols(t, x, 7, 1);
    assert_non_null(v);
    assert_int_equal(v->cols, 1);
    assert_non_null(sp_slice_rows(t, x, 0, 4));
    assert_int_equal(sp_tape_status(t), SP_OK);
    sp_tape_free(t);
}

static void test_tape_alloc_huge(void **state)
{
    (void)state;
    sp_tape *t = sp_tape_new();
    assert_null(sp_tape_alloc(t, SIZE_MAX));
    assert_int_equal(sp_tape_status(t), SP_ERR_NOMEM);
    sp_tape_reset(t);
    assert_null(sp_tape_alloc(t, SIZE_MAX - 10));
    assert_int_equal(sp_tape_status(t), SP_ERR_NOMEM);
    sp_tape_reset(t);
    void *p = sp_tape_alloc(t, 100);
    assert_non_null(p);
    memset(p, 1, 100);
    sp_tape_free(t);
}

static void test_orthogonal_overflow(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_tensor *w = sp_param(ps, "w", 8, 4);
    sp_rng r;
    sp_rng_seed(&r, 1);
    sp_clear_error();
    assert_int_equal(sp_init_orthogonal(w, INT_MAX, 2, &r), SP_ERR_ARG);
    /* the message's end row is r0 + n, computed without overflowing int */
    if (!strstr(sp_last_error(), "[2147483647, 2147483649)")) fail_msg("message: %s", sp_last_error());
    assert_int_equal(sp_init_orthogonal(w, 4, INT_MAX, &r), SP_ERR_ARG);
    assert_int_equal(sp_init_orthogonal(w, 4, 4, &r), SP_OK);
    sp_params_free(ps);
}

static void test_cell_size_cap(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_rng r;
    sp_rng_seed(&r, 1);
    sp_cell c;
    /* 4 * 2^30 wraps to 0 in int: the gate count must not be computed from such a size. */
    const sp_cell_kind kinds[] = {SP_CELL_LSTM, SP_CELL_GRU_RESET_AFTER_MATMUL, SP_CELL_RNN_TANH};
    for (int k = 0; k < 3; k++) {
        sp_clear_error();
        assert_int_equal(sp_cell_init(&c, kinds[k], ps, "x", 0, 0, 3, 1 << 30, NULL, &r), SP_ERR_ARG);
        assert_non_null(strstr(sp_last_error(), "maximum"));
        assert_int_equal(sp_cell_init(&c, kinds[k], ps, "y", 0, 0, 1000000000, 3, NULL, &r), SP_ERR_ARG);
    }
    assert_int_equal(ps->count, 0);
    sp_params_free(ps);
}

static void test_null_handles(void **state)
{
    (void)state;
    assert_int_equal(sp_tape_count(NULL), 0);
    assert_int_equal(sp_tape_bytes(NULL), 0);
    assert_int_equal(sp_tape_capacity(NULL), 0);
    assert_int_equal(sp_tape_mallocs(NULL), 0);
    assert_string_equal(sp_tape_get_scope(NULL), "");
    sp_rng_seed(NULL, 1);
    assert_int_equal(sp_tape_status(NULL), SP_ERR_ARG);
    /* A NULL tape: NULL back, and a message saying why. */
    sp_clear_error();
    assert_null(sp_tape_alloc(NULL, 8));
    assert_true(strlen(sp_last_error()) > 0);
    sp_clear_error();
    assert_null(sp_const(NULL, 2, 2));
    assert_true(strlen(sp_last_error()) > 0);
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_const(t, 2, 2);
    sp_clear_error();
    assert_null(sp_tanh(NULL, x));
    assert_non_null(strstr(sp_last_error(), "tape is NULL"));
    sp_clear_error();
    assert_null(sp_slice_cols(NULL, x, 0, 1));
    assert_true(strlen(sp_last_error()) > 0);
    sp_clear_error();
    assert_null(sp_matmul(NULL, x, x));
    assert_true(strlen(sp_last_error()) > 0);
    sp_tape_free(t);
}

/* The lookups: a NULL handle or name gives NULL and a message naming the call and the argument. */
static void test_lookup_null_messages(void **state)
{
    (void)state;
    sp_params *ps = sp_params_new();
    sp_param(ps, "w", 2, 2);
    sp_optim_config c = sp_optim_defaults(SP_ADAM);
    sp_optim *o = sp_optim_new(ps, &c);
    assert_non_null(o);
#define LOOKUP(call, needle)                                                                                  \
    do {                                                                                                      \
        sp_clear_error();                                                                                     \
        int got_null_ = (call) == NULL;                                                                       \
        if (!got_null_ || !strstr(sp_last_error(), needle))                                                   \
            fail_msg("%s: %s, message \"%s\"", #call, got_null_ ? "NULL" : "not NULL", sp_last_error());      \
    } while (0)
    LOOKUP(sp_params_find(NULL, "w"), "sp_params_find: params is NULL");
    LOOKUP(sp_params_find(ps, NULL), "sp_params_find: name is NULL");
    LOOKUP(sp_optim_slot_by_name(o, NULL), "sp_optim_slot_by_name: name is NULL");
    LOOKUP(sp_optim_slot_by_name(NULL, "exp_avg"), "sp_optim_slot_by_name: optimizer is NULL");
    LOOKUP(sp_optim_get_config(NULL), "sp_optim_get_config: optimizer is NULL");
    LOOKUP(sp_optim_slot(NULL, 0), "sp_optim_slot: optimizer is NULL");
    LOOKUP(sp_optim_slot_name(NULL, 0), "sp_optim_slot_name: optimizer is NULL");
#undef LOOKUP
    /* the ordinary answers are unchanged */
    assert_non_null(sp_params_find(ps, "w"));
    assert_null(sp_params_find(ps, "v"));
    assert_non_null(sp_optim_slot_by_name(o, "exp_avg"));
    assert_non_null(sp_optim_get_config(o));
    sp_optim_free(o);
    sp_params_free(ps);
}

static void test_thread_cap(void **state)
{
    (void)state;
    int before = sp_get_threads();
    sp_clear_error();
    sp_set_threads(100000);
    assert_int_equal(sp_get_threads(), SP_MAX_THREADS);
    assert_non_null(strstr(sp_last_error(), "SP_MAX_THREADS"));
    sp_set_threads(before);
    assert_int_equal(sp_get_threads(), before);
}

/* An update of finite gradients that would overflow a parameter is refused, named, and changes
 * nothing (parameters, state, step count), for every optimizer. */
static void test_update_checked(void **state)
{
    (void)state;
    const sp_optim_kind kinds[] = {SP_SGD, SP_RMSPROP, SP_ADAGRAD, SP_ADAM, SP_ADAMW};
    for (int k = 0; k < 5; k++) {
        sp_params *ps = sp_params_new();
        sp_tensor *a = sp_param(ps, "ok", 1, 3), *w = sp_param(ps, "big", 2, 2);
        for (int i = 0; i < 3; i++) a->data[i] = 1, a->grad[i] = 0; /* a zero step: finite at any lr */
        for (int i = 0; i < 4; i++) w->data[i] = -3.4e38f, w->grad[i] = 1;
        sp_optim_config c = sp_optim_defaults(kinds[k]);
        c.momentum = kinds[k] == SP_SGD ? 0.9 : c.momentum;
        c.weight_decay = 0;
        sp_optim *o = sp_optim_new(ps, &c);
        assert_non_null(o);
        double lr = 3e37;
        sp_clear_error();
        assert_int_equal(sp_optim_step(o, lr), SP_ERR_NONFINITE);
        if (!strstr(sp_last_error(), "\"big\"")) fail_msg("kind %d: %s", k, sp_last_error());
        assert_int_equal(sp_optim_steps(o), 0);
        for (int i = 0; i < 3; i++) assert_true(a->data[i] == 1);
        for (int i = 0; i < 4; i++) assert_true(w->data[i] == -3.4e38f);
        for (int s = 0; s < sp_optim_nslots(o); s++)
            for (size_t i = 0; i < ps->numel; i++) assert_true(isfinite(sp_optim_slot(o, s)[i]));
        /* a normal step still works */
        assert_int_equal(sp_optim_step(o, 1e-3), SP_OK);
        assert_int_equal(sp_optim_steps(o), 1);
        sp_optim_free(o);
        sp_params_free(ps);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slice_overflow),   cmocka_unit_test(test_tape_alloc_huge),
        cmocka_unit_test(test_orthogonal_overflow), cmocka_unit_test(test_cell_size_cap),
        cmocka_unit_test(test_null_handles),     cmocka_unit_test(test_thread_cap),
        cmocka_unit_test(test_lookup_null_messages),
        cmocka_unit_test(test_save_targets),     cmocka_unit_test(test_update_checked),
        cmocka_unit_test(test_dot_file_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
