/* SPDX-License-Identifier: MIT */
/* cell_table.h - the table of built-in recurrent cells, one row per sp_cell_kind, like the op
 * table of ops/table.c. sp_cell_init, sp_cell_kind_name and sp_cell_pytorch_mode read a cell's
 * row instead of switching on its kind. A new built-in cell is an enum value in spool/layers.h,
 * an init and a step function in its family's file, and their declarations and one row in
 * layers/cell_table.c (docs/layers.md walks through one). Not installed. */
#ifndef SP_CELL_TABLE_H
#define SP_CELL_TABLE_H

#include "spool.h"

/* Creates the cell's parameters under "<pre><what><sfx>" ("pre" is "<prefix>." or "", "sfx"
 * "_l<k>" or "_l<k>_reverse") and sets the sizes that depend on the kind and options (gate_size,
 * and out_size where it is not H). kind, input_size, hidden_size, out_size = H, n_state, name,
 * project and step are set from the row before it runs. */
typedef sp_status (*sp_cell_init_fn)(sp_cell *c, sp_params *ps, const char *pre, const char *sfx,
                                     const sp_cell_opts *o, sp_rng *rng);

/* Which sp_cell_opts fields a kind accepts besides `orthogonal` (every kind takes that); a
 * nonzero field of another kind is an argument error naming the cell. */
enum {
    SP_CELL_OPT_LSTM = 1 /* lstm_flags, proj_size, forget_bias_one */
};

/* The whole recurrence of T steps as one op (ops/seq.c) from the projected inputs xp [T*B, G] and
 * the initial state: returns that op's output (h rows of all steps and the final h, then the same
 * for c when n_state is 2), or NULL with the tape still OK when these options need the step by
 * step path (e.g. LSTM peepholes; any option that changes the step must make it return NULL). */
typedef sp_tensor *(*sp_cell_seq_fn)(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, int T,
                                     const int *lengths);

typedef struct {
    const char *name;           /* sp_cell_kind_name (the base name when `variant` is set) */
    const char *scope;          /* default scope and name prefix: "rnn" -> cells "rnn0", "rnn1" */
    const char *pytorch_mode;   /* torch.nn mode with the same names, shapes and math, or NULL */
    sp_cell_init_fn init;
    sp_cell_project_fn project; /* input projection of all steps (NULL: step gets raw rows) */
    sp_cell_step_fn step;
    sp_cell_seq_fn seq;         /* optional: all steps as one op; the runner prefers it */
    int n_state;                /* state layout: [0] h [B, out_size]; [1] (if 2) c [B, H] */
    unsigned opts;              /* SP_CELL_OPT_* the kind accepts */
    /* Optional: name and PyTorch mode of a variant chosen by the options (LSTM flags). */
    const char *(*variant)(const sp_cell *c, const char **pytorch_mode);
} sp_cell_def;

/* Indexed by sp_cell_kind; SP_CELL_CUSTOM has no row (the user fills the struct). */
extern const sp_cell_def sp_cell_table[SP_CELL_CUSTOM];

/* The row of kind, or NULL for SP_CELL_CUSTOM and values outside the enum. */
const sp_cell_def *sp__cell_def(sp_cell_kind kind);

#endif
