/* SPDX-License-Identifier: MIT */
/* test_load.c - loading spool changes nothing in the host. A host that has set
 * its own OpenMP thread count dlopen()s libspool.so: the count and the environment are the same
 * after the load, and after spool's first use spool follows the host's count; BLIS_ARCH_TYPE is
 * set only at first use, only if the host left it unset and did not opt out (SP_INIT_KEEP_BLIS,
 * SPOOL_KEEP_BLIS=1); sp_set_threads(n) and sp_set_threads(0) change the count and give the
 * host's back. Each case runs in its own child process, since first use happens once.
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
    printf("%d failed\n", failures);
    return failures != 0;
}
