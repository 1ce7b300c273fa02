#include "modes/layout.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/rng.hpp"

namespace cohortnet::modes {

PairLayout make_layout(int R, bool self_pairs) {
  PairLayout L;
  L.R = R;
  L.self_pairs = self_pairs;
  L.index.assign(size_t(R) * size_t(R), -1);
  for (int q = 0; q < R; ++q)
    for (int s = 0; s < R; ++s) {
      if (q == s && !self_pairs) continue;
      L.index[size_t(q) * size_t(R) + size_t(s)] = int(L.pairs.size());
      L.pairs.emplace_back(q, s);
    }
  return L;
}

std::vector<std::uint8_t> present_rows(const PairLayout& L, const std::vector<int>& regions) {
  std::vector<std::uint8_t> has(size_t(L.R), 0), out(size_t(L.P()), 0);
  for (int q : regions) has[size_t(q)] = 1;
  for (int p = 0; p < L.P(); ++p) out[size_t(p)] = has[size_t(L.pairs[size_t(p)].first)] && has[size_t(L.pairs[size_t(p)].second)];
  return out;
}

std::vector<int> row_permutation(const PairLayout& L, const std::vector<int>& perm) {
  std::vector<int> out(size_t(L.P()));
  for (int p = 0; p < L.P(); ++p) {
    const auto [q, s] = L.pairs[size_t(p)];
    out[size_t(p)] = L.row(perm[size_t(q)], perm[size_t(s)]);
  }
  return out;
}

namespace {
std::vector<double> random_modes(const PairLayout& L, int K, double density, Stream& s) {
  const int P = L.P();
  std::vector<double> W(size_t(P) * size_t(K), 0.0);
  for (int k = 0; k < K; ++k) {
    double n2 = 0;
    for (int p = 0; p < P; ++p) {
      const double u = s.uniform(), v = s.uniform();
      const double w = u < density ? 0.3 + v : 0.0;
      W[size_t(p) * size_t(K) + size_t(k)] = w;
      n2 += w * w;
    }
    const double n = std::sqrt(n2);
    if (n > 0)
      for (int p = 0; p < P; ++p) W[size_t(p) * size_t(K) + size_t(k)] /= n;
  }
  return W;
}
}  // namespace

SyntheticCohort make_synthetic(const SyntheticSpec& spec) {
  if (spec.R < 2 || spec.A < 1 || spec.K < 1 || spec.T < 2) fail("synthetic cohort: bad sizes");
  if (!spec.mode_present.empty() && spec.mode_present.size() != size_t(spec.A) * size_t(spec.K))
    fail("synthetic cohort: mode_present must have A*K entries");
  SyntheticCohort c;
  c.layout = make_layout(spec.R, spec.self_pairs);
  const int P = c.layout.P(), K = spec.K;
  for (int q = 0; q < spec.R; ++q) c.region_names.push_back(cat("R", q));
  Stream ms(spec.seed, {kTagSimulate, 1000});
  c.W_true = random_modes(c.layout, K, spec.density, ms);
  // Behaviour states: the mean activation of every mode in every state, shared by all animals.
  std::vector<double> state_level(size_t(spec.n_states) * size_t(K));
  for (auto& v : state_level) v = 0.2 + 1.6 * ms.uniform();
  for (int a = 0; a < spec.A; ++a) {
    Stream s(spec.seed, {kTagSimulate, 2000, std::uint64_t(a)});
    AnimalMatrix m;
    m.id = cat("a", a < 10 ? "0" : "", a);
    m.seed_id = std::uint64_t(a);
    m.T = spec.T + int(s.below(std::uint64_t(spec.T / 2 + 1)));
    // Regions: each dropped with probability drop_region, at most R/4 dropped.
    int dropped = 0;
    for (int q = 0; q < spec.R; ++q) {
      const bool drop = s.uniform() < spec.drop_region && dropped < spec.R / 4;
      if (drop) ++dropped;
      else m.regions.push_back(q);
    }
    m.present = present_rows(c.layout, m.regions);
    // This animal's modes: shared ones, or its own random ones where it lacks a shared mode.
    std::vector<double> Wa = c.W_true;
    std::vector<double> own = random_modes(c.layout, K, spec.density, s);
    for (int k = 0; k < K; ++k) {
      const bool has = spec.null_cohort ? false
                                        : (spec.mode_present.empty() || spec.mode_present[size_t(a) * size_t(K) + size_t(k)]);
      if (has) continue;
      for (int p = 0; p < P; ++p)
        Wa[size_t(p) * size_t(K) + size_t(k)] = spec.replace_missing || spec.null_cohort ? own[size_t(p) * size_t(K) + size_t(k)] : 0.0;
    }
    // States: runs of random length; activations: state level times a smooth positive factor.
    m.states.resize(size_t(m.T));
    int state = int(s.below(std::uint64_t(spec.n_states)));
    for (int t = 0; t < m.T; ++t) {
      if (s.uniform() < 0.05) state = int(s.below(std::uint64_t(spec.n_states)));
      m.states[size_t(t)] = state;
    }
    std::vector<double> H(size_t(K) * size_t(m.T));
    for (int k = 0; k < K; ++k) {
      double ar = 0;
      for (int t = 0; t < m.T; ++t) {
        ar = 0.9 * ar + std::sqrt(1 - 0.81) * s.normal();
        H[size_t(k) * size_t(m.T) + size_t(t)] =
            state_level[size_t(m.states[size_t(t)]) * size_t(K) + size_t(k)] * std::exp(0.5 * ar);
      }
    }
    // X = W_a H + noise (clipped at 0: currents summaries are non-negative).
    m.X.assign(size_t(P) * size_t(m.T), 0.0);
    double ss = 0, n = 0;
    for (int p = 0; p < P; ++p)
      for (int t = 0; t < m.T; ++t) {
        double v = 0;
        for (int k = 0; k < K; ++k) v += Wa[size_t(p) * size_t(K) + size_t(k)] * H[size_t(k) * size_t(m.T) + size_t(t)];
        m.X[size_t(p) * size_t(m.T) + size_t(t)] = v;
        ss += v * v;
        n += 1;
      }
    const double sd = spec.noise * std::sqrt(ss / n);
    for (int p = 0; p < P; ++p)
      for (int t = 0; t < m.T; ++t) {
        double& x = m.X[size_t(p) * size_t(m.T) + size_t(t)];
        const double e = s.normal();
        x = m.present[size_t(p)] ? std::max(0.0, x + sd * e) : 0.0;
      }
    m.clear_holdout();
    c.H_true.push_back(std::move(H));
    c.animals.push_back(std::move(m));
  }
  return c;
}

}  // namespace cohortnet::modes
