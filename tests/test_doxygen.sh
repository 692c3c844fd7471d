#!/bin/sh
# SPDX-License-Identifier: MIT
# test_doxygen.sh - the API reference builds from the public headers without a single Doxygen
# warning: an undocumented public function, type, macro, enum value or struct field, or a broken
# doc comment, fails the suite. Doxygen reports the members of documented files
# only, so every public header must open with an @file block.
# usage: test_doxygen.sh DOXYGEN DOXYFILE OUTDIR INCLUDEDIR
doxygen=$1 doxyfile=$2 out=$3 inc=$4
fail=0
for h in "$inc"/spool.h "$inc"/spool/*.h; do
    grep -q '@file' "$h" || { echo "FAIL: $h has no @file block (Doxygen would skip its members)"; fail=1; }
done
rm -f "$out/warnings.txt"
"$doxygen" "$doxyfile" || { echo "FAIL: doxygen exited with $?"; exit 1; }
if [ -s "$out/warnings.txt" ]; then
    echo "FAIL: $(wc -l < "$out/warnings.txt") Doxygen warnings:"; cat "$out/warnings.txt"; fail=1
fi
[ -f "$out/html/index.html" ] || { echo "FAIL: no html/index.html"; fail=1; }
[ $fail -eq 0 ] && echo "ok: the reference of every public header, no warnings ($out/html/index.html)"
exit $fail
