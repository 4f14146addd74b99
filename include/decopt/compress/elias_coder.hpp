// decopt/compress/elias_coder.hpp — the Elias coding of QSGD (Alistarh et al. 2017, §3.2), the
// baseline most libraries ship.
//
// Levels: Elias-delta(nnz + 1), then for every non-zero level in position order the
// Elias-delta gap to the previous non-zero, one sign bit and the Elias-gamma code of |ℓ|. Zeros
// cost only through the gaps. Float values: the positions of a sparse selection as Elias-delta
// gaps (the Compressor appends the float32 values).
// Elias, "Universal codeword sets and representations of the integers", IEEE T-IT 1975.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "decopt/compress/detail/fast_bits.hpp"
#include "decopt/compress/detail/pipeline.hpp"
#include "decopt/compress/detail/word_bits.hpp"
#include "decopt/compress/detail/positions.hpp"
#include "decopt/compress/message.hpp"
#include "decopt/core/bit_stream.hpp"
#include "decopt/core/codes.hpp"
#include "decopt/core/error.hpp"

namespace decopt {

/// Elias-delta position gaps, a sign bit and an Elias-gamma level per non-zero.
struct EliasCoder {
  static constexpr std::uint8_t id = message::ids::elias;
  static std::string name() { return "Elias"; }

  void encode_levels(const detail::CodeShape& shape, std::span<const std::int16_t> levels, int /*s*/,
                     std::vector<std::byte>& out) {
    std::uint64_t nnz = 0;
    detail::for_each_nonzero(shape.positions, levels, [&](std::size_t, int) { ++nnz; });
    BitWriter w(out);
    codes::write_elias_delta(w, nnz + 1);
    std::uint64_t prev = 0;  // one past the previous non-zero
    detail::for_each_nonzero(shape.positions, levels, [&](std::size_t pos, int l) {
      codes::write_elias_delta(w, pos - prev + 1);
      w.write(l < 0 ? 1u : 0u, 1);
      codes::write_elias_gamma(w, static_cast<std::uint64_t>(l < 0 ? -l : l));
      prev = pos + 1;
    });
    w.finish();
  }

  template <class Sink>
  std::size_t decode_levels(std::span<const std::byte> bytes, const detail::CodeShape& shape, int s, Sink&& sink) const {
    detail::BitCursor r(bytes.data(), bytes.size());
    const std::uint64_t total_bits = static_cast<std::uint64_t>(bytes.size()) * 8;
    bool bad = false;
    const std::uint64_t nnz = read_delta(r, bad) - 1;
    // each non-zero takes at least three bits (a gap, a sign, a magnitude): a count the bytes
    // cannot hold is refused before the loop
    if (bad || r.overrun() || nnz > shape.n || nnz > (total_bits - r.position()) / 3)
      throw DecodeError("Elias: non-zero count out of range");
    const TripleTable& table = triple_table();
    std::uint64_t next = 0;
    int room = 0;  // bits peek_buffered may still read since the last fill (a fill leaves ≥ 56)
    for (std::uint64_t j = 0; j < nnz; ++j) {
      std::uint64_t gap;
      int level;
      if (room < triple_bits) {
        r.fill();
        room = 56;
      }
      const std::uint32_t e = table[static_cast<std::size_t>(r.peek_buffered(triple_bits))];
      if (e != 0) [[likely]] {
        const int length = static_cast<int>(e >> 24);
        r.skip(length);
        room -= length;
        gap = e & 0xffffu;
        level = static_cast<int>((e >> 16) & 0xffu) - 128;
        bad |= (level < 0 ? -level : level) > s;
      } else {
        gap = read_delta(r, bad);
        level = read_signed_level(r, s, bad);
        room = 0;
      }
      const std::uint64_t pos = next + gap - 1;
      if (bad || pos >= shape.n || r.overrun()) {
        bad = true;
        break;
      }
      sink(static_cast<std::size_t>(pos), level);
      next = pos + 1;
    }
    if (bad) throw DecodeError("Elias: position or level out of range");
    return static_cast<std::size_t>((r.position() + 7) / 8);
  }

  void encode_positions(const detail::CodeShape& shape, std::vector<std::byte>& out) {
    BitWriter w(out);
    std::uint64_t prev = 0;
    for (const std::uint32_t p : shape.positions) {
      codes::write_elias_delta(w, p - prev + 1);
      prev = std::uint64_t{p} + 1;
    }
    w.finish();
  }

