#pragma once
// Seeded random streams. Every draw in cohortnet comes from a Stream named by (seed, ids...):
// e.g. Stream(seed, {animal, kJ0, row}) gives row `row` of J0 whatever rank owns it, so results
// do not depend on the number of ranks. The generator (xoshiro256**) and the normal transform
// are our own code, so numbers are identical on every platform and compiler.
#include <cstdint>
#include <initializer_list>

namespace cohortnet {

// Stream tags, so two uses of one seed never share a stream.
enum StreamTag : std::uint64_t {
  kTagJ0 = 1,
  kTagNoise = 2,
  kTagSimulate = 3,
  kTagModes = 4,
  kTagPermutation = 5,
  kTagHoldout = 6,
  kTagLatent = 7,
};

class Stream {
 public:
  Stream(std::uint64_t seed, std::initializer_list<std::uint64_t> ids);
  std::uint64_t next();        // 64 random bits
  double uniform();            // [0, 1)
  double uniform_open();       // (0, 1)
  double normal();             // standard normal (Box-Muller, both values used in turn)
  std::uint64_t below(std::uint64_t n);  // uniform integer in [0, n)

 private:
  std::uint64_t s_[4];
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// SplitMix64 mixing, exposed for deriving seeds (e.g. per animal).
std::uint64_t mix64(std::uint64_t x);

}  // namespace cohortnet
