#pragma once
// Subcommands and their options. Each stage declares a Command (name, options, run); options come
// from the command line and from an INI config file (`--config FILE`, one [section] per stage),
// command line first. Unknown --options and unknown config keys are errors that name them;
// PETSc's single-dash options (-log_view, -info ...) pass through to PETSc; those it does not use
// are errors (check_petsc_options).
#include <mpi.h>

#include <boost/program_options.hpp>
#include <functional>
#include <string>
#include <vector>

namespace cohortnet {

namespace po = boost::program_options;

struct Command {
  std::string name;     // "simulate", "fit", ...
  std::string summary;  // one line for `cohortnet --help`
  std::function<void(po::options_description&)> add_options;
  std::function<int(const po::variables_map&, MPI_Comm)> run;
};

// Config-file sections other than command names that are accepted (and ignored by a command).
void register_config_section(const std::string& name);

// Parses args (argv after the subcommand name) for cmd. Returns false if --help was shown.
// Throws Error for unknown options, bad values, unreadable config files.
bool parse_command(const Command& cmd, const std::vector<std::string>& args, po::variables_map& vm,
                   MPI_Comm comm);

// Exit code of a usage error: unknown option, key or section, a stray argument, an unreadable
// config file (docs/fit.md "Exit codes").
inline constexpr int kExitUsage = 2;

// Single-dash options that PETSc did not take at start-up (and does not read later: logging,
// malloc, options_*) are typing errors: throws Error naming the first, with the --option it
// probably meant ("-runs-train" -> "--runs-train"). args: the command line after the subcommand
// (PETSc also records --options; only single-dash ones are looked at). Call after PetscInitialize.
void check_petsc_options(const Command& cmd, const std::vector<std::string>& args);

// The resolved options as INI text ("[fit]\nruns = 20\n..."), recorded in every output.
std::string config_record(const std::string& section, const po::variables_map& vm);

// Help text for a command's options.
std::string command_help(const Command& cmd);

}  // namespace cohortnet
