/* SPDX-License-Identifier: MIT */
/* vanishing_data.c - task generator, equal-budget sizing and scoring for spool-vanishing (see
 * vanishing_data.h). */
#include "vanishing_data.h"

#include <math.h>

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void vn_make_batch(const vn_task *k, int B, uint64_t *state, int *sym, int *key)
{
    int L = vn_steps(k);
    for (int b = 0; b < B; b++) {
        key[b] = (int)(splitmix(state) % (uint64_t)k->K);
        sym[b] = key[b];
        for (int s = 1; s <= k->T; s++) sym[s * B + b] = k->K + (int)(splitmix(state) % (uint64_t)k->D);
        sym[(L - 1) * B + b] = k->K + k->D;
    }
}

long vn_param_count(int gates, int I, int H, int K)
{
    return (long)gates * ((long)H * I + (long)H * H + 2L * H) + (long)H * K + K;
}

int vn_hidden_for_budget(int gates, int I, int K, long budget)
{
    int H = 1;
    while (vn_param_count(gates, I, H + 1, K) <= budget) H++;
    return H;
}

double vn_accuracy(const float *logits, const int *key, int B, int K)
{
    if (B <= 0) return 0;
    int ok = 0;
    for (int b = 0; b < B; b++) {
        int best = 0;
        for (int j = 1; j < K; j++)
            if (logits[b * K + j] > logits[b * K + best]) best = j;
        ok += best == key[b];
    }
    return (double)ok / B;
}

double vn_norm(const float *x, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}
