// decopt/compress/dithered_quantizer.hpp — QSGD-style stochastic rounding to s levels.
//
// Alistarh, Grubic, Li, Tomioka & Vojnovic, "QSGD: Communication-efficient SGD via gradient
// quantization and encoding", NeurIPS 2017; the quantizer of CHOCO-SGD and Malcom-PSGD.
//
//   σ = ‖v‖₂ or ‖v‖∞,   ℓ_k = ⌊ s·|v_k|/σ + u_k ⌋,  u_k ~ U[0,1) i.i.d.,   Q(v)_k = σ/s · sign(v_k) · ℓ_k
//
// E[Q(v)] = v and, for the ℓ2 scale, E‖Q(v) − v‖² ≤ min(d/s², √d/s)·‖v‖₂² (QSGD Lemma 3.1).
// The ℓ∞ scale uses every level (|ℓ| ≤ s by construction) and has variance ≤ d·σ²/(4s²).
//
// Natural spacing (Horváth et al., "Natural compression for distributed deep learning", 2019):
// the levels are 0 and σ·2^{j−s}, j = 1…s; |v_k|/σ is rounded stochastically and without bias
// to one of its two neighbouring levels, so relative error is bounded by 1/8 on average.
//
// σ is sent as a float rounded *up* from the exact norm so that s·|v_k|/σ ≤ s; the message
// carries σ, s, the options, and the signed integer levels.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "decopt/compress/detail/dither_lanes.hpp"
#include "decopt/compress/detail/pipeline.hpp"
#include "decopt/compress/message.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/diagnostics.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"

namespace decopt {

/// The scale σ of the dithered quantizer.
enum class Norm : std::uint8_t { L2, Linf };

/// Stochastic rounding to `levels` = s levels per sign. Unbiased.
struct DitheredQuantizer {
  int levels = 4;          ///< s ∈ [1, 32767]
  Norm norm = Norm::L2;    ///< σ = ‖v‖₂ or ‖v‖∞
  bool natural = false;    ///< power-of-two level spacing instead of uniform

  static constexpr std::uint8_t id = message::ids::dithered;
  static constexpr bool always_unbiased = true;
  static constexpr bool uses_seed = true;
  static constexpr bool float_values = false;
  static constexpr int max_levels = 32767;
  /// quantize() throws ConfigError for a non-finite input (its norm pass sees every value), so
  /// Compressor<Dense, DitheredQuantizer, C> skips its own all_finite pass.
  static constexpr bool checks_finite = true;
  static std::string name() { return "Dithered"; }

  void validate() const {
    detail::require(levels >= 1 && levels <= max_levels, "DitheredQuantizer::levels must be in [1, 32767]");
    detail::require(norm == Norm::L2 || norm == Norm::Linf, "DitheredQuantizer::norm must be Norm::L2 or Norm::Linf");
  }
  [[nodiscard]] bool is_unbiased() const noexcept { return true; }

  /// Reconstruction magnitudes table[ℓ], ℓ = 0…s, from what the message carries; used by both
  /// sides so that each value is the same float expression.
  static void build_table(float sigma, int s, bool nat, float scale, std::vector<float>& table) {
    table.assign(static_cast<std::size_t>(s) + 1, 0.0f);
    const double base = static_cast<double>(sigma) * static_cast<double>(scale);
    for (int l = 1; l <= s; ++l)
      table[static_cast<std::size_t>(l)] =
          static_cast<float>(nat ? std::ldexp(base, l - s) : base * static_cast<double>(l) / static_cast<double>(s));
  }

  void quantize(std::span<const float> x, float scale, Rng& rng, detail::LevelBlock& blk, std::span<float> out) const {
    const std::size_t n = x.size();
    const int s = levels;
    blk.s = s;
    blk.flags = option_flags();
    blk.levels.resize(n);
    const float sigma = norm_of(x);
    blk.sigma = sigma;
    build_table(sigma, s, natural, scale, blk.table);
    detail::require(std::isfinite(blk.table[static_cast<std::size_t>(s)]),
                    "DitheredQuantizer: the input's norm times the sparsifier scale overflows float");
    blk.signed_table(1.0f, blk.signed_scratch);
    const float* st = blk.signed_scratch.data() + s;
    std::int16_t* lv = blk.levels.data();
    if (sigma == 0.0f) {  // all zeros: nothing to round
      std::fill(lv, lv + n, std::int16_t{0});
      std::fill(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n), 0.0f);
      return;
    }
    if (natural) {
      quantize_natural(x, s, sigma, rng, lv, st, out.data());
      return;
    }
    const float inv = static_cast<float>(s) / sigma;
    if (std::isfinite(inv)) {
      quantize_linear(x, s, rng, lv, st, out.data(), FloatScale{inv});
    } else {  // σ is (nearly) denormal: s/σ overflows float, so scale in double
      quantize_linear(x, s, rng, lv, st, out.data(), DoubleScale{static_cast<double>(s) / static_cast<double>(sigma)});
    }
  }

