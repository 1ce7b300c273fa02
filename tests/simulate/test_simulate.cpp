// The simulate stage: determinism and rank-count independence, truth currents against truth J and
// rates, the true dynamics, the individual mode, missing regions, the three-region preset, and
// option errors through the command itself.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/options.hpp"
#include "core/parallel.hpp"
#include "io/animal.hpp"
#include "simulate/command.hpp"
#include "simulate/simulate.hpp"
#include "test_util.hpp"

using namespace cohortnet;
namespace fs = std::filesystem;

namespace {

sim::SimulateParams small_cohort() {
  sim::SimulateParams p = sim::default_params("cohort");
  p.seed = 11;
  p.name = "small";
  p.animals = 5;
  p.regions = 4;
  p.units_per_region = 12;
  p.samples = 160;
  p.lead_time = 0.2;
  p.dwell = 0.3;
  p.ramp = 0.05;
  p.modes = 3;
  p.pairs_per_mode = 2;
  p.individual_mode = true;
  p.individual_fraction = 0.4;
  p.missing_fraction = 0.4;
  p.config = "[simulate]\ntest = small\n";
  return p;
}

// ---- serial reading of a finished file (rank-local, raw HDF5) ----
struct Reader {
  h5::File f;
  explicit Reader(const std::string& path) : f(h5::open_read(path, MPI_COMM_SELF)) {}
  std::vector<double> d(const std::string& n) { return h5::read_doubles(f, n); }
  std::vector<std::int64_t> i(const std::string& n) { return h5::read_ints(f, n); }
  std::vector<std::string> s(const std::string& n) { return h5::read_strings(f, n); }
  std::vector<hsize_t> dims(const std::string& n) { return h5::dims(f, n); }
};

herr_t collect(hid_t, const char* name, const H5O_info_t* info, void* data) {
  if (info->type == H5O_TYPE_DATASET) static_cast<std::vector<std::string>*>(data)->push_back(std::string("/") + name);
  return 0;
}

std::vector<std::string> datasets(const h5::File& f) {
  std::vector<std::string> names;
#if H5_VERSION_GE(1, 12, 0)
  H5Ovisit(f.id(), H5_INDEX_NAME, H5_ITER_INC, collect, &names, H5O_INFO_BASIC);
#else
  H5Ovisit(f.id(), H5_INDEX_NAME, H5_ITER_INC, collect, &names);
#endif
  return names;
}

// Compares two HDF5 files dataset by dataset, bit for bit; returns the differences.
std::string compare_files(const std::string& a, const std::string& b) {
  Reader ra(a), rb(b);
  std::ostringstream diff;
  auto na = datasets(ra.f), nb = datasets(rb.f);
  if (na != nb) diff << a << ": different dataset lists\n";
  if (na.empty()) diff << a << ": no datasets\n";
  for (auto& n : na) {
    if (std::find(nb.begin(), nb.end(), n) == nb.end()) continue;
    if (ra.dims(n) != rb.dims(n)) {
      diff << a << " " << n << ": shapes differ\n";
      continue;
    }
    hid_t d = H5Dopen2(ra.f.id(), n.c_str(), H5P_DEFAULT);
    hid_t t = H5Dget_type(d);
    const bool is_string = H5Tget_class(t) == H5T_STRING;
    H5Tclose(t);
    H5Dclose(d);
    if (is_string) {
      if (ra.s(n) != rb.s(n)) diff << a << " " << n << ": strings differ\n";
      continue;
    }
    auto va = ra.d(n), vb = rb.d(n);
    if (va.size() != vb.size() || std::memcmp(va.data(), vb.data(), va.size() * sizeof(double)) != 0)
      diff << a << " " << n << ": values differ\n";
  }
  for (const char* attr : {"seed", "preset", "config", "animal_id"}) {
    const bool ha = h5::has_attr(ra.f, "/", attr), hb = h5::has_attr(rb.f, "/", attr);
    if (ha != hb) diff << a << ": attribute " << attr << " present in only one file\n";
    if (!ha || !hb) continue;
    if (std::string(attr) == "seed") {
      if (h5::attr_int(ra.f, "/", attr) != h5::attr_int(rb.f, "/", attr)) diff << a << ": seed differs\n";
    } else if (h5::attr_string(ra.f, "/", attr) != h5::attr_string(rb.f, "/", attr)) {
      diff << a << ": attribute " << attr << " differs\n";
    }
  }
  return diff.str();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every file of folder a has an identical twin in folder b (and vice versa).
std::string compare_folders(const std::string& a, const std::string& b) {
  std::string diff;
  std::set<std::string> fa, fb;
  for (auto& e : fs::recursive_directory_iterator(a)) if (e.is_regular_file()) fa.insert(fs::relative(e.path(), a).string());
  for (auto& e : fs::recursive_directory_iterator(b)) if (e.is_regular_file()) fb.insert(fs::relative(e.path(), b).string());
  if (fa != fb) diff += "different file lists\n";
  for (auto& rel : fa) {
    if (!fb.count(rel)) continue;
    if (rel.size() > 3 && rel.substr(rel.size() - 3) == ".h5") diff += compare_files(a + "/" + rel, b + "/" + rel);
    else if (slurp(a + "/" + rel) != slurp(b + "/" + rel)) diff += rel + ": text differs\n";
  }
  return diff;
}

double idx3(const std::vector<double>& v, size_t M, size_t T, size_t q, size_t s, size_t t) {
  return v[(q * M + s) * T + t];
}

}  // namespace

TEST(Simulate, SameSeedSameOutputAtAnyRankCount) {
  const int rank = comm_rank(MPI_COMM_WORLD);
  sim::SimulateParams p = small_cohort();
  const std::string base = testutil::scratch_dir("sim-det");
  const std::string one = base + "/one", all = base + "/all", other = base + "/other";
  // The reference: one rank alone; then every rank of the test together.
  std::string err;
  if (rank == 0) {
    try {
      sim::simulate_cohort(p, one, MPI_COMM_SELF);
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  EXPECT_EQ(err, "");
  sim::simulate_cohort(p, all, MPI_COMM_WORLD);
  sim::SimulateParams q = p;
  q.seed = 12;
  sim::simulate_cohort(q, other, MPI_COMM_WORLD);
  if (rank == 0) {
    EXPECT_TRUE(fs::exists(one + "/truth/cohort.h5"));
    for (int a = 0; a < p.animals; ++a) {
      EXPECT_TRUE(fs::exists(cat(all, "/a0", a, ".h5")));
      EXPECT_TRUE(fs::exists(cat(all, "/truth/a0", a, ".h5")));
    }
    EXPECT_EQ(compare_folders(one, all), "");
    // The comparison sees a different seed (so it can fail).
    const std::string d = compare_folders(one, other);
    EXPECT_NE(d.find("a00.h5 /activity: "), std::string::npos) << d;
    EXPECT_NE(d.find("seed differs"), std::string::npos);
    // No temporaries left behind.
    for (auto& e : fs::recursive_directory_iterator(all))
      EXPECT_EQ(e.path().string().find("partial"), std::string::npos) << e.path();
  }
  // Readable by the io stage, with the manifest's region list and every animal.
  Cohort c = read_cohort(all, MPI_COMM_WORLD);
  EXPECT_EQ(c.name, "small");
  EXPECT_EQ(c.regions, (std::vector<std::string>{"R0", "R1", "R2", "R3"}));
  ASSERT_EQ(c.animals.size(), 5u);
  AnimalData a0 = read_animal(c.animals[0].path, MPI_COMM_WORLD);
  EXPECT_EQ(a0.meta.n_samples, 160);
  EXPECT_EQ(a0.meta.behaviour_names.size(), 4u);  // --states auto: 3 shared modes + the individual one
  EXPECT_EQ(a0.meta.input_names.size(), 4u);
  EXPECT_DOUBLE_EQ(a0.meta.sample_interval, 0.01);
  // Recorded attributes.
  if (rank == 0) {
    Reader r(all + "/a00.h5");
    EXPECT_EQ(h5::attr_int(r.f, "/", "seed"), 11);
    EXPECT_EQ(h5::attr_string(r.f, "/", "preset"), "cohort");
    EXPECT_EQ(h5::attr_string(r.f, "/", "config"), p.config);
    Reader t(all + "/truth/cohort.h5");
    EXPECT_EQ(h5::attr_string(t.f, "/", "config"), p.config);
  }
}

// The truth currents are sum_j J_eff(t)[i,j] r_j(t) summarised over the target's units, with
// J_eff = gains x J; the gains are the animal's modes mixed by the activations; the rates are
// the animal file's activity; and the rates obey tau dx/dt = -x + J_eff tanh(x) + u.
TEST(Simulate, TruthCurrentsFollowFromJAndRates) {
  const int rank = comm_rank(MPI_COMM_WORLD), size = comm_size(MPI_COMM_WORLD);
  sim::SimulateParams p = small_cohort();
  p.dt_factor = 1;  // one Euler step per sample: the dynamics can be checked sample to sample
  p.dt = 0.005;
  p.tau = 0.05;
  p.samples = 120;
  p.trials = 2;
  const std::string dir = testutil::scratch_dir("sim-truth");
  sim::simulate_cohort(p, dir, MPI_COMM_WORLD);
  for (int a = rank; a < p.animals; a += size) {
    SCOPED_TRACE(cat("animal ", a));
    Reader tr(cat(dir, "/truth/a0", a, ".h5")), an(cat(dir, "/a0", a, ".h5"));
    auto J = tr.d("/J"), R = tr.d("/rates"), G = tr.d("/gains"), U = tr.d("/external");
    auto cm = tr.d("/current_mean"), cr = tr.d("/current_rms"), em = tr.d("/current_exc_mean"),
         er = tr.d("/current_exc_rms"), im = tr.d("/current_inh_mean"), ir = tr.d("/current_inh_rms");
    auto lab = tr.i("/unit_region"), coupled = tr.i("/pair_coupled");
    auto P = tr.d("/mode_patterns"), act = tr.d("/mode_activations");
    const size_t N = lab.size(), T = tr.dims("/rates")[1], M = tr.s("/region_names").size();
    const size_t K = tr.dims("/mode_patterns")[0];
    ASSERT_EQ(J.size(), N * N);
    ASSERT_EQ(cm.size(), M * M * T);
    EXPECT_EQ(T, 240u);
    EXPECT_EQ(an.d("/activity"), R);
    EXPECT_EQ(an.i("/trial_starts"), (std::vector<std::int64_t>{0, 120}));
    {
      // Pathway strength: the rms over Q's units and the recorded samples of the ungated current
      // sum_{j in S} J_ij r_j(t) (the fit's definition); zero exactly where no link.
      EXPECT_EQ(h5::attr_string(tr.f, "/pathway_strength", "definition"), kPathwayStrengthDefinition);
      auto st = tr.d("/pathway_strength");
      ASSERT_EQ(st.size(), M * M);
      std::vector<double> ss(M * M, 0.0), nq(M, 0.0);
      for (size_t i = 0; i < N; ++i) {
        nq[size_t(lab[i])] += 1;
        for (size_t t = 0; t < T; ++t) {
          std::vector<double> c(M, 0.0);
          for (size_t j = 0; j < N; ++j) c[size_t(lab[j])] += J[i * N + j] * R[j * T + t];
          for (size_t s = 0; s < M; ++s) ss[size_t(lab[i]) * M + s] += c[s] * c[s];
        }
      }
      for (size_t qs = 0; qs < M * M; ++qs) {
        const double want = std::sqrt(ss[qs] / (nq[qs / M] * double(T)));
        EXPECT_NEAR(st[qs], want, 1e-10 * std::max(1.0, want)) << "pathway " << qs / M << " <- " << qs % M;
        if (qs / M != qs % M) {
          EXPECT_EQ(st[qs] > 0, coupled[qs] != 0) << "pathway " << qs / M << " <- " << qs % M;
        }
      }
    }
    double worst = 0, scale = 0;
    int nonzero_between = 0;
    for (size_t t = 0; t < T; t += 7)
      for (size_t q = 0; q < M; ++q)
        for (size_t s = 0; s < M; ++s) {
          // Gains from the modes.
          double g = q == s ? 1.0 : 0.0;
          if (q != s && coupled[q * M + s])
            for (size_t k = 0; k < K; ++k) g += act[k * T + t] * P[(k * M + q) * M + s];
          EXPECT_NEAR(idx3(G, M, T, q, s, t), g, 1e-12);
          double sm = 0, ss = 0, pm = 0, ps = 0, nm = 0, ns = 0, n = 0;
          for (size_t i = 0; i < N; ++i) {
            if (size_t(lab[i]) != q) continue;
            double c = 0, cp = 0, cn = 0;
            for (size_t j = 0; j < N; ++j) {
              if (size_t(lab[j]) != s) continue;
              const double w = g * J[i * N + j] * R[j * T + t];
              c += w;
              (J[i * N + j] > 0 ? cp : cn) += w;
            }
            sm += c, ss += c * c, pm += cp, ps += cp * cp, nm += cn, ns += cn * cn, n += 1;
          }
          const double want[6] = {sm / n, std::sqrt(ss / n), pm / n, std::sqrt(ps / n), nm / n, std::sqrt(ns / n)};
          const std::vector<double>* got[6] = {&cm, &cr, &em, &er, &im, &ir};
          for (int v = 0; v < 6; ++v) {
            worst = std::max(worst, std::abs(idx3(*got[v], M, T, q, s, t) - want[v]));
            scale = std::max(scale, std::abs(want[v]));
          }
          if (q != s && std::abs(want[1]) > 1e-3) ++nonzero_between;
          if (q != s && !coupled[q * M + s]) {
            EXPECT_EQ(idx3(cr, M, T, q, s, t), 0.0);
          }
        }
    EXPECT_LT(worst, 1e-12 * std::max(1.0, scale));
    EXPECT_GT(nonzero_between, 0) << "no inter-region current at all";
    // Dynamics: x(t+1) = x(t) + dt/tau (-x + J_eff r + u), x = atanh(r), within each trial.
    double dyn_worst = 0;
    int checked = 0;
    for (size_t t = 0; t + 1 < T; ++t) {
      if (t + 1 == 120) continue;  // trial boundary: the state is reset
      for (size_t i = 0; i < N; i += 3) {
        const double r0 = R[i * T + t], r1 = R[i * T + t + 1];
        if (std::abs(r0) > 0.99 || std::abs(r1) > 0.99) continue;
        double y = 0;
        for (size_t j = 0; j < N; ++j) y += idx3(G, M, T, size_t(lab[i]), size_t(lab[j]), t) * J[i * N + j] * R[j * T + t];
        const double x0 = std::atanh(r0), pred = x0 + p.dt / p.tau * (-x0 + y + U[i * T + t]);
        dyn_worst = std::max(dyn_worst, std::abs(pred - std::atanh(r1)));
        ++checked;
      }
    }
    EXPECT_GT(checked, 1000);
    EXPECT_LT(dyn_worst, 1e-9);
    // The activity is not trivial: chaotic units, not saturated, not silent.
    double var = 0;
    for (double v : R) var += v * v;
    EXPECT_GT(var / double(R.size()), 0.05);
  }
}

TEST(Simulate, IndividualModeOnlyInRecordedAnimals) {
  const int rank = comm_rank(MPI_COMM_WORLD);
  sim::SimulateParams p = small_cohort();
  p.animals = 6;
  p.missing_fraction = 0;
  p.config.clear();  // the library then records describe(p)
  const std::string dir = testutil::scratch_dir("sim-indiv");
  sim::simulate_cohort(p, dir, MPI_COMM_WORLD);
  if (rank != 0) return;
  Reader c(dir + "/truth/cohort.h5");
  const std::string config = h5::attr_string(c.f, "/", "config");
  EXPECT_NE(config.find("individual-mode = true"), std::string::npos) << config;
  EXPECT_NE(config.find("seed = 11"), std::string::npos) << config;
  const int ind = int(h5::attr_int(c.f, "/", "individual_mode"));
  ASSERT_EQ(ind, 3);
  auto modes = c.d("/modes");
  auto conserved = c.i("/mode_conserved");
  auto present = c.i("/mode_present");
  const size_t K = 4, R = 4;
  EXPECT_EQ(c.dims("/modes"), (std::vector<hsize_t>{K, R, R}));
  EXPECT_EQ(conserved, (std::vector<std::int64_t>{1, 1, 1, 0}));
  EXPECT_EQ(c.s("/animal_ids"), (std::vector<std::string>{"a00", "a01", "a02", "a03", "a04", "a05"}));
  int with = 0;
  for (size_t a = 0; a < 6; ++a) {
    for (size_t k = 0; k < 3; ++k) EXPECT_EQ(present[a * K + k], 1);
    with += int(present[a * K + 3]);
  }
  EXPECT_EQ(with, 2);  // round(0.4 * 6)
  // Pairs only the individual mode couples.
  std::vector<std::pair<size_t, size_t>> own;
  for (size_t q = 0; q < R; ++q)
    for (size_t s = 0; s < R; ++s) {
      bool others = false;
      for (size_t k = 0; k < 3; ++k) others = others || modes[(k * R + q) * R + s] > 0;
      if (modes[(3 * R + q) * R + s] > 0 && !others) own.push_back({q, s});
    }
  ASSERT_FALSE(own.empty());
  for (size_t a = 0; a < 6; ++a) {
    SCOPED_TRACE(cat("animal ", a));
    Reader tr(cat(dir, "/truth/a0", a, ".h5"));
    auto coupled = tr.i("/pair_coupled");
    auto P = tr.d("/mode_patterns"), act = tr.d("/mode_activations");
    auto cr = tr.d("/current_rms");
    const size_t T = tr.dims("/rates")[1];
    double pmax = 0, amax = 0;
    for (size_t i = 0; i < R * R; ++i) pmax = std::max(pmax, P[3 * R * R + i]);
    for (size_t t = 0; t < T; ++t) amax = std::max(amax, act[3 * T + t]);
    double own_current = 0;
    for (auto [q, s] : own) {
      EXPECT_EQ(coupled[q * R + s], present[a * K + 3]);
      for (size_t t = 0; t < T; ++t) own_current = std::max(own_current, cr[(q * R + s) * T + t]);
    }
    if (present[a * K + 3]) {
      EXPECT_GT(pmax, 0.3);
      EXPECT_GT(own_current, 1e-3);
    } else {
      EXPECT_EQ(pmax, 0.0);
      EXPECT_EQ(amax, 0.0);
      EXPECT_EQ(own_current, 0.0);
    }
  }
}

// Ground truth of mode use: every animal visits every state, so every animal uses every shared mode
// (an animal must not "lack" a conserved mode by chance), the individual mode only where carried;
// no two modes share an on/off pattern over states; /mode_active_fraction matches the activations.
TEST(Simulate, EveryAnimalUsesEverySharedMode) {
  const int rank = comm_rank(MPI_COMM_WORLD);
  sim::SimulateParams p = small_cohort();
  p.animals = 6;
  p.dwell = 0.5;  // long dwells: without the state design some animals would miss states
  const std::string dir = testutil::scratch_dir("sim-use");
  sim::simulate_cohort(p, dir, MPI_COMM_WORLD);
  if (rank != 0) return;
  Reader c(dir + "/truth/cohort.h5");
  const size_t K = 4, S = size_t(sim::n_states(p));
  EXPECT_EQ(S, 4u);  // auto: one state per mode (3 shared + the individual one)
  EXPECT_EQ(c.dims("/state_levels"), (std::vector<hsize_t>{S, K}));
  EXPECT_EQ(c.dims("/mode_active_fraction"), (std::vector<hsize_t>{6, K}));
  auto levels = c.d("/state_levels");
  std::set<std::vector<int>> patterns;
  for (size_t k = 0; k < K; ++k) {
    std::vector<int> on;
    for (size_t st = 0; st < S; ++st) on.push_back(levels[st * K + k] > 0 ? 1 : 0);
    patterns.insert(on);
  }
  EXPECT_EQ(patterns.size(), K) << "two modes are switched on in the same states";
  auto used = c.d("/mode_active_fraction");
  auto present = c.i("/mode_present");
  for (size_t a = 0; a < 6; ++a) {
    SCOPED_TRACE(cat("animal ", a));
    Reader tr(cat(dir, "/truth/a0", a, ".h5"));
    auto states = tr.i("/states");
    auto act = tr.d("/mode_activations");
    auto frac = tr.d("/mode_active_fraction");
    const size_t T = states.size();
    EXPECT_EQ(std::set<std::int64_t>(states.begin(), states.end()).size(), S);
    ASSERT_EQ(frac.size(), K);
    for (size_t k = 0; k < K; ++k) {
      size_t on = 0;
      for (size_t t = 0; t < T; ++t) on += act[k * T + t] > sim::kModeActive ? 1 : 0;
      EXPECT_DOUBLE_EQ(frac[k], double(on) / double(T));
      EXPECT_DOUBLE_EQ(used[a * K + k], frac[k]);
      if (k < 3) {
        EXPECT_GT(frac[k], 0.05) << "shared mode " << k << " unused";
      }
    }
    if (present[a * K + 3]) {
      EXPECT_GT(frac[3], 0.05);
    } else {
      EXPECT_EQ(frac[3], 0.0);
    }
  }
}

// --mode-sharing none (a null cohort): every animal carries modes of its own, drawn from its own
// stream, switched by the states as the shared cohort's would be; nothing is shared, so the
// truth calls no mode conserved, and every animal uses its own modes only.
TEST(Simulate, NullCohortSharesNoMode) {
  const int rank = comm_rank(MPI_COMM_WORLD);
  sim::SimulateParams p = small_cohort();
  p.animals = 4;
  p.individual_mode = false;
  p.missing_fraction = 0;
  p.mode_sharing = sim::kSharingNone;
  const std::string dir = testutil::scratch_dir("sim-null");
  sim::simulate_cohort(p, dir, MPI_COMM_WORLD);
  if (rank != 0) return;
  Reader c(dir + "/truth/cohort.h5");
  const size_t A = 4, K0 = 3, K = A * K0, R = 4, S = size_t(sim::n_states(p));
  EXPECT_EQ(c.dims("/modes"), (std::vector<hsize_t>{K, R, R}));
  EXPECT_EQ(c.i("/mode_conserved"), std::vector<std::int64_t>(K, 0));
  auto modes = c.d("/modes"), levels = c.d("/state_levels");
  auto present = c.i("/mode_present");
  // Each animal's modes switch in the states the first animal's do; the pathways differ.
  for (size_t st = 0; st < S; ++st)
    for (size_t k = K0; k < K; ++k) EXPECT_EQ(levels[st * K + k], levels[st * K + k % K0]);
  std::set<std::vector<int>> pair_sets;
  for (size_t a = 0; a < A; ++a) {
    std::vector<int> on;
    for (size_t k = a * K0; k < (a + 1) * K0; ++k)
      for (size_t e = 0; e < R * R; ++e) on.push_back(modes[k * R * R + e] > 0 ? 1 : 0);
    pair_sets.insert(on);
    for (size_t k = 0; k < K; ++k) EXPECT_EQ(present[a * K + k], k / K0 == a ? 1 : 0) << "animal " << a << " mode " << k;
  }
  EXPECT_EQ(pair_sets.size(), A) << "two animals drew the same modes";
  for (size_t a = 0; a < A; ++a) {
    SCOPED_TRACE(cat("animal ", a));
    Reader tr(cat(dir, "/truth/a0", a, ".h5"));
    auto P = tr.d("/mode_patterns"), frac = tr.d("/mode_active_fraction");
    auto coupled = tr.i("/pair_coupled");
    ASSERT_EQ(frac.size(), K);
    for (size_t k = 0; k < K; ++k) {
      double pmax = 0;
      for (size_t e = 0; e < R * R; ++e) pmax = std::max(pmax, P[k * R * R + e]);
      if (k / K0 == a) {
        EXPECT_GT(pmax, 0.3);
        EXPECT_GT(frac[k], 0.05);
      } else {
        EXPECT_EQ(pmax, 0.0);
        EXPECT_EQ(frac[k], 0.0);
      }
    }
    // Coupled exactly where the animal's own modes are.
    for (size_t e = 0; e < R * R; ++e) {
      bool own = false;
      for (size_t k = a * K0; k < (a + 1) * K0; ++k) own = own || modes[k * R * R + e] > 0;
      EXPECT_EQ(coupled[e], own ? 1 : 0) << "pair " << e;
    }
  }
}

// With fewer states than modes, on/off patterns are still distinct as long as possible.
TEST(Simulate, ModesNeverShareTheirStatePattern) {
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    sim::SimulateParams p = sim::default_params("cohort");
    p.seed = seed;
    p.animals = 2;
    p.states = 3;
    p.modes = 6;
    const sim::CohortPlan plan = sim::make_plan(p);
    std::set<std::vector<int>> patterns;
    for (int k = 0; k < 6; ++k) {
      std::vector<int> on;
      for (int st = 0; st < 3; ++st) on.push_back(plan.state_levels[size_t(st) * 6 + size_t(k)] > 0 ? 1 : 0);
      patterns.insert(on);
    }
    EXPECT_EQ(patterns.size(), 6u) << "seed " << seed;
  }
  sim::SimulateParams p = sim::default_params("cohort");
  EXPECT_EQ(sim::n_states(p), std::max(3, p.modes));
  p.states = 2;
  EXPECT_EQ(sim::n_states(p), 2);
}

// Distinct on/off patterns are not enough to tell modes apart: the levels matrix must have full
// column rank with room to spare. Seed 17's first draw of the demo cohort (4 states, 4 modes) had
// smallest/largest singular value 0.007: its truth held three identifiable modes, not four.
TEST(Simulate, ModesStateLevelsAreWellConditioned) {
  // sigma_min / sigma_max of the levels, independently of the simulator's LAPACK call: power
  // iteration on the Gram matrix G for its largest eigenvalue, and on lmax I - G for the smallest.
  auto condition = [](const sim::CohortPlan& plan, int S, int K) {
    std::vector<double> G(size_t(K) * size_t(K), 0.0);
    for (int i = 0; i < K; ++i)
      for (int j = 0; j < K; ++j)
        for (int st = 0; st < S; ++st)
          G[size_t(i * K + j)] += plan.state_levels[size_t(st * K + i)] * plan.state_levels[size_t(st * K + j)];
    auto largest = [K](const std::vector<double>& M) {
      std::vector<double> v(size_t(K), 1.0), w(size_t(K), 0.0);
      double lambda = 0.0;
      for (int it = 0; it < 20000; ++it) {
        double nrm = 0.0;
        for (int i = 0; i < K; ++i) {
          w[size_t(i)] = 0.0;
          for (int j = 0; j < K; ++j) w[size_t(i)] += M[size_t(i * K + j)] * v[size_t(j)];
          nrm += w[size_t(i)] * w[size_t(i)];
        }
        lambda = std::sqrt(nrm);
        for (int i = 0; i < K; ++i) v[size_t(i)] = w[size_t(i)] / lambda;
      }
      return lambda;
    };
    const double lmax = largest(G);
    std::vector<double> shifted(G.size());
    for (int i = 0; i < K; ++i)
      for (int j = 0; j < K; ++j) shifted[size_t(i * K + j)] = (i == j ? lmax : 0.0) - G[size_t(i * K + j)];
    const double lmin = lmax - largest(shifted);
    return std::sqrt(std::max(lmin, 0.0) / lmax);
  };
  int redrawn = 0;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    sim::SimulateParams p = sim::default_params("cohort");
    p.seed = seed;
    p.animals = 2;
    p.modes = 4;
    const sim::CohortPlan plan = sim::make_plan(p);
    const int S = sim::n_states(p);
    ASSERT_EQ(S, 4);
    EXPECT_NEAR(plan.state_levels_condition, condition(plan, S, 4), 1e-6) << "seed " << seed;
    EXPECT_GE(plan.state_levels_condition, 0.05) << "seed " << seed;
    EXPECT_GE(plan.state_levels_draws, 1) << "seed " << seed;
    if (plan.state_levels_draws > 1) ++redrawn;
    if (seed == 17) {
      EXPECT_GE(plan.state_levels_draws, 2) << "seed 17's first draw was ill-conditioned";
    }
  }
  EXPECT_LE(redrawn, 4) << "the check should redraw rarely, keeping most seeds' cohorts as they were";
  // With fewer states than modes no draw can have full column rank: nothing is redrawn.
  sim::SimulateParams p = sim::default_params("cohort");
  p.animals = 2;
  p.states = 3;
  p.modes = 6;
  EXPECT_EQ(sim::make_plan(p).state_levels_draws, 1);
  EXPECT_EQ(sim::make_plan(p).state_levels_condition, 0.0);
}

TEST(Simulate, MissingRegionsAreMissing) {
  const int rank = comm_rank(MPI_COMM_WORLD);
  sim::SimulateParams p = small_cohort();
  p.animals = 6;
  p.missing_fraction = 0.5;
  p.missing_per_animal = 2;
  p.regions = 5;
  const std::string dir = testutil::scratch_dir("sim-missing");
  sim::simulate_cohort(p, dir, MPI_COMM_WORLD);
  Cohort c = read_cohort(dir, MPI_COMM_WORLD);
  ASSERT_EQ(c.regions.size(), 5u);
  int short_animals = 0;
  for (auto& ca : c.animals) {
    AnimalMeta m = read_animal_meta(ca.path, MPI_COMM_WORLD);
    if (m.region_names.size() < 5) {
      EXPECT_EQ(m.region_names.size(), 3u) << ca.path;
      ++short_animals;
    }
    if (rank == 0) {
      Reader tr(dir + "/truth/" + m.animal_id + ".h5");
      EXPECT_EQ(tr.s("/region_names"), m.region_names);
      const size_t M = m.region_names.size();
      EXPECT_EQ(tr.dims("/current_rms"), (std::vector<hsize_t>{M, M, hsize_t(m.n_samples)}));
      EXPECT_EQ(tr.dims("/J"), (std::vector<hsize_t>{hsize_t(m.n_units), hsize_t(m.n_units)}));
      for (int r = 0; r < m.n_regions(); ++r) EXPECT_GE(m.units_of(r).size(), 2u);
    }
  }
  EXPECT_EQ(short_animals, 3);
  // The plan agrees with what was written, and mode_present drops modes whose pairs all vanished.
  sim::CohortPlan plan = sim::make_plan(p);
  int missing_total = 0;
  for (int a = 0; a < 6; ++a) missing_total += 5 - int(plan.animal_regions[size_t(a)].size());
  EXPECT_EQ(missing_total, 6);
}

TEST(Simulate, ThreeRegionPreset) {
  // The defaults are the CURBD reference's threeRegionSim: one-to-one links, all positive, half
  // of B's and C's units driven, the reference's drives (a sweep over B, two steps in C).
  const int rank = comm_rank(MPI_COMM_WORLD);
  for (double strength : {0.02, 0.2}) {
    sim::SimulateParams p = sim::default_params("three-region");
    EXPECT_EQ(p.units_per_region, 100);
    EXPECT_EQ(p.samples, 1201);
    EXPECT_DOUBLE_EQ(p.link_strength, 0.02);
    EXPECT_DOUBLE_EQ(p.link_fraction, 0.05);
    EXPECT_DOUBLE_EQ(p.link_excitatory, 1.0);
    EXPECT_DOUBLE_EQ(p.external_fraction, 0.5);
    EXPECT_EQ(p.links, sim::kLinksOneToOne);
    EXPECT_EQ(p.drives, sim::kDrivesReference);
    EXPECT_DOUBLE_EQ(p.dt, 0.01);
    p.units_per_region = 40;
    p.samples = 300;
    p.trials = 2;
    p.lead_time = 0.5;
    p.link_strength = strength;
    const std::string dir = testutil::scratch_dir("sim-three");
    sim::simulate_cohort(p, dir, MPI_COMM_WORLD);
    if (rank != 0) continue;
    EXPECT_FALSE(fs::exists(dir + "/truth/cohort.h5"));
    Reader an(dir + "/a00.h5"), tr(dir + "/truth/a00.h5");
    EXPECT_EQ(an.s("/region_names"), (std::vector<std::string>{"A", "B", "C"}));
    EXPECT_EQ(an.i("/trial_starts"), (std::vector<std::int64_t>{0, 300}));
    EXPECT_EQ(h5::attr_string(an.f, "/", "preset"), "three-region");
    auto J = tr.d("/J"), U = tr.d("/external"), R = tr.d("/rates");
    auto lab = tr.i("/unit_region");
    EXPECT_EQ(tr.i("/pair_coupled"), (std::vector<std::int64_t>{0, 1, 1, 1, 0, 1, 1, 1, 0}));
    const size_t N = 120, T = 600;
    // Inter-region links, per (target, source) pair: round(0.05 * 40) = 2 target units with one
    // link each, from the source unit of the same index, weight +link-strength.
    for (size_t q = 0; q < 3; ++q)
      for (size_t sr = 0; sr < 3; ++sr) {
        if (q == sr) continue;
        int receivers = 0;
        for (size_t k = 0; k < 40; ++k) {
          int links = 0;
          for (size_t j = 0; j < 40; ++j) {
            const double w = J[(q * 40 + k) * N + sr * 40 + j];
            if (w == 0) continue;
            ++links;
            EXPECT_EQ(j, k) << "link not one-to-one";
            EXPECT_DOUBLE_EQ(w, strength);
          }
          EXPECT_LE(links, 1);
          receivers += links;
        }
        EXPECT_EQ(receivers, 2) << q << "<-" << sr;
      }
    // A: no input. B: 20 of 40 units driven, inputs in [0, 1]; the sweep passes the units in
    // order (later peak for a later unit) and is frozen from 40% of the trial on. C: 20 units
    // driven, inputs in [-1, 0], one pattern until 60% of the trial, then another.
    const size_t cut = size_t(std::ceil(0.4 * 299)), step = size_t(std::ceil(0.6 * 299));
    int driven_b = 0, driven_c = 0;
    size_t prev_peak = 0;
    for (size_t i = 0; i < N; ++i) {
      const double* u = &U[i * T];
      bool any = false;
      for (size_t t = 0; t < T; ++t) any = any || u[t] != 0.0;
      if (lab[i] == 0) {
        EXPECT_FALSE(any);
      } else if (lab[i] == 1) {
        if (!any) continue;
        ++driven_b;
        for (size_t t = 0; t < T; ++t) {
          EXPECT_GE(u[t], 0.0);
          EXPECT_LE(u[t], 1.0 + 1e-12);
        }
        EXPECT_EQ(u[cut + 1], u[299]);  // frozen
        EXPECT_EQ(u[0], u[300]);        // the same drive every trial
        const size_t k = i - 40;
        if (k >= 8 && k < 32) {  // units the sweep passes within its first 40% (centre 8 -> 40)
          const size_t peak = size_t(std::max_element(u, u + cut) - u);
          EXPECT_GE(peak, prev_peak);
          prev_peak = peak;
        }
      } else {
        if (!any) continue;
        ++driven_c;
        for (size_t t = 0; t < T; ++t) EXPECT_LE(u[t], 0.0);
        EXPECT_EQ(u[0], u[step - 1]);
        EXPECT_EQ(u[step + 1], u[299]);
      }
    }
    EXPECT_EQ(driven_b, 20);
    EXPECT_EQ(driven_c, 20);
    // Region A is chaotic: its rates vary.
    double var = 0;
    for (size_t i = 0; i < 40; ++i)
      for (size_t t = 0; t < 300; ++t) var += R[i * T + t] * R[i * T + t];
    EXPECT_GT(var / (40 * 300), 0.05);
  }
}

TEST(Simulate, ThreeRegionRandomLinksAndGaussianDrives) {
  // --links random, --drives gaussian, --external-fraction 1: the preset before 2026-11-28.
  const int rank = comm_rank(MPI_COMM_WORLD);
  sim::SimulateParams p = sim::default_params("three-region");
  p.links = sim::kLinksRandom;
  p.drives = sim::kDrivesGaussian;
  p.external_fraction = 1.0;
  p.link_excitatory = 0.5;
  p.units_per_region = 40;
  p.samples = 300;
  p.trials = 2;
  p.lead_time = 0.5;
  p.link_strength = 0.2;
  const std::string dir = testutil::scratch_dir("sim-three-random");
  sim::simulate_cohort(p, dir, MPI_COMM_WORLD);
  if (rank != 0) return;
  Reader tr(dir + "/truth/a00.h5");
  auto J = tr.d("/J"), U = tr.d("/external");
  auto lab = tr.i("/unit_region");
  const size_t N = 120, T = 600;
  // Inter-region links: sparse (about 5% of unit pairs), of magnitude --link-strength, both signs.
  double links = 0, positive = 0;
  for (size_t i = 0; i < N; ++i)
    for (size_t j = 0; j < N; ++j)
      if (lab[i] != lab[j] && J[i * N + j] != 0) {
        EXPECT_DOUBLE_EQ(std::abs(J[i * N + j]), 0.2);
        ++links;
        positive += J[i * N + j] > 0;
      }
  EXPECT_GT(links / (6 * 40 * 40), 0.03);
  EXPECT_LT(links / (6 * 40 * 40), 0.07);
  EXPECT_GT(positive / links, 0.3);
  EXPECT_LT(positive / links, 0.7);
  // A: no input; B: each unit's bump peaks at its own time, in unit order; C: constant per
  // trial, a new pattern in the second trial.
  size_t prev_peak = 0;
  for (size_t i = 0; i < N; ++i) {
    const double* u = &U[i * T];
    if (lab[i] == 0) {
      for (size_t t = 0; t < T; ++t) ASSERT_EQ(u[t], 0.0);
    } else if (lab[i] == 1) {
      const size_t peak = size_t(std::max_element(u, u + 300) - u);
      EXPECT_GE(peak + 1, prev_peak);
      prev_peak = peak;
      EXPECT_NEAR(u[peak], 1.0, 0.05);
    } else {
      EXPECT_EQ(u[0], u[299]);
      EXPECT_NE(u[0], u[300]);
    }
  }
  EXPECT_GT(prev_peak, 250u);
}

TEST(Simulate, ThreeRegionDrivesAsInputs) {
  // --drives-as-inputs: one input channel per driven unit, equal to that unit's true external
  // drive at every sample; without it the three-region animal has no inputs.
  sim::SimulateParams p = sim::default_params("three-region");
  p.units_per_region = 20;
  p.samples = 120;
  p.lead_time = 0.2;
  const sim::CohortPlan plan = sim::make_plan(p);
  const sim::SimulatedAnimal plain = sim::simulate_animal(p, plan, 0);
  EXPECT_TRUE(plain.inputs.empty());
  EXPECT_TRUE(plain.meta.input_names.empty());
  p.drives_as_inputs = true;
  const sim::SimulatedAnimal a = sim::simulate_animal(p, plan, 0);
  const size_t N = 60, T = 120;
  EXPECT_EQ(a.rates, plain.rates);  // the network is the same; only what is recorded differs
  std::vector<size_t> driven;
  for (size_t i = 0; i < N; ++i) {
    bool any = false;
    for (size_t t = 0; t < T; ++t) any = any || a.external[i * T + t] != 0.0;
    if (any) driven.push_back(i);
  }
  ASSERT_EQ(driven.size(), 20u);  // half of B's and half of C's 20 units
  ASSERT_EQ(a.meta.input_names.size(), driven.size());
  ASSERT_EQ(a.inputs.size(), driven.size() * T);
  for (size_t c = 0; c < driven.size(); ++c) {
    EXPECT_EQ(a.meta.input_names[c], "drive_unit" + std::to_string(driven[c]));
    for (size_t t = 0; t < T; ++t) ASSERT_EQ(a.inputs[c * T + t], a.external[driven[c] * T + t]) << c << " " << t;
  }
}

// Option errors, through the command (the same path as the CLI): every rank gets an error that
// names the option.
TEST(Simulate, OptionErrorsNameTheOption) {
  const std::string base = testutil::scratch_dir("sim-opts");
  if (comm_rank(MPI_COMM_WORLD) == 0) std::ofstream(base + "/file") << "x";
  MPI_Barrier(MPI_COMM_WORLD);
  const std::string out = base + "/out";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--animals", "0", "--out", out}, "--animals"},
      {{"--regions", "1", "--out", out}, "--regions"},
      {{"--regions", "3", "--modes", "7", "--out", out}, "--modes"},
      {{"--units-per-region", "1", "--out", out}, "--units-per-region"},
      {{"--samples", "1", "--out", out}, "--samples"},
      {{"--seed", "-3", "--out", out}, "--seed"},
      {{"--preset", "five-region", "--out", out}, "--preset"},
      {{"--preset", "three-region", "--states", "4", "--out", out}, "--states"},
      {{"--preset", "cohort", "--bump-width", "0.1", "--out", out}, "--bump-width"},
      {{"--preset", "cohort", "--drives-as-inputs", "--out", out}, "--drives-as-inputs"},
      {{"--missing-per-animal", "5", "--out", out}, "--missing-per-animal"},
      {{"--dt-factor", "0", "--out", out}, "--dt-factor"},
      {{"--mode-sharing", "some", "--out", out}, "--mode-sharing"},
      {{"--mode-sharing", "none", "--individual-mode", "--out", out}, "--mode-sharing"},
      {{"--animals", "2"}, "--out"},
      {{"--animals", "2", "--out", base + "/file/sub"}, "--out"},
  };
  Command cmd = make_simulate_command();
  for (auto& [args, option] : cases) {
    std::string msg;
    try {
      po::variables_map vm;
      collective(MPI_COMM_WORLD, [&] { parse_command(cmd, args, vm, MPI_COMM_WORLD); });
      cmd.run(vm, MPI_COMM_WORLD);
    } catch (const AgreedError& e) {
      msg = e.what();
    } catch (const std::exception& e) {
      msg = cat("not agreed: ", e.what());
    }
    EXPECT_NE(msg.find(option), std::string::npos) << "args " << args[0] << " " << args[1] << ": '" << msg << "'";
    EXPECT_EQ(msg.find("not agreed"), std::string::npos) << msg;
  }
  // A valid command works and records the resolved configuration, preset defaults included.
  po::variables_map vm;
  const std::vector<std::string> ok = {"--animals", "2", "--regions", "3", "--units-per-region", "6",
                                       "--samples", "50", "--lead-time", "0.1", "--modes", "2",
                                       "--out", out, "--seed", "5"};
  collective(MPI_COMM_WORLD, [&] { parse_command(cmd, ok, vm, MPI_COMM_WORLD); });
  EXPECT_EQ(cmd.run(vm, MPI_COMM_WORLD), 0);
  if (comm_rank(MPI_COMM_WORLD) == 0) {
    Reader r(out + "/a01.h5");
    const std::string config = h5::attr_string(r.f, "/", "config");
    EXPECT_NE(config.find("[simulate]"), std::string::npos);
    EXPECT_NE(config.find("animals = 2"), std::string::npos) << config;
    EXPECT_NE(config.find("link-strength = 0.29999999999999999"), std::string::npos) << config;
    EXPECT_NE(config.find("seed = 5"), std::string::npos) << config;
    EXPECT_EQ(h5::attr_int(r.f, "/", "seed"), 5);
  }
}

