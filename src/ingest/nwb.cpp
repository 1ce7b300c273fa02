#include "ingest/nwb.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "ingest/h5x.hpp"

namespace cohortnet::ingest {

namespace {

std::string parent_of(const std::string& p) {
  auto k = p.find_last_of('/');
  return k == 0 || k == std::string::npos ? "/" : p.substr(0, k);
}
std::string base_of(const std::string& p) {
  auto k = p.find_last_of('/');
  return k == std::string::npos ? p : p.substr(k + 1);
}

// Scalar or single-element string dataset ("" if absent or empty).
std::string text_scalar(const h5::File& f, const std::string& path) {
  if (!h5x::is_dataset(f, path)) return "";
  auto v = h5x::read_text(f, path);
  return v.empty() ? "" : v[0];
}

// Sample times of a TimeSeries: starting_time (+ rate) or timestamps (near-uniform).
void series_timing(const h5::File& f, const std::string& s, std::int64_t n, Recording& r) {
  if (h5x::is_dataset(f, s + "/starting_time")) {
    const std::string st = s + "/starting_time";
    auto v = h5::read_doubles(f, st);
    if (v.size() != 1) fail("file ", f.path, ": dataset ", st, " must be a scalar");
    if (!h5::has_attr(f, st, "rate")) fail("file ", f.path, ": dataset ", st, " has no attribute 'rate'");
    const double rate = h5::attr_double(f, st, "rate");
    if (!(rate > 0) || !std::isfinite(rate))
      fail("file ", f.path, ": attribute rate of ", st, " must be a positive number, got ", rate);
    r.sample_interval = 1.0 / rate;
    r.times.resize(std::size_t(n));
    for (std::int64_t i = 0; i < n; ++i) r.times[std::size_t(i)] = v[0] + double(i) / rate;
    r.notes.push_back(cat("sampling: ", st, " rate ", rate, " Hz"));
    return;
  }
  if (h5x::is_dataset(f, s + "/timestamps")) {
    const std::string ts = s + "/timestamps";
    auto t = h5::read_doubles(f, ts);
    if (std::int64_t(t.size()) != n)
      fail("file ", f.path, ": dataset ", ts, " has ", t.size(), " timestamps but the data has ", n, " samples");
    if (n < 2) fail("file ", f.path, ": series ", s, " has fewer than 2 samples");
    std::vector<double> d(std::size_t(n - 1));
    for (std::size_t i = 0; i + 1 < t.size(); ++i) {
      d[i] = t[i + 1] - t[i];
      if (!(d[i] > 0))
        fail("file ", f.path, ": dataset ", ts, " is not strictly increasing at sample ", i + 1, " (", t[i], " then ",
             t[i + 1], ")");
    }
    std::vector<double> sorted = d;
    std::nth_element(sorted.begin(), sorted.begin() + long(sorted.size() / 2), sorted.end());
    const double med = sorted[sorted.size() / 2];
    double worst = 0;
    std::size_t at = 0;
    for (std::size_t i = 0; i < d.size(); ++i)
      if (std::abs(d[i] - med) > worst) worst = std::abs(d[i] - med), at = i;
    // The fit assumes one sample interval; a few percent of jitter is normal for frame clocks.
    if (worst > 0.05 * med)
      fail("file ", f.path, ": dataset ", ts, " is not near-uniform: interval ", d[at], " s at sample ", at + 1,
           " differs from the median ", med, " s by more than 5%; resample the series first");
    r.sample_interval = (t.back() - t.front()) / double(n - 1);
    r.times = t;
    r.notes.push_back(cat("sampling: ", ts, " (near-uniform, mean interval ", r.sample_interval, " s)"));
    return;
  }
  fail("file ", f.path, ": series ", s, " has neither starting_time (with rate) nor timestamps");
}

// A column of a DynamicTable as text. Column "NAME:FIELD" reads member FIELD of a compound column.
std::vector<std::string> column_text(const h5::File& f, const std::string& table, const std::string& column) {
  auto colon = column.find(':');
  if (colon != std::string::npos) {
    const std::string ds = table + "/" + column.substr(0, colon);
    return h5x::read_compound_text(f, ds, column.substr(colon + 1));
  }
  const std::string ds = table + "/" + column;
  if (!h5x::is_dataset(f, ds)) fail("file ", f.path, ": table ", table, " has no column '", column, "'");
  if (h5x::is_compound(f, ds))
    fail("file ", f.path, ": column ", ds, " is a compound dataset; name its field as ", column, ":FIELD");
  return h5x::read_text(f, ds);
}

std::vector<std::string> unit_ids(const h5::File& f, const std::string& table, std::int64_t n, const char* what) {
  std::vector<std::string> names;
  std::vector<std::string> ids;
  if (h5x::is_dataset(f, table + "/id")) ids = h5x::read_text(f, table + "/id");
  for (std::int64_t i = 0; i < n; ++i)
    names.push_back(cat(what, " ", std::int64_t(ids.size()) == n ? ids[std::size_t(i)] : std::to_string(i)));
  return names;
}

void read_calcium(const h5::File& f, const std::vector<std::pair<std::string, std::string>>& typed, const Options& opt,
                  Recording& r) {
  std::map<std::string, std::string> type_of(typed.begin(), typed.end());
  std::vector<std::string> all, dff, fl;
  for (auto& [p, t] : typed) {
    if (t != "RoiResponseSeries") continue;
    all.push_back(p);
    auto it = type_of.find(parent_of(p));
    std::string pt = it == type_of.end() ? "" : it->second;
    if (pt == "DfOverF") dff.push_back(p);
    if (pt == "Fluorescence") fl.push_back(p);
  }
  std::vector<std::string> chosen;
  if (!opt.series.empty()) {
    for (auto& want : opt.series) {
      std::vector<std::string> hits;
      for (auto& p : all)
        if (p == want || base_of(p) == want) hits.push_back(p);
      if (hits.empty()) {
        std::string list;
        for (auto& p : all) list += (list.empty() ? "" : ", ") + p;
        fail("file ", f.path, ": option --series ", want, ": no RoiResponseSeries of that name or path (found: ",
             list.empty() ? "none" : list, ")");
      }
      if (hits.size() > 1) fail("file ", f.path, ": option --series ", want, " is ambiguous (", hits[0], ", ", hits[1], "); give the full path");
      chosen.push_back(hits[0]);
    }
  } else {
    // dF/F when the file has it (what people usually fit), else the raw fluorescence.
    chosen = !dff.empty() ? dff : !fl.empty() ? fl : all;
  }
  if (chosen.empty()) fail("file ", f.path, ": no RoiResponseSeries (calcium imaging) found");

  bool all_dff = true;
  std::vector<std::vector<double>> blocks;  // per series: units x samples
  for (auto& s : chosen) {
    auto ptype = type_of.count(parent_of(s)) ? type_of[parent_of(s)] : std::string();
    all_dff = all_dff && ptype == "DfOverF";
    const std::string ds = s + "/data";
    if (!h5x::is_dataset(f, ds)) fail("file ", f.path, ": series ", s, " has no data");
    auto dims = h5::dims(f, ds);
    if (dims.empty() || dims.size() > 2)
      fail("file ", f.path, ": dataset ", ds, " must be [time x ROIs] (1-D or 2-D), got ", dims.size(), "-D");
    const std::int64_t T = std::int64_t(dims[0]), R = dims.size() == 2 ? std::int64_t(dims[1]) : 1;
    if (T < 2) fail("file ", f.path, ": dataset ", ds, " has fewer than 2 samples");
    auto v = h5::read_doubles(f, ds);
    double conv = h5::has_attr(f, ds, "conversion") ? h5::attr_double(f, ds, "conversion") : 1.0;
    double offset = h5::has_attr(f, ds, "offset") ? h5::attr_double(f, ds, "offset") : 0.0;
    // Transpose [time x ROIs] -> ROIs x time, and check every value.
    std::vector<double> block(std::size_t(R * T));
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t u = 0; u < R; ++u) {
        double x = v[std::size_t(t * R + u)];
        if (!std::isfinite(x))
          fail("file ", f.path, ": dataset ", ds, " has ", std::isnan(x) ? "NaN" : "Inf", " at ROI ", u, " (column ", u,
               "), sample ", t);
        block[std::size_t(u * T + t)] = x * conv + offset;
      }

    // Region of every ROI: a per-ROI column of the PlaneSegmentation, or its imaging plane's location.
    const std::string rois = s + "/rois";
    if (!h5x::is_dataset(f, rois))
      fail("file ", f.path, ": series ", s, " has no region information: no 'rois' (link to a PlaneSegmentation)");
    auto roi_idx = h5::read_ints(f, rois);
    if (std::int64_t(roi_idx.size()) != R)
      fail("file ", f.path, ": dataset ", rois, " has ", roi_idx.size(), " entries but ", ds, " has ", R, " ROIs");
    std::string seg = h5x::ref_attr_target(f, rois, "table");
    if (seg.empty())
      fail("file ", f.path, ": series ", s, " has no region information: ", rois, " has no 'table' reference to a PlaneSegmentation");
    std::vector<std::string> labels;
    std::string how;
    std::string column = opt.region_column;
    if (column.empty() && h5x::is_dataset(f, seg + "/location")) column = "location";
    if (!column.empty()) {
      auto col = column_text(f, seg, column);
      for (std::int64_t u = 0; u < R; ++u) {
        auto k = roi_idx[std::size_t(u)];
        if (k < 0 || k >= std::int64_t(col.size()))
          fail("file ", f.path, ": dataset ", rois, " entry ", u, " = ", k, " is outside table ", seg, " (", col.size(), " rows)");
        labels.push_back(col[std::size_t(k)]);
      }
      how = cat("column '", column, "' of ", seg);
    } else {
      const std::string plane_link = seg + "/imaging_plane";
      std::string loc;
      if (h5x::is_group(f, plane_link)) loc = text_scalar(f, plane_link + "/location");
      if (loc.empty())
        fail("file ", f.path, ": series ", s, " has no region information: imaging plane of ", seg,
             " has no 'location' and no per-ROI region column (name one with --region-column)");
      labels.assign(std::size_t(R), loc);
      how = cat("imaging plane location '", loc, "' (", plane_link, ")");
    }
    for (std::int64_t u = 0; u < R; ++u)
      if (labels[std::size_t(u)].empty())
        fail("file ", f.path, ": series ", s, ": ROI ", u, " has no region (empty ", how, ")");

    std::vector<std::string> ids;
    if (h5x::is_dataset(f, seg + "/id")) ids = h5x::read_text(f, seg + "/id");
    if (!blocks.empty() && r.n_samples != T)
      fail("file ", f.path, ": series ", s, " has ", T, " samples but ", chosen[0], " has ", r.n_samples,
           "; choose one with --series");
    std::vector<double> times_before = r.times;
    const double dt_before = r.sample_interval;
    series_timing(f, s, T, r);
    if (dt_before > 0 && std::abs(dt_before - r.sample_interval) > 0.01 * dt_before)
      fail("file ", f.path, ": series ", s, " has sample interval ", r.sample_interval, " s but ", chosen[0], " has ",
           dt_before, " s; choose one with --series");
    if (!times_before.empty() && std::abs(times_before[0] - r.times[0]) > 0.5 * r.sample_interval)
      fail("file ", f.path, ": series ", s, " starts at a different time than ", chosen[0], "; choose one with --series");
    r.n_samples = T;
    for (std::int64_t u = 0; u < R; ++u) {
      auto k = roi_idx[std::size_t(u)];
      r.unit_label.push_back(labels[std::size_t(u)]);
      r.unit_name.push_back(cat(ds, " ROI ", k >= 0 && k < std::int64_t(ids.size()) ? ids[std::size_t(k)] : std::to_string(u)));
    }
    r.n_units += R;
    blocks.push_back(std::move(block));
    r.notes.push_back(cat("series ", s, " (", ptype.empty() ? "RoiResponseSeries" : ptype, "): ", R, " ROIs x ", T,
                          " samples, transposed to units x samples; regions from ", how,
                          conv != 1.0 ? cat("; conversion ", conv) : std::string()));
    r.dataset += (r.dataset.empty() ? "" : ",") + ds;
  }
  for (auto& b : blocks) r.data.insert(r.data.end(), b.begin(), b.end());
  r.is_dff = all_dff;
  r.kind = "calcium";
}

void read_spikes(const h5::File& f, const std::vector<std::pair<std::string, std::string>>& typed, const Options& opt,
                 Recording& r, std::vector<std::string>& warnings) {
  std::string units;
  for (auto& [p, t] : typed)
    if (t == "Units") {
      if (!units.empty() && p != units) fail("file ", f.path, ": more than one Units table (", units, ", ", p, ")");
      units = p;
    }
  if (units.empty()) fail("file ", f.path, ": no Units table (spiking data) found");
  const std::string st = units + "/spike_times", si = units + "/spike_times_index";
  if (!h5x::is_dataset(f, st)) fail("file ", f.path, ": Units table ", units, " has no spike_times");
  if (!h5x::is_dataset(f, si)) fail("file ", f.path, ": Units table ", units, " has no spike_times_index");
  auto times = h5::read_doubles(f, st);
  auto index = h5::read_ints(f, si);
  const std::int64_t U = std::int64_t(index.size());
  if (U == 0) fail("file ", f.path, ": Units table ", units, " has no units");
  auto names = unit_ids(f, units, U, "unit");

  // Region of every unit: a named column, a 'location' column on units, or the electrodes table.
  std::vector<std::string> labels(static_cast<std::size_t>(U));
  std::string how;
  std::string column = opt.region_column;
  if (column.empty() && h5x::is_dataset(f, units + "/location")) column = "location";
  if (!column.empty()) {
    auto col = column_text(f, units, column);
    if (std::int64_t(col.size()) != U)
      fail("file ", f.path, ": column ", units, "/", column, " has ", col.size(), " rows but there are ", U, " units");
    labels = col;
    how = cat("column '", column, "' of ", units);
  } else if (h5x::is_dataset(f, units + "/electrodes")) {
    const std::string ed = units + "/electrodes";
    auto el = h5::read_ints(f, ed);
    std::vector<std::int64_t> eidx;  // ragged: cumulative end offsets per unit
    if (h5x::is_dataset(f, ed + "_index")) eidx = h5::read_ints(f, ed + "_index");
    else if (std::int64_t(el.size()) == U) for (std::int64_t u = 0; u < U; ++u) eidx.push_back(u + 1);
    if (std::int64_t(eidx.size()) != U)
      fail("file ", f.path, ": ", ed, " does not have one entry per unit (", el.size(), " entries, ", U, " units, no ",
           ed, "_index)");
    std::string table = h5x::ref_attr_target(f, ed, "table");
    if (table.empty()) table = "/general/extracellular_ephys/electrodes";
    if (!h5x::is_dataset(f, table + "/location"))
      fail("file ", f.path, ": units have no region information: electrodes table ", table, " has no 'location' column");
    auto loc = column_text(f, table, "location");
    for (std::int64_t u = 0; u < U; ++u) {
      std::int64_t b = u ? eidx[std::size_t(u - 1)] : 0;
      if (b >= eidx[std::size_t(u)] || b >= std::int64_t(el.size()))
        fail("file ", f.path, ": ", names[std::size_t(u)], " has no electrode in ", ed, " (no region)");
      auto e = el[std::size_t(b)];  // a unit on several electrodes: the first one's location
      if (e < 0 || e >= std::int64_t(loc.size()))
        fail("file ", f.path, ": ", ed, " of ", names[std::size_t(u)], " is ", e, ", outside ", table, " (", loc.size(), " rows)");
      labels[std::size_t(u)] = loc[std::size_t(e)];
    }
    how = cat("electrodes table ", table, " column 'location' via ", ed);
  } else {
    fail("file ", f.path, ": units have no region information: ", units,
         " has no 'location' column and no 'electrodes' column (name a column with --region-column)");
  }

  // Spikes per unit; time span of the recording.
  double t0 = HUGE_VAL, t1 = -HUGE_VAL;
  std::vector<std::vector<double>> spikes(static_cast<std::size_t>(U));
  std::int64_t prev = 0;
  for (std::int64_t u = 0; u < U; ++u) {
    std::int64_t e = index[std::size_t(u)];
    if (e < prev || e > std::int64_t(times.size()))
      fail("file ", f.path, ": dataset ", si, " is not ascending within [0, ", times.size(), "] at ", names[std::size_t(u)]);
    for (std::int64_t k = prev; k < e; ++k) {
      double t = times[std::size_t(k)];
      if (!std::isfinite(t)) fail("file ", f.path, ": dataset ", st, " has a non-finite spike time (", t, ") in ", names[std::size_t(u)]);
      spikes[std::size_t(u)].push_back(t);
      t0 = std::min(t0, t);
      t1 = std::max(t1, t);
    }
    prev = e;
  }
  if (h5x::is_dataset(f, "/intervals/trials/start_time") && h5x::is_dataset(f, "/intervals/trials/stop_time")) {
    for (double t : h5::read_doubles(f, "/intervals/trials/start_time")) t0 = std::min(t0, t);
    for (double t : h5::read_doubles(f, "/intervals/trials/stop_time")) t1 = std::max(t1, t);
  }
  if (!(t1 > t0)) fail("file ", f.path, ": ", st, " spans no time (no spikes, or all at one instant)");
  const double bw = opt.bin_width;
  const std::int64_t nb = std::int64_t(std::ceil((t1 - t0) / bw)) + 1;
  if (nb < 2) fail("file ", f.path, ": the recording is shorter than 2 bins of --bin-width ", bw, " s");
  const double sd = opt.smooth_kernel == "gaussian" ? opt.smooth_width : 0.0;
  for (std::int64_t u = 0; u < U; ++u) {
    if (spikes[std::size_t(u)].empty()) {
      warnings.push_back(cat("file ", f.path, ": ", st, ": ", names[std::size_t(u)], " has no spikes; dropped"));
      ++r.dropped_no_spikes;
      continue;
    }
    if (labels[std::size_t(u)].empty())
      fail("file ", f.path, ": ", names[std::size_t(u)], " has no region (empty ", how, ")");
    auto rate = bin_spikes(spikes[std::size_t(u)], t0, bw, nb, sd);
    r.data.insert(r.data.end(), rate.begin(), rate.end());
    r.unit_label.push_back(labels[std::size_t(u)]);
    r.unit_name.push_back(names[std::size_t(u)]);
    ++r.n_units;
  }
  if (r.n_units == 0) fail("file ", f.path, ": no unit of ", units, " has any spike");
  r.n_samples = nb;
  r.sample_interval = bw;
  r.times.resize(std::size_t(nb));
  for (std::int64_t i = 0; i < nb; ++i) r.times[std::size_t(i)] = t0 + (double(i) + 0.5) * bw;  // bin centres
  r.dataset = st;
  r.kind = "spikes";
  r.is_rates = true;
  r.notes.push_back(cat("spikes: ", units, " (", U, " units, ", r.dropped_no_spikes, " without spikes dropped), binned at ",
                        bw, " s from ", t0, " s, smoothing ",
                        sd > 0 ? cat("gaussian sd ", sd, " s") : std::string("none"), ", rates in Hz; regions from ", how));
}

void read_trials(const h5::File& f, const Options& opt, Recording& r, std::vector<std::string>& warnings) {
  const std::string g = "/intervals/trials";
  if (!h5x::is_dataset(f, g + "/start_time")) {
    if (!opt.condition_column.empty())
      fail("file ", f.path, ": option --condition-column ", opt.condition_column, ": the file has no ", g, " table");
    return;
  }
  auto start = h5::read_doubles(f, g + "/start_time");
  if (!h5x::is_dataset(f, g + "/stop_time")) fail("file ", f.path, ": ", g, " has start_time but no stop_time");
  auto stop = h5::read_doubles(f, g + "/stop_time");
  if (stop.size() != start.size()) fail("file ", f.path, ": ", g, "/start_time and stop_time differ in length");
  std::vector<std::string> cond;
  if (!opt.condition_column.empty()) {
    cond = column_text(f, g, opt.condition_column);
    if (cond.size() != start.size())
      fail("file ", f.path, ": column ", g, "/", opt.condition_column, " has ", cond.size(), " rows, ", start.size(), " trials");
  }
  const auto& t = r.times;
  for (std::size_t k = 0; k < start.size(); ++k) {
    if (!(stop[k] > start[k]))
      fail("file ", f.path, ": trial ", k, " of ", g, " has stop_time ", stop[k], " <= start_time ", start[k]);
    auto b = std::int64_t(std::lower_bound(t.begin(), t.end(), start[k]) - t.begin());
    auto e = std::int64_t(std::lower_bound(t.begin(), t.end(), stop[k]) - t.begin());
    if (e - b < 2) {
      warnings.push_back(cat("file ", f.path, ": trial ", k, " of ", g, " (", start[k], " - ", stop[k],
                             " s) covers fewer than 2 samples of ", r.dataset, "; skipped"));
      continue;
    }
    if (!r.trials.empty() && b < r.trials.back().second)
      fail("file ", f.path, ": trial ", k, " of ", g, " overlaps the previous trial (trials must be in time order)");
    r.trials.emplace_back(b, e);
    if (!cond.empty()) r.trial_condition.push_back(cond[k]);
  }
  if (r.trials.empty()) fail("file ", f.path, ": no trial of ", g, " covers 2 or more samples of ", r.dataset);
  r.notes.push_back(cat("trials: ", r.trials.size(), " of ", start.size(), " from ", g,
                        cond.empty() ? std::string() : cat(", condition column '", opt.condition_column, "'")));
}

}  // namespace

