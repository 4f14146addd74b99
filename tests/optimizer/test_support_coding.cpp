// SupportCoded: sparse models cost fewer bits (Malcom-PSGD's "compressed and sparse models"), with
// x̂ the same number on the sender and in every receiver's s.
#include <catch2/catch.hpp>
#include <decopt/decopt.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "optimizer/problems.hpp"

namespace {

using decopt::Options;
using decopt::Topology;
using Plain = decopt::Compressor<decopt::Dense, decopt::DitheredQuantizer, decopt::VectorSourceCoder>;
using Coded = decopt::SupportCoded<Plain>;

Plain plain() { return Plain(decopt::Dense{}, decopt::DitheredQuantizer{16, decopt::Norm::L2}, decopt::VectorSourceCoder{}); }

/// A model whose support changes from round to round: about `zeros` of it exactly 0.
std::vector<float> sparse_model(decopt::Rng& rng, std::size_t d, double zeros) {
  std::vector<float> x(d);
  for (float& v : x) v = rng.uniform() < zeros ? 0.0f : static_cast<float>(rng.normal());
  return x;
}

/// One sender and one receiver (weight 1) over `rounds` encodes: returns the receiver's sum.
struct Link {
  Coded sender, receiver;
  std::vector<float> xhat, acc, q;
  decopt::Rng rng{7};
  explicit Link(std::size_t d, const Plain& inner = plain())
      : sender(inner), receiver(inner), xhat(d, 0.0f), acc(d, 0.0f), q(d) {
    sender.bind_neighbors(1, d);
    receiver.bind_neighbors(1, d);
  }
  std::vector<std::byte> send(const std::vector<float>& x) {
    std::vector<std::byte> message;
    sender.encode_model(x, xhat, rng, message, q);
    for (std::size_t k = 0; k < x.size(); ++k) xhat[k] += q[k];
    return message;
  }
};

template <class Opt>
struct Network {
  std::vector<std::vector<float>> models;
  std::vector<std::span<float>> buffers;
  decopt::Simulation<Opt> sim;
  Network(const Topology& topology, int d, typename decopt::Simulation<Opt>::Setup setup)
      : models(static_cast<std::size_t>(topology.size()), spread_model(d)),
        buffers(models.begin(), models.end()), sim(topology, buffers, std::move(setup)) {}
  /// x⁰ ~ N(0, 0.25) on every node, as a trained network's initialisation is spread.
  static std::vector<float> spread_model(int d) {
    decopt::Rng rng(1);
    std::vector<float> x(static_cast<std::size_t>(d));
    for (float& v : x) v = static_cast<float>(0.5 * rng.normal());
    return x;
  }
  /// Runs `n` rounds; returns the bytes the network sent per round over the last `tail` of them.
  double rounds(const decopt::testing::SplitProblem& p, int n, int tail) {
    double bytes = 0;
    for (int r = 0; r < n; ++r) {
      const auto stats =
          sim.round([&](int i, std::span<const float> x, std::span<float> g) { p.gradient_into(i, x, g); });
      if (r >= n - tail) bytes += static_cast<double>(stats.bytes_sent);
    }
    return bytes / tail;
  }
  [[nodiscard]] double zero_fraction() const {
    std::size_t zeros = 0, all = 0;
    for (const auto& m : models)
      for (float v : m) zeros += v == 0.0f, ++all;
    return static_cast<double>(zeros) / static_cast<double>(all);
  }
};

}  // namespace

TEST_CASE("SupportCoded: the receiver applies exactly the sender's change of x-hat, and x-hat is 0 where x is",
          "[optimizer][support]") {
  constexpr std::size_t d = 1000;
  Link link(d);
  decopt::Rng models(11);
  for (int round = 0; round < 30; ++round) {
    const auto x = sparse_model(models, d, round < 10 ? 0.2 : 0.7);
    const auto message = link.send(x);
    link.receiver.decode_add_from(0, message, 1.0f, link.acc);
    REQUIRE(link.acc == link.xhat);  // the same float operations: bit for bit
    for (std::size_t k = 0; k < d; ++k)
      if (x[k] == 0.0f) REQUIRE(link.xhat[k] == 0.0f);
  }
}

