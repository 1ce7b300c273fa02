#pragma once
// `cohortnet submit`: the study as a chain of Slurm jobs (fit job arrays -> modes -> report),
// sized from the animals' sizes and the cluster's memory, resubmitting only what is unfinished.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fit/params.hpp"

#include "core/options.hpp"

namespace cohortnet {

struct SubmitSettings {
  std::string config;          // the study's config file (absolute path)
  std::string binary;          // cohortnet executable the jobs run
  std::string cohort_dir, fit_out, modes_out;
  bool has_modes = false, has_report = false;
  std::string partition, account, qos;
  double mem_per_node_gb = 0;  // usable memory of one node
  int cores_per_node = 1;
  int max_ranks_per_animal = 0;  // 0: cores_per_node * max_nodes
  int max_nodes = 1;
  int ranks_per_animal = 0;    // 0: from memory
  std::string time_fit = "04:00:00", time_modes = "01:00:00", time_report = "00:30:00";
  int signal_lead_s = 300;     // SIGTERM this long before the time limit: the fit checkpoints
  double node_gbs = 200;       // memory bandwidth of one node, GB/s: the fit's time estimate
  int modes_ranks = 2;
  int array_limit = 0;         // %N of the job arrays (0: no limit)
  int dt_factor = 1;
  bool region_prior = true;    // [fit] prior = region: one P per target region (M x the memory of P)
  // The study's fit parameters ([fit]): when set, each animal is sized by the fit's own memory
  // plan (src/fit/memory.*: the prior actually used, e.g. the default block prior's n_Q x n_Q
  // blocks, its regions and the decomposition by rows) with dt_factor in place of auto; unset: the
  // conservative shared/region estimate above.
  std::optional<fit::Params> fit_params;
  std::string launcher = "srun --mpi=pmix";
  std::string script_dir;      // where scripts, lists and logs go
};

struct PlannedAnimal {
  std::string id;
  std::int64_t n_units = 0, n_samples = 0;
  int n_regions = 1;
  int ranks = 1;
  double bytes_per_rank = 0;   // estimated peak resident memory of one rank
  bool done = false;           // its fit output already exists
  double fit_seconds = 0;      // estimated time of its whole fit at its ranks (estimate_fit_seconds)
};

struct FitArray {
  int ranks = 1;                 // MPI ranks of every task
  int nodes = 1;
  double mem_per_rank_mb = 0;    // --mem-per-cpu
  std::vector<std::string> animals;  // one per array task
};

struct SubmitPlan {
  std::vector<PlannedAnimal> animals;
  std::vector<FitArray> arrays;  // one per distinct rank count
  bool run_modes = false, run_report = false;
};

// Estimated peak memory (bytes) of one rank fitting an animal: the fit's arrays plus the
// process baseline (MPI, PETSc, HDF5 libraries); see docs/slurm.md for the measurement.
// n_p: P matrices held (1 with the shared prior, the animal's regions with the region prior).
double fit_peak_bytes_per_rank(std::int64_t n_units, std::int64_t n_samples, int dt_factor, int ranks, int n_p);

// Estimated seconds of an animal's whole fit at a.ranks: the fit is memory-bound (docs/performance.md),
// so per RNN step each rank streams its rows of J once and, per learning step, its share of the RLS
// matrices (s N x N matrices: 1/M with the block prior, M with the region prior, 1 shared), with
// J and P written every update block; the ranks of a node share its bandwidth (--node-gbs).
// (start + runs) x (T - 1) dtFactor steps x (dtFactor + s + (1 + s)/U) / dtFactor x 8 N^2 / p bytes
// / (node_gbs / ranks on a node); the regression start is counted as one run (measured 0.03-0.28
// runs, bench/README.md); a gated start (--gains inputs) is not counted. bench/comm_model.py adds
// the communication (a few % up to 64 nodes with a hierarchical all-gather).
double estimate_fit_seconds(const SubmitSettings& s, const PlannedAnimal& a);

// Sizes every animal (ranks so a rank's share fits one core's memory) and groups the unfinished
// ones into job arrays. Throws Error naming the animal if even max ranks cannot hold it.
SubmitPlan make_submit_plan(const SubmitSettings& s, const std::vector<PlannedAnimal>& animals);

// The batch scripts, in submission order: fit arrays, modes, report. `deps` placeholders are
// filled at submission.
struct BatchScript {
  std::string stage, path, text;
};
std::vector<BatchScript> render_scripts(const SubmitSettings& s, const SubmitPlan& plan);

// The plan as tab-separated text for programs (`cohortnet submit --plan`; workflows/Snakefile reads
// it): a header line, then one line per animal (stage fit) and one each for modes and report when
// the study has them. Columns: stage animal ranks nodes mem_per_rank_mb mem_mb time_min n_units
// n_samples n_regions fit_exists est_fit_min (estimate_fit_seconds in minutes, rounded up; 0 for
// modes and report). mem_per_rank_mb is what `--mem-per-cpu` gets (estimate x headroom,
// rounded up), mem_mb = ranks x mem_per_rank_mb (0: no estimate, for modes and report), time_min
// the stage's time limit in minutes.
std::string plan_tsv(const SubmitSettings& s, const SubmitPlan& plan);

// A Slurm time limit ("MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS") in whole
// minutes (seconds rounded up). Throws Error naming `what` for anything else.
long slurm_minutes(const std::string& what, const std::string& time);

// Accepts only characters safe in a job name or path inside a batch script.
void check_shell_safe(const std::string& what, const std::string& value);

Command make_submit_command(const std::vector<Command>& stages);

}  // namespace cohortnet
