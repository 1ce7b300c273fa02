#pragma once
// Logging: rank 0 of the communicator speaks; other ranks are silent unless --verbose-ranks.
#include <mpi.h>

#include <sstream>
#include <string>

namespace cohortnet::log {

void set_all_ranks(bool on);  // --verbose-ranks
bool all_ranks();
void emit(MPI_Comm comm, const std::string& line, bool error);

// Message from rank 0 of comm (prefixed by nothing: terminal output for people).
template <class... Args>
void info(MPI_Comm comm, const Args&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  emit(comm, os.str(), false);
}

template <class... Args>
void warn(MPI_Comm comm, const Args&... parts) {
  std::ostringstream os;
  os << "warning: ";
  (os << ... << parts);
  emit(comm, os.str(), true);
}

// Seconds -> "1h02m", "3m20s", "12.3s".
std::string duration(double seconds);

}  // namespace cohortnet::log
