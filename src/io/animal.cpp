#include "io/animal.hpp"

#include <unistd.h>

#include <algorithm>
#include <numeric>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/text.hpp"

namespace cohortnet {

namespace fs = std::filesystem;

std::vector<std::int64_t> AnimalMeta::units_of(int region) const {
  std::vector<std::int64_t> u;
  for (size_t i = 0; i < unit_region.size(); ++i)
    if (unit_region[i] == region) u.push_back(std::int64_t(i));
  return u;
}

void validate_meta(const AnimalMeta& m, const std::string& where) {
  const std::string at = "file " + where + ": ";
  if (m.n_units < 1) fail(at, "dataset /activity has no units (0 rows)");
  if (m.n_samples < 2) fail(at, "dataset /activity has ", m.n_samples, " samples; at least 2 are needed");
  if (!(m.sample_interval > 0) || !std::isfinite(m.sample_interval))
    fail(at, "attribute sample_interval must be a positive number of seconds, is ", m.sample_interval);
  if (m.region_names.empty()) fail(at, "dataset /region_names is empty");
  std::set<std::string> seen;
  for (auto& r : m.region_names) {
    if (r.empty()) fail(at, "dataset /region_names has an empty name");
    if (!seen.insert(r).second) fail(at, "dataset /region_names lists region '", r, "' twice");
  }
  if (std::int64_t(m.unit_region.size()) != m.n_units)
    fail(at, "dataset /unit_region has ", m.unit_region.size(), " labels but /activity has ", m.n_units, " units");
  std::vector<std::int64_t> count(m.region_names.size(), 0);
  for (size_t i = 0; i < m.unit_region.size(); ++i) {
    int q = m.unit_region[i];
    if (q < 0 || q >= m.n_regions())
      fail(at, "dataset /unit_region: unit ", i, " has label ", q, ", outside the ", m.n_regions(),
           " regions of /region_names");
    ++count[size_t(q)];
  }
  for (size_t q = 0; q < count.size(); ++q)
    if (count[q] == 0) fail(at, "region '", m.region_names[q], "' (in /region_names) has no units in /unit_region");
  if (m.trial_starts.empty() || m.trial_starts[0] != 0)
    fail(at, "dataset /trial_starts must start with sample 0");
  for (size_t i = 1; i < m.trial_starts.size(); ++i)
    if (m.trial_starts[i] <= m.trial_starts[i - 1])
      fail(at, "dataset /trial_starts must be strictly ascending (entry ", i, ")");
  if (m.trial_starts.back() >= m.n_samples)
    fail(at, "dataset /trial_starts has start ", m.trial_starts.back(), " beyond the ", m.n_samples, " samples");
  if (!m.behaviour.empty()) {
    if (std::int64_t(m.behaviour.size()) != m.n_samples)
      fail(at, "dataset /behaviour has ", m.behaviour.size(), " entries but /activity has ", m.n_samples, " samples");
    for (size_t t = 0; t < m.behaviour.size(); ++t)
      if (m.behaviour[t] < 0 || m.behaviour[t] >= int(m.behaviour_names.size()))
        fail(at, "dataset /behaviour: sample ", t, " has state ", m.behaviour[t], ", outside the ",
             m.behaviour_names.size(), " states of /behaviour_names");
  }
  for (char c : m.animal_id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      fail(at, "attribute animal_id '", m.animal_id, "' may only use letters, digits, '-', '_' and '.'");
  if (m.animal_id.empty() || m.animal_id[0] == '.' || m.animal_id[0] == '-')
    fail(at, "attribute animal_id '", m.animal_id, "' must be non-empty and start with a letter, digit or '_'");
}

namespace {

AnimalMeta read_meta_local(const h5::File& f) {
  const std::string& path = f.path;
  AnimalMeta m;
  m.path = path;
  if (!h5::has_attr(f, "/", "format"))
    fail("file ", path, ": not a cohortnet animal file (attribute 'format' missing; see docs/format.md)");
  std::string format = h5::attr_string(f, "/", "format");
  if (format != kAnimalFormat)
    fail("file ", path, ": attribute format is '", format, "', expected '", kAnimalFormat, "'");
  std::int64_t version = h5::has_attr(f, "/", "format_version") ? h5::attr_int(f, "/", "format_version") : 1;
  if (version > kAnimalFormatVersion)
    fail("file ", path, ": format_version ", version, " is newer than this cohortnet reads (", kAnimalFormatVersion, ")");
  if (!h5::has_attr(f, "/", "animal_id")) fail("file ", path, ": attribute animal_id is missing");
  m.animal_id = h5::attr_string(f, "/", "animal_id");
  if (!h5::has_attr(f, "/", "sample_interval")) fail("file ", path, ": attribute sample_interval is missing");
  m.sample_interval = h5::attr_double(f, "/", "sample_interval");
  auto opt = [&](const char* name) { return h5::has_attr(f, "/", name) ? h5::attr_string(f, "/", name) : std::string(); };
  m.species = opt("species");
  m.atlas = opt("atlas");
  m.provenance = opt("provenance");

  auto shape = h5::dims(f, "/activity");
  if (shape.size() != 2) fail("file ", path, ": dataset /activity must be 2-D [units x samples], has ", shape.size(), " dimensions");
  m.n_units = std::int64_t(shape[0]);
  m.n_samples = std::int64_t(shape[1]);
  m.region_names = h5::read_strings(f, "/region_names");
  auto labels = h5::read_ints(f, "/unit_region");
  m.unit_region.assign(labels.begin(), labels.end());
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] != m.unit_region[i]) fail("file ", path, ": dataset /unit_region: label of unit ", i, " is out of range");
  m.trial_starts = h5::exists(f, "/trial_starts") ? h5::read_ints(f, "/trial_starts") : std::vector<std::int64_t>{0};
  if (h5::exists(f, "/behaviour")) {
    auto b = h5::read_ints(f, "/behaviour");
    m.behaviour.assign(b.begin(), b.end());
    if (!h5::exists(f, "/behaviour_names")) fail("file ", path, ": dataset /behaviour needs /behaviour_names");
    m.behaviour_names = h5::read_strings(f, "/behaviour_names");
  }
  if (h5::exists(f, "/inputs")) {
    auto s = h5::dims(f, "/inputs");
    if (s.size() != 2 || std::int64_t(s[1]) != m.n_samples)
      fail("file ", path, ": dataset /inputs must be [inputs x ", m.n_samples, " samples]");
    if (!h5::exists(f, "/input_names")) fail("file ", path, ": dataset /inputs needs /input_names");
    m.input_names = h5::read_strings(f, "/input_names");
    if (m.input_names.size() != s[0])
      fail("file ", path, ": dataset /input_names has ", m.input_names.size(), " names for ", s[0], " inputs");
  }
  validate_meta(m, path);
  return m;
}

void check_finite(const double* v, size_t n, std::int64_t cols, std::int64_t row0, const std::string& path,
                  const char* dataset) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i]))
      fail("file ", path, ": dataset ", dataset, " has ", std::isnan(v[i]) ? "NaN" : "Inf", " at unit ",
           row0 + std::int64_t(i) / cols, ", sample ", std::int64_t(i) % cols);
}
void check_finite(const std::vector<double>& v, std::int64_t cols, std::int64_t row0, const std::string& path,
                  const char* dataset) {
  check_finite(v.data(), v.size(), cols, row0, path, dataset);
}

}  // namespace

