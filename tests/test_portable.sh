#!/bin/sh
# SPDX-License-Identifier: MIT
# test_portable.sh - the default (portable) build of libspool.so runs on any x86-64: no AVX,
# AVX2 or AVX-512 instruction outside the kernels chosen at run time by CPU detection, which are
# named for their instruction set (ops/vec_kernels.c: *_avx2, *_avx512; ops/packed.c:
# tile_avx512). An instruction is taken as AVX-or-later when its mnemonic is VEX/EVEX-encoded
# (starts with v: vaddps, vmovss, vfmadd...) or it names a ymm, zmm or mask register.
# Usage: test_portable.sh LIBSPOOL_SO  (meson registers it only for builds without -Dnative=true)
LIB=${1:?usage: test_portable.sh libspool.so}
command -v objdump > /dev/null || { echo "1..0 # SKIP objdump not installed"; exit 77; }
[ "$(uname -m)" = x86_64 ] || { echo "1..0 # SKIP not x86-64"; exit 77; }
echo "1..2"
FUNCS=$(mktemp) && trap 'rm -f "$FUNCS"' EXIT
objdump -d --no-show-raw-insn "$LIB" | awk '
    /^[0-9a-f]+ <.*>:$/ { fn = substr($2, 2, length($2) - 3); next }
    /^ *[0-9a-f]+:\t/ {
        split($0, f, "\t"); ins = f[2]
        if (ins ~ /^v[a-z]/ || ins ~ /%[yz]mm|%k[0-7]/) n[fn]++
    }
    END { for (x in n) print n[x], x }' > "$FUNCS"
bad=$(grep -v -E ' [a-z0-9_]+_(avx2|avx512)$' "$FUNCS")
if [ -z "$bad" ]; then echo "ok 1 - AVX instructions only in run-time-dispatched kernels"
else echo "not ok 1 - AVX instructions outside the dispatched kernels:"; echo "$bad" | sed 's/^/# /'; fi
if grep -q -E '_avx512$' "$FUNCS"; then echo "ok 2 - the AVX-512 kernels are there to dispatch to"
else echo "not ok 2 - no AVX-512 kernel in the library"; bad=x; fi
[ -z "$bad" ]
