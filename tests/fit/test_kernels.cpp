// The fit's kernels (src/fit/kernels.hpp): a block of rows gives exactly the rows of the whole
// product (rank independence), delayed updates applied together equal the same updates applied one
// by one, the fused product equals the separate one bit for bit (what resume relies on), and a
// product corrected by pending terms equals the product with the updated matrix to rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "fit/kernels.hpp"

using namespace cohortnet::fit;

namespace {

struct Case {
  PetscInt m = 37, n = 53;  // odd sizes: vector remainders in both directions
  std::vector<double> a, x;
  std::vector<double> U, S;  // kMaxPending terms; S with G groups
  int G = 2;
  explicit Case(unsigned seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> nd;
    a.resize(size_t(m * n));
    for (double& v : a) v = nd(rng);
    x.resize(size_t(n));
    for (double& v : x) v = nd(rng);
    U.resize(size_t(kernels::kMaxPending * m));
    for (double& v : U) v = 0.1 * nd(rng);
    S.resize(size_t(kernels::kMaxPending * G * n));
    for (double& v : S) v = 0.1 * nd(rng);
  }
};

std::vector<int> groups_of(PetscInt m) {
  std::vector<int> g(static_cast<size_t>(m));
  for (PetscInt i = 0; i < m; ++i) g[size_t(i)] = (i / 5) % 2;  // alternating runs of 5 rows
  return g;
}

}  // namespace

TEST(Kernels, RowBlockGivesExactlyTheRowsOfTheWholeProduct) {
  Case c(1);
  std::vector<double> y(size_t(c.m));
  kernels::gemv(c.m, c.n, c.a.data(), c.m, c.x.data(), y.data());
  for (PetscInt lo : {0, 3, 8, 11}) {
    const PetscInt hi = std::min<PetscInt>(c.m, lo + 17);
    std::vector<double> yb(size_t(hi - lo));
    kernels::gemv(hi - lo, c.n, c.a.data() + lo, c.m, c.x.data(), yb.data());
    for (PetscInt i = lo; i < hi; ++i) EXPECT_EQ(yb[size_t(i - lo)], y[size_t(i)]) << "row " << i;
  }
  // and equal to the plain sum to rounding
  for (PetscInt i = 0; i < c.m; ++i) {
    double s = 0;
    for (PetscInt j = 0; j < c.n; ++j) s += c.a[size_t(i + j * c.m)] * c.x[size_t(j)];
    EXPECT_NEAR(y[size_t(i)], s, 1e-12 * (1 + std::abs(s)));
  }
}

TEST(Kernels, PendingUpdatesTogetherEqualOneByOneAndFusedEqualsSeparate) {
  const Case c(2);
  const auto segs = kernels::segments(groups_of(c.m));
  ASSERT_GT(segs.size(), 2u);
  for (int nu : {1, 3, 8, kernels::kMaxPending}) {
    std::vector<double> together = c.a, one_by_one = c.a, fused = c.a;
    kernels::apply_updates(c.m, c.n, together.data(), c.m, nu, c.U.data(), c.S.data(), c.G, segs, nullptr, nullptr);
    for (int s = 0; s < nu; ++s)  // term s alone: U row s, S rows (s, g)
      kernels::apply_updates(c.m, c.n, one_by_one.data(), c.m, 1, c.U.data() + s * c.m, c.S.data() + s * c.G * c.n,
                             c.G, segs, nullptr, nullptr);
    EXPECT_EQ(together, one_by_one) << nu << " terms";
    // The plain arithmetic, element by element, to rounding; rows use their group's S.
    const std::vector<int> g = groups_of(c.m);
    for (PetscInt i = 0; i < c.m; ++i)
      for (PetscInt j = 0; j < c.n; ++j) {
        double v = c.a[size_t(i + j * c.m)];
        for (int s = 0; s < nu; ++s) v -= c.U[size_t(s * c.m + i)] * c.S[size_t((s * c.G + g[size_t(i)]) * c.n + j)];
        ASSERT_NEAR(together[size_t(i + j * c.m)], v, 1e-13 * (1 + std::abs(v)));
      }
    // Fused with the product: the same matrix, and y exactly the separate product with it.
    std::vector<double> yf(size_t(c.m)), ys(size_t(c.m));
    kernels::apply_updates(c.m, c.n, fused.data(), c.m, nu, c.U.data(), c.S.data(), c.G, segs, c.x.data(), yf.data());
    EXPECT_EQ(fused, together);
    kernels::gemv(c.m, c.n, together.data(), c.m, c.x.data(), ys.data());
    EXPECT_EQ(yf, ys) << nu << " terms";
  }
}

TEST(Kernels, CorrectedProductEqualsProductWithUpdatedMatrix) {
  const Case c(3);
  const auto segs = kernels::segments(groups_of(c.m));
  for (int nu : {1, 5, kernels::kMaxPending}) {
    std::vector<double> updated = c.a, y_exact(size_t(c.m)), y(size_t(c.m));
    kernels::apply_updates(c.m, c.n, updated.data(), c.m, nu, c.U.data(), c.S.data(), c.G, segs, c.x.data(),
                           y_exact.data());
    kernels::gemv(c.m, c.n, c.a.data(), c.m, c.x.data(), y.data());
    std::vector<double> d(size_t(nu * c.G));
    for (int s = 0; s < nu; ++s)
      for (int g = 0; g < c.G; ++g)
        d[size_t(s * c.G + g)] = kernels::dot(c.n, c.S.data() + (s * c.G + g) * c.n, c.x.data());
    kernels::subtract_pending(c.m, nu, c.U.data(), d.data(), c.G, segs, y.data());
    for (PetscInt i = 0; i < c.m; ++i) EXPECT_NEAR(y[size_t(i)], y_exact[size_t(i)], 1e-12) << "row " << i;
    // Not a no-op: the terms change the product.
    double change = 0;
    std::vector<double> y0(size_t(c.m));
    kernels::gemv(c.m, c.n, c.a.data(), c.m, c.x.data(), y0.data());
    for (PetscInt i = 0; i < c.m; ++i) change = std::max(change, std::abs(y0[size_t(i)] - y_exact[size_t(i)]));
    EXPECT_GT(change, 1e-3);
  }
}

TEST(Kernels, SegmentsAreTheRunsOfEqualGroup) {
  const auto s = kernels::segments({0, 0, 2, 2, 2, 1, 0});
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].begin, 0);
  EXPECT_EQ(s[0].end, 2);
  EXPECT_EQ(s[1].group, 2);
  EXPECT_EQ(s[1].end, 5);
  EXPECT_EQ(s[3].begin, 6);
  EXPECT_EQ(s[3].group, 0);
  EXPECT_TRUE(kernels::segments({}).empty());
}
