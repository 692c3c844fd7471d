#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Layer-normalised LSTM and GRU (Ba, Kiros & Hinton 2016) written out independently in PyTorch
(torch.nn.functional.layer_norm and the cells' published equations, float64), against the
outputs spool computed (tests/test_ln_torch.c). Usage: test_ln_torch.py FILE. FILE holds, per
case, "case KIND T B I H", the parameters by name, the input x [T*B, I] and spool's out
[T*B, H] and final states. Exits 0 if every value agrees to 1e-10, 1 otherwise, 77 without torch.
"""
import sys

try:
    import torch
    import torch.nn.functional as F
except Exception:
    sys.exit(77)


def cases(path):
    toks = open(path).read().split()
    pos = 0
    while pos < len(toks):
        assert toks[pos] == "case"
        kind = toks[pos + 1]
        T, B, I, H = (int(v) for v in toks[pos + 2:pos + 6])
        pos += 6
        ts = {}
        while pos < len(toks) and toks[pos] == "tensor":
            name, r, c = toks[pos + 1], int(toks[pos + 2]), int(toks[pos + 3])
            pos += 4
            ts[name] = torch.tensor([float(v) for v in toks[pos:pos + r * c]], dtype=torch.float64).reshape(r, c)
            pos += r * c
        yield kind, T, B, I, H, ts


def ln(v, g, b):
    return F.layer_norm(v, (v.shape[1],), g[0], b[0], eps=1e-5)


def run(kind, T, B, I, H, p):
    x = p["x"]
    h = torch.zeros(B, H, dtype=torch.float64)
    c = torch.zeros(B, H, dtype=torch.float64)
    outs = []
    for t in range(T):
        xt = x[t * B:(t + 1) * B]
        xa = ln(xt @ p["weight_ih_l0"].T, p["ln_ih_weight_l0"], p["ln_ih_bias_l0"])
        ha = ln(h @ p["weight_hh_l0"].T, p["ln_hh_weight_l0"], p["ln_hh_bias_l0"])
        if kind == "ln_lstm":
            a = xa + ha
            i, f, g, o = a[:, :H].sigmoid(), a[:, H:2 * H].sigmoid(), a[:, 2 * H:3 * H].tanh(), a[:, 3 * H:].sigmoid()
            c = f * c + i * g
            h = o * ln(c, p["ln_c_weight_l0"], p["ln_c_bias_l0"]).tanh()
        else:
            r = (xa[:, :H] + ha[:, :H]).sigmoid()
            z = (xa[:, H:2 * H] + ha[:, H:2 * H]).sigmoid()
            n = (xa[:, 2 * H:] + r * ha[:, 2 * H:]).tanh()
            h = (1 - z) * n + z * h
        outs.append(h)
    return torch.cat(outs), h, c


worst, ok = 0.0, True
for kind, T, B, I, H, p in cases(sys.argv[1]):
    out, h, c = run(kind, T, B, I, H, p)
    pairs = [("out", out), ("h_final", h)] + ([("c_final", c)] if kind == "ln_lstm" else [])
    for name, ref in pairs:
        d = (ref - p[name]).abs().max().item()
        worst = max(worst, d)
        if not d <= 1e-10:
            ok = False
            print("# %s %s: max |torch - spool| = %.3g" % (kind, name, d))
    print("# %s: T=%d B=%d I=%d H=%d checked" % (kind, T, B, I, H))
print("# max |torch - spool| over all: %.3g" % worst)
sys.exit(0 if ok else 1)
