// Fit quality: held-out split, autocorrelation time, defaults from the data, baselines, status
// and stopping (quality.hpp; docs/fit.md "Fit quality: in sample and held out").
#include "fit/quality.hpp"

#include <petscsys.h>  // before petscblaslapack.h, which needs its macros
#include <petscblaslapack.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>

#include "core/error.hpp"
#include "core/parallel.hpp"

namespace cohortnet::fit {

namespace {

// Gathers each rank's per-row values (k per row) in global row order, so sums over rows are
// added in one order whatever the number of ranks.
std::vector<double> gather_rows(const std::vector<double>& local, MPI_Comm comm) {
  const int p = comm_size(comm);
  int n = int(local.size());
  std::vector<int> counts(static_cast<size_t>(p)), offsets(static_cast<size_t>(p), 0);
  MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, comm);
  for (int r = 1; r < p; ++r) offsets[size_t(r)] = offsets[size_t(r - 1)] + counts[size_t(r - 1)];
  std::vector<double> all(size_t(offsets.back() + counts.back()));
  MPI_Allgatherv(local.data(), n, MPI_DOUBLE, all.data(), counts.data(), offsets.data(), MPI_DOUBLE, comm);
  return all;
}

std::int64_t global_rows(std::int64_t local, MPI_Comm comm) {
  std::int64_t n = 0;
  MPI_Allreduce(&local, &n, 1, MPI_INT64_T, MPI_SUM, comm);
  return n;
}

bool sorted_contains(const std::vector<std::int64_t>& v, std::int64_t t) {
  return std::binary_search(v.begin(), v.end(), t);
}

std::vector<std::int64_t> clean_starts(std::int64_t T, std::vector<std::int64_t> starts) {
  starts.push_back(0);
  std::sort(starts.begin(), starts.end());
  starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
  for (std::int64_t s : starts)
    if (s < 0 || s >= T) fail("trial start ", s, " is outside the recording's ", T, " samples");
  return starts;
}

// Trials: in each condition hold out h = round(f n) of its n trials (1 <= h <= n-1), evenly
// spread, the last included.
void hold_out_trials(Split& s, const std::vector<std::int64_t>& starts, const std::vector<int>& conditions,
                     double fraction) {
  const size_t n_trials = starts.size();
  if (!conditions.empty() && conditions.size() != n_trials)
    fail("--holdout trials: ", conditions.size(), " condition labels for ", n_trials, " trials");
  std::map<int, std::vector<size_t>> by_cond;
  for (size_t k = 0; k < n_trials; ++k) by_cond[conditions.empty() ? 0 : conditions[k]].push_back(k);
  int held = 0;
  for (auto& [c, idx] : by_cond) {
    const std::int64_t n = std::int64_t(idx.size());
    if (n < 2) continue;  // a lone trial stays in training (its condition needs it)
    const std::int64_t h = std::clamp<std::int64_t>(std::llround(fraction * double(n)), 1, n - 1);
    for (std::int64_t j = 0; j < n; ++j) {
      if ((j + 1) * h / n == j * h / n) continue;
      const size_t k = idx[size_t(j)];
      const std::int64_t b = starts[k], e = k + 1 < n_trials ? starts[k + 1] : s.T;
      for (std::int64_t t = b; t < e; ++t) s.held_out[size_t(t)] = 1;
      ++held;
    }
  }
  if (held == 0) fail("--holdout trials: no condition has two trials; use --holdout end or blocks");
  s.description = cat("trials: ", held, " of ", n_trials, " trials held out");
}

void hold_out_range(Split& s, std::int64_t b, std::int64_t e) {
  for (std::int64_t t = b; t < e; ++t) s.held_out[size_t(t)] = 1;
}

void make_segments(Split& s, const std::vector<std::int64_t>& starts) {
  for (std::int64_t t = 0; t < s.T; ++t) {
    const bool edge = t == 0 || s.held_out[size_t(t)] != s.held_out[size_t(t - 1)] || sorted_contains(starts, t);
    if (edge) {
      if (!s.segments.empty()) s.segments.back().end = t;
      s.segments.push_back({t, s.T, s.held_out[size_t(t)] != 0});
      s.resets.push_back(t);
    }
  }
}

// Per-row sums over a set of samples, gathered: the pieces of pVar(S).
struct SetPvar {
  double pvar = 0;
  std::int64_t n = 0;
};
SetPvar pvar_on(const Rows& D, const Rows& P, const std::vector<std::int64_t>& cols, MPI_Comm comm) {
  const std::int64_t N = global_rows(D.rows, comm);
  std::vector<double> sums(size_t(D.rows), 0.0);
  for (std::int64_t i = 0; i < D.rows; ++i)
    for (std::int64_t t : cols) sums[size_t(i)] += D(i, t);
  const std::vector<double> all_sums = gather_rows(sums, comm);
  const double n_entries = double(N) * double(cols.size());
  const double mean = std::accumulate(all_sums.begin(), all_sums.end(), 0.0) / n_entries;
  std::vector<double> parts(size_t(2 * D.rows), 0.0);  // per row: squared deviation, squared error
  for (std::int64_t i = 0; i < D.rows; ++i)
    for (std::int64_t t : cols) {
      const double d = D(i, t), e = d - P(i, t);
      parts[size_t(2 * i)] += (d - mean) * (d - mean);
      parts[size_t(2 * i + 1)] += e * e;
    }
  const std::vector<double> all = gather_rows(parts, comm);
  double ss = 0, sse = 0;
  for (size_t k = 0; k < all.size(); k += 2) {
    ss += all[k];
    sse += all[k + 1];
  }
  // sse / (N n sigma^2) with sigma^2 = ss / (N n): the fit's formula on these columns.
  if (cols.empty()) return {std::numeric_limits<double>::quiet_NaN(), 0};
  return {ss > 0 ? 1.0 - sse / ss : std::numeric_limits<double>::quiet_NaN(), std::int64_t(cols.size())};
}

double interpolate_crossing(std::int64_t k, double prev, double cur) {
  const double level = std::exp(-1.0);
  if (prev > 0 && cur > 0) return double(k - 1) + std::log(prev / level) / std::log(prev / cur);
  return double(k - 1) + (prev - level) / (prev - cur);
}

// Training pairs (t, t+1): both training samples of one segment.
std::vector<std::int64_t> training_pairs(const Split& s) {
  std::vector<std::int64_t> pairs;
  for (const Segment& g : s.segments)
    if (!g.held_out)
      for (std::int64_t t = g.begin; t + 1 < g.end; ++t) pairs.push_back(t);
  return pairs;
}

Rows row_major(const std::vector<double>& v, std::int64_t rows, std::int64_t T) {
  return Rows::row_major(v.data(), rows, T);
}

}  // namespace

