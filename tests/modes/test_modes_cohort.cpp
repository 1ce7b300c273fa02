// modes on planted cohorts: recovery of known modes, --k auto, conservation statistics, and the
// command end to end on files (truth-style and fit-style inputs, projection, input errors).
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/bookkeeping.hpp"
#include "core/error.hpp"
#include "core/h5.hpp"
#include "io/animal.hpp"
#include "core/parallel.hpp"
#include "modes/analysis.hpp"
#include "modes/command.hpp"
#include "modes/io.hpp"
#include "modes/layout.hpp"
#include "test_util.hpp"

using namespace cohortnet;
using namespace cohortnet::modes;
namespace fs = std::filesystem;

namespace {

SyntheticSpec spec(std::uint64_t seed) {
  SyntheticSpec s;
  s.R = 8;
  s.A = 12;
  s.K = 4;
  s.T = 150;
  s.noise = 0.15;
  s.drop_region = 0.15;
  s.seed = seed;
  return s;
}

ModesConfig quick_config() {
  ModesConfig c;
  c.starts = 3;
  c.max_iter = 300;
  c.tol = 1e-6;
  c.folds = 2;
  c.cv_block = 30;
  c.loo_starts = 1;
  c.loo_null = 5;
  c.permutations = 999;
  return c;
}

double matched_mean(const std::vector<double>& A, const std::vector<double>& B, int P, int K) {
  std::vector<int> m;
  std::vector<double> s;
  match_columns(A, B, P, K, {}, m, s);
  double t = 0;
  for (double v : s) t += v / K;
  return t;
}

// Writes a cohort as the simulator's truth files (or fit outputs): per animal [M x M x T] over its
// own regions, in a shuffled region order (so the mapping by name is exercised).
void write_cohort_files(const SyntheticCohort& c, const std::string& dir, bool fits, MPI_Comm comm) {
  const std::string sub = dir + (fits ? "/fits" : "/truth");
  if (comm_rank(comm) == 0) fs::create_directories(sub);
  MPI_Barrier(comm);
  const int R = c.layout.R;
  for (auto& a : c.animals) {
    std::vector<int> regs(a.regions.rbegin(), a.regions.rend());  // reversed order
    const size_t M = regs.size(), T = size_t(a.T);
    std::vector<double> cur(M * M * T, 0.0);
    for (size_t q = 0; q < M; ++q)
      for (size_t s = 0; s < M; ++s) {
        const int p = c.layout.row(regs[q], regs[s]);
        for (size_t t = 0; t < T; ++t) cur[(q * M + s) * T + t] = p >= 0 ? a.X[size_t(p) * T + t] : 50.0;  // self pairs: large
      }
    std::vector<std::string> names;
    for (int q : regs) names.push_back(c.region_names[size_t(q)]);
    h5::File f = h5::create(sub + "/" + a.id + ".h5", comm);
    h5::set_attr(f, "/", "animal_id", a.id);
    if (fits) h5::ensure_group(f, "/currents");
    h5::write_doubles(f, fits ? "/currents/rms" : "/current_rms", {M, M, T}, cur.data());
    if (fits) {
      h5::write_strings(f, "/currents/region_names", names);
    } else {
      h5::write_strings(f, "/region_names", names);
      std::vector<std::int64_t> st(a.states.begin(), a.states.end());
      h5::write_ints(f, "/states", {T}, st.data());
    }
  }
  (void)R;
  if (comm_rank(comm) == 0 && !fits) {
    std::ofstream o(dir + "/cohort.ini");
    o << "name = planted\nregions = ";
    for (size_t q = 0; q < c.region_names.size(); ++q) o << (q ? "," : "") << c.region_names[q];
    o << "\n";
  }
  MPI_Barrier(comm);
}

int run_cli(std::vector<std::string> args, MPI_Comm comm) {
  const Command cmd = make_modes_command();
  po::variables_map vm;
  parse_command(cmd, args, vm, comm);
  return cmd.run(vm, comm);
}

}  // namespace

