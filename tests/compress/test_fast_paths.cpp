// Tests for the O(k) sparse paths and the faster coders of issue 16: RandomK's unordered Floyd
// subset (uniform, distinct, its per-thread marks left clear), the three-argument encode and its
// reconstruction(), RandomK's check of only the values it sends, Sign's lane-wise |v| sum, and the
// window-at-a-time and table-driven Elias decoder, RawCoder's word-at-a-time packing (exact on extreme gaps and levels, every truncation refused).
#include <catch2/catch.hpp>

#include <decopt/compress/compress.hpp>

#include "all_pipelines.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <utility>
#include <vector>

using namespace decopt;
using namespace decopt::test;

namespace {

bool same_bits(float a, float b) {
  std::uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

}  // namespace

TEST_CASE("random_subset_unordered: k distinct positions, uniform, marks left clear", "[compress][randomk]") {
  const std::size_t n = 50, k = 5;
  const int trials = 20000;
  std::vector<int> hits(n, 0);
  std::vector<std::uint32_t> picks;
  Rng rng(11);
  for (int t = 0; t < trials; ++t) {
    detail::random_subset_unordered(rng, n, k, picks);
    REQUIRE(picks.size() == k);
    auto sorted = picks;
    std::sort(sorted.begin(), sorted.end());
    REQUIRE(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
    REQUIRE(sorted.back() < n);
    for (const auto p : picks) ++hits[p];
  }
  // each position is in the subset with probability k/n: 2000 ± 5σ (σ ≈ 42)
  for (std::size_t i = 0; i < n; ++i) {
    CAPTURE(i);
    REQUIRE(std::abs(hits[i] - trials * static_cast<int>(k) / static_cast<int>(n)) < 215);
  }
  const auto& marks = detail::subset_marks(n);
  REQUIRE(std::all_of(marks.begin(), marks.end(), [](std::uint64_t w) { return w == 0; }));

  // the same generator state gives the same picks in the same order; k = n takes everything
  Rng a(5), b(5);
  std::vector<std::uint32_t> pa, pb;
  detail::random_subset_unordered(a, 100000, 1000, pa);
  detail::random_subset_unordered(b, 100000, 1000, pb);
  REQUIRE(pa == pb);
  detail::random_subset_unordered(a, 64, 64, pa);
  std::sort(pa.begin(), pa.end());
  for (std::uint32_t i = 0; i < 64; ++i) REQUIRE(pa[i] == i);
}

TEST_CASE("random_subset_unordered is Floyd's algorithm on sequential draws, at every density", "[compress][randomk]") {
  // The reference: Floyd's steps in turn, one HalfDraws::below per step, a std::set as membership.
  const auto reference = [](Rng rng, std::size_t n, std::size_t k) {
    detail::HalfDraws draws(rng);
    std::set<std::uint32_t> taken;
    std::vector<std::uint32_t> picks;
    for (std::size_t j = n - k; j < n; ++j) {
      const std::uint32_t t = draws.below(static_cast<std::uint32_t>(j + 1));
      const auto pick = taken.count(t) != 0 ? static_cast<std::uint32_t>(j) : t;
      taken.insert(pick);
      picks.push_back(pick);
    }
    return std::pair{picks, draws.generator()};
  };
  // sparse (scattered clearing), dense (the bitmap zeroed in order), k = n and k = 1
  const std::vector<std::pair<std::size_t, std::size_t>> cases = {
      {100000, 100}, {100000, 1000}, {1u << 20, 10486}, {777, 777}, {5, 1},
      // batches on both sides of where the optimistic marking starts (2^16), one at 10·2^20 bits,
      // and bounds of 2^26, where Lemire's redraws are frequent (one draw in 64)
      {70000, 10000}, {10u << 20, 104858}, {1u << 26, 3000}};
  for (const auto& [n, k] : cases) {
    CAPTURE(n, k);
    Rng rng(n * 31 + k);
    const auto [expected, after] = reference(rng, n, k);
    std::vector<std::uint32_t> picks;
    detail::random_subset_unordered(rng, n, k, picks);
    REQUIRE(picks == expected);
    REQUIRE(rng.next() == Rng(after).next());  // the generator left where the reference left it
    const auto& marks = detail::subset_marks(n);
    REQUIRE(std::all_of(marks.begin(), marks.begin() + static_cast<std::ptrdiff_t>((n + 63) / 64),
                        [](std::uint64_t w) { return w == 0; }));
  }
}

TEST_CASE("HalfDraws::below_run gives the values of below called in turn", "[compress][randomk]") {
  // bounds small and near 2^32 (redraws frequent), runs odd, even and misaligned on a word
  for (const std::uint32_t first : {1u, 1000u, 0x7fffffffu, 0xfffff000u}) {
    for (const std::size_t m : {std::size_t{1}, std::size_t{2}, std::size_t{31}, std::size_t{32}, std::size_t{64},
                                std::size_t{63}, std::size_t{129}}) {
      for (const bool misaligned : {false, true}) {
        CAPTURE(first, m, misaligned);
        detail::HalfDraws run(Rng(first + m)), one(Rng(first + m));
        if (misaligned) REQUIRE(run.next() == one.next());
        std::vector<std::uint32_t> got(m);
        run.below_run(first, m, got.data());
        for (std::size_t i = 0; i < m; ++i) REQUIRE(got[i] == one.below(first + static_cast<std::uint32_t>(i)));
        REQUIRE(run.next() == one.next());
      }
    }
  }
}

TEMPLATE_LIST_TEST_CASE("the three-argument encode sends the same message; reconstruction() is q without its zeros",
                        "[compress][reconstruction]", AllPipelines) {
  auto dense_q = make_pipeline<TestType>();
  auto kept_q = make_pipeline<TestType>();
  CAPTURE(TestType::name());
  for (const std::size_t d : {std::size_t{1}, std::size_t{33}, std::size_t{5000}}) {
    CAPTURE(d);
    const auto v = gaussian(d, 40 + d);
    Rng r1(77), r2(77);
    std::vector<float> q(d, 9.0f);
    std::vector<std::byte> m1, m2;
    dense_q.encode(v, r1, m1, q);
    kept_q.encode(v, r2, m2);
    REQUIRE(m1 == m2);
    REQUIRE(r1.next() == r2.next());  // both drew the same

    const auto rec = kept_q.reconstruction();
    std::vector<float> scattered(d, 0.0f);
    if (rec.positions.empty()) {
      REQUIRE(rec.values.size() == d);
      std::copy(rec.values.begin(), rec.values.end(), scattered.begin());
    } else {
      REQUIRE(rec.positions.size() == rec.values.size());
      for (std::size_t j = 0; j < rec.positions.size(); ++j) scattered[rec.positions[j]] = rec.values[j];
    }
    std::vector<float> decoded(d, 0.0f);
    kept_q.decode_add(m2, 1.0f, decoded);
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < d; ++i) {
      mismatches += same_bits(scattered[i], q[i]) ? 0 : 1;
      mismatches += decoded[i] == q[i] ? 0 : 1;  // +0 added to +0: only the sign of zero may differ
    }
    REQUIRE(mismatches == 0);
  }
}

TEST_CASE("RandomK checks only the values it sends; the rest of v is never read", "[compress][randomk][config]") {
  using P = Compressor<RandomK, Identity, RawCoder>;
  P pipeline(RandomK{0.01, true}, {});
  const std::size_t d = 20000;
  const auto clean = gaussian(d, 3);
  Rng probe(8);
  std::vector<std::byte> msg;
  pipeline.encode(clean, probe, msg);
  const auto kept = pipeline.reconstruction().positions;
  std::vector<bool> sent(d, false);
  for (const auto p : kept) sent[p] = true;
  const std::size_t unsent = static_cast<std::size_t>(std::find(sent.begin(), sent.end(), false) - sent.begin());
  const std::size_t first_sent = kept[0];

  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    auto v = clean;
    v[unsent] = bad;  // not sent: encodes, and the message decodes to finite values
    Rng rng(8);
    std::vector<float> q(d);
    std::vector<std::byte> out;
    REQUIRE_NOTHROW(pipeline.encode(v, rng, out, q));
    std::vector<float> acc(d, 0.0f);
    pipeline.decode_add(out, 1.0f, acc);
    REQUIRE(std::all_of(acc.begin(), acc.end(), [](float x) { return std::isfinite(x); }));
    REQUIRE(q[unsent] == 0.0f);

    v = clean;
    v[first_sent] = bad;  // sent: ConfigError, nothing appended
    Rng rng2(8);
    out.clear();
    REQUIRE_THROWS_AS(pipeline.encode(v, rng2, out, q), ConfigError);
    REQUIRE(out.empty());
  }
}

