// PowerSGD (decopt/compress/power_sgd.hpp): bit-exact round trips, what the power iteration
// computes (exact on a rank-r matrix, orthonormal P, convergence under error feedback), dense
// blocks and coordinates, refused configurations, malformed and forged messages, state.
#include <catch2/catch.hpp>

#include <decopt/compress/compress.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "all_pipelines.hpp"
#include "message_helpers.hpp"

using namespace decopt;
using decopt::test::reseal;
using decopt::test::encode_once;
using decopt::test::normal_vector;
using decopt::test::same_bits;

namespace {

// Two matrices with a vector between them, padding, and a tail in no block:
//   [0, 1536)   32 × 48 matrix            [1536, 1541) bias (dense)     [1541, 1552) padding
//   [1552, 1752) 20 × 10 matrix           [1752, 1756) 2 × 2 matrix (rank 1 would not shrink it: dense)
//   [1756, 1770) tail (dense)
constexpr std::size_t kDim = 1770;
const std::vector<MatrixBlock> kBlocks = {{1552, 20, 10}, {0, 32, 48}, {1752, 2, 2}};

PowerSGD bound_power_sgd(int rank, int node = 0, std::uint64_t seed = 7) {
  PowerSGD c(rank);
  c.set_matrix_blocks(kBlocks);
  c.bind_node(node, 4, seed);
  return c;
}

}  // namespace

TEST_CASE("PowerSGD: decode equals the sender's reconstruction bit for bit", "[compress][power_sgd]") {
  for (const int rank : {1, 2, 4}) {
    PowerSGD sender = bound_power_sgd(rank);
    const PowerSGD receiver = bound_power_sgd(rank, 3);  // another node: the same layout decodes it
    for (int round = 0; round < 3; ++round) {            // warm starts change P and Q every round
      const std::vector<float> v = normal_vector(kDim, 100 + static_cast<std::uint64_t>(round));
      std::vector<float> q;
      const auto msg = encode_once(sender, v, q);
      std::vector<float> acc(kDim, 0.0f);
      receiver.decode_add(msg, 1.0f, acc);
      REQUIRE(same_bits(acc, q));
      std::vector<float> weighted(kDim, 0.75f), expected(kDim);
      for (std::size_t k = 0; k < kDim; ++k) expected[k] = 0.75f + 0.3f * q[k];
      receiver.decode_add(msg, 0.3f, weighted);
      REQUIRE(same_bits(weighted, expected));
    }
  }
}

TEST_CASE("PowerSGD: dense coordinates and blocks rank r would not shrink are sent exactly", "[compress][power_sgd]") {
  PowerSGD c = bound_power_sgd(1);
  REQUIRE(c.low_rank_blocks().size() == 2);  // the 2 × 2 block costs (2 + 2)·1 ≥ 4: dense
  const std::vector<float> v = normal_vector(kDim, 5);
  std::vector<float> q;
  const auto msg = encode_once(c, v, q);
  for (std::size_t k = 1536; k < 1552; ++k) REQUIRE(q[k] == v[k]);
  for (std::size_t k = 1752; k < kDim; ++k) REQUIRE(q[k] == v[k]);
  // header, rank, count, fingerprint, (32 + 48) + (20 + 10) factor floats, 16 + 18 dense floats, CRC
  const std::size_t payload = 4 * ((32 + 48) + (20 + 10) + 16 + 18);
  REQUIRE(msg.size() == 6 + 2 + 1 + 1 + 4 + payload + 4);
  // a rank at least min(rows, cols) sends every block dense: lossless
  REQUIRE(bound_power_sgd(19).low_rank_blocks().size() == 1);  // 32 × 48: (32 + 48)·19 = 1520 < 1536
  REQUIRE(bound_power_sgd(20).low_rank_blocks().empty());       // 1600 ≥ 1536: dense
  PowerSGD all_dense = bound_power_sgd(32);
  REQUIRE(all_dense.low_rank_blocks().empty());
  std::vector<float> q2;
  encode_once(all_dense, v, q2);
  REQUIRE(same_bits(q2, v));
}