// ---- split ---------------------------------------------------------------------------------
SplitMode parse_split_mode(const std::string& s) {
  if (s == "auto") return SplitMode::Auto;
  if (s == "trials") return SplitMode::Trials;
  if (s == "end") return SplitMode::End;
  if (s == "blocks") return SplitMode::Blocks;
  fail("--holdout: unknown mode '", s, "' (auto, trials, end or blocks)");
}

std::string to_string(SplitMode m) {
  switch (m) {
    case SplitMode::Auto: return "auto";
    case SplitMode::Trials: return "trials";
    case SplitMode::End: return "end";
    case SplitMode::Blocks: return "blocks";
  }
  return "?";
}

std::int64_t Split::n_held_out() const {
  return std::int64_t(std::count(held_out.begin(), held_out.end(), std::uint8_t(1)));
}

bool Split::is_reset(std::int64_t t) const { return sorted_contains(resets, t); }

Split make_split(std::int64_t T, const std::vector<std::int64_t>& trial_starts, const std::vector<int>& conditions,
                 const SplitOptions& opt) {
  if (T < 4) fail("--holdout: the recording has ", T, " samples; a held-out split needs at least 4");
  if (!(opt.fraction > 0 && opt.fraction < 1)) fail("--holdout-fraction must lie in (0, 1), got ", opt.fraction);
  const std::vector<std::int64_t> starts = clean_starts(T, trial_starts);
  Split s;
  s.T = T;
  s.held_out.assign(size_t(T), 0);
  s.mode = opt.mode == SplitMode::Auto ? (starts.size() >= 3 ? SplitMode::Trials : SplitMode::End) : opt.mode;
  if (s.mode == SplitMode::Trials) {
    if (starts.size() < 3) fail("--holdout trials needs at least 3 trials; the recording has ", starts.size());
    hold_out_trials(s, starts, conditions, opt.fraction);
  } else if (s.mode == SplitMode::End) {
    const std::int64_t h = std::clamp<std::int64_t>(std::llround(opt.fraction * double(T)), 1, T - 2);
    hold_out_range(s, T - h, T);
    s.description = cat("end: samples ", T - h, "-", T - 1, " held out (", h, " of ", T, ")");
  } else {
    const std::int64_t B = opt.blocks;
    if (B < 1 || 2 * B > T) fail("--holdout-blocks must lie in 1..", T / 2, ", got ", B);
    for (std::int64_t b = 0; b < B; ++b) {
      const std::int64_t lo = b * T / B, hi = (b + 1) * T / B, len = hi - lo;
      const std::int64_t h = std::clamp<std::int64_t>(std::llround(opt.fraction * double(len)), 1, len - 1);
      hold_out_range(s, hi - h, hi);
    }
    s.description = cat("blocks: the last ", opt.fraction, " of each of ", B, " equal chunks held out");
  }
  make_segments(s, starts);
  const std::int64_t h = s.n_held_out();
  if (h == 0 || h == T) fail("--holdout ", to_string(s.mode), ": one side of the split is empty");
  return s;
}