TEST(ModesCohort, RecoversPlantedModesAndChoosesK) {
  const SyntheticCohort c = make_synthetic(spec(21));
  ModesConfig cfg = quick_config();
  cfg.k_min = 2;
  cfg.k_max = 6;
  cfg.conserve = false;
  const ModesResult r = run_modes(c.animals, c.layout, cfg, {}, MPI_COMM_WORLD);
  ASSERT_TRUE(r.have_selection);
  EXPECT_EQ(r.K, 4) << r.selection.reason;
  ASSERT_EQ(r.K, 4);
  EXPECT_GE(matched_mean(c.W_true, r.fit.W, c.layout.P(), 4), 0.95);
  EXPECT_GT(r.stability, 0.95);
  // Control: a wrong W (modes of another planted cohort) does not pass the same threshold.
  const SyntheticCohort other = make_synthetic(spec(99));
  EXPECT_LT(matched_mean(other.W_true, r.fit.W, c.layout.P(), 4), 0.8);
  // Results are identical on every rank.
  std::vector<double> w = r.fit.W;
  MPI_Bcast(w.data(), int(w.size()), MPI_DOUBLE, 0, MPI_COMM_WORLD);
  EXPECT_EQ(w, r.fit.W);
}

// One mode (true mode 3) present in only some animals. replace: the animals lacking it have an
// own random mode in its place (else nothing, as the simulator's --individual-mode does).
ModesResult partial_cohort(bool replace, SyntheticCohort& c, std::vector<int>& match, int carriers) {
  SyntheticSpec s = spec(31);
  s.R = 10;
  s.T = 200;
  s.mode_present.assign(size_t(s.A) * size_t(s.K), 1);
  for (int a = carriers; a < s.A; ++a) s.mode_present[size_t(a) * size_t(s.K) + 3] = 0;
  s.replace_missing = replace;
  c = make_synthetic(s);
  ModesConfig cfg = quick_config();
  cfg.k = 4;
  const ModesResult r = run_modes(c.animals, c.layout, cfg, {"s0", "s1", "s2"}, MPI_COMM_WORLD);
  std::vector<double> sim;
  match_columns(c.W_true, r.fit.W, c.layout.P(), 4, {}, match, sim);
  if (std::getenv("MODES_DEBUG") && comm_rank(MPI_COMM_WORLD) == 0) {
    for (int a = 0; a < 12; ++a) {
      std::printf("a%02d idx %.3f sim", a, r.index[size_t(a)]);
      for (int k = 0; k < 4; ++k) std::printf(" %.3f", r.similarity[size_t(a) * 4 + size_t(match[size_t(k)])]);
      std::printf("\n");
    }
    for (int k = 0; k < 4; ++k)
      std::printf("true %d: statistic %.3f p %.4f p_presence %.4f cos %.3f agreement %.3f\n", k,
                  r.statistic[size_t(match[size_t(k)])], r.p_value[size_t(match[size_t(k)])],
                  r.p_presence[size_t(match[size_t(k)])], sim[size_t(k)], r.agreement[size_t(match[size_t(k)])]);
  }
  return r;
}

TEST(ModesCohort, ConservedModesVersusAnIndividualMode) {
  SyntheticCohort c;
  std::vector<int> match;
  const ModesResult r = partial_cohort(false, c, match, 3);  // mode 3 in a00..a02 only
  ASSERT_TRUE(r.have_conservation);
  for (int k = 0; k < 3; ++k) {
    const int f = match[size_t(k)];
    EXPECT_LT(r.p_value[size_t(f)], 0.01) << "shared mode " << k;
    EXPECT_TRUE(r.conserved[size_t(f)]) << "shared mode " << k;
  }
  const int individual = match[3];
  EXPECT_GE(r.p_presence[size_t(individual)], 0.05);
  EXPECT_FALSE(r.conserved[size_t(individual)]);
  // The presence p-value is the largest per-animal p over the animals that can resolve the mode.
  for (int k = 0; k < 4; ++k) {
    double pmax = -1;
    int n = 0;
    for (int a = 0; a < 12; ++a) {
      const size_t ak = size_t(a) * 4 + size_t(k);
      EXPECT_GT(r.p_animal[ak], 0.0);
      EXPECT_LE(r.p_animal[ak], 1.0);
      if (r.resolved[ak]) {
        EXPECT_TRUE(r.testable[ak]);
        pmax = std::max(pmax, r.p_animal[ak]);
        ++n;
      }
    }
    EXPECT_EQ(r.n_tested[size_t(k)], n);
    if (n > 0) {
      EXPECT_DOUBLE_EQ(r.p_presence[size_t(k)], pmax);
    }
  }
  // The gain of the individual mode (R2 lost without it) is visibly lower in the animals that
  // lack it (they simply do not use it) than in every carrier.
  double lowest_carrier = 1e9, highest_other = -1e9;
  for (int a = 0; a < 12; ++a) {
    const double g = r.mode_gain[size_t(a) * 4 + size_t(individual)];
    if (a < 3) lowest_carrier = std::min(lowest_carrier, g);
    else highest_other = std::max(highest_other, g);
  }
  EXPECT_LT(highest_other, lowest_carrier);
  EXPECT_EQ(r.null_statistic.size(), size_t(999) * 4);
  EXPECT_DOUBLE_EQ(r.p_resolution, 1.0 / 1000);
  // Behaviour: the planted state profiles are shared, so the shared modes' profiles agree.
  ASSERT_TRUE(r.have_behaviour);
  double agree = 0;
  for (int k = 0; k < 3; ++k) agree += r.agreement[size_t(match[size_t(k)])] / 3;
  EXPECT_GT(agree, 0.5);
}

