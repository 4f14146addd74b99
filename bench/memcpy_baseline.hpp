// bench/memcpy_baseline.hpp — BM_Memcpy, the memory-bandwidth yardstick every decopt benchmark
// runs beside, on the same sizes (2^20 and 10·2^20 floats), so each figure reads as a ratio to
// what this machine can copy. Included by every bench_*.cpp (each is its own executable).
#pragma once

#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

namespace decopt::bench {

/// The sizes, in floats, every throughput benchmark is run at.
inline void standard_sizes(benchmark::internal::Benchmark* b) {
  b->Arg(1 << 20)->Arg(10 << 20)->Unit(benchmark::kMillisecond);
}

inline void BM_Memcpy(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<float> src(n, 1.0f), dst(n, 0.0f);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), n * sizeof(float));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(float)));
}
BENCHMARK(BM_Memcpy)->Apply(standard_sizes);

}  // namespace decopt::bench
