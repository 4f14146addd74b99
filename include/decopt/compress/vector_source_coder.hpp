// decopt/compress/vector_source_coder.hpp — vector source coding of small integers by their
// frequencies and supports.
//
// Woldemariam, Campbell, Liu, Scaglione et al., "A vector source coding approach to
// communication-efficient decentralized learning" (arXiv 2309.05633, 2023); the coder of
// Malcom-PSGD (arXiv 2311.05760).
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
  /// Largest Golomb parameter accepted from a message (keeps the bit arithmetic in 64 bits).
  static constexpr std::uint64_t max_golomb_parameter = std::uint64_t{1} << 40;

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
    encode_words(levels);
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

  // The run pass over dense levels. Phase A, 64 positions at a time: `free` holds the positions of
  // the word not claimed by lower ranks, and each rank appends its hit mask compacted onto them
  // (pext) to its hit bitmap. A b = 1 Golomb code is unary, so for b = 1 that bitmap, up to the
  // last hit, is the stream itself; phase B Golomb-codes the runs of every other bitmap.
  void encode_words(std::span<const std::int16_t> levels) {
    const std::size_t n = levels.size();
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
    std::int16_t tail[64] = {};
    for (std::size_t base = 0; base < n; base += 64) {
      const std::size_t width = std::min<std::size_t>(64, n - base);
      const std::int16_t* lv = levels.data() + base;
      if (width < 64) {
        std::copy(lv, lv + width, tail);  // zero padding never matches a (non-zero) symbol
        lv = tail;
      }
      const std::uint64_t all = detail::bits::low_mask(static_cast<unsigned>(width));
      std::uint64_t free = all;
      for (std::size_t r = 0; r < word_ranks && free != 0; ++r) {
        if (left_[r] == 0) continue;
        const Rank& rk = ranks_[r];
        const std::uint64_t hits = detail::bits::equal_mask64(lv, static_cast<std::int16_t>(rk.symbol));
        const auto c = static_cast<std::uint64_t>(detail::bits::popcount(hits));
        if (!rk.implied) {
          const auto slots = static_cast<unsigned>(detail::bits::popcount(free));
          const std::uint64_t packed = detail::bits::extract(hits, free);
          // the rank's last hit ends its bitmap (a b = 1 stream stops there)
          const unsigned len = c == left_[r] ? static_cast<unsigned>(64 - std::countl_zero(packed)) : slots;
          if (len == 64) {
            writers[r].append(packed & 0xffffffffu, 32);
            writers[r].append(packed >> 32, 32);
          } else {
            writers[r].append(packed, len);
          }
        }
        free &= ~hits;
        left_[r] -= c;
      }
      if (word_ranks < m) {
        const std::uint64_t taken = all & ~free;
        for (std::uint64_t rest = free & ~detail::bits::equal_mask64(lv, 0); rest != 0; rest &= rest - 1) {
          const int t = std::countr_zero(rest);
          const auto below = static_cast<std::uint64_t>(detail::bits::popcount(taken & detail::bits::low_mask(static_cast<unsigned>(t))));
          suffix_.push_back({base + static_cast<std::uint64_t>(t) - claimed - below, lv[t]});
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
    thread_local std::vector<std::uint64_t> left_free;
    if (suffix && left_free.size() < (n + 63) / 64) left_free.resize((n + 63) / 64);
    std::vector<std::uint64_t> left(m), first(m, 0), taken(m, 0), words(m, 0);
    thread_local std::vector<std::uint64_t> bitmap_scratch;
    std::size_t total_words = 0;
    for (std::size_t r = 0; r < m; ++r) {
      left[r] = ranks[r].count;
      first[r] = total_words;
      if (ranks[r].golomb.b > 1 && !ranks[r].implied) {
        words[r] = static_cast<std::size_t>(ranks[r].remaining / 64 + 3);  // the bits, and two words of zeros to read past them
        total_words += words[r];
      }
    }
    if (bitmap_scratch.size() < total_words) bitmap_scratch.resize(total_words);
    std::uint64_t* bitmaps = bitmap_scratch.data();
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

  // Calls sink(pos, level) once for every non-zero: in ascending position for each symbol (so
  // for one-symbol streams, such as positions, in ascending order), interleaved across symbols.
  // `expected_total` (or max) is the number of non-zeros the caller knows must be there.
  template <class Sink>
  std::size_t decode_runs(std::span<const std::byte> bytes, std::size_t n, int s, std::uint64_t expected_total, Sink&& sink) const {
    BitReader head(bytes);
    const std::uint64_t m = codes::read_elias_gamma(head) - 1;
    if (m > static_cast<std::uint64_t>(2 * s) || m > n) throw DecodeError("VSC: symbol count out of range");
    std::vector<Rank> ranks(static_cast<std::size_t>(m));
    std::vector<std::uint64_t> stream_bytes(ranks.size());
    std::vector<bool> used(static_cast<std::size_t>(2 * s + 1), false);
    std::uint64_t remaining = n, total = 0;
    for (std::size_t r = 0; r < ranks.size(); ++r) {
      const std::uint64_t z = codes::read_elias_gamma(head);
      if (z > static_cast<std::uint64_t>(2 * s)) throw DecodeError("VSC: symbol out of range");
      const int symbol = detail::unzigzag_nonzero(z);
      if (used[static_cast<std::size_t>(symbol + s)]) throw DecodeError("VSC: repeated symbol");
      used[static_cast<std::size_t>(symbol + s)] = true;
      const std::uint64_t count = codes::read_elias_delta(head);
      if (count > remaining) throw DecodeError("VSC: counts exceed the dimension");
      const std::uint64_t b = codes::read_elias_delta(head);
      if (b > max_golomb_parameter) throw DecodeError("VSC: Golomb parameter out of range");
      stream_bytes[r] = codes::read_elias_delta(head) - 1;
      ranks[r] = Rank{symbol, count, remaining, detail::GolombCode(b), count == remaining};
      remaining -= count;
      total += count;
    }
    if (expected_total != std::numeric_limits<std::uint64_t>::max() && total != expected_total)
      throw DecodeError("VSC: wrong number of positions");
    std::size_t offset = head.byte_position();
    std::vector<detail::BitCursor> cursors(ranks.size());
    for (std::size_t r = 0; r < ranks.size(); ++r) {
      if (stream_bytes[r] > bytes.size() - offset) throw DecodeError("VSC: message truncated");
      cursors[r] = detail::BitCursor(bytes.data() + offset, static_cast<std::size_t>(stream_bytes[r]));
      offset += static_cast<std::size_t>(stream_bytes[r]);
    }

    if (total >= n / 32) {  // dense message
      if (!decode_words(n, ranks, cursors, sink)) throw DecodeError("VSC: corrupt run-length stream");
      return offset;
    }
    if (!decode_sparse(n, ranks, cursors, total, sink)) throw DecodeError("VSC: corrupt run-length stream");
    return offset;
  }

  // Sparse decode: per rank a candidate absolute position (see the header comment); emits in
  // ascending position. `total` is the number of non-zeros. Returns false for a corrupt stream.
  template <class Sink>
  static bool decode_sparse(std::size_t n, std::span<const Rank> ranks, std::span<detail::BitCursor> cursors,
                            std::uint64_t total, Sink& sink) {
    constexpr std::uint64_t exhausted = std::numeric_limits<std::uint64_t>::max() / 2;
    const std::size_t mm = ranks.size();
    std::vector<std::uint64_t> cand(mm), rel(mm), left(mm);
    bool bad = false;
    auto next_run = [&](std::size_t r) -> std::uint64_t {
      if (ranks[r].implied) return 0;
      return cursors[r].read_golomb(ranks[r].golomb, ranks[r].remaining / ranks[r].golomb.b + 1);
    };
    for (std::size_t r = 0; r < mm; ++r) {
      left[r] = ranks[r].count;
      rel[r] = next_run(r);
      bad |= rel[r] >= ranks[r].remaining;
      cand[r] = rel[r];
    }
    if (mm == 1) {  // one symbol: relative positions are absolute
      const int symbol = ranks[0].symbol;
      for (std::uint64_t t = 0; t < total && !bad; ++t) {
        sink(static_cast<std::size_t>(rel[0]), symbol);
        if (--left[0] == 0) break;
        rel[0] += next_run(0) + 1;
        bad |= rel[0] >= ranks[0].remaining || cursors[0].overrun();
      }
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
