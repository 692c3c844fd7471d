/* SPDX-License-Identifier: MIT */
/* stack.c - deep recurrent stacks: layer l > 0 reads layer l-1's (merged) output sequence.
 *
 * Three dropouts whose scope is in their names (anchors-and-asks B#4, B#5):
 *   between_layers_dropout  on the output of every layer except the last (torch's `dropout`),
 *                           a fresh mask per element and step;
 *   variational_dropout     on the input of every layer, one [B, I] mask per sequence reused at
 *                           every step (Gal & Ghahramani 2016);
 *   output_dropout          on the last layer's output, per element and step.
 * A run draws one key for these and one for the layers' zoneout and recurrent/candidate dropout
 * (each layer's runner keyed from it by the layer's index); every mask is a function of its key
 * and position (autograd/noise.h), per-step masks of the absolute step noise.step0 + s, so a
 * sequence run in pieces from the same rng state draws the masks of the whole run.
 * Cells may differ from layer to layer (kinds, custom cells); only the sizes must chain. */
#include "layers_internal.h"

#include <stdio.h>
#include <string.h>

int sp_rnn_out_size(const sp_rnn *r)
{
    if (!r || r->num_layers < 1) return 0;
    const sp_cell *c = r->cell[r->num_layers - 1];
    return r->bidirectional ? sp_merge_cols(r->merge, c[0].out_size, c[1].out_size) : c[0].out_size;
}

sp_status sp_rnn_init(sp_rnn *r, sp_params *ps, const char *prefix, sp_cell_kind kind, int I, int H, int num_layers,
                      int bidirectional, const sp_cell_opts *opts, sp_rng *rng)
{
    if (!r || num_layers < 1 || num_layers > SP_RNN_MAX_LAYERS)
        return sp_fail(SP_ERR_ARG, "rnn \"%s\": num_layers = %d must be in [1, %d]", prefix ? prefix : "", num_layers,
                       SP_RNN_MAX_LAYERS);
    memset(r, 0, sizeof *r);
    r->num_layers = num_layers;
    r->bidirectional = !!bidirectional;
    r->merge = SP_MERGE_CONCAT;
    int in = I;
    for (int l = 0; l < num_layers; l++) {
        for (int d = 0; d <= r->bidirectional; d++)
            if (sp_cell_init(&r->cell[l][d], kind, ps, prefix, l, d, in, H, opts, rng) != SP_OK)
                return sp_last_status();
        in = r->cell[l][0].out_size * (r->bidirectional ? 2 : 1);
    }
    return SP_OK;
}

sp_status sp_rnn_init_state(const sp_rnn *r, sp_params *ps, const char *prefix, sp_rnn_state *init)
{
    if (!r || !init) return sp_fail(SP_ERR_ARG, "rnn init state: stack and init must not be NULL");
    memset(init, 0, sizeof *init);
    for (int l = 0; l < r->num_layers; l++)
        for (int d = 0; d <= r->bidirectional; d++)
            if (sp_cell_init_state(&r->cell[l][d], ps, prefix, l, d, init->s[l][d]) != SP_OK) return sp_last_status();
    return SP_OK;
}

