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
[ $fails -eq 0 ] && echo "cli_modes: all checks passed"
exit $fails
