#pragma once
#include "core/options.hpp"
#include "fit/cohort.hpp"

namespace cohortnet {
// `cohortnet fit`: the CURBD fit of every animal of a cohort and its region-pair currents (docs/fit.md).
Command make_fit_command();
namespace fit {
// The fit's options as its command line / [fit] section gives them (also what submit and others
// compare existing outputs with). Throws Error naming the option at fault.
CohortOptions cohort_options_from(const po::variables_map& vm);
}  // namespace fit
}  // namespace cohortnet
