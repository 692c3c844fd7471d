/* spool/core.h - tensors, parameters, the tape, errors, runtime (threads, BLIS).
 *
 * The core of spool is three objects:
 *   sp_tensor  a 2-D row-major view {data, grad, rows, cols, stride} over memory it does not own;
 *   sp_params  a model's parameters: values and gradients in two slabs, named views into them;
 *   sp_tape    an arena for activations plus the record of every op run in the forward pass.
 * sp_backward(tape, loss) walks the record in reverse and accumulates (+=) gradients.
 *
 * Errors: functions that can fail return NULL or an sp_status. A failed op puts its tape into a
 * sticky error state (like cairo): later ops on that tape return NULL at once, and
 * sp_tape_status()/sp_tape_errmsg() report the first failure, naming the op, nodes and shapes.
 * Functions without a tape report through the thread-local sp_last_error(). Nothing aborts.
 */
#ifndef SPOOL_CORE_H
#define SPOOL_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SP_VERSION "0.1.0"

/* The real type. float32 by default; the gradient tests build the library a second time with
 * SP_USE_DOUBLE so central finite differences can be checked to ~1e-6 relative. */
#ifdef SP_USE_DOUBLE
typedef double sp_real;
#define SP_REAL_NAME "double"
#else
typedef float sp_real;
#define SP_REAL_NAME "float"
#endif

#if defined(__GNUC__)
#define SP_WARN_UNUSED __attribute__((warn_unused_result))
#define SP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SP_WARN_UNUSED
#define SP_PRINTF(a, b)
#endif

/* ------------------------------------------------------------------ errors */

typedef enum {
    SP_OK = 0,
    SP_ERR_SHAPE,     /* operand shapes do not fit the op */
    SP_ERR_ARG,       /* a bad argument: NULL, out of range, wrong kind of node */
    SP_ERR_NOMEM,     /* an allocation failed */
    SP_ERR_IO,        /* a file could not be read or written (message has strerror) */
    SP_ERR_FORMAT,    /* a file is corrupt, truncated or of another configuration */
    SP_ERR_NONFINITE, /* NaN or Inf where a finite number is required */
    SP_ERR_STATE      /* the object is in an error state from an earlier call */
} sp_status;

const char *sp_status_str(sp_status s);

/* The last error of a call without a tape, in this thread. Empty string if none. */
const char *sp_last_error(void);
sp_status sp_last_status(void);
void sp_clear_error(void);
/* Set the thread-local error (used by spool's own modules; returns s for `return sp_fail(...)`). */
sp_status sp_fail(sp_status s, const char *fmt, ...) SP_PRINTF(2, 3);

/* ----------------------------------------------------------------- runtime */

/* Threads for OpenMP elementwise kernels and BLIS together (never nested, so no
 * oversubscription). n <= 0 means the default: OMP_NUM_THREADS if set, else all cores. */
void sp_set_threads(int n);
int sp_get_threads(void);
/* One line: spool version, real type, BLIS version, BLIS kernel set, thread count. Static
 * storage, valid until the next call. Calling it initialises BLIS. */
const char *sp_info(void);
/* The BLIS kernel set spool asked for before BLIS initialised ("skx"), or "auto" if it left the
 * choice to BLIS (CPU without AVX-512, or BLIS_ARCH_TYPE set by the user). */
const char *sp_blis_arch_request(void);

/* --------------------------------------------------------------------- rng */

/* A small seeded generator (splitmix64-seeded xoshiro128+ style); its state is plain data so
 * checkpoints can store it. */
typedef struct {
    uint64_t s[2];
} sp_rng;

void sp_rng_seed(sp_rng *r, uint64_t seed);
uint32_t sp_rng_u32(sp_rng *r);
double sp_rng_uniform(sp_rng *r);           /* [0, 1) */
double sp_rng_normal(sp_rng *r);            /* N(0, 1) */
int sp_rng_below(sp_rng *r, int n);         /* uniform integer in [0, n) */

/* ------------------------------------------------------------------ tensor */

enum {
    SP_NEEDS_GRAD = 1, /* gradients flow into this node */
    SP_PARAM = 2,      /* lives in an sp_params slab, outlives the tape */
    SP_VIEW = 4,       /* data (and grad) alias another node's memory */
    SP_PARAM_1D = 8    /* a [1, n] parameter that checkpoints store 1-D as [n] (PyTorch's biases) */
};

typedef struct sp_tensor {
    sp_real *data;           /* rows x cols, row i starts at data + i*stride */
    sp_real *grad;           /* same layout; NULL until backward (activations) or if no grad */
    int rows, cols, stride;  /* stride >= cols, in elements */
    int flags;               /* SP_NEEDS_GRAD | SP_PARAM | SP_VIEW | SP_PARAM_1D */
    int id;                  /* index of the tape record that made it; -1 for parameters */
    const char *name;        /* "lstm0/t3/forget"; never NULL (may be "") */
    struct sp_tensor *base;  /* for a view: the node whose memory it aliases */
    size_t offset;           /* for a view: element offset of data[0] inside base->data; for a
                                parameter: its element offset in the set's value and grad slabs */
} sp_tensor;

