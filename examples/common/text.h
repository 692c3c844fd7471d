/* SPDX-License-Identifier: MIT */
/* examples/common/text.h - plain helpers shared by the examples that read text (NER, sentiment,
 * word LM, vanishing; the line reader serves every program): reading a whole file or its lines,
 * cleaning stray control characters, splitting text into words, a word vocabulary (string <-> id), a seeded shuffle (options: common/opts.h;
 * the clock: common/progress.h). Nothing here touches spool's tensors: it is the data plumbing a
 * reader can skim past to reach the model code.
 * Symbols are prefixed ex_ (example helpers), not sp_, because they are not part of the library. */
#ifndef EX_COMMON_TEXT_H
#define EX_COMMON_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "spool.h"

/* The whole file, NUL-terminated, in *len bytes (malloc'd). NULL on error (a file holding NUL
 * bytes is not text: refused), with a message naming the file in err. */
char *ex_read_file(const char *path, size_t *len, char *err, size_t errlen);
/* The whole file as bytes (NUL bytes allowed; a NUL is added after them), refused with a message
 * once it reaches max bytes (0: no limit), so /dev/zero ends in an error, not in all memory. */
char *ex_read_bytes(const char *path, size_t *len, size_t max, char *err, size_t errlen);
/* Text line by line, the one way the programs read lines (stdin of predict, --eval-file, their
 * own logs): a line longer than max bytes, a NUL byte (binary input, /dev/zero) and a read error
 * (EISDIR for a directory, EIO) each end the reading with a message naming the file and the line
 * number, instead of unbounded memory, a silently cut line or an endless loop. */
#define EX_LINE_MAX ((size_t)1 << 20) /* the programs' cap: 1 MiB per line */
typedef struct {
    FILE *f;
    const char *name; /* in messages ("stdin" or the path: the caller keeps it alive) */
    size_t max;
    long lineno;      /* of the line last returned (or failed on) */
    char *buf;
    size_t cap;
    int own;          /* f was opened by ex_lines_open: closed by ex_lines_close */
} ex_lines;
/* Read lines from path. 0, or -1 with "cannot open 'path': ..." in err. */
int ex_lines_open(ex_lines *r, const char *path, size_t max, char *err, size_t errlen);
/* Read lines from an open stream (not closed by ex_lines_close), name for messages. */
void ex_lines_stream(ex_lines *r, FILE *f, const char *name, size_t max);
/* The next line, without its '\n' (and a '\r' before it), NUL-terminated in *line (valid until the
 * next call), *len bytes: 1; 0 at the end of the input; -1 with err set ("NAME:LINE: ..."). A
 * last line without '\n' counts. */
int ex_lines_next(ex_lines *r, char **line, size_t *len, char *err, size_t errlen);
void ex_lines_close(ex_lines *r);

/* Write len bytes to path atomically (atomic.h). 0 on success, -1 with err set. */
int ex_write_file(const char *path, const char *data, size_t len, char *err, size_t errlen);

/* Replace in place, by spaces of the same byte length, the characters that are noise in these
 * data sets: ASCII controls other than TAB and LF (CR included), DEL, the C1 controls
 * U+0080..U+009F (left over from mis-decoded Windows-1252 dashes, and NEL U+0085) and the
 * zero-width space U+200B. Byte lengths stay the same so offsets into s remain valid. */
void ex_clean_text(char *s, size_t len);
/* 1 if s[0..len) is valid UTF-8 (no stray continuation bytes, overlong forms, surrogates or code
 * points above U+10FFFF), else 0 with the offset of the first bad byte in *bad. */
int ex_utf8_valid(const char *s, size_t len, size_t *bad);

/* A growable list of owned strings. */
typedef struct {
    char **items;
    int n, cap;
} ex_words;
int ex_words_push(ex_words *w, const char *s, size_t len); /* copies; 0 or -1 (no memory) */
void ex_words_clear(ex_words *w);                          /* frees the strings, keeps the list */
void ex_words_free(ex_words *w);

/* Append the words of s[0..len) to out: split on whitespace, then split leading and trailing
 * ASCII punctuation off each chunk one character at a time ("(great!)" -> "(", "great", "!",
 * ")"), keeping inner punctuation ("don't", "9/10", "u.s"). With lower != 0, ASCII letters are
 * lower-cased. Returns the number of words appended, or -1 if out of memory. */
int ex_tokenize(const char *s, size_t len, int lower, ex_words *out);

/* A word vocabulary: open-addressing hash from string to a dense id 0..n-1, with counts. */
typedef struct {
    char **word;  /* id -> string (owned) */
    int *count;   /* id -> times added */
    int n, cap;
    int *slot;    /* hash slot -> id + 1 (0 = empty) */
    int nslot;    /* power of two, kept > 2n */
} ex_vocab;

ex_vocab *ex_vocab_new(void);
void ex_vocab_free(ex_vocab *v);
int ex_vocab_add(ex_vocab *v, const char *w);         /* id (new or existing, count+1); -1 no memory */
int ex_vocab_find(const ex_vocab *v, const char *w);  /* id, or -1 if absent */
/* One word per line, in id order, written atomically; load rebuilds the same ids (counts 0).
 * Words must not contain '\n'. 0 or -1 with err set. */
int ex_vocab_save(const ex_vocab *v, const char *path, char *err, size_t errlen);
ex_vocab *ex_vocab_load(const char *path, char *err, size_t errlen);

/* Fisher-Yates shuffle of a[0..n) with spool's seeded generator (runs are reproducible). */
void ex_shuffle(int *a, int n, sp_rng *rng);

#endif
