// DecentralizedOptimizer on the simulated network: convergence to the centralized optimum,
// equality with exact D-PSGD and CoCoD-SGD, the incremental invariant s = Σ_j w_ij x̂_j, sparsity,
// in-place updates of user buffers, and configuration errors.
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>

#include <Eigen/Dense>
#include <cmath>
#include <numeric>
#include <vector>

#include "optimizer/problems.hpp"

using namespace decopt;
using decopt::testing::SplitProblem;

namespace {

using MalcomLike = DecentralizedOptimizer<MalcomCompressor, L1Prox, SyncStep>;  // over the support: zeros are exact
using Exact = DecentralizedOptimizer<Compressor<Dense, Identity, RawCoder>, NoProx, SyncStep>;
using ExactOverlapped = DecentralizedOptimizer<Compressor<Dense, Identity, RawCoder>, NoProx, OverlappedStep>;
using TopKChoco = DecentralizedOptimizer<Compressor<TopK, DitheredQuantizer, EliasCoder>, NoProx, SyncStep>;

struct Models {
  std::vector<std::vector<float>> storage;
  std::vector<std::span<float>> spans;
  Models(int n, int d, float init = 0.0f) : storage(static_cast<std::size_t>(n), std::vector<float>(static_cast<std::size_t>(d), init)) {
    for (auto& s : storage) spans.emplace_back(s);
  }
};

double max_relative_error(std::span<const std::span<float>> models, const Eigen::VectorXd& reference) {
  double worst = 0;
  for (auto m : models) {
    double err = 0;
    for (int k = 0; k < reference.size(); ++k) err += std::pow(m[static_cast<std::size_t>(k)] - reference[k], 2);
    worst = std::max(worst, std::sqrt(err) / reference.norm());
  }
  return worst;
}

/// Runs `rounds` rounds with η_t = max(η0 / (1 + t/decay), η0/floor_ratio).
template <class Opt>
void train(Simulation<Opt>& sim, const SplitProblem& p, double lr0, int rounds, double decay, double floor_ratio = 1e9) {
  for (int t = 0; t < rounds; ++t) {
    const double lr = std::max(lr0 / (1.0 + t / decay), lr0 / floor_ratio);
    for (int i = 0; i < sim.size(); ++i) sim.node(i).set_learning_rate(lr);
    sim.round([&p](int i, std::span<const float> x, std::span<float> g) { p.gradient_into(i, x, g); });
  }
}

/// Runs `rounds` rounds of `sim` and checks every node against exact D-PSGD computed in double:
/// x_i ← Σ_j w_ij (x_j − η ∇f_j(x_j)) = W(x − η g) (adapt then combine), from x⁰ = `start`.
template <class Opt>
void check_equals_exact_dpsgd(Simulation<Opt>& sim, Models& models, const SplitProblem& problem, double lr,
                              double start, int rounds) {
  const int n = sim.size();
  const int d = problem.d;
  const Eigen::MatrixXd W = sim.topology().matrix();
  std::vector<Eigen::VectorXd> ref(n, Eigen::VectorXd::Constant(d, start));
  for (int t = 0; t < rounds; ++t) {
    sim.round([&](int i, std::span<const float> x, std::span<float> g) { problem.gradient_into(i, x, g); });
    std::vector<Eigen::VectorXd> half(n);
    for (int i = 0; i < n; ++i) half[i] = ref[i] - lr * problem.gradient(i, ref[i]);
    for (int i = 0; i < n; ++i) {
      ref[i].setZero();
      for (int j = 0; j < n; ++j) ref[i] += W(i, j) * half[j];
    }
  }
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < d; ++k) CHECK(models.storage[i][k] == Approx(ref[i][k]).margin(2e-5));
}

}  // namespace

