#include "core/h5.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.hpp"

namespace cohortnet::h5 {

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && close_) close_(id_);
  id_ = -1;
}

void quiet_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

namespace {

Handle file_access(MPI_Comm comm) {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  // All metadata reads by one rank then broadcast: scales to many ranks opening one file.
  H5Pset_all_coll_metadata_ops(fapl, true);
  H5Pset_coll_metadata_write(fapl, true);
#if H5_VERSION_GE(1, 10, 7)
  H5Pset_file_locking(fapl, false, true);  // locks break on parallel file systems; not needed here
#endif
  return fapl;
}

Handle transfer(const File& f) {
  Handle dxpl(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
  if (f.parallel) H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
  return dxpl;
}

Handle open_dataset(const File& f, const std::string& name) {
  if (!exists(f, name)) fail("file ", f.path, ": dataset ", name, " is missing");
  hid_t id = H5Dopen2(f.id(), name.c_str(), H5P_DEFAULT);
  if (id < 0) fail("file ", f.path, ": ", name, " is not a readable dataset");
  return Handle(id, H5Dclose);
}

bool is_hdf5(const std::string& path) {
#if H5_VERSION_GE(1, 12, 0)
  return H5Fis_accessible(path.c_str(), H5P_DEFAULT) > 0;
#else
  return H5Fis_hdf5(path.c_str()) > 0;
#endif
}

void check_numeric(const File& f, const std::string& name, hid_t dset) {
  Handle type(H5Dget_type(dset), H5Tclose);
  H5T_class_t cls = H5Tget_class(type);
  if (cls != H5T_FLOAT && cls != H5T_INTEGER)
    fail("file ", f.path, ": dataset ", name, " is not numeric");
}

}  // namespace

File open_read(const std::string& path, MPI_Comm comm) {
  std::string err;
  if (!std::filesystem::exists(path))
    err = cat("file ", path, ": does not exist");
  else if (!std::filesystem::is_regular_file(path))
    err = cat("file ", path, ": is not a regular file");
  else if (!is_hdf5(path))
    err = cat("file ", path, ": is not an HDF5 file (foreign or truncated)");
  agree(comm, err);
  Handle fapl = file_access(comm);
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl);
  int ok = id >= 0, all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, comm);
  if (!all) {
    if (id >= 0) H5Fclose(id);
    fail("file ", path, ": cannot be opened as HDF5 (truncated or damaged)");
  }
  return File{Handle(id, H5Fclose), path, comm, true};
}

File open_rw(const std::string& path, MPI_Comm comm) {
  Handle fapl = file_access(comm);
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl);
  int ok = id >= 0, all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, comm);
  if (!all) {
    if (id >= 0) H5Fclose(id);
    fail("file ", path, ": cannot be opened for writing");
  }
  return File{Handle(id, H5Fclose), path, comm, true};
}

File create(const std::string& path, MPI_Comm comm) {
  Handle fapl = file_access(comm);
  hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  int ok = id >= 0, all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, comm);
  if (!all) {
    if (id >= 0) H5Fclose(id);
    fail("file ", path, ": cannot be created (does the folder exist and is it writable?)");
  }
  return File{Handle(id, H5Fclose), path, comm, true};
}

void close(File& f) { f.h.reset(); }

bool exists(const File& f, const std::string& path) {
  if (path.empty() || path == "/") return true;
  // Check each link along the path (H5Lexists fails on a missing intermediate group).
  size_t pos = 0;
  while (true) {
    pos = path.find('/', pos + 1);
    std::string prefix = path.substr(0, pos);
    if (!prefix.empty() && prefix != "/" && H5Lexists(f.id(), prefix.c_str(), H5P_DEFAULT) <= 0)
      return false;
    if (pos == std::string::npos) return true;
  }
}

