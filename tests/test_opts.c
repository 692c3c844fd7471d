/* SPDX-License-Identifier: MIT */
/* test_opts.c - the shared command-line layer of the programs (examples/common/opts.c) on a
 * made-up program with every kind of option: defaults applied, --opt value and --opt=value,
 * flags, commands and per-command options, positional arguments and "--", the range checks of
 * every number type (integer overflow, trailing junk, NaN/inf, negatives, the thread cap), the
 * messages naming the option, choices, callbacks, and the exit statuses of --help, --version,
 * --info and errors. Then every installed program is run with --version, --help, --info and a
 * few bad numbers (they are found through SPOOL_PROGRAMS, a list of paths). */
#include "helpers.h"
#include "common/opts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    int n, flag, threads;
    long big;
    uint64_t seed;
    double x;
    const char *name, *kind;
    char buf[8];
    int calls;
} opts;

static int count_calls(const char *v, void *base, char *err, size_t errn)
{
    if (!strcmp(v, "bad")) {
        snprintf(err, errn, "--list: 'bad' is refused");
        return -1;
    }
    ((opts *)base)->calls++;
    return 0;
}

#define T opts
static const ex_opt OPTS[] = {
    EX_OPT("n", EX_INT, T, n, "7", 1, 100, 1, "N", "a count"),
    EX_OPT("flag", EX_FLAG, T, flag, NULL, 0, 0, 1, NULL, "a flag"),
    EX_OPT("threads", EX_INT, T, threads, "0", 0, EX_MAX_THREADS, 0, "N", "threads"),
    EX_OPT("big", EX_LONG, T, big, "5", 0, 5e9, 1, "N", "a long"),
    EX_OPT("seed", EX_U64, T, seed, "1", 0, 0, 0, "S", "a seed"),
    EX_OPT("x", EX_DBL, T, x, "0.5", 0, 1, 1 | 2, "X", "a real"),
    EX_OPT("name", EX_STR, T, name, "none", 0, 0, 2, "S", "a string"),
    EX_CHOICE("kind", EX_STR, T, kind, "lstm", "lstm|gru|rnn", 1, "K", "a choice"),
    EX_OPT("buf", EX_BUF, T, buf, "ab", 0, 0, 1, "S", "a short buffer"),
    EX_CALLBACK("list", count_calls, NULL, 1, "ITEM", "repeatable"),
};
#undef T
static const char *const CMDS[] = {"train", "eval", NULL};
static const ex_cli CLI = {"prog", "usage: prog COMMAND\n", NULL, CMDS, NULL, OPTS, sizeof OPTS / sizeof OPTS[0], 2, "files"};

/* Runs the parser on a command line; stderr goes to a file whose text ends in *msg. */
static char msg[2048];
static int parse(opts *o, ex_args *a, const char *const *argv_in)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"prog";
    for (; argv_in[argc - 1]; argc++) argv[argc] = (char *)argv_in[argc - 1];
    argv[argc] = NULL;
    memset(o, 0, sizeof *o);
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    int rc = ex_cli_parse(&CLI, argc, argv, o, a);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(msg, 1, sizeof msg - 1, tmp);
    msg[n] = 0;
    fclose(tmp);
    return rc;
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect_error(const char *const *argv, const char *what)
{
    opts o;
    ex_args a;
    int rc = parse(&o, &a, argv);
    if (rc != EX_EXIT_USAGE || !strstr(msg, what)) {
        print_message("# rc %d, message '%s', expected '%s'\n", rc, msg, what);
        fail();
    }
    assert_non_null(strstr(msg, "prog: "));
}

static void test_defaults_and_forms(void **state)
{
    (void)state;
    opts o;
    ex_args a;
    assert_int_equal(parse(&o, &a, ARGS("train")), -1);
    assert_int_equal(a.cmd, 0);
    assert_int_equal(o.n, 7);
    assert_int_equal(o.big, 5);
    assert_true(o.seed == 1);
    assert_true(o.x == 0.5);
    assert_string_equal(o.name, "none");
    assert_string_equal(o.kind, "lstm");
    assert_string_equal(o.buf, "ab");
    assert_int_equal(o.flag, 0);
    assert_false(a.given[0]);

    assert_int_equal(parse(&o, &a, ARGS("train", "--n", "12", "--x=0.25", "--flag", "--big=4000000000",
                                        "--seed", "18446744073709551615", "--kind=gru", "--buf", "xyz",
                                        "--list", "a", "--list=b", "f1", "--", "--n")), -1);
    assert_int_equal(o.n, 12);
    assert_true(o.x == 0.25);
    assert_int_equal(o.flag, 1);
    assert_true(o.big == 4000000000L);
    assert_true(o.seed == UINT64_MAX);
    assert_string_equal(o.kind, "gru");
    assert_string_equal(o.buf, "xyz");
    assert_int_equal(o.calls, 2);
    assert_int_equal(a.npos, 2); /* after "--", "--n" is an argument */
    assert_string_equal(a.pos[0], "f1");
    assert_string_equal(a.pos[1], "--n");
    assert_true(a.given[0] && a.given[1] && !a.given[2]);
    assert_true(ex_given(&CLI, &a, "x") && !ex_given(&CLI, &a, "threads"));

    assert_int_equal(parse(&o, &a, ARGS("eval", "--name=a=b", "--x", "1")), -1);
    assert_int_equal(a.cmd, 1);
    assert_string_equal(o.name, "a=b");
    assert_true(o.x == 1);

    char buf[64];
    ex_opt_format(ex_opt_find(&CLI, "x"), &o, buf, sizeof buf);
    assert_string_equal(buf, "1");
    assert_int_equal(ex_opt_set(ex_opt_find(&CLI, "n"), &o, "99", buf, sizeof buf), 0);
    assert_int_equal(o.n, 99);
}

