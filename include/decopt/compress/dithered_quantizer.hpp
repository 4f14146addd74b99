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
// the levels are 0 and σ·2^{j−s}, j = 1…s; a = |v_k|/σ ∈ [2^e, 2^{e+1}) is rounded up to
// 2^{e+1} with probability a/2^e − 1 (its float mantissa), below the smallest level to it or 0
// with probability a·2^{s−1}, so the rounding is unbiased and relative error is bounded by 1/8
// on average. Since the natural path reads exponent and mantissa from float lanes and draws the
// linear path's 24-bit dithers, its levels for a seed differ from those of releases before
// per-group scales (which used a double uniform and frexp per element).
//
// Scale groups (scale_blocks.hpp): with `bucket` = b > 0, every b consecutive values have their
// own σ (QSGD's bucketing); with set_scale_blocks(), every listed block has its own σ and the
// rest share one ("layer-wise" compression). Each group is then quantized as above with its σ.
//
// σ is sent as a float rounded *up* from the exact norm (and, with ScaleFormat::Float16, up to a
// float16) so that s·|v_k|/σ ≤ s; the message carries the σ's, s, the options, and the signed
// integer levels.
#pragma once

#include <algorithm>
#include <bit>
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
#include "decopt/compress/scale_blocks.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/diagnostics.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"

namespace decopt {

/// The scale σ of the dithered quantizer.
enum class Norm : std::uint8_t { L2, Linf };

/// Stochastic rounding to `levels` = s levels per sign. Unbiased.
struct DitheredQuantizer {
  int levels = 4;        ///< s ∈ [1, 32767]
  Norm norm = Norm::L2;  ///< σ = ‖v‖₂ or ‖v‖∞ (of the whole vector, a bucket or a scale block)
  bool natural = false;  ///< power-of-two level spacing instead of uniform
  /// 0: one σ for the whole vector (or per scale block); b > 0: one σ for every b consecutive
  /// values (QSGD's bucket size; CGX uses 128–1024). Only with the Dense sparsifier.
  std::size_t bucket = 0;
  ScaleFormat scale_format = ScaleFormat::Float32;  ///< how each σ is sent
  /// Ranges with a σ of their own, ascending and disjoint (set through set_scale_blocks).
  std::vector<ScaleBlock> scale_blocks{};

  static constexpr std::uint8_t id = message::ids::dithered;
  static constexpr bool always_unbiased = true;
  static constexpr bool uses_seed = true;
  static constexpr bool float_values = false;
  static constexpr int max_levels = 32767;
  /// quantize() throws ConfigError for a non-finite input (its norm pass sees every value), so
  /// Compressor<Dense, DitheredQuantizer, C> skips its own all_finite pass.
  static constexpr bool checks_finite = true;
  static std::string name() { return "Dithered"; }

  /// @throws ConfigError naming the option: levels outside [1, 32767], an unknown norm or scale
  /// format, a bucket beyond message::max_dimension, bucket and scale blocks together, or scale
  /// blocks that are empty, unordered or overlapping.
  void validate() const {
    detail::require(levels >= 1 && levels <= max_levels, "DitheredQuantizer::levels must be in [1, 32767]");
    detail::require(norm == Norm::L2 || norm == Norm::Linf, "DitheredQuantizer::norm must be Norm::L2 or Norm::Linf");
    detail::require(scale_format == ScaleFormat::Float32 || scale_format == ScaleFormat::Float16,
                    "DitheredQuantizer::scale_format must be ScaleFormat::Float32 or ScaleFormat::Float16");
    detail::require(bucket <= message::max_dimension,
                    "DitheredQuantizer::bucket must be at most 2^32 - 2 values (0: one scale for the whole vector)");
    require_one_grouping(scale_blocks);
    detail::check_scale_blocks(scale_blocks, "DitheredQuantizer::scale_blocks");
  }
  [[nodiscard]] bool is_unbiased() const noexcept { return true; }

  /// Gives every listed block [offset, offset + size) of the quantized vector a σ of its own;
  /// every coordinate in no listed block shares one σ. The blocks may come in any order (they
  /// are kept sorted by offset); an empty list restores one σ for the whole vector. Blocks
  /// beyond the dimension of an encoded vector are a ConfigError from encode.
  /// @param blocks non-empty, non-overlapping ranges
  /// @throws ConfigError for an empty or overlapping block, or with `bucket` set
  void set_scale_blocks(std::span<const ScaleBlock> blocks) {
    std::vector<ScaleBlock> sorted(blocks.begin(), blocks.end());
    std::sort(sorted.begin(), sorted.end(), [](const ScaleBlock& a, const ScaleBlock& b) { return a.offset < b.offset; });
    require_one_grouping(sorted);
    detail::check_scale_blocks(sorted, "DitheredQuantizer::set_scale_blocks");
    scale_blocks = std::move(sorted);
  }

