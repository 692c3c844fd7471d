/* SPDX-License-Identifier: MIT */
/* wordlm_data.h - the text side of spool-wordlm: sentences read from a corpus file, split into
 * words, a vocabulary with <eos> (end of sentence, also the start symbol) and <unk> (every word
 * seen fewer than min_count times in training), length-bucketed batches, and the arithmetic of
 * perplexity. No tensors here, so tests/test_wordlm.c can check it on hand-made cases. */
#ifndef SPOOL_EXAMPLES_WORDLM_DATA_H
#define SPOOL_EXAMPLES_WORDLM_DATA_H

#include "common/text.h"

#define WL_EOS 0
#define WL_UNK 1

/* Sentences as word ids, all in one array: sentence i is ids[start[i] .. start[i] + len[i]). */
typedef struct {
    int n;
    int *start, *len;
    int *ids;
    long n_ids;
} wl_corpus;

/* Reads the sentences of a corpus file into words: a .tsv file gives the text before the first
 * TAB of each line, any other file every non-empty line. Lower-cases, splits as ex_tokenize.
 * Lines with no word are skipped. 0 on success, -1 with err set. */
int wl_read_sentences(const char *path, ex_words *words, int **sent_len, int *n_sent, char *err, size_t errlen);

/* The vocabulary: "<eos>" (0), "<unk>" (1), then every word with count >= min_count in the
 * given words, most frequent first (ties in byte order), so ids are reproducible. */
ex_vocab *wl_build_vocab(const ex_words *words, int min_count);
/* Word ids of words (unknown words -> <unk>), grouped by the sentence lengths. */
int wl_corpus_make(wl_corpus *c, const ex_vocab *v, const ex_words *words, const int *sent_len, int n_sent);
void wl_corpus_free(wl_corpus *c);
/* Share of <unk> among the words (not counting <eos>). */
double wl_unk_rate(const wl_corpus *c);

/* A batch: B sentences, T = longest + 1 steps, time-major [T*B]. Input at step 0 is <eos>, then
 * the words; the target is the words, then <eos>; padding is -1 in both (zero embedding row, and
 * ignored by the loss). Returns the number of predicted tokens. ids/tgt hold T*B ints. */
int wl_batch_T(const wl_corpus *c, const int *which, int B);
long wl_batch_fill(const wl_corpus *c, const int *which, int B, int T, int *ids, int *tgt);

/* Batches of similar length: the order is a shuffle, cut into windows of `window` sentences,
 * each window sorted by length. Writes n indices to order. */
void wl_bucket_order(const wl_corpus *c, int *order, int window, sp_rng *rng);

/* exp(nll / n): the perplexity of n predicted tokens whose negative log-likelihoods (natural
 * log) sum to nll. A model that spreads its mass uniformly over V words has perplexity V. */
double wl_perplexity(double nll, long n);

#endif
