#pragma once
// Ground-truth multi-region rate networks (docs/simulate.md): the CURBD three-region validation
// network, and a cohort of animals whose inter-region couplings are a non-negative mix of shared
// "modes" switched by a hidden behaviour state. Everything is drawn from Stream(seed,
// {kTagSimulate, animal, purpose, ...}) and each animal is simulated serially by one rank, so the
// output does not depend on the number of ranks.
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "io/animal.hpp"

namespace cohortnet::sim {

inline constexpr const char* kPresetCohort = "cohort";
inline constexpr const char* kPresetThreeRegion = "three-region";
inline constexpr const char* kLinksRandom = "random";
inline constexpr const char* kLinksOneToOne = "one-to-one";
inline constexpr const char* kDrivesReference = "reference";
inline constexpr const char* kGatingStates = "states";
inline constexpr const char* kGatingConstant = "constant";
// Constant gains (as "constant") while each state drives one source region strongly: pathway
// currents change with the state through their source's activity, not their gain (issue 14's
// control for a gating generator other than the modes' mix).
inline constexpr const char* kGatingSource = "source";
// Gains switched by the states (as "states") while the drives, and so /inputs, follow a second
// state sequence of their own: the fit is told nothing about the gating (issue 14's control for
// gating with no known inputs).
inline constexpr const char* kGatingHidden = "hidden";
// How much stronger the drive of a state's region is under "source" than drive_amplitude.
inline constexpr double kSourceDriveFactor = 3.0;
inline constexpr const char* kDrivesGaussian = "gaussian";
inline constexpr const char* kSharingShared = "shared";
inline constexpr const char* kSharingNone = "none";

struct SimulateParams {
  std::string preset = kPresetCohort;  // "cohort" or "three-region"
  std::uint64_t seed = 1;              // at most 2^63-1 (recorded as an int64 attribute)
  std::string name;                    // cohort name for the manifest; empty: the folder's name
  int animals = 8;
  int regions = 6;                 // cohort preset; three-region has 3
  int units_per_region = 50;
  double unit_variation = 0.3;     // cohort: units per region vary by up to +-this fraction
  int samples = 1201;              // samples per trial
  int trials = 1;
  double dt = 0.01;                // sample interval, s
  int dt_factor = 5;               // Euler substeps per sample
  double tau = 0.1;                // s
  double g = 1.5;                  // within-region gain
  double g_undriven = 1.8;         // three-region: gain of region A (no external input)
  double lead_time = 2.0;          // s simulated before the first sample of every trial
  double link_fraction = 0.1;      // fraction of (target, source) unit pairs linked between regions
  double link_strength = 0.3;      // |weight| of an inter-region link
  double link_excitatory = 0.8;    // fraction of inter-region links that are positive
  // How inter-region links are drawn (docs/simulate.md): "random": every (target, source) unit pair
  // of a coupled region pair independently with probability link_fraction (each target unit gets
  // about link_fraction * n_S links); "one-to-one" (the CURBD reference's threeRegionSim):
  // round(link_fraction * n_Q) target units, each fed by the one source unit of the same index.
  std::string links = "random";
  // three-region. Drives of B and C (docs/simulate.md): "reference" (the CURBD reference's
  // threeRegionSim: a wide bump sweeping over B's units in the first 40% of the trial, then frozen;
  // C held at one pattern until 60% of the trial, then another) or "gaussian" (a narrow bump per B
  // unit across the whole trial; C a constant random pattern, new every trial).
  std::string drives = "gaussian";
  double bump_width = 0.2;         // gaussian: s, std of each B unit's bump; reference: fraction of the units
  double bump_amplitude = 1.0;
  double fixed_amplitude = 1.0;    // std of region C's constant input pattern per trial
  double external_fraction = 1.0;  // fraction of B's and C's units that receive their external input
  // Store each driven unit's external drive as a known input channel (/inputs, one per driven
  // unit), as a lab would record a stimulus: the fit can then attribute it (--inputs use).
  bool drives_as_inputs = false;
  // cohort
  int modes = 4;
  int pairs_per_mode = 3;
  int states = 0;                  // 0: auto, max(3, modes incl. the individual one); see n_states()
  double dwell = 2.0;              // s, mean dwell time of a behaviour state
  double ramp = 0.25;              // s, time constant of mode activations following the state
  double mode_variation = 0.1;     // per-animal multiplicative jitter (std) of mode weights
  bool individual_mode = false;    // one extra mode only some animals have
  // "shared": the cohort's modes are the same (up to --mode-variation) in every animal; "none": a
  // null cohort, every animal draws its own --modes modes (same states and activations, other
  // pathways), so no mode is shared and none may be called conserved (issue 14's null cohorts).
  std::string mode_sharing = "shared";
  double individual_fraction = 0.25;
  double missing_fraction = 0.25;  // fraction of animals missing regions
  int missing_per_animal = 1;
  double drive_amplitude = 0.3;    // std of the per-unit weights of the state drives; 0: none
  // How the modes act on the inter-region pathways: "states" (gain_QS(t) follows the modes'
  // activations, which follow the hidden state) or "constant" (each pathway's gain is fixed at its
  // average over the states: pathways are present or absent, not switched; the drives still follow
  // the states). A fixed-J model (CURBD) can express only the second exactly. "source": constant
  // gains, and state i drives only the units of the animal's region i mod M (kSourceDriveFactor x
  // stronger): activity, not gain, changes with the state. "hidden": the gains follow the
  // states, the drives (/inputs) an independent state sequence.
  std::string gating = "states";
  // With "states": the modes' activations follow the state gating_lag seconds after the drives
  // (/inputs) do, so the gains are the unlagged gains shifted in time (a gating that lags what
  // the fit is told; issue 14's control for gains linear in the inputs). 0: in step.
  double gating_lag = 0.0;
  std::string config;              // configuration text recorded in every file (empty: describe())
};

// Behaviour states used: --states, or when 0 max(3, K) so that every mode can have a state of its
// own (with fewer states than modes the modes' activations are linearly dependent and no
// factorization can separate them).
int n_states(const SimulateParams& p);

// The parameters as INI text ([simulate] section, the CLI's option names).
std::string describe(const SimulateParams& p);

// The defaults of a preset (throws Error for an unknown preset, naming --preset).
SimulateParams default_params(const std::string& preset);
// Throws Error naming the option (--animals, --regions, ...) for the first bad value.
void validate_params(const SimulateParams& p);

// What is shared by the cohort, computed identically on every rank from the parameters.
struct CohortPlan {
  std::vector<std::string> regions;     // R cohort regions
  std::vector<std::string> animal_ids;  // A
  int n_modes = 0;                      // K, including the individual mode if any; a null cohort
                                        // (--mode-sharing none): A x modes, mode k belongs to animal k / modes
  int individual = -1;                  // index of the individual (non-conserved) mode, or -1
  std::vector<double> modes;            // K x R x R, target x source, >= 0, zero diagonal
  std::vector<double> state_levels;     // n_states x K: target activation of each mode per state
  double state_levels_condition = 0.0;  // sigma_min / sigma_max of one group's levels (0: states < modes)
  int state_levels_draws = 0;           // draws until the levels were well conditioned (1 for most seeds)
  std::vector<int> mode_has;            // A x K: 1 if the animal carries mode k at all
  std::vector<int> mode_present;        // A x K: carries it and has at least one of its pairs
                                        // (whether it is used: SimulatedAnimal::mode_active_fraction)
  std::vector<std::vector<int>> animal_regions;  // per animal: cohort region indices, ascending
  std::vector<std::vector<int>> units;           // per animal: units of each of its regions
  int n_regions() const { return int(regions.size()); }
  int n_animals() const { return int(animal_ids.size()); }
  std::int64_t n_units(int animal) const;
};
CohortPlan make_plan(const SimulateParams& p);

// One simulated animal with its ground truth (M = its regions, N units, T samples).
struct SimulatedAnimal {
  AnimalMeta meta;
  std::vector<double> rates;           // N x T, r = tanh(x) at the samples (= /activity)
  std::vector<double> inputs;          // n_inputs x T (cohort: smoothed state indicators)
  std::vector<double> external;        // N x T, the true external input of every unit
  std::vector<double> J;               // N x N structural weights (target x source)
  std::vector<double> gains;           // M x M x T: J_eff(t)[Q,S block] = gains[Q,S,t] * J[Q,S]
  std::vector<std::int64_t> pair_coupled;       // M x M
  std::vector<std::int64_t> region_draws;       // M: draws of the within-region weights until active
  std::vector<double> mode_patterns;   // K x M x M: this animal's version of every mode
  std::vector<double> mode_activations;  // K x T (zero rows for modes the animal lacks)
  std::vector<std::int64_t> states;    // T (cohort)
  std::vector<double> mode_active_fraction;  // K: fraction of samples with activation > kModeActive
  // Region-pair currents [M x M x T]: total, positive-weight and negative-weight parts.
  std::vector<double> cur_mean, cur_rms, exc_mean, exc_rms, inh_mean, inh_rms;
  // M x M: each pathway's strength as the fit defines it (kPathwayStrengthDefinition, io/animal.hpp).
  std::vector<double> pathway_strength;
};
// A mode counts as active at a sample when its activation exceeds this (levels are U(0.6, 1)).
inline constexpr double kModeActive = 0.1;
SimulatedAnimal simulate_animal(const SimulateParams& p, const CohortPlan& plan, int animal);

// Simulates every animal (round-robin over the ranks of comm, each written with MPI_COMM_SELF)
// and writes out_dir/<id>.h5, out_dir/cohort.ini, out_dir/truth/<id>.h5 and (cohort preset)
// out_dir/truth/cohort.h5. Collective on comm; errors are agreed by every rank.
void simulate_cohort(const SimulateParams& p, const std::string& out_dir, MPI_Comm comm);

}  // namespace cohortnet::sim