sp_status sp_rnn_run(sp_tape *t, const sp_rnn *r, sp_tensor *x, int T, int B, const sp_rnn_opts *opts, sp_rnn_out *out)
{
    if (out) memset(out, 0, sizeof *out);
    if (sp_tape_status(t) != SP_OK) return sp_tape_status(t);
    sp_rnn_opts o = {0};
    if (opts) o = *opts;
    if (!r || !out || r->num_layers < 1 || r->num_layers > SP_RNN_MAX_LAYERS) {
        sp_tape_fail(t, SP_ERR_ARG, "rnn: stack or out is NULL, or num_layers out of [1, %d]", SP_RNN_MAX_LAYERS);
        return sp_tape_status(t);
    }
    double drops[3] = {o.between_layers_dropout, o.variational_dropout, o.output_dropout};
    static const char *drop_name[3] = {"between_layers_dropout", "variational_dropout", "output_dropout"};
    int dropping = 0;
    for (int k = 0; k < 3; k++) {
        if (!(drops[k] >= 0 && drops[k] < 1)) {
            sp_tape_fail(t, SP_ERR_ARG, "rnn \"%s\": %s = %g must be in [0, 1)", r->cell[0][0].name, drop_name[k], drops[k]);
            return sp_tape_status(t);
        }
        dropping |= o.train && drops[k] > 0;
    }
    if (dropping && !o.rng) {
        sp_tape_fail(t, SP_ERR_ARG, "rnn \"%s\": dropout in training needs an rng", r->cell[0][0].name);
        return sp_tape_status(t);
    }
    if (!o.noise.rng) o.noise.rng = o.rng;
    if (!o.train) o.noise.train = 0; /* evaluation switches every regulariser off */
    else o.noise.train = 1;
    const sp_cell_noise *nz = &o.noise;
    int noisy = nz->train && nz->rng &&
                (nz->zoneout_h > 0 || nz->zoneout_c > 0 || nz->recurrent_dropout > 0 || nz->candidate_dropout > 0);
    const uint64_t kd = dropping ? sp__noise_key(o.rng) : 0, kn = noisy ? sp__noise_key(o.noise.rng) : 0;
    const int64_t row0 = (int64_t)nz->step0 * B; /* the run's first rows in the whole sequence's masks */
    char outer[256];
    snprintf(outer, sizeof outer, "%s", sp_tape_get_scope(t));
    sp_tensor *h = x;
    for (int l = 0; l < r->num_layers; l++) {
        const sp_cell *c = r->cell[l];
        sp_tensor *const *i0 = o.init ? o.init->s[l][0] : NULL, *const *i1 = o.init ? o.init->s[l][1] : NULL;
        sp_tensor *mask = NULL;
        if (o.train && o.variational_dropout > 0) {
            sp__scope_push(t, outer, "%s", c[0].name);
            mask = sp_name(t, sp__dropout_const(t, B, c[0].input_size, o.variational_dropout, kd, SP_NOISE_INPUT + l, 0),
                           "dropout_mask");
            sp_tape_scope(t, "%s", outer);
            if (!mask) return sp_tape_status(t);
        }
        sp_cell_noise ln = o.noise; /* this layer's runners draw their keys from a generator of its own */
        sp_rng layer_rng;
        if (noisy) {
            sp_rng_seed(&layer_rng, sp__noise_bits(kn, SP_NOISE_LAYER, (uint64_t)l, 0));
            ln.rng = &layer_rng;
        }
        if (r->bidirectional) {
            sp_bidir_opts bo = {o.lengths, i0, i1, r->merge, mask, ln};
            sp_bidir_out br;
            if (sp_bidir_run(t, &c[0], &c[1], h, T, B, &bo, &br) != SP_OK) return sp_tape_status(t);
            h = br.out;
            memcpy(out->final.s[l][0], br.fwd_final, sizeof br.fwd_final);
            memcpy(out->final.s[l][1], br.bwd_final, sizeof br.bwd_final);
        } else {
            sp_seq_opts so = {o.lengths, i0, 0, mask, ln};
            sp_seq_out sr;
            if (sp_seq_run(t, &c[0], h, T, B, &so, &sr) != SP_OK) return sp_tape_status(t);
            h = sr.out;
            memcpy(out->final.s[l][0], sr.final, sizeof sr.final);
        }
        if (l < r->num_layers - 1 && o.train && o.between_layers_dropout > 0)
            h = sp__dropout_at(t, h, o.between_layers_dropout, kd, SP_NOISE_BETWEEN + l, row0);
    }
    if (o.train && o.output_dropout > 0) h = sp__dropout_at(t, h, o.output_dropout, kd, SP_NOISE_OUTPUT, row0);
    out->out = h;
    return sp_tape_status(t);
}
