// StochasticGradientPush on directed graphs: push-sum reaches the true average (not the biased
// one plain gossip would), its weights stay positive and sum to n, the mass is conserved, SGP
// minimises the average of the nodes' objectives, the simulated network and ThreadNetwork give
// the same bits, and bad input is refused.
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>

#include <cmath>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

using namespace decopt;
using Catch::Matchers::Contains;

namespace {

using Models = std::vector<std::vector<float>>;

Models spread_models(int n, std::size_t d) {
  Models x(static_cast<std::size_t>(n), std::vector<float>(d));
  for (int i = 0; i < n; ++i)
    for (std::size_t k = 0; k < d; ++k) x[static_cast<std::size_t>(i)][k] = std::sin(static_cast<float>(3 * i + 7 * k)) * (1.0f + i);
  return x;
}

std::vector<double> average(const Models& x) {
  std::vector<double> avg(x[0].size(), 0.0);
  for (const auto& xi : x)
    for (std::size_t k = 0; k < avg.size(); ++k) avg[k] += static_cast<double>(xi[k]) / static_cast<double>(x.size());
  return avg;
}

/// f_i(x) = ½‖x − b_i‖² with b_i = (i, −i, 2i, ...): the average objective's minimiser is mean_i b_i.
auto quadratic(int i) {
  return [i](std::span<const float> x, std::span<float> g) {
    for (std::size_t k = 0; k < x.size(); ++k) g[k] = x[k] - static_cast<float>(i) * (k % 2 ? -1.0f : 1.0f) * (1 + k % 3);
  };
}
auto no_gradient() {
  return [](std::span<const float>, std::span<float> g) { std::fill(g.begin(), g.end(), 0.0f); };
}

/// n SGP nodes on a SimulatedNetwork over graph.undirected(), driven in lockstep.
struct SgpNetwork {
  SgpNetwork(const DirectedGraph& g, Models models, double lr)
      : graph(g), network(g.undirected()), x(std::move(models)) {
    for (int i = 0; i < g.size(); ++i)
      nodes.push_back(std::make_unique<StochasticGradientPush<>>(std::span<float>(x[static_cast<std::size_t>(i)]), g,
                                                                 network.endpoint(i), PushSumOptions{.lr = lr}));
  }
  template <class MakeGrad>
  void rounds(int count, MakeGrad make_grad) {
    for (int r = 0; r < count; ++r) {
      for (int i = 0; i < graph.size(); ++i) nodes[static_cast<std::size_t>(i)]->begin_round(make_grad(i));
      for (auto& node : nodes) (void)node->finish_round();
    }
  }
  [[nodiscard]] double weight_sum() const {
    double s = 0;
    for (const auto& node : nodes) s += node->weight();
    return s;
  }
  DirectedGraph graph;
  SimulatedNetwork network;
  Models x;
  std::vector<std::unique_ptr<StochasticGradientPush<>>> nodes;
};

double worst_gap(const Models& x, const std::vector<double>& target) {
  double worst = 0;
  for (const auto& xi : x)
    for (std::size_t k = 0; k < target.size(); ++k) worst = std::max(worst, std::abs(xi[k] - target[k]) / (1.0 + std::abs(target[k])));
  return worst;
}

}  // namespace

TEST_CASE("Push-sum: every node reaches the true average on directed graphs, to 1e-6", "[optimizer][push-sum]") {
  const std::size_t d = 33;
  const auto irregular = DirectedGraph::from_edges(6, {{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 0}, {0, 3}, {0, 4}, {2, 5}});
  for (const auto& graph : {DirectedGraph::ring(8), DirectedGraph::exponential(8), DirectedGraph::exponential(6), irregular}) {
    INFO(graph.name());
    const Models start = spread_models(graph.size(), d);
    const auto target = average(start);
    SgpNetwork net(graph, start, 0.1);
    double mass0 = 0;
    for (const auto& xi : start)
      for (const float v : xi) mass0 += v;
    net.rounds(graph.size() == 8 && graph.out_degree(0) == 1 ? 400 : 150, [](int) { return no_gradient(); });
    CHECK(worst_gap(net.x, target) < 1e-6);
    // The weights stay positive and sum to n; Σ z is the initial mass (conserved to double rounding).
    double mass = 0;
    for (const auto& node : net.nodes) {
      CHECK(node->weight() > 0);
      for (const double z : node->numerator()) mass += z;
    }
    CHECK(net.weight_sum() == Approx(graph.size()).epsilon(1e-12));
    CHECK(mass == Approx(mass0).epsilon(1e-12).margin(1e-9));
    if (graph.regular())
      for (const auto& node : net.nodes) CHECK(node->weight() == Approx(1.0).epsilon(1e-12));
  }
}

