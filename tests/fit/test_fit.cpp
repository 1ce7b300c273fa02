// The distributed fit: results independent of the rank count (compared with a 1-rank fit computed
// in-process on MPI_COMM_SELF), trial resets, checkpoint/resume giving the uninterrupted result,
// divergence detection, option checks.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <memory>

#include "core/h5.hpp"
#include "fit/curbd.hpp"
#include "core/rng.hpp"
#include "fit_test_data.hpp"
#include "test_util.hpp"

using namespace cohortnet;

namespace {

// Max relative difference of this rank's rows of J against the same rows of a full reference.
double j_rel_diff(const std::vector<double>& local, RowRange rows, const std::vector<double>& full, std::int64_t N) {
  double d = 0, s = 0;
  for (PetscInt i = 0; i < rows.count(); ++i)
    for (std::int64_t j = 0; j < N; ++j) {
      const double a = local[size_t(i * N + j)], b = full[size_t((rows.begin + i) * N + j)];
      d = std::max(d, std::abs(a - b));
      s = std::max(s, std::abs(b));
    }
  double both[2] = {d, s};
  MPI_Allreduce(MPI_IN_PLACE, both, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return both[0] / both[1];
}

fit::Params small_params() {
  fit::Params p;
  p.set_time(0.1, 3);
  p.horizon_auto = false;  // these tests pin the fit's mechanics, not the defaults (test_heldout)
  p.stop_when_flat = 0;
  p.runs_train = 4;
  p.runs_free = 1;
  p.seed = 11;
  return p;
}

}  // namespace

TEST(Fit, SameResultAtAnyRankCount) {
  AnimalMeta meta = fittest::make_meta("rk", 47, 150, 3, 0.01);  // 47: uneven row split
  fit::Params p = small_params();
  // Reference: the whole animal on one rank, in-process.
  AnimalData one = fittest::make_animal(meta, MPI_COMM_SELF);
  fit::Trainer ref(one, 3, p, MPI_COMM_SELF);
  while (!ref.finished()) ref.run_next();
  const std::vector<double> Jref = ref.local_J();

  AnimalData mine = fittest::make_animal(meta, MPI_COMM_WORLD);
  fit::Trainer tr(mine, 3, p, MPI_COMM_WORLD);
  while (!tr.finished()) tr.run_next();
  EXPECT_LT(j_rel_diff(tr.local_J(), tr.rows(), Jref, 47), 1e-9);
  for (size_t r = 0; r < ref.pvar().size(); ++r) {
    EXPECT_NEAR(tr.pvar()[r], ref.pvar()[r], 1e-9 * std::abs(ref.pvar()[r])) << "run " << r;
    EXPECT_NEAR(tr.chi2()[r], ref.chi2()[r], 1e-9 * std::abs(ref.chi2()[r])) << "run " << r;
  }
  // Learning improved the fit, and J moved.
  EXPECT_GT(tr.pvar()[3], tr.pvar()[0]);
  // Rates of the last run agree too.
  const std::vector<double> Rl = tr.local_rates(), Rf = ref.local_rates();
  double dr = 0;
  for (PetscInt i = 0; i < tr.rows().count(); ++i)
    for (std::int64_t t = 0; t < 150; ++t)
      dr = std::max(dr, std::abs(Rl[size_t(i * 150 + t)] - Rf[size_t((tr.rows().begin + i) * 150 + t)]));
  MPI_Allreduce(MPI_IN_PLACE, &dr, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_LT(dr, 1e-9);
}

TEST(Fit, TrialResetsAndRegionNormalisation) {
  AnimalMeta meta = fittest::make_meta("tr", 31, 120, 2, 0.02);
  meta.trial_starts = {0, 40, 85};
  fit::Params p = small_params();
  p.normalise = fit::Normalise::Region;
  AnimalData one = fittest::make_animal(meta, MPI_COMM_SELF);
  fit::Trainer ref(one, 0, p, MPI_COMM_SELF);
  while (!ref.finished()) ref.run_next();
  AnimalData mine = fittest::make_animal(meta, MPI_COMM_WORLD);
  fit::Trainer tr(mine, 0, p, MPI_COMM_WORLD);
  while (!tr.finished()) tr.run_next();
  EXPECT_LT(j_rel_diff(tr.local_J(), tr.rows(), ref.local_J(), 31), 1e-9);
  EXPECT_NEAR(tr.pvar().back(), ref.pvar().back(), 1e-9);
  // Per-region scales are each region's maximum.
  ASSERT_EQ(tr.scale().size(), 2u);
  EXPECT_NE(tr.scale()[0], tr.scale()[1]);
  // At a trial start the model rate is the reset value tanh(target).
  const std::vector<double> R = tr.local_rates();
  for (PetscInt i = 0; i < tr.rows().count(); ++i) {
    const std::int64_t u = tr.rows().begin + i;
    const double target = std::min(0.999, std::max(-0.999, fittest::rate(u, 40, 0.02) / tr.scale()[size_t(meta.unit_region[size_t(u)])]));
    EXPECT_NEAR(R[size_t(i * 120 + 40)], std::tanh(target), 1e-14);
  }
}

TEST(Fit, CheckpointResumeGivesUninterruptedResult) {
  const std::string dir = testutil::scratch_dir("fit-ckpt");
  AnimalMeta meta = fittest::make_meta("ck", 40, 100, 2, 0.01);
  fit::Params p = small_params();
  p.runs_train = 5;
  AnimalData data = fittest::make_animal(meta, MPI_COMM_WORLD);
  fit::Trainer full(data, 1, p, MPI_COMM_WORLD);
  while (!full.finished()) full.run_next();

  {
    fit::Trainer a(data, 1, p, MPI_COMM_WORLD);
    a.run_next();
    a.run_next();
    a.run_next();
    a.save_checkpoint(dir + "/ck.h5", "[fit]\n");
  }
  fit::Trainer b(data, 1, p, MPI_COMM_WORLD);
  b.load_checkpoint(dir + "/ck.h5");
  EXPECT_EQ(b.runs_done(), 3);
  while (!b.finished()) b.run_next();
  EXPECT_EQ(b.pvar(), full.pvar());  // bit-identical: same rank count
  EXPECT_EQ(b.chi2(), full.chi2());
  EXPECT_EQ(b.local_J(), full.local_J());
  EXPECT_EQ(b.local_P(), full.local_P());

  // A checkpoint from other parameters is refused with a message naming the file.
  fit::Params q = p;
  q.tau_rnn *= 1.5;
  fit::Trainer c(data, 1, q, MPI_COMM_WORLD);
  try {
    c.load_checkpoint(dir + "/ck.h5");
    ADD_FAILURE() << "mismatching checkpoint accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ck.h5"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tau_rnn"), std::string::npos) << e.what();  // names what differs
  }
  // A setting that does not act in this fit (J0's gain after the regression start) does not make
  // the checkpoint another fit's.
  fit::Params g = p;
  g.g = 1.2;
  ASSERT_TRUE(g.starts_from_regression());
  fit::Trainer d(data, 1, g, MPI_COMM_WORLD);
  d.load_checkpoint(dir + "/ck.h5");
  EXPECT_EQ(d.runs_done(), 3);
}

TEST(Fit, DivergenceIsReportedNamingTheAnimal) {
  // Euler with dt/tau = 100 explodes: x -> inf -> NaN; the fit must say so, naming the animal.
  AnimalMeta meta = fittest::make_meta("blowup", 20, 300, 2, 1.0);
  fit::Params p;
  p.set_time(0.01, 1);
  p.horizon_auto = false;  // run freely: the state blows up (resets every K samples would only saturate it)
  p.stop_when_flat = 0;
  p.runs_train = 2;
  AnimalData data = fittest::make_animal(meta, MPI_COMM_WORLD);
  fit::Trainer tr(data, 0, p, MPI_COMM_WORLD);
  try {
    tr.run_next();
    tr.run_next();
    ADD_FAILURE() << "no divergence detected";
  } catch (const fit::Diverged& e) {
    EXPECT_NE(std::string(e.what()).find("blowup"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("diverged"), std::string::npos) << e.what();
  }
}

TEST(Fit, BadParametersNameTheOption) {
  auto msg = [](fit::Params p) {
    try {
      fit::check_params(p);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  fit::Params p;
  p.set_time(-1, 1);
  EXPECT_NE(msg(p).find("--tau-rnn"), std::string::npos);
  p = fit::Params();
  p.set_time(0.1, 0);
  EXPECT_NE(msg(p).find("--dt-factor"), std::string::npos);
  p = fit::Params();
  p.p0 = 0;
  EXPECT_NE(msg(p).find("--p0"), std::string::npos);
  p = fit::Params();
  p.tau_wn = NAN;
  EXPECT_NE(msg(p).find("--tau-wn"), std::string::npos);
  for (int b : {0, 17}) {
    p = fit::Params();
    p.update_block = b;
    EXPECT_NE(msg(p).find("--update-block"), std::string::npos) << b;
  }
  EXPECT_EQ(msg(fit::Params()), "");
  try {
    fit::parse_normalise("median");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--normalise"), std::string::npos);
  }
}

TEST(Fit, ReferenceAccumulatorSkipsSamplesIntegerCountingDoesNot) {
  // dtData 0.025, dtFactor 6: the reference's float accumulator fires every 7 RNN steps, so it
  // learns from fewer samples (and matches later ones with the wrong data); integer counting
  // learns from every sample after the first.
  AnimalMeta meta = fittest::make_meta("acc", 12, 201, 2, 0.025);
  fit::Params p;
  p.holdout.reset();  // every sample is a training sample here
  p.set_time(0.01, 6);
  p.horizon_auto = false;  // every sample after the first is learned (a reset sample is not)
  p.runs_train = 1;
  p.runs_free = 0;
  AnimalData data = fittest::make_animal(meta, MPI_COMM_WORLD);
  fit::Trainer integer(data, 0, p, MPI_COMM_WORLD);
  EXPECT_EQ(integer.learning_samples_per_run(), 200);
  p.reference_compat = true;
  fit::Trainer ref(data, 0, p, MPI_COMM_WORLD);
  EXPECT_EQ(ref.learning_samples_per_run(), 1200 / 7);
  // dtData 0.01, dtFactor 5 (the fixture's setting): no skip.
  AnimalMeta m2 = fittest::make_meta("acc2", 12, 201, 2, 0.01);
  p.dt_factor = 5;
  AnimalData d2 = fittest::make_animal(m2, MPI_COMM_WORLD);
  fit::Trainer ref2(d2, 0, p, MPI_COMM_WORLD);
  EXPECT_EQ(ref2.learning_samples_per_run(), 200);
}

TEST(Fit, TinyAnimalRanksWithoutRows) {
  // N = 2 over 3 ranks: one rank owns no rows; the fit, checkpoint and output still work.
  const std::string dir = testutil::scratch_dir("fit-tiny");
  AnimalMeta meta = fittest::make_meta("tiny", 2, 60, 2, 0.01);
  fit::Params p = small_params();
  AnimalData one = fittest::make_animal(meta, MPI_COMM_SELF);
  fit::Trainer ref(one, 0, p, MPI_COMM_SELF);
  while (!ref.finished()) ref.run_next();
  AnimalData data = fittest::make_animal(meta, MPI_COMM_WORLD);
  fit::Trainer tr(data, 0, p, MPI_COMM_WORLD);
  while (!tr.finished()) tr.run_next();
  EXPECT_LT(j_rel_diff(tr.local_J(), tr.rows(), ref.local_J(), 2), 1e-12);
  tr.save_checkpoint(dir + "/tiny-ckpt.h5", "[fit]\n");
  tr.write_result(dir + "/tiny.h5", "[fit]\n", true);
  h5::File f = h5::open_read(dir + "/tiny.h5", MPI_COMM_WORLD);
  {
    // Equal to rounding: the regression start's Gram sums depend on the rank count.
    const std::vector<double> jf = h5::read_doubles(f, "/J"), jr = ref.local_J();
    ASSERT_EQ(jf.size(), jr.size());
    for (size_t z = 0; z < jf.size(); ++z) EXPECT_NEAR(jf[z], jr[z], 1e-12 * std::max(1.0, std::abs(jr[z])));
  }
  EXPECT_EQ(h5::dims(f, "/currents/per_unit"), (std::vector<hsize_t>{2, 2 * 60}));
  // The start and the prior used are recorded (defaults: regression start, block prior = ratio 0).
  EXPECT_EQ(h5::attr_string(f, "/", "start"), "regression");
  EXPECT_EQ(h5::attr_string(f, "/", "prior"), "block");
  EXPECT_EQ(h5::attr_double(f, "/", "prior_ratio"), 0.0);
  EXPECT_EQ(h5::attr_double(f, "/", "start_p0"), p.start_p0);
  const double r2 = h5::attr_double(f, "/", "start_r2");
  EXPECT_TRUE(r2 > -1e9 && r2 <= 1.0) << r2;  // finite: the start ran and logged its fit
}

TEST(Fit, StopInsideARunAndResumeGivesUninterruptedResult) {
  // A stop requested in the middle of a run (as SIGTERM does) checkpoints the state inside the
  // run; a new Trainer continues from there and ends bit-identical to an uninterrupted fit.
  const std::string dir = testutil::scratch_dir("fit-midrun");
  AnimalMeta meta = fittest::make_meta("mid", 33, 120, 3, 0.01);
  meta.trial_starts = {0, 70};
  fit::Params p = small_params();
  AnimalData data = fittest::make_animal(meta, MPI_COMM_WORLD);
  fit::Trainer full(data, 2, p, MPI_COMM_WORLD);
  while (!full.finished()) full.run_next();

  int calls = 0;
  {
    fit::Trainer a(data, 2, p, MPI_COMM_WORLD);
    a.run_next();
    a.set_stop_check([&] { return ++calls == 2; }, 50);  // stop at iteration 101 of run 2
    fit::RunStats s = a.run_next();
    EXPECT_FALSE(s.complete);
    EXPECT_TRUE(a.inside_run());
    EXPECT_EQ(a.runs_done(), 1);
    a.save_checkpoint(dir + "/mid.h5", "[fit]\n");
  }
  fit::Trainer b(data, 2, p, MPI_COMM_WORLD);
  b.load_checkpoint(dir + "/mid.h5");
  EXPECT_TRUE(b.inside_run());
  while (!b.finished()) EXPECT_TRUE(b.run_next().complete);
  EXPECT_EQ(b.pvar(), full.pvar());
  EXPECT_EQ(b.chi2(), full.chi2());
  EXPECT_EQ(b.local_J(), full.local_J());
  EXPECT_EQ(b.local_P(), full.local_P());
  EXPECT_EQ(b.local_rates(), full.local_rates());
}

// ---- the RLS prior (--prior region | shared, --prior-ratio) ----

namespace {
// Max |J| over this rank's inter-region (target region != source region) entries, over all ranks.
double max_inter(const fit::Trainer& tr, const AnimalMeta& meta) {
  const std::vector<double> J = tr.local_J();
  const std::int64_t N = meta.n_units;
  double mx = 0;
  for (PetscInt i = 0; i < tr.rows().count(); ++i)
    for (std::int64_t j = 0; j < N; ++j)
      if (meta.unit_region[size_t(tr.rows().begin + i)] != meta.unit_region[size_t(j)])
        mx = std::max(mx, std::abs(J[size_t(i * N + j)]));
  MPI_Allreduce(MPI_IN_PLACE, &mx, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return mx;
}
}  // namespace

TEST(FitPrior, RegionPriorRatioZeroKeepsInterRegionWeightsZero) {
  AnimalMeta meta = fittest::make_meta("pr", 30, 120, 3, 0.01);
  AnimalData data = fittest::make_animal(meta, MPI_COMM_WORLD);
  fit::Params p = small_params();
  p.start = fit::Start::Random;  // the prior's own behaviour, from the random J0
  p.prior = fit::Prior::Region;
  p.prior_ratio = 0;
  p.holdout.reset();  // the in-sample pVar improves (held-out samples would not)
  fit::Trainer z(data, 0, p, MPI_COMM_WORLD);
  EXPECT_EQ(z.n_p(), 3);
  EXPECT_EQ(max_inter(z, meta), 0.0);  // J0's inter-region blocks are zero
  while (!z.finished()) z.run_next();
  EXPECT_EQ(max_inter(z, meta), 0.0);  // ... and nothing was learned there
  EXPECT_GT(z.pvar()[3], z.pvar()[0]);  // while the within-region weights learned
  // A positive ratio learns inter-region weights, more with a larger ratio.
  p.prior_ratio = 1e-3;
  fit::Trainer small(data, 0, p, MPI_COMM_WORLD);
  while (!small.finished()) small.run_next();
  p.prior_ratio = 1.0;
  fit::Trainer one(data, 0, p, MPI_COMM_WORLD);
  while (!one.finished()) one.run_next();
  EXPECT_GT(max_inter(small, meta), 0.0);
  EXPECT_GT(max_inter(one, meta), 10 * max_inter(small, meta));
  // The shared prior (the reference) starts from a dense J0.
  p.prior = fit::Prior::Shared;
  fit::Trainer sh(data, 0, p, MPI_COMM_WORLD);
  EXPECT_EQ(sh.n_p(), 0);
  EXPECT_GT(max_inter(sh, meta), 0.1);
}

TEST(FitPrior, RegionPriorWithRatioOneEqualsSharedPriorUpdates) {
  // With prior_ratio 1 every P_Q starts as p0 I and sees the same r, so each P_Q equals the shared
  // P; from the same J0 the two priors then give the same J (up to rounding). The shared fit
  // starts from the region prior's J0 (inter-region blocks zero, within-region rescaled).
  AnimalMeta meta = fittest::make_meta("eq", 24, 90, 2, 0.01);
  AnimalData data = fittest::make_animal(meta, MPI_COMM_WORLD);
  fit::Params p = small_params();
  p.start = fit::Start::Random;
  p.prior = fit::Prior::Region;
  p.prior_ratio = 1.0;
  fit::Trainer reg(data, 0, p, MPI_COMM_WORLD);
  fit::Init init;
  init.j0 = reg.local_J();  // J0 of the region prior, taken before training
  while (!reg.finished()) reg.run_next();
  fit::Params q = p;
  q.prior = fit::Prior::Shared;
  // Init injects J0 and the noise together: rebuild the noise exactly as the Trainer draws it.
  const std::int64_t L = (meta.n_samples - 1) * p.dt_factor + 1;
  const double dt = meta.sample_interval / p.dt_factor;
  const double amp = std::sqrt(p.tau_wn / dt), decay = std::exp(-dt / p.tau_wn);
  for (PetscInt i = 0; i < reg.rows().count(); ++i) {
    Stream st(p.seed, {kTagNoise, 0, std::uint64_t(reg.rows().begin + i)});
    double u = 1.0;
    (void)st.normal();
    std::vector<double> row(static_cast<size_t>(L));
    row[0] = p.amp_in_wn * u;
    for (std::int64_t t = 1; t < L; ++t) {
      const double w = amp * st.normal();
      u = w + (u - w) * decay;
      row[size_t(t)] = p.amp_in_wn * u;
    }
    init.noise.insert(init.noise.end(), row.begin(), row.end());
  }
  fit::Trainer sh(data, 0, q, MPI_COMM_WORLD, &init);
  while (!sh.finished()) sh.run_next();
  const std::vector<double> a = reg.local_J(), b = sh.local_J();
  double d = 0, s = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    d = std::max(d, std::abs(a[k] - b[k]));
    s = std::max(s, std::abs(b[k]));
  }
  MPI_Allreduce(MPI_IN_PLACE, &d, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_LT(d / s, 1e-9);
  for (size_t r = 0; r < reg.pvar().size(); ++r) EXPECT_NEAR(reg.pvar()[r], sh.pvar()[r], 1e-9);
}

TEST(FitPrior, SharedPriorSameResultAtAnyRankCountAndResume) {
  // The region prior is the default and covered by the tests above; the same for the shared P.
  const std::string dir = testutil::scratch_dir("fit-shared");
  AnimalMeta meta = fittest::make_meta("sh", 37, 110, 3, 0.01);
  fit::Params p = small_params();
  p.prior = fit::Prior::Shared;
  AnimalData one = fittest::make_animal(meta, MPI_COMM_SELF);
  fit::Trainer ref(one, 4, p, MPI_COMM_SELF);
  while (!ref.finished()) ref.run_next();
  AnimalData data = fittest::make_animal(meta, MPI_COMM_WORLD);
  fit::Trainer full(data, 4, p, MPI_COMM_WORLD);
  while (!full.finished()) full.run_next();
  EXPECT_LT(j_rel_diff(full.local_J(), full.rows(), ref.local_J(), 37), 1e-9);
  {
    fit::Trainer a(data, 4, p, MPI_COMM_WORLD);
    a.run_next();
    a.run_next();
    a.save_checkpoint(dir + "/sh.h5", "[fit]\n");
  }
  fit::Trainer b(data, 4, p, MPI_COMM_WORLD);
  b.load_checkpoint(dir + "/sh.h5");
  while (!b.finished()) b.run_next();
  EXPECT_EQ(b.local_J(), full.local_J());
  EXPECT_EQ(b.local_P(), full.local_P());
  // A shared-prior checkpoint is refused by a region-prior fit (other parameters).
  fit::Params r = p;
  r.prior = fit::Prior::Region;
  fit::Trainer c(data, 4, r, MPI_COMM_WORLD);
  EXPECT_THROW(c.load_checkpoint(dir + "/sh.h5"), Error);
  // --reference-compat means the reference's shared P whatever --prior says.
  fit::Params rc = small_params();
  rc.reference_compat = true;
  fit::Trainer rt(data, 4, rc, MPI_COMM_WORLD);
  EXPECT_EQ(rt.n_p(), 0);
  EXPECT_NE(rt.fingerprint().find("prior=shared"), std::string::npos);
}

TEST(FitPrior, BadPriorOptionsNameTheOption) {
  fit::Params p;
  p.prior_ratio = -1.0;
  try {
    fit::check_params(p);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--prior-ratio"), std::string::npos);
  }
  try {
    fit::parse_prior("diagonal");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--prior"), std::string::npos);
  }
}

// ---- input channels (--inputs use) ----

namespace {
// An animal driven only by two known inputs: x' = (-x + W u(t)) / tau, rates tanh(x); W planted.
struct Planted {
  AnimalMeta meta;
  std::vector<double> W;       // N x 2
  std::vector<double> inputs;  // 2 x T
  std::vector<double> rates;   // N x T
};
// lag_tau > 0: the units are driven by the inputs smoothed causally with that time constant (as
// --input-smoothing makes them), not by the inputs themselves.
Planted planted_inputs(std::int64_t N, std::int64_t T, double lag_tau = 0) {
  Planted p;
  p.meta = fittest::make_meta("inp", N, T, 2, 0.01);
  p.meta.input_names = {"sine", "slow"};
  Stream s(77, {1});
  p.W.resize(size_t(N) * 2);
  for (double& w : p.W) w = 1.5 * s.normal();
  p.inputs.resize(2 * size_t(T));
  for (std::int64_t t = 0; t < T; ++t) {
    p.inputs[size_t(t)] = std::sin(6.283 * 1.3 * 0.01 * double(t));
    p.inputs[size_t(T + t)] = std::cos(6.283 * 0.4 * 0.01 * double(t)) + 0.3;
  }
  p.rates.resize(size_t(N) * size_t(T));
  std::vector<double> x(static_cast<size_t>(N), 0.0);
  const int sub = 5;
  const double h = 0.01 / sub, tau = 0.1;
  std::vector<double> drive = p.inputs;
  if (lag_tau > 0) {
    const double a = 1.0 - std::exp(-0.01 / lag_tau);
    for (int c = 0; c < 2; ++c)
      for (std::int64_t t = 1; t < T; ++t)
        drive[size_t(c * T + t)] = drive[size_t(c * T + t - 1)] + a * (p.inputs[size_t(c * T + t)] - drive[size_t(c * T + t - 1)]);
  }
  for (int warm = 0; warm < 2; ++warm)  // second pass starts from the first's end state
    for (std::int64_t t = 0; t < T; ++t) {
      for (std::int64_t i = 0; i < N; ++i) p.rates[size_t(i * T + t)] = std::tanh(x[size_t(i)]);
      for (int k = 0; k < sub; ++k)
        for (std::int64_t i = 0; i < N; ++i) {
          const double in = p.W[size_t(2 * i)] * drive[size_t(t)] + p.W[size_t(2 * i + 1)] * drive[size_t(T + t)];
          x[size_t(i)] += h * (-x[size_t(i)] + in) / tau;
        }
    }
  return p;
}
AnimalData planted_data(const Planted& p, MPI_Comm comm) {
  AnimalData d;
  d.meta = p.meta;
  d.rows = own_rows(PetscInt(p.meta.n_units), comm);
  const std::int64_t T = p.meta.n_samples;
  d.activity.assign(p.rates.begin() + d.rows.begin * T, p.rates.begin() + d.rows.end * T);
  d.inputs = p.inputs;
  return d;
}
// A fit stopped inside its second run, checkpointed and resumed by a new Trainer ends bit for bit
// as the uninterrupted `full` (J, W_in, P, pVar); returns the resumed Trainer.
std::unique_ptr<fit::Trainer> expect_mid_run_resume_equals(const AnimalData& data, const fit::Params& p,
                                                           const std::string& ckpt, const fit::Trainer& full) {
  int calls = 0;
  {
    fit::Trainer a(data, 1, p, MPI_COMM_WORLD);
    a.run_next();
    a.set_stop_check([&] { return ++calls == 2; }, 60);
    EXPECT_FALSE(a.run_next().complete);
    a.save_checkpoint(ckpt, "[fit]\n");
  }
  auto b = std::make_unique<fit::Trainer>(data, 1, p, MPI_COMM_WORLD);
  b->load_checkpoint(ckpt);
  while (!b->finished()) b->run_next();
  EXPECT_EQ(b->local_J(), full.local_J());
  EXPECT_EQ(b->local_W_in(), full.local_W_in());
  EXPECT_EQ(b->local_P(), full.local_P());
  EXPECT_EQ(b->pvar(), full.pvar());
  return b;
}
fit::Params input_params() {
  fit::Params p;
  p.set_time(0.1, 5);
  p.horizon_auto = false;
  p.stop_when_flat = 0;
  p.g = 0;  // J0 = 0: the inputs are the only drive to begin with
  p.runs_train = 15;
  p.runs_free = 1;
  p.seed = 3;
  return p;
}
}  // namespace

TEST(FitInputs, InputWeightsLearnAPlantedInput) {
  const Planted pl = planted_inputs(16, 300);
  AnimalData data = planted_data(pl, MPI_COMM_WORLD);
  fit::Params p = input_params();
  fit::Trainer tr(data, 0, p, MPI_COMM_WORLD);
  ASSERT_EQ(tr.n_inputs(), 2);
  while (!tr.finished()) tr.run_next();
  // Learned W_in against the planted W (this rank's rows, pooled over ranks).
  const std::vector<double> w = tr.local_W_in();
  double s[5] = {0, 0, 0, 0, 0};
  for (PetscInt i = 0; i < tr.rows().count(); ++i)
    for (int c = 0; c < 2; ++c) {
      const double a = w[size_t(2 * i + c)], b = pl.W[size_t(2 * (tr.rows().begin + i) + c)];
      s[0] += a * b;
      s[1] += a * a;
      s[2] += b * b;
      s[3] += a;
      s[4] += b;
    }
  MPI_Allreduce(MPI_IN_PLACE, s, 5, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  const double n = 32, r = (s[0] - s[3] * s[4] / n) / std::sqrt((s[1] - s[3] * s[3] / n) * (s[2] - s[4] * s[4] / n));
  if (comm_rank(MPI_COMM_WORLD) == 0) std::printf("planted input: corr(W_in, W) = %.3f, pVar %.4f\n", r, tr.pvar().back());
  EXPECT_GT(r, 0.9);
  // Without the input channels the same fit explains the data worse.
  p.use_inputs = false;
  fit::Trainer no(data, 0, p, MPI_COMM_WORLD);
  EXPECT_EQ(no.n_inputs(), 0);
  while (!no.finished()) no.run_next();
  EXPECT_GT(tr.pvar().back(), no.pvar().back());
}

TEST(FitInputs, SmoothedInputsLearnADriveThatLagsTheInputs) {
  // The units follow the inputs smoothed with tau 0.2 s (a drive that lags what is recorded):
  // --input-smoothing 0.2 adds exactly those channels (named INPUT~0.2s), the fit puts its input
  // weight on them and explains the data better than from the raw inputs alone. Rank independence comes from the
  // test's 1-3 rank runs; a mid-run resume ends bit for bit.
  const std::string dir = testutil::scratch_dir("fit-inputs-smooth");
  const Planted pl = planted_inputs(16, 300, 0.2);
  AnimalData data = planted_data(pl, MPI_COMM_WORLD);
  fit::Params p = input_params();
  p.input_smoothing = {0.2};
  fit::Trainer tr(data, 0, p, MPI_COMM_WORLD);
  ASSERT_EQ(tr.n_inputs(), 4);
  while (!tr.finished()) tr.run_next();
  // The fit leans on the smoothed channels (the drive), more than on the raw ones.
  const std::vector<double> w = tr.local_W_in();
  double ss[2] = {0, 0};  // sum of squares: raw channels, smoothed channels
  for (PetscInt i = 0; i < tr.rows().count(); ++i)
    for (int c = 0; c < 4; ++c) ss[c / 2] += w[size_t(4 * i + c)] * w[size_t(4 * i + c)];
  MPI_Allreduce(MPI_IN_PLACE, ss, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  fit::Params raw = input_params();
  fit::Trainer no(data, 0, raw, MPI_COMM_WORLD);
  ASSERT_EQ(no.n_inputs(), 2);
  while (!no.finished()) no.run_next();
  if (comm_rank(MPI_COMM_WORLD) == 0)
    std::printf("lagged drive: |W_in| smoothed / raw channels %.2f, pVar %.4f with smoothing, %.4f without\n",
                std::sqrt(ss[1] / ss[0]), tr.pvar().back(), no.pvar().back());
  EXPECT_GT(ss[1], 4 * ss[0]);
  EXPECT_GT(tr.pvar().back(), no.pvar().back() + 0.03);
  tr.write_result(dir + "/s.h5", "[fit]\n", false);
  {
    h5::File f = h5::open_read(dir + "/s.h5", MPI_COMM_WORLD);
    EXPECT_EQ(h5::read_strings(f, "/input_names"), (std::vector<std::string>{"sine", "slow", "sine~0.2s", "slow~0.2s"}));
  }
  fit::Params shortp = p;
  shortp.runs_train = 2;
  fit::Trainer full(data, 1, shortp, MPI_COMM_WORLD);
  while (!full.finished()) full.run_next();
  expect_mid_run_resume_equals(data, shortp, dir + "/s.ckpt.h5", full);
  fit::Params negative = input_params();
  negative.input_smoothing = {-1.0};
  EXPECT_THROW(fit::check_params(negative), Error);
  for (const char* bad : {"0,1", "fast", "1,", "-2", "1,1"}) {
    try {
      (void)fit::parse_input_smoothing(bad);
      if (std::string(bad) != "1,") ADD_FAILURE() << "--input-smoothing " << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--input-smoothing"), std::string::npos) << e.what();
    }
  }
}

TEST(FitInputs, InputAndRegionCurrentsSumToTheTotalInput) {
  const std::string dir = testutil::scratch_dir("fit-inputs");
  const Planted pl = planted_inputs(14, 120);
  AnimalData data = planted_data(pl, MPI_COMM_WORLD);
  fit::Params p = input_params();
  p.g = 1.2;
  p.runs_train = 3;
  fit::Trainer tr(data, 0, p, MPI_COMM_WORLD);
  while (!tr.finished()) tr.run_next();
  tr.write_result(dir + "/inp.h5", "[fit]\n", true);
  h5::File f = h5::open_read(dir + "/inp.h5", MPI_COMM_WORLD);
  const std::int64_t N = 14, T = 120;
  const int M = 2;
  const std::vector<double> J = h5::read_doubles(f, "/J"), W = h5::read_doubles(f, "/W_in"),
                            R = h5::read_doubles(f, "/rates"), pu = h5::read_doubles(f, "/currents/per_unit"),
                            pi = h5::read_doubles(f, "/currents/input_per_unit"),
                            im = h5::read_doubles(f, "/currents/input_mean");
  EXPECT_EQ(h5::read_strings(f, "/input_names"), pl.meta.input_names);
  EXPECT_EQ(h5::dims(f, "/currents/input_mean"), (std::vector<hsize_t>{2, 2, 120}));
  double worst = 0;
  std::vector<double> mean_check(size_t(M) * 2 * size_t(T), 0.0);
  std::vector<int> nq(size_t(M), 0);
  for (std::int64_t i = 0; i < N; ++i) {
    const int q = pl.meta.unit_region[size_t(i)];
    ++nq[size_t(q)];
    for (std::int64_t t = 0; t < T; ++t) {
      double total = 0;  // J r + W_in u, directly
      for (std::int64_t j = 0; j < N; ++j) total += J[size_t(i * N + j)] * R[size_t(j * T + t)];
      for (int c = 0; c < 2; ++c) {
        total += W[size_t(i * 2 + c)] * pl.inputs[size_t(c * T + t)];
        mean_check[(size_t(q) * 2 + size_t(c)) * size_t(T) + size_t(t)] += W[size_t(i * 2 + c)] * pl.inputs[size_t(c * T + t)];
      }
      double parts = 0;
      for (int s = 0; s < M; ++s) parts += pu[size_t(i * M * T + s * T + t)];
      for (int c = 0; c < 2; ++c) parts += pi[size_t(i * 2 * T + c * T + t)];
      worst = std::max(worst, std::abs(parts - total));
    }
  }
  EXPECT_LT(worst, 1e-12);
  for (size_t z = 0; z < mean_check.size(); ++z) {
    const int q = int(z / (2 * size_t(T)));
    EXPECT_NEAR(im[z], mean_check[z] / nq[size_t(q)], 1e-12);
  }
}

TEST(FitInputs, SameResultAtAnyRankCountAndMidRunResume) {
  const std::string dir = testutil::scratch_dir("fit-inputs-rk");
  const Planted pl = planted_inputs(23, 100);
  for (fit::Prior prior : {fit::Prior::Region, fit::Prior::Shared}) {
    fit::Params p = input_params();
    p.g = 1.3;
    p.runs_train = 3;
    p.prior = prior;
    AnimalData one = planted_data(pl, MPI_COMM_SELF);
    fit::Trainer ref(one, 1, p, MPI_COMM_SELF);
    while (!ref.finished()) ref.run_next();
    AnimalData data = planted_data(pl, MPI_COMM_WORLD);
    fit::Trainer full(data, 1, p, MPI_COMM_WORLD);
    while (!full.finished()) full.run_next();
    EXPECT_LT(j_rel_diff(full.local_J(), full.rows(), ref.local_J(), 23), 1e-9);
    EXPECT_LT(j_rel_diff(full.local_W_in(), full.rows(), ref.local_W_in(), 2), 1e-9);
    expect_mid_run_resume_equals(data, p, dir + "/mid.h5", full);
  }
}

// ---- delayed (blocked) RLS updates (--update-block) ----

TEST(FitBlocked, BlockedUpdatesEqualPlainUpdatesToRounding) {
  // Applying J's and P's rank-1 terms every B learning steps (exactly corrected in between) gives
  // the fit of the plain every-step update, to rounding: shared prior, region prior with input
  // channels, a block that does not divide the learning steps of a run (120 samples, B = 7) and
  // the largest block (B = 16, region prior with inputs).
  const Planted pl = planted_inputs(29, 120);
  for (fit::Prior prior : {fit::Prior::Shared, fit::Prior::Region}) {
    for (bool inputs : {false, true}) {
      fit::Params p = input_params();
      p.prior = prior;
      p.use_inputs = inputs;
      p.g = 1.3;  // a recurrent network (g = 0 would leave J r small)
      p.runs_train = 3;
      AnimalData data = planted_data(pl, MPI_COMM_WORLD);
      p.update_block = 1;
      fit::Trainer plain(data, 1, p, MPI_COMM_WORLD);
      while (!plain.finished()) plain.run_next();
      {
        const int b = prior == fit::Prior::Region && inputs ? 16 : 7;
        p.update_block = b;
        fit::Trainer blocked(data, 1, p, MPI_COMM_WORLD);
        while (!blocked.finished()) blocked.run_next();
        const std::vector<double> Rp = plain.full_rates();  // (collective; rates of the last run)
        const std::vector<double> Rb = blocked.full_rates();
        double dr = 0;
        for (size_t z = 0; z < Rp.size(); ++z) dr = std::max(dr, std::abs(Rp[z] - Rb[z]));
        const std::string what = std::string(fit::prior_name(prior)) + (inputs ? " + inputs" : "") + ", B=" + std::to_string(b);
        // J: gather the plain fit's rows to compare row by row on every rank count.
        std::vector<double> Jfull(size_t(29 * 29), 0.0);
        const std::vector<double> Jl = plain.local_J();
        std::copy(Jl.begin(), Jl.end(), Jfull.begin() + plain.rows().begin * 29);
        MPI_Allreduce(MPI_IN_PLACE, Jfull.data(), int(Jfull.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        EXPECT_LT(j_rel_diff(blocked.local_J(), blocked.rows(), Jfull, 29), 1e-9) << what;
        EXPECT_LT(dr, 1e-9) << what;
        for (size_t r = 0; r < plain.pvar().size(); ++r)
          EXPECT_NEAR(blocked.pvar()[r], plain.pvar()[r], 1e-9) << what << ", run " << r;
        if (inputs) {
          std::vector<double> w(size_t(29 * 2), 0.0);
          const std::vector<double> wl = plain.local_W_in();
          std::copy(wl.begin(), wl.end(), w.begin() + plain.rows().begin * 2);
          MPI_Allreduce(MPI_IN_PLACE, w.data(), int(w.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
          EXPECT_LT(j_rel_diff(blocked.local_W_in(), blocked.rows(), w, 2), 1e-9) << what;
        }
      }
    }
  }
}

// ---- regression start (--start regression) ----

namespace {
// What the regression start must give, computed the direct way on the whole animal: for every
// row i (region q), the ridge solution w = (Z Z^T + diag(1/prior_q))^-1 Z y_i over the sample pairs
// (t, t+1) of one trial, Z = [D_t; u_t], y_i(t) = x_t + tau (x_{t+1} - x_t) / dt, x = atanh(D),
// D = activity / global max clipped to 0.999, prior = p0 for own-region sources and inputs,
// p0 * ratio for other regions (shared prior: p0 for all). Rows x (N + n_in), row-major.
std::vector<double> ridge_start(const AnimalData& whole, const fit::Params& p) {
  const AnimalMeta& m = whole.meta;
  const std::int64_t N = m.n_units, T = m.n_samples;
  const int n_in = p.use_inputs ? int(m.input_names.size()) : 0;
  const size_t K = size_t(N) + size_t(n_in);
  double mx = -INFINITY;
  for (double v : whole.activity) mx = std::max(mx, v);
  auto D = [&](std::int64_t i, std::int64_t t) {
    return std::clamp(whole.activity[size_t(i * T + t)] / mx, -0.999, 0.999);
  };
  auto z = [&](size_t j, std::int64_t t) { return j < size_t(N) ? D(std::int64_t(j), t) : whole.inputs[(j - size_t(N)) * size_t(T) + size_t(t)]; };
  std::vector<char> start(size_t(T), 0);
  for (auto s : m.trial_starts) start[size_t(s)] = 1;
  std::vector<double> out(size_t(N) * K);
  for (std::int64_t i = 0; i < N; ++i) {
    const int q = m.unit_region[size_t(i)];
    std::vector<double> A(K * K, 0.0), b(K, 0.0);
    for (std::int64_t t = 0; t + 1 < T; ++t) {
      if (start[size_t(t + 1)]) continue;
      const double x0 = std::atanh(D(i, t)), x1 = std::atanh(D(i, t + 1));
      const double y = x0 + p.tau_rnn / m.sample_interval * (x1 - x0);
      for (size_t a = 0; a < K; ++a) {
        b[a] += z(a, t) * y;
        for (size_t c = 0; c < K; ++c) A[a * K + c] += z(a, t) * z(c, t);
      }
    }
    for (size_t a = 0; a < K; ++a) {
      const bool other = a < size_t(N) && p.per_region_p() && m.unit_region[a] != q;
      A[a * K + a] += 1.0 / (other ? p.start_p0 * p.start_ratio : p.start_p0);
    }
    // Gaussian elimination with partial pivoting (A is symmetric positive definite).
    for (size_t c = 0; c < K; ++c) {
      size_t piv = c;
      for (size_t r = c + 1; r < K; ++r)
        if (std::abs(A[r * K + c]) > std::abs(A[piv * K + c])) piv = r;
      for (size_t k = 0; k < K; ++k) std::swap(A[c * K + k], A[piv * K + k]);
      std::swap(b[c], b[piv]);
      for (size_t r = c + 1; r < K; ++r) {
        const double f = A[r * K + c] / A[c * K + c];
        for (size_t k = c; k < K; ++k) A[r * K + k] -= f * A[c * K + k];
        b[r] -= f * b[c];
      }
    }
    for (size_t c = K; c-- > 0;) {
      double s = b[c];
      for (size_t k = c + 1; k < K; ++k) s -= A[c * K + k] * out[size_t(i) * K + k];
      out[size_t(i) * K + c] = s / A[c * K + c];
    }
  }
  return out;
}

// Max |fit - expected| / max |expected| over this rank's rows of J and W_in, over all ranks.
double start_error(const fit::Trainer& tr, const std::vector<double>& expect, std::int64_t N, int n_in) {
  const std::vector<double> J = tr.local_J(), W = tr.local_W_in();
  const size_t K = size_t(N) + size_t(n_in);
  double d[2] = {0, 0};
  for (PetscInt i = 0; i < tr.rows().count(); ++i)
    for (size_t a = 0; a < K; ++a) {
      const double want = expect[size_t(tr.rows().begin + i) * K + a];
      const double got = a < size_t(N) ? J[size_t(i) * size_t(N) + a] : W[size_t(i) * size_t(n_in) + a - size_t(N)];
      d[0] = std::max(d[0], std::abs(got - want));
      d[1] = std::max(d[1], std::abs(want));
    }
  MPI_Allreduce(MPI_IN_PLACE, d, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return d[0] / d[1];
}
}  // namespace

TEST(FitStart, RegressionStartIsTheRidgeRegressionOfTheImpliedCurrents) {
  // With no training run, J (and W_in) after the first run is the start: the ridge solution of
  // the direct formula, for the region prior (per-region penalties), the shared prior, the block
  // prior, with input channels, and across a trial boundary (no derivative across it), at every
  // rank count, in the dual (Ts x Ts) and the primal (n x n) form.
  AnimalMeta meta = fittest::make_meta("rs", 17, 90, 3, 0.01);
  meta.trial_starts = {0, 41};
  const Planted pl = planted_inputs(14, 80);
  struct Case {
    const char* what;
    fit::Prior prior;
    bool inputs;
  };
  for (const fit::StartForm form : {fit::StartForm::Dual, fit::StartForm::Primal})
  for (const Case& c : {Case{"region", fit::Prior::Region, false}, Case{"shared", fit::Prior::Shared, false},
                        Case{"region + inputs", fit::Prior::Region, true}, Case{"block + inputs", fit::Prior::Block, true}}) {
    fit::Params p = small_params();
    p.start_form = form;
    p.holdout.reset();  // the direct formula uses every sample (FitHeldOut checks the split's)
    p.start = fit::Start::Regression;
    p.start_p0 = 3;
    p.start_ratio = 0.05;
    p.prior = c.prior;
    p.use_inputs = c.inputs;
    p.runs_train = 0;
    p.runs_free = 1;
    const AnimalData whole = c.inputs ? planted_data(pl, MPI_COMM_SELF) : fittest::make_animal(meta, MPI_COMM_SELF);
    const AnimalData mine = c.inputs ? planted_data(pl, MPI_COMM_WORLD) : fittest::make_animal(meta, MPI_COMM_WORLD);
    fit::Trainer tr(mine, 0, p, MPI_COMM_WORLD);
    tr.run_next();
    const std::int64_t N = whole.meta.n_units;
    const std::vector<double> want = ridge_start(whole, p);
    EXPECT_LT(start_error(tr, want, N, tr.n_inputs()), 1e-9) << c.what << (form == fit::StartForm::Dual ? " dual" : " primal");
    EXPECT_EQ(tr.n_inputs(), c.inputs ? 2 : 0) << c.what;
    // The start is not the random J0: the check above would fail against it.
    p.start = fit::Start::Random;
    fit::Trainer rnd(mine, 0, p, MPI_COMM_WORLD);
    rnd.run_next();
    EXPECT_GT(start_error(rnd, want, N, rnd.n_inputs()), 0.1) << c.what;
  }
}

TEST(FitStart, RegressionStartTrainsAndResumesTheSameAtAnyRankCount) {
  // The start, then training: J, pVar identical (to rounding) to the one-rank fit, and a run
  // stopped inside the first training run and resumed from its checkpoint (a new Trainer, which
  // must not redo the start) gives the uninterrupted result bit for bit.
  AnimalMeta meta = fittest::make_meta("rt", 31, 100, 3, 0.01);
  fit::Params p = small_params();
  p.start = fit::Start::Regression;
  p.holdout.reset();  // pVar over samples it trained on
  AnimalData one = fittest::make_animal(meta, MPI_COMM_SELF);
  fit::Trainer ref(one, 2, p, MPI_COMM_SELF);
  while (!ref.finished()) ref.run_next();
  AnimalData mine = fittest::make_animal(meta, MPI_COMM_WORLD);
  fit::Trainer full(mine, 2, p, MPI_COMM_WORLD);
  while (!full.finished()) full.run_next();
  EXPECT_LT(j_rel_diff(full.local_J(), full.rows(), ref.local_J(), 31), 1e-9);
  for (size_t r = 0; r < ref.pvar().size(); ++r) EXPECT_NEAR(full.pvar()[r], ref.pvar()[r], 1e-9) << "run " << r;
  EXPECT_GT(full.pvar().back(), 0.8);
  // (A stop inside the first run: the checkpoint has an empty run history.)
  const std::string dir = testutil::scratch_dir("fit-start");
  {
    fit::Trainer a(mine, 2, p, MPI_COMM_WORLD);
    int calls = 0;
    a.set_stop_check([&] { return ++calls == 5; }, 10);
    const fit::RunStats st = a.run_next();
    ASSERT_FALSE(st.complete);
    a.save_checkpoint(dir + "/mid.h5", "test");
  }
  fit::Trainer b(mine, 2, p, MPI_COMM_WORLD);
  b.load_checkpoint(dir + "/mid.h5");
  while (!b.finished()) b.run_next();
  EXPECT_EQ(b.local_J(), full.local_J());
  EXPECT_EQ(b.pvar(), full.pvar());
}

TEST(FitStart, BadStartOptionsNameTheOption) {
  for (const char* bad : {"zero", ""}) {
    try {
      fit::parse_start(bad);
      ADD_FAILURE() << "no error for --start '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--start"), std::string::npos) << e.what();
    }
  }
  fit::Params p = small_params();
  p.start_p0 = 0;
  EXPECT_THROW(fit::check_params(p), Error);
  p.start_p0 = 1;
  p.start_ratio = -1;
  try {
    fit::check_params(p);
    ADD_FAILURE() << "no error for --start-ratio -1";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--start-ratio"), std::string::npos) << e.what();
  }
  // --prior region --prior-ratio auto: 1e-5 after the regression start, 1e-3 after the random
  // one; a number wins.
  fit::Params a = small_params();
  a.prior = fit::Prior::Region;
  EXPECT_FALSE(a.prior_ratio.has_value());
  EXPECT_EQ(a.prior_ratio_used(), 1e-5);
  a.start = fit::Start::Random;
  EXPECT_EQ(a.prior_ratio_used(), 1e-3);
  a.prior_ratio = fit::parse_prior_ratio("0.02");
  EXPECT_EQ(a.prior_ratio_used(), 0.02);
  EXPECT_FALSE(fit::parse_prior_ratio("auto").has_value());
  for (const char* bad : {"often", "-1", "1e-3x", "nan"}) {
    try {
      fit::parse_prior_ratio(bad);
      ADD_FAILURE() << "no error for --prior-ratio '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--prior-ratio"), std::string::npos) << e.what();
    }
  }
  // --reference-compat starts from the random J0 whatever --start says (like --prior).
  p.start_ratio = 0.01;
  p.reference_compat = true;
  EXPECT_FALSE(p.starts_from_regression());
}

TEST(Fit, NormaliseNoneTakesTheActivityAsRates) {
  // --normalise none: the target is the activity itself (scale 1 per region); activity outside
  // [-1, 1] is refused naming the animal and the option.
  const Planted pl = planted_inputs(12, 60);  // tanh rates: inside (-1, 1)
  fit::Params p = input_params();
  p.runs_train = 1;
  p.normalise = fit::Normalise::None;
  AnimalData data = planted_data(pl, MPI_COMM_WORLD);
  fit::Trainer tr(data, 0, p, MPI_COMM_WORLD);
  EXPECT_EQ(tr.scale(), std::vector<double>(2, 1.0));
  double mx = 0;
  for (double v : pl.rates) mx = std::max(mx, v);
  ASSERT_LT(mx, 0.999);
  p.normalise = fit::Normalise::Global;
  fit::Trainer gl(data, 0, p, MPI_COMM_WORLD);
  EXPECT_EQ(gl.scale(), std::vector<double>(2, mx));
  p.normalise = fit::Normalise::None;
  for (double& v : data.activity) v *= 3;
  try {
    fit::Trainer bad(data, 0, p, MPI_COMM_WORLD);
    ADD_FAILURE() << "activity outside [-1, 1] accepted with --normalise none";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--normalise none"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("inp"), std::string::npos) << e.what();
  }
  EXPECT_EQ(fit::parse_normalise("none"), fit::Normalise::None);
}

// ---- block-restricted RLS (--prior block) ----

namespace {
// A trained fit's outputs to compare: J rows, W_in rows, pVar, and the region-pair currents.
struct FitOut {
  std::vector<double> J, W, pvar, cur;
  RowRange rows;
};
FitOut train_and_write(const AnimalData& data, const fit::Params& p, MPI_Comm comm, const std::string& path) {
  fit::Trainer tr(data, 1, p, comm);
  while (!tr.finished()) tr.run_next();
  tr.write_result(path, "[fit]\n", false);
  h5::File f = h5::open_read(path, comm);
  return FitOut{tr.local_J(), tr.local_W_in(), tr.pvar(), h5::read_doubles(f, "/currents/mean"), tr.rows()};
}
double max_rel(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0, s = 0;
  for (size_t z = 0; z < a.size(); ++z) {
    d = std::max(d, std::abs(a[z] - b[z]));
    s = std::max(s, std::abs(b[z]));
  }
  double both[2] = {d, s};
  MPI_Allreduce(MPI_IN_PLACE, both, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return both[1] > 0 ? both[0] / both[1] : both[0];
}
}  // namespace

TEST(FitBlock, BlockEqualsTheRegionPriorAtRatioZero) {
  // Region Q's rows learn only from Q's sources (and the inputs), P_Q stored n_Q x n_Q: the full
  // region prior at --prior-ratio 0 exactly, to rounding, with and without input channels, on
  // regions interleaved in file order, at any rank count.
  const std::string dir = testutil::scratch_dir("fit-block");
  const Planted pl = planted_inputs(26, 90);
  for (bool inputs : {false, true}) {
    fit::Params p = input_params();
    p.runs_train = 4;
    p.use_inputs = inputs;
    p.prior = fit::Prior::Region;
    p.prior_ratio = 0;
    AnimalData data = planted_data(pl, MPI_COMM_WORLD);
    const FitOut region = train_and_write(data, p, MPI_COMM_WORLD, dir + "/region.h5");
    p.prior = fit::Prior::Block;
    const FitOut block = train_and_write(data, p, MPI_COMM_WORLD, dir + "/block.h5");
    const std::string what = inputs ? "with inputs" : "without inputs";
    EXPECT_LT(max_rel(block.J, region.J), 1e-9) << what;
    EXPECT_LT(max_rel(block.pvar, region.pvar), 1e-9) << what;
    EXPECT_LT(max_rel(block.cur, region.cur), 1e-9) << what;
    if (inputs) {
      EXPECT_LT(max_rel(block.W, region.W), 1e-9);
    }
    // The same block fit on one rank.
    AnimalData one = planted_data(pl, MPI_COMM_SELF);
    fit::Trainer ref(one, 1, p, MPI_COMM_SELF);
    while (!ref.finished()) ref.run_next();
    EXPECT_LT(j_rel_diff(block.J, block.rows, ref.local_J(), 26), 1e-9) << what;
    for (size_t r = 0; r < ref.pvar().size(); ++r) EXPECT_NEAR(block.pvar[r], ref.pvar()[r], 1e-9) << what;
  }
}

TEST(FitBlock, StopInsideARunAndResumeGivesTheUninterruptedResult) {
  const std::string dir = testutil::scratch_dir("fit-block-resume");
  const Planted pl = planted_inputs(23, 100);
  fit::Params p = input_params();
  p.runs_train = 3;
  p.prior = fit::Prior::Block;
  AnimalData data = planted_data(pl, MPI_COMM_WORLD);
  fit::Trainer full(data, 1, p, MPI_COMM_WORLD);
  EXPECT_EQ(full.n_p(), 2);
  while (!full.finished()) full.run_next();
  const std::unique_ptr<fit::Trainer> resumed = expect_mid_run_resume_equals(data, p, dir + "/mid.h5", full);
  const fit::Trainer& b = *resumed;
  // P_Q is n_Q x n_Q: this rank's rows of each block, not N columns.
  size_t expect = 0;
  for (PetscInt i = 0; i < b.rows().count(); ++i) {
    const int q = pl.meta.unit_region[size_t(b.rows().begin + i)];
    expect += pl.meta.units_of(q).size();
  }
  EXPECT_EQ(b.local_P().size(), expect);
}

TEST(FitBlock, BlockFromARandomStartIsTheRegionPrior) {
  // Block RLS keeps the start's inter-region weights; from a random J0 there are none, so the
  // default block prior means the region prior there (an explicit --prior block is refused by
  // the CLI: tests/fit/bad_options.sh).
  fit::Params p = small_params();
  EXPECT_EQ(p.prior, fit::Prior::Block);
  EXPECT_EQ(p.prior_used(), fit::Prior::Block);
  EXPECT_EQ(p.prior_ratio_used(), 0.0);
  p.start = fit::Start::Random;
  EXPECT_EQ(p.prior_used(), fit::Prior::Region);
  EXPECT_EQ(p.prior_ratio_used(), 1e-3);
  EXPECT_EQ(fit::parse_prior("block"), fit::Prior::Block);
}
