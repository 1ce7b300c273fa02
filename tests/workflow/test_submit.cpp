// Slurm submission plans: ranks sized from memory, finished animals skipped, scripts that
// checkpoint before the time limit and requeue, and nothing unsafe reaching a batch script.
#include <gtest/gtest.h>
#include <cmath>
#include <sstream>

#include "fit/memory.hpp"

#include "core/error.hpp"
#include "workflow/submit.hpp"

using namespace cohortnet;

namespace {

SubmitSettings settings() {
  SubmitSettings s;
  s.config = "/data/study.ini";
  s.binary = "/opt/cohortnet/bin/cohortnet";
  s.fit_out = "/scratch/study";
  s.script_dir = "/scratch/study/slurm";
  s.mem_per_node_gb = 64;
  s.cores_per_node = 16;  // 4 GB per core
  s.max_nodes = 4;
  s.dt_factor = 5;
  s.has_modes = true;
  s.has_report = true;
  s.region_prior = false;  // one P, as the reference
  return s;
}

PlannedAnimal animal(const std::string& id, std::int64_t n, bool done = false) {
  PlannedAnimal a;
  a.id = id;
  a.n_units = n;
  a.n_samples = 1201;
  a.done = done;
  return a;
}

}  // namespace

TEST(SubmitPlan, RanksGrowWithTheAnimalAndEachRankFitsACore) {
  SubmitSettings s = settings();
  SubmitPlan p = make_submit_plan(s, {animal("small", 300), animal("mid", 20000), animal("big", 50000)});
  ASSERT_EQ(p.animals.size(), 3u);
  EXPECT_EQ(p.animals[0].ranks, 1);
  EXPECT_GT(p.animals[1].ranks, 1);
  EXPECT_GT(p.animals[2].ranks, p.animals[1].ranks);
  const double per_core = 64e9 / 16;
  for (auto& a : p.animals) {
    EXPECT_LE(1.25 * a.bytes_per_rank, per_core) << a.id;
    // The smallest such rank count: one rank fewer would not fit.
    if (a.ranks > 1) {
      EXPECT_GT(1.25 * fit_peak_bytes_per_rank(a.n_units, a.n_samples, 5, a.ranks - 1, 1), per_core) << a.id;
    }
  }
  // J and P dominate: per-rank memory falls like 1/p.
  double b2 = fit_peak_bytes_per_rank(20000, 1201, 5, 2, 1), b4 = fit_peak_bytes_per_rank(20000, 1201, 5, 4, 1);
  EXPECT_NEAR(b2 / b4, 2.0, 0.15);
  // One job array per distinct rank count.
  EXPECT_EQ(p.arrays.size(), 3u);
}

TEST(SubmitPlan, RegionPriorCountsOnePPerRegion) {
  SubmitSettings s = settings();
  PlannedAnimal a = animal("m", 20000);
  a.n_regions = 6;
  SubmitPlan shared = make_submit_plan(s, {a});
  s.region_prior = true;
  SubmitPlan region = make_submit_plan(s, {a});
  // Six P matrices instead of one: more ranks, and exactly five more N/p x N blocks of doubles,
  // each with its delayed-update buffers (8 local columns of N/p, 8 rows of N shared with J).
  EXPECT_GT(region.animals[0].ranks, shared.animals[0].ranks);
  fit::FitSizes sz;
  sz.n_units = 20000;
  sz.n_samples = 1201;
  sz.n_regions = 6;
  sz.ranks = 8;
  fit::Params ps, pr;
  ps.prior = fit::Prior::Shared;
  pr.prior = fit::Prior::Region;
  EXPECT_DOUBLE_EQ(fit::plan_fit_memory(sz, pr).always - fit::plan_fit_memory(sz, ps).always,
                   5.0 * (2500.0 * 20000.0 + 8.0 * 2500.0 + 8.0 * 20000.0) * 8.0);
  // The block prior holds each region's sources only: m x n_max instead of M x m x N.
  fit::Params pb;
  pb.prior = fit::Prior::Block;
  sz.largest_region = 4000;
  EXPECT_LT(fit::plan_fit_memory(sz, pb).always, fit::plan_fit_memory(sz, ps).always);
}

TEST(SubmitPlan, FinishedAnimalsAreNotResubmitted) {
  SubmitPlan p = make_submit_plan(settings(), {animal("a", 300, true), animal("b", 300), animal("c", 300, true)});
  ASSERT_EQ(p.arrays.size(), 1u);
  EXPECT_EQ(p.arrays[0].animals, std::vector<std::string>{"b"});
  p = make_submit_plan(settings(), {animal("a", 300, true)});
  EXPECT_TRUE(p.arrays.empty());
}

