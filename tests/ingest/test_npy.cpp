// .npy parsing (dtypes, Fortran order, header versions, bad headers), npy and HDF5-array
// recordings (layout, trials), labels files, and the real data sets in tests/data.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "ingest/npy.hpp"
#include "ingest_test_util.hpp"
#include "io/animal.hpp"
#include "test_util.hpp"

using namespace cohortnet;
using namespace cohortnet::testutil;
using cohortnet::ingest::parse_npy;

namespace {

// A .npy file's bytes: header dict padded to 64 bytes, then the raw data.
std::string npy_bytes(const std::string& descr, bool fortran, const std::string& shape, const std::string& data,
                      int version = 1) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
                     ", 'shape': " + shape + ", }";
  const std::size_t pre = version == 1 ? 10 : 12;
  std::size_t total = pre + dict.size() + 1;
  std::size_t pad = (64 - total % 64) % 64;
  dict += std::string(pad, ' ') + "\n";
  std::string out = "\x93NUMPY";
  out += char(version);
  out += char(0);
  const std::size_t n = dict.size();
  if (version == 1) {
    out += char(n & 0xff);
    out += char(n >> 8);
  } else {
    for (int k = 0; k < 4; ++k) out += char((n >> (8 * k)) & 0xff);
  }
  return out + dict + data;
}

template <class T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

void write_file(const std::string& path, const std::string& bytes) {
  on_rank0([&] { std::ofstream(path, std::ios::binary) << bytes; });
}

std::string data_dir() { return source_dir() + "/tests/data"; }

}  // namespace

