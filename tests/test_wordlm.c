/* SPDX-License-Identifier: MIT */
/* test_wordlm.c - the evaluation code of spool-wordlm on hand-made cases: the vocabulary (<eos>,
 * <unk>, order by count), reading a .tsv corpus, batch layout, perplexity arithmetic, a uniform
 * model's perplexity equal to the vocabulary size through the real evaluation path, scoring that
 * agrees with evaluation, and sampling that obeys the model. */
#include "helpers.h"
#include "wordlm_data.h"
#include "wordlm_lm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A corpus from a string via a temporary .tsv file (the same path the program reads). */
static void corpus_from(const char *text, int min_count, ex_vocab **v, wl_corpus *c)
{
    char path[] = "/tmp/test_wordlm_XXXXXX.tsv";
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ex_words w = {0};
    int *sl = NULL, ns = 0;
    char err[256];
    assert_int_equal(wl_read_sentences(path, &w, &sl, &ns, err, sizeof err), 0);
    unlink(path);
    if (!*v) *v = wl_build_vocab(&w, min_count);
    assert_non_null(*v);
    assert_int_equal(wl_corpus_make(c, *v, &w, sl, ns), 0);
    free(sl);
    ex_words_free(&w);
}

/* Text that is not UTF-8 is refused with the line it is on, not cut into nonsense words. */
static void test_invalid_utf8_refused(void **state)
{
    (void)state;
    size_t bad = 0;
    const char *ok = "plain caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    assert_true(ex_utf8_valid(ok, strlen(ok), &bad));
    const char *no[] = {"\x80", "\xc3", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff"};
    for (int i = 0; i < 7; i++) assert_false(ex_utf8_valid(no[i], strlen(no[i]), &bad));
    assert_false(ex_utf8_valid("ab\xc3", 3, &bad));
    assert_int_equal(bad, 2);
    char path[] = "/tmp/test_wordlm_XXXXXX.tsv";
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    const char *text = "one good line\nsecond \xc3( line\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ex_words w = {0};
    int *sl = NULL, ns = 0;
    char err[256];
    assert_int_equal(wl_read_sentences(path, &w, &sl, &ns, err, sizeof err), -1);
    unlink(path);
    assert_non_null(strstr(err, "line 2: invalid UTF-8"));
    ex_words_free(&w);
}

static void test_vocab_and_corpus(void **state)
{
    (void)state;
    ex_vocab *v = NULL;
    wl_corpus c;
    /* text before the TAB only; empty lines skipped; "b" 3 times, "a" 3 times, "c" twice, "d" once */
    corpus_from("b a b .\t1\n\na c\t0\nA b c d\t1\n", 2, &v, &c);
    assert_int_equal(v->n, 5); /* <eos> <unk> a b c */
    assert_string_equal(v->word[WL_EOS], "<eos>");
    assert_string_equal(v->word[WL_UNK], "<unk>");
    assert_string_equal(v->word[2], "a"); /* tie with b at 3: byte order */
    assert_string_equal(v->word[3], "b");
    assert_string_equal(v->word[4], "c");
    assert_int_equal(c.n, 3);
    int want[] = {3, 2, 3, 1, 2, 4, 2, 3, 4, 1}; /* b a b . | a c | a b c d ("." and "d" rare) */
    assert_int_equal(c.n_ids, 10);
    for (int i = 0; i < 10; i++) assert_int_equal(c.ids[i], want[i]);
    assert_int_equal(c.len[0], 4), assert_int_equal(c.len[1], 2), assert_int_equal(c.len[2], 4);
    sp_test_close(wl_unk_rate(&c), 0.2, 1e-12, 0, "unk rate");

    /* batch: sentences 1 and 0 -> T = 5, time-major, -1 padding */
    int which[] = {1, 0}, ids[10], tgt[10];
    assert_int_equal(wl_batch_T(&c, which, 2), 5);
    assert_int_equal(wl_batch_fill(&c, which, 2, 5, ids, tgt), 3 + 5);
    int wids[] = {0, 0, 2, 3, 4, 2, -1, 3, -1, 1};
    int wtgt[] = {2, 3, 4, 2, 0, 3, -1, 1, -1, 0};
    for (int i = 0; i < 10; i++) assert_int_equal(ids[i], wids[i]), assert_int_equal(tgt[i], wtgt[i]);

    /* bucketing keeps every sentence exactly once */
    sp_rng r;
    sp_rng_seed(&r, 3);
    int order[3], seen[3] = {0};
    wl_bucket_order(&c, order, 2, &r);
    for (int i = 0; i < 3; i++) seen[order[i]]++;
    for (int i = 0; i < 3; i++) assert_int_equal(seen[i], 1);
    wl_corpus_free(&c);
    ex_vocab_free(v);
}

static void test_perplexity_arithmetic(void **state)
{
    (void)state;
    sp_test_close(wl_perplexity(100 * log(37.0), 100), 37, 1e-12, 0, "uniform over 37");
    sp_test_close(wl_perplexity(0, 5), 1, 0, 0, "certain model");
    /* perplexity is the geometric mean of 1/p: p = 1/2 and 1/8 -> 4 */
    sp_test_close(wl_perplexity(log(2.0) + log(8.0), 2), 4, 1e-12, 0, "geometric mean");
    assert_true(isnan(wl_perplexity(1, 0)));
}

/* A model whose head is all zeros predicts every word with probability 1/V whatever it read, so
 * its perplexity on any text is exactly V: checked through wl_eval, the code the program uses. */
static void test_uniform_model_perplexity_is_vocab_size(void **state)
{
    (void)state;
    ex_vocab *v = NULL;
    wl_corpus c;
    corpus_from("the cat sat on the mat\nthe dog sat\non the mat the cat sat\ncat\n", 1, &v, &c);
    sp_rng r;
    sp_rng_seed(&r, 1);
    wl_model m;
    assert_int_equal(wl_model_init(&m, v->n, 8, 6, "lstm", 0, &r), 0);
    memset(m.head.weight->data, 0, sizeof(sp_real) * sp_numel(m.head.weight));
    memset(m.head.bias->data, 0, sizeof(sp_real) * sp_numel(m.head.bias));
    sp_tape *t = sp_tape_new();
    double nll;
    long n;
    assert_int_equal(wl_eval(t, &m, &c, 3, &nll, &n), 0);
    assert_int_equal(n, c.n_ids + c.n); /* every word and every closing <eos> */
    sp_test_close(wl_perplexity(nll, n), v->n, 1e-5, 0, "uniform perplexity");
    double lp[8];
    assert_int_equal(wl_score(t, &m, c.ids, c.len[0], lp), 0);
    for (int k = 0; k <= c.len[0]; k++) sp_test_close(lp[k], -log((double)v->n), 1e-5, 0, "uniform score");
    sp_tape_free(t);
    wl_model_free(&m);
    wl_corpus_free(&c);
    ex_vocab_free(v);
}

/* With random weights, the per-word log-probabilities of wl_score sum to minus the sentence's
 * loss in wl_eval (batched with padding), and each is a proper log-probability. */
static void test_score_agrees_with_eval(void **state)
{
    (void)state;
    ex_vocab *v = NULL;
    wl_corpus c, one;
    corpus_from("a b c d e f\nb c a\nf e d c b a a\n", 1, &v, &c);
    corpus_from("f e d c b a a\n", 1, &v, &one);
    sp_rng r;
    sp_rng_seed(&r, 9);
    wl_model m;
    assert_int_equal(wl_model_init(&m, v->n, 5, 7, "gru", 0, &r), 0);
    for (size_t k = 0; k < m.ps->numel; k++) m.ps->value[k] = (sp_real)(sp_rng_uniform(&r) - 0.5);
    sp_tape *t = sp_tape_new();
    double nll, lp[16], sum = 0;
    long n;
    assert_int_equal(wl_eval(t, &m, &one, 4, &nll, &n), 0);
    assert_int_equal(n, 8);
    assert_int_equal(wl_score(t, &m, c.ids + c.start[2], c.len[2], lp), 0);
    for (int k = 0; k <= c.len[2]; k++) {
        assert_true(lp[k] < 0 && lp[k] > -50);
        sum += lp[k];
    }
    sp_test_close(-sum, nll, 1e-4, 1e-5, "score sum vs eval nll");
    /* the same sentence inside a padded batch of three gives the same total */
    double nll3;
    long n3;
    assert_int_equal(wl_eval(t, &m, &c, 3, &nll3, &n3), 0);
    double part = 0;
    for (int s = 0; s < 2; s++) {
        assert_int_equal(wl_score(t, &m, c.ids + c.start[s], c.len[s], lp), 0);
        for (int k = 0; k <= c.len[s]; k++) part += lp[k];
    }
    sp_test_close(nll3, nll - part, 1e-4, 1e-5, "batched eval vs per-sentence scores");
    sp_tape_free(t);
    wl_model_free(&m);
    wl_corpus_free(&c), wl_corpus_free(&one);
    ex_vocab_free(v);
}

static void test_sampling_follows_the_model(void **state)
{
    (void)state;
    sp_rng r;
    sp_rng_seed(&r, 2);
    wl_model m;
    assert_int_equal(wl_model_init(&m, 6, 4, 5, "rnn", 0, &r), 0);
    memset(m.head.weight->data, 0, sizeof(sp_real) * sp_numel(m.head.weight));
    sp_tape *t = sp_tape_new();
    int out[10];
    /* <eos> overwhelmingly likely: empty sentences */
    for (int v = 0; v < 6; v++) m.head.bias->data[v] = v == WL_EOS ? 30 : 0;
    for (int k = 0; k < 20; k++) assert_int_equal(wl_sample(t, &m, &r, 1.0, 0, 10, out), 0);
    /* <unk> overwhelmingly likely but not allowed, word 4 next: only word 4, up to max length */
    for (int v = 0; v < 6; v++) m.head.bias->data[v] = v == WL_UNK ? 30 : v == 4 ? 20 : 0;
    assert_int_equal(wl_sample(t, &m, &r, 1.0, 0, 10, out), 10);
    for (int k = 0; k < 10; k++) assert_int_equal(out[k], 4);
    assert_int_equal(wl_sample(t, &m, &r, 1.0, 1, 3, out), 3);
    for (int k = 0; k < 3; k++) assert_int_equal(out[k], WL_UNK);
    sp_tape_free(t);
    wl_model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_utf8_refused),
        cmocka_unit_test(test_vocab_and_corpus),
        cmocka_unit_test(test_perplexity_arithmetic),
        cmocka_unit_test(test_uniform_model_perplexity_is_vocab_size),
        cmocka_unit_test(test_score_agrees_with_eval),
        cmocka_unit_test(test_sampling_follows_the_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
