#pragma once
// `cohortnet ingest`: recordings -> the cohort format (docs/format.md, docs/ingest.md).
// Readers (NWB, .npy, HDF5 arrays) produce Recordings: units x samples in double, one fine
// region label per unit, sample times. The pipeline then cuts trials (concatenate or average per
// condition), maps fine labels to study regions (--region-map), drops units without a region,
// normalises, and writes one animal file per recording plus cohort.ini.
// Reading runs on rank 0 (files are small); errors are agreed across ranks; animal files are
// written collectively.
#include <mpi.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cohortnet::ingest {

struct Options {
  std::string format;               // nwb, npy, h5-array
  std::vector<std::string> inputs;  // input files
  std::string out;                  // cohort folder
  std::string name;                 // cohort name (default: folder name)
  // npy / h5-array
  std::string labels;               // region label per unit: text, CSV or .npy strings
  std::vector<std::string> input_labels;  // --labels once per --input (in order), else empty: `labels` for all
  std::string layout = "units-by-samples";  // or samples-by-units
  double sample_interval = 0;       // s; 0 = not given
  std::string animal_id;            // npy: one input; default the file name
  std::string trial_conditions;     // npy 3-D: condition label per trial (text file)
  std::string dataset;              // h5-array: [subjects x units x time]
  std::string labels_dataset;       // h5-array: region label per unit in the same file
  std::string ids_dataset;          // h5-array: subject ids in the same file
  // nwb
  std::string nwb_data = "auto";    // auto, calcium, spikes
  std::vector<std::string> series;  // RoiResponseSeries to use (path or name); empty = all under DfOverF/Fluorescence
  std::string region_column;        // per-ROI / per-unit column with the region (NAME or NAME:FIELD of a compound)
  double bin_width = 0.05;          // s, spikes
  std::string smooth_kernel = "gaussian";  // gaussian, none
  double smooth_width = 0.1;        // s, Gaussian sd
  // all
  std::string trials = "concatenate";  // concatenate, average
  std::string condition_column;     // NWB trials column for --trials average
  std::string region_map;           // CSV or INI: fine label -> study region
  std::string normalise = "none";   // zscore, dff-as-given, max, none
  std::string species, atlas;
  std::string config;               // the resolved options (recorded in provenance)
};

// One recording as read, before trials, region mapping and normalisation.
struct Recording {
  std::string source;          // input file
  std::string dataset;         // dataset(s) read, for messages and provenance
  std::string animal_id;       // sanitised
  std::string id_origin;       // how the id was made (for the duplicate-id message)
  std::string session;         // sanitised session name: appended when one subject has several
  double sample_interval = 0;  // s
  std::int64_t n_units = 0, n_samples = 0;
  std::vector<double> data;                // n_units x n_samples, row-major
  std::vector<std::string> unit_label;     // fine region label per unit
  std::vector<std::string> unit_name;      // "ROI 3", "unit 17": for messages
  std::vector<double> times;               // time of every sample, s (for NWB trials)
  // Trials as sample ranges [first, last) into the series; empty = one continuous series.
  std::vector<std::pair<std::int64_t, std::int64_t>> trials;
  std::vector<std::string> trial_condition;  // per trial (may be empty)
  bool is_dff = false;                     // values are dF/F already (DfOverF series)
  bool is_rates = false;                   // binned spike rates
  std::string kind;                        // calcium, spikes, array
  std::vector<std::string> notes;          // provenance lines
  std::int64_t dropped_no_spikes = 0;
};

// What ingest produced (identical on every rank).
struct AnimalSummary {
  std::string animal_id, path, source;
  std::int64_t n_units = 0, n_samples = 0, n_trials = 1;
  std::int64_t dropped_unmapped = 0, dropped_no_spikes = 0, dropped_constant = 0;
  std::vector<std::string> regions;
};
struct Summary {
  std::vector<AnimalSummary> animals;
  std::vector<std::string> regions;  // the cohort region list
  std::string manifest;              // path of cohort.ini
};

// Full stage: read every input (rank 0), process, write animal files and cohort.ini. Collective.
Summary run_ingest(const Options& opt, MPI_Comm comm);

// ---- pieces (rank-local, no MPI; used by run_ingest and the tests) ----
void validate_options(const Options& opt);
// The labels file of one --input: its own (--labels given once per --input) or the shared one.
const std::string& labels_for(const Options& opt, const std::string& input);
std::string sanitise_id(const std::string& s);
// Region map file: fine label -> study region, in the order of the file's first appearance of
// each region. CSV ("fine,region" lines, '#' comments, optional header) or INI ("fine = region").
struct RegionMap {
  std::string path;
  std::vector<std::pair<std::string, std::string>> entries;  // fine -> region (exact; "X*" = prefix)
  std::vector<std::string> regions;                         // study regions, file order
  // The study region of a fine label, or "" if unmapped (exact, then case-insensitive, then prefix).
  std::string lookup(const std::string& fine) const;
};
RegionMap read_region_map(const std::string& path);
// Labels per unit from a text/CSV file or a 1-D string .npy.
std::vector<std::string> read_labels(const std::string& path, std::int64_t n_units, const std::string& data = "");

std::vector<Recording> read_npy_recordings(const Options& opt);
std::vector<Recording> read_h5_array_recordings(const Options& opt);

}  // namespace cohortnet::ingest
