/* SPDX-License-Identifier: MIT */
/* examples/common/gnuplot.c - gnuplot without a shell (see gnuplot.h). */
#include "gnuplot.h"
#include "atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int ex_gnuplot(const char *cwd, const char *script, const char *const *args, char *err, size_t errlen)
{
    const char *argv[13] = {"gnuplot", "-c", "/dev/stdin"};
    int n = 3;
    for (int i = 0; args && args[i]; i++) {
        if (n == 12) {
            snprintf(err, errlen, "gnuplot: more than 9 arguments");
            return -1;
        }
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    int in[2], ex[2]; /* script to the child; exec's errno back from it */
    if (pipe(in) != 0) {
        snprintf(err, errlen, "gnuplot: pipe: %s", strerror(errno));
        return -1;
    }
    if (pipe(ex) != 0) {
        snprintf(err, errlen, "gnuplot: pipe: %s", strerror(errno));
        close(in[0]), close(in[1]);
        return -1;
    }
    fcntl(ex[1], F_SETFD, FD_CLOEXEC);
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "gnuplot: fork: %s", strerror(errno));
        close(in[0]), close(in[1]), close(ex[0]), close(ex[1]);
        return -1;
    }
    if (pid == 0) {
        close(in[1]);
        close(ex[0]);
        int e = 0;
        if (dup2(in[0], 0) < 0 || (cwd && chdir(cwd) != 0)) e = errno;
        else {
            int null = open("/dev/null", O_WRONLY);
            if (null >= 0) dup2(null, 1); /* gnuplot prints nothing useful on stdout */
            execvp("gnuplot", (char *const *)argv);
            e = errno;
        }
        if (write(ex[1], &e, sizeof e) < 0) e = 0;
        _exit(127);
    }
    close(in[0]);
    close(ex[1]);
    void (*old)(int) = signal(SIGPIPE, SIG_IGN); /* gnuplot may exit before reading all */
    size_t len = strlen(script), off = 0;
    while (off < len) {
        ssize_t w = write(in[1], script + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    close(in[1]);
    signal(SIGPIPE, old);
    int child_errno = 0;
    ssize_t got = read(ex[0], &child_errno, sizeof child_errno);
    close(ex[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (got == (ssize_t)sizeof child_errno) {
        if (child_errno == ENOENT) {
            snprintf(err, errlen, "gnuplot is not installed (apt-get install gnuplot-nox)");
            return 1;
        }
        snprintf(err, errlen, "cannot run gnuplot%s%s: %s", cwd ? " in " : "", cwd ? cwd : "", strerror(child_errno));
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(err, errlen, "gnuplot failed (%s %d)", WIFEXITED(status) ? "exit status" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return -1;
    }
    return 0;
}

/* 1 if the file at path ends with the closing tag of an SVG document. */
static int whole_svg(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char tail[64] = {0};
    int ok = fseek(f, 0, SEEK_END) == 0 && ftell(f) >= 16 && fseek(f, -16, SEEK_END) == 0 &&
             fread(tail, 1, 16, f) == 16 && strstr(tail, "</svg>");
    fclose(f);
    return ok;
}

int ex_plot_svg(const char *svg, const char *script, const char *const *args, char *err, size_t errlen)
{
    ex_atomic a;
    if (!ex_atomic_open(&a, svg, err, errlen)) return -1;
    /* gnuplot writes the temp file by name (it truncates and rewrites that same file, which the
     * commit then fsyncs and renames) */
    const char *all[10] = {sp_file_temp(a.w)};
    int n = 1;
    for (int i = 0; args && args[i] && n < 9; i++) all[n++] = args[i];
    all[n] = NULL;
    int rc = ex_gnuplot(NULL, script, all, err, errlen);
    if (rc == 0 && !whole_svg(all[0])) {
        snprintf(err, errlen, "gnuplot did not write a whole SVG for '%s' (disk full?)", svg);
        rc = -1;
    }
    if (rc != 0) {
        ex_atomic_abort(&a);
        return rc;
    }
    return ex_atomic_commit(&a, err, errlen);
}
