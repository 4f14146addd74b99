// The optimizer's Local policy (step() with SGD, heavy ball, Adam...), its ParameterLayout
// constructor (prox per segment, own_scale, layout in checkpoints), the named configurations'
// training defaults and Simulation's network-wide learning rate.
#include <catch2/catch.hpp>
#include <decopt/decopt.hpp>

#include <vector>

#include "optimizer/problems.hpp"

namespace {

using decopt::Options;
using decopt::Topology;
using decopt::testing::SplitProblem;

constexpr int kNodes = 4;
constexpr int kDim = 24;

SplitProblem problem() { return decopt::testing::make_problem(SplitProblem::Loss::LeastSquares, kNodes, 20, kDim, 5); }

/// A layout of kDim floats with alignment 1: a 4×4 weight (prox), a bias of 4 (no prox) and a 4×1 head (prox).
decopt::ParameterLayout small_layout(bool own_scale = false) {
  decopt::ParameterLayout layout(1);
  layout.add("fc.weight", {4, 4}, {.prox = true, .own_scale = own_scale});
  layout.add("fc.bias", {4}, {.prox = false});
  layout.add("head.weight", {4, 1}, {.prox = true});
  return layout;
}

template <class Opt>
struct Network {
  std::vector<std::vector<float>> models;
  std::vector<std::span<float>> buffers;
  decopt::Simulation<Opt> sim;
  Network(const Topology& topology, typename decopt::Simulation<Opt>::Setup setup)
      : models(static_cast<std::size_t>(topology.size()), std::vector<float>(kDim, 0.25f)),
        buffers(models.begin(), models.end()), sim(topology, buffers, std::move(setup)) {}
  void rounds(const SplitProblem& p, int n) {
    for (int r = 0; r < n; ++r)
      sim.round([&](int i, std::span<const float> x, std::span<float> g) { p.gradient_into(i, x, g); });
  }
};

}  // namespace

TEST_CASE("step() with a Local policy takes exactly that policy's step (one node: no mixing)", "[optimizer][local]") {
  const auto p = problem();
  auto check = [&](auto local) {
    using Local = decltype(local);
    using Opt = decopt::DecentralizedOptimizer<decopt::ExactGossipCompressor, decopt::NoProx, decopt::SyncStep, Local>;
    std::vector<float> x(kDim, 0.25f), expected(kDim, 0.25f), g(kDim);
    decopt::SimulatedNetwork network(Topology::complete(1));
    Opt node(std::span<float>(x), Topology::complete(1), network.endpoint(0), Options{.lr = 0.02}, {}, {}, local);
    auto state = local.state(kDim);
    for (int r = 0; r < 5; ++r) {
      node.step([&](std::span<const float> at, std::span<float> out) { p.gradient_into(0, at, out); });
      p.gradient_into(0, expected, g);
      state.apply(expected, g, 0.02);
    }
    CHECK(x == expected);
  };
  check(decopt::SGD{.weight_decay = 1e-3});
  check(decopt::HeavyBall{.momentum = 0.8});
  check(decopt::Nesterov{.momentum = 0.7});
  check(decopt::Adam{});
  check(decopt::AdamW{.weight_decay = 0.05});
}

TEST_CASE("Options::momentum is heavy-ball with the default SGD and refused with another Local", "[optimizer][local]") {
  const auto p = problem();
  using Default = decopt::ChocoSGD<>;
  using Heavy = decopt::ChocoSGD<decopt::SyncStep, decopt::HeavyBall>;
  Network<Default> with_options(Topology::ring(kNodes), {.options = {.lr = 0.05, .momentum = 0.6, .seed = 3}});
  Network<Heavy> with_policy(Topology::ring(kNodes), {.options = {.lr = 0.05, .seed = 3}, .local = {.momentum = 0.6}});
  with_options.rounds(p, 8);
  with_policy.rounds(p, 8);
  CHECK(with_options.models == with_policy.models);

  std::vector<float> x(kDim, 0.0f);
  decopt::SimulatedNetwork network(Topology::complete(1));
  using Adam = decopt::ChocoSGD<decopt::SyncStep, decopt::Adam>;
  CHECK_THROWS_WITH(Adam(std::span<float>(x), Topology::complete(1), network.endpoint(0), Options{.momentum = 0.9}),
                    Catch::Contains("momentum") && Catch::Contains("'adam'"));
}

