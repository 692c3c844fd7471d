/* SPDX-License-Identifier: MIT */
/* test_dist_api.c - include/spool/dist.h without a launcher, in whichever build this is: a NULL
 * group is one process (rank 0 of 1) and every collective on it fails with SP_ERR_ARG and a
 * message; sp_dist_launched reads the launcher's variables; in a build without MPI, joining
 * fails with a message saying how to get MPI. (The collectives themselves run under mpirun in
 * test_dist.sh.) */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "spool.h"

#include <stdlib.h>
#include <string.h>

static void null_group(void **state)
{
    (void)state;
    assert_int_equal(sp_dist_rank(NULL), 0);
    assert_int_equal(sp_dist_size(NULL), 1);
    assert_true(sp_dist_reduce_seconds(NULL) == 0);
    assert_int_equal(sp_dist_reduce_calls(NULL), 0);
    sp_params *ps = sp_params_new();
    assert_non_null(sp_param(ps, "w", 2, 3));
    sp_clear_error();
    assert_int_equal(sp_dist_allreduce_grads(NULL, ps, 1.0, NULL), SP_ERR_ARG);
    assert_non_null(strstr(sp_last_error(), "sp_dist_allreduce_grads: no group"));
    assert_int_equal(sp_dist_bcast_params(NULL, ps, 0), SP_ERR_ARG);
    assert_non_null(strstr(sp_last_error(), "sp_dist_bcast_params"));
    double x = 1;
    assert_int_equal(sp_dist_sum(NULL, &x, 1), SP_ERR_ARG);
    assert_true(x == 1);
    assert_int_equal(sp_dist_check(NULL, "a", 1, "cfg"), SP_ERR_ARG);
    assert_int_equal(sp_dist_bcast(NULL, &x, sizeof x, 0), SP_ERR_ARG);
    sp_dist_abort(NULL, 3); /* a no-op: still here */
    sp_dist_leave(NULL);
    sp_params_free(ps);
}

static void launched(void **state)
{
    (void)state;
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (int i = 0; i < 4; i++) unsetenv(vars[i]);
    assert_int_equal(sp_dist_launched(), 0);
    for (int i = 0; i < 4; i++) {
        setenv(vars[i], "1", 1);
        assert_int_equal(sp_dist_launched(), 1);
        unsetenv(vars[i]);
    }
}

/* meson says whether it found MPI (TEST_HAVE_MPI); the library must agree. Without MPI, joining
 * fails with a message; with it, joining for real is test_dist.sh's business (under mpirun). */
static void join_without_mpi(void **state)
{
    (void)state;
    assert_int_equal(sp_dist_available(), TEST_HAVE_MPI);
    if (TEST_HAVE_MPI) return;
    assert_null(sp_dist_join(NULL));
    assert_int_equal(sp_last_status(), SP_ERR_STATE);
    assert_non_null(strstr(sp_last_error(), "built without MPI"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(null_group),
        cmocka_unit_test(launched),
        cmocka_unit_test(join_without_mpi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
