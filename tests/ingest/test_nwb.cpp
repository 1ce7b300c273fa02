// NWB input: calcium imaging and spiking units found by neurodata_type, transposition, sampling,
// trials, atlas mapping, normalisation, and every bad-input case (errors agreed on all ranks).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "ingest/nwb.hpp"
#include "ingest_test_util.hpp"
#include "io/animal.hpp"
#include "test_util.hpp"

using namespace cohortnet;
using namespace cohortnet::testutil;
namespace fs = std::filesystem;

namespace {

void write_text(const std::string& path, const std::string& text) {
  on_rank0([&] { std::ofstream(path) << text; });
}

}  // namespace

TEST(IngestNwb, CalciumTransposedWithPlaneLocation) {
  const std::string d = scratch_dir("nwb-calcium");
  CalciumSpec s;
  s.rois = 5;
  s.samples = 40;
  s.rate = 20;
  on_rank0([&] { write_calcium_nwb(d + "/a.nwb", s); });
  auto sum = ingest::run_ingest(nwb_options(d + "/a.nwb", d + "/cohort"), MPI_COMM_WORLD);
  ASSERT_EQ(sum.animals.size(), 1u);
  EXPECT_EQ(sum.animals[0].animal_id, "mouse-01");  // the subject id (sanitised)
  const std::string out = d + "/cohort/mouse-01.h5";
  AnimalMeta m = read_animal_meta(out, MPI_COMM_WORLD);
  EXPECT_EQ(m.n_units, 5);
  EXPECT_EQ(m.n_samples, 40);
  EXPECT_NEAR(m.sample_interval, 0.05, 1e-9);
  ASSERT_EQ(m.region_names, std::vector<std::string>{"VISp"});
  auto a = activity_of(out);
  for (int u = 0; u < 5; ++u)
    for (int t = 0; t < 40; ++t)  // stored float32 [time x ROI]; read as double units x samples
      ASSERT_NEAR(a[std::size_t(u * 40 + t)], calcium_value(u, t), 1e-6) << "unit " << u << " sample " << t;
  EXPECT_EQ(attr_of(out, "normalisation"), "none");
  EXPECT_NE(attr_of(out, "provenance").find("plane_A_series"), std::string::npos);
  Cohort c = read_cohort(d + "/cohort", MPI_COMM_WORLD);
  EXPECT_EQ(c.animals.size(), 1u);
  EXPECT_EQ(c.regions, std::vector<std::string>{"VISp"});
}

TEST(IngestNwb, RoiColumnRegionMapAndZscore) {
  const std::string d = scratch_dir("nwb-map");
  CalciumSpec s;
  s.rois = 6;
  s.column_name = "brain_area";
  s.column = {"VISp", "VISl", "CA1", "VISp", "XYZ", "CA1"};
  on_rank0([&] { write_calcium_nwb(d + "/a.nwb", s); });
  write_text(d + "/map.csv", "fine,region\nVISp,visual cortex\nVISl,visual cortex\nCA*,hippocampus\nLGd,thalamus\n");
  auto o = nwb_options(d + "/a.nwb", d + "/cohort");
  o.region_column = "brain_area";
  o.region_map = d + "/map.csv";
  o.normalise = "zscore";
  auto sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  ASSERT_EQ(sum.animals.size(), 1u);
  EXPECT_EQ(sum.animals[0].dropped_unmapped, 1);  // XYZ
  EXPECT_EQ(sum.regions, (std::vector<std::string>{"visual cortex", "hippocampus"}));  // map order; thalamus unused
  const std::string out = sum.animals[0].path;
  AnimalMeta m = read_animal_meta(out, MPI_COMM_WORLD);
  ASSERT_EQ(m.n_units, 5);
  EXPECT_EQ(m.unit_region, (std::vector<int>{0, 0, 1, 0, 1}));
  auto a = activity_of(out);
  for (int u = 0; u < 5; ++u) {
    double mean = 0, var = 0;
    for (int t = 0; t < m.n_samples; ++t) mean += a[std::size_t(u * m.n_samples + t)];
    mean /= double(m.n_samples);
    for (int t = 0; t < m.n_samples; ++t) var += std::pow(a[std::size_t(u * m.n_samples + t)] - mean, 2);
    EXPECT_NEAR(mean, 0, 1e-12);
    EXPECT_NEAR(var / double(m.n_samples), 1, 1e-9);
  }
  // Unit 4 of the file (XYZ) was dropped: the 4th unit written is file unit 5 (CA1).
  const int file_u = 5;
  double mean = 0;
  for (int t = 0; t < m.n_samples; ++t) mean += calcium_value(file_u, t);
  mean /= double(m.n_samples);
  double var = 0;
  for (int t = 0; t < m.n_samples; ++t) var += std::pow(calcium_value(file_u, t) - mean, 2);
  EXPECT_NEAR(a[std::size_t(4 * m.n_samples + 7)], (calcium_value(file_u, 7) - mean) / std::sqrt(var / double(m.n_samples)),
              1e-5);
  EXPECT_EQ(attr_of(out, "normalisation"), "zscore");
  EXPECT_NE(attr_of(out, "provenance").find("map.csv"), std::string::npos);
}

