// decopt/compress/sign.hpp — scaled sign quantization: Q(v) = sign(v)·‖v‖₁/d.
//
// Bernstein et al., "signSGD", ICML 2018; Karimireddy et al., "Error feedback fixes SignSGD",
// ICML 2019 (the ‖v‖₁/d scale makes the compressor a δ-contraction, so it converges with error
// feedback). Biased and deterministic. Exact zeros stay zero. Over a sparsified selection of k
// values the scale is ‖v_S‖₁/k.
#pragma once

#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "decopt/compress/detail/pipeline.hpp"
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
  static std::string name() { return "Sign"; }

  void validate() const {}
  [[nodiscard]] bool is_unbiased() const noexcept { return false; }

  static void build_table(float magnitude, float scale, std::vector<float>& table) {
    table.assign(2, 0.0f);
    table[1] = static_cast<float>(static_cast<double>(magnitude) * static_cast<double>(scale));
  }

  void quantize(std::span<const float> x, float scale, Rng& /*rng*/, detail::LevelBlock& blk, std::span<float> out) const {
    const std::size_t n = x.size();
    double sum = 0.0;
    for (std::size_t i = 0; i < n; ++i) sum += std::fabs(static_cast<double>(x[i]));
    const float magnitude = static_cast<float>(sum / static_cast<double>(n));
    blk.s = 1;
    blk.flags = 0;
    blk.sigma = magnitude;
    build_table(magnitude, scale, blk.table);
    detail::require(std::isfinite(blk.table[1]), "Sign: the mean magnitude times the sparsifier scale overflows float");
    const float pos = blk.table[1];
    const float neg = -pos;
    blk.levels.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const int l = x[i] > 0.0f ? 1 : (x[i] < 0.0f ? -1 : 0);
      blk.levels[i] = static_cast<std::int16_t>(l);
      out[i] = l > 0 ? pos : (l < 0 ? neg : 0.0f);
    }
  }
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
};

}  // namespace decopt
