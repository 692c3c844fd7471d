/* SPDX-License-Identifier: MIT */
/* ocr_lm.c - a spool-charlm checkpoint as the language model of spool-ocr's beam search: the
 * checkpoint's configuration and vocabulary rebuilt through spool-charlm's own reader (so the
 * two programs cannot disagree about the format), its weights loaded, and sp_ctc_lm_stream_new
 * run on its embedding table, stack and head. Each OCR class (printable ASCII) maps to the
 * model's token of that character; a character the model never saw maps to -1 (the uniform
 * guess). The line boundary starts and ends a text: token 0 of a model trained in lines mode,
 * else the model's '\n'. */
#include "ocr_lm.h"

#include "charlm/charlm.h"
#include "ocr_data.h"

#include <stdlib.h>
#include <string.h>

struct ocr_lm {
    cl_vocab vocab;
    sp_params *ps;
    cl_model m;
    sp_ctc_lm *lm;
};

void ocr_lm_free(ocr_lm *l)
{
    if (!l) return;
    sp_ctc_lm_stream_free(l->lm);
    sp_params_free(l->ps);
    cl_vocab_free(&l->vocab);
    free(l);
}

ocr_lm *ocr_lm_load(const char *path, int rows)
{
    ocr_lm *l = calloc(1, sizeof *l);
    cl_opts *o = calloc(1, sizeof *o);
    char err[1024];
    int lines = 0;
    if (!l || !o) goto fail;
    snprintf(o->checkpoint, sizeof o->checkpoint, "%s", path);
    if (cl_read_checkpoint_header(path, o, 1, &l->vocab, &lines, NULL, NULL)) goto fail; /* message printed */
    sp_rng rng;
    sp_rng_seed(&rng, 1);
    cl_model_cfg mc = cl_model_cfg_of(o, l->vocab.V);
    if (!(l->ps = sp_params_new()) || cl_model_init(&l->m, &mc, l->ps, &rng, err, sizeof err)) {
        fprintf(stderr, "spool-ocr: --lm %s: %s\n", path, l->ps ? err : "out of memory");
        goto fail;
    }
    if (sp_load(path, l->ps, NULL, NULL) != SP_OK) {
        fprintf(stderr, "spool-ocr: --lm %s: %s\n", path, sp_last_error());
        goto fail;
    }
    int map[OCR_CLASSES];
    map[0] = -1;
    for (int k = 1; k < OCR_CLASSES; k++) map[k] = cl_vocab_id(&l->vocab, (uint32_t)(unsigned char)ocr_char_of(k));
    int boundary = lines ? 0 : cl_vocab_id(&l->vocab, '\n');
    l->lm = sp_ctc_lm_stream_new(&l->m.rnn, l->m.emb.weight, &l->m.head, OCR_CLASSES, map, boundary, boundary, rows);
    if (!l->lm) {
        fprintf(stderr, "spool-ocr: --lm %s: %s\n", path, sp_last_error());
        goto fail;
    }
    free(o);
    return l;
fail:
    free(o);
    ocr_lm_free(l);
    return NULL;
}

const sp_ctc_lm *ocr_lm_get(const ocr_lm *l) { return l ? l->lm : NULL; }
