#!/bin/bash
# The ground-truth evaluation of the region-pair currents whose table is in docs/currents.md:
# three-region preset at link strength 0.02 and 0.2, the cohort preset (pathways switched by the
# hidden states) and the cohort preset with constant gains (pathways present or absent), the
# reference (shared@random) and the region prior from the random J0 beside the default (region
# prior, regression start), 3 seeds each.
# Usage: bench/validate_currents.sh BUILD_DIR [OUT_FILE]   (about 11 CPU minutes: 42 fits of 41 runs)
# Extra arguments after OUT_FILE go to `cohortnet validate` (e.g. --prior-ratio 1e-2).
set -e
B="${1:?usage: $0 BUILD_DIR [OUT_FILE] [validate options]}"; OUT="${2:-currents-table.txt}"
shift; shift || true
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$B/bin/cohortnet" validate --out "$OUT" "$@"