TEST_CASE("Sign: the one-pass |v| sum is the fixed lane order's, bit for bit, with the sign masks; flags non-finite input",
          "[compress][sign]") {
  for (const std::size_t n : {std::size_t{1}, std::size_t{15}, std::size_t{16}, std::size_t{17}, std::size_t{63}, std::size_t{64},
                              std::size_t{65}, std::size_t{1000}, std::size_t{100003}}) {
    CAPTURE(n);
    auto v = gaussian(n, n, 3.0);
    if (n > 3) v[3] = 0.0f, v[n - 1] = -0.0f;
    // the reference order written out: lane j sums i ≡ j (mod 16) in index order, then the tree
    double part[16] = {};
    for (std::size_t i = 0; i < n; ++i) part[i % 16] += std::fabs(static_cast<double>(v[i]));
    for (std::size_t width = 8; width > 0; width /= 2)
      for (std::size_t j = 0; j < width; ++j) part[j] += part[j + width];
    const std::size_t words = (n + 63) / 64;
    std::vector<std::uint64_t> pos(words, 7), neg(words, 7);
    const double sum = detail::sign::abs_sum_and_masks(v.data(), n, pos.data(), neg.data());
    std::uint64_t got, want;
    std::memcpy(&got, &sum, 8);
    std::memcpy(&want, &part[0], 8);
    REQUIRE(got == want);
    long double serial = 0.0L;
    for (const float x : v) serial += std::fabs(static_cast<long double>(x));
    REQUIRE(std::fabs(static_cast<long double>(sum) - serial) <= 1e-13L * serial);
    for (std::size_t i = 0; i < 64 * words; ++i) {
      const bool p = (pos[i / 64] >> (i % 64)) & 1u, m = (neg[i / 64] >> (i % 64)) & 1u;
      REQUIRE(p == (i < n && v[i] > 0.0f));
      REQUIRE(m == (i < n && v[i] < 0.0f));
    }
    // q and the levels from the masks, a chunk at a time as Sign writes them
    std::vector<float> q(n, 5.0f);
    std::vector<std::int16_t> levels(n, 7);
    for (std::size_t at = 0; at < n; at += 128)
      detail::sign::write_from_masks(pos.data(), neg.data(), at, std::min<std::size_t>(128, n - at), 2.5f, -2.5f, q.data() + at, levels.data() + at);
    for (std::size_t i = 0; i < n; ++i) {
      REQUIRE(levels[i] == (v[i] > 0.0f ? 1 : v[i] < 0.0f ? -1 : 0));
      REQUIRE(same_bits(q[i], v[i] > 0.0f ? 2.5f : v[i] < 0.0f ? -2.5f : 0.0f));
    }
    // the same q with non-temporal stores straight from the masks, at every alignment of q
    for (std::size_t offset = 0; offset < 16; ++offset) {
      std::vector<float> buffer(n + 16, 5.0f);
      float* streamed = buffer.data() + offset;
      if (!detail::sign::stream_from_masks(pos.data(), neg.data(), n, 2.5f, -2.5f, streamed)) break;  // not compiled for
      detail::stream_fence();
      for (std::size_t i = 0; i < n; ++i)
        if (!same_bits(streamed[i], q[i])) FAIL("streamed q differs at " << i << " (offset " << offset << ")");
      for (std::size_t i = 0; i < offset; ++i) REQUIRE(buffer[i] == 5.0f);
      for (std::size_t i = offset + n; i < buffer.size(); ++i) REQUIRE(buffer[i] == 5.0f);
    }
    for (const std::size_t at : {std::size_t{0}, n / 2, n - 1}) {  // head, body and tail lanes
      auto w = v;
      w[at] = std::numeric_limits<float>::quiet_NaN();
      REQUIRE_FALSE(std::isfinite(detail::sign::abs_sum_and_masks(w.data(), n, pos.data(), neg.data())));
      REQUIRE(((pos[at / 64] | neg[at / 64]) >> (at % 64) & 1u) == 0);  // NaN: level 0
      w[at] = -std::numeric_limits<float>::infinity();
      REQUIRE_FALSE(std::isfinite(detail::sign::abs_sum_and_masks(w.data(), n, pos.data(), neg.data())));
    }
  }
  std::vector<float> largest(1 << 12, std::numeric_limits<float>::max());  // finite floats cannot overflow the sum
  std::vector<std::uint64_t> pos(64), neg(64);
  REQUIRE(std::isfinite(detail::sign::abs_sum_and_masks(largest.data(), largest.size(), pos.data(), neg.data())));
}

