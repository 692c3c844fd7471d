/* SPDX-License-Identifier: MIT */
/** @file
 * spool/layers.h - linear and embedding layers, recurrent cells and the runners that unroll them.
 *
 * Everything here is a composition of the public ops in ops.h: a recurrent layer is its cell's
 * `step` called once per time step on the tape, and BPTT is sp_backward walking that record. There
 * is no hidden kernel, so a cell written by a user (fill an sp_cell, see docs/layers.md) runs
 * through the same runners, stacks and bidirectional wrapper as the built-in ones.
 *
 * Layout conventions (all of spool):
 *   - a batch of sequences is one tensor [T*B, C], time outermost: the rows of step t are
 *     sp_slice_rows(x, t*B, B);
 *   - lengths (int[B], optional) give each row's real length in [0, T], in any order (no sorting);
 *     steps t >= lengths[b] are padding: they leave row b's state unchanged and give a zero output
 *     row; a row of length 0 keeps its initial state and gives zeros (never NaN).
 *
 * Parameters are created in a caller-given sp_params set with PyTorch state_dict names and
 * layouts, so a checkpoint holds the same bytes as PyTorch's state_dict:
 *   "<prefix>.weight_ih_l<k><sfx>"  [G, I]      input weights, gates stacked (see each kind)
 *   "<prefix>.weight_hh_l<k><sfx>"  [G, O]      recurrent weights (O = H, or P with projection)
 *   "<prefix>.bias_ih_l<k><sfx>"    [1, G]      PyTorch's 1-D (G) bias, stored as one row
 *   "<prefix>.bias_hh_l<k><sfx>"    [1, G]      the second bias, kept as PyTorch/cuDNN do
 *   "<prefix>.weight_hr_l<k><sfx>"  [P, H]      LSTMP projection (proj_size P)
 * k is the layer of a stack, sfx is "" (forward) or "_reverse" (backward direction); an empty
 * prefix gives the bare names ("weight_ih_l0") of a torch.nn.LSTM's own state_dict. Every step
 * computes x W_ih^T with sp_matmul_ex(t, x, 0, W, 1), i.e. on PyTorch's layout directly.
 * Kinds that PyTorch does not have use spool names where their math differs, so a strict PyTorch
 * load_state_dict fails loudly instead of silently misreading:
 *   peephole LSTM   adds "<prefix>.weight_peep_l<k><sfx>" [3, H] (rows: i, f, o diagonals; [2, H],
 *                   rows i, o, when coupled);
 *   coupled LSTM    G = 3H (gates i, g, o; f = 1 - i), so weight shapes differ from nn.LSTM;
 *   reset-before GRU names its recurrent weight "<prefix>.weight_hh_resetbefore_l<k><sfx>";
 *   update-only GRU G = 2H (gates z, n), shapes differ from nn.GRU.
 * sp_cell_kind_name() and sp_cell_pytorch_mode() let a checkpoint writer record the kind.
 *
 * Errors: functions taking a tape put it into its sticky error state (message names the layer,
 * node names and shapes) and return NULL / the tape status; functions without a tape return an
 * sp_status and set sp_last_error(). Nothing aborts.
 */
#ifndef SPOOL_LAYERS_H
#define SPOOL_LAYERS_H

#include "core.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

SP_API_BEGIN

/** ===================================================================== initialisation helpers */

/** A new parameter rows x cols filled with U(-bound, bound) from rng. NULL on error (sp_last_error).
 * For custom cells; the built-in layers use it with PyTorch's bounds. */
sp_tensor *sp_param_uniform(sp_params *ps, const char *name, int rows, int cols, double bound, sp_rng *rng);
/** Overwrite rows [r0, r0+n) of p (a parameter or any tensor) with a matrix whose columns (n >= cols)
 * or rows (n < cols) are orthonormal, from a Gram-Schmidt of N(0,1) draws (Saxe et al. 2014). */
sp_status sp_init_orthogonal(sp_tensor *p, int r0, int n, sp_rng *rng);

/** ============================================================================ linear, embed */

/** y = x W^T + b. PyTorch names "<prefix>.weight" [out, in] and "<prefix>.bias" [1, out] (bare
 * "weight"/"bias" with an empty prefix); init U(+-1/sqrt(in)) for both, as torch.nn.Linear. */