std::vector<hsize_t> dims(const File& f, const std::string& name) {
  Handle d = open_dataset(f, name);
  Handle space(H5Dget_space(d), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(space);
  if (nd < 0) fail("file ", f.path, ": dataset ", name, " has no simple shape");
  std::vector<hsize_t> out(static_cast<size_t>(nd));
  H5Sget_simple_extent_dims(space, out.data(), nullptr);
  return out;
}

void ensure_group(const File& f, const std::string& group) {
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = group.find('/', pos + 1);
    std::string prefix = group.substr(0, pos);
    if (prefix.empty() || prefix == "/") continue;
    if (H5Lexists(f.id(), prefix.c_str(), H5P_DEFAULT) <= 0) {
      hid_t g = H5Gcreate2(f.id(), prefix.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (g < 0) fail("file ", f.path, ": cannot create group ", prefix);
      H5Gclose(g);
    }
  }
}

namespace {
// Selects the rows of `runs` (ascending, disjoint [begin, end) ranges; empty ones skipped) of a
// 2-D dataspace with n_cols columns; none when there are none. Returns the rows selected.
hsize_t select_row_runs(hid_t space, const std::vector<RowRange>& runs, hsize_t n_cols) {
  hsize_t total = 0;
  bool first = true;
  for (const RowRange& r : runs) {
    if (r.count() <= 0 || n_cols == 0) continue;
    hsize_t start[2] = {hsize_t(r.begin), 0}, count[2] = {hsize_t(r.count()), n_cols};
    H5Sselect_hyperslab(space, first ? H5S_SELECT_SET : H5S_SELECT_OR, start, nullptr, count, nullptr);
    first = false;
    total += hsize_t(r.count());
  }
  if (first) H5Sselect_none(space);
  return total;
}
}  // namespace

std::vector<double> read_rows(const File& f, const std::string& name, RowRange rows) {
  return read_row_runs(f, name, {rows});
}

std::vector<double> read_row_runs(const File& f, const std::string& name, const std::vector<RowRange>& runs) {
  Handle d = open_dataset(f, name);
  check_numeric(f, name, d);
  auto shape = dims(f, name);
  if (shape.size() != 2) fail("file ", f.path, ": dataset ", name, " must be 2-D, has ", shape.size(), " dimensions");
  hsize_t n = 0;
  for (const RowRange& r : runs) {
    if (r.count() <= 0) continue;
    if (hsize_t(r.end) > shape[0]) fail("file ", f.path, ": dataset ", name, " has ", shape[0], " rows, need ", r.end);
    n += hsize_t(r.count());
  }
  std::vector<double> out(size_t(n) * shape[1]);
  Handle fspace(H5Dget_space(d), H5Sclose);
  select_row_runs(fspace, runs, shape[1]);
  hsize_t count[2] = {n, shape[1]};
  Handle mspace(H5Screate_simple(2, count, nullptr), H5Sclose);
  if (n == 0 || shape[1] == 0) H5Sselect_none(mspace);
  Handle xfer = transfer(f);
  herr_t st = H5Dread(d, H5T_NATIVE_DOUBLE, mspace, fspace, xfer, out.data());
  int ok = st >= 0, all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, f.comm);
  if (!all) fail("file ", f.path, ": reading dataset ", name, " failed (truncated file?)");
  return out;
}

template <class T>
static std::vector<T> read_whole(const File& f, const std::string& name, hid_t memtype) {
  Handle d = open_dataset(f, name);
  check_numeric(f, name, d);
  Handle space(H5Dget_space(d), H5Sclose);
  hssize_t n = H5Sget_simple_extent_npoints(space);
  std::vector<T> out(size_t(n > 0 ? n : 0));
  Handle xfer = transfer(f);
  herr_t st = n > 0 ? H5Dread(d, memtype, H5S_ALL, H5S_ALL, xfer, out.data()) : 0;
  int ok = st >= 0, all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, f.comm);
  if (!all) fail("file ", f.path, ": reading dataset ", name, " failed (truncated file?)");
  return out;
}

std::vector<double> read_doubles(const File& f, const std::string& name) {
  return read_whole<double>(f, name, H5T_NATIVE_DOUBLE);
}

std::vector<std::int64_t> read_ints(const File& f, const std::string& name) {
  Handle d = open_dataset(f, name);
  Handle type(H5Dget_type(d), H5Tclose);
  if (H5Tget_class(type) != H5T_INTEGER)
    fail("file ", f.path, ": dataset ", name, " must hold integers");
  return read_whole<std::int64_t>(f, name, H5T_NATIVE_INT64);
}