TEST_CASE("SupportCoded: a dense model sends no changes; a leave whose x-hat is already 0 carries no value",
          "[optimizer][support]") {
  constexpr std::size_t d = 500;
  Link link(d);
  decopt::Rng rng(13);
  std::vector<float> x(d);
  for (float& v : x) v = static_cast<float>(rng.normal());
  // Every support starts full: the first dense message announces nothing.
  auto message = link.send(x);
  link.receiver.decode_add_from(0, message, 1.0f, link.acc);
  CHECK(link.sender.last_encode().entered == 0);
  CHECK(link.sender.last_encode().left == 0);
  CHECK(link.sender.last_encode().live == d);
  CHECK(link.sender.last_encode().zeros == 0);
  // Fresh link: x-hat is 0 everywhere, so the first zeros leave for a flag bit each, no value.
  Link fresh(d);
  std::vector<float> sparse = x;
  for (std::size_t k = 0; k < d; k += 5) sparse[k] = 0.0f;  // 100 zeros
  message = fresh.send(sparse);
  CHECK(fresh.sender.last_encode().left == 100);
  CHECK(fresh.sender.last_encode().snap_values == 0);
  CHECK(fresh.sender.last_encode().zeros == 100);
  fresh.receiver.decode_add_from(0, message, 1.0f, fresh.acc);
  REQUIRE(fresh.acc == fresh.xhat);
  // Next round: every other of those comes back, and 50 other coordinates leave, each with its
  // exact value unless the quantizer had left x-hat there at 0.
  std::vector<float> moved = x;
  for (std::size_t k = 0; k < d; k += 10) moved[k] = 0.0f;   // 50 of the old zeros stay
  for (std::size_t k = 1; k < d; k += 10) moved[k] = 0.0f;   // 50 new zeros
  std::size_t nonzero_xhat = 0;
  for (std::size_t k = 1; k < d; k += 10) nonzero_xhat += fresh.xhat[k] != 0.0f;
  REQUIRE(nonzero_xhat > 10);
  message = fresh.send(moved);
  CHECK(fresh.sender.last_encode().entered == 50);
  CHECK(fresh.sender.last_encode().left == 50);
  CHECK(fresh.sender.last_encode().snap_values == nonzero_xhat);
  CHECK(fresh.sender.last_encode().live == d - 100);
  fresh.receiver.decode_add_from(0, message, 1.0f, fresh.acc);
  REQUIRE(fresh.acc == fresh.xhat);
  for (std::size_t k = 0; k < d; ++k)
    if (moved[k] == 0.0f) REQUIRE(fresh.xhat[k] == 0.0f);
}

TEST_CASE("SupportCoded: a change list that is malformed behind a valid checksum is a DecodeError",
          "[optimizer][support]") {
  constexpr std::size_t d = 64;
  // [crc32c][varint |D|][varint b][Golomb(b) gaps], the crc over what follows it.
  const auto forge = [](std::uint64_t count, std::uint64_t b, const std::vector<std::uint64_t>& gaps) {
    std::vector<std::byte> m;
    decopt::put_le<std::uint32_t>(m, 0);
    decopt::put_varint(m, count);
    decopt::put_varint(m, b);
    if (b >= 1) {
      decopt::BitWriter bits(m);
      const decopt::codes::Golomb golomb(b);
      for (auto g : gaps) golomb.write(bits, g);
      bits.finish();
    }
    const std::uint32_t crc = decopt::crc32c(std::span<const std::byte>(m).subspan(4));
    for (int i = 0; i < 4; ++i) m[static_cast<std::size_t>(i)] = static_cast<std::byte>(crc >> (8 * i));
    return m;
  };
  Link link(d);
  const auto before = link.acc;
  const auto fails = [&](const std::vector<std::byte>& m, const char* why) {
    REQUIRE_THROWS_WITH(link.receiver.decode_add_from(0, m, 1.0f, link.acc), Catch::Contains(why));
  };
  fails(forge(d + 1, 4, std::vector<std::uint64_t>(d + 1, 0)), "more than the message or the dimension holds");
  fails(forge(1, 0, {}), "Golomb parameter out of range");
  fails(forge(1, d + 1, {0}), "Golomb parameter out of range");
  fails(forge(1, 8, {d}), "index out of range");            // the first index is d
  fails(forge(2, 8, {d - 1, 0}), "index out of range");     // nothing can follow the last index
  fails(forge(2, 1, {1, 200}), "unary code longer than allowed");
  CHECK(link.acc == before);
  CHECK(link.receiver.support().count() == d);  // unchanged: still full
}

