// The threaded Simulation: rounds per second of 64 Malcom-PSGD nodes × 10^5 parameters on an 8×8
// torus for T = 1 and T = 2 threads (the models are the same bits for both; tests/optimizer/
// test_simulation_threads.cpp), beside BM_Memcpy of one node's and of all nodes' parameters.
//
// Realistic inputs, not all-equal coordinates (which would make every residual compress to
// nothing): x* ~ N(0, 1) is shared, node i starts from x* + N(0, 0.1²) drawn from its own seeded
// Rng, and its gradient is g = x − x* + N(0, 0.05²). The noise is read from a table of 2^20
// seeded N(0, 1) samples at an offset node i's own Rng draws at each call, so it differs from
// call to call and node to node while costing a memory read rather than a Box–Muller transform
// per coordinate (the benchmark measures decopt, not a random number generator), and the callback
// is safe to call concurrently for different nodes (it writes only node i's Rng).
#include <decopt/decopt.hpp>

#include <cstdint>
#include <vector>

#include "memcpy_baseline.hpp"

namespace {

using Malcom = decopt::MalcomPSGD<>;
constexpr int kNodes = 64;
constexpr std::size_t kParameters = 100000;

struct NoisyQuadratic {
  std::vector<float> target;     // x*
  std::vector<float> noise;      // 2^20 samples of N(0, 1), read-only
  std::vector<decopt::Rng> rng;  // one stream per node
  float sigma = 0.05f;
  void operator()(int i, std::span<const float> x, std::span<float> g) {
    const std::size_t mask = noise.size() - 1;
    const std::size_t offset = rng[static_cast<std::size_t>(i)].below(noise.size());
    for (std::size_t k = 0; k < x.size(); ++k) g[k] = x[k] - target[k] + sigma * noise[(offset + k) & mask];
  }
};

/// Range(0) = threads.
void BM_Simulate64Nodes(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  decopt::Rng seeds(2024);
  NoisyQuadratic grad;
  grad.target.resize(kParameters);
  seeds.fill_normal(std::span<float>(grad.target), 1.0);
  grad.noise.resize(std::size_t{1} << 20);
  seeds.fill_normal(std::span<float>(grad.noise), 1.0);
  std::vector<std::vector<float>> models(kNodes, std::vector<float>(kParameters));
  for (int i = 0; i < kNodes; ++i) {
    grad.rng.push_back(seeds.split(static_cast<std::uint64_t>(i)));
    decopt::Rng init = seeds.split(1000 + static_cast<std::uint64_t>(i));
    auto& m = models[static_cast<std::size_t>(i)];
    init.fill_normal(std::span<float>(m), 0.1);
    for (std::size_t k = 0; k < kParameters; ++k) m[k] += grad.target[k];
  }
  std::vector<std::span<float>> spans(models.begin(), models.end());
  decopt::Options options;
  options.lr = 0.05;
  options.consensus_step = 0.5;
  decopt::Simulation<Malcom> sim(decopt::Topology::torus(8, 8), spans, options,
                                 Malcom::Compressor({}, decopt::DitheredQuantizer{256, decopt::Norm::L2}, {}),
                                 decopt::L1Prox{1e-4}, decopt::LinkModel{}, threads);
  for (int warm = 0; warm < 2; ++warm) sim.round(grad);  // message buffers and per-thread scratch grown
  std::uint64_t bytes = 0;
  for (auto _ : state) bytes += sim.round(grad).bytes_sent;
  state.counters["threads"] = sim.threads();
  state.counters["rounds_per_second"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["bytes_sent_per_round"] =
      static_cast<double>(bytes) / static_cast<double>(state.iterations());
  // The rate is over every node's parameters: compare with BM_Memcpy/6400000.
  state.SetBytesProcessed(
      static_cast<std::int64_t>(state.iterations() * kNodes * kParameters * sizeof(float)));
}
BENCHMARK(BM_Simulate64Nodes)->Arg(1)->Arg(2)->MinTime(2.0)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

// The memcpy yardstick at one node's and at all 64 nodes' parameters.
BENCHMARK(decopt::bench::BM_Memcpy)
    ->Arg(kParameters)
    ->Arg(kNodes* kParameters)
    ->Unit(benchmark::kMillisecond);
