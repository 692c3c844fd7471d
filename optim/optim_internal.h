/* SPDX-License-Identifier: MIT */
/* optim_internal.h - the optimizer object and the optimizer table, shared by the update rules
 * (rules.c), the optimizer calls (optim.c) and the checkpoint code (checkpoint.c), which saves
 * and restores the state slabs and writes the configuration fields into the file's metadata. */
#ifndef SP_OPTIM_INTERNAL_H
#define SP_OPTIM_INTERNAL_H

#include "spool.h"
#include "../autograd/parallel.h" /* SP_PAR_MIN_OPTIM_ELEMS, sp__threads_now */

enum { SP_OPTIM_MAX_SLOTS = 3 };

struct sp_optim {
    sp_params *ps;
    sp_optim_config cfg;
    size_t numel;                            /* ps->numel when created */
    int64_t step;                            /* updates done */
    int nslots;
    const char *slot_name[SP_OPTIM_MAX_SLOTS];
    sp_real *slot[SP_OPTIM_MAX_SLOTS];       /* each numel long, laid out like ps->value */
    sp_real *by_row[SP_OPTIM_MAX_SLOTS];     /* the same slabs in the order of the kind's row, NULL
                                                where the configuration turned a slot off */
};

/* ----------------------------------------------------------- configuration fields */

/* The range sp_optim_new checks for a field (every double must also be finite). */
typedef enum {
    SP_FIELD_FINITE,    /* any finite value */
    SP_FIELD_NONNEG,    /* >= 0 */
    SP_FIELD_POSITIVE,  /* > 0 */
    SP_FIELD_UNIT,      /* in [0, 1] */
    SP_FIELD_UNIT_OPEN, /* in [0, 1) */
    SP_FIELD_FLAG       /* an int used as a switch: not checked */
} sp_field_range;

/* One member of sp_optim_config: its name (the checkpoint metadata key "spool.optim.<name>"), the
 * name PyTorch's optimizer gives it (used in messages), where it is and what values it takes. */
typedef struct {
    const char *name;
    const char *torch_name;
    size_t offset;
    int is_int;
    sp_field_range range;
} sp_optim_field;

/* Every field but `kind`, in the order a checkpoint's metadata lists them. */
extern const sp_optim_field sp_optim_fields[];
extern const int sp_optim_n_fields;

const sp_optim_field *sp__optim_field(const char *name); /* NULL if there is none of that name */
double sp__optim_field_get(const sp_optim_config *c, const sp_optim_field *f);

/* ------------------------------------------------------------------ the table */

/* What one update sees: flat slabs of n reals. slot[j] is the row's j-th slot (NULL if its
 * condition is off for this configuration); step is 1 on the first update. dry = 1: compute the
 * update without storing anything and return 1 if any new parameter or state value would be
 * non-finite (sp_optim_step runs this first, so a step that would write Inf/NaN is refused and
 * changes nothing); dry = 0: store it (return value unused). */
typedef struct {
    const sp_optim_config *cfg;
    size_t n;
    sp_real *p;
    const sp_real *g;
    sp_real *slot[SP_OPTIM_MAX_SLOTS];
    double lr;
    int64_t step;
    int dry;
} sp_optim_update;

/* A per-parameter state slab: PyTorch's state key, the field that must be nonzero for the slab to
 * exist (NULL: always), and the field holding its initial value (NULL: 0). */
typedef struct {
    const char *name;
    const char *when;
    const char *init;
} sp_optim_slot_def;

typedef struct {
    const char *name;              /* sp_optim_kind_name, prefix of state tensor names */
    sp_optim_config defaults;      /* sp_optim_defaults (PyTorch's) */
    const char *checks;            /* space-separated fields sp_optim_new range-checks, in order */
    sp_status (*check)(const sp_optim_config *c); /* optional: rules joining fields (nesterov) */
    sp_optim_slot_def slots[SP_OPTIM_MAX_SLOTS];
    int (*step)(const sp_optim_update *u);
} sp_optim_def;

/* Indexed by sp_optim_kind. */
extern const sp_optim_def sp_optim_table[SP_OPTIM_KIND_COUNT];

/* The row of kind, or NULL outside the enum. */
const sp_optim_def *sp__optim_def(sp_optim_kind kind);


#endif
