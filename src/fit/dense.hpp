#pragma once
// Small helpers around PETSc's dense matrices for the fit's files (internal to src/fit): the
// local column-major array of a MATMPIDENSE, creation with PETSc's row split, row-major copies.
#include <mpi.h>
#include <petscmat.h>

#include <vector>

#include "core/parallel.hpp"

namespace cohortnet::fit {

// The local rows of a dense matrix as a column-major array (element (i, j) at a[i + j*lda]),
// held for the scope of the object.
struct DenseArray {
  Mat m;
  double* a = nullptr;
  PetscInt lda = 0;
  explicit DenseArray(Mat mat) : m(mat) {
    if (!m) return;  // absent matrix
    PetscScalar* p = nullptr;
    COHORTNET_PETSC(MatDenseGetArray(m, &p));
    a = p;
    COHORTNET_PETSC(MatDenseGetLDA(m, &lda));
  }
  ~DenseArray() {
    if (!m) return;
    PetscScalar* p = a;
    MatDenseRestoreArray(m, &p);
  }
  DenseArray(const DenseArray&) = delete;
  DenseArray& operator=(const DenseArray&) = delete;
};

// N x N, m local rows (PETSC_DECIDE: PETSc's split), zero.
inline Mat create_dense(MPI_Comm comm, PetscInt m, PetscInt N) {
  Mat A = nullptr;
  COHORTNET_PETSC(MatCreateDense(comm, m, PETSC_DECIDE, N, N, nullptr, &A));
  COHORTNET_PETSC(MatAssemblyBegin(A, MAT_FINAL_ASSEMBLY));
  COHORTNET_PETSC(MatAssemblyEnd(A, MAT_FINAL_ASSEMBLY));
  return A;
}

// Row-major m x n from a column-major block (lda), and back.
inline std::vector<double> to_row_major(const double* a, PetscInt lda, PetscInt m, PetscInt n) {
  std::vector<double> out(size_t(m) * size_t(n));
  for (PetscInt j = 0; j < n; ++j)
    for (PetscInt i = 0; i < m; ++i) out[size_t(i) * size_t(n) + size_t(j)] = a[i + j * lda];
  return out;
}
inline void from_row_major(double* a, PetscInt lda, PetscInt m, PetscInt n, const std::vector<double>& in) {
  for (PetscInt j = 0; j < n; ++j)
    for (PetscInt i = 0; i < m; ++i) a[i + j * lda] = in[size_t(i) * size_t(n) + size_t(j)];
}
inline std::vector<double> to_row_major(Mat A, PetscInt m, PetscInt N) {
  DenseArray d(A);
  return to_row_major(d.a, d.lda, m, N);
}
inline void from_row_major(Mat A, PetscInt m, PetscInt N, const std::vector<double>& in) {
  DenseArray d(A);
  from_row_major(d.a, d.lda, m, N, in);
}

}  // namespace cohortnet::fit
