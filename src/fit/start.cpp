// Start::Regression: J and W_in before training, from a ridge regression of the input current
// the data imply (docs/currents.md, "Regression start"; cost in docs/performance.md).
//
// The model's equation, tau dx/dt = -x + J r + W_in u, with the data in place of the model
// (x = atanh(D), r = D) gives the input current unit i needs at sample t,
// y_i(t) = x_i(t) + tau (x_i(t+1) - x_i(t)) / dt_data, over the samples t whose successor is in
// the same trial. With z(t) = [D(t); u(t)] (N + n_in) and Z the matrix of the Ts samples' z, row
// i of [J W_in] is the ridge solution
//     w_i = argmin_w sum_t (w . z(t) - y_i(t))^2 + sum_j w_j^2 / lambda_g(j),
// lambda_g = start_p0 for the sources of i's own region g and the inputs, start_p0 * start_ratio
// for other regions' sources (shared prior: start_p0 for all). In the dual (sample) form
//     w_i = Lambda_g Z alpha_i,   (Z^T Lambda_g Z + I) alpha_i = y_i,
// and Z^T Lambda_g Z = p0 ratio G + p0 (1 - ratio) G_g + p0 G_u with the Ts x Ts Gram matrices of
// all units (G), of region g's units (G_g) and of the inputs (G_u). So the start needs no N x N
// matrix: each rank forms the Gram matrices of its own rows (summed over the ranks), factors one
// Ts x Ts matrix per region it holds rows of (LAPACK), and computes its rows of J as
// alpha^T Z^T, receiving the other ranks' Z blocks one at a time. Flops: N Ts^2 (Gram) +
// (regions held) Ts^3 / 3 (Cholesky) + N m Ts (J rows) per rank; memory (2 + regions held) Ts^2
// + 3 m Ts + max_r m_r Ts. The in-sample residual is alpha itself (y - Z^T Lambda Z alpha = alpha).
#include <petscsys.h>
#include <petscblaslapack.h>

#include <limits>

#include <cmath>
#include <sstream>

#include "core/log.hpp"
#include "fit/curbd.hpp"
#include "fit/dense.hpp"

