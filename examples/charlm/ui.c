/* SPDX-License-Identifier: MIT */
/* ui.c - what a person watching spool-charlm train sees: a progress bar on a terminal (step,
 * loss, tokens/s, ETA), plain periodic lines in a log file or pipe, and the loss-curve plot drawn
 * by gnuplot from the CSV log when gnuplot is installed. */
#include "charlm.h"
#include "../common/gnuplot.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cl_fail(const char *fmt, ...)
{
    /* one write per message, so the lines of ranks sharing a terminal under mpirun do not mix */
    char msg[4096];
    int n = snprintf(msg, sizeof msg, "spool-charlm: ");
    if (cl_rank >= 0) n += snprintf(msg + n, sizeof msg - (size_t)n, "rank %d: ", cl_rank);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n - 1, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", msg);
    fflush(stderr);
    return 1;
}

void cl_progress_init(cl_progress *p, long total, int every, int force)
{
    memset(p, 0, sizeof *p);
    p->tty = force || isatty(2);
    p->every = every > 0 ? every : 100;
    p->total = total;
    p->t0 = cl_now();
}

void cl_progress_update(cl_progress *p, long step, double loss, double tok_s, double lr)
{
    if (cl_rank > 0) return; /* under mpirun only rank 0 reports */
    double el = cl_now() - p->t0;
    char eta[32], elap[32];
    /* ETA from this session's rate: steps done since start (resume-safe: t0 is this process) */
    static long first = -1;
    if (first < 0) first = step - 1;
    double rate = el > 0 ? (double)(step - first) / el : 0;
    cl_fmt_duration(rate > 0 ? (double)(p->total - step) / rate : 0, eta, sizeof eta);
    cl_fmt_duration(el, elap, sizeof elap);
    if (p->tty) {
        int w = 24, fill = p->total > 0 ? (int)((double)w * (double)step / (double)p->total) : 0;
        char bar[32];
        for (int i = 0; i < w; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
        bar[w] = 0;
        fprintf(stderr, "\r\033[K%6ld/%ld [%s] loss %.4f | %.0f tok/s | lr %.2g | %s elapsed, ETA %s", step,
                p->total, bar, loss, tok_s, lr, elap, eta);
        p->drawn = 1;
    } else if (step % p->every == 0 || step == p->total) {
        fprintf(stderr, "step %ld/%ld  loss %.4f  %.0f tok/s  lr %.3g  elapsed %s  ETA %s\n", step, p->total,
                loss, tok_s, lr, elap, eta);
    }
    fflush(stderr);
}

void cl_progress_note(cl_progress *p, const char *fmt, ...)
{
    if (cl_rank > 0) return;
    if (p->tty && p->drawn) fputs("\r\033[K", stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    p->drawn = 0;
}

void cl_progress_done(cl_progress *p)
{
    if (p->tty && p->drawn) fputc('\n', stderr);
    p->drawn = 0;
}

int cl_plot(const char *csv, const char *svg, const char *title)
{
    /* columns: step,epoch,lr,train_loss,train_loss_avg,grad_norm,valid_loss,tok_s,elapsed_s.
     * The file names and the title reach gnuplot as data (ARG1 output, ARG2 title, ARG3 log). */
    static const char script[] =
        "set terminal svg size 800,450 dynamic font 'sans,12' background '#ffffff'\n"
        "set output ARG1\n"
        "set datafile separator ','\n"
        "set datafile missing 'nan'\n"
        "set key top right\n"
        "set title ARG2 noenhanced\n"
        "set xlabel 'step'\n"
        "set ylabel 'loss (nats per character)'\n"
        "set grid\n"
        "plot ARG3 every ::1 using 1:4 with lines lc rgb '#c8d8f0' title 'train (per step)', \\\n"
        "     '' every ::1 using 1:5 with lines lw 2 lc rgb '#1f5fbf' title 'train (running mean)', \\\n"
        "     '' every ::1 using 1:7 with linespoints lw 2 pt 7 ps 0.6 lc rgb '#d04010' title 'held-out'\n";
    const char *args[] = {title, csv, NULL};
    char err[512];
    int rc = ex_plot_svg(svg, script, args, err, sizeof err);
    if (rc == 1)
        fprintf(stderr, "spool-charlm: %s, so no plot was drawn; the losses are in %s\n", err, csv);
    else if (rc)
        fprintf(stderr, "spool-charlm: cannot draw %s: %s\n", svg, err);
    return rc;
}
