#include "fit/params.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "core/error.hpp"
#include "core/text.hpp"
#include "fit/kernels.hpp"

namespace cohortnet::fit {

namespace po = boost::program_options;

const char* normalise_name(Normalise n) {
  return n == Normalise::Global ? "global" : n == Normalise::Region ? "region" : "none";
}

Normalise parse_normalise(const std::string& s) {
  if (s == "global") return Normalise::Global;
  if (s == "region") return Normalise::Region;
  if (s == "none") return Normalise::None;
  fail("option --normalise: unknown mode '", s, "' (use global, region or none)");
}

const char* prior_name(Prior p) { return p == Prior::Shared ? "shared" : p == Prior::Region ? "region" : "block"; }

Prior parse_prior(const std::string& s) {
  if (s == "shared") return Prior::Shared;
  if (s == "region") return Prior::Region;
  if (s == "block") return Prior::Block;
  fail("option --prior: unknown prior '", s, "' (use block, region or shared)");
}

const char* start_name(Start s) { return s == Start::Random ? "random" : "regression"; }

Start parse_start(const std::string& s) {
  if (s == "random") return Start::Random;
  if (s == "regression") return Start::Regression;
  fail("option --start: unknown start '", s, "' (use random or regression)");
}

std::vector<double> parse_input_smoothing(const std::string& s) {
  std::vector<double> out;
  if (s == "none") return out;
  for (const std::string& item : split_list(s)) {
    double v = -1;
    try {
      size_t used = 0;
      v = std::stod(item, &used);
      if (used != item.size()) v = -1;
    } catch (const std::exception&) {
    }
    if (!(v > 0) || !std::isfinite(v))
      fail("option --input-smoothing: '", item, "' is not a positive time constant in s (use none or e.g. 0.5,1,2)");
    if (std::find(out.begin(), out.end(), v) != out.end())
      fail("option --input-smoothing: time constant ", item, " given twice");
    out.push_back(v);
  }
  if (out.empty()) fail("option --input-smoothing: no time constant given (use none or e.g. 0.5,1,2)");
  return out;
}

std::optional<double> parse_prior_ratio(const std::string& s) {
  if (s == "auto") return std::nullopt;
  try {
    size_t used = 0;
    const double v = std::stod(s, &used);
    if (used == s.size() && v >= 0 && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  fail("option --prior-ratio must be 'auto' or a finite number >= 0, is '", s, "'");
}

namespace {

std::string text(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}
std::string text(long long v) { return std::to_string(v); }

void positive(double v, const char* opt) {
  if (!(v > 0) || !std::isfinite(v)) fail("option --", opt, " must be a positive number, is ", v);
}
void non_negative(double v, const char* opt) {
  if (!(v >= 0) || !std::isfinite(v)) fail("option --", opt, " must be a finite number >= 0, is ", v);
}

// "--opt VALUE" as a number (integer: whole numbers only), else Error naming the option.
double parse_number(const std::string& v, const char* opt, bool integer) {
  try {
    size_t used = 0;
    const double x = std::stod(v, &used);
    if (used == v.size() && std::isfinite(x) && (!integer || x == std::floor(x))) return x;
  } catch (const std::exception&) {
  }
  fail("option --", opt, " must be ", integer ? "an integer" : "a number", " or 'auto', is '", v, "'");
}

using When = std::function<bool(const Params&)>;
const When always = [](const Params&) { return true; };

// A numeric parameter stored in a Params member; `check` throws naming the option.
template <class T, class Store>
ParamSpec number(const char* option, const char* key, Store Params::*member, const char* help,
                 std::function<void(Store, const char*)> check, When when = always) {
  ParamSpec s;
  s.option = option;
  s.key = key;
  s.declare = [=](po::options_description& d, const Params& def) {
    d.add_options()(option, po::value<T>()->default_value(T(def.*member)), help);
  };
  s.read = [=](const po::variables_map& vm, Params& p) {
    const T v = vm[option].as<T>();
    if constexpr (std::is_unsigned_v<Store>)
      if (v < 0) fail("option --", option, " must be >= 0, is ", v);
    p.*member = Store(v);
  };
  s.check = [=](const Params& p) { check(p.*member, option); };
  s.value = [=](const Params& p) -> std::optional<std::string> {
    if (!when(p)) return std::nullopt;
    if constexpr (std::is_floating_point_v<Store>) return text(double(p.*member));
    else return text((long long)(p.*member));
  };
  return s;
}

// A parameter given as a word (or "auto"); `value` names what the fit actually uses.
ParamSpec word(const char* option, const char* key, std::function<std::string(const Params&)> def_text,
               const char* help, std::function<void(const std::string&, Params&)> parse,
               std::function<std::optional<std::string>(const Params&)> value) {
  ParamSpec s;
  s.option = option;
  s.key = key;
  s.declare = [=](po::options_description& d, const Params& def) {
    d.add_options()(option, po::value<std::string>()->default_value(def_text(def)), help);
  };
  s.read = [=](const po::variables_map& vm, Params& p) { parse(vm[option].as<std::string>(), p); };
  s.check = [](const Params&) {};
  s.value = std::move(value);
  return s;
}

std::vector<ParamSpec> make_table() {
  std::vector<ParamSpec> t;
  const When random_start = [](const Params& p) { return !p.starts_from_regression(); };
  const When regression_start = [](const Params& p) { return p.starts_from_regression(); };
  {
    // A number, or auto: from the data's autocorrelation time (resolve_time_settings, per animal).
    ParamSpec s;
    s.option = "dt-factor";
    s.key = "dt_factor";
    s.declare = [](po::options_description& d, const Params& def) {
      d.add_options()("dt-factor", po::value<std::string>()->default_value(def.dt_factor_auto ? "auto" : text((long long)def.dt_factor)),
                      "RNN Euler steps per data sample, or 'auto': the smallest with dt <= tau-rnn/5");
    };
    s.read = [](const po::variables_map& vm, Params& p) {
      const std::string v = vm["dt-factor"].as<std::string>();
      p.dt_factor_auto = v == "auto";
      p.dt_factor_given = !vm["dt-factor"].defaulted();
      if (!p.dt_factor_auto) p.dt_factor = int(parse_number(v, "dt-factor", true));
    };
    s.check = [](const Params& p) {
      if (!p.dt_factor_auto && p.dt_factor < 1) fail("option --dt-factor must be an integer >= 1 or auto, is ", p.dt_factor);
    };
    s.value = [](const Params& p) {
      return std::optional<std::string>(p.dt_factor_auto ? "auto" : text((long long)p.dt_factor));
    };
    t.push_back(s);
  }
  t.push_back(number<double>("g", "g", &Params::g, "gain of the initial J: J0 = g randn(N,N)/sqrt(N) (--start random)",
                             std::function<void(double, const char*)>(non_negative), random_start));
  {
    ParamSpec s;
    s.option = "tau-rnn";
    s.key = "tau_rnn";
    s.declare = [](po::options_description& d, const Params& def) {
      d.add_options()("tau-rnn", po::value<std::string>()->default_value(def.tau_rnn_auto ? "auto" : text(def.tau_rnn)),
                      "RNN time constant (s), or 'auto': the data's autocorrelation time / 10, at least 2 samples");
    };
    s.read = [](const po::variables_map& vm, Params& p) {
      const std::string v = vm["tau-rnn"].as<std::string>();
      p.tau_rnn_auto = v == "auto";
      p.tau_rnn_given = !vm["tau-rnn"].defaulted();
      if (!p.tau_rnn_auto) p.tau_rnn = parse_number(v, "tau-rnn", false);
    };
    s.check = [](const Params& p) {
      if (!p.tau_rnn_auto) positive(p.tau_rnn, "tau-rnn");
    };
    s.value = [](const Params& p) { return std::optional<std::string>(p.tau_rnn_auto ? "auto" : text(p.tau_rnn)); };
    t.push_back(s);
  }
  t.push_back(number<double>("tau-wn", "tau_wn", &Params::tau_wn, "time constant of the input noise (s)",
                             std::function<void(double, const char*)>(positive)));
  t.push_back(number<double>("amp-in-wn", "amp_in_wn", &Params::amp_in_wn, "amplitude of the input noise",
                             std::function<void(double, const char*)>(non_negative)));
  t.push_back(number<double>("p0", "p0", &Params::p0, "initial P = p0 * I (inverse regulariser)",
                             std::function<void(double, const char*)>(positive)));
  const auto runs = std::function<void(int, const char*)>([](int v, const char* o) {
    if (v < 0) fail("option --", o, " must be >= 0, is ", v);
  });
  t.push_back(number<int>("runs-train", "runs_train", &Params::runs_train,
                          "training runs (the reference's default is 2000; see docs/fit.md)", runs));
  t.push_back(number<int>("runs-free", "runs_free", &Params::runs_free, "runs without learning after training", runs));
  t.push_back(word(
      "normalise", "normalise", [](const Params& d) { return normalise_name(d.normalise); },
      "target = activity / max: 'global' (one max), 'region' (each region's max) or 'none' (activity "
      "already in [-1, 1], e.g. simulated rates)",
      [](const std::string& s, Params& p) { p.normalise = parse_normalise(s); },
      [](const Params& p) { return std::optional<std::string>(normalise_name(p.normalise)); }));
  t.push_back(number<long long>("seed", "seed", &Params::seed, "seed of J0 and the input noise (recorded)",
                                std::function<void(std::uint64_t, const char*)>([](std::uint64_t, const char*) {})));
  t.push_back(word(
      "prior", "prior", [](const Params& d) { return prior_name(d.prior); },
      "RLS prior: 'block' (each target region learns only from its own sources and the inputs, the "
      "inter-region weights are the regression start's; P_Q stored n_Q x n_Q: 'region' at prior ratio 0 in "
      "sum n_Q^2 memory; with --start random the default means 'region'), 'region' (each target region its "
      "own N x N P, small prior variance for other regions' sources; docs/currents.md) or 'shared' (one P, "
      "the reference)",
      [](const std::string& s, Params& p) { p.prior = parse_prior(s); },
      [](const Params& p) { return std::optional<std::string>(prior_name(p.prior_used())); }));
  t.push_back(word(
      "prior-ratio", "prior_ratio", [](const Params&) { return std::string("auto"); },
      "--prior region: initial P variance of other regions' sources relative to --p0; auto: 1e-5 after "
      "--start regression, 1e-3 after --start random (docs/currents.md)",
      [](const std::string& s, Params& p) { p.prior_ratio = parse_prior_ratio(s); },
      [](const Params& p) {
        return p.region_prior() ? std::optional<std::string>(text(p.prior_ratio_used())) : std::nullopt;
      }));
  t.push_back(word(
      "start", "start", [](const Params& d) { return start_name(d.start); },
      "initial J: 'random' (the reference's J0) or 'regression' (ridge regression of the input "
      "currents the data imply on the data's rates, then RLS training; docs/currents.md)",
      [](const std::string& s, Params& p) { p.start = parse_start(s); },
      [](const Params& p) {
        return std::optional<std::string>(p.starts_from_regression() ? "regression" : "random");
      }));
  t.push_back(number<double>("start-p0", "start_p0", &Params::start_p0,
                             "--start regression: prior variance of the weights (1 / ridge penalty)",
                             std::function<void(double, const char*)>(positive), regression_start));
  t.push_back(number<double>(
      "start-ratio", "start_ratio", &Params::start_ratio,
      "--start regression with --prior region or block: prior variance of other regions' sources relative to --start-p0",
      std::function<void(double, const char*)>(non_negative),
      [](const Params& p) { return p.starts_from_regression() && p.per_region_p(); }));
  t.push_back(word(
      "start-form", "start_form",
      [](const Params& d) {
        return std::string(d.start_form == StartForm::Auto ? "auto" : d.start_form == StartForm::Dual ? "dual" : "primal");
      },
      "--start regression: 'dual' (Ts x Ts Gram matrices, for N > T), 'primal' (the (N + inputs)^2 source Gram "
      "matrix, for T >> N) or 'auto' (primal when N + inputs < the samples); the same solution to rounding",
      [](const std::string& s, Params& p) {
        if (s == "auto") p.start_form = StartForm::Auto;
        else if (s == "dual") p.start_form = StartForm::Dual;
        else if (s == "primal") p.start_form = StartForm::Primal;
        else fail("option --start-form: unknown form '", s, "' (use auto, dual or primal)");
      },
      // The same solution to rounding: outputs of either form belong to one configuration.
      [](const Params&) { return std::nullopt; }));
  t.push_back(word(
      "inputs", "use_inputs", [](const Params& d) { return std::string(d.use_inputs ? "use" : "ignore"); },
      "'use': the animal's known inputs (/inputs) enter through learned weights W_in (RLS on [r; u]); "
      "'ignore': no input channels (the reference)",
      [](const std::string& s, Params& p) {
        if (s != "use" && s != "ignore") fail("option --inputs: unknown value '", s, "' (use or ignore)");
        p.use_inputs = s == "use";
      },
      // What acts is the number of input channels, which fingerprint() adds from the animal.
      [](const Params&) { return std::nullopt; }));
  ParamSpec smoothing = word(
      "input-smoothing", "input_smoothing",
      [](const Params& d) {
        std::string s;
        for (double v : d.input_smoothing) s += (s.empty() ? "" : ",") + text(v);
        return s.empty() ? std::string("none") : s;
      },
      "'none', or time constants in s (e.g. 0.5,1,2): each input (/inputs) also enters smoothed causally "
      "with each of them (exponentially, restarting at trial starts), as further input channels named "
      "INPUT~TAUs, for W_in and for --gains inputs (a gating that lags the inputs; docs/currents.md)",
      [](const std::string& s, Params& p) { p.input_smoothing = parse_input_smoothing(s); },
      [](const Params& p) {
        if (p.input_smoothing.empty() || !p.inputs_used()) return std::optional<std::string>();
        std::string s;
        for (double v : p.input_smoothing) s += (s.empty() ? "" : ",") + text(v);
        return std::optional<std::string>(s);
      });
  smoothing.check = [](const Params& p) {  // also for Params set in code
    for (double v : p.input_smoothing)
      if (!(v > 0) || !std::isfinite(v)) fail("option --input-smoothing: ", v, " is not a positive time constant in s");
  };
  t.push_back(smoothing);
  t.push_back(number<int>("update-block", "update_block", &Params::update_block,
                          "apply the RLS updates of J and P together every B learning steps (1..16; exact in between, "
                          "results change only by rounding; docs/performance.md)",
                          std::function<void(int, const char*)>([](int v, const char* o) {
                            if (v < 1 || v > kernels::kMaxPending)
                              fail("option --", o, " must be in 1..", kernels::kMaxPending, ", is ", v);
                          })));
  // Fit quality (docs/fit.md "Fit quality: in sample and held out").
  const When split = [](const Params& p) { return p.split_used(); };
  t.push_back(word(
      "holdout", "holdout", [](const Params& d) { return d.holdout ? to_string(*d.holdout) : std::string("none"); },
      "held-out part of the recording that training never sees: 'auto' (trials when there are >= 3, else end), "
      "'trials', 'end', 'blocks' or 'none'",
      [](const std::string& s, Params& p) {
        if (s == "none") p.holdout.reset();
        else if (s == "auto" || s == "trials" || s == "end" || s == "blocks") p.holdout = parse_split_mode(s);
        else fail("option --holdout: unknown mode '", s, "' (use auto, trials, end, blocks or none)");
      },
      [](const Params& p) {
        return std::optional<std::string>(p.split_used() ? to_string(*p.holdout) : std::string("none"));
      }));
  t.push_back(number<double>("holdout-fraction", "holdout_fraction", &Params::holdout_fraction,
                             "share of the samples (end, blocks) or of each condition's trials (trials) held out",
                             std::function<void(double, const char*)>([](double v, const char* o) {
                               if (!(v > 0 && v < 1)) fail("option --", o, " must lie in (0, 1), is ", v);
                             }),
                             split));
  t.push_back(word(
      "horizon", "horizon", [](const Params& d) { return d.horizon_auto ? std::string("auto") : text((long long)d.horizon); },
      "reset the state to the data every K samples (on top of trial starts), in training and evaluation: "
      "0 none, or 'auto' (the default: one autocorrelation time of the training samples, at least 2)",
      [](const std::string& s, Params& p) {
        p.horizon_auto = s == "auto";
        if (!p.horizon_auto) {
          const double k = parse_number(s, "horizon", true);
          if (k < 0) fail("option --horizon must be >= 0 or auto, is ", s);
          p.horizon = std::int64_t(k);
        }
      },
      [](const Params& p) -> std::optional<std::string> {
        if (!p.horizon_used()) return std::nullopt;
        return p.horizon_auto ? std::string("auto") : text((long long)p.horizon);
      }));
  t.push_back(number<int>("stop-when-flat", "stop_when_flat", &Params::stop_when_flat,
                          "stop training when the held-out pVar (training pVar without a split) has not improved "
                          "by 1e-3 for W runs, keeping the best run's J (the regression start counts as run 0); 0 off",
                          runs, [](const Params& p) { return p.stop_used(); }));
  // Gated pathways (docs/currents.md "Gated pathways").
  const When gated = [](const Params& p) { return p.gains_used(); };
  t.push_back(word(
      "gains", "gains",
      [](const Params& d) {
        return d.gains == GainModel::Inputs ? std::string("inputs")
               : d.gains == GainModel::Latent ? cat("latent:", d.gains_latent)
                                              : std::string("none");
      },
      "pathway gains: 'none' (one fixed J, CURBD); 'inputs' (each inter-region block of J scaled in time by a "
      "gain linear in the animal's /inputs, fitted with J in the regression start and kept per target region "
      "where it predicts held-out blocks better; needs --start regression, --prior block and /inputs); "
      "'latent:K' (the same, the gains linear in K slow factors of the recorded activity instead: for animals "
      "whose state is not among the known inputs)",
      [](const std::string& s, Params& p) {
        if (s == "none") p.gains = GainModel::None;
        else if (s == "inputs") p.gains = GainModel::Inputs;
        else if (s.rfind("latent", 0) == 0) {
          // latent:K (or "latent K" in a config file)
          std::string k = s.substr(6);
          if (!k.empty() && (k[0] == ':' || k[0] == ' ')) k = k.substr(1);
          char* end = nullptr;
          const long v = k.empty() ? 0 : std::strtol(k.c_str(), &end, 10);
          if (k.empty() || *end != '\0' || v < 1 || v > 64)
            fail("option --gains: '", s, "' needs the number of latent factors, 1 to 64 (e.g. latent:3)");
          p.gains = GainModel::Latent;
          p.gains_latent = int(v);  // the range is check_params' (validate sets it directly)
        } else {
          fail("option --gains: unknown model '", s, "' (use none, inputs or latent:K)");
        }
      },
      // Absent from the fingerprint without gains: fits made before the option stay current. With
      // gains the record names the acceptance rule's version: gated fits made under the older rule
      // (v1: against the start-prior fixed J only, 2026-12-04) are stale on --resume.
      [](const Params& p) {
        if (!p.gains_used()) return std::optional<std::string>();
        return std::optional<std::string>((p.latent_gains() ? cat("latent:", p.gains_latent) : std::string("inputs")) +
                                          "/acceptance-v2");
      }));
  t.push_back(number<double>("gains-latent-tau", "gains_latent_tau", &Params::gains_latent_tau,
                             "--gains latent:K: time constant (s) of the causal smoothing of the activity the latent "
                             "factors are taken from",
                             std::function<void(double, const char*)>(positive),
                             [](const Params& p) { return p.latent_gains(); }));
  t.push_back(number<double>("gains-accept", "gains_accept", &Params::gains_accept,
                             "with gains: keep a target region's gains when their nested cross-validated error is at "
                             "most this times the fixed J's (the better of the fixed J at the start prior and at the "
                             "learnt per-pathway priors) (0..1]",
                             std::function<void(double, const char*)>([](double v, const char* o) {
                               if (!(v > 0 && v <= 1)) fail("option --", o, " must lie in (0, 1], is ", v);
                             }),
                             gated));
  t.push_back(number<int>("gains-folds", "gains_folds", &Params::gains_folds,
                          "with gains: cross-validation folds of the gains' acceptance (>= 2)",
                          std::function<void(int, const char*)>([](int v, const char* o) {
                            if (v < 2) fail("option --", o, " must be >= 2, is ", v);
                          }),
                          gated));
  t.push_back(number<double>("gains-shrink", "gains_shrink", &Params::gains_shrink,
                             "with gains: prior on the gains' parameters, + S |theta|^2 added to their fit's "
                             "cross-validated error (a share of the implied currents' sum of squares)",
                             std::function<void(double, const char*)>(non_negative), gated));
  t.push_back(number<double>("gains-min-modulation", "gains_min_modulation", &Params::gains_min_modulation,
                             "with gains: keep a target region's gains only when the largest std over time of "
                             "its gains g_QS(t) reaches this (gains have mean square 1)",
                             std::function<void(double, const char*)>(non_negative), gated));
  t.push_back(number<double>("gains-block", "gains_block", &Params::gains_block,
                             "with gains: length (s) of the blocks the folds hold out",
                             std::function<void(double, const char*)>(positive), gated));
  {
    ParamSpec s;
    s.option = "reference-compat";
    s.key = "alignment";
    s.declare = [](po::options_description& d, const Params&) {
      d.add_options()("reference-compat", po::bool_switch(),
                      "the reference code's sample alignment (float accumulator), shared P and random J0, to "
                      "reproduce its numbers");
    };
    s.read = [](const po::variables_map& vm, Params& p) { p.reference_compat = vm["reference-compat"].as<bool>(); };
    s.check = [](const Params&) {};
    s.value = [](const Params& p) { return std::optional<std::string>(p.reference_compat ? "reference" : "integer"); };
    t.push_back(s);
  }
  return t;
}

}  // namespace

const std::vector<ParamSpec>& fit_param_table() {
  static const std::vector<ParamSpec> table = make_table();
  return table;
}

void add_fit_param_options(po::options_description& d) {
  const Params def;
  for (const ParamSpec& s : fit_param_table()) s.declare(d, def);
}

Params read_fit_params(const po::variables_map& vm) {
  Params p;
  for (const ParamSpec& s : fit_param_table()) s.read(vm, p);
  if (p.reference_compat && !vm["prior"].defaulted() && p.prior != Prior::Shared)
    fail("options --reference-compat and --prior ", prior_name(p.prior), " conflict: the reference uses one shared P");
  if (p.reference_compat && !vm["start"].defaulted() && p.start == Start::Regression)
    fail("options --reference-compat and --start regression conflict: the reference starts from a random J0");
  // Block RLS never learns inter-region weights: from a random J0 (inter-region blocks zero)
  // the network would have no inter-region currents at all.
  if (!vm["prior"].defaulted() && p.prior == Prior::Block && !p.starts_from_regression() && !p.reference_compat)
    fail("option --prior block needs --start regression (its inter-region weights come only from the start); "
         "use --prior region with --start random");
  if (p.gains_used() && !(p.starts_from_regression() && p.block_prior()))
    fail("option --gains ", p.latent_gains() ? "latent" : "inputs", " needs --start regression and --prior block (the gains are fitted in the start; "
         "block RLS learns only the ungated within-region weights)");
  if (p.reference_compat && !vm["horizon"].defaulted() && p.horizon_used())
    fail("options --reference-compat and --horizon conflict: the reference resets only at trial starts");
  check_params(p);
  return p;
}

void check_params(const Params& p) {
  for (const ParamSpec& s : fit_param_table()) s.check(p);
  if (p.prior_ratio && (!(*p.prior_ratio >= 0) || !std::isfinite(*p.prior_ratio)))
    fail("option --prior-ratio must be a finite number >= 0 (or auto), is ", *p.prior_ratio);
  if (p.total_runs() < 1) fail("options --runs-train and --runs-free: at least one run is needed");
  if (p.gains == GainModel::Latent && !(p.gains_latent >= 1 && p.gains_latent <= 64))
    fail("option --gains: latent:K needs K from 1 to 64 latent factors, is ", p.gains_latent);
}

std::string fingerprint(const Params& p, std::int64_t n_units, std::int64_t n_samples, double dt_data,
                        std::uint64_t animal_index, std::int64_t n_inputs) {
  std::ostringstream os;
  os.precision(17);
  os << "N=" << n_units << ";T=" << n_samples << ";dt_data=" << dt_data << ";animal_index=" << animal_index;
  for (const ParamSpec& s : fit_param_table())
    if (const auto v = s.value(p)) os << ";" << s.key << "=" << *v;
  if (n_inputs > 0) os << ";inputs=" << n_inputs;
  return os.str();
}

std::string fingerprint_diff(const std::string& was, const std::string& now) {
  // Fingerprints are "key=value;..." lists; a key missing on one side shows as (none).
  auto parse = [](const std::string& fp) {
    std::vector<std::pair<std::string, std::string>> kv;
    for (const std::string& item : split_list(fp, ';')) {
      const size_t eq = item.find('=');
      if (eq == std::string::npos) kv.emplace_back(item, "");
      else kv.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    }
    return kv;
  };
  const auto a = parse(was), b = parse(now);
  auto find = [](const auto& kv, const std::string& k) -> std::optional<std::string> {
    for (const auto& [key, v] : kv)
      if (key == k) return v;
    return std::nullopt;
  };
  std::vector<std::string> keys;
  for (const auto* kv : {&a, &b})
    for (const auto& [k, v] : *kv)
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  std::string out;
  for (const std::string& k : keys) {
    const auto va = find(a, k), vb = find(b, k);
    if (va == vb) continue;
    if (!out.empty()) out += ", ";
    out += k + " " + va.value_or("(none)") + " -> " + vb.value_or("(none)");
  }
  return out.empty() ? "same parameters" : out;
}

}  // namespace cohortnet::fit