TEST_CASE("Malcom-PSGD reaches the centralized l1-regularized optimum on ring and torus", "[optimizer][convergence]") {
  const bool logistic = GENERATE(false, true);
  const bool torus = GENERATE(false, true);
  const int n = torus ? 16 : 8;
  const int d = 30;
  const auto loss = logistic ? SplitProblem::Loss::Logistic : SplitProblem::Loss::LeastSquares;
  const auto problem = decopt::testing::make_problem(loss, n, logistic ? 120 : 60, d, 11);
  const double lambda = 0.05;
  const Eigen::VectorXd optimum = decopt::testing::fista(problem, lambda);
  const Topology topology = torus ? Topology::torus(4, 4) : Topology::ring(n);
  CAPTURE(logistic, topology.name());

  Models models(n, d);
  Options options;
  options.consensus_step = logistic ? 1.0 : 0.5;
  options.seed = 3;
  Simulation<MalcomLike> sim(topology, models.spans, options,
                             MalcomLike::Compressor(Dense{}, DitheredQuantizer{16, Norm::L2}, VectorSourceCoder{}),
                             L1Prox{lambda});
  // Diminishing steps η_t = η0/(1 + t/T) down to a floor: decentralized SGD with a constant step
  // stops O(η) away from x*, and the floor lets the compressed residuals (and so the quantization
  // noise) die out at the fixed point, where the soft threshold leaves exact zeros.
  if (logistic) train(sim, problem, 1.0 / problem.lipschitz(), 8000, 50.0, 120.0);
  else train(sim, problem, 0.5 / problem.lipschitz(), 4000, 200.0, 15.0);

  // Every node is within 1% of the centralized optimum and the nodes agree.
  CHECK(max_relative_error(models.spans, optimum) < 1e-2);
  CHECK(sim.consensus_distance() < 1e-4 * optimum.squaredNorm());

  // Sparsity. At the fixed point of the round (x̂ = z, the proximal point every node sends; x_i =
  // Σ_j (W_γ)_ij z_j after mixing, W_γ = (1 − γ)I + γW) node i sends z_ik = 0 exactly when
  // |x_ik − η ∇_k f_i| ≤ ηλ; where every node sends 0, x_ik = 0 too (SupportCoded makes s exactly 0
  // there), so coordinate k stays exactly zero on every node when |∇_k f_i(x*)| ≤ λ for every i.
  // Support recovery is checked on the coordinates where that holds with a 20% margin (they must be
  // a real share of the problem), and on every clearly active coordinate.
  Eigen::MatrixXd local(d, n);
  for (int j = 0; j < n; ++j) local.col(j) = problem.gradient(j, optimum);
  int robustly_inactive = 0, active = 0;
  for (int k = 0; k < d; ++k) {
    const bool inactive = optimum[k] == 0.0 && local.row(k).cwiseAbs().maxCoeff() <= 0.8 * lambda;
    const bool clearly_active = std::abs(optimum[k]) > 1e-2 * optimum.cwiseAbs().maxCoeff();
    robustly_inactive += inactive ? 1 : 0;
    active += clearly_active ? 1 : 0;
    for (const auto& m : models.storage) {
      CAPTURE(k, optimum[k], m[static_cast<std::size_t>(k)]);
      if (inactive) CHECK(m[static_cast<std::size_t>(k)] == 0.0f);
      if (clearly_active) CHECK(m[static_cast<std::size_t>(k)] != 0.0f);
    }
  }
  // The models sent really are sparse: a quarter of the coordinates is off every node's announced
  // support (SupportCoded: sent as exact zeros, for no bits), and there every model is exactly 0.
  int off_every_support = 0;
  for (int k = 0; k < d; ++k) {
    bool off = true;
    for (int i = 0; i < n; ++i) off = off && !sim.node(i).compressor().support().test(static_cast<std::size_t>(k));
    off_every_support += off;
    for (const auto& m : models.storage)
      if (off) CHECK(m[static_cast<std::size_t>(k)] == 0.0f);
  }
  // (Each node's prox acts on its own gradient step, before mixing, as in Malcom-PSGD, so a
  // coordinate is sent as zero where every node's local gradient is within λ, not where their
  // average is: heterogeneous data gives sparse sends on fewer coordinates than x* has zeros.)
  CHECK(off_every_support >= robustly_inactive);
  CHECK(active >= d / 5);
  // Compression really compresses: fewer bytes than float32 per coordinate per neighbour.
  const auto& totals = sim.node(0).totals();
  CHECK(totals.bytes_sent < static_cast<std::uint64_t>(totals.rounds) * 4u * d * 2u);
}