  /// Reconstruction magnitudes table[ℓ], ℓ = 0…s, from what the message carries; used by both
  /// sides so that each value is the same float expression. With scale groups sigma = 1 (the
  /// group's σ multiplies table[ℓ]).
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
    blk.levels.resize(n);
    if (bucket != 0 || !scale_blocks.empty()) {
      quantize_groups(x, scale, rng, blk, out);
      return;
    }
    blk.flags = option_flags();
    blk.layout.bucket = 0;
    blk.layout.blocks.clear();
    const float sigma = detail::ScaleLayout::sent_scale(norm_of(x), scale_format);
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
    const bool stream = n >= stream_min;
    with_rule(sigma, [&](const auto& rule) {
      const Table recon{st};
      for_each_dither_block(n, rng, [&](std::size_t at, const float* u, std::size_t m) {
        level_block(x.data() + at, u, m, rule, recon, lv + at, out.data() + at, stream);
      });
    });
    finish_stream(stream);
  }

  void write_params(const detail::LevelBlock& blk, std::vector<std::byte>& out) const {
    out.push_back(static_cast<std::byte>(blk.flags));
    put_varint(out, static_cast<std::uint64_t>(blk.s));
    if (blk.layout.segmented()) {
      blk.layout.write(out, scale_format);
    } else {
      detail::ScaleLayout::write_scale(out, blk.sigma, scale_format);
    }
  }
  /// The levels and options must be this configuration's: s bounds every level, and so the
  /// number of distinct symbols a coder may declare (2s); so must the bucket size. Scale blocks
  /// are read from the message, whatever this configuration's.
  void read_params(ByteReader& in, float scale, detail::LevelBlock& blk) const {
    const auto flags = in.get_le<std::uint8_t>();
    if ((flags & ~listed_flag) != option_flags()) throw DecodeError("DitheredQuantizer: option flags are not this configuration's");
    const std::uint64_t s = in.get_varint();
    if (s != static_cast<std::uint64_t>(levels)) throw DecodeError("DitheredQuantizer: levels are not this configuration's");
    blk.flags = flags;
    blk.s = static_cast<int>(s);
    const bool bucketed = (flags & bucketed_flag) != 0, listed = (flags & listed_flag) != 0;
    if (bucketed && listed) throw DecodeError("DitheredQuantizer: a message with both buckets and scale blocks");
    if (bucketed || listed) {
      blk.layout.read(in, bucketed, scale_format);
      if (bucketed && blk.layout.bucket != bucket) throw DecodeError("DitheredQuantizer: bucket size is not this configuration's");
      blk.sigma = 0.0f;
      build_table(1.0f, blk.s, natural, scale, blk.table);
      if (!std::isfinite(blk.table.back() * blk.layout.max_scale()))
        throw DecodeError("DitheredQuantizer: reconstruction overflows float");
      return;
    }
    blk.layout.bucket = 0;
    blk.layout.blocks.clear();
    blk.sigma = detail::ScaleLayout::read_scale(in, scale_format);
    build_table(blk.sigma, blk.s, natural, scale, blk.table);
    if (!std::isfinite(blk.table.back())) throw DecodeError("DitheredQuantizer: reconstruction overflows float");
  }

 private:
  // The options as the message carries them: bit 0 the ℓ∞ scale, bit 1 natural spacing, bit 2
  // float16 scales, bit 3 buckets; bit 4 (listed_flag) marks a message listing scale blocks.
  static constexpr std::uint8_t bucketed_flag = 8, listed_flag = 16;
  [[nodiscard]] std::uint8_t option_flags() const noexcept {
    return static_cast<std::uint8_t>((norm == Norm::Linf ? 1 : 0) | (natural ? 2 : 0) |
                                     (scale_format == ScaleFormat::Float16 ? 4 : 0) | (bucket != 0 ? bucketed_flag : 0));
  }
  void require_one_grouping(std::span<const ScaleBlock> blocks) const {
    detail::require(bucket == 0 || blocks.empty(),
                    "DitheredQuantizer: bucket and scale blocks cannot be combined (choose per-bucket or per-block scales)");
  }

