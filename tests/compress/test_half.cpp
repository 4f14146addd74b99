// Tests for HalfFloat (decopt/compress/half.hpp): round to nearest even against a search over
// every value of the format, stochastic rounding's neighbours and unbiasedness, bit-exact round
// trips through every sparsifier and coder, and the errors of bad inputs and foreign messages.
#include <catch2/catch.hpp>

#include <decopt/compress/compress.hpp>

#include "all_pipelines.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

using namespace decopt;
using namespace decopt::test;

namespace {

constexpr HalfFormat formats[] = {HalfFormat::Float16, HalfFormat::BFloat16};

// Every finite non-negative value of the format, in code order (increasing).
std::vector<float> all_values(HalfFormat f) {
  std::vector<float> v;
  for (std::uint32_t c = 0; c <= detail::half::max_code(f); ++c) v.push_back(detail::half::value(f, c));
  return v;
}

// The nearest-even code of |x| by search: the nearest value, ties to the even code.
std::uint32_t reference_code(const std::vector<float>& values, float x) {
  const double a = std::fabs(static_cast<double>(x));
  const auto hi = static_cast<std::uint32_t>(std::lower_bound(values.begin(), values.end(), static_cast<float>(a)) - values.begin());
  if (hi == 0) return 0;
  if (hi == values.size()) return hi - 1;
  const std::uint32_t lo = hi - 1;
  const double up = static_cast<double>(values[hi]) - a, down = a - static_cast<double>(values[lo]);
  if (up < down) return hi;
  if (down < up) return lo;
  return (hi & 1u) ? lo : hi;
}

// Every stride-th value of the format (values: all of them, ascending), the midpoint to the next
// (exact in float) and the floats either side of it: the ties and near-ties of rounding; negated
// at odd codes when `alternate_signs`.
std::vector<float> rounding_probes(const std::vector<float>& values, std::size_t stride, bool alternate_signs) {
  std::vector<float> inputs;
  for (std::size_t c = 0; c + 1 < values.size(); c += stride) {
    const float mid = static_cast<float>((static_cast<double>(values[c]) + values[c + 1]) / 2);
    for (const float x : {values[c], mid, std::nextafter(mid, 0.0f), std::nextafter(mid, std::numeric_limits<float>::infinity())})
      inputs.push_back(alternate_signs && c % 2 ? -x : x);
  }
  return inputs;
}

template <class P>
void exact_round_trip(P& p, const std::vector<float>& v, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<float> q(v.size(), 5.0f);
  std::vector<std::byte> msg;
  p.encode(v, rng, msg, q);
  std::vector<float> acc(v.size(), 0.0f);
  p.decode_add(msg, 1.0f, acc);
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < v.size(); ++i) mismatches += acc[i] == q[i] ? 0 : 1;
  REQUIRE(mismatches == 0);
}

}  // namespace

TEST_CASE("HalfFloat rounds to nearest even exactly as a search over the format's values", "[compress][half]") {
  for (const HalfFormat f : formats) {
    CAPTURE(static_cast<int>(f));
    const auto values = all_values(f);
    std::vector<float> inputs = rounding_probes(values, f == HalfFormat::Float16 ? 1 : 7, false);
    Rng rng(3);
    for (int i = 0; i < 20000; ++i) inputs.push_back(static_cast<float>(rng.uniform() * 1000.0) * (i % 2 ? 1e-6f : 1.0f));
    inputs.push_back(std::numeric_limits<float>::denorm_min());
    std::size_t wrong = 0;
    for (const float x : inputs) {
      const auto a = std::bit_cast<std::uint32_t>(x) & 0x7FFFFFFFu;
      if (a >= detail::half::overflow_bits(f, HalfRounding::NearestEven)) continue;
      wrong += detail::half::code(f, HalfRounding::NearestEven, a, 0) == reference_code(values, x) ? 0 : 1;
    }
    REQUIRE(wrong == 0);
  }
}

