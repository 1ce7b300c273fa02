#pragma once
#include <vector>

#include "core/options.hpp"

namespace cohortnet {
// `cohortnet run --config FILE`: the whole study on this machine, stage after stage, each stage
// configured by its own [section] of the same file.
Command make_run_command(const std::vector<Command>& stages);
}  // namespace cohortnet
