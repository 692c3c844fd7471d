#!/bin/bash
# SPDX-License-Identifier: MIT
# min_quality.sh - minGRU and minLSTM against spool's LSTM on tinyshakespeare, honestly: at equal
# parameters and at equal training time, seeds 1-3, the min cells' layers and width chosen on a
# validation split and the figures read on a test split no choice ever saw.
#
#   bench/min_quality.sh [OUT]      (OUT: a directory for the runs, default ./min-quality)
#
# 1. input.txt is cut at line ends into train (first 80 %), valid (next 10 %) and test (last 10 %).
# 2. Selection (seed 1, SEL_STEPS steps, held-out loss on valid): for each min cell, three
#    shapes with about the parameters of the reference LSTM (1 x 256, embedding 64): 2, 3 and 4
#    layers at the width that gives that count.
# 3. Speed: spool-bench times one training step of the LSTM and of each chosen shape (1 thread,
#    interleaved, medians); equal time means steps x median step time equal to the LSTM's, so the
#    comparison does not depend on what else the machine runs while the runs train.
# 4. Final runs, seeds 1-3: the LSTM for STEPS steps; each chosen min shape for STEPS steps (equal
#    parameters) and for the steps that take the LSTM's time (equal time); each checkpoint's loss
#    on test with `spool-charlm eval`.
# 5. OUT/results.md (mean and range per row), OUT/curves.svg (held-out loss on valid against
#    training seconds, the mean of the seeds; needs gnuplot) and OUT/results.jsonl.
# Runs go JOBS at a time (default 2, one thread each). With the defaults it takes about an hour
# of CPU on a 2-core Xeon. SPOOL_BUILD names the build directory (default: the repository's build).
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '3,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${SPOOL_BUILD:-$repo/build}
CL=$build/examples/spool-charlm
BENCH=$build/bench/spool-bench
for p in "$CL" "$BENCH"; do [ -x "$p" ] || { echo "min_quality.sh: $p is missing: build first (meson setup build && ninja -C build)" >&2; exit 1; }; done
out=$(mkdir -p "${1:-min-quality}" && cd "${1:-min-quality}" && pwd)
STEPS=${STEPS:-3000} SEL_STEPS=${SEL_STEPS:-1500} JOBS=${JOBS:-2}
cd "$out"

python3 - "$repo/examples/data/tinyshakespeare/input.txt" <<'EOF'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
def cut(f):  # the first line end at or after fraction f of the text
    return text.index("\n", int(len(text) * f)) + 1
a, b = cut(0.8), cut(0.9)
for name, part in (("train.txt", text[:a]), ("valid.txt", text[a:b]), ("test.txt", text[b:])):
    open(name, "w", encoding="utf-8").write(part)
EOF

COMMON="--data train.txt --valid valid.txt --mode stream --embed 64 --seq 64 --batch 32 --lr 0.003 --threads 1 --eval-every 250 --checkpoint-every 0 --plot none"
run_all() { xargs -d '\n' -P "$JOBS" -I{} bash -c {}; } # one command per line
train_cmd() { # NAME CELL LAYERS HIDDEN SEED STEPS
    echo "'$CL' train $COMMON --cell $2 --layers $3 --hidden $4 --seed $5 --steps $6 --checkpoint $1.safetensors > $1.log 2>&1 || { echo 'failed: $1 (see $out/$1.log)' >&2; exit 255; }"
}
final_valid() { tail -n 1 "$1.csv" | awk -F, '{print $7}'; }

# the shapes: about the LSTM's 1 x 256 recurrent parameters (4*256*(64+256+2) = 329728)
shapes() {
    case $1 in
    mingru) echo "2:368 3:272 4:224" ;;
    minlstm) echo "2:304 3:224 4:184" ;;
    esac
}
echo "# selection on valid: $SEL_STEPS steps, seed 1" >&2
for c in mingru minlstm; do for s in $(shapes $c); do
    train_cmd "sel-$c-${s%%:*}x${s##*:}" $c "${s%%:*}" "${s##*:}" 1 "$SEL_STEPS"
done; done | run_all
declare -A best
for c in mingru minlstm; do
    bl=9
    for s in $(shapes $c); do
        v=$(final_valid "sel-$c-${s%%:*}x${s##*:}")
        echo "$c ${s%%:*} x ${s##*:}: valid $v" >&2
        if awk -v a="$v" -v b="$bl" 'BEGIN{exit !(a < b)}'; then bl=$v best[$c]=$s; fi
    done
    echo "chosen $c: ${best[$c]/:/ x }" >&2
done

echo "# step times (spool-bench, 1 thread, embedding 64)" >&2
declare -A ms
bench() { "$BENCH" --cell "$1" --layers "$2" --hidden "$3" --embedding 64 --threads 1 --target-seconds 3 |
    python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["ms_per_step_median"])'; }
