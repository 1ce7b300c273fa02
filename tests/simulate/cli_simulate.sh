#!/bin/sh
# CLI test of `cohortnet simulate`: the documented demo command at 2 ranks, the files read back
# with h5py (tests/simulate/check_cohort.py), the same command at 1 and 3 ranks gives identical
# files, and a bad option fails with a message naming it.
# usage: cli_simulate.sh COHORTNET MPIEXEC CHECK_PY
set -eu
BIN=$1; MPIEXEC=$2; CHECK=$3
DIR=$(mktemp -d "${TMPDIR:-/tmp}/cohortnet-simcli-XXXXXX")
trap 'rm -rf "$DIR"' EXIT
MPI="$MPIEXEC --oversubscribe --bind-to none"
PY=/usr/bin/python3

$MPI -n 2 "$BIN" simulate --preset cohort --animals 8 --seed 1 --out "$DIR/c2" > "$DIR/log" 2>&1 || { cat "$DIR/log"; exit 1; }
$PY "$CHECK" "$DIR/c2" 8 || exit 1

# Rank-count independence through the CLI (a smaller cohort to keep the test short).
for n in 1 3; do
  $MPI -n $n "$BIN" simulate --animals 4 --units-per-region 15 --samples 200 --lead-time 0.5 --individual-mode \
    --seed 3 --name same --out "$DIR/r$n" > "$DIR/log" 2>&1 || { cat "$DIR/log"; exit 1; }
done
$PY "$CHECK" --compare "$DIR/r1" "$DIR/r3" || exit 1

# The three-region preset with the MATLAB link strength.
$MPI -n 2 "$BIN" simulate --preset three-region --units-per-region 30 --samples 200 --trials 2 \
  --link-strength 0.2 --out "$DIR/t" > "$DIR/log" 2>&1 || { cat "$DIR/log"; exit 1; }
$PY "$CHECK" --three "$DIR/t" 0.2 || exit 1

# Errors name the option and exit non-zero.
expect_error() {
  option=$1; shift
  if $MPI -n 2 "$BIN" simulate "$@" > "$DIR/log" 2>&1; then echo "FAIL: '$*' succeeded"; exit 1; fi
  grep -q -- "$option" "$DIR/log" || { echo "FAIL: '$*' does not name $option:"; cat "$DIR/log"; exit 1; }
  if grep -q "MPI_ABORT\|error on rank" "$DIR/log"; then echo "FAIL: '$*' aborted instead of a clean error"; cat "$DIR/log"; exit 1; fi
}
# (every option check is also tested in-process by test_simulate)
expect_error --animals --animals 0 --out "$DIR/bad"
expect_error --modes --regions 3 --modes 7 --out "$DIR/bad"
touch "$DIR/afile"
expect_error --out --out "$DIR/afile/sub"
echo "simulate CLI: all checks passed"
