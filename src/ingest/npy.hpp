#pragma once
// A small reader for NumPy .npy files (format versions 1-3): numeric arrays (float16/32/64, signed
// and unsigned integers, bool; little-endian; C or Fortran order) as double, and 1-D string arrays
// (numpy unicode '<U' and bytes '|S'). No external library. Errors name the file and the problem:
// object (pickled) arrays, big-endian data, structured dtypes, truncated files, bad headers.
#include <cstdint>
#include <string>
#include <vector>

namespace cohortnet::ingest {

struct NpyArray {
  std::string path;
  std::string descr;              // e.g. "<f8"
  bool fortran_order = false;
  std::vector<std::int64_t> shape;
  std::vector<double> values;     // numeric arrays: all elements in C (row-major) order
  std::vector<std::string> strings;  // string arrays (1-D): the elements, UTF-8
  bool is_string = false;
  std::int64_t size() const;      // number of elements
};

// Parses the header only (descr, fortran_order, shape); throws Error naming `path` on a bad header.
// `data_offset` receives the byte offset of the data.
NpyArray parse_npy_header(const std::string& bytes, const std::string& path, std::size_t& data_offset);
// Reads a whole .npy file.
NpyArray read_npy(const std::string& path);
// Same from bytes in memory (tests).
NpyArray parse_npy(const std::string& bytes, const std::string& path);

}  // namespace cohortnet::ingest
