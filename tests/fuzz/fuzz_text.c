/* SPDX-License-Identifier: MIT */
/* fuzz_text.c - libFuzzer harness of the examples' data readers that parse bytes: the first byte
 * picks one. charlm: UTF-8 decoding, the vocabulary stored in a checkpoint, the carried-state
 * hex; word examples: cleaning + tokenising, the vocabulary file; sentiment: the review reader;
 * dates: the ISO and human date parsers; the line reader of stdin and --eval-file (common/text.c,
 * with a small cap) feeding spool-dates' eval-line parser and spool-sentiment's sentence reader;
 * spool-ocr: the PGM reader (then the scaling of the image into frames), its TSV index reader and
 * the error rates over the index's pairs.
 * Files are read through a temp file where the reader takes a path. */
#include "spool.h"
#include "charlm/charlm.h"
#include "common/text.h"
#include "dates/dates_data.h"
#include "ocr/ocr_data.h"
#include "sentiment/sentiment_data.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int which = data[0] % 9;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    char *s = malloc(n + 1), err[256];
    memcpy(s, d, n);
    s[n] = 0;
    switch (which) {
    case 0: {
        uint32_t *cp = NULL;
        long k = cl_utf8_decode(d, n, &cp, err, sizeof err);
        if (k >= 0) {
            cl_vocab v = {0};
            if (cl_vocab_build(&v, cp, k, (int)(n & 1)) == 0) cl_vocab_free(&v);
        }
        free(cp);
        break;
    }
    case 1: {
        cl_vocab v = {0};
        if (cl_vocab_from_string(&v, s, err, sizeof err) == 0) {
            char *back = cl_vocab_to_string(&v);
            free(back);
        }
        cl_vocab_free(&v);
        break;
    }
    case 2: {
        ex_clean_text(s, n);
        ex_words w = {0};
        ex_tokenize(s, strlen(s), (int)(n & 1), &w);
        ex_words_free(&w);
        break;
    }
    case 3: {
        char path[] = "/tmp/fuzz_text.XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0) break;
        if (write(fd, d, n) == (ssize_t)n) {
            ex_vocab *v = ex_vocab_load(path, err, sizeof err);
            ex_vocab_free(v);
        }
        close(fd);
        unlink(path);
        break;
    }
    case 4: {
        sent_corpus *c = sent_from_text(s, err, sizeof err);
        sent_corpus_free(c);
        break;
    }
    case 5: {
        dt_date a;
        dt_parse_iso(s, &a);
        dt_parse_human(s, &a);
        char norm[256], why[160];
        if (dt_normalise(s, norm, sizeof norm) >= 0 && !dt_check_input(norm, why, sizeof why)) {
            static const dt_date some[] = {{1998, 3, 3}, {2012, 12, 12}, {1950, 1, 31}, {2049, 12, 1}, {0, 13, 40}};
            for (int i = 0; i < 5; i++) dt_supports(norm, some[i], why, sizeof why);
        }
        break;
    }
    case 6: {
        sp_carry c = {0};
        sp_params *ps = sp_params_new();
        sp_rnn r;
        sp_rng rng;
        sp_rng_seed(&rng, 1);
        if (sp_rnn_init(&r, ps, "g", SP_CELL_GRU_RESET_AFTER_MATMUL, 2, 3, 1, 0, NULL, &rng) == SP_OK &&
            sp_carry_init(&c, &r, 2) == SP_OK) {
            cl_carry_from_hex(&c, s);
            sp_carry_free(&c);
        }
        sp_params_free(ps);
        break;
    }
    case 7: {
        char path[] = "/tmp/fuzz_text.XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0) break;
        ex_lines r;
        if (write(fd, d, n) == (ssize_t)n && ex_lines_open(&r, path, 64, err, sizeof err) == 0) {
            char *line;
            while (ex_lines_next(&r, &line, NULL, err, sizeof err) > 0) {
                const char *text, *gold;
                int nodate;
                dt_date g;
                sent_corpus_free(sent_from_text(line, err, sizeof err));
                dt_eval_line(line, &text, &gold, &nodate, &g);
            }
            ex_lines_close(&r);
        }
        close(fd);
        unlink(path);
        break;
    }
    case 8: {
        ocr_image im;
        if (ocr_pgm_parse(d, n, &im, err, sizeof err) == 0) {
            int w;
            int H = 1 + (int)(n % 40);
            float *cols = (size_t)im.w * im.h <= 1 << 16 ? ocr_columns(&im, H, &w) : NULL;
            if (cols) ocr_standardize(cols, (size_t)w * H); /* the model's input, as spool-ocr makes it */
            free(cols);
            ocr_image_free(&im);
        }
        char path[] = "/tmp/fuzz_text.XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0) break;
        ocr_index ix;
        if (write(fd, d, n) == (ssize_t)n && ocr_index_read(path, &ix, err, sizeof err) == 0) {
            ocr_score sc = {0};
            for (int i = 0; i < ix.n && i < 64; i++) ocr_score_add(&sc, ix.text[i], ix.file[i]);
            ocr_index_free(&ix);
        }
        close(fd);
        unlink(path);
        break;
    }
    }
    free(s);
    return 0;
}
