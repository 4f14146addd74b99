// A lost node rejoins (NodeRejoin; decopt/optimizer/lost_peer_repair.hpp, rejoin.hpp): node 3 of a
// chorded ring stops at round R and its neighbours see it back at R2; at the boundary before
// exchange R2 + 2 every node's weights become Metropolis–Hastings on the graph without the nodes
// still lost (here: the whole graph again, symmetric and doubly stochastic), the rejoiner holds its
// lowest-ranked neighbour's model with x̂ = x, s = Σ_j w_ij x̂_j holds on every node against a
// recomputation, and all nodes, the rejoiner included, reach consensus on a quadratic; runs are
// bit-identical twice on sim and between sim and ThreadNetwork, with CHOCO-SGD and with
// Malcom-PSGD's support coding; bad rejoins are ConfigErrors naming the node.
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>

#include "optimizer/lost_peer_fixtures.hpp"

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

using namespace decopt;
using namespace decopt::test;  // chorded_ring (node 3's neighbours: 0, 2, 4), choco_compressor, weights_in_use

namespace {

constexpr int kNode = 3;
constexpr long kFailRound = 10;
constexpr long kRejoinRound = 30;  // seen at 30, mixes again from exchange 32
constexpr int kDim = 24;

Options quadratic_options() {
  Options o;
  o.lr = 0.05;
  o.consensus_step = 0.5;
  o.seed = 11;
  o.resync_every = 0;
  return o;
}

std::vector<std::vector<float>> starting_models(int n) { return test::starting_models(n, kDim); }
/// f(x) = ½‖x − b‖², the same b on every node: the minimiser every node must reach.
float target(int k) { return 0.25f * std::cos(0.5f * k); }
void quadratic(int, std::span<const float> x, std::span<float> g) {
  for (std::size_t k = 0; k < x.size(); ++k) g[k] = x[k] - target(static_cast<int>(k));
}

template <class Node>
typename Simulation<Node>::Setup rejoin_setup(typename Node::Compressor compressor, long rejoin_round = kRejoinRound) {
  return {.options = quadratic_options(), .compressor = std::move(compressor), .threads = 2,
          .on_lost_peer = LostPeerPolicy::drop, .failures = {{kNode, kFailRound}}, .rejoins = {{kNode, rejoin_round}}};
}

template <class Node>
std::vector<std::vector<float>> run_sim(const Topology& topology, typename Node::Compressor compressor, int rounds) {
  auto models = starting_models(topology.size());
  std::vector<std::span<float>> spans(models.begin(), models.end());
  Simulation<Node> sim(topology, spans, rejoin_setup<Node>(std::move(compressor)));
  for (int t = 0; t < rounds; ++t) sim.round(quadratic);
  REQUIRE(sim.lost_nodes() == std::vector<LostPeer>{{kNode, kFailRound, kRejoinRound}});
  return models;
}

/// Each node on its own thread; the rejoiner catches its crash and calls rejoin().
template <class Node>
std::vector<std::vector<float>> run_threads(const Topology& topology, typename Node::Compressor compressor, int rounds) {
  auto models = starting_models(topology.size());
  std::vector<long> rounds_done(static_cast<std::size_t>(topology.size()), -1), rejoined_at(rounds_done);
  std::vector<std::vector<LostPeer>> logs(rounds_done.size());
  ThreadNetwork network(topology);
  network.set_lost_peer_policy(LostPeerPolicy::drop);
  network.inject_failure({kNode, kFailRound});
  network.inject_rejoin({kNode, kRejoinRound});
  network.run([&](int rank) {
    Node node(std::span<float>(models[static_cast<std::size_t>(rank)]), topology, network.endpoint(rank),
              quadratic_options(), compressor);
    auto grad = [rank](std::span<const float> x, std::span<float> g) { quadratic(rank, x, g); };
    const auto r = static_cast<std::size_t>(rank);
    try {
      while (node.round() < rounds) node.step(grad);
    } catch (const NodeCrashed&) {  // Catch2's REQUIRE is not thread-safe: record, check after run()
      rejoined_at[r] = node.rejoin_round();
      node.rejoin();
      while (node.round() < rounds) node.step(grad);
    }
    rounds_done[r] = node.round();
    logs[r].assign(node.lost_peers().begin(), node.lost_peers().end());
  });
  for (int i = 0; i < topology.size(); ++i) {
    const auto r = static_cast<std::size_t>(i);
    REQUIRE(rounds_done[r] == rounds);
    REQUIRE(rejoined_at[r] == (i == kNode ? kRejoinRound + kRepairDelay : -1));
    if (i != kNode) REQUIRE(logs[r] == std::vector<LostPeer>{{kNode, kFailRound, kRejoinRound}});
  }
  return models;
}

}  // namespace

