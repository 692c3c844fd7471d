#!/bin/bash
# SPDX-License-Identifier: MIT
# test_charlm.sh - end-to-end tests of the spool-charlm example (TAP): a tiny model of every cell
# kind overfits a short text, sampling is reproducible by seed, bad options and files fail with a
# message (never a crash), an interrupted + resumed run has exactly the losses of an
# uninterrupted one, and export writes ONNX. Usage: test_charlm.sh path/to/spool-charlm [path/to/examples/data]
set -u
BIN=${1:?usage: test_charlm.sh spool-charlm [data dir]}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
if [ $# -ge 2 ]; then export SPOOL_CHARLM_DATA=$(cd "$2" && pwd); fi
W=$(mktemp -d "${TMPDIR:-/tmp}/test_charlm.XXXXXX")
trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }

# A short text: every character of it is in the first 90% (the training split).
printf 'the quick brown fox jumps over the lazy dog. the quick brown fox jumps over the lazy dog. ' > tiny.txt
TINY="--data tiny.txt --mode stream --hidden 24 --embed 8 --seq 16 --batch 1 --steps 150 --lr 0.02 --warmup 0
      --eval-every 0 --plot none --threads 1"

# 1. each cell kind overfits: the per-step training loss falls from ~ln(28) = 3.3 below 0.25
for cell in rnn rnn-relu gru gru-reset-before gru-update-only lstm lstm-peephole lstm-coupled lstmp mingru minlstm; do
    if ! $BIN train $TINY --cell $cell --checkpoint t-$cell.safetensors > out.txt 2>&1; then
        not_ok "overfit $cell: train failed" "$(tail -3 out.txt)"
        continue
    fi
    first=$(sed -n 2p t-$cell.csv | cut -d, -f4)
    last=$(tail -1 t-$cell.csv | cut -d, -f4)
    if awk -v f="$first" -v l="$last" 'BEGIN { exit !(f > 3.0 && l < 0.25) }'; then
        ok "overfit $cell: loss $first -> $last"
    else
        not_ok "overfit $cell: loss $first -> $last (want > 3.0 -> < 0.25)"
    fi
done

# 2. sampling: the same seed gives the same text, another seed other text; argmax is fixed
CK="--checkpoint t-lstm.safetensors --threads 1"
$BIN sample $CK --seed 7 --count 3 --max-len 60 > s1.txt 2>/dev/null
$BIN sample $CK --seed 7 --count 3 --max-len 60 > s2.txt 2>/dev/null
$BIN sample $CK --seed 8 --count 3 --max-len 60 --temperature 1.5 > s3.txt 2>/dev/null
if [ -s s1.txt ] && cmp -s s1.txt s2.txt; then ok "sample: same seed, same text"; else not_ok "sample: same seed, different text"; fi
if ! cmp -s s1.txt s3.txt; then ok "sample: another seed and temperature, other text"; else not_ok "sample: seed ignored"; fi
$BIN sample $CK --temperature 0 --prime 'the q' --count 1 --max-len 20 > s4.txt 2>/dev/null
if grep -q '^the quick brown fox' s4.txt; then ok "sample: argmax continues the memorised text"; else not_ok "sample: argmax gave '$(cat s4.txt)'"; fi
$BIN sample $CK --seed 1 --top-k 1 --count 1 --max-len 20 --prime 'the q' > s5.txt 2>/dev/null
if [ -s s5.txt ] && cmp -s s4.txt s5.txt; then ok "sample: --top-k 1 equals argmax"; else not_ok "sample: --top-k 1 differs from argmax"; fi
# minGRU and minLSTM train through one linear_scan per layer and sample step by step (the stream)
for cell in mingru minlstm; do
    $BIN sample --checkpoint t-$cell.safetensors --threads 1 --temperature 0 --prime 'the q' --count 1 --max-len 20 \
        > s6.txt 2>&1
    if grep -q '^the quick brown fox' s6.txt; then ok "sample $cell: argmax continues the memorised text"
    else not_ok "sample $cell: argmax gave '$(cat s6.txt)'"; fi
