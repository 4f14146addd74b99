// Tests for decopt/compress: exact round trips of every pipeline, the dithered quantizer's
// unbiasedness and variance bound, exact top-k, predicted sizes, edge cases, corrupt messages
// and configuration errors.
#include <catch2/catch.hpp>

#include <decopt/compress/compress.hpp>

#include "all_pipelines.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <tuple>
#include <type_traits>
#include <vector>

using namespace decopt;
using namespace decopt::test;

namespace {

bool same_bits(float a, float b) {
  std::uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y || (a == 0.0f && b == 0.0f);
}

// Encodes v, checks decode_add reproduces q exactly (weight 1 into zeros) and acc + w·q for
// another weight; returns the message.
template <class P>
std::vector<std::byte> round_trip(P& pipeline, const std::vector<float>& v, std::uint64_t seed) {
  const std::size_t d = v.size();
  Rng rng(seed);
  std::vector<float> q(d, 123.0f);
  std::vector<std::byte> msg;
  pipeline.encode(v, rng, msg, q);
  for (const float x : q) REQUIRE(std::isfinite(x));
  std::vector<float> acc(d, 0.0f);
  pipeline.decode_add(msg, 1.0f, acc);
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < d; ++i) mismatches += same_bits(acc[i], q[i]) ? 0 : 1;
  REQUIRE(mismatches == 0);
  std::vector<float> acc2(d);
  for (std::size_t i = 0; i < d; ++i) acc2[i] = static_cast<float>(i % 7) - 3.0f;
  const std::vector<float> before = acc2;
  pipeline.decode_add(msg, -0.375f, acc2);
  for (std::size_t i = 0; i < d; ++i) mismatches += acc2[i] == before[i] + -0.375f * q[i] ? 0 : 1;
  REQUIRE(mismatches == 0);
  return msg;
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("every pipeline round-trips exactly, with weights", "[compress][roundtrip]", AllPipelines) {
  auto pipeline = make_pipeline<TestType>();
  for (std::size_t d : {1u, 2u, 17u, 1000u, 40000u}) {
    CAPTURE(d, TestType::name());
    const auto v = gaussian(d, 10 + d);
    const auto msg = round_trip(pipeline, v, 99);
    REQUIRE(msg.size() > 6);
    REQUIRE(msg[0] == message::magic0);
  }
}

TEMPLATE_LIST_TEST_CASE("every pipeline handles edge-case inputs", "[compress][edge]", AllPipelines) {
  auto pipeline = make_pipeline<TestType>();
  CAPTURE(TestType::name());
  const std::size_t d = 513;
  std::vector<std::vector<float>> inputs;
  inputs.emplace_back(d, 0.0f);                 // all zeros
  inputs.emplace_back(d, -2.5f);                // all equal
  inputs.emplace_back(1, 7.0f);                 // d = 1
  inputs.emplace_back(1, 0.0f);
  auto huge = gaussian(d, 3, 1e30);             // huge magnitudes
  inputs.push_back(huge);
  std::vector<float> denormal(d);
  for (std::size_t i = 0; i < d; ++i) denormal[i] = std::numeric_limits<float>::denorm_min() * static_cast<float>(int(i % 9) - 4);
  inputs.push_back(denormal);
  std::vector<float> mixed = gaussian(d, 4);
  mixed[5] = 3e38f;
  mixed[6] = -std::numeric_limits<float>::denorm_min();
  inputs.push_back(mixed);
  for (const auto& v : inputs) round_trip(pipeline, v, 5);

  // Dense + Identity is lossless: q == v bit for bit.
  if constexpr (TestType::lossless) {
    Rng rng(1);
    std::vector<float> q(d);
    std::vector<std::byte> msg;
    pipeline.encode(huge, rng, msg, q);
    REQUIRE(std::equal(q.begin(), q.end(), huge.begin()));
  }
}

TEMPLATE_LIST_TEST_CASE("every pipeline rejects a non-finite input anywhere with ConfigError", "[compress][config]",
                        AllPipelines) {
  // Pipelines check in different places (a pass of the Compressor's own, the quantizer's norm
  // pass, TopK's candidate pass with or without its sample): each must see every value —
  // but RandomK, which reads only the values it sends (its subset depends on the seed alone).
  auto pipeline = make_pipeline<TestType>();
  CAPTURE(TestType::name());
  const float bad_values[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity()};
  constexpr bool reads_sent_only = std::is_same_v<typename TestType::sparsifier_type, RandomK>;
  for (const std::size_t d : {std::size_t{1}, std::size_t{17}, std::size_t{1000}, std::size_t{16 * 16384 + 5}}) {
    const auto clean = gaussian(d, d);
    std::vector<bool> sent(d, true);
    if constexpr (reads_sent_only) {
      Rng probe(3);
      std::vector<std::byte> msg;
      pipeline.encode(clean, probe, msg);
      sent.assign(d, false);
      for (const auto p : pipeline.reconstruction().positions) sent[p] = true;
    }
    for (const std::size_t at : {std::size_t{0}, d / 2, d - 1}) {
      for (const float bad : bad_values) {
        CAPTURE(d, at, bad, sent[at]);
        auto v = clean;
        v[at] = bad;
        Rng rng(3);
        std::vector<float> q(d);
        std::vector<std::byte> out;
        if (sent[at]) {
          REQUIRE_THROWS_AS(pipeline.encode(v, rng, out, q), ConfigError);
          REQUIRE(out.empty());
        } else {
          REQUIRE_NOTHROW(pipeline.encode(v, rng, out, q));
          REQUIRE(q[at] == 0.0f);
        }
      }
    }
  }
}

TEMPLATE_LIST_TEST_CASE("decode_add touches only the coded coordinates of sparse pipelines", "[compress][sparse]", AllPipelines) {
  if constexpr (TestType::sparse) {
    auto pipeline = make_pipeline<TestType>();
    const std::size_t d = 5000;
    const auto v = gaussian(d, 8);
    Rng rng(2);
    std::vector<float> q(d);
    std::vector<std::byte> msg;
    pipeline.encode(v, rng, msg, q);
    std::vector<float> acc(d, -0.0f);  // adding +0 would clear the sign bit
    pipeline.decode_add(msg, 1.0f, acc);
    std::size_t touched = 0;
    for (std::size_t i = 0; i < d; ++i) touched += std::signbit(acc[i]) && acc[i] == 0.0f ? 0 : 1;
    REQUIRE(touched <= static_cast<std::size_t>(std::ceil(0.1 * d)));
    std::size_t nonzero = 0;
    for (const float x : q) nonzero += x != 0.0f ? 1 : 0;
    REQUIRE(touched >= nonzero - std::count_if(q.begin(), q.end(), [](float x) { return x < 0.0f; }));
  }
}

TEMPLATE_LIST_TEST_CASE("corrupted, truncated and misdirected messages are all refused with DecodeError", "[compress][fuzz]", AllPipelines) {
  auto pipeline = make_pipeline<TestType>();
  CAPTURE(TestType::name());
  const std::size_t d = 300;
  const auto v = gaussian(d, 21);
  Rng rng(3);
  std::vector<float> q(d);
  std::vector<std::byte> msg;
  pipeline.encode(v, rng, msg, q);
  Rng fuzz(77);
  int errors = 0, accepted = 0;
  for (int trial = 0; trial < 1500; ++trial) {
    std::vector<std::byte> bad = msg;
    std::size_t acc_size = d;
    switch (trial % 5) {
      case 0:
      case 1:  // 1–4 bit flips, of distinct bits
        for (int f = 0, n = 1 + static_cast<int>(fuzz.below(4)); f < n; ++f) {
          const auto bit = fuzz.below(bad.size() * 8);
          bad[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
          if (bad == msg) bad[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));  // flipped back: keep it
        }
        break;
      case 2:  // truncation
        bad.resize(fuzz.below(bad.size()));
        break;
      case 3:  // random bytes after a valid header, or entirely random
        for (std::size_t i = fuzz.below(2) ? 6 : 0; i < bad.size(); ++i) bad[i] = static_cast<std::byte>(fuzz.next());
        break;
      default:  // wrong dimension
        acc_size = d + 1 + fuzz.below(5);
        break;
    }
    std::vector<float> acc(acc_size, 0.0f);
    try {
      pipeline.decode_add(bad, 1.0f, acc);
      ++accepted;
    } catch (const DecodeError&) {
      ++errors;
    }
    // Behind the checksum, the decoders themselves: the same damage with a matching checksum
    // (as a forger would send) must still be refused or decode to finite values.
    reseal(bad);
    try {
      pipeline.decode_add(bad, 1.0f, acc);
      for (const float x : acc) REQUIRE(std::isfinite(x));
    } catch (const DecodeError&) {
    }
  }
  // the checksum: no damaged message decodes to a finite wrong value (each of these would pass
  // it with probability 2^-32 only)
  REQUIRE(accepted == 0);
  REQUIRE(errors == 1500);
}

TEST_CASE("messages are self-describing: foreign, other-version and appended messages", "[compress][message]") {
  const auto v = gaussian(1000, 4);
  Compressor<Dense, DitheredQuantizer, VectorSourceCoder> vsc({}, {4, Norm::L2});
  Compressor<Dense, DitheredQuantizer, EliasCoder> elias({}, {4, Norm::L2});
  Rng rng(1);
  std::vector<float> q1(1000), q2(1000), acc(1000, 0.0f);
  std::vector<std::byte> out{std::byte{42}};
  vsc.encode(v, rng, out, q1);
  const std::size_t first_end = out.size();
  vsc.encode(v, rng, out, q2);
  REQUIRE(out[0] == std::byte{42});  // appended, not overwritten
  const std::span<const std::byte> all(out);
  vsc.decode_add(all.subspan(1, first_end - 1), 1.0f, acc);
  vsc.decode_add(all.subspan(first_end), 1.0f, acc);
  for (std::size_t i = 0; i < 1000; ++i) REQUIRE(acc[i] == q1[i] + q2[i]);
  const auto msg = std::vector<std::byte>(out.begin() + 1, out.begin() + static_cast<std::ptrdiff_t>(first_end));
  REQUIRE_THROWS_AS(elias.decode_add(msg, 1.0f, acc), DecodeError);  // foreign pipeline
  auto other_version = msg;
  other_version[2] = std::byte{99};
  REQUIRE_THROWS_AS(vsc.decode_add(other_version, 1.0f, acc), DecodeError);
  std::vector<float> small(999);
  REQUIRE_THROWS_AS(vsc.decode_add(msg, 1.0f, small), DecodeError);
  REQUIRE_THROWS_AS(vsc.decode_add(std::span<const std::byte>(), 1.0f, acc), DecodeError);
}

TEST_CASE("the dithered quantizer is unbiased and within its variance bound", "[compress][dithered]") {
  const std::size_t d = 64;
  const auto v = gaussian(d, 12);
  const double norm2 = std::inner_product(v.begin(), v.end(), v.begin(), 0.0);
  for (const Norm norm : {Norm::L2, Norm::Linf}) {
    for (const bool natural : {false, true}) {
      for (const int s : {1, 4}) {
        CAPTURE(static_cast<int>(norm), natural, s);
        Compressor<Dense, DitheredQuantizer, RawCoder> c({}, {s, norm, natural});
        Rng rng(2024);
        const int trials = 20000;
        std::vector<double> mean(d, 0.0);
        double sq_error = 0.0, max_step = 0.0;
        std::vector<float> q(d);
        std::vector<std::byte> msg;
        for (int t = 0; t < trials; ++t) {
          msg.clear();
          c.encode(v, rng, msg, q);
          for (std::size_t i = 0; i < d; ++i) {
            mean[i] += q[i];
            sq_error += (static_cast<double>(q[i]) - v[i]) * (static_cast<double>(q[i]) - v[i]);
            max_step = std::max(max_step, std::fabs(static_cast<double>(q[i]) - v[i]));
          }
        }
        for (std::size_t i = 0; i < d; ++i) {
          // Each q_i lies within one level spacing of v_i, so its s.d. is at most max_step/2.
          const double tolerance = 5.0 * (max_step / 2.0) / std::sqrt(static_cast<double>(trials)) + 1e-6;
          REQUIRE(std::fabs(mean[i] / trials - v[i]) <= tolerance);
        }
        if (norm == Norm::L2 && !natural) {
          const double bound = std::min(d / double(s * s), std::sqrt(double(d)) / s) * norm2;
          REQUIRE(sq_error / trials <= bound);
        }
      }
    }
  }
}

TEST_CASE("the dithered quantizer draws and rounds exactly as one element at a time", "[compress][dithered]") {
  // The quantizer draws its dithers in blocks, eight segments of the stream at once where AVX-512
  // is compiled for (detail::DitherLanes, spans of 2^18 elements), and rounds in vector loops.
  // Reference: u_{2k}, u_{2k+1} from draw k, then the float expression of one element.
  // Outputs of 2^22 floats or more are written with non-temporal stores from the first 64-byte
  // line on, so q also starts at 1 and 3 floats past a line there.
  const std::size_t span = std::size_t{1} << 18, streamed = std::size_t{1} << 22;
  struct Case {
    std::size_t n, offset;
    std::vector<int> levels;
  };
  const std::vector<Case> cases = {{1, 0, {1, 4, 15, 16, 300}},           {513, 0, {1, 4, 15, 16, 300}},
                                   {span - 1, 0, {1, 4, 15, 16, 300}},    {span, 0, {1, 4, 15, 16, 300}},
                                   {span + 1, 0, {1, 4, 15, 16, 300}},    {2 * span + 777, 0, {1, 4, 15, 16, 300}},
                                   {streamed + 37, 1, {4}},               {streamed, 3, {15, 16}}};
  for (const Case& c : cases) {
    const std::size_t n = c.n;
    const auto v = gaussian(n, static_cast<std::uint64_t>(n));
    std::vector<float> buffer(n + 32);
    const auto line = static_cast<std::size_t>((64 - reinterpret_cast<std::uintptr_t>(buffer.data()) % 64) % 64 / 4);
    const std::span<float> q(buffer.data() + line + c.offset, n);
    for (const Norm norm : {Norm::L2, Norm::Linf}) {
      for (const int s : c.levels) {
        CAPTURE(n, c.offset, static_cast<int>(norm), s);
        const DitheredQuantizer quantizer{s, norm};
        detail::LevelBlock block;
        Rng rng(n + static_cast<std::uint64_t>(s));
        quantizer.quantize(v, 1.0f, rng, block, q);

        Rng reference(n + static_cast<std::uint64_t>(s));
        const float inv = static_cast<float>(s) / block.sigma;
        REQUIRE(std::isfinite(inv));
        std::size_t mismatches = 0;
        for (std::size_t k = 0; k < n; k += 2) {
          const std::uint64_t r = reference.next();
          const float u[2] = {static_cast<float>(r >> 40) * 0x1.0p-24f,
                              static_cast<float>((r >> 8) & 0xffffffu) * 0x1.0p-24f};
          for (std::size_t i = k; i < std::min(n, k + 2); ++i) {
            int level = std::min(static_cast<int>(std::fabs(v[i]) * inv + u[i - k]), s);
            if (v[i] < 0.0f) level = -level;
            const float magnitude = block.table[static_cast<std::size_t>(std::abs(level))];
            const float expected = level > 0 ? magnitude : level < 0 ? -magnitude : 0.0f;
            if (block.levels[i] != level || std::memcmp(&q[i], &expected, sizeof expected) != 0) ++mismatches;
          }
        }
        REQUIRE(mismatches == 0);
        REQUIRE(rng == reference);  // the generator continues where one-by-one drawing would be
      }
    }
  }
}

TEST_CASE("unbiased RandomK is unbiased; the type-level trait stays conservative", "[compress][randomk]") {
  using P = Compressor<RandomK, Identity, VectorSourceCoder>;
  STATIC_REQUIRE_FALSE(P::unbiased);
  P c({0.25, true}, {});
  REQUIRE(c.is_unbiased());
  REQUIRE_FALSE(P({0.25, false}, {}).is_unbiased());
  const std::size_t d = 16;
  const auto v = gaussian(d, 30);
  Rng rng(31);
  std::vector<double> mean(d, 0.0);
  std::vector<float> q(d);
  const int trials = 40000;
  std::vector<std::byte> msg;
  for (int t = 0; t < trials; ++t) {
    msg.clear();
    c.encode(v, rng, msg, q);
    REQUIRE(std::count_if(q.begin(), q.end(), [](float x) { return x != 0.0f; }) <= 4);
    for (std::size_t i = 0; i < d; ++i) mean[i] += q[i];
  }
  for (std::size_t i = 0; i < d; ++i) REQUIRE(std::fabs(mean[i] / trials - v[i]) <= 5.0 * std::fabs(v[i]) * std::sqrt(3.0 / trials) + 1e-6);
}

TEST_CASE("traits of the pipelines", "[compress][traits]") {
  STATIC_REQUIRE(Compressor<Dense, Identity, RawCoder>::lossless);
  STATIC_REQUIRE(Compressor<Dense, Identity, RawCoder>::unbiased);
  STATIC_REQUIRE_FALSE(Compressor<Dense, Identity, RawCoder>::uses_seed);
  STATIC_REQUIRE(Compressor<Dense, DitheredQuantizer, VectorSourceCoder>::unbiased);
  STATIC_REQUIRE(Compressor<Dense, DitheredQuantizer, VectorSourceCoder>::uses_seed);
  STATIC_REQUIRE_FALSE(Compressor<Dense, DitheredQuantizer, VectorSourceCoder>::lossless);
  STATIC_REQUIRE_FALSE(Compressor<TopK, DitheredQuantizer, VectorSourceCoder>::unbiased);
  STATIC_REQUIRE(Compressor<TopK, Identity, RawCoder>::sparse);
  STATIC_REQUIRE_FALSE(Compressor<Dense, Sign, RawCoder>::unbiased);
  STATIC_REQUIRE(Compressor<RandTopK, Identity, RawCoder>::uses_seed);
  STATIC_REQUIRE(Sparsifier<TopK>);
  STATIC_REQUIRE(Quantizer<DitheredQuantizer>);
  STATIC_REQUIRE(Coder<VectorSourceCoder>);
  STATIC_REQUIRE_FALSE(Sparsifier<Identity>);
  STATIC_REQUIRE_FALSE(Coder<Dense>);
  REQUIRE(Compressor<TopK, DitheredQuantizer, VectorSourceCoder>::name() == "TopK+Dithered+VSC");
}

TEST_CASE("bad parameters and inputs give ConfigError", "[compress][config]") {
  using D = Compressor<Dense, DitheredQuantizer, VectorSourceCoder>;
  REQUIRE_THROWS_AS(D({}, {0, Norm::L2}), ConfigError);
  REQUIRE_THROWS_AS(D({}, {-3, Norm::L2}), ConfigError);
  REQUIRE_THROWS_AS(D({}, {40000, Norm::L2}), ConfigError);
  REQUIRE_THROWS_AS(D({}, {4, static_cast<Norm>(7)}), ConfigError);
  REQUIRE_THROWS_AS((Compressor<TopK, Identity, RawCoder>({0.0}, {})), ConfigError);
  REQUIRE_THROWS_AS((Compressor<TopK, Identity, RawCoder>({1.5}, {})), ConfigError);
  REQUIRE_THROWS_AS((Compressor<TopK, Identity, RawCoder>({std::nan("")}, {})), ConfigError);
  REQUIRE_THROWS_AS((Compressor<RandomK, Identity, RawCoder>({-0.1}, {})), ConfigError);
  REQUIRE_THROWS_AS((Compressor<RandTopK, Identity, RawCoder>({0.1, 0.5}, {})), ConfigError);
  REQUIRE_THROWS_WITH((Compressor<TopK, Identity, RawCoder>({2.0}, {})), Catch::Contains("ratio"));
  REQUIRE_THROWS_WITH(D({}, {0, Norm::L2}), Catch::Contains("levels"));

  D c({}, {4, Norm::L2});
  Rng rng(1);
  std::vector<float> v(10, 1.0f), q(10), short_q(9);
  std::vector<std::byte> out;
  REQUIRE_THROWS_AS(c.encode(v, rng, out, short_q), ConfigError);
  v[3] = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_AS(c.encode(v, rng, out, q), ConfigError);
  v[3] = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_AS(c.encode(v, rng, out, q), ConfigError);
  REQUIRE(out.empty());  // nothing appended on error
  std::vector<float> huge(4, 3e38f);  // ‖v‖₂ overflows float
  std::vector<float> q4(4);
  REQUIRE_THROWS_AS(c.encode(huge, rng, out, q4), ConfigError);
  REQUIRE(out.empty());
  std::vector<float> acc(10);
  v[3] = 1.0f;
  c.encode(v, rng, out, q);
  REQUIRE_THROWS_AS(c.decode_add(out, std::numeric_limits<float>::infinity(), acc), ConfigError);
}

TEST_CASE("TopK equals a sort-based reference, ties broken by lower index", "[compress][topk]") {
  auto reference = [](const std::vector<float>& v, std::size_t k) {
    std::vector<std::uint32_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), 0u);
    std::stable_sort(idx.begin(), idx.end(), [&](std::uint32_t a, std::uint32_t b) { return std::fabs(v[a]) > std::fabs(v[b]); });
    idx.resize(k);
    std::sort(idx.begin(), idx.end());
    return idx;
  };
  Rng rng(5);
  detail::SelectScratch scratch;
  std::vector<std::uint32_t> got;
  for (std::size_t d : {1u, 10u, 1000u, 300000u}) {
    for (int kind = 0; kind < 3; ++kind) {
      std::vector<float> v(d);
      for (auto& x : v) {
        if (kind == 0) x = static_cast<float>(rng.normal());
        else if (kind == 1) x = static_cast<float>(static_cast<int>(rng.below(7)) - 3);  // heavy ties, both signs
        else x = 1.0f;                                                             // all equal
      }
      for (double ratio : {0.001, 0.01, 0.3, 1.0}) {
        const std::size_t k = detail::count_for_ratio(ratio, d);
        CAPTURE(d, kind, ratio);
        detail::top_k_indices(v, k, got, scratch);
        REQUIRE(got == reference(v, k));
      }
    }
  }
  // through the compressor: q keeps exactly the reference entries
  const auto v = gaussian(2000, 6);
  Compressor<TopK, Identity, VectorSourceCoder> c({0.05}, {});
  std::vector<float> q(2000);
  std::vector<std::byte> msg;
  Rng r2(1);
  c.encode(v, r2, msg, q);
  const auto ref = reference(v, 100);
  std::vector<float> expect(2000, 0.0f);
  for (auto i : ref) expect[i] = v[i];
  REQUIRE(q == expect);
}

