#pragma once
// The gated-pathway tests' shared setup: a simulated animal as the fit's input (this
// communicator's rows, its inputs), and the settings of a start-only gated fit (the simulator's
// time constants, no horizon, no stopping rule, one free run).
#include "core/parallel.hpp"
#include "fit/curbd.hpp"
#include "simulate/simulate.hpp"

namespace cohortnet::fittest {

inline AnimalData data_of(const sim::SimulatedAnimal& a, MPI_Comm comm) {
  AnimalData data;
  data.meta = a.meta;
  data.rows = own_rows(PetscInt(a.meta.n_units), comm);
  const std::int64_t T = a.meta.n_samples;
  data.activity.assign(a.rates.begin() + data.rows.begin * T, a.rates.begin() + data.rows.end * T);
  data.inputs = a.inputs;
  return data;
}

inline fit::Params gated_start_params() {
  fit::Params p;
  p.set_time(0.1, 5);
  p.normalise = fit::Normalise::None;
  p.horizon_auto = false;
  p.stop_when_flat = 0;
  p.runs_train = 0;
  p.runs_free = 1;
  p.gains = fit::GainModel::Inputs;
  return p;
}

}  // namespace cohortnet::fittest
