#pragma once
// The data-constrained multi-region RNN of one animal (CURBD, trained by recursive least squares /
// FORCE), distributed over the ranks of a communicator. J (target x source) is a PETSc
// MATMPIDENSE matrix split by rows (PETSc decides the split; MatGetOwnershipRange); each rank
// holds its rows of J, of P (rls.hpp), the target and the input noise. Per RNN step the ranks
// exchange only the rate vector r (length N), and per learning step also k = P r: no rank ever
// holds an N x N matrix. See docs/fit.md for the math and the alignment.
// The Trainer's parts, one file each: params.* (the parameters, declared once), rls.* (the RLS
// learner and its P storages), kernels.* (the streaming passes), trainer.cpp (target, J0, noise,
// schedule, the run loop), start.cpp (the regression start), checkpoint.cpp, output.cpp.
#include <mpi.h>
#include <petscmat.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/parallel.hpp"
#include "fit/gains.hpp"
#include "fit/params.hpp"
#include "fit/quality.hpp"
#include "fit/rls.hpp"
#include "io/animal.hpp"

namespace cohortnet::fit {

// Injected initial state (conformance with the reference, experiments): this rank's rows,
// row-major. j0: rows x N. noise: rows x L, already multiplied by amp_in_wn (the reference's
// inputWN). Empty vectors mean "draw from the seed".
struct Init {
  std::vector<double> j0;
  std::vector<double> noise;
};
// Reads /J0 [N x N] and /inputWN [N x L] (this rank's rows) from an HDF5 file. Collective.
Init read_init(const std::string& path, RowRange rows, std::int64_t n_units, std::int64_t n_steps,
               MPI_Comm comm);

struct RunStats {
  int run = 0;  // 0-based
  bool train = false;
  double pvar = 0, chi2 = 0;
  bool complete = true;  // false: stopped inside the run by the stop check (checkpoint, resume)
};

// The fit's quality after training (Trainer::evaluate; docs/fit.md "Fit quality").
struct FitQuality {
  bool evaluated = false;
  bool split = false;             // a held-out split was used (--holdout)
  std::string split_description;  // make_split's, or "none"
  std::int64_t horizon = 0;       // reset every K samples (0: trial starts and split edges only)
  Autocorrelation ac;             // of the training samples (computed when something needs it)
  Score train, held;              // the last run (as /rates): training samples, held-out samples
  // The same J run freely once more without the input noise (training fits the noise too).
  double pvar_noise_free = NAN;   // over all samples, as the per-run pVar
  Score train_noise_free, held_noise_free;
  std::optional<Baselines> base;  // with a split: on the same split and horizon
  Saturation sat;                 // of the last run's rates (held out, else training samples)
  Verdict verdict;
};

class Trainer {
 public:
  // data: this rank's rows of the animal (rows must be PETSc's split of N over comm, which is what
  // read_animal gives). animal_index names the random streams (J0/noise rows) of this animal.
  Trainer(const AnimalData& data, std::uint64_t animal_index, const Params& params, MPI_Comm comm,
          const Init* init = nullptr);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Runs the next run (training while runs_done() < runs_train, then free). Throws Diverged.
  // With a stop check installed, returns complete = false when it said stop (inside the run);
  // save_checkpoint then records the mid-run state and a resumed Trainer continues exactly there.
  RunStats run_next();
  // Called (collectively: it must give the same answer on every rank) every `every` RNN steps.
  void set_stop_check(std::function<bool()> check, int every) {
    stop_check_ = std::move(check);
    stop_every_ = every > 0 ? every : 1;
  }
  bool inside_run() const { return mid_iter_ > 0; }
  int runs_done() const { return int(pvar_.size()); }
  // Training runs: --runs-train, or fewer when --stop-when-flat ended training early.
  int runs_train_used() const { return train_end_ >= 0 ? train_end_ : params_.runs_train; }
  int total_runs() const { return runs_train_used() + params_.runs_free; }
  bool finished() const { return runs_done() >= total_runs(); }
  // Per run: the held-out pVar over non-reset samples (NaN without a split).
  const std::vector<double>& pvar_heldout() const { return pvar_held_; }
  // --stop-when-flat: why training stopped and which run's J is kept ("" when it did not act;
  // best_run: 0-based, -1 = the regression start or none).
  const std::string& stop_reason() const { return stop_reason_; }
  int best_run() const { return best_run_; }
  double start_score() const { return start_score_; }
  // Wall seconds of the regression start on this rank (NaN before it ran or after a resume).
  double start_seconds() const { return start_seconds_; }
  // After the last run (collective): in-sample and held-out pVar of the last run, the noise-free
  // free run, the baselines on the same split and horizon, saturation and the status. The result
  // is also written by write_result. Does not change J or the recorded rates.
  const FitQuality& evaluate();
  const FitQuality& quality() const { return quality_; }
  const Split& split() const { return split_; }
  const std::vector<std::int64_t>& resets() const { return resets_; }  // every reset sample
  std::int64_t horizon() const { return horizon_; }
  // The parameters in use (tau-rnn / dt-factor resolved from the data when auto).
  const Params& params() const { return params_; }
  const std::vector<double>& pvar() const { return pvar_; }
  const std::vector<double>& chi2() const { return chi2_; }

