/* SPDX-License-Identifier: MIT */
/* matmul.c - the one op that does the heavy arithmetic: C = op(A) op(B) through BLIS GEMM.
 * Every other op is bandwidth-bound; this is where the FLOPs are.
 *
 * A recurrent weight is used by one small matmul per time step ([B, H] x [H, G]), and summing its
 * gradient step by step would be T small GEMMs with K = B, which BLIS runs far below its peak.
 * So the backward of a matmul whose B operand is a parameter only computes dA at once, and defers
 * dB to sp__matmul_finish, which stacks the rows of every step's A and dC and issues one
 * [G, T*B] x [T*B, H] GEMM per parameter. Same sum, one large GEMM; no layer knows about it.
 * Every product here runs in the precision its record was made with (iattr[3], from the tape:
 * sp__gemm_p sends bf16 products to AMX through oneDNN or to ops/bf16.c's kernels). */
#include "kernels.h"
#include "amx.h"
#include "bf16.h"

#include <blis.h>
#include <string.h>

/* Below SP_PAR_MIN_GEMM_FLOPS (parallel.h) a GEMM runs on one thread: waking BLIS's threads for
 * a [3 x 4] product costs more than the product (and under load it can cost milliseconds). */

#ifdef SP_USE_DOUBLE
#define GEMM_EX bli_dgemm_ex
#else
#define GEMM_EX bli_sgemm_ex
#endif

void sp__gemm_threads(int ta, int tb, int M, int N, int K, const sp_real *A, int lda, const sp_real *B, int ldb,
                      sp_real beta, sp_real *C, int ldc, int threads)
{
#ifndef SP_USE_DOUBLE
    /* weight gradients (op(A) = A^T, summed over tokens): spool's own AVX-512 kernel where it
     * beats BLIS (ops/packed.c; ~10 % on this project's machine) */
    if (ta && !tb && beta == 1 && sp__gemm_tn(M, N, K, A, lda, B, ldb, C, ldc, threads)) return;
#endif
    sp_real one = 1;
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(threads, &rntm);
    GEMM_EX(ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, M, N, K, &one,
            (sp_real *)A, lda, 1, (sp_real *)B, ldb, 1, &beta, C, ldc, 1, NULL, &rntm);
}

/* C[M,N] = op(A) op(B) + beta C, row-major, through BLIS's typed API (its per-call runtime object
 * sets the thread count per product). */
void sp__gemm(int ta, int tb, int M, int N, int K, const sp_real *A, int lda, const sp_real *B, int ldb, sp_real beta,
              sp_real *C, int ldc)
{
    sp__gemm_threads(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc,
                     2.0 * M * N * K < SP_PAR_MIN_GEMM_FLOPS ? 1 : sp__threads_now());
}

/* sp__gemm_p, with bias (a row [N], beta 0) added in the product's epilogue where the product
 * runs on AMX; with a bias anywhere else it returns 0 and does nothing (the caller copies the bias
 * into C first). 1 when done. */
static int gemm_p(sp_tape *t, int prec, int ta, int tb, int M, int N, int K, const sp_real *A, int lda, const sp_real *B,
                  int ldb, const sp_real *bias, sp_real beta, sp_real *C, int ldc)
{
#ifndef SP_USE_DOUBLE
    if (prec == SP_PREC_BF16) {
        const int threads = 2.0 * M * N * K < SP_PAR_MIN_GEMM_FLOPS ? 1 : sp__threads_now();
        sp_matmul_state *s = sp__matmul_state(t);
        const size_t amx_need = sp__amx_gemm_scratch(ta, tb, M, N, K, ldc, beta, threads);
        const int amx = amx_need > 0;
        if (bias && !amx) return 0;
        const size_t need = amx ? amx_need : sp__gemm_bf16_scratch(M, N, K, threads);
        void *scratch = s ? sp__matmul_buf(t, &s->bf16_scratch, &s->bf16_scratch_cap, need) : NULL;
        if (!scratch) return 1; /* the tape has the error */
        int la2 = 0, lb2 = 0; /* the operands' shadows, when an op left them rounded */
        const uint16_t *abf = amx ? sp__shadow_get(t, A, ta ? K : M, ta ? M : K, lda, &la2) : NULL;
        const uint16_t *bbf = amx ? sp__shadow_get(t, B, tb ? N : K, tb ? K : N, ldb, &lb2) : NULL;
        if (amx && sp__amx_gemm(ta, tb, M, N, K, A, lda, abf, la2, B, ldb, bbf, lb2, bias, beta, C, ldc, threads,
                                scratch, s->bf16_scratch_cap))
            return 1;
        if (bias) return 0;
        if (amx) /* declined (a shape oneDNN refuses): spool's own kernels, with their own scratch */
            scratch = sp__matmul_buf(t, &s->bf16_scratch, &s->bf16_scratch_cap, sp__gemm_bf16_scratch(M, N, K, threads));
        if (scratch) sp__gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc, threads, scratch);
        return 1;
    }