  // σ as a float no smaller than the exact norm.
  float norm_of(std::span<const float> x) const { return norm == Norm::Linf ? max_magnitude(x) : l2_scale(sum_squares(x)); }
  // max |x_k| (exact); ConfigError for a non-finite value.
  static float max_magnitude(std::span<const float> x) {
    std::uint32_t m0 = 0, m1 = 0, m2 = 0, m3 = 0;
    std::size_t i = 0;
    const std::size_t n = x.size();
    for (; i + 4 <= n; i += 4) {
      m0 = std::max(m0, magnitude_bits(x[i]));
      m1 = std::max(m1, magnitude_bits(x[i + 1]));
      m2 = std::max(m2, magnitude_bits(x[i + 2]));
      m3 = std::max(m3, magnitude_bits(x[i + 3]));
    }
    for (; i < n; ++i) m0 = std::max(m0, magnitude_bits(x[i]));
    const std::uint32_t m = std::max(std::max(m0, m1), std::max(m2, m3));
    detail::require(m < 0x7f800000u, detail::non_finite_input);
    return std::bit_cast<float>(m);
  }
  // Σ x_k² in double (NaN or ∞ for a non-finite value; finite squares of floats cannot overflow).
  static double sum_squares(std::span<const float> x) noexcept {
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
    return (a0 + a1) + (a2 + a3);
  }
  // √sum rounded up to a float; ConfigError for a non-finite input or a norm beyond float.
  static float l2_scale(double sum) {
    const double exact = std::sqrt(sum);
    detail::require(std::isfinite(exact), detail::non_finite_input);
    detail::require(exact <= std::numeric_limits<float>::max(),
                    "DitheredQuantizer: the input's l2 norm overflows float; scale the input down");
    float f = static_cast<float>(exact);
    if (static_cast<double>(f) < exact) f = std::nextafter(f, std::numeric_limits<float>::infinity());
    return f;
  }
  static std::uint32_t magnitude_bits(float v) noexcept { return std::bit_cast<std::uint32_t>(v) & 0x7fffffffu; }

  // The σ of every group of blk.layout, as sent.
  void group_scales(std::span<const float> x, detail::ScaleLayout& layout) const {
    const std::size_t n = x.size();
    const std::size_t groups = layout.group_count(n);
    layout.scales.assign(groups, 0.0f);
    if (norm == Norm::Linf) {
      layout.for_each_range(n, [&](const detail::ScaleRange& r) {
        float& sigma = layout.scales[r.group];
        sigma = std::max(sigma, max_magnitude(x.subspan(r.begin, r.end - r.begin)));
      });
    } else {
      layout.sums.assign(groups, 0.0);
      layout.for_each_range(n, [&](const detail::ScaleRange& r) {
        layout.sums[r.group] += sum_squares(x.subspan(r.begin, r.end - r.begin));
      });
      for (std::size_t g = 0; g < groups; ++g) layout.scales[g] = l2_scale(layout.sums[g]);
    }
    for (float& sigma : layout.scales) sigma = detail::ScaleLayout::sent_scale(sigma, scale_format);
  }

