#pragma once
// Subcommands and their options. Each stage declares a Command (name, options, run); options come
// from the command line and from an INI config file (`--config FILE`, one [section] per stage),
// command line first. Unknown --options and unknown config keys are errors that name them;
// PETSc's single-dash options (-log_view, -info ...) pass through to PETSc.
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

// The resolved options as INI text ("[fit]\nruns = 20\n..."), recorded in every output.
std::string config_record(const std::string& section, const po::variables_map& vm);

// Help text for a command's options.
std::string command_help(const Command& cmd);

}  // namespace cohortnet
