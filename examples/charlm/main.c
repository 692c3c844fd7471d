/* SPDX-License-Identifier: MIT */
/* main.c - spool-charlm: character-level language models (names, dinosaurs, Shakespeare) with
 * spool. Commands: train (train.c), sample, eval, score, export (use.c), plot (ui.c). data.c loads text
 * and checkpoints, text.c decodes and batches, model.c builds the network, opts.c holds the
 * options table. */
#include "charlm.h"

#include <string.h>

/* ----------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    cl_opts o;
    char *pos[4];
    int npos, cmd;
    int rc = cl_opts_parse(&o, argc, argv, &cmd, pos, &npos);
    if (rc >= 0) return rc;
    if (cmd == CL_PLOT) { /* redraw the loss plot of a CSV log */
        if (npos != 2) return cl_fail("usage: spool-charlm plot LOG.csv OUT.svg"), 2;
        return cl_plot(pos[0], pos[1], pos[0]) != 0; /* drawing is all it does: no gnuplot is a failure too */
    }
    if (cmd == CL_SCORE) {
        if (npos != 1) return cl_fail("score takes one argument, the text to score (in quotes)"), 2;
        return cl_cmd_score(&o, pos[0]);
    }
    if (npos) return cl_fail("unexpected argument '%s' (try --help)", pos[0]), 2;
    if (cmd == CL_TRAIN) return cl_cmd_train(&o);
    if (cmd == CL_SAMPLE) return cl_cmd_sample(&o);
    if (cmd == CL_EXPORT) return cl_cmd_export(&o);
    return cl_cmd_eval(&o);
}
