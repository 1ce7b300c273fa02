#include "workflow/commands.hpp"

#include "fit/command.hpp"
#include "ingest/command.hpp"
#include "modes/command.hpp"
#include "simulate/command.hpp"
#include "validate/command.hpp"
#include "workflow/report.hpp"
#include "workflow/run.hpp"
#include "workflow/submit.hpp"

namespace cohortnet {

std::vector<Command> all_commands() {
  std::vector<Command> stages = {
      make_simulate_command(),
      make_ingest_command(),
      make_fit_command(),
      make_modes_command(),
      make_report_command(),
      make_validate_command(),
  };
  // Commands that drive the stages above come last.
  std::vector<Command> all = stages;
  all.push_back(make_run_command(stages));
  all.push_back(make_submit_command(stages));
  return all;
}

}  // namespace cohortnet
