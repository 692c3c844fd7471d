/* SPDX-License-Identifier: MIT */
/* ctc.c - the connectionist temporal classification loss (Graves et al. 2006; ch. 7 of Graves
 * 2012) as one op, sp_ctc_loss: the negative log-probability of a label sequence summed over every
 * frame-level alignment to it, for B sequences of per-frame scores at once.
 *
 * The op takes logits and applies log_softmax itself (PyTorch's F.ctc_loss takes the log-probs:
 * sp_ctc_loss(x) is F.ctc_loss(F.log_softmax(x, -1)), values and gradients with respect to x).
 * Fused, the gradient is the familiar p - posterior: softmax(x)[t, k] minus the share of all
 * alignments that put class k at frame t, with no log_softmax node and no [T*B, C] log-prob
 * buffer in between.
 *
 * The recursions run over the label sequence with blanks around and between its labels
 * (l' = blank l1 blank l2 ... lL blank, S = 2L + 1 states), in log space and in double whatever
 * sp_real is, so long sequences neither underflow nor lose their small terms:
 *   alpha_t(s) = lp_t(l'_s) + lse(alpha_{t-1}(s), alpha_{t-1}(s-1), alpha_{t-1}(s-2) if l'_s is a
 *                label other than l'_{s-2})
 *   beta_t(s)  = lse over the same moves forward of beta_{t+1}(s') + lp_{t+1}(l'_{s'})
 * (beta without frame t's emission, so alpha_t(s) + beta_t(s) is the log-probability of all
 * alignments through state s at frame t). The forward pass keeps alpha; the backward pass walks
 * beta from the last frame down with two vectors and writes each frame's gradient as it goes.
 * Threads split the batch: each row is one thread's from start to end, and the reduction over rows
 * runs afterwards in row order, so the numbers do not depend on the thread count. */
#include "../autograd/tape_internal.h"

#include <float.h>
#include <omp.h>
#include <string.h>

typedef struct {
    int T, B, C, blank, reduction, zero_inf;
    int *in_len, *lab_len;  /* [B] */
    int *lab;               /* every row's labels, concatenated; row b from lab_off[b] */
    size_t *lab_off, *a_off; /* [B]: offsets of row b's labels and of its alpha [in_len x S] */
    double *alpha;
    double *lse;            /* [T*B]: log-sum-exp of each real frame's logits */
    double *nll;            /* [B]: each row's loss, +Inf where no alignment has probability > 0 */
    int max_S;
} ctc_saved;

static inline double lae(double a, double b)
{
    if (a < b) {
        double c = a;
        a = b, b = c;
    }
    return b == -INFINITY ? a : a + log1p(exp(b - a));
}

/* Class of state s of the extended sequence: blank at even s, label (s - 1) / 2 at odd s. */
static inline int ext(const int *lab, int blank, int s) { return s & 1 ? lab[s >> 1] : blank; }

/* Frames a row of L labels needs: one per label, and one more between equal neighbours. */
static int frames_needed(const int *lab, int L)
{
    int n = L;
    for (int i = 1; i < L; i++) n += lab[i] == lab[i - 1];
    return n;
}

/* log_softmax's normaliser of every real frame of row b. */
static void row_lse(const sp_tensor *x, const ctc_saved *s, int b)
{
    int C = s->C;
    for (int t = 0; t < s->in_len[b]; t++) {
        const sp_real *xr = sp_at(x, t * s->B + b, 0);
        double m = -DBL_MAX, sum = 0;
        for (int k = 0; k < C; k++) m = (double)xr[k] > m ? (double)xr[k] : m;
        for (int k = 0; k < C; k++) sum += exp((double)xr[k] - m);
        s->lse[(size_t)t * s->B + b] = m + log(sum);
    }
}

#define LP(t_, k_) ((double)*sp_at(x, (t_) * B + b, (k_)) - s->lse[(size_t)(t_) * B + b])

