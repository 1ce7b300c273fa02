// The ground-truth evaluation: the AUC, the metrics on a planted "fit" (the true network itself:
// every correlation 1 and every magnitude ratio 1), and a tiny end-to-end run that gives the same
// numbers at any rank count.
#include <gtest/gtest.h>

#include <cmath>

#include "core/parallel.hpp"
#include "fit/curbd.hpp"
#include "validate/validate.hpp"

using namespace cohortnet;

TEST(Validate, Auc) {
  EXPECT_DOUBLE_EQ(validate::auc({3, 2, 1, 0}, {1, 1, 0, 0}), 1.0);
  EXPECT_DOUBLE_EQ(validate::auc({0, 1, 2, 3}, {1, 1, 0, 0}), 0.0);
  EXPECT_DOUBLE_EQ(validate::auc({1, 1, 1, 1}, {1, 0, 1, 0}), 0.5);
  EXPECT_DOUBLE_EQ(validate::auc({3, 1, 2, 0}, {1, 1, 0, 0}), 0.75);
  EXPECT_TRUE(std::isnan(validate::auc({1, 2}, {1, 1})));
}

namespace {
sim::SimulateParams tiny(const std::string& preset) {
  sim::SimulateParams p = sim::default_params(preset);
  p.units_per_region = 8;
  p.samples = 80;
  p.link_fraction = 0.3;
  if (preset == sim::kPresetCohort) {
    p.animals = 1;
    p.regions = 4;
    p.missing_fraction = 0;
  }
  return p;
}
// The default fit (region prior, regression start), 2 training runs, with the simulation's time constants.
validate::Method short_region_fit(const validate::Case& c) {
  validate::Method m;
  m.name = "region";
  m.fit.runs_train = 2;
  m.fit.runs_free = 1;
  m.fit.set_time(c.sim.tau, c.sim.dt_factor);
  return m;
}
// One tiny three-region animal at link strength 0.2 (its truth: J, rates, pair_coupled).
sim::SimulatedAnimal three_region_animal() {
  sim::SimulateParams sp = tiny(sim::kPresetThreeRegion);
  sp.link_strength = 0.2;
  return sim::simulate_animal(sp, sim::make_plan(sp), 0);
}
}  // namespace

TEST(Validate, TrueNetworkScoresPerfectly) {
  // Planted: the "inferred" network is the truth (three-region: constant gains 1), so inferred
  // and true currents coincide.
  const sim::SimulatedAnimal a = three_region_animal();
  const std::int64_t N = a.meta.n_units;
  const RowRange rows = own_rows(PetscInt(N), MPI_COMM_WORLD);
  std::vector<double> jr(a.J.begin() + rows.begin * N, a.J.begin() + rows.end * N);
  const validate::Run r = validate::evaluate(a, jr, rows, a.rates, MPI_COMM_WORLD);
  ASSERT_EQ(r.M, 3);
  for (int q = 0; q < 3; ++q)
    for (int s = 0; s < 3; ++s) {
      const size_t z = size_t(q * 3 + s);
      ASSERT_TRUE(a.pair_coupled[z] || q == s);
      EXPECT_NEAR(r.ratio[z], 1.0, 1e-12) << q << "<-" << s;
      EXPECT_NEAR(r.ratio_conn[z], 1.0, 1e-12) << q << "<-" << s;
      EXPECT_NEAR(r.r_unit[z], 1.0, 1e-9) << q << "<-" << s;
      EXPECT_NEAR(r.r_mean[z], 1.0, 1e-9) << q << "<-" << s;
    }
  // A wrong "fit" (J scaled by 10, sign flipped) is caught: ratio 10, correlation -1.
  for (double& v : jr) v *= -10.0;
  const validate::Run w = validate::evaluate(a, jr, rows, a.rates, MPI_COMM_WORLD);
  EXPECT_NEAR(w.ratio[1], 10.0, 1e-9);
  EXPECT_NEAR(w.r_unit[1], -1.0, 1e-9);
}

