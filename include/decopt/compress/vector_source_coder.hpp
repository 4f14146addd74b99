// decopt/compress/vector_source_coder.hpp — vector source coding of small integers by their
// frequencies and supports.
//
// Woldemariam, Liu & Scaglione, "Low-Complexity Vector Source Coding for Discrete Long Sequences
// with Unknown Distributions" (arXiv 2309.05633, 2023): a source code that describes data of an
// unknown distribution by its symbols' frequencies and supports, with Golomb-coded run lengths,
// at a rate near the entropy; the coder of Malcom-PSGD (arXiv 2311.05760).
//
// The m distinct non-zero symbols are listed in decreasing count, each with its count. Then,
// symbol by symbol (rank r = 0…m−1), the positions it occupies are coded among the positions not
// yet claimed by ranks < r, as Golomb-coded run lengths with the parameter chosen for that
// symbol's density p_r = c_r / (n − Σ_{i<r} c_i) (optimal_golomb_parameter, sent with the
// header). Zero is what remains. A rank that fills every remaining position costs nothing. For
// i.i.d. symbols the run lengths of rank r are geometric(p_r), so by the chain rule the size
// approaches n·H(symbols) and predicted_bits() gives it in closed form from the counts.
//
// Layout (bits, LSB-first): γ(m+1); per rank γ(zigzag(symbol)), δ(count), δ(b), δ(bytes+1);
// zero padding to a byte; then the m byte-aligned Golomb streams in rank order.
//
// Encode, dense levels (the dithered case): one histogram pass, then word-major: for each 64
// positions and each rank r, the mask of rank-r symbols is compacted (pext) onto the positions
// still unclaimed by ranks < r; for b = 1 the Golomb code of the runs *is* that compacted bit
// string, so it is written whole; for b > 1 each set bit ends one run (the runs of a chunk of
// words are extracted first, then coded in one loop). O(n/64·m + nnz) with no per-element
// branches. Ranks rarer than one hit per word (a suffix of at most 16) are not visited per word:
// the word loop lists the non-zeros it leaves, and their runs are coded from that list. Sparse
// inputs (explicit positions, or dense levels that are nearly all zero) walk only the non-zeros,
// with per-rank counters of the lower-rank non-zeros: O(nnz·m).
// Decode, dense messages (nnz ≥ n/32): the mirror image. Each b > 1 stream is first expanded into
// its hit bitmap over the rank's free slots (a table turns up to four codewords into their bit
// pattern per lookup); then, 64 positions at a time, each rank's next popcount(free) bitmap bits
// (or b = 1 stream bits) are deposited (pdep) onto the word's free positions, so the accumulator
// is touched once per word (AddSink::Word merges the ranks' values in registers).
// O(n/64·m + nnz). Ranks rarer than one hit per word are left to the sparse decoder below, over
// the positions the others leave free.
// Decode, sparse messages: each rank r keeps a candidate absolute position c_r (its relative
// position plus the lower-rank positions emitted so far, a lower bound); the smallest candidate
// (lowest rank on ties) is exact, is emitted, and every higher rank's candidate moves up by one.
// Zeros cost nothing: decode touches only the non-zero positions of the accumulator.
// Decode, many symbols (large s, or a malformed message): the two decoders above cost O(n/64·m)
// and O(nnz·m) time and the dense one m hit bitmaps, so they are used only for m ≤ 128 word ranks
// with bitmaps of ≤ 32 bits per position, or m ≤ 64 sparse ranks. Otherwise each rank's hits
// are placed in turn by select over the positions still free (a bitmap with a Fenwick tree),
// O(n/64 + nnz·log n) time and n/5 bytes whatever m. Before any of them, the rank list is checked
// against the receiver's n and s and the bytes present (RankReader): decoding a message of B
// bytes costs O(B + n log n) time and, with the word decoder's bitmaps (≤ 4 bytes per position)
// and Golomb tables (32 KiB per 8192 or more codewords: ≤ 4), at most about 8 bytes of scratch
// per position, plus 2s + 1 bits.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "decopt/compress/detail/fast_bits.hpp"
#include "decopt/compress/detail/golomb_run_table.hpp"
#include "decopt/compress/detail/pipeline.hpp"
#include "decopt/compress/detail/positions.hpp"
#include "decopt/compress/detail/word_bits.hpp"
#include "decopt/compress/message.hpp"
#include "decopt/core/bit_stream.hpp"
#include "decopt/core/codes.hpp"
#include "decopt/core/diagnostics.hpp"
#include "decopt/core/error.hpp"

namespace decopt {

/// Frequencies-and-supports coder with per-symbol Golomb run lengths.
class VectorSourceCoder {
 public:
  static constexpr std::uint8_t id = message::ids::vector_source;
  static std::string name() { return "VSC"; }

  void encode_levels(const detail::CodeShape& shape, std::span<const std::int16_t> levels, int s, std::vector<std::byte>& out) {
    const auto bins = static_cast<std::size_t>(2 * s + 1);
    counts_.assign(bins, 0);
    // Very sparse dense-shaped vectors (e.g. ℓ2-scaled dithering) are scanned four zeros at a
    // time; the branch-free pass below pays a store per element and wins only when non-zeros are
    // common. A prefix of the levels decides.
    std::size_t probe_nonzeros = 0;
    const std::size_t probe = std::min<std::size_t>(levels.size(), 4096);
    for (std::size_t j = 0; j < probe; ++j) probe_nonzeros += levels[j] != 0 ? 1u : 0u;
    if (!shape.positions.empty() || probe_nonzeros * 16 < probe) {
      std::uint64_t* counts = counts_.data() + s;
      detail::for_each_nonzero(shape.positions, levels, [counts](std::size_t, int l) { ++counts[l]; });
      encode_runs(shape.n, s, out, [&](auto&& f) { detail::for_each_nonzero(shape.positions, levels, f); });
      return;
    }
    // Dense levels: the histogram, then the word-major run pass.
    dense_histogram(levels, s);
    prepare_ranks(levels.size(), s);
    std::int16_t tail[64] = {};
    encode_words(levels.size(), [&](std::size_t base, std::size_t width) {
      const std::int16_t* lv = levels.data() + base;
      if (width < 64) {
        std::copy(lv, lv + width, tail);  // zero padding never matches a (non-zero) symbol
        lv = tail;
      }
      return LevelWord{lv};
    });
    write_message(out);
  }

