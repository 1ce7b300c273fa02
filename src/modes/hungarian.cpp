#include "modes/hungarian.hpp"

#include <limits>

#include "core/error.hpp"

namespace cohortnet::modes {

std::vector<int> hungarian_min(const std::vector<double>& cost, int n, int m) {
  if (n < 0 || m < 0 || n > m) fail("hungarian: need 0 <= rows <= columns, got ", n, " x ", m);
  if (cost.size() != size_t(n) * size_t(m)) fail("hungarian: cost has ", cost.size(), " entries, expected ", n * m);
  const double inf = std::numeric_limits<double>::infinity();
  // 1-based potentials u (rows), v (columns); p[j] = row matched to column j (0 = none).
  std::vector<double> u(size_t(n) + 1, 0.0), v(size_t(m) + 1, 0.0);
  std::vector<int> p(size_t(m) + 1, 0), way(size_t(m) + 1, 0);
  for (int i = 1; i <= n; ++i) {
    p[0] = i;
    int j0 = 0;
    std::vector<double> minv(size_t(m) + 1, inf);
    std::vector<char> used(size_t(m) + 1, 0);
    do {
      used[size_t(j0)] = 1;
      const int i0 = p[size_t(j0)];
      double delta = inf;
      int j1 = 0;
      for (int j = 1; j <= m; ++j) {
        if (used[size_t(j)]) continue;
        const double cur = cost[size_t(i0 - 1) * size_t(m) + size_t(j - 1)] - u[size_t(i0)] - v[size_t(j)];
        if (cur < minv[size_t(j)]) {
          minv[size_t(j)] = cur;
          way[size_t(j)] = j0;
        }
        if (minv[size_t(j)] < delta) {
          delta = minv[size_t(j)];
          j1 = j;
        }
      }
      if (j1 == 0) fail("hungarian: cost matrix has NaN or infinite entries");
      for (int j = 0; j <= m; ++j) {
        if (used[size_t(j)]) {
          u[size_t(p[size_t(j)])] += delta;
          v[size_t(j)] -= delta;
        } else {
          minv[size_t(j)] -= delta;
        }
      }
      j0 = j1;
    } while (p[size_t(j0)] != 0);
    do {  // augment along the alternating path
      const int j1 = way[size_t(j0)];
      p[size_t(j0)] = p[size_t(j1)];
      j0 = j1;
    } while (j0);
  }
  std::vector<int> row_to_col(size_t(n), -1);
  for (int j = 1; j <= m; ++j)
    if (p[size_t(j)] > 0) row_to_col[size_t(p[size_t(j)] - 1)] = j - 1;
  return row_to_col;
}

std::vector<int> match_max(const std::vector<double>& sim, int K) {
  std::vector<double> cost(sim.size());
  for (size_t i = 0; i < sim.size(); ++i) cost[i] = -sim[i];
  return hungarian_min(cost, K, K);
}

}  // namespace cohortnet::modes
