#!/bin/sh
# SPDX-License-Identifier: MIT
# test_wordlm_run.sh - spool-wordlm end to end on a tiny corpus: train (perplexity printed,
# checkpoint + vocabulary written), eval, score (per-word probabilities and P(sentence)), sample;
# bad options and files must give a message and an exit status other than 0 (and no crash).
# usage: test_wordlm_run.sh PATH/TO/spool-wordlm
set -u
exe="$1"
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
bad() {
    "$exe" "$@" >"$dir/stdout.txt" 2>"$dir/err"; rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] || fail "'$*' gave exit status $rc"
    [ -s "$dir/err" ] || fail "'$*' printed no message"
    echo "ok: '$*' -> $rc: $(head -n1 "$dir/err")"
}
i=0
while [ $i -lt 40 ]; do
    echo "the cat sat on the mat .	1"; echo "a dog sat on a log .	0"; echo "the dog saw the cat !	1"
    i=$((i + 1))
done >"$dir/train.tsv"
printf 'the cat sat on the log .\t1\na dog saw the mat .\t0\n' >"$dir/test.tsv"
"$exe" --help | grep -q "Usage: spool-wordlm" || fail "--help"
"$exe" train --train "$dir/train.tsv" --test "$dir/test.tsv" --min-count 2 --epochs 3 --batch 8 --emb 8 \
    --hidden 16 --lr 0.01 --threads 1 --save "$dir/m.safetensors" >"$dir/log" 2>&1 || { cat "$dir/log"; fail "train"; }
grep -q "final held-out perplexity" "$dir/log" || fail "no final perplexity"
[ -s "$dir/m.safetensors" ] && [ -s "$dir/m.safetensors.vocab" ] || fail "no checkpoint or vocabulary"
"$exe" eval --load "$dir/m.safetensors" --test "$dir/test.tsv" >"$dir/ev" 2>&1 || { cat "$dir/ev"; fail "eval"; }
grep -q "perplexity" "$dir/ev" || fail "eval output"
"$exe" score --load "$dir/m.safetensors" "the cat sat on the mat ." "zebra" >"$dir/sc" 2>&1 || { cat "$dir/sc"; fail "score"; }
grep -q "log P(sentence)" "$dir/sc" || fail "score output"
grep -q "<unk>" "$dir/sc" || fail "an unknown word is not marked <unk>"
"$exe" sample --load "$dir/m.safetensors" --n 3 --seed 4 >"$dir/sa" 2>&1 || { cat "$dir/sa"; fail "sample"; }
[ "$(wc -l <"$dir/sa")" -eq 3 ] || fail "sample: 3 lines expected"
echo "ok: train, eval, score, sample"
# minGRU: the recurrence is one linear_scan in training, steps in sampling; a checkpoint reloads
"$exe" train --train "$dir/train.tsv" --test "$dir/test.tsv" --min-count 2 --epochs 2 --batch 8 --emb 8 --cell mingru \
    --hidden 16 --lr 0.01 --threads 1 --save "$dir/g.safetensors" >"$dir/log" 2>&1 || { cat "$dir/log"; fail "train mingru"; }
"$exe" eval --load "$dir/g.safetensors" --test "$dir/test.tsv" >"$dir/ev" 2>&1 || { cat "$dir/ev"; fail "eval mingru"; }
"$exe" sample --load "$dir/g.safetensors" --n 2 --seed 4 >"$dir/sa" 2>&1 || { cat "$dir/sa"; fail "sample mingru"; }
echo "ok: mingru train, eval, sample"
bad
bad fly
bad train --bogus
bad train --epochs x
bad train --cell lstmx
bad train --train "$dir/missing.tsv"
bad score --load "$dir/m.safetensors"
bad sample
bad eval --load "$dir/missing.safetensors"
printf 'junk' >"$dir/j.safetensors"; cp "$dir/m.safetensors.vocab" "$dir/j.safetensors.vocab"
bad sample --load "$dir/j.safetensors"
# a vocabulary that is not the checkpoint's (same size, words swapped): refused, not mis-paired
cp "$dir/m.safetensors" "$dir/w.safetensors"
awk 'NR == 3 { l3 = $0; next } NR == 4 { print; print l3; next } { print }' "$dir/m.safetensors.vocab" >"$dir/w.safetensors.vocab"
cmp -s "$dir/m.safetensors.vocab" "$dir/w.safetensors.vocab" && fail "the swapped vocabulary is the same file"
bad sample --load "$dir/w.safetensors"
printf 'caf\303( au lait .\t1\n' >"$dir/bad.tsv"
bad train --train "$dir/bad.tsv" --test "$dir/test.tsv"
echo "all ok"
