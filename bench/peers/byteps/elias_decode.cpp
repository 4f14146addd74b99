// decopt's Elias decode beside BytePS's, same machine, same run, same input.
//
// BytePS (github.com/bytedance/byteps, byteps/common/compressor/impl/dithering.cc) ships linear
// dithering with Elias-delta coding of the gaps and levels (QSGD, Alistarh et al. 2017); its
// Decompress zero-fills the output and writes each decoded value. decopt's counterpart is
// Compressor<Dense, DitheredQuantizer{4, norm}, EliasCoder>::decode_add (adds each value into the
// accumulator). Both decode a message of the same N(0, 1) input at s = 4, normalised by ℓ2 (few
// non-zeros) and by ℓ∞ (most coordinates non-zero: the decoder's own speed). ABBA order, with
// BM_Memcpy at the same sizes first and last. Built by run.sh against a BytePS checkout; nothing
// of BytePS is kept in this repository.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include <decopt/compress/compress.hpp>

#include "byteps/common/compressor/impl/dithering.h"
#include "memcpy_baseline.hpp"  // BM_Memcpy on standard_sizes, registered here: first in the run

namespace {

namespace bps = byteps::common::compressor;

const std::vector<float>& gaussian(std::size_t n) {
  static std::vector<float> v;
  if (v.size() != n) {
    v.resize(n);
    std::mt19937_64 engine(7);
    std::normal_distribution<float> normal;
    for (auto& x : v) x = normal(engine);
  }
  return v;
}

using decopt::bench::standard_sizes;

// norm: 1 = ℓ2, 0 = ℓ∞ (BytePS's NomalizeType numbering)
template <int norm>
void BM_BytePS_DitheringS4_Decompress(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<float> v(gaussian(n));
  const auto normalize = static_cast<bps::DitheringCompressor::NomalizeType>(norm);
  const auto linear = bps::DitheringCompressor::PartitionType::LINEAR;
  bps::DitheringCompressor encoder(n * 4, byteps::common::BYTEPS_FLOAT32, 4, 1, linear, normalize);
  bps::DitheringCompressor decoder(n * 4, byteps::common::BYTEPS_FLOAT32, 4, 1, linear, normalize);
  const auto compressed = encoder.Compress(bps::tensor_t(v.data(), n * 4, byteps::common::BYTEPS_FLOAT32));
  std::vector<char> msg(compressed.data, compressed.data + compressed.size);
  for (auto _ : state) {
    const auto out = decoder.Decompress(bps::tensor_t(msg.data(), msg.size(), byteps::common::BYTEPS_FLOAT32));
    benchmark::DoNotOptimize(out.data);
    benchmark::ClobberMemory();
  }
  state.counters["bits_per_element"] = static_cast<double>(msg.size()) * 8.0 / static_cast<double>(n);
}

template <int norm>
void BM_decopt_DitheredS4Elias_DecodeAdd(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto& v = gaussian(n);
  decopt::Compressor<decopt::Dense, decopt::DitheredQuantizer, decopt::EliasCoder> pipeline(
      {}, {4, norm == 1 ? decopt::Norm::L2 : decopt::Norm::Linf});
  decopt::Rng rng(1);
  std::vector<float> q(n), acc(n);
  std::vector<std::byte> msg;
  pipeline.encode(v, rng, msg, q);
  for (auto _ : state) {
    pipeline.decode_add(msg, 0.5f, acc);
    benchmark::DoNotOptimize(acc.data());
    benchmark::ClobberMemory();
  }
  state.counters["bits_per_element"] = static_cast<double>(msg.size()) * 8.0 / static_cast<double>(n);
}

}  // namespace

BENCHMARK_TEMPLATE(BM_BytePS_DitheringS4_Decompress, 1)->Apply(standard_sizes)->Name("A/BytePS_l2");
BENCHMARK_TEMPLATE(BM_decopt_DitheredS4Elias_DecodeAdd, 1)->Apply(standard_sizes)->Name("B/decopt_l2");
BENCHMARK_TEMPLATE(BM_BytePS_DitheringS4_Decompress, 0)->Apply(standard_sizes)->Name("A/BytePS_linf");
BENCHMARK_TEMPLATE(BM_decopt_DitheredS4Elias_DecodeAdd, 0)->Apply(standard_sizes)->Name("B/decopt_linf");
BENCHMARK_TEMPLATE(BM_decopt_DitheredS4Elias_DecodeAdd, 0)->Apply(standard_sizes)->Name("B/decopt_linf_again");
BENCHMARK_TEMPLATE(BM_BytePS_DitheringS4_Decompress, 0)->Apply(standard_sizes)->Name("A/BytePS_linf_again");
BENCHMARK_TEMPLATE(BM_decopt_DitheredS4Elias_DecodeAdd, 1)->Apply(standard_sizes)->Name("B/decopt_l2_again");
BENCHMARK_TEMPLATE(BM_BytePS_DitheringS4_Decompress, 1)->Apply(standard_sizes)->Name("A/BytePS_l2_again");
BENCHMARK(decopt::bench::BM_Memcpy)->Apply(standard_sizes)->Name("BM_Memcpy_again");
BENCHMARK_MAIN();
