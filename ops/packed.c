/* SPDX-License-Identifier: MIT */
/* packed.c - products with a weight packed once into panels for an AVX-512 micro-kernel.
 *
 * A recurrent layer multiplies a small [B, H] state by the same weight at every time step, forward
 * (h W^T) and backward (dG W). BLIS re-packs the whole weight into its panel format on each of those
 * 2T calls, which at B = 32 costs more than the arithmetic ([32 x 256] x [256 x 1024]: ~98 GFLOP/s
 * through BLIS, ~250 from weights packed once, measured on this project's machine). Two users:
 *  - the whole-sequence ops (ops/seq.c) pack W_hh once per pass with sp__pack_panels and run
 *    sp__panels_gemm on each thread's rows;
 *  - a plain matmul whose B operand is a parameter and whose A has few rows (a custom cell's
 *    step) asks sp__packed_gemm first: the weight is packed on first use after each reset into
 *    the matmul op's per-tape state (sp_matmul_state, ops/kernels.h; parameters change only
 *    between steps).
 * Panels hold 32 output columns; the micro-kernel keeps 8 rows x 32 columns of accumulators.
 * The same tile shape also serves the weight gradients (sp__gemm_tn: C += A^T B summed over the
 * T*B tokens, which BLIS runs at 113-195 GFLOP/s here, as it packs both operands of a product it
 * sees once): 8 columns of A are packed per 256 tokens and B's rows are streamed as they lie.
 * Other CPUs, the double build, and large or odd products go to BLIS. The AVX-512 functions carry
 * the suffix _avx512 (tests/test_portable.sh holds the portable library to that).
 * In bf16 mode (sp_tape_set_precision) the cache keeps op(W) in the form the bf16 product wants:
 * blocked for AMX through oneDNN where the CPU has it (amx_packed below, ops/amx.c), else the bf16
 * pair panels of ops/bf16.c.
 */
#include "kernels.h"
#include "bf16.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(SP_USE_DOUBLE)
#define SP_HAVE_PACKED 1
#include <immintrin.h>
#endif

#define MR 8  /* rows of C per micro-tile */
#define NR 32 /* output columns per packed panel: two 16-float vectors */
#define TN_KC 256   /* tokens per pass of the A^T B kernel (weight gradients) */
#define TN_MIN_K 64 /* fewer tokens than this: BLIS */
#define TN_WIDE 96  /* a C narrower than this wastes much of a 32-column strip: run it transposed */

sp_matmul_state *sp__matmul_state(sp_tape *t)
{
    void **slot = sp__op_state(t, SP_OP_MATMUL);
    if (!*slot) {
        *slot = calloc(1, sizeof(sp_matmul_state));
        t->mallocs++;
        if (!*slot) sp_tape_fail(t, SP_ERR_NOMEM, "matmul: out of memory for its packed-weight cache");
    }
    return *slot;
}

void sp__matmul_state_reset(void *state)
{
    sp_matmul_state *s = state;
    for (int i = 0; i < s->n_packed; i++) s->packed[i].valid = 0;
    s->n_deferred = 0;
}

void sp__matmul_state_free(void *state)
{
    sp_matmul_state *s = state;
    for (int i = 0; i < s->n_packed; i++) free(s->packed[i].buf), sp__amx_prod_fini(&s->packed[i].amx);
    free(s->deferred);
    free(s->bf16_scratch);
    free(s->bf16_a);
    free(s);
}

void *sp__matmul_buf(sp_tape *t, void **buf, size_t *cap, size_t bytes)
{
    if (bytes > *cap) {
        free(*buf);
        *cap = (bytes + 4095) / 4096 * 4096;
        *buf = aligned_alloc(64, *cap);
        t->mallocs++;
        if (!*buf) {
            *cap = 0;
            sp_tape_fail(t, SP_ERR_NOMEM, "matmul: out of memory for %zu bytes of packing space", bytes);
        }
    }
    return *buf;
}

#ifdef SP_HAVE_PACKED

