// decopt/compress/detail/word_bits.hpp — 64-bit word operations of the word-parallel vector
// source coder: equality masks of 64 levels, bit deposit/extract and select. Internal: include
// "decopt/compress/compress.hpp" instead.
//
// Like Eigen, the instruction set is chosen when the including program is compiled: with BMI2
// (-mbmi2, -march=x86-64-v3 or newer) pdep/pext are single instructions, with AVX-512BW / AVX2 /
// SSE2 the equality masks take 2 / 8 / 16 vector compares per 64 levels; every other target gets
// a portable loop with the same results. tests/compress runs the suite on the baseline target and,
// where the machine has them, on the host's full instruction set (test_compress_native).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "decopt/core/diagnostics.hpp"

DECOPT_AVX512_QUIET_BEGIN
namespace decopt::detail::bits {

/// Bit j set when lv[j] == symbol, for the 64 levels at lv (all 64 must be readable).
inline std::uint64_t equal_mask64(const std::int16_t* lv, std::int16_t symbol) noexcept {
#if defined(__AVX512BW__)
  const __m512i s = _mm512_set1_epi16(symbol);
  const std::uint64_t lo = _mm512_cmpeq_epi16_mask(_mm512_loadu_si512(lv), s);
  const std::uint64_t hi = _mm512_cmpeq_epi16_mask(_mm512_loadu_si512(lv + 32), s);
  return lo | (hi << 32);
#elif defined(__AVX2__)
  const __m256i s = _mm256_set1_epi16(symbol);
  std::uint64_t m = 0;
  for (int i = 0; i < 2; ++i) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lv + 32 * i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lv + 32 * i + 16));
    // packs interleaves the 128-bit lanes; the permute restores element order
    const __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi16(_mm256_cmpeq_epi16(a, s), _mm256_cmpeq_epi16(b, s)), 0xD8);
    m |= std::uint64_t{static_cast<std::uint32_t>(_mm256_movemask_epi8(p))} << (32 * i);
  }
  return m;
#elif defined(__SSE2__)
  const __m128i s = _mm_set1_epi16(symbol);
  std::uint64_t m = 0;
  for (int i = 0; i < 4; ++i) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(lv + 16 * i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(lv + 16 * i + 8));
    const __m128i e = _mm_packs_epi16(_mm_cmpeq_epi16(a, s), _mm_cmpeq_epi16(b, s));
    m |= std::uint64_t{static_cast<std::uint32_t>(_mm_movemask_epi8(e)) & 0xffffu} << (16 * i);
  }
  return m;
#else
  std::uint64_t m = 0;
  for (int j = 0; j < 64; ++j) m |= std::uint64_t{lv[j] == symbol} << j;
  return m;
#endif
}

/// Number of set bits: the instruction where the target has it, else a SWAR count inline (GCC's
/// generic __builtin_popcountll is a library call).
inline int popcount(std::uint64_t x) noexcept {
#if defined(__POPCNT__) || !(defined(__x86_64__) || defined(__i386__))
  return std::popcount(x);
#else
  x -= (x >> 1) & 0x5555555555555555u;
  x = (x & 0x3333333333333333u) + ((x >> 2) & 0x3333333333333333u);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fu;
  return static_cast<int>((x * 0x0101010101010101u) >> 56);
#endif
}

/// The bits of `value` at the set positions of `mask`, packed to the low end (pext).
inline std::uint64_t extract(std::uint64_t value, std::uint64_t mask) noexcept {
#if defined(__BMI2__)
  return _pext_u64(value, mask);
#else
  std::uint64_t out = 0;  // one step per set bit of value & mask: its rank among mask's bits
  for (std::uint64_t v = value & mask; v != 0; v &= v - 1) out |= std::uint64_t{1} << popcount(mask & ((v & -v) - 1));
  return out;
#endif
}

/// The low bits of `value` placed at the set positions of `mask`, lowest first (pdep).
inline std::uint64_t deposit(std::uint64_t value, std::uint64_t mask) noexcept {
#if defined(__BMI2__)
  return _pdep_u64(value, mask);
#else
  std::uint64_t out = 0;
  for (; mask != 0 && value != 0; mask &= mask - 1, value >>= 1) out |= (value & 1u) ? (mask & -mask) : 0u;
  return out;
#endif
}

