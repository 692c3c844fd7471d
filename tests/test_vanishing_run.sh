#!/bin/sh
# SPDX-License-Identifier: MIT
# test_vanishing_run.sh - spool-vanishing end to end on a tiny configuration: the gradient-norm
# table, accuracy per gap and cell, the exploding run, its data files and checkpoints, --eval of
# a checkpoint; bad options must give a message and an exit status other than 0.
# usage: test_vanishing_run.sh PATH/TO/spool-vanishing
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
"$exe" --help | grep -q "Usage: spool-vanishing" || fail "--help"
"$exe" --gaps 2,4 --grad-gap 4 --budget 400 --steps 20 --eval-every 10 --test-n 50 --explode-steps 5 \
    --explode-gap 3 --no-plot --threads 1 --out-dir "$dir/out" --save-dir "$dir/ck" >"$dir/log" 2>&1 \
    || { cat "$dir/log"; fail "run"; }
grep -q "dL/dh<t>" "$dir/log" || fail "no gradient table"
grep -q "held-out accuracy (chance" "$dir/log" || fail "no accuracy table"
grep -q "the best evaluation / the end of training" "$dir/log" || fail "no best / final accuracy"
head -n1 "$dir/out/vanishing_accuracy.tsv" | grep -q "rnn best" || fail "no best column in the tsv"
grep -q "the same runs at each SGD learning rate" "$dir/log" || fail "no learning-rate table of clipping"
[ "$(grep -c -E '^ +0\.(1|05|02|01) +[0-9.]+ +[0-9.]+   (clipping helps|clipping hurts|no difference)' "$dir/log")" -eq 4 ] ||
    fail "no verdict for the learning rates 0.1, 0.05, 0.02 and 0.01"
grep -q "exploding case" "$dir/log" || fail "no exploding case"
for f in vanishing_grad.tsv vanishing_grad_trained.tsv vanishing_accuracy.tsv vanishing_explode.tsv vanishing.gp; do
    [ -s "$dir/out/$f" ] || fail "missing $f"
done
# one row per step of the profile gap (T + 2 = 6 steps) plus the header; 3 cells + the scaled RNN
[ "$(wc -l <"$dir/out/vanishing_grad.tsv")" -eq 7 ] || fail "gradient profile rows"
[ "$(head -n1 "$dir/out/vanishing_grad.tsv" | awk -F'\t' '{print NF}')" -eq 5 ] || fail "gradient profile columns"
[ "$(wc -l <"$dir/out/vanishing_accuracy.tsv")" -eq 3 ] || fail "accuracy rows"
for c in rnn gru lstm; do
    [ -s "$dir/ck/vanishing_${c}_T4.safetensors" ] || fail "no checkpoint for $c"
done
"$exe" --eval "$dir/ck/vanishing_lstm_T4.safetensors" --test-n 40 >"$dir/ev" 2>&1 || { cat "$dir/ev"; fail "--eval"; }
grep -q "accuracy" "$dir/ev" || fail "--eval output"
echo "ok: run, data files, checkpoints, --eval"
bad --bogus
bad --gaps 0
bad --gaps ""
bad --gaps 5,x
bad --gaps 2,,3
bad --gaps 2,
bad --gaps ,2
bad --gaps 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17
bad --cells rnn,,gru
bad --explode-lrs 0.1,,0.2
bad --cells rnn,foo
bad --budget 5
bad --eval "$dir/missing.safetensors"
printf 'junk' >"$dir/j.safetensors"
bad --eval "$dir/j.safetensors"
bad --gaps 2 --cells rnn --steps 1 --explode-steps 0 --no-plot --out-dir /proc/no_such_dir_here
bad --explode-lrs 0.1,abc
echo "all ok"