#endif
    if (bias) return 0;
    (void)t, (void)prec;
    sp__gemm(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
    return 1;
}

void sp__gemm_p(sp_tape *t, int prec, int ta, int tb, int M, int N, int K, const sp_real *A, int lda, const sp_real *B,
                int ldb, sp_real beta, sp_real *C, int ldc)
{
    gemm_p(t, prec, ta, tb, M, N, K, A, lda, B, ldb, NULL, beta, C, ldc);
}

sp_tensor *sp_matmul_bias(sp_tape *t, sp_tensor *a, int trans_a, sp_tensor *b, int trans_b, sp_tensor *bias)
{
    sp_tensor *in[3] = {a, b, bias};
    if (!sp__ready(t, SP_OP_MATMUL, in, 2)) return NULL;
    int M = trans_a ? a->cols : a->rows, K = trans_a ? a->rows : a->cols;
    int Kb = trans_b ? b->cols : b->rows, N = trans_b ? b->rows : b->cols;
    if (K != Kb) {
        sp__shape_error(t, SP_OP_MATMUL, trans_a || trans_b ? "inner dims differ (after transposes)"
                                                            : "inner dims differ", a, b);
        return NULL;
    }
    if (bias && ((bias->rows != 1 && bias->rows != M) || bias->cols != N)) {
        sp__shape_error(t, SP_OP_MATMUL, "the addend must be [1 x N] or [M x N] for the product's M x N", bias, b);
        return NULL;
    }
    sp_record *r = sp__record(t, SP_OP_MATMUL, M, N, in, bias ? 3 : 2);
    if (!r) return NULL;
    r->iattr[0] = !!trans_a;
    r->iattr[1] = !!trans_b;
    r->iattr[2] = K;
    const int prec = r->iattr[3] = t->precision; /* backward runs in the precision of the forward */
    sp_real *C = r->out->data;
    /* a bias row goes into the product's epilogue where the product can take it (AMX) */
    if (bias && bias->rows == 1 && M > SP_PACKED_MAX_ROWS &&
        gemm_p(t, prec, trans_a, trans_b, M, N, K, a->data, a->stride, b->data, b->stride, bias->data, 0, C, N))
        return r->out;
    if (bias) { /* C = the addend, then C += op(A) op(B): one pass, no separate add node */
        const size_t n_ = (size_t)M * N;
#pragma omp parallel for if (n_ >= SP_PAR_MIN_ELEMS) num_threads(sp__threads_now()) schedule(static)
        for (int i = 0; i < M; i++) memcpy(C + (size_t)i * N, sp_at(bias, bias->rows == 1 ? 0 : i, 0), (size_t)N * sizeof(sp_real));
    }
    if (trans_a || !sp__packed_gemm(t, prec, M, N, K, a->data, a->stride, b, trans_b, C, N, bias != NULL))
        sp__gemm_p(t, prec, trans_a, trans_b, M, N, K, a->data, a->stride, b->data, b->stride, bias ? 1 : 0, C, N);
    return r->out;
}