TEST(Simulate, ConstantGatingFixesEveryPathwayAtItsMeanGain) {
  // --gating constant: gain_QS = sum_k (mean of mode k's levels over the states) P_ak[Q,S] at every
  // sample; the same pathways are coupled as with the states' gating, the drives still follow
  // the states, and the activity differs (the gains act on it).
  sim::SimulateParams p = small_cohort();
  p.animals = 1;
  p.missing_fraction = 0;
  const sim::CohortPlan plan = sim::make_plan(p);
  const sim::SimulatedAnimal gated = sim::simulate_animal(p, plan, 0);
  p.gating = sim::kGatingConstant;
  const sim::SimulatedAnimal fixed = sim::simulate_animal(p, plan, 0);
  const size_t M = size_t(fixed.meta.n_regions()), T = size_t(fixed.meta.n_samples), K = size_t(plan.n_modes);
  const size_t S = size_t(sim::n_states(p));
  EXPECT_EQ(fixed.pair_coupled, gated.pair_coupled);
  EXPECT_EQ(fixed.inputs, gated.inputs);
  EXPECT_EQ(fixed.states, gated.states);
  std::vector<double> mean_level(K, 0.0);
  for (size_t k = 0; k < K; ++k) {
    if (!plan.mode_has[k]) continue;
    for (size_t st = 0; st < S; ++st) mean_level[k] += plan.state_levels[st * K + k] / double(S);
  }
  int coupled = 0;
  for (size_t q = 0; q < M; ++q)
    for (size_t s = 0; s < M; ++s) {
      const size_t qs = q * M + s;
      double want = q == s ? 1.0 : 0.0;
      if (q != s && fixed.pair_coupled[qs])
        for (size_t k = 0; k < K; ++k) want += mean_level[k] * fixed.mode_patterns[k * M * M + qs];
      coupled += q != s && fixed.pair_coupled[qs];
      for (size_t t = 0; t < T; ++t) ASSERT_NEAR(fixed.gains[qs * T + t], want, 1e-12) << q << "<-" << s << " t " << t;
    }
  EXPECT_GT(coupled, 0);
  EXPECT_NE(fixed.rates, gated.rates);
  sim::SimulateParams bad = p;
  bad.gating = "sometimes";
  try {
    sim::validate_params(bad);
    ADD_FAILURE() << "gating 'sometimes' accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--gating"), std::string::npos) << e.what();
  }
}

