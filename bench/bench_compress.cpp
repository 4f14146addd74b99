// bench/bench_compress.cpp — encode and decode_add throughput of the main compression pipelines
// on Gaussian and Laplacian inputs, beside BM_Memcpy on the same sizes, and BM_Crc32c, the
// message checksum alone over as many bytes as the floats (what a separate pass over a dense
// raw float32 message would cost), and BM_Checksum, the checksum alone over each pipeline's
// message (encode and decode include their checksum). Counters:
// bits_per_element (message size) and entropy_bits_per_element (empirical zeroth-order entropy
// of the reconstructed symbols, the n·H0 bound a zeroth-order coder can reach).
#include "memcpy_baseline.hpp"

#include <decopt/compress/compress.hpp>
#include <decopt/core/crc32c.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

namespace {

using namespace decopt;

enum class Input { Gaussian, Laplacian };

const std::vector<float>& input(Input kind, std::size_t n) {
  static std::map<std::pair<int, std::size_t>, std::vector<float>> cache;
  auto& v = cache[{static_cast<int>(kind), n}];
  if (v.empty()) {
    v.resize(n);
    Rng rng(n + static_cast<std::size_t>(kind));
    if (kind == Input::Gaussian) {
      rng.fill_normal(std::span<float>(v), 1.0);
    } else {
      for (auto& x : v) x = static_cast<float>((rng.next() & 1 ? 1.0 : -1.0) * -std::log(1.0 - rng.uniform()) / std::sqrt(2.0));
    }
  }
  return v;
}

double entropy_bits_per_element(const std::vector<float>& q) {
  std::vector<std::uint32_t> bits(q.size());
  std::memcpy(bits.data(), q.data(), q.size() * 4);
  std::sort(bits.begin(), bits.end());
  double h = 0.0;
  const double n = static_cast<double>(q.size());
  for (std::size_t i = 0; i < bits.size();) {
    std::size_t j = i;
    while (j < bits.size() && bits[j] == bits[i]) ++j;
    const double p = static_cast<double>(j - i) / n;
    h -= p * std::log2(p);
    i = j;
  }
  return h;
}

void BM_Crc32c(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto& v = input(Input::Gaussian, n);
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(v.data()), n * sizeof(float));
  for (auto _ : state) {
    std::uint32_t crc = crc32c(bytes);
    benchmark::DoNotOptimize(crc);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(float)));
}
BENCHMARK(BM_Crc32c)->Apply(decopt::bench::standard_sizes);

template <class P>
void BM_Encode(benchmark::State& state, P pipeline, Input kind) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto& v = input(kind, n);
  std::vector<float> q(n);
  std::vector<std::byte> msg;
  msg.reserve(n * 5);
  Rng rng(1);
  for (auto _ : state) {
    msg.clear();
    pipeline.encode(v, rng, msg, q);
    benchmark::DoNotOptimize(msg.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(float)));
  state.counters["bits_per_element"] = static_cast<double>(msg.size()) * 8.0 / static_cast<double>(n);
  state.counters["entropy_bits_per_element"] = entropy_bits_per_element(q);
}

template <class P>
void BM_DecodeAdd(benchmark::State& state, P pipeline, Input kind) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto& v = input(kind, n);
  std::vector<float> q(n), acc(n, 0.0f);
  std::vector<std::byte> msg;
  Rng rng(1);
  pipeline.encode(v, rng, msg, q);
  for (auto _ : state) {
    pipeline.decode_add(msg, 0.5f, acc);
    benchmark::DoNotOptimize(acc.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(float)));
  state.counters["bits_per_element"] = static_cast<double>(msg.size()) * 8.0 / static_cast<double>(n);
  state.counters["entropy_bits_per_element"] = entropy_bits_per_element(q);
}

// The checksum alone over a pipeline's message (its share of that pipeline's encode and decode).
template <class P>
void BM_Checksum(benchmark::State& state, P pipeline, Input kind) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto& v = input(kind, n);
  std::vector<float> q(n);
  std::vector<std::byte> msg;
  Rng rng(1);
  pipeline.encode(v, rng, msg, q);
  for (auto _ : state) {
    std::uint32_t crc = crc32c(msg);
    benchmark::DoNotOptimize(crc);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * msg.size()));
  state.counters["bits_per_element"] = static_cast<double>(msg.size()) * 8.0 / static_cast<double>(n);
}