  void write_params(const detail::LevelBlock& blk, std::vector<std::byte>& out) const {
    out.push_back(static_cast<std::byte>(blk.flags));
    put_varint(out, static_cast<std::uint64_t>(blk.s));
    put_le<float>(out, blk.sigma);
  }
  /// The levels and options must be this configuration's: s bounds every level, and so the
  /// number of distinct symbols a coder may declare (2s).
  void read_params(ByteReader& in, float scale, detail::LevelBlock& blk) const {
    const auto flags = in.get_le<std::uint8_t>();
    if (flags != option_flags()) throw DecodeError("DitheredQuantizer: option flags are not this configuration's");
    const std::uint64_t s = in.get_varint();
    if (s != static_cast<std::uint64_t>(levels)) throw DecodeError("DitheredQuantizer: levels are not this configuration's");
    const float sigma = in.get_le<float>();
    if (!std::isfinite(sigma) || sigma < 0.0f) throw DecodeError("DitheredQuantizer: scale is not a finite non-negative number");
    blk.flags = flags;
    blk.s = static_cast<int>(s);
    blk.sigma = sigma;
    build_table(sigma, blk.s, (flags & 2) != 0, scale, blk.table);
    if (!std::isfinite(blk.table.back())) throw DecodeError("DitheredQuantizer: reconstruction overflows float");
  }

 private:
  // The options as the message carries them: bit 0 the ℓ∞ scale, bit 1 natural spacing.
  [[nodiscard]] std::uint8_t option_flags() const noexcept {
    return static_cast<std::uint8_t>((norm == Norm::Linf ? 1 : 0) | (natural ? 2 : 0));
  }
  // σ as a float no smaller than the exact norm.
  float norm_of(std::span<const float> x) const {
    double exact;
    if (norm == Norm::Linf) {
      std::uint32_t m0 = 0, m1 = 0, m2 = 0, m3 = 0;
      std::size_t i = 0;
      const std::size_t n = x.size();
      for (; i + 4 <= n; i += 4) {
        m0 = std::max(m0, detail_key(x[i]));
        m1 = std::max(m1, detail_key(x[i + 1]));
        m2 = std::max(m2, detail_key(x[i + 2]));
        m3 = std::max(m3, detail_key(x[i + 3]));
      }
      for (; i < n; ++i) m0 = std::max(m0, detail_key(x[i]));
      const std::uint32_t m = std::max(std::max(m0, m1), std::max(m2, m3));
      detail::require(m < 0x7f800000u, detail::non_finite_input);
      float f;
      std::memcpy(&f, &m, sizeof f);
      return f;  // exact
    }
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    std::size_t i = 0;
    const std::size_t n = x.size();
    for (; i + 4 <= n; i += 4) {
      a0 += static_cast<double>(x[i]) * x[i];
      a1 += static_cast<double>(x[i + 1]) * x[i + 1];
      a2 += static_cast<double>(x[i + 2]) * x[i + 2];
      a3 += static_cast<double>(x[i + 3]) * x[i + 3];
    }
    for (; i < n; ++i) a0 += static_cast<double>(x[i]) * x[i];
    exact = std::sqrt((a0 + a1) + (a2 + a3));  // finite squares of floats cannot overflow a double sum
    detail::require(std::isfinite(exact), detail::non_finite_input);
    detail::require(exact <= std::numeric_limits<float>::max(),
                    "DitheredQuantizer: the input's l2 norm overflows float; scale the input down");
    float f = static_cast<float>(exact);
    if (static_cast<double>(f) < exact) f = std::nextafter(f, std::numeric_limits<float>::infinity());
    return f;
  }
  static std::uint32_t detail_key(float v) noexcept {
    std::uint32_t b;
    std::memcpy(&b, &v, sizeof b);
    return b & 0x7fffffffu;
  }

  // Outputs q of at least this many floats (16 MiB: more than the L2 of any current CPU, about
  // an L3) are written with non-temporal stores where a vector level pass runs.
  static constexpr std::size_t stream_min = std::size_t{1} << 22;

  struct FloatScale {
    float inv;
    float operator()(float a) const noexcept { return a * inv; }
  };
  struct DoubleScale {
    double inv;
    float operator()(float a) const noexcept { return static_cast<float>(static_cast<double>(a) * inv); }
  };

