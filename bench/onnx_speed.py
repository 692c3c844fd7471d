#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""onnx_speed.py - inference speed of the char-LM and sentiment models: ONNX Runtime (CPU, one
thread) on the files `export --onnx` writes, against spool's own streaming path, for information
(bench/RESULTS.md).

usage: onnx_speed.py BUILD_DIR WORKDIR [--seconds S] [--hidden H]
       (needs onnxruntime and numpy: e.g. the venv tests/onnx/onnx_check.py makes,
        BUILD_DIR/tests/onnx/venv/bin/python bench/onnx_speed.py build /tmp/onnx-speed)

What is timed (each for about S seconds, default 10, after a warm-up):
  char-LM (embedding, LSTM of --hidden units, default 256, head over the names vocabulary):
    batch 1 streaming   ONNX Runtime: one character per run, states fed back;
                        spool: `spool-charlm sample` (sp_stream, batch 1), its characters/s;
    batch 64            ONNX Runtime: 64 rows of 64 characters per run;
                        spool: `spool-charlm eval --eval-batch 64 --eval-seq 64` on the names
                        validation split (sp_stream_run), predicted characters / its seconds.
  sentiment (MR vocabulary, BiLSTM 100, max pooling):
    batch 1             ONNX Runtime: one test sentence per run; spool: `spool-sentiment predict`
                        of the same sentences on stdin (sp_stream_run, one at a time);
    batch 64            ONNX Runtime: the test split in batches of 64 with lengths; spool:
                        `spool-sentiment eval` (batches of 64).
spool runs with --threads 1; its batch-64 rates and sentiment's batch-1 rate are whole commands
(start and model loading included, so they understate spool on small inputs). The models are trained for a moment only: speed does not depend on
the weights. Prints one JSON line per measurement (model, engine, batch, items/s).
"""
import json
import os
import re
import subprocess
import sys
import time


def timed(fn, seconds):
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += fn()
    return n / (time.perf_counter() - t0)


def sh(cmd, cwd):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True)
    return r.stdout + r.stderr, time.perf_counter() - t0


def main():
    import numpy as np
    import onnxruntime as ort
    args = sys.argv[1:]
    build, work = os.path.abspath(args[0]), os.path.abspath(args[1])
    secs = float(args[args.index("--seconds") + 1]) if "--seconds" in args else 10.0
    hidden = args[args.index("--hidden") + 1] if "--hidden" in args else "256"
    os.makedirs(work, exist_ok=True)
    charlm, sent = os.path.join(build, "examples", "spool-charlm"), os.path.join(build, "examples", "spool-sentiment")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    ort.set_default_logger_severity(3)
    out = []

    # char-LM
    ck = os.path.join(work, "charlm.safetensors")
    sh([charlm, "train", "--data", "names", "--steps", "2", "--hidden", hidden, "--threads", "1", "--checkpoint", ck,
        "--plot", "none"], work)
    sh([charlm, "export", "--checkpoint", ck, "--onnx", "charlm.onnx"], work)
    s = ort.InferenceSession(os.path.join(work, "charlm.onnx"), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    state = {}

    def step():
        res = dict(zip(names, s.run(names, {"ids": np.array([[1]], np.int64), **state})))
        state.update({k.replace("n_", "0_"): v for k, v in res.items() if k[1:3] == "n_"})
        return 1
    out.append(("charlm", "onnxruntime", 1, timed(step, secs)))
    ids64 = np.random.default_rng(0).integers(1, 10, (64, 64)).astype(np.int64)
    out.append(("charlm", "onnxruntime", 64, timed(lambda: s.run(["logits"], {"ids": ids64}) and 64 * 64, secs)))
    log, _ = sh([charlm, "sample", "--checkpoint", ck, "--count", "2000", "--threads", "1", "--seed", "1"], work)
    out.append(("charlm", "spool", 1, float(re.search(r"([0-9.]+) characters/s", log).group(1))))
    log, dt = sh([charlm, "eval", "--checkpoint", ck, "--eval-batch", "64", "--eval-seq", "64", "--threads", "1"], work)
    n = int(re.search(r"(\d+) predicted characters", log).group(1))
    out.append(("charlm", "spool", 64, n / dt))  # the whole command: loading included

    # sentiment
    model = os.path.join(work, "mr.safetensors")
    sh([sent, "train", "--data", "sentiment-mr", "--limit", "64", "--epochs", "1", "--bidir", "--threads", "1",
        "--log-every", "0", "--out", model], work)
    sh([sent, "export", "--data", "sentiment-mr", "--model", model, "--onnx", "sent.onnx", "--ids", "test.ids"], work)
    s2 = ort.InferenceSession(os.path.join(work, "sent.onnx"), opts, providers=["CPUExecutionProvider"])
    rows = [[int(i) for i in l.split("\t")[1].split()] or [-1] for l in open(os.path.join(work, "test.ids"))]
    it = iter(range(10 ** 12))

    def one():
        r = rows[next(it) % len(rows)]
        s2.run(["probs"], {"ids": np.array([r], np.int64).T})
        return 1

    def batches():
        for s0 in range(0, len(rows), 64):
            b = rows[s0:s0 + 64]
            x = np.full((max(len(r) for r in b), len(b)), -1, np.int64)
            for j, r in enumerate(b):
                x[:len(r), j] = r
            s2.run(["probs"], {"ids": x, "lengths": np.array([len(r) for r in b], np.int32)})
        return len(rows)
    out.append(("sentiment", "onnxruntime", 1, timed(one, secs)))
    out.append(("sentiment", "onnxruntime", 64, timed(batches, secs)))
    text = "".join(l.rsplit("\t", 1)[0] + "\n" for l in open(os.path.join(build, "..", "examples", "data",
                                                                           "sentiment-mr", "test.tsv")))
    t0 = time.perf_counter()
    subprocess.run([sent, "predict", "--model", model, "--threads", "1"], input=text, capture_output=True, text=True,
                   check=True, cwd=work)
    out.append(("sentiment", "spool", 1, len(rows) / (time.perf_counter() - t0)))
    _, dt = sh([sent, "eval", "--data", "sentiment-mr", "--model", model, "--threads", "1"], work)
    out.append(("sentiment", "spool", 64, len(rows) / dt))
    for model_name, engine, batch, rate in out:
        unit = "characters/s" if model_name == "charlm" else "sentences/s"
        print(json.dumps({"model": model_name, "engine": engine, "batch": batch, unit: round(rate, 1)}))


if __name__ == "__main__":
    main()
