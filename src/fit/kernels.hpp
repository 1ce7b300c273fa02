#pragma once
// The level-2 kernels of the RLS fit on a rank's block of rows, stored column-major (PETSc's dense
// layout: element (i, j) at a[i + j*lda]). Our own loops rather than BLAS because every element of
// a result is summed in the same order (j = 0, 1, ..., n-1; pending updates s = 0, 1, ...) whatever
// the number of local rows, so J and P do not depend on the rank count (BLAS kernels change the
// order with the block shape, and the chaotic RNN amplifies rounding). Each kernel is one
// streaming pass over the block: the fit is memory-bandwidth bound (docs/performance.md).
//
// Delayed (blocked) rank-1 updates: RLS changes J and P by one rank-1 term per learning step. The
// fit keeps the last few terms pending (U: local column vectors, S: full row vectors) and applies
// them together in one pass (apply_updates), fused with the next product that reads the matrix;
// between passes a product is corrected exactly by the pending terms (subtract_pending), which
// costs O(rows x pending) instead of a pass over the matrix.
#include <petscsys.h>

#include <cstddef>
#include <vector>

namespace cohortnet::fit::kernels {

// Local rows [begin, end) whose pending row vectors come from group `group` (the region-prior P
// block of those rows; one segment with group 0 for a shared P).
struct Segment {
  PetscInt begin = 0, end = 0;
  int group = 0;
};
// The runs of equal group in a per-row group list.
std::vector<Segment> segments(const std::vector<int>& row_group);

// y = A x   (A: m x n, x: n, y: m)
void gemv(PetscInt m, PetscInt n, const double* a, PetscInt lda, const double* x, double* y);

// Applies nu pending updates in order, A[i, j] -= U[s*m + i] * S[(s*G + g(i))*n + j] for
// s = 0..nu-1 (g(i): the row's segment group), then, if x is not null, y = A x with the updated A,
// all in one pass over A. nu = 1 is the plain rank-1 update (ger) element for element.
void apply_updates(PetscInt m, PetscInt n, double* a, PetscInt lda, int nu, const double* U, const double* S,
                   int G, const std::vector<Segment>& segs, const double* x, double* y);

// y[i] -= sum_s U[s*m + i] * d[s*G + g(i)]  (s = 0..nu-1): a product with the pending terms, given
// d[s*G + g] = S_(s,g) . x, is A_pending x = A x - this.
void subtract_pending(PetscInt m, int nu, const double* U, const double* d, int G,
                      const std::vector<Segment>& segs, double* y);

// a . b in a fixed order (eight interleaved partial sums, then a fixed tree).
double dot(PetscInt n, const double* a, const double* b);

// The largest number of pending updates apply_updates takes.
constexpr int kMaxPending = 16;

}  // namespace cohortnet::fit::kernels
