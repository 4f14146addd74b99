// Lost peers at the transport level (decopt/transport/lost_peers.hpp): Topology::without keeps W
// symmetric and doubly stochastic and changes only the rows two hops around the lost node; an
// injected failure stops a node's posts; under LostPeerPolicy::drop its neighbours get an empty
// slot and list it, and their next messages tell their own neighbours; under fail the collect is a
// TransportError naming the rank, the neighbour and the round; ThreadNetwork ends a crashed node's
// thread quietly and drops a hung one after the timeout.
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <future>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

using namespace decopt;

namespace {

std::vector<std::byte> message_of(int rank, long round) {
  return {static_cast<std::byte>(rank), static_cast<std::byte>(round)};
}

/// Checks that W is symmetric, non-negative and has rows summing to 1 (to 1e-12).
void require_doubly_stochastic(const Topology& t) {
  const Eigen::MatrixXd W = t.matrix();
  REQUIRE((W - W.transpose()).cwiseAbs().maxCoeff() == 0.0);
  REQUIRE(W.minCoeff() >= 0.0);
  for (int i = 0; i < t.size(); ++i) REQUIRE(std::abs(W.row(i).sum() - 1.0) <= 1e-12);
}

}  // namespace

TEST_CASE("Topology::without: Metropolis-Hastings on the rest, only rows within two hops change", "[transport][lost]") {
  const Topology ring = Topology::ring(8);
  const std::vector<int> lost{3};
  const Topology rest = ring.without(lost);
  require_doubly_stochastic(rest);
  REQUIRE(rest.size() == 8);
  REQUIRE(rest.degree(3) == 0);
  REQUIRE(rest.self_weight(3) == 1.0);
  // Nodes 2 and 4 lose an edge (degree 1): w_21 = 1/(1 + max(1, 2)) = 1/3, w_22 = 2/3.
  REQUIRE(rest.degree(2) == 1);
  REQUIRE(rest.weight(2, 1) == 1.0 / 3.0);
  REQUIRE(rest.self_weight(2) == Approx(2.0 / 3.0).epsilon(1e-15));
  // Rows farther than two hops from node 3 are the same bits.
  for (int i : {0, 6, 7})
    for (int j = 0; j < 8; ++j) REQUIRE(rest.weight(i, j) == ring.weight(i, j));
  REQUIRE(ring.without({}) == ring);

  const Topology expo = Topology::exponential(8);
  const std::vector<int> two{1, 6};
  const Topology expo_rest = expo.without(two);
  require_doubly_stochastic(expo_rest);
  for (int j = 0; j < 8; ++j) REQUIRE(expo_rest.weight(1, j) == (j == 1 ? 1.0 : 0.0));
}

TEST_CASE("Topology::without: a disconnected rest is an Error naming it; bad nodes are ConfigErrors", "[transport][lost]") {
  const std::vector<int> opposite{2, 6};
  REQUIRE_THROWS_WITH(Topology::ring(8).without(opposite),
                      Catch::Contains("ring(8) without {2, 6} is disconnected") && Catch::Contains("node 3 is not connected to node 0"));
  const std::vector<int> hub{0};
  REQUIRE_THROWS_WITH(Topology::star(5).without(hub), Catch::Contains("disconnected"));
  const std::vector<int> out{8};
  REQUIRE_THROWS_AS(Topology::ring(8).without(out), ConfigError);
  const std::vector<int> all{0, 1};
  REQUIRE_THROWS_WITH(Topology::ring(2).without(all), Catch::Contains("no node left"));
}

TEST_CASE("Injected failures: checked node and round", "[transport][lost]") {
  SimulatedNetwork sim(Topology::ring(4));
  REQUIRE_THROWS_WITH(sim.inject_failure({4, 0}), Catch::Contains("node 4 is outside [0, 4)"));
  REQUIRE_THROWS_WITH(sim.inject_failure({1, -1}), Catch::Contains("round -1 of node 1 is negative"));
  ThreadNetwork threads(Topology::ring(4));
  REQUIRE_THROWS_AS(threads.inject_failure({-1, 0}), ConfigError);
}

