#pragma once
// Helpers shared by the tests (namespace testutil: `testing` is GoogleTest's): a scratch folder agreed by all ranks, paths to the source tree,
// and a way to run the cohortnet binary (for CLI tests).
#include <mpi.h>

#include <string>

namespace cohortnet::testutil {

// A fresh empty folder, the same path on every rank of comm (collective); removed at exit
// unless COHORTNET_KEEP_TEST_FILES is set.
std::string scratch_dir(const std::string& name, MPI_Comm comm = MPI_COMM_WORLD);
// The project's source folder (COHORTNET_SOURCE_DIR, set by CTest).
std::string source_dir();
// Path of the cohortnet executable (COHORTNET_BINARY, set by CTest).
std::string cohortnet_binary();
// Runs a shell command (on the calling rank only); returns its exit status and output.
int run_command(const std::string& cmd, std::string* output = nullptr);

}  // namespace cohortnet::testutil