std::vector<double> bin_spikes(const std::vector<double>& spikes, double t0, double bw, std::int64_t n_bins, double sd) {
  std::vector<double> c(std::size_t(n_bins), 0.0);
  for (double t : spikes) {
    auto b = std::int64_t(std::floor((t - t0) / bw));
    if (b >= 0 && b < n_bins) c[std::size_t(b)] += 1.0 / bw;
  }
  if (!(sd > 0)) return c;
  const double s = sd / bw;  // in bins
  const auto half = std::int64_t(std::ceil(4 * s));
  std::vector<double> w(std::size_t(2 * half + 1));
  for (std::int64_t k = -half; k <= half; ++k) w[std::size_t(k + half)] = std::exp(-0.5 * double(k * k) / (s * s));
  std::vector<double> out(std::size_t(n_bins), 0.0);
  for (std::int64_t i = 0; i < n_bins; ++i) {
    double acc = 0, norm = 0;
    for (std::int64_t k = -half; k <= half; ++k) {
      std::int64_t j = i + k;
      if (j < 0 || j >= n_bins) continue;
      acc += w[std::size_t(k + half)] * c[std::size_t(j)];
      norm += w[std::size_t(k + half)];
    }
    out[std::size_t(i)] = acc / norm;  // renormalised at the edges: no artificial drop
  }
  return out;
}

