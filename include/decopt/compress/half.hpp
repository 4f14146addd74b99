// decopt/compress/half.hpp — HalfFloat: values sent as IEEE float16 or bfloat16, rounded to
// nearest even or stochastically (unbiased).
//
// A half-precision value is a sign and a 15-bit magnitude code whose order is the values' order,
// so it travels as the signed integer level ℓ = ±code with the reconstruction table
// table[code] = the format's value: every coder carries it (RawCoder in at most 16 bits a value), and
// decode_add is the level path, exact bit for bit. The sparsifier's scale is applied before
// rounding (q = round(v·scale)), so the table is the format's values alone. The largest code in
// the message is its level count s, which bounds the receiver's table and its overflow check;
// with RawCoder it also sets the width: 15 bits a value while every |q| < 2, 16 once one |q| ≥ 2.
//
// Rounding works on the float32 bits (no F16C/AVX-512-BF16 dependence, the same bits on every
// target): to nearest even, or stochastically — the magnitude bits below the format's precision
// plus uniform random bits of the same width, truncated, rounds up with probability equal to the
// dropped fraction, so E[q] = v·scale (Gupta et al., "Deep learning with limited numerical
// precision", ICML 2015; Connolly, Higham & Mary, "Stochastic rounding and its probabilistic
// backward error analysis", SISC 2021). Float16's subnormals round stochastically down to
// 2^-64 of their spacing; below that they round to zero.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "decopt/compress/detail/pipeline.hpp"
#include "decopt/compress/message.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"

namespace decopt {

enum class HalfFormat : std::uint8_t { Float16 = 0, BFloat16 = 1 };
enum class HalfRounding : std::uint8_t { NearestEven = 0, Stochastic = 1 };

namespace detail::half {

/// Largest finite magnitude code: 65504 (float16), ≈ 3.3895e38 (bfloat16).
constexpr std::uint32_t max_code(HalfFormat f) noexcept { return f == HalfFormat::Float16 ? 0x7BFFu : 0x7F7Fu; }

/// The float32 value of a magnitude code (exact: every half value is a float).
inline float value(HalfFormat f, std::uint32_t code) noexcept {
  if (f == HalfFormat::BFloat16) return std::bit_cast<float>(code << 16);
  const std::uint32_t e = code >> 10, m = code & 0x3FFu;
  if (e == 0) return static_cast<float>(m) * 0x1p-24f;  // subnormal: m·2^-24
  return std::bit_cast<float>(((e + 112u) << 23) | (m << 13));
}

/// The smallest float32 magnitude bits that a rounding mode takes past the largest finite code:
/// to nearest even, halfway to the next binade step; stochastically, anything above the maximum.
constexpr std::uint32_t overflow_bits(HalfFormat f, HalfRounding r) noexcept {
  if (f == HalfFormat::Float16) return r == HalfRounding::NearestEven ? 0x477FF000u : 0x477FE001u;
  return r == HalfRounding::NearestEven ? 0x7F7F8000u : 0x7F7F0001u;
}

/// ⌊(a + add) / 2^shift⌋: `a` in units of 2^-shift of the format's spacing, `add` the
/// nearest-even bias (half a spacing less one, plus the kept low bit) or `shift` uniform random
/// bits (stochastic rounding).
inline std::uint32_t shift_round(std::uint64_t a, unsigned shift, HalfRounding r, std::uint64_t random) noexcept {
  if (shift >= 64) return 0;
  const std::uint64_t below = (std::uint64_t{1} << shift) - 1;
  const std::uint64_t add = r == HalfRounding::NearestEven ? (below >> 1) + ((a >> shift) & 1u) : (random & below);
  return static_cast<std::uint32_t>((a + add) >> shift);
}

/// The magnitude code of the float32 magnitude bits `a` (below overflow_bits).
inline std::uint32_t code(HalfFormat f, HalfRounding r, std::uint32_t a, std::uint64_t random) noexcept {
  if (f == HalfFormat::BFloat16) return shift_round(a, 16, r, random);
  const std::uint32_t e = a >> 23;
  if (e >= 113) return shift_round(a - (112u << 23), 13, r, random);  // normal: rebias, drop 13 bits
  // subnormal or zero: a = m·2^(e' − 150), code = m·2^(e' − 126) with e' = max(e, 1)
  const std::uint32_t m = (a & 0x7FFFFFu) | (e != 0 ? 0x800000u : 0u);
  return shift_round(m, 126u - (e != 0 ? e : 1u), r, random);
}

}  // namespace detail::half

/// Each value (times the sparsifier's scale) as a float16 or bfloat16, rounded to nearest even
/// or stochastically (then unbiased: E[q] = v·scale). 16 bits a value with RawCoder.
struct HalfFloat {
  HalfFormat format = HalfFormat::Float16;
  HalfRounding rounding = HalfRounding::NearestEven;