AnimalMeta read_animal_meta(const std::string& path, MPI_Comm comm) {
  h5::File f = h5::open_read(path, comm);
  AnimalMeta m;
  // Every rank reads the (small) metadata; errors are agreed so no rank is left waiting.
  collective(comm, [&] { m = read_meta_local(f); });
  return m;
}

namespace {

std::uint64_t read_limit(const fs::path& p) {
  std::ifstream c(p);
  std::string s;
  if (!(c >> s) || s == "max") return 0;
  try {
    return std::stoull(s);
  } catch (...) {
    return 0;
  }
}

}  // namespace

std::vector<std::uint64_t> job_memory_limits(const std::string& proc_cgroup, const std::string& cgroup_root) {
  std::vector<std::uint64_t> out;
  // /proc/self/cgroup: "0::/path" (v2) or "N:memory:/path" (v1); the limit may sit on the path or a parent.
  std::ifstream in(proc_cgroup);
  std::string line;
  while (std::getline(in, line)) {
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    fs::path rel = fs::path(line.substr(b + 1)).relative_path();
    const bool v2 = controllers.empty();
    bool v1 = false;
    for (const std::string& k : split_list(controllers)) v1 |= k == "memory";
    if (!v2 && !v1) continue;
    const fs::path base = v2 ? fs::path(cgroup_root) : fs::path(cgroup_root) / "memory";
    const char* file = v2 ? "memory.max" : "memory.limit_in_bytes";
    for (fs::path p = rel;; p = p.parent_path()) {
      if (std::uint64_t lim = read_limit(base / p / file)) out.push_back(lim);
      if (p.empty()) break;
    }
  }
  if (out.empty()) {  // no /proc/self/cgroup: the root's files
    for (const char* f : {"memory.max", "memory/memory.limit_in_bytes"})
      if (std::uint64_t lim = read_limit(fs::path(cgroup_root) / f)) out.push_back(lim);
  }
  // Slurm: --mem-per-cpu (MB) x the CPUs of this node, or --mem (MB per node).
  const char* per_cpu = std::getenv("SLURM_MEM_PER_CPU");
  const char* per_node = std::getenv("SLURM_MEM_PER_NODE");
  const char* cpus = std::getenv("SLURM_CPUS_ON_NODE");
  if (per_node && std::atoll(per_node) > 0) out.push_back(std::uint64_t(std::atoll(per_node)) << 20);
  if (per_cpu && std::atoll(per_cpu) > 0)
    out.push_back((std::uint64_t(std::atoll(per_cpu)) << 20) * std::uint64_t(std::max(1LL, cpus ? std::atoll(cpus) : 1LL)));
  return out;
}

