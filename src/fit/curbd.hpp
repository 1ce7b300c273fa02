#pragma once
// The data-constrained multi-region RNN of one animal (CURBD, trained by recursive least squares /
// FORCE), distributed over the ranks of a communicator. J (target x source) and P are PETSc
// MATMPIDENSE matrices split by rows (PETSc decides the split; MatGetOwnershipRange); each rank
// holds its rows of J, P, the target and the input noise. Per RNN step the ranks exchange only the
// rate vector r (length N), and per learning step also k = P r: no rank ever holds an N x N matrix
// and nothing of size N x N is allocated per step. See docs/fit.md for the math and the alignment.
#include <mpi.h>
#include <petscmat.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/parallel.hpp"
#include "io/animal.hpp"

namespace cohortnet::fit {

// Target = activity / max: one max (Global), each region's (Region), or the activity as it is
// (None: for data that already are rates in [-1, 1], such as the simulator's).
enum class Normalise { Global, Region, None };
// How RLS shares its inverse correlation matrix P between the rows of J (docs/fit.md, "Prior").
// Shared: one P for all rows (the reference). Region: the rows of each target region Q use their
// own P_Q, initialised p0 for sources in Q and p0*prior_ratio for sources in other regions, and
// J0's inter-region blocks are zero: inter-region weights are learned only where the data need them.
enum class Prior { Shared, Region };
// Where training starts (docs/currents.md, "Regression start"). Random: the reference's J0 =
// g randn / sqrt(N) (region prior: inter-region blocks zero). Regression: J (and W_in) from a
// ridge regression of the input current the data imply, x + tau dx/dt with x = atanh(target), on
// the target rates (and inputs), done as one RLS pass over the samples with its own prior
// (start_p0, start_ratio); RLS training then continues from there with the usual P.
enum class Start { Random, Regression };

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
  Prior prior = Prior::Region;
  // Prior::Region: P_Q's initial variance of other-region sources / p0. Unset: 1e-5 after the
  // regression start (the inter-region weights come from the regression; training adjusts them
  // little), 1e-3 from the random J0 (training has to learn them). docs/currents.md.
  std::optional<double> prior_ratio;
  bool use_inputs = true;         // the animal's /inputs enter through learned weights W_in (--inputs use)
  // RLS rank-1 updates of J and P applied together every update_block learning steps (exact
  // corrections in between; 1 = every step). Changes results only by rounding. docs/performance.md
  int update_block = 8;
  Start start = Start::Regression;
  double start_p0 = 100;     // Start::Regression: prior variance of the weights (1 / ridge penalty)
  double start_ratio = 1e-2;  // ... of other regions' sources relative to start_p0 (region prior)
  int total_runs() const { return runs_train + runs_free; }
  // The prior actually used: --reference-compat means the reference's shared P.
  bool region_prior() const { return prior == Prior::Region && !reference_compat; }
  bool inputs_used() const { return use_inputs && !reference_compat; }
  // The start actually used: --reference-compat means the reference's random J0.
  bool starts_from_regression() const { return start == Start::Regression && !reference_compat; }
  double prior_ratio_used() const { return prior_ratio ? *prior_ratio : starts_from_regression() ? 1e-5 : 1e-3; }
};

// Throws Error naming the option (--tau-rnn, --dt-factor ...) for a value out of range.
void check_params(const Params& p);
const char* normalise_name(Normalise n);
Normalise parse_normalise(const std::string& s);  // "global" | "region" | "none", else Error naming --normalise
const char* prior_name(Prior p);
Prior parse_prior(const std::string& s);  // "shared" | "region", else Error naming --prior
const char* start_name(Start s);
Start parse_start(const std::string& s);  // "random" | "regression", else Error naming --start
// "auto" (unset) or a number >= 0, else Error naming --prior-ratio.
std::optional<double> parse_prior_ratio(const std::string& s);

// The fit stopped because J or P stopped being finite or P lost its positive diagonal.
class Diverged : public Error {
 public:
  explicit Diverged(const std::string& what) : Error(what) {}
};

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

// A text that changes whenever a parameter that changes the result changes (recorded in
// checkpoints and outputs; --resume refuses to mix).
std::string fingerprint(const Params& p, std::int64_t n_units, std::int64_t n_samples, double dt_data,
                        std::uint64_t animal_index, std::int64_t n_inputs = 0);

