/* SPDX-License-Identifier: MIT */
/* tape_internal.h - what ops/ and autograd/ share but users do not see: the tape and its
 * records, the op table, and the helpers every op constructor uses. */
#ifndef SP_TAPE_INTERNAL_H
#define SP_TAPE_INTERNAL_H

#include "spool.h"
#include "parallel.h" /* the thread thresholds and sp__threads_now */
#include "noise.h"    /* counter-based dropout and zoneout masks */

#include <math.h>

/* One recorded op. Inputs live in an arena array so concat can take any number of them. */
typedef struct sp_record {
    sp_op op;
    struct sp_tape *tape;
    sp_tensor *out;
    sp_tensor **in;      /* n_in inputs */
    int n_in;
    void *saved;         /* op-specific arena memory: targets, masks, per-row values */
    int iattr[4];        /* op-specific integers (transpose flags, counts, offsets) */
    double fattr[2];     /* op-specific reals (scale factor, dropout p) */
} sp_record;

typedef void (*sp_backward_fn)(sp_record *r);
typedef void (*sp_finish_fn)(struct sp_tape *t);
typedef void (*sp_state_fn)(void *state);

/* An op may keep private state per tape (a cache of packed weights, a list of deferred work) in
 * sp__op_state(t, op); the tape knows nothing of what is in it, only when to call the hooks. */
typedef struct {
    const char *name;          /* used in error messages and dot labels */
    sp_backward_fn backward;   /* accumulates into in[k]->grad where that is not NULL */
    sp_finish_fn finish;       /* optional: runs once after the walk, for work backward deferred */
    sp_state_fn reset;         /* optional: the op's state at sp_tape_reset and after backward */
    sp_state_fn free_state;    /* optional: frees the op's state with the tape */
    const char *no_backward;   /* why backward is NULL ("constant", "leaf", "view"); NULL for every
                                  op that has one (tests/test_tables.c checks each row is one or
                                  the other) */
    unsigned no_read;          /* what backward never reads: SP_NO_READ_IN(k) the data of in[k],
                                  SP_NO_READ_OUT that of out. 0 (reads everything) is always safe;
                                  a set bit lets an SP_TRANSIENT node hold its gradient in place of
                                  its data (sp_backward) */
} sp_op_def;

#define SP_NO_READ_IN(k) (1u << (k))
#define SP_NO_READ_OUT (1u << 15)

/* May the op just recorded (the tape's last record) keep its saved values in the memory of its
 * input x? Yes (returns 1 and flags x SP__KEPT) when x is SP_TRANSIENT, not a view or a
 * parameter, its producer's backward does not read it and no op recorded since x reads it. The
 * op then writes its saved values over x in the forward pass, and its backward writes x's whole
 * gradient there: sp_backward gives a kept node its data as gradient, unzeroed. An op recorded
 * later that takes x fails (its values are gone). ops/seq.c keeps the gates of its recurrences
 * in the input projection this way. */
int sp__keep(sp_tape *t, sp_tensor *x);
#define SP__KEPT (1 << 29) /* a tensor flag, internal to autograd/ and the keeping op */

extern const sp_op_def sp_op_table[SP_OP__COUNT];

/* The epsilon of sp_layer_norm (ops/norm.c), torch.nn.LayerNorm's default; the ONNX export
 * (onnx/export.c) writes the same into LayerNormalization. */
#define SP_LN_EPS 1e-5

/* What an op leaves beside a matrix it wrote, for later readers of the same values ("shadows"):
 *  - a bf16 copy: an op that rounds a matrix's rows anyway (ops/seq.c rounds every h and
 *    gate-gradient row it multiplies, while the row is in cache) keeps the rounding in the arena,
 *    and sp__gemm_p reads it instead of rounding the same values again in a pass over memory of
 *    its own (bf16 mode on AMX). The same rounding (nearest even), so a product reads the same
 *    bits either way; oneDNN may pick another blocking for another operand stride, which can
 *    change the summation order of a product, not its operands.
 *  - column sums: an op that writes the rows of a gradient one by one sums them as it goes
 *    (ops/seq.c, xp's gradient), and the bias gradient of the matmul that made xp adds those sums
 *    instead of reading the whole gradient again. Summed in an order fixed by the data (never by
 *    the thread count), so any number of threads gives the same bits.
 * Whoever registers promises that the values stay as they are until the tape's next reset (reset
 * and rewind forget every shadow; sp__keep forgets those of a tensor it lets be overwritten). */
