/* SPDX-License-Identifier: MIT */
/* test_threads.c - the thread count a parallel region takes (sp__threads_now, autograd/runtime.c):
 * never more than sp_get_threads(), never less than 1, and on a machine whose every core is taken
 * by other CPU-bound processes, 1 - so more threads can never make spool slower there. No timing:
 * the checks are on the counts. */
#include "helpers.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int sp__threads_now(void); /* internal (static library), not exported by libspool.so */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void test_bounds(void **state)
{
    (void)state;
    sp_set_threads(2);
    int n = sp__threads_now();
    assert_true(n >= 1 && n <= 2);
    sp_set_threads(1);
    assert_int_equal(sp__threads_now(), 1);
}

static void test_busy_machine_gives_one_thread(void **state)
{
    (void)state;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1 || cores > 64) skip();
    pid_t kids[64];
    for (long i = 0; i < cores; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            for (;;) __asm__ volatile(""); /* CPU-bound until killed */
        }
        assert_true(kids[i] > 0);
    }
    sp_set_threads((int)cores + 1);
    int n = 0;
    for (int tries = 0; tries < 50 && (n = sp__threads_now()) != 1; tries++) sleep_ms(30);
    for (long i = 0; i < cores; i++) kill(kids[i], SIGKILL);
    for (long i = 0; i < cores; i++) waitpid(kids[i], NULL, 0);
    assert_int_equal(n, 1);
    sp_set_threads(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_busy_machine_gives_one_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