TEST_CASE("VectorSourceCoder::predicted_bits is within 1% of real sizes", "[compress][vsc]") {
  const std::size_t d = 200000;
  for (int dist = 0; dist < 2; ++dist) {
    std::vector<float> v(d);
    Rng rng(40 + dist);
    for (auto& x : v) {
      if (dist == 0) x = static_cast<float>(rng.normal());
      else x = static_cast<float>((rng.below(2) ? 1.0 : -1.0) * -std::log(1.0 - rng.uniform()));  // Laplacian
    }
    for (const int s : {4, 16}) {
      for (const Norm norm : {Norm::L2, Norm::Linf}) {
        if (norm == Norm::L2 && s == 4) continue;  // ~1.3k non-zeros: size dominated by the header
        CAPTURE(dist, s, static_cast<int>(norm));
        DitheredQuantizer quant{s, norm};
        detail::LevelBlock block;
        std::vector<float> recon(d);
        quant.quantize(v, 1.0f, rng, block, recon);
        std::vector<std::uint64_t> counts(static_cast<std::size_t>(2 * s + 1), 0);
        for (auto l : block.levels) ++counts[static_cast<std::size_t>(l + s)];
        counts[static_cast<std::size_t>(s)] = 0;  // zero is not coded
        VectorSourceCoder coder;
        std::vector<std::byte> out;
        detail::CodeShape shape;
        shape.n = d;
        shape.k = d;
        coder.encode_levels(shape, block.levels, s, out);
        const double real = static_cast<double>(out.size()) * 8.0;
        const double predicted = VectorSourceCoder::predicted_bits(d, counts);
        REQUIRE(std::fabs(predicted - real) <= 0.01 * real);
        // and it is smaller than the Elias baseline
        EliasCoder elias;
        std::vector<std::byte> eout;
        elias.encode_levels(shape, block.levels, s, eout);
        REQUIRE(out.size() < eout.size());
      }
    }
  }
}

