/* SPDX-License-Identifier: MIT */
/* scan.c - the linear recurrence h_t = a_t * h_{t-1} + b_t (elementwise) over a whole sequence as
 * one op, forward and backward: the recurrence of minGRU and minLSTM (Feng et al. 2024), and of
 * any custom cell whose gates read only the input.
 *
 * Each of the B x H columns is an independent first-order recurrence. The B*H values of one step
 * are contiguous (rows t*B .. t*B+B-1), so the loops run step by step over a range of those
 * columns: every stream is read in long contiguous runs the prefetcher follows, and the state of
 * the range (a few KiB) stays in cache. (The first version ran one strip of 64 columns through all
 * T steps, jumping B*H values a step in five streams; this order made a whole minGRU training step
 * at T = 1024, B = 32, H = 256 about 5 % faster, measured on a busy machine.) Threads split the columns into contiguous ranges, so every thread count gives
 * the same bits. When the columns are too few for the team (batch 1, small H), time is cut
 * instead, one chunk per thread (Blelloch 1990; Martin & Cundy 2018): each chunk but the first
 * computes its summary from a zero state, the product of its a's and its end state; the summaries
 * are chained on one thread into each chunk's true starting state; then each chunk runs from that
 * state. That reads a and b twice, so on 2 threads it costs about what one thread does; it pays
 * from 3 threads on. Chunks change only rounding (products in another order).
 *
 * Lengths: a step t >= lengths[b] is padding for row b: its state stays and its output row is 0,
 * as in ops/seq.c. The output is [(T+1)*B, H]: h of every step, then each row's final state (the
 * state after its last real step; h0 when its length is 0).
 *
 * Backward is the same recurrence run in reverse on the gradient:
 *   g_t = dout_t + a_{t+1} g_{t+1} (g at the last real step adds the final state's gradient),
 *   da_t += g_t h_{t-1},  db_t += g_t,  dh0 += a_0 g_0.
 * It reads a, h0 and the output, never b (so b may be an SP_TRANSIENT node).
 *
 * The scan is memory-bound: 1 multiply-add per element forward and 3 backward against 3 streams
 * forward (a, b, h) and 5 backward (a, h, dh, da, db). */

#include "../autograd/tape_internal.h"
#include "vec.h"

#include <omp.h>
#include <string.h>

typedef struct {
    int T, B, H;
    int *len;  /* B lengths (T where the caller gave none) */
    int gated; /* sp_gated_scan: the inputs are z and c, a = 1 - sigmoid(z) and b = sigmoid(z) c */
    const sp_vec_kernels *V;
} scan_state;

/* The columns [u0, u1) of the flattened B*H of a step visit rows row0 .. row1-1; in row r the
 * columns [j0, j1). Every kernel below walks them this way, s the state (or gradient) of all B*H
 * columns, indexed r*H + j. */
#define FOR_ROWS(q, u0, u1)                                                                        \
    for (int r = (int)((u0) / (q)->H), r_end = (int)(((u1) + (q)->H - 1) / (q)->H); r < r_end; r++)
#define ROW_COLS(q, u0, u1, j0, j1)                                                                \
    int j0 = (size_t)r * (q)->H < (u0) ? (int)((u0) - (size_t)r * (q)->H) : 0;                    \
    int j1 = (size_t)(r + 1) * (q)->H > (u1) ? (int)((u1) - (size_t)r * (q)->H) : (q)->H

/* Forward over steps [t0, t1) and columns [u0, u1) from the state s (updated in place); writes
 * the output rows when out is not NULL. */