typedef struct {
    sp_tensor *weight;        /**< [out, in] */
    sp_tensor *bias;          /**< [1, out]; NULL if created without one */
    int in;                   /**< input features */
    int out;                  /**< output features */
} sp_linear;

/** Creates "<prefix>.weight" (and "<prefix>.bias" if with_bias) in ps, initialised from rng. */
sp_status sp_linear_init(sp_linear *l, sp_params *ps, const char *prefix, int in, int out, int with_bias,
                         sp_rng *rng);
sp_tensor *sp_linear_forward(sp_tape *t, const sp_linear *l, sp_tensor *x); /**< [N, in] -> [N, out] */

/** Token embedding: "<prefix>.weight" [num, dim], init N(0, 1) as torch.nn.Embedding. */
typedef struct {
    sp_tensor *weight;        /**< [num, dim] */
    int num;                  /**< number of tokens (ids 0 .. num-1) */
    int dim;                  /**< embedding size */
} sp_embed;

/** Creates "<prefix>.weight" [num, dim] in ps, initialised N(0, 1) from rng. */
sp_status sp_embed_init(sp_embed *e, sp_params *ps, const char *prefix, int num, int dim, sp_rng *rng);
/** ids[0..n-1] -> [n, dim]; an id < 0 gives a zero row (padding), an id >= num is an error. */
sp_tensor *sp_embed_forward(sp_tape *t, const sp_embed *e, const int *ids, int n);

/** ==================================================================================== cells */

typedef enum {
    SP_CELL_RNN_TANH,   /**< h = tanh(W_ih x + b_ih + W_hh h + b_hh)                     nn.RNN tanh */
    SP_CELL_RNN_RELU,   /**< same with relu                                              nn.RNN relu */
    SP_CELL_GRU_UPDATE_ONLY,          /**< no reset gate: z, n; h = (1-z) n + z h'       spool only  */
    SP_CELL_GRU_RESET_BEFORE_MATMUL,  /**< n = tanh(.. + W_hn (r*h')) Keras reset_after=False        */
    SP_CELL_GRU_RESET_AFTER_MATMUL,   /**< n = tanh(.. + r*(W_hn h' + b_hn))  nn.GRU / cuDNN         */
    SP_CELL_LSTM,       /**< nn.LSTM (i, f, g, o); variants by sp_cell_opts.lstm_flags / proj_size  */
    SP_CELL_LN_LSTM,    /**< layer-normalised LSTM (Ba et al. 2016): LN on both gate halves and on c  */
    SP_CELL_LN_GRU,     /**< layer-normalised GRU, reset after the product (equations in ln_cell.c)  */
    SP_CELL_MGU,        /**< minimal gated unit: one gate f; n = tanh(.. + (f*h) W_hn^T); spool only */
    SP_CELL_MINGRU,     /**< minGRU (Feng et al. 2024): z, h~ from x only; h = (1-z) h + z h~; a scan */
    SP_CELL_MINLSTM,    /**< minLSTM: f, i, h~ from x only, f + i normalised to 1; h = f h + i h~; a scan */
    SP_CELL_CUSTOM      /**< a user's cell: the caller fills the struct */
} sp_cell_kind;

/** LSTM variants; may be combined with each other and with proj_size. */
enum {
    SP_LSTM_PEEPHOLE = 1, /**< i, f see c_{t-1} and o sees c_t through diagonal weights (Gers 2002) */
    SP_LSTM_COUPLED = 2   /**< f = 1 - i (no forget gate weights; Greff et al. 2017 "CIFG") */
};

/** Variants of a cell, for sp_cell_init; zero-initialised means the plain cell. */
typedef struct {
    int lstm_flags;      /**< SP_LSTM_PEEPHOLE | SP_LSTM_COUPLED, LSTM only */
    int proj_size;       /**< LSTM only: 0, or P with 0 < P < H (LSTMP, PyTorch proj_size) */
    int orthogonal;      /**< recurrent weights: each gate's block orthogonal instead of uniform */
    int forget_bias_one; /**< LSTM: forget gate bias b_ih = 1, b_hh = 0 (sum 1) after init; no-op coupled;
                            LN-LSTM: the forget block of the input LN bias = 1 */
} sp_cell_opts;

/** The most state tensors a cell carries (h, and c for LSTMs). */
#define SP_CELL_MAX_STATE 2

/** A recurrent cell: sizes, parameters and the step function (see struct sp_cell). */
typedef struct sp_cell sp_cell;