std::uint64_t available_memory_bytes() {
  std::uint64_t avail = 0;
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kb;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") {
      avail = kb * 1024;
      break;
    }
  if (avail == 0) avail = std::uint64_t(sysconf(_SC_PHYS_PAGES)) * std::uint64_t(sysconf(_SC_PAGE_SIZE));
  // A job's limit may be smaller than the machine's memory: its own cgroup (not only the root's)
  // and Slurm's per-CPU / per-node request.
  for (const std::uint64_t lim : job_memory_limits())
    if (lim > 0 && lim < avail) avail = lim;
  return avail;
}

UnitOrder UnitOrder::by_region(const std::vector<int>& unit_region) {
  UnitOrder o;
  if (std::is_sorted(unit_region.begin(), unit_region.end())) return o;
  o.file_unit.resize(unit_region.size());
  std::iota(o.file_unit.begin(), o.file_unit.end(), std::int64_t(0));
  std::stable_sort(o.file_unit.begin(), o.file_unit.end(),
                   [&](std::int64_t a, std::int64_t b) { return unit_region[size_t(a)] < unit_region[size_t(b)]; });
  return o;
}

UnitOrder::FileRows UnitOrder::file_rows(RowRange rows) const {
  FileRows fr;
  if (rows.count() <= 0) return fr;
  if (is_file_order()) {
    fr.runs = {rows};
    fr.fit_row.resize(size_t(rows.count()));
    std::iota(fr.fit_row.begin(), fr.fit_row.end(), PetscInt(0));
    return fr;
  }
  std::vector<std::pair<std::int64_t, PetscInt>> f;
  for (PetscInt i = 0; i < rows.count(); ++i) f.emplace_back(file_unit[size_t(rows.begin + i)], i);
  std::sort(f.begin(), f.end());
  for (const auto& [file, local] : f) {
    if (!fr.runs.empty() && fr.runs.back().end == PetscInt(file)) ++fr.runs.back().end;
    else fr.runs.push_back(RowRange{PetscInt(file), PetscInt(file) + 1});
    fr.fit_row.push_back(local);
  }
  return fr;
}

std::vector<double> UnitOrder::to_file_order(const FileRows& fr, const double* local, std::int64_t cols,
                                             bool cols_are_units) const {
  std::vector<double> out(fr.fit_row.size() * size_t(cols));
  for (size_t r = 0; r < fr.fit_row.size(); ++r) {
    const double* in = local + size_t(fr.fit_row[r]) * size_t(cols);
    double* o = &out[r * size_t(cols)];
    if (cols_are_units && !is_file_order())
      for (std::int64_t j = 0; j < cols; ++j) o[file_unit[size_t(j)]] = in[j];
    else
      std::copy_n(in, size_t(cols), o);
  }
  return out;
}

