/* SPDX-License-Identifier: MIT */
/* seq.c - a whole recurrence as one op (LSTM, reset-after GRU, tanh/relu RNN): all T steps
 * forward, all T steps back.
 *
 * As T separate steps (a matmul and an lstm_cell per step) a 1-layer LSTM puts 2T records on the
 * tape, opens 2T parallel regions per pass that each synchronise every thread, gives backward 2T
 * gate-gradient buffers to zero, and stacks copies of every step's rows for the weight gradient.
 * These ops do the same arithmetic (tests/test_seq_ops.c checks them against that per-step
 * composition and against finite differences) with
 *  - W_hh packed once per pass into the AVX-512 kernel's panels (ops/packed.c; BLIS where that
 *    kernel cannot run);
 *  - threads that split the batch, not the step: each thread carries its own rows through all T
 *    steps, so a pass is one parallel region with no barrier per step, and a thread descheduled
 *    on a busy machine delays only its own rows, once;
 *  - variable lengths at no cost: rows are taken in order of decreasing length, a step multiplies
 *    only the rows still running, padded outputs are 0 and the final state is each row's last
 *    real one;
 *  - each step's gate gradient written over its saved gates, so the weight gradient is one GEMM
 *    over all steps ([G, T*B] x [T*B, H]) and dxp accumulates while dG is computed;
 *  - the gates kept in the input projection's own memory when nothing else reads it (sp__keep):
 *    no second [T*B, G] buffer, and the gradient written there is xp's, with no pass to add it.
 *  - in bf16 mode, the recurrent product on AMX through oneDNN (W blocked once per pass, a stream
 *    per thread: ops/amx.c) or on ops/bf16.c's panels, the weight gradient through sp__gemm_p.
 * One engine runs every kind; a kind is a row of `kinds` below: its gate count, what it saves,
 * and the per-row forward and backward of its gate math (cell_rows.h through the kernel table of
 * vec.h, vectorised for the CPU at hand; the per-step ops use the same rows, so both compute the
 * same numbers).
 */
#include "amx.h"
#include "bf16.h"
#include "kernels.h"
#include "vec.h"

#include <omp.h>
#include <string.h>

#define CHUNK 8 /* rows per unit of work: the packed micro-kernel's tile height */

/* ------------------------------------------------------------------ the cell kinds */

typedef enum { K_LSTM, K_GRU, K_RNN_TANH, K_RNN_RELU } kind_id;

/* Forward of one row: x = xp row [G], y = h_prev W_hh^T row [G], bn = b_hn (GRU) or NULL,
 * hp/cp = previous h/c [H] (cp NULL without a cell state) -> sv [G] the gates, ex [S - G] what else
 * the kind saves (GRU: y_n + b_hn; NULL when nothing), h [H], c [H]. x may be sv (kept, below). */
typedef void (*row_fwd_fn)(const sp_real *x, const sp_real *y, const sp_real *bn, const sp_real *hp,
                           const sp_real *cp, sp_real *sv, sp_real *ex, sp_real *h, sp_real *c, int H);
/* Backward of one row from sv, ex, dh, dcn (total gradients of h and c at this step), cn = this
 * step's c (LSTM): dx [G] for xp, dy [G] for h_prev W_hh^T; dhd [H] the part of dh_prev that
 * bypasses W_hh (GRU) or NULL; dcp [H] the gradient of c_prev (LSTM). scr [2H] is scratch. */
typedef void (*row_bwd_fn)(const sp_real *sv, const sp_real *ex, const sp_real *dh, const sp_real *dcn,
                           const sp_real *hp, const sp_real *cp, const sp_real *cn, sp_real *dx, sp_real *dy,
                           sp_real *dhd, sp_real *dcp, sp_real *scr, int H);

/* When xp is transient (sp__keep, autograd/tape_internal.h) every kind keeps its gates in xp's
 * memory: the forward writes them over the projection, the backward writes xp's gradient dx over
 * them. The weight gradient needs dy, which equals dx in its first dyx columns (all of them but
 * for the GRU, whose n block is da_n r against da_n); the rest of dy goes where the kind's other
 * saved values were (ex), once they are read. */
typedef struct {
    sp_op op;
    int gates, saved, cstate, direct, dyx; /* G = gates H, S = saved H, has c, has dhd, dy = dx in [0, dyx H) */
    row_fwd_fn fwd;
    row_bwd_fn bwd;
} seq_kind;

