/* SPDX-License-Identifier: MIT */
/* test_common.c - the examples' shared plumbing. The one progress and log layer
 * (examples/common/progress.c), with stderr sent to a file: into a file a plain line every N
 * steps and at the last, never a "\r"; with the terminal mode forced, the line redrawn with "\r",
 * wiped before a permanent line and ended by done; nothing at all when quiet; the durations'
 * format; log files (header only on a fresh one, rows kept on append, a directory refused). The
 * file reader (common/text.c): bytes with NULs kept by ex_read_bytes and refused as text by
 * ex_read_file, the size cap; the line reader (ex_lines): CRLF, a last line without newline, the
 * line cap, NUL bytes, a directory, /dev/zero. Files go into the build directory. */
#include "helpers.h"
#include "common/progress.h"
#include "common/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef void (*run_fn)(void);

/* Everything fn writes on stderr (NUL-terminated, malloc'ed). */
static char *capture(run_fn fn)
{
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    assert_true(saved >= 0 && dup2(fileno(tmp), 2) == 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long n = ftell(tmp);
    assert_true(n >= 0);
    char *s = calloc((size_t)n + 1, 1);
    rewind(tmp);
    assert_int_equal(fread(s, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return s;
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

static void plain_run(void)
{
    ex_progress p;
    ex_progress_init(&p, 5, 2, 0); /* stderr is a file here: not a terminal */
    for (long s = 1; s <= 5; s++) ex_progress_step(&p, s, "loss %.1f", (double)s);
    ex_progress_done(&p);
}

static void test_plain_lines(void **state)
{
    (void)state;
    char *out = capture(plain_run);
    assert_null(strchr(out, '\r'));
    assert_int_equal(count(out, "\n"), 3); /* steps 2, 4 and the last, 5 */
    assert_true(!strncmp(out, "step 2/5  loss 2.0  elapsed ", strlen("step 2/5  loss 2.0  elapsed ")));
    assert_non_null(strstr(out, "\nstep 4/5  loss 4.0  elapsed "));
    assert_non_null(strstr(out, "\nstep 5/5  loss 5.0  elapsed "));
    assert_int_equal(count(out, "  ETA "), 3);
    assert_null(strstr(out, "loss 1.0"));
    assert_null(strstr(out, "loss 3.0"));
    free(out);
}

static void unknown_total_run(void)
{
    ex_progress p;
    ex_progress_init(&p, 0, 3, 0);
    for (long s = 1; s <= 7; s++) ex_progress_step(&p, s, "batch %ld", s);
    ex_progress_init(&p, 0, 0, 0); /* every 0: no plain lines at all */
    for (long s = 1; s <= 7; s++) ex_progress_step(&p, s, "never %ld", s);
    ex_progress_done(&p);
}

static void test_unknown_total(void **state)
{
    (void)state;
    char *out = capture(unknown_total_run);
    assert_string_equal(out, "batch 3\nbatch 6\n"); /* no counter, no ETA without a total */
    free(out);
}

static void tty_run(void)
{
    ex_progress p;
    ex_progress_init(&p, 4, 0, 1); /* forced: as on a terminal */
    ex_progress_step(&p, 1, "loss %d", 1);
    ex_progress_line(&p, stderr, "a note");
    for (long s = 2; s <= 4; s++) ex_progress_step(&p, s, "loss %ld", s);
    ex_progress_done(&p);
}

static void test_tty_redraw(void **state)
{
    (void)state;
    char *out = capture(tty_run);
    /* the first step is drawn, wiped before the note, the last one always drawn and then ended */
    assert_true(!strncmp(out, "\r\033[K     1/4 [", strlen("\r\033[K     1/4 [")));
    assert_non_null(strstr(out, "] loss 1  "));
    assert_int_equal(count(out, " elapsed, ETA "), count(out, "\r\033[K     "));
    assert_non_null(strstr(out, "\r\033[Ka note\n"));
    assert_non_null(strstr(out, "\r\033[K     4/4 [========================] loss 4  "));
    assert_int_equal(out[strlen(out) - 1], '\n');
    assert_int_equal(count(out, "\n"), 2); /* the note and the end: redrawn lines have none */
    free(out);
}

static void quiet_run(void)
{
    ex_progress p;
    ex_progress_init(&p, 3, 1, 1);
    p.quiet = 1;
    for (long s = 1; s <= 3; s++) ex_progress_step(&p, s, "loss %ld", s);
    ex_progress_line(&p, stderr, "a note");
    ex_progress_done(&p);
}

static void test_quiet(void **state)
{
    (void)state;
    char *out = capture(quiet_run);
    assert_string_equal(out, "");
    free(out);
}

static void test_durations(void **state)
{
    (void)state;
    char b[32];
    ex_fmt_duration(41.6, b, sizeof b);
    assert_string_equal(b, "42s");
    ex_fmt_duration(187, b, sizeof b);
    assert_string_equal(b, "3m07s");
    ex_fmt_duration(7530, b, sizeof b);
    assert_string_equal(b, "2h05m");
    ex_fmt_duration(-1, b, sizeof b);
    assert_string_equal(b, "0s");
    double t = ex_now();
    assert_true(ex_now() >= t);
}

static void test_log_files(void **state)
{
    (void)state;
    const char *path = "test_common.csv";
    char err[256], buf[128] = {0};
    unlink(path);
    FILE *f = ex_log_open(path, "step,loss\n", 0, err, sizeof err);
    assert_non_null(f);
    fputs("1,0.5\n", f);
    fclose(f);
    f = ex_log_open(path, "step,loss\n", 1, err, sizeof err); /* a resumed run: rows are kept */
    assert_non_null(f);
    fputs("2,0.4\n", f);
    fclose(f);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, sizeof buf - 1, f), strlen("step,loss\n1,0.5\n2,0.4\n"));
    fclose(f);
    assert_string_equal(buf, "step,loss\n1,0.5\n2,0.4\n");
    f = ex_log_open(path, "step,loss\n", 0, err, sizeof err); /* a fresh run starts over */
    assert_non_null(f);
    fclose(f);
    f = fopen(path, "r");
    memset(buf, 0, sizeof buf);
    assert_int_equal(fread(buf, 1, sizeof buf - 1, f), strlen("step,loss\n"));
    fclose(f);
    unlink(path);
    mkdir("test_common.d", 0755);
    assert_null(ex_log_open("test_common.d", NULL, 0, err, sizeof err));
    assert_non_null(strstr(err, "test_common.d"));
    rmdir("test_common.d");
    assert_null(ex_log_open("test_common_no_dir/x.csv", NULL, 0, err, sizeof err));
    assert_non_null(strstr(err, "cannot write log test_common_no_dir/x.csv"));
}

static void test_read_file(void **state)
{
    (void)state;
    const char *path = "test_common.bin";
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite("ab\0cd", 1, 5, f), 5);
    fclose(f);
    char err[256];
    size_t n = 0;
    char *b = ex_read_bytes(path, &n, 0, err, sizeof err);
    assert_non_null(b);
    assert_int_equal(n, 5);
    assert_memory_equal(b, "ab\0cd", 6); /* and the NUL after them */
    free(b);
    assert_null(ex_read_file(path, &n, err, sizeof err)); /* not text */
    assert_non_null(strstr(err, "NUL bytes"));
    assert_null(ex_read_bytes(path, &n, 5, err, sizeof err)); /* reaches the cap */
    assert_non_null(strstr(err, "is larger than"));
    b = ex_read_bytes(path, &n, 6, err, sizeof err); /* under it */
    assert_non_null(b);
    free(b);
    unlink(path);
    assert_null(ex_read_bytes(".", &n, 0, err, sizeof err)); /* a directory */
    assert_non_null(strstr(err, "cannot read '.'"));
    assert_null(ex_read_bytes("test_common_missing", &n, 0, err, sizeof err));
    assert_non_null(strstr(err, "cannot open 'test_common_missing'"));
}

/* The one line reader (ex_lines): CRLF and a last line without '\n' are lines; a line over the
 * cap, a NUL byte and a directory are errors naming the file and line (before it, fgets cut long
 * lines in two, getline grew without bound on /dev/zero, and a NUL silently ended a line). */
static void test_lines(void **state)
{
    (void)state;
    const char *path = "test_common_lines.txt";
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("one\r\n\nthree is long\nfour", f);
    fclose(f);
    ex_lines r;
    char err[256], *line;
    size_t n;
    assert_int_equal(ex_lines_open(&r, path, 8, err, sizeof err), 0);
    assert_int_equal(ex_lines_next(&r, &line, &n, err, sizeof err), 1);
    assert_string_equal(line, "one");
    assert_int_equal(n, 3);
    assert_int_equal(ex_lines_next(&r, &line, &n, err, sizeof err), 1);
    assert_string_equal(line, "");
    assert_int_equal(ex_lines_next(&r, &line, &n, err, sizeof err), -1); /* 13 bytes > 8 */
    assert_string_equal(err, "test_common_lines.txt:3: line 3 is longer than 8 bytes");
    ex_lines_close(&r);
    assert_int_equal(ex_lines_open(&r, path, 64, err, sizeof err), 0);
    for (int i = 0; i < 3; i++) assert_int_equal(ex_lines_next(&r, &line, &n, err, sizeof err), 1);
    assert_string_equal(line, "three is long");
    assert_int_equal(ex_lines_next(&r, &line, &n, err, sizeof err), 1);
    assert_string_equal(line, "four");
    assert_int_equal(ex_lines_next(&r, &line, &n, err, sizeof err), 0);
    assert_int_equal(r.lineno, 4);
    ex_lines_close(&r);
    assert_non_null(f = fopen(path, "wb"));
    assert_int_equal(fwrite("ok\nab\0cd\n", 1, 9, f), 9);
    fclose(f);
    assert_int_equal(ex_lines_open(&r, path, 64, err, sizeof err), 0);
    assert_int_equal(ex_lines_next(&r, &line, &n, err, sizeof err), 1);
    assert_int_equal(ex_lines_next(&r, &line, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "test_common_lines.txt:2: a NUL byte"));
    ex_lines_close(&r);
    unlink(path);
    assert_int_equal(ex_lines_open(&r, ".", 64, err, sizeof err), 0); /* opens; reading fails */
    assert_int_equal(ex_lines_next(&r, &line, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot read '.' (line 1): Is a directory"));
    ex_lines_close(&r);
    assert_int_equal(ex_lines_open(&r, "test_common_missing", 64, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open 'test_common_missing'"));
    assert_non_null(f = fopen("/dev/zero", "rb")); /* a stream: ends at once, in bounded memory */
    ex_lines_stream(&r, f, "stdin", 64);
    assert_int_equal(ex_lines_next(&r, &line, &n, err, sizeof err), -1);
    assert_string_equal(err, "stdin:1: a NUL byte in line 1 (not a text file?)");
    ex_lines_close(&r);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_lines),   cmocka_unit_test(test_unknown_total), cmocka_unit_test(test_tty_redraw),
        cmocka_unit_test(test_quiet),         cmocka_unit_test(test_durations),     cmocka_unit_test(test_log_files),
        cmocka_unit_test(test_read_file),     cmocka_unit_test(test_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