TEST(IngestNwb, TwoAnimalsDifferentFineAreasShareRegions) {
  const std::string d = scratch_dir("nwb-cohort");
  CalciumSpec s1, s2;
  s1.location = "VISp";
  s2.location = "VISal";
  s2.subject = "mouse-02";
  on_rank0([&] {
    write_calcium_nwb(d + "/a.nwb", s1);
    write_calcium_nwb(d + "/b.nwb", s2);
  });
  write_text(d + "/map.ini", "# Allen CCF -> study regions\n[visual]\nVISp = visual cortex ; primary\nVISal = visual cortex\n");
  auto o = nwb_options(d + "/a.nwb", d + "/cohort");
  o.inputs.push_back(d + "/b.nwb");
  o.region_map = d + "/map.ini";
  o.name = "two";
  auto sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  Cohort c = read_cohort(d + "/cohort", MPI_COMM_WORLD);
  ASSERT_EQ(c.animals.size(), 2u);
  EXPECT_EQ(c.name, "two");
  EXPECT_EQ(c.regions, std::vector<std::string>{"visual cortex"});
  EXPECT_EQ(c.animals[1].animal_id, "mouse-02");
}

TEST(IngestNwb, SameSubjectTwoSessionsGetSessionSuffix) {
  const std::string d = scratch_dir("nwb-sessions");
  CalciumSpec s1, s2;
  s2.session = "open field, day 2";
  on_rank0([&] {
    write_calcium_nwb(d + "/a.nwb", s1);
    write_calcium_nwb(d + "/b.nwb", s2);
  });
  auto o = nwb_options(d + "/a.nwb", d + "/cohort");
  o.inputs.push_back(d + "/b.nwb");
  auto sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  ASSERT_EQ(sum.animals.size(), 2u);
  EXPECT_EQ(sum.animals[0].animal_id, "mouse-01_open_field_day_1");
  EXPECT_EQ(sum.animals[1].animal_id, "mouse-01_open_field_day_2");
}