TEST_CASE("SimulatedNetwork: a stopped node is dropped under drop, and its loss travels one hop per round",
          "[transport][lost]") {
  // Path-like ring(6): node 2 stops at round 1; 1 and 3 miss it at round 1, 0 and 4 hear at round 2.
  SimulatedNetwork net(Topology::ring(6));
  net.set_lost_peer_policy(LostPeerPolicy::drop);
  net.inject_failure({2, 1});
  std::vector<std::vector<std::byte>> out(6);
  std::vector<std::span<const std::byte>> inbox;
  for (long round = 0; round < 3; ++round) {
    for (int r = 0; r < 6; ++r) {
      if (net.stopped_at(r) >= 0) continue;
      out[static_cast<std::size_t>(r)] = message_of(r, round);
      if (r == 2 && round == 1) {
        REQUIRE_THROWS_AS(net.endpoint(r).post(round, out[2]), NodeCrashed);
        continue;
      }
      net.endpoint(r).post(round, out[static_cast<std::size_t>(r)]);
    }
    for (int r = 0; r < 6; ++r) {
      if (net.stopped_at(r) >= 0) continue;
      net.endpoint(r).collect(round, inbox);
      const auto ranks = net.endpoint(r).neighbor_ranks();
      for (std::size_t k = 0; k < ranks.size(); ++k) {
        if (ranks[k] == 2 && round >= 1) {
          REQUIRE(inbox[k].empty());
        } else {
          REQUIRE(inbox[k].size() == 2);
          REQUIRE(inbox[k][0] == static_cast<std::byte>(ranks[k]));
        }
      }
    }
    const std::vector<LostPeer> expect{{2, 1}};
    for (int r : {1, 3}) CHECK((round >= 1) == (net.endpoint(r).lost_peers().size() == 1));
    for (int r : {0, 4}) CHECK((round >= 2) == (net.endpoint(r).lost_peers().size() == 1));
    CHECK(net.endpoint(5).lost_peers().empty());  // three hops away: hears at round 3
    if (round >= 2)
      for (int r : {0, 1, 3, 4})
        REQUIRE(std::vector<LostPeer>(net.endpoint(r).lost_peers().begin(), net.endpoint(r).lost_peers().end()) == expect);
  }
  REQUIRE(net.stopped_at(2) == 1);
}

TEST_CASE("SimulatedNetwork: under the fail policy a stopped neighbour is a TransportError naming rank, neighbour and round",
          "[transport][lost]") {
  SimulatedNetwork net(Topology::ring(3));
  net.inject_failure({0, 2});
  std::vector<std::span<const std::byte>> inbox;
  std::vector<std::vector<std::byte>> out(3);
  for (long round = 0; round < 2; ++round) {
    for (int r = 0; r < 3; ++r) net.endpoint(r).post(round, out[static_cast<std::size_t>(r)] = message_of(r, round));
    for (int r = 0; r < 3; ++r) net.endpoint(r).collect(round, inbox);
  }
  REQUIRE_THROWS_AS(net.endpoint(0).post(2, out[0]), NodeCrashed);
  for (int r = 1; r < 3; ++r) net.endpoint(r).post(2, out[static_cast<std::size_t>(r)] = message_of(r, 2));
  REQUIRE_THROWS_WITH(net.endpoint(1).collect(2, inbox),
                      Catch::Contains("node 1 lost neighbour 0 at round 2") && Catch::Contains("on_lost_peer = fail"));
  REQUIRE_THROWS_AS(net.endpoint(2).collect(2, inbox), TransportError);
}

