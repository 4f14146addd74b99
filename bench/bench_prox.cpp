// bench/bench_prox.cpp — proximal operators on 2^20 and 10·2^20 floats (bytes = floats × 4, beside
// BM_Memcpy), and the spectral gap of rings: exact (ring(1024), dense eigensolver) and Lanczos
// (ring(8192)); those two report time only.
#include <benchmark/benchmark.h>

#include <decopt/core/rng.hpp>
#include <decopt/prox/prox.hpp>
#include <decopt/topology/topology.hpp>

#include <span>
#include <vector>

#include "memcpy_baseline.hpp"

namespace {

std::vector<float> bench_input(std::size_t n) {
  decopt::Rng rng(2024);
  std::vector<float> x(n);
  for (auto& v : x) v = 2.0f * rng.uniform_float() - 1.0f;
  return x;
}

/// Applies the prox in place over and over (no restore copy inside the timed loop, which would
/// double the traffic); the step is tiny so the values stay almost unchanged and every iteration
/// does the same work (the kernels are branch-free anyway).
template <class Prox>
void run_prox(benchmark::State& state, const Prox& prox) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto x = bench_input(n);
  for (auto _ : state) {
    prox.apply(std::span<float>(x), 1e-9);
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(float)));
}

void BM_L1Prox(benchmark::State& state) { run_prox(state, decopt::L1Prox(0.1)); }
void BM_ElasticNetProx(benchmark::State& state) { run_prox(state, decopt::ElasticNetProx(0.1, 0.01)); }
void BM_GroupL1Prox_64(benchmark::State& state) { run_prox(state, decopt::GroupL1Prox(0.1, 64)); }
void BM_GroupL1Prox_1024(benchmark::State& state) { run_prox(state, decopt::GroupL1Prox(0.1, 1024)); }

BENCHMARK(BM_L1Prox)->Apply(decopt::bench::standard_sizes);
BENCHMARK(BM_ElasticNetProx)->Apply(decopt::bench::standard_sizes);
BENCHMARK(BM_GroupL1Prox_64)->Apply(decopt::bench::standard_sizes);
BENCHMARK(BM_GroupL1Prox_1024)->Apply(decopt::bench::standard_sizes);

/// Spectral gap from scratch (a fresh Topology each time, so the cache does not answer).
void BM_SpectralGapRing(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  for (auto _ : state) {
    const auto ring = decopt::Topology::ring(n);
    benchmark::DoNotOptimize(ring.spectral_gap());
  }
  state.SetLabel(n <= decopt::spectral::kExactSpectrumMaxNodes ? "exact" : "lanczos");
}
BENCHMARK(BM_SpectralGapRing)->Arg(1024)->Arg(8192)->Unit(benchmark::kMillisecond);

}  // namespace
