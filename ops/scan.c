/* SPDX-License-Identifier: MIT */
/* scan.c - the linear recurrence h_t = a_t * h_{t-1} + b_t (elementwise) over a whole sequence as
 * one op, forward and backward: the recurrence of minGRU and minLSTM (Feng et al. 2024), and of
 * any custom cell whose gates read only the input.
 *
 * Each of the B x H columns is an independent first-order recurrence, so the work splits into
 * strips of columns (one row b, up to STRIP columns): a thread carries its strips through all T
 * steps, reading the rows of a step contiguously, and every thread count gives the same bits.
 * When the strips are fewer than the team (batch 1, small H) the time axis is cut instead, one
 * chunk per thread (Blelloch 1990; Martin & Cundy 2018): each chunk but the first first computes
 * its summary from a zero state, the product of its a's and its end state, the summaries are
 * chained on one thread into each chunk's true starting state, and each chunk then runs from that
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
 * It reads a, h0 and the output, never b (so b may be an SP_TRANSIENT node). */
#include "../autograd/tape_internal.h"

#include <omp.h>
#include <string.h>

#define STRIP 64 /* columns of a unit of work: one row b, up to this many of its H columns */

typedef struct {
    int T, B, H;
    int *len; /* B lengths (T where the caller gave none) */
} scan_state;

/* One strip forward over steps [t0, t1) of row b from state h[n] (updated in place); writes the
 * output rows when out is not NULL. t1 is already cut to the row's length. */
static void strip_fwd(const sp_tensor *a, const sp_tensor *b, sp_real *out, int B, int H, int row, int j0, int n,
                      int t0, int t1, sp_real *restrict h)
{
    for (int t = t0; t < t1; t++) {
        int i = t * B + row;
        const sp_real *restrict ap = sp_at(a, i, j0), *restrict bp = sp_at(b, i, j0);
        for (int j = 0; j < n; j++) h[j] = ap[j] * h[j] + bp[j];
        if (out) memcpy(out + (size_t)i * H + j0, h, (size_t)n * sizeof(sp_real));
    }
}

/* The summary of steps [t0, t1) of a strip: A = the product of the a's, E = the state reached
 * from a zero state (so the state after the chunk is A * s + E for a starting state s). */
static void strip_fwd_summary(const sp_tensor *a, const sp_tensor *b, int B, int row, int j0, int n, int t0, int t1,
                              sp_real *restrict A, sp_real *restrict E)
{
    for (int j = 0; j < n; j++) A[j] = 1, E[j] = 0;
    for (int t = t0; t < t1; t++) {
        const sp_real *restrict ap = sp_at(a, t * B + row, j0), *restrict bp = sp_at(b, t * B + row, j0);
        for (int j = 0; j < n; j++) A[j] *= ap[j], E[j] = ap[j] * E[j] + bp[j];
    }
}

/* One strip backward over steps [t0, t1) (t1 cut to the row's length), t descending, from g[n] =
 * the gradient arriving at h_{t1-1} from later steps (updated in place to what reaches h_{t0-1}). */
static void strip_bwd(const sp_tensor *a, const sp_tensor *b, const sp_tensor *h0, const sp_real *out,
                      const sp_real *dout, int B, int H, int row, int j0, int n, int t0, int t1, sp_real *restrict g)
{
    for (int t = t1 - 1; t >= t0; t--) {
        size_t i = (size_t)t * B + row;
        const sp_real *restrict ap = sp_at(a, (int)i, j0), *restrict dp = dout + i * H + j0;
        const sp_real *restrict hp = t ? out + (i - B) * H + j0 : sp_at(h0, row, j0);
        sp_real *db = b->grad ? b->grad + i * b->stride + j0 : NULL;
        sp_real *da = a->grad ? a->grad + i * a->stride + j0 : NULL;
        for (int j = 0; j < n; j++) g[j] += dp[j];
        if (db)
            for (int j = 0; j < n; j++) db[j] += g[j];
        if (da)
            for (int j = 0; j < n; j++) da[j] += g[j] * hp[j];
        for (int j = 0; j < n; j++) g[j] *= ap[j];
    }
}

