/* spool/optim.h - (in progress) */
#ifndef SPOOL_OPTIM_H
#define SPOOL_OPTIM_H
#include "core.h"
#include "ops.h"
#endif