TEST_CASE("VectorSourceCoder: the word-parallel encoder writes the per-non-zero encoder's bytes", "[compress][vsc]") {
  // Dense levels take the word-parallel path; the same levels given with explicit positions
  // 0…n−1 take the per-non-zero path. The streams must agree bit for bit, including lengths that
  // are not multiples of 64 and streams long enough for the decode tables.
  for (const std::size_t d : {std::size_t{1}, std::size_t{63}, std::size_t{64}, std::size_t{65}, std::size_t{4097},
                              std::size_t{(1u << 17) + 5}}) {
    for (const int s : {1, 4, 16, 300}) {
      for (const Norm norm : {Norm::L2, Norm::Linf}) {
        CAPTURE(d, s, static_cast<int>(norm));
        const auto v = gaussian(d, 90 + d + static_cast<std::size_t>(s));
        DitheredQuantizer quant{s, norm};
        detail::LevelBlock block;
        std::vector<float> recon(d);
        Rng rng(5);
        quant.quantize(v, 1.0f, rng, block, recon);
        std::vector<std::uint32_t> all(d);
        for (std::size_t i = 0; i < d; ++i) all[i] = static_cast<std::uint32_t>(i);
        detail::CodeShape dense{d, d, false, {}};
        detail::CodeShape listed{d, d, true, all};
        VectorSourceCoder a, b;
        std::vector<std::byte> word_parallel, per_nonzero;
        a.encode_levels(dense, block.levels, s, word_parallel);
        b.encode_levels(listed, block.levels, s, per_nonzero);
        REQUIRE(word_parallel == per_nonzero);
        // and the decoder returns every level exactly once
        std::vector<int> seen(d, 0);
        std::size_t calls = 0, outside = 0;
        a.decode_levels(word_parallel, dense, s, [&](std::size_t pos, int l) {
          if (pos >= d) {
            ++outside;
            return;
          }
          seen[pos] = l;
          ++calls;
        });
        std::size_t nonzeros = 0, wrong = 0;
        for (std::size_t i = 0; i < d; ++i) {
          nonzeros += block.levels[i] != 0 ? 1u : 0u;
          wrong += seen[i] == block.levels[i] ? 0u : 1u;
        }
        REQUIRE(outside == 0);
        REQUIRE(wrong == 0);
        REQUIRE(calls == nonzeros);
      }
    }
  }
}

