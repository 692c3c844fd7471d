#!/bin/sh
# SPDX-License-Identifier: MIT
# test_spdx.sh - every source file of the tree (C, headers, Python, shell, meson, CMake) carries
# an SPDX-License-Identifier line in its first three lines (the LICENSE is MIT).
# usage: test_spdx.sh SOURCE_ROOT
cd "$1" || exit 1
missing=$(find autograd ops layers optim dist include examples bench tests scripts docs cmake meson.build \
    meson_options.txt .ci \( -path examples/data -o -name '.*' -a ! -name .ci \) -prune -o -type f \
    \( -name '*.c' -o -name '*.h' -o -name '*.in' -o -name '*.py' -o -name '*.sh' -o -name meson.build \
       -o -name CMakeLists.txt -o -name meson_options.txt -o -path .ci/run \) -print 2>/dev/null |
    while read -r f; do head -n 3 "$f" | grep -q 'SPDX-License-Identifier: MIT' || echo "$f"; done)
if [ -n "$missing" ]; then echo "FAIL: no SPDX line in:"; echo "$missing"; exit 1; fi
echo "ok: every source file has its SPDX line"
