/* SPDX-License-Identifier: MIT */
/* examples/sentiment/sentiment_data.h - the data side of the sentiment example: reading
 * `sentence<TAB>label` files into word lists, turning words into ids, and the scores
 * (accuracy, confusion counts). No tensors here, so it can be unit-tested on hand-made cases. */
#ifndef EX_SENTIMENT_DATA_H
#define EX_SENTIMENT_DATA_H

#include "common/text.h"

typedef struct {
    int n;            /* sentences */
    int *start, *len; /* sentence i is words [start[i], start[i] + len[i]) */
    ex_words words;   /* all words, lower-cased and tokenised */
    int *label;       /* 0 negative, 1 positive */
    int max_len;
} sent_corpus;

/* Read `sentence<TAB>label` lines (label 0 or 1). Lines are split on LF only (a U+0085 NEL inside
 * a sentence is not a line break); the text is cleaned (ex_clean_text: stray C0/C1 controls
 * become spaces), so the double spaces before the TAB in UCI's imdb lines vanish in
 * tokenising. The sentence is the text before the LAST TAB. Blank lines are skipped. A line
 * without a TAB or with another label is an error naming file and line. At most `limit`
 * sentences (all if limit <= 0). NULL with err set on error. */
sent_corpus *sent_read(const char *path, int limit, char *err, size_t errlen);
/* Tokenise one free-text sentence the same way (for `predict`). */
sent_corpus *sent_from_text(const char *text, char *err, size_t errlen);
void sent_corpus_free(sent_corpus *c);

/* Word ids for the model: ids[i] = vocab id of word i, or unk if absent. */
void sent_ids(const sent_corpus *c, const ex_vocab *v, int unk, int *ids);

/* Counts of a binary classifier's decisions. prob[i] is P(positive); the decision is
 * positive iff prob >= 0.5. */
typedef struct {
    int tp, tn, fp, fn;
} sent_confusion;

sent_confusion sent_score(const int *label, const double *prob, int n);
double sent_accuracy(sent_confusion c); /* (tp + tn) / n; 0 for n = 0 */

#endif
