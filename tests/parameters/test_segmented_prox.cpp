// SegmentedProx: the inner prox acts on the prox = true segments only (weights soft-thresholded,
// biases untouched), padding is zeroed, the regulariser counts only prox segments, and it plugs
// into DecentralizedOptimizer in place of a plain prox.
#include <catch2/catch.hpp>
#include <cmath>
#include <decopt/decopt.hpp>
#include <vector>

using namespace decopt;
using Catch::Contains;

namespace {

ParameterLayout net_layout() {
  ParameterLayout layout;
  layout
      .add("conv.weight", {3, 1, 2, 2})                                               // 12 floats at 0
      .add("conv.bias", {3}, {.prox = false})                                         // at 16
      .add("norm.weight", {3}, {.prox = false})                                       // at 32
      .add("fc.weight", {2, 3}, {.prox = true})                                       // at 48
      .add("fc.bias", {2}, SegmentOptions::for_shape(std::vector<std::int64_t>{2}));  // at 64
  return layout;
}

/// A buffer with values of both signs in every segment and junk in the padding.
std::vector<float> filled(const ParameterLayout& layout) {
  std::vector<float> x(layout.size());
  for (std::size_t k = 0; k < x.size(); ++k) x[k] = 0.3f * std::sin(1.7f * static_cast<float>(k) + 0.2f);
  return x;
}

}  // namespace

TEST_CASE("SegmentedProx satisfies the prox contracts", "[parameters][prox]") {
  STATIC_REQUIRE(ProximalOperator<SegmentedProx<L1Prox>>);
  STATIC_REQUIRE(ProximalPolicy<SegmentedProx<L1Prox>>);
  STATIC_REQUIRE(ProximalOperator<SegmentedProx<GroupL1Prox>>);
  STATIC_REQUIRE(SegmentedProx<L1Prox>::promotes_sparsity);
  STATIC_REQUIRE_FALSE(SegmentedProx<NoProx>::promotes_sparsity);
  STATIC_REQUIRE_FALSE(SegmentedProx<NoProx>::is_identity);  // it still zeroes the padding
}

TEMPLATE_TEST_CASE("the prox soft-thresholds prox segments, leaves the others and zeroes padding",
                   "[parameters][prox]", float, double) {
  const ParameterLayout layout = net_layout();
  const SegmentedProx<L1Prox> prox(layout, L1Prox(0.5));
  const std::vector<float> start = filled(layout);
  std::vector<TestType> x(start.begin(), start.end());
  const std::vector<TestType> before = x;
  const double step = 0.3;  // τ = 0.15
  prox.apply(std::span<TestType>(x), step);

  std::size_t thresholded = 0, zeroed = 0;
  for (const Segment& s : layout.segments()) {
    for (std::size_t k = s.offset; k < s.end(); ++k) {
      if (s.options.prox) {
        const TestType expected = detail::soft_threshold(before[k], static_cast<TestType>(step * 0.5));
        CHECK(x[k] == expected);
        thresholded += std::abs(before[k]) > static_cast<TestType>(0.15) ? 1 : 0;
        zeroed += x[k] == TestType(0) ? 1 : 0;
      } else {
        CHECK(x[k] == before[k]);  // bias and norm segments: bit for bit untouched
      }
    }
  }
  CHECK(thresholded > 0);  // the data exercise both sides of the threshold
  CHECK(zeroed > 0);
  layout.for_each_padding([&](std::size_t begin, std::size_t end) {
    for (std::size_t k = begin; k < end; ++k) CHECK(x[k] == TestType(0));
  });
  CHECK_FALSE(layout.segment("fc.bias").options.prox);

  // R(x) = λ Σ |x| over the prox segments only.
  double expected_value = 0;
  for (const Segment& s : layout.segments())
    if (s.options.prox)
      for (std::size_t k = s.offset; k < s.end(); ++k)
        expected_value += std::abs(static_cast<double>(before[k]));
  CHECK(prox.value(std::span<const TestType>(before)) == Approx(0.5 * expected_value).epsilon(1e-12));
}

