/* SPDX-License-Identifier: MIT */
/** @file
 * spool/onnx.h - export of a model's inference graph as an ONNX file (onnx/export.c), to run a
 * model trained with spool in ONNX Runtime or any other ONNX consumer (docs/onnx.md); and the
 * reverse for weights: an ONNX file's recurrent layers, embedding and head read into spool's
 * parameters (onnx/import.c, sp_onnx_load_weights), e.g. a model PyTorch exported.
 *
 * The model is described by the layers it is built from: an input (token ids through an
 * embedding or as one-hot vectors, or float features), a recurrent stack (sp_rnn: any number of
 * layers, one-directional or bidirectional), an optional linear head and softmax. The graph is
 * time-major like spool's own layout, with dynamic time and batch axes:
 *
 *   inputs   "ids"      int64 [time, batch]      token ids (embedding or one-hot input); an id < 0
 *                                                is a zero input row, as in sp_embed_forward
 *            "x"        float [time, batch, I]   features (when there is no token input)
 *            "lengths"  int32 [batch]            optional: each row's real length in [0, time];
 *                                                -1 (the default) is the whole sequence
 *            "h0_l<k>"  float [D, batch, O]      optional: layer k's initial h, D = 1 or 2
 *            "c0_l<k>"  float [D, batch, H]      optional: layer k's initial c (LSTM layers)
 *   outputs  "logits"   float [time, batch, V]   the head's output (with a head)
 *            "probs"    float [time, batch, V]   softmax (or sigmoid) of the logits
 *            "y"        float [time, batch, O']  the stack's output (without a head)
 *            (with pooling, sp_onnx_pool, these three are [batch, C]: one vector per row)
 *            "hn_l<k>", "cn_l<k>"                layer k's final states, shaped as h0/c0
 *
 * Direction d of the D axis is 0 forward, 1 backward, as in PyTorch's h_n. The optional inputs
 * are inputs with a default value (an initializer of the same name; ONNX Runtime lists them as
 * overridable initializers): not fed, the states start at sp_onnx_model.init (zero where it has
 * none); fed with batch 1, one state is broadcast to every row. Feeding hn/cn back as h0/c0 with
 * time = 1 steps the model one token at a time, as sp_stream does. Rows past their length give
 * zero rows of y (so the head's bias in logits) and keep their state, as sp_rnn_run; a row of
 * length 0 gives zeros and its initial state as final state.
 *
 * Cells map onto ONNX's own operators (opset 17, IR version 8) where they have one: LSTM (plain,
 * peephole, coupled input-forget gate) onto LSTM with its gates reordered from spool's i, f, g, o
 * to ONNX's i, o, f, c; reset-after and reset-before GRUs onto GRU (linear_before_reset 1 and 0;
 * gates r, z, n to z, r, h); tanh and relu RNNs onto RNN. Every other cell (LSTM with projection,
 * the layer-normalised cells, update-only GRU, MGU, minGRU, minLSTM, a custom cell) and every
 * layer under zoneout is a Scan whose body is the cell's step as spool records it on a tape,
 * translated op by op (products, elementwise ops and activations, slices, concatenation, layer
 * norm, softmax, the fused LSTM and GRU cells). A step that records an op with no ONNX form, or
 * a constant or row slice that depends on the batch, is refused with SP_ERR_ARG naming the
 * layer, the cell, the op and the node: the exporter never writes a file that computes
 * something else.
 *
 * A computation that is not a stack, e.g. one step of an attention decoder whose loop stays in the
 * caller's code, is recorded once on a tape and exported as a graph of its own by
 * sp_onnx_export_tape (sp_onnx_tape binds its inputs and outputs by name), or appended to a
 * model's graph (sp_onnx_model.post): its records are translated as a Scan's step, plus
 * embedding lookups, the attention ops and products over a sequence.
 *
 * Optional at build time (meson -Donnx): without protobuf-c and Debian's onnx.proto,
 * sp_onnx_available() is 0 and sp_onnx_export and sp_onnx_load_weights fail with SP_ERR_STATE
 * saying what to install.
 */
