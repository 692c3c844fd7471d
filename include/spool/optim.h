/* SPDX-License-Identifier: MIT */
/** @file
 * spool/optim.h - optimizers, gradient clipping, learning-rate schedules and safetensors
 * checkpoints.
 *
 * Optimizers work on a whole sp_params set as one flat array: the values and gradients slabs
 * (ps->value, ps->grad, ps->numel) and state slabs of the same length owned by the optimizer
 * (momentum buffers, moment estimates). The update rules, hyper-parameters and defaults are
 * PyTorch's (torch.optim in 1.13: SGD, RMSprop, Adagrad, Adam, AdamW, same formulas, same
 * order of operations, same names for the state), so a run here and a run there agree to
 * rounding; Lion, which torch.optim does not have, follows its paper (Chen et al. 2023). The learning rate is passed to every step, so a schedule is just a function of the
 * step number.
 *
 * Checkpoints are safetensors files (8-byte little-endian header length, a JSON header, raw
 * little-endian data; the format of Hugging Face's safetensors), whose tensors go straight into
 * torch's load_state_dict when parameter names follow PyTorch's (weight_ih_l0, ...; layers.h
 * creates them so). docs/optim.md has examples.
 */
#ifndef SPOOL_OPTIM_H
#define SPOOL_OPTIM_H

#include "core.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

SP_API_BEGIN

/* -------------------------------------------------------------- optimizers */

/** The optimizers. */
typedef enum {
    SP_SGD, SP_RMSPROP, SP_ADAGRAD, SP_ADAM, SP_ADAMW, SP_LION,
    SP_OPTIM_KIND_COUNT /**< the number of kinds, not a kind */
} sp_optim_kind;

/** Hyper-parameters. Start from sp_optim_defaults(kind), which gives PyTorch's defaults:
 *   SGD      momentum 0, dampening 0, nesterov 0, weight_decay 0      (torch has no default lr)
 *   RMSprop  alpha 0.99, eps 1e-8, momentum 0, centered 0, weight_decay 0       (lr 1e-2)
 *   Adagrad  lr_decay 0, initial_accumulator_value 0, eps 1e-10, weight_decay 0 (lr 1e-2)
 *   Adam     beta1 0.9, beta2 0.999, eps 1e-8, amsgrad 0, weight_decay 0        (lr 1e-3)
 *   AdamW    as Adam but weight_decay 1e-2, applied decoupled: p *= 1 - lr*wd   (lr 1e-3)
 *   Lion     beta1 0.9, beta2 0.99, weight_decay 0 (decoupled, as AdamW)       (lr 1e-4)
 *            (Chen et al. 2023; not in torch.optim: the authors' reference update,
 *            p -= lr * sign(beta1 m + (1 - beta1) g), then m = beta2 m + (1 - beta2) g)
 * weight_decay is L2 (g += wd * p) for every kind except AdamW. The default lr is in lr; the
 * learning rate actually used is the one passed to sp_optim_step. */
typedef struct {
    sp_optim_kind kind;   /**< which optimizer */
    double lr;            /**< PyTorch's default for the kind (SGD: 0.01, torch requires one) */
    double weight_decay;  /**< L2 (AdamW: decoupled) */
    double momentum;      /**< SGD, RMSprop */
    double dampening;     /**< SGD */
    int nesterov;         /**< SGD: needs momentum > 0 and dampening 0 */
    double alpha;         /**< RMSprop smoothing constant */
    int centered;         /**< RMSprop: normalise by the estimated variance */
    double lr_decay;      /**< Adagrad: lr / (1 + (step-1) * lr_decay) */
    double initial_accumulator_value; /**< Adagrad */
    double beta1;         /**< Adam, AdamW: first-moment decay; Lion: interpolation for the sign */
    double beta2;         /**< Adam, AdamW: second-moment decay; Lion: momentum decay */
    int amsgrad;          /**< Adam, AdamW */
    double eps;           /**< added to the denominator (RMSprop, Adagrad, Adam, AdamW) */
} sp_optim_config;

/** The configuration PyTorch uses by default for that optimizer (lr aside). */
sp_optim_config sp_optim_defaults(sp_optim_kind kind);
/** "sgd", "rmsprop", "adagrad", "adam", "adamw", "lion" (also the prefix of state tensor names). */
const char *sp_optim_kind_name(sp_optim_kind kind);

/** An optimizer bound to one parameter set, with its state (opaque). */
typedef struct sp_optim sp_optim;

/** An optimizer over every parameter of ps (as it is now: adding parameters later is an error
 * at the next step). Checks the configuration (eps > 0, 0 <= betas < 1, nesterov rules, ...).
 * NULL on error (sp_last_error). The set must outlive the optimizer. */
