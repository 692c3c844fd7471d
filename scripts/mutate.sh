#!/bin/bash
# SPDX-License-Identifier: MIT
# mutate.sh - mutation testing of the backward kernels: applies each single-line mutant of
# scripts/mutants.txt (or the file given) to a copy of the committed tree, rebuilds the library
# and the unit tests there, runs the unit suite, and reports which mutants the tests kill.
# A mutant that survives is a wrong gradient no test can see. Prints "N killed of M (score)".
# Usage: scripts/mutate.sh [MUTANTS_FILE] [WORKDIR]     (from any directory; ~1-2 min per mutant)
# Run it niced on a shared machine: nice -n 15 scripts/mutate.sh
set -uo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
LIST=$(cd "$(dirname "${1:-$SRC/scripts/mutants.txt}")" && pwd)/$(basename "${1:-$SRC/scripts/mutants.txt}")
WORK=${2:-$(mktemp -d "${TMPDIR:-/tmp}/spool-mutate.XXXXXX")}
mkdir -p "$WORK"
rm -rf "$WORK/src" && mkdir -p "$WORK/src"
git -C "$SRC" archive HEAD | tar -x -C "$WORK/src" || exit 1
cd "$WORK/src" || exit 1
meson setup "$WORK/build" -Dexamples=false > "$WORK/setup.log" 2>&1 || { echo "meson setup failed: $WORK/setup.log"; exit 1; }
ninja -C "$WORK/build" > /dev/null || exit 1
meson test -C "$WORK/build" --suite unit --num-processes 2 > /dev/null 2>&1 || { echo "the unmutated suite fails"; exit 1; }
killed=0 total=0 stale=0 n=0
while IFS=$'\t' read -r file text repl what; do
    case "$file" in ''|'#'*) continue ;; esac
    n=$((n + 1))
    cp "$file" "$WORK/orig"
    if ! python3 - "$file" "$text" "$repl" <<'PY'
import sys
path, text, repl = (a.replace("\\n", "\n") for a in sys.argv[1:])  # "\n": a line break
s = open(path).read()
if text not in s: sys.exit(1)
open(path, "w").write(s.replace(text, repl, 1))
PY
    then
        stale=$((stale + 1)); echo "stale    $n $file: $what (text not found)"; continue
    fi
    total=$((total + 1))
    if ! ninja -C "$WORK/build" > "$WORK/build.log" 2>&1; then
        verdict="killed (does not build)"; killed=$((killed + 1))
    elif meson test -C "$WORK/build" --suite unit --num-processes 2 > "$WORK/test.log" 2>&1; then
        verdict="SURVIVED"
    else
        verdict="killed by $(grep -E '^ *[0-9]+/[0-9]+ .*(FAIL|ERROR|TIMEOUT)' "$WORK/build/meson-logs/testlog.txt" | awk '{print $4}' | sed 's/.*\///' | tr '\n' ' ')"
        killed=$((killed + 1))
    fi
    echo "$verdict  $n $file: $what"
    cp "$WORK/orig" "$file"
done < "$LIST"
ninja -C "$WORK/build" > /dev/null 2>&1
echo "$killed killed of $total ($(( total ? 100 * killed / total : 0 ))%), $stale stale; work tree $WORK"
[ "$killed" -eq "$total" ]