Split whole_recording(std::int64_t T, const std::vector<std::int64_t>& trial_starts) {
  Split s;
  s.mode = SplitMode::End;
  s.T = T;
  s.held_out.assign(size_t(T), 0);
  make_segments(s, clean_starts(T, trial_starts));
  s.description = "none";
  return s;
}

std::vector<std::int64_t> horizon_resets(const Split& s, std::int64_t K) {
  std::vector<std::int64_t> r;
  for (const Segment& g : s.segments)
    for (std::int64_t t = g.begin; t < g.end; t += (K > 0 ? K : g.end - g.begin)) r.push_back(t);
  return r;
}

// ---- autocorrelation -----------------------------------------------------------------------
Autocorrelation autocorrelation_time(const Rows& x, const Split& s, MPI_Comm comm, std::int64_t max_lag) {
  std::int64_t longest = 0;
  for (const Segment& g : s.segments)
    if (!g.held_out) longest = std::max(longest, g.end - g.begin);
  if (max_lag <= 0) max_lag = std::max<std::int64_t>(1, longest / 2);
  std::vector<double> tau(size_t(x.rows), -1.0), capped(size_t(x.rows), 0.0);  // -1: constant unit
  std::vector<double> z(size_t(x.T), 0.0);
  for (std::int64_t i = 0; i < x.rows; ++i) {
    double sum = 0, n = 0;
    for (std::int64_t t = 0; t < x.T; ++t)
      if (!s.held_out[size_t(t)]) sum += x(i, t), ++n;
    const double mean = sum / n;
    double ss = 0;
    for (std::int64_t t = 0; t < x.T; ++t)
      if (!s.held_out[size_t(t)]) ss += (x(i, t) - mean) * (x(i, t) - mean);
    const double sd = std::sqrt(ss / n);
    if (!(sd > 1e-12 * std::max(1.0, std::abs(mean)))) continue;
    for (std::int64_t t = 0; t < x.T; ++t) z[size_t(t)] = (x(i, t) - mean) / sd;
    double prev = 1.0;
    tau[size_t(i)] = double(max_lag);
    capped[size_t(i)] = 1;
    for (std::int64_t k = 1; k <= max_lag; ++k) {
      double c = 0, m = 0;
      for (const Segment& g : s.segments)
        if (!g.held_out)
          for (std::int64_t t = g.begin; t + k < g.end; ++t) c += z[size_t(t)] * z[size_t(t + k)], ++m;
      if (m == 0) break;
      const double acf = c / m;
      if (acf < std::exp(-1.0)) {
        tau[size_t(i)] = interpolate_crossing(k, prev, acf);
        capped[size_t(i)] = 0;
        break;
      }
      prev = acf;
    }
  }
  const std::vector<double> all = gather_rows(tau, comm), all_capped = gather_rows(capped, comm);
  Autocorrelation a;
  a.max_lag = max_lag;
  std::vector<double> used;
  for (size_t k = 0; k < all.size(); ++k)
    if (all[k] >= 0) used.push_back(all[k]), a.capped += int(all_capped[k]);
  if (used.empty()) fail("autocorrelation time: every unit is constant on the training samples");
  a.units = int(used.size());
  a.mean_samples = std::accumulate(used.begin(), used.end(), 0.0) / double(used.size());
  std::sort(used.begin(), used.end());
  const size_t h = used.size() / 2;
  a.tau_samples = used.size() % 2 ? used[h] : 0.5 * (used[h - 1] + used[h]);
  return a;
}

