#!/bin/bash
# SPDX-License-Identifier: MIT
# test_error_exits.sh - every example program's error exits (bad option, missing file, junk or
# truncated checkpoint) end with status 1 or 2 and a message, never a crash; in the ASan build
# (LeakSanitizer on) any leak or memory error on those paths is a failure.
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
for p in spool-demo spool-charlm spool-ner spool-sentiment spool-dates spool-wordlm spool-vanishing; do
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
echo "1..$n"
[ $failed -eq 0 ]
