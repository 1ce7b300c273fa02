#include "workflow/submit.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "core/bookkeeping.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/parallel.hpp"
#include "fit/cohort.hpp"
#include "fit/command.hpp"
#include "fit/memory.hpp"
#include "core/h5.hpp"
#include "io/animal.hpp"

namespace cohortnet {

namespace fs = std::filesystem;

namespace {

// Resident memory of one idle rank after MPI, PETSc and HDF5 are loaded (measured on Debian 12
// with Open MPI 4.1 and PETSc 3.18: docs/slurm.md).
constexpr double kBaselineBytes = 50.0e6;
// Headroom on top of the estimate when asking Slurm for memory.
constexpr double kHeadroom = 1.25;

std::string quote(const std::string& s) {  // single-quoted for bash; check_shell_safe ran first
  return "'" + s + "'";
}

int run_capture(const std::string& cmd, std::string& out) {
  out.clear();
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

// Modes and report depend with afterany: a fit array with a failed animal still ends, and modes
// itself decides (--max-failed, the status files) whether the animals that succeeded suffice.
std::string sbatch(const std::string& script, const std::vector<std::string>& deps) {
  std::string cmd = "sbatch --parsable";
  if (!deps.empty()) {
    cmd += " --kill-on-invalid-dep=yes --dependency=afterany";
    for (auto& d : deps) cmd += ":" + d;
  }
  cmd += " " + quote(script);
  std::string out;
  int rc = run_capture(cmd, out);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (rc != 0) fail("sbatch ", script, " failed (exit ", rc, "): ", out);
  std::string id = out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
  id = id.substr(0, id.find(';'));
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
    fail("sbatch ", script, ": unexpected answer '", out, "'");
  return id;
}

std::string header(const SubmitSettings& s, const std::string& stage, const std::string& time, int ntasks,
                   int nodes, double mem_per_cpu_mb) {
  std::ostringstream h;
  h << "#!/bin/bash\n"
    << "# cohortnet " << stage << " stage, written by `cohortnet submit` (docs/slurm.md).\n"
    << "#SBATCH --job-name=cohortnet-" << stage << "\n"
    << "#SBATCH --ntasks=" << ntasks << "\n";
  if (nodes > 0) h << "#SBATCH --nodes=" << nodes << "\n";
  if (mem_per_cpu_mb > 0) h << "#SBATCH --mem-per-cpu=" << long(std::ceil(mem_per_cpu_mb)) << "M\n";
  h << "#SBATCH --time=" << time << "\n";
  if (!s.partition.empty()) h << "#SBATCH --partition=" << s.partition << "\n";
  if (!s.account.empty()) h << "#SBATCH --account=" << s.account << "\n";
  if (!s.qos.empty()) h << "#SBATCH --qos=" << s.qos << "\n";
  return h.str();
}

const char* kEnv =
    "set -uo pipefail\n"
    "export OPENBLAS_NUM_THREADS=1   # one BLAS thread per MPI rank\n"
    "if [ \"$(id -u)\" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi\n";

// "done" when the fit output belongs to this configuration (status ok, fingerprint equal to the
// one the fit would record now), else what fit --resume will do with it.
std::string fit_state(const std::string& fits_dir, const CohortAnimal& a, const std::string& expected, bool& done) {
  done = false;
  const std::string out = fits_dir + "/" + a.animal_id + ".h5";
  std::optional<book::AnimalStatus> st;
  try {
    st = book::read_status(fits_dir, a.animal_id);
  } catch (const Error& e) {
    return cat("to fit (", e.what(), ")");
  }
  if (!fs::exists(out)) return st && st->status != "ok" ? "to fit (was " + st->status + ")" : "to fit";
  std::string fp;
  try {
    h5::File f = h5::open_read(out, MPI_COMM_SELF);
    fp = h5::attr_string(f, "/", "fingerprint");
  } catch (const Error& e) {
    return cat("to fit (", out, " unreadable)");
  }
  if (fp != expected)
    return "fitted with other options (" + fit::fingerprint_diff(fp, expected) + "): fit --resume will fail it; remove " + out;
  if (st && st->status != "ok") return "to fit (status " + st->status + ")";
  done = true;
  return st ? "done" : "done (no status file)";
}

}  // namespace

void check_shell_safe(const std::string& what, const std::string& v) {
  if (v.empty()) fail(what, " is empty");
  for (char c : v)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::string("_-./+=:,@%").find(c) != std::string::npos))
      fail(what, " '", v, "' contains '", c, "'; only letters, digits and _-./+=:,@% may reach a batch script");
}