TEST_CASE("SupportCoded with patience: a coordinate leaves after P rounds at 0, x-hat stays the receiver's bit for bit",
          "[optimizer][support]") {
  constexpr std::size_t d = 400;
  Link link(d);
  link.sender.set_patience(3);
  CHECK_THROWS_AS(link.receiver.set_patience(0), decopt::ConfigError);
  CHECK_THROWS_AS(link.receiver.set_patience(65536), decopt::ConfigError);
  decopt::Rng rng(17);
  std::vector<float> x(d);
  for (float& v : x) v = static_cast<float>(rng.normal());
  for (int round = 0; round < 12; ++round) {
    // Coordinate 0 is 0 from round 2 on; coordinate 1 flickers (0 every other round) and never
    // waits out the patience; the others churn randomly.
    std::vector<float> now = x;
    if (round >= 2) now[0] = 0.0f;
    if (round % 2 == 1) now[1] = 0.0f;
    for (std::size_t k = 2; k < d; ++k)
      if (rng.uniform() < 0.3) now[k] = 0.0f;
    const auto message = link.send(now);
    link.receiver.decode_add_from(0, message, 1.0f, link.acc);
    REQUIRE(link.acc == link.xhat);
    CHECK(link.sender.support().test(0) == (round < 4));  // zero at rounds 2, 3, 4: leaves at the third
    CHECK(link.sender.support().test(1));
    for (std::size_t k = 0; k < d; ++k)
      if (!link.sender.support().test(k)) REQUIRE(link.xhat[k] == 0.0f);
  }
}

TEST_CASE("SupportCoded: a model that stays sparse costs its live values' bits, not a dense model's",
          "[optimizer][support]") {
  constexpr std::size_t d = 20000;
  constexpr double zeros = 0.7;
  decopt::Rng rng(5);
  // The support is fixed (as at the end of training), the values keep moving; the dense model
  // has the same values and no zeros (lambda = 0).
  std::vector<bool> live(d);
  for (std::size_t k = 0; k < d; ++k) live[k] = rng.uniform() >= zeros;
  const Plain malcom(decopt::Dense{}, decopt::DitheredQuantizer{256, decopt::Norm::L2}, decopt::VectorSourceCoder{});
  Link sparse(d, malcom), dense(d, malcom);
  std::size_t sparse_bytes = 0, dense_bytes = 0;
  for (int round = 0; round < 20; ++round) {
    std::vector<float> x(d), x_sparse(d, 0.0f);
    for (std::size_t k = 0; k < d; ++k) {
      x[k] = static_cast<float>(rng.normal());
      if (live[k]) x_sparse[k] = x[k];
    }
    const auto s = sparse.send(x_sparse).size(), t = dense.send(x).size();
    if (round >= 10) sparse_bytes += s, dense_bytes += t;
  }
  INFO("bytes " << sparse_bytes << " (70% zeros) vs " << dense_bytes << " (dense)");
  CHECK(static_cast<double>(sparse_bytes) <= (1 - 0.8 * zeros) * static_cast<double>(dense_bytes));
}

TEST_CASE("SupportCoded: a malformed message is a DecodeError and changes nothing", "[optimizer][support]") {
  constexpr std::size_t d = 300;
  Link link(d);
  decopt::Rng models(3);
  auto first = link.send(sparse_model(models, d, 0.5));
  link.receiver.decode_add_from(0, first, 1.0f, link.acc);
  const auto message = link.send(sparse_model(models, d, 0.6));
  const auto before = link.acc;
  for (std::size_t n = 0; n < message.size(); ++n) {
    auto cut = std::span<const std::byte>(message).first(n);
    REQUIRE_THROWS_AS(link.receiver.decode_add_from(0, cut, 1.0f, link.acc), decopt::DecodeError);
  }
  for (std::size_t b = 0; b < message.size(); ++b) {
    auto flipped = message;
    flipped[b] ^= std::byte{0x10};
    REQUIRE_THROWS_AS(link.receiver.decode_add_from(0, flipped, 1.0f, link.acc), decopt::DecodeError);
  }
  REQUIRE(link.acc == before);
  link.receiver.decode_add_from(0, message, 1.0f, link.acc);  // the receiver's state is still the sender's
  CHECK(link.acc == link.xhat);
  std::vector<float> wrong(d + 1, 0.0f);
  CHECK_THROWS_AS(link.receiver.decode_add_from(0, message, 1.0f, wrong), decopt::DecodeError);
  CHECK_THROWS_AS(link.receiver.decode_add_from(1, message, 1.0f, link.acc), decopt::ConfigError);
}

