#include "core/log.hpp"

#include <cstdio>

namespace cohortnet::log {
namespace {
bool g_all_ranks = false;
}

void set_all_ranks(bool on) { g_all_ranks = on; }
bool all_ranks() { return g_all_ranks; }

void emit(MPI_Comm comm, const std::string& line, bool error) {
  int rank = 0, wrank = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
  if (rank != 0 && !g_all_ranks) return;
  FILE* out = error ? stderr : stdout;
  if (g_all_ranks)
    std::fprintf(out, "[%d] %s\n", wrank, line.c_str());
  else
    std::fprintf(out, "%s\n", line.c_str());
  std::fflush(out);
}

std::string duration(double s) {
  char buf[64];
  if (s < 0) s = 0;
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else
    std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) % 3600) / 60);
  return buf;
}

}  // namespace cohortnet::log
