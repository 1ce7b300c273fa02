#pragma once
// Fit quality on real recordings (issue 15): the held-out split, the autocorrelation time and the
// defaults it gives (tau-rnn, dt-factor, horizon), baselines on the same split, the fit's status
// and the stopping rule. Independent of the trainer: it only sees the normalised target D, the
// model rates R and the pVar history. docs/fit.md "Fit quality: in sample and held out".
//
// How the trainer uses it (one animal on communicator comm, each rank its rows of D):
//   Split s = make_split(T, meta.trial_starts, conditions, {SplitMode::Auto});
//   Autocorrelation ac = autocorrelation_time(Rows::time_major_of(D, m, T), s, comm);
//   TimeSettings ts = resolve_time_settings(dtData, ac.tau_samples, given_tau, given_dt_factor);
//   std::int64_t K = given_K ? *given_K : auto_horizon(ac.tau_samples);
//   std::vector<std::int64_t> resets = horizon_resets(s, K);  // reset the state at every entry;
//                                           // learn only at samples with s.held_out[t] == 0
//   Baselines b = baselines(Rows::time_major_of(D, m, T), s, K, comm);
//   Score held = pvar_score(D_view, R_view, s, resets, Part::HeldOut, comm);  // per run
//   StopDecision d = should_stop(held_pvar_per_run, StopRule{});              // after each run
//   Verdict v = classify_fit({held.non_reset, b.best_non_reset(), b.best_name(), train_pvar_history,
//                             saturation(R_view, D_view, s, Part::HeldOut, comm), diverged});
//   log: describe(b) -> "unit mean -0.238, VAR(1) at K 8 0.301 (ridge 0.1)"
//   after every training run: std::string why = training_failure(train_pvar, saturation(...), bad);
// Every function taking a communicator is collective on it and returns the same value on every
// rank; per-row partial sums are gathered and added in global row order, so results do not depend
// on the number of ranks beyond the rounding of the VAR's P x P reduction (tests: 1e-12).
#include <mpi.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cohortnet::fit {

// The VAR baseline's dual form holds the P x P Gram matrix of the P training pairs on every rank:
// above this many pairs (0.5 GB) only the unit mean is compared (output.cpp; counted by memory.cpp).
inline constexpr std::int64_t kMaxVarPairs = 8000;

// ---- views ---------------------------------------------------------------------------------
// A rank's rows of a units x samples matrix: row-major (value (i,t) at i*T + t, the animal file's
// layout) or time-major (t*rows + i, the trainer's D_ and R_). No copy.
struct Rows {
  const double* p = nullptr;
  std::int64_t rows = 0, T = 0;
  bool time_major = false;
  static Rows row_major(const double* p, std::int64_t rows, std::int64_t T) { return {p, rows, T, false}; }
  static Rows time_major_of(const double* p, std::int64_t rows, std::int64_t T) { return {p, rows, T, true}; }
  double operator()(std::int64_t i, std::int64_t t) const {
    return time_major ? p[t * rows + i] : p[i * T + t];
  }
};

// ---- the held-out split --------------------------------------------------------------------
enum class SplitMode { Auto, Trials, End, Blocks };
SplitMode parse_split_mode(const std::string& s);  // "auto", "trials", "end", "blocks"; else fail
std::string to_string(SplitMode m);

struct SplitOptions {
  SplitMode mode = SplitMode::Auto;
  double fraction = 1.0 / 3.0;  // share of samples (end, blocks) or of each condition's trials held out
  int blocks = 3;               // blocks: number of held-out blocks
};

// A contiguous run of samples [begin, end) on one side of the split, inside one trial.
struct Segment {
  std::int64_t begin = 0, end = 0;
  bool held_out = false;
};

struct Split {
  SplitMode mode = SplitMode::End;     // the resolved mode (never Auto)
  std::int64_t T = 0;
  std::vector<std::uint8_t> held_out;  // per sample: 1 held out, 0 training
  std::vector<Segment> segments;       // in time order, covering [0, T); each starts with a reset
  std::vector<std::int64_t> resets;    // sorted starts of all segments (= trial starts and split edges)
  std::string description;             // e.g. "end: samples 1000-1499 held out (500 of 1500)"
  std::int64_t n_held_out() const;
  bool is_reset(std::int64_t t) const;  // binary search in resets
};

// Deterministic. trials: with >= 3 trials, in each condition (all trials one condition when
// `conditions` is empty) hold out round(fraction * n) of its n trials, at least 1, at most n-1,
// evenly spread and including the last (3 trials, 1/3: the third); a condition with one trial stays
// in training. end: the last round(fraction * T) samples. blocks: the recording cut into `blocks`
// equal chunks, the last fraction of each held out. auto: trials when there are >= 3 trials, else
// end. Trial starts are kept as segment edges. Fails (naming --holdout) when a side would be empty.
Split make_split(std::int64_t T, const std::vector<std::int64_t>& trial_starts,
                 const std::vector<int>& conditions, const SplitOptions& opt = {});

// No split: every sample in training, segments = trials (the fit with --holdout none).
Split whole_recording(std::int64_t T, const std::vector<std::int64_t>& trial_starts);

