#pragma once
// The parallel environment: MPI + PETSc start/stop, who owns which rows, and agreement on errors
// (so that a bad input seen by one rank stops every rank with the same message instead of a hang).
#include <mpi.h>
#include <petscsys.h>

#include <functional>
#include <string>
#include <vector>

namespace cohortnet {

// Starts MPI and PETSc; PETSc reads its own single-dash options (-log_view, ...) from argv.
class Environment {
 public:
  Environment(int* argc, char*** argv);
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;
};

// A contiguous block of rows [begin, end) owned by this rank; PETSc decides the split
// (PetscSplitOwnership), so matrices, vectors and file reads agree on it.
struct RowRange {
  PetscInt begin = 0, end = 0;
  PetscInt count() const { return end - begin; }
};
RowRange own_rows(PetscInt n_global, MPI_Comm comm);
// Rows owned by every rank of comm (counts and offsets for MPI_Allgatherv).
void row_layout(PetscInt n_global, MPI_Comm comm, std::vector<int>& counts, std::vector<int>& offsets);

int comm_rank(MPI_Comm comm);
int comm_size(MPI_Comm comm);

// Runs f on every rank of comm. If it throws on any rank, every rank throws an Error with the
// message of the lowest failing rank. Collectives inside f must be reached by every rank (a
// rank-local check that can fail goes through agree() before the next collective).
void collective(MPI_Comm comm, const std::function<void()>& f);

// Collective check: every rank passes its local verdict; if any rank has a message, all ranks
// throw Error with the lowest failing rank's message.
void agree(MPI_Comm comm, const std::string& local_error);

// Rank 0's string on every rank (any length: sent in pieces below INT_MAX bytes).
void bcast_string(std::string& s, MPI_Comm comm);

// Throws Error from a PETSc error code (PETSc's own message is printed by its handler).
void petsc_check(PetscErrorCode ierr, const char* what);

}  // namespace cohortnet

#define COHORTNET_PETSC(call) ::cohortnet::petsc_check((call), #call)
