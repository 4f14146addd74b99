// decopt/compress/sign.hpp — scaled sign quantization: Q(v) = sign(v)·‖v‖₁/d.
//
// Bernstein et al., "signSGD", ICML 2018; Karimireddy et al., "Error feedback fixes SignSGD",
// ICML 2019 (the ‖v‖₁/d scale makes the compressor a δ-contraction, so it converges with error
// feedback). Biased and deterministic. Exact zeros stay zero. Over a sparsified selection of k
// values the scale is ‖v_S‖₁/k.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "decopt/compress/detail/pipeline.hpp"
#include "decopt/compress/detail/sign_masks.hpp"
#include "decopt/compress/detail/stream_copy.hpp"
#include "decopt/compress/message.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"

namespace decopt {

/// Levels ℓ = sign(v_k) ∈ {−1, 0, 1}; one float magnitude ‖v‖₁/d per message.
struct Sign {
  static constexpr std::uint8_t id = message::ids::sign;
  static constexpr bool always_unbiased = false;
  static constexpr bool uses_seed = false;
  static constexpr bool float_values = false;
  /// quantize() throws ConfigError for a non-finite input (with Dense, the Compressor's own pass
  /// is then skipped).
  static constexpr bool checks_finite = true;
  static std::string name() { return "Sign"; }

  void validate() const {}
  [[nodiscard]] bool is_unbiased() const noexcept { return false; }

  static void build_table(float magnitude, float scale, std::vector<float>& table) {
    table.assign(2, 0.0f);
    table[1] = static_cast<float>(static_cast<double>(magnitude) * static_cast<double>(scale));
  }

  /// One pass over x: the signs as bit masks in blk (detail/sign_masks.hpp) and the magnitude
  /// ‖x‖₁/n from Σ|x_i| summed in 16 fixed-order lanes (the same bits on every instruction set; it
  /// was 1.34 of Sign's 1.42 ms at 2^20 as one serial chain), which also flags a non-finite input.
  /// Then the table, and q (and, unless `with_levels` is false, the int16 levels) from the masks
  /// in a second pass that reads n/32 bytes instead of x again. Coders that code the masks
  /// themselves (VectorSourceCoder::encode_sign_masks) take quantize_masks, which writes no levels.
  void quantize(std::span<const float> x, float scale, Rng& rng, detail::LevelBlock& blk, std::span<float> out) const {
    quantize_into(x, scale, rng, blk, out, true);
  }
  /// quantize() without the int16 levels: blk.levels is left empty, blk.positive/negative hold them.
  /// An empty `out` skips q too (the message needs only the masks and the magnitude); reconstruct()
  /// writes it from them later, the same bits.
  void quantize_masks(std::span<const float> x, float scale, Rng& rng, detail::LevelBlock& blk, std::span<float> out) const {
    quantize_into(x, scale, rng, blk, out, false);
  }
  /// q from the masks and table of a quantize_masks(…, blk, {}) of q.size() values: what that call
  /// would have written into a q of its own.
  static void reconstruct(const detail::LevelBlock& blk, std::span<float> q) { write_q(blk, q.size(), q.data(), nullptr); }
  void write_params(const detail::LevelBlock& blk, std::vector<std::byte>& out) const { put_le<float>(out, blk.sigma); }
  void read_params(ByteReader& in, float scale, detail::LevelBlock& blk) const {
    const float magnitude = in.get_le<float>();
    if (!std::isfinite(magnitude) || magnitude < 0.0f) throw DecodeError("Sign: magnitude is not a finite non-negative number");
    blk.s = 1;
    blk.flags = 0;
    blk.sigma = magnitude;
    build_table(magnitude, scale, blk.table);
    if (!std::isfinite(blk.table[1])) throw DecodeError("Sign: reconstruction overflows float");
  }

 private:
  void quantize_into(std::span<const float> x, float scale, Rng& /*rng*/, detail::LevelBlock& blk, std::span<float> out,
                     bool with_levels) const {
    const std::size_t n = x.size();
    const std::size_t words = (n + 63) / 64;
    blk.positive.resize(words);
    blk.negative.resize(words);
    const double sum = detail::sign::abs_sum_and_masks(x.data(), n, blk.positive.data(), blk.negative.data());
    detail::require(std::isfinite(sum), detail::non_finite_input);
    const float magnitude = static_cast<float>(sum / static_cast<double>(n));
    blk.s = 1;
    blk.flags = 0;
    blk.sigma = magnitude;
    build_table(magnitude, scale, blk.table);
    detail::require(std::isfinite(blk.table[1]), "Sign: the mean magnitude times the sparsifier scale overflows float");
    blk.levels.resize(with_levels ? n : 0);
    if (!with_levels && out.empty()) return;
    write_q(blk, n, out.data(), with_levels ? blk.levels.data() : nullptr);
  }

  // The second pass: q (and the int16 levels, unless null) of n values from blk's masks and table,
  // a chunk at a time through L1; a q larger than the caches is written with non-temporal stores
  // (no read for ownership).
  static void write_q(const detail::LevelBlock& blk, std::size_t n, float* q, std::int16_t* levels) {
    const float pos = blk.table[1];
    const float neg = -pos;  // the signed table decode builds: ±magnitude, +0 for level 0
    const bool stream = n >= stream_min;
    if (stream && !levels && detail::sign::stream_from_masks(blk.positive.data(), blk.negative.data(), n, pos, neg, q)) {
      detail::stream_fence();
      return;
    }
    constexpr std::size_t chunk = 1024;  // a multiple of 64
    alignas(64) float buffer[chunk];
    for (std::size_t at = 0; at < n; at += chunk) {
      const std::size_t m = std::min(chunk, n - at);
      detail::sign::write_from_masks(blk.positive.data(), blk.negative.data(), at, m, pos, neg, stream ? buffer : q + at,
                                     levels ? levels + at : nullptr);
      if (stream) {
        detail::copy_streaming(reinterpret_cast<std::byte*>(q + at), reinterpret_cast<const std::byte*>(buffer), m * sizeof(float));
      }
    }
    if (stream) detail::stream_fence();
  }

  // Outputs q of at least this many floats (16 MiB, about an L3) are streamed past the caches.
  static constexpr std::size_t stream_min = std::size_t{1} << 22;
};

}  // namespace decopt