// ---- defaults from the data ----------------------------------------------------------------
void check_time_step(double sample_interval, int dt_factor, double tau_rnn, bool dt_factor_given, bool tau_given) {
  if (!(sample_interval > 0) || dt_factor < 1 || !(tau_rnn > 0))
    fail("internal: check_time_step needs a positive sample interval, dt-factor and tau");
  const double dt = sample_interval / double(dt_factor), ratio = dt / tau_rnn;
  if (ratio < 0.5) return;
  const int need = int(std::ceil(5.0 * sample_interval / tau_rnn - 1e-9));
  std::string named = dt_factor_given && tau_given ? "--dt-factor and --tau-rnn"
                      : dt_factor_given            ? "--dt-factor"
                      : tau_given                  ? "--tau-rnn"
                                                   : "the dt-factor and tau-rnn from the data";
  fail(named, ": --dt-factor ", dt_factor, " with --tau-rnn ", tau_rnn, " s at sample interval ", sample_interval,
       " s gives dt/tau = ", ratio, " >= 0.5, where the Euler-stepped network saturates; use --dt-factor ", need,
       " or more (dt <= tau/5), a longer --tau-rnn, or leave both unset to take them from the data");
}

TimeSettings resolve_time_settings(double sample_interval, double tau_ac_samples, std::optional<double> tau_rnn_given,
                                   std::optional<int> dt_factor_given) {
  if (!(sample_interval > 0)) fail("the sample interval must be positive, got ", sample_interval);
  TimeSettings ts;
  ts.tau_from_data = !tau_rnn_given;
  ts.dt_factor_from_data = !dt_factor_given;
  // The units must be faster than the collective dynamics they make: a recurrent network's rates
  // stay correlated far longer than its units' tau (simulator: tau 0.1 s, rates' 0.58 s).
  ts.tau_rnn = tau_rnn_given ? *tau_rnn_given
                             : std::max(tau_ac_samples / kAutocorrelationsPerTau, 2.0) * sample_interval;
  ts.dt_factor = dt_factor_given ? *dt_factor_given
                                 : std::max(1, int(std::ceil(5.0 * sample_interval / ts.tau_rnn - 1e-9)));
  check_time_step(sample_interval, ts.dt_factor, ts.tau_rnn, bool(dt_factor_given), bool(tau_rnn_given));
  const double ratio = sample_interval / double(ts.dt_factor) / ts.tau_rnn;
  if (ratio > 0.2 + 1e-12)
    ts.warning = cat("dt/tau = ", ratio, " > 0.2 (--dt-factor ", ts.dt_factor, ", --tau-rnn ", ts.tau_rnn,
                     " s): the Euler steps are coarse; dt <= tau/5 is safer");
  return ts;
}

std::int64_t auto_horizon(double tau_ac_samples, double per_autocorrelation) {
  return std::max<std::int64_t>(2, std::llround(per_autocorrelation * tau_ac_samples));
}