for round in 1 2 3; do
    for k in lstm:1:256 mingru:${best[mingru]} minlstm:${best[minlstm]}; do
        IFS=: read -r c l h <<<"$k"
        ms[$c.$round]=$(bench "$c" "$l" "$h")
    done
done
med() { printf '%s\n' "${ms[$1.1]}" "${ms[$1.2]}" "${ms[$1.3]}" | sort -g | sed -n 2p; }
ms_lstm=$(med lstm)
declare -A eqsteps
for c in mingru minlstm; do
    eqsteps[$c]=$(awk -v s="$STEPS" -v a="$ms_lstm" -v b="$(med $c)" 'BEGIN{printf "%d", s * a / b + 0.5}')
    echo "$c: $(med $c) ms a step against the LSTM's $ms_lstm: ${eqsteps[$c]} steps for equal time" >&2
done

echo "# final runs, seeds 1-3" >&2
for seed in 1 2 3; do
    train_cmd "lstm-$seed" lstm 1 256 $seed "$STEPS"
    for c in mingru minlstm; do
        IFS=: read -r l h <<<"${best[$c]}"
        train_cmd "$c-params-$seed" $c "$l" "$h" $seed "$STEPS"
        train_cmd "$c-time-$seed" $c "$l" "$h" $seed "${eqsteps[$c]}"
    done
done | run_all

: >results.jsonl
for f in lstm-{1,2,3} mingru-params-{1,2,3} mingru-time-{1,2,3} minlstm-params-{1,2,3} minlstm-time-{1,2,3}; do
    test_loss=$("$CL" eval --data train.txt --valid test.txt --checkpoint "$f.safetensors" --threads 1 2>/dev/null |
        awk '/^loss/{print $2}')
    params=$(grep -o '[0-9]* parameters' "$f.log" | awk '{print $1}')
    run=${f%-*} c=${f%%-*}
    python3 - "$f" "$run" "$c" "$test_loss" "$params" "$(final_valid "$f")" "$(tail -n 1 "$f.csv" | awk -F, '{print $1, $9}')" \
        "$(med "$c")" >>results.jsonl <<'EOF'
import json, sys
f, run, cell, test, params, valid, last, ms = sys.argv[1:]
steps, wall = last.split()
print(json.dumps({"run": run, "name": f, "cell": cell, "test_loss": float(test), "valid_loss": float(valid),
                  "params": int(params), "steps": int(steps), "wall_s": float(wall), "bench_ms_per_step": float(ms)}))
EOF
done
python3 - "$out" <<'EOF'
import json, sys, csv, collections
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/results.jsonl")]
by = collections.OrderedDict()
for r in rows: by.setdefault(r["run"], []).append(r)
what = {"lstm": "LSTM 1 x 256 (reference)", "params": "equal parameters", "time": "equal training time"}
lines = ["| run | parameters | steps | seconds of training (bench) | test loss, nats/char: mean (range) |",
         "|---|---|---|---|---|"]
for run, rs in by.items():
    t = [r["test_loss"] for r in rs]
    kind = what["lstm"] if run == "lstm" else f'{run.split("-")[0]}, {what[run.split("-")[1]]}'
    secs = rs[0]["steps"] * rs[0]["bench_ms_per_step"] / 1000
    lines.append(f'| {kind} | {rs[0]["params"]} | {rs[0]["steps"]} | {secs:.0f} | '
                 f'{sum(t) / len(t):.4f} ({min(t):.4f}-{max(t):.4f}) |')
open(f"{out}/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
# curves: the seeds' mean held-out loss on valid at each evaluation, against bench seconds
with open(f"{out}/curves.tsv", "w") as g:
    for run, rs in by.items():
        pts = collections.defaultdict(list)
        for r in rs:
            for row in csv.DictReader(open(f'{out}/{r["name"]}.csv')):
                if row["valid_loss"] != "nan":
                    pts[int(row["step"])].append(float(row["valid_loss"]))
        g.write(f'"{run}"\n')
        for step in sorted(pts):
            if len(pts[step]) == len(rs):
                g.write(f'{step * rs[0]["bench_ms_per_step"] / 1000:.1f}\t{sum(pts[step]) / len(pts[step]):.4f}\n')
        g.write("\n\n")
EOF
if command -v gnuplot >/dev/null; then
    gnuplot -e "set terminal svg size 760,440 font 'sans,12'; set output 'curves.svg'; set xlabel 'training seconds (steps x spool-bench step time, 1 thread)'; set ylabel 'held-out loss on valid, nats/char (mean of seeds 1-3)'; set key top right; set yrange [1.4:2.2]; set grid; plot for [i=0:4] 'curves.tsv' index i using 1:2 with lines lw 2 title columnheader(1)"
fi
echo "results: $out/results.md, $out/results.jsonl, $out/curves.svg" >&2
