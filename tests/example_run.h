/* SPDX-License-Identifier: MIT */
/* example_run.h - run an example program from a test and capture what it printed. Shared by the
 * end-to-end tests of the example programs (needs helpers.h's cmocka includes first). */
#ifndef SP_TEST_EXAMPLE_RUN_H
#define SP_TEST_EXAMPLE_RUN_H

/* Runs the program named by $SPOOL_EXAMPLE with args (NULL-terminated, at most 38), stdout and
 * stderr into dir/out.txt, stdin from /dev/null, and returns that text in *out (malloc'd, NUL-terminated). Returns the
 * exit status, or 1000 + signal if it was killed by a signal (a crash). */
int sp_test_run_example(const char *dir, char **out, const char *const *args);
/* The same with stdin read from the file `in` (NULL: /dev/null, which is also what the above gives). */
int sp_test_run_example_stdin(const char *dir, char **out, const char *const *args, const char *in);

#endif