static void lstm_fwd(const sp_real *x, const sp_real *y, const sp_real *bn, const sp_real *hp, const sp_real *cp,
                     sp_real *sv, sp_real *ex, sp_real *h, sp_real *c, int H)
{
    (void)bn, (void)hp, (void)ex;
    sp__vec()->lstm_fwd(x, y, cp, sv, h, c, H);
}

static void lstm_bwd(const sp_real *sv, const sp_real *ex, const sp_real *dh, const sp_real *dcn, const sp_real *hp,
                     const sp_real *cp, const sp_real *cn, sp_real *dx, sp_real *dy, sp_real *dhd, sp_real *dcp,
                     sp_real *scr, int H)
{
    (void)ex, (void)hp, (void)dhd, (void)dy;
    sp__vec()->lstm_bwd(sv, cn, dh, dcn, cp, dx, scr, H); /* dy = dx: the caller passes the same row */
    sp__vec()->mul(dcp, scr, sv + H, H);
}

static void gru_fwd(const sp_real *x, const sp_real *y, const sp_real *bn, const sp_real *hp, const sp_real *cp,
                    sp_real *sv, sp_real *ex, sp_real *h, sp_real *c, int H)
{
    (void)cp, (void)c;
    sp__vec()->gru_fwd(x, y, bn, hp, sv, ex, h, H);
}

static void gru_bwd(const sp_real *sv, const sp_real *ex, const sp_real *dh, const sp_real *dcn, const sp_real *hp,
                    const sp_real *cp, const sp_real *cn, sp_real *dx, sp_real *dy, sp_real *dhd, sp_real *dcp,
                    sp_real *scr, int H)
{
    (void)dcn, (void)cp, (void)cn, (void)dcp, (void)scr;
    sp__vec()->gru_bwd(sv, ex, dh, hp, dx, dy, H);
    sp__vec()->mul(dhd, dh, sv + H, H);
}

/* RNN: h = act(x + y); saved: h */
static void tanh_fwd(const sp_real *x, const sp_real *y, const sp_real *bn, const sp_real *hp, const sp_real *cp,
                     sp_real *sv, sp_real *ex, sp_real *h, sp_real *c, int H)
{
    (void)bn, (void)hp, (void)cp, (void)ex, (void)c;
    sp__vec()->tanh_add(x, y, sv, h, H);
}

static void relu_fwd(const sp_real *x, const sp_real *y, const sp_real *bn, const sp_real *hp, const sp_real *cp,
                     sp_real *sv, sp_real *ex, sp_real *h, sp_real *c, int H)
{
    (void)bn, (void)hp, (void)cp, (void)ex, (void)c;
    for (int j = 0; j < H; j++) {
        sp_real a = x[j] + y[j];
        h[j] = sv[j] = a > 0 ? a : 0;
    }
}

static void tanh_bwd(const sp_real *sv, const sp_real *ex, const sp_real *dh, const sp_real *dcn, const sp_real *hp,
                     const sp_real *cp, const sp_real *cn, sp_real *dx, sp_real *dy, sp_real *dhd, sp_real *dcp,
                     sp_real *scr, int H)
{
    (void)ex, (void)dcn, (void)hp, (void)cp, (void)cn, (void)dy, (void)dhd, (void)dcp, (void)scr;
    sp__vec()->tanh_grad(dx, dh, sv, H);
}

static void relu_bwd(const sp_real *sv, const sp_real *ex, const sp_real *dh, const sp_real *dcn, const sp_real *hp,
                     const sp_real *cp, const sp_real *cn, sp_real *dx, sp_real *dy, sp_real *dhd, sp_real *dcp,
                     sp_real *scr, int H)
{
    (void)ex, (void)dcn, (void)hp, (void)cp, (void)cn, (void)dy, (void)dhd, (void)dcp, (void)scr;
    for (int j = 0; j < H; j++) dx[j] = sv[j] > 0 ? dh[j] : 0;
}

static const seq_kind kinds[] = {
    [K_LSTM] = {SP_OP_LSTM_SEQ, 4, 4, 1, 0, 4, lstm_fwd, lstm_bwd},
    [K_GRU] = {SP_OP_GRU_SEQ, 3, 4, 0, 1, 2, gru_fwd, gru_bwd},
    [K_RNN_TANH] = {SP_OP_RNN_SEQ, 1, 1, 0, 0, 1, tanh_fwd, tanh_bwd},
    [K_RNN_RELU] = {SP_OP_RNN_SEQ, 1, 1, 0, 0, 1, relu_fwd, relu_bwd},
};

