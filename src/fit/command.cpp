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
  fit::Params& p = o.params;
  p.dt_factor = vm["dt-factor"].as<int>();
  p.g = vm["g"].as<double>();
  p.tau_rnn = vm["tau-rnn"].as<double>();
  p.tau_wn = vm["tau-wn"].as<double>();
  p.amp_in_wn = vm["amp-in-wn"].as<double>();
  p.runs_train = vm["runs-train"].as<int>();
  p.runs_free = vm["runs-free"].as<int>();
  p.update_block = vm["update-block"].as<int>();
  p.p0 = vm["p0"].as<double>();
  p.normalise = fit::parse_normalise(vm["normalise"].as<std::string>());
  const long long seed = vm["seed"].as<long long>();
  if (seed < 0) fail("option --seed must be >= 0, is ", seed);
  p.seed = std::uint64_t(seed);
  p.reference_compat = vm["reference-compat"].as<bool>();
  p.prior = fit::parse_prior(vm["prior"].as<std::string>());
  p.prior_ratio = fit::parse_prior_ratio(vm["prior-ratio"].as<std::string>());
  p.start = fit::parse_start(vm["start"].as<std::string>());
  p.start_p0 = vm["start-p0"].as<double>();
  p.start_ratio = vm["start-ratio"].as<double>();
  const std::string inp = vm["inputs"].as<std::string>();
  if (inp != "use" && inp != "ignore") fail("option --inputs: unknown value '", inp, "' (use or ignore)");
  p.use_inputs = inp == "use";
  if (p.reference_compat && !vm["prior"].defaulted() && p.prior == fit::Prior::Region)
    fail("options --reference-compat and --prior region conflict: the reference uses one shared P");
  if (p.reference_compat && !vm["start"].defaulted() && p.start == fit::Start::Regression)
    fail("options --reference-compat and --start regression conflict: the reference starts from a random J0");
  fit::check_params(p);
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
    const fit::Params def;
    d.add_options()
        ("cohort", po::value<std::string>(), "cohort folder (animal files, optional cohort.ini) [required]")
        ("out", po::value<std::string>(), "results folder; fits go to OUT/fits/<animal>.h5 [required]")
        ("dt-factor", po::value<int>()->default_value(def.dt_factor), "RNN Euler steps per data sample")
        ("g", po::value<double>()->default_value(def.g), "gain of the initial J: J0 = g randn(N,N)/sqrt(N)")
        ("tau-rnn", po::value<double>()->default_value(def.tau_rnn), "RNN time constant (s)")
        ("tau-wn", po::value<double>()->default_value(def.tau_wn), "time constant of the input noise (s)")
        ("amp-in-wn", po::value<double>()->default_value(def.amp_in_wn), "amplitude of the input noise")
        ("runs-train", po::value<int>()->default_value(def.runs_train),
         "training runs (the reference's default is 2000; see docs/fit.md)")
        ("runs-free", po::value<int>()->default_value(def.runs_free), "runs without learning after training")
        ("p0", po::value<double>()->default_value(def.p0), "initial P = p0 * I (inverse regulariser)")
        ("normalise", po::value<std::string>()->default_value("global"),
         "target = activity / max: 'global' (one max), 'region' (each region's max) or 'none' (activity "
         "already in [-1, 1], e.g. simulated rates)")
        ("seed", po::value<long long>()->default_value(1), "seed of J0 and the input noise (recorded)")
        ("prior", po::value<std::string>()->default_value(fit::prior_name(def.prior)),
         "RLS prior: 'region' (each target region its own P, small prior variance for other regions' "
         "sources, zero inter-region J0; docs/currents.md) or 'shared' (one P, the reference)")
        ("prior-ratio", po::value<std::string>()->default_value("auto"),
         "--prior region: initial P variance of other regions' sources relative to --p0; auto: 1e-5 after "
         "--start regression, 1e-3 after --start random (docs/currents.md)")
        ("start", po::value<std::string>()->default_value(fit::start_name(def.start)),
         "initial J: 'random' (the reference's J0) or 'regression' (ridge regression of the input "
         "currents the data imply on the data's rates, then RLS training; docs/currents.md)")
        ("start-p0", po::value<double>()->default_value(def.start_p0),
         "--start regression: prior variance of the weights (1 / ridge penalty)")
        ("start-ratio", po::value<double>()->default_value(def.start_ratio),
         "--start regression with --prior region: prior variance of other regions' sources relative to --start-p0")
        ("inputs", po::value<std::string>()->default_value("use"),
         "'use': the animal's known inputs (/inputs) enter through learned weights W_in (RLS on [r; u]); "
         "'ignore': no input channels (the reference)")
        ("update-block", po::value<int>()->default_value(def.update_block),
         "apply the RLS updates of J and P together every B learning steps (1..16; exact in between, "
         "results change only by rounding; docs/performance.md)")
        ("reference-compat", po::bool_switch(),
         "the reference code's sample alignment (float accumulator) and shared P, to reproduce its numbers")
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
