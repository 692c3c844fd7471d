#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Reference outputs for tests/test_layers_torch.c, computed with PyTorch in float64.

Usage: test_layers_torch.py IN OUT [IN OUT ...]. IN is written by the C test (a small text format: a header
line, lengths, then named parameters and the input, values in row-major order); OUT receives
the outputs and final states. Kinds torch.nn has (RNN, GRU, LSTM with proj_size) run through
torch.nn modules loaded with the same state_dict the C side built, which checks names, shapes
and math at once. The variants torch lacks (reset-before GRU, update-only GRU, peephole and
coupled LSTM) are written out here from their published equations with torch ops, independent
of spool's code. Exit 77 (skip) if torch is missing.
"""
import sys

try:
    import torch
except Exception:  # torch missing or broken: the C test reports a skip
    sys.exit(77)


def read(path):
    toks = open(path).read().split()
    pos = 0

    def nxt():
        nonlocal pos
        pos += 1
        return toks[pos - 1]

    hdr = {}
    assert nxt() == "config"
    for _ in range(9):
        k = nxt()
        hdr[k] = nxt() if k == "mode" else int(nxt())
    assert nxt() == "lengths"
    lengths = [int(nxt()) for _ in range(hdr["B"])]
    params = {}
    while True:
        tag = nxt()
        name = nxt()
        r, c = int(nxt()), int(nxt())
        vals = [float(nxt()) for _ in range(r * c)]
        t = torch.tensor(vals, dtype=torch.float64).reshape(r, c)
        if tag == "x":
            return hdr, lengths, params, t
        params[name] = t


def write(path, out, finals):
    with open(path, "w") as f:
        f.write("out %d %d\n" % tuple(out.shape))
        f.write(" ".join("%.17g" % v for v in out.reshape(-1).tolist()) + "\n")
        for (l, d, k), t in sorted(finals.items()):
            f.write("final %d %d %d %d %d\n" % (l, d, k, t.shape[0], t.shape[1]))
            f.write(" ".join("%.17g" % v for v in t.reshape(-1).tolist()) + "\n")


def manual_cell(mode, flags, p, sfx, x, h, c, H):
    """One step of a variant torch.nn lacks, from its equations (docs/layers.md)."""
    W_ih, b_ih, b_hh = p["weight_ih" + sfx], p["bias_ih" + sfx][0], p["bias_hh" + sfx][0]
    sg, th = torch.sigmoid, torch.tanh
    if mode == "GRU_RB":
        W_hh = p["weight_hh_resetbefore" + sfx]
        xi = x @ W_ih.T + b_ih
        r = sg(xi[:, :H] + h @ W_hh[:H].T + b_hh[:H])
        z = sg(xi[:, H:2 * H] + h @ W_hh[H:2 * H].T + b_hh[H:2 * H])
        n = th(xi[:, 2 * H:] + (r * h) @ W_hh[2 * H:].T + b_hh[2 * H:])
        return (1 - z) * n + z * h, None
    if mode == "GRU_UO":
        W_hh = p["weight_hh" + sfx]
        a = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
        z, n = sg(a[:, :H]), th(a[:, H:])
        return (1 - z) * n + z * h, None
    # LSTM variants: flags 1 peephole, 2 coupled
    W_hh = p["weight_hh" + sfx]
    a = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
    peep = p.get("weight_peep" + sfx)
    if flags & 2:
        ai, ag, ao = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
    else:
        ai, af, ag, ao = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
    if peep is not None:
        ai = ai + peep[0] * c
    i = sg(ai)
    if flags & 2:
        f = 1 - i
    else:
        f = sg(af + peep[1] * c) if peep is not None else sg(af)
    c2 = f * c + i * th(ag)
    o = sg(ao + peep[-1] * c2) if peep is not None else sg(ao)
    h2 = o * th(c2)
    if "weight_hr" + sfx in p:
        h2 = h2 @ p["weight_hr" + sfx].T
    return h2, c2


def run_manual(hdr, lengths, p, x):
    T, B, H, P = hdr["T"], hdr["B"], hdr["H"], hdr["P"]
    O = P if P else H
    mode, flags = hdr["mode"], hdr["flags"]
    xs = x.reshape(T, B, -1)
    finals, outs = {}, []
    for d in range(hdr["D"]):
        sfx = "_l0" + ("_reverse" if d else "")
        h = torch.zeros(B, O, dtype=torch.float64)
        c = torch.zeros(B, H, dtype=torch.float64)
        out = torch.zeros(T, B, O, dtype=torch.float64)
        for b in range(B):  # one row at a time: the reference needs no masking logic
            hb, cb = h[b:b + 1], c[b:b + 1]
            steps = range(lengths[b]) if d == 0 else range(lengths[b] - 1, -1, -1)
            for t in steps:
                hb, c2 = manual_cell(mode, flags, p, sfx, xs[t, b:b + 1], hb, cb, H)
                cb = c2 if c2 is not None else cb
                out[t, b] = hb[0]
            h[b], c[b] = hb[0], cb[0]
        outs.append(out)
        finals[(0, d, 0)] = h
        if mode.startswith("LSTM"):
            finals[(0, d, 1)] = c
    return torch.cat(outs, dim=2).reshape(T * B, -1), finals


def run_torch(hdr, lengths, p, x):
    T, B, I, H, P, L, D = (hdr[k] for k in ("T", "B", "I", "H", "P", "L", "D"))
    mode = hdr["mode"]
    kw = dict(num_layers=L, bidirectional=bool(D - 1))
    if mode == "LSTM":
        m = torch.nn.LSTM(I, H, proj_size=P, **kw)
    elif mode == "GRU":
        m = torch.nn.GRU(I, H, **kw)
    else:
        m = torch.nn.RNN(I, H, nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **kw)
    sd = {k: (v[0] if k.startswith("bias") else v) for k, v in p.items()}
    m = m.double()  # before loading, so the values are not rounded to float32
    m.load_state_dict(sd, strict=True)  # names and shapes must match exactly
    packed = torch.nn.utils.rnn.pack_padded_sequence(x.reshape(T, B, I), torch.tensor(lengths),
                                                     enforce_sorted=False)
    out, st = m(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)
    hn = st[0] if mode == "LSTM" else st
    finals = {}
    for l in range(L):
        for d in range(D):
            finals[(l, d, 0)] = hn[l * D + d]
            if mode == "LSTM":
                finals[(l, d, 1)] = st[1][l * D + d]
    return out.reshape(T * B, -1), finals


def main():
    # pairs IN OUT: one interpreter start (torch import is slow) for every case
    for i in range(1, len(sys.argv) - 1, 2):
        hdr, lengths, p, x = read(sys.argv[i])
        with torch.no_grad():
            if hdr["mode"] in ("GRU_RB", "GRU_UO", "LSTM_VAR"):
                out, finals = run_manual(hdr, lengths, p, x)
            else:
                out, finals = run_torch(hdr, lengths, p, x)
        write(sys.argv[i + 1], out, finals)


main()
