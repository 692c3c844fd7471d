/* SPDX-License-Identifier: MIT */
/* file_internal.h - the atomic writer (file.c) for spool's own writers, whose messages name the
 * public call (sp_save, sp_tape_dot_file) rather than sp_file_begin. */
#ifndef SP_FILE_INTERNAL_H
#define SP_FILE_INTERNAL_H

#include "spool.h"

/* sp_file_begin with op named in every message of this write (a string literal: it is kept). */
sp_file *sp__file_begin(const char *path, const char *op);

#endif
