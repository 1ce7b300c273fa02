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
#include "decompose/decompose.hpp"
#include "fit/kernels.hpp"

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

// ---------------------------------------------------------------------------------------------
// Trainer

namespace {

// Rank-1 terms of one matrix not yet applied (kernels::apply_updates): term s adds
// -U_s S_(s,g)^T to the rows of group g. U: local column vectors, S: full row vectors (empty when
// the terms' rows are kept by another PendingUpdates: P_q's row vectors are J's of group q).
struct PendingUpdates {
  int count = 0, G = 1;
  PetscInt m = 0, n = 0;
  std::vector<double> U, S;
  PendingUpdates(int capacity, PetscInt rows, PetscInt cols, int groups)
      : G(groups), m(rows), n(cols), U(size_t(capacity) * size_t(rows)), S(size_t(capacity) * size_t(groups) * size_t(cols)) {}
  double* u(int s) { return U.data() + PetscInt(s) * m; }
  double* s(int t, int g) { return S.data() + (PetscInt(t) * G + g) * n; }
  const double* s(int t, int g) const { return S.data() + (PetscInt(t) * G + g) * n; }
};

struct DenseArray {
  Mat m;
  double* a = nullptr;
  PetscInt lda = 0;
  explicit DenseArray(Mat mat) : m(mat) {
    if (!m) return;  // absent matrix (P_ under the region prior)
    PetscScalar* p = nullptr;
    COHORTNET_PETSC(MatDenseGetArray(m, &p));
    a = p;
    COHORTNET_PETSC(MatDenseGetLDA(m, &lda));
  }
  ~DenseArray() {
    if (!m) return;
    PetscScalar* p = a;
    MatDenseRestoreArray(m, &p);
  }
  DenseArray(const DenseArray&) = delete;
  DenseArray& operator=(const DenseArray&) = delete;
};

Mat create_dense(MPI_Comm comm, PetscInt m, PetscInt N) {
  Mat A = nullptr;
  COHORTNET_PETSC(MatCreateDense(comm, m, PETSC_DECIDE, N, N, nullptr, &A));
  COHORTNET_PETSC(MatAssemblyBegin(A, MAT_FINAL_ASSEMBLY));
  COHORTNET_PETSC(MatAssemblyEnd(A, MAT_FINAL_ASSEMBLY));
  return A;
}

// The local arrays of the RLS blocks: every P_Q (region prior) or the shared P.
std::vector<std::unique_ptr<DenseArray>> p_blocks(const std::vector<Mat>& PQ, Mat P) {
  std::vector<std::unique_ptr<DenseArray>> out;
  if (!PQ.empty())
    for (Mat q : PQ) out.push_back(std::make_unique<DenseArray>(q));
  else
    out.push_back(std::make_unique<DenseArray>(P));
  return out;
}

// Row-major rows x N from a column-major local block, and back.
std::vector<double> to_row_major(Mat A, PetscInt m, PetscInt N) {
  DenseArray d(A);
  std::vector<double> out(size_t(m) * size_t(N));
  for (PetscInt j = 0; j < N; ++j)
    for (PetscInt i = 0; i < m; ++i) out[size_t(i) * size_t(N) + size_t(j)] = d.a[i + j * d.lda];
  return out;
}

void from_row_major(Mat A, PetscInt m, PetscInt N, const std::vector<double>& in) {
  DenseArray d(A);
  for (PetscInt j = 0; j < N; ++j)
    for (PetscInt i = 0; i < m; ++i) d.a[i + j * d.lda] = in[size_t(i) * size_t(N) + size_t(j)];
}

}  // namespace

Trainer::Trainer(const AnimalData& data, std::uint64_t animal_index, const Params& params, MPI_Comm comm,
                 const Init* init)
    : comm_(comm), meta_(data.meta), animal_index_(animal_index), params_(params) {
  try {
    setup(data, init);
  } catch (...) {
    if (J_) MatDestroy(&J_);  // the destructor does not run for a failed constructor
    if (P_) MatDestroy(&P_);
    for (Mat& q : PQ_)
      if (q) MatDestroy(&q);
    throw;
  }
}

