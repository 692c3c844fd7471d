/* SPDX-License-Identifier: MIT */
/* ui.c - what a person watching spool-charlm train sees, beyond the progress lines of
 * ../common/progress.c: its error messages (one write each, with the rank under mpirun) and the
 * loss-curve plot drawn by gnuplot from the CSV log when gnuplot is installed. */
#include "charlm.h"
#include "../common/gnuplot.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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