done

# 3. bad input: exit status != 0 (and < 128: no crash) and a message naming the problem
printf 'ab\xff\xfecd\n' > bad-utf8.txt
printf 'not a checkpoint at all, just some bytes' > junk.safetensors
head -c 300 t-lstm.safetensors > trunc.safetensors
expect_fail() { # description, regex the message must match, command...
    local what=$1 re=$2
    shift 2
    "$@" > err.txt 2>&1
    local rc=$?
    if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -Eq "$re" err.txt; then
        ok "error: $what (status $rc)"
    else
        not_ok "error: $what (status $rc)" "$(head -3 err.txt)"
    fi
}
expect_fail "unknown command" "unknown command" $BIN frobnicate
expect_fail "unknown option" "unknown option '--hiden'" $BIN train --hiden 5
expect_fail "option of another command" "does not apply" $BIN sample --hidden 5
expect_fail "bad number" "not a valid integer" $BIN train --hidden 12x
expect_fail "missing value" "needs a value" $BIN train --steps
expect_fail "bad cell" "unknown --cell 'lsmt'" $BIN train --cell lsmt --data tiny.txt
expect_fail "missing data file" "cannot open 'nope.txt'" $BIN train --data nope.txt
expect_fail "invalid UTF-8" "invalid UTF-8 at byte offset 2" $BIN train --data bad-utf8.txt
expect_fail "negative temperature" "temperature" $BIN sample $CK --temperature -1
expect_fail "prime not in vocabulary" "character 'Z' at position 3 is not in the model's vocabulary" $BIN sample $CK --prime 'thZ'
expect_fail "prime file missing" "prime-file" $BIN sample $CK --prime-file nope.txt
expect_fail "missing checkpoint" "cannot read checkpoint" $BIN sample --checkpoint nope.safetensors
expect_fail "corrupt checkpoint" "cannot read checkpoint" $BIN sample --checkpoint junk.safetensors
expect_fail "truncated checkpoint" "cannot read checkpoint" $BIN eval --checkpoint trunc.safetensors
expect_fail "resume with another model size" "another configuration: --hidden 24 there, 32 here" \
    $BIN train $TINY --hidden 32 --checkpoint t-lstm.safetensors --resume
expect_fail "resume with another cell" "another configuration: --cell lstm there, gru here" \
    $BIN train $TINY --cell gru --checkpoint t-lstm.safetensors --resume
expect_fail "resume on other data" "trained on data with another vocabulary" \
    $BIN train $TINY --data names --checkpoint t-lstm.safetensors --resume
expect_fail "resume of a finished run" "already done 150 of 150 steps" \
    $BIN train $TINY --cell lstm --checkpoint t-lstm.safetensors --resume
expect_fail "score text outside the vocabulary" "character 'X'" $BIN score $CK "the X"
expect_fail "too short for the batch" "too short" $BIN train --data tiny.txt --mode stream --seq 500 --plot none

# 4. resume: stop after step K (as Ctrl-C would), resume, and get the losses of a run that never
#    stopped, bit for bit (stream mode carries state and uses dropout; lines mode shuffles)
resume_check() { # name, stop step, options...
    local name=$1 k=$2
    shift 2
    $BIN train "$@" --checkpoint full.safetensors > o1.txt 2>&1
    $BIN train "$@" --checkpoint part.safetensors --stop-after "$k" > o2.txt 2>&1
    $BIN train "$@" --checkpoint part.safetensors --resume > o3.txt 2>&1
    cut -d, -f1,4,6 full.csv > a.txt
    cut -d, -f1,4,6 part.csv > b.txt
    if [ "$(wc -l < a.txt)" -gt "$k" ] && cmp -s a.txt b.txt && grep -q "resumed from part.safetensors at step $k" o3.txt; then
        ok "resume ($name): losses and gradient norms equal an uninterrupted run"
    else
        not_ok "resume ($name): runs differ" "$(diff a.txt b.txt | head -4)" "$(tail -2 o3.txt)"
    fi
}
resume_check stream 17 --data tiny.txt --mode stream --hidden 16 --layers 2 --embed 8 --dropout 0.2 \
    --seq 8 --batch 2 --steps 40 --eval-every 0 --plot none --threads 1