Recording read_nwb(const std::string& path, const Options& opt, std::vector<std::string>& warnings) {
  h5::File f = h5::open_read(path, MPI_COMM_SELF);
  if (!h5::has_attr(f, "/", "nwb_version"))
    fail("file ", path, ": not an NWB file (no nwb_version attribute on /)");
  std::string root_type = h5::has_attr(f, "/", "neurodata_type") ? h5::attr_string(f, "/", "neurodata_type") : "";
  if (root_type != "NWBFile")
    fail("file ", path, ": not an NWB file (root neurodata_type is '", root_type, "', expected NWBFile)");
  Recording r;
  r.source = path;
  r.notes.push_back(cat("NWB ", h5::attr_string(f, "/", "nwb_version"), " file ", path));
  auto typed = h5x::typed_objects(f);
  bool has_calcium = false, has_units = false;
  for (auto& [p, t] : typed) {
    has_calcium = has_calcium || t == "RoiResponseSeries";
    has_units = has_units || t == "Units";
  }
  std::string what = opt.nwb_data;
  if (what == "auto") {
    if (has_calcium && has_units)
      fail("file ", path, ": has both calcium imaging (RoiResponseSeries) and spiking units; choose with --nwb-data calcium|spikes");
    if (!has_calcium && !has_units)
      fail("file ", path, ": no calcium imaging (RoiResponseSeries) and no spiking units (Units) found");
    what = has_calcium ? "calcium" : "spikes";
  }
  if (what == "calcium") read_calcium(f, typed, opt, r);
  else read_spikes(f, typed, opt, r, warnings);
  read_trials(f, opt, r, warnings);

  // Animal id: subject id and session (session_description, identifier or the file name).
  std::string subject = text_scalar(f, "/general/subject/subject_id");
  std::string session = text_scalar(f, "/session_description");
  if (sanitise_id(session).empty()) session = text_scalar(f, "/identifier");
  if (sanitise_id(session).empty()) session = std::filesystem::path(path).stem().string();
  r.animal_id = sanitise_id(subject);
  r.id_origin = cat("subject_id '", subject, "'");
  if (r.animal_id.empty()) {
    r.animal_id = sanitise_id(session);
    r.id_origin = cat("session '", session, "'");
  }
  r.notes.push_back(cat("subject_id '", subject, "', session '", session, "'"));
  r.session = sanitise_id(session);
  return r;
}

}  // namespace cohortnet::ingest
