/* SPDX-License-Identifier: MIT */
/* amx.c - bf16 products on Intel AMX, through oneDNN (optional: meson -Ddnnl=auto|enabled|disabled).
 *
 * On Intel Sapphire Rapids and later, AVX512_BF16's vdpbf16ps runs at half the FP32 FMA rate, so
 * spool's own bf16 kernels (bf16.c) cannot beat fp32 there; the AMX tile unit runs bf16 products
 * far faster (oneDNN's brgemm matmul, measured on this project's Xeon: 960 GFLOP/s on one core for
 * [32 x 256] x [256 x 1024] with its weights pre-blocked, against 233 for the FP32 FMA peak). The
 * project ships no AMX kernel of its own: AMX is reached only through oneDNN, which is tested on
 * it. Same numbers as bf16.c up to summation order: both operands rounded to bf16 (to nearest
 * even; AMX, like vdpbf16ps, reads subnormals as zero), products summed in fp32.
 *
 * Two uses:
 *  - sp__amx_gemm: any product C = op(A) op(B) + beta C (the input projection, the head, weight
 *    gradients): the operands rounded into scratch, a matmul primitive made for the shape (oneDNN's
 *    primitive cache makes a repeated shape cost ~3 us), run on up to `threads` threads;
 *  - sp_amx_prod: a recurrent product, [m <= M, K] x op(W) at every step of a pass: W reordered
 *    once into the primitive's blocked layout, each thread with its own stream and scratchpad
 *    (sp_amx_ctx), A rounded per step.
 * Used where the CPU has AMX-BF16 (oneDNN's effective ISA says so) and SPOOL_CPU is unset or
 * "amx"; anything else runs bf16.c. Without oneDNN every function here declines (returns 0).
 */
#include "amx.h"
#include "bf16.h"

#include <stdlib.h>
#include <string.h>

#if defined(SP_HAVE_DNNL) && !defined(SP_USE_DOUBLE)
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>

static dnnl_engine_t engine;
static int amx_state; /* 1 usable, 0 not (set once) */
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_init(void)
{
    const char *want = getenv("SPOOL_CPU");
    if (want && strcmp(want, "amx")) return; /* SPOOL_CPU caps below AMX */
    if (dnnl_get_effective_cpu_isa() < dnnl_cpu_isa_avx512_core_amx) return;
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) return;
    amx_state = 1;
}

int sp__amx_ok(void)
{
    pthread_once(&amx_once, amx_init);
    return amx_state;
}

const char *sp__amx_name(void)
{
    static char name[64];
    if (!sp__amx_ok()) return NULL;
    const dnnl_version_t *v = dnnl_version();
    snprintf(name, sizeof name, "AMX through oneDNN %d.%d.%d", v->major, v->minor, v->patch);
    return name;
}

/* A 2-D memory descriptor of rows x cols at strides (rs, cs). */
static int md2(dnnl_memory_desc_t *md, int rows, int cols, dnnl_data_type_t dt, long rs, long cs)
{
    dnnl_dims_t d = {rows, cols}, s = {rs, cs};
    return dnnl_memory_desc_init_by_strides(md, 2, d, dt, s) == dnnl_success;
}

/* A matmul primitive [M, K] x [K, N] (+ bias, f32 [1, N], when given) -> f32 [M, N], user
 * scratchpad, optional dst += (sum). */
static dnnl_primitive_desc_t matmul_pd(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b,
                                       const dnnl_memory_desc_t *bias, const dnnl_memory_desc_t *c, int sum)
{
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_matmul_desc_init(&md, a, b, bias, c) != dnnl_success) return NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    int ok = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success;
    if (ok && sum)
        ok = dnnl_post_ops_create(&po) == dnnl_success && dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    if (ok && dnnl_primitive_desc_create(&pd, &md, attr, engine, NULL) != dnnl_success) pd = NULL;
    if (po) dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    return pd;
}

static size_t pd_bytes(dnnl_primitive_desc_t pd, dnnl_query_t q)
{
    const dnnl_memory_desc_t *m = dnnl_primitive_desc_query_md(pd, q, 0);
    return m ? dnnl_memory_desc_get_size(m) : 0;
}

/* Rows of x (rows x cols at stride ld) rounded to bf16 at stride ld2 = cols rounded up to even, on
 * up to `threads` threads (a large operand's rounding is a memory-bound pass of its own). */
