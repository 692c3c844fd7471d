#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""check_same_math.py - does spool-bench run the same step as the PyTorch peer?

Runs `spool-bench --dump DIR` (one training step on batch 0, parameters saved before and after),
then rebuilds the peer's model (bench/peer_torch.py's CharModel; for minGRU and minLSTM the
sequential form of bench/peer_min.py with spool's linear candidate) in PyTorch with spool's
initial parameters, runs the same step on the same tokens (forward, mean cross-entropy, backward,
clip_grad_norm_ 5.0, Adam lr 2e-3) and compares the loss and every parameter's update. Agreement
to float rounding means the two benchmarks do the same arithmetic; a wrong gate order, bias,
direction or optimizer detail shows up as a large difference.

    /usr/bin/python3 bench/check_same_math.py --bench build/bench/spool-bench --cell gru --hidden 64

Exit status 0 if the loss agrees to --tol-loss (relative) and every update to --tol-update
(in units of the learning rate), 1 otherwise, 77 (meson's "skipped") if torch is not installed.
Needs torch (Debian's python3-torch is enough). bench/meson.build registers it as tests.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile


def read_safetensors(path):
    import torch
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError("%s: dtype %s, expected F32" % (name, info["dtype"]))
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(buf[base + a:base + b]), dtype=torch.float32)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", default="build/bench/spool-bench")
    p.add_argument("--cell", choices=["rnn", "gru", "lstm", "mingru", "minlstm"], default="lstm")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=16)
    p.add_argument("--vocab", type=int, default=65)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--tol-loss", type=float, default=1e-5)
    p.add_argument("--tol-update", type=float, default=0.02,
                   help="max |update difference| / lr (Adam's first update is about lr in size)")
    a = p.parse_args()

    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError:
        print("# SKIP: torch is not installed (apt-get install python3-torch)")
        sys.exit(77)
    torch.set_num_threads(1)

    V, H, L, B, T = a.vocab, a.hidden, a.layers, a.batch, a.seq
    dirs = 2 if a.bidirectional else 1
    with tempfile.TemporaryDirectory() as d:
        cmd = [a.bench, "--cell", a.cell, "--hidden", str(H), "--layers", str(L), "--batch", str(B),
               "--seq", str(T), "--vocab", str(V), "--lr", str(a.lr), "--clip", str(a.clip),
               "--threads", "1", "--dump", d] + (["--bidirectional"] if a.bidirectional else [])
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("check_same_math: %s failed: %s" % (" ".join(cmd), r.stderr.strip()))
        init = read_safetensors(os.path.join(d, "init.safetensors"))
        step1 = read_safetensors(os.path.join(d, "step1.safetensors"))
        with open(os.path.join(d, "tokens.txt")) as f:
            toks = torch.tensor([[int(x) for x in line.split()] for line in f])  # (T+1, B)
        with open(os.path.join(d, "loss.txt")) as f:
            spool_loss = float(f.read())

    class MinRNN(nn.Module):
        """minGRU / minLSTM stacks, the paper's sequential form with spool's linear candidate
        (bench/peer_min.py --form sequential --candidate linear), under spool's parameter names."""
        def __init__(self):
            super().__init__()
            G = (2 if a.cell == "mingru" else 3) * H
            for l in range(L):
                for d in range(dirs):
                    sfx = "_l%d%s" % (l, "_reverse" if d else "")
                    self.register_parameter("weight_ih_%s%s" % (a.cell, sfx), nn.Parameter(torch.zeros(G, V if l == 0 else H * dirs)))
                    self.register_parameter("bias_ih_%s%s" % (a.cell, sfx), nn.Parameter(torch.zeros(G)))

        def forward(self, x):  # (T, B, I), every row T steps long
            for l in range(L):
                outs = []
                for d in range(dirs):
                    sfx = "_l%d%s" % (l, "_reverse" if d else "")
                    k = F.linear(x.flip(0) if d else x, getattr(self, "weight_ih_%s%s" % (a.cell, sfx)),
                                 getattr(self, "bias_ih_%s%s" % (a.cell, sfx)))
                    h, hs = x.new_zeros(B, H), []
                    for t in range(T):
                        if a.cell == "mingru":
                            z = torch.sigmoid(k[t, :, :H])
                            h = (1 - z) * h + z * k[t, :, H:]
                        else:
                            f, i = torch.sigmoid(k[t, :, :H]), torch.sigmoid(k[t, :, H:2 * H])
                            h = f / (f + i) * h + i / (f + i) * k[t, :, 2 * H:]
                        hs.append(h)
                    y = torch.stack(hs)
                    outs.append(y.flip(0) if d else y)
                x = torch.cat(outs, dim=-1)
            return x, None

    # The peer's model, as in peer_torch.py (peer_min.py's for minGRU and minLSTM).
    class CharModel(nn.Module):
        def __init__(self):
            super().__init__()
            kind = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}.get(a.cell)
            self.rnn = kind(V, H, num_layers=L, bidirectional=a.bidirectional) if kind else MinRNN()
            self.head = nn.Linear(H * dirs, V)

        def forward(self, x):
            h, _ = self.rnn(x)
            return self.head(h)

    model = CharModel()
    sd = model.state_dict()
    missing = sorted(set(sd) ^ set(init))
    if missing:
        sys.exit("check_same_math: parameter names differ between spool and torch: %s" % missing)
    model.load_state_dict({k: init[k].reshape(sd[k].shape) for k in sd}, strict=True)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    x = F.one_hot(toks[:T], V).to(torch.float32)
    y = toks[1:]
    opt.zero_grad()
    loss = F.cross_entropy(model(x).reshape(T * B, V), y.reshape(T * B))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
    opt.step()

    rel = abs(loss.item() - spool_loss) / abs(loss.item())
    worst, worst_name = 0.0, ""
    after = model.state_dict()
    for k in sd:
        du_torch = after[k].reshape(-1) - init[k].reshape(-1)
        du_spool = step1[k].reshape(-1) - init[k].reshape(-1)
        diff = (du_torch - du_spool).abs().max().item() / a.lr
        if diff > worst:
            worst, worst_name = diff, k
    ok = rel <= a.tol_loss and worst <= a.tol_update
    print("check_same_math %s H=%d L=%d %s: loss torch %.7f spool %.7f (rel diff %.1e); "
          "largest update difference %.2e lr (%s) -> %s" % (
              a.cell, H, L, "bi" if a.bidirectional else "uni", loss.item(), spool_loss, rel, worst,
              worst_name, "same math" if ok else "MISMATCH"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