TEST(SubmitPlan, AnimalTooBigForTheAllocationIsNamed) {
  SubmitSettings s = settings();
  s.max_nodes = 1;
  try {
    make_submit_plan(s, {animal("m07", 200000)});
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("animal m07"), std::string::npos) << m;
    EXPECT_NE(m.find("--max-nodes"), std::string::npos) << m;
  }
}

TEST(SubmitPlan, ScriptsCheckpointRequeueAndChain) {
  SubmitSettings s = settings();
  s.partition = "compute";
  SubmitPlan p = make_submit_plan(s, {animal("a1", 300), animal("a2", 400)});
  auto scripts = render_scripts(s, p);
  ASSERT_EQ(scripts.size(), 3u);
  EXPECT_EQ(scripts[0].stage, "fit");
  EXPECT_EQ(scripts[1].stage, "modes");
  EXPECT_EQ(scripts[2].stage, "report");
  const std::string& fit = scripts[0].text;
  for (const char* want : {"#SBATCH --array=0-1", "#SBATCH --signal=TERM@300", "#SBATCH --requeue",
                           "#SBATCH --partition=compute", "srun --mpi=pmix", "--resume", "'a1'", "'a2'",
                           "scontrol requeue", "--animals \"$animal\"", "OPENBLAS_NUM_THREADS=1"})
    EXPECT_NE(fit.find(want), std::string::npos) << "fit script lacks " << want << "\n" << fit;
  EXPECT_NE(scripts[1].text.find(" modes --config '/data/study.ini'"), std::string::npos) << scripts[1].text;
}

TEST(SubmitPlan, ShellMetacharactersNeverReachAScript) {
  for (const char* bad : {"a;rm -rf /", "$(id)", "a b", "x`y`", "q'uote", "new\nline", "a|b", "a&b"}) {
    EXPECT_THROW(check_shell_safe("animal id", bad), Error) << bad;
  }
  EXPECT_NO_THROW(check_shell_safe("path", "/scratch/lab_1/study-2024.v2/cfg.ini"));
  try {
    check_shell_safe("option --partition", "gpu;reboot");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("option --partition"), std::string::npos);
  }
}

TEST(SubmitPlan, TsvForProgramsListsEveryAnimalWithItsRanksMemoryAndTime) {
  SubmitSettings s = settings();
  s.time_fit = "1-02:30:00";
  s.time_modes = "45";
  s.time_report = "00:10:30";
  s.modes_ranks = 3;
  SubmitPlan p = make_submit_plan(s, {animal("a1", 300, true), animal("big", 20000)});
  const std::string t = plan_tsv(s, p);
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(t);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> f;
    std::istringstream ls(line);
    for (std::string x; std::getline(ls, x, '\t');) f.push_back(x);
    rows.push_back(f);
  }
  ASSERT_EQ(rows.size(), 5u) << t;  // header, 2 animals (the finished one too), modes, report
  EXPECT_EQ(rows[0][0], "stage");
  EXPECT_EQ(rows[0][2], "ranks");
  EXPECT_EQ(rows[0][5], "mem_mb");
  for (auto& r : rows) ASSERT_EQ(r.size(), 12u) << t;
  EXPECT_EQ(rows[0][11], "est_fit_min");
  EXPECT_EQ(rows[1][1], "a1");
  EXPECT_EQ(rows[1][10], "1");  // its fit exists
  EXPECT_EQ(rows[2][1], "big");
  // Exactly the plan's ranks and its memory (estimate x headroom, per rank, rounded up to MB).
  EXPECT_EQ(std::stoi(rows[2][2]), p.animals[1].ranks);
  EXPECT_GT(p.animals[1].ranks, 1);
  const long per_rank = std::stol(rows[2][4]);
  EXPECT_GE(double(per_rank), 1.25 * p.animals[1].bytes_per_rank / 1e6);
  EXPECT_LT(double(per_rank), 1.25 * p.animals[1].bytes_per_rank / 1e6 + 1);
  EXPECT_EQ(std::stol(rows[2][5]), per_rank * p.animals[1].ranks);
  EXPECT_EQ(rows[2][6], std::to_string(24 * 60 + 150));
  EXPECT_EQ(std::stol(rows[2][11]), long(std::ceil(estimate_fit_seconds(s, p.animals[1]) / 60.0)));
  EXPECT_GT(std::stol(rows[2][11]), 0);
  EXPECT_EQ(rows[3][0], "modes");
  EXPECT_EQ(rows[3][2], "3");
  EXPECT_EQ(rows[3][6], "45");
  EXPECT_EQ(rows[4][0], "report");
  EXPECT_EQ(rows[4][6], "11");
}

