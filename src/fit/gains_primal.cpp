// The gated start's primal form (gains.hpp, GainMoments): the same cross-validated error and
// gradient as GainFit's dual form, from input-weighted moments of the features, with an n x n
// system per fold (n = N + C sources) instead of Ts x Ts. Derivation (docs/currents.md, "Gated
// pathways", primal form): for one fold with training matrix A = sum a a H_tr + diag(1/lambda),
// b = sum a K_tr, W = A^-1 b, test moments B = sum a a H_te and c = sum a K_te,
//   E  = yy_te - 2 <W, c> + <W, B W>,
//   dE = 2 <db, V> - <dA, V W^T + W V^T> - 2 <dc, W> + <dB, W W^T>,   V = A^-1 (B W - c).
#include <petscsys.h>
#include <petscblaslapack.h>

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "fit/gains.hpp"

namespace cohortnet::fit {

bool gated_start_primal(StartForm form, double n, double Ts, int M, int C, int folds) {
  if (form != StartForm::Auto) return form == StartForm::Primal;
  const double primal = (double(folds) * moment_pairs(C) + 5.0) * n * n + n * Ts;
  const double dual = (M + 5.0) * Ts * Ts;
  return primal < dual;
}

std::vector<double> GainFit::coefficients(const std::vector<double>& theta) const {
  const size_t C1 = size_t(p_.C) + 1;
  std::vector<double> a(size_t(p_.M + 1) * C1, 0.0);
  const std::vector<double> r = rho(theta);
  for (int s = 0; s <= p_.M; ++s) {
    double* as = &a[size_t(s) * C1];
    if (s == p_.M || s == p_.q) {
      as[0] = 1.0;  // the inputs and the target's own region: gain 1
      continue;
    }
    as[0] = 1.0 / r[size_t(s)];
    for (size_t c = 1; c < C1; ++c) as[c] = theta[size_t(s) * size_t(p_.C) + c - 1] / r[size_t(s)];
  }
  return a;
}

double GainFit::primal_fold(const std::vector<double>& a, const GainFold& f, std::vector<double>* da,
                            std::vector<double>* deta, std::vector<double>* Wout, double* in_sample) const {
  const int n = p_.n, M = p_.M, C1 = p_.C + 1, P = moment_pairs(p_.C), R = M + 1;
  const size_t nn = size_t(n) * size_t(n), mq = size_t(p_.mq);
  const std::vector<int>& fr = *p_.feature_region;
  std::vector<int> reg(static_cast<size_t>(n));  // feature -> row of a (inputs: M)
  for (int j = 0; j < n; ++j) reg[size_t(j)] = fr[size_t(j)] < 0 ? M : fr[size_t(j)];
  // Runs of features of one source (regions are contiguous in the fit's unit order): the inner
  // loops below are then axpy / dot over a run.
  std::vector<int> run_begin;
  for (int j = 0; j < n; ++j)
    if (j == 0 || reg[size_t(j)] != reg[size_t(j) - 1]) run_begin.push_back(j);
  run_begin.push_back(n);
  std::vector<int> pc, pd;  // the moment pairs (c <= d)
  for (int c = 0; c < C1; ++c)
    for (int d = c; d < C1; ++d) pc.push_back(c), pd.push_back(d);
  // coef[p][S][S'] multiplies H_p on the block of sources S x S'.
  std::vector<double> coef(size_t(P) * size_t(R) * size_t(R));
  for (int p = 0; p < P; ++p)
    for (int s = 0; s < R; ++s)
      for (int t = 0; t < R; ++t) {
        const double* as = &a[size_t(s) * size_t(C1)];
        const double* at = &a[size_t(t) * size_t(C1)];
        const int c = pc[size_t(p)], d = pd[size_t(p)];
        coef[(size_t(p) * size_t(R) + size_t(s)) * size_t(R) + size_t(t)] =
            c == d ? as[c] * at[c] : as[c] * at[d] + as[d] * at[c];
      }
  const int F = int(p_.H->size());
  std::vector<int> train;
  for (int b = 0; b < F; ++b)
    if (std::find(f.out.begin(), f.out.end(), b) == f.out.end() && b != f.tested) train.push_back(b);
  // sum over the sets `sets` of coef x H, into X (n x n).
  auto assemble = [&](const std::vector<int>& sets, std::vector<double>& X) {
    X.assign(nn, 0.0);
    for (int b : sets)
      for (int p = 0; p < P; ++p) {
        const double* h = (*p_.H)[size_t(b)].H[size_t(p)].data();
        const double* cp = &coef[size_t(p) * size_t(R) * size_t(R)];
        for (int k = 0; k < n; ++k) {
          const double* ck = cp + size_t(reg[size_t(k)]);
          double* xk = &X[size_t(k) * size_t(n)];
          const double* hk = h + size_t(k) * size_t(n);
          for (size_t r = 0; r + 1 < run_begin.size(); ++r) {
            const double w = ck[size_t(reg[size_t(run_begin[r])]) * size_t(R)];
            for (int j = run_begin[r]; j < run_begin[r + 1]; ++j) xk[j] += w * hk[j];
          }
        }
      }
  };
  // sum over the sets of a_{S(j), c} K_c[j, i], into Y (n x mq).
  auto project = [&](const std::vector<int>& sets, std::vector<double>& Y) {
    Y.assign(size_t(n) * mq, 0.0);
    for (int b : sets)
      for (int c = 0; c < C1; ++c) {
        const double* k = (*p_.K)[size_t(b)].K[size_t(c)].data();
        for (size_t i = 0; i < mq; ++i)
          for (int j = 0; j < n; ++j)
            Y[size_t(j) + i * size_t(n)] += a[size_t(reg[size_t(j)]) * size_t(C1) + size_t(c)] * k[size_t(j) + i * size_t(n)];
      }
  };
  std::vector<double> A, L, b, W;
  assemble(train, A);
  project(train, b);
  L = A;
  for (int j = 0; j < n; ++j) {
    const int s = reg[size_t(j)];
    L[size_t(j) * size_t(n) + size_t(j)] += 1.0 / (s == M ? p_.p0u : lam_[size_t(s)]);
  }
  const PetscBLASInt nb = PetscBLASInt(n), mb = PetscBLASInt(mq);
  PetscBLASInt info = 0;
  LAPACKpotrf_("L", &nb, L.data(), &nb, &info);
  if (info != 0) fail("gated regression start (primal form): the source Gram matrix of target region ", p_.q,
                      " is not positive definite");
  W = b;
  if (mq > 0) LAPACKpotrs_("L", &nb, &mb, L.data(), &nb, W.data(), &nb, &info);
  const double one = 1.0, zero = 0.0;
  auto dot = [](const std::vector<double>& x, const std::vector<double>& y) {
    double v = 0;
    for (size_t k = 0; k < x.size(); ++k) v += x[k] * y[k];
    return v;
  };
  if (f.tested < 0) {  // in sample: yy - 2 <W, b> + <W, A W>
    if (in_sample) {
      std::vector<double> AW(size_t(n) * mq, 0.0);
      if (mq > 0) BLASgemm_("N", "N", &nb, &mb, &nb, &one, A.data(), &nb, W.data(), &nb, &zero, AW.data(), &nb);
      double yy = 0;
      for (int bb : train) yy += (*p_.K)[size_t(bb)].yy;
      *in_sample = yy - 2.0 * dot(W, b) + dot(W, AW);
    }
    if (Wout) *Wout = std::move(W);
    return 0;
  }
  const std::vector<int> test{f.tested};
  std::vector<double> B, c, BW(size_t(n) * mq, 0.0);
  assemble(test, B);
  project(test, c);
  if (mq > 0) BLASgemm_("N", "N", &nb, &mb, &nb, &one, B.data(), &nb, W.data(), &nb, &zero, BW.data(), &nb);
  const double e = (*p_.K)[size_t(f.tested)].yy - 2.0 * dot(W, c) + dot(W, BW);
  if (!da) return e;

  std::vector<double> V(size_t(n) * mq);
  for (size_t k = 0; k < V.size(); ++k) V[k] = BW[k] - c[k];
  if (mq > 0) LAPACKpotrs_("L", &nb, &mb, L.data(), &nb, V.data(), &nb, &info);
  std::vector<double> Xs(nn, 0.0), WW(nn, 0.0);
  if (mq > 0) {
    BLASgemm_("N", "T", &nb, &nb, &mb, &one, V.data(), &nb, W.data(), &nb, &zero, Xs.data(), &nb);
    for (int k = 0; k < n; ++k)
      for (int j = 0; j <= k; ++j) {
        const double s = Xs[size_t(j) + size_t(k) * size_t(n)] + Xs[size_t(k) + size_t(j) * size_t(n)];
        Xs[size_t(j) + size_t(k) * size_t(n)] = Xs[size_t(k) + size_t(j) * size_t(n)] = s;
      }
    BLASgemm_("N", "T", &nb, &nb, &mb, &one, W.data(), &nb, W.data(), &nb, &zero, WW.data(), &nb);
  }
  // T_p(S, S') = sum over j in S, k in S' of H_p[j, k] X[j, k]: -2 for the training sets with
  // X = Xs, +2 for the test set with X = W W^T; then dE/da_{S,c} += sum_S' a_{S',d} T_p(S, S').
  std::vector<double> Tp(size_t(P) * size_t(R) * size_t(R), 0.0);
  auto contract = [&](int set, const std::vector<double>& X, double w) {
    for (int p = 0; p < P; ++p) {
      const double* h = (*p_.H)[size_t(set)].H[size_t(p)].data();
      double* tp = &Tp[size_t(p) * size_t(R) * size_t(R)];
      for (int k = 0; k < n; ++k) {
        double* tk = tp + size_t(reg[size_t(k)]);
        const double* hk = h + size_t(k) * size_t(n);
        const double* xk = &X[size_t(k) * size_t(n)];
        for (size_t r = 0; r + 1 < run_begin.size(); ++r) {
          double v = 0;
          for (int j = run_begin[r]; j < run_begin[r + 1]; ++j) v += hk[j] * xk[j];
          tk[size_t(reg[size_t(run_begin[r])]) * size_t(R)] += w * v;
        }
      }
    }
  };
  for (int bb : train) contract(bb, Xs, -2.0);
  contract(f.tested, WW, 2.0);
  for (int p = 0; p < P; ++p) {
    const int cc = pc[size_t(p)], dd = pd[size_t(p)];
    for (int s = 0; s < R; ++s)
      for (int t = 0; t < R; ++t) {
        const double v = Tp[(size_t(p) * size_t(R) + size_t(s)) * size_t(R) + size_t(t)];
        (*da)[size_t(s) * size_t(C1) + size_t(cc)] += a[size_t(t) * size_t(C1) + size_t(dd)] * v;
        if (cc != dd) (*da)[size_t(s) * size_t(C1) + size_t(dd)] += a[size_t(t) * size_t(C1) + size_t(cc)] * v;
      }
  }
  // + 2 <db, V> - 2 <dc, W>; eta: dE/deta_S = (1 / lambda_S) sum_{j in S} Xs[j, j].
  for (int cc = 0; cc < C1; ++cc) {
    for (int bb : train) {
      const double* k = (*p_.K)[size_t(bb)].K[size_t(cc)].data();
      for (size_t i = 0; i < mq; ++i)
        for (int j = 0; j < n; ++j)
          (*da)[size_t(reg[size_t(j)]) * size_t(C1) + size_t(cc)] += 2.0 * k[size_t(j) + i * size_t(n)] * V[size_t(j) + i * size_t(n)];
    }
    const double* k = (*p_.K)[size_t(f.tested)].K[size_t(cc)].data();
    for (size_t i = 0; i < mq; ++i)
      for (int j = 0; j < n; ++j)
        (*da)[size_t(reg[size_t(j)]) * size_t(C1) + size_t(cc)] -= 2.0 * k[size_t(j) + i * size_t(n)] * W[size_t(j) + i * size_t(n)];
  }
  for (int j = 0; j < n; ++j) {
    const int s = reg[size_t(j)];
    if (s < M && s != p_.q) (*deta)[size_t(s)] += Xs[size_t(j) * size_t(n) + size_t(j)] / lam_[size_t(s)];
  }
  return e;
}

double GainFit::primal_objective(const std::vector<double>& theta, std::vector<double>* grad) {
  const int M = p_.M, C = p_.C, C1 = C + 1;
  const std::vector<double> a = coefficients(theta);
  // One reduction over sub: [E, dE/da ((M+1) x (C+1)), dE/deta (M)].
  std::vector<double> red(1 + a.size() + size_t(M), 0.0);
  std::vector<double> da(a.size(), 0.0), deta(size_t(M), 0.0);
  for (const GainFold& f : folds_)
    if (f.tested >= 0) red[0] += primal_fold(a, f, grad ? &da : nullptr, grad ? &deta : nullptr);
  std::copy(da.begin(), da.end(), red.begin() + 1);
  std::copy(deta.begin(), deta.end(), red.begin() + 1 + std::ptrdiff_t(a.size()));
  same_sum(p_.sub, red.data(), int(red.size()));
  if (grad) {
    // a_S = (1, theta_S) / rho_S with rho_S^2 = th^T Ubar2 th (th = (1, theta_S)):
    // da_Se / dtheta_Sc = delta_ec / rho - th_e (Ubar2 th)_c / rho^3.
    grad->assign(theta.size(), 0.0);
    const std::vector<double> r = rho(theta);
    for (int s = 0; s < M; ++s) {
      if (s == p_.q) continue;
      std::vector<double> th(size_t(C1), 1.0), uth(size_t(C1), 0.0);
      for (int c = 1; c < C1; ++c) th[size_t(c)] = theta[size_t(s) * size_t(C) + size_t(c) - 1];
      for (int c = 0; c < C1; ++c)
        for (int d = 0; d < C1; ++d) uth[size_t(c)] += p_.ubar2[size_t(c) + size_t(d) * size_t(C1)] * th[size_t(d)];
      const double rs = r[size_t(s)];
      const double* g = &red[1 + size_t(s) * size_t(C1)];
      double gth = 0;  // sum_e dE/da_Se th_e
      for (int e = 0; e < C1; ++e) gth += g[e] * th[size_t(e)];
      for (int c = 1; c < C1; ++c)
        (*grad)[size_t(s) * size_t(C) + size_t(c) - 1] =
            (g[c] / rs - gth * uth[size_t(c)] / (rs * rs * rs)) / yy_ + 2.0 * p_.shrink * theta[size_t(s) * size_t(C) + size_t(c) - 1];
    }
    if (theta.size() > size_t(M) * size_t(C))
      for (int s = 0; s < M; ++s)
        if (s != p_.q && std::fabs(theta[size_t(M) * size_t(C) + size_t(s)]) < kEtaMax)
          (*grad)[size_t(M) * size_t(C) + size_t(s)] = red[1 + a.size() + size_t(s)] / yy_;
  }
  return red[0];
}

}  // namespace cohortnet::fit
