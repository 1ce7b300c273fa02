// The gains' drivers: what g_QS(t) is linear in (gains.hpp). --gains inputs: the animal's input
// channels. --gains latent:K: K slow factors of the recorded activity, for animals whose state is
// not among the known inputs (docs/currents.md, "Latent gains").
//
// x = atanh(D) of every unit, smoothed causally, s(t) = s(t-1) + a (x(t) - s(t-1)) with
// a = 1 - exp(-dt / gains_latent_tau), restarting at trial starts (as --input-smoothing: a factor
// at t uses activity up to t only), then z-scored per unit over the training samples. The factors
// are the K leading right singular vectors of that units x training-samples matrix (the
// population's dominant slow co-fluctuations), found by subspace iteration: the matrix stays
// split by rows, each iteration is one reduction of a (training samples x (K + 4)) block, and
// the start block is drawn from the fit's seed, so the factors do not depend on the number of
// ranks beyond rounding. A sample's factor value is its z projected on the factor's unit
// loadings, scaled to unit variance over the training samples, signed so that the factor's
// largest training value is positive. Held-out samples get values (the model needs its gains
// there) but do not shape the loadings.
//
// Why the units' factors and not the region means: on the demo's cohort, gains linear in 2-4
// factors of the smoothed region means reach r 0.5-0.7 with the true gains at best (least squares
// on the truth), the units' factors 0.76-0.82 with 3 and 0.90 with 6 (docs/currents.md).
#include <petscsys.h>
#include <petscblaslapack.h>

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "fit/curbd.hpp"

