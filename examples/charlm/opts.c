/* SPDX-License-Identifier: MIT */
/* opts.c - the command-line options of spool-charlm as one table of the shared option layer
 * (examples/common/opts.h), so that parsing, --help (with every default), the configuration echo
 * at start and the configuration stored in checkpoints cannot drift apart. */
#include "charlm.h"
#include "common/opts.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* where: which commands take it (bit i = command i of CMDS); tag: 1 = kept in checkpoints,
 * 2 = defines the model (must match when resuming) */
#define S(f) EX_AT(cl_opts, f)
#define TR CL_TRAIN
#define ALL (CL_TRAIN | CL_SAMPLE | CL_EVAL | CL_SCORE | CL_EXPORT)
static ex_opt OPTS[] = {
    {"data", EX_BUF, S(data), "names", 0, 0, TR | CL_EVAL, NULL,
     "training text: a file, or a bundled set: names, dinos, shakespeare", NULL, NULL, 1, NULL},
    {"valid", EX_BUF, S(valid), "", 0, 0, TR | CL_EVAL, NULL,
     "held-out file (default: none, i.e. the bundled set's test split, or for another file every 10th line (lines) or the last 10% (stream))", NULL, NULL, 1, NULL},
    {"mode", EX_BUF, S(mode), "auto", 0, 0, TR, NULL,
     "lines (one example per line, start/end token) | stream (running text, state carried) | auto (stream for shakespeare or lines longer than 100 chars)", NULL, NULL, 2, NULL},
    {"checkpoint", EX_BUF, S(checkpoint), "charlm.safetensors", 0, 0, ALL, NULL, "checkpoint file written by train, read by the others", NULL, NULL, 0, NULL},
    {"resume", EX_FLAG, S(resume), "0", 0, 0, TR, NULL, "continue training from --checkpoint (same losses as an uninterrupted run)", NULL, NULL, 0, NULL},
    {"init-from", EX_BUF, S(init_from), "", 0, 0, TR, "FILE", "start from the weights of an ONNX file of the same shape, e.g. a PyTorch model's (docs/onnx.md)", NULL, NULL, 0, NULL},
    {"log", EX_BUF, S(log), "", 0, 0, TR, NULL, "CSV log of losses and gradient norms (default: the checkpoint name with .csv)", NULL, NULL, 0, NULL},
    {"plot", EX_BUF, S(plot), "", 0, 0, TR, NULL, "SVG of the loss curves drawn with gnuplot at the end ('none' for none; default: the checkpoint name with .svg)", NULL, NULL, 0, NULL},
    {"dot", EX_BUF, S(dot), "", 0, 0, TR, NULL, "write the graph of the first training step as Graphviz dot to this file", NULL, NULL, 0, NULL},
    {"cell", EX_BUF, S(cell), "lstm", 0, 0, TR, NULL, NULL, NULL, NULL, 2, NULL},
    {"hidden", EX_INT, S(hidden), "128", 1, 65536, TR, NULL, "hidden units per layer", NULL, NULL, 2, NULL},
    {"layers", EX_INT, S(layers), "1", 1, SP_RNN_MAX_LAYERS, TR, NULL, "stacked recurrent layers", NULL, NULL, 2, NULL},
    {"embed", EX_INT, S(embed), "32", 1, 65536, TR, NULL, "embedding size of a character", NULL, NULL, 2, NULL},
    {"proj", EX_INT, S(proj), "0", 0, 65536, TR, NULL, "LSTM projection size P < hidden (lstmp; 0 = hidden/2 for lstmp, none otherwise)", NULL, NULL, 2, NULL},
    {"orthogonal", EX_FLAG, S(orthogonal), "0", 0, 0, TR, NULL, "orthogonal init of recurrent weights", NULL, NULL, 2, NULL},
    {"forget-bias", EX_FLAG, S(forget_bias), "0", 0, 0, TR, NULL, "LSTM forget-gate bias initialised to 1", NULL, NULL, 2, NULL},
    {"dropout", EX_DBL, S(dropout), "0", 0, 0.99, TR, NULL, "dropout between layers and before the output layer", NULL, NULL, 1, NULL},
    {"zoneout-h", EX_DBL, S(zoneout_h), "0", 0, 0.99, TR, NULL, "zoneout of the hidden state h (Krueger et al. 2016; e.g. 0.05)", NULL, NULL, 1, NULL},
    {"zoneout-c", EX_DBL, S(zoneout_c), "0", 0, 0.99, TR, NULL, "zoneout of the LSTM cell state c (e.g. 0.5)", NULL, NULL, 1, NULL},
    {"recurrent-dropout", EX_DBL, S(recurrent_dropout), "0", 0, 0.99, TR, NULL, "variational dropout of h before the recurrent product, one mask per chunk (Gal & Ghahramani 2016)", NULL, NULL, 1, NULL},
    {"candidate-dropout", EX_DBL, S(candidate_dropout), "0", 0, 0.99, TR, NULL, "dropout of the candidate g/n at every step (Semeniuta et al. 2016)", NULL, NULL, 1, NULL},
    {"seq", EX_INT, S(seq), "64", 1, 1048576, TR, NULL, "characters per chunk (stream mode; truncated BPTT length)", NULL, NULL, 1, NULL},
    {"batch", EX_INT, S(batch), "32", 1, 1024, TR, NULL, "sequences per step (under mpirun: per rank; a step reads ranks x batch)", NULL, NULL, 1, NULL},
    {"segment", EX_INT, S(segment), "0", 0, 1048576, TR, NULL, "recompute the activations of every N steps in backward instead of keeping them (long --seq; 0 = keep all)", NULL, NULL, 0, NULL},
    {"optimizer", EX_BUF, S(optimizer), "adam", 0, 0, TR, NULL, "sgd | rmsprop | adagrad | adam | adamw", "sgd|rmsprop|adagrad|adam|adamw", NULL, 1, NULL},
    {"lr", EX_DBL, S(lr), "0.003", 0, 10, TR, NULL, "base learning rate", NULL, NULL, 1, NULL},
    {"beta1", EX_DBL, S(beta1), "0.9", 0, 0.999999, TR, NULL, "Adam/AdamW beta1", NULL, NULL, 1, NULL},
    {"beta2", EX_DBL, S(beta2), "0.999", 0, 0.999999999, TR, NULL, "Adam/AdamW beta2", NULL, NULL, 1, NULL},
    {"eps", EX_DBL, S(eps), "1e-8", 0, 1, TR, NULL, "epsilon of adam, adamw, rmsprop, adagrad", NULL, NULL, 1, NULL},
    {"momentum", EX_DBL, S(momentum), "0", 0, 0.999999, TR, NULL, "SGD / RMSprop momentum", NULL, NULL, 1, NULL},
    {"weight-decay", EX_DBL, S(weight_decay), "0", 0, 10, TR, NULL, "weight decay, L2 (adamw: decoupled, and 0.01 unless this option is given)", NULL, NULL, 1, NULL},
    {"clip", EX_DBL, S(clip), "5", 0, 1000000000.0, TR, NULL, "clip the global gradient norm to this (0 = no clipping)", NULL, NULL, 1, NULL},
    {"lr-schedule", EX_BUF, S(lr_schedule), "cosine", 0, 0, TR, NULL, "constant | step | cosine (with --warmup, down to --min-lr)", "constant|step|cosine", NULL, 1, NULL},
    {"warmup", EX_INT, S(warmup), "100", 0, 1000000000, TR, NULL, "cosine: linear warm-up steps", NULL, NULL, 1, NULL},
    {"min-lr", EX_DBL, S(min_lr), "0.0001", 0, 10, TR, NULL, "cosine: final learning rate", NULL, NULL, 1, NULL},
    {"step-size", EX_INT, S(step_size), "1000", 1, 1000000000, TR, NULL, "step schedule: steps between decays", NULL, NULL, 1, NULL},
    {"gamma", EX_DBL, S(gamma), "0.5", 0, 1, TR, NULL, "step schedule: decay factor", NULL, NULL, 1, NULL},
    {"steps", EX_LONG, S(steps), "10000", 0, 1000000000, TR, NULL, "optimizer steps (ignored if --epochs is given)", NULL, NULL, 1, NULL},
    {"epochs", EX_DBL, S(epochs), "0", 0, 1000000, TR, NULL, "train for this many passes over the data instead of --steps", NULL, NULL, 1, NULL},
    {"seed", EX_LONG, S(seed), "1", 0, LONG_MAX, TR | CL_SAMPLE, NULL, "random seed (init, data order, dropout; sampling)", NULL, NULL, 1, NULL},
    {"threads", EX_INT, S(threads), "0", 0, EX_MAX_THREADS, ALL, NULL, "threads (0 = OMP_NUM_THREADS or all cores; under mpirun 1 per rank unless given)", NULL, NULL, 0, NULL},
    EX_OPT_PRECISION(ALL),
    {"dist-timeout", EX_DBL, S(dist_timeout), "600", 1, 1e7, TR, NULL, "under mpirun: seconds a rank waits for the others before it stops with a message", NULL, NULL, 0, NULL},
    {"eval-every", EX_INT, S(eval_every), "500", 0, 1000000000, TR, NULL, "held-out loss every N steps (0 = only at the end)", NULL, NULL, 0, NULL},
    {"checkpoint-every", EX_INT, S(checkpoint_every), "1000", 0, 1000000000, TR, NULL, "write the checkpoint every N steps (0 = only at the end)", NULL, NULL, 0, NULL},
    {"print-every", EX_INT, S(print_every), "100", 1, 1000000000, TR, NULL, "a progress line every N steps when stderr is not a terminal", NULL, NULL, 0, NULL},
    {"stop-after", EX_LONG, S(stop_after), "0", 0, 1000000000, TR, NULL, "stop after this step with a checkpoint, as Ctrl-C does (0 = never; for tests of --resume)", NULL, NULL, 0, NULL},
    {"progress", EX_FLAG, S(progress), "0", 0, 0, TR, NULL, "force the progress bar even when stderr is not a terminal", NULL, NULL, 0, NULL},
    {"temperature", EX_DBL, S(temperature), "1", 0, 100, CL_SAMPLE, NULL, "sampling temperature (> 0; 0 = always the most likely character)", NULL, NULL, 0, NULL},
    {"top-k", EX_INT, S(top_k), "0", 0, 1048576, CL_SAMPLE, NULL, "sample among the k most likely characters only (0 = all)", NULL, NULL, 0, NULL},
    {"prime", EX_BUF, S(prime), "", 0, 0, CL_SAMPLE, NULL, "text the model reads before sampling (it is printed first)", NULL, NULL, 0, NULL},
    {"prime-file", EX_BUF, S(prime_file), "", 0, 0, CL_SAMPLE, NULL, "read the priming text from this file", NULL, NULL, 0, NULL},
    {"max-len", EX_INT, S(max_len), "0", 0, 100000000, CL_SAMPLE, NULL, "characters per sample (0 = 100 for lines data, 500 for stream)", NULL, NULL, 0, NULL},
    {"count", EX_INT, S(count), "10", 1, 100000000, CL_SAMPLE, NULL, "number of samples (lines mode: names; stream: passages)", NULL, NULL, 0, NULL},
    {"split", EX_BUF, S(split), "valid", 0, 0, CL_EVAL, NULL, "valid | train: which split eval reads", "valid|train", NULL, 0, NULL},
    {"state", EX_BUF, S(state), "carry", 0, 0, CL_EVAL, NULL, "stream eval: carry the state from chunk to chunk, or reset it at each chunk", "carry|reset", NULL, 0, NULL},
    {"eval-batch", EX_INT, S(eval_batch), "1", 1, 1024, CL_EVAL, NULL, "stream eval: parallel tracks (1 = the split read in order as one stream)", NULL, NULL, 0, NULL},
    {"eval-seq", EX_INT, S(eval_seq), "0", 0, 1048576, CL_EVAL, NULL, "stream eval: chunk length (0 = the training --seq)", NULL, NULL, 0, NULL},
    {"onnx", EX_BUF, S(onnx), "", 0, 0, CL_EXPORT, "FILE", "the ONNX file to write (required; docs/onnx.md runs it in ONNX Runtime)", NULL, NULL, 0, NULL},
};
#define NOPTS ((int)(sizeof OPTS / sizeof OPTS[0]))

