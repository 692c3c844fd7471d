/* SPDX-License-Identifier: MIT */
/* test_sentiment.c - the sentiment example: text cleaning (stray C0/C1 controls), tokenising,
 * the vocabulary, strict option parsing, the sentence<TAB>label reader and its error messages,
 * and accuracy on hand-made cases; then spool-sentiment itself, run end to end on a tiny slice of
 * the UCI data (LSTM and GRU, every pooling, logistic and softmax outputs, eval, predict, resume)
 * and with bad options and files, which must give an exit status != 0 and a message. The
 * program's path comes from SPOOL_EXAMPLE (set by tests/meson.build). */
#include "helpers.h"
#include "example_run.h"

#include "sentiment_data.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

/* The program under test, run with args; see example_run.h. */
static int run(char **out, const char *const *args) { return sp_test_run_example(tmpdir, out, args); }

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int contains(const char *s, const char *what)
{
    if (strstr(s, what)) return 1;
    print_message("# expected '%s' in the output:\n# %.2000s\n", what, s);
    return 0;
}

/* ------------------------------------------------------------------ text helpers */

static void test_clean_and_tokenize(void **state)
{
    (void)state;
    /* U+0085 (NEL), U+0096 (en dash from Windows-1252), CR and a zero-width space become spaces of
     * the same byte length; real non-ASCII letters stay */
    char s[] = "caf\xc3\xa9\xc2\x85ok\xc2\x96x\ry\xe2\x80\x8bz";
    size_t len = strlen(s);
    ex_clean_text(s, len);
    assert_int_equal(strlen(s), len);
    assert_string_equal(s, "caf\xc3\xa9  ok  x y   z");

    ex_words w = {0};
    const char *text = "Great film!!  Don't miss (really) 9/10...";
    assert_int_equal(ex_tokenize(text, strlen(text), 1, &w), 13);
    const char *want[] = {"great", "film", "!", "!", "don't", "miss", "(", "really", ")", "9/10", ".", ".", "."};
    for (int i = 0; i < 13; i++) assert_string_equal(w.items[i], want[i]);
    ex_words_clear(&w);
    /* without lower-casing, and an all-space string gives nothing */
    assert_int_equal(ex_tokenize("Ada's U.S. trip", 15, 0, &w), 4);
    assert_string_equal(w.items[0], "Ada's");
    assert_string_equal(w.items[1], "U.S");
    assert_string_equal(w.items[2], ".");
    ex_words_clear(&w);
    assert_int_equal(ex_tokenize("   \t ", 5, 1, &w), 0);
    ex_words_free(&w);
}

static void test_vocab_and_options(void **state)
{
    (void)state;
    ex_vocab *v = ex_vocab_new();
    char word[32], path[512], err[256];
    for (int i = 0; i < 3000; i++) { /* past several rehashes */
        snprintf(word, sizeof word, "w%d", i);
        assert_int_equal(ex_vocab_add(v, word), i);
    }
    assert_int_equal(ex_vocab_add(v, "w17"), 17);
    assert_int_equal(v->count[17], 2);
    assert_int_equal(ex_vocab_find(v, "w2999"), 2999);
    assert_int_equal(ex_vocab_find(v, "nope"), -1);
    snprintf(path, sizeof path, "%s/vocab.txt", tmpdir);
    assert_int_equal(ex_vocab_save(v, path, err, sizeof err), 0);
    ex_vocab *l = ex_vocab_load(path, err, sizeof err);
    assert_non_null(l);
    assert_int_equal(l->n, 3000);
    assert_int_equal(ex_vocab_find(l, "w1234"), 1234);
    ex_vocab_free(l), ex_vocab_free(v);

    /* option parsing: tests/test_opts.c */
}

/* --------------------------------------------------------------- reader, accuracy */