static void round_rows(const float *x, int rows, int cols, int ld, uint16_t *out, int threads)
{
    const int ld2 = (cols + 1) & ~1;
    const size_t n_ = (size_t)rows * cols;
#pragma omp parallel for num_threads(threads) if (threads > 1 && n_ >= SP_PAR_MIN_ELEMS) schedule(static)
    for (int r = 0; r < rows; r++) sp__bf16_pairs(x + (size_t)r * ld, cols, (uint32_t *)(out + (size_t)r * ld2));
}

/* Runs prim with src, weights, dst, scratchpad (and bias, when pbias is not NULL) on a stream made
 * for the call (every memory over the caller's buffers). 1 on success. */
static int run(dnnl_primitive_t prim, dnnl_stream_t st, const dnnl_memory_desc_t *a, void *pa,
               const dnnl_memory_desc_t *b, void *pb, const dnnl_memory_desc_t *c, void *pc,
               const dnnl_memory_desc_t *s, void *ps, const dnnl_memory_desc_t *bias, void *pbias)
{
    dnnl_memory_t m[5] = {0};
    int ok = dnnl_memory_create(&m[0], a, engine, pa) == dnnl_success &&
             dnnl_memory_create(&m[1], b, engine, pb) == dnnl_success &&
             dnnl_memory_create(&m[2], c, engine, pc) == dnnl_success &&
             dnnl_memory_create(&m[3], s, engine, ps) == dnnl_success &&
             (!pbias || dnnl_memory_create(&m[4], bias, engine, pbias) == dnnl_success);
    if (ok) {
        dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, m[0]}, {DNNL_ARG_WEIGHTS, m[1]}, {DNNL_ARG_DST, m[2]},
                                   {DNNL_ARG_SCRATCHPAD, m[3]}, {DNNL_ARG_BIAS, m[4]}};
        ok = dnnl_primitive_execute(prim, st, pbias ? 5 : 4, args) == dnnl_success && dnnl_stream_wait(st) == dnnl_success;
    }
    for (int i = 0; i < 5; i++)
        if (m[i]) dnnl_memory_destroy(m[i]);
    return ok;
}

/* ------------------------------------------------------------------ any product */

/* Layout of the general product's scratch: A rounded, B rounded, oneDNN's scratchpad. */
static size_t gemm_layout(int ta, int tb, int M, int N, int K, size_t *offb, size_t *offs)
{
    const size_t ra = ta ? K : M, ca = ta ? M : K, rb = tb ? N : K, cb = tb ? K : N;
    *offb = (ra * ((ca + 1) & ~(size_t)1) * 2 + 63) / 64 * 64;
    *offs = *offb + (rb * ((cb + 1) & ~(size_t)1) * 2 + 63) / 64 * 64;
    return *offs;
}

/* The general product's descriptors: A [M, K] and B [K, N] rounded at even strides (or their
 * transposes by strides), C f32 at stride ldc. 0 on a shape oneDNN refuses. */
static int gemm_mds(int ta, int tb, int M, int N, int K, int ldc, long la, long lb, dnnl_memory_desc_t *a,
                    dnnl_memory_desc_t *b, dnnl_memory_desc_t *c)
{
    if (!la) la = ((ta ? M : K) + 1) & ~1;
    if (!lb) lb = ((tb ? K : N) + 1) & ~1;
    return md2(a, M, K, dnnl_bf16, ta ? 1 : la, ta ? la : 1) && md2(b, K, N, dnnl_bf16, tb ? 1 : lb, tb ? lb : 1) &&
           md2(c, M, N, dnnl_f32, ldc, 1);
}

/* The general product's primitive for `threads` threads (oneDNN sizes a primitive's team when it
 * is made, from the caller's OpenMP setting; a repeated shape comes from its cache). la, lb: the
 * rounded operands' strides (0: their own rounding's). */
static dnnl_primitive_desc_t gemm_pd(int ta, int tb, int M, int N, int K, int ldc, long la, long lb, int bias,
                                     float beta, int threads)
{
    dnnl_memory_desc_t a, b, c, bm;
    if (!gemm_mds(ta, tb, M, N, K, ldc, la, lb, &a, &b, &c) || !md2(&bm, 1, N, dnnl_f32, N, 1)) return NULL;
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    dnnl_primitive_desc_t pd = matmul_pd(&a, &b, bias ? &bm : NULL, &c, beta != 0);
    omp_set_num_threads(before);
    return pd;
}