TEST(IngestNwb, TimestampsNearUniformAcceptedJitteryRefused) {
  const std::string d = scratch_dir("nwb-ts");
  CalciumSpec s;
  s.timestamps = true;
  s.rate = 30;
  s.jitter = 0.01;  // 1% on some intervals: fine
  on_rank0([&] { write_calcium_nwb(d + "/ok.nwb", s); });
  s.jitter = 0.5;  // 50%: not one sample interval
  on_rank0([&] { write_calcium_nwb(d + "/bad.nwb", s); });
  auto sum = ingest::run_ingest(nwb_options(d + "/ok.nwb", d + "/c1"), MPI_COMM_WORLD);
  AnimalMeta m = read_animal_meta(sum.animals[0].path, MPI_COMM_WORLD);
  EXPECT_NEAR(m.sample_interval, 1.0 / 30, 1e-3);
  std::string e = error_of([&] { ingest::run_ingest(nwb_options(d + "/bad.nwb", d + "/c2"), MPI_COMM_WORLD); });
  EXPECT_NE(e.find("bad.nwb"), std::string::npos) << e;
  EXPECT_NE(e.find("timestamps"), std::string::npos) << e;
  EXPECT_NE(e.find("near-uniform"), std::string::npos) << e;
}

TEST(IngestNwb, TrialsConcatenatedAndAveragedPerCondition) {
  const std::string d = scratch_dir("nwb-trials");
  CalciumSpec s;
  s.rois = 3;
  s.samples = 100;
  s.rate = 10;  // t = 0.0, 0.1, ... 9.9
  s.trial_start = {0.0, 2.0, 5.0, 7.0};
  s.trial_stop = {1.0, 3.2, 6.0, 8.0};  // 10, 12, 10, 10 samples
  s.trial_condition = {"left", "right", "left", "right"};
  on_rank0([&] { write_calcium_nwb(d + "/t.nwb", s); });
  auto o = nwb_options(d + "/t.nwb", d + "/cat");
  auto sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  AnimalMeta m = read_animal_meta(sum.animals[0].path, MPI_COMM_WORLD);
  EXPECT_EQ(m.trial_starts, (std::vector<std::int64_t>{0, 10, 22, 32}));
  EXPECT_EQ(m.n_samples, 42);
  auto a = activity_of(sum.animals[0].path);
  EXPECT_NEAR(a[std::size_t(1 * 42 + 10)], calcium_value(1, 20), 1e-6);  // trial 2 starts at t=2.0 = sample 20

  o.out = d + "/avg";
  o.trials = "average";
  o.condition_column = "stimulus";
  sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  m = read_animal_meta(sum.animals[0].path, MPI_COMM_WORLD);
  EXPECT_EQ(m.trial_starts, (std::vector<std::int64_t>{0, 10}));  // left (10), right (min 12,10 = 10)
  EXPECT_EQ(m.n_samples, 20);
  EXPECT_EQ(m.behaviour_names, (std::vector<std::string>{"left", "right"}));
  a = activity_of(sum.animals[0].path);
  for (int t = 0; t < 10; ++t) {
    EXPECT_NEAR(a[std::size_t(2 * 20 + t)], (calcium_value(2, t) + calcium_value(2, 50 + t)) / 2, 1e-6);
    EXPECT_NEAR(a[std::size_t(2 * 20 + 10 + t)], (calcium_value(2, 20 + t) + calcium_value(2, 70 + t)) / 2, 1e-6);
  }
  o.condition_column = "no_such_column";
  std::string e = error_of([&] { ingest::run_ingest(o, MPI_COMM_WORLD); });
  EXPECT_NE(e.find("no_such_column"), std::string::npos) << e;
}

