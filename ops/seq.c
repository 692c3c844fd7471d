/* SPDX-License-Identifier: MIT */
/* seq.c - a whole LSTM recurrence as one op: all T steps forward, all T steps back.
 *
 * As T separate steps (a matmul and an lstm_cell per step) a 1-layer LSTM puts 2T records on the
 * tape, opens 2T parallel regions per pass that each synchronise every thread, gives backward 2T
 * gate-gradient buffers to zero, and stacks copies of every step's rows for the weight gradient.
 * sp_lstm_seq does the same arithmetic (tests/test_seq_ops.c checks it against that per-step
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
 *    over all steps ([4H, T*B] x [T*B, H]) and dxp accumulates while dG is computed.
 */
#include "cell_rows.h"
#include "kernels.h"

#include <omp.h>
#include <string.h>

#define CHUNK 8 /* rows per unit of work: the packed micro-kernel's tile height */
/* Below this many multiply-adds per step a second thread costs more than it saves. */
#define SEQ_PARALLEL_MIN_MACS 262144

typedef struct {
    int T, B, H, nt;  /* steps, rows, hidden size, threads */
    int *len, *order; /* [B] real length per row; rows by decreasing length */
    sp_real *sv;      /* [T*B, 5H] i, f, g, o, tanh(c) per row and step (dG after backward) */
    sp_real *work;    /* per-thread buffers, `per` reals each */
    size_t per;
} seq_state;

/* Row slots of thread k: chunks k, k + nt, ... of `order`, so threads get rows of every length. */
static int my_rows(const seq_state *q, int k, int *rows)
{
    int n = 0;
    for (int c = k * CHUNK; c < q->B; c += q->nt * CHUNK)
        for (int j = c; j < c + CHUNK && j < q->B; j++) rows[n++] = q->order[j];
    return n;
}

/* G[m, N] (+)= A[m, K] op(W) on this thread: packed panels when there are any, else BLIS. */
static void step_gemm(int m, int N, int K, const sp_real *A, const float *panels, const sp_tensor *W, int trans,
                      sp_real *G, int accumulate)
{
#ifndef SP_USE_DOUBLE
    if (panels) {
        sp__panels_gemm(m, N, K, A, K, panels, G, N, accumulate);
        return;
    }
#endif
    (void)panels;
    sp__gemm_threads(0, trans, m, N, K, A, K, W->data, W->stride, accumulate ? 1 : 0, G, N, 1);
}

/* op(W) packed for step_gemm, or NULL (then step_gemm uses BLIS on W as stored). */
static const float *pack(sp_tape *t, const sp_tensor *W, int trans, int K, int N)
{
    size_t n = sp__panels_floats(K, N);
    float *p = n ? sp__alloc_raw(t, n * sizeof(float)) : NULL;
    if (p) sp__pack_panels(W, trans, K, N, p);
    return p;
}

static int threads_for(int B, int H)
{
    int nt = sp_get_threads(), chunks = (B + CHUNK - 1) / CHUNK;
    if ((double)B * H * 4 * H < SEQ_PARALLEL_MIN_MACS) nt = 1;
    return nt < chunks ? nt : chunks;
}

