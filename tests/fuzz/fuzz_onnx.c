/* SPDX-License-Identifier: MIT */
/* fuzz_onnx.c - libFuzzer harness of the ONNX weight reader (sp_onnx_load_weights_mem,
 * onnx/import.c): protobuf-c's unpacking of a hostile file and everything read from it, into two
 * small models (an embedding, a bidirectional LSTM with peepholes and a head; a two-layer GRU on
 * float input) that the seeds (corpus/onnx: files sp_onnx_export wrote of them) match. Besides
 * "no crash, no sanitizer report" it checks the reader's promise, as fuzz_ckpt.c does the
 * checkpoint loader's: a failed load changes nothing. */
#include "spool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static sp_params *ps;
static sp_embed emb;
static sp_rnn lstm, gru;
static sp_linear head;
static sp_onnx_model m[2];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ps) {
        sp_rng r;
        sp_rng_seed(&r, 1);
        ps = sp_params_new();
        sp_cell_opts peep = {.lstm_flags = SP_LSTM_PEEPHOLE};
        if (sp_embed_init(&emb, ps, "embed", 5, 3, &r) || sp_rnn_init(&lstm, ps, "lstm", SP_CELL_LSTM, 3, 2, 1, 1, &peep, &r) ||
            sp_linear_init(&head, ps, "head", 4, 5, 1, &r) ||
            sp_rnn_init(&gru, ps, "gru", SP_CELL_GRU_RESET_AFTER_MATMUL, 3, 2, 2, 0, NULL, &r))
            abort();
        m[0].embed = &emb, m[0].rnn = &lstm, m[0].head = &head;
        m[1].rnn = &gru;
    }
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < ps->numel; i++) ps->value[i] = (sp_real)i;
        if (sp_onnx_load_weights_mem(data, size, &m[k], "fuzz") != SP_OK)
            for (size_t i = 0; i < ps->numel; i++)
                if (ps->value[i] != (sp_real)i) abort(); /* a failed load changed a parameter */
    }
    return 0;
}
