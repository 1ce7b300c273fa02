#pragma once
#include "core/options.hpp"

namespace cohortnet {
// `cohortnet ingest`: NWB / .npy / HDF5-array recordings -> a cohort folder (docs/ingest.md).
Command make_ingest_command();
}