/* ------------------------------------------------------------------------ the engine */

typedef struct {
    const seq_kind *k;
    int T, B, H, nt;  /* steps, rows, hidden size, threads */
    int *len, *order; /* [B] real length per row; rows by decreasing length */
    sp_real *sv, *ex; /* per row and step: the gates [G] (dy, or dx when kept, after backward), row
                         stride ss, and the rest of what the kind saves [S - G], stride es: one
                         buffer [T*B, S] (ex = sv + G), or xp's memory and a buffer of the rest */
    size_t ss, es;
    int kept;
    sp_real *work;    /* per-thread buffers, `per` reals each */
    size_t per;
    int maxr;         /* most rows one thread holds */
    int prec;         /* the tape's product precision when the op was recorded (sp_precision) */
    size_t abuf;      /* bf16: reals at the end of each thread's work buffer for its A rounded */
} seq_state;

/* Row slots of thread k: chunks k, k + nt, ... of `order`, so threads get rows of every length. */
static int my_rows(const seq_state *q, int k, int *rows)
{
    int n = 0;
    for (int c = k * CHUNK; c < q->B; c += q->nt * CHUNK)
        for (int j = c; j < c + CHUNK && j < q->B; j++) rows[n++] = q->order[j];
    return n;
}

/* G[m, N] = A[m, K] op(W) on this thread: packed panels when there are any (bf16 pair panels in
 * bf16, with A rounded into abuf), else BLIS. */
static void step_gemm(int prec, int m, int N, int K, const sp_real *A, const void *panels, const sp_tensor *W,
                      int trans, sp_real *G, void *abuf)
{
#ifndef SP_USE_DOUBLE
    if (prec == SP_PREC_BF16) {
        sp__bf16_panels_gemm(m, N, K, A, K, panels, G, N, 0, abuf);
        return;
    }
    if (panels) {
        sp__panels_gemm(m, N, K, A, K, panels, G, N, 0);
        return;
    }
#endif
    (void)panels, (void)prec, (void)abuf;
    sp__gemm_threads(0, trans, m, N, K, A, K, W->data, W->stride, 0, G, N, 1);
}

/* op(W) packed for step_gemm (always in bf16), or NULL (then step_gemm uses BLIS on W as stored). */
static const void *pack(sp_tape *t, int prec, const sp_tensor *W, int trans, int K, int N)
{
#ifndef SP_USE_DOUBLE
    if (prec == SP_PREC_BF16) {
        uint16_t *p = sp__alloc_raw(t, sp__bf16_panels_size(K, N) * sizeof(uint16_t));
        if (p) sp__bf16_pack_panels(W->data, W->stride, trans, K, N, p);
        return p;
    }
#endif
    size_t n = sp__panels_floats(K, N);
    float *p = n ? sp__alloc_raw(t, n * sizeof(float)) : NULL;
    if (p) sp__pack_panels(W, trans, K, N, p);
    return p;
}

/* Bytes of one thread's oneDNN scratchpad, whole cache lines. */
static size_t amx_pad(const sp_amx_prod *p) { return (p->pad_bytes + 63) / 64 * 64; }

/* The AMX product of a pass (amx.h): op(W) blocked once for products of up to M rows, and one
 * step of it on a thread. 0 where it does not run (then pack and step_gemm do the product). */
static int amx_begin(sp_amx_prod *p, int prec, int M, int K, int N, const sp_tensor *W, int trans, sp_tape *t)
{
#ifndef SP_USE_DOUBLE
    if (prec == SP_PREC_BF16) return sp__amx_prod_init(p, M, K, N, W->data, W->stride, trans, t);
#endif
    (void)p, (void)prec, (void)M, (void)K, (void)N, (void)W, (void)trans, (void)t;
    return 0;
}

static int amx_step(int use, sp_amx_ctx *c, const sp_amx_prod *p, int m, const sp_real *A, int lda, void *abf, sp_real *C)
{
#ifndef SP_USE_DOUBLE
    return use && sp__amx_run(c, p, m, A, lda, abf, C);
#else
    (void)use, (void)c, (void)p, (void)m, (void)A, (void)lda, (void)abf, (void)C;
    return 0;
#endif
}

