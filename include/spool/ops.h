/* SPDX-License-Identifier: MIT */
/** @file
 * spool/ops.h - the differentiable ops. Each call checks shapes, computes its output now (into
 * the tape's arena) and records itself so sp_backward can run its backward kernel.
 *
 * Conventions for every op:
 *   - returns the new node, or NULL if an input is NULL, the tape is in an error state, or the
 *     shapes/arguments are wrong (then the tape's sticky error names the op, nodes and shapes);
 *   - tensors are [rows, cols]; sequences are [T*B, C] with time outermost, so the rows of step t
 *     are the contiguous view sp_slice_rows(x, t*B, B);
 *   - the output needs a gradient iff some input does.
 * Broadcasting (add, sub, mul): b may have a's shape, or be a row [1, C] (e.g. a bias), a column
 * [R, 1] (e.g. a per-row mask) or a scalar [1, 1].
 */
#ifndef SPOOL_OPS_H
#define SPOOL_OPS_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

SP_API_BEGIN

/** The op table's keys. Adding an op: a value here, one line in the table (ops/table.c), the
 * constructor + backward kernel in the family's file under ops/, and one gradient-test line. */
typedef enum {
    SP_OP_CONST, SP_OP_LEAF,
    SP_OP_MATMUL,
    SP_OP_ADD, SP_OP_SUB, SP_OP_MUL, SP_OP_SCALE, SP_OP_ONE_MINUS,
    SP_OP_SIGMOID, SP_OP_TANH, SP_OP_RELU,
    SP_OP_CONCAT, SP_OP_CONCAT_ROWS, SP_OP_SLICE,
    SP_OP_SOFTMAX, SP_OP_SOFTMAX_XENT, SP_OP_SIGMOID_BCE,
    SP_OP_SUM, SP_OP_MEAN,
    SP_OP_EMBEDDING, SP_OP_DROPOUT,
    SP_OP_LSTM_CELL, SP_OP_GRU_CELL, SP_OP_LSTM_SEQ, SP_OP_GRU_SEQ, SP_OP_RNN_SEQ,
    SP_OP_CRF_NLL,
    SP_OP_LAYER_NORM,                                      /**< ops/norm.c */
    SP_OP_ATTN_DOT, SP_OP_ATTN_ADDITIVE, SP_OP_ATTN_CONTEXT, /**< ops/attention.c */
    SP_OP_SEGMENT,                                         /**< autograd/segment.c */
    SP_OP_ATTN_MASK,                                       /**< ops/attention.c */
    SP_OP_LINEAR_SCAN,                                     /**< ops/scan.c */
    SP_OP_SOFTPLUS,                                        /**< ops/elementwise.c */
    SP_OP_CTC_LOSS,                                        /**< ops/ctc.c */
    SP_OP__COUNT
} sp_op;

/** The op's name as it appears in messages and the dot export ("matmul"). */
const char *sp_op_name(sp_op op);

/* ---------------------------------------------------------------- products */

/** a [M, K] x b [K, N] -> [M, N]  (BLIS SGEMM/DGEMM). */
sp_tensor *sp_matmul(sp_tape *t, sp_tensor *a, sp_tensor *b);
/** op(a) x op(b), where op transposes when trans_a / trans_b is nonzero. */
sp_tensor *sp_matmul_ex(sp_tape *t, sp_tensor *a, int trans_a, sp_tensor *b, int trans_b);
/** op(a) x op(b) + bias, bias a row [1, N] added to every row (a linear layer: x W^T + b) or a full
 * [M, N] addend (a recurrent step: x_t W_ih^T + h W_hh^T). One node instead of a matmul and an
 * add: half the memory of the [M, N] result. bias may be NULL. */
sp_tensor *sp_matmul_bias(sp_tape *t, sp_tensor *a, int trans_a, sp_tensor *b, int trans_b, sp_tensor *bias);

/* ------------------------------------------------------------- elementwise */