size_t sp__amx_gemm_scratch(int ta, int tb, int M, int N, int K, int ldc, float beta, int threads)
{
    if (!sp__amx_ok() || M < 1 || N < 1 || K < 1) return 0;
    dnnl_primitive_desc_t pd = gemm_pd(ta, tb, M, N, K, ldc, 0, 0, 0, beta, threads);
    if (!pd) return 0;
    size_t ob, os, pad = pd_bytes(pd, dnnl_query_scratchpad_md);
    dnnl_primitive_desc_destroy(pd);
    return gemm_layout(ta, tb, M, N, K, &ob, &os) + pad + 64;
}

int sp__amx_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const uint16_t *abf, int la2,
                 const float *B, int ldb, const uint16_t *bbf, int lb2, const float *bias, float beta, float *C, int ldc,
                 int threads, void *scratch, size_t scratch_bytes)
{
    if (!sp__amx_ok() || (beta != 0 && beta != 1) || (bias && beta != 0) || M < 1 || N < 1 || K < 1) return 0;
    size_t ob, os;
    gemm_layout(ta, tb, M, N, K, &ob, &os);
    const long la = abf ? la2 : 0, lb = bbf ? lb2 : 0;
    dnnl_memory_desc_t a, b, c, bm;
    if (!gemm_mds(ta, tb, M, N, K, ldc, la, lb, &a, &b, &c) || !md2(&bm, 1, N, dnnl_f32, N, 1)) return 0;
    dnnl_primitive_desc_t pd = gemm_pd(ta, tb, M, N, K, ldc, la, lb, bias != NULL, beta, threads);
    const dnnl_memory_desc_t *smd = pd ? dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) : NULL;
    dnnl_primitive_t prim = NULL;
    const int before = omp_get_max_threads(); /* the team it was made for runs it */
    omp_set_num_threads(threads);
    int ok = smd && os + dnnl_memory_desc_get_size(smd) <= scratch_bytes &&
             dnnl_primitive_create(&prim, pd) == dnnl_success;
    if (ok) {
        uint16_t *pa = scratch, *pb = (uint16_t *)((char *)scratch + ob);
        if (abf) pa = (uint16_t *)abf; /* a shadow: rounded already (autograd/tape_internal.h) */
        else round_rows(A, ta ? K : M, ta ? M : K, lda, pa, threads);
        if (bbf) pb = (uint16_t *)bbf;
        else round_rows(B, tb ? N : K, tb ? K : N, ldb, pb, threads);
        dnnl_stream_t st = NULL;
        ok = dnnl_stream_create(&st, engine, dnnl_stream_default_flags) == dnnl_success &&
             run(prim, st, &a, pa, &b, pb, &c, C, smd, (char *)scratch + os, &bm, (void *)bias);
        if (st) dnnl_stream_destroy(st);
    }
    omp_set_num_threads(before);
    if (prim) dnnl_primitive_destroy(prim);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return ok;
}

/* ------------------------------------------------------------------ a recurrent product */

int sp__amx_prod_make(sp_amx_prod *p, int M, int K, int N, int ldc, int sum)
{
    memset(p, 0, sizeof *p);
    if (!sp__amx_ok()) return 0;
    dnnl_memory_desc_t a, b, c;
    dnnl_dims_t bd = {K, N};
    const long lk = (K + 1) & ~1;
    if (!md2(&a, M, K, dnnl_bf16, lk, 1) || !md2(&c, M, N, dnnl_f32, ldc, 1) ||
        dnnl_memory_desc_init_by_tag(&b, 2, bd, dnnl_bf16, dnnl_format_tag_any) != dnnl_success)
        return 0;
    /* made for one thread (oneDNN sizes a primitive's team when it is made): each thread of an
     * op runs its own rows' products */
    const int before = omp_get_max_threads();
    omp_set_num_threads(1);
    dnnl_primitive_desc_t pd = matmul_pd(&a, &b, NULL, &c, sum);
    dnnl_primitive_t prim = NULL;
    int ok = pd && dnnl_primitive_create(&prim, pd) == dnnl_success;
    omp_set_num_threads(before);
    if (!ok) {
        if (pd) dnnl_primitive_desc_destroy(pd);
        return 0;
    }
    p->prim = prim, p->pd = pd, p->M = M, p->K = K, p->N = N, p->ldc = ldc, p->sum = sum;
    p->w_bytes = pd_bytes(pd, dnnl_query_weights_md);
    p->pad_bytes = pd_bytes(pd, dnnl_query_scratchpad_md);
    return 1;
}

