/* SPDX-License-Identifier: MIT */
/* rewind.c - sp_tape_rewind: sp_tape_reset for inference loops (layers/stream.c). A reset also
 * forgets what the tape derived from parameters (the weights packed for small products, since an
 * optimizer step usually follows); a loop that runs one step per reset with fixed parameters
 * would re-pack every weight at every step. Rewinding keeps every op's state (sp__op_state), and nothing else. */
#include "tape_internal.h"

void sp_tape_rewind(sp_tape *t) { sp__tape_reset_ex(t, 1); }
