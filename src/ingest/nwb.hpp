#pragma once
// NWB 2.x (HDF5) input: calcium imaging (RoiResponseSeries in Fluorescence / DfOverF) and spiking
// units (/units spike_times + spike_times_index), found by their neurodata_type; trials from
// /intervals/trials. Rank-local (opened on MPI_COMM_SELF).
#include <string>
#include <vector>

#include "ingest/ingest.hpp"

namespace cohortnet::ingest {

// Reads one NWB file into a Recording (warnings are appended to `warnings`).
Recording read_nwb(const std::string& path, const Options& opt, std::vector<std::string>& warnings);

// Spike binning and smoothing (exposed for tests): counts of `spikes` in n_bins bins of width bw
// from t0, as rates (Hz), smoothed with a Gaussian of sd `sd` seconds (sd <= 0: none), truncated
// at 4 sd and renormalised at the edges.
std::vector<double> bin_spikes(const std::vector<double>& spikes, double t0, double bw, std::int64_t n_bins, double sd);

}  // namespace cohortnet::ingest