  /// The message encode_levels writes for dense levels in {−1, 0, +1} given as bit masks (the
  /// Sign quantizer's: bit j of word w set where level 64w + j is +1 in `positive`, −1 in
  /// `negative`; ⌈n/64⌉ words each, bits past n clear). The same bytes, from n/32 bytes of input.
  void encode_sign_masks(std::size_t n, std::span<const std::uint64_t> positive, std::span<const std::uint64_t> negative,
                         std::vector<std::byte>& out) {
    counts_.assign(3, 0);
    for (const std::uint64_t w : positive) counts_[2] += static_cast<std::uint64_t>(detail::bits::popcount(w));
    for (const std::uint64_t w : negative) counts_[0] += static_cast<std::uint64_t>(detail::bits::popcount(w));
    prepare_ranks(n, 1);
    if (!copy_sign_bitmap(n, positive, negative)) {
      encode_words(n, [&](std::size_t base, std::size_t) { return MaskWord{positive[base / 64], negative[base / 64]}; });
    }
    write_message(out);
  }

  template <class Sink>
  std::size_t decode_levels(std::span<const std::byte> bytes, const detail::CodeShape& shape, int s, Sink&& sink) const {
    return decode_runs(bytes, shape.n, s, std::numeric_limits<std::uint64_t>::max(), sink);
  }

  void encode_positions(const detail::CodeShape& shape, std::vector<std::byte>& out) {
    counts_.assign(3, 0);
    counts_[2] = shape.positions.size();
    encode_runs(shape.n, 1, out, [&](auto&& f) {
      for (const std::uint32_t p : shape.positions) f(static_cast<std::size_t>(p), 1);
    });
  }

  template <class Sink>
  std::size_t decode_positions(std::span<const std::byte> bytes, const detail::CodeShape& shape, Sink&& sink) const {
    return decode_runs(bytes, shape.n, 1, shape.k, [&](std::size_t pos, int) { sink(pos); });
  }

  /// Closed-form expected size in bits of the level payload of a vector of length n whose
  /// distinct non-zero symbols occur `counts` times (any order): the header plus, per rank,
  /// count × the expected Golomb length of a geometric(p_r) run, plus half a byte of padding.
  static double predicted_bits(std::uint64_t n, std::span<const std::uint64_t> counts) {
    std::vector<std::uint64_t> sorted(counts.begin(), counts.end());
    std::erase(sorted, std::uint64_t{0});
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    double bits = codes::elias_gamma_bits(sorted.size() + 1) + 4.0;
    std::uint64_t remaining = n;
    for (std::size_t r = 0; r < sorted.size(); ++r) {
      const std::uint64_t c = sorted[r];
      const double p = static_cast<double>(c) / static_cast<double>(remaining);
      const detail::GolombCode g(codes::optimal_golomb_parameter(p));
      const double stream = c == remaining ? 0.0 : static_cast<double>(c) * g.expected_bits(p) + 4.0;
      bits += codes::elias_gamma_bits(r + 1) + codes::elias_delta_bits(c) + codes::elias_delta_bits(g.b) +
              codes::elias_delta_bits(static_cast<std::uint64_t>(stream / 8.0) + 1) + stream;
      remaining -= c;
    }
    return bits;
  }

 private:
  struct Rank {
    int symbol = 0;
    std::uint64_t count = 0;
    std::uint64_t remaining = 0;  // positions not claimed by lower ranks
    detail::GolombCode golomb;
    bool implied = false;  // fills every remaining position: no stream
  };

  // counts_[l + s] = occurrences of level l ≠ 0 in dense levels (counts_ already sized 2s + 1).
  void dense_histogram(std::span<const std::int16_t> levels, int s) {
    const std::size_t n = levels.size();
    const auto bins = static_cast<std::size_t>(2 * s + 1);
    DECOPT_AVX512_QUIET_BEGIN
#if defined(__AVX512BW__)
    if (s <= 8) {  // few symbols: 64 levels as bytes, compared with each symbol into byte counters
      std::uint64_t c[17] = {};
      const std::size_t whole = n / 64 * 64;
      constexpr std::size_t flush_every = 255 * 64;  // before a byte counter can wrap
      const __m512i one = _mm512_set1_epi8(1);
      for (std::size_t start = 0; start < whole; start += flush_every) {
        __m512i counter[16];
        for (auto& k : counter) k = _mm512_setzero_si512();
        const std::size_t stop = std::min(whole, start + flush_every);
        for (std::size_t base = start; base < stop; base += 64) {
          const __m256i low = _mm512_cvtepi16_epi8(_mm512_loadu_si512(levels.data() + base));
          const __m256i high = _mm512_cvtepi16_epi8(_mm512_loadu_si512(levels.data() + base + 32));
          const __m512i bytes = _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
          for (int l = 1; l <= s; ++l) {
            auto& up = counter[l - 1];
            auto& down = counter[7 + l];
            up = _mm512_mask_add_epi8(up, _mm512_cmpeq_epi8_mask(bytes, _mm512_set1_epi8(static_cast<char>(l))), up, one);
            down = _mm512_mask_add_epi8(down, _mm512_cmpeq_epi8_mask(bytes, _mm512_set1_epi8(static_cast<char>(-l))), down, one);
          }
        }
        for (int l = 1; l <= s; ++l) {
          c[8 + l] += static_cast<std::uint64_t>(_mm512_reduce_add_epi64(_mm512_sad_epu8(counter[l - 1], _mm512_setzero_si512())));
          c[8 - l] += static_cast<std::uint64_t>(_mm512_reduce_add_epi64(_mm512_sad_epu8(counter[7 + l], _mm512_setzero_si512())));
        }
      }
      for (std::size_t j = whole; j < n; ++j) ++c[levels[j] + 8];
      for (int l = -s; l <= s; ++l) counts_[static_cast<std::size_t>(l + s)] = l == 0 ? 0 : c[l + 8];
      return;
    }
#endif
    DECOPT_AVX512_QUIET_END
    // four interleaved tables, so that repeated symbols do not serialise on one counter
    hist_.assign(4 * bins, 0);
    const std::int16_t* lv = levels.data();
    std::uint32_t* h0 = hist_.data() + s;
    std::uint32_t* h1 = h0 + bins;
    std::uint32_t* h2 = h1 + bins;
    std::uint32_t* h3 = h2 + bins;
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
      ++h0[lv[i]];
      ++h1[lv[i + 1]];
      ++h2[lv[i + 2]];
      ++h3[lv[i + 3]];
    }
    for (; i < n; ++i) ++h0[lv[i]];
    for (std::size_t b = 0; b < bins; ++b)
      counts_[b] = std::uint64_t{hist_[b]} + hist_[bins + b] + hist_[2 * bins + b] + hist_[3 * bins + b];
    counts_[static_cast<std::size_t>(s)] = 0;
  }