TEST(ModesCohort, ConservationIndexLowerWithoutTheSharedMode) {
  // Animals lacking mode 3 have their own mode instead: the cohort's modes explain them less
  // well than their own fit does, so their leave-one-out conservation index is lower.
  SyntheticCohort c;
  std::vector<int> match;
  const ModesResult r = partial_cohort(true, c, match, 4);  // mode 3 in a00..a03
  double lowest_with = 1e9, highest_without = -1e9;
  for (int a = 0; a < 12; ++a) {
    EXPECT_TRUE(std::isfinite(r.index[size_t(a)]));
    if (a < 4) lowest_with = std::min(lowest_with, r.index[size_t(a)]);
    else highest_without = std::max(highest_without, r.index[size_t(a)]);
  }
  EXPECT_LT(highest_without, lowest_with);
  for (int k = 0; k < 3; ++k) EXPECT_TRUE(r.conserved[size_t(match[size_t(k)])]) << "shared mode " << k;
  // The partial mode is not conserved although its joint permutation p is tiny here (0.001, min
  // cosine 0.51: the others' own dense modes resemble it above chance): the animals lacking it fail
  // their own presence test. (The rule before, joint p and the 0.5 floor, called it conserved.)
  const int partial = match[3];
  EXPECT_FALSE(r.conserved[size_t(partial)]);
  EXPECT_GE(r.p_presence[size_t(partial)], 0.05);
}

