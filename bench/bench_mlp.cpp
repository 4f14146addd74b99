// bench_mlp — the cost of one training step's model work in decopt-train: loss_and_gradient of
// the default 784 → 128 → 10 MLP (fashion/mlp.hpp), and per_sample_gradients (what DP-PSAC
// pays on top). Items processed = samples, so the rate reads as samples per second; bytes
// processed = the batch's input floats × 4, per the project's convention, beside BM_Memcpy.
// Inputs: uniform pixel-like values and random labels at He-initialised weights. The MLP's work is
// dense (matrix products, a branch-free ReLU and softmax), so its cost does not depend on the
// values — unlike the optimizer's coder, whose cost does (training_like_inputs.hpp).
#include <benchmark/benchmark.h>

#include <vector>

#include "fashion/mlp.hpp"
#include "memcpy_baseline.hpp"

namespace {

using decopt::examples::kDefaultHidden;
using decopt::examples::Mlp;

struct Fixture {
  Mlp mlp{784, kDefaultHidden, 10};
  std::vector<float> params;
  std::vector<float> grad;
  Eigen::MatrixXf x;
  std::vector<std::uint8_t> labels;

  explicit Fixture(int batch) : params(mlp.parameter_count()), grad(mlp.parameter_count()), x(784, batch) {
    decopt::Rng rng(1);
    mlp.initialize(params, rng);
    for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform_float();  // pixel-like inputs
    labels.resize(std::size_t(batch));
    for (auto& y : labels) y = static_cast<std::uint8_t>(rng.below(10));
  }
};

void report(benchmark::State& state, int batch) {
  state.SetItemsProcessed(state.iterations() * batch);
  state.SetBytesProcessed(state.iterations() * batch * 784 * std::int64_t(sizeof(float)));
}

void BM_MlpLossAndGradient(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  Fixture f(batch);
  f.mlp.loss_and_gradient(f.params, f.x, f.labels, f.grad);  // size the workspace outside the loop
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.mlp.loss_and_gradient(f.params, f.x, f.labels, f.grad));
    benchmark::ClobberMemory();
  }
  report(state, batch);
}
BENCHMARK(BM_MlpLossAndGradient)->Arg(32)->Arg(128)->Unit(benchmark::kMicrosecond);

void BM_MlpPerSampleGradients(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  Fixture f(batch);
  Eigen::MatrixXf out(Eigen::Index(f.mlp.parameter_count()), batch);
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.mlp.per_sample_gradients(f.params, f.x, f.labels, out));
    benchmark::ClobberMemory();
  }
  report(state, batch);
}
BENCHMARK(BM_MlpPerSampleGradients)->Arg(32)->Unit(benchmark::kMicrosecond);

void BM_MlpEvaluate(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  Fixture f(batch);
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.mlp.evaluate(f.params, f.x, f.labels));
  }
  report(state, batch);
}
BENCHMARK(BM_MlpEvaluate)->Arg(1024)->Unit(benchmark::kMicrosecond);

}  // namespace
