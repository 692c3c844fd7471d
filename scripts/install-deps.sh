#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# install-deps.sh - the Debian 12 packages spool needs. Without arguments: what the library and
# its example programs need (the demo command); with --test, also what the test suite needs
# (cmocka, PyTorch for the interop and benchmark tests, Open MPI for the distributed tests,
# CMake for the install test, Doxygen for the reference, venv for the ONNX Runtime test).
# Installs only what is missing (so a second run is quick). Needs root (or sudo).
set -euo pipefail
# the library (compiler, build tools, BLIS; oneDNN for bf16 products on Intel's AMX tiles,
# ops/amx.c; protobuf-c and ONNX's schema for ONNX export, onnx/meson.build) and the examples
# (gnuplot plots, graphviz pictures, help2man for their man pages: optional, the build skips the
# pages without it)
pkgs=(gcc meson ninja-build pkg-config libblis-openmp-dev libdnnl-dev graphviz gnuplot-nox help2man)
pkgs+=(protobuf-c-compiler libprotobuf-c-dev libonnx-dev)  # ONNX export (-Donnx)
if [ "${1:-}" = --test ]; then
  pkgs+=(libcmocka-dev python3 python3-torch cmake doxygen)
  pkgs+=(python3-venv)  # the ONNX Runtime test pip-installs onnx and onnxruntime into a venv
  pkgs+=(libopenmpi-dev openmpi-bin)  # data-parallel training (dist/) and its mpirun tests
elif [ $# -gt 0 ]; then
  echo "usage: install-deps.sh [--test]" >&2
  exit 2
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "install-deps: all dependencies present${1:+ (with the test dependencies)}"