TEST_CASE("Identity compressor with gamma = 1 is exact D-PSGD (adapt then combine)", "[optimizer][dpsgd]") {
  const int n = 6, d = 12;
  const auto problem = decopt::testing::make_problem(SplitProblem::Loss::LeastSquares, n, 20, d, 5);
  const Topology topology = Topology::ring(n);
  Models models(n, d, 0.25f);
  Options options;
  options.lr = 0.05;
  options.consensus_step = 1.0;
  Simulation<Exact> sim(topology, models.spans, options);
  check_equals_exact_dpsgd(sim, models, problem, options.lr, 0.25, 50);
}

TEST_CASE("Overlapped step with identity, complete graph and gamma = 1 equals CoCoD-SGD", "[optimizer][cocod]") {
  const int n = 4, d = 10;
  const int tau = GENERATE(1, 3);
  const auto problem = decopt::testing::make_problem(SplitProblem::Loss::LeastSquares, n, 15, d, 8);
  Models models(n, d);
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < d; ++k) models.storage[i][k] = 0.1f * static_cast<float>(i + k);
  Options options;
  options.lr = 0.03;
  options.local_steps = tau;
  Simulation<ExactOverlapped> sim(Topology::complete(n), models.spans, options);
  std::vector<Eigen::VectorXd> ref(n, Eigen::VectorXd(d));
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < d; ++k) ref[i][k] = models.storage[i][k];
  for (int t = 0; t < 30; ++t) {
    sim.round([&](int i, std::span<const float> x, std::span<float> g) { problem.gradient_into(i, x, g); });
    // CoCoD-SGD: x_{t+1} = mean_j x_t^j + (y_i − x_t^i), y_i = τ local steps from x_t^i.
    Eigen::VectorXd mean = Eigen::VectorXd::Zero(d);
    for (int j = 0; j < n; ++j) mean += ref[j] / n;
    for (int i = 0; i < n; ++i) {
      Eigen::VectorXd y = ref[i];
      for (int s = 0; s < tau; ++s) y -= options.lr * problem.gradient(i, y);
      ref[i] = mean + (y - ref[i]);
    }
  }
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < d; ++k) CHECK(models.storage[i][k] == Approx(ref[i][k]).margin(2e-5));
}

TEST_CASE("The incremental neighbour sum s equals sum_j w_ij xhat_j after many compressed rounds", "[optimizer][invariant]") {
  const int n = 9, d = 200;
  const auto problem = decopt::testing::make_problem(SplitProblem::Loss::LeastSquares, n, 40, d, 21);
  const Topology topology = Topology::torus(3, 3);
  Models models(n, d);
  Options options;
  options.lr = 0.02;
  options.consensus_step = 0.3;
  options.momentum = 0.5;
  Simulation<TopKChoco> sim(topology, models.spans, options,
                            TopKChoco::Compressor(TopK{0.1}, DitheredQuantizer{4, Norm::Linf}, EliasCoder{}));
  for (int t = 0; t < 500; ++t)
    sim.round([&](int i, std::span<const float> x, std::span<float> g) { problem.gradient_into(i, x, g); });
  double worst = 0, scale = 0;
  for (int i = 0; i < n; ++i) {
    std::vector<double> fresh(d, 0.0);
    const auto& node = sim.node(i);
    for (int k = 0; k < d; ++k) fresh[k] = node.self_weight() * sim.node(i).public_copy()[k];
    for (const Edge& e : node.neighbors())
      for (int k = 0; k < d; ++k) fresh[k] += e.weight * sim.node(e.node).public_copy()[k];
    for (int k = 0; k < d; ++k) {
      worst = std::max(worst, std::abs(fresh[k] - node.neighbor_sum()[k]));
      scale = std::max(scale, std::abs(fresh[k]));
    }
  }
  CAPTURE(worst, scale);
  CHECK(scale > 0.1);            // the models moved
  CHECK(worst <= 1e-5 * scale);  // float drift after 500 rounds stays at rounding level
}

