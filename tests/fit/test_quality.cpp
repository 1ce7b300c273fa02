// Fit quality (src/fit/quality.hpp): the held-out split never leaks, the baselines equal a plain
// direct computation, the autocorrelation time of an AR(1) process matches theory, results are
// the same at 1, 2 and 3 ranks, time-step settings that saturate are refused, and the status and
// stopping rules name what they saw.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.hpp"
#include "core/parallel.hpp"
#include "fit/quality.hpp"

using namespace cohortnet;
using namespace cohortnet::fit;

namespace {

// Full data, identical on every rank (row-major N x T); each rank then takes its rows.
struct Data {
  std::int64_t N = 0, T = 0;
  std::vector<double> x;
  double& at(std::int64_t i, std::int64_t t) { return x[size_t(i * T + t)]; }
  double at(std::int64_t i, std::int64_t t) const { return x[size_t(i * T + t)]; }
};

// Correlated AR(1)-like data in [-1, 1]: x(t+1) = a x(t) + c mix + noise, scaled to look like D.
Data var_data(std::int64_t N, std::int64_t T, unsigned seed) {
  Data d{N, T, std::vector<double>(size_t(N * T))};
  std::mt19937_64 g(seed);
  std::normal_distribution<double> n01(0, 1);
  std::vector<double> x(size_t(N), 0.0), nx(static_cast<size_t>(N));
  for (std::int64_t t = 0; t < T; ++t) {
    for (std::int64_t i = 0; i < N; ++i)
      nx[size_t(i)] = 0.7 * x[size_t(i)] + 0.25 * x[size_t((i + 1) % N)] + 0.3 * n01(g);
    x = nx;
    for (std::int64_t i = 0; i < N; ++i) d.at(i, t) = std::tanh(0.4 * x[size_t(i)]);
  }
  return d;
}

struct Local {
  RowRange rows;
  std::vector<double> x;  // row-major
  Rows view() const { return Rows::row_major(x.data(), rows.count(), T); }
  std::int64_t T = 0;
};
Local local_rows(const Data& d, MPI_Comm comm) {
  Local l;
  l.rows = own_rows(PetscInt(d.N), comm);
  l.T = d.T;
  l.x.assign(d.x.begin() + l.rows.begin * d.T, d.x.begin() + l.rows.end * d.T);
  return l;
}

// ---- direct computations, written plainly on the full data ----
double direct_pvar(const Data& D, const std::vector<double>& P, const std::vector<std::int64_t>& cols) {
  double mean = 0;
  for (std::int64_t i = 0; i < D.N; ++i)
    for (auto t : cols) mean += D.at(i, t);
  mean /= double(D.N) * double(cols.size());
  double var = 0, err = 0;
  for (std::int64_t i = 0; i < D.N; ++i)
    for (auto t : cols) {
      var += (D.at(i, t) - mean) * (D.at(i, t) - mean);
      err += (D.at(i, t) - P[size_t(i * D.T + t)]) * (D.at(i, t) - P[size_t(i * D.T + t)]);
    }
  var /= double(D.N) * double(cols.size());
  return 1.0 - err / (double(D.N) * double(cols.size()) * var);
}

// Solves M z = b by Gaussian elimination with partial pivoting (M n x n row-major, copied).
std::vector<double> solve(std::vector<double> M, std::vector<double> b, int n) {
  for (int c = 0; c < n; ++c) {
    int p = c;
    for (int r = c + 1; r < n; ++r)
      if (std::abs(M[size_t(r * n + c)]) > std::abs(M[size_t(p * n + c)])) p = r;
    for (int k = 0; k < n; ++k) std::swap(M[size_t(c * n + k)], M[size_t(p * n + k)]);
    std::swap(b[size_t(c)], b[size_t(p)]);
    for (int r = c + 1; r < n; ++r) {
      const double f = M[size_t(r * n + c)] / M[size_t(c * n + c)];
      for (int k = c; k < n; ++k) M[size_t(r * n + k)] -= f * M[size_t(c * n + k)];
      b[size_t(r)] -= f * b[size_t(c)];
    }
  }
  std::vector<double> z(static_cast<size_t>(n));
  for (int r = n - 1; r >= 0; --r) {
    double s = b[size_t(r)];
    for (int k = r + 1; k < n; ++k) s -= M[size_t(r * n + k)] * z[size_t(k)];
    z[size_t(r)] = s / M[size_t(r * n + r)];
  }
  return z;
}

// Primal ridge VAR(1): A = Y~ X~^T (X~ X~^T + lambda I)^-1 on the training pairs, iterated from
// the data at every reset (the textbook form, N x N, unlike the library's dual form).
std::vector<double> direct_var(const Data& D, const Split& s, const std::vector<std::int64_t>& resets, double ridge,
                               std::vector<double>* A_out = nullptr) {
  const int N = int(D.N);
  std::vector<std::int64_t> pairs;
  for (std::int64_t t = 0; t + 1 < D.T; ++t)
    if (!s.held_out[size_t(t)] && !s.held_out[size_t(t + 1)] && !s.is_reset(t + 1)) pairs.push_back(t);
  std::vector<double> mx(size_t(N), 0), my(size_t(N), 0);
  for (int i = 0; i < N; ++i) {
    for (auto t : pairs) mx[size_t(i)] += D.at(i, t), my[size_t(i)] += D.at(i, t + 1);
    mx[size_t(i)] /= double(pairs.size());
    my[size_t(i)] /= double(pairs.size());
  }
  std::vector<double> G(size_t(N * N), 0), C(size_t(N * N), 0);  // X X^T, Y X^T
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j)
      for (auto t : pairs) {
        G[size_t(i * N + j)] += (D.at(i, t) - mx[size_t(i)]) * (D.at(j, t) - mx[size_t(j)]);
        C[size_t(i * N + j)] += (D.at(i, t + 1) - my[size_t(i)]) * (D.at(j, t) - mx[size_t(j)]);
      }
  double trace = 0;
  for (int i = 0; i < N; ++i) trace += G[size_t(i * N + i)];
  for (int i = 0; i < N; ++i) G[size_t(i * N + i)] += ridge * trace / N;
  // A = C G^-1: row i of A solves G a_i = c_i (G symmetric).
  std::vector<double> A(size_t(N * N));
  for (int i = 0; i < N; ++i) {
    std::vector<double> ci(C.begin() + i * N, C.begin() + (i + 1) * N);
    std::vector<double> ai = solve(G, ci, N);
    std::copy(ai.begin(), ai.end(), A.begin() + i * N);
  }
  if (A_out) *A_out = A;
  std::vector<double> P(size_t(N * D.T), 0);
  for (std::int64_t t = 0; t < D.T; ++t) {
    if (s.is_reset(t) || std::binary_search(resets.begin(), resets.end(), t)) {
      for (int i = 0; i < N; ++i) P[size_t(i * D.T + t)] = D.at(i, t);
      continue;
    }
    for (int i = 0; i < N; ++i) {
      double v = my[size_t(i)];
      for (int j = 0; j < N; ++j) v += A[size_t(i * N + j)] * (P[size_t(j * D.T + t - 1)] - mx[size_t(j)]);
      P[size_t(i * D.T + t)] = v;
    }
  }
  return P;
}

