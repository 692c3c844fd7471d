/* SPDX-License-Identifier: MIT */
/* examples/common/progress.c - step lines, permanent lines, the clock and log files of the
 * example programs (see progress.h). */
#include "progress.h"
#include "atomic.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double ex_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ex_fmt_duration(double s, char *buf, size_t n)
{
    if (s < 0 || s != s) s = 0;
    long x = (long)(s + 0.5);
    if (x >= 3600) snprintf(buf, n, "%ldh%02ldm", x / 3600, x / 60 % 60);
    else if (x >= 60) snprintf(buf, n, "%ldm%02lds", x / 60, x % 60);
    else snprintf(buf, n, "%lds", x);
}

void ex_progress_init(ex_progress *p, long total, int every, int force_tty)
{
    memset(p, 0, sizeof *p);
    p->tty = force_tty || isatty(2);
    p->every = every > 0 ? every : 0;
    p->total = total > 0 ? total : 0;
    p->first = -1;
    p->t0 = ex_now();
}

void ex_progress_step(ex_progress *p, long step, const char *fmt, ...)
{
    if (p->quiet) return;
    if (p->first < 0) p->first = step - 1;
    double now = ex_now();
    int last = p->total > 0 && step >= p->total;
    if (p->tty ? p->drawn && !last && now - p->shown < 0.1 : !p->every || (step % p->every && !last)) return;
    char text[512], eta[32] = "", el[32] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (p->total > 0) { /* the rate of this process's steps, so a resumed run's ETA is right */
        double secs = now - p->t0, rate = secs > 0 ? (double)(step - p->first) / secs : 0;
        ex_fmt_duration(rate > 0 ? (double)(p->total - step) / rate : 0, eta, sizeof eta);
        ex_fmt_duration(secs, el, sizeof el);
    }
    if (p->tty) {
        fputs("\r\033[K", stderr);
        if (p->total > 0) {
            enum { W = 24 };
            int fill = (int)((double)W * (double)step / (double)p->total);
            char bar[W + 1];
            for (int i = 0; i < W; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
            bar[W] = 0;
            fprintf(stderr, "%6ld/%ld [%s] %s  %s elapsed, ETA %s", step, p->total, bar, text, el, eta);
        } else fputs(text, stderr);
        p->drawn = 1, p->shown = now;
    } else if (p->total > 0) fprintf(stderr, "step %ld/%ld  %s  elapsed %s  ETA %s\n", step, p->total, text, el, eta);
    else fprintf(stderr, "%s\n", text);
    fflush(stderr);
}

void ex_progress_line(ex_progress *p, FILE *to, const char *fmt, ...)
{
    if (p->quiet) return;
    if (p->tty && p->drawn) fputs("\r\033[K", stderr), fflush(stderr);
    p->drawn = 0;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(to, fmt, ap);
    va_end(ap);
    fputc('\n', to);
    fflush(to);
}

void ex_progress_done(ex_progress *p)
{
    if (p->tty && p->drawn) fputc('\n', stderr), fflush(stderr);
    p->drawn = 0;
}

FILE *ex_log_open(const char *path, const char *header, int append, char *err, size_t errlen)
{
    char e[600];
    if (ex_check_regular(path, e, sizeof e)) {
        snprintf(err, errlen, "log: %s", e);
        return NULL;
    }
    FILE *f = fopen(path, append ? "a" : "w");
    if (f && !append && header && (fputs(header, f) < 0 || fflush(f) != 0)) fclose(f), f = NULL;
    if (!f) snprintf(err, errlen, "cannot write log %s: %s", path, strerror(errno));
    return f;
}