namespace cohortnet::fit {

namespace {

// Modified Gram-Schmidt on the k columns (length n, column-major) of v; a column that vanishes
// (rank deficiency) is left zero.
void orthonormalise(std::vector<double>& v, size_t n, size_t k) {
  for (size_t c = 0; c < k; ++c) {
    double* vc = &v[c * n];
    for (size_t d = 0; d < c; ++d) {
      const double* vd = &v[d * n];
      double dot = 0;
      for (size_t t = 0; t < n; ++t) dot += vd[t] * vc[t];
      for (size_t t = 0; t < n; ++t) vc[t] -= dot * vd[t];
    }
    double nrm = 0;
    for (size_t t = 0; t < n; ++t) nrm += vc[t] * vc[t];
    nrm = std::sqrt(nrm);
    for (size_t t = 0; t < n; ++t) vc[t] = nrm > 1e-300 ? vc[t] / nrm : 0.0;
  }
}

}  // namespace

void Trainer::make_gain_drivers() {
  n_drv_ = params_.gain_drivers(n_in_);
  driver_names_.clear();
  Gd_.clear();
  if (n_drv_ == 0) return;
  if (!params_.latent_gains()) {
    Gd_ = U_;
    driver_names_ = meta_.input_names;
    return;
  }
  const std::string& id = meta_.animal_id;
  const int K = n_drv_;
  const size_t T = size_t(T_), m = size_t(m_);
  std::vector<std::int64_t> train;
  for (std::int64_t t = 0; t < T_; ++t)
    if (!split_.held_out[size_t(t)]) train.push_back(t);
  const size_t Tt = train.size();
  const int Kp = int(std::min<std::int64_t>({std::int64_t(K) + 4, std::int64_t(Tt), N_}));
  if (Kp < K)
    fail("animal ", id, ": option --gains latent:", K, ": ", N_, " units and ", Tt, " training samples cannot give ",
         K, " factors");

  // Smoothed, z-scored activity: X (T x m column-major: unit i's samples at X[i T ...]).
  std::vector<char> restart(T, 0);
  restart[0] = 1;
  for (std::int64_t s : meta_.trial_starts)
    if (s >= 0 && size_t(s) < T) restart[size_t(s)] = 1;
  const double a = 1.0 - std::exp(-meta_.sample_interval / params_.gains_latent_tau);
  std::vector<double> X(T * m), Xt(Tt * m);
  for (size_t i = 0; i < m; ++i) {
    double* xi = &X[i * T];
    double s = 0;
    for (size_t t = 0; t < T; ++t) {
      const double x = std::atanh(D_[t * m + i]);
      s = restart[t] ? x : s + a * (x - s);
      xi[t] = s;
    }
    double mean = 0, sq = 0;
    for (std::int64_t t : train) mean += xi[size_t(t)];
    mean /= double(std::max<size_t>(Tt, 1));
    for (std::int64_t t : train) sq += (xi[size_t(t)] - mean) * (xi[size_t(t)] - mean);
    const double sd = std::sqrt(sq / double(std::max<size_t>(Tt, 1)));
    for (size_t t = 0; t < T; ++t) xi[t] = sd > 0 ? (xi[t] - mean) / sd : 0.0;
    for (size_t b = 0; b < Tt; ++b) Xt[i * Tt + b] = xi[size_t(train[b])];
  }

  // Subspace iteration for the leading right singular vectors of Xt^T (units x training samples).
  const PetscBLASInt tt = PetscBLASInt(Tt), mb = PetscBLASInt(m), kp = PetscBLASInt(Kp), Tb = PetscBLASInt(T);
  const double one = 1.0, zero = 0.0;
  std::vector<double> V(Tt * size_t(Kp)), W(m * size_t(Kp), 0.0);
  {
    Stream st(params_.seed, {kTagLatent, animal_index_});
    for (double& v : V) v = st.normal();
  }
  orthonormalise(V, Tt, size_t(Kp));
  auto left = [&] {  // W = Xt^T V: this rank's units' loadings
    if (m > 0) BLASgemm_("T", "N", &mb, &kp, &tt, &one, Xt.data(), &tt, V.data(), &tt, &zero, W.data(), &mb);
  };
  for (int it = 0; it < 50; ++it) {
    left();
    std::fill(V.begin(), V.end(), 0.0);
    if (m > 0) BLASgemm_("N", "N", &tt, &kp, &mb, &one, Xt.data(), &tt, W.data(), &mb, &zero, V.data(), &tt);
    same_sum(comm_, V.data(), int(V.size()));
    orthonormalise(V, Tt, size_t(Kp));
  }
  // Rayleigh-Ritz: B = W^T W over all units (Kp x Kp), its eigenvectors order the factors.
  left();
  std::vector<double> B(size_t(Kp) * size_t(Kp), 0.0), ev(static_cast<size_t>(Kp));
  if (m > 0) BLASgemm_("T", "N", &kp, &kp, &mb, &one, W.data(), &mb, W.data(), &mb, &zero, B.data(), &kp);
  same_sum(comm_, B.data(), int(B.size()));
  {
    PetscBLASInt lwork = 8 * kp, info = 0;
    std::vector<double> work(static_cast<size_t>(lwork));
    LAPACKsyev_("V", "U", &kp, B.data(), &kp, ev.data(), work.data(), &lwork, &info);
    if (info != 0) fail("animal ", id, ": option --gains latent: the factors' eigenproblem failed (LAPACK info ", info, ")");
  }
  // Loadings of the K leading factors (eigenvalues ascending: the last K columns, reversed).
  std::vector<double> Lk(m * size_t(K), 0.0), F(T * size_t(K), 0.0);
  for (int k = 0; k < K; ++k) {
    const double* e = &B[size_t(Kp - 1 - k) * size_t(Kp)];
    for (size_t i = 0; i < m; ++i) {
      double v = 0;
      for (int j = 0; j < Kp; ++j) v += W[i + size_t(j) * m] * e[j];
      Lk[i + size_t(k) * m] = v;
    }
  }
  const PetscBLASInt kb = PetscBLASInt(K);
  if (m > 0) BLASgemm_("N", "N", &Tb, &kb, &mb, &one, X.data(), &Tb, Lk.data(), &mb, &zero, F.data(), &Tb);
  same_sum(comm_, F.data(), int(F.size()));
  n_drv_ = K;
  Gd_.assign(T * size_t(K), 0.0);
  for (int k = 0; k < K; ++k) {
    const double* f = &F[size_t(k) * T];
    double mean = 0, sq = 0, peak = 0;
    for (std::int64_t t : train) mean += f[size_t(t)];
    mean /= double(Tt);
    for (std::int64_t t : train) {
      sq += (f[size_t(t)] - mean) * (f[size_t(t)] - mean);
      if (std::fabs(f[size_t(t)] - mean) > std::fabs(peak)) peak = f[size_t(t)] - mean;
    }
    const double sd = std::sqrt(sq / double(Tt));
    if (!(sd > 0))
      fail("animal ", id, ": option --gains latent:", K, ": factor ", k + 1,
           " is flat (the activity has fewer than K independent slow co-fluctuations); use fewer factors");
    const double sign = peak < 0 ? -1.0 : 1.0;
    for (size_t t = 0; t < T; ++t) Gd_[t * size_t(K) + size_t(k)] = sign * (f[t] - mean) / sd;
    driver_names_.push_back(cat("latent", k + 1));
  }
}

}  // namespace cohortnet::fit
