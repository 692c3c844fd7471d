/* SPDX-License-Identifier: MIT */
/* carry.c - state carried across batches for truncated BPTT / stateful models.
 *
 * The final states of a batch live on the tape, which the next batch resets; so they are copied
 * into caller memory here and come back as constants: the next batch starts from them but no
 * gradient flows into the previous batch (PyTorch's `detach`). A row whose sequence ended is zeroed
 * on its own. A batch of a different size is an error, never a silent partial copy. */
#include "layers_internal.h"

#include <stdlib.h>
#include <string.h>

#define FOR_SLOTS(c) \
    for (int l = 0; l < SP_RNN_MAX_LAYERS; l++) for (int d = 0; d < 2; d++) for (int k = 0; k < SP_CELL_MAX_STATE; k++)

sp_status sp_carry_init(sp_carry *c, const sp_rnn *r, int B)
{
    if (!c || !r || B <= 0) return sp_fail(SP_ERR_ARG, "carry: carry or stack NULL, or B = %d not positive", B);
    memset(c, 0, sizeof *c);
    c->B = B;
    for (int l = 0; l < r->num_layers; l++)
        for (int d = 0; d <= r->bidirectional; d++)
            for (int k = 0; k < r->cell[l][d].n_state; k++) {
                c->cols[l][d][k] = r->cell[l][d].state_size[k];
                if (!(c->data[l][d][k] = calloc((size_t)B * c->cols[l][d][k], sizeof(sp_real)))) {
                    sp_carry_free(c);
                    return sp_fail(SP_ERR_NOMEM, "carry: out of memory for %d rows", B);
                }
            }
    return SP_OK;
}

void sp_carry_free(sp_carry *c)
{
    if (!c) return;
    FOR_SLOTS(c) {
        free(c->data[l][d][k]);
        c->data[l][d][k] = NULL;
        c->cols[l][d][k] = 0;
    }
}

sp_status sp_carry_save(sp_carry *c, const sp_rnn_state *final)
{
    if (!c || !final) return sp_fail(SP_ERR_ARG, "carry save: carry or final state is NULL");
    FOR_SLOTS(c) {
        const sp_tensor *s = final->s[l][d][k];
        if (!c->cols[l][d][k]) continue;
        if (!s || s->rows != c->B || s->cols != c->cols[l][d][k])
            return sp_fail(
                SP_ERR_SHAPE, "carry save: state [layer %d][dir %d][%s] is %s [%d x %d], carry holds [%d x %d]", l, d,
                k ? "c" : "h", s ? s->name : "NULL", s ? s->rows : 0, s ? s->cols : 0, c->B, c->cols[l][d][k]);
    }
    FOR_SLOTS(c) {
        const sp_tensor *s = final->s[l][d][k];
        for (int b = 0; c->cols[l][d][k] && b < c->B; b++)
            memcpy(c->data[l][d][k] + (size_t)b * s->cols, sp_at(s, b, 0), (size_t)s->cols * sizeof(sp_real));
    }
    return SP_OK;
}

sp_status sp_carry_load(sp_tape *t, const sp_carry *c, int B, sp_rnn_state *init)
{
    if (sp_tape_status(t) != SP_OK) return sp_tape_status(t);
    if (!c || !init) {
        sp_tape_fail(t, SP_ERR_ARG, "carry load: carry or init is NULL");
        return sp_tape_status(t);
    }
    if (B != c->B) {
        sp_tape_fail(t, SP_ERR_SHAPE,
                     "carry load: carried state has %d rows, batch has %d (stateful runs need the same "
                     "batch size every batch; sp_carry_free + sp_carry_init to change it)",
                     c->B, B);
        return sp_tape_status(t);
    }
    memset(init, 0, sizeof *init);
    FOR_SLOTS(c) {
        if (!c->cols[l][d][k]) continue;
        sp_tensor *s =
            sp_name(t, sp_const(t, B, c->cols[l][d][k]), "carried_%s_l%d%s", k ? "c" : "h", l, d ? "_reverse" : "");
        if (!s) return sp_tape_status(t);
        memcpy(s->data, c->data[l][d][k], (size_t)B * c->cols[l][d][k] * sizeof(sp_real));
        init->s[l][d][k] = s;
    }
    return SP_OK;
}

sp_status sp_carry_reset_row(sp_carry *c, int b)
{
    if (!c || b < 0 || b >= c->B) return sp_fail(SP_ERR_ARG, "carry reset: row %d outside [0, %d)", b, c ? c->B : 0);
    FOR_SLOTS(c) if (c->cols[l][d][k]) memset(c->data[l][d][k] + (size_t)b * c->cols[l][d][k], 0,
                                              (size_t)c->cols[l][d][k] * sizeof(sp_real));
    return SP_OK;
}

void sp_carry_reset(sp_carry *c)
{
    if (!c) return;
    for (int b = 0; b < c->B; b++) sp_carry_reset_row(c, b);
}
