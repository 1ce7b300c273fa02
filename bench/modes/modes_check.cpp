// modes_check: the checks of docs/modes.md on planted synthetic cohorts (not part of ctest).
//   mpirun -n 2 bench/modes/modes_check [recovery|partial N_SEEDS|null N|all]
// recovery: 12 animals, K = 4 true modes: matched cosine of the recovered modes and K chosen by
//           --k auto. partial: one mode present in only some animals (3 of 12, the others lack it;
//           4 of 12, the others have their own random mode instead), seeds 11, 12, ...: per-mode p-values and conservation index. null: N cohorts with no
//           shared structure: how often any mode is called conserved (false-positive rate).
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/parallel.hpp"
#include "modes/analysis.hpp"
#include "modes/layout.hpp"

using namespace cohortnet;
using namespace cohortnet::modes;

namespace {

SyntheticSpec base_spec(std::uint64_t seed) {
  SyntheticSpec s;
  s.R = 10;
  s.A = 12;
  s.K = 4;
  s.T = 300;
  s.noise = 0.2;
  s.drop_region = 0.15;
  s.seed = seed;
  return s;
}

ModesConfig base_config() {
  ModesConfig c;
  c.starts = 4;
  c.k_max = 7;
  c.folds = 3;
  c.max_iter = 300;
  c.tol = 1e-6;
  c.loo_starts = 2;
  c.loo_null = 10;
  c.permutations = 999;
  return c;
}

double recovered_cosine(const SyntheticCohort& c, const std::vector<double>& W, int K) {
  std::vector<int> match;
  std::vector<double> sim;
  match_columns(c.W_true, W, c.layout.P(), K, {}, match, sim);
  double m = 0;
  for (double s : sim) m += s / K;
  return m;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void recovery(MPI_Comm comm) {
  for (std::uint64_t seed : {1, 2, 3}) {
    auto t0 = std::chrono::steady_clock::now();
    const SyntheticCohort c = make_synthetic(base_spec(seed));
    ModesConfig cfg = base_config();
    cfg.conserve = false;
    cfg.seed = seed;
    const ModesResult r = run_modes(c.animals, c.layout, cfg, {}, comm);
    std::string cv;
    for (size_t i = 0; i < r.selection.k_values.size(); ++i)
      cv += cat(" K", r.selection.k_values[i], ":", r.selection.cv_mean[i], "/", r.selection.stability[i]);
    log::info(comm, "RECOVERY seed ", seed, ": K auto = ", r.K, ", mean matched cosine to the true modes = ",
              recovered_cosine(c, r.fit.W, r.K == 4 ? 4 : std::min(r.K, 4)), " (", seconds_since(t0), " s)\n   cv/stability:", cv);
  }
}

// Per-mode outcome of one fitted cohort, for true mode k matched to fitted mode f.
std::string mode_line(const ModesResult& r, int f) {
  return cat("stat ", r.statistic[size_t(f)], " p_joint ", r.p_value[size_t(f)], " p_presence ", r.p_presence[size_t(f)],
             " tested ", r.n_tested[size_t(f)], r.conserved[size_t(f)] ? " CONSERVED" : " not-conserved");
}

void partial(MPI_Comm comm, int n_seeds) {
  // replace = false: like the simulator's --individual-mode (3 of 12 animals carry mode 3, the
  // others simply lack it); replace = true: 4 of 12 carry it, the others have an own random mode.
  for (bool replace : {false, true}) {
    int shared_ok = 0, shared_n = 0, ind_called = 0, ind_p05 = 0, ind_n = 0;
    double gain_c = 0, gain_o = 0, idx_c = 0, idx_o = 0;
    for (int i = 0; i < n_seeds; ++i) {
      const std::uint64_t seed = std::uint64_t(11 + i);
      auto t0 = std::chrono::steady_clock::now();
      SyntheticSpec s = base_spec(seed);
      const int carriers = replace ? 4 : 3;
      s.mode_present.assign(size_t(s.A) * size_t(s.K), 1);
      for (int a = carriers; a < s.A; ++a) s.mode_present[size_t(a) * size_t(s.K) + 3] = 0;
      s.replace_missing = replace;
      const SyntheticCohort c = make_synthetic(s);
      ModesConfig cfg = base_config();
      cfg.k = 4;
      cfg.seed = seed;
      const ModesResult r = run_modes(c.animals, c.layout, cfg, {"s0", "s1", "s2"}, comm);
      std::vector<int> match;
      std::vector<double> sim;
      match_columns(c.W_true, r.fit.W, c.layout.P(), 4, {}, match, sim);
      std::string modes;
      for (int k = 0; k < 4; ++k) {
        const int f = match[size_t(k)];
        modes += cat("\n   true mode ", k, (k == 3 ? cat(" (in ", carriers, "/12)") : std::string(" (in all)")), " -> fitted ", f,
                     " cos ", sim[size_t(k)], ": ", mode_line(r, f));
        if (k < 3) {
          ++shared_n;
          shared_ok += r.conserved[size_t(f)] && r.p_corrected[size_t(f)] < 0.01;
        } else {
          ++ind_n;
          ind_called += r.conserved[size_t(f)];
          ind_p05 += r.p_presence[size_t(f)] < 0.05;
        }
      }
      // Conservation index and gain of the partial mode, carriers vs the others.
      const int f3 = match[3];
      double with = 0, without = 0, gw = 0, go = 0;
      for (int a = 0; a < 12; ++a) {
        const bool carrier = a < carriers;
        const double w = 1.0 / (carrier ? carriers : 12 - carriers);
        (carrier ? with : without) += r.index[size_t(a)] * w;
        (carrier ? gw : go) += r.mode_gain[size_t(a) * 4 + size_t(f3)] * w;
      }
      idx_c += with / n_seeds;
      idx_o += without / n_seeds;
      gain_c += gw / n_seeds;
      gain_o += go / n_seeds;
      log::info(comm, "PARTIAL ", replace ? "replaced" : "absent", " seed ", seed, ":", modes,
                "\n   conservation index: carriers ", with, ", others ", without, "; gain of the partial mode: carriers ", gw,
                ", others ", go, " (", seconds_since(t0), " s)");
    }
    log::info(comm, "PARTIAL SUMMARY ", replace ? "replaced" : "absent", " over ", n_seeds, " seeds: shared modes conserved with p_bonf < 0.01: ",
              shared_ok, "/", shared_n, "; partial mode called conserved ", ind_called, "/", ind_n, ", p_presence < 0.05 ", ind_p05, "/",
              ind_n, "; mean index carriers ", idx_c, " others ", idx_o, "; mean gain of the partial mode carriers ", gain_c,
              " others ", gain_o);
  }
}

void null_cohorts(MPI_Comm comm, int n) {
  int cohorts_with_fp = 0, modes_fp = 0, modes_total = 0, p05 = 0, pp05 = 0;
  double min_p = 1;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    SyntheticSpec s = base_spec(std::uint64_t(100 + i));
    s.null_cohort = true;
    const SyntheticCohort c = make_synthetic(s);
    ModesConfig cfg = base_config();
    cfg.k = 4;
    cfg.starts = 2;
    cfg.seed = std::uint64_t(100 + i);
    const ModesResult r = run_modes(c.animals, c.layout, cfg, {}, comm);
    int fp = 0;
    for (int k = 0; k < 4; ++k) {
      fp += r.conserved[size_t(k)];
      p05 += r.p_value[size_t(k)] < 0.05;
      pp05 += r.p_presence[size_t(k)] < 0.05;
      min_p = std::min(min_p, r.p_value[size_t(k)]);
    }
    modes_fp += fp;
    modes_total += 4;
    cohorts_with_fp += fp > 0;
  }
  log::info(comm, "NULL ", n, " cohorts without shared structure: cohorts with any mode called conserved ", cohorts_with_fp,
            "/", n, ", modes called conserved ", modes_fp, "/", modes_total, ", modes with raw p < 0.05 ", p05, "/",
            modes_total, ", p_presence < 0.05 ", pp05, "/", modes_total, ", smallest raw p ", min_p, " (", seconds_since(t0), " s)");
}

}  // namespace

int main(int argc, char** argv) {
  Environment env(&argc, &argv);
  const std::string what = argc > 1 ? argv[1] : "all";
  const int n = argc > 2 ? std::atoi(argv[2]) : 20;
  if (what == "recovery" || what == "all") recovery(MPI_COMM_WORLD);
  if (what == "partial" || what == "all") partial(MPI_COMM_WORLD, argc > 2 ? n : 3);
  if (what == "null" || what == "all") null_cohorts(MPI_COMM_WORLD, n);
  return 0;
}
