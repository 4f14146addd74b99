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

#if defined(__AVX2__) && defined(__F16C__)
#include <immintrin.h>
#endif

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

/// Rounds x[0, n) 8 values at a time where the target has the instructions (AVX2, and F16C's
/// vcvtps2ph for float16 to nearest even), with the codes of code(): IEEE round to nearest even,
/// or stochastic rounding with the same 64-bit draw per value, in the same order, as the scalar
/// loop — so the message does not depend on the instruction set. A group of 8 holding a value at
/// or past `overflow` (the scalar loop reports it), or for stochastic float16 a subnormal result,
/// goes to scalar(first, last) with the generator as it was before the group, as does the tail
/// (and everything on other targets). levels[i] = ±code, out[i] = ±value(code), +0 for code 0;
/// the maxima of |x| bits and of the codes are merged into largest_input / largest_code.
template <class Scalar>
void round_values(HalfFormat f, HalfRounding r, const float* x, std::size_t n, float scale, std::uint32_t overflow, Rng& rng,
                  std::int16_t* levels, float* out, std::uint32_t& largest_input, std::uint32_t& largest_code, Scalar&& scalar) {
  std::size_t i = 0;
#if defined(__AVX2__) && defined(__F16C__)
  const __m256i magnitude = _mm256_set1_epi32(0x7FFFFFFF);
  const __m256i limit = _mm256_set1_epi32(static_cast<int>(overflow - 1));  // a ≤ limit, a signed compare (a < 2^31)
  const __m256i below_normal = _mm256_set1_epi32(static_cast<int>((113u << 23) - 1));
  const __m256 scalev = _mm256_set1_ps(scale);
  __m256i input_max = _mm256_setzero_si256(), code_max = _mm256_setzero_si256();
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 y = scale == 1.0f ? v : _mm256_mul_ps(v, scalev);
    const __m256i yb = _mm256_castps_si256(y);
    const __m256i a = _mm256_and_si256(yb, magnitude);
    const __m256i over = _mm256_cmpgt_epi32(a, limit);
    if (!_mm256_testz_si256(over, over)) {
      scalar(i, i + 8);
      continue;
    }
    __m256i code;
    if (r == HalfRounding::NearestEven) {
      if (f == HalfFormat::Float16) {
        code = _mm256_cvtepu16_epi32(_mm256_cvtps_ph(_mm256_castsi256_ps(a), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      } else {  // (a + 0x7FFF + bit 16 of a) >> 16
        const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(a, 16), _mm256_set1_epi32(1));
        code = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(a, _mm256_set1_epi32(0x7FFF)), odd), 16);
      }
    } else {
      const Rng before = rng;
      alignas(32) std::uint32_t low[8];
      for (std::uint32_t& w : low) w = static_cast<std::uint32_t>(rng.next());  // the bits code() uses
      const __m256i random = _mm256_load_si256(reinterpret_cast<const __m256i*>(low));
      if (f == HalfFormat::BFloat16) {  // (a + 16 random bits) >> 16
        code = _mm256_srli_epi32(_mm256_add_epi32(a, _mm256_and_si256(random, _mm256_set1_epi32(0xFFFF))), 16);
      } else {
        // normal results (rebias, add 13 random bits, drop 13) and zeros; a subnormal goes scalar
        const __m256i zero = _mm256_cmpeq_epi32(a, _mm256_setzero_si256());
        const __m256i normal = _mm256_cmpgt_epi32(a, below_normal);
        if (_mm256_movemask_epi8(_mm256_or_si256(zero, normal)) != -1) {
          rng = before;
          scalar(i, i + 8);
          continue;
        }
        const __m256i rebiased = _mm256_sub_epi32(a, _mm256_set1_epi32(static_cast<int>(112u << 23)));
        code = _mm256_andnot_si256(zero, _mm256_srli_epi32(_mm256_add_epi32(rebiased, _mm256_and_si256(random, _mm256_set1_epi32(0x1FFF))), 13));
      }
    }
    input_max = _mm256_max_epu32(input_max, _mm256_and_si256(_mm256_castps_si256(v), magnitude));
    code_max = _mm256_max_epu32(code_max, code);
    // negative where y's sign is set and the code is not 0 (−0 rounds to level 0 and +0)
    const __m256i zero_code = _mm256_cmpeq_epi32(code, _mm256_setzero_si256());
    const __m256i negative = _mm256_andnot_si256(zero_code, _mm256_srai_epi32(yb, 31));
    const __m256i level = _mm256_sub_epi32(_mm256_xor_si256(code, negative), negative);  // ±code
    _mm_storeu_si128(reinterpret_cast<__m128i*>(levels + i),
                     _mm_packs_epi32(_mm256_castsi256_si128(level), _mm256_extracti128_si256(level, 1)));
    __m256 value;
    if (f == HalfFormat::Float16) {
      const __m256i h32 = _mm256_or_si256(code, _mm256_and_si256(negative, _mm256_set1_epi32(0x8000)));
      value = _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(h32), _mm256_extracti128_si256(h32, 1)));
    } else {
      value = _mm256_castsi256_ps(_mm256_or_si256(_mm256_slli_epi32(code, 16), _mm256_slli_epi32(negative, 31)));
    }
    _mm256_storeu_ps(out + i, value);
  }
  alignas(32) std::uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), input_max);
  for (const std::uint32_t l : lanes) largest_input = std::max(largest_input, l);
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), code_max);
  for (const std::uint32_t l : lanes) largest_code = std::max(largest_code, l);
#else
  (void)f, (void)r, (void)x, (void)scale, (void)overflow, (void)rng, (void)levels, (void)out, (void)largest_input, (void)largest_code;
#endif
  scalar(i, n);
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
    auto scalar = [&](std::size_t first, std::size_t last) {
      for (std::size_t i = first; i < last; ++i) {
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
    };
    detail::half::round_values(format, rounding, x.data(), n, scale, overflow, rng, blk.levels.data(), out.data(), largest_input,
                               largest_code, scalar);
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
