#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""onnx_programs.py - the example programs' exported models in ONNX Runtime, on real data.

usage: onnx_programs.py WORKDIR SPOOL_SENTIMENT [DOCS_ONNX_MD]

spool-sentiment: three small models trained on the bundled sentiment-mr training split (a
BiLSTM pooled by its final states with a logistic output, a GRU pooled by the mean with a
softmax output, a minGRU, exported as a Scan, pooled by the max), each exported with
`spool-sentiment export --onnx M.onnx --ids test.ids` (the test split as word ids); ONNX
Runtime's accuracy and confusion counts over the whole test split (1066 sentences, run in
batches of 64 with lengths) must equal what `spool-sentiment eval` prints. With DOCS_ONNX_MD, the Python block of its section
"From spool-sentiment" runs on a model trained and exported as that section says, and must print
the accuracy `spool-sentiment eval` prints.

The packages (onnx, onnxruntime, numpy) come from the virtual environment tests/onnx/onnx_check.py
makes under WORKDIR (pip, first run only); exit 77 (skip, with the reason) when they cannot be had.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_check import ensure_venv, skip  # noqa: E402  (one virtual environment for the ONNX tests)

SENT_MODELS = [  # name, training options
    ("bilstm_last_logistic", ["--cell", "lstm", "--bidir", "--pool", "last", "--output", "logistic"]),
    ("gru_mean_softmax", ["--cell", "gru", "--pool", "mean", "--output", "softmax", "--layers", "2"]),
    ("mingru_max_logistic", ["--cell", "mingru", "--pool", "max", "--output", "logistic"]),
]


def run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r.stdout


def sentiment(exe, work):
    """ONNX Runtime's accuracy on the test split of each exported model equals spool's."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    ort.set_default_logger_severity(3)
    d = os.path.join(work, "sentiment")
    os.makedirs(d, exist_ok=True)
    ok = True
    for name, opts in SENT_MODELS:
        model = os.path.join(d, name + ".safetensors")
        run([exe, "train", "--data", "sentiment-mr", "--limit", "4000", "--epochs", "2", "--hidden", "16", "--embed", "16", "--lr", "0.005",
             "--threads", "1", "--log-every", "0", "--seed", "3", "--out", model] + opts, d)
        m = re.search(r"test accuracy ([0-9.]+) \((\d+)/(\d+); tp (\d+) tn (\d+) fp (\d+) fn (\d+)\)",
                      run([exe, "eval", "--data", "sentiment-mr", "--model", model], d))
        want = tuple(int(g) for g in m.groups()[1:])
        onnx_path, ids_path = os.path.join(d, name + ".onnx"), os.path.join(d, name + ".ids")
        run([exe, "export", "--data", "sentiment-mr", "--model", model, "--onnx", onnx_path, "--ids", ids_path], d)
        onnx.checker.check_model(onnx.load(onnx_path), full_check=True)
        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        labels, sents = [], []
        with open(ids_path) as f:
            for line in f:
                lab, ids = line.rstrip("\n").split("\t")
                labels.append(int(lab))
                sents.append([int(i) for i in ids.split()])
        probs = []
        for s0 in range(0, len(sents), 64):  # as spool's eval: batches of 64, padded with -1
            batch = sents[s0:s0 + 64]
            T = max(1, max(len(s) for s in batch))
            ids = np.full((T, len(batch)), -1, dtype=np.int64)
            for b, s in enumerate(batch):
                ids[:len(s), b] = s
            lengths = np.array([len(s) for s in batch], dtype=np.int32)
            p = sess.run(["probs"], {"ids": ids, "lengths": lengths})[0]
            probs.extend(p[:, -1])  # logistic: P(positive); softmax: column 1
        pos = np.array(probs) >= 0.5
        lab = np.array(labels) == 1
        tp, tn = int(np.sum(pos & lab)), int(np.sum(~pos & ~lab))
        fp, fn = int(np.sum(pos & ~lab)), int(np.sum(~pos & lab))
        got = (tp + tn, len(labels), tp, tn, fp, fn)
        same = got == want
        ok = ok and same
        print(f"{'ok' if same else 'not ok'} - spool-sentiment {name}: ONNX Runtime accuracy {got[0] / got[1]:.4f} "
              f"({got[0]}/{got[1]}; tp {tp} tn {tn} fp {fp} fn {fn}), spool eval {want[0]}/{want[1]} "
              f"(tp {want[2]} tn {want[3]} fp {want[4]} fn {want[5]})")
    return ok


def sentiment_doc(exe, doc, work):
    """The Python of docs/onnx.md's sentiment section prints eval's accuracy."""
    d = os.path.join(work, "sentiment_doc")
    os.makedirs(d, exist_ok=True)
    text = open(doc, encoding="utf-8").read()
    sec = text[text.index("## From spool-sentiment"):]
    code = re.search(r"```python\n(.*?)```", sec, re.S).group(1)
    model = os.path.join(d, "uci.safetensors")
    run([exe, "train", "--data", "sentiment-uci", "--limit", "2000", "--epochs", "3", "--hidden", "16", "--embed", "16",
         "--threads", "1", "--log-every", "0", "--out", model], d)
    want = re.search(r"test accuracy ([0-9.]+)", run([exe, "eval", "--data", "sentiment-uci", "--model", model], d)).group(1)
    run([exe, "export", "--data", "sentiment-uci", "--model", model, "--onnx", "sentiment.onnx", "--ids", "uci-test.ids"], d)
    got = run([sys.executable, "-c", code], d).strip()
    same = got == f"accuracy {want}"
    print(f"{'ok' if same else 'not ok'} - docs/onnx.md's sentiment example prints '{got}', spool eval {want}")
    return same


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    work, sent = sys.argv[1], os.path.abspath(sys.argv[2])
    os.makedirs(work, exist_ok=True)
    ensure_venv(work)
    try:
        import numpy  # noqa: F401
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the machine
        skip(f"cannot import the packages: {e}")
    ok = sentiment(sent, work)
    if len(sys.argv) > 3:
        ok = sentiment_doc(sent, sys.argv[3], work) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