/** Input projection of many rows at once: x [N, I] -> [N, G]. The runners call it once on all T*B
 * rows of a layer's input, so the input half of every gate is one GEMM. The built-in cells return
 * x W_ih^T + b_ih + b_hh here (b_hh folded in wherever it is not inside a product, i.e. all of it
 * but the n block of the reset-after GRU), so their steps add no bias. */
typedef sp_tensor *(*sp_cell_project_fn)(sp_tape *t, const sp_cell *c, sp_tensor *x);

/** One time step. x is [B, G], the step's rows of project()'s output, if the cell has a project
 * function, else the raw input rows [B, I]. state[k] is [B, state_size[k]] (k < n_state); the
 * step writes the new state to new_state[0..n_state-1], where new_state[0] is the output h.
 * Returns the tape status (SP_OK on success). x and state may be views: never write into them. */
typedef sp_status (*sp_cell_step_fn)(sp_tape *t, const sp_cell *c, sp_tensor *x, sp_tensor *const *state,
                                     sp_tensor **new_state);

/** A recurrent cell. Built-in kinds come from sp_cell_init; a custom cell fills the sizes, its
 * parameters, an optional project and the step function itself. */
struct sp_cell {
    sp_cell_kind kind;   /**< which built-in cell (or the custom kind) */
    int lstm_flags;      /**< SP_LSTM_PEEPHOLE | SP_LSTM_COUPLED (LSTM kinds) */
    int input_size;      /**< I */
    int hidden_size;     /**< H */
    int out_size;        /**< O: columns of h (= H, or P with projection) */
    int gate_size;       /**< G: rows of weight_ih (4H, 3H, 2H, H; 3H coupled LSTM) */
    int n_state;         /**< 1 (h) or 2 (h, c) */
    int state_size[SP_CELL_MAX_STATE]; /**< [0] = O (h), [1] = H (c, LSTM) */
    /** Built-in parameters (NULL where the kind has none). */
    sp_tensor *w_ih;     /**< [G, I] input weights (PyTorch weight_ih) */
    sp_tensor *w_hh;     /**< [G, O] recurrent weights (weight_hh) */
    sp_tensor *b_ih;     /**< [1, G] input bias (bias_ih) */
    sp_tensor *b_hh;     /**< [1, G] recurrent bias (bias_hh) */
    sp_tensor *w_hr;     /**< [P, H] projection (LSTMP, weight_hr) */
    sp_tensor *w_peep;   /**< peephole weights (LSTM with SP_LSTM_PEEPHOLE) */
    sp_tensor *ln_gain[3]; /**< layer-norm cells: gains, [0] on x W_ih^T, [1] on h W_hh^T, [2] on c */
    sp_tensor *ln_bias[3]; /**< layer-norm cells: biases, as ln_gain */
    sp_cell_project_fn project; /**< NULL: step receives raw input rows */
    sp_cell_step_fn step;       /**< one time step (required) */
    void *user;          /**< custom cells: whatever step needs (e.g. a struct of parameters) */
    /** Set by the runners on their own copy of the cell while a training run uses dropout (see
     * sp_cell_noise); NULL otherwise. A custom cell may honour them or ignore them. */
    sp_tensor *h_mask;     /**< [B, O] 0 or 1/(1-p): multiplies h before every recurrent product */
    sp_tensor *cand_mask;  /**< [B, H] 0 or 1/(1-p): multiplies the candidate (LSTM g, GRU n, RNN h') */
    char name[64];       /**< tape scope of this cell, e.g. "lstm0" or "lstm0_reverse" (prefix, or the kind, + layer) */
};

/** Largest input or hidden size of a built-in cell (so gates * H and every weight's element count
 * fit their types); larger sizes are refused with SP_ERR_ARG. */
#define SP_MAX_CELL_SIZE (1 << 24)

/** Create a built-in cell's parameters in ps under prefix (see the naming table above), for layer
 * `layer` of a stack, forward (reverse = 0) or backward direction (reverse = 1), input size I,
 * hidden size H. Init: U(+-1/sqrt(H)) on every weight and bias (PyTorch), then opts. opts may be
 * NULL. rng is required. Returns SP_OK or an error (sp_last_error) naming the layer. */
sp_status sp_cell_init(sp_cell *c, sp_cell_kind kind, sp_params *ps, const char *prefix, int layer, int reverse,
                       int I, int H, const sp_cell_opts *opts, sp_rng *rng);

