// Crafted compressed messages: a syntactically valid header of any pipeline with header fields
// and counts chosen by the caller (a test, or a fuzz target from its input), a payload built
// from declared counts, and the right checksum, so that a decoder gets past the framing and has
// to bound what the counts declare. Used by tests/compress/test_decode_bounds.cpp and
// tests/fuzz/fuzz_decode_bounds.cpp.
#pragma once

#include <decopt/compress/compress.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

namespace decopt::fuzz {

/// The header fields after the dimension; a pipeline writes only the ones its policies carry.
struct Fields {
  std::uint64_t dimension = 1;
  std::uint64_t k = 1;            ///< TopK, RandomK, RandTopK: the selected count
  std::uint64_t seed = 7;         ///< RandomK
  std::uint8_t unbiased = 0;      ///< RandomK
  std::uint8_t options = 0;       ///< DitheredQuantizer: bit 0 ℓ∞, bit 1 natural, bit 2 float16 scales, bit 3 buckets;
                                  ///< HalfFloat: bit 0 bfloat16, bit 1 stochastic
  std::uint64_t levels = 1;       ///< DitheredQuantizer: s; HalfFloat: the largest code
  float scale = 1.0f;             ///< DitheredQuantizer σ (every bucket's), Sign magnitude
  std::uint64_t bucket = 0;       ///< DitheredQuantizer: values per bucket (0: one σ)
};

/// The fields a receiver configured like `p` accepts for dimension d.
template <class P>
Fields fields_of(const P& p, std::size_t d) {
  using S = typename P::sparsifier_type;
  using Q = typename P::quantizer_type;
  Fields f;
  f.dimension = d;
  if constexpr (!std::is_same_v<S, Dense>) f.k = detail::count_for_ratio(p.sparsifier().ratio, d);
  if constexpr (std::is_same_v<S, RandomK>) f.unbiased = p.sparsifier().unbiased ? 1 : 0;
  if constexpr (std::is_same_v<Q, DitheredQuantizer>) {
    f.levels = static_cast<std::uint64_t>(p.quantizer().levels);
    f.options = static_cast<std::uint8_t>((p.quantizer().norm == Norm::Linf ? 1 : 0) | (p.quantizer().natural ? 2 : 0) |
                                          (p.quantizer().scale_format == ScaleFormat::Float16 ? 4 : 0) |
                                          (p.quantizer().bucket != 0 ? 8 : 0));
    f.bucket = p.quantizer().bucket;
  }
  if constexpr (std::is_same_v<Q, HalfFloat>) {
    f.options = static_cast<std::uint8_t>(static_cast<unsigned>(p.quantizer().format) | (static_cast<unsigned>(p.quantizer().rounding) << 1));
    f.levels = detail::half::max_code(p.quantizer().format);
  }
  return f;
}

/// The most bytes a decode for a receiver like `p` of dimension d may allocate: 16 per position
/// (the word decoder's bitmaps and Golomb tables, a sparse selection's positions), 12 per level
/// (the reconstruction tables, s + 1 and 2s + 1 floats) and 256 KiB of fixed tables.
template <class P>
long long decode_allocation_bound(const P& p, std::size_t d) {
  std::uint64_t s = 1;
  if constexpr (std::is_same_v<typename P::quantizer_type, DitheredQuantizer>) s = static_cast<std::uint64_t>(p.quantizer().levels);
  // a HalfFloat message carries its largest code, up to the format's
  if constexpr (std::is_same_v<typename P::quantizer_type, HalfFloat>) s = detail::half::max_code(p.quantizer().format);
  return static_cast<long long>(16 * d + 12 * s + (256u << 10));
}

/// The header of pipeline P with fields f.
template <class P>
std::vector<std::byte> header(const Fields& f) {
  using S = typename P::sparsifier_type;
  using Q = typename P::quantizer_type;
  std::vector<std::byte> out;
  message::write_header(out, S::id, Q::id, P::coder_type::id, f.dimension);
  if constexpr (!std::is_same_v<S, Dense>) put_varint(out, f.k);
  if constexpr (std::is_same_v<S, RandomK>) {
    put_le<std::uint64_t>(out, f.seed);
    out.push_back(static_cast<std::byte>(f.unbiased));
  }
  if constexpr (std::is_same_v<Q, DitheredQuantizer>) {
    out.push_back(static_cast<std::byte>(f.options));
    put_varint(out, f.levels);
    if (f.bucket != 0) {  // buckets: b, their count ⌈d/b⌉ and a σ each
      detail::ScaleLayout layout;
      layout.bucket = static_cast<std::size_t>(f.bucket);
      layout.scales.assign(static_cast<std::size_t>((f.dimension + f.bucket - 1) / f.bucket), f.scale);
      layout.write(out, (f.options & 4) != 0 ? ScaleFormat::Float16 : ScaleFormat::Float32);
    } else {
      put_le<float>(out, f.scale);
    }
  }
  if constexpr (std::is_same_v<Q, HalfFloat>) {
    out.push_back(static_cast<std::byte>(f.options));
    put_le<std::uint16_t>(out, static_cast<std::uint16_t>(f.levels));
  }
  if constexpr (std::is_same_v<Q, Sign>) put_le<float>(out, f.scale);
  return out;
}

/// Appends the checksum of the whole of `msg` (a header and a payload), making it a message.
inline std::vector<std::byte> seal(std::vector<std::byte> msg) {
  message::append_checksum(msg, 0);
  return msg;
}

/// One entry of a vector-source-coded rank list.
struct VscRank {
  std::uint64_t zigzag = 1;        ///< the symbol, zigzag-coded (1 → +1, 2 → −1, …)
  std::uint64_t count = 1;         ///< its occurrences
  std::uint64_t golomb = 1;        ///< the Golomb parameter of its runs
  std::uint64_t stream_bytes = 0;  ///< its stream's length
};

/// Appends a VSC payload: the rank list, then Σ stream_bytes bytes of streams, every byte `fill`
/// but the last, `last`.
inline void put_vsc(std::vector<std::byte>& out, std::span<const VscRank> ranks, std::byte fill, std::byte last) {
  std::uint64_t streams = 0;
  {
    BitWriter w(out);
    codes::write_elias_gamma(w, ranks.size() + 1);
    for (const VscRank& r : ranks) {
      codes::write_elias_gamma(w, r.zigzag);
      codes::write_elias_delta(w, r.count);
      codes::write_elias_delta(w, r.golomb);
      codes::write_elias_delta(w, r.stream_bytes + 1);
      streams += r.stream_bytes;
    }
    w.finish();
  }
  out.insert(out.end(), static_cast<std::size_t>(streams), fill);
  if (streams > 0) out.back() = last;
}

/// Appends an Elias level payload declaring `nnz` non-zeros, each at gap 1 from the previous with
/// level +1, except the last, whose magnitude is `last_magnitude`.
inline void put_elias_levels(std::vector<std::byte>& out, std::uint64_t nnz, std::uint64_t last_magnitude) {
  BitWriter w(out);
  codes::write_elias_delta(w, nnz + 1);
  for (std::uint64_t j = 0; j < nnz; ++j) {
    codes::write_elias_delta(w, 1);
    w.write(0, 1);
    codes::write_elias_gamma(w, j + 1 == nnz ? last_magnitude : 1);
  }
  w.finish();
}

/// Appends `count` Elias-coded positions, each at gap 1 from the previous.
inline void put_elias_positions(std::vector<std::byte>& out, std::uint64_t count) {
  BitWriter w(out);
  for (std::uint64_t j = 0; j < count; ++j) codes::write_elias_delta(w, 1);
  w.finish();
}

/// Appends `count` fixed-width fields of `width` bits, all `value` but the last, `last`.
inline void put_fixed(BitWriter& w, std::uint64_t count, int width, std::uint64_t value, std::uint64_t last) {
  for (std::uint64_t j = 0; j < count; ++j) w.write(j + 1 == count ? last : value, width);
}

/// Appends `count` float32 values, all `value` but the last, `last`.
inline void put_floats(std::vector<std::byte>& out, std::uint64_t count, float value, float last) {
  for (std::uint64_t j = 0; j < count; ++j) put_le<float>(out, j + 1 == count ? last : value);
}

}  // namespace decopt::fuzz
