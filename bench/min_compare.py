#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""min_compare.py - the minGRU speed comparison in one interleaved run, as a Markdown table.

For T = 64 and T = 1024 on 1 and 2 threads (B = 32, H = 256, V = 65, one layer, the char-LM step
of peer_torch.py) it runs, --reps times in rotating order: spool-bench --cell mingru, spool-bench
--cell gru (spool's own GRU, for the per-token ratio) and bench/peer_min.py --form parallel (the
paper's log-space scan) under each PyTorch present (Debian's /usr/bin/python3; the PyPI build in
/opt/torch-venv from bench/setup-peers.sh). Then spool-scan-bench alone at T = 4096, B = 32,
H = 256 on 1 and 2 threads (both scans). Medians; ratios against the faster PyTorch.

    /usr/bin/python3 bench/min_compare.py --reps 3 --out min-compare.md

Benchmark on an idle machine: the load average before and after is in the table's header. The
script does not import torch itself; compare.py's helpers run the programs.
"""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (run_json, machine, loadavg, git_describe, PEERS)

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default=os.path.join(compare.ROOT, "build"), help="the build directory")
    p.add_argument("--reps", type=int, default=3, help="runs of every program per configuration")
    p.add_argument("--seqs", default="64,1024", help="comma list of T")
    p.add_argument("--threads", default="1,2", help="comma list of thread counts")
    p.add_argument("--target-seconds", type=float, default=3.0, help="timed seconds of each spool run")
    p.add_argument("--out", default="min-compare.md", help="the Markdown table")
    a = p.parse_args()
    bench = os.path.join(a.build, "bench", "spool-bench")
    scan = os.path.join(a.build, "bench", "spool-scan-bench")
    for f in (bench, scan):
        if not os.access(f, os.X_OK):
            sys.exit("min_compare.py: %s is missing: build first (meson setup build && ninja -C build)" % f)
    peers = {n: py for n, py in compare.PEERS.items() if os.access(py, os.X_OK)}
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "BLIS_NUM_THREADS")}
    load_before = compare.loadavg()
    rows, scans = [], []
    for T in [int(x) for x in a.seqs.split(",")]:
        for th in [int(x) for x in a.threads.split(",")]:
            progs = {"spool minGRU": [bench, "--cell", "mingru", "--seq", str(T), "--threads", str(th),
                                      "--target-seconds", str(a.target_seconds)],
                     "spool GRU": [bench, "--cell", "gru", "--seq", str(T), "--threads", str(th),
                                   "--target-seconds", str(a.target_seconds)]}
            for n, py in peers.items():  # 3 steps at T = 1024 take seconds already
                progs["PyTorch %s parallel" % n] = [py, os.path.join(HERE, "peer_min.py"), "--cell", "mingru",
                                                    "--form", "parallel", "--seq", str(T), "--threads", str(th),
                                                    "--warmup", "1", "--steps", "3" if T > 256 else "10"]
            names = list(progs)
            tok = {n: [] for n in names}
            for rep in range(a.reps):
                for n in names[rep % len(names):] + names[:rep % len(names)]:
                    out, err = compare.run_json(progs[n], env, 900)
                    if not out:
                        sys.exit("min_compare.py: %s failed: %s" % (n, err))
                    tok[n].append(out["tokens_per_s"])
                    print("T=%-5d threads=%d %-24s %9.0f tokens/s" % (T, th, n, out["tokens_per_s"]),
                          file=sys.stderr, flush=True)
            rows.append((T, th, {n: statistics.median(v) for n, v in tok.items()}))
    for gated in (0, 1):
        for th in [int(x) for x in a.threads.split(",")]:
            out, err = compare.run_json([scan, "--seq", "4096", "--batch", "32", "--hidden", "256", "--threads",
                                         str(th)] + (["--gated"] if gated else []), env, 600)
            if not out:
                sys.exit("min_compare.py: spool-scan-bench failed: %s" % err)
            scans.append(out)
    L = ["minGRU speed, %s, %s, spool %s; load average before %s, after %s; medians of %d runs each, "
         "interleaved. Tokens per second, B = 32, H = 256, V = 65, one layer." %
         (compare.machine(), "%d cores" % (os.cpu_count() or 1), compare.git_describe(), load_before,
          compare.loadavg(), a.reps), "",
         "| T | threads | spool minGRU | spool GRU | " + " | ".join("PyTorch %s parallel" % n for n in peers) +
         " | minGRU / faster PyTorch | minGRU / GRU |",
         "|---|---|---|---|" + "---|" * len(peers) + "---|---|"]
    for T, th, m in rows:
        best = max(m["PyTorch %s parallel" % n] for n in peers) if peers else float("nan")
        L.append("| %d | %d | %.0fk | %.0fk | %s | %.1fx | %.2fx |" % (
            T, th, m["spool minGRU"] / 1e3, m["spool GRU"] / 1e3,
            " | ".join("%.1fk" % (m["PyTorch %s parallel" % n] / 1e3) for n in peers),
            m["spool minGRU"] / best, m["spool minGRU"] / m["spool GRU"]))
    L += ["", "| scan (T = 4096, B = 32, H = 256) | threads | forward ms | backward ms | total | 2 threads / 1 |",
          "|---|---|---|---|---|---|"]
    for s in scans:
        one = [x for x in scans if x["op"] == s["op"] and x["threads"] == 1]
        tot = s["fwd_ms"] + s["bwd_ms"]
        ratio = (one[0]["fwd_ms"] + one[0]["bwd_ms"]) / tot if one else float("nan")
        L.append("| %s | %d | %.1f | %.1f | %.1f | %.2fx |" % (s["op"], s["threads"], s["fwd_ms"], s["bwd_ms"], tot,
                                                               ratio))
    with open(a.out, "w") as f:
        f.write("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