  // Checkpoint (J, P, the run history) written atomically, each rank its rows. Collective.
  void save_checkpoint(const std::string& path, const std::string& config_text) const;
  // Restores a checkpoint written with the same parameters (any rank count). Throws Error naming
  // the file if it belongs to another animal or other parameters.
  void load_checkpoint(const std::string& path);
  // A text that changes whenever a parameter that changes the result changes.
  std::string fingerprint() const;

  // Final output per docs/fit.md: J, pVar/chi2, rates, scale, metadata and the region-pair
  // currents (src/decompose). Atomic, collective.
  void write_result(const std::string& path, const std::string& config_text, bool per_unit_currents) const;

  // ---- access (tests, decomposition) ----
  const AnimalMeta& meta() const { return meta_; }
  RowRange rows() const { return rows_; }
  std::int64_t n_units() const { return N_; }
  std::int64_t n_samples() const { return T_; }
  std::int64_t n_steps() const { return L_; }
  std::vector<double> local_J() const;      // rows x N, row-major
  std::vector<double> local_P() const;       // every P's rows stacked (shared: rows x N; region: q-major; block: each q's rows x n_q)
  std::vector<double> local_P(int q) const;  // this rank's rows of P_q (region: rows x N; block: rows of q x n_q)
  int n_p() const;                           // P matrices: M (region, block), 0 (shared)
  // Input channels (--inputs use and the animal has /inputs): n_in inputs, W_in rows x n_in.
  int n_inputs() const { return n_in_; }
  std::vector<double> local_W_in() const { return Win_; }  // rows x n_in, row-major
  std::vector<double> local_rates() const;  // rows x T, row-major (rates at the samples, last run)
  std::vector<double> full_rates() const;   // N x T on every rank (collective)
  const std::vector<double>& scale() const { return scale_; }  // per region
  // Samples a training run learns from (the schedule of the chosen alignment).
  std::int64_t learning_samples_per_run() const;
  double sigma() const { return sigma_; }
  // --gains inputs: the pathway gains (empty without); their values at every sample, M x M x T
  // (index (q*M + s)*T + t, the fit's region order = the animal's).
  const PathwayGains& gains() const { return gains_; }
  std::vector<double> gains_at_samples() const;
  // What the gains are linear in, T x n_gain_drivers (sample-major): the inputs or latent factors.
  const std::vector<double>& gain_drivers() const { return Gd_; }
  int n_gain_drivers() const { return n_drv_; }
  Mat J() const { return J_; }

 private:
  void setup(const AnimalData& data, const Init* init);  // trainer.cpp
  void setup_quality(const AnimalData& data);             // split, horizon, time settings from the data
  RunStats run(bool noise_free_eval);                     // one run; noise_free_eval: no noise, no learning, no history
  void after_training_run(int run);                       // --stop-when-flat
  void score_start();                                     // --stop-when-flat: the start as run 0
  void make_target(const AnimalData& data);
  void draw_start_and_noise(const Init* init);
  void build_schedule();
  void check_health();
  void regression_start();  // start.cpp: Start::Regression, before the first run
  // start.cpp: the primal form of the same ridge solve (T >> N); returns this rank's residual SS.
  double primal_start(const std::vector<double>& Z, const std::vector<double>& Y, const std::vector<double>& Uz, int Ts);
  // gated_start.cpp: --gains, the regression start with pathway gains (dual or primal form), Gz the
  // gains' drivers at the regression samples (Ts x n_drv); this rank's residual sum of squares.
  double gated_start(const std::vector<double>& Z, const std::vector<double>& Y, const std::vector<double>& Uz,
                     const std::vector<double>& Gz, int Ts);
  // Its primal form's moments (gains.hpp): every source's samples, the folds' H, mean(ut ut^T).
  struct PrimalMoments {
    std::vector<double> Zf;          // Ts x n: the units' samples, then the inputs'
    std::vector<int> feature_region;  // n: source region (-1: an input)
    std::vector<GainMoments> H;       // per fold
    std::vector<double> ubar2;        // (C+1) x (C+1)
  };
  PrimalMoments primal_moments(const std::vector<double>& Z, const std::vector<double>& Uz, const std::vector<double>& uc,
                               const std::vector<GainFold>& folds, size_t ts) const;
  std::vector<GainTargetMoments> target_moments(const PrimalMoments& pm, const std::vector<double>& Yq, size_t rows,
                                                const std::vector<double>& uc, const std::vector<GainFold>& folds) const;
  // start.cpp, shared by both starts: every rank's block of Z broadcast in rank order; W_in from alpha.
  void each_source_block(const std::vector<double>& Z, size_t ts,
                         const std::function<void(PetscInt off, PetscInt rows, const double* Zr)>& use) const;
  void input_weights(const std::vector<double>& alpha, const std::vector<double>& Uz, size_t ts, double p0);
  // y = J_eff(v) r with the pathway gains at drivers v (one gemv per source region's columns).
  void gated_product(const double* r, const double* v, double* y) const;
  void set_prior(double p0, double ratio) { rls_->set_prior(p0, ratio); }

