#pragma once
// Gated pathways (--gains inputs; docs/currents.md "Gated pathways"). A pathway's use changes
// with the animal's state: the current from source region S into target region Q is
// g_QS(t) J_QS r_S(t), which one fixed J cannot express (it absorbs the gating into its weights).
// Here g_QS(t) = (1 + sum_c theta_QSc (u_c(t) - ubar_c)) / rho_QS is linear in the animal's known
// inputs u, with rho_QS its root mean square over the regression samples (so J_QS carries the
// pathway's strength and the ridge penalty cannot be lowered by inflating the gains); g_QQ = 1.
//
// The fit (GainFit) is a variable projection: for target region Q and a given theta, J's rows are
// the ridge solution (the dual form of start.cpp, with the Ts x Ts Gram matrix G_S of each source
// region's rates and K = I + sum_S lambda_S (g_S g_S^T) o G_S + p0 G_u), so the error can be
// written as a function of theta alone. The error minimised (PETSc TAO, LMVM, from theta = 0, the
// fixed-J start) is the cross-validated one on held-out blocks, not the in-sample ridge
// objective: in sample the fixed J absorbs the gating and beats the true gains (measured,
// docs/currents.md "Gated pathways"); alternating J and g never leaves the fixed-J answer either.
#include <mpi.h>

#include "core/h5.hpp"
#include "fit/params.hpp"

#include <string>
#include <vector>

