// decopt/compress/detail/golomb_run_table.hpp — table-driven decoding of Golomb-coded run
// lengths, one codeword per lookup. Internal: include "decopt/compress/compress.hpp" instead.
//
// The sparse positions of TopK and RandTopK (one symbol, density ρ) are the vector source
// coder's single Golomb stream of run lengths, b ≈ ln 2/ρ (b = 69 for ρ = 1%: codewords of
// about k + 1 = 8 bits). read_golomb spends a count-trailing-zeros, two refills and a branch on
// the truncated-binary cutoff on each, a chain the branch mispredicts break. Here the next 12
// stream bits index a table holding the run and the length of the codeword they start with
// (GolombCode::codeword's layout, so the stream is unchanged), or 0 when that codeword is longer
// than 12 bits and must be read bit by bit. Unlike GolombTable (which expands up to four
// codewords into a hit bitmap for dense streams) it yields the run itself, for a decoder that
// places positions one by one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <array>

#include "decopt/compress/detail/fast_bits.hpp"

namespace decopt::detail {

/// Decode table of one Golomb code over the next `bits` stream bits: entry = run | length << 24
/// for the codeword the window starts with, 0 if it does not end inside the window.
struct GolombRunTable {
  static constexpr int bits = 12;
  /// Streams of at least this many codewords are worth the table's O(2^12) build.
  static constexpr std::uint64_t min_codewords = 1024;
  std::array<std::uint32_t, std::size_t{1} << bits> entry{};  // 16 KiB, no heap: see cached()

  GolombRunTable() = default;

  /// True when some codeword of g fits the window and its runs fit the entry (b < 2^12).
  static bool useful(const GolombCode& g) noexcept { return g.b < (std::uint64_t{1} << bits) && g.k <= bits; }

  explicit GolombRunTable(const GolombCode& g) { fill(g); }
  /// Writes g's entries into a zeroed table.
  void fill(const GolombCode& g) noexcept {
    for (std::uint64_t n = 0;; ++n) {
      if (g.quotient(n) >= static_cast<std::uint64_t>(bits)) break;  // every longer n is longer still
      std::uint64_t code;
      int len;
      if (!g.codeword(n, code, len) || len > bits) continue;
      const auto e = static_cast<std::uint32_t>(n | static_cast<std::uint64_t>(len) << 24);
      for (std::uint64_t high = 0; high < (std::uint64_t{1} << (bits - len)); ++high)
        entry[static_cast<std::size_t>(code | (high << len))] = e;
    }
  }

  /// This thread's table for g, rebuilt only when the parameter changes (a decoder of a stream
  /// of TopK positions at a fixed ratio builds it once, not once per message). Thread storage,
  /// not the heap, so a decode leaves no allocation behind.
  static const GolombRunTable& cached(const GolombCode& g) {
    thread_local std::uint64_t b = 0;
    thread_local GolombRunTable table;
    if (b != g.b) {
      table.entry.fill(0);
      table.fill(g);
      b = g.b;
    }
    return table;
  }

  /// read() after the caller's cursor.fill(): up to four reads per fill (four codewords of at most
  /// `bits` bits fit the 57 bits a fill leaves), refilling only after a longer codeword.
  inline __attribute__((always_inline)) std::uint64_t read_buffered(BitCursor& cursor, const GolombCode& g,
                                                                    std::uint64_t max_quotient) const noexcept {
    const std::uint32_t e = entry[static_cast<std::size_t>(cursor.peek_buffered(bits))];
    if (e != 0) [[likely]] {
      cursor.skip(static_cast<int>(e >> 24));
      return e & 0xffffffu;
    }
    const std::uint64_t run = cursor.read_golomb(g, max_quotient);
    cursor.fill();
    return run;
  }

  /// The next run of the stream at `cursor`: one lookup, or read_golomb for a codeword longer
  /// than the window (which flags a corrupt stream through the cursor).
  inline __attribute__((always_inline)) std::uint64_t read(BitCursor& cursor, const GolombCode& g,
                                                           std::uint64_t max_quotient) const noexcept {
    cursor.fill();
    const std::uint32_t e = entry[static_cast<std::size_t>(cursor.peek_buffered(bits))];
    if (e != 0) [[likely]] {
      cursor.skip(static_cast<int>(e >> 24));
      return e & 0xffffffu;
    }
    return cursor.read_golomb(g, max_quotient);
  }
};

}  // namespace decopt::detail
