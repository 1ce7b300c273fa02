// GoogleTest main for MPI tests: every rank runs every test; failures on any rank are collected
// and reported by rank 0, and the exit code is non-zero on every rank if any rank failed.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <string>

#include "core/h5.hpp"
#include "core/parallel.hpp"

namespace {

// Forwards each failure from ranks != 0 to stderr with its rank, so a failure seen only on
// rank 1 is visible (rank 0's printer would otherwise report PASSED).
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] FAILURE %s:%d\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.summary());
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    // Agree on the verdict of every test so rank 0's summary is the cohort's.
    int failed = info.result()->Failed() ? 1 : 0, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any && !failed && rank_ == 0)
      ADD_FAILURE() << "test failed on another rank (see [rank N] FAILURE lines)";
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  cohortnet::Environment env(&argc, &argv);
  cohortnet::h5::quiet_errors();
  int rank = cohortnet::comm_rank(MPI_COMM_WORLD);
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (rank != 0) delete listeners.Release(listeners.default_result_printer());
  listeners.Append(new RankFailurePrinter(rank));
  int local = RUN_ALL_TESTS();
  int global = 0;
  MPI_Allreduce(&local, &global, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return global;
}
