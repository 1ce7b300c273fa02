// Gated pathways (--gains inputs, src/fit/gains.*, gated_start.cpp): the cross-validated
// objective's gradient (gains and per-source priors) against finite differences, the gated fit
// independent of the rank count (the same animal fitted on all ranks and on each rank alone), and
// RLS training on the gated network resumed bit-identical from a checkpoint.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include "core/parallel.hpp"
#include "fit/curbd.hpp"
#include "fit/gains.hpp"
#include "simulate/simulate.hpp"
#include "gains_test_util.hpp"
#include "test_util.hpp"

using namespace cohortnet;

namespace {

// Gram matrix (full) of k random columns of length n.
std::vector<double> random_gram(int n, int k, std::mt19937_64& rng) {
  std::normal_distribution<double> nd;
  std::vector<double> z(size_t(n) * size_t(k)), g(size_t(n) * size_t(n), 0.0);
  for (double& v : z) v = nd(rng);
  for (int a = 0; a < n; ++a)
    for (int b = 0; b < n; ++b)
      for (int j = 0; j < k; ++j) g[size_t(a) + size_t(b) * size_t(n)] += z[size_t(a) + size_t(j) * size_t(n)] * z[size_t(b) + size_t(j) * size_t(n)];
  return g;
}

// A dual-form problem on these Gram matrices (3 source regions, priors fixed for the tests).
fit::GainProblem dual_problem(int Ts, int M, int C, int q, const std::vector<std::vector<double>>& G,
                              const std::vector<double>& Gu, const std::vector<double>& uc, const std::vector<double>& Y,
                              int mq) {
  fit::GainProblem p;
  p.Ts = Ts;
  p.M = M;
  p.C = C;
  p.q = q;
  p.G = &G;
  p.Gu = &Gu;
  p.uc = uc.data();
  p.Y = Y.data();
  p.mq = mq;
  p.lambda = {0.05, 0.3, 0.02};
  p.p0u = 0.1;
  p.shrink = 0.01;
  p.sub = MPI_COMM_WORLD;
  return p;
}

}  // namespace

TEST(Gains, ObjectiveGradientMatchesFiniteDifferences) {
  const int Ts = 48, M = 3, C = 2;
  std::mt19937_64 rng(7);  // the same problem on every rank; each rank holds its own rows of Y
  std::vector<std::vector<double>> G;
  for (int s = 0; s < M; ++s) G.push_back(random_gram(Ts, 6, rng));
  const std::vector<double> Gu = random_gram(Ts, C, rng);
  std::normal_distribution<double> nd;
  std::vector<double> uc(size_t(Ts) * C), Y(size_t(Ts) * 3);
  for (double& v : uc) v = 0.5 * nd(rng);
  const int rank = comm_rank(MPI_COMM_WORLD);
  std::mt19937_64 mine(100 + std::uint64_t(rank));
  for (double& v : Y) v = nd(mine);
  const fit::GainProblem p = dual_problem(Ts, M, C, 1, G, Gu, uc, Y, 3);
  std::vector<fit::GainFold> folds(3);
  for (int a = 0; a < Ts; ++a)
    for (int f = 0; f < 3; ++f) ((a / 8) % 3 == f ? folds[size_t(f)].test : folds[size_t(f)].train).push_back(a);
  fit::GainFit gf(p, folds);
  std::vector<double> theta(size_t(M) * C + M);  // the gains' theta, then each source's log prior factor
  for (double& v : theta) v = 0.3 * nd(rng);
  std::vector<double> grad;
  gf.objective(theta, &grad);
  for (size_t k = 0; k < theta.size(); ++k) {
    const int src = k < size_t(M) * C ? int(k) / C : int(k) - M * C;
    if (src == p.q) {
      EXPECT_EQ(grad[k], 0.0) << "the target's own gain (and prior) are fixed";
      continue;
    }
    const double h = 1e-6;
    std::vector<double> tp = theta, tm = theta;
    tp[k] += h;
    tm[k] -= h;
    const double fd = (gf.objective(tp, nullptr) - gf.objective(tm, nullptr)) / (2 * h);
    EXPECT_NEAR(grad[k], fd, 1e-6 * std::max(1.0, std::fabs(fd))) << "theta entry " << k;
  }
}