/* alpha of row b over its frames; returns its loss -log p(labels | x) (+Inf: no alignment). */
static double row_forward(const sp_tensor *x, const ctc_saved *s, int b)
{
    int B = s->B, Tb = s->in_len[b], L = s->lab_len[b], S = 2 * L + 1;
    const int *lab = s->lab + s->lab_off[b];
    if (Tb == 0) return L == 0 ? 0 : INFINITY;
    if (Tb < frames_needed(lab, L)) return INFINITY;
    row_lse(x, s, b);
    double *a = s->alpha + s->a_off[b];
    for (int j = 0; j < S; j++) a[j] = -INFINITY;
    a[0] = LP(0, s->blank);
    if (L > 0) a[1] = LP(0, lab[0]);
    for (int t = 1; t < Tb; t++) {
        const double *p = a + (size_t)(t - 1) * S;
        double *c = a + (size_t)t * S;
        for (int j = 0; j < S; j++) {
            double v = p[j];
            if (j >= 1) v = lae(v, p[j - 1]);
            if (j >= 2 && (j & 1) && lab[j >> 1] != lab[(j >> 1) - 1]) v = lae(v, p[j - 2]);
            c[j] = v == -INFINITY ? v : v + LP(t, ext(lab, s->blank, j));
        }
    }
    const double *e = a + (size_t)(Tb - 1) * S;
    return -(S > 1 ? lae(e[S - 1], e[S - 2]) : e[0]);
}

/* The gradient of row b's loss, times g, into x->grad: work holds 2 S + C doubles. */
static void row_backward(const sp_tensor *x, const ctc_saved *s, int b, double g, double *work)
{
    int B = s->B, C = s->C, Tb = s->in_len[b], L = s->lab_len[b], S = 2 * L + 1;
    const int *lab = s->lab + s->lab_off[b];
    const double *a = s->alpha + s->a_off[b];
    double nll = s->nll[b];
    double *be = work, *nb = work + S, *gam = work + 2 * S;
    for (int j = 0; j < S; j++) be[j] = -INFINITY;
    be[S - 1] = 0;
    if (S > 1) be[S - 2] = 0;
    for (int t = Tb - 1; t >= 0; t--) {
        const double *at = a + (size_t)t * S;
        for (int k = 0; k < C; k++) gam[k] = -INFINITY;
        for (int j = 0; j < S; j++) {
            int k = ext(lab, s->blank, j);
            gam[k] = lae(gam[k], at[j] + be[j]);
        }
        sp_real *dx = x->grad + (size_t)(t * B + b) * x->stride;
        for (int k = 0; k < C; k++) {
            double lp = LP(t, k);
            dx[k] += (sp_real)(g * (exp(lp) - exp(gam[k] + nll)));
        }
        if (t == 0) break;
        /* beta_{t-1}(j) from beta_t and frame t's emissions */
        for (int j = 0; j < S; j++) nb[j] = be[j] == -INFINITY ? be[j] : be[j] + LP(t, ext(lab, s->blank, j));
        for (int j = 0; j < S; j++) {
            double v = nb[j];
            if (j + 1 < S) v = lae(v, nb[j + 1]);
            if (j + 2 < S && ((j + 2) & 1) && lab[(j + 2) >> 1] != lab[j >> 1]) v = lae(v, nb[j + 2]);
            be[j] = v;
        }
    }
}
#undef LP

/* Threads for a pass over the batch: one per row at most, none beyond the first below the size
 * where a team pays (lattice cells and softmax elements, each an exp or a log). */
static int ctc_threads(const ctc_saved *s)
{
    size_t work = 0;
    for (int b = 0; b < s->B; b++) work += (size_t)s->in_len[b] * (2 * s->lab_len[b] + 1 + s->C);
    int nt = work >= SP_PAR_MIN_CELL_ELEMS ? sp__threads_now() : 1;
    return nt < s->B ? nt : s->B;
}