double fit_peak_bytes_per_rank(std::int64_t n_units, std::int64_t n_samples, int dt_factor, int ranks, int n_p) {
  return kBaselineBytes + fit::fit_bytes_per_rank(n_units, n_samples, dt_factor, ranks, n_p);
}

long slurm_minutes(const std::string& what, const std::string& time) {
  auto bad = [&] {
    fail(what, " '", time, "' is not a Slurm time limit (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)");
  };
  std::string rest = time;
  long days = 0;
  const auto dash = rest.find('-');
  if (dash != std::string::npos) {
    const std::string d = rest.substr(0, dash);
    if (d.empty() || d.find_first_not_of("0123456789") != std::string::npos) bad();
    days = std::stol(d);
    rest = rest.substr(dash + 1);
  }
  std::vector<long> f;
  std::stringstream ss(rest);
  std::string part;
  while (std::getline(ss, part, ':')) {
    if (part.empty() || part.size() > 6 || part.find_first_not_of("0123456789") != std::string::npos) bad();
    f.push_back(std::stol(part));
  }
  if (f.empty() || f.size() > 3 || rest.empty() || rest.back() == ':') bad();
  long h = 0, m = 0, sec = 0;
  if (dash != std::string::npos) {  // D-HH[:MM[:SS]]
    h = f[0];
    if (f.size() > 1) m = f[1];
    if (f.size() > 2) sec = f[2];
  } else if (f.size() == 1) {
    m = f[0];
  } else if (f.size() == 2) {
    m = f[0];
    sec = f[1];
  } else {
    h = f[0];
    m = f[1];
    sec = f[2];
  }
  const long minutes = days * 24 * 60 + h * 60 + m + (sec + 59) / 60;
  if (minutes < 1) bad();
  return minutes;
}

double estimate_fit_seconds(const SubmitSettings& s, const PlannedAnimal& a) {
  const double N = double(a.n_units), T = double(a.n_samples), df = double(std::max(1, s.dt_factor));
  const double p = double(std::max(1, a.ranks)), M = double(std::max(1, a.n_regions));
  double mats = s.region_prior ? M : 1.0, U = 8, runs = 51;
  if (s.fit_params) {
    const fit::Params& fp = *s.fit_params;
    mats = fp.block_prior() ? 1.0 / M : fp.region_prior() ? M : 1.0;
    U = double(std::max(1, fp.update_block));
    runs = double(fp.total_runs());
  }
  const double rank_bw = s.node_gbs * 1e9 / std::min(p, double(std::max(1, s.cores_per_node)));
  const double bytes_per_step = (df + mats + (1.0 + mats) / U) / df * 8.0 * N * N / p;
  return (runs + 1.0) * std::max(0.0, T - 1.0) * df * bytes_per_step / rank_bw;
}

std::string plan_tsv(const SubmitSettings& s, const SubmitPlan& plan) {
  std::ostringstream t;
  t << "stage\tanimal\tranks\tnodes\tmem_per_rank_mb\tmem_mb\ttime_min\tn_units\tn_samples\tn_regions\tfit_exists"
       "\test_fit_min\n";
  const long fit_min = slurm_minutes("option --time-fit", s.time_fit);
  for (auto& a : plan.animals) {
    const long per_rank = long(std::ceil(kHeadroom * a.bytes_per_rank / 1e6));
    const int nodes = (a.ranks + s.cores_per_node - 1) / s.cores_per_node;
    t << "fit\t" << a.id << "\t" << a.ranks << "\t" << nodes << "\t" << per_rank << "\t" << per_rank * a.ranks << "\t"
      << fit_min << "\t" << a.n_units << "\t" << a.n_samples << "\t" << a.n_regions << "\t" << (a.done ? 1 : 0) << "\t"
      << long(std::ceil(a.fit_seconds / 60.0)) << "\n";
  }
  if (s.has_modes)
    t << "modes\t-\t" << s.modes_ranks << "\t1\t0\t0\t" << slurm_minutes("option --time-modes", s.time_modes)
      << "\t0\t0\t0\t0\t0\n";
  if (s.has_report)
    t << "report\t-\t1\t1\t0\t0\t" << slurm_minutes("option --time-report", s.time_report) << "\t0\t0\t0\t0\t0\n";
  return t.str();
}

