/* SPDX-License-Identifier: MIT */
/* crf.c - the linear-chain CRF (Lafferty et al. 2001) as an output layer for taggers: the
 * negative log-likelihood op sp_crf_nll (forward algorithm in the forward pass, forward-backward
 * marginals in its backward kernel) and Viterbi decoding sp_crf_decode (no tape: inference only)
 * with optional masks of allowed transitions, e.g. the BIO rule that I-X follows B-X or I-X.
 *
 * Scores of a tag path y over the L real steps of one sequence (emissions e = [T*B, K], row t*B + b):
 *   s(y) = start[y_0] + sum_t e[t, y_t] + sum_{t>0} trans[y_{t-1}, y_t] + end[y_{L-1}]
 * and nll = log sum_y exp s(y) - s(gold). All of it runs in double whatever sp_real is: the
 * log-sum-exps over K tags and T steps are where float loses most. */
#include "../autograd/tape_internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int T, B, K, count;
    int *tags, *len;  /* [T*B] gold (copied), [B] lengths */
    double *alpha;    /* [T*B*K] forward log-scores, row (t*B + b) */
    double *logz;     /* [B] */
} crf_saved;

static double lse(const double *v, int n)
{
    double m = -DBL_MAX;
    for (int i = 0; i < n; i++) m = v[i] > m ? v[i] : m;
    if (m == -DBL_MAX) return m;
    double s = 0;
    for (int i = 0; i < n; i++) s += exp(v[i] - m);
    return m + log(s);
}

static int crf_check(sp_tape *t, const char *what, const sp_tensor *emit, const sp_tensor *trans,
                     const sp_tensor *start, const sp_tensor *end, const int *lengths, int T, int B)
{
    char msg[400];
    int K = emit->cols;
    msg[0] = '\0';
    if (T < 1 || B < 1 || (long long)T * B != emit->rows)
        snprintf(msg, sizeof msg, "emissions \"%s\" [%d x %d] are not T*B = %d*%d rows", emit->name, emit->rows,
                 emit->cols, T, B);
    else if (trans->rows != K || trans->cols != K)
        snprintf(msg, sizeof msg, "transitions \"%s\" [%d x %d] must be [K x K] for emissions \"%s\" [%d x %d]",
                 trans->name, trans->rows, trans->cols, emit->name, emit->rows, K);
    else if (start->rows != 1 || start->cols != K || end->rows != 1 || end->cols != K)
        snprintf(msg, sizeof msg, "start \"%s\" [%d x %d] and end \"%s\" [%d x %d] must be rows [1 x %d]", start->name,
                 start->rows, start->cols, end->name, end->rows, end->cols, K);
    for (int b = 0; !msg[0] && lengths && b < B; b++)
        if (lengths[b] < 0 || lengths[b] > T)
            snprintf(msg, sizeof msg, "lengths[%d] = %d is outside [0, T = %d]", b, lengths[b], T);
    if (!msg[0]) return 1;
    if (t) sp_tape_fail(t, SP_ERR_SHAPE, "%s \"%s\": %s", what, sp__scope_name(t, what), msg);
    else sp_fail(SP_ERR_SHAPE, "%s: %s", what, msg);
    return 0;
}

#define E(t_, b_, j_) ((double)*sp_at(emit, (t_) * B + (b_), (j_)))
#define TR(i_, j_) ((double)*sp_at(trans, (i_), (j_)))

