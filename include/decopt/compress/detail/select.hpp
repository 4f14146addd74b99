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
#include "decopt/core/finite.hpp"
#include "decopt/core/rng.hpp"

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
  /// out[i] = below(first_bound + i) for i < m, the same values as m calls in turn. When the run
  /// starts on a fresh 64-bit word, its m/2 words are drawn first (the generator's serial chain
  /// alone) and the multiplies follow independently; a run in which any draw reaches Lemire's
  /// rare redraw test (probability bound/2^32 per draw) is redone call by call instead.
  void below_run(std::uint32_t first_bound, std::size_t m, std::uint32_t* out) noexcept {
    constexpr std::size_t max_words = 32;
    if (!have_high_ && m % 2 == 0 && m <= 2 * max_words) {
      Rng ahead = rng_;
      std::uint64_t words[max_words];
      for (std::size_t w = 0; w < m / 2; ++w) words[w] = ahead.next();
      bool rare = false;
      for (std::size_t i = 0; i < m; ++i) {
        const auto half = static_cast<std::uint32_t>(words[i / 2] >> (32 * (i % 2)));
        const std::uint64_t product = std::uint64_t{half} * (first_bound + static_cast<std::uint32_t>(i));
        rare |= static_cast<std::uint32_t>(product) < first_bound + static_cast<std::uint32_t>(i);
        out[i] = static_cast<std::uint32_t>(product >> 32);
      }
      if (!rare) {
        rng_ = ahead;
        return;
      }
    }
    for (std::size_t i = 0; i < m; ++i) out[i] = below(first_bound + static_cast<std::uint32_t>(i));
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
  // The draws do not depend on the marks, so a batch of them is drawn first and their mark words
  // prefetched: the membership tests then hit the cache instead of waiting on it one by one
  // (the bitmap is n/8 bytes, beyond L1 at n = 2^20). Same draws, same picks, same order.
  constexpr std::size_t batch = 32;
  std::uint32_t drawn[batch];
  for (std::size_t j0 = n - k, o = 0; j0 < n; j0 += batch) {
    const std::size_t m = std::min(batch, n - j0);
    draws.below_run(static_cast<std::uint32_t>(j0 + 1), m, drawn);
    for (std::size_t i = 0; i < m; ++i) __builtin_prefetch(marks + (drawn[i] >> 6), 1);
    for (std::size_t i = 0; i < m; ++i, ++o) {
      const std::uint32_t t = drawn[i];
      const bool taken = (marks[t >> 6] >> (t & 63)) & 1u;
      const std::uint32_t pick = taken ? static_cast<std::uint32_t>(j0 + i) : t;
      marks[pick >> 6] |= std::uint64_t{1} << (pick & 63);
      picks[o] = pick;
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