std::vector<std::int64_t> cols_of(const Split& s, bool held, const std::vector<std::int64_t>& resets, bool skip_resets) {
  std::vector<std::int64_t> c;
  for (std::int64_t t = 0; t < s.T; ++t)
    if ((s.held_out[size_t(t)] != 0) == held && !(skip_resets && std::binary_search(resets.begin(), resets.end(), t)))
      c.push_back(t);
  return c;
}

// A rank's rows of a full-length prediction gathered back into N x T on every rank.
std::vector<double> gather_prediction(const std::vector<double>& local, std::int64_t N, std::int64_t T, MPI_Comm comm) {
  std::vector<int> counts, offsets;
  row_layout(PetscInt(N), comm, counts, offsets);
  for (auto& c : counts) c *= int(T);
  for (auto& o : offsets) o *= int(T);
  std::vector<double> all(size_t(N * T));
  MPI_Allgatherv(local.data(), int(local.size()), MPI_DOUBLE, all.data(), counts.data(), offsets.data(), MPI_DOUBLE,
                 comm);
  return all;
}

}  // namespace

// ---- split ----------------------------------------------------------------------------------
TEST(QualitySplit, EndHoldsOutTheLastThird) {
  const Split s = make_split(60, {0}, {});
  EXPECT_EQ(s.mode, SplitMode::End);
  EXPECT_EQ(s.n_held_out(), 20);
  for (std::int64_t t = 0; t < 60; ++t) EXPECT_EQ(s.held_out[size_t(t)], t >= 40 ? 1 : 0) << t;
  ASSERT_EQ(s.segments.size(), 2u);
  EXPECT_EQ(s.resets, (std::vector<std::int64_t>{0, 40}));  // the held-out block starts with a reset
  EXPECT_EQ(horizon_resets(s, 8), (std::vector<std::int64_t>{0, 8, 16, 24, 32, 40, 48, 56}));
  EXPECT_EQ(horizon_resets(s, 0), (std::vector<std::int64_t>{0, 40}));
}