#define SP__SHADOWS 16
typedef struct {
    const sp_real *p;    /* the matrix: rows x cols at stride ld */
    const uint16_t *bf;  /* its rounding to bf16: rows x cols at stride ld2 (even), or NULL */
    const sp_real *sums; /* its column sums [cols], or NULL */
    int rows, cols, ld, ld2;
} sp__shadow;

typedef struct sp_chunk {
    struct sp_chunk *next;
    size_t size, used;
    unsigned char *mem;
} sp_chunk;

struct sp_tape {
    sp_chunk *chunks;         /* first chunk; allocation walks forward from cur */
    sp_chunk *cur;
    size_t high_water;        /* most bytes ever in use, to size one chunk on reset */
    sp_record *rec;
    int n_rec, cap_rec;
    int mallocs;
    int backward_done;        /* sp_backward ran since the last reset */
    int precision;            /* sp_precision of the products recorded from now on (ops read it) */
    void *op_state[SP_OP__COUNT]; /* each op's private state (sp__op_state), or NULL */
    void *scratch;            /* sp__scratch's buffer, reused by every backward kernel */
    size_t scratch_size;
    sp__shadow shadow[SP__SHADOWS]; /* bf16 copies of matrices (sp__shadow_put), until reset */
    int n_shadow;
    sp_status status;
    char msg[512];
    char scope[256];
};

/* Sets BLIS's kernel set and the thread counts, once, before BLIS initialises (runtime.c).
 * Not SP_OK (with the message set) if the host's environment is refused: a BLIS_ARCH_TYPE this
 * CPU cannot run, or a SPOOL_CPU that names no kernel set. */
sp_status sp_runtime_init(void);
/* Arena allocation (zeroed, 64-byte aligned). NULL and a sticky error if out of memory. */
void *sp__alloc(sp_tape *t, size_t bytes);
/* memset(p, 0, bytes), on the team when large (sp__alloc and the gradient buffers use it). */
void sp__zero(void *p, size_t bytes);
void *sp__alloc_raw(sp_tape *t, size_t bytes); /* the same, not zeroed */
/* Temporary memory for one backward kernel, valid until the next sp__scratch call (it is reused,
 * so the T steps of a sequence do not each keep their scratch in the arena). Not zeroed. */
void *sp__scratch(sp_tape *t, size_t bytes);
/* The slot for op's private state on tape t (NULL until the op stores something there; the op's
 * table row says how to reset and free it). */
void **sp__op_state(sp_tape *t, sp_op op);
/* sp_tape_reset, optionally keeping every op's state (sp_tape_rewind: parameters did not change). */
void sp__tape_reset_ex(sp_tape *t, int keep_op_state);
/* Register a shadow (above): a bf16 copy bf at stride ld2, and/or column sums (either may be
 * NULL); a full table drops the registration (the readers then do the work themselves). */
void sp__shadow_put(sp_tape *t, const sp_real *p, int rows, int cols, int ld, const uint16_t *bf, int ld2,
                    const sp_real *sums);
/* The bf16 rounding of rows x cols at p (stride ld) inside a registered copy, with its stride in
 * *ld2; NULL when none holds it. */
const uint16_t *sp__shadow_get(sp_tape *t, const sp_real *p, int rows, int cols, int ld, int *ld2);
/* The column sums of exactly the matrix rows x cols at p (stride ld), or NULL. */
const sp_real *sp__shadow_sums(sp_tape *t, const sp_real *p, int rows, int cols, int ld);
/* True if the op may proceed: tape ok and all inputs non-NULL (else sets an error naming op). */
int sp__ready(sp_tape *t, sp_op op, sp_tensor *const *in, int n);
/* Record an op whose output is a new rows x cols arena tensor (NOT zeroed: the op writes it all). Inputs are copied into
 * the record. NULL on error. */
sp_record *sp__record(sp_tape *t, sp_op op, int rows, int cols, sp_tensor *const *in, int n);
/* Record an op whose output is a view into in[0] at element offset `offset`. */
sp_record *sp__record_view(sp_tape *t, sp_op op, sp_tensor *x, size_t offset, int rows, int cols);
/* Sticky shape error: "<op> \"out-name\": <why>: a \"name\" [r x c] vs b \"name\" [r x c]". */
void sp__shape_error(sp_tape *t, sp_op op, const char *why, const sp_tensor *a, const sp_tensor *b);
const char *sp__scope_name(sp_tape *t, const char *leaf);

/* libm in the real type, so the float build does not round-trip through double. */
#ifdef SP_USE_DOUBLE
#define SP_EXP exp
#define SP_LOG log
#define SP_TANH tanh
#define SP_LOG1P log1p
#else
#define SP_EXP expf
#define SP_LOG logf
#define SP_TANH tanhf
#define SP_LOG1P log1pf
#endif

#endif
