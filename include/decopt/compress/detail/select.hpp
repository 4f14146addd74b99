// decopt/compress/detail/select.hpp — exact top-k selection and seeded uniform subsets, shared by
// TopK, RandTopK and RandomK. Internal: include "decopt/compress/compress.hpp" instead.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <vector>

#include "decopt/compress/detail/pipeline.hpp"
#include "decopt/core/diagnostics.hpp"
#include "decopt/core/finite.hpp"
#include "decopt/core/rng.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace decopt::detail {

/// |x| as an unsigned key that orders like |x| for finite floats (sign bit cleared).
inline std::uint32_t magnitude_key(float x) noexcept {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits & 0x7fffffffu;
}

/// ⌈ratio·d⌉ clamped to [1, d].
inline std::size_t count_for_ratio(double ratio, std::size_t d) noexcept {
  const double k = std::ceil(ratio * static_cast<double>(d));
  if (!(k >= 1.0)) return 1;
  return k >= static_cast<double>(d) ? d : static_cast<std::size_t>(k);
}

/// The indices of the k largest |v_i|, ascending, ties broken by lower index (exact). Throws
/// ConfigError if v holds a non-finite value (its keys are the largest, so the candidate pass's
/// maxima see them), which spares the Compressor a pass of its own.
///
/// Sampling select (Floyd & Rivest's idea): the magnitudes of a fixed random sample give a key
/// `lo` that, with overwhelming probability, at least k entries reach while only slightly more
/// than k do. One pass over v collects those candidates; an introselect on the candidates' keys
/// finds the exact threshold T; a pass over the candidates keeps keys > T and the lowest-index
/// ties at T. If the sample was unlucky (fewer than k candidates) the pass is redone with lo = 0,
/// which is then a plain O(d) selection. The result never depends on the sample — only the speed.
inline void top_k_indices(std::span<const float> v, std::size_t k, std::vector<std::uint32_t>& out, SelectScratch& s) {
  const std::size_t d = v.size();
  out.clear();
  if (k >= d) {
    require(all_finite(v), non_finite_input);
    out.resize(d);
    for (std::size_t i = 0; i < d; ++i) out[i] = static_cast<std::uint32_t>(i);
    return;
  }
  std::uint32_t lo = 0;
  constexpr std::size_t sample_size = 1 << 14;
  if (d >= 16 * sample_size) {
    Rng rng(0x70b6a11ce5ULL ^ d);  // a fixed sample keeps TopK deterministic
    s.sample.resize(sample_size);
    for (auto& key : s.sample) key = magnitude_key(v[rng.below(d)]);
    const double p = static_cast<double>(k) / static_cast<double>(d);
    const double mean = p * sample_size;
    const double margin = 5.0 * std::sqrt(mean * (1.0 - p)) + 8.0;
    const auto rank = static_cast<std::size_t>(std::min(mean + margin, static_cast<double>(sample_size - 1)));
    std::nth_element(s.sample.begin(), s.sample.begin() + static_cast<std::ptrdiff_t>(rank), s.sample.end(), std::greater<>());
    lo = s.sample[rank];
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (s.candidates.size() < d) s.candidates.resize(d);
    std::uint32_t* cand = s.candidates.data();
    std::size_t c = 0;
    const float* x = v.data();
    std::uint32_t largest_key = 0;
    auto keep = [&](std::size_t j) {  // branch-free: store, then advance only for a candidate
      const std::uint32_t key = magnitude_key(x[j]);
      cand[c] = static_cast<std::uint32_t>(j);
      c += key >= lo ? 1u : 0u;
      largest_key = std::max(largest_key, key);
    };
    std::size_t i = 0;
    // Most blocks of 16 hold no candidate: a vectorised test skips them without a store.
    for (; i + 16 <= d; i += 16) {
      std::uint32_t largest = 0;  // a max reduction, which compilers vectorise
      for (std::size_t j = 0; j < 16; ++j) largest = std::max(largest, magnitude_key(x[i + j]));
      largest_key = std::max(largest_key, largest);
      if (largest < lo) continue;
      for (std::size_t j = i; j < i + 16; ++j) keep(j);
    }
    for (; i < d; ++i) keep(i);
    require(largest_key < 0x7f800000u, non_finite_input);  // +inf is the smallest such key
    if (c < k) {  // unlucky sample: every key qualifies on the second attempt
      lo = 0;
      continue;
    }
    s.keys.resize(c);
    for (std::size_t j = 0; j < c; ++j) s.keys[j] = magnitude_key(v[cand[j]]);
    std::nth_element(s.keys.begin(), s.keys.begin() + static_cast<std::ptrdiff_t>(k - 1), s.keys.end(), std::greater<>());
    const std::uint32_t threshold = s.keys[k - 1];
    std::size_t above = 0;
    for (std::size_t j = 0; j < c; ++j) above += s.keys[j] > threshold ? 1u : 0u;
    std::size_t ties = k - above;  // how many entries equal to the threshold to keep, lowest index first
    out.resize(k);
    std::size_t o = 0;
    for (std::size_t j = 0; j < c; ++j) {
      const std::uint32_t key = magnitude_key(v[cand[j]]);
      if (key > threshold) {
        out[o++] = cand[j];
      } else if (key == threshold && ties > 0) {
        out[o++] = cand[j];
        --ties;
      }
    }
    return;
  }
}

