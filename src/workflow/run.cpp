#include "workflow/run.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>

#include "core/bookkeeping.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/parallel.hpp"
#include "core/text.hpp"

namespace cohortnet {

namespace {

// The pipeline's order. A stage runs when the config file has its section.
const std::vector<std::string> kPipeline = {"simulate", "ingest", "fit", "modes", "report"};

std::set<std::string> config_sections(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("config file ", path, ": cannot be read");
  std::set<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    auto b = line.find_first_not_of(" \t");
    if (b == std::string::npos || line[b] != '[') continue;
    auto e = line.find(']', b);
    if (e != std::string::npos) out.insert(line.substr(b + 1, e - b - 1));
  }
  return out;
}

// SIGTERM between or inside stages that have no checkpoint of their own: every output is written
// by rename, so nothing half-written is left; exit 75 (as the fit does), and a rerun redoes the
// stage. The fit and modes stages install their own handlers while they run.
extern "C" void cohortnet_run_on_sigterm(int) { ::_exit(75); }

}  // namespace

Command make_run_command(const std::vector<Command>& stages) {
  Command c;
  c.name = "run";
  c.summary = "the whole study on this machine (simulate or ingest, fit, modes, report) from one config";
  c.add_options = [](po::options_description& d) {
    d.add_options()("stages", po::value<std::string>()->default_value(""),
                    "comma-separated stages to run (default: every stage with a [section] in the config)");
  };
  c.run = [stages](const po::variables_map& vm, MPI_Comm comm) {
    std::string cfg;
    std::set<std::string> present, wanted;
    collective(comm, [&] {  // agreed: the message and exit 1, no MPI_Abort
      if (!vm.count("config")) fail("cohortnet run needs --config FILE (see configs/demo.ini)");
      cfg = vm["config"].as<std::string>();
      present = config_sections(cfg);
      for (const std::string& s : split_list(vm["stages"].as<std::string>())) {
        bool known = false;
        for (auto& p : kPipeline) known |= p == s;
        if (!known) fail("option --stages: unknown stage '", s, "' (stages: simulate, ingest, fit, modes, report)");
        wanted.insert(s);
      }
    });
    signal(SIGTERM, cohortnet_run_on_sigterm);
    const auto t0 = std::chrono::steady_clock::now();
    int ran = 0;
    bool truth_failed = false;
    for (const auto& name : kPipeline) {
      if (wanted.empty() ? !present.count(name) : !wanted.count(name)) continue;
      const Command* stage = nullptr;
      for (auto& s : stages)
        if (s.name == name) stage = &s;
      if (!stage) {
        log::warn(comm, "stage '", name, "' is not available in this build; skipped");
        continue;
      }
      log::info(comm, "== ", name, " ==");
      po::variables_map svm;
      bool go = false;
      collective(comm, [&] { go = parse_command(*stage, {"--config", cfg}, svm, comm); });
      if (!go) continue;
      int status = stage->run(svm, comm);
      ++ran;
      if (status == book::kExitTruthFailed) {  // written, but wrong on the truth: the report must show it
        log::warn(comm, "run: stage '", name, "' failed its ground-truth check (exit ", status,
                  "); the later stages run so the report shows it, and run exits ", status);
        truth_failed = true;
        continue;
      }
      if (status != 0) {
        log::info(comm, "run: stage '", name, "' ended with status ", status, "; later stages not run");
        return status;
      }
    }
    collective(comm, [&] {
      if (ran == 0) fail("config file ", cfg, ": has none of the sections [simulate], [ingest], [fit], [modes], [report]");
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log::info(comm, "run: ", ran, " stages done in ", log::duration(s));
    if (truth_failed) {
      log::warn(comm, "run: exit ", book::kExitTruthFailed, ": the study's modes do not recover the simulated truth");
      return book::kExitTruthFailed;
    }
    return 0;
  };
  return c;
}

}  // namespace cohortnet
