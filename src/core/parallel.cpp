#include "core/parallel.hpp"

#include <algorithm>
#include <cstdint>
#include <exception>

#include "core/error.hpp"

namespace cohortnet {

Environment::Environment(int* argc, char*** argv) {
  // PETSc initialises MPI; its error handler stays the default (print and return codes).
  PetscErrorCode ierr = PetscInitialize(argc, argv, nullptr, nullptr);
  if (ierr) throw Error("PETSc failed to initialise");
}

Environment::~Environment() { PetscFinalize(); }

RowRange own_rows(PetscInt n_global, MPI_Comm comm) {
  PetscInt n_local = PETSC_DECIDE, N = n_global;
  PetscSplitOwnership(comm, &n_local, &N);
  PetscInt end = 0;
  MPI_Scan(&n_local, &end, 1, MPIU_INT, MPI_SUM, comm);
  return RowRange{end - n_local, end};
}

void row_layout(PetscInt n_global, MPI_Comm comm, std::vector<int>& counts, std::vector<int>& offsets) {
  const int size = comm_size(comm);
  RowRange mine = own_rows(n_global, comm);
  int n = int(mine.count());
  counts.assign(size, 0);
  offsets.assign(size, 0);
  MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, comm);
  for (int r = 1; r < size; ++r) offsets[r] = offsets[r - 1] + counts[r - 1];
}

int comm_rank(MPI_Comm comm) {
  int r = 0;
  MPI_Comm_rank(comm, &r);
  return r;
}

int comm_size(MPI_Comm comm) {
  int s = 1;
  MPI_Comm_size(comm, &s);
  return s;
}

void bcast_string(std::string& s, MPI_Comm comm) {
  std::uint64_t n = s.size();
  MPI_Bcast(&n, 1, MPI_UINT64_T, 0, comm);
  s.resize(std::size_t(n));
  const std::size_t piece = std::size_t(1) << 30;  // MPI counts are int
  for (std::size_t off = 0; off < n; off += piece)
    MPI_Bcast(s.data() + off, int(std::min<std::size_t>(piece, std::size_t(n) - off)), MPI_CHAR, 0, comm);
}

void agree(MPI_Comm comm, const std::string& local_error) {
  const int rank = comm_rank(comm);
  const int size = comm_size(comm);
  int mine = local_error.empty() ? size : rank;
  int first = size;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
  if (first == size) return;
  int len = rank == first ? int(local_error.size()) : 0;
  MPI_Bcast(&len, 1, MPI_INT, first, comm);
  std::string msg = rank == first ? local_error : std::string(size_t(len), ' ');
  MPI_Bcast(msg.data(), len, MPI_CHAR, first, comm);
  throw AgreedError(msg);
}

void collective(MPI_Comm comm, const std::function<void()>& f) {
  std::string err;
  try {
    f();
  } catch (const std::exception& e) {
    err = e.what();
    if (err.empty()) err = "unknown error";
  }
  agree(comm, err);
}

void petsc_check(PetscErrorCode ierr, const char* what) {
  if (ierr) fail("PETSc error ", int(ierr), " in ", what);
}

}  // namespace cohortnet
