/* optim_internal.h - the optimizer object, shared by the update rules (optim.c) and the
 * checkpoint code (safetensors.c), which saves and restores its state slabs. */
#ifndef SP_OPTIM_INTERNAL_H
#define SP_OPTIM_INTERNAL_H

#include "spool.h"

enum { SP_OPTIM_MAX_SLOTS = 3 };

struct sp_optim {
    sp_params *ps;
    sp_optim_config cfg;
    size_t numel;                            /* ps->numel when created */
    int64_t step;                            /* updates done */
    int nslots;
    const char *slot_name[SP_OPTIM_MAX_SLOTS];
    sp_real *slot[SP_OPTIM_MAX_SLOTS];       /* each numel long, laid out like ps->value */
};

#endif
