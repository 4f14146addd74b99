// decopt/compress/detail/add_sink.hpp — the level sink of Compressor::decode_add: acc[pos] +=
// table[level]. Internal: include "decopt/compress/compress.hpp" instead.
//
// A coder calls it once per non-zero, or — where it decodes 64 positions at a time — through a
// Word: once per symbol with the mask of the word's positions holding that symbol. With AVX-512F
// the word's values are merged in registers and added under a mask once; elsewhere each mask is
// an add_mask (a blend with AVX2). Every element gets the same single float addition as the
// scalar form, and positions outside the masks are not touched (a −0.0 stays −0.0).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace decopt::detail {

struct AddSink {
  float* acc;
  const float* table;  ///< table[level], level ∈ [−s, s]

  void operator()(std::size_t pos, int level) const noexcept { acc[pos] += table[level]; }

  /// acc[base + j] += table[level] for every set bit j of `mask` (base + 63 need not exist when
  /// the mask stops short of it: nothing outside the mask is read or written).
  void add_mask(std::size_t base, std::uint64_t mask, int level) const noexcept {
    float* a = acc + base;
    const float w = table[level];
#if defined(__AVX512F__)
    // branch-free: a masked load or store with an empty mask touches nothing (and cannot fault)
    const __m512 wv = _mm512_set1_ps(w);
    for (int i = 0; i < 4; ++i) {
      const auto m = static_cast<__mmask16>(mask >> (16 * i));
      float* p = a + 16 * i;
      _mm512_mask_storeu_ps(p, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), wv));
    }
    return;
#elif defined(__AVX2__)
    if (std::popcount(mask) > 6 && mask >> 63) {  // the word is whole: all 64 floats exist
      const __m256 wv = _mm256_set1_ps(w);
      const __m256i lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
      for (int i = 0; i < 8; ++i) {
        const auto byte = static_cast<int>((mask >> (8 * i)) & 0xffu);
        if (byte == 0) continue;
        const __m256 on = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(byte), lane), lane));
        float* p = a + 8 * i;
        const __m256 x = _mm256_loadu_ps(p);
        _mm256_storeu_ps(p, _mm256_blendv_ps(x, _mm256_add_ps(x, wv), on));
      }
      return;
    }
#endif
    for (; mask != 0; mask &= mask - 1) a[std::countr_zero(mask)] += w;
  }

  /// The additions of one word of 64 positions, symbol by symbol (each position gets at most one):
  /// with AVX-512F the values are merged in registers and the word's floats are loaded, added to
  /// and stored once, instead of once per symbol; elsewhere each put is an add_mask.
  class Word {
   public:
    Word(const AddSink& sink, std::size_t base) noexcept : sink_(sink), base_(base) {}
    void put(std::uint64_t mask, int level) noexcept {
#if defined(__AVX512F__)
      const __m512 w = _mm512_set1_ps(sink_.table[level]);
      for (int i = 0; i < 4; ++i) value_[i] = _mm512_mask_mov_ps(value_[i], static_cast<__mmask16>(mask >> (16 * i)), w);
      any_ |= mask;
#else
      if (mask != 0) sink_.add_mask(base_, mask, level);
#endif
    }
    void finish() noexcept {
#if defined(__AVX512F__)
      float* a = sink_.acc + base_;
      for (int i = 0; i < 4; ++i) {
        const auto m = static_cast<__mmask16>(any_ >> (16 * i));
        _mm512_mask_storeu_ps(a + 16 * i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + 16 * i), value_[i]));
      }
#endif
    }

   private:
    const AddSink& sink_;
    std::size_t base_;
#if defined(__AVX512F__)
    __m512 value_[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    std::uint64_t any_ = 0;
#endif
  };
};

}  // namespace decopt::detail
