#include "validate/command.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/bookkeeping.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/parallel.hpp"
#include "core/text.hpp"
#include "validate/validate.hpp"

namespace cohortnet {


Command make_validate_command() {
  Command c;
  c.name = "validate";
  c.summary = "ground-truth check of the region-pair currents: simulate, fit, decompose, compare (docs/currents.md)";
  c.add_options = [](po::options_description& d) {
    const fit::Params def;
    d.add_options()
        ("out", po::value<std::string>(), "table file (text); the HDF5 version goes to OUT.h5 [required]")
        ("cases", po::value<std::string>()->default_value("three-region:0.02,three-region:0.2,cohort,cohort:0.3::constant"),
         "comma-separated simulated settings PRESET[:LINK_STRENGTH[:LINKS[:GATING]]]: three-region or cohort; "
         "LINKS random or one-to-one (empty: the preset's); GATING (cohort) states (the preset's: pathways "
         "switched with the hidden state), constant (pathways present or absent), lagged (switched, the gains "
         "--gating-lag behind the drives /inputs), source (constant gains, each state driving one region: "
         "activity follows the state, gains do not) or hidden (switched; the drives /inputs follow other "
         "states); docs/simulate.md")
        ("methods", po::value<std::string>()->default_value("shared@random,region@random,block,block+inputs"),
         "fit variants PRIOR[+inputs][+gains|+latentK][@START]: PRIOR shared (the reference's one P), region or block "
         "(--prior); '+inputs': the animal's inputs as input channels (--inputs use; only for cases whose animals "
         "have inputs); '+gains': gated pathways (--gains inputs; block prior, regression start, implies +inputs; "
         "the table adds gains kept and gains r); '+latentK': gated pathways on K latent factors of the activity "
         "(--gains latent:K; add +inputs for the inputs as input channels); START regression (default) or random (--start); shared@random "
         "is the reference")
        ("seeds", po::value<int>()->default_value(3), "seeds per case (simulation and fit seed 1..N)")
        ("ensemble", po::value<int>()->default_value(1),
         "fits per animal with fit seeds seed + k * 1000003, J and model rates averaged before the comparison "
         "(method names get '*K')")
        ("seed0", po::value<long long>()->default_value(1), "first seed")
        ("units-per-region", po::value<int>()->default_value(100), "units per region of the simulations")
        ("regions", po::value<int>()->default_value(6), "regions of the cohort preset")
        ("cohort-units-per-region", po::value<int>()->default_value(50), "units per region of the cohort preset")
        ("samples", po::value<int>()->default_value(1201), "samples per simulated animal")
        ("lead-time", po::value<double>(),
         "s simulated and discarded before the first sample (default: the preset's, 2; 0 keeps the "
         "transient from the random initial state in the data, as the reference's threeRegionSim does)")
        ("drives", po::value<std::string>(),
         "three-region: reference or gaussian drives of B and C (default: the preset's, reference)")
        ("external-fraction", po::value<double>(),
         "three-region: fraction of B's and C's units that receive their drive (default: the preset's, 0.5)")
        ("drives-as-inputs", po::bool_switch(),
         "three-region: the drives of B and C are also recorded as input channels (one per driven unit), "
         "so the '+inputs' methods run on the three-region cases too")
        ("runs-train", po::value<int>()->default_value(40), "training runs per fit (40, as the prototype study of issue #9)")
        ("runs-free", po::value<int>()->default_value(1), "free runs per fit (the last gives pVar)")
        ("prior-ratio", po::value<std::string>()->default_value("auto"), "--prior-ratio of the region method")
        ("p0", po::value<double>()->default_value(def.p0), "initial P = p0 * I")
        ("g", po::value<double>()->default_value(def.g), "gain of the fit's J0")
        ("normalise", po::value<std::string>()->default_value("none"),
         "--normalise of the fits: none (the simulated rates as they are, default) or global (as for "
         "recorded data; distorts the currents the data imply, docs/currents.md)")
        ("input-smoothing", po::value<std::string>()->default_value("none"),
         "--input-smoothing of the methods with inputs ('+inputs', '+gains'): none, or time constants (s)")
        ("gating-lag", po::value<double>()->default_value(1.0),
         "s by which the gains of a ':lagged' cohort case follow the state after its drives (/inputs)")
        ("start-p0", po::value<double>()->default_value(def.start_p0), "--start-p0 of the '@regression' methods")
        ("start-ratio", po::value<double>()->default_value(def.start_ratio), "--start-ratio of the '@regression' methods");
  };
  c.run = [](const po::variables_map& vm, MPI_Comm comm) -> int {
    std::vector<validate::Case> cases;
    std::vector<validate::Method> methods;
    std::string out;
    int seeds = 0;
    long long seed0 = 1;
    collective(comm, [&] {
      if (!vm.count("out")) fail("option --out is required (the table file)");
      out = vm["out"].as<std::string>();
      if (comm_rank(comm) == 0) {  // before the fits, not after: the table must have somewhere to go
        const std::string dir = std::filesystem::path(out).parent_path().string();
        const std::string why = book::check_writable(dir.empty() ? "." : dir);
        if (!why.empty()) fail(why);
      }
      seeds = vm["seeds"].as<int>();
      if (seeds < 1) fail("option --seeds must be >= 1, is ", seeds);
      seed0 = vm["seed0"].as<long long>();
      if (seed0 < 0) fail("option --seed0 must be >= 0, is ", seed0);
      const int upr = vm["units-per-region"].as<int>(), samples = vm["samples"].as<int>();
      for (const std::string& item : split_list(vm["cases"].as<std::string>())) {
        // preset[:STRENGTH[:LINKS[:GATING]]]
        std::vector<std::string> field;
        for (size_t b = 0;;) {
          const size_t e = item.find(':', b);
          field.push_back(item.substr(b, e == std::string::npos ? std::string::npos : e - b));
          if (e == std::string::npos) break;
          b = e + 1;
        }
        const std::string& preset = field[0];
        validate::Case cs;
        cs.sim = sim::default_params(preset);  // throws naming --preset for an unknown one
        cs.sim.units_per_region = upr;
        cs.sim.samples = samples;
        if (vm.count("lead-time")) cs.sim.lead_time = vm["lead-time"].as<double>();
        if (vm.count("drives") && preset == sim::kPresetThreeRegion) cs.sim.drives = vm["drives"].as<std::string>();
        if (preset == sim::kPresetThreeRegion) cs.sim.drives_as_inputs = vm["drives-as-inputs"].as<bool>();
        if (vm.count("external-fraction") && preset == sim::kPresetThreeRegion)
          cs.sim.external_fraction = vm["external-fraction"].as<double>();
        if (preset == sim::kPresetCohort) {
          cs.sim.animals = 1;
          cs.sim.regions = vm["regions"].as<int>();
          cs.sim.units_per_region = vm["cohort-units-per-region"].as<int>();
          cs.sim.missing_fraction = 0;
        }
        if (field.size() > 4) fail("option --cases: too many fields in '", item, "' (preset[:strength[:links[:gating]]])");
        if (field.size() > 1 && !field[1].empty()) {
          try {
            size_t used = 0;
            cs.sim.link_strength = std::stod(field[1], &used);
            if (used != field[1].size()) throw std::invalid_argument(field[1]);
          } catch (const std::exception&) {
            fail("option --cases: bad link strength in '", item, "'");
          }
        }
        const bool links_given = field.size() > 2 && !field[2].empty();
        if (links_given) cs.sim.links = field[2];
        std::string gating_label;
        if (field.size() > 3) {
          if (preset != sim::kPresetCohort) fail("option --cases: gating (in '", item, "') applies only to the cohort preset");
          // lagged: the states' gating with the gains --gating-lag behind the drives (/inputs).
          if (field[3] == "lagged") {
            cs.sim.gating = sim::kGatingStates;
            cs.sim.gating_lag = vm["gating-lag"].as<double>();
          } else {
            cs.sim.gating = field[3];
          }
          if (field[3] == "lagged" || field[3] == sim::kGatingConstant || field[3] == sim::kGatingSource ||
              field[3] == sim::kGatingHidden)
            gating_label = ":" + field[3];
        }
        cs.name = cat(preset, ":", cs.sim.link_strength, links_given ? ":" + cs.sim.links : std::string(), gating_label);
        sim::validate_params(cs.sim);
        cases.push_back(cs);
      }
      if (cases.empty()) fail("option --cases: no case given");
      for (const std::string& name : split_list(vm["methods"].as<std::string>())) {
        validate::Method m;
        m.name = name;
        // PRIOR[+inputs][@START]: the animal's known inputs as input channels; the start of training.
        const auto at = name.find('@');
        const std::string base = name.substr(0, at);
        const fit::Start start = at == std::string::npos ? fit::Params{}.start : fit::parse_start(name.substr(at + 1));
        // PRIOR, then '+'-separated extras: inputs, gains (gated pathways: implies inputs), latentK.
        const std::vector<std::string> part = split_list(base, '+');
        std::string prior = part.empty() ? std::string() : part[0];
        bool with_inputs = false, with_gains = false;
        int latent = -1;  // +latentK: gains on K latent factors of the activity (--gains latent:K); -1 none
        for (size_t k = 1; k < part.size(); ++k) {
          const std::string& x = part[k];
          if (x == "inputs") with_inputs = true;
          else if (x == "gains") with_gains = with_inputs = true;
          else if (x.size() > 6 && x.size() <= 9 && x.rfind("latent", 0) == 0 &&
                   x.find_first_not_of("0123456789", 6) == std::string::npos)
            latent = std::stoi(x.substr(6)), with_gains = true;  // range: fit::check_params below
          else prior.clear();
        }
        if (prior != "shared" && prior != "region" && prior != "block")
          fail("option --methods: unknown method '", name, "' (use PRIOR[+inputs][+gains|+latentK][@START]: shared, "
               "region or block, optionally +inputs and +gains or +latentK, optionally @regression or @random)");
        m.fit.prior = fit::parse_prior(prior);
        m.fit.use_inputs = with_inputs;
        if (with_inputs) m.fit.input_smoothing = fit::parse_input_smoothing(vm["input-smoothing"].as<std::string>());
        if (with_gains) {
          if (m.fit.prior != fit::Prior::Block || start != fit::Start::Regression)
            fail("option --methods: '", name, "': +gains and +latentK need the block prior and the regression start (block+gains)");
          m.fit.gains = latent >= 0 ? fit::GainModel::Latent : fit::GainModel::Inputs;
          m.fit.gains_latent = std::max(latent, 0);
        }
        m.fit.prior_ratio = fit::parse_prior_ratio(vm["prior-ratio"].as<std::string>());
        m.fit.p0 = vm["p0"].as<double>();
        m.fit.g = vm["g"].as<double>();
        m.fit.start = start;
        m.fit.start_p0 = vm["start-p0"].as<double>();
        m.fit.normalise = fit::parse_normalise(vm["normalise"].as<std::string>());
        m.fit.start_ratio = vm["start-ratio"].as<double>();
        m.fit.runs_train = vm["runs-train"].as<int>();
        m.fit.runs_free = vm["runs-free"].as<int>();
        // The currents are compared with the truth over the whole recording: no held-out part
        // (held-out quality is the fit's own report, docs/fit.md).
        m.fit.holdout = std::nullopt;
        fit::check_params(m.fit);
        m.ensemble = vm["ensemble"].as<int>();
        if (m.ensemble < 1) fail("option --ensemble must be >= 1, is ", m.ensemble);
        if (m.ensemble > 1 && m.fit.gains_used())
          fail("option --ensemble: ", m.ensemble, " fits per animal with the gated method '", name,
               "' (the fits' gains are not averaged; use --ensemble 1)");
        if (m.ensemble > 1) m.name += cat("*", m.ensemble);
        methods.push_back(m);
      }
      if (methods.empty()) fail("option --methods: no method given");
    });
    const std::string config = config_record("validate", vm);
    std::vector<std::vector<validate::Run>> groups;
    for (const auto& cs : cases)
      for (auto m : methods) {
        // The three-region preset has known inputs only with --drives-as-inputs: otherwise a
        // '+inputs' method would repeat its base.
        if (m.fit.use_inputs && cs.sim.preset == sim::kPresetThreeRegion && !cs.sim.drives_as_inputs) continue;
        // The fit uses the simulation's own time constant and Euler substeps.
        m.fit.set_time(cs.sim.tau, cs.sim.dt_factor);
        std::vector<validate::Run> g;
        for (int k = 0; k < seeds; ++k) {
          g.push_back(validate::run_one(cs, m, std::uint64_t(seed0 + k), comm));
          const validate::Run& r = g.back();
          std::ostringstream os;
          os.precision(3);
          os << cs.name << " " << m.name << " seed " << r.seed << ": pVar " << r.pvar << ", AUC " << r.auc << " ("
             << r.seconds << " s)";
          log::info(comm, os.str());
        }
        groups.push_back(std::move(g));
      }
    std::string header = "# cohortnet validate (docs/currents.md)\n";
    {
      std::stringstream ss(config);
      std::string line;
      while (std::getline(ss, line)) header += "# " + line + "\n";
    }
    const std::string table = validate::format_table(groups, header);
    collective(comm, [&] {
      if (comm_rank(comm) == 0) book::write_text_atomic(out, table);
    });
    validate::write_h5(out + ".h5", groups, config, comm);
    if (comm_rank(comm) == 0) std::printf("%s", table.c_str());
    return 0;
  };
  return c;
}

}  // namespace cohortnet