/// A uniformly random k-subset of [0, n), ascending (Floyd's algorithm over a bitmap of n bits:
/// O(k) draws plus an O(n/64) scan). Sender and receiver call it with the same generator state.
/// (RandTopK's picks: their order makes the explicit positions ascending. RandomK, whose
/// positions are implicit, uses random_subset_unordered, which makes no pass over n.)
inline void random_subset(Rng& rng, std::size_t n, std::size_t k, std::vector<std::uint32_t>& out,
                          std::vector<std::uint64_t>& bitmap) {
  bitmap.assign((n + 63) / 64, 0);
  for (std::size_t j = n - k; j < n; ++j) {
    const auto t = static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(j) + 1));
    const bool taken = (bitmap[t >> 6] >> (t & 63)) & 1u;
    const std::size_t pick = taken ? j : t;
    bitmap[pick >> 6] |= std::uint64_t{1} << (pick & 63);
  }
  out.clear();
  out.reserve(k);
  for (std::size_t w = 0; w < bitmap.size(); ++w) {
    std::uint64_t bits = bitmap[w];
    while (bits != 0) {
      out.push_back(static_cast<std::uint32_t>(w * 64 + static_cast<std::size_t>(std::countr_zero(bits))));
      bits &= bits - 1;
    }
  }
}

