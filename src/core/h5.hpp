#pragma once
// Thin HDF5 layer: RAII handles, parallel (MPI-IO) files, collective row-block reads/writes,
// attributes and string lists, and AtomicFile (write to NAME.partial, rename when complete).
// Every failure throws cohortnet::Error naming the file and the dataset or attribute.
#include <hdf5.h>
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/parallel.hpp"

namespace cohortnet::h5 {

class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*closer)(hid_t)) : id_(id), close_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t id() const { return id_; }
  operator hid_t() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

// An open file plus its path and communicator (for messages and collective calls).
struct File {
  Handle h;
  std::string path;
  MPI_Comm comm = MPI_COMM_SELF;
  bool parallel = false;  // opened with the MPI-IO driver (collective transfers)
  hid_t id() const { return h.id(); }
};

// Opens an existing file read-only on every rank of comm (MPI-IO). Errors: missing file,
// not HDF5 (foreign or truncated).
File open_read(const std::string& path, MPI_Comm comm);
// Opens read-write (for appending to an output in stages).
File open_rw(const std::string& path, MPI_Comm comm);
// Creates (truncates) a file on every rank of comm.
File create(const std::string& path, MPI_Comm comm);
void close(File& f);

bool exists(const File& f, const std::string& path);  // dataset or group, any depth
std::vector<hsize_t> dims(const File& f, const std::string& dataset);
void ensure_group(const File& f, const std::string& group);  // collective; creates parents

// ---- reads (collective on f.comm) ----
// Rows [rows.begin, rows.end) of a 2-D float dataset as doubles, row-major (rows x cols).
std::vector<double> read_rows(const File& f, const std::string& dataset, RowRange rows);
// The rows of several ascending, disjoint ranges, concatenated in that order (a rank's units
// when the fit orders them by region: docs/performance.md, "Unit order").
std::vector<double> read_row_runs(const File& f, const std::string& dataset, const std::vector<RowRange>& runs);
// Whole dataset (any rank count; meant for small data), converted to double / int64.
std::vector<double> read_doubles(const File& f, const std::string& dataset);
std::vector<std::int64_t> read_ints(const File& f, const std::string& dataset);
// 1-D list of strings, fixed-length or variable-length, ASCII or UTF-8.
std::vector<std::string> read_strings(const File& f, const std::string& dataset);

// ---- writes (collective on f.comm) ----
// Creates a 2-D float64 dataset [n_rows x n_cols] chunked by row blocks, and writes this rank's
// rows (row-major, rows.count() x n_cols) collectively.
void write_rows(const File& f, const std::string& dataset, hsize_t n_rows, hsize_t n_cols,
                RowRange rows, const double* local);
// The same for rows in several ascending, disjoint ranges (local: their rows in that order).
void write_row_runs(const File& f, const std::string& dataset, hsize_t n_rows, hsize_t n_cols,
                    const std::vector<RowRange>& runs, const double* local);
// Creates a float64 dataset of `shape` (any rank >= 1) and writes, collectively, the slabs
// [run.begin, run.end) x shape[1] x ... this rank holds (local: those slabs in order).
void write_slabs(const File& f, const std::string& dataset, const std::vector<hsize_t>& shape,
                 const std::vector<RowRange>& runs, const double* local);
// Creates a dataset of the given shape; data (identical on all ranks) is written by rank 0.
void write_doubles(const File& f, const std::string& dataset, const std::vector<hsize_t>& shape,
                   const double* data);
void write_ints(const File& f, const std::string& dataset, const std::vector<hsize_t>& shape,
                const std::int64_t* data);
void write_strings(const File& f, const std::string& dataset, const std::vector<std::string>& s);

// ---- attributes on an object ("/" or a dataset/group path) ----
bool has_attr(const File& f, const std::string& obj, const std::string& name);
std::string attr_string(const File& f, const std::string& obj, const std::string& name);
double attr_double(const File& f, const std::string& obj, const std::string& name);
std::int64_t attr_int(const File& f, const std::string& obj, const std::string& name);
void set_attr(const File& f, const std::string& obj, const std::string& name, const std::string& v);
void set_attr(const File& f, const std::string& obj, const std::string& name, const char* v);
void set_attr(const File& f, const std::string& obj, const std::string& name, double v);
void set_attr(const File& f, const std::string& obj, const std::string& name, std::int64_t v);

// Output written under a temporary name and renamed into place by commit(); if the writer fails
// (exception, kill), the final name never holds a half-written file. Collective.
class AtomicFile {
 public:
  AtomicFile(const std::string& final_path, MPI_Comm comm);
  ~AtomicFile();  // without commit(): closes and removes the temporary
  File& file() { return f_; }
  void commit();
  const std::string& final_path() const { return final_; }

 private:
  File f_;
  std::string final_, tmp_;
  bool done_ = false;
};

// Silences HDF5's automatic error printing (we report our own errors). Call once at start-up.
void quiet_errors();

}  // namespace cohortnet::h5
