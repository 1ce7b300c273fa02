#include "ingest/h5x.hpp"

#include <cmath>
#include <cstring>
#include <sstream>

#include "core/error.hpp"

namespace cohortnet::ingest::h5x {

namespace {

struct VisitCtx {
  std::vector<std::string> paths;
};

#if H5_VERSION_GE(1, 12, 0)
herr_t visit_cb(hid_t obj, const char* name, const H5O_info2_t* info, void* data) {
#else
herr_t visit_cb(hid_t obj, const char* name, const H5O_info_t* info, void* data) {
#endif
  if (info->type != H5O_TYPE_GROUP && info->type != H5O_TYPE_DATASET) return 0;
  if (H5Aexists_by_name(obj, name, "neurodata_type", H5P_DEFAULT) > 0) {
    std::string p = name;
    static_cast<VisitCtx*>(data)->paths.push_back(p == "." ? "/" : "/" + p);
  }
  return 0;
}

std::string number_text(double v) {
  std::ostringstream os;
  os.precision(15);
  os << v;
  return os.str();
}

hid_t open_obj(const h5::File& f, const std::string& path) {
  if (!h5::exists(f, path)) return -1;
  return H5Oopen(f.id(), path.c_str(), H5P_DEFAULT);
}

}  // namespace

std::vector<std::pair<std::string, std::string>> typed_objects(const h5::File& f) {
  VisitCtx ctx;
#if H5_VERSION_GE(1, 12, 0)
  herr_t rc = H5Ovisit3(f.id(), H5_INDEX_NAME, H5_ITER_NATIVE, visit_cb, &ctx, H5O_INFO_BASIC);
#else
  herr_t rc = H5Ovisit2(f.id(), H5_INDEX_NAME, H5_ITER_NATIVE, visit_cb, &ctx, H5O_INFO_BASIC);
#endif
  if (rc < 0) fail("file ", f.path, ": walking the file's objects failed");
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& p : ctx.paths) {
    std::string type;
    try {
      type = h5::attr_string(f, p, "neurodata_type");
    } catch (const Error&) {
      continue;  // a non-string neurodata_type is not NWB's
    }
    out.emplace_back(p, type);
  }
  return out;
}

bool is_group(const h5::File& f, const std::string& path) {
  hid_t o = open_obj(f, path);
  if (o < 0) return false;
  bool g = H5Iget_type(o) == H5I_GROUP;
  H5Oclose(o);
  return g;
}

bool is_dataset(const h5::File& f, const std::string& path) {
  hid_t o = open_obj(f, path);
  if (o < 0) return false;
  bool d = H5Iget_type(o) == H5I_DATASET;
  H5Oclose(o);
  return d;
}

std::string ref_attr_target(const h5::File& f, const std::string& obj, const std::string& attr) {
  if (!h5::has_attr(f, obj, attr)) return "";
  h5::Handle a(H5Aopen_by_name(f.id(), obj.c_str(), attr.c_str(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid()) return "";
  h5::Handle t(H5Aget_type(a), H5Tclose);
  if (H5Tget_class(t) != H5T_REFERENCE) return "";
  hid_t target = -1;
#if H5_VERSION_GE(1, 12, 0)
  H5R_ref_t ref;
  if (H5Aread(a, H5T_STD_REF, &ref) < 0) fail("file ", f.path, ": reading reference attribute ", attr, " of ", obj, " failed");
  target = H5Ropen_object(&ref, H5P_DEFAULT, H5P_DEFAULT);
  H5Rdestroy(&ref);
#else
  hobj_ref_t ref;
  if (H5Aread(a, H5T_STD_REF_OBJ, &ref) < 0)
    fail("file ", f.path, ": reading reference attribute ", attr, " of ", obj, " failed");
  target = H5Rdereference2(f.id(), H5P_DEFAULT, H5R_OBJECT, &ref);
#endif
  if (target < 0) fail("file ", f.path, ": attribute ", attr, " of ", obj, " refers to no object");
  ssize_t n = H5Iget_name(target, nullptr, 0);
  std::string name(std::size_t(n > 0 ? n : 0), '\0');
  if (n > 0) H5Iget_name(target, name.data(), std::size_t(n) + 1);
  H5Oclose(target);
  return name;
}

bool is_compound(const h5::File& f, const std::string& dataset) {
  if (!is_dataset(f, dataset)) return false;
  h5::Handle d(H5Dopen2(f.id(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  h5::Handle t(H5Dget_type(d), H5Tclose);
  return H5Tget_class(t) == H5T_COMPOUND;
}

namespace {
struct Member {
  h5::Handle dset, space;
  hid_t ftype = -1;  // member type in the file (closed by caller)
  hssize_t n = 0;
};

Member open_member(const h5::File& f, const std::string& dataset, const std::string& field) {
  if (!is_dataset(f, dataset)) fail("file ", f.path, ": dataset ", dataset, " is missing");
  Member m;
  m.dset = h5::Handle(H5Dopen2(f.id(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  h5::Handle t(H5Dget_type(m.dset), H5Tclose);
  if (H5Tget_class(t) != H5T_COMPOUND) fail("file ", f.path, ": dataset ", dataset, " is not a compound (table) dataset");
  int idx = H5Tget_member_index(t, field.c_str());
  if (idx < 0) {
    std::string names;
    int nm = H5Tget_nmembers(t);
    for (int k = 0; k < nm; ++k) {
      char* s = H5Tget_member_name(t, unsigned(k));
      names += (k ? ", " : "") + std::string(s ? s : "");
      H5free_memory(s);
    }
    fail("file ", f.path, ": dataset ", dataset, " has no field '", field, "' (fields: ", names, ")");
  }
  m.ftype = H5Tget_member_type(t, unsigned(idx));
  m.space = h5::Handle(H5Dget_space(m.dset), H5Sclose);
  m.n = H5Sget_simple_extent_npoints(m.space);
  return m;
}
}  // namespace

std::vector<double> read_compound_doubles(const h5::File& f, const std::string& dataset, const std::string& field) {
  Member m = open_member(f, dataset, field);
  h5::Handle ft(m.ftype, H5Tclose);
  H5T_class_t c = H5Tget_class(ft);
  if (c != H5T_INTEGER && c != H5T_FLOAT) fail("file ", f.path, ": field '", field, "' of ", dataset, " is not numeric");
  // A memory compound with just this member: HDF5 converts the width and picks the field.
  h5::Handle mt(H5Tcreate(H5T_COMPOUND, sizeof(double)), H5Tclose);
  H5Tinsert(mt, field.c_str(), 0, H5T_NATIVE_DOUBLE);
  std::vector<double> out(std::size_t(m.n > 0 ? m.n : 0));
  if (m.n > 0 && H5Dread(m.dset, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    fail("file ", f.path, ": reading field '", field, "' of ", dataset, " failed");
  return out;
}

std::vector<std::string> read_compound_text(const h5::File& f, const std::string& dataset, const std::string& field) {
  Member m = open_member(f, dataset, field);
  h5::Handle ft(m.ftype, H5Tclose);
  H5T_class_t c = H5Tget_class(ft);
  std::vector<std::string> out;
  if (c == H5T_INTEGER || c == H5T_FLOAT) {
    for (double v : read_compound_doubles(f, dataset, field)) out.push_back(number_text(v));
    return out;
  }
  if (c != H5T_STRING) fail("file ", f.path, ": field '", field, "' of ", dataset, " is neither text nor a number");
  if (m.n <= 0) return out;
  if (H5Tis_variable_str(ft) > 0) {
    h5::Handle st(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(st, H5T_VARIABLE);
    H5Tset_cset(st, H5Tget_cset(ft));
    h5::Handle mt(H5Tcreate(H5T_COMPOUND, sizeof(char*)), H5Tclose);
    H5Tinsert(mt, field.c_str(), 0, st);
    std::vector<char*> buf(std::size_t(m.n), nullptr);
    if (H5Dread(m.dset, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
      fail("file ", f.path, ": reading field '", field, "' of ", dataset, " failed");
    for (char* s : buf) out.emplace_back(s ? s : "");
#if H5_VERSION_GE(1, 12, 0)
    H5Treclaim(mt, m.space, H5P_DEFAULT, buf.data());
#else
    H5Dvlen_reclaim(mt, m.space, H5P_DEFAULT, buf.data());
#endif
  } else {
    const std::size_t len = H5Tget_size(ft);
    h5::Handle st(H5Tcopy(ft), H5Tclose);
    h5::Handle mt(H5Tcreate(H5T_COMPOUND, len), H5Tclose);
    H5Tinsert(mt, field.c_str(), 0, st);
    std::vector<char> buf(std::size_t(m.n) * len);
    if (H5Dread(m.dset, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
      fail("file ", f.path, ": reading field '", field, "' of ", dataset, " failed");
    for (hssize_t i = 0; i < m.n; ++i) {
      std::string s(buf.data() + std::size_t(i) * len, len);
      s.erase(s.find_last_not_of(std::string("\0 ", 2)) + 1);
      out.push_back(s);
    }
  }
  return out;
}

std::vector<std::string> read_text(const h5::File& f, const std::string& dataset) {
  if (!is_dataset(f, dataset)) fail("file ", f.path, ": dataset ", dataset, " is missing");
  h5::Handle d(H5Dopen2(f.id(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  h5::Handle t(H5Dget_type(d), H5Tclose);
  H5T_class_t c = H5Tget_class(t);
  if (c == H5T_STRING) return h5::read_strings(f, dataset);
  if (c == H5T_INTEGER || c == H5T_FLOAT) {
    std::vector<std::string> out;
    for (double v : h5::read_doubles(f, dataset)) out.push_back(number_text(v));
    return out;
  }
  fail("file ", f.path, ": dataset ", dataset, " is neither text nor numbers");
}

}  // namespace cohortnet::ingest::h5x