  // counts_ holds the histogram over [−s, s]; for_each(f) calls f(pos, level) for each non-zero.
  template <class ForEach>
  void encode_runs(std::size_t n, int s, std::vector<std::byte>& out, ForEach&& for_each) {
    prepare_ranks(n, s);
    code_runs(0, for_each);
    write_message(out);
  }

  // Golomb-codes the runs of ranks [first, m): for_each(f) calls f(index, level) for their
  // non-zeros in ascending order, index counted among the positions that ranks < first leave
  // free. A non-zero's index among the positions its own rank may take is that less the
  // non-zeros of lower ranks before it (seen). O(non-zeros · (m − first)).
  template <class ForEach>
  void code_runs(std::size_t first, ForEach&& for_each) {
    const std::size_t m = ranks_.size();
    seen_.assign(m, 0);
    last_.assign(m, std::numeric_limits<std::uint64_t>::max());  // "−1": the first run is rel
    const int s = static_cast<int>(rank_of_.size() / 2);
    const std::uint32_t* rank_of = rank_of_.data() + s;
    std::uint64_t* seen = seen_.data();
    std::uint64_t* last = last_.data();
    const Rank* ranks = ranks_.data();
    detail::WordWriter* streams = streams_.data();
    // seen[r] = non-zeros of rank < r so far; a fixed-trip loop keeps it branch-predictable.
    for_each([&](std::uint64_t index, int l) {
      const std::uint32_t r = rank_of[l];
      const std::uint64_t rel = index - seen[r];
      const std::uint64_t run = rel - last[r] - 1;
      last[r] = rel;
      for (std::size_t j = first; j < m; ++j) seen[j] += j > r ? 1u : 0u;
      if (!ranks[r].implied) ranks[r].golomb.write(streams[r], run);
    });
  }

  // Ranks from counts_ (decreasing count, ties by zigzag order), their Golomb codes, empty streams.
  void prepare_ranks(std::size_t n, int s) {
    ranks_.clear();
    for (int l = -s; l <= s; ++l) {
      const std::uint64_t c = counts_[static_cast<std::size_t>(l + s)];
      if (l != 0 && c > 0) ranks_.push_back(Rank{l, c, 0, {}, false});
    }
    std::sort(ranks_.begin(), ranks_.end(), [](const Rank& a, const Rank& b) {
      return a.count != b.count ? a.count > b.count : detail::zigzag_nonzero(a.symbol) < detail::zigzag_nonzero(b.symbol);
    });
    const std::size_t m = ranks_.size();
    rank_of_.assign(static_cast<std::size_t>(2 * s + 1), 0);
    std::uint64_t remaining = n;
    for (std::size_t r = 0; r < m; ++r) {
      Rank& rk = ranks_[r];
      rk.remaining = remaining;
      rk.implied = rk.count == remaining;
      rk.golomb = detail::GolombCode(
          codes::optimal_golomb_parameter(static_cast<double>(rk.count) / static_cast<double>(remaining)));
      rank_of_[static_cast<std::size_t>(rk.symbol + s)] = static_cast<std::uint32_t>(r);
      remaining -= rk.count;
    }
    if (streams_.size() < m) streams_.resize(m);
    for (std::size_t r = 0; r < m; ++r) streams_[r].clear();
  }

  // encode_sign_masks when both signs are word ranks (at least one hit per word on average: the
  // common case) and the more frequent one has a unary code (b = 1). Rank 0 has every position
  // free, so its stream is its sign's mask up to its last hit, copied; rank 1's bitmap is the
  // other mask compacted (pext) onto the positions rank 0 leaves, Golomb-coded unless b = 1 or
  // implied. Returns false, writing nothing, in every other case, which encode_words codes (the
  // same bytes either way: tested).
  bool copy_sign_bitmap(std::size_t n, std::span<const std::uint64_t> positive, std::span<const std::uint64_t> negative) {
    if (ranks_.empty() || ranks_[0].implied || ranks_[0].golomb.b != 1) return false;
    if (word_rank_count(ranks_, n) != ranks_.size()) return false;
    const bool first_positive = ranks_[0].symbol > 0;
    const std::span<const std::uint64_t> first = first_positive ? positive : negative;
    const std::span<const std::uint64_t> second = first_positive ? negative : positive;
    if (bitmaps_.size() < ranks_.size()) bitmaps_.resize(ranks_.size());
    std::size_t words = first.size();
    while (mask_empty(first, words)) --words;  // (count > 0: some word is set)
    bitmaps_[0].assign(first.begin(), first.begin() + static_cast<std::ptrdiff_t>(words));
    streams_[0].adopt(bitmaps_[0], 64 * (words - 1) + static_cast<std::uint64_t>(64 - std::countl_zero(first[words - 1])));
    if (ranks_.size() == 1 || ranks_[1].implied) return true;
    const Rank& rk = ranks_[1];
    const auto capacity = static_cast<std::size_t>(rk.remaining / 64 + 2);
    if (bitmaps_[1].size() < capacity) bitmaps_[1].resize(capacity);
    detail::BitmapWriter writer(bitmaps_[1].data(), capacity);
    std::uint64_t left = rk.count;
    for (std::size_t w = 0; left > 0; ++w) {
      const std::uint64_t free = ~first[w] & detail::bits::low_mask(static_cast<unsigned>(std::min<std::size_t>(64, n - 64 * w)));
      const std::uint64_t hits = second[w];
      const auto c = static_cast<std::uint64_t>(detail::bits::popcount(hits));
      append_hits(writer, detail::bits::extract(hits, free), c == left, static_cast<unsigned>(detail::bits::popcount(free)));
      left -= c;
    }
    if (rk.golomb.b == 1) {
      streams_[1].adopt(bitmaps_[1], writer.finish());
    } else {
      if (coded_.empty()) coded_.resize(1);
      detail::BitmapGolombEncoder coder(rk.golomb, bitmaps_[1].data(), writer.finish(), rk.count, coded_[0]);
      while (coder.step()) {
      }
      streams_[1].adopt(coded_[0], coder.finish());
    }
    return true;
  }
  static bool mask_empty(std::span<const std::uint64_t> mask, std::size_t words) noexcept { return words > 0 && mask[words - 1] == 0; }
  // Appends a word's hits compacted onto its free positions (`slots` of them) to a rank's hit
  // bitmap; the rank's last hit (`last`) ends the bitmap (a b = 1 stream stops there).
  static void append_hits(detail::BitmapWriter& writer, std::uint64_t packed, bool last, unsigned slots) noexcept {
    const unsigned len = last ? static_cast<unsigned>(64 - std::countl_zero(packed)) : slots;
    if (len == 64) {
      writer.append(packed & 0xffffffffu, 32);
      writer.append(packed >> 32, 32);
    } else {
      writer.append(packed, len);
    }
  }

