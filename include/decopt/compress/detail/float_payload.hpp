// decopt/compress/detail/float_payload.hpp — float32 arrays inside a compressed message, for the
// compressors that send raw values (PowerSGD's factors and dense coordinates, PermK's block).
// Internal: include "decopt/compress/compress.hpp" instead.
//
// Floats are little-endian IEEE binary32, as put_le writes them; on a little-endian machine an
// array is one memcpy each way. Receivers check finiteness on the bits (an integer max, which
// vectorises) before they trust a value.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace decopt::detail {

/// Appends `values` as little-endian float32.
inline void append_floats_le(std::vector<std::byte>& out, std::span<const float> values) {
  const std::size_t at = out.size();
  out.resize(at + values.size() * sizeof(float));
  if constexpr (std::endian::native == std::endian::little) {
    if (!values.empty()) std::memcpy(out.data() + at, values.data(), values.size() * sizeof(float));
  } else {
    for (std::size_t i = 0; i < values.size(); ++i) {
      const std::uint32_t bits = __builtin_bswap32(std::bit_cast<std::uint32_t>(values[i]));
      std::memcpy(out.data() + at + 4 * i, &bits, 4);
    }
  }
}

/// Reads dest.size() little-endian float32 from `bytes` (which holds at least that many).
inline void read_floats_le(const std::byte* bytes, std::span<float> dest) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    if (!dest.empty()) std::memcpy(dest.data(), bytes, dest.size() * sizeof(float));
  } else {
    for (std::size_t i = 0; i < dest.size(); ++i) {
      std::uint32_t bits;
      std::memcpy(&bits, bytes + 4 * i, 4);
      dest[i] = std::bit_cast<float>(__builtin_bswap32(bits));
    }
  }
}

/// max |x| over the floats, as the bits of |x| (NaN compares above +∞: bits ≥ 0x7f800000 means
/// some value is not finite).
inline std::uint32_t max_abs_bits(std::span<const float> values) noexcept {
  std::uint32_t max_bits = 0;
  for (const float x : values) max_bits = std::max(max_bits, std::bit_cast<std::uint32_t>(x) & 0x7fffffffu);
  return max_bits;
}

/// The bits of +∞: a max_abs_bits at or above it means a non-finite value.
inline constexpr std::uint32_t infinity_bits = 0x7f800000u;

}  // namespace decopt::detail