// The primal form (moments of the features weighted by the inputs) gives the dual form's
// cross-validated error and gradient, for the main folds and a nested fold (one fold left out).
TEST(Gains, PrimalObjectiveEqualsTheDualOne) {
  const int Ts = 60, M = 3, C = 2, per = 4, N = M * per, n = N + C, F = 3;
  std::mt19937_64 rng(11);  // the same data on every rank; each rank its own rows of Y
  std::normal_distribution<double> nd;
  std::vector<double> Zf(size_t(Ts) * size_t(n)), uc(size_t(Ts) * C);  // Zf: Ts x n (units, then inputs)
  for (double& v : Zf) v = nd(rng);
  for (double& v : uc) v = 0.5 * nd(rng);
  std::vector<int> region(static_cast<size_t>(n), -1);
  for (int j = 0; j < N; ++j) region[size_t(j)] = j / per;
  std::vector<std::vector<double>> G(size_t(M), std::vector<double>(size_t(Ts) * Ts, 0.0));
  std::vector<double> Gu(size_t(Ts) * Ts, 0.0);
  for (int a = 0; a < Ts; ++a)
    for (int b = 0; b < Ts; ++b)
      for (int j = 0; j < n; ++j) {
        const double v = Zf[size_t(a) + size_t(j) * Ts] * Zf[size_t(b) + size_t(j) * Ts];
        (j < N ? G[size_t(region[size_t(j)])] : Gu)[size_t(a) + size_t(b) * Ts] += v;
      }
  const int mq = 2;
  std::mt19937_64 mine(200 + std::uint64_t(comm_rank(MPI_COMM_WORLD)));
  std::vector<double> Y(size_t(Ts) * mq);
  for (double& v : Y) v = nd(mine);
  std::vector<fit::GainFold> folds(static_cast<size_t>(F));
  for (int a = 0; a < Ts; ++a)
    for (int f = 0; f < F; ++f) ((a / 5) % F == f ? folds[size_t(f)].test : folds[size_t(f)].train).push_back(a);
  for (int f = 0; f < F; ++f) folds[size_t(f)].tested = f;
  // The moments per fold, computed directly from their definition.
  auto ut = [&](int c, int t) { return c == 0 ? 1.0 : uc[size_t(t) + size_t(c - 1) * Ts]; };
  std::vector<fit::GainMoments> H(static_cast<size_t>(F));
  std::vector<fit::GainTargetMoments> K(static_cast<size_t>(F));
  for (int f = 0; f < F; ++f) {
    for (int c = 0; c <= C; ++c)
      for (int d = c; d <= C; ++d) {
        std::vector<double> h(size_t(n) * n, 0.0);
        for (int t : folds[size_t(f)].test)
          for (int k = 0; k < n; ++k)
            for (int j = 0; j < n; ++j)
              h[size_t(j) + size_t(k) * n] += ut(c, t) * ut(d, t) * Zf[size_t(t) + size_t(j) * Ts] * Zf[size_t(t) + size_t(k) * Ts];
        H[size_t(f)].H.push_back(h);
      }
    for (int c = 0; c <= C; ++c) {
      std::vector<double> k(size_t(n) * mq, 0.0);
      for (int t : folds[size_t(f)].test)
        for (int i = 0; i < mq; ++i)
          for (int j = 0; j < n; ++j) k[size_t(j) + size_t(i) * n] += ut(c, t) * Zf[size_t(t) + size_t(j) * Ts] * Y[size_t(t) + size_t(i) * Ts];
      K[size_t(f)].K.push_back(k);
    }
    for (int t : folds[size_t(f)].test)
      for (int i = 0; i < mq; ++i) K[size_t(f)].yy += Y[size_t(t) + size_t(i) * Ts] * Y[size_t(t) + size_t(i) * Ts];
  }
  std::vector<double> ubar2(size_t(C + 1) * (C + 1), 0.0);
  for (int c = 0; c <= C; ++c)
    for (int d = 0; d <= C; ++d) {
      for (int t = 0; t < Ts; ++t) ubar2[size_t(c) + size_t(d) * (C + 1)] += ut(c, t) * ut(d, t);
      ubar2[size_t(c) + size_t(d) * (C + 1)] /= Ts;
    }
  const fit::GainProblem dual = dual_problem(Ts, M, C, 2, G, Gu, uc, Y, mq);
  fit::GainProblem primal = dual;
  primal.n = n;
  primal.feature_region = &region;
  primal.H = &H;
  primal.K = &K;
  primal.ubar2 = ubar2.data();
  // A nested fold: fold 0 left out, fold 1 predicted from fold 2.
  fit::GainFold nested;
  nested.train = folds[2].test;
  nested.test = folds[1].test;
  nested.out = {0};
  nested.tested = 1;
  std::vector<double> theta(size_t(M) * C + M);
  for (double& v : theta) v = 0.3 * nd(rng);
  for (const std::vector<fit::GainFold>& fs : {folds, std::vector<fit::GainFold>{nested}}) {
    std::vector<double> gd, gp;
    const double ed = fit::GainFit(dual, fs).objective(theta, &gd);
    const double ep = fit::GainFit(primal, fs).objective(theta, &gp);
    EXPECT_NEAR(ep, ed, 1e-10 * std::fabs(ed)) << fs.size() << " fold(s)";
    ASSERT_EQ(gp.size(), gd.size());
    for (size_t k = 0; k < gd.size(); ++k) EXPECT_NEAR(gp[k], gd[k], 1e-8 * std::max(1.0, std::fabs(gd[k]))) << "gradient entry " << k;
  }
  // The in-sample solution: the primal weights predict what the dual's alpha implies.
  fit::GainFit fd(dual, {}), fp(primal, {});
  fd.solve(theta);
  fp.solve(theta);
  double rd = 0;
  for (double a : fd.alpha()) rd += a * a;  // the dual residual is alpha itself
  EXPECT_NEAR(fp.residual(), rd, 1e-9 * rd);
}