static void run_fwd(const scan_state *q, const sp_tensor *a, const sp_tensor *b, sp_real *out, int t0, int t1,
                    size_t u0, size_t u1, sp_real *s)
{
    int B = q->B, H = q->H;
    for (int t = t0; t < t1; t++)
        FOR_ROWS(q, u0, u1) {
            if (t >= q->len[r]) continue;
            ROW_COLS(q, u0, u1, j0, j1);
            int i = t * B + r;
            const sp_real *restrict ap = sp_at(a, i, 0), *restrict bp = sp_at(b, i, 0);
            sp_real *restrict h = s + (size_t)r * H;
            if (q->gated) {
                q->V->gscan_fwd(ap + j0, bp + j0, h + j0, out ? out + (size_t)i * H + j0 : NULL, j1 - j0);
                continue;
            }
            for (int j = j0; j < j1; j++) h[j] = ap[j] * h[j] + bp[j];
            if (out) memcpy(out + (size_t)i * H + j0, h + j0, (size_t)(j1 - j0) * sizeof(sp_real));
        }
}

/* A row's a and b, columns [j0, j1): the inputs themselves, or for the gated scan computed from z
 * and c into buf (2H values, the thread's own). */
static void row_ab(const scan_state *q, const sp_tensor *a, const sp_tensor *b, int i, int j0, int j1, sp_real *buf,
                   const sp_real **ap, const sp_real **bp)
{
    *ap = sp_at(a, i, 0), *bp = sp_at(b, i, 0);
    if (!q->gated) return;
    q->V->gscan_ab(*ap + j0, *bp + j0, buf + j0, buf + q->H + j0, j1 - j0);
    *ap = buf, *bp = buf + q->H;
}

/* The summary of steps [t0, t1): A = the product of the a's, E = the state reached from a zero
 * state (so the state after them is A * s + E for a starting state s). */
static void run_fwd_summary(const scan_state *q, const sp_tensor *a, const sp_tensor *b, int t0, int t1, size_t u0,
                            size_t u1, sp_real *A, sp_real *E, sp_real *buf)
{
    for (size_t u = u0; u < u1; u++) A[u] = 1, E[u] = 0;
    for (int t = t0; t < t1; t++)
        FOR_ROWS(q, u0, u1) {
            if (t >= q->len[r]) continue;
            ROW_COLS(q, u0, u1, j0, j1);
            const sp_real *ap, *bp;
            row_ab(q, a, b, t * q->B + r, j0, j1, buf, &ap, &bp);
            sp_real *restrict Ar = A + (size_t)r * q->H, *restrict Er = E + (size_t)r * q->H;
            for (int j = j0; j < j1; j++) Ar[j] *= ap[j], Er[j] = ap[j] * Er[j] + bp[j];
        }
}

/* Backward over steps [t0, t1), t descending, from g = the gradient arriving at each column's
 * state after step t1-1 from later steps (updated in place to what reaches the state before t0). */
static void run_bwd(const scan_state *q, const sp_tensor *a, const sp_tensor *b, const sp_tensor *h0,
                    const sp_real *out, const sp_real *dout, int t0, int t1, size_t u0, size_t u1, sp_real *g)
{
    int B = q->B, H = q->H;
    for (int t = t1 - 1; t >= t0; t--)
        FOR_ROWS(q, u0, u1) {
            if (t >= q->len[r]) continue;
            ROW_COLS(q, u0, u1, j0, j1);
            size_t i = (size_t)t * B + r;
            const sp_real *restrict ap = sp_at(a, (int)i, 0), *restrict dp = dout + i * H;
            const sp_real *restrict hp = t ? out + (i - B) * H : sp_at(h0, r, 0);
            sp_real *restrict gr = g + (size_t)r * H;
            sp_real *db = b->grad ? b->grad + i * b->stride : NULL, *da = a->grad ? a->grad + i * a->stride : NULL;
            if (q->gated) { /* a is z, b is c */
                q->V->gscan_bwd(ap + j0, sp_at(b, (int)i, 0) + j0, hp + j0, dp + j0, gr + j0, da ? da + j0 : NULL,
                                db ? db + j0 : NULL, j1 - j0);
                continue;
            }
            for (int j = j0; j < j1; j++) gr[j] += dp[j];
            if (db)
                for (int j = j0; j < j1; j++) db[j] += gr[j];
            if (da)
                for (int j = j0; j < j1; j++) da[j] += gr[j] * hp[j];
            for (int j = j0; j < j1; j++) gr[j] *= ap[j];
        }
}