TEST(Simulate, SourceGatingKeepsTheGainsAndDrivesOneRegionPerState) {
  // --gating source: the gains are the constant control's (each pathway at its mean), the states
  // and /inputs are unchanged, and unit i of region q is driven by the states c with c mod M == q
  // only, kSourceDriveFactor x harder: u_i(t) = 3 sum_{c = q mod M} w_ic ind_c(t), where w_ic are
  // the constant control's weights (the same draws), recovered here by least squares of its u_i
  // on the indicators (/inputs).
  sim::SimulateParams p = small_cohort();
  p.animals = 1;
  p.missing_fraction = 0;
  const sim::CohortPlan plan = sim::make_plan(p);
  p.gating = sim::kGatingConstant;
  const sim::SimulatedAnimal constant = sim::simulate_animal(p, plan, 0);
  p.gating = sim::kGatingSource;
  const sim::SimulatedAnimal source = sim::simulate_animal(p, plan, 0);
  const size_t M = size_t(source.meta.n_regions()), T = size_t(source.meta.n_samples);
  const size_t S = size_t(sim::n_states(p)), N = size_t(source.meta.n_units);
  ASSERT_GT(S, 1u);
  EXPECT_EQ(source.gains, constant.gains);
  EXPECT_EQ(source.inputs, constant.inputs);
  EXPECT_EQ(source.states, constant.states);
  EXPECT_NE(source.rates, constant.rates);
  // Normal equations of the indicators (S x S), shared by every unit.
  std::vector<double> G(S * S, 0.0);
  for (size_t a = 0; a < S; ++a)
    for (size_t b = 0; b < S; ++b)
      for (size_t t = 0; t < T; ++t) G[a * S + b] += source.inputs[a * T + t] * source.inputs[b * T + t];
  size_t driven_units = 0, quiet_units = 0;
  for (size_t i = 0; i < N; ++i) {
    std::vector<double> A = G, w(S, 0.0);
    for (size_t a = 0; a < S; ++a)
      for (size_t t = 0; t < T; ++t) w[a] += source.inputs[a * T + t] * constant.external[i * T + t];
    for (size_t k = 0; k < S; ++k)  // Gaussian elimination (G is positive definite)
      for (size_t r = k + 1; r < S; ++r) {
        const double f = A[r * S + k] / A[k * S + k];
        for (size_t c = k; c < S; ++c) A[r * S + c] -= f * A[k * S + c];
        w[r] -= f * w[k];
      }
    for (size_t k = S; k-- > 0;) {
      for (size_t c = k + 1; c < S; ++c) w[k] -= A[k * S + c] * w[c];
      w[k] /= A[k * S + k];
    }
    const size_t q = size_t(source.meta.unit_region[i]);
    bool any = false;
    for (size_t t = 0; t < T; ++t) {
      double want = 0;
      for (size_t c = q % M; c < S; c += M) want += sim::kSourceDriveFactor * w[c] * source.inputs[c * T + t];
      ASSERT_NEAR(source.external[i * T + t], want, 1e-9) << "unit " << i << " region " << q << " t " << t;
      any = any || source.external[i * T + t] != 0.0;
    }
    (any ? driven_units : quiet_units) += 1;
  }
  // With more regions than states some regions get no drive at all; with S >= 1 some do.
  EXPECT_GT(driven_units, 0u);
  if (M > S) {
    EXPECT_GT(quiet_units, 0u);
  }
  sim::SimulateParams bad = p;
  bad.drive_amplitude = 0;
  try {
    sim::validate_params(bad);
    ADD_FAILURE() << "gating source without drives accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--gating"), std::string::npos) << e.what();
  }
}

