#include "decompose/decompose.hpp"

#include <petscblaslapack.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.hpp"

namespace cohortnet::decompose {

// The replicated form: the by-rows computation, then every target region's slabs on every rank
// (each held by one rank: a sum over ranks of zero-filled buffers places them).
RegionCurrents region_currents(const double* J_rows, RowRange rows, std::int64_t N, const double* rates,
                               std::int64_t T, const std::vector<int>& unit_region, int M, MPI_Comm comm,
                               std::vector<double>* per_unit, const double* gains) {
  const std::vector<double> mine(rates + size_t(rows.begin) * size_t(T), rates + size_t(rows.end) * size_t(T));
  const RegionCurrentsPart part =
      region_currents_by_rows(J_rows, rows, N, mine.data(), T, unit_region, M, comm, per_unit, 0, gains);
  RegionCurrents out;
  out.M = M;
  out.T = T;
  const size_t MT = size_t(M) * size_t(T);
  const std::vector<double>* from[6] = {&part.mean, &part.rms, &part.exc_mean, &part.exc_rms, &part.inh_mean, &part.inh_rms};
  std::vector<double>* to[6] = {&out.mean, &out.rms, &out.exc_mean, &out.exc_rms, &out.inh_mean, &out.inh_rms};
  for (int v = 0; v < 6; ++v) {
    to[v]->assign(size_t(M) * MT, 0.0);
    for (size_t k = 0; k < part.targets.size(); ++k)
      std::copy_n(&(*from[v])[k * MT], MT, &(*to[v])[size_t(part.targets[k]) * MT]);
    if (to[v]->size() > size_t(std::numeric_limits<int>::max())) fail("decompose: M^2 T is too large to replicate");
    MPI_Allreduce(MPI_IN_PLACE, to[v]->data(), int(to[v]->size()), MPI_DOUBLE, MPI_SUM, comm);
  }
  return out;
}

RegionCurrentsPart region_currents_by_rows(const double* J_rows, RowRange rows, std::int64_t N, const double* rates_rows,
                                           std::int64_t T, const std::vector<int>& unit_region, int M, MPI_Comm comm,
                                           std::vector<double>* per_unit, std::int64_t chunk_samples,
                                           const double* gains) {
  if (std::int64_t(unit_region.size()) != N) fail("decompose: unit_region has ", unit_region.size(), " entries, need ", N);
  const PetscInt m = rows.count();
  const size_t MT = size_t(M) * size_t(T);
  std::vector<std::vector<std::int64_t>> units(static_cast<size_t>(M));
  for (std::int64_t j = 0; j < N; ++j) {
    const int s = unit_region[size_t(j)];
    if (s < 0 || s >= M) fail("decompose: unit ", j, " has region ", s, " outside [0, ", M, ")");
    units[size_t(s)].push_back(j);
  }
  // The target regions of this rank's rows, and each one's slot in the sums.
  std::vector<int> slot(size_t(M), -1), mine;
  for (PetscInt i = 0; i < m; ++i) {
    const int q = unit_region[size_t(rows.begin + i)];
    if (slot[size_t(q)] < 0) slot[size_t(q)] = 0, mine.push_back(q);
  }
  std::sort(mine.begin(), mine.end());
  for (size_t k = 0; k < mine.size(); ++k) slot[size_t(mine[k])] = int(k);
  // Sums and sums of squares over target units (total, excitatory, inhibitory) per slot: 6 x M x T.
  std::vector<double> acc(mine.size() * 6 * MT, 0.0);
  std::vector<double> strength(size_t(M) * size_t(M), 0.0);  // sums of squares of the ungated current
  if (per_unit) per_unit->assign(size_t(m) * MT, 0.0);

  std::vector<int> counts, offsets;
  row_layout(PetscInt(N), comm, counts, offsets);
  const std::int64_t tc = chunk_samples > 0 ? std::min(chunk_samples, T)
                                            : std::clamp<std::int64_t>(std::int64_t(8e6 / double(std::max<std::int64_t>(1, N))), 1, T);
  std::vector<double> mine_chunk(size_t(m) * size_t(tc)), chunk(size_t(N) * size_t(tc));
  for (std::int64_t t0 = 0; t0 < T; t0 += tc) {
    const std::int64_t n_t = std::min(tc, T - t0);
    // All units' rates over [t0, t0 + n_t): rows of n_t doubles, so the counts are rows (ints).
    for (PetscInt i = 0; i < m; ++i)
      std::copy_n(rates_rows + size_t(i) * size_t(T) + size_t(t0), size_t(n_t), &mine_chunk[size_t(i) * size_t(n_t)]);
    MPI_Datatype row;
    MPI_Type_contiguous(int(n_t), MPI_DOUBLE, &row);
    MPI_Type_commit(&row);
    MPI_Allgatherv(mine_chunk.data(), int(m), row, chunk.data(), counts.data(), offsets.data(), row, comm);
    MPI_Type_free(&row);
    for (int s = 0; s < M && m > 0; ++s) {
      const auto& us = units[size_t(s)];
      const PetscInt ns = PetscInt(us.size());
      if (ns == 0) continue;
      std::vector<double> jp(size_t(m) * size_t(ns)), jn(size_t(m) * size_t(ns)), rs(size_t(ns) * size_t(n_t));
      for (PetscInt c = 0; c < ns; ++c)
        for (PetscInt i = 0; i < m; ++i) {
          const double v = J_rows[size_t(i) * size_t(N) + size_t(us[size_t(c)])];
          jp[size_t(i) + size_t(c) * size_t(m)] = v > 0 ? v : 0.0;
          jn[size_t(i) + size_t(c) * size_t(m)] = v < 0 ? v : 0.0;
        }
      for (std::int64_t t = 0; t < n_t; ++t)
        for (PetscInt c = 0; c < ns; ++c)
          rs[size_t(c) + size_t(t) * size_t(ns)] = chunk[size_t(us[size_t(c)]) * size_t(n_t) + size_t(t)];
      std::vector<double> cp(size_t(m) * size_t(n_t)), cn(size_t(m) * size_t(n_t));
      PetscBLASInt bm = PetscBLASInt(m), bn = PetscBLASInt(n_t), bk = PetscBLASInt(ns);
      const double one = 1.0, zero = 0.0;
      BLASgemm_("N", "N", &bm, &bn, &bk, &one, jp.data(), &bm, rs.data(), &bk, &zero, cp.data(), &bm);
      BLASgemm_("N", "N", &bm, &bn, &bk, &one, jn.data(), &bm, rs.data(), &bk, &zero, cn.data(), &bm);
      for (PetscInt i = 0; i < m; ++i) {
        const int q = unit_region[size_t(rows.begin + i)];
        double* a = &acc[size_t(slot[size_t(q)]) * 6 * MT + size_t(s) * size_t(T) + size_t(t0)];
        const double* gq = gains ? gains + (size_t(q) * size_t(M) + size_t(s)) * size_t(T) + size_t(t0) : nullptr;
        double& ss_ungated = strength[size_t(q) * size_t(M) + size_t(s)];
        for (std::int64_t t = 0; t < n_t; ++t) {
          const double u = cp[size_t(i) + size_t(t) * size_t(m)] + cn[size_t(i) + size_t(t) * size_t(m)];
          ss_ungated += u * u;
          // A gated pathway's current is g_QS(t) J_QS r_S(t) (its weights' sign parts scaled alike).
          const double gt = gq ? gq[t] : 1.0;
          const double e = gt * cp[size_t(i) + size_t(t) * size_t(m)], h = gt * cn[size_t(i) + size_t(t) * size_t(m)];
          const double v = e + h;
          a[size_t(t)] += v;
          a[MT + size_t(t)] += v * v;
          a[2 * MT + size_t(t)] += e;
          a[3 * MT + size_t(t)] += e * e;
          a[4 * MT + size_t(t)] += h;
          a[5 * MT + size_t(t)] += h * h;
          if (per_unit) (*per_unit)[size_t(i) * MT + size_t(s) * size_t(T) + size_t(t0 + t)] = v;
        }
      }
    }
  }

  // Each target region's sums onto the lowest rank holding rows of it (one reduction per region
  // over the ranks that hold its rows; with units grouped by region, a rank or two).
  RegionCurrentsPart out;
  out.M = M;
  out.T = T;
  MPI_Allreduce(MPI_IN_PLACE, strength.data(), M * M, MPI_DOUBLE, MPI_SUM, comm);
  for (int q = 0; q < M; ++q)
    for (int s = 0; s < M; ++s) {
      const double n = double(units[size_t(q)].size()) * double(T);
      double& v = strength[size_t(q) * size_t(M) + size_t(s)];
      v = n > 0 ? std::sqrt(v / n) : 0.0;
    }
  out.strength = std::move(strength);
  const int me = comm_rank(comm);
  std::vector<std::vector<double>> kept;
  for (int q = 0; q < M; ++q) {
    const bool holds = slot[size_t(q)] >= 0;
    MPI_Comm sub = MPI_COMM_NULL;
    MPI_Comm_split(comm, holds ? 0 : MPI_UNDEFINED, me, &sub);
    if (!holds) continue;
    double* a = &acc[size_t(slot[size_t(q)]) * 6 * MT];
    const bool root = comm_rank(sub) == 0;
    // 6 M T doubles per region (MPI_SUM is defined on MPI_DOUBLE, not on derived types).
    if (6 * MT > size_t(std::numeric_limits<int>::max())) fail("decompose: 6 M T = ", 6 * MT, " is too large for one reduction");
    MPI_Reduce(root ? MPI_IN_PLACE : a, a, int(6 * MT), MPI_DOUBLE, MPI_SUM, 0, sub);
    MPI_Comm_free(&sub);
    if (root) out.targets.push_back(q);
  }
  const size_t K = out.targets.size();
  for (auto* v : {&out.mean, &out.rms, &out.exc_mean, &out.exc_rms, &out.inh_mean, &out.inh_rms}) v->assign(K * MT, 0.0);
  for (size_t k = 0; k < K; ++k) {
    const int q = out.targets[k];
    const double n = double(units[size_t(q)].size());
    const double* a = &acc[size_t(slot[size_t(q)]) * 6 * MT];
    for (size_t z = 0; z < MT; ++z) {
      const size_t o = k * MT + z;
      out.mean[o] = a[z] / n;
      out.rms[o] = std::sqrt(a[MT + z] / n);
      out.exc_mean[o] = a[2 * MT + z] / n;
      out.exc_rms[o] = std::sqrt(a[3 * MT + z] / n);
      out.inh_mean[o] = a[4 * MT + z] / n;
      out.inh_rms[o] = std::sqrt(a[5 * MT + z] / n);
    }
  }
  return out;
}

InputCurrents input_currents(const double* W_in_rows, RowRange rows, std::int64_t N, int n_in, const double* inputs,
                             std::int64_t T, const std::vector<int>& unit_region, int M, MPI_Comm comm,
                             std::vector<double>* per_unit) {
  if (std::int64_t(unit_region.size()) != N) fail("decompose: unit_region has ", unit_region.size(), " entries, need ", N);
  const PetscInt m = rows.count();
  const size_t MCT = size_t(M) * size_t(n_in) * size_t(T);
  std::vector<double> acc(2 * MCT, 0.0);  // sums and sums of squares over target units
  if (per_unit) per_unit->assign(size_t(m) * size_t(n_in) * size_t(T), 0.0);
  for (PetscInt i = 0; i < m; ++i) {
    const int q = unit_region[size_t(rows.begin + i)];
    if (q < 0 || q >= M) fail("decompose: unit ", rows.begin + i, " has region ", q, " outside [0, ", M, ")");
    for (int c = 0; c < n_in; ++c) {
      const double w = W_in_rows[size_t(i) * size_t(n_in) + size_t(c)];
      const size_t base = (size_t(q) * size_t(n_in) + size_t(c)) * size_t(T);
      for (std::int64_t t = 0; t < T; ++t) {
        const double v = w * inputs[size_t(c) * size_t(T) + size_t(t)];
        acc[base + size_t(t)] += v;
        acc[MCT + base + size_t(t)] += v * v;
        if (per_unit) (*per_unit)[(size_t(i) * size_t(n_in) + size_t(c)) * size_t(T) + size_t(t)] = v;
      }
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, acc.data(), int(acc.size()), MPI_DOUBLE, MPI_SUM, comm);
  InputCurrents out;
  out.M = M;
  out.n_in = n_in;
  out.T = T;
  out.mean.assign(MCT, 0.0);
  out.rms.assign(MCT, 0.0);
  for (int q = 0; q < M; ++q) {
    std::int64_t nq = 0;
    for (std::int64_t i = 0; i < N; ++i) nq += unit_region[size_t(i)] == q;
    if (nq == 0) continue;
    for (size_t z = size_t(q) * size_t(n_in) * size_t(T); z < size_t(q + 1) * size_t(n_in) * size_t(T); ++z) {
      out.mean[z] = acc[z] / double(nq);
      out.rms[z] = std::sqrt(acc[MCT + z] / double(nq));
    }
  }
  return out;
}

void write_input_currents(const h5::File& f, const InputCurrents& c, const std::vector<std::string>& input_names) {
  h5::ensure_group(f, "/currents");
  const std::vector<hsize_t> shape = {hsize_t(c.M), hsize_t(c.n_in), hsize_t(c.T)};
  h5::write_doubles(f, "/currents/input_mean", shape, c.mean.data());
  h5::write_doubles(f, "/currents/input_rms", shape, c.rms.data());
  h5::write_strings(f, "/currents/input_names", input_names);
  h5::set_attr(f, "/currents/input_mean", "layout", "[target region, input, sample]; current into unit i = W_in[i,c] u_c(t), mean over the target region's units");
}

void write_currents(const h5::File& f, const RegionCurrents& c, const std::vector<std::string>& region_names) {
  h5::ensure_group(f, "/currents");
  const std::vector<hsize_t> shape = {hsize_t(c.M), hsize_t(c.M), hsize_t(c.T)};
  h5::write_doubles(f, "/currents/mean", shape, c.mean.data());
  h5::write_doubles(f, "/currents/rms", shape, c.rms.data());
  h5::write_doubles(f, "/currents/exc_mean", shape, c.exc_mean.data());
  h5::write_doubles(f, "/currents/exc_rms", shape, c.exc_rms.data());
  h5::write_doubles(f, "/currents/inh_mean", shape, c.inh_mean.data());
  h5::write_doubles(f, "/currents/inh_rms", shape, c.inh_rms.data());
  h5::write_strings(f, "/currents/region_names", region_names);
  if (!h5::exists(f, "/region_names")) h5::write_strings(f, "/region_names", region_names);
  h5::set_attr(f, "/currents", "layout", "[target region, source region, sample]; current into target unit i = sum over source units j of J[i,j] r[j,t], mean / root-mean-square over the target region's units");
}

void write_currents(const h5::File& f, const RegionCurrentsPart& c, const std::vector<std::string>& region_names) {
  h5::ensure_group(f, "/currents");
  const std::vector<hsize_t> shape = {hsize_t(c.M), hsize_t(c.M), hsize_t(c.T)};
  std::vector<RowRange> runs;
  for (int q : c.targets) {
    if (!runs.empty() && runs.back().end == q) ++runs.back().end;
    else runs.push_back(RowRange{q, q + 1});
  }
  h5::write_slabs(f, "/currents/mean", shape, runs, c.mean.data());
  h5::write_slabs(f, "/currents/rms", shape, runs, c.rms.data());
  h5::write_slabs(f, "/currents/exc_mean", shape, runs, c.exc_mean.data());
  h5::write_slabs(f, "/currents/exc_rms", shape, runs, c.exc_rms.data());
  h5::write_slabs(f, "/currents/inh_mean", shape, runs, c.inh_mean.data());
  h5::write_slabs(f, "/currents/inh_rms", shape, runs, c.inh_rms.data());
  h5::write_strings(f, "/currents/region_names", region_names);
  if (!h5::exists(f, "/region_names")) h5::write_strings(f, "/region_names", region_names);
  h5::set_attr(f, "/currents", "layout", "[target region, source region, sample]; current into target unit i = sum over source units j of J[i,j] r[j,t], mean / root-mean-square over the target region's units");
}

void write_per_unit(const h5::File& f, const std::vector<double>& per_unit, RowRange rows, std::int64_t N, int M,
                    std::int64_t T) {
  h5::ensure_group(f, "/currents");
  h5::write_rows(f, "/currents/per_unit", hsize_t(N), hsize_t(M) * hsize_t(T), rows, per_unit.data());
  h5::set_attr(f, "/currents/per_unit", "layout", "[unit, source region * T + sample]");
}

}  // namespace cohortnet::decompose