sp_tensor *sp_crf_nll(sp_tape *t, sp_tensor *emit, sp_tensor *trans, sp_tensor *start, sp_tensor *end,
                      const int *tags, const int *lengths, int T, int B)
{
    sp_tensor *in[4] = {emit, trans, start, end};
    if (!sp__ready(t, SP_OP_CRF_NLL, in, 4)) return NULL;
    if (!tags) {
        sp_tape_fail(t, SP_ERR_ARG, "crf_nll \"%s\": tags are NULL", sp__scope_name(t, "crf_nll"));
        return NULL;
    }
    if (!crf_check(t, "crf_nll", emit, trans, start, end, lengths, T, B)) return NULL;
    int K = emit->cols;
    for (int b = 0; b < B; b++)
        for (int s = 0; s < (lengths ? lengths[b] : T); s++)
            if (tags[s * B + b] < 0 || tags[s * B + b] >= K) {
                sp_tape_fail(t, SP_ERR_ARG, "crf_nll \"%s\": tag %d at step %d of sequence %d is not one of the %d tags of \"%s\"",
                             sp__scope_name(t, "crf_nll"), tags[s * B + b], s, b, K, emit->name);
                return NULL;
            }
    sp_record *r = sp__record(t, SP_OP_CRF_NLL, 1, 1, in, 4);
    if (!r) return NULL;
    crf_saved *sv = sp__alloc(t, sizeof *sv);
    int N = T * B;
    if (!sv || !(sv->tags = sp__alloc(t, sizeof(int) * N)) || !(sv->len = sp__alloc(t, sizeof(int) * B)) ||
        !(sv->alpha = sp__alloc(t, sizeof(double) * N * K)) || !(sv->logz = sp__alloc(t, sizeof(double) * B)))
        return NULL;
    sv->T = T, sv->B = B, sv->K = K, sv->count = 0;
    memcpy(sv->tags, tags, sizeof(int) * N);
    double *tmp = sp__scratch(t, sizeof(double) * K);
    if (!tmp) return NULL;
    double sum = 0;
    for (int b = 0; b < B; b++) {
        int L = sv->len[b] = lengths ? lengths[b] : T;
        if (L == 0) continue;
        sv->count++;
        double *a = sv->alpha + (size_t)b * K;
        for (int j = 0; j < K; j++) a[j] = (double)start->data[j] + E(0, b, j);
        for (int s = 1; s < L; s++) {
            double *prev = sv->alpha + ((size_t)(s - 1) * B + b) * K, *cur = sv->alpha + ((size_t)s * B + b) * K;
            for (int j = 0; j < K; j++) {
                for (int i = 0; i < K; i++) tmp[i] = prev[i] + TR(i, j);
                cur[j] = lse(tmp, K) + E(s, b, j);
            }
        }
        double *last = sv->alpha + ((size_t)(L - 1) * B + b) * K;
        for (int j = 0; j < K; j++) tmp[j] = last[j] + (double)end->data[j];
        sv->logz[b] = lse(tmp, K);
        int y = tags[b];
        double gold = (double)start->data[y] + E(0, b, y);
        for (int s = 1; s < L; s++) {
            int yp = y;
            y = tags[s * B + b];
            gold += TR(yp, y) + E(s, b, y);
        }
        gold += (double)end->data[y];
        sum += sv->logz[b] - gold;
    }
    r->saved = sv;
    r->out->data[0] = (sp_real)(sum / (sv->count > 0 ? sv->count : 1));
    return r->out;
}

/* d nll / d e[t, j] = P(y_t = j) - [gold_t = j], d / d trans[i, j] = sum_t P(y_{t-1} = i, y_t = j)
 * - gold count, start and end alike, from alpha and beta (the backward log-scores). */