std::vector<std::string> read_strings(const File& f, const std::string& name) {
  Handle d = open_dataset(f, name);
  Handle ftype(H5Dget_type(d), H5Tclose);
  if (H5Tget_class(ftype) != H5T_STRING) fail("file ", f.path, ": dataset ", name, " must hold strings");
  Handle space(H5Dget_space(d), H5Sclose);
  hssize_t n = H5Sget_simple_extent_npoints(space);
  std::vector<std::string> out;
  if (n <= 0) return out;
  if (H5Tis_variable_str(ftype) > 0) {
    Handle mtype(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mtype, H5T_VARIABLE);
    H5Tset_cset(mtype, H5Tget_cset(ftype));
    std::vector<char*> buf(size_t(n), nullptr);
    if (H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
      fail("file ", f.path, ": reading strings ", name, " failed");
    for (char* s : buf) out.emplace_back(s ? s : "");
#if H5_VERSION_GE(1, 12, 0)
    H5Treclaim(mtype, space, H5P_DEFAULT, buf.data());
#else
    H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, buf.data());
#endif
  } else {
    size_t len = H5Tget_size(ftype);
    std::vector<char> buf(size_t(n) * len);
    if (H5Dread(d, ftype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
      fail("file ", f.path, ": reading strings ", name, " failed");
    for (hssize_t i = 0; i < n; ++i) {
      std::string s(buf.data() + size_t(i) * len, len);
      s.erase(s.find_last_not_of(std::string("\0 ", 2)) + 1);
      out.push_back(s);
    }
  }
  return out;
}

void write_rows(const File& f, const std::string& name, hsize_t n_rows, hsize_t n_cols, RowRange rows,
                const double* local) {
  write_row_runs(f, name, n_rows, n_cols, {rows}, local);
}

void write_row_runs(const File& f, const std::string& name, hsize_t n_rows, hsize_t n_cols,
                    const std::vector<RowRange>& runs, const double* local) {
  hsize_t shape[2] = {n_rows, n_cols};
  Handle fspace(H5Screate_simple(2, shape, nullptr), H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (n_rows > 0 && n_cols > 0) {
    // Chunks of whole rows, about 1 MiB, so a rank's rows map onto few chunks.
    hsize_t rows_per_chunk = std::max<hsize_t>(1, std::min<hsize_t>(n_rows, (1u << 17) / std::max<hsize_t>(1, n_cols)));
    hsize_t chunk[2] = {rows_per_chunk, std::min<hsize_t>(n_cols, 1u << 20)};
    H5Pset_chunk(dcpl, 2, chunk);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  }
  hid_t did = H5Dcreate2(f.id(), name.c_str(), H5T_IEEE_F64LE, fspace, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (did < 0) fail("file ", f.path, ": cannot create dataset ", name);
  Handle d(did, H5Dclose);
  const hsize_t n = select_row_runs(fspace, runs, n_cols);
  hsize_t count[2] = {n, n_cols};
  Handle mspace(H5Screate_simple(2, count, nullptr), H5Sclose);
  if (n == 0 || n_cols == 0) H5Sselect_none(mspace);
  Handle xfer = transfer(f);
  herr_t st = H5Dwrite(d, H5T_NATIVE_DOUBLE, mspace, fspace, xfer, local);
  int ok = st >= 0, all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, f.comm);
  if (!all) fail("file ", f.path, ": writing dataset ", name, " failed (disk full?)");
}

void write_slabs(const File& f, const std::string& name, const std::vector<hsize_t>& shape,
                 const std::vector<RowRange>& runs, const double* local) {
  if (shape.empty()) fail("write_slabs ", name, ": needs at least one dimension");
  const int rank = int(shape.size());
  Handle fspace(H5Screate_simple(rank, shape.data(), nullptr), H5Sclose);
  hid_t did = H5Dcreate2(f.id(), name.c_str(), H5T_IEEE_F64LE, fspace, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (did < 0) fail("file ", f.path, ": cannot create dataset ", name);
  Handle d(did, H5Dclose);
  hsize_t per_slab = 1;
  for (int k = 1; k < rank; ++k) per_slab *= shape[size_t(k)];
  hsize_t n = 0;
  bool first = true;
  for (const RowRange& r : runs) {
    if (r.count() <= 0 || per_slab == 0) continue;
    std::vector<hsize_t> start(size_t(rank), 0), count = shape;
    start[0] = hsize_t(r.begin);
    count[0] = hsize_t(r.count());
    H5Sselect_hyperslab(fspace, first ? H5S_SELECT_SET : H5S_SELECT_OR, start.data(), nullptr, count.data(), nullptr);
    first = false;
    n += hsize_t(r.count());
  }
  if (first) H5Sselect_none(fspace);
  hsize_t mcount = std::max<hsize_t>(1, n * per_slab);
  Handle mspace(H5Screate_simple(1, &mcount, nullptr), H5Sclose);
  if (n * per_slab == 0) H5Sselect_none(mspace);
  Handle xfer = transfer(f);
  const double dummy = 0;  // a rank with nothing to write still passes a buffer
  herr_t st = H5Dwrite(d, H5T_NATIVE_DOUBLE, mspace, fspace, xfer, local ? local : &dummy);
  int ok = st >= 0, all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, f.comm);
  if (!all) fail("file ", f.path, ": writing dataset ", name, " failed (disk full?)");
}

static void write_small(const File& f, const std::string& name, const std::vector<hsize_t>& shape,
                        hid_t filetype, hid_t memtype, const void* data) {
  Handle fspace(shape.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(int(shape.size()), shape.data(), nullptr),
                H5Sclose);
  hid_t did = H5Dcreate2(f.id(), name.c_str(), filetype, fspace, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (did < 0) fail("file ", f.path, ": cannot create dataset ", name);
  Handle d(did, H5Dclose);
  hssize_t n = H5Sget_simple_extent_npoints(fspace);
  Handle mspace(H5Scopy(fspace), H5Sclose);
  if (comm_rank(f.comm) != 0 || n == 0) {
    H5Sselect_none(fspace);
    H5Sselect_none(mspace);
  }
  Handle xfer = transfer(f);
  // An empty dataset (e.g. the run history of a checkpoint taken inside the first run) has nothing
  // to write, and its buffer may be null, which H5Dwrite refuses.
  herr_t st = n == 0 ? 0 : H5Dwrite(d, memtype, mspace, fspace, xfer, data);
  int ok = st >= 0, all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, f.comm);
  if (!all) fail("file ", f.path, ": writing dataset ", name, " failed (disk full?)");
}

void write_doubles(const File& f, const std::string& name, const std::vector<hsize_t>& shape, const double* data) {
  write_small(f, name, shape, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, data);
}

void write_ints(const File& f, const std::string& name, const std::vector<hsize_t>& shape, const std::int64_t* data) {
  write_small(f, name, shape, H5T_STD_I64LE, H5T_NATIVE_INT64, data);
}

static Handle utf8_fixed(size_t len) {
  Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t, std::max<size_t>(1, len));
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

void write_strings(const File& f, const std::string& name, const std::vector<std::string>& s) {
  // Fixed-length UTF-8: parallel HDF5 cannot write variable-length data collectively.
  size_t len = 1;
  for (auto& x : s) len = std::max(len, x.size());
  std::vector<char> buf(s.size() * len, '\0');
  for (size_t i = 0; i < s.size(); ++i) std::copy(s[i].begin(), s[i].end(), buf.begin() + long(i * len));
  Handle t = utf8_fixed(len);
  write_small(f, name, {hsize_t(s.size())}, t, t, buf.data());
}

bool has_attr(const File& f, const std::string& obj, const std::string& name) {
  if (!exists(f, obj)) return false;
  return H5Aexists_by_name(f.id(), obj.c_str(), name.c_str(), H5P_DEFAULT) > 0;
}

static Handle open_attr(const File& f, const std::string& obj, const std::string& name) {
  if (!has_attr(f, obj, name)) fail("file ", f.path, ": attribute ", name, " of ", obj, " is missing");
  return Handle(H5Aopen_by_name(f.id(), obj.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
}

std::string attr_string(const File& f, const std::string& obj, const std::string& name) {
  Handle a = open_attr(f, obj, name);
  Handle ftype(H5Aget_type(a), H5Tclose);
  if (H5Tget_class(ftype) != H5T_STRING) fail("file ", f.path, ": attribute ", name, " of ", obj, " must be a string");
  Handle space(H5Aget_space(a), H5Sclose);
  if (H5Sget_simple_extent_npoints(space) != 1)
    fail("file ", f.path, ": attribute ", name, " of ", obj, " must be a single string");
  if (H5Tis_variable_str(ftype) > 0) {
    Handle mtype(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mtype, H5T_VARIABLE);
    H5Tset_cset(mtype, H5Tget_cset(ftype));
    char* p = nullptr;
    if (H5Aread(a, mtype, &p) < 0) fail("file ", f.path, ": cannot read attribute ", name);
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  size_t len = H5Tget_size(ftype);
  std::string s(len, '\0');
  if (H5Aread(a, ftype, s.data()) < 0) fail("file ", f.path, ": cannot read attribute ", name);
  s.erase(s.find_last_not_of(std::string("\0 ", 2)) + 1);
  return s;
}

double attr_double(const File& f, const std::string& obj, const std::string& name) {
  Handle a = open_attr(f, obj, name);
  Handle ftype(H5Aget_type(a), H5Tclose);
  auto cls = H5Tget_class(ftype);
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) fail("file ", f.path, ": attribute ", name, " of ", obj, " must be a number");
  Handle space(H5Aget_space(a), H5Sclose);
  if (H5Sget_simple_extent_npoints(space) != 1) fail("file ", f.path, ": attribute ", name, " of ", obj, " must be a scalar");
  double v = 0;
  if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) fail("file ", f.path, ": cannot read attribute ", name);
  return v;
}

std::int64_t attr_int(const File& f, const std::string& obj, const std::string& name) {
  Handle a = open_attr(f, obj, name);
  Handle ftype(H5Aget_type(a), H5Tclose);
  if (H5Tget_class(ftype) != H5T_INTEGER) fail("file ", f.path, ": attribute ", name, " of ", obj, " must be an integer");
  std::int64_t v = 0;
  if (H5Aread(a, H5T_NATIVE_INT64, &v) < 0) fail("file ", f.path, ": cannot read attribute ", name);
  return v;
}

static void write_attr(const File& f, const std::string& obj, const std::string& name, hid_t type, const void* v) {
  if (H5Aexists_by_name(f.id(), obj.c_str(), name.c_str(), H5P_DEFAULT) > 0)
    H5Adelete_by_name(f.id(), obj.c_str(), name.c_str(), H5P_DEFAULT);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  hid_t a = H5Acreate_by_name(f.id(), obj.c_str(), name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0) fail("file ", f.path, ": cannot create attribute ", name, " on ", obj);
  Handle ah(a, H5Aclose);
  if (H5Awrite(ah, type, v) < 0) fail("file ", f.path, ": cannot write attribute ", name, " on ", obj);
}

void set_attr(const File& f, const std::string& obj, const std::string& name, const std::string& v) {
  Handle t = utf8_fixed(v.size());
  std::string buf = v.empty() ? std::string(1, '\0') : v;
  write_attr(f, obj, name, t, buf.data());
}
void set_attr(const File& f, const std::string& obj, const std::string& name, const char* v) {
  set_attr(f, obj, name, std::string(v));
}
void set_attr(const File& f, const std::string& obj, const std::string& name, double v) {
  write_attr(f, obj, name, H5T_NATIVE_DOUBLE, &v);
}
void set_attr(const File& f, const std::string& obj, const std::string& name, std::int64_t v) {
  write_attr(f, obj, name, H5T_NATIVE_INT64, &v);
}

AtomicFile::AtomicFile(const std::string& final_path, MPI_Comm comm) : final_(final_path) {
  // One temporary name per output, agreed by all ranks (rank 0's pid).
  long pid = long(getpid());
  MPI_Bcast(&pid, 1, MPI_LONG, 0, comm);
  tmp_ = final_ + ".partial-" + std::to_string(pid);
  f_ = create(tmp_, comm);
}

AtomicFile::~AtomicFile() {
  if (done_) return;
  f_.h.reset();
  if (comm_rank(f_.comm) == 0) std::remove(tmp_.c_str());
}

void AtomicFile::commit() {
  H5Fflush(f_.id(), H5F_SCOPE_GLOBAL);
  f_.h.reset();
  int ok = 1;
  if (comm_rank(f_.comm) == 0) {
    std::error_code ec;
    std::filesystem::rename(tmp_, final_, ec);
    ok = !ec;
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, f_.comm);
  done_ = true;
  if (!ok) fail("file ", final_, ": cannot rename the finished output into place");
}

}  // namespace cohortnet::h5