/* bf16 on AMX: a shadow (autograd/tape_internal.h) of a matrix [rows, cols] that the op writes row
 * by row, each row rounded while it is in cache, so that the products which read the matrix later
 * (the weight gradients, the next layer's or the head's product) need no rounding pass over
 * memory of their own. NULL where those products would not read it (fp32, the double build, no
 * AMX: ops/bf16.c packs its operands itself). */
static uint16_t *shadow_new(sp_tape *t, int prec, size_t rows, int cols)
{
#ifndef SP_USE_DOUBLE
    if (prec == SP_PREC_BF16 && sp__amx_ok()) return sp__alloc_raw(t, rows * (size_t)((cols + 1) & ~1) * sizeof(uint16_t));
#endif
    (void)t, (void)prec, (void)rows, (void)cols;
    return NULL;
}

/* Row `row` of shadow sh: x [cols] rounded, or zeros for x NULL (a padded step). */
static void shadow_row(uint16_t *sh, size_t row, const sp_real *x, int cols)
{
    const size_t ld2 = (size_t)((cols + 1) & ~1);
    if (!sh) return;
#ifndef SP_USE_DOUBLE
    if (x) {
        sp__bf16_pairs(x, cols, (uint32_t *)(sh + row * ld2));
        return;
    }
#endif
    memset(sh + row * ld2, 0, ld2 * sizeof(uint16_t));
}

static int threads_for(int B, int G, int H)
{
    int nt = sp__threads_now(), chunks = (B + CHUNK - 1) / CHUNK;
    if ((double)B * H * G < SP_PAR_MIN_SEQ_MACS) /* parallel.h */ nt = 1;
    return nt < chunks ? nt : chunks;
}

