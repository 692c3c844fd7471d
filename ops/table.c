/* SPDX-License-Identifier: MIT */
/* table.c - the op table: for every op its name (used in error messages and dot labels) and its
 * backward kernel. The forward half of each op is its public constructor (sp_tanh, sp_matmul...),
 * which sits next to its backward kernel in the family's file. */
#include "../autograd/tape_internal.h"

#define BACKWARD(f) void f(sp_record *r);
BACKWARD(sp__matmul_backward)
BACKWARD(sp__add_backward) BACKWARD(sp__sub_backward) BACKWARD(sp__mul_backward)
BACKWARD(sp__scale_backward) BACKWARD(sp__one_minus_backward)
BACKWARD(sp__sigmoid_backward) BACKWARD(sp__tanh_backward) BACKWARD(sp__relu_backward)
BACKWARD(sp__dropout_backward)
BACKWARD(sp__concat_backward) BACKWARD(sp__concat_rows_backward)
BACKWARD(sp__softmax_backward) BACKWARD(sp__softmax_xent_backward) BACKWARD(sp__sigmoid_bce_backward)
BACKWARD(sp__sum_backward) BACKWARD(sp__mean_backward)
BACKWARD(sp__embedding_backward)
BACKWARD(sp__lstm_cell_backward) BACKWARD(sp__gru_cell_backward) BACKWARD(sp__seq_backward)
BACKWARD(sp__crf_nll_backward)
BACKWARD(sp__layer_norm_backward)
BACKWARD(sp__attn_dot_backward) BACKWARD(sp__attn_additive_backward) BACKWARD(sp__attn_context_backward)
BACKWARD(sp__attn_mask_backward)
BACKWARD(sp__segment_backward)
BACKWARD(sp__linear_scan_backward) BACKWARD(sp__softplus_backward)
BACKWARD(sp__ctc_loss_backward)
void sp__matmul_finish(sp_tape *t);
void sp__matmul_state_reset(void *state);
void sp__matmul_state_free(void *state);
#undef BACKWARD

const sp_op_def sp_op_table[SP_OP__COUNT] = {
    [SP_OP_CONST] = {"const", NULL, .no_backward = "constant: no gradient"},
    [SP_OP_LEAF] = {"leaf", NULL, .no_backward = "leaf: its gradient is read, not passed on"},
    [SP_OP_MATMUL] = {"matmul", sp__matmul_backward, sp__matmul_finish, sp__matmul_state_reset, sp__matmul_state_free,
                      .no_read = SP_NO_READ_OUT},
    [SP_OP_ADD] = {"add", sp__add_backward},
    [SP_OP_SUB] = {"sub", sp__sub_backward},
    [SP_OP_MUL] = {"mul", sp__mul_backward},
    [SP_OP_SCALE] = {"scale", sp__scale_backward},
    [SP_OP_ONE_MINUS] = {"one_minus", sp__one_minus_backward},
    [SP_OP_SIGMOID] = {"sigmoid", sp__sigmoid_backward},
    [SP_OP_TANH] = {"tanh", sp__tanh_backward},
    [SP_OP_RELU] = {"relu", sp__relu_backward},
    [SP_OP_CONCAT] = {"concat", sp__concat_backward},
    [SP_OP_CONCAT_ROWS] = {"concat_rows", sp__concat_rows_backward},
    [SP_OP_SLICE] = {"slice", NULL, .no_backward = "view: its gradient aliases its base's"},
    [SP_OP_SOFTMAX] = {"softmax", sp__softmax_backward},
    [SP_OP_SOFTMAX_XENT] = {"softmax_xent", sp__softmax_xent_backward},
    [SP_OP_SIGMOID_BCE] = {"sigmoid_bce", sp__sigmoid_bce_backward},
    [SP_OP_SUM] = {"sum", sp__sum_backward},
    [SP_OP_MEAN] = {"mean", sp__mean_backward},
    [SP_OP_EMBEDDING] = {"embedding", sp__embedding_backward},
    [SP_OP_DROPOUT] = {"dropout", sp__dropout_backward},
    [SP_OP_LSTM_CELL] = {"lstm_cell", sp__lstm_cell_backward},
    [SP_OP_GRU_CELL] = {"gru_cell", sp__gru_cell_backward},
    [SP_OP_CRF_NLL] = {"crf_nll", sp__crf_nll_backward},
    [SP_OP_LSTM_SEQ] = {"lstm_seq", sp__seq_backward, .no_read = SP_NO_READ_IN(0)}, /* xp: saved gates instead */
    [SP_OP_GRU_SEQ] = {"gru_seq", sp__seq_backward, .no_read = SP_NO_READ_IN(0)}, /* xp: saved gates instead */
    [SP_OP_RNN_SEQ] = {"rnn_seq", sp__seq_backward, .no_read = SP_NO_READ_IN(0)}, /* xp: saved gates instead */
    [SP_OP_LAYER_NORM] = {"layer_norm", sp__layer_norm_backward},
    [SP_OP_ATTN_DOT] = {"attn_dot", sp__attn_dot_backward},
    [SP_OP_ATTN_ADDITIVE] = {"attn_additive", sp__attn_additive_backward},
    [SP_OP_ATTN_CONTEXT] = {"attn_context", sp__attn_context_backward},
    [SP_OP_SEGMENT] = {"segment", sp__segment_backward},
    [SP_OP_ATTN_MASK] = {"attn_mask", sp__attn_mask_backward},
    [SP_OP_LINEAR_SCAN] = {"linear_scan", sp__linear_scan_backward, .no_read = SP_NO_READ_IN(1)}, /* b: never read */
    [SP_OP_SOFTPLUS] = {"softplus", sp__softplus_backward},
    [SP_OP_GATED_SCAN] = {"gated_scan", sp__linear_scan_backward}, /* reads z and c */
    [SP_OP_CTC_LOSS] = {"ctc_loss", sp__ctc_loss_backward},
};

const char *sp_op_name(sp_op op)
{
    return (unsigned)op < SP_OP__COUNT && sp_op_table[op].name ? sp_op_table[op].name : "?";
}