TEST_CASE("A run with Adam stopped and resumed from its checkpoint ends with the same bits", "[optimizer][local][checkpoint]") {
  const auto p = problem();
  using Opt = decopt::MalcomPSGD<decopt::SyncStep, decopt::Adam>;
  const typename decopt::Simulation<Opt>::Setup setup{.options = {.lr = 0.01, .consensus_step = 0.5, .seed = 4},
                                                       .local = {.beta1 = 0.8}};
  Network<Opt> straight(Topology::ring(kNodes), setup);
  straight.rounds(p, 16);
  Network<Opt> first(Topology::ring(kNodes), setup);
  first.rounds(p, 8);
  Network<Opt> resumed(Topology::ring(kNodes), setup);
  for (int i = 0; i < kNodes; ++i) {
    std::vector<std::byte> state;
    first.sim.node(i).save_state(state);
    resumed.sim.node(i).load_state(state);
  }
  CHECK(resumed.sim.node(2).local_update().steps() == 8);
  resumed.rounds(p, 8);
  CHECK(resumed.models == straight.models);

  // The record names its local update: a node with another one refuses it, changing nothing.
  std::vector<std::byte> adam_state;
  first.sim.node(1).save_state(adam_state);
  Network<decopt::MalcomPSGD<>> sgd(Topology::ring(kNodes), {.options = {.lr = 0.01, .consensus_step = 0.5, .seed = 4}});
  CHECK_THROWS_WITH(sgd.sim.node(1).load_state(adam_state), Catch::Contains("'adam'") && Catch::Contains("'sgd'"));
  CHECK(sgd.sim.node(1).round() == 0);
}

TEST_CASE("Over a ParameterLayout the prox skips the segments without prox", "[optimizer][layout]") {
  const auto layout = small_layout();
  using Opt = decopt::DecentralizedOptimizer<decopt::ExactGossipCompressor, decopt::L1Prox>;
  std::vector<float> x(kDim), plain(kDim);
  for (int k = 0; k < kDim; ++k) x[static_cast<std::size_t>(k)] = 0.1f * static_cast<float>(k % 7) - 0.3f;
  plain = x;
  const auto before = x;
  decopt::SimulatedNetwork net_a(Topology::complete(1)), net_b(Topology::complete(1));
  const Options options{.lr = 1.0};
  Opt with_layout(std::span<float>(x), layout, Topology::complete(1), net_a.endpoint(0), options, {}, decopt::L1Prox{0.05});
  Opt without(std::span<float>(plain), Topology::complete(1), net_b.endpoint(0), options, {}, decopt::L1Prox{0.05});
  auto zero_gradient = [](std::span<const float>, std::span<float> g) { std::fill(g.begin(), g.end(), 0.0f); };
  with_layout.step(zero_gradient);
  without.step(zero_gradient);
  const auto& bias = layout.segment("fc.bias");
  for (std::size_t k = 0; k < x.size(); ++k) {
    const bool in_bias = k >= bias.offset && k < bias.end();
    INFO("coordinate " << k);
    CHECK(x[k] == (in_bias ? before[k] : plain[k]));  // soft-thresholded everywhere but the bias
  }
  CHECK(with_layout.regularizer_value() < without.regularizer_value());
  REQUIRE(with_layout.layout() != nullptr);
  CHECK(*with_layout.layout() == layout);

  std::vector<float> short_buffer(kDim - 1);
  CHECK_THROWS_WITH(Opt(std::span<float>(short_buffer), layout, Topology::complete(1), net_a.endpoint(0)),
                    Catch::Contains("23 floats") && Catch::Contains("layout has 24"));
}

TEST_CASE("Checkpoints record the layout and refuse another one", "[optimizer][layout][checkpoint]") {
  const auto p = problem();
  using Opt = decopt::MalcomPSGD<>;
  Network<Opt> a(Topology::ring(kNodes), {.options = {.lr = 0.05, .seed = 2}, .layout = small_layout()});
  a.rounds(p, 3);
  std::vector<std::byte> state;
  a.sim.node(0).save_state(state);

  Network<Opt> same(Topology::ring(kNodes), {.options = {.lr = 0.05, .seed = 2}, .layout = small_layout()});
  CHECK(same.sim.node(0).load_state(state) == state.size());
  CHECK(same.sim.node(0).round() == 3);

  auto other = decopt::ParameterLayout(1);
  other.add("fc.weight", {4, 4}).add("fc.bias", {4}).add("head.weight", {4, 1});  // the bias gets the prox here
  Network<Opt> different(Topology::ring(kNodes), {.options = {.lr = 0.05, .seed = 2}, .layout = other});
  CHECK_THROWS_WITH(different.sim.node(0).load_state(state), Catch::Contains("fc.bias"));
  Network<Opt> none(Topology::ring(kNodes), {.options = {.lr = 0.05, .seed = 2}});
  CHECK_THROWS_WITH(none.sim.node(0).load_state(state), Catch::Contains("this optimizer has none"));
  CHECK(none.sim.node(0).round() == 0);
}

TEST_CASE("own_scale asked of a compressor with one scale per message is a ConfigError naming the segment",
          "[optimizer][layout]") {
  using Opt = decopt::DPSGD<>;  // the identity compressor has no scale at all
  std::vector<float> x(kDim);
  decopt::SimulatedNetwork network(Topology::complete(1));
  CHECK_THROWS_WITH(Opt(std::span<float>(x), small_layout(true), Topology::complete(1), network.endpoint(0)),
                    Catch::Contains("fc.weight") && Catch::Contains("own_scale"));
}