void UnitOrder::to_file_order_in_place(const FileRows& fr, std::vector<double>& local, std::int64_t cols,
                                       bool cols_are_units) const {
  if (is_file_order()) return;
  const size_t c = size_t(cols), n = fr.fit_row.size();
  std::vector<double> tmp(c);
  if (cols_are_units)
    for (size_t r = 0; r < n; ++r) {
      double* row = &local[r * c];
      for (size_t j = 0; j < c; ++j) tmp[size_t(file_unit[j])] = row[j];
      std::copy(tmp.begin(), tmp.end(), row);
    }
  // Row r of the result is row fit_row[r] of the input: follow each cycle of that permutation.
  std::vector<char> done(n, 0);
  for (size_t start = 0; start < n; ++start) {
    if (done[start]) continue;
    std::copy_n(&local[start * c], c, tmp.begin());
    size_t r = start;
    for (;;) {
      done[r] = 1;
      const size_t from = size_t(fr.fit_row[r]);
      if (from == start) {
        std::copy(tmp.begin(), tmp.end(), &local[r * c]);
        break;
      }
      std::copy_n(&local[from * c], c, &local[r * c]);
      r = from;
    }
  }
}

AnimalData read_animal(const std::string& path, MPI_Comm comm, bool by_region) {
  h5::File f = h5::open_read(path, comm);
  AnimalData a;
  collective(comm, [&] { a.meta = read_meta_local(f); });
  a.rows = own_rows(PetscInt(a.meta.n_units), comm);
  // Refuse sizes this rank cannot hold before allocating (with headroom for the rest of the work).
  const double need = double(a.rows.count()) * double(a.meta.n_samples) * 8.0 +
                      double(a.meta.input_names.size()) * double(a.meta.n_samples) * 8.0;
  const double have = double(available_memory_bytes());
  std::string err;
  if (need > 0.8 * have)
    err = cat("file ", path, ": this rank's share of /activity needs ", need / 1e9, " GB but only ", have / 1e9,
              " GB are available; run with more ranks or nodes");
  agree(comm, err);
  if (by_region) a.order = UnitOrder::by_region(a.meta.unit_region);
  if (a.order.is_file_order()) {
    a.activity = h5::read_rows(f, "/activity", a.rows);
    collective(comm, [&] { check_finite(a.activity, a.meta.n_samples, a.rows.begin, path, "/activity"); });
  } else {
    // This rank's units in the fit's order: the file rows they come from (ascending runs), read
    // once, checked naming the file row, then put in fit order; unit_region in that order.
    const UnitOrder::FileRows fr = a.order.file_rows(a.rows);
    const std::vector<double> raw = h5::read_row_runs(f, "/activity", fr.runs);
    const size_t T = size_t(a.meta.n_samples);
    collective(comm, [&] {
      size_t r = 0;
      for (const RowRange& run : fr.runs) {
        check_finite(&raw[r * T], size_t(run.count()) * T, a.meta.n_samples, run.begin, path, "/activity");
        r += size_t(run.count());
      }
    });
    a.activity.assign(raw.size(), 0.0);
    for (size_t r = 0; r < fr.fit_row.size(); ++r) std::copy_n(&raw[r * T], T, &a.activity[size_t(fr.fit_row[r]) * T]);
    std::vector<int> ur(a.meta.unit_region.size());
    for (size_t k = 0; k < ur.size(); ++k) ur[k] = a.meta.unit_region[size_t(a.order.file_unit[k])];
    a.meta.unit_region = ur;
  }
  if (!a.meta.input_names.empty()) {
    a.inputs = h5::read_doubles(f, "/inputs");
    collective(comm, [&] { check_finite(a.inputs, a.meta.n_samples, 0, path, "/inputs"); });
  }
  return a;
}

