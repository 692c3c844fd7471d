#!/usr/bin/env bash
# install-deps.sh - the Debian 12 packages spool needs to build, test and run its examples.
# Installs only what is missing (so a second run is quick). Needs root (or sudo).
set -euo pipefail
pkgs=(gcc meson ninja-build pkg-config libblis-openmp-dev libcmocka-dev graphviz gnuplot-nox python3 python3-torch)
pkgs+=(libopenmpi-dev openmpi-bin)  # data-parallel training (issue 14) and its mpirun tests
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
echo "install-deps: all dependencies present"
