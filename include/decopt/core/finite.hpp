// decopt/core/finite.hpp — a branch-free test for NaN and ±∞ over a whole buffer.
#pragma once

#include <span>

namespace decopt {

/// True when every element is finite. One vectorisable pass: x·0 is 0 for finite x and NaN for
/// NaN and ±∞, and a NaN anywhere makes the sum NaN.
template <class T>
bool all_finite(std::span<const T> v) noexcept {
  T probe = T(0);
  for (T x : v) probe += x * T(0);
  return probe == T(0);
}
inline bool all_finite(std::span<const float> v) noexcept { return all_finite<float>(v); }
inline bool all_finite(std::span<const double> v) noexcept { return all_finite<double>(v); }

}  // namespace decopt
