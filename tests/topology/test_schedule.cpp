// Tests for decopt/topology/schedule.hpp: TopologySchedule's factories, determinism, doubly
// stochastic rounds, union graph, fingerprint and the ConfigErrors of bad input.
#include <catch2/catch.hpp>

#include <decopt/topology/topology_all.hpp>

#include "mixing_checks.hpp"

#include <bit>
#include <set>
#include <utility>
#include <vector>

using namespace decopt;
using Catch::Matchers::Contains;

namespace {

/// Every round of s is symmetric and doubly stochastic with a positive diagonal.
void check_rounds_doubly_stochastic(const TopologySchedule& s) {
  INFO(s.name());
  for (long t = 0; t < 2L * s.period(); ++t) test::check_doubly_stochastic(s.at(t).matrix(), s.size());
}

/// The undirected edges {i < j} of one round.
std::set<std::pair<int, int>> edges_of(const Topology& t) {
  std::set<std::pair<int, int>> out;
  for (int i = 0; i < t.size(); ++i)
    for (const Edge& e : t.neighbors(i))
      if (i < e.node) out.emplace(i, e.node);
  return out;
}

}  // namespace

TEST_CASE("fixed schedule is today's static topology", "[topology][schedule]") {
  const Topology ring = Topology::ring(8);
  const TopologySchedule s = TopologySchedule::fixed(ring);
  REQUIRE(s.size() == 8);
  REQUIRE(s.period() == 1);
  REQUIRE(s.at(0) == ring);
  REQUIRE(s.at(17) == ring);
  REQUIRE(s.union_graph() == ring);
  REQUIRE(s.name() == "fixed(ring(8))");
  check_rounds_doubly_stochastic(s);
  REQUIRE_THROWS_WITH(s.at(-1), Contains("round must be >= 0"));
}

TEST_CASE("one-peer exponential schedule: one neighbour per round, exact averaging over any period",
          "[topology][schedule]") {
  for (int n : {2, 4, 8, 16}) {
    INFO("n = " << n);
    const TopologySchedule s = TopologySchedule::one_peer_exponential(n);
    const int tau = std::countr_zero(static_cast<unsigned>(n));
    REQUIRE(s.period() == tau);
    check_rounds_doubly_stochastic(s);
    for (long t = 0; t < 3L * tau; ++t)
      for (int i = 0; i < n; ++i) {
        REQUIRE(s.at(t).degree(i) == 1);
        REQUIRE(s.at(t).neighbors(i)[0].node == (i ^ (1 << (t % tau))));
      }
    // The union is the hypercube: log2 n potential peers per node.
    REQUIRE(s.union_graph() == Topology::hypercube(tau));
    // The rounds commute, so any τ consecutive rounds (not only those starting at 0) multiply to
    // exactly 11ᵀ/n, bit for bit.
    for (long start = 0; start < tau + 2; ++start) {
      INFO("start = " << start);
      Eigen::MatrixXd product = Eigen::MatrixXd::Identity(n, n);
      for (long t = start; t < start + tau; ++t) product = s.at(t).matrix() * product;
      REQUIRE((product.array() == 1.0 / n).all());
    }
    // One round fewer is not yet the average (n ≥ 4: the product has zero entries).
    if (tau >= 2) {
      Eigen::MatrixXd partial = Eigen::MatrixXd::Identity(n, n);
      for (long t = 0; t + 1 < tau; ++t) partial = s.at(t).matrix() * partial;
      REQUIRE(partial.minCoeff() == 0.0);
    }
  }
  REQUIRE_THROWS_WITH(TopologySchedule::one_peer_exponential(12), Contains("power of two") && Contains("12"));
}

TEST_CASE("random matchings are seeded, deterministic matchings", "[topology][schedule]") {
  for (int n : {5, 8, 16}) {
    INFO("n = " << n);
    const TopologySchedule a = TopologySchedule::random_matchings(n, 6, 42);
    const TopologySchedule b = TopologySchedule::random_matchings(n, 6, 42);
    const TopologySchedule c = TopologySchedule::random_matchings(n, 6, 43);
    REQUIRE(a == b);
    REQUIRE(a.fingerprint() == b.fingerprint());
    REQUIRE_FALSE(a == c);
    REQUIRE(a.fingerprint() != c.fingerprint());
    REQUIRE(a.period() == 6);
    check_rounds_doubly_stochastic(a);
    for (long t = 0; t < a.period(); ++t) {
      int unmatched = 0;
      for (int i = 0; i < n; ++i) {
        REQUIRE(a.at(t).degree(i) <= 1);
        if (a.at(t).degree(i) == 0) {
          ++unmatched;
          REQUIRE(a.at(t).self_weight(i) == 1.0);
        } else {
          REQUIRE(a.at(t).neighbors(i)[0].weight == 0.5);
        }
      }
      REQUIRE(unmatched == n % 2);  // maximal: at most one node sits out
    }
    // The union graph holds exactly the edges of the rounds.
    std::set<std::pair<int, int>> all;
    for (long t = 0; t < a.period(); ++t) all.merge(edges_of(a.at(t)));
    REQUIRE(edges_of(a.union_graph()) == all);
  }
  // Too few rounds to connect 8 nodes (4 edges per round, 7 needed).
  REQUIRE_THROWS_WITH(TopologySchedule::random_matchings(8, 1, 1), Contains("not jointly connected"));
  REQUIRE_THROWS_WITH(TopologySchedule::random_matchings(8, 0, 1), Contains("period must be >= 1"));
  REQUIRE_THROWS_WITH(TopologySchedule::random_matchings(0, 3, 1), Contains("n must be >= 1"));
}

