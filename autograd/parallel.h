/* SPDX-License-Identifier: MIT */
/* parallel.h - when the library's loops and products use more than one thread: the size
 * thresholds, named once here, and the thread count of a region (sp__threads_now, runtime.c).
 *
 * Below a threshold the work runs on the calling thread. Starting an OpenMP team (or BLIS's
 * threads) costs microseconds on idle cores and can cost milliseconds when other processes hold
 * them, so a region pays only when the work itself takes longer than that. The values are the
 * ones the loops were written with, orders of magnitude rather than per-machine tunings (the
 * benchmarks in bench/ run with them): 32768 elements is 128 KiB of floats, about what a core
 * streams in the time a team takes to start. Changing one changes speed only, never results,
 * except that the optimizer's global gradient norm is a reduction whose rounding depends on the
 * thread count. Each comparison is kept as written (>= in the ops, > in the optimizer). */
#ifndef SP_PARALLEL_H
#define SP_PARALLEL_H

/* Elementwise ops and the losses (ops/elementwise.c, ops/loss.c): elements of the output. */
#define SP_PAR_MIN_ELEMS 32768
/* The fused cells' row loops (ops/fused.c): elements of the state, a quarter of the above
 * because each one costs several transcendental functions (sigmoid, tanh) instead of one add. */
#define SP_PAR_MIN_CELL_ELEMS (SP_PAR_MIN_ELEMS / 4)
/* The optimizers' update rules, the non-finite gradient check and the gradient norm (optim/):
 * parameter elements. */
#define SP_PAR_MIN_OPTIM_ELEMS 32768
/* GEMMs, through BLIS (ops/matmul.c) or the packed kernel (ops/packed.c): 2 M N K flops. */
#define SP_PAR_MIN_GEMM_FLOPS 2e6
/* Packing a weight matrix into panels for the packed kernel (ops/packed.c): K N elements. */
#define SP_PAR_MIN_PACK_ELEMS 65536
/* The whole-sequence recurrences (ops/seq.c): multiply-adds per time step, B H G; below it a
 * second thread costs more than it saves. */
#define SP_PAR_MIN_SEQ_MACS 262144

/* Threads for a parallel region starting now: sp_get_threads() cut to the cores other processes
 * leave idle (runtime.c). Every parallel region and multi-threaded product asks it. */
int sp__threads_now(void);

#endif
