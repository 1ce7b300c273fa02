// Gated pathways: the gain model and its variable-projection fit (gains.hpp).
#include "fit/gains.hpp"

#include <petscsys.h>
#include <petscblaslapack.h>
#include <petsctao.h>

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace cohortnet::fit {

PathwayGains PathwayGains::identity(int M, int C) {
  PathwayGains g;
  g.M = M;
  g.C = C;
  g.ubar.assign(size_t(C), 0.0);
  g.theta.assign(size_t(M) * size_t(M) * size_t(C), 0.0);
  g.rho.assign(size_t(M) * size_t(M), 1.0);
  g.prior.assign(size_t(M) * size_t(M), 1.0);
  g.kept.assign(size_t(M), 0);
  g.cv_fixed.assign(size_t(M), NAN);
  g.cv_gated.assign(size_t(M), NAN);
  g.modulation.assign(size_t(M), NAN);
  return g;
}

double PathwayGains::at(int q, int s, const double* u) const {
  if (q == s) return 1.0;
  const size_t qs = size_t(q) * size_t(M) + size_t(s);
  double h = 1.0;
  for (int c = 0; c < C; ++c) h += theta[qs * size_t(C) + size_t(c)] * (u[c] - ubar[size_t(c)]);
  return h / rho[qs];
}

void PathwayGains::fill(const double* u, double* g) const {
  for (int q = 0; q < M; ++q)
    for (int s = 0; s < M; ++s) g[size_t(q) * size_t(M) + size_t(s)] = at(q, s, u);
}

void full_gram(int n_, int k_, const double* a, double* c) {
  const PetscBLASInt n = PetscBLASInt(n_), k = PetscBLASInt(k_);
  std::fill(c, c + size_t(n) * size_t(n), 0.0);
  if (n == 0 || k == 0) return;
  const double one = 1.0, zero = 0.0;
  BLASsyrk_("L", "N", &n, &k, &one, a, &n, &zero, c, &n);
  for (PetscBLASInt j = 0; j < n; ++j)
    for (PetscBLASInt i = j + 1; i < n; ++i) c[size_t(j) + size_t(i) * size_t(n)] = c[size_t(i) + size_t(j) * size_t(n)];
}

void same_sum(MPI_Comm comm, double* v, int n) {
  int size = 1, rank = 0;
  MPI_Comm_size(comm, &size);
  if (size == 1) return;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) MPI_Reduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, 0, comm);
  else MPI_Reduce(v, nullptr, n, MPI_DOUBLE, MPI_SUM, 0, comm);
  MPI_Bcast(v, n, MPI_DOUBLE, 0, comm);
}

namespace {

PetscErrorCode tao_objective(Tao, Vec x, PetscReal* f, Vec g, void* ctx) {
  auto* fit = static_cast<GainFit*>(ctx);
  PetscInt n = 0;
  PetscCall(VecGetSize(x, &n));
  std::vector<double> theta(static_cast<size_t>(n)), grad;
  const PetscScalar* xa = nullptr;
  PetscCall(VecGetArrayRead(x, &xa));
  std::copy_n(xa, n, theta.begin());
  PetscCall(VecRestoreArrayRead(x, &xa));
  *f = fit->objective(theta, &grad);
  PetscScalar* ga = nullptr;
  PetscCall(VecGetArray(g, &ga));
  std::copy_n(grad.begin(), n, ga);
  PetscCall(VecRestoreArray(g, &ga));
  return 0;
}

}  // namespace

GainFit::GainFit(const GainProblem& p, std::vector<GainFold> folds) : p_(p), folds_(std::move(folds)) {
  double yy = 0;
  for (size_t z = 0; z < size_t(p_.Ts) * size_t(p_.mq); ++z) yy += p_.Y[z] * p_.Y[z];
  same_sum(p_.sub, &yy, 1);
  yy_ = yy > 0 ? yy : 1.0;
}

