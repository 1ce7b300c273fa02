#pragma once
// The memory plan of one animal's fit: every allocation per rank that grows with N, T or M, by
// phase, and the peak. One plan serves the fit's own guard (refuse before allocating), the
// cohort's group sizes (assign_animals) and `cohortnet submit`'s job sizes; bench/memory_estimate.sh
// checks it against measured peaks. Terms (m = ceil(N / ranks) rows per rank, L RNN steps, Ts
// samples of the start, n_max the largest region, S the J row-vector slots of the learner):
//   always    J m N; P (shared m N, region M m N, block m n_max); noise m L; target and rates 2 m T;
//             J's and P's pending terms B (m + S N) (+ B M m region, + B S n_max block)
//   setup     the activity rows m T (freed after the target is made)
//   start     dual: Z, Y, alpha, Z_g, Y_g and one other rank's Z: 6 m Ts; Gram and factor: 4 Ts^2;
//             primal (n = N + n_in < Ts): Z, Y 2 m Ts, all samples n Ts, C and its factor 2 n^2
//   evaluate  (with a held-out split) the model rates m T kept across the noise-free run; the VAR
//             baseline's P x P Gram matrix of the P <= T (1 - holdout) training pairs (up to
//             kMaxVarPairs), its centred pairs 2 m P and predictions m T
//   output    row-major J m N (file order in place), rates m T and a file-order copy, one time
//             chunk of all rates N Tc (Tc = min(T, 8e6 / N): the decomposition by rows), the
//             sums and summaries 12 H M T of the H target regions a rank holds (H = min(M,
//             ceil(M m / N) + 1), units grouped by region) and per-source blocks 2 m n_max +
//             n_max Tc + 2 m Tc
//   checkpoint row-major J m N and one P's rows (region: m N)
#include <cstdint>
#include <string>
#include <vector>

#include "fit/params.hpp"

namespace cohortnet::fit {

struct FitSizes {
  std::int64_t n_units = 0, n_samples = 0;
  int n_regions = 1;
  std::int64_t largest_region = 0;  // 0: unknown (taken as 2 N / M, at most N)
  int n_inputs = 0;
  int ranks = 1;
};

struct MemoryPlan {
  struct Term {
    std::string phase, name;
    double bytes = 0;
  };
  std::vector<Term> terms;
  double always = 0, peak = 0;  // bytes per rank
  std::string peak_phase;
  std::string table() const;  // "phase term GB" lines, for --dry-run and errors
};

MemoryPlan plan_fit_memory(const FitSizes& s, const Params& p);

}  // namespace cohortnet::fit
