/* SPDX-License-Identifier: MIT */
/* test_failalloc.c - allocation-failure injection: one workflow (build a 2-layer LSTM
 * and a head, train two Adam steps with clipping, save a checkpoint, load it into a fresh model
 * and optimizer, open its table of contents) re-run with the k-th allocation failing, for every
 * k until the workflow needs fewer allocations than k. Every run must end either in success or
 * in a clean error (a status and a message); under ASan/LSan (build-asan) any use after free,
 * double free or leak on those error paths is a report that fails the test.
 * The library's calls to malloc/calloc/realloc/aligned_alloc/posix_memalign/strdup/strndup are
 * redirected here at link time (-Wl,--wrap=...), so the library itself carries no test hook. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"

static long count, fail_at; /* fail_at 0: never */

static int fail_now(void) { return fail_at && ++count == fail_at; }

void *__real_malloc(size_t);
void *__real_calloc(size_t, size_t);
void *__real_realloc(void *, size_t);
void *__real_aligned_alloc(size_t, size_t);
int __real_posix_memalign(void **, size_t, size_t);
char *__real_strdup(const char *);
char *__real_strndup(const char *, size_t);
void *__wrap_malloc(size_t n) { return fail_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t a, size_t b) { return fail_now() ? NULL : __real_calloc(a, b); }
void *__wrap_realloc(void *p, size_t n) { return fail_now() ? NULL : __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) { return fail_now() ? NULL : __real_aligned_alloc(a, n); }
int __wrap_posix_memalign(void **p, size_t a, size_t n) { return fail_now() ? 12 : __real_posix_memalign(p, a, n); }
char *__wrap_strdup(const char *s) { return fail_now() ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) { return fail_now() ? NULL : __real_strndup(s, n); }

/* One model: 2-layer LSTM 3 -> 5, linear 5 -> 4. */
static sp_status build(sp_params **ps, sp_rnn *r, sp_linear *head, uint64_t seed)
{
    sp_rng rng;
    sp_rng_seed(&rng, seed);
    *ps = sp_params_new();
    if (!*ps) return SP_ERR_NOMEM;
    sp_status s = sp_rnn_init(r, *ps, "rnn", SP_CELL_LSTM, 3, 5, 2, 0, NULL, &rng);
    if (s == SP_OK) s = sp_linear_init(head, *ps, "head", 5, 4, 1, &rng);
    return s;
}

static sp_status train_step(sp_tape *t, sp_params *ps, const sp_rnn *r, const sp_linear *head, sp_optim *o)
{
    const int T = 4, B = 2;
    sp_tape_reset(t);
    sp_params_zero_grad(ps);
    sp_tensor *x = sp_const(t, T * B, 3);
    if (x)
        for (int i = 0; i < T * B * 3; i++) x->data[i] = (sp_real)((i % 7) - 3) / 4;
    int tg[8] = {0, 1, 2, 3, 3, 2, 1, 0}, len[2] = {4, 3};
    sp_rnn_opts ro = {.lengths = len};
    sp_rnn_out out = {0};
    if (x && sp_rnn_run(t, r, x, T, B, &ro, &out) != SP_OK) return sp_tape_status(t) ? sp_tape_status(t) : sp_last_status();
    sp_tensor *loss = sp_softmax_xent(t, sp_linear_forward(t, head, out.out), tg, NULL);
    sp_status s = sp_backward(t, loss);
    if (s != SP_OK) return s;
    double norm;
    if ((s = sp_clip_grad_norm(ps, 1.0, &norm)) != SP_OK) return s;
    return sp_optim_step(o, 1e-2);
}

/* The workflow; frees everything it made, whatever fails. */
static sp_status workflow(void)
{
    sp_params *ps = NULL, *ps2 = NULL;
    sp_rnn r, r2;
    sp_linear head, head2;
    sp_optim *o = NULL, *o2 = NULL;
    sp_tape *t = NULL;
    sp_ckpt_info *ci = NULL;
    sp_optim_config c = sp_optim_defaults(SP_ADAM);
    sp_status s = build(&ps, &r, &head, 1);
    if (s == SP_OK && !(o = sp_optim_new(ps, &c))) s = sp_last_status();
    if (s == SP_OK && !(t = sp_tape_new())) s = sp_last_status();
    for (int k = 0; s == SP_OK && k < 2; k++) s = train_step(t, ps, &r, &head, o);
    sp_kv meta[] = {{"what", "failalloc"}};
    sp_ckpt_opts co = {.meta = meta, .n_meta = 1};
    if (s == SP_OK) s = sp_save("failalloc.safetensors", ps, o, &co);
    if (s == SP_OK) s = build(&ps2, &r2, &head2, 2);
    if (s == SP_OK && !(o2 = sp_optim_new(ps2, &c))) s = sp_last_status();
    if (s == SP_OK) s = sp_load("failalloc.safetensors", ps2, o2, NULL);
    if (s == SP_OK && !(ci = sp_ckpt_open("failalloc.safetensors"))) s = sp_last_status();
    if (s == SP_OK && (!sp_ckpt_meta(ci, "what") || memcmp(ps->value, ps2->value, ps->numel * sizeof(sp_real))))
        s = SP_ERR_STATE; /* a success must be a real one */
    sp_ckpt_close(ci);
    sp_tape_free(t);
    sp_optim_free(o2);
    sp_optim_free(o);
    sp_params_free(ps2);
    sp_params_free(ps);
    return s;
}

int main(void)
{
    sp_set_threads(1);
    count = 0, fail_at = 0;
    if (workflow() != SP_OK) {
        printf("not ok 1 - the workflow without injected failures: %s\n1..1\n", sp_last_error());
        return 1;
    }
    int bad = 0;
    long k;
    for (k = 1;; k++) {
        count = 0, fail_at = k;
        sp_clear_error();
        sp_status s = workflow();
        long used = count;
        fail_at = 0;
        if (used < k) { /* the k-th allocation never happened: every failure point was visited */
            if (s != SP_OK) bad++, printf("# k = %ld: no failure injected, yet status %d: %s\n", k, (int)s, sp_last_error());
            break;
        }
        if (s == SP_OK) continue; /* the failure was absorbed (a fallback path): fine */
        if (s == SP_ERR_STATE && !sp_last_error()[0]) { /* success that was not one */
            bad++;
            printf("# k = %ld: workflow ended in a wrong success\n", k);
        }
    }
    remove("failalloc.safetensors");
    printf("%s 1 - allocation %ld of %ld failing, one at a time: %s\n1..1\n", bad ? "not ok" : "ok", k - 1, k - 1,
           bad ? "errors above" : "every run ended cleanly");
    return bad != 0;
}
