#include "modes/nmf.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "core/error.hpp"
#include "core/parallel.hpp"
#include "core/rng.hpp"
#include "modes/hungarian.hpp"

namespace cohortnet::modes {

void AnimalMatrix::clear_holdout() {
  block_start = {0, T};
  heldout.assign(present.size(), 0);
}

namespace {
// Contiguous block of items [begin, end) for rank r of n ranks.
void partition(int items, int rank, int size, int& begin, int& end) {
  begin = int((long(items) * rank) / size);
  end = int((long(items) * (rank + 1)) / size);
}
}  // namespace

MaskedHals::MaskedHals(std::vector<const AnimalMatrix*> animals, int P, const FitOptions& opt, MPI_Comm comm)
    : animals_(std::move(animals)), P_(P), K_(opt.K), opt_(opt), comm_(comm) {
  if (K_ < 1) fail("modes: the number of modes K must be at least 1 (got ", K_, ")");
  if (animals_.empty()) fail("modes: no animals to fit");
  partition(int(animals_.size()), comm_rank(comm_), comm_size(comm_), own_begin_, own_end_);
  row_has_data_.assign(size_t(P_), 0);
  slot_offset_.assign(animals_.size() + 1, 0);
  for (size_t i = 0; i < animals_.size(); ++i) {
    const AnimalMatrix& a = *animals_[i];
    if (a.X.size() != size_t(P_) * size_t(a.T) || a.present.size() != size_t(P_))
      fail("modes: animal ", a.id, ": data has the wrong shape");
    for (int p = 0; p < P_; ++p)
      for (int b = 0; b < a.n_blocks(); ++b)
        if (a.observed(p, b)) row_has_data_[size_t(p)] = 1;
    slot_offset_[i + 1] = slot_offset_[i] + size_t(P_) * size_t(K_) + size_t(a.n_blocks()) * size_t(K_ * K_);
  }
  slot_total_ = slot_offset_.back();
  // Sum of squares of the observed data, in animal order (constant of the objective).
  xx_ = 0;
  for (auto* ap : animals_) {
    const AnimalMatrix& a = *ap;
    for (int p = 0; p < P_; ++p)
      for (int b = 0; b < a.n_blocks(); ++b) {
        if (!a.observed(p, b)) continue;
        const double* x = a.X.data() + size_t(p) * size_t(a.T);
        for (int t = a.block_start[size_t(b)]; t < a.block_start[size_t(b) + 1]; ++t) xx_ += x[t] * x[t];
      }
  }
  H_.resize(animals_.size());
}

void MaskedHals::init_random() {
  Stream s(opt_.seed, {kTagModes, opt_.start, 0});
  W_.assign(size_t(P_) * size_t(K_), 0.0);
  for (int p = 0; p < P_; ++p)
    for (int k = 0; k < K_; ++k) {
      const double u = s.uniform();  // drawn for every row so the stream does not depend on masks
      if (row_has_data_[size_t(p)]) W_[size_t(p) * size_t(K_) + size_t(k)] = u;
    }
  std::vector<double> w = W_;
  set_W(w);
}

void MaskedHals::set_W(const std::vector<double>& W) {
  if (W.size() != size_t(P_) * size_t(K_)) fail("modes: W has the wrong size");
  W_ = W;
  for (int k = 0; k < K_; ++k) {
    double n2 = 0;
    for (int p = 0; p < P_; ++p) n2 += W_[size_t(p) * size_t(K_) + size_t(k)] * W_[size_t(p) * size_t(K_) + size_t(k)];
    const double n = std::sqrt(n2);
    if (n > 0)
      for (int p = 0; p < P_; ++p) W_[size_t(p) * size_t(K_) + size_t(k)] /= n;
  }
  // H: uniform, scaled so W H has the magnitude of the data (columns of W have unit norm).
  for (size_t i = 0; i < animals_.size(); ++i) {
    const AnimalMatrix& a = *animals_[i];
    double sum = 0, cnt = 0;
    for (int p = 0; p < P_; ++p)
      for (int b = 0; b < a.n_blocks(); ++b) {
        if (!a.observed(p, b)) continue;
        const double* x = a.X.data() + size_t(p) * size_t(a.T);
        for (int t = a.block_start[size_t(b)]; t < a.block_start[size_t(b) + 1]; ++t) sum += x[t];
        cnt += a.block_start[size_t(b) + 1] - a.block_start[size_t(b)];
      }
    const double scale = cnt > 0 ? 2.0 * (sum / cnt) * std::sqrt(double(P_)) / K_ : 1.0;
    Stream s(opt_.seed, {kTagModes, opt_.start, 1, a.seed_id});
    H_[i].assign(size_t(K_) * size_t(a.T), 0.0);
    for (auto& h : H_[i]) h = scale * s.uniform();
  }
  iterations_ = 0;
  converged_ = false;
}

void MaskedHals::h_step(int i) {
  const AnimalMatrix& a = *animals_[size_t(i)];
  const int K = K_, T = a.T;
  std::vector<double>& H = H_[size_t(i)];
  std::vector<double> G(size_t(K) * size_t(K)), A;
  for (int b = 0; b < a.n_blocks(); ++b) {
    const int t0 = a.block_start[size_t(b)], t1 = a.block_start[size_t(b) + 1], nt = t1 - t0;
    if (nt <= 0) continue;
    std::fill(G.begin(), G.end(), 0.0);
    A.assign(size_t(K) * size_t(nt), 0.0);
    for (int p = 0; p < P_; ++p) {
      if (!a.observed(p, b)) continue;
      const double* w = W_.data() + size_t(p) * size_t(K);
      for (int k = 0; k < K; ++k)
        for (int j = 0; j < K; ++j) G[size_t(k) * size_t(K) + size_t(j)] += w[k] * w[j];
      const double* x = a.X.data() + size_t(p) * size_t(T) + t0;
      for (int k = 0; k < K; ++k) {
        const double wk = w[k];
        if (wk == 0) continue;
        double* Ak = A.data() + size_t(k) * size_t(nt);
        for (int t = 0; t < nt; ++t) Ak[t] += wk * x[t];
      }
    }
    const double ridge = opt_.h_ridge;
    for (int sweep = 0; sweep < opt_.inner; ++sweep)
      for (int k = 0; k < K; ++k) {
        const double gkk = G[size_t(k) * size_t(K) + size_t(k)] + ridge;
        if (!(gkk > 0)) continue;
        double* hk = H.data() + size_t(k) * size_t(T) + t0;
        const double* Ak = A.data() + size_t(k) * size_t(nt);
        for (int t = 0; t < nt; ++t) {
          double num = Ak[t] - ridge * hk[t];
          for (int j = 0; j < K; ++j) num -= G[size_t(k) * size_t(K) + size_t(j)] * H[size_t(j) * size_t(T) + size_t(t0 + t)];
          hk[t] = std::max(0.0, hk[t] + num / gkk);
        }
      }
  }
}

void MaskedHals::contributions(int i, double* B, double* S) const {
  // B: P x K (this animal's X H^T over observed entries); S: n_blocks x K x K block Grams.
  const AnimalMatrix& a = *animals_[size_t(i)];
  const int K = K_, T = a.T;
  const std::vector<double>& H = H_[size_t(i)];
  for (int b = 0; b < a.n_blocks(); ++b) {
    const int t0 = a.block_start[size_t(b)], t1 = a.block_start[size_t(b) + 1];
    double* Sb = S + size_t(b) * size_t(K) * size_t(K);
    for (int k = 0; k < K; ++k)
      for (int j = 0; j <= k; ++j) {
        const double* hk = H.data() + size_t(k) * size_t(T);
        const double* hj = H.data() + size_t(j) * size_t(T);
        double s = 0;
        for (int t = t0; t < t1; ++t) s += hk[t] * hj[t];
        Sb[size_t(k) * size_t(K) + size_t(j)] = s;
        Sb[size_t(j) * size_t(K) + size_t(k)] = s;
      }
  }
  for (int p = 0; p < P_; ++p) {
    double* Bp = B + size_t(p) * size_t(K);
    for (int k = 0; k < K; ++k) Bp[k] = 0;
    if (!a.present[size_t(p)]) continue;
    const double* x = a.X.data() + size_t(p) * size_t(T);
    for (int b = 0; b < a.n_blocks(); ++b) {
      if (!a.observed(p, b)) continue;
      const int t0 = a.block_start[size_t(b)], t1 = a.block_start[size_t(b) + 1];
      for (int k = 0; k < K; ++k) {
        const double* hk = H.data() + size_t(k) * size_t(T);
        double s = 0;
        for (int t = t0; t < t1; ++t) s += x[t] * hk[t];
        Bp[k] += s;
      }
    }
  }
}

double MaskedHals::bytes_per_iter() const {
  const size_t n = opt_.reduction == Reduction::ordered ? slot_total_ : size_t(P_) * size_t(K_) * size_t(K_ + 1);
  return double(n) * double(sizeof(double));
}

double MaskedHals::step() {
  const int K = K_;
  const size_t PK = size_t(P_) * size_t(K), KK = size_t(K) * size_t(K);
  using clock = std::chrono::steady_clock;
  auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  auto t0 = clock::now();
  for (int i = own_begin_; i < own_end_; ++i) h_step(i);
  std::vector<double> Bsum(PK, 0.0), C(PK * size_t(K), 0.0);
  if (opt_.reduction == Reduction::ordered) {
    std::vector<double> buf(slot_total_, 0.0);
    for (int i = own_begin_; i < own_end_; ++i)
      contributions(i, buf.data() + slot_offset_[size_t(i)], buf.data() + slot_offset_[size_t(i)] + PK);
    seconds_local += since(t0);
    t0 = clock::now();
    MPI_Allreduce(MPI_IN_PLACE, buf.data(), int(buf.size()), MPI_DOUBLE, MPI_SUM, comm_);
    seconds_reduce += since(t0);
    t0 = clock::now();
    // Every rank adds the slots in animal order: the same sums whatever the rank count.
    for (size_t i = 0; i < animals_.size(); ++i) {
      const AnimalMatrix& a = *animals_[i];
      const double* B = buf.data() + slot_offset_[i];
      const double* S = B + PK;
      for (size_t q = 0; q < PK; ++q) Bsum[q] += B[q];
      for (int p = 0; p < P_; ++p) {
        if (!a.present[size_t(p)]) continue;
        double* Cp = C.data() + size_t(p) * KK;
        for (int b = 0; b < a.n_blocks(); ++b) {
          if (!a.observed(p, b)) continue;
          const double* Sb = S + size_t(b) * KK;
          for (size_t q = 0; q < KK; ++q) Cp[q] += Sb[q];
        }
      }
    }
  } else {
    std::vector<double> buf(PK + PK * size_t(K), 0.0), B(PK), S;
    for (int i = own_begin_; i < own_end_; ++i) {
      const AnimalMatrix& a = *animals_[size_t(i)];
      S.assign(size_t(a.n_blocks()) * KK, 0.0);
      contributions(i, B.data(), S.data());
      for (size_t q = 0; q < PK; ++q) buf[q] += B[q];
      for (int p = 0; p < P_; ++p) {
        if (!a.present[size_t(p)]) continue;
        double* Cp = buf.data() + PK + size_t(p) * KK;
        for (int b = 0; b < a.n_blocks(); ++b)
          if (a.observed(p, b))
            for (size_t q = 0; q < KK; ++q) Cp[q] += S[size_t(b) * KK + q];
      }
    }
    seconds_local += since(t0);
    t0 = clock::now();
    MPI_Allreduce(MPI_IN_PLACE, buf.data(), int(buf.size()), MPI_DOUBLE, MPI_SUM, comm_);
    seconds_reduce += since(t0);
    t0 = clock::now();
    std::copy(buf.begin(), buf.begin() + long(PK), Bsum.begin());
    std::copy(buf.begin() + long(PK), buf.end(), C.begin());
  }
  // Objective at (W, new H) from the reduced sums: |X|^2 - 2 <W, B> + sum_p w_p C_p w_p^T.
  double f = xx_;
  for (int p = 0; p < P_; ++p) {
    const double* w = W_.data() + size_t(p) * size_t(K);
    const double* Cp = C.data() + size_t(p) * KK;
    for (int k = 0; k < K; ++k) {
      f -= 2 * w[k] * Bsum[size_t(p) * size_t(K) + size_t(k)];
      for (int j = 0; j < K; ++j) f += w[k] * Cp[size_t(k) * size_t(K) + size_t(j)] * w[j];
    }
  }
  // W step: rows are independent (each has its own Gram C_p because of the masks).
  for (int p = 0; p < P_; ++p) {
    double* w = W_.data() + size_t(p) * size_t(K);
    const double* Cp = C.data() + size_t(p) * KK;
    const double* Bp = Bsum.data() + size_t(p) * size_t(K);
    for (int sweep = 0; sweep < opt_.inner; ++sweep)
      for (int k = 0; k < K; ++k) {
        const double ckk = Cp[size_t(k) * size_t(K) + size_t(k)];
        if (!(ckk > 0)) continue;
        double num = Bp[k];
        for (int j = 0; j < K; ++j) num -= Cp[size_t(k) * size_t(K) + size_t(j)] * w[j];
        w[k] = std::max(0.0, w[k] + num / ckk);
      }
  }
  // Unit-norm columns of W; the scale moves into H (the product is unchanged).
  for (int k = 0; k < K; ++k) {
    double n2 = 0;
    for (int p = 0; p < P_; ++p) n2 += W_[size_t(p) * size_t(K) + size_t(k)] * W_[size_t(p) * size_t(K) + size_t(k)];
    const double n = std::sqrt(n2);
    if (!(n > 0)) continue;
    for (int p = 0; p < P_; ++p) W_[size_t(p) * size_t(K) + size_t(k)] /= n;
    for (int i = own_begin_; i < own_end_; ++i) {
      std::vector<double>& H = H_[size_t(i)];
      const int T = animals_[size_t(i)]->T;
      for (int t = 0; t < T; ++t) H[size_t(k) * size_t(T) + size_t(t)] *= n;
    }
  }
  ++iterations_;
  seconds_w += since(t0);
  return std::max(0.0, f);
}

void MaskedHals::set_state(const std::vector<double>& W, const std::vector<std::vector<double>>& H) {
  if (W.size() != size_t(P_) * size_t(K_) || H.size() != animals_.size()) fail("modes: W or H has the wrong size");
  W_ = W;
  H_ = H;
  for (int k = 0; k < K_; ++k) {
    double n2 = 0;
    for (int p = 0; p < P_; ++p) n2 += W_[size_t(p) * size_t(K_) + size_t(k)] * W_[size_t(p) * size_t(K_) + size_t(k)];
    const double n = std::sqrt(n2);
    if (n <= 0) continue;
    for (int p = 0; p < P_; ++p) W_[size_t(p) * size_t(K_) + size_t(k)] /= n;
    for (size_t i = 0; i < H_.size(); ++i) {
      const size_t T = size_t(animals_[i]->T);
      if (H_[i].size() != size_t(K_) * T) fail("modes: H of animal ", i, " has the wrong size");
      for (size_t t = 0; t < T; ++t) H_[i][size_t(k) * T + t] *= n;
    }
  }
  iterations_ = 0;
  converged_ = false;
}

double MaskedHals::objective() const {
  std::vector<double> per(animals_.size(), 0.0);
  for (int i = own_begin_; i < own_end_; ++i)
    per[size_t(i)] = masked_sse(*animals_[size_t(i)], W_, H_[size_t(i)], P_, K_);
  MPI_Allreduce(MPI_IN_PLACE, per.data(), int(per.size()), MPI_DOUBLE, MPI_SUM, comm_);
  double f = 0;
  for (double v : per) f += v;
  return f;
}

FitResult MaskedHals::run() {
  auto t0 = std::chrono::steady_clock::now();
  double prev = std::numeric_limits<double>::infinity();
  for (int it = 0; it < opt_.max_iter; ++it) {
    const double f = step();
    // The decision uses reduced values only, so every rank stops at the same iteration.
    if (std::isfinite(prev) && prev - f <= opt_.tol * std::max(prev, 1e-300)) {
      converged_ = true;
      break;
    }
    prev = f;
  }
  seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result();
}

FitResult MaskedHals::result() const {
  FitResult r;
  r.P = P_;
  r.K = K_;
  r.W = W_;
  r.H.resize(animals_.size());
  const int size = comm_size(comm_);
  for (size_t i = 0; i < animals_.size(); ++i) {
    int owner = 0;
    for (int q = 0; q < size; ++q) {
      int b, e;
      partition(int(animals_.size()), q, size, b, e);
      if (int(i) >= b && int(i) < e) owner = q;
    }
    r.H[i] = H_[i];
    MPI_Bcast(r.H[i].data(), int(r.H[i].size()), MPI_DOUBLE, owner, comm_);
  }
  r.objective = objective();
  r.iterations = iterations_;
  r.converged = converged_;
  r.comm_bytes_per_iter = bytes_per_iter();
  r.seconds_per_iter = iterations_ > 0 ? seconds_ / iterations_ : 0;
  return r;
}

FitResult fit_best(const std::vector<const AnimalMatrix*>& animals, int P, FitOptions opt, int n_starts,
                   MPI_Comm comm, std::vector<double>* objectives) {
  FitResult best;
  bool have = false;
  const std::uint64_t first = opt.start;
  if (objectives) objectives->clear();
  for (int s = 0; s < n_starts; ++s) {
    opt.start = first + std::uint64_t(s);
    MaskedHals h(animals, P, opt, comm);
    h.init_random();
    FitResult r = h.run();
    if (objectives) objectives->push_back(r.objective);
    if (!have || r.objective < best.objective) {
      best = std::move(r);
      have = true;
    }
  }
  return best;
}

FitResult sparsify(const std::vector<const AnimalMatrix*>& animals, int P, const FitOptions& opt, const FitResult& fit,
                   MPI_Comm comm, double tolerance, int polish, int* accepted) {
  const int K = fit.K;
  FitResult best = fit;
  if (accepted) *accepted = 0;
  if (K < 2) return best;
  const double base = fit.objective;
  auto at = [&](const std::vector<double>& W, int p, int k) { return W[size_t(p) * size_t(K) + size_t(k)]; };
  auto l1 = [](const std::vector<double>& W) {
    double s = 0;
    for (double v : W) s += std::abs(v);
    return s;
  };
  MaskedHals h(animals, P, opt, comm);
  for (int pass = 0; pass < 3 * K; ++pass) {
    bool changed = false;
    for (int i = 0; i < K; ++i)
      for (int j = 0; j < K; ++j) {
        if (i == j) continue;
        const std::vector<double>& W = best.W;
        double wmax = 0;
        for (int p = 0; p < P; ++p) wmax = std::max(wmax, at(W, p, j));
        if (wmax <= 0) continue;
        double a = std::numeric_limits<double>::infinity();
        for (int p = 0; p < P; ++p)
          if (at(W, p, j) > 0.1 * wmax) a = std::min(a, (at(W, p, i) + 0.05) / at(W, p, j));
        if (!(a >= 0.05) || !std::isfinite(a)) continue;
        std::vector<double> W2 = W;
        double n2 = 0;
        for (int p = 0; p < P; ++p) {
          double& w = W2[size_t(p) * size_t(K) + size_t(i)];
          w = std::max(0.0, w - a * at(W, p, j));
          n2 += w * w;
        }
        if (std::sqrt(n2) < 0.2) continue;  // mode i would all but vanish: not a sparser mode, a lost one
        std::vector<std::vector<double>> H2 = best.H;
        for (size_t an = 0; an < H2.size(); ++an) {
          const size_t T = size_t(animals[an]->T);
          for (size_t t = 0; t < T; ++t) H2[an][size_t(j) * T + t] += a * H2[an][size_t(i) * T + t];
        }
        h.set_state(W2, H2);
        for (int it = 0; it < polish; ++it) h.step();
        const double obj = h.objective();
        FitResult cand = h.result();
        if (obj <= base * (1 + tolerance) && l1(cand.W) < l1(W) - 1e-3) {
          cand.objective = obj;
          cand.iterations = best.iterations + polish;
          cand.converged = best.converged;
          best = std::move(cand);
          changed = true;
          if (accepted) ++*accepted;
        }
      }
    if (!changed) break;
  }
  return best;
}

std::vector<double> project(const AnimalMatrix& a, const std::vector<double>& W, int P, int K, int max_iter,
                            double tol, double ridge) {
  const int T = a.T;
  std::vector<double> H(size_t(K) * size_t(T), 0.0), G(size_t(K) * size_t(K)), A;
  for (int b = 0; b < a.n_blocks(); ++b) {
    const int t0 = a.block_start[size_t(b)], t1 = a.block_start[size_t(b) + 1], nt = t1 - t0;
    if (nt <= 0) continue;
    std::fill(G.begin(), G.end(), 0.0);
    A.assign(size_t(K) * size_t(nt), 0.0);
    for (int p = 0; p < P; ++p) {
      if (!a.observed(p, b)) continue;
      const double* w = W.data() + size_t(p) * size_t(K);
      for (int k = 0; k < K; ++k)
        for (int j = 0; j < K; ++j) G[size_t(k) * size_t(K) + size_t(j)] += w[k] * w[j];
      const double* x = a.X.data() + size_t(p) * size_t(T) + t0;
      for (int k = 0; k < K; ++k)
        for (int t = 0; t < nt; ++t) A[size_t(k) * size_t(nt) + size_t(t)] += w[k] * x[t];
    }
    // Start: each coefficient alone (A_k / G_kk, clipped), then HALS sweeps to convergence.
    for (int k = 0; k < K; ++k) {
      const double gkk = G[size_t(k) * size_t(K) + size_t(k)];
      for (int t = 0; t < nt; ++t)
        H[size_t(k) * size_t(T) + size_t(t0 + t)] = gkk > 0 ? std::max(0.0, A[size_t(k) * size_t(nt) + size_t(t)] / gkk) / K : 0.0;
    }
    for (int it = 0; it < max_iter; ++it) {
      double change = 0, norm = 0;
      for (int k = 0; k < K; ++k) {
        const double gkk = G[size_t(k) * size_t(K) + size_t(k)] + ridge;
        if (!(gkk > 0)) continue;
        for (int t = 0; t < nt; ++t) {
          double& h = H[size_t(k) * size_t(T) + size_t(t0 + t)];
          double num = A[size_t(k) * size_t(nt) + size_t(t)] - ridge * h;
          for (int j = 0; j < K; ++j) num -= G[size_t(k) * size_t(K) + size_t(j)] * H[size_t(j) * size_t(T) + size_t(t0 + t)];
          const double nh = std::max(0.0, h + num / gkk);
          change += (nh - h) * (nh - h);
          norm += nh * nh;
          h = nh;
        }
      }
      if (change <= tol * tol * std::max(norm, 1e-300)) break;
    }
  }
  return H;
}

namespace {
template <class F>
void for_observed(const AnimalMatrix& a, int P, bool heldout_only, F&& f) {
  for (int p = 0; p < P; ++p) {
    if (!a.present[size_t(p)]) continue;
    for (int b = 0; b < a.n_blocks(); ++b) {
      const bool held = a.heldout[size_t(p) * size_t(a.n_blocks()) + size_t(b)] != 0;
      if (held != heldout_only) continue;
      for (int t = a.block_start[size_t(b)]; t < a.block_start[size_t(b) + 1]; ++t) f(p, t);
    }
  }
}

double model_at(const std::vector<double>& W, const std::vector<double>& H, int K, int T, int p, int t) {
  double s = 0;
  for (int k = 0; k < K; ++k) s += W[size_t(p) * size_t(K) + size_t(k)] * H[size_t(k) * size_t(T) + size_t(t)];
  return s;
}
}  // namespace

double masked_sse(const AnimalMatrix& a, const std::vector<double>& W, const std::vector<double>& H, int P, int K) {
  double sse = 0;
  for_observed(a, P, false, [&](int p, int t) {
    const double r = a.X[size_t(p) * size_t(a.T) + size_t(t)] - model_at(W, H, K, a.T, p, t);
    sse += r * r;
  });
  return sse;
}

double r2_observed(const AnimalMatrix& a, const std::vector<double>& W, const std::vector<double>& H, int P, int K) {
  std::vector<double> sum(size_t(P), 0.0), cnt(size_t(P), 0.0);
  for_observed(a, P, false, [&](int p, int t) {
    sum[size_t(p)] += a.X[size_t(p) * size_t(a.T) + size_t(t)];
    cnt[size_t(p)] += 1;
  });
  double sse = 0, sst = 0;
  for_observed(a, P, false, [&](int p, int t) {
    const double x = a.X[size_t(p) * size_t(a.T) + size_t(t)];
    const double r = x - model_at(W, H, K, a.T, p, t);
    const double c = x - sum[size_t(p)] / cnt[size_t(p)];
    sse += r * r;
    sst += c * c;
  });
  return sst > 0 ? 1.0 - sse / sst : std::numeric_limits<double>::quiet_NaN();
}

double heldout_error(const AnimalMatrix& a, const std::vector<double>& W, const std::vector<double>& H, int P, int K,
                     double* sse_out, double* ss_out) {
  double sse = 0, ss = 0;
  for_observed(a, P, true, [&](int p, int t) {
    const double x = a.X[size_t(p) * size_t(a.T) + size_t(t)];
    const double r = x - model_at(W, H, K, a.T, p, t);
    sse += r * r;
    ss += x * x;
  });
  if (sse_out) *sse_out = sse;
  if (ss_out) *ss_out = ss;
  return ss > 0 ? sse / ss : std::numeric_limits<double>::quiet_NaN();
}

double column_cosine(const std::vector<double>& A, int KA, int i, const std::vector<double>& B, int KB, int j,
                     const std::vector<std::uint8_t>& rows) {
  const size_t P = A.size() / size_t(KA);
  double ab = 0, aa = 0, bb = 0;
  for (size_t p = 0; p < P; ++p) {
    if (!rows.empty() && !rows[p]) continue;
    const double x = A[p * size_t(KA) + size_t(i)], y = B[p * size_t(KB) + size_t(j)];
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return (aa > 0 && bb > 0) ? ab / std::sqrt(aa * bb) : 0.0;
}

void match_columns(const std::vector<double>& A, const std::vector<double>& B, int P, int K,
                   const std::vector<std::uint8_t>& rows, std::vector<int>& match, std::vector<double>& sim) {
  (void)P;
  std::vector<double> S(size_t(K) * size_t(K));
  for (int i = 0; i < K; ++i)
    for (int j = 0; j < K; ++j) S[size_t(i) * size_t(K) + size_t(j)] = column_cosine(A, K, i, B, K, j, rows);
  match = match_max(S, K);
  sim.assign(size_t(K), 0.0);
  for (int i = 0; i < K; ++i) sim[size_t(i)] = S[size_t(i) * size_t(K) + size_t(match[size_t(i)])];
}

std::vector<std::vector<double>> run_tasks(MPI_Comm comm, int n,
                                           const std::function<std::vector<double>(int, MPI_Comm)>& task) {
  std::vector<std::vector<double>> out(size_t(std::max(n, 0)));
  if (n <= 0) return out;
  const int rank = comm_rank(comm), size = comm_size(comm);
  const int G = std::min(size, n);
  const int group = rank % G;
  MPI_Comm sub;
  MPI_Comm_split(comm, group, rank, &sub);
  std::string err;
  try {
    for (int i = group; i < n; i += G) out[size_t(i)] = task(i, sub);
  } catch (const std::exception& e) {
    err = e.what();
  }
  MPI_Comm_free(&sub);
  agree(comm, err);
  // The leader of group g is world rank g (the lowest rank with rank % G == g).
  for (int i = 0; i < n; ++i) {
    const int root = i % G;
    long len = long(out[size_t(i)].size());
    MPI_Bcast(&len, 1, MPI_LONG, root, comm);
    out[size_t(i)].resize(size_t(len));
    if (len > 0) MPI_Bcast(out[size_t(i)].data(), int(len), MPI_DOUBLE, root, comm);
  }
  return out;
}

std::vector<double> pack_fit(const FitResult& r) {
  std::vector<double> v = {double(r.P), double(r.K), r.objective, double(r.iterations), r.converged ? 1.0 : 0.0,
                           r.comm_bytes_per_iter, r.seconds_per_iter};
  v.insert(v.end(), r.W.begin(), r.W.end());
  for (auto& h : r.H) v.insert(v.end(), h.begin(), h.end());
  return v;
}

FitResult unpack_fit(const std::vector<double>& v, const std::vector<const AnimalMatrix*>& animals) {
  FitResult r;
  if (v.size() < 7) fail("modes: internal error: empty fit result");
  r.P = int(v[0]);
  r.K = int(v[1]);
  r.objective = v[2];
  r.iterations = int(v[3]);
  r.converged = v[4] != 0;
  r.comm_bytes_per_iter = v[5];
  r.seconds_per_iter = v[6];
  size_t pos = 7;
  const size_t PK = size_t(r.P) * size_t(r.K);
  r.W.assign(v.begin() + long(pos), v.begin() + long(pos + PK));
  pos += PK;
  for (auto* a : animals) {
    const size_t n = size_t(r.K) * size_t(a->T);
    if (pos + n > v.size()) fail("modes: internal error: fit result too short");
    r.H.emplace_back(v.begin() + long(pos), v.begin() + long(pos + n));
    pos += n;
  }
  return r;
}

}  // namespace cohortnet::modes