TEST(ModesCommand, TruthFilesEndToEndAndProjection) {
  SyntheticSpec s = spec(41);
  s.A = 6;
  s.K = 3;
  const SyntheticCohort c = make_synthetic(s);
  const std::string dir = cohortnet::testutil::scratch_dir("modes-truth");
  write_cohort_files(c, dir + "/cohort", false, MPI_COMM_WORLD);
  const std::string out = dir + "/results";
  ASSERT_EQ(run_cli({"--input", dir + "/cohort", "--out", out, "--k", "3", "--starts", "2", "--loo-starts", "1",
                     "--loo-null", "3", "--permutations", "99", "--max-iter", "150", "--seed", "7"},
                    MPI_COMM_WORLD),
            0);
  ASSERT_TRUE(fs::exists(out + "/modes.h5"));
  ASSERT_TRUE(fs::exists(out + "/modes_summary.txt"));
  {
    h5::File f = h5::open_read(out + "/modes.h5", MPI_COMM_WORLD);
    EXPECT_EQ(h5::dims(f, "/modes"), (std::vector<hsize_t>{3, 8, 8}));
    EXPECT_EQ(h5::read_strings(f, "/region_names"), c.region_names);
    EXPECT_EQ(h5::attr_int(f, "/", "seed"), 7);
    EXPECT_NE(h5::attr_string(f, "/", "config").find("k = 3"), std::string::npos);
    EXPECT_EQ(h5::attr_int(f, "/", "sparsify_accepted"), -1);  // --sparsify is off by default
    EXPECT_FALSE(h5::has_attr(f, "/", "objective_before_sparsify"));
    EXPECT_EQ(h5::dims(f, "/mode_test/null"), (std::vector<hsize_t>{99, 3}));
    EXPECT_EQ(h5::dims(f, "/mode_test/p_animal"), (std::vector<hsize_t>{6, 3}));
    EXPECT_EQ(h5::dims(f, "/mode_test/p_presence"), (std::vector<hsize_t>{3}));
    EXPECT_EQ(h5::dims(f, "/conservation/mode_gain"), (std::vector<hsize_t>{6, 3}));
    EXPECT_EQ(h5::dims(f, "/activations/a00"), (std::vector<hsize_t>{3, hsize_t(c.animals[0].T)}));
    EXPECT_TRUE(h5::exists(f, "/behaviour/profiles"));
    // The planted modes are recovered from the files (self pairs, set large, are excluded).
    const auto W = h5::read_doubles(f, "/W");
    std::vector<double> Wt = c.W_true;
    EXPECT_GE(matched_mean(Wt, W, c.layout.P(), 3), 0.95);
    const auto modes = h5::read_doubles(f, "/modes");
    for (int k = 0; k < 3; ++k)
      for (int q = 0; q < 8; ++q) EXPECT_EQ(modes[size_t(k) * 64 + size_t(q) * 9], 0.0);
  }
  std::ifstream summary(out + "/modes_summary.txt");
  std::string text((std::istreambuf_iterator<char>(summary)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("conserved"), std::string::npos);
  // Projection of one animal's file on the fitted modes.
  const std::string proj = dir + "/proj_a01.h5";
  ASSERT_EQ(run_cli({"--project", dir + "/cohort/truth/a01.h5", "--modes", out + "/modes.h5", "--out", proj}, MPI_COMM_WORLD), 0);
  {
    h5::File f = h5::open_read(proj, MPI_COMM_WORLD);
    EXPECT_GT(h5::attr_double(f, "/", "r2"), 0.8);
    EXPECT_EQ(h5::dims(f, "/activations"), (std::vector<hsize_t>{3, hsize_t(c.animals[1].T)}));
  }
  // Same data as fit outputs (fits/<id>.h5, /currents/rms), no manifest: the region list is the
  // union of names, so the result has the same rows up to region order.
  write_cohort_files(c, dir + "/results2", true, MPI_COMM_WORLD);
  ASSERT_EQ(run_cli({"--input", dir + "/results2", "--out", dir + "/results2", "--k", "3", "--starts", "2", "--no-conserve",
                     "--max-iter", "150", "--regions", "R0,R1,R2,R3,R4,R5,R6,R7"},
                    MPI_COMM_WORLD),
            0);
  {
    h5::File f = h5::open_read(dir + "/results2/modes.h5", MPI_COMM_WORLD);
    EXPECT_EQ(h5::attr_string(f, "/", "dataset"), "/currents/rms");
    EXPECT_GE(matched_mean(c.W_true, h5::read_doubles(f, "/W"), c.layout.P(), 3), 0.95);
    EXPECT_FALSE(h5::exists(f, "/conservation"));
  }
}

// A simulated cohort (COHORT/truth/cohort.h5 present): modes checks its answer against the true
// modes. The right K passes (exit 0, attribute truth_check = pass); a wrong K is not a success
// (exit 3, the outputs still written with /truth_check saying why); --truth-check off skips it.
TEST(ModesCommand, TruthCheckOnASimulatedCohort) {
  SyntheticSpec s = spec(43);
  s.A = 10;  // enough animals for the conservation test to call the shared modes conserved
  s.K = 3;
  const SyntheticCohort c = make_synthetic(s);
  const std::string dir = cohortnet::testutil::scratch_dir("modes-truth-check");
  write_cohort_files(c, dir + "/cohort", false, MPI_COMM_WORLD);
  const int P = c.layout.P(), R = c.layout.R;
  // The simulator's cohort file: /modes [K x R x R] (the planted ones, all shared), plus optionally
  // a fourth true mode: "unshared" (a pattern no animal's data carry, /mode_conserved 0) or
  // "off-pairs" (non-zero only on the within-region pairs, which the factorization leaves out).
  auto write_truth = [&](const std::string& fourth) {
    if (comm_rank(MPI_COMM_WORLD) == 0) {
      const int KT = s.K + (fourth.empty() ? 0 : 1);
      std::vector<double> modes(size_t(KT) * size_t(R) * size_t(R), 0.0);
      auto at = [&](int k, int q, int src) -> double& {
        return modes[(size_t(k) * size_t(R) + size_t(q)) * size_t(R) + size_t(src)];
      };
      for (int p = 0; p < P; ++p) {
        const auto [q, src] = c.layout.pairs[size_t(p)];
        for (int k = 0; k < s.K; ++k) at(k, q, src) = c.W_true[size_t(p) * size_t(s.K) + size_t(k)];
      }
      std::vector<std::int64_t> conserved(size_t(KT), 1);
      if (fourth == "unshared") {
        at(s.K, 0, 1) = at(s.K, 2, 5) = at(s.K, 7, 3) = 1.0;
        conserved[size_t(s.K)] = 0;
      } else if (fourth == "off-pairs") {
        for (int q = 0; q < R; ++q) at(s.K, q, q) = 1.0;
      }
      h5::File f = h5::create(dir + "/cohort/truth/cohort.h5", MPI_COMM_SELF);
      h5::write_doubles(f, "/modes", {hsize_t(KT), hsize_t(R), hsize_t(R)}, modes.data());
      h5::write_strings(f, "/region_names", c.region_names);
      h5::write_ints(f, "/mode_conserved", {hsize_t(KT)}, conserved.data());
    }
    MPI_Barrier(MPI_COMM_WORLD);
  };
  write_truth("");
  auto run_k = [&](const std::string& k, const std::string& out, std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"--input", dir + "/cohort", "--out", out, "--k", k, "--starts", "2", "--loo-starts", "1",
                                  "--loo-null", "5", "--permutations", "999", "--max-iter", "150", "--seed", "7"};
    a.insert(a.end(), extra.begin(), extra.end());
    return run_cli(a, MPI_COMM_WORLD);
  };
  ASSERT_EQ(run_k("3", dir + "/right"), 0);
  {
    h5::File f = h5::open_read(dir + "/right/modes.h5", MPI_COMM_WORLD);
    EXPECT_EQ(h5::attr_string(f, "/", "truth_check"), "pass");
    EXPECT_EQ(h5::attr_int(f, "/truth_check", "k_true"), 3);
    EXPECT_GE(h5::attr_double(f, "/truth_check", "mean_cosine"), 0.95);
    EXPECT_EQ(h5::attr_int(f, "/truth_check", "n_conserved"), 3);
    EXPECT_GE(h5::attr_int(f, "/truth_check", "conserved_found"), 2);
    const auto cos = h5::read_doubles(f, "/truth_check/cosine");
    ASSERT_EQ(cos.size(), 3u);
    for (double v : cos) EXPECT_GE(v, 0.9);
  }
  // One mode too few: a true mode goes unmatched (cosine 0), the check fails, exit 3.
  EXPECT_EQ(run_k("2", dir + "/wrong"), book::kExitTruthFailed);
  {
    h5::File f = h5::open_read(dir + "/wrong/modes.h5", MPI_COMM_WORLD);
    EXPECT_EQ(h5::attr_string(f, "/", "truth_check"), "fail");
    EXPECT_EQ(h5::attr_int(f, "/truth_check", "k_found"), 2);
    EXPECT_LE(h5::attr_double(f, "/truth_check", "mean_cosine"), 2.0 / 3.0 + 1e-9);
    const auto matched = h5::read_ints(f, "/truth_check/matched");
    EXPECT_EQ(std::count(matched.begin(), matched.end(), -1), 1);
    EXPECT_NE(h5::attr_string(f, "/truth_check", "verdict").find("K = 2 found for 3 true modes"), std::string::npos);
  }
  EXPECT_EQ(run_k("2", dir + "/unchecked", {"--truth-check", "off"}), 0);
  {
    h5::File f = h5::open_read(dir + "/unchecked/modes.h5", MPI_COMM_WORLD);
    EXPECT_EQ(h5::attr_string(f, "/", "truth_check"), "none");
    EXPECT_FALSE(h5::exists(f, "/truth_check"));
  }
  // A true mode no animal's data share: finding only the shared ones passes (K may equal their
  // number), and the unshared mode is not matched to anything called conserved.
  write_truth("unshared");
  EXPECT_EQ(run_k("3", dir + "/unshared", {"--truth-check", "on"}), 0);
  {
    h5::File f = h5::open_read(dir + "/unshared/modes.h5", MPI_COMM_WORLD);
    EXPECT_EQ(h5::attr_string(f, "/", "truth_check"), "pass");
    EXPECT_EQ(h5::attr_int(f, "/truth_check", "k_true"), 4);
    EXPECT_EQ(h5::attr_int(f, "/truth_check", "n_conserved"), 3);
    EXPECT_EQ(h5::attr_int(f, "/truth_check", "false_conserved"), 0);
    EXPECT_EQ(h5::read_ints(f, "/truth_check/matched")[3], -1);
  }
  // A true mode zero on every factorized pair cannot be recovered from these rows: not counted.
  write_truth("off-pairs");
  EXPECT_EQ(run_k("3", dir + "/offpairs"), 0);
  {
    h5::File f = h5::open_read(dir + "/offpairs/modes.h5", MPI_COMM_WORLD);
    EXPECT_EQ(h5::attr_string(f, "/", "truth_check"), "pass");
    EXPECT_EQ(h5::attr_int(f, "/truth_check", "k_true"), 3);
    EXPECT_EQ(h5::read_ints(f, "/truth_check/visible"), (std::vector<std::int64_t>{1, 1, 1, 0}));
    EXPECT_EQ(h5::read_ints(f, "/truth_check/matched")[3], -1);
  }
}