sp_tensor *sp_add(sp_tape *t, sp_tensor *a, sp_tensor *b);   /**< a + b (b broadcast) */
sp_tensor *sp_sub(sp_tape *t, sp_tensor *a, sp_tensor *b);   /**< a - b (b broadcast) */
sp_tensor *sp_mul(sp_tape *t, sp_tensor *a, sp_tensor *b);   /**< a * b (b broadcast) */
sp_tensor *sp_scale(sp_tape *t, sp_tensor *x, double s);     /**< s * x */
sp_tensor *sp_one_minus(sp_tape *t, sp_tensor *x);           /**< 1 - x */
/** Elementwise 1 / (1 + exp(-x)). */
sp_tensor *sp_sigmoid(sp_tape *t, sp_tensor *x);
/** Elementwise tanh(x). */
sp_tensor *sp_tanh(sp_tape *t, sp_tensor *x);
/** Elementwise max(x, 0). */
sp_tensor *sp_relu(sp_tape *t, sp_tensor *x);
/** Elementwise log(1 + exp(x)), computed without overflow; its derivative is sigmoid(x). */
sp_tensor *sp_softplus(sp_tape *t, sp_tensor *x);
/** Inverted dropout: in training, each element is zeroed with probability p and survivors are
 * scaled by 1/(1-p); the mask is keyed by one draw from rng (each element a function of that key
 * and its position). With train == 0 (eval) or p == 0 it is the identity (returns x itself,
 * nothing recorded, nothing drawn). 0 <= p < 1. */
sp_tensor *sp_dropout(sp_tape *t, sp_tensor *x, double p, sp_rng *rng, int train);
/** Dropout with a caller-made mask (values 0 or 1/(1-p)) of x's shape or a row [1, C]: reuse one
 * mask at every time step for variational dropout. */
sp_tensor *sp_dropout_mask(sp_tape *t, sp_tensor *x, sp_tensor *mask);

/* ------------------------------------------------------------------- shape */

/** Concatenate n tensors with equal row counts along columns (a copy). */
sp_tensor *sp_concat(sp_tape *t, sp_tensor *const *xs, int n);
/** Stack n tensors with equal column counts along rows (a copy): per-step outputs [B, H] of T
 * steps become one [T*B, H] sequence, ready for one GEMM over all steps. */
sp_tensor *sp_concat_rows(sp_tape *t, sp_tensor *const *xs, int n);
/** Views, no copy: columns [c0, c0+n) or rows [r0, r0+n) of x. */
sp_tensor *sp_slice_cols(sp_tape *t, sp_tensor *x, int c0, int n);
/** Rows [r0, r0 + n) of x as a view (no copy; the gradient aliases x's). */
sp_tensor *sp_slice_rows(sp_tape *t, sp_tensor *x, int r0, int n);
/** Split x into n equal column blocks (views), written to out[0..n-1]. Returns the tape status. */
sp_status sp_split_cols(sp_tape *t, sp_tensor *x, int n, sp_tensor **out);

/* ------------------------------------------------------- softmax, losses */

sp_tensor *sp_softmax(sp_tape *t, sp_tensor *x);             /**< along each row */
/** Mean over rows of -log softmax(logits)[r, target[r]], fused and stable (log-sum-exp).
 * Rows with target < 0 are padding: they add nothing and are not counted; the mean divides by
 * max(real rows, 1) so an all-padding batch gives 0, not NaN. target values >= cols are an
 * error. Returns [1, 1]. If row_loss is not NULL it receives each row's loss (0 for padding). */
sp_tensor *sp_softmax_xent(sp_tape *t, sp_tensor *logits, const int *target, float *row_loss);
/** Mean over elements of the binary cross-entropy of sigmoid(logits) against target in [0, 1]
 * (same shape, a constant), computed stably from the logits. With mask (same shape or a
 * column [R, 1], 0/1) only masked-in elements count, divided by max(count, 1). Returns [1, 1]. */
sp_tensor *sp_sigmoid_bce(sp_tape *t, sp_tensor *logits, sp_tensor *target, sp_tensor *mask);

