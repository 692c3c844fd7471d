/* SPDX-License-Identifier: MIT */
/* examples/common/opts.c - the shared command-line layer (see opts.h): one option table per
 * program, GNU long options, range checks, --help/--version/--info, and where the bundled data
 * sets are. */
#include "common/opts.h"

#include "spool.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ numbers */

static void range_text(char *buf, size_t n, double lo, double hi, int integer)
{
    if (integer) snprintf(buf, n, "%.0f..%.0f", lo, hi);
    else snprintf(buf, n, "%g..%g", lo, hi);
}

int ex_parse_long(const char *name, const char *s, double lo, double hi, long *out, char *err, size_t errn)
{
    char r[80], *end;
    range_text(r, sizeof r, lo, hi, 1);
    errno = 0;
    long x = s && *s ? strtol(s, &end, 10) : 0;
    const char *why = NULL;
    if (!s || !*s || *end || end == s) why = "not a valid integer";
    else if (errno == ERANGE || (double)x < lo || (double)x > hi) why = "out of range";
    if (why) {
        snprintf(err, errn, "%s expects an integer in %s, got '%s' (%s)", name, r, s ? s : "", why);
        return -1;
    }
    *out = x;
    return 0;
}

int ex_parse_real(const char *name, const char *s, double lo, double hi, double *out, char *err, size_t errn)
{
    char r[80], *end;
    range_text(r, sizeof r, lo, hi, 0);
    errno = 0;
    double x = s && *s ? strtod(s, &end) : 0;
    const char *why = NULL;
    if (!s || !*s || *end || end == s) why = "not a valid number";
    else if (!isfinite(x) || errno == ERANGE) why = "not a finite number";
    else if (!(x >= lo && x <= hi)) why = "out of range";
    if (why) {
        snprintf(err, errn, "%s expects a number in %s, got '%s' (%s)", name, r, s ? s : "", why);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_u64(const char *name, const char *s, uint64_t *out, char *err, size_t errn)
{
    char *end;
    errno = 0;
    const char *p = s;
    while (*p == ' ' || *p == '\t') p++;
    unsigned long long x = *p && *p != '-' && *p != '+' ? strtoull(p, &end, 10) : 0;
    if (!*p || *p == '-' || *p == '+' || *end || errno) {
        snprintf(err, errn, "%s expects an integer in 0..%llu, got '%s' (%s)", name,
                 (unsigned long long)UINT64_MAX, s, errno == ERANGE ? "out of range" : "not a valid integer");
        return -1;
    }
    *out = (uint64_t)x;
    return 0;
}

static int in_choices(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t k = bar ? (size_t)(bar - p) : strlen(p);
        if (k == n && !strncmp(p, v, n)) return 1;
        p += k + (bar != NULL);
    }
    return 0;
}

/* "a|b|c" -> "a, b or c" */
static void choices_text(const char *choices, char *buf, size_t n)
{
    size_t k = 0;
    int items = 1;
    for (const char *p = choices; *p; p++) items += *p == '|';
    int i = 0;
    for (const char *p = choices; *p && k + 8 < n; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        k += (size_t)snprintf(buf + k, n - k, "%s%.*s", i == 0 ? "" : i == items - 1 ? " or " : ", ", (int)len, p);
        p += len + (bar != NULL);
    }
}

int ex_given_differs(const ex_cli *c, const ex_args *a, const void *mine, const void *stored,
                     const char *const *names, char *err, size_t errn)
{
    for (int i = 0; i < c->nopts && i < EX_MAX_OPTS; i++) {
        const ex_opt *d = &c->opts[i];
        int named = 0;
        for (const char *const *n = names; *n && !named; n++) named = !strcmp(*n, d->name);
        if (!named || !a->given[i] || d->type == EX_CALL) continue;
        const char *p = (const char *)mine + d->off, *q = (const char *)stored + d->off;
        char x[64], y[64];
        if (d->type == EX_STR) {
            const char *s1 = *(const char *const *)p, *s2 = *(const char *const *)q;
            if (!s1 || !s2 || !strcmp(s1, s2)) continue;
            snprintf(x, sizeof x, "%s", s1), snprintf(y, sizeof y, "%s", s2);
        } else if (d->type == EX_BUF) {
            if (!strcmp(p, q)) continue;
            snprintf(x, sizeof x, "%s", p), snprintf(y, sizeof y, "%s", q);
        } else {
            if (!memcmp(p, q, d->size)) continue;
            if (d->type == EX_DBL) ex_fmt_shortest(*(const double *)p, x, sizeof x), ex_fmt_shortest(*(const double *)q, y, sizeof y);
            else if (d->type == EX_LONG) snprintf(x, sizeof x, "%ld", *(const long *)p), snprintf(y, sizeof y, "%ld", *(const long *)q);
            else if (d->type == EX_U64) snprintf(x, sizeof x, "%llu", (unsigned long long)*(const uint64_t *)p),
                                        snprintf(y, sizeof y, "%llu", (unsigned long long)*(const uint64_t *)q);
            else snprintf(x, sizeof x, "%d", *(const int *)p), snprintf(y, sizeof y, "%d", *(const int *)q);
        }
        snprintf(err, errn, "--%s %s differs from the checkpoint's %s (a resumed run keeps the architecture it "
                 "was trained with: drop the option or start a new run)", d->name, x, y);
        return 1;
    }
    return 0;
}

int ex_opt_set(const ex_opt *d, void *base, const char *v, char *err, size_t errn)
{
    char name[80];
    snprintf(name, sizeof name, "--%s", d->name);
    char *p = (char *)base + d->off;
    if ((d->type == EX_STR || d->type == EX_BUF) && d->choices && !in_choices(d->choices, v)) {
        char c[256];
        choices_text(d->choices, c, sizeof c);
        snprintf(err, errn, "%s expects %s, got '%s'", name, c, v);
        return -1;
    }
    switch (d->type) {
    case EX_FLAG:
        if (strcmp(v, "0") && strcmp(v, "1")) {
            snprintf(err, errn, "%s takes no value", name);
            return -1;
        }
        *(int *)p = v[0] == '1';
        return 0;
    case EX_INT: {
        long x;
        double lo = d->lo < INT_MIN ? INT_MIN : d->lo, hi = d->hi > INT_MAX ? INT_MAX : d->hi;
        if (ex_parse_long(name, v, lo, hi, &x, err, errn)) return -1;
        *(int *)p = (int)x;
        return 0;
    }
    case EX_LONG: {
        long x;
        if (ex_parse_long(name, v, d->lo, d->hi, &x, err, errn)) return -1;
        *(long *)p = x;
        return 0;
    }
    case EX_U64: return parse_u64(name, v, (uint64_t *)p, err, errn);
    case EX_DBL: return ex_parse_real(name, v, d->lo, d->hi, (double *)p, err, errn);
    case EX_STR: *(const char **)p = v; return 0;
    case EX_BUF:
        if (strlen(v) >= d->size) {
            snprintf(err, errn, "%s: value longer than %zu bytes", name, d->size - 1);
            return -1;
        }
        memcpy(p, v, strlen(v) + 1);
        return 0;
    case EX_CALL: return d->call(v, base, err, errn);
    }
    snprintf(err, errn, "%s: unknown option type", name);
    return -1;
}

int ex_opt_precision(const char *v, void *base, char *err, size_t errn)
{
    (void)base;
    sp_precision p;
    if (sp_precision_parse(v, &p) != SP_OK || sp_set_precision(p) != SP_OK) {
        snprintf(err, errn, "--precision: %s", sp_last_error());
        return -1;
    }
    return 0;
}

void ex_show_precision(char *buf, size_t n) { snprintf(buf, n, "%s", sp_precision_name(sp_get_precision())); }

void ex_fmt_shortest(double v, char *buf, size_t n)
{
    /* the fewest significant digits that read back as exactly v: 0.003, not 0.0030000000000000001 */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

void ex_opt_format(const ex_opt *d, const void *base, char *buf, size_t n)
{
    const char *p = (const char *)base + d->off;
    switch (d->type) {
    case EX_FLAG:
    case EX_INT: snprintf(buf, n, "%d", *(const int *)p); break;
    case EX_LONG: snprintf(buf, n, "%ld", *(const long *)p); break;
    case EX_U64: snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case EX_DBL: ex_fmt_shortest(*(const double *)p, buf, n); break;
    case EX_STR: snprintf(buf, n, "%s", *(const char *const *)p ? *(const char *const *)p : ""); break;
    case EX_BUF: snprintf(buf, n, "%s", p); break;
    case EX_CALL:
        if (d->show) d->show(buf, n);
        else snprintf(buf, n, "%s", d->def ? d->def : "");
        break;
    }
}

/* ------------------------------------------------------------------ parsing */

const ex_opt *ex_opt_find(const ex_cli *c, const char *name)
{
    for (int i = 0; i < c->nopts; i++)
        if (!strcmp(c->opts[i].name, name)) return &c->opts[i];
    return NULL;
}

int ex_given(const ex_cli *c, const ex_args *a, const char *name)
{
    const ex_opt *d = ex_opt_find(c, name);
    return d ? a->given[d - c->opts] : 0;
}

void ex_cli_version(const ex_cli *c, FILE *f)
{
    fprintf(f, "%s (spool) %s\n", c->prog, sp_version());
}

static void help_line(const ex_opt *d, FILE *f)
{
    char left[64];
    const char *meta = d->meta ? d->meta
                     : d->type == EX_FLAG ? ""
                     : d->type == EX_DBL ? "X"
                     : d->type == EX_STR || d->type == EX_BUF || d->type == EX_CALL ? "S" : "N";
    snprintf(left, sizeof left, "--%s%s%s", d->name, *meta ? " " : "", meta);
    const char *h = d->help ? d->help : "";
    if (strlen(left) > 21) fprintf(f, "  %s\n  %-21s ", left, "");
    else fprintf(f, "  %-21s ", left);
    int show_def = d->type != EX_FLAG && d->def && d->def[0] && !strstr(h, "default");
    fprintf(f, "%s", h);
    if (show_def) fprintf(f, " (default: %s)", d->def);
    fputc('\n', f);
}

void ex_cli_help(const ex_cli *c, FILE *f)
{
    fputs(c->usage, f);
    if (c->cmds) {
        for (int k = 0; c->cmds[k]; k++) {
            int any = 0;
            for (int i = 0; i < c->nopts; i++) {
                const ex_opt *d = &c->opts[i];
                if (d->where && !(d->where & (1u << k))) continue;
                if (!any) {
                    if (c->cmd_help && c->cmd_help[k]) fprintf(f, "\n%s:\n", c->cmd_help[k]);
                    else fprintf(f, "\nOptions of %s:\n", c->cmds[k]);
                }
                any = 1;
                help_line(d, f);
            }
        }
    } else {
        fprintf(f, "\nOptions:\n");
        for (int i = 0; i < c->nopts; i++) help_line(&c->opts[i], f);
    }
    fprintf(f, "\nEvery program:\n"
               "  --help                this text\n"
               "  --version             program and library version\n"
               "  --info                the library's configuration (version, real type, BLIS kernels, threads)\n"
               "Options take --name VALUE or --name=VALUE. Exit status: 0 success, 1 the run failed,\n"
               "2 bad command line.\n");
    if (c->usage_more) c->usage_more(f);
}

#define FAIL(...)                                                  \
    do {                                                           \
        fprintf(stderr, "%s: ", c->prog);                          \
        fprintf(stderr, __VA_ARGS__);                              \
        fprintf(stderr, " (try %s --help)\n", c->prog);            \
        return EX_EXIT_USAGE;                                      \
    } while (0)

int ex_cli_parse(const ex_cli *c, int argc, char **argv, void *base, ex_args *a)
{
    char err[512];
    memset(a, 0, sizeof *a);
    a->cmd = -1;
    if (c->nopts > EX_MAX_OPTS) FAIL("too many options in the table (%d > %d)", c->nopts, EX_MAX_OPTS);
    for (int i = 0; i < c->nopts; i++) {
        const ex_opt *d = &c->opts[i];
        if (d->def && d->type != EX_CALL && ex_opt_set(d, base, d->def, err, sizeof err))
            FAIL("bad default of the option table: %s", err);
    }
    int first = 1;
    /* the global options come before any command too */
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--")) break;
        if (!strcmp(s, "--help") || !strcmp(s, "-h") || (i == 1 && c->cmds && !strcmp(s, "help"))) {
            ex_cli_help(c, stdout);
            return EX_EXIT_OK;
        }
        if (!strcmp(s, "--version")) {
            ex_cli_version(c, stdout);
            return EX_EXIT_OK;
        }
        if (!strcmp(s, "--info")) {
            printf("%s\n", sp_info());
            return EX_EXIT_OK;
        }
    }
    if (c->cmds) {
        if (argc < 2) {
            fputs(c->usage, stderr);
            fprintf(stderr, "%s: a command is needed (try %s --help)\n", c->prog, c->prog);
            return EX_EXIT_USAGE;
        }
        if (argv[1][0] == '-') {
            char list[256];
            size_t n = 0;
            for (int k = 0; c->cmds[k] && n < sizeof list; k++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", k ? ", " : "", c->cmds[k]);
            FAIL("a command is needed: %s", list);
        }
        for (int k = 0; c->cmds[k]; k++)
            if (!strcmp(argv[1], c->cmds[k])) a->cmd = k;
        if (a->cmd < 0) FAIL("unknown command '%s'", argv[1]);
        first = 2;
    }
    int only_pos = 0;
    for (int i = first; i < argc; i++) {
        const char *s = argv[i];
        if (only_pos || strncmp(s, "--", 2) || !s[2]) {
            if (!only_pos && !strcmp(s, "--")) {
                only_pos = 1;
                continue;
            }
            if (s[0] == '-' && s[1] && !only_pos && !(s[1] >= '0' && s[1] <= '9'))
                FAIL("unknown option '%s'", s);
            if (a->npos >= c->max_pos || a->npos >= EX_MAX_POS) {
                if (c->max_pos == 0) FAIL("unexpected argument '%s'", s);
                FAIL("unexpected argument '%s' (at most %d %s)", s, c->max_pos, c->pos_name ? c->pos_name : "arguments");
            }
            a->pos[a->npos++] = argv[i];
            continue;
        }
        const char *name = s + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int k = 0;
        for (; k < c->nopts; k++)
            if (strlen(c->opts[k].name) == len && !strncmp(c->opts[k].name, name, len)) break;
        if (k == c->nopts) {
            if (eq) FAIL("unknown option '--%.*s'", (int)len, name);
            FAIL("unknown option '%s'", s);
        }
        const ex_opt *d = &c->opts[k];
        if (a->cmd >= 0 && d->where && !(d->where & (1u << a->cmd)))
            FAIL("option --%s does not apply to command '%s'", d->name, c->cmds[a->cmd]);
        const char *v;
        if (d->type == EX_FLAG) {
            if (eq) FAIL("option --%s takes no value", d->name);
            v = "1";
        } else if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            FAIL("option --%s needs a value", d->name);
        }
        if (ex_opt_set(d, base, v, err, sizeof err)) FAIL("%s", err);
        a->given[k] = 1;
    }
    /* spool's first use: a refused environment (a BLIS_ARCH_TYPE this CPU cannot run, a SPOOL_CPU
     * that is no kernel set) stops the program here, with the library's message */
    if (sp_init(NULL) != SP_OK) {
        fprintf(stderr, "%s: %s\n", c->prog, sp_last_error());
        return EX_EXIT_FAIL;
    }
    return -1;
}

/* --------------------------------------------------------------------- data */

#ifndef EX_DATA_INSTALLED
#define EX_DATA_INSTALLED ""
#endif
#ifndef EX_DATA_SOURCE
#define EX_DATA_SOURCE ""
#endif

static int is_dir(const char *p)
{
    struct stat st;
    return p && *p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *ex_data_dir(void)
{
    static char buf[4096];
    const char *e = getenv("SPOOL_DATA");
    if (e && *e) return e;
    e = getenv("SPOOL_CHARLM_DATA"); /* the older name, still honoured */
    if (e && *e) return e;
    char exe[4000];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(buf, sizeof buf, "%s/../share/spool/data", exe);
            if (is_dir(buf)) return buf;
        }
    }
    if (is_dir(EX_DATA_INSTALLED)) return EX_DATA_INSTALLED;
    if (is_dir(EX_DATA_SOURCE)) return EX_DATA_SOURCE;
    return NULL;
}