static sp_tensor *seq_op(sp_tape *t, kind_id kid, sp_tensor *xp, sp_tensor *w_hh, sp_tensor *b_hn, sp_tensor *h0,
                         sp_tensor *c0, int T, const int *lengths)
{
    const seq_kind *k = &kinds[kid];
    const char *name = sp_op_name(k->op);
    sp_tensor *in[5] = {xp, w_hh, h0, c0, b_hn};
    if (!sp__ready(t, k->op, in, k->cstate ? 4 : 3)) return NULL;
    int B = h0->rows, H = h0->cols, G = k->gates * H, S = k->saved * H, n_in = k->cstate ? 4 : 3;
    if (T < 1 || (size_t)T * B != (size_t)xp->rows) {
        sp_tape_fail(t, SP_ERR_SHAPE, "%s \"%s\": T = %d steps of B = %d rows need xp \"%s\" with T*B rows, it has %d",
                     name, sp__scope_name(t, name), T, B, xp->name, xp->rows);
        return NULL;
    }
    if (xp->cols != G) {
        sp__shape_error(t, k->op, k->gates == 4 ? "xp must be [T*B x 4H] for h0 [B x H]"
                                  : k->gates == 3 ? "xp must be [T*B x 3H] for h0 [B x H]"
                                                  : "xp must be [T*B x H] for h0 [B x H]", xp, h0);
        return NULL;
    }
    if (w_hh->rows != G || w_hh->cols != H) {
        sp__shape_error(t, k->op, "w_hh must be [G x H] (G = xp's columns) for h0 [B x H]", w_hh, h0);
        return NULL;
    }
    if (k->cstate && (c0->rows != B || c0->cols != H)) {
        sp__shape_error(t, k->op, "c0 must be [B x H] like h0", c0, h0);
        return NULL;
    }
    if (b_hn && (b_hn->rows != 1 || b_hn->cols != H)) {
        sp__shape_error(t, k->op, "b_hn must be [1 x H] for h0 [B x H]", b_hn, h0);
        return NULL;
    }
    for (int b = 0; lengths && b < B; b++)
        if (lengths[b] < 0 || lengths[b] > T) {
            sp_tape_fail(t, SP_ERR_ARG, "%s \"%s\": lengths[%d] = %d is outside [0, T = %d]", name,
                         sp__scope_name(t, name), b, lengths[b], T);
            return NULL;
        }
    if (!k->cstate) in[3] = b_hn, n_in = b_hn ? 4 : 3;
    sp_record *r = sp__record(t, k->op, (k->cstate ? 2 : 1) * (T + 1) * B, H, in, n_in);
    seq_state *q = r ? sp__alloc(t, sizeof *q) : NULL;
    if (!q) return NULL;
    q->k = k, q->T = T, q->B = B, q->H = H, q->nt = threads_for(B, G, H), q->prec = t->precision;
    int maxr = q->maxr = ((B + CHUNK - 1) / CHUNK + q->nt - 1) / q->nt * CHUNK;
    q->per = (size_t)maxr * (3 * (size_t)G + 3 * (size_t)H) + 6 * (size_t)H;
#ifndef SP_USE_DOUBLE
    if (q->prec == SP_PREC_BF16) /* rounded A: h [maxr, H] forward, dy [maxr, G] backward */
        q->abuf = (sp__bf16_abuf_size(maxr, G > H ? G : H) + 15) / 16 * 16, q->per = (q->per + 15) / 16 * 16 + q->abuf;
#endif
    q->len = sp__alloc_raw(t, 2 * (size_t)B * sizeof(int));
    q->kept = sp__keep(t, xp); /* after sp__record: r is the tape's last record */
    if (q->kept) {
        q->sv = xp->data, q->ss = (size_t)xp->stride, q->es = (size_t)(S - G);
        q->ex = S > G ? sp__alloc_raw(t, (size_t)T * B * (S - G) * sizeof(sp_real)) : NULL;
    } else {
        q->sv = sp__alloc_raw(t, (size_t)T * B * S * sizeof(sp_real)), q->ss = q->es = (size_t)S;
        q->ex = q->sv ? q->sv + G : NULL;
    }
    q->work = sp__alloc_raw(t, q->nt * q->per * sizeof(sp_real));
    int *rows = sp__alloc_raw(t, (size_t)q->nt * 2 * maxr * sizeof(int));
    /* op(W) = W_hh^T [H, G]: for AMX (bf16 on an AMX CPU), else packed for step_gemm */
    sp_amx_prod amx;
    char *pads = amx_begin(&amx, q->prec, maxr, H, G, w_hh, 1, t)
                     ? sp__alloc_raw(t, (size_t)q->nt * amx_pad(&amx)) : NULL;
    const void *wp = pads ? NULL : pack(t, q->prec, w_hh, 1, H, G);
    uint16_t *hsh = shadow_new(t, q->prec, (size_t)T * B, H); /* h rounded, for dW_hh and h's readers */
    if (!q->len || !q->sv || (S > G && !q->ex) || !q->work || !rows || sp_tape_status(t) != SP_OK) {
        if (pads) sp__amx_prod_fini(&amx);
        return NULL;
    }
    r->saved = q;
    q->order = q->len + B;
    r->iattr[0] = kid;
    /* order: rows by decreasing length, stable (insertion sort: B is a batch, not a dataset) */
    for (int b = 0; b < B; b++) {
        q->len[b] = lengths ? lengths[b] : T;
        int j = b;
        while (j > 0 && q->len[q->order[j - 1]] < q->len[b]) q->order[j] = q->order[j - 1], j--;
        q->order[j] = b;
    }
    sp_real *out = r->out->data, *cout = out + (size_t)(T + 1) * B * H; /* h rows, then c rows */
    const sp_real *bn = b_hn ? b_hn->data : NULL;
    /* a team can be smaller than asked (inside a host's parallel region, OMP_DYNAMIC): each
     * thread then takes several of the q->nt row sets, so every row is always done */
#pragma omp parallel num_threads(q->nt)
    for (int tid = omp_get_thread_num(); tid < q->nt; tid += omp_get_num_threads()) {
        int *mine = rows + (size_t)tid * 2 * maxr, *act = mine + maxr, n = my_rows(q, tid, mine);
        sp_real *A = q->work + tid * q->per, *Y = A + (size_t)maxr * H, *ab = A + q->per - q->abuf;
        sp_amx_ctx ctx;
        int use_amx = pads && sp__amx_ctx_open(&ctx, &amx, pads + (size_t)tid * amx_pad(&amx));
        for (int s = 0; s < T; s++) {
            int m = 0;
            for (int i = 0; i < n; i++) {
                int b = mine[i];
                size_t at = (size_t)s * B + b;
                if (q->len[b] > s) {
                    act[m++] = b;
                    memcpy(A + (size_t)(m - 1) * H, s ? out + (at - B) * H : sp_at(h0, b, 0), (size_t)H * sizeof(sp_real));
                } else { /* padding: output 0, nothing saved (so its gate gradient is 0 too) */
                    memset(out + at * H, 0, (size_t)H * sizeof(sp_real));
                    if (k->cstate) memset(cout + at * H, 0, (size_t)H * sizeof(sp_real));
                    memset(q->sv + at * q->ss, 0, (size_t)G * sizeof(sp_real));
                    if (S > G) memset(q->ex + at * q->es, 0, (size_t)(S - G) * sizeof(sp_real));
                    shadow_row(hsh, at, NULL, H);
                }
            }
            if (!m) continue;
            if (!amx_step(use_amx, &ctx, &amx, m, A, H, ab, Y)) /* Y = h W_hh^T */
                step_gemm(q->prec, m, G, H, A, wp, w_hh, 1, Y, ab);
            for (int i = 0; i < m; i++) {
                int b = act[i];
                size_t at = (size_t)s * B + b;
                const sp_real *cp = !k->cstate ? NULL : s ? cout + (at - B) * H : sp_at(c0, b, 0);
                k->fwd(sp_at(xp, (int)at, 0), Y + (size_t)i * G, bn, A + (size_t)i * H, cp, q->sv + at * q->ss,
                       S > G ? q->ex + at * q->es : NULL, out + at * H,
                       k->cstate ? cout + at * H : NULL, H);
                shadow_row(hsh, at, out + at * H, H);
            }
        }
        if (use_amx) sp__amx_ctx_close(&ctx);
        for (int i = 0; i < n; i++) { /* final state of each row: its last real step */
            int b = mine[i];
            size_t fin = (size_t)T * B + b, last = (size_t)(q->len[b] - 1) * B + b;
            const size_t bytes = (size_t)H * sizeof(sp_real);
            memcpy(out + fin * H, q->len[b] ? out + last * H : sp_at(h0, b, 0), bytes);
            if (k->cstate) memcpy(cout + fin * H, q->len[b] ? cout + last * H : sp_at(c0, b, 0), bytes);
        }
    }
    if (pads) sp__amx_prod_fini(&amx);
    if (hsh) sp__shadow_put(t, out, T * B, H, H, hsh, (H + 1) & ~1, NULL);
    return r->out;
}

