// Cost of one optimizer round per node against the dimension d and the degree, beside BM_Memcpy;
// and a simulated network of 256 nodes × 10^5 parameters: rounds per second and peak memory, on
// one thread (bench_simulation compares thread counts).
#include <decopt/decopt.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "memcpy_baseline.hpp"

namespace {

using Malcom = decopt::MalcomPSGD<>;

Malcom::Compressor malcom_compressor() {
  return Malcom::Compressor(decopt::Dense{}, decopt::DitheredQuantizer{256, decopt::Norm::L2}, decopt::VectorSourceCoder{});
}

/// A cheap synthetic gradient (g = x − target) so the benchmark measures the optimizer, not a model.
struct QuadraticGradient {
  float target;
  void operator()(int, std::span<const float> x, std::span<float> g) const {
    for (std::size_t k = 0; k < x.size(); ++k) g[k] = x[k] - target;
  }
};

/// Resident set size of this process in bytes (VmRSS), or 0 where /proc is missing. The difference
/// across building and running the simulation is the memory it holds (VmHWM, the peak, would be
/// polluted by the benchmarks that ran before in the same process).
double resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      double kb = 0;
      status >> kb;
      return kb * 1024.0;
    }
    std::getline(status, key);
  }
  return 0;
}

/// One round per node on a ring (degree 2) or torus (degree 4) of 16 nodes, at dimension d.
void BM_MalcomRoundPerNode(benchmark::State& state) {
  const auto d = static_cast<std::size_t>(state.range(0));
  const bool torus = state.range(1) == 4;
  const auto topology = torus ? decopt::Topology::torus(4, 4) : decopt::Topology::ring(16);
  std::vector<std::vector<float>> storage(16, std::vector<float>(d, 0.5f));
  std::vector<std::span<float>> spans(storage.begin(), storage.end());
  decopt::Options options;
  options.lr = 0.01;
  options.consensus_step = 0.5;
  // One thread: this is the cost of a node-round (CPU time of the benchmark's thread); the
  // threaded simulation is bench_simulation's.
  decopt::Simulation<Malcom> sim(topology, spans, options, malcom_compressor(), decopt::L1Prox{1e-4},
                                 decopt::LinkModel{}, 1);
  QuadraticGradient grad{0.25f};
  for (auto _ : state) sim.round(grad);
  // Per node: the rate is over one node's parameters, so it compares with BM_Memcpy of d floats.
  state.SetItemsProcessed(state.iterations() * 16);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 16 * d * sizeof(float)));
  state.counters["seconds_per_node_round"] =
      benchmark::Counter(static_cast<double>(state.iterations() * 16), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["degree"] = static_cast<double>(state.range(1));
}
BENCHMARK(BM_MalcomRoundPerNode)
    ->ArgsProduct({{1000, 10000, 100000, 1000000}, {2, 4}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MalcomRoundPerNode)->Args({10000000, 2})->Iterations(2)->Unit(benchmark::kMillisecond);

/// 256 nodes × 10^5 parameters on a 16×16 torus: rounds per second and memory per node.
void BM_Simulate256Nodes(benchmark::State& state) {
  const int n = 256;
  const std::size_t d = 100000;
  const double rss_before = resident_bytes();
  std::vector<std::vector<float>> storage(n, std::vector<float>(d, 0.5f));
  std::vector<std::span<float>> spans(storage.begin(), storage.end());
  decopt::Options options;
  options.lr = 0.01;
  options.consensus_step = 0.5;
  decopt::Simulation<Malcom> sim(decopt::Topology::torus(16, 16), spans, options, malcom_compressor(),
                                 decopt::L1Prox{1e-4}, decopt::LinkModel{}, 1);  // one thread
  QuadraticGradient grad{0.25f};
  std::uint64_t max_message = 0;
  for (auto _ : state) max_message = std::max(max_message, sim.round(grad).max_message_bytes);
  const double rss = resident_bytes() - rss_before;
  state.counters["rounds_per_second"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["resident_bytes_per_node"] = rss / n;
  state.counters["model_bytes_per_node"] = static_cast<double>(d * sizeof(float));
  state.counters["max_message_bytes"] = static_cast<double>(max_message);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * d * sizeof(float)));
}
BENCHMARK(BM_Simulate256Nodes)->Iterations(5)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

// The memcpy yardstick also at the per-node dimensions above.
BENCHMARK(decopt::bench::BM_Memcpy)->Arg(1000)->Arg(10000)->Arg(100000)->Arg(1000000);