  // The run pass over dense levels. Phase A, 64 positions at a time: `free` holds the positions of
  // the word not claimed by lower ranks, and each rank appends its hit mask compacted onto them
  // (pext) to its hit bitmap. A b = 1 Golomb code is unary, so for b = 1 that bitmap, up to the
  // last hit, is the stream itself; phase B Golomb-codes the runs of every other bitmap.
  // 64 dense levels for encode_words: the mask of a symbol's positions, of the non-zeros, and the
  // level at a position.
  struct LevelWord {
    const std::int16_t* lv;
    [[nodiscard]] std::uint64_t hits(int symbol) const noexcept { return detail::bits::equal_mask64(lv, static_cast<std::int16_t>(symbol)); }
    [[nodiscard]] std::uint64_t nonzero() const noexcept { return ~detail::bits::equal_mask64(lv, 0); }
    [[nodiscard]] int level(int t) const noexcept { return lv[t]; }
  };
  // The same from sign masks (levels in {−1, 0, +1}).
  struct MaskWord {
    std::uint64_t positive, negative;
    [[nodiscard]] std::uint64_t hits(int symbol) const noexcept { return symbol > 0 ? positive : negative; }
    [[nodiscard]] std::uint64_t nonzero() const noexcept { return positive | negative; }
    [[nodiscard]] int level(int t) const noexcept { return (positive >> t) & 1u ? 1 : -1; }
  };

  // word(base, width) gives the LevelWord or MaskWord of positions [base, base + width), width ≤ 64.
  template <class WordAt>
  void encode_words(std::size_t n, WordAt&& word) {
    const std::size_t m = ranks_.size();
    left_.resize(m);
    if (bitmaps_.size() < m) bitmaps_.resize(m);
    // Ranks rarer than one hit per word (a suffix) are not visited per word: the loop records the
    // non-zeros it leaves free, each by its index among the positions the word ranks leave, and
    // code_runs codes those ranks' runs from that list afterwards (as decode_sparse reads them).
    const std::size_t word_ranks = word_rank_count(ranks_, n);
    std::vector<detail::BitmapWriter> writers;  // Σ slots of a rank ≤ its remaining positions: never full
    writers.reserve(m);
    for (std::size_t r = 0; r < m; ++r) {
      left_[r] = ranks_[r].count;
      const bool bitmap = r < word_ranks && !ranks_[r].implied;
      const std::size_t words = bitmap ? static_cast<std::size_t>(ranks_[r].remaining / 64 + 2) : 0;
      if (bitmaps_[r].size() < words) bitmaps_[r].resize(words);
      writers.emplace_back(bitmaps_[r].data(), words);
    }
    suffix_.clear();
    std::uint64_t claimed = 0;  // positions taken by the word ranks so far
    for (std::size_t base = 0; base < n; base += 64) {
      const std::size_t width = std::min<std::size_t>(64, n - base);
      const auto lv = word(base, width);
      const std::uint64_t all = detail::bits::low_mask(static_cast<unsigned>(width));
      std::uint64_t free = all;
      for (std::size_t r = 0; r < word_ranks && free != 0; ++r) {
        if (left_[r] == 0) continue;
        const Rank& rk = ranks_[r];
        const std::uint64_t hits = lv.hits(rk.symbol);
        const auto c = static_cast<std::uint64_t>(detail::bits::popcount(hits));
        if (!rk.implied) {
          append_hits(writers[r], detail::bits::extract(hits, free), c == left_[r], static_cast<unsigned>(detail::bits::popcount(free)));
        }
        free &= ~hits;
        left_[r] -= c;
      }
      if (word_ranks < m) {
        const std::uint64_t taken = all & ~free;
        for (std::uint64_t rest = free & lv.nonzero(); rest != 0; rest &= rest - 1) {
          const int t = std::countr_zero(rest);
          const auto below = static_cast<std::uint64_t>(detail::bits::popcount(taken & detail::bits::low_mask(static_cast<unsigned>(t))));
          suffix_.push_back({base + static_cast<std::uint64_t>(t) - claimed - below, lv.level(t)});
        }
        claimed += static_cast<std::uint64_t>(detail::bits::popcount(taken));
      }
    }
    code_runs(word_ranks, [&](auto&& f) {
      for (const SuffixHit& hit : suffix_) f(hit.index, hit.level);
    });
    std::vector<std::size_t> coded;  // the b > 1 ranks, Golomb-coded two at a time
    for (std::size_t r = 0; r < word_ranks; ++r) {
      if (ranks_[r].implied) continue;
      if (ranks_[r].golomb.b == 1) {
        streams_[r].adopt(bitmaps_[r], writers[r].finish());
      } else {
        coded.push_back(r);
      }
    }
    if (coded_.size() < 2) coded_.resize(2);
    for (std::size_t j = 0; j < coded.size(); j += 2) {
      const std::size_t ra = coded[j];
      detail::BitmapGolombEncoder a(ranks_[ra].golomb, bitmaps_[ra].data(), writers[ra].finish(), ranks_[ra].count, coded_[0]);
      if (j + 1 < coded.size()) {
        const std::size_t rb = coded[j + 1];
        detail::BitmapGolombEncoder b(ranks_[rb].golomb, bitmaps_[rb].data(), writers[rb].finish(), ranks_[rb].count, coded_[1]);
        detail::BitmapGolombEncoder::encode_pair(a, b);
        streams_[rb].adopt(coded_[1], b.finish());
      } else {
        while (a.step()) {
        }
      }
      streams_[ra].adopt(coded_[0], a.finish());
    }
  }

  void write_message(std::vector<std::byte>& out) {
    const std::size_t m = ranks_.size();
    BitWriter head(out);
    codes::write_elias_gamma(head, m + 1);
    for (std::size_t r = 0; r < m; ++r) {
      codes::write_elias_gamma(head, detail::zigzag_nonzero(ranks_[r].symbol));
      codes::write_elias_delta(head, ranks_[r].count);
      codes::write_elias_delta(head, ranks_[r].golomb.b);
      codes::write_elias_delta(head, streams_[r].byte_count() + 1);
    }
    head.finish();
    for (std::size_t r = 0; r < m; ++r) streams_[r].append_to(out);
  }

