// decopt/core/finite.hpp — a branch-free test for NaN and ±∞ over a whole buffer.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <type_traits>

namespace decopt {

namespace detail {
/// One vectorisable pass over the bits of IEEE values: an all-ones exponent (NaN or ±∞) carries
/// into the sign position when the lowest exponent bit is added to it, and the OR keeps it.
template <class T, class Bits>
bool all_exponents_finite(std::span<const T> v) noexcept {
  static_assert(sizeof(T) == sizeof(Bits) && std::numeric_limits<T>::is_iec559);
  constexpr int mantissa_bits = std::numeric_limits<T>::digits - 1;
  constexpr Bits sign = Bits{1} << (8 * sizeof(Bits) - 1);
  constexpr Bits exponent = ~sign & ~((Bits{1} << mantissa_bits) - 1);
  constexpr Bits lowest_exponent_bit = Bits{1} << mantissa_bits;
  Bits acc = 0;
  for (const T x : v) {
    Bits bits;
    std::memcpy(&bits, &x, sizeof bits);
    acc |= (bits & exponent) + lowest_exponent_bit;
  }
  return (acc & sign) == 0;
}
}  // namespace detail

/// True when every value is finite.
inline bool all_finite(std::span<const float> v) noexcept { return detail::all_exponents_finite<float, std::uint32_t>(v); }
inline bool all_finite(std::span<const double> v) noexcept { return detail::all_exponents_finite<double, std::uint64_t>(v); }

}  // namespace decopt
