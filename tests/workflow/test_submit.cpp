// Slurm submission plans: ranks sized from memory, finished animals skipped, scripts that
// checkpoint before the time limit and requeue, and nothing unsafe reaching a batch script.
#include <gtest/gtest.h>

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
