#pragma once
// The modes analysis on data already in memory: choice of K (block cross-validation and stability
// across starts), the shared fit, and the conservation statistics (docs/modes.md). Every function
// is collective on comm and returns identical results on every rank, whatever the rank count.
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "modes/layout.hpp"
#include "modes/nmf.hpp"

namespace cohortnet::modes {

struct ModesConfig {
  int k = 0;                 // 0 = auto
  int k_min = 1, k_max = 8;  // range tried by --k auto
  int starts = 5;            // random starts of the shared fit (per K)
  int max_iter = 500;
  double tol = 1e-6;
  int inner = 2;
  Reduction reduction = Reduction::ordered;
  // cross-validation
  int folds = 3;
  // How K's held-out error is measured: "animals" (W without the animal, its held-out pieces;
  // the default) or "entries" (held-out pieces of every animal, W fitted on the rest).
  std::string k_cv = "animals";
  int cv_block = 50;         // samples per hold-out block
  double cv_fraction = 0.1;  // fraction of (row, block) pieces held out per fold
  double cv_ridge = 0.01;    // ridge on H in cross-validation fits (columns of W have unit norm)
  // How the per-fold (per-animal) held-out errors of a K are averaged: "geomean" (the mean of their
  // logs: a relative change counts the same in every animal), "mean", or "median".
  std::string k_cv_average = "geomean";
  // K within this relative distance of the best CV error qualify. 0: the lowest error decides. A
  // 2% tolerance (the default until 2026-12-08) chose K = 3 for 4 true modes on fitted demo
  // cohorts where K = 4 had the lowest error (docs/modes.md, "Tolerance").
  double k_cv_tolerance = 0.0;
  double k_min_stability = 0.9;     // ... and must be this stable across starts
  // After the best start: the sparsest modes within 1% of its objective (nmf.hpp, sparsify()).
  bool sparsify = false;
  // conservation
  bool conserve = true;
  int loo_starts = 3;        // starts of every leave-one-out and single-animal fit
  // An animal's own fit also starts from the cohort's modes fitted without it, and that fit is kept
  // when its R2 is within this of the best random start's (-1: random starts only; see own_fit).
  double own_tolerance = 0.01;
  int loo_null = 20;         // label permutations for R2_null per animal
  int permutations = 999;    // label permutations for the per-mode p-values
  double alpha = 0.01;       // family-wise level (Bonferroni over K modes)
  double min_similarity = 0.5;  // ... and the statistic must reach this (effect size)
  double min_observed = 0.2;    // an animal tests mode k if >= this of the mode's squared norm is on its rows
  double presence_alpha = 0.05; // every resolving animal's presence p must be below this
  std::string mode_stat = "min";  // per-mode statistic over animals: min | median | mean
  std::uint64_t seed = 1;
};

struct KSelection {
  std::vector<int> k_values;
  std::vector<int> starts_run;        // per K: random starts run (--starts, more where stability was not determined)
  std::vector<int> starts_at_best;    // per K: starts within 1% of the best objective (stability is over them)
  int n_folds = 0;                    // folds of cv_error: animals (--k-cv animals) or hold-out masks
  std::vector<double> cv_error;       // n_K x n_folds: relative held-out error
  std::vector<double> cv_mean, cv_se;  // per K: the --k-cv-average of the folds; the standard error (of the logs for geomean, relative)
  std::vector<double> stability;      // mean matched congruence of the best start with the others at its objective (NaN: none)
  std::vector<double> objective;      // best training objective per K
  int k_chosen = 0;
  std::string rule, reason;
};

struct ModesResult {
  int P = 0, K = 0, A = 0;
  FitResult fit;                          // the best start
  int best_start = 0;
  std::vector<double> start_objectives;   // every start
  std::vector<std::vector<double>> start_W;
  double stability = 0;  // as KSelection::stability, for the chosen K
  int starts_at_best = 1;
  int sparsify_accepted = -1;             // sparsifying moves kept (-1: --sparsify off)
  double objective_before_sparsify = 0;
  bool have_selection = false;
  KSelection selection;
  // leave-one-animal-out conservation index
  bool have_conservation = false;
  std::vector<double> r2_shared, r2_own, r2_null, index;  // per animal
  std::vector<double> r2_null_samples;    // A x loo_null
  std::vector<std::vector<double>> loo_W; // per animal: W fitted without it, columns aligned to fit.W
  std::vector<std::vector<double>> loo_W_start;  // the same, columns as fitted (the own fits' warm start)
  std::vector<std::vector<double>> own_W; // per animal: its own modes, columns matched to fit.W
  // per-mode similarity and permutation test
  std::vector<double> similarity;         // A x K: own mode vs leave-one-out shared mode (matched)
  std::vector<double> statistic;         // K: mode_stat over animals of similarity
  std::vector<double> null_statistic;    // permutations x K
  std::vector<int> testable;              // A x K: the animal records enough of mode k to test it
  std::vector<double> p_animal;           // A x K: presence test of mode k in animal a (own permutation null)
  std::vector<double> p_ideal;            // A x K: the p a perfect copy of the mode would get (resolution)
  std::vector<int> resolved;              // A x K: testable and p_ideal < presence_alpha
  std::vector<int> n_tested;              // K: resolving animals
  std::vector<double> p_joint;            // K: all animals permuted at once (= p_value)
  std::vector<double> p_presence;         // K: max over resolving animals of p_animal
  std::vector<double> p_value, p_corrected;  // K: the joint p; Bonferroni min(1, K p)
  std::vector<double> mode_gain;          // A x K: R2 lost by animal a without shared mode k (projection on W_{-a})
  std::vector<int> conserved;            // K
  double p_resolution = 0;               // 1 / (1 + permutations)
  // ceiling (spec item 3): own modes refitted from other RNN fits of the same animals
  bool have_ceiling = false;
  int ceiling_sets = 0;                   // number of other fit sets
  std::vector<double> ceiling;            // A x K: mean over sets of cos(own mode k, refit-set own mode k)
  std::vector<double> ceiling_mean;       // K: mean over animals (NaN-free animals)
  // behaviour
  bool have_behaviour = false;
  std::vector<std::string> state_names;
  std::vector<double> profiles;          // A x K x S: mean activation per state / mean activation (NaN if absent)
  std::vector<double> agreement;         // K: mean pairwise correlation of profiles across animals
  double agreement_all = 0;
};

// Adds a blocked, speckled hold-out to a copy of an animal: time is cut into blocks of `block`
// samples, and every (present row, block) piece is held out with probability `fraction`
// (Stream(seed, {kTagHoldout, fold, seed_id})); every block keeps at least one observed row.
AnimalMatrix with_holdout(const AnimalMatrix& a, int fold, std::uint64_t seed, int block, double fraction);

// A random relabelling of the animal's own regions (identity on the others): perm[q] for q in 0..R-1.
std::vector<int> region_permutation(const AnimalMatrix& a, int R, std::uint64_t seed, std::uint64_t draw);
// A copy of the animal with its rows permuted by a region relabelling (targets and sources alike).
AnimalMatrix permuted(const AnimalMatrix& a, const PairLayout& L, const std::vector<int>& perm);

// A K's held-out errors over folds averaged as --k-cv-average says (geomean | mean | median) and
// the standard error of that average; NaN entries are skipped.
std::pair<double, double> cv_average(const std::vector<double>& errors, const std::string& how);

// The K rule on the per-K average held-out errors (NaN: failed): the candidate is the smallest K
// whose error is within `tolerance` of the lowest (tolerance 0: the lowest); if is_stable(candidate)
// fails, the largest stable K below it, else the smallest stable K above it within the tolerance;
// if none, the candidate with stable = false. Indices are into cv_mean.
struct KChoice {
  int index = -1;
  int stepped_down_from = -1;  // the candidate, when the choice stepped down from it
  bool stable = true;
};
KChoice choose_k(const std::vector<double>& cv_mean, double tolerance, const std::function<bool(int)>& is_stable);

// Cross-validation and stability for K = k_min..k_max; fills the selection and picks K.
KSelection select_k(const std::vector<AnimalMatrix>& animals, const PairLayout& L, const ModesConfig& cfg, MPI_Comm comm);

// The whole analysis: selection (if cfg.k == 0), shared fit, conservation (if cfg.conserve),
// behaviour profiles (if state_names is non-empty and animals carry states).
ModesResult run_modes(const std::vector<AnimalMatrix>& animals, const PairLayout& L, const ModesConfig& cfg,
                      const std::vector<std::string>& state_names, MPI_Comm comm);

// Conservation statistics for a fixed K and shared fit (part of run_modes).
void conservation(const std::vector<AnimalMatrix>& animals, const PairLayout& L, const ModesConfig& cfg,
                  ModesResult& res, MPI_Comm comm);

// Ceiling (spec item 3): `sets` holds, per other RNN fit of the same cohort (different fit seed),
// the animals in the same order and layout as `animals`. For every animal and set, its own K modes
// are fitted (as for res.own_W, same starts), matched to res.own_W (Hungarian over the animal's
// rows), and the cosine per mode is averaged over sets: the similarity a perfectly conserved mode
// can be expected to reach, since the fitted J is not unique. Needs conservation() first.
void ceiling(const std::vector<std::vector<AnimalMatrix>>& sets, const PairLayout& L, const ModesConfig& cfg,
             ModesResult& res, MPI_Comm comm);

// Mean matched congruence between a reference W and others (P x K each).
double matched_congruence(const std::vector<double>& ref, const std::vector<std::vector<double>>& others, int P, int K);

// Stability of a set of starts (W and objective each): the mean matched congruence of the best
// start's W with the other starts whose objective is within 1% of the best's. NaN when no other
// start reached it; *n_at_best (optional) counts the starts at the best objective, the best included.
double start_stability(const std::vector<std::vector<double>>& Ws, const std::vector<double>& obj, int best, int P,
                       int K, int* n_at_best);

}  // namespace cohortnet::modes
