/* SPDX-License-Identifier: MIT */
/* examples/common/gnuplot.h - the one way the example programs run gnuplot: fork and exec of a
 * fixed argv ("gnuplot -c /dev/stdin ARG1 ARG2 ...", no shell), the script fed on stdin, and
 * every file name or title handed over as data (ARG1, ARG2, ... inside the script), never
 * pasted into the script text, so no name can run shell or gnuplot commands. */
#ifndef EX_COMMON_GNUPLOT_H
#define EX_COMMON_GNUPLOT_H

#include <stddef.h>

/* Run script with gnuplot in directory cwd (NULL: the current one); args (NULL-terminated, at
 * most 9) become ARG1..ARGn. gnuplot's own messages go to stderr. 0 if gnuplot ran and exited 0;
 * 1 if gnuplot is not installed; -1 otherwise; err says which. */
int ex_gnuplot(const char *cwd, const char *script, const char *const *args, char *err, size_t errlen);

/* Draw an SVG with script, which must "set output ARG1": gnuplot writes a temp file next to svg
 * (passed as ARG1; more args follow as ARG2...), which is checked to be a whole SVG document
 * and then renamed over svg (atomic.h rules). 0, 1 (no gnuplot) or -1 as ex_gnuplot. */
int ex_plot_svg(const char *svg, const char *script, const char *const *args, char *err, size_t errlen);

#endif
