/* SPDX-License-Identifier: MIT */
/* ocr_lm.h - a spool-charlm checkpoint as spool-ocr's language model (ocr_lm.c). */
#ifndef OCR_LM_H
#define OCR_LM_H

#include "spool.h"
#include "spool/layers.h"

typedef struct ocr_lm ocr_lm;
/* NULL (a message printed) if path is not a usable spool-charlm checkpoint (a bidirectional
 * stack cannot be one). rows: the beam width (the prefixes one frame adds, stepped together). */
ocr_lm *ocr_lm_load(const char *path, int rows);
const sp_ctc_lm *ocr_lm_get(const ocr_lm *l);
void ocr_lm_free(ocr_lm *l);

#endif