/** "rnn_tanh", "rnn_relu", "gru_update_only", "gru_reset_before_matmul", "gru_reset_after_matmul",
 * "lstm", "lstm+peephole", "lstm+coupled+projection", ..., "custom". Static storage per kind. */
const char *sp_cell_kind_name(const sp_cell *c);
/** The torch.nn mode whose state_dict has the same names, shapes and math: "RNN_TANH", "RNN_RELU",
 * "GRU", "LSTM" (with or without proj_size), or NULL if PyTorch has no such cell. */
const char *sp_cell_pytorch_mode(const sp_cell *c);

/** Zero state [B, state_size[k]] constants into state[0..n_state-1]. Returns the tape status. */
sp_status sp_cell_zero_state(sp_tape *t, const sp_cell *c, int B, sp_tensor **state);
/** One step from raw input rows x [B, I]: projects (if the cell has project) then steps. This is the
 * building block for generation (one-to-many) and decoders: feed new_state back as state. */
sp_status sp_cell_forward(sp_tape *t, const sp_cell *c, sp_tensor *x, sp_tensor *const *state, sp_tensor **new_state);

/** ============================================================================ one sequence */

/** Regularisers of the recurrence, options of every built-in cell (and of custom cells through
 * their state, and h_mask / cand_mask where the cell honours them). A run draws from rng only when
 * train != 0 and a rate is > 0, and then one key: every mask element is a function of that key
 * and of where it is (which mask, step, row, element), not of the order masks are drawn in. So a
 * run is reproducible from its seed, and a sequence run in pieces (sp_segment), each piece from
 * the same rng state with step0 set to its first step, gets the masks of one whole run.
 *   zoneout_h, zoneout_c  Zoneout (Krueger et al. 2016): in training each element of the new state
 *                         keeps its previous value with probability z (fresh mask per element and
 *                         step): s_t = d * s_{t-1} + (1 - d) * s_new, d ~ Bernoulli(z). At
 *                         evaluation its expectation, s_t = z s_{t-1} + (1 - z) s_new (as the
 *                         paper does). zoneout_c applies to the LSTM cell state (state 1).
 *   recurrent_dropout     variational dropout of the hidden-to-hidden path (Gal & Ghahramani
 *                         2016): one [B, O] mask per sequence multiplies h before the recurrent
 *                         product at every step (the state itself and GRU's interpolation see the
 *                         unmasked h). Identity at evaluation.
 *   candidate_dropout     dropout of the candidate (Semeniuta et al. 2016, "without memory
 *                         loss"): a fresh [B, H] mask per step on LSTM's g (c' = f c + i d(g)),
 *                         GRU's n (h' = (1 - z) d(n) + z h) and the vanilla RNN's new h.
 *                         Identity at evaluation.
 * Masks are inverted (kept values scaled by 1/(1-p)), so no rescaling is needed at evaluation. */
typedef struct {
    double zoneout_h;          /**< zoneout rate of h (see above) */
    double zoneout_c;          /**< zoneout rate of the LSTM cell state c */
    double recurrent_dropout;  /**< variational dropout of h before the recurrent product */
    double candidate_dropout;  /**< dropout of the candidate (fresh mask per step) */
    sp_rng *rng; /**< required when train and any rate > 0 */
    int train;   /**< 0: evaluation */
    int step0;   /**< the index of this run's first step in a longer sequence run in pieces (0: it
                    is the whole sequence); the masks of step s are those of step step0 + s */
} sp_cell_noise;

/** Options of sp_seq_run; zero-initialised means zeros as the initial state, full lengths, no noise. */
typedef struct {
    const int *lengths;        /**< int[B] real lengths in [0, T], any order; NULL: every row is T long */
    sp_tensor *const *init;    /**< n_state tensors, each [B, S] or [1, S] (broadcast to every row, e.g.
                                  a trainable parameter from sp_cell_init_state); NULL (or a NULL
                                  entry): zeros. A constant (carried) or an activation also works. */
    int reverse;               /**< the backward direction: row b reads its steps len[b]-1 .. 0; outputs
                                  are still returned in the original time order */
    sp_tensor *input_mask;     /**< optional [B, I] constant mask (0 or 1/(1-p)) reused at every step:
                                  variational dropout of the input (see sp_variational_mask) */
    sp_cell_noise noise;       /**< zoneout, recurrent and candidate dropout (zeros: none) */
} sp_seq_opts;

