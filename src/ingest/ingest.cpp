#include "ingest/ingest.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/log.hpp"
#include "core/parallel.hpp"
#include "ingest/h5x.hpp"
#include "ingest/npy.hpp"
#include "ingest/nwb.hpp"
#include "io/animal.hpp"

namespace fs = std::filesystem;

namespace cohortnet::ingest {

namespace {

std::string trim(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  std::string out = s.substr(b, e - b);
  if (out.size() >= 2 && (out.front() == '"' || out.front() == '\'') && out.back() == out.front())
    out = out.substr(1, out.size() - 2);
  return out;
}

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char c : line) {
    if (c == '"') quoted = !quoted;
    else if ((c == ',' || c == '\t') && !quoted) out.push_back(trim(cur)), cur.clear();
    else cur += c;
  }
  out.push_back(trim(cur));
  return out;
}

std::vector<std::string> read_lines(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) fail(what, " ", path, ": cannot be read");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
std::string sanitise_id(const std::string& s) {
  std::string out;
  for (char c : s) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    if (ok) out += c;
    else if (!out.empty() && out.back() != '_') out += '_';
  }
  while (!out.empty() && (out.back() == '_' || out.back() == '.')) out.pop_back();
  while (!out.empty() && (out.front() == '.' || out.front() == '_')) out.erase(out.begin());  // no hidden files
  if (out.size() > 64) out.resize(64);
  return out;
}

void validate_options(const Options& o) {
  if (o.format != "nwb" && o.format != "npy" && o.format != "h5-array")
    fail("option --format: must be nwb, npy or h5-array, got '", o.format, "'");
  if (o.inputs.empty()) fail("option --input: give at least one input file (--input FILE, repeatable)");
  if (o.out.empty()) fail("option --out is required: the cohort folder to write");
  if (o.layout != "units-by-samples" && o.layout != "samples-by-units")
    fail("option --layout: must be units-by-samples or samples-by-units, got '", o.layout, "'");
  if (o.trials != "concatenate" && o.trials != "average")
    fail("option --trials: must be concatenate or average, got '", o.trials, "'");
  if (o.normalise != "zscore" && o.normalise != "dff-as-given" && o.normalise != "max" && o.normalise != "none")
    fail("option --normalise: must be zscore, dff-as-given, max or none, got '", o.normalise, "'");
  if (o.smooth_kernel != "gaussian" && o.smooth_kernel != "none")
    fail("option --smooth-kernel: must be gaussian or none, got '", o.smooth_kernel, "'");
  if (o.nwb_data != "auto" && o.nwb_data != "calcium" && o.nwb_data != "spikes")
    fail("option --nwb-data: must be auto, calcium or spikes, got '", o.nwb_data, "'");
  if (!(o.bin_width > 0) || !std::isfinite(o.bin_width)) fail("option --bin-width: must be > 0 s, got ", o.bin_width);
  if (!(o.smooth_width > 0) || !std::isfinite(o.smooth_width))
    fail("option --smooth-width: must be > 0 s, got ", o.smooth_width);
  if (o.sample_interval < 0 || !std::isfinite(o.sample_interval))
    fail("option --sample-interval: must be > 0 s, got ", o.sample_interval);
  if (o.format == "npy") {
    if (o.labels.empty()) fail("option --labels is required with --format npy: region label of every unit");
    if (!o.input_labels.empty() && o.input_labels.size() != o.inputs.size())
      fail("option --labels: given ", o.input_labels.size(), " times for ", o.inputs.size(),
           " --input files; give it once (shared) or once per --input, in the same order");
    if (o.sample_interval == 0) fail("option --sample-interval is required with --format npy (seconds between samples)");
    if (!o.animal_id.empty() && o.inputs.size() > 1)
      fail("option --animal-id applies to a single --input; with several, the ids are the file names");
  }
  if (o.format == "h5-array" && o.dataset.empty())
    fail("option --dataset is required with --format h5-array: the [subjects x units x time] dataset");
  if (o.format != "nwb") {
    if (!o.series.empty()) fail("option --series applies only to --format nwb");
    if (!o.condition_column.empty()) fail("option --condition-column applies only to --format nwb");
  }
  if (o.format != "npy" && !o.trial_conditions.empty()) fail("option --trial-conditions applies only to --format npy");
  if (!o.animal_id.empty() && sanitise_id(o.animal_id) != o.animal_id)
    fail("option --animal-id '", o.animal_id, "': use only letters, digits, '-', '_', '.' (e.g. '", sanitise_id(o.animal_id), "')");
}

// ---------------------------------------------------------------------------------------------
std::string RegionMap::lookup(const std::string& fine) const {
  for (auto& [k, v] : entries)
    if (k == fine) return v;
  const std::string lf = lower(fine);
  for (auto& [k, v] : entries)
    if (lower(k) == lf) return v;
  // Prefix patterns ("VISp*" covers VISp1, VISp2/3 ...): the longest one wins.
  std::size_t best = 0;
  std::string out;
  for (auto& [k, v] : entries)
    if (!k.empty() && k.back() == '*') {
      const std::string pre = k.substr(0, k.size() - 1);
      if (fine.compare(0, pre.size(), pre) == 0 && pre.size() + 1 > best) best = pre.size() + 1, out = v;
    }
  return out;
}