/* The backward summary of steps [t0, t1): A = the product of the a's, E = the gradient reaching
 * h_{t0-1} from these steps' outputs alone (so what reaches it is A * g + E for g arriving at t1-1). */
static void strip_bwd_summary(const sp_tensor *a, const sp_real *dout, int B, int H, int row, int j0, int n, int t0,
                              int t1, sp_real *restrict A, sp_real *restrict E)
{
    for (int j = 0; j < n; j++) A[j] = 1, E[j] = 0;
    for (int t = t1 - 1; t >= t0; t--) {
        size_t i = (size_t)t * B + row;
        const sp_real *restrict ap = sp_at(a, (int)i, j0), *restrict dp = dout + i * H + j0;
        for (int j = 0; j < n; j++) A[j] *= ap[j], E[j] = ap[j] * (E[j] + dp[j]);
    }
}

/* Threads for a pass: one below the elementwise threshold (the scan streams like an add). */
static int scan_threads(int T, int B, int H)
{
    return (size_t)T * B * H >= SP_PAR_MIN_ELEMS ? sp__threads_now() : 1;
}

static int n_strips(int H) { return (H + STRIP - 1) / STRIP; }

/* The step range of chunk c of nc over T steps, cut to length L. */
static void chunk_range(int c, int nc, int T, int L, int *t0, int *t1)
{
    int s = (int)((long long)T * c / nc), e = (int)((long long)T * (c + 1) / nc);
    *t0 = s < L ? s : L;
    *t1 = e < L ? e : L;
}

/* Forward over time chunks (too few strips for the team): see the header comment. */
static int fwd_chunked(sp_tape *tp, const sp_tensor *a, const sp_tensor *b, const sp_tensor *h0, sp_real *out,
                       const scan_state *q, int nt)
{
    int T = q->T, B = q->B, H = q->H, ns = n_strips(H);
    size_t BH = (size_t)B * H;
    sp_real *A = sp__alloc_raw(tp, 3 * (size_t)nt * BH * sizeof(sp_real)), *E = A ? A + nt * BH : NULL;
    sp_real *S = E ? E + nt * BH : NULL; /* S[c]: the state at the end of chunk c */
    if (!A) return 0;
#pragma omp parallel num_threads(nt)
    {
        int c = omp_get_thread_num(), nc = omp_get_num_threads();
        for (int row = 0; row < B; row++) { /* chunk 0 runs from h0; the others summarise */
            int t0, t1;
            chunk_range(c, nc, T, q->len[row], &t0, &t1);
            sp_real *h = S + (size_t)row * H;
            if (c == 0) memcpy(h, sp_at(h0, row, 0), (size_t)H * sizeof(sp_real));
            for (int s = 0; s < ns; s++) {
                int j0 = s * STRIP, n = H - j0 < STRIP ? H - j0 : STRIP;
                size_t o = c * BH + (size_t)row * H + j0;
                if (c == 0) strip_fwd(a, b, out, B, H, row, j0, n, t0, t1, h + j0);
                else strip_fwd_summary(a, b, B, row, j0, n, t0, t1, A + o, E + o);
            }
        }
#pragma omp barrier
#pragma omp single
        for (int k = 1; k + 1 < nc; k++) /* chain: the end of chunk k is A_k s_{k-1} + E_k */
            for (size_t j = 0; j < BH; j++) S[k * BH + j] = A[k * BH + j] * S[(k - 1) * BH + j] + E[k * BH + j];
        for (int row = 0; c > 0 && row < B; row++) { /* then each chunk runs from its true start */
            int t0, t1;
            chunk_range(c, nc, T, q->len[row], &t0, &t1);
            sp_real *h = A + c * BH + (size_t)row * H; /* chunk c's own buffer, its summary used */
            memcpy(h, S + (c - 1) * BH + (size_t)row * H, (size_t)H * sizeof(sp_real));
            for (int s = 0; s < ns; s++) {
                int j0 = s * STRIP, n = H - j0 < STRIP ? H - j0 : STRIP;
                strip_fwd(a, b, out, B, H, row, j0, n, t0, t1, h + j0);
            }
            if (c + 1 == nc) memcpy(out + ((size_t)T * B + row) * H, h, (size_t)H * sizeof(sp_real));
        }
        if (nc == 1) memcpy(out + (size_t)T * B * H, S, BH * sizeof(sp_real));
    }
    return 1;
}