TEST_CASE("Proximal SGD with SupportCoded: bits fall with the zero fraction, s stays exact", "[optimizer][support]") {
  // A lasso split over 4 nodes (a third of the true coefficients nonzero), spread initial model.
  constexpr int nodes = 4, d = 2000;
  const auto p = decopt::testing::make_problem(decopt::testing::SplitProblem::Loss::LeastSquares, nodes, 100, d, 9);
  const Options options{.lr = 0.02, .consensus_step = 0.6, .seed = 4};
  const Plain malcom(decopt::Dense{}, decopt::DitheredQuantizer{256, decopt::Norm::L2}, decopt::VectorSourceCoder{});
  using WithSupport = decopt::DecentralizedOptimizer<Coded, decopt::L1Prox>;
  using Without = decopt::DecentralizedOptimizer<Plain, decopt::L1Prox>;
  Network<WithSupport> sparse(Topology::ring(nodes), d, {.options = options, .compressor = Coded(malcom), .prox = decopt::L1Prox{1.0}});
  Network<Without> plain_sparse(Topology::ring(nodes), d, {.options = options, .compressor = malcom, .prox = decopt::L1Prox{1.0}});
  Network<Without> dense(Topology::ring(nodes), d, {.options = options, .compressor = malcom, .prox = decopt::L1Prox{0.0}});
  const double sparse_bytes = sparse.rounds(p, 500, 50);
  const double plain_bytes = plain_sparse.rounds(p, 500, 50);
  const double dense_bytes = dense.rounds(p, 500, 50);
  // The zero fraction of the models sent: the coordinates off node 0's announced support.
  const double zeros = 1 - static_cast<double>(sparse.sim.node(0).compressor().support().count()) / d;
  INFO("zeros sent " << zeros << "; bytes per round: support coded " << sparse_bytes << ", plain " << plain_bytes
                     << ", lambda = 0 " << dense_bytes);
  CHECK(zeros > 0.5);
  CHECK(sparse_bytes <= (1 - 0.8 * zeros) * dense_bytes);  // issue 15's target
  CHECK(sparse_bytes < 0.8 * plain_bytes);                 // the plain compressor pays for x-hat's noise
  CHECK(sparse.sim.neighbor_sum_error() < 1e-5);
  // Coding the support changes the bits, not where the run goes.
  double diff = 0, norm = 0;
  for (std::size_t k = 0; k < static_cast<std::size_t>(d); ++k) {
    diff += std::pow(sparse.models[0][k] - plain_sparse.models[0][k], 2);
    norm += std::pow(plain_sparse.models[0][k], 2);
  }
  CHECK(std::sqrt(diff / norm) < 1e-2);
}

TEST_CASE("SupportCoded runs resume from checkpoints bit for bit; a foreign state is refused", "[optimizer][support]") {
  constexpr int nodes = 4, d = 60;
  const auto p = decopt::testing::make_problem(decopt::testing::SplitProblem::Loss::LeastSquares, nodes, 30, d, 2);
  using Opt = decopt::DecentralizedOptimizer<Coded, decopt::L1Prox>;
  Coded patient(plain());
  patient.set_patience(3);  // the counters of consecutive zero rounds are part of the state
  const typename decopt::Simulation<Opt>::Setup setup{.options = {.lr = 0.02, .consensus_step = 0.6, .seed = 8},
                                                      .compressor = patient, .prox = decopt::L1Prox{0.3}};
  Network<Opt> straight(Topology::ring(nodes), d, setup), first(Topology::ring(nodes), d, setup),
      resumed(Topology::ring(nodes), d, setup);
  straight.rounds(p, 40, 1);
  first.rounds(p, 20, 1);
  for (int i = 0; i < nodes; ++i) {
    std::vector<std::byte> record;
    first.sim.node(i).save_state(record);
    resumed.sim.node(i).load_state(record);
  }
  resumed.rounds(p, 20, 1);
  CHECK(resumed.models == straight.models);

  // A state of a plain compressor's run is refused by a support-coded node, naming the cause.
  using PlainOpt = decopt::DecentralizedOptimizer<Plain, decopt::L1Prox>;
  Network<PlainOpt> other(Topology::ring(nodes), d, {.options = setup.options, .compressor = plain(), .prox = decopt::L1Prox{0.3}});
  std::vector<std::byte> record;
  other.sim.node(0).save_state(record);
  CHECK_THROWS_AS(resumed.sim.node(0).load_state(record), decopt::ConfigError);
}