TEST_CASE("the inner operator restarts at every segment", "[parameters][prox]") {
  ParameterLayout layout(1);
  layout.add("a", {3}).add("b", {3});
  const GroupL1Prox group(0.4, 2);
  std::vector<float> x = {0.1f, 0.2f, 0.9f, 0.3f, -0.8f, 0.05f};
  std::vector<float> expected = x;
  group.apply(std::span<float>(expected).first(3), 1.0);  // groups {0,1},{2} and {3,4},{5}
  group.apply(std::span<float>(expected).last(3), 1.0);
  SegmentedProx<GroupL1Prox>(layout, group).apply(std::span<float>(x), 1.0);
  CHECK(x == expected);
}

TEST_CASE("SegmentedProx<NoProx> only clears the padding; bad calls are refused", "[parameters][prox]") {
  const ParameterLayout layout = net_layout();
  const SegmentedProx<NoProx> prox(layout);
  std::vector<float> x = filled(layout);
  std::vector<float> expected = x;
  layout.zero_padding(expected);
  prox.apply(std::span<float>(x), 1.0);
  CHECK(x == expected);
  CHECK(prox.value(std::span<const float>(x)) == 0.0);
  CHECK(prox.size() == layout.size());

  std::vector<float> wrong(layout.size() + 3);
  CHECK_THROWS_WITH(prox.apply(std::span<float>(wrong), 1.0),
                    Contains("buffer of 69 floats, the layout has 66"));
  CHECK_THROWS_AS(prox.value(std::span<const float>(wrong)), ConfigError);
  ParameterLayout biases_only;
  biases_only.add("b", {4}, {.prox = false});
  std::vector<float> b(4);
  CHECK_THROWS_WITH(SegmentedProx<L1Prox>(biases_only, L1Prox(1.0)).apply(std::span<float>(b), -1.0),
                    Contains("step"));
  CHECK_THROWS_AS(SegmentedProx<L1Prox>(biases_only, L1Prox(1.0)).apply(std::span<float>(b), NAN),
                  ConfigError);
}

TEST_CASE("SegmentedProx plugs into DecentralizedOptimizer unchanged", "[parameters][prox]") {
  // f_i(x) = ½‖x − t‖² with |t| < λ: prox-gradient converges to soft(t, λ) = 0 on the prox segments
  // and to t on the others (biases keep their values, weights become exactly zero).
  using Layered =
      DecentralizedOptimizer<Compressor<Dense, DitheredQuantizer, VectorSourceCoder>, SegmentedProx<L1Prox>>;
  const ParameterLayout layout = net_layout();
  const std::vector<float> target = [&] {
    std::vector<float> t = filled(layout);
    layout.zero_padding(t);
    return t;
  }();
  const Topology ring = Topology::ring(4);
  std::vector<FlatParameters> nodes;
  std::vector<std::span<float>> buffers;
  for (int i = 0; i < ring.size(); ++i) nodes.emplace_back(layout);
  for (auto& node : nodes) buffers.push_back(node.span());
  Options options;
  options.lr = 0.2;
  Simulation<Layered> sim(ring, buffers, options,
                          {Dense{}, DitheredQuantizer{64, Norm::Linf}, VectorSourceCoder{}},
                          SegmentedProx<L1Prox>(layout, L1Prox(0.5)));
  for (int round = 0; round < 80; ++round)
    sim.round([&](int, std::span<const float> x, std::span<float> g) {
      for (std::size_t k = 0; k < x.size(); ++k) g[k] = x[k] - target[k];
    });
  for (const FlatParameters& node : nodes) {
    CHECK(layout.padding_is_zero(node.span()));
    for (const Segment& s : layout.segments()) {
      const auto x = node.view(s.name);
      for (std::size_t k = 0; k < s.size; ++k) {
        if (s.options.prox) {
          CHECK(x[k] == 0.0f);
        } else {
          CHECK(std::abs(x[k] - target[s.offset + k]) < 0.03f);
        }
      }
    }
  }
}
