// Small helpers of the PowerSGD and PermK tests: a Gaussian vector, strict bitwise equality, and
// one encode into a fresh message with q pre-filled with −1 (so an unwritten coordinate shows).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include <decopt/core/rng.hpp>

namespace decopt::test {

inline std::vector<float> normal_vector(std::size_t d, std::uint64_t seed) {
  std::vector<float> v(d);
  Rng rng(seed);
  rng.fill_normal(std::span<float>(v), 1.0);
  return v;
}

/// Bit for bit (−0 differs from +0, every NaN payload counts).
inline bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

template <class C>
std::vector<std::byte> encode_once(C& c, std::span<const float> v, std::vector<float>& q) {
  Rng rng(1);
  std::vector<std::byte> msg;
  q.assign(v.size(), -1.0f);
  c.encode(v, rng, msg, q);
  return msg;
}

}  // namespace decopt::test