TEST(Simulate, HiddenGatingSwitchesTheGainsButNotTheInputs) {
  // --gating hidden: the gains and the behaviour states are those of --gating states (the same
  // sequence), while the drives and so /inputs follow an independent sequence: the largest input
  // channel names the behaviour state at most at chance level, where under --gating states it
  // names it nearly always.
  sim::SimulateParams p = small_cohort();
  p.animals = 1;
  p.missing_fraction = 0;
  p.samples = 600;  // several visits of every state
  const sim::CohortPlan plan = sim::make_plan(p);
  const sim::SimulatedAnimal gated = sim::simulate_animal(p, plan, 0);
  p.gating = sim::kGatingHidden;
  const sim::SimulatedAnimal hidden = sim::simulate_animal(p, plan, 0);
  const size_t T = size_t(hidden.meta.n_samples), S = size_t(sim::n_states(p));
  EXPECT_EQ(hidden.states, gated.states);
  EXPECT_EQ(hidden.gains, gated.gains);
  EXPECT_EQ(hidden.pair_coupled, gated.pair_coupled);
  EXPECT_NE(hidden.inputs, gated.inputs);
  EXPECT_NE(hidden.rates, gated.rates);
  auto agreement = [&](const sim::SimulatedAnimal& a) {
    size_t same = 0;
    for (size_t t = 0; t < T; ++t) {
      size_t best = 0;
      for (size_t c = 1; c < S; ++c)
        if (a.inputs[c * T + t] > a.inputs[best * T + t]) best = c;
      same += std::int64_t(best) == a.states[t];
    }
    return double(same) / double(T);
  };
  EXPECT_GT(agreement(gated), 0.8);
  EXPECT_LT(agreement(hidden), 0.6);
}