TEST(QualitySplit, TrialsByConditionKeepTrainingTrialsInEachCondition) {
  // 7 trials of 10 samples; conditions A A A B B B C: one of each three-trial condition held out
  // (its last), C's only trial stays in training.
  std::vector<std::int64_t> starts;
  for (int k = 0; k < 7; ++k) starts.push_back(10 * k);
  const Split s = make_split(70, starts, {0, 0, 0, 1, 1, 1, 2});
  EXPECT_EQ(s.mode, SplitMode::Trials);
  for (std::int64_t t = 0; t < 70; ++t) EXPECT_EQ(s.held_out[size_t(t)], (t / 10 == 2 || t / 10 == 5) ? 1 : 0) << t;
  EXPECT_EQ(s.resets, starts);  // every trial start stays a reset
  EXPECT_THROW(make_split(70, {0, 35}, {}, {SplitMode::Trials}), Error);
}

TEST(QualitySplit, BlocksAreInterleavedAndDisjoint) {
  const Split s = make_split(90, {0}, {}, {SplitMode::Blocks, 1.0 / 3.0, 3});
  EXPECT_EQ(s.n_held_out(), 30);
  for (std::int64_t t = 0; t < 90; ++t) EXPECT_EQ(s.held_out[size_t(t)], (t % 30) >= 20 ? 1 : 0) << t;
  EXPECT_EQ(s.resets, (std::vector<std::int64_t>{0, 20, 30, 50, 60, 80}));
  for (const Segment& g : s.segments)
    for (std::int64_t t = g.begin; t < g.end; ++t) EXPECT_EQ(s.held_out[size_t(t)] != 0, g.held_out);
  EXPECT_THROW(parse_split_mode("random"), Error);
}

// A relation present only in the held-out block (unit 1 copies unit 0 one sample later) is not
// learned by the VAR fitted on the training mask; present everywhere, it is learned and predicts
// the same held-out samples.
namespace {
Data planted(bool everywhere) {
  const std::int64_t N = 5, T = 300;
  Data d{N, T, std::vector<double>(size_t(N * T))};
  std::mt19937_64 g(11);
  std::normal_distribution<double> n01(0, 1);
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t i = 0; i < N; ++i) d.at(i, t) = 0.3 * n01(g);
  for (std::int64_t t = everywhere ? 1 : 200; t < T; ++t) d.at(1, t) = d.at(0, t - 1);
  return d;
}
// Unexplained share of unit 1's held-out non-reset values under the library's VAR (horizon 2).
double unexplained_unit1(const Data& d, const Split& s) {
  const auto resets = horizon_resets(s, 2);
  const Local l = local_rows(d, MPI_COMM_WORLD);
  const std::vector<double> p =
      gather_prediction(predict_var(l.view(), s, resets, MPI_COMM_WORLD, 1e-2), d.N, d.T, MPI_COMM_WORLD);
  double err = 0, var = 0;
  for (std::int64_t t = 201; t < d.T; t += 2) {
    err += (d.at(1, t) - p[size_t(d.T + t)]) * (d.at(1, t) - p[size_t(d.T + t)]);
    var += d.at(1, t) * d.at(1, t);
  }
  return err / var;
}
}  // namespace

