// The dithered quantizer's scale groups (decopt/compress/scale_blocks.hpp): per-block ("layer-
// wise") and per-bucket scales, float16 scales, and the vectorised natural spacing. Round trips
// are bit-exact, every group is unbiased and within QSGD's variance bound for its own norm, bad
// options are ConfigErrors naming the problem and bad bytes DecodeErrors.
#include <catch2/catch.hpp>

#include <decopt/compress/compress.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "all_pipelines.hpp"

using namespace decopt;
using namespace decopt::test;

namespace {

using DenseVsc = Compressor<Dense, DitheredQuantizer, VectorSourceCoder>;
using DenseRaw = Compressor<Dense, DitheredQuantizer, RawCoder>;
using DenseElias = Compressor<Dense, DitheredQuantizer, EliasCoder>;

// Values whose magnitude changes by 10^k from one stretch of `stretch` elements to the next, so
// that one σ for the whole vector would be wrong for most groups.
std::vector<float> spread(std::size_t d, std::uint64_t seed, std::size_t stretch) {
  auto v = gaussian(d, seed);
  for (std::size_t i = 0; i < d; ++i) v[i] *= static_cast<float>(std::pow(10.0, static_cast<double>((i / stretch) % 4) - 2.0));
  return v;
}

DitheredQuantizer bucketed(int s, Norm norm, std::size_t b, ScaleFormat format, bool natural = false) {
  DitheredQuantizer q{s, norm, natural};
  q.bucket = b;
  q.scale_format = format;
  return q;
}

DitheredQuantizer with_blocks(int s, Norm norm, std::vector<ScaleBlock> blocks, bool natural = false) {
  DitheredQuantizer q{s, norm, natural};
  q.set_scale_blocks(blocks);
  return q;
}

// decode_add into zeros reproduces encode's q bit for bit.
template <class P>
void require_round_trip(P& c, const std::vector<float>& v, std::uint64_t seed) {
  std::vector<float> q(v.size()), acc(v.size(), 0.0f);
  std::vector<std::byte> msg;
  Rng rng(seed);
  c.encode(v, rng, msg, q);
  c.decode_add(msg, 1.0f, acc);
  REQUIRE(std::memcmp(acc.data(), q.data(), q.size() * sizeof(float)) == 0);
}

// The ℓ2 norm of v[b, e) rounded up to a float (the σ the quantizer uses before a float16).
double l2(const std::vector<float>& v, std::size_t b, std::size_t e) {
  double sum = 0.0;
  for (std::size_t i = b; i < e; ++i) sum += static_cast<double>(v[i]) * v[i];
  return std::sqrt(sum);
}

template <class P>
concept with_scale_blocks = requires(P& p, std::span<const ScaleBlock> b) { p.set_scale_blocks(b); };

}  // namespace

