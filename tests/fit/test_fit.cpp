// The distributed fit: results independent of the rank count (compared with a 1-rank fit computed
// in-process on MPI_COMM_SELF), trial resets, checkpoint/resume giving the uninterrupted result,
// divergence detection, option checks.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/h5.hpp"
#include "fit/curbd.hpp"
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
  p.dt_factor = 3;
  p.tau_rnn = 0.1;
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
  q.g = 1.2;
  fit::Trainer c(data, 1, q, MPI_COMM_WORLD);
  try {
    c.load_checkpoint(dir + "/ck.h5");
    ADD_FAILURE() << "mismatching checkpoint accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ck.h5"), std::string::npos) << e.what();
  }
}

TEST(Fit, DivergenceIsReportedNamingTheAnimal) {
  // Euler with dt/tau = 100 explodes: x -> inf -> NaN; the fit must say so, naming the animal.
  AnimalMeta meta = fittest::make_meta("blowup", 20, 300, 2, 1.0);
  fit::Params p;
  p.tau_rnn = 0.01;
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
  p.tau_rnn = -1;
  EXPECT_NE(msg(p).find("--tau-rnn"), std::string::npos);
  p = fit::Params();
  p.dt_factor = 0;
  EXPECT_NE(msg(p).find("--dt-factor"), std::string::npos);
  p = fit::Params();
  p.p0 = 0;
  EXPECT_NE(msg(p).find("--p0"), std::string::npos);
  p = fit::Params();
  p.tau_wn = NAN;
  EXPECT_NE(msg(p).find("--tau-wn"), std::string::npos);
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
  p.dt_factor = 6;
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
  EXPECT_EQ(h5::read_doubles(f, "/J"), ref.local_J());
  EXPECT_EQ(h5::dims(f, "/currents/per_unit"), (std::vector<hsize_t>{2, 2 * 60}));
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
