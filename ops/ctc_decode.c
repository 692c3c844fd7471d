/* SPDX-License-Identifier: MIT */
/* ctc_decode.c - reading label sequences out of the per-frame scores a CTC-trained model gives
 * (no tape: inference only). sp_ctc_greedy takes the best class of every frame and collapses the
 * path (repeats merged, blanks dropped): fast, and the most likely path, but not the most likely
 * labelling, which sums over all of its paths. sp_ctc_beam_search looks for that one: CTC prefix
 * beam search (Graves 2012, ch. 7.5; Hannun et al. 2014), optionally with a language model's
 * log-probabilities added to each prefix's score (shallow fusion) through the sp_ctc_lm callbacks.
 *
 * A prefix carries two log-probabilities, of the paths so far that collapse to it and end in a
 * blank (pb) or in its last label (pnb): a label equal to the last one extends the prefix only
 * after a blank, and otherwise repeats it. Prefixes are nodes of a trie (parent, label), so a
 * prefix reached again is the same node, carrying its language-model score and state; only the
 * `beam` best candidates of a frame become nodes, so the trie has at most T * beam + 1 of them. The
 * language model's state is kept only for the prefixes in the beam, 2 * beam slots at most (the
 * old beam's and the new one's while the new prefixes' states are made from their parents'), and
 * the new prefixes of a frame go to the model in one call, so a model can run them as one batch. */
#include "../autograd/tape_internal.h"

#include <float.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Shapes and lengths of the decoders' inputs; sets sp_last_error naming `what`. */
static sp_status decode_check(const char *what, const sp_tensor *x, int T, int B, const int *in_len, int blank,
                              const int *out, const int *out_len)
{
    if (!x || !out || !out_len) return sp_fail(SP_ERR_ARG, "%s: scores, out and out_len must not be NULL", what);
    if (T < 1 || B < 1 || (long long)T * B != x->rows)
        return sp_fail(SP_ERR_SHAPE, "%s: scores \"%s\" [%d x %d] are not T*B = %d*%d rows", what, x->name, x->rows,
                       x->cols, T, B);
    if (blank < 0 || blank >= x->cols)
        return sp_fail(SP_ERR_ARG, "%s: blank %d is not one of the %d classes of \"%s\"", what, blank, x->cols, x->name);
    for (int b = 0; in_len && b < B; b++)
        if (in_len[b] < 0 || in_len[b] > T)
            return sp_fail(SP_ERR_ARG, "%s: input_lengths[%d] = %d is outside [0, T = %d]", what, b, in_len[b], T);
    return SP_OK;
}

/* log_softmax of one frame's scores into lp[C]. */
static void frame_log_softmax(const sp_real *x, int C, double *lp)
{
    double m = -DBL_MAX, s = 0;
    for (int k = 0; k < C; k++) m = (double)x[k] > m ? (double)x[k] : m;
    for (int k = 0; k < C; k++) s += exp((double)x[k] - m);
    double z = m + log(s);
    for (int k = 0; k < C; k++) lp[k] = (double)x[k] - z;
}

sp_status sp_ctc_greedy(const sp_tensor *scores, int T, int B, const int *input_lengths, int blank, int *out,
                        int *out_len, double *score)
{
    sp_status st = decode_check("ctc_greedy", scores, T, B, input_lengths, blank, out, out_len);
    if (st != SP_OK) return st;
    int C = scores->cols;
    for (int b = 0; b < B; b++) {
        int Tb = input_lengths ? input_lengths[b] : T, n = 0, prev = -1;
        double sum = 0;
        for (int t = 0; t < Tb; t++) {
            const sp_real *x = sp_at(scores, t * B + b, 0);
            int k = 0;
            double m = -DBL_MAX, s = 0;
            for (int j = 0; j < C; j++)
                if ((double)x[j] > m) m = (double)x[j], k = j;
            for (int j = 0; j < C; j++) s += exp((double)x[j] - m);
            sum -= log(s); /* log_softmax of the best class: x_k - m - log sum exp(x - m) */
            if (k != blank && k != prev) out[(size_t)b * T + n++] = k;
            prev = k;
        }
        out_len[b] = n;
        if (score) score[b] = sum;
    }
    return SP_OK;
}

/* ------------------------------------------------------------ prefix beam search */

static inline double lae(double a, double b)
{
    if (a < b) {
        double c = a;
        a = b, b = c;
    }
    return b == -INFINITY ? a : a + log1p(exp(b - a));
}