int sp__amx_same_weights(const sp_amx_prod *p, const sp_amx_prod *q)
{
    if (!p->pd || !q->pd) return 0;
    const dnnl_memory_desc_t *a = dnnl_primitive_desc_query_md(p->pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *b = dnnl_primitive_desc_query_md(q->pd, dnnl_query_weights_md, 0);
    return a && b && dnnl_memory_desc_equal(a, b);
}

int sp__amx_prod_weights(sp_amx_prod *p, const float *W, int ldw, int trans, void *wbuf)
{
    dnnl_memory_desc_t wsrc;
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(p->pd, dnnl_query_weights_md, 0);
    if (!wmd || !md2(&wsrc, p->K, p->N, dnnl_f32, trans ? 1 : ldw, trans ? ldw : 1)) return 0;
    const int before = omp_get_max_threads(); /* on this thread alone: no team left spinning */
    omp_set_num_threads(1);
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_memory_t ms = NULL, md = NULL;
    dnnl_stream_t st = NULL;
    int ok = dnnl_reorder_primitive_desc_create(&rpd, &wsrc, engine, wmd, engine, NULL) == dnnl_success &&
             dnnl_primitive_create(&r, rpd) == dnnl_success &&
             dnnl_memory_create(&ms, &wsrc, engine, (void *)W) == dnnl_success &&
             dnnl_memory_create(&md, wmd, engine, wbuf) == dnnl_success &&
             dnnl_stream_create(&st, engine, dnnl_stream_default_flags) == dnnl_success;
    if (ok) { /* W (fp32, op(W) by strides) into the primitive's blocked bf16 layout */
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, md}};
        ok = dnnl_primitive_execute(r, st, 2, args) == dnnl_success && dnnl_stream_wait(st) == dnnl_success;
    }
    if (st) dnnl_stream_destroy(st);
    if (ms) dnnl_memory_destroy(ms);
    if (md) dnnl_memory_destroy(md);
    if (r) dnnl_primitive_destroy(r);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    omp_set_num_threads(before);
    p->w = ok ? wbuf : NULL;
    return ok;
}

int sp__amx_prod_init(sp_amx_prod *p, int M, int K, int N, const float *W, int ldw, int trans, sp_tape *t)
{
    if (!sp__amx_prod_make(p, M, K, N, N, 0)) return 0;
    void *wbuf = sp__alloc_raw(t, p->w_bytes);
    if (wbuf && sp__amx_prod_weights(p, W, ldw, trans, wbuf)) return 1;
    sp__amx_prod_fini(p);
    return 0;
}

void sp__amx_prod_fini(sp_amx_prod *p)
{
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->pd) dnnl_primitive_desc_destroy(p->pd);
    memset(p, 0, sizeof *p);
}

