// Region-pair currents from distributed rows of J equal a direct serial computation, at any
// rank count, and the file layout is [M x M x T] (target, source, sample).
#include <gtest/gtest.h>

#include <cmath>

#include "core/h5.hpp"
#include "core/rng.hpp"
#include "decompose/decompose.hpp"
#include "test_util.hpp"

using namespace cohortnet;

TEST(Decompose, MatchesDirectComputation) {
  const std::int64_t N = 23, T = 17;
  const int M = 3;
  std::vector<int> region(static_cast<size_t>(N));
  for (std::int64_t i = 0; i < N; ++i) region[size_t(i)] = int((i * 5 + 1) % M);
  std::vector<double> J(static_cast<size_t>(N * N)), R(static_cast<size_t>(N * T));
  Stream s(5, {1});
  for (auto& v : J) v = s.normal();
  for (auto& v : R) v = std::tanh(s.normal());

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
