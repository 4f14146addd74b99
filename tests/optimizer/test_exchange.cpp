// exchange(): the communication-only round for users whose own optimizer updates x in place.
#include <catch2/catch.hpp>
#include <decopt/decopt.hpp>

#include <cstring>
#include <vector>

#include "optimizer/problems.hpp"

namespace {

using decopt::testing::SplitProblem;
using Malcom = decopt::MalcomPSGD<>;

constexpr int kNodes = 4;
constexpr int kDim = 24;
constexpr int kRounds = 12;

Malcom::Compressor malcom_compressor() { return Malcom::Compressor({}, decopt::DitheredQuantizer{16, decopt::Norm::L2}, {}); }

/// The models after kRounds of step() (decopt's own SGD step) on a ring.
std::vector<std::vector<float>> run_with_step(const SplitProblem& problem, decopt::Options options) {
  std::vector<std::vector<float>> models(kNodes, std::vector<float>(kDim, 0.25f));
  std::vector<std::span<float>> buffers(models.begin(), models.end());
  decopt::Simulation<Malcom> sim(decopt::Topology::ring(kNodes), buffers, options, malcom_compressor(), decopt::L1Prox{1e-3});
  for (int r = 0; r < kRounds; ++r)
    sim.round([&](int i, std::span<const float> x, std::span<float> g) { problem.gradient_into(i, x, g); });
  return models;
}

}  // namespace

TEST_CASE("exchange() after the user's own SGD step equals step() bit for bit", "[optimizer][exchange]") {
  const auto problem = decopt::testing::make_problem(SplitProblem::Loss::LeastSquares, kNodes, 20, kDim, 5);
  decopt::Options options{.lr = 0.05, .consensus_step = 0.5, .seed = 9, .resync_every = 5};
  const auto expected = run_with_step(problem, options);

  options.prox_step = options.lr;  // the prox step step() takes implicitly
  std::vector<std::vector<float>> models(kNodes, std::vector<float>(kDim, 0.25f));
  decopt::SimulatedNetwork network(decopt::Topology::ring(kNodes));
  std::vector<Malcom> nodes;
  for (int i = 0; i < kNodes; ++i)
    nodes.emplace_back(std::span<float>(models[i]), decopt::Topology::ring(kNodes), network.endpoint(i), options,
                       malcom_compressor(), decopt::L1Prox{1e-3});
  std::vector<float> g(kDim);
  const float lr = static_cast<float>(options.lr);
  for (int r = 0; r < kRounds; ++r) {
    for (int i = 0; i < kNodes; ++i) {
      problem.gradient_into(i, models[i], g);
      for (int k = 0; k < kDim; ++k) models[i][k] -= lr * g[k];  // the user's optimizer
      nodes[i].post_exchange();
    }
    for (auto& node : nodes) node.finish_exchange();
    if (nodes[0].resync_due()) {
      for (auto& node : nodes) node.begin_resync();
      for (auto& node : nodes) node.finish_resync();
    }
  }
  for (int i = 0; i < kNodes; ++i) {
    CHECK(nodes[i].round() == kRounds);
    CHECK(std::memcmp(models[i].data(), expected[i].data(), kDim * sizeof(float)) == 0);
  }
}

TEST_CASE("exchange() with a prox needs an explicit prox_step, never lr", "[optimizer][exchange]") {
  std::vector<float> x(8, 1.0f);
  decopt::SimulatedNetwork network(decopt::Topology::complete(1));
  Malcom node(std::span<float>(x), decopt::Topology::complete(1), network.endpoint(0), decopt::Options{.lr = 0.1},
              malcom_compressor(), decopt::L1Prox{0.5});
  CHECK_THROWS_WITH(node.exchange(), Catch::Contains("Options::prox_step"));
  CHECK(node.round() == 0);
  CHECK(!node.inconsistent());

  decopt::Options bad{.lr = 0.1};
  bad.prox_step = std::nan("");
  CHECK_THROWS_AS(bad.validate(), decopt::ConfigError);
  bad.prox_step = -1.0;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("prox_step"));
}

TEST_CASE("exchange() on one node applies the prox with prox_step and counts rounds like step()", "[optimizer][exchange]") {
  std::vector<float> x{1.0f, -0.25f, 0.05f, 0.0f};
  decopt::SimulatedNetwork network(decopt::Topology::complete(1));
  decopt::Options options{.lr = 0.1};
  options.prox_step = 0.5;
  decopt::DPSGD<> node(std::span<float>(x), decopt::Topology::complete(1), network.endpoint(0), options);
  (void)node.exchange();
  CHECK(node.round() == 1);
  CHECK(node.totals().rounds == 1);

  // ℓ1 with λ = 0.2 and prox step 0.5 thresholds at 0.1 (lr = 0.1 would threshold at 0.02).
  std::vector<float> y{1.0f, -0.25f, 0.05f, 0.0f};
  decopt::DecentralizedOptimizer<decopt::Compressor<decopt::Dense, decopt::Identity, decopt::RawCoder>, decopt::L1Prox>
      prox_node(std::span<float>(y), decopt::Topology::complete(1), network.endpoint(0), options, {}, decopt::L1Prox{0.2});
  (void)prox_node.exchange();
  CHECK(y[0] == Approx(0.9f));
  CHECK(y[1] == Approx(-0.15f));
  CHECK(y[2] == 0.0f);
  CHECK(y[3] == 0.0f);
}

TEST_CASE("post_exchange() leaves room for the user's local steps (the overlapped form)", "[optimizer][exchange]") {
  // Two nodes, identity compressor, W = 11ᵀ/2, γ = 1: after the round x = mean of the posted
  // models + (the local change made between post_exchange and finish_exchange).
  std::vector<float> a{1.0f, 2.0f}, b{3.0f, 6.0f};
  decopt::SimulatedNetwork network(decopt::Topology::complete(2));
  decopt::Options options{.lr = 0.1};
  decopt::DPSGD<decopt::OverlappedStep> na(std::span<float>(a), decopt::Topology::complete(2), network.endpoint(0), options);
  decopt::DPSGD<decopt::OverlappedStep> nb(std::span<float>(b), decopt::Topology::complete(2), network.endpoint(1), options);
  na.post_exchange();
  nb.post_exchange();
  a[0] -= 0.5f;  // the user's local step while the exchange is in flight
  (void)na.finish_exchange();
  (void)nb.finish_exchange();
  CHECK(a[0] == Approx(2.0f - 0.5f));
  CHECK(a[1] == Approx(4.0f));
  CHECK(b[0] == Approx(2.0f));
  CHECK(b[1] == Approx(4.0f));
}