// A null cohort's truth (every true mode an animal's own, /mode_conserved all 0: simulate
// --mode-sharing none): K and cosines have nothing to be scored against; the check passes only
// when conservation ran and called no mode conserved. Shared data declared null must fail.
TEST(ModesCommand, TruthCheckOnANullCohort) {
  auto run_case = [](SyntheticSpec s, const std::string& name, std::vector<std::string> extra = {}) {
    const SyntheticCohort c = make_synthetic(s);
    const std::string dir = cohortnet::testutil::scratch_dir("modes-truth-null-" + name);
    write_cohort_files(c, dir + "/cohort", false, MPI_COMM_WORLD);
    if (comm_rank(MPI_COMM_WORLD) == 0) {
      const int R = c.layout.R, KT = 2 * s.A;  // two modes of its own per animal
      std::vector<double> modes(size_t(KT) * size_t(R) * size_t(R), 0.0);
      for (int k = 0; k < KT; ++k) modes[(size_t(k) * size_t(R) + size_t(k % R)) * size_t(R) + size_t((k + 1) % R)] = 1.0;
      std::vector<std::int64_t> conserved(size_t(KT), 0);
      h5::File f = h5::create(dir + "/cohort/truth/cohort.h5", MPI_COMM_SELF);
      h5::write_doubles(f, "/modes", {hsize_t(KT), hsize_t(R), hsize_t(R)}, modes.data());
      h5::write_strings(f, "/region_names", c.region_names);
      h5::write_ints(f, "/mode_conserved", {hsize_t(KT)}, conserved.data());
    }
    MPI_Barrier(MPI_COMM_WORLD);
    std::vector<std::string> a = {"--input", dir + "/cohort", "--out", dir + "/out", "--k", "3", "--starts", "2",
                                  "--loo-starts", "1", "--loo-null", "5", "--permutations", "999", "--max-iter", "150",
                                  "--seed", "7"};
    a.insert(a.end(), extra.begin(), extra.end());
    return std::make_pair(run_cli(a, MPI_COMM_WORLD), dir + "/out/modes.h5");
  };
  SyntheticSpec s = spec(44);
  s.A = 10;
  s.K = 3;
  s.null_cohort = true;
  {
    const auto [rc, h5path] = run_case(s, "null");
    EXPECT_EQ(rc, 0);
    h5::File f = h5::open_read(h5path, MPI_COMM_WORLD);
    EXPECT_EQ(h5::attr_string(f, "/", "truth_check"), "pass");
    EXPECT_EQ(h5::attr_int(f, "/truth_check", "n_conserved"), 0);
    EXPECT_EQ(h5::attr_int(f, "/truth_check", "false_conserved"), 0);
    EXPECT_NE(h5::attr_string(f, "/truth_check", "verdict").find("null cohort"), std::string::npos);
  }
  {  // conservation not tested: nothing shown, so no pass
    const auto [rc, h5path] = run_case(s, "untested", {"--no-conserve"});
    EXPECT_EQ(rc, book::kExitTruthFailed);
  }
  s.null_cohort = false;  // the modes are shared, the truth says none is: they get called conserved
  {
    const auto [rc, h5path] = run_case(s, "shared");
    EXPECT_EQ(rc, book::kExitTruthFailed);
    h5::File f = h5::open_read(h5path, MPI_COMM_WORLD);
    EXPECT_EQ(h5::attr_string(f, "/", "truth_check"), "fail");
    EXPECT_GE(h5::attr_int(f, "/truth_check", "false_conserved"), 2);
    EXPECT_NE(h5::attr_string(f, "/truth_check", "verdict").find("NOT pass the null cohort"), std::string::npos);
  }
}

