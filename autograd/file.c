/* SPDX-License-Identifier: MIT */
/* file.c - atomic file writes (include/spool/core.h, "files"): the one mechanism behind every
 * file spool writes (sp_save, sp_tape_dot_file) and every file its example programs write.
 *
 * The bytes go to a fresh temp file "<path>.tmp.<pid>.<n>" next to path, created O_EXCL so it is
 * never someone else's file or a link; commit checks every write, flushes, fsyncs, renames it
 * over path and fsyncs the directory. A reader therefore sees the old file or the new one, never
 * half of one, even after kill -9 or a power cut. rename() would replace whatever path is, so a
 * path that exists and is not a regular file (a device such as /dev/null, a FIFO, a directory) is
 * refused before and checked again just before the rename. Temp files of writers that were killed
 * mid-write (their process no longer exists) are removed at the next write to the same path. */
#include "file_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sp_file {
    FILE *f;
    char *path, *tmp;
    const char *op; /* the caller named in messages */
};

/* The directory of path (malloc'd): "." for a bare name, "/" for "/x". NULL if out of memory. */
static char *dir_of(const char *path, const char **base)
{
    const char *slash = strrchr(path, '/');
    if (base) *base = slash ? slash + 1 : path;
    if (!slash) return strdup(".");
    return slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
}

static sp_status check_regular(const char *path, const char *op)
{
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode)) return SP_OK; /* absent (or unreachable: creating the temp file says) */
    return sp_fail(SP_ERR_IO, "%s: refusing to replace '%s': it exists and is not a regular file (%s)", op, path,
                   S_ISDIR(st.st_mode)                            ? "a directory"
                   : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                   : S_ISFIFO(st.st_mode)                         ? "a FIFO"
                   : S_ISSOCK(st.st_mode)                         ? "a socket"
                                                                  : "not a plain file");
}

sp_status sp_file_check(const char *path)
{
    if (!path) return sp_fail(SP_ERR_ARG, "sp_file_check: path is NULL");
    return check_regular(path, "sp_file_check");
}

static void fsync_dir(const char *path)
{
    char *dir = dir_of(path, NULL);
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (fd >= 0) {
        fsync(fd); /* best effort: some file systems refuse fsync on directories */
        close(fd);
    }
    free(dir);
}

/* Removes "<path>.tmp.<pid>.*" of processes that no longer exist. */
static void remove_stale_temps(const char *path)
{
    const char *base;
    char *dir = dir_of(path, &base);
    size_t bl = strlen(base);
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *n = e->d_name;
        if (strncmp(n, base, bl) || strncmp(n + bl, ".tmp.", 5)) continue;
        char *end;
        errno = 0;
        long pid = strtol(n + bl + 5, &end, 10);
        if (errno || pid <= 0 || *end != '.' || end == n + bl + 5) continue;
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
        size_t fl = strlen(dir) + strlen(n) + 2;
        char *full = malloc(fl);
        if (full) snprintf(full, fl, "%s/%s", dir, n), unlink(full);
        free(full);
    }
    if (d) closedir(d);
    free(dir);
}

sp_file *sp__file_begin(const char *path, const char *op)
{
    static _Atomic unsigned serial; /* two threads of one process writing the same path */
    if (!path || !*path) {
        sp_fail(SP_ERR_ARG, "%s: %s path", op, path ? "empty" : "NULL");
        return NULL;
    }
    if (check_regular(path, op)) return NULL;
    remove_stale_temps(path);
    sp_file *w = calloc(1, sizeof *w);
    size_t cap = strlen(path) + 48;
    if (w) w->path = strdup(path), w->tmp = malloc(cap), w->op = op;
    if (!w || !w->path || !w->tmp) {
        sp_fail(SP_ERR_NOMEM, "%s: cannot write '%s': out of memory", op, path);
        if (w) free(w->path), free(w->tmp), free(w);
        return NULL;
    }
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) { /* mkstemp's loop, keeping the umask's permissions */
        snprintf(w->tmp, cap, "%s.tmp.%ld.%u", path, (long)getpid(), serial++);
        fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0 || !(w->f = fdopen(fd, "wb"))) {
        sp_fail(SP_ERR_IO, "%s: cannot write '%s': %s", op, path, strerror(errno));
        if (fd >= 0) close(fd), unlink(w->tmp);
        free(w->path), free(w->tmp), free(w);
        return NULL;
    }
    return w;
}

sp_file *sp_file_begin(const char *path) { return sp__file_begin(path, "sp_file_begin"); }

FILE *sp_file_stream(sp_file *w) { return w ? w->f : NULL; }

const char *sp_file_temp(const sp_file *w) { return w ? w->tmp : NULL; }

sp_status sp_file_commit(sp_file *w)
{
    if (!w) return sp_fail(SP_ERR_ARG, "sp_file_commit: NULL file");
    int ok = !ferror(w->f) && fflush(w->f) == 0 && fsync(fileno(w->f)) == 0;
    int e = errno;
    if (fclose(w->f) != 0 && ok) ok = 0, e = errno;
    w->f = NULL;
    sp_status s = SP_OK;
    if (!ok) s = sp_fail(SP_ERR_IO, "%s: cannot write '%s': %s", w->op, w->path, e ? strerror(e) : "write error");
    else if ((s = check_regular(w->path, w->op)) == SP_OK && rename(w->tmp, w->path) != 0) /* it may have become a FIFO meanwhile */
        s = sp_fail(SP_ERR_IO, "%s: cannot write '%s': %s", w->op, w->path, strerror(errno));
    if (s == SP_OK) {
        fsync_dir(w->path);
        free(w->tmp), w->tmp = NULL; /* renamed: nothing to remove */
    }
    sp_file_abort(w);
    return s;
}

void sp_file_abort(sp_file *w)
{
    if (!w) return;
    if (w->f) fclose(w->f);
    if (w->tmp) unlink(w->tmp);
    free(w->tmp);
    free(w->path);
    free(w);
}