namespace {

struct GatedFit {
  std::vector<double> J, theta;  // J: all rows (gathered), row-major
  std::vector<int> kept;
};

GatedFit fit_gated(const sim::SimulatedAnimal& a, MPI_Comm comm,
                   const fit::Params& p = fittest::gated_start_params_accepting()) {
  const AnimalData data = fittest::data_of(a, comm);
  fit::Trainer tr(data, 0, p, comm);
  while (!tr.finished()) tr.run_next();
  GatedFit out;
  const std::vector<double> mine = tr.local_J();
  const int size = comm_size(comm);
  std::vector<int> counts(static_cast<size_t>(size)), offs(static_cast<size_t>(size));
  const int n = int(mine.size());
  MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, comm);
  for (int r = 1; r < size; ++r) offs[size_t(r)] = offs[size_t(r - 1)] + counts[size_t(r - 1)];
  out.J.resize(size_t(offs.back() + counts.back()));
  MPI_Allgatherv(mine.data(), n, MPI_DOUBLE, out.J.data(), counts.data(), offs.data(), MPI_DOUBLE, comm);
  out.theta = tr.gains().theta;
  out.kept = tr.gains().kept;
  return out;
}

// Two gated fits of one animal agree: the same regions kept, J to 1e-6 of its largest entry and
// theta to 1e-5 (the optimiser stops at a gradient tolerance; rounding moves it by far less).
void expect_same_fit(const GatedFit& a, const GatedFit& b, const std::string& what) {
  ASSERT_EQ(a.J.size(), b.J.size());
  EXPECT_EQ(a.kept, b.kept) << what;
  double jmax = 0, dj = 0, dt = 0;
  for (size_t k = 0; k < a.J.size(); ++k) {
    jmax = std::max(jmax, std::fabs(b.J[k]));
    dj = std::max(dj, std::fabs(a.J[k] - b.J[k]));
  }
  for (size_t k = 0; k < a.theta.size(); ++k) dt = std::max(dt, std::fabs(a.theta[k] - b.theta[k]));
  EXPECT_LT(dj, 1e-6 * jmax) << "J: " << what;
  EXPECT_LT(dt, 1e-5) << "the gains' theta: " << what;
}

}  // namespace