  template <class Sink>
  std::size_t decode_positions(std::span<const std::byte> bytes, const detail::CodeShape& shape, Sink&& sink) const {
    if (shape.k > bytes.size() * std::uint64_t{8}) throw DecodeError("Elias: message truncated");  // a gap takes at least a bit
    detail::BitCursor r(bytes.data(), bytes.size());
    bool bad = false;
    std::uint64_t next = 0;
    for (std::size_t j = 0; j < shape.k; ++j) {
      const std::uint64_t pos = next + read_delta(r, bad) - 1;
      if (bad || pos >= shape.n || r.overrun()) throw DecodeError("Elias: position out of range");
      sink(static_cast<std::size_t>(pos));
      next = pos + 1;
    }
    return static_cast<std::size_t>((r.position() + 7) / 8);
  }

 private:
  // The decoders read a whole codeword from one 56-bit window of a non-throwing cursor (one
  // refill, a count of trailing zeros and two shifts) instead of bit by bit through a throwing
  // reader: the codes are those of codes::write_elias_delta / write_elias_gamma, and every value
  // they must take fits one window. A codeword that cannot be valid sets `bad` (and the caller
  // stops); bits read past the end come as zeros, which the cursor's overrun() reports.

  // A non-zero's whole codeword (gap, sign, level) usually takes a few bits (3 for a gap of 1 and
  // |ℓ| = 1): the next 12 stream bits index a table of the codeword they start with, entry = gap |
  // (ℓ + 128) << 16 | length << 24, or 0 when it does not end inside the 12 bits (then the two
  // window reads below). One lookup instead of two dependent count-trailing-zeros chains; the
  // entries are those readers' own results, so the stream and the checks are unchanged (|ℓ| ≤ s
  // is checked per message: the table holds every magnitude that fits).
  static constexpr int triple_bits = 12;
  using TripleTable = std::array<std::uint32_t, std::size_t{1} << triple_bits>;
  static const TripleTable& triple_table() {
    static const TripleTable table = [] {
      TripleTable t{};
      for (std::uint32_t window = 0; window < t.size(); ++window) {
        const std::array<std::byte, 2> bytes = {static_cast<std::byte>(window & 0xffu), static_cast<std::byte>(window >> 8)};
        detail::BitCursor r(bytes.data(), bytes.size());
        bool bad = false;
        const std::uint64_t gap = read_delta(r, bad);
        const int level = read_signed_level(r, 127, bad);
        if (bad || r.position() > static_cast<std::uint64_t>(triple_bits)) continue;  // ends beyond the window
        t[window] = static_cast<std::uint32_t>(gap | static_cast<std::uint64_t>(level + 128) << 16 | r.position() << 24);
      }
      return t;
    }();
    return table;
  }

  /// Elias-delta of n ≥ 1 with n ≤ 2^33 (gaps and counts of vectors of at most 2^32 entries):
  /// γ(L + 1) = ⌊log2(L + 1)⌋ zeros, a one, ⌊log2(L + 1)⌋ bits; then the L low bits of n.
  static inline __attribute__((always_inline)) std::uint64_t read_delta(detail::BitCursor& r, bool& bad) noexcept {
    const std::uint64_t w = r.peek(56);
    const int z = std::countr_zero(w);  // 64 for an all-zero window
    if (z > 5) {                        // L + 1 ≥ 64: n ≥ 2^63, or the stream is corrupt
      bad = true;
      return 1;
    }
    const std::uint64_t l1 = (std::uint64_t{1} << z) | ((w >> (z + 1)) & detail::bits::low_mask(static_cast<unsigned>(z)));
    const int l = static_cast<int>(l1) - 1;
    if (l > 33) {
      bad = true;
      return 1;
    }
    const int gamma_bits = 2 * z + 1;  // + l ≤ 11 + 33 bits: within the window
    const std::uint64_t n = (std::uint64_t{1} << l) | ((w >> gamma_bits) & detail::bits::low_mask(static_cast<unsigned>(l)));
    r.skip(gamma_bits + l);
    return n;
  }

  /// One sign bit (1 = negative), then the Elias-gamma code of |ℓ| ∈ [1, s] (s ≤ 2^15: ≤ 32 bits).
  static inline __attribute__((always_inline)) int read_signed_level(detail::BitCursor& r, int s, bool& bad) noexcept {
    const std::uint64_t w = r.peek(56);
    const bool negative = (w & 1u) != 0;
    const int z = std::countr_zero(w >> 1);
    if (z > 15) {
      bad = true;
      return 0;
    }
    const std::uint64_t mag = (std::uint64_t{1} << z) | ((w >> (z + 2)) & detail::bits::low_mask(static_cast<unsigned>(z)));
    r.skip(2 * z + 2);
    if (mag > static_cast<std::uint64_t>(s)) {
      bad = true;
      return 0;
    }
    return negative ? -static_cast<int>(mag) : static_cast<int>(mag);
  }
};

}  // namespace decopt
