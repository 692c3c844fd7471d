#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""make_torch_onnx.py - ONNX files written by PyTorch's exporter, read back by spool.

usage: make_torch_onnx.py ONNX_TORCH WORKDIR [SPOOL_CHARLM]

1. torch.onnx.export writes WORKDIR/<case>.onnx for torch.nn.LSTM, GRU and RNN (tanh, relu)
   modules with PyTorch's own random init, 1 and 2 layers, one- and bidirectional, alone (float
   input) or between an nn.Embedding and an nn.Linear head; WORKDIR/<case>.io holds the case's
   configuration, an input and PyTorch's outputs (y or logits, h_n, c_n). ONNX_TORCH (onnx_torch.c)
   builds the same model in spool with other random weights, reads the file's weights with
   sp_onnx_load_weights (and first checks that mismatched models are refused, naming the node,
   and left as they were) and writes its outputs; they must equal PyTorch's to 1e-5 relative.
2. With SPOOL_CHARLM: a char-LM (nn.Embedding -> 2-layer nn.LSTM -> nn.Linear) over the
   vocabulary spool-charlm builds from a small text is exported by torch, taken in with
   `spool-charlm train --init-from model.onnx` (one step of SGD at learning rate 0, so the
   checkpoint holds the file's weights), and `spool-charlm score` must print the log-probability
   PyTorch gives the same line (to the 4 decimals it prints).

The files are made fresh by every run (nothing is committed). Exit 77 (skip) when torch cannot be
imported: Debian's python3-torch (1.13) is what this was written against; torch.onnx.export needs
no onnx package.
"""
import os
import re
import subprocess
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_check import read_io, rel_err  # noqa: E402  (the .io format, one reader)

try:
    import numpy as np
    import torch
except Exception as e:  # pragma: no cover - depends on the machine
    print(f"# skip: torch and numpy are needed ({e}); Debian: apt-get install python3-torch")
    sys.exit(77)

warnings.filterwarnings("ignore")  # the exporter's advice on batch sizes and shape inference
KINDS = {"lstm": 0, "gru": 1, "rnn_tanh": 2, "rnn_relu": 3}
I, H, V, T, B = 4, 5, 11, 6, 3
TOL = 1e-5


def put(f, name, arr):
    dt = {np.dtype(np.float32): "f32", np.dtype(np.int64): "i64", np.dtype(np.int32): "i32"}[arr.dtype]
    f.write(f"{name} {dt} {arr.ndim}{''.join(' %d' % d for d in arr.shape)}\n".encode())
    f.write(arr.astype(arr.dtype.newbyteorder("<")).tobytes())


def recurrent(kind, inp, layers, bidir):
    if kind == "lstm":
        return torch.nn.LSTM(inp, H, layers, bidirectional=bidir)
    if kind == "gru":
        return torch.nn.GRU(inp, H, layers, bidirectional=bidir)
    return torch.nn.RNN(inp, H, layers, nonlinearity=kind[4:], bidirectional=bidir)


class Net(torch.nn.Module):
    """nn.Embedding -> a recurrent module -> nn.Linear: logits, h_n (, c_n)."""

    def __init__(self, kind, layers, bidir, vocab=V, emb=I):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, emb)
        self.rnn = recurrent(kind, emb, layers, bidir)
        self.head = torch.nn.Linear(H * (2 if bidir else 1), vocab)

    def forward(self, ids):
        y, st = self.rnn(self.emb(ids))
        return (self.head(y),) + (st if isinstance(st, tuple) else (st,))


def export(model, args, path, names_in, names_out):
    with torch.no_grad():
        torch.onnx.export(model, args, path, input_names=names_in, output_names=names_out, opset_version=14,
                          dynamic_axes={n: {0: "time", 1: "batch"} for n in names_in})


def make_case(work, name, kind, layers, bidir, head):
    model = (Net(kind, layers, bidir) if head else recurrent(kind, I, layers, bidir)).eval()
    D = 2 if bidir else 1
    if head:
        inp = torch.randint(0, V, (T, B))
        names = ["ids"]
    else:
        inp = torch.randn(T, B, I)
        names = ["x"]
    with torch.no_grad():
        out = model(inp)
    if head:
        first, states = out[0], out[1:]
    else:
        first, st = out
        states = st if isinstance(st, tuple) else (st,)
    export(model, (inp,), os.path.join(work, name + ".onnx"), names,
           ["logits" if head else "y", "hn"] + (["cn"] if kind == "lstm" else []))
    with open(os.path.join(work, name + ".io"), "wb") as f:
        put(f, "cfg", np.array([KINDS[kind], I, H, layers, D, V if head else 0, int(head)], dtype=np.int64))
        put(f, names[0], inp.numpy().astype(np.int64 if head else np.float32))
        put(f, "logits" if head else "y", first.numpy())
        put(f, "hn", states[0].numpy())
        if kind == "lstm":
            put(f, "cn", states[1].numpy())


def charlm_case(charlm, work):
    """spool-charlm train --init-from a PyTorch char-LM; score must give PyTorch's log-probability."""
    d = os.path.join(work, "charlm")
    os.makedirs(d, exist_ok=True)
    lines = ["anna", "bob", "carla", "dora", "emil", "frank", "greta", "hanna", "ida", "jon", "karl", "lena"]
    for split, part in (("train", lines), ("valid", lines[:3])):
        with open(os.path.join(d, split + ".txt"), "w") as f:
            f.write("\n".join(part) + "\n")
    vocab = sorted(set("".join(lines)))      # spool-charlm's lines mode: id 0 starts and ends a line,
    ids = {c: i + 1 for i, c in enumerate(vocab)}  # then the code points in order
    E, Hc, L = 6, 8, 2
    net = Net("lstm", L, False, vocab=len(vocab) + 1, emb=E)
    net.rnn = torch.nn.LSTM(E, Hc, L)
    net.head = torch.nn.Linear(Hc, len(vocab) + 1)
    net.eval()
    onnx = os.path.join(d, "torch_charlm.onnx")
    export(net, (torch.zeros(4, 1, dtype=torch.int64),), onnx, ["ids"], ["logits", "hn", "cn"])
    seq = [0] + [ids[c] for c in "anna"]
    with torch.no_grad():
        logp = torch.log_softmax(net(torch.tensor(seq).view(-1, 1))[0][:, 0], -1)
    want = float(sum(logp[t, nxt] for t, nxt in enumerate(seq[1:] + [0])))
    ck = os.path.join(d, "charlm.safetensors")
    common = ["--checkpoint", ck]
    train = [charlm, "train", "--data", os.path.join(d, "train.txt"), "--valid", os.path.join(d, "valid.txt"),
             "--mode", "lines", "--embed", str(E), "--hidden", str(Hc), "--layers", str(L), "--steps", "1",
             "--optimizer", "sgd", "--lr", "0", "--lr-schedule", "constant", "--batch", "2", "--plot", "none", "--init-from", onnx] + common
    r = subprocess.run(train, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout + r.stderr)
        return False
    r = subprocess.run([charlm, "score", "anna"] + common, capture_output=True, text=True)
    m = re.search(r"log-probability (-?[0-9.]+) nats", r.stdout)
    if r.returncode != 0 or not m:
        print(r.stdout + r.stderr)
        return False
    got = float(m.group(1))
    ok = abs(got - want) <= 1.5e-4
    print(f"# charlm --init-from {onnx}: score anna {got:.4f}, PyTorch {want:.4f}: {'ok' if ok else 'FAIL'}")
    # a model of another shape is refused, naming the node and both shapes
    r = subprocess.run(train[:-4] + ["--hidden", str(Hc + 1), "--init-from", onnx, "--checkpoint",
                                     os.path.join(d, "other.safetensors")], capture_output=True, text=True)
    named = r.returncode != 0 and "node \"" in r.stderr and "hidden_size" in r.stderr
    print(f"# charlm --init-from into --hidden {Hc + 1}: exit {r.returncode}: {r.stderr.strip()}")
    return ok and named and not os.path.exists(os.path.join(d, "other.safetensors"))


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    tool, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(0)
    cases = []
    for kind in KINDS:
        for layers, bidir in ((1, False), (2, True), (2, False), (1, True)):
            for head in (False, True):
                if kind.startswith("rnn") and head and bidir:
                    continue
                name = f"{kind}_l{layers}{'_bi' if bidir else ''}{'_head' if head else ''}"
                make_case(work, name, kind, layers, bidir, head)
                cases.append(name)
    r = subprocess.run([tool, work] + cases, capture_output=True, text=True)
    print(r.stdout, end="")
    if r.returncode != 0:
        print(r.stderr)
        print(f"# FAIL: {tool} exited with {r.returncode}")
        return 1
    worst, bad = 0.0, []
    for name in cases:
        want, got = read_io(os.path.join(work, name + ".io")), read_io(os.path.join(work, name + ".out"))
        for k in got:
            e = rel_err(got[k], want[k])
            worst = max(worst, e)
            if not e <= TOL:
                bad.append(f"{name}.{k}: {e:.2e}")
    print(f"# {len(cases)} PyTorch-exported files read into spool; worst relative difference {worst:.2e}")
    for b in bad:
        print(f"# FAIL {b}")
    ok = not bad
    if len(sys.argv) > 3:
        ok = charlm_case(sys.argv[3], work) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