// The rows of issue 16's speed table (multiples of BM_Memcpy of the same size in the same run),
// each at 2^20 and 10·2^20 floats on Gaussian N(0, 1) input (and Laplacian of unit variance):
//   natural spacing, ℓ2, s = 4, encode   BM_Encode/natural_s4_l2_vsc_gauss
//   RandomK 1% encode (only k touched)    BM_EncodeKept/randomk1_identity_vsc_gauss
//   RandomK 1% decode_add                 BM_DecodeAdd/randomk1_identity_vsc_gauss (and _unbiased_identity_raw)
//   Sign (scaled) encode                  BM_EncodeKept/sign_vsc_gauss (the message alone),
//                                         BM_Encode/sign_vsc_gauss, BM_Encode/sign_raw_gauss (and q)
//   TopK 1% decode_add                    BM_DecodeAdd/topk1_identity_vsc_gauss
//   EliasCoder decode                     BM_DecodeAdd/*_elias_gauss
using DitheredVsc = Compressor<Dense, DitheredQuantizer, VectorSourceCoder>;
using DitheredElias = Compressor<Dense, DitheredQuantizer, EliasCoder>;
using DitheredRaw = Compressor<Dense, DitheredQuantizer, RawCoder>;
using TopKVsc = Compressor<TopK, Identity, VectorSourceCoder>;
using TopKDitheredVsc = Compressor<TopK, DitheredQuantizer, VectorSourceCoder>;
using RandomKVsc = Compressor<RandomK, Identity, VectorSourceCoder>;
using DenseIdentity = Compressor<Dense, Identity, RawCoder>;