TEST_CASE("Rejoin on SimulatedNetwork: MH weights of the whole graph again at R2 + 2, the pulled model, s exact, consensus",
          "[optimizer][lost][rejoin]") {
  const Topology topology = chorded_ring();
  auto models = starting_models(topology.size());
  std::vector<std::span<float>> spans(models.begin(), models.end());
  Simulation<Choco> sim(topology, spans, rejoin_setup<Choco>(choco_compressor()));
  const std::vector<int> lost{kNode};
  const Eigen::MatrixXd W = topology.matrix();
  const Eigen::MatrixXd W_rest = topology.without(lost).matrix();

  for (long t = 0; t < kRejoinRound + 1; ++t) sim.round(quadratic);  // rounds 0 … R2: W' in use
  REQUIRE_FALSE(sim.alive(kNode));
  const Eigen::MatrixXd during = weights_in_use(sim);
  for (int i = 0; i < 7; ++i)
    if (i != kNode) REQUIRE(during.row(i) == W_rest.row(i));
  REQUIRE(sim.lost_nodes() == std::vector<LostPeer>{{kNode, kFailRound, -1}});

  sim.round(quadratic);  // round R2 + 1, then the rejoin before exchange R2 + 2
  REQUIRE(sim.alive(kNode));
  REQUIRE(sim.node(kNode).round() == kRejoinRound + 2);
  const Eigen::MatrixXd after = weights_in_use(sim);
  REQUIRE(after == W);  // MH of the graph without the still-lost nodes: none are left
  REQUIRE((after - after.transpose()).cwiseAbs().maxCoeff() == 0.0);
  for (int i = 0; i < 7; ++i) REQUIRE(std::abs(after.row(i).sum() - 1.0) <= 1e-12);
  // The rejoiner took node 0's model (its lowest-ranked neighbour), and x̂ = x.
  const auto x3 = sim.node(kNode).parameters();
  const auto x0 = sim.node(0).parameters();
  REQUIRE(std::vector<float>(x3.begin(), x3.end()) == std::vector<float>(x0.begin(), x0.end()));
  const auto xhat3 = sim.node(kNode).public_copy();
  REQUIRE(std::vector<float>(xhat3.begin(), xhat3.end()) == std::vector<float>(x3.begin(), x3.end()));
  REQUIRE(sim.neighbor_sum_error() <= 1e-6);  // s = Σ_j w_ij x̂_j on every node, the rejoiner included
  REQUIRE(sim.lost_nodes() == std::vector<LostPeer>{{kNode, kFailRound, kRejoinRound}});
  for (int i = 0; i < 7; ++i)
    if (i != kNode) REQUIRE(sim.node(i).lost_peers().front() == LostPeer{kNode, kFailRound, kRejoinRound});

  const double at_rejoin = sim.consensus_distance();
  REQUIRE(at_rejoin > 0);
  const int rounds = 600;
  for (long t = kRejoinRound + 2; t < rounds; ++t) sim.round(quadratic);
  for (int i = 0; i < 7; ++i) REQUIRE(sim.node(i).round() == rounds);
  REQUIRE(sim.neighbor_sum_error() <= 1e-5);
  CAPTURE(at_rejoin, sim.consensus_distance());
  REQUIRE(sim.consensus_distance() <= 1e-6 * at_rejoin);
  for (int k = 0; k < kDim; ++k) REQUIRE(std::abs(x3[static_cast<std::size_t>(k)] - target(k)) <= 1e-3);
}

