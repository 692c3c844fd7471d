/* opts.c - the command-line options of spool-charlm as one table, so that parsing, --help (with
 * every default), the configuration echo at start and the configuration stored in checkpoints
 * cannot drift apart. */
#include "charlm.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum { T_STR, T_INT, T_LONG, T_DBL, T_FLAG };
/* where: which commands take it; store: 1 = kept in checkpoints, 2 = defines the model (must
 * match when resuming) */
typedef struct {
    const char *name;
    int type;
    size_t off, size;
    const char *def;
    int where, store;
    const char *help;
} opt_def;

#define S(f) offsetof(cl_opts, f), sizeof(((cl_opts *)0)->f)
#define TR CL_TRAIN
#define ALL (CL_TRAIN | CL_SAMPLE | CL_EVAL | CL_SCORE)
static const opt_def OPTS[] = {
    {"data", T_STR, S(data), "names", TR | CL_EVAL, 1,
     "training text: a file, or a bundled set: names, dinos, shakespeare"},
    {"valid", T_STR, S(valid), "", TR | CL_EVAL, 1,
     "held-out file (default: none, i.e. the bundled set's test split, or for another file every 10th line (lines) or the last 10% (stream))"},
    {"mode", T_STR, S(mode), "auto", TR, 2,
     "lines (one example per line, start/end token) | stream (running text, state carried) | auto (stream for shakespeare or lines longer than 100 chars)"},
    {"checkpoint", T_STR, S(checkpoint), "charlm.safetensors", ALL, 0, "checkpoint file written by train, read by the others"},
    {"resume", T_FLAG, S(resume), "0", TR, 0, "continue training from --checkpoint (same losses as an uninterrupted run)"},
    {"log", T_STR, S(log), "", TR, 0, "CSV log of losses and gradient norms (default: the checkpoint name with .csv)"},
    {"plot", T_STR, S(plot), "", TR, 0, "SVG of the loss curves drawn with gnuplot at the end ('none' for none; default: the checkpoint name with .svg)"},
    {"dot", T_STR, S(dot), "", TR, 0, "write the graph of the first training step as Graphviz dot to this file"},
    {"cell", T_STR, S(cell), "lstm", TR, 2, NULL /* filled from cl_cell_list() */},
    {"hidden", T_INT, S(hidden), "128", TR, 2, "hidden units per layer"},
    {"layers", T_INT, S(layers), "1", TR, 2, "stacked recurrent layers"},
    {"embed", T_INT, S(embed), "32", TR, 2, "embedding size of a character"},
    {"proj", T_INT, S(proj), "0", TR, 2, "LSTM projection size P < hidden (lstmp; 0 = hidden/2 for lstmp, none otherwise)"},
    {"orthogonal", T_FLAG, S(orthogonal), "0", TR, 2, "orthogonal init of recurrent weights"},
    {"forget-bias", T_FLAG, S(forget_bias), "0", TR, 2, "LSTM forget-gate bias initialised to 1"},
    {"dropout", T_DBL, S(dropout), "0", TR, 1, "dropout between layers and before the output layer"},
    {"seq", T_INT, S(seq), "64", TR, 1, "characters per chunk (stream mode; truncated BPTT length)"},
    {"batch", T_INT, S(batch), "32", TR, 1, "sequences per step"},
    {"optimizer", T_STR, S(optimizer), "adam", TR, 1, "sgd | rmsprop | adagrad | adam | adamw"},
    {"lr", T_DBL, S(lr), "0.003", TR, 1, "base learning rate"},
    {"beta1", T_DBL, S(beta1), "0.9", TR, 1, "Adam/AdamW beta1"},
    {"beta2", T_DBL, S(beta2), "0.999", TR, 1, "Adam/AdamW beta2"},
    {"eps", T_DBL, S(eps), "1e-8", TR, 1, "epsilon of adam, adamw, rmsprop, adagrad"},
    {"momentum", T_DBL, S(momentum), "0", TR, 1, "SGD / RMSprop momentum"},
    {"weight-decay", T_DBL, S(weight_decay), "0", TR, 1, "weight decay, L2 (adamw: decoupled, and 0.01 unless this option is given)"},
    {"clip", T_DBL, S(clip), "5", TR, 1, "clip the global gradient norm to this (0 = no clipping)"},
    {"lr-schedule", T_STR, S(lr_schedule), "cosine", TR, 1, "constant | step | cosine (with --warmup, down to --min-lr)"},
    {"warmup", T_INT, S(warmup), "100", TR, 1, "cosine: linear warm-up steps"},
    {"min-lr", T_DBL, S(min_lr), "0.0001", TR, 1, "cosine: final learning rate"},
    {"step-size", T_INT, S(step_size), "1000", TR, 1, "step schedule: steps between decays"},
    {"gamma", T_DBL, S(gamma), "0.5", TR, 1, "step schedule: decay factor"},
    {"steps", T_LONG, S(steps), "10000", TR, 1, "optimizer steps (ignored if --epochs is given)"},
    {"epochs", T_DBL, S(epochs), "0", TR, 1, "train for this many passes over the data instead of --steps"},
    {"seed", T_LONG, S(seed), "1", TR | CL_SAMPLE, 1, "random seed (init, data order, dropout; sampling)"},
    {"threads", T_INT, S(threads), "0", ALL, 0, "threads (0 = OMP_NUM_THREADS or all cores)"},
    {"eval-every", T_INT, S(eval_every), "500", TR, 0, "held-out loss every N steps (0 = only at the end)"},
    {"checkpoint-every", T_INT, S(checkpoint_every), "1000", TR, 0, "write the checkpoint every N steps (0 = only at the end)"},
    {"print-every", T_INT, S(print_every), "100", TR, 0, "a progress line every N steps when stderr is not a terminal"},
    {"stop-after", T_LONG, S(stop_after), "0", TR, 0, "stop after this step with a checkpoint, as Ctrl-C does (0 = never; for tests of --resume)"},
    {"progress", T_FLAG, S(progress), "0", TR, 0, "force the progress bar even when stderr is not a terminal"},
    {"temperature", T_DBL, S(temperature), "1", CL_SAMPLE, 0, "sampling temperature (> 0; 0 = always the most likely character)"},
    {"top-k", T_INT, S(top_k), "0", CL_SAMPLE, 0, "sample among the k most likely characters only (0 = all)"},
    {"prime", T_STR, S(prime), "", CL_SAMPLE, 0, "text the model reads before sampling (it is printed first)"},
    {"prime-file", T_STR, S(prime_file), "", CL_SAMPLE, 0, "read the priming text from this file"},
    {"max-len", T_INT, S(max_len), "0", CL_SAMPLE, 0, "characters per sample (0 = 100 for lines data, 500 for stream)"},
    {"count", T_INT, S(count), "10", CL_SAMPLE, 0, "number of samples (lines mode: names; stream: passages)"},
    {"split", T_STR, S(split), "valid", CL_EVAL, 0, "valid | train: which split eval reads"},
    {"state", T_STR, S(state), "carry", CL_EVAL, 0, "stream eval: carry the state from chunk to chunk, or reset it at each chunk"},
    {"eval-batch", T_INT, S(eval_batch), "1", CL_EVAL, 0, "stream eval: parallel tracks (1 = the split read in order as one stream)"},
    {"eval-seq", T_INT, S(eval_seq), "0", CL_EVAL, 0, "stream eval: chunk length (0 = the training --seq)"},
};
#define NOPTS ((int)(sizeof OPTS / sizeof OPTS[0]))
static int given[NOPTS];

