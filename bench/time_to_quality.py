#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""time_to_quality.py - wall time to a held-out loss: spool-charlm against the same model in PyTorch.

The Shakespeare model of docs/speed.md ("Time to quality"): characters -> embedding 32 -> 2-layer LSTM 256 -> dropout
0.2 between the layers and before the head -> linear -> softmax cross-entropy; Adam lr 2e-3
(constant), global-norm clip 5, 32 tracks x 64 characters per step, state carried from chunk to
chunk (reset at each epoch), held-out loss every --eval-every steps over the last 10 % of the text
in 32 tracks with state carried. The PyTorch half (run with --torch-worker under the PyTorch's
own python) mirrors spool-charlm's data path: the same vocabulary (sorted distinct characters),
split (the first int(0.9 n) characters train), tracks (track r starts at r * (n // 32)) and chunk
order. The initialisations differ (each library's own), so the curves are not step-for-step equal.

The two run one after the other (spool first) on the same thread count; the table gives each
one's held-out loss against wall seconds since its training started (evaluations included, in
both) and the time each first reaches --target (default 1.55 nats/char).

    /usr/bin/python3 bench/time_to_quality.py                      # ~6 minutes on 2 idle cores
    /usr/bin/python3 bench/time_to_quality.py --steps 20 --eval-every 10 --target 4   # smoke test
    /usr/bin/python3 bench/time_to_quality.py --precision bf16   # spool --precision bf16 vs torch autocast bf16
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TEXT = os.path.join(ROOT, "examples", "data", "tinyshakespeare", "input.txt")


def torch_worker(a):
    import torch
    import torch.nn as nn
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    text = open(TEXT, encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    cut = int(0.9 * len(ids))
    train, valid = ids[:cut], ids[cut:]
    V, B, T, H = len(chars), a.batch, a.seq, a.hidden

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, a.embed)
            self.lstm = nn.LSTM(a.embed, H, num_layers=a.layers, dropout=a.dropout)
            self.drop = nn.Dropout(a.dropout)
            self.head = nn.Linear(H, V)

        def forward(self, x, state):  # x [T, B]
            y, state = self.lstm(self.emb(x), state)
            return self.head(self.drop(y)), state

    model = Model()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    lossf = nn.CrossEntropyLoss()

    def tracks(d, b):
        L = len(d) // b
        return d[: b * L].view(b, L).t().contiguous(), L  # [L, b]: column r is track r

    tr, L = tracks(train, B)
    per_epoch = (L - 1) // T

    amp = a.precision == "bf16"  # forward and loss under autocast, as peer_torch.py --autocast bf16

    def evaluate():
        model.eval()
        b = B if len(valid) // B >= 2 else 1
        vt, VL = tracks(valid, b)
        state, total, n = None, 0.0, 0
        with torch.no_grad():
            for pos in range(0, VL - 1, T):
                t = min(T, VL - 1 - pos)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    out, state = model(vt[pos:pos + t], state)
                    total += lossf(out.reshape(-1, V), vt[pos + 1:pos + 1 + t].reshape(-1)).float().item() * t * b
                n += t * b
        model.train()
        return total / n

    t0 = time.perf_counter()
    state = None
    for step in range(1, a.steps + 1):
        chunk = (step - 1) % per_epoch
        if chunk == 0:
            state = None
        pos = chunk * T
        x, y = tr[pos:pos + T], tr[pos + 1:pos + 1 + T]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out, state = model(x, state)
            loss = lossf(out.reshape(-1, V), y.reshape(-1))
        state = tuple(s.detach() for s in state)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        if step % a.eval_every == 0 or step == a.steps:
            vl = evaluate()
            print(json.dumps({"step": step, "valid_loss": vl, "elapsed_s": time.perf_counter() - t0}), flush=True)
            if vl <= a.target and a.stop_at_target:
                break


def run_spool(a, exe, workdir):
    ckpt = os.path.join(workdir, "ttq.safetensors")
    log = os.path.join(workdir, "ttq.csv")
    cmd = [exe, "train", "--data", "shakespeare", "--hidden", str(a.hidden), "--layers", str(a.layers),
           "--embed", str(a.embed), "--dropout", str(a.dropout), "--optimizer", "adam", "--lr", str(a.lr),
           "--lr-schedule", "constant", "--clip", str(a.clip), "--batch", str(a.batch), "--seq", str(a.seq),
           "--steps", str(a.steps), "--eval-every", str(a.eval_every), "--checkpoint-every", "0",
           "--threads", str(a.threads), "--seed", str(a.seed), "--checkpoint", ckpt, "--log", log, "--plot", "none",
           "--precision", a.precision]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    points = []
    with open(log) as f:
        for row in csv.DictReader(f):
            if row["valid_loss"] not in ("", "nan"):
                points.append((int(row["step"]), float(row["valid_loss"]), float(row["elapsed_s"])))
    return points


def run_torch(a, python):
    cmd = [python, os.path.abspath(__file__), "--torch-worker"] + [
        "--%s=%s" % (k.replace("_", "-"), v) for k, v in vars(a).items()
        if k not in ("torch_worker", "python", "charlm", "stop_at_target") and v is not None]
    if a.stop_at_target:
        cmd.append("--stop-at-target")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [(d["step"], d["valid_loss"], d["elapsed_s"]) for d in rows]


def first_at(points, target):
    for step, vl, el in points:
        if vl <= target:
            return step, el
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--charlm", default=os.path.join(ROOT, "build", "examples", "spool-charlm"),
                   help="spool-charlm (default: build/examples/spool-charlm)")
    p.add_argument("--python", default="/opt/torch-venv/bin/python",
                   help="python with PyTorch (default: the PyPI release of bench/setup-peers.sh, /opt/torch-venv)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for both (default: all cores)")
    p.add_argument("--steps", type=int, default=4000, help="optimizer steps at most (default: 4000)")
    p.add_argument("--eval-every", type=int, default=250, help="held-out loss every N steps (default: 250)")
    p.add_argument("--target", type=float, default=1.55, help="held-out loss to reach, nats/char (default: 1.55)")
    p.add_argument("--stop-at-target", action="store_true", help="PyTorch: stop at the first evaluation under --target")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: spool-charlm --precision bf16 against PyTorch under torch.autocast(\"cpu\", bfloat16)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--embed", type=int, default=32)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.torch_worker:
        return torch_worker(a)
    if not os.path.exists(a.charlm):
        sys.exit("time_to_quality.py: no %s: meson setup build && ninja -C build" % a.charlm)
    if not os.path.exists(a.python):
        sys.exit("time_to_quality.py: no %s: run bench/setup-peers.sh, or pass --python" % a.python)
    with tempfile.TemporaryDirectory() as d:
        load0 = open("/proc/loadavg").read().split()[:3]
        sp = run_spool(a, a.charlm, d)
        th = run_torch(a, a.python)
        load1 = open("/proc/loadavg").read().split()[:3]
    ver = subprocess.run([a.python, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                         text=True).stdout.strip()
    print("Shakespeare %dx%d LSTM, %d threads, %s, eval every %d steps; spool-charlm then torch %s; load before %s, after %s.\n"
          % (a.layers, a.hidden, a.threads, "fp32" if a.precision == "fp32" else "spool --precision bf16, torch autocast bf16",
             a.eval_every, ver, " ".join(load0), " ".join(load1)))
    print("| step | spool held-out | spool s | torch held-out | torch s |")
    print("|---|---|---|---|---|")
    tmap = {s: (v, e) for s, v, e in th}
    for s, v, e in sp:
        tv = tmap.get(s)
        print("| %d | %.4f | %.1f | %s | %s |" % (s, v, e, "%.4f" % tv[0] if tv else "", "%.1f" % tv[1] if tv else ""))
    fs, ft = first_at(sp, a.target), first_at(th, a.target)
    print()
    for name, f in (("spool", fs), ("torch", ft)):
        print("- %s reaches %.2f nats/char %s" % (name, a.target, "at step %d, %.1f s" % f if f else "not within %d steps" % a.steps))
    if fs and ft:
        print("- time to %.2f: torch / spool = %.2fx" % (a.target, ft[1] / fs[1]))


if __name__ == "__main__":
    main()