/** Linear-chain CRF negative log-likelihood (ops/crf.c), the mean over sequences with a real step.
 * emit [T*B, K] holds the tag scores of step t of sequence b in row t*B + b; trans [K, K] scores
 * tag i followed by tag j at [i, j]; start and end [1, K] score the first and last tag. For each
 * sequence of lengths[b] (NULL: all T) real steps with gold tags[t*B + b]:
 *   s(y) = start[y_0] + sum_t emit[t, y_t] + sum_{t>0} trans[y_{t-1}, y_t] + end[y_{L-1}]
 *   nll  = log sum_y exp s(y) - s(gold)   (forward algorithm; backward from the marginals)
 * Tags at padded steps are ignored; a gold tag outside [0, K) is an error. Returns [1, 1]. */
sp_tensor *sp_crf_nll(sp_tape *t, sp_tensor *emit, sp_tensor *trans, sp_tensor *start, sp_tensor *end,
                      const int *tags, const int *lengths, int T, int B);
/** Viterbi decoding under the same scores (no tape, nothing recorded): path[t*B + b] gets the best
 * tag sequence, -1 at padded steps; score[b] (may be NULL) its score. allowed [K*K] (row = from
 * tag) and allowed_start [K] may be NULL; a 0 forbids that transition or first tag (e.g. the BIO
 * rule: I-X only after B-X or I-X). An error if some sequence has no allowed path. */
sp_status sp_crf_decode(const sp_tensor *emit, const sp_tensor *trans, const sp_tensor *start, const sp_tensor *end,
                        const int *lengths, int T, int B, const unsigned char *allowed,
                        const unsigned char *allowed_start, int *path, double *score);

/** How sp_ctc_loss combines the rows' losses (PyTorch's reduction='mean', 'sum', 'none'). */
typedef enum {
    SP_CTC_MEAN = 0, /**< [1, 1]: the mean over rows of each row's loss divided by max(its label count, 1) */
    SP_CTC_SUM,      /**< [1, 1]: the sum of the rows' losses */
    SP_CTC_NONE      /**< [B, 1]: each row's loss */
} sp_ctc_reduction;

/** sp_ctc_loss's options; all zero (or a NULL pointer) is PyTorch's default: blank 0, mean,
 * no zero_infinity, labels concatenated. */
typedef struct {
    int blank;                  /**< the blank's class id, in [0, C) */
    sp_ctc_reduction reduction; /**< SP_CTC_MEAN (default), SP_CTC_SUM, SP_CTC_NONE */
    int zero_infinity;          /**< nonzero: a row with no alignment (or an infinite loss) counts 0 and
                                     gets no gradient, instead of being an error */
    int label_stride;           /**< 0: labels concatenated (row b's follow row b-1's, PyTorch's 1-D
                                     targets); > 0: padded, row b's at labels + b * label_stride */
} sp_ctc_opts;

/** Connectionist temporal classification loss (Graves et al. 2006; ops/ctc.c): -log p(labels | x)
 * summed over every alignment of each row's label sequence to its frames, by the forward-backward
 * recursions in log space (double whatever sp_real is).
 *
 * logits [T*B, C]: the unnormalised scores of frame t of row b in row t*B + b (time outermost, as
 * every sequence); the op applies log_softmax itself, so it equals PyTorch's
 * F.ctc_loss(F.log_softmax(logits, -1), ...) in value and in the gradient with respect to logits
 * (tests/test_ctc_torch.c checks both to 1e-10). Fused, it needs no log-prob node and its gradient
 * is softmax minus the alignment posteriors. input_lengths: NULL (all T) or B values in [0, T];
 * frames past a row's length are never read and get no gradient. labels and label_lengths: row
 * b's label_lengths[b] class ids, none of them the blank (opts->label_stride says where they are).
 * Repeated labels need a blank between them, so a row needs labels + repeats frames. A row of
 * length 0 with no labels has loss 0 and no gradient. A row with fewer frames than its labels
 * need has no alignment (an infinite loss): an error naming the row (PyTorch returns +Inf and
 * NaN gradients), or with zero_infinity a loss of 0 and no gradient, as PyTorch's. Threads split
 * the batch; the result does not depend on their count. Returns [1, 1], or [B, 1] for SP_CTC_NONE. */