/* Row b's labels: at b * stride when padded, else at off (the lengths of the rows before it). */
static const int *row_labels(const int *labels, int stride, int b, size_t off)
{
    return labels ? labels + (stride ? (size_t)b * stride : off) : NULL;
}

static int ctc_check(sp_tape *t, const sp_tensor *x, int T, int B, const int *in_len, const int *labels,
                     const int *lab_len, const sp_ctc_opts *o)
{
    char msg[400];
    int C = x->cols;
    msg[0] = '\0';
    if (T < 1 || B < 1 || (long long)T * B != x->rows)
        snprintf(msg, sizeof msg, "logits \"%s\" [%d x %d] are not T*B = %d*%d rows", x->name, x->rows, C, T, B);
    else if (o->blank < 0 || o->blank >= C)
        snprintf(msg, sizeof msg, "blank %d is not one of the %d classes of \"%s\"", o->blank, C, x->name);
    else if ((unsigned)o->reduction > SP_CTC_NONE)
        snprintf(msg, sizeof msg, "reduction %d is not SP_CTC_MEAN, SP_CTC_SUM or SP_CTC_NONE", (int)o->reduction);
    else if (o->label_stride < 0)
        snprintf(msg, sizeof msg, "label_stride %d is negative", o->label_stride);
    else if (!lab_len)
        snprintf(msg, sizeof msg, "label lengths are NULL");
    size_t off = 0;
    for (int b = 0; !msg[0] && b < B; b++) {
        int Tb = in_len ? in_len[b] : T, L = lab_len[b];
        const int *lab = row_labels(labels, o->label_stride, b, off);
        if (Tb < 0 || Tb > T)
            snprintf(msg, sizeof msg, "input_lengths[%d] = %d is outside [0, T = %d]", b, Tb, T);
        else if (L < 0 || (o->label_stride && L > o->label_stride))
            snprintf(msg, sizeof msg, "label_lengths[%d] = %d is %s", b, L, L < 0 ? "negative" : "over label_stride");
        else if (L > 0 && !labels)
            snprintf(msg, sizeof msg, "labels are NULL and row %d has %d", b, L);
        for (int i = 0; !msg[0] && i < L; i++)
            if (lab[i] < 0 || lab[i] >= C || lab[i] == o->blank)
                snprintf(msg, sizeof msg, "label %d of row %d is %d: not a class of \"%s\" [%d x %d] other than the blank %d", i,
                         b, lab[i], x->name, x->rows, C, o->blank);
        if (!msg[0] && !o->zero_infinity && (Tb < frames_needed(lab, L)))
            snprintf(msg, sizeof msg,
                     "row %d has %d labels that need %d frames (a blank between equal neighbours) but %d frames: no "
                     "alignment, an infinite loss (zero_infinity makes it 0)",
                     b, L, frames_needed(lab, L), Tb);
        off += (size_t)L;
    }
    if (!msg[0]) return 1;
    sp_tape_fail(t, SP_ERR_ARG, "ctc_loss \"%s\": %s", sp__scope_name(t, "ctc_loss"), msg);
    return 0;
}