static int cpu_ok(void)
{
    static int ok = -1;
    if (ok < 0) {
        __builtin_cpu_init();
        ok = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return ok;
}

/* Panels Bp[p][k][0..NR) = op(W)[k][p*NR ..], zero past N, for op(W) of shape [K, N]. */
void sp__pack_panels(const sp_tensor *W, int trans, int K, int N, float *Bp)
{
    int P = (N + NR - 1) / NR;
    const size_t omp_n_ = (size_t)K * N;
#pragma omp parallel for if(omp_n_ >= SP_PAR_MIN_PACK_ELEMS) num_threads(sp__threads_now()) schedule(static)
    for (int p = 0; p < P; p++) {
        float *dst = Bp + (size_t)p * K * NR;
        const int cols = N - p * NR < NR ? N - p * NR : NR;
        if (!trans) /* op(W) row k is W's row k: 32 contiguous values per row of the panel */
            for (int k = 0; k < K; k++) {
                memcpy(dst + (size_t)k * NR, W->data + (size_t)k * W->stride + p * NR, (size_t)cols * sizeof(float));
                memset(dst + (size_t)k * NR + cols, 0, (size_t)(NR - cols) * sizeof(float));
            }
        else /* column n of op(W) is W's row n: read it contiguously, write down the panel (in L1) */
            for (int j = 0; j < NR; j++) {
                const float *src = j < cols ? W->data + (size_t)(p * NR + j) * W->stride : NULL;
                for (int k = 0; k < K; k++) dst[(size_t)k * NR + j] = src ? src[k] : 0.0f;
            }
    }
}

/* C[mr x cols] (+)= A[mr x K] Bpanel[K x NR], mr <= MR, cols <= NR. */
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi2"))) static void tile_avx512(int mr, int K, const float *A, int lda, const float *bp,
                                                     float *C, int ldc, int cols, int accumulate)
{
    __m512 c0[MR], c1[MR];
    for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
    if (mr == MR) {
        for (int k = 0; k < K; k++) {
            __m512 b0 = _mm512_load_ps(bp + (size_t)k * NR), b1 = _mm512_load_ps(bp + (size_t)k * NR + 16);
            for (int r = 0; r < MR; r++) {
                __m512 a = _mm512_set1_ps(A[(size_t)r * lda + k]);
                c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
                c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
            }
        }
    } else {
        for (int k = 0; k < K; k++) {
            __m512 b0 = _mm512_load_ps(bp + (size_t)k * NR), b1 = _mm512_load_ps(bp + (size_t)k * NR + 16);
            for (int r = 0; r < mr; r++) {
                __m512 a = _mm512_set1_ps(A[(size_t)r * lda + k]);
                c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
                c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
            }
        }
    }
    __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    __mmask16 m1 = cols >= NR ? 0xFFFF : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1) : 0;
    for (int r = 0; r < mr; r++) {
        float *c = C + (size_t)r * ldc;
        if (accumulate) {
            c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, c));
            c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, c + 16));
        }
        _mm512_mask_storeu_ps(c, m0, c0[r]);
        _mm512_mask_storeu_ps(c + 16, m1, c1[r]);
    }
}

/* The cache entry of op(W) in form `prec` (sp_packed), with room for `bytes` in its buffer. NULL:
 * no room. */
static sp_packed *entry(sp_tape *t, int prec, const sp_tensor *W, int trans, int K, int N, size_t bytes)
{
    sp_matmul_state *st = sp__matmul_state(t);
    if (!st) return NULL;
    sp_packed *e = NULL;
    for (int i = 0; i < st->n_packed && !e; i++)
        if (st->packed[i].w == W->data && st->packed[i].trans == trans && st->packed[i].K == K && st->packed[i].N == N &&
            st->packed[i].prec == prec)
            e = &st->packed[i];
    if (!e) {
        if (st->n_packed == SP_MAX_PACKED) return NULL;
        e = &st->packed[st->n_packed++];
        memset(e, 0, sizeof *e);
        e->w = W->data, e->trans = trans, e->K = K, e->N = N, e->prec = prec;
    }
    if (bytes > e->cap) {
        free(e->buf);
        e->buf = aligned_alloc(64, (bytes + 63) / 64 * 64);
        e->cap = e->buf ? bytes : 0;
        e->valid = 0;
        t->mallocs++;
        if (!e->buf) return NULL;
    }
    return e;
}