TEST(Validate, SpuriousCurrentAtNonReceivingUnits) {
  // The truth plus weights from B into a unit of A that truly receives nothing from B: the
  // region-wide ratio grows, the ratio and correlation at the receiving units stay exact.
  const sim::SimulatedAnimal a = three_region_animal();
  const std::int64_t N = a.meta.n_units;
  const auto& reg = a.meta.unit_region;
  std::int64_t quiet = -1;  // a unit of A without links from B
  for (std::int64_t i = 0; i < N && quiet < 0; ++i) {
    if (reg[size_t(i)] != 0) continue;
    bool any = false;
    for (std::int64_t j = 0; j < N; ++j) any = any || (reg[size_t(j)] == 1 && a.J[size_t(i * N + j)] != 0);
    if (!any) quiet = i;
  }
  ASSERT_GE(quiet, 0);
  std::vector<double> J = a.J;
  for (std::int64_t j = 0; j < N; ++j)
    if (reg[size_t(j)] == 1) J[size_t(quiet * N + j)] = 0.5;
  const RowRange rows = own_rows(PetscInt(N), MPI_COMM_WORLD);
  std::vector<double> jr(J.begin() + rows.begin * N, J.begin() + rows.end * N);
  const validate::Run r = validate::evaluate(a, jr, rows, a.rates, MPI_COMM_WORLD);
  const size_t ab = 1;  // A <- B
  EXPECT_GT(r.ratio[ab], 2.0);
  EXPECT_NEAR(r.ratio_conn[ab], 1.0, 1e-12);
  EXPECT_NEAR(r.r_unit[ab], 1.0, 1e-9);
}

TEST(Validate, GatedTruthScoresPerfectlyOnlyWithItsGains) {
  // Planted gated "fit": the cohort animal's own J and rates. Without the gains its currents miss
  // the gating (some coupled pair's r < 1); with the true gains every current is exact and the
  // gains score r = 1 where they vary; a target whose gains were not kept is not scored.
  const sim::SimulatedAnimal a = sim::simulate_animal(tiny(sim::kPresetCohort), sim::make_plan(tiny(sim::kPresetCohort)), 0);
  const std::int64_t N = a.meta.n_units, T = a.meta.n_samples;
  const int M = a.meta.n_regions();
  const RowRange rows = own_rows(PetscInt(N), MPI_COMM_WORLD);
  const std::vector<double> jr(a.J.begin() + rows.begin * N, a.J.begin() + rows.end * N);
  const validate::Run fixed = validate::evaluate(a, jr, rows, a.rates, MPI_COMM_WORLD);
  EXPECT_TRUE(fixed.gains_r.empty());
  EXPECT_TRUE(fixed.kept.empty());
  double worst = 1;
  for (int q = 0; q < M; ++q)
    for (int s = 0; s < M; ++s)
      if (q != s && a.pair_coupled[size_t(q * M + s)]) worst = std::min(worst, fixed.r_unit[size_t(q * M + s)]);
  EXPECT_LT(worst, 0.99) << "the tiny cohort's gating leaves the fixed currents exact: the test cannot tell";
  std::vector<int> kept(size_t(M), 1);
  kept[0] = 0;
  const validate::Run gated = validate::evaluate(a, jr, rows, a.rates, MPI_COMM_WORLD, &a.gains, &kept);
  ASSERT_EQ(gated.kept.size(), size_t(M));
  EXPECT_EQ(gated.kept[0], 0);
  int scored = 0;
  for (int q = 0; q < M; ++q)
    for (int s = 0; s < M; ++s) {
      const size_t z = size_t(q * M + s);
      if (!std::isnan(gated.r_unit[z])) {
        EXPECT_NEAR(gated.r_unit[z], 1.0, 1e-9) << q << "<-" << s;
      }
      if (!std::isnan(gated.ratio[z])) {
        EXPECT_NEAR(gated.ratio[z], 1.0, 1e-9) << q << "<-" << s;
      }
      double lo = 1e300, hi = -1e300;
      for (std::int64_t t = 0; t < T; ++t) {
        lo = std::min(lo, a.gains[z * size_t(T) + size_t(t)]);
        hi = std::max(hi, a.gains[z * size_t(T) + size_t(t)]);
      }
      if (q == 0 || q == s || hi - lo < 1e-12) {
        EXPECT_TRUE(std::isnan(gated.gains_r[z])) << q << "<-" << s;
      } else {
        EXPECT_NEAR(gated.gains_r[z], 1.0, 1e-9) << q << "<-" << s;
        ++scored;
      }
    }
  EXPECT_GT(scored, 0) << "no varying true gain outside target 0";
  const validate::Summary sm = validate::summarise({gated});
  EXPECT_DOUBLE_EQ(sm.kept_fraction, double(M - 1) / M);
  EXPECT_NEAR(sm.gains_r_inter, 1.0, 1e-9);
  EXPECT_TRUE(std::isnan(validate::summarise({fixed}).kept_fraction));
}

