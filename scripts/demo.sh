#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and runs the main job on the
# built-in default: a simulated cohort, fitted, decomposed and factorised into modes, under
# mpirun on this machine. Results go to results/demo/. Ranks: NP (default: the number of cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
source scripts/mpi-env.sh
NP=${NP:-$(nproc)}
mkdir -p results
mpirun -n "$NP" build/bin/cohortnet run --config configs/demo.ini "$@"
echo "demo: results in results/demo/ (summary: results/demo/study_summary.txt)"