/** What sp_seq_run returns. */
typedef struct {
    sp_tensor *out;                       /**< [T*B, O] outputs h_t (zero rows at padded steps) */
    sp_tensor *final[SP_CELL_MAX_STATE];  /**< [B, S]: the state after each row's real last step
                                             (for reverse: after its step 0); init for length 0 */
} sp_seq_out;

/** Run cell c over x [T*B, I]. Input projection of all steps is one project() call; the step outputs
 * are joined by one sp_concat_rows so a head can run one GEMM over out. Nodes are named
 * "<scope>/<c->name>/t<step>/..." (clusters in the dot export). opts may be NULL. Returns the tape
 * status; on error out is zeroed and the tape's message names the cell and shapes. */
sp_status sp_seq_run(sp_tape *t, const sp_cell *c, sp_tensor *x, int T, int B, const sp_seq_opts *opts,
                     sp_seq_out *out);

/** Trainable initial state: parameters "<prefix>.h0_l<k><sfx>" [1, O] (and ".c0_l<k><sfx>" [1, H]
 * for LSTM), zero-initialised, written to init[0..n_state-1] for sp_seq_opts.init. */
sp_status sp_cell_init_state(const sp_cell *c, sp_params *ps, const char *prefix, int layer, int reverse,
                             sp_tensor **init);

/** A per-sequence dropout mask [B, C] (values 0 or 1/(1-p)) as a tape constant, keyed by one draw
 * from rng, to be reused at every step (sp_seq_opts.input_mask). p = 0 gives NULL (no dropout)
 * without error. */
sp_tensor *sp_variational_mask(sp_tape *t, int B, int C, double p, sp_rng *rng);

/** ================================================================= many-to-one, pooling */

/** Row b of seq [T*B, C] at its last real step len[b]-1 -> [B, C]; a zero row if len[b] = 0.
 * lengths NULL: step T-1. (A gather, so the gradient reaches only those steps.) */
sp_tensor *sp_seq_last(sp_tape *t, sp_tensor *seq, int T, int B, const int *lengths);
/** Mean over each row's real steps -> [B, C], dividing by max(len, 1) (zeros for length 0). */
sp_tensor *sp_seq_mean(sp_tape *t, sp_tensor *seq, int T, int B, const int *lengths);
/** Max over each row's real steps -> [B, C] (zeros for length 0); composed as m + relu(x - m). */
sp_tensor *sp_seq_max(sp_tape *t, sp_tensor *seq, int T, int B, const int *lengths);
/** Reverse each row within its real length: out[t*B+b] = seq[(len[b]-1-t)*B+b] for t < len[b], zero
 * rows after it. Its own inverse on the real steps. */
sp_tensor *sp_seq_reverse(sp_tape *t, sp_tensor *seq, int T, int B, const int *lengths);

/** ============================================================================ bidirectional */

typedef enum {
    SP_MERGE_CONCAT = 0, /**< [T*B, Of + Ob]: columns [0, Of) forward, [Of, Of+Ob) backward */
    SP_MERGE_SUM,        /**< fwd + bwd (equal O) */
    SP_MERGE_MEAN,       /**< (fwd + bwd) / 2 */
    SP_MERGE_MUL         /**< fwd * bwd */
} sp_merge;

/** Options of sp_bidir_run; zero-initialised means the defaults (merge by concatenation). */
typedef struct {
    const int *lengths;           /**< as in sp_seq_opts */
    sp_tensor *const *init_fwd;   /**< as sp_seq_opts.init, for each direction */
    sp_tensor *const *init_bwd;   /**< the same for the backward direction */
    sp_merge merge;               /**< how the two directions are joined */
    sp_tensor *input_mask;        /**< as sp_seq_opts.input_mask, shared by both directions */
    sp_cell_noise noise;          /**< as sp_seq_opts.noise, for both directions (masks drawn per direction) */
} sp_bidir_opts;

/** What sp_bidir_run returns. */
typedef struct {
    sp_tensor *out;                          /**< merged [T*B, O'] */
    sp_tensor *fwd_out;                      /**< forward direction [T*B, O] */
    sp_tensor *bwd_out;                      /**< backward direction [T*B, O], original time order */
    sp_tensor *fwd_final[SP_CELL_MAX_STATE]; /**< forward: state after step len[b]-1 */
    sp_tensor *bwd_final[SP_CELL_MAX_STATE]; /**< backward: state after reading step 0 */
} sp_bidir_out;

