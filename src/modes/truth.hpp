#pragma once
// The modes of a simulated cohort against its ground truth (COHORT/truth/cohort.h5): the answer a
// user cannot check on real data, checked wherever the simulator made the cohort. The recovered
// modes are matched one-to-one to the true ones by cosine over the factorized region pairs
// (Hungarian); a true mode left unmatched scores 0 (docs/modes.md, "Checked against the truth").
#include <mpi.h>

#include <string>
#include <vector>

#include "modes/analysis.hpp"
#include "modes/io.hpp"

namespace cohortnet::modes {

struct TruthCheck {
  bool have = false;              // false: no truth/cohort.h5 found (real data)
  std::string file;
  int k_true = 0, k_found = 0;    // true modes (shared + individual, visible) and recovered
  std::vector<int> visible;       // per true mode: non-zero on the factorized pairs (else not counted)
  std::vector<int> matched;       // per true mode: the recovered mode matched to it, -1 if none
  std::vector<double> cosine;     // per true mode: its cosine with that mode (0 if none)
  std::vector<int> truly_conserved;     // per true mode: the simulator shared it (truth /mode_conserved)
  std::vector<int> called_conserved;    // per true mode: its recovered mode was called conserved
  double mean_cosine = 0;         // over the truly conserved modes, unmatched ones counting 0
  int conserved_found = 0;        // truly conserved modes whose match was called conserved
  int n_conserved = 0;            // truly conserved modes
  int false_conserved = 0;        // true modes not shared by the simulator but called conserved
  double min_cosine = 0.85;       // the pass rule (--truth-min-cosine)
  bool pass = false;
  std::string verdict;            // one sentence: what passed or failed, with the numbers
};

// The truth file of a cohort folder (COHORT/truth/cohort.h5), or "" when there is none.
std::string truth_file_of(const std::string& cohort_dir);

// Compares r's modes with the truth. Pass: K found = true K (or the shared modes' number); mean cosine >= min_cosine; every truly
// conserved mode but at most one matched to a mode called conserved (when conservation ran); no
// mode the simulator did not share called conserved. A null cohort (no mode shared): conservation
// tested and no mode called conserved. Collective (rank 0 reads; result broadcast).
TruthCheck check_truth(const std::string& truth_file, const LoadedCohort& c, const ModesResult& r, double min_cosine,
                       MPI_Comm comm);

}  // namespace cohortnet::modes