TEST(QualitySplit, HeldOutRelationIsNotLearned) {
  const Split s = make_split(300, {0}, {});
  ASSERT_EQ(s.n_held_out(), 100);
  const Data only_held = planted(false), everywhere = planted(true);
  std::vector<double> A;
  direct_var(only_held, s, horizon_resets(s, 2), 1e-2, &A);
  EXPECT_LT(std::abs(A[1 * 5 + 0]), 0.2) << "the split leaked the held-out relation";
  direct_var(everywhere, s, horizon_resets(s, 2), 1e-2, &A);
  EXPECT_GT(A[1 * 5 + 0], 0.8);
  EXPECT_GT(unexplained_unit1(only_held, s), 0.8);
  EXPECT_LT(unexplained_unit1(everywhere, s), 0.2);
}

// ---- baselines equal the direct computation, at every rank count ----------------------------
TEST(QualityBaselines, EqualDirectComputation) {
  const Data d = var_data(7, 60, 3);
  const Local l = local_rows(d, MPI_COMM_WORLD);
  const Split s = make_split(60, {0}, {});
  const std::int64_t K = 5;
  const auto resets = horizon_resets(s, K);
  VarOptions vo;
  vo.ridge = 1e-2;
  const Baselines b = baselines(l.view(), s, K, MPI_COMM_WORLD, {}, {}, vo);

  // Unit mean: each unit's training mean.
  std::vector<double> pm(size_t(7 * 60));
  for (int i = 0; i < 7; ++i) {
    double m = 0;
    for (int t = 0; t < 40; ++t) m += d.at(i, t);
    for (int t = 0; t < 60; ++t) pm[size_t(i * 60 + t)] = m / 40;
  }
  EXPECT_NEAR(b.mean.all, direct_pvar(d, pm, cols_of(s, true, resets, false)), 1e-12);
  EXPECT_NEAR(b.mean.non_reset, direct_pvar(d, pm, cols_of(s, true, resets, true)), 1e-12);
  EXPECT_EQ(b.mean.n_all, 20);
  EXPECT_EQ(b.mean.n_non_reset, 16);  // resets at 40, 45, 50, 55

  const std::vector<double> pv = direct_var(d, s, resets, 1e-2);
  const std::vector<double> mine =
      gather_prediction(predict_var(l.view(), s, resets, MPI_COMM_WORLD, 1e-2), 7, 60, MPI_COMM_WORLD);
  for (std::int64_t i = 0; i < 7; ++i)
    for (std::int64_t t = 40; t < 60; ++t) EXPECT_NEAR(mine[size_t(i * 60 + t)], pv[size_t(i * 60 + t)], 1e-10);
  EXPECT_NEAR(b.var.all, direct_pvar(d, pv, cols_of(s, true, resets, false)), 1e-10);
  EXPECT_NEAR(b.var.non_reset, direct_pvar(d, pv, cols_of(s, true, resets, true)), 1e-10);
  EXPECT_EQ(b.var_pairs, 39);
  EXPECT_GT(b.var.non_reset, b.mean.non_reset);  // the data are a VAR: it should win
  EXPECT_EQ(b.best_name(), "VAR(1)");
  EXPECT_FALSE(b.trial_avg.has_value());
  EXPECT_EQ(describe(b).rfind("unit mean ", 0), 0u) << describe(b);
  EXPECT_NE(describe(b).find("VAR(1) at K 5"), std::string::npos) << describe(b);
}

TEST(QualityBaselines, TrialAverageByCondition) {
  // 6 trials of 10 samples, conditions 0 1 0 1 0 1: held out trials 4 and 5 (each condition's last).
  const Data d = var_data(4, 60, 5);
  std::vector<std::int64_t> starts{0, 10, 20, 30, 40, 50};
  std::vector<int> cond{0, 1, 0, 1, 0, 1};
  const Split s = make_split(60, starts, cond);
  ASSERT_EQ(s.mode, SplitMode::Trials);
  const Local l = local_rows(d, MPI_COMM_WORLD);
  const Baselines b = baselines(l.view(), s, 0, MPI_COMM_WORLD, cond, starts);
  ASSERT_TRUE(b.trial_avg.has_value());
  std::vector<double> pt(size_t(4 * 60), 0);
  for (int i = 0; i < 4; ++i)
    for (int o = 0; o < 10; ++o) {
      pt[size_t(i * 60 + 40 + o)] = 0.5 * (d.at(i, o) + d.at(i, 20 + o));
      pt[size_t(i * 60 + 50 + o)] = 0.5 * (d.at(i, 10 + o) + d.at(i, 30 + o));
    }
  const auto resets = horizon_resets(s, 0);
  EXPECT_NEAR(b.trial_avg->all, direct_pvar(d, pt, cols_of(s, true, resets, false)), 1e-12);
  EXPECT_NEAR(b.trial_avg->non_reset, direct_pvar(d, pt, cols_of(s, true, resets, true)), 1e-12);
}