/// Uniform 32-bit draws, two from each 64-bit output of the generator (low half first). Works on
/// a copy of the generator (a local whose state stays in registers: stores through other
/// uint64_t pointers cannot alias it); generator() is where it stands.
class HalfDraws {
 public:
  explicit HalfDraws(const Rng& rng) noexcept : rng_(rng) {}
  [[nodiscard]] const Rng& generator() const noexcept { return rng_; }
  std::uint32_t next() noexcept {
    if (have_high_) {
      have_high_ = false;
      return static_cast<std::uint32_t>(word_ >> 32);
    }
    word_ = rng_.next();
    have_high_ = true;
    return static_cast<std::uint32_t>(word_);
  }
  /// Uniform in [0, bound), bound ≥ 1 (Lemire, "Fast random integer generation in an interval",
  /// ACM TOMACS 2019: a multiply, and a division only in the rare case that may need a redraw).
  std::uint32_t below(std::uint32_t bound) noexcept {
    std::uint64_t m = std::uint64_t{next()} * bound;
    auto low = static_cast<std::uint32_t>(m);
    if (low < bound) {
      const std::uint32_t threshold = (0u - bound) % bound;
      while (low < threshold) {
        m = std::uint64_t{next()} * bound;
        low = static_cast<std::uint32_t>(m);
      }
    }
    return static_cast<std::uint32_t>(m >> 32);
  }
  /// out[i] = below(first_bound + i) for i < m, the same values as m calls in turn. A pending
  /// high half is drawn by a call; then the run's words are drawn first (the generator's serial
  /// chain alone) and the multiplies follow, two a word, independently. Lemire's rare test
  /// (probability bound/2^32 per draw) is then settled draw by draw: the draws before the first
  /// one actually redrawn stand, the generator moves on by their halves, the redrawn one is a call
  /// (which moves every later draw by one half) and the rest is a run again. (At bounds near
  /// 10·2^20, up to a tenth of 64-draw runs hold a redraw.)
  void below_run(std::uint32_t first_bound, std::size_t m, std::uint32_t* out) noexcept {
    constexpr std::size_t max_words = 64;
    std::size_t i = 0;
    while (i < m) {
      if (have_high_) {
        out[i] = below(first_bound + static_cast<std::uint32_t>(i));
        ++i;
        continue;
      }
      const std::size_t pairs = (m - i) / 2, words = (m - i + 1) / 2;
      if (words > max_words) break;
      Rng ahead = rng_;
      std::uint64_t word[max_words];
      for (std::size_t w = 0; w < words; ++w) word[w] = ahead.next();
      const std::uint32_t base = first_bound + static_cast<std::uint32_t>(i);
      std::uint32_t* dst = out + i;
      bool rare = false;
      std::size_t w = 0;
#if defined(__AVX512F__)
      {
        DECOPT_AVX512_QUIET_BEGIN
        // eight words a step: the products of the low halves (even lanes) and of the high halves
        // (odd lanes), whose high 32 bits interleave back into draw order
        const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        __mmask16 low_below = 0;
        for (; w + 8 <= pairs; w += 8) {
          const __m512i v = _mm512_loadu_si512(word + w);
          const __m512i bound = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(base + 2 * w)), lane);
          const __m512i even = _mm512_mul_epu32(v, bound);
          const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(v, 32), _mm512_srli_epi64(bound, 32));
          const __m512i high = _mm512_mask_blend_epi32(0xaaaa, _mm512_srli_epi64(even, 32), odd);
          const __m512i low = _mm512_mask_blend_epi32(0xaaaa, even, _mm512_slli_epi64(odd, 32));
          low_below |= _mm512_cmplt_epu32_mask(low, bound);
          _mm512_storeu_si512(dst + 2 * w, high);
        }
        rare = low_below != 0;
        DECOPT_AVX512_QUIET_END
      }
#endif
      for (; w < pairs; ++w) {
        const std::uint32_t b0 = base + static_cast<std::uint32_t>(2 * w), b1 = b0 + 1;
        const std::uint64_t p0 = (word[w] & 0xffffffffu) * b0, p1 = (word[w] >> 32) * b1;
        rare |= (static_cast<std::uint32_t>(p0) < b0) | (static_cast<std::uint32_t>(p1) < b1);
        dst[2 * w] = static_cast<std::uint32_t>(p0 >> 32);
        dst[2 * w + 1] = static_cast<std::uint32_t>(p1 >> 32);
      }
      if (words > pairs) {  // an odd run ends on a low half
        const std::uint32_t b0 = base + static_cast<std::uint32_t>(2 * pairs);
        const std::uint64_t p0 = (word[pairs] & 0xffffffffu) * b0;
        rare |= static_cast<std::uint32_t>(p0) < b0;
        dst[2 * pairs] = static_cast<std::uint32_t>(p0 >> 32);
      }
      std::size_t redrawn = m - i;  // the first draw of the run that is redrawn, if any
      for (std::size_t h = 0; rare && h < m - i; ++h) {
        const std::uint32_t bound = base + static_cast<std::uint32_t>(h);
        const auto low = static_cast<std::uint32_t>((word[h / 2] >> (32 * (h % 2)) & 0xffffffffu) * bound);
        if (low < bound && low < (0u - bound) % bound) {
          redrawn = h;
          break;
        }
      }
      if (redrawn == m - i) {
        rng_ = ahead;
        if (words > pairs) {  // an odd run leaves its last word's high half pending
          word_ = word[pairs];
          have_high_ = true;
        }
        return;
      }
      for (std::size_t u = 0; u < (redrawn + 1) / 2; ++u) word_ = rng_.next();
      have_high_ = redrawn % 2 == 1;
      i += redrawn;
      out[i] = below(first_bound + static_cast<std::uint32_t>(i));
      ++i;
    }
    for (; i < m; ++i) out[i] = below(first_bound + static_cast<std::uint32_t>(i));
  }

 private:
  Rng rng_;
  std::uint64_t word_ = 0;
  bool have_high_ = false;
};

