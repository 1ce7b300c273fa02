// Cohort level: animals split over groups of ranks, a diverging animal reported in the summary
// while the others finish and are written, the exit code, and the balance of the assignment.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/bookkeeping.hpp"
#include "core/h5.hpp"
#include "io/animal.hpp"
#include "fit/cohort.hpp"
#include "fit_test_data.hpp"
#include "test_util.hpp"

using namespace cohortnet;
namespace fs = std::filesystem;

namespace {
void write_test_animal(const std::string& dir, const std::string& id, std::int64_t N, std::int64_t T, double dt) {
  AnimalMeta meta = fittest::make_meta(id, N, T, 2, dt);
  AnimalData d = fittest::make_animal(meta, MPI_COMM_WORLD);
  write_animal(dir + "/" + id + ".h5", meta, d.rows, d.activity, {}, MPI_COMM_WORLD);
}
std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

TEST(FitCohort, DivergingAnimalFailsOthersFinish) {
  const std::string dir = testutil::scratch_dir("fit-cohort");
  const std::string cohort = dir + "/cohort", out = dir + "/results";
  if (comm_rank(MPI_COMM_WORLD) == 0) fs::create_directories(cohort);
  MPI_Barrier(MPI_COMM_WORLD);
  write_test_animal(cohort, "good1", 30, 200, 0.01);
  write_test_animal(cohort, "xbad", 20, 300, 1.0);  // dt/tau = 20 with the options below: refused (Euler would explode)
  write_test_animal(cohort, "good2", 26, 150, 0.01);

  fit::CohortOptions o;
  o.cohort_dir = cohort;
  o.out_dir = out;
  o.params.runs_train = 3;
  o.params.runs_free = 1;
  o.params.set_time(0.05, 1);  // good animals: dt/tau 0.2; xbad: 20
  o.params.tau_rnn_given = true;  // as from the command line: a given unstable setting is an error
  o.config_text = "[fit]\n";
  o.ranks_per_animal = 1;
  const int code = fit::fit_cohort(o, MPI_COMM_WORLD);
  EXPECT_EQ(code, fit::kExitAnimalsFailed);
  EXPECT_TRUE(fs::exists(out + "/fits/good1.h5"));
  EXPECT_TRUE(fs::exists(out + "/fits/good2.h5"));
  EXPECT_FALSE(fs::exists(out + "/fits/xbad.h5"));
  const std::string summary = slurp(out + "/fits/summary.txt");
  EXPECT_NE(summary.find("xbad"), std::string::npos) << summary;
  EXPECT_NE(summary.find("failed"), std::string::npos) << summary;
  // dt/tau = 20 given: an error naming the options, before any run (it would diverge).
  EXPECT_NE(summary.find("--tau-rnn"), std::string::npos) << summary;
  EXPECT_NE(summary.find("dt/tau"), std::string::npos) << summary;
  EXPECT_NE(summary.find(" 1 failed"), std::string::npos) << summary;
  EXPECT_NE(summary.find("held out"), std::string::npos) << summary;  // held-out pVar vs the best baseline
  const std::string csv = slurp(out + "/fits/summary.csv");
  EXPECT_NE(csv.find("xbad,20,300"), std::string::npos) << csv;
  EXPECT_TRUE(fs::exists(out + "/fits/assignment.txt"));
  // A good animal's output is complete.
  h5::File f = h5::open_read(out + "/fits/good1.h5", MPI_COMM_WORLD);
  EXPECT_EQ(h5::dims(f, "/J"), (std::vector<hsize_t>{30, 30}));
  EXPECT_EQ(h5::dims(f, "/rates"), (std::vector<hsize_t>{30, 200}));
  EXPECT_EQ(h5::dims(f, "/currents/mean"), (std::vector<hsize_t>{2, 2, 200}));
  EXPECT_EQ(h5::read_doubles(f, "/pvar").size(), 4u);
  EXPECT_EQ(h5::attr_string(f, "/", "animal_id"), "good1");
  // Status files: one per animal attempted, what later stages read (the fingerprint as recorded).
  const auto bad = book::read_status(out + "/fits", "xbad");
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->status, "failed");
  EXPECT_NE(bad->reason.find("dt/tau"), std::string::npos) << bad->reason;
  const auto good = book::read_status(out + "/fits", "good1");
  ASSERT_TRUE(good.has_value());
  // Written, ok or poor (these tiny synthetic animals do not beat their VAR(1) held out); a poor
  // fit says why.
  EXPECT_TRUE(good->status == "ok" || good->status == "poor") << good->status;
  EXPECT_EQ(good->reason.empty(), good->status == "ok") << good->reason;
  EXPECT_EQ(good->fingerprint, h5::attr_string(f, "/", "fingerprint"));
  EXPECT_TRUE(fs::path(good->output).is_absolute()) << good->output;
  EXPECT_TRUE(fs::path(good->source).is_absolute()) << good->source;
  EXPECT_EQ(good->final_pvar, h5::attr_double(f, "/", "final_pvar"));