/** Forward cell over each row from its start, backward cell from each row's real end (not from
 * T-1: padding is never read). Output at step t of the backward half is the backward cell's state
 * after reading steps len[b]-1 .. t, so out[t] sees the whole row in both halves. */
sp_status sp_bidir_run(sp_tape *t, const sp_cell *fwd, const sp_cell *bwd, sp_tensor *x, int T, int B,
                       const sp_bidir_opts *opts, sp_bidir_out *out);
/** Columns of the merged output for cells of output sizes Of, Ob. */
int sp_merge_cols(sp_merge m, int Of, int Ob);

/** ============================================================================ deep stacks */

#define SP_RNN_MAX_LAYERS 8

/** A stack of layers, each one cell or a bidirectional pair. Layer l > 0 reads layer l-1's (merged)
 * output. Cells may be of different kinds (fill cell[l][d] yourself with sp_cell_init or a custom
 * cell, with input_size matching the layer below, then set num_layers/bidirectional/merge). */
typedef struct {
    int num_layers;      /**< layers in use (1 .. SP_RNN_MAX_LAYERS) */
    int bidirectional;   /**< 0 or 1; cell[l][1] is the backward direction */
    sp_merge merge;      /**< for bidirectional layers */
    sp_cell cell[SP_RNN_MAX_LAYERS][2]; /**< cell[l][d]: layer l, direction d */
} sp_rnn;

/** A uniform stack like torch.nn.LSTM/GRU/RNN(I, H, num_layers, bidirectional): cells named
 * "<prefix>.<param>_l<k>[_reverse]", merge concat. */
sp_status sp_rnn_init(sp_rnn *r, sp_params *ps, const char *prefix, sp_cell_kind kind, int I, int H, int num_layers,
                      int bidirectional, const sp_cell_opts *opts, sp_rng *rng);
int sp_rnn_out_size(const sp_rnn *r); /**< columns of the last layer's output */

/** States of a whole stack: s[l][d][k] is layer l, direction d (0 fwd, 1 bwd), state k (0 h, 1 c). */
typedef struct {
    sp_tensor *s[SP_RNN_MAX_LAYERS][2][SP_CELL_MAX_STATE]; /**< [B, S] each; NULL where there is none */
} sp_rnn_state;

/** Options of sp_rnn_run; zero-initialised means no dropout, zero initial states, evaluation. */
typedef struct {
    const int *lengths;             /**< as in sp_seq_opts */
    const sp_rnn_state *init;       /**< NULL, or per entry NULL: zeros; [B, S] or [1, S] tensors */
    double between_layers_dropout;  /**< dropout on the OUTPUT of every layer EXCEPT THE LAST (so it
                                       does nothing for one layer), fresh mask per element and step,
                                       as torch.nn.LSTM's `dropout` */
    double variational_dropout;     /**< dropout on the INPUT of every layer (layer 0 included), one
                                       mask per sequence reused at every step (Gal & Ghahramani) */
    sp_rng *rng;                    /**< required when train and a dropout > 0 */
    int train;                      /**< 0: dropouts are the identity (eval) */
    sp_cell_noise noise;            /**< zoneout, recurrent and candidate dropout in every layer;
                                       its train field follows `train` above, its rng
                                       defaults to `rng`; its step0 applies to every mask of
                                       the run, the dropouts above included */
    double output_dropout;          /**< dropout on the OUTPUT of the last layer, fresh mask per
                                       element and step (before a head; kept here rather than
                                       as an sp_dropout after the run so that a run in pieces
                                       draws the whole run's masks) */
} sp_rnn_opts;

/** What sp_rnn_run returns. */
typedef struct {
    sp_tensor *out;                 /**< last layer's output [T*B, sp_rnn_out_size(r)] */
    sp_rnn_state final;             /**< every layer's and direction's final state */
} sp_rnn_out;

/** Runs the stack r over x [T*B, I] (every layer, both directions if bidirectional) into out. */
sp_status sp_rnn_run(sp_tape *t, const sp_rnn *r, sp_tensor *x, int T, int B, const sp_rnn_opts *opts,
                     sp_rnn_out *out);

/** Trainable initial states for every cell of the stack (see sp_cell_init_state) into init. */
sp_status sp_rnn_init_state(const sp_rnn *r, sp_params *ps, const char *prefix, sp_rnn_state *init);

