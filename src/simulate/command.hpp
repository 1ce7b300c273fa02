#pragma once
#include "core/options.hpp"

namespace cohortnet {
// `cohortnet simulate`: writes a simulated cohort with ground truth (docs/simulate.md).
Command make_simulate_command();
}
