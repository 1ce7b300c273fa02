#include "fit/memory.hpp"

#include "fit/gains.hpp"
#include "fit/quality.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <sstream>

namespace cohortnet::fit {

MemoryPlan plan_fit_memory(const FitSizes& s, const Params& p) {
  const double N = double(s.n_units), T = double(s.n_samples), M = double(std::max(1, s.n_regions));
  const double L = double((s.n_samples - 1) * p.dt_factor + 1), Ts = T;
  const double m = std::ceil(N / double(std::max(1, s.ranks)));
  const double nmax =
      s.largest_region > 0 ? double(s.largest_region) : std::min(N, std::ceil(2.0 * N / M));
  const double B = double(p.update_block), nin = double(s.n_inputs);
  const double ng = double(p.gain_drivers(s.n_inputs));  // the gains' drivers (inputs, or latent factors)
  const Prior prior = p.prior_used();
  // Target regions a rank's rows span: the fit holds the units grouped by region (UnitOrder), so
  // about M m / N + 1 (a caller that hands the Trainer interleaved rows can span up to min(M, m)).
  const double H = std::min({M, m, std::ceil(M * m / N) + 1});
  // Slots of J's pending row vectors: one per P a rank's rows use.
  const double slots = prior == Prior::Shared ? 1.0 : prior == Prior::Region ? M : H;
  MemoryPlan plan;
  auto add = [&](const char* phase, const char* name, double doubles) {
    plan.terms.push_back({phase, name, 8.0 * doubles});
  };
  add("always", "J rows (m N)", m * N);
  if (prior == Prior::Shared) add("always", "P rows (m N)", m * N);
  else if (prior == Prior::Region) add("always", "P_Q rows, every region (M m N)", M * m * N);
  else add("always", "P_Q blocks, own region's sources (m n_max)", m * (nmax + nin));
  if (p.stop_used()) add("always", "best run's J rows, --stop-when-flat (m N)", m * N);
  add("always", "input noise rows (m L)", m * L);
  add("always", "target and rates rows (2 m T)", 2 * m * T);
  add("always", "pending RLS terms (B (m + S N))", B * (m + slots * N) +
      (prior == Prior::Region ? B * M * m : prior == Prior::Block ? B * (m + slots * (nmax + nin)) : B * m));
  add("always", "input parts of P (replicated)", (prior == Prior::Shared ? 1.0 : M) * nin * (N + nin) + m * nin * 2);
  add("setup", "activity rows as read (m T)", m * T);
  if (p.gains_used()) add("always", "the gains' drivers at the samples (replicated, T C_g)", T * ng);
  if (p.latent_gains())  // gain_drivers.cpp: the smoothed activity, all samples and the training ones
    add("setup", "latent factors: smoothed activity rows (2 m T)", 2 * m * T);
  if (p.starts_from_regression()) {
    const double n = N + nin;
    // The fit chooses with its training samples (about T - held out); the terms use T (a bound).
    const double Ts_used = p.split_used() ? T * (1.0 - p.holdout_fraction) : T;
    const bool primal = p.start_form == StartForm::Primal || (p.start_form == StartForm::Auto && n < Ts_used);
    if (p.gains_used() && gated_start_primal(p.start_form, n, Ts_used, int(M), int(ng), p.gains_folds)) {
      // gains_primal.cpp: every source's samples, the folds' moments H (P n^2 each), a fold's A,
      // its factor, B, V W^T and W W^T (5 n^2), the target's K per fold and its rows' samples.
      const double P = moment_pairs(int(ng));
      add("start", "gains (primal): Z, Y, the inputs, every source's samples (2 m Ts + n Ts)", 2 * m * Ts + n * Ts);
      add("start", "gains (primal): the folds' moments and a fold's systems ((F P + 5) n^2)",
          (p.gains_folds * P + 5.0) * n * n);
      add("start", "gains (primal): the target's moments and weights ((F + 1)(C + 1) n m + 4 n m)",
          ((p.gains_folds + 1.0) * (ng + 1.0) + 4.0) * n * m);
    } else if (p.gains_used()) {
      // gated_start.cpp: every source region's Gram matrix, the inputs', a fold's K, Kc and the
      // Omega matrices (about 4 Ts^2), per-source alpha x gains (M m Ts) and the gains (M^2 Ts).
      add("start", "gains: Z, Y, alpha and a received block (6 m Ts)", 6 * m * Ts);
      add("start", "gains: Gram matrices of every source region and the folds' (M + 5) Ts^2", (M + 5.0) * Ts * Ts);
      add("start", "gains: alpha times each source's gains, the gains (M m Ts + M^2 Ts)", M * m * Ts + M * M * Ts);
    } else if (primal) {
      add("start", "Z, Y and the inputs' samples (2 m Ts + n_in Ts)", 2 * m * Ts + nin * Ts);
      add("start", "primal: all sources' samples, source Gram and factor (n Ts + 2 n^2 + n m)",
          n * Ts + 2 * n * n + n * m + n * m + m * Ts);
    } else {
      add("start", "Z, Y, alpha and a received block (6 m Ts)", 6 * m * Ts);
      add("start", "Gram matrices and factor (4 Ts^2)", 4 * Ts * Ts);
    }
  }
  if (p.split_used()) {
    // The held-out evaluation (output.cpp, quality.cpp): the VAR baseline's Gram matrix of the P
    // training pairs on every rank (left out above kMaxVarPairs), its centred pairs and its
    // predictions, and the model rates kept across the noise-free run. P <= T (1 - holdout).
    const double P = std::floor(T * (1.0 - p.holdout_fraction));
    add("evaluate", "model rates kept across the noise-free run (m T)", m * T);
    if (P <= double(kMaxVarPairs))
      add("evaluate", "VAR baseline: Gram matrix of the training pairs, centred pairs, predictions (P^2 + 2 m P + m T)",
          P * P + 2 * m * P + m * T);
  }
  // The decomposition by rows (decompose::region_currents_by_rows): rates gathered a time chunk
  // at a time, the summaries of the target regions a rank holds (grouped units: about M m / N + 1).
  const double Tc = std::min(T, std::max(1.0, std::floor(8e6 / N)));
  add("output", "row-major J, put in file order in place (m N)", m * N);
  add("output", "rates rows, file-order copy, one chunk of all rates (2 m T + N Tc)", 2 * m * T + N * Tc);
  add("output", "current sums and summaries of held targets (12 H M T)", 12 * H * M * T);
  add("output", "per-source blocks (2 m n_max + n_max Tc + 2 m Tc)", 2 * m * nmax + nmax * Tc + 2 * m * Tc);
  add("checkpoint", "row-major J and one P (m N + P rows)", m * N + (prior == Prior::Block ? m * nmax : m * N));
  std::map<std::string, double> by_phase;
  for (const auto& t : plan.terms) by_phase[t.phase] += t.bytes;
  plan.always = by_phase["always"];
  plan.peak = plan.always;
  plan.peak_phase = "training";
  for (const auto& [phase, bytes] : by_phase)
    if (phase != "always" && plan.always + bytes > plan.peak) {
      plan.peak = plan.always + bytes;
      plan.peak_phase = phase;
    }
  return plan;
}

std::string MemoryPlan::table() const {
  std::ostringstream os;
  os << std::setprecision(3);
  for (const auto& t : terms) os << "  " << std::left << std::setw(10) << t.phase << " " << std::setw(52) << t.name << " " << t.bytes / 1e9 << " GB\n";
  os << "  peak (" << peak_phase << "): " << peak / 1e9 << " GB per rank";
  return os.str();
}

}  // namespace cohortnet::fit
