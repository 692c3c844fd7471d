#!/bin/bash
# SPDX-License-Identifier: MIT
# test_sentiment_stream.sh - spool-sentiment predict runs the recurrence forward only
# (sp_stream_run); --tape runs it on a tape as training does. On 300 sentences of the bundled UCI
# test split, for tiny models of each shape (bidirectional 2-layer last-state, GRU mean,
# bidirectional max with softmax, 2-layer last-state, bidirectional minGRU mean, 2-layer minLSTM
# last-state: the tape runs their recurrence as one linear_scan, the stream step by step), both
# print the same P(positive) to 12 decimals.
# Usage: test_sentiment_stream.sh BUILD_EXAMPLES_DIR SENTIMENT_UCI_TEST_TSV
set -u
. "$(dirname "$0")/stream_same.sh"
B=$(cd "${1:?usage: test_sentiment_stream.sh build/examples test.tsv}" && pwd)
TSV=$(cd "$(dirname "${2:?usage: test_sentiment_stream.sh build/examples test.tsv}")" && pwd)/$(basename "$2")
W=$(mktemp -d "${TMPDIR:-/tmp}/test_sentiment_stream.XXXXXX")
trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1
S="$B/spool-sentiment"
n=0 failed=0
for cfg in "--bidir --layers 2 --pool last" "--pool mean --cell gru" "--bidir --pool max --output softmax" \
           "--layers 2 --pool last" "--bidir --pool mean --cell mingru" "--layers 2 --pool last --cell minlstm"; do
    n=$((n + 1))
    # shellcheck disable=SC2086
    if ! "$S" train --data sentiment-uci --limit 200 --epochs 1 --hidden 8 --embed 8 --threads 1 $cfg \
            --out m.safetensors > train.log 2>&1; then
        failed=$((failed + 1)); echo "not ok $n - train $cfg"; tail -3 train.log | sed 's/^/# /'; continue
    fi
    [ -s sents.txt ] || awk -F'\t' 'NR <= 300 { print $1 }' "$TSV" > sents.txt
    [ -s sents.txt ] || { echo "not ok $n - no test sentences"; failed=$((failed + 1)); continue; }
    "$S" predict --model m.safetensors --digits 12 < sents.txt > stream.out 2> stream.err
    "$S" predict --model m.safetensors --digits 12 --tape < sents.txt > tape.out 2> tape.err
    same_outputs $n "$cfg" "$(wc -l < stream.out)" 250 "predictions equal to 12 decimals"
done
echo "1..$n"
[ $failed -eq 0 ]
