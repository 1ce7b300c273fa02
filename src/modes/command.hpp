#pragma once
#include "core/options.hpp"
#include "modes/analysis.hpp"
#include "modes/io.hpp"

namespace cohortnet {
// `cohortnet modes`: shared compositional modes of a cohort and their conservation
// (docs/modes.md). Also `--project FILE --modes RESULTS/modes.h5` for a new animal.
Command make_modes_command();

namespace modes {
// The options as the library's structs; throws Error naming the option on a bad value.
void options_from(const po::variables_map& vm, InputSpec& in, ModesConfig& cfg);
}  // namespace modes
}  // namespace cohortnet