  // --animals: one animal alone (as a Slurm array task does) gives the same fit as within the
  // cohort (it keeps its cohort index, hence its J0 and noise), with its own summary file.
  fit::CohortOptions one = o;
  one.out_dir = dir + "/one";
  one.animals = {"good2"};
  EXPECT_EQ(fit::fit_cohort(one, MPI_COMM_WORLD), fit::kExitOk);
  EXPECT_TRUE(fs::exists(dir + "/one/fits/summary-good2.txt"));
  EXPECT_FALSE(fs::exists(dir + "/one/fits/good1.h5"));
  h5::File a = h5::open_read(out + "/fits/good2.h5", MPI_COMM_WORLD);
  h5::File b = h5::open_read(dir + "/one/fits/good2.h5", MPI_COMM_WORLD);
  {
    // Fitted by a group of another size: equal to rounding (the start's Gram sums).
    const std::vector<double> ja = h5::read_doubles(a, "/J"), jb = h5::read_doubles(b, "/J");
    ASSERT_EQ(ja.size(), jb.size());
    for (size_t z = 0; z < ja.size(); ++z) EXPECT_NEAR(ja[z], jb[z], 1e-9 * std::max(1.0, std::abs(ja[z])));
  }
  one.animals = {"nosuch"};
  try {
    fit::fit_cohort(one, MPI_COMM_WORLD);
    ADD_FAILURE() << "unknown animal accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--animals"), std::string::npos) << e.what();
  }
}

TEST(FitCohort, AssignmentBalancesWork) {
  std::vector<CohortAnimal> an;
  for (int i = 0; i < 6; ++i) {
    CohortAnimal a;
    a.animal_id = "a" + std::to_string(i);
    a.n_units = 100 + 100 * i;
    a.n_samples = 1000;
    an.push_back(a);
  }
  fit::Params p;
  // 4 ranks, 2 per animal: 2 groups of 2.
  fit::Assignment a = fit::assign_animals(an, p, 4, 2, 1e12);
  ASSERT_EQ(a.group_size.size(), 2u);
  EXPECT_EQ(a.group_size[0], 2);
  EXPECT_EQ(a.group_first[1], 2);
  // Work N^2: 1,4,9,16,25,36 (x1e4) = 91; LPT gives 46 / 45.
  EXPECT_NEAR(a.group_work[0] / a.group_work[1], 1.0, 0.05);
  // Automatic with little memory: groups grow until the largest animal fits.
  const double need1 = fit::fit_bytes_per_rank(600, 1000, 1, 1);
  fit::Assignment b = fit::assign_animals(an, p, 4, 0, need1);  // half of it must fit: needs >= 2 ranks
  EXPECT_GE(b.group_size[0], 2);
  // More groups than animals is never made.
  fit::Assignment c = fit::assign_animals({an[0]}, p, 3, 1, 1e12);
  EXPECT_EQ(c.group_size.size(), 1u);
  EXPECT_EQ(c.group_size[0], 3);
}