TEST_CASE("The optimizer updates Eigen buffers in place, never copying", "[optimizer][buffers]") {
  const int n = 3, d = 8;
  SimulatedNetwork network(Topology::ring(n));
  std::vector<Eigen::VectorXf> vectors(n, Eigen::VectorXf::Ones(d));
  Eigen::MatrixXf as_matrix = Eigen::MatrixXf::Ones(4, 2);  // a contiguous matrix works too
  std::vector<float> raw(d, 1.0f);
  Eigen::Map<Eigen::VectorXf> mapped(raw.data(), d);
  Options options;
  options.lr = 0.5;
  std::vector<Exact> nodes;
  nodes.emplace_back(vectors[0], network.topology(), network.endpoint(0), options);
  nodes.emplace_back(as_matrix, network.topology(), network.endpoint(1), options);
  nodes.emplace_back(mapped, network.topology(), network.endpoint(2), options);
  REQUIRE(nodes[0].parameters().data() == vectors[0].data());
  REQUIRE(nodes[1].parameters().data() == as_matrix.data());
  REQUIRE(nodes[2].parameters().data() == raw.data());
  auto grad = [](std::span<const float> x, std::span<float> g) {
    for (std::size_t k = 0; k < x.size(); ++k) g[k] = x[k];  // f = ‖x‖²/2
    return 0.0;
  };
  for (auto& node : nodes) node.begin_round(grad);
  for (auto& node : nodes) node.finish_round();
  CHECK(vectors[0][0] == Approx(0.5f));
  CHECK(as_matrix(3, 1) == Approx(0.5f));
  CHECK(raw[7] == Approx(0.5f));
  Eigen::MatrixXf big = Eigen::MatrixXf::Ones(4, 4);
  auto block = big.block(0, 0, 2, 2);  // not contiguous
  REQUIRE_THROWS_WITH(Exact(block, network.topology(), network.endpoint(0), options),
                      Catch::Contains("not contiguous"));
}

TEST_CASE("Bad options, sizes and driving order give clear errors", "[optimizer][errors]") {
  SimulatedNetwork network(Topology::ring(4));
  std::vector<float> x(5, 0.0f);
  std::vector<float> empty;
  auto make = [&](Options o) { return Exact(std::span<float>(x), network.topology(), network.endpoint(0), o); };
  Options o;
  o.lr = 0;
  REQUIRE_THROWS_WITH(make(o), Catch::Contains("lr"));
  o = {};
  o.lr = -1;
  REQUIRE_THROWS_AS(make(o), ConfigError);
  o = {};
  o.consensus_step = 0;
  REQUIRE_THROWS_WITH(make(o), Catch::Contains("consensus_step"));
  o.consensus_step = 1.5;
  REQUIRE_THROWS_WITH(make(o), Catch::Contains("consensus_step"));
  o = {};
  o.momentum = 1.0;
  REQUIRE_THROWS_WITH(make(o), Catch::Contains("momentum"));
  o = {};
  o.local_steps = 0;
  REQUIRE_THROWS_WITH(make(o), Catch::Contains("local_steps"));
  REQUIRE_THROWS_WITH(Exact(std::span<float>(empty), network.topology(), network.endpoint(0)), Catch::Contains("empty"));

  // Buffers of different sizes in one simulation.
  std::vector<float> a(5), b(6), c(5), d(5);
  REQUIRE_THROWS_WITH(Simulation<Exact>(Topology::ring(4), {a, b, c, d}), Catch::Contains("node 1"));
  REQUIRE_THROWS_WITH(Simulation<Exact>(Topology::ring(4), {a, c, d}), Catch::Contains("3 parameter buffers for 4 nodes"));

  // A topology that does not match the transport.
  SimulatedNetwork other(Topology::complete(4));
  REQUIRE_THROWS_WITH(Exact(std::span<float>(x), network.topology(), other.endpoint(0)), Catch::Contains("neighbours"));

  // Finishing a round before every neighbour began it.
  std::vector<std::vector<float>> models(4, std::vector<float>(5, 0.0f));
  std::vector<Exact> nodes;
  for (int i = 0; i < 4; ++i) nodes.emplace_back(std::span<float>(models[i]), network.topology(), network.endpoint(i));
  auto zero_grad = [](std::span<const float>, std::span<float> g) { std::fill(g.begin(), g.end(), 0.0f); };
  nodes[0].begin_round(zero_grad);
  REQUIRE_THROWS_WITH(nodes[0].finish_round(), Catch::Contains("has not posted"));
}

