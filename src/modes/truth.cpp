#include "modes/truth.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/text.hpp"
#include "modes/hungarian.hpp"

namespace fs = std::filesystem;

namespace cohortnet::modes {

namespace {
std::string fixed(double v, int digits) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}
}  // namespace

std::string truth_file_of(const std::string& cohort_dir) {
  if (cohort_dir.empty()) return "";
  const fs::path p = fs::path(cohort_dir) / "truth" / "cohort.h5";
  std::error_code ec;
  return fs::is_regular_file(p, ec) ? p.string() : "";
}

TruthCheck check_truth(const std::string& truth_file, const LoadedCohort& c, const ModesResult& r, double min_cosine,
                       MPI_Comm comm) {
  TruthCheck t;
  t.file = truth_file;
  t.min_cosine = min_cosine;
  std::vector<double> modes;
  std::vector<std::string> names;
  std::vector<std::int64_t> conserved;
  std::vector<hsize_t> shape;
  {
    h5::File f = h5::open_read(truth_file, comm);
    shape = h5::dims(f, "/modes");
    if (shape.size() != 3 || shape[1] != shape[2])
      fail("file ", truth_file, ": dataset /modes must be [K x R x R]");
    modes = h5::read_doubles(f, "/modes");
    names = h5::read_strings(f, "/region_names");
    if (names.size() != shape[1]) fail("file ", truth_file, ": /region_names does not match /modes");
    if (h5::exists(f, "/mode_conserved")) conserved = h5::read_ints(f, "/mode_conserved");
  }
  const int KT = int(shape[0]), RT = int(shape[1]), K = r.K, P = c.layout.P();
  if (conserved.empty()) conserved.assign(size_t(KT), 1);
  if (int(conserved.size()) != KT) fail("file ", truth_file, ": /mode_conserved has ", conserved.size(), " entries, /modes ", KT);
  // True modes on the factorized pairs (by region name; a region the truth lacks gives 0).
  std::vector<int> idx;
  for (auto& n : c.region_names) {
    auto it = std::find(names.begin(), names.end(), n);
    idx.push_back(it == names.end() ? -1 : int(it - names.begin()));
  }
  std::vector<double> T(size_t(KT) * size_t(P), 0.0);  // KT x P
  for (int p = 0; p < P; ++p) {
    const auto [q, s] = c.layout.pairs[size_t(p)];
    if (idx[size_t(q)] < 0 || idx[size_t(s)] < 0) continue;
    for (int j = 0; j < KT; ++j)
      T[size_t(j) * size_t(P) + size_t(p)] =
          modes[(size_t(j) * size_t(RT) + size_t(idx[size_t(q)])) * size_t(RT) + size_t(idx[size_t(s)])];
  }
  // A true mode that is zero on every factorized pair (regions left out with --regions) cannot be
  // recovered from these rows: it is not counted (visible 0).
  std::vector<int> visible(size_t(KT), 0);
  for (int j = 0; j < KT; ++j)
    for (int p = 0; p < P; ++p)
      if (T[size_t(j) * size_t(P) + size_t(p)] != 0.0) visible[size_t(j)] = 1;
  // Cosine of recovered mode i (column of W, P x K) with true mode j.
  std::vector<double> cos(size_t(K) * size_t(KT), 0.0);
  for (int i = 0; i < K; ++i)
    for (int j = 0; j < KT; ++j) {
      double d = 0, a = 0, b = 0;
      for (int p = 0; p < P; ++p) {
        const double w = r.fit.W[size_t(p) * size_t(K) + size_t(i)], v = T[size_t(j) * size_t(P) + size_t(p)];
        d += w * v;
        a += w * w;
        b += v * v;
      }
      cos[size_t(i) * size_t(KT) + size_t(j)] = a > 0 && b > 0 ? d / std::sqrt(a * b) : 0.0;
    }
  t.have = true;
  t.k_true = int(std::count(visible.begin(), visible.end(), 1));
  t.k_found = K;
  t.visible = visible;
  for (int j = 0; j < KT; ++j)  // an invisible mode is matched to nothing
    if (!visible[size_t(j)])
      for (int i = 0; i < K; ++i) cos[size_t(i) * size_t(KT) + size_t(j)] = -1.0;
  t.matched.assign(size_t(KT), -1);
  t.cosine.assign(size_t(KT), 0.0);
  // One-to-one: the smaller side is assigned (Hungarian on 1 - cosine).
  if (K <= KT) {
    std::vector<double> cost(size_t(K) * size_t(KT));
    for (size_t e = 0; e < cost.size(); ++e) cost[e] = 1.0 - cos[e];
    const auto m = hungarian_min(cost, K, KT);
    for (int i = 0; i < K; ++i) t.matched[size_t(m[size_t(i)])] = i;
  } else {
    std::vector<double> cost(size_t(KT) * size_t(K));
    for (int j = 0; j < KT; ++j)
      for (int i = 0; i < K; ++i) cost[size_t(j) * size_t(K) + size_t(i)] = 1.0 - cos[size_t(i) * size_t(KT) + size_t(j)];
    const auto m = hungarian_min(cost, KT, K);
    for (int j = 0; j < KT; ++j) t.matched[size_t(j)] = m[size_t(j)];
  }
  for (int j = 0; j < KT; ++j)
    if (!visible[size_t(j)]) t.matched[size_t(j)] = -1;
  const bool tested = !r.conserved.empty();
  t.truly_conserved.assign(conserved.begin(), conserved.end());
  t.called_conserved.assign(size_t(KT), 0);
  double sum = 0;
  for (int j = 0; j < KT; ++j) {
    const int i = t.matched[size_t(j)];
    if (i >= 0) t.cosine[size_t(j)] = cos[size_t(i) * size_t(KT) + size_t(j)];
    t.called_conserved[size_t(j)] = tested && i >= 0 && r.conserved[size_t(i)] ? 1 : 0;
    if (!visible[size_t(j)]) continue;
    if (conserved[size_t(j)]) {
      ++t.n_conserved;
      sum += t.cosine[size_t(j)];
      t.conserved_found += t.called_conserved[size_t(j)];
    } else {
      t.false_conserved += t.called_conserved[size_t(j)];
    }
  }
  t.mean_cosine = t.n_conserved ? sum / t.n_conserved : 0.0;
  std::vector<std::string> failed;
  if (t.n_conserved == 0) {
    // A null cohort (simulate --mode-sharing none): nothing is shared, so K and the cosines have
    // nothing to be scored against; the one rule is that no recovered mode is called conserved.
    int called = 0;
    for (int i = 0; tested && i < K; ++i) called += r.conserved[size_t(i)] ? 1 : 0;
    t.false_conserved = std::max(t.false_conserved, called);
    const std::string numbers = cat("K = ", t.k_found, ", ", tested ? cat(called, " of ", K, " modes called conserved")
                                                                    : std::string("conservation not tested"));
    t.pass = tested && called == 0;
    t.verdict = t.pass ? cat("no mode is shared by the simulator (a null cohort) and none is called conserved: ", numbers)
                       : cat("the modes do NOT pass the null cohort (no mode is shared by the simulator",
                             tested ? std::string(", yet some are called conserved") : std::string(", and conservation was not tested"),
                             "): ", numbers);
    return t;
  }
  // K: every true mode, or only the shared ones (a mode of a few animals need not carry over to
  // animals left out, which is what the K rule asks).
  if (t.k_found != t.k_true && t.k_found != t.n_conserved)
    failed.push_back(cat("K = ", t.k_found, " found for ", t.k_true, " true modes",
                         t.n_conserved != t.k_true ? cat(" (", t.n_conserved, " shared)") : std::string()));
  if (t.mean_cosine < min_cosine)
    failed.push_back(cat("mean matched cosine ", fixed(t.mean_cosine, 3), " < ", min_cosine));
  if (tested && t.conserved_found < t.n_conserved - 1)
    failed.push_back(cat(t.conserved_found, " of ", t.n_conserved, " shared modes called conserved"));
  if (t.false_conserved > 0) failed.push_back(cat(t.false_conserved, " mode(s) not shared by the simulator called conserved"));
  t.pass = failed.empty();
  std::string cosines;
  for (int j = 0; j < KT; ++j) cosines += (j ? ", " : "") + fixed(t.cosine[size_t(j)], 2);
  const std::string numbers = cat("K = ", t.k_found, " (true ", t.k_true, "), matched cosine per true mode ", cosines,
                                  " (mean over shared ", fixed(t.mean_cosine, 3), ")",
                                  tested ? cat(", ", t.conserved_found, " of ", t.n_conserved, " shared modes called conserved")
                                         : std::string(", conservation not tested"));
  if (t.pass) {
    t.verdict = cat("the modes recover the simulated truth: ", numbers);
  } else {
    std::string why;
    for (size_t i = 0; i < failed.size(); ++i) why += (i ? "; " : "") + failed[i];
    t.verdict = cat("the modes do NOT recover the simulated truth (", why, "): ", numbers);
  }
  return t;
}

}  // namespace cohortnet::modes