  // Dense decode (the mirror of encode_words). Phase 1 expands every b > 1 stream, on its own in a
  // tight loop, into the rank's hit bitmap over the positions lower ranks leave free — the form a
  // b = 1 stream already has (per-thread scratch: one bit per such position). Phase 2 walks the
  // positions 64 at a time: per rank, the next popcount(free) bits of its bitmap (or b = 1 stream)
  // are deposited (pdep) onto the word's free positions; an implied rank takes them all. Returns
  // false for a corrupt stream.
  template <class Sink>
  static bool decode_words(std::size_t n, std::span<const Rank> ranks, std::span<detail::BitCursor> cursors, Sink& sink) {
    // Ranks with fewer hits than words (a suffix: ranks go by decreasing count; at most
    // max_sparse_suffix of them) would cost a visit per word for almost nothing: the word loop
    // leaves their positions free, records what it left, and the sparse decoder places them.
    const std::size_t m = word_rank_count(ranks, n);
    const bool suffix = m < ranks.size();
    DenseScratch& scratch = dense_scratch();
    std::vector<std::uint64_t>& left_free = scratch.left_free;
    if (suffix && left_free.size() < (n + 63) / 64) left_free.resize((n + 63) / 64);
    std::vector<std::uint64_t> left(m), first(m, 0), taken(m, 0), words(m, 0);
    std::size_t total_words = 0;
    for (std::size_t r = 0; r < m; ++r) {
      left[r] = ranks[r].count;
      first[r] = total_words;
      words[r] = bitmap_words(ranks[r]);
      total_words += words[r];
    }
    if (scratch.bitmaps.size() < total_words) scratch.bitmaps.resize(total_words);
    std::uint64_t* bitmaps = scratch.bitmaps.data();
    std::vector<std::optional<detail::GolombTable>> tables(m);
    std::vector<detail::GolombTable::Job> jobs;
    std::vector<std::size_t> job_rank;
    jobs.reserve(m);
    for (std::size_t r = 0; r < m; ++r) {
      const Rank& rk = ranks[r];
      if (words[r] == 0) continue;
      if (rk.count >= table_min_count) tables[r].emplace(rk.golomb);
      jobs.push_back({tables[r] ? &*tables[r] : nullptr, &rk.golomb, rk.remaining / rk.golomb.b + 1, rk.count, cursors[r],
                      detail::BitmapWriter(bitmaps + first[r], words[r] - 2)});
      job_rank.push_back(r);
    }
    for (std::size_t j = 0; j < jobs.size(); j += 2) {  // ranks in pairs: the largest streams together
      if (j + 1 < jobs.size()) {
        detail::GolombTable::run_pair(jobs[j], jobs[j + 1]);
      } else {
        while (jobs[j].step()) {
        }
      }
    }
    for (std::size_t j = 0; j < jobs.size(); ++j) {
      const std::size_t r = job_rank[j];
      cursors[r] = jobs[j].cursor;
      const std::uint64_t used = jobs[j].out.finish();
      if (jobs[j].out.full() || used > ranks[r].remaining || cursors[r].overrun()) return false;
      std::uint64_t* bm = bitmaps + first[r];
      std::fill(bm + static_cast<std::ptrdiff_t>((used + 63) / 64), bm + static_cast<std::ptrdiff_t>(words[r]), std::uint64_t{0});
    }
    bool bad = false;
    constexpr bool by_word = requires { typename Sink::Word; };
    for (std::size_t base = 0; base < n && !bad; base += 64) {
      std::uint64_t free = detail::bits::low_mask(static_cast<unsigned>(std::min<std::size_t>(64, n - base)));
      [[maybe_unused]] auto word = [&] {
        if constexpr (by_word) return typename Sink::Word(sink, base);
        else return 0;
      }();
      for (std::size_t r = 0; r < m && free != 0; ++r) {
        if (left[r] == 0) continue;
        const Rank& rk = ranks[r];
        const auto width = static_cast<unsigned>(detail::bits::popcount(free));
        std::uint64_t hits = 0;
        if (rk.implied) {
          hits = free;
          if (width > left[r]) {
            bad = true;
            break;
          }
          left[r] -= width;
        } else if (rk.golomb.b == 1) {
          hits = take_unary(cursors[r], free, left[r]);
        } else {
          const std::uint64_t at = taken[r];
          if (at / 64 + 1 >= words[r]) {  // more free positions than the rank has: corrupt counts
            bad = true;
            break;
          }
          const std::uint64_t* w = bitmaps + first[r] + at / 64;
          const unsigned shift = at % 64;
          const std::uint64_t bits = (shift == 0 ? w[0] : (w[0] >> shift) | (w[1] << (64 - shift))) & detail::bits::low_mask(width);
          const auto c = static_cast<std::uint64_t>(detail::bits::popcount(bits));
          if (c > left[r]) {
            bad = true;
            break;
          }
          hits = detail::bits::deposit(bits, free);
          left[r] -= c;
          taken[r] = at + width;
        }
        free &= ~hits;
        if constexpr (by_word) {
          word.put(hits, rk.symbol);
        } else {
          for (; hits != 0; hits &= hits - 1) sink(base + static_cast<std::size_t>(std::countr_zero(hits)), rk.symbol);
        }
      }
      if constexpr (by_word) word.finish();
      if (suffix) left_free[base / 64] = free;
    }
    for (std::size_t r = 0; r < m; ++r) bad |= left[r] != 0 || cursors[r].overrun();
    if (bad || !suffix) return !bad;
    // The suffix's positions are indices among the positions left free, ascending: walk the words.
    const std::size_t word_count = (n + 63) / 64;
    std::uint64_t space = 0, hits = 0;
    for (std::size_t w = 0; w < word_count; ++w) space += static_cast<std::uint64_t>(detail::bits::popcount(left_free[w]));
    for (std::size_t r = m; r < ranks.size(); ++r) hits += ranks[r].count;
    if (space != ranks[m].remaining) return false;  // the prefix's counts and streams disagree
    std::size_t w = 0;
    std::uint64_t before = 0;  // free positions in words < w
    auto place = [&](std::size_t index, int symbol) {
      for (auto c = static_cast<std::uint64_t>(detail::bits::popcount(left_free[w])); before + c <= index;
           c = static_cast<std::uint64_t>(detail::bits::popcount(left_free[w]))) {
        before += c;
        ++w;
      }
      sink(w * 64 + static_cast<std::size_t>(detail::bits::select(left_free[w], static_cast<unsigned>(index - before))), symbol);
    };
    return decode_sparse(static_cast<std::size_t>(space), ranks.subspan(m), cursors.subspan(m), hits, place);
  }

