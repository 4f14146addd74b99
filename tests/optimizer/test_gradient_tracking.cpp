// GradientTracking (BEER; DIGing with the identity compressor and γ = 1) on heterogeneous
// quadratics f_i(x) = ½‖A_i x − b_i‖²: it reaches the exact minimiser of Σ_i f_i with a constant
// step where D-PSGD stays biased; the tracker keeps Σ_i v_i = Σ_i g_i every round and equals the
// average gradient at consensus; the compressed variant converges too; the simulated network,
// Simulation's threads and ThreadNetwork give the same bits; checkpoints resume bit for bit; bad
// options, truncated and corrupted messages are refused.
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>

#include <Eigen/Dense>

#include <cmath>
#include <span>
#include <vector>

using namespace decopt;
using Catch::Matchers::Contains;

namespace {

using Models = std::vector<std::vector<float>>;
using Identity32 = Compressor<Dense, Identity, RawCoder>;
using Dithered = Compressor<Dense, DitheredQuantizer, VectorSourceCoder>;
using DiGing = GradientTracking<Identity32>;

/// f_i(x) = ½‖A_i x − b_i‖², A_i = N(0, 1/m) rows, b_i with a node-specific offset (non-IID).
struct Quadratics {
  std::vector<Eigen::MatrixXd> A;
  std::vector<Eigen::VectorXd> b;
  int d = 0;

  Quadratics(int n, int m, int d_, std::uint64_t seed) : d(d_) {
    Rng rng(seed);
    for (int i = 0; i < n; ++i) {
      Eigen::MatrixXd a(m, d);
      for (int r = 0; r < m; ++r)
        for (int c = 0; c < d; ++c) a(r, c) = rng.normal() / std::sqrt(static_cast<double>(m));
      Eigen::VectorXd t(m);
      for (int r = 0; r < m; ++r) t[r] = rng.normal() + 2.0 * std::sin(1.7 * i + r);  // heterogeneous targets
      A.push_back(std::move(a));
      b.push_back(std::move(t));
    }
  }
  /// argmin Σ_i f_i = (Σ A_iᵀA_i)⁻¹ Σ A_iᵀ b_i.
  [[nodiscard]] Eigen::VectorXd minimiser() const {
    Eigen::MatrixXd H = Eigen::MatrixXd::Zero(d, d);
    Eigen::VectorXd r = Eigen::VectorXd::Zero(d);
    for (std::size_t i = 0; i < A.size(); ++i) {
      H += A[i].transpose() * A[i];
      r += A[i].transpose() * b[i];
    }
    return H.ldlt().solve(r);
  }
  void gradient(int i, std::span<const float> x, std::span<float> g) const {
    Eigen::VectorXd xd(d);
    for (int k = 0; k < d; ++k) xd[k] = x[static_cast<std::size_t>(k)];
    const Eigen::VectorXd gd = A[static_cast<std::size_t>(i)].transpose() * (A[static_cast<std::size_t>(i)] * xd - b[static_cast<std::size_t>(i)]);
    for (int k = 0; k < d; ++k) g[static_cast<std::size_t>(k)] = static_cast<float>(gd[k]);
  }
  auto callback() const {
    return [this](int i, std::span<const float> x, std::span<float> g) { gradient(i, x, g); };
  }
};

constexpr int kNodes = 8;
constexpr int kDim = 6;

Models start_models(int n = kNodes, std::size_t d = kDim) { return Models(static_cast<std::size_t>(n), std::vector<float>(d, 0.0f)); }

std::vector<std::span<float>> spans_of(Models& x) { return {x.begin(), x.end()}; }

/// max over nodes and coordinates of |x_i − x*|.
double worst_error(const Models& x, const Eigen::VectorXd& optimum) {
  double worst = 0;
  for (const auto& m : x)
    for (int k = 0; k < optimum.size(); ++k) worst = std::max(worst, std::abs(m[static_cast<std::size_t>(k)] - optimum[k]));
  return worst;
}

template <class Node>
Simulation<Node> network(Models& x, const Options& options, typename Node::Compressor compressor = {}, int threads = 1) {
  return Simulation<Node>(Topology::ring(kNodes), spans_of(x), options, std::move(compressor), {}, {}, threads);
}

Options options_with(double lr, double gamma, std::uint64_t seed = 7) {
  Options o;
  o.lr = lr;
  o.consensus_step = gamma;
  o.seed = seed;
  return o;
}

/// Σ_i v_i − Σ_i g_i, the largest coordinate, relative to the largest |Σ_i g_i|.
template <class Sim>
double tracker_sum_gap(const Sim& sim) {
  std::vector<double> sv(kDim, 0.0), sg(kDim, 0.0);
  for (int i = 0; i < sim.size(); ++i)
    for (std::size_t k = 0; k < kDim; ++k) {
      sv[k] += sim.node(i).tracker()[k];
      sg[k] += sim.node(i).last_gradient()[k];
    }
  double gap = 0, scale = 1e-30;
  for (std::size_t k = 0; k < kDim; ++k) {
    gap = std::max(gap, std::abs(sv[k] - sg[k]));
    scale = std::max(scale, std::abs(sg[k]));
  }
  return gap / std::max(scale, 1.0);
}

}  // namespace

