/* SPDX-License-Identifier: MIT */
/* examples/common/atomic.h - the one way the example programs write a file: the library's atomic
 * writer (sp_file_begin in spool/core.h: a fresh temp file next to the target, fsync'd, renamed
 * over it; devices, FIFOs and directories refused, never replaced), with its messages copied into
 * the caller's buffer as the programs' other helpers report. */
#ifndef EX_COMMON_ATOMIC_H
#define EX_COMMON_ATOMIC_H

#include <stddef.h>
#include <stdio.h>

#include "spool.h"

typedef struct {
    sp_file *w;
    FILE *f; /* write here between open and commit */
} ex_atomic;

/* Start writing path. NULL (and err set) if the target is not a regular file, or the temp file
 * cannot be created. On success the returned FILE is a->f. */
FILE *ex_atomic_open(ex_atomic *a, const char *path, char *err, size_t errlen);
/* Finish (sp_file_commit). 0 on success; -1 with err set (the target is left as it was, the temp
 * file removed). */
int ex_atomic_commit(ex_atomic *a, char *err, size_t errlen);
/* Give up: remove the temp file, target untouched. Safe on a zeroed or finished a. */
void ex_atomic_abort(ex_atomic *a);
/* 0 if path does not exist or is a regular file; -1 with err set otherwise (sp_file_check). */
int ex_check_regular(const char *path, char *err, size_t errlen);

#endif