TEST_CASE("Options that would be 0, denormal or infinite as float32 are refused, naming them", "[optimizer][errors]") {
  // The optimizer computes in float: lr = 1e-46 passed the double checks and then made every
  // local step x -= 0 * g, silently.
  SimulatedNetwork network(Topology::ring(4));
  std::vector<float> x(5, 0.0f);
  auto make = [&](Options o) { return Exact(std::span<float>(x), network.topology(), network.endpoint(0), o); };
  struct Case {
    double Options::*field;
    double value;
    const char* name;
  };
  for (const Case& c : {Case{&Options::lr, 1e-46, "lr"}, Case{&Options::lr, 1e-40, "lr"}, Case{&Options::lr, 1e39, "lr"},
                        Case{&Options::consensus_step, 1e-46, "consensus_step"},
                        Case{&Options::consensus_step, 1e-39, "consensus_step"}, Case{&Options::momentum, 1e-46, "momentum"},
                        Case{&Options::momentum, 1.0 - 1e-9, "momentum"}}) {
    Options o;
    o.*c.field = c.value;
    CAPTURE(c.name, c.value);
    REQUIRE_THROWS_AS(make(o), ConfigError);
    REQUIRE_THROWS_WITH(make(o), Catch::Contains(c.name) && Catch::Contains("float"));
  }
  Options tiny;
  tiny.lr = 1e-46;
  REQUIRE_THROWS_WITH(make(tiny), Catch::Contains("lr = 1e-46"));  // the value as given, not "0.000000"
  // The extremes that float keeps are accepted.
  Options edge;
  edge.lr = 1.2e-38;
  edge.consensus_step = 1.2e-38;
  edge.momentum = 0.9999999;  // 0.99999988 as a float
  REQUIRE_NOTHROW(make(edge));
  edge.lr = 3.4e38;
  REQUIRE_NOTHROW(make(edge));
  // set_learning_rate (schedules) validates the same way and leaves the lr unchanged.
  auto node = make(Options{});
  REQUIRE_THROWS_WITH(node.set_learning_rate(1e-46), Catch::Contains("lr"));
  CHECK(node.options().lr == 0.1);
}