void GainFit::gains_all(const std::vector<double>& theta, std::vector<double>& g) const {
  const size_t Ts = size_t(p_.Ts), C = size_t(p_.C);
  g.assign(size_t(p_.M) * Ts, 1.0);
  for (int s = 0; s < p_.M; ++s) {
    if (s == p_.q) continue;
    const double* th = &theta[size_t(s) * C];
    double ss = 0;
    for (size_t t = 0; t < Ts; ++t) {
      double h = 1.0;
      for (size_t c = 0; c < C; ++c) h += th[c] * p_.uc[t + c * Ts];
      g[size_t(s) * Ts + t] = h;
      ss += h * h;
    }
    const double r = std::max(1e-12, std::sqrt(ss / double(std::max<size_t>(Ts, 1))));
    for (size_t t = 0; t < Ts; ++t) g[size_t(s) * Ts + t] /= r;
  }
}

std::vector<double> GainFit::rho(const std::vector<double>& theta) const {
  const size_t Ts = size_t(p_.Ts), C = size_t(p_.C);
  std::vector<double> r(size_t(p_.M), 1.0);
  for (int s = 0; s < p_.M; ++s) {
    if (s == p_.q) continue;
    double ss = 0;
    for (size_t t = 0; t < Ts; ++t) {
      double h = 1.0;
      for (size_t c = 0; c < C; ++c) h += theta[size_t(s) * C + c] * p_.uc[t + c * Ts];
      ss += h * h;
    }
    r[size_t(s)] = std::max(1e-12, std::sqrt(ss / double(std::max<size_t>(Ts, 1))));
  }
  return r;
}

void GainFit::kernel(const std::vector<double>& g, const std::vector<int>& a, const std::vector<int>& b, bool sym,
                     std::vector<double>& K) const {
  const size_t na = a.size(), nb = b.size(), Ts = size_t(p_.Ts);
  K.assign(na * nb, 0.0);
  const bool inputs = p_.Gu && !p_.Gu->empty();
  for (size_t j = 0; j < nb; ++j)
    for (size_t i = sym ? j : 0; i < na; ++i) {
      const size_t ab = size_t(a[i]) + size_t(b[j]) * Ts;
      double k = sym && i == j ? 1.0 : 0.0;
      for (int s = 0; s < p_.M; ++s)
        k += lam_[size_t(s)] * g[size_t(s) * Ts + size_t(a[i])] * g[size_t(s) * Ts + size_t(b[j])] * (*p_.G)[size_t(s)][ab];
      if (inputs) k += p_.p0u * (*p_.Gu)[ab];
      K[i + j * na] = k;
    }
}

std::vector<double> GainFit::lambdas(const std::vector<double>& x) const {
  // x = [theta (M*C), eta (M)]: lambda_S = base lambda_S * exp(eta_S) for S != q.
  std::vector<double> lam = p_.lambda;
  const size_t MC = size_t(p_.M) * size_t(p_.C);
  if (x.size() > MC)
    for (int s = 0; s < p_.M; ++s)
      if (s != p_.q) lam[size_t(s)] *= std::exp(std::clamp(x[MC + size_t(s)], -kEtaMax, kEtaMax));
  return lam;
}

void GainFit::solve(const std::vector<double>& theta) {
  const size_t Ts = size_t(p_.Ts);
  if (primal()) {
    lam_ = lambdas(theta);
    GainFold all;  // every base fold trains, none is tested
    residual_ = 0;
    primal_fold(coefficients(theta), all, nullptr, nullptr, &weights_, &residual_);
    return;
  }
  std::vector<double> g, K;
  lam_ = lambdas(theta);
  gains_all(theta, g);
  std::vector<int> all(Ts);
  for (size_t t = 0; t < Ts; ++t) all[t] = int(t);
  kernel(g, all, all, true, K);
  alpha_.assign(p_.Y, p_.Y + Ts * size_t(p_.mq));
  PetscBLASInt nb = PetscBLASInt(Ts), mb = PetscBLASInt(p_.mq), info = 0;
  if (Ts == 0) return;
  LAPACKpotrf_("L", &nb, K.data(), &nb, &info);
  if (info != 0) fail("gated regression start: the Gram matrix of target region ", p_.q, " is not positive definite");
  if (p_.mq > 0) LAPACKpotrs_("L", &nb, &mb, K.data(), &nb, alpha_.data(), &nb, &info);
}

