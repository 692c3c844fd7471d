#!/bin/bash
# test_dist.sh - the MPI tests of issue 14 (TAP): test_dist's modes under mpirun with 2 and 3
# ranks (see tests/test_dist.c), and, given spool-charlm, distributed training of the char-LM.
# Usage: test_dist.sh MPIRUN test_dist [spool-charlm data-dir]
set -u
MPIRUN=${1:?usage: test_dist.sh mpirun test_dist [spool-charlm data-dir]}
EXE=${2:?}
# as root (CI) Open MPI wants both variables; --oversubscribe: more ranks than the 2 cores
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
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

echo "1..$n"
exit $((failed > 0))
