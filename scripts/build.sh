#!/usr/bin/env bash
# Configures and builds cohortnet in build/ (Release). Extra arguments go to cmake's configure step.
# On a cluster: load the MPI, PETSc and parallel-HDF5 modules first (docs/build.md).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >build-configure.log 2>&1 || { cat build-configure.log; exit 1; }
cmake --build build -j"$JOBS"