double GainFit::objective(const std::vector<double>& theta, std::vector<double>* grad) {
  const size_t Ts = size_t(p_.Ts), C = size_t(p_.C), mq = size_t(p_.mq);
  std::vector<double> g, K, Kc, A, R, Bt, O1, O2;
  lam_ = lambdas(theta);
  double e = 0;
  if (primal()) {
    e = primal_objective(theta, grad);
  } else {
  gains_all(theta, g);
  std::vector<double> dg(size_t(p_.M) * Ts, 0.0);  // dE/dg_S(t)
  std::vector<double> deta(size_t(p_.M), 0.0);      // dE/deta_S = lambda_S dE/dlambda_S
  const double one = 1.0, zero = 0.0, minus = -1.0;
  for (const GainFold& f : folds_) {
    const size_t n = f.train.size(), nt = f.test.size();
    if (n == 0 || nt == 0) continue;
    const PetscBLASInt nb = PetscBLASInt(n), ntb = PetscBLASInt(nt), mb = PetscBLASInt(mq);
    kernel(g, f.train, f.train, true, K);
    PetscBLASInt info = 0;
    LAPACKpotrf_("L", &nb, K.data(), &nb, &info);
    if (info != 0) fail("gated regression start: the Gram matrix of target region ", p_.q, " is not positive definite");
    A.assign(n * mq, 0.0);  // alpha = K^-1 Y_train
    R.assign(nt * mq, 0.0);  // residual on the test samples
    for (size_t i = 0; i < mq; ++i) {
      for (size_t a = 0; a < n; ++a) A[a + i * n] = p_.Y[size_t(f.train[a]) + i * Ts];
      for (size_t a = 0; a < nt; ++a) R[a + i * nt] = p_.Y[size_t(f.test[a]) + i * Ts];
    }
    kernel(g, f.test, f.train, false, Kc);
    if (mq > 0) {
      LAPACKpotrs_("L", &nb, &mb, K.data(), &nb, A.data(), &nb, &info);
      BLASgemm_("N", "N", &ntb, &mb, &nb, &minus, Kc.data(), &ntb, A.data(), &nb, &one, R.data(), &ntb);
    }
    for (double r : R) e += r * r;
    if (!grad) continue;
    // beta = K^-1 Kc^T R; Omega1 = R alpha^T (test x train), Omega2 = beta alpha^T (train x train).
    Bt.assign(n * mq, 0.0);
    O1.assign(nt * n, 0.0);
    O2.assign(n * n, 0.0);
    if (mq > 0) {
      BLASgemm_("T", "N", &nb, &mb, &ntb, &one, Kc.data(), &ntb, R.data(), &ntb, &zero, Bt.data(), &nb);
      LAPACKpotrs_("L", &nb, &mb, K.data(), &nb, Bt.data(), &nb, &info);
      BLASgemm_("N", "T", &ntb, &nb, &mb, &one, R.data(), &ntb, A.data(), &nb, &zero, O1.data(), &ntb);
      BLASgemm_("N", "T", &nb, &nb, &mb, &one, Bt.data(), &nb, A.data(), &nb, &zero, O2.data(), &nb);
    }
    std::vector<double> red(O1.size() + O2.size());
    std::copy(O1.begin(), O1.end(), red.begin());
    std::copy(O2.begin(), O2.end(), red.begin() + std::ptrdiff_t(O1.size()));
    same_sum(p_.sub, red.data(), int(red.size()));
    const double* o1 = red.data();
    const double* o2 = red.data() + O1.size();
    // E = ||Y_te - Kc alpha||^2: dE = -2 <R, dKc alpha> + 2 <beta, dK alpha>, with
    // dK(a, b) = lambda_S G_S(a, b) (dg(a) g(b) + g(a) dg(b)).
    for (int s = 0; s < p_.M; ++s) {
      if (s == p_.q || lam_[size_t(s)] == 0) continue;
      const double lam = lam_[size_t(s)];
      double de = 0;
      const double* gs = &g[size_t(s) * Ts];
      double* d = &dg[size_t(s) * Ts];
      const std::vector<double>& G = (*p_.G)[size_t(s)];
      for (size_t b = 0; b < n; ++b) {
        const size_t tb = size_t(f.train[b]);
        for (size_t a = 0; a < nt; ++a) {
          const size_t ta = size_t(f.test[a]);
          const double w = -2.0 * lam * G[ta + tb * Ts] * o1[a + b * nt];
          d[ta] += w * gs[tb];
          d[tb] += w * gs[ta];
          de += w * gs[ta] * gs[tb];
        }
        for (size_t a = 0; a < n; ++a) {
          const size_t ta = size_t(f.train[a]);
          const double w = 2.0 * lam * G[ta + tb * Ts] * o2[a + b * n];
          d[ta] += w * gs[tb];
          d[tb] += w * gs[ta];
          de += w * gs[ta] * gs[tb];
        }
      }
      deta[size_t(s)] += de;
    }
  }
  same_sum(p_.sub, &e, 1);
  if (grad) {
    // g = h / rho, rho^2 = mean h^2: dg(t)/dtheta_c = (uc(t) - g(t) mean(g uc)) / rho.
    grad->assign(theta.size(), 0.0);
    if (theta.size() > size_t(p_.M) * C)
      for (int s = 0; s < p_.M; ++s)
        if (s != p_.q && std::fabs(theta[size_t(p_.M) * C + size_t(s)]) < kEtaMax)
          (*grad)[size_t(p_.M) * C + size_t(s)] = deta[size_t(s)] / yy_;
    const std::vector<double> r = rho(theta);
    for (int s = 0; s < p_.M; ++s) {
      if (s == p_.q) continue;
      const double* gs = &g[size_t(s) * Ts];
      const double* d = &dg[size_t(s) * Ts];
      for (size_t c = 0; c < C; ++c) {
        const double* u = p_.uc + c * Ts;
        double mc = 0, v = 0;
        for (size_t t = 0; t < Ts; ++t) mc += gs[t] * u[t];
        mc /= double(Ts);
        for (size_t t = 0; t < Ts; ++t) v += d[t] * (u[t] - gs[t] * mc);
        (*grad)[size_t(s) * C + c] = v / r[size_t(s)] / yy_ + 2.0 * p_.shrink * theta[size_t(s) * C + c];
      }
    }
  }
  }
  // The prior on x (theta and eta alike): keeps the fit well posed where a source's prior
  // variance goes to zero and its gains stop mattering.
  double pen = 0;
  for (size_t k = 0; k < theta.size(); ++k) {
    const int s = k < size_t(p_.M) * C ? int(k / C) : int(k - size_t(p_.M) * C);
    if (s == p_.q) continue;
    pen += theta[k] * theta[k];
    if (grad && k >= size_t(p_.M) * C) (*grad)[k] += 2.0 * p_.shrink * theta[k];
  }
  return e / yy_ + p_.shrink * pen;
}