/** ============================================================ stateful / truncated BPTT */

/** Caller memory holding a stack's final states between batches (truncated BPTT, stateful RNNs):
 * copy the final states out of the tape after a batch, feed them back as constants (no gradient
 * flows into the previous batch) before the next one, zero chosen rows when their sequence ends. */
typedef struct {
    int B;                          /**< rows it was made for */
    int cols[SP_RNN_MAX_LAYERS][2][SP_CELL_MAX_STATE]; /**< 0 where the stack has no such state */
    sp_real *data[SP_RNN_MAX_LAYERS][2][SP_CELL_MAX_STATE]; /**< [B, cols] row-major values */
} sp_carry;

/** Zeroed carry for stack r with B rows. sp_carry_free releases it (safe on a zeroed struct). */
sp_status sp_carry_init(sp_carry *c, const sp_rnn *r, int B);
/** Frees what sp_carry_init allocated (safe on a zeroed struct). */
void sp_carry_free(sp_carry *c);
/** Copy the values of final (e.g. sp_rnn_out.final) into c. A batch-size or shape mismatch is an
 * SP_ERR_SHAPE error (sp_last_error) naming the carried state and both sizes. */
sp_status sp_carry_save(sp_carry *c, const sp_rnn_state *final);
/** Make constants on the tape from c into init (for sp_rnn_opts.init). B must equal c->B, else the
 * tape fails with SP_ERR_SHAPE ("carried state has 4 rows, batch has 3"). */
sp_status sp_carry_load(sp_tape *t, const sp_carry *c, int B, sp_rnn_state *init);
/** Zero row b of every carried state (its sequence ended; the next batch starts a new one). */
sp_status sp_carry_reset_row(sp_carry *c, int b);
void sp_carry_reset(sp_carry *c); /**< all rows */

/** ======================================================================= streaming inference */

/** Forward-only inference one step at a time (layers/stream.c): a one-directional stack stepped on
 * its own state with a private tape rewound at every step, so a stream of any length needs one
 * step's memory and keeps nothing for a backward pass. Outputs equal sp_rnn_run's (evaluation
 * mode, zoneout as its expectation if noise has zoneout rates; dropouts are off). Per step:
 *   sp_tape *t = sp_stream_begin(s);             rewinds the step's memory; build inputs on t
 *   sp_tensor *h = sp_stream_step(s, x);         every layer one step; x [B, I] made on t
 *   ... a head on t (e.g. sp_linear_forward(t, &head, h)); valid until the next begin.
 * The state starts at zero (sp_stream_reset zeroes it again); sp_stream_state gives the buffer of
 * layer l's state k ([B, S] row-major) to read or set. */
typedef struct sp_stream sp_stream;
sp_stream *sp_stream_new(const sp_rnn *r, int B, const sp_cell_noise *noise); /**< NULL + sp_last_error */
/** Frees the stream (NULL is a no-op). */
void sp_stream_free(sp_stream *s);
/** Zeroes every state of the stream. */
void sp_stream_reset(sp_stream *s);
/** The buffer of layer's state k ([B, S] row-major), to read or set; NULL out of range. */
sp_real *sp_stream_state(sp_stream *s, int layer, int k);
/** Starts a step: rewinds the stream's tape and returns it, for the step's inputs. */
sp_tape *sp_stream_begin(sp_stream *s);
/** Every layer one step on x [B, I]; returns the last layer's h [B, O] (NULL on error). */
sp_tensor *sp_stream_step(sp_stream *s, sp_tensor *x);
/** Token input through a table (e.g. an embedding's weight [V, I]): layer 0's input projection
 * (x W_ih^T + biases) of every row, and of a zero row for ids < 0, made once here, one row at a
 * time as a step makes it, so sp_stream_step_ids(s, ids) gives the same outputs as
 * sp_stream_step on the rows ids[0..B) of table and skips layer 0's input product at every step
 * (batch-1 sampling reads W_hh and the head only). (V + 1) x G reals: meant for small vocabularies
 * (characters). Called again, it replaces the table; the parameters must not change afterwards. */
