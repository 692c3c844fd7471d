#!/bin/bash
# SPDX-License-Identifier: MIT
# build.sh - build the libFuzzer harnesses of tests/fuzz/ with clang (-fsanitize=fuzzer,address,
# undefined) straight from the sources (the library is compiled into each harness, instrumented).
# Usage: tests/fuzz/build.sh OUTDIR   -> OUTDIR/fuzz_ckpt, OUTDIR/fuzz_text
# Long run (README "Fuzzing"): tests/fuzz/run.sh OUTDIR SECONDS
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:?usage: build.sh OUTDIR}
mkdir -p "$OUT"
command -v clang > /dev/null || { echo "build.sh: clang not found (apt-get install clang)" >&2; exit 77; }
BLIS=""
for d in /usr/include/x86_64-linux-gnu/blis-openmp /usr/include/blis /usr/local/include/blis; do
    [ -f "$d/blis.h" ] && BLIS="-isystem $d" && break
done
CFLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -fopenmp -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -I$SRC/include -I$SRC/examples $BLIS -w"
LIB="$(ls "$SRC"/autograd/*.c "$SRC"/ops/*.c "$SRC"/layers/*.c "$SRC"/optim/*.c) $SRC/dist/dist_none.c"
CHARLM=$(ls "$SRC"/examples/charlm/*.c | grep -v '/main.c$')
COMMON=$(ls "$SRC"/examples/common/*.c)
# shellcheck disable=SC2086
clang $CFLAGS -o "$OUT/fuzz_ckpt" "$SRC/tests/fuzz/fuzz_ckpt.c" $LIB -lblis -lm -lpthread
# shellcheck disable=SC2086
clang $CFLAGS -DCHARLM_DATA_DIR='"/nonexistent"' -o "$OUT/fuzz_text" "$SRC/tests/fuzz/fuzz_text.c" $LIB $CHARLM $COMMON \
    "$SRC/examples/sentiment_data.c" "$SRC/examples/dates_data.c" -lblis -lm -lpthread