int GainFit::minimise(std::vector<double>& theta, int max_iterations) {
  const PetscInt n = PetscInt(theta.size());
  Vec x = nullptr;
  Tao tao = nullptr;
  PetscInt its = 0;
  COHORTNET_PETSC(VecCreateSeq(PETSC_COMM_SELF, n, &x));
  PetscScalar* xa = nullptr;
  COHORTNET_PETSC(VecGetArray(x, &xa));
  std::copy(theta.begin(), theta.end(), xa);
  COHORTNET_PETSC(VecRestoreArray(x, &xa));
  COHORTNET_PETSC(TaoCreate(PETSC_COMM_SELF, &tao));
  COHORTNET_PETSC(TaoSetType(tao, TAOLMVM));
  COHORTNET_PETSC(TaoSetOptionsPrefix(tao, "gains_"));
  COHORTNET_PETSC(TaoSetSolution(tao, x));
  COHORTNET_PETSC(TaoSetObjectiveAndGradient(tao, nullptr, tao_objective, this));
  COHORTNET_PETSC(TaoSetTolerances(tao, 1e-10, 1e-7, 0));
  COHORTNET_PETSC(TaoSetMaximumIterations(tao, max_iterations));
  COHORTNET_PETSC(TaoSetFromOptions(tao));
  COHORTNET_PETSC(TaoSolve(tao));
  COHORTNET_PETSC(TaoGetIterationNumber(tao, &its));
  const PetscScalar* xr = nullptr;
  COHORTNET_PETSC(VecGetArrayRead(x, &xr));
  std::copy_n(xr, n, theta.begin());
  COHORTNET_PETSC(VecRestoreArrayRead(x, &xr));
  TaoDestroy(&tao);
  VecDestroy(&x);
  return int(its);
}

}  // namespace cohortnet::fit