TEST_CASE("ThreadNetwork: a crashed node's thread ends quietly; drop gives the rest, fail names rank and round",
          "[transport][lost]") {
  const Topology ring = Topology::ring(5);
  auto body = [](ThreadNetwork& net, std::vector<std::vector<long>>& empties) {
    return [&net, &empties](int r) {
      std::vector<std::span<const std::byte>> inbox;
      std::vector<std::byte> message;
      for (long round = 0; round < 4; ++round) {
        message = message_of(r, round);
        net.endpoint(r).post(round, message);
        net.endpoint(r).collect(round, inbox);
        for (const auto& m : inbox)
          if (m.empty()) empties[static_cast<std::size_t>(r)].push_back(round);
      }
    };
  };
  {
    ThreadNetwork net(ring);
    net.set_lost_peer_policy(LostPeerPolicy::drop);
    net.inject_failure({2, 1});
    std::vector<std::vector<long>> empties(5);
    net.run(body(net, empties));  // no exception: node 2 crashed, the rest went on
    REQUIRE(net.stopped_at(2) == 1);
    REQUIRE(empties[1] == std::vector<long>{1, 2, 3});
    REQUIRE(empties[3] == std::vector<long>{1, 2, 3});
    REQUIRE(empties[0].empty());
    const std::vector<LostPeer> expect{{2, 1}};
    for (int r : {0, 1, 3, 4})
      REQUIRE(std::vector<LostPeer>(net.endpoint(r).lost_peers().begin(), net.endpoint(r).lost_peers().end()) == expect);
  }
  {
    ThreadNetwork net(ring);
    net.inject_failure({2, 1});
    std::vector<std::vector<long>> empties(5);
    REQUIRE_THROWS_WITH(net.run(body(net, empties)), Catch::Contains("lost neighbour 2 at round 1"));
  }
}

TEST_CASE("ThreadNetwork: under drop a hung neighbour is dropped after the timeout", "[transport][lost]") {
  ThreadNetwork net(Topology::ring(3), {}, std::chrono::milliseconds(100));
  net.set_lost_peer_policy(LostPeerPolicy::drop);
  std::vector<int> empty_count(3, 0);
  net.run([&](int r) {
    if (r == 0) return;  // never posts, never crashes: a hung peer
    std::vector<std::span<const std::byte>> inbox;
    std::vector<std::byte> message = message_of(r, 0);
    net.endpoint(r).post(0, message);
    net.endpoint(r).collect(0, inbox);
    for (const auto& m : inbox) empty_count[static_cast<std::size_t>(r)] += m.empty() ? 1 : 0;
  });
  REQUIRE(empty_count[1] == 1);
  REQUIRE(empty_count[2] == 1);
  REQUIRE(net.endpoint(1).lost_peers().front() == LostPeer{0, 0});
}

TEST_CASE("ThreadNetwork: a hung node dropped after the timeout that wakes up is evicted, not left running alone",
          "[transport][lost]") {
  ThreadNetwork net(Topology::ring(3), {}, std::chrono::milliseconds(100));
  net.set_lost_peer_policy(LostPeerPolicy::drop);
  std::promise<void> dropped;
  std::shared_future<void> woken = dropped.get_future().share();
  std::atomic<int> waiting{2};
  std::atomic<bool> woken_node_crashed{false};
  net.run([&](int r) {
    std::vector<std::span<const std::byte>> inbox;
    std::vector<std::byte> message = message_of(r, 0);
    if (r == 0) {
      woken.wait();  // hung until both neighbours have dropped it
      try {
        net.endpoint(0).post(0, message);
      } catch (const NodeCrashed&) {
        woken_node_crashed = true;
        throw;  // run() ends this thread quietly
      }
      return;
    }
    net.endpoint(r).post(0, message);
    net.endpoint(r).collect(0, inbox);
    if (--waiting == 0) dropped.set_value();
  });
  REQUIRE(woken_node_crashed);
  REQUIRE(net.stopped_at(0) == 0);
  REQUIRE(net.endpoint(1).lost_peers().front() == LostPeer{0, 0});
}