TEST_CASE("Push-sum's weights undo the bias of a column-stochastic matrix", "[optimizer][push-sum]") {
  // Plain gossip x <- A x on an irregular graph converges to a weighted average, not the mean;
  // push-sum's z/w converges to the mean (previous test), and its weights are not all 1 here.
  const auto g = DirectedGraph::from_edges(4, {{0, 1}, {1, 2}, {2, 3}, {3, 0}, {0, 2}});
  const Eigen::MatrixXd a = g.mixing_matrix();
  Eigen::VectorXd x(4);
  x << 4, 0, 0, 0;
  Eigen::VectorXd plain = x;
  for (int t = 0; t < 200; ++t) plain = a * plain;
  CHECK(std::abs(plain(0) - 1.0) > 1e-3);  // biased: the mean is 1, plain gossip's is not
  SgpNetwork net(g, {{4.0f}, {0.0f}, {0.0f}, {0.0f}}, 0.1);
  net.rounds(200, [](int) { return no_gradient(); });
  for (const auto& xi : net.x) CHECK(xi[0] == Approx(1.0).margin(1e-6));
  bool some_weight_differs = false;
  for (const auto& node : net.nodes) some_weight_differs |= std::abs(node->weight() - 1.0) > 1e-3;
  CHECK(some_weight_differs);
}

TEST_CASE("SGP minimises the average of the nodes' objectives on a directed graph", "[optimizer][push-sum]") {
  const std::size_t d = 12;
  const auto g = DirectedGraph::from_edges(6, {{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 0}, {0, 3}, {0, 4}, {2, 5}});
  SgpNetwork net(g, spread_models(6, d), 0.05);
  net.rounds(600, [](int i) { return quadratic(i); });
  // The minimiser of (1/n) Σ ½‖x − b_i‖² is mean_i b_i; with a constant step SGP settles within
  // O(η) of it (heterogeneous b_i), and the nodes agree to the same order.
  std::vector<double> optimum(d);
  for (std::size_t k = 0; k < d; ++k) optimum[k] = 2.5 * (k % 2 ? -1.0 : 1.0) * (1 + k % 3);
  const auto avg = average(net.x);
  for (std::size_t k = 0; k < d; ++k) CHECK(avg[k] == Approx(optimum[k]).margin(0.05 * (1 + std::abs(optimum[k]))));
  CHECK(worst_gap(net.x, avg) < 0.2);
}

TEST_CASE("SGP: the simulated network and ThreadNetwork give the same bits", "[optimizer][push-sum]") {
  const std::size_t d = 20;
  const auto g = DirectedGraph::from_edges(5, {{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 0}, {0, 2}, {3, 1}});
  SgpNetwork sim(g, spread_models(5, d), 0.05);
  sim.rounds(40, [](int i) { return quadratic(i); });

  Models x = spread_models(5, d);
  ThreadNetwork network(g.undirected());
  network.run([&](int rank) {
    StochasticGradientPush<> node(std::span<float>(x[static_cast<std::size_t>(rank)]), g, network.endpoint(rank),
                                  PushSumOptions{.lr = 0.05});
    auto grad = quadratic(rank);
    for (int r = 0; r < 40; ++r) (void)node.step(grad);
  });
  for (int i = 0; i < 5; ++i) CHECK(x[static_cast<std::size_t>(i)] == sim.x[static_cast<std::size_t>(i)]);
}

TEST_CASE("SGP: bad options, transports and messages are refused", "[optimizer][push-sum][config]") {
  const auto g = DirectedGraph::ring(3);
  SimulatedNetwork over_union(g.undirected());
  std::vector<float> x(4, 1.0f);
  CHECK_THROWS_WITH(StochasticGradientPush<>(x, g, over_union.endpoint(0), PushSumOptions{.lr = 0}), Contains("lr"));
  CHECK_THROWS_WITH(StochasticGradientPush<>(x, g, over_union.endpoint(0), PushSumOptions{.lr = std::nan("")}), Contains("lr"));
  SimulatedNetwork wrong(Topology::ring(4));
  CHECK_THROWS_WITH(StochasticGradientPush<>(x, DirectedGraph::exponential(4), wrong.endpoint(0)),
                    Contains("build the transport over graph.undirected()"));
  std::vector<float> bad(4, 1.0f);
  bad[2] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(StochasticGradientPush<>(bad, g, over_union.endpoint(0)), Contains("not finite at 2"));

  // Node 1 receives from node 0 only; a forged message from node 0 is a DecodeError naming it.
  StochasticGradientPush<> node1(x, g, over_union.endpoint(1));
  node1.begin_round(no_gradient());
  const std::vector<std::byte> short_message(5);
  over_union.endpoint(0).post_to(0, 1, short_message);
  CHECK_THROWS_AS(node1.finish_round(), DecodeError);
  CHECK_THROWS_WITH([&] {
    StochasticGradientPush<> again(x, g, over_union.endpoint(1));
    again.begin_round(no_gradient());
    std::vector<std::byte> negative;
    put_le(negative, -0.5);
    for (int k = 0; k < 4; ++k) put_le(negative, 1.0f);
    over_union.endpoint(0).post_to(0, 1, negative);
    (void)again.finish_round();
  }(), Contains("share from node 0 to node 1 in round 0") && Contains("not finite and positive"));
  CHECK_THROWS_WITH(node1.finish_round(), Contains("without begin_round"));
}