TEST_CASE("HalfFloat: quantize (vectorised where the target has it) gives the scalar codes, q, draws and errors", "[compress][half]") {
  for (const HalfFormat f : formats) {
    CAPTURE(static_cast<int>(f));
    const auto values = all_values(f);
    std::vector<float> inputs = rounding_probes(values, f == HalfFormat::Float16 ? 3 : 11, true);
    // groups of 8 of ordinary values, zeros (float16 stochastic keeps them in the vector path)
    // and, in the middle, one with a float16 subnormal result (that group goes scalar)
    Rng gen(5);
    for (int g = 0; g < 64; ++g)
      for (int j = 0; j < 8; ++j) inputs.push_back(g % 3 == 0 && j % 2 ? 0.0f : static_cast<float>(gen.normal()));
    inputs.push_back(-0.0f);
    inputs.push_back(std::numeric_limits<float>::denorm_min());
    inputs.push_back(-std::numeric_limits<float>::denorm_min());
    inputs.push_back(3e-6f);
    inputs.push_back(1.0f);  // an odd count: a scalar tail too
    for (const HalfRounding r : {HalfRounding::NearestEven, HalfRounding::Stochastic})
      for (const float scale : {1.0f, 0.75f}) {
        CAPTURE(static_cast<int>(r), scale);
        std::vector<float> x = inputs;
        const std::uint32_t overflow = detail::half::overflow_bits(f, r);
        // keep x·scale below the overflow
        for (float& v : x)
          if ((std::bit_cast<std::uint32_t>(v * scale) & 0x7FFFFFFFu) >= overflow) v = 0.5f;
        detail::LevelBlock blk;
        std::vector<float> out(x.size());
        Rng rng(1), reference(1);
        HalfFloat{f, r}.quantize(x, scale, rng, blk, out);
        std::size_t wrong = 0;
        std::uint32_t largest = 0;
        for (std::size_t i = 0; i < x.size(); ++i) {
          const std::uint32_t y = std::bit_cast<std::uint32_t>(scale == 1.0f ? x[i] : x[i] * scale);
          const std::uint64_t random = r == HalfRounding::Stochastic ? reference.next() : 0;
          const std::uint32_t c = detail::half::code(f, r, y & 0x7FFFFFFFu, random);
          const bool negative = (y >> 31) != 0 && c != 0;
          largest = std::max(largest, c);
          const float want = negative ? -detail::half::value(f, c) : detail::half::value(f, c);
          wrong += blk.levels[i] == (negative ? -static_cast<int>(c) : static_cast<int>(c)) &&
                           std::bit_cast<std::uint32_t>(out[i]) == std::bit_cast<std::uint32_t>(want)
                       ? 0
                       : 1;
        }
        REQUIRE(wrong == 0);
        REQUIRE(blk.s == static_cast<int>(largest));
        REQUIRE(rng.next() == reference.next());  // one draw per value, stochastic only
      }
    // an overflow or a non-finite value anywhere in a group of 8 is the scalar loop's error
    for (const std::size_t at : {std::size_t{0}, std::size_t{13}, std::size_t{38}}) {
      std::vector<float> x(40, 0.25f);
      detail::LevelBlock blk;
      std::vector<float> out(x.size());
      Rng rng(1);
      x[at] = f == HalfFormat::Float16 ? 70000.0f : std::numeric_limits<float>::max();
      const HalfFloat nearest{f, f == HalfFormat::Float16 ? HalfRounding::NearestEven : HalfRounding::Stochastic};
      REQUIRE_THROWS_WITH(nearest.quantize(x, 1.0f, rng, blk, out), Catch::Contains("exceeds"));
      x[at] = std::numeric_limits<float>::quiet_NaN();
      REQUIRE_THROWS_WITH(nearest.quantize(x, 1.0f, rng, blk, out), Catch::Contains("non-finite"));
    }
  }
}

