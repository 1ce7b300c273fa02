#include "fit/curbd.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "core/h5.hpp"
#include "core/log.hpp"
#include "core/rng.hpp"
#include "core/text.hpp"
#include "fit/dense.hpp"
#include "fit/events.hpp"
#include "fit/kernels.hpp"
#include "fit/memory.hpp"

namespace cohortnet::fit {

Init read_init(const std::string& path, RowRange rows, std::int64_t n_units, std::int64_t n_steps, MPI_Comm comm) {
  Init init;
  h5::File f = h5::open_read(path, comm);
  auto need = [&](const char* ds, std::int64_t cols) {
    if (!h5::exists(f, ds)) fail("option --init: file ", path, " has no dataset ", ds);
    auto d = h5::dims(f, ds);
    if (d.size() != 2 || std::int64_t(d[0]) != n_units || std::int64_t(d[1]) != cols)
      fail("option --init: file ", path, ": dataset ", ds, " must be [", n_units, " x ", cols, "]");
  };
  need("/J0", n_units);
  need("/inputWN", n_steps);
  init.j0 = h5::read_rows(f, "/J0", rows);
  init.noise = h5::read_rows(f, "/inputWN", rows);
  return init;
}

Trainer::Trainer(const AnimalData& data, std::uint64_t animal_index, const Params& params, MPI_Comm comm,
                 const Init* init)
    : comm_(comm), meta_(data.meta), order_(data.order), animal_index_(animal_index), params_(params) {
  try {
    setup(data, init);
  } catch (...) {
    if (J_) MatDestroy(&J_);  // the destructor does not run for a failed constructor
    throw;
  }
}

// --input-smoothing: the animal's inputs (channel-major, C x T) followed by each one smoothed with
// each time constant, s(t) = s(t-1) + a (u(t) - s(t-1)), a = 1 - exp(-dt / tau), s = u at every
// trial start (causal: a channel at t uses inputs up to t only, so nothing crosses from a
// held-out block into the training samples before it). Appends the channels' names to meta_.
std::vector<double> Trainer::smoothed_inputs(const AnimalData& data) {
  std::vector<double> out = data.inputs;
  if (params_.input_smoothing.empty() || !params_.inputs_used()) return out;
  const size_t C = meta_.input_names.size(), T = size_t(meta_.n_samples);
  if (C == 0)
    fail("animal ", meta_.animal_id, ": option --input-smoothing needs the animal's known inputs (/inputs); it has none");
  if (data.inputs.size() != C * T)
    fail("animal ", meta_.animal_id, ": ", data.inputs.size(), " input values given for ", C, " inputs x ", T, " samples");
  std::vector<char> restart(T, 0);
  restart[0] = 1;
  for (std::int64_t s : meta_.trial_starts)
    if (s >= 0 && size_t(s) < T) restart[size_t(s)] = 1;
  for (double tau : params_.input_smoothing) {
    const double a = 1.0 - std::exp(-meta_.sample_interval / tau);
    for (size_t c = 0; c < C; ++c) {
      const double* u = &data.inputs[c * T];
      const size_t at = out.size();
      out.resize(at + T);
      double s = 0;
      for (size_t t = 0; t < T; ++t) {
        s = restart[t] ? u[t] : s + a * (u[t] - s);
        out[at + t] = s;
      }
      std::ostringstream name;
      name << meta_.input_names[c] << "~" << tau << "s";
      if (std::find(meta_.input_names.begin(), meta_.input_names.end(), name.str()) != meta_.input_names.end())
        fail("animal ", meta_.animal_id, ": option --input-smoothing makes the input channel name ", name.str(),
             " twice (time constants too close, or an input already named so)");
      meta_.input_names.push_back(name.str());
    }
  }
  return out;
}

void Trainer::setup(const AnimalData& data, const Init* init) {
  check_params(params_);
  const std::string& id = meta_.animal_id;
  N_ = meta_.n_units;
  T_ = meta_.n_samples;
  const std::vector<double> inputs = smoothed_inputs(data);  // also names the smoothed channels in meta_
  setup_quality(data);  // may set tau-rnn and dt-factor from the data
  L_ = (T_ - 1) * params_.dt_factor + 1;
  dt_ = meta_.sample_interval / double(params_.dt_factor);
  if (N_ > 2000000000 || L_ > 2000000000) fail("animal ", id, ": too many units or RNN steps for this build");

  // The layout is PETSc's: create J first and take its row split; the data must match it.
  J_ = create_dense(comm_, PETSC_DECIDE, PetscInt(N_));
  PetscInt b = 0, e = 0;
  COHORTNET_PETSC(MatGetOwnershipRange(J_, &b, &e));
  rows_ = RowRange{b, e};
  m_ = e - b;
  {
    // Checks that may differ between ranks are agreed before the next collective.
    std::string err;
    if (data.rows.begin != b || data.rows.end != e)
      err = cat("animal ", id, ": the activity rows given to the fit (", data.rows.begin, "-", data.rows.end,
                ") are not PETSc's row split (", b, "-", e, "); read them with read_animal on the same communicator");
    else if (data.activity.size() != size_t(e - b) * size_t(T_))
      err = cat("animal ", id, ": ", data.activity.size(), " activity values given for ", e - b, " rows x ", T_, " samples");
    else if (!order_.is_file_order() && order_.file_unit.size() != size_t(N_))
      err = cat("animal ", id, ": the unit order has ", order_.file_unit.size(), " units, the animal ", N_);
    else if (init && !init->j0.empty() && !order_.is_file_order())
      err = cat("animal ", id, ": injected J0/noise need the file's unit order");
    else if (init && !init->j0.empty() &&
             (init->j0.size() != size_t(e - b) * size_t(N_) || init->noise.size() != size_t(e - b) * size_t(L_)))
      err = cat("animal ", id, ": injected J0/noise rows have the wrong size (need ", e - b, " x ", N_, " and ", e - b,
                " x ", L_, ")");
    agree(comm_, err);
  }
  row_layout(PetscInt(N_), comm_, counts_, offsets_);

  // Memory per rank from the plan (memory.hpp), before the large allocations; J and the activity
  // rows are already resident (MemAvailable no longer counts them).
  {
    FitSizes sz;
    sz.n_units = N_;
    sz.n_samples = T_;
    sz.n_regions = meta_.n_regions();
    for (int q = 0; q < meta_.n_regions(); ++q)
      sz.largest_region = std::max<std::int64_t>(sz.largest_region, std::int64_t(meta_.units_of(q).size()));
    sz.n_inputs = params_.inputs_used() ? int(meta_.input_names.size()) : 0;
    sz.ranks = comm_size(comm_);
    const MemoryPlan plan = plan_fit_memory(sz, params_);
    log::info(comm_, id, ": memory plan ", plan.peak / 1e6, " MB per rank (peak in ", plan.peak_phase, ")");
    const double bytes = plan.peak - 8.0 * (double(m_) * double(N_) + double(m_) * double(T_));
    MPI_Comm node;
    MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    const int per_node = comm_size(node);
    MPI_Comm_free(&node);
    const double have = double(available_memory_bytes()) / double(per_node);
    std::string err;
    if (bytes > 0.9 * have)
      err = cat("animal ", id, ": the fit needs ", plan.peak / 1e9, " GB per rank (", plan.peak_phase, ") but only ",
                (have + 8.0 * (double(m_) * double(N_) + double(m_) * double(T_))) / 1e9,
                " GB are available per rank; use more ranks per animal (--ranks-per-animal). The plan:\n", plan.table());
    agree(comm_, err);
  }

  // Target: D = A / max (global or per region; none: A as it is), clipped to [-0.999, 0.999];
  // sigma = population std.
  const int M = meta_.n_regions();
  std::vector<double> mx(size_t(M), -INFINITY);
  for (PetscInt i = 0; i < m_; ++i) {
    const int q = meta_.unit_region[size_t(b + i)];
    for (std::int64_t t = 0; t < T_; ++t)
      mx[size_t(q)] = std::max(mx[size_t(q)], data.activity[size_t(i) * size_t(T_) + size_t(t)]);
  }
  MPI_Allreduce(MPI_IN_PLACE, mx.data(), M, MPI_DOUBLE, MPI_MAX, comm_);
  scale_.assign(size_t(M), 0.0);
  if (params_.normalise == Normalise::None) {
    // The activity is taken as the units' rates: it must lie in [-1, 1] (tanh's range).
    double amax = 0;
    for (double v : data.activity) amax = std::max(amax, std::abs(v));
    MPI_Allreduce(MPI_IN_PLACE, &amax, 1, MPI_DOUBLE, MPI_MAX, comm_);
    if (!(amax <= 1.0))
      fail("animal ", id, ": --normalise none needs activity in [-1, 1] (the rates of tanh units); the largest |value| is ",
           amax, "; use --normalise global");
    std::fill(scale_.begin(), scale_.end(), 1.0);
  } else if (params_.normalise == Normalise::Global) {
    const double g = *std::max_element(mx.begin(), mx.end());
    if (!(g > 0)) fail("animal ", id, ": the largest activity value is ", g, " (<= 0); cannot normalise by the maximum (--normalise global)");
    std::fill(scale_.begin(), scale_.end(), g);
  } else {
    for (int q = 0; q < M; ++q) {
      if (!(mx[size_t(q)] > 0))
        fail("animal ", id, ": region ", meta_.region_names[size_t(q)], " has largest activity ", mx[size_t(q)],
             " (<= 0); cannot normalise it by its maximum (--normalise region)");
      scale_[size_t(q)] = mx[size_t(q)];
    }
  }
  D_.assign(size_t(T_) * size_t(m_), 0.0);
  double sum = 0;
  for (PetscInt i = 0; i < m_; ++i) {
    const double s = scale_[size_t(meta_.unit_region[size_t(b + i)])];
    for (std::int64_t t = 0; t < T_; ++t) {
      double v = data.activity[size_t(i) * size_t(T_) + size_t(t)] / s;
      v = std::min(0.999, std::max(-0.999, v));
      D_[size_t(t) * size_t(m_) + size_t(i)] = v;
      sum += v;
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_DOUBLE, MPI_SUM, comm_);
  const double mean = sum / (double(N_) * double(T_));
  double ss = 0;
  for (double v : D_) ss += (v - mean) * (v - mean);
  MPI_Allreduce(MPI_IN_PLACE, &ss, 1, MPI_DOUBLE, MPI_SUM, comm_);
  sigma_ = std::sqrt(ss / (double(N_) * double(T_)));
  if (!(sigma_ > 0)) fail("animal ", id, ": the normalised activity is constant (std 0); pVar is undefined");

  // J0 and input noise: drawn per row from the animal's streams (rank-count independent), or injected.
  const bool injected = init && !init->j0.empty();
  if (injected) {
    from_row_major(J_, m_, PetscInt(N_), init->j0);
  } else {
    DenseArray d(J_);
    const double s = params_.g / std::sqrt(double(N_));
    // Keyed by the file's unit indices (row stream, column position), so the unit order the fit
    // uses does not change the draws.
    std::vector<double> row(static_cast<size_t>(N_));
    for (PetscInt i = 0; i < m_; ++i) {
      Stream st(params_.seed, {kTagJ0, animal_index_, std::uint64_t(order_.file_index(b + i))});
      for (auto& v : row) v = s * st.normal();
      for (PetscInt j = 0; j < PetscInt(N_); ++j) d.a[i + j * d.lda] = row[size_t(order_.file_index(j))];
    }
    if (params_.per_region_p()) {
      // Region prior: no inter-region weights to begin with (same draws, inter-region blocks
      // zeroed); each within-region block scaled to g / sqrt(N_Q), so every region on its own is
      // the reference's network of gain g (zeroing alone would leave gain g sqrt(N_Q/N); measured
      // slightly worse currents, docs/currents.md).
      std::vector<double> fac(size_t(M), 0.0);
      for (int q = 0; q < M; ++q) {
        const double nq = double(meta_.units_of(q).size());
        fac[size_t(q)] = nq > 0 ? std::sqrt(double(N_) / nq) : 0.0;
      }
      for (PetscInt j = 0; j < PetscInt(N_); ++j)
        for (PetscInt i = 0; i < m_; ++i) {
          const int q = meta_.unit_region[size_t(b + i)];
          d.a[i + j * d.lda] = meta_.unit_region[size_t(j)] != q ? 0.0 : d.a[i + j * d.lda] * fac[size_t(q)];
        }
    }
  }
  noise_.assign(size_t(L_) * size_t(m_), 0.0);
  if (injected) {
    for (PetscInt i = 0; i < m_; ++i)
      for (std::int64_t t = 0; t < L_; ++t)
        noise_[size_t(t) * size_t(m_) + size_t(i)] = init->noise[size_t(i) * size_t(L_) + size_t(t)];
  } else {
    const double amp = std::sqrt(params_.tau_wn / dt_), decay = std::exp(-dt_ / params_.tau_wn);
    for (PetscInt i = 0; i < m_; ++i) {
      Stream st(params_.seed, {kTagNoise, animal_index_, std::uint64_t(order_.file_index(b + i))});
      double u = 1.0;
      (void)st.normal();  // w[0] is drawn (and unused), as in the method's definition
      noise_[size_t(i)] = params_.amp_in_wn * u;
      for (std::int64_t t = 1; t < L_; ++t) {
        const double w = amp * st.normal();
        u = w + (u - w) * decay;
        noise_[size_t(t) * size_t(m_) + size_t(i)] = params_.amp_in_wn * u;
      }
    }
  }
  row_region_.resize(size_t(m_));
  for (PetscInt i = 0; i < m_; ++i) row_region_[size_t(i)] = meta_.unit_region[size_t(b + i)];
  // Input channels: W_in = 0 (their P parts: the learner's prior).
  n_in_ = params_.inputs_used() ? int(meta_.input_names.size()) : 0;
  UnitLayout lay;
  lay.comm = comm_;
  lay.N = PetscInt(N_);
  lay.rows = rows_;
  lay.counts = counts_;
  lay.offsets = offsets_;
  lay.unit_region = meta_.unit_region;
  lay.n_regions = M;
  lay.region_names = meta_.region_names;
  rls_ = std::make_unique<Rls>(params_.prior_used(), lay, n_in_, params_.update_block);
  if (n_in_ > 0) {
    if (inputs.size() != size_t(n_in_) * size_t(T_))
      fail("animal ", id, ": ", inputs.size(), " input values given for ", n_in_, " inputs x ", T_, " samples");
    U_.assign(size_t(T_) * size_t(n_in_), 0.0);
    for (int c = 0; c < n_in_; ++c)
      for (std::int64_t t = 0; t < T_; ++t) U_[size_t(t) * size_t(n_in_) + size_t(c)] = inputs[size_t(c) * size_t(T_) + size_t(t)];
    Win_.assign(size_t(m_) * size_t(n_in_), 0.0);
  }
  if (params_.gains_used()) {
    if (n_in_ == 0 && !params_.latent_gains())
      fail("animal ", id, ": option --gains inputs needs the animal's known inputs (/inputs, with --inputs use); ",
           "it has none (--gains latent:K takes the gains from the activity instead)");
    make_gain_drivers();
    gains_ = PathwayGains::identity(M, n_drv_);
    col_runs_ = kernels::segments(meta_.unit_region);
    gbuf_.assign(size_t(M) * size_t(M), 1.0);
    pbuf_.assign(size_t(m_), 0.0);
  }
  set_prior(params_.p0, params_.prior_ratio_used());
  R_.assign(size_t(T_) * size_t(m_), 0.0);
  build_schedule();
}

// The held-out split, the reset points and, when asked for, tau-rnn, dt-factor and the horizon
// from the autocorrelation time of the training samples (of the activity: z-scored per unit, so
// the normalisation does not change it). Before anything depends on dt-factor.
void Trainer::setup_quality(const AnimalData& data) {
  const std::string& id = meta_.animal_id;
  try {
    split_ = params_.split_used()
                 ? make_split(T_, meta_.trial_starts, {}, SplitOptions{*params_.holdout, params_.holdout_fraction})
                 : whole_recording(T_, meta_.trial_starts);
  } catch (const Error& e) {
    fail("animal ", id, ": ", e.what());
  }
  const bool need_ac = params_.horizon_used() && params_.horizon_auto;
  const bool auto_time = params_.tau_rnn_auto || params_.dt_factor_auto;
  if (need_ac || auto_time) {
    const Rows a = Rows::row_major(data.activity.data(), std::int64_t(data.rows.count()), T_);
    ac_ = autocorrelation_time(a, split_, comm_);
  }
  if (auto_time) {
    const TimeSettings ts =
        resolve_time_settings(meta_.sample_interval, ac_.tau_samples,
                              params_.tau_rnn_auto ? std::nullopt : std::optional<double>(params_.tau_rnn),
                              params_.dt_factor_auto ? std::nullopt : std::optional<int>(params_.dt_factor));
    params_.tau_rnn = ts.tau_rnn;
    params_.dt_factor = ts.dt_factor;
    if (!ts.warning.empty()) log::warn(comm_, id, ": ", ts.warning);
    time_note_ = cat("autocorrelation time ", ac_.tau_samples, " samples: tau-rnn ", ts.tau_rnn, " s",
                     ts.tau_from_data ? " (from the data)" : "", ", dt-factor ", ts.dt_factor,
                     ts.dt_factor_from_data ? " (from the data)" : "");
  }
  horizon_ = !params_.horizon_used() ? 0 : params_.horizon_auto ? auto_horizon(ac_.tau_samples) : params_.horizon;
  resets_ = horizon_resets(split_, horizon_);
}

Trainer::~Trainer() {
  if (J_) MatDestroy(&J_);
}

// Which RNN iteration resets, records and learns which sample. Iteration tt (1-based) computes
// r = tanh(x) from the state after tt-1 Euler steps, i.e. the rate at time (tt-1)*dt, then advances
// x with J r and the noise of step tt.
void Trainer::build_schedule() {
  const int df = params_.dt_factor;
  std::vector<char> is_start(size_t(T_), 0);
  for (auto s : meta_.trial_starts) is_start[size_t(s)] = 1;
  if (!params_.reference_compat) {
    // Integer alignment: sample i is the rate at time i*dtData, i.e. iteration i*df + 1. Resets at
    // trial starts, the split's edges and every horizon samples (resets_); learning at every
    // other training sample (at a reset the rate is the reset value, not the network's). Held-out
    // samples are run through and recorded, never learned from.
    std::fill(is_start.begin(), is_start.end(), 0);
    for (auto s : resets_) is_start[size_t(s)] = 1;
    n_iter_ = int(L_);
    reset_at_.assign(size_t(n_iter_) + 1, -1);
    record_at_.assign(size_t(n_iter_) + 1, -1);
    learn_at_.assign(size_t(n_iter_) + 1, -1);
    for (std::int64_t i = 1; i < T_; ++i) {
      const size_t tt = size_t(i * df + 1);
      record_at_[tt] = i;
      if (is_start[size_t(i)]) reset_at_[tt] = i;
      else if (!split_.held_out[size_t(i)]) learn_at_[tt] = i;
    }
  } else {
    // The reference: a float accumulator of dt decides when to learn, and each learning step takes
    // the next unlearned sample; pVar uses the rate at the RNN step nearest each sample time;
    // resets at RNN step start*df (before that step's rate).
    n_iter_ = int(L_ - 1);
    reset_at_.assign(size_t(n_iter_) + 1, -1);
    record_at_.assign(size_t(n_iter_) + 1, -1);
    learn_at_.assign(size_t(n_iter_) + 1, -1);
    for (std::int64_t i = 1; i < T_; ++i) {
      const std::int64_t tt = i * df;
      if (tt <= n_iter_) record_at_[size_t(tt)] = i;
      if (is_start[size_t(i)] && tt <= n_iter_) reset_at_[size_t(tt)] = i;
    }
    const double dt_data = meta_.sample_interval;
    const double dt = dt_data / double(df);
    double t_learn = 0;
    std::int64_t next = 0;
    for (int tt = 1; tt <= n_iter_; ++tt) {
      t_learn += dt;
      if (t_learn >= dt_data) {
        t_learn = 0;
        if (next < T_) learn_at_[size_t(tt)] = next++;
      }
    }
  }
}

RunStats Trainer::run_next() {
  RunStats st = run(false);
  if (!st.complete) return st;
  if (st.train) {
    // A saturated network is named when it happens (training_failure on this run's rates at the
    // training samples), not after the last run. A collapse is judged after the last run
    // (classify_fit): early runs can dip by more than the collapse margin and recover (measured:
    // 0.217 -> -0.548 from run 1 to 2 on tests/fit's planted-input animal).
    const Saturation sat = saturation(Rows::time_major_of(R_.data(), m_, T_), Rows::time_major_of(D_.data(), m_, T_),
                                      split_, Part::Train, comm_);
    const std::string why = training_failure({}, sat, false);
    if (!why.empty()) throw Diverged(cat("animal ", meta_.animal_id, ": the fit failed in training run ", st.run + 1, ": ", why));
    after_training_run(st.run);
  }
  return st;
}

RunStats Trainer::run(bool noise_free_eval) {
  const int run = runs_done();
  if (run >= total_runs() && !noise_free_eval) fail("animal ", meta_.animal_id, ": all runs are done");
  if (!started_) {
    if (params_.starts_from_regression() && run == 0 && mid_iter_ == 0) {
      StageScope stage(events().start);
      regression_start();
    }
    started_ = true;
    if (run == 0 && mid_iter_ == 0 && !noise_free_eval && params_.stop_used() && params_.starts_from_regression() &&
        params_.runs_train > 0)
      score_start();
  }
  const bool train = run < runs_train_used() && !noise_free_eval;
  const PetscInt N = PetscInt(N_), m = m_;
  const std::vector<double> no_noise(noise_free_eval ? size_t(m_) : 0, 0.0);
  const double dt = dt_, tau = params_.tau_rnn;
  const size_t ms = static_cast<size_t>(m), Ns = static_cast<size_t>(N);
  std::vector<double> x(ms), y(ms), e(ms);
  std::vector<double> ra(Ns), rb(Ns);
  std::vector<double> rla(ms), rlb(ms);
  double* r = ra.data();       // full rate of the current iteration
  double* rn = rb.data();      // full rate of the next iteration
  double* rl = rla.data();     // local rate, current
  double* rln = rlb.data();    // local rate, next
  std::vector<double> err_sq(static_cast<size_t>(T_), 0.0);
  auto gather = [&](const double* local, double* full) {
    EventScope ev(events().gather);
    MPI_Allgatherv(local, int(m), MPI_DOUBLE, full, counts_.data(), offsets_.data(), MPI_DOUBLE, comm_);
  };
  // Rate of iteration tt from the current x (after a reset if tt is a reset point).
  auto prepare = [&](int tt, double* loc, double* full) {
    const std::int64_t rs = reset_at_[size_t(tt)];
    if (rs >= 0) std::copy_n(&D_[size_t(rs) * size_t(m)], size_t(m), x.begin());
    for (PetscInt i = 0; i < m; ++i) loc[i] = std::tanh(x[size_t(i)]);
    gather(loc, full);
  };

  int tt0 = 1;
  if (mid_iter_ > 0) {
    // Continue a run stopped mid-way (checkpoint): state, partial rates and error sums.
    tt0 = mid_iter_;
    x = mid_x_;
    err_sq = mid_err_;
    mid_iter_ = 0;
  } else {
    std::copy_n(D_.begin(), size_t(m), x.begin());
    for (PetscInt i = 0; i < m; ++i) R_[size_t(i)] = std::tanh(x[size_t(i)]);
  }
  StageScope stage(events().train);
  DenseArray Ja(J_);
  Rls& rls = *rls_;
  const int n_in = n_in_;
  // Delayed rank-1 updates of J (kernels.hpp): up to B terms e_s (c k)^T stay pending and are
  // applied in one pass fused with the next J r; products in between subtract them exactly. The
  // row vectors c k are the learner's (P's terms use the same); J's terms stay in step with P's.
  const int B = params_.update_block;
  std::vector<double> Ju(size_t(B) * ms);  // J's pending local columns e_s
  int j_count = 0;
  const int G = rls.j_slots();
  const std::vector<kernels::Segment>& j_segs = rls.j_segments();
  // Gated pathways: J's pending terms touch only a row's own region's columns (block prior),
  // whose gain is 1, so subtract_pending stays exact on the gated product.
  const bool gated = !gains_.empty();
  std::vector<double> dots(size_t(B) * size_t(G));
  auto flush_j = [&](const double* xv, double* yv) {
    kernels::apply_updates(m, N, Ja.a, Ja.lda, j_count, Ju.data(), rls.j_rows(), G, j_segs, xv, yv);
    j_count = 0;
  };
  // The inputs held during RNN iteration tt (rate at time (tt-1) dt): sample floor((tt-1)/df).
  auto input_at = [&](int tt) -> const double* {
    const std::int64_t s = std::min<std::int64_t>(T_ - 1, std::int64_t(tt - 1) / params_.dt_factor);
    return &U_[size_t(s) * size_t(n_in)];
  };
  auto driver_at = [&](int tt) -> const double* {  // the gains' drivers, held as the inputs
    const std::int64_t s = std::min<std::int64_t>(T_ - 1, std::int64_t(tt - 1) / params_.dt_factor);
    return &Gd_[size_t(s) * size_t(n_drv_)];
  };
  prepare(tt0, rl, r);
  bool have_y = false;
  int since_check = 0;
  for (int tt = tt0; tt <= n_iter_; ++tt) {
    // A stop (checkpoint) is taken only where no update of J is pending and P's are either none
    // or a full block (Rls::quiet); such an iteration comes at least once per B learning steps.
    if (stop_check_ && !noise_free_eval && tt > tt0 && ++since_check >= stop_every_ && j_count == 0 && rls.quiet()) {
      since_check = 0;
      if (stop_check_()) {
        rls.flush();
        mid_iter_ = tt;
        mid_x_ = x;
        mid_err_ = err_sq;
        RunStats st;
        st.run = run;
        st.train = train;
        st.complete = false;
        return st;
      }
    }
    const std::int64_t rec = record_at_[size_t(tt)];
    if (rec >= 0) std::copy_n(rl, size_t(m), &R_[size_t(rec) * size_t(m)]);
    const bool advance = tt < n_iter_;
    if (advance) {
      EventScope ev(events().rnn_step);
      if (!have_y) {
        if (gated) gated_product(r, driver_at(tt), y.data());
        else kernels::gemv(m, N, Ja.a, Ja.lda, r, y.data());
        if (j_count > 0) {
          rls.j_dots(j_count, r, dots.data());
          kernels::subtract_pending(m, j_count, Ju.data(), dots.data(), G, j_segs, y.data());
        }
      }
      const double* u = noise_free_eval ? no_noise.data() : &noise_[size_t(tt) * size_t(m)];
      if (n_in > 0) {
        const double* uin = input_at(tt);
        for (PetscInt i = 0; i < m; ++i) {
          double wu = 0;
          for (int c = 0; c < n_in; ++c) wu += Win_[size_t(i) * size_t(n_in) + size_t(c)] * uin[c];
          x[size_t(i)] = x[size_t(i)] + dt * (-x[size_t(i)] + (y[size_t(i)] + wu + u[i])) / tau;
        }
      } else {
        for (PetscInt i = 0; i < m; ++i) x[size_t(i)] = x[size_t(i)] + dt * (-x[size_t(i)] + (y[size_t(i)] + u[i])) / tau;
      }
    }
    have_y = false;
    const std::int64_t ls = learn_at_[size_t(tt)];
    if (ls >= 0) {
      const double* d = &D_[size_t(ls) * size_t(m)];
      double s2 = 0;
      for (PetscInt i = 0; i < m; ++i) {
        e[size_t(i)] = rl[i] - d[i];
        s2 += e[size_t(i)] * e[size_t(i)];
      }
      err_sq[size_t(ls)] += s2;
    }
    if (advance) prepare(tt + 1, rln, rn);
    if (ls >= 0 && train) {
      // RLS on z = [r; u]: the learner's gains c k per P; J -= e (c k_r)^T, W_in -= e (c k_u)^T.
      EventScope ev(events().learn_step);
      const double* uin = n_in > 0 ? input_at(tt) : nullptr;
      rls.step(r, uin, meta_.animal_id, run, ls);
      if (rls.count() != j_count + 1) fail("internal: delayed updates of P and J out of step");
      std::copy_n(e.data(), ms, Ju.data() + size_t(j_count) * ms);
      ++j_count;
      for (PetscInt i = 0; i < m && n_in > 0; ++i) {
        const double* sw = rls.input_gain(i);
        for (int d = 0; d < n_in; ++d) Win_[size_t(i) * size_t(n_in) + size_t(d)] -= e[size_t(i)] * sw[d];
      }
      if (j_count == B) {
        // The full block of J's terms, fused with the next iteration's J r (its rate is known;
        // with gains the product is gated_product's, after the pass).
        flush_j(advance && !gated ? rn : nullptr, advance && !gated ? y.data() : nullptr);
        have_y = advance && !gated;
      }
    }
    if (advance) {
      std::swap(r, rn);
      std::swap(rl, rln);
    }
  }
  // The end of the run applies whatever is pending.
  if (j_count > 0) flush_j(nullptr, nullptr);
  rls.flush();

  // chi2 and pVar: local sums, one reduction each.
  MPI_Allreduce(MPI_IN_PLACE, err_sq.data(), int(T_), MPI_DOUBLE, MPI_SUM, comm_);
  double chi2 = 0;
  for (double v : err_sq) chi2 += v / double(N_);
  double dist = 0;
  for (size_t z = 0; z < D_.size(); ++z) dist += (D_[z] - R_[z]) * (D_[z] - R_[z]);
  MPI_Allreduce(MPI_IN_PLACE, &dist, 1, MPI_DOUBLE, MPI_SUM, comm_);
  const double ratio = std::sqrt(dist) / (std::sqrt(double(N_) * double(T_)) * sigma_);
  const double pvar = 1.0 - ratio * ratio;
  if (noise_free_eval) return RunStats{run, false, pvar, chi2};
  pvar_.push_back(pvar);
  chi2_.push_back(chi2);
  // Held-out pVar of this run (non-reset samples): what the stopping rule watches.
  pvar_held_.push_back(params_.split_used()
                           ? pvar_score(Rows::time_major_of(D_.data(), m_, T_), Rows::time_major_of(R_.data(), m_, T_),
                                        split_, resets_, Part::HeldOut, comm_)
                                 .non_reset
                           : NAN);
  check_health();
  return RunStats{run, train, pvar, chi2};
}

// The regression start as the stopping rule's run 0: RLS training can make the held-out pVar
// worse than the start's (docs/fit.md: on the simulated cohort 0.75 -> 0.25 in 50 runs, on the
// zebrafish recording likewise), and a rule that keeps only the best *training* run could not
// give the start back. A noise-free run without learning (it does not change J or the history).
void Trainer::score_start() {
  const RunStats st = run(true);
  start_score_ = params_.split_used()
                     ? pvar_score(Rows::time_major_of(D_.data(), m_, T_), Rows::time_major_of(R_.data(), m_, T_),
                                  split_, resets_, Part::HeldOut, comm_)
                           .non_reset
                     : st.pvar;
  best_J_ = local_J();
  best_Win_ = Win_;
  best_run_ = -1;
}

// --stop-when-flat W: after each training run, keep the best run's J (held-out pVar, or the
// training pVar without a split; the scored regression start is run 0) and end training when it
// has not improved for W runs; at the end of training the best run's J is the one the free runs
// and the output use.
void Trainer::after_training_run(int run) {
  if (!params_.stop_used()) return;
  const std::vector<double>& h = params_.split_used() ? pvar_held_ : pvar_;
  const bool with_start = std::isfinite(start_score_);
  std::vector<double> hist;
  if (with_start) hist.push_back(start_score_);
  hist.insert(hist.end(), h.begin(), h.begin() + run + 1);
  StopRule rule;
  rule.window = params_.stop_when_flat;
  rule.first_label = with_start ? 0 : 1;
  const StopDecision d = should_stop(hist, rule);
  const int best = d.best_run - (with_start ? 1 : 0);  // -1: the start
  if (best == run) {
    best_J_ = local_J();
    best_Win_ = Win_;
  }
  best_run_ = best;
  const bool last = run + 1 >= params_.runs_train;
  if (!d.stop && !last) return;
  if (d.stop && !last) {
    train_end_ = run + 1;
    stop_reason_ = cat("stopped after training run ", run + 1, ": ", d.reason);
  } else {
    stop_reason_ = cat("all ", params_.runs_train, " training runs done; best ", stop_run_name(best + 1), " (pVar ", d.best, ")");
  }
  if (best_run_ != run && !best_J_.empty()) {
    from_row_major(J_, m_, PetscInt(N_), best_J_);
    Win_ = best_Win_;
  }
}

void Trainer::check_health() {
  // Once per run: every entry of J, W_in and P finite, P's diagonal positive (it is a covariance).
  int bad_j = 0;
  {
    DenseArray Ja(J_);
    for (PetscInt j = 0; j < PetscInt(N_); ++j) {
      const double* cj = Ja.a + j * Ja.lda;
      for (PetscInt i = 0; i < m_; ++i)
        if (!std::isfinite(cj[i])) bad_j = 1;
    }
  }
  for (double v : Win_)
    if (!std::isfinite(v)) bad_j = 1;
  const auto [p_finite, p_diag] = rls_->healthy();
  int flags[4] = {bad_j, p_finite ? 0 : 1, p_diag ? 0 : 1, std::isfinite(pvar_.back()) ? 0 : 1};
  MPI_Allreduce(MPI_IN_PLACE, flags, 4, MPI_INT, MPI_MAX, comm_);
  if (flags[0] || flags[1] || flags[2] || flags[3])
    throw Diverged(cat("animal ", meta_.animal_id, ": the fit diverged in run ", runs_done(), ": ",
                       flags[0] ? "J has NaN/Inf entries; " : "", flags[1] ? "P has NaN/Inf entries; " : "",
                       flags[2] ? "P lost its positive diagonal; " : "", flags[3] ? "pVar is not finite; " : "",
                       "try a smaller --g or --p0, a larger --tau-rnn or a larger --dt-factor (dt/tau-rnn must stay well below 1)"));
}

std::int64_t Trainer::learning_samples_per_run() const {
  return std::int64_t(std::count_if(learn_at_.begin(), learn_at_.end(), [](std::int64_t v) { return v >= 0; }));
}


}  // namespace cohortnet::fit