static inline sp_real *sp_at(const sp_tensor *x, int i, int j) { return x->data + (size_t)i * x->stride + j; }
static inline size_t sp_numel(const sp_tensor *x) { return (size_t)x->rows * (size_t)x->cols; }

/* -------------------------------------------------------------- parameters */

/* A model's parameters. Values and gradients each live in one slab, so zeroing the gradients is
 * one memset, an optimizer step one flat loop and a checkpoint a list of named views. Tensors
 * returned by sp_param stay valid for the life of the set; their data pointers move while
 * parameters are still being added (slabs grow), so do not keep raw data pointers across an add. */
typedef struct sp_params {
    sp_real *value;      /* slab of all values, count_elems long */
    sp_real *grad;       /* slab of all gradients, same layout */
    size_t numel, cap;   /* elements in use / allocated */
    sp_tensor **list;    /* parameters in order of creation */
    int count, list_cap;
} sp_params;

sp_params *sp_params_new(void);
void sp_params_free(sp_params *ps);
/* Adds a rows x cols parameter initialised to zero. NULL on error (sp_last_error): bad shape, a
 * duplicate name, out of memory. The name is copied. */
sp_tensor *sp_param(sp_params *ps, const char *name, int rows, int cols);
/* A bias: a [1, n] parameter (a row, as ops broadcast it) that checkpoints store 1-D as [n], the
 * way PyTorch stores biases (flag SP_PARAM_1D). Otherwise as sp_param. */
sp_tensor *sp_param_vec(sp_params *ps, const char *name, int n);
sp_tensor *sp_params_find(const sp_params *ps, const char *name);
void sp_params_zero_grad(sp_params *ps);

/* -------------------------------------------------------------------- tape */

typedef struct sp_tape sp_tape;

sp_tape *sp_tape_new(void);
void sp_tape_free(sp_tape *t);
/* Forget every record and rewind the arena. Tensors made on the tape become invalid; the memory
 * is kept, so a training loop allocates only during its first step. Clears a sticky error. */
void sp_tape_reset(sp_tape *t);

sp_status sp_tape_status(const sp_tape *t);
const char *sp_tape_errmsg(const sp_tape *t);       /* "" if no error */
/* Put the tape into the error state (used by layers to report their own argument errors). */
void sp_tape_fail(sp_tape *t, sp_status s, const char *fmt, ...) SP_PRINTF(3, 4);

/* Name scope: nodes created while a scope is set are named "<scope>/<op>", e.g. "lstm0/t3/tanh".
 * Scopes separated by '/' become nested clusters in the dot export. NULL or "" clears it. */
void sp_tape_scope(sp_tape *t, const char *fmt, ...) SP_PRINTF(2, 3);
const char *sp_tape_get_scope(const sp_tape *t);
/* Rename a node ("<scope>/<name>" if a scope is set). Returns x (NULL passes through). */
sp_tensor *sp_name(sp_tape *t, sp_tensor *x, const char *fmt, ...) SP_PRINTF(3, 4);

/* A constant on the tape (inputs, targets, masks, carried state): rows x cols, zero-filled,
 * no gradient. Fill ->data after the call. */
sp_tensor *sp_const(sp_tape *t, int rows, int cols);
/* A leaf on the tape that receives a gradient (e.g. to read dL/dx of an input). */
sp_tensor *sp_leaf(sp_tape *t, int rows, int cols);
/* Scratch memory from the tape's arena, valid until reset (64-byte aligned, zeroed). */
void *sp_tape_alloc(sp_tape *t, size_t bytes);

/* Walk the record in reverse from loss (a 1 x 1 node), accumulating d loss / d x into ->grad of
 * every node and parameter that needs it. Parameters accumulate across calls until
 * sp_params_zero_grad. Returns the tape's status. Activation gradients stay readable until reset.
 * Parameters must not change between the forward ops that use them and this call (the backward
 * reads them, and products keep a packed copy of a weight until reset or backward). */
sp_status sp_backward(sp_tape *t, sp_tensor *loss) SP_WARN_UNUSED;

/* Introspection for tests, dot export and tools. */
int sp_tape_count(const sp_tape *t);            /* records */
size_t sp_tape_bytes(const sp_tape *t);         /* arena bytes in use */
size_t sp_tape_capacity(const sp_tape *t);      /* arena bytes reserved */
int sp_tape_mallocs(const sp_tape *t);          /* heap allocations made by the tape so far */

/* Graphviz dot of the record: op nodes labelled name / op / shape, parameters as yellow boxes,
 * constants grey, activations white; with clusters != 0, nodes are grouped into nested clusters
 * by the '/'-separated prefix of their names (layer, then time step). Deterministic ids. */
sp_status sp_tape_dot(const sp_tape *t, FILE *out, int clusters);
/* Same, written atomically (temp file + rename) to path. */
sp_status sp_tape_dot_file(const sp_tape *t, const char *path, int clusters);

#ifdef __cplusplus
}
#endif
#endif