// ---- pVar on a part ------------------------------------------------------------------------
Score pvar_score(const Rows& D, const Rows& P, const Split& s, const std::vector<std::int64_t>& resets, Part part,
                 MPI_Comm comm) {
  std::vector<std::int64_t> all, non_reset;
  const std::uint8_t want = part == Part::HeldOut ? 1 : 0;
  for (std::int64_t t = 0; t < s.T; ++t)
    if (s.held_out[size_t(t)] == want) {
      all.push_back(t);
      if (!sorted_contains(resets, t)) non_reset.push_back(t);
    }
  const SetPvar a = pvar_on(D, P, all, comm), b = pvar_on(D, P, non_reset, comm);
  return {a.pvar, b.pvar, a.n, b.n};
}

// ---- baselines -----------------------------------------------------------------------------
std::vector<double> predict_mean(const Rows& D, const Split& s) {
  std::vector<double> out(size_t(D.rows * D.T), 0.0);
  for (std::int64_t i = 0; i < D.rows; ++i) {
    double sum = 0, n = 0;
    for (std::int64_t t = 0; t < D.T; ++t)
      if (!s.held_out[size_t(t)]) sum += D(i, t), ++n;
    std::fill_n(&out[size_t(i * D.T)], size_t(D.T), sum / n);
  }
  return out;
}

std::vector<double> predict_var(const Rows& D, const Split& s, const std::vector<std::int64_t>& resets, MPI_Comm comm,
                                double ridge, double* lambda_out, std::int64_t* pairs_out,
                                const std::optional<Part>& only_part) {
  if (!(ridge > 0)) fail("VAR baseline: the ridge must be positive, got ", ridge);
  const std::int64_t m = D.rows, T = D.T, N = global_rows(m, comm);
  const std::vector<std::int64_t> pairs = training_pairs(s);
  const std::int64_t P = std::int64_t(pairs.size());
  if (P < 2) fail("VAR baseline: the training part has ", P, " sample pairs; it needs at least 2");
  // Centred training pairs: x~ = D(t) - mu_x, y~ = D(t+1) - mu_y (the intercept b is not penalised).
  std::vector<double> mux(size_t(m), 0.0), muy(size_t(m), 0.0), X(size_t(m * P)), Y(size_t(m * P));
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t t : pairs) mux[size_t(i)] += D(i, t), muy[size_t(i)] += D(i, t + 1);
    mux[size_t(i)] /= double(P);
    muy[size_t(i)] /= double(P);
    for (std::int64_t a = 0; a < P; ++a) {
      X[size_t(i * P + a)] = D(i, pairs[size_t(a)]) - mux[size_t(i)];
      Y[size_t(i * P + a)] = D(i, pairs[size_t(a)] + 1) - muy[size_t(i)];
    }
  }
  // Dual ridge: A = Y~ (X~^T X~ + lambda I)^-1 X~^T. The P x P Gram matrix is a sum over rows.
  std::vector<double> G(size_t(P * P), 0.0);
  for (std::int64_t i = 0; i < m; ++i) {
    const double* xi = &X[size_t(i * P)];
    for (std::int64_t b = 0; b < P; ++b) {
      const double xb = xi[b];
      double* gb = &G[size_t(b * P)];
      for (std::int64_t a = b; a < P; ++a) gb[a] += xi[a] * xb;  // lower triangle, column b
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, G.data(), int(P * P), MPI_DOUBLE, MPI_SUM, comm);
  double trace = 0;
  for (std::int64_t a = 0; a < P; ++a) trace += G[size_t(a * P + a)];
  const double lambda = ridge * trace / double(N);
  for (std::int64_t a = 0; a < P; ++a) G[size_t(a * P + a)] += lambda;
  PetscBLASInt n = PetscBLASInt(P), info = 0;
  LAPACKpotrf_("L", &n, G.data(), &n, &info);
  if (info != 0) fail("VAR baseline: the ridge Gram matrix is not positive definite (potrf info ", info, ")");
  if (lambda_out) *lambda_out = lambda;
  if (pairs_out) *pairs_out = P;

  // Chains: from each reset, the data, then x(t+1) = mu_y + A (x(t) - mu_x), all chains at once.
  std::vector<double> out(size_t(m * T), 0.0);
  std::vector<std::int64_t> begin, len;
  const std::uint8_t want = only_part == Part::HeldOut ? 1 : 0;
  for (size_t c = 0; c < resets.size(); ++c) {
    if (only_part && s.held_out[size_t(resets[c])] != want) continue;
    begin.push_back(resets[c]);
    len.push_back((c + 1 < resets.size() ? resets[c + 1] : T) - resets[c]);
    for (std::int64_t i = 0; i < m; ++i) out[size_t(i * T + resets[c])] = D(i, resets[c]);
  }
  const std::int64_t longest = len.empty() ? 0 : *std::max_element(len.begin(), len.end());
  for (std::int64_t k = 1; k < longest; ++k) {
    std::vector<size_t> active;
    for (size_t c = 0; c < begin.size(); ++c)
      if (len[c] > k) active.push_back(c);
    const std::int64_t nc = std::int64_t(active.size());
    std::vector<double> V(size_t(P * nc), 0.0);  // column-major P x nc: X~^T (x - mu_x)
    for (std::int64_t j = 0; j < nc; ++j) {
      const std::int64_t t = begin[active[size_t(j)]] + k - 1;
      for (std::int64_t i = 0; i < m; ++i) {
        const double d = out[size_t(i * T + t)] - mux[size_t(i)];
        const double* xi = &X[size_t(i * P)];
        double* v = &V[size_t(j * P)];
        for (std::int64_t a = 0; a < P; ++a) v[a] += xi[a] * d;
      }
    }
    MPI_Allreduce(MPI_IN_PLACE, V.data(), int(P * nc), MPI_DOUBLE, MPI_SUM, comm);
    PetscBLASInt nrhs = PetscBLASInt(nc);
    LAPACKpotrs_("L", &n, &nrhs, G.data(), &n, V.data(), &n, &info);
    if (info != 0) fail("VAR baseline: potrs failed (info ", info, ")");
    for (std::int64_t j = 0; j < nc; ++j) {
      const std::int64_t t = begin[active[size_t(j)]] + k;
      const double* w = &V[size_t(j * P)];
      for (std::int64_t i = 0; i < m; ++i) {
        const double* yi = &Y[size_t(i * P)];
        double acc = 0;
        for (std::int64_t a = 0; a < P; ++a) acc += yi[a] * w[a];
        out[size_t(i * T + t)] = muy[size_t(i)] + acc;
      }
    }
  }
  return out;
}