TEST_CASE("Sign + VSC: the message coded from the sign masks is the one coded from the levels", "[compress][sign][vsc]") {
  for (const std::size_t n : {std::size_t{1}, std::size_t{63}, std::size_t{64}, std::size_t{1000}, std::size_t{100003}}) {
    // dense signs, some zeros, mostly zeros (the sparse suffix ranks), one sign only, and a
    // unary-coded frequent sign beside a Golomb-coded rarer one (60% / 5% / 35% zeros), and dense
    // signs with a few zeros (both signs unary-coded, neither implied)
    for (int pattern = 0; pattern < 6; ++pattern) {
      CAPTURE(n, pattern);
      auto v = gaussian(n, 40 + n + static_cast<std::size_t>(pattern));
      Rng pick(n);
      for (std::size_t i = 0; i < n; ++i) {
        if (pattern == 1 && pick.below(4) == 0) v[i] = 0.0f;
        if (pattern == 2 && pick.below(200) != 0) v[i] = 0.0f;
        if (pattern == 3) v[i] = std::fabs(v[i]) + (pick.below(300) == 0 ? -10.0f : 0.0f);
        if (pattern == 4) {
          const auto u = pick.below(100);
          v[i] = u < 60 ? std::fabs(v[i]) + 0.1f : u < 65 ? -std::fabs(v[i]) - 0.1f : 0.0f;
        }
        if (pattern == 5 && i % 97 == 3) v[i] = 0.0f;
      }
      Compressor<Dense, Sign, VectorSourceCoder> c;
      Rng rng(1);
      std::vector<float> q(n), acc(n, 0.0f);
      std::vector<std::byte> msg;
      c.encode(v, rng, msg, q);
      // the reference: the quantizer's levels through the coder's level path
      detail::LevelBlock blk;
      std::vector<float> q2(n);
      Sign{}.quantize(v, 1.0f, rng, blk, q2);
      for (std::size_t i = 0; i < n; ++i) REQUIRE(same_bits(q[i], q2[i]));
      std::vector<std::byte> payload;
      VectorSourceCoder coder;
      detail::CodeShape shape;
      shape.n = n;
      coder.encode_levels(shape, blk.levels, 1, payload);
      REQUIRE(msg.size() >= payload.size() + message::checksum_bytes);
      const std::vector<std::byte> tail(msg.end() - static_cast<std::ptrdiff_t>(payload.size() + message::checksum_bytes),
                                        msg.end() - static_cast<std::ptrdiff_t>(message::checksum_bytes));
      REQUIRE(tail == payload);
      c.decode_add(msg, 1.0f, acc);
      for (std::size_t i = 0; i < n; ++i)
        if (!same_bits(q[i], acc[i])) FAIL("q and the decoded message differ at " << i);
    }
  }
}