static void test_numbers_checked(void **state)
{
    (void)state;
    /* integers: overflow (of int and of long), junk, empty, floats, range */
    expect_error(ARGS("train", "--n", "3000000000"), "--n expects an integer in 1..100, got '3000000000' (out of range)");
    expect_error(ARGS("train", "--n", "99999999999999999999999"), "(out of range)");
    expect_error(ARGS("train", "--n", "12x"), "not a valid integer");
    expect_error(ARGS("train", "--n="), "--n expects an integer");
    expect_error(ARGS("train", "--n", "1e3"), "not a valid integer");
    expect_error(ARGS("train", "--n", "0"), "out of range");
    expect_error(ARGS("train", "--n", "-1"), "--n expects an integer in 1..100, got '-1'");
    expect_error(ARGS("train", "--big", "5000000001"), "--big expects an integer in 0..5000000000");
    expect_error(ARGS("train", "--big", "-1"), "--big");
    /* threads: capped at the documented maximum */
    char big[32];
    snprintf(big, sizeof big, "%d", EX_MAX_THREADS + 1);
    expect_error(ARGS("train", "--threads", big), "--threads expects an integer in 0..");
    expect_error(ARGS("train", "--threads", "-2"), "--threads");
    /* seeds: no sign, no overflow */
    expect_error(ARGS("train", "--seed", "-1"), "--seed expects an integer in 0..18446744073709551615");
    expect_error(ARGS("train", "--seed", "18446744073709551616"), "out of range");
    expect_error(ARGS("train", "--seed", " -1"), "--seed");
    /* reals: NaN, infinities, overflow, range, junk */
    expect_error(ARGS("train", "--x", "nan"), "--x expects a number in 0..1, got 'nan' (not a finite number)");
    expect_error(ARGS("train", "--x", "inf"), "not a finite number");
    expect_error(ARGS("train", "--x", "1e300000"), "not a finite number");
    expect_error(ARGS("train", "--x", "1.5"), "out of range");
    expect_error(ARGS("train", "--x", "-0.1"), "out of range");
    expect_error(ARGS("train", "--x", "0.5.1"), "not a valid number");
}

static void test_usage_errors(void **state)
{
    (void)state;
    expect_error(ARGS("fly"), "unknown command 'fly'");
    expect_error(ARGS("--n", "3"), "a command is needed");
    expect_error(ARGS("train", "--bogus"), "unknown option '--bogus'");
    expect_error(ARGS("train", "--bogus=1"), "unknown option '--bogus'");
    expect_error(ARGS("train", "-n", "3"), "unknown option '-n'");
    expect_error(ARGS("train", "--n"), "option --n needs a value");
    expect_error(ARGS("train", "--flag=1"), "option --flag takes no value");
    expect_error(ARGS("eval", "--n", "3"), "option --n does not apply to command 'eval'");
    expect_error(ARGS("train", "a", "b", "c"), "unexpected argument 'c' (at most 2 files)");
    expect_error(ARGS("train", "--kind", "lsmt"), "--kind expects lstm, gru or rnn, got 'lsmt'");
    expect_error(ARGS("train", "--buf", "12345678"), "--buf: value longer than 7 bytes");
    expect_error(ARGS("train", "--list", "bad"), "--list: 'bad' is refused");
    expect_error(ARGS("train", "--n", "500"), "(try prog --help)");
    opts o;
    ex_args a;
    assert_int_equal(parse(&o, &a, ARGS("")), EX_EXIT_USAGE); /* an empty command */
}

