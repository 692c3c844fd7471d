/* SPDX-License-Identifier: MIT */
/* step_gemms.h - the matrix products of one char-LM training step, listed once so that the bench
 * (which divides their FLOPs by the step time) and gemm_ceiling (which times each shape on its
 * own) count exactly the same work.
 *
 * The model is the peer's: one-hot [T*B, V] -> L layers of RNN/GRU/LSTM/minGRU/minLSTM (optionally both
 * directions) -> linear head [H*D, V]. "Model FLOPs" are 2*M*N*K per product, the standard count:
 * the recurrent product is counted at every step (the peer runs it on the zero state at t = 0 too),
 * and elementwise work (gates, softmax, Adam) is left out, so GFLOP/s here means useful GEMM work
 * per second. Backward doubles every forward product (d input and d weight) except the
 * gradient into the one-hot input, which nobody needs.
 */
#ifndef SPOOL_BENCH_STEP_GEMMS_H
#define SPOOL_BENCH_STEP_GEMMS_H

#include <string.h>

typedef struct {
    const char *what;  /* "l0 input proj fwd" */
    int M, N, K;       /* C[M, N] = A[M, K] B[K, N] */
    int ta, tb;        /* A or B stored transposed, as spool's layers and matmul backward issue them */
    int count;         /* how many times per step */
} step_gemm;

/* Gates per cell: rnn 1, gru 3, lstm 4, mingru 2, minlstm 3; 0 for an unknown name. */
static inline int step_gates(const char *cell)
{
    if (!strcmp(cell, "rnn")) return 1;
    if (!strcmp(cell, "gru")) return 3;
    if (!strcmp(cell, "lstm")) return 4;
    if (!strcmp(cell, "mingru")) return 2;
    if (!strcmp(cell, "minlstm")) return 3;
    return 0;
}

/* minGRU and minLSTM have no recurrent weights: their recurrence is a linear scan, no product. */
static inline int step_recurrent(const char *cell) { return strncmp(cell, "min", 3) != 0; }

/* Fills out[] (room for cap entries) with the products of one step and returns how many there
 * are. per_step_dw selects how the recurrent weight gradient is formed: T products with K = B
 * (the plain BPTT form) or one with K = T*B (what a tape-level batching of those products
 * would issue); both have the same FLOPs. */
static inline int step_gemm_list(const char *cell, int H, int L, int B, int T, int V, int dirs,
                                 int train, int per_step_dw, step_gemm *out, int cap)
{
    int n = 0, G = step_gates(cell) * H;
#define SG_ADD(w, m, nn, k, a, b, c)                                                               \
    do {                                                                                           \
        if (n < cap) out[n] = (step_gemm){(w), (m), (nn), (k), (a), (b), (c)};                     \
        n++;                                                                                       \
    } while (0)
    /* Weights are [out, in] (PyTorch's layout, which spool's layers keep): forward y = x W^T
     * (NT), backward dx = dy W (NN) and dW = dy^T x (TN), as sp_matmul_ex and its backward issue
     * them. */
    for (int l = 0; l < L; l++) {
        int I = l == 0 ? V : H * dirs;
        int c = dirs; /* each direction has its own weights and products */
        SG_ADD(l ? "input proj fwd (layer>0)" : "input proj fwd (one-hot)", T * B, G, I, 0, 1, c);
        if (step_recurrent(cell)) SG_ADD("recurrent fwd h W^T [B,H]x[H,G]", B, G, H, 0, 1, T * c);
        if (train) {
            if (step_recurrent(cell)) {
                SG_ADD("recurrent bwd dh = dG W [B,G]x[G,H]", B, H, G, 0, 0, T * c);
                if (per_step_dw) SG_ADD("recurrent bwd dW += dG^T h per step", G, H, B, 1, 0, T * c);
                else SG_ADD("recurrent bwd dW all steps [G,TB]x[TB,H]", G, H, T * B, 1, 0, c);
            }
            SG_ADD(l ? "input proj bwd dW (layer>0)" : "input proj bwd dW (one-hot)", G, I, T * B, 1, 0, c);
            if (l > 0) SG_ADD("input proj bwd dx (layer>0)", T * B, I, G, 0, 0, c);
        }
    }
    SG_ADD("head fwd [TB,HD]x[HD,V]", T * B, V, H * dirs, 0, 1, 1);
    if (train) {
        SG_ADD("head bwd dW [V,TB]x[TB,HD]", V, H * dirs, T * B, 1, 0, 1);
        SG_ADD("head bwd dx [TB,V]x[V,HD]", T * B, H * dirs, V, 0, 0, 1);
    }
#undef SG_ADD
    return n;
}

static inline double step_gemm_flops(const step_gemm *g, int n)
{
    double f = 0;
    for (int i = 0; i < n; i++) f += 2.0 * g[i].M * (double)g[i].N * g[i].K * g[i].count;
    return f;
}

#endif
