#!/usr/bin/env bash
# The test command of the README: installs what is missing, builds, runs the whole test suite
# (every test at 1, 2 and 3 MPI ranks). Extra arguments go to ctest (e.g. -R fit).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
source scripts/mpi-env.sh
ctest --test-dir build --output-on-failure "$@"