  // A b = 1 (unary) stream over the free positions of one word: its next popcount(free) bits are
  // the hit mask compacted onto them, up to the rank's last hit. Peeks are at most 56 bits.
  static std::uint64_t take_unary(detail::BitCursor& cursor, std::uint64_t free, std::uint64_t& left) noexcept {
    std::uint64_t hits = 0;
    while (free != 0) {
      const std::uint64_t part = detail::bits::popcount(free) > 56 ? detail::bits::lowest_set_bits(free, 56) : free;
      const int width = detail::bits::popcount(part);
      std::uint64_t bits = cursor.peek(width);
      const auto c = static_cast<std::uint64_t>(detail::bits::popcount(bits));
      if (c >= left) {  // the rank's last hit: consume up to it and stop
        bits = detail::bits::lowest_set_bits(bits, static_cast<unsigned>(left));
        cursor.skip(64 - std::countl_zero(bits));
        left = 0;
        return hits | detail::bits::deposit(bits, part);
      }
      cursor.skip(width);
      left -= c;
      hits |= detail::bits::deposit(bits, part);
      free &= ~part;
    }
    return hits;
  }

  // Reads a message's rank list one entry at a time, each validated against the receiver's n and
  // s and against the bytes present before anything is allocated or decoded in proportion to
  // what it declares: at most 2s distinct symbols, in the encoder's order (decreasing count, ties
  // by zigzag order), counts ≥ 1 summing to at most n, Golomb parameters ≤ the positions left
  // (the optimal one for density c/remaining is at most remaining/c), and streams of at least one
  // bit per codeword that the bytes hold. Also each entry takes at least four bits, so a symbol
  // count the header cannot hold is refused at once.
  class RankReader {
   public:
    RankReader(std::span<const std::byte> bytes, std::size_t n, int s)
        : head_(bytes), bytes_(bytes.size()), s_(s), remaining_(n), used_(static_cast<std::size_t>(2 * s + 1), false) {
      m_ = codes::read_elias_gamma(head_) - 1;
      if (m_ > static_cast<std::uint64_t>(2 * s) || m_ > n || m_ > head_.remaining() / 4)
        throw DecodeError("VSC: symbol count out of range");
    }
    [[nodiscard]] std::uint64_t size() const noexcept { return m_; }
    /// Where the streams start, once every entry is read.
    [[nodiscard]] std::size_t header_end() const noexcept { return head_.byte_position(); }
    /// Total length of the streams of the entries read so far.
    [[nodiscard]] std::uint64_t stream_bytes() const noexcept { return streams_; }

    /// The next rank; `length` is its stream's length in bytes.
    Rank next(std::uint64_t& length) {
      const std::uint64_t z = codes::read_elias_gamma(head_);
      if (z > static_cast<std::uint64_t>(2 * s_)) throw DecodeError("VSC: symbol out of range");
      const int symbol = detail::unzigzag_nonzero(z);
      if (used_[static_cast<std::size_t>(symbol + s_)]) throw DecodeError("VSC: repeated symbol");
      used_[static_cast<std::size_t>(symbol + s_)] = true;
      const std::uint64_t count = codes::read_elias_delta(head_);
      if (count > remaining_) throw DecodeError("VSC: counts exceed the dimension");
      if (count > previous_count_ || (count == previous_count_ && z < previous_z_)) throw DecodeError("VSC: symbols out of order");
      const std::uint64_t b = codes::read_elias_delta(head_);
      if (b > std::max<std::uint64_t>(1, remaining_)) throw DecodeError("VSC: Golomb parameter out of range");
      length = codes::read_elias_delta(head_) - 1;
      const bool implied = count == remaining_;  // fills every remaining position: no stream
      if (length > bytes_ || (implied ? length != 0 : count > 8 * length))
        throw DecodeError("VSC: stream length does not fit the symbol's count");
      streams_ += length;
      if (streams_ > bytes_) throw DecodeError("VSC: message truncated");
      const Rank rank{symbol, count, remaining_, detail::GolombCode(b), implied};
      remaining_ -= count;
      previous_count_ = count;
      previous_z_ = z;
      return rank;
    }

   private:
    BitReader head_;
    std::size_t bytes_;
    int s_;
    std::uint64_t m_ = 0;
    std::uint64_t remaining_;
    std::uint64_t streams_ = 0;
    std::uint64_t previous_count_ = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t previous_z_ = 0;
    std::vector<bool> used_;  // 2s + 1 bits
  };

  // A message's rank list after a first pass of RankReader: its size and total, where the streams
  // are, and — when there are few enough ranks for the word-parallel or per-non-zero decoders —
  // the ranks and a cursor over each stream. A longer list is not kept: decode_by_select reads it
  // again entry by entry, so no decoder's memory grows with the number of symbols.
  struct Header {
    std::uint64_t m = 0;
    std::uint64_t total = 0;     // non-zeros
    std::size_t streams_at = 0;  // the first stream's byte offset
    std::size_t end = 0;         // bytes used: header and streams
    std::vector<Rank> ranks;
    std::vector<detail::BitCursor> cursors;
  };
  static Header read_header(std::span<const std::byte> bytes, std::size_t n, int s) {
    RankReader reader(bytes, n, s);
    Header h;
    h.m = reader.size();
    const bool listed = h.m <= max_word_ranks + max_sparse_suffix;
    std::vector<std::uint64_t> lengths;
    if (listed) {
      h.ranks.reserve(static_cast<std::size_t>(h.m));
      lengths.reserve(static_cast<std::size_t>(h.m));
    }
    for (std::uint64_t r = 0; r < h.m; ++r) {
      std::uint64_t length;
      const Rank rank = reader.next(length);
      h.total += rank.count;
      if (listed) {
        h.ranks.push_back(rank);
        lengths.push_back(length);
      }
    }
    h.streams_at = reader.header_end();
    if (reader.stream_bytes() > bytes.size() - h.streams_at) throw DecodeError("VSC: message truncated");
    h.end = h.streams_at + static_cast<std::size_t>(reader.stream_bytes());
    std::size_t offset = h.streams_at;
    h.cursors.reserve(lengths.size());
    for (const std::uint64_t length : lengths) {
      h.cursors.emplace_back(bytes.data() + offset, static_cast<std::size_t>(length));
      offset += static_cast<std::size_t>(length);
    }
    return h;
  }