TEST(Simulate, LaggedGatingShiftsTheGainsNotTheDrives) {
  // --gating-lag L: the modes' activations follow the state L later than the drives do, so the
  // gains are exactly the in-step gains shifted by L (before L: the first state's), while the
  // states, the drives (/inputs) and the coupled pathways are the same.
  sim::SimulateParams p = small_cohort();
  p.animals = 1;
  p.missing_fraction = 0;
  const sim::CohortPlan plan = sim::make_plan(p);
  const sim::SimulatedAnimal now = sim::simulate_animal(p, plan, 0);
  p.gating_lag = 0.25;
  const sim::SimulatedAnimal later = sim::simulate_animal(p, plan, 0);
  const size_t M = size_t(now.meta.n_regions()), T = size_t(now.meta.n_samples);
  const size_t L = size_t(std::lround(p.gating_lag / p.dt));
  ASSERT_GT(L, 0u);
  ASSERT_LT(L, T / 2);
  EXPECT_EQ(later.states, now.states);
  EXPECT_EQ(later.inputs, now.inputs);
  EXPECT_EQ(later.pair_coupled, now.pair_coupled);
  bool moves = false;
  for (size_t qs = 0; qs < M * M; ++qs)
    for (size_t t = 0; t < T; ++t) {
      const double want = now.gains[qs * T + (t >= L ? t - L : 0)];
      ASSERT_EQ(later.gains[qs * T + t], want) << "pair " << qs << " t " << t;
      moves = moves || now.gains[qs * T + t] != now.gains[qs * T];
    }
  EXPECT_TRUE(moves) << "the in-step gains never move: the shift is not tested";
  EXPECT_NE(later.rates, now.rates);
  for (const auto& [gating, lag] : {std::pair<std::string, double>{"states", -1.0}, {"constant", 0.5}}) {
    sim::SimulateParams bad = p;
    bad.gating = gating;
    bad.gating_lag = lag;
    try {
      sim::validate_params(bad);
      ADD_FAILURE() << "gating " << gating << " with lag " << lag << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--gating-lag"), std::string::npos) << e.what();
    }
  }
}
