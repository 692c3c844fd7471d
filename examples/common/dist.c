/* SPDX-License-Identifier: MIT */
/* examples/common/dist.c - joining the MPI group under a watchdog (see dist.h). */
#include "dist.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    struct timespec deadline; /* CLOCK_MONOTONIC */
    char msg[768];            /* written before the thread starts: the thread only write(2)s it */
    size_t len;
} wd = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *watch(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wd.mu);
    int rc = 0;
    while (!wd.done && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&wd.cv, &wd.mu, &wd.deadline);
    int fire = !wd.done;
    pthread_mutex_unlock(&wd.mu);
    if (fire) {
        if (write(2, wd.msg, wd.len) < 0) _exit(1);
        _exit(1); /* the main thread is inside MPI, which cannot be left any other way */
    }
    return NULL;
}

int ex_dist_join(const char *prog, const sp_dist_opts *o, const char *option, sp_dist **d)
{
    *d = NULL;
    if (!sp_dist_launched()) return 0;
    double limit = o && o->timeout_s != 0 ? o->timeout_s : SP_DIST_DEFAULT_TIMEOUT_S;
    pthread_t th;
    int armed = 0;
    if (limit >= 0 && limit < 1e9) {
        /* the rank as the launcher set it: MPI cannot say before MPI_Init_thread returns */
        const char *r = getenv("OMPI_COMM_WORLD_RANK");
        if (!r) r = getenv("PMIX_RANK");
        if (!r) r = getenv("PMI_RANK");
        int n = snprintf(wd.msg, sizeof wd.msg,
                         "%s: rank %s: the ranks did not all join within %g s (MPI start and the first collective): "
                         "a rank was not started, runs another program or is busy; stopping%s%s%s\n",
                         prog, r ? r : "?", limit, option ? " (" : "", option ? option : "", option ? " sets the time)" : "");
        wd.len = n > 0 && (size_t)n < sizeof wd.msg ? (size_t)n : strlen(wd.msg);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&wd.cv, &ca);
        pthread_condattr_destroy(&ca);
        clock_gettime(CLOCK_MONOTONIC, &wd.deadline);
        double s = (double)wd.deadline.tv_sec + 1e-9 * (double)wd.deadline.tv_nsec + limit;
        wd.deadline.tv_sec = (time_t)s;
        wd.deadline.tv_nsec = (long)((s - (double)(time_t)s) * 1e9);
        wd.done = 0;
        armed = pthread_create(&th, NULL, watch, NULL) == 0; /* no thread: the join is merely unguarded */
    }
    *d = sp_dist_join(o);
    if (armed) {
        pthread_mutex_lock(&wd.mu);
        wd.done = 1;
        pthread_cond_signal(&wd.cv);
        pthread_mutex_unlock(&wd.mu);
        pthread_join(th, NULL);
        pthread_cond_destroy(&wd.cv);
    }
    if (!*d) {
        fprintf(stderr, "%s: started by an MPI launcher, but %s\n", prog, sp_last_error());
        return 1;
    }
    return 0;
}