RegionMap read_region_map(const std::string& path) {
  RegionMap m;
  m.path = path;
  const bool ini = ends_with(lower(path), ".ini");
  auto lines = read_lines(path, "region map");
  std::map<std::string, std::pair<std::string, std::size_t>> seen;
  for (std::size_t n = 0; n < lines.size(); ++n) {
    std::string line = trim(lines[n]);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    std::string k, v;
    if (ini) {
      if (line[0] == '[') continue;  // sections only group entries
      for (std::size_t c = 1; c < line.size(); ++c)  // inline comment: " ; text" or " # text"
        if ((line[c] == ';' || line[c] == '#') && std::isspace(static_cast<unsigned char>(line[c - 1]))) {
          line = trim(line.substr(0, c));
          break;
        }
      auto eq = line.find('=');
      if (eq == std::string::npos) fail("region map ", path, " line ", n + 1, ": expected 'fine = region', got '", line, "'");
      k = trim(line.substr(0, eq));
      v = trim(line.substr(eq + 1));
    } else {
      auto f = split_csv(line);
      if (f.size() != 2) fail("region map ", path, " line ", n + 1, ": expected 'fine,region', got '", line, "'");
      k = f[0];
      v = f[1];
      const std::string lk = lower(k);
      if (m.entries.empty() && seen.empty() &&
          (lk == "fine" || lk == "acronym" || lk == "area" || lk == "label" || lk == "source" || lk == "from"))
        continue;  // header line
    }
    if (k.empty() || v.empty()) fail("region map ", path, " line ", n + 1, ": empty fine label or region");
    if (v.find(',') != std::string::npos)
      fail("region map ", path, " line ", n + 1, ": region name '", v, "' contains a comma (not allowed in cohort.ini)");
    auto it = seen.find(k);
    if (it != seen.end()) {
      if (it->second.first != v)
        fail("region map ", path, " line ", n + 1, ": '", k, "' maps to '", v, "' but line ", it->second.second,
             " maps it to '", it->second.first, "'");
      continue;
    }
    seen[k] = {v, n + 1};
    m.entries.emplace_back(k, v);
    if (std::find(m.regions.begin(), m.regions.end(), v) == m.regions.end()) m.regions.push_back(v);
  }
  if (m.entries.empty()) fail("region map ", path, ": no entries");
  return m;
}

const std::string& labels_for(const Options& opt, const std::string& input) {
  for (std::size_t i = 0; i < opt.input_labels.size() && i < opt.inputs.size(); ++i)
    if (opt.inputs[i] == input) return opt.input_labels[i];
  return opt.labels;
}

std::vector<std::string> read_labels(const std::string& path, std::int64_t n_units, const std::string& data) {
  std::vector<std::string> labels;
  if (ends_with(lower(path), ".npy")) {
    NpyArray a = read_npy(path);
    if (!a.is_string) fail("labels file ", path, ": must be a 1-D string array (dtype <U or |S), got ", a.descr);
    labels = a.strings;
  } else {
    for (auto& raw : read_lines(path, "labels file")) {
      std::string line = trim(raw);
      if (line.empty() || line[0] == '#') continue;
      auto f = split_csv(line);
      labels.push_back(f.back());  // "unit,region" CSV: the last field is the label
    }
    // A CSV header ("unit,region") makes one line too many.
    if (std::int64_t(labels.size()) == n_units + 1) labels.erase(labels.begin());
  }
  if (std::int64_t(labels.size()) != n_units)
    fail("labels file ", path, ": has ", labels.size(), " labels but ", data.empty() ? std::string("the data") : data,
         " has ", n_units, " units");
  for (std::size_t u = 0; u < labels.size(); ++u)
    if (trim(labels[u]).empty()) fail("labels file ", path, ": unit ", u, " has an empty label");
  return labels;
}

// ---------------------------------------------------------------------------------------------
namespace {

void check_finite(const std::vector<double>& v, std::int64_t n_units, std::int64_t n_samples, const std::string& file,
                  const std::string& ds) {
  for (std::int64_t u = 0; u < n_units; ++u)
    for (std::int64_t t = 0; t < n_samples; ++t) {
      double x = v[std::size_t(u * n_samples + t)];
      if (!std::isfinite(x))
        fail("file ", file, ": ", ds, " has ", std::isnan(x) ? "NaN" : "Inf", " at unit ", u, ", sample ", t);
    }
}

// An [A x B] block starting at `p` as units x samples.
void take_matrix(const double* p, std::int64_t a, std::int64_t b, bool units_first, std::vector<double>& out) {
  if (units_first) {
    out.insert(out.end(), p, p + a * b);
    return;
  }
  for (std::int64_t u = 0; u < b; ++u)
    for (std::int64_t t = 0; t < a; ++t) out.push_back(p[t * b + u]);
}

}  // namespace