TEST_CASE("cyclic schedules of topologies and matrices", "[topology][schedule]") {
  const TopologySchedule s = TopologySchedule::cyclic({Topology::ring(6), Topology::star(6), Topology::complete(6)});
  REQUIRE(s.period() == 3);
  REQUIRE(s.at(4) == Topology::star(6));
  REQUIRE(s.union_graph() == Topology::complete(6));
  check_rounds_doubly_stochastic(s);

  // Two disconnected matchings of a 4-cycle: each round alone has gap 0, jointly a ring.
  Eigen::MatrixXd A = Eigen::MatrixXd::Zero(4, 4), B = Eigen::MatrixXd::Zero(4, 4);
  for (auto [i, j] : {std::pair{0, 1}, std::pair{2, 3}}) A(i, j) = A(j, i) = A(i, i) = A(j, j) = 0.5;
  for (auto [i, j] : {std::pair{1, 2}, std::pair{3, 0}}) B(i, j) = B(j, i) = B(i, i) = B(j, j) = 0.5;
  const TopologySchedule m = TopologySchedule::cyclic(std::vector<Eigen::MatrixXd>{A, B});
  REQUIRE(m.period() == 2);
  REQUIRE(m.at(0).matrix() == A);
  REQUIRE(m.at(1).matrix() == B);
  REQUIRE(edges_of(m.union_graph()) == edges_of(Topology::ring(4)));
  check_rounds_doubly_stochastic(m);

  SECTION("bad input names the problem") {
    REQUIRE_THROWS_WITH(TopologySchedule::cyclic(std::vector<Topology>{}),
                        Contains("empty") && Contains("period 0"));
    REQUIRE_THROWS_WITH(TopologySchedule::cyclic({Topology::ring(6), Topology::ring(5)}),
                        Contains("round 1") && Contains("5 nodes") && Contains("6"));
    Eigen::MatrixXd C = A;
    C(0, 0) = 0.6;  // row 0 sums to 1.1: not doubly stochastic
    REQUIRE_THROWS_WITH(TopologySchedule::cyclic(std::vector<Eigen::MatrixXd>{B, C}),
                        Contains("round 1") && Contains("row 0 sums to"));
    Eigen::MatrixXd D = A;
    D(0, 1) = 0.25;  // not symmetric
    REQUIRE_THROWS_WITH(TopologySchedule::cyclic(std::vector<Eigen::MatrixXd>{D}),
                        Contains("round 0") && Contains("not symmetric"));
    Eigen::MatrixXd swap = Eigen::MatrixXd::Zero(2, 2);
    swap(0, 1) = swap(1, 0) = 1.0;
    REQUIRE_THROWS_WITH(TopologySchedule::cyclic(std::vector<Eigen::MatrixXd>{swap}), Contains("self weight 0"));
    // Only the first matching, repeated: nodes {0,1} never meet {2,3}.
    REQUIRE_THROWS_WITH(TopologySchedule::cyclic(std::vector<Eigen::MatrixXd>{A, A}),
                        Contains("not jointly connected") && Contains("node 2"));
  }
}

TEST_CASE("schedule fingerprints tell schedules apart", "[topology][schedule]") {
  const auto fixed_exp = TopologySchedule::fixed(Topology::exponential(8));
  const auto one_peer = TopologySchedule::one_peer_exponential(8);
  REQUIRE(fixed_exp.fingerprint() == TopologySchedule::fixed(Topology::exponential(8)).fingerprint());
  REQUIRE(one_peer.fingerprint() == TopologySchedule::one_peer_exponential(8).fingerprint());
  REQUIRE(fixed_exp.fingerprint() != one_peer.fingerprint());
  REQUIRE(fixed_exp.fingerprint() != Topology::exponential(8).fingerprint());
  // Same rounds in another order: another schedule.
  const auto ab = TopologySchedule::cyclic({Topology::ring(6), Topology::star(6)});
  const auto ba = TopologySchedule::cyclic({Topology::star(6), Topology::ring(6)});
  REQUIRE(ab.fingerprint() != ba.fingerprint());
  // The period counts: [ring] and [ring, ring] are the same W(t) but not the same record.
  REQUIRE(TopologySchedule::cyclic({Topology::ring(6)}).fingerprint() !=
          TopologySchedule::cyclic({Topology::ring(6), Topology::ring(6)}).fingerprint());
}