TEST_CASE("Rejoin: deterministic on sim, and ThreadNetwork gives the same bits (CHOCO-SGD and Malcom-PSGD)",
          "[optimizer][lost][rejoin][determinism]") {
  const Topology topology = chorded_ring();
  const auto a = run_sim<Choco>(topology, choco_compressor(), 80);
  REQUIRE(a == run_sim<Choco>(topology, choco_compressor(), 80));
  REQUIRE(run_threads<Choco>(topology, choco_compressor(), 80) == a);

  using Malcom = MalcomPSGD<>;
  const Malcom::Compressor malcom(Dense{}, DitheredQuantizer{16, Norm::L2}, VectorSourceCoder{});
  const auto m = run_sim<Malcom>(topology, malcom, 80);
  REQUIRE(m == run_sim<Malcom>(topology, malcom, 80));
  REQUIRE(run_threads<Malcom>(topology, malcom, 80) == m);
}

TEST_CASE("Rejoin with Malcom-PSGD's support coding: s exact and consensus after the rejoin", "[optimizer][lost][rejoin]") {
  using Malcom = MalcomPSGD<>;
  const Topology topology = chorded_ring();
  auto models = starting_models(topology.size());
  std::vector<std::span<float>> spans(models.begin(), models.end());
  auto setup = rejoin_setup<Malcom>(Malcom::Compressor(Dense{}, DitheredQuantizer{16, Norm::L2}, VectorSourceCoder{}));
  setup.prox = MalcomL1Prox{0.02};  // sparse models: the support coding has zeros to announce
  Simulation<Malcom> sim(topology, spans, setup);
  for (long t = 0; t < kRejoinRound + 2; ++t) sim.round(quadratic);
  REQUIRE(sim.alive(kNode));
  REQUIRE(sim.neighbor_sum_error() <= 1e-6);
  const double at_rejoin = sim.consensus_distance();
  for (long t = kRejoinRound + 2; t < 600; ++t) sim.round(quadratic);
  REQUIRE(sim.neighbor_sum_error() <= 1e-5);
  CAPTURE(at_rejoin, sim.consensus_distance());
  REQUIRE(sim.consensus_distance() <= 1e-6 * at_rejoin);
}

TEST_CASE("Rejoin of a node that was never lost, at or before its loss, or without drop: ConfigErrors naming the node",
          "[optimizer][lost][rejoin]") {
  const Topology topology = chorded_ring();
  auto models = starting_models(topology.size());
  std::vector<std::span<float>> spans(models.begin(), models.end());
  auto setup = rejoin_setup<Choco>(choco_compressor());
  setup.rejoins = {{2, 30}};
  REQUIRE_THROWS_WITH(Simulation<Choco>(topology, spans, setup),
                      Catch::Contains("injected rejoin: node 2 is never lost"));
  for (long too_early : {kFailRound, kFailRound - 1}) {
    setup.rejoins = {{kNode, too_early}};
    REQUIRE_THROWS_AS(Simulation<Choco>(topology, spans, setup), ConfigError);
    REQUIRE_THROWS_WITH(Simulation<Choco>(topology, spans, setup),
                        Catch::Contains("node 3 rejoins at round " + std::to_string(too_early) + ", not after its loss at round 10"));
  }
  setup.rejoins = {{kNode, 30}};
  setup.on_lost_peer = LostPeerPolicy::fail;
  REQUIRE_THROWS_WITH(Simulation<Choco>(topology, spans, setup), Catch::Contains("rejoin of node 3 needs on_lost_peer = drop"));

  SimulatedNetwork net(topology);
  REQUIRE_THROWS_WITH(net.inject_rejoin({kNode, 5}), Catch::Contains("node 3 is never lost"));
  net.inject_failure({kNode, 5});
  REQUIRE_THROWS_AS(net.inject_rejoin({kNode, 5}), ConfigError);
  net.inject_rejoin({kNode, 6});
  REQUIRE_THROWS_WITH(net.inject_rejoin({kNode, 9}), Catch::Contains("node 3 rejoins twice"));
  ThreadNetwork threads(topology);
  REQUIRE_THROWS_WITH(threads.inject_rejoin({1, 5}), Catch::Contains("node 1 is never lost"));

  Options resyncing = quadratic_options();
  resyncing.resync_every = 4;  // exchange 4 + 4/4 … : exchange 14 is the resynchronisation before round 12
  setup = rejoin_setup<Choco>(choco_compressor());
  setup.options = resyncing;
  setup.rejoins = {{kNode, 12}};
  REQUIRE_THROWS_WITH(Simulation<Choco>(topology, spans, setup), Catch::Contains("a resynchronisation's"));
}
