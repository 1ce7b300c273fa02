// Held-out baselines of real recordings (issue 15; docs/fit.md "Fit quality: in sample and held
// out"): for every animal of a cohort folder, the fit's normalised target D (activity / global
// max, clipped to +-0.999, as `cohortnet fit --normalise global`), the held-out split, the
// autocorrelation time on the training part, the automatic horizon and time constants, and the
// held-out pVar of the unit-mean and ridge VAR(1) baselines at that horizon (and at a few others).
//
//   mpirun -n 2 build/bench/bench_baselines_real COHORT_DIR [--holdout end|blocks|trials|auto]
//          [--fraction 0.333] [--ridge R (default: chosen on the training part)] [--horizons 2,5,10,0]
// Prints one table row per animal and horizon (horizon 0 = free run from each held-out block's
// start), then the median over animals.
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/parallel.hpp"
#include "fit/quality.hpp"
#include "io/animal.hpp"

using namespace cohortnet;
using namespace cohortnet::fit;

namespace {

struct Args {
  std::string cohort;
  SplitOptions split;
  VarOptions var;
  std::vector<std::int64_t> horizons{2, 5, 10, 0};
};

Args parse(int argc, char** argv) {
  Args a;
  for (int k = 1; k < argc; ++k) {
    const std::string s = argv[k];
    auto value = [&]() -> std::string {
      if (k + 1 >= argc) fail("option ", s, " needs a value");
      return argv[++k];
    };
    if (s == "--holdout") a.split.mode = parse_split_mode(value());
    else if (s == "--fraction") a.split.fraction = std::stod(value());
    else if (s == "--ridge") a.var.ridge = std::stod(value());
    else if (s == "--horizons") {
      a.horizons.clear();
      std::stringstream ss(value());
      for (std::string t; std::getline(ss, t, ',');) a.horizons.push_back(std::stoll(t));
    } else if (a.cohort.empty()) a.cohort = s;
    else fail("unknown argument ", s);
  }
  if (a.cohort.empty()) fail("usage: bench_baselines_real COHORT_DIR [--holdout MODE] [--fraction F] [--ridge R] [--horizons K,...]");
  return a;
}

// The fit's target (global normalisation): activity / max, clipped to [-0.999, 0.999].
std::vector<double> normalised_target(const AnimalData& d, MPI_Comm comm) {
  double mx = -INFINITY;
  for (double v : d.activity) mx = std::max(mx, v);
  MPI_Allreduce(MPI_IN_PLACE, &mx, 1, MPI_DOUBLE, MPI_MAX, comm);
  if (!(mx > 0)) fail("animal ", d.meta.animal_id, ": largest activity ", mx, " <= 0");
  std::vector<double> D(d.activity.size());
  for (size_t k = 0; k < D.size(); ++k) D[k] = std::clamp(d.activity[k] / mx, -0.999, 0.999);
  return D;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.empty() ? NAN : v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

void run(const Args& a, MPI_Comm comm) {
  const Cohort cohort = read_cohort(a.cohort, comm);
  const bool root = comm_rank(comm) == 0;
  if (root)
    std::printf("%-12s %5s %5s %-8s %8s %8s %6s %8s %4s | %5s %9s %9s %9s %9s %6s\n", "animal", "N", "T", "split", "tau_med", "tau_mean",
                "K_auto", "tau_rnn", "dtf", "K", "mean_all", "mean_nr", "var_all", "var_nr", "ridge");
  std::vector<double> med_tau, med_mean, med_var_auto;
  for (const CohortAnimal& ca : cohort.animals) {
    const AnimalData d = read_animal(ca.path, comm);
    const std::vector<double> D = normalised_target(d, comm);
    const Rows view = Rows::row_major(D.data(), d.rows.count(), d.meta.n_samples);
    const Split s = make_split(d.meta.n_samples, d.meta.trial_starts, {}, a.split);
    const Autocorrelation ac = autocorrelation_time(view, s, comm);
    const std::int64_t K_auto = auto_horizon(ac.tau_samples);
    const TimeSettings ts = resolve_time_settings(d.meta.sample_interval, ac.tau_samples, std::nullopt, std::nullopt);
    std::vector<std::int64_t> horizons = a.horizons;
    horizons.insert(horizons.begin(), K_auto);
    for (size_t h = 0; h < horizons.size(); ++h) {
      const Baselines b = baselines(view, s, horizons[h], comm, {}, {}, a.var);
      if (root)
        std::printf("%-12s %5lld %5lld %-8s %8.3f %8.3f %6lld %8.3f %4d | %4lld%s %9.4f %9.4f %9.4f %9.4f %6g\n",
                    d.meta.animal_id.c_str(), (long long)d.meta.n_units, (long long)d.meta.n_samples,
                    to_string(s.mode).c_str(), ac.tau_samples, ac.mean_samples, (long long)K_auto, ts.tau_rnn, ts.dt_factor,
                    (long long)horizons[h], h == 0 ? "*" : " ", b.mean.all, b.mean.non_reset, b.var.all,
                    b.var.non_reset, b.var_ridge);
      if (h == 0) {
        med_tau.push_back(ac.tau_samples);
        med_mean.push_back(b.mean.non_reset);
        med_var_auto.push_back(b.var.non_reset);
      }
    }
  }
  if (root && cohort.animals.size() > 1)
    std::printf("median over %zu animals: tau_ac %.3f samples, unit mean %.4f, VAR(1) at K_auto %.4f (non-reset, held out)\n",
                cohort.animals.size(), median(med_tau), median(med_mean), median(med_var_auto));
  if (root) std::printf("(* = the automatic horizon; K 0 = free run from each held-out block's start; nr = non-reset samples)\n");
}

}  // namespace

int main(int argc, char** argv) {
  Environment env(&argc, &argv);
  try {
    run(parse(argc, argv), MPI_COMM_WORLD);
  } catch (const Error& e) {
    if (comm_rank(MPI_COMM_WORLD) == 0) std::fprintf(stderr, "bench_baselines_real: %s\n", e.what());
    return 1;
  }
  return 0;
}
