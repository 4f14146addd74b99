// decopt/compress/detail/sign_masks.hpp — the kernels of the scaled sign quantizer: one pass over
// x that sums |x_i| in a fixed order and writes the signs as two bit masks, and one pass over the
// masks that writes q (and, for coders that take levels, the int16 levels). Internal: include
// "decopt/compress/compress.hpp" instead.
//
// Masks: word w of `positive` has bit j set where x[64w + j] > 0, of `negative` where it is < 0
// (zeros and NaNs in neither); bits past n are clear. The sum is Σ|x_i| in double as 16
// interleaved partial sums (lane j: i ≡ j mod 16, in index order) added pairwise in a fixed tree
// at the end (part[j] += part[j + 8], then + 4, + 2, + 1). The AVX-512 path keeps the 16 lanes in
// two registers of eight doubles, the AVX path in four of four and the portable path in an array,
// in the same order, so every instruction set gives the same bits (the project builds with -ffp-contract=off).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "decopt/core/diagnostics.hpp"

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace decopt::detail::sign {

inline constexpr std::size_t lanes = 16;

/// Writes the masks of x (ceil(n/64) words each) and returns Σ|x_i| (header comment). A NaN or ±∞
/// makes the sum non-finite, and finite floats cannot overflow it: the sum doubles as the
/// finiteness check.
inline double abs_sum_and_masks(const float* x, std::size_t n, std::uint64_t* positive, std::uint64_t* negative) noexcept {
  double part[lanes] = {};
  std::size_t i = 0;
#if defined(__AVX512F__)
  {
    // 16 floats a load: compares straight to mask bits, and the two halves widened to lanes 0–7
    // and 8–15 (about half the instructions of the AVX path; at 10·2^20 floats 3.8 -> 2.3 ms)
    DECOPT_AVX512_QUIET_BEGIN
    const __m512 zero = _mm512_setzero_ps();
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
    __m512d low = _mm512_setzero_pd(), high = low;  // lanes 0–7, 8–15
    constexpr std::size_t ahead = 1024;             // floats prefetched ahead (4 KiB)
    for (; i + 64 <= n; i += 64) {
      // x's lines 4 KiB ahead: when q's streamed stores of the previous encode have pushed x out
      // of the caches, this pass reads from memory at half its speed without (measured at 10·2^20:
      // 5.3–5.7 -> 2.7–3.8 ms); within the caches it costs nothing
      if (i + ahead + 64 <= n) {
        for (std::size_t line = 0; line < 64; line += 16)
          _mm_prefetch(reinterpret_cast<const char*>(x + i + ahead + line), _MM_HINT_T0);
      }
      std::uint64_t pos = 0, neg = 0;
      for (std::size_t g = 0; g < 64; g += 16) {
        const __m512 v = _mm512_loadu_ps(x + i + g);
        pos |= std::uint64_t{_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ)} << g;
        neg |= std::uint64_t{_mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ)} << g;
        const __m512i a = _mm512_and_si512(_mm512_castps_si512(v), abs_mask);
        low = _mm512_add_pd(low, _mm512_cvtps_pd(_mm256_castsi256_ps(_mm512_castsi512_si256(a))));
        high = _mm512_add_pd(high, _mm512_cvtps_pd(_mm256_castsi256_ps(_mm512_extracti64x4_epi64(a, 1))));
      }
      positive[i / 64] = pos;
      negative[i / 64] = neg;
    }
    _mm512_storeu_pd(part, low);
    _mm512_storeu_pd(part + 8, high);
    DECOPT_AVX512_QUIET_END
  }
#elif defined(__AVX__)
  {
    const __m256d abs_mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    const __m256 zero = _mm256_setzero_ps();
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;  // lanes 0–3, 4–7, 8–11, 12–15
    auto abs_pd = [&](__m128 v) { return _mm256_and_pd(_mm256_cvtps_pd(v), abs_mask); };
    for (; i + 64 <= n; i += 64) {
      std::uint64_t pos = 0, neg = 0;
      for (std::size_t g = 0; g < 64; g += 16) {
        const __m256 lo = _mm256_loadu_ps(x + i + g), hi = _mm256_loadu_ps(x + i + g + 8);
        const auto p = static_cast<std::uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(lo, zero, _CMP_GT_OQ))) |
                       static_cast<std::uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(hi, zero, _CMP_GT_OQ))) << 8;
        const auto m = static_cast<std::uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(lo, zero, _CMP_LT_OQ))) |
                       static_cast<std::uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(hi, zero, _CMP_LT_OQ))) << 8;
        pos |= std::uint64_t{p} << g;
        neg |= std::uint64_t{m} << g;
        a0 = _mm256_add_pd(a0, abs_pd(_mm256_castps256_ps128(lo)));
        a1 = _mm256_add_pd(a1, abs_pd(_mm256_extractf128_ps(lo, 1)));
        a2 = _mm256_add_pd(a2, abs_pd(_mm256_castps256_ps128(hi)));
        a3 = _mm256_add_pd(a3, abs_pd(_mm256_extractf128_ps(hi, 1)));
      }
      positive[i / 64] = pos;
      negative[i / 64] = neg;
    }
    _mm256_storeu_pd(part, a0);
    _mm256_storeu_pd(part + 4, a1);
    _mm256_storeu_pd(part + 8, a2);
    _mm256_storeu_pd(part + 12, a3);
  }
