#pragma once
#include "core/options.hpp"

namespace cohortnet {
// `cohortnet validate`: simulate, fit, decompose and compare the region-pair currents with the
// ground truth over several seeds (docs/currents.md).
Command make_validate_command();
}
