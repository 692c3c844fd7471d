/* SPDX-License-Identifier: MIT */
/* examples/ner/ner_eval.h - the data side of the NER example: reading CoNLL-style token<TAB>tag
 * files, BIO tags, entity spans with the CoNLL evaluation's rules (conlleval), entity-level
 * precision/recall/F1 and the most-frequent-tag baseline. No tensors here, so the scoring can
 * be unit-tested on hand-made sentences (tests/test_ner.c). */
#ifndef EX_NER_EVAL_H
#define EX_NER_EVAL_H

#include "common/text.h"

/* ------------------------------------------------------------------ tags */

/* Split a tag: "O" -> 'O' with type ""; "B-PER" / "I-creative-work" -> 'B' / 'I' with the type
 * after the FIRST hyphen ("creative-work"). Returns 0, or -1 for anything else ("", "B-", "X"). */
int ner_tag_split(const char *tag, char *prefix, const char **type);

/* The BIO rules as masks for constrained (Viterbi) decoding over the K tags tags[0..K): a tag may
 * start a sentence unless it is I-X, and I-X may only follow B-X or I-X; allowed[i*K + j] = 1 if
 * tag j may follow tag i, start[j] = 1 if tag j may come first. Tags that are not BIO (see
 * ner_tag_split) are treated as O. */
void ner_bio_allowed(const char *const *tags, int K, unsigned char *allowed, unsigned char *start);
/* 1 if the tag sequence obeys those rules (every I-X continues a B-X or I-X), else 0. */
int ner_bio_valid(const char *const *tags, int n);

/* ----------------------------------------------------------------- spans */

typedef struct {
    int begin, end;   /* tokens [begin, end) */
    const char *type; /* points into the tag string it came from (after "B-"/"I-") */
} ner_span;

/* The entity spans of one sentence's tags, by the rules of conlleval for BIO input:
 *   a span starts at B-X, and also at I-X when no span of type X is open (sentence start, after
 *   O, or after a span of another type): an I- without a B- starts an entity;
 *   a span ends before O, before any B-, and before a tag of another type.
 * Writes at most n spans to out (n always suffices) and returns how many. Invalid tags (see
 * ner_tag_split) count as O. */
int ner_spans(const char *const *tags, int n, ner_span *out);

/* ---------------------------------------------------------------- scorer */

/* Entity counts over a whole test set, in total and per type. A predicted entity is correct
 * only if a gold entity has exactly the same first token, last token and type. */
typedef struct {
    ex_vocab *types;   /* type name -> index into the arrays below */
    int *gold, *pred, *correct;
    int cap;
    int n_tokens, n_tokens_correct; /* token-level tag accuracy, for the progress output */
} ner_scorer;

typedef struct {
    int gold, pred, correct;
    double precision, recall, f1; /* 0 when their denominator is 0, as conlleval prints */
} ner_prf;

ner_scorer *ner_scorer_new(void);
void ner_scorer_free(ner_scorer *s);
/* Add one sentence's gold and predicted tags (n tokens each). 0, or -1 if out of memory. */
int ner_scorer_add(ner_scorer *s, const char *const *gold, const char *const *pred, int n);
ner_prf ner_scorer_total(const ner_scorer *s);
ner_prf ner_scorer_type(const ner_scorer *s, int k); /* k < s->types->n */
/* A conlleval-style report: the overall line, then one line per type (sorted by name). */
void ner_scorer_print(const ner_scorer *s, FILE *f, const char *title);

/* ---------------------------------------------------------------- corpus */

typedef struct {
    int n_sent, n_tok;
    int *start, *len;  /* sentence i is tokens [start[i], start[i] + len[i]) */
    char **word;       /* n_tok tokens as written (owned) */
    int *tag;          /* n_tok tag ids into the tag vocabulary given to ner_read */
    int max_len;
    int cap_sent, cap_tok;
} ner_corpus;

/* Read a file of `token<TAB>tag` lines with a blank line after each sentence (CR before LF,
 * spaces around the TAB and a missing final blank line are tolerated). Tags are added to tags
 * when add_tags != 0; otherwise an unknown tag is an error. At most `limit` sentences are read
 * if limit > 0. Errors name the file and line; returns NULL with err set. */
ner_corpus *ner_read(const char *path, ex_vocab *tags, int add_tags, int limit, char *err, size_t errlen);
void ner_corpus_free(ner_corpus *c);

/* -------------------------------------------------------------- baseline */

/* The classic CoNLL baseline: each word gets the tag it had most often in the training data
 * (ties: the tag seen first); unseen words get O. Built on exact word forms. */
typedef struct {
    ex_vocab *words;
    int *best;         /* word id -> tag id */
    int o_tag;
} ner_baseline;

int ner_baseline_fit(ner_baseline *b, const ner_corpus *train, const ex_vocab *tags);
int ner_baseline_tag(const ner_baseline *b, const char *word);
void ner_baseline_free(ner_baseline *b);

#endif