TEST(Npy, Float64AndFloat32COrder) {
  auto a = parse_npy(npy_bytes("<f8", false, "(2, 3)", raw(std::vector<double>{1, 2, 3, 4, 5, 6.5})), "x.npy");
  ASSERT_EQ(a.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(a.values, (std::vector<double>{1, 2, 3, 4, 5, 6.5}));
  auto b = parse_npy(npy_bytes("<f4", false, "(3,)", raw(std::vector<float>{0.5f, -1.25f, 3.f})), "y.npy");
  EXPECT_EQ(b.values, (std::vector<double>{0.5, -1.25, 3}));
  auto c = parse_npy(npy_bytes("<i2", false, "(2, 2)", raw(std::vector<std::int16_t>{-3, 7, 1000, 0})), "z.npy");
  EXPECT_EQ(c.values, (std::vector<double>{-3, 7, 1000, 0}));
  auto d = parse_npy(npy_bytes("<i8", false, "(2,)", raw(std::vector<std::int64_t>{-5, 9}), 2), "v2.npy");
  EXPECT_EQ(d.values, (std::vector<double>{-5, 9}));
  auto e = parse_npy(npy_bytes("|u1", false, "(2,)", raw(std::vector<std::uint8_t>{255, 1})), "u8.npy");
  EXPECT_EQ(e.values, (std::vector<double>{255, 1}));
}

TEST(Npy, FortranOrderBecomesCOrder) {
  // The 2 x 3 matrix [[1,2,3],[4,5,6]] in Fortran order is stored column by column: 1 4 2 5 3 6.
  auto a = parse_npy(npy_bytes("<f8", true, "(2, 3)", raw(std::vector<double>{1, 4, 2, 5, 3, 6})), "f.npy");
  EXPECT_EQ(a.values, (std::vector<double>{1, 2, 3, 4, 5, 6}));
  // 3-D, 2 x 2 x 2: element (i,j,k) = 100i + 10j + k, Fortran: i fastest.
  std::vector<float> f;
  for (int k = 0; k < 2; ++k)
    for (int j = 0; j < 2; ++j)
      for (int i = 0; i < 2; ++i) f.push_back(float(100 * i + 10 * j + k));
  auto b = parse_npy(npy_bytes("<f4", true, "(2, 2, 2)", raw(f)), "f3.npy");
  EXPECT_EQ(b.values, (std::vector<double>{0, 1, 10, 11, 100, 101, 110, 111}));
}

TEST(Npy, StringArrays) {
  std::vector<std::uint32_t> u = {'V', 'I', 'S', 'p', 'C', 'A', '1', 0};
  auto a = parse_npy(npy_bytes("<U4", false, "(2,)", raw(u)), "s.npy");
  EXPECT_EQ(a.strings, (std::vector<std::string>{"VISp", "CA1"}));
  auto b = parse_npy(npy_bytes("|S3", false, "(2,)", std::string("ab\0xyz", 6)), "b.npy");
  EXPECT_EQ(b.strings, (std::vector<std::string>{"ab", "xyz"}));
}

TEST(Npy, BadFilesGiveClearErrors) {
  auto err = [](const std::string& bytes) { return error_of([&] { parse_npy(bytes, "bad.npy"); }); };
  std::string e = err(npy_bytes("|O", false, "(2,)", std::string(16, '\0')));
  EXPECT_NE(e.find("object array"), std::string::npos) << e;
  EXPECT_NE(e.find("bad.npy"), std::string::npos) << e;
  e = err(npy_bytes(">f8", false, "(2,)", std::string(16, '\0')));
  EXPECT_NE(e.find("big-endian"), std::string::npos) << e;
  e = err(npy_bytes("<f8", false, "(4, 5)", std::string(100, '\0')));  // needs 160 bytes
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  EXPECT_NE(e.find("160"), std::string::npos) << e;
  e = err("PK\x03\x04 this is a zip");
  EXPECT_NE(e.find("not a .npy file"), std::string::npos) << e;
  e = err(npy_bytes("<f8", false, "(2,)", std::string(16, '\0')).substr(0, 30));
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  std::string structured = npy_bytes("<f8", false, "(2,)", std::string(16, '\0'));
  structured.replace(structured.find("'<f8'"), 5, "[('a', '<f8')]");
  e = err(structured);
  EXPECT_NE(e.find("structured"), std::string::npos) << e;
  std::string nokey = npy_bytes("<f8", false, "(2,)", std::string(16, '\0'));
  nokey.replace(nokey.find("'shape'"), 7, "'shapx'");
  e = err(nokey);
  EXPECT_NE(e.find("not a valid .npy header"), std::string::npos) << e;
}

TEST(NpyIngest, LayoutTransposeTrialsAndWrongDims) {
  const std::string d = scratch_dir("npy-ingest");
  // samples-by-units: 4 samples x 3 units, Fortran order float32.
  // The matrix S[t][u] = 10t + u; Fortran stores column u after column u.
  std::vector<float> f;
  for (int u = 0; u < 3; ++u)
    for (int t = 0; t < 4; ++t) f.push_back(float(10 * t + u));
  write_file(d + "/rec.npy", npy_bytes("<f4", true, "(4, 3)", raw(f)));
  on_rank0([&] { std::ofstream(d + "/labels.csv") << "unit,region\n0,A\n1,B\n2,A\n"; });
  ingest::Options o;
  o.format = "npy";
  o.inputs = {d + "/rec.npy"};
  o.out = d + "/c";
  o.labels = d + "/labels.csv";
  o.layout = "samples-by-units";
  o.sample_interval = 0.5;
  auto sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  ASSERT_EQ(sum.animals.size(), 1u);
  EXPECT_EQ(sum.animals[0].animal_id, "rec");
  AnimalMeta m = read_animal_meta(sum.animals[0].path, MPI_COMM_WORLD);
  EXPECT_EQ(m.n_units, 3);
  EXPECT_EQ(m.n_samples, 4);
  EXPECT_EQ(m.region_names, (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(m.unit_region, (std::vector<int>{0, 1, 0}));
  auto a = activity_of(sum.animals[0].path);
  for (int u = 0; u < 3; ++u)
    for (int t = 0; t < 4; ++t) EXPECT_EQ(a[std::size_t(u * 4 + t)], 10 * t + u);

  // 3-D trials x units x samples: 2 trials x 2 units x 3 samples, averaged per condition.
  std::vector<double> tr = {1, 2, 3, 4, 5, 6, /* trial 1 */ 3, 4, 5, 6, 7, 8};
  write_file(d + "/trials.npy", npy_bytes("<f8", false, "(2, 2, 3)", raw(tr)));
  on_rank0([&] {
    std::ofstream(d + "/two.txt") << "X\nY\n";
    std::ofstream(d + "/cond.txt") << "go\ngo\n";
  });
  o.inputs = {d + "/trials.npy"};
  o.layout = "units-by-samples";
  o.labels = d + "/two.txt";
  o.out = d + "/c3";
  sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  m = read_animal_meta(sum.animals[0].path, MPI_COMM_WORLD);
  EXPECT_EQ(m.trial_starts, (std::vector<std::int64_t>{0, 3}));
  a = activity_of(sum.animals[0].path);
  EXPECT_EQ(a, (std::vector<double>{1, 2, 3, 3, 4, 5, 4, 5, 6, 6, 7, 8}));
  o.trials = "average";
  o.trial_conditions = d + "/cond.txt";
  o.out = d + "/c4";
  sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  a = activity_of(sum.animals[0].path);
  EXPECT_EQ(a, (std::vector<double>{2, 3, 4, 5, 6, 7}));

  // Wrong dims, wrong label count, missing options: errors naming the file / option.
  write_file(d + "/flat.npy", npy_bytes("<f8", false, "(5,)", raw(std::vector<double>(5, 1.0))));
  o = ingest::Options();
  o.format = "npy";
  o.inputs = {d + "/flat.npy"};
  o.out = d + "/c5";
  o.labels = d + "/two.txt";
  o.sample_interval = 1;
  std::string e = error_of([&] { ingest::run_ingest(o, MPI_COMM_WORLD); });
  EXPECT_NE(e.find("flat.npy"), std::string::npos) << e;
  EXPECT_NE(e.find("1-D"), std::string::npos) << e;
  o.inputs = {d + "/rec.npy"};  // 4 x 3 as units-by-samples: 4 units, 2 labels
  e = error_of([&] { ingest::run_ingest(o, MPI_COMM_WORLD); });
  EXPECT_NE(e.find("two.txt"), std::string::npos) << e;
  EXPECT_NE(e.find("4 units"), std::string::npos) << e;
  EXPECT_NE(e.find("rec.npy"), std::string::npos) << e;
  o.sample_interval = 0;
  e = error_of([&] { ingest::run_ingest(o, MPI_COMM_WORLD); });
  EXPECT_NE(e.find("--sample-interval"), std::string::npos) << e;
  // NaN in an npy array names the unit and sample.
  write_file(d + "/nan.npy", npy_bytes("<f8", false, "(2, 3)", raw(std::vector<double>{1, 2, 3, 4, std::nan(""), 6})));
  o.inputs = {d + "/nan.npy"};
  o.sample_interval = 1;
  e = error_of([&] { ingest::run_ingest(o, MPI_COMM_WORLD); });
  EXPECT_NE(e.find("NaN at unit 1, sample 1"), std::string::npos) << e;
}

TEST(NpyIngest, H5ArraySubjectsWithIdsAndLabels) {
  const std::string d = scratch_dir("h5-array");
  on_rank0([&] {
    NwbWriter w(d + "/arr.h5", false);
    std::vector<double> v;
    for (int s = 0; s < 2; ++s)
      for (int u = 0; u < 4; ++u)
        for (int t = 0; t < 6; ++t) v.push_back(100 * s + 10 * u + t);
    w.numbers("/grp/bold", {2, 4, 6}, v, H5T_IEEE_F32LE);
    w.strings("/grp/region_names", {"Precentral_L", "Precentral_R", "Insula_L", "Thalamus_R"});
    w.strings("/grp/subject_ids", {"S 01", "S/02"});
  });
  on_rank0([&] { std::ofstream(d + "/lobes.csv") << "Precentral_*,frontal\nInsula_*,insula\n"; });
  ingest::Options o;
  o.format = "h5-array";
  o.inputs = {d + "/arr.h5"};
  o.dataset = "/grp/bold";
  o.out = d + "/c";
  o.sample_interval = 2;
  o.region_map = d + "/lobes.csv";
  auto sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  ASSERT_EQ(sum.animals.size(), 2u);
  EXPECT_EQ(sum.animals[0].animal_id, "S_01");
  EXPECT_EQ(sum.animals[1].animal_id, "S_02");
  EXPECT_EQ(sum.animals[1].dropped_unmapped, 1);  // Thalamus_R
  AnimalMeta m = read_animal_meta(sum.animals[1].path, MPI_COMM_WORLD);
  EXPECT_EQ(m.region_names, (std::vector<std::string>{"frontal", "insula"}));
  auto a = activity_of(sum.animals[1].path);
  EXPECT_EQ(a[std::size_t(2 * 6 + 5)], 100 + 20 + 5);
  o.dataset = "/grp/none";
  std::string e = error_of([&] { ingest::run_ingest(o, MPI_COMM_WORLD); });
  EXPECT_NE(e.find("/grp/none"), std::string::npos) << e;
}

TEST(RealData, ZebrafishFish6ToDivisions) {
  const std::string d = scratch_dir("real-zebrafish");
  ingest::Options o;
  o.format = "npy";
  o.inputs = {data_dir() + "/zebrafish-fish6/timeseries_regions_fish6.npy"};
  o.labels = data_dir() + "/zebrafish-fish6/region_acronyms.npy";
  o.region_map = source_dir() + "/configs/real-zebrafish-regions.ini";
  o.sample_interval = 1 / 1.1;
  o.animal_id = "fish6";
  o.normalise = "zscore";
  o.out = d + "/c";
  auto sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  ASSERT_EQ(sum.animals.size(), 1u);
  // All 70 regions are mapped; 3 traces are all zero in the data (RH, Pit, GG) and cannot be z-scored.
  EXPECT_EQ(sum.animals[0].dropped_unmapped, 0);
  EXPECT_EQ(sum.animals[0].dropped_constant, 3);
  EXPECT_EQ(sum.animals[0].n_units, 67);
  EXPECT_EQ(sum.animals[0].n_samples, 892);
  EXPECT_EQ(sum.regions, (std::vector<std::string>{"telencephalon", "diencephalon", "mesencephalon", "cerebellum",
                                                  "rhombencephalon", "periphery"}));
  AnimalData a = read_animal(sum.animals[0].path, MPI_COMM_WORLD);  // full format checks, own rows
  EXPECT_EQ(a.meta.unit_region[0], 5);  // OE -> periphery
  EXPECT_EQ(a.meta.unit_region[1], 0);  // OB -> telencephalon
}

TEST(RealData, FmriCohortToLobes) {
  const std::string d = scratch_dir("real-fmri");
  ingest::Options o;
  o.format = "h5-array";
  o.inputs = {data_dir() + "/nap-rsfmri-aal2/nap_aal2_bold.h5"};
  o.dataset = "/bold";
  o.region_map = source_dir() + "/configs/real-fmri-lobes.ini";
  o.sample_interval = 2.0;
  o.normalise = "zscore";
  o.out = d + "/c";
  auto sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  ASSERT_EQ(sum.animals.size(), 11u);
  EXPECT_EQ(sum.animals[0].animal_id, "NAP_001");
  for (auto& a : sum.animals) {
    EXPECT_EQ(a.n_units, 94);
    EXPECT_EQ(a.dropped_unmapped, 0);
  }
  EXPECT_EQ(sum.regions.size(), 7u);
  Cohort c = read_cohort(d + "/c", MPI_COMM_WORLD);
  EXPECT_EQ(c.animals.size(), 11u);
  // Without --sample-interval the file's NaN interval is refused.
  o.sample_interval = 0;
  o.out = d + "/c2";
  std::string e = error_of([&] { ingest::run_ingest(o, MPI_COMM_WORLD); });
  EXPECT_NE(e.find("sampling_interval_s"), std::string::npos) << e;
}