  MPI_Comm comm_;
  AnimalMeta meta_;  // unit_region in the fit's unit order
  UnitOrder order_;  // the fit's unit order (rows and columns of J, P, rates); outputs are in file order
  std::uint64_t animal_index_;
  Params params_;
  std::int64_t N_ = 0, T_ = 0, L_ = 0;
  double dt_ = 0;
  RowRange rows_;
  PetscInt m_ = 0;  // local rows
  std::vector<int> counts_, offsets_;
  Mat J_ = nullptr;             // N x N, rows split by PETSc
  std::unique_ptr<Rls> rls_;    // P (shared, per region, or per region block): rls.hpp
  std::vector<int> row_region_;  // region of each local row
  // Input channels: the RLS runs on z = [r; u]; W_in (m x n_in) learns with P's input part.
  int n_in_ = 0;
  std::vector<double> U_;       // inputs at the samples, T x n_in (sample-major; with --input-smoothing)
  std::vector<double> smoothed_inputs(const AnimalData& data);
  // The gains' drivers at the samples, T x n_drv (sample-major): the input channels (--gains
  // inputs) or the latent factors of the activity (--gains latent:K, gain_drivers.cpp), with names.
  int n_drv_ = 0;
  std::vector<double> Gd_;
  std::vector<std::string> driver_names_;
  void make_gain_drivers();
  std::vector<double> Win_;     // m x n_in, row-major
  std::vector<double> D_;       // target, local rows: T x m (sample-major)
  std::vector<double> noise_;   // L x m (step-major), u[step][row]
  std::vector<double> R_;       // rates at samples of the last run: T x m
  std::vector<double> scale_;   // per region
  double sigma_ = 0;
  // Per RNN iteration tt (1 .. n_iter): which sample to reset to / record / learn (-1 = none).
  int n_iter_ = 0;
  std::vector<std::int64_t> reset_at_, record_at_, learn_at_;
  std::vector<double> pvar_, chi2_;
  std::function<bool()> stop_check_;
  int stop_every_ = 100;
  int mid_iter_ = 0;  // > 0: a run stopped at the top of this iteration
  bool started_ = false;  // J holds the start (regression_start done, or loaded from a checkpoint)
  double start_r2_ = NAN;  // regression start: R^2 of the implied input currents (in sample)
  double start_seconds_ = NAN;
  std::vector<double> mid_x_, mid_err_;
  // Fit quality: the split, every reset sample (segment starts and every horizon_ samples inside).
  Split split_;
  std::vector<std::int64_t> resets_;
  std::int64_t horizon_ = 0;
  Autocorrelation ac_;
  std::string time_note_;  // where tau-rnn / dt-factor came from
  std::vector<double> pvar_held_;
  int train_end_ = -1;     // --stop-when-flat: training ended after this many runs
  // --stop-when-flat: the best run so far (0-based; -1 = the regression start, when scored) and
  // its J and W_in (this rank's rows; empty: none kept).
  int best_run_ = -1;
  std::vector<double> best_J_, best_Win_;
  // The regression start's score, the stopping rule's "run 0" (NaN: not scored): held-out pVar
  // over non-reset samples of a noise-free run of the start (in-sample pVar without a split).
  double start_score_ = NAN;
  std::string stop_reason_;
  FitQuality quality_;
  // --gains inputs: the gain model, and the runs of equal region over J's columns.
  PathwayGains gains_;
  std::vector<kernels::Segment> col_runs_;
  std::string gains_note_;  // rank 0: the start's per-region report
  mutable std::vector<double> gbuf_, pbuf_;
};

}  // namespace cohortnet::fit