sp_tensor *sp_lstm_seq(sp_tape *t, sp_tensor *xp, sp_tensor *w_hh, sp_tensor *h0, sp_tensor *c0, int T,
                       const int *lengths)
{
    return seq_op(t, K_LSTM, xp, w_hh, NULL, h0, c0, T, lengths);
}

sp_tensor *sp_gru_seq(sp_tape *t, sp_tensor *xp, sp_tensor *w_hh, sp_tensor *b_hn, sp_tensor *h0, int T,
                      const int *lengths)
{
    return seq_op(t, K_GRU, xp, w_hh, b_hn, h0, NULL, T, lengths);
}

sp_tensor *sp_rnn_seq(sp_tape *t, sp_tensor *xp, sp_tensor *w_hh, sp_tensor *h0, int relu, int T, const int *lengths)
{
    return seq_op(t, relu ? K_RNN_RELU : K_RNN_TANH, xp, w_hh, NULL, h0, NULL, T, lengths);
}

/* Backward, step T-1 down to 0, each thread on its rows. Per row, the gradient reaching step s is
 * dh = dout_h[s] + dy[s+1] W_hh (+ the kind's direct part), carried, and for the LSTM
 * dc = dout_c[s] + dc_prev[s+1], carried, plus the final state's gradient at the row's last real
 * step. Then dW_hh += sum_s dy[s]^T h[s-1], and db_hn += the column sums of dy's n block. */
