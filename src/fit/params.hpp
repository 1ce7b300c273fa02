#pragma once
// The fit's parameters, declared once. Each entry of fit_param_table() gives a parameter's
// option name, default, help, how it is read and checked, and what it adds to the fingerprint
// (the text that --resume, submit, modes and report compare to tell whether an output belongs
// to a configuration). The CLI (`cohortnet fit`), the config record and the fingerprint are all
// made from this table, so a new parameter has one touch point here plus its use in the trainer.
#include <boost/program_options.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fit/quality.hpp"

namespace cohortnet::fit {

// Target = activity / max: one max (Global), each region's (Region), or the activity as it is
// (None: for data that already are rates in [-1, 1], such as the simulator's).
enum class Normalise { Global, Region, None };
// How RLS shares its inverse correlation matrix P between the rows of J (docs/fit.md, "Prior").
// Shared: one P for all rows (the reference). Region: the rows of each target region Q use their
// own full N x N P_Q, initialised p0 for sources in Q and p0*prior_ratio for sources in other
// regions; J0's inter-region blocks are zero. Block: region Q's rows learn only from Q's own
// sources (and the inputs), P_Q stored as an n_Q x n_Q block: exactly Region at prior ratio 0,
// with memory sum_Q n_Q^2 instead of M N^2; the inter-region weights are those of the start.
enum class Prior { Shared, Region, Block };
// Where training starts (docs/currents.md, "Regression start"). Random: the reference's J0 =
// g randn / sqrt(N) (region priors: inter-region blocks zero). Regression: J (and W_in) from a
// ridge regression of the input current the data imply, x + tau dx/dt with x = atanh(target), on
// the target rates (and inputs), with its own prior (start_p0, start_ratio); RLS training then
// continues from there with the usual P.
enum class Start { Random, Regression };
// How the regression start solves its ridge problem (docs/performance.md, "Regression start"):
// Dual: Ts x Ts Gram matrices (no N x N; for N > T, whole-brain recordings); Primal: the n x n
// source Gram matrix, n = N + inputs (for T >> N); Auto: primal when n < Ts. The same solution
// to rounding, so not part of the fingerprint.
enum class StartForm { Auto, Dual, Primal };

// Pathway gains (docs/currents.md, "Gated pathways"): None is CURBD's fixed J. Inputs: the
// network's inter-region blocks are modulated in time, J_eff(t)[Q,S] = g_QS(t) J[Q,S] with
// g_QS(t) = (1 + sum_c theta_QSc (u_c(t) - mean u_c)) / rho_QS (unit mean square over the
// regression samples; g_QQ = 1), the theta fitted jointly with J in the regression start and kept
// per target region only where they predict held-out blocks of the implied currents better.
// Latent: the same gains, driven instead of the inputs by K slow factors of the recorded activity
// (gain_drivers.cpp): for animals whose state is not among the known inputs.
enum class GainModel { None, Inputs, Latent };

struct Params {
  int dt_factor = 1;        // RNN Euler steps per data sample
  double g = 1.5;           // J0 = g * randn / sqrt(N)
  double tau_rnn = 0.01;    // s
  double tau_wn = 0.1;      // s, input-noise filter time constant
  double amp_in_wn = 0.01;  // input-noise amplitude
  int runs_train = 50;      // reference default 2000 (docs/fit.md)
  int runs_free = 1;        // runs without learning after training (reference default 10)
  double p0 = 1.0;          // P = p0 * I
  Normalise normalise = Normalise::Global;
  std::uint64_t seed = 1;
  bool reference_compat = false;  // the reference's sample alignment (float accumulator) and shared P
  Prior prior = Prior::Block;
  // Prior::Region: P_Q's initial variance of other-region sources / p0. Unset: 1e-5 after the
  // regression start (the inter-region weights come from the regression; training adjusts them
  // little), 1e-3 from the random J0 (training has to learn them). docs/currents.md.
  std::optional<double> prior_ratio;
  bool use_inputs = true;         // the animal's /inputs enter through learned weights W_in (--inputs use)
  // Causal exponential smoothings of every input (time constants, s) added as further input
  // channels (--input-smoothing): a gating or drive that lags the inputs is linear in them.
  std::vector<double> input_smoothing;
  // RLS rank-1 updates of J and P applied together every update_block learning steps (exact
  // corrections in between; 1 = every step). Changes results only by rounding. docs/performance.md
  int update_block = 8;
  Start start = Start::Regression;
  double start_p0 = 100;     // Start::Regression: prior variance of the weights (1 / ridge penalty)
  double start_ratio = 1e-2;  // ... of other regions' sources relative to start_p0 (region priors)
  StartForm start_form = StartForm::Auto;
  // Fit quality (docs/fit.md "Fit quality"). The held-out split training never sees: nullopt =
  // none (--holdout none); --reference-compat never splits (the reference has no split).
  std::optional<SplitMode> holdout = SplitMode::Auto;
  double holdout_fraction = 1.0 / 3.0;
  // Reset the state to the data every `horizon` samples (on top of trial starts and the split's
  // edges), in training and evaluation alike; 0: none; horizon_auto: auto_horizon of the data's
  // autocorrelation time on the training samples.
  // The default is auto (issue 15: the defaults come from the data; docs/fit.md).
  std::int64_t horizon = 0;
  bool horizon_auto = true;
  // --tau-rnn auto / --dt-factor auto (the defaults): resolved per animal from the
  // autocorrelation time (resolve_time_settings); the Trainer's copy then holds the values used.
  // tau_rnn / dt_factor above are the values used when these are false (set_time).
  bool tau_rnn_auto = true, dt_factor_auto = true;
  // Given on the command line (not the defaults): a given dt/tau >= 0.5 is an error naming the
  // option; the defaults only warn (not in the fingerprint).
  bool tau_rnn_given = false, dt_factor_given = false;
  // Stop training when the held-out pVar (training pVar without a split) has not improved for
  // this many runs, keeping the best run's J (should_stop); the regression start counts as run 0,
  // so training that only makes the held-out pVar worse gives back the start's J; 0: off.
  int stop_when_flat = 5;
  // Gated pathways (GainModel). A target region's gains are kept when their cross-validated
  // error of the implied currents (gains_folds folds of gains_block-second blocks of the training
  // samples) is at most gains_accept x the fixed J's (the better of the fixed J at the start
  // prior and at the gated fit's learnt prior factors); otherwise its gains stay 1.
  GainModel gains = GainModel::None;
  double gains_accept = 0.9;
  int gains_folds = 3;
  double gains_block = 1.0;  // s
  // Prior on the gains' theta and the per-source prior factors' logs: + gains_shrink |x|^2 added to the cross-validated error (a share
  // of the implied currents' sum of squares), so refits on part of the samples overfit less.
  double gains_shrink = 1e-5;
  // ... and when the gains move materially: the largest std over time of g_QS(t) over its sources.
  double gains_min_modulation = 0.1;
  int gains_latent = 0;              // --gains latent:K: the number of factors K
  double gains_latent_tau = 0.1;     // s: the factors' causal smoothing
  // Fixed time settings (not from the data): what `--tau-rnn X --dt-factor K` means.
  void set_time(double tau, int dt_factor_) {
    tau_rnn = tau;
    dt_factor = dt_factor_;
    tau_rnn_auto = dt_factor_auto = false;
  }
  bool stop_used() const { return stop_when_flat > 0 && !reference_compat; }
  bool split_used() const { return holdout.has_value() && !reference_compat; }
  bool horizon_used() const { return !reference_compat && (horizon_auto || horizon > 0); }
  int total_runs() const { return runs_train + runs_free; }
  bool gains_used() const { return gains != GainModel::None && !reference_compat; }
  bool latent_gains() const { return gains == GainModel::Latent && !reference_compat; }
  // The channels the gains are linear in: the input channels (with --input-smoothing's copies)
  // for --gains inputs, the K factors for --gains latent:K, none without gains.
  int gain_drivers(int input_channels) const {
    return !gains_used() ? 0 : latent_gains() ? gains_latent : input_channels;
  }
  // The prior actually used: --reference-compat means the reference's shared P; the block prior
  // from a random J0 (no inter-region weights to keep) is the region prior.
  Prior prior_used() const {
    if (reference_compat) return Prior::Shared;
    if (prior == Prior::Block && !starts_from_regression()) return Prior::Region;
    return prior;
  }
  bool region_prior() const { return prior_used() == Prior::Region; }  // full P_Q per region
  bool block_prior() const { return prior_used() == Prior::Block; }
  bool per_region_p() const { return prior_used() != Prior::Shared; }  // one P per target region
  bool inputs_used() const { return use_inputs && !reference_compat; }
  // The start actually used: --reference-compat means the reference's random J0.
  bool starts_from_regression() const { return start == Start::Regression && !reference_compat; }
  // Block: 0 by construction (no other-region sources in P_Q).
  double prior_ratio_used() const {
    if (block_prior()) return 0.0;
    return prior_ratio ? *prior_ratio : starts_from_regression() ? 1e-5 : 1e-3;
  }
};

const char* normalise_name(Normalise n);
Normalise parse_normalise(const std::string& s);  // "global" | "region" | "none", else Error naming --normalise
const char* prior_name(Prior p);
Prior parse_prior(const std::string& s);  // "shared" | "region" | "block", else Error naming --prior
const char* start_name(Start s);
Start parse_start(const std::string& s);  // "random" | "regression", else Error naming --start
// "auto" (unset) or a number >= 0, else Error naming --prior-ratio.
std::optional<double> parse_prior_ratio(const std::string& s);
// --input-smoothing: "none" (empty) or comma-separated time constants > 0 (s), else Error naming it.
std::vector<double> parse_input_smoothing(const std::string& s);

// One fit parameter: its option and everything made from it.
struct ParamSpec {
  std::string option;  // "dt-factor": --dt-factor on the command line, dt-factor = in [fit]
  std::string key;     // "dt_factor": its name in the fingerprint
  std::function<void(boost::program_options::options_description&, const Params& defaults)> declare;
  std::function<void(const boost::program_options::variables_map&, Params&)> read;  // throws naming --option
  std::function<void(const Params&)> check;  // range check, throws naming --option
  // The value in the fingerprint; nullopt when the parameter does not act in this fit (e.g.
  // --start-p0 after a random start), so an unused setting never makes an output stale.
  std::function<std::optional<std::string>(const Params&)> value;
};
const std::vector<ParamSpec>& fit_param_table();

// The table's options, added to a command's options (cohortnet fit).
void add_fit_param_options(boost::program_options::options_description& d);
// Params from parsed options (every entry's read, then check_params and the conflicts).
Params read_fit_params(const boost::program_options::variables_map& vm);
// Throws Error naming the option (--tau-rnn, --dt-factor ...) for a value out of range.
void check_params(const Params& p);

// A text that changes whenever a parameter that changes the result changes ("N=..;T=..;key=value;
// ..."): recorded in checkpoints, outputs and status files; --resume refuses to mix.
std::string fingerprint(const Params& p, std::int64_t n_units, std::int64_t n_samples, double dt_data,
                        std::uint64_t animal_index, std::int64_t n_inputs = 0);
// The options in which two fingerprints differ, as "dt_factor 1 -> 5, inputs (none) -> 2": what a
// mismatch says instead of both parameter lists.
std::string fingerprint_diff(const std::string& was, const std::string& now);

}  // namespace cohortnet::fit