TEST(SubmitPlan, SlurmTimeLimitsInMinutes) {
  EXPECT_EQ(slurm_minutes("t", "30"), 30);
  EXPECT_EQ(slurm_minutes("t", "30:01"), 31);
  EXPECT_EQ(slurm_minutes("t", "04:00:00"), 240);
  EXPECT_EQ(slurm_minutes("t", "2-00"), 2 * 24 * 60);
  EXPECT_EQ(slurm_minutes("t", "1-01:05"), 24 * 60 + 65);
  for (const char* bad : {"", "abc", "1:2:3:4", "-5", "10:", "0"}) {
    try {
      slurm_minutes("option --time-fit", bad);
      FAIL() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("option --time-fit"), std::string::npos);
    }
  }
}

TEST(SubmitPlan, WithTheStudysFitParametersTheFitsOwnMemoryPlanSizesTheJobs) {
  // A whole-brain animal (80,000 units, 70 regions, 3,000 samples) on 128 GB / 64-core nodes:
  // with the study's fit parameters (the default block prior) the plan is the fit's own
  // (src/fit/memory.*), which fits in 2 nodes; the conservative shared-P estimate does not.
  SubmitSettings s = settings();
  s.mem_per_node_gb = 128;
  s.cores_per_node = 64;
  s.max_nodes = 2;
  PlannedAnimal a = animal("zf", 80000);
  a.n_samples = 3000;
  a.n_regions = 70;
  EXPECT_THROW(make_submit_plan(s, {a}), Error);  // shared P: more than 2 GB per rank at 128 ranks
  s.fit_params = fit::Params();
  const SubmitPlan p = make_submit_plan(s, {a});
  ASSERT_EQ(p.arrays.size(), 1u);
  EXPECT_LE(p.arrays[0].ranks, 128);
  EXPECT_GT(p.arrays[0].ranks, 64);  // one node is not enough
  fit::Params fp;
  fp.dt_factor = s.dt_factor;
  fit::FitSizes sz;
  sz.n_units = 80000, sz.n_samples = 3000, sz.n_regions = 70, sz.ranks = p.arrays[0].ranks;
  const double planned = fit::plan_fit_memory(sz, fp).peak;
  EXPECT_GT(p.arrays[0].mem_per_rank_mb * 1e6, planned);  // the plan plus libraries and headroom
  EXPECT_LT(p.arrays[0].mem_per_rank_mb * 1e6, 1.5 * planned + 2e8);
}

// The fit is memory-bound: its estimated time grows as N^2 T x runs, falls with the node's
// bandwidth, does not fall with more ranks on one node (they share its bandwidth) and halves with
// twice the nodes. Checked against the model's own terms for the block prior (1/M matrices of P).
TEST(SubmitPlan, FitTimeEstimateFollowsTheWorkAndTheMemoryBandwidth) {
  SubmitSettings s = settings();
  fit::Params fp;
  fp.runs_train = 9;
  fp.runs_free = 1;
  s.fit_params = fp;
  s.node_gbs = 100;
  PlannedAnimal a = animal("a", 10000);
  a.n_regions = 4;
  a.ranks = 4;
  const double t = estimate_fit_seconds(s, a);
  const double df = 5, mats = 0.25, U = 8, N = 10000, steps = 1200 * df;
  const double expected = (10 + 1) * steps * (df + mats + (1 + mats) / U) / df * 8 * N * N / 4 / (100e9 / 4);
  EXPECT_NEAR(t, expected, 1e-9 * expected);
  PlannedAnimal big = a;
  big.n_units = 20000;
  EXPECT_NEAR(estimate_fit_seconds(s, big), 4 * t, 1e-9 * t);
  PlannedAnimal longer = a;
  longer.n_samples = 2 * 1200 + 1;
  EXPECT_NEAR(estimate_fit_seconds(s, longer), 2 * t, 1e-9 * t);
  PlannedAnimal node = a;
  node.ranks = 16;  // one full node: the same bandwidth, the same time
  EXPECT_NEAR(estimate_fit_seconds(s, node), t, 1e-9 * t);
  PlannedAnimal two = a;
  two.ranks = 32;  // two nodes
  EXPECT_NEAR(estimate_fit_seconds(s, two), t / 2, 1e-9 * t);
  SubmitSettings fast = s;
  fast.node_gbs = 200;
  EXPECT_NEAR(estimate_fit_seconds(fast, a), t / 2, 1e-9 * t);
  fp.prior = fit::Prior::Region;  // M full P's per step instead of 1/M
  s.fit_params = fp;
  EXPECT_GT(estimate_fit_seconds(s, a), 1.5 * t);
}