/// select_in_byte[b][t]: position of the t-th set bit of byte b (8 when there is none).
inline constexpr auto select_in_byte = [] {
  struct Table {
    std::uint8_t at[256][8];
    constexpr const std::uint8_t* operator[](std::size_t b) const { return at[b]; }
  } table{};
  for (unsigned b = 0; b < 256; ++b) {
    unsigned t = 0;
    for (unsigned j = 0; j < 8; ++j) table.at[b][j] = 8;
    for (unsigned j = 0; j < 8; ++j)
      if ((b >> j) & 1u) table.at[b][t++] = static_cast<std::uint8_t>(j);
  }
  return table;
}();

/// The position of the t-th (0-based) set bit of `mask`; t < popcount(mask).
inline int select(std::uint64_t mask, unsigned t) noexcept {
#if defined(__BMI2__)
  return std::countr_zero(_pdep_u64(std::uint64_t{1} << t, mask));
#else
  // branch-free halving by counts down to one byte, then a table of in-byte positions
  unsigned base = 0;
  for (unsigned width = 32; width >= 8; width /= 2) {
    const auto below = static_cast<unsigned>(popcount((mask >> base) & ((std::uint64_t{1} << width) - 1)));
    const unsigned take = t >= below ? 1u : 0u;
    t -= take * below;
    base += take * width;
  }
  return static_cast<int>(base) + select_in_byte[(mask >> base) & 0xffu][t & 7u];
#endif
}

/// `value` with only its lowest `k` set bits kept (k ≥ 1, k ≤ popcount(value)).
inline std::uint64_t lowest_set_bits(std::uint64_t value, unsigned k) noexcept {
  if (k >= 64) return value;
  const int top = select(value, k - 1);
  return top == 63 ? value : value & ((std::uint64_t{2} << top) - 1);
}

/// The run lengths of one hit-bitmap word: for each set bit, in order, the number of clear bits
/// since the previous set bit; the first also counts `carry` clear bits of earlier words, and
/// `carry` becomes the clear bits after the last set bit. Writes runs[0, 64) (slack included) and
/// returns the number of runs, popcount(word). With AVX-512 VBMI2 the positions come from one
/// byte compress and the differences are vector subtractions, so no branch depends on the bits.
inline unsigned word_runs(std::uint64_t word, std::uint64_t& carry, std::uint32_t* runs) noexcept {
#if defined(__AVX512VBMI2__) && defined(__AVX512BW__)
  const __m512i index = _mm512_set_epi8(63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44,
                                        43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24,
                                        23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i previous_index = _mm512_sub_epi8(index, _mm512_set1_epi8(1));
  const __m512i at = _mm512_maskz_compress_epi8(word, index);  // positions of the set bits
  // previous position, −1 before the first: run = at − previous − 1
  const __m512i previous = _mm512_mask_permutexvar_epi8(_mm512_set1_epi8(-1), ~std::uint64_t{1}, previous_index, at);
  const __m512i run = _mm512_sub_epi8(_mm512_sub_epi8(at, previous), _mm512_set1_epi8(1));
  _mm512_storeu_si512(runs, _mm512_cvtepu8_epi32(_mm512_castsi512_si128(run)));
  _mm512_storeu_si512(runs + 16, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(run, 1)));
  _mm512_storeu_si512(runs + 32, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(run, 2)));
  _mm512_storeu_si512(runs + 48, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(run, 3)));
  const auto count = static_cast<unsigned>(popcount(word));
#else
  unsigned count = 0;
  int previous = -1;
  for (std::uint64_t w = word; w != 0; w &= w - 1) {
    const int t = std::countr_zero(w);
    runs[count++] = static_cast<std::uint32_t>(t - previous - 1);
    previous = t;
  }
#endif
  if (word == 0) {
    carry += 64;
    return 0;
  }
  runs[0] += static_cast<std::uint32_t>(carry);  // carry < 2^32: bitmaps have fewer bits
  carry = static_cast<std::uint64_t>(std::countl_zero(word));
  return count;
}

/// Mask of the low `n` bits, n ≤ 64.
constexpr std::uint64_t low_mask(unsigned n) noexcept { return n >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1; }

}  // namespace decopt::detail::bits
DECOPT_AVX512_QUIET_END