sp_tensor *sp_linear_scan(sp_tape *t, sp_tensor *a, sp_tensor *b, sp_tensor *h0, int T, const int *lengths)
{
    sp_tensor *in[3] = {a, b, h0};
    if (!sp__ready(t, SP_OP_LINEAR_SCAN, in, 3)) return NULL;
    const char *name = sp_op_name(SP_OP_LINEAR_SCAN);
    int B = h0->rows, H = h0->cols;
    if (T < 1 || (size_t)T * B != (size_t)a->rows) {
        sp_tape_fail(t, SP_ERR_SHAPE, "%s \"%s\": T = %d steps of B = %d rows need a \"%s\" with T*B rows, it has %d",
                     name, sp__scope_name(t, name), T, B, a->name, a->rows);
        return NULL;
    }
    if (a->cols != H) {
        sp__shape_error(t, SP_OP_LINEAR_SCAN, "a must be [T*B x H] for h0 [B x H]", a, h0);
        return NULL;
    }
    if (b->rows != a->rows || b->cols != a->cols) {
        sp__shape_error(t, SP_OP_LINEAR_SCAN, "b must have a's shape [T*B x H]", b, a);
        return NULL;
    }
    for (int k = 0; lengths && k < B; k++)
        if (lengths[k] < 0 || lengths[k] > T) {
            sp_tape_fail(t, SP_ERR_ARG, "%s \"%s\": lengths[%d] = %d is outside [0, T = %d]", name,
                         sp__scope_name(t, name), k, lengths[k], T);
            return NULL;
        }
    sp_record *r = sp__record(t, SP_OP_LINEAR_SCAN, (T + 1) * B, H, in, 3);
    scan_state *q = r ? sp__alloc(t, sizeof *q) : NULL;
    int *len = q ? sp__alloc_raw(t, (size_t)B * sizeof(int)) : NULL;
    if (!len) return NULL;
    q->T = T, q->B = B, q->H = H, q->len = len;
    for (int k = 0; k < B; k++) len[k] = lengths ? lengths[k] : T;
    r->saved = q;
    sp_real *out = r->out->data;
    int nt = scan_threads(T, B, H), units = B * n_strips(H);
    if (units < nt && T >= 2 * nt) {
        if (!fwd_chunked(t, a, b, h0, out, q, nt)) return NULL;
    } else {
#pragma omp parallel for if (nt > 1) num_threads(nt) schedule(static)
        for (int u = 0; u < units; u++) {
            int row = u / n_strips(H), j0 = u % n_strips(H) * STRIP, n = H - j0 < STRIP ? H - j0 : STRIP;
            sp_real h[STRIP];
            memcpy(h, sp_at(h0, row, j0), (size_t)n * sizeof(sp_real));
            strip_fwd(a, b, out, B, H, row, j0, n, 0, len[row], h);
            memcpy(out + ((size_t)T * B + row) * H + j0, h, (size_t)n * sizeof(sp_real));
        }
    }
    for (int row = 0; row < B; row++) /* padded steps output 0 */
        for (int s = len[row]; s < T; s++) memset(out + ((size_t)s * B + row) * H, 0, (size_t)H * sizeof(sp_real));
    return r->out;
}