void sp__seq_backward(sp_record *r)
{
    seq_state *q = r->saved;
    const seq_kind *k = q->k;
    sp_tensor *xp = r->in[0], *w = r->in[1], *h0 = r->in[2], *c0 = k->cstate ? r->in[3] : NULL;
    sp_tensor *b_hn = !k->cstate && r->n_in > 3 ? r->in[3] : NULL;
    int T = q->T, B = q->B, H = q->H, G = k->gates * H, S = k->saved * H, DX0 = k->dyx * H, maxr = q->maxr;
    const size_t CB = (size_t)(T + 1) * B * H; /* offset of the c rows */
    const sp_real *out = r->out->data, *dout = r->out->grad;
    int *rows = sp__scratch(r->tape, (size_t)q->nt * 2 * maxr * sizeof(int));
    sp_amx_prod amx; /* op(W) = W_hh [G, H], as in the forward pass */
    char *pads = rows && amx_begin(&amx, q->prec, maxr, G, H, w, 0, r->tape)
                     ? sp__alloc_raw(r->tape, (size_t)q->nt * amx_pad(&amx)) : NULL;
    const void *wp = rows && !pads ? pack(r->tape, q->prec, w, 0, G, H) : NULL;
    /* what backward leaves in the gates' rows (dy, or dx when kept), rounded: for dW_hh and, when
     * kept, for xp's product's gradients, which read it as xp's gradient */
    uint16_t *dsh = rows ? shadow_new(r->tape, q->prec, (size_t)T * B, G) : NULL;
    /* kept: the column sums of xp's gradient (the bias gradient of the product that made xp), per
     * chunk of CHUNK rows in step order, then over the chunks: the same order for any thread count */
    const int nch = (B + CHUNK - 1) / CHUNK;
    sp_real *csum = rows && q->kept ? sp__alloc(r->tape, (size_t)nch * G * sizeof(sp_real)) : NULL;
    if (!rows || sp_tape_status(r->tape) != SP_OK) {
        if (pads) sp__amx_prod_fini(&amx);
        return;
    }
    int same = k->dyx == k->gates; /* dx = dy for all but the GRU */
    if (q->kept && xp->grad && xp->grad != xp->data) { /* sp_backward gives a kept node its data as gradient */
        sp_tape_fail(r->tape, SP_ERR_STATE, "%s \"%s\": xp \"%s\" holds the saved gates, but its gradient is elsewhere",
                     sp_op_name(k->op), r->out->name, xp->name);
        return;
    }
    const sp_vec_kernels *V = sp__vec();
    /* a team can be smaller than asked (inside a host's parallel region, OMP_DYNAMIC): each
     * thread then takes several of the q->nt row sets, so every row is always done */
#pragma omp parallel num_threads(q->nt)
    for (int tid = omp_get_thread_num(); tid < q->nt; tid += omp_get_num_threads()) {
        int *mine = rows + (size_t)tid * 2 * maxr, *act = mine + maxr, n = my_rows(q, tid, mine);
        sp_real *D = q->work + tid * q->per;     /* [maxr, G] dy of the running rows */
        sp_real *DH = D + (size_t)maxr * G;      /* [maxr, H] dy W_hh */
        sp_real *dhc = DH + (size_t)maxr * H;    /* [maxr, H] carried dh, by slot */
        sp_real *dcc = dhc + (size_t)maxr * H;   /* [maxr, H] carried dc, by slot */
        sp_real *DX = dcc + (size_t)maxr * H;    /* [G] dx of one row (GRU) */
        sp_real *dh = DX + G, *dcn = dh + H, *scr = dcn + H, *dhd = scr + 2 * H, *ab = q->work + (tid + 1) * q->per - q->abuf;
        memset(dhc, 0, 2 * (size_t)maxr * H * sizeof(sp_real));
        sp_amx_ctx ctx;
        int use_amx = pads && sp__amx_ctx_open(&ctx, &amx, pads + (size_t)tid * amx_pad(&amx));
        for (int s = T - 1; s >= 0; s--) {
            int m = 0;
            for (int i = 0; i < n; i++) {
                int b = mine[i];
                size_t at = (size_t)s * B + b;
                if (q->len[b] <= s) {
                    shadow_row(dsh, at, NULL, G);
                    continue;
                }
                const sp_real *g = dout + at * H, *fin = dout + ((size_t)T * B + b) * H;
                int last = q->len[b] == s + 1;
                V->add3(dh, g, dhc + (size_t)i * H, last ? fin : NULL, H);
                if (k->cstate)
                    V->add3(dcn, dout + CB + at * H, dcc + (size_t)i * H, last ? fin + CB : NULL, H);
                sp_real *sv = q->sv + at * q->ss, *ex = S > G ? q->ex + at * q->es : NULL;
                sp_real *dy = D + (size_t)m * G, *dx = same ? dy : DX;
                const sp_real *hp = s ? out + (at - B) * H : sp_at(h0, b, 0);
                const sp_real *cp = !k->cstate ? NULL : s ? out + CB + (at - B) * H : sp_at(c0, b, 0);
                const sp_real *cn = k->cstate ? out + CB + at * H : NULL;
                k->bwd(sv, ex, dh, dcn, hp, cp, cn, dx, dy, dhd, dcc + (size_t)i * H, scr, H);
                if (q->kept) { /* dx over the gates (xp's gradient), the rest of dy over what ex held */
                    memcpy(sv, dx, (size_t)G * sizeof(sp_real));
                    if (csum) V->acc(csum + (size_t)(tid + i / CHUNK * q->nt) * G, dx, G); /* my_rows' chunks */
                    if (DX0 < G) memcpy(ex, dy + DX0, (size_t)(G - DX0) * sizeof(sp_real));
                } else { /* dy replaces what it came from; dx is added to xp's gradient */
                    memcpy(sv, dy, (size_t)G * sizeof(sp_real));
                    if (xp->grad) V->acc(xp->grad + at * xp->stride, dx, G);
                }
                shadow_row(dsh, at, sv, G);
                if (k->direct) memcpy(dhc + (size_t)i * H, dhd, (size_t)H * sizeof(sp_real));
                act[m++] = i;
            }
            if (!m) continue;
            if (!amx_step(use_amx, &ctx, &amx, m, D, G, ab, DH)) /* dh[s-1] (+)= dy[s] W_hh */
                step_gemm(q->prec, m, H, G, D, wp, w, 0, DH, ab);
            for (int i = 0; i < m; i++) {
                sp_real *restrict d = dhc + (size_t)act[i] * H;
                const sp_real *restrict e = DH + (size_t)i * H;
                if (k->direct) V->acc(d, e, H);
                else memcpy(d, e, (size_t)H * sizeof(sp_real));
            }
        }
        if (use_amx) sp__amx_ctx_close(&ctx);
        for (int i = 0; i < n; i++) { /* what reaches the initial state */
            int b = mine[i];
            const sp_real *fin = dout + ((size_t)T * B + b) * H;
            int none = q->len[b] == 0; /* the final state is the initial one */
            if (h0->grad) {
                sp_real *d = h0->grad + (size_t)b * h0->stride;
                for (int j = 0; j < H; j++) d[j] += dhc[(size_t)i * H + j] + (none ? fin[j] : 0);
            }
            if (c0 && c0->grad) {
                sp_real *d = c0->grad + (size_t)b * c0->stride;
                for (int j = 0; j < H; j++) d[j] += dcc[(size_t)i * H + j] + (none ? fin[CB + j] : 0);
            }
        }
    }
    if (pads) sp__amx_prod_fini(&amx);
    if (dsh) sp__shadow_put(r->tape, q->sv, T * B, G, (int)q->ss, dsh, (G + 1) & ~1, NULL);
    if (csum) {
        for (int c = 1; c < nch; c++) V->acc(csum, csum + (size_t)c * G, G);
        sp__shadow_put(r->tape, q->sv, T * B, G, (int)q->ss, NULL, 0, csum);
    }
    /* dy's columns: [0, split) in the gates' rows, [split, G) in ex's (kept, GRU) */
    int split = q->kept ? DX0 : G;
    if (w->grad) { /* dW_hh [G, H] += dy^T h_prev over all steps: step 0 from h0, the rest from out */
        sp_tape *t = r->tape;
        const int p = q->prec;
        sp__gemm_p(t, p, 1, 0, split, H, B, q->sv, (int)q->ss, h0->data, h0->stride, 1, w->grad, w->stride);
        if (T > 1)
            sp__gemm_p(t, p, 1, 0, split, H, (T - 1) * B, q->sv + (size_t)B * q->ss, (int)q->ss, out, H, 1, w->grad, w->stride);
        if (split < G) {
            sp_real *wg = w->grad + (size_t)split * w->stride;
            sp__gemm_p(t, p, 1, 0, G - split, H, B, q->ex, (int)q->es, h0->data, h0->stride, 1, wg, w->stride);
            if (T > 1)
                sp__gemm_p(t, p, 1, 0, G - split, H, (T - 1) * B, q->ex + (size_t)B * q->es, (int)q->es, out, H, 1, wg,
                           w->stride);
        }
    }
    if (b_hn && b_hn->grad) /* serial: every row adds into the same bias; dy's n block [2H, 3H) */
        for (size_t row = 0; row < (size_t)T * B; row++) {
            const sp_real *restrict e = 2 * H < split ? q->sv + row * q->ss + 2 * H : q->ex + row * q->es + (2 * H - split);
            for (int j = 0; j < H; j++) b_hn->grad[j] += e[j];
        }
}
