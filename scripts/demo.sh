#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# demo.sh - from a fresh clone: install dependencies, build, run the main example.
# The main example is the character-level language model (examples/charlm): it trains a 1x128
# LSTM on 32k first names (about a minute on 2 cores), reports its held-out loss, then samples
# new names from it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh            # the library's and the examples' packages only
[ -f build/build.ninja ] || meson setup build -Dtests=false >/dev/null  # (test.sh turns tests on)
ninja -C build >/dev/null
if [ -x build/examples/spool-charlm ]; then
  ./build/examples/spool-charlm train --data names --checkpoint build/names-demo.safetensors
  ./build/examples/spool-charlm eval --checkpoint build/names-demo.safetensors
  ./build/examples/spool-charlm sample --checkpoint build/names-demo.safetensors --count 10 --seed 1
else
  ./build/examples/spool-demo
fi