static const char *help_of(const opt_def *d)
{
    static char buf[256];
    if (d->help) return d->help;
    snprintf(buf, sizeof buf, "recurrent cell: %s", cl_cell_list());
    return buf;
}

static int set_value(cl_opts *o, const opt_def *d, const char *v, char *err, size_t errn)
{
    char *p = (char *)o + d->off, *end;
    errno = 0;
    switch (d->type) {
    case T_STR:
        if (strlen(v) >= d->size) {
            snprintf(err, errn, "--%s: value longer than %zu bytes", d->name, d->size - 1);
            return -1;
        }
        strcpy(p, v);
        return 0;
    case T_FLAG:
    case T_INT: {
        long x = strtol(v, &end, 10);
        if (end == v || *end || errno || x < -2147483647L || x > 2147483647L) break;
        *(int *)p = (int)x;
        return 0;
    }
    case T_LONG: {
        long x = strtol(v, &end, 10);
        if (end == v || *end || errno) break;
        *(long *)p = x;
        return 0;
    }
    case T_DBL: {
        double x = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(x)) break;
        *(double *)p = x;
        return 0;
    }
    }
    snprintf(err, errn, "--%s: '%s' is not a valid %s", d->name, v,
             d->type == T_DBL ? "number" : "integer");
    return -1;
}

static void format_value(const cl_opts *o, const opt_def *d, char *buf, size_t n)
{
    const char *p = (const char *)o + d->off;
    switch (d->type) {
    case T_STR: snprintf(buf, n, "%s", p); break;
    case T_FLAG:
    case T_INT: snprintf(buf, n, "%d", *(const int *)p); break;
    case T_LONG: snprintf(buf, n, "%ld", *(const long *)p); break;
    case T_DBL: snprintf(buf, n, "%.17g", *(const double *)p); break;
    }
}