std::vector<double> predict_trial_average(const Rows& D, const Split& s, const std::vector<std::int64_t>& trial_starts,
                                          const std::vector<int>& conditions) {
  const std::vector<std::int64_t> starts = clean_starts(D.T, trial_starts);
  if (starts.size() < 2) return {};
  if (!conditions.empty() && conditions.size() != starts.size())
    fail("trial-average baseline: ", conditions.size(), " condition labels for ", starts.size(), " trials");
  const std::vector<double> fallback = predict_mean(D, s);
  std::vector<double> out = fallback;
  // Per condition: the mean over its training trials at each offset from the trial start.
  std::map<int, std::vector<size_t>> by_cond;
  for (size_t k = 0; k < starts.size(); ++k) by_cond[conditions.empty() ? 0 : conditions[k]].push_back(k);
  auto trial_end = [&](size_t k) { return k + 1 < starts.size() ? starts[k + 1] : D.T; };
  for (const auto& [c, idx] : by_cond) {
    std::int64_t longest = 0;
    for (size_t k : idx) longest = std::max(longest, trial_end(k) - starts[k]);
    for (std::int64_t i = 0; i < D.rows; ++i) {
      std::vector<double> sum(size_t(longest), 0.0), cnt(size_t(longest), 0.0);
      for (size_t k : idx)
        for (std::int64_t t = starts[k]; t < trial_end(k); ++t)
          if (!s.held_out[size_t(t)]) sum[size_t(t - starts[k])] += D(i, t), cnt[size_t(t - starts[k])] += 1;
      for (size_t k : idx)
        for (std::int64_t t = starts[k]; t < trial_end(k); ++t) {
          const size_t o = size_t(t - starts[k]);
          if (cnt[o] > 0) out[size_t(i * D.T + t)] = sum[o] / cnt[o];  // else the unit's mean
        }
    }
  }
  return out;
}

