/* SPDX-License-Identifier: MIT */
/** @file
 * spool.h - the one public header of spool, a tape-based reverse-mode autodiff library in C on
 * which recurrent networks are built. Include this; the files under spool/ are its chapters:
 *   core.h    tensors, parameters, the tape, backward, errors, threads, dot export
 *   ops.h     the differentiable ops (matmul, elementwise, shape, losses, embedding, dropout)
 *   layers.h  linear, embedding, recurrent cells and the runners that unroll them over time
 *   optim.h   optimizers, gradient clipping, learning-rate schedules, safetensors checkpoints
 *   dist.h    data-parallel training across processes on MPI (stubs that fail without MPI)
 *   onnx.h    export of a model's inference graph as an ONNX file (stubs that fail without it)
 */
#ifndef SPOOL_H
#define SPOOL_H

#include "spool/core.h"
#include "spool/ops.h"
#include "spool/layers.h"
#include "spool/optim.h"
#include "spool/dist.h"
#include "spool/onnx.h"

#endif
