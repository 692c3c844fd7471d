/* SPDX-License-Identifier: MIT */
/* runtime.c - threads and the BLIS kernel set, configured at first use, never at load.
 *
 * BLIS 0.9 (Debian 12) mis-detects recent CPUs: 'haswell' kernels on AVX-512 Xeons, 'generic' on
 * AMD Zen 5 (4-6x slower GEMM). It reads BLIS_ARCH_TYPE once, when it first initialises, so
 * spool's first use (sp_init, or the first sp_params_new / sp_tape_new / sp_set_threads /
 * sp_get_threads / sp_info) sets it to 0 ('skx') when the CPU and OS support the AVX-512 subsets
 * skx kernels use, unless the host set BLIS_ARCH_TYPE or asked spool not to (SP_INIT_KEEP_BLIS,
 * SPOOL_KEEP_BLIS=1). Nothing runs when the library is loaded.
 *
 * The host's own settings are read, never changed, and checked at that first use: a
 * BLIS_ARCH_TYPE naming a kernel set this CPU cannot run (BLIS would die of SIGILL in the first
 * product) or one this BLIS does not have (BLIS would abort), and a SPOOL_CPU that is none of
 * its words, make sp_init fail and sp_params_new / sp_tape_new return NULL, with a message saying
 * which variable to fix; sp_info says so too.
 *
 * Threads: spool follows the host's OpenMP default (omp_get_max_threads(): OMP_NUM_THREADS, the
 * host's omp_set_num_threads, else all cores) and never changes it by itself. Only an explicit
 * sp_set_threads(n > 0) (or sp_init with threads > 0) sets the OpenMP and BLIS counts;
 * sp_set_threads(0) gives the host's OpenMP count back. OpenMP and BLIS never nest (BLIS runs
 * from serial code), so n threads means n busy cores.
 *
 * Busy machines: a parallel region ends only when every thread of its team has run, so a team
 * larger than the idle cores waits, at each region, for a thread the kernel has not scheduled
 * (measured: a 2-thread LSTM step 11x slower than 1 thread beside other jobs). sp_get_threads()
 * is therefore the most threads spool uses; each parallel region and product asks
 * sp__threads_now(), which cuts that to the cores not taken by other processes: runnable
 * threads of the machine (/proc/loadavg) minus this process's own running threads
 * (/proc/self/task), read at most every 20 ms. SPOOL_LOAD_AWARE=0 (or SP_INIT_FIXED_THREADS)
 * turns it off. Elsewhere than Linux it is off.
 */
#include "spool.h"
#include "parallel.h"
#include "../ops/vec.h" /* sp_info names the vector kernels chosen */
#include "../ops/amx.h" /* and the product kernels */
#include "../ops/bf16.h"
#include "../ops/kernels.h"

#include <blis.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *arch_request = "auto";
static int threads_set = 0;  /* > 0: sp_set_threads(n) is in force */
static int host_threads = 0; /* the host's OpenMP default before spool first changed it */
static sp_init_opts init_opts; /* what sp_init asked for (zero: the defaults) */