TEST_CASE("PowerSGD: one power iteration recovers a matrix of rank r, with orthonormal P", "[compress][power_sgd]") {
  constexpr std::size_t rows = 40, cols = 30;
  for (const std::size_t r : {1u, 2u, 3u}) {
    // M = A Bᵀ of rank r
    const std::vector<float> a = normal_vector(rows * r, 11), b = normal_vector(cols * r, 12);
    std::vector<float> v(rows * cols, 0.0f);
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t j = 0; j < cols; ++j)
        for (std::size_t c = 0; c < r; ++c) v[i * cols + j] += a[c * rows + i] * b[c * cols + j];
    PowerSGD c(static_cast<int>(r));
    const MatrixBlock block{0, rows, cols};
    c.set_matrix_blocks(std::span(&block, 1));
    std::vector<float> q;
    const auto msg = encode_once(c, v, q);
    double err = 0.0, norm = 0.0;
    for (std::size_t k = 0; k < v.size(); ++k) {
      err += (q[k] - v[k]) * static_cast<double>(q[k] - v[k]);
      norm += static_cast<double>(v[k]) * v[k];
    }
    REQUIRE(std::sqrt(err / norm) < 1e-4);
    // P is the first rows·r floats of the payload: its columns are orthonormal
    const std::size_t p_at = 6 + 2 + 1 + 1 + 4;
    std::vector<float> p(rows * r);
    std::memcpy(p.data(), msg.data() + p_at, p.size() * sizeof(float));
    for (std::size_t c1 = 0; c1 < r; ++c1)
      for (std::size_t c2 = 0; c2 < r; ++c2) {
        double dot = 0.0;
        for (std::size_t i = 0; i < rows; ++i) dot += static_cast<double>(p[c1 * rows + i]) * p[c2 * rows + i];
        REQUIRE(dot == Approx(c1 == c2 ? 1.0 : 0.0).margin(1e-5));
      }
  }
}

TEST_CASE("PowerSGD: under error feedback the warm-started iteration drives a fixed residual to zero",
          "[compress][power_sgd]") {
  // x̂ += C(x − x̂) with x fixed: each round's q projects the residual on a better subspace
  constexpr std::size_t rows = 24, cols = 16;
  const std::vector<float> x = normal_vector(rows * cols, 21);
  std::vector<float> xhat(x.size(), 0.0f), residual(x.size()), q;
  PowerSGD c(2);
  const MatrixBlock block{0, rows, cols};
  c.set_matrix_blocks(std::span(&block, 1));
  auto residual_norm = [&] {
    double s = 0.0;
    for (std::size_t k = 0; k < x.size(); ++k) s += static_cast<double>(x[k] - xhat[k]) * (x[k] - xhat[k]);
    return std::sqrt(s);
  };
  const double start = residual_norm();
  for (int t = 0; t < 60; ++t) {
    for (std::size_t k = 0; k < x.size(); ++k) residual[k] = x[k] - xhat[k];
    encode_once(c, residual, q);
    for (std::size_t k = 0; k < x.size(); ++k) xhat[k] += q[k];
  }
  REQUIRE(residual_norm() < 1e-3 * start);
}

TEST_CASE("PowerSGD: a zero residual keeps the warm start", "[compress][power_sgd]") {
  PowerSGD c = bound_power_sgd(2);
  const std::vector<float> v = normal_vector(kDim, 31);
  std::vector<float> q;
  encode_once(c, v, q);
  const std::vector<float> warm(c.warm_start().begin(), c.warm_start().end());
  const std::vector<float> zero(kDim, 0.0f);
  encode_once(c, zero, q);
  REQUIRE(same_bits(q, zero));
  REQUIRE(same_bits(c.warm_start(), warm));
  encode_once(c, v, q);  // and the iteration goes on from it
  REQUIRE_FALSE(same_bits(c.warm_start(), warm));
}