// All reset points with prediction horizon K: every segment start, then every K samples inside the
// segment (start + K, start + 2K, ...). K <= 0: segment starts only. A sample t is predicted
// (t - last reset) steps ahead of the data.
std::vector<std::int64_t> horizon_resets(const Split& s, std::int64_t K);

// ---- autocorrelation time and defaults from the data ---------------------------------------
struct Autocorrelation {
  double tau_samples = 0;   // the recording's autocorrelation time: median over units, in samples
  double mean_samples = 0;  // the mean over units (for the record)
  int units = 0;            // units used (non-constant on training samples)
  int capped = 0;           // units whose autocorrelation stayed above 1/e up to max_lag
  std::int64_t max_lag = 0;
};

// Per unit: z-score over training samples; acf(k) = mean of z_t z_{t+k} over pairs inside one
// training segment; the unit's time = first lag with acf < 1/e, interpolated log-linearly between
// integer lags (exact for an exponential acf, e.g. AR(1) a^k: -1/ln a). The 1/e crossing rather
// than the integral of acf: the integral's noisy tail needs a truncation rule and cancels on
// oscillating signals, the crossing needs only the first lags; for an exponential acf both agree.
// The recording's time is the median over units, not the mean: a few slowly drifting units
// dominate the mean (zebrafish fish6: mean 15.3, median 8.0 samples; docs/fit.md). Units that
// never drop below 1/e up to max_lag (default: half the longest training segment) count as
// max_lag. Fails when no unit varies.
Autocorrelation autocorrelation_time(const Rows& x, const Split& s, MPI_Comm comm, std::int64_t max_lag = 0);

struct TimeSettings {
  double tau_rnn = 0;  // seconds
  int dt_factor = 1;
  bool tau_from_data = false, dt_factor_from_data = false;
  std::string warning;  // non-empty when 0.2 < dt/tau < 0.5 (allowed, but coarse)
};

// tau_rnn (unless given) = the autocorrelation time / kAutocorrelationsPerTau in seconds, at least
// 2 x sample_interval; dt_factor (unless given) = the smallest integer with
// dt = sample_interval/dt_factor <= tau/5. Then check_time_step. Recorded in the output by the
// caller. The divisor 10 is measured (docs/fit.md): on the simulator's cohort (true tau 0.1 s,
// rates' autocorrelation 0.58 s) tau = 0.58 / 1 / 5 / 10 / 20 s gave free-run pVar 0.82 / 0.93 /
// 0.97 / 0.97 after 10 runs; on the zebrafish and fMRI recordings the 2-sample floor decides.
inline constexpr double kAutocorrelationsPerTau = 10.0;
TimeSettings resolve_time_settings(double sample_interval, double tau_ac_samples,
                                   std::optional<double> tau_rnn_given, std::optional<int> dt_factor_given);
// dt/tau >= 0.5 saturates the Euler-stepped network: fail(...) naming --dt-factor / --tau-rnn
// (the options that were given) and the value that would work.
void check_time_step(double sample_interval, int dt_factor, double tau_rnn, bool dt_factor_given = true,
                     bool tau_given = true);

// The horizon K (reset every K samples): one autocorrelation time, rounded, at least 2 (K = 1 would
// reset at every sample and predict nothing). Beyond it the data at the reset carry little of the
// future (acf < 1/e) and every predictor falls towards the unit mean (docs/fit.md: zebrafish VAR(1)
// 0.53 at K 2, 0.30 at K 8, 0.09 at K 23).
// `per_autocorrelation` scales it (K = round(factor x tau)) for a caller that measures otherwise.
std::int64_t auto_horizon(double tau_ac_samples, double per_autocorrelation = 1.0);

// ---- pVar on part of the recording ---------------------------------------------------------
enum class Part { Train, HeldOut };

// pVar over the samples of `part`, all of them and those that are not resets:
//   pVar(S) = 1 - sum_{i, t in S} (D - P)^2 / (N |S| sigma_S^2),
// sigma_S the population std of D over all units and the samples of S: the fit's pVar
// (Trainer::run_next) applied to the columns S alone, each set with its own sigma.
struct Score {
  double all = 0, non_reset = 0;
  std::int64_t n_all = 0, n_non_reset = 0;
};
Score pvar_score(const Rows& D, const Rows& P, const Split& s, const std::vector<std::int64_t>& resets,
                 Part part, MPI_Comm comm);

// ---- baselines on the same split and horizon -----------------------------------------------
struct VarOptions {
  // Ridge penalty lambda = ridge * ||X~||_F^2 / N (relative to the mean squared centred value per
  // unit, so it does not depend on the data's scale or length). 0: chosen from `grid` on the
  // training part alone (choose_var_ridge).
  double ridge = 0;
  std::vector<double> grid{1e-3, 1e-2, 1e-1, 1, 10};
  double inner_fraction = 0.25;  // share of the training samples (the last) that choose the ridge
};