sp_tensor *sp_lstm_seq(sp_tape *t, sp_tensor *xp, sp_tensor *w_hh, sp_tensor *h0, sp_tensor *c0, int T,
                       const int *lengths)
{
    sp_tensor *in[4] = {xp, w_hh, h0, c0};
    if (!sp__ready(t, SP_OP_LSTM_SEQ, in, 4)) return NULL;
    int B = h0->rows, H = h0->cols;
    if (T < 1 || B < 1 || (size_t)T * B != (size_t)xp->rows) {
        sp_tape_fail(t, SP_ERR_SHAPE, "lstm_seq \"%s\": T = %d steps of B = %d rows need xp \"%s\" with T*B rows, it has %d",
                     sp__scope_name(t, "lstm_seq"), T, B, xp->name, xp->rows);
        return NULL;
    }
    if (xp->cols != 4 * H) {
        sp__shape_error(t, SP_OP_LSTM_SEQ, "xp must be [T*B x 4H] for h0 [B x H]", xp, h0);
        return NULL;
    }
    if (w_hh->rows != 4 * H || w_hh->cols != H) {
        sp__shape_error(t, SP_OP_LSTM_SEQ, "w_hh must be [4H x H] for h0 [B x H]", w_hh, h0);
        return NULL;
    }
    if (c0->rows != B || c0->cols != H) {
        sp__shape_error(t, SP_OP_LSTM_SEQ, "c0 must be [B x H] like h0", c0, h0);
        return NULL;
    }
    for (int b = 0; lengths && b < B; b++)
        if (lengths[b] < 0 || lengths[b] > T) {
            sp_tape_fail(t, SP_ERR_ARG, "lstm_seq \"%s\": lengths[%d] = %d is outside [0, T = %d]",
                         sp__scope_name(t, "lstm_seq"), b, lengths[b], T);
            return NULL;
        }
    sp_record *r = sp__record(t, SP_OP_LSTM_SEQ, 2 * (T + 1) * B, H, in, 4);
    seq_state *q = r ? sp__alloc(t, sizeof *q) : NULL;
    if (!q) return NULL;
    q->T = T, q->B = B, q->H = H, q->nt = threads_for(B, H);
    int maxr = ((B + CHUNK - 1) / CHUNK + q->nt - 1) / q->nt * CHUNK; /* most rows one thread holds */
    q->per = (size_t)maxr * 12 * H + 3 * (size_t)H;
    q->len = sp__alloc_raw(t, 2 * (size_t)B * sizeof(int));
    q->sv = sp__alloc_raw(t, (size_t)T * B * 5 * H * sizeof(sp_real));
    q->work = sp__alloc_raw(t, q->nt * q->per * sizeof(sp_real));
    int *rows = sp__alloc_raw(t, (size_t)q->nt * 2 * maxr * sizeof(int));
    const float *wp = pack(t, w_hh, 1, H, 4 * H); /* op(W) = W_hh^T [H, 4H] */
    if (!q->len || !q->sv || !q->work || !rows || sp_tape_status(t) != SP_OK) return NULL;
    r->saved = q;
    q->order = q->len + B;
    /* order: rows by decreasing length, stable (insertion sort: B is a batch, not a dataset) */
    for (int b = 0; b < B; b++) {
        q->len[b] = lengths ? lengths[b] : T;
        int j = b;
        while (j > 0 && q->len[q->order[j - 1]] < q->len[b]) q->order[j] = q->order[j - 1], j--;
        q->order[j] = b;
    }
    sp_real *out = r->out->data, *cout = out + (size_t)(T + 1) * B * H; /* h rows, then c rows */
#pragma omp parallel num_threads(q->nt)
    {
        int k = q->nt > 1 ? omp_get_thread_num() : 0;
        int *mine = rows + (size_t)k * 2 * maxr, *act = mine + maxr, n = my_rows(q, k, mine);
        sp_real *A = q->work + k * q->per, *G = A + (size_t)maxr * H;
        for (int s = 0; s < T; s++) {
            int m = 0;
            for (int i = 0; i < n; i++) {
                int b = mine[i];
                size_t at = (size_t)s * B + b;
                if (q->len[b] > s) {
                    act[m++] = b;
                    const sp_real *hp = s ? out + (at - B) * H : sp_at(h0, b, 0);
                    memcpy(A + (size_t)(m - 1) * H, hp, (size_t)H * sizeof(sp_real));
                    memcpy(G + (size_t)(m - 1) * 4 * H, sp_at(xp, s * B + b, 0), 4 * (size_t)H * sizeof(sp_real));
                } else { /* padding: output 0, nothing saved (so its gate gradient is 0 too) */
                    memset(out + at * H, 0, (size_t)H * sizeof(sp_real));
                    memset(cout + at * H, 0, (size_t)H * sizeof(sp_real));
                    memset(q->sv + ((size_t)s * B + b) * 5 * H, 0, 5 * (size_t)H * sizeof(sp_real));
                }
            }
            if (!m) continue;
            step_gemm(m, 4 * H, H, A, wp, w_hh, 1, G, 1); /* G = xp + h W_hh^T */
            for (int i = 0; i < m; i++) {
                int b = act[i];
                size_t at = (size_t)s * B + b;
                const sp_real *cp = s ? cout + (at - B) * H : sp_at(c0, b, 0);
                sp__lstm_row_fwd(G + (size_t)i * 4 * H, NULL, cp, q->sv + at * 5 * H, out + at * H, cout + at * H, H);
            }
        }
        for (int i = 0; i < n; i++) { /* final state of each row: its last real step */
            int b = mine[i];
            size_t fin = (size_t)T * B + b, last = (size_t)(q->len[b] - 1) * B + b;
            const size_t bytes = (size_t)H * sizeof(sp_real);
            memcpy(out + fin * H, q->len[b] ? out + last * H : sp_at(h0, b, 0), bytes);
            memcpy(cout + fin * H, q->len[b] ? cout + last * H : sp_at(c0, b, 0), bytes);
        }
    }
    return r->out;
}

/* Backward, step T-1 down to 0, each thread on its rows. Per row, the gradient reaching step s is
 * dh = dout_h[s] + dG[s+1] W_hh (carried), dc = dout_c[s] + dc[s+1] f[s+1] (carried), plus the
 * final state's gradient at the row's last real step. Then dW_hh += sum_s dG[s]^T h[s-1]. */
