// Gated pathways (--gains inputs, src/fit/gains.*, gated_start.cpp): the cross-validated
// objective's gradient (gains and per-source priors) against finite differences, the gated fit
// independent of the rank count (the same animal fitted on all ranks and on each rank alone), and
// RLS training on the gated network resumed bit-identical from a checkpoint.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

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
  fit::GainProblem p;
  p.Ts = Ts;
  p.M = M;
  p.C = C;
  p.q = 1;
  p.G = &G;
  p.Gu = &Gu;
  p.uc = uc.data();
  p.Y = Y.data();
  p.mq = 3;
  p.lambda = {0.05, 0.3, 0.02};
  p.p0u = 0.1;
  p.shrink = 0.01;
  p.sub = MPI_COMM_WORLD;
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

}  // namespace

TEST(Gains, GatedStartDoesNotDependOnTheRankCount) {
  const sim::SimulatedAnimal a = fittest::simulated_animal(3, 12, 301);
  ASSERT_GT(a.meta.input_names.size(), 0u);
  const GatedFit all = fit_gated(a, MPI_COMM_WORLD);
  const GatedFit one = fit_gated(a, MPI_COMM_SELF);
  ASSERT_EQ(all.J.size(), one.J.size());
  ASSERT_GT(std::count(one.kept.begin(), one.kept.end(), 1), 0) << "no region kept gains: the test needs one";
  EXPECT_EQ(all.kept, one.kept);
  double jmax = 0, dj = 0, dt = 0;
  for (size_t k = 0; k < all.J.size(); ++k) {
    jmax = std::max(jmax, std::fabs(one.J[k]));
    dj = std::max(dj, std::fabs(all.J[k] - one.J[k]));
  }
  for (size_t k = 0; k < all.theta.size(); ++k) dt = std::max(dt, std::fabs(all.theta[k] - one.theta[k]));
  // The optimiser stops at a gradient tolerance; rounding differences move it by far less.
  EXPECT_LT(dj, 1e-6 * jmax) << "J differs between " << comm_size(MPI_COMM_WORLD) << " rank(s) and 1";
  EXPECT_LT(dt, 1e-5) << "the gains' theta differ";
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