TEST(Gains, GatedStartDoesNotDependOnTheRankCount) {
  const sim::SimulatedAnimal a = fittest::simulated_animal(3, 12, 301);
  ASSERT_GT(a.meta.input_names.size(), 0u);
  const GatedFit all = fit_gated(a, MPI_COMM_WORLD);
  const GatedFit one = fit_gated(a, MPI_COMM_SELF);
  ASSERT_GT(std::count(one.kept.begin(), one.kept.end(), 1), 0) << "no region kept gains: the test needs one";
  expect_same_fit(all, one, std::to_string(comm_size(MPI_COMM_WORLD)) + " rank(s) against 1");
}

// The gated start in its primal form equals the dual form: the same gains kept, J and theta to
// the optimiser's tolerance (the two take the same path up to rounding).
TEST(Gains, GatedStartPrimalEqualsDual) {
  const sim::SimulatedAnimal a = fittest::simulated_animal(3, 12, 301);
  fit::Params pd = fittest::gated_start_params_accepting(), pp = pd;
  pd.start_form = fit::StartForm::Dual;
  pp.start_form = fit::StartForm::Primal;
  const GatedFit dual = fit_gated(a, MPI_COMM_WORLD, pd);
  const GatedFit primal = fit_gated(a, MPI_COMM_WORLD, pp);
  ASSERT_GT(std::count(dual.kept.begin(), dual.kept.end(), 1), 0) << "no region kept gains: the test needs one";
  expect_same_fit(primal, dual, "primal against dual gated start");
}

// RLS training on the gated network, stopped inside a run and resumed from the checkpoint (which
// carries the gain model): bit-identical to the uninterrupted fit.
TEST(Gains, GatedTrainingResumesBitIdentical) {
  const sim::SimulatedAnimal a = fittest::simulated_animal(3, 12, 301);
  const AnimalData data = fittest::data_of(a, MPI_COMM_WORLD);
  fit::Params p = fittest::gated_start_params_accepting();
  p.runs_train = 2;
  const std::string dir = testutil::scratch_dir("fit-gains-resume");
  fit::Trainer full(data, 0, p, MPI_COMM_WORLD);
  while (!full.finished()) full.run_next();
  ASSERT_GT(std::count(full.gains().kept.begin(), full.gains().kept.end(), 1), 0) << "the test needs a gated region";
  int calls = 0;
  {
    fit::Trainer t(data, 0, p, MPI_COMM_WORLD);
    t.run_next();
    t.set_stop_check([&] { return ++calls == 3; }, 100);
    const fit::RunStats s = t.run_next();
    ASSERT_FALSE(s.complete);
    t.save_checkpoint(dir + "/gains.h5", "[fit]\n");
  }
  fit::Trainer b(data, 0, p, MPI_COMM_WORLD);
  b.load_checkpoint(dir + "/gains.h5");
  EXPECT_TRUE(b.inside_run());
  while (!b.finished()) EXPECT_TRUE(b.run_next().complete);
  EXPECT_EQ(b.gains().theta, full.gains().theta);
  EXPECT_EQ(b.gains().prior, full.gains().prior);
  EXPECT_EQ(b.pvar(), full.pvar());
  EXPECT_EQ(b.local_J(), full.local_J());
  EXPECT_EQ(b.local_rates(), full.local_rates());
}