SubmitPlan make_submit_plan(const SubmitSettings& s, const std::vector<PlannedAnimal>& animals) {
  if (!(s.mem_per_node_gb > 0)) fail("option --mem-per-node must be > 0 GB");
  if (s.cores_per_node < 1) fail("option --cores-per-node must be >= 1");
  if (s.max_nodes < 1) fail("option --max-nodes must be >= 1");
  if (!(s.node_gbs > 0)) fail("option --node-gbs must be > 0 (GB/s of one node's memory)");
  const double per_core = s.mem_per_node_gb * 1e9 / s.cores_per_node;
  const int max_ranks = s.max_ranks_per_animal > 0 ? s.max_ranks_per_animal : s.cores_per_node * s.max_nodes;
  SubmitPlan plan;
  std::map<int, FitArray> arrays;
  for (PlannedAnimal a : animals) {
    const int n_p = s.region_prior ? std::max(1, a.n_regions) : 1;
    auto bytes = [&](int ranks) {
      if (!s.fit_params) return fit_peak_bytes_per_rank(a.n_units, a.n_samples, s.dt_factor, ranks, n_p);
      fit::Params fp = *s.fit_params;
      fp.dt_factor = s.dt_factor;
      fit::FitSizes sz;
      sz.n_units = a.n_units;
      sz.n_samples = a.n_samples;
      sz.n_regions = std::max(1, a.n_regions);
      sz.ranks = ranks;
      return kBaselineBytes + fit::plan_fit_memory(sz, fp).peak;
    };
    int p = s.ranks_per_animal;
    if (p <= 0) {
      p = 1;
      while (p < max_ranks && kHeadroom * bytes(p) > per_core) ++p;
    }
    a.ranks = p;
    a.bytes_per_rank = bytes(p);
    a.fit_seconds = estimate_fit_seconds(s, a);
    if (kHeadroom * a.bytes_per_rank > per_core)
      fail("animal ", a.id, " (", a.n_units, " units) needs ", a.bytes_per_rank / 1e9, " GB per rank even at ", p,
           " ranks, more than a core's share of a node (", per_core / 1e9,
           " GB); raise --max-nodes or --mem-per-node");
    if (!a.done) {
      FitArray& arr = arrays[p];
      arr.ranks = p;
      arr.nodes = (p + s.cores_per_node - 1) / s.cores_per_node;
      arr.mem_per_rank_mb = std::max(arr.mem_per_rank_mb, kHeadroom * a.bytes_per_rank / 1e6);
      arr.animals.push_back(a.id);
    }
    plan.animals.push_back(a);
  }
  for (auto& [p, arr] : arrays) plan.arrays.push_back(arr);
  plan.run_modes = s.has_modes;
  plan.run_report = s.has_report;
  return plan;
}