TEST(FitUnitOrder, UnitsGroupedByRegionGiveTheFileOrdersResult) {
  // Interleaved regions (unit i in region 7i mod 3) and one input channel, fitted with the
  // defaults (time settings, horizon and stopping rule from the data): once in file order, once
  // with the units grouped by region as the cohort driver reads them. Every output (written in
  // file order) is the same to rounding, at any rank count.
  const std::string dir = testutil::scratch_dir("fit-unit-order");
  AnimalMeta meta = fittest::make_meta("mix", 31, 160, 3, 0.01);
  meta.input_names = {"u0"};
  std::vector<double> u(160);
  for (int t = 0; t < 160; ++t) u[size_t(t)] = std::sin(0.07 * t);
  AnimalData w = fittest::make_animal(meta, MPI_COMM_WORLD);
  write_animal(dir + "/mix.h5", meta, w.rows, w.activity, u, MPI_COMM_WORLD);
  AnimalData file = read_animal(dir + "/mix.h5", MPI_COMM_WORLD);
  AnimalData grouped = read_animal(dir + "/mix.h5", MPI_COMM_WORLD, true);
  ASSERT_TRUE(file.order.is_file_order());
  ASSERT_FALSE(grouped.order.is_file_order());
  EXPECT_TRUE(std::is_sorted(grouped.meta.unit_region.begin(), grouped.meta.unit_region.end()));
  for (PetscInt i = 0; i < grouped.rows.count(); ++i)  // the activity rows follow the order
    EXPECT_EQ(grouped.activity[size_t(i) * 160 + 5],
              fittest::rate(grouped.order.file_index(grouped.rows.begin + i), 5, 0.01));
  fit::Params p;
  p.runs_train = 4;
  p.runs_free = 1;
  p.seed = 3;
  for (auto* d : {&file, &grouped}) {
    fit::Trainer tr(*d, 0, p, MPI_COMM_WORLD);
    while (!tr.finished()) tr.run_next();
    tr.evaluate();
    tr.write_result(dir + (d == &file ? "/file.h5" : "/grouped.h5"), "[fit]\n", true);
  }
  h5::File a = h5::open_read(dir + "/file.h5", MPI_COMM_WORLD), b = h5::open_read(dir + "/grouped.h5", MPI_COMM_WORLD);
  EXPECT_EQ(h5::attr_string(a, "/", "unit_order"), "file");
  EXPECT_EQ(h5::attr_string(b, "/", "unit_order"), "region");
  EXPECT_EQ(h5::read_ints(a, "/unit_region"), h5::read_ints(b, "/unit_region"));
  EXPECT_EQ(h5::attr_string(a, "/", "fingerprint"), h5::attr_string(b, "/", "fingerprint"));
  for (const char* ds : {"/J", "/W_in", "/rates", "/pvar", "/pvar_heldout", "/currents/mean", "/currents/inh_rms",
                         "/currents/per_unit", "/currents/input_mean", "/currents/input_per_unit", "/pathway_strength"}) {
    const std::vector<double> x = h5::read_doubles(a, ds), y = h5::read_doubles(b, ds);
    ASSERT_EQ(x.size(), y.size()) << ds;
    double d = 0, s = 0;
    for (size_t k = 0; k < x.size(); ++k) d = std::max(d, std::abs(x[k] - y[k])), s = std::max(s, std::abs(x[k]));
    EXPECT_LE(d, 1e-9 * std::max(s, 1.0)) << ds << ": max difference " << d;
  }
  // /pathway_strength is its definition (the rms over Q's units and the samples of the ungated
  // current J[Q,S] r_S(t)) on the written J, rates and unit regions (file order), in both.
  for (h5::File* f : {&a, &b}) {
    EXPECT_EQ(h5::attr_string(*f, "/pathway_strength", "definition"), kPathwayStrengthDefinition);
    const std::vector<double> J = h5::read_doubles(*f, "/J"), st = h5::read_doubles(*f, "/pathway_strength");
    const std::vector<double> R = h5::read_doubles(*f, "/rates");
    const std::vector<std::int64_t> reg = h5::read_ints(*f, "/unit_region");
    const size_t N = reg.size(), M = 3, T = R.size() / N;
    ASSERT_EQ(st.size(), M * M);
    std::vector<double> ss(M * M, 0.0), n(M, 0.0);
    for (size_t i = 0; i < N; ++i) {
      n[size_t(reg[i])] += 1;
      for (size_t t = 0; t < T; ++t) {
        std::vector<double> c(M, 0.0);
        for (size_t j = 0; j < N; ++j) c[size_t(reg[j])] += J[i * N + j] * R[j * T + t];
        for (size_t s2 = 0; s2 < M; ++s2) ss[size_t(reg[i]) * M + s2] += c[s2] * c[s2];
      }
    }
    for (size_t qs = 0; qs < M * M; ++qs) {
      const double want = std::sqrt(ss[qs] / (n[qs / M] * double(T)));
      EXPECT_NEAR(st[qs], want, 1e-10 * std::max(1.0, want)) << "pathway " << qs / M << " <- " << qs % M;
      EXPECT_GT(st[qs], 0.0);
    }
  }
  EXPECT_EQ(h5::attr_string(a, "/", "status"), h5::attr_string(b, "/", "status"));
  // The defaults' stopping rule: the start was scored, and the output says the held-out part chose the run.
  EXPECT_TRUE(std::isfinite(h5::attr_double(a, "/", "start_score")));
  EXPECT_EQ(h5::attr_int(a, "/", "heldout_selects_run"), 1);
  EXPECT_EQ(h5::attr_int(a, "/", "best_run"), h5::attr_int(b, "/", "best_run"));
}

TEST(FitUnitOrder, ANaNIsNamedByItsFileRowWhenTheUnitsAreGrouped) {
  const std::string dir = testutil::scratch_dir("fit-unit-order-nan");
  AnimalMeta meta = fittest::make_meta("nan", 31, 40, 3, 0.01);  // interleaved regions
  AnimalData w = fittest::make_animal(meta, MPI_COMM_WORLD);
  for (PetscInt i = 0; i < w.rows.count(); ++i)
    if (w.rows.begin + i == 7) w.activity[size_t(i) * 40 + 3] = NAN;
  write_animal(dir + "/nan.h5", meta, w.rows, w.activity, {}, MPI_COMM_WORLD);
  try {
    read_animal(dir + "/nan.h5", MPI_COMM_WORLD, true);
    ADD_FAILURE() << "NaN accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("nan.h5"), std::string::npos) << m;
    EXPECT_NE(m.find("unit 7, sample 3"), std::string::npos) << m;
  }
}