void Trainer::setup(const AnimalData& data, const Init* init) {
  check_params(params_);
  const std::string& id = meta_.animal_id;
  N_ = meta_.n_units;
  T_ = meta_.n_samples;
  L_ = (T_ - 1) * params_.dt_factor + 1;
  dt_ = meta_.sample_interval / double(params_.dt_factor);
  if (N_ > 2000000000 || L_ > 2000000000) fail("animal ", id, ": too many units or RNN steps for this build");

  // The layout is PETSc's: create J first and take its row split; the data must match it.
  J_ = create_dense(comm_, PETSC_DECIDE, PetscInt(N_));
  if (!params_.region_prior()) P_ = create_dense(comm_, PETSC_DECIDE, PetscInt(N_));
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
    else if (init && !init->j0.empty() &&
             (init->j0.size() != size_t(e - b) * size_t(N_) || init->noise.size() != size_t(e - b) * size_t(L_)))
      err = cat("animal ", id, ": injected J0/noise rows have the wrong size (need ", e - b, " x ", N_, " and ", e - b,
                " x ", L_, ")");
    agree(comm_, err);
  }
  row_layout(PetscInt(N_), comm_, counts_, offsets_);

  // Memory per rank: J and P rows (region prior: M matrices P_Q), noise rows, target and rates
  // rows, full rates at the end.
  {
    const double n_p = params_.region_prior() ? double(meta_.n_regions()) : 1.0;
    const double bytes = 8.0 * ((1.0 + n_p) * double(m_) * double(N_) + double(m_) * double(L_) +
                                3.0 * double(m_) * double(T_) + double(N_) * double(T_));
    MPI_Comm node;
    MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    const int per_node = comm_size(node);
    MPI_Comm_free(&node);
    const double have = double(available_memory_bytes()) / double(per_node);
    std::string err;
    if (bytes > 0.9 * have)
      err = cat("animal ", id, ": the fit needs ", bytes / 1e9, " GB per rank but only ", have / 1e9,
                " GB are available per rank; use more ranks per animal (--ranks-per-animal)");
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
    for (PetscInt i = 0; i < m_; ++i) {
      Stream st(params_.seed, {kTagJ0, animal_index_, std::uint64_t(b + i)});
      for (PetscInt j = 0; j < PetscInt(N_); ++j) d.a[i + j * d.lda] = s * st.normal();
    }
    if (params_.region_prior()) {
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
      Stream st(params_.seed, {kTagNoise, animal_index_, std::uint64_t(b + i)});
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
  if (params_.region_prior())
    for (int q = 0; q < M; ++q) PQ_.push_back(create_dense(comm_, m_, PetscInt(N_)));
  // Input channels: W_in = 0 (their P parts: set_prior).
  n_in_ = params_.inputs_used() ? int(meta_.input_names.size()) : 0;
  row_group_.assign(size_t(m_), 0);
  if (params_.region_prior()) row_group_ = row_region_;
  if (n_in_ > 0) {
    if (data.inputs.size() != size_t(n_in_) * size_t(T_))
      fail("animal ", id, ": ", data.inputs.size(), " input values given for ", n_in_, " inputs x ", T_, " samples");
    U_.assign(size_t(T_) * size_t(n_in_), 0.0);
    for (int c = 0; c < n_in_; ++c)
      for (std::int64_t t = 0; t < T_; ++t) U_[size_t(t) * size_t(n_in_) + size_t(c)] = data.inputs[size_t(c) * size_t(T_) + size_t(t)];
    Win_.assign(size_t(m_) * size_t(n_in_), 0.0);
  }
  set_prior(params_.p0, params_.prior_ratio_used());
  R_.assign(size_t(T_) * size_t(m_), 0.0);
  build_schedule();
}

void Trainer::set_prior(double p0, double ratio) {
  const PetscInt b = rows_.begin;
  if (!params_.region_prior()) {
    DenseArray d(P_);
    for (PetscInt j = 0; j < PetscInt(N_); ++j)
      for (PetscInt i = 0; i < m_; ++i) d.a[i + j * d.lda] = (b + i == j) ? p0 : 0.0;
  } else {
    // P_Q = diag(p0 for sources in Q, p0 * ratio for the others).
    for (size_t q = 0; q < PQ_.size(); ++q) {
      DenseArray d(PQ_[q]);
      for (PetscInt j = 0; j < PetscInt(N_); ++j)
        for (PetscInt i = 0; i < m_; ++i)
          d.a[i + j * d.lda] = (b + i == j) ? (meta_.unit_region[size_t(j)] == int(q) ? p0 : p0 * ratio) : 0.0;
    }
  }
  // Input channels: each P block's input part p0 I (no cross terms).
  if (n_in_ == 0) return;
  const size_t n_blocks = params_.region_prior() ? PQ_.size() : 1, W = size_t(N_) + size_t(n_in_);
  pru_.assign(n_blocks, std::vector<double>(size_t(m_) * size_t(n_in_), 0.0));
  pu_.assign(n_blocks, std::vector<double>(size_t(n_in_) * W, 0.0));
  for (auto& pu : pu_)
    for (int c = 0; c < n_in_; ++c) pu[size_t(c) * W + size_t(N_) + size_t(c)] = p0;
}

// Start::Regression. The model's equation, tau dx/dt = -x + J r + W_in u, with the data in place
// of the model (x = atanh(D), r = D) gives the input current every unit needs at sample i,
// y_i = x_i + tau (x_{i+1} - x_i) / dt_data. J and W_in are fitted to it by ridge regression on
// z_i = [D_i; u_i], done as one RLS pass over the samples (recursive least squares is exact
// recursive ridge regression: afterwards J = argmin sum_i |J z_i - y_i|^2 + sum_j J_ij^2 / prior_j,
// prior_j from start_p0 and start_ratio). Every sample starts from the data (teacher forcing), so
// the chaos of the network cannot amplify errors, and each region's rows take from other regions
// only the current their own sources cannot give. The rows and kernels are those of training;
// no N x N temporaries; one all-gather of D_i and one of k per P block and sample.
void Trainer::regression_start() {
  const double t0 = MPI_Wtime();
  const PetscInt N = PetscInt(N_), m = m_;
  const size_t ms = size_t(m), Ns = size_t(N);
  const int n_in = n_in_;
  const bool region = params_.region_prior();
  set_prior(params_.start_p0, region ? params_.start_ratio : 1.0);
  DenseArray Ja(J_);
  for (PetscInt j = 0; j < N; ++j) std::fill_n(Ja.a + j * Ja.lda, ms, 0.0);  // ridge towards 0
  std::fill(Win_.begin(), Win_.end(), 0.0);
  const std::vector<std::unique_ptr<DenseArray>> Pa = p_blocks(PQ_, P_);
  const int nb = int(Pa.size());
  std::vector<char> is_start(size_t(T_), 0);
  for (auto st : meta_.trial_starts) is_start[size_t(st)] = 1;
  std::vector<double> z(Ns), y(ms), e(ms), kl(ms), k(Ns), S(size_t(nb) * Ns), kuq(size_t(nb) * size_t(n_in));
  std::vector<double> ku(static_cast<size_t>(n_in));
  const std::vector<kernels::Segment> j_segs = kernels::segments(row_group_), whole = {kernels::Segment{0, m, 0}};
  const double rate = params_.tau_rnn / meta_.sample_interval;
  double res[2] = {0, 0};  // sum of squared a-priori errors and of squared targets (the log line)
  for (std::int64_t i = 0; i + 1 < T_; ++i) {
    if (is_start[size_t(i) + 1]) continue;  // no derivative across a trial boundary
    const double* d0 = &D_[size_t(i) * ms];
    const double* d1 = &D_[size_t(i + 1) * ms];
    for (size_t l = 0; l < ms; ++l) {
      const double x0 = std::atanh(d0[l]), x1 = std::atanh(d1[l]);
      y[l] = x0 + rate * (x1 - x0);
    }
    MPI_Allgatherv(d0, int(m), MPI_DOUBLE, z.data(), counts_.data(), offsets_.data(), MPI_DOUBLE, comm_);
    const double* uin = n_in > 0 ? &U_[size_t(i) * size_t(n_in)] : nullptr;
    kernels::gemv(m, N, Ja.a, Ja.lda, z.data(), e.data());
    for (size_t l = 0; l < ms; ++l) {
      for (int c = 0; c < n_in; ++c) e[l] += Win_[l * size_t(n_in) + size_t(c)] * uin[c];
      e[l] -= y[l];
      res[0] += e[l] * e[l];
      res[1] += y[l] * y[l];
    }
    for (int q = 0; q < nb; ++q) {
      DenseArray& Pq = *Pa[size_t(q)];
      kernels::gemv(m, N, Pq.a, Pq.lda, z.data(), kl.data());
      const double c = rls_gain(q, z.data(), uin, kl.data(), k.data(), ku.data(), -1, i);
      double* sq = &S[size_t(q) * Ns];
      for (size_t j = 0; j < Ns; ++j) sq[j] = c * k[j];
      kernels::apply_updates(m, N, Pq.a, Pq.lda, 1, kl.data(), sq, 1, whole, nullptr, nullptr);
      for (int d = 0; d < n_in; ++d) kuq[size_t(q) * size_t(n_in) + size_t(d)] = c * ku[size_t(d)];
    }
    kernels::apply_updates(m, N, Ja.a, Ja.lda, 1, e.data(), S.data(), nb, j_segs, nullptr, nullptr);
    for (size_t l = 0; l < ms && n_in > 0; ++l) {
      const double* sw = &kuq[size_t(row_group_[l]) * size_t(n_in)];
      for (int d = 0; d < n_in; ++d) Win_[l * size_t(n_in) + size_t(d)] -= e[l] * sw[d];
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, res, 2, MPI_DOUBLE, MPI_SUM, comm_);
  set_prior(params_.p0, params_.prior_ratio_used());
  start_r2_ = res[1] > 0 ? 1.0 - res[0] / res[1] : 0.0;
  std::ostringstream os;
  os.precision(4);
  os << meta_.animal_id << " start: ridge regression of the implied input currents, one pass over " << T_
     << " samples: online R^2 " << start_r2_ << " (" << MPI_Wtime() - t0 << " s)";
  log::info(comm_, os.str());
}

// The part of an RLS step that every P block shares, given kl = this rank's rows of P_rr z_r:
// adds the input columns (P_ru u), gathers k, computes k_u = [P_ur P_uu] z and c = 1/(1 + z.Pz),
// and applies the rank-1 update to the input parts of the block (P_ru, P_ur, P_uu). Returns c.
double Trainer::rls_gain(int q, const double* r, const double* uin, double* kl, double* k, double* ku, int run,
                           std::int64_t sample) {
  const PetscInt N = PetscInt(N_), m = m_;
  const int n_in = n_in_;
  const size_t Ns = size_t(N), W = Ns + size_t(n_in);
  std::vector<double>* pru = n_in > 0 ? &pru_[size_t(q)] : nullptr;
  for (PetscInt i = 0; i < m && n_in > 0; ++i)
    for (int c = 0; c < n_in; ++c) kl[i] += (*pru)[size_t(i) * size_t(n_in) + size_t(c)] * uin[c];
  MPI_Allgatherv(kl, int(m), MPI_DOUBLE, k, counts_.data(), offsets_.data(), MPI_DOUBLE, comm_);
  double rk = 0;
  for (PetscInt j = 0; j < N; ++j) rk += r[j] * k[j];
  for (int c = 0; c < n_in; ++c) {
    const double* row = &pu_[size_t(q)][size_t(c) * W];
    double v = 0;
    for (PetscInt j = 0; j < N; ++j) v += row[j] * r[j];
    for (int d = 0; d < n_in; ++d) v += row[Ns + size_t(d)] * uin[d];
    ku[c] = v;
    rk += uin[c] * v;
  }
  if (!std::isfinite(rk) || !(1.0 + rk > 0))
    throw Diverged(cat("animal ", meta_.animal_id, ": the fit diverged ",
                       run >= 0 ? cat("in run ", run + 1) : std::string("in the regression start"), " (sample ", sample,
                       params_.region_prior() ? cat(", P of region ", meta_.region_names[size_t(q)]) : std::string(),
                       "): 1 + z.Pz = ", 1.0 + rk,
                       (std::isfinite(rk) ? " <= 0, P lost positive definiteness" : " is not finite"),
                       "; try a smaller --g or --p0, a larger --tau-rnn or a larger --dt-factor (dt/tau-rnn must stay well below 1)"));
  const double c = 1.0 / (1.0 + rk);
  if (n_in > 0) {
    for (PetscInt i = 0; i < m; ++i)
      for (int d = 0; d < n_in; ++d) (*pru)[size_t(i) * size_t(n_in) + size_t(d)] -= kl[i] * (c * ku[d]);
    for (int cc = 0; cc < n_in; ++cc) {
      double* row = &pu_[size_t(q)][size_t(cc) * W];
      for (PetscInt j = 0; j < N; ++j) row[j] -= ku[cc] * (c * k[j]);
      for (int d = 0; d < n_in; ++d) row[Ns + size_t(d)] -= ku[cc] * (c * ku[d]);
    }
  }
  return c;
}

Trainer::~Trainer() {
  if (J_) MatDestroy(&J_);
  if (P_) MatDestroy(&P_);
  for (Mat& q : PQ_)
    if (q) MatDestroy(&q);
}

// Which RNN iteration resets, records and learns which sample. Iteration tt (1-based) computes
// r = tanh(x) from the state after tt-1 Euler steps, i.e. the rate at time (tt-1)*dt, then advances
// x with J r and the noise of step tt.
void Trainer::build_schedule() {
  const int df = params_.dt_factor;
  std::vector<char> is_start(size_t(T_), 0);
  for (auto s : meta_.trial_starts) is_start[size_t(s)] = 1;
  if (!params_.reference_compat) {
    // Integer alignment: sample i is the rate at time i*dtData, i.e. iteration i*df + 1. Learning
    // at every sample except trial starts (there the rate is the reset value, not the network's).
    n_iter_ = int(L_);
    reset_at_.assign(size_t(n_iter_) + 1, -1);
    record_at_.assign(size_t(n_iter_) + 1, -1);
    learn_at_.assign(size_t(n_iter_) + 1, -1);
    for (std::int64_t i = 1; i < T_; ++i) {
      const size_t tt = size_t(i * df + 1);
      record_at_[tt] = i;
      if (is_start[size_t(i)]) reset_at_[tt] = i;
      else learn_at_[tt] = i;
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
  const int run = runs_done();
  if (run >= params_.total_runs()) fail("animal ", meta_.animal_id, ": all runs are done");
  if (!started_) {
    if (params_.starts_from_regression() && run == 0 && mid_iter_ == 0) regression_start();
    started_ = true;
  }
  const bool train = run < params_.runs_train;
  const PetscInt N = PetscInt(N_), m = m_;
  const double dt = dt_, tau = params_.tau_rnn;
  const size_t ms = static_cast<size_t>(m), Ns = static_cast<size_t>(N);
  std::vector<double> x(ms), y(ms), e(ms), kl(ms);
  std::vector<double> ra(Ns), rb(Ns), k(Ns);
  std::vector<double> rla(ms), rlb(ms);
  double* r = ra.data();       // full rate of the current iteration
  double* rn = rb.data();      // full rate of the next iteration
  double* rl = rla.data();     // local rate, current
  double* rln = rlb.data();    // local rate, next
  std::vector<double> err_sq(static_cast<size_t>(T_), 0.0);
  auto gather = [&](const double* local, double* full) {
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
  // The RLS blocks: one P for all rows (shared prior) or one P_Q per target region; the rows of J
  // in block q learn with P_q's gain k_q.
  DenseArray Ja(J_);
  const std::vector<std::unique_ptr<DenseArray>> Pa = p_blocks(PQ_, P_);
  const int nb = int(Pa.size());
  const int n_in = n_in_;
  // Delayed rank-1 updates (kernels.hpp): up to B terms per matrix stay pending and are applied in
  // one pass fused with the next product; products in between subtract them exactly.
  const int B = params_.update_block;
  // J's term s for the rows of block q is e_s (c k_q)^T and P_q's is k_q (c k_q)^T: the row vector
  // c k_q is the same, so it is stored once, in Jp (group q), and P_q's terms use it. They stay in
  // step: both get term s at the same learning step, and P_q's block is applied (at the next
  // learning step) before J's next term overwrites row s.
  PendingUpdates Jp(B, m, N, nb);
  std::vector<PendingUpdates> Pp;
  for (int q = 0; q < nb; ++q) Pp.emplace_back(B, m, N, 0);
  const std::vector<kernels::Segment> j_segs = kernels::segments(row_group_);
  std::vector<std::vector<kernels::Segment>> p_segs;  // all local rows of P_q, reading group q
  for (int q = 0; q < nb; ++q) p_segs.push_back({kernels::Segment{0, m, q}});
  std::vector<double> dots(size_t(B) * size_t(nb));
  // y -= (pending terms of `p`, row vectors from Jp) x: the exact product with the not yet
  // applied updates. Only the groups of `segs` are needed.
  auto correct = [&](const PendingUpdates& p, const std::vector<kernels::Segment>& segs, const double* xv, double* yv) {
    if (p.count == 0) return;
    for (int s = 0; s < p.count; ++s)
      for (const kernels::Segment& sg : segs)
        dots[size_t(s * nb + sg.group)] = kernels::dot(N, Jp.s(s, sg.group), xv);
    kernels::subtract_pending(m, p.count, p.U.data(), dots.data(), nb, segs, yv);
  };
  auto flush = [&](PendingUpdates& p, DenseArray& A, const std::vector<kernels::Segment>& segs, const double* xv,
                   double* yv) {
    kernels::apply_updates(m, N, A.a, A.lda, p.count, p.U.data(), Jp.S.data(), nb, segs, xv, yv);
    p.count = 0;
  };
  std::vector<double> kuq(size_t(nb) * size_t(n_in)), ku(static_cast<size_t>(n_in));  // per block: c k_u; k_u
  // The inputs held during RNN iteration tt (rate at time (tt-1) dt): sample floor((tt-1)/df).
  auto input_at = [&](int tt) -> const double* {
    const std::int64_t s = std::min<std::int64_t>(T_ - 1, std::int64_t(tt - 1) / params_.dt_factor);
    return &U_[size_t(s) * size_t(n_in)];
  };
  prepare(tt0, rl, r);
  bool have_y = false;
  int since_check = 0;
  for (int tt = tt0; tt <= n_iter_; ++tt) {
    // A stop (checkpoint) is taken only where no update of J is pending and each P's are either
    // none or a full block: flushing that block now is the same arithmetic as the fused pass the
    // next learning step would do, so a resumed run continues bit for bit. Such an iteration comes
    // at least once per B learning steps.
    const bool quiet = Jp.count == 0 && std::all_of(Pp.begin(), Pp.end(), [&](const PendingUpdates& p) {
                         return p.count == 0 || p.count == B;
                       });
    if (stop_check_ && tt > tt0 && ++since_check >= stop_every_ && quiet) {
      since_check = 0;
      if (stop_check_()) {
        for (int q = 0; q < nb; ++q)
          if (Pp[size_t(q)].count > 0) flush(Pp[size_t(q)], *Pa[size_t(q)], p_segs[size_t(q)], nullptr, nullptr);
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
      if (!have_y) {
        kernels::gemv(m, N, Ja.a, Ja.lda, r, y.data());
        correct(Jp, j_segs, r, y.data());
      }
      const double* u = &noise_[size_t(tt) * size_t(m)];
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
      // RLS per P block q on z = [r; u] (u: the input channels, if any): k = P_q z;
      // c = 1/(1 + z.k); P_q -= c k k^T; rows of q: J -= c e k_r^T, W_in -= c e k_u^T.
      const double* uin = n_in > 0 ? input_at(tt) : nullptr;
      for (int q = 0; q < nb; ++q) {
        DenseArray& Pq = *Pa[size_t(q)];
        PendingUpdates& pp = Pp[size_t(q)];
        if (pp.count == B) flush(pp, Pq, p_segs[size_t(q)], r, kl.data());  // the full block, fused with P r
        else {
          kernels::gemv(m, N, Pq.a, Pq.lda, r, kl.data());
          correct(pp, p_segs[size_t(q)], r, kl.data());
        }
        const double c = rls_gain(q, r, uin, kl.data(), k.data(), ku.data(), run, ls);
        // P_q's term c k k^T and J's term for the rows of q (e c k^T) go pending, sharing c k.
        if (pp.count != Jp.count) fail("internal: delayed updates of P and J out of step");
        std::copy_n(kl.data(), ms, pp.u(pp.count));
        double* sj = Jp.s(Jp.count, q);
        for (PetscInt j = 0; j < N; ++j) sj[j] = c * k[size_t(j)];
        ++pp.count;
        for (int d = 0; d < n_in; ++d) kuq[size_t(q) * size_t(n_in) + size_t(d)] = c * ku[size_t(d)];
      }
      std::copy_n(e.data(), ms, Jp.u(Jp.count));
      ++Jp.count;
      for (PetscInt i = 0; i < m && n_in > 0; ++i) {
        const double* sw = &kuq[size_t(row_group_[size_t(i)]) * size_t(n_in)];
        for (int d = 0; d < n_in; ++d) Win_[size_t(i) * size_t(n_in) + size_t(d)] -= e[size_t(i)] * sw[d];
      }
      if (Jp.count == B) {
        // The full block of J's terms, fused with the next iteration's J r (its rate is known).
        flush(Jp, Ja, j_segs, advance ? rn : nullptr, advance ? y.data() : nullptr);
        have_y = advance;
      }
    }
    if (advance) {
      std::swap(r, rn);
      std::swap(rl, rln);
    }
  }
  // The end of the run applies whatever is pending.
  if (Jp.count > 0) flush(Jp, Ja, j_segs, nullptr, nullptr);
  for (int q = 0; q < nb; ++q)
    if (Pp[size_t(q)].count > 0) flush(Pp[size_t(q)], *Pa[size_t(q)], p_segs[size_t(q)], nullptr, nullptr);

  // chi2 and pVar: local sums, one reduction each.
  MPI_Allreduce(MPI_IN_PLACE, err_sq.data(), int(T_), MPI_DOUBLE, MPI_SUM, comm_);
  double chi2 = 0;
  for (double v : err_sq) chi2 += v / double(N_);
  double dist = 0;
  for (size_t z = 0; z < D_.size(); ++z) dist += (D_[z] - R_[z]) * (D_[z] - R_[z]);
  MPI_Allreduce(MPI_IN_PLACE, &dist, 1, MPI_DOUBLE, MPI_SUM, comm_);
  const double ratio = std::sqrt(dist) / (std::sqrt(double(N_) * double(T_)) * sigma_);
  const double pvar = 1.0 - ratio * ratio;
  pvar_.push_back(pvar);
  chi2_.push_back(chi2);
  check_health();
  return RunStats{run, train, pvar, chi2};
}

void Trainer::check_health() {
  // Once per run: every entry of J and P finite, P's diagonal positive (it is a covariance).
  int bad_j = 0, bad_p = 0, bad_diag = 0;
  {
    DenseArray Ja(J_);
    for (PetscInt j = 0; j < PetscInt(N_); ++j) {
      const double* cj = Ja.a + j * Ja.lda;
      for (PetscInt i = 0; i < m_; ++i)
        if (!std::isfinite(cj[i])) bad_j = 1;
    }
    std::vector<Mat> ps = PQ_;
    if (P_) ps.push_back(P_);
    for (size_t q = 0; q < ps.size(); ++q) {
      DenseArray Pa(ps[q]);
      for (PetscInt j = 0; j < PetscInt(N_); ++j) {
        const double* cp = Pa.a + j * Pa.lda;
        for (PetscInt i = 0; i < m_; ++i)
          if (!std::isfinite(cp[i])) bad_p = 1;
      }
      // The region prior with --prior-ratio 0 has zero variance for other regions' sources.
      for (PetscInt i = 0; i < m_; ++i) {
        const double dv = Pa.a[i + (rows_.begin + i) * Pa.lda];
        const bool own = P_ == ps[q] || meta_.unit_region[size_t(rows_.begin + i)] == int(q);
        if (own ? !(dv > 0) : !(dv >= 0)) bad_diag = 1;
      }
    }
  }
  for (double v : Win_)
    if (!std::isfinite(v)) bad_j = 1;
  for (const auto& v : pru_)
    for (double z : v)
      if (!std::isfinite(z)) bad_p = 1;
  int flags[4] = {bad_j, bad_p, bad_diag, std::isfinite(pvar_.back()) ? 0 : 1};
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

std::vector<double> Trainer::local_J() const { return to_row_major(J_, m_, PetscInt(N_)); }
std::vector<double> Trainer::local_P() const {
  if (P_) return to_row_major(P_, m_, PetscInt(N_));
  std::vector<double> out;
  for (int q = 0; q < n_p(); ++q) {
    std::vector<double> one = local_P(q);
    out.insert(out.end(), one.begin(), one.end());
  }
  return out;
}

std::vector<double> Trainer::local_P(int q) const {
  if (q < 0 || q >= n_p()) fail("Trainer::local_P: no P of region ", q, " (prior ", prior_name(params_.prior), ")");
  return to_row_major(PQ_[size_t(q)], m_, PetscInt(N_));
}

std::vector<double> Trainer::local_rates() const {
  std::vector<double> out(size_t(m_) * size_t(T_));
  for (PetscInt i = 0; i < m_; ++i)
    for (std::int64_t t = 0; t < T_; ++t) out[size_t(i) * size_t(T_) + size_t(t)] = R_[size_t(t) * size_t(m_) + size_t(i)];
  return out;
}

std::vector<double> Trainer::full_rates() const {
  std::vector<double> loc = local_rates(), full(size_t(N_) * size_t(T_));
  std::vector<int> c(counts_.size()), o(offsets_.size());
  for (size_t r = 0; r < c.size(); ++r) {
    c[r] = counts_[r] * int(T_);
    o[r] = offsets_[r] * int(T_);
  }
  MPI_Allgatherv(loc.data(), int(loc.size()), MPI_DOUBLE, full.data(), c.data(), o.data(), MPI_DOUBLE, comm_);
  return full;
}

std::string Trainer::fingerprint() const {
  return fit::fingerprint(params_, N_, T_, meta_.sample_interval, animal_index_, n_in_);
}

void Trainer::save_checkpoint(const std::string& path, const std::string& config_text) const {
  h5::AtomicFile af(path, comm_);
  h5::File& f = af.file();
  {
    std::vector<double> jr = local_J();
    h5::write_rows(f, "/J", hsize_t(N_), hsize_t(N_), rows_, jr.data());
  }
  if (P_) {
    std::vector<double> pr = local_P();
    h5::write_rows(f, "/P", hsize_t(N_), hsize_t(N_), rows_, pr.data());
  }
  if (!PQ_.empty()) h5::ensure_group(f, "/P_region");
  for (int q = 0; q < n_p(); ++q) {
    std::vector<double> pr = local_P(q);
    h5::write_rows(f, cat("/P_region/", q), hsize_t(N_), hsize_t(N_), rows_, pr.data());
  }
  if (n_in_ > 0) {
    // Input channels: W_in rows, each P block's input columns (rows) and input rows (replicated).
    h5::write_rows(f, "/W_in", hsize_t(N_), hsize_t(n_in_), rows_, Win_.data());
    h5::ensure_group(f, "/P_inputs");
    for (size_t q = 0; q < pru_.size(); ++q) {
      h5::write_rows(f, cat("/P_inputs/ru", q), hsize_t(N_), hsize_t(n_in_), rows_, pru_[q].data());
      h5::write_doubles(f, cat("/P_inputs/u", q), {hsize_t(n_in_), hsize_t(N_ + n_in_)}, pu_[q].data());
    }
  }
  h5::write_doubles(f, "/pvar", {hsize_t(pvar_.size())}, pvar_.data());
  h5::write_doubles(f, "/chi2", {hsize_t(chi2_.size())}, chi2_.data());
  h5::set_attr(f, "/", "mid_iter", std::int64_t(mid_iter_));
  if (mid_iter_ > 0) {
    // Inside a run: the state x, the rates so far, and each rank's partial error sums (one row
    // per rank, so a resume at the same rank count adds them up in the same order).
    h5::ensure_group(f, "/mid");
    h5::write_rows(f, "/mid/x", hsize_t(N_), 1, rows_, mid_x_.data());
    std::vector<double> rl = local_rates();
    h5::write_rows(f, "/mid/rates", hsize_t(N_), hsize_t(T_), rows_, rl.data());
    const int rank = comm_rank(comm_), size = comm_size(comm_);
    h5::write_rows(f, "/mid/err_sq", hsize_t(size), hsize_t(T_), RowRange{rank, rank + 1}, mid_err_.data());
  }
  h5::set_attr(f, "/", "format", "cohortnet-fit-checkpoint");
  h5::set_attr(f, "/", "animal_id", meta_.animal_id);
  h5::set_attr(f, "/", "runs_done", std::int64_t(runs_done()));
  h5::set_attr(f, "/", "start_r2", start_r2_);
  h5::set_attr(f, "/", "fingerprint", fingerprint());
  h5::set_attr(f, "/", "config", config_text);
  af.commit();
}

void Trainer::load_checkpoint(const std::string& path) {
  h5::File f = h5::open_read(path, comm_);
  const std::string fmt = h5::has_attr(f, "/", "format") ? h5::attr_string(f, "/", "format") : "";
  if (fmt != "cohortnet-fit-checkpoint") fail("checkpoint ", path, ": not a cohortnet fit checkpoint");
  const std::string id = h5::attr_string(f, "/", "animal_id");
  if (id != meta_.animal_id) fail("checkpoint ", path, ": belongs to animal ", id, ", not ", meta_.animal_id);
  const std::string fp = h5::attr_string(f, "/", "fingerprint");
  if (fp != fingerprint())
    fail("checkpoint ", path, " of animal ", id, " was written with other parameters (", fingerprint_diff(fp, fingerprint()),
         "); resume with the same options or start without --resume");
  const std::int64_t done = h5::attr_int(f, "/", "runs_done");
  std::vector<double> pv = h5::read_doubles(f, "/pvar"), c2 = h5::read_doubles(f, "/chi2");
  if (std::int64_t(pv.size()) != done || std::int64_t(c2.size()) != done)
    fail("checkpoint ", path, ": /pvar and /chi2 must have runs_done = ", done, " entries");
  from_row_major(J_, m_, PetscInt(N_), h5::read_rows(f, "/J", rows_));
  if (P_) from_row_major(P_, m_, PetscInt(N_), h5::read_rows(f, "/P", rows_));
  for (int q = 0; q < n_p(); ++q) {
    const std::string ds = cat("/P_region/", q);
    if (!h5::exists(f, ds)) fail("checkpoint ", path, ": dataset ", ds, " is missing");
    from_row_major(PQ_[size_t(q)], m_, PetscInt(N_), h5::read_rows(f, ds, rows_));
  }
  if (n_in_ > 0) {
    if (!h5::exists(f, "/W_in")) fail("checkpoint ", path, ": dataset /W_in is missing");
    Win_ = h5::read_rows(f, "/W_in", rows_);
    for (size_t q = 0; q < pru_.size(); ++q) {
      pru_[q] = h5::read_rows(f, cat("/P_inputs/ru", q), rows_);
      pu_[q] = h5::read_doubles(f, cat("/P_inputs/u", q));
      if (pu_[q].size() != size_t(n_in_) * size_t(N_ + n_in_) || pru_[q].size() != size_t(m_) * size_t(n_in_))
        fail("checkpoint ", path, ": /P_inputs/u", q, " or /P_inputs/ru", q, " has the wrong size");
    }
  }
  pvar_ = pv;
  chi2_ = c2;
  started_ = true;
  start_r2_ = h5::has_attr(f, "/", "start_r2") ? h5::attr_double(f, "/", "start_r2") : NAN;
  mid_iter_ = h5::has_attr(f, "/", "mid_iter") ? int(h5::attr_int(f, "/", "mid_iter")) : 0;
  if (mid_iter_ < 0 || mid_iter_ > n_iter_) fail("checkpoint ", path, ": attribute mid_iter out of range");
  if (mid_iter_ > 0) {
    mid_x_ = h5::read_rows(f, "/mid/x", rows_);
    std::vector<double> rl = h5::read_rows(f, "/mid/rates", rows_);
    for (PetscInt i = 0; i < m_; ++i)
      for (std::int64_t t = 0; t < T_; ++t) R_[size_t(t) * size_t(m_) + size_t(i)] = rl[size_t(i) * size_t(T_) + size_t(t)];
    const int rank = comm_rank(comm_), size = comm_size(comm_);
    const auto d = h5::dims(f, "/mid/err_sq");
    if (d.size() != 2 || d[1] != hsize_t(T_)) fail("checkpoint ", path, ": /mid/err_sq must be [ranks x ", T_, "]");
    if (d[0] == hsize_t(size)) {
      mid_err_ = h5::read_rows(f, "/mid/err_sq", RowRange{rank, rank + 1});
    } else {  // written at another rank count: the sums go to rank 0 (equal up to rounding)
      std::vector<double> all = h5::read_doubles(f, "/mid/err_sq");
      mid_err_.assign(size_t(T_), 0.0);
      if (rank == 0)
        for (hsize_t q = 0; q < d[0]; ++q)
          for (std::int64_t t = 0; t < T_; ++t) mid_err_[size_t(t)] += all[size_t(q) * size_t(T_) + size_t(t)];
    }
  }
}

void Trainer::write_result(const std::string& path, const std::string& config_text, bool per_unit_currents) const {
  h5::AtomicFile af(path, comm_);
  h5::File& f = af.file();
  const int M = meta_.n_regions();
  std::vector<double> jr = local_J();
  h5::write_rows(f, "/J", hsize_t(N_), hsize_t(N_), rows_, jr.data());
  {
    std::vector<double> rl = local_rates();
    h5::write_rows(f, "/rates", hsize_t(N_), hsize_t(T_), rows_, rl.data());
  }
  h5::write_doubles(f, "/pvar", {hsize_t(pvar_.size())}, pvar_.data());
  h5::write_doubles(f, "/chi2", {hsize_t(chi2_.size())}, chi2_.data());
  h5::write_doubles(f, "/target_scale", {hsize_t(M)}, scale_.data());
  h5::write_strings(f, "/region_names", meta_.region_names);
  {
    std::vector<std::int64_t> ur(meta_.unit_region.begin(), meta_.unit_region.end());
    h5::write_ints(f, "/unit_region", {hsize_t(ur.size())}, ur.data());
    h5::write_ints(f, "/trial_starts", {hsize_t(meta_.trial_starts.size())}, meta_.trial_starts.data());
  }
  {
    std::vector<double> full = full_rates();
    std::vector<double> per_unit;
    decompose::RegionCurrents c = decompose::region_currents(jr.data(), rows_, N_, full.data(), T_, meta_.unit_region,
                                                              M, comm_, per_unit_currents ? &per_unit : nullptr);
    decompose::write_currents(f, c, meta_.region_names);
    if (per_unit_currents) decompose::write_per_unit(f, per_unit, rows_, N_, M, T_);
  }
  if (n_in_ > 0) {
    // Input channels: their weights and the input currents W_in[i,c] u_c(t), per target region.
    h5::write_rows(f, "/W_in", hsize_t(N_), hsize_t(n_in_), rows_, Win_.data());
    h5::write_strings(f, "/input_names", meta_.input_names);
    std::vector<double> inputs(size_t(n_in_) * size_t(T_));
    for (int c = 0; c < n_in_; ++c)
      for (std::int64_t t = 0; t < T_; ++t) inputs[size_t(c) * size_t(T_) + size_t(t)] = U_[size_t(t) * size_t(n_in_) + size_t(c)];
    std::vector<double> per_unit;
    const decompose::InputCurrents ic =
        decompose::input_currents(Win_.data(), rows_, N_, n_in_, inputs.data(), T_, meta_.unit_region, M, comm_,
                                  per_unit_currents ? &per_unit : nullptr);
    decompose::write_input_currents(f, ic, meta_.input_names);
    if (per_unit_currents) {
      h5::write_rows(f, "/currents/input_per_unit", hsize_t(N_), hsize_t(n_in_) * hsize_t(T_), rows_, per_unit.data());
      h5::set_attr(f, "/currents/input_per_unit", "layout", "[unit, input * T + sample]");
    }
  }
  h5::set_attr(f, "/", "format", "cohortnet-fit");
  h5::set_attr(f, "/", "format_version", std::int64_t(1));
  h5::set_attr(f, "/", "animal_id", meta_.animal_id);
  h5::set_attr(f, "/", "source", meta_.path);
  h5::set_attr(f, "/", "seed", std::int64_t(params_.seed));
  h5::set_attr(f, "/", "animal_index", std::int64_t(animal_index_));
  h5::set_attr(f, "/", "sample_interval", meta_.sample_interval);
  h5::set_attr(f, "/", "dt_factor", std::int64_t(params_.dt_factor));
  h5::set_attr(f, "/", "normalise", normalise_name(params_.normalise));
  h5::set_attr(f, "/", "alignment", params_.reference_compat ? "reference-compat" : "integer");
  h5::set_attr(f, "/", "prior", params_.region_prior() ? "region" : "shared");
  h5::set_attr(f, "/", "prior_ratio", params_.region_prior() ? params_.prior_ratio_used() : 1.0);
  h5::set_attr(f, "/", "inputs", std::int64_t(n_in_));
  h5::set_attr(f, "/", "start", params_.starts_from_regression() ? "regression" : "random");
  if (params_.starts_from_regression()) {
    h5::set_attr(f, "/", "start_p0", params_.start_p0);
    h5::set_attr(f, "/", "start_ratio", params_.region_prior() ? params_.start_ratio : 1.0);
    h5::set_attr(f, "/", "start_r2", start_r2_);
  }
  h5::set_attr(f, "/", "target_std", sigma_);
  h5::set_attr(f, "/", "runs_train", std::int64_t(params_.runs_train));
  h5::set_attr(f, "/", "runs_free", std::int64_t(params_.runs_free));
  h5::set_attr(f, "/", "final_pvar", pvar_.empty() ? 0.0 : pvar_.back());
  h5::set_attr(f, "/", "fingerprint", fingerprint());
  h5::set_attr(f, "/", "config", config_text);
  af.commit();
}

}  // namespace cohortnet::fit
