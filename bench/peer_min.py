#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""peer_min.py - PyTorch (CPU) minGRU / minLSTM peer: the char-LM step of peer_torch.py with the
recurrent layers of Feng et al. 2024 ("Were RNNs All We Needed?", arXiv 2410.01201) written as
the paper's reference code writes them.

    x_t = one_hot(token_t, V)              (B, T, V) float32 (batch first, as the paper's code)
    h   = L layers of minGRU | minLSTM     zero initial state every step
    z   = Linear(H -> V)(h)
    loss = mean softmax-cross-entropy; loss.backward(); clip_grad_norm_(5.0); Adam(lr=2e-3).step()

Each layer projects its input once over all steps (one nn.Linear to the stacked gates, the same
product spool runs), then
  --form parallel    the paper's log-space scan (its Appendix code): log coefficients and values,
                     a* = cumsum(log a), h = exp(a* + logcumsumexp(log b - a*)), with the paper's
                     positive candidate g (log_g) and, for minLSTM, its normalised gates
                     log f' = -softplus(softplus(-k_f) - softplus(-k_i)), log i' = -softplus(-(...));
  --form sequential  the paper's sequential mode: a Python loop over t of h = a_t h + b_t.
The initial state is zero, so its term of the scan is left out (log 0 = -inf contributes nothing).
The paper's code passes the candidate through its positive g (x + 1/2 for x >= 0, sigmoid(x) below)
in both forms, because the log-space scan needs log h~; spool's cells (layers/min_cell.c) keep the
paper's linear candidate, which its linear-space scan allows: --candidate linear makes the
sequential form compute exactly spool's function (the log-space form cannot take it).

Data, warm-up, timing and the JSON line follow peer_torch.py (random tokens, a pool of 8 batches,
3 warm-up steps, --steps or --target-seconds). Threads: --threads N sets torch.set_num_threads(N)
and, before torch is imported, OMP_NUM_THREADS and BLIS_NUM_THREADS (Debian's torch reaches its
sgemm through BLIS). Run with /usr/bin/python3 (Debian's python3-torch) or the venv's python.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_common import rss_mb, start_torch, timed_steps  # noqa: E402


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cell", choices=["mingru", "minlstm"], default="mingru")
    p.add_argument("--form", choices=["parallel", "sequential"], default="parallel")
    p.add_argument("--candidate", choices=["g", "linear"], default="g",
                   help="g: the paper's code; linear: spool's cells (sequential form only)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--vocab", type=int, default=65)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=0,
                   help="timed steps; 0 = auto, chosen from warm-up timing to last about --target-seconds")
    p.add_argument("--target-seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip", type=float, default=5.0)
    return p.parse_args()


def main():
    a = parse()
    if a.candidate == "linear" and a.form == "parallel":
        sys.exit("peer_min.py: the log-space parallel form needs the positive candidate g (--candidate g)")
    torch = start_torch(a.threads, a.seed)
    import torch.nn as nn
    import torch.nn.functional as F
    rss_import = rss_mb()
    V, H, L, B, T = a.vocab, a.hidden, a.layers, a.batch, a.seq
    gates = 2 if a.cell == "mingru" else 3

    def g(x):  # the paper's positive candidate: x + 1/2 for x >= 0, sigmoid(x) below
        return torch.where(x >= 0, x + 0.5, torch.sigmoid(x)) if a.candidate == "g" else x

    def log_g(x):
        return torch.where(x >= 0, (F.relu(x) + 0.5).log(), -F.softplus(-x))

    class MinLayer(nn.Module):
        def __init__(self, I):
            super().__init__()
            self.proj = nn.Linear(I, gates * H)

        def forward(self, x):  # (B, T, I) -> (B, T, H)
            k = self.proj(x)
            if a.form == "parallel":
                if a.cell == "mingru":
                    kz, kh = k.split(H, dim=-1)
                    log_a, log_b = -F.softplus(kz), -F.softplus(-kz) + log_g(kh)
                else:
                    kf, ki, kh = k.split(H, dim=-1)
                    diff = F.softplus(-kf) - F.softplus(-ki)
                    log_a, log_b = -F.softplus(diff), -F.softplus(-diff) + log_g(kh)
                a_star = torch.cumsum(log_a, dim=1)
                return torch.exp(a_star + torch.logcumsumexp(log_b - a_star, dim=1))
            h = x.new_zeros(x.shape[0], H)
            out = []
            for t in range(k.shape[1]):
                if a.cell == "mingru":
                    kz, kh = k[:, t].split(H, dim=-1)
                    z = torch.sigmoid(kz)
                    h = (1 - z) * h + z * g(kh)
                else:
                    kf, ki, kh = k[:, t].split(H, dim=-1)
                    f, i = torch.sigmoid(kf), torch.sigmoid(ki)
                    h = f / (f + i) * h + i / (f + i) * g(kh)
                out.append(h)
            return torch.stack(out, dim=1)

    class CharModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([MinLayer(V if l == 0 else H) for l in range(L)])
            self.head = nn.Linear(H, V)

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return self.head(x)

    model = CharModel()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    gen = torch.Generator().manual_seed(a.seed)
    NB = 8
    toks = torch.randint(0, V, (NB, B, T + 1), generator=gen)
    xs = [F.one_hot(toks[i, :, :T], V).to(torch.float32).contiguous() for i in range(NB)]  # (B, T, V)
    ys = [toks[i, :, 1:].contiguous() for i in range(NB)]

    def step(i):
        x, y = xs[i % NB], ys[i % NB]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x).reshape(B * T, V), y.reshape(B * T))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        return loss.item()

    S, times, secs, loss_first, loss_last = timed_steps(step, a.warmup, a.steps, a.target_seconds, 5)
    st = sorted(times)
    print(json.dumps({
        "peer": "pytorch-cpu-" + a.form, "torch": torch.__version__, "mode": "train",
        "cell": a.cell, "form": a.form, "candidate": a.candidate, "hidden": H, "layers": L, "batch": B, "seq": T, "vocab": V,
        "threads": a.threads, "torch_threads": torch.get_num_threads(),
        "steps": S, "warmup": a.warmup, "seconds": round(secs, 4),
        "tokens_per_s": round(B * T * S / secs, 1),
        "ms_per_step": round(1000 * secs / S, 3),
        "ms_per_step_median": round(1000 * st[len(st) // 2], 3),
        "ms_per_step_min": round(1000 * st[0], 3),
        "peak_rss_mb": round(rss_mb(), 1), "rss_after_import_mb": round(rss_import, 1),
        "n_params": n_params,
        "loss_first": round(loss_first, 4) if loss_first is not None else None,
        "loss_last": round(loss_last, 4) if loss_last is not None else None,
    }))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
