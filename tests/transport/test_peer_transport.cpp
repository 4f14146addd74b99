// PeerTransport (post_to / collect_from) on SimulatedNetwork and ThreadNetwork under a time-varying
// schedule: a node receives only what its round's peer posted to it, each peer gets its own
// message, both networks deliver the same bytes, a silent peer's timeout names rank, peer and
// round, and TransportRef knows which transports deliver per peer.
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>

#include <array>
#include <chrono>
#include <cstring>
#include <span>
#include <vector>

using namespace decopt;
using Catch::Matchers::Contains;

namespace {

static_assert(PeerTransport<SimulatedNetwork::Endpoint>);
static_assert(PeerTransport<ThreadNetwork::Endpoint>);

/// A transport that only broadcasts.
struct BroadcastOnly {
  int rank() const { return 0; }
  int degree() const { return 0; }
  void post(long, std::span<const std::byte>) {}
  void collect(long, std::vector<std::span<const std::byte>>&) {}
};
static_assert(Transport<BroadcastOnly> && !PeerTransport<BroadcastOnly>);

/// The message node `from` sends `to` in `round`: the three numbers, as bytes.
std::array<std::byte, 3 * sizeof(long)> peer_message(long from, long to, long round) {
  std::array<std::byte, 3 * sizeof(long)> out{};
  const std::array<long, 3> v{from, to, round};
  std::memcpy(out.data(), v.data(), sizeof v);
  return out;
}

std::array<long, 3> decode(std::span<const std::byte> bytes) {
  REQUIRE(bytes.size() == 3 * sizeof(long));
  std::array<long, 3> v{};
  std::memcpy(v.data(), bytes.data(), sizeof v);
  return v;
}

using Buffers = std::vector<std::vector<std::array<std::byte, 3 * sizeof(long)>>>;  // [node][peer]

/// Node `rank`'s half of round t: post to every peer of W(t) its own message.
template <class Endpoint>
void post_round(Endpoint& e, const TopologySchedule& s, long t, Buffers& out) {
  for (const Edge& peer : s.at(t).neighbors(e.rank())) {
    auto& buffer = out[static_cast<std::size_t>(e.rank())][static_cast<std::size_t>(peer.node)];
    buffer = peer_message(e.rank(), peer.node, t);
    e.post_to(t, peer.node, buffer);
  }
}

/// The other half: collect from every peer of W(t) and record (from, to, round).
template <class Endpoint>
void collect_round(Endpoint& e, const TopologySchedule& s, long t, std::vector<std::array<long, 3>>& log) {
  for (const Edge& peer : s.at(t).neighbors(e.rank())) log.push_back(decode(e.collect_from(t, peer.node)));
}

}  // namespace

TEST_CASE("SimulatedNetwork and ThreadNetwork deliver only the round's peer, the same bytes", "[transport][peer]") {
  const int n = 8;
  const long rounds = 9;
  const auto schedule = TopologySchedule::one_peer_exponential(n);
  std::vector<std::vector<std::array<long, 3>>> sim_log(n), thread_log(n);
  {
    SimulatedNetwork network(schedule.union_graph());
    Buffers out(n, std::vector<std::array<std::byte, 3 * sizeof(long)>>(n));
    for (long t = 0; t < rounds; ++t) {
      for (int i = 0; i < n; ++i) post_round(network.endpoint(i), schedule, t, out);
      for (int i = 0; i < n; ++i) collect_round(network.endpoint(i), schedule, t, sim_log[static_cast<std::size_t>(i)]);
      // A node that was not this round's peer of i gets nothing from i.
      const int i = 0, partner = schedule.at(t).neighbors(0)[0].node;
      for (const Edge& other : schedule.union_graph().neighbors(i))
        if (other.node != partner)
          REQUIRE_THROWS_WITH(network.endpoint(other.node).collect_from(t, i),
                              Contains("round " + std::to_string(t)) && Contains("has not posted it to this node"));
    }
  }
  {
    ThreadNetwork network(schedule.union_graph());
    Buffers out(n, std::vector<std::array<std::byte, 3 * sizeof(long)>>(n));
    network.run([&](int rank) {
      for (long t = 0; t < rounds; ++t) {
        post_round(network.endpoint(rank), schedule, t, out);
        collect_round(network.endpoint(rank), schedule, t, thread_log[static_cast<std::size_t>(rank)]);
      }
    });
  }
  REQUIRE(sim_log == thread_log);
  for (int i = 0; i < n; ++i) {
    const auto& log = sim_log[static_cast<std::size_t>(i)];
    REQUIRE(log.size() == static_cast<std::size_t>(rounds));  // one peer per round
    for (long t = 0; t < rounds; ++t) {
      const long partner = i ^ (1 << (t % 3));
      REQUIRE(log[static_cast<std::size_t>(t)] == std::array<long, 3>{partner, i, t});
    }
  }
}

TEST_CASE("Per-peer messages differ per peer and go through a TransportRef", "[transport][peer]") {
  const auto ring = Topology::ring(4);
  SimulatedNetwork network(ring);
  const TransportRef zero(network.endpoint(0)), one(network.endpoint(1)), three(network.endpoint(3));
  REQUIRE(zero.delivers_per_peer());
  BroadcastOnly broadcast;
  const TransportRef plain(broadcast);
  REQUIRE_FALSE(plain.delivers_per_peer());
  const auto m = peer_message(0, 1, 0);
  REQUIRE_THROWS_AS(plain.post_to(0, 1, m), ConfigError);
  REQUIRE_THROWS_WITH(plain.collect_from(0, 1), Contains("does not deliver per peer"));

  const auto to_one = peer_message(0, 1, 5), to_three = peer_message(0, 3, 5);
  zero.post_to(5, 1, to_one);
  zero.post_to(5, 3, to_three);
  REQUIRE(decode(one.collect_from(5, 0)) == std::array<long, 3>{0, 1, 5});
  REQUIRE(decode(three.collect_from(5, 0)) == std::array<long, 3>{0, 3, 5});
  // Node 2 is not a neighbour of 0 on the ring.
  REQUIRE_THROWS_WITH(zero.post_to(5, 2, to_one), Contains("node 2 is not a neighbour of node 0"));
  REQUIRE_THROWS_WITH(network.endpoint(2).collect_from(5, 0), Contains("is not a neighbour of node 2"));
}

TEST_CASE("ThreadNetwork: a silent peer's collect_from times out naming rank, peer and round", "[transport][peer][failure]") {
  const auto schedule = TopologySchedule::one_peer_exponential(4);
  ThreadNetwork network(schedule.union_graph(), LinkModel{}, std::chrono::milliseconds(200));
  Buffers out(4, std::vector<std::array<std::byte, 3 * sizeof(long)>>(4));
  // Node 2 goes silent after round 2. Round 3 pairs 2 with 0 (2 XOR 2^1): node 0 waits for it;
  // nodes 1 and 3 pair with each other and finish.
  REQUIRE_THROWS_WITH(network.run([&](int rank) {
    std::vector<std::array<long, 3>> log;
    const long rounds = rank == 2 ? 3 : 4;
    for (long t = 0; t < rounds; ++t) {
      post_round(network.endpoint(rank), schedule, t, out);
      collect_round(network.endpoint(rank), schedule, t, log);
    }
  }),
                      Catch::Matches(".*node 0 timed out after 0\\.2.* s waiting for round 3 from neighbour 2"));
}