TEST_CASE("PowerSGD: refused configurations and inputs", "[compress][power_sgd]") {
  REQUIRE_THROWS_AS(PowerSGD(0), ConfigError);
  REQUIRE_THROWS_AS(PowerSGD(-3), ConfigError);
  REQUIRE_THROWS_AS(PowerSGD(PowerSGD::max_rank + 1), ConfigError);
  PowerSGD c(1);
  REQUIRE_THROWS_AS(c.set_matrix_blocks({}), ConfigError);
  const std::vector<MatrixBlock> overlap = {{0, 4, 4}, {10, 2, 2}};
  REQUIRE_THROWS_AS(c.set_matrix_blocks(overlap), ConfigError);
  const std::vector<MatrixBlock> empty_block = {{0, 0, 4}};
  REQUIRE_THROWS_AS(c.set_matrix_blocks(empty_block), ConfigError);

  // no layout: encode names what is missing instead of sending the vector dense
  std::vector<float> v = normal_vector(64, 1), q(64);
  std::vector<std::byte> out;
  Rng rng(1);
  REQUIRE_THROWS_WITH(c.encode(v, rng, out, q), Catch::Contains("ParameterLayout"));
  REQUIRE(out.empty());

  PowerSGD bound = bound_power_sgd(2);
  std::vector<float> short_v(kBlocks[0].offset + 10), short_q(short_v.size());
  REQUIRE_THROWS_AS(bound.encode(short_v, rng, out, short_q), ConfigError);  // ends inside a block
  std::vector<float> big = normal_vector(kDim, 2), big_q(kDim);
  encode_once(bound, big, big_q);
  const std::vector<float> warm(bound.warm_start().begin(), bound.warm_start().end());
  for (const std::size_t at : {std::size_t{5}, std::size_t{1600}, std::size_t{1538}, std::size_t{1765}}) {
    std::vector<float> bad = big;
    bad[at] = std::nanf("");
    REQUIRE_THROWS_AS(bound.encode(bad, rng, out, big_q), ConfigError);
    bad[at] = INFINITY;
    REQUIRE_THROWS_AS(bound.encode(bad, rng, out, big_q), ConfigError);
  }
  REQUIRE(out.empty());
  REQUIRE(same_bits(bound.warm_start(), warm));  // nothing changed by the refused encodes
  std::vector<float> wrong_q(kDim - 1);
  REQUIRE_THROWS_AS(bound.encode(big, rng, out, wrong_q), ConfigError);
}

TEST_CASE("PowerSGD: truncated, corrupted and foreign messages are refused, the accumulator untouched",
          "[compress][power_sgd]") {
  PowerSGD sender = bound_power_sgd(2);
  const PowerSGD receiver = bound_power_sgd(2, 1);
  const std::vector<float> v = normal_vector(kDim, 41);
  std::vector<float> q;
  const auto msg = encode_once(sender, v, q);
  const std::vector<float> before(kDim, 0.5f);
  std::vector<float> acc = before;
  auto refused = [&](const std::vector<std::byte>& bad) {
    acc = before;
    bool threw = false;
    try {
      receiver.decode_add(bad, 1.0f, acc);
    } catch (const DecodeError&) {
      threw = true;
    }
    return threw && same_bits(acc, before);
  };
  for (std::size_t len = 0; len < msg.size(); ++len) {
    const std::vector<std::byte> cut(msg.begin(), msg.begin() + static_cast<std::ptrdiff_t>(len));
    REQUIRE(refused(cut));
  }
  for (std::size_t at = 0; at < msg.size(); at += 7) {
    std::vector<std::byte> flipped = msg;
    flipped[at] ^= std::byte{0x10};
    REQUIRE(refused(flipped));
  }
  // forged behind a valid checksum: rank, block count, fingerprint (bytes 8, 9, 10)
  for (const std::size_t at : {std::size_t{8}, std::size_t{9}, std::size_t{10}}) {
    std::vector<std::byte> forged = msg;
    forged[at] ^= std::byte{0x01};
    reseal(forged);
    REQUIRE(refused(forged));
  }
  {  // one float more, one less
    std::vector<std::byte> longer = msg;
    longer.insert(longer.end() - 4, 4, std::byte{0});
    reseal(longer);
    REQUIRE(refused(longer));
    std::vector<std::byte> shorter = msg;
    shorter.erase(shorter.end() - 8, shorter.end() - 4);
    reseal(shorter);
    REQUIRE(refused(shorter));
  }
  for (const float bad : {std::nanf(""), INFINITY, 3e38f}) {  // a factor: non-finite, or P Qᵀ overflows
    std::vector<std::byte> forged = msg;
    std::memcpy(forged.data() + 14, &bad, 4);
    std::memcpy(forged.data() + 14 + 4 * 32 * 2, &bad, 4);  // and one of Q (after P's 32·2 floats)
    reseal(forged);
    REQUIRE(refused(forged));
  }
  {  // a dense value
    std::vector<std::byte> forged = msg;
    const float nan = std::nanf("");
    std::memcpy(forged.data() + forged.size() - 8, &nan, 4);
    reseal(forged);
    REQUIRE(refused(forged));
  }
  // receivers of another rank, layout or dimension
  const PowerSGD other_rank = bound_power_sgd(1);
  acc = before;
  REQUIRE_THROWS_AS(other_rank.decode_add(msg, 1.0f, acc), DecodeError);
  PowerSGD other_layout(2);
  const std::vector<MatrixBlock> moved = {{1552, 20, 10}, {0, 48, 32}, {1752, 2, 2}};
  other_layout.set_matrix_blocks(moved);
  REQUIRE_THROWS_AS(other_layout.decode_add(msg, 1.0f, acc), DecodeError);
  std::vector<float> wrong_dim(kDim + 1, 0.0f);
  REQUIRE_THROWS_AS(receiver.decode_add(msg, 1.0f, wrong_dim), DecodeError);
  // a message of another pipeline
  Compressor<Dense, Identity, RawCoder> dense;
  std::vector<std::byte> foreign;
  Rng rng(3);
  std::vector<float> dq(kDim);
  dense.encode(v, rng, foreign, dq);
  REQUIRE(refused(foreign));
  REQUIRE_THROWS_AS(receiver.decode_add(msg, NAN, acc), ConfigError);
  PowerSGD unlaid(2);
  REQUIRE_THROWS_AS(unlaid.decode_add(msg, 1.0f, acc), ConfigError);
}

