// Tests for the optimizer over a TopologySchedule (decopt/optimizer/edge_exchange.hpp):
// ScheduledSyncStep / ScheduledOverlappedStep and the Scheduled* configurations.
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "problems.hpp"

namespace {

using decopt::testing::SplitProblem;

/// n model buffers of dimension d, all starting at the same seeded x⁰.
struct Models {
  std::vector<std::vector<float>> data;
  Models(int n, int d, std::uint64_t seed) : data(static_cast<std::size_t>(n)) {
    decopt::Rng rng(seed);
    std::vector<float> x0(static_cast<std::size_t>(d));
    for (float& v : x0) v = static_cast<float>(rng.normal());
    for (auto& m : data) m = x0;
  }
  std::vector<std::span<float>> spans() {
    std::vector<std::span<float>> s;
    for (auto& m : data) s.emplace_back(m);
    return s;
  }
};

/// Bitwise equality of two float vectors (the property is "same bits", not "close").
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

auto gradient_of(const SplitProblem& p) {
  return [&p](int i, std::span<const float> x, std::span<float> g) { p.gradient_into(i, x, g); };
}

constexpr int kNodes = 8;
constexpr int kDim = 12;

}  // namespace

TEST_CASE("Scheduled step on a fixed schedule gives the same bits as today's step", "[optimizer][schedule]") {
  const auto problem = decopt::testing::make_problem(SplitProblem::Loss::LeastSquares, kNodes, 20, kDim, 3);
  const auto ring = decopt::Topology::ring(kNodes);
  const decopt::Options options{.lr = 0.05, .consensus_step = 0.5, .seed = 9, .resync_every = 7};
  Models today(kNodes, kDim, 1), scheduled(kNodes, kDim, 1);
  decopt::Simulation<decopt::ChocoSGD<>> a(ring, today.spans(), {.options = options, .threads = 1});
  decopt::Simulation<decopt::ScheduledChocoSGD<>> b(decopt::TopologySchedule::fixed(ring), scheduled.spans(),
                                                    {.options = options, .threads = 1});
  auto grad = gradient_of(problem);
  for (int r = 0; r < 20; ++r) {  // spans two resynchronisations
    const auto sa = a.round(grad);
    const auto sb = b.round(grad);
    REQUIRE(sa.bytes_sent == sb.bytes_sent);
  }
  for (int i = 0; i < kNodes; ++i) REQUIRE(same_bits(today.data[i], scheduled.data[i]));
  REQUIRE(b.node(0).public_copy().size() == kDim);  // static: one public copy, no edge copies
}

TEST_CASE("On one-peer exponential every node sends exactly one message per round", "[optimizer][schedule]") {
  const auto problem = decopt::testing::make_problem(SplitProblem::Loss::LeastSquares, kNodes, 20, kDim, 4);
  const auto schedule = decopt::TopologySchedule::one_peer_exponential(kNodes);
  Models models(kNodes, kDim, 2);
  decopt::Simulation<decopt::ScheduledMalcomPSGD<>> sim(schedule, models.spans(),
                                                        {.options = {.lr = 0.05, .consensus_step = 0.5}, .threads = 2});
  auto grad = gradient_of(problem);
  for (int r = 0; r < 2 * schedule.period(); ++r) {
    sim.round(grad);
    for (int i = 0; i < kNodes; ++i) {
      const auto& totals = sim.node(i).totals();
      REQUIRE(totals.rounds == r + 1);
    }
  }
  // per round: drive single nodes to read RoundStats (a Simulation sums them)
  Models again(kNodes, kDim, 2);
  decopt::SimulatedNetwork network(schedule.transport_graph());
  std::vector<decopt::ScheduledMalcomPSGD<>> nodes;
  for (int i = 0; i < kNodes; ++i)
    nodes.emplace_back(std::span<float>(again.data[i]), schedule, network.endpoint(i), decopt::Options{.lr = 0.05});
  for (int r = 0; r < 2 * schedule.period(); ++r) {
    for (int i = 0; i < kNodes; ++i) nodes[i].begin_round([&](auto x, auto g) { problem.gradient_into(i, x, g); });
    for (int i = 0; i < kNodes; ++i) {
      const decopt::RoundStats s = nodes[i].finish_round();
      REQUIRE(s.messages_sent == 1);
      REQUIRE(s.bytes_sent == s.message_bytes);
      REQUIRE(s.bytes_received > 0);
    }
  }
  // the static exponential graph broadcasts to all its neighbours (±1, ±2, +4: five for n = 8)
  Models stat(kNodes, kDim, 2);
  decopt::SimulatedNetwork static_network(decopt::Topology::exponential(kNodes));
  decopt::MalcomPSGD<> node0(std::span<float>(stat.data[0]), decopt::Topology::exponential(kNodes),
                             static_network.endpoint(0));
  REQUIRE(node0.neighbors().size() == 5);
  REQUIRE(nodes[0].public_copy().empty());  // the edge copies replace x̂ and s
}

