#include "simulate/simulate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>

#include <petscblaslapack.h>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/log.hpp"
#include "core/parallel.hpp"
#include "core/rng.hpp"

namespace cohortnet::sim {

namespace fs = std::filesystem;

namespace {

// Stream ids: Stream(seed, {kTagSimulate, animal, purpose, ...}); cohort-wide draws use kCohort
// in the animal slot, so no animal index can collide with them.
constexpr std::uint64_t kCohort = 0xFFFFFFFFull;
enum Purpose : std::uint64_t {
  kPModes = 1,        // cohort: mode patterns
  kPStateLevels = 2,  // cohort: which modes each state switches on
  kPIndividual = 3,   // cohort: pattern and carriers of the individual mode
  kPMissing = 4,      // cohort: which animals miss which regions
  kPUnits = 5,        // animal: units per region
  kPWithin = 6,       // animal, region: within-region weights
  kPLinks = 7,        // animal, target, source: inter-region links
  kPModeJitter = 8,   // animal, mode: per-animal variation of the mode
  kPStates = 9,       // animal: behaviour state sequence
  kPInit = 10,        // animal, trial: initial state
  kPDrive = 11,       // animal: weights of the state drives
  kPFixed = 12,       // animal, trial: fixed-point input pattern (three-region)
  kPExternal = 13,    // animal, region: which units receive the external input (three-region)
  kPDriveStates = 14, // animal: the drives' own state sequence (--gating hidden)
};

bool is_cohort(const SimulateParams& p) { return p.preset == kPresetCohort; }

constexpr int kMaxDraws = 20;

// The modes' state levels (states x modes) must tell the modes apart: the smallest singular value
// at least 5% of the largest (seeds 1-40 of the demo cohort drew 0.072-0.42, and seed 17 0.007).
constexpr double kMinLevelCondition = 0.05;
constexpr int kMaxLevelDraws = 100;

// sigma_min / sigma_max of an S x K row-major matrix (S >= K), from the eigenvalues of its K x K
// Gram matrix (K is a handful of modes).
double column_condition(const std::vector<double>& m, int S, int K) {
  std::vector<double> G(size_t(K) * size_t(K), 0.0), ev(static_cast<size_t>(K));
  for (int i = 0; i < K; ++i)
    for (int j = 0; j < K; ++j)
      for (int st = 0; st < S; ++st) G[size_t(i) * size_t(K) + size_t(j)] += m[size_t(st) * size_t(K) + size_t(i)] * m[size_t(st) * size_t(K) + size_t(j)];
  PetscBLASInt k = K, lwork = 8 * std::max(K, 1), info = 0;
  std::vector<double> work(static_cast<size_t>(lwork));
  LAPACKsyev_("N", "U", &k, G.data(), &k, ev.data(), work.data(), &lwork, &info);
  if (info != 0 || ev[size_t(K) - 1] <= 0.0) return 0.0;
  return std::sqrt(std::max(ev[0], 0.0) / ev[size_t(K) - 1]);
}

// Dot product with four partial sums (vectorises; a fixed order, so results are reproducible).
inline double dot(const double* a, const double* b, size_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

// Whether an isolated region (weights `w`, n x n) keeps fluctuating: simulated from two random
// states, the mean over units of the temporal std of r from 10 s to 14 s must exceed 0.2 in both
// (chaos gives ~0.5, a fixed point ~0.01; decaying transient chaos, common at these sizes, fails).
bool block_is_active(const std::vector<double>& w, int n, const SimulateParams& p, Stream& s) {
  const size_t nn = size_t(n);
  // A coarser Euler step than the simulation's (at most tau/10): this only screens the draw.
  const double dts = std::min(p.dt / p.dt_factor * 5, p.tau / 10);
  const long warm = std::lround(10.0 / dts), steps = warm + std::lround(4.0 / dts);
  std::vector<double> x(nn), r(nn), sum(nn), sq(nn);
  for (int start = 0; start < 2; ++start) {
    for (auto& xi : x) xi = 2.0 * s.uniform() - 1.0;
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(sq.begin(), sq.end(), 0.0);
    long count = 0;
    for (long step = 0; step < steps; ++step) {
      for (size_t i = 0; i < nn; ++i) r[i] = std::tanh(x[i]);
      if (step >= warm) {
        for (size_t i = 0; i < nn; ++i) sum[i] += r[i], sq[i] += r[i] * r[i];
        ++count;
      }
      for (size_t i = 0; i < nn; ++i) x[i] += dts / p.tau * (-x[i] + dot(&w[i * nn], r.data(), nn));
    }
    double spread = 0;
    for (size_t i = 0; i < nn; ++i) {
      const double mean = sum[i] / double(count);
      spread += std::sqrt(std::max(0.0, sq[i] / double(count) - mean * mean));
    }
    if (spread / double(n) <= 0.2) return false;
  }
  return true;
}

std::string padded(const std::string& prefix, int i, int count) {
  int width = 1;
  for (int c = std::max(count - 1, 1); c >= 10; c /= 10) ++width;
  std::string s = std::to_string(i);
  return prefix + std::string(size_t(std::max(0, width - int(s.size()))), '0') + s;
}

// First `k` elements of a seeded shuffle of 0..n-1 (partial Fisher-Yates).
std::vector<int> choose(Stream& s, int n, int k) {
  std::vector<int> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  for (int i = 0; i < k && i < n; ++i) {
    int j = i + int(s.below(std::uint64_t(n - i)));
    std::swap(idx[size_t(i)], idx[size_t(j)]);
  }
  idx.resize(size_t(std::min(k, n)));
  return idx;
}

template <class T>
std::vector<hsize_t> shape3(T a, T b, T c) {
  return {hsize_t(a), hsize_t(b), hsize_t(c)};
}

void check(bool ok, const std::string& option, const std::string& msg) {
  if (!ok) fail("option --", option, ": ", msg);
}

}  // namespace

std::int64_t CohortPlan::n_units(int animal) const {
  std::int64_t n = 0;
  for (int u : units[size_t(animal)]) n += u;
  return n;
}

SimulateParams default_params(const std::string& preset) {
  SimulateParams p;
  if (preset == kPresetCohort) return p;
  if (preset != kPresetThreeRegion)
    fail("option --preset: unknown preset '", preset, "' (use cohort or three-region)");
  p.preset = kPresetThreeRegion;
  p.animals = 1;
  p.regions = 3;
  p.units_per_region = 100;
  // The reference's threeRegionSim: 5% of each target region's units receive one link each,
  // from the source unit of the same index, all positive; half of B's and C's units are driven.
  p.links = kLinksOneToOne;
  p.link_fraction = 0.05;
  p.link_strength = 0.02;
  p.link_excitatory = 1.0;
  p.external_fraction = 0.5;
  p.drives = kDrivesReference;
  p.drive_amplitude = 0;
  p.missing_fraction = 0;
  return p;
}

void validate_params(const SimulateParams& p) {
  check(p.preset == kPresetCohort || p.preset == kPresetThreeRegion, "preset",
        cat("unknown preset '", p.preset, "' (use cohort or three-region)"));
  check(p.seed <= std::uint64_t(std::numeric_limits<std::int64_t>::max()), "seed", "must be below 2^63");
  check(p.animals >= 1 && p.animals <= 100000, "animals", cat("must be between 1 and 100000, got ", p.animals));
  if (is_cohort(p))
    check(p.regions >= 2 && p.regions <= 1000, "regions",
          cat("needs at least 2 regions (inter-region coupling needs a pair) and at most 1000, got ", p.regions));
  else
    check(p.regions == 3, "regions", cat("preset three-region has exactly 3 regions, got ", p.regions));
  check(p.units_per_region >= 2 && p.units_per_region <= 100000, "units-per-region",
        cat("must be between 2 and 100000, got ", p.units_per_region));
  check(p.unit_variation >= 0 && p.unit_variation < 1, "unit-variation",
        cat("must be in [0, 1), got ", p.unit_variation));
  check(p.samples >= 2, "samples", cat("needs at least 2 samples per trial, got ", p.samples));
  check(p.trials >= 1, "trials", cat("must be at least 1, got ", p.trials));
  check(double(p.samples) * double(p.trials) < 2e9, "samples", "samples x trials is too large");
  check(std::isfinite(p.dt) && p.dt > 0, "dt", cat("sample interval must be > 0 s, got ", p.dt));
  check(p.dt_factor >= 1 && p.dt_factor <= 10000, "dt-factor", cat("must be between 1 and 10000, got ", p.dt_factor));
  check(std::isfinite(p.tau) && p.tau > 0, "tau", cat("must be > 0 s, got ", p.tau));
  check(p.dt / p.dt_factor < p.tau, "dt-factor",
        cat("Euler substep dt/dt-factor = ", p.dt / p.dt_factor, " s must be smaller than --tau ", p.tau,
            " (the integration would be unstable)"));
  check(std::isfinite(p.g) && p.g >= 0, "g", cat("must be >= 0, got ", p.g));
  check(std::isfinite(p.g_undriven) && p.g_undriven >= 0, "g-undriven", cat("must be >= 0, got ", p.g_undriven));
  check(std::isfinite(p.lead_time) && p.lead_time >= 0 && p.lead_time <= 1e4, "lead-time",
        cat("must be between 0 and 1e4 s, got ", p.lead_time));
  check(p.link_fraction >= 0 && p.link_fraction <= 1, "link-fraction", cat("must be in [0, 1], got ", p.link_fraction));
  check(std::isfinite(p.link_strength) && p.link_strength >= 0, "link-strength",
        cat("must be >= 0, got ", p.link_strength));
  check(p.link_excitatory >= 0 && p.link_excitatory <= 1, "link-excitatory",
        cat("must be in [0, 1], got ", p.link_excitatory));
  check(p.links == kLinksRandom || p.links == kLinksOneToOne, "links",
        cat("unknown link pattern '", p.links, "' (use random or one-to-one)"));
  check(p.drives == kDrivesReference || p.drives == kDrivesGaussian, "drives",
        cat("unknown drives '", p.drives, "' (use reference or gaussian)"));
  check(p.external_fraction >= 0 && p.external_fraction <= 1, "external-fraction",
        cat("must be in [0, 1], got ", p.external_fraction));
  check(std::isfinite(p.bump_width) && p.bump_width > 0, "bump-width", cat("must be > 0, got ", p.bump_width));
  check(std::isfinite(p.bump_amplitude), "bump-amplitude", "must be finite");
  check(std::isfinite(p.fixed_amplitude), "fixed-amplitude", "must be finite");
  if (!is_cohort(p)) return;
  const int pairs = p.regions * (p.regions - 1);
  check(p.modes >= 1, "modes", cat("must be at least 1, got ", p.modes));
  check(p.modes <= pairs, "modes",
        cat(p.modes, " modes is more than the ", pairs, " possible (target, source) pairs of ", p.regions, " regions"));
  check(p.pairs_per_mode >= 1 && p.pairs_per_mode <= pairs, "pairs-per-mode",
        cat("must be between 1 and the ", pairs, " possible pairs of ", p.regions, " regions, got ", p.pairs_per_mode));
  check(p.states >= 0 && p.states <= 1000, "states", cat("must be between 1 and 1000 (0: auto), got ", p.states));
  check(std::isfinite(p.dwell) && p.dwell >= p.dt, "dwell",
        cat("mean dwell time must be at least one sample (", p.dt, " s), got ", p.dwell));
  check(std::isfinite(p.ramp) && p.ramp >= 0, "ramp", cat("must be >= 0 s, got ", p.ramp));
  check(std::isfinite(p.mode_variation) && p.mode_variation >= 0 && p.mode_variation <= 10, "mode-variation",
        cat("must be between 0 and 10, got ", p.mode_variation));
  check(p.individual_fraction > 0 && p.individual_fraction < 1, "individual-fraction",
        cat("must be in (0, 1), got ", p.individual_fraction));
  check(p.mode_sharing == kSharingShared || p.mode_sharing == kSharingNone, "mode-sharing",
        cat("unknown mode sharing '", p.mode_sharing, "' (use shared or none)"));
  check(p.mode_sharing == kSharingShared || !p.individual_mode, "mode-sharing",
        "none (every mode is an animal's own) cannot be combined with --individual-mode");
  check(p.missing_fraction >= 0 && p.missing_fraction <= 1, "missing-fraction",
        cat("must be in [0, 1], got ", p.missing_fraction));
  check(p.missing_per_animal >= 0, "missing-per-animal", cat("must be >= 0, got ", p.missing_per_animal));
  if (p.missing_fraction > 0)
    check(p.missing_per_animal <= p.regions - 2, "missing-per-animal",
          cat("an animal must keep at least 2 of the ", p.regions, " regions, so at most ", p.regions - 2,
              " may be missing, got ", p.missing_per_animal));
  check(std::isfinite(p.drive_amplitude) && p.drive_amplitude >= 0, "drive-amplitude",
        cat("must be >= 0, got ", p.drive_amplitude));
  check(p.gating == kGatingStates || p.gating == kGatingConstant || p.gating == kGatingSource ||
            p.gating == kGatingHidden, "gating",
        cat("unknown gating '", p.gating, "' (use states, constant, source or hidden)"));
  check(p.gating != kGatingSource || p.drive_amplitude > 0, "gating",
        "source needs the state drives (--drive-amplitude > 0)");
  check(std::isfinite(p.gating_lag) && p.gating_lag >= 0, "gating-lag", cat("must be >= 0 s, got ", p.gating_lag));
  check(p.gating_lag == 0 || p.gating == kGatingStates, "gating-lag",
        cat("applies to --gating states only (gating is ", p.gating, ")"));
}

int n_states(const SimulateParams& p) {
  if (p.states > 0) return p.states;
  return std::max(3, p.modes + (p.individual_mode ? 1 : 0));
}

CohortPlan make_plan(const SimulateParams& p) {
  validate_params(p);
  CohortPlan plan;
  const int A = p.animals;
  for (int a = 0; a < A; ++a) plan.animal_ids.push_back(padded("a", a, std::max(A, 100)));
  if (!is_cohort(p)) {
    plan.regions = {"A", "B", "C"};
    plan.animal_regions.assign(size_t(A), {0, 1, 2});
    plan.units.assign(size_t(A), std::vector<int>(3, p.units_per_region));
    return plan;
  }
  const int R = p.regions, RR = R * R;
  for (int r = 0; r < R; ++r) plan.regions.push_back(padded("R", r, R));
  std::vector<int> pairs;  // q*R + s, q != s
  for (int q = 0; q < R; ++q)
    for (int s = 0; s < R; ++s)
      if (q != s) pairs.push_back(q * R + s);
  const int P = int(pairs.size());

  // Shared modes: a few (target, source) pairs each, weights in [0.6, 1] ("0/1-ish"). A null
  // cohort draws them per animal (its own stream): A groups of K0 modes, each carried by one animal.
  const bool null_cohort = p.mode_sharing == kSharingNone;
  const int K0 = p.modes, groups = null_cohort ? A : 1;
  plan.n_modes = K0 * groups + (p.individual_mode ? 1 : 0);
  const int K = plan.n_modes;
  plan.modes.assign(size_t(K) * size_t(RR), 0.0);
  std::vector<int> used(size_t(RR), 0);
  for (int g = 0; g < groups; ++g) {
    Stream s(p.seed, {kTagSimulate, null_cohort ? std::uint64_t(g) : kCohort, kPModes});
    for (int k = g * K0; k < (g + 1) * K0; ++k)
      for (int i : choose(s, P, p.pairs_per_mode)) {
        plan.modes[size_t(k) * size_t(RR) + size_t(pairs[size_t(i)])] = 0.6 + 0.4 * s.uniform();
        used[size_t(pairs[size_t(i)])] = 1;
      }
  }
  plan.mode_has.assign(size_t(A) * size_t(K), 1);
  if (null_cohort)
    for (int a = 0; a < A; ++a)
      for (int k = 0; k < K; ++k) plan.mode_has[size_t(a) * size_t(K) + size_t(k)] = k / K0 == a ? 1 : 0;
  if (p.individual_mode) {
    // Prefer pairs no shared mode uses, so the individual mode is visible on its own.
    Stream s(p.seed, {kTagSimulate, kCohort, kPIndividual});
    std::vector<int> fresh, old;
    for (int pr : pairs) (used[size_t(pr)] ? old : fresh).push_back(pr);
    std::vector<int> pool;
    for (int i : choose(s, int(fresh.size()), int(fresh.size()))) pool.push_back(fresh[size_t(i)]);
    for (int i : choose(s, int(old.size()), int(old.size()))) pool.push_back(old[size_t(i)]);
    plan.individual = K0;
    for (int i = 0; i < p.pairs_per_mode; ++i)
      plan.modes[size_t(K0) * size_t(RR) + size_t(pool[size_t(i)])] = 0.6 + 0.4 * s.uniform();
    int n_ind = int(std::lround(p.individual_fraction * A));
    n_ind = std::clamp(n_ind, 1, std::max(1, A - 1));
    for (int a = 0; a < A; ++a) plan.mode_has[size_t(a) * size_t(K) + size_t(K0)] = 0;
    for (int a : choose(s, A, n_ind)) plan.mode_has[size_t(a) * size_t(K) + size_t(K0)] = 1;
  }

  // Which modes each behaviour state switches on: mode k is on in a "home" state (the states are
  // shared out first so each gets a mode when K >= states) and in any other with probability 0.3.
  // Two modes with the same on/off pattern would have proportional activations (indistinguishable
  // by any factorization), so a pattern equal to an earlier mode's is redrawn while distinct
  // patterns exist (2^S - 1 >= K). Distinct patterns are not enough: seed 17's four level vectors
  // were distinct yet one was within 0.7% of a combination of the others (smallest singular value
  // 0.007 of the largest), so its truth held three identifiable modes, not four. With S >= K the
  // whole draw is repeated until the levels matrix is well conditioned (kMinLevelCondition); the
  // first draw is kept whenever it passes, so other seeds' cohorts are unchanged.
  {
    // A null cohort: every animal's k-th mode switches with the states as the shared cohort's
    // k-th would (the levels of its first K0 modes, repeated), so only the pathways differ.
    Stream s(p.seed, {kTagSimulate, kCohort, kPStateLevels});
    const int S = n_states(p), KL = K / groups;
    plan.state_levels.assign(size_t(S) * size_t(K), 0.0);
    const bool can_differ = S >= 20 || (1L << S) - 1 >= KL;
    std::vector<double> levels(size_t(S) * size_t(KL));  // S x KL, this draw's
    for (int draw = 1;; ++draw) {
      std::vector<int> home_order = choose(s, S, S);
      std::vector<std::vector<int>> patterns;
      for (int k = 0; k < KL; ++k) {
        std::vector<double> lv(static_cast<size_t>(S));
        std::vector<int> on(static_cast<size_t>(S));
        for (int attempt = 0; attempt < 1000; ++attempt) {
          const int home = k < S ? home_order[size_t(k)] : int(s.below(std::uint64_t(S)));
          for (int st = 0; st < S; ++st) {
            const double u = s.uniform(), level = 0.6 + 0.4 * s.uniform();
            on[size_t(st)] = (st == home || u < 0.3) ? 1 : 0;
            lv[size_t(st)] = on[size_t(st)] ? level : 0.0;
          }
          if (!can_differ || std::find(patterns.begin(), patterns.end(), on) == patterns.end()) break;
        }
        patterns.push_back(on);
        for (int st = 0; st < S; ++st) levels[size_t(st) * size_t(KL) + size_t(k)] = lv[size_t(st)];
      }
      plan.state_levels_draws = draw;
      plan.state_levels_condition = S >= KL ? column_condition(levels, S, KL) : 0.0;
      if (S < KL || plan.state_levels_condition >= kMinLevelCondition || draw == kMaxLevelDraws) break;
    }
    if (S >= KL && plan.state_levels_condition < kMinLevelCondition)
      log::warn(MPI_COMM_SELF, "simulate: seed ", p.seed, ": the modes' state levels stay ill-conditioned after ", kMaxLevelDraws,
                " draws (smallest/largest singular value ", plan.state_levels_condition, ")");
    for (int g = 0; g < groups; ++g)
      for (int st = 0; st < S; ++st)
        for (int k = 0; k < KL; ++k)
          plan.state_levels[size_t(st) * size_t(K) + size_t(g * KL + k)] = levels[size_t(st) * size_t(KL) + size_t(k)];
  }

  // Missing regions.
  std::vector<std::vector<int>> missing(static_cast<size_t>(A));
  {
    Stream s(p.seed, {kTagSimulate, kCohort, kPMissing});
    const int n_miss = p.missing_per_animal > 0 ? int(std::lround(p.missing_fraction * A)) : 0;
    std::vector<int> who = choose(s, A, n_miss);
    std::sort(who.begin(), who.end());
    for (int a : who) missing[size_t(a)] = choose(s, R, p.missing_per_animal);
  }
  for (int a = 0; a < A; ++a) {
    Stream s(p.seed, {kTagSimulate, std::uint64_t(a), kPUnits});
    std::vector<int> regs, units;
    for (int r = 0; r < R; ++r) {
      const double f = 1.0 + p.unit_variation * (2.0 * s.uniform() - 1.0);
      const int n = std::max(2, int(std::lround(p.units_per_region * f)));
      if (std::find(missing[size_t(a)].begin(), missing[size_t(a)].end(), r) != missing[size_t(a)].end()) continue;
      regs.push_back(r);
      units.push_back(n);
    }
    plan.animal_regions.push_back(regs);
    plan.units.push_back(units);
  }
  plan.mode_present.assign(size_t(A) * size_t(K), 0);
  for (int a = 0; a < A; ++a) {
    std::vector<int> here(size_t(R), 0);
    for (int r : plan.animal_regions[size_t(a)]) here[size_t(r)] = 1;
    for (int k = 0; k < K; ++k) {
      if (!plan.mode_has[size_t(a) * size_t(K) + size_t(k)]) continue;
      for (int q = 0; q < R; ++q)
        for (int sr = 0; sr < R; ++sr)
          if (here[size_t(q)] && here[size_t(sr)] && plan.modes[size_t(k) * size_t(RR) + size_t(q * R + sr)] > 0)
            plan.mode_present[size_t(a) * size_t(K) + size_t(k)] = 1;
    }
  }
  return plan;
}

SimulatedAnimal simulate_animal(const SimulateParams& p, const CohortPlan& plan, int animal) {
  const bool cohort = is_cohort(p);
  const std::uint64_t ua = std::uint64_t(animal);
  const std::vector<int>& reg = plan.animal_regions[size_t(animal)];
  const std::vector<int>& sizes = plan.units[size_t(animal)];
  const int M = int(reg.size()), R = plan.n_regions(), K = plan.n_modes;
  const size_t MM = size_t(M) * size_t(M);
  std::vector<int> off(size_t(M) + 1, 0);
  for (int m = 0; m < M; ++m) off[size_t(m) + 1] = off[size_t(m)] + sizes[size_t(m)];
  const int N = off[size_t(M)];
  const int T = p.samples * p.trials;
  const size_t NN = size_t(N), TT = size_t(T);

  SimulatedAnimal out;
  AnimalMeta& meta = out.meta;
  meta.animal_id = plan.animal_ids[size_t(animal)];
  meta.species = "simulated";
  meta.atlas = "none";
  meta.provenance = cat("cohortnet simulate, preset ", p.preset, ", seed ", p.seed,
                        "; ground truth in truth/", meta.animal_id, ".h5 (docs/simulate.md)");
  meta.sample_interval = p.dt;
  meta.n_units = N;
  meta.n_samples = T;
  for (int r : reg) meta.region_names.push_back(plan.regions[size_t(r)]);
  for (int m = 0; m < M; ++m) meta.unit_region.insert(meta.unit_region.end(), size_t(sizes[size_t(m)]), m);
  for (int tr = 0; tr < p.trials; ++tr) meta.trial_starts.push_back(std::int64_t(tr) * p.samples);

  // This animal's version of every mode over its own regions (zero where it lacks the mode).
  out.mode_patterns.assign(size_t(K) * MM, 0.0);
  for (int k = 0; k < K; ++k) {
    Stream s(p.seed, {kTagSimulate, ua, kPModeJitter, std::uint64_t(k)});
    std::vector<double> full(size_t(R) * size_t(R));
    for (auto& f : full) f = std::max(0.0, 1.0 + p.mode_variation * s.normal());
    if (!plan.mode_has[size_t(animal) * size_t(K) + size_t(k)]) continue;
    for (int q = 0; q < M; ++q)
      for (int sr = 0; sr < M; ++sr) {
        const size_t g = size_t(reg[size_t(q)]) * size_t(R) + size_t(reg[size_t(sr)]);
        out.mode_patterns[size_t(k) * MM + size_t(q) * size_t(M) + size_t(sr)] =
            plan.modes[size_t(k) * size_t(R) * size_t(R) + g] * full[g];
      }
  }

  // Structural weights: dense chaotic blocks within regions, sparse links between coupled regions.
  // A finite random network with g > 1 can settle into a fixed point instead of chaos (often, at
  // 50-100 units); such a draw is replaced by the next (attempt) stream, so every region is
  // active on its own. out.region_draws records how many draws each region took.
  out.J.assign(NN * NN, 0.0);
  out.region_draws.assign(size_t(M), 0);
  double* J = out.J.data();
  for (int m = 0; m < M; ++m) {
    const int n = sizes[size_t(m)];
    const double gain = (!cohort && m == 0) ? p.g_undriven : p.g;
    const double scale = gain / std::sqrt(double(n));
    std::vector<double> block(size_t(n) * size_t(n));
    for (int attempt = 0;; ++attempt) {
      Stream s(p.seed, {kTagSimulate, ua, kPWithin, std::uint64_t(reg[size_t(m)]), std::uint64_t(attempt)});
      for (auto& w : block) w = scale * s.normal();
      out.region_draws[size_t(m)] = attempt + 1;
      if (gain <= 1.0 || attempt + 1 >= kMaxDraws || block_is_active(block, n, p, s)) break;
    }
    for (int i = 0; i < n; ++i)
      std::copy(block.begin() + long(i) * n, block.begin() + long(i + 1) * n,
                J + size_t(off[size_t(m)] + i) * NN + size_t(off[size_t(m)]));
  }
  out.pair_coupled.assign(MM, 0);
  for (int q = 0; q < M; ++q)
    for (int sr = 0; sr < M; ++sr) {
      if (q == sr) continue;
      bool wanted = !cohort;
      for (int k = 0; k < K; ++k) wanted = wanted || out.mode_patterns[size_t(k) * MM + size_t(q) * size_t(M) + size_t(sr)] > 0;
      if (!wanted || p.link_fraction <= 0 || p.link_strength <= 0) continue;
      Stream s(p.seed, {kTagSimulate, ua, kPLinks, std::uint64_t(reg[size_t(q)]), std::uint64_t(reg[size_t(sr)])});
      int links = 0;
      auto link = [&](int i, int j) {
        J[size_t(i) * NN + size_t(j)] = (s.uniform() < p.link_excitatory ? 1.0 : -1.0) * p.link_strength;
        ++links;
      };
      if (p.links == kLinksOneToOne) {
        // round(link_fraction * n_Q) target units (at least 1), unit k of Q fed by unit k of S
        // (k modulo n_S when S is smaller).
        const int nq = sizes[size_t(q)], nsrc = sizes[size_t(sr)];
        const int k = std::max(1, int(std::lround(p.link_fraction * nq)));
        for (int i : choose(s, nq, k)) link(off[size_t(q)] + i, off[size_t(sr)] + i % nsrc);
      } else {
        for (int i = off[size_t(q)]; i < off[size_t(q) + 1]; ++i)
          for (int j = off[size_t(sr)]; j < off[size_t(sr) + 1]; ++j)
            if (s.uniform() < p.link_fraction) link(i, j);
      }
      // A coupled pair gets at least one link, so "coupled" always means a real path.
      if (links == 0)
        link(off[size_t(q)] + int(s.below(std::uint64_t(sizes[size_t(q)]))),
             off[size_t(sr)] + int(s.below(std::uint64_t(sizes[size_t(sr)]))));
      out.pair_coupled[size_t(q) * size_t(M) + size_t(sr)] = 1;
    }

  // Hidden behaviour state: a Markov chain with dwell times of 0.5..(many) x --dwell.
  // Every animal visits every state (a mode switched on only in an unvisited state would be
  // unused: an animal would "lack" a conserved mode by chance): states come in rounds, each a
  // random order of all S states (no state twice in a row across rounds), and a dwell is at most
  // T/S samples so the first round always fits in the recording.
  const int S = cohort ? n_states(p) : 0;
  auto state_sequence = [&](Purpose purpose) {
    Stream s(p.seed, {kTagSimulate, ua, purpose});
    std::vector<int> seq(TT);
    const double mean_samples = p.dwell / p.dt;
    const double cap = std::max(1.0, std::floor(double(TT) / double(S)));
    size_t t = 0;
    int last = -1;
    while (t < TT) {
      std::vector<int> order = choose(s, S, S);
      if (S > 1 && order[0] == last) std::swap(order[0], order[size_t(S) - 1]);
      for (int st : order) {
        const double e = -std::log(s.uniform_open());
        const size_t d = size_t(std::min(cap, std::max(1.0, std::round(mean_samples * (0.5 + 0.5 * e)))));
        for (size_t i = 0; i < d && t < TT; ++i, ++t) seq[t] = st;
        last = st;
        if (t >= TT) break;
      }
    }
    return seq;
  };
  // The states the drives (/inputs) follow: the behaviour's, or with --gating hidden a sequence
  // of their own, independent of the one that gates the pathways.
  std::vector<int> drive_states;
  if (cohort) {
    const std::vector<int> seq = state_sequence(kPStates);
    out.states.assign(seq.begin(), seq.end());
    drive_states = p.gating == kGatingHidden ? state_sequence(kPDriveStates) : seq;
    for (int i = 0; i < S; ++i) meta.behaviour_names.push_back(cat("state", i));
    meta.behaviour.assign(out.states.begin(), out.states.end());
  }
  // Three-region: round(external_fraction * n) units of B and of C receive their drive.
  std::vector<double> driven(NN, cohort ? 1.0 : 0.0);
  if (!cohort)
    for (int m = 1; m < 3; ++m) {
      Stream s(p.seed, {kTagSimulate, ua, kPExternal, std::uint64_t(m)});
      const int n = sizes[size_t(m)], k = int(std::lround(p.external_fraction * n));
      for (int i : choose(s, n, k)) driven[size_t(off[size_t(m)] + i)] = 1.0;
    }

  std::vector<size_t> driven_units;  // three-region with drives_as_inputs: input c = drive of this unit
  if (!cohort && p.drives_as_inputs)
    for (size_t i = 0; i < NN; ++i)
      if (driven[i] > 0) driven_units.push_back(i);
  // External drives: cohort: one smoothed indicator per state, weights per unit; three-region:
  // a moving bump into B and a constant random pattern per trial into C.
  const int n_in = (cohort && p.drive_amplitude > 0) ? S : int(driven_units.size());
  std::vector<double> B(cohort ? NN * size_t(n_in) : 0);
  if (cohort && n_in > 0) {
    Stream s(p.seed, {kTagSimulate, ua, kPDrive});
    for (auto& b : B) b = p.drive_amplitude * s.normal();
    if (p.gating == kGatingSource)
      // State c drives only region c mod M (the same draws, scaled; zero elsewhere).
      for (int q = 0; q < M; ++q)
        for (int i = off[size_t(q)]; i < off[size_t(q) + 1]; ++i)
          for (int c = 0; c < n_in; ++c)
            B[size_t(i) * size_t(n_in) + size_t(c)] *= (c % M == q) ? kSourceDriveFactor : 0.0;
    for (int i = 0; i < S; ++i) meta.input_names.push_back(cat("drive_state", i));
  }
  for (size_t i : driven_units) meta.input_names.push_back(cat("drive_unit", i));
  const double trial_len = double(p.samples - 1) * p.dt;
  // The reference's drive of unit k of n at time t (s from the trial's first sample): a Gaussian
  // bump over the units, sigma = bump_width * n, whose centre moves from sigma by n units every
  // half trial, passed through log((x + 0.01) / (1 - x + 0.01)) and scaled to [0, 1].
  auto reference_bump = [&](int k, int n, double t) {
    const double sig = p.bump_width * double(n);
    const double z = (double(k) - sig - double(n) * t / (0.5 * trial_len)) / sig;
    const double x = std::exp(-0.5 * z * z), H = std::log(101.0);
    return (std::log((x + 0.01) / (1.0 - x + 0.01)) + H) / (2.0 * H);
  };
  out.rates.assign(NN * TT, 0.0);
  out.external.assign(NN * TT, 0.0);
  out.inputs.assign(size_t(n_in) * TT, 0.0);
  out.gains.assign(MM * TT, 0.0);
  out.mode_activations.assign(size_t(K) * TT, 0.0);
  for (auto* v : {&out.cur_mean, &out.cur_rms, &out.exc_mean, &out.exc_rms, &out.inh_mean, &out.inh_rms})
    v->assign(MM * TT, 0.0);
  out.pathway_strength.assign(MM, 0.0);  // sums of squares of the ungated currents until the end

  const double dts = p.dt / p.dt_factor;
  const long lead_steps = std::lround(p.lead_time / dts);
  const double relax = p.ramp > 0 ? std::min(1.0, dts / p.ramp) : 1.0;
  std::vector<double> act(static_cast<size_t>(K), 0.0), ind(static_cast<size_t>(S), 0.0);
  std::vector<double> target(static_cast<size_t>(K)), itarget(static_cast<size_t>(S));
  // st: the state the drives follow; st_gain: the one the modes' activations follow (--gating-lag).
  auto set_targets = [&](int st, int st_gain) {
    for (int k = 0; k < K; ++k)
      target[size_t(k)] = plan.mode_has[size_t(animal) * size_t(K) + size_t(k)]
                              ? plan.state_levels[size_t(st_gain) * size_t(K) + size_t(k)] : 0.0;
    for (int i = 0; i < S; ++i) itarget[size_t(i)] = i == st ? 1.0 : 0.0;
  };
  const long lag_samples = std::lround(p.gating_lag / p.dt);
  // --gating constant: every mode at its mean level over the states, for the whole recording.
  const bool constant_gains = cohort && (p.gating == kGatingConstant || p.gating == kGatingSource);
  std::vector<double> mean_level(static_cast<size_t>(K), 0.0);
  for (int k = 0; constant_gains && k < K; ++k) {
    if (!plan.mode_has[size_t(animal) * size_t(K) + size_t(k)]) continue;
    for (int st = 0; st < S; ++st) mean_level[size_t(k)] += plan.state_levels[size_t(st) * size_t(K) + size_t(k)];
    mean_level[size_t(k)] /= double(S);
  }
  if (cohort) {
    set_targets(drive_states[0], int(out.states[0]));
    act = target;
    ind = itarget;
  }
  std::vector<double> x(NN), r(NN), u(NN), y(NN), G(MM), fixed(NN, 0.0);
  // The positive and negative parts of J, for the excitatory / inhibitory currents.
  std::vector<double> Jpos(NN * NN), Jneg(NN * NN);
  for (size_t k = 0; k < NN * NN; ++k) {
    Jpos[k] = J[k] > 0 ? J[k] : 0.0;
    Jneg[k] = J[k] < 0 ? J[k] : 0.0;
  }
  const double k_rel = dts / p.tau;
  for (int tr = 0; tr < p.trials; ++tr) {
    {
      Stream s(p.seed, {kTagSimulate, ua, kPInit, std::uint64_t(tr)});
      for (auto& xi : x) xi = 2.0 * s.uniform() - 1.0;
    }
    if (!cohort) {
      Stream s(p.seed, {kTagSimulate, ua, kPFixed, std::uint64_t(tr)});
      for (int i = off[2]; i < off[3]; ++i) fixed[size_t(i)] = p.fixed_amplitude * s.normal();
    }
    const long last = long(p.samples - 1) * p.dt_factor;
    for (long step = -lead_steps;; ++step) {
      const double time = double(step) * dts;  // seconds from the trial's first sample
      const size_t t = size_t(tr) * size_t(p.samples) + size_t(step > 0 ? step / p.dt_factor : 0);
      for (size_t i = 0; i < NN; ++i) r[i] = std::tanh(x[i]);
      // Effective gains of this step.
      for (int q = 0; q < M; ++q)
        for (int sr = 0; sr < M; ++sr) {
          double gq = 0;
          const size_t qs = size_t(q) * size_t(M) + size_t(sr);
          if (q == sr) gq = 1;
          else if (out.pair_coupled[qs]) {
            if (!cohort) gq = 1;
            else
              for (int k = 0; k < K; ++k) gq += (constant_gains ? mean_level[size_t(k)] : act[size_t(k)]) *
                                                out.mode_patterns[size_t(k) * MM + qs];
          }
          G[qs] = gq;
        }
      // External input of this step.
      if (cohort) {
        for (size_t i = 0; i < NN; ++i) {
          double v = 0;
          for (int c = 0; c < n_in; ++c) v += B[i * size_t(n_in) + size_t(c)] * ind[size_t(c)];
          u[i] = v;
        }
      } else if (p.drives == kDrivesReference) {
        const double tc = std::clamp(time, 0.0, trial_len);
        for (int i = off[1]; i < off[2]; ++i)
          u[size_t(i)] = driven[size_t(i)] * p.bump_amplitude * reference_bump(i - off[1], sizes[1], std::min(tc, 0.4 * trial_len));
        const double tfp = tc < 0.6 * trial_len ? 0.01 * trial_len : 0.3 * trial_len;
        for (int i = off[2]; i < off[3]; ++i)
          u[size_t(i)] = -driven[size_t(i)] * p.fixed_amplitude * reference_bump(i - off[2], sizes[2], tfp);
      } else {
        for (int i = off[1]; i < off[2]; ++i) {
          const double centre = (double(i - off[1]) + 0.5) / double(sizes[1]) * trial_len;
          const double z = (time - centre) / p.bump_width;
          u[size_t(i)] = driven[size_t(i)] * p.bump_amplitude * std::exp(-0.5 * z * z);
        }
        for (int i = off[2]; i < off[3]; ++i) u[size_t(i)] = driven[size_t(i)] * fixed[size_t(i)];
      }
      const bool record = step >= 0 && step % p.dt_factor == 0;
      if (record) {
        for (size_t i = 0; i < NN; ++i) {
          out.rates[i * TT + t] = r[i];
          out.external[i * TT + t] = u[i];
        }
        for (size_t qs = 0; qs < MM; ++qs) out.gains[qs * TT + t] = G[qs];
        for (int k = 0; k < K; ++k) out.mode_activations[size_t(k) * TT + t] = act[size_t(k)];
        if (cohort)
          for (int c = 0; c < n_in; ++c) out.inputs[size_t(c) * TT + t] = ind[size_t(c)];
        else
          for (size_t c = 0; c < driven_units.size(); ++c) out.inputs[c * TT + t] = u[driven_units[c]];
        // Region-pair currents with the effective weights of this sample.
        for (int q = 0; q < M; ++q)
          for (int sr = 0; sr < M; ++sr) {
            const size_t qs = size_t(q) * size_t(M) + size_t(sr);
            double sm = 0, ss = 0, pm = 0, ps = 0, nm = 0, ns = 0;
            for (int i = off[size_t(q)]; i < off[size_t(q) + 1]; ++i) {
              const size_t j0 = size_t(i) * NN + size_t(off[size_t(sr)]), ns_ = size_t(sizes[size_t(sr)]);
              const double* rs = r.data() + off[size_t(sr)];
              double cp = dot(Jpos.data() + j0, rs, ns_), cn = dot(Jneg.data() + j0, rs, ns_);
              out.pathway_strength[qs] += (cp + cn) * (cp + cn);  // ungated, also while the gain is 0
              cp *= G[qs];
              cn *= G[qs];
              const double c = cp + cn;
              sm += c;
              ss += c * c;
              pm += cp;
              ps += cp * cp;
              nm += cn;
              ns += cn * cn;
            }
            const double n = double(sizes[size_t(q)]);
            const size_t at = qs * TT + t;
            out.cur_mean[at] = sm / n;
            out.cur_rms[at] = std::sqrt(ss / n);
            out.exc_mean[at] = pm / n;
            out.exc_rms[at] = std::sqrt(ps / n);
            out.inh_mean[at] = nm / n;
            out.inh_rms[at] = std::sqrt(ns / n);
          }
      }
      if (step == last) break;
      // Euler step: tau dx/dt = -x + J_eff(t) tanh(x) + u(t).
      for (int q = 0; q < M; ++q)
        for (int i = off[size_t(q)]; i < off[size_t(q) + 1]; ++i) {
          const double* Ji = J + size_t(i) * NN;
          double acc = 0;
          for (int sr = 0; sr < M; ++sr) {
            const double gq = G[size_t(q) * size_t(M) + size_t(sr)];
            if (gq == 0) continue;
            const size_t j0 = size_t(off[size_t(sr)]);
            acc += gq * dot(Ji + j0, r.data() + j0, size_t(sizes[size_t(sr)]));
          }
          y[size_t(i)] = acc;
        }
      for (size_t i = 0; i < NN; ++i) x[i] += k_rel * (-x[i] + y[i] + u[i]);
      if (cohort) {
        // The state of the sample this step belongs to (the first one during the lead-in).
        const size_t trial0 = size_t(tr) * size_t(p.samples), in_trial = t - trial0;
        const size_t tg = in_trial >= size_t(lag_samples) ? t - size_t(lag_samples) : trial0;
        set_targets(drive_states[t], int(out.states[tg]));
        for (int k = 0; k < K; ++k) act[size_t(k)] += relax * (target[size_t(k)] - act[size_t(k)]);
        for (int i = 0; i < S; ++i) ind[size_t(i)] += relax * (itarget[size_t(i)] - ind[size_t(i)]);
      }
    }
  }
  for (size_t qs = 0; qs < MM; ++qs) {
    const double n = double(sizes[qs / size_t(M)]) * double(TT);
    out.pathway_strength[qs] = n > 0 ? std::sqrt(out.pathway_strength[qs] / n) : 0.0;
  }
  if (cohort) {
    out.mode_active_fraction.assign(size_t(K), 0.0);
    for (int k = 0; k < K; ++k) {
      size_t on = 0;
      for (size_t t = 0; t < TT; ++t) on += out.mode_activations[size_t(k) * TT + t] > kModeActive ? 1 : 0;
      out.mode_active_fraction[size_t(k)] = TT > 0 ? double(on) / double(TT) : 0.0;
    }
  }
  return out;
}

namespace {

void set_record_attrs(const h5::File& f, const SimulateParams& p) {
  h5::set_attr(f, "/", "seed", std::int64_t(p.seed));
  h5::set_attr(f, "/", "preset", p.preset);
  h5::set_attr(f, "/", "config", p.config);
}

void write_animal_file(const SimulateParams& p, const SimulatedAnimal& a, const std::string& path) {
  // Written under a temporary name, given the record attributes, then renamed: the final name
  // only ever holds a complete file.
  const std::string tmp = path + ".writing";
  RowRange rows = own_rows(PetscInt(a.meta.n_units), MPI_COMM_SELF);
  write_animal(tmp, a.meta, rows, a.rates, a.inputs, MPI_COMM_SELF);
  {
    h5::File f = h5::open_rw(tmp, MPI_COMM_SELF);
    set_record_attrs(f, p);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) fail("file ", path, ": cannot rename the finished animal file into place: ", ec.message());
}

void write_truth_file(const SimulateParams& p, const SimulatedAnimal& a, int K, const std::string& path) {
  const hsize_t M = hsize_t(a.meta.n_regions()), N = hsize_t(a.meta.n_units), T = hsize_t(a.meta.n_samples);
  h5::AtomicFile out(path, MPI_COMM_SELF);
  h5::File& f = out.file();
  set_record_attrs(f, p);
  h5::set_attr(f, "/", "animal_id", a.meta.animal_id);
  h5::set_attr(f, "/", "sample_interval", a.meta.sample_interval);
  h5::write_doubles(f, "/current_mean", shape3(M, M, T), a.cur_mean.data());
  h5::write_doubles(f, "/current_rms", shape3(M, M, T), a.cur_rms.data());
  h5::write_doubles(f, "/current_exc_mean", shape3(M, M, T), a.exc_mean.data());
  h5::write_doubles(f, "/current_exc_rms", shape3(M, M, T), a.exc_rms.data());
  h5::write_doubles(f, "/current_inh_mean", shape3(M, M, T), a.inh_mean.data());
  h5::write_doubles(f, "/current_inh_rms", shape3(M, M, T), a.inh_rms.data());
  h5::write_ints(f, "/pair_coupled", {M, M}, a.pair_coupled.data());
  h5::write_ints(f, "/region_draws", {M}, a.region_draws.data());
  h5::write_doubles(f, "/gains", shape3(M, M, T), a.gains.data());
  h5::write_doubles(f, "/J", {N, N}, a.J.data());
  // The same pathway strength as the fit's output (modes --summary pathways).
  h5::write_doubles(f, "/pathway_strength", {M, M}, a.pathway_strength.data());
  h5::set_attr(f, "/pathway_strength", "definition", kPathwayStrengthDefinition);
  h5::write_doubles(f, "/rates", {N, T}, a.rates.data());
  h5::write_doubles(f, "/external", {N, T}, a.external.data());
  std::vector<std::int64_t> labels(a.meta.unit_region.begin(), a.meta.unit_region.end());
  h5::write_ints(f, "/unit_region", {N}, labels.data());
  h5::write_strings(f, "/region_names", a.meta.region_names);
  if (p.preset == kPresetCohort) {
    h5::write_doubles(f, "/mode_activations", {hsize_t(K), T}, a.mode_activations.data());
    h5::write_doubles(f, "/mode_active_fraction", {hsize_t(K)}, a.mode_active_fraction.data());
    h5::write_doubles(f, "/mode_patterns", shape3(hsize_t(K), M, M), a.mode_patterns.data());
    h5::write_ints(f, "/states", {T}, a.states.data());
  }
  out.commit();
}

void write_cohort_truth(const SimulateParams& p, const CohortPlan& plan, const std::vector<double>& used,
                        const std::string& path) {
  const hsize_t K = hsize_t(plan.n_modes), R = hsize_t(plan.n_regions()), A = hsize_t(plan.n_animals());
  h5::AtomicFile out(path, MPI_COMM_SELF);
  h5::File& f = out.file();
  set_record_attrs(f, p);
  h5::set_attr(f, "/", "individual_mode", std::int64_t(plan.individual));
  h5::write_doubles(f, "/modes", shape3(K, R, R), plan.modes.data());
  std::vector<std::int64_t> present(plan.mode_present.begin(), plan.mode_present.end());
  h5::write_ints(f, "/mode_present", {A, K}, present.data());
  h5::write_doubles(f, "/mode_active_fraction", {A, K}, used.data());
  std::vector<std::int64_t> conserved(size_t(K), p.mode_sharing == kSharingNone ? 0 : 1);
  if (plan.individual >= 0) conserved[size_t(plan.individual)] = 0;
  h5::write_ints(f, "/mode_conserved", {K}, conserved.data());
  h5::write_doubles(f, "/state_levels", {hsize_t(n_states(p)), K}, plan.state_levels.data());
  h5::set_attr(f, "/state_levels", "condition", plan.state_levels_condition);
  h5::set_attr(f, "/state_levels", "draws", std::int64_t(plan.state_levels_draws));
  h5::write_strings(f, "/region_names", plan.regions);
  h5::write_strings(f, "/animal_ids", plan.animal_ids);
  out.commit();
}

}  // namespace

std::string describe(const SimulateParams& p) {
  std::ostringstream os;
  os.precision(17);
  os << "[simulate]\n# made by the library call simulate_cohort()\n"
     << "animals = " << p.animals << "\nbump-amplitude = " << p.bump_amplitude << "\nbump-width = " << p.bump_width
     << "\ndrive-amplitude = " << p.drive_amplitude << "\ndt = " << p.dt << "\ndt-factor = " << p.dt_factor
     << "\ndwell = " << p.dwell << "\nfixed-amplitude = " << p.fixed_amplitude << "\ng = " << p.g << "\ngating = " << p.gating
     << "\ngating-lag = " << p.gating_lag
     << "\ng-undriven = " << p.g_undriven << "\nindividual-fraction = " << p.individual_fraction
     << "\nindividual-mode = " << (p.individual_mode ? "true" : "false") << "\nlead-time = " << p.lead_time
     << "\nlink-excitatory = " << p.link_excitatory << "\nlink-fraction = " << p.link_fraction
     << "\nlink-strength = " << p.link_strength << "\nlinks = " << p.links
     << "\nexternal-fraction = " << p.external_fraction << "\ndrives = " << p.drives
     << "\ndrives-as-inputs = " << (p.drives_as_inputs ? "true" : "false") << "\nmissing-fraction = " << p.missing_fraction
     << "\nmissing-per-animal = " << p.missing_per_animal << "\nmode-variation = " << p.mode_variation
     << "\nmodes = " << p.modes << "\nmode-sharing = " << p.mode_sharing << "\npairs-per-mode = " << p.pairs_per_mode << "\npreset = " << p.preset
     << "\nramp = " << p.ramp << "\nregions = " << p.regions << "\nsamples = " << p.samples << "\nseed = " << p.seed
     << "\nstates = " << n_states(p) << "\ntau = " << p.tau << "\ntrials = " << p.trials
     << "\nunit-variation = " << p.unit_variation << "\nunits-per-region = " << p.units_per_region << "\n";
  return os.str();
}

void simulate_cohort(const SimulateParams& params, const std::string& out_dir, MPI_Comm comm) {
  const double t0 = MPI_Wtime();
  SimulateParams p = params;
  if (p.config.empty()) p.config = describe(p);
  CohortPlan plan;
  collective(comm, [&] {
    if (out_dir.empty()) fail("option --out: no output folder given");
    plan = make_plan(p);
    // The largest animal must fit: J and its parts (4 N^2) plus rates, inputs and truth series.
    std::uint64_t need = 0;
    for (int a = 0; a < plan.n_animals(); ++a) {
      const double n = double(plan.n_units(a)), t = double(p.samples) * p.trials;
      const double m = double(plan.animal_regions[size_t(a)].size());
      need = std::max(need, std::uint64_t(8.0 * (4 * n * n + 3 * n * t + 8 * m * m * t)));
    }
    const std::uint64_t have = available_memory_bytes();
    if (need > have)
      fail("option --units-per-region/--samples: an animal needs ", double(need) / 1e9, " GB but only ",
           double(have) / 1e9, " GB are available");
  });
  // "out/" and "out" are the same folder (the manifest names files relative to it).
  fs::path dir = fs::path(out_dir).lexically_normal();
  if (!dir.has_filename() && dir.has_parent_path()) dir = dir.parent_path();
  const fs::path truth = dir / "truth";
  {
    std::string err;
    if (comm_rank(comm) == 0) {
      std::error_code ec;
      fs::create_directories(truth, ec);
      if (ec) err = cat("option --out ", out_dir, ": cannot create the folder ", truth.string(), ": ", ec.message());
      else {
        const fs::path probe = truth / ".cohortnet-write-test";
        std::ofstream o(probe);
        o << "ok\n";
        o.close();
        if (!o) err = cat("option --out ", out_dir, ": the folder is not writable");
        fs::remove(probe, ec);
      }
    }
    agree(comm, err);
  }
  log::info(comm, "simulate: preset ", p.preset, ", ", plan.n_animals(), " animal(s), ", plan.n_regions(),
            " regions, seed ", p.seed, " -> ", out_dir);

  // Animals round-robin over ranks; each rank simulates and writes its own with MPI_COMM_SELF.
  const int rank = comm_rank(comm), size = comm_size(comm);
  // Fraction of time each animal uses each mode (each animal's row filled by its rank, summed).
  std::vector<double> used(size_t(plan.n_animals()) * size_t(std::max(plan.n_modes, 0)), 0.0);
  collective(comm, [&] {
    for (int a = rank; a < plan.n_animals(); a += size) {
      SimulatedAnimal sim = simulate_animal(p, plan, a);
      const std::string id = plan.animal_ids[size_t(a)];
      write_animal_file(p, sim, (dir / (id + ".h5")).string());
      write_truth_file(p, sim, plan.n_modes, (truth / (id + ".h5")).string());
      for (size_t k = 0; k < sim.mode_active_fraction.size(); ++k)
        used[size_t(a) * size_t(plan.n_modes) + k] = sim.mode_active_fraction[k];
      if (log::all_ranks() || size == 1)
        log::info(MPI_COMM_SELF, "  ", id, ": ", sim.meta.n_units, " units, ", sim.meta.n_regions(), " regions, ",
                  sim.meta.n_samples, " samples");
    }
  });
  if (!used.empty())
    MPI_Allreduce(MPI_IN_PLACE, used.data(), int(used.size()), MPI_DOUBLE, MPI_SUM, comm);
  collective(comm, [&] {
    if (rank != 0) return;
    if (is_cohort(p)) {
      write_cohort_truth(p, plan, used, (truth / "cohort.h5").string());
    } else {
      std::error_code ec;  // a cohort truth left by an earlier run would describe other animals
      fs::remove(truth / "cohort.h5", ec);
    }
  });
  if (rank == 0) {
    // Files of an earlier run into the same folder are left alone (cohort.ini lists this run's).
    int stale = 0;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(dir, ec)) {
      if (e.path().extension() == ".h5" &&
          std::find(plan.animal_ids.begin(), plan.animal_ids.end(), e.path().stem().string()) == plan.animal_ids.end())
        ++stale;
    }
    if (stale > 0)
      log::warn(MPI_COMM_SELF, out_dir, " holds ", stale, " other *.h5 file(s) from before; cohort.ini lists only the ",
                plan.n_animals(), " animal(s) written now");
  }
  Cohort c;
  c.dir = dir.string();
  c.name = p.name.empty() ? dir.filename().string() : p.name;
  c.regions = plan.regions;
  for (int a = 0; a < plan.n_animals(); ++a)
  {
    CohortAnimal an;
    an.animal_id = plan.animal_ids[size_t(a)];
    an.path = (dir / (an.animal_id + ".h5")).string();
    an.n_units = plan.n_units(a);
    an.n_samples = std::int64_t(p.samples) * p.trials;
    c.animals.push_back(an);
  }
  write_cohort_manifest(c, comm);
  log::info(comm, "simulate: wrote ", plan.n_animals(), " animal file(s), ", out_dir, "/cohort.ini and ",
            truth.string(), "/ in ", log::duration(MPI_Wtime() - t0));
}

}  // namespace cohortnet::sim