/* The packed panels of op(W) for this tape epoch, packing them on first use. NULL: no room. */
static const void *panels(sp_tape *t, int prec, const sp_tensor *W, int trans, int K, int N)
{
    size_t bytes = prec == SP_PREC_BF16 ? sp__bf16_panels_size(K, N) * sizeof(uint16_t)
                                        : (size_t)((N + NR - 1) / NR) * K * NR * sizeof(float);
    sp_packed *e = entry(t, prec, W, trans, K, N, bytes);
    if (!e) return NULL;
    if (!e->valid) {
        if (prec == SP_PREC_BF16) sp__bf16_pack_panels(W->data, W->stride, trans, K, N, e->buf);
        else sp__pack_panels(W, trans, K, N, e->buf);
        e->valid = 1;
    }
    return e->buf;
}

size_t sp__panels_floats(int K, int N)
{
    return cpu_ok() && K >= 16 && N >= 16 ? (size_t)((N + NR - 1) / NR) * K * NR : 0;
}

void sp__panels_gemm(int M, int N, int K, const float *A, int lda, const float *Bp, float *C, int ldc, int accumulate)
{
    if (M == 1) return sp__panels_gemv_avx512(N, K, A, Bp, C, accumulate); /* ops/gemv.c: same sums, faster at one row */
    int P = (N + NR - 1) / NR;
    for (int p = 0; p < P; p++) {
        int cols = N - p * NR < NR ? N - p * NR : NR;
        for (int i = 0; i < M; i += MR)
            tile_avx512(M - i < MR ? M - i : MR, K, A + (size_t)i * lda, lda, Bp + (size_t)p * K * NR, C + (size_t)i * ldc + p * NR,
                 ldc, cols, accumulate);
    }
}

/* X[mr x cols] += A^T B over kc tokens: ap holds the tile's A values packed, ap[k * MR + r] (zero
 * past mr), row k of B its cols columns at B + k * ldb. mr <= MR, cols <= NR; a strip of at most
 * 16 columns takes one vector per row. X (r, j) is C[r * ldc + j], or C[j * ldc + r] when tc. */
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi2"))) static void tn_tile_avx512(int mr, int kc, const float *ap, const float *B,
                                                        int ldb, float *C, int ldc, int cols, int tc)
{
    __m512 c0[MR], c1[MR];
    for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
    __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    __mmask16 m1 = cols >= NR ? 0xFFFF : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1) : 0;
    if (cols == NR) {
        for (int k = 0; k < kc; k++) {
            const float *a = ap + (size_t)k * MR, *b = B + (size_t)k * ldb;
            __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
            for (int r = 0; r < MR; r++) {
                __m512 x = _mm512_set1_ps(a[r]);
                c0[r] = _mm512_fmadd_ps(x, b0, c0[r]);
                c1[r] = _mm512_fmadd_ps(x, b1, c1[r]);
            }
        }
    } else if (cols <= 16) {
        for (int k = 0; k < kc; k++) {
            const float *a = ap + (size_t)k * MR;
            __m512 b0 = _mm512_maskz_loadu_ps(m0, B + (size_t)k * ldb);
            for (int r = 0; r < MR; r++) c0[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r]), b0, c0[r]);
        }
    } else {
        for (int k = 0; k < kc; k++) {
            const float *a = ap + (size_t)k * MR, *b = B + (size_t)k * ldb;
            __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
            for (int r = 0; r < MR; r++) {
                __m512 x = _mm512_set1_ps(a[r]);
                c0[r] = _mm512_fmadd_ps(x, b0, c0[r]);
                c1[r] = _mm512_fmadd_ps(x, b1, c1[r]);
            }
        }
    }
    if (tc) { /* down C's columns: once per kc tokens, so the scalar adds cost ~1/16 of the FMAs */
        float x[NR] __attribute__((aligned(64)));
        for (int r = 0; r < mr; r++) {
            _mm512_store_ps(x, c0[r]);
            _mm512_store_ps(x + 16, c1[r]);
            for (int j = 0; j < cols; j++) C[(size_t)j * ldc + r] += x[j];
        }
        return;
    }
    for (int r = 0; r < mr; r++) {
        float *c = C + (size_t)r * ldc;
        _mm512_mask_storeu_ps(c, m0, _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, c)));
        if (m1) _mm512_mask_storeu_ps(c + 16, m1, _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, c + 16)));
    }
}

