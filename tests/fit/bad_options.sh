#!/bin/bash
# `cohortnet fit` with bad options: each must fail (non-zero exit) with a message naming the option.
BIN="$1"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/cohort"
status=0
source "$(dirname "$0")/../lib/expect.sh"
expect_error fit --tau-rnn   --cohort "$W/cohort" --out "$W/r" --tau-rnn=-1
expect_error fit --tau-rnn   --cohort "$W/cohort" --out "$W/r" --tau-rnn 0
expect_error fit --tau-wn    --cohort "$W/cohort" --out "$W/r" --tau-wn=-0.5
expect_error fit --dt-factor --cohort "$W/cohort" --out "$W/r" --dt-factor 0
expect_error fit --normalise --cohort "$W/cohort" --out "$W/r" --normalise median
expect_error fit --p0        --cohort "$W/cohort" --out "$W/r" --p0 0
expect_error fit --runs-train --cohort "$W/cohort" --out "$W/r" --runs-train=-3
expect_error fit --gains     --cohort "$W/cohort" --out "$W/r" --gains latent
expect_error fit --gains     --cohort "$W/cohort" --out "$W/r" --gains latent:0
expect_error fit --gains     --cohort "$W/cohort" --out "$W/r" --gains latent:two
expect_error fit --gains     --cohort "$W/cohort" --out "$W/r" --gains latent:3 --prior region
expect_error fit --gains-latent-tau --cohort "$W/cohort" --out "$W/r" --gains latent:3 --gains-latent-tau 0
expect_error fit --gains     --cohort "$W/cohort" --out "$W/r" --gains inputs --prior region
expect_error fit --gains-accept --cohort "$W/cohort" --out "$W/r" --gains inputs --gains-accept 1.5
expect_error fit --gains-folds --cohort "$W/cohort" --out "$W/r" --gains inputs --gains-folds 1
expect_error fit --cohort    --out "$W/r"
expect_error fit --cohort    --cohort "$W/does-not-exist" --out "$W/r"
expect_error fit --cohort    --cohort "$W/cohort" --out "$W/r"          # empty folder: no animals
expect_error fit --out       --cohort "$W/cohort"
expect_error fit --ranks-per-animal --cohort "$W/cohort" --out "$W/r" --ranks-per-animal 5
expect_error fit --prior     --cohort "$W/cohort" --out "$W/r" --prior diagonal
expect_error fit "--prior block" --cohort "$W/cohort" --out "$W/r" --prior block --start random
expect_error fit --prior-ratio --cohort "$W/cohort" --out "$W/r" --prior-ratio=-1
expect_error fit --reference-compat --cohort "$W/cohort" --out "$W/r" --reference-compat --prior region
expect_error fit --prior-ratio --cohort "$W/cohort" --out "$W/r" --prior-ratio often
expect_error fit --start     --cohort "$W/cohort" --out "$W/r" --start zero
expect_error fit --start-p0  --cohort "$W/cohort" --out "$W/r" --start-p0 0
expect_error fit --start-ratio --cohort "$W/cohort" --out "$W/r" --start-ratio=-0.1
expect_error fit --start     --cohort "$W/cohort" --out "$W/r" --reference-compat --start regression
expect_error fit --inputs    --cohort "$W/cohort" --out "$W/r" --inputs maybe
expect_error fit --update-block --cohort "$W/cohort" --out "$W/r" --update-block 0
expect_error fit --update-block --cohort "$W/cohort" --out "$W/r" --update-block 17
expect_error fit --dt-factr  --cohort "$W/cohort" --out "$W/r" --dt-factr 5   # typo: unknown option
exit $status
