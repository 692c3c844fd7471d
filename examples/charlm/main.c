/* main.c - spool-charlm: character-level language models (names, dinosaurs, Shakespeare) with
 * spool. Commands: train (train.c), sample, eval, score (use.c), plot (ui.c). data.c loads text
 * and checkpoints, text.c decodes and batches, model.c builds the network, opts.c holds the
 * options table. */
#include "charlm.h"

#include <string.h>

/* ----------------------------------------------------------------- main */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: spool-charlm COMMAND [options]\n"
            "Character-level language models with spool: learn to spell names or write like\n"
            "Shakespeare, one character at a time, then sample new text.\n\n"
            "Commands:\n"
            "  train              train a model (writes --checkpoint, a CSV log and an SVG loss plot)\n"
            "  sample             generate text from a checkpoint\n"
            "  eval               held-out loss in nats/char, bits/char and perplexity\n"
            "  score \"TEXT\"       log-probability of TEXT with a per-character breakdown\n"
            "  plot LOG.csv OUT.svg  redraw the loss curves of a training log (needs gnuplot)\n\n"
            "Examples:\n"
            "  spool-charlm train --data names --steps 3000\n"
            "  spool-charlm sample --count 10 --temperature 0.8\n"
            "  spool-charlm train --data shakespeare --hidden 256 --layers 2 --dropout 0.2 --checkpoint sh.safetensors\n"
            "  spool-charlm sample --checkpoint sh.safetensors --prime 'ROMEO:' --max-len 400\n"
            "Ctrl-C during training saves a checkpoint; add --resume to continue.\n");
    cl_opts_help(f);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "plot")) { /* redraw the loss plot of a CSV log */
        if (argc != 4) return cl_fail("usage: spool-charlm plot LOG.csv OUT.svg"), 2;
        return cl_plot(argv[2], argv[3], argv[2]) < 0;
    }
    int cmd = !strcmp(argv[1], "train") ? CL_TRAIN : !strcmp(argv[1], "sample") ? CL_SAMPLE
            : !strcmp(argv[1], "eval") ? CL_EVAL : !strcmp(argv[1], "score") ? CL_SCORE : 0;
    if (!cmd) return cl_fail("unknown command '%s' (train, sample, eval, score; try --help)", argv[1]), 2;
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    cl_opts o;
    char *pos[4];
    int npos;
    if (cl_opts_parse(&o, cmd, argc, argv, 2, pos, &npos)) return 2;
    if (cmd == CL_SCORE) {
        if (npos != 1) return cl_fail("score takes one argument, the text to score (in quotes)"), 2;
        return cl_cmd_score(&o, pos[0]);
    }
    if (npos) return cl_fail("unexpected argument '%s' (try --help)", pos[0]), 2;
    if (cmd == CL_TRAIN) return cl_cmd_train(&o);
    if (cmd == CL_SAMPLE) return cl_cmd_sample(&o);
    return cl_cmd_eval(&o);
}