/* The backward summary of steps [t0, t1): A = the product of the a's, E = the gradient reaching
 * the state before t0 from these steps' outputs alone (A * g + E for g arriving after t1-1). */
static void run_bwd_summary(const scan_state *q, const sp_tensor *a, const sp_tensor *b, const sp_real *dout, int t0,
                            int t1, size_t u0, size_t u1, sp_real *A, sp_real *E, sp_real *buf)
{
    for (size_t u = u0; u < u1; u++) A[u] = 1, E[u] = 0;
    for (int t = t1 - 1; t >= t0; t--)
        FOR_ROWS(q, u0, u1) {
            if (t >= q->len[r]) continue;
            ROW_COLS(q, u0, u1, j0, j1);
            size_t i = (size_t)t * q->B + r;
            const sp_real *ap, *bp, *restrict dp = dout + i * q->H;
            row_ab(q, a, b, (int)i, j0, j1, buf, &ap, &bp);
            sp_real *restrict Ar = A + (size_t)r * q->H, *restrict Er = E + (size_t)r * q->H;
            for (int j = j0; j < j1; j++) Ar[j] *= ap[j], Er[j] = ap[j] * (Er[j] + dp[j]);
        }
}

#define MIN_COLS 64 /* columns per thread below which time is cut instead */

/* Threads for a pass: one below the elementwise threshold (the scan streams like an add). */
static int scan_threads(const scan_state *q)
{
    return (size_t)q->T * q->B * q->H >= SP_PAR_MIN_ELEMS ? sp__threads_now() : 1;
}

static int chunked(const scan_state *q, int nt)
{
    return nt > 1 && (size_t)q->B * q->H < (size_t)MIN_COLS * nt && q->T >= 2 * nt;
}

/* Thread k of n's range of the n_cols columns, cut at multiples of 16 (whole cache lines). */
static void col_range(size_t n_cols, int k, int n, size_t *u0, size_t *u1)
{
    *u0 = k ? (n_cols * k / n + 15) / 16 * 16 : 0;
    *u1 = k + 1 < n ? (n_cols * (k + 1) / n + 15) / 16 * 16 : n_cols;
    if (*u0 > n_cols) *u0 = n_cols;
    if (*u1 > n_cols) *u1 = n_cols;
}

/* The steps of chunk c of nc. */
static void chunk_range(int c, int nc, int T, int *t0, int *t1)
{
    *t0 = (int)((long long)T * c / nc);
    *t1 = (int)((long long)T * (c + 1) / nc);
}

/* Forward over time chunks (too few columns for the team): see the header comment. S[c] is the
 * state at the end of chunk c. The final state lands in the output's last B rows. */
