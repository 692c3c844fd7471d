#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""init_from.py - `train --init-from FILE.onnx` of spool-sentiment and spool-ner (sp_onnx_load_weights).

usage: init_from.py WORKDIR SPOOL_SENTIMENT SPOOL_NER

A model is trained, exported (`export --onnx`), and a second run starts from that file with
--lr 0 (Adam then moves nothing): spool-sentiment's second model must hold every tensor of the
first, byte for byte (embedding, LSTM, head: all it has), and score what it scored; spool-ner's
must hold the first's word embedding, BiLSTM and output layer byte for byte, and the casing
embedding and the CRF of a run without --init-from (what the file does not give starts fresh).
A file of another shape (another --hidden), a minGRU model (its layers are a Scan in the file,
whose weights no reader takes apart) and --resume with --init-from are refused with a message.
Needs no Python package: safetensors are read here (an 8-byte header length, a JSON header).
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys


def run(cmd, cwd, ok=True):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if ok and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r


def tensors(path):
    """{name: raw bytes} of a safetensors file."""
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    head = json.loads(data[8:8 + n])
    return {k: data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in head.items() if k != "__metadata__"}


def check(name, cond, what):
    print(f"{'ok' if cond else 'not ok'} - {name}: {what}")
    return cond


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    work, sent, ner = sys.argv[1], os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
    ok = True
    # spool-sentiment: everything the model has comes back
    shutil.rmtree(work, ignore_errors=True)  # a file left by an earlier run must not pass for this one's
    d = os.path.join(work, "sentiment")
    os.makedirs(d)
    base = [sent, "train", "--data", "sentiment-uci", "--limit", "600", "--epochs", "1", "--hidden", "12", "--embed", "10",
            "--bidir", "--threads", "1", "--log-every", "0", "--seed", "2"]
    run(base + ["--out", "a.safetensors"], d)
    r = run([sent, "export", "--data", "sentiment-uci", "--model", "a.safetensors", "--onnx", "a.onnx"], d, ok=False)
    if r.returncode != 0 and "built without ONNX" in r.stderr:
        print(f"# skipped: {r.stderr.strip()}")
        return 77
    run(base + ["--out", "b.safetensors", "--init-from", "a.onnx", "--lr", "0"], d)  # the same seed: the same vocabulary
    a, b = tensors(os.path.join(d, "a.safetensors")), tensors(os.path.join(d, "b.safetensors"))
    ok &= check("spool-sentiment", a.keys() == b.keys() and all(a[k] == b[k] for k in a),
                f"train --init-from a.onnx --lr 0 holds all {len(a)} tensors of the exported model, byte for byte")
    acc = [re.search(r"test accuracy ([0-9.]+ \(\d+/\d+)", run([sent, "eval", "--data", "sentiment-uci", "--model", m], d).stdout)
           .group(1) for m in ("a.safetensors", "b.safetensors")]
    ok &= check("spool-sentiment", acc[0] == acc[1], f"eval: {acc[0]}) and {acc[1]})")
    r = run(base + ["--out", "c.safetensors", "--init-from", "a.onnx", "--hidden", "7"], d, ok=False)
    ok &= check("spool-sentiment", r.returncode == 1 and "--init-from" in r.stderr and "hidden_size 12" in r.stderr,
                f"another --hidden refused: {r.stderr.strip()}")
    run(base + ["--out", "m.safetensors", "--cell", "mingru", "--epochs", "1"], d)
    run([sent, "export", "--data", "sentiment-uci", "--model", "m.safetensors", "--onnx", "m.onnx"], d)
    r = run(base + ["--out", "c.safetensors", "--cell", "mingru", "--init-from", "m.onnx"], d, ok=False)
    ok &= check("spool-sentiment", r.returncode == 1 and "Scan" in r.stderr, f"a minGRU (a Scan in the file) refused: {r.stderr.strip()}")
    r = run(base + ["--init-from", "a.onnx", "--resume", "a.safetensors.last"], d, ok=False)
    ok &= check("spool-sentiment", r.returncode == 2 and "exclude each other" in r.stderr, "--init-from with --resume refused")
    ok &= check("spool-sentiment", not os.path.exists(os.path.join(d, "c.safetensors")), "no model written by a refused run")
    # spool-ner: the word embedding, the BiLSTM and the output layer come back; the rest starts fresh
    d = os.path.join(work, "ner")
    os.makedirs(d)
    base = [ner, "train", "--data", "ner-wikigold", "--limit", "150", "--epochs", "1", "--hidden", "10", "--embed", "12",
            "--threads", "1", "--log-every", "0"]
    run(base + ["--out", "a.safetensors"], d)
    run([ner, "export", "--data", "ner-wikigold", "--model", "a.safetensors", "--onnx", "a.onnx"], d)
    run(base + ["--out", "b.safetensors", "--init-from", "a.onnx", "--lr", "0", "--seed", "7"], d)
    run(base + ["--out", "fresh.safetensors", "--lr", "0", "--seed", "7"], d)
    a, b, fresh = (tensors(os.path.join(d, m + ".safetensors")) for m in ("a", "b", "fresh"))
    loaded = [k for k in a if k.startswith(("word_embed", "lstm", "out"))]
    rest = [k for k in a if k not in loaded]
    ok &= check("spool-ner", len(loaded) >= 5 and all(a[k] == b[k] for k in loaded),
                f"{len(loaded)} tensors from a.onnx byte for byte: {', '.join(sorted(loaded))}")
    ok &= check("spool-ner", rest and all(b[k] == fresh[k] for k in rest) and any(a[k] != b[k] for k in rest),
                f"{', '.join(sorted(rest))} as a run without --init-from makes them")
    r = run(base + ["--out", "c.safetensors", "--init-from", "a.onnx", "--embed", "9"], d, ok=False)
    ok &= check("spool-ner", r.returncode == 1 and "--init-from" in r.stderr and "[2, 40, 20]" in r.stderr,
                f"another --embed refused: {r.stderr.strip()}")
    ok &= check("spool-ner", not os.path.exists(os.path.join(d, "c.safetensors")), "no model written by a refused run")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
