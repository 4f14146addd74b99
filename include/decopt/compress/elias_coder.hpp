// decopt/compress/elias_coder.hpp — the Elias coding of QSGD (Alistarh et al. 2017, §3.2), the
// baseline most libraries ship.
//
// Levels: Elias-delta(nnz + 1), then for every non-zero level in position order the
// Elias-delta gap to the previous non-zero, one sign bit and the Elias-gamma code of |ℓ|. Zeros
// cost only through the gaps. Float values: the positions of a sparse selection as Elias-delta
// gaps (the Compressor appends the float32 values).
// Elias, "Universal codeword sets and representations of the integers", IEEE T-IT 1975.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "decopt/compress/detail/pipeline.hpp"
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
    BitReader r(bytes);
    const std::uint64_t nnz = codes::read_elias_delta(r) - 1;
    // each non-zero takes at least three bits (a gap, a sign, a magnitude): a count the bytes
    // cannot hold is refused before the loop
    if (nnz > shape.n || nnz > r.remaining() / 3) throw DecodeError("Elias: non-zero count out of range");
    std::uint64_t next = 0;
    bool bad = false;
    for (std::uint64_t j = 0; j < nnz; ++j) {
      const std::uint64_t pos = next + codes::read_elias_delta(r) - 1;
      const bool negative = r.read_bit();
      const std::uint64_t mag = codes::read_elias_gamma(r);
      if (pos >= shape.n || pos < next || mag > static_cast<std::uint64_t>(s)) {
        bad = true;
        break;
      }
      sink(static_cast<std::size_t>(pos), negative ? -static_cast<int>(mag) : static_cast<int>(mag));
      next = pos + 1;
    }
    if (bad) throw DecodeError("Elias: position or level out of range");
    return r.byte_position();
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
    BitReader r(bytes);
    if (shape.k > r.remaining()) throw DecodeError("Elias: message truncated");  // a gap takes at least a bit
    std::uint64_t next = 0;
    for (std::size_t j = 0; j < shape.k; ++j) {
      const std::uint64_t pos = next + codes::read_elias_delta(r) - 1;
      if (pos >= shape.n || pos < next) throw DecodeError("Elias: position out of range");
      sink(static_cast<std::size_t>(pos));
      next = pos + 1;
    }
    return r.byte_position();
  }
};

}  // namespace decopt
