#!/bin/bash
# The ground-truth evaluation of the region-pair currents whose table is in docs/currents.md:
# three-region preset at link strength 0.02 and 0.2 and the cohort preset (present and absent
# pathways), reference (shared P) beside the default (region prior), 3 seeds each.
# Usage: bench/validate_currents.sh BUILD_DIR [OUT_FILE]   (about 9 CPU minutes: 21 fits of 41 runs)
# Extra arguments after OUT_FILE go to `cohortnet validate` (e.g. --prior-ratio 1e-2).
set -e
B="${1:?usage: $0 BUILD_DIR [OUT_FILE] [validate options]}"; OUT="${2:-currents-table.txt}"
shift; shift || true
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$B/bin/cohortnet" validate --out "$OUT" "$@"
