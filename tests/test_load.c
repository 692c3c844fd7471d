/* SPDX-License-Identifier: MIT */
/* test_load.c - loading spool changes nothing in the host. A host that has set
 * its own OpenMP thread count dlopen()s libspool.so: the count and the environment are the same
 * after the load, and after spool's first use spool follows the host's count; BLIS_ARCH_TYPE is
 * set only at first use, only if the host left it unset and did not opt out (SP_INIT_KEEP_BLIS,
 * SPOOL_KEEP_BLIS=1); sp_set_threads(n) and sp_set_threads(0) change the count and give the
 * host's back. The host's settings are checked, not changed: a BLIS_ARCH_TYPE this CPU cannot
 * run (BLIS would die of SIGILL in the first product) or this BLIS does not have, and a SPOOL_CPU
 * naming no kernel set, make sp_init fail and sp_params_new / sp_tape_new return NULL with a
 * message naming the variable, and sp_info say so; runnable values work. Each case runs in its
 * own child process, since first use happens once.
 * usage: test_load LIBSPOOL.so */
#include <dlfcn.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    int threads;
    unsigned flags;
} init_opts; /* sp_init_opts, without including spool.h: this host knows only the .so */

static const char *lib;
static int failures;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "  FAIL %s:%d: ", __FILE__, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
            return 1;                                                      \
        }                                                                  \
    } while (0)

static void *open_lib(void)
{
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) fprintf(stderr, "  dlopen %s: %s\n", lib, dlerror());
    return h;
}
#define SYM(h, type, name) ((type)dlsym(h, name))

/* the host set 1 thread; loading and first use keep it; BLIS_ARCH_TYPE only at first use */
static int case_threads_kept(void)
{
    unsetenv("BLIS_ARCH_TYPE");
    unsetenv("SPOOL_KEEP_BLIS");
    omp_set_num_threads(1);
    void *h = open_lib();
    CHECK(h, "dlopen");
    CHECK(omp_get_max_threads() == 1, "after dlopen the host's OpenMP threads are %d, not 1", omp_get_max_threads());
    CHECK(!getenv("BLIS_ARCH_TYPE"), "dlopen set BLIS_ARCH_TYPE=%s", getenv("BLIS_ARCH_TYPE"));
    int (*get)(void) = SYM(h, int (*)(void), "sp_get_threads");
    void (*set)(int) = SYM(h, void (*)(int), "sp_set_threads");
    const char *(*info)(void) = SYM(h, const char *(*)(void), "sp_info");
    CHECK(get && set && info, "missing symbols");
    CHECK(get() == 1, "spool uses %d threads, the host set 1", get());
    CHECK(omp_get_max_threads() == 1, "first use changed the host's threads to %d", omp_get_max_threads());
    const char *arch = getenv("BLIS_ARCH_TYPE");
    const char *(*req)(void) = SYM(h, const char *(*)(void), "sp_blis_arch_request");
    CHECK(req, "missing sp_blis_arch_request");
    if (!strcmp(req(), "skx")) CHECK(arch && !strcmp(arch, "0"), "spool asked for skx, BLIS_ARCH_TYPE=%s", arch ? arch : "unset");
    else CHECK(!arch && !strcmp(req(), "auto"), "spool asked for %s, BLIS_ARCH_TYPE=%s", req(), arch ? arch : "unset");
#if defined(__x86_64__) && defined(__GNUC__)
    if (!__builtin_cpu_supports("avx512f")) CHECK(!arch, "no AVX-512, yet BLIS_ARCH_TYPE=%s", arch);
#endif
    CHECK(strstr(info(), "threads 1"), "sp_info: %s", info());
    omp_set_num_threads(2); /* the host changes its mind: spool follows */
    CHECK(get() == 2, "spool did not follow the host's new count: %d", get());
    set(3);
    CHECK(get() == 3 && omp_get_max_threads() == 3, "sp_set_threads(3): %d, OpenMP %d", get(), omp_get_max_threads());
    set(0);
    CHECK(omp_get_max_threads() == 2, "sp_set_threads(0) did not give the host's 2 back: %d", omp_get_max_threads());
    CHECK(get() == 2, "after sp_set_threads(0) spool uses %d", get());
    return 0;
}

