#!/bin/sh
# SPDX-License-Identifier: MIT
# test_dates_run.sh - spool-dates end to end on a tiny configuration: trains a few updates,
# evaluates greedy and beam decoding, writes a checkpoint, resumes from it, translates with it;
# bad options and bad files must give a message and an exit status other than 0 (and no crash).
# usage: test_dates_run.sh PATH/TO/spool-dates
set -u
exe="$1"
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
bad() { # expect exit status 1..127 (not a signal) and a message on stderr
    "$exe" "$@" >"$dir/stdout.txt" 2>"$dir/err"; rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] || fail "'$*' gave exit status $rc"
    [ -s "$dir/err" ] || fail "'$*' printed no message"
    echo "ok: '$*' -> $rc: $(head -n1 "$dir/err")"
}
"$exe" --help | grep -q "Usage: spool-dates" || fail "--help"
"$exe" --steps 6 --batch 8 --hidden 8 --dec-hidden 16 --emb 8 --eval-every 3 --test-n 20 --beam 3 --show 2 \
    --threads 1 --save "$dir/d.safetensors" >"$dir/log" 2>&1 || { cat "$dir/log"; fail "training run"; }
grep -q "step      6" "$dir/log" || fail "no progress line for step 6"
grep -q "test exact-match: greedy" "$dir/log" || fail "no final score"
grep -q "beam(3)" "$dir/log" || fail "no beam score"
[ -s "$dir/d.safetensors" ] || fail "no checkpoint"
"$exe" --resume "$dir/d.safetensors" --steps 9 --eval-every 3 --test-n 20 --beam 1 --show 0 --threads 1 \
    --save "$dir/d2.safetensors" >"$dir/log2" 2>&1 || { cat "$dir/log2"; fail "resume"; }
grep -q "step      9" "$dir/log2" || fail "resume did not continue to step 9"
grep -q "step      3 " "$dir/log2" && fail "resume started again from 0"
# minLSTM: the encoder runs one linear_scan per direction, the decoder steps; resume and load
"$exe" --cell minlstm --steps 4 --batch 8 --hidden 8 --dec-hidden 16 --emb 8 --eval-every 4 --test-n 10 --beam 2 \
    --show 0 --threads 1 --save "$dir/m.safetensors" >"$dir/logm" 2>&1 || { cat "$dir/logm"; fail "minlstm run"; }
"$exe" --resume "$dir/m.safetensors" --steps 6 --eval-every 3 --test-n 10 --beam 1 --show 0 --threads 1 \
    >"$dir/logm2" 2>&1 || { cat "$dir/logm2"; fail "minlstm resume"; }
grep -q "cell minlstm" "$dir/logm2" || { cat "$dir/logm2"; fail "minlstm resume lost its cell"; }
# a tiny model reads nothing well: each line is a date with its log-probability or a refusal
"$exe" --load "$dir/d2.safetensors" --translate "the 3rd of March 1998" --translate "3/3/98" --threads 1 \
    --min-logprob -1e9 >"$dir/tr" 2>&1 || { cat "$dir/tr"; fail "translate"; }
[ "$(grep -c -E '[0-9-]{10}  log-probability -?[0-9.e+-]+$|cannot read this date: the model wrote' "$dir/tr")" -eq 2 ] ||
    { cat "$dir/tr"; fail "translate output"; }
# refusals come before the model and do not depend on it
"$exe" --load "$dir/d2.safetensors" --translate "3 march 2051" --translate "tomorrow" --threads 1 >"$dir/tr" 2>&1 ||
    fail "unreadable dates are an answer (status 0), not a failure"
grep -q "3 march 2051 .*cannot read this date: year 2051 is outside the supported range 1950-2049" "$dir/tr" ||
    { cat "$dir/tr"; fail "year range"; }
grep -q "tomorrow .*cannot read this date: no number" "$dir/tr" || { cat "$dir/tr"; fail "no number"; }
# the harder splits: long spelled-out formats, and the same inside sentences; the set is stored
"$exe" --formats prose --steps 2 --batch 4 --hidden 8 --dec-hidden 16 --emb 8 --eval-every 2 --test-n 6 --beam 1 \
    --show 1 --threads 1 --save "$dir/p.safetensors" >"$dir/logp" 2>&1 || { cat "$dir/logp"; fail "prose run"; }
grep -q "6 formats (prose)" "$dir/logp" || fail "prose header"
grep -q "twenty-third of march, nineteen ninety-eight" "$dir/logp" || fail "no long format in the per-format table"
"$exe" --resume "$dir/p.safetensors" --steps 3 --eval-every 3 --test-n 6 --beam 1 --show 0 --threads 1 \
    --save "$dir/p2.safetensors" >"$dir/logp2" 2>&1 || { cat "$dir/logp2"; fail "prose resume"; }
grep -q "6 formats (prose)" "$dir/logp2" || fail "resume forgot --formats prose"
"$exe" --load "$dir/p2.safetensors" --translate "the third of march, nineteen ninety-eight" --threads 1 \
    --min-logprob -1e9 >"$dir/tr" 2>&1 || { cat "$dir/tr"; fail "spelled-out translate"; }
grep -q "no number" "$dir/tr" && fail "a spelled-out date was refused as having no number"
# days unseen by seed 1 (the tiny model's), a year out of range, a text that is no date (gold '-',
# right when refused) and 1998-03-03, a training day of seed 1, which is skipped
printf '# a comment\n2 jun 1951\t1951-06-02\n2 jun 2060\t1957-09-16\nhello 12\t-\n3 march 1998\t1998-03-03\n' >"$dir/h.tsv"
"$exe" --load "$dir/d2.safetensors" --eval-file "$dir/h.tsv" --threads 1 >"$dir/ev" 2>&1 || { cat "$dir/ev"; fail "eval-file"; }
grep -q "h.tsv: exact match 0.3333 (1 of 3; [23] refused as unreadable; 1 skipped: training days of this model)" "$dir/ev" ||
    { cat "$dir/ev"; fail "eval-file output"; }
