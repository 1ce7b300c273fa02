#include "workflow/submit.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/parallel.hpp"
#include "fit/cohort.hpp"
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

std::string sbatch(const std::string& script, const std::vector<std::string>& deps) {
  std::string cmd = "sbatch --parsable";
  if (!deps.empty()) {
    cmd += " --kill-on-invalid-dep=yes --dependency=afterok";
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

SubmitPlan make_submit_plan(const SubmitSettings& s, const std::vector<PlannedAnimal>& animals) {
  if (!(s.mem_per_node_gb > 0)) fail("option --mem-per-node must be > 0 GB");
  if (s.cores_per_node < 1) fail("option --cores-per-node must be >= 1");
  if (s.max_nodes < 1) fail("option --max-nodes must be >= 1");
  const double per_core = s.mem_per_node_gb * 1e9 / s.cores_per_node;
  const int max_ranks = s.max_ranks_per_animal > 0 ? s.max_ranks_per_animal : s.cores_per_node * s.max_nodes;
  SubmitPlan plan;
  std::map<int, FitArray> arrays;
  for (PlannedAnimal a : animals) {
    const int n_p = s.region_prior ? std::max(1, a.n_regions) : 1;
    int p = s.ranks_per_animal;
    if (p <= 0) {
      p = 1;
      while (p < max_ranks && kHeadroom * fit_peak_bytes_per_rank(a.n_units, a.n_samples, s.dt_factor, p, n_p) > per_core) ++p;
    }
    a.ranks = p;
    a.bytes_per_rank = fit_peak_bytes_per_rank(a.n_units, a.n_samples, s.dt_factor, p, n_p);
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

Command make_submit_command(const std::vector<Command>& stages) {
  Command c;
  c.name = "submit";
  c.summary = "submit the study to Slurm as a dependency chain (fit arrays -> modes -> report)";
  c.add_options = [](po::options_description& d) {
    SubmitSettings def;
    d.add_options()("dry-run", po::bool_switch(), "print the plan and the batch scripts; submit nothing")(
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
        "signal-lead", po::value<int>()->default_value(def.signal_lead_s),
        "seconds before the time limit that Slurm sends SIGTERM (the fit checkpoints then)")(
        "modes-ranks", po::value<int>()->default_value(def.modes_ranks), "MPI ranks of the modes job")(
        "array-limit", po::value<int>()->default_value(0), "at most this many fit tasks at once (0: no limit)")(
        "launcher", po::value<std::string>()->default_value(def.launcher), "how jobs start MPI programs")(
        "binary", po::value<std::string>()->default_value(""), "cohortnet executable for the jobs (default: this one)");
  };
  c.run = [stages](const po::variables_map& vm, MPI_Comm comm) {
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

    Cohort cohort = read_cohort(s.cohort_dir, comm);
    std::vector<PlannedAnimal> animals;
    for (auto& a : cohort.animals) {
      PlannedAnimal p;
      p.id = a.animal_id;
      check_shell_safe("animal id", p.id);
      p.n_units = a.n_units;
      p.n_samples = a.n_samples;
      p.n_regions = a.n_regions;
      p.done = fs::exists(s.fit_out + "/fits/" + p.id + ".h5");
      animals.push_back(p);
    }
    SubmitPlan plan = make_submit_plan(s, animals);
    // Modes and report are redone whenever a fit is (their inputs changed); else skipped if present.
    const bool fits_pending = !plan.arrays.empty();
    if (!fits_pending && plan.run_modes && !s.modes_out.empty() && fs::exists(s.modes_out + "/modes.h5"))
      plan.run_modes = false;
    if (!fits_pending && !plan.run_modes && plan.run_report && fs::exists(s.fit_out + "/report/index.html"))
      plan.run_report = false;

    // The plan, for people.
    std::ostringstream os;
    os << "study " << s.config << "\ncohort " << s.cohort_dir << " (" << animals.size() << " animals)\n"
       << "node: " << s.mem_per_node_gb << " GB, " << s.cores_per_node << " cores; estimate = peak resident memory per rank\n"
       << "animal                units  samples  ranks  GB/rank  status\n";
    for (auto& a : plan.animals) {
      char line[256];
      std::snprintf(line, sizeof line, "%-20s %6lld %8lld %6d %8.3f  %s\n", a.id.c_str(), (long long)a.n_units,
                    (long long)a.n_samples, a.ranks, a.bytes_per_rank / 1e9, a.done ? "done" : "to fit");
      os << line;
    }
    auto scripts = render_scripts(s, plan);
    os << "jobs: ";
    for (auto& arr : plan.arrays) os << "fit array of " << arr.animals.size() << " tasks x " << arr.ranks << " ranks; ";
    if (plan.run_modes) os << "modes (afterok fits); ";
    if (plan.run_report) os << "report (afterok modes); ";
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
  };
  return c;
}

}  // namespace cohortnet