std::vector<BatchScript> render_scripts(const SubmitSettings& s, const SubmitPlan& plan) {
  std::vector<BatchScript> out;
  const std::string logs = s.script_dir + "/logs";
  for (auto& arr : plan.arrays) {
    std::ostringstream t;
    const std::string tag = "fit-p" + std::to_string(arr.ranks);
    t << header(s, "fit", s.time_fit, arr.ranks, arr.nodes, arr.mem_per_rank_mb)
      << "#SBATCH --array=0-" << arr.animals.size() - 1;
    if (s.array_limit > 0) t << "%" << s.array_limit;
    t << "\n"
      << "#SBATCH --signal=TERM@" << s.signal_lead_s << "   # the fit checkpoints and exits before the limit\n"
      << "#SBATCH --requeue                # preempted tasks come back and resume\n"
      << "#SBATCH --open-mode=append\n"
      << "#SBATCH --output=" << logs << "/" << tag << "-%A_%a.out\n"
      << kEnv << "animals=(";
    for (auto& id : arr.animals) t << " " << quote(id);
    t << " )\n"
      << "animal=${animals[$SLURM_ARRAY_TASK_ID]}\n"
      << "echo \"cohortnet fit: animal $animal, task ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}, restart ${SLURM_RESTART_COUNT:-0}\"\n"
      << s.launcher << " " << quote(s.binary) << " fit --config " << quote(s.config) << " --animals \"$animal\" --resume\n"
      << "rc=$?\n"
      << "if [ $rc -eq " << fit::kExitInterrupted << " ]; then\n"
      << "  # Stopped by SIGTERM (time limit) with a checkpoint written: queue this task again.\n"
      << "  scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\" && exit 0\n"
      << "fi\n"
      << "exit $rc\n";
    out.push_back({"fit", s.script_dir + "/" + tag + ".sbatch", t.str()});
  }
  if (plan.run_modes) {
    std::ostringstream t;
    t << header(s, "modes", s.time_modes, s.modes_ranks, 0, 0) << "#SBATCH --output=" << logs << "/modes-%j.out\n"
      << kEnv << s.launcher << " " << quote(s.binary) << " modes --config " << quote(s.config) << "\n";
    out.push_back({"modes", s.script_dir + "/modes.sbatch", t.str()});
  }
  if (plan.run_report) {
    std::ostringstream t;
    t << header(s, "report", s.time_report, 1, 1, 0) << "#SBATCH --output=" << logs << "/report-%j.out\n"
      << kEnv << s.launcher << " " << quote(s.binary) << " report --config " << quote(s.config) << "\n";
    out.push_back({"report", s.script_dir + "/report.sbatch", t.str()});
  }
  return out;
}

int submit_study(const std::vector<Command>& stages, const po::variables_map& vm, MPI_Comm comm);

Command make_submit_command(const std::vector<Command>& stages) {
  Command c;
  c.name = "submit";
  c.summary = "submit the study to Slurm as a dependency chain (fit arrays -> modes -> report)";
  c.add_options = [](po::options_description& d) {
    SubmitSettings def;
    d.add_options()("dry-run", po::bool_switch(), "print the plan and the batch scripts; submit nothing")(
        "plan", po::bool_switch(),
        "print only the plan, as tab-separated lines for programs (per animal: ranks, memory, time; "
        "workflows/Snakefile reads it); submit nothing")(
        "mem-per-node", po::value<double>()->default_value(0), "usable memory of one node, GB [required]")(
        "cores-per-node", po::value<int>()->default_value(0), "cores (MPI ranks) per node [required]")(
        "max-nodes", po::value<int>()->default_value(1), "most nodes one animal's fit may use")(
        "ranks-per-animal", po::value<int>()->default_value(0), "fix the ranks of every fit (0: from memory)")(
        "partition", po::value<std::string>()->default_value(""), "Slurm partition")(
        "account", po::value<std::string>()->default_value(""), "Slurm account")(
        "qos", po::value<std::string>()->default_value(""), "Slurm QOS")(
        "time-fit", po::value<std::string>()->default_value(def.time_fit), "time limit of one fit task")(
        "time-modes", po::value<std::string>()->default_value(def.time_modes), "time limit of the modes job")(
        "time-report", po::value<std::string>()->default_value(def.time_report), "time limit of the report job")(
        "node-gbs", po::value<double>()->default_value(def.node_gbs),
        "memory bandwidth of one node (GB/s, e.g. from STREAM): the fits' time estimate, which is compared with "
        "--time-fit")(
        "signal-lead", po::value<int>()->default_value(def.signal_lead_s),
        "seconds before the time limit that Slurm sends SIGTERM (the fit checkpoints then)")(
        "modes-ranks", po::value<int>()->default_value(def.modes_ranks), "MPI ranks of the modes job")(
        "array-limit", po::value<int>()->default_value(0), "at most this many fit tasks at once (0: no limit)")(
        "launcher", po::value<std::string>()->default_value(def.launcher), "how jobs start MPI programs")(
        "binary", po::value<std::string>()->default_value(""), "cohortnet executable for the jobs (default: this one)");
  };
  c.run = [stages](const po::variables_map& vm, MPI_Comm comm) {
    // Every rank plans the same study; an error is agreed (its message and exit 1, no MPI_Abort).
    int rc = 0;
    collective(comm, [&] { rc = submit_study(stages, vm, comm); });
    return rc;
  };
  return c;
}