#define DECOPT_BENCH_PAIR(label, pipeline)                                                                    \
  BENCHMARK_CAPTURE(BM_Encode, label##_gauss, pipeline, Input::Gaussian)->Apply(decopt::bench::standard_sizes);    \
  BENCHMARK_CAPTURE(BM_DecodeAdd, label##_gauss, pipeline, Input::Gaussian)->Apply(decopt::bench::standard_sizes); \
  BENCHMARK_CAPTURE(BM_Encode, label##_laplace, pipeline, Input::Laplacian)->Apply(decopt::bench::standard_sizes); \
  BENCHMARK_CAPTURE(BM_DecodeAdd, label##_laplace, pipeline, Input::Laplacian)->Apply(decopt::bench::standard_sizes); \
  BENCHMARK_CAPTURE(BM_Checksum, label##_gauss, pipeline, Input::Gaussian)->Apply(decopt::bench::standard_sizes)

DECOPT_BENCH_PAIR(dithered_s4_l2_vsc, DitheredVsc({}, {4, Norm::L2}));
DECOPT_BENCH_PAIR(dithered_s4_linf_vsc, DitheredVsc({}, {4, Norm::Linf}));
DECOPT_BENCH_PAIR(dithered_s16_l2_vsc, DitheredVsc({}, {16, Norm::L2}));
DECOPT_BENCH_PAIR(dithered_s16_linf_vsc, DitheredVsc({}, {16, Norm::Linf}));
DECOPT_BENCH_PAIR(dithered_s4_l2_elias, DitheredElias({}, {4, Norm::L2}));
DECOPT_BENCH_PAIR(dithered_s4_linf_elias, DitheredElias({}, {4, Norm::Linf}));
DECOPT_BENCH_PAIR(dithered_s16_l2_elias, DitheredElias({}, {16, Norm::L2}));
DECOPT_BENCH_PAIR(dithered_s16_linf_elias, DitheredElias({}, {16, Norm::Linf}));
DECOPT_BENCH_PAIR(dithered_s4_linf_raw, DitheredRaw({}, {4, Norm::Linf}));
DECOPT_BENCH_PAIR(natural_s8_linf_vsc, DitheredVsc({}, {8, Norm::Linf, true}));
// Natural spacing, ℓ2, s = 4 on the spread inputs above (Gaussian N(0, 1) and Laplacian of unit
// variance): the vectorised float-lane kernel (issue 16, row 1: at most 30× BM_Memcpy at 2^20
// floats and 8× at 10·2^20 for the Gaussian encode).
DECOPT_BENCH_PAIR(natural_s4_l2_vsc, DitheredVsc({}, {4, Norm::L2, true}));
DECOPT_BENCH_PAIR(topk1_identity_vsc, TopKVsc({0.01}, {}));
DECOPT_BENCH_PAIR(topk1_dithered_s16_vsc, TopKDitheredVsc({0.01}, {16, Norm::Linf}));
DECOPT_BENCH_PAIR(randomk1_identity_vsc, RandomKVsc({0.01}, {}));
DECOPT_BENCH_PAIR(dense_identity_raw, DenseIdentity());

// ---- scale groups (decopt/compress/scale_blocks.hpp), s = 4, ℓ2, Gaussian input ----

// `count` layer-like blocks of decreasing size covering 15/16 of [0, n); the rest (a gap before
// each block) shares one σ.
std::vector<ScaleBlock> layers(std::size_t n, std::size_t count) {
  std::vector<ScaleBlock> blocks;
  const std::size_t gap = n / 16 / count;
  std::size_t at = 0, left = n - n / 16;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t size = i + 1 == count ? left : left / 2;
    at += gap;
    blocks.push_back({at, size});
    at += size;
    left -= size;
  }
  return blocks;
}

template <class P>
void BM_EncodeLayerwise(benchmark::State& state, P pipeline, Input kind, std::size_t count) {
  pipeline.set_scale_blocks(layers(static_cast<std::size_t>(state.range(0)), count));
  BM_Encode(state, std::move(pipeline), kind);
}
template <class P>
void BM_DecodeAddLayerwise(benchmark::State& state, P pipeline, Input kind, std::size_t count) {
  pipeline.set_scale_blocks(layers(static_cast<std::size_t>(state.range(0)), count));
  BM_DecodeAdd(state, std::move(pipeline), kind);
}

DitheredQuantizer bucketed(std::size_t b, ScaleFormat format) {
  DitheredQuantizer q{4, Norm::L2};
  q.bucket = b;
  q.scale_format = format;
  return q;
}

#define DECOPT_BENCH_LAYERWISE(label, pipeline)                                                                      \
  BENCHMARK_CAPTURE(BM_EncodeLayerwise, label##_gauss, pipeline, Input::Gaussian, 8)                              \
      ->Apply(decopt::bench::standard_sizes);                                                                       \
  BENCHMARK_CAPTURE(BM_DecodeAddLayerwise, label##_gauss, pipeline, Input::Gaussian, 8)->Apply(decopt::bench::standard_sizes)
#define DECOPT_BENCH_GAUSS(label, pipeline)                                                                       \
  BENCHMARK_CAPTURE(BM_Encode, label##_gauss, pipeline, Input::Gaussian)->Apply(decopt::bench::standard_sizes); \
  BENCHMARK_CAPTURE(BM_DecodeAdd, label##_gauss, pipeline, Input::Gaussian)->Apply(decopt::bench::standard_sizes)

DECOPT_BENCH_LAYERWISE(layerwise8_s4_l2_vsc, DitheredVsc({}, {4, Norm::L2}));
DECOPT_BENCH_LAYERWISE(layerwise8_s4_l2_raw, DitheredRaw({}, {4, Norm::L2}));
DECOPT_BENCH_GAUSS(bucket128_f32_s4_l2_vsc, DitheredVsc({}, bucketed(128, ScaleFormat::Float32)));
DECOPT_BENCH_GAUSS(bucket128_f16_s4_l2_vsc, DitheredVsc({}, bucketed(128, ScaleFormat::Float16)));
DECOPT_BENCH_GAUSS(bucket512_f32_s4_l2_vsc, DitheredVsc({}, bucketed(512, ScaleFormat::Float32)));
DECOPT_BENCH_GAUSS(bucket512_f16_s4_l2_vsc, DitheredVsc({}, bucketed(512, ScaleFormat::Float16)));
DECOPT_BENCH_GAUSS(bucket128_f32_s4_l2_raw, DitheredRaw({}, bucketed(128, ScaleFormat::Float32)));
DECOPT_BENCH_GAUSS(bucket128_f16_s4_l2_raw, DitheredRaw({}, bucketed(128, ScaleFormat::Float16)));
DECOPT_BENCH_GAUSS(bucket512_f32_s4_l2_raw, DitheredRaw({}, bucketed(512, ScaleFormat::Float32)));
DECOPT_BENCH_GAUSS(bucket512_f16_s4_l2_raw, DitheredRaw({}, bucketed(512, ScaleFormat::Float16)));

// ---- issue 16 (one block): the sparse paths that touch only the k kept values, scaled sign, Elias ----
// The three-argument encode: q stays in the compressor (reconstruction()), so a sparse encode
// writes nothing of size d — beside BM_Encode, whose dense q costs an O(d) zero fill.
template <class P>
void BM_EncodeKept(benchmark::State& state, P pipeline, Input kind) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto& v = input(kind, n);
  std::vector<std::byte> msg;
  msg.reserve(n * 5);
  Rng rng(1);
  for (auto _ : state) {
    msg.clear();
    pipeline.encode(v, rng, msg);
    benchmark::DoNotOptimize(msg.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(float)));
  state.counters["bits_per_element"] = static_cast<double>(msg.size()) * 8.0 / static_cast<double>(n);
}
BENCHMARK_CAPTURE(BM_EncodeKept, randomk1_identity_vsc_gauss, RandomKVsc({0.01}, {}), Input::Gaussian)->Apply(decopt::bench::standard_sizes);
BENCHMARK_CAPTURE(BM_EncodeKept, topk1_identity_vsc_gauss, TopKVsc({0.01}, {}), Input::Gaussian)->Apply(decopt::bench::standard_sizes);

using SignRaw = Compressor<Dense, Sign, RawCoder>;
using SignElias = Compressor<Dense, Sign, EliasCoder>;
using SignVsc = Compressor<Dense, Sign, VectorSourceCoder>;
using RandomKRaw = Compressor<RandomK, Identity, RawCoder>;
using TopKElias = Compressor<TopK, Identity, EliasCoder>;
// Sign + VSC's three-argument encode writes the message alone (q from the masks only when
// reconstruction() is asked for): the operation BytePS's onebit Compress and GRACE's sign compress time.
BENCHMARK_CAPTURE(BM_EncodeKept, sign_vsc_gauss, SignVsc(), Input::Gaussian)->Apply(decopt::bench::standard_sizes);
DECOPT_BENCH_PAIR(sign_raw, SignRaw());
DECOPT_BENCH_PAIR(sign_elias, SignElias());
DECOPT_BENCH_PAIR(sign_vsc, SignVsc());
DECOPT_BENCH_PAIR(randomk1_unbiased_identity_raw, RandomKRaw({0.01, true}, {}));
DECOPT_BENCH_PAIR(topk1_identity_elias, TopKElias({0.01}, {}));

// ---- issue 16 item 3: half-precision values (16 bits a value with RawCoder) ----
using HalfRaw = Compressor<Dense, HalfFloat, RawCoder>;
using TopKHalfRaw = Compressor<TopK, HalfFloat, RawCoder>;
DECOPT_BENCH_PAIR(fp16_nearest_raw, HalfRaw({}, {HalfFormat::Float16, HalfRounding::NearestEven}));
DECOPT_BENCH_PAIR(fp16_stochastic_raw, HalfRaw({}, {HalfFormat::Float16, HalfRounding::Stochastic}));
DECOPT_BENCH_PAIR(bf16_nearest_raw, HalfRaw({}, {HalfFormat::BFloat16, HalfRounding::NearestEven}));
DECOPT_BENCH_PAIR(bf16_stochastic_raw, HalfRaw({}, {HalfFormat::BFloat16, HalfRounding::Stochastic}));
DECOPT_BENCH_PAIR(topk1_fp16_raw, TopKHalfRaw({0.01}, {HalfFormat::Float16, HalfRounding::NearestEven}));

}  // namespace
