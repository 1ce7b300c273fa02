// Region-pair currents from distributed rows of J equal a direct serial computation, at any
// rank count, and the file layout is [M x M x T] (target, source, sample).
#include <gtest/gtest.h>

#include <cmath>

#include "core/h5.hpp"
#include "core/rng.hpp"
#include "decompose/decompose.hpp"
#include "test_util.hpp"

using namespace cohortnet;

namespace {
// A random network of N units in M regions (interleaved: unit i in (5i + 1) mod M; grouped: i M / N).
struct Case {
  std::vector<int> region;
  std::vector<double> J, R;  // N x N, N x T (row-major)
};
Case random_case(std::int64_t N, std::int64_t T, int M, bool grouped, std::uint64_t seed, std::uint64_t tag) {
  Case c;
  c.region.resize(static_cast<size_t>(N));
  for (std::int64_t i = 0; i < N; ++i) c.region[size_t(i)] = grouped ? int(i * M / N) : int((i * 5 + 1) % M);
  c.J.resize(static_cast<size_t>(N * N));
  c.R.resize(static_cast<size_t>(N * T));
  Stream s(seed, {tag});
  for (auto& v : c.J) v = s.normal();
  for (auto& v : c.R) v = std::tanh(s.normal());
  return c;
}
}  // namespace

TEST(Decompose, MatchesDirectComputation) {
  const std::int64_t N = 23, T = 17;
  const int M = 3;
  const Case net = random_case(N, T, M, false, 5, 1);
  const std::vector<int>& region = net.region;
  const std::vector<double>&J = net.J, &R = net.R;

  RowRange rows = own_rows(PetscInt(N), MPI_COMM_WORLD);
  std::vector<double> mine(J.begin() + rows.begin * N, J.begin() + rows.end * N);
  std::vector<double> per_unit;
  decompose::RegionCurrents c =
      decompose::region_currents(mine.data(), rows, N, R.data(), T, region, M, MPI_COMM_WORLD, &per_unit);
  ASSERT_EQ(c.mean.size(), size_t(M * M * T));

  for (int q = 0; q < M; ++q)
    for (int src = 0; src < M; ++src)
      for (std::int64_t t = 0; t < T; ++t) {
        double sum = 0, sq = 0, es = 0, eq = 0, is = 0, iq = 0;
        int n = 0;
        for (std::int64_t i = 0; i < N; ++i) {
          if (region[size_t(i)] != q) continue;
          ++n;
          double tot = 0, ex = 0, in = 0;
          for (std::int64_t j = 0; j < N; ++j) {
            if (region[size_t(j)] != src) continue;
            const double w = J[size_t(i * N + j)], v = w * R[size_t(j * T + t)];
            tot += v;
            if (w > 0) ex += v;
            if (w < 0) in += v;
          }
          sum += tot;
          sq += tot * tot;
          es += ex;
          eq += ex * ex;
          is += in;
          iq += in * in;
          if (i >= rows.begin && i < rows.end) {
            EXPECT_NEAR(per_unit[size_t(((i - rows.begin) * M + src) * T + t)], tot, 1e-12);
          }
        }
        EXPECT_NEAR(c.at(c.mean, q, src, t), sum / n, 1e-12);
        EXPECT_NEAR(c.at(c.rms, q, src, t), std::sqrt(sq / n), 1e-12);
        EXPECT_NEAR(c.at(c.exc_mean, q, src, t), es / n, 1e-12);
        EXPECT_NEAR(c.at(c.exc_rms, q, src, t), std::sqrt(eq / n), 1e-12);
        EXPECT_NEAR(c.at(c.inh_mean, q, src, t), is / n, 1e-12);
        EXPECT_NEAR(c.at(c.inh_rms, q, src, t), std::sqrt(iq / n), 1e-12);
      }

  // Written layout.
  const std::string dir = testutil::scratch_dir("decompose");
  {
    h5::AtomicFile af(dir + "/c.h5", MPI_COMM_WORLD);
    decompose::write_currents(af.file(), c, {"A", "B", "C"});
    decompose::write_per_unit(af.file(), per_unit, rows, N, M, T);
    af.commit();
  }
  h5::File f = h5::open_read(dir + "/c.h5", MPI_COMM_WORLD);
  for (const char* ds : {"/currents/mean", "/currents/rms", "/currents/exc_mean", "/currents/exc_rms",
                         "/currents/inh_mean", "/currents/inh_rms"}) {
    auto d = h5::dims(f, ds);
    ASSERT_EQ(d.size(), 3u) << ds;
    EXPECT_EQ(d[0], hsize_t(M));
    EXPECT_EQ(d[1], hsize_t(M));
    EXPECT_EQ(d[2], hsize_t(T));
  }
  EXPECT_EQ(h5::read_doubles(f, "/currents/rms"), c.rms);
  EXPECT_EQ(h5::read_strings(f, "/region_names"), (std::vector<std::string>{"A", "B", "C"}));
  auto pu = h5::dims(f, "/currents/per_unit");
  EXPECT_EQ(pu[0], hsize_t(N));
  EXPECT_EQ(pu[1], hsize_t(M * T));
}

