# SPDX-License-Identifier: MIT
"""peer_common.py - what bench/peer_min.py and bench/peer_ocr.py share: starting PyTorch on a fixed
thread count, and the timed loop (warm-up steps, then --steps or enough steps for
--target-seconds). bench/peer_torch.py keeps its own copy: it is the project's shared peer, kept
identical to ../shared/bench/peer_torch.py."""
import math
import os
import resource
import time


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def start_torch(threads, seed):
    """torch on `threads` threads (OMP and BLIS set before it loads), one interop thread, seeded."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # before torch (and so BLIS) initialises
    os.environ["BLIS_NUM_THREADS"] = str(threads)
    import torch
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(seed)
    return torch


def timed_steps(step, warmup, steps, target_seconds, min_steps):
    """Runs step(i) warmup times, then `steps` times (or, for steps <= 0, as many as the last
    warm-up steps say fill target_seconds, at least min_steps). step returns the loss. Returns
    (S, per-step seconds, total seconds, first loss, last loss)."""
    wtimes, loss_first = [], None
    for i in range(warmup):
        t0 = time.perf_counter()
        loss = step(i)
        wtimes.append(time.perf_counter() - t0)
        loss_first = loss if loss_first is None else loss_first
    S = steps
    if S <= 0:
        est = min(wtimes[-2:]) if wtimes else 0.5
        S = int(max(min_steps, min(100000, math.ceil(target_seconds / max(est, 1e-6)))))
    times, loss_last = [], None
    t_all = time.perf_counter()
    for i in range(S):
        t0 = time.perf_counter()
        loss_last = step(warmup + i)
        times.append(time.perf_counter() - t0)
    return S, times, time.perf_counter() - t_all, loss_first, loss_last
