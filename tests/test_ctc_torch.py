#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""sp_ctc_loss against torch.nn.functional.ctc_loss (float64, log_softmax of the same logits), for
the cases tests/test_ctc_torch.c wrote. Usage: test_ctc_torch.py FILE. FILE holds, per case,
"case T B C BLANK ZERO_INF", the input lengths, label lengths, labels (concatenated), logits
[T*B*C], then for each reduction spool's loss and its gradient with respect to the logits (for
'none', of the sum of the rows' losses). Exits 0 if every value and gradient agrees to 1e-10
(relative to max(1, |value|)), 1 otherwise, 77 without torch.
"""
import sys

try:
    import torch
    import torch.nn.functional as F
except Exception:
    sys.exit(77)


def lines(path):
    for ln in open(path):
        parts = ln.split()
        if parts:
            yield parts


def cases(path):
    it = lines(path)
    for head in it:
        assert head[0] == "case"
        T, B, C, blank, zi = (int(v) for v in head[1:6])
        in_len = [int(v) for v in next(it)[1:]]
        lab_len = [int(v) for v in next(it)[1:]]
        labels = [int(v) for v in next(it)[1:]]
        logits = [float(v) for v in next(it)[1:]]
        results = []
        for _ in range(3):
            lo = next(it)
            red, n = lo[1], int(lo[2])
            loss = [float(v) for v in lo[3:3 + n]]
            grad = [float(v) for v in next(it)[1:]]
            results.append((red, loss, grad))
        yield T, B, C, blank, zi, in_len, lab_len, labels, logits, results


def far(a, b):
    """Largest |a - b| / max(1, |a|) over two tensors (inf where one is not finite)."""
    return ((a - b).abs() / a.abs().clamp(min=1)).max().item() if a.numel() else 0.0


worst, ok, n, no_alignment, repeats = 0.0, True, 0, 0, 0
for T, B, C, blank, zi, in_len, lab_len, labels, logits, results in cases(sys.argv[1]):
    repeats += sum(labels[i] == labels[i - 1] for i in range(1, len(labels)))
    for red, loss, grad in results:
        x = torch.tensor(logits, dtype=torch.float64).reshape(T, B, C).requires_grad_(True)
        ref = F.ctc_loss(F.log_softmax(x, -1), torch.tensor(labels, dtype=torch.long), torch.tensor(in_len),
                         torch.tensor(lab_len), blank=blank, reduction=red, zero_infinity=bool(zi))
        ref.sum().backward()
        if red == "none" and zi:
            raw = F.ctc_loss(F.log_softmax(x.detach(), -1), torch.tensor(labels, dtype=torch.long),
                             torch.tensor(in_len), torch.tensor(lab_len), blank=blank, reduction="none")
            no_alignment += int(torch.isinf(raw).sum().item())
        dv = far(ref.detach().reshape(-1), torch.tensor(loss, dtype=torch.float64))
        dg = far(x.grad.reshape(-1), torch.tensor(grad, dtype=torch.float64))
        worst = max(worst, dv, dg)
        n += 1
        if not (dv <= 1e-10 and dg <= 1e-10):
            ok = False
            print("# T=%d B=%d C=%d blank=%d %s zero_infinity=%d: loss off by %.3g, gradient by %.3g"
                  % (T, B, C, blank, red, zi, dv, dg))
            print("#   input lengths %s, label lengths %s, labels %s" % (in_len, lab_len, labels))
print("# %d comparisons with torch %s; largest relative difference %.3g" % (n, torch.__version__, worst))
print("# %d rows without an alignment (zero_infinity), %d repeated neighbours among the labels" % (no_alignment, repeats))
sys.exit(0 if ok and n > 0 and no_alignment > 0 and repeats > 0 else 1)
