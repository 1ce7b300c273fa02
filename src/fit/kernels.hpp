#pragma once
// The level-2 kernels of one RLS step on a rank's block of rows, stored column-major (PETSc's
// dense layout: element (i, j) at a[i + j*lda]). Our own loops rather than BLAS because every
// element of the result is summed in the same order (j = 0, 1, ..., n-1) whatever the number of
// local rows, so J and P do not depend on the rank count (BLAS kernels change the order with the
// block shape, and the chaotic RNN amplifies rounding). Four columns per pass keep y in registers;
// each is one streaming pass over the block (memory-bandwidth bound).
#include <petscsys.h>

namespace cohortnet::fit::kernels {

// y = A x   (A: m x n, x: n, y: m)
inline void gemv(PetscInt m, PetscInt n, const double* a, PetscInt lda, const double* x, double* y) {
  for (PetscInt i = 0; i < m; ++i) y[i] = 0.0;
  PetscInt j = 0;
  for (; j + 4 <= n; j += 4) {
    const double* c0 = a + j * lda;
    const double* c1 = c0 + lda;
    const double* c2 = c1 + lda;
    const double* c3 = c2 + lda;
    const double x0 = x[j], x1 = x[j + 1], x2 = x[j + 2], x3 = x[j + 3];
    for (PetscInt i = 0; i < m; ++i) {
      double t = y[i];
      t += c0[i] * x0;
      t += c1[i] * x1;
      t += c2[i] * x2;
      t += c3[i] * x3;
      y[i] = t;
    }
  }
  for (; j < n; ++j) {
    const double* c0 = a + j * lda;
    const double x0 = x[j];
    for (PetscInt i = 0; i < m; ++i) y[i] += c0[i] * x0;
  }
}

// A -= u (c v)^T   (u: m, local; v: n, full)
inline void ger(PetscInt m, PetscInt n, double* a, PetscInt lda, double c, const double* u, const double* v) {
  for (PetscInt j = 0; j < n; ++j) {
    double* col = a + j * lda;
    const double s = c * v[j];
    for (PetscInt i = 0; i < m; ++i) col[i] -= u[i] * s;
  }
}

// Fused: A -= u (c v)^T, then y = A x with the updated A, in one pass over A.
inline void ger_gemv(PetscInt m, PetscInt n, double* a, PetscInt lda, double c, const double* u,
                     const double* v, const double* x, double* y) {
  for (PetscInt i = 0; i < m; ++i) y[i] = 0.0;
  PetscInt j = 0;
  for (; j + 4 <= n; j += 4) {
    double* c0 = a + j * lda;
    double* c1 = c0 + lda;
    double* c2 = c1 + lda;
    double* c3 = c2 + lda;
    const double s0 = c * v[j], s1 = c * v[j + 1], s2 = c * v[j + 2], s3 = c * v[j + 3];
    const double x0 = x[j], x1 = x[j + 1], x2 = x[j + 2], x3 = x[j + 3];
    for (PetscInt i = 0; i < m; ++i) {
      const double ui = u[i];
      const double a0 = c0[i] - ui * s0, a1 = c1[i] - ui * s1, a2 = c2[i] - ui * s2, a3 = c3[i] - ui * s3;
      c0[i] = a0;
      c1[i] = a1;
      c2[i] = a2;
      c3[i] = a3;
      double t = y[i];
      t += a0 * x0;
      t += a1 * x1;
      t += a2 * x2;
      t += a3 * x3;
      y[i] = t;
    }
  }
  for (; j < n; ++j) {
    double* c0 = a + j * lda;
    const double s0 = c * v[j], x0 = x[j];
    for (PetscInt i = 0; i < m; ++i) {
      c0[i] -= u[i] * s0;
      y[i] += c0[i] * x0;
    }
  }
}

// Row-grouped rank-1 update (region prior): A[i, j] -= u[i] * S[g[i]*n + j], where S holds each
// group's scaled vector (c_Q k_Q). Same arithmetic per element as ger, one pass over A.
inline void ger_grouped(PetscInt m, PetscInt n, double* a, PetscInt lda, const int* g, const double* s,
                        const double* u) {
  for (PetscInt j = 0; j < n; ++j) {
    double* col = a + j * lda;
    for (PetscInt i = 0; i < m; ++i) col[i] -= u[i] * s[PetscInt(g[i]) * n + j];
  }
}

}  // namespace cohortnet::fit::kernels