resume_check "stream, minGRU" 17 --data tiny.txt --mode stream --cell mingru --hidden 16 --layers 2 --embed 8 \
    --dropout 0.2 --seq 8 --batch 2 --steps 40 --eval-every 0 --plot none --threads 1
printf 'anna\nbob\ncarla\ndave\neve\nfrank\ngina\nhal\nivy\njoe\nkim\nlea\n' > names.txt
resume_check lines 13 --data names.txt --mode lines --cell gru --hidden 16 --embed 8 --dropout 0.1 \
    --batch 3 --steps 30 --eval-every 0 --plot none --threads 1

# 5. score: the log-probability is the sum of its per-character terms, and eval runs
if $BIN score $CK "the lazy dog" > sc.txt 2>&1 &&
   awk '/^ +[0-9]+ /{s += $(NF-1)} /^log-probability/{lp = $2} END { d = s + lp; exit !(NR > 3 && d < 1e-3 && d > -1e-3) }' sc.txt; then
    ok "score: total = sum of per-character terms"
else
    not_ok "score" "$(tail -3 sc.txt)"
fi
if $BIN eval $CK --split train > ev.txt 2>&1 && grep -q '^loss .* nats/char .* bits/char .* perplexity' ev.txt; then
    ok "eval prints nats, bits and perplexity"
else
    not_ok "eval" "$(tail -3 ev.txt)"
fi

# 6. the layer-normalised cells overfit too; zoneout and the dropouts train and the
#    held-out loss is finite; --segment gives the losses of the plain tape (to the printed digits)
#    with every random option on (the masks are keyed by step, not drawn in order)
for cell in ln-lstm ln-gru; do
    if $BIN train $TINY --cell $cell --checkpoint t-$cell.safetensors > out.txt 2>&1 &&
       awk -v f="$(sed -n 2p t-$cell.csv | cut -d, -f4)" -v l="$(tail -1 t-$cell.csv | cut -d, -f4)" \
           'BEGIN { exit !(f > 3.0 && l < 0.25) }'; then
        ok "overfit $cell"
    else
        not_ok "overfit $cell" "$(tail -3 out.txt)"
    fi
done
if $BIN train $TINY --steps 30 --zoneout-h 0.1 --zoneout-c 0.3 --recurrent-dropout 0.2 --candidate-dropout 0.2 \
       --checkpoint t-z.safetensors > out.txt 2>&1 && grep -q "final held-out loss [0-9]" out.txt; then
    ok "zoneout, recurrent and candidate dropout train"
else
    not_ok "zoneout/dropouts" "$(tail -3 out.txt)"
fi
expect_fail "zoneout-c on a GRU" "zoneout-c applies to LSTM" $BIN train $TINY --cell gru --zoneout-c 0.5
SEG="--data tiny.txt --mode stream --hidden 16 --layers 2 --embed 8 --seq 32 --batch 1 --steps 12 --eval-every 0 --plot none --threads 1
     --dropout 0.3 --zoneout-h 0.1 --zoneout-c 0.2 --recurrent-dropout 0.2 --candidate-dropout 0.2"