template <class Coder>
void check_sign_q_is_decoded(std::size_t n) {
  CAPTURE(n, Coder::name());
  auto v = gaussian(n, 9 + n);
  v[1] = 0.0f;
  Compressor<Dense, Sign, Coder> c;
  Rng rng(3);
  std::vector<float> q(n, 5.0f), acc(n, 0.0f);
  std::vector<std::byte> msg;
  c.encode(v, rng, msg, q);
  c.decode_add(msg, 1.0f, acc);
  for (std::size_t i = 0; i < n; ++i)
    if (!same_bits(q[i], acc[i])) FAIL("q and the decoded message differ at " << i);
  REQUIRE(same_bits(q[1], 0.0f));

  // The three-argument encode: the same message; q (which Sign + VSC writes from its masks only
  // when reconstruction() is asked for) has the same bits, after another encode in between too.
  Compressor<Dense, Sign, Coder> kept;
  Rng r1(3);
  std::vector<std::byte> first, second;
  kept.encode(gaussian(n, 1 + n), r1, first);
  kept.encode(v, r1, second);
  REQUIRE(second == msg);
  for (int call = 0; call < 2; ++call) {
    const auto rec = kept.reconstruction();
    REQUIRE(rec.positions.empty());
    REQUIRE(rec.values.size() == n);
    for (std::size_t i = 0; i < n; ++i)
      if (!same_bits(rec.values[i], q[i])) FAIL("reconstruction() and q differ at " << i << " (call " << call << ")");
  }
}