/* the host's own BLIS_ARCH_TYPE is never overridden */
static int case_host_arch_kept(void)
{
    setenv("BLIS_ARCH_TYPE", "7", 1);
    void *h = open_lib();
    CHECK(h, "dlopen");
    int (*get)(void) = SYM(h, int (*)(void), "sp_get_threads");
    const char *(*req)(void) = SYM(h, const char *(*)(void), "sp_blis_arch_request");
    CHECK(get && req, "missing symbols");
    get(); /* first use (no BLIS call, so the made-up value 7 is never read by BLIS) */
    CHECK(!strcmp(getenv("BLIS_ARCH_TYPE"), "7"), "BLIS_ARCH_TYPE became %s", getenv("BLIS_ARCH_TYPE"));
    CHECK(!strcmp(req(), "auto"), "spool says it asked for %s", req());
    return 0;
}

/* opting out: sp_init(SP_INIT_KEEP_BLIS) first, or SPOOL_KEEP_BLIS=1 */
static int case_opt_out(int by_env)
{
    unsetenv("BLIS_ARCH_TYPE");
    if (by_env) setenv("SPOOL_KEEP_BLIS", "1", 1);
    void *h = open_lib();
    CHECK(h, "dlopen");
    int (*init)(const init_opts *) = SYM(h, int (*)(const init_opts *), "sp_init");
    const char *(*info)(void) = SYM(h, const char *(*)(void), "sp_info");
    const char *(*req)(void) = SYM(h, const char *(*)(void), "sp_blis_arch_request");
    CHECK(init && info && req, "missing symbols");
    if (!by_env) {
        init_opts o = {0, 1 /* SP_INIT_KEEP_BLIS */};
        CHECK(init(&o) == 0, "sp_init failed");
        CHECK(init(&o) != 0, "sp_init with flags after first use should fail");
    }
    info(); /* initialises BLIS */
    CHECK(!getenv("BLIS_ARCH_TYPE"), "opted out, yet BLIS_ARCH_TYPE=%s", getenv("BLIS_ARCH_TYPE"));
    CHECK(!strcmp(req(), "auto"), "opted out, yet spool asked for %s", req());
    return 0;
}

/* The host's BLIS_ARCH_TYPE or SPOOL_CPU (var=value) refused at first use, or accepted. */
typedef struct {
    const char *var, *value, *needle; /* needle: in the message (refused) or in sp_info (accepted) */
    int refused;
} env_case;

static const env_case env_cases[] = {
    {"BLIS_ARCH_TYPE", "1", "'knl' kernels, which need AVX-512F/CD/ER/PF", 1}, /* Xeon Phi only */
    {"BLIS_ARCH_TYPE", "2", "BLIS_ARCH_TYPE=2 names no kernel set of this BLIS", 1},  /* knc: not built */
    {"BLIS_ARCH_TYPE", "99", "BLIS_ARCH_TYPE=99 names no kernel set", 1},
    {"BLIS_ARCH_TYPE", "knl", "BLIS_ARCH_TYPE=\"knl\" is not a number", 1},
    {"BLIS_ARCH_TYPE", "25", "kernels generic,", 0}, /* BLIS_ARCH_GENERIC of BLIS 0.9: runs anywhere */
    {"SPOOL_CPU", "bogus", "SPOOL_CPU=\"bogus\" is none of baseline, avx2, avx512", 1},
    {"SPOOL_CPU", "baseline", "vector baseline,", 0},
};

