/* SPDX-License-Identifier: MIT */
/* examples/common/opts.h - the one command-line layer of every spool program (the examples and
 * bench/spool_bench): each program describes its options in one table (name, type, where the
 * value goes, default, accepted range, help) and ex_cli_parse does the rest, the same way for
 * all of them:
 *   - GNU long options: `--opt value` and `--opt=value`; flags take no value; `--` ends the
 *     options; an optional command word first (`spool-ner train ...`), with per-command options;
 *   - every number is range-checked (integer overflow, trailing junk, NaN/inf, negatives where
 *     they make no sense, thread counts above EX_MAX_THREADS) with a message naming the option;
 *   - `--help` (usage text, then every option with its default), `--version` (program and
 *     library version) and `--info` (the library's configuration line) on every program;
 *   - exit codes, the same everywhere: EX_EXIT_OK 0, EX_EXIT_FAIL 1 (the run failed: bad file,
 *     bad checkpoint, training error), EX_EXIT_USAGE 2 (bad command line).
 * ex_data_dir() finds the bundled data sets wherever the programs are (build tree or installed
 * under share/spool/). Symbols are prefixed ex_ because they are not part of the library. */
#ifndef EX_COMMON_OPTS_H
#define EX_COMMON_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "spool.h"

enum { EX_EXIT_OK = 0, EX_EXIT_FAIL = 1, EX_EXIT_USAGE = 2 };

/* The most threads a program accepts for --threads: the library's documented maximum where it
 * has one, else 1024. */
#ifdef SP_MAX_THREADS
#define EX_MAX_THREADS SP_MAX_THREADS
#else
#define EX_MAX_THREADS 1024
#endif

typedef enum {
    EX_FLAG,  /* int, set to 1 by --name (takes no value) */
    EX_INT,   /* int in [lo, hi] */
    EX_LONG,  /* long in [lo, hi] */
    EX_U64,   /* uint64_t, any non-negative integer (seeds) */
    EX_DBL,   /* finite double in [lo, hi] */
    EX_STR,   /* const char *, pointing into argv or at the default */
    EX_BUF,   /* char[size] buffer, copied (too long: an error) */
    EX_CALL,  /* no storage: call(value, base, err, errn) decides (lists, repeatable options) */
} ex_opt_type;

typedef struct ex_opt {
    const char *name;  /* without the leading "--" */
    ex_opt_type type;
    size_t off, size;  /* where in the program's option struct (EX_AT) */
    const char *def;   /* default as text, applied before parsing (NULL: leave the struct's value) */
    double lo, hi;     /* accepted range of EX_INT, EX_LONG, EX_DBL (inclusive) */
    unsigned where;    /* bit i: command i takes it (0: every command, or the program has none) */
    const char *meta;  /* value name in --help: N, X, FILE, ... */
    const char *help;  /* one line (may contain \n + indent); "(default: ...)" is added unless it says "default" */
    const char *choices; /* EX_STR/EX_BUF: the accepted values, "a|b|c" (NULL: any) */
    int (*call)(const char *value, void *base, char *err, size_t errn); /* EX_CALL: 0 or -1 with err */
    int tag;           /* free for the program (charlm: what checkpoints store) */
    void (*show)(char *buf, size_t n); /* EX_CALL: its value now, for the options block (NULL: def) */
} ex_opt;

#define EX_AT(type, field) offsetof(type, field), sizeof(((type *)0)->field)
/* Table lines: EX_OPT for numbers, strings and flags; EX_CHOICE for a string out of "a|b|c";
 * EX_CALLBACK for options that a function handles (lists, repeatable options). */
#define EX_OPT(name, kind, T, field, def, lo, hi, where, meta, help) \
    {name, kind, EX_AT(T, field), def, lo, hi, where, meta, help, NULL, NULL, 0, NULL}
#define EX_CHOICE(name, kind, T, field, def, choices, where, meta, help) \
    {name, kind, EX_AT(T, field), def, 0, 0, where, meta, help, choices, NULL, 0, NULL}
/* The --threads line every program has: 0 = the library's default, at most EX_MAX_THREADS. */
#define EX_OPT_THREADS(T, field, where) \
    EX_OPT("threads", EX_INT, T, field, "0", 0, EX_MAX_THREADS, where, "N", "threads (0 = OMP_NUM_THREADS or all cores)")
#define EX_CALLBACK(name, fn, def, where, meta, help) \
    {name, EX_CALL, 0, 0, def, 0, 0, where, meta, help, NULL, fn, 0, NULL}
/* The --precision line of every program that multiplies matrices: the products' precision of
 * every tape the program makes from then on (sp_set_precision; docs/precision.md). */
