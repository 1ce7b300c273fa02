// cohortnet: fit data-constrained multi-region RNNs to every animal of a cohort, decompose their
// currents, and find the compositional modes the cohort shares. `cohortnet --help` lists the
// subcommands; each subcommand's --help lists its options.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/log.hpp"
#include "core/options.hpp"
#include "core/parallel.hpp"
#include "workflow/commands.hpp"

using namespace cohortnet;

static void print_usage(const std::vector<Command>& cmds) {
  std::string s =
      "cohortnet: multi-region RNN fits (CURBD) of every animal of a cohort, their region-pair\n"
      "currents, and the compositional modes the cohort shares.\n\n"
      "usage: mpirun -n P cohortnet SUBCOMMAND [--config FILE] [--option value ...] [-petsc_option]\n\n"
      "subcommands:\n";
  for (auto& c : cmds) {
    s += "  " + c.name + std::string(c.name.size() < 12 ? 12 - c.name.size() : 1, ' ') + c.summary + "\n";
  }
  s += "\n'cohortnet SUBCOMMAND --help' for its options. Docs: README.md, docs/.\n";
  std::fputs(s.c_str(), stdout);
}

int main(int argc, char** argv) {
  // Subcommand and options first (before PETSc sees argv; PETSc ignores what it does not know).
  std::vector<std::string> args(argv + 1, argv + argc);
  Environment env(&argc, &argv);
  h5::quiet_errors();
  const std::vector<Command> cmds = all_commands();
  for (auto& c : cmds) register_config_section(c.name);
  register_config_section("study");
  const int rank = comm_rank(MPI_COMM_WORLD);

  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    if (rank == 0) print_usage(cmds);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    if (rank == 0) std::printf("cohortnet %s\n", COHORTNET_VERSION);
    return 0;
  }
  const Command* cmd = nullptr;
  for (auto& c : cmds)
    if (c.name == args[0]) cmd = &c;
  if (!cmd) {
    if (rank == 0) std::fprintf(stderr, "cohortnet: unknown subcommand '%s' (see cohortnet --help)\n", args[0].c_str());
    return 2;
  }
  args.erase(args.begin());
  int status = 0;
  bool parsed = false;  // errors before this are usage errors (exit kExitUsage)
  try {
    po::variables_map vm;
    bool go = false;
    collective(MPI_COMM_WORLD, [&] {
      go = parse_command(*cmd, args, vm, MPI_COMM_WORLD);
      if (go) check_petsc_options(*cmd, args);
    });
    parsed = true;
    if (go) status = cmd->run(vm, MPI_COMM_WORLD);
  } catch (const AgreedError& e) {
    // Every rank has the same error: rank 0 reports it and all exit together.
    if (rank == 0) std::fprintf(stderr, "cohortnet %s: error: %s\n", cmd->name.c_str(), e.what());
    status = parsed ? 1 : kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cohortnet %s: error%s: %s\n", cmd->name.c_str(),
                 comm_size(MPI_COMM_WORLD) > 1 ? cat(" on rank ", rank).c_str() : "", e.what());
    std::fflush(stderr);
    // Alone, this process can just exit; with others, they may be waiting in a collective.
    if (comm_size(MPI_COMM_WORLD) == 1) return 1;
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return status;
}