  // Quantization with a σ per bucket or scale block: the dithers are drawn exactly as without
  // groups (one stream over the whole vector), and each dither block is cut where a group ends.
  void quantize_groups(std::span<const float> x, float scale, Rng& rng, detail::LevelBlock& blk, std::span<float> out) const {
    const std::size_t n = x.size();
    const int s = levels;
    detail::ScaleLayout& layout = blk.layout;
    detail::check_scale_blocks(scale_blocks, "DitheredQuantizer::scale_blocks", n);
    layout.bucket = bucket;
    layout.blocks.assign(scale_blocks.begin(), scale_blocks.end());
    blk.flags = static_cast<std::uint8_t>(option_flags() | (bucket == 0 ? listed_flag : 0));
    blk.sigma = 0.0f;
    group_scales(x, layout);
    build_table(1.0f, s, natural, scale, blk.table);
    detail::require(std::isfinite(blk.table[static_cast<std::size_t>(s)] * layout.max_scale()),
                    "DitheredQuantizer: the input's norm times the sparsifier scale overflows float");
    blk.signed_table(1.0f, blk.signed_scratch);
    const float* unit = blk.signed_scratch.data() + s;
    std::int16_t* lv = blk.levels.data();
    const bool stream = n >= stream_min;
    for_each_dither_block(n, rng, [&](std::size_t at, const float* u, std::size_t m) {
      for (detail::ScaleLayout::Cursor c(layout, n, at); at < n && m > 0; c.advance()) {
        const std::size_t len = std::min(c.range().end - at, m);
        const float sigma = layout.scales[c.range().group];
        with_rule(sigma, [&](const auto& rule) {
          level_block(x.data() + at, u, len, rule, Scaled{unit, sigma}, lv + at, out.data() + at, stream);
        });
        at += len;
        u += len;
        m -= len;
      }
    });
    finish_stream(stream);
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

  // A level rule maps a = |x_k| (times its inverse scale) and the dither u_k to ℓ ∈ [0, s], one
  // element at a time (scalar) or in float lanes (v16: AVX-512, v8: AVX2) with the same float
  // operations, so the instruction set does not change a level. `vector`: the lanes forms exist.

  // Uniform spacing: ℓ = min(⌊s|x|/σ + u⌋, s).
  template <class Scale>
  struct Linear {
    Scale scale;
    int s;
    static constexpr bool vector = std::is_same_v<Scale, FloatScale>;
    int scalar(float ax, float u) const noexcept {
      const int l = static_cast<int>(scale(ax) + u);  // a + u ≥ 0: truncation is the floor
      return l > s ? s : l;
    }
    DECOPT_AVX512_QUIET_BEGIN
#if defined(__AVX512F__)
    __m512i v16(__m512 ax, __m512 u) const noexcept {
      const __m512 a = _mm512_add_ps(_mm512_mul_ps(ax, _mm512_set1_ps(scale.inv)), u);
      return _mm512_min_epi32(_mm512_cvttps_epi32(a), _mm512_set1_epi32(s));
    }
#endif
    DECOPT_AVX512_QUIET_END
#if defined(__AVX2__)
    __m256i v8(__m256 ax, __m256 u) const noexcept {
      const __m256 a = _mm256_add_ps(_mm256_mul_ps(ax, _mm256_set1_ps(scale.inv)), u);
      return _mm256_min_epi32(_mm256_cvttps_epi32(a), _mm256_set1_epi32(s));
    }
#endif
  };

  // Natural spacing from the float bits of a = |x|/σ, normalised by 2^64 (so that subnormal a
  // have an exponent too): a ∈ [2^e, 2^{e+1}) is level j = e + s; it rounds up to j + 1 when u
  // is below its mantissa fraction a/2^e − 1 (exact: u is a multiple of 2^−24, the fraction of
  // 2^−23). Below the smallest level (j ≤ 0) ℓ = 1 with probability a·2^{s−1}; a = 0 gives 0;
  // a ≥ 1 gives s.
  template <class Scale>
  struct Natural {
    Scale scale;
    int s;
    float up_low, up_high;  // a·2^{s−1} = (a·up_low)·up_high, each factor a float (s ≤ 149 matters)
    static constexpr bool vector = std::is_same_v<Scale, FloatScale>;
    static constexpr float normalise = 0x1.0p64f;
    static constexpr int bias = 127 + 64;  // exponent field of a·2^64 minus e
    Natural(Scale sc, int levels) noexcept
        : scale(sc), s(levels), up_low(std::ldexp(1.0f, std::min(levels - 1, 64))),
          up_high(std::ldexp(1.0f, std::min(std::max(levels - 1 - 64, 0), 100))) {}
    int scalar(float ax, float u) const noexcept {
      const float a = scale(ax);
      const std::uint32_t bits = std::bit_cast<std::uint32_t>(a * normalise);
      const int j = static_cast<int>(bits >> 23) + (s - bias);
      if (j >= 1 && a != 0.0f) {
        const float fraction = static_cast<float>(bits & 0x7fffffu) * 0x1.0p-23f;
        const int l = j + (u < fraction ? 1 : 0);
        return l > s ? s : l;
      }
      return u < (a * up_low) * up_high ? 1 : 0;
    }
    DECOPT_AVX512_QUIET_BEGIN
#if defined(__AVX512F__)
    __m512i v16(__m512 ax, __m512 u) const noexcept {
      const __m512 a = _mm512_mul_ps(ax, _mm512_set1_ps(scale.inv));
      const __m512i bits = _mm512_castps_si512(_mm512_mul_ps(a, _mm512_set1_ps(normalise)));
      const __m512i j = _mm512_add_epi32(_mm512_srli_epi32(bits, 23), _mm512_set1_epi32(s - bias));
      const __m512 fraction =
          _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(bits, _mm512_set1_epi32(0x7fffff))), _mm512_set1_ps(0x1.0p-23f));
      const __m512i one = _mm512_set1_epi32(1);
      const __m512i above = _mm512_min_epi32(
          _mm512_mask_add_epi32(j, _mm512_cmp_ps_mask(u, fraction, _CMP_LT_OQ), j, one), _mm512_set1_epi32(s));
      const __m512 t = _mm512_mul_ps(_mm512_mul_ps(a, _mm512_set1_ps(up_low)), _mm512_set1_ps(up_high));
      const __m512i below = _mm512_maskz_mov_epi32(_mm512_cmp_ps_mask(u, t, _CMP_LT_OQ), one);
      const __mmask16 nonzero = _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_NEQ_OQ);
      return _mm512_mask_blend_epi32(_mm512_mask_cmpgt_epi32_mask(nonzero, j, _mm512_setzero_si512()), below, above);
    }