grep -q "at --min-logprob -0.02: 0.3333, .* -2: 0.3333" "$dir/ev" || { cat "$dir/ev"; fail "eval-file thresholds"; }
# a bare name is the bundled file of that name, from any directory
abs_exe=$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")
(cd "$dir" && "$abs_exe" --load d2.safetensors --eval-file dates_human_dev.tsv --threads 1 >ev2 2>&1) ||
    { cat "$dir/ev2"; fail "eval-file with the bundled dev file"; }
grep -q "dates_human_dev.tsv: exact match .* skipped: training days of this model" "$dir/ev2" ||
    { cat "$dir/ev2"; fail "bundled dev file output"; }
printf '3 march 1998\t1998-03-03\n' >"$dir/seen.tsv"
bad --load "$dir/d2.safetensors" --eval-file "$dir/seen.tsv"   # nothing left to score
printf 'no tab here\n' >"$dir/bad.tsv"
bad --load "$dir/d2.safetensors" --eval-file "$dir/bad.tsv"
bad --load "$dir/d2.safetensors" --eval-file "$dir/missing.tsv"
# a line longer than 511 bytes is one record, refused as too long (it was cut in two)
printf '2 jun 1951 %0600d\t1951-06-02\n' 0 >"$dir/long.tsv"
"$exe" --load "$dir/d2.safetensors" --eval-file "$dir/long.tsv" --threads 1 >"$dir/ev3" 2>&1 || { cat "$dir/ev3"; fail "a long --eval-file line"; }
grep -q "long.tsv: exact match 0.0000 (0 of 1; 1 refused as unreadable)" "$dir/ev3" || { cat "$dir/ev3"; fail "long line output"; }
bad --eval-file "$dir/h.tsv"
bad --min-logprob 3
echo "ok: train, resume, translate"
# attention: trains, draws the alignment heatmap's data, reloads with its kind
"$exe" --steps 4 --batch 8 --hidden 8 --dec-hidden 16 --emb 8 --eval-every 4 --test-n 10 --beam 2 --show 0 --threads 1 \
    --attention additive --heatmap "$dir/att.svg" --save "$dir/a.safetensors" >"$dir/la" 2>&1 || { cat "$dir/la"; fail "attention run"; }
grep -q "attention additive" "$dir/la" || fail "attention not reported"
[ "$(grep -c '^# example' "$dir/att.svg.tsv")" -eq 4 ] || fail "heatmap data"
"$exe" --load "$dir/a.safetensors" --translate "3/3/98" --min-logprob -1e9 --threads 1 >"$dir/ta" 2>&1
[ $? -le 1 ] || { cat "$dir/ta"; fail "attention translate"; }
bad --heatmap "$dir/x.svg" --steps 1
echo "ok: attention"
# export: the encoder and the decoder step as ONNX (tests/onnx/onnx_programs.py runs them in ONNX
# Runtime), --ids the held-out examples with spool's greedy reading; a build without ONNX says so
"$exe" export --load "$dir/a.safetensors" --onnx "$dir/x" --ids "$dir/x.ids" --test-n 5 --threads 1 >"$dir/ex" 2>&1
rc=$?
if [ "$rc" -eq 0 ]; then
    [ -s "$dir/x.encoder.onnx" ] && [ -s "$dir/x.decoder.onnx" ] || fail "export wrote no graphs"
    [ "$(grep -c -P '^[0-9 ]+\t[0-9-]{10}\t.{10}\t(-?[0-9.e+-]+ ){109}-?[0-9.e+-]+$' "$dir/x.ids")" -eq 5 ] ||
        { head -c 600 "$dir/x.ids"; fail "export --ids lines"; }
    grep -q "prev \[batch\], h, c, y, lengths, keys -> logits, h_next, c_next, attention" "$dir/ex" || { cat "$dir/ex"; fail "export summary"; }
    echo "ok: export"
else
    grep -q "built without ONNX" "$dir/ex" || { cat "$dir/ex"; fail "export: exit $rc"; }
    echo "ok: export refused in a build without ONNX"
fi
"$exe" export --help | grep -q "Usage: spool-dates export" || fail "export --help"
bad export --onnx "$dir/y"                        # no --load
bad export --load "$dir/a.safetensors"            # no --onnx
bad export --load "$dir/missing.safetensors" --onnx "$dir/y"
bad export --load "$dir/a.safetensors" --onnx "$dir/y" --steps 3   # a training option
bad export --load "$dir/a.safetensors" --onnx "$dir/y" --ids "$dir/y.ids" --eval-file "$dir/bad.tsv"
[ -e "$dir/y.ids" ] && fail "a failed --ids left a file"
bad --bogus
bad --steps
bad --steps -3
bad --steps 12x
bad --cell lstmx
bad --test-frac 1.5
bad --translate "3/3/98"
bad --load "$dir/missing.safetensors" --translate "x"
printf 'not a checkpoint' >"$dir/junk.safetensors"
bad --load "$dir/junk.safetensors" --translate "x"
bad --resume "$dir/junk.safetensors"
bad --resume "$dir/d.safetensors" --steps 12 --hidden 77 --test-n 20 --threads 1   # architecture differs
bad --steps 1 --test-n 5 --save "$dir/no/such/dir/x.safetensors" --eval-every 1
echo "all ok"