TEST(QualityBaselines, PvarScoreReadsTimeMajorViews) {
  const Data d = var_data(6, 30, 9);
  const Local l = local_rows(d, MPI_COMM_WORLD);
  const std::int64_t m = l.rows.count();
  std::vector<double> tm(size_t(m * 30)), pred(size_t(m * 30));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t t = 0; t < 30; ++t) {
      tm[size_t(t * m + i)] = l.x[size_t(i * 30 + t)];
      pred[size_t(t * m + i)] = 0.5 * l.x[size_t(i * 30 + t)];
    }
  const Split s = make_split(30, {0}, {});
  const auto resets = horizon_resets(s, 3);
  const Score sc = pvar_score(Rows::time_major_of(tm.data(), m, 30), Rows::time_major_of(pred.data(), m, 30), s,
                              resets, Part::HeldOut, MPI_COMM_WORLD);
  std::vector<double> full(d.x.size());
  for (size_t k = 0; k < full.size(); ++k) full[k] = 0.5 * d.x[k];
  EXPECT_NEAR(sc.all, direct_pvar(d, full, cols_of(s, true, resets, false)), 1e-12);
  EXPECT_NEAR(sc.non_reset, direct_pvar(d, full, cols_of(s, true, resets, true)), 1e-12);
}

// The same numbers from every rank layout as from one rank holding every row.
TEST(QualityRanks, SameResultsAsOneRank) {
  const Data d = var_data(7, 60, 21);
  const Split s = make_split(60, {0}, {}, {SplitMode::Blocks, 1.0 / 3.0, 2});
  const Local world = local_rows(d, MPI_COMM_WORLD), self = local_rows(d, MPI_COMM_SELF);
  const Baselines a = baselines(world.view(), s, 4, MPI_COMM_WORLD), b = baselines(self.view(), s, 4, MPI_COMM_SELF);
  EXPECT_NEAR(a.mean.all, b.mean.all, 1e-12);
  EXPECT_NEAR(a.mean.non_reset, b.mean.non_reset, 1e-12);
  EXPECT_NEAR(a.var.all, b.var.all, 1e-12);
  EXPECT_NEAR(a.var.non_reset, b.var.non_reset, 1e-12);
  EXPECT_NEAR(a.var_lambda, b.var_lambda, 1e-12);
  const Autocorrelation x = autocorrelation_time(world.view(), s, MPI_COMM_WORLD);
  const Autocorrelation y = autocorrelation_time(self.view(), s, MPI_COMM_SELF);
  EXPECT_NEAR(x.tau_samples, y.tau_samples, 1e-12);
  EXPECT_NEAR(x.mean_samples, y.mean_samples, 1e-12);
  EXPECT_EQ(a.var_ridge, b.var_ridge);  // chosen on the training part, the same at every layout
  EXPECT_EQ(x.units, 7);
  const Saturation sa = saturation(world.view(), world.view(), s, Part::Train, MPI_COMM_WORLD);
  const Saturation sb = saturation(self.view(), self.view(), s, Part::Train, MPI_COMM_SELF);
  EXPECT_EQ(sa.model, sb.model);
}