struct Baselines {
  Score mean;                      // each unit's training mean at every sample (resets too)
  Score var;                       // ridge VAR(1): the data at a reset, iterated K-1 steps after
  std::optional<Score> trial_avg;  // by condition, training trials; when there are trials
  std::int64_t horizon = 0;
  double var_ridge = 0;             // the relative ridge used (chosen or given)
  double var_lambda = 0;
  std::int64_t var_pairs = 0;      // training pairs (t, t+1) inside one training segment
  // The best baseline's non-reset pVar and its name.
  double best_non_reset() const;
  std::string best_name() const;
};

// D: the fit's normalised target, this rank's rows. The VAR is fitted in its dual form (the P x P
// Gram matrix of the P training pairs, summed over ranks' rows: memory P^2 per rank, no N x N
// matrix anywhere; cost N P^2 / p + P^3 / 3 to fit, per prediction step N P / p + P^2 for all
// chains at once plus one allreduce of P x chains). With vo.ridge 0 the ridge is chosen first
// (choose_var_ridge: one more fit per grid value, on the training part).
Baselines baselines(const Rows& D, const Split& s, std::int64_t K, MPI_Comm comm,
                    const std::vector<int>& conditions = {}, const std::vector<std::int64_t>& trial_starts = {},
                    const VarOptions& vo = {});

// One line for the log and the summary: the held-out non-reset pVar of each baseline.
std::string describe(const Baselines& b);

// The ridge that predicts best at horizon K on the last `inner_fraction` of the training samples
// when fitted on the rest of them (held-out samples are never read). Ties: the first in the grid.
double choose_var_ridge(const Rows& D, const Split& s, std::int64_t K, MPI_Comm comm, const VarOptions& vo = {});

// The baselines' predictions one at a time (this rank's rows, row-major rows x T). Used by
// baselines() and by tests.
std::vector<double> predict_mean(const Rows& D, const Split& s);
// predict_mean: every sample. predict_var: every chain from a reset to the next, with the given
// relative ridge (> 0); only_part: only the chains starting in that part (the others stay 0).
std::vector<double> predict_var(const Rows& D, const Split& s, const std::vector<std::int64_t>& resets,
                                MPI_Comm comm, double ridge, double* lambda_out = nullptr,
                                std::int64_t* pairs_out = nullptr, const std::optional<Part>& only_part = std::nullopt);
// Empty when there are fewer than 2 trials.
std::vector<double> predict_trial_average(const Rows& D, const Split& s, const std::vector<std::int64_t>& trial_starts,
                                          const std::vector<int>& conditions);

// ---- status and stopping -------------------------------------------------------------------
struct Saturation {
  double model = 0, target = 0;  // fraction of |value| > 0.99 over the part's samples
};
Saturation saturation(const Rows& R, const Rows& D, const Split& s, Part part, MPI_Comm comm);

enum class FitStatus { Ok, Poor, Failed };
std::string to_string(FitStatus s);  // "ok", "poor", "failed"

struct FitEvidence {
  double held_out_pvar = 0;         // the fit's held-out pVar over non-reset samples
  double best_baseline = 0;         // Baselines::best_non_reset()
  std::string baseline_name = "baseline";
  std::vector<double> run_pvar;     // per training run (all with the same noise: a noise-free
                                    // free run legitimately scores lower, leave it out)
  Saturation sat;
  bool diverged = false;            // the trainer's health check failed
};

struct StatusRule {
  double saturated_fraction = 0.2;  // failed when the model's |r| > 0.99 share exceeds this
                                    // and the target's share by more than this
  double collapse_drop = 0.5;       // failed when the last run's pVar is this far below the best
  double min_margin = 0.0;          // ok needs held_out_pvar > best_baseline + min_margin
};

struct Verdict {
  FitStatus status = FitStatus::Ok;
  std::string reason;  // "saturated: ...", "collapsed: pVar fell from 0.022 (run 645) to -19.5 (run 1000)", ...
};
// The failure so far, "" if none: for the trainer after every run (saturation of that run's
// rates), so a collapse or saturation is named when it happens, not only at the end.
std::string training_failure(const std::vector<double>& run_pvar, const Saturation& sat, bool diverged,
                             const StatusRule& rule = {});
// Failed (diverged, saturated, collapsed; checked in this order) before poor (does not beat the
// best baseline, or no finite held-out pVar) before ok.
Verdict classify_fit(const FitEvidence& e, const StatusRule& rule = {});

struct StopRule {
  int window = 10;        // stop after this many runs without an improvement
  double epsilon = 1e-3;  // an improvement beats the best so far by more than this
  int min_runs = 1;
  int first_label = 1;    // the number of the first entry in reasons (0: it is the regression start)
};
// "run 3", or "run 0, the regression start" for 0.
std::string stop_run_name(int number);
struct StopDecision {
  bool stop = false;
  int best_run = -1;      // 0-based index of the best (highest) pVar: keep its J
  double best = 0;
  std::string reason;
};
// Given pVar per run so far (held-out, or training when there is no split). Stops at a non-finite
// value (best run kept), or when the last improvement is `window` runs old.
StopDecision should_stop(const std::vector<double>& pvar, const StopRule& rule = {});

}  // namespace cohortnet::fit