int sp__amx_ctx_open(sp_amx_ctx *c, const sp_amx_prod *p, void *pad)
{
    memset(c, 0, sizeof *c);
    const dnnl_memory_desc_t *a = dnnl_primitive_desc_query_md(p->pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *w = dnnl_primitive_desc_query_md(p->pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *d = dnnl_primitive_desc_query_md(p->pd, dnnl_query_dst_md, 0);
    const dnnl_memory_desc_t *s = dnnl_primitive_desc_query_md(p->pd, dnnl_query_scratchpad_md, 0);
    dnnl_stream_t st = NULL;
    dnnl_memory_t m[4] = {0};
    int ok = a && w && d && s && dnnl_stream_create(&st, engine, dnnl_stream_default_flags) == dnnl_success &&
             dnnl_memory_create(&m[0], a, engine, DNNL_MEMORY_NONE) == dnnl_success &&
             dnnl_memory_create(&m[1], w, engine, p->w) == dnnl_success &&
             dnnl_memory_create(&m[2], d, engine, DNNL_MEMORY_NONE) == dnnl_success &&
             dnnl_memory_create(&m[3], s, engine, pad) == dnnl_success;
    c->stream = st;
    memcpy(c->mem, m, sizeof m);
    /* one thread per context: its products run on the calling thread (a team of 1 is not "in
     * parallel", and oneDNN would otherwise start a team of the host's default size per step) */
    c->threads_before = omp_get_max_threads();
    omp_set_num_threads(1);
    if (!ok) sp__amx_ctx_close(c);
    return ok;
}

int sp__amx_run(sp_amx_ctx *c, const sp_amx_prod *p, int m, const float *A, int lda, uint16_t *abf, float *C)
{
    if (m > p->M) return 0;
    round_rows(A, m, p->K, lda, abf, 1); /* rows m .. M hold whatever they held: their outputs are not read */
    dnnl_memory_t *mem = (dnnl_memory_t *)c->mem;
    if (dnnl_memory_set_data_handle(mem[0], abf) != dnnl_success || dnnl_memory_set_data_handle(mem[2], C) != dnnl_success)
        return 0;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, mem[0]}, {DNNL_ARG_WEIGHTS, mem[1]}, {DNNL_ARG_DST, mem[2]},
                               {DNNL_ARG_SCRATCHPAD, mem[3]}};
    return dnnl_primitive_execute(p->prim, c->stream, 4, args) == dnnl_success &&
           dnnl_stream_wait(c->stream) == dnnl_success;
}

void sp__amx_ctx_close(sp_amx_ctx *c)
{
    dnnl_memory_t *mem = (dnnl_memory_t *)c->mem;
    for (int i = 0; i < 4; i++)
        if (mem[i]) dnnl_memory_destroy(mem[i]);
    if (c->stream) dnnl_stream_destroy(c->stream);
    if (c->threads_before > 0) omp_set_num_threads(c->threads_before);
    memset(c, 0, sizeof *c);
}

#else /* without oneDNN (or the double build): every call declines */

int sp__amx_ok(void) { return 0; }
const char *sp__amx_name(void) { return NULL; }
size_t sp__amx_gemm_scratch(int ta, int tb, int M, int N, int K, int ldc, float beta, int threads)
{
    (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)ldc, (void)beta, (void)threads;
    return 0;
}
int sp__amx_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const uint16_t *abf, int la2,
                 const float *B, int ldb, const uint16_t *bbf, int lb2, const float *bias, float beta, float *C, int ldc,
                 int threads, void *scratch, size_t scratch_bytes)
{
    (void)bias, (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B, (void)ldb, (void)beta, (void)C, (void)ldc;
    (void)threads, (void)scratch, (void)scratch_bytes, (void)abf, (void)la2, (void)bbf, (void)lb2;
    return 0;
}
int sp__amx_prod_init(sp_amx_prod *p, int M, int K, int N, const float *W, int ldw, int trans, sp_tape *t)
{
    (void)M, (void)K, (void)N, (void)W, (void)ldw, (void)trans, (void)t;
    memset(p, 0, sizeof *p);
    return 0;
}
void sp__amx_prod_fini(sp_amx_prod *p) { (void)p; }
int sp__amx_prod_make(sp_amx_prod *p, int M, int K, int N, int ldc, int sum)
{
    (void)M, (void)K, (void)N, (void)ldc, (void)sum;
    memset(p, 0, sizeof *p);
    return 0;
}
int sp__amx_prod_weights(sp_amx_prod *p, const float *W, int ldw, int trans, void *wbuf)
{
    (void)p, (void)W, (void)ldw, (void)trans, (void)wbuf;
    return 0;
}
int sp__amx_same_weights(const sp_amx_prod *p, const sp_amx_prod *q)
{
    (void)p, (void)q;
    return 0;
}
int sp__amx_ctx_open(sp_amx_ctx *c, const sp_amx_prod *p, void *pad)
{
    (void)p, (void)pad;
    memset(c, 0, sizeof *c);
    return 0;
}
int sp__amx_run(sp_amx_ctx *c, const sp_amx_prod *p, int m, const float *A, int lda, uint16_t *abf, float *C)
{
    if (m > p->M) return 0;
    (void)c, (void)p, (void)m, (void)A, (void)lda, (void)abf, (void)C;
    return 0;
}
void sp__amx_ctx_close(sp_amx_ctx *c) { (void)c; }
#endif