double Baselines::best_non_reset() const {
  double b = std::max(mean.non_reset, var.non_reset);
  if (trial_avg) b = std::max(b, trial_avg->non_reset);
  return b;
}

std::string Baselines::best_name() const {
  const double b = best_non_reset();
  if (trial_avg && trial_avg->non_reset == b) return "trial average";
  return var.non_reset == b ? "VAR(1)" : "unit mean";
}

double choose_var_ridge(const Rows& D, const Split& s, std::int64_t K, MPI_Comm comm, const VarOptions& vo) {
  if (vo.grid.empty()) fail("VAR baseline: empty ridge grid");
  // Inner split: the last inner_fraction of the training samples (time order) validate.
  std::vector<std::int64_t> train;
  for (std::int64_t t = 0; t < s.T; ++t)
    if (!s.held_out[size_t(t)]) train.push_back(t);
  const std::int64_t n_val = std::clamp<std::int64_t>(std::llround(vo.inner_fraction * double(train.size())), 1,
                                                      std::int64_t(train.size()) - 2);
  Split inner = s;
  inner.segments.clear();
  inner.resets.clear();
  std::vector<std::uint8_t> val(size_t(s.T), 0);
  for (size_t k = train.size() - size_t(n_val); k < train.size(); ++k)
    inner.held_out[size_t(train[k])] = 1, val[size_t(train[k])] = 1;
  make_segments(inner, s.resets);
  const std::vector<std::int64_t> resets = horizon_resets(inner, K);
  std::vector<std::int64_t> cols;
  for (std::int64_t t = 0; t < s.T; ++t)
    if (val[size_t(t)] && !sorted_contains(resets, t)) cols.push_back(t);
  if (cols.empty()) return vo.grid.front();
  double best = -INFINITY, chosen = vo.grid.front();
  for (double ridge : vo.grid) {
    const std::vector<double> p = predict_var(D, inner, resets, comm, ridge, nullptr, nullptr, Part::HeldOut);
    const double score = pvar_on(D, row_major(p, D.rows, D.T), cols, comm).pvar;
    if (score > best) best = score, chosen = ridge;
  }
  return chosen;
}

std::string describe(const Baselines& b) {
  char line[200];
  std::snprintf(line, sizeof line, "unit mean %.3f, VAR(1) at K %lld %.3f (ridge %g)", b.mean.non_reset,
                (long long)b.horizon, b.var.non_reset, b.var_ridge);
  std::string out = line;
  if (b.trial_avg) out += cat(", trial average ", b.trial_avg->non_reset);
  return out;
}

Baselines baselines(const Rows& D, const Split& s, std::int64_t K, MPI_Comm comm, const std::vector<int>& conditions,
                    const std::vector<std::int64_t>& trial_starts, const VarOptions& vo) {
  Baselines b;
  b.horizon = K;
  const std::vector<std::int64_t> resets = horizon_resets(s, K);
  const std::vector<double> pm = predict_mean(D, s);
  b.mean = pvar_score(D, row_major(pm, D.rows, D.T), s, resets, Part::HeldOut, comm);
  b.var_ridge = vo.ridge > 0 ? vo.ridge : choose_var_ridge(D, s, K, comm, vo);
  const std::vector<double> pv = predict_var(D, s, resets, comm, b.var_ridge, &b.var_lambda, &b.var_pairs, Part::HeldOut);
  b.var = pvar_score(D, row_major(pv, D.rows, D.T), s, resets, Part::HeldOut, comm);
  if (s.mode == SplitMode::Trials && !conditions.empty()) {
    const std::vector<double> pt = predict_trial_average(D, s, trial_starts, conditions);
    if (!pt.empty()) b.trial_avg = pvar_score(D, row_major(pt, D.rows, D.T), s, resets, Part::HeldOut, comm);
  }
  return b;
}