namespace cohortnet::fit {

struct PathwayGains {
  int M = 0, C = 0;           // regions, inputs
  std::vector<double> ubar;   // C
  std::vector<double> theta;  // M x M x C, index (q*M + s)*C + c; zero for q == s and rejected targets
  std::vector<double> rho;    // M x M, 1 on the diagonal
  std::vector<double> prior;  // M x M: prior variance of the weights of S's units into Q / start-p0 (1 on the diagonal)
  std::vector<int> kept;      // M: the target's gains passed cross-validation
  // M: nested cross-validated error of the implied currents (NaN: none); cv_fixed is the better of
  // the fixed J at its start prior and at the learnt prior factors (gains 1).
  std::vector<double> cv_fixed, cv_gated;
  std::vector<double> modulation;          // M: the fitted gains' largest std over time (before acceptance)
  bool empty() const { return M == 0; }
  // Fixed J: theta 0, rho 1, nothing kept.
  static PathwayGains identity(int M, int C);
  double at(int q, int s, const double* u) const;  // u: the C inputs of one sample
  // g[q*M + s] for one sample.
  void fill(const double* u, double* g) const;
};

// /gains_model/{theta [M x M x C], rho [M x M], ubar [C], kept [M], cv_fixed [M], cv_gated [M], modulation [M]}
// (fit outputs and checkpoints). Collective. read_gain_model checks the shapes, naming the file.
void write_gain_model(const h5::File& f, const PathwayGains& g);
PathwayGains read_gain_model(const h5::File& f, const std::string& path, int M, int C);

// C = A A^T (n x n, both triangles), A: n x k column-major (the starts' Gram matrices).
void full_gram(int n, int k, const double* a, double* c);

// The same sum on every rank of comm (reduced to one rank, then broadcast): every rank of a gain
// fit must take the same optimiser path, so the values it sees must be bit-identical.
void same_sum(MPI_Comm comm, double* v, int n);

// One target region's gain fit over a subset of the regression samples. The Gram matrices are
// the full Ts x Ts ones (column-major), identical on every rank of `sub` (the ranks holding rows
// of Q); Y holds this rank's rows of Q (Ts x mq, column-major). Every collective is on `sub`, and
// every rank of it computes the same theta (values reduced to one rank and broadcast).
// A source's learnt prior variance stays within e^(+-kEtaMax) (1e6) of its start value: on
// noise-free data the cross-validated error keeps falling as a prior variance grows, and with the
// bound at e^30 the ridge system I + sum lambda_S (g g^T o G_S) lost positive definiteness to
// rounding and the fit stopped (bench_fit's synthetic sines, N 1,200; docs/currents.md).
inline constexpr double kEtaMax = 13.815510557964274;  // ln 1e6

// The primal form of the gated start, for recordings with more samples than sources (the dual
// form's Ts x Ts systems cost Ts^3 per factorisation: at Ts 4,000 a start took > 20 min). With
// every source's features z_j(t) = g_{S(j)}(t) rt_j(t) (rt: the units' rates, then the inputs,
// whose gain is 1) and g_S(t) = sum_c a_Sc ut_c(t) (ut_0 = 1, ut_c the centred inputs), each
// matrix the ridge needs is sum_{c,d} a_Sc a_S'd H_cd with the input-weighted moments
// H_cd = sum_t ut_c ut_d rt rt^T (n x n, n = N + C) and K_c = sum_t ut_c rt y^T (n x rows): the
// same solution and error as the dual form (tested), with n^3 instead of Ts^3 per factorisation.
// One moment set per fold of the regression samples (the set of all samples is their sum).
struct GainMoments {
  std::vector<std::vector<double>> H;  // pair (c <= d) in order (0,0), (0,1), ..., (C,C): n x n, both triangles
};
struct GainTargetMoments {
  std::vector<std::vector<double>> K;  // c: n x mq, this rank's rows of the target region
  double yy = 0;                       // this rank's sum of y^2
};
inline int moment_pairs(int C) { return (C + 1) * (C + 2) / 2; }
// Whether the gated start takes the primal form: forced by --start-form, else (auto) when its
// moments take less memory than the dual form's Gram matrices (the fit and its memory plan).
bool gated_start_primal(StartForm form, double n, double Ts, int M, int C, int folds);

struct GainProblem {
  int Ts = 0, M = 0, C = 0, q = 0;
  const std::vector<std::vector<double>>* G = nullptr;  // per source region: Ts x Ts
  const std::vector<double>* Gu = nullptr;              // Ts x Ts of the inputs (empty: none)
  const double* uc = nullptr;                           // Ts x C, the centred inputs
  const double* Y = nullptr;                            // Ts x mq
  int mq = 0;
  std::vector<double> lambda;  // per source region: base prior variance of its weights (x's eta scales it)
  double p0u = 0;              // ... of the input weights
  double shrink = 0;           // + shrink * |theta|^2 in the objective (theta's prior)
  // Primal form (when H is set): n features (the N units, then the C inputs), the source region
  // of each (-1: an input), the moments of each fold's test samples, mean(ut ut^T) over all Ts
  // samples ((C+1) x (C+1): the gains' rho); G and Gu are then unused.
  int n = 0;
  const std::vector<int>* feature_region = nullptr;
  const std::vector<GainMoments>* H = nullptr;
  const std::vector<GainTargetMoments>* K = nullptr;
  const double* ubar2 = nullptr;
  MPI_Comm sub = MPI_COMM_NULL;
};

// The samples a fold trains on and the ones it predicts (indices into Ts, ascending).
struct GainFold {
  std::vector<int> train, test;
  // The same sets as base folds (primal form): train = every base fold not in `out`, test = base
  // fold `tested` (-1: none).
  std::vector<int> out;
  int tested = -1;
};

class GainFit {
 public:
  GainFit(const GainProblem& p, std::vector<GainFold> folds);
  // x = [theta (M*C), eta (M)]: the gains' parameters and, per source region S != q, the log
  // factor of its weights' prior variance (lambda_S exp(eta_S): a relevance prior per pathway,
  // learnt with the gains; x = 0 is the fixed-J start exactly). The cross-validated error of the implied currents (summed over the folds and over sub,
  // divided by the sum of y^2): each fold's ridge solution given theta, trained on its train
  // samples, predicting its test samples; with its gradient (size M*C, zero for s == q). Not the
  // in-sample ridge objective: in sample, a fixed J absorbs the gating and fits better than the
  // true gains (measured on the simulator), so that objective cannot find them.
  double objective(const std::vector<double>& theta, std::vector<double>* grad);
  // Minimises from theta (in place) by TAO LMVM (options prefix -gains_). Returns the iterations.
  int minimise(std::vector<double>& theta, int max_iterations = 100);
  // rho of each source region at theta over all Ts samples.
  std::vector<double> rho(const std::vector<double>& theta) const;
  // The ridge solution at theta on all Ts samples: alpha (Ts x mq, column-major).
  void solve(const std::vector<double>& theta);
  const std::vector<double>& alpha() const { return alpha_; }
  // Primal form: the weights of every feature for this rank's rows (n x mq) from solve(), and
  // this rank's in-sample residual sum of squares.
  const std::vector<double>& weights() const { return weights_; }
  double residual() const { return residual_; }
  bool primal() const { return p_.H != nullptr; }

 private:
  void gains_all(const std::vector<double>& theta, std::vector<double>& g) const;  // (s, t) -> g[s*Ts + t]
  std::vector<double> lambdas(const std::vector<double>& x) const;  // prior variance per source region
  // K on rows `a` x columns `b` (lower triangle only when a == b and `sym`), plus I on the diagonal if sym.
  void kernel(const std::vector<double>& g, const std::vector<int>& a, const std::vector<int>& b, bool sym,
              std::vector<double>& K) const;
  // Primal form: a = (M + 1) x (C + 1) gain coefficients (row M: the inputs, gain 1); one fold's
  // error summed over this rank's rows and, with da, its gradients in a and eta (local sums).
  std::vector<double> coefficients(const std::vector<double>& theta) const;
  double primal_objective(const std::vector<double>& theta, std::vector<double>* grad);  // error / yy, + gradient
  double primal_fold(const std::vector<double>& a, const GainFold& f, std::vector<double>* da,
                     std::vector<double>* deta, std::vector<double>* W = nullptr, double* in_sample = nullptr) const;
  GainProblem p_;
  std::vector<GainFold> folds_;
  std::vector<double> alpha_, weights_;
  double residual_ = 0;
  mutable std::vector<double> lam_;
  double yy_ = 0;  // sum of y^2 over all samples (sub): the objective's scale
};

}  // namespace cohortnet::fit