TEST_CASE("HalfFloat's stochastic rounding picks a neighbour and is unbiased", "[compress][half]") {
  for (const HalfFormat f : formats) {
    const auto values = all_values(f);
    // a normal value and (float16) a subnormal one, each strictly between two neighbours
    const std::uint32_t one = f == HalfFormat::Float16 ? 0x3C00u : 0x3F80u;
    std::vector<float> xs{1.0f + 0.3f * (detail::half::value(f, one + 1) - 1.0f), 0.7f * values[1] + 0.3f * values[2]};
    for (const float x : xs) {
      CAPTURE(static_cast<int>(f), x);
      const auto lo_it = std::upper_bound(values.begin(), values.end(), x) - 1;
      const float lo = *lo_it, hi = *(lo_it + 1);
      REQUIRE(lo < x);
      REQUIRE(x < hi);
      Compressor<Dense, HalfFloat, RawCoder> c({}, HalfFloat{f, HalfRounding::Stochastic});
      REQUIRE(c.is_unbiased());
      const std::size_t d = 20000;
      const std::vector<float> v(d, -x);
      Rng rng(17);
      std::vector<float> q(d);
      std::vector<std::byte> msg;
      c.encode(v, rng, msg, q);
      double sum = 0.0;
      for (const float y : q) {
        REQUIRE((y == -lo || y == -hi));
        sum += y;
      }
      // mean within 5σ of −x, σ = (hi − lo)·sqrt(p(1 − p)/d) ≤ (hi − lo)/(2√d)
      const double sigma = (static_cast<double>(hi) - lo) / (2.0 * std::sqrt(static_cast<double>(d)));
      REQUIRE(std::fabs(sum / d + x) < 5.0 * sigma);
    }
  }
}

TEMPLATE_LIST_TEST_CASE("HalfFloat round-trips bit-exactly through every sparsifier and coder", "[compress][half][roundtrip]",
                        Sparsifiers) {
  const auto v = gaussian(3000, 21, 40.0);
  auto with_tiny = v;
  for (std::size_t i = 0; i < with_tiny.size(); i += 3) with_tiny[i] *= 1e-9f;  // float16 subnormals and zeros
  for (const HalfFormat f : formats) {
    for (const HalfRounding r : {HalfRounding::NearestEven, HalfRounding::Stochastic}) {
      CAPTURE(static_cast<int>(f), static_cast<int>(r));
      const HalfFloat h{f, r};
      TestType s{};
      if constexpr (std::is_same_v<TestType, RandomK>) s = RandomK{0.1, true};
      if constexpr (std::is_same_v<TestType, TopK> || std::is_same_v<TestType, RandTopK>) s.ratio = 0.1;
      Compressor<TestType, HalfFloat, RawCoder> raw(s, h);
      Compressor<TestType, HalfFloat, EliasCoder> elias(s, h);
      Compressor<TestType, HalfFloat, VectorSourceCoder> vsc(s, h);
      for (const std::vector<float>* in : std::vector<const std::vector<float>*>{&v, &with_tiny}) {
        exact_round_trip(raw, *in, 4);
        exact_round_trip(elias, *in, 4);
        exact_round_trip(vsc, *in, 4);
      }
    }
  }
}