sp_status sp_stream_set_table(sp_stream *s, const sp_tensor *table);
/** One step on token ids[0..B) (an id < 0: a zero input row), after sp_stream_set_table. */
sp_tensor *sp_stream_step_ids(sp_stream *s, const int *ids);
/** A whole stack over whole sequences, forward only (layers/stream_run.c): every layer and
 * direction stepped by a stream, nothing recorded, so it needs one step's tape and a layer's
 * output (bidirectional layers read their whole input). x [T*B, I] and out [T*B,
 * sp_rnn_out_size(r)] are caller arrays in sp_rnn_run's layout (row t*B + b is step t of
 * sequence b); lengths (NULL: all T) as sp_rnn_opts.lengths: out is zero past a length and the
 * backward half starts at each row's real end; noise: zoneout rates (their evaluation
 * expectation) or NULL. out equals sp_rnn_run's in evaluation mode (tests/test_stream.c). */
sp_status sp_stream_run(const sp_rnn *r, const sp_real *x, int T, int B, const int *lengths,
                        const sp_cell_noise *noise, sp_real *out);

/** A trained character-level model as the language model of sp_ctc_beam_search (layers/ctc_lm.c):
 * tokens in through table [V_in, I] (an embedding's weight; layer 0's input projection of every
 * row made once, sp_stream_set_table), the one-directional stack rnn, the next token's logits out
 * of head [V] (spool-charlm's model: its emb.weight, rnn and head). A stream of `rows` rows (use
 * the beam width) steps the prefixes a frame adds as one batch. label_token [C] maps each CTC
 * label to the model's token, -1 for the blank and for labels the model does not know (those get
 * log(1/V), the uniform guess, and leave the state as it was). bos: the token read before the
 * first label (spool-charlm's line boundary, token 0 in its lines mode), or -1: start from the
 * zero state with the uniform guess. eos: the token that ends a text (its log-probability scores
 * the end of each final prefix; the boundary again), or -1 for none. The parameters must not change
 * while it is in use. NULL + sp_last_error on bad arguments or a bidirectional stack. */
sp_ctc_lm *sp_ctc_lm_stream_new(const sp_rnn *rnn, const sp_tensor *table, const sp_linear *head, int C,
                                const int *label_token, int bos, int eos, int rows);
/** Frees a model made by sp_ctc_lm_stream_new (NULL is a no-op). */
void sp_ctc_lm_stream_free(sp_ctc_lm *lm);

/** ================================================================================ attention */

/** Attention of a decoder step over an encoder's outputs (layers/attention.c; ops in ops.h). */
typedef enum {
    SP_ATTN_DOT,      /**< q . k (Luong "dot"; query size = key size) */
    SP_ATTN_GENERAL,  /**< (q W^T) . k, W "<prefix>.weight" [K, Q] (Luong "general", multiplicative) */
    SP_ATTN_ADDITIVE  /**< v . tanh(q W_q^T + k W_k^T) (Bahdanau): "<prefix>.query_weight" [A, Q],
                         ".key_weight" [A, K], ".v" [1, A] */
} sp_attn_kind;

/** An attention scorer of one kind with its parameters (sp_attention_init). */
typedef struct {
    sp_attn_kind kind;   /**< how scores are computed */
    int query_size;      /**< Q: columns of a decoder query */
    int key_size;        /**< K: columns of an encoder output */
    int attn_size;       /**< A: hidden size of additive attention */
    sp_tensor *w_q;      /**< additive: [A, Q]; general: [K, Q]; dot: NULL */
    sp_tensor *w_k;      /**< additive: [A, K]; else NULL */
    sp_tensor *v;        /**< additive: [1, A]; else NULL */
} sp_attention;

/** Creates the parameters of kind in ps: query size Q, key size K, additive hidden size A. */
sp_status sp_attention_init(sp_attention *a, sp_params *ps, const char *prefix, sp_attn_kind kind, int Q, int K, int A,
                            sp_rng *rng);
/** Once per encoder output enc [S*B, K]: the keys the scores use (enc W_k^T for additive, enc itself
 * otherwise). */
sp_tensor *sp_attention_keys(sp_tape *t, const sp_attention *a, sp_tensor *enc);
/** One decoder step: query [B, Q] -> context [B, K] = sum over each row's real steps (lengths, may
 * be NULL) of softmax(scores) * enc. *weights (may be NULL) receives the [B, S] attention weights. */
sp_tensor *sp_attention_step(sp_tape *t, const sp_attention *a, sp_tensor *query, sp_tensor *keys, sp_tensor *enc,
                             int S, const int *lengths, sp_tensor **weights);
SP_API_END

#ifdef __cplusplus
}
#endif
#endif
