// The threaded Simulation: rounds per second of 64 Malcom-PSGD nodes × 10^5 parameters on an 8×8
// torus for T = 1 and T = 2 threads (the models are the same bits for both; tests/optimizer/
// test_simulation_threads.cpp), beside BM_Memcpy of one node's and of all nodes' parameters.
//
// Inputs with the statistics of training, not all-equal coordinates (which would make every
// residual compress to nothing): spread models around a shared optimum and noisy gradients, new
// per node and call (training_like_inputs.hpp; it is safe to call concurrently for different nodes).
#include <decopt/decopt.hpp>

#include <cstdint>
#include <vector>

#include "memcpy_baseline.hpp"
#include "training_like_inputs.hpp"

namespace {

using Malcom = decopt::MalcomPSGD<>;
constexpr int kNodes = 64;
constexpr std::size_t kParameters = 100000;

/// Range(0) = threads.
void BM_Simulate64Nodes(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  decopt::bench::NoisyQuadratic grad(kParameters, kNodes, 2024);
  std::vector<std::vector<float>> models = grad.start_all(kNodes);
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
