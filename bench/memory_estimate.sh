#!/usr/bin/env bash
# Checks the memory estimate that `cohortnet submit` sizes jobs with against the peak resident memory a
# fit really uses, at 1 and 2 ranks, and prints a 40-animal plan. usage: bench/memory_estimate.sh [N] [T]
# (default N=2100 units, T=1201 samples, dtFactor 5). Takes a few minutes (one training run per rank count).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env.sh
B=${COHORTNET:-build/bin/cohortnet}
N=${1:-2100}; T=${2:-1201}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
per=$((N / 3))
mpirun -n 1 "$B" simulate --preset three-region --units-per-region "$per" --samples "$T" --seed 2 --out "$work/cohort" >/dev/null
cat >"$work/study.ini" <<INI
[fit]
cohort = $work/cohort
out = $work/results
dt-factor = 5
tau-rnn = 0.1
runs-train = 1
runs-free = 0
[submit]
mem-per-node = 24
cores-per-node = 2
INI
echo "N=$((per * 3)) T=$T dtFactor=5"
echo "ranks  measured_peak_MB  estimate_MB  estimate/measured"
for np in 1 2; do
  est=$("$B" submit --config "$work/study.ini" --ranks-per-animal "$np" --dry-run | awk '$1=="a00"{print $5*1000}')
  # The largest resident set of any rank (GNU time reports the largest child).
  peak=$(/usr/bin/time -f "%M" mpirun -n "$np" "$B" fit --config "$work/study.ini" --out "$work/r$np" 2>&1 >/dev/null | tail -1)
  awk -v np="$np" -v m="$peak" -v e="$est" 'BEGIN{printf "%5d  %16.1f  %11.1f  %17.2f\n", np, m/1024, e, e/(m/1024)}'
done
echo
echo "A 40-animal plan (3 regions, $((per * 3))..30000 units, T=$T, 64 GB / 16 cores per node); its first animal"
echo "has the size measured above, so its GB/rank compares with the 1-rank peak:"
/usr/bin/python3 bench/make_sized_cohort.py "$work/c40" 40 $((per * 3)) 30000 "$T" 3 >/dev/null
cat >"$work/study40.ini" <<INI
[fit]
cohort = $work/c40
out = $work/r40
dt-factor = 5
[modes]
input = $work/r40
out = $work/r40
[submit]
mem-per-node = 64
cores-per-node = 16
max-nodes = 4
INI
"$B" submit --config "$work/study40.ini" --dry-run | sed -n "1,46p"