TEST_CASE("SupportCoded scales the quantizer's levels to the live values: s*sqrt(|L|/d), decoded bit for bit, unbiased",
          "[optimizer][support]") {
  constexpr std::size_t d = 4000;
  const Plain malcom(decopt::Dense{}, decopt::DitheredQuantizer{256, decopt::Norm::L2}, decopt::VectorSourceCoder{});
  Link link(d, malcom);
  decopt::Rng models(23);
  for (const double zeros : {0.0, 0.5, 0.9, 0.99}) {
    CAPTURE(zeros);
    const auto x = sparse_model(models, d, zeros);
    const auto message = link.send(x);
    link.receiver.decode_add_from(0, message, 1.0f, link.acc);
    REQUIRE(link.acc == link.xhat);  // the receiver used the sender's levels
    const auto& e = link.sender.last_encode();
    const double expected = std::max(1.0, std::round(256 * std::sqrt(static_cast<double>(e.live) / d)));
    CHECK(e.levels == static_cast<int>(expected));
    CHECK(link.sender.live_levels(e.live) == e.levels);
  }
  CHECK(link.sender.live_levels(d) == 256);  // a dense model keeps s
  CHECK(link.sender.live_levels(1) == 4);    // 256 / sqrt(4000) = 4.05
  // Off, or with buckets, natural levels or the l-infinity scale, s stays.
  Coded fixed(malcom);
  fixed.bind_neighbors(1, d);
  fixed.set_level_scaling(false);
  CHECK(fixed.live_levels(d / 4) == 256);
  for (const auto& q : {decopt::DitheredQuantizer{256, decopt::Norm::Linf}, decopt::DitheredQuantizer{256, decopt::Norm::L2, true},
                        decopt::DitheredQuantizer{256, decopt::Norm::L2, false, 512}}) {
    Coded other(Plain(decopt::Dense{}, q, decopt::VectorSourceCoder{}));
    other.bind_neighbors(1, d);
    CHECK(other.live_levels(d / 4) == 256);
  }
  // A receiver that does not scale refuses a scaled message (the levels are in the message).
  Link mismatch(d, malcom);
  mismatch.receiver.set_level_scaling(false);
  const auto sparse = mismatch.send(sparse_model(models, d, 0.75));
  CHECK_THROWS_WITH(mismatch.receiver.decode_add_from(0, sparse, 1.0f, mismatch.acc), Catch::Contains("levels"));
}

TEST_CASE("SupportCoded with scaled levels is unbiased: the mean of q over seeds is the residual", "[optimizer][support]") {
  constexpr std::size_t d = 400;
  decopt::Rng models(29);
  std::vector<float> x(d, 0.0f);
  for (std::size_t k = 0; k < d; k += 10) x[k] = static_cast<float>(models.normal());  // 40 live: 256*sqrt(0.1) = 81 levels
  std::vector<double> mean(d, 0.0);
  constexpr int trials = 4000;
  std::vector<float> zero(d, 0.0f), q(d);
  for (int t = 0; t < trials; ++t) {
    Coded sender(Plain(decopt::Dense{}, decopt::DitheredQuantizer{256, decopt::Norm::L2}, decopt::VectorSourceCoder{}));
    sender.bind_neighbors(1, d);
    decopt::Rng rng(static_cast<std::uint64_t>(1000 + t));
    std::vector<std::byte> message;
    sender.encode_model(x, zero, rng, message, q);
    REQUIRE(sender.last_encode().levels == 81);
    for (std::size_t k = 0; k < d; ++k) mean[k] += q[k] / trials;
  }
  double norm = 0;
  for (float v : x) norm += static_cast<double>(v) * v;
  const double step = std::sqrt(norm) / 81;  // one level: the spread of a single draw is below it
  for (std::size_t k = 0; k < d; ++k) {
    CAPTURE(k, x[k], mean[k]);
    REQUIRE(std::abs(mean[k] - x[k]) < 5 * step / std::sqrt(trials));
  }
}
