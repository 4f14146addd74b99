// decopt/compress/detail/positions.hpp — small helpers shared by the coders. Internal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace decopt::detail {

/// Calls f(position, level) for every non-zero level of a coded vector: dense (levels over all
/// n positions) or sparse (levels[j] at positions[j]). The dense scan skips four zero levels at a
/// time, which is what makes very sparse dithered vectors cheap.
template <class F>
void for_each_nonzero(std::span<const std::uint32_t> positions, std::span<const std::int16_t> levels, F&& f) {
  if (!positions.empty()) {
    for (std::size_t j = 0; j < positions.size(); ++j)
      if (levels[j] != 0) f(static_cast<std::size_t>(positions[j]), static_cast<int>(levels[j]));
    return;
  }
  const std::int16_t* lv = levels.data();
  const std::size_t n = levels.size();
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    std::uint64_t word;
    std::memcpy(&word, lv + i, sizeof word);
    if (word == 0) continue;
    for (std::size_t j = i; j < i + 4; ++j)
      if (lv[j] != 0) f(j, static_cast<int>(lv[j]));
  }
  for (; i < n; ++i)
    if (lv[i] != 0) f(i, static_cast<int>(lv[i]));
}

/// Zigzag map of a non-zero level to a positive integer: 1 → 1, −1 → 2, 2 → 3, −2 → 4, …
constexpr std::uint64_t zigzag_nonzero(int level) noexcept {
  return level > 0 ? 2 * static_cast<std::uint64_t>(level) - 1 : 2 * static_cast<std::uint64_t>(-level);
}
constexpr int unzigzag_nonzero(std::uint64_t z) noexcept {
  return (z & 1u) ? static_cast<int>((z + 1) / 2) : -static_cast<int>(z / 2);
}

}  // namespace decopt::detail
