// `cohortnet report`: resolves the folders, checks that the interpreter, the script and the results
// exist (errors name them), runs workflows/report.py on rank 0 and agrees its exit status.
#include "workflow/report.hpp"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/parallel.hpp"

extern char** environ;

namespace cohortnet {

namespace fs = std::filesystem;

namespace {

// `key = value` of [section] in an INI file ("" if absent): under `run --config`, the report
// takes the results and cohort folders from the [fit] / [modes] sections of the same study file.
std::string ini_value(const std::string& path, const std::string& section, const std::string& key) {
  std::ifstream in(path);
  std::string line, current, found;
  auto trim = [](std::string s) {
    const auto b = s.find_first_not_of(" \t\r");
    const auto e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  while (std::getline(in, line)) {
    line = trim(line.substr(0, line.find_first_of("#;")));
    if (line.empty()) continue;
    if (line.front() == '[' && line.back() == ']') {
      current = trim(line.substr(1, line.size() - 2));
    } else if (current == section) {
      const auto eq = line.find('=');
      if (eq != std::string::npos && trim(line.substr(0, eq)) == key) found = trim(line.substr(eq + 1));
    }
  }
  return found;
}

std::string option(const po::variables_map& vm, const char* name) {
  return vm.count(name) ? vm[name].as<std::string>() : std::string();
}

// Runs argv[0] with argv (no shell: paths are passed as they are); returns its exit status, or
// an error message in `err`.
int run_program(const std::vector<std::string>& args, std::string& err) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
  if (rc != 0) {
    err = cat("option --python: cannot start ", args[0], ": ", std::strerror(rc));
    return -1;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      err = cat("waiting for ", args[1], ": ", std::strerror(errno));
      return -1;
    }
  }
  if (WIFSIGNALED(status)) {
    err = cat("report script ", args[1], " was killed by signal ", WTERMSIG(status));
    return -1;
  }
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  if (code != 0) err = cat("report script ", args[1], " exited with status ", code, " (its message is above)");
  return code;
}

}  // namespace

std::string default_report_script() {
  std::vector<fs::path> candidates;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back(exe.parent_path().parent_path() / "share" / "cohortnet" / "workflows" / "report.py");
#ifdef COHORTNET_SOURCE_DIR
  candidates.push_back(fs::path(COHORTNET_SOURCE_DIR) / "workflows" / "report.py");
#endif
  for (auto& p : candidates)
    if (fs::is_regular_file(p, ec)) return p.string();
  return "";
}

Command make_report_command() {
  Command c;
  c.name = "report";
  c.summary = "HTML report with figures of a study's fits and modes (RESULTS/report/index.html)";
  c.add_options = [](po::options_description& d) {
    d.add_options()("results", po::value<std::string>(),
                    "the study's results folder (fits/, modes.h5) [required; under --config: default [fit] out]")(
        "cohort", po::value<std::string>(),
        "cohort folder (animal files, truth/ of a simulated cohort); default: found from the fits")(
        "modes", po::value<std::string>(), "modes.h5 (default RESULTS/modes.h5; under --config: [modes] out)")(
        "out", po::value<std::string>(), "output folder (default RESULTS/report)")(
        "python", po::value<std::string>()->default_value("/usr/bin/python3"),
        "Python 3 with h5py, numpy and matplotlib")("script", po::value<std::string>(),
                                                     "report script (default: the installed or source "
                                                     "workflows/report.py)");
  };
  c.run = [](const po::variables_map& vm, MPI_Comm comm) {
    std::string results, cohort, modes, out, python, script;
    collective(comm, [&] {  // every rank resolves the same options; an error is agreed, not an abort
      results = option(vm, "results");
      cohort = option(vm, "cohort");
      modes = option(vm, "modes");
      const std::string config = option(vm, "config");
      if (!config.empty()) {  // one study file: take what the other stages' sections say
        if (results.empty()) results = ini_value(config, "fit", "out");
        if (cohort.empty()) cohort = ini_value(config, "fit", "cohort");
        if (modes.empty()) {
          const std::string mo = ini_value(config, "modes", "out");
          if (!mo.empty()) modes = (fs::path(mo) / "modes.h5").string();
        }
      }
      if (results.empty()) fail("option --results is required: the study's results folder (fits/, modes.h5)");
      out = option(vm, "out");
      if (out.empty()) out = (fs::path(results) / "report").string();
      python = vm["python"].as<std::string>();
      script = option(vm, "script");
    });

    std::string err;
    int status = 0;
    if (comm_rank(comm) == 0) {
      std::error_code ec;
      if (script.empty()) {
        script = default_report_script();
        if (script.empty())
          err = "option --script: workflows/report.py not found next to the executable (../share/cohortnet/) "
                "nor in the source tree; give --script FILE";
      } else if (!fs::is_regular_file(script, ec)) {
        err = cat("option --script: file ", script, " does not exist");
      }
      if (err.empty() && ::access(python.c_str(), X_OK) != 0)
        err = cat("option --python: ", python, " is not an executable file (it needs h5py, numpy, matplotlib)");
      if (err.empty() && !fs::is_directory(results, ec))
        err = cat("option --results: folder ", results, " does not exist");
      if (err.empty() && !cohort.empty() && !fs::is_directory(cohort, ec))
        err = cat("option --cohort: folder ", cohort, " does not exist");
      if (err.empty() && !fs::is_directory(fs::path(results) / "fits", ec) &&
          !fs::exists(modes.empty() ? fs::path(results) / "modes.h5" : fs::path(modes), ec))
        err = cat("option --results: ", results, " has neither fits/ nor modes.h5 (",
                  modes.empty() ? (fs::path(results) / "modes.h5").string() : modes,
                  "); run cohortnet fit and cohortnet modes first");
    }
    agree(comm, err);

    if (comm_rank(comm) == 0) {
      std::vector<std::string> args = {python, script, "--results", results, "--out", out};
      if (!cohort.empty()) args.insert(args.end(), {"--cohort", cohort});
      if (!modes.empty()) args.insert(args.end(), {"--modes", modes});
      log::info(comm, "report: ", python, " ", script, " -> ", out);
      status = run_program(args, err);
    }
    // The other ranks wait without spinning a core (the script may take a minute on big studies).
    MPI_Request req;
    MPI_Ibarrier(comm, &req);
    for (int done = 0;;) {
      MPI_Test(&req, &done, MPI_STATUS_IGNORE);
      if (done) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    agree(comm, err);
    return status;
  };
  return c;
}

}  // namespace cohortnet
