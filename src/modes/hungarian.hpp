#pragma once
// Hungarian algorithm (Kuhn-Munkres with potentials, O(n^2 m)), our own implementation: used to
// match modes between fits (cosine similarity) before comparing them.
#include <vector>

namespace cohortnet::modes {

// Minimum-cost assignment for an n x m cost matrix (row-major), n <= m: returns, for every row,
// the column assigned to it (distinct columns). For n > m, call with the transpose.
std::vector<int> hungarian_min(const std::vector<double>& cost, int n, int m);

// Maximum-similarity matching of a square K x K similarity matrix sim[i*K + j]: returns
// match[i] = j. Ties are broken deterministically (lowest index first).
std::vector<int> match_max(const std::vector<double>& sim, int K);

}  // namespace cohortnet::modes