static int case_env(int k)
{
    const env_case *e = &env_cases[k];
    unsetenv("BLIS_ARCH_TYPE");
    unsetenv("SPOOL_CPU");
    setenv(e->var, e->value, 1);
    void *h = open_lib();
    CHECK(h, "dlopen");
    int (*init)(const init_opts *) = SYM(h, int (*)(const init_opts *), "sp_init");
    const char *(*info)(void) = SYM(h, const char *(*)(void), "sp_info");
    const char *(*last)(void) = SYM(h, const char *(*)(void), "sp_last_error");
    void *(*params_new)(void) = SYM(h, void *(*)(void), "sp_params_new");
    void *(*tape_new)(void) = SYM(h, void *(*)(void), "sp_tape_new");
    void (*params_free)(void *) = SYM(h, void (*)(void *), "sp_params_free");
    void (*tape_free)(void *) = SYM(h, void (*)(void *), "sp_tape_free");
    CHECK(init && info && last && params_new && tape_new && params_free && tape_free, "missing symbols");
#if defined(__x86_64__) && defined(__GNUC__)
    if (!strcmp(e->value, "1") && __builtin_cpu_supports("avx512er")) return 0; /* a Xeon Phi runs knl */
#endif
    int st = init(NULL);
    void *ps = params_new(), *t = tape_new();
    if (e->refused) {
        CHECK(st != 0, "%s=%s: sp_init accepted it", e->var, e->value);
        CHECK(strstr(last(), e->needle), "%s=%s: message \"%s\"", e->var, e->value, last());
        CHECK(!ps && !t, "%s=%s: sp_params_new / sp_tape_new did not refuse", e->var, e->value);
        CHECK(strstr(last(), e->needle), "%s=%s: sp_params_new's message \"%s\"", e->var, e->value, last());
        CHECK(strstr(info(), "refused: ") && strstr(info(), e->needle), "%s=%s: sp_info \"%s\"", e->var, e->value,
              info());
    } else {
        CHECK(st == 0 && ps && t, "%s=%s refused: %s", e->var, e->value, last());
        CHECK(strstr(info(), e->needle), "%s=%s: sp_info \"%s\"", e->var, e->value, info());
    }
    CHECK(getenv(e->var) && !strcmp(getenv(e->var), e->value), "%s changed", e->var);
    if (e->refused && strcmp(e->var, "BLIS_ARCH_TYPE")) /* refused: spool did not pick BLIS's kernels either */
        CHECK(!getenv("BLIS_ARCH_TYPE"), "BLIS_ARCH_TYPE set to %s beside a refused %s", getenv("BLIS_ARCH_TYPE"), e->var);
    params_free(ps);
    tape_free(t);
    return 0;
}

static void run(const char *name, int (*fn)(int), int arg)
{
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) _exit(fn(arg));
    int st = 0;
    waitpid(p, &st, 0);
    int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    printf("%s: %s\n", ok ? "ok" : "FAIL", name);
    failures += !ok;
}

static int threads_kept(int a) { (void)a; return case_threads_kept(); }
static int host_arch_kept(int a) { (void)a; return case_host_arch_kept(); }

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_load LIBSPOOL.so\n");
        return 2;
    }
    lib = argv[1];
    run("dlopen keeps the host's threads and environment; first use follows the host", threads_kept, 0);
    run("the host's BLIS_ARCH_TYPE is kept", host_arch_kept, 0);
    run("sp_init(SP_INIT_KEEP_BLIS) opts out", case_opt_out, 0);
    run("SPOOL_KEEP_BLIS=1 opts out", case_opt_out, 1);
    for (int k = 0; k < (int)(sizeof env_cases / sizeof env_cases[0]); k++) {
        char name[128];
        snprintf(name, sizeof name, "%s=%s %s", env_cases[k].var, env_cases[k].value,
                 env_cases[k].refused ? "refused with a message, nothing runs" : "accepted");
        run(name, case_env, k);
    }
    printf("%d failed\n", failures);
    return failures != 0;
}
