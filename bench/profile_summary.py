#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""profile_summary.py - where one spool training step spends its time, from a perf call-graph.

Reads the text of `perf script` (a recording made with --call-graph dwarf of spool-bench) and
splits the samples taken inside the timed steps (under model_step) into groups:
GEMM (forward / backward, and inside them BLIS packing vs the rest), elementwise ops (forward /
backward), arena zeroing (memset in the tape's allocator), copies (concat), loss, optimizer,
tape bookkeeping (records, names, scopes), OpenMP runtime, kernel (page faults), other.
The spool function nearest the leaf names the op, so the per-op table says which kernel to fix.

    perf record -F 1000 --call-graph dwarf,32768 -o cg.data build/bench/spool-bench --cell lstm ...
    perf script -i cg.data > cg.txt
    /usr/bin/python3 bench/profile_summary.py cg.txt [--top 25]

BLIS in Debian is stripped of its internal symbols; packing is recognised by the exported
bli_packm_* / bli_*scal2m* frames that appear in its call chains.
"""
import argparse
import collections
import re
import sys

HELPERS = {"gemm", "binary", "bval", "bref", "broadcasts", "unary", "main", "model_step",
           "run_direction", "local_clip_adam"}


def clean(sym):
    sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
    return re.sub(r"\.(_omp_fn\.\d+|isra\.\d+|constprop\.\d+|part\.\d+|cold)", "", sym)


def parse(path):
    """Yields each sample as a list of (symbol, dso) from leaf to root."""
    frames = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if frames:
                    yield frames
                frames = []
                continue
            if not line.startswith((" ", "\t")):
                frames = []
                continue
            m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
            if m:
                frames.append((clean(m.group(1)), m.group(2)))
    if frames:
        yield frames


def classify(frames):
    syms = [s for s, _ in frames]
    if "model_step" not in syms:
        return None, None
    bwd = "sp_backward" in syms
    leaf, leaf_dso = frames[0]
    if any(s in ("local_clip_adam", "sp_optim_step", "sp_clip_grad_norm") or s.startswith("sp__adam")
           or "optim" in s for s in syms):
        return "optimizer (clip + Adam)", "optimizer"
    if "sp_params_zero_grad" in syms:
        return "zero parameter grads (memset)", "sp_params_zero_grad"
    # Any time inside BLIS is GEMM time (spool calls it through cblas_?gemm or BLIS's typed API).
    if any("libblis" in dso for _, dso in frames) or any(s.startswith("cblas_") for s in syms):
        pack = any("packm" in s or "scal2m" in s for s in syms)
        op = next((s for s in syms if "matmul" in s or s.startswith("sp_linear")), "gemm")
        return ("GEMM %s: %s" % ("backward" if bwd else "forward",
                                 "BLIS packing" if pack else "kernel + other")), op
    if "kallsyms" in leaf_dso:
        return "kernel (page faults, syscalls)", "kernel"
    # the op: the spool frame nearest the leaf that is not a generic helper
    op = None
    for s, dso in frames:
        if "spool-bench" in dso or "libspool" in dso:
            if s not in HELPERS and not s.startswith("[unknown]"):
                op = s
                break
    if op is None:
        op = "model_step" if "model_step" in syms[:3] else syms[0]
    if "memset" in leaf and "sp__alloc" in syms:
        return "arena zeroing (memset in sp__alloc) %s" % ("backward" if bwd else "forward"), "sp__alloc"
    if op in ("sp__alloc", "arena_alloc", "record_push", "sp__record", "sp__record_view",
              "sp__scope_name", "sp_tape_scope", "sp_tape_reset", "sp__ready", "sp_slice_rows",
              "sp_split_cols", "sp_slice_cols", "sp_name") or "printf" in leaf or "strlen" in leaf \
            or op == "sp_backward":
        return "tape bookkeeping (records, names, scopes, views)", op
    if "concat" in op:
        return "copies (concat / concat_rows) %s" % ("backward" if bwd else "forward"), op
    if "softmax" in op or "xent" in op:
        return "loss (softmax xent)", op
    if "libgomp" in leaf_dso:
        return "OpenMP runtime", op
    if op.startswith("sp_") or "backward" in op or op in ("add_sub",):
        return "elementwise %s" % ("backward" if bwd or "backward" in op else "forward"), op
    return "other", op


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("script", help="output of perf script")
    p.add_argument("--top", type=int, default=25, help="rows of the per-op table")
    a = p.parse_args()
    groups, ops = collections.Counter(), collections.Counter()
    total = 0
    for frames in parse(a.script):
        g, op = classify(frames)
        if g is None:
            continue
        total += 1
        groups[g] += 1
        ops[op] += 1
    if not total:
        sys.exit("profile_summary: no samples under model_step in %s" % a.script)
    print("samples in the timed steps: %d\n" % total)
    print("| group | share |\n|---|---|")
    for g, n in sorted(groups.items(), key=lambda kv: -kv[1]):
        print("| %s | %.1f %% |" % (g, 100.0 * n / total))
    print("\n| op (spool function nearest the leaf) | share |\n|---|---|")
    for op, n in ops.most_common(a.top):
        print("| %s | %.1f %% |" % (op, 100.0 * n / total))


if __name__ == "__main__":
    main()
