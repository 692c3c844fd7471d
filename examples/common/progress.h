/* SPDX-License-Identifier: MIT */
/* examples/common/progress.h - the one progress and log layer of the example programs: the
 * training-step line (step/loss/rate text given by the program; on a terminal redrawn in place
 * with "\r", at most ten times a second, with a bar, the elapsed time and the ETA; into a pipe or
 * a file a plain line every N steps, never a "\r"), the permanent lines printed between steps
 * (which first wipe a redrawn line), the wall clock, and the programs' log files. Step lines go
 * to stderr, so stdout keeps only what a program reports. */
#ifndef EX_COMMON_PROGRESS_H
#define EX_COMMON_PROGRESS_H

#include <stddef.h>
#include <stdio.h>

#include "spool.h"

typedef struct {
    int tty;         /* stderr is a terminal (or the program forced it): step lines are redrawn */
    int every;       /* not a terminal: a plain step line every `every` steps and at the last (0: none) */
    int quiet;       /* set by the program: print nothing (ranks > 0 under mpirun) */
    long total;      /* steps of the run; 0 if not known (then no counter, bar or ETA) */
    long first;      /* the step before this process's first one: the ETA's rate survives a resume */
    double t0, shown; /* start of this process; when the line was last redrawn */
    int drawn;       /* a redrawn line is on the terminal */
} ex_progress;

/* total: steps of the run (0: unknown); every: see above; force_tty != 0 redraws even when
 * stderr is not a terminal. */
void ex_progress_init(ex_progress *p, long total, int every, int force_tty);
/* Step `step` (counted from 1) done; fmt... is the program's part of the line, e.g.
 * "loss %.4f  %.0f tok/s". On a terminal: "\r<step>/<total> [bar] <text>  <elapsed> elapsed, ETA
 * <eta>" (counter, bar and times only when total is known). Otherwise, on every `every`-th
 * step and the last: "step <step>/<total>  <text>  elapsed <e>  ETA <eta>\n" (only "<text>\n"
 * when total is 0). */
void ex_progress_step(ex_progress *p, long step, const char *fmt, ...) SP_PRINTF(3, 4);
/* A permanent line ("\n" added) on `to` (stdout or stderr), after wiping a redrawn step line. */
void ex_progress_line(ex_progress *p, FILE *to, const char *fmt, ...) SP_PRINTF(3, 4);
/* End of the run: a redrawn line stays on the terminal (its line is ended). */
void ex_progress_done(ex_progress *p);

/* Wall-clock seconds from a monotonic clock. */
double ex_now(void);
/* "42s", "3m07s", "2h05m". */
void ex_fmt_duration(double s, char *buf, size_t n);

/* A program's running log (e.g. a CSV of losses, one row per step): a log is appended to as the
 * run goes, so it is not written atomically; a target that is not a regular file is refused.
 * append = 0: truncated and header (may be NULL) written first; append = 1: rows are added to
 * what is there (a resumed run). NULL with err set on failure. */
FILE *ex_log_open(const char *path, const char *header, int append, char *err, size_t errlen);

#endif
