#include "core/rng.hpp"

#include <cmath>

namespace cohortnet {

std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

Stream::Stream(std::uint64_t seed, std::initializer_list<std::uint64_t> ids) {
  std::uint64_t h = mix64(seed ^ 0x636F686F72746E65ULL);  // "cohortne"
  for (std::uint64_t id : ids) h = mix64(h ^ mix64(id + 0x51ED2701ULL));
  for (auto& w : s_) {
    h = mix64(h);
    w = h;
  }
  if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) s_[0] = 1;  // xoshiro's one forbidden state
}

static inline std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

std::uint64_t Stream::next() {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Stream::uniform() { return double(next() >> 11) * 0x1.0p-53; }

double Stream::uniform_open() { return (double(next() >> 12) + 0.5) * 0x1.0p-52; }

double Stream::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  const double u1 = uniform_open(), u2 = uniform();
  const double rad = std::sqrt(-2.0 * std::log(u1));
  const double ang = 2.0 * M_PI * u2;
  spare_ = rad * std::sin(ang);
  has_spare_ = true;
  return rad * std::cos(ang);
}

std::uint64_t Stream::below(std::uint64_t n) {
  // Lemire's rejection-free-enough method with rejection for exact uniformity.
  if (n <= 1) return 0;
  const std::uint64_t limit = (~std::uint64_t(0)) - (~std::uint64_t(0)) % n;
  std::uint64_t x;
  do x = next();
  while (x >= limit);
  return x % n;
}

}  // namespace cohortnet