TEST(Decompose, ByRowsEqualsReplicatedAndWritesTheSameFile) {
  // The fit's output form: rates by rows, gathered in time chunks (7 samples here, so chunks do
  // not divide T), each target region's summaries on one rank. Interleaved regions (every rank
  // holds several targets) and grouped ones (each rank one or two), at 1-3 ranks.
  const std::int64_t N = 23, T = 17;
  const int M = 3;
  for (bool grouped : {false, true}) {
    const Case net = random_case(N, T, M, grouped, 7, 2);
    const std::vector<int>& region = net.region;
    const std::vector<double>&J = net.J, &R = net.R;
    RowRange rows = own_rows(PetscInt(N), MPI_COMM_WORLD);
    std::vector<double> mine(J.begin() + rows.begin * N, J.begin() + rows.end * N);
    std::vector<double> my_rates(R.begin() + rows.begin * T, R.begin() + rows.end * T);
    std::vector<double> pu_full, pu_rows;
    const decompose::RegionCurrents full =
        decompose::region_currents(mine.data(), rows, N, R.data(), T, region, M, MPI_COMM_WORLD, &pu_full);
    const decompose::RegionCurrentsPart part = decompose::region_currents_by_rows(
        mine.data(), rows, N, my_rates.data(), T, region, M, MPI_COMM_WORLD, &pu_rows, 7);
    ASSERT_EQ(pu_rows.size(), pu_full.size());
    for (size_t z = 0; z < pu_rows.size(); ++z) EXPECT_NEAR(pu_rows[z], pu_full[z], 1e-12) << z;
    // Every target region is held by exactly one rank.
    std::vector<int> held(size_t(M), 0);
    for (int q : part.targets) held[size_t(q)] = 1;
    MPI_Allreduce(MPI_IN_PLACE, held.data(), M, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    for (int q = 0; q < M; ++q) EXPECT_EQ(held[size_t(q)], 1) << q;
    for (size_t k = 0; k < part.targets.size(); ++k)
      for (int src = 0; src < M; ++src)
        for (std::int64_t t = 0; t < T; ++t) {
          const size_t o = (k * size_t(M) + size_t(src)) * size_t(T) + size_t(t);
          const int q = part.targets[k];
          EXPECT_NEAR(part.mean[o], full.at(full.mean, q, src, t), 1e-12);
          EXPECT_NEAR(part.rms[o], full.at(full.rms, q, src, t), 1e-12);
          EXPECT_NEAR(part.inh_rms[o], full.at(full.inh_rms, q, src, t), 1e-12);
        }
    // The file it writes has the replicated form's datasets and values.
    const std::string dir = testutil::scratch_dir("decompose-rows");
    {
      h5::File f = h5::create(dir + "/a.h5", MPI_COMM_WORLD);
      decompose::write_currents(f, full, {"A", "B", "C"});
      h5::close(f);
      h5::File g = h5::create(dir + "/b.h5", MPI_COMM_WORLD);
      decompose::write_currents(g, part, {"A", "B", "C"});
      h5::close(g);
    }
    h5::File a = h5::open_read(dir + "/a.h5", MPI_COMM_WORLD), b = h5::open_read(dir + "/b.h5", MPI_COMM_WORLD);
    for (const char* ds : {"/currents/mean", "/currents/rms", "/currents/exc_mean", "/currents/exc_rms",
                           "/currents/inh_mean", "/currents/inh_rms"}) {
      EXPECT_EQ(h5::dims(a, ds), h5::dims(b, ds)) << ds;
      const std::vector<double> x = h5::read_doubles(a, ds), y = h5::read_doubles(b, ds);
      ASSERT_EQ(x.size(), y.size());
      for (size_t z = 0; z < x.size(); ++z) EXPECT_NEAR(x[z], y[z], 1e-12) << ds << " " << z;
    }
  }
}
