#include "test_util.hpp"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "core/parallel.hpp"

namespace cohortnet::testutil {

namespace {
std::vector<std::string>& to_remove() {
  static std::vector<std::string> v;
  static bool registered = false;
  if (!registered) {
    registered = true;
    std::atexit([] {
      if (std::getenv("COHORTNET_KEEP_TEST_FILES")) return;
      for (auto& d : to_remove()) {
        std::error_code ec;
        std::filesystem::remove_all(d, ec);
      }
    });
  }
  return v;
}
}  // namespace

std::string scratch_dir(const std::string& name, MPI_Comm comm) {
  long pid = long(getpid());
  MPI_Bcast(&pid, 1, MPI_LONG, 0, comm);
  std::string base = std::filesystem::temp_directory_path().string() + "/cohortnet-test-" +
                     std::to_string(pid) + "-" + name;
  if (comm_rank(comm) == 0) {
    std::filesystem::remove_all(base);
    std::filesystem::create_directories(base);
    to_remove().push_back(base);
  }
  MPI_Barrier(comm);
  return base;
}

std::string source_dir() {
  const char* s = std::getenv("COHORTNET_SOURCE_DIR");
  return s ? s : ".";
}

std::string cohortnet_binary() {
  const char* s = std::getenv("COHORTNET_BINARY");
  return s ? s : "cohortnet";
}

int run_command(const std::string& cmd, std::string* output) {
  std::string full = cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf;
  std::string out;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int st = pclose(p);
  if (output) *output = out;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

}  // namespace cohortnet::testutil
