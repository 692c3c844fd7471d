#!/bin/bash
# SPDX-License-Identifier: MIT
# test_error_exits.sh - every example program's error exits (bad option, missing file, junk or
# truncated checkpoint) end with status 1 or 2 and a message, never a crash; in the ASan build
# (LeakSanitizer on) any leak or memory error on those paths is a failure. The `expect` lines
# check the exact status (2 for a bad command line), the message on stderr and an end within 20 s:
# writers that refuse a FIFO, the line readers (NUL bytes, /dev/zero, a directory), failures that
# used to be printed on stdout with status 0, and error paths that leaked.
# Usage: test_error_exits.sh BUILD_EXAMPLES_DIR
set -u
B=$(cd "${1:?usage: test_error_exits.sh build/examples}" && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/test_error_exits.XXXXXX")
trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1
n=0 failed=0
printf 'not a checkpoint at all, just some bytes' > junk.safetensors
printf '\x08\x00\x00\x00\x00\x00\x00\x00{}      ' > empty.safetensors
printf 'a\tb\n' > junk.tsv
printf "the\nof\n" > junk.safetensors.vocab; cp junk.safetensors.vocab empty.safetensors.vocab
check() { # command...
    n=$((n + 1))
    "$@" > out.txt 2>&1 < /dev/null
    local rc=$?
    if grep -q "Sanitizer" out.txt; then
        failed=$((failed + 1)); echo "not ok $n - $*: sanitizer report"; grep -m2 -A4 'ERROR:' out.txt | sed 's/^/# /'
    elif [ $rc -ne 1 ] && [ $rc -ne 2 ]; then
        failed=$((failed + 1)); echo "not ok $n - $*: status $rc (want 1 or 2)"; tail -2 out.txt | sed 's/^/# /'
    elif [ ! -s out.txt ]; then
        failed=$((failed + 1)); echo "not ok $n - $*: no message"
    else
        echo "ok $n - $* (status $rc)"
    fi
}
# expect STATUS PATTERN [<INPUT] command...: exactly STATUS, PATTERN (grep -E) on stderr, no
# sanitizer report, done within 20 s (an endless loop fails)
expect() {
    local want=$1 pat=$2 in=/dev/null
    shift 2
    case $1 in "<"*) in=${1#<}; shift ;; esac
    n=$((n + 1))
    timeout 20 "$@" > out.txt 2> err.txt < "$in"
    local rc=$?
    if grep -q "Sanitizer" out.txt err.txt; then
        failed=$((failed + 1)); echo "not ok $n - $*: sanitizer report"; grep -h -m2 -A4 'ERROR:' out.txt err.txt | sed 's/^/# /'
    elif [ $rc -ne "$want" ]; then
        failed=$((failed + 1)); echo "not ok $n - $*: status $rc (want $want)"; tail -2 out.txt err.txt | sed 's/^/# /'
    elif ! grep -qE -- "$pat" err.txt; then
        failed=$((failed + 1)); echo "not ok $n - $*: no '$pat' on stderr"; tail -2 out.txt err.txt | sed 's/^/# /'
    else
        echo "ok $n - $* (status $rc: $(head -c 150 err.txt | head -1))"
    fi
}
for p in spool-demo spool-charlm spool-ner spool-sentiment spool-dates spool-wordlm spool-vanishing spool-tutorial; do
    check "$B/$p" --no-such-option
done
for ck in junk.safetensors empty.safetensors missing.safetensors; do
    check "$B/spool-charlm" sample --checkpoint $ck
    check "$B/spool-charlm" train --checkpoint $ck --resume --steps 2
    check "$B/spool-ner" tag --model $ck "Ada Lovelace met Babbage"
    check "$B/spool-sentiment" predict --model $ck "a fine film"
    check "$B/spool-dates" --load $ck --translate "march 3, 1998"
    check "$B/spool-dates" --resume $ck --steps 2
    check "$B/spool-wordlm" eval --load $ck
    check "$B/spool-vanishing" --eval $ck
done
check "$B/spool-charlm" train --data missing.txt --steps 2
# a refused environment stops at spool's first use with the library's message: a BLIS kernel set
# this CPU cannot run (it used to die of SIGILL in the first product), a SPOOL_CPU that is no word
grep -qw avx512er /proc/cpuinfo || check env BLIS_ARCH_TYPE=1 "$B/spool-demo" --steps 2
grep -qw avx512er /proc/cpuinfo || check env BLIS_ARCH_TYPE=1 "$B/spool-charlm" train --steps 2 --eval-every 0
check env SPOOL_CPU=bogus "$B/spool-demo" --steps 2
check "$B/spool-ner" train --train junk.tsv --epochs 1
check "$B/spool-sentiment" train --train junk.tsv --epochs 1
check "$B/spool-wordlm" train --train missing.tsv --epochs 1
printf 'caf\303( au lait .\t1\n' > notutf8.tsv
check "$B/spool-wordlm" train --train notutf8.tsv --epochs 1
check "$B/spool-vanishing" --gaps 2,,3
# resuming with another architecture than the checkpoint's is refused (and frees what it made)
if "$B/spool-ner" train --limit 30 --epochs 1 --embed 8 --hidden 8 --threads 1 --out n.safetensors > /dev/null 2>&1; then
    check "$B/spool-ner" train --limit 30 --epochs 2 --embed 8 --hidden 9 --threads 1 --resume n.safetensors.last --out n.safetensors
fi
if "$B/spool-sentiment" train --data sentiment-uci --limit 40 --epochs 1 --hidden 8 --embed 8 --threads 1 --out s.safetensors > /dev/null 2>&1; then
    check "$B/spool-sentiment" train --data sentiment-uci --limit 40 --epochs 2 --hidden 7 --threads 1 --resume s.safetensors.last --out s.safetensors
fi
if "$B/spool-dates" --steps 4 --eval-every 4 --test-n 10 --hidden 16 --emb 8 --dec-hidden 16 --threads 1 --save d.safetensors > /dev/null 2>&1; then
    check "$B/spool-dates" --steps 8 --test-n 10 --eval-every 8 --hidden 17 --threads 1 --resume d.safetensors
fi
# a FIFO (standing in for /dev/null) is no --dot target: refused, left a FIFO
mkfifo fifo.dot
expect 1 "refusing to replace 'fifo.dot'.*a FIFO" "$B/spool-demo" --steps 2 --dot fifo.dot
CL="--data names --steps 2 --hidden 8 --embed 4 --eval-every 0 --threads 1"
expect 1 "refusing to replace 'fifo.dot'" "$B/spool-charlm" train $CL --plot none --checkpoint c.safetensors --dot fifo.dot
n=$((n + 1))
if [ -p fifo.dot ]; then echo "ok $n - fifo.dot is still a FIFO"; else failed=$((failed + 1)); echo "not ok $n - fifo.dot was replaced"; fi
# a plot that cannot be written is a failure (it was status 0), found before training
expect 1 "--plot: .*/no/dir/x.svg" "$B/spool-charlm" train $CL --checkpoint c.safetensors --plot /no/dir/x.svg
# `plot` does nothing but draw: without gnuplot that is a failure (it was status 0)
[ -s c.csv ] && expect 1 "gnuplot" env PATH=/nonexistent "$B/spool-charlm" plot c.csv c.svg
# resuming a checkpoint whose stored cell is unknown frees the header's vocabulary and state
if "$B/spool-charlm" train $CL --mode stream --plot none --checkpoint c.safetensors > /dev/null 2>&1; then
    LC_ALL=C sed 's/cell=lstm/cell=lstx/' c.safetensors > x.safetensors
    expect 1 "unknown --cell 'lstx'" "$B/spool-charlm" train $CL --plot none --checkpoint x.safetensors --resume --steps 4
fi
# an --out-dir that is a file: refused at once (the run used to train, then leak 6 MB)
expect 1 "--out-dir: junk.tsv exists and is not a directory" "$B/spool-vanishing" --out-dir junk.tsv
# spool-dates: usage errors are status 2, failures status 1 with the message on stderr
expect 2 "--attention dot needs --dec-hidden = 2 x --hidden" "$B/spool-dates" --attention dot --hidden 8 --dec-hidden 10 --steps 1
expect 2 "--heatmap needs a file name" "$B/spool-dates" --attention additive --heatmap "" --steps 1
for h in . /dev/null fifo.dot; do
    expect 1 "--heatmap: .*not a regular file" "$B/spool-dates" --attention additive --heatmap $h --steps 1 --test-n 5 --eval-every 1
done
if [ -s d.safetensors ]; then
    expect 2 "--translate needs a text" "$B/spool-dates" --load d.safetensors --translate ""
    # the line reader: /dev/zero (an endless loop before), a directory (was "no line to score")
    expect 1 "/dev/zero:1: a NUL byte" "$B/spool-dates" --load d.safetensors --eval-file /dev/zero
    expect 1 "cannot read '\.' \(line 1\): Is a directory" "$B/spool-dates" --load d.safetensors --eval-file .
fi
if [ -s s.safetensors ] || "$B/spool-sentiment" train --data sentiment-uci --limit 40 --epochs 1 --hidden 8 --embed 8 --threads 1 --out s.safetensors > /dev/null 2>&1; then
    # stdin: 32 MB of NUL bytes (/dev/zero grew one line to 10 GB), a NUL inside a sentence (cut it)
    head -c 32000000 /dev/zero > zero.bin
    expect 1 "stdin:1: a NUL byte" "<zero.bin" "$B/spool-sentiment" predict --model s.safetensors
    printf 'a fine film\n\nawful\0 no\n' > nul.txt
    expect 1 "stdin:3: a NUL byte" "<nul.txt" "$B/spool-sentiment" predict --model s.safetensors
fi
# spool-ocr (built where FreeType is): bad models, resumes, images and indexes, an output folder that is a file
if [ -x "$B/spool-ocr" ]; then
    check "$B/spool-ocr" --no-such-option
    for ck in junk.safetensors empty.safetensors missing.safetensors; do
        check "$B/spool-ocr" recognize --model $ck junk.tsv
        check "$B/spool-ocr" train --out $ck --resume --steps 2
    done
    "$B/spool-ocr" train --steps 1 --batch 1 --hidden 4 --layers 1 --log-every 0 --out ocr.safetensors > /dev/null 2>&1
    expect 1 "not a PGM" "$B/spool-ocr" recognize --model ocr.safetensors /dev/null
    expect 1 "not a PGM|cannot open|directory" "$B/spool-ocr" recognize --model ocr.safetensors .
    expect 1 "64 MiB|limit|too large|bytes" "$B/spool-ocr" recognize --model ocr.safetensors /dev/zero
    expect 1 "want 'file<TAB>text'" "$B/spool-ocr" eval --model ocr.safetensors junk.safetensors
    expect 1 "NUL|too long" "$B/spool-ocr" eval --model ocr.safetensors /dev/zero
    expect 1 "cannot make folder" "$B/spool-ocr" render --out-dir junk.tsv --lines 1
fi
echo "1..$n"
[ $failed -eq 0 ]
