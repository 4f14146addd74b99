// PermK (decopt/compress/perm_k.hpp): the blocks of the n nodes partition the coordinates (also
// when n does not divide d, and when n > d), the mean over the nodes of identical inputs is the
// input, each node's compressor is unbiased, round trips are bit-exact, malformed and forged
// messages are refused, the counter is state.
#include <catch2/catch.hpp>

#include <decopt/compress/compress.hpp>
#include <decopt/decopt.hpp>

#include <algorithm>
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

PermK bound_perm_k(int rank, int nodes, std::uint64_t seed = 5) {
  PermK c;
  c.bind_node(rank, nodes, seed);
  return c;
}

}  // namespace

TEST_CASE("PermK: the nodes' blocks partition the coordinates", "[compress][perm_k]") {
  for (const std::size_t d : {1u, 7u, 100u, 101u, 1000u})
    for (const int n : {1, 3, 4, 8, 200}) {
      const PermK c = bound_perm_k(0, n);
      for (const std::uint64_t round : {0u, 1u, 17u}) {
        std::vector<int> hits(d, 0);
        std::size_t largest = 0;
        for (int i = 0; i < n; ++i) {
          const auto block = c.block_of(d, i, round);
          largest = std::max(largest, block.size());
          for (const std::uint32_t k : block) {
            REQUIRE(k < d);
            ++hits[k];
          }
        }
        REQUIRE(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
        REQUIRE(largest <= (d + static_cast<std::size_t>(n) - 1) / static_cast<std::size_t>(n));
      }
    }
  // a fresh permutation every round
  const PermK c = bound_perm_k(0, 4);
  REQUIRE(c.block_of(1000, 1, 0) != c.block_of(1000, 1, 1));
}

TEST_CASE("PermK: for identical inputs the nodes' messages sum to n·v exactly and average to v",
          "[compress][perm_k]") {
  for (const int n : {2, 3, 4, 5, 8}) {
    const std::size_t d = 1001;  // not a multiple of any n here but 1
    const std::vector<float> v = normal_vector(d, 7);
    std::vector<float> sum(d, 0.0f), mean(d, 0.0f), q;
    const PermK receiver = bound_perm_k(0, n);
    for (int i = 0; i < n; ++i) {
      PermK node = bound_perm_k(i, n);
      const auto msg = encode_once(node, v, q);
      for (std::size_t k = 0; k < d; ++k) sum[k] += q[k];
      receiver.decode_add(msg, 1.0f / static_cast<float>(n), mean);
    }
    const auto nf = static_cast<float>(n);
    for (std::size_t k = 0; k < d; ++k) REQUIRE(sum[k] == nf * v[k]);  // each coordinate from one node
    if (std::has_single_bit(static_cast<unsigned>(n))) {
      REQUIRE(same_bits(mean, v));  // (1/n)·(n·v) is exact for a power of two
    } else {
      for (std::size_t k = 0; k < d; ++k) REQUIRE(mean[k] == Approx(v[k]).epsilon(1e-6));
    }
  }
}

TEST_CASE("PermK: each node's compressor is unbiased over draws", "[compress][perm_k]") {
  // d = 10, n = 4: blocks of 3 over 12 padded positions; each coordinate in node 1's block with
  // probability 1/4, so E C_1(v) = 4 · v / 4 = v.
  constexpr std::size_t d = 10;
  constexpr int n = 4, draws = 8000;
  const std::vector<float> v = normal_vector(d, 9);
  PermK c = bound_perm_k(1, n, 2024);
  std::vector<double> mean(d, 0.0);
  std::vector<int> picked(d, 0);
  std::vector<float> q;
  for (int t = 0; t < draws; ++t) {
    encode_once(c, v, q);
    for (std::size_t k = 0; k < d; ++k) {
      mean[k] += q[k] / static_cast<double>(draws);
      picked[k] += q[k] != 0.0f ? 1 : 0;
    }
  }
  REQUIRE(c.counter() == static_cast<std::uint64_t>(draws));
  for (std::size_t k = 0; k < d; ++k) {
    // sd of the mean: sqrt(n − 1)·|v_k| / sqrt(draws) ≈ 0.019 |v_k|; allow 5 of them
    REQUIRE(std::fabs(mean[k] - v[k]) < 5.0 * std::sqrt(n - 1.0) * std::fabs(v[k]) / std::sqrt(draws));
    REQUIRE(std::fabs(picked[k] / static_cast<double>(draws) - 0.25) < 5.0 * std::sqrt(0.25 * 0.75 / draws));
  }
}

TEST_CASE("PermK: decode equals the sender's q bit for bit; the same seed gives the same bits", "[compress][perm_k]") {
  const std::size_t d = 777;
  PermK a = bound_perm_k(2, 5, 11), b = bound_perm_k(2, 5, 11), other_seed = bound_perm_k(2, 5, 12);
  const PermK receiver = bound_perm_k(4, 5, 11);
  for (int t = 0; t < 3; ++t) {
    const std::vector<float> v = normal_vector(d, 70 + static_cast<std::uint64_t>(t));
    std::vector<float> q, qb, qo;
    const auto msg = encode_once(a, v, q);
    REQUIRE(encode_once(b, v, qb) == msg);
    REQUIRE(encode_once(other_seed, v, qo) != msg);
    std::vector<float> acc(d, 0.0f);
    receiver.decode_add(msg, 1.0f, acc);
    REQUIRE(same_bits(acc, q));
    const auto kept = static_cast<std::size_t>(std::count_if(q.begin(), q.end(), [](float x) { return x != 0.0f; }));
    REQUIRE(kept <= (d + 4) / 5);
    REQUIRE(msg.size() == 6 + 2 + 1 + 1 + 1 + 8 + 4 * kept + 4);
  }
}

TEST_CASE("PermK: malformed, forged and foreign messages are refused, the accumulator untouched", "[compress][perm_k]") {
  const std::size_t d = 300;
  PermK sender = bound_perm_k(1, 3);
  const PermK receiver = bound_perm_k(0, 3);
  const std::vector<float> v = normal_vector(d, 80);
  std::vector<float> q;
  const auto msg = encode_once(sender, v, q);
  auto refused_in = [&](const auto& r, const std::vector<std::byte>& bad, std::size_t dim) {
    std::vector<float> acc(dim, 0.5f);
    bool threw = false;
    try {
      r.decode_add(bad, 1.0f, acc);
    } catch (const DecodeError&) {
      threw = true;
    }
    return threw && std::all_of(acc.begin(), acc.end(), [](float x) { return x == 0.5f; });
  };
  auto refused = [&](const auto& r, const std::vector<std::byte>& bad) { return refused_in(r, bad, d); };
  for (std::size_t len = 0; len < msg.size(); ++len)
    REQUIRE(refused(receiver, std::vector<std::byte>(msg.begin(), msg.begin() + static_cast<std::ptrdiff_t>(len))));
  for (std::size_t at = 0; at < msg.size(); at += 5) {
    std::vector<std::byte> flipped = msg;
    flipped[at] ^= std::byte{0x40};
    REQUIRE(refused(receiver, flipped));
  }
  // header: 6 bytes, varint d (2), varint n at 8, varint sender at 9, scaled flag at 10, u64 round at 11,
  // values at 19
  std::vector<std::byte> forged = msg;
  forged[8] = std::byte{4};  // another node count
  reseal(forged);
  REQUIRE(refused(receiver, forged));
  forged = msg;
  forged[9] = std::byte{3};  // sender rank ≥ n
  reseal(forged);
  REQUIRE(refused(receiver, forged));
  forged = msg;
  forged[11] ^= std::byte{1};  // another round: a block of another size, or the values land elsewhere
  reseal(forged);
  {
    std::vector<float> acc(d, 0.0f);
    bool threw = false;
    try {
      receiver.decode_add(forged, 1.0f, acc);
    } catch (const DecodeError&) {
      threw = true;
    }
    REQUIRE((threw || !same_bits(acc, q)));  // never silently the sender's q
  }
  forged = msg;
  forged.insert(forged.end() - 4, 4, std::byte{0});  // one value too many
  reseal(forged);
  REQUIRE(refused(receiver, forged));
  forged = msg;
  forged.erase(forged.end() - 8, forged.end() - 4);  // one too few
  reseal(forged);
  REQUIRE(refused(receiver, forged));
  for (const float bad : {std::nanf(""), -INFINITY}) {
    forged = msg;
    std::memcpy(forged.data() + 19, &bad, 4);
    reseal(forged);
    REQUIRE(refused(receiver, forged));
  }
  REQUIRE(refused(bound_perm_k(0, 4), msg));  // a network of another size
  ContractivePermK unscaled;
  unscaled.bind_node(0, 3, 5);
  REQUIRE(refused(unscaled, msg));  // the other scaling (flag at byte 10)
  forged = msg;
  forged[10] = std::byte{0};
  reseal(forged);
  REQUIRE(refused(receiver, forged));
  REQUIRE(refused_in(receiver, msg, d + 1));     // another dimension
  std::vector<float> acc(d, 0.0f);
  REQUIRE_THROWS_AS(receiver.decode_add(msg, INFINITY, acc), ConfigError);
  REQUIRE_THROWS_AS(PermK{}.decode_add(msg, 1.0f, acc), ConfigError);  // not bound to a node
}

TEST_CASE("PermK: refused configurations and inputs", "[compress][perm_k]") {
  PermK c;
  std::vector<float> v = normal_vector(16, 1), q(16);
  std::vector<std::byte> out;
  Rng rng(1);
  REQUIRE_THROWS_WITH(c.encode(v, rng, out, q), Catch::Contains("bind_node"));
  REQUIRE_THROWS_AS(c.bind_node(0, 0, 1), ConfigError);
  REQUIRE_THROWS_AS(c.bind_node(3, 3, 1), ConfigError);
  REQUIRE_THROWS_AS(c.bind_node(-1, 3, 1), ConfigError);
  c.bind_node(0, 1, 1);
  std::vector<float> wrong(15);
  REQUIRE_THROWS_AS(c.encode(v, rng, out, wrong), ConfigError);
  v[3] = std::nanf("");  // one node sends everything: the NaN is sent
  REQUIRE_THROWS_AS(c.encode(v, rng, out, q), ConfigError);
  v[3] = 3e38f;
  PermK two = bound_perm_k(0, 2);
  std::vector<float> all_big(16, 3e38f);  // 2 · 3e38 overflows float
  REQUIRE_THROWS_AS(two.encode(all_big, rng, out, q), ConfigError);
  REQUIRE(out.empty());
  REQUIRE(two.counter() == 0);
}

TEST_CASE("PermK: the counter round-trips through save_state/load_state", "[compress][perm_k]") {
  PermK a = bound_perm_k(1, 4, 3);
  const std::vector<float> v = normal_vector(50, 90);
  std::vector<float> q;
  for (int t = 0; t < 5; ++t) encode_once(a, v, q);
  std::vector<std::byte> state;
  a.save_state(state);
  PermK b = bound_perm_k(1, 4, 3);
  ByteReader in(state);
  b.load_state(in);
  REQUIRE(in.remaining() == 0);
  REQUIRE(b.counter() == 5);
  std::vector<float> qb;
  REQUIRE(encode_once(a, v, q) == encode_once(b, v, qb));
  for (std::size_t len = 0; len < state.size(); ++len) {
    std::vector<std::byte> cut(state.begin(), state.begin() + static_cast<std::ptrdiff_t>(len));
    ByteReader cut_in(cut);
    REQUIRE_THROWS_AS(b.load_state(cut_in), DecodeError);
    REQUIRE(b.counter() == 6);
  }
  std::vector<std::byte> bad_tag = state;
  bad_tag[1] ^= std::byte{1};
  ByteReader tag_in(bad_tag);
  REQUIRE_THROWS_AS(b.load_state(tag_in), DecodeError);
}

TEST_CASE("ContractivePermK: unscaled blocks sum to v bit for bit and contract the residual", "[compress][perm_k]") {
  for (const int n : {2, 3, 5, 8}) {
    const std::size_t d = 1001;
    const std::vector<float> v = normal_vector(d, 17);
    std::vector<float> sum(d, 0.0f), q;
    double v2 = 0.0;
    for (const float x : v) v2 += static_cast<double>(x) * x;
    for (int i = 0; i < n; ++i) {
      ContractivePermK node;
      node.bind_node(i, n, 5);
      Rng rng(1);
      std::vector<std::byte> msg;
      q.assign(d, -1.0f);
      node.encode(v, rng, msg, q);
      double err2 = 0.0;
      for (std::size_t k = 0; k < d; ++k) {
        REQUIRE((q[k] == 0.0f || q[k] == v[k]));
        err2 += static_cast<double>(q[k] - v[k]) * (q[k] - v[k]);
        sum[k] += q[k];
      }
      REQUIRE(err2 < v2);  // ‖C(v) − v‖² = ‖v‖² − ‖v_block‖²
      ContractivePermK receiver;
      receiver.bind_node((i + 1) % n, n, 5);
      std::vector<float> acc(d, 0.0f);
      receiver.decode_add(msg, 1.0f, acc);
      REQUIRE(same_bits(acc, q));
    }
    REQUIRE(same_bits(sum, v));  // every coordinate from exactly one node, unscaled
  }
  STATIC_REQUIRE_FALSE(ContractivePermK::unbiased);
  STATIC_REQUIRE(PermK::unbiased);
}

TEST_CASE("ContractivePermK: converges on the complete graph beside RandomK at the same bytes", "[compress][perm_k]") {
  // f_i(x) = ½‖x − b_i‖² on 4 nodes of the complete graph, CHOCO-SGD (SyncStep, error memory):
  // ContractivePermK sends d/4 values a node, as RandomK{0.25} does.
  constexpr int n = 4;
  constexpr std::size_t d = 64;
  const Topology topology = Topology::complete(n);
  std::vector<std::vector<float>> b(n, std::vector<float>(d));
  Rng draw(3);
  for (auto& bi : b) draw.fill_normal(std::span<float>(bi), 1.0);
  auto grad = [&](int i, std::span<const float> x, std::span<float> g) {
    for (std::size_t k = 0; k < d; ++k) g[k] = x[k] - b[static_cast<std::size_t>(i)][k];
  };
  // the models after `rounds` rounds
  auto train = [&]<class C>(C compressor, int rounds, std::uint64_t& bytes) {
    std::vector<std::vector<float>> models(n, std::vector<float>(d, 0.0f));
    std::vector<std::span<float>> spans(models.begin(), models.end());
    Options options;
    options.lr = 0.05;
    options.consensus_step = 0.25;
    options.seed = 9;
    Simulation<DecentralizedOptimizer<C, NoProx, SyncStep>> sim(topology, spans, options, compressor);
    for (int t = 0; t < rounds; ++t) sim.round(grad);
    bytes = sim.total_bytes_sent();
    return models;
  };
  // distance to the fixed point of uncompressed CHOCO (constant steps: not the optimum itself)
  std::uint64_t dense_bytes = 0;
  const auto fixed_point = train(Compressor<Dense, Identity, RawCoder>{}, 2000, dense_bytes);
  auto distance = [&](const std::vector<std::vector<float>>& models) {
    double err = 0.0;
    for (std::size_t i = 0; i < models.size(); ++i)
      for (std::size_t k = 0; k < d; ++k) err += (models[i][k] - fixed_point[i][k]) * static_cast<double>(models[i][k] - fixed_point[i][k]);
    return err / n;
  };
  const double start = distance(std::vector<std::vector<float>>(n, std::vector<float>(d, 0.0f)));
  std::uint64_t perm_bytes = 0, random_bytes = 0;
  using RandomKRaw = Compressor<RandomK, Identity, RawCoder>;
  const double perm_err = distance(train(ContractivePermK{}, 400, perm_bytes));
  const double random_err = distance(train(RandomKRaw(RandomK{0.25}, {}, {}), 400, random_bytes));
  INFO("after 400 rounds: PermK " << perm_err << ", RandomK " << random_err << ", from " << start);
  REQUIRE(perm_err < 1e-6 * start);
  REQUIRE(random_err < 1e-6 * start);
  std::uint64_t early_perm_bytes = 0, early_random_bytes = 0;
  const double perm_early = distance(train(ContractivePermK{}, 60, early_perm_bytes));
  const double random_early = distance(train(RandomKRaw(RandomK{0.25}, {}, {}), 60, early_random_bytes));
  INFO("after 60 rounds: PermK " << perm_early << ", RandomK " << random_early);
  // measured: PermK 0.058, RandomK 0.032 (from 15.3) — with error memory each node compresses its own
  // residual, so the blocks' exact partition (the paper's gain for identical inputs) does not help
  // here; both converge, at the same bytes
  REQUIRE(perm_early < 0.01 * start);
  REQUIRE(random_early < 0.01 * start);
  REQUIRE(static_cast<double>(perm_bytes) <= 1.05 * static_cast<double>(random_bytes));
}