TEST_CASE("Sign: q is written from the levels or the masks with the decoder's values, streamed or not", "[compress][sign]") {
  // 2^22 floats is where q goes past the caches with non-temporal stores (from the masks for VSC)
  for (const std::size_t n : {std::size_t{1000}, (std::size_t{1} << 22) + 5}) {
    check_sign_q_is_decoded<RawCoder>(n);
    check_sign_q_is_decoded<VectorSourceCoder>(n);
  }
}

TEST_CASE("pack_fixed writes BitWriter's bits at every width and offset; FixedFields reads them back",
          "[compress][raw]") {
  Rng rng(21);
  for (int width = 1; width <= 16; ++width) {
    const int bias = 1 << (width - 1);  // levels in [−bias, bias − 1], values in [0, 2^width)
    for (const std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{63}, std::size_t{64}, std::size_t{65}, std::size_t{1000}}) {
      for (const int offset : {0, 1, 7, 31, 63, 64, 100}) {
        CAPTURE(width, n, offset);
        std::vector<std::int16_t> levels(n);
        for (auto& l : levels) l = static_cast<std::int16_t>(static_cast<int>(rng.below(std::uint64_t{1} << width)) - bias);
        std::vector<std::byte> want, got;
        const std::uint64_t lead = rng.next();
        {
          BitWriter w(want);
          w.write(lead, offset > 64 ? 64 : offset);
          if (offset > 64) w.write(lead >> 3, offset - 64);
          for (const auto l : levels) w.write(static_cast<std::uint64_t>(l + bias), width);
          w.finish();
        }
        {
          BitWriter w(got);
          w.write(lead, offset > 64 ? 64 : offset);
          if (offset > 64) w.write(lead >> 3, offset - 64);
          w.write_words(n * static_cast<std::uint64_t>(width), [&](std::uint64_t& acc, int& filled, std::byte* dst) {
            detail::pack_fixed(levels, bias, width, acc, filled, dst);
          });
          w.finish();
        }
        REQUIRE(got == want);
        const detail::FixedFields fields(got, static_cast<std::uint64_t>(offset), width);
        for (std::size_t j = 0; j < n; ++j) REQUIRE(static_cast<int>(fields[j]) - bias == levels[j]);
      }
    }
  }
}

