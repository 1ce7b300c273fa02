#pragma once
// Small synthetic animals for the fit tests: smooth rates (sums of sinusoids, random per unit from
// a fixed stream) in M regions, built for any communicator's row split.
#include <cmath>
#include <string>

#include "core/parallel.hpp"
#include "core/rng.hpp"
#include "io/animal.hpp"

namespace cohortnet::fittest {

inline AnimalMeta make_meta(const std::string& id, std::int64_t N, std::int64_t T, int M, double dt) {
  AnimalMeta m;
  m.animal_id = id;
  m.species = "simulated";
  m.atlas = "none";
  m.n_units = N;
  m.n_samples = T;
  m.sample_interval = dt;
  for (int q = 0; q < M; ++q) m.region_names.push_back("R" + std::to_string(q));
  for (std::int64_t i = 0; i < N; ++i) m.unit_region.push_back(int((i * 7) % M));  // interleaved regions
  m.trial_starts = {0};
  return m;
}

inline double rate(std::int64_t i, std::int64_t t, double dt) {
  Stream s(4242, {std::uint64_t(i)});
  const double f1 = 0.5 + 2.0 * s.uniform(), f2 = 0.3 + 1.5 * s.uniform();
  const double p1 = 6.283 * s.uniform(), p2 = 6.283 * s.uniform(), a = 0.3 + 0.5 * s.uniform();
  const double tt = double(t) * dt;
  return a * std::sin(6.283 * f1 * tt + p1) + 0.3 * std::sin(6.283 * f2 * tt + p2) + 0.1;
}

inline AnimalData make_animal(const AnimalMeta& meta, MPI_Comm comm) {
  AnimalData d;
  d.meta = meta;
  d.rows = own_rows(PetscInt(meta.n_units), comm);
  d.activity.resize(size_t(d.rows.count()) * size_t(meta.n_samples));
  for (PetscInt i = 0; i < d.rows.count(); ++i)
    for (std::int64_t t = 0; t < meta.n_samples; ++t)
      d.activity[size_t(i) * size_t(meta.n_samples) + size_t(t)] = rate(d.rows.begin + i, t, meta.sample_interval);
  return d;
}

}  // namespace cohortnet::fittest
