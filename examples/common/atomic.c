/* SPDX-License-Identifier: MIT */
/* examples/common/atomic.c - atomic file writes for the example programs (see atomic.h). */
#include "atomic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ex_check_regular(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) return 0; /* absent (or unreachable: creating the temp file will say) */
    if (S_ISREG(st.st_mode)) return 0;
    snprintf(err, errlen, "refusing to replace '%s': it exists and is not a regular file (%s)", path,
             S_ISDIR(st.st_mode) ? "a directory" : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
             : S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISSOCK(st.st_mode) ? "a socket" : "not a plain file");
    return -1;
}

/* dir and base name of path, in buf (dir "" means the current directory). */
static const char *split(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, cap, ".");
        return path;
    }
    size_t n = (size_t)(slash - path);
    if (n == 0) n = 1; /* "/x" lives in "/" */
    snprintf(dir, cap, "%.*s", (int)n, path);
    return slash + 1;
}

void ex_fsync_dir(const char *path)
{
    char dir[4096];
    split(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int ex_clean_stale_temps(const char *path)
{
    char dir[4096];
    const char *base = split(path, dir, sizeof dir);
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *s = e->d_name;
        if (strncmp(s, base, bl) != 0 || strncmp(s + bl, ".tmp.", 5) != 0) continue;
        char *end;
        errno = 0;
        long pid = strtol(s + bl + 5, &end, 10);
        if (errno || pid <= 0 || *end != '.' || end == s + bl + 5) continue;
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive (or not ours to judge) */
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", dir, s);
        if (unlink(full) == 0) n++;
    }
    closedir(d);
    return n;
}

FILE *ex_atomic_open(ex_atomic *a, const char *path, char *err, size_t errlen)
{
    static unsigned serial;
    memset(a, 0, sizeof *a);
    if (ex_check_regular(path, err, errlen)) return NULL;
    ex_clean_stale_temps(path);
    size_t cap = strlen(path) + 48;
    a->path = strdup(path);
    a->tmp = malloc(cap);
    if (!a->path || !a->tmp) {
        snprintf(err, errlen, "cannot write '%s': out of memory", path);
        ex_atomic_abort(a);
        return NULL;
    }
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) { /* mkstemp's loop, keeping the umask's permissions */
        snprintf(a->tmp, cap, "%s.tmp.%ld.%u", path, (long)getpid(), serial++);
        fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0 || !(a->f = fdopen(fd, "wb"))) {
        snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        if (fd >= 0) close(fd), unlink(a->tmp);
        free(a->tmp), a->tmp = NULL; /* nothing of ours on disk */
        ex_atomic_abort(a);
        return NULL;
    }
    return a->f;
}

int ex_atomic_commit(ex_atomic *a, char *err, size_t errlen)
{
    if (!a->f) {
        snprintf(err, errlen, "cannot write '%s': not open", a->path ? a->path : "?");
        ex_atomic_abort(a);
        return -1;
    }
    int ok = !ferror(a->f) && fflush(a->f) == 0 && fsync(fileno(a->f)) == 0;
    int e = errno;
    if (fclose(a->f) != 0 && ok) ok = 0, e = errno;
    a->f = NULL;
    if (ok && ex_check_regular(a->path, err, errlen)) { /* became a device meanwhile */
        ex_atomic_abort(a);
        return -1;
    }
    if (ok && rename(a->tmp, a->path) != 0) ok = 0, e = errno;
    if (!ok) {
        snprintf(err, errlen, "cannot write '%s': %s", a->path, e ? strerror(e) : "write error");
        ex_atomic_abort(a);
        return -1;
    }
    ex_fsync_dir(a->path);
    free(a->tmp), a->tmp = NULL;
    free(a->path), a->path = NULL;
    return 0;
}

void ex_atomic_abort(ex_atomic *a)
{
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    free(a->tmp);
    free(a->path);
    memset(a, 0, sizeof *a);
}