TEST_CASE("EliasCoder: extreme gaps and levels decode exactly; every truncation is refused", "[compress][elias]") {
  EliasCoder coder;
  const int s = DitheredQuantizer::max_levels;
  // levels over n = 3·2^20 with gaps from 1 to ~2^21 and magnitudes up to s
  const std::size_t n = 3u << 20;
  std::vector<std::int16_t> levels(n, 0);
  const std::pair<std::size_t, int> nonzeros[] = {{0, 1}, {1, -1}, {2, s}, {3, -s}, {1000, 2}, {(1u << 21) + 7, -300}, {n - 1, 12345}};
  for (const auto& [pos, l] : nonzeros) levels[pos] = static_cast<std::int16_t>(l);
  detail::CodeShape shape;
  shape.n = n;
  shape.k = n;
  std::vector<std::byte> out;
  coder.encode_levels(shape, levels, s, out);
  std::vector<std::pair<std::size_t, int>> got;
  const std::size_t used = coder.decode_levels(out, shape, s, [&](std::size_t p, int l) { got.emplace_back(p, l); });
  REQUIRE(used == out.size());
  REQUIRE(got == std::vector<std::pair<std::size_t, int>>(std::begin(nonzeros), std::end(nonzeros)));
  for (std::size_t cut = 0; cut < out.size(); ++cut) {
    CAPTURE(cut);
    const std::span<const std::byte> prefix(out.data(), cut);
    REQUIRE_THROWS_AS(coder.decode_levels(prefix, shape, s, [](std::size_t, int) {}), DecodeError);
  }
  // a level above the receiver's s is refused
  REQUIRE_THROWS_AS(coder.decode_levels(out, shape, s - 1, [](std::size_t, int) {}), DecodeError);

  // positions with gaps near 2^32 (n = 2^32 − 2, the largest dimension)
  detail::CodeShape pos_shape;
  pos_shape.n = message::max_dimension;
  const std::vector<std::uint32_t> positions{0, 5, 0x7fffffffu, 0xfffffffcu, 0xfffffffdu};
  pos_shape.k = positions.size();
  pos_shape.positions = positions;
  std::vector<std::byte> pos_bytes;
  coder.encode_positions(pos_shape, pos_bytes);
  std::vector<std::uint32_t> decoded;
  REQUIRE(coder.decode_positions(pos_bytes, pos_shape, [&](std::size_t p) { decoded.push_back(static_cast<std::uint32_t>(p)); }) ==
          pos_bytes.size());
  REQUIRE(decoded == positions);
  for (std::size_t cut = 0; cut < pos_bytes.size(); ++cut) {
    const std::span<const std::byte> prefix(pos_bytes.data(), cut);
    REQUIRE_THROWS_AS(coder.decode_positions(prefix, pos_shape, [](std::size_t) {}), DecodeError);
  }
}

