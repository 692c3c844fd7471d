/* spool/layers.h - (in progress) */
#ifndef SPOOL_LAYERS_H
#define SPOOL_LAYERS_H
#include "core.h"
#include "ops.h"
#endif
