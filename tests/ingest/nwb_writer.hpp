#pragma once
// Writes small NWB 2.x-shaped HDF5 files for the ingest tests with the HDF5 C API (serial, called
// on one rank): typed groups (neurodata_type attributes), variable-length UTF-8 text as pynwb
// writes it, numeric data in the narrow/wide types real files use, object references, soft links.
#include <hdf5.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace cohortnet::testutil {

class NwbWriter {
 public:
  // nwb=false writes a plain HDF5 file (no nwb_version, no NWBFile type).
  explicit NwbWriter(const std::string& path, bool nwb = true) {
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    f_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H5Pclose(fcpl);
    if (f_ < 0) throw std::runtime_error("cannot create " + path);
    if (nwb) {
      str_attr("/", "nwb_version", "2.6.0");
      str_attr("/", "neurodata_type", "NWBFile");
      str_attr("/", "namespace", "core");
      scalar_string("/identifier", "session-0001");
    }
  }
  ~NwbWriter() { H5Fclose(f_); }
  NwbWriter(const NwbWriter&) = delete;
  NwbWriter& operator=(const NwbWriter&) = delete;
  hid_t id() const { return f_; }

  void group(const std::string& path, const std::string& type = "") {
    if (H5Lexists(f_, path.c_str(), H5P_DEFAULT) <= 0) {
      hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
      H5Pset_create_intermediate_group(lcpl, 1);
      hid_t g = H5Gcreate2(f_, path.c_str(), lcpl, H5P_DEFAULT, H5P_DEFAULT);
      H5Pclose(lcpl);
      if (g < 0) throw std::runtime_error("cannot create group " + path);
      H5Gclose(g);
    }
    if (!type.empty()) {
      str_attr(path, "neurodata_type", type);
      str_attr(path, "namespace", "core");
    }
  }
  void str_attr(const std::string& obj, const std::string& name, const std::string& v) {
    hid_t t = vlen_str();
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate_by_name(f_, obj.c_str(), name.c_str(), t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char* p = v.c_str();
    H5Awrite(a, t, &p);
    H5Aclose(a), H5Sclose(s), H5Tclose(t);
  }
  void double_attr(const std::string& obj, const std::string& name, double v, hid_t file_type = H5T_IEEE_F32LE) {
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate_by_name(f_, obj.c_str(), name.c_str(), file_type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a), H5Sclose(s);
  }
  void strings(const std::string& path, const std::vector<std::string>& v) {
    parent(path);
    hid_t t = vlen_str();
    hsize_t n = v.size();
    hid_t s = H5Screate_simple(1, &n, nullptr);
    hid_t d = H5Dcreate2(f_, path.c_str(), t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    std::vector<const char*> p;
    for (auto& x : v) p.push_back(x.c_str());
    if (n) H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data());
    H5Dclose(d), H5Sclose(s), H5Tclose(t);
  }
  void scalar_string(const std::string& path, const std::string& v) {
    parent(path);
    hid_t t = vlen_str();
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(f_, path.c_str(), t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char* p = v.c_str();
    H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &p);
    H5Dclose(d), H5Sclose(s), H5Tclose(t);
  }
  // Numbers (given as double) stored as file_type: float32, int32, uint8, ... with the given shape.
  void numbers(const std::string& path, const std::vector<hsize_t>& shape, const std::vector<double>& v,
               hid_t file_type = H5T_IEEE_F32LE) {
    parent(path);
    hid_t s = shape.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(int(shape.size()), shape.data(), nullptr);
    hid_t d = H5Dcreate2(f_, path.c_str(), file_type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (!v.empty()) H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    H5Dclose(d), H5Sclose(s);
  }
  void ints(const std::string& path, const std::vector<double>& v, hid_t file_type = H5T_STD_I32LE) {
    numbers(path, {hsize_t(v.size())}, v, file_type);
  }
  // A compound dataset with an int32 member `int_field` and a variable-length string member
  // `str_field` (older NWB/hdmf tables stored rows this way).
  void compound(const std::string& path, const std::string& int_field, const std::string& str_field,
                const std::vector<int>& ints, const std::vector<std::string>& strs) {
    parent(path);
    struct Row {
      int i;
      const char* s;
    };
    hid_t st = vlen_str();
    hid_t mt = H5Tcreate(H5T_COMPOUND, sizeof(Row));
    H5Tinsert(mt, int_field.c_str(), HOFFSET(Row, i), H5T_NATIVE_INT);
    H5Tinsert(mt, str_field.c_str(), HOFFSET(Row, s), st);
    std::vector<Row> rows;
    for (std::size_t k = 0; k < ints.size(); ++k) rows.push_back({ints[k], strs[k].c_str()});
    hsize_t n = rows.size();
    hid_t sp = H5Screate_simple(1, &n, nullptr);
    hid_t d = H5Dcreate2(f_, path.c_str(), mt, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows.data());
    H5Dclose(d), H5Sclose(sp), H5Tclose(mt), H5Tclose(st);
  }
  // Object reference attribute (DynamicTableRegion 'table', as hdmf writes it).
  void ref_attr(const std::string& obj, const std::string& name, const std::string& target) {
    hobj_ref_t ref;
    // H5Rcreate (1.8/1.10 API, still present as a deprecated call in 1.12+).
    if (H5Rcreate(&ref, f_, target.c_str(), H5R_OBJECT, -1) < 0) throw std::runtime_error("H5Rcreate " + target);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate_by_name(f_, obj.c_str(), name.c_str(), H5T_STD_REF_OBJ, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_STD_REF_OBJ, &ref);
    H5Aclose(a), H5Sclose(s);
  }
  void soft_link(const std::string& link, const std::string& target) {
    H5Lcreate_soft(target.c_str(), f_, link.c_str(), H5P_DEFAULT, H5P_DEFAULT);
  }

 private:
  hid_t f_ = -1;
  static hid_t vlen_str() {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
  }
  void parent(const std::string& path) {
    auto k = path.find_last_of('/');
    if (k != std::string::npos && k > 0) group(path.substr(0, k));
  }
};

}  // namespace cohortnet::testutil
