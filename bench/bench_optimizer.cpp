// Cost of one optimizer round per node against the dimension d and the degree, beside BM_Memcpy;
// and a simulated network of 256 nodes × 10^5 parameters: rounds per second and peak memory, on
// one thread (bench_simulation compares thread counts).
//
// Inputs with the statistics of training (training_like_inputs.hpp): spread models around a
// shared optimum and noisy gradients, different per node and round, from a cheap table-driven
// generator — not all-equal coordinates, which compress to one symbol and made a round look 7×
// cheaper (issue 15). bits_per_param reports the messages' size, to compare with decopt-train's
// MLP (≈ 1.9 bits per parameter per message).
#include <decopt/decopt.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "memcpy_baseline.hpp"
#include "training_like_inputs.hpp"

namespace {

using Malcom = decopt::MalcomPSGD<>;
using decopt::bench::NoisyQuadratic;

Malcom::Compressor malcom_compressor() {
  return Malcom::Compressor(decopt::Dense{}, decopt::DitheredQuantizer{256, decopt::Norm::L2}, decopt::VectorSourceCoder{});
}

decopt::Options benchmark_options() {
  decopt::Options options;
  options.lr = 0.05;
  options.consensus_step = 0.5;
  return options;
}

/// Rounds run before the timed ones: x̂ starts at 0, so the first residuals are whole models;
/// after these the residuals are the steady-state ones of training.
constexpr int kWarmUpRounds = 3;

/// Bits per parameter per message over `rounds` rounds that sent `bytes` on `links` directed links.
double bits_per_param(std::uint64_t bytes, std::int64_t rounds, std::size_t links, std::size_t d) {
  return 8.0 * static_cast<double>(bytes) / (static_cast<double>(rounds) * static_cast<double>(links) * static_cast<double>(d));
}

std::size_t directed_links(const decopt::Topology& topology) {
  std::size_t links = 0;
  for (int i = 0; i < topology.size(); ++i) links += topology.neighbors(i).size();
  return links;
}

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
  NoisyQuadratic grad(d, 16, 2024);
  std::vector<std::vector<float>> storage = grad.start_all(16);
  std::vector<std::span<float>> spans(storage.begin(), storage.end());
  // One thread: this is the cost of a node-round (CPU time of the benchmark's thread); the
  // threaded simulation is bench_simulation's.
  decopt::Simulation<Malcom> sim(topology, spans, benchmark_options(), malcom_compressor(), decopt::L1Prox{1e-4},
                                 decopt::LinkModel{}, 1);
  for (int warm = 0; warm < kWarmUpRounds; ++warm) sim.round(grad);
  std::uint64_t bytes = 0;
  for (auto _ : state) bytes += sim.round(grad).bytes_sent;
  // Per node: the rate is over one node's parameters, so it compares with BM_Memcpy of d floats.
  state.SetItemsProcessed(state.iterations() * 16);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 16 * d * sizeof(float)));
  state.counters["seconds_per_node_round"] =
      benchmark::Counter(static_cast<double>(state.iterations() * 16), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["degree"] = static_cast<double>(state.range(1));
  state.counters["bits_per_param"] = bits_per_param(bytes, state.iterations(), directed_links(topology), d);
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
  NoisyQuadratic grad(d, n, 2024);
  std::vector<std::vector<float>> storage = grad.start_all(n);
  std::vector<std::span<float>> spans(storage.begin(), storage.end());
  const auto topology = decopt::Topology::torus(16, 16);
  decopt::Simulation<Malcom> sim(topology, spans, benchmark_options(), malcom_compressor(), decopt::L1Prox{1e-4},
                                 decopt::LinkModel{}, 1);  // one thread
  for (int warm = 0; warm < kWarmUpRounds; ++warm) sim.round(grad);
  std::uint64_t max_message = 0, bytes = 0;
  for (auto _ : state) {
    const auto stats = sim.round(grad);
    max_message = std::max(max_message, stats.max_message_bytes);
    bytes += stats.bytes_sent;
  }
  const double rss = resident_bytes() - rss_before;
  state.counters["rounds_per_second"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["resident_bytes_per_node"] = rss / n;
  state.counters["model_bytes_per_node"] = static_cast<double>(d * sizeof(float));
  state.counters["max_message_bytes"] = static_cast<double>(max_message);
  state.counters["bits_per_param"] = bits_per_param(bytes, state.iterations(), directed_links(topology), d);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * d * sizeof(float)));
}
BENCHMARK(BM_Simulate256Nodes)->Iterations(5)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

// The memcpy yardstick also at the per-node dimensions above.
BENCHMARK(decopt::bench::BM_Memcpy)->Arg(1000)->Arg(10000)->Arg(100000)->Arg(1000000);