void sp__lstm_seq_backward(sp_record *r)
{
    seq_state *q = r->saved;
    sp_tensor *xp = r->in[0], *w = r->in[1], *h0 = r->in[2], *c0 = r->in[3];
    int T = q->T, B = q->B, H = q->H;
    const size_t CB = (size_t)(T + 1) * B * H; /* offset of the c rows */
    const sp_real *out = r->out->data, *dout = r->out->grad;
    int maxr = ((B + CHUNK - 1) / CHUNK + q->nt - 1) / q->nt * CHUNK;
    int *rows = sp__scratch(r->tape, (size_t)q->nt * 2 * maxr * sizeof(int));
    const float *wp = rows ? pack(r->tape, w, 0, 4 * H, H) : NULL; /* op(W) = W_hh [4H, H] */
    if (!rows || sp_tape_status(r->tape) != SP_OK) return;
#pragma omp parallel num_threads(q->nt)
    {
        int k = q->nt > 1 ? omp_get_thread_num() : 0;
        int *mine = rows + (size_t)k * 2 * maxr, *act = mine + maxr, n = my_rows(q, k, mine);
        sp_real *D = q->work + k * q->per;          /* [maxr, 4H] dG of the running rows */
        sp_real *DH = D + (size_t)maxr * 4 * H;     /* [maxr, H] dG W_hh */
        sp_real *dhc = DH + (size_t)maxr * H;       /* [maxr, H] carried dh, by slot */
        sp_real *dcc = dhc + (size_t)maxr * H;      /* [maxr, H] carried dc, by slot */
        sp_real *dh = dcc + (size_t)maxr * H, *dc = dh + H, *dcn = dc + H;
        memset(dhc, 0, 2 * (size_t)maxr * H * sizeof(sp_real));
        for (int s = T - 1; s >= 0; s--) {
            int m = 0;
            for (int i = 0; i < n; i++) {
                int b = mine[i];
                if (q->len[b] <= s) continue;
                size_t at = (size_t)s * B + b;
                const sp_real *g = dout + at * H, *gc = dout + CB + at * H;
                const sp_real *fin = dout + ((size_t)T * B + b) * H, *finc = fin + CB;
                int last = q->len[b] == s + 1;
                for (int j = 0; j < H; j++) {
                    dh[j] = g[j] + dhc[(size_t)i * H + j] + (last ? fin[j] : 0);
                    dcn[j] = gc[j] + dcc[(size_t)i * H + j] + (last ? finc[j] : 0);
                }
                sp_real *sv = q->sv + at * 5 * H, *da = D + (size_t)m * 4 * H;
                const sp_real *cp = s ? out + CB + (at - B) * H : sp_at(c0, b, 0);
                sp__lstm_row_bwd(sv, dh, dcn, cp, da, dc, H);
                for (int j = 0; j < H; j++) dcc[(size_t)i * H + j] = dc[j] * sv[H + j];
                memcpy(sv, da, 4 * (size_t)H * sizeof(sp_real)); /* dG replaces the gates it came from */
                if (xp->grad) {
                    sp_real *restrict x = xp->grad + ((size_t)s * B + b) * xp->stride;
                    for (int j = 0; j < 4 * H; j++) x[j] += da[j];
                }
                act[m++] = i;
            }
            if (!m) continue;
            step_gemm(m, H, 4 * H, D, wp, w, 0, DH, 0); /* dh[s-1] = dG[s] W_hh */
            for (int i = 0; i < m; i++)
                memcpy(dhc + (size_t)act[i] * H, DH + (size_t)i * H, (size_t)H * sizeof(sp_real));
        }
        for (int i = 0; i < n; i++) { /* what reaches the initial state */
            int b = mine[i];
            const sp_real *fin = dout + ((size_t)T * B + b) * H, *finc = fin + CB;
            int none = q->len[b] == 0; /* the final state is the initial one */
            if (h0->grad) {
                sp_real *d = h0->grad + (size_t)b * h0->stride;
                for (int j = 0; j < H; j++) d[j] += dhc[(size_t)i * H + j] + (none ? fin[j] : 0);
            }
            if (c0->grad) {
                sp_real *d = c0->grad + (size_t)b * c0->stride;
                for (int j = 0; j < H; j++) d[j] += dcc[(size_t)i * H + j] + (none ? finc[j] : 0);
            }
        }
    }
    if (w->grad) { /* dW_hh [4H, H] += dG^T h_prev over all steps: step 0 from h0, the rest from out */
        sp__gemm(1, 0, 4 * H, H, B, q->sv, 5 * H, h0->data, h0->stride, 1, w->grad, w->stride);
        if (T > 1) sp__gemm(1, 0, 4 * H, H, (T - 1) * B, q->sv + (size_t)B * 5 * H, 5 * H, out, H, 1, w->grad, w->stride);
    }
}