static int cpu_has_skx(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

static int initialised = 0;
static int load_aware = 1;
static int online_cores = 1;
static sp_status env_status = SP_OK; /* not SP_OK: the host's environment is refused (env_msg) */
static char env_msg[400];

/* Whether this CPU runs BLIS 0.9's kernel set id (the arch_t numbers BLIS_ARCH_TYPE takes); *need
 * names what the set executes, or is NULL if this BLIS build has no such set. */
static int arch_runs(long id, const char **need)
{
    *need = NULL;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
#define HAS(f) __builtin_cpu_supports(f)
    switch (id) {
#ifdef BLIS_CONFIG_SKX
    case BLIS_ARCH_SKX: *need = "AVX-512F/DQ/BW/VL"; return cpu_has_skx();
#endif
#ifdef BLIS_CONFIG_KNL
    case BLIS_ARCH_KNL:
        *need = "AVX-512F/CD/ER/PF (Xeon Phi)";
        return HAS("avx512f") && HAS("avx512cd") && HAS("avx512er") && HAS("avx512pf");
#endif
    /* the sets a build may leave out fall through to what they share; a missing one is default */
#ifdef BLIS_CONFIG_HASWELL
    case BLIS_ARCH_HASWELL:
#endif
#ifdef BLIS_CONFIG_ZEN3
    case BLIS_ARCH_ZEN3:
#endif
#ifdef BLIS_CONFIG_ZEN2
    case BLIS_ARCH_ZEN2:
#endif
#ifdef BLIS_CONFIG_ZEN
    case BLIS_ARCH_ZEN:
#endif
        *need = "AVX2 and FMA";
        return HAS("avx2") && HAS("fma");
#ifdef BLIS_CONFIG_EXCAVATOR
    case BLIS_ARCH_EXCAVATOR:
#endif
#ifdef BLIS_CONFIG_STEAMROLLER
    case BLIS_ARCH_STEAMROLLER:
#endif
#ifdef BLIS_CONFIG_PILEDRIVER
    case BLIS_ARCH_PILEDRIVER:
#endif
        *need = "AVX and FMA";
        return HAS("avx") && HAS("fma");
#ifdef BLIS_CONFIG_SANDYBRIDGE
    case BLIS_ARCH_SANDYBRIDGE: *need = "AVX"; return HAS("avx");
#endif
#ifdef BLIS_CONFIG_PENRYN
    case BLIS_ARCH_PENRYN: *need = "SSE4.1"; return HAS("sse4.1");
#endif
#ifdef BLIS_CONFIG_BULLDOZER
    case BLIS_ARCH_BULLDOZER: *need = "AVX and FMA4"; return HAS("avx") && HAS("fma4");
#endif
    case BLIS_ARCH_GENERIC: *need = "nothing beyond x86-64"; return 1;
    default: return 0;
    }
#undef HAS
#else
    (void)id;
    *need = "(not checked on this CPU family)";
    return 1;
#endif
}

/* The host's BLIS_ARCH_TYPE, read as BLIS 0.9 reads it (strtol; -1 means unset), checked against
 * this CPU and this BLIS. 0 if fine, else -1 with env_msg written. */
static int check_blis_arch(const char *v)
{
    char *end;
    long id = strtol(v, &end, 10);
    while (end != v && (*end == ' ' || *end == '\t' || *end == '\n')) end++;
    const char *need = NULL;
    if (end == v || *end) {
        snprintf(env_msg, sizeof env_msg, "BLIS_ARCH_TYPE=\"%.40s\" is not a number: BLIS reads only the number of "
                 "a kernel set (0 skx, 3 haswell, %d generic, ...) and would take it as %ld; unset it or give a number",
                 v, (int)BLIS_ARCH_GENERIC, id);
        return -1;
    }
    if (id == -1 || arch_runs(id, &need)) return 0;
    if (!need)
        snprintf(env_msg, sizeof env_msg, "BLIS_ARCH_TYPE=%ld names no kernel set of this BLIS for this CPU family (BLIS "
                 "would abort); unset it or give one of its x86-64 sets (0 skx, 3 haswell, %d generic, ...)",
                 id, (int)BLIS_ARCH_GENERIC);
    else
        snprintf(env_msg, sizeof env_msg, "BLIS_ARCH_TYPE=%ld asks for BLIS's '%s' kernels, which need %s: this CPU "
                 "lacks them and the first product would die of an illegal instruction; unset BLIS_ARCH_TYPE (spool "
                 "then picks the kernels this CPU runs)", id, bli_arch_string((arch_t)id), need);
    return -1;
}

/* The host's environment: SP_OK, or why it is refused (env_msg). Read only, never changed. */
static sp_status check_env(void)
{
    const char *arch = getenv("BLIS_ARCH_TYPE"), *cpu = getenv("SPOOL_CPU");
    if (arch && check_blis_arch(arch)) return SP_ERR_ARG;
    if (cpu && !sp__vec_name_known(cpu)) {
        snprintf(env_msg, sizeof env_msg, "SPOOL_CPU=\"%.40s\" is none of baseline, avx2, avx512, avx512bf16, amx (the widest "
                 "kernels spool may use); unset it or give one of them", cpu);
        return SP_ERR_ARG;
    }
    return SP_OK;
}

static void init_once(void)
{
    initialised = 1;
    env_status = check_env();
    const char *la = getenv("SPOOL_LOAD_AWARE");
    if ((la && !strcmp(la, "0")) || (init_opts.flags & SP_INIT_FIXED_THREADS)) load_aware = 0;
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    online_cores = nc > 0 ? (int)nc : 1;
    const char *keep = getenv("SPOOL_KEEP_BLIS");
    int keep_blis = (init_opts.flags & SP_INIT_KEEP_BLIS) || (keep && *keep && strcmp(keep, "0"));
    if (env_status == SP_OK && !keep_blis && !getenv("BLIS_ARCH_TYPE") && cpu_has_skx()) {
        setenv("BLIS_ARCH_TYPE", "0", 0); /* BLIS_ARCH_SKX is enum value 0 in BLIS 0.9 */
        arch_request = "skx";
    }
}

static void init_quiet(void) { pthread_once(&once, init_once); } /* for the calls that report no errors */

sp_status sp_runtime_init(void)
{
    init_quiet();
    return env_status == SP_OK ? SP_OK : sp_fail(env_status, "%s", env_msg);
}

sp_status sp_init(const sp_init_opts *o)
{
    if (o && o->threads < 0) return sp_fail(SP_ERR_ARG, "sp_init: threads %d < 0", o->threads);
    if (o && o->flags && initialised)
        return sp_fail(SP_ERR_STATE, "sp_init: flags 0x%x come too late: spool was already configured by an "
                                     "earlier call (call sp_init first)", o->flags);
    if (o) init_opts = *o;
    sp_status st = sp_runtime_init();
    if (st != SP_OK) return st;
    if (o && o->threads > 0) sp_set_threads(o->threads);
    return SP_OK;
}

void sp_set_threads(int n)
{
    init_quiet();
    if (n <= 0) { /* back to the host's OpenMP default */
        if (threads_set && host_threads > 0) {
            omp_set_num_threads(host_threads);
            if (env_status == SP_OK) bli_thread_set_num_threads(host_threads); /* else BLIS must not start */
        }
        threads_set = 0;
        return;
    }
    if (n > SP_MAX_THREADS) {
        sp_fail(SP_ERR_ARG, "sp_set_threads: %d threads capped at SP_MAX_THREADS = %d", n, SP_MAX_THREADS);
        n = SP_MAX_THREADS;
    }
    if (!threads_set) host_threads = omp_get_max_threads();
    threads_set = n;
    omp_set_num_threads(n);
    if (env_status == SP_OK) bli_thread_set_num_threads(n);
}

int sp_get_threads(void)
{
    init_quiet();
    if (threads_set) return threads_set;
    int n = omp_get_max_threads();
    return n > 0 ? n : 1;
}

/* Small read of a /proc file into buf; -1 on any failure. */
static int read_small(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t k = read(fd, buf, n - 1);
    close(fd);
    if (k <= 0) return -1;
    buf[k] = 0;
    return (int)k;
}

/* Runnable threads of the machine that are not this process's: -1 if unknown. */
static int others_running(void)
{
    char buf[256];
    if (read_small("/proc/loadavg", buf, sizeof buf) < 0) return -1;
    const char *slash = strchr(buf, '/'), *p = slash;
    while (p && p > buf && p[-1] != ' ') p--;
    if (!slash || !p) return -1;
    int running = atoi(p), own = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", e->d_name);
        if (read_small(path, buf, sizeof buf) < 0) continue;
        const char *q = strrchr(buf, ')'); /* the state follows the command name's ')' */
        if (q && q[1] == ' ' && q[2] == 'R') own++;
    }
    closedir(d);
    int o = running - own;
    return o > 0 ? o : 0;
}

