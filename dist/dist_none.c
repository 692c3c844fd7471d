/* SPDX-License-Identifier: MIT */
/* dist_none.c - include/spool/dist.h in a library built without MPI (-Dmpi=disabled, or auto
 * without Open MPI): joining fails with a message saying so, everything else sees a NULL group,
 * so programs call the API unconditionally and run as one process. */
#include "spool/dist.h"

#include <stdlib.h>

int sp_dist_available(void) { return 0; }

int sp_dist_launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("PMI_SIZE");
}

static sp_status none(const char *fn)
{
    return sp_fail(SP_ERR_ARG, "%s: no group (spool was built without MPI; rebuild with meson -Dmpi=enabled)", fn);
}

sp_dist *sp_dist_join(const sp_dist_opts *o)
{
    (void)o;
    sp_fail(SP_ERR_STATE, "sp_dist_join: spool was built without MPI (install libopenmpi-dev and rebuild with "
                          "meson -Dmpi=enabled)");
    return NULL;
}

void sp_dist_leave(sp_dist *d) { (void)d; }
int sp_dist_rank(const sp_dist *d) { (void)d; return 0; }
int sp_dist_size(const sp_dist *d) { (void)d; return 1; }
sp_status sp_dist_check(sp_dist *d, const void *b, size_t n, const char *w) { (void)d, (void)b, (void)n, (void)w; return none("sp_dist_check"); }
sp_status sp_dist_bcast_params(sp_dist *d, sp_params *ps, int r) { (void)d, (void)ps, (void)r; return none("sp_dist_bcast_params"); }
sp_status sp_dist_bcast(sp_dist *d, void *b, size_t n, int r) { (void)d, (void)b, (void)n, (void)r; return none("sp_dist_bcast"); }
sp_status sp_dist_sum(sp_dist *d, double *x, int n) { (void)d, (void)x, (void)n; return none("sp_dist_sum"); }
sp_status sp_dist_allreduce_grads(sp_dist *d, sp_params *ps, double w, double *t) { (void)d, (void)ps, (void)w, (void)t; return none("sp_dist_allreduce_grads"); }
double sp_dist_reduce_seconds(const sp_dist *d) { (void)d; return 0; }
int64_t sp_dist_reduce_calls(const sp_dist *d) { (void)d; return 0; }
void sp_dist_abort(sp_dist *d, int code) { (void)d, (void)code; }