static void test_read(void **state)
{
    (void)state;
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/s.tsv", tmpdir);
    /* UCI imdb style double space before the TAB, a NEL inside a sentence (not a line break), a
     * TAB inside the text (the label is after the LAST one), a blank line, no final newline */
    write_text(path, "A waste of time.  \t0\nGood\xc2\x85 fun!\t1\n\nodd\ttab here\t1\nmeh\t0");
    sent_corpus *c = sent_read(path, 0, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(c->n, 4);
    assert_int_equal(c->len[0], 5); /* a waste of time . */
    assert_string_equal(c->words.items[c->start[0] + 3], "time");
    assert_int_equal(c->label[0], 0);
    assert_int_equal(c->len[1], 3); /* good fun ! */
    assert_int_equal(c->label[1], 1);
    assert_int_equal(c->len[2], 3); /* odd tab here */
    assert_int_equal(c->label[3], 0);
    assert_int_equal(c->max_len, 5);
    sent_corpus_free(c);
    c = sent_read(path, 2, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(c->n, 2);
    sent_corpus_free(c);

    write_text(path, "fine\t1\nno label here\n");
    assert_null(sent_read(path, 0, err, sizeof err));
    assert_non_null(strstr(err, ":2:"));
    write_text(path, "fine\t1\nbad\t2\n");
    assert_null(sent_read(path, 0, err, sizeof err));
    assert_non_null(strstr(err, "label must be 0 or 1"));
    write_text(path, "\n\n");
    assert_null(sent_read(path, 0, err, sizeof err));
    assert_null(sent_read("/nonexistent/s.tsv", 0, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/s.tsv"));

    /* ids: known words by vocabulary, the rest unk */
    c = sent_from_text("Good film, bad plot", err, sizeof err);
    assert_non_null(c);
    assert_int_equal(c->words.n, 5);
    ex_vocab *v = ex_vocab_new();
    ex_vocab_add(v, "<unk>"), ex_vocab_add(v, "good"), ex_vocab_add(v, "bad");
    int ids[5];
    sent_ids(c, v, 0, ids);
    int want[] = {1, 0, 0, 2, 0};
    for (int i = 0; i < 5; i++) assert_int_equal(ids[i], want[i]);
    ex_vocab_free(v);
    sent_corpus_free(c);
}

static void test_accuracy(void **state)
{
    (void)state;
    /* decisions at >= 0.5: 1 0 0 1 1 against labels 1 0 1 0 1 */
    int label[] = {1, 0, 1, 0, 1};
    double prob[] = {0.9, 0.2, 0.4999, 0.5, 0.5};
    sent_confusion c = sent_score(label, prob, 5);
    assert_int_equal(c.tp, 2);
    assert_int_equal(c.tn, 1);
    assert_int_equal(c.fn, 1);
    assert_int_equal(c.fp, 1);
    sp_test_close(sent_accuracy(c), 3.0 / 5, 1e-12, 0, "accuracy");
    sent_confusion none = sent_score(label, prob, 0);
    assert_true(sent_accuracy(none) == 0);
    double right[] = {1, 0, 1, 0, 1};
    sp_test_close(sent_accuracy(sent_score(label, right, 5)), 1.0, 1e-12, 0, "perfect");
}

/* ------------------------------------------------------------------ end to end */

static void test_program_end_to_end(void **state)
{
    (void)state;
    char data[512], model[512], last[512], *out;
    snprintf(data, sizeof data, "%s/sentiment-uci", getenv("SPOOL_EXAMPLE_DATA"));
    snprintf(model, sizeof model, "%s/m.safetensors", tmpdir);
    snprintf(last, sizeof last, "%s/m.safetensors.last", tmpdir);
    /* every model shape on a tiny slice */
    const char *shapes[][6] = {
        {"--cell", "lstm", "--pool", "last", "--output", "logistic"},
        {"--cell", "gru", "--pool", "mean", "--output", "softmax"},
        {"--cell", "lstm", "--pool", "max", "--bidir", NULL},
    };
    for (int s = 0; s < 3; s++) {
        const char *args[40] = {"train", "--data", data, "--limit", "120", "--epochs", "2", "--embed", "8",
                                "--hidden", "8", "--batch", "16", "--out", model, "--threads", "1", "--seed", "5"};
        int n = 19;
        for (int k = 0; k < 6 && shapes[s][k]; k++) args[n++] = shapes[s][k];
        args[n] = NULL;
        int st = run(&out, args);
        if (st) print_message("# shape %d: status %d\n# %s\n", s, st, out);
        assert_int_equal(st, 0);
        assert_true(contains(out, "epoch  2"));
        assert_true(contains(out, "result: test accuracy"));
        free(out);
    }
    /* seeded: the same command again gives the same losses and accuracies, epoch by epoch (the
     * lines without their timings) */
    char *first = NULL;
    for (int rep = 0; rep < 2; rep++) {
        const char *args[] = {"train", "--data", data, "--limit", "120", "--epochs", "2", "--embed", "8", "--hidden",
                              "8", "--batch", "16", "--out", model, "--threads", "1", "--seed", "9", "--unk", "0.5",
                              "--word-dropout", "0.1", NULL};
        assert_int_equal(run(&out, args), 0);
        char *kept = calloc(strlen(out) + 1, 1);
        for (char *line = strstr(out, "\nepoch"); line; line = strstr(line + 1, "\nepoch")) {
            char *end = strstr(line, "  (");
            assert_non_null(end);
            strncat(kept, line, (size_t)(end - line));
        }
        assert_non_null(strstr(kept, "epoch  2"));
        if (rep == 0) first = kept;
        else {
            if (strcmp(first, kept)) print_message("# run 1:%s\n# run 2:%s\n", first, kept);
            assert_string_equal(first, kept);
            free(kept);
        }
        free(out);
    }
    free(first);
    const char *ev[] = {"eval", "--model", model, "--data", data, NULL};
    assert_int_equal(run(&out, ev), 0);
    assert_true(contains(out, "test accuracy"));
    free(out);
    const char *pr[] = {"predict", "--model", model, "What a wonderful, moving film!", NULL};
    assert_int_equal(run(&out, pr), 0);
    double p = -1;
    assert_int_equal(sscanf(out, "%lf", &p), 1);
    assert_true(p >= 0 && p <= 1);
    assert_true(contains(out, "(7 words"));
    free(out);
    /* several sentences as arguments, then one per line of stdin (blank lines skipped) */
    const char *pr2[] = {"predict", "--model", model, "dull", "a joy from start to end", NULL};
    assert_int_equal(run(&out, pr2), 0);
    assert_true(contains(out, "(1 words") && contains(out, "(6 words"));
    free(out);
    char in[512];
    snprintf(in, sizeof in, "%s/in.txt", tmpdir);
    FILE *f = fopen(in, "w");
    assert_non_null(f);
    fputs("a gem\n\nboring and far too long\r\nfine\n", f);
    fclose(f);
    const char *pr3[] = {"predict", "--model", model, NULL};
    assert_int_equal(sp_test_run_example_stdin(tmpdir, &out, pr3, in), 0);
    assert_true(contains(out, "(2 words, ") && contains(out, "\ta gem\n") && contains(out, "\tboring and far too long\n") &&
                contains(out, "\tfine\n"));
    int lines = 0;
    for (char *q = out; (q = strstr(q, "words, ")); q++) lines++;
    assert_int_equal(lines, 3);
    free(out);
    f = fopen(in, "w");
    assert_non_null(f);
    fputs("\n  \n", f);
    fclose(f);
    assert_int_equal(sp_test_run_example_stdin(tmpdir, &out, pr3, in), 1); /* nothing to read */
    assert_true(contains(out, "no sentence on stdin"));
    free(out);
    const char *pr4[] = {"predict", "--model", model, "", NULL};
    assert_int_equal(run(&out, pr4), 1);
    assert_true(contains(out, "sentence 1 has no words"));
    free(out);
    /* resume the last (bidirectional) run for a third epoch */
    const char *res[] = {"train", "--data", data, "--limit", "120", "--epochs", "3", "--batch", "16",
                         "--resume", last, "--out", model, "--threads", "1", "--seed", "5", NULL};
    assert_int_equal(run(&out, res), 0);
    assert_true(contains(out, "resumed from"));
    assert_true(contains(out, "epoch  3"));
    assert_false(strstr(out, "epoch  1 "));
    free(out);
    /* a resumed run keeps its architecture: another --hidden is refused, not ignored */
    const char *rh[] = {"train", "--data", data, "--limit", "120", "--epochs", "4", "--batch", "16", "--hidden", "77",
                        "--resume", last, "--out", model, "--threads", "1", NULL};
    assert_int_equal(run(&out, rh), 1);
    assert_true(contains(out, "--hidden 77 differs from the checkpoint's"));
    free(out);
}

static void test_program_bad_input(void **state)
{
    (void)state;
    char model[512], bad[512], tr[512], *out;
    snprintf(model, sizeof model, "%s/m.safetensors", tmpdir);
    snprintf(bad, sizeof bad, "%s/garbage.safetensors", tmpdir);
    snprintf(tr, sizeof tr, "%s/broken.tsv", tmpdir);
    write_text(bad, "\x10\0\0\0\0\0\0\0{\"a\":1}");
    write_text(tr, "good\t1\nbad\t0\nugly\tx\n");
    struct {
        const char *args[8];
        int status;
        const char *msg;
    } cases[] = {
        {{NULL}, 2, "Usage"},
        {{"classify", NULL}, 2, "unknown command"},
        {{"train", "--pool", "median", NULL}, 2, "--pool expects"},
        {{"train", "--cell", "rnn", NULL}, 2, "--cell expects"},
        {{"train", "--output", "probit", NULL}, 2, "--output expects"},
        {{"train", "--dropout", "1.5", NULL}, 2, "--dropout expects"},
        {{"train", "--batch", "-3", NULL}, 2, "--batch expects"},
        {{"train", "--seed", "-1", NULL}, 2, "--seed expects"},
        {{"train", "--train", tr, NULL}, 1, "broken.tsv:3: label must be 0 or 1"},
        {{"train", "--data", "/nonexistent", NULL}, 1, "cannot open '/nonexistent/train.tsv'"},
        {{"predict", "--model", model, NULL}, 1, "no sentence on stdin"},
        {{"predict", "--model", bad, "fine", NULL}, 1, "cannot open model"},
        {{"eval", "--model", "/nonexistent.safetensors", NULL}, 1, "cannot open model"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = run(&out, cases[i].args);
        if (st != cases[i].status) print_message("# case %zu: status %d, output:\n# %s\n", i, st, out);
        assert_int_equal(st, cases[i].status);
        assert_true(contains(out, cases[i].msg));
        free(out);
    }
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/spool_test_sentiment_XXXXXX");
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
        cmocka_unit_test(test_clean_and_tokenize),
        cmocka_unit_test(test_vocab_and_options),
        cmocka_unit_test(test_read),
        cmocka_unit_test(test_accuracy),
        cmocka_unit_test(test_program_end_to_end),
        cmocka_unit_test(test_program_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