sp_optim *sp_optim_new(sp_params *ps, const sp_optim_config *cfg);
/** Frees the optimizer and its state (NULL is a no-op). */
void sp_optim_free(sp_optim *opt);

/** One update of every parameter from its gradient with learning rate lr (>= 0). The gradients
 * are read, not changed. If any gradient is NaN or Inf nothing is updated, the step counter
 * stays, and SP_ERR_NONFINITE is returned with the parameter's name in sp_last_error(). */
sp_status sp_optim_step(sp_optim *opt, double lr) SP_WARN_UNUSED;

/** The configuration in use. */
const sp_optim_config *sp_optim_get_config(const sp_optim *opt);
int64_t sp_optim_steps(const sp_optim *opt);    /**< updates done so far */
/** The state slabs, each numel long and laid out like ps->value. Their names are PyTorch's
 * state keys: "momentum_buffer" (SGD with momentum; RMSprop with momentum), "square_avg" and
 * "grad_avg" (RMSprop, the latter if centered), "sum" (Adagrad), "exp_avg", "exp_avg_sq" and
 * "max_exp_avg_sq" (Adam/AdamW, the last with amsgrad), "exp_avg" (Lion). */
int sp_optim_nslots(const sp_optim *opt);
/** Name of state slot i ("exp_avg", ...), or NULL past the last. */
const char *sp_optim_slot_name(const sp_optim *opt, int i);
/** State slot i: one value per parameter element, in the slab's layout (NULL past the last). */
sp_real *sp_optim_slot(const sp_optim *opt, int i);
sp_real *sp_optim_slot_by_name(const sp_optim *opt, const char *name); /**< NULL if none */

/* ---------------------------------------------------------------- clipping */

/** The global L2 norm of all gradients of ps, computed in double (scaled where squares would
 * overflow), into *norm. SP_ERR_NONFINITE (naming the parameter) with *norm NaN or Inf if any
 * gradient is NaN or Inf. Changes nothing. */
sp_status sp_grad_norm(const sp_params *ps, double *norm) SP_WARN_UNUSED;

/** Both compute the global L2 norm of all gradients (in double) and store it in *norm (may be
 * NULL) before clipping, so a training loop can log it. If any gradient is NaN or Inf they
 * return SP_ERR_NONFINITE (naming the parameter), set *norm to NaN or Inf and change nothing.
 *
 * By value: every component is clamped into [-c, c] (c >= 0). */
sp_status sp_clip_grad_value(sp_params *ps, double c, double *norm) SP_WARN_UNUSED;
/** By norm: if norm > max_norm, every gradient is multiplied by max_norm / norm; at or below the
 * threshold nothing changes. (PyTorch's clip_grad_norm_ always multiplies by
 * min(1, max_norm / (norm + 1e-6)); spool leaves gradients at the threshold exactly as they are.)
 * max_norm > 0. */
sp_status sp_clip_grad_norm(sp_params *ps, double max_norm, double *norm) SP_WARN_UNUSED;

/* --------------------------------------------------------------- schedules */

/** Learning-rate schedules. */
typedef enum { SP_SCHED_CONSTANT, SP_SCHED_STEP, SP_SCHED_COSINE } sp_sched_kind;

/** The learning rate of update number `step` (0-based):
 *   constant  base_lr
 *   step      base_lr * gamma^floor(step / step_size)           (torch StepLR)
 *   cosine    warm-up: base_lr * (step + 1) / warmup for step < warmup (linear, never 0);
 *             then min_lr + (base_lr - min_lr) * (1 + cos(pi * s / S)) / 2 with
 *             s = step - warmup, S = total - warmup (torch CosineAnnealingLR's curve);
 *             min_lr for step >= total. */
typedef struct {
    sp_sched_kind kind;   /**< constant, step or cosine */
    double base_lr;       /**< the learning rate before decay */
    int step_size;    /**< step: updates between decays (> 0) */
    double gamma;     /**< step: factor per decay */
    int warmup;       /**< cosine: warm-up updates (>= 0, < total) */
    int total;        /**< cosine: updates in the whole run (> 0) */
    double min_lr;    /**< cosine: floor */
} sp_schedule;

/** lr for that step; a negative value with sp_last_error set if the schedule is malformed. */
double sp_schedule_lr(const sp_schedule *s, int64_t step);

/* -------------------------------------------------------------- checkpoints */

/** A metadata entry of a checkpoint: two strings. */
typedef struct {
    const char *key;      /**< the name */
    const char *value;    /**< the text */
} sp_kv;