typedef struct {
    int parent, label, len; /* the root: parent and label -1, len 0 */
    int child, sibling;     /* first child and next sibling in the trie, -1 for none */
    int pos;                /* index in the current beam, -1 when not in it */
    int slot;               /* language-model state slot, -1 when none */
    double lm;              /* log P_lm(prefix) */
} pnode;

typedef struct {
    double score;
    int id; /* < n_cur: prefix id of the beam stays; else n_cur + i*C + c: prefix i extended by c */
} cand;

static int cand_better(const cand *a, const cand *b) { return a->score > b->score || (a->score == b->score && a->id < b->id); }
static int cand_order(const void *a, const void *b) { return cand_better(a, b) ? -1 : cand_better(b, a) ? 1 : 0; }

/* Keeps the k best of the candidates pushed: a heap whose root is the worst kept. */
static void heap_push(cand *h, int *n, int k, cand c)
{
    int i;
    if (*n < k) {
        i = (*n)++;
        while (i > 0 && cand_better(&h[(i - 1) / 2], &c)) h[i] = h[(i - 1) / 2], i = (i - 1) / 2;
        h[i] = c;
        return;
    }
    if (!cand_better(&c, &h[0])) return;
    i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        const cand *wc = &c;
        if (l < *n && cand_better(wc, &h[l])) w = l, wc = &h[l];
        if (r < *n && cand_better(wc, &h[r])) w = r;
        if (w == i) break;
        h[i] = h[w];
        i = w;
    }
    h[i] = c;
}

/* Working memory of one call, sized for its longest row. */
typedef struct {
    int C, K, use_lm;
    const sp_ctc_lm *lm;
    double alpha, beta;
    pnode *nodes;
    int n_nodes, cap_nodes;
    int *cur, *nxt, *child_pos, *free_slots, *adv_label, n_free;
    double *pb, *pnb, *npb, *npnb, *stay_b, *stay_nb, *ext, *lp;
    cand *heap;
    unsigned char *states; /* 2K slots of lm->state_size bytes */
    double *lmp;           /* 2K slots of C + 1 log-probabilities */
    const void **adv_from;
    void **adv_to;
    double **adv_logp;
} beam_work;

static void *state_of(beam_work *w, int slot) { return w->states + (size_t)slot * w->lm->state_size; }
static double *lmp_of(beam_work *w, int slot) { return w->lmp + (size_t)slot * (w->C + 1); }

static int add_node(beam_work *w, int parent, int label, int len, double lm)
{
    pnode *n = &w->nodes[w->n_nodes];
    *n = (pnode){.parent = parent, .label = label, .len = len, .child = -1, .sibling = -1, .pos = -1, .slot = -1, .lm = lm};
    if (parent >= 0) {
        n->sibling = w->nodes[parent].child;
        w->nodes[parent].child = w->n_nodes;
    }
    return w->n_nodes++;
}

/* The child of node p with label c, made if the trie has none. */
static int child_of(beam_work *w, int p, int c)
{
    for (int k = w->nodes[p].child; k >= 0; k = w->nodes[k].sibling)
        if (w->nodes[k].label == c) return k;
    const pnode *pn = &w->nodes[p];
    return add_node(w, p, c, pn->len + 1, w->use_lm ? pn->lm + lmp_of(w, pn->slot)[c] : 0);
}

/* alpha log P_lm + beta |prefix|: the fused part of a score. */
static double fused(const beam_work *w, double lm, int len) { return (w->use_lm ? w->alpha * lm : 0) + w->beta * len; }