TEST_CASE("Scheduled steps reach consensus at the optimum of a quadratic", "[optimizer][schedule]") {
  const auto problem = decopt::testing::make_problem(SplitProblem::Loss::LeastSquares, kNodes, 30, kDim, 5);
  const Eigen::VectorXd optimum = decopt::testing::fista(problem, 0.0);
  auto grad = gradient_of(problem);
  auto error_of = [&](const std::vector<float>& x) {
    double e = 0;
    for (int k = 0; k < kDim; ++k) e += (x[k] - optimum[k]) * (x[k] - optimum[k]);
    return std::sqrt(e) / optimum.norm();
  };
  SECTION("CHOCO, quantized, one-peer exponential") {
    Models models(kNodes, kDim, 3);
    decopt::Simulation<decopt::ScheduledChocoSGD<>> sim(decopt::TopologySchedule::one_peer_exponential(kNodes),
                                                        models.spans(),
                                                        {.options = {.lr = 0.1, .consensus_step = 0.4}, .threads = 1});
    const double start = sim.consensus_distance() + error_of(models.data[0]);
    for (int r = 0; r < 1500; ++r) sim.round(grad);
    INFO("consensus " << sim.consensus_distance() << ", error of node 0 " << error_of(models.data[0]));
    // heterogeneous local optima and a constant step: consensus O(η²), not 0 (measured 2e-4)
    REQUIRE(sim.consensus_distance() < 1e-3);
    for (const auto& x : models.data) REQUIRE(error_of(x) < 0.05);
    REQUIRE(error_of(models.data[0]) < start);
  }
  SECTION("D-PSGD, overlapped, random matchings") {
    Models models(kNodes, kDim, 3);
    decopt::Simulation<decopt::ScheduledDPSGD<decopt::ScheduledOverlappedStep>> sim(
        decopt::TopologySchedule::random_matchings(kNodes, 6, 11), models.spans(),
        {.options = decopt::dpsgd_options({.lr = 0.02}), .threads = 1});
    for (int r = 0; r < 3000; ++r) sim.round(grad);
    // constant-step D-PSGD stays O(η) from the optimum and from consensus
    for (const auto& x : models.data) REQUIRE(error_of(x) < 0.05);
    REQUIRE(sim.consensus_distance() < 1e-3);
  }
  SECTION("Exact gossip over one-peer exponential averages exactly in log2 n rounds") {
    Models models(kNodes, kDim, 3);
    for (int i = 0; i < kNodes; ++i)
      for (int k = 0; k < kDim; ++k) models.data[i][k] = static_cast<float>(i + k);  // power-of-two-friendly values
    decopt::Simulation<decopt::ScheduledDPSGD<>> sim(decopt::TopologySchedule::one_peer_exponential(kNodes),
                                                     models.spans(), {.options = decopt::dpsgd_options({}), .threads = 1});
    for (int r = 0; r < 3; ++r) sim.round([](int, std::span<const float>, std::span<float> g) { std::fill(g.begin(), g.end(), 0.0f); });
    for (int i = 0; i < kNodes; ++i)
      for (int k = 0; k < kDim; ++k) REQUIRE(models.data[i][k] == static_cast<float>(3.5 + k));
  }
}