/* --help, --version, --info: exit 0 with their text on stdout, wherever they are */
static void test_global_options(void **state)
{
    (void)state;
    const char *cases[][3] = {{"--help", "train", "--n"}, {"train", "--version", NULL}, {"--info", NULL, NULL},
                              {"help", NULL, NULL}, {"eval", "-h", NULL}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        fflush(stdout);
        FILE *tmp = tmpfile();
        int saved = dup(1);
        dup2(fileno(tmp), 1);
        char *argv[5] = {(char *)"prog"};
        int argc = 1;
        for (int i = 0; i < 3 && cases[k][i]; i++) argv[argc++] = (char *)cases[k][i];
        opts o;
        ex_args a;
        int rc = ex_cli_parse(&CLI, argc, argv, &o, &a);
        fflush(stdout);
        dup2(saved, 1);
        close(saved);
        rewind(tmp);
        char out[4096];
        size_t n = fread(out, 1, sizeof out - 1, tmp);
        out[n] = 0;
        fclose(tmp);
        assert_int_equal(rc, 0);
        if (!strcmp(cases[k][0], "--info")) assert_non_null(strstr(out, "spool " SP_VERSION));
        else if (cases[k][1] && !strcmp(cases[k][1], "--version")) assert_string_equal(out, "prog (spool) " SP_VERSION "\n");
        else {
            assert_non_null(strstr(out, "usage: prog COMMAND"));
            assert_non_null(strstr(out, "--n N"));
            assert_non_null(strstr(out, "(default: 7)"));
            assert_non_null(strstr(out, "Exit status: 0 success, 1 the run failed,\n2 bad command line"));
        }
    }
}

/* Every program built from the tree: --version, --help and --info exit 0, and bad numbers give
 * status 2 and a message naming the option. */
static int run_prog(const char *cmdline, char *out, size_t n)
{
    char full[4200];
    snprintf(full, sizeof full, "%s 2>&1", cmdline);
    FILE *p = popen(full, "r");
    assert_non_null(p);
    size_t k = fread(out, 1, n - 1, p);
    out[k] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1000;
}

static void test_every_program(void **state)
{
    (void)state;
    const char *list = getenv("SPOOL_PROGRAMS");
    if (!list || !*list) skip();
    char *copy = strdup(list), out[65536], cmd[4096];
    int programs = 0;
    for (char *path = strtok(copy, ":"); path; path = strtok(NULL, ":")) {
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        /* the command word of the programs that have one */
        const char *sub = !strcmp(base, "spool-charlm") || !strcmp(base, "spool-ner") || !strcmp(base, "spool-sentiment") ||
                          !strcmp(base, "spool-wordlm") || !strcmp(base, "spool-tutorial") ? "train " : "";
        snprintf(cmd, sizeof cmd, "%s --version", path);
        assert_int_equal(run_prog(cmd, out, sizeof out), 0);
        char want[256];
        snprintf(want, sizeof want, "%s (spool) %s\n", base, SP_VERSION);
        assert_string_equal(out, want);
        snprintf(cmd, sizeof cmd, "%s --help", path);
        assert_int_equal(run_prog(cmd, out, sizeof out), 0);
        assert_non_null(strstr(out, "Usage: "));
        assert_non_null(strstr(out, "--version"));
        snprintf(cmd, sizeof cmd, "%s --info", path);
        assert_int_equal(run_prog(cmd, out, sizeof out), 0);
        assert_non_null(strstr(out, "spool " SP_VERSION));
        const char *bad[] = {"--threads 100000000", "--threads=-3", "--threads 1e300", "--threads nan", "--no-such-option 1"};
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            snprintf(cmd, sizeof cmd, "%s %s%s", path, sub, bad[k]);
            int rc = run_prog(cmd, out, sizeof out);
            if (rc != 2 || !strstr(out, k < 4 ? "--threads" : "no-such-option")) {
                print_message("# %s: status %d, '%s'\n", cmd, rc, out);
                fail();
            }
        }
        programs++;
    }
    free(copy);
    assert_true(programs >= 1);
}

/* reals are echoed in the shortest form that reads back exactly */
static void test_shortest_reals(void **state)
{
    (void)state;
    char b[64];
    const double v[] = {0.003, 0.1, 1e-4, 2.5, 1.0 / 3, 6.02214076e23, -0.2, 0, 5e-324};
    const char *want[] = {"0.003", "0.1", "0.0001", "2.5", "0.3333333333333333", "6.02214076e+23", "-0.2", "0", "5e-324"};
    for (int i = 0; i < 9; i++) {
        ex_fmt_shortest(v[i], b, sizeof b);
        assert_string_equal(b, want[i]);
        assert_true(strtod(b, NULL) == v[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_forms),
        cmocka_unit_test(test_numbers_checked),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_global_options),
        cmocka_unit_test(test_every_program),
        cmocka_unit_test(test_shortest_reals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
