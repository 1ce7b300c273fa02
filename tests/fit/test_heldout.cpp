// Fit quality wired into the trainer (issue 15): the held-out split never reaches training, the
// horizon resets, held-out pVar and baselines, the noise-free free run, tau-rnn / dt-factor from
// the data, the stopping rule; all rank-count independent and resumable bit for bit.
#include <gtest/gtest.h>

#include <cmath>

#include "core/h5.hpp"
#include "fit/curbd.hpp"
#include "fit_test_data.hpp"
#include "test_util.hpp"

using namespace cohortnet;

namespace {

// Max relative difference of this rank's rows (row-major, cols per row) against a full reference.
double rel_diff(const std::vector<double>& local, RowRange rows, const std::vector<double>& full, std::int64_t cols) {
  double d = 0, s = 0;
  for (PetscInt i = 0; i < rows.count(); ++i)
    for (std::int64_t j = 0; j < cols; ++j) {
      const double a = local[size_t(i * cols + j)], b = full[size_t((rows.begin + i) * cols + j)];
      d = std::max(d, std::abs(a - b));
      s = std::max(s, std::abs(b));
    }
  double both[2] = {d, s};
  MPI_Allreduce(MPI_IN_PLACE, both, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return both[0] / both[1];
}

fit::Params params() {
  fit::Params p;
  p.set_time(0.1, 3);
  p.horizon_auto = false;
  p.stop_when_flat = 0;
  p.runs_train = 4;
  p.runs_free = 1;
  p.seed = 5;
  p.normalise = fit::Normalise::None;  // so the held-out samples cannot change the target's scale
  p.holdout = fit::SplitMode::End;
  return p;
}

// The test animal's rates scaled into [-1, 1]; `other_from` >= 0: from that sample on, a
// different signal (what training would need to learn if it saw it).
AnimalData animal(const AnimalMeta& meta, MPI_Comm comm, std::int64_t other_from = -1) {
  AnimalData d = fittest::make_animal(meta, comm);
  const std::int64_t T = meta.n_samples;
  for (PetscInt i = 0; i < d.rows.count(); ++i)
    for (std::int64_t t = 0; t < T; ++t) {
      double& v = d.activity[size_t(i) * size_t(T) + size_t(t)];
      v *= 0.6;
      if (other_from >= 0 && t >= other_from) v = -0.8 * v + 0.2 * std::cos(0.3 * double(t) + double(d.rows.begin + i));
    }
  return d;
}

// Every rank's rows, in rank order (= global row order).
std::vector<double> full_rows(const std::vector<double>& mine) {
  std::vector<int> cnt(size_t(comm_size(MPI_COMM_WORLD))), off(cnt.size(), 0);
  int n = int(mine.size());
  MPI_Allgather(&n, 1, MPI_INT, cnt.data(), 1, MPI_INT, MPI_COMM_WORLD);
  for (size_t r = 1; r < cnt.size(); ++r) off[r] = off[r - 1] + cnt[r - 1];
  std::vector<double> full(size_t(off.back() + cnt.back()));
  MPI_Allgatherv(mine.data(), n, MPI_DOUBLE, full.data(), cnt.data(), off.data(), MPI_DOUBLE, MPI_COMM_WORLD);
  return full;
}

void train(fit::Trainer& tr) {
  while (!tr.finished()) tr.run_next();
}

}  // namespace

TEST(FitHeldOut, HeldOutPartIsNeverLearned) {
  // Split end: samples 100-149 held out. Training with other data there, or without those samples
  // at all, gives the same J: nothing of the held-out part reaches J (start and RLS alike).
  AnimalMeta meta = fittest::make_meta("ho", 29, 150, 2, 0.01);
  const fit::Params p = params();
  AnimalData a = animal(meta, MPI_COMM_WORLD), b = animal(meta, MPI_COMM_WORLD, 100);
  fit::Trainer ta(a, 0, p, MPI_COMM_WORLD), tb(b, 0, p, MPI_COMM_WORLD);
  ASSERT_EQ(ta.split().n_held_out(), 50);
  train(ta);
  train(tb);
  EXPECT_EQ(ta.local_J(), tb.local_J());
  EXPECT_NE(ta.pvar_heldout().back(), tb.pvar_heldout().back());  // but they are scored on it
  // The same animal cut to its training part, without a split.
  AnimalMeta cut = meta;
  cut.n_samples = 100;
  AnimalData c = animal(cut, MPI_COMM_WORLD);
  fit::Params pc = p;
  pc.holdout.reset();
  fit::Trainer tc(c, 0, pc, MPI_COMM_WORLD);
  train(tc);
  EXPECT_LT(rel_diff(ta.local_J(), ta.rows(), full_rows(tc.local_J()), 29), 1e-12);
  // Held out differs from in sample, and the evaluation reports the baselines of the same split.
  const fit::FitQuality& q = tb.evaluate();
  ASSERT_TRUE(q.split && q.base);
  EXPECT_TRUE(std::isfinite(q.held.non_reset));
  EXPECT_GT(q.train.non_reset, q.held.non_reset + 0.1) << q.train.non_reset << " vs " << q.held.non_reset;
  const fit::Baselines direct =
      fit::baselines(fit::Rows::row_major(b.activity.data(), b.rows.count(), 150), tb.split(), 0, MPI_COMM_WORLD);
  EXPECT_NEAR(q.base->var.non_reset, direct.var.non_reset, 1e-12);
  EXPECT_NEAR(q.base->mean.non_reset, direct.mean.non_reset, 1e-12);
  EXPECT_EQ(q.verdict.status == fit::FitStatus::Ok, q.held.non_reset > direct.best_non_reset());
}

TEST(FitHeldOut, HorizonResetsTheStateEveryKSamples) {
  AnimalMeta meta = fittest::make_meta("hz", 17, 120, 2, 0.01);
  fit::Params p = params();
  p.horizon = 10;
  AnimalData a = animal(meta, MPI_COMM_WORLD);
  fit::Trainer tr(a, 0, p, MPI_COMM_WORLD);
  // Training samples 0-79 and held out 80-119, resets every 10 inside each: 0, 10, .., 70, 80, .., 110.
  std::vector<std::int64_t> expect;
  for (std::int64_t t = 0; t < 120; t += 10) expect.push_back(t);
  EXPECT_EQ(tr.resets(), expect);
  EXPECT_EQ(tr.learning_samples_per_run(), 80 - 8);  // training samples that are not resets
  train(tr);
  // At every reset the rate is the data's tanh.
  const std::vector<double> R = tr.local_rates(), A = a.activity;
  for (PetscInt i = 0; i < tr.rows().count(); ++i)
    for (std::int64_t t : expect) EXPECT_NEAR(R[size_t(i * 120 + t)], std::tanh(A[size_t(i * 120 + t)]), 1e-14);
  // Auto: one autocorrelation time of the training samples, at least 2.
  fit::Params pa = params();
  pa.horizon_auto = true;
  fit::Trainer ta(a, 0, pa, MPI_COMM_WORLD);
  const fit::Autocorrelation ac =
      fit::autocorrelation_time(fit::Rows::row_major(a.activity.data(), a.rows.count(), 120), ta.split(), MPI_COMM_WORLD);
  EXPECT_EQ(ta.horizon(), fit::auto_horizon(ac.tau_samples));
}

TEST(FitHeldOut, NoiseFreeRunDiffersWhereTheNoiseWasFitted) {
  AnimalMeta meta = fittest::make_meta("nf", 21, 120, 2, 0.01);
  fit::Params p = params();
  p.amp_in_wn = 0.3;  // strong noise, fitted by training
  AnimalData a = animal(meta, MPI_COMM_WORLD);
  fit::Trainer tr(a, 0, p, MPI_COMM_WORLD);
  train(tr);
  const std::vector<double> R = tr.local_rates();
  const double last = tr.pvar().back();
  const fit::FitQuality& q = tr.evaluate();
  EXPECT_GT(std::abs(q.pvar_noise_free - last), 1e-3) << q.pvar_noise_free << " vs " << last;
  EXPECT_EQ(tr.local_rates(), R);  // the recorded rates stay the last run's
  // Without noise the two runs are the same computation.
  p.amp_in_wn = 0;
  fit::Trainer t0(a, 0, p, MPI_COMM_WORLD);
  train(t0);
  EXPECT_EQ(t0.evaluate().pvar_noise_free, t0.pvar().back());
}

TEST(FitHeldOut, TimeSettingsFromTheData) {
  AnimalMeta meta = fittest::make_meta("ts", 15, 200, 2, 0.01);
  fit::Params p = params();
  p.tau_rnn_auto = p.dt_factor_auto = true;
  AnimalData a = animal(meta, MPI_COMM_WORLD);
  fit::Trainer tr(a, 0, p, MPI_COMM_WORLD);
  const fit::Autocorrelation ac =
      fit::autocorrelation_time(fit::Rows::row_major(a.activity.data(), a.rows.count(), 200), tr.split(), MPI_COMM_WORLD);
  const fit::TimeSettings ts = fit::resolve_time_settings(0.01, ac.tau_samples, std::nullopt, std::nullopt);
  EXPECT_EQ(tr.params().tau_rnn, ts.tau_rnn);
  EXPECT_EQ(tr.params().dt_factor, ts.dt_factor);
  EXPECT_EQ(tr.n_steps(), 199 * ts.dt_factor + 1);
  EXPECT_NE(tr.fingerprint().find("tau_rnn=auto"), std::string::npos) << tr.fingerprint();
  // A given dt/tau >= 0.5 is an error naming the option.
  try {
    fit::check_time_step(0.01, 1, 0.01, true, true);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--tau-rnn"), std::string::npos) << e.what();
  }
}

TEST(FitHeldOut, StopWhenFlatKeepsTheBestRunsJ) {
  AnimalMeta meta = fittest::make_meta("sw", 19, 90, 2, 0.01);
  fit::Params p = params();
  p.runs_train = 12;
  p.stop_when_flat = 2;
  AnimalData a = animal(meta, MPI_COMM_WORLD);
  fit::Trainer tr(a, 0, p, MPI_COMM_WORLD);
  train(tr);
  ASSERT_GE(tr.best_run(), -1);
  EXPECT_FALSE(tr.stop_reason().empty());
  EXPECT_EQ(tr.runs_done(), tr.runs_train_used() + 1);
  // The regression start is run 0 of the rule: its score is never above the kept run's, and no
  // training run's held-out pVar is above the kept one's.
  ASSERT_TRUE(std::isfinite(tr.start_score()));
  const double kept = tr.best_run() < 0 ? tr.start_score() : tr.pvar_heldout()[size_t(tr.best_run())];
  EXPECT_GE(kept, tr.start_score());
  for (int r = 0; r < tr.runs_train_used(); ++r) EXPECT_LE(tr.pvar_heldout()[size_t(r)], kept) << r;
  // The kept J is the one a fit with exactly best_run + 1 training runs ends with (0: the start).
  fit::Params pb = p;
  pb.stop_when_flat = 0;
  pb.runs_train = tr.best_run() + 1;
  fit::Trainer tb(a, 0, pb, MPI_COMM_WORLD);
  train(tb);
  EXPECT_EQ(tr.local_J(), tb.local_J());
  std::printf("stop-when-flat: %s (training runs %d of 12)\n", tr.stop_reason().c_str(), tr.runs_train_used());
}

TEST(FitHeldOut, SameResultAtAnyRankCountAndMidRunResume) {
  const std::string dir = testutil::scratch_dir("fit-heldout-rk");
  AnimalMeta meta = fittest::make_meta("rk", 23, 130, 3, 0.01);
  meta.trial_starts = {0, 40, 90};  // auto split: whole trials
  fit::Params p = params();
  p.holdout = fit::SplitMode::Auto;
  p.horizon_auto = true;
  p.runs_train = 6;
  p.stop_when_flat = 2;
  AnimalData one = animal(meta, MPI_COMM_SELF);
  fit::Trainer ref(one, 1, p, MPI_COMM_SELF);
  train(ref);
  const fit::FitQuality qr = ref.evaluate();
  AnimalData data = animal(meta, MPI_COMM_WORLD);
  fit::Trainer full(data, 1, p, MPI_COMM_WORLD);
  train(full);
  const fit::FitQuality qf = full.evaluate();
  EXPECT_LT(rel_diff(full.local_J(), full.rows(), ref.local_J(), 23), 1e-9);
  EXPECT_EQ(full.runs_done(), ref.runs_done());
  for (size_t r = 0; r < ref.pvar_heldout().size(); ++r)
    EXPECT_NEAR(full.pvar_heldout()[r], ref.pvar_heldout()[r], 1e-9) << r;
  EXPECT_NEAR(qf.held.non_reset, qr.held.non_reset, 1e-9);
  EXPECT_NEAR(qf.pvar_noise_free, qr.pvar_noise_free, 1e-9);
  EXPECT_NEAR(qf.base->var.non_reset, qr.base->var.non_reset, 1e-9);
  EXPECT_EQ(qf.verdict.status, qr.verdict.status);
  // Stopped inside a run (after the best J was kept once), resumed: bit-identical.
  for (int before : {1, 3}) {
    int calls = 0;
    {
      fit::Trainer a(data, 1, p, MPI_COMM_WORLD);
      for (int r = 0; r < before; ++r) a.run_next();
      a.set_stop_check([&] { return ++calls == 2; }, 60);
      a.run_next();  // stopped inside it
      a.save_checkpoint(dir + "/mid.h5", "[fit]\n");
    }
    fit::Trainer b(data, 1, p, MPI_COMM_WORLD);
    b.load_checkpoint(dir + "/mid.h5");
    train(b);
    EXPECT_EQ(b.local_J(), full.local_J()) << before;
    EXPECT_EQ(b.pvar(), full.pvar()) << before;
    EXPECT_EQ(b.pvar_heldout(), full.pvar_heldout()) << before;
    EXPECT_EQ(b.runs_done(), full.runs_done()) << before;
  }
  // A checkpoint of another horizon is refused, naming it.
  fit::Params q = p;
  q.horizon_auto = false;
  q.horizon = 7;
  fit::Trainer c(data, 1, q, MPI_COMM_WORLD);
  try {
    c.load_checkpoint(dir + "/mid.h5");
    ADD_FAILURE() << "checkpoint of another horizon accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("horizon auto -> 7"), std::string::npos) << e.what();
  }
}

TEST(FitHeldOut, SaturationIsNamedWhenItHappens) {
  // A strongly chaotic random J0 (g 8) that RLS hardly moves (p0 1e-8): its rates sit at +-1
  // while the target's do not; the first training run already says so, naming it.
  AnimalMeta meta = fittest::make_meta("sat", 40, 150, 2, 0.01);
  fit::Params p = params();
  p.start = fit::Start::Random;
  p.g = 8;
  p.p0 = 1e-8;
  p.runs_train = 5;
  AnimalData a = animal(meta, MPI_COMM_WORLD);
  fit::Trainer tr(a, 0, p, MPI_COMM_WORLD);
  try {
    train(tr);
    ADD_FAILURE() << "no failure; pVar " << tr.pvar().back();
  } catch (const Error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("sat"), std::string::npos) << w;
    EXPECT_TRUE(w.find("saturated") != std::string::npos || w.find("diverged") != std::string::npos) << w;
    std::printf("%s\n", w.c_str());
  }
}
