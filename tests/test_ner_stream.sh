#!/bin/bash
# SPDX-License-Identifier: MIT
# test_ner_stream.sh - spool-ner tag runs its BiLSTMs (words, and characters with --chars)
# forward only (sp_stream_run); --tape runs them on a tape as training does. For tiny models
# (CRF with the character BiLSTM, softmax without) both print the same tags and the same
# emission scores to 9 significant digits on a set of sentences.
# Usage: test_ner_stream.sh BUILD_EXAMPLES_DIR
set -u
. "$(dirname "$0")/stream_same.sh"
B=$(cd "${1:?usage: test_ner_stream.sh build/examples}" && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/test_ner_stream.XXXXXX")
trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1
N="$B/spool-ner"
sentences=("Ada Lovelace met Charles Babbage in London on Tuesday with the Royal Society"
           "The United Nations met in New York"
           "Paris"
           "Microsoft and Google opened offices in Dublin , Ireland , last year , said John Smith of Reuters")
n=0 failed=0
for cfg in "--chars --char-hidden 8 --char-embed 8" "--output softmax --layers 2"; do
    n=$((n + 1))
    # shellcheck disable=SC2086
    if ! "$N" train --data ner-wikigold --limit 300 --epochs 2 --hidden 16 --embed 16 --threads 1 $cfg \
            --out m.safetensors > train.log 2>&1; then
        failed=$((failed + 1)); echo "not ok $n - train $cfg"; tail -3 train.log | sed 's/^/# /'; continue
    fi
    out=$(echo "$cfg" | grep -q softmax && echo "--output softmax")
    : > stream.out; : > tape.out
    for s in "${sentences[@]}"; do
        # shellcheck disable=SC2086
        "$N" tag --model m.safetensors $out --tokens --scores "$s" >> stream.out 2>&1
        # shellcheck disable=SC2086
        "$N" tag --model m.safetensors $out --tokens --scores --tape "$s" >> tape.out 2>&1
    done
    # 39 tokens, and a line per entity found
    same_outputs $n "$cfg" "$(grep -c "	" stream.out)" 39 "the same tags and scores"
done
echo "1..$n"
[ $failed -eq 0 ]
