#pragma once
// One exception type for every user-facing failure. Messages name the file, dataset, animal or
// option at fault; the CLI prints them and exits non-zero. Never used for internal bugs.
#include <sstream>
#include <stdexcept>
#include <string>

namespace cohortnet {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// An Error every rank of a communicator has agreed on (thrown by agree()/collective()): all
// ranks unwind together, so the program can exit cleanly instead of aborting.
class AgreedError : public Error {
 public:
  explicit AgreedError(const std::string& what) : Error(what) {}
};

// fail("file ", path, ": dataset /activity has NaN at unit ", i) -> throws Error.
template <class... Args>
[[noreturn]] void fail(const Args&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw Error(os.str());
}

template <class... Args>
std::string cat(const Args&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

}  // namespace cohortnet
