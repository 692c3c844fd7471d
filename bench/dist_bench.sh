#!/bin/bash
# SPDX-License-Identifier: MIT
# dist_bench.sh - the measurements of bench/README.md "Data-parallel training": spool-dist-bench
# for the names char-LM and the Shakespeare model, as one process with 1 thread, 2 ranks of 1
# thread (mpirun) and one process with 2 threads, interleaved R times (A B C A B C ...) so that
# load on a shared machine hits all alike; prints the median of each figure over the repeats.
# Usage: bench/dist_bench.sh BUILD_DIR [REPEATS]
set -eu
BIN=${1:?usage: dist_bench.sh BUILD_DIR [REPEATS]}/bench/spool-dist-bench
R=${2:-3}
CORES=$(nproc --all)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
MPI="mpirun --oversubscribe --bind-to none -np 2"
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
echo "# $(date -u '+%F %H:%M UTC'); load average before: $(cut -d' ' -f1-3 /proc/loadavg); $CORES cores"
for model in names shakespeare; do
    case $model in
    names) A="--hidden 128 --embed 32 --batch 32 --seq 16 --steps 40" ;;
    shakespeare) A="--hidden 256 --layers 2 --embed 64 --batch 32 --seq 64 --steps 15" ;;
    esac
    for r in $(seq "$R"); do
        echo "$model 1x1 $("$BIN" $A --threads 1 --json)" >> "$OUT"
        echo "$model 2x1 $($MPI "$BIN" $A --json)" >> "$OUT"
        echo "$model 1x2 $("$BIN" $A --threads 2 --json)" >> "$OUT"
    done
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    model, mode, js = line.split(" ", 2)
    rows.setdefault((model, mode), []).append(json.loads(js))
print("| model | ranks x threads | step ms | compute ms | wait ms | all-reduce ms | tokens/s | runs |")
print("|---|---|---|---|---|---|---|---|")
for (model, mode), rs in rows.items():
    med = lambda k: statistics.median(r[k] for r in rs)
    print(f"| {model} ({rs[0]['params']} params) | {mode} | {1e3*med('step_s'):.1f} | {1e3*med('compute_s'):.1f} | "
          f"{1e3*med('wait_s'):.2f} | {1e3*med('allreduce_s'):.2f} | {med('tokens_per_s'):.0f} | {len(rs)} |")
PY
