/* SPDX-License-Identifier: MIT */
/* test_ner.c - the NER example: the BIO masks and CRF decoding that always obeys them, BIO span
 * extraction by the CoNLL rules (I- without B-, type changes, adjacent B-), entity-level precision/recall/F1 on hand-made sentences, the file reader
 * and its error messages, the most-frequent-tag baseline; then spool-ner itself, run end to end on
 * a tiny slice of WikiGold (trained twice with one seed, eval, tag, resume, the softmax output)
 * and with bad options and files, which must give an exit status != 0 and a message, never a crash. The program's path
 * comes from the SPOOL_EXAMPLE environment variable (set by tests/meson.build). */
#include "helpers.h"
#include "example_run.h"

#include "ner_eval.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

/* The program under test, run with args; see example_run.h. */
static int run(char **out, const char *const *args) { return sp_test_run_example(tmpdir, out, args); }

static const char *data_dir(void)
{
    const char *d = getenv("SPOOL_EXAMPLE_DATA");
    assert_non_null(d);
    return d;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* --------------------------------------------------------------- BIO rules, CRF */

static void test_bio_masks(void **state)
{
    (void)state;
    const char *tags[] = {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-creative-work", "I-creative-work"};
    enum { K = 7 };
    unsigned char al[K * K], st[K];
    ner_bio_allowed(tags, K, al, st);
    const unsigned char want_start[K] = {1, 1, 0, 1, 0, 1, 0};
    assert_memory_equal(st, want_start, K);
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) {
            /* I-X only after B-X or I-X of the same type; anything else may follow anything */
            int want = tags[j][0] != 'I' || (tags[i][0] != 'O' && !strcmp(tags[i] + 2, tags[j] + 2));
            if (al[i * K + j] != want) print_message("# %s -> %s: %d\n", tags[i], tags[j], al[i * K + j]);
            assert_int_equal(al[i * K + j], want);
        }
    const char *ok[] = {"B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "I-LOC"};
    const char *bad1[] = {"I-PER"}, *bad2[] = {"O", "I-LOC"}, *bad3[] = {"B-PER", "I-LOC"};
    assert_true(ner_bio_valid(ok, 7));
    assert_true(ner_bio_valid(ok, 0));
    assert_false(ner_bio_valid(bad1, 1));
    assert_false(ner_bio_valid(bad2, 2));
    assert_false(ner_bio_valid(bad3, 2));
}

/* Viterbi under the BIO masks never emits an invalid sequence, whatever the scores (random, and
 * with the forbidden transitions made the most attractive); without the masks the same scores do
 * give invalid sequences, so the masks are what keeps the output valid. WNUT17's 13 tags. */
static void test_crf_decoding_is_always_valid_bio(void **state)
{
    (void)state;
    const char *tags[] = {"O", "B-person", "I-person", "B-location", "I-location", "B-group", "I-group",
                          "B-corporation", "I-corporation", "B-product", "I-product", "B-creative-work",
                          "I-creative-work"};
    enum { K = 13, T = 12, B = 8 };
    unsigned char al[K * K], st[K];
    ner_bio_allowed(tags, K, al, st);
    sp_params *ps = sp_params_new();
    sp_tensor *e = sp_param(ps, "e", T * B, K), *tr = sp_param(ps, "tr", K, K), *s0 = sp_param(ps, "s", 1, K),
              *s1 = sp_param(ps, "end", 1, K);
    assert_non_null(s1);
    sp_rng r;
    sp_rng_seed(&r, 42);
    int lens[B], path[T * B], invalid_unmasked = 0, checked = 0;
    const char *seq[T];
    for (int trial = 0; trial < 300; trial++) {
        for (size_t k = 0; k < ps->numel; k++) ps->value[k] = (sp_real)(6 * sp_rng_uniform(&r) - 3);
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++)
                if (!al[i * K + j]) tr->data[i * K + j] += 3; /* tempt it */
        for (int b = 0; b < B; b++) lens[b] = (int)(sp_rng_uniform(&r) * (T + 1));
        for (int masked = 1; masked >= 0; masked--) {
            assert_int_equal(sp_crf_decode(e, tr, s0, s1, lens, T, B, masked ? al : NULL, masked ? st : NULL, path, NULL),
                             SP_OK);
            for (int b = 0; b < B; b++) {
                for (int t = 0; t < lens[b]; t++) seq[t] = tags[path[t * B + b]];
                if (masked) assert_true(ner_bio_valid(seq, lens[b])), checked++;
                else invalid_unmasked += !ner_bio_valid(seq, lens[b]);
            }
        }
    }
    assert_int_equal(checked, 300 * B);
    assert_true(invalid_unmasked > 100);
    sp_params_free(ps);
}

/* ------------------------------------------------------------------------- spans */

static int spans_of(const char *const *tags, int n, ner_span *sp) { return ner_spans(tags, n, sp); }

static void test_tag_split(void **state)
{
    (void)state;
    char p;
    const char *ty;
    assert_int_equal(ner_tag_split("O", &p, &ty), 0);
    assert_int_equal(p, 'O');
    assert_int_equal(ner_tag_split("B-PER", &p, &ty), 0);
    assert_int_equal(p, 'B');
    assert_string_equal(ty, "PER");
    assert_int_equal(ner_tag_split("I-creative-work", &p, &ty), 0);
    assert_int_equal(p, 'I');
    assert_string_equal(ty, "creative-work"); /* split at the first hyphen only */
    assert_int_equal(ner_tag_split("B-", &p, &ty), -1);
    assert_int_equal(ner_tag_split("X-PER", &p, &ty), -1);
    assert_int_equal(ner_tag_split("", &p, &ty), -1);
    assert_int_equal(ner_tag_split("o", &p, &ty), -1);
}

static void test_spans_bio_edge_cases(void **state)
{
    (void)state;
    ner_span s[8];
    /* a plain B-I-I entity, an O, a one-token entity at the end */
    const char *a[] = {"B-PER", "I-PER", "I-PER", "O", "B-LOC"};
    assert_int_equal(spans_of(a, 5, s), 2);
    assert_int_equal(s[0].begin, 0), assert_int_equal(s[0].end, 3), assert_string_equal(s[0].type, "PER");
    assert_int_equal(s[1].begin, 4), assert_int_equal(s[1].end, 5), assert_string_equal(s[1].type, "LOC");
    /* an I- without a B- starts an entity: at the sentence start and after O */
    const char *b[] = {"I-ORG", "I-ORG", "O", "I-MISC"};
    assert_int_equal(spans_of(b, 4, s), 2);
    assert_int_equal(s[0].begin, 0), assert_int_equal(s[0].end, 2), assert_string_equal(s[0].type, "ORG");
    assert_int_equal(s[1].begin, 3), assert_int_equal(s[1].end, 4), assert_string_equal(s[1].type, "MISC");
    /* a type change inside I- splits; B- after B- of the same type gives two entities */
    const char *c[] = {"B-PER", "I-LOC", "I-LOC", "B-PER", "B-PER", "I-PER"};
    assert_int_equal(spans_of(c, 6, s), 4);
    assert_int_equal(s[0].end, 1), assert_string_equal(s[0].type, "PER");
    assert_int_equal(s[1].begin, 1), assert_int_equal(s[1].end, 3), assert_string_equal(s[1].type, "LOC");
    assert_int_equal(s[2].begin, 3), assert_int_equal(s[2].end, 4);
    assert_int_equal(s[3].begin, 4), assert_int_equal(s[3].end, 6);
    /* hyphenated type names (WNUT17) stay whole; all O gives nothing */
    const char *d[] = {"B-creative-work", "I-creative-work", "O"};
    assert_int_equal(spans_of(d, 3, s), 1);
    assert_int_equal(s[0].end, 2), assert_string_equal(s[0].type, "creative-work");
    const char *e[] = {"O", "O"};
    assert_int_equal(spans_of(e, 2, s), 0);
}

/* P/R/F1 worked out by hand over four sentences, each a classic way to be wrong. */
static void test_scorer_exact_match(void **state)
{
    (void)state;
    ner_scorer *sc = ner_scorer_new();
    /* 1. right PER, wrong type for the LOC: gold 2, found 2, correct 1 */
    const char *g1[] = {"B-PER", "I-PER", "O", "B-LOC"}, *p1[] = {"B-PER", "I-PER", "O", "B-ORG"};
    /* 2. boundary too short: gold 1, found 1, correct 0 */
    const char *g2[] = {"B-PER", "I-PER", "O"}, *p2[] = {"B-PER", "O", "O"};
    /* 3. I- without B- in the prediction still matches the gold B-I span: gold 1, found 1, correct 1 */
    const char *g3[] = {"B-ORG", "I-ORG"}, *p3[] = {"I-ORG", "I-ORG"};
    /* 4. a type change splits the prediction into two wrong spans; one entity missed entirely:
     *    gold 2, found 2, correct 0 */
    const char *g4[] = {"B-ORG", "I-ORG", "O", "B-MISC"}, *p4[] = {"B-ORG", "I-PER", "O", "O"};
    assert_int_equal(ner_scorer_add(sc, g1, p1, 4), 0);
    assert_int_equal(ner_scorer_add(sc, g2, p2, 3), 0);
    assert_int_equal(ner_scorer_add(sc, g3, p3, 2), 0);
    assert_int_equal(ner_scorer_add(sc, g4, p4, 4), 0);
    ner_prf t = ner_scorer_total(sc);
    assert_int_equal(t.gold, 6);
    assert_int_equal(t.pred, 6);
    assert_int_equal(t.correct, 2);
    sp_test_close(t.precision, 2.0 / 6, 1e-12, 0, "precision");
    sp_test_close(t.recall, 2.0 / 6, 1e-12, 0, "recall");
    sp_test_close(t.f1, 2.0 / 6, 1e-12, 0, "F1");
    /* per type: PER gold 2 (s1, s2) found 3 (s1, s2, s4) correct 1 */
    int k = ex_vocab_find(sc->types, "PER");
    assert_true(k >= 0);
    ner_prf per = ner_scorer_type(sc, k);
    assert_int_equal(per.gold, 2), assert_int_equal(per.pred, 3), assert_int_equal(per.correct, 1);
    sp_test_close(per.f1, 2 * (1.0 / 3) * (1.0 / 2) / (1.0 / 3 + 1.0 / 2), 1e-12, 0, "PER F1");
    /* MISC: gold 1, found 0: precision 0 (not NaN), recall 0, F1 0 */
    ner_prf misc = ner_scorer_type(sc, ex_vocab_find(sc->types, "MISC"));
    assert_int_equal(misc.pred, 0);
    assert_true(misc.precision == 0 && misc.f1 == 0);
    /* token accuracy: 3 + 2 + 1 + 2 of 13 tokens agree */
    assert_int_equal(sc->n_tokens, 13);
    assert_int_equal(sc->n_tokens_correct, 8);
    ner_scorer_free(sc);

    /* a perfect prediction scores 1; an empty one 0 */
    sc = ner_scorer_new();
    assert_int_equal(ner_scorer_add(sc, g1, g1, 4), 0);
    sp_test_close(ner_scorer_total(sc).f1, 1.0, 1e-12, 0, "perfect F1");
    ner_scorer_free(sc);
    sc = ner_scorer_new();
    const char *none[] = {"O", "O", "O", "O"};
    assert_int_equal(ner_scorer_add(sc, g1, none, 4), 0);
    assert_true(ner_scorer_total(sc).f1 == 0 && ner_scorer_total(sc).pred == 0);
    ner_scorer_free(sc);
}

/* ---------------------------------------------------------------- reader, baseline */

static void test_read_and_baseline(void **state)
{
    (void)state;
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/small.tsv", tmpdir);
    /* CRLF, spaces around the TAB, two blank lines, no blank line at the end */
    write_text(path, "Paris\tB-LOC\r\nis\tO\nnice \t O\n\n\nParis\tB-PER\nHilton\tI-PER\n\nParis\tB-LOC\nagain\tO");
    ex_vocab *tags = ex_vocab_new();
    ex_vocab_add(tags, "O");
    ner_corpus *c = ner_read(path, tags, 1, 0, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(c->n_sent, 3);
    assert_int_equal(c->n_tok, 7);
    assert_int_equal(c->len[0], 3), assert_int_equal(c->len[1], 2), assert_int_equal(c->len[2], 2);
    assert_string_equal(c->word[2], "nice");
    assert_string_equal(tags->word[c->tag[2]], "O");
    assert_int_equal(c->max_len, 3);
    /* baseline: Paris is B-LOC twice, B-PER once -> B-LOC; unseen words -> O */
    ner_baseline b;
    assert_int_equal(ner_baseline_fit(&b, c, tags), 0);
    assert_string_equal(tags->word[ner_baseline_tag(&b, "Paris")], "B-LOC");
    assert_string_equal(tags->word[ner_baseline_tag(&b, "Hilton")], "I-PER");
    assert_string_equal(tags->word[ner_baseline_tag(&b, "London")], "O");
    ner_baseline_free(&b);
    ner_corpus *lim = ner_read(path, tags, 0, 2, err, sizeof err);
    assert_non_null(lim);
    assert_int_equal(lim->n_sent, 2);
    ner_corpus_free(lim);
    ner_corpus_free(c);

    /* errors name the file and line */
    write_text(path, "ok\tO\nno tab here\n");
    assert_null(ner_read(path, tags, 1, 0, err, sizeof err));
    assert_non_null(strstr(err, ":2:"));
    write_text(path, "ok\tO\nbad\tPER\n");
    assert_null(ner_read(path, tags, 1, 0, err, sizeof err));
    assert_non_null(strstr(err, "not a BIO tag"));
    write_text(path, "ok\tB-NEW\n");
    assert_null(ner_read(path, tags, 0, 0, err, sizeof err));
    assert_non_null(strstr(err, "does not occur"));
    write_text(path, "\n\n");
    assert_null(ner_read(path, tags, 1, 0, err, sizeof err));
    assert_null(ner_read("/nonexistent/x.tsv", tags, 1, 0, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/x.tsv"));
    ex_vocab_free(tags);
}

/* ------------------------------------------------------------------ end to end */

/* The first n sentences of a CoNLL file, so the end-to-end runs score small dev/test sets. */
static void slice_sentences(const char *src, const char *dst, int n)
{
    char err[256];
    size_t len;
    char *buf = ex_read_file(src, &len, err, sizeof err), *p = buf;
    assert_non_null(buf);
    for (int k = 0; k < n && p; k++)
        if ((p = strstr(p, "\n\n"))) p += 2;
    if (p) *p = '\0';
    write_text(dst, buf);
    free(buf);
}

static int contains(const char *s, const char *what)
{
    if (strstr(s, what)) return 1;
    print_message("# expected '%s' in the output:\n# %.2000s\n", what, s);
    return 0;
}

static void test_program_end_to_end(void **state)
{
    (void)state;
    char data[512], model[512], last[512], dev[512], test[512], src[600], *out;
    snprintf(data, sizeof data, "%s/ner-wikigold", data_dir());
    snprintf(src, sizeof src, "%s/dev.tsv", data);
    snprintf(dev, sizeof dev, "%s/dev.tsv", tmpdir);
    slice_sentences(src, dev, 40);
    snprintf(src, sizeof src, "%s/test.tsv", data);
    snprintf(test, sizeof test, "%s/test.tsv", tmpdir);
    slice_sentences(src, test, 40);
    snprintf(model, sizeof model, "%s/m.safetensors", tmpdir);
    snprintf(last, sizeof last, "%s/m.safetensors.last", tmpdir);
    const char *train[] = {"train", "--data", data, "--limit", "60", "--epochs", "2", "--embed", "8", "--hidden", "8",
                           "--chars", "--char-embed", "4", "--char-hidden", "4", "--batch", "8", "--seed", "3",
                           "--out", model, "--threads", "1", "--dev", dev, "--test", test, NULL};
    /* run twice: seeded, so the epoch lines (without their timings) must agree exactly */
    char *epochs[2];
    for (int rep = 0; rep < 2; rep++) {
        assert_int_equal(run(&out, train), 0);
        assert_true(contains(out, "dev 40 /"));
        assert_true(contains(out, "baseline test: precision"));
        assert_true(contains(out, "epoch  2"));
        assert_true(contains(out, "result: test F1"));
        epochs[rep] = calloc(strlen(out) + 1, 1);
        for (char *line = strstr(out, "\nepoch"); line; line = strstr(line + 1, "\nepoch")) {
            char *end = strstr(line, "  (");
            assert_non_null(end);
            strncat(epochs[rep], line, (size_t)(end - line));
        }
        free(out);
    }
    if (strcmp(epochs[0], epochs[1])) print_message("# run 1:%s\n# run 2:%s\n", epochs[0], epochs[1]);
    assert_string_equal(epochs[0], epochs[1]);
    free(epochs[0]), free(epochs[1]);
    const char *ev[] = {"eval", "--model", model, "--test", test, NULL};
    assert_int_equal(run(&out, ev), 0);
    assert_true(contains(out, "test: precision"));
    free(out);
    const char *tag[] = {"tag", "--model", model, "--tokens", "Ada Lovelace visited London.", NULL};
    assert_int_equal(run(&out, tag), 0);
    assert_true(contains(out, "Lovelace\t") && contains(out, "London\t") && contains(out, ".\t"));
    /* the sentence comes first, with any entity in brackets */
    assert_true(contains(out, "Lovelace") && strstr(out, "London") < strstr(out, "Ada\t"));
    free(out);
    /* the softmax output layer, one epoch */
    const char *sm[] = {"train", "--data", data, "--limit", "30", "--epochs", "1", "--embed", "8", "--hidden", "8",
                        "--output", "softmax", "--out", model, "--threads", "1", "--dev", dev, "--test", test, NULL};
    assert_int_equal(run(&out, sm), 0);
    assert_true(contains(out, "output softmax") && contains(out, "lower-cased test F1"));
    free(out);
    /* resume from the last epoch's checkpoint (optimizer state + generator) for a third epoch */
    const char *res[] = {"train", "--data", data, "--limit", "60", "--epochs", "3", "--batch", "8", "--resume", last,
                         "--out", model, "--threads", "1", "--dev", dev, "--test", test, NULL};
    assert_int_equal(run(&out, res), 0);
    assert_true(contains(out, "resumed from"));
    assert_true(contains(out, "epoch  3"));
    assert_false(strstr(out, "epoch  1 "));
    free(out);
    /* a resumed run keeps its architecture: another --hidden is refused, not ignored */
    const char *rh[] = {"train", "--data", data, "--limit", "60", "--epochs", "4", "--batch", "8", "--hidden", "77",
                        "--resume", last, "--out", model, "--threads", "1", "--dev", dev, "--test", test, NULL};
    assert_int_equal(run(&out, rh), 1);
    assert_true(contains(out, "--hidden 77 differs from the checkpoint's"));
    free(out);
}

static void test_program_bad_input(void **state)
{
    (void)state;
    char model[512], bad[512], *out;
    snprintf(model, sizeof model, "%s/m.safetensors", tmpdir);
    snprintf(bad, sizeof bad, "%s/garbage.safetensors", tmpdir);
    write_text(bad, "this is not a safetensors file at all");
    struct {
        const char *args[8];
        int status;
        const char *msg;
    } cases[] = {
        {{NULL}, 2, "Usage"},
        {{"fly", NULL}, 2, "unknown command"},
        {{"train", "--epochs", "0", NULL}, 2, "--epochs expects"},
        {{"train", "--lr", "abc", NULL}, 2, "--lr expects"},
        {{"train", "--hidden", NULL}, 2, "needs a value"},
        {{"train", "--bogus", NULL}, 2, "unknown option"},
        {{"train", "--output", "hmm", NULL}, 2, "crf or softmax"},
        {{"train", "--lower", "2", NULL}, 2, "--lower expects"},
        {{"train", "--train", "/nonexistent/train.tsv", NULL}, 1, "cannot open '/nonexistent/train.tsv'"},
        {{"eval", "--model", "/nonexistent/m.safetensors", NULL}, 1, "cannot open model"},
        {{"eval", "--model", bad, NULL}, 1, "cannot open model"},
        {{"tag", "--model", model, NULL}, 2, "needs the text"},
        {{"tag", "--model", model, "   ", NULL}, 1, "no words"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = run(&out, cases[i].args);
        if (st != cases[i].status) print_message("# case %zu: status %d, output:\n# %s\n", i, st, out);
        assert_int_equal(st, cases[i].status);
        assert_true(contains(out, cases[i].msg));
        free(out);
    }
    /* a training file with a broken line: the message names file and line */
    char tr[512];
    snprintf(tr, sizeof tr, "%s/broken.tsv", tmpdir);
    write_text(tr, "a\tO\nb\tO\n\nc O\n\n");
    const char *args[] = {"train", "--train", tr, NULL};
    assert_int_equal(run(&out, args), 1);
    assert_true(contains(out, "broken.tsv:4:"));
    free(out);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/spool_test_ner_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tag_split),
        cmocka_unit_test(test_bio_masks),
        cmocka_unit_test(test_crf_decoding_is_always_valid_bio),
        cmocka_unit_test(test_spans_bio_edge_cases),
        cmocka_unit_test(test_scorer_exact_match),
        cmocka_unit_test(test_read_and_baseline),
        cmocka_unit_test(test_program_end_to_end),
        cmocka_unit_test(test_program_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
