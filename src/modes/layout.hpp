#pragma once
// Rows of the factorization: ordered (target, source) pairs of the cohort's region list, and
// synthetic cohorts with planted modes (for tests, benchmarks and the checks in docs/modes.md).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "modes/nmf.hpp"

namespace cohortnet::modes {

struct PairLayout {
  int R = 0;
  bool self_pairs = false;
  std::vector<std::pair<int, int>> pairs;  // row p -> (target, source), target-major order
  std::vector<int> index;                  // R x R -> row, or -1 (self pairs when excluded)
  int P() const { return int(pairs.size()); }
  int row(int target, int source) const { return index[size_t(target) * size_t(R) + size_t(source)]; }
};
PairLayout make_layout(int R, bool self_pairs);

// Rows present for an animal with the given regions (cohort indices).
std::vector<std::uint8_t> present_rows(const PairLayout& L, const std::vector<int>& regions);

// The row permutation induced by relabelling regions: perm maps region q -> perm[q] (a
// permutation of 0..R-1). new_row[p] = row of (perm[target(p)], perm[source(p)]).
std::vector<int> row_permutation(const PairLayout& L, const std::vector<int>& perm);

// ---- synthetic cohorts ----
struct SyntheticSpec {
  int R = 8;                 // regions
  int A = 12;                // animals
  int K = 4;                 // shared modes
  int T = 300;               // samples per animal (each animal gets T..T*1.5)
  double density = 0.35;     // fraction of non-zero region pairs per mode
  double noise = 0.1;        // noise sd relative to the rms of W H
  double drop_region = 0.1;  // probability an animal lacks a region (at most R/4 dropped)
  int n_states = 3;          // behaviour states (shared meaning across animals)
  // mode_present[a*K + k]: 0 = animal a lacks shared mode k (it gets its own random mode instead
  // if replace_missing). Empty = every animal has every mode.
  std::vector<int> mode_present;
  bool replace_missing = true;
  bool null_cohort = false;  // every animal has its own random modes (nothing shared)
  bool self_pairs = false;
  std::uint64_t seed = 1;
};

struct SyntheticCohort {
  PairLayout layout;
  std::vector<std::string> region_names;
  std::vector<double> W_true;       // P x K, unit-norm columns
  std::vector<AnimalMatrix> animals;
  std::vector<std::vector<double>> H_true;
};
SyntheticCohort make_synthetic(const SyntheticSpec& spec);

}  // namespace cohortnet::modes
