// decopt/compress/identity.hpp — the Identity quantizer: values travel as IEEE float32.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "decopt/compress/detail/pipeline.hpp"
#include "decopt/compress/message.hpp"
#include "decopt/core/rng.hpp"

namespace decopt {

/// No quantization: each kept value (times the sparsifier's scale) is sent as a raw float32.
/// With Dense this is the lossless compressor of D-PSGD.
struct Identity {
  static constexpr std::uint8_t id = message::ids::identity;
  static constexpr bool always_unbiased = true;
  static constexpr bool uses_seed = false;
  static constexpr bool float_values = true;  ///< the coder sends floats, not integer levels
  static std::string name() { return "Identity"; }

  void validate() const {}
  [[nodiscard]] bool is_unbiased() const noexcept { return true; }

  /// out[i] = x[i]·scale (a plain copy when scale = 1).
  void quantize(std::span<const float> x, float scale, Rng& /*rng*/, detail::LevelBlock& /*blk*/,
                std::span<float> out) const {
    if (scale == 1.0f) {
      if (out.data() != x.data()) std::copy(x.begin(), x.end(), out.begin());
      return;
    }
    for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] * scale;
  }
  void write_params(const detail::LevelBlock& /*blk*/, std::vector<std::byte>& /*out*/) const {}
  void read_params(ByteReader& /*in*/, float /*scale*/, detail::LevelBlock& /*blk*/) const {}
};

}  // namespace decopt