TEST_CASE("Non-finite gradients are detected: thrown by default, skipped and counted on request", "[optimizer][nonfinite]") {
  const int n = 3, d = 4;
  Models models(n, d, 1.0f);
  auto nan_on_node_1 = [](int i, std::span<const float> x, std::span<float> g) {
    for (std::size_t k = 0; k < x.size(); ++k) g[k] = x[k];
    if (i == 1) g[2] = std::numeric_limits<float>::quiet_NaN();
  };
  {
    Simulation<Exact> sim(Topology::ring(n), models.spans);
    REQUIRE_THROWS_WITH(sim.round(nan_on_node_1), Catch::Contains("node 1") && Catch::Contains("round 0"));
  }
  Models fresh(n, d, 1.0f);
  Options options;
  options.non_finite = NonFinitePolicy::Skip;
  Simulation<Exact> sim(Topology::ring(n), fresh.spans, options);
  const auto stats = sim.round(nan_on_node_1);
  CHECK(stats.skipped_nodes == 1);
  CHECK(sim.node(1).totals().skipped_rounds == 1);
  for (const auto& m : fresh.storage)
    for (float v : m) CHECK(std::isfinite(v));
}

TEST_CASE("Same seed, same bits: two simulations agree exactly; another seed differs", "[optimizer][determinism]") {
  const int n = 5, d = 64;
  const auto problem = decopt::testing::make_problem(SplitProblem::Loss::LeastSquares, n, 30, d, 2);
  auto run = [&](std::uint64_t seed) {
    Models models(n, d);
    Options options;
    options.lr = 0.05;
    options.consensus_step = 0.4;
    options.seed = seed;
    Simulation<MalcomLike> sim(Topology::ring(n), models.spans, options,
                               MalcomLike::Compressor(Dense{}, DitheredQuantizer{4, Norm::L2}, VectorSourceCoder{}),
                               L1Prox{0.01});
    for (int t = 0; t < 40; ++t)
      sim.round([&](int i, std::span<const float> x, std::span<float> g) { problem.gradient_into(i, x, g); });
    return models.storage;
  };
  const auto a = run(7), b = run(7), c = run(8);
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("DirectGossipStep (QDGD): exact D-PSGD with the identity; biased compressors rejected at compile time", "[optimizer][direct]") {
  using Direct = DecentralizedOptimizer<Compressor<Dense, Identity, RawCoder>, NoProx, DirectGossipStep>;
  using DirectDithered = DecentralizedOptimizer<Compressor<Dense, DitheredQuantizer, VectorSourceCoder>, NoProx, DirectGossipStep>;
  // The compile-time rule (a failing instantiation is checked by the ctest test compile_fail_biased_direct).
  STATIC_REQUIRE(converges_with<Compressor<Dense, DitheredQuantizer, RawCoder>, DirectGossipStep>);
  STATIC_REQUIRE_FALSE(converges_with<Compressor<TopK, Identity, RawCoder>, DirectGossipStep>);
  STATIC_REQUIRE_FALSE(converges_with<Compressor<Dense, Sign, RawCoder>, DirectGossipStep>);
  STATIC_REQUIRE(converges_with<Compressor<TopK, Identity, RawCoder>, SyncStep>);

  const int n = 5, d = 9;
  const auto problem = decopt::testing::make_problem(SplitProblem::Loss::LeastSquares, n, 20, d, 4);
  const Topology topology = Topology::ring(n);
  Options options;
  options.lr = 0.05;
  Models models(n, d, 0.5f);
  Simulation<Direct> sim(topology, models.spans, options);
  check_equals_exact_dpsgd(sim, models, problem, options.lr, 0.5, 40);
  CHECK(sim.node(0).public_copy().empty());  // no error memory: half the state

  // With an unbiased quantizer it still approaches the optimum (noisy, so a loose tolerance).
  Models noisy(n, d);
  options.consensus_step = 0.5;
  options.lr = 0.02;
  Simulation<DirectDithered> qdgd(topology, noisy.spans, options,
                                  DirectDithered::Compressor({}, DitheredQuantizer{64, Norm::Linf}, {}));
  for (int t = 0; t < 3000; ++t)
    qdgd.round([&](int i, std::span<const float> x, std::span<float> g) { problem.gradient_into(i, x, g); });
  const Eigen::VectorXd optimum = decopt::testing::fista(problem, 0.0);
  CHECK(max_relative_error(noisy.spans, optimum) < 0.05);
}