void sp__crf_nll_backward(sp_record *r)
{
    sp_tensor *emit = r->in[0], *trans = r->in[1], *start = r->in[2], *end = r->in[3];
    const crf_saved *sv = r->saved;
    int T = sv->T, B = sv->B, K = sv->K;
    (void)T;
    if (sv->count == 0) return;
    double g = (double)r->out->grad[0] / sv->count;
    double *beta = sp__scratch(r->tape, sizeof(double) * ((size_t)T * K + K));
    if (!beta) return;
    double *tmp = beta + (size_t)T * K;
    for (int b = 0; b < B; b++) {
        int L = sv->len[b];
        if (L == 0) continue;
        double z = sv->logz[b];
        for (int i = 0; i < K; i++) beta[(size_t)(L - 1) * K + i] = (double)end->data[i];
        for (int s = L - 2; s >= 0; s--)
            for (int i = 0; i < K; i++) {
                for (int j = 0; j < K; j++) tmp[j] = TR(i, j) + E(s + 1, b, j) + beta[(size_t)(s + 1) * K + j];
                beta[(size_t)s * K + i] = lse(tmp, K);
            }
        for (int s = 0; s < L; s++) {
            const double *a = sv->alpha + ((size_t)s * B + b) * K, *be = beta + (size_t)s * K;
            int y = sv->tags[s * B + b];
            for (int j = 0; j < K; j++) {
                double p = exp(a[j] + be[j] - z) - (j == y);
                if (emit->grad) emit->grad[(size_t)(s * B + b) * emit->stride + j] += (sp_real)(g * p);
                if (s == 0 && start->grad) start->grad[j] += (sp_real)(g * p);
                if (s == L - 1 && end->grad) end->grad[j] += (sp_real)(g * (exp(a[j] + be[j] - z) - (j == y)));
            }
            if (s == 0 || !trans->grad) continue;
            const double *ap = sv->alpha + ((size_t)(s - 1) * B + b) * K;
            for (int i = 0; i < K; i++)
                for (int j = 0; j < K; j++) {
                    double p = exp(ap[i] + TR(i, j) + E(s, b, j) + be[j] - z);
                    trans->grad[(size_t)i * trans->stride + j] += (sp_real)(g * p);
                }
            trans->grad[(size_t)sv->tags[(s - 1) * B + b] * trans->stride + y] -= (sp_real)g;
        }
    }
}

sp_status sp_crf_decode(const sp_tensor *emit, const sp_tensor *trans, const sp_tensor *start, const sp_tensor *end,
                        const int *lengths, int T, int B, const unsigned char *allowed,
                        const unsigned char *allowed_start, int *path, double *score)
{
    if (!emit || !trans || !start || !end || !path)
        return sp_fail(SP_ERR_ARG, "crf_decode: emissions, transitions, start, end and path must not be NULL");
    if (!crf_check(NULL, "crf_decode", emit, trans, start, end, lengths, T, B)) return sp_last_status();
    int K = emit->cols;
    double *v = malloc(sizeof(double) * 2 * K);
    int *bp = malloc(sizeof(int) * (size_t)T * K);
    if (!v || !bp) {
        free(v), free(bp);
        return sp_fail(SP_ERR_NOMEM, "crf_decode: out of memory for %d steps x %d tags", T, K);
    }
    sp_status st = SP_OK;
    for (int b = 0; b < B && st == SP_OK; b++) {
        int L = lengths ? lengths[b] : T;
        for (int s = 0; s < T; s++) path[s * B + b] = -1;
        if (score) score[b] = 0;
        if (L == 0) continue;
        double *cur = v, *nxt = v + K;
        for (int j = 0; j < K; j++)
            cur[j] = allowed_start && !allowed_start[j] ? -INFINITY : (double)start->data[j] + E(0, b, j);
        for (int s = 1; s < L; s++) {
            for (int j = 0; j < K; j++) {
                double best = -INFINITY;
                int arg = -1;
                for (int i = 0; i < K; i++) {
                    if (allowed && !allowed[i * K + j]) continue;
                    double x = cur[i] + TR(i, j);
                    if (x > best) best = x, arg = i;
                }
                nxt[j] = best + E(s, b, j);
                bp[(size_t)s * K + j] = arg;
            }
            double *sw = cur;
            cur = nxt, nxt = sw;
        }
        int y = -1;
        double best = -INFINITY;
        for (int j = 0; j < K; j++)
            if (cur[j] + (double)end->data[j] > best) best = cur[j] + (double)end->data[j], y = j;
        if (y < 0) {
            st = sp_fail(SP_ERR_ARG, "crf_decode: sequence %d has no path the allowed transitions permit", b);
            break;
        }
        if (score) score[b] = best;
        for (int s = L - 1; s >= 0; s--) {
            path[s * B + b] = y;
            if (s > 0) y = bp[(size_t)s * K + y];
        }
    }
    free(v), free(bp);
    return st;
}