#endif
    DECOPT_AVX512_QUIET_END
#if defined(__AVX2__)
    __m256i v8(__m256 ax, __m256 u) const noexcept {
      const __m256 a = _mm256_mul_ps(ax, _mm256_set1_ps(scale.inv));
      const __m256i bits = _mm256_castps_si256(_mm256_mul_ps(a, _mm256_set1_ps(normalise)));
      const __m256i j = _mm256_add_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(s - bias));
      const __m256 fraction =
          _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(bits, _mm256_set1_epi32(0x7fffff))), _mm256_set1_ps(0x1.0p-23f));
      const __m256i up = _mm256_castps_si256(_mm256_cmp_ps(u, fraction, _CMP_LT_OQ));  // −1 where it rounds up
      const __m256i above = _mm256_min_epi32(_mm256_sub_epi32(j, up), _mm256_set1_epi32(s));
      const __m256 t = _mm256_mul_ps(_mm256_mul_ps(a, _mm256_set1_ps(up_low)), _mm256_set1_ps(up_high));
      const __m256i below = _mm256_srli_epi32(_mm256_castps_si256(_mm256_cmp_ps(u, t, _CMP_LT_OQ)), 31);
      const __m256i nonzero = _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_NEQ_OQ));
      const __m256i use_above = _mm256_and_si256(_mm256_cmpgt_epi32(j, _mm256_setzero_si256()), nonzero);
      return _mm256_blendv_epi8(below, above, use_above);
    }
