#pragma once
// Fitting a whole cohort: MPI_COMM_WORLD is split into groups of ranks, animals are assigned to
// groups so the work (about N^2 x RNN steps) is balanced and each fits its group's memory, every
// group fits its animals one after the other (checkpoints, SIGTERM, resume), and a cohort summary
// lists which animals finished and which failed and why.
#include <mpi.h>

#include <csignal>
#include <cstdint>
#include <string>
#include <vector>

#include "fit/curbd.hpp"
#include "fit/memory.hpp"
#include "io/animal.hpp"

namespace cohortnet::fit {

// Exit codes of `cohortnet fit` (docs/fit.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitAnimalsFailed = 1;
inline constexpr int kExitInterrupted = 75;  // checkpoints written; rerun with --resume

struct CohortOptions {
  std::string cohort_dir, out_dir;
  Params params;
  int ranks_per_animal = 0;   // 0: automatic
  int checkpoint_every = 0;   // runs; 0: only on SIGTERM
  bool resume = false;
  bool per_unit_currents = false;
  std::string init_file;      // optional: /J0 and /inputWN (one-animal cohorts)
  std::vector<std::string> animals;  // optional: fit only these animal ids (--animals; e.g. one Slurm array task)
  std::string config_text;    // recorded in every output
};

// Sizes of animals -> groups. Pure function of its inputs (every rank computes the same).
struct Assignment {
  std::vector<int> group_first, group_size;  // world ranks [first, first+size) per group
  std::vector<int> animal_group;             // per animal (cohort order)
  std::vector<double> group_work;            // estimated N^2 * steps per rank, summed
};
Assignment assign_animals(const std::vector<CohortAnimal>& animals, const Params& p, int world_size,
                          int ranks_per_animal, double bytes_per_rank, int n_p = 1);
// Estimated bytes one rank of a group of `ranks` needs to fit an animal. n_p: P matrices held
// (1 for the shared prior; the number of regions, at most the cohort's, for the region prior);
// update_block: --update-block (the delayed updates' buffers).
double fit_bytes_per_rank(std::int64_t n_units, std::int64_t n_samples, int dt_factor, int ranks, int n_p = 1,
                          int update_block = 8);
// The same from the fit's parameters and sizes: the peak of plan_fit_memory (memory.hpp).
double fit_bytes_per_rank(const FitSizes& s, const Params& p);

// The fingerprint the fit records for this animal (its cohort index: its random streams) under
// these parameters: what decides whether an existing output belongs to this configuration
// (fit --resume, submit, modes).
std::string animal_fingerprint(const Params& p, const CohortAnimal& an, std::uint64_t cohort_index);

// Set by the SIGTERM handler; checked once per run and agreed over the group.
extern volatile std::sig_atomic_t g_stop_requested;
void install_stop_handler();

// Runs the whole cohort (collective on world). Returns one of the exit codes above.
int fit_cohort(const CohortOptions& o, MPI_Comm world);

}  // namespace cohortnet::fit