TEST(IngestNwb, SpikesBinnedRegionsFromElectrodesEmptyUnitDropped) {
  const std::string d = scratch_dir("nwb-spikes");
  SpikeSpec s;
  s.spikes = {{0.01, 0.02, 0.55, 0.95}, {}, {0.33, 0.34, 0.35}, {0.0, 0.99}};
  s.electrode_location = {"CA1", "DG", "CA1"};
  s.unit_electrode = {0, 1, 2, 1};
  on_rank0([&] { write_spikes_nwb(d + "/s.nwb", s); });
  auto o = nwb_options(d + "/s.nwb", d + "/cohort");
  o.bin_width = 0.1;
  o.smooth_kernel = "none";
  auto sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  ASSERT_EQ(sum.animals.size(), 1u);
  EXPECT_EQ(sum.animals[0].dropped_no_spikes, 1);
  EXPECT_EQ(sum.animals[0].animal_id, "rat-7");
  AnimalMeta m = read_animal_meta(sum.animals[0].path, MPI_COMM_WORLD);
  EXPECT_EQ(m.n_units, 3);
  EXPECT_EQ(m.region_names, (std::vector<std::string>{"CA1", "DG"}));
  EXPECT_EQ(m.unit_region, (std::vector<int>{0, 0, 1}));
  EXPECT_NEAR(m.sample_interval, 0.1, 1e-12);
  auto a = activity_of(sum.animals[0].path);
  const auto T = std::size_t(m.n_samples);
  ASSERT_EQ(T, 11u);  // 0 .. 0.99 s in 0.1 s bins
  // Rates in Hz: spikes per bin / bin width; sums give the spike counts back.
  EXPECT_NEAR(std::accumulate(a.begin(), a.begin() + long(T), 0.0) * 0.1, 4, 1e-9);
  EXPECT_NEAR(a[0], 20, 1e-9);       // two spikes in [0, 0.1)
  EXPECT_NEAR(a[T + 3], 30, 1e-9);   // unit 2: three spikes in [0.3, 0.4)
  // Gaussian smoothing keeps the spike count (edges renormalised) and spreads it.
  o.out = d + "/smooth";
  o.smooth_kernel = "gaussian";
  o.smooth_width = 0.1;
  sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  a = activity_of(sum.animals[0].path);
  EXPECT_LT(a[T + 3], 30);
  EXPECT_GT(a[T + 2], 0);
  auto r = ingest::bin_spikes({1.05}, 0, 0.1, 21, 0.1);  // far from the edges: the mass is kept exactly
  EXPECT_NEAR(std::accumulate(r.begin(), r.end(), 0.0) * 0.1, 1, 1e-6);
}

TEST(IngestNwb, SpikesRegionFromUnitsLocationColumn) {
  const std::string d = scratch_dir("nwb-unitloc");
  SpikeSpec s;
  s.spikes = {{0.1, 0.2}, {0.3, 1.0}};
  s.unit_location = {"MOp", "MOs"};
  on_rank0([&] { write_spikes_nwb(d + "/s.nwb", s); });
  auto sum = ingest::run_ingest(nwb_options(d + "/s.nwb", d + "/cohort"), MPI_COMM_WORLD);
  EXPECT_EQ(sum.animals[0].regions, (std::vector<std::string>{"MOp", "MOs"}));
}

// ---- bad inputs: each error names the file and what is wrong, on every rank ----

TEST(IngestNwbBad, NotNwb) {
  const std::string d = scratch_dir("nwb-bad-plain");
  on_rank0([&] {
    NwbWriter w(d + "/plain.h5", false);
    w.numbers("/data", {3}, {1, 2, 3});
  });
  write_text(d + "/text.nwb", "this is not HDF5\n");
  std::string e = error_of([&] { ingest::run_ingest(nwb_options(d + "/plain.h5", d + "/c"), MPI_COMM_WORLD); });
  EXPECT_NE(e.find("plain.h5"), std::string::npos) << e;
  EXPECT_NE(e.find("not an NWB file"), std::string::npos) << e;
  e = error_of([&] { ingest::run_ingest(nwb_options(d + "/text.nwb", d + "/c"), MPI_COMM_WORLD); });
  EXPECT_NE(e.find("text.nwb"), std::string::npos) << e;
  EXPECT_NE(e.find("not an HDF5 file"), std::string::npos) << e;
  e = error_of([&] { ingest::run_ingest(nwb_options(d + "/missing.nwb", d + "/c"), MPI_COMM_WORLD); });
  EXPECT_NE(e.find("missing.nwb"), std::string::npos) << e;
}