// --summary pathways: each pair's gains times its /pathway_strength (the fitted gains carry no
// scale: it is in J), with the same masking; a file without /pathway_strength, or with one of
// another definition (an older version's J norm), is an error naming it.
TEST(ModesCommand, PathwaysAreGainsTimesTheirStrength) {
  const std::string dir = cohortnet::testutil::scratch_dir("modes-pathways");
  const std::vector<std::string> names = {"A", "B", "C"};
  const hsize_t M = 3, T = 30;
  std::vector<double> g(M * M * T), st(M * M);
  for (size_t e = 0; e < g.size(); ++e) g[e] = 1.0 + 0.5 * std::sin(0.7 * double(e));
  for (size_t e = 0; e < st.size(); ++e) st[e] = 0.1 * double(e + 1);
  auto write = [&](const std::string& path, bool strength, const char* definition = kPathwayStrengthDefinition) {
    if (comm_rank(MPI_COMM_WORLD) == 0) {
      h5::File f = h5::create(path, MPI_COMM_SELF);
      h5::set_attr(f, "/", "animal_id", "a00");
      h5::ensure_group(f, "/currents");
      h5::write_strings(f, "/currents/region_names", names);
      h5::write_doubles(f, "/gains", {M, M, T}, g.data());
      if (strength) {
        h5::write_doubles(f, "/pathway_strength", {M, M}, st.data());
        if (definition) h5::set_attr(f, "/pathway_strength", "definition", definition);
      }
    }
    MPI_Barrier(MPI_COMM_WORLD);
  };
  const PairLayout L = make_layout(3, false);
  write(dir + "/with.h5", true);
  const AnimalMatrix a = load_summary(dir + "/with.h5", "/pathways", L, names, "none", "error", false, nullptr, MPI_COMM_WORLD);
  const AnimalMatrix b = load_summary(dir + "/with.h5", "/gains", L, names, "none", "error", false, nullptr, MPI_COMM_WORLD);
  ASSERT_EQ(a.T, int(T));
  for (int q = 0; q < 3; ++q)
    for (int src = 0; src < 3; ++src) {
      const int p = L.row(q, src);
      if (p < 0) continue;
      for (size_t t = 0; t < T; ++t)
        EXPECT_NEAR(a.X[size_t(p) * T + t], st[size_t(q) * M + size_t(src)] * b.X[size_t(p) * T + t], 1e-15)
            << "pair " << q << "<-" << src << " sample " << t;
    }
  // A refused file: the error names it and says why.
  auto refused = [&](const std::string& file, const std::string& why) {
    try {
      load_summary(dir + "/" + file, "/pathways", L, names, "none", "error", false, nullptr, MPI_COMM_WORLD);
      ADD_FAILURE() << file << " was accepted";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(file + ": " + why), std::string::npos) << e.what();
    }
  };
  write(dir + "/without.h5", false);
  refused("without.h5", "--summary pathways needs /pathway_strength");
  for (const char* def : {static_cast<const char*>(nullptr),
                          "[target Q, source S]: sqrt(sum over units i of Q and j of S of J[i,j]^2 / units of Q)"}) {
    write(dir + "/older.h5", true, def);
    refused("older.h5", "/pathway_strength is of another definition");
  }
}