TEST_CASE("SimulatedNetwork: a rejoin is seen by the neighbours at R2, two hops away at R2 + 1, and the node is back at R2 + 2",
          "[transport][lost][rejoin]") {
  // ring(6): node 2 stops at round 1 and rejoins at round 3; it posts again from round 5.
  SimulatedNetwork net(Topology::ring(6));
  net.set_lost_peer_policy(LostPeerPolicy::drop);
  net.inject_failure({2, 1});
  net.inject_rejoin({2, 3});
  REQUIRE(net.rejoin_round(2) == 3);
  std::vector<std::vector<std::byte>> out(6);
  std::vector<std::span<const std::byte>> inbox;
  for (long round = 0; round < 7; ++round) {
    if (round == 5) net.endpoint(2).rejoin(5);  // its handshake, before its first post
    for (int r = 0; r < 6; ++r) {
      out[static_cast<std::size_t>(r)] = message_of(r, round);
      if (r == 2 && round >= 1 && round < 5) {
        REQUIRE_THROWS_AS(net.endpoint(r).post(round, out[2]), NodeCrashed);
        continue;
      }
      net.endpoint(r).post(round, out[static_cast<std::size_t>(r)]);
    }
    for (int r = 0; r < 6; ++r) {
      if (r == 2 && round >= 1 && round < 5) continue;
      net.endpoint(r).collect(round, inbox);
      const auto ranks = net.endpoint(r).neighbor_ranks();
      for (std::size_t k = 0; k < ranks.size(); ++k) {
        const bool out_of_it = ranks[k] == 2 && round >= 1 && round < 5;
        REQUIRE(inbox[k].empty() == out_of_it);
        if (!out_of_it) REQUIRE(inbox[k][0] == static_cast<std::byte>(ranks[k]));
      }
    }
    auto entry = [&](int r) {
      for (const LostPeer& p : net.endpoint(r).lost_peers())
        if (p.node == 2) return p;
      return LostPeer{-1, -1, -1};
    };
    for (int r : {1, 3}) CHECK(entry(r).rejoin_round == (round >= 3 ? 3 : -1));  // seen at R2
    for (int r : {0, 4}) CHECK(entry(r).rejoin_round == (round >= 4 ? 3 : -1));  // two hops: R2 + 1
    if (round >= 5) REQUIRE(entry(1) == LostPeer{2, 1, 3});
  }
  REQUIRE(net.stopped_at(2) == 1);
}

TEST_CASE("ThreadNetwork: a rejoined node's stale messages are dropped and it exchanges again from R2 + 2",
          "[transport][lost][rejoin]") {
  ThreadNetwork net(Topology::ring(4));
  net.set_lost_peer_policy(LostPeerPolicy::drop);
  net.inject_failure({1, 2});
  net.inject_rejoin({1, 4});
  std::vector<std::vector<long>> empties(4);
  net.run([&](int r) {
    std::vector<std::span<const std::byte>> inbox;
    std::vector<std::byte> message;
    for (long round = 0; round < 9; ++round) {
      message = message_of(r, round);
      try {
        net.endpoint(r).post(round, message);
      } catch (const NodeCrashed&) {
        round = 6;  // back at exchange 4 + 2 = 6
        net.endpoint(r).rejoin(round);
        message = message_of(r, round);
        net.endpoint(r).post(round, message);
      }
      net.endpoint(r).collect(round, inbox);
      for (const auto& m : inbox)
        if (m.empty()) empties[static_cast<std::size_t>(r)].push_back(round);
        else if (m[1] != static_cast<std::byte>(round)) empties[static_cast<std::size_t>(r)].push_back(-100 - round);
    }
  });
  REQUIRE(empties[0] == std::vector<long>{2, 3, 4, 5});
  REQUIRE(empties[2] == std::vector<long>{2, 3, 4, 5});
  REQUIRE(empties[1].empty());
  REQUIRE(empties[3].empty());
  REQUIRE(net.endpoint(0).lost_peers().front() == LostPeer{1, 2, 4});
}
