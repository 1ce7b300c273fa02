// Gated pathways against the simulator's truth (--gains inputs; docs/currents.md "Gated
// pathways"): on an animal whose pathways are switched by its behaviour state, the fit keeps gains
// in some target regions and they follow the true gains; on the same animal with constant gains
// (--gating constant: pathways present or absent, the drives still following the state) no
// region keeps gains, nor with constant gains and source-driven activity (--gating source), nor
// when the inputs follow other states than the gating (--gating hidden); the same with the gains
// on latent factors of the activity (--gains latent:3). The thresholds are below what was
// measured (printed) with a margin.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "core/parallel.hpp"
#include "fit/curbd.hpp"
#include "simulate/simulate.hpp"
#include "gains_test_util.hpp"

using namespace cohortnet;

namespace {

struct Outcome {
  int kept = 0, regions = 0;
  double gains_r = NAN;  // mean over coupled pairs into kept targets: correlation over time with the truth
};

double corr(const double* a, const double* b, size_t n) {
  double ma = 0, mb = 0;
  for (size_t t = 0; t < n; ++t) ma += a[t], mb += b[t];
  ma /= double(n);
  mb /= double(n);
  double sab = 0, saa = 0, sbb = 0;
  for (size_t t = 0; t < n; ++t) {
    sab += (a[t] - ma) * (b[t] - mb);
    saa += (a[t] - ma) * (a[t] - ma);
    sbb += (b[t] - mb) * (b[t] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : NAN;
}

// latent > 0: --gains latent:latent (the gains on the activity's factors, not the inputs).
Outcome fit_animal(const std::string& gating, int latent = 0) {
  const sim::SimulatedAnimal a = fittest::simulated_animal(4, 30, 1201, gating);
  const std::int64_t T = a.meta.n_samples;
  const AnimalData data = fittest::data_of(a, MPI_COMM_WORLD);
  fit::Params p = fittest::gated_start_params();
  if (latent > 0) {
    p.gains = fit::GainModel::Latent;
    p.gains_latent = latent;
  }
  fit::Trainer tr(data, 0, p, MPI_COMM_WORLD);
  tr.run_next();
  const fit::PathwayGains& g = tr.gains();
  const std::vector<double> fitted = tr.gains_at_samples();
  Outcome o;
  o.regions = g.M;
  double sum = 0;
  int n = 0;
  for (int q = 0; q < g.M; ++q) {
    o.kept += g.kept[size_t(q)];
    if (!g.kept[size_t(q)]) continue;
    for (int s = 0; s < g.M; ++s) {
      const size_t qs = size_t(q) * size_t(g.M) + size_t(s);
      if (s == q || !a.pair_coupled[qs]) continue;
      const double r = corr(&fitted[qs * size_t(T)], &a.gains[qs * size_t(T)], size_t(T));
      if (std::isfinite(r)) sum += r, ++n;
    }
  }
  if (n > 0) o.gains_r = sum / n;
  return o;
}

}  // namespace

TEST(GainsTruth, SwitchedPathwaysKeepGainsThatFollowTheTruth) {
  const Outcome o = fit_animal(sim::kGatingStates);
  if (comm_rank(MPI_COMM_WORLD) == 0)
    std::printf("gated animal: gains kept in %d of %d target regions, gains r %.3f\n", o.kept, o.regions, o.gains_r);
  EXPECT_GE(o.kept, 1);
  EXPECT_GT(o.gains_r, 0.6);
}

TEST(GainsTruth, ConstantPathwaysKeepNoGains) {
  const Outcome o = fit_animal(sim::kGatingConstant);
  if (comm_rank(MPI_COMM_WORLD) == 0)
    std::printf("constant-gain animal: gains kept in %d of %d target regions\n", o.kept, o.regions);
  EXPECT_EQ(o.kept, 0) << "gains invented where the truth has none";
}

TEST(GainsTruth, SourceDrivenActivityKeepsNoGains) {
  // Constant gains while each state drives one region 3x harder (--gating source): currents follow
  // the state through their sources' activity only. A better-weighted fixed J (the gated fit's
  // learnt prior factors at gains 1) is the baseline the gains must beat.
  // With --gains-shrink 1e-3 this small animal (4 regions x 30 units) kept gains in 1 of 4 targets;
  // at 1e-5 (2026-12-07) the less-shrunk gains fit the training folds better and the nested test
  // rejects them everywhere: the target, 0, is asserted.
  const Outcome o = fit_animal(sim::kGatingSource);
  if (comm_rank(MPI_COMM_WORLD) == 0)
    std::printf("source-driven animal: gains kept in %d of %d target regions\n", o.kept, o.regions);
  EXPECT_EQ(o.kept, 0) << "activity that follows the state read as gains";
}

TEST(GainsTruth, GatingTheInputsDoNotTellKeepsNoGains) {
  // Switched pathways, but the inputs follow an independent state sequence (--gating hidden).
  const Outcome o = fit_animal(sim::kGatingHidden);
  if (comm_rank(MPI_COMM_WORLD) == 0)
    std::printf("hidden-gating animal: gains kept in %d of %d target regions\n", o.kept, o.regions);
  EXPECT_EQ(o.kept, 0) << "gains kept from inputs that carry no information about the gating";
}

// --gains latent:3: the same animals, the gains linear in three factors of the activity instead
// of the inputs (gain_drivers.cpp). Switched pathways keep gains that follow the truth (measured
// 2026-12-07: 1 of 4 targets, r 0.863); constant and source-driven gains keep none (measured 0,
// 0); with hidden gating (the inputs tell nothing; the factors may, from the gated currents'
// effect on the activity) any kept gains must follow the truth (measured: none kept).
TEST(GainsTruth, LatentGainsFollowTheTruthAndTheControlsKeepNone) {
  const int rank = comm_rank(MPI_COMM_WORLD);
  const Outcome on = fit_animal(sim::kGatingStates, 3);
  if (rank == 0) std::printf("latent:3, switched: gains kept in %d of %d target regions, gains r %.3f\n", on.kept, on.regions, on.gains_r);
  EXPECT_GE(on.kept, 1);
  EXPECT_GT(on.gains_r, 0.6);
  for (const char* gating : {sim::kGatingConstant, sim::kGatingSource}) {
    const Outcome o = fit_animal(gating, 3);
    if (rank == 0) std::printf("latent:3, gating %s: gains kept in %d of %d target regions\n", gating, o.kept, o.regions);
    EXPECT_EQ(o.kept, 0) << "latent gains invented with gating " << gating;
  }
  const Outcome hidden = fit_animal(sim::kGatingHidden, 3);
  if (rank == 0)
    std::printf("latent:3, hidden gating: gains kept in %d of %d target regions, gains r %.3f\n", hidden.kept, hidden.regions, hidden.gains_r);
  if (hidden.kept > 0) {
    EXPECT_GT(hidden.gains_r, 0.5) << "latent gains kept on hidden gating do not follow it";
  }
}
