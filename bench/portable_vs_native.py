#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""portable_vs_native.py - the default (portable) build against a -Dnative=true build, side by side.

The default library runs on any x86-64 and picks its AVX2/AVX-512 kernels at run time (docs/design.md,
"Portable build and CPU dispatch"); -Dnative=true compiles everything for the build machine.
This configures and builds the native one in --native-build (default build-native/ beside
build/) if it is missing, then runs spool-bench from both, interleaved (portable, native, then
again, --reps times, alternating which goes first), and prints a markdown table of median
tokens/s, tokens per CPU-second and their ratio native/portable (1.00 = the same speed).

    /usr/bin/python3 bench/portable_vs_native.py                 # ~6 minutes
    /usr/bin/python3 bench/portable_vs_native.py --reps 1 --target-seconds 0.5 --configs lstm:64:1
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_CONFIGS = ["lstm:128:1", "lstm:256:1", "lstm:512:1", "gru:256:1", "rnn:256:1", "lstm:256:2"]


def ensure_native(path):
    exe = os.path.join(path, "bench", "spool-bench")
    if not os.path.exists(os.path.join(path, "build.ninja")):
        subprocess.run(["meson", "setup", path, "-Dnative=true", "-Dtests=false"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", path, "bench/spool-bench"], check=True, stdout=subprocess.DEVNULL)
    return exe


def run(exe, cell, hidden, threads, secs):
    out = subprocess.run([exe, "--cell", cell, "--hidden", str(hidden), "--threads", str(threads),
                          "--target-seconds", str(secs)], check=True, capture_output=True, text=True).stdout
    d = json.loads(out.strip().splitlines()[-1])
    # cpu_util is CPU seconds over wall seconds, all threads together
    return d["tokens_per_s"], d["tokens_per_s"] / max(d["cpu_util"], 1e-9), d["info"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build"), help="the portable build (default: build/)")
    p.add_argument("--native-build", default=os.path.join(ROOT, "build-native"),
                   help="the -Dnative=true build, configured here if missing (default: build-native/)")
    p.add_argument("--reps", type=int, default=3, help="runs of each build per configuration (default: 3)")
    p.add_argument("--target-seconds", type=float, default=3.0, help="timed seconds per run (default: 3)")
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, metavar="CELL:H:THREADS",
                   help="configurations (default: %s)" % " ".join(DEFAULT_CONFIGS))
    a = p.parse_args()
    portable = os.path.join(a.build, "bench", "spool-bench")
    if not os.path.exists(portable):
        sys.exit("portable_vs_native.py: no %s: meson setup build && ninja -C build" % portable)
    native = ensure_native(a.native_build)
    rows, infos = [], {}
    for cfg in a.configs:
        try:
            cell, hidden, threads = cfg.split(":")
            hidden, threads = int(hidden), int(threads)
        except ValueError:
            sys.exit("portable_vs_native.py: a configuration is CELL:H:THREADS, e.g. lstm:256:1 (got %r)" % cfg)
        res = {"portable": [], "native": []}
        for r in range(a.reps):
            order = ["portable", "native"] if r % 2 == 0 else ["native", "portable"]
            for which in order:
                tok, cpu_tok, info = run(portable if which == "portable" else native, cell, hidden, threads,
                                         a.target_seconds)
                res[which].append((tok, cpu_tok))
                infos[which] = info
        med = {w: (statistics.median(t for t, _ in v), statistics.median(c for _, c in v)) for w, v in res.items()}
        rows.append((cell, hidden, threads, med))
        print("%s H=%d threads %d: portable %.1fk, native %.1fk tokens/s" %
              (cell, hidden, threads, med["portable"][0] / 1e3, med["native"][0] / 1e3), file=sys.stderr)
    print("portable: `%s`; native: `%s`; %d runs each, interleaved, medians.\n" %
          (infos["portable"], infos["native"], a.reps))
    print("| cell | H | threads | portable tok/s | native tok/s | native/portable | per CPU-s |")
    print("|---|---|---|---|---|---|---|")
    for cell, hidden, threads, m in rows:
        print("| %s | %d | %d | %.1fk | %.1fk | %.2f | %.2f |" % (
            cell, hidden, threads, m["portable"][0] / 1e3, m["native"][0] / 1e3, m["native"][0] / m["portable"][0],
            m["native"][1] / m["portable"][1]))


if __name__ == "__main__":
    main()