// ---- status and stopping -------------------------------------------------------------------
Saturation saturation(const Rows& R, const Rows& D, const Split& s, Part part, MPI_Comm comm) {
  const std::uint8_t want = part == Part::HeldOut ? 1 : 0;
  std::vector<double> c(size_t(2 * R.rows), 0.0);
  std::int64_t n = 0;
  for (std::int64_t t = 0; t < s.T; ++t)
    if (s.held_out[size_t(t)] == want) {
      ++n;
      for (std::int64_t i = 0; i < R.rows; ++i) {
        c[size_t(2 * i)] += std::abs(R(i, t)) > 0.99 ? 1 : 0;
        c[size_t(2 * i + 1)] += std::abs(D(i, t)) > 0.99 ? 1 : 0;
      }
    }
  const std::vector<double> all = gather_rows(c, comm);
  double model = 0, target = 0;
  for (size_t k = 0; k < all.size(); k += 2) model += all[k], target += all[k + 1];
  const double entries = double(all.size() / 2) * double(n);
  return entries > 0 ? Saturation{model / entries, target / entries} : Saturation{};
}

std::string to_string(FitStatus s) {
  switch (s) {
    case FitStatus::Ok: return "ok";
    case FitStatus::Poor: return "poor";
    case FitStatus::Failed: return "failed";
  }
  return "?";
}

namespace {
std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}
}  // namespace

std::string training_failure(const std::vector<double>& run_pvar, const Saturation& sat, bool diverged,
                             const StatusRule& rule) {
  if (diverged) return "diverged: the trainer's health check failed";
  for (size_t r = 0; r < run_pvar.size(); ++r)
    if (!std::isfinite(run_pvar[r])) return cat("diverged: pVar of run ", r + 1, " is not finite");
  if (sat.model > rule.saturated_fraction && sat.model > sat.target + rule.saturated_fraction)
    return cat("saturated: ", num(100 * sat.model), "% of model rates have |r| > 0.99 (target ", num(100 * sat.target),
               "%); reduce dt/tau (--dt-factor, --tau-rnn) or --g");
  if (!run_pvar.empty()) {
    const auto best = std::max_element(run_pvar.begin(), run_pvar.end());
    const double last = run_pvar.back();
    if (*best - last > rule.collapse_drop)
      return cat("collapsed: pVar fell from ", num(*best), " (run ", best - run_pvar.begin() + 1, ") to ", num(last),
                 " (run ", run_pvar.size(), ")");
  }
  return "";
}

Verdict classify_fit(const FitEvidence& e, const StatusRule& rule) {
  const std::string failure = training_failure(e.run_pvar, e.sat, e.diverged, rule);
  if (!failure.empty()) return {FitStatus::Failed, failure};
  if (!std::isfinite(e.held_out_pvar))
    return {FitStatus::Poor, "no finite held-out pVar"};
  if (!(e.held_out_pvar > e.best_baseline + rule.min_margin))
    return {FitStatus::Poor, cat("held-out pVar ", num(e.held_out_pvar), " does not beat the ", e.baseline_name, "'s ",
                                 num(e.best_baseline))};
  return {FitStatus::Ok, cat("held-out pVar ", num(e.held_out_pvar), " > ", e.baseline_name, " ", num(e.best_baseline))};
}

std::string stop_run_name(int number) {
  return number == 0 ? std::string("run 0, the regression start") : cat("run ", number);
}

StopDecision should_stop(const std::vector<double>& pvar, const StopRule& rule) {
  StopDecision d;
  int last_gain = -1;
  const int f = rule.first_label;
  for (size_t r = 0; r < pvar.size(); ++r) {
    if (!std::isfinite(pvar[r])) {
      d.stop = true;
      d.reason = cat("pVar of ", stop_run_name(int(r) + f), " is not finite; keeping ", stop_run_name(d.best_run + f));
      return d;
    }
    if (d.best_run < 0 || pvar[r] > d.best + rule.epsilon) last_gain = int(r);
    if (d.best_run < 0 || pvar[r] > d.best) d.best = pvar[r], d.best_run = int(r);
  }
  const int n = int(pvar.size());
  if (n >= rule.min_runs && last_gain >= 0 && n - 1 - last_gain >= rule.window) {
    d.stop = true;
    d.reason = cat("no gain > ", rule.epsilon, " in pVar over the last ", n - 1 - last_gain, " runs; best ",
                   stop_run_name(d.best_run + f), " (pVar ", num(d.best), ")");
  }
  return d;
}

}  // namespace cohortnet::fit
