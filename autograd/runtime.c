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
 * Threads: spool follows the host's OpenMP default (omp_get_max_threads(): OMP_NUM_THREADS, the
 * host's omp_set_num_threads, else all cores) and never changes it by itself. Only an explicit
 * sp_set_threads(n > 0) (or sp_init with threads > 0) sets the OpenMP and BLIS counts;
 * sp_set_threads(0) gives the host's OpenMP count back. OpenMP and BLIS never nest (BLIS runs
 * from serial code), so n threads means n busy cores.
 */
#include "spool.h"

#include <blis.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void init_once(void)
{
    initialised = 1;
    const char *keep = getenv("SPOOL_KEEP_BLIS");
    int keep_blis = (init_opts.flags & SP_INIT_KEEP_BLIS) || (keep && *keep && strcmp(keep, "0"));
    if (!keep_blis && !getenv("BLIS_ARCH_TYPE") && cpu_has_skx()) {
        setenv("BLIS_ARCH_TYPE", "0", 0); /* BLIS_ARCH_SKX is enum value 0 in BLIS 0.9 */
        arch_request = "skx";
    }
}

void sp_runtime_init(void) { pthread_once(&once, init_once); }

sp_status sp_init(const sp_init_opts *o)
{
    if (o && o->threads < 0) return sp_fail(SP_ERR_ARG, "sp_init: threads %d < 0", o->threads);
    if (o && o->flags && initialised)
        return sp_fail(SP_ERR_STATE, "sp_init: flags 0x%x come too late: spool was already configured by an "
                                     "earlier call (call sp_init first)", o->flags);
    if (o) init_opts = *o;
    sp_runtime_init();
    if (o && o->threads > 0) sp_set_threads(o->threads);
    return SP_OK;
}

void sp_set_threads(int n)
{
    sp_runtime_init();
    if (n <= 0) { /* back to the host's OpenMP default */
        if (threads_set && host_threads > 0) {
            omp_set_num_threads(host_threads);
            bli_thread_set_num_threads(host_threads);
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
    bli_thread_set_num_threads(n);
}

int sp_get_threads(void)
{
    sp_runtime_init();
    if (threads_set) return threads_set;
    int n = omp_get_max_threads();
    return n > 0 ? n : 1;
}

const char *sp_version(void) { return SP_VERSION; }

const char *sp_blis_arch_request(void)
{
    sp_runtime_init();
    return arch_request;
}

const char *sp_info(void)
{
    static char buf[256];
    sp_runtime_init();
    bli_init(); /* BLIS's queries below need it initialised (idempotent) */
    snprintf(buf, sizeof buf, "spool %s (%s), BLIS %s, kernels %s, threads %d", SP_VERSION,
             SP_REAL_NAME, bli_info_get_version_str(), bli_arch_string(bli_arch_query_id()),
             sp_get_threads());
    return buf;
}