sp_tensor *sp_matmul_ex(sp_tape *t, sp_tensor *a, int trans_a, sp_tensor *b, int trans_b)
{
    return sp_matmul_bias(t, a, trans_a, b, trans_b, NULL);
}

sp_tensor *sp_matmul(sp_tape *t, sp_tensor *a, sp_tensor *b) { return sp_matmul_ex(t, a, 0, b, 0); }

/* Push a record whose weight gradient waits for sp__matmul_finish (on failure, do it now). */
static void sp__matmul_now(sp_record *r);
static void defer(sp_record *r)
{
    sp_matmul_state *s = sp__matmul_state(r->tape);
    if (s && s->n_deferred == s->cap_deferred) {
        int cap = s->cap_deferred ? 2 * s->cap_deferred : 256;
        sp_record **d = realloc(s->deferred, (size_t)cap * sizeof *d);
        r->tape->mallocs++;
        if (d) s->deferred = d, s->cap_deferred = cap;
    }
    if (s && s->n_deferred < s->cap_deferred) s->deferred[s->n_deferred++] = r;
    else sp__matmul_now(r);
}

/* forward: C[M,N] = op(A)[M,K] op(B)[K,N] (+ bias, [1,N] in every row or [M,N])
 *   d op(A) = dC op(B)^T      d op(B) = op(A)^T dC      dbias = dC (summed over rows for [1,N])
 * and a transposed operand receives the transpose of that. beta = 1: gradients accumulate. */
void sp__matmul_backward(sp_record *r)
{
    sp_tensor *a = r->in[0], *b = r->in[1], *c = r->out;
    int ta = r->iattr[0], tb = r->iattr[1], K = r->iattr[2], prec = r->iattr[3], M = c->rows, N = c->cols;
    sp_tape *t = r->tape;
    if (a->grad) {
        if (!ta) { /* dA[M,K] += dC[M,N] op(B)^T */
            if (!sp__packed_gemm(t, prec, M, K, N, c->grad, c->stride, b, !tb, a->grad, a->stride, 1))
                sp__gemm_p(t, prec, 0, !tb, M, K, N, c->grad, c->stride, b->data, b->stride, 1, a->grad, a->stride);
        }
        else /* dA[K,M] += op(B)[K,N] dC^T */
            sp__gemm_p(t, prec, tb, 1, K, M, N, b->data, b->stride, c->grad, c->stride, 1, a->grad, a->stride);
    }
    if (b->grad && (b->flags & SP_PARAM) && !ta) {
        defer(r); /* dB joins the other steps' in sp__matmul_finish */
    } else if (b->grad) {
        if (!tb) /* dB[K,N] += op(A)^T dC */
            sp__gemm_p(t, prec, !ta, 0, K, N, M, a->data, a->stride, c->grad, c->stride, 1, b->grad, b->stride);
        else /* dB[N,K] += dC^T op(A) */
            sp__gemm_p(t, prec, 1, ta, N, K, M, c->grad, c->stride, a->data, a->stride, 1, b->grad, b->stride);
    }
    sp_tensor *bias = r->n_in > 2 ? r->in[2] : NULL;
    const sp_real *sums = bias && bias->grad && bias->rows == 1 ? sp__shadow_sums(t, c->grad, M, N, c->stride) : NULL;
    if (sums) { /* the op that wrote dC summed its columns already (autograd/tape_internal.h) */
        for (int j = 0; j < N; j++) bias->grad[j] += sums[j];
    } else if (bias && bias->grad) { /* dbias += dC, summed over rows for a [1 x N] row; threads take
                                * column ranges (each sums its columns in row order: any count, the same bits) */
        const size_t n_ = (size_t)M * N;
        const int nt = n_ >= SP_PAR_MIN_ELEMS && N >= 64 ? sp__threads_now() : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
        {
            const int k = omp_get_thread_num(), n = omp_get_num_threads();
            const int j0 = k ? N * k / n / 16 * 16 : 0, j1 = k + 1 < n ? N * (k + 1) / n / 16 * 16 : N;
            for (int i = 0; i < M; i++) {
                const sp_real *restrict g = c->grad + (size_t)i * c->stride;
                sp_real *restrict d = bias->grad + (bias->rows == 1 ? 0 : (size_t)i * bias->stride);
                for (int j = j0; j < j1; j++) d[j] += g[j];
            }
        }
    }
}