static int fwd_chunked(sp_tape *tp, const sp_tensor *a, const sp_tensor *b, const sp_tensor *h0, sp_real *out,
                       const scan_state *q, int nt)
{
    int T = q->T, B = q->B, H = q->H;
    size_t BH = (size_t)B * H;
    sp_real *A = sp__alloc_raw(tp, (3 * (size_t)nt * BH + 2 * (size_t)nt * H) * sizeof(sp_real));
    sp_real *E = A ? A + nt * BH : NULL, *S = E ? E + nt * BH : NULL, *buf = S ? S + nt * BH : NULL;
    if (!A) return 0;
#pragma omp parallel num_threads(nt)
    {
        int c = omp_get_thread_num(), nc = omp_get_num_threads(), t0, t1;
        chunk_range(c, nc, T, &t0, &t1);
        if (c == 0) { /* chunk 0 runs from h0; the others summarise */
            for (int r = 0; r < B; r++) memcpy(S + (size_t)r * H, sp_at(h0, r, 0), (size_t)H * sizeof(sp_real));
            run_fwd(q, a, b, out, t0, t1, 0, BH, S);
        } else {
            run_fwd_summary(q, a, b, t0, t1, 0, BH, A + c * BH, E + c * BH, buf + (size_t)c * 2 * H);
        }
#pragma omp barrier
#pragma omp single
        for (int k = 1; k + 1 < nc; k++) /* chain: the end of chunk k is A_k s_{k-1} + E_k */
            for (size_t u = 0; u < BH; u++) S[k * BH + u] = A[k * BH + u] * S[(k - 1) * BH + u] + E[k * BH + u];
        if (c > 0) { /* then each chunk runs from its true start, in its own (used) summary buffer */
            sp_real *h = A + c * BH;
            memcpy(h, S + (c - 1) * BH, BH * sizeof(sp_real));
            run_fwd(q, a, b, out, t0, t1, 0, BH, h);
            if (c + 1 == nc) memcpy(out + (size_t)T * BH, h, BH * sizeof(sp_real));
        } else if (nc == 1) {
            memcpy(out + (size_t)T * BH, S, BH * sizeof(sp_real));
        }
    }
    return 1;
}

/* sp_linear_scan and sp_gated_scan: the same checks, record and passes; op says which. */
static sp_tensor *scan(sp_tape *t, sp_op op, sp_tensor *a, sp_tensor *b, sp_tensor *h0, int T, const int *lengths)
{
    sp_tensor *in[3] = {a, b, h0};
    if (!sp__ready(t, op, in, 3)) return NULL;
    const char *name = sp_op_name(op);
    int B = h0->rows, H = h0->cols, gated = op == SP_OP_GATED_SCAN;
    if (T < 1 || (size_t)T * B != (size_t)a->rows) {
        sp_tape_fail(t, SP_ERR_SHAPE, "%s \"%s\": T = %d steps of B = %d rows need a \"%s\" with T*B rows, it has %d",
                     name, sp__scope_name(t, name), T, B, a->name, a->rows);
        return NULL;
    }
    if (a->cols != H) {
        sp__shape_error(t, op, gated ? "z must be [T*B x H] for h0 [B x H]" : "a must be [T*B x H] for h0 [B x H]", a, h0);
        return NULL;
    }
    if (b->rows != a->rows || b->cols != a->cols) {
        sp__shape_error(t, op, gated ? "c must have z's shape [T*B x H]" : "b must have a's shape [T*B x H]", b, a);
        return NULL;
    }
    for (int k = 0; lengths && k < B; k++)
        if (lengths[k] < 0 || lengths[k] > T) {
            sp_tape_fail(t, SP_ERR_ARG, "%s \"%s\": lengths[%d] = %d is outside [0, T = %d]", name,
                         sp__scope_name(t, name), k, lengths[k], T);
            return NULL;
        }
    sp_record *r = sp__record(t, op, (T + 1) * B, H, in, 3);
    scan_state *q = r ? sp__alloc(t, sizeof *q) : NULL;
    int *len = q ? sp__alloc_raw(t, (size_t)B * sizeof(int)) : NULL;
    if (!len) return NULL;
    q->T = T, q->B = B, q->H = H, q->len = len, q->gated = gated, q->V = sp__vec();
    for (int k = 0; k < B; k++) len[k] = lengths ? lengths[k] : T;
    r->saved = q;
    sp_real *out = r->out->data;
    size_t BH = (size_t)B * H;
    int nt = scan_threads(q);
    if (chunked(q, nt)) {
        if (!fwd_chunked(t, a, b, h0, out, q, nt)) return NULL;
    } else {
        sp_real *s = out + (size_t)T * BH; /* the final rows carry the state */
        for (int k = 0; k < B; k++) memcpy(s + (size_t)k * H, sp_at(h0, k, 0), (size_t)H * sizeof(sp_real));
#pragma omp parallel if (nt > 1) num_threads(nt)
        {
            size_t u0, u1;
            col_range(BH, omp_get_thread_num(), omp_get_num_threads(), &u0, &u1);
            run_fwd(q, a, b, out, 0, T, u0, u1, s);
        }
    }
    for (int k = 0; k < B; k++) /* padded steps output 0 */
        for (int st = len[k]; st < T; st++) memset(out + ((size_t)st * B + k) * H, 0, (size_t)H * sizeof(sp_real));
    return r->out;
}

