#pragma once
// Shared by the ingest tests: NWB-shaped files written with the HDF5 C API (nwb_writer.hpp) and
// small helpers to run ingest on every rank and look at what it wrote.
#include <mpi.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/parallel.hpp"
#include "ingest/ingest.hpp"
#include "nwb_writer.hpp"

namespace cohortnet::testutil {

// The message of the Error f throws ("" if none). Called on every rank.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Writes a file on rank 0 only, then every rank continues.
inline void on_rank0(const std::function<void()>& write) {
  std::string err;
  if (comm_rank(MPI_COMM_WORLD) == 0) {
    try {
      write();
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  agree(MPI_COMM_WORLD, err);
}

inline double calcium_value(int u, int t) { return std::sin(0.3 * t + u) + 0.1 * u; }

struct CalciumSpec {
  int rois = 4, samples = 50;
  double rate = 10, start = 0;
  bool timestamps = false;
  double jitter = 0;                       // timestamps: extra fraction added to every 7th interval
  std::string container = "DfOverF";       // neurodata_type of the series' parent
  std::string location = "VISp";          // imaging plane location ("" = none)
  std::string column_name;                 // per-ROI region column of the PlaneSegmentation
  std::vector<std::string> column;
  bool compound_column = false;            // column stored as compound {roi_id int, area string}
  std::string subject = "mouse-01";
  std::string session = "open field, day 1";
  int nan_roi = -1, nan_sample = -1;
  bool rois_dataset = true;
  bool also_raw = false;                   // also a Fluorescence container with a raw series (values + 10)
  std::vector<double> trial_start, trial_stop;
  std::vector<std::string> trial_condition;
};

// A calcium imaging NWB file. Group names are deliberately not the usual ones: the reader must
// find the objects by neurodata_type.
inline void write_calcium_nwb(const std::string& path, const CalciumSpec& s) {
  NwbWriter w(path);
  w.group("/general/subject", "Subject");
  if (!s.subject.empty()) w.scalar_string("/general/subject/subject_id", s.subject);
  w.scalar_string("/session_description", s.session);
  w.group("/general/optophysiology/plane_A", "ImagingPlane");
  if (!s.location.empty()) w.scalar_string("/general/optophysiology/plane_A/location", s.location);
  w.group("/processing/ophys_mod", "ProcessingModule");
  w.group("/processing/ophys_mod/segmentation", "ImageSegmentation");
  const std::string seg = "/processing/ophys_mod/segmentation/cells";
  w.group(seg, "PlaneSegmentation");
  std::vector<double> ids;
  for (int u = 0; u < s.rois; ++u) ids.push_back(100 + u);
  w.ints(seg + "/id", ids, H5T_STD_I64LE);
  if (!s.column_name.empty() && s.compound_column) {
    std::vector<int> roi_ids;
    for (int u = 0; u < s.rois; ++u) roi_ids.push_back(100 + u);
    w.compound(seg + "/" + s.column_name, "roi_id", "area", roi_ids, s.column);
  } else if (!s.column_name.empty()) {
    w.strings(seg + "/" + s.column_name, s.column);
  }
  w.soft_link(seg + "/imaging_plane", "/general/optophysiology/plane_A");
  const std::string cont = "/processing/ophys_mod/traces_" + s.container;
  w.group(cont, s.container);
  const std::string ser = cont + "/plane_A_series";
  w.group(ser, "RoiResponseSeries");
  std::vector<double> data(std::size_t(s.samples * s.rois));
  for (int t = 0; t < s.samples; ++t)
    for (int u = 0; u < s.rois; ++u)
      data[std::size_t(t * s.rois + u)] =
          (u == s.nan_roi && t == s.nan_sample) ? std::nan("") : calcium_value(u, t);
  w.numbers(ser + "/data", {hsize_t(s.samples), hsize_t(s.rois)}, data, H5T_IEEE_F32LE);
  w.double_attr(ser + "/data", "conversion", 1.0);
  if (s.timestamps) {
    std::vector<double> ts;
    double t = s.start;
    for (int k = 0; k < s.samples; ++k) {
      ts.push_back(t);
      t += (1 + (k % 7 == 3 ? s.jitter : 0.0)) / s.rate;
    }
    w.numbers(ser + "/timestamps", {hsize_t(s.samples)}, ts, H5T_IEEE_F64LE);
  } else {
    w.numbers(ser + "/starting_time", {}, {s.start}, H5T_IEEE_F64LE);
    w.double_attr(ser + "/starting_time", "rate", s.rate, H5T_IEEE_F32LE);
  }
  if (s.rois_dataset) {
    std::vector<double> idx;
    for (int u = 0; u < s.rois; ++u) idx.push_back(u);
    w.ints(ser + "/rois", idx, H5T_STD_I32LE);
    w.ref_attr(ser + "/rois", "table", seg);
    w.str_attr(ser + "/rois", "neurodata_type", "DynamicTableRegion");
  }
  if (s.also_raw) {
    const std::string raw = "/processing/ophys_mod/raw_traces";
    w.group(raw, "Fluorescence");
    w.group(raw + "/raw_series", "RoiResponseSeries");
    for (auto& x : data) x += 10;
    w.numbers(raw + "/raw_series/data", {hsize_t(s.samples), hsize_t(s.rois)}, data, H5T_IEEE_F64LE);
    w.numbers(raw + "/raw_series/starting_time", {}, {s.start}, H5T_IEEE_F64LE);
    w.double_attr(raw + "/raw_series/starting_time", "rate", s.rate, H5T_IEEE_F64LE);
    std::vector<double> idx;
    for (int u = 0; u < s.rois; ++u) idx.push_back(u);
    w.ints(raw + "/raw_series/rois", idx, H5T_STD_I64LE);
    w.ref_attr(raw + "/raw_series/rois", "table", seg);
  }
  if (!s.trial_start.empty()) {
    w.group("/intervals/trials", "TimeIntervals");
    w.numbers("/intervals/trials/start_time", {hsize_t(s.trial_start.size())}, s.trial_start, H5T_IEEE_F64LE);
    w.numbers("/intervals/trials/stop_time", {hsize_t(s.trial_stop.size())}, s.trial_stop, H5T_IEEE_F64LE);
    if (!s.trial_condition.empty()) w.strings("/intervals/trials/stimulus", s.trial_condition);
  }
}

struct SpikeSpec {
  std::vector<std::vector<double>> spikes;      // per unit
  std::vector<std::string> electrode_location;  // electrodes table rows
  std::vector<int> unit_electrode;              // per unit (empty: no electrodes column)
  std::vector<std::string> unit_location;       // per unit 'location' column (empty: none)
  std::string subject = "rat-7";
};

inline void write_spikes_nwb(const std::string& path, const SpikeSpec& s) {
  NwbWriter w(path);
  w.group("/general/subject", "Subject");
  w.scalar_string("/general/subject/subject_id", s.subject);
  w.scalar_string("/session_description", "linear track");
  const std::string el = "/general/extracellular_ephys/electrodes";
  if (!s.electrode_location.empty()) {
    w.group(el, "DynamicTable");
    std::vector<double> ids;
    for (std::size_t k = 0; k < s.electrode_location.size(); ++k) ids.push_back(double(k));
    w.ints(el + "/id", ids);
    w.strings(el + "/location", s.electrode_location);
  }
  w.group("/units", "Units");
  std::vector<double> all, index, ids;
  for (std::size_t u = 0; u < s.spikes.size(); ++u) {
    all.insert(all.end(), s.spikes[u].begin(), s.spikes[u].end());
    index.push_back(double(all.size()));
    ids.push_back(double(u));
  }
  w.numbers("/units/spike_times", {hsize_t(all.size())}, all, H5T_IEEE_F64LE);
  w.ints("/units/spike_times_index", index, H5T_STD_U32LE);
  w.ints("/units/id", ids, H5T_STD_I64LE);
  if (!s.unit_electrode.empty()) {
    std::vector<double> e(s.unit_electrode.begin(), s.unit_electrode.end());
    w.ints("/units/electrodes", e, H5T_STD_I8LE);
    std::vector<double> ei;
    for (std::size_t u = 0; u < e.size(); ++u) ei.push_back(double(u + 1));
    w.ints("/units/electrodes_index", ei, H5T_STD_I32LE);
    w.ref_attr("/units/electrodes", "table", el);
  }
  if (!s.unit_location.empty()) w.strings("/units/location", s.unit_location);
}

// The whole /activity of an animal file (any rank; opened on MPI_COMM_SELF).
inline std::vector<double> activity_of(const std::string& path) {
  h5::File f = h5::open_read(path, MPI_COMM_SELF);
  return h5::read_doubles(f, "/activity");
}
inline std::string attr_of(const std::string& path, const std::string& name) {
  h5::File f = h5::open_read(path, MPI_COMM_SELF);
  return h5::attr_string(f, "/", name);
}

inline ingest::Options nwb_options(const std::string& in, const std::string& out) {
  ingest::Options o;
  o.format = "nwb";
  o.inputs = {in};
  o.out = out;
  return o;
}

}  // namespace cohortnet::testutil