namespace cohortnet::fit {

namespace {

PetscBLASInt blas_int(std::int64_t v, const char* what) {
  if (v > std::int64_t(std::numeric_limits<PetscBLASInt>::max()))
    fail("regression start: ", what, " = ", v, " is too large for this build's BLAS (32-bit indices)");
  return PetscBLASInt(v);
}

}  // namespace

// The primal form, for T >> N (n = N + n_in sources < Ts samples): with C = Zf^T Zf (n x n, Zf
// = all units' and the inputs' samples, Ts x n) and S_g = diag(sqrt lambda_g), row i of [J W_in]
// in region g is S_g v_i with (S_g C S_g + I) v_i = S_g Zf^T y_i: the same ridge solution as the
// dual form. Each rank computes the columns of C of its own units (n m Ts flops) and they are
// all-gathered; one n x n Cholesky per region a rank holds rows of (n^3 / 3 each). Memory: Zf
// (n Ts) and 2 n^2 per rank; no Ts x Ts. Returns this rank's residual sum of squares.
double Trainer::primal_start(const std::vector<double>& Z, const std::vector<double>& Y, const std::vector<double>& Uz,
                             int Ts_) {
  const PetscInt m = m_;
  const int n_in = n_in_, M = meta_.n_regions();
  const bool per_region = params_.per_region_p();
  const double p0 = params_.start_p0, ratio = per_region ? params_.start_ratio : 1.0;
  const PetscBLASInt Ts = Ts_, n = blas_int(N_ + n_in, "sources");
  const size_t ts = size_t(Ts), ns = size_t(n);
  // Zf: every unit's samples (gathered in columns of Ts doubles), then the inputs'.
  std::vector<double> Zf(ts * ns);
  {
    MPI_Datatype col;
    MPI_Type_contiguous(Ts, MPI_DOUBLE, &col);
    MPI_Type_commit(&col);
    MPI_Allgatherv(Z.data(), int(m), col, Zf.data(), counts_.data(), offsets_.data(), col, comm_);
    MPI_Type_free(&col);
    std::copy(Uz.begin(), Uz.end(), Zf.begin() + std::ptrdiff_t(ts * size_t(N_)));
  }
  // C = Zf^T Zf: this rank's units' columns, gathered; the inputs' columns on every rank.
  std::vector<double> C(ns * ns, 0.0), Cl(ns * size_t(m));
  const double one = 1.0, zero = 0.0;
  const PetscBLASInt mb = blas_int(m, "local rows");
  if (m > 0 && Ts > 0) BLASgemm_("T", "N", &n, &mb, &Ts, &one, Zf.data(), &Ts, Z.data(), &Ts, &zero, Cl.data(), &n);
  {
    MPI_Datatype col;
    MPI_Type_contiguous(n, MPI_DOUBLE, &col);
    MPI_Type_commit(&col);
    MPI_Allgatherv(Cl.data(), int(m), col, C.data(), counts_.data(), offsets_.data(), col, comm_);
    MPI_Type_free(&col);
  }
  if (n_in > 0 && Ts > 0) {
    const PetscBLASInt ni = PetscBLASInt(n_in);
    BLASgemm_("T", "N", &n, &ni, &Ts, &one, Zf.data(), &Ts, Uz.data(), &Ts, &zero, C.data() + ns * size_t(N_), &n);
  }
  std::vector<int> group(size_t(m), 0);
  if (per_region) group = row_region_;
  const int n_groups = per_region ? M : 1;
  std::vector<double> A(ns * ns), s(ns), B, R;
  DenseArray Ja(J_);
  double res = 0;
  for (int g = 0; g < n_groups; ++g) {
    std::vector<PetscInt> rows;
    for (PetscInt l = 0; l < m; ++l)
      if (group[size_t(l)] == g) rows.push_back(l);
    if (rows.empty()) continue;
    for (std::int64_t j = 0; j < N_ + n_in; ++j)
      s[size_t(j)] = std::sqrt(p0 * (!per_region || j >= N_ || meta_.unit_region[size_t(j)] == g ? 1.0 : ratio));
    for (size_t k = 0; k < ns; ++k)
      for (size_t j = 0; j < ns; ++j) A[j + k * ns] = s[j] * C[j + k * ns] * s[k] + (j == k ? 1.0 : 0.0);
    PetscBLASInt info = 0;
    LAPACKpotrf_("L", &n, A.data(), &n, &info);
    if (info != 0)
      fail("animal ", meta_.animal_id, ": the regression start's source Gram matrix is not positive definite (LAPACK potrf ",
           info, "); check the data for constant or duplicated units, or lower --start-p0");
    // B = S Zf^T Y_g (n x m_g), solved in place; W = S V.
    const PetscBLASInt mg = PetscBLASInt(rows.size());
    std::vector<double> Yg(ts * rows.size());
    for (size_t c = 0; c < rows.size(); ++c) std::copy_n(&Y[size_t(rows[c]) * ts], ts, &Yg[c * ts]);
    B.assign(ns * rows.size(), 0.0);
    if (Ts > 0) BLASgemm_("T", "N", &n, &mg, &Ts, &one, Zf.data(), &Ts, Yg.data(), &Ts, &zero, B.data(), &n);
    for (size_t c = 0; c < rows.size(); ++c)
      for (size_t j = 0; j < ns; ++j) B[j + c * ns] *= s[j];
    LAPACKpotrs_("L", &n, &mg, A.data(), &n, B.data(), &n, &info);
    for (size_t c = 0; c < rows.size(); ++c)
      for (size_t j = 0; j < ns; ++j) B[j + c * ns] *= s[j];
    for (size_t c = 0; c < rows.size(); ++c) {
      const PetscInt i = rows[c];
      for (std::int64_t j = 0; j < N_; ++j) Ja.a[i + j * Ja.lda] = B[size_t(j) + c * ns];
      for (int d = 0; d < n_in; ++d) Win_[size_t(i) * size_t(n_in) + size_t(d)] = B[size_t(N_ + d) + c * ns];
    }
    // Residual y - Zf w.
    const double minus = -1.0;
    if (Ts > 0) BLASgemm_("N", "N", &Ts, &mg, &n, &minus, Zf.data(), &Ts, B.data(), &n, &one, Yg.data(), &Ts);
    for (double v : Yg) res += v * v;
  }
  return res;
}

// Every rank's block of Z (the samples of its units, Ts x rows) in rank order, broadcast from its
// owner: the starts build J's columns one source block at a time (no rank holds all of Z).
void Trainer::each_source_block(const std::vector<double>& Z, size_t ts,
                                const std::function<void(PetscInt off, PetscInt rows, const double* Zr)>& use) const {
  const int size = comm_size(comm_), me = comm_rank(comm_);
  std::vector<double> Zr;
  for (int src = 0; src < size; ++src) {
    const PetscInt mr = counts_[size_t(src)], off = offsets_[size_t(src)];
    if (mr == 0) continue;
    if (src == me) Zr = Z;
    else Zr.assign(ts * size_t(mr), 0.0);
    MPI_Bcast(Zr.data(), int(ts * size_t(mr)), MPI_DOUBLE, src, comm_);
    use(off, mr, Zr.data());
  }
}

// W_in = p0 alpha^T U (row-major m x n_in): the inputs' weights of the dual solution.
void Trainer::input_weights(const std::vector<double>& alpha, const std::vector<double>& Uz, size_t ts, double p0) {
  std::fill(Win_.begin(), Win_.end(), 0.0);
  for (PetscInt i = 0; i < m_; ++i)
    for (int c = 0; c < n_in_; ++c) {
      double v = 0;
      for (size_t t = 0; t < ts; ++t) v += alpha[t + size_t(i) * ts] * Uz[t + size_t(c) * ts];
      Win_[size_t(i) * size_t(n_in_) + size_t(c)] = p0 * v;
    }
}

void Trainer::regression_start() {
  const double t0 = MPI_Wtime();
  const PetscInt m = m_;
  const int n_in = n_in_, M = meta_.n_regions();
  const bool per_region = params_.per_region_p();
  const double p0 = params_.start_p0, ratio = per_region ? params_.start_ratio : 1.0;

  // The samples with a derivative: both in training and in one segment (no difference across a
  // trial boundary or into the held-out part; horizon resets do not cut the data).
  std::vector<std::int64_t> S;
  for (std::int64_t i = 0; i + 1 < T_; ++i)
    if (!split_.held_out[size_t(i)] && !split_.held_out[size_t(i) + 1] && !split_.is_reset(i + 1)) S.push_back(i);
  const PetscBLASInt Ts = blas_int(std::int64_t(S.size()), "samples");
  const PetscBLASInt mb = blas_int(m, "local rows");
  const size_t ts = size_t(Ts);

  // This rank's Z (Ts x m), Y (Ts x m) and the inputs (Ts x n_in), column-major.
  const double rate = params_.tau_rnn / meta_.sample_interval;
  std::vector<double> Z(ts * size_t(m)), Y(ts * size_t(m)), Uz(ts * size_t(n_in));
  for (size_t t = 0; t < ts; ++t) {
    const double* d0 = &D_[size_t(S[t]) * size_t(m)];
    const double* d1 = &D_[size_t(S[t] + 1) * size_t(m)];
    for (PetscInt l = 0; l < m; ++l) {
      const double x0 = std::atanh(d0[l]), x1 = std::atanh(d1[l]);
      Z[t + size_t(l) * ts] = d0[l];
      Y[t + size_t(l) * ts] = x0 + rate * (x1 - x0);
    }
    for (int c = 0; c < n_in; ++c) Uz[t + size_t(c) * ts] = U_[size_t(S[t]) * size_t(n_in) + size_t(c)];
  }
  std::vector<double> Gz(ts * size_t(n_drv_));  // the gains' drivers at the regression samples
  for (size_t t = 0; t < ts; ++t)
    for (int c = 0; c < n_drv_; ++c) Gz[t + size_t(c) * ts] = Gd_[size_t(S[t]) * size_t(n_drv_) + size_t(c)];

  const std::int64_t n_src = N_ + n_in;
  const bool primal = params_.start_form == StartForm::Primal ||
                      (params_.start_form == StartForm::Auto && n_src < std::int64_t(Ts));
  double res[2] = {0, 0};  // residual and total sums of squares of the implied currents
  if (params_.gains_used()) {
    res[0] = gated_start(Z, Y, Uz, Gz, Ts);
  } else if (primal) {
    res[0] = primal_start(Z, Y, Uz, Ts);
  } else {
  // Gram matrices: all units' (summed over ranks), the inputs'.
  std::vector<double> G(ts * ts), Gu(ts * ts, 0.0);
  full_gram(Ts, mb, Z.data(), G.data());
  MPI_Allreduce(MPI_IN_PLACE, G.data(), int(ts * ts), MPI_DOUBLE, MPI_SUM, comm_);
  if (n_in > 0) full_gram(Ts, PetscBLASInt(n_in), Uz.data(), Gu.data());

  // Per group (region, or one for the shared prior) held here: K = Z^T Lambda Z + I, factored,
  // and alpha for this rank's rows of the group.
  std::vector<int> group(size_t(m), 0);
  if (per_region) group = row_region_;
  const int n_groups = per_region ? M : 1;
  std::vector<double> alpha(ts * size_t(m), 0.0), K(ts * ts), Gg(ts * ts), Zg, Yg;
  for (int g = 0; g < n_groups; ++g) {
    std::vector<PetscInt> rows;
    for (PetscInt l = 0; l < m; ++l)
      if (group[size_t(l)] == g) rows.push_back(l);
    // Region g's Gram matrix is summed over the ranks that hold rows of g.
    MPI_Comm sub = MPI_COMM_NULL;
    if (per_region) MPI_Comm_split(comm_, rows.empty() ? MPI_UNDEFINED : 0, comm_rank(comm_), &sub);
    if (rows.empty()) continue;
    const PetscBLASInt mg = PetscBLASInt(rows.size());
    Zg.assign(ts * rows.size(), 0.0);
    Yg.assign(ts * rows.size(), 0.0);
    for (size_t c = 0; c < rows.size(); ++c) {
      std::copy_n(&Z[size_t(rows[c]) * ts], ts, &Zg[c * ts]);
      std::copy_n(&Y[size_t(rows[c]) * ts], ts, &Yg[c * ts]);
    }
    if (per_region) {
      full_gram(Ts, mg, Zg.data(), Gg.data());
      MPI_Allreduce(MPI_IN_PLACE, Gg.data(), int(ts * ts), MPI_DOUBLE, MPI_SUM, sub);
      MPI_Comm_free(&sub);
    }
    for (size_t z = 0; z < ts * ts; ++z)
      K[z] = p0 * ratio * G[z] + (per_region ? p0 * (1.0 - ratio) * Gg[z] : 0.0) + p0 * Gu[z];
    for (size_t t = 0; t < ts; ++t) K[t + t * ts] += 1.0;
    PetscBLASInt info = 0;
    if (Ts > 0) LAPACKpotrf_("L", &Ts, K.data(), &Ts, &info);
    if (info != 0)
      fail("animal ", meta_.animal_id, ": the regression start's Gram matrix is not positive definite (LAPACK potrf ",
           info, "); check the data for constant or duplicated units, or lower --start-p0");
    if (Ts > 0) LAPACKpotrs_("L", &Ts, &mg, K.data(), &Ts, Yg.data(), &Ts, &info);
    for (size_t c = 0; c < rows.size(); ++c) std::copy_n(&Yg[c * ts], ts, &alpha[size_t(rows[c]) * ts]);
  }

  // J's rows: J[i, j] = lambda_g(i)(j) sum_t Z[t, j] alpha[t, i], one source rank's block at a time.
  DenseArray Ja(J_);
  each_source_block(Z, ts, [&](PetscInt off, PetscInt mr, const double* Zr) {
    if (m == 0) return;
    const PetscBLASInt mrb = PetscBLASInt(mr), lda = blas_int(Ja.lda, "lda");
    const double one = 1.0, zero = 0.0;
    if (Ts > 0) BLASgemm_("T", "N", &mb, &mrb, &Ts, &one, alpha.data(), &Ts, Zr, &Ts, &zero, Ja.a + off * Ja.lda, &lda);
    else
      for (PetscInt j = 0; j < mr; ++j) std::fill_n(Ja.a + (off + j) * Ja.lda, m, 0.0);
    for (PetscInt j = 0; j < mr; ++j) {
      const int rj = meta_.unit_region[size_t(off + j)];
      double* col = Ja.a + (off + j) * Ja.lda;
      for (PetscInt i = 0; i < m; ++i) col[i] *= (!per_region || row_region_[size_t(i)] == rj) ? p0 : p0 * ratio;
    }
  });
  input_weights(alpha, Uz, ts, p0);

  // In-sample R^2 of the implied currents: the residual of the dual solution is alpha.
  for (double a : alpha) res[0] += a * a;
  }
  for (double y : Y) res[1] += y * y;
  MPI_Allreduce(MPI_IN_PLACE, res, 2, MPI_DOUBLE, MPI_SUM, comm_);
  start_r2_ = res[1] > 0 ? 1.0 - res[0] / res[1] : 0.0;
  start_seconds_ = MPI_Wtime() - t0;
  std::ostringstream os;
  os.precision(4);
  os << meta_.animal_id << " start: ridge regression of the implied input currents over " << Ts << " samples ("
     << (per_region ? M : 1) << " prior group(s), "
     << (params_.gains_used()
             ? (gated_start_primal(params_.start_form, double(n_src), double(Ts), M, n_in_, params_.gains_folds)
                    ? "pathway gains, primal"
                    : "pathway gains, dual")
             : primal ? "primal" : "dual")
     << " form): R^2 " << start_r2_
     << " (" << start_seconds_ << " s)" << gains_note_;
  log::info(comm_, os.str());
}

}  // namespace cohortnet::fit