sp_tensor *sp_ctc_loss(sp_tape *t, sp_tensor *logits, int T, int B, const int *input_lengths, const int *labels,
                       const int *label_lengths, const sp_ctc_opts *opts)
{
    static const sp_ctc_opts defaults = {0};
    const sp_ctc_opts *o = opts ? opts : &defaults;
    if (!sp__ready(t, SP_OP_CTC_LOSS, &logits, 1)) return NULL;
    if (!ctc_check(t, logits, T, B, input_lengths, labels, label_lengths, o)) return NULL;
    sp_record *r = sp__record(t, SP_OP_CTC_LOSS, o->reduction == SP_CTC_NONE ? B : 1, 1, &logits, 1);
    if (!r) return NULL;
    ctc_saved *s = sp__alloc(t, sizeof *s);
    if (!s) return NULL;
    size_t n_lab = 0, n_alpha = 0;
    int max_S = 1;
    for (int b = 0; b < B; b++) {
        int S = 2 * label_lengths[b] + 1;
        n_lab += (size_t)label_lengths[b];
        n_alpha += (size_t)(input_lengths ? input_lengths[b] : T) * S;
        max_S = S > max_S ? S : max_S;
    }
    int C = logits->cols;
    *s = (ctc_saved){.T = T, .B = B, .C = C, .blank = o->blank, .reduction = o->reduction,
                     .zero_inf = o->zero_infinity != 0, .max_S = max_S};
    if (!(s->in_len = sp__alloc_raw(t, sizeof(int) * B)) || !(s->lab_len = sp__alloc_raw(t, sizeof(int) * B)) ||
        !(s->lab = sp__alloc_raw(t, sizeof(int) * (n_lab + 1))) ||
        !(s->lab_off = sp__alloc_raw(t, sizeof(size_t) * B)) || !(s->a_off = sp__alloc_raw(t, sizeof(size_t) * B)) ||
        !(s->alpha = sp__alloc_raw(t, sizeof(double) * (n_alpha + 1))) ||
        !(s->lse = sp__alloc_raw(t, sizeof(double) * (size_t)T * B)) || !(s->nll = sp__alloc_raw(t, sizeof(double) * B)))
        return NULL;
    size_t lo = 0, ao = 0;
    for (int b = 0; b < B; b++) {
        int L = label_lengths[b];
        const int *src = row_labels(labels, o->label_stride, b, lo);
        s->in_len[b] = input_lengths ? input_lengths[b] : T;
        s->lab_len[b] = L;
        s->lab_off[b] = lo;
        s->a_off[b] = ao;
        if (L) memcpy(s->lab + lo, src, sizeof(int) * L);
        lo += (size_t)L;
        ao += (size_t)s->in_len[b] * (2 * L + 1);
    }
    int nt = ctc_threads(s);
#pragma omp parallel for if (nt > 1) num_threads(nt) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) s->nll[b] = row_forward(logits, s, b);
    double sum = 0;
    for (int b = 0; b < B; b++) {
        double l = s->nll[b];
        if (l == INFINITY && s->zero_inf) l = 0;
        if (o->reduction == SP_CTC_NONE) r->out->data[b] = (sp_real)l;
        else sum += o->reduction == SP_CTC_MEAN ? l / (s->lab_len[b] > 0 ? s->lab_len[b] : 1) : l;
    }
    if (o->reduction != SP_CTC_NONE) r->out->data[0] = (sp_real)(o->reduction == SP_CTC_MEAN ? sum / B : sum);
    r->saved = s;
    return r->out;
}

/* d loss_b / d x[t, k] = softmax(x)[t, k] - sum over states j of class k of
 * exp(alpha_t(j) + beta_t(j) + loss_b), times the reduction's weight of row b; nothing for a row
 * whose loss is infinite (zero_infinity: no alignment, or a logit of -Inf on every one). */
void sp__ctc_loss_backward(sp_record *r)
{
    sp_tensor *x = r->in[0];
    if (!x->grad) return;
    const ctc_saved *s = r->saved;
    int nt = ctc_threads(s);
    size_t per = (size_t)2 * s->max_S + s->C;
    double *work = sp__scratch(r->tape, sizeof(double) * per * nt);
    if (!work) return;
#pragma omp parallel for if (nt > 1) num_threads(nt) schedule(dynamic, 1)
    for (int b = 0; b < s->B; b++) {
        if (s->in_len[b] == 0 || !(s->nll[b] < INFINITY)) continue;
        double g;
        if (s->reduction == SP_CTC_NONE) g = (double)r->out->grad[b];
        else if (s->reduction == SP_CTC_SUM) g = (double)r->out->grad[0];
        else g = (double)r->out->grad[0] / ((double)s->B * (s->lab_len[b] > 0 ? s->lab_len[b] : 1));
        row_backward(x, s, b, g, work + per * (size_t)omp_get_thread_num());
    }
}
