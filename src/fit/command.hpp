#pragma once
#include "core/options.hpp"

namespace cohortnet {
// `cohortnet fit`: the CURBD fit of every animal of a cohort and its region-pair currents (docs/fit.md).
Command make_fit_command();
}