TEST_CASE("Scheduled steps give the same bits on SimulatedNetwork and ThreadNetwork", "[optimizer][schedule]") {
  const auto problem = decopt::testing::make_problem(SplitProblem::Loss::LeastSquares, kNodes, 20, kDim, 6);
  const auto schedule = decopt::TopologySchedule::random_matchings(kNodes, 5, 21);
  const decopt::Options options{.lr = 0.05, .consensus_step = 0.5, .seed = 4};
  constexpr int kRounds = 25;
  Models sim_models(kNodes, kDim, 4), thread_models(kNodes, kDim, 4);
  decopt::Simulation<decopt::ScheduledMalcomPSGD<>> sim(schedule, sim_models.spans(), {.options = options, .threads = 3});
  for (int r = 0; r < kRounds; ++r) sim.round(gradient_of(problem));

  decopt::ThreadNetwork network(schedule.transport_graph());
  std::vector<decopt::ScheduledMalcomPSGD<>> nodes;
  for (int i = 0; i < kNodes; ++i)
    nodes.emplace_back(std::span<float>(thread_models.data[i]), schedule, network.endpoint(i), options);
  std::vector<std::thread> threads;
  std::vector<std::string> errors(kNodes);
  for (int i = 0; i < kNodes; ++i)
    threads.emplace_back([&, i] {
      try {
        for (int r = 0; r < kRounds; ++r) nodes[i].step([&](auto x, auto g) { problem.gradient_into(i, x, g); });
      } catch (const std::exception& e) {
        errors[i] = e.what();
        network.abort(e.what());
      }
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kNodes; ++i) {
    INFO("node " << i << ": " << errors[i]);
    REQUIRE(errors[i].empty());
    REQUIRE(same_bits(sim_models.data[i], thread_models.data[i]));
    REQUIRE(nodes[i].totals().bytes_sent == sim.node(i).totals().bytes_sent);
  }
}

TEST_CASE("Scheduled checkpoints resume bit for bit and refuse another schedule", "[optimizer][schedule]") {
  const auto problem = decopt::testing::make_problem(SplitProblem::Loss::LeastSquares, kNodes, 20, kDim, 7);
  const auto schedule = decopt::TopologySchedule::one_peer_exponential(kNodes);
  const decopt::Options options{.lr = 0.05, .consensus_step = 0.5, .seed = 5};
  using Opt = decopt::ScheduledChocoSGD<>;
  auto grad = gradient_of(problem);
  Models straight(kNodes, kDim, 5), resumed(kNodes, kDim, 5);
  decopt::Simulation<Opt> a(schedule, straight.spans(), {.options = options, .threads = 1});
  for (int r = 0; r < 5; ++r) a.round(grad);  // stops mid-period (period 3)
  std::vector<std::vector<std::byte>> saved(kNodes);
  for (int i = 0; i < kNodes; ++i) a.node(i).save_state(saved[i]);
  for (int r = 0; r < 7; ++r) a.round(grad);

  decopt::Simulation<Opt> b(schedule, resumed.spans(), {.options = options, .threads = 2});
  for (int i = 0; i < kNodes; ++i) b.node(i).load_state(saved[i]);
  for (int r = 0; r < 7; ++r) b.round(grad);
  for (int i = 0; i < kNodes; ++i) REQUIRE(same_bits(straight.data[i], resumed.data[i]));

  Models other(kNodes, kDim, 5);
  decopt::Simulation<Opt> c(decopt::TopologySchedule::random_matchings(kNodes, 3, 1), other.spans(),
                            {.options = options, .threads = 1});
  const std::vector<float> before = other.data[0];
  REQUIRE_THROWS_AS(c.node(0).load_state(saved[0]), decopt::ConfigError);
  REQUIRE_THROWS_WITH(c.node(0).load_state(saved[0]), Catch::Matchers::Contains("random_matchings(8, period=3, seed=1)") &&
                             Catch::Matchers::Contains("fingerprint"));
  REQUIRE(same_bits(before, other.data[0]));  // refused: nothing changed
  // a static topology's optimizer refuses it too
  Models plain(kNodes, kDim, 5);
  decopt::Simulation<decopt::ChocoSGD<>> d(decopt::Topology::exponential(kNodes), plain.spans(),
                                           {.options = options, .threads = 1});
  REQUIRE_THROWS_AS(d.node(0).load_state(saved[0]), decopt::ConfigError);
}

TEST_CASE("A time-varying schedule over a broadcast-only transport is a ConfigError", "[optimizer][schedule]") {
  struct BroadcastOnly {
    decopt::SimulatedNetwork::Endpoint* inner;
    int rank() const { return inner->rank(); }
    int degree() const { return inner->degree(); }
    void post(long r, std::span<const std::byte> m) { inner->post(r, m); }
    void collect(long r, std::vector<std::span<const std::byte>>& in) { inner->collect(r, in); }
  };
  const auto schedule = decopt::TopologySchedule::one_peer_exponential(4);
  decopt::SimulatedNetwork network(schedule.transport_graph());
  BroadcastOnly transport{&network.endpoint(0)};
  std::vector<float> x(4, 1.0f);
  REQUIRE_THROWS_AS((decopt::ScheduledChocoSGD<>(std::span<float>(x), schedule, transport)), decopt::ConfigError);
  REQUIRE_THROWS_WITH((decopt::ScheduledChocoSGD<>(std::span<float>(x), schedule, transport)),
                      Catch::Matchers::Contains("per peer"));
}