int submit_study(const std::vector<Command>& stages, const po::variables_map& vm, MPI_Comm comm) {
  {
    if (!vm.count("config")) fail("cohortnet submit needs --config FILE (the study's config)");
    SubmitSettings s;
    s.config = fs::absolute(vm["config"].as<std::string>()).lexically_normal().string();
    s.binary = vm["binary"].as<std::string>();
    if (s.binary.empty()) s.binary = fs::read_symlink("/proc/self/exe").string();
    s.mem_per_node_gb = vm["mem-per-node"].as<double>();
    s.cores_per_node = vm["cores-per-node"].as<int>();
    if (!(s.mem_per_node_gb > 0)) fail("option --mem-per-node is required (GB of one node), e.g. in [submit]");
    if (s.cores_per_node < 1) fail("option --cores-per-node is required (cores of one node), e.g. in [submit]");
    s.max_nodes = vm["max-nodes"].as<int>();
    s.ranks_per_animal = vm["ranks-per-animal"].as<int>();
    s.partition = vm["partition"].as<std::string>();
    s.account = vm["account"].as<std::string>();
    s.qos = vm["qos"].as<std::string>();
    s.time_fit = vm["time-fit"].as<std::string>();
    s.time_modes = vm["time-modes"].as<std::string>();
    s.time_report = vm["time-report"].as<std::string>();
    s.signal_lead_s = vm["signal-lead"].as<int>();
    s.node_gbs = vm["node-gbs"].as<double>();
    s.modes_ranks = vm["modes-ranks"].as<int>();
    s.array_limit = vm["array-limit"].as<int>();
    s.launcher = vm["launcher"].as<std::string>();
    if (s.modes_ranks < 1) fail("option --modes-ranks must be >= 1");
    if (s.signal_lead_s < 0) fail("option --signal-lead must be >= 0 seconds");

    // The other stages' settings come from their own sections of the same file.
    auto stage_vm = [&](const std::string& name, po::variables_map& out) {
      for (auto& st : stages)
        if (st.name == name) {
          parse_command(st, {"--config", s.config}, out, MPI_COMM_SELF);
          return true;
        }
      return false;
    };
    std::string cfg_text;
    {
      std::ifstream in(s.config);
      std::stringstream ss;
      ss << in.rdbuf();
      cfg_text = ss.str();
    }
    if (cfg_text.find("[fit]") == std::string::npos) fail("config file ", s.config, ": has no [fit] section");
    po::variables_map fit_vm;
    stage_vm("fit", fit_vm);
    if (!fit_vm.count("cohort") || !fit_vm.count("out"))
      fail("config file ", s.config, ": [fit] needs cohort and out");
    s.cohort_dir = fs::absolute(fit_vm["cohort"].as<std::string>()).lexically_normal().string();
    s.fit_out = fs::absolute(fit_vm["out"].as<std::string>()).lexically_normal().string();
    {
      // --dt-factor auto: the data decide per animal (1-3 on the simulated and real cohorts so far);
      // 5 keeps the memory estimate on the safe side.
      const std::string df = fit_vm["dt-factor"].as<std::string>();
      s.dt_factor = df == "auto" ? 5 : std::max(1, std::atoi(df.c_str()));
    }
    s.region_prior = fit_vm.count("prior") && fit_vm["prior"].as<std::string>() == "region" &&
                     !(fit_vm.count("reference-compat") && fit_vm["reference-compat"].as<bool>());
    s.has_modes = cfg_text.find("[modes]") != std::string::npos;
    s.has_report = cfg_text.find("[report]") != std::string::npos &&
                   std::any_of(stages.begin(), stages.end(), [](const Command& st) { return st.name == "report"; });
    if (s.has_modes) {
      po::variables_map mvm;
      stage_vm("modes", mvm);
      if (mvm.count("out")) s.modes_out = fs::absolute(mvm["out"].as<std::string>()).lexically_normal().string();
    }
    s.script_dir = s.fit_out + "/slurm";
    for (auto& [what, v] : std::vector<std::pair<std::string, std::string>>{
             {"config path", s.config}, {"binary path", s.binary}, {"[fit] out", s.fit_out},
             {"option --partition", s.partition.empty() ? "x" : s.partition},
             {"option --account", s.account.empty() ? "x" : s.account}, {"option --qos", s.qos.empty() ? "x" : s.qos},
             {"option --time-fit", s.time_fit}, {"option --time-modes", s.time_modes},
             {"option --time-report", s.time_report}})
      check_shell_safe(what, v);

    const fit::CohortOptions fit_opts = fit::cohort_options_from(fit_vm);
    s.fit_params = fit_opts.params;
    Cohort cohort = read_cohort(s.cohort_dir, comm);
    std::vector<PlannedAnimal> animals;
    std::vector<std::string> why;  // per animal: its state, as fit --resume would judge it
    for (size_t i = 0; i < cohort.animals.size(); ++i) {
      const CohortAnimal& a = cohort.animals[i];
      PlannedAnimal p;
      p.id = a.animal_id;
      check_shell_safe("animal id", p.id);
      p.n_units = a.n_units;
      p.n_samples = a.n_samples;
      p.n_regions = a.n_regions;
      why.push_back(a.problem.empty() ? fit_state(s.fit_out + "/fits", a, fit::animal_fingerprint(fit_opts.params, a, i), p.done)
                                      : "unreadable, will fail: " + a.problem);
      animals.push_back(p);
    }
    SubmitPlan plan = make_submit_plan(s, animals);
    // Modes and report are redone whenever a fit is (their inputs changed); else skipped if present.
    const bool fits_pending = !plan.arrays.empty();
    if (!fits_pending && plan.run_modes && !s.modes_out.empty() && fs::exists(s.modes_out + "/modes.h5"))
      plan.run_modes = false;
    if (!fits_pending && !plan.run_modes && plan.run_report && fs::exists(s.fit_out + "/report/index.html"))
      plan.run_report = false;

    if (vm["plan"].as<bool>()) {  // for programs: the whole plan (finished animals too), nothing else on stdout
      std::string tsv, err;
      try {
        tsv = plan_tsv(s, plan);
      } catch (const std::exception& e) {
        err = e.what();
      }
      agree(comm, err);
      if (comm_rank(comm) == 0) {
        std::fputs(tsv.c_str(), stdout);
        std::fflush(stdout);
      }
      return 0;
    }
    // The plan, for people.
    std::ostringstream os;
    os << "study " << s.config << "\ncohort " << s.cohort_dir << " (" << animals.size() << " animals)\n"
       << "node: " << s.mem_per_node_gb << " GB, " << s.cores_per_node << " cores; estimate = peak resident memory per rank\n"
       << "estimated fit time at " << s.node_gbs << " GB/s per node (--node-gbs; the fit is memory-bound)\n";
    if (s.fit_params && s.fit_params->gains_used())
      // Not modelled (its cost is min(N, Ts)^3 factorisations per target region and TAO iteration,
      // compute-bound, and its iteration count is data-dependent): said, not hidden.
      os << "NOT in the fit time: the gated start (--gains), measured 14-35 s per animal at N 252 on 2 ranks (the "
            "demo), 50-100 s at N 1,200-2,400 with 800 training samples, ~200 s per fit with latent:6 at N 600; it "
            "grows as min(N, training samples)^3 per target region (docs/currents.md, \"Cost\"): time one animal "
            "before sizing --time-fit\n";
    os << "animal                units  samples  ranks  GB/rank  fit h  status\n";
    const double limit_s = double(slurm_minutes("option --time-fit", s.time_fit)) * 60.0 - double(s.signal_lead_s);
    std::ostringstream over;
    for (auto& a : plan.animals) {
      char line[256];
      std::snprintf(line, sizeof line, "%-20s %6lld %8lld %6d %8.3f %6.2f  %s\n", a.id.c_str(), (long long)a.n_units,
                    (long long)a.n_samples, a.ranks, a.bytes_per_rank / 1e9, a.fit_seconds / 3600.0,
                    why[size_t(&a - plan.animals.data())].c_str());
      os << line;
      // Not an error: the task checkpoints at SIGTERM and requeues itself, but each requeue waits in the queue.
      if (!a.done && a.fit_seconds > limit_s)
        over << "\n  " << a.id << ": about " << std::ceil(a.fit_seconds / 360.0) / 10.0 << " h, "
             << long(std::ceil(a.fit_seconds / std::max(limit_s, 1.0))) << " tasks of --time-fit " << s.time_fit;
    }
    if (!over.str().empty())
      log::warn(comm, "fits estimated to take longer than --time-fit (less --signal-lead); each task checkpoints "
                      "and requeues itself, but waits in the queue again: raise --time-fit, --max-nodes or "
                      "--ranks-per-animal",
                over.str());
    auto scripts = render_scripts(s, plan);
    os << "jobs: ";
    for (auto& arr : plan.arrays) os << "fit array of " << arr.animals.size() << " tasks x " << arr.ranks << " ranks; ";
    if (plan.run_modes) os << "modes (afterany fits; modes checks the animals' status files); ";
    if (plan.run_report) os << "report (afterany modes); ";
    if (scripts.empty()) os << "none: the study is complete";
    os << "\nscripts and logs: " << s.script_dir << "\n";
    log::info(comm, os.str());

    if (vm["dry-run"].as<bool>()) {
      for (auto& b : scripts) log::info(comm, "---- ", b.path, " ----\n", b.text);
      return 0;
    }
    std::string err;
    std::vector<std::string> fit_ids, prev;
    std::string modes_id, report_id;
    if (comm_rank(comm) == 0) {
      try {
        fs::create_directories(s.script_dir + "/logs");
        for (auto& b : scripts) {
          std::ofstream(b.path) << b.text;
          fs::permissions(b.path, fs::perms::owner_exec, fs::perm_options::add);
        }
        for (auto& b : scripts) {
          if (b.stage == "fit") {
            fit_ids.push_back(sbatch(b.path, {}));
          } else if (b.stage == "modes") {
            modes_id = sbatch(b.path, fit_ids);
          } else if (b.stage == "report") {
            report_id = sbatch(b.path, modes_id.empty() ? fit_ids : std::vector<std::string>{modes_id});
          }
        }
        std::ofstream ids(s.script_dir + "/jobs.txt");
        for (auto& id : fit_ids) ids << "fit " << id << "\n";
        if (!modes_id.empty()) ids << "modes " << modes_id << "\n";
        if (!report_id.empty()) ids << "report " << report_id << "\n";
      } catch (const std::exception& e) {
        err = e.what();
      }
    }
    agree(comm, err);
    std::ostringstream done;
    for (auto& id : fit_ids) done << "submitted fit " << id << "\n";
    if (!modes_id.empty()) done << "submitted modes " << modes_id << "\n";
    if (!report_id.empty()) done << "submitted report " << report_id << "\n";
    done << "results: fits in " << s.fit_out << "/fits";
    if (!s.modes_out.empty()) done << ", modes in " << s.modes_out;
    done << "; job ids in " << s.script_dir << "/jobs.txt";
    log::info(comm, done.str());
    return 0;
  }
}

}  // namespace cohortnet
