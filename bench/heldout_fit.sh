#!/usr/bin/env bash
# Held-out pVar of today's `cohortnet fit` at horizon K on one animal (bench/README.md):
#   bench/heldout_fit.sh ANIMAL.h5 WORKDIR K TAU DT_FACTOR RUNS_TRAIN [extra fit options]
# Fits the first two thirds (trial starts every K = resets), then runs the trained J without
# noise over the last third (resets every K) and scores it; prints the training log's last line
# and the held-out pVar (all / non-reset samples).
set -euo pipefail
animal=$1 dir=$2 K=$3 tau=$4 dtf=$5 runs=$6
shift 6
B=${COHORTNET_BUILD:-build}
mpirun -n 2 $B/bench/bench_heldout_fit split "$animal" "$dir" "$K" >/dev/null
id=$(basename "$animal" .h5)
mpirun -n 2 $B/bin/cohortnet fit --cohort "$dir/train" --out "$dir/fit" --normalise none --tau-rnn "$tau" \
  --dt-factor "$dtf" --runs-train "$runs" --runs-free 1 "$@" | grep "pVar" | tail -1
T=$(h5dump -H "$dir/heldout/$id.h5" | grep -A2 'DATASET "activity"' | grep -o '( [0-9]*, [0-9]* )' | head -1 | tr -d '(),' | awk '{print $2}')
L=$(( (T - 1) * dtf + 1 ))
mpirun -n 2 $B/bench/bench_heldout_fit init "$dir/fit/fits/$id.h5" "$L" "$dir/init.h5"
mpirun -n 2 $B/bin/cohortnet fit --cohort "$dir/heldout" --out "$dir/heldout-run" --normalise none --tau-rnn "$tau" \
  --dt-factor "$dtf" --runs-train 0 --runs-free 1 --start random --init "$dir/init.h5" "$@" >/dev/null
mpirun -n 2 $B/bench/bench_heldout_fit score "$dir/heldout/$id.h5" "$dir/heldout-run/fits/$id.h5" "$K"