void write_animal(const std::string& path, const AnimalMeta& m, RowRange rows, const std::vector<double>& local,
                  const std::vector<double>& inputs, MPI_Comm comm) {
  collective(comm, [&] {
    validate_meta(m, path);
    RowRange want = own_rows(PetscInt(m.n_units), comm);
    if (want.begin != rows.begin || want.end != rows.end)
      fail("write_animal ", path, ": rows [", rows.begin, ",", rows.end, ") are not this rank's own rows");
    if (local.size() != size_t(rows.count()) * size_t(m.n_samples))
      fail("write_animal ", path, ": local activity has ", local.size(), " values, expected ",
           rows.count() * m.n_samples);
    if (inputs.size() != m.input_names.size() * size_t(m.n_samples))
      fail("write_animal ", path, ": inputs have ", inputs.size(), " values, expected ",
           m.input_names.size() * size_t(m.n_samples));
  });
  h5::AtomicFile out(path, comm);
  h5::File& f = out.file();
  h5::set_attr(f, "/", "format", kAnimalFormat);
  h5::set_attr(f, "/", "format_version", kAnimalFormatVersion);
  h5::set_attr(f, "/", "animal_id", m.animal_id);
  h5::set_attr(f, "/", "sample_interval", m.sample_interval);
  h5::set_attr(f, "/", "species", m.species);
  h5::set_attr(f, "/", "atlas", m.atlas);
  h5::set_attr(f, "/", "provenance", m.provenance);
  h5::write_rows(f, "/activity", hsize_t(m.n_units), hsize_t(m.n_samples), rows, local.data());
  std::vector<std::int64_t> labels(m.unit_region.begin(), m.unit_region.end());
  h5::write_ints(f, "/unit_region", {hsize_t(labels.size())}, labels.data());
  h5::write_strings(f, "/region_names", m.region_names);
  h5::write_ints(f, "/trial_starts", {hsize_t(m.trial_starts.size())}, m.trial_starts.data());
  if (!m.behaviour.empty()) {
    std::vector<std::int64_t> b(m.behaviour.begin(), m.behaviour.end());
    h5::write_ints(f, "/behaviour", {hsize_t(b.size())}, b.data());
    h5::write_strings(f, "/behaviour_names", m.behaviour_names);
  }
  if (!m.input_names.empty()) {
    h5::write_doubles(f, "/inputs", {hsize_t(m.input_names.size()), hsize_t(m.n_samples)}, inputs.data());
    h5::write_strings(f, "/input_names", m.input_names);
  }
  out.commit();
}

// ---------------------------------------------------------------------------------------------
// Cohorts

int Cohort::region_index(const std::string& region) const {
  for (size_t i = 0; i < regions.size(); ++i)
    if (regions[i] == region) return int(i);
  return -1;
}

namespace {

// Rank 0's reading of the cohort folder.
Cohort read_cohort_local(const std::string& given) {
  if (!fs::is_directory(given)) fail("cohort ", given, ": is not a folder");
  fs::path abs = fs::absolute(given).lexically_normal();
  if (!abs.has_filename()) abs = abs.parent_path();  // "cohort/" -> ".../cohort"
  const std::string dir = abs.string();
  Cohort c;
  c.dir = dir;
  const std::string manifest = (fs::path(dir) / "cohort.ini").string();
  std::vector<std::string> files;
  bool have_regions = false;
  if (fs::exists(manifest)) {
    std::ifstream in(manifest);
    std::string line;
    int lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      line = trim(line);
      if (line.empty() || line[0] == '#' || line[0] == ';') continue;
      auto eq = line.find('=');
      if (eq == std::string::npos) fail("cohort manifest ", manifest, " line ", lineno, ": expected key = value");
      std::string key = trim(line.substr(0, eq)), val = trim(line.substr(eq + 1));
      if (key == "name")
        c.name = val;
      else if (key == "regions") {
        c.regions = split_list(val);
        have_regions = true;
      } else if (key == "animal")
        files.push_back(val);
      else
        fail("cohort manifest ", manifest, " line ", lineno, ": unknown key '", key, "'");
    }
    if (files.empty()) fail("cohort manifest ", manifest, ": lists no animal");
  } else {
    for (auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && e.path().extension() == ".h5") files.push_back(e.path().filename().string());
    std::sort(files.begin(), files.end());
    if (files.empty()) fail("cohort ", dir, ": no cohort.ini and no *.h5 animal files");
    c.name = fs::path(dir).filename().string();
  }
  std::map<std::string, std::string> ids;
  std::set<std::string> listed(c.regions.begin(), c.regions.end());
  if (listed.size() != c.regions.size()) fail("cohort manifest ", manifest, ": a region is listed twice");
  for (auto& rel : files) {
    const std::string path =
        (fs::path(rel).is_absolute() ? fs::path(rel) : fs::path(c.dir) / rel).lexically_normal().string();
    CohortAnimal an;
    an.path = path;
    an.animal_id = fs::path(rel).stem().string();
    try {  // a file that cannot be used fails its animal only
      h5::File f = h5::open_read(path, MPI_COMM_SELF);
      AnimalMeta m = read_meta_local(f);
      an.animal_id = m.animal_id;
      an.n_units = m.n_units;
      an.n_samples = m.n_samples;
      an.n_regions = m.n_regions();
      an.sample_interval = m.sample_interval;
      an.n_inputs = std::int64_t(m.input_names.size());
      for (auto& r : m.region_names) {
        if (!listed.count(r)) {
          if (have_regions)
            fail("file ", path, ": region '", r, "' is not in the cohort's region list (", manifest, ")");
          c.regions.push_back(r);
          listed.insert(r);
        }
      }
    } catch (const Error& e) {
      an.problem = e.what();
      if (an.problem.find(path) == std::string::npos) an.problem = cat("file ", path, ": ", an.problem);
    }
    if (ids.count(an.animal_id))
      fail("cohort ", dir, ": animal id '", an.animal_id, "' is used by both ", ids[an.animal_id], " and ", path);
    ids[an.animal_id] = path;
    c.animals.push_back(an);
  }
  return c;
}