/* X[M, N] += A^T B into C (X's transpose when tc), as sp__gemm_tn describes. */
static void gemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc,
                    int threads, int tc)
{
    const int tiles = (M + MR - 1) / MR;
    if (threads > tiles) threads = tiles;
    /* Each thread owns a range of C's rows. KC tokens at a time: a row tile's KC x 8 values of A,
     * packed, stay in L1 while it passes over every 32-column strip of B, whose KC rows stay in L2
     * for all the tiles. */
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        const int nt = omp_get_num_threads(), id = omp_get_thread_num();
        const int t0 = (int)((long)tiles * id / nt), t1 = (int)((long)tiles * (id + 1) / nt);
        float ap[TN_KC * MR] __attribute__((aligned(64)));
        for (int k0 = 0; k0 < K; k0 += TN_KC)
            for (int tt = t0; tt < t1; tt++) {
                const int m0 = tt * MR, mr = M - m0 < MR ? M - m0 : MR, kc = K - k0 < TN_KC ? K - k0 : TN_KC;
                /* the tile's A values side by side: kc rows of A are kc pages apart at a large lda */
                if (mr == MR)
                    for (int k = 0; k < kc; k++) memcpy(ap + k * MR, A + (size_t)(k0 + k) * lda + m0, MR * sizeof(float));
                else
                    for (int k = 0; k < kc; k++) {
                        const float *a = A + (size_t)(k0 + k) * lda + m0;
                        for (int r = 0; r < MR; r++) ap[k * MR + r] = r < mr ? a[r] : 0.0f;
                    }
                for (int n0 = 0; n0 < N; n0 += NR)
                    tn_tile_avx512(mr, kc, ap, B + (size_t)k0 * ldb + n0, ldb,
                                   C + (tc ? (size_t)n0 * ldc + m0 : (size_t)m0 * ldc + n0), ldc,
                                   N - n0 < NR ? N - n0 : NR, tc);
            }
    }
}

int sp__gemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc, int threads)
{
    if (K < TN_MIN_K || M < MR || N < MR || (M < TN_WIDE && N < TN_WIDE) || !cpu_ok()) return 0;
    if (N < TN_WIDE) /* narrow C (N = 65: a one-hot input's dW_ih): C^T = B^T A, so that C's long
                        side fills the 32-column strips */
        gemm_tn(N, M, K, B, ldb, A, lda, C, ldc, threads, 1);
    else
        gemm_tn(M, N, K, A, lda, B, ldb, C, ldc, threads, 0);
    return 1;
}

/* The same product on AMX (ops/amx.c) with op(W) blocked once per tape epoch: a custom cell's
 * step in bf16. 0: not done (AMX declined), the caller goes on with spool's own kernels. */
static int amx_packed(sp_tape *t, int M, int N, int K, const float *A, int lda, const sp_tensor *W, int trans, float *C,
                      int ldc, int accumulate)
{
    sp_matmul_state *st = sp__matmul_state(t);
    sp_packed *e = st ? entry(t, SP__PACKED_AMX, W, trans, K, N, 0) : NULL;
    if (!e) return 0;
    sp_amx_prod *p = &e->amx;
    if (!p->prim || p->M != M || p->ldc != ldc || p->sum != !!accumulate) { /* first use, or another shape */
        sp_amx_prod q;
        if (!sp__amx_prod_make(&q, M, K, N, ldc, !!accumulate)) return 0;
        if (!sp__amx_same_weights(p, &q)) e->valid = 0; /* the blocked W still fits the new product? */
        q.w = p->w;
        sp__amx_prod_fini(p);
        *p = q;
    }
    if (p->w_bytes > e->cap && !entry(t, SP__PACKED_AMX, W, trans, K, N, p->w_bytes)) return 0;
    if (!e->valid && !(e->valid = sp__amx_prod_weights(p, W->data, W->stride, trans, e->buf))) return 0;
    uint16_t *abf = sp__matmul_buf(t, &st->bf16_a, &st->bf16_a_cap, (size_t)M * ((K + 1) & ~1) * sizeof(uint16_t));
    void *pad = abf ? sp__matmul_buf(t, &st->bf16_scratch, &st->bf16_scratch_cap, p->pad_bytes + 64) : NULL;
    sp_amx_ctx c;
    int ok = pad && sp__amx_ctx_open(&c, p, pad);
    if (ok) {
        ok = sp__amx_run(&c, p, M, A, lda, abf, C);
        sp__amx_ctx_close(&c);
    }
    return ok;
}

