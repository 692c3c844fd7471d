/* SPDX-License-Identifier: MIT */
/** @file
 * spool/dist.h - data-parallel training across processes and machines on MPI.
 *
 * Every rank (process) holds a whole copy of the model and trains on its own share of each
 * step's batch; after sp_backward the gradients are averaged across ranks, so every rank applies
 * the identical update and the parameters stay identical. This is the design of Horovod and
 * Marian: no parameter server, one all-reduce per step (split into buckets).
 *
 *   sp_dist *d = sp_dist_join(NULL);                  // MPI_COMM_WORLD, defaults
 *   sp_dist_check(d, cfg_text, strlen(cfg_text), "model configuration");
 *   sp_dist_bcast_params(d, ps, 0);                   // every rank starts from rank 0's values
 *   for each step:
 *       forward and sp_backward on this rank's rows (loss = mean over its n_real tokens)
 *       sp_dist_allreduce_grads(d, ps, n_real, NULL); // now the mean over all ranks' tokens
 *       sp_clip_grad_norm(...); sp_optim_step(...);   // see the averaged gradients
 *   sp_dist_leave(d);
 *
 * The header is always part of spool.h. In a library built without MPI (meson -Dmpi=disabled,
 * or auto without Open MPI installed) sp_dist_available() is 0 and sp_dist_join fails with
 * SP_ERR_STATE and a message saying so; every other function then only ever sees NULL and fails
 * with SP_ERR_ARG. A program can therefore call this API unconditionally and stay one process.
 *
 * Errors: the communicator is a duplicate of the caller's with MPI_ERRORS_RETURN, and every
 * collective is posted nonblocking and polled against a deadline (sp_dist_opts.timeout_s), so
 * an MPI failure or a rank that stops answering becomes an sp_status with a message
 * (sp_last_error) instead of an abort or a hang. After a failed collective the group is
 * unusable (later calls fail with SP_ERR_STATE); the program reports and ends. Ending the other
 * ranks is the program's decision: sp_dist_abort (MPI_Abort) is there for that, and the library
 * never calls it. A rank that dies is detected by the MPI launcher (mpirun ends the job).
 *
 * Threads: MPI is initialised with MPI_THREAD_FUNNELED if the caller has not initialised it;
 * call this API from the thread that joined. OpenMP/BLIS threads never call MPI.
 */
#ifndef SPOOL_DIST_H
#define SPOOL_DIST_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

SP_API_BEGIN

/** A group of ranks training one model together (opaque). */
typedef struct sp_dist sp_dist;

/** 1 if this library was built with MPI, else 0. */
int sp_dist_available(void);
/** 1 if the process looks started by an MPI launcher (mpirun/mpiexec/srun: one of
 * OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK, PMI_SIZE is in the environment), else 0. Programs use
 * it to join only when launched so; it reads the environment and changes nothing. */
int sp_dist_launched(void);

/** Options of sp_dist_join; zero-initialised means the defaults. */
typedef struct {
    /** A pointer to the MPI_Comm to work in (it is duplicated; the caller's stays untouched), or
     * NULL for MPI_COMM_WORLD. */
    const void *comm;
    /** Gradient bucket size in bytes for sp_dist_allreduce_grads: the slab is reduced in pieces of
     * this size, each its own MPI_Iallreduce, so the scaling of one piece and the norm of another
     * overlap the transfer of a third. 0: 4 MiB. Rounded to whole elements; at least one. */
    size_t bucket_bytes;
    /** Seconds a collective may take before it is an error (a rank died, hangs or is running a
     * different program). 0: SP_DIST_DEFAULT_TIMEOUT_S; < 0: wait for ever. It cannot bound
     * MPI_Init_thread inside sp_dist_join, which waits for every rank to start and has no
     * deadline in MPI: a program that must not wait for ever there arms its own watchdog (the
     * example programs end the process after the same timeout). */
    double timeout_s;
} sp_dist_opts;

/** The timeout of sp_dist_opts.timeout_s = 0, in seconds. */
#define SP_DIST_DEFAULT_TIMEOUT_S 600.0

/** Joins the group of ranks of o->comm (o may be NULL: the world, defaults). Initialises MPI
 * if nobody has (and then sp_dist_leave of the last group finalises it). Collective: every rank
 * of the communicator calls it. NULL on error (sp_last_error). */
sp_dist *sp_dist_join(const sp_dist_opts *o);
/** Leaves the group (frees the duplicated communicator). NULL is a no-op. Not collective unless it
 * finalises MPI (then it is, as MPI_Finalize is). */
void sp_dist_leave(sp_dist *d);

int sp_dist_rank(const sp_dist *d);   /**< 0..size-1; 0 for NULL */
int sp_dist_size(const sp_dist *d);   /**< >= 1; 1 for NULL */

/** Checks that every rank passed the same n bytes (a 64-bit FNV-1a hash is compared; the bytes are
 * typically the model configuration as text). On a mismatch every rank returns SP_ERR_ARG with
 * "<what> differs between ranks: rank r has hash ..., rank 0 has ...". Collective. */
sp_status sp_dist_check(sp_dist *d, const void *bytes, size_t n, const char *what) SP_WARN_UNUSED;

/** Copies the parameter values of rank root to every rank, after checking that every rank has the
 * same parameters (names, shapes, order: a hash of the layout, as sp_dist_check). Collective. */
sp_status sp_dist_bcast_params(sp_dist *d, sp_params *ps, int root) SP_WARN_UNUSED;
/** Copies bytes from root to every rank. Collective. */
sp_status sp_dist_bcast(sp_dist *d, void *buf, size_t bytes, int root) SP_WARN_UNUSED;
/** Sums n doubles across ranks in place (every rank gets the sum). Collective. */
sp_status sp_dist_sum(sp_dist *d, double *x, int n) SP_WARN_UNUSED;

/** Replaces the gradients of ps on every rank by their weighted mean over the ranks:
 *   g  <-  sum_r weight_r * g_r / sum_r weight_r
 * With weight = the number of real (unmasked) tokens whose mean loss this rank backpropagated,
 * the result is the gradient of the mean loss over all ranks' tokens, i.e. what one process
 * computes on the concatenated batch. weight >= 0 and finite; the sum must be > 0 (a rank with no
 * tokens passes 0). *total (may be NULL) receives sum_r weight_r. A NaN or Inf gradient on any
 * rank makes the mean non-finite on every rank, so sp_optim_step's guard refuses the step on
 * every rank alike. Collective; every rank must pass a parameter set of the same layout. */
sp_status sp_dist_allreduce_grads(sp_dist *d, sp_params *ps, double weight, double *total) SP_WARN_UNUSED;

/** Wall seconds spent in sp_dist_allreduce_grads (scaling, transfer and waiting) since the join,
 * and the number of calls. */
double sp_dist_reduce_seconds(const sp_dist *d);
/** The number of sp_dist_allreduce_grads calls since the join. */
int64_t sp_dist_reduce_calls(const sp_dist *d);

/** Ends every rank of the group's job with exit code `code` (MPI_Abort). Only for a program that
 * decides so after an error; spool never calls it. Does nothing for NULL. */
void sp_dist_abort(sp_dist *d, int code);

SP_API_END

#ifdef __cplusplus
}
#endif
#endif
