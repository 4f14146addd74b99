// bench/bench_privacy.cpp — the cost of differential privacy: one private mini-batch gradient
// (two passes over a d×B per-sample matrix plus d normal draws) beside BM_Memcpy of the same d, and
// one ε query of the RDP accountant. Bytes processed = d·B·4, the per-sample input read.
#include <decopt/core/error.hpp>
#include <decopt/core/rng.hpp>
#include <decopt/privacy/privacy.hpp>

#include <vector>

#include "memcpy_baseline.hpp"

namespace {

using namespace decopt;

template <class Rule>
void BM_PrivateGradient(benchmark::State& state, Rule rule, double sigma) {
  const auto d = static_cast<Eigen::Index>(state.range(0));
  constexpr Eigen::Index kBatch = 8;
  Rng data(1);
  Eigen::MatrixXf per_sample(d, kBatch);
  for (Eigen::Index b = 0; b < kBatch; ++b) {
    for (Eigen::Index k = 0; k < d; ++k) per_sample(k, b) = static_cast<float>(data.normal() * 1e-3 * (b + 1));
  }
  std::vector<float> out(static_cast<std::size_t>(d));
  Rng rng(2);
  for (auto _ : state) {
    privacy::private_gradient(per_sample, rule, sigma, rng, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * d * kBatch *
                          static_cast<std::int64_t>(sizeof(float)));
}

void BM_PrivateGradient_Psac(benchmark::State& state) { BM_PrivateGradient(state, privacy::PsacClipping{1.0}, 1.0); }
void BM_PrivateGradient_Abadi(benchmark::State& state) { BM_PrivateGradient(state, privacy::AbadiClipping{1.0}, 1.0); }
// Without noise: the clipping passes alone, to separate them from the cost of the normal draws.
void BM_PrivateGradient_Psac_NoNoise(benchmark::State& state) {
  BM_PrivateGradient(state, privacy::PsacClipping{1.0}, 0.0);
}

BENCHMARK(BM_PrivateGradient_Psac)->Apply(decopt::bench::standard_sizes);
BENCHMARK(BM_PrivateGradient_Abadi)->Apply(decopt::bench::standard_sizes);
BENCHMARK(BM_PrivateGradient_Psac_NoNoise)->Apply(decopt::bench::standard_sizes);

// One step of accounting for a new (σ, q) — the series at every default order — then ε.
void BM_RdpAccountant_StepAndEpsilon(benchmark::State& state) {
  for (auto _ : state) {
    privacy::RdpAccountant accountant;  // fresh, so step() cannot reuse its cached per-order RDP
    accountant.step(1.0, 0.01, 10000);
    benchmark::DoNotOptimize(accountant.epsilon(1e-5));
  }
}
BENCHMARK(BM_RdpAccountant_StepAndEpsilon)->Unit(benchmark::kMicrosecond);

// ε alone, on an accountant that has already accumulated its steps (what a training loop queries).
void BM_RdpAccountant_Epsilon(benchmark::State& state) {
  privacy::RdpAccountant accountant;
  accountant.step(1.0, 0.01, 10000);
  for (auto _ : state) benchmark::DoNotOptimize(accountant.epsilon(1e-5));
}
BENCHMARK(BM_RdpAccountant_Epsilon)->Unit(benchmark::kMicrosecond);

void BM_FindNoiseMultiplier(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(privacy::find_noise_multiplier(8.0, 1e-5, 0.04, 2000));
}
BENCHMARK(BM_FindNoiseMultiplier)->Unit(benchmark::kMillisecond);

}  // namespace