// The delayed RLS updates stay exact on the gated network: J's pending terms touch only a row's
// own region's columns (gain 1), so --update-block changes J only by rounding.
TEST(Gains, GatedTrainingDoesNotDependOnTheUpdateBlock) {
  const sim::SimulatedAnimal a = fittest::simulated_animal(3, 12, 301);
  fit::Params p = fittest::gated_start_params_accepting();
  p.runs_train = 2;
  p.update_block = 1;
  const GatedFit one = fit_gated(a, MPI_COMM_WORLD, p);
  p.update_block = 8;
  const GatedFit eight = fit_gated(a, MPI_COMM_WORLD, p);
  ASSERT_GT(std::count(one.kept.begin(), one.kept.end(), 1), 0) << "no region kept gains: the test needs one";
  double jmax = 0, dj = 0;
  for (size_t k = 0; k < one.J.size(); ++k) {
    jmax = std::max(jmax, std::fabs(one.J[k]));
    dj = std::max(dj, std::fabs(one.J[k] - eight.J[k]));
  }
  EXPECT_LT(dj, 1e-9 * jmax);
}

// A region keeps gains only when they move: with the floor above any modulation, none is kept
// (and the start is the fixed one: gains 1, every theta 0).
TEST(Gains, ModulationFloorRejectsGainsThatDoNotMove) {
  const sim::SimulatedAnimal a = fittest::simulated_animal(3, 12, 301);
  const GatedFit base = fit_gated(a, MPI_COMM_WORLD);
  ASSERT_GT(std::count(base.kept.begin(), base.kept.end(), 1), 0);
  fit::Params p = fittest::gated_start_params_accepting();
  p.gains_min_modulation = 100;
  const GatedFit floor = fit_gated(a, MPI_COMM_WORLD, p);
  EXPECT_EQ(std::count(floor.kept.begin(), floor.kept.end(), 1), 0);
  for (double t : floor.theta) EXPECT_EQ(t, 0.0);
}

// --gains latent:K (gain_drivers.cpp): the factors are the activity's dominant slow
// co-fluctuations. Units driven by one planted slow signal s(t) (a random telegraph, each unit
// with its own weight and its own fast noise): the single factor follows s smoothed as the
// factors are (causally, gains-latent-tau), has unit variance over the samples, and is the same
// on every rank count.
TEST(Gains, LatentFactorFollowsAPlantedSlowSignal) {
  const int M = 3, per = 8, N = M * per, T = 800;
  std::mt19937_64 rng(5);
  std::normal_distribution<double> nd;
  std::vector<double> s(static_cast<size_t>(T)), w(static_cast<size_t>(N)), act(size_t(N) * size_t(T));
  double level = 1;
  for (int t = 0; t < T; ++t) {
    if (t % 80 == 0 && t > 0 && nd(rng) > 0) level = -level;
    s[size_t(t)] = level;
  }
  for (double& v : w) v = 0.5 + 0.5 * std::fabs(nd(rng));
  for (int i = 0; i < N; ++i)
    for (int t = 0; t < T; ++t) act[size_t(i) * size_t(T) + size_t(t)] = std::tanh(w[size_t(i)] * s[size_t(t)] + 0.8 * nd(rng));
  AnimalMeta meta;
  meta.animal_id = "latent";
  meta.n_units = N;
  meta.n_samples = T;
  meta.sample_interval = 0.01;
  meta.trial_starts = {0};
  for (int q = 0; q < M; ++q) meta.region_names.push_back("R" + std::to_string(q));
  for (int i = 0; i < N; ++i) meta.unit_region.push_back(i / per);
  fit::Params p = fittest::gated_start_params();
  p.gains = fit::GainModel::Latent;
  p.gains_latent = 1;
  p.use_inputs = false;
  p.holdout = std::nullopt;  // every sample trains: the unit variance is over all of them
  auto drivers = [&](MPI_Comm comm) {
    AnimalData data;
    data.meta = meta;
    data.rows = own_rows(PetscInt(N), comm);
    data.activity.assign(act.begin() + data.rows.begin * T, act.begin() + data.rows.end * T);
    fit::Trainer tr(data, 0, p, comm);
    EXPECT_EQ(tr.n_gain_drivers(), 1);
    return tr.gain_drivers();
  };
  const std::vector<double> all = drivers(MPI_COMM_WORLD), one = drivers(MPI_COMM_SELF);
  ASSERT_EQ(all.size(), size_t(T));
  // s smoothed as the factors are: s is the slow part of x = atanh(activity) (w s plus noise).
  const double a = 1.0 - std::exp(-0.01 / p.gains_latent_tau);
  std::vector<double> ss(static_cast<size_t>(T));
  double acc = 0;
  for (int t = 0; t < T; ++t) ss[size_t(t)] = acc = t == 0 ? s[0] : acc + a * (s[size_t(t)] - acc);
  double m = 0, v = 0, ms = 0, c = 0, vs = 0;
  for (int t = 0; t < T; ++t) m += all[size_t(t)], ms += ss[size_t(t)];
  m /= T;
  ms /= T;
  for (int t = 0; t < T; ++t) {
    v += (all[size_t(t)] - m) * (all[size_t(t)] - m);
    vs += (ss[size_t(t)] - ms) * (ss[size_t(t)] - ms);
    c += (all[size_t(t)] - m) * (ss[size_t(t)] - ms);
  }
  EXPECT_NEAR(v / T, 1.0, 1e-9) << "unit variance over the training samples";
  const double r = c / std::sqrt(v * vs);
  if (comm_rank(MPI_COMM_WORLD) == 0) std::printf("latent factor against the planted signal: r %.4f\n", r);
  EXPECT_GT(std::fabs(r), 0.97);
  double d = 0;
  for (size_t k = 0; k < all.size(); ++k) d = std::max(d, std::fabs(all[k] - one[k]));
  EXPECT_LT(d, 1e-8) << "the factor depends on the rank count";
}