  static constexpr std::uint8_t id = message::ids::half;
  /// Only stochastic rounding is unbiased (an instance's is_unbiased()).
  static constexpr bool always_unbiased = false;
  /// Stochastic rounding draws from the Rng.
  static constexpr bool uses_seed = true;
  static constexpr bool float_values = false;  ///< magnitude codes travel as signed levels
  /// quantize() throws ConfigError for a non-finite input (it compares every value's bits anyway).
  static constexpr bool checks_finite = true;
  static std::string name() { return "Half"; }

  void validate() const {
    detail::require(format == HalfFormat::Float16 || format == HalfFormat::BFloat16, "HalfFloat::format must be Float16 or BFloat16");
    detail::require(rounding == HalfRounding::NearestEven || rounding == HalfRounding::Stochastic,
                    "HalfFloat::rounding must be NearestEven or Stochastic");
  }
  [[nodiscard]] bool is_unbiased() const noexcept { return rounding == HalfRounding::Stochastic; }

  /// out[i] = round(x[i]·scale) in the format; levels ±code. Throws ConfigError for a non-finite
  /// x[i], or an x[i]·scale beyond the format's largest finite value (65504 for float16).
  void quantize(std::span<const float> x, float scale, Rng& rng, detail::LevelBlock& blk, std::span<float> out) const {
    const std::size_t n = x.size();
    blk.levels.resize(n);
    const std::uint32_t overflow = detail::half::overflow_bits(format, rounding);
    std::uint32_t largest_input = 0, largest_code = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t bits = std::bit_cast<std::uint32_t>(x[i]);
      largest_input = std::max(largest_input, bits & 0x7FFFFFFFu);
      const std::uint32_t y = std::bit_cast<std::uint32_t>(scale == 1.0f ? x[i] : x[i] * scale);
      const std::uint32_t a = y & 0x7FFFFFFFu;
      if (a >= overflow) {
        detail::require(largest_input < 0x7F800000u, detail::non_finite_input);
        throw ConfigError(format == HalfFormat::Float16 ? "HalfFloat: a value (times the sparsifier's scale) exceeds float16's largest, 65504"
                                                        : "HalfFloat: a value (times the sparsifier's scale) exceeds bfloat16's largest");
      }
      const std::uint64_t random = rounding == HalfRounding::Stochastic ? rng.next() : 0;
      const std::uint32_t c = detail::half::code(format, rounding, a, random);
      largest_code = std::max(largest_code, c);
      const bool negative = (y >> 31) != 0 && c != 0;
      blk.levels[i] = static_cast<std::int16_t>(negative ? -static_cast<int>(c) : static_cast<int>(c));
      const float v = detail::half::value(format, c);
      out[i] = negative ? -v : v;  // the receiver's weight·(−table[c]) with weight 1
    }
    // The level count is the largest code, so RawCoder's width ⌈log2(2s+1)⌉ = bit_width(2s) follows
    // the data: 2.0 is code 0x4000 in both formats (float16 exponent field 16, bfloat16 the top half
    // of 0x40000000), so while every |q| < 2 the largest code is below 0x4000 and the levels take 15
    // bits each ("fp16/bf16 at 15 bits per element" on inputs in (−2, 2)); once one |q| ≥ 2, 16 bits
    // (tests/compress/test_half.cpp, "15 bits below 2").
    blk.s = largest_code == 0 ? 1 : static_cast<int>(largest_code);
    blk.flags = options_byte();
    blk.sigma = 0.0f;
  }
  void write_params(const detail::LevelBlock& blk, std::vector<std::byte>& out) const {
    out.push_back(static_cast<std::byte>(blk.flags));
    put_le<std::uint16_t>(out, static_cast<std::uint16_t>(blk.s));
  }
  /// The options byte must be this configuration's, the largest code a finite one of its format.
  void read_params(ByteReader& in, float /*scale*/, detail::LevelBlock& blk) const {
    if (in.get_le<std::uint8_t>() != options_byte()) throw DecodeError("HalfFloat: format or rounding is not this configuration's");
    const std::uint16_t s = in.get_le<std::uint16_t>();
    if (s < 1 || s > detail::half::max_code(format)) throw DecodeError("HalfFloat: largest code out of range");
    blk.s = s;
    blk.flags = options_byte();
    blk.sigma = 0.0f;
    blk.table.resize(static_cast<std::size_t>(s) + 1);
    for (std::uint32_t c = 0; c <= s; ++c) blk.table[c] = detail::half::value(format, c);
  }

 private:
  [[nodiscard]] std::uint8_t options_byte() const noexcept {
    return static_cast<std::uint8_t>(static_cast<unsigned>(format) | (static_cast<unsigned>(rounding) << 1));
  }
};

}  // namespace decopt
