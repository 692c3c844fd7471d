/* SPDX-License-Identifier: MIT */
/* cell_table.c - the built-in cells, one row each (see cell_table.h for the columns). The math of
 * each kind lives in its family's file; this file declares those functions (as ops/table.c does
 * the backward kernels) and says which of them make up a kind. */
#include "cell_table.h"
#include "layers_internal.h"

/* The families' halves of the rows (rnn_cell.c, gru_cell.c, lstm_cell.c). */
sp_status sp__rnn_cell_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o,
                            sp_rng *rng);
sp_status sp__rnn_tanh_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out);
sp_status sp__rnn_relu_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out);
sp_tensor *sp__rnn_seq(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, int T, const int *lengths);
sp_tensor *sp__gru_after_seq(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, int T,
                             const int *lengths);
sp_tensor *sp__lstm_seq(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, int T, const int *lengths);

sp_status sp__gru_update_only_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx,
                                   const sp_cell_opts *o, sp_rng *rng);
sp_status sp__gru_before_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o,
                              sp_rng *rng);
sp_status sp__gru_after_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o,
                             sp_rng *rng);
sp_status sp__gru_update_only_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state,
                                   sp_tensor **out);
sp_status sp__gru_before_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out);
sp_status sp__gru_after_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out);
sp_status sp__mgu_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o, sp_rng *rng);
sp_status sp__mgu_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out);

sp_status sp__lstm_cell_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o,
                             sp_rng *rng);
sp_status sp__lstm_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out);
const char *sp__lstm_variant(const sp_cell *c, const char **pytorch_mode);
sp_tensor *sp__gru_after_project(sp_tape *t, const sp_cell *c, sp_tensor *x);

/* minGRU and minLSTM (min_cell.c): one project, step and seq for both, the kind picks the gates. */
sp_status sp__mingru_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o,
                          sp_rng *rng);
sp_status sp__minlstm_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o,
                           sp_rng *rng);
sp_tensor *sp__min_project(sp_tape *t, const sp_cell *c, sp_tensor *x);
sp_status sp__min_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out);
sp_tensor *sp__min_seq(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, int T, const int *lengths);

/* Layer-normalised cells (ln_cell.c). */
sp_status sp__ln_cell_init(sp_cell *c, sp_params *ps, const char *pre, const char *sfx, const sp_cell_opts *o,
                           sp_rng *rng);
sp_tensor *sp__ln_project(sp_tape *t, const sp_cell *c, sp_tensor *x);
sp_status sp__ln_lstm_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out);
sp_status sp__ln_gru_step(sp_tape *t, const sp_cell *c, sp_tensor *xp, sp_tensor *const *state, sp_tensor **out);

const sp_cell_def sp_cell_table[SP_CELL_CUSTOM] = {
    [SP_CELL_RNN_TANH] = {
        .name = "rnn_tanh", .scope = "rnn", .pytorch_mode = "RNN_TANH", .n_state = 1,
        .init = sp__rnn_cell_init, .project = sp__project_ih, .step = sp__rnn_tanh_step,
        .seq = sp__rnn_seq},
    [SP_CELL_RNN_RELU] = {
        .name = "rnn_relu", .scope = "rnn", .pytorch_mode = "RNN_RELU", .n_state = 1,
        .init = sp__rnn_cell_init, .project = sp__project_ih, .step = sp__rnn_relu_step,
        .seq = sp__rnn_seq},
    [SP_CELL_GRU_UPDATE_ONLY] = {
        .name = "gru_update_only", .scope = "gru", .pytorch_mode = NULL, .n_state = 1,
        .init = sp__gru_update_only_init, .project = sp__project_ih, .step = sp__gru_update_only_step},
    [SP_CELL_GRU_RESET_BEFORE_MATMUL] = {
        .name = "gru_reset_before_matmul", .scope = "gru", .pytorch_mode = NULL, .n_state = 1,
        .init = sp__gru_before_init, .project = sp__project_ih, .step = sp__gru_before_step},
    [SP_CELL_GRU_RESET_AFTER_MATMUL] = {
        .name = "gru_reset_after_matmul", .scope = "gru", .pytorch_mode = "GRU", .n_state = 1,
        .init = sp__gru_after_init, .project = sp__gru_after_project, .step = sp__gru_after_step,
        .seq = sp__gru_after_seq},
    [SP_CELL_LSTM] = {
        .name = "lstm", .scope = "lstm", .pytorch_mode = "LSTM", .n_state = 2, .opts = SP_CELL_OPT_LSTM,
        .init = sp__lstm_cell_init, .project = sp__project_ih, .step = sp__lstm_step, .seq = sp__lstm_seq,
        .variant = sp__lstm_variant},
    [SP_CELL_LN_LSTM] = { /* ln_cell.c; of the LSTM options only forget_bias_one (checked by its init) */
        .name = "ln_lstm", .scope = "lnlstm", .pytorch_mode = NULL, .n_state = 2, .opts = SP_CELL_OPT_LSTM,
        .init = sp__ln_cell_init, .project = sp__ln_project, .step = sp__ln_lstm_step},
    [SP_CELL_LN_GRU] = {
        .name = "ln_gru", .scope = "lngru", .pytorch_mode = NULL, .n_state = 1,
        .init = sp__ln_cell_init, .project = sp__ln_project, .step = sp__ln_gru_step},
    [SP_CELL_MGU] = { /* gru_cell.c */
        .name = "mgu", .scope = "mgu", .pytorch_mode = NULL, .n_state = 1,
        .init = sp__mgu_init, .project = sp__project_ih, .step = sp__mgu_step},
    [SP_CELL_MINGRU] = { /* min_cell.c */
        .name = "mingru", .scope = "mingru", .pytorch_mode = NULL, .n_state = 1,
        .init = sp__mingru_init, .project = sp__min_project, .step = sp__min_step, .seq = sp__min_seq},
    [SP_CELL_MINLSTM] = {
        .name = "minlstm", .scope = "minlstm", .pytorch_mode = NULL, .n_state = 1,
        .init = sp__minlstm_init, .project = sp__min_project, .step = sp__min_step, .seq = sp__min_seq},
};

const sp_cell_def *sp__cell_def(sp_cell_kind kind)
{
    return (unsigned)kind < SP_CELL_CUSTOM && sp_cell_table[kind].name ? &sp_cell_table[kind] : NULL;
}