int sp__threads_now(void)
{
    int n = sp_get_threads();
    if (n <= 1 || !load_aware) return n;
    static _Atomic long last_ms = -1000;
    static _Atomic int avail = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long ms = (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (ms - atomic_load(&last_ms) >= 20) {
        atomic_store(&last_ms, ms);
        int o = others_running();
        atomic_store(&avail, o < 0 ? online_cores : online_cores - o);
    }
    int a = atomic_load(&avail);
    if (a < 1) a = 1;
    return a < n ? a : n;
}

const char *sp_version(void) { return SP_VERSION; }

const char *sp_blis_arch_request(void)
{
    init_quiet();
    return arch_request;
}

const char *sp_info(void)
{
    static char buf[640];
    if (sp_runtime_init() != SP_OK) { /* BLIS must not start: it would abort or run what the CPU cannot */
        snprintf(buf, sizeof buf, "spool %s (%s), BLIS %s, refused: %s", SP_VERSION, SP_REAL_NAME,
                 bli_info_get_version_str(), env_msg);
        return buf;
    }
    bli_init(); /* BLIS's queries below need it initialised (idempotent) */
#ifdef SP_USE_DOUBLE
    const char *bf16 = "none (double build)";
#else
    char bf16[160];
    const char *amx = sp__amx_name(); /* AMX through oneDNN takes the products it accepts */
    snprintf(bf16, sizeof bf16, amx ? "%s, else %s" : "%s%s", amx ? amx : "", sp__bf16_kernel_name());
#endif
    snprintf(buf, sizeof buf, "spool %s (%s), BLIS %s, kernels %s, vector %s, products fp32 %s, bf16 %s, threads %d",
             SP_VERSION, SP_REAL_NAME, bli_info_get_version_str(), bli_arch_string(bli_arch_query_id()),
             sp__vec()->isa, sp__panels_floats(64, 64) ? "packed avx512 + BLIS" : "BLIS", bf16, sp_get_threads());
    return buf;
}