TEST_CASE("Gradient tracking (DIGing) reaches the exact minimiser on heterogeneous quadratics where D-PSGD stays biased",
          "[optimizer][gradient-tracking]") {
  const Quadratics q(kNodes, 12, kDim, 3);
  const Eigen::VectorXd optimum = q.minimiser();
  const double lr = 0.05;

  Models gt = start_models();
  auto sim = network<DiGing>(gt, options_with(lr, 1.0));
  for (int t = 0; t < 3000; ++t) (void)sim.round(q.callback());
  const double gt_error = worst_error(gt, optimum);

  Models dpsgd = start_models();
  auto plain = network<DPSGD<>>(dpsgd, dpsgd_options(options_with(lr, 1.0)));
  for (int t = 0; t < 3000; ++t) (void)plain.round(q.callback());
  const double dpsgd_error = worst_error(dpsgd, optimum);

  INFO("GT error " << gt_error << ", D-PSGD error " << dpsgd_error);
  CHECK(gt_error < 1e-5);
  CHECK(dpsgd_error > 1e-2);  // D-PSGD's fixed point is off by O(η · heterogeneity / gap)
  CHECK(sim.neighbor_sum_error() < 1e-5);
}

TEST_CASE("Gradient tracking: sum_i v_i = sum_i g_i every round, and v_i is the average gradient at consensus",
          "[optimizer][gradient-tracking]") {
  const Quadratics q(kNodes, 12, kDim, 5);
  for (const bool compressed : {false, true}) {
    DYNAMIC_SECTION((compressed ? "dithered, gamma 0.4" : "identity, gamma 1")) {
      Models x = start_models();
      double worst_gap = 0;
      auto check_rounds = [&](auto& sim, int rounds) {
        for (int t = 0; t < rounds; ++t) {
          (void)sim.round(q.callback());
          worst_gap = std::max(worst_gap, tracker_sum_gap(sim));
        }
        // At consensus every v_i equals (1/n) Σ_j g_j, the average gradient (≈ 0 at the optimum).
        for (int i = 0; i < kNodes; ++i)
          for (std::size_t k = 0; k < kDim; ++k) {
            double mean = 0;
            for (int j = 0; j < kNodes; ++j) mean += sim.node(j).last_gradient()[k] / kNodes;
            CHECK(sim.node(i).tracker()[k] == Approx(mean).margin(1e-4));
          }
      };
      if (compressed) {
        auto sim = network<GradientTracking<Dithered>>(x, options_with(0.05, 0.4), Dithered({}, {256, Norm::L2}, {}));
        check_rounds(sim, 3000);
      } else {
        auto sim = network<DiGing>(x, options_with(0.05, 1.0));
        check_rounds(sim, 3000);
      }
      CHECK(worst_gap < 1e-5);
    }
  }
}

TEST_CASE("Compressed gradient tracking (dithered levels, VSC, error memory on x and v) converges to the minimiser",
          "[optimizer][gradient-tracking]") {
  const Quadratics q(kNodes, 12, kDim, 3);
  const Eigen::VectorXd optimum = q.minimiser();
  Models x = start_models();
  auto sim = network<GradientTracking<Dithered>>(x, options_with(0.05, 0.4), Dithered({}, {16, Norm::L2}, {}));
  for (int t = 0; t < 4000; ++t) (void)sim.round(q.callback());
  const double error = worst_error(x, optimum);
  INFO("compressed GT error " << error);
  CHECK(error < 1e-4);
}

