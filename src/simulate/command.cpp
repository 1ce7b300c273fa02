// `cohortnet simulate`: options -> SimulateParams -> simulate_cohort (docs/simulate.md).
#include "simulate/command.hpp"

#include <boost/any.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/parallel.hpp"
#include "simulate/simulate.hpp"

namespace cohortnet {

namespace {

using sim::SimulateParams;

// Options that apply to one preset only: giving one with the other preset is an error. (Options
// declared below without a default are preset-dependent and resolved in params_from().)
const std::vector<std::string> kCohortOnly = {"regions", "unit-variation", "modes", "pairs-per-mode", "states",
                                              "dwell", "ramp", "mode-variation", "individual-mode",
                                              "individual-fraction", "mode-sharing", "missing-fraction", "missing-per-animal",
                                              "drive-amplitude", "gating", "gating-lag"};
const std::vector<std::string> kThreeRegionOnly = {"g-undriven", "bump-width", "bump-amplitude", "fixed-amplitude",
                                                   "external-fraction", "drives", "drives-as-inputs"};

// A default shown as people write it (0.3, not 0.29999999999999999).
po::typed_value<double>* dval(double v) {
  std::ostringstream os;
  os << v;
  return po::value<double>()->default_value(v, os.str());
}

void add_options(po::options_description& d) {
  const SimulateParams c;  // cohort defaults
  d.add_options()
      ("preset", po::value<std::string>()->default_value(c.preset), "cohort or three-region")
      ("out", po::value<std::string>(), "cohort folder to write (created if missing; required)")
      ("seed", po::value<long long>()->default_value(1), "random seed (0 .. 2^63-1); same seed, same output")
      ("name", po::value<std::string>(), "cohort name in cohort.ini (default: the folder's name)")
      ("animals", po::value<int>(), "number of animals (default 8 for cohort, 1 for three-region)")
      ("regions", po::value<int>(), "cohort: number of regions (default 6; three-region has 3)")
      ("units-per-region", po::value<int>(), "units per region (default 50 for cohort, 100 for three-region)")
      ("unit-variation", dval(c.unit_variation),
       "cohort: units per region vary per animal by up to +- this fraction")
      ("samples", po::value<int>()->default_value(c.samples), "samples per trial")
      ("trials", po::value<int>()->default_value(c.trials), "trials, concatenated (/trial_starts)")
      ("dt", dval(c.dt), "sample interval, s")
      ("dt-factor", po::value<int>()->default_value(c.dt_factor), "Euler substeps per sample")
      ("tau", dval(c.tau), "time constant of the units, s")
      ("g", dval(c.g), "gain of the random within-region weights (chaotic > 1)")
      ("g-undriven", dval(c.g_undriven), "three-region: gain of region A")
      ("lead-time", dval(c.lead_time),
       "s simulated before each trial's first sample (transients discarded)")
      ("link-fraction", po::value<double>(),
       "fraction of unit pairs linked between coupled regions (default 0.1 cohort, 0.05 three-region)")
      ("link-strength", po::value<double>(),
       "|weight| of an inter-region link (default 0.3 cohort, 0.02 three-region = Python reference; "
       "0.2 = MATLAB reference)")
      ("link-excitatory", po::value<double>(),
       "fraction of inter-region links that are positive (default 0.8 cohort, 1 three-region)")
      ("links", po::value<std::string>(),
       "inter-region link pattern: random (each unit pair with probability --link-fraction; default "
       "cohort) or one-to-one (round(link-fraction * n) target units, each fed by the source unit of the "
       "same index, as the CURBD reference; default three-region)")
      ("drives", po::value<std::string>(),
       "three-region: drives of B and C: reference (the CURBD reference's slow sweep and two-step fixed "
       "point; default) or gaussian (a 0.2 s bump per B unit over the whole trial, C a random constant)")
      ("drives-as-inputs", po::bool_switch(),
       "three-region: also store each driven unit's drive as a known input channel (/inputs, one per "
       "driven unit, like a recorded stimulus) so a fit with --inputs use can attribute it")
      ("bump-width", dval(c.bump_width),
       "three-region: drives gaussian: std (s) of each B unit's bump; reference: width as a fraction of the units")
      ("bump-amplitude", dval(c.bump_amplitude), "three-region: bump height")
      ("fixed-amplitude", dval(c.fixed_amplitude),
       "three-region: std of region C's constant input pattern (new pattern every trial)")
      ("external-fraction", po::value<double>(),
       "three-region: fraction of B's and C's units that receive their input (default 0.5, the reference)")
      ("modes", po::value<int>()->default_value(c.modes), "cohort: number of shared modes")
      ("pairs-per-mode", po::value<int>()->default_value(c.pairs_per_mode),
       "cohort: (target, source) region pairs each mode couples")
      ("states", po::value<int>()->default_value(c.states), "cohort: hidden behaviour states (0: max(3, number of modes), every mode gets a state of its own)")
      ("dwell", dval(c.dwell), "cohort: mean dwell time of a state, s")
      ("ramp", dval(c.ramp),
       "cohort: time constant (s) with which mode activations follow the state")
      ("mode-variation", dval(c.mode_variation),
       "cohort: per-animal jitter (relative std) of every mode weight")
      ("individual-mode", po::bool_switch(), "cohort: add one mode that only some animals have")
      ("individual-fraction", dval(c.individual_fraction),
       "cohort: fraction of animals with the individual mode")
      ("mode-sharing", po::value<std::string>()->default_value(c.mode_sharing),
       "cohort: shared (every animal has the cohort's modes) or none (a null cohort: every animal "
       "draws modes of its own, nothing is shared, none may be called conserved)")
      ("missing-fraction", po::value<double>(),
       "cohort: fraction of animals that miss regions (default 0.25)")
      ("missing-per-animal", po::value<int>()->default_value(c.missing_per_animal),
       "cohort: regions each of those animals misses")
      ("drive-amplitude", po::value<double>(),
       "cohort: std of the weights of the state-indicator drives /inputs (default 0.3; 0 = none)")
      ("gating", po::value<std::string>()->default_value(c.gating),
       "cohort: states (inter-region gains follow the modes' activations), constant (each at its mean "
       "over the states: pathways present or absent, not switched) or source (constant gains, and each state "
       "drives one region 3x harder: activity, not gain, follows the state) or hidden (gains follow the states, "
       "the drives /inputs an independent state sequence: no known input tells the gating)")
      ("gating-lag", dval(c.gating_lag),
       "cohort, --gating states: s by which the modes' activations (the gains) follow the state after the "
       "drives /inputs do (0: in step)");
}

bool given(const po::variables_map& vm, const std::string& key) {
  return vm.count(key) && !vm[key].defaulted();
}

template <class T>
void take(const po::variables_map& vm, const std::string& key, T& field) {
  if (vm.count(key)) field = vm[key].as<T>();
}

SimulateParams params_from(const po::variables_map& vm, po::variables_map& resolved) {
  const std::string preset = vm["preset"].as<std::string>();
  SimulateParams p = sim::default_params(preset);
  const bool cohort = p.preset == sim::kPresetCohort;
  for (auto& k : cohort ? kThreeRegionOnly : kCohortOnly)
    if (given(vm, k) && !(k == "regions" && vm[k].as<int>() == 3))
      fail("option --", k, " applies only to --preset ", cohort ? "three-region" : "cohort", ", not ", preset);
  if (!vm.count("out")) fail("option --out is required: the cohort folder to write");
  const long long seed = vm["seed"].as<long long>();
  if (seed < 0) fail("option --seed: must be >= 0, got ", seed);
  p.seed = std::uint64_t(seed);
  take(vm, "name", p.name);
  take(vm, "animals", p.animals);
  take(vm, "regions", p.regions);
  take(vm, "units-per-region", p.units_per_region);
  take(vm, "unit-variation", p.unit_variation);
  take(vm, "samples", p.samples);
  take(vm, "trials", p.trials);
  take(vm, "dt", p.dt);
  take(vm, "dt-factor", p.dt_factor);
  take(vm, "tau", p.tau);
  take(vm, "g", p.g);
  take(vm, "g-undriven", p.g_undriven);
  take(vm, "lead-time", p.lead_time);
  take(vm, "link-fraction", p.link_fraction);
  take(vm, "link-strength", p.link_strength);
  take(vm, "link-excitatory", p.link_excitatory);
  take(vm, "links", p.links);
  take(vm, "drives", p.drives);
  take(vm, "external-fraction", p.external_fraction);
  if (vm.count("drives-as-inputs")) p.drives_as_inputs = vm["drives-as-inputs"].as<bool>();
  take(vm, "bump-width", p.bump_width);
  take(vm, "bump-amplitude", p.bump_amplitude);
  take(vm, "fixed-amplitude", p.fixed_amplitude);
  take(vm, "modes", p.modes);
  take(vm, "pairs-per-mode", p.pairs_per_mode);
  take(vm, "states", p.states);
  take(vm, "dwell", p.dwell);
  take(vm, "ramp", p.ramp);
  take(vm, "mode-variation", p.mode_variation);
  take(vm, "individual-mode", p.individual_mode);
  take(vm, "individual-fraction", p.individual_fraction);
  take(vm, "mode-sharing", p.mode_sharing);
  take(vm, "missing-fraction", p.missing_fraction);
  take(vm, "missing-per-animal", p.missing_per_animal);
  take(vm, "drive-amplitude", p.drive_amplitude);
  take(vm, "gating", p.gating);
  take(vm, "gating-lag", p.gating_lag);
  sim::validate_params(p);

  // The recorded configuration holds the values actually used, preset defaults included.
  resolved = vm;
  auto put = [&](const std::string& key, const boost::any& v) {
    if (!resolved.count(key)) resolved.insert({key, po::variable_value(v, true)});
  };
  put("animals", p.animals);
  put("regions", p.regions);
  put("units-per-region", p.units_per_region);
  put("link-fraction", p.link_fraction);
  put("link-strength", p.link_strength);
  put("link-excitatory", p.link_excitatory);
  put("links", p.links);
  if (!cohort) put("external-fraction", p.external_fraction);
  if (!cohort) put("drives", p.drives);
  put("drive-amplitude", p.drive_amplitude);
  put("missing-fraction", p.missing_fraction);
  return p;
}

int run(const po::variables_map& vm, MPI_Comm comm) {
  SimulateParams p;
  std::string out;
  collective(comm, [&] {
    po::variables_map resolved;
    p = params_from(vm, resolved);
    p.config = config_record("simulate", resolved);
    out = vm["out"].as<std::string>();
  });
  sim::simulate_cohort(p, out, comm);
  return 0;
}

}  // namespace

Command make_simulate_command() {
  Command c;
  c.name = "simulate";
  c.summary = "write a simulated cohort with ground truth (presets cohort, three-region)";
  c.add_options = add_options;
  c.run = run;
  return c;
}

}  // namespace cohortnet