TEST_CASE("SGP: a run resumed from every node's checkpoint continues bit for bit", "[optimizer][push-sum][checkpoint]") {
  const std::size_t d = 12;
  const auto g = DirectedGraph::from_edges(4, {{0, 1}, {1, 2}, {2, 3}, {3, 0}, {0, 2}});
  SgpNetwork straight(g, spread_models(4, d), 0.05);
  straight.rounds(30, [](int i) { return quadratic(i); });

  SgpNetwork first(g, spread_models(4, d), 0.05);
  first.rounds(13, [](int i) { return quadratic(i); });
  std::vector<std::vector<std::byte>> states(4);
  for (int i = 0; i < 4; ++i) first.nodes[static_cast<std::size_t>(i)]->save_state(states[static_cast<std::size_t>(i)]);
  // fresh nodes from other initial models: everything they continue from comes from the records
  SgpNetwork resumed(g, Models(4, std::vector<float>(d, 0.5f)), 0.05);
  for (int i = 0; i < 4; ++i) {
    const auto& bytes = states[static_cast<std::size_t>(i)];
    CHECK(resumed.nodes[static_cast<std::size_t>(i)]->load_state(bytes) == bytes.size());
  }
  CHECK(resumed.x == first.x);
  CHECK(resumed.nodes[2]->round() == 13);
  CHECK(resumed.nodes[2]->weight() == first.nodes[2]->weight());
  resumed.rounds(17, [](int i) { return quadratic(i); });
  CHECK(resumed.x == straight.x);
  for (int i = 0; i < 4; ++i)
    CHECK(resumed.nodes[static_cast<std::size_t>(i)]->weight() == straight.nodes[static_cast<std::size_t>(i)]->weight());
}

TEST_CASE("SGP: checkpoints of another graph, node or dimension, and damaged ones, are refused unchanged",
          "[optimizer][push-sum][checkpoint][config]") {
  const std::size_t d = 6;
  const auto g = DirectedGraph::ring(3);
  SgpNetwork net(g, spread_models(3, d), 0.05);
  net.rounds(3, [](int i) { return quadratic(i); });
  std::vector<std::byte> state;
  net.nodes[1]->save_state(state);
  const std::vector<float> before = net.x[1];

  // another node of the same graph, and the same node of another graph
  CHECK_THROWS_WITH(net.nodes[0]->load_state(state), Contains("node 1") && Contains("node 0"));
  SgpNetwork other(DirectedGraph::exponential(3), spread_models(3, d), 0.05);
  CHECK_THROWS_WITH(other.nodes[1]->load_state(state), Contains("another directed graph"));
  SgpNetwork wider(g, spread_models(3, d + 1), 0.05);
  CHECK_THROWS_WITH(wider.nodes[1]->load_state(state), Contains("dimension"));
  // truncated and corrupted records are DecodeErrors, and the node keeps its state
  CHECK_THROWS_AS(net.nodes[1]->load_state(std::span(state).first(state.size() - 3)), DecodeError);
  auto corrupted = state;
  corrupted[corrupted.size() - 9] ^= std::byte{0x40};
  CHECK_THROWS_AS(net.nodes[1]->load_state(corrupted), DecodeError);
  // a DecentralizedOptimizer's record is another kind of state
  std::vector<float> params(d, 0.0f);
  const Topology ring = Topology::ring(3);
  SimulatedNetwork plain(ring);
  DPSGD<> dpsgd(std::span<float>(params), ring, plain.endpoint(1));
  std::vector<std::byte> foreign;
  dpsgd.save_state(foreign);
  CHECK_THROWS_AS(net.nodes[1]->load_state(foreign), Error);
  CHECK(net.x[1] == before);
  CHECK(net.nodes[1]->round() == 3);
  // inside a round
  net.nodes[1]->begin_round(quadratic(1));
  std::vector<std::byte> inside;
  CHECK_THROWS_WITH(net.nodes[1]->save_state(inside), Contains("inside a round"));
  CHECK_THROWS_WITH(net.nodes[1]->load_state(state), Contains("inside a round"));
}