TEST_CASE("Gradient tracking: the same seed gives the same bits on the simulated network (1 and 3 threads) and ThreadNetwork",
          "[optimizer][gradient-tracking][threads]") {
  const Quadratics q(kNodes, 12, kDim, 9);
  const auto options = options_with(0.05, 0.5, 11);
  const Dithered compressor({}, {8, Norm::L2}, {});
  Models one = start_models(), three = start_models(), threads = start_models();
  {
    auto sim = network<GradientTracking<Dithered>>(one, options, compressor, 1);
    for (int t = 0; t < 60; ++t) (void)sim.round(q.callback());
  }
  {
    auto sim = network<GradientTracking<Dithered>>(three, options, compressor, 3);
    for (int t = 0; t < 60; ++t) (void)sim.round(q.callback());
  }
  ThreadNetwork net(Topology::ring(kNodes));
  const Topology ring = Topology::ring(kNodes);
  net.run([&](int rank) {
    GradientTracking<Dithered> node(std::span<float>(threads[static_cast<std::size_t>(rank)]), ring, net.endpoint(rank),
                                    GradientTrackingOptions::from(options), compressor);
    for (int t = 0; t < 60; ++t)
      (void)node.step([&](std::span<const float> x, std::span<float> g) { q.gradient(rank, x, g); });
  });
  CHECK(one == three);
  CHECK(one == threads);
  CHECK(one != start_models());
}

TEST_CASE("Gradient tracking: a checkpoint round-trips and a resumed run ends with the same bits",
          "[optimizer][gradient-tracking][checkpoint]") {
  const Quadratics q(kNodes, 12, kDim, 4);
  const auto options = options_with(0.05, 0.5, 3);
  const Dithered compressor({}, {8, Norm::L2}, {});
  Models straight = start_models();
  auto a = network<GradientTracking<Dithered>>(straight, options, compressor);
  for (int t = 0; t < 20; ++t) (void)a.round(q.callback());
  std::vector<std::vector<std::byte>> saved(kNodes);
  for (int i = 0; i < kNodes; ++i) a.node(i).save_state(saved[static_cast<std::size_t>(i)]);
  for (int t = 0; t < 20; ++t) (void)a.round(q.callback());

  Models resumed = start_models();
  auto b = network<GradientTracking<Dithered>>(resumed, options, compressor);
  for (int i = 0; i < kNodes; ++i) CHECK(b.node(i).load_state(saved[static_cast<std::size_t>(i)]) == saved[static_cast<std::size_t>(i)].size());
  std::vector<std::byte> again;
  b.node(2).save_state(again);
  CHECK(again == saved[2]);  // save → load → save is the identity
  CHECK(b.node(0).round() == 20);
  for (int t = 0; t < 20; ++t) (void)b.round(q.callback());
  CHECK(resumed == straight);
  for (int i = 0; i < kNodes; ++i) {
    CHECK(std::equal(b.node(i).tracker().begin(), b.node(i).tracker().end(), a.node(i).tracker().begin()));
    CHECK(b.node(i).totals().bytes_sent == a.node(i).totals().bytes_sent);
  }

  // Truncated, corrupted and foreign records are refused, and the node is unchanged.
  std::vector<std::byte> record = saved[1];
  const std::vector<float> before(b.node(1).parameters().begin(), b.node(1).parameters().end());
  CHECK_THROWS_AS(b.node(1).load_state(std::span<const std::byte>(record).first(record.size() - 3)), DecodeError);
  record[record.size() / 2] ^= std::byte{0x10};
  CHECK_THROWS_AS(b.node(1).load_state(record), DecodeError);
  CHECK_THROWS_WITH(b.node(2).load_state(saved[1]), Contains("checkpoint is of node 1"));
  Models other = start_models();
  auto dpsgd = network<DPSGD<>>(other, dpsgd_options(options));
  std::vector<std::byte> foreign;
  dpsgd.node(1).save_state(foreign);
  CHECK_THROWS_WITH(b.node(1).load_state(foreign), Contains("pipeline"));
  CHECK(std::vector<float>(b.node(1).parameters().begin(), b.node(1).parameters().end()) == before);
}