  // ℓ = min(⌊a + u⌋, s) with a = s|x|/σ; two 24-bit dithers per 64-bit draw
  // (Rng::uniform_float_pair). Blocks of dithers are drawn first (eight or four segments of the
  // stream at once where AVX-512 or AVX2 is compiled for: detail::DitherLanes), then the levels
  // are computed in a vector loop; the sequence of draws and every float operation are those of
  // one element at a time.
  template <class Scale>
  static void quantize_linear(std::span<const float> x, int s, Rng& rng, std::int16_t* lv, const float* st, float* out,
                              Scale scale_of) noexcept {
    constexpr std::size_t block = 512;  // even, so no pair of dithers straddles two blocks
    const std::size_t n = x.size();
    const bool stream = n >= stream_min;
    std::size_t b0 = 0;
#if defined(DECOPT_HAVE_DITHER_LANES)
    using Lanes = detail::DitherLanes;
    static_assert(Lanes::round_elements == block);
    alignas(64) float lane_u[Lanes::lanes * block];
    for (; n - b0 >= Lanes::span_elements; b0 += Lanes::span_elements) {
      Lanes lanes(rng);
      for (std::size_t round = 0; round < Lanes::rounds; ++round) {
        lanes.fill(lane_u);
        for (std::size_t j = 0; j < Lanes::lanes; ++j) {
          const std::size_t at = b0 + j * Lanes::segment_elements + round * block;
          level_block(x.data() + at, lane_u + j * block, block, s, st, lv + at, out + at, scale_of, stream);
        }
      }
      lanes.advance(rng);
    }
#endif
    alignas(64) float u[block];
    for (; b0 < n; b0 += block) {
      const std::size_t m = std::min(block, n - b0);
      std::size_t j = 0;
      for (; j + 2 <= m; j += 2) {
        const auto [first, second] = rng.uniform_float_pair();
        u[j] = first;
        u[j + 1] = second;
      }
      if (j < m) u[j] = rng.uniform_float();
      level_block(x.data() + b0, u, m, s, st, lv + b0, out + b0, scale_of, stream);
    }
#if defined(__AVX2__)
    if (stream) _mm_sfence();  // order the non-temporal stores before whatever the caller does next
#else
    (void)stream;
#endif
  }

  // ob[at …] = values(at) for whole vectors of `width` floats from j while they fit in m; returns
  // where they stopped. Streaming (from j = 0, m ≥ 2·width): the non-temporal stores need aligned
  // vectors, so the first vector is stored the ordinary way and streaming starts at the first
  // aligned element (the overlap is written twice, with the same values).
  template <std::size_t width, class Values, class Store, class Stream>
  static std::size_t store_vectors(float* ob, std::size_t j, std::size_t m, bool stream, Values&& values, Store&& store,
                                   Stream&& stream_store) noexcept {
    constexpr std::uintptr_t bytes = width * sizeof(float);
    if (stream && j == 0 && m >= 2 * width) {
      store(ob, values(0));
      j = static_cast<std::size_t>((bytes - (reinterpret_cast<std::uintptr_t>(ob) & (bytes - 1))) & (bytes - 1)) / sizeof(float);
      if (j == 0) j = width;
      for (; j + width <= m; j += width) stream_store(ob + j, values(j));
    }
    for (; j + width <= m; j += width) store(ob + j, values(j));
    return j;
  }