/** Options for sp_save and sp_load (all fields may be 0/NULL).
 *
 * prefix: with a prefix, only parameters whose names start with it are saved, under their name
 *   without it; loading puts file tensor N into parameter prefix+N. So a model whose LSTM
 *   parameters are "lstm.weight_ih_l0", ... saved with prefix "lstm." gives a file that
 *   torch.nn.LSTM.load_state_dict(strict=True) accepts.
 * meta / n_meta: string -> string pairs for the header's __metadata__ (the model configuration),
 *   written on save. Keys starting with "spool." are reserved.
 * rng: saved in __metadata__ as "spool.rng" (two 16-digit hex words) if not NULL; on load it is
 *   restored into *rng if the file has one (error if it has none).
 *
 * Shapes: a parameter is saved as [rows, cols], except that a bias made by sp_param_vec (every
 * bias the layers of layers.h create) is saved 1-D as [C], as PyTorch stores biases: the set's
 * own layout (offset, SP_PARAM_1D) decides, never the name.
 * Loading accepts [rows, cols], and also [C] or [] where that is the same thing. Values are
 * stored as F32 (converted from double in the double build); loading accepts F32 and F64. */
typedef struct {
    const char *prefix;   /**< only parameters under this prefix, saved without it (NULL: all) */
    const sp_kv *meta;    /**< metadata pairs to write (save) */
    int n_meta;           /**< entries in meta */
    sp_rng *rng;          /**< generator saved and restored with the file (NULL: none) */
} sp_ckpt_opts;

/** Writes the parameters (and, if opt is not NULL, its state as extra tensors
 * "optim.<kind>.<slot>.<name>", the step counter "optim.step" (I64 [1]) and the configuration
 * in metadata "spool.optim.*") to path atomically: a temporary file next to it, fsync, rename.
 * A model-only file (opt NULL) has exactly the model's tensors, for strict loading elsewhere.
 * A value that is NaN, Inf or (double build) beyond the F32 range is refused (SP_ERR_NONFINITE),
 * as sp_load would refuse it. */
sp_status sp_save(const char *path, const sp_params *ps, const sp_optim *opt,
                  const sp_ckpt_opts *o) SP_WARN_UNUSED;

/** Reads path, checks everything (format, every tensor present with the right shape, no extra
 * model tensors, finite values, optimizer kind and state if opt is not NULL) into temporaries,
 * and only then copies into ps (and opt, and the generator o->rng points to). On any error ps/opt are untouched and
 * sp_last_error() says what is wrong. Optimizer tensors in the file are ignored when opt is
 * NULL. The optimizer keeps its own hyper-parameters (the file's spool.optim.* metadata is for
 * reading; changing, say, weight decay on resume is allowed); its kind and state slots must match.
 * Stricter than the reference reader: duplicate keys, unknown keys in a tensor entry, NUL in
 * names and more than 8 dimensions are refused. */
sp_status sp_load(const char *path, sp_params *ps, sp_optim *opt, const sp_ckpt_opts *o) SP_WARN_UNUSED;

/** A checkpoint's table of contents, to rebuild the model of the saved configuration before
 * loading: metadata pairs and the tensors' names, dtypes and shapes. */
typedef struct {
    const char *name;        /**< the tensor's name in the file */
    const char *dtype;       /**< "F32", "I64", ... */
    int ndim;                /**< dimensions (0 .. 8) */
    int64_t shape[8];        /**< sizes of the ndim dimensions */
} sp_ckpt_tensor;

/** An open checkpoint, for reading its metadata and tensor list (opaque). */
typedef struct sp_ckpt_info sp_ckpt_info;

sp_ckpt_info *sp_ckpt_open(const char *path);   /**< NULL on error (sp_last_error) */
/** Closes it (NULL is a no-op). */
void sp_ckpt_close(sp_ckpt_info *ci);
/** The number of metadata entries. */
int sp_ckpt_n_meta(const sp_ckpt_info *ci);
/** Metadata entry i (NULL out of range). */
const sp_kv *sp_ckpt_meta_at(const sp_ckpt_info *ci, int i);
const char *sp_ckpt_meta(const sp_ckpt_info *ci, const char *key);   /**< NULL if absent */
/** The number of tensors in the file. */
int sp_ckpt_n_tensors(const sp_ckpt_info *ci);
const sp_ckpt_tensor *sp_ckpt_tensor_at(const sp_ckpt_info *ci, int i); /**< sorted by name */
/** The tensor of that name, or NULL. */
const sp_ckpt_tensor *sp_ckpt_find(const sp_ckpt_info *ci, const char *name);

/** The same two on a whole file already in memory (what sp_load and sp_ckpt_open do after
 * reading; the fuzz tests call these). The info owns copies of everything it holds. */
sp_ckpt_info *sp_ckpt_parse(const unsigned char *buf, size_t len);
/** sp_load from a checkpoint held in memory (buf, len bytes). */
sp_status sp_load_mem(const unsigned char *buf, size_t len, sp_params *ps, sp_optim *opt,
                      const sp_ckpt_opts *o) SP_WARN_UNUSED;

SP_API_END

#ifdef __cplusplus
}
#endif
#endif
