// decopt/compress/raw_coder.hpp — fixed-width packing (the coder CHOCO-SGD ships).
//
// Levels: ⌈log2(2s+1)⌉ bits each, storing ℓ + s, packed and read a word at a time
// (detail::pack_fixed). Float values: 32 bits each (written by the
// Compressor after the position section). Positions of a sparse selection: one flag bit, then
// either a bitmap of n bits or k indices of ⌈log2 n⌉ bits, whichever is smaller. Every size is
// known from the header, so a truncated message is rejected before anything is decoded.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "decopt/compress/detail/pack_fixed.hpp"
#include "decopt/compress/detail/pipeline.hpp"
#include "decopt/compress/message.hpp"
#include "decopt/core/bit_stream.hpp"
#include "decopt/core/codes.hpp"
#include "decopt/core/error.hpp"

namespace decopt {

/// Fixed-width levels, bitmap-or-index positions.
struct RawCoder {
  static constexpr std::uint8_t id = message::ids::raw;
  static std::string name() { return "Raw"; }

  /// Bits per level for s levels: ⌈log2(2s + 1)⌉.
  static constexpr int level_bits(int s) noexcept { return std::bit_width(static_cast<unsigned>(2 * s)); }

  void encode_levels(const detail::CodeShape& shape, std::span<const std::int16_t> levels, int s, std::vector<std::byte>& out) {
    BitWriter w(out);
    if (shape.explicit_positions) write_positions(w, shape.n, shape.positions);
    const int width = level_bits(s);
    w.write_words(levels.size() * static_cast<std::uint64_t>(width), [&](std::uint64_t& acc, int& filled, std::byte* dst) {
      detail::pack_fixed(levels, s, width, acc, filled, dst);
    });
    w.finish();
  }

  template <class Sink>
  std::size_t decode_levels(std::span<const std::byte> bytes, const detail::CodeShape& shape, int s, Sink&& sink) const {
    const int width = level_bits(s);
    const std::size_t count = shape.explicit_positions ? shape.k : shape.n;
    BitReader head(bytes);
    const std::uint64_t pos_bits = shape.explicit_positions ? positions_bits(head, shape.n, shape.k) : 0;
    const std::uint64_t total = pos_bits + static_cast<std::uint64_t>(count) * static_cast<std::uint64_t>(width);
    if (total > bytes.size() * std::uint64_t{8}) throw DecodeError("Raw: message truncated");
    const detail::FixedFields values(bytes, pos_bits, width);
    std::size_t next = 0;
    const auto max_x = static_cast<std::uint64_t>(2 * s);
    bool bad = false;
    auto emit = [&](std::size_t pos) {
      const std::uint64_t x = values[next++];
      bad |= x > max_x;
      const int l = static_cast<int>(x > max_x ? max_x : x) - s;
      if (l != 0) sink(pos, l);
    };
    if (shape.explicit_positions) {
      BitReader positions(bytes);
      bad |= !read_positions(positions, shape.n, shape.k, emit);
    } else {
      for (std::size_t i = 0; i < count && !bad; ++i) emit(i);
    }
    if (bad) throw DecodeError("Raw: level or position out of range");
    return static_cast<std::size_t>((total + 7) / 8);
  }

  void encode_positions(const detail::CodeShape& shape, std::vector<std::byte>& out) {
    BitWriter w(out);
    write_positions(w, shape.n, shape.positions);
    w.finish();
  }

  template <class Sink>
  std::size_t decode_positions(std::span<const std::byte> bytes, const detail::CodeShape& shape, Sink&& sink) const {
    BitReader head(bytes);
    const std::uint64_t bits = positions_bits(head, shape.n, shape.k);
    if (bits > bytes.size() * std::uint64_t{8}) throw DecodeError("Raw: message truncated");
    BitReader r(bytes);
    if (!read_positions(r, shape.n, shape.k, sink)) throw DecodeError("Raw: positions out of range");
    return static_cast<std::size_t>((bits + 7) / 8);
  }

 private:
  static int index_bits(std::size_t n) noexcept { return n <= 1 ? 0 : codes::floor_log2(n - 1) + 1; }

  static void write_positions(BitWriter& w, std::size_t n, std::span<const std::uint32_t> positions) {
    const std::uint64_t list_bits = positions.size() * static_cast<std::uint64_t>(index_bits(n));
    if (n < list_bits) {
      w.write(1, 1);  // bitmap
      std::size_t next = 0;
      for (const std::uint32_t p : positions) {
        for (std::size_t gap = p - next; gap > 0;) {
          const int chunk = gap > 64 ? 64 : static_cast<int>(gap);
          w.write(0, chunk);
          gap -= static_cast<std::size_t>(chunk);
        }
        w.write(1, 1);
        next = static_cast<std::size_t>(p) + 1;
      }
      for (std::size_t gap = n - next; gap > 0;) {
        const int chunk = gap > 64 ? 64 : static_cast<int>(gap);
        w.write(0, chunk);
        gap -= static_cast<std::size_t>(chunk);
      }
    } else {
      w.write(0, 1);  // index list
      const int width = index_bits(n);
      for (const std::uint32_t p : positions) w.write(p, width);
    }
  }

  // Size of the position section, from its flag bit.
  static std::uint64_t positions_bits(BitReader& r, std::size_t n, std::size_t k) {
    const bool bitmap = r.read_bit();
    return 1 + (bitmap ? static_cast<std::uint64_t>(n) : static_cast<std::uint64_t>(k) * static_cast<std::uint64_t>(index_bits(n)));
  }

  // Calls f(pos) for the k positions in ascending order; false if they are not k valid ones.
  template <class F>
  static bool read_positions(BitReader& r, std::size_t n, std::size_t k, F&& f) {
    const bool bitmap = r.read_bit();
    std::size_t seen = 0;
    if (bitmap) {
      for (std::size_t base = 0; base < n; base += 56) {
        const int chunk = n - base > 56 ? 56 : static_cast<int>(n - base);
        std::uint64_t bits = r.read(chunk);
        while (bits != 0) {
          if (++seen > k) return false;
          f(base + static_cast<std::size_t>(std::countr_zero(bits)));
          bits &= bits - 1;
        }
      }
      return seen == k;
    }
    const int width = index_bits(n);
    std::size_t prev = 0;
    for (std::size_t j = 0; j < k; ++j) {
      const auto p = static_cast<std::size_t>(r.read(width));
      if (p >= n || (j > 0 && p <= prev)) return false;
      f(p);
      prev = p;
    }
    return true;
  }
};

}  // namespace decopt