#endif
  };

  // f(rule) with the level rule of this configuration for scale σ > 0 (σ = 0: a rule that maps
  // every finite value to level 0); in double where σ is so small (nearly denormal) that its
  // inverse overflows float.
  template <class F>
  void with_rule(float sigma, F&& f) const {
    const float top = natural ? 1.0f : static_cast<float>(levels);
    const float inv = sigma == 0.0f ? 0.0f : top / sigma;
    if (std::isfinite(inv)) {
      if (natural) {
        f(Natural<FloatScale>(FloatScale{inv}, levels));
      } else {
        f(Linear<FloatScale>{FloatScale{inv}, levels});
      }
      return;
    }
    const DoubleScale wide{static_cast<double>(top) / static_cast<double>(sigma)};
    if (natural) {
      f(Natural<DoubleScale>(wide, levels));
    } else {
      f(Linear<DoubleScale>{wide, levels});
    }
  }

  // Reconstructions: q = st[ℓ] (one σ, already in the table), or q = σ_g·st[ℓ] (a σ per group:
  // the table is for σ = 1), the float product decode forms too (add_scaled_levels).
  struct Table {
    const float* st;
    static constexpr bool scaled = false;
    float sigma() const noexcept { return 1.0f; }
  };
  struct Scaled {
    const float* st;
    float group_sigma;
    static constexpr bool scaled = true;
    float sigma() const noexcept { return group_sigma; }
  };

  // body(at, u, m) for consecutive blocks [at, at + m) of [0, n), m ≤ 512, with their dithers
  // u: two 24-bit dithers per 64-bit draw (Rng::uniform_float_pair), drawn in blocks (eight or
  // four segments of the stream at once where AVX-512 or AVX2 is compiled for:
  // detail::DitherLanes), the sequence of draws that of one element at a time. The blocks come
  // in ascending order within each segment of the stream, not overall.
  template <class Body>
  static void for_each_dither_block(std::size_t n, Rng& rng, Body&& body) {
    constexpr std::size_t block = 512;  // even, so no pair of dithers straddles two blocks
    std::size_t b0 = 0;
#if defined(DECOPT_HAVE_DITHER_LANES)
    using Lanes = detail::DitherLanes;
    static_assert(Lanes::round_elements == block);
    alignas(64) float lane_u[Lanes::lanes * block];
    for (; n - b0 >= Lanes::span_elements; b0 += Lanes::span_elements) {
      Lanes lanes(rng);
      for (std::size_t round = 0; round < Lanes::rounds; ++round) {
        lanes.fill(lane_u);
        for (std::size_t j = 0; j < Lanes::lanes; ++j)
          body(b0 + j * Lanes::segment_elements + round * block, lane_u + j * block, block);
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
      body(b0, static_cast<const float*>(u), m);
    }
  }
  static void finish_stream([[maybe_unused]] bool stream) noexcept {
#if defined(__AVX2__)
    if (stream) _mm_sfence();  // order the non-temporal stores before whatever the caller does next
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
  // The rule is taken by value: a copy of its float parameters cannot alias the float stores to
  // q, so they stay in registers across the loop.
  template <class Rule, class Recon>
  static void level_block(const float* xs, const float* u, std::size_t m, const Rule rule, const Recon& recon,
                          std::int16_t* lvb, float* ob, [[maybe_unused]] bool stream) noexcept {
    std::size_t j = 0;
    [[maybe_unused]] const int s = rule.s;
    const float* st = recon.st;
    DECOPT_AVX512_QUIET_BEGIN
#if defined(__AVX512F__)
    if constexpr (Rule::vector) {
      if (s <= 15) {
        const int entries = 2 * s + 1;  // st[−s … s]
        const __m512 low = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << std::min(entries, 16)) - 1), st - s);
        const __m512 high = _mm512_maskz_loadu_ps(
            static_cast<__mmask16>(entries > 16 ? (1u << (entries - 16)) - 1 : 0), st - s + 16);
        const __m512i top = _mm512_set1_epi32(s);
        const __m512 sigma = _mm512_set1_ps(recon.sigma());
        auto level16 = [&](std::size_t at) noexcept {  // stores 16 levels; returns their values
          const __m512 xv = _mm512_loadu_ps(xs + at);
          const __m512i l = rule.v16(_mm512_abs_ps(xv), _mm512_loadu_ps(u + at));
          const __mmask16 neg = _mm512_cmp_ps_mask(xv, _mm512_setzero_ps(), _CMP_LT_OQ);
          const __m512i sl = _mm512_mask_sub_epi32(l, neg, _mm512_setzero_si512(), l);  // −l where x < 0
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(lvb + at), _mm512_cvtepi32_epi16(sl));
          const __m512 v = _mm512_permutex2var_ps(low, _mm512_add_epi32(sl, top), high);
          if constexpr (Recon::scaled) return _mm512_mul_ps(sigma, v);
          return v;
        };
        j = store_vectors<16>(
            ob, j, m, stream, level16, [](float* p, __m512 v) { _mm512_storeu_ps(p, v); },
            [](float* p, __m512 v) { _mm512_stream_ps(p, v); });
      }
    }
#endif
    DECOPT_AVX512_QUIET_END
#if defined(__AVX2__)
    if constexpr (Rule::vector) {
      const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
      const __m256 sigma = _mm256_set1_ps(recon.sigma());
      auto level8 = [&](std::size_t at) noexcept {  // stores 8 levels; returns their values
        const __m256 xv = _mm256_loadu_ps(xs + at);
        const __m256i l = rule.v8(_mm256_and_ps(xv, magnitude), _mm256_loadu_ps(u + at));
        const __m256i neg = _mm256_castps_si256(_mm256_cmp_ps(xv, _mm256_setzero_ps(), _CMP_LT_OQ));
        const __m256i sl = _mm256_sub_epi32(_mm256_xor_si256(l, neg), neg);  // −l where x < 0
        const __m128i l16 = _mm_packs_epi32(_mm256_castsi256_si128(sl), _mm256_extracti128_si256(sl, 1));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(lvb + at), l16);
        const __m256 v = _mm256_i32gather_ps(st, sl, 4);
        if constexpr (Recon::scaled) return _mm256_mul_ps(sigma, v);
        return v;
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
      int l = rule.scalar(std::fabs(xs[i]), u[i]);
      l = xs[i] < 0.0f ? -l : l;
      lvb[i] = static_cast<std::int16_t>(l);
      if constexpr (Recon::scaled) {
        ob[i] = recon.group_sigma * st[l];
      } else {
        ob[i] = st[l];
      }
    }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  }
};

}  // namespace decopt
