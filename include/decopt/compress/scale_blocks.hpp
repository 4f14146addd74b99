// decopt/compress/scale_blocks.hpp — how the dithered quantizer splits a vector into scale groups,
// each quantized with a norm σ of its own, and how the σ's travel in the message.
//
// Two layouts share this mechanism (a bucket is a block):
//   * scale blocks ("layer-wise" compression): listed, non-overlapping [offset, offset + size)
//     ranges, group 1 + i for the i-th by offset; every coordinate in no listed block is group 0,
//     which shares one σ (a model's small tensors need no norm of their own);
//   * buckets (QSGD's bucket size b; CGX uses 128–1024): group g is [g·b, min((g+1)·b, n)).
// Per group, E[Q(v)] = v and, for the ℓ2 scale, E‖Q(v_g) − v_g‖² ≤ min(n_g/s², √n_g/s)·‖v_g‖²
// (QSGD Lemma 3.1 applied to each group), so small-norm layers no longer drown in the error set
// by the largest one.
//
// In the message (inside the quantizer's parameters, under the CRC of the whole message):
//   buckets:  varint b, varint G (= ⌈n/b⌉, checked against the dimension), then G scales
//   blocks:   varint B, B × (varint gap from the previous block's end, varint size), then B + 1
//             scales (group 0 first)
// each scale a float32, or a float16 rounded up (scale_format): the quantizer quantizes with
// exactly the value sent, so |ℓ| ≤ s still holds and the decoder reproduces q bit for bit. The
// layout travels with every message, so a receiver needs none of its own and cannot misread one;
// every count is bounded by the bytes that must follow it before anything is allocated.
// Internal but for ScaleBlock and ScaleFormat: include "decopt/compress/compress.hpp".
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "decopt/compress/message.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"

namespace decopt {

/// A range [offset, offset + size) of the quantized vector with a quantizer scale of its own.
struct ScaleBlock {
  std::size_t offset = 0;
  std::size_t size = 0;
};

/// How the dithered quantizer's scales σ are sent: float32, or float16 rounded up (2 bytes a
/// scale instead of 4, worth it for small buckets; σ must then be at most 65504).
enum class ScaleFormat : std::uint8_t { Float32, Float16 };

namespace detail {

/// The float16 (IEEE binary16) bits of the smallest float16 ≥ x, for a finite x ≥ 0; 0x7c00
/// (infinity) when x exceeds the largest float16, 65504.
inline std::uint16_t float16_rounded_up(float x) noexcept;
/// The float a float16's bits stand for (exact).
inline float float_of_float16(std::uint16_t h) noexcept {
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 31) {
    magnitude = mantissa == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  } else {
    magnitude = std::ldexp(static_cast<float>(1024 + mantissa), exponent - 25);
  }
  return (h & 0x8000) ? -magnitude : magnitude;
}
inline std::uint16_t float16_rounded_up(float x) noexcept {
  if (!(x > 0.0f)) return 0;
  if (x > 65504.0f) return 0x7c00;
  int e = 0;
  (void)std::frexp(x, &e);  // x ∈ [2^(e−1), 2^e)
  std::uint16_t h;
  if (e - 1 >= -14) {  // a normal float16: 10 bits of mantissa below the leading one
    const auto mantissa = static_cast<std::uint16_t>(std::ldexp(x, 10 - (e - 1)) - 1024.0f);  // truncated
    h = static_cast<std::uint16_t>(((e - 1 + 15) << 10) | mantissa);
  } else {  // subnormal: multiples of 2^−24
    h = static_cast<std::uint16_t>(std::ldexp(x, 24));
  }
  if (float_of_float16(h) < x) ++h;  // the next float16 up (0x7bff + 1 is infinity, excluded above)
  return h;
}

/// Throws ConfigError unless `blocks` are non-empty ranges, ascending by offset, that do not
/// overlap (and, when n is given, lie in [0, n)). `who` names the caller in the message.
inline void check_scale_blocks(std::span<const ScaleBlock> blocks, const char* who,
                               std::size_t n = std::numeric_limits<std::size_t>::max()) {
  std::size_t end = 0;
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const ScaleBlock& b = blocks[i];
    const char* problem = b.size == 0                                                   ? "is empty"
                          : b.offset > std::numeric_limits<std::size_t>::max() - b.size ? "overflows size_t"
                          : b.offset < end ? "overlaps the previous block (blocks must be ascending and disjoint)"
                          : b.offset + b.size > n ? "lies beyond the vector's dimension"
                                                  : nullptr;
    if (problem != nullptr)
      throw ConfigError(std::string(who) + ": scale block " + std::to_string(i) + " [" + std::to_string(b.offset) +
                        ", " + std::to_string(b.offset) + " + " + std::to_string(b.size) + ") " + problem +
                        (n != std::numeric_limits<std::size_t>::max() ? " (dimension " + std::to_string(n) + ")" : ""));
    end = b.offset + b.size;
  }
}