void sp__linear_scan_backward(sp_record *r)
{
    const scan_state *q = r->saved;
    sp_tensor *a = r->in[0], *b = r->in[1], *h0 = r->in[2];
    int T = q->T, B = q->B, H = q->H;
    size_t BH = (size_t)B * H;
    const sp_real *out = r->out->data, *dout = r->out->grad;
    int nt = scan_threads(T, B, H), units = B * n_strips(H);
    if (units >= nt || T < 2 * nt) {
#pragma omp parallel for if (nt > 1) num_threads(nt) schedule(static)
        for (int u = 0; u < units; u++) {
            int row = u / n_strips(H), j0 = u % n_strips(H) * STRIP, n = H - j0 < STRIP ? H - j0 : STRIP;
            sp_real g[STRIP];
            memcpy(g, dout + ((size_t)T * B + row) * H + j0, (size_t)n * sizeof(sp_real));
            strip_bwd(a, b, h0, out, dout, B, H, row, j0, n, 0, q->len[row], g);
            if (h0->grad)
                for (int j = 0; j < n; j++) h0->grad[(size_t)row * h0->stride + j0 + j] += g[j];
        }
        return;
    }
    /* time chunks, mirrored: the last chunk runs from the final state's gradient, the others
     * first summarise, then run from the gradient chained down to them */
    sp_real *A = sp__scratch(r->tape, 3 * (size_t)nt * BH * sizeof(sp_real)), *E = A ? A + nt * BH : NULL;
    sp_real *G = E ? E + nt * BH : NULL; /* G[c]: the gradient arriving at chunk c's last step */
    if (!A) return;
#pragma omp parallel num_threads(nt)
    {
        int c = omp_get_thread_num(), nc = omp_get_num_threads(), last = nc - 1;
        for (int row = 0; c < last && row < B; row++) {
            int t0, t1;
            chunk_range(c, nc, T, q->len[row], &t0, &t1);
            for (int s = 0; s < n_strips(H); s++) {
                int j0 = s * STRIP, n = H - j0 < STRIP ? H - j0 : STRIP;
                strip_bwd_summary(a, dout, B, H, row, j0, n, t0, t1, A + c * BH + (size_t)row * H + j0,
                                  E + c * BH + (size_t)row * H + j0);
            }
        }
        if (c == last) {
            sp_real *g = G + last * BH;
            memcpy(g, dout + (size_t)T * B * H, BH * sizeof(sp_real));
            for (int row = 0; row < B; row++) {
                int t0, t1;
                chunk_range(last, nc, T, q->len[row], &t0, &t1);
                for (int s = 0; s < n_strips(H); s++) {
                    int j0 = s * STRIP, n = H - j0 < STRIP ? H - j0 : STRIP;
                    strip_bwd(a, b, h0, out, dout, B, H, row, j0, n, t0, t1, g + (size_t)row * H + j0);
                }
            }
        }
#pragma omp barrier
#pragma omp single
        for (int k = last - 1; k >= 0; k--) /* what reaches chunk k's last step leaves chunk k + 1 */
            if (k + 1 == last) {
                memcpy(G + k * BH, G + last * BH, BH * sizeof(sp_real));
            } else {
                for (size_t j = 0; j < BH; j++) G[k * BH + j] = A[(k + 1) * BH + j] * G[(k + 1) * BH + j] + E[(k + 1) * BH + j];
            }
        for (int row = 0; c < last && row < B; row++) {
            int t0, t1;
            chunk_range(c, nc, T, q->len[row], &t0, &t1);
            for (int s = 0; s < n_strips(H); s++) {
                int j0 = s * STRIP, n = H - j0 < STRIP ? H - j0 : STRIP;
                strip_bwd(a, b, h0, out, dout, B, H, row, j0, n, t0, t1, G + c * BH + (size_t)row * H + j0);
            }
        }
    }
    if (h0->grad)
        for (int row = 0; row < B; row++)
            for (int j = 0; j < H; j++) h0->grad[(size_t)row * h0->stride + j] += G[(size_t)row * H + j];
}
