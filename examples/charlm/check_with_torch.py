#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check_with_torch.py - recompute spool-charlm's held-out loss with PyTorch, as an independent check.

It reads a spool-charlm checkpoint with plain Python (safetensors is a JSON header and raw
little-endian floats), loads the weights into torch.nn.LSTM / GRU / RNN (the default cells use
PyTorch's names and layouts), and computes the mean cross-entropy per predicted character:

  lines mode:  every line as <start> c1..cn -> c1..cn <end>, from a zero state;
  stream mode: the whole split as one sequence, which is what `eval --state carry --eval-batch 1`
               computes chunk by chunk.

usage: check_with_torch.py CHECKPOINT HELD_OUT_FILE [--tail-fraction 0.1]
(--tail-fraction: score only the last fraction of the file, for the Shakespeare split.)
Needs torch; cells without a PyTorch counterpart (peephole, coupled, gru-reset-before, ...) are
refused.
"""
import json
import struct
import sys

import torch


def main():
    args = sys.argv[1:]
    frac = None
    if '--tail-fraction' in args:
        i = args.index('--tail-fraction')
        frac = float(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    buf = open(args[0], 'rb').read()
    n = struct.unpack('<Q', buf[:8])[0]
    hdr = json.loads(buf[8:8 + n])
    meta = hdr.pop('__metadata__')
    base = 8 + n

    def tensor(name):
        h = hdr[name]
        a, b = h['data_offsets']
        assert h['dtype'] == 'F32'
        return torch.frombuffer(bytearray(buf[base + a:base + b]), dtype=torch.float32).reshape(h['shape'])

    cfg = dict(line.split('=', 1) for line in meta['charlm.config'].splitlines())
    cells = {'lstm': torch.nn.LSTM, 'gru': torch.nn.GRU, 'rnn': torch.nn.RNN}
    if cfg['cell'] not in cells:
        sys.exit('cell %s has no PyTorch counterpart' % cfg['cell'])
    vocab = [int(x) for x in meta['charlm.vocab'].split(',')]
    ids_of = {c: i for i, c in enumerate(vocab)}
    lines = meta['charlm.mode'] == 'lines'
    emb = tensor('embed.weight')
    L, H = int(cfg['layers']), int(cfg['hidden'])
    rnn = cells[cfg['cell']](emb.shape[1], H, num_layers=L)
    rnn.load_state_dict({k[4:]: tensor(k) for k in hdr if k.startswith('rnn.')})
    W, b = tensor('head.weight'), tensor('head.bias')

    text = open(args[1], encoding='utf-8').read()
    if frac:
        text = text[int(len(text) * (1 - frac)):]
    total, count = 0.0, 0
    with torch.no_grad():
        seqs = [s for s in text.split('\n') if s] if lines else [text]
        for s in seqs:
            ids = ([0] if lines else []) + [ids_of[ord(c)] for c in s]
            tgt = ids[1:] + ([0] if lines else [])
            inp = ids if lines else ids[:-1]
            out, _ = rnn(emb[torch.tensor(inp)].unsqueeze(1))
            logits = out.squeeze(1) @ W.T + b
            total += torch.nn.functional.cross_entropy(logits.double(), torch.tensor(tgt), reduction='sum').item()
            count += len(tgt)
    print('torch: %.4f nats/char over %d predicted characters' % (total / count, count))


if __name__ == '__main__':
    main()