sp_tensor *sp_linear_scan(sp_tape *t, sp_tensor *a, sp_tensor *b, sp_tensor *h0, int T, const int *lengths)
{
    return scan(t, SP_OP_LINEAR_SCAN, a, b, h0, T, lengths);
}

sp_tensor *sp_gated_scan(sp_tape *t, sp_tensor *z, sp_tensor *c, sp_tensor *h0, int T, const int *lengths)
{
    return scan(t, SP_OP_GATED_SCAN, z, c, h0, T, lengths);
}

/* Both ops' backward (the table names it for each). */
void sp__linear_scan_backward(sp_record *r)
{
    const scan_state *q = r->saved;
    sp_tensor *a = r->in[0], *b = r->in[1], *h0 = r->in[2];
    int T = q->T, B = q->B, H = q->H, nt = scan_threads(q);
    size_t BH = (size_t)B * H;
    const sp_real *out = r->out->data, *dout = r->out->grad;
    /* G[c]: the gradient arriving at the end of chunk c (one buffer without chunks) */
    int nb = chunked(q, nt) ? nt : 1;
    sp_real *A = sp__scratch(r->tape, (3 * (size_t)nb * BH + 2 * (size_t)nb * H) * sizeof(sp_real));
    sp_real *E = A ? A + nb * BH : NULL, *G = E ? E + nb * BH : NULL, *buf = G ? G + nb * BH : NULL;
    if (!A) return;
    if (nb == 1) {
        memcpy(G, dout + (size_t)T * BH, BH * sizeof(sp_real));
#pragma omp parallel if (nt > 1) num_threads(nt)
        {
            size_t u0, u1;
            col_range(BH, omp_get_thread_num(), omp_get_num_threads(), &u0, &u1);
            run_bwd(q, a, b, h0, out, dout, 0, T, u0, u1, G);
        }
    } else { /* time chunks, mirrored: the last chunk runs from the final state's gradient, the
              * others first summarise, then run from the gradient chained down to them */
#pragma omp parallel num_threads(nt)
        {
            int c = omp_get_thread_num(), nc = omp_get_num_threads(), last = nc - 1, t0, t1;
            chunk_range(c, nc, T, &t0, &t1);
            if (c == last) {
                memcpy(G + last * BH, dout + (size_t)T * BH, BH * sizeof(sp_real));
                run_bwd(q, a, b, h0, out, dout, t0, t1, 0, BH, G + last * BH);
            } else {
                run_bwd_summary(q, a, b, dout, t0, t1, 0, BH, A + c * BH, E + c * BH, buf + (size_t)c * 2 * H);
            }
#pragma omp barrier
#pragma omp single
            for (int k = last - 1; k >= 0; k--) /* what reaches the end of chunk k leaves chunk k + 1 */
                for (size_t u = 0; u < BH; u++)
                    G[k * BH + u] = k + 1 == last ? G[last * BH + u]
                                                  : A[(k + 1) * BH + u] * G[(k + 1) * BH + u] + E[(k + 1) * BH + u];
            if (c < last) run_bwd(q, a, b, h0, out, dout, t0, t1, 0, BH, G + c * BH);
        }
    }
    if (h0->grad)
        for (int k = 0; k < B; k++)
            for (int j = 0; j < H; j++) h0->grad[(size_t)k * h0->stride + j] += G[(size_t)k * H + j];
}
