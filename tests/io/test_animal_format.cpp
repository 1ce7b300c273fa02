// The animal file format (docs/format.md): round trip at any rank count, and a clear error
// naming the file and dataset for every kind of bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/rng.hpp"
#include "io/animal.hpp"
#include "test_util.hpp"

using namespace cohortnet;

namespace {

AnimalMeta small_meta(const std::string& id, int n = 7, int t = 11) {
  AnimalMeta m;
  m.animal_id = id;
  m.species = "simulated";
  m.atlas = "none";
  m.provenance = "test";
  m.sample_interval = 0.01;
  m.n_units = n;
  m.n_samples = t;
  m.region_names = {"A", "B", "C"};
  for (int i = 0; i < n; ++i) m.unit_region.push_back(i % 3);
  m.trial_starts = {0, t / 2};
  for (int s = 0; s < t; ++s) m.behaviour.push_back(s % 2);
  m.behaviour_names = {"rest", "run"};
  m.input_names = {"stim"};
  return m;
}

double value_at(std::int64_t unit, std::int64_t sample) { return std::sin(0.3 * double(unit) + 0.01 * double(sample)) + double(unit); }

// Writes a valid animal collectively from a function of (unit, sample).
void write_valid(const std::string& path, const AnimalMeta& m, MPI_Comm comm) {
  RowRange rows = own_rows(PetscInt(m.n_units), comm);
  std::vector<double> local;
  for (auto i = rows.begin; i < rows.end; ++i)
    for (std::int64_t s = 0; s < m.n_samples; ++s) local.push_back(value_at(i, s));
  std::vector<double> inputs(size_t(m.n_samples), 0.5);
  write_animal(path, m, rows, local, inputs, comm);
}

// Writes a file on rank 0 only, by hand and with HDF5's default (serial) driver as h5py does, so
// that it can be broken on purpose. Errors are agreed so no rank waits for a failed rank 0.
void write_raw(const std::string& path, const std::function<void(h5::File&)>& body) {
  std::string err;
  if (comm_rank(MPI_COMM_WORLD) == 0) {
    try {
      h5::File f{h5::Handle(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose), path,
                 MPI_COMM_SELF};
      if (!f.h.valid()) fail("cannot create ", path);
      body(f);
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  agree(MPI_COMM_WORLD, err);
}

// A valid animal written by hand with given activity (rows x cols) and labels; `tweak` breaks it.
void write_manual(const std::string& path, int n, int t, const std::vector<double>& act, std::vector<std::int64_t> labels,
                  std::vector<std::string> regions, const std::function<void(h5::File&)>& tweak = {}) {
  write_raw(path, [&](h5::File& f) {
    h5::set_attr(f, "/", "format", kAnimalFormat);
    h5::set_attr(f, "/", "format_version", kAnimalFormatVersion);
    h5::set_attr(f, "/", "animal_id", "m1");
    h5::set_attr(f, "/", "sample_interval", 0.05);
    h5::write_doubles(f, "/activity", {hsize_t(n), hsize_t(t)}, act.data());
    h5::write_ints(f, "/unit_region", {hsize_t(labels.size())}, labels.data());
    h5::write_strings(f, "/region_names", regions);
    if (tweak) tweak(f);
  });
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR_HAS(stmt, ...)                                      \
  do {                                                                   \
    std::string msg_ = error_of([&] { stmt; });                          \
    EXPECT_FALSE(msg_.empty()) << "no error from " #stmt;                \
    for (const char* part : {__VA_ARGS__})                               \
      EXPECT_NE(msg_.find(part), std::string::npos) << "error '" << msg_ << "' lacks '" << part << "'"; \
  } while (0)

class AnimalFormat : public ::testing::Test {
 protected:
  void SetUp() override { dir = testutil::scratch_dir(::testing::UnitTest::GetInstance()->current_test_info()->name()); }
  std::string dir;
};

}  // namespace

TEST_F(AnimalFormat, RoundTripAtThisRankCount) {
  AnimalMeta m = small_meta("m01");
  const std::string path = dir + "/m01.h5";
  write_valid(path, m, MPI_COMM_WORLD);
  AnimalData a = read_animal(path, MPI_COMM_WORLD);
  EXPECT_EQ(a.meta.animal_id, "m01");
  EXPECT_EQ(a.meta.n_units, 7);
  EXPECT_EQ(a.meta.n_samples, 11);
  EXPECT_EQ(a.meta.region_names, m.region_names);
  EXPECT_EQ(a.meta.unit_region, m.unit_region);
  EXPECT_EQ(a.meta.trial_starts, m.trial_starts);
  EXPECT_EQ(a.meta.behaviour, m.behaviour);
  EXPECT_EQ(a.meta.behaviour_names, m.behaviour_names);
  EXPECT_EQ(a.meta.input_names, m.input_names);
  EXPECT_DOUBLE_EQ(a.meta.sample_interval, 0.01);
  EXPECT_EQ(a.meta.species, "simulated");
  ASSERT_EQ(a.activity.size(), size_t(a.rows.count()) * 11);
  for (auto i = a.rows.begin; i < a.rows.end; ++i)
    for (int s = 0; s < 11; ++s) EXPECT_EQ(a.activity[size_t((i - a.rows.begin) * 11 + s)], value_at(i, s));
  ASSERT_EQ(a.inputs.size(), 11u);
  EXPECT_EQ(a.inputs[3], 0.5);
  EXPECT_EQ(a.meta.units_of(1), (std::vector<std::int64_t>{1, 4}));
  // No temporary left behind.
  int n_files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) n_files += e.is_regular_file();
  EXPECT_EQ(n_files, 1);
}

TEST_F(AnimalFormat, ReadsDoNotDependOnWriterRankCount) {
  // Written by rank 0 alone, read by all ranks: every rank gets exactly its rows.
  AnimalMeta m = small_meta("solo", 10, 5);
  const std::string path = dir + "/solo.h5";
  if (comm_rank(MPI_COMM_WORLD) == 0) write_valid(path, m, MPI_COMM_SELF);
  MPI_Barrier(MPI_COMM_WORLD);
  AnimalData a = read_animal(path, MPI_COMM_WORLD);
  RowRange want = own_rows(10, MPI_COMM_WORLD);
  EXPECT_EQ(a.rows.begin, want.begin);
  EXPECT_EQ(a.rows.end, want.end);
  long total = long(a.rows.count()), sum = 0;
  MPI_Allreduce(&total, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(sum, 10);
  for (auto i = a.rows.begin; i < a.rows.end; ++i)
    for (int s = 0; s < 5; ++s) EXPECT_EQ(a.activity[size_t((i - a.rows.begin) * 5 + s)], value_at(i, s));
}

TEST_F(AnimalFormat, H5pyStyleVariableLengthStringsAreRead) {
  const std::string path = dir + "/vlen.h5";
  write_raw(path, [&](h5::File& f) {
    h5::set_attr(f, "/", "format", kAnimalFormat);
    h5::set_attr(f, "/", "animal_id", "v1");
    h5::set_attr(f, "/", "sample_interval", 0.1);
    std::vector<double> act(6, 1.0);
    h5::write_doubles(f, "/activity", {2, 3}, act.data());
    std::vector<std::int64_t> lab{0, 1};
    h5::write_ints(f, "/unit_region", {2}, lab.data());
    // variable-length UTF-8, as h5py.string_dtype() writes
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hsize_t n = 2;
    hid_t sp = H5Screate_simple(1, &n, nullptr);
    hid_t d = H5Dcreate2(f.id(), "/region_names", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char* names[2] = {"Vis\xC3\xA9", "LM"};
    H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, names);
    H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(t);
  });
  AnimalMeta m = read_animal_meta(path, MPI_COMM_WORLD);
  EXPECT_EQ(m.region_names, (std::vector<std::string>{"Vis\xC3\xA9", "LM"}));
}

TEST_F(AnimalFormat, MissingFileIsNamed) {
  EXPECT_ERROR_HAS(read_animal(dir + "/nope.h5", MPI_COMM_WORLD), "nope.h5", "does not exist");
}

TEST_F(AnimalFormat, ForeignFileIsRefused) {
  const std::string path = dir + "/notes.h5";
  if (comm_rank(MPI_COMM_WORLD) == 0) std::ofstream(path) << "this is a text file, not HDF5\n";
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_ERROR_HAS(read_animal(path, MPI_COMM_WORLD), "notes.h5", "not an HDF5 file");
  // HDF5, but not ours.
  const std::string other = dir + "/other.h5";
  write_raw(other, [](h5::File& f) { h5::set_attr(f, "/", "creator", "someone else"); });
  EXPECT_ERROR_HAS(read_animal(other, MPI_COMM_WORLD), "other.h5", "not a cohortnet animal file");
}

TEST_F(AnimalFormat, TruncatedFileIsRefused) {
  AnimalMeta m = small_meta("tr", 50, 400);
  const std::string path = dir + "/tr.h5";
  write_valid(path, m, MPI_COMM_WORLD);
  if (comm_rank(MPI_COMM_WORLD) == 0) std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  MPI_Barrier(MPI_COMM_WORLD);
  std::string msg = error_of([&] { read_animal(path, MPI_COMM_WORLD); });
  EXPECT_NE(msg.find("tr.h5"), std::string::npos) << msg;
  EXPECT_TRUE(msg.find("truncated") != std::string::npos || msg.find("not an HDF5") != std::string::npos) << msg;
}

TEST_F(AnimalFormat, NaNAndInfAreNamedWithUnitAndSample) {
  std::vector<double> act(4 * 5, 0.1);
  act[2 * 5 + 3] = std::numeric_limits<double>::quiet_NaN();
  write_manual(dir + "/nan.h5", 4, 5, act, {0, 0, 1, 1}, {"A", "B"});
  EXPECT_ERROR_HAS(read_animal(dir + "/nan.h5", MPI_COMM_WORLD), "nan.h5", "/activity", "NaN", "unit 2", "sample 3");
  act[2 * 5 + 3] = std::numeric_limits<double>::infinity();
  write_manual(dir + "/inf.h5", 4, 5, act, {0, 0, 1, 1}, {"A", "B"});
  EXPECT_ERROR_HAS(read_animal(dir + "/inf.h5", MPI_COMM_WORLD), "inf.h5", "Inf");
}

TEST_F(AnimalFormat, ShapeAndLabelErrors) {
  std::vector<double> act(4 * 5, 0.1);
  write_manual(dir + "/short.h5", 4, 5, act, {0, 0, 1}, {"A", "B"});
  EXPECT_ERROR_HAS(read_animal(dir + "/short.h5", MPI_COMM_WORLD), "short.h5", "/unit_region", "3 labels", "4 units");
  write_manual(dir + "/label.h5", 4, 5, act, {0, 0, 1, 5}, {"A", "B"});
  EXPECT_ERROR_HAS(read_animal(dir + "/label.h5", MPI_COMM_WORLD), "label.h5", "unit 3", "label 5");
  write_manual(dir + "/empty.h5", 4, 5, act, {0, 0, 0, 0}, {"A", "B"});
  EXPECT_ERROR_HAS(read_animal(dir + "/empty.h5", MPI_COMM_WORLD), "empty.h5", "region 'B'", "no units");
  std::vector<double> one(4, 0.1);
  write_manual(dir + "/one.h5", 4, 1, one, {0, 0, 1, 1}, {"A", "B"});
  EXPECT_ERROR_HAS(read_animal(dir + "/one.h5", MPI_COMM_WORLD), "one.h5", "1 samples", "at least 2");
  write_manual(dir + "/dup.h5", 4, 5, act, {0, 0, 1, 1}, {"A", "A"});
  EXPECT_ERROR_HAS(read_animal(dir + "/dup.h5", MPI_COMM_WORLD), "dup.h5", "twice");
  write_manual(dir + "/trials.h5", 4, 5, act, {0, 0, 1, 1}, {"A", "B"}, [](h5::File& f) {
    std::vector<std::int64_t> ts{0, 7};
    h5::write_ints(f, "/trial_starts", {2}, ts.data());
  });
  EXPECT_ERROR_HAS(read_animal(dir + "/trials.h5", MPI_COMM_WORLD), "trials.h5", "/trial_starts", "beyond");
  write_manual(dir + "/beh.h5", 4, 5, act, {0, 0, 1, 1}, {"A", "B"}, [](h5::File& f) {
    std::vector<std::int64_t> b{0, 1, 0};
    h5::write_ints(f, "/behaviour", {3}, b.data());
    h5::write_strings(f, "/behaviour_names", {"x", "y"});
  });
  EXPECT_ERROR_HAS(read_animal(dir + "/beh.h5", MPI_COMM_WORLD), "beh.h5", "/behaviour", "3 entries");
  std::vector<double> act3(2 * 3 * 4, 0.0);
  write_raw(dir + "/3d.h5", [&](h5::File& f) {
    h5::set_attr(f, "/", "format", kAnimalFormat);
    h5::set_attr(f, "/", "animal_id", "m3");
    h5::set_attr(f, "/", "sample_interval", 0.05);
    h5::write_doubles(f, "/activity", {2, 3, 4}, act3.data());
  });
  EXPECT_ERROR_HAS(read_animal(dir + "/3d.h5", MPI_COMM_WORLD), "3d.h5", "/activity", "2-D");
  write_raw(dir + "/noregions.h5", [&](h5::File& f) {
    h5::set_attr(f, "/", "format", kAnimalFormat);
    h5::set_attr(f, "/", "animal_id", "m4");
    h5::set_attr(f, "/", "sample_interval", 0.05);
    h5::write_doubles(f, "/activity", {4, 5}, act.data());
  });
  EXPECT_ERROR_HAS(read_animal(dir + "/noregions.h5", MPI_COMM_WORLD), "noregions.h5", "/region_names", "missing");
}

TEST_F(AnimalFormat, ImpossibleSizeIsRefusedBeforeAllocating) {
  // A declared 2e6 x 2e6 dataset with no storage written: 32 TB, cannot fit.
  write_raw(dir + "/huge.h5", [&](h5::File& f) {
    h5::set_attr(f, "/", "format", kAnimalFormat);
    h5::set_attr(f, "/", "animal_id", "big");
    h5::set_attr(f, "/", "sample_interval", 0.05);
    hsize_t dims[2] = {2000000, 2000000}, chunk[2] = {1000, 1000};
    hid_t sp = H5Screate_simple(2, dims, nullptr);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, 2, chunk);
    hid_t d = H5Dcreate2(f.id(), "/activity", H5T_IEEE_F64LE, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Dclose(d);
    H5Pclose(pl);
    H5Sclose(sp);
    std::vector<std::int64_t> lab(2000000, 0);
    h5::write_ints(f, "/unit_region", {lab.size()}, lab.data());
    h5::write_strings(f, "/region_names", {"A"});
  });
  EXPECT_ERROR_HAS(read_animal(dir + "/huge.h5", MPI_COMM_WORLD), "huge.h5", "GB", "available");
}

TEST_F(AnimalFormat, BadAnimalIdIsRefusedOnWrite) {
  AnimalMeta m = small_meta("bad id; rm -rf");
  EXPECT_ERROR_HAS(write_valid(dir + "/x.h5", m, MPI_COMM_WORLD), "animal_id");
  EXPECT_FALSE(std::filesystem::exists(dir + "/x.h5"));
}

TEST_F(AnimalFormat, CohortManifestAndChecks) {
  AnimalMeta a = small_meta("a1"), b = small_meta("a2");
  b.region_names = {"C", "D", "A"};
  write_valid(dir + "/a1.h5", a, MPI_COMM_WORLD);
  write_valid(dir + "/a2.h5", b, MPI_COMM_WORLD);
  // Without a manifest: every animal file, regions in order of first appearance.
  Cohort c = read_cohort(dir, MPI_COMM_WORLD);
  ASSERT_EQ(c.animals.size(), 2u);
  EXPECT_EQ(c.animals[1].animal_id, "a2");
  EXPECT_EQ(c.regions, (std::vector<std::string>{"A", "B", "C", "D"}));
  EXPECT_EQ(c.region_index("D"), 3);
  EXPECT_EQ(c.region_index("Z"), -1);
  // Manifest round trip keeps the order it gives.
  c.regions = {"D", "C", "B", "A"};
  write_cohort_manifest(c, MPI_COMM_WORLD);
  Cohort c2 = read_cohort(dir, MPI_COMM_WORLD);
  EXPECT_EQ(c2.regions, c.regions);
  EXPECT_EQ(c2.animals.size(), 2u);
  // A region outside the manifest's list fails that animal only, naming the file and the region.
  c.regions = {"A", "B", "C"};
  write_cohort_manifest(c, MPI_COMM_WORLD);
  {
    Cohort c3 = read_cohort(dir, MPI_COMM_WORLD);
    ASSERT_EQ(c3.animals.size(), 2u);
    EXPECT_EQ(c3.animals[0].problem, "");
    EXPECT_NE(c3.animals[1].problem.find("a2.h5"), std::string::npos) << c3.animals[1].problem;
    EXPECT_NE(c3.animals[1].problem.find("region 'D'"), std::string::npos) << c3.animals[1].problem;
    EXPECT_TRUE(std::filesystem::path(c3.animals[0].path).is_absolute()) << c3.animals[0].path;
    EXPECT_TRUE(std::filesystem::path(c3.dir).is_absolute()) << c3.dir;
  }
  // Duplicate animal ids.
  std::filesystem::path d2 = dir + "/dups";
  if (comm_rank(MPI_COMM_WORLD) == 0) std::filesystem::create_directories(d2);
  MPI_Barrier(MPI_COMM_WORLD);
  write_valid((d2 / "x.h5").string(), a, MPI_COMM_WORLD);
  write_valid((d2 / "y.h5").string(), a, MPI_COMM_WORLD);
  EXPECT_ERROR_HAS(read_cohort(d2.string(), MPI_COMM_WORLD), "animal id 'a1'", "x.h5", "y.h5");
  EXPECT_ERROR_HAS(read_cohort(dir + "/none", MPI_COMM_WORLD), "none", "not a folder");
}

// The memory guard reads this job's own cgroup (v2 and v1, limits on the path or a parent) and
// Slurm's request, not only the root cgroup.
TEST(Memory, JobCgroupAndSlurmLimits) {
  const std::string dir = testutil::scratch_dir("memory") + "/r" + std::to_string(comm_rank(MPI_COMM_WORLD));
  namespace fs = std::filesystem;
  fs::create_directories(dir + "/cg/system.slice/job_7/step_0");
  fs::create_directories(dir + "/cg/memory/slurm/uid_0/job_8");
  std::ofstream(dir + "/cg/memory.max") << "max\n";
  std::ofstream(dir + "/cg/system.slice/job_7/memory.max") << "2147483648\n";  // the job's, on a parent
  std::ofstream(dir + "/cg/system.slice/job_7/step_0/memory.max") << "max\n";
  std::ofstream(dir + "/cg/memory/slurm/uid_0/job_8/memory.limit_in_bytes") << "1073741824\n";
  std::ofstream(dir + "/v2") << "0::/system.slice/job_7/step_0\n";
  std::ofstream(dir + "/v1") << "12:cpu,cpuacct:/slurm/uid_0/job_8\n9:memory:/slurm/uid_0/job_8\n";
  unsetenv("SLURM_MEM_PER_CPU");
  unsetenv("SLURM_MEM_PER_NODE");
  auto v2 = job_memory_limits(dir + "/v2", dir + "/cg");
  ASSERT_EQ(v2.size(), 1u);
  EXPECT_EQ(v2[0], 2147483648ull);
  auto v1 = job_memory_limits(dir + "/v1", dir + "/cg");
  ASSERT_EQ(v1.size(), 1u);
  EXPECT_EQ(v1[0], 1073741824ull);
  setenv("SLURM_MEM_PER_CPU", "100", 1);
  setenv("SLURM_CPUS_ON_NODE", "4", 1);
  auto sl = job_memory_limits(dir + "/none", dir + "/empty");
  ASSERT_EQ(sl.size(), 1u);
  EXPECT_EQ(sl[0], 400ull << 20);
  unsetenv("SLURM_MEM_PER_CPU");
  setenv("SLURM_MEM_PER_NODE", "300", 1);
  sl = job_memory_limits(dir + "/none", dir + "/empty");
  ASSERT_EQ(sl.size(), 1u);
  EXPECT_EQ(sl[0], 300ull << 20);
  unsetenv("SLURM_MEM_PER_NODE");
  unsetenv("SLURM_CPUS_ON_NODE");
}
