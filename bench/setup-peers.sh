#!/bin/sh
# SPDX-License-Identifier: MIT
# setup-peers.sh - install the two PyTorch peers that bench/compare.py runs spool against:
#   debian: Debian 12's python3-torch (torch 1.13, SGEMM through libblas.so.3 = BLIS once
#           libblis-openmp-dev is installed), run with /usr/bin/python3;
#   pypi:   the current torch from PyPI (MKL + oneDNN) in a venv at /opt/torch-venv (several GB:
#           the Linux wheel pulls the CUDA libraries even for CPU use);
# and the OCR peer that bench/ocr_tesseract.sh runs against spool-ocr: Debian 12's Tesseract 5
# (tesseract-ocr with its English model tesseract-ocr-eng).
# Needs root for apt-get. Each step is skipped if already done; set SKIP_PYPI=1 to skip the venv.
set -eu
VENV=${TORCH_VENV:-/opt/torch-venv}

if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    apt-get update
    apt-get install -y python3-torch libblis-openmp-dev
fi
/usr/bin/python3 -c 'import torch; print("debian peer: torch", torch.__version__)'

if ! command -v tesseract > /dev/null || ! tesseract --list-langs 2>/dev/null | grep -qx eng; then
    apt-get update
    apt-get install -y tesseract-ocr tesseract-ocr-eng
fi
echo "ocr peer: $(tesseract --version 2>&1 | head -1)"

if [ "${SKIP_PYPI:-0}" != 1 ]; then
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
        /usr/bin/python3 -m venv "$VENV" || {
            echo "setup-peers.sh: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
        "$VENV/bin/pip" install torch numpy
    fi
    "$VENV/bin/python" -c 'import torch; print("pypi peer: torch", torch.__version__)'
fi