  // Calls sink(pos, level) once for every non-zero: in ascending position for each symbol (so
  // for one-symbol streams, such as positions, in ascending order), interleaved across symbols.
  // `expected_total` (or max) is the number of non-zeros the caller knows must be there.
  // Whatever the bytes, O(bytes + n log n) time and O(n + s) scratch: the decoder is chosen by
  // what its cost would be (choose_decoder).
  template <class Sink>
  std::size_t decode_runs(std::span<const std::byte> bytes, std::size_t n, int s, std::uint64_t expected_total, Sink&& sink) const {
    Header h = read_header(bytes, n, s);
    if (expected_total != std::numeric_limits<std::uint64_t>::max() && h.total != expected_total)
      throw DecodeError("VSC: wrong number of positions");
    bool ok = false;
    switch (h.ranks.size() == h.m ? choose_decoder(n, h.ranks, h.total) : Decoder::select) {
      case Decoder::words: ok = decode_words(n, h.ranks, h.cursors, sink); break;
      case Decoder::sparse: ok = decode_sparse(n, h.ranks, h.cursors, h.total, sink); break;
      case Decoder::select: ok = decode_by_select(bytes, n, s, h.streams_at, sink); break;
    }
    if (!ok) {
      dense_scratch().release();  // a refused message leaves no scratch of its size behind
      throw DecodeError("VSC: corrupt run-length stream");
    }
    return h.end;
  }

  // The word-parallel decoder for dense messages when its cost stays O(n) — at most
  // max_word_ranks ranks visited per word and hit bitmaps of at most 32 bits per position (all of
  // ℓ∞-scaled s ≤ 64 dithering) — the per-non-zero one for sparse messages with at most
  // max_sparse_ranks symbols, and otherwise (many symbols, whether from large s or a malformed
  // message) the select decoder, O(n/64 + non-zeros · log n).
  enum class Decoder { words, sparse, select };
  static Decoder choose_decoder(std::size_t n, std::span<const Rank> ranks, std::uint64_t total) noexcept {
    if (total < n / 32) return ranks.size() <= max_sparse_ranks ? Decoder::sparse : Decoder::select;
    const std::size_t m = word_rank_count(ranks, n);
    if (m > max_word_ranks) return Decoder::select;
    std::uint64_t words = 0;
    for (std::size_t r = 0; r < m; ++r) words += bitmap_words(ranks[r]);
    return words <= n / 2 + 3 * m ? Decoder::words : Decoder::select;
  }
  // Words of the hit bitmap decode_words expands a rank's stream into (b = 1 streams already are
  // one): its bits and two words of zeros to read past them.
  static std::size_t bitmap_words(const Rank& rk) noexcept {
    return rk.golomb.b > 1 && !rk.implied ? static_cast<std::size_t>(rk.remaining / 64 + 3) : 0;
  }

  // The positions not yet claimed by a rank, with select: a bitmap, and a Fenwick tree of the
  // free positions per word (Fenwick, "A new data structure for cumulative frequency tables",
  // 1994), so that finding and clearing the i-th free position costs O(log(n/64)). n/8 + n/16 bytes.
  class FreePositions {
   public:
    explicit FreePositions(std::size_t n) : words_((n + 63) / 64, ~std::uint64_t{0}), tree_(words_.size() + 1, 0) {
      if (n % 64 != 0) words_.back() = detail::bits::low_mask(static_cast<unsigned>(n % 64));
      for (std::size_t k = 1; k < tree_.size(); ++k) {  // O(words) build: each node adds itself to its parent
        tree_[k] += static_cast<std::uint32_t>(detail::bits::popcount(words_[k - 1]));
        const std::size_t parent = k + (k & (0 - k));
        if (parent < tree_.size()) tree_[parent] += tree_[k];
      }
      top_ = std::bit_floor(words_.size());
    }
    /// Clears and returns the i-th (0-based) free position; i must be below the number free.
    std::size_t take(std::uint64_t i) noexcept {
      std::size_t word = 0;  // the words before the one holding it, found top-down
      for (std::size_t step = top_; step != 0; step >>= 1) {
        if (word + step < tree_.size() && tree_[word + step] <= i) {
          word += step;
          i -= tree_[word];
        }
      }
      const int bit = detail::bits::select(words_[word], static_cast<unsigned>(i));
      words_[word] &= ~(std::uint64_t{1} << bit);
      for (std::size_t k = word + 1; k < tree_.size(); k += k & (0 - k)) --tree_[k];
      return word * 64 + static_cast<std::size_t>(bit);
    }
    /// Calls f(position) for each free position, ascending.
    template <class F>
    void for_each(F&& f) const {
      for (std::size_t w = 0; w < words_.size(); ++w)
        for (std::uint64_t bits = words_[w]; bits != 0; bits &= bits - 1) f(w * 64 + static_cast<std::size_t>(std::countr_zero(bits)));
    }

   private:
    std::vector<std::uint64_t> words_;
    std::vector<std::uint32_t> tree_;  // 1-based
    std::size_t top_ = 0;
  };

  // Decodes any message rank by rank, reading the rank list again (read_header validated it):
  // each hit's index among the positions its rank may take, less the hits of that rank already
  // placed, is its index among the positions still free. An implied rank (the last) takes what
  // is left. Returns false for a corrupt stream.
  template <class Sink>
  static bool decode_by_select(std::span<const std::byte> bytes, std::size_t n, int s, std::size_t streams_at, Sink& sink) {
    RankReader reader(bytes, n, s);
    FreePositions free(n);
    std::size_t offset = streams_at;
    for (std::uint64_t r = 0; r < reader.size(); ++r) {
      std::uint64_t length;
      const Rank rk = reader.next(length);
      detail::BitCursor cursor(bytes.data() + offset, static_cast<std::size_t>(length));
      offset += static_cast<std::size_t>(length);
      if (rk.implied) {
        free.for_each([&](std::size_t pos) { sink(pos, rk.symbol); });
        continue;
      }
      const std::uint64_t max_quotient = rk.remaining / rk.golomb.b + 1;
      std::uint64_t rel = 0;
      for (std::uint64_t j = 0; j < rk.count; ++j) {
        const std::uint64_t run = cursor.read_golomb(rk.golomb, max_quotient);
        rel = j == 0 ? run : rel + run + 1;
        if (rel >= rk.remaining || cursor.overrun()) return false;
        sink(free.take(rel - j), rk.symbol);
      }
    }
    return true;
  }

