/* SPDX-License-Identifier: MIT */
/* examples/common/atomic.h - the one way the example programs write a file: into a fresh temp
 * file next to the target (created O_EXCL, so never through someone else's file or link),
 * flushed and fsync'd, renamed over the target, then the directory fsync'd. A reader sees the
 * old file or the new one, never half of one, even after kill -9 or power loss. Targets that
 * exist and are not regular files (devices, FIFOs, directories) are refused with a message
 * instead of being replaced. Temp files of earlier runs that were killed mid-write
 * ("<name>.tmp.<pid>.<n>" of a process that no longer exists) are removed on the next write. */
#ifndef EX_COMMON_ATOMIC_H
#define EX_COMMON_ATOMIC_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    FILE *f;     /* write here between open and commit */
    char *path;  /* the target */
    char *tmp;   /* the temp file */
} ex_atomic;

/* Start writing path. NULL (and err set) if the target is not a regular file, or the temp file
 * cannot be created. On success the returned FILE is a->f. */
FILE *ex_atomic_open(ex_atomic *a, const char *path, char *err, size_t errlen);
/* Finish: checks every write (ferror), flush, fsync, close, rename, fsync of the directory.
 * 0 on success; -1 with err set (the target is left as it was, the temp file removed). Always
 * frees what open allocated. */
int ex_atomic_commit(ex_atomic *a, char *err, size_t errlen);
/* Give up: close and remove the temp file, target untouched. Safe on a zeroed or finished a. */
void ex_atomic_abort(ex_atomic *a);

/* Remove "<path>.tmp.<pid>.*" files left by processes that no longer run. Returns how many. */
int ex_clean_stale_temps(const char *path);
/* 0 if path does not exist or is a regular file; -1 with err set otherwise. */
int ex_check_regular(const char *path, char *err, size_t errlen);
/* fsync the directory holding path (best effort; some file systems refuse). */
void ex_fsync_dir(const char *path);

#endif