sp_tensor *sp_ctc_loss(sp_tape *t, sp_tensor *logits, int T, int B, const int *input_lengths, const int *labels,
                       const int *label_lengths, const sp_ctc_opts *opts);

/** Best-path CTC decoding (ops/ctc_decode.c; no tape, nothing recorded): the best class of every
 * frame, repeats merged, blanks dropped. scores [T*B, C] as sp_ctc_loss's logits (log-probabilities
 * work as well: log_softmax leaves them as they are); input_lengths NULL (all T) or B values in
 * [0, T]. out [B*T]: row b's labels from out[b*T], out_len[b] of them; score (NULL or [B]): the
 * log-probability of the best path. That path's labelling need not be the most likely labelling
 * (which sums over all its paths): sp_ctc_beam_search looks for that one. */
sp_status sp_ctc_greedy(const sp_tensor *scores, int T, int B, const int *input_lengths, int blank, int *out,
                        int *out_len, double *score);

/** A language model over CTC's labels for sp_ctc_beam_search's shallow fusion, as callbacks on
 * states of state_size bytes that the decoder stores and copies (one per prefix in the beam).
 * Each callback returns SP_OK, or a status with sp_last_error set (the search stops with it).
 * logp receives C + 1 values: logp[c] = log P(next label c | the text so far) for every label c
 * (the blank's entry is not read), logp[C] = log P(the text ends here) (0 if the model has no end).
 * sp_ctc_lm_stream_new (layers.h) makes one from a trained character-level stack. */
typedef struct sp_ctc_lm {
    size_t state_size; /**< bytes of one state */
    /** The state of an empty text into state, its logp (C + 1 values) into logp. */
    sp_status (*start)(void *user, void *state, double *logp);
    /** For i < n: to[i] = from[i] after reading labels[i], and logp[i] (C + 1 values) its
     * distribution. The n prefixes a frame adds come in one call (a model can batch them). */
    sp_status (*advance)(void *user, int n, const void *const *from, const int *labels, void *const *to,
                         double *const *logp);
    void *user;        /**< passed to both */
} sp_ctc_lm;

#define SP_CTC_DEFAULT_BEAM 16  /**< sp_ctc_beam_opts.beam = 0 */
#define SP_CTC_MAX_BEAM 65536   /**< the widest beam sp_ctc_beam_search accepts */

/** sp_ctc_beam_search's options; all zero (or NULL) is a beam of 16, blank 0, no language model. */
typedef struct {
    int beam;               /**< prefixes kept after each frame (0: SP_CTC_DEFAULT_BEAM) */
    int blank;              /**< the blank's class id */
    const sp_ctc_lm *lm;    /**< NULL: no language model */
    double lm_weight;       /**< alpha: weight of log P_lm(prefix) in the score (0: the model is not used) */
    double insertion_bonus; /**< beta: added to the score per label of the prefix (offsets the LM's
                                 cost of every label, which else favours short outputs) */
} sp_ctc_beam_opts;

/** CTC prefix beam search (ops/ctc_decode.c; no tape): the labelling of each row with the best
 *   score = log P_ctc(prefix | frames) + lm_weight * log P_lm(prefix [+ end]) + insertion_bonus * |prefix|
 * among the `beam` best prefixes kept after each frame, P_ctc summing over all the prefix's paths
 * (so it can find a labelling more likely than the greedy best path's). With a beam as large as
 * every prefix and no language model it is the most likely labelling exactly. scores,
 * input_lengths, out, out_len as sp_ctc_greedy; score (NULL or [B]) the winner's score, the
 * model's end-of-text log-probability included. Allocates its working memory per call. */
sp_status sp_ctc_beam_search(const sp_tensor *scores, int T, int B, const int *input_lengths,
                             const sp_ctc_beam_opts *opts, int *out, int *out_len, double *score);

/* ----------------------------------------------------------- reductions */