TEST(IngestNwbBad, SeriesWithoutRegion) {
  const std::string d = scratch_dir("nwb-bad-region");
  CalciumSpec s;
  s.location = "";
  on_rank0([&] { write_calcium_nwb(d + "/noloc.nwb", s); });
  s.location = "VISp";
  s.rois_dataset = false;
  on_rank0([&] { write_calcium_nwb(d + "/norois.nwb", s); });
  std::string e = error_of([&] { ingest::run_ingest(nwb_options(d + "/noloc.nwb", d + "/c"), MPI_COMM_WORLD); });
  EXPECT_NE(e.find("noloc.nwb"), std::string::npos) << e;
  EXPECT_NE(e.find("plane_A_series"), std::string::npos) << e;
  EXPECT_NE(e.find("no region information"), std::string::npos) << e;
  e = error_of([&] { ingest::run_ingest(nwb_options(d + "/norois.nwb", d + "/c"), MPI_COMM_WORLD); });
  EXPECT_NE(e.find("no region information"), std::string::npos) << e;
  SpikeSpec sp;
  sp.spikes = {{0.1, 0.5}};
  on_rank0([&] { write_spikes_nwb(d + "/units.nwb", sp); });
  e = error_of([&] { ingest::run_ingest(nwb_options(d + "/units.nwb", d + "/c"), MPI_COMM_WORLD); });
  EXPECT_NE(e.find("units.nwb"), std::string::npos) << e;
  EXPECT_NE(e.find("no region information"), std::string::npos) << e;
}

