#!/bin/bash
# SPDX-License-Identifier: MIT
# ocr_tesseract.sh - Tesseract 5 (Debian tesseract-ocr + tesseract-ocr-eng; bench/setup-peers.sh
# installs them) on the very images that `spool-ocr eval` reads: each index (file<TAB>text, files
# relative to the index's folder, as `spool-ocr render` writes them) is read line by line, every
# image recognised as a single text line (--psm 7, LSTM engine --oem 1), and the character and word
# error rates printed in spool-ocr eval's format, with the same definitions (Levenshtein distance
# over characters, and over space-separated words, divided by the reference's length; Tesseract's
# output with its whitespace collapsed and trimmed, as spool-ocr's lines are). Also one JSON line
# per index (peer, CER, WER, lines, seconds) for the results files, after the rates per font (the
# part of an image's name after its number, as `spool-ocr eval --by-font` prints them).
# Usage: bench/ocr_tesseract.sh INDEX.tsv...      e.g. bench/ocr_tesseract.sh ocr-test/clean.tsv ocr-test/degraded.tsv
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: ocr_tesseract.sh INDEX.tsv..." >&2; exit 2; }
command -v tesseract > /dev/null || { echo "ocr_tesseract.sh: tesseract not found (bench/setup-peers.sh, or apt-get install tesseract-ocr tesseract-ocr-eng)" >&2; exit 1; }
export OMP_THREAD_LIMIT=${OMP_THREAD_LIMIT:-1} # one thread per image, as the images run one after another
for index in "$@"; do
    dir=$(dirname "$index")
    out=$(mktemp)
    t0=$(date +%s.%N)
    while IFS=$'\t' read -r file text; do
        [ -z "$file" ] || [ "${file:0:1}" = "#" ] && continue
        case $file in /*) img=$file ;; *) img=$dir/$file ;; esac
        hyp=$(tesseract "$img" - --psm 7 --oem 1 -l eng 2> /dev/null | tr '\n\f\t' '   ' | tr -s ' ' | sed 's/^ //; s/ $//')
        printf '%s\t%s\t%s\n' "$file" "$text" "$hyp" >> "$out"
    done < "$index"
    t1=$(date +%s.%N)
    python3 - "$index" "$out" "$t0" "$t1" <<'PY'
import json, sys

def dist(a, b):
    row = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        diag, row[0] = row[0], i
        for j in range(1, len(b) + 1):
            up = row[j]
            row[j] = min(up + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1]))
            diag = up
    return row[-1]

index, path, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
ce = cn = we = wn = lines = exact = 0
fonts = {}  # per font, as spool-ocr eval --by-font: the part of the name after the number
for line in open(path, encoding="utf-8", errors="replace"):
    f, ref, hyp = (line.rstrip("\n").split("\t") + ["", ""])[:3]
    d, dw = dist(ref, hyp), dist(ref.split(), hyp.split())
    ce, cn, lines, exact = ce + d, cn + len(ref), lines + 1, exact + (d == 0)
    we, wn = we + dw, wn + len(ref.split())
    base = f.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    s = fonts.setdefault(base.split("-", 1)[1] if "-" in base else "?", [0, 0, 0, 0, 0, 0])
    for k, v in enumerate((d, len(ref), dw, len(ref.split()), 1, d == 0)):
        s[k] += v
secs = t1 - t0
print(f"{index}: CER {100 * ce / max(cn, 1):.2f}%  WER {100 * we / max(wn, 1):.2f}%  "
      f"({lines} lines, {exact} exact; {cn} characters, {wn} words; {lines / max(secs, 1e-9):.1f} lines/s)")
for name, (fe, fn, fwe, fwn, fl, fx) in fonts.items():
    print(f"  {name:<28} CER {100 * fe / max(fn, 1):.2f}%  WER {100 * fwe / max(fwn, 1):.2f}%  "
          f"({fl} lines, {fx} exact; {fn} characters)")
print(json.dumps({"peer": "tesseract", "index": index, "cer": round(ce / max(cn, 1), 5),
                  "wer": round(we / max(wn, 1), 5), "lines": lines, "seconds": round(secs, 2)}))
PY
    rm -f "$out"
done
