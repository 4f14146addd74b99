// decopt/compress/detail/dither_lanes.hpp — the dithered quantizer's uniforms, a vector at a time.
//
// The quantizer takes two dithers from each 64-bit draw r_k of its Rng (xoshiro256**):
//
//   u_{2k} = ⌊r_k / 2^40⌋ · 2^-24,   u_{2k+1} = (⌊r_k / 2^8⌋ mod 2^24) · 2^-24.
//
// One draw at a time, xoshiro256** costs about a dozen dependent scalar instructions, which made
// it half of the quantizer's time. Here L segments of the *same* stream run in the L 64-bit lanes
// of a vector register (L = 8 with AVX-512F, 4 with AVX2): lane j starts 2^14·j draws ahead
// (Rng::jump, decopt/core/xoshiro_jump.hpp), every step advances all lanes, and an L×L transpose
// puts each lane's draws back in order. The dithers are bit for bit those of the scalar loop, so
// the quantizer's output does not depend on the instruction set it was compiled for.
//
// A span of `span_elements` elements is covered by `rounds` calls of fill(); afterwards the
// generator is L·2^14 draws further on, exactly as if they had been drawn one by one.
#pragma once

#if defined(__AVX512F__) || defined(__AVX2__)
#define DECOPT_HAVE_DITHER_LANES 1
#include <immintrin.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "decopt/core/diagnostics.hpp"
#include "decopt/core/rng.hpp"

DECOPT_AVX512_QUIET_BEGIN
namespace decopt::detail {

#if defined(__AVX512F__)
/// The 64-bit lane operations of DitherLanes: AVX-512F, eight lanes.
struct DitherVector {
  using V = __m512i;
  static constexpr std::size_t lanes = 8;
  static V load(const std::uint64_t* p) noexcept { return _mm512_load_si512(p); }
  static void store(void* p, V v) noexcept { _mm512_store_si512(p, v); }
  static V add(V a, V b) noexcept { return _mm512_add_epi64(a, b); }
  static V xor_(V a, V b) noexcept { return _mm512_xor_si512(a, b); }
  template <int k>
  static V shift_left(V a) noexcept { return _mm512_slli_epi64(a, k); }
  template <int k>
  static V rotate_left(V a) noexcept { return _mm512_rol_epi64(a, k); }
  // Each 64-bit draw → its two dithers as floats, u_{2k} (from the high half) first.
  static V dithers(V r) noexcept {
    const __m512i bits24 = _mm512_shuffle_epi32(_mm512_srli_epi32(r, 8), _MM_PERM_CDAB);
    return _mm512_castps_si512(_mm512_mul_ps(_mm512_cvtepi32_ps(bits24), _mm512_set1_ps(0x1.0p-24f)));
  }
  // row[t] qword j ↔ row[j] qword t, in three stages that each swap one bit of t with one of j.
  static void transpose(V (&row)[lanes]) noexcept {
    swap_bit<1>(row, _mm512_setr_epi64(0, 8, 2, 10, 4, 12, 6, 14), _mm512_setr_epi64(1, 9, 3, 11, 5, 13, 7, 15));
    swap_bit<2>(row, _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15));
    swap_bit<4>(row, _mm512_setr_epi64(0, 1, 2, 3, 8, 9, 10, 11), _mm512_setr_epi64(4, 5, 6, 7, 12, 13, 14, 15));
  }
  template <std::size_t bit>
  static void swap_bit(V (&row)[lanes], V low, V high) noexcept {
    for (std::size_t t = 0; t < lanes; ++t) {
      if (t & bit) continue;
      const V a = row[t], b = row[t | bit];
      row[t] = _mm512_permutex2var_epi64(a, low, b);
      row[t | bit] = _mm512_permutex2var_epi64(a, high, b);
    }
  }
};
#else
/// The 64-bit lane operations of DitherLanes: AVX2, four lanes.
struct DitherVector {
  using V = __m256i;
  static constexpr std::size_t lanes = 4;
  static V load(const std::uint64_t* p) noexcept { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }
  static void store(void* p, V v) noexcept { _mm256_store_si256(static_cast<__m256i*>(p), v); }
  static V add(V a, V b) noexcept { return _mm256_add_epi64(a, b); }
  static V xor_(V a, V b) noexcept { return _mm256_xor_si256(a, b); }
  template <int k>
  static V shift_left(V a) noexcept { return _mm256_slli_epi64(a, k); }
  template <int k>
  static V rotate_left(V a) noexcept { return _mm256_or_si256(_mm256_slli_epi64(a, k), _mm256_srli_epi64(a, 64 - k)); }
  static V dithers(V r) noexcept {
    const __m256i bits24 = _mm256_shuffle_epi32(_mm256_srli_epi32(r, 8), 0xB1);
    return _mm256_castps_si256(_mm256_mul_ps(_mm256_cvtepi32_ps(bits24), _mm256_set1_ps(0x1.0p-24f)));
  }
  static void transpose(V (&row)[lanes]) noexcept {
    for (std::size_t t : {std::size_t{0}, std::size_t{2}}) {  // swap bit 0 of t and j
      const V a = row[t], b = row[t + 1];
      row[t] = _mm256_unpacklo_epi64(a, b);
      row[t + 1] = _mm256_unpackhi_epi64(a, b);
    }
    for (std::size_t t : {std::size_t{0}, std::size_t{1}}) {  // swap bit 1
      const V a = row[t], b = row[t + 2];
      row[t] = _mm256_permute2x128_si256(a, b, 0x20);
      row[t + 2] = _mm256_permute2x128_si256(a, b, 0x31);
    }
  }
};
#endif