std::vector<Recording> read_npy_recordings(const Options& opt) {
  std::vector<Recording> out;
  const bool ubs = opt.layout == "units-by-samples";
  for (auto& path : opt.inputs) {
    NpyArray a = read_npy(path);
    if (a.is_string) fail("file ", path, ": holds strings (", a.descr, "), not activity");
    const std::size_t nd = a.shape.size();
    if (nd != 2 && nd != 3)
      fail("file ", path, ": activity must be 2-D (", opt.layout, ") or 3-D (trials x ", opt.layout, "), got ", nd,
           "-D");
    Recording r;
    r.source = path;
    r.dataset = "array";
    r.kind = "array";
    const std::int64_t n_trials = nd == 3 ? a.shape[0] : 1;
    const std::int64_t A = a.shape[nd - 2], B = a.shape[nd - 1];
    r.n_units = ubs ? A : B;
    const std::int64_t len = ubs ? B : A;
    if (r.n_units < 1 || len < 2 || n_trials < 1)
      fail("file ", path, ": needs at least 1 unit and 2 samples per trial (shape gives ", r.n_units, " units, ", len,
           " samples; check --layout)");
    // Trials side by side per unit: unit u's series is trial 0, trial 1, ...
    std::vector<std::vector<double>> per_trial(static_cast<std::size_t>(n_trials));
    for (std::int64_t k = 0; k < n_trials; ++k)
      take_matrix(a.values.data() + k * A * B, A, B, ubs, per_trial[std::size_t(k)]);
    r.n_samples = len * n_trials;
    r.data.resize(std::size_t(r.n_units * r.n_samples));
    for (std::int64_t u = 0; u < r.n_units; ++u)
      for (std::int64_t k = 0; k < n_trials; ++k)
        std::copy_n(per_trial[std::size_t(k)].begin() + u * len, len, r.data.begin() + u * r.n_samples + k * len);
    if (nd == 3)
      for (std::int64_t k = 0; k < n_trials; ++k) r.trials.emplace_back(k * len, (k + 1) * len);
    check_finite(r.data, r.n_units, r.n_samples, path, "the array");
    r.unit_label = read_labels(labels_for(opt, path), r.n_units, cat(path, " (", opt.layout, ")"));
    for (std::int64_t u = 0; u < r.n_units; ++u) r.unit_name.push_back(cat("unit ", u, " (", r.unit_label[std::size_t(u)], ")"));
    if (!opt.trial_conditions.empty()) {
      if (nd != 3) fail("option --trial-conditions: file ", path, " is 2-D (no trials)");
      r.trial_condition = read_labels(opt.trial_conditions, n_trials, cat(path, " (trials)"));
    }
    r.sample_interval = opt.sample_interval;
    r.animal_id = opt.animal_id.empty() ? sanitise_id(fs::path(path).stem().string()) : opt.animal_id;
    r.id_origin = opt.animal_id.empty() ? cat("file name ", path) : "--animal-id";
    if (r.animal_id.empty()) fail("file ", path, ": its name gives no usable animal id; use --animal-id");
    r.notes.push_back(cat("NumPy array ", path, " (", a.descr, a.fortran_order ? ", Fortran order" : "", ", shape ",
                          nd == 3 ? cat(n_trials, "x") : std::string(), A, "x", B, ", ",
                          nd == 3 ? "trials x " : "", opt.layout, "); labels from ", labels_for(opt, path), "; sample interval ",
                          opt.sample_interval, " s (given)"));
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<Recording> read_h5_array_recordings(const Options& opt) {
  std::vector<Recording> out;
  const bool ubs = opt.layout == "units-by-samples";
  for (auto& path : opt.inputs) {
    h5::File f = h5::open_read(path, MPI_COMM_SELF);
    const std::string ds = opt.dataset;
    if (!h5x::is_dataset(f, ds)) fail("file ", path, ": dataset ", ds, " (option --dataset) is missing");
    auto dims = h5::dims(f, ds);
    if (dims.size() != 3)
      fail("file ", path, ": dataset ", ds, " must be 3-D [subjects x ", opt.layout, "], got ", dims.size(), "-D");
    const auto S = std::int64_t(dims[0]), A = std::int64_t(dims[1]), B = std::int64_t(dims[2]);
    const std::int64_t N = ubs ? A : B, T = ubs ? B : A;
    if (S < 1 || N < 1 || T < 2) fail("file ", path, ": dataset ", ds, " has no subjects, no units or < 2 samples");
    auto v = h5::read_doubles(f, ds);
    const std::string group = ds.substr(0, ds.find_last_of('/') + 1);
    // Labels: a file, a named dataset, or a region_names dataset next to the data.
    std::vector<std::string> labels;
    std::string labels_from;
    if (!opt.labels.empty()) {
      labels = read_labels(labels_for(opt, path), N, cat(path, " ", ds));
      labels_from = labels_for(opt, path);
    } else {
      std::string ld = !opt.labels_dataset.empty() ? opt.labels_dataset : (group.empty() ? "/" : group) + "region_names";
      if (!h5x::is_dataset(f, ld))
        fail("file ", path, ": no region labels: dataset ", ld, " is missing (give --labels FILE or --labels-dataset)");
      labels = h5x::read_text(f, ld);
      if (std::int64_t(labels.size()) != N)
        fail("file ", path, ": dataset ", ld, " has ", labels.size(), " labels but ", ds, " has ", N, " units");
      labels_from = ld;
    }
    std::vector<std::string> ids;
    std::string idd = !opt.ids_dataset.empty() ? opt.ids_dataset : (group.empty() ? "/" : group) + "subject_ids";
    if (h5x::is_dataset(f, idd)) {
      ids = h5x::read_text(f, idd);
      if (std::int64_t(ids.size()) != S)
        fail("file ", path, ": dataset ", idd, " has ", ids.size(), " ids but ", ds, " has ", S, " subjects");
    } else if (!opt.ids_dataset.empty()) {
      fail("file ", path, ": dataset ", idd, " (option --ids-dataset) is missing");
    }
    double dt = opt.sample_interval;
    std::string dt_from = "given";
    if (dt == 0) {
      for (const char* a : {"sample_interval", "sampling_interval_s"}) {
        for (const std::string& obj : {ds, std::string("/")})
          if (dt == 0 && h5::has_attr(f, obj, a)) {
            double x = h5::attr_double(f, obj, a);
            if (!(x > 0) || !std::isfinite(x))
              fail("file ", path, ": attribute ", a, " of ", obj, " is ", x, " (not a usable sample interval); give --sample-interval");
            dt = x;
            dt_from = cat("attribute ", a, " of ", obj);
          }
      }
      if (dt == 0) fail("file ", path, ": no sample interval in the file; give --sample-interval");
    }
    const std::string stem = sanitise_id(fs::path(path).stem().string());
    for (std::int64_t s = 0; s < S; ++s) {
      Recording r;
      r.source = path;
      r.dataset = cat(ds, "[", s, "]");
      r.kind = "array";
      r.n_units = N;
      r.n_samples = T;
      take_matrix(v.data() + s * A * B, A, B, ubs, r.data);
      check_finite(r.data, N, T, path, cat("dataset ", ds, " subject ", s));
      r.unit_label = labels;
      for (std::int64_t u = 0; u < N; ++u) r.unit_name.push_back(cat(ds, " subject ", s, " unit ", u, " (", labels[std::size_t(u)], ")"));
      r.sample_interval = dt;
      r.animal_id = ids.empty() ? cat(stem, "-s", s) : sanitise_id(ids[std::size_t(s)]);
      r.id_origin = ids.empty() ? cat("subject ", s, " of ", path) : cat("dataset ", idd, " entry ", s);
      if (r.animal_id.empty()) fail("file ", path, ": subject ", s, " has no usable id in ", idd);
      r.notes.push_back(cat("HDF5 array ", path, " dataset ", ds, " subject ", s, " of ", S, " (", opt.layout,
                            "); labels from ", labels_from, "; sample interval ", dt, " s (", dt_from, ")"));
      out.push_back(std::move(r));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
namespace {

struct Processed {
  AnimalMeta meta;
  std::vector<double> activity;  // N x T
  AnimalSummary sum;
};

// Trials -> one series: concatenated (each trial a /trial_starts entry) or averaged per condition.
void apply_trials(Recording& r, const Options& opt, std::vector<std::int64_t>& starts, std::vector<int>& behaviour,
                  std::vector<std::string>& behaviour_names, std::vector<std::string>& warnings) {
  starts = {0};
  if (r.trials.empty()) {
    if (opt.trials == "average")
      warnings.push_back(cat("file ", r.source, ": no trials; --trials average leaves the series as is"));
    return;
  }
  const bool has_cond = !r.trial_condition.empty();
  std::vector<std::string> conds;  // in order of first appearance
  std::vector<int> cond_of(r.trials.size(), 0);
  for (std::size_t k = 0; k < r.trials.size(); ++k) {
    const std::string c = has_cond ? r.trial_condition[k] : "all";
    auto it = std::find(conds.begin(), conds.end(), c);
    cond_of[k] = int(it - conds.begin());
    if (it == conds.end()) conds.push_back(c);
  }
  std::vector<std::pair<std::int64_t, std::int64_t>> segs;  // what the new series is made of
  std::vector<double> out;
  std::int64_t T = 0;
  if (opt.trials == "concatenate") {
    for (auto& s : r.trials) T += s.second - s.first;
    out.resize(std::size_t(r.n_units * T));
    for (std::int64_t u = 0; u < r.n_units; ++u) {
      std::int64_t pos = 0;
      for (auto& s : r.trials)
        for (std::int64_t t = s.first; t < s.second; ++t) out[std::size_t(u * T + pos++)] = r.data[std::size_t(u * r.n_samples + t)];
    }
    starts.clear();
    std::int64_t pos = 0;
    for (std::size_t k = 0; k < r.trials.size(); ++k) {
      starts.push_back(pos);
      const std::int64_t len = r.trials[k].second - r.trials[k].first;
      if (has_cond) behaviour.insert(behaviour.end(), std::size_t(len), cond_of[k]);
      pos += len;
    }
    r.notes.push_back(cat("trials concatenated: ", r.trials.size(), " trials, ", T, " samples (/trial_starts)",
                          has_cond ? "; condition per sample in /behaviour" : ""));
  } else {
    // Average the trials of each condition over their common length (trials cropped to the shortest).
    std::vector<std::int64_t> len(conds.size(), -1), count(conds.size(), 0);
    for (std::size_t k = 0; k < r.trials.size(); ++k) {
      auto l = r.trials[k].second - r.trials[k].first;
      auto& L = len[std::size_t(cond_of[k])];
      L = L < 0 ? l : std::min(L, l);
      ++count[std::size_t(cond_of[k])];
    }
    for (auto l : len) T += l;
    out.assign(std::size_t(r.n_units * T), 0.0);
    starts.clear();
    std::int64_t pos = 0;
    std::string desc;
    for (std::size_t c = 0; c < conds.size(); ++c) {
      starts.push_back(pos);
      for (std::size_t k = 0; k < r.trials.size(); ++k) {
        if (cond_of[k] != int(c)) continue;
        for (std::int64_t u = 0; u < r.n_units; ++u)
          for (std::int64_t t = 0; t < len[c]; ++t)
            out[std::size_t(u * T + pos + t)] +=
                r.data[std::size_t(u * r.n_samples + r.trials[k].first + t)] / double(count[c]);
      }
      if (has_cond) behaviour.insert(behaviour.end(), std::size_t(len[c]), int(c));
      desc += cat(c ? ", " : "", conds[c], " (", count[c], " trials, ", len[c], " samples)");
      pos += len[c];
    }
    r.notes.push_back(cat("trials averaged per condition: ", desc, "; one /trial_starts entry per condition"));
  }
  if (has_cond) behaviour_names = conds;
  r.data = std::move(out);
  r.n_samples = T;
}

Processed process(Recording r, const Options& opt, const RegionMap* map, std::vector<std::string>& warnings) {
  Processed p;
  p.sum.source = r.source;
  p.sum.dropped_no_spikes = r.dropped_no_spikes;
  p.sum.n_trials = std::max<std::int64_t>(1, std::int64_t(r.trials.size()));
  if (opt.normalise == "dff-as-given") {
    if (r.kind == "spikes")
      fail("option --normalise dff-as-given: file ", r.source, " holds spike rates, not dF/F (use zscore, max or none)");
    if (r.kind == "calcium" && !r.is_dff)
      fail("option --normalise dff-as-given: file ", r.source, ": series ", r.dataset,
           " is not in a DfOverF container (raw fluorescence; use zscore, max or none)");
  }
  std::vector<std::int64_t> starts;
  std::vector<int> behaviour;
  std::vector<std::string> behaviour_names;
  apply_trials(r, opt, starts, behaviour, behaviour_names, warnings);
  if (r.n_samples < 2) fail("file ", r.source, ": fewer than 2 samples after cutting trials");

  // Fine label -> study region; units in no mapped region are dropped.
  std::vector<std::string> region_of(std::size_t(r.n_units));
  std::map<std::string, std::int64_t> unmapped;
  for (std::int64_t u = 0; u < r.n_units; ++u) {
    const std::string& fine = r.unit_label[std::size_t(u)];
    region_of[std::size_t(u)] = map ? map->lookup(fine) : fine;
    if (region_of[std::size_t(u)].find(',') != std::string::npos)
      fail("file ", r.source, ": ", r.unit_name[std::size_t(u)], " region '", region_of[std::size_t(u)],
           "' contains a comma (not allowed in cohort.ini; use --region-map)");
    if (region_of[std::size_t(u)].empty()) ++unmapped[fine];
  }
  // Constant units cannot be z-scored or max-scaled: dropped, with a warning.
  std::vector<char> keep(std::size_t(r.n_units), 1);
  for (std::int64_t u = 0; u < r.n_units; ++u) {
    if (region_of[std::size_t(u)].empty()) {
      keep[std::size_t(u)] = 0;
      ++p.sum.dropped_unmapped;
      continue;
    }
    if (opt.normalise == "zscore" || opt.normalise == "max") {
      const double* x = r.data.data() + u * r.n_samples;
      const auto mm = std::minmax_element(x, x + r.n_samples);
      if (*mm.first == *mm.second && (opt.normalise == "zscore" || *mm.first == 0)) {
        warnings.push_back(cat("file ", r.source, ": ", r.unit_name[std::size_t(u)], " is constant (", *mm.first,
                               "); cannot be normalised with ", opt.normalise, "; dropped"));
        keep[std::size_t(u)] = 0;
        ++p.sum.dropped_constant;
      }
    }
  }
  if (!unmapped.empty()) {
    std::string list;
    int shown = 0;
    for (auto& [k, n] : unmapped)
      if (shown++ < 12) list += cat(list.empty() ? "" : ", ", k, " (", n, ")");
    if (unmapped.size() > 12) list += cat(", ... ", unmapped.size() - 12, " more");
    warnings.push_back(cat("file ", r.source, ": ", p.sum.dropped_unmapped, " of ", r.n_units,
                           " units are in no region of the map ", map->path, " and were dropped: ", list));
  }
  std::int64_t N = 0;
  for (char k : keep) N += k;
  if (N == 0) {
    if (map && p.sum.dropped_unmapped == r.n_units)
      fail("region map ", map->path, ": leaves no unit of file ", r.source, " in any region (labels there: ",
           r.unit_label.empty() ? "" : r.unit_label[0], unmapped.size() > 1 ? ", ..." : "", ")");
    fail("file ", r.source, ": no unit left (", p.sum.dropped_unmapped, " unmapped, ", p.sum.dropped_constant, " constant, ",
         r.dropped_no_spikes, " without spikes)");
  }

  // Region order: the map's order, else first appearance.
  std::vector<std::string> order = map ? map->regions : std::vector<std::string>();
  for (std::int64_t u = 0; u < r.n_units; ++u)
    if (keep[std::size_t(u)] && std::find(order.begin(), order.end(), region_of[std::size_t(u)]) == order.end())
      order.push_back(region_of[std::size_t(u)]);
  std::vector<std::string> present;
  for (auto& g : order)
    for (std::int64_t u = 0; u < r.n_units; ++u)
      if (keep[std::size_t(u)] && region_of[std::size_t(u)] == g) {
        present.push_back(g);
        break;
      }

  AnimalMeta& m = p.meta;
  m.animal_id = r.animal_id;
  m.species = opt.species;
  m.atlas = opt.atlas;
  m.sample_interval = r.sample_interval;
  m.n_units = N;
  m.n_samples = r.n_samples;
  m.region_names = present;
  m.trial_starts = starts;
  m.behaviour = behaviour;
  m.behaviour_names = behaviour_names;
  p.activity.reserve(std::size_t(N * r.n_samples));
  for (std::int64_t u = 0; u < r.n_units; ++u) {
    if (!keep[std::size_t(u)]) continue;
    m.unit_region.push_back(int(std::find(present.begin(), present.end(), region_of[std::size_t(u)]) - present.begin()));
    double* x = r.data.data() + u * r.n_samples;
    const auto T = std::size_t(r.n_samples);
    if (opt.normalise == "zscore") {
      double mean = 0, var = 0;
      for (std::size_t t = 0; t < T; ++t) mean += x[t];
      mean /= double(T);
      for (std::size_t t = 0; t < T; ++t) var += (x[t] - mean) * (x[t] - mean);
      const double sd = std::sqrt(var / double(T));
      for (std::size_t t = 0; t < T; ++t) x[t] = (x[t] - mean) / sd;
    } else if (opt.normalise == "max") {
      double mx = 0;
      for (std::size_t t = 0; t < T; ++t) mx = std::max(mx, std::abs(x[t]));
      for (std::size_t t = 0; t < T; ++t) x[t] /= mx;
    }
    p.activity.insert(p.activity.end(), x, x + T);
  }

  std::string prov = cat("cohortnet ingest ", COHORTNET_VERSION, " --format ", opt.format, ": ");
  for (std::size_t k = 0; k < r.notes.size(); ++k) prov += (k ? "; " : "") + r.notes[k];
  prov += cat("; animal id ", m.animal_id, " from ", r.id_origin);
  if (map) prov += cat("; region map ", map->path, " (", p.sum.dropped_unmapped, " units unmapped, dropped)");
  else prov += "; regions are the labels as given (no --region-map)";
  if (p.sum.dropped_constant) prov += cat("; ", p.sum.dropped_constant, " constant units dropped");
  const char* what = opt.normalise == "zscore" ? "z-scored per unit (mean 0, sd 1 over the whole series)"
                     : opt.normalise == "max" ? "divided by each unit's max |value|"
                     : opt.normalise == "dff-as-given" ? "dF/F as stored in the file, unchanged"
                                                       : "values as read (no normalisation)";
  prov += cat("; normalisation ", opt.normalise, ": ", what);
  if (!opt.config.empty()) prov += cat("\n", opt.config);
  m.provenance = prov;
  validate_meta(m, r.source);

  p.sum.animal_id = m.animal_id;
  p.sum.n_units = N;
  p.sum.n_samples = m.n_samples;
  p.sum.regions = present;
  return p;
}

// ---- broadcast of rank 0's results (a flat byte buffer) ----
struct Packer {
  std::string b;
  void u64(std::uint64_t v) { b.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void i64(std::int64_t v) { u64(std::uint64_t(v)); }
  void f64(double v) { b.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void str(const std::string& s) { u64(s.size()); b += s; }
  void strs(const std::vector<std::string>& v) { u64(v.size()); for (auto& s : v) str(s); }
  template <class T>
  void vec(const std::vector<T>& v) {
    u64(v.size());
    b.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }
};
struct Unpacker {
  const std::string& b;
  std::size_t i = 0;
  std::uint64_t u64() {
    std::uint64_t v;
    std::memcpy(&v, b.data() + i, sizeof v);
    i += sizeof v;
    return v;
  }
  std::int64_t i64() { return std::int64_t(u64()); }
  double f64() {
    double v;
    std::memcpy(&v, b.data() + i, sizeof v);
    i += sizeof v;
    return v;
  }
  std::string str() {
    auto n = std::size_t(u64());
    std::string s = b.substr(i, n);
    i += n;
    return s;
  }
  std::vector<std::string> strs() {
    std::vector<std::string> v(static_cast<std::size_t>(u64()));
    for (auto& s : v) s = str();
    return v;
  }
  template <class T>
  std::vector<T> vec() {
    std::vector<T> v(static_cast<std::size_t>(u64()));
    if (!v.empty()) std::memcpy(v.data(), b.data() + i, v.size() * sizeof(T));
    i += v.size() * sizeof(T);
    return v;
  }
};

void pack(Packer& k, const Processed& p) {
  const AnimalMeta& m = p.meta;
  k.str(m.animal_id), k.str(m.species), k.str(m.atlas), k.str(m.provenance);
  k.f64(m.sample_interval), k.i64(m.n_units), k.i64(m.n_samples);
  k.strs(m.region_names), k.vec(m.unit_region), k.vec(m.trial_starts), k.vec(m.behaviour), k.strs(m.behaviour_names);
  k.vec(p.activity);
  const AnimalSummary& s = p.sum;
  k.str(s.path), k.str(s.source), k.i64(s.n_trials), k.i64(s.dropped_unmapped), k.i64(s.dropped_no_spikes),
      k.i64(s.dropped_constant);
}

Processed unpack(Unpacker& k) {
  Processed p;
  AnimalMeta& m = p.meta;
  m.animal_id = k.str(), m.species = k.str(), m.atlas = k.str(), m.provenance = k.str();
  m.sample_interval = k.f64(), m.n_units = k.i64(), m.n_samples = k.i64();
  m.region_names = k.strs(), m.unit_region = k.vec<int>(), m.trial_starts = k.vec<std::int64_t>();
  m.behaviour = k.vec<int>(), m.behaviour_names = k.strs();
  p.activity = k.vec<double>();
  AnimalSummary& s = p.sum;
  s.path = k.str(), s.source = k.str(), s.n_trials = k.i64(), s.dropped_unmapped = k.i64(),
  s.dropped_no_spikes = k.i64(), s.dropped_constant = k.i64();
  s.animal_id = m.animal_id, s.n_units = m.n_units, s.n_samples = m.n_samples, s.regions = m.region_names;
  return p;
}

// A lab ingests animals one call at a time (each with its own labels): an existing cohort.ini in
// --out keeps its animals, and the new ones are checked against them before anything is written:
// an animal id already there is an error (unless it is the same input ingested again, which
// replaces it), the region list becomes the union (existing order first), and a different sample
// interval is a warning. Collective.
void add_to_existing(const Options& opt, const std::vector<Processed>& animals, Cohort& cohort, MPI_Comm comm) {
  int exists = comm_rank(comm) == 0 && fs::exists(fs::path(opt.out) / "cohort.ini") ? 1 : 0;
  MPI_Bcast(&exists, 1, MPI_INT, 0, comm);
  if (!exists) return;
  const Cohort before = read_cohort(opt.out, comm);
  std::vector<CohortAnimal> kept;
  collective(comm, [&] {
    for (const CohortAnimal& b : before.animals) {
      const Processed* again = nullptr;
      for (auto& a : animals)
        if (a.meta.animal_id == b.animal_id) again = &a;
      if (!again) {
        kept.push_back(b);
        if (!b.problem.empty()) log::warn(comm, "ingest: cohort ", opt.out, ": ", b.problem);
        else if (!animals.empty() && std::fabs(b.sample_interval - animals.front().meta.sample_interval) >
                                         1e-9 * std::max(1.0, b.sample_interval))
          log::warn(comm, "ingest: cohort ", opt.out, ": animal ", b.animal_id, " has sample interval ",
                    b.sample_interval, " s, ", animals.front().meta.animal_id, " ", animals.front().meta.sample_interval,
                    " s; the fit handles each animal at its own interval, but compare with care");
        continue;
      }
      std::string prov;
      if (b.problem.empty()) {
        h5::File f = h5::open_read(b.path, MPI_COMM_SELF);
        if (h5::has_attr(f, "/", "provenance")) prov = h5::attr_string(f, "/", "provenance");
      }
      if (prov.find(" from ") == std::string::npos || prov.find(again->sum.source) == std::string::npos)
        fail("option --input ", again->sum.source, ": animal id '", b.animal_id, "' is already in cohort ", opt.out,
             " (", b.path, ", from another input); give it another id (--animal-id) or remove it from cohort.ini");
      log::info(comm, "ingest: ", b.animal_id, " is ingested again from ", again->sum.source, "; it replaces ", b.path);
    }
  });
  std::vector<std::string> regions = before.regions;
  for (auto& r : cohort.regions)
    if (std::find(regions.begin(), regions.end(), r) == regions.end()) regions.push_back(r);
  cohort.regions = regions;
  cohort.name = opt.name.empty() ? before.name : opt.name;
  cohort.animals = kept;
}

}  // namespace

Summary run_ingest(const Options& opt, MPI_Comm comm) {
  const int rank = comm_rank(comm);
  std::vector<Processed> animals;
  std::vector<std::string> cohort_regions;
  std::string cohort_name;
  std::string buffer;
  collective(comm, [&] {
    validate_options(opt);
    if (rank != 0) return;
    std::vector<std::string> warnings;
    RegionMap map;
    if (!opt.region_map.empty()) map = read_region_map(opt.region_map);
    std::vector<Recording> recs;
    if (opt.format == "nwb")
      for (auto& in : opt.inputs) recs.push_back(read_nwb(in, opt, warnings));
    else if (opt.format == "npy")
      recs = read_npy_recordings(opt);
    else
      recs = read_h5_array_recordings(opt);

    // Unique ids: several sessions of one subject get the session appended.
    std::map<std::string, int> n_with;
    for (auto& r : recs) ++n_with[r.animal_id];
    for (auto& r : recs)
      if (n_with[r.animal_id] > 1 && !r.session.empty() && r.session != r.animal_id) {
        r.id_origin += cat(" + session '", r.session, "'");
        r.animal_id = sanitise_id(r.animal_id + "_" + r.session);
      }
    std::map<std::string, const Recording*> by_id;
    for (auto& r : recs) {
      auto it = by_id.find(r.animal_id);
      if (it != by_id.end())
        fail("animal id '", r.animal_id, "' is given twice: by ", it->second->source, " (", it->second->id_origin, ") and ",
             r.source, " (", r.id_origin, ")");
      by_id[r.animal_id] = &r;
    }
    for (auto& r : recs) {
      animals.push_back(process(std::move(r), opt, opt.region_map.empty() ? nullptr : &map, warnings));
      animals.back().sum.path = (fs::path(opt.out) / (animals.back().meta.animal_id + ".h5")).string();
    }
    for (auto& w : warnings) log::warn(comm, w);
    // Cohort regions: map order (if any), else first appearance.
    std::vector<std::string> order = opt.region_map.empty() ? std::vector<std::string>() : map.regions;
    for (auto& a : animals)
      for (auto& g : a.meta.region_names)
        if (std::find(order.begin(), order.end(), g) == order.end()) order.push_back(g);
    for (auto& g : order) {
      bool used = false;
      for (auto& a : animals) used = used || std::count(a.meta.region_names.begin(), a.meta.region_names.end(), g);
      if (used) cohort_regions.push_back(g);
      else log::warn(comm, "region map ", map.path, ": region '", g, "' gets no unit in any animal (left out of the cohort)");
    }
    std::error_code ec;
    fs::create_directories(opt.out, ec);
    if (!fs::is_directory(opt.out)) fail("option --out ", opt.out, ": cannot create the cohort folder");
    Packer k;
    k.u64(animals.size());
    for (auto& a : animals) pack(k, a);
    k.strs(cohort_regions);
    buffer = std::move(k.b);
  });
  bcast_string(buffer, comm);
  if (rank != 0) {
    Unpacker k{buffer};
    animals.resize(std::size_t(k.u64()));
    for (auto& a : animals) a = unpack(k);
    cohort_regions = k.strs();
  }

  Summary sum;
  Cohort cohort;
  cohort.dir = opt.out;
  cohort.name = opt.name.empty() ? fs::path(opt.out).lexically_normal().filename().string() : opt.name;
  if (cohort.name.empty()) cohort.name = fs::path(opt.out).lexically_normal().parent_path().filename().string();
  cohort.regions = cohort_regions;
  add_to_existing(opt, animals, cohort, comm);
  const std::string norm = opt.normalise;
  for (auto& a : animals) {
    const std::string final_path = a.sum.path;
    const std::string tmp = (fs::path(opt.out) / ("." + a.meta.animal_id + ".h5.ingest-tmp")).string();
    RowRange rows = own_rows(PetscInt(a.meta.n_units), comm);
    std::vector<double> local(a.activity.begin() + rows.begin * a.meta.n_samples,
                              a.activity.begin() + rows.end * a.meta.n_samples);
    write_animal(tmp, a.meta, rows, local, {}, comm);
    // The normalisation as its own attribute, then the file goes to its final name in one rename.
    {
      h5::File f = h5::open_rw(tmp, comm);
      h5::set_attr(f, "/", "normalisation", norm);
      h5::close(f);
    }
    std::string err;
    if (rank == 0) {
      std::error_code ec;
      fs::rename(tmp, final_path, ec);
      if (ec) err = cat("file ", final_path, ": cannot be renamed into place (", ec.message(), ")");
    }
    agree(comm, err);
    CohortAnimal an;
    an.animal_id = a.meta.animal_id;
    an.path = final_path;
    an.n_units = a.meta.n_units;
    an.n_samples = a.meta.n_samples;
    cohort.animals.push_back(an);
    sum.animals.push_back(a.sum);
    log::info(comm, "ingest: ", a.meta.animal_id, " <- ", a.sum.source, ": ", a.meta.n_units, " units x ",
              a.meta.n_samples, " samples (dt ", a.meta.sample_interval, " s, ", a.meta.trial_starts.size(),
              " trial(s)), regions ", [&] {
                std::string s;
                for (auto& g : a.meta.region_names) s += (s.empty() ? "" : ", ") + g;
                return s;
              }(),
              a.sum.dropped_unmapped + a.sum.dropped_no_spikes + a.sum.dropped_constant
                  ? cat("; dropped ", a.sum.dropped_unmapped, " unmapped, ", a.sum.dropped_no_spikes, " without spikes, ",
                        a.sum.dropped_constant, " constant")
                  : std::string());
  }
  write_cohort_manifest(cohort, comm);
  cohort_regions = cohort.regions;
  sum.regions = cohort_regions;
  sum.manifest = (fs::path(opt.out) / "cohort.ini").string();
  log::info(comm, "ingest: wrote ", animals.size(), " animal(s) and ", sum.manifest, " (regions: ", [&] {
    std::string s;
    for (auto& g : cohort_regions) s += (s.empty() ? "" : ", ") + g;
    return s;
  }(), ")");
  return sum;
}

}  // namespace cohortnet::ingest
