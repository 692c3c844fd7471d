/* SPDX-License-Identifier: MIT */
/* fuzz_ckpt.c - libFuzzer harness of the checkpoint readers: the safetensors header parser (JSON,
 * sp_ckpt_parse) and the loader (sp_load_mem) into a small model with an Adam state. Besides "no
 * crash, no sanitizer report" it checks the loader's promise: a failed load changes nothing. */
#include "spool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static sp_params *ps;
static sp_optim *opt;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ps) {
        ps = sp_params_new();
        sp_param(ps, "a", 2, 3);
        sp_param(ps, "b", 1, 4);
        sp_optim_config c = sp_optim_defaults(SP_ADAM);
        opt = sp_optim_new(ps, &c);
    }
    sp_ckpt_info *ci = sp_ckpt_parse(data, size);
    if (ci) {
        for (int i = 0; i < sp_ckpt_n_meta(ci); i++) (void)strlen(sp_ckpt_meta_at(ci, i)->value);
        for (int i = 0; i < sp_ckpt_n_tensors(ci); i++) (void)sp_ckpt_tensor_at(ci, i);
        sp_ckpt_close(ci);
    }
    for (size_t i = 0; i < ps->numel; i++) ps->value[i] = (sp_real)i;
    sp_rng r;
    sp_rng_seed(&r, 1);
    sp_ckpt_opts o = {.rng = (size & 1) ? &r : NULL};
    if (sp_load_mem(data, size, ps, (size & 2) ? opt : NULL, &o) != SP_OK)
        for (size_t i = 0; i < ps->numel; i++)
            if (ps->value[i] != (sp_real)i) abort(); /* a failed load changed a parameter */
    return 0;
}
