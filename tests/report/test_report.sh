#!/usr/bin/env bash
# usage: test_report.sh COHORTNET MPIEXEC PYTHON CHECK_REPORT_PY
# A tiny simulated study through the real pipeline; animal a01's activity is made non-positive so
# its fit fails (the fit cannot normalise by a maximum <= 0) and the others go on.
set -euo pipefail
B=$1 MPIEXEC=$2 PY=$3 CHECK=$4
W=$(mktemp -d /tmp/cohortnet-report-test.XXXXXX)
trap 'rm -rf "$W"' EXIT
cd "$W"
run() { "$MPIEXEC" -n "$1" --oversubscribe --bind-to none "${@:2}"; }

run 2 "$B" simulate --preset cohort --animals 4 --regions 3 --units-per-region 10 --samples 200 --modes 2 \
  --seed 3 --out cohort > simulate.log
"$PY" - <<'PYEOF'
import h5py, numpy as np
with h5py.File("cohort/a01.h5", "r+") as f:
    a = f["activity"][()]
    f["activity"][...] = -np.abs(a) - 0.01
PYEOF
set +e
run 2 "$B" fit --cohort cohort --out results --runs-train 4 --dt-factor 2 --tau-rnn 0.1 > fit.log 2>&1
rc=$?
set -e
if [ "$rc" != 1 ]; then cat fit.log; echo "FAIL: fit should exit 1 (one animal failed), got $rc"; exit 1; fi
grep -q '^a01,.*,failed,' results/fits/summary.csv || { cat results/fits/summary.csv; echo "FAIL: a01 not failed"; exit 1; }

# 1. Before modes: the page says modes.h5 is missing, no crash; the cohort is found from the fits.
run 2 "$B" report --results results --out report-nomodes
"$PY" "$CHECK" --results results --report report-nomodes --expect-failed a01 --expect-no-modes

# 2. After modes (small settings), with --cohort: every number of the table equals the HDF5 files.
# The modes' check against the truth fails for certain with a cosine bar of 1: exit 3, outputs
# written, and the report says so first.
set +e
run 2 "$B" modes --input results --cohort cohort --out results --k-max 3 --starts 2 --folds 2 \
  --permutations 99 --loo-null 5 --loo-starts 2 --truth-min-cosine 1 > modes.log 2>&1
rc=$?
set -e
[ "$rc" = 3 ] && grep -q "truth check (.*): the modes do NOT recover the simulated truth" modes.log \
  || { cat modes.log; echo "FAIL: modes with a failed truth check should exit 3 naming it, got $rc"; exit 1; }
run 2 "$B" report --results results --cohort cohort
"$PY" "$CHECK" --results results --report results/report --expect-failed a01 --expect-truth

# 2b. Gated fits (fit --gains inputs; the mechanism tests' stronger prior so these 10-unit regions
# keep gains): the page's top row and per-animal columns give the kept targets as in
# /gains_model/kept and the gains' r against the simulator's true gains, with a figure per animal.
set +e
run 2 "$B" fit --cohort cohort --out results-gated --runs-train 2 --dt-factor 2 --tau-rnn 0.1 --gains inputs \
  --gains-accept 1 --gains-min-modulation 0 --gains-shrink 1e-3 > fit-gated.log 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || { cat fit-gated.log; echo "FAIL: gated fit should exit 1 (a01 failed), got $rc"; exit 1; }
run 2 "$B" report --results results-gated --cohort cohort
"$PY" "$CHECK" --results results-gated --report results-gated/report --expect-failed a01 --expect-no-modes --expect-gains

# 3. Errors name what is missing; exit status non-zero on every rank.
set +e
out=$(run 2 "$B" report --results nowhere 2>&1); rc=$?
set -e
[ "$rc" != 0 ] && grep -q "option --results: folder nowhere does not exist" <<< "$out" \
  || { echo "$out"; echo "FAIL: missing results folder not reported"; exit 1; }
mkdir empty
set +e
out=$(run 1 "$B" report --results empty 2>&1); rc=$?
set -e
[ "$rc" != 0 ] && grep -q "has neither fits/ nor modes.h5" <<< "$out" \
  || { echo "$out"; echo "FAIL: empty results folder not reported"; exit 1; }
set +e
out=$(run 2 "$B" report --results results --script "$W/none.py" 2>&1); rc=$?
set -e
[ "$rc" != 0 ] && grep -q "option --script: file $W/none.py does not exist" <<< "$out" \
  || { echo "$out"; echo "FAIL: missing script not reported"; exit 1; }
# A script that fails: its status reaches every rank (no hang, exit non-zero).
printf 'import sys\nsys.exit(3)\n' > bad.py
set +e
out=$(run 2 "$B" report --results results --script bad.py 2>&1); rc=$?
set -e
[ "$rc" != 0 ] && grep -q "exited with status 3" <<< "$out" \
  || { echo "$out"; echo "FAIL: failing script not reported"; exit 1; }
echo "report test passed"