$BIN train $SEG --checkpoint seg0.safetensors > o1.txt 2>&1
$BIN train $SEG --checkpoint seg8.safetensors --segment 8 > o2.txt 2>&1
cut -d, -f1,4,6 seg0.csv > a.txt
cut -d, -f1,4,6 seg8.csv > b.txt
# float rounding differs (weight-gradient sums are grouped per segment): equal to 1e-5 relative
if [ "$(wc -l < a.txt)" -gt 10 ] && [ "$(wc -l < a.txt)" -eq "$(wc -l < b.txt)" ] &&
   paste -d, a.txt b.txt | awk -F, 'NR > 1 { for (i = 2; i <= 3; i++) { d = $i - $(i + 3); if (d < 0) d = -d;
       if (d > 1e-5 * ($i < 0 ? -$i : $i) + 1e-7) exit 1 } }'; then
    ok "--segment 8 with dropout, zoneout, recurrent and candidate dropout: the losses and gradient norms of the plain tape (to 1e-5)"
else
    not_ok "--segment differs" "$(diff a.txt b.txt | head -4)" "$(tail -2 o2.txt)"
fi

# mixed precision: bf16 products train as fp32 ones do, really round (other losses), and the
# checkpoint (always fp32) samples the memorised text in either mode
if $BIN train $TINY --cell lstm --precision bf16 --checkpoint t-bf16.safetensors > out.txt 2>&1 &&
   awk -v f="$(sed -n 2p t-bf16.csv | cut -d, -f4)" -v l="$(tail -1 t-bf16.csv | cut -d, -f4)" \
       'BEGIN { exit !(f > 3.0 && l < 0.25) }'; then
    ok "--precision bf16: lstm overfits"
else
    not_ok "--precision bf16 does not train" "$(tail -3 out.txt)"
fi
if ! cmp -s <(cut -d, -f4 t-lstm.csv) <(cut -d, -f4 t-bf16.csv); then ok "--precision bf16: other losses than fp32"
else not_ok "--precision bf16 gives the fp32 losses bit for bit: not applied"; fi
for p in fp32 bf16; do
    $BIN sample --checkpoint t-bf16.safetensors --threads 1 --precision $p --temperature 0 --prime 'the q' --count 1 \
        --max-len 20 > s-$p.txt 2>/dev/null
    if grep -q '^the quick brown fox' s-$p.txt; then ok "a bf16-trained checkpoint samples in $p"
    else not_ok "bf16 checkpoint sampled in $p: '$(cat s-$p.txt)'"; fi
done
# the options block shows the precision in force, not the default
$BIN sample --checkpoint t-bf16.safetensors --threads 1 --precision bf16 --count 1 --max-len 5 > /dev/null 2> sp.txt
if grep -Eq '^# precision +=  *bf16$' sp.txt; then ok "the options block says precision bf16"
else not_ok "options block: $(grep precision sp.txt)"; fi
expect_fail "--precision fp16" "precision" $BIN train $TINY --precision fp16

# export: the model as ONNX (ONNX Runtime runs it in tests/onnx/onnx_check.py), any cell (minGRU
# has no ONNX operator: a Scan over its step); a path it cannot write is an error naming it
expect_fail "export without --onnx" "export needs --onnx FILE" $BIN export --checkpoint t-lstm.safetensors
if $BIN export --checkpoint t-gru.safetensors --onnx t-gru.onnx > out.txt 2>&1 && [ -s t-gru.onnx ] &&
   grep -q "^wrote t-gru.onnx: gru" out.txt; then
    ok "export gru: wrote t-gru.onnx"
    if $BIN export --checkpoint t-mingru.safetensors --onnx t-mingru.onnx > out.txt 2>&1 && [ -s t-mingru.onnx ]; then
        ok "export mingru: wrote t-mingru.onnx"
    else not_ok "export mingru" "$(tail -3 out.txt)"; fi
    mkdir -p adir.onnx
    expect_fail "export onto a directory" "refusing to replace 'adir.onnx'" \
        $BIN export --checkpoint t-gru.safetensors --onnx adir.onnx
elif grep -q "built without ONNX export" out.txt; then
    ok "export # SKIP this spool was built without ONNX export"
else
    not_ok "export gru" "$(tail -3 out.txt)"
fi

echo "1..$n"
[ $failed -eq 0 ]
