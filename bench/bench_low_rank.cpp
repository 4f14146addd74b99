// bench/bench_low_rank.cpp — PowerSGD (decopt/compress/power_sgd.hpp) encode and decode_add of a
// 1024 × 1024 matrix at ranks 1, 2, 4, and PermK on 8 nodes, beside BM_Memcpy at 2^20 floats in
// the same run (issue 16, item 1: the PowerSGD encode must cost at most PyTorch 1.13's
// powerSGD_hook core with OpenBLAS on this machine, ≈ 2 ms ≈ 8.5× memcpy of 2^20 floats).
//
// The matrix is a residual as in training: the gradient of bench/training_like_inputs.hpp's noisy
// quadratic at a node's starting model (spread models and mini-batch noise), not a constant.
// Encode is one power iteration (M Q, Gram–Schmidt, Mᵀ P) plus the reconstruction P Qᵀ written
// into q (the optimizer's x̂ update needs it; PyTorch's hook computes it too, after the all-reduce).
#include "memcpy_baseline.hpp"
#include "training_like_inputs.hpp"

#include <decopt/compress/compress.hpp>

#include <cstdint>
#include <vector>

namespace {

using namespace decopt;

constexpr std::size_t kSide = 1024;

const std::vector<float>& training_like_matrix() {
  static const std::vector<float> residual = [] {
    bench::NoisyQuadratic problem(kSide * kSide, 1, 2019);
    const std::vector<float> x = problem.start(0);
    std::vector<float> g(x.size());
    problem(0, x, g);
    return g;
  }();
  return residual;
}

PowerSGD matrix_compressor(int rank) {
  PowerSGD c(rank);
  const MatrixBlock block{0, kSide, kSide};
  c.set_matrix_blocks(std::span(&block, 1));
  c.bind_node(0, 8, 1);
  return c;
}

void report(benchmark::State& state, std::size_t message_bytes) {
  const std::size_t n = kSide * kSide;
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(float)));
  state.counters["bits_per_element"] = 8.0 * static_cast<double>(message_bytes) / static_cast<double>(n);
}

/// Times encoding the training-like matrix with `c`, one message per iteration.
template <class C>
void time_encode(benchmark::State& state, C& c) {
  const auto& v = training_like_matrix();
  Rng rng(1);
  std::vector<float> q(v.size());
  std::vector<std::byte> msg;
  for (auto _ : state) {
    msg.clear();
    c.encode(v, rng, msg, q);
    benchmark::DoNotOptimize(msg.data());
    benchmark::ClobberMemory();
  }
  report(state, msg.size());
}

/// Times `receiver` adding (weight 0.5) the message `sender` encodes from the training-like matrix.
template <class C>
void time_decode_add(benchmark::State& state, C& sender, const C& receiver) {
  const auto& v = training_like_matrix();
  Rng rng(1);
  std::vector<float> q(v.size()), acc(v.size(), 0.0f);
  std::vector<std::byte> msg;
  sender.encode(v, rng, msg, q);
  for (auto _ : state) {
    receiver.decode_add(msg, 0.5f, acc);
    benchmark::DoNotOptimize(acc.data());
    benchmark::ClobberMemory();
  }
  report(state, msg.size());
}

void BM_PowerSGDEncode(benchmark::State& state) {
  PowerSGD c = matrix_compressor(static_cast<int>(state.range(0)));
  time_encode(state, c);
}
BENCHMARK(BM_PowerSGDEncode)->Arg(1)->Arg(2)->Arg(4)->Unit(benchmark::kMillisecond);

void BM_PowerSGDDecodeAdd(benchmark::State& state) {
  PowerSGD c = matrix_compressor(static_cast<int>(state.range(0)));
  time_decode_add(state, c, c);
}
BENCHMARK(BM_PowerSGDDecodeAdd)->Arg(1)->Arg(2)->Arg(4)->Unit(benchmark::kMillisecond);

// PermK, node 3 of 8: a Fisher–Yates prefix over the d coordinates, then d/8 values.
void BM_PermKEncode(benchmark::State& state) {
  PermK c;
  c.bind_node(3, 8, 1);
  time_encode(state, c);
}
BENCHMARK(BM_PermKEncode)->Unit(benchmark::kMillisecond);

void BM_PermKDecodeAdd(benchmark::State& state) {
  PermK sender, receiver;
  sender.bind_node(3, 8, 1);
  receiver.bind_node(0, 8, 1);
  time_decode_add(state, sender, receiver);
}
BENCHMARK(BM_PermKDecodeAdd)->Unit(benchmark::kMillisecond);

}  // namespace