  // Levels and reconstructions of m ≤ 512 elements from their dithers: explicit AVX-512 with the
  // reconstruction table in one or two registers (s ≤ 15), else AVX2 with a gather of the table,
  // where compiled for them. `stream`: q is written with non-temporal stores (an output larger
  // than the caches: no read-for-ownership of its lines, which cost as much as the writes). Both
  // vector paths stream; the scalar one does not.
  template <class Scale>
  static void level_block(const float* xs, const float* u, std::size_t m, int s, const float* st, std::int16_t* lvb,
                          float* ob, Scale scale_of, [[maybe_unused]] bool stream) noexcept {
    std::size_t j = 0;
    DECOPT_AVX512_QUIET_BEGIN
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<Scale, FloatScale>) {
      if (s <= 15) {
        const int entries = 2 * s + 1;  // st[−s … s]
        const __m512 low = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << std::min(entries, 16)) - 1), st - s);
        const __m512 high = _mm512_maskz_loadu_ps(
            static_cast<__mmask16>(entries > 16 ? (1u << (entries - 16)) - 1 : 0), st - s + 16);
        const __m512 inv = _mm512_set1_ps(scale_of.inv);
        const __m512i top = _mm512_set1_epi32(s);
        auto level16 = [&](std::size_t at) noexcept {  // stores 16 levels; returns their values
          const __m512 xv = _mm512_loadu_ps(xs + at);
          const __m512 a = _mm512_add_ps(_mm512_mul_ps(_mm512_abs_ps(xv), inv), _mm512_loadu_ps(u + at));
          const __m512i l = _mm512_min_epi32(_mm512_cvttps_epi32(a), top);
          const __mmask16 neg = _mm512_cmp_ps_mask(xv, _mm512_setzero_ps(), _CMP_LT_OQ);
          const __m512i sl = _mm512_mask_sub_epi32(l, neg, _mm512_setzero_si512(), l);  // −l where x < 0
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(lvb + at), _mm512_cvtepi32_epi16(sl));
          return _mm512_permutex2var_ps(low, _mm512_add_epi32(sl, top), high);
        };
        j = store_vectors<16>(
            ob, j, m, stream, level16, [](float* p, __m512 v) { _mm512_storeu_ps(p, v); },
            [](float* p, __m512 v) { _mm512_stream_ps(p, v); });
      }
    }
#endif
    DECOPT_AVX512_QUIET_END
#if defined(__AVX2__)
    if constexpr (std::is_same_v<Scale, FloatScale>) {
      const __m256 inv = _mm256_set1_ps(scale_of.inv);
      const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
      const __m256i top = _mm256_set1_epi32(s);
      auto level8 = [&](std::size_t at) noexcept {  // stores 8 levels; returns their values
        const __m256 xv = _mm256_loadu_ps(xs + at);
        const __m256 a = _mm256_add_ps(_mm256_mul_ps(_mm256_and_ps(xv, magnitude), inv), _mm256_loadu_ps(u + at));
        const __m256i l = _mm256_min_epi32(_mm256_cvttps_epi32(a), top);
        const __m256i neg = _mm256_castps_si256(_mm256_cmp_ps(xv, _mm256_setzero_ps(), _CMP_LT_OQ));
        const __m256i sl = _mm256_sub_epi32(_mm256_xor_si256(l, neg), neg);  // −l where x < 0
        const __m128i l16 = _mm_packs_epi32(_mm256_castsi256_si128(sl), _mm256_extracti128_si256(sl, 1));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(lvb + at), l16);
        return _mm256_i32gather_ps(st, sl, 4);
      };
      j = store_vectors<8>(
          ob, j, m, stream, level8, [](float* p, __m256 v) { _mm256_storeu_ps(p, v); },
          [](float* p, __m256 v) { _mm256_stream_ps(p, v); });
    }
#endif
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push  // GCC 12 warns of overflow in this loop where it is dead (after the
#pragma GCC diagnostic ignored "-Waggressive-loop-optimizations"  // vector loop, with m = 512)
#endif
    for (std::size_t i = j; i < m; ++i) {
      const float a = scale_of(std::fabs(xs[i]));
      int l = static_cast<int>(a + u[i]);  // a + u ≥ 0: truncation is the floor
      l = l > s ? s : l;
      l = xs[i] < 0.0f ? -l : l;
      lvb[i] = static_cast<std::int16_t>(l);
      ob[i] = st[l];
    }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  }

  // |x|/σ lies between two adjacent levels 2^{e−1}, 2^e (or 0 and 2^{1−s}); round up with
  // probability equal to the fractional distance, which keeps the rounding unbiased.
  static void quantize_natural(std::span<const float> x, int s, float sigma, Rng& rng, std::int16_t* lv, const float* st,
                               float* out) noexcept {
    const double inv = 1.0 / static_cast<double>(sigma);
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double xi = std::fabs(static_cast<double>(x[i])) * inv;
      const double u = rng.uniform();
      int l = 0;
      if (xi >= 1.0) {
        l = s;
      } else if (xi > 0.0) {
        int e = 0;
        const double m = std::frexp(xi, &e);  // xi = m·2^e, m ∈ [0.5, 1)
        const int upper = e + s;               // level index of 2^e
        if (upper >= 2) {
          l = (upper - 1) + (u < 2.0 * m - 1.0 ? 1 : 0);
        } else {
          l = u < std::ldexp(xi, s - 1) ? 1 : 0;  // between 0 and the smallest level 2^{1−s}
        }
      }
      l = x[i] < 0.0f ? -l : l;
      lv[i] = static_cast<std::int16_t>(l);
      out[i] = st[l];
    }
  }
};

}  // namespace decopt