TEST_CASE("PowerSGD: same seed and rank give the same bits; another node starts elsewhere", "[compress][power_sgd]") {
  PowerSGD a = bound_power_sgd(2, 1, 99), b = bound_power_sgd(2, 1, 99), c = bound_power_sgd(2, 2, 99);
  const std::vector<float> v = normal_vector(kDim, 51);
  std::vector<float> qa, qb, qc;
  for (int t = 0; t < 3; ++t) {
    const auto ma = encode_once(a, v, qa), mb = encode_once(b, v, qb), mc = encode_once(c, v, qc);
    REQUIRE(ma == mb);
    REQUIRE(ma != mc);
  }
}

TEST_CASE("PowerSGD: the warm start round-trips through save_state/load_state", "[compress][power_sgd]") {
  PowerSGD a = bound_power_sgd(2);
  const std::vector<float> v = normal_vector(kDim, 61), w = normal_vector(kDim, 62);
  std::vector<float> q;
  std::vector<std::byte> fresh_state;
  a.save_state(fresh_state);  // before the first encode: no warm start yet
  encode_once(a, v, q);
  encode_once(a, w, q);
  std::vector<std::byte> state;
  a.save_state(state);
  PowerSGD b = bound_power_sgd(2, 3, 1234);  // other seed and node: the state decides
  ByteReader in(state);
  b.load_state(in);
  REQUIRE(in.remaining() == 0);
  REQUIRE(same_bits(b.warm_start(), a.warm_start()));
  std::vector<float> qa, qb;
  REQUIRE(encode_once(a, v, qa) == encode_once(b, v, qb));
  REQUIRE(same_bits(qa, qb));
  ByteReader fresh_in(fresh_state);
  b.load_state(fresh_in);
  REQUIRE(b.warm_start().empty());

  SECTION("malformed state is refused and changes nothing") {
    const std::vector<float> kept(a.warm_start().begin(), a.warm_start().end());
    for (std::size_t len = 0; len < state.size(); ++len) {
      std::vector<std::byte> cut(state.begin(), state.begin() + static_cast<std::ptrdiff_t>(len));
      ByteReader cut_in(cut);
      REQUIRE_THROWS_AS(a.load_state(cut_in), DecodeError);
      REQUIRE(same_bits(a.warm_start(), kept));
    }
    std::vector<std::byte> bad_tag = state;
    bad_tag[0] ^= std::byte{1};
    ByteReader tag_in(bad_tag);
    REQUIRE_THROWS_AS(a.load_state(tag_in), DecodeError);
    std::vector<std::byte> bad_flag = state;
    bad_flag[4 + 1 + 4] = std::byte{2};
    ByteReader flag_in(bad_flag);
    REQUIRE_THROWS_AS(a.load_state(flag_in), DecodeError);
    std::vector<std::byte> nan_value = state;
    const float nan = std::nanf("");
    std::memcpy(nan_value.data() + nan_value.size() - 4, &nan, 4);
    ByteReader nan_in(nan_value);
    REQUIRE_THROWS_AS(a.load_state(nan_in), DecodeError);
    REQUIRE(same_bits(a.warm_start(), kept));
  }
  SECTION("the state of another rank or layout is a ConfigError") {
    PowerSGD rank1 = bound_power_sgd(1);
    ByteReader in1(state);
    REQUIRE_THROWS_AS(rank1.load_state(in1), ConfigError);
    PowerSGD other(2);
    const std::vector<MatrixBlock> one = {{0, 32, 48}};
    other.set_matrix_blocks(one);
    ByteReader in2(state);
    REQUIRE_THROWS_AS(other.load_state(in2), ConfigError);
  }
}
