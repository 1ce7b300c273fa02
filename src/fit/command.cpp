#include "fit/command.hpp"

#include <sstream>

#include "core/error.hpp"
#include "core/parallel.hpp"
#include "core/text.hpp"
#include "fit/cohort.hpp"

namespace cohortnet {

namespace fit {

CohortOptions cohort_options_from(const po::variables_map& vm) {
  CohortOptions o;
  if (!vm.count("cohort")) fail("option --cohort is required (the cohort folder)");
  if (!vm.count("out")) fail("option --out is required (the results folder)");
  o.cohort_dir = vm["cohort"].as<std::string>();
  o.out_dir = vm["out"].as<std::string>();
  o.params = fit::read_fit_params(vm);  // the model's parameters: the table of src/fit/params.cpp
  if (vm.count("init")) o.init_file = vm["init"].as<std::string>();
  if (vm.count("animals")) {
    const std::string list = vm["animals"].as<std::string>();
    o.animals = split_list(list);
    if (o.animals.empty()) fail("option --animals: no animal id in '", list, "'");
  }
  o.ranks_per_animal = vm["ranks-per-animal"].as<int>();
  o.checkpoint_every = vm["checkpoint-every"].as<int>();
  o.resume = vm["resume"].as<bool>();
  o.per_unit_currents = vm["per-unit-currents"].as<bool>();
  o.config_text = config_record("fit", vm);
  return o;
}

}  // namespace fit

Command make_fit_command() {
  Command c;
  c.name = "fit";
  c.summary = "fit the multi-region RNN (CURBD) of every animal and decompose its currents";
  c.add_options = [](po::options_description& d) {
    d.add_options()
        ("cohort", po::value<std::string>(), "cohort folder (animal files, optional cohort.ini) [required]")
        ("out", po::value<std::string>(), "results folder; fits go to OUT/fits/<animal>.h5 [required]")
        ("animals", po::value<std::string>(),
         "fit only these animals (comma-separated ids; default all); e.g. one per Slurm array task")
        ("init", po::value<std::string>(), "HDF5 file with /J0 [N x N] and /inputWN [N x L] to use instead of "
                                           "drawing them (one-animal cohorts)")
        ("ranks-per-animal", po::value<int>()->default_value(0),
         "ranks that fit one animal together (0: automatic, the fewest whose memory holds the largest animal)")
        ("checkpoint-every", po::value<int>()->default_value(0),
         "write a checkpoint every K runs (0: only on SIGTERM)")
        ("resume", po::bool_switch(), "continue from checkpoints; keep finished animals")
        ("per-unit-currents", po::bool_switch(), "also write every unit's current from each region (large)");
    fit::add_fit_param_options(d);  // the model's parameters (src/fit/params.cpp)
  };
  c.run = [](const po::variables_map& vm, MPI_Comm comm) -> int {
    fit::CohortOptions o;
    collective(comm, [&] { o = fit::cohort_options_from(vm); });
    fit::install_stop_handler();
    return fit::fit_cohort(o, comm);
  };
  return c;
}

}  // namespace cohortnet
