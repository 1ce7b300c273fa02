#pragma once
// Small HDF5 additions the NWB reader needs (kept here, not in core): walking a file for objects
// with a `neurodata_type` attribute, following an object reference stored in an attribute, and
// reading one member of a compound dataset. HDF5 1.10 and 1.12+ (guarded with H5_VERSION_GE).
#include <string>
#include <utility>
#include <vector>

#include "core/h5.hpp"

namespace cohortnet::ingest::h5x {

// Every group or dataset carrying a `neurodata_type` attribute: (absolute path, type), in
// visiting order (by name). Objects reached through soft links are not visited twice.
std::vector<std::pair<std::string, std::string>> typed_objects(const h5::File& f);
// The path of the object an object-reference attribute points to ("" if the attribute is not
// an object reference).
std::string ref_attr_target(const h5::File& f, const std::string& obj, const std::string& attr);
bool is_group(const h5::File& f, const std::string& path);
bool is_dataset(const h5::File& f, const std::string& path);
// True if `dataset` has a compound type.
bool is_compound(const h5::File& f, const std::string& dataset);
// One member of a compound dataset: as text (string members as is, numbers printed) or doubles.
std::vector<std::string> read_compound_text(const h5::File& f, const std::string& dataset, const std::string& field);
std::vector<double> read_compound_doubles(const h5::File& f, const std::string& dataset, const std::string& field);
// A table column as text: string columns as is, numeric columns printed ("3", "2.5").
std::vector<std::string> read_text(const h5::File& f, const std::string& dataset);

}  // namespace cohortnet::ingest::h5x
