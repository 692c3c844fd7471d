#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""sample_torch.py - the PyTorch peer of `spool-charlm sample` for the streaming-inference speed
comparison: the same checkpoint loaded into torch.nn.LSTM / GRU / RNN, the same
one-character-at-a-time loop at batch 1 (embedding row, one cell step with the carried state,
linear head, softmax with temperature, one multinomial draw, the draw fed back), under
torch.inference_mode(). Prints characters/s of the sampling loop alone (after a warm-up), so it
can be set against the `# sampled ... characters/s` line spool-charlm sample prints on stderr.

usage: sample_torch.py CHECKPOINT [--chars N] [--threads T] [--temperature X] [--seed S] [--autocast bf16]
--autocast bf16 runs the loop under torch.autocast("cpu", dtype=torch.bfloat16) as well (the peer of
`spool-charlm sample --precision bf16`).
Cells without a torch.nn counterpart (peephole, coupled, reset-before GRU, LN cells) are refused.
"""
import argparse
import json
import struct
import sys
import time

import torch


def load(path):
    buf = open(path, 'rb').read()
    n = struct.unpack('<Q', buf[:8])[0]
    header = json.loads(buf[8:8 + n])
    meta = header.pop('__metadata__')
    start = 8 + n

    def get(name):
        h = header[name]
        lo, hi = h['data_offsets']
        if h['dtype'] != 'F32':
            sys.exit('%s: tensor %s is %s, expected F32' % (path, name, h['dtype']))
        return torch.frombuffer(bytearray(buf[start + lo:start + hi]), dtype=torch.float32).reshape(h['shape'])

    cfg = dict(kv.split('=', 1) for kv in meta['charlm.config'].splitlines())
    kinds = {'lstm': torch.nn.LSTM, 'gru': torch.nn.GRU, 'rnn': torch.nn.RNN}
    if cfg['cell'] not in kinds:
        sys.exit('cell %s has no torch.nn counterpart' % cfg['cell'])
    emb = get('embed.weight')
    rnn = kinds[cfg['cell']](emb.shape[1], int(cfg['hidden']), num_layers=int(cfg['layers']))
    rnn.load_state_dict({k[len('rnn.'):]: get(k) for k in header if k.startswith('rnn.')})
    rnn.eval()
    return emb, rnn, get('head.weight'), get('head.bias'), meta['charlm.mode'] == 'lines'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('checkpoint')
    ap.add_argument('--chars', type=int, default=5000, help='characters to sample (default 5000)')
    ap.add_argument('--threads', type=int, default=1, help='torch intra-op threads (default 1)')
    ap.add_argument('--temperature', type=float, default=1.0)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--autocast', choices=['none', 'bf16'], default='none')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    emb, rnn, W, b, lines = load(a.checkpoint)

    def sample(n):
        state, cur = None, 0
        for _ in range(n):
            out, state = rnn(emb[cur].view(1, 1, -1), state)
            logits = out.view(1, -1) @ W.T + b
            cur = int(torch.multinomial(torch.softmax(logits.float() / a.temperature, dim=1), 1))
            if lines and cur == 0:  # end of a name: start the next one from a fresh state
                state = None

    with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=a.autocast == 'bf16'):
        sample(200)  # warm-up
        t0 = time.perf_counter()
        sample(a.chars)
        dt = time.perf_counter() - t0
    print('torch %s (%d threads, inference_mode%s): sampled %d characters in %.3f s: %.0f characters/s'
          % (torch.__version__, a.threads, ', autocast bf16' if a.autocast == 'bf16' else '', a.chars, dt, a.chars / dt))


if __name__ == '__main__':
    main()