TEST_CASE("scale groups: decode_add reproduces encode's q bit for bit", "[compress][scale_groups]") {
  const std::size_t span = std::size_t{1} << 18;  // DitherLanes' span: blocks arrive out of order beyond it
  for (const std::size_t d : {std::size_t{1}, std::size_t{1000}, span + 777, 2 * span + 5}) {
    const auto v = spread(d, d, 300);
    const std::vector<ScaleBlock> blocks = {{d / 2, d - d / 2}, {d / 7, d / 5 - d / 7 + 1}, {0, std::max<std::size_t>(d / 9, 1)}};
    std::vector<ScaleBlock> disjoint;
    for (const ScaleBlock& b : blocks)  // d = 1 makes some of them coincide: keep the first
      if (std::none_of(disjoint.begin(), disjoint.end(), [&](const ScaleBlock& o) { return b.offset < o.offset + o.size && o.offset < b.offset + b.size; }) && b.size > 0)
        disjoint.push_back(b);
    for (const Norm norm : {Norm::L2, Norm::Linf}) {
      for (const bool natural : {false, true}) {
        for (const int s : {3, 15, 40}) {
          CAPTURE(d, static_cast<int>(norm), natural, s);
          DenseVsc vsc({}, with_blocks(s, norm, disjoint, natural));
          require_round_trip(vsc, v, 1);
          DenseRaw raw({}, with_blocks(s, norm, disjoint, natural));
          require_round_trip(raw, v, 2);
          for (const std::size_t b : {std::size_t{1}, std::size_t{128}, std::size_t{512}}) {
            for (const ScaleFormat format : {ScaleFormat::Float32, ScaleFormat::Float16}) {
              if (b == 1 && d > 1000) continue;
              CAPTURE(b, static_cast<int>(format));
              DenseVsc bv({}, bucketed(s, norm, b, format, natural));
              require_round_trip(bv, v, 3);
              DenseElias be({}, bucketed(s, norm, b, format, natural));
              require_round_trip(be, v, 4);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("scale groups: every group is quantized with its own norm", "[compress][scale_groups]") {
  // Four stretches of 256 values 10^-2 … 10^1 in size: with one σ the small ones would round to
  // 0 or to σ/s ≫ their norm; with a σ per group every |q_i| is at most its group's norm.
  const std::size_t d = 1024;
  const auto v = spread(d, 5, 256);
  const std::vector<ScaleBlock> blocks = {{0, 256}, {512, 256}};  // the rest: [256, 512) ∪ [768, 1024)
  DenseVsc by_block({}, with_blocks(8, Norm::L2, blocks));
  DenseVsc by_bucket({}, bucketed(8, Norm::L2, 256, ScaleFormat::Float16));
  std::vector<float> q(d);
  std::vector<std::byte> msg;
  Rng rng(9);
  by_block.encode(v, rng, msg, q);
  const double rest = std::hypot(l2(v, 256, 512), l2(v, 768, 1024));
  for (std::size_t i = 0; i < d; ++i) {
    const double bound = i < 256 ? l2(v, 0, 256) : (i >= 512 && i < 768) ? l2(v, 512, 768) : rest;
    REQUIRE(std::fabs(q[i]) <= bound * (1 + 1e-6));
  }
  msg.clear();
  by_bucket.encode(v, rng, msg, q);
  for (std::size_t i = 0; i < d; ++i) {
    const std::size_t g = i / 256;
    REQUIRE(std::fabs(q[i]) <= l2(v, 256 * g, 256 * g + 256) * (1 + 1.0 / 1024));  // float16 rounds σ up by < 2^-10
  }
}

TEST_CASE("scale groups: unbiased, and within QSGD's variance bound per bucket", "[compress][scale_groups]") {
  // Per coordinate the error is a two-point variable with variance (σ_g/s)²·p(1 − p) ≤ (σ_g/s)²/4;
  // per bucket E‖Q − v‖² ≤ min(b/s², √b/s)·‖v_b‖² (QSGD Lemma 3.1, σ_g = ‖v_b‖₂ rounded up,
  // float16 scales by less than 2^-10). The means over T draws are checked to 5 standard errors.
  const int trials = 4000;
  for (const std::size_t b : {std::size_t{128}, std::size_t{512}}) {
    for (const ScaleFormat format : {ScaleFormat::Float32, ScaleFormat::Float16}) {
      for (const int s : {1, 4}) {
        CAPTURE(b, static_cast<int>(format), s);
        const std::size_t d = 4 * b + b / 2;  // a short last bucket too
        const auto v = spread(d, 31, b);
        const std::size_t groups = (d + b - 1) / b;
        DenseRaw c({}, bucketed(s, Norm::L2, b, format));
        std::vector<double> mean(d, 0.0), sq_error(groups, 0.0), sq_error_sq(groups, 0.0);
        std::vector<float> q(d);
        std::vector<std::byte> msg;
        Rng rng(77);
        for (int t = 0; t < trials; ++t) {
          msg.clear();
          c.encode(v, rng, msg, q);
          std::vector<double> e(groups, 0.0);
          for (std::size_t i = 0; i < d; ++i) {
            mean[i] += q[i];
            e[i / b] += (static_cast<double>(q[i]) - v[i]) * (static_cast<double>(q[i]) - v[i]);
          }
          for (std::size_t g = 0; g < groups; ++g) {
            sq_error[g] += e[g];
            sq_error_sq[g] += e[g] * e[g];
          }
        }
        for (std::size_t g = 0; g < groups; ++g) {
          const std::size_t begin = g * b, end = std::min(d, begin + b);
          const double n = static_cast<double>(end - begin);
          const double norm = l2(v, begin, end), sigma = norm * (1 + 1.0 / 1024);
          for (std::size_t i = begin; i < end; ++i) {
            const double tolerance = 5.0 * (sigma / s / 2.0) / std::sqrt(static_cast<double>(trials)) + 1e-7 * sigma;
            REQUIRE(std::fabs(mean[i] / trials - v[i]) <= tolerance);
          }
          const double m = sq_error[g] / trials;
          const double standard_error = std::sqrt(std::max(0.0, sq_error_sq[g] / trials - m * m) / trials);
          const double bound = std::min(n / (s * s), std::sqrt(n) / s) * sigma * sigma;
          CAPTURE(g, m, bound, standard_error);
          REQUIRE(m <= bound + 5.0 * standard_error);
        }
      }
    }
  }
}

TEST_CASE("scale blocks: unbiased per block, natural spacing too", "[compress][scale_groups][natural]") {
  const std::size_t d = 600;
  const auto v = spread(d, 41, 100);
  const std::vector<ScaleBlock> blocks = {{100, 100}, {350, 50}};
  const int trials = 6000;
  for (const bool natural : {false, true}) {
    for (const Norm norm : {Norm::L2, Norm::Linf}) {
      CAPTURE(natural, static_cast<int>(norm));
      const DitheredQuantizer quantizer = with_blocks(6, norm, blocks, natural);
      DenseRaw c({}, quantizer);
      // each value's σ, as the quantizer sends it (the scales are deterministic: no dither)
      std::vector<double> sigma(d);
      {
        detail::LevelBlock block;
        std::vector<float> out(d);
        Rng any(1);
        quantizer.quantize(v, 1.0f, any, block, out);
        block.layout.for_each_range(d, [&](const detail::ScaleRange& r) {
          for (std::size_t i = r.begin; i < r.end; ++i) sigma[i] = block.layout.scales[r.group];
        });
      }
      std::vector<double> mean(d, 0.0);
      std::vector<float> q(d);
      std::vector<std::byte> msg;
      Rng rng(3);
      for (int t = 0; t < trials; ++t) {
        msg.clear();
        c.encode(v, rng, msg, q);
        for (std::size_t i = 0; i < d; ++i) mean[i] += q[i];
      }
      for (std::size_t i = 0; i < d; ++i) {
        // q_i takes the two levels around v_i, so its s.d. is at most half their distance: σ/s
        // (uniform), at most |v_i| or the smallest level σ·2^{1−s} (natural)
        const double gap = natural ? std::max<double>(std::fabs(v[i]), sigma[i] * std::ldexp(1.0, 1 - 6)) : sigma[i] / 6;
        const double tolerance = 5.0 * (gap / 2.0) / std::sqrt(static_cast<double>(trials)) + 1e-6 * std::fabs(v[i]);
        CAPTURE(i, v[i], sigma[i]);
        REQUIRE(std::fabs(mean[i] / trials - v[i]) <= tolerance);
      }
    }
  }
}

TEST_CASE("natural spacing: the vector kernels round exactly as the scalar rule", "[compress][natural]") {
  // Reference: the dithers u_{2k}, u_{2k+1} of draw k, and the rule on the float bits of
  // a = |x|·(1/σ): a ∈ [2^e, 2^{e+1}) is level e + s, up one when u < mantissa fraction;
  // below the smallest level, 1 when u < a·2^{s−1}. Inputs span many binades and hold zeros.
  const std::size_t span = std::size_t{1} << 18;
  for (const std::size_t n : {std::size_t{1}, std::size_t{513}, span - 1, span + 1, 2 * span + 777}) {
    auto v = gaussian(n, n + 3);
    for (std::size_t i = 0; i < n; ++i) v[i] *= static_cast<float>(std::pow(2.0, -static_cast<double>(i % 40)));
    for (std::size_t i = 5; i < n; i += 17) v[i] = 0.0f;  // (v[0] ≠ 0: an all-zero input draws nothing)
    for (const int s : {1, 4, 8, 15, 16, 40, 200}) {
      CAPTURE(n, s);
      const DitheredQuantizer quantizer{s, Norm::Linf, true};
      detail::LevelBlock block;
      std::vector<float> q(n);
      Rng rng(n + static_cast<std::uint64_t>(s));
      quantizer.quantize(v, 1.0f, rng, block, q);
      Rng reference(n + static_cast<std::uint64_t>(s));
      const float inv = 1.0f / block.sigma;
      std::size_t mismatches = 0;
      for (std::size_t k = 0; k < n; k += 2) {
        const std::uint64_t r = reference.next();
        const float u2[2] = {static_cast<float>(r >> 40) * 0x1.0p-24f, static_cast<float>((r >> 8) & 0xffffffu) * 0x1.0p-24f};
        for (std::size_t i = k; i < std::min(n, k + 2); ++i) {
          const float a = std::fabs(v[i]) * inv, u = u2[i - k];
          int level = 0;
          if (a > 0.0f) {
            int e = 0;
            const float m = std::frexp(a, &e);  // a = m·2^e, m ∈ [0.5, 1): a ∈ [2^{e−1}, 2^e)
            const int j = e - 1 + s;
            if (j >= 1) {
              level = std::min(j + (u < 2.0f * m - 1.0f ? 1 : 0), s);
            } else {
              level = static_cast<double>(u) < std::ldexp(static_cast<double>(a), s - 1) ? 1 : 0;
            }
          }
          if (v[i] < 0.0f) level = -level;
          const float magnitude = block.table[static_cast<std::size_t>(std::abs(level))];
          const float expected = level > 0 ? magnitude : level < 0 ? -magnitude : 0.0f;
          if (block.levels[i] != level || std::memcmp(&q[i], &expected, sizeof expected) != 0) ++mismatches;
        }
      }
      REQUIRE(mismatches == 0);
      REQUIRE(rng == reference);
    }
  }
}

TEST_CASE("natural spacing: decode reproduces encode, and a seed gives the same bits every run", "[compress][natural]") {
  const auto v = spread(10000, 8, 1000);
  for (const Norm norm : {Norm::L2, Norm::Linf}) {
    DenseVsc c({}, {8, norm, true});
    require_round_trip(c, v, 12);
    std::vector<float> q1(v.size()), q2(v.size());
    std::vector<std::byte> m1, m2;
    Rng r1(5), r2(5);
    c.encode(v, r1, m1, q1);
    DenseVsc other({}, {8, norm, true});
    other.encode(v, r2, m2, q2);
    REQUIRE(m1 == m2);
    REQUIRE(q1 == q2);
  }
}

TEST_CASE("scale groups: options are checked and named", "[compress][scale_groups][config]") {
  auto message_of = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "no ConfigError";
  };
  DitheredQuantizer q;
  using Catch::Matchers::Contains;
  REQUIRE_THAT(message_of([&] { q.set_scale_blocks(std::vector<ScaleBlock>{{0, 10}, {5, 10}}); }), Contains("overlaps"));
  REQUIRE_THAT(message_of([&] { q.set_scale_blocks(std::vector<ScaleBlock>{{3, 0}}); }), Contains("empty"));
  REQUIRE_THAT(message_of([&] { q.set_scale_blocks(std::vector<ScaleBlock>{{std::numeric_limits<std::size_t>::max(), 2}}); }),
               Contains("overflows"));
  q.set_scale_blocks(std::vector<ScaleBlock>{{10, 5}, {0, 10}});  // any order; adjacent is fine
  REQUIRE(q.scale_blocks.size() == 2);
  REQUIRE(q.scale_blocks[0].offset == 0);
  q.bucket = 128;
  REQUIRE_THAT(message_of([&] { q.validate(); }), Contains("bucket and scale blocks"));
  REQUIRE_THAT(message_of([&] { DenseVsc c({}, q); }), Contains("bucket and scale blocks"));
  REQUIRE_THAT(message_of([] { DenseVsc c({}, bucketed(4, Norm::L2, std::size_t{1} << 33, ScaleFormat::Float32)); }),
               Contains("bucket"));
  REQUIRE_THAT(message_of([] { DenseVsc c({}, bucketed(0, Norm::L2, 16, ScaleFormat::Float32)); }), Contains("levels"));
  REQUIRE_THAT(message_of([] { Compressor<TopK, DitheredQuantizer, VectorSourceCoder> c(TopK{0.1}, bucketed(4, Norm::L2, 16, ScaleFormat::Float32)); }),
               Contains("TopK"));
  Compressor<RandomK, DitheredQuantizer, VectorSourceCoder> randomk(RandomK{0.1}, {});
  REQUIRE_THAT(message_of([&] { randomk.set_scale_blocks(std::vector<ScaleBlock>{{0, 4}}); }), Contains("RandomK"));
  REQUIRE_NOTHROW(randomk.set_scale_blocks({}));

  // in range of the encoded vector, checked at encode
  DenseVsc c({}, {4, Norm::L2});
  c.set_scale_blocks(std::vector<ScaleBlock>{{90, 20}});
  std::vector<float> v(100, 1.0f), out(100);
  std::vector<std::byte> msg;
  Rng rng(1);
  REQUIRE_THAT(message_of([&] { c.encode(v, rng, msg, out); }), Contains("beyond the vector's dimension"));
  REQUIRE(msg.empty());
  // a float16 scale cannot exceed 65504
  DenseVsc half({}, bucketed(4, Norm::Linf, 10, ScaleFormat::Float16));
  v[3] = 70000.0f;
  REQUIRE_THAT(message_of([&] { half.encode(v, rng, msg, out); }), Contains("float16"));

  // the optimizer detects support at compile time
  static_assert(with_scale_blocks<DenseVsc>);
  static_assert(with_scale_blocks<Compressor<TopK, DitheredQuantizer, RawCoder>>);  // refused at run time, naming TopK
  static_assert(!with_scale_blocks<Compressor<Dense, Identity, RawCoder>>);
  static_assert(!with_scale_blocks<Compressor<Dense, Sign, RawCoder>>);
}

TEST_CASE("scale groups: float16 scales round up and are exact", "[compress][scale_groups]") {
  for (const float x : {1e-9f, 6e-8f, 1e-5f, 0.1f, 0.3333f, 1.0f, 1000.1f, 65504.0f}) {
    const std::uint16_t h = detail::float16_rounded_up(x);
    const float back = detail::float_of_float16(h);
    CAPTURE(x, h, back);
    REQUIRE(back >= x);
    REQUIRE((h == 0 || detail::float_of_float16(static_cast<std::uint16_t>(h - 1)) < x));  // the smallest such
  }
  REQUIRE(detail::float16_rounded_up(65505.0f) == 0x7c00);
  REQUIRE(detail::float16_rounded_up(0.0f) == 0);
}

TEST_CASE("scale groups: the receiver reads the layout from the message", "[compress][scale_groups]") {
  const auto v = spread(3000, 17, 500);
  DenseVsc sender({}, with_blocks(8, Norm::L2, {{0, 1000}, {2000, 700}}));
  DenseVsc receiver({}, with_blocks(8, Norm::L2, {{5, 17}}));  // another layout, or none
  DenseVsc plain({}, {8, Norm::L2});
  std::vector<float> q(v.size()), acc(v.size(), 0.0f), acc2(v.size(), 0.0f);
  std::vector<std::byte> msg;
  Rng rng(4);
  sender.encode(v, rng, msg, q);
  receiver.decode_add(msg, 1.0f, acc);
  plain.decode_add(msg, 1.0f, acc2);
  REQUIRE(acc == q);
  REQUIRE(acc2 == q);
  // but a bucket size (an option like the levels) must be the receiver's
  DenseVsc b128({}, bucketed(8, Norm::L2, 128, ScaleFormat::Float32));
  DenseVsc b256({}, bucketed(8, Norm::L2, 256, ScaleFormat::Float32));
  msg.clear();
  b128.encode(v, rng, msg, q);
  REQUIRE_THROWS_AS(b256.decode_add(msg, 1.0f, acc), DecodeError);
  REQUIRE_THROWS_AS(plain.decode_add(msg, 1.0f, acc), DecodeError);
}

TEST_CASE("scale groups: truncated, corrupted or forged messages are DecodeErrors", "[compress][scale_groups][decode]") {
  const std::size_t d = 700;
  const auto v = spread(d, 23, 100);
  const DitheredQuantizer kinds[] = {with_blocks(4, Norm::L2, {{100, 200}, {400, 10}}),
                                     bucketed(4, Norm::L2, 128, ScaleFormat::Float32),
                                     bucketed(4, Norm::Linf, 64, ScaleFormat::Float16),
                                     DitheredQuantizer{8, Norm::L2, true}};
  for (const DitheredQuantizer& kind : kinds) {
    DenseVsc c({}, kind);
    std::vector<float> q(d), acc(d, 0.0f);
    std::vector<std::byte> msg;
    Rng rng(6);
    c.encode(v, rng, msg, q);
    for (std::size_t len = 0; len < msg.size(); ++len)
      REQUIRE_THROWS_AS(c.decode_add(std::span<const std::byte>(msg.data(), len), 1.0f, acc), DecodeError);
    for (std::size_t at = 0; at < msg.size(); ++at) {
      auto bad = msg;
      bad[at] ^= std::byte{0x20};
      REQUIRE_THROWS_AS(c.decode_add(bad, 1.0f, acc), DecodeError);
    }
  }
}

TEST_CASE("scale groups: counts are bounded before anything is allocated", "[compress][scale_groups][decode]") {
  // Forged (resealed) parameters: header (6 bytes, varint d), flags, varint s, then the layout.
  const std::size_t d = 300;
  std::vector<float> acc(d, 0.0f);
  auto forge = [&](std::uint8_t flags, const std::vector<std::uint64_t>& varints, std::size_t scale_bytes) {
    std::vector<std::byte> msg;
    message::write_header(msg, message::ids::dense, message::ids::dithered, message::ids::raw, d);
    msg.push_back(static_cast<std::byte>(flags));
    put_varint(msg, 4);
    for (const std::uint64_t x : varints) put_varint(msg, x);
    msg.resize(msg.size() + scale_bytes, std::byte{0});
    msg.resize(msg.size() + message::checksum_bytes);
    reseal(msg);
    return msg;
  };
  DenseRaw blocks_receiver({}, {4, Norm::L2});
  DenseRaw bucket_receiver({}, bucketed(4, Norm::L2, 16, ScaleFormat::Float32));
  constexpr std::uint8_t listed = 16, bucketed_flag = 8;
  // 2^40 blocks or buckets: refused from the message's length (allocating would throw bad_alloc)
  REQUIRE_THROWS_AS(blocks_receiver.decode_add(forge(listed, {std::uint64_t{1} << 40}, 64), 1.0f, acc), DecodeError);
  REQUIRE_THROWS_AS(bucket_receiver.decode_add(forge(bucketed_flag, {16, std::uint64_t{1} << 40}, 64), 1.0f, acc), DecodeError);
  // a bucket count other than ⌈d/b⌉ = 19, a block beyond d, an empty block, zero blocks
  REQUIRE_THROWS_AS(bucket_receiver.decode_add(forge(bucketed_flag, {16, 18}, 18 * 4), 1.0f, acc), DecodeError);
  REQUIRE_THROWS_AS(blocks_receiver.decode_add(forge(listed, {1, 250, 51}, 2 * 4), 1.0f, acc), DecodeError);
  REQUIRE_THROWS_AS(blocks_receiver.decode_add(forge(listed, {1, 0, 0}, 2 * 4), 1.0f, acc), DecodeError);
  REQUIRE_THROWS_AS(blocks_receiver.decode_add(forge(listed, {0}, 4), 1.0f, acc), DecodeError);
  // buckets and blocks at once
  REQUIRE_THROWS_AS(bucket_receiver.decode_add(forge(listed | bucketed_flag, {16, 19}, 19 * 4), 1.0f, acc), DecodeError);
}