sp_tensor *sp_sum(sp_tape *t, sp_tensor *x);                 /**< [1, 1] */
sp_tensor *sp_mean(sp_tape *t, sp_tensor *x);                /**< [1, 1] */

/* ---------------------------------------------------------- embedding */

/** Rows of table [V, D] picked by ids[0..n-1] -> [n, D]. An id < 0 gives a zero row (padding);
 * an id >= V is an error. The gradient scatters (+=) into the picked rows of table. */
sp_tensor *sp_embedding(sp_tape *t, sp_tensor *table, const int *ids, int n);

/* ------------------------------------------------------- fused cells */

/** The elementwise half of an LSTM step in one op (the built-in LSTM uses it; the same math from
 * basic ops stays available to custom cells). The pre-activations are xp + hp, both [B, 4H] in
 * PyTorch's order i, f, g, o (typically xp = the step's rows of the input projection with both
 * biases, hp = h_prev W_hh^T; hp may be NULL); c_prev [B, H]. Returns [B, 2H] = [h | c]:
 *   c = s(f) c_prev + s(i) tanh(g),  h = s(o) tanh(c)
 * Take h and c as column views: sp_slice_cols(out, 0, H), sp_slice_cols(out, H, H). */
sp_tensor *sp_lstm_cell(sp_tape *t, sp_tensor *xp, sp_tensor *hp, sp_tensor *c_prev);
/** The elementwise half of a GRU step, reset-after form (PyTorch/cuDNN). xp = x W_ih^T + b_ih
 * (plus b_hh's r and z parts) and hp = h_prev W_hh^T, both [B, 3H] in order r, z, n; b_hn [1, H]
 * (may be NULL) is b_hh's n part, which sits inside the reset; h_prev [B, H]. Returns h [B, H]:
 *   r = s(xp_r + hp_r), z = s(xp_z + hp_z), n = tanh(xp_n + r (hp_n + b_hn)), h = (1 - z) n + z h_prev */
sp_tensor *sp_gru_cell(sp_tape *t, sp_tensor *xp, sp_tensor *hp, sp_tensor *b_hn, sp_tensor *h_prev);
/** A whole LSTM recurrence in one op: the same math as T steps of
 * sp_lstm_cell(xp_t, h_{t-1} W_hh^T, c_{t-1}), done without a record per step (ops/seq.c says
 * why it is faster). xp [T*B, 4H] holds the projected inputs of all steps, time outermost (rows
 * t*B .. t*B+B-1 are step t), biases included; w_hh [4H, H]; h0, c0 [B, H] the initial state.
 * lengths: NULL (every row runs T steps) or B values in [0, T]; row b is real for t < lengths[b]:
 * padded steps output 0 and carry the state. Returns [2(T+1)B, H]: the h of every step (row
 * t*B + b: row b at step t), then the final h of each row (rows T*B .. T*B+B-1, the row's last real
 * step), then the same (T+1)*B rows for c. So the output sequence is the view of rows 0 .. T*B. */
sp_tensor *sp_lstm_seq(sp_tape *t, sp_tensor *xp, sp_tensor *w_hh, sp_tensor *h0, sp_tensor *c0, int T,
                       const int *lengths);
/** The same for the reset-after GRU (sp_gru_cell's math; xp [T*B, 3H] with b_ih and the r, z parts
 * of b_hh folded in, w_hh [3H, H], b_hn [1, H] or NULL) and the Elman RNN (h = tanh or, relu != 0,
 * relu of xp + h W_hh^T; xp [T*B, H], w_hh [H, H]). They have no c: the result is [(T+1)B, H], the
 * h of every step, then the final h of each row. */
sp_tensor *sp_gru_seq(sp_tape *t, sp_tensor *xp, sp_tensor *w_hh, sp_tensor *b_hn, sp_tensor *h0, int T,
                      const int *lengths);
/** The Elman RNN over all T steps (see sp_gru_seq above): result [(T+1)B, H]. */
sp_tensor *sp_rnn_seq(sp_tape *t, sp_tensor *xp, sp_tensor *w_hh, sp_tensor *h0, int relu, int T, const int *lengths);

