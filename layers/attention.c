/* SPDX-License-Identifier: MIT */
/* attention.c - an attention layer for encoder-decoders over the attention ops (ops/attention.c):
 *   SP_ATTN_DOT       score(q, k) = q . k                     Luong et al. 2015 "dot" (Q = K)
 *   SP_ATTN_GENERAL   score(q, k) = (q W^T) . k,  W [K, Q]      Luong et al. 2015 "general"
 *   SP_ATTN_ADDITIVE  score(q, k) = v . tanh(q W_q^T + k W_k^T)  Bahdanau et al. 2015, W_q [A, Q],
 *                                                               W_k [A, K], v [1, A]
 * then a = softmax over the real steps of each row (masked), context = sum_s a_s k_s. The keys'
 * side of the product (k W_k^T for additive) is computed once per sequence by
 * sp_attention_keys, not at every decoder step. */
#include "layers_internal.h"

#include <math.h>
#include <stdio.h>

sp_status sp_attention_init(sp_attention *a, sp_params *ps, const char *prefix, sp_attn_kind kind, int Q, int K, int A,
                            sp_rng *rng)
{
    const char *pfx = prefix ? prefix : "attn";
    if (!a || !ps || !rng || Q < 1 || K < 1 || (kind == SP_ATTN_ADDITIVE && A < 1) || (kind == SP_ATTN_DOT && Q != K) ||
        kind < SP_ATTN_DOT || kind > SP_ATTN_ADDITIVE)
        return sp_fail(SP_ERR_ARG, "attention \"%s\": bad arguments (kind %d, Q = %d, K = %d, A = %d; dot needs Q = K, "
                       "additive A >= 1, params and rng not NULL)", pfx, (int)kind, Q, K, A);
    *a = (sp_attention){.kind = kind, .query_size = Q, .key_size = K, .attn_size = kind == SP_ATTN_ADDITIVE ? A : K};
    char n[256];
    if (kind == SP_ATTN_GENERAL) {
        snprintf(n, sizeof n, "%s.weight", pfx);
        if (!(a->w_q = sp_param_uniform(ps, n, K, Q, 1 / sqrt((double)Q), rng))) return sp_last_status();
    } else if (kind == SP_ATTN_ADDITIVE) {
        snprintf(n, sizeof n, "%s.query_weight", pfx);
        if (!(a->w_q = sp_param_uniform(ps, n, A, Q, 1 / sqrt((double)Q), rng))) return sp_last_status();
        snprintf(n, sizeof n, "%s.key_weight", pfx);
        if (!(a->w_k = sp_param_uniform(ps, n, A, K, 1 / sqrt((double)K), rng))) return sp_last_status();
        snprintf(n, sizeof n, "%s.v", pfx);
        if (!(a->v = sp_param_uniform(ps, n, 1, A, 1 / sqrt((double)A), rng))) return sp_last_status();
    }
    return SP_OK;
}

sp_tensor *sp_attention_keys(sp_tape *t, const sp_attention *a, sp_tensor *enc)
{
    if (!a || !enc) {
        sp_tape_fail(t, SP_ERR_ARG, "attention keys: layer or encoder output is NULL");
        return NULL;
    }
    return a->kind == SP_ATTN_ADDITIVE ? sp_name(t, sp_matmul_ex(t, enc, 0, a->w_k, 1), "attn_keys") : enc;
}

sp_tensor *sp_attention_step(sp_tape *t, const sp_attention *a, sp_tensor *query, sp_tensor *keys, sp_tensor *enc,
                             int S, const int *lengths, sp_tensor **weights)
{
    if (weights) *weights = NULL;
    if (sp_tape_status(t) != SP_OK) return NULL;
    if (!a || !query || !keys || !enc) {
        sp_tape_fail(t, SP_ERR_ARG, "attention step: layer, query, keys or encoder output is NULL");
        return NULL;
    }
    sp_tensor *e;
    switch (a->kind) {
    case SP_ATTN_DOT: e = sp_attn_dot(t, query, keys, S); break;
    case SP_ATTN_GENERAL: e = sp_attn_dot(t, sp_matmul_ex(t, query, 0, a->w_q, 1), keys, S); break;
    default: e = sp_attn_additive(t, sp_matmul_ex(t, query, 0, a->w_q, 1), keys, a->v, S); break;
    }
    sp_tensor *w = sp_name(t, sp_softmax(t, sp_attn_mask(t, sp_name(t, e, "attn_scores"), lengths)), "attn_weights");
    if (weights) *weights = w;
    return sp_name(t, sp_attn_context(t, w, enc, S), "attn_context");
}
