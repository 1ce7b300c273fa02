#pragma once
// Reading the region-pair current summaries of a cohort (fit outputs or simulator truth) into
// factorization rows, and writing RESULTS/modes.h5 and RESULTS/modes_summary.txt.
#include <mpi.h>

#include <string>
#include <vector>

#include "modes/analysis.hpp"
#include "modes/layout.hpp"

namespace cohortnet::modes {

struct InputSpec {
  std::string dir;               // --input
  std::string source = "auto";   // auto | fits | truth
  std::string summary = "rms";   // rms | mean | exc_rms | exc_mean | inh_rms | inh_mean | ...
  std::string regions;           // --regions a,b,c (overrides manifests)
  std::string cohort_dir;        // --cohort: the cohort folder (manifest, animal files' /behaviour)
  bool self_pairs = false;
  std::string scale = "rms";     // rms | none
  std::string negative = "error";  // error | abs
  int max_failed = -1;           // --max-failed: most animals left out (failed, ...); -1: a quarter, at least 1
  bool include_poor = false;     // --include-poor: use fits whose status is 'poor'
};

// What a modes result was made from (fits with status files; docs/modes.md "Inputs").
struct InputRecord {
  std::vector<std::string> fingerprints, statuses;  // per used file (as LoadedCohort::files)
  std::vector<std::string> left_out_ids, left_out_reasons;
  std::string cohort;                               // absolute cohort folder, from the status files
  bool have_status = false;                         // false: no status files (truth, or old fits)
};

struct LoadedCohort {
  std::string source;            // "fits" or "truth"
  std::string dataset;           // e.g. /currents/rms or /current_rms
  std::string regions_from;      // where the region list came from
  PairLayout layout;
  std::vector<std::string> region_names;
  std::vector<std::string> files;
  std::vector<double> scales;    // per animal: the data were divided by this
  std::vector<AnimalMatrix> animals;
  std::vector<std::string> state_names;  // behaviour states (empty if none)
  InputRecord record;
};

// The fit files of FITS_DIR that modes may use, from the status files: those with status ok
// (and poor with --include-poor). Refuses stale inputs (a fit whose fingerprint differs from its
// status file's or from the other fits' options, a fit older than its animal file) and more than
// --max-failed animals left out; both errors name the files and animals. Rank 0's view (no MPI).
std::vector<std::string> usable_fits(const std::string& fits_dir, const InputSpec& in, InputRecord& rec);

// Collective on comm (every rank reads every animal's summaries: they are small).
LoadedCohort load_cohort(const InputSpec& in, MPI_Comm comm);

// One file's summary ([M x M x T] over its own regions, mapped by name to `regions`) as rows.
// Regions not in `regions` are dropped with a warning when allow_unknown, an error otherwise.
AnimalMatrix load_summary(const std::string& path, const std::string& dataset, const PairLayout& L,
                          const std::vector<std::string>& regions, const std::string& scale,
                          const std::string& negative, bool allow_unknown, double* scale_out, MPI_Comm comm);

// The dataset holding a summary in a file: /currents/<summary> (fit output) or /current_<summary>
// (truth); empty if neither exists.
std::string summary_dataset(const std::string& path, const std::string& summary, MPI_Comm comm);

struct TruthCheck;
// truth: the comparison with a simulated cohort's true modes (nullptr or !have: none, real data).
void write_results(const std::string& out_dir, const LoadedCohort& c, const ModesResult& r, const ModesConfig& cfg,
                   const InputSpec& in, const std::string& config_text, const TruthCheck* truth, MPI_Comm comm);
std::string summary_table(const LoadedCohort& c, const ModesResult& r, const ModesConfig& cfg);

// Fitted modes as saved in modes.h5 (for projection).
struct SavedModes {
  std::vector<std::string> region_names;
  bool self_pairs = false;
  int K = 0;
  std::vector<double> W;  // P x K
  std::string summary, scale;
};
SavedModes read_modes(const std::string& path, MPI_Comm comm);

// Projects one file onto saved modes and writes out_path (activations, R2); returns R2.
double project_file(const std::string& file, const std::string& modes_path, const std::string& out_path,
                    const std::string& summary_override, MPI_Comm comm);

}  // namespace cohortnet::modes
