/* SPDX-License-Identifier: MIT */
/* ocr_data.h - the plain-C half of spool-ocr that needs neither FreeType nor the model (and that
 * tests/fuzz/fuzz_text.c and the error tests reach): grey images and their files (PGM P2/P5,
 * PNG when built with libpng), the resampling of a line to the model's height and its
 * standardisation, the text corpus of training, validation and test lines cut from the bundled
 * data sets with its fixed held-out splits, the character set, and the error rates (Levenshtein
 * over characters and over words). */
#ifndef OCR_DATA_H
#define OCR_DATA_H

#include <stddef.h>
#include <stdint.h>

/* A grey image, row-major, 0 = black ink, 255 = white paper. */
typedef struct {
    int w, h;
    uint8_t *px;
} ocr_image;

enum { OCR_MAX_SIDE = 16384 }; /* images wider or taller than this are refused (a line is < 4000 px) */
#define OCR_MAX_FILE ((size_t)64 << 20) /* image files above 64 MiB are refused (/dev/zero ends in a message) */

int ocr_image_alloc(ocr_image *im, int w, int h, uint8_t fill); /* 0 or -1 (out of memory, bad size) */
void ocr_image_free(ocr_image *im);

/* PGM (P5 binary or P2 plain, maxval 1..65535, '#' comments) from memory: 0, or -1 with err set
 * ("not a PGM file: ...", "truncated: ...") - never a crash on any bytes (fuzzed). */
int ocr_pgm_parse(const uint8_t *buf, size_t n, ocr_image *im, char *err, size_t errn);
/* A PGM or PNG file (by its first bytes, not its name). 0, or -1 with err naming the file. */
int ocr_image_read(const char *path, ocr_image *im, char *err, size_t errn);
/* Written atomically as P5 PGM, or PNG when path ends in .png (and the build has libpng). */
int ocr_image_write(const char *path, const ocr_image *im, char *err, size_t errn);
int ocr_have_png(void); /* 1 when built with libpng */

/* The line scaled to height H (aspect kept, bilinear; width at least 1) as features in [0, 1]
 * (1 = ink), column-major: out[x * H + y]. *W gets the width; the caller frees the result. */
float *ocr_columns(const ocr_image *im, int H, int *W);

/* The n features of one line standardised in place: shifted and scaled to mean 0 and variance 1
 * (a blank line only shifted). The model's input: with the raw ink in [0, 1] (mostly 0, and its
 * level set by the line's ink and paper greys) training sat for hundreds of steps on CTC's
 * all-blank plateau; standardised, it leaves it several times sooner (docs/ocr.md, defaults). */
void ocr_standardize(float *f, size_t n);

/* ---------------------------------------------------------------- characters and corpus */

/* Classes: 0 = the CTC blank, 1..95 = printable ASCII ' '..'~'. */
enum { OCR_CLASSES = 96 };
static inline int ocr_class_of(unsigned char c) { return c >= 32 && c < 127 ? c - 31 : -1; }
static inline char ocr_char_of(int k) { return k >= 1 && k < OCR_CLASSES ? (char)(k + 31) : '?'; }

/* The text lines spool-ocr renders: every bundled corpus in the list below, each sentence or
 * line with whitespace collapsed, lines with characters outside printable ASCII dropped, long
 * ones cut at word boundaries into pieces of at most max_chars. A line's split is fixed by the
 * FNV-1a hash h of its text (whatever the order or the machine; ocr_line_split): test when
 * h % 10 == 0, validation when h % 100 == 1 (1 % of the lines, for choosing options without
 * looking at the test set), else training. Training never sees a test or validation sentence. */
enum { OCR_SPLIT_TRAIN, OCR_SPLIT_VAL, OCR_SPLIT_TEST };
typedef struct {
    char **line;
    int n;
    int *train, n_train; /* indices into line */
    int *val, n_val;
    int *test, n_test;
} ocr_corpus;

/* The corpora under data_dir: tinyshakespeare/input.txt, sentiment-uci/{train,test}.tsv,
 * sentiment-mr/{train,test}.tsv (the text column). 0, or -1 with err set. */
int ocr_corpus_load(ocr_corpus *c, const char *data_dir, int max_chars, char *err, size_t errn);
void ocr_corpus_free(ocr_corpus *c);
/* Appends the pieces of one text (<= max_chars each) to c (split after load: 0 or -1). */
int ocr_corpus_add(ocr_corpus *c, const char *text, size_t n, int max_chars);
int ocr_line_split(const char *s); /* OCR_SPLIT_TRAIN, OCR_SPLIT_VAL or OCR_SPLIT_TEST */

/* ---------------------------------------------------------------------- error rates */

/* Levenshtein distance between a[0..na) and b[0..nb) (ints: characters or word ids). */
long ocr_edit_distance(const int *a, int na, const int *b, int nb);
/* Accumulates character and word errors of (reference, hypothesis) pairs. */
typedef struct {
    long char_err, chars, word_err, words, lines, exact;
} ocr_score;
int ocr_score_add(ocr_score *s, const char *ref, const char *hyp); /* 0, or -1 out of memory */
double ocr_cer(const ocr_score *s);
double ocr_wer(const ocr_score *s);

/* The index of a rendered set: lines "file<TAB>text" (file relative to the index's folder).
 * 0, or -1 with err naming the file and line. */
typedef struct {
    char **file, **text;
    int n;
} ocr_index;
int ocr_index_read(const char *path, ocr_index *ix, char *err, size_t errn);
void ocr_index_free(ocr_index *ix);

#endif