int sp__packed_gemm(sp_tape *t, int prec, int M, int N, int K, const sp_real *A, int lda, const sp_tensor *W,
                    int trans, sp_real *C, int ldc, int accumulate)
{
    if (M > SP_PACKED_MAX_ROWS || K < 16 || N < 16 || !(W->flags & SP_PARAM) || !cpu_ok()) return 0;
    /* a batch's rows in bf16 go to AMX where there is one (one row stays on the row kernel: a
     * oneDNN call costs more than the product) */
    if (prec == SP_PREC_BF16 && M > 1 && sp__amx_ok() && amx_packed(t, M, N, K, A, lda, W, trans, C, ldc, accumulate))
        return 1;
    const void *Bp = panels(t, prec, W, trans, K, N);
    if (!Bp) return 0;
    const int P = (N + NR - 1) / NR;
    const double flops = 2.0 * M * N * K;
    if (prec == SP_PREC_BF16) { /* A rounded once, then the panels split between threads */
        sp_matmul_state *st = sp__matmul_state(t);
        uint32_t *ab = sp__matmul_buf(t, &st->bf16_a, &st->bf16_a_cap, sp__bf16_abuf_size(M, K) * sizeof(uint32_t));
        if (!ab) return 1; /* the tape has the error */
        if (M == 1) return sp__bf16_panels_gemm(1, N, K, A, lda, Bp, C, ldc, accumulate, ab), 1; /* the one-row kernel */
        sp__bf16_pack_a(M, K, A, lda, ab);
#pragma omp parallel for if(flops >= SP_PAR_MIN_GEMM_FLOPS) num_threads(sp__threads_now()) schedule(static)
        for (int p = 0; p < P; p++) sp__bf16_panel(M, K, ab, Bp, p, N, C, ldc, accumulate);
        return 1;
    }
    if (M == 1) return sp__panels_gemv_avx512(N, K, A, Bp, C, accumulate), 1; /* ops/gemv.c: same sums, faster at one row */
#pragma omp parallel for if(flops >= SP_PAR_MIN_GEMM_FLOPS) num_threads(sp__threads_now()) schedule(static)
    for (int p = 0; p < P; p++) {
        int cols = N - p * NR < NR ? N - p * NR : NR;
        for (int i = 0; i < M; i += MR)
            tile_avx512(M - i < MR ? M - i : MR, K, A + (size_t)i * lda, lda, (const float *)Bp + (size_t)p * K * NR,
                        C + (size_t)i * ldc + p * NR, ldc, cols, accumulate);
    }
    return 1;
}

#else

size_t sp__panels_floats(int K, int N)
{
    (void)K, (void)N;
    return 0;
}

void sp__pack_panels(const sp_tensor *W, int trans, int K, int N, float *Bp)
{
    (void)W, (void)trans, (void)K, (void)N, (void)Bp;
}

void sp__panels_gemm(int M, int N, int K, const float *A, int lda, const float *Bp, float *C, int ldc, int accumulate)
{
    (void)M, (void)N, (void)K, (void)A, (void)lda, (void)Bp, (void)C, (void)ldc, (void)accumulate;
}

int sp__gemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc, int threads)
{
    (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B, (void)ldb, (void)C, (void)ldc, (void)threads;
    return 0;
}

int sp__packed_gemm(sp_tape *t, int prec, int M, int N, int K, const sp_real *A, int lda, const sp_tensor *W,
                    int trans, sp_real *C, int ldc, int accumulate)
{
    (void)t, (void)prec, (void)M, (void)N, (void)K, (void)A, (void)lda, (void)W, (void)trans, (void)C, (void)ldc, (void)accumulate;
    return 0;
}

#endif
