#!/bin/bash
# `cohortnet fit` with bad options: each must fail (non-zero exit) with a message naming the option.
BIN="$1"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/cohort"
status=0
expect_error() {  # expect_error WORD args...
  local word="$1"; shift
  local out code
  out=$("$BIN" fit "$@" 2>&1); code=$?
  if [ $code -eq 0 ]; then echo "FAIL: 'fit $*' succeeded"; status=1; return; fi
  if ! grep -q -e "$word" <<<"$out"; then echo "FAIL: 'fit $*' error does not name $word:"; echo "$out"; status=1; return; fi
  echo "ok: fit $* -> $(grep -e "$word" <<<"$out" | head -1)"
}
expect_error --tau-rnn   --cohort "$W/cohort" --out "$W/r" --tau-rnn=-1
expect_error --tau-rnn   --cohort "$W/cohort" --out "$W/r" --tau-rnn 0
expect_error --tau-wn    --cohort "$W/cohort" --out "$W/r" --tau-wn=-0.5
expect_error --dt-factor --cohort "$W/cohort" --out "$W/r" --dt-factor 0
expect_error --normalise --cohort "$W/cohort" --out "$W/r" --normalise median
expect_error --p0        --cohort "$W/cohort" --out "$W/r" --p0 0
expect_error --runs-train --cohort "$W/cohort" --out "$W/r" --runs-train=-3
expect_error --cohort    --out "$W/r"
expect_error --cohort    --cohort "$W/does-not-exist" --out "$W/r"
expect_error --cohort    --cohort "$W/cohort" --out "$W/r"          # empty folder: no animals
expect_error --out       --cohort "$W/cohort"
expect_error --ranks-per-animal --cohort "$W/cohort" --out "$W/r" --ranks-per-animal 5
expect_error --prior     --cohort "$W/cohort" --out "$W/r" --prior diagonal
expect_error --prior-ratio --cohort "$W/cohort" --out "$W/r" --prior-ratio=-1
expect_error --reference-compat --cohort "$W/cohort" --out "$W/r" --reference-compat --prior region
expect_error --inputs    --cohort "$W/cohort" --out "$W/r" --inputs maybe
expect_error --dt-factr  --cohort "$W/cohort" --out "$W/r" --dt-factr 5   # typo: unknown option
exit $status