// --summary gains on fits (fit --gains inputs): /gains is read, and the rows of a target region
// whose gains the fit did not keep (gain 1 by construction, /gains_model/kept = 0) are masked like
// an absent region's; a fit that kept none is an error naming the file.
TEST(ModesCommand, FittedGainsMaskTargetsWithoutGains) {
  const std::string dir = cohortnet::testutil::scratch_dir("modes-fitted-gains");
  const std::vector<std::string> names = {"A", "B", "C"};
  const hsize_t M = 3, T = 40;
  auto write = [&](const std::string& path, std::vector<std::int64_t> kept) {
    if (comm_rank(MPI_COMM_WORLD) == 0) {
      std::vector<double> g(M * M * T);
      for (size_t e = 0; e < g.size(); ++e) g[e] = 1.0 + 0.5 * std::sin(0.3 * double(e));
      h5::File f = h5::create(path, MPI_COMM_SELF);
      h5::set_attr(f, "/", "animal_id", "a00");
      h5::ensure_group(f, "/currents");
      h5::write_strings(f, "/currents/region_names", names);
      h5::write_doubles(f, "/gains", {M, M, T}, g.data());
      h5::ensure_group(f, "/gains_model");
      h5::write_ints(f, "/gains_model/kept", {M}, kept.data());
    }
    MPI_Barrier(MPI_COMM_WORLD);
  };
  const PairLayout L = make_layout(3, false);
  write(dir + "/one.h5", {1, 0, 1});
  const AnimalMatrix a = load_summary(dir + "/one.h5", "/gains", L, names, "rms", "error", false, nullptr, MPI_COMM_WORLD);
  for (int q = 0; q < 3; ++q)
    for (int src = 0; src < 3; ++src) {
      const int p = L.row(q, src);
      if (p >= 0) {
        EXPECT_EQ(int(a.present[size_t(p)]), q == 1 ? 0 : 1) << "pair " << q << "<-" << src;
      }
    }
  write(dir + "/none.h5", {0, 0, 0});
  try {
    load_summary(dir + "/none.h5", "/gains", L, names, "rms", "error", false, nullptr, MPI_COMM_WORLD);
    ADD_FAILURE() << "a fit without kept gains was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("none.h5: the fit kept gains in none of its target regions"), std::string::npos)
        << e.what();
  }
}