// ---- autocorrelation time and defaults ------------------------------------------------------
TEST(QualityAutocorrelation, AR1MatchesTheory) {
  // x(t+1) = a x(t) + noise: acf(k) = a^k, 1/e at k = -1/ln a (4.48 samples for a = 0.8).
  const double a = 0.8;
  const std::int64_t N = 12, T = 6000;
  Data d{N, T, std::vector<double>(size_t(N * T))};
  std::mt19937_64 g(17);
  std::normal_distribution<double> n01(0, 1);
  for (std::int64_t i = 0; i < N; ++i) {
    double x = n01(g) / std::sqrt(1 - a * a);  // stationary start
    for (std::int64_t t = 0; t < T; ++t) d.at(i, t) = x, x = a * x + n01(g);
  }
  const Split s = make_split(T, {0}, {});
  const Local l = local_rows(d, MPI_COMM_WORLD);
  const Autocorrelation ac = autocorrelation_time(l.view(), s, MPI_COMM_WORLD);
  const double theory = -1.0 / std::log(a);
  EXPECT_NEAR(ac.tau_samples, theory, 0.05 * theory);
  EXPECT_EQ(ac.units, 12);
  EXPECT_EQ(ac.capped, 0);
  EXPECT_EQ(auto_horizon(ac.tau_samples), 4);  // round(4.48)
  EXPECT_EQ(auto_horizon(0.4), 2);
  EXPECT_EQ(auto_horizon(58.7, 1.0 / 3.0), 20);
}

TEST(QualityDefaults, TimeConstantsFromTheData) {
  // Autocorrelation 300 samples at 10 ms: tau 3 s / 10, dt 0.01 <= 0.06 with dt-factor 1.
  TimeSettings ts = resolve_time_settings(0.01, 300.0, std::nullopt, std::nullopt);
  EXPECT_NEAR(ts.tau_rnn, 0.3, 1e-12);
  EXPECT_EQ(ts.dt_factor, 1);
  // 30 samples: tau 0.03 s, dt-factor 2 (dt 0.005 <= 0.006).
  ts = resolve_time_settings(0.01, 30.0, std::nullopt, std::nullopt);
  EXPECT_NEAR(ts.tau_rnn, 0.03, 1e-12);
  EXPECT_EQ(ts.dt_factor, 2);
  EXPECT_TRUE(ts.tau_from_data && ts.dt_factor_from_data);
  // A short autocorrelation (1.2 samples at 0.9 s): tau at least 2 samples, dt <= tau/5.
  ts = resolve_time_settings(0.9, 1.2, std::nullopt, std::nullopt);
  EXPECT_NEAR(ts.tau_rnn, 1.8, 1e-12);
  EXPECT_EQ(ts.dt_factor, 3);
  EXPECT_LE(0.9 / ts.dt_factor / ts.tau_rnn, 0.2 + 1e-12);
  // Given tau, the dt-factor follows it.
  ts = resolve_time_settings(0.01, 30.0, 0.01, std::nullopt);
  EXPECT_EQ(ts.dt_factor, 5);
  EXPECT_FALSE(ts.tau_from_data);
}

TEST(QualityDefaults, SaturatingTimeStepIsAnErrorNamingTheOption) {
  // The reference defaults on 10 ms data: dt/tau = 1.
  try {
    resolve_time_settings(0.01, 30.0, 0.01, 1);
    FAIL() << "dt/tau = 1 accepted";
  } catch (const Error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("--dt-factor"), std::string::npos) << w;
    EXPECT_NE(w.find("--tau-rnn"), std::string::npos) << w;
    EXPECT_NE(w.find("dt/tau = 1"), std::string::npos) << w;
  }
  try {
    check_time_step(0.9, 1, 1.8, true, false);  // 0.5 exactly
    FAIL() << "dt/tau = 0.5 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--dt-factor:", 0), 0u) << e.what();
  }
  EXPECT_NO_THROW(check_time_step(0.01, 5, 0.1));
  EXPECT_FALSE(resolve_time_settings(0.01, 30, 0.03, 1).warning.empty());  // 0.33: allowed, warned
}

// ---- status and stopping --------------------------------------------------------------------
TEST(QualityStatus, BelowBaselineIsPoor) {
  FitEvidence e;
  e.held_out_pvar = 0.18;
  e.best_baseline = 0.27;
  e.baseline_name = "VAR(1)";
  e.run_pvar = {0.3, 0.35, 0.36};
  const Verdict v = classify_fit(e);
  EXPECT_EQ(v.status, FitStatus::Poor);
  EXPECT_NE(v.reason.find("VAR(1)"), std::string::npos) << v.reason;
  e.held_out_pvar = 0.41;
  EXPECT_EQ(classify_fit(e).status, FitStatus::Ok);
  e.held_out_pvar = std::nan("");
  EXPECT_EQ(classify_fit(e).status, FitStatus::Poor);
}