/// One range of a layout: the elements [begin, end) quantized with the scale of `group`.
struct ScaleRange {
  std::size_t begin = 0, end = 0, group = 0;
};

/// The scale groups of a quantized vector and their scales (what the message carries).
struct ScaleLayout {
  std::size_t bucket = 0;               ///< > 0: buckets of this many values (else blocks)
  std::vector<ScaleBlock> blocks;       ///< ascending, disjoint; group 1 + i
  std::vector<float> scales;            ///< σ of each group, as sent
  std::vector<double> sums;             ///< encoder scratch: Σ v² of each group

  /// Whether the vector has more than the one scale of the plain message.
  [[nodiscard]] bool segmented() const noexcept { return bucket != 0 || !blocks.empty(); }
  [[nodiscard]] std::size_t group_count(std::size_t n) const noexcept {
    return bucket != 0 ? (n + bucket - 1) / bucket : blocks.size() + 1;
  }

  /// The ranges of [0, n) from the one holding `at` on, ascending (the first begins at `at`);
  /// empty gaps between blocks are skipped.
  class Cursor {
   public:
    Cursor(const ScaleLayout& layout, std::size_t n, std::size_t at = 0) noexcept : layout_(layout), n_(n) {
      const auto& b = layout.blocks;
      next_block_ = static_cast<std::size_t>(
          std::partition_point(b.begin(), b.end(), [at](const ScaleBlock& x) { return x.offset + x.size <= at; }) - b.begin());
      settle(at);
    }
    [[nodiscard]] bool done() const noexcept { return range_.begin >= n_; }
    [[nodiscard]] const ScaleRange& range() const noexcept { return range_; }
    void advance() noexcept {
      if (layout_.bucket == 0 && range_.group != 0) ++next_block_;
      settle(range_.end);
    }

   private:
    // The range holding `at` (next_block_: the first block not ended before `at`).
    void settle(std::size_t at) noexcept {
      if (at >= n_) {
        range_ = {n_, n_, 0};
      } else if (layout_.bucket != 0) {
        range_ = {at, std::min((at / layout_.bucket + 1) * layout_.bucket, n_), at / layout_.bucket};
      } else if (next_block_ < layout_.blocks.size() && layout_.blocks[next_block_].offset <= at) {
        const ScaleBlock& b = layout_.blocks[next_block_];
        range_ = {at, b.offset + b.size, 1 + next_block_};
      } else {
        range_ = {at, next_block_ < layout_.blocks.size() ? layout_.blocks[next_block_].offset : n_, 0};
      }
    }
    const ScaleLayout& layout_;
    std::size_t n_;
    std::size_t next_block_ = 0;
    ScaleRange range_{};
  };

  /// f(range) for every range of [0, n) in ascending order.
  template <class F>
  void for_each_range(std::size_t n, F&& f) const {
    for (Cursor c(*this, n); !c.done(); c.advance()) f(c.range());
  }

  /// Appends the layout and the scales (the format described at the top of this header).
  void write(std::vector<std::byte>& out, ScaleFormat format) const {
    if (bucket != 0) {
      put_varint(out, bucket);
      put_varint(out, scales.size());
    } else {
      put_varint(out, blocks.size());
      std::size_t end = 0;
      for (const ScaleBlock& b : blocks) {
        put_varint(out, b.offset - end);
        put_varint(out, b.size);
        end = b.offset + b.size;
      }
    }
    for (const float sigma : scales) write_scale(out, sigma, format);
  }

