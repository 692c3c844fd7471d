/* SPDX-License-Identifier: MIT */
/* examples/common/atomic.c - the library's atomic writer with the programs' error buffers (see
 * atomic.h). */
#include "atomic.h"

#include <string.h>

static int fail(char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", sp_last_error());
    return -1;
}

FILE *ex_atomic_open(ex_atomic *a, const char *path, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    if (!(a->w = sp_file_begin(path))) {
        fail(err, errlen);
        return NULL;
    }
    return a->f = sp_file_stream(a->w);
}

int ex_atomic_commit(ex_atomic *a, char *err, size_t errlen)
{
    sp_status s = sp_file_commit(a->w);
    memset(a, 0, sizeof *a);
    return s == SP_OK ? 0 : fail(err, errlen);
}

void ex_atomic_abort(ex_atomic *a)
{
    sp_file_abort(a->w);
    memset(a, 0, sizeof *a);
}

int ex_check_regular(const char *path, char *err, size_t errlen)
{
    return sp_file_check(path) == SP_OK ? 0 : fail(err, errlen);
}