TEST_CASE("EliasCoder: short codewords (one table lookup each) decode exactly beside long ones", "[compress][elias]") {
  EliasCoder coder;
  Rng rng(77);
  for (const int s : {1, 2, 4, 16, 300}) {
    CAPTURE(s);
    // mostly gaps of 1–3 and small magnitudes (the table path), every 50th a long gap or a large
    // magnitude (the window readers), so both paths interleave at every bit offset
    const std::size_t n = 200000;
    std::vector<std::int16_t> levels(n, 0);
    std::vector<std::pair<std::size_t, int>> expected;
    for (std::size_t p = 0; p < n;) {
      const bool long_one = rng.below(50) == 0;
      const int mag = long_one ? s : 1 + static_cast<int>(rng.below(static_cast<std::uint64_t>(std::min(s, 3))));
      const int l = rng.below(2) == 0 ? mag : -mag;
      levels[p] = static_cast<std::int16_t>(l);
      expected.emplace_back(p, l);
      p += 1 + static_cast<std::size_t>(long_one ? rng.below(5000) : rng.below(3));
    }
    detail::CodeShape shape;
    shape.n = n;
    shape.k = n;
    std::vector<std::byte> out;
    coder.encode_levels(shape, levels, s, out);
    std::vector<std::pair<std::size_t, int>> got;
    REQUIRE(coder.decode_levels(out, shape, s, [&](std::size_t p, int l) { got.emplace_back(p, l); }) == out.size());
    REQUIRE(got == expected);
    // a magnitude above the receiver's s is refused on either path
    if (s > 1) REQUIRE_THROWS_AS(coder.decode_levels(out, shape, s - 1, [](std::size_t, int) {}), DecodeError);
    // every truncation of a short message is refused
    std::vector<std::int16_t> few(levels.begin(), levels.begin() + 600);
    detail::CodeShape few_shape;
    few_shape.n = few.size();
    few_shape.k = few.size();
    std::vector<std::byte> small;
    coder.encode_levels(few_shape, few, s, small);
    for (std::size_t cut = 0; cut < small.size(); ++cut) {
      CAPTURE(cut);
      REQUIRE_THROWS_AS(coder.decode_levels(std::span<const std::byte>(small.data(), cut), few_shape, s, [](std::size_t, int) {}),
                        DecodeError);
    }
  }
}

TEST_CASE("GolombRunTable decodes the runs read_golomb decodes; TopK-like positions round-trip and refuse truncation",
          "[compress][vsc]") {
  Rng rng(31);
  for (const std::uint64_t b : {1u, 2u, 3u, 5u, 69u, 100u, 1000u, 4095u}) {
    CAPTURE(b);
    const detail::GolombCode g(b);
    REQUIRE(detail::GolombRunTable::useful(g));
    const detail::GolombRunTable table(g);
    std::vector<std::uint64_t> runs(3000);
    for (auto& r : runs) r = rng.below(rng.below(8) == 0 ? 40 * b + 50 : 3 * b);  // some longer than the window
    detail::WordWriter w;
    for (const auto r : runs) g.write(w, r);
    std::vector<std::byte> bytes;
    w.append_to(bytes);
    detail::BitCursor by_table(bytes.data(), bytes.size()), by_bits(bytes.data(), bytes.size());
    for (const auto r : runs) {
      REQUIRE(table.read(by_table, g, 1u << 30) == r);
      REQUIRE(by_bits.read_golomb(g, 1u << 30) == r);
    }
    REQUIRE(by_table.position() == by_bits.position());
    REQUIRE_FALSE(by_table.overrun());
  }
  // 1% of 300 000 positions (the table path), with a few long gaps, through the coder
  const std::size_t n = 300000;
  std::vector<std::uint32_t> positions;
  for (std::uint32_t p = 0; p < n; p += 1 + static_cast<std::uint32_t>(rng.below(positions.size() % 500 == 7 ? 20000 : 200)))
    positions.push_back(p);
  VectorSourceCoder coder;
  detail::CodeShape shape;
  shape.n = n;
  shape.k = positions.size();
  shape.positions = positions;
  REQUIRE(shape.k >= detail::GolombRunTable::min_codewords);
  std::vector<std::byte> bytes;
  coder.encode_positions(shape, bytes);
  std::vector<std::uint32_t> got;
  REQUIRE(coder.decode_positions(bytes, shape, [&](std::size_t p) { got.push_back(static_cast<std::uint32_t>(p)); }) == bytes.size());
  REQUIRE(got == positions);
  for (std::size_t cut = 0; cut < bytes.size(); cut += 1 + cut / 16) {
    CAPTURE(cut);
    const std::span<const std::byte> prefix(bytes.data(), cut);
    std::size_t emitted = 0;
    REQUIRE_THROWS_AS(coder.decode_positions(prefix, shape, [&](std::size_t p) { REQUIRE(p < n); ++emitted; }), DecodeError);
  }
}