static const char *const CMDS[] = {"train", "sample", "eval", "score", "plot", "export", NULL};
static const ex_cli CLI = {
    "spool-charlm",
    "Usage: spool-charlm COMMAND [options]\n"
    "Character-level language models with spool: learn to spell names or write like\n"
    "Shakespeare, one character at a time, then sample new text.\n\n"
    "Commands:\n"
    "  train              train a model (writes --checkpoint, a CSV log and an SVG loss plot)\n"
    "  sample             generate text from a checkpoint\n"
    "  eval               held-out loss in nats/char, bits/char and perplexity\n"
    "  score \"TEXT\"       log-probability of TEXT with a per-character breakdown\n"
    "  plot LOG.csv OUT.svg  redraw the loss curves of a training log (needs gnuplot)\n"
    "  export --onnx FILE  write the model as ONNX (logits, probabilities, states for streaming)\n\n"
    "Examples:\n"
    "  spool-charlm train --data names --steps 3000\n"
    "  spool-charlm sample --count 10 --temperature 0.8\n"
    "  spool-charlm train --data shakespeare --hidden 256 --layers 2 --dropout 0.2 --checkpoint sh.safetensors\n"
    "  spool-charlm sample --checkpoint sh.safetensors --prime 'ROMEO:' --max-len 400\n"
    "  spool-charlm export --onnx charlm.onnx\n"
    "Ctrl-C during training saves a checkpoint; add --resume to continue.\n",
    ex_usage_data, CMDS, NULL, OPTS, NOPTS, 2, "arguments"};