#endif
  for (; i < n; i += 64) {  // (the last word may be partial; lane i mod 16 still)
    const std::size_t width = std::min<std::size_t>(64, n - i);
    std::uint64_t pos = 0, neg = 0;
    for (std::size_t j = 0; j < width; ++j) {
      const float v = x[i + j];
      part[j % lanes] += std::fabs(static_cast<double>(v));
      pos |= std::uint64_t{v > 0.0f} << j;
      neg |= std::uint64_t{v < 0.0f} << j;
    }
    positive[i / 64] = pos;
    negative[i / 64] = neg;
  }
  for (std::size_t width = lanes / 2; width > 0; width /= 2)
    for (std::size_t j = 0; j < width; ++j) part[j] += part[j + width];
  return part[0];
}

/// q[i] = up where bit i of `positive` is set, down where bit i of `negative` is, +0 elsewhere,
/// for the m ≤ 64·(words) positions [first, first + m) with first a multiple of 64 (a chunk of a
/// larger q); and levels[i] = +1 / −1 / 0 alike when `levels` is not null.
inline void write_from_masks(const std::uint64_t* positive, const std::uint64_t* negative, std::size_t first, std::size_t m,
                             float up, float down, float* q, std::int16_t* levels) noexcept {
  std::size_t j = 0;
#if defined(__AVX2__)
  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256 upv = _mm256_set1_ps(up), downv = _mm256_set1_ps(down);
  for (; j + 64 <= m; j += 64) {
    std::uint64_t p = positive[(first + j) / 64], n = negative[(first + j) / 64];
    for (std::size_t g = 0; g < 64; g += 8, p >>= 8, n >>= 8) {
      const __m256i pm = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(p & 0xffu)), bit), bit);
      const __m256i nm = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(n & 0xffu)), bit), bit);
      _mm256_storeu_ps(q + j + g, _mm256_or_ps(_mm256_and_ps(_mm256_castsi256_ps(pm), upv), _mm256_and_ps(_mm256_castsi256_ps(nm), downv)));
      if (levels) {
        // +1 / −1 per lane as 32-bit integers (a set compare is −1), packed to int16
        const __m256i l32 = _mm256_sub_epi32(nm, pm);
        const __m128i l16 = _mm_packs_epi32(_mm256_castsi256_si128(l32), _mm256_extracti128_si256(l32, 1));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(levels + j + g), l16);
      }
    }
  }
#endif
  for (; j < m; ++j) {
    const std::size_t at = first + j;
    const bool p = (positive[at / 64] >> (at % 64)) & 1u;
    const bool n = (negative[at / 64] >> (at % 64)) & 1u;
    q[j] = p ? up : (n ? down : 0.0f);
    if (levels) levels[j] = static_cast<std::int16_t>(static_cast<int>(p) - static_cast<int>(n));
  }
}

/// Writes q[0, n) as write_from_masks(positive, negative, 0, n, up, down, q, nullptr) does, with
/// non-temporal stores (no read for ownership of q's lines: for a q larger than the caches that
/// halves its memory traffic), straight from the masks: 16 lanes a store with AVX-512F, 8 with
/// AVX2, the positions before q's first aligned vector and after its last one one at a time.
/// Returns false, writing nothing, where neither is compiled for. Call _mm_sfence (stream_fence)
/// after it.
inline bool stream_from_masks(const std::uint64_t* positive, const std::uint64_t* negative, std::size_t n, float up,
                              float down, float* q) noexcept {
#if defined(__AVX512F__) || defined(__AVX2__)
#if defined(__AVX512F__)
  constexpr std::size_t width = 16;
#else
  constexpr std::size_t width = 8;
#endif
  auto one = [&](std::size_t at) {
    const bool p = (positive[at / 64] >> (at % 64)) & 1u;
    const bool m = (negative[at / 64] >> (at % 64)) & 1u;
    q[at] = p ? up : (m ? down : 0.0f);
  };
  // `width` mask bits from position `at` on; the word after at's exists while at + width ≤ n
  auto bits_at = [](const std::uint64_t* mask, std::size_t at) {
    const std::size_t word = at / 64, offset = at % 64;
    std::uint64_t b = mask[word] >> offset;
    if (offset > 64 - width) b |= mask[word + 1] << (64 - offset);
    return static_cast<std::uint32_t>(b & ((std::uint64_t{1} << width) - 1));
  };
  constexpr std::size_t align = width * sizeof(float);
  const std::size_t misalign = reinterpret_cast<std::uintptr_t>(q) % align;
  if (misalign % sizeof(float) != 0) return false;
  const std::size_t head = std::min(n, misalign == 0 ? 0 : (align - misalign) / sizeof(float));
  std::size_t at = 0;
  for (; at < head; ++at) one(at);
  DECOPT_AVX512_QUIET_BEGIN
#if defined(__AVX512F__)
  const __m512 upv = _mm512_set1_ps(up), downv = _mm512_set1_ps(down), zero = _mm512_setzero_ps();
  for (; at + width <= n; at += width) {
    const auto p = static_cast<__mmask16>(bits_at(positive, at)), m = static_cast<__mmask16>(bits_at(negative, at));
    _mm512_stream_ps(q + at, _mm512_mask_mov_ps(_mm512_mask_mov_ps(zero, p, upv), m, downv));
  }
#else
  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256 upv = _mm256_set1_ps(up), downv = _mm256_set1_ps(down);
  for (; at + width <= n; at += width) {
    const __m256i pm = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits_at(positive, at))), bit), bit);
    const __m256i nm = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits_at(negative, at))), bit), bit);
    _mm256_stream_ps(q + at, _mm256_or_ps(_mm256_and_ps(_mm256_castsi256_ps(pm), upv), _mm256_and_ps(_mm256_castsi256_ps(nm), downv)));
  }
#endif
  DECOPT_AVX512_QUIET_END
  for (; at < n; ++at) one(at);
  return true;
#else
  (void)positive, (void)negative, (void)n, (void)up, (void)down, (void)q;
  return false;
#endif
}

}  // namespace decopt::detail::sign
