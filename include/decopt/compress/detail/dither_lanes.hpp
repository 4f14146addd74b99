// decopt/compress/detail/dither_lanes.hpp — the dithered quantizer's uniforms, eight at a time.
//
// The quantizer takes two dithers from each 64-bit draw r_k of its Rng (xoshiro256**):
//
//   u_{2k} = ⌊r_k / 2^40⌋ · 2^-24,   u_{2k+1} = (⌊r_k / 2^8⌋ mod 2^24) · 2^-24.
//
// One draw at a time, xoshiro256** costs about a dozen dependent scalar instructions, which made
// it half of the quantizer's time. Here eight segments of the *same* stream run in the eight
// 64-bit lanes of AVX-512 registers: lane j starts 2^14·j draws ahead (Rng::jump,
// decopt/core/xoshiro_jump.hpp), every step advances all eight lanes, and an 8×8 transpose puts
// each lane's draws back in order. The dithers are bit for bit those of the scalar loop, so the
// quantizer's output does not depend on the instruction set it was compiled for.
//
// A span of `span_elements` elements is covered by `rounds` calls of fill(); afterwards the
// generator is 2^17 draws further on, exactly as if they had been drawn one by one.
#pragma once

#if defined(__AVX512F__)
#include <immintrin.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "decopt/core/rng.hpp"

namespace decopt::detail {

class DitherLanes {
 public:
  static constexpr std::size_t lanes = 8;
  static constexpr std::size_t segment_draws = std::size_t{1} << 14;
  static constexpr std::size_t segment_elements = 2 * segment_draws;       ///< lane j's elements
  static constexpr std::size_t span_elements = lanes * segment_elements;   ///< one span
  static constexpr std::size_t round_elements = 512;                       ///< per lane per fill()
  static constexpr std::size_t rounds = segment_elements / round_elements;

  explicit DitherLanes(const Rng& rng) noexcept {
    constexpr Gf2Poly256 ahead = xoshiro256_jump_polynomial(segment_draws);
    alignas(64) std::array<std::array<std::uint64_t, lanes>, 4> word{};
    Rng lane = rng;
    for (std::size_t j = 0; j < lanes; ++j) {
      if (j != 0) lane.jump(ahead);
      for (std::size_t w = 0; w < 4; ++w) word[w][j] = lane.state()[w];
    }
    s0_ = _mm512_load_si512(word[0].data());
    s1_ = _mm512_load_si512(word[1].data());
    s2_ = _mm512_load_si512(word[2].data());
    s3_ = _mm512_load_si512(word[3].data());
  }

  /// The next round_elements dithers of every lane: lane j's go to u[j·round_elements …].
  void fill(float* u) noexcept {
    for (std::size_t t0 = 0; t0 < round_elements; t0 += 2 * lanes) {
      __m512i row[lanes];  // row[t] lane j: lane j's draw t, as its two float dithers
      for (auto& r : row) r = dithers(next());
      transpose(row);
      for (std::size_t j = 0; j < lanes; ++j) _mm512_store_si512(u + j * round_elements + t0, row[j]);
    }
  }

  /// Leaves `rng` where one-by-one drawing would have: after all lanes' draws (call after
  /// `rounds` fills).
  void advance(Rng& rng) const noexcept {
    alignas(64) std::array<std::array<std::uint64_t, lanes>, 4> word{};
    _mm512_store_si512(word[0].data(), s0_);
    _mm512_store_si512(word[1].data(), s1_);
    _mm512_store_si512(word[2].data(), s2_);
    _mm512_store_si512(word[3].data(), s3_);
    rng.set_state({word[0][lanes - 1], word[1][lanes - 1], word[2][lanes - 1], word[3][lanes - 1]});
  }

 private:
  // xoshiro256** in each lane: result rotl(s1·5, 7)·9, then the linear state update.
  __m512i next() noexcept {
    const __m512i times5 = _mm512_add_epi64(s1_, _mm512_slli_epi64(s1_, 2));
    const __m512i rotated = _mm512_rol_epi64(times5, 7);
    const __m512i result = _mm512_add_epi64(rotated, _mm512_slli_epi64(rotated, 3));
    const __m512i t = _mm512_slli_epi64(s1_, 17);
    s2_ = _mm512_xor_si512(s2_, s0_);
    s3_ = _mm512_xor_si512(s3_, s1_);
    s1_ = _mm512_xor_si512(s1_, s2_);
    s0_ = _mm512_xor_si512(s0_, s3_);
    s2_ = _mm512_xor_si512(s2_, t);
    s3_ = _mm512_rol_epi64(s3_, 45);
    return result;
  }

  // Each 64-bit draw → its two dithers as floats, u_{2k} (from the high half) first.
  static __m512i dithers(__m512i r) noexcept {
    const __m512i bits24 = _mm512_shuffle_epi32(_mm512_srli_epi32(r, 8), _MM_PERM_CDAB);
    return _mm512_castps_si512(_mm512_mul_ps(_mm512_cvtepi32_ps(bits24), _mm512_set1_ps(0x1.0p-24f)));
  }

  // row[t] qword j ↔ row[j] qword t, in three stages that each swap one bit of t with one of j.
  static void transpose(__m512i (&row)[lanes]) noexcept {
    const __m512i low1 = _mm512_setr_epi64(0, 8, 2, 10, 4, 12, 6, 14), high1 = _mm512_setr_epi64(1, 9, 3, 11, 5, 13, 7, 15);
    const __m512i low2 = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), high2 = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    const __m512i low4 = _mm512_setr_epi64(0, 1, 2, 3, 8, 9, 10, 11), high4 = _mm512_setr_epi64(4, 5, 6, 7, 12, 13, 14, 15);
    swap_bit<1>(row, low1, high1);
    swap_bit<2>(row, low2, high2);
    swap_bit<4>(row, low4, high4);
  }
  template <std::size_t bit>
  static void swap_bit(__m512i (&row)[lanes], __m512i low, __m512i high) noexcept {
    for (std::size_t t = 0; t < lanes; ++t) {
      if (t & bit) continue;
      const __m512i a = row[t], b = row[t | bit];
      row[t] = _mm512_permutex2var_epi64(a, low, b);
      row[t | bit] = _mm512_permutex2var_epi64(a, high, b);
    }
  }

  __m512i s0_, s1_, s2_, s3_;
};

}  // namespace decopt::detail
#endif
