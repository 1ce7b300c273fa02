#!/bin/sh
# CLI checks of `cohortnet modes`: help, option errors (non-zero exit, message naming the option).
# usage: cli_modes.sh COHORTNET MPIEXEC
set -u
BIN="$1"; MPIEXEC="$2"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
fails=0
expect_fail() {  # expect_fail PATTERN ARGS...
  pat="$1"; shift
  out=$("$MPIEXEC" -n 2 --oversubscribe "$BIN" modes "$@" 2>&1); st=$?
  if [ $st -eq 0 ]; then echo "FAIL: 'modes $*' exited 0"; fails=$((fails+1)); return; fi
  echo "$out" | grep -q -- "$pat" || { echo "FAIL: 'modes $*' output lacks '$pat':"; echo "$out"; fails=$((fails+1)); }
}
out=$("$BIN" modes --help 2>&1) || { echo "FAIL: --help exited non-zero"; fails=$((fails+1)); }
for opt in --input --k --starts --permutations --project --self-pairs --reduction; do
  echo "$out" | grep -q -- "$opt" || { echo "FAIL: --help lacks $opt"; fails=$((fails+1)); }
done
expect_fail "--k" --input /nonexistent --out /tmp/x --k many
expect_fail "--input is required" --out /tmp/x --k 3
expect_fail "/nonexistent-cohort" --input /nonexistent-cohort --out /tmp/x --k 3
expect_fail "--mode-stat" --input /tmp --out /tmp/x --mode-stat best
expect_fail "unknown option --kk" --kk 3
expect_fail "--modes" --project /tmp/none.h5
# SIGTERM during the work: exit 75, no modes.h5, the lock released (a rerun starts again); a second
# modes into a folder whose lock a live process holds: exit 73 naming the lock.
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$BIN" simulate --preset cohort --animals 3 --regions 3 --units-per-region 5 --samples 400 --seed 2 --out "$W/c" > "$W/sim.log" 2>&1 \
  || { echo "FAIL: simulate"; fails=$((fails+1)); }
"$BIN" modes --input "$W/c" --out "$W/m" --k 2 --starts 2 --permutations 5000000 > "$W/term.log" 2>&1 &
pid=$!
i=0; while [ $i -lt 200 ] && ! grep -q "region pairs" "$W/term.log"; do sleep 0.1; i=$((i+1)); done
kill -TERM $pid; wait $pid; st=$?  # at once: a quiet machine finishes modes in well under a second
[ $st -eq 75 ] || { echo "FAIL: modes after SIGTERM exited $st, expected 75"; cat "$W/term.log"; fails=$((fails+1)); }
[ ! -e "$W/m/modes.h5" ] && [ ! -e "$W/m/modes.h5.lock" ] || { echo "FAIL: SIGTERM left modes.h5 or its lock"; ls "$W/m"; fails=$((fails+1)); }
sleep 60 & holder=$!
echo "$holder $(hostname)" > "$W/m/modes.h5.lock"
"$BIN" modes --input "$W/c" --out "$W/m" --k 2 --starts 2 --no-conserve > "$W/lock.log" 2>&1; st=$?
kill $holder
[ $st -eq 73 ] && grep -q "modes.h5 is locked by process $holder" "$W/lock.log" \
  || { echo "FAIL: locked modes exited $st"; cat "$W/lock.log"; fails=$((fails+1)); }
# submit's errors: the message and exit 1, no MPI_ABORT banner (2 ranks).
printf '[modes]\nk = 2\n' > "$W/nofit.ini"
out=$("$MPIEXEC" -n 2 --oversubscribe "$BIN" submit --config "$W/nofit.ini" --dry-run --mem-per-node 4 --cores-per-node 2 2>&1); st=$?
[ $st -eq 1 ] && ! echo "$out" | grep -q "MPI_ABORT" && echo "$out" | grep -q "nofit.ini: has no \[fit\] section" \
  || { echo "FAIL: submit error ($st): $out"; fails=$((fails+1)); }
printf '[study]\n' > "$W/empty.ini"
out=$("$MPIEXEC" -n 2 --oversubscribe "$BIN" run --config "$W/empty.ini" 2>&1); st=$?
[ $st -eq 1 ] && ! echo "$out" | grep -q "MPI_ABORT" && echo "$out" | grep -q "empty.ini: has none of the sections" \
  || { echo "FAIL: run error ($st): $out"; fails=$((fails+1)); }
[ $fails -eq 0 ] && echo "cli_modes: all checks passed"
exit $fails
