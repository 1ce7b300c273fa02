#pragma once
// `cohortnet report`: the study's HTML report (docs/report.md). The page and its figures are made
// by workflows/report.py (h5py, numpy, matplotlib), run by rank 0; the other ranks wait.
#include <string>

#include "core/options.hpp"

namespace cohortnet {

Command make_report_command();

// The default report script: next to an installed executable (BIN/../share/cohortnet/workflows/
// report.py), else the source tree's workflows/report.py; "" if neither exists.
std::string default_report_script();

}  // namespace cohortnet
