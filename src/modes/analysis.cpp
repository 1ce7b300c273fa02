#include "modes/analysis.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/parallel.hpp"
#include "core/rng.hpp"

namespace cohortnet::modes {

namespace {
const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<const AnimalMatrix*> pointers(const std::vector<AnimalMatrix>& v) {
  std::vector<const AnimalMatrix*> out;
  for (auto& a : v) out.push_back(&a);
  return out;
}

FitOptions fit_options(const ModesConfig& cfg, int K) {
  FitOptions o;
  o.K = K;
  o.max_iter = cfg.max_iter;
  o.tol = cfg.tol;
  o.inner = cfg.inner;
  o.seed = cfg.seed;
  o.reduction = cfg.reduction;
  return o;
}

// Distinct start ids for the different kinds of fits (names of their random streams).
constexpr std::uint64_t kStartShared = 0, kStartCv = 1u << 20, kStartLoo = 2u << 20, kStartOwn = 3u << 20;

double mean_of(const std::vector<double>& v) {
  double s = 0;
  int n = 0;
  for (double x : v)
    if (std::isfinite(x)) {
      s += x;
      ++n;
    }
  return n ? s / n : kNaN;
}

double stat_of(std::vector<double> v, const std::string& how) {
  if (v.empty()) return kNaN;
  if (how == "mean") return mean_of(v);
  std::sort(v.begin(), v.end());
  if (how == "min") return v.front();
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Reorders the columns of B (P x K) so that column k is the one matched to column k of ref.
std::vector<double> aligned(const std::vector<double>& ref, const std::vector<double>& B, int P, int K,
                            const std::vector<std::uint8_t>& rows = {}) {
  std::vector<int> match;
  std::vector<double> sim;
  match_columns(ref, B, P, K, rows, match, sim);
  std::vector<double> out(B.size());
  for (int p = 0; p < P; ++p)
    for (int k = 0; k < K; ++k) out[size_t(p) * size_t(K) + size_t(k)] = B[size_t(p) * size_t(K) + size_t(match[size_t(k)])];
  return out;
}
}  // namespace

// The average of a K's held-out errors over folds (--k-cv-average) and its standard error, over the
// finite values. With --k-cv animals the folds are animals whose errors differ by 10x or more (on
// the simulator's truth 0.005-0.18 at the same K): a mean is the worst-predicted animals', and one
// of them scoring worse at K = 4 chose K = 3 (seed 6); the mean of the logs weighs every animal's
// relative change the same. Errors are floored at 1e-12 so an exact fit stays finite.
std::pair<double, double> cv_average(const std::vector<double>& e, const std::string& how) {
  std::vector<double> v;
  for (double x : e)
    if (std::isfinite(x)) v.push_back(how == "geomean" ? std::log(std::max(x, 1e-12)) : x);
  const size_t n = v.size();
  if (n == 0) return {kNaN, kNaN};
  double m = 0, var = 0;
  for (double x : v) m += x / double(n);
  for (double x : v) var += (x - m) * (x - m);
  const double se = n > 1 ? std::sqrt(var / double(n - 1) / double(n)) : kNaN;
  if (how == "geomean") return {std::exp(m), std::exp(m) * se};  // se of the logs = relative se
  if (how == "median") return {stat_of(v, "median"), 1.2533 * se};  // the median's asymptotic se
  return {m, se};
}

AnimalMatrix with_holdout(const AnimalMatrix& a, int fold, std::uint64_t seed, int block, double fraction) {
  AnimalMatrix h = a;
  block = std::max(1, std::min(block, a.T));
  h.block_start.clear();
  for (int t = 0; t < a.T; t += block) h.block_start.push_back(t);
  // A short last block joins the one before (so every block has at least block/2 samples).
  if (h.block_start.size() > 1 && a.T - h.block_start.back() < block / 2) h.block_start.pop_back();
  h.block_start.push_back(a.T);
  const int nb = h.n_blocks();
  const int P = int(a.present.size());
  h.heldout.assign(size_t(P) * size_t(nb), 0);
  Stream s(seed, {kTagHoldout, std::uint64_t(fold), a.seed_id});
  for (int b = 0; b < nb; ++b) {
    int kept = 0, last = -1;
    for (int p = 0; p < P; ++p) {
      const double u = s.uniform();  // drawn for every row: the stream does not depend on masks
      if (!a.present[size_t(p)]) continue;
      if (u < fraction) {
        h.heldout[size_t(p) * size_t(nb) + size_t(b)] = 1;
        last = p;
      } else {
        ++kept;
      }
    }
    if (kept == 0 && last >= 0) h.heldout[size_t(last) * size_t(nb) + size_t(b)] = 0;
  }
  return h;
}

std::vector<int> region_permutation(const AnimalMatrix& a, int R, std::uint64_t seed, std::uint64_t draw) {
  std::vector<int> perm(static_cast<size_t>(R));
  std::iota(perm.begin(), perm.end(), 0);
  std::vector<int> own = a.regions, shuffled = a.regions;
  Stream s(seed, {kTagPermutation, draw, a.seed_id});
  for (size_t i = shuffled.size(); i > 1; --i) std::swap(shuffled[i - 1], shuffled[size_t(s.below(i))]);
  for (size_t i = 0; i < own.size(); ++i) perm[size_t(own[i])] = shuffled[i];
  return perm;
}

AnimalMatrix permuted(const AnimalMatrix& a, const PairLayout& L, const std::vector<int>& perm) {
  AnimalMatrix b = a;
  const std::vector<int> rp = row_permutation(L, perm);
  const int nb = a.n_blocks();
  // A row's presence moves with its data: rows masked inside the animal's regions (fitted gains
  // not kept) stay masked where they land. Without such masks this leaves present unchanged.
  std::fill(b.present.begin(), b.present.end(), std::uint8_t(0));
  for (int p = 0; p < L.P(); ++p) {
    if (!a.present[size_t(p)]) continue;
    const int q = rp[size_t(p)];
    if (q < 0) fail("modes: internal error: permutation maps a pair outside the layout");
    b.present[size_t(q)] = 1;
    std::copy(a.X.begin() + long(size_t(p) * size_t(a.T)), a.X.begin() + long(size_t(p + 1) * size_t(a.T)),
              b.X.begin() + long(size_t(q) * size_t(a.T)));
    for (int k = 0; k < nb; ++k) b.heldout[size_t(q) * size_t(nb) + size_t(k)] = a.heldout[size_t(p) * size_t(nb) + size_t(k)];
  }
  return b;
}

double matched_congruence(const std::vector<double>& ref, const std::vector<std::vector<double>>& others, int P, int K) {
  if (others.empty()) return kNaN;
  double total = 0;
  for (auto& W : others) {
    std::vector<int> match;
    std::vector<double> sim;
    match_columns(ref, W, P, K, {}, match, sim);
    total += std::accumulate(sim.begin(), sim.end(), 0.0) / K;
  }
  return total / double(others.size());
}

// Stability across starts, over the starts that reach the best start's objective (within
// kSameObjective): two fits the data cannot tell apart but with different modes mean the modes
// are not identified. A start stuck at a worse objective (a local minimum: on the simulator's
// truth, 4 of 5 starts at K = 4 ended 2-12% above the best) says nothing about identifiability.
// NaN when no other start reached the best objective (not determined); *n_at_best counts them.
constexpr double kSameObjective = 0.01;
double start_stability(const std::vector<std::vector<double>>& Ws, const std::vector<double>& obj, int best, int P,
                       int K, int* n_at_best) {
  std::vector<std::vector<double>> others;
  for (size_t j = 0; j < Ws.size(); ++j)
    if (int(j) != best && obj[j] <= obj[size_t(best)] + kSameObjective * std::abs(obj[size_t(best)]))
      others.push_back(Ws[j]);
  if (n_at_best) *n_at_best = int(others.size()) + 1;
  return matched_congruence(Ws[size_t(best)], others, P, K);
}

// One random start of the shared fit (start id j), packed as {objective, W...}.
std::vector<double> shared_start(const std::vector<const AnimalMatrix*>& ptrs, int P, FitOptions o, int j, MPI_Comm sub) {
  o.start = kStartShared + std::uint64_t(j);
  MaskedHals h(ptrs, P, o, sub);
  h.init_random();
  FitResult r = h.run();
  std::vector<double> v = {r.objective};
  v.insert(v.end(), r.W.begin(), r.W.end());
  return v;
}

// The K rule: the smallest K whose CV error is within k_cv_tolerance of the lowest over all K (the
// "enough modes" candidate; with the default tolerance 0, the K with the lowest error: a 2%
// tolerance preferred K = 3 where K = 4 predicted the unseen animals best, and the animal-out
// error already charges a K for modes that do not carry over, which is the parsimony wanted).
// If that K is not stable across starts (stability < k_min_stability)
// its extra mode is not identified, so the choice steps down to the largest stable K below it:
// on the simulator's truth, K = 5 for 4 true modes reached the error tolerance at stability
// 0.84-0.89 while K = 4 was stable. Only when no K below is stable does a stable K above the
// candidate (within tolerance) count; if no K qualifies, the candidate is kept and flagged.
KChoice choose_k(const std::vector<double>& cv_mean, double tolerance, const std::function<bool(int)>& is_stable) {
  const int nK = int(cv_mean.size());
  double best = std::numeric_limits<double>::infinity();
  for (double v : cv_mean)
    if (std::isfinite(v)) best = std::min(best, v);
  auto in_tolerance = [&](int ik) { return cv_mean[size_t(ik)] <= best * (1 + tolerance); };
  int candidate = -1;
  for (int ik = 0; ik < nK && candidate < 0; ++ik)
    if (in_tolerance(ik)) candidate = ik;
  if (candidate < 0) fail("modes: cross-validation failed for every K (no held-out data?)");
  KChoice c;
  if (is_stable(candidate)) {
    c.index = candidate;
    return c;
  }
  for (int ik = candidate - 1; ik >= 0 && c.index < 0; --ik)
    if (is_stable(ik) && std::isfinite(cv_mean[size_t(ik)])) c.index = ik;
  if (c.index >= 0) c.stepped_down_from = candidate;
  for (int ik = candidate + 1; ik < nK && c.index < 0; ++ik)
    if (is_stable(ik) && in_tolerance(ik)) c.index = ik;
  if (c.index < 0) {
    c.index = candidate;
    c.stable = false;
  }
  return c;
}

KSelection select_k(const std::vector<AnimalMatrix>& animals, const PairLayout& L, const ModesConfig& cfg,
                    MPI_Comm comm) {
  KSelection sel;
  const int P = L.P();
  if (cfg.k_min < 1 || cfg.k_max < cfg.k_min) fail("modes: bad K range ", cfg.k_min, "..", cfg.k_max);
  for (int k = cfg.k_min; k <= cfg.k_max; ++k) sel.k_values.push_back(k);
  const int A = int(animals.size());
  const bool by_animal = cfg.k_cv == "animals";
  if (by_animal && A < 2) fail("modes: --k-cv animals needs at least 2 animals (have ", A, "); use --k-cv entries");
  const int nK = int(sel.k_values.size()), S = cfg.starts, F = by_animal ? A : cfg.folds;
  sel.n_folds = F;
  const auto ptrs = pointers(animals);
  // One task per (K, start) and per (K, fold); all run concurrently on split communicators.
  // --k-cv entries: a fold holds out (pair, block) pieces of every animal and W is fitted on the
  // rest, so W also learns each animal's own deviations from the shared modes (an extra K can
  // fit them and score better). --k-cv animals: fold a fits W without animal a, then a's H on its
  // kept pieces, and scores a's held-out pieces: only modes that carry over to an animal the fit
  // has not seen lower the error, which is what a shared mode is.
  const int per_k = S + F;
  auto results = run_tasks(comm, nK * per_k, [&](int task, MPI_Comm sub) -> std::vector<double> {
    const int K = sel.k_values[size_t(task / per_k)], j = task % per_k;
    FitOptions o = fit_options(cfg, K);
    if (j < S) return shared_start(ptrs, P, fit_options(cfg, K), j, sub);
    const int fold = j - S;
    if (by_animal) {
      std::vector<const AnimalMatrix*> rest;
      for (int i = 0; i < A; ++i)
        if (i != fold) rest.push_back(&animals[size_t(i)]);
      o.start = kStartCv + std::uint64_t(fold) * 64;
      const FitResult r = fit_best(rest, P, o, cfg.loo_starts, sub);
      double sse = 0, ss = 0;
      for (int m = 0; m < cfg.folds; ++m) {  // --folds hold-out masks of the animal, the same W
        const AnimalMatrix held = with_holdout(animals[size_t(fold)], m, cfg.seed, cfg.cv_block, cfg.cv_fraction);
        double e = 0, x = 0;
        heldout_error(held, r.W, project(held, r.W, P, K, 500, 1e-8, cfg.cv_ridge), P, K, &e, &x);
        sse += e;
        ss += x;
      }
      return {ss > 0 ? sse / ss : kNaN};
    }
    std::vector<AnimalMatrix> held;
    for (auto& a : animals) held.push_back(with_holdout(a, fold, cfg.seed, cfg.cv_block, cfg.cv_fraction));
    o.start = kStartCv + std::uint64_t(fold);
    o.h_ridge = cfg.cv_ridge;
    MaskedHals h(pointers(held), P, o, sub);
    h.init_random();
    FitResult r = h.run();
    double sse = 0, ss = 0;
    for (size_t i = 0; i < held.size(); ++i) {
      double e = 0, x = 0;
      heldout_error(held[i], r.W, r.H[i], P, K, &e, &x);
      sse += e;
      ss += x;
    }
    return {ss > 0 ? sse / ss : kNaN};
  });
  sel.cv_error.assign(size_t(nK) * size_t(F), kNaN);
  std::vector<std::vector<double>> objs(static_cast<size_t>(nK));             // every start's objective, per K
  std::vector<std::vector<std::vector<double>>> Ws(static_cast<size_t>(nK));  // and its W
  auto assess = [&](int ik) {
    const int K = sel.k_values[size_t(ik)];
    const auto& obj = objs[size_t(ik)];
    const int best = int(std::min_element(obj.begin(), obj.end()) - obj.begin());
    sel.objective[size_t(ik)] = obj[size_t(best)];
    sel.stability[size_t(ik)] = start_stability(Ws[size_t(ik)], obj, best, P, K, &sel.starts_at_best[size_t(ik)]);
    sel.starts_run[size_t(ik)] = int(obj.size());
  };
  sel.objective.assign(size_t(nK), kNaN);
  sel.stability.assign(size_t(nK), kNaN);
  sel.starts_at_best.assign(size_t(nK), 0);
  sel.starts_run.assign(size_t(nK), S);
  for (int ik = 0; ik < nK; ++ik) {
    for (int j = 0; j < S; ++j) {
      auto& v = results[size_t(ik * per_k + j)];
      objs[size_t(ik)].push_back(v[0]);
      Ws[size_t(ik)].emplace_back(v.begin() + 1, v.end());
    }
    assess(ik);
    std::vector<double> e;
    for (int f = 0; f < F; ++f) {
      const double v = results[size_t(ik * per_k + S + f)][0];
      sel.cv_error[size_t(ik) * size_t(F) + size_t(f)] = v;
      e.push_back(v);
    }
    const auto [m, se] = cv_average(e, cfg.k_cv_average);
    sel.cv_mean.push_back(m);
    sel.cv_se.push_back(se);
  }
  // The K rule: choose_k above; best_cv is for the reason.
  double best_cv = std::numeric_limits<double>::infinity();
  for (double v : sel.cv_mean)
    if (std::isfinite(v)) best_cv = std::min(best_cv, v);
  // A K the rule asks about whose stability is not determined (only the best start reached its
  // objective) gets up to 2 x --starts more starts (all ranks), then counts as stable if still
  // not determined (one reproducible optimum was found; no evidence of another at its level).
  auto determine = [&](int ik) {
    for (int round = 1; round <= 2 && S > 1 && sel.starts_at_best[size_t(ik)] < 2; ++round) {
      const int K = sel.k_values[size_t(ik)];
      auto more = run_tasks(comm, S, [&](int j, MPI_Comm sub) {
        return shared_start(ptrs, P, fit_options(cfg, K), round * S + j, sub);
      });
      for (auto& v : more) {
        objs[size_t(ik)].push_back(v[0]);
        Ws[size_t(ik)].emplace_back(v.begin() + 1, v.end());
      }
      assess(ik);
    }
  };
  auto is_stable = [&](int ik) {
    if (std::isnan(sel.stability[size_t(ik)])) determine(ik);
    const double st = sel.stability[size_t(ik)];
    return std::isnan(st) || st >= cfg.k_min_stability;
  };
  sel.rule = cat(cfg.k_cv_tolerance > 0 ? cat("smallest K with ", cfg.k_cv_average, " held-out error <= (1 + ",
                                               cfg.k_cv_tolerance, ") x the lowest over K")
                                         : cat("the K with the lowest ", cfg.k_cv_average, " held-out error"),
                 "; if its stability across starts is below ", cfg.k_min_stability,
                 ", the largest stable K below it (else the smallest stable K above it within the tolerance)");
  const KChoice c = choose_k(sel.cv_mean, cfg.k_cv_tolerance, is_stable);
  const int chosen = c.index;
  const bool stable = c.stable;
  std::string how;
  if (c.stepped_down_from >= 0)
    how = cat(" (stepped down from K = ", sel.k_values[size_t(c.stepped_down_from)], ", stability ",
              sel.stability[size_t(c.stepped_down_from)], ")");
  sel.k_chosen = sel.k_values[size_t(chosen)];
  const bool undetermined = std::isnan(sel.stability[size_t(chosen)]);
  sel.reason = cat("K = ", sel.k_chosen, ": held-out error ", sel.cv_mean[size_t(chosen)], " vs lowest ", best_cv,
                   " (tolerance ", cfg.k_cv_tolerance * 100, "%), stability ", sel.stability[size_t(chosen)],
                   undetermined ? cat(" (not determined: only the best of ", sel.starts_run[size_t(chosen)],
                                      " starts reached its objective)") : std::string(), how,
                   stable ? "" : " (below the stability threshold: no K is stable)");
  if (chosen > 0)
    sel.reason += cat("; K = ", sel.k_values[size_t(chosen - 1)], " has held-out error ", sel.cv_mean[size_t(chosen - 1)],
                      " and stability ", sel.stability[size_t(chosen - 1)]);
  return sel;
}

// An animal's own K modes: the best of --loo-starts random starts, and one start from the cohort's
// modes fitted without the animal (W_{-a}). One animal's factorization is not unique: modes that
// behaviour states switch on together can be traded for the states' own pathway patterns at the
// same R2 (the simulator's truth does this: own fits from random starts reached R2 1.000 with
// modes at cosine 0.44-0.70 to the cohort's). Among fits the animal's data cannot tell apart (R2
// within --own-tolerance of the best start's), the one started from W_{-a} is kept, so the
// similarity asks "is this animal consistent with the shared modes", not "which of equally good
// factorizations did a random start reach". An animal whose data the shared modes do not fit moves
// away from them (or loses to a random start) and shows a low similarity.
FitResult own_fit(const AnimalMatrix& x, const std::vector<double>& W_warm, const ModesConfig& cfg, int K, int P,
                  int a, MPI_Comm sub, double* r2_out) {
  FitOptions o = fit_options(cfg, K);
  o.start = kStartOwn + std::uint64_t(a) * 64;
  FitResult best = fit_best({&x}, P, o, cfg.loo_starts, sub);
  double r2_best = r2_observed(x, best.W, best.H[0], P, K);
  if (!W_warm.empty() && cfg.own_tolerance >= 0) {
    o.start = kStartOwn + std::uint64_t(a) * 64 + 63;  // its H start stream
    MaskedHals h({&x}, P, o, sub);
    h.set_W(W_warm);
    FitResult w = h.run();
    const double r2w = r2_observed(x, w.W, w.H[0], P, K);
    if (r2w >= r2_best - cfg.own_tolerance) {
      best = std::move(w);
      r2_best = r2w;
    }
  }
  *r2_out = r2_best;
  return best;
}

// A relabelled perfect copy this similar to the mode counts as "unchanged" (resolution of an animal's test).
constexpr double kNearCopy = 0.9;

void conservation(const std::vector<AnimalMatrix>& animals, const PairLayout& L, const ModesConfig& cfg,
                  ModesResult& res, MPI_Comm comm) {
  const int A = int(animals.size()), P = L.P(), K = res.K, R = L.R;
  if (A < 2) fail("modes: conservation needs at least 2 animals (have ", A, ")");
  const int nn = cfg.loo_null;
  // Phase 1, task a: W without animal a, then projections of a (as is, and label-permuted).
  auto results = run_tasks(comm, A, [&](int a, MPI_Comm sub) -> std::vector<double> {
    FitOptions o = fit_options(cfg, K);
    std::vector<const AnimalMatrix*> rest;
    for (int i = 0; i < A; ++i)
      if (i != a) rest.push_back(&animals[size_t(i)]);
    o.start = kStartLoo + std::uint64_t(a) * 64;
    FitResult r = fit_best(rest, P, o, cfg.loo_starts, sub);
    std::vector<double> v = r.W;
    const AnimalMatrix& x = animals[size_t(a)];
    v.push_back(r2_observed(x, r.W, project(x, r.W, P, K), P, K));
    for (int d = 0; d < nn; ++d) {
      AnimalMatrix y = permuted(x, L, region_permutation(x, R, cfg.seed, std::uint64_t(1000000 + d)));
      v.push_back(r2_observed(y, r.W, project(y, r.W, P, K), P, K));
    }
    return v;
  });
  // Phase 2, task a: animal a alone (its own modes and R2_own), one start from W_{-a}.
  {
    const size_t PKw = size_t(P) * size_t(K);
    auto own = run_tasks(comm, A, [&](int a, MPI_Comm sub) -> std::vector<double> {
      const std::vector<double> warm(results[size_t(a)].begin(), results[size_t(a)].begin() + long(PKw));
      double r2 = 0;
      FitResult r = own_fit(animals[size_t(a)], warm, cfg, K, P, a, sub, &r2);
      std::vector<double> v = r.W;
      v.push_back(r2);
      return v;
    });
    results.insert(results.end(), own.begin(), own.end());
  }
  const size_t PK = size_t(P) * size_t(K);
  res.r2_shared.assign(size_t(A), kNaN);
  res.r2_own.assign(size_t(A), kNaN);
  res.r2_null.assign(size_t(A), kNaN);
  res.index.assign(size_t(A), kNaN);
  res.r2_null_samples.assign(size_t(A) * size_t(nn), kNaN);
  res.loo_W.assign(size_t(A), {});
  res.loo_W_start.assign(size_t(A), {});
  res.own_W.assign(size_t(A), {});
  res.similarity.assign(size_t(A) * size_t(K), kNaN);
  std::vector<std::vector<std::uint8_t>> rows(static_cast<size_t>(A));
  for (int a = 0; a < A; ++a) {
    const auto& lv = results[size_t(a)];
    const auto& ov = results[size_t(A + a)];
    rows[size_t(a)] = animals[size_t(a)].present;
    std::vector<double> Wl(lv.begin(), lv.begin() + long(PK));
    res.loo_W[size_t(a)] = aligned(res.fit.W, Wl, P, K);
    res.loo_W_start[size_t(a)] = Wl;
    res.r2_shared[size_t(a)] = lv[PK];
    std::vector<double> nulls(lv.begin() + long(PK) + 1, lv.end());
    for (int d = 0; d < nn; ++d) res.r2_null_samples[size_t(a) * size_t(nn) + size_t(d)] = nulls[size_t(d)];
    res.r2_null[size_t(a)] = mean_of(nulls);
    std::vector<double> Wo(ov.begin(), ov.begin() + long(PK));
    res.own_W[size_t(a)] = aligned(res.loo_W[size_t(a)], Wo, P, K, rows[size_t(a)]);
    res.r2_own[size_t(a)] = ov[PK];
    const double den = res.r2_own[size_t(a)] - res.r2_null[size_t(a)];
    res.index[size_t(a)] = den > 1e-12 ? (res.r2_shared[size_t(a)] - res.r2_null[size_t(a)]) / den : kNaN;
    for (int k = 0; k < K; ++k)
      res.similarity[size_t(a) * size_t(K) + size_t(k)] =
          column_cosine(res.loo_W[size_t(a)], K, k, res.own_W[size_t(a)], K, k, rows[size_t(a)]);
  }
  // Which animals can show mode k at all: the shared mode (fitted without the animal) must put at
  // least min_observed of its squared norm on rows the animal records. An animal lacking every
  // region of a mode neither supports nor contradicts it, so it is left out of that mode's test.
  // (A second condition, on the resolution of its permutation test, is added below.)
  res.testable.assign(size_t(A) * size_t(K), 0);
  for (int a = 0; a < A; ++a)
    for (int k = 0; k < K; ++k) {
      double on = 0, all = 0;
      for (int p = 0; p < P; ++p) {
        const double w = res.loo_W[size_t(a)][size_t(p) * size_t(K) + size_t(k)];
        all += w * w;
        if (rows[size_t(a)][size_t(p)]) on += w * w;
      }
      res.testable[size_t(a) * size_t(K) + size_t(k)] = all > 0 && on >= cfg.min_observed * all ? 1 : 0;
    }
  // Mode gain: the explained variance shared mode k brings to animal a (R2 of the projection on
  // W_{-a} minus R2 with that mode's activation set to zero). ~0 where the animal does not use k.
  res.mode_gain.assign(size_t(A) * size_t(K), kNaN);
  for (int a = 0; a < A; ++a) {
    const AnimalMatrix& x = animals[size_t(a)];
    const std::vector<double>& Wl = res.loo_W[size_t(a)];
    const std::vector<double> H = project(x, Wl, P, K);
    const double full = r2_observed(x, Wl, H, P, K);
    for (int k = 0; k < K; ++k) {
      std::vector<double> Hk = H;
      std::fill(Hk.begin() + long(k) * x.T, Hk.begin() + long(k + 1) * x.T, 0.0);
      res.mode_gain[size_t(a) * size_t(K) + size_t(k)] = full - r2_observed(x, Wl, Hk, P, K);
    }
  }
  // Per-mode statistic and its permutation null: each animal's own modes are relabelled (a random
  // permutation of its regions, targets and sources alike) and matched again to the leave-one-out
  // shared modes. Relabelling the fitted own modes is equivalent to refitting relabelled data (the
  // masked fit is equivariant under row permutations), and costs no refits.
  res.statistic.assign(size_t(K), kNaN);
  for (int k = 0; k < K; ++k) {
    std::vector<double> v;
    for (int a = 0; a < A; ++a)
      if (res.testable[size_t(a) * size_t(K) + size_t(k)]) v.push_back(res.similarity[size_t(a) * size_t(K) + size_t(k)]);
    res.statistic[size_t(k)] = stat_of(v, cfg.mode_stat);
  }
  const int n = cfg.permutations;
  res.null_statistic.assign(size_t(n) * size_t(K), kNaN);
  // Permutations are split over ranks (each draw has its own stream) and gathered in draw order.
  const int rank = comm_rank(comm), size = comm_size(comm);
  std::vector<double> local(size_t(n) * size_t(K), 0.0);
  // Per animal: how many of its own draws reach its observed similarity (the presence test), and
  // how many relabellings leave the mode itself (W_{-a}'s column, on the animal's rows) a near
  // copy of itself (cosine >= kNearCopy): with few regions or few of the mode's pairs observed
  // (e.g. only a reciprocal pair Q<->S, which swapping Q and S maps onto itself) many
  // relabellings change almost nothing, and no own fit, however good, can be significant.
  // Independent of the animal's own fit.
  std::vector<double> ge_animal(size_t(A) * size_t(K), 0.0), ge_ideal(size_t(A) * size_t(K), 0.0);
  for (int d = rank; d < n; d += size) {
    std::vector<std::vector<double>> sims(static_cast<size_t>(K));
    for (int a = 0; a < A; ++a) {
      const AnimalMatrix& x = animals[size_t(a)];
      const std::vector<int> rp = row_permutation(L, region_permutation(x, R, cfg.seed, std::uint64_t(d)));
      std::vector<double> Wp(PK, 0.0), Wi(PK, 0.0);
      std::vector<std::uint8_t> landed(size_t(P), 0);  // = rows[a] unless rows are masked inside its regions
      for (int p = 0; p < P; ++p)
        if (x.present[size_t(p)]) landed[size_t(rp[size_t(p)])] = 1;
      for (int p = 0; p < P; ++p)
        if (x.present[size_t(p)])
          for (int k = 0; k < K; ++k) {
            const size_t to = size_t(rp[size_t(p)]) * size_t(K) + size_t(k), from = size_t(p) * size_t(K) + size_t(k);
            Wp[to] = res.own_W[size_t(a)][from];
            Wi[to] = res.loo_W[size_t(a)][from];
          }
      std::vector<int> match;
      std::vector<double> sim;
      for (int k = 0; k < K; ++k)
        if (column_cosine(res.loo_W[size_t(a)], K, k, Wi, K, k, landed) >= kNearCopy)
          ge_ideal[size_t(a) * size_t(K) + size_t(k)] += 1;
      match_columns(res.loo_W[size_t(a)], Wp, P, K, landed, match, sim);
      for (int k = 0; k < K; ++k) {
        const size_t ak = size_t(a) * size_t(K) + size_t(k);
        if (sim[size_t(k)] >= res.similarity[ak]) ge_animal[ak] += 1;
        if (res.testable[ak]) sims[size_t(k)].push_back(sim[size_t(k)]);
      }
    }
    for (int k = 0; k < K; ++k) local[size_t(d) * size_t(K) + size_t(k)] = stat_of(sims[size_t(k)], cfg.mode_stat);
  }
  // Each draw is written by exactly one rank: the sum is exact.
  MPI_Allreduce(local.data(), res.null_statistic.data(), int(local.size()), MPI_DOUBLE, MPI_SUM, comm);
  MPI_Allreduce(MPI_IN_PLACE, ge_animal.data(), int(ge_animal.size()), MPI_DOUBLE, MPI_SUM, comm);
  MPI_Allreduce(MPI_IN_PLACE, ge_ideal.data(), int(ge_ideal.size()), MPI_DOUBLE, MPI_SUM, comm);
  res.p_animal.assign(size_t(A) * size_t(K), kNaN);
  res.p_ideal.assign(size_t(A) * size_t(K), kNaN);
  res.resolved.assign(size_t(A) * size_t(K), 0);
  for (size_t i = 0; i < ge_animal.size(); ++i) {
    res.p_animal[i] = (1.0 + ge_animal[i]) / (1.0 + n);
    res.p_ideal[i] = (1.0 + ge_ideal[i]) / (1.0 + n);
    // Few regions, or few of the mode's pairs observed: many relabellings leave the mode as it is,
    // and even a perfect copy would not be significant. Such an animal cannot test presence.
    res.resolved[i] = res.testable[i] && res.p_ideal[i] < cfg.presence_alpha ? 1 : 0;
  }
  res.p_joint.assign(size_t(K), kNaN);
  res.p_presence.assign(size_t(K), kNaN);
  res.p_value.assign(size_t(K), kNaN);
  res.p_corrected.assign(size_t(K), kNaN);
  res.conserved.assign(size_t(K), 0);
  res.n_tested.assign(size_t(K), 0);
  for (int k = 0; k < K; ++k) {
    int ge = 0;
    for (int d = 0; d < n; ++d)
      if (res.null_statistic[size_t(d) * size_t(K) + size_t(k)] >= res.statistic[size_t(k)]) ++ge;
    // The cohort-level test: all animals permuted at once (statistic over the testable animals).
    // It pools the evidence of every animal, but it only shows that the mode is above chance
    // across the cohort: a mode carried by a few animals, the others having an unrelated dense
    // mode of their own, passed it (docs/modes.md). Hence the presence test below.
    res.p_joint[size_t(k)] = (1.0 + ge) / (1.0 + n);
    res.p_value[size_t(k)] = res.p_joint[size_t(k)];
    res.p_corrected[size_t(k)] = std::min(1.0, K * res.p_value[size_t(k)]);
    // Presence in every animal (intersection-union test): each animal whose permutation test can
    // resolve the mode compares its own similarity with its own label-permutation null; the
    // largest of these p-values must be below presence_alpha (then "present in all of them" holds
    // at that level, with no correction over animals needed).
    double pmax = -1;
    for (int a = 0; a < A; ++a) {
      const size_t ak = size_t(a) * size_t(K) + size_t(k);
      if (!res.resolved[ak]) continue;
      pmax = std::max(pmax, res.p_animal[ak]);
      ++res.n_tested[size_t(k)];
    }
    if (pmax < 0) continue;  // no animal can show this mode
    res.p_presence[size_t(k)] = pmax;
    // Significance alone is not enough: with sparse modes the null is ~0, so any trace of overlap
    // in the worst animal would be "significant". Require an effect size too.
    res.conserved[size_t(k)] = res.p_corrected[size_t(k)] < cfg.alpha && pmax < cfg.presence_alpha &&
                                       res.n_tested[size_t(k)] >= 2 && res.statistic[size_t(k)] >= cfg.min_similarity
                                   ? 1 : 0;
  }
  res.p_resolution = 1.0 / (1.0 + n);
  res.have_conservation = true;
}

void ceiling(const std::vector<std::vector<AnimalMatrix>>& sets, const PairLayout& L, const ModesConfig& cfg,
             ModesResult& res, MPI_Comm comm) {
  if (!res.have_conservation) fail("modes: the ceiling needs the conservation statistics (own modes) first");
  const int A = res.A, P = L.P(), K = res.K, S = int(sets.size());
  for (int s = 0; s < S; ++s)
    if (int(sets[size_t(s)].size()) != A)
      fail("modes: --ceiling-fits set ", s + 1, " has ", sets[size_t(s)].size(), " animals, the input has ", A);
  auto results = run_tasks(comm, S * A, [&](int task, MPI_Comm sub) -> std::vector<double> {
    const int s = task / A, a = task % A;
    double r2 = 0;  // the same procedure as the animal's own fit (same starts, same warm start)
    return own_fit(sets[size_t(s)][size_t(a)], res.loo_W_start[size_t(a)], cfg, K, P, a, sub, &r2).W;
  });
  res.ceiling.assign(size_t(A) * size_t(K), 0.0);
  for (int a = 0; a < A; ++a) {
    for (int s = 0; s < S; ++s) {
      const AnimalMatrix& x = sets[size_t(s)][size_t(a)];
      // Over the refit's rows (the same animal, so normally the same rows as the input's).
      std::vector<int> match;
      std::vector<double> sim;
      match_columns(res.own_W[size_t(a)], results[size_t(s * A + a)], P, K, x.present, match, sim);
      for (int k = 0; k < K; ++k) res.ceiling[size_t(a) * size_t(K) + size_t(k)] += sim[size_t(k)] / S;
    }
  }
  res.ceiling_mean.assign(size_t(K), 0.0);
  for (int k = 0; k < K; ++k) {
    for (int a = 0; a < A; ++a) res.ceiling_mean[size_t(k)] += res.ceiling[size_t(a) * size_t(K) + size_t(k)] / A;
  }
  res.ceiling_sets = S;
  res.have_ceiling = true;
}

namespace {
void behaviour(const std::vector<AnimalMatrix>& animals, const std::vector<std::string>& names, ModesResult& res) {
  const int A = int(animals.size()), K = res.K, S = int(names.size());
  res.state_names = names;
  res.profiles.assign(size_t(A) * size_t(K) * size_t(S), kNaN);
  for (int a = 0; a < A; ++a) {
    const AnimalMatrix& x = animals[size_t(a)];
    if (x.states.empty()) continue;
    const std::vector<double>& H = res.fit.H[size_t(a)];
    for (int k = 0; k < K; ++k) {
      std::vector<double> sum(size_t(S), 0.0), cnt(size_t(S), 0.0);
      double total = 0;
      for (int t = 0; t < x.T; ++t) {
        const double h = H[size_t(k) * size_t(x.T) + size_t(t)];
        total += h;
        const int s = x.states[size_t(t)];
        if (s >= 0 && s < S) {
          sum[size_t(s)] += h;
          cnt[size_t(s)] += 1;
        }
      }
      const double mean = total / x.T;
      for (int s = 0; s < S; ++s)
        if (cnt[size_t(s)] > 0 && mean > 0)
          res.profiles[(size_t(a) * size_t(K) + size_t(k)) * size_t(S) + size_t(s)] = sum[size_t(s)] / cnt[size_t(s)] / mean;
    }
  }
  // Agreement: Pearson correlation of two animals' profiles over the states both have (>= 2, with
  // variance), averaged over pairs of animals.
  auto corr = [&](int a, int b, int k) {
    std::vector<double> x, y;
    for (int s = 0; s < S; ++s) {
      const double u = res.profiles[(size_t(a) * size_t(K) + size_t(k)) * size_t(S) + size_t(s)];
      const double v = res.profiles[(size_t(b) * size_t(K) + size_t(k)) * size_t(S) + size_t(s)];
      if (std::isfinite(u) && std::isfinite(v)) {
        x.push_back(u);
        y.push_back(v);
      }
    }
    if (x.size() < 2) return kNaN;
    const double mx = mean_of(x), my = mean_of(y);
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      sxy += (x[i] - mx) * (y[i] - my);
      sxx += (x[i] - mx) * (x[i] - mx);
      syy += (y[i] - my) * (y[i] - my);
    }
    return (sxx > 0 && syy > 0) ? sxy / std::sqrt(sxx * syy) : kNaN;
  };
  res.agreement.assign(size_t(K), kNaN);
  std::vector<double> all;
  for (int k = 0; k < K; ++k) {
    std::vector<double> c;
    for (int a = 0; a < A; ++a)
      for (int b = a + 1; b < A; ++b) c.push_back(corr(a, b, k));
    res.agreement[size_t(k)] = mean_of(c);
    all.push_back(res.agreement[size_t(k)]);
  }
  res.agreement_all = mean_of(all);
  res.have_behaviour = true;
}
}  // namespace

ModesResult run_modes(const std::vector<AnimalMatrix>& animals, const PairLayout& L, const ModesConfig& cfg,
                      const std::vector<std::string>& state_names, MPI_Comm comm) {
  ModesResult res;
  res.P = L.P();
  res.A = int(animals.size());
  if (animals.empty()) fail("modes: no animals");
  const int P = L.P();
  if (cfg.k == 0) {
    res.selection = select_k(animals, L, cfg, comm);
    res.have_selection = true;
    res.K = res.selection.k_chosen;
    log::info(comm, "modes: choosing K: ", res.selection.rule);
    for (size_t i = 0; i < res.selection.k_values.size(); ++i)
      log::info(comm, "  K = ", res.selection.k_values[i], ": held-out error ", res.selection.cv_mean[i], " +- ",
                res.selection.cv_se[i], ", stability ", res.selection.stability[i], " (", res.selection.starts_at_best[i],
                " of ", res.selection.starts_run[i], " starts at the best objective)");
    log::info(comm, "modes: ", res.selection.reason);
  } else {
    res.K = cfg.k;
  }
  const int K = res.K;
  const auto ptrs = pointers(animals);
  // The shared fit: every start as its own task (starts run concurrently when ranks allow); as
  // many starts as the K selection ran for this K (it adds starts where stability was not determined).
  const int n_starts = res.have_selection
                           ? res.selection.starts_run[size_t(K - res.selection.k_values.front())]
                           : cfg.starts;
  auto fits = run_tasks(comm, n_starts, [&](int s, MPI_Comm sub) {
    FitOptions o = fit_options(cfg, K);
    o.start = kStartShared + std::uint64_t(s);
    MaskedHals h(ptrs, P, o, sub);
    h.init_random();
    return pack_fit(h.run());
  });
  for (int s = 0; s < n_starts; ++s) {
    FitResult r = unpack_fit(fits[size_t(s)], ptrs);
    res.start_objectives.push_back(r.objective);
    res.start_W.push_back(r.W);
    if (s == 0 || r.objective < res.fit.objective) {
      res.fit = std::move(r);
      res.best_start = s;
    }
  }
  res.stability = start_stability(res.start_W, res.start_objectives, res.best_start, P, K, &res.starts_at_best);
  log::info(comm, "modes: K = ", K, ", best of ", n_starts, " starts: objective ", res.fit.objective, " (start ",
            res.best_start, ", ", res.fit.iterations, " iterations), stability across the ", res.starts_at_best,
            " starts at the best objective ", res.stability);
  if (cfg.sparsify) {
    res.objective_before_sparsify = res.fit.objective;
    res.fit = sparsify(ptrs, P, fit_options(cfg, K), res.fit, comm, 0.01, 50, &res.sparsify_accepted);
    log::info(comm, "modes: sparsifying step: ", res.sparsify_accepted, " move(s) kept, objective ",
              res.objective_before_sparsify, " -> ", res.fit.objective);
  }
  if (cfg.conserve) conservation(animals, L, cfg, res, comm);
  // Behaviour profiles for the animals that have labels (NaN rows for the others).
  bool states = false;
  for (auto& a : animals) states = states || !a.states.empty();
  if (states && !state_names.empty()) behaviour(animals, state_names, res);
  return res;
}

}  // namespace cohortnet::modes