int ex_opt_precision(const char *v, void *base, char *err, size_t errn);
void ex_show_precision(char *buf, size_t n);
#define EX_OPT_PRECISION(where) \
    {"precision", EX_CALL, 0, 0, "fp32", 0, 0, where, "fp32|bf16", \
     "products in fp32, or bf16 operands summed in fp32 (as PyTorch's autocast)", NULL, ex_opt_precision, 0, \
     ex_show_precision}

typedef struct {
    const char *prog;          /* "spool-ner" */
    const char *usage;         /* printed first by --help (ends with \n) */
    void (*usage_more)(FILE *f); /* optional: more text after the options */
    const char *const *cmds;   /* NULL-terminated command names (NULL: no command word) */
    const char *const *cmd_help; /* optional: section titles per command in --help (NULL: "Options of CMD") */
    const ex_opt *opts;
    int nopts;
    int max_pos;               /* positional arguments accepted (after the command) */
    const char *pos_name;      /* their name in messages ("TEXT") */
} ex_cli;

#define EX_MAX_OPTS 96
#define EX_MAX_POS 64

typedef struct {
    int cmd;                         /* index into cmds, or -1 */
    int npos;
    char *pos[EX_MAX_POS];
    unsigned char given[EX_MAX_OPTS]; /* given[i]: opts[i] was on the command line */
} ex_args;

/* Applies the defaults to base, then parses argv. Returns -1 when the program should go on, or
 * the exit status to return now (0 after --help/--version/--info, EX_EXIT_USAGE after an error,
 * which is printed as "prog: message (try --help)", EX_EXIT_FAIL if spool refuses the host's
 * environment at its first use, sp_init, e.g. a BLIS_ARCH_TYPE this CPU cannot run). */
int ex_cli_parse(const ex_cli *c, int argc, char **argv, void *base, ex_args *a);
/* After --resume: `stored` is a copy of the options struct `mine` with the checkpoint's values
 * filled in. Returns 1 (and "--name X differs from the checkpoint's Y" in err) if one of `names`
 * (NULL-terminated) was given on the command line with another value than the checkpoint's: a
 * resumed run keeps the architecture it was trained with, and says so rather than ignore it. */
int ex_given_differs(const ex_cli *c, const ex_args *a, const void *mine, const void *stored,
                     const char *const *names, char *err, size_t errn);
/* Sets one option from text, as the command line would (range checks included). */
int ex_opt_set(const ex_opt *d, void *base, const char *value, char *err, size_t errn);
/* v in the shortest form that reads back exactly (printf %.Ng with the smallest such N). */
void ex_fmt_shortest(double v, char *buf, size_t n);
/* The value of an option as text (the inverse of ex_opt_set; reals in shortest form). */
void ex_opt_format(const ex_opt *d, const void *base, char *buf, size_t n);
/* The table entry of --name, or NULL. */
const ex_opt *ex_opt_find(const ex_cli *c, const char *name);
/* Was --name given? */
int ex_given(const ex_cli *c, const ex_args *a, const char *name);
void ex_cli_help(const ex_cli *c, FILE *f);
/* "prog (spool) 0.1.0" */
void ex_cli_version(const ex_cli *c, FILE *f);

/* Strict parsing of one number (also for the parts of list options). 0, or -1 with err set
 * to "NAME expects ..., got 'S'". */
int ex_parse_long(const char *name, const char *s, double lo, double hi, long *out, char *err, size_t errn);
int ex_parse_real(const char *name, const char *s, double lo, double hi, double *out, char *err, size_t errn);

/* The directory of the bundled data sets (examples/data in the tree, share/spool/data once
 * installed): $SPOOL_DATA if set, else next to the program (../share/spool/data from its bin/),
 * else the installed data directory, else the source tree the program was built from. NULL if
 * none exists (ex_data_hint() says what to do then). */
const char *ex_data_dir(void);
/* dir/name of a bundled data set into buf (size n); "" when the data directory is not found. */
const char *ex_data_path(const char *name, char *buf, size_t n);
/* A --data (or --eval-file) argument: a path as given when it exists or has a '/', or else (a
 * bare name like "ner-wnut17") the bundled data set or file of that name when there is one, so
 * `--data ner-wnut17` works from any directory. */
const char *ex_data_resolve(const char *arg, char *buf, size_t n);
/* A sentence for messages: where the data were looked for and how to pass them. */
const char *ex_data_hint(void);
/* For ex_cli.usage_more of the programs that read bundled data: prints the hint. */
void ex_usage_data(FILE *f);

#endif