TEST_CASE("Gradient tracking: bad options, a layout and a non-finite gradient are refused", "[optimizer][gradient-tracking][config]") {
  SimulatedNetwork net(Topology::ring(3));
  const Topology ring = Topology::ring(3);
  std::vector<float> x(4, 1.0f);
  CHECK_THROWS_WITH(DiGing(x, ring, net.endpoint(0), GradientTrackingOptions{.lr = 0}), Contains("option lr"));
  CHECK_THROWS_WITH(DiGing(x, ring, net.endpoint(0), GradientTrackingOptions{.lr = std::nan("")}), Contains("option lr"));
  CHECK_THROWS_WITH(DiGing(x, ring, net.endpoint(0), GradientTrackingOptions{.lr = 1e-46}), Contains("lr"));
  CHECK_THROWS_WITH(DiGing(x, ring, net.endpoint(0), GradientTrackingOptions{.consensus_step = 0}), Contains("consensus_step"));
  CHECK_THROWS_WITH(DiGing(x, ring, net.endpoint(0), GradientTrackingOptions{.consensus_step = 1.5}), Contains("consensus_step"));
  Options momentum;
  momentum.momentum = 0.9;
  CHECK_THROWS_WITH(DiGing(x, ring, net.endpoint(0), momentum, {}, NoProx{}), Contains("momentum"));
  Options local;
  local.local_steps = 2;
  CHECK_THROWS_WITH(DiGing(x, ring, net.endpoint(0), local, {}, NoProx{}), Contains("local_steps"));
  ParameterLayout layout(1);
  layout.add("w", {4});
  CHECK_THROWS_WITH(DiGing(x, layout, ring, net.endpoint(0), Options{}, {}, NoProx{}), Contains("ParameterLayout"));
  CHECK_THROWS_WITH(DiGing(x, Topology::ring(4), net.endpoint(0)), Contains("neighbours"));
  std::vector<float> bad(4, 1.0f);
  bad[1] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(DiGing(bad, ring, net.endpoint(0)), Contains("not finite"));

  DiGing node(x, ring, net.endpoint(0));
  CHECK_THROWS_WITH(node.finish_round(), Contains("before begin_round"));
  CHECK_THROWS_AS(node.begin_round([](std::span<const float>, std::span<float> g) {
    g[0] = std::nan("");
  }),
                  NonFiniteError);
  CHECK(node.inconsistent());
  CHECK_THROWS_WITH(node.begin_round([](std::span<const float>, std::span<float>) {}), Contains("inconsistent"));
}

TEST_CASE("Gradient tracking: truncated and corrupted messages are DecodeErrors naming the peer and the part",
          "[optimizer][gradient-tracking][decode]") {
  const Topology pair = Topology::complete(2);
  const std::size_t d = 5;
  // A well-formed message by hand: [u32 model length][model message][tracker message].
  Identity32 c;
  Rng rng(1);
  std::vector<float> q(d);
  std::vector<std::byte> model, tracker;
  const std::vector<float> values{1, 2, 3, 4, 5};
  c.encode(values, rng, model, q);
  c.encode(values, rng, tracker, q);
  auto framed = [&](std::uint32_t length, const std::vector<std::byte>& a, const std::vector<std::byte>& b) {
    std::vector<std::byte> m;
    put_le<std::uint32_t>(m, length);
    m.insert(m.end(), a.begin(), a.end());
    m.insert(m.end(), b.begin(), b.end());
    return m;
  };
  const auto good = framed(static_cast<std::uint32_t>(model.size()), model, tracker);
  auto deliver = [&](const std::vector<std::byte>& forged) {
    SimulatedNetwork net(pair);
    std::vector<float> x(d, 0.0f);
    DiGing node(x, pair, net.endpoint(0));
    node.begin_round([](std::span<const float>, std::span<float> g) { std::fill(g.begin(), g.end(), 0.0f); });
    net.endpoint(1).post(0, forged);
    (void)node.finish_round();
    return std::vector<double>(node.neighbor_sum().begin(), node.neighbor_sum().end());
  };
  const auto s = deliver(good);  // accepted: s_x = w_01 · values
  CHECK(s[4] == Approx(0.5 * 5));

  CHECK_THROWS_WITH(deliver(std::vector<std::byte>(3)), Contains("from node 1 to node 0 in round 0") && Contains("no length field"));
  CHECK_THROWS_WITH(deliver(framed(static_cast<std::uint32_t>(model.size() + tracker.size() + 1), model, tracker)),
                    Contains("only"));
  auto cut = good;
  cut.resize(good.size() - 2);
  CHECK_THROWS_WITH(deliver(cut), Contains("tracker part"));
  CHECK_THROWS_WITH(deliver(framed(static_cast<std::uint32_t>(model.size()), model, {})), Contains("tracker part"));
  auto flipped = good;
  flipped[4 + model.size() / 2] ^= std::byte{0x01};
  CHECK_THROWS_WITH(deliver(flipped), Contains("model part"));
  CHECK_THROWS_AS(deliver(framed(static_cast<std::uint32_t>(model.size() - 1), model, tracker)), DecodeError);
}
