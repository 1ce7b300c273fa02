#pragma once
// Ground-truth evaluation of the region-pair currents (docs/currents.md): simulate an animal
// in-process (src/simulate), fit it (src/fit), decompose it (src/decompose) and compare every
// region pair's inferred current with the true one, over several seeds and fit variants.
#include <mpi.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "fit/curbd.hpp"
#include "simulate/simulate.hpp"

namespace cohortnet::validate {

// One simulated setting: a simulator preset with its parameters (link strength etc.).
struct Case {
  std::string name;  // e.g. "three-region/0.2"
  sim::SimulateParams sim;
};
// One fit variant (e.g. the reference's shared P, the region prior).
struct Method {
  std::string name;
  fit::Params fit;
  // Fits per animal (fit seeds seed + k * kEnsembleStride, k = 0..ensemble-1); J and the model
  // rates are averaged over them before the decomposition (docs/currents.md, "Ensembles").
  int ensemble = 1;
};
inline constexpr std::uint64_t kEnsembleStride = 1000003;

// Per (case, method, seed): metrics per region pair [M x M] (target x source), NaN where undefined.
struct Run {
  std::string case_name, method_name;
  std::uint64_t seed = 0;
  int M = 0;
  std::vector<std::string> regions;
  std::vector<std::int64_t> coupled;  // truth /pair_coupled (diagonal: 1)
  std::vector<double> r_mean;         // corr over time of region-mean inferred vs true current
  std::vector<double> r_unit;         // median over receiving units of corr over time (per unit)
  std::vector<double> r_pool;         // corr over receiving units x time, pooled (units' offsets count)
  std::vector<double> ratio;          // RMS inferred / RMS true over the target's units and time
  std::vector<double> ratio_conn;     // the same over the units that truly receive the source only
  std::vector<double> score;          // RMS inferred current (the AUC score)
  std::vector<double> true_rms;       // RMS true current
  // Gated fits (--gains inputs): per pair, corr over time of the fitted gains with the true ones
  // (NaN: self pairs, targets whose gains the fit did not keep, constant true gains); per target
  // region, whether its gains were kept. Empty for fixed-J fits.
  std::vector<double> gains_r;
  std::vector<std::int64_t> kept;
  double pvar = 0;                    // last run's pVar (a free run when runs_free >= 1); ensemble: the members' mean
  double auc = 0;                     // present vs absent inter-region pairs of this run (NaN if one class empty)
  double seconds = 0;
};

// Metrics of one fitted animal against its truth. J_rows/rows: the fit's rows; rates: the fit's
// full model rates (N x T); gains (gated fits): the fitted gains, M x M x T (the currents are then
// the gated ones, as the fit writes them), kept: per target region. Collective on comm; identical
// on every rank.
Run evaluate(const sim::SimulatedAnimal& a, const std::vector<double>& J_rows, RowRange rows,
             const std::vector<double>& rates, MPI_Comm comm, const std::vector<double>* gains = nullptr,
             const std::vector<int>* kept = nullptr);

// Area under the ROC curve of scores for labels (1 present, 0 absent); ties count 1/2. NaN if a
// class is empty.
double auc(const std::vector<double>& score, const std::vector<int>& label);

// Simulates case c with seed, fits it with method m on comm (m.ensemble fits, averaged), evaluates.
// Collective.
Run run_one(const Case& c, const Method& m, std::uint64_t seed, MPI_Comm comm);

// The summary of one (case, method) over its runs.
struct Summary {
  std::string case_name, method_name;
  int n_runs = 0;
  double r_unit_inter = 0;  // median over runs and truly coupled inter-region pairs
  double r_mean_inter = 0;
  double ratio_inter = 0;   // median magnitude ratio, coupled inter-region pairs
  double ratio_conn_inter = 0;  // the same at the receiving units only
  double r_unit_within = 0; // median over runs and regions of within-region unit-wise r
  double r_pool_inter = 0, r_pool_within = 0;  // the same with the pooled correlation
  double pvar = 0;          // median
  double auc = 0;           // pooled over runs (NaN: no absent pairs)
  // Gated fits: share of target regions whose gains were kept; median gains r over the coupled
  // inter-region pairs of kept targets (NaN for fixed-J fits, or where no true gain varies).
  double kept_fraction = std::numeric_limits<double>::quiet_NaN();
  double gains_r_inter = std::numeric_limits<double>::quiet_NaN();
  double seconds = 0;
};
Summary summarise(const std::vector<Run>& runs);

// Text table: per-pair lines (medians over seeds) and the summary lines.
std::string format_table(const std::vector<std::vector<Run>>& groups, const std::string& header);
// HDF5: one group per (case, method) with [seeds x M x M] metrics and the summary as attributes.
void write_h5(const std::string& path, const std::vector<std::vector<Run>>& groups, const std::string& config,
              MPI_Comm comm);

}  // namespace cohortnet::validate