const char *ex_data_path(const char *name, char *buf, size_t n)
{
    const char *d = ex_data_dir();
    if (!d) snprintf(buf, n, "%s", "");
    else snprintf(buf, n, "%s/%s", d, name);
    return buf;
}

const char *ex_data_resolve(const char *arg, char *buf, size_t n)
{
    struct stat st;
    if (!arg || strchr(arg, '/') || stat(arg, &st) == 0) return arg;
    ex_data_path(arg, buf, n);
    return buf[0] && stat(buf, &st) == 0 ? buf : arg;
}

const char *ex_data_hint(void)
{
    static char buf[1024];
    const char *d = ex_data_dir();
    if (d) snprintf(buf, sizeof buf, "the bundled data sets are looked for in %s; set SPOOL_DATA=DIR to use others", d);
    else
        snprintf(buf, sizeof buf, "the bundled data sets were not found (looked in $SPOOL_DATA, ../share/spool/data next "
                                  "to the program%s%s%s%s); set SPOOL_DATA=DIR or pass the files explicitly",
                 *EX_DATA_INSTALLED ? ", " : "", EX_DATA_INSTALLED, *EX_DATA_SOURCE ? ", " : "", EX_DATA_SOURCE);
    return buf;
}

void ex_usage_data(FILE *f) { fprintf(f, "\nThe bundled data sets: %s.\n", ex_data_hint()); }
