/* SPDX-License-Identifier: MIT */
/* examples/common/dist.h - how the programs that train under mpirun (spool-charlm,
 * spool-sentiment, spool-dist-bench) join the group. MPI_Init_thread waits for every rank of the
 * job to start and has no deadline of its own, so a rank that never joins (another program on
 * that slot, a busy or stuck process) would keep the others waiting for ever, silent. The join
 * therefore runs under a watchdog thread: if it has not completed within the group's timeout,
 * the watchdog says so and ends the process (status 1), and the launcher then ends the job.
 * Ending the process is the program's decision, which is why this lives here and not in the
 * library. */
#ifndef EX_COMMON_DIST_H
#define EX_COMMON_DIST_H

#include "spool.h"

/* Joins the group if the process was started by an MPI launcher (sp_dist_launched); else *d is
 * NULL and nothing happens. o->timeout_s bounds the whole join (0: SP_DIST_DEFAULT_TIMEOUT_S,
 * < 0: no bound); `option` names the command-line option that sets it, for the message (NULL:
 * none). 0 on success, 1 with a message "PROG: ..." on stderr. */
int ex_dist_join(const char *prog, const sp_dist_opts *o, const char *option, sp_dist **d);

#endif
