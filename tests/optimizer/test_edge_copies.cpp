// EdgeCopies over a time-varying schedule, driven by hand on a SimulatedNetwork's per-peer
// delivery: both ends of an edge hold the same copies bit for bit, each node sends one message per
// round on one-peer exponential, exact gossip follows x ← W(t)x, quantized CHOCO gossip reaches
// consensus with the average kept, and the state is 2·d·deg∪ floats.
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>

#include <cmath>
#include <span>
#include <vector>

using namespace decopt;
using Catch::Matchers::Contains;

namespace {

/// n nodes of dimension d gossiping with EdgeCopies<C> over `schedule` for `rounds` rounds.
template <class C>
struct EdgeGossip {
  EdgeGossip(const TopologySchedule& s, std::size_t d, C compressor)
      : schedule(s), network(s.union_graph()), n(s.size()), dim(d) {
    for (int i = 0; i < n; ++i) {
      copies.emplace_back(s.union_graph(), i, d);
      compressors.push_back(compressor);
      rngs.emplace_back(1000 + static_cast<std::uint64_t>(i));
      outbox.emplace_back(copies.back().peers());
      x.emplace_back(d);
      for (std::size_t k = 0; k < d; ++k) x.back()[k] = std::sin(static_cast<float>(7 * i + 3 * k));
    }
  }

  void round(long t, float gamma) {
    std::vector<float> scratch(dim), q(dim);
    for (int i = 0; i < n; ++i) {
      auto& e = copies[static_cast<std::size_t>(i)];
      for (const Edge& peer : schedule.at(t).neighbors(i)) {
        const std::size_t slot = e.slot_of(peer.node);
        auto& message = outbox[static_cast<std::size_t>(i)][slot];
        message.clear();
        e.encode_to(slot, compressors[static_cast<std::size_t>(i)], x[static_cast<std::size_t>(i)], scratch,
                    rngs[static_cast<std::size_t>(i)], message, q);
        network.endpoint(i).post_to(t, peer.node, message);
        ++messages_sent;
      }
    }
    for (int i = 0; i < n; ++i) {
      auto& e = copies[static_cast<std::size_t>(i)];
      for (const Edge& peer : schedule.at(t).neighbors(i))
        e.decode_from(e.slot_of(peer.node), compressors[static_cast<std::size_t>(i)],
                      network.endpoint(i).collect_from(t, peer.node));
      e.mix(schedule.at(t), x[static_cast<std::size_t>(i)], gamma);
    }
  }

  [[nodiscard]] std::vector<double> average() const {
    std::vector<double> avg(dim, 0.0);
    for (const auto& xi : x)
      for (std::size_t k = 0; k < dim; ++k) avg[k] += xi[k] / n;
    return avg;
  }
  [[nodiscard]] double disagreement() const {
    const auto avg = average();
    double worst = 0;
    for (const auto& xi : x)
      for (std::size_t k = 0; k < dim; ++k) worst = std::max(worst, std::abs(xi[k] - avg[k]));
    return worst;
  }
  /// Both ends of every union edge hold the same pair of copies, bit for bit.
  [[nodiscard]] bool copies_agree() const {
    for (int i = 0; i < n; ++i) {
      const auto& mine = copies[static_cast<std::size_t>(i)];
      for (std::size_t slot = 0; slot < mine.peers(); ++slot) {
        const int j = mine.peer(slot);
        const auto& theirs = copies[static_cast<std::size_t>(j)];
        const std::size_t back = theirs.slot_of(i);
        const auto a = mine.sent(slot), b = theirs.received(back);
        if (!std::equal(a.begin(), a.end(), b.begin())) return false;
      }
    }
    return true;
  }

  const TopologySchedule& schedule;
  SimulatedNetwork network;
  int n;
  std::size_t dim;
  std::vector<EdgeCopies<C>> copies;
  std::vector<C> compressors;
  std::vector<Rng> rngs;
  std::vector<std::vector<std::vector<std::byte>>> outbox;  // [node][slot]: alive until the next post_to
  std::vector<std::vector<float>> x;
  long messages_sent = 0;
};

using Exact = Compressor<Dense, Identity, RawCoder>;
using Quantized = Compressor<Dense, DitheredQuantizer, RawCoder>;

}  // namespace

TEST_CASE("EdgeCopies: exact gossip on one-peer exponential is x <- W(t)x, one message per node per round",
          "[optimizer][edge-copies]") {
  const auto schedule = TopologySchedule::one_peer_exponential(8);
  EdgeGossip<Exact> g(schedule, 16, Exact{});
  REQUIRE(g.copies[0].peers() == 3);
  REQUIRE(g.copies[0].state_floats() == 2 * 16 * 3);  // 2·d·log2 n
  // The reference: the dense W(t) applied in double.
  Eigen::MatrixXd X(8, 16);
  for (int i = 0; i < 8; ++i)
    for (int k = 0; k < 16; ++k) X(i, k) = g.x[static_cast<std::size_t>(i)][static_cast<std::size_t>(k)];
  const auto avg0 = g.average();
  for (long t = 0; t < 6; ++t) {
    g.round(t, 1.0f);
    X = schedule.at(t).matrix() * X;
    REQUIRE(g.messages_sent == 8 * (t + 1));  // each node one message per round
    for (int i = 0; i < 8; ++i)
      for (int k = 0; k < 16; ++k)
        REQUIRE(g.x[static_cast<std::size_t>(i)][static_cast<std::size_t>(k)] == Approx(X(i, k)).margin(1e-6));
  }
  REQUIRE(g.copies_agree());
  // Two periods of the one-peer sequence: every node holds the average (to float rounding).
  REQUIRE(g.disagreement() < 1e-6);
  const auto avg = g.average();
  for (std::size_t k = 0; k < 16; ++k) REQUIRE(avg[k] == Approx(avg0[k]).margin(1e-6));
}

TEST_CASE("EdgeCopies: quantized CHOCO gossip over random matchings reaches consensus, copies stay exact",
          "[optimizer][edge-copies]") {
  const auto schedule = TopologySchedule::random_matchings(8, 5, 7);
  EdgeGossip<Quantized> g(schedule, 32, Quantized(Dense{}, DitheredQuantizer{16, Norm::L2}, RawCoder{}));
  const double start = g.disagreement();
  const auto avg0 = g.average();
  for (long t = 0; t < 400; ++t) g.round(t, 0.3f);
  REQUIRE(g.copies_agree());
  INFO("disagreement " << start << " -> " << g.disagreement());
  REQUIRE(g.disagreement() < 1e-3 * start);
  const auto avg = g.average();
  for (std::size_t k = 0; k < 32; ++k) REQUIRE(avg[k] == Approx(avg0[k]).margin(1e-4));
}

TEST_CASE("EdgeCopies: a peer outside the union graph is a ConfigError", "[optimizer][edge-copies]") {
  const EdgeCopies<Exact> copies(Topology::ring(6), 0, 4);
  REQUIRE(copies.peers() == 2);
  REQUIRE(copies.state_floats() == 2 * 4 * 2);
  REQUIRE(copies.slot_of(5) == 1);
  REQUIRE_THROWS_WITH(copies.slot_of(3), Contains("node 3 is not a neighbour of node 0") && Contains("union graph"));
}
