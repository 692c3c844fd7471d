#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""compare.py - spool against the PyTorch peers, side by side, written to bench/RESULTS.md.

For every configuration of a grid (cell, hidden size, layers, direction, threads) it runs
spool-bench and bench/peer_torch.py under two PyTorch builds, interleaved (spool, peer A,
peer B, then again, --reps times, rotating the order), and reports medians:
  - peer "debian": Debian's python3-torch (/usr/bin/python3), which reaches SGEMM through
    libblas.so.3 = BLIS, i.e. the same GEMM library and kernel set as spool;
  - peer "pypi": the current PyTorch from PyPI in /opt/torch-venv (MKL + oneDNN), skipped with a
    note if the venv is missing (bench/setup-peers.sh installs both).
Both programs get the same flags and thread count, and the peers the BLIS kernel set spool
chose (BLIS_ARCH_TYPE, read from a probe run of spool-bench; spool sets 0 = skx itself on
AVX-512 CPUs). The script does not import torch itself.

    /usr/bin/python3 bench/compare.py                       # full grid, ~40 min on 2 cores
    /usr/bin/python3 bench/compare.py --grid small --reps 3 # a few minutes
    /usr/bin/python3 bench/compare.py --grid smoke --reps 1 --target-seconds 0.5
    /usr/bin/python3 bench/compare.py --grid bf16 --precision bf16 --reps 2 --out bench/RESULTS-bf16.md --raw bench/results-bf16.jsonl