class DitherLanes {
  using Op = DitherVector;
  using V = Op::V;

 public:
  static constexpr std::size_t lanes = Op::lanes;
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
    for (std::size_t w = 0; w < 4; ++w) s_[w] = Op::load(word[w].data());
  }

  /// The next round_elements dithers of every lane: lane j's go to u[j·round_elements …]
  /// (u aligned to 64 bytes).
  void fill(float* u) noexcept {
    constexpr std::size_t floats = 2 * lanes;  // one vector of draws: two dithers per lane
    for (std::size_t t0 = 0; t0 < round_elements; t0 += floats) {
      V row[lanes];  // row[t] lane j: lane j's draw t, as its two float dithers
      for (auto& r : row) r = Op::dithers(next());
      Op::transpose(row);
      for (std::size_t j = 0; j < lanes; ++j) Op::store(u + j * round_elements + t0, row[j]);
    }
  }

  /// Leaves `rng` where one-by-one drawing would have: after all lanes' draws (call after
  /// `rounds` fills).
  void advance(Rng& rng) const noexcept {
    alignas(64) std::array<std::array<std::uint64_t, lanes>, 4> word{};
    for (std::size_t w = 0; w < 4; ++w) Op::store(word[w].data(), s_[w]);
    rng.set_state({word[0][lanes - 1], word[1][lanes - 1], word[2][lanes - 1], word[3][lanes - 1]});
  }

 private:
  // xoshiro256** in each lane: result rotl(s1·5, 7)·9, then the linear state update.
  V next() noexcept {
    const V times5 = Op::add(s_[1], Op::shift_left<2>(s_[1]));
    const V rotated = Op::rotate_left<7>(times5);
    const V result = Op::add(rotated, Op::shift_left<3>(rotated));
    const V t = Op::shift_left<17>(s_[1]);
    s_[2] = Op::xor_(s_[2], s_[0]);
    s_[3] = Op::xor_(s_[3], s_[1]);
    s_[1] = Op::xor_(s_[1], s_[2]);
    s_[0] = Op::xor_(s_[0], s_[3]);
    s_[2] = Op::xor_(s_[2], t);
    s_[3] = Op::rotate_left<45>(s_[3]);
    return result;
  }

  V s_[4];
};

}  // namespace decopt::detail
DECOPT_AVX512_QUIET_END
#endif