int cl_opts_given(const char *name)
{
    for (int i = 0; i < NOPTS; i++)
        if (!strcmp(OPTS[i].name, name)) return given[i];
    return 0;
}

int cl_opts_parse(cl_opts *o, int cmd, int argc, char **argv, int first, char **pos, int *npos)
{
    char err[600];
    memset(o, 0, sizeof *o);
    memset(given, 0, sizeof given);
    for (int i = 0; i < NOPTS; i++) set_value(o, &OPTS[i], OPTS[i].def, err, sizeof err);
    *npos = 0;
    for (int a = first; a < argc; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2) || !arg[2]) {
            if (*npos >= 4) {
                fprintf(stderr, "spool-charlm: unexpected argument '%s' (try --help)\n", arg);
                return -1;
            }
            pos[(*npos)++] = argv[a];
            continue;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const opt_def *d = NULL;
        int k = 0;
        for (; k < NOPTS; k++)
            if (strlen(OPTS[k].name) == len && !strncmp(OPTS[k].name, name, len)) { d = &OPTS[k]; break; }
        if (!d) {
            fprintf(stderr, "spool-charlm: unknown option '%s' (try --help)\n", arg);
            return -1;
        }
        if (!(d->where & cmd)) {
            fprintf(stderr, "spool-charlm: option --%s does not apply to this command (try --help)\n", d->name);
            return -1;
        }
        const char *v;
        if (eq) v = eq + 1;
        else if (d->type == T_FLAG) v = "1";
        else if (a + 1 < argc) v = argv[++a];
        else {
            fprintf(stderr, "spool-charlm: option --%s needs a value\n", d->name);
            return -1;
        }
        if (set_value(o, d, v, err, sizeof err)) {
            fprintf(stderr, "spool-charlm: %s\n", err);
            return -1;
        }
        given[k] = 1;
    }
    return 0;
}

void cl_opts_help(FILE *f)
{
    static const struct { int cmd; const char *title; } groups[] = {
        {CL_TRAIN, "train"}, {CL_SAMPLE, "sample"}, {CL_EVAL, "eval"}, {CL_SCORE, "score"}};
    for (int g = 0; g < 4; g++) {
        fprintf(f, "\nOptions of %s:\n", groups[g].title);
        for (int i = 0; i < NOPTS; i++) {
            const opt_def *d = &OPTS[i];
            if (!(d->where & groups[g].cmd)) continue;
            char left[64];
            snprintf(left, sizeof left, "--%s%s", d->name,
                     d->type == T_FLAG ? "" : d->type == T_STR ? " S" : d->type == T_DBL ? " X" : " N");
            if (strstr(help_of(d), "default")) fprintf(f, "  %-22s %s\n", left, help_of(d));
            else fprintf(f, "  %-22s %s (default: %s)\n", left, help_of(d), d->def[0] ? d->def : "none");
        }
    }
}

void cl_opts_echo(const cl_opts *o, int cmd, FILE *f)
{
    char v[CL_STR + 8];
    for (int i = 0; i < NOPTS; i++) {
        if (!(OPTS[i].where & cmd)) continue;
        format_value(o, &OPTS[i], v, sizeof v);
        fprintf(f, "# %-17s = %s%s\n", OPTS[i].name, v, given[i] ? "" : "  (default)");
    }
}

char *cl_opts_serialise(const cl_opts *o)
{
    size_t cap = 256;
    for (int i = 0; i < NOPTS; i++) cap += strlen(OPTS[i].name) + CL_STR + 32;
    char *s = malloc(cap), v[CL_STR + 8];
    if (!s) return NULL;
    size_t k = 0;
    for (int i = 0; i < NOPTS; i++) {
        if (!OPTS[i].store) continue;
        format_value(o, &OPTS[i], v, sizeof v);
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
        const opt_def *d = &OPTS[k];
        if (!model_only || d->store == 2) {
            if (given[k] && d->store == 2) {
                char now[CL_STR + 8];
                format_value(o, d, now, sizeof now);
                cl_opts tmp = *o;
                if (set_value(&tmp, d, val, err, errn)) return -1;
                char was[CL_STR + 8];
                format_value(&tmp, d, was, sizeof was);
                if (strcmp(was, now)) {
                    snprintf(err, errn, "the checkpoint holds a model of another configuration: --%s %s there, %s here",
                             d->name, was, now);
                    return -1;
                }
            } else if (!given[k] && set_value(o, d, val, err, errn)) {
                return -1;
            }
        }
        p = *nl ? nl + 1 : nl;
    }
    return 0;
}