Raw JSON lines of every run go to --raw (bench/results.jsonl), so a table can be rebuilt with
--from-raw without running anything again.
"""
import argparse
import datetime
import glob
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = {"debian": "/usr/bin/python3", "pypi": "/opt/torch-venv/bin/python"}
PEER_NOTES = {"debian": "SGEMM through libblas.so.3 = BLIS, the same kernels as spool",
              "pypi": "its own MKL + oneDNN kernels; BLIS_ARCH_TYPE does not apply"}


def ncores():
    return os.cpu_count() or 1


def grid(name, threads_all):
    """List of config dicts for a named grid."""
    tl = sorted({1, threads_all})
    out = []
    if name == "smoke":
        for cell in ("rnn", "gru", "lstm"):
            out.append(dict(cell=cell, hidden=64, layers=1, bidirectional=False, threads=1))
        return out
    if name == "bf16":  # the mixed-precision rows: LSTM shapes and variants, GRU and RNN, on 1 and all cores
        for th in tl:
            for H in (128, 256, 512):
                out.append(dict(cell="lstm", hidden=H, layers=1, bidirectional=False, threads=th))
            out.append(dict(cell="lstm", hidden=256, layers=2, bidirectional=False, threads=th))
            out.append(dict(cell="lstm", hidden=256, layers=1, bidirectional=True, threads=th))
            out.append(dict(cell="lstm", hidden=256, layers=1, bidirectional=False, threads=th, variant="varlen"))
            out.append(dict(cell="lstm", hidden=256, layers=1, bidirectional=False, threads=th, variant="emb64"))
            for cell in ("gru", "rnn"):
                out.append(dict(cell=cell, hidden=256, layers=1, bidirectional=False, threads=th))
        return out
    if name == "small":
        for cell in ("rnn", "gru", "lstm"):
            out.append(dict(cell=cell, hidden=256, layers=1, bidirectional=False, threads=1))
        out.append(dict(cell="lstm", hidden=128, layers=1, bidirectional=False, threads=1))
        out.append(dict(cell="lstm", hidden=512, layers=1, bidirectional=False, threads=1))
        out.append(dict(cell="lstm", hidden=256, layers=1, bidirectional=False, threads=threads_all))
        out.append(dict(cell="lstm", hidden=256, layers=1, bidirectional=False, threads=1, variant="varlen"))
        out.append(dict(cell="lstm", hidden=256, layers=1, bidirectional=False, threads=1, variant="emb64"))
        return out
    for th in tl:
        for cell in ("rnn", "gru", "lstm"):
            for H in (128, 256, 512):
                for L in (1, 2):
                    out.append(dict(cell=cell, hidden=H, layers=L, bidirectional=False, threads=th))
        for H in (128, 256, 512):
            out.append(dict(cell="lstm", hidden=H, layers=1, bidirectional=True, threads=th))
        for cell in ("gru", "lstm"):   # the peer's variants: --varlen and --embedding 64
            out.append(dict(cell=cell, hidden=256, layers=1, bidirectional=False, threads=th, variant="varlen"))
        out.append(dict(cell="lstm", hidden=256, layers=1, bidirectional=False, threads=th, variant="emb64"))
        out.append(dict(cell="lstm", hidden=256, layers=1, bidirectional=True, threads=th, variant="varlen"))
    return out


PRECISION = "fp32"  # --precision: bf16 runs spool with --precision bf16 and each peer also under autocast


def base(prog):
    """The peer a program name runs: "pypi+bf16" is the pypi peer under --autocast bf16."""
    return prog.split("+")[0]


def target_ratio(c):
    """The speed target against the faster peer: variable lengths 3x, LSTM 1.5x, GRU and RNN 2x;
    in bf16 (against the faster of the peers' fp32 and autocast modes) LSTM 1.2x, GRU and RNN 2x."""
    if PRECISION == "bf16":
        return 1.2 if c["cell"] == "lstm" else 2.0
    if c.get("variant") == "varlen":
        return 3.0
    return 1.5 if c["cell"] == "lstm" else 2.0


def find_bench(path):
    if path:
        return path
    cands = [os.path.join(ROOT, "build", "bench", "spool-bench")]
    # newest other build, skipping sanitizer/debug/profiling builds (slow by design)
    cands += sorted((p for p in glob.glob(os.path.join(ROOT, "build*", "bench", "spool-bench"))
                     if not any(w in os.path.basename(os.path.dirname(os.path.dirname(p)))
                                for w in ("asan", "san", "debug", "prof", "cov"))),
                    key=lambda p: -os.path.getmtime(p))
    for p in cands:
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    sys.exit("compare.py: no spool-bench found; build it (meson setup build && ninja -C build) "
             "or pass --bench PATH")


def flags(c, a):
    f = ["--cell", c["cell"], "--hidden", str(c["hidden"]), "--layers", str(c["layers"]),
         "--batch", str(a.batch), "--seq", str(a.seq), "--vocab", str(a.vocab),
         "--threads", str(c["threads"]), "--target-seconds", str(a.target_seconds),
         "--warmup", str(a.warmup), "--seed", "1234"]
    if c["bidirectional"]:
        f.append("--bidirectional")
    v = c.get("variant", "")
    if v == "varlen":
        f.append("--varlen")
    elif v.startswith("emb"):
        f += ["--embedding", v[3:]]
    if a.forward_only:
        f.append("--forward-only")
    return f


def prog_cmd(prog, c, a, bench):
    """The command line of one program of the comparison for configuration c."""
    if prog == "spool":
        return [bench] + flags(c, a) + ["--precision", PRECISION]
    return [PEERS[base(prog)], a.peer_script] + flags(c, a) + (["--autocast", "bf16"] if prog.endswith("+bf16") else [])


def run_json(cmd, env, timeout):
    """Runs cmd, returns (dict or None, error text)."""
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timeout after %ds" % timeout
    except OSError as e:
        return None, str(e)
    if p.returncode != 0:
        return None, "exit %d: %s" % (p.returncode, (p.stderr or p.stdout).strip()[-300:])
    for line in reversed(p.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line), ""
            except ValueError as e:
                return None, "bad JSON: %s" % e
    return None, "no JSON line in output"


def machine():
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return model


def git_describe():
    """The spool source the bench was built from, as far as the checkout tells (built from a dirty
    tree: '-dirty')."""
    try:
        return subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def key(c):
    return (c["cell"], c["hidden"], c["layers"], bool(c["bidirectional"]), c["threads"], c.get("variant", ""))


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_k(x):
    return "–" if x is None else ("%.1fk" % (x / 1000.0) if x >= 1000 else "%.0f" % x)


def fmt(x, f="%.1f"):
    return "–" if x is None else f % x


KEEP_MARK = "<!-- compare.py keeps what follows when it regenerates the table -->"


def write_results(path, rows, meta, peers_used):
    L = []
    L.append("# spool vs PyTorch: training-step throughput\n")
    L.append("Generated by `bench/compare.py` on %s.\n" % meta["date"])
    L.append("**Machine:** %s, %d cores; spool: `%s`, source `%s`; BLIS_ARCH_TYPE passed to the peers: "
             "`%s`.  " % (meta["cpu"], meta["cores"], meta["spool_info"], meta.get("git", "?"),
                          meta["blis_arch_type"]))
    L.append("**Peers:** %s.  " % "; ".join("%s = torch %s (`%s`, %s%s)" % (
        p, meta["torch"].get(p, "?"), PEERS[base(p)], PEER_NOTES[base(p)],
        ", under `--autocast bf16`" if p.endswith("+bf16") else "") for p in peers_used))
    if meta.get("precision") == "bf16":
        L.append("**Precision:** spool runs `--precision bf16` (bf16 operands, fp32 sums); each peer runs "
                 "in fp32 and under `torch.autocast(\"cpu\", dtype=torch.bfloat16)`, and the ratio is "
                 "against the fastest of them. **of peak** is against the bf16 peak (%s).  " % meta.get("peak_name", "?"))
    for p in meta.get("skipped", []):
        L.append("**Skipped peer:** %s.  " % p)
    L.append("**Command:** `%s`  " % meta["command"])
    L.append("**Load (1/5/15-min load average)** before: %s, after: %s. %d repetitions per program "
             "and configuration, interleaved; medians shown. Batch %d, seq %d, vocab %d, %s, "
             "--target-seconds %s.\n" % (meta["load_before"], meta["load_after"], meta["reps"],
                                         meta["batch"], meta["seq"], meta["vocab"], meta["mode"],
                                         meta["target_seconds"]))
    if meta["load_note"]:
        L.append("> " + meta["load_note"] + "\n")
    if meta.get("note"):
        L.append("> " + meta["note"] + "\n")
    L.append("Columns: tokens/s (B*T per second of the timed steps) of spool and each peer; "
             "(real positions per second for `varlen` rows, whose rows have lengths in [T/4, T]; `emb64`: "
             "input through an embedding of width 64); "
             "**ratio** = spool / the faster peer (target: LSTM 1.5x, GRU and RNN 2x, varlen 3x); **ratio/CPU-s** = the same ratio of tokens per CPU-second of each process "
             "(less sensitive to a busy machine, since time spent descheduled is not counted; read it "
             "for 1-thread rows, as spinning OpenMP threads inflate CPU time with more); peak RSS in MB; spool's "
             "achieved GEMM GFLOP/s (model FLOPs, step_gemms.h, over the median step) and **of peak**, that as a "
             "fraction of the %s peak of the cores it ran on (" % meta.get("peak_name", "FP32 FMA") + fmt(meta.get("fma_peak"), "%.0f") + " GFLOP/s per core, measured by "
             "spool-fma-peak); "
             "**ceil** = spool's tokens/s as a fraction of the GEMM-only bound measured by "
             "spool-gemm-ceiling at the same shapes and threads (1.0 = as fast as BLIS doing nothing but the "
             "step's GEMMs; above 1 where spool's own recurrent kernel beats BLIS; per CPU-second for "
             "1-thread rows, as the ceiling takes the best of 3 rounds).\n")
    hdr = ["cell", "H", "L", "dir", "var", "thr", "spool tok/s"]
    for p in peers_used:
        hdr.append("%s tok/s" % p)
    hdr += ["ratio", "target", "ratio/CPU-s", "RSS spool"] + ["RSS %s" % p for p in peers_used] + \
        ["GFLOP/s", "of peak", "ceil"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for r in rows:
        c = r["cfg"]
        s = r["spool"]
        best = None
        for p in peers_used:
            v = r[p]["tok"]
            if v is not None and (best is None or v > best):
                best = v
        ratio = s["tok"] / best if (s["tok"] and best) else None
        bestc = max([r[p]["tokcpu"] for p in peers_used if r[p]["tokcpu"]] or [0]) or None
        ratio_cpu = s["tokcpu"] / bestc if (s["tokcpu"] and bestc) else None
        st = s["tokcpu"] if c["threads"] == 1 else s["tok"]
        ceil = (st / r["ceiling"]) if (st and r.get("ceiling")) else None
        if bool(meta["load_note"]) and c["threads"] > 1:
            ceil = None  # a wall-clock ceiling on a busy machine means nothing
        line = [c["cell"], str(c["hidden"]), str(c["layers"]), "bi" if c["bidirectional"] else "uni",
                c.get("variant") or "dense", str(c["threads"]), fmt_k(s["tok"])]
        line += [fmt_k(r[p]["tok"]) if r[p]["tok"] is not None else (r[p]["err"] or "–")[:40]
                 for p in peers_used]
        ok = ratio is not None and ratio >= target_ratio(c)
        # On a busy machine multi-thread runs mostly measure who copes with being descheduled
        # (spinning OpenMP threads), not speed: flag them instead of ticking a target.
        unsure = bool(meta["load_note"]) and c["threads"] > 1
        mark = "" if ratio is None else (" †" if unsure else (" ✓" if ok else ""))
        line += ["%s%s" % (fmt(ratio, "%.2fx"), mark),
                 "%.1fx" % target_ratio(c), fmt(ratio_cpu, "%.2fx"), fmt(s["rss"], "%.0f")]
        line += [fmt(r[p]["rss"], "%.0f") for p in peers_used]
        peak = meta.get("fma_peak")
        of_peak = s["gflops"] / (peak * c["threads"]) if (s["gflops"] and peak) else None
        line += [fmt(s["gflops"], "%.1f"), fmt(None if of_peak is None else 100 * of_peak, "%.0f%%"), fmt(ceil, "%.2f")]
        if s["tok"] is None:
            line[6] = (s["err"] or "failed")[:40]
        L.append("| " + " | ".join(line) + " |")
    L.append("")
    if meta["load_note"] and any(r["cfg"]["threads"] > 1 for r in rows):
        L.append("† multi-thread row on a busy machine: not a speed measurement (threads that spin "
                 "while descheduled slow every program by a different, large factor).\n")
    L.extend(summary_lines(rows, peers_used, busy=bool(meta["load_note"])))
    L.append("Where spool's time goes and what to change: `bench/PROFILE.md`. Raw runs (one JSON line "
             "each, all repetitions): `%s`.\n" % os.path.relpath(meta["raw"], ROOT))
    # Sections measured by other programs (busy machine, sampling, portable vs native, time to
    # quality) follow KEEP_MARK in RESULTS.md; a regenerated table keeps them.
    kept = ""
    if os.path.exists(path):
        old = open(path, encoding="utf-8").read()
        if KEEP_MARK in old:
            kept = old[old.index(KEEP_MARK):]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(L) + "\n" + ("\n" + kept if kept else ""))
    os.replace(tmp, path)


def load_note(runs, cores):
    try:
        l1 = max(float(r["load"].split()[0]) for r in runs)
    except ValueError:
        return ""
    if l1 <= 0.5 * cores + 0.5:
        return ""
    return ("The machine was shared with other jobs during these runs (1-min load average up to %.1f "
            "on %d cores): absolute numbers are noisy and probably low; ratios between interleaved "
            "runs, and above all the per-CPU-second ratios of 1-thread rows, are more reliable. "
            "Re-run on a quiet machine for final figures." % (l1, cores))


def gmean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def summary_lines(rows, peers_used, busy=False):
    """A few sentences over the table: geometric-mean ratios per cell and thread count, targets met,
    RSS ratio."""
    out = ["**Summary** (geometric means over the rows of each group; ratio against the faster peer):", ""]
    groups = {}
    for r in rows:
        c, s = r["cfg"], r["spool"]
        best = max([r[p]["tok"] for p in peers_used if r[p]["tok"]] or [0]) or None
        bestc = max([r[p]["tokcpu"] for p in peers_used if r[p]["tokcpu"]] or [0]) or None
        rss_peer = min([r[p]["rss"] for p in peers_used if r[p]["rss"]] or [0]) or None
        g = groups.setdefault((c["cell"], c["threads"]), {"r": [], "rc": [], "met": 0, "n": 0, "rss": [], "deb": []})
        if "debian" in peers_used and s["tokcpu"] and r["debian"]["tokcpu"]:
            g["deb"].append(s["tokcpu"] / r["debian"]["tokcpu"])
        if s["tok"] and best:
            g["r"].append(s["tok"] / best)
            g["n"] += 1
            g["met"] += s["tok"] / best >= target_ratio(c)
        if s["tokcpu"] and bestc:
            g["rc"].append(s["tokcpu"] / bestc)
        if s["rss"] and rss_peer:
            g["rss"].append(s["rss"] / rss_peer)
    for (cell, th), g in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if not g["n"]:
            continue
        if busy and th > 1:
            out.append("- %s, %d threads: not summarised (busy machine, see †)." % (cell, th))
            continue
        out.append("- %s, %d thread%s: spool/faster peer %s (per CPU-second %s; against the Debian peer, "
                   "same BLIS, per CPU-second %s), target met in %d of %d rows; "
                   "spool's peak RSS is %s of the smaller peer's (target <= 0.10)." % (
                       cell, th, "" if th == 1 else "s", fmt(gmean(g["r"]), "%.2fx"),
                       fmt(gmean(g["rc"]), "%.2fx"), fmt(gmean(g["deb"]), "%.2fx"), g["met"], g["n"],
                       "%.2f-%.2f" % (min(g["rss"]), max(g["rss"])) if g["rss"] else "–"))
    out.append("")
    return out


def summarise(cfgs, runs, ceilings, peers_used):
    rows = []
    for c in cfgs:
        k = key(c)
        row = {"cfg": c, "ceiling": ceilings.get(k)}
        for prog in ["spool"] + peers_used:
            rs = [x for x in runs if x["key"] == list(k) and x["prog"] == prog]
            ok = [x["out"] for x in rs if x["out"]]
            row[prog] = {
                # real positions per second: the same as tokens/s but for --varlen rows
                "tok": med([o.get("real_tokens_per_s", o["tokens_per_s"]) for o in ok]),
                "rss": med([o["peak_rss_mb"] for o in ok]),
                "gflops": med([o.get("gflops") for o in ok]),
                # tokens per CPU-second of the process: on a time-shared machine this counts only
                # the time the program actually ran (meaningful for 1 thread; spinning OpenMP
                # threads inflate CPU time when there are more).
                "tokcpu": med([o.get("real_tokens_per_s", o["tokens_per_s"]) / o["cpu_util"] for o in ok
                               if o.get("cpu_util")]),
                "err": next((x["err"] for x in rs if x["err"]), "") if not ok else "",
            }
        rows.append(row)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", choices=["full", "small", "smoke", "bf16"], default="full",
                   help="bf16: the LSTM shapes, GRU and RNN rows of the mixed-precision comparison")
    p.add_argument("--reps", type=int, default=3, help="repetitions per program and configuration")
    p.add_argument("--target-seconds", type=float, default=3.0)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads-all", type=int, default=ncores(), help="the 'all cores' thread count")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--vocab", type=int, default=65)
    p.add_argument("--forward-only", action="store_true")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: spool with --precision bf16 against each peer in fp32 and under --autocast bf16")
    p.add_argument("--cells", default="rnn,gru,lstm", help="comma list to keep from the grid")
    p.add_argument("--hidden", help="comma list of hidden sizes to keep from the grid")
    p.add_argument("--layers", help="comma list of layer counts to keep from the grid")
    p.add_argument("--threads", help="comma list of thread counts to keep from the grid")
    p.add_argument("--peers", default="debian,pypi", help="comma list of debian, pypi")
    p.add_argument("--bench", help="path of spool-bench (default: build/bench/spool-bench, else the newest "
                   "build*/bench/spool-bench that is not a sanitizer/debug/profiling build)")
    p.add_argument("--ceiling", help="path of spool-gemm-ceiling (default: next to spool-bench)")
    p.add_argument("--no-ceiling", action="store_true", help="skip the GEMM-ceiling runs")
    p.add_argument("--peer-script", default=os.path.join(HERE, "peer_torch.py"))
    p.add_argument("--pypi-python", default=PEERS["pypi"],
                   help="python of the PyPI-torch venv (setup-peers.sh: $TORCH_VENV/bin/python)")
    p.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    p.add_argument("--raw", default=os.path.join(HERE, "results.jsonl"))
    p.add_argument("--from-raw", action="store_true",
                   help="rebuild --out from --raw, run nothing (--raw may list several files, comma-separated: "
                        "their runs are merged, the first file's header is used)")
    p.add_argument("--timeout", type=int, default=300, help="seconds per run")
    p.add_argument("--note", default="", help="a sentence to print at the top of --out")
    p.add_argument("--busy", type=int, default=0, metavar="N",
                   help="run N CPU-bound processes beside the benchmarks (threads-never-hurt check)")
    a = p.parse_args()
    if a.reps < 1 or a.target_seconds <= 0:
        sys.exit("compare.py: --reps >= 1 and --target-seconds > 0")

    PEERS["pypi"] = a.pypi_python
    global PRECISION
    PRECISION = a.precision
    cells = set(a.cells.split(","))
    def keep(c):
        for opt, field in ((a.hidden, "hidden"), (a.layers, "layers"), (a.threads, "threads")):
            if opt and c[field] not in [int(x) for x in opt.split(",")]:
                return False
        return c["cell"] in cells
    cfgs = [c for c in grid(a.grid, a.threads_all) if keep(c)]
    if not cfgs:
        sys.exit("compare.py: the filters leave no configuration of the %s grid" % a.grid)
    peers_used, skipped = [], []
    for name in a.peers.split(","):
        if name not in PEERS:
            sys.exit("compare.py: unknown peer %r (debian, pypi)" % name)
        if os.access(PEERS[name], os.X_OK):
            peers_used.append(name)
            if a.precision == "bf16":
                peers_used.append(name + "+bf16")
        else:
            skipped.append("%s (%s missing: run bench/setup-peers.sh)" % (name, PEERS[name]))
            print("compare.py: skipping peer %s: %s not found (bench/setup-peers.sh installs it)"
                  % (name, PEERS[name]), file=sys.stderr)

    if a.from_raw:
        recs, metas = [], []
        for path in a.raw.split(","):
            with open(path) as f:
                rs = [json.loads(l) for l in f if l.strip()]
            metas.append(rs[0]["meta"])
            recs += rs[1:]
        meta = metas[0]
        PRECISION = meta.get("precision", "fp32")
        meta["raw"] = a.raw.split(",")[0]
        if len(metas) > 1:
            meta["command"] = " ; ".join(m["command"] for m in metas)
            meta["load_before"] = " / ".join(m["load_before"] for m in metas)
            meta["load_after"] = " / ".join(m["load_after"] for m in metas)
            meta["raw"] = a.raw.split(",")[0]
            meta["peers"] = sorted({p for m in metas for p in m["peers"]}, key=lambda p: (list(PEERS).index(base(p)), p))
            meta["torch"] = {k: v for m in metas for k, v in m["torch"].items()}
            meta["reps"] = max(m["reps"] for m in metas)
        recs.insert(0, None)
        runs = [r for r in recs[1:] if "prog" in r]
        meta["load_note"] = load_note(runs, meta["cores"])
        if a.note:
            meta["note"] = a.note
        if meta.get("load_after") == "?":
            meta["load_after"] = "(run cut short)"
        for r in runs:
            if r["out"] and r["prog"] != "spool":
                meta["torch"][r["prog"]] = r["out"].get("torch", "?")
        ceilings = {tuple(r["key"]): r["ceiling"] for r in recs[1:] if "ceiling" in r}
        keys = []
        for r in runs:
            if r["key"] not in keys:
                keys.append(r["key"])
        cfgs = [dict(cell=k[0], hidden=k[1], layers=k[2], bidirectional=k[3], threads=k[4],
                     variant=k[5] if len(k) > 5 else "") for k in keys]
        peers_used = [pp for pp in meta["peers"] if any(r["prog"] == pp for r in runs)]
        write_results(a.out, summarise(cfgs, runs, ceilings, peers_used), meta, peers_used)
        print("wrote %s" % a.out)
        return

    bench = find_bench(a.bench)
    ceiling_bin = a.ceiling or os.path.join(os.path.dirname(bench), "spool-gemm-ceiling")
    if not os.path.isfile(a.peer_script):
        sys.exit("compare.py: peer script %s not found" % a.peer_script)

    # Probe: which BLIS kernel set does spool pick? Pass the same to the peers.
    env0 = {k: v for k, v in os.environ.items()
            if k not in ("OMP_NUM_THREADS", "BLIS_NUM_THREADS", "MKL_NUM_THREADS")}
    probe, err = run_json([bench, "--cell", "rnn", "--hidden", "8", "--steps", "1", "--warmup", "0",
                           "--seq", "2", "--batch", "2"], env0, 60)
    if not probe:
        sys.exit("compare.py: spool-bench probe failed: %s" % err)
    arch = probe["blis_arch_type"]
    peer_env = dict(env0)
    if arch != "unset":
        peer_env["BLIS_ARCH_TYPE"] = arch
    torch_ver = {}
    for name in peers_used:
        # The version comes from the peer's own JSON (first run); recorded here for the header.
        torch_ver[name] = "?"

    peak_bin = os.path.join(os.path.dirname(bench), "spool-fma-peak")
    pk, _ = run_json([peak_bin, "--json"], env0, 60) if os.access(peak_bin, os.X_OK) else (None, "")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(a.busy)]
    bf16 = a.precision == "bf16"
    peak_name = ("bf16 (AMX through oneDNN)" if pk.get("bf16_amx_gflops") else "bf16 vdpbf16ps"
                 if pk.get("bf16_dp_peak_gflops") else "FP32 FMA") if (pk and bf16) else "FP32 FMA"
    meta = {
        "fma_peak": (pk.get("bf16_peak_gflops") if bf16 else pk["fma_peak_gflops"]) if pk else None,
        "peak_name": peak_name, "precision": a.precision, "busy": a.busy,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": machine(), "cores": ncores(), "spool_info": probe.get("info", "?"),
        "blis_arch_type": arch, "torch": torch_ver, "peers": peers_used, "skipped": skipped,
        "command": " ".join(shlex.quote(x) for x in ["/usr/bin/python3", "bench/compare.py"] + sys.argv[1:]),
        "load_before": loadavg(), "load_after": "?", "reps": a.reps, "batch": a.batch, "seq": a.seq,
        "vocab": a.vocab, "mode": "forward only" if a.forward_only else "training step",
        "target_seconds": a.target_seconds, "raw": a.raw, "load_note": "", "git": git_describe(),
        "note": a.note,
    }
    # Written as it goes (meta first), so a cut-short run can still be tabled with --from-raw.
    raw = open(a.raw, "w")
    raw.write(json.dumps({"meta": meta}) + "\n")
    runs, ceilings = [], {}
    t_start = time.time()
    total = len(cfgs) * a.reps * (1 + len(peers_used))
    done = 0
    for ci, c in enumerate(cfgs):
        k = key(c)
        progs = ["spool"] + peers_used
        if not a.no_ceiling and os.access(ceiling_bin, os.X_OK):
            cj, err = run_json([ceiling_bin, "--cell", c["cell"], "--hidden", str(c["hidden"]),
                                "--layers", str(c["layers"]), "--batch", str(a.batch), "--seq", str(a.seq),
                                "--vocab", str(a.vocab), "--threads", str(c["threads"]),
                                "--min-seconds", "0.02", "--json"] +
                               (["--bidirectional"] if c["bidirectional"] else []), env0, a.timeout)
            if cj:
                ceilings[k] = cj["ceiling_tokens_per_s"]
                raw.write(json.dumps({"key": list(k), "ceiling": cj["ceiling_tokens_per_s"], "out": cj}) + "\n")
        for rep in range(a.reps):
            order = progs[rep % len(progs):] + progs[:rep % len(progs)]  # rotate who goes first
            for prog in order:
                cmd, env = prog_cmd(prog, c, a, bench), (env0 if prog == "spool" else peer_env)
                out, err = run_json(cmd, env, a.timeout)
                if out and prog != "spool":
                    torch_ver[prog] = out.get("torch", "?")
                rec = {"key": list(k), "prog": prog, "rep": rep, "out": out, "err": err,
                       "load": loadavg()}
                runs.append(rec)
                raw.write(json.dumps(rec) + "\n")
                raw.flush()
                done += 1
                el = time.time() - t_start
                print("[%3d/%d %5.0fs] %-5s %-4s H=%-3d L=%d %s thr=%d  %s" % (
                    done, total, el, prog, c["cell"], c["hidden"], c["layers"],
                    "bi " if c["bidirectional"] else "uni", c["threads"],
                    ("%.0f tok/s, %.0f MB" % (out["tokens_per_s"], out["peak_rss_mb"])) if out else "FAILED: " + err),
                    file=sys.stderr, flush=True)
    meta["load_after"] = loadavg()
    for b in busy:
        b.kill()
    meta["load_note"] = load_note(runs, a.threads_all) if not a.busy else (
        "%d CPU-bound process(es) ran beside every benchmark (--busy), on purpose: this run checks "
        "that more threads are never slower on a busy machine." % a.busy)
    raw.close()
    with open(a.raw) as f:
        body = f.read().split("\n", 1)[1]
    with open(a.raw + ".tmp", "w") as f:
        f.write(json.dumps({"meta": meta}) + "\n" + body)
    os.replace(a.raw + ".tmp", a.raw)
    write_results(a.out, summarise(cfgs, runs, ceilings, peers_used), meta, peers_used)
    print("wrote %s and %s (%.0f s)" % (a.out, a.raw, time.time() - t_start), file=sys.stderr)


if __name__ == "__main__":
    main()
