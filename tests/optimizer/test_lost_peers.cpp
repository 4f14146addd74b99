// Lost peers in the optimizer (LostPeerPolicy::drop; decopt/optimizer/lost_peer_repair.hpp): with
// one node stopping at round R, on SimulatedNetwork and on ThreadNetwork every survivor finishes
// every round and lists the loss; the survivors reach consensus; at the boundary before exchange
// R + 2 their weights become Metropolis–Hastings on the remaining graph (symmetric, doubly
// stochastic, equal to Topology::without) and s = Σ_j w_ij x̂_j holds again (against a
// recomputation); runs are bit-identical twice on sim and between sim and threads; the fail
// policy still ends the run naming rank, neighbour and round; a disconnected rest is an Error.
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>

#include "optimizer/lost_peer_fixtures.hpp"

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

using namespace decopt;
using namespace decopt::test;

namespace {

constexpr int kLost = 3;
constexpr long kFailRound = 10;
constexpr int kDim = 24;

Options consensus_options() {
  Options o;
  o.lr = 0.1;
  o.consensus_step = 0.5;
  o.seed = 7;
  o.resync_every = 0;
  return o;
}

/// Node-dependent starting models: a consensus problem (the gradient is 0).
std::vector<std::vector<float>> starting_models(int n) { return test::starting_models(n, kDim); }
void zero_gradient(int, std::span<const float>, std::span<float> g) { std::fill(g.begin(), g.end(), 0.0f); }

Simulation<Choco>::Setup drop_setup(LostPeerPolicy policy = LostPeerPolicy::drop) {
  return {.options = consensus_options(), .compressor = choco_compressor(), .threads = 2,
          .on_lost_peer = policy, .failures = {{kLost, kFailRound}}};
}

std::vector<std::vector<float>> run_sim(const Topology& topology, int rounds) {
  auto models = starting_models(topology.size());
  std::vector<std::span<float>> spans(models.begin(), models.end());
  Simulation<Choco> sim(topology, spans, drop_setup());
  for (int t = 0; t < rounds; ++t) sim.round(zero_gradient);
  return models;
}

std::vector<std::vector<float>> run_threads(const Topology& topology, int rounds, LostPeerPolicy policy) {
  auto models = starting_models(topology.size());
  ThreadNetwork network(topology);
  network.set_lost_peer_policy(policy);
  network.inject_failure({kLost, kFailRound});
  network.run([&](int rank) {
    Choco node(std::span<float>(models[static_cast<std::size_t>(rank)]), topology, network.endpoint(rank),
               consensus_options(), choco_compressor());
    for (int t = 0; t < rounds; ++t) node.step([rank](std::span<const float> x, std::span<float> g) { zero_gradient(rank, x, g); });
    REQUIRE(node.round() == rounds);
    REQUIRE(node.lost_peers().size() == 1);
    REQUIRE(node.lost_peers().front() == LostPeer{kLost, kFailRound});
  });
  return models;
}

}  // namespace

TEST_CASE("Lost peer on SimulatedNetwork: survivors finish, switch to W' at R + 2, keep s exact and reach consensus",
          "[optimizer][lost]") {
  const Topology topology = chorded_ring();
  auto models = starting_models(topology.size());
  std::vector<std::span<float>> spans(models.begin(), models.end());
  Simulation<Choco> sim(topology, spans, drop_setup());
  const double start_distance = sim.consensus_distance();
  const Eigen::MatrixXd W = topology.matrix();
  const std::vector<int> lost{kLost};
  const Eigen::MatrixXd W_rest = topology.without(lost).matrix();
  REQUIRE(W_rest(1, 0) != W(1, 0));  // a row two hops away changes: the repair reaches it

  for (long t = 0; t < kFailRound + 1; ++t) sim.round(zero_gradient);  // rounds 0 … R: old weights
  REQUIRE_FALSE(sim.alive(kLost));
  const Eigen::MatrixXd before = weights_in_use(sim);
  for (int i = 0; i < 7; ++i)
    if (i != kLost) REQUIRE(before.row(i) == W.row(i));
  sim.round(zero_gradient);  // round R + 1, then the repair before exchange R + 2
  const Eigen::MatrixXd after = weights_in_use(sim);
  for (int i = 0; i < 7; ++i)
    if (i != kLost) REQUIRE(after.row(i) == W_rest.row(i));
  REQUIRE((after - after.transpose()).cwiseAbs().maxCoeff() == 0.0);
  for (int i = 0; i < 7; ++i)
    if (i != kLost) REQUIRE(std::abs(after.row(i).sum() - 1.0) <= 1e-12);
  REQUIRE(sim.neighbor_sum_error() <= 1e-6);  // s = Σ_j w'_ij x̂_j, against a recomputation in double

  const int rounds = 400;
  for (long t = kFailRound + 2; t < rounds; ++t) sim.round(zero_gradient);
  for (int i = 0; i < 7; ++i) {
    if (i == kLost) continue;
    REQUIRE(sim.node(i).round() == rounds);
    REQUIRE(sim.node(i).lost_peers().size() == 1);  // every survivor logs the loss and its round
    REQUIRE(sim.node(i).lost_peers().front() == LostPeer{kLost, kFailRound});
  }
  REQUIRE(sim.lost_nodes() == std::vector<LostPeer>{{kLost, kFailRound}});
  REQUIRE(sim.neighbor_sum_error() <= 1e-5);
  CAPTURE(start_distance, sim.consensus_distance());
  REQUIRE(sim.consensus_distance() <= 1e-10 * start_distance);
}