static ex_args args;

static void fill_cell_help(void)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "recurrent cell: %s", cl_cell_list());
    for (int i = 0; i < NOPTS; i++)
        if (!strcmp(OPTS[i].name, "cell")) OPTS[i].help = buf;
}

int cl_opts_given(const char *name) { return ex_given(&CLI, &args, name); }

int cl_opts_parse(cl_opts *o, int argc, char **argv, int *cmd, char **pos, int *npos)
{
    memset(o, 0, sizeof *o);
    fill_cell_help();
    int rc = ex_cli_parse(&CLI, argc, argv, o, &args);
    if (rc >= 0) return rc;
    *cmd = 1 << args.cmd;
    *npos = args.npos;
    for (int i = 0; i < args.npos; i++) pos[i] = args.pos[i];
    return -1;
}

void cl_opts_echo(const cl_opts *o, int cmd, FILE *f)
{
    char v[CL_STR + 8];
    for (int i = 0; i < NOPTS; i++) {
        if (!(OPTS[i].where & cmd)) continue;
        ex_opt_format(&OPTS[i], o, v, sizeof v);
        fprintf(f, "# %-17s = %s%s\n", OPTS[i].name, v, args.given[i] ? "" : "  (default)");
    }
}

char *cl_opts_serialise(const cl_opts *o)
{
    size_t cap = 256;
    for (int i = 0; i < NOPTS; i++) cap += strlen(OPTS[i].name) + CL_STR + 32;
    char *s = malloc(cap), v[CL_STR + 8];
    if (!s) return NULL;
    size_t k = 0;
    s[0] = 0;
    for (int i = 0; i < NOPTS; i++) {
        if (!OPTS[i].tag) continue;
        ex_opt_format(&OPTS[i], o, v, sizeof v);
        k += (size_t)snprintf(s + k, cap - k, "%s=%s\n", OPTS[i].name, v);
    }
    return s;
}

