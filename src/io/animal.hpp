#pragma once
// The cohort data format (docs/format.md): one HDF5 file per animal, a cohort folder with a
// manifest. Readers are collective: every rank holds the metadata, and reads only its own rows
// of /activity. Every check names the file and the dataset at fault.
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/parallel.hpp"

namespace cohortnet {

inline constexpr const char* kAnimalFormat = "cohortnet-animal";
inline constexpr std::int64_t kAnimalFormatVersion = 1;
// /pathway_strength's definition, written as its attribute `definition` by fit and simulate and
// checked by `modes --summary pathways` (a file with another definition is refused, not mixed).
inline constexpr const char* kPathwayStrengthDefinition =
    "[target Q, source S]: rms over the units i of Q and all samples t of the ungated current sum_{j in S} J[i,j] r[j,t]";

// Everything about an animal except the activity values; identical on every rank.
struct AnimalMeta {
  std::string path;
  std::string animal_id;
  std::string species;   // e.g. "mouse", "zebrafish", "simulated"
  std::string atlas;     // e.g. "allen-ccf", "mapzebrain", "none"
  std::string provenance;
  double sample_interval = 0;  // seconds between samples (dtData)
  std::int64_t n_units = 0, n_samples = 0;
  std::vector<std::string> region_names;  // regions present in this animal, each with >= 1 unit
  std::vector<int> unit_region;           // per unit: index into region_names
  std::vector<std::int64_t> trial_starts; // sample indices, ascending, first is 0 (always set)
  std::vector<int> behaviour;             // per sample, index into behaviour_names; empty if none
  std::vector<std::string> behaviour_names;
  std::vector<std::string> input_names;   // external inputs (/inputs rows); empty if none

  int n_regions() const { return int(region_names.size()); }
  // Units of region q, ascending (every animal file's units may come in any order).
  std::vector<std::int64_t> units_of(int region) const;
};

// The order in which a fit holds an animal's units. A recording's units come in any order (real
// atlases interleave regions); the fit groups them by region (file order inside a region), so
// each region's units are contiguous rows and columns of J and a kernel pass over a region's
// sources is one segment, not many (docs/performance.md, "Unit order"). Outputs are written back
// in file order; random draws are keyed by the file index, so the result does not depend on it.
struct UnitOrder {
  std::vector<std::int64_t> file_unit;  // fit position k -> its unit index in the file; empty: file order
  bool is_file_order() const { return file_unit.empty(); }
  std::int64_t file_index(std::int64_t k) const { return file_unit.empty() ? k : file_unit[size_t(k)]; }
  // Grouped by region, stable; empty (file order) when the file's units already are.
  static UnitOrder by_region(const std::vector<int>& unit_region);
  // Fit rows [rows) as ascending runs of file rows, and for the r-th row of those runs (in
  // order) its local fit row (0-based inside rows): what read_row_runs / write_row_runs need.
  struct FileRows {
    std::vector<RowRange> runs;
    std::vector<PetscInt> fit_row;
  };
  FileRows file_rows(RowRange rows) const;
  // Rows x cols row-major data of fit rows `rows` reordered to file_rows(rows)'s order, and (when
  // cols_are_units) each row's columns put into file order too (J: out[file_unit[j]] = in[j]).
  std::vector<double> to_file_order(const FileRows& fr, const double* local, std::int64_t cols,
                                    bool cols_are_units) const;
  // The same in place (one row of scratch): for J, whose copy would be another m x N.
  void to_file_order_in_place(const FileRows& fr, std::vector<double>& local, std::int64_t cols,
                              bool cols_are_units) const;
};

// An animal's data as one rank holds it: all metadata, and its own rows of the activity.
struct AnimalData {
  AnimalMeta meta;              // with order by region: unit_region in the fit's order
  RowRange rows;                // the rows (in the fit's unit order) of /activity this rank holds
  std::vector<double> activity; // rows.count() x n_samples, row-major
  std::vector<double> inputs;   // n_inputs x n_samples (every rank holds all; small)
  UnitOrder order;              // the fit's unit order (empty: file order)
};

// Reads and checks the metadata (collective on comm).
AnimalMeta read_animal_meta(const std::string& path, MPI_Comm comm);
// Reads and checks an animal: metadata, rows given by own_rows(N, comm), inputs. Checks NaN/Inf
// and that this rank's share fits in memory. Collective on comm.
// by_region: units grouped by region (UnitOrder::by_region), meta.unit_region and the activity
// rows in that order.
AnimalData read_animal(const std::string& path, MPI_Comm comm, bool by_region = false);

// Writes an animal file atomically (collective on comm): each rank passes its rows of activity
// (rows must be own_rows(meta.n_units, comm)). inputs: n_inputs x n_samples, identical on all
// ranks (or empty). meta.path is ignored; `path` is where the file goes.
void write_animal(const std::string& path, const AnimalMeta& meta, RowRange rows,
                  const std::vector<double>& local_activity, const std::vector<double>& inputs,
                  MPI_Comm comm);

// Checks a metadata record for consistency (labels in range, no empty region, ...). Throws
// Error naming `where` (a file path) on the first problem.
void validate_meta(const AnimalMeta& meta, const std::string& where);

// ---- cohorts ----
struct CohortAnimal {
  std::string animal_id;
  std::string path;                // absolute
  std::int64_t n_units = 0, n_samples = 0;
  int n_regions = 0;
  double sample_interval = 0;
  std::int64_t n_inputs = 0;       // rows of /inputs
  std::string problem;             // why the file cannot be used (truncated, foreign, ...); "" if usable
};

struct Cohort {
  std::string dir;                    // absolute
  std::string name;
  std::vector<std::string> regions;   // the cohort's shared region list
  std::vector<CohortAnimal> animals;  // in manifest order
  int region_index(const std::string& region) const;  // -1 if absent
};

// Reads a cohort folder (its cohort.ini manifest, or every *.h5 animal file in it, sorted) and
// checks it: unique animal ids, every animal's regions in the cohort list. A file that cannot be
// used (not HDF5, truncated, foreign, a region outside the list) costs only its animal: it stays
// in the list (id: its animal_id, else the file's stem) with `problem` saying why, so the others
// keep their cohort index. Paths are made absolute. Collective on comm (rank 0 reads).
Cohort read_cohort(const std::string& dir, MPI_Comm comm);
// Writes DIR/cohort.ini (rank 0; atomic).
void write_cohort_manifest(const Cohort& cohort, MPI_Comm comm);

// Memory this process may use, bytes: MemAvailable from /proc/meminfo, or if smaller the limit of
// this process's own cgroup (v2 memory.max or v1 memory.limit_in_bytes of the path in
// /proc/self/cgroup, and its parents) or Slurm's SLURM_MEM_PER_CPU x CPUs on the node /
// SLURM_MEM_PER_NODE. Used to refuse sizes that cannot fit.
std::uint64_t available_memory_bytes();
// The limits available_memory_bytes() takes the smallest of (bytes; tests pass other files).
std::vector<std::uint64_t> job_memory_limits(const std::string& proc_cgroup = "/proc/self/cgroup",
                                             const std::string& cgroup_root = "/sys/fs/cgroup");

}  // namespace cohortnet