static int same_group(const sp_record *r, const sp_tensor *b, int tb, int prec)
{
    return r && r->op == SP_OP_MATMUL && r->in[1] == b && r->iattr[1] == tb && r->iattr[3] == prec;
}

/* Rows stacked per GEMM: K = 512 already runs BLIS near its peak, and a cap keeps the stacking
 * buffers small (they would otherwise double the memory of a long sequence's activations). */
#define SP_STACK_ROWS 512

/* dB += A^T C (or C^T A for a B used transposed) for stacked rows A [M, K], C [M, N]. */
static void stacked_gemm(sp_tape *t, int prec, int tb, int M, int N, int K, const sp_real *A, int lda, const sp_real *C,
                         int ldc, sp_tensor *b)
{
    if (!tb) sp__gemm_p(t, prec, 1, 0, K, N, M, A, lda, C, ldc, 1, b->grad, b->stride);
    else sp__gemm_p(t, prec, 1, 0, N, K, M, C, ldc, A, lda, 1, b->grad, b->stride);
}

/* Deferred records that share the parameter and its transpose flag: stack the rows of every
 * step's A and dC (up to SP_STACK_ROWS at a time) and add their product into dB. */
/* The deferred weight gradient of one record on its own. */
static void sp__matmul_now(sp_record *r)
{
    sp_tensor *a = r->in[0], *b = r->in[1], *c = r->out;
    stacked_gemm(r->tape, r->iattr[3], r->iattr[1], c->rows, c->cols, r->iattr[2], a->data, a->stride, c->grad,
                 c->stride, b);
}

void sp__matmul_finish(sp_tape *t)
{
    sp_matmul_state *s = *sp__op_state(t, SP_OP_MATMUL);
    if (!s) return;
    sp_record **d = s->deferred;
    int n = s->n_deferred;
    for (int i = 0; i < n; i++) {
        if (!d[i] || d[i]->op != SP_OP_MATMUL) continue;
        sp_tensor *b = d[i]->in[1];
        int tb = d[i]->iattr[1], K = d[i]->iattr[2], prec = d[i]->iattr[3], N = d[i]->out->cols, M = 0;
        for (int j = i; j < n; j++)
            if (same_group(d[j], b, tb, prec)) M += d[j]->out->rows;
        int cap = M < SP_STACK_ROWS ? M : SP_STACK_ROWS;
        sp_real *A = M > d[i]->out->rows ? sp__scratch(t, (size_t)cap * (K + N) * sizeof(sp_real)) : NULL;
        sp_real *C = A ? A + (size_t)cap * K : NULL;
        int rows = 0;
        for (int j = i; j < n; j++) {
            if (!same_group(d[j], b, tb, prec)) continue;
            sp_record *rj = d[j];
            sp_tensor *a = rj->in[0], *c = rj->out;
            d[j] = NULL;
            if (!A || c->rows > cap) { /* nothing to stack with (or no memory): this product alone */
                sp__matmul_now(rj);
                continue;
            }
            if (rows + c->rows > cap) {
                stacked_gemm(t, prec, tb, rows, N, K, A, K, C, N, b);
                rows = 0;
            }
            for (int r = 0; r < c->rows; r++, rows++) {
                memcpy(A + (size_t)rows * K, sp_at(a, r, 0), (size_t)K * sizeof(sp_real));
                memcpy(C + (size_t)rows * N, c->grad + (size_t)r * c->stride, (size_t)N * sizeof(sp_real));
            }
        }
        if (rows) stacked_gemm(t, prec, tb, rows, N, K, A, K, C, N, b);
    }
}
