#!/bin/bash
# SPDX-License-Identifier: MIT
# run.sh - build (if needed) and run every libFuzzer harness of tests/fuzz/ for SECONDS each on a
# copy of its seed corpus; prints executions and crashes per harness; exit 1 on any crash.
# Usage: tests/fuzz/run.sh OUTDIR SECONDS      (the suite runs it with 3 seconds when clang exists)
# Long run, as in docs/reliability.md:  nice -n 15 tests/fuzz/run.sh /tmp/spool-fuzz 1800
set -uo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:?usage: run.sh OUTDIR SECONDS}
SECS=${2:-3}
command -v clang > /dev/null || { echo "1..0 # SKIP clang not installed"; exit 77; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# rebuild when a source is newer than a harness
newest=$(find "$SRC"/autograd "$SRC"/dist "$SRC"/ops "$SRC"/layers "$SRC"/optim "$SRC"/onnx "$SRC"/include "$SRC"/examples "$SRC"/tests/fuzz \
         -name '*.[ch]' -newer "$OUT/fuzz_text" 2>/dev/null | head -1)
if [ ! -x "$OUT/fuzz_ckpt" ] || [ ! -x "$OUT/fuzz_text" ] || [ -n "$newest" ]; then
    "$SRC/tests/fuzz/build.sh" "$OUT" || { echo "not ok 1 - build the harnesses"; echo "1..1"; exit 1; }
fi
n=0 bad=0
for h in ckpt text onnx; do
    if [ "$h" = onnx ] && [ ! -x "$OUT/fuzz_onnx" ]; then echo "# fuzz_onnx not built (a build without ONNX)"; continue; fi
    n=$((n + 1))
    rm -rf "$OUT/corpus_$h" && cp -r "$SRC/tests/fuzz/corpus/$h" "$OUT/corpus_$h"
    (cd "$OUT" && "./fuzz_$h" -max_total_time="$SECS" -print_final_stats=1 "corpus_$h" > "fuzz_$h.log" 2>&1)
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/fuzz_$h.log" | grep -o '[0-9]*$')
    if [ $rc -eq 0 ]; then echo "ok $n - fuzz_$h: ${execs:-?} executions in ${SECS} s, 0 crashes"
    else bad=1; echo "not ok $n - fuzz_$h: status $rc after ${execs:-?} executions (see $OUT/fuzz_$h.log)"
         grep -m5 'ERROR\|SUMMARY\|runtime error' "$OUT/fuzz_$h.log" | sed 's/^/# /'; fi
done
echo "1..$n"
exit $bad