TEST_CASE("HalfFloat: 16 bits a value, q the rounded v, and its errors", "[compress][half][config]") {
  const std::size_t d = 4096;
  const auto v = gaussian(d, 2);
  for (const HalfFormat f : formats) {
    Compressor<Dense, HalfFloat, RawCoder> c({}, HalfFloat{f, HalfRounding::NearestEven});
    Rng rng(1);
    std::vector<float> q(d);
    std::vector<std::byte> msg;
    c.encode(v, rng, msg, q);
    REQUIRE(msg.size() * 8 <= 16 * d + 200);
    const auto values = all_values(f);
    for (std::size_t i = 0; i < d; ++i) REQUIRE(std::fabs(q[i]) == values[reference_code(values, v[i])]);

    // non-finite and out-of-range values: ConfigError, nothing appended
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      auto w = v;
      w[7] = bad;
      std::vector<std::byte> out;
      REQUIRE_THROWS_AS(c.encode(w, rng, out, q), ConfigError);
      REQUIRE(out.empty());
    }
    // truncated, foreign-format and out-of-range-count messages: DecodeError
    std::vector<float> acc(d, 0.0f);
    for (std::size_t cut = 1; cut < msg.size(); cut += 97) {
      const std::vector<std::byte> shorter(msg.begin(), msg.end() - static_cast<std::ptrdiff_t>(cut));
      REQUIRE_THROWS_AS(c.decode_add(shorter, 1.0f, acc), DecodeError);
    }
    const HalfFormat other = f == HalfFormat::Float16 ? HalfFormat::BFloat16 : HalfFormat::Float16;
    Compressor<Dense, HalfFloat, RawCoder> foreign({}, HalfFloat{other, HalfRounding::NearestEven});
    REQUIRE_THROWS_AS(foreign.decode_add(msg, 1.0f, acc), DecodeError);
    Compressor<Dense, HalfFloat, RawCoder> stochastic({}, HalfFloat{f, HalfRounding::Stochastic});
    REQUIRE_THROWS_AS(stochastic.decode_add(msg, 1.0f, acc), DecodeError);
    // the options byte and the largest code follow the header: magic, version, three ids and
    // d = 4096 as a two-byte varint (Dense has no parameters)
    const std::size_t at = 8;
    REQUIRE(std::to_integer<std::uint8_t>(msg[at]) == static_cast<std::uint8_t>(f));
    auto forged = msg;
    const std::uint32_t too_large = detail::half::max_code(f) + 1;
    forged[at + 1] = static_cast<std::byte>(too_large & 0xFF);
    forged[at + 2] = static_cast<std::byte>(too_large >> 8);
    reseal(forged);
    REQUIRE_THROWS_AS(c.decode_add(forged, 1.0f, acc), DecodeError);
  }
  std::vector<float> big(8, 1.0f);
  big[3] = 70000.0f;  // beyond float16's 65504; fine for bfloat16
  Rng rng(2);
  std::vector<float> q(8);
  std::vector<std::byte> out;
  Compressor<Dense, HalfFloat, RawCoder> f16({}, HalfFloat{HalfFormat::Float16, HalfRounding::NearestEven});
  REQUIRE_THROWS_AS(f16.encode(big, rng, out, q), ConfigError);
  Compressor<Dense, HalfFloat, RawCoder> bf16({}, HalfFloat{HalfFormat::BFloat16, HalfRounding::NearestEven});
  REQUIRE_NOTHROW(bf16.encode(big, rng, out, q));
  REQUIRE(q[3] == 70144.0f);  // 70000 to bfloat16's 8 significant bits: 1.0001001b·2^16
}

// RawCoder's width is ⌈log2(2s+1)⌉ with s the largest code; 2.0 is code 0x4000 in both formats, so
// inputs in (−2, 2) travel in 15 bits a value and one |v| ≥ 2 makes every value 16 bits.
TEST_CASE("HalfFloat with RawCoder: 15 bits a value below 2, 16 once one |v| >= 2", "[compress][half][bits]") {
  const std::size_t d = 8192;
  auto v = gaussian(d, 5);
  for (float& x : v) x = std::clamp(x, -1.9f, 1.9f);  // rounds below 2 in both formats
  for (const HalfFormat f : formats) {
    REQUIRE(detail::half::value(f, 0x4000u) == 2.0f);
    REQUIRE(RawCoder::level_bits(0x3FFF) == 15);
    REQUIRE(RawCoder::level_bits(0x4000) == 16);
    Compressor<Dense, HalfFloat, RawCoder> c({}, HalfFloat{f, HalfRounding::NearestEven});
    Rng rng(1);
    std::vector<float> q(d);
    std::vector<std::byte> below, above;
    c.encode(v, rng, below, q);
    REQUIRE(std::ranges::all_of(q, [](float x) { return std::fabs(x) < 2.0f; }));
    auto w = v;
    w[100] = f == HalfFormat::Float16 ? -2.0f : 2.5f;
    c.encode(w, rng, above, q);
    // the same header and parameters; the payload is 15·d bits, then 16·d bits
    REQUIRE(above.size() - below.size() == d / 8);
    const std::size_t overhead = below.size() - 15 * d / 8;
    REQUIRE(overhead < 32);
    REQUIRE(above.size() == 16 * d / 8 + overhead);
  }
}