TEST_CASE("VectorSourceCoder: long dense messages survive corruption", "[compress][vsc][fuzz]") {
  // 2^17 + 5 levels at ℓ∞ scale: streams of tens of thousands of codewords, decoded through the
  // Golomb tables and hit bitmaps.
  using Pipeline = Compressor<Dense, DitheredQuantizer, VectorSourceCoder>;
  const std::size_t d = (1u << 17) + 5;
  for (const int s : {4, 16}) {
    CAPTURE(s);
    Pipeline pipeline({}, {s, Norm::Linf});
    const auto v = gaussian(d, 123 + static_cast<std::size_t>(s));
    Rng rng(9);
    std::vector<float> q(d);
    std::vector<std::byte> msg;
    pipeline.encode(v, rng, msg, q);
    Rng fuzz(31);
    int errors = 0;
    for (int trial = 0; trial < 120; ++trial) {
      std::vector<std::byte> bad = msg;
      if (trial % 3 == 2) {
        bad.resize(fuzz.below(bad.size()));
      } else {
        for (int f = 0, n = 1 + static_cast<int>(fuzz.below(8)); f < n; ++f) {
          const auto bit = fuzz.below(bad.size() * 8);
          bad[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
        }
      }
      std::vector<float> acc(d, 0.0f);
      REQUIRE_THROWS_AS(pipeline.decode_add(bad, 1.0f, acc), DecodeError);  // the checksum
      reseal(bad);  // the streams themselves, behind a matching checksum
      try {
        pipeline.decode_add(bad, 1.0f, acc);
        REQUIRE(all_finite(std::span<const float>(acc)));
      } catch (const DecodeError&) {
        ++errors;
      }
    }
    REQUIRE(errors > 0);
  }
}

TEST_CASE("Sign sends sign(v)·mean|v|", "[compress][sign]") {
  std::vector<float> v{1.0f, -2.0f, 0.0f, 5.0f};
  Compressor<Dense, Sign, RawCoder> c;
  Rng rng(1);
  std::vector<float> q(4);
  std::vector<std::byte> msg;
  c.encode(v, rng, msg, q);
  REQUIRE(q == std::vector<float>{2.0f, -2.0f, 0.0f, 2.0f});
}

TEST_CASE("natural dithering reconstructs to signed powers of two times sigma", "[compress][natural]") {
  const auto v = gaussian(4096, 77);
  Compressor<Dense, DitheredQuantizer, VectorSourceCoder> c({}, {8, Norm::Linf, true});
  Rng rng(1);
  std::vector<float> q(v.size());
  std::vector<std::byte> msg;
  c.encode(v, rng, msg, q);
  const float sigma = *std::max_element(v.begin(), v.end(), [](float a, float b) { return std::fabs(a) < std::fabs(b); });
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (q[i] == 0.0f) continue;
    int e = 0;
    const double m = std::frexp(std::fabs(static_cast<double>(q[i]) / std::fabs(sigma)), &e);
    REQUIRE(m == Approx(0.5).margin(1e-6));
    REQUIRE((q[i] > 0) == (v[i] > 0));
  }
}