// The gated start on latent factors: the same fit on every rank count, and resumed bit-identical.
TEST(Gains, LatentGatedStartDoesNotDependOnTheRankCountAndResumes) {
  const sim::SimulatedAnimal a = fittest::simulated_animal(3, 12, 301);
  fit::Params p = fittest::gated_start_params_accepting();
  p.gains = fit::GainModel::Latent;
  p.gains_latent = 2;
  const GatedFit all = fit_gated(a, MPI_COMM_WORLD, p);
  const GatedFit one = fit_gated(a, MPI_COMM_SELF, p);
  ASSERT_GT(std::count(one.kept.begin(), one.kept.end(), 1), 0) << "no region kept gains: the test needs one";
  ASSERT_EQ(all.theta.size(), size_t(3 * 3 * 2)) << "theta is M x M x K";
  expect_same_fit(all, one, std::to_string(comm_size(MPI_COMM_WORLD)) + " rank(s) against 1, latent:2");

  const AnimalData data = fittest::data_of(a, MPI_COMM_WORLD);
  p.runs_train = 2;
  const std::string dir = testutil::scratch_dir("fit-gains-latent-resume");
  fit::Trainer full(data, 0, p, MPI_COMM_WORLD);
  while (!full.finished()) full.run_next();
  int calls = 0;
  {
    fit::Trainer t(data, 0, p, MPI_COMM_WORLD);
    t.run_next();
    t.set_stop_check([&] { return ++calls == 3; }, 100);
    ASSERT_FALSE(t.run_next().complete);
    t.save_checkpoint(dir + "/latent.h5", "[fit]\n");
  }
  fit::Trainer b(data, 0, p, MPI_COMM_WORLD);
  b.load_checkpoint(dir + "/latent.h5");
  while (!b.finished()) EXPECT_TRUE(b.run_next().complete);
  EXPECT_EQ(b.gains().theta, full.gains().theta);
  EXPECT_EQ(b.local_J(), full.local_J());
  EXPECT_EQ(b.local_rates(), full.local_rates());
}
