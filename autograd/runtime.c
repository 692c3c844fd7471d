/* runtime.c - threads and the BLIS kernel set.
 *
 * BLIS 0.9 (Debian 12) mis-detects recent CPUs: 'haswell' kernels on AVX-512 Xeons, 'generic' on
 * AMD Zen 5 (4-6x slower GEMM). It reads BLIS_ARCH_TYPE once, when it first initialises, so
 * spool sets it before any BLIS call: to 0 ('skx') when the CPU and OS support the AVX-512
 * subsets skx kernels use, unless the user set BLIS_ARCH_TYPE. OpenMP and BLIS threads are set
 * together by sp_set_threads; the two never nest (BLIS runs from serial code), so n threads
 * means n busy cores.
 */
#include "spool.h"

#include <blis.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *arch_request = "auto";
static int threads_in_use = 1;

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

static void init_once(void)
{
    if (!getenv("BLIS_ARCH_TYPE") && cpu_has_skx()) {
        setenv("BLIS_ARCH_TYPE", "0", 0); /* BLIS_ARCH_SKX is enum value 0 in BLIS 0.9 */
        arch_request = "skx";
    }
    sp_set_threads(0);
}

void sp_runtime_init(void) { pthread_once(&once, init_once); }

/* Runs when the shared library loads (or the program starts), before user code can touch BLIS. */
__attribute__((constructor)) static void sp_runtime_ctor(void) { sp_runtime_init(); }

void sp_set_threads(int n)
{
    if (n <= 0) {
        const char *e = getenv("OMP_NUM_THREADS");
        n = e ? atoi(e) : 0;
        if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
        if (n <= 0) n = 1;
    }
    threads_in_use = n;
    omp_set_num_threads(n);
    bli_thread_set_num_threads(n);
}

int sp_get_threads(void)
{
    sp_runtime_init();
    return threads_in_use;
}

const char *sp_blis_arch_request(void)
{
    sp_runtime_init();
    return arch_request;
}

const char *sp_info(void)
{
    static char buf[256];
    sp_runtime_init();
    snprintf(buf, sizeof buf, "spool %s (%s), BLIS %s, kernels %s, threads %d", SP_VERSION,
             SP_REAL_NAME, bli_info_get_version_str(), bli_arch_string(bli_arch_query_id()),
             threads_in_use);
    return buf;
}
