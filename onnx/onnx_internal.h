/* SPDX-License-Identifier: MIT */
/* onnx_internal.h - what the ONNX writer (export.c) and reader (import.c) share: which ONNX
 * operator a cell is, and where each of spool's gate blocks sits in that operator's weights.
 * One table for both directions, so a file spool writes reads back into the same parameters. */
#ifndef SP_ONNX_INTERNAL_H
#define SP_ONNX_INTERNAL_H

#include "spool.h"

/* "LSTM", "GRU" or "RNN" for a built-in cell those operators compute exactly (its own step and
 * projection, no LSTM projection), else NULL (exported as a Scan, not readable from weights). */
const char *sp__onnx_op(const sp_cell *c);

/* The gate blocks of cell c's operator: *nblk blocks of H rows in ONNX's order (LSTM i, o, f, c;
 * GRU z, r, h; RNN one); block j of the ONNX weight is spool's block perm[j], or none (a zero
 * block, the forget gate of a coupled LSTM) where perm[j] < 0. peep (LSTM only; else NULL):
 * ONNX's peephole rows i, o, f from spool's w_peep rows peep[j], none where < 0. */
const int *sp__onnx_gate_perm(const sp_cell *c, int *nblk, const int **peep);

#endif
