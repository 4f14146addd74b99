// decopt/compress/detail/pack_fixed.hpp — fixed-width packing of levels a 64-bit word at a time,
// and its reader. Internal: include "decopt/compress/compress.hpp" instead.
//
// RawCoder stores each level ℓ ∈ [−s, s] as ℓ + s in w = ⌈log2(2s + 1)⌉ bits, LSB first (the
// BitWriter layout). Written one BitWriter::write per value that costs a dependent shift chain
// and a vector resize every 64 bits (Sign + Raw encode was 15.8× memcpy at 2^20 floats). Here 64
// values become exactly w whole words with every shift known at compile time (one instantiation
// per width, 1 ≤ w ≤ 16), merged into the stream at its current bit offset; the reader loads 8
// bytes at a value's bit position and shifts. The bits are the BitWriter's, bit for bit.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <utility>

namespace decopt::detail {

namespace pack {

inline void store_word(std::byte* dst, std::uint64_t w) noexcept {
  if constexpr (std::endian::native == std::endian::big) w = __builtin_bswap64(w);
  std::memcpy(dst, &w, 8);
}
inline std::uint64_t load_word(const std::byte* src) noexcept {
  std::uint64_t w;
  std::memcpy(&w, src, 8);
  if constexpr (std::endian::native == std::endian::big) w = __builtin_bswap64(w);
  return w;
}

// 64 values levels[j] + bias of W bits into W words (bit j·W of the block is value j's bit 0).
// Fully unrolled, so every shift and every word boundary is a constant and the words stay in
// registers (a loop kept them in memory, one dependent read-modify-write per value).
template <int W>
inline __attribute__((always_inline)) void block(const std::int16_t* lv, int bias, std::uint64_t* words) noexcept {
  if constexpr (std::endian::native == std::endian::little && (W == 8 || W == 16)) {
    // whole bytes: the words are the values' little-endian array (a vector add and a store;
    // HalfFloat's 16-bit codes spent as long here as in rounding)
    using Field = std::conditional_t<W == 8, std::uint8_t, std::uint16_t>;
    Field f[64];
    for (int j = 0; j < 64; ++j) f[j] = static_cast<Field>(lv[j] + bias);
    std::memcpy(words, f, sizeof f);
    return;
  }
  std::uint64_t cur = 0;
  int out = 0;
#pragma GCC unroll 64
  for (int j = 0; j < 64; ++j) {
    const std::uint64_t v = static_cast<std::uint16_t>(lv[j] + bias);
    const int off = (j * W) % 64;
    cur |= v << off;
    if (off + W >= 64) {
      words[out++] = cur;
      cur = off + W > 64 ? v >> (64 - off) : 0;
    }
  }
}

// The stream state: `acc` holds `filled` < 64 pending bits; whole words go to dst.
struct Stream {
  std::uint64_t acc;
  int filled;
  std::byte* dst;

  void put_word(std::uint64_t x) noexcept {  // 64 more bits
    store_word(dst, acc | (x << filled));
    dst += 8;
    acc = filled == 0 ? 0 : x >> (64 - filled);
  }
  void put(std::uint64_t v, int width) noexcept {  // width < 64 bits, v < 2^width
    acc |= v << filled;
    const int room = 64 - filled;
    if (width < room) {
      filled += width;
      return;
    }
    store_word(dst, acc);
    dst += 8;
    acc = width == room ? 0 : v >> room;
    filled = width - room;
  }
};

template <int W>
inline void levels(std::span<const std::int16_t> lv, int bias, Stream& s) noexcept {
  const std::size_t n = lv.size();
  std::size_t i = 0;
  std::uint64_t words[W];
  for (; i + 64 <= n; i += 64) {
    block<W>(lv.data() + i, bias, words);
    for (int w = 0; w < W; ++w) s.put_word(words[w]);
  }
  for (; i < n; ++i) s.put(static_cast<std::uint16_t>(lv[i] + bias), W);
}

template <int... W>
inline void dispatch(int width, std::span<const std::int16_t> lv, int bias, Stream& s, std::integer_sequence<int, W...>) noexcept {
  (void)((width == W + 1 ? (levels<W + 1>(lv, bias, s), true) : false) || ...);
}

}  // namespace pack

/// Packs levels[i] + bias (each in [0, 2^width), 1 ≤ width ≤ 16) in `width` bits each onto a bit
/// stream whose `filled` < 64 pending bits are in `acc`, LSB first: the whole 64-bit words go to
/// dst (room for (filled + n·width)/64 of them), acc and filled are left holding the rest. The
/// same bits as n BitWriter::write(levels[i] + bias, width) calls.
inline void pack_fixed(std::span<const std::int16_t> levels, int bias, int width, std::uint64_t& acc, int& filled,
                       std::byte* dst) noexcept {
  pack::Stream s{acc, filled, dst};
  pack::dispatch(width, levels, bias, s, std::make_integer_sequence<int, 16>{});
  acc = s.acc;
  filled = s.filled;
}

/// Reads field j of `width` ≤ 56 bits starting at bit `base` + j·width of [data, data + size),
/// LSB first: one unaligned 8-byte load where 8 bytes remain, else byte by byte (never past the
/// end; missing bits read as zero — the caller has checked the size).
class FixedFields {
 public:
  FixedFields(std::span<const std::byte> bytes, std::uint64_t base, int width) noexcept
      : data_(bytes.data()), size_(bytes.size()), base_(base), width_(width), mask_((std::uint64_t{1} << width) - 1) {}

  [[nodiscard]] std::uint64_t operator[](std::size_t j) const noexcept {
    const std::uint64_t bit = base_ + static_cast<std::uint64_t>(j) * static_cast<std::uint64_t>(width_);
    const auto byte = static_cast<std::size_t>(bit >> 3);
    if (byte + 8 <= size_) [[likely]]
      return (pack::load_word(data_ + byte) >> (bit & 7)) & mask_;
    std::uint64_t w = 0;
    for (std::size_t b = byte; b < size_ && b < byte + 8; ++b)
      w |= static_cast<std::uint64_t>(std::to_integer<unsigned>(data_[b])) << (8 * (b - byte));
    return (w >> (bit & 7)) & mask_;
  }

 private:
  const std::byte* data_;
  std::size_t size_;
  std::uint64_t base_;
  int width_;
  std::uint64_t mask_;
};

}  // namespace decopt::detail