/* One row: its best labelling into out (out_len, score). */
static sp_status beam_row(beam_work *w, const sp_tensor *x, int T, int B, int b, int Tb, int blank, int *out,
                          int *out_len, double *score)
{
    int C = w->C, K = w->K, n_cur = 1;
    w->n_nodes = 0;
    w->n_free = 0;
    for (int k = 2 * K - 1; w->use_lm && k >= 0; k--) w->free_slots[w->n_free++] = k;
    int root = add_node(w, -1, -1, 0, 0);
    w->cur[0] = root;
    w->nodes[root].pos = 0;
    w->pb[0] = 0, w->pnb[0] = -INFINITY;
    if (w->use_lm) {
        int sl = w->nodes[root].slot = w->free_slots[--w->n_free];
        sp_status st = w->lm->start(w->lm->user, state_of(w, sl), lmp_of(w, sl));
        if (st != SP_OK) return st;
    }
    for (int t = 0; t < Tb; t++) {
        frame_log_softmax(sp_at(x, t * B + b, 0), C, w->lp);
        for (int i = 0; i < n_cur; i++) w->stay_b[i] = w->stay_nb[i] = -INFINITY;
        for (size_t i = 0; i < (size_t)n_cur * C; i++) w->ext[i] = -INFINITY, w->child_pos[i] = -1;
        for (int j = 0; j < n_cur; j++) { /* prefixes whose parent is in the beam too: merge, don't extend */
            const pnode *n = &w->nodes[w->cur[j]];
            if (n->parent >= 0 && w->nodes[n->parent].pos >= 0) w->child_pos[(size_t)w->nodes[n->parent].pos * C + n->label] = j;
        }
        for (int i = 0; i < n_cur; i++) {
            double tot = lae(w->pb[i], w->pnb[i]);
            int last = w->nodes[w->cur[i]].label;
            w->stay_b[i] = lae(w->stay_b[i], tot + w->lp[blank]);
            if (last >= 0) w->stay_nb[i] = lae(w->stay_nb[i], w->pnb[i] + w->lp[last]);
            for (int c = 0; c < C; c++) {
                if (c == blank) continue;
                double v = (c == last ? w->pb[i] : tot) + w->lp[c];
                int j = w->child_pos[(size_t)i * C + c];
                if (j >= 0) w->stay_nb[j] = lae(w->stay_nb[j], v);
                else w->ext[(size_t)i * C + c] = v;
            }
        }
        int nh = 0;
        for (int i = 0; i < n_cur; i++) {
            double v = lae(w->stay_b[i], w->stay_nb[i]);
            const pnode *n = &w->nodes[w->cur[i]];
            if (v > -INFINITY) heap_push(w->heap, &nh, K, (cand){v + fused(w, n->lm, n->len), i});
        }
        for (int i = 0; i < n_cur; i++) {
            const pnode *n = &w->nodes[w->cur[i]];
            const double *lmp = w->use_lm ? lmp_of(w, n->slot) : NULL;
            for (int c = 0; c < C; c++) {
                double v = w->ext[(size_t)i * C + c];
                if (v > -INFINITY) heap_push(w->heap, &nh, K, (cand){v + fused(w, lmp ? n->lm + lmp[c] : 0, n->len + 1),
                                                                     n_cur + i * C + c});
            }
        }
        if (nh == 0)
            return sp_fail(SP_ERR_ARG, "ctc_beam_search: at frame %d of row %d every prefix has probability 0 (scores of -Inf or NaN)",
                           t, b);
        qsort(w->heap, (size_t)nh, sizeof(cand), cand_order);
        int n_adv = 0;
        for (int e = 0; e < nh; e++) {
            int id = w->heap[e].id, n;
            if (id < n_cur) {
                n = w->cur[id];
                w->npb[e] = w->stay_b[id], w->npnb[e] = w->stay_nb[id];
            } else {
                int i = (id - n_cur) / C, c = (id - n_cur) % C, p = w->cur[i];
                n = child_of(w, p, c);
                w->npb[e] = -INFINITY, w->npnb[e] = w->ext[(size_t)i * C + c];
                if (w->use_lm && w->nodes[n].slot < 0) {
                    int sl = w->nodes[n].slot = w->free_slots[--w->n_free];
                    w->adv_from[n_adv] = state_of(w, w->nodes[p].slot);
                    w->adv_label[n_adv] = c;
                    w->adv_to[n_adv] = state_of(w, sl);
                    w->adv_logp[n_adv++] = lmp_of(w, sl);
                }
            }
            w->nxt[e] = n;
        }
        if (n_adv > 0) {
            sp_status st = w->lm->advance(w->lm->user, n_adv, w->adv_from, w->adv_label, w->adv_to, w->adv_logp);
            if (st != SP_OK) return st;
        }
        for (int i = 0; i < n_cur; i++) w->nodes[w->cur[i]].pos = -1;
        for (int e = 0; e < nh; e++) w->nodes[w->nxt[e]].pos = e;
        for (int i = 0; i < n_cur; i++) { /* the language-model states of the prefixes that left the beam */
            pnode *n = &w->nodes[w->cur[i]];
            if (n->pos < 0 && n->slot >= 0) w->free_slots[w->n_free++] = n->slot, n->slot = -1;
        }
        int *sw = w->cur;
        w->cur = w->nxt, w->nxt = sw;
        double *d = w->pb;
        w->pb = w->npb, w->npb = d;
        d = w->pnb, w->pnb = w->npnb, w->npnb = d;
        n_cur = nh;
    }
    int best = -1;
    double best_score = -INFINITY;
    for (int i = 0; i < n_cur; i++) {
        const pnode *n = &w->nodes[w->cur[i]];
        double v = lae(w->pb[i], w->pnb[i]) + fused(w, w->use_lm ? n->lm + lmp_of(w, n->slot)[C] : 0, n->len);
        if (best < 0 || v > best_score) best = i, best_score = v;
    }
    int n = w->cur[best], len = w->nodes[n].len;
    for (int k = len - 1; k >= 0; k--, n = w->nodes[n].parent) out[(size_t)b * T + k] = w->nodes[n].label;
    out_len[b] = len;
    if (score) score[b] = best_score;
    return SP_OK;
}