std::string cat_precise(double x) {
  std::ostringstream os;
  os.precision(17);
  os << x;
  return os.str();
}

std::string pack(const Cohort& c) {
  std::ostringstream os;
  auto put = [&](const std::string& s) { os << s.size() << ':' << s; };
  put(c.dir);
  put(c.name);
  os << c.regions.size() << ';';
  for (auto& r : c.regions) put(r);
  os << c.animals.size() << ';';
  for (auto& a : c.animals) {
    put(a.animal_id);
    put(a.path);
    put(a.problem);
    os << a.n_units << ';' << a.n_samples << ';' << a.n_regions << ';' << a.n_inputs << ';';
    put(cat_precise(a.sample_interval));
  }
  return os.str();
}

Cohort unpack(const std::string& s) {
  std::istringstream is(s);
  auto get = [&]() {
    size_t n;
    char colon;
    is >> n >> colon;
    std::string out(n, '\0');
    is.read(out.data(), std::streamsize(n));
    return out;
  };
  auto num = [&]() {
    long long n;
    char semi;
    is >> n >> semi;
    return n;
  };
  Cohort c;
  c.dir = get();
  c.name = get();
  for (long long i = num(); i > 0; --i) c.regions.push_back(get());
  for (long long i = num(); i > 0; --i) {
    CohortAnimal a;
    a.animal_id = get();
    a.path = get();
    a.problem = get();
    a.n_units = num();
    a.n_samples = num();
    a.n_regions = int(num());
    a.n_inputs = num();
    a.sample_interval = std::strtod(get().c_str(), nullptr);
    c.animals.push_back(a);
  }
  return c;
}

}  // namespace

Cohort read_cohort(const std::string& dir, MPI_Comm comm) {
  std::string err, packed;
  if (comm_rank(comm) == 0) {
    try {
      packed = pack(read_cohort_local(dir));
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  agree(comm, err);
  long len = long(packed.size());
  MPI_Bcast(&len, 1, MPI_LONG, 0, comm);
  packed.resize(size_t(len));
  MPI_Bcast(packed.data(), int(len), MPI_CHAR, 0, comm);
  return unpack(packed);
}

void write_cohort_manifest(const Cohort& c, MPI_Comm comm) {
  std::string err;
  if (comm_rank(comm) == 0) {
    const std::string path = (fs::path(c.dir) / "cohort.ini").string();
    const std::string tmp = path + ".partial";
    std::ofstream out(tmp);
    out << "# cohortnet cohort manifest (docs/format.md)\n";
    if (!c.name.empty()) out << "name = " << c.name << "\n";
    out << "regions = ";
    for (size_t i = 0; i < c.regions.size(); ++i) out << (i ? "," : "") << c.regions[i];
    out << "\n";
    fs::path dir = fs::absolute(c.dir).lexically_normal();
    if (!dir.has_filename()) dir = dir.parent_path();  // "cohort/"
    for (auto& a : c.animals) {
      const fs::path p = fs::absolute(a.path).lexically_normal();
      out << "animal = " << (p.parent_path() == dir ? p.filename().string() : a.path) << "\n";
    }
    out.close();
    std::error_code ec;
    if (!out) err = cat("cohort manifest ", path, ": cannot be written");
    else fs::rename(tmp, path, ec);
    if (ec) err = cat("cohort manifest ", path, ": cannot be renamed into place");
  }
  agree(comm, err);
}

}  // namespace cohortnet