/** The linear recurrence h_t = a_t * h_{t-1} + b_t, elementwise, over all T steps in one op
 * (ops/scan.c): the recurrence of minGRU and minLSTM (Feng et al. 2024), or of any cell whose gates
 * read only the input, so every product runs once over all steps and only this scan is sequential.
 * a, b [T*B, H] (time outermost; views allowed), h0 [B, H] the initial state. lengths: NULL or B
 * values in [0, T]; a padded step (t >= lengths[b]) leaves row b's state alone and outputs 0.
 * Returns [(T+1)*B, H]: the h of every step, then each row's final state (rows T*B .. T*B+B-1: the
 * state after its last real step, h0 for a length of 0), as sp_gru_seq. Threads split the B x H
 * columns (the same bits for any count) or, when those are too few, the time axis (the same
 * numbers to rounding). */
sp_tensor *sp_linear_scan(sp_tape *t, sp_tensor *a, sp_tensor *b, sp_tensor *h0, int T, const int *lengths);

/* ------------------------------------------------------ normalisation */

/** Layer normalisation of each row of x [R, C] (Ba, Kiros & Hinton 2016), torch.nn.LayerNorm(C)'s
 * math: y = (x - mean) / sqrt(var + 1e-5) * gain + bias, var the biased variance over the row.
 * gain and bias are rows [1, C] (usually parameters initialised to 1 and 0); either may be NULL. */
sp_tensor *sp_layer_norm(sp_tape *t, sp_tensor *x, sp_tensor *gain, sp_tensor *bias);

/* ---------------------------------------------------------- attention */

/** Attention over S encoder steps of B sequences, the encoder side in the sequence layout
 * [S*B, D] (row s*B + b is step s of sequence b), the decoder side one step [B, D]. Scores are
 * [B, S]; mask them for variable lengths with sp_attn_mask and normalise with sp_softmax.
 *   sp_attn_dot       e[b][s] = q_b . k_{s,b}                    (Luong et al. 2015 "dot"; "general"
 *                                                                  is q = h W first, a matmul)
 *   sp_attn_additive  e[b][s] = sum_d v_d tanh(q_{b,d} + k_{s,b,d})  (Bahdanau et al. 2015, with
 *                                                                  q = h W_q, k = enc W_k precomputed)
 *   sp_attn_context   c_b = sum_s a[b][s] v_{s,b}  -> [B, D]       the context vector
 * Padding is never read: sp_attn_mask replaces the scores past each length (whatever they are, Inf
 * and NaN included), sp_softmax gives them weight exactly 0, sp_attn_context takes nothing from a
 * value row of weight 0, and no gradient computed at a masked position reaches an input, so a
 * padded key or value row may hold anything without changing the result or the gradients. */
sp_tensor *sp_attn_dot(sp_tape *t, sp_tensor *q, sp_tensor *keys, int S);
/** Additive scores (see above): e[b][s] = sum_d v_d tanh(q_{b,d} + k_{s,b,d}), [B, S]. */
sp_tensor *sp_attn_additive(sp_tape *t, sp_tensor *q, sp_tensor *keys, sp_tensor *v, int S);
/** The context vector c_b = sum_s a[b][s] v_{s,b}, [B, D]; a weight of exactly 0 takes nothing from
 * its value row (0 * Inf counts as 0: padding). */
sp_tensor *sp_attn_context(sp_tape *t, sp_tensor *weights, sp_tensor *values, int S);
/** scores [B, S] with every score at s >= lengths[b] replaced by -1e30 (not added to: an Inf or
 * NaN score of a padded key is gone too), so a following sp_softmax gives exactly 0 weight to
 * padding (a row of length 0 gets uniform weights over nothing real, never NaN). The gradient
 * passes to the real scores only. lengths NULL: returns scores unchanged. */
sp_tensor *sp_attn_mask(sp_tape *t, sp_tensor *scores, const int *lengths);
SP_API_END

#ifdef __cplusplus
}
#endif
#endif