TEST(IngestNwbBad, NanNamesDatasetAndUnit) {
  const std::string d = scratch_dir("nwb-bad-nan");
  CalciumSpec s;
  s.nan_roi = 2;
  s.nan_sample = 17;
  on_rank0([&] { write_calcium_nwb(d + "/nan.nwb", s); });
  std::string e = error_of([&] { ingest::run_ingest(nwb_options(d + "/nan.nwb", d + "/c"), MPI_COMM_WORLD); });
  EXPECT_NE(e.find("nan.nwb"), std::string::npos) << e;
  EXPECT_NE(e.find("plane_A_series/data"), std::string::npos) << e;
  EXPECT_NE(e.find("NaN at ROI 2"), std::string::npos) << e;
  EXPECT_NE(e.find("sample 17"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(d + "/c/mouse-01.h5"));
}

TEST(IngestNwbBad, MappingLeavesNothing) {
  const std::string d = scratch_dir("nwb-bad-map");
  CalciumSpec s;
  on_rank0([&] { write_calcium_nwb(d + "/a.nwb", s); });
  write_text(d + "/map.csv", "LGd,thalamus\n");
  auto o = nwb_options(d + "/a.nwb", d + "/c");
  o.region_map = d + "/map.csv";
  std::string e = error_of([&] { ingest::run_ingest(o, MPI_COMM_WORLD); });
  EXPECT_NE(e.find("map.csv"), std::string::npos) << e;
  EXPECT_NE(e.find("leaves no unit"), std::string::npos) << e;
  write_text(d + "/dup.csv", "VISp,visual\nVISp,motor\n");
  o.region_map = d + "/dup.csv";
  e = error_of([&] { ingest::run_ingest(o, MPI_COMM_WORLD); });
  EXPECT_NE(e.find("dup.csv line 2"), std::string::npos) << e;
}

TEST(IngestNwbBad, DffAsGivenNeedsDfOverF) {
  const std::string d = scratch_dir("nwb-bad-dff");
  CalciumSpec s;
  s.container = "Fluorescence";
  on_rank0([&] { write_calcium_nwb(d + "/raw.nwb", s); });
  auto o = nwb_options(d + "/raw.nwb", d + "/c");
  o.normalise = "dff-as-given";
  std::string e = error_of([&] { ingest::run_ingest(o, MPI_COMM_WORLD); });
  EXPECT_NE(e.find("DfOverF"), std::string::npos) << e;
  EXPECT_NE(e.find("raw.nwb"), std::string::npos) << e;
  o.normalise = "max";
  auto sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  auto a = activity_of(sum.animals[0].path);
  double mx = 0;
  for (double x : a) mx = std::max(mx, std::abs(x));
  EXPECT_NEAR(mx, 1, 1e-12);
}

TEST(IngestNwbBad, DuplicateAnimalIds) {
  const std::string d = scratch_dir("nwb-bad-dup");
  CalciumSpec s;
  on_rank0([&] {
    write_calcium_nwb(d + "/a.nwb", s);
    write_calcium_nwb(d + "/b.nwb", s);  // same subject, same session
  });
  auto o = nwb_options(d + "/a.nwb", d + "/c");
  o.inputs.push_back(d + "/b.nwb");
  std::string e = error_of([&] { ingest::run_ingest(o, MPI_COMM_WORLD); });
  EXPECT_NE(e.find("given twice"), std::string::npos) << e;
  EXPECT_NE(e.find("b.nwb"), std::string::npos) << e;
}

TEST(IngestNwb, RegionFromCompoundColumnField) {
  const std::string d = scratch_dir("nwb-compound");
  CalciumSpec s;
  s.rois = 3;
  s.column_name = "roi_info";
  s.column = {"VISp", "LGd", "VISp"};
  s.compound_column = true;
  on_rank0([&] { write_calcium_nwb(d + "/a.nwb", s); });
  auto o = nwb_options(d + "/a.nwb", d + "/cohort");
  o.region_column = "roi_info:area";
  auto sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  AnimalMeta m = read_animal_meta(sum.animals[0].path, MPI_COMM_WORLD);
  EXPECT_EQ(m.region_names, (std::vector<std::string>{"VISp", "LGd"}));
  EXPECT_EQ(m.unit_region, (std::vector<int>{0, 1, 0}));
  o.region_column = "roi_info";  // a compound column needs its field
  std::string e = error_of([&] { ingest::run_ingest(o, MPI_COMM_WORLD); });
  EXPECT_NE(e.find("roi_info:FIELD"), std::string::npos) << e;
  o.region_column = "roi_info:nope";
  e = error_of([&] { ingest::run_ingest(o, MPI_COMM_WORLD); });
  EXPECT_NE(e.find("no field 'nope'"), std::string::npos) << e;
  EXPECT_NE(e.find("roi_id, area"), std::string::npos) << e;
}

TEST(IngestNwb, SeriesChosenByContainerTypeOrByName) {
  const std::string d = scratch_dir("nwb-series");
  CalciumSpec s;
  s.rois = 2;
  s.also_raw = true;
  on_rank0([&] { write_calcium_nwb(d + "/a.nwb", s); });
  auto o = nwb_options(d + "/a.nwb", d + "/c1");
  auto sum = ingest::run_ingest(o, MPI_COMM_WORLD);  // default: the DfOverF series
  EXPECT_NEAR(activity_of(sum.animals[0].path)[3], calcium_value(0, 3), 1e-6);
  o.out = d + "/c2";
  o.series = {"raw_series"};
  sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  EXPECT_NEAR(activity_of(sum.animals[0].path)[3], calcium_value(0, 3) + 10, 1e-12);
  o.out = d + "/c3";
  o.series = {"plane_A_series", "raw_series"};  // two series of the same samples: stacked as units
  sum = ingest::run_ingest(o, MPI_COMM_WORLD);
  EXPECT_EQ(sum.animals[0].n_units, 4);
  o.series = {"nope"};
  std::string e = error_of([&] { ingest::run_ingest(o, MPI_COMM_WORLD); });
  EXPECT_NE(e.find("--series nope"), std::string::npos) << e;
  EXPECT_NE(e.find("raw_series"), std::string::npos) << e;  // lists what there is
  o.series = {};
  o.nwb_data = "spikes";
  e = error_of([&] { ingest::run_ingest(o, MPI_COMM_WORLD); });
  EXPECT_NE(e.find("no Units table"), std::string::npos) << e;
}