// The options in which two fingerprints differ, as "dt_factor 1 -> 5, inputs (none) -> 2": what a
// resume mismatch says instead of both parameter lists.
std::string fingerprint_diff(const std::string& was, const std::string& now);

struct RunStats {
  int run = 0;  // 0-based
  bool train = false;
  double pvar = 0, chi2 = 0;
  bool complete = true;  // false: stopped inside the run by the stop check (checkpoint, resume)
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
  bool finished() const { return runs_done() >= params_.total_runs(); }
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
  std::vector<double> local_P() const;      // rows x N, row-major (shared prior; region prior: all P_Q stacked, q-major)
  std::vector<double> local_P(int q) const;  // region prior: this rank's rows of P_q (rows x N)
  int n_p() const { return int(PQ_.size()); }  // region prior: M; shared: 0
  // Input channels (--inputs use and the animal has /inputs): n_in inputs, W_in rows x n_in.
  int n_inputs() const { return n_in_; }
  std::vector<double> local_W_in() const { return Win_; }  // rows x n_in, row-major
  std::vector<double> local_rates() const;  // rows x T, row-major (rates at the samples, last run)
  std::vector<double> full_rates() const;   // N x T on every rank (collective)
  const std::vector<double>& scale() const { return scale_; }  // per region
  // Samples a training run learns from (the schedule of the chosen alignment).
  std::int64_t learning_samples_per_run() const;
  double sigma() const { return sigma_; }
  Mat J() const { return J_; }
  Mat P() const { return P_; }

 private:
  void setup(const AnimalData& data, const Init* init);
  void build_schedule();
  void check_health();
  void regression_start();  // Start::Regression, before the first run
  // One RLS step's shared part for P block q (see curbd.cpp). Returns c = 1 / (1 + z.Pz).
  double rls_gain(int q, const double* r, const double* uin, double* kl, double* k, double* ku, int run,
                    std::int64_t sample);
  // P blocks to diag(p0 for own-region sources, p0 * ratio for others; shared P: p0 I), input parts p0 I.
  void set_prior(double p0, double ratio);

  MPI_Comm comm_;
  AnimalMeta meta_;
  std::uint64_t animal_index_;
  Params params_;
  std::int64_t N_ = 0, T_ = 0, L_ = 0;
  double dt_ = 0;
  RowRange rows_;
  PetscInt m_ = 0;  // local rows
  std::vector<int> counts_, offsets_;
  Mat J_ = nullptr, P_ = nullptr;  // P_: shared prior only
  std::vector<Mat> PQ_;            // region prior: P_Q per target region Q, N x N, split like J
  std::vector<int> row_region_;    // region of each local row
  // Input channels: the RLS runs on z = [r; u] with P of size N + n_in. Each P block (the shared P,
  // or each P_Q) is split as [[P_rr, P_ru], [P_ur, P_uu]]: P_rr is the PETSc matrix (rows local),
  // P_ru its local rows' input columns (m x n_in), and the n_in input rows [P_ur P_uu]
  // (n_in x (N + n_in)) are held by every rank and updated identically (small).
  int n_in_ = 0;
  std::vector<double> U_;                 // inputs at the samples, T x n_in (sample-major)
  std::vector<double> Win_;               // m x n_in, row-major
  std::vector<std::vector<double>> pru_;  // per P block: m x n_in, row-major
  std::vector<std::vector<double>> pu_;   // per P block: n_in x (N + n_in), row-major
  std::vector<int> row_group_;            // P block of each local row (0 for the shared P)
  std::vector<double> D_;      // target, local rows: T x m (sample-major)
  std::vector<double> noise_;  // L x m (step-major), u[step][row]
  std::vector<double> R_;      // rates at samples of the last run: T x m
  std::vector<double> scale_;  // per region
  double sigma_ = 0;
  // Per RNN iteration tt (1 .. n_iter): which sample to reset to / record / learn (-1 = none).
  int n_iter_ = 0;
  std::vector<std::int64_t> reset_at_, record_at_, learn_at_;
  std::vector<double> pvar_, chi2_;
  std::function<bool()> stop_check_;
  int stop_every_ = 100;
  int mid_iter_ = 0;  // > 0: a run stopped at the top of this iteration
  bool started_ = false;  // J holds the start (regression_start done, or loaded from a checkpoint)
  double start_r2_ = NAN;  // regression start: online R^2 of the implied input currents
  std::vector<double> mid_x_, mid_err_;
};

}  // namespace cohortnet::fit
