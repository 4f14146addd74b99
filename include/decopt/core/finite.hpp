// decopt/core/finite.hpp — a branch-free test for NaN and ±∞ over a whole buffer.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

namespace decopt {

/// True when every value is finite. One vectorisable pass over the bits: an all-ones exponent
/// (NaN or ±∞) carries into the sign position when one is added to it, and the OR keeps it.
inline bool all_finite(std::span<const float> v) noexcept {
  std::uint32_t acc = 0;
  for (const float x : v) {
    std::uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    acc |= (bits & 0x7f800000u) + 0x00800000u;
  }
  return (acc & 0x80000000u) == 0;
}

inline bool all_finite(std::span<const double> v) noexcept {
  std::uint64_t acc = 0;
  for (const double x : v) {
    std::uint64_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    acc |= (bits & 0x7ff0000000000000ULL) + 0x0010000000000000ULL;
  }
  return (acc & 0x8000000000000000ULL) == 0;
}

}  // namespace decopt