#ifndef SPOOL_ONNX_H
#define SPOOL_ONNX_H

#include "core.h"
#include "layers.h"

#ifdef __cplusplus
extern "C" {
#endif

SP_API_BEGIN

/** The ONNX operator set the files import (the default domain). */
#define SP_ONNX_OPSET 17
/** The ONNX IR version of the files. */
#define SP_ONNX_IR_VERSION 8
/** The most extra token inputs and constant outputs of one model (sp_onnx_model.n_extra, n_consts). */
#define SP_ONNX_MAX_EXTRA 8

/** What the head of a many-to-one model reads (sp_onnx_model.pool): one vector per row. */
typedef enum {
    SP_ONNX_POOL_NONE = 0, /**< none: outputs per step, [time, batch, C] */
    SP_ONNX_POOL_LAST,     /**< the last layer's final h of each direction, concatenated (forward after
                                the row's last real step, backward after step 0), [batch, D*O] */
    SP_ONNX_POOL_MEAN,     /**< the stack's output averaged over each row's real steps (sp_seq_mean) */
    SP_ONNX_POOL_MAX       /**< its maximum over each row's real steps (sp_seq_max); both give zeros
                                for a row of length 0, as spool's ops */
} sp_onnx_pool;

/** What a value of a recorded computation is in the graph (sp_onnx_value.kind). */
typedef enum {
    SP_ONNX_ROWS = 0, /**< a node [B, C] of the recording: float [batch, C] */
    SP_ONNX_SEQ,      /**< a node [S*B, C] in spool's sequence layout (row s*B + b is step s of row b):
                           float [time, batch, C] */
    SP_ONNX_IDS       /**< input only: int64 [batch], the ids of every lookup (sp_embedding,
                           sp_embed_forward) through the table `node` (all of which must have read
                           the same ids); an id < 0 is a zero row */
} sp_onnx_kind;

/** A value of a recording bound to a graph input or output by name (sp_onnx_tape). */
typedef struct {
    const char *name;       /**< the graph's name for it: no '.' or '/', not ending in _<digits> */
    const sp_tensor *node;  /**< the node of the recording (SP_ONNX_IDS: the embedding's table); an
                                 output may be a node bound as an input (not a parameter: see
                                 sp_onnx_model.consts) */
    sp_onnx_kind kind;      /**< what the node is in the graph */
} sp_onnx_value;

/** A computation recorded on a tape, exported as a graph of its own (sp_onnx_export_tape; e.g. one
 * step of a decoder, whose loop stays in the caller's code) or appended to a model's graph
 * (sp_onnx_model.post). Record it once, as at evaluation, with B rows standing for the batch and
 * S*B rows for a sequence (choose B >= 2 and S >= 2 that no constant of the model has as rows);
 * bind the nodes that stand for inputs and outputs. Only what the outputs depend on is translated,
 * up to the nodes bound as inputs, op by op as a Scan's step (docs/onnx.md), plus: lookups through
 * a table bound to an SP_ONNX_IDS input, the attention ops (sp_attn_dot, sp_attn_additive,
 * sp_attn_context: keys and values must be sequences, the query and weights rows; sp_attn_mask:
 * the lengths input), a product x W whose x is a sequence, and constants of B rows that are one
 * row repeated (a fresh state's zeros: broadcast to the batch). Anything else that would fix the
 * batch or the time axis (another constant of B or S*B rows, a row slice of the batch, a product
 * over the time axis of attention scores) and any op without an ONNX form is refused with
 * SP_ERR_ARG naming the op and its node. Attention scores and weights are [batch, time]. */
typedef struct {
    sp_tape *tape;               /**< the recording (its status must be SP_OK) */
    int batch;                   /**< B >= 2: rows of the recording's [B, C] values */
    int steps;                   /**< S >= 2: steps of its SP_ONNX_SEQ values (0 if it has none) */
    int n_in;                    /**< bound inputs (at most SP_ONNX_MAX_BIND) */
    int n_out;                   /**< bound outputs (1 to SP_ONNX_MAX_BIND) */
    const sp_onnx_value *in;     /**< inputs, in the graph's order */
    const sp_onnx_value *out;    /**< outputs, in the graph's order */
    const char *lengths;         /**< NULL, or the name of an optional int32 [batch] input (default -1:
                                      the whole sequence) that every sp_attn_mask of the recording
                                      masks by, whatever lengths it was recorded with */
    const char *const *metadata; /**< as sp_onnx_model.metadata (sp_onnx_export_tape) */
} sp_onnx_tape;

/** The most inputs or outputs of an sp_onnx_tape. */
#define SP_ONNX_MAX_BIND 32

/** A model to export: its layers, as the program built them. Zero-initialise it and set the
 * fields used. */
typedef struct {
    const sp_embed *embed;        /**< token input through this table ("ids"); dim = the stack's I */
    int one_hot;                  /**< without embed: > 0 gives token input as one-hot vectors of
                                     this size (= the stack's I); 0 with embed NULL: input "x" */
    const sp_rnn *rnn;            /**< the recurrent stack (required) */
    const sp_rnn_state *init;     /**< NULL, or per entry NULL or a [1, S] tensor: the default
                                     initial states (e.g. sp_rnn_init_state's parameters) */
    const sp_cell_noise *noise;   /**< NULL, or the regularisers the stack was trained with:
                                     dropouts are the identity at evaluation, zoneout is its
                                     expectation (as sp_rnn_run and sp_stream evaluate) */
    const sp_linear *head;        /**< NULL, or the linear head on the stack's output */
    int softmax;                  /**< 1: also output "probs", the softmax of the logits (needs head) */
    int sigmoid;                  /**< 1: "probs" is the sigmoid of the logits instead (needs head; a
                                     one-logit classifier) */
    sp_onnx_pool pool;            /**< SP_ONNX_POOL_NONE, or the pooling over time before the head:
                                     then "y", "logits" and "probs" are [batch, C] */
    int n_extra;                  /**< further token inputs (at most SP_ONNX_MAX_EXTRA; needs embed): each an
                                     int64 [time, batch] input through its own table, the tables'
                                     columns concatenated after embed's (e.g. a word and a casing id) */
    const sp_embed *const *extra; /**< their tables */
    const char *const *extra_names; /**< their input names */
    int n_consts;                 /**< tensors of the model given as further outputs (at most
                                     SP_ONNX_MAX_EXTRA), e.g. a CRF's transition scores for the
                                     caller's decoder */
    const sp_tensor *const *consts; /**< [rows, cols] each, output as float [rows, cols] */
    const char *const *const_names; /**< their output names */
    /** NULL, or UTF-8 key, value, key, value, ..., NULL: the model's metadata_props (what a
     * program needs to use the model, e.g. its vocabulary; ONNX Runtime's
     * get_modelmeta().custom_metadata_map) */
    const char *const *metadata;
    /** NULL, or a computation appended to the graph (an encoder's bridge to its decoder, the keys
     * of attention): its inputs are values of this graph, "y" (SP_ONNX_SEQ, the stack's output
     * [T*B, O'], zero rows past each row's length) and "hn_l<k>", "cn_l<k>" (SP_ONNX_ROWS, layer k's
     * final states [B, D*S], the directions side by side, forward first); its outputs are further
     * outputs of the graph; its attention masks read "lengths" (post->lengths is not used, nor
     * its metadata). */
    const sp_onnx_tape *post;
} sp_onnx_model;

/** 1 if this library was built with ONNX export, else 0. */
int sp_onnx_available(void);

/** Writes m's inference graph to path as an ONNX model, atomically (sp_file_begin: the old file
 * or the new one, never half of one). SP_OK, or an error (sp_last_error) naming what cannot be
 * exported: an op of a step without an ONNX form (SP_ERR_ARG), sizes that do not chain (SP_ERR_SHAPE),
 * a file that cannot be written (SP_ERR_IO), a build without ONNX (SP_ERR_STATE). Nothing is
 * written on error. */
sp_status sp_onnx_export(const sp_onnx_model *m, const char *path) SP_WARN_UNUSED;

/** Writes the computation g recorded (e.g. a decoder step with attention) to path as an ONNX
 * graph of its own, atomically, with dynamic batch and time axes: its inputs, the optional
 * g->lengths input, and its outputs, as sp_onnx_tape says. The same errors as sp_onnx_export; nothing
 * is written on error. */
sp_status sp_onnx_export_tape(const sp_onnx_tape *g, const char *path) SP_WARN_UNUSED;

/** Reads the weights of an ONNX file into m's parameters, for fine-tuning or running a network
 * exported by PyTorch (torch.onnx.export of an nn.LSTM, nn.GRU or nn.RNN, with or without an
 * nn.Embedding before it and an nn.Linear after it) or by sp_onnx_export. Only the weights are
 * read; the model built by the caller says what the network is, and the file must match it:
 *   - m->rnn (required): the file's LSTM, GRU and RNN nodes, in graph order, are the stack's
 *     layers, one node per layer (both directions of a bidirectional layer in one node). Each is
 *     checked against its layer: the operator (LSTM: SP_CELL_LSTM without projection; GRU with
 *     linear_before_reset = 1: SP_CELL_GRU_RESET_AFTER_MATMUL, PyTorch's, = 0:
 *     SP_CELL_GRU_RESET_BEFORE_MATMUL; RNN: tanh, or relu through its activations), direction,
 *     hidden_size, W [D, G, I], R [D, G, H], B [D, 2G] (optional: zero biases), peepholes P
 *     [D, 3H] (optional), input_forget (SP_LSTM_COUPLED); default activations and no clip. The
 *     gate blocks are moved from ONNX's order (LSTM i, o, f, c; GRU z, r, h) to spool's (i, f, g,
 *     o; r, z, n), B is split into b_ih = Wb and b_hh = Rb. Initial states are inputs of the
 *     graph, not weights, and are not read. A Scan or Loop node (a cell ONNX has no operator for)
 *     is refused.
 *   - m->embed (optional): the first Gather from a [num, dim] matrix of the file.
 *   - m->head (optional): the first Gemm or MatMul from a matrix of the file after the last
 *     recurrent node ([out, in] for Gemm with transB = 1, else [in, out]), and its bias (Gemm's C,
 *     or an Add of a vector of the file; none: zero).
 * The weights may be initializers or Constant nodes, float or double, in raw_data or the typed
 * fields; external data, another data type or NaN/Inf are refused. Every error names the node,
 * the tensor and both shapes (SP_ERR_SHAPE for sizes, SP_ERR_ARG for another operator or variant,
 * SP_ERR_FORMAT for a file that is not ONNX, SP_ERR_IO, SP_ERR_NONFINITE, SP_ERR_STATE in a build
 * without ONNX), and a failed load changes nothing: the parameters are written only when the whole
 * file has been read. The other fields of m are not used. */
sp_status sp_onnx_load_weights(const char *path, const sp_onnx_model *m) SP_WARN_UNUSED;

/** sp_onnx_load_weights from a file held in memory (buf, len bytes); name (may be NULL) is what
 * messages call it. */
sp_status sp_onnx_load_weights_mem(const unsigned char *buf, size_t len, const sp_onnx_model *m,
                                   const char *name) SP_WARN_UNUSED;

SP_API_END

#ifdef __cplusplus
}
#endif
#endif