  /// Reads what write() wrote: buckets if `bucketed`, else blocks. The dimension is not known
  /// yet: check_dimension() follows. DecodeError for a count the remaining bytes cannot hold, a
  /// block overflowing size_t, or a scale that is not a finite non-negative number.
  void read(ByteReader& in, bool bucketed, ScaleFormat format) {
    const std::size_t scale_bytes = format == ScaleFormat::Float16 ? 2 : 4;
    blocks.clear();
    std::uint64_t count;
    if (bucketed) {
      bucket = checked_size(in.get_varint());
      if (bucket == 0) throw DecodeError("DitheredQuantizer: bucket size 0 in a bucketed message");
      count = in.get_varint();
      if (count > in.remaining() / scale_bytes) throw DecodeError("DitheredQuantizer: more scales than the message holds");
    } else {
      bucket = 0;
      const std::uint64_t listed = in.get_varint();
      // each block needs two varint bytes and a scale
      if (listed == 0 || listed > in.remaining() / (2 + scale_bytes))
        throw DecodeError("DitheredQuantizer: more scale blocks than the message holds");
      blocks.resize(static_cast<std::size_t>(listed));
      std::size_t end = 0;
      for (ScaleBlock& b : blocks) {
        const std::uint64_t gap = in.get_varint(), size = in.get_varint();
        if (size == 0 || gap > message_limit - end || size > message_limit - end - gap)
          throw DecodeError("DitheredQuantizer: scale block empty or beyond any dimension");
        b = {end + static_cast<std::size_t>(gap), static_cast<std::size_t>(size)};
        end = b.offset + b.size;
      }
      count = listed + 1;
    }
    scales.resize(static_cast<std::size_t>(count));
    for (float& sigma : scales) sigma = read_scale(in, format);
  }

  /// DecodeError unless the layout fits a vector of n values (the blocks in range, one scale per
  /// bucket).
  void check_dimension(std::size_t n) const {
    if (bucket != 0) {
      if (scales.size() != group_count(n)) throw DecodeError("DitheredQuantizer: bucket count does not match the dimension");
    } else if (!blocks.empty() && blocks.back().offset + blocks.back().size > n) {
      throw DecodeError("DitheredQuantizer: scale block beyond the message's dimension");
    }
  }

  /// The largest scale (0 for none).
  [[nodiscard]] float max_scale() const noexcept {
    float m = 0.0f;
    for (const float sigma : scales) m = std::max(m, sigma);
    return m;
  }

  /// σ as the format sends it: unchanged for float32, the float16 at or above it for float16.
  /// ConfigError when a float16 cannot hold it.
  static float sent_scale(float sigma, ScaleFormat format) {
    if (format == ScaleFormat::Float32) return sigma;
    const std::uint16_t h = float16_rounded_up(sigma);
    if (h == 0x7c00)  // (the message is built only here: this runs once per bucket)
      throw ConfigError("DitheredQuantizer: a scale of " + std::to_string(sigma) +
                        " exceeds float16's 65504; use ScaleFormat::Float32 or scale the input down");
    return float_of_float16(h);
  }

  /// Appends one scale in `format` (a float16 scale must be one already: see sent_scale).
  static void write_scale(std::vector<std::byte>& out, float sigma, ScaleFormat format) {
    if (format == ScaleFormat::Float16) {
      put_le<std::uint16_t>(out, float16_rounded_up(sigma));  // exact: sigma is a float16 already
    } else {
      put_le<float>(out, sigma);
    }
  }
  /// Reads one scale; DecodeError unless it is a finite number ≥ +0.
  static float read_scale(ByteReader& in, ScaleFormat format) {
    const float sigma = format == ScaleFormat::Float16 ? float_of_float16(in.get_le<std::uint16_t>()) : in.get_le<float>();
    if (!std::isfinite(sigma) || !(sigma >= 0.0f) || std::signbit(sigma))
      throw DecodeError("DitheredQuantizer: scale is not a finite non-negative number");
    return sigma;
  }

 private:
  static constexpr std::uint64_t message_limit = message::max_dimension;
  static std::size_t checked_size(std::uint64_t v) {
    if (v > message_limit) throw DecodeError("DitheredQuantizer: bucket size beyond any dimension");
    return static_cast<std::size_t>(v);
  }
};

/// acc[i] += weight · (σ_g · unit[ℓ_i]) for every non-zero level ℓ_i, g the group of i: the
/// same two float products encode formed q_i with (unit[ℓ] = sign(ℓ)·table[|ℓ|] from
/// LevelBlock::signed_table(1)), then the weight. Positions with ℓ_i = 0 are not touched.
inline void add_scaled_levels(const ScaleLayout& layout, std::span<const std::int16_t> levels, const float* unit,
                              float weight, float* acc) noexcept {
  layout.for_each_range(levels.size(), [&](const ScaleRange& r) {
    const float sigma = layout.scales[r.group];
    for (std::size_t i = r.begin; i < r.end; ++i) {
      const int l = levels[i];
      if (l != 0) acc[i] += weight * (sigma * unit[l]);
    }
  });
}

}  // namespace detail
}  // namespace decopt
