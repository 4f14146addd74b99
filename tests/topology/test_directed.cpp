// DirectedGraph: the named directed graphs' neighbourhoods, push-sum's column-stochastic weights,
// strong connectivity and the undirected graph a transport is built over.
#include <catch2/catch.hpp>

#include <decopt/topology/directed.hpp>

#include <vector>

using namespace decopt;
using Catch::Matchers::Contains;

namespace {
std::vector<int> list(std::span<const int> s) { return {s.begin(), s.end()}; }
}  // namespace

TEST_CASE("Directed ring and exponential graph: neighbours, shares, regularity", "[topology][directed]") {
  const auto ring = DirectedGraph::ring(5);
  CHECK(ring.size() == 5);
  CHECK(list(ring.out_neighbors(4)) == std::vector<int>{0});
  CHECK(list(ring.in_neighbors(0)) == std::vector<int>{4});
  CHECK(ring.share(2) == 0.5);
  CHECK(ring.regular());

  const auto expo = DirectedGraph::exponential(8);  // i -> i+1, i+2, i+4
  CHECK(list(expo.out_neighbors(0)) == std::vector<int>{1, 2, 4});
  CHECK(list(expo.in_neighbors(0)) == std::vector<int>{4, 6, 7});
  CHECK(expo.share(3) == 0.25);
  CHECK(expo.regular());
  const auto six = DirectedGraph::exponential(6);  // hops 1, 2, 4
  CHECK(list(six.out_neighbors(5)) == std::vector<int>{0, 1, 3});
  CHECK(DirectedGraph::exponential(2).out_degree(0) == 1);
}

TEST_CASE("Push-sum mixing matrix: columns sum to 1, rows not on an irregular graph", "[topology][directed]") {
  // A ring with a chord 0 -> 2: node 0 has two out-neighbours, node 2 two in-neighbours.
  const auto g = DirectedGraph::from_edges(4, {{0, 1}, {1, 2}, {2, 3}, {3, 0}, {0, 2}, {0, 2}});
  CHECK(list(g.out_neighbors(0)) == std::vector<int>{1, 2});  // the duplicate is merged
  CHECK(list(g.in_neighbors(2)) == std::vector<int>{0, 1});
  CHECK_FALSE(g.regular());
  const Eigen::MatrixXd a = g.mixing_matrix();
  CHECK((a.array() >= 0).all());
  for (int j = 0; j < 4; ++j) CHECK(a.col(j).sum() == Approx(1.0).margin(1e-15));
  CHECK(a(0, 0) == Approx(1.0 / 3));
  CHECK(a(2, 0) == Approx(1.0 / 3));
  CHECK(a.row(2).sum() != Approx(1.0));  // not row-stochastic: plain gossip would be biased
  for (const auto& dg : {DirectedGraph::ring(6), DirectedGraph::exponential(6)})
    for (int i = 0; i < 6; ++i) CHECK(dg.mixing_matrix().row(i).sum() == Approx(1.0));

  const Topology u = g.undirected();
  CHECK(u.size() == 4);
  CHECK(u.neighbors(0).size() == 3);  // 1, 2 (out) and 3 (in)
  CHECK(u.neighbors(1).size() == 2);
}

TEST_CASE("DirectedGraph: bad graphs are ConfigErrors naming the problem", "[topology][directed][config]") {
  CHECK_THROWS_WITH(DirectedGraph::ring(1), Contains("at least 2"));
  CHECK_THROWS_WITH(DirectedGraph::exponential(0), Contains("at least 2"));
  CHECK_THROWS_WITH(DirectedGraph::from_edges(0, {}), Contains("at least 1"));
  CHECK_THROWS_WITH(DirectedGraph::from_edges(3, {{0, 1}, {1, 3}}), Contains("outside [0, 3)"));
  CHECK_THROWS_WITH(DirectedGraph::from_edges(3, {{0, 1}, {1, 1}, {1, 2}, {2, 0}}), Contains("self loop at node 1"));
  // 0 -> 1 -> 2 with no way back: connected as an undirected graph, not strongly.
  CHECK_THROWS_AS(DirectedGraph::from_edges(3, {{0, 1}, {1, 2}}), ConfigError);
  CHECK_THROWS_WITH(DirectedGraph::from_edges(3, {{0, 1}, {1, 2}}), Contains("cannot be reached from node 1"));
  CHECK_THROWS_WITH(DirectedGraph::from_edges(3, {{1, 0}, {2, 0}, {0, 1}}), Contains("node 0 cannot reach node 2"));
  CHECK(DirectedGraph::from_edges(1, {}).size() == 1);
}
