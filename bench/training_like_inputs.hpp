// bench/training_like_inputs.hpp — synthetic models and gradients with the statistics of real
// training, for the benchmarks that time optimizer rounds (bench_optimizer, bench_simulation).
//
// Why: all-equal inputs (every node at 0.5, gradient x − 0.25) make every coordinate of every
// residual equal — one quantization symbol — so the coder has nothing to do and a Malcom-PSGD
// round looked 7× cheaper than in training (issue 15, item 1). Here instead:
//   - x* ~ N(0, 1) is a shared optimum; node i starts from x* + N(0, 0.1²), drawn from its own
//     seeded Rng (spread models, as after a few rounds of decentralized training);
//   - node i's gradient is g = x − x* + N(0, 0.05²), new noise for every node and every call
//     (the noise of a mini-batch gradient, larger than its mean once x is near x*).
// The quantizer is scale invariant (the ℓ2 scale), so what decides the bits is the shape of the
// residuals: these give ≈ 2 bits per parameter per message at d = 10⁵ with dithered ℓ2 s = 256 +
// vector source coding (bench_optimizer reports it as bits_per_param), the size of the messages
// of decopt-train's MLP (101 770 parameters, 1.9 bits/param/round).
//
// The noise is read from a table of 2^20 seeded N(0, 1) samples at an offset that node i's own
// Rng draws at each call, so it differs from call to call and node to node while costing a memory
// read rather than a Box–Muller transform per coordinate (the benchmark measures decopt, not a
// model or a random number generator). The callback may be called concurrently for different
// nodes (it writes only node i's Rng).
#pragma once

#include <decopt/decopt.hpp>

#include <cstdint>
#include <span>
#include <vector>

namespace decopt::bench {

/// g = x − x* + σ ξ for node i, ξ ~ N(0, 1) fresh at every call (see the file comment).
class NoisyQuadratic {
 public:
  static constexpr double kStartSpread = 0.1;    ///< σ of each node's x⁰ around x*
  static constexpr float kGradientNoise = 0.05f;  ///< σ of the gradient noise

  /// @param d the dimension; @param nodes the nodes that will call it; @param seed of x*, the
  ///   noise table and every node's streams
  NoisyQuadratic(std::size_t d, int nodes, std::uint64_t seed)
      : seed_(seed), target_(d), noise_(std::size_t{1} << 20) {
    Rng seeds(seed);
    seeds.fill_normal(std::span<float>(target_), 1.0);
    seeds.fill_normal(std::span<float>(noise_), 1.0);
    for (int i = 0; i < nodes; ++i) rng_.push_back(seeds.split(static_cast<std::uint64_t>(i)));
  }

  /// Node i's starting model: x* + N(0, kStartSpread²), from a stream of its own.
  [[nodiscard]] std::vector<float> start(int i) const {
    Rng init = Rng::derive(seed_, {0x73746172ULL /* "star" */, static_cast<std::uint64_t>(i)});
    std::vector<float> x(target_.size());
    init.fill_normal(std::span<float>(x), kStartSpread);
    for (std::size_t k = 0; k < x.size(); ++k) x[k] += target_[k];
    return x;
  }

  /// Every node's starting model, in node order.
  [[nodiscard]] std::vector<std::vector<float>> start_all(int nodes) const {
    std::vector<std::vector<float>> models;
    models.reserve(static_cast<std::size_t>(nodes));
    for (int i = 0; i < nodes; ++i) models.push_back(start(i));
    return models;
  }

  void operator()(int i, std::span<const float> x, std::span<float> g) {
    const std::size_t mask = noise_.size() - 1;
    const std::size_t offset = rng_[static_cast<std::size_t>(i)].below(noise_.size());
    for (std::size_t k = 0; k < x.size(); ++k) g[k] = x[k] - target_[k] + kGradientNoise * noise_[(offset + k) & mask];
  }

 private:
  std::uint64_t seed_;
  std::vector<float> target_;     // x*
  std::vector<float> noise_;      // 2^20 samples of N(0, 1), read-only
  std::vector<Rng> rng_;          // one stream per node
};

}  // namespace decopt::bench
