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

}  // namespace decopt::detail