/// This thread's membership bitmap for random_subset_unordered, of at least n bits, all clear
/// between calls (n/8 bytes per thread for the largest n so far, zeroed once when it grows).
inline std::vector<std::uint64_t>& subset_marks(std::size_t n) {
  thread_local std::vector<std::uint64_t> marks;
  const std::size_t words = (n + 63) / 64;
  if (marks.size() < words) marks.resize(words, 0);
  return marks;
}

/// A uniformly random k-subset of [0, n), 1 ≤ k ≤ n < 2^32, in the order Floyd's algorithm picks
/// it (not sorted): step j ∈ [n−k, n) draws t uniform in [0, j] and takes t, or j if t is already
/// taken (Bentley & Floyd, "A sample of brilliance", CACM 1987). O(k) time and memory traffic: the
/// membership test is this thread's bitmap (subset_marks), of which only the picked words are
/// set and cleared again (by a zeroing in order only where the bitmap is at most 64 bytes a
/// pick), so nothing of size n is scanned. The draws are 32-bit (HalfDraws, a batch at a time:
/// below_run). Sender and receiver call it with the same generator state.
inline void random_subset_unordered(Rng& rng, std::size_t n, std::size_t k, std::vector<std::uint32_t>& out) {
  std::uint64_t* marks = subset_marks(n).data();
  out.resize(k);
  std::uint32_t* picks = out.data();
  HalfDraws draws(rng);
  // A batch of draws (which do not depend on the marks) lands straight in picks and is first
  // taken optimistically: every step takes its draw t_i and marks it, recording in `found`
  // whether t_i's bit was already set (by an earlier batch or an earlier draw of this batch).
  // That pass has no dependence from one test to the next store's address, so its loads overlap
  // (with the vectorised draws, 2^20 bits at 1%: 30 -> 21 µs). Where nothing was found (in all
  // but a fraction of about 32·k/n of the batches) it is Floyd's steps exactly. Otherwise, while every draw is
  // below j0, Floyd's step i differs only in taking j0 + i where t_i was found: the bitmap his
  // steps test differs from the optimistic one only by those j0 + i', which such a draw cannot
  // equal. From the first draw ≥ j0 on (about 32·64/j0 a batch), the optimistic marks are undone
  // and the steps are taken in turn — at once while j0 < 2^16, where that would be frequent.
  constexpr std::size_t batch = 64;  // found's bits
  constexpr std::size_t optimistic_from = std::size_t{1} << 16;
  for (std::size_t j0 = n - k, o = 0; j0 < n; j0 += batch, o += batch) {
    const std::size_t m = std::min(batch, n - j0);
    std::uint32_t* drawn = picks + o;
    draws.below_run(static_cast<std::uint32_t>(j0 + 1), m, drawn);
    std::uint64_t found = 0;  // bit i: t_i's bit was set before step i marked it
    std::size_t low_run = 0;  // optimistic steps [0, low_run) stand, but those found take j0 + i
    if (j0 >= optimistic_from) {
      std::size_t i = 0;
#if defined(__AVX512F__) && defined(__AVX512CD__)
      // 16 draws a step: their mark words gathered (which sees the previous steps' marks) and
      // tested, and a draw equal to an earlier one of the 16 found by a conflict test; the marks
      // themselves are set one by one (a scatter would lose all but one bit of a shared word)
      DECOPT_AVX512_QUIET_BEGIN
      for (; i + 16 <= m; i += 16) {
        const __m512i t = _mm512_loadu_si512(drawn + i);
        const __m512i word_index = _mm512_srli_epi32(t, 6);
        const __m512i bit_index = _mm512_and_si512(t, _mm512_set1_epi32(63));
        const __m512i one = _mm512_set1_epi64(1);
        const __m512i low_words = _mm512_i32gather_epi64(_mm512_castsi512_si256(word_index), marks, 8);
        const __m512i high_words = _mm512_i32gather_epi64(_mm512_extracti64x4_epi64(word_index, 1), marks, 8);
        const __m512i low_bits = _mm512_sllv_epi64(one, _mm512_cvtepu32_epi64(_mm512_castsi512_si256(bit_index)));
        const __m512i high_bits = _mm512_sllv_epi64(one, _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(bit_index, 1)));
        const __m512i earlier_equal = _mm512_conflict_epi32(t);
        const std::uint64_t hit = std::uint64_t{_mm512_test_epi64_mask(low_words, low_bits)} |
                                  std::uint64_t{_mm512_test_epi64_mask(high_words, high_bits)} << 8 |
                                  std::uint64_t{_mm512_test_epi32_mask(earlier_equal, earlier_equal)};
        found |= hit << i;
        for (std::size_t l = i; l < i + 16; ++l) marks[drawn[l] >> 6] |= std::uint64_t{1} << (drawn[l] & 63);
      }
      DECOPT_AVX512_QUIET_END
#endif
      // one draw a step: here the loads are the scalar ones, whose words are worth prefetching
      // first (without, 20–30% slower than before at 10·2^20 bits, a bitmap beyond L1)
      for (std::size_t l = i; l < m; ++l) __builtin_prefetch(marks + (drawn[l] >> 6), 1);
      for (; i < m; ++i) {
        const std::uint32_t t = drawn[i];
        const std::uint64_t word = marks[t >> 6];
        found |= ((word >> (t & 63)) & 1u) << i;
        marks[t >> 6] = word | std::uint64_t{1} << (t & 63);
      }
      if (found == 0) continue;
      while (low_run < m && drawn[low_run] < j0) ++low_run;
      for (std::size_t l = low_run; l < m; ++l) {  // undo: the bits these steps set
        if (((found >> l) & 1u) == 0) marks[drawn[l] >> 6] &= ~(std::uint64_t{1} << (drawn[l] & 63));
      }
    }
    const std::uint64_t low_found = low_run < 64 ? found & ((std::uint64_t{1} << low_run) - 1) : found;
    for (std::uint64_t f = low_found; f != 0; f &= f - 1) {
      const auto l = static_cast<std::size_t>(std::countr_zero(f));
      const auto pick = static_cast<std::uint32_t>(j0 + l);
      marks[pick >> 6] |= std::uint64_t{1} << (pick & 63);
      drawn[l] = pick;
    }
    for (std::size_t l = low_run; l < m; ++l) {
      const std::uint32_t t = drawn[l];
      const bool taken = (marks[t >> 6] >> (t & 63)) & 1u;
      const std::uint32_t pick = taken ? static_cast<std::uint32_t>(j0 + l) : t;
      marks[pick >> 6] |= std::uint64_t{1} << (pick & 63);
      drawn[l] = pick;
    }
  }
  // Each marked word held only picks. Where there are more picks than cache lines of bitmap
  // (ratio above 1/512), zeroing the n/8 bytes in order costs less than k scattered stores and is
  // still O(k): at most 64 bytes per pick (2^20 bits at 1%: 4 µs instead of 18).
  const std::size_t words = (n + 63) / 64;
  if (words * sizeof(std::uint64_t) <= 64 * k) {
    std::fill_n(marks, words, std::uint64_t{0});
  } else {
    for (std::size_t o = 0; o < k; ++o) marks[picks[o] >> 6] = 0;
  }
  rng = draws.generator();
}

}  // namespace decopt::detail