// --ceiling-fits: a refit set identical to the input gives ceiling 1 for every mode and animal (same
// data, same starts); a set with different data gives less; a set of other animals is an error.
TEST(ModesCommand, CeilingFromOtherFits) {
  SyntheticSpec s = spec(43);
  s.A = 5;
  s.K = 3;
  const SyntheticCohort c = make_synthetic(s);
  SyntheticSpec s2 = s;
  s2.seed = 44;  // other modes, noise and activations for the same animal ids
  const SyntheticCohort other = make_synthetic(s2);
  const std::string dir = cohortnet::testutil::scratch_dir("modes-ceiling");
  write_cohort_files(c, dir + "/one", true, MPI_COMM_WORLD);
  write_cohort_files(c, dir + "/same", true, MPI_COMM_WORLD);
  write_cohort_files(other, dir + "/other", true, MPI_COMM_WORLD);
  const std::vector<std::string> base = {"--k", "3", "--starts", "2", "--loo-starts", "1", "--loo-null", "3",
                                         "--permutations", "99", "--max-iter", "150", "--regions",
                                         "R0,R1,R2,R3,R4,R5,R6,R7"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> v = {"--input", dir + "/one"};
    v.insert(v.end(), base.begin(), base.end());
    v.insert(v.end(), extra.begin(), extra.end());
    return v;
  };
  ASSERT_EQ(run_cli(with({"--out", dir + "/r1", "--ceiling-fits", dir + "/same"}), MPI_COMM_WORLD), 0);
  {
    h5::File f = h5::open_read(dir + "/r1/modes.h5", MPI_COMM_WORLD);
    const auto sim = h5::read_doubles(f, "/ceiling/similarity");
    ASSERT_EQ(sim.size(), size_t(5 * 3));
    for (double v : sim) EXPECT_NEAR(v, 1.0, 1e-9);
    EXPECT_EQ(h5::attr_int(f, "/ceiling", "sets"), 1);
  }
  ASSERT_EQ(run_cli(with({"--out", dir + "/r2", "--ceiling-fits", dir + "/same," + dir + "/other"}), MPI_COMM_WORLD), 0);
  {
    h5::File f = h5::open_read(dir + "/r2/modes.h5", MPI_COMM_WORLD);
    const auto mean = h5::read_doubles(f, "/ceiling/mean");
    ASSERT_EQ(mean.size(), 3u);
    // Half of the sets are identical (1), the other has unrelated modes: clearly below 1.
    for (double v : mean) {
      EXPECT_LT(v, 0.95);
      EXPECT_GT(v, 0.5);
    }
    EXPECT_EQ(h5::attr_int(f, "/ceiling", "sets"), 2);
  }
  // A set whose animals differ from the input's is refused, naming the option.
  SyntheticSpec s3 = s;
  s3.A = 4;
  write_cohort_files(make_synthetic(s3), dir + "/fewer", true, MPI_COMM_WORLD);
  try {
    run_cli(with({"--out", dir + "/r3", "--ceiling-fits", dir + "/fewer"}), MPI_COMM_WORLD);
    ADD_FAILURE() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("--ceiling-fits"), std::string::npos) << e.what();
  }
}

TEST(ModesCommand, InputErrorsNameTheProblem) {
  SyntheticSpec s = spec(51);
  s.A = 3;
  s.K = 2;
  s.T = 40;
  const SyntheticCohort c = make_synthetic(s);
  const std::string dir = cohortnet::testutil::scratch_dir("modes-errors");
  write_cohort_files(c, dir + "/cohort", false, MPI_COMM_WORLD);
  auto message = [&](std::vector<std::string> args) -> std::string {
    try {
      run_cli(args, MPI_COMM_WORLD);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message({"--input", dir + "/nowhere", "--out", dir + "/o"}).find("nowhere"), std::string::npos);
  EXPECT_NE(message({"--input", dir, "--out", dir + "/o"}).find("neither fits/"), std::string::npos);
  EXPECT_NE(message({"--input", dir + "/cohort", "--out", dir + "/o", "--summary", "exc_rmz", "--k", "2"}).find("/current_exc_rmz"),
            std::string::npos);
  // A region not in the manifest's list is refused, naming the file and the region.
  const std::string msg = message({"--input", dir + "/cohort", "--out", dir + "/o", "--k", "2", "--regions", "R0,R1,R2"});
  EXPECT_NE(msg.find("is not in the cohort's region list"), std::string::npos) << msg;
  EXPECT_NE(msg.find(".h5"), std::string::npos) << msg;
  EXPECT_NE(message({"--project", dir + "/cohort/truth/a00.h5"}).find("--modes"), std::string::npos);
  EXPECT_NE(message({"--project", dir + "/cohort/truth/a00.h5", "--modes", dir + "/cohort/truth/a01.h5"}).find("not a cohortnet modes file"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir + "/o/modes.h5"));
}
