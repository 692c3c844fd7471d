#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""peer_ocr.py - PyTorch (CPU) peer of spool-ocr's training step (spool-ocr bench).

The model as its users write it:
    x    = line images as frames                     (T, B, F) float32, padded, seq-first
    h    = nn.LSTM(F, H, L, bidirectional=True) over pack_padded_sequence(x, lengths,
           enforce_sorted=False), pad_packed_sequence back
    z    = nn.Linear(2H, 96)(h)                      96 classes: CTC blank + printable ASCII
    loss = nn.CTCLoss(blank=0, reduction='mean', zero_infinity=True)(z.log_softmax(-1), ...)
    loss.backward(); clip_grad_norm_(params, 1.0); Adam(lr=5e-3).step()

Data: with --batches FILE, the very batches spool-ocr timed (`spool-ocr bench --save-batches
FILE`: rendered lines of different widths, their frames, lengths and labels); without, 8
synthetic batches (lengths uniform in [--min-frames, --frames], random pixels, random labels of
about one per 6 frames). Warm-up steps, then S timed steps cycling through the batches. Prints
ONE line of JSON (the keys of bench/peer_torch.py where they mean the same). --autocast bf16 runs
forward and loss under torch.autocast('cpu', dtype=torch.bfloat16) (the CTC loss itself in
fp32, as autocast does). --threads as bench/peer_torch.py (set before torch is imported).
Run with /usr/bin/python3 (Debian's python3-torch) or a venv's python.
"""
import argparse
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_common import rss_mb, start_torch, timed_steps  # noqa: E402

CLASSES = 96


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", help="batches written by spool-ocr bench --save-batches (default: synthetic)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=32, help="synthetic batches only")
    p.add_argument("--features", type=int, default=64, help="synthetic batches only (height 32 x 2 columns)")
    p.add_argument("--frames", type=int, default=400, help="synthetic: longest line in frames")
    p.add_argument("--min-frames", type=int, default=100, help="synthetic: shortest line in frames")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=0, help="timed steps; 0 = about --target-seconds")
    p.add_argument("--target-seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--autocast", choices=["none", "bf16"], default="none")
    return p.parse_args()


def read_batches(path, torch):
    """[(x (T, B, F), lengths (B,), labels (sum,), label_lengths (B,))] from spool-ocr's file."""
    out = []
    with open(path, "rb") as f:
        if f.readline().split() != [b"spool-ocr-batches", b"1"]:
            sys.exit(f"peer_ocr.py: {path} is not a spool-ocr bench --save-batches file")
        nb, F = map(int, f.readline().split())
        for _ in range(nb):
            T, B, nl = map(int, f.readline().split())
            lens = [int(v) for v in f.readline().split()]
            llen = [int(v) for v in f.readline().split()]
            labels = [int(v) for v in f.readline().split()]
            raw = f.read(4 * T * B * F)
            if len(lens) != B or len(llen) != B or len(labels) != nl or len(raw) != 4 * T * B * F:
                sys.exit(f"peer_ocr.py: {path} is truncated or malformed")
            x = torch.tensor(struct.unpack(f"<{T * B * F}f", raw), dtype=torch.float32).reshape(T, B, F)
            out.append((x, torch.tensor(lens), torch.tensor(labels), torch.tensor(llen)))
    return out


def synthetic(a, torch):
    g = torch.Generator().manual_seed(a.seed)
    out = []
    for _ in range(8):
        lens = torch.randint(a.min_frames, a.frames + 1, (a.batch,), generator=g)
        T = int(lens.max())
        x = torch.rand(T, a.batch, a.features, generator=g)
        for b in range(a.batch):
            x[lens[b]:, b] = 0
        llen = torch.clamp(lens // 6, min=1)
        labels = torch.randint(1, CLASSES, (int(llen.sum()),), generator=g)
        out.append((x, lens, labels, llen))
    return out


def main():
    a = parse()
    torch = start_torch(a.threads, a.seed)
    import torch.nn as nn
    batches = read_batches(a.batches, torch) if a.batches else synthetic(a, torch)
    F = batches[0][0].shape[2]

    class OcrModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(F, a.hidden, num_layers=a.layers, bidirectional=True)
            self.head = nn.Linear(2 * a.hidden, CLASSES)

        def forward(self, x, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
            h, _ = self.rnn(packed)
            h, _ = nn.utils.rnn.pad_packed_sequence(h, total_length=x.shape[0])
            return self.head(h)  # (T, B, C)

    model = OcrModel()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    ctc = nn.CTCLoss(blank=0, reduction="mean", zero_infinity=True)

    def step(i):
        x, lens, labels, llen = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.autocast == "bf16"):
            z = model(x, lens)
        loss = ctc(z.float().log_softmax(-1), labels, lens, llen)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        return loss.item()

    S, times, secs, loss_first, loss_last = timed_steps(step, a.warmup, a.steps, a.target_seconds, 3)
    real = sum(int(batches[(a.warmup + i) % len(batches)][1].sum()) for i in range(S))
    st = sorted(times)
    print(json.dumps({
        "peer": "pytorch-cpu", "torch": torch.__version__, "mode": "train", "model": "ocr-bilstm-ctc",
        "hidden": a.hidden, "layers": a.layers, "batch": int(batches[0][0].shape[1]), "features": F,
        "mean_frames": round(sum(float(b[1].float().mean()) for b in batches) / len(batches), 1),
        "padded_frames_per_batch": round(sum(b[0].shape[0] * b[0].shape[1] for b in batches) / len(batches), 1),
        "data": "spool-ocr batches" if a.batches else "synthetic",
        "threads": a.threads, "torch_threads": torch.get_num_threads(), "autocast": a.autocast,
        "steps": S, "warmup": a.warmup, "seconds": round(secs, 4),
        "ms_per_step": round(1000 * secs / S, 3), "ms_per_step_median": round(1000 * st[len(st) // 2], 3),
        "ms_per_step_min": round(1000 * st[0], 3), "real_frames_per_s": round(real / secs, 1),
        "peak_rss_mb": round(rss_mb(), 1), "n_params": n_params,
        "loss_first": round(loss_first, 4) if loss_first is not None else None,
        "loss_last": round(loss_last, 4) if loss_last is not None else None,
    }))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