int cl_opts_merge_stored(cl_opts *o, const char *stored, int model_only, char *err, size_t errn)
{
    const char *p = stored;
    while (*p) {
        const char *nl = strchr(p, '\n'), *eq = strchr(p, '=');
        if (!nl) nl = p + strlen(p);
        if (!eq || eq > nl) {
            snprintf(err, errn, "malformed configuration in checkpoint near \"%.30s\"", p);
            return -1;
        }
        int k = 0;
        for (; k < NOPTS; k++)
            if (strlen(OPTS[k].name) == (size_t)(eq - p) && !strncmp(OPTS[k].name, p, (size_t)(eq - p))) break;
        char val[CL_STR + 8];
        size_t vl = (size_t)(nl - eq - 1);
        if (k == NOPTS || vl >= sizeof val) {
            snprintf(err, errn, "unknown setting \"%.*s\" in checkpoint", (int)(eq - p), p);
            return -1;
        }
        memcpy(val, eq + 1, vl);
        val[vl] = 0;
        const ex_opt *d = &OPTS[k];
        char why[600];
        if (!model_only || d->tag == 2) {
            if (args.given[k] && d->tag == 2) {
                char now[CL_STR + 8], was[CL_STR + 8];
                ex_opt_format(d, o, now, sizeof now);
                cl_opts tmp = *o;
                if (ex_opt_set(d, &tmp, val, why, sizeof why)) {
                    snprintf(err, errn, "the checkpoint's stored setting is invalid: %s", why);
                    return -1;
                }
                ex_opt_format(d, &tmp, was, sizeof was);
                if (strcmp(was, now)) {
                    snprintf(err, errn, "the checkpoint holds a model of another configuration: --%s %s there, %s here",
                             d->name, was, now);
                    return -1;
                }
            } else if (!args.given[k] && ex_opt_set(d, o, val, why, sizeof why)) {
                snprintf(err, errn, "the checkpoint's stored setting is invalid: %s", why);
                return -1;
            }
        }
        p = *nl ? nl + 1 : nl;
    }
    return 0;
}