TEST(QualityStatus, CollapseSaturationDivergenceFail) {
  FitEvidence e;
  e.held_out_pvar = 0.5;  // even a good held-out number does not save a collapsed fit
  e.best_baseline = 0.2;
  e.run_pvar.assign(1000, 0.0);
  e.run_pvar[644] = 0.022;
  e.run_pvar[999] = -19.5;
  Verdict v = classify_fit(e);
  EXPECT_EQ(v.status, FitStatus::Failed);
  EXPECT_NE(v.reason.find("collapsed"), std::string::npos) << v.reason;
  EXPECT_NE(v.reason.find("run 645"), std::string::npos) << v.reason;
  EXPECT_NE(v.reason.find("run 1000"), std::string::npos) << v.reason;

  e.run_pvar = {0.1, 0.2};
  e.sat = {0.6, 0.01};
  v = classify_fit(e);
  EXPECT_EQ(v.status, FitStatus::Failed);
  EXPECT_EQ(v.reason.rfind("saturated", 0), 0u) << v.reason;
  e.sat = {0.3, 0.25};  // the target itself sits at the clip: not the model's fault
  EXPECT_EQ(classify_fit(e).status, FitStatus::Ok);

  e.run_pvar = {0.1, std::nan("")};
  EXPECT_EQ(classify_fit(e).reason.rfind("diverged", 0), 0u);
  // During training: nothing yet, then the collapse as soon as it happens.
  std::vector<double> runs{0.01, 0.022};
  EXPECT_EQ(training_failure(runs, {}, false), "");
  runs.push_back(-19.5);
  EXPECT_EQ(training_failure(runs, {}, false).rfind("collapsed: pVar fell from 0.022 (run 2) to -19.5 (run 3)", 0), 0u)
      << training_failure(runs, {}, false);
}

TEST(QualityStop, NoGainOverTheWindowStopsAndKeepsTheBest) {
  StopRule r{3, 1e-3, 1};
  EXPECT_FALSE(should_stop({0.1, 0.2, 0.3}, r).stop);
  StopDecision d = should_stop({0.1, 0.3, 0.3005, 0.2999, 0.25}, r);
  EXPECT_TRUE(d.stop);
  EXPECT_EQ(d.best_run, 2);  // the best value, though its gain was below epsilon
  EXPECT_NE(d.reason.find("best run 3"), std::string::npos) << d.reason;
  EXPECT_FALSE(should_stop({0.1, 0.3, 0.3, 0.31}, r).stop);  // run 4 gained 0.01
  d = should_stop({0.1, 0.4, std::nan("")}, r);
  EXPECT_TRUE(d.stop);
  EXPECT_EQ(d.best_run, 1);
}

// Nothing fitted on the training part reads a held-out sample: replacing the held-out block by
// other values changes neither the autocorrelation time, the unit means, the chosen ridge nor
// the VAR's training-part predictions.
TEST(QualitySplit, TrainingQuantitiesIgnoreHeldOutValues) {
  const Data d = var_data(6, 90, 4);
  Data other = d;
  for (std::int64_t i = 0; i < 6; ++i)
    for (std::int64_t t = 60; t < 90; ++t) other.at(i, t) = 0.9 * std::sin(0.3 * double(t + i));
  const Split s = make_split(90, {0}, {});
  const Local a = local_rows(d, MPI_COMM_WORLD), b = local_rows(other, MPI_COMM_WORLD);
  EXPECT_EQ(autocorrelation_time(a.view(), s, MPI_COMM_WORLD).tau_samples,
            autocorrelation_time(b.view(), s, MPI_COMM_WORLD).tau_samples);
  EXPECT_EQ(predict_mean(a.view(), s), predict_mean(b.view(), s));
  EXPECT_EQ(choose_var_ridge(a.view(), s, 4, MPI_COMM_WORLD), choose_var_ridge(b.view(), s, 4, MPI_COMM_WORLD));
  const auto resets = horizon_resets(s, 4);
  const std::vector<double> pa = predict_var(a.view(), s, resets, MPI_COMM_WORLD, 0.1, nullptr, nullptr, Part::Train);
  const std::vector<double> pb = predict_var(b.view(), s, resets, MPI_COMM_WORLD, 0.1, nullptr, nullptr, Part::Train);
  EXPECT_EQ(pa, pb);
}