TEST_CASE("Lost peer: deterministic on sim, and ThreadNetwork gives the same bits", "[optimizer][lost][determinism]") {
  const Topology topology = chorded_ring();
  const auto a = run_sim(topology, 60);
  const auto b = run_sim(topology, 60);
  REQUIRE(a == b);
  const auto threads = run_threads(topology, 60, LostPeerPolicy::drop);
  REQUIRE(threads == a);
}

TEST_CASE("Lost peer under the fail policy: the run ends naming rank, neighbour and round", "[optimizer][lost][failure]") {
  const Topology topology = chorded_ring();
  auto models = starting_models(topology.size());
  std::vector<std::span<float>> spans(models.begin(), models.end());
  Simulation<Choco> sim(topology, spans, drop_setup(LostPeerPolicy::fail));
  for (long t = 0; t < kFailRound; ++t) sim.round(zero_gradient);
  REQUIRE_THROWS_WITH(sim.round(zero_gradient), Catch::Contains("node 0 lost neighbour 3 at round 10"));
  REQUIRE_THROWS_WITH(run_threads(topology, 20, LostPeerPolicy::fail), Catch::Contains("lost neighbour 3 at round 10"));
}

TEST_CASE("Lost peers that cut the graph are an Error naming it; drop needs MH weights and no checkpoints after a loss",
          "[optimizer][lost]") {
  {  // ring(6) without 1 and 4: {0, 5} and {2, 3}
    auto models = starting_models(6);
    std::vector<std::span<float>> spans(models.begin(), models.end());
    auto setup = drop_setup();
    setup.failures = {{1, 5}, {4, 5}};
    Simulation<Choco> sim(Topology::ring(6), spans, setup);
    for (long t = 0; t < 6; ++t) sim.round(zero_gradient);
    REQUIRE_THROWS_WITH(sim.round(zero_gradient), Catch::Contains("ring(6) without {1, 4} is disconnected"));
  }
  {
    auto models = starting_models(7);
    std::vector<std::span<float>> spans(models.begin(), models.end());
    const Topology max_degree = Topology::from_edges(7, {{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 6}, {6, 0}, {0, 2}, {0, 3}},
                                                     WeightRule::MaxDegree);
    REQUIRE_THROWS_WITH(Simulation<Choco>(max_degree, spans, drop_setup()),
                        Catch::Contains("recomputes Metropolis-Hastings weights"));
  }
  {
    auto models = starting_models(7);
    std::vector<std::span<float>> spans(models.begin(), models.end());
    Simulation<Choco> sim(chorded_ring(), spans, drop_setup());
    std::vector<std::byte> record;
    sim.node(0).save_state(record);  // before the loss: fine
    for (long t = 0; t < kFailRound + 2; ++t) sim.round(zero_gradient);
    record.clear();
    REQUIRE_THROWS_WITH(sim.node(0).save_state(record), Catch::Contains("after a lost peer"));
  }
}

TEST_CASE("Options: exchange_of_round and round_of_exchange invert each other around resynchronisations", "[optimizer][lost]") {
  for (long period : {0L, 1L, 2L, 3L, 1000L}) {
    Options o;
    o.resync_every = period;
    for (long r = 0; r < 50; ++r) {
      REQUIRE(o.round_of_exchange(o.exchange_of_round(r)) == r);
      if (period > 0 && r > 0 && r % period == 0) REQUIRE(o.round_of_exchange(o.exchange_of_round(r) - 1) == r);  // its resync
    }
  }
}

TEST_CASE("Lost peer with resynchronisations and the overlapped step: survivors finish with s exact and reach consensus",
          "[optimizer][lost]") {
  using Overlap = ChocoSGD<OverlappedStep>;
  const Topology topology = chorded_ring();
  auto models = starting_models(topology.size());
  std::vector<std::span<float>> spans(models.begin(), models.end());
  Options o = consensus_options();
  o.resync_every = 3;  // resynchronisations before rounds 3, 6, 9, 12 …: the loss and its repair fall among them
  const long fail_round = 10;
  Simulation<Overlap> sim(topology, spans,
                          {.options = o, .compressor = choco_compressor(), .threads = 1, .on_lost_peer = LostPeerPolicy::drop,
                           .failures = {{kLost, o.exchange_of_round(fail_round)}}});
  const double start_distance = sim.consensus_distance();
  const int rounds = 300;
  for (int t = 0; t < rounds; ++t) sim.round(zero_gradient);
  for (int i = 0; i < 7; ++i) {
    if (i == kLost) continue;
    REQUIRE(sim.node(i).round() == rounds);
    REQUIRE(sim.node(i).lost_peers().size() == 1);
    REQUIRE(o.round_of_exchange(sim.node(i).lost_peers().front().round) == fail_round);
  }
  REQUIRE(sim.neighbor_sum_error() <= 1e-5);
  REQUIRE(sim.consensus_distance() <= 1e-10 * start_distance);
}