sp_status sp_ctc_beam_search(const sp_tensor *scores, int T, int B, const int *input_lengths,
                             const sp_ctc_beam_opts *opts, int *out, int *out_len, double *score)
{
    static const sp_ctc_beam_opts defaults = {0};
    const sp_ctc_beam_opts *o = opts ? opts : &defaults;
    sp_status st = decode_check("ctc_beam_search", scores, T, B, input_lengths, o->blank, out, out_len);
    if (st != SP_OK) return st;
    if (o->beam < 0 || o->beam > SP_CTC_MAX_BEAM)
        return sp_fail(SP_ERR_ARG, "ctc_beam_search: beam %d is outside [1, %d] (0: %d)", o->beam, SP_CTC_MAX_BEAM,
                       SP_CTC_DEFAULT_BEAM);
    if (!isfinite(o->lm_weight) || !isfinite(o->insertion_bonus))
        return sp_fail(SP_ERR_ARG, "ctc_beam_search: lm_weight %g and insertion_bonus %g must be finite", o->lm_weight,
                       o->insertion_bonus);
    if (o->lm && (!o->lm->start || !o->lm->advance))
        return sp_fail(SP_ERR_ARG, "ctc_beam_search: the language model has no %s callback", !o->lm->start ? "start" : "advance");
    beam_work w = {.C = scores->cols, .K = o->beam ? o->beam : SP_CTC_DEFAULT_BEAM, .lm = o->lm,
                   .use_lm = o->lm && o->lm_weight != 0, .alpha = o->lm_weight, .beta = o->insertion_bonus};
    int C = w.C, K = w.K, Tmax = 0;
    for (int b = 0; b < B; b++) Tmax = (input_lengths ? input_lengths[b] : T) > Tmax ? (input_lengths ? input_lengths[b] : T) : Tmax;
    size_t KC = (size_t)K * C, ss = w.use_lm ? o->lm->state_size : 0;
    if ((long long)Tmax * K + 1 > INT_MAX || KC > INT_MAX)
        return sp_fail(SP_ERR_ARG, "ctc_beam_search: a beam of %d over %d frames of %d classes is too large", K, Tmax, C);
    w.cap_nodes = Tmax * K + 1;
    w.nodes = malloc(sizeof(pnode) * (size_t)w.cap_nodes);
    w.cur = malloc(sizeof(int) * (4 * (size_t)K + 2 * KC));
    w.pb = malloc(sizeof(double) * (6 * (size_t)K + KC + C));
    w.heap = malloc(sizeof(cand) * K);
    w.states = malloc(2 * (size_t)K * ss + 1);
    w.lmp = malloc(sizeof(double) * 2 * (size_t)K * (C + 1));
    w.adv_from = malloc(sizeof(void *) * K);
    w.adv_to = malloc(sizeof(void *) * K);
    w.adv_logp = malloc(sizeof(double *) * K);
    w.free_slots = malloc(sizeof(int) * 2 * K);
    w.adv_label = malloc(sizeof(int) * K);
    void *all[] = {w.nodes, w.cur, w.pb, w.heap, w.states, w.lmp, w.adv_from, w.adv_to, w.adv_logp, w.free_slots, w.adv_label};
    int ok = 1;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ok &= all[i] != NULL;
    if (!ok) st = sp_fail(SP_ERR_NOMEM, "ctc_beam_search: out of memory for a beam of %d over %d frames of %d classes", K, Tmax, C);
    else {
        int *ip = w.cur;
        w.nxt = ip + K, w.child_pos = ip + 2 * K; /* the int block: cur, nxt, child_pos [K*C], spare */
        double *dp = w.pb;
        w.pnb = dp + K, w.npb = dp + 2 * K, w.npnb = dp + 3 * K, w.stay_b = dp + 4 * K, w.stay_nb = dp + 5 * K;
        w.ext = dp + 6 * K, w.lp = dp + 6 * K + KC;
        for (int b = 0; b < B && st == SP_OK; b++) {
            int Tb = input_lengths ? input_lengths[b] : T;
            st = beam_row(&w, scores, T, B, b, Tb, o->blank, out, out_len, score);
        }
    }
    /* cur/nxt and pb/npb, pnb/npnb swap every frame: free the blocks, not the current pointers */
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    return st;
}