namespace cohortnet::fit {

void write_gain_model(const h5::File& f, const PathwayGains& g) {
  const hsize_t M = hsize_t(g.M), C = hsize_t(g.C);
  h5::ensure_group(f, "/gains_model");
  h5::write_doubles(f, "/gains_model/theta", {M, M, C}, g.theta.data());
  h5::write_doubles(f, "/gains_model/rho", {M, M}, g.rho.data());
  h5::write_doubles(f, "/gains_model/prior", {M, M}, g.prior.data());
  h5::write_doubles(f, "/gains_model/ubar", {C}, g.ubar.data());
  std::vector<std::int64_t> kept(g.kept.begin(), g.kept.end());
  h5::write_ints(f, "/gains_model/kept", {M}, kept.data());
  h5::write_doubles(f, "/gains_model/cv_fixed", {M}, g.cv_fixed.data());
  h5::write_doubles(f, "/gains_model/cv_gated", {M}, g.cv_gated.data());
  h5::write_doubles(f, "/gains_model/modulation", {M}, g.modulation.data());
  h5::set_attr(f, "/gains_model", "model",
               "g_QS(t) = (1 + sum_c theta[Q,S,c] (u_c(t) - ubar[c])) / rho[Q,S], g_QQ = 1; kept[Q] = 0: gains of Q are 1");
}

PathwayGains read_gain_model(const h5::File& f, const std::string& path, int M, int C) {
  PathwayGains g = PathwayGains::identity(M, C);
  auto need = [&](const char* ds, size_t n) {
    if (!h5::exists(f, ds)) fail("file ", path, ": dataset ", ds, " is missing (a fit with --gains inputs writes it)");
    std::vector<double> v = h5::read_doubles(f, ds);
    if (v.size() != n) fail("file ", path, ": dataset ", ds, " has ", v.size(), " values, expected ", n);
    return v;
  };
  g.theta = need("/gains_model/theta", size_t(M) * size_t(M) * size_t(C));
  g.rho = need("/gains_model/rho", size_t(M) * size_t(M));
  g.prior = need("/gains_model/prior", size_t(M) * size_t(M));
  g.ubar = need("/gains_model/ubar", size_t(C));
  g.cv_fixed = need("/gains_model/cv_fixed", size_t(M));
  g.cv_gated = need("/gains_model/cv_gated", size_t(M));
  g.modulation = need("/gains_model/modulation", size_t(M));
  const std::vector<std::int64_t> kept = h5::read_ints(f, "/gains_model/kept");
  if (kept.size() != size_t(M)) fail("file ", path, ": dataset /gains_model/kept must have ", M, " values");
  for (int q = 0; q < M; ++q) g.kept[size_t(q)] = int(kept[size_t(q)]);
  return g;
}

}  // namespace cohortnet::fit
