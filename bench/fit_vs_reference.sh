#!/bin/bash
# One training run of the default fit (block prior, grouped units; bench_fit) against the plain
# numpy loop of the same algorithm (reference_loop.py), both timed in this run on this machine, so
# the ratio does not depend on which machine the spec's figures came from. The numpy loop runs with
# OpenBLAS at 1 thread and at its default (every core); the faster is the reference.
#   bash bench/fit_vs_reference.sh [BUILD] [N ...]      (default build, 1200 2400; a few minutes)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${1:-$here/../build}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1200 2400)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
py=/usr/bin/python3
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
declare -A ref scaled
for n in "${sizes[@]}"; do
  line1=$(OPENBLAS_NUM_THREADS=1 $py "$here/reference_loop.py" "$n")
  lineall=$(env -u OPENBLAS_NUM_THREADS $py "$here/reference_loop.py" "$n")
  one=$(echo "$line1" | field run_s)
  all=$(echo "$lineall" | field run_s)
  echo "numpy loop N=$n: ${one} s per run (1 thread), ${all} s (OpenBLAS default threads); its update" \
       "$(echo "$line1" | field update_ms) ms, in place with BLAS $(echo "$line1" | field inplace_ms) ms"
  ref[$n]=$(awk -v a="$one" -v b="$all" 'BEGIN { print (a < b ? a : b) }')
  scaled[$n]=$(echo "$line1" | field spec_scaled_s)
done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
OPENBLAS_NUM_THREADS=1 mpirun -n 2 "$B/bench/bench_fit" "${sizes[@]}" --variants block | tee "$log"
echo
echo "spec ref s: the spec's reference run scaled by the in-place BLAS update timed here against the spec's"
echo "(reference_loop.py); the numpy loop timed here is the goal's measure, the scaled figure a cross-check."
echo "| ranks | N | cohortnet run s | x floor | numpy loop s (same run) | x faster | spec ref s (scaled) | x faster |"
echo "|---|---|---|---|---|---|---|---|"
ranks=0
while read -r line; do
  case "$line" in
    "== "*) ranks=$(echo "$line" | awk '{print $2}') ;;
    [0-9]*"block P"*)
      n=$(echo "$line" | awk '{print $1}')
      s=$(echo "$line" | awk '{print $7}')
      xf=$(echo "$line" | awk '{print $9}')
      awk -v r="$ranks" -v n="$n" -v s="$s" -v xf="$xf" -v ref="${ref[$n]}" -v sc="${scaled[$n]:--}" \
        'BEGIN { printf "| %s | %s | %.2f | %.2f | %.2f | %.1f | %s | %s |\n", r, n, s, xf, ref, ref / s, sc,
                 (sc == "-" ? "-" : sprintf("%.1f", sc / s)) }' ;;
  esac
done < "$log"