  // Sparse decode: per rank a candidate absolute position (see the header comment); emits in
  // ascending position. `total` is the number of non-zeros. Returns false for a corrupt stream.
  template <class Sink>
  static bool decode_sparse(std::size_t n, std::span<const Rank> ranks, std::span<detail::BitCursor> cursors,
                            std::uint64_t total, Sink& sink) {
    constexpr std::uint64_t exhausted = std::numeric_limits<std::uint64_t>::max() / 2;
    const std::size_t mm = ranks.size();
    std::vector<std::uint64_t> cand(mm), rel(mm), left(mm), max_quotient(mm);
    for (std::size_t r = 0; r < mm; ++r) max_quotient[r] = ranks[r].remaining / ranks[r].golomb.b + 1;  // not a division per run
    bool bad = false;
    auto next_run = [&](std::size_t r) -> std::uint64_t {
      if (ranks[r].implied) return 0;
      return cursors[r].read_golomb(ranks[r].golomb, max_quotient[r]);
    };
    for (std::size_t r = 0; r < mm; ++r) {
      left[r] = ranks[r].count;
      rel[r] = next_run(r);
      bad |= rel[r] >= ranks[r].remaining;
      cand[r] = rel[r];
    }
    if (mm == 1) {  // one symbol: relative positions are absolute
      const Rank& rk = ranks[0];
      // the cursor and the position as locals, so that they stay in registers while the sink stores
      detail::BitCursor cursor = cursors[0];
      std::uint64_t pos = rel[0];
      if (!rk.implied && rk.count >= detail::GolombRunTable::min_codewords && detail::GolombRunTable::useful(rk.golomb)) {
        // TopK-like positions: a codeword per table lookup; a run past the end stops the loop, and
        // a stream read past its end is flagged once after it (the cursor supplies zero bits)
        // (the same reads as one table.read() per codeword, four per refill of the bit buffer)
        const detail::GolombRunTable& table = detail::GolombRunTable::cached(rk.golomb);
        std::uint64_t t = 0;
        for (bool done = total == 0 || bad; !done;) {
          cursor.fill();
          for (int u = 0; u < 4; ++u) {
            sink(static_cast<std::size_t>(pos), rk.symbol);
            if (++t == rk.count) {
              done = true;
              break;
            }
            pos += table.read_buffered(cursor, rk.golomb, max_quotient[0]) + 1;
            bad |= pos >= rk.remaining;
            if (bad || t >= total) {
              done = true;
              break;
            }
          }
        }
      } else {
        for (std::uint64_t t = 0; t < total && !bad; ++t) {
          sink(static_cast<std::size_t>(pos), rk.symbol);
          if (t + 1 == rk.count) break;
          pos += (rk.implied ? 0 : cursor.read_golomb(rk.golomb, max_quotient[0])) + 1;
          bad |= pos >= rk.remaining || cursor.overrun();
        }
      }
      cursors[0] = cursor;
    } else {
      for (std::uint64_t t = 0; t < total && !bad; ++t) {
        std::size_t best = 0;
        std::uint64_t best_c = cand[0];
        for (std::size_t r = 1; r < mm; ++r) {
          if (cand[r] < best_c) {
            best_c = cand[r];
            best = r;
          }
        }
        if (best_c >= n) {  // cannot happen for consistent counts; guards the accumulator anyway
          bad = true;
          break;
        }
        sink(static_cast<std::size_t>(best_c), ranks[best].symbol);
        for (std::size_t r = best + 1; r < mm; ++r) cand[r] += 1;
        if (--left[best] == 0) {
          cand[best] = exhausted;
          continue;
        }
        const std::uint64_t run = next_run(best);
        rel[best] += run + 1;
        cand[best] += run + 1;
        bad |= rel[best] >= ranks[best].remaining;
      }
    }
    for (std::size_t r = 0; r < mm; ++r) bad |= cursors[r].overrun();
    return !bad;
  }

  std::vector<std::uint64_t> counts_;
  std::vector<Rank> ranks_;
  std::vector<std::uint32_t> rank_of_;
  std::vector<detail::WordWriter> streams_;
  std::vector<std::uint64_t> seen_;
  std::vector<std::uint32_t> hist_;
  std::vector<std::uint64_t> last_;
  std::vector<std::uint64_t> left_;
  // decode_words' per-thread scratch, kept for the next message of the same size: the positions
  // the word ranks leave to the sparse suffix, and the hit bitmaps (≤ 32 bits per position).
  struct DenseScratch {
    std::vector<std::uint64_t> left_free;
    std::vector<std::uint64_t> bitmaps;
    void release() noexcept {
      std::vector<std::uint64_t>().swap(left_free);
      std::vector<std::uint64_t>().swap(bitmaps);
    }
  };
  static DenseScratch& dense_scratch() noexcept {
    thread_local DenseScratch scratch;
    return scratch;
  }
  // At most this many ranks are visited per word by decode_words, and at most this many ranks
  // are merged per non-zero by decode_sparse; beyond, decode_by_select.
  static constexpr std::size_t max_word_ranks = 128;
  static constexpr std::size_t max_sparse_ranks = 64;
  // Streams with at least this many codewords are decoded through a GolombTable (its 4096
  // entries cost about as much to build as decoding that many codewords bit by bit).
  static constexpr std::uint64_t table_min_count = 8192;
  // At most this many sparse ranks are left to the sparse coders (their cost is O(hits · ranks)).
  static constexpr std::size_t max_sparse_suffix = 16;
  // The ranks that the word loops visit: all but a suffix of ranks with fewer hits than words.
  static std::size_t word_rank_count(std::span<const Rank> ranks, std::size_t n) noexcept {
    std::size_t m = ranks.size();
    while (m > 0 && ranks.size() - m < max_sparse_suffix && ranks[m - 1].count * 64 < n) --m;
    return m;
  }
  struct SuffixHit {
    std::uint64_t index;  // among the positions the word ranks leave free
    int level;
  };
  std::vector<SuffixHit> suffix_;                    // encode_words: the sparse suffix ranks' hits
  std::vector<std::vector<std::uint64_t>> bitmaps_;  // encode_words: hit bitmaps per rank
  std::vector<std::vector<std::uint64_t>> coded_;    // encode_words: two ranks' Golomb streams
};

}  // namespace decopt
