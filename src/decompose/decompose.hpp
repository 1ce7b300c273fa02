#pragma once
// Current-based decomposition of a fitted network: for every ordered pair of regions (target Q,
// source S), the current sum_{j in S} J[i,j] r[j,t] into each target unit i of Q, summarised per
// data sample as the mean and the root-mean-square over Q's units, also for the excitatory
// (J > 0) and inhibitory (J < 0) parts alone. Same definition and layout [M x M x T] (target,
// source, sample) as the simulator's truth files (docs/format.md). Distributed: each rank
// computes its own rows' currents from its rows of J and the full rates, then one reduction of
// sums and sums of squares.
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/h5.hpp"
#include "core/parallel.hpp"

namespace cohortnet::decompose {

struct RegionCurrents {
  int M = 0;
  std::int64_t T = 0;
  // Each M*M*T, index (q*M + s)*T + t.
  std::vector<double> mean, rms, exc_mean, exc_rms, inh_mean, inh_rms;
  double at(const std::vector<double>& v, int q, int s, std::int64_t t) const {
    return v[(size_t(q) * size_t(M) + size_t(s)) * size_t(T) + size_t(t)];
  }
};

// J_rows: this rank's rows of J (rows.count() x N, row-major); rates: all units (N x T, row-major,
// identical on every rank); unit_region: per unit, in [0, M). per_unit (optional): this rank's
// units' total current from each source region, rows.count() x (M*T), index i*(M*T) + s*T + t.
// Collective on comm.
RegionCurrents region_currents(const double* J_rows, RowRange rows, std::int64_t N, const double* rates,
                               std::int64_t T, const std::vector<int>& unit_region, int M, MPI_Comm comm,
                               std::vector<double>* per_unit = nullptr, const double* gains = nullptr);
// gains (optional, fits with --gains inputs): M x M x T, index (q*M + s)*T + t; the current from
// S into a unit of Q at t is then gains[q, s, t] * sum_{j in S} J[i,j] r[j,t].

// The same summaries computed by rows, for the fit's output at scale: `rates_rows` are this
// rank's rows' rates only (rows.count() x T, row-major); the full rates are gathered one time
// chunk at a time (at most `chunk_samples` samples, 0: about 64 MB of N x chunk), and each target
// region's sums are reduced onto one rank (the lowest holding rows of it), never replicated. Per
// rank: N x chunk + 12 x (target regions held) x M x T doubles instead of N T + 12 M^2 T; with
// the units grouped by region a rank holds about M / ranks + 1 target regions. Equal to
// region_currents to rounding (tests/decompose). Collective on comm.
struct RegionCurrentsPart {
  int M = 0;
  std::int64_t T = 0;
  std::vector<int> targets;  // the target regions whose summaries this rank holds, ascending
  // Each targets.size() x M x T, index (k*M + s)*T + t for target targets[k].
  std::vector<double> mean, rms, exc_mean, exc_rms, inh_mean, inh_rms;
  // Each pathway's strength, on every rank, M x M (index q*M + s): the rms over Q's units and all
  // samples of the ungated current sum_{j in S} J[i,j] r[j,t]. Only the part of J that acts on the
  // source's activity counts: J's norm also holds weights along activity S never takes, which the
  // data do not determine (on fitted demo cohorts J's norm put 0.3-1.8x the true strength on a
  // coupled pathway and up to 0.37 of the coupled level on absent ones). `modes --summary pathways`
  // factors gains x strength; the definition's text: kPathwayStrengthDefinition (io/animal.hpp).
  std::vector<double> strength;
};
RegionCurrentsPart region_currents_by_rows(const double* J_rows, RowRange rows, std::int64_t N,
                                           const double* rates_rows, std::int64_t T,
                                           const std::vector<int>& unit_region, int M, MPI_Comm comm,
                                           std::vector<double>* per_unit = nullptr, std::int64_t chunk_samples = 0,
                                           const double* gains = nullptr);
// Writes the same datasets as write_currents, each rank its target regions' slabs. Collective.
void write_currents(const h5::File& f, const RegionCurrentsPart& c, const std::vector<std::string>& region_names);

// Input currents (fits with input channels): the current W_in[i,c] u_c(t) from known input c into
// each unit i, summarised per target region as mean and root-mean-square over its units:
// [M x n_in x T], index (q*n_in + c)*T + t. A unit's total input is the sum over source regions of
// the region-pair currents plus the sum over inputs of the input currents (plus the fit's noise).
struct InputCurrents {
  int M = 0, n_in = 0;
  std::int64_t T = 0;
  std::vector<double> mean, rms;
};
// W_in_rows: this rank's rows of W_in (rows.count() x n_in, row-major); inputs: n_in x T (all
// ranks). per_unit (optional): rows.count() x (n_in*T), index i*(n_in*T) + c*T + t. Collective.
InputCurrents input_currents(const double* W_in_rows, RowRange rows, std::int64_t N, int n_in, const double* inputs,
                             std::int64_t T, const std::vector<int>& unit_region, int M, MPI_Comm comm,
                             std::vector<double>* per_unit = nullptr);
// Writes /currents/input_mean, /currents/input_rms [M x n_in x T] and /currents/input_names.
void write_input_currents(const h5::File& f, const InputCurrents& c, const std::vector<std::string>& input_names);

// Writes /currents/{mean,rms,exc_mean,exc_rms,inh_mean,inh_rms} [M x M x T] and
// /currents/region_names (and /region_names if absent). Collective.
void write_currents(const h5::File& f, const RegionCurrents& c, const std::vector<std::string>& region_names);
// Writes /currents/per_unit [N x (M*T)] (row i: unit i's current from source s at sample t in column s*T + t).
void write_per_unit(const h5::File& f, const std::vector<double>& per_unit, RowRange rows, std::int64_t N, int M,
                    std::int64_t T);

}  // namespace cohortnet::decompose
