#!/bin/bash
# SPDX-License-Identifier: MIT
# test_dist.sh - the MPI tests (TAP): test_dist's modes under mpirun with 2 and 3
# ranks (see tests/test_dist.c), and, given spool-charlm, distributed training of the char-LM.
# Usage: test_dist.sh MPIRUN test_dist [spool-charlm data-dir [spool-sentiment]]
set -u
MPIRUN=${1:?usage: test_dist.sh mpirun test_dist [spool-charlm data-dir]}
EXE=$(cd "$(dirname "${2:?}")" && pwd)/$(basename "$2")
# as root (CI) Open MPI wants both variables; --oversubscribe: more ranks than the 2 cores
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
# programs by absolute path (the tests run in a scratch directory)
[ $# -ge 5 ] && SE=$(cd "$(dirname "$5")" && pwd)/$(basename "$5")
MPI="$MPIRUN --oversubscribe --mca btl self,vader --bind-to none"
W=$(mktemp -d "${TMPDIR:-/tmp}/test_dist.XXXXXX")
trap 'rm -rf "$W"' EXIT
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
show() { sed 's/^/# /' "$1"; }

for np in 2 3; do
    if $MPI -np $np "$EXE" equiv > "$W/eq.txt" 2>&1 && [ "$(grep -c 'equiv passed' "$W/eq.txt")" = $np ]; then
        ok "equiv -np $np: distributed = single process on the concatenated batch"
        grep 'rank 0:.*max' "$W/eq.txt" | sed 's/^/# /'
    else
        not_ok "equiv -np $np" "$(cat "$W/eq.txt")"
    fi
done

$MPI -np 2 "$EXE" mismatch > "$W/mm.txt" 2>&1
if [ "$(grep -c 'mismatch passed' "$W/mm.txt")" = 2 ] && [ "$(grep -c 'differs between ranks' "$W/mm.txt")" = 4 ]; then
    ok "mismatched configuration: every rank refuses with a message"
    show "$W/mm.txt"
else
    not_ok "mismatched configuration" "$(cat "$W/mm.txt")"
fi

# a rank that stops answering: rank 0 reports within its 3 s timeout and exits; the launcher
# then ends the job (meson's timeout bounds the whole run)
$MPI -np 2 "$EXE" timeout > "$W/to.txt" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q 'rank 0: sp_dist_allreduce_grads: rank 0 of 2 waited 3 s' "$W/to.txt"; then
    ok "hung rank: rank 0 times out with a message (mpirun exit $rc)"
else
    not_ok "hung rank (mpirun exit $rc)" "$(cat "$W/to.txt")"
fi

# a rank that dies: the launcher ends the others, which say so
$MPI -np 3 "$EXE" die > "$W/die.txt" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q 'signal 9' "$W/die.txt"; then
    ok "dead rank: the job ends (mpirun exit $rc)"
    show "$W/die.txt"
else
    not_ok "dead rank (mpirun exit $rc)" "$(cat "$W/die.txt")"
fi

# ---------------------------------------------------------------- the char-LM under mpirun
if [ $# -ge 4 ]; then
    CL=$(cd "$(dirname "$3")" && pwd)/$(basename "$3")
    export SPOOL_CHARLM_DATA=$(cd "$4" && pwd)
    cd "$W" || exit 1
    # same per-step losses within 2e-5 (printed to 6 decimals; the sums differ in order only)
    same_losses() { # a.csv b.csv first-step
        awk -F, -v from="${3:-1}" 'NR == FNR { if (FNR > 1) l[$1] = $4; next }
             FNR > 1 && $1 >= from { n++; d = l[$1] - $4; if (d < 0) d = -d; if (d > m) m = d }
             END { if (!n) exit 1; printf "%d steps, max |difference| %.2g\n", n, m; exit !(m <= 2e-5) }' "$1" "$2"
    }
    for mode in lines stream; do
        O="--data names --mode $mode --steps 25 --seq 24 --hidden 24 --embed 8 --eval-every 0 --plot none --lr-schedule constant"
        "$CL" train $O --batch 6 --threads 1 --checkpoint one-$mode.safetensors > one.txt 2>&1
        $MPI -np 3 "$CL" train $O --batch 2 --checkpoint three-$mode.safetensors > three.txt 2>&1
        if r=$(same_losses one-$mode.csv three-$mode.csv) && [ "$(wc -l < three-$mode.csv)" = 26 ]; then
            ok "charlm $mode: 3 ranks x batch 2 = one process x batch 6 ($r); one log"
        else
            not_ok "charlm $mode: 3 ranks vs one process" "$r" "$(tail -5 three.txt)"
        fi
    done
    # resume with the same and with another number of ranks; dropout seeded per rank
    O="--data names --steps 30 --hidden 24 --embed 8 --batch 4 --dropout 0.2 --eval-every 0 --plot none --lr-schedule constant"
    $MPI -np 2 "$CL" train $O --checkpoint full.safetensors > full.txt 2>&1
    $MPI -np 2 "$CL" train $O --checkpoint part.safetensors --stop-after 12 > part1.txt 2>&1
    $MPI -np 2 "$CL" train $O --checkpoint part.safetensors --resume > part2.txt 2>&1
    if r=$(same_losses full.csv part.csv) && grep -q 'resumed from' part2.txt; then
        ok "charlm: stopped at 12 and resumed with 2 ranks = uninterrupted, with dropout ($r)"
    else
        not_ok "charlm resume, same ranks" "$r" "$(tail -3 part2.txt)"
    fi
    $MPI -np 2 "$CL" train $O --checkpoint other.safetensors --stop-after 12 > o1.txt 2>&1
    $MPI -np 3 "$CL" train $O --checkpoint other.safetensors --resume > o2.txt 2>&1
    rc3=$?
    "$CL" train $O --checkpoint other.safetensors --resume --steps 40 > o3.txt 2>&1
    rc1=$?
    if [ $rc3 = 0 ] && [ $rc1 = 0 ] && [ "$(tail -1 other.csv | cut -d, -f1)" = 40 ] && "$CL" eval --checkpoint other.safetensors > /dev/null 2>&1; then
        ok "charlm: 2 ranks, resumed with 3, then with one process"
    else
        not_ok "charlm resume with other rank counts ($rc3, $rc1)" "$(tail -3 o2.txt)" "$(tail -3 o3.txt)"
    fi
    # a rank with another model configuration: every rank says so, the job ends
    O="--data names --steps 20 --embed 8 --eval-every 0 --plot none"
    $MPI -np 1 "$CL" train $O --hidden 24 --checkpoint mm.safetensors : -np 1 "$CL" train $O --hidden 25 --checkpoint mm.safetensors > mm.txt 2>&1
    rc=$?
    if [ $rc != 0 ] && [ "$(grep -c 'rank [01]: sp_dist_check: the configuration .* differs between ranks' mm.txt)" = 2 ] && [ ! -e mm.safetensors ]; then
        ok "charlm: mismatched --hidden: both ranks refuse (exit $rc)"
    else
        not_ok "charlm mismatched configuration (exit $rc)" "$(cat mm.txt)"
    fi
    # rank 1 killed mid-run: the job ends, rank 0 says so, the last checkpoint loads
    O="--data names --steps 100000 --hidden 24 --embed 8 --batch 4 --eval-every 0 --plot none --checkpoint-every 20"
    $MPI -np 2 sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then (sleep 3; kill -9 $$) & fi; exec "$0" "$@"' \
        "$CL" train $O --checkpoint dead.safetensors > dead.txt 2>&1
    rc=$?
    if [ $rc != 0 ] && grep -q 'rank 0: ended by the launcher .* the last checkpoint dead.safetensors (step [0-9]*) is intact' dead.txt &&
       "$CL" eval --checkpoint dead.safetensors > ev.txt 2>&1; then
        ok "charlm: rank 1 killed: the job ends (exit $rc), rank 0 reports, the checkpoint loads ($(grep -o 'loss [0-9.]*' ev.txt | head -1))"
    else
        not_ok "charlm: rank killed (exit $rc)" "$(cat dead.txt)" "$(cat ev.txt 2>/dev/null)"
    fi
    # ... and killed before any checkpoint: rank 0 says there is none (it claimed one was intact)
    # (--checkpoint-every 0: only at the end, which never comes; a tiny model passes the default
    # 1000 steps well within the second before rank 1 dies)
    O="--data names --steps 100000 --hidden 8 --embed 4 --batch 4 --eval-every 0 --plot none --checkpoint-every 0"
    timeout 20 $MPI -np 2 sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then (sleep 1; kill -9 $$) & fi; exec "$0" "$@"' \
        "$CL" train $O --checkpoint none.safetensors > none.txt 2>&1
    rc=$?
    if [ $rc != 0 ] && grep -q 'rank 0: ended by the launcher .* this run wrote no checkpoint yet' none.txt &&
       ! grep -q 'is intact' none.txt && [ ! -e none.safetensors ]; then
        ok "charlm: rank 1 killed before any checkpoint: rank 0 says none was written (exit $rc)"
    else
        not_ok "charlm: rank killed before a checkpoint (exit $rc)" "$(cat none.txt)"
    fi
    # a rank that never joins (another program on its slot): the others stop after --dist-timeout
    # with a message, not after that program ends (MPI_Init_thread has no deadline of its own)
    t0=$(date +%s)
    timeout 20 $MPI -np 1 "$CL" train $O --checkpoint sleep.safetensors --dist-timeout 3 : -np 1 sleep 15 > sl.txt 2>&1
    rc=$? dt=$(($(date +%s) - t0))
    if [ $rc != 0 ] && [ $dt -lt 12 ] && grep -q 'spool-charlm: rank 0: the ranks did not all join within 3 s' sl.txt; then
        ok "charlm: a rank that never joins: rank 0 stops after --dist-timeout 3 ($dt s, exit $rc)"
    else
        not_ok "charlm: a rank that never joins ($dt s, exit $rc)" "$(cat sl.txt)"
    fi
fi

# -------------------------------------------------------------- the sentiment classifier
if [ $# -ge 5 ]; then
    O="--data $4/sentiment-mr --limit 600 --embed 8 --hidden 8 --batch 8 --log-every 0"
    $MPI -np 2 "$SE" train $O --epochs 1 --out se.safetensors > se1.txt 2>&1
    rc1=$?
    $MPI -np 3 "$SE" train $O --epochs 2 --resume se.safetensors.last --out se.safetensors > se2.txt 2>&1
    rc2=$?
    if [ $rc1 = 0 ] && [ $rc2 = 0 ] && [ "$(grep -c '^epoch  1 ' se1.txt)" = 1 ] && grep -q '^2 ranks' se1.txt &&
       grep -q '^epoch  2 ' se2.txt && grep -q '^result: test accuracy' se2.txt && "$SE" eval --model se.safetensors --test "$4/sentiment-mr/test.tsv" > /dev/null 2>&1; then
        ok "sentiment: 2 ranks for epoch 1, resumed with 3 for epoch 2; one report; the model loads"
    else
        not_ok "sentiment under mpirun ($rc1, $rc2)" "$(tail -4 se1.txt)" "$(tail -4 se2.txt)"
    fi
    $MPI -np 1 "$SE" train $O --epochs 1 --out mm.safetensors : -np 1 "$SE" train $O --epochs 1 --lr 0.01 --out mm.safetensors > sm.txt 2>&1
    rc=$?
    if [ $rc != 0 ] && [ "$(grep -c 'rank [01]: sp_dist_check: the configuration .* differs' sm.txt)" = 2 ]; then
        ok "sentiment: mismatched --lr: both ranks refuse"
    else
        not_ok "sentiment mismatched configuration (exit $rc)" "$(cat sm.txt)"
    fi
fi

echo "1..$n"
exit $((failed > 0))
