#!/bin/bash
# SPDX-License-Identifier: MIT
# test_charlm_robust.sh - defects spool-charlm had, end to end (TAP): hostile
# checkpoint metadata (carried-state hex, step), --top-k above 4096, --data that is /dev/zero or
# holds a newline, plot paths with quotes (no shell, no gnuplot injection), writers refusing
# non-regular targets, and crash consistency: kill -9 at random moments of a run that
# checkpoints every step, then resume; the checkpoint always loads, no temp files remain after the
# next start, the log holds every step exactly once at the end.
# Usage: test_charlm_robust.sh path/to/spool-charlm
set -u
BIN=${1:?usage: test_charlm_robust.sh spool-charlm}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
W=$(mktemp -d "${TMPDIR:-/tmp}/test_charlm_robust.XXXXXX")
trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
expect_fail() { # description, regex the message must match, command...
    local what=$1 re=$2; shift 2
    "$@" > err.txt 2>&1; local rc=$?
    if grep -q "Sanitizer" err.txt; then not_ok "error: $what: sanitizer report (leak on the error path?)" "$(grep -m3 -A3 'ERROR:' err.txt)"
    elif [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -Eq "$re" err.txt; then ok "error: $what (status $rc)"
    else not_ok "error: $what: status $rc, want a message matching /$re/" "$(tail -3 err.txt)"; fi
}

printf 'the quick brown fox jumps over the lazy dog. the quick brown fox jumps over the lazy dog. ' > tiny.txt
TINY="--data tiny.txt --mode stream --hidden 8 --embed 4 --seq 8 --batch 2 --lr 0.02 --warmup 0 --eval-every 0 --plot none --threads 1"
$BIN train $TINY --steps 3 --checkpoint base.safetensors > out.txt 2>&1 || not_ok "base run" "$(tail -3 out.txt)"

# Rewrite one metadata value of a checkpoint (safetensors: 8-byte length, JSON header, data).
set_meta() { # in out key value
    python3 - "$@" <<'PY'
import json, struct, sys
src, dst, key, val = sys.argv[1:]
b = open(src, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); h["__metadata__"][key] = val
s = json.dumps(h).encode(); s += b" " * (-len(s) % 8)
open(dst, "wb").write(struct.pack("<Q", len(s)) + s + b[8 + n:])
PY
}
if command -v python3 > /dev/null; then
    for v in '62:4' '2:4:' '2:4:0' '2:4:zz' '2:-4:00' '99999999999999999999:4:' '2:4:%n%n'; do
        set_meta base.safetensors bad.safetensors charlm.carry "$v"
        cp base.csv bad.csv 2>/dev/null
        expect_fail "carried state '$v'" "carried state missing" $BIN train $TINY --steps 6 --checkpoint bad.safetensors --resume
    done
    for v in '-5' '1e9' '3x' '' '99999999999999999999'; do
        set_meta base.safetensors bad.safetensors charlm.step "$v"
        expect_fail "stored step '$v'" "charlm.step" $BIN train $TINY --steps 6 --checkpoint bad.safetensors --resume
    done
else
    ok "# SKIP no python3 to edit checkpoints"
fi

# --top-k above 4096 with a vocabulary of 5000 characters
python3 -c 'import sys; sys.stdout.write("".join(chr(0x4e00 + i) for i in range(5000)) * 2)' > wide.txt
if $BIN train --data wide.txt --mode stream --hidden 4 --embed 4 --seq 4 --batch 1 --steps 1 --eval-every 0 --plot none \
        --threads 1 --checkpoint wide.safetensors > out.txt 2>&1 &&
   $BIN sample --checkpoint wide.safetensors --top-k 4500 --count 1 --max-len 5 --seed 3 > s.txt 2> err.txt && [ -s s.txt ]; then
    ok "sample --top-k 4500 over 5000 symbols"
else
    not_ok "sample --top-k 4500 over 5000 symbols" "$(tail -3 out.txt err.txt)"
fi

expect_fail "--data /dev/zero" "larger than" $BIN train --data /dev/zero --steps 1 --checkpoint z.safetensors
expect_fail "--data with a newline" "line break" $BIN train --data "$(printf 'tiny\n.txt')" --steps 1 --checkpoint z.safetensors
mkfifo fifo.safetensors fifo.csv fifo.svg
expect_fail "checkpoint onto a FIFO" "not a regular file" $BIN train $TINY --steps 1 --checkpoint fifo.safetensors --log l.csv
expect_fail "log onto a FIFO" "not a regular file" $BIN train $TINY --steps 1 --checkpoint f.safetensors --log fifo.csv

# plot: file names with quotes are data, not gnuplot or shell code
if command -v gnuplot > /dev/null; then
    cp base.csv "l'o\"g.csv"
    out="p'\"; system('touch PWNED1') #.svg"
    if $BIN plot "l'o\"g.csv" "$out" > out.txt 2>&1 && [ -s "$out" ] && tail -c 10 "$out" | grep -q '</svg>' && ! ls PWNED* > /dev/null 2>&1; then
        ok "plot: quoted file names drawn, nothing run"
    else
        not_ok "plot with quoted names" "$(tail -3 out.txt)" "$(ls)"
    fi
    expect_fail "plot into a missing folder" "cannot draw" $BIN plot base.csv nodir/x.svg
    expect_fail "plot onto a FIFO" "not a regular file" $BIN plot base.csv fifo.svg
    ls *.tmp.* > /dev/null 2>&1 && not_ok "plot left temp files: $(ls *.tmp.*)" || ok "plot: no temp files left"
else
    ok "# SKIP gnuplot not installed"
fi

# crash consistency: kill -9 at random moments of a run that checkpoints every step
RUN="$BIN train $TINY --steps 400 --checkpoint-every 1 --checkpoint crash.safetensors --log crash.csv"
$RUN --stop-after 2 > out.txt 2>&1
bad=0 kills=0 seen_tmp=0
for round in $(seq 1 12); do
    $RUN --resume > out.txt 2>&1 &
    pid=$!
    sleep "0.$(( (RANDOM % 40) + 5 ))"
    kill -9 $pid 2> /dev/null && kills=$((kills + 1))
    wait $pid 2> /dev/null
    ls crash.safetensors.tmp.* > /dev/null 2>&1 && seen_tmp=$((seen_tmp + 1))
    if ! $BIN eval --checkpoint crash.safetensors --data tiny.txt --threads 1 > ev.txt 2>&1; then
        bad=$((bad + 1)); echo "# round $round: checkpoint does not load: $(tail -1 ev.txt)"
    fi
done
$RUN --resume > out.txt 2>&1
rc=$?
grep -q "already done 400 of 400" out.txt && rc=0 # a fast machine finished during the last round
left=$(ls | grep -c '\.tmp\.' || true)
dups=$(tail -n +2 crash.csv | cut -d, -f1 | sort -n | uniq -d | wc -l)
rows=$(tail -n +2 crash.csv | wc -l)
if [ $bad -eq 0 ] && [ $rc -eq 0 ] && [ "$left" -eq 0 ] && [ "$dups" -eq 0 ] && [ "$rows" -eq 400 ]; then
    ok "kill -9 x $kills (temp files seen after $seen_tmp kills): checkpoint always loads, no temp files after restart, log rows 1..400 once each"
else
    not_ok "crash consistency" "bad loads $bad, final status $rc, temp files left $left, duplicate steps $dups, rows $rows of 400" "$(tail -3 out.txt)"
fi

echo "1..$n"
[ $failed -eq 0 ]