TEST_CASE("Named configurations carry defaults that train; D-PSGD refuses a consensus step other than 1",
          "[optimizer][configurations]") {
  const decopt::MalcomPSGD<>::Compressor malcom{};
  CHECK(malcom.inner().quantizer().levels == 256);
  CHECK(malcom.inner().quantizer().norm == decopt::Norm::L2);
  CHECK(decopt::MalcomPSGD<>::Prox{}.lambda == 1e-4);

  // Default-constructed Malcom-PSGD (only lr and the seed given) brings the least-squares problem
  // to near-stationarity, as D-PSGD does.
  const auto p = problem();
  Network<decopt::MalcomPSGD<>> m(Topology::ring(kNodes), {.options = {.lr = 0.02, .seed = 1}});
  Network<decopt::DPSGD<>> d(Topology::ring(kNodes), {.options = {.lr = 0.02, .seed = 1}});
  m.rounds(p, 300);
  d.rounds(p, 300);
  auto gradient_norm = [&](const std::vector<float>& model) {
    return p.full_gradient(Eigen::VectorXf::Map(model.data(), kDim).cast<double>()).norm();
  };
  const double start = gradient_norm(std::vector<float>(kDim, 0.25f));
  INFO("|grad F| at the start " << start << ", Malcom-PSGD " << gradient_norm(m.models[0]) << ", D-PSGD "
                                << gradient_norm(d.models[0]));
  CHECK(gradient_norm(m.models[0]) < 0.05 * start);
  CHECK(gradient_norm(m.models[0]) < 2 * gradient_norm(d.models[0]) + 0.01 * start);

  std::vector<float> x(kDim);
  decopt::SimulatedNetwork network(Topology::complete(1));
  CHECK_THROWS_WITH(decopt::DPSGD<>(std::span<float>(x), Topology::complete(1), network.endpoint(0),
                                    Options{.consensus_step = 0.5}),
                    Catch::Contains("gamma") && Catch::Contains("D-PSGD"));
}

TEST_CASE("Simulation sets one learning rate or a schedule on every node", "[optimizer][schedule]") {
  const auto p = problem();
  using Opt = decopt::ChocoSGD<>;
  const decopt::schedule::LinearWarmup<decopt::schedule::Cosine> warm_cosine{.warmup_rounds = 3,
                                                                             .then = {.total_rounds = 20}};
  Network<Opt> scheduled(Topology::ring(kNodes), {.options = {.lr = 0.05, .seed = 6}});
  scheduled.sim.set_schedule(warm_cosine, 0.05);
  Network<Opt> by_hand(Topology::ring(kNodes), {.options = {.lr = 0.05, .seed = 6}});
  for (int r = 0; r < 12; ++r) {
    scheduled.rounds(p, 1);
    for (int i = 0; i < kNodes; ++i) by_hand.sim.node(i).set_learning_rate(warm_cosine.lr(r, 0.05));
    by_hand.rounds(p, 1);
    CHECK(scheduled.sim.node(3).options().lr == warm_cosine.lr(r, 0.05));
  }
  CHECK(scheduled.models == by_hand.models);

  CHECK_THROWS_WITH(scheduled.sim.set_learning_rate(-1.0), Catch::Contains("lr"));
  CHECK(scheduled.sim.node(0).options().lr == warm_cosine.lr(11, 0.05));  // nothing changed

  // A schedule that reaches lr = 0 (cosine past its end with min_lr = 0) names the round.
  Network<Opt> past_end(Topology::ring(kNodes), {.options = {.lr = 0.05}});
  past_end.sim.set_schedule(decopt::schedule::Cosine{.total_rounds = 2}, 0.05);
  past_end.rounds(p, 2);
  CHECK_THROWS_WITH(past_end.rounds(p, 1), Catch::Contains("round 2") && Catch::Contains("lr = 0"));
}

TEST_CASE("own_scale segments get a quantizer norm of their own, through the whole run", "[optimizer][layout]") {
  const auto p = problem();
  using Opt = decopt::MalcomPSGD<>;
  const auto layout = small_layout(/*own_scale=*/true);
  Network<Opt> layerwise(Topology::ring(kNodes), {.options = {.lr = 0.05, .seed = 8}, .layout = layout});
  Network<Opt> global(Topology::ring(kNodes), {.options = {.lr = 0.05, .seed = 8}, .layout = small_layout(false)});
  const auto& blocks = layerwise.sim.node(0).compressor().inner().quantizer().scale_blocks;
  REQUIRE(blocks.size() == 1);
  CHECK(blocks[0].offset == layout.segment("fc.weight").offset);
  CHECK(blocks[0].size == 16);
  CHECK(global.sim.node(0).compressor().inner().quantizer().scale_blocks.empty());
  layerwise.rounds(p, 6);
  global.rounds(p, 6);
  CHECK(layerwise.models != global.models);  // another quantization...
  for (int i = 0; i < kNodes; ++i) {         // ...that every node decoded: x̂ is what s was built from
    std::vector<std::byte> state;
    layerwise.sim.node(i).save_state(state);
    Network<Opt> again(Topology::ring(kNodes), {.options = {.lr = 0.05, .seed = 8}, .layout = layout});
    CHECK(again.sim.node(i).load_state(state) == state.size());
  }
}