TEST(Validate, EndToEndSameAtAnyRankCount) {
  validate::Case c;
  c.sim = tiny(sim::kPresetCohort);
  c.name = "cohort-tiny";
  const validate::Method m = short_region_fit(c);
  const validate::Run one = validate::run_one(c, m, 5, MPI_COMM_SELF);
  const validate::Run all = validate::run_one(c, m, 5, MPI_COMM_WORLD);
  ASSERT_EQ(one.M, all.M);
  EXPECT_NEAR(one.pvar, all.pvar, 1e-9);
  for (size_t z = 0; z < one.ratio.size(); ++z) {
    if (std::isnan(one.ratio[z])) {
      EXPECT_TRUE(std::isnan(all.ratio[z]));
    } else {
      EXPECT_NEAR(one.ratio[z], all.ratio[z], 1e-9 * std::abs(one.ratio[z]));
    }
    EXPECT_NEAR(one.score[z], all.score[z], 1e-9 * std::abs(one.score[z]) + 1e-15);
  }
  // The cohort preset has present and absent pathways here, so the AUC is defined.
  EXPECT_FALSE(std::isnan(one.auc)) << "no absent pathway in the tiny cohort animal";
  EXPECT_EQ(std::isnan(one.auc), std::isnan(all.auc));
  if (!std::isnan(one.auc)) {
    EXPECT_DOUBLE_EQ(one.auc, all.auc);
  }
}

TEST(Validate, EnsembleAveragesJAndRatesOverFitSeeds) {
  // --ensemble 2: two fits with seeds s and s + kEnsembleStride, J and the model rates averaged,
  // then evaluated; the same as doing it by hand. --ensemble 1 is the plain fit.
  validate::Case c;
  c.sim = tiny(sim::kPresetThreeRegion);
  c.sim.link_strength = 0.2;
  c.name = "three-tiny";
  validate::Method m = short_region_fit(c);
  const std::uint64_t seed = 3;
  const validate::Run one = validate::run_one(c, m, seed, MPI_COMM_WORLD);
  m.ensemble = 2;
  const validate::Run two = validate::run_one(c, m, seed, MPI_COMM_WORLD);

  sim::SimulateParams sp = c.sim;
  sp.seed = seed;
  const sim::SimulatedAnimal a = sim::simulate_animal(sp, sim::make_plan(sp), 0);
  AnimalData data;
  data.meta = a.meta;
  data.rows = own_rows(PetscInt(a.meta.n_units), MPI_COMM_WORLD);
  const std::int64_t T = a.meta.n_samples;
  data.activity.assign(a.rates.begin() + data.rows.begin * T, a.rates.begin() + data.rows.end * T);
  std::vector<double> J, R;
  double pvar = 0;
  std::vector<validate::Run> singles;
  for (std::uint64_t k = 0; k < 2; ++k) {
    fit::Params p = m.fit;
    p.seed = seed + k * validate::kEnsembleStride;
    fit::Trainer tr(data, 0, p, MPI_COMM_WORLD);
    while (!tr.finished()) tr.run_next();
    const auto Jk = tr.local_J();
    const auto Rk = tr.full_rates();
    singles.push_back(validate::evaluate(a, Jk, tr.rows(), Rk, MPI_COMM_WORLD));
    if (k == 0) {
      J.assign(Jk.size(), 0.0);
      R.assign(Rk.size(), 0.0);
    }
    for (size_t i = 0; i < Jk.size(); ++i) J[i] += 0.5 * Jk[i];
    for (size_t i = 0; i < Rk.size(); ++i) R[i] += 0.5 * Rk[i];
    pvar += 0.5 * tr.pvar().back();
  }
  const validate::Run hand = validate::evaluate(a, J, data.rows, R, MPI_COMM_WORLD);
  EXPECT_NEAR(two.pvar, pvar, 1e-12);
  for (size_t z = 0; z < hand.ratio.size(); ++z) {
    EXPECT_NEAR(two.ratio[z], hand.ratio[z], 1e-9 * std::abs(hand.ratio[z])) << z;
    EXPECT_NEAR(one.ratio[z], singles[0].ratio[z], 1e-9 * std::abs(singles[0].ratio[z])) << z;
    if (std::isfinite(hand.r_unit[z])) {
      EXPECT_NEAR(two.r_unit[z], hand.r_unit[z], 1e-9) << z;
    }
  }
  // The two members differ (different input noise; the regression start itself does not depend on
  // the seed), so the average is not either of them.
  EXPECT_NE(singles[0].ratio[1], singles[1].ratio[1]);
}
