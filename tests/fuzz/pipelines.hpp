// The compressor pipelines the fuzz targets and the corpus generator cover: every sparsifier,
// quantizer and coder family, receivers with the most levels, bucketed dithering (float32 and
// float16 scales) and half-precision values (float16 and bfloat16, both roundings, through
// every sparsifier family). kPipelines of them; with_pipeline(k, f) calls f(compressor).
#pragma once

#include <decopt/decopt.hpp>

#include "../compress/all_pipelines.hpp"  // decopt::test::bucketed

#include <vector>

namespace decopt::fuzz {

inline constexpr int kPipelines = 20;

template <class F>
void with_pipeline(int k, F&& f) {
  const DitheredQuantizer dithered{4, Norm::L2};
  const DitheredQuantizer natural{8, Norm::Linf, true};
  const DitheredQuantizer widest{DitheredQuantizer::max_levels, Norm::Linf};
  switch (k % kPipelines) {
    case 0: f(Compressor<Dense, Identity, RawCoder>{}); break;
    case 1: f(Compressor<Dense, DitheredQuantizer, RawCoder>({}, dithered, {})); break;
    case 2: f(Compressor<Dense, DitheredQuantizer, EliasCoder>({}, natural, {})); break;
    case 3: f(Compressor<Dense, DitheredQuantizer, VectorSourceCoder>({}, dithered, {})); break;
    case 4: f(Compressor<Dense, Sign, VectorSourceCoder>{}); break;
    case 5: f(Compressor<TopK, Identity, EliasCoder>(TopK{0.1}, {}, {})); break;
    case 6: f(Compressor<TopK, DitheredQuantizer, VectorSourceCoder>(TopK{0.2}, natural, {})); break;
    case 7: f(Compressor<RandomK, Identity, RawCoder>(RandomK{0.1, true}, {}, {})); break;
    case 8: f(Compressor<RandomK, DitheredQuantizer, EliasCoder>(RandomK{0.3}, dithered, {})); break;
    case 9: f(Compressor<RandTopK, Sign, RawCoder>(RandTopK{0.1, 2.0}, {}, {})); break;
    case 10: f(Compressor<RandTopK, DitheredQuantizer, VectorSourceCoder>(RandTopK{0.05, 4.0}, dithered, {})); break;
    case 11: f(Compressor<Dense, Identity, VectorSourceCoder>{}); break;
    // the most levels a receiver may have: up to 65534 symbols in a message
    case 12: f(Compressor<Dense, DitheredQuantizer, VectorSourceCoder>({}, widest, {})); break;
    case 13: f(Compressor<TopK, DitheredQuantizer, EliasCoder>(TopK{0.5}, widest, {})); break;
    // bucketed dithering: a σ per 16 values as float32, per 8 as float16
    case 14: f(Compressor<Dense, DitheredQuantizer, VectorSourceCoder>({}, test::bucketed(16, ScaleFormat::Float32), {})); break;
    case 15: f(Compressor<Dense, DitheredQuantizer, RawCoder>({}, test::bucketed(8, ScaleFormat::Float16), {})); break;
    // half-precision values
    case 16: f(Compressor<Dense, HalfFloat, RawCoder>({}, {HalfFormat::Float16, HalfRounding::NearestEven}, {})); break;
    case 17: f(Compressor<TopK, HalfFloat, VectorSourceCoder>(TopK{0.1}, {HalfFormat::BFloat16, HalfRounding::Stochastic}, {})); break;
    case 18: f(Compressor<RandomK, HalfFloat, EliasCoder>(RandomK{0.2, true}, {HalfFormat::Float16, HalfRounding::Stochastic}, {})); break;
    default: f(Compressor<RandTopK, HalfFloat, RawCoder>(RandTopK{0.1, 2.0}, {HalfFormat::BFloat16, HalfRounding::NearestEven}, {})); break;
  }
}

/// Dimensions the targets decode into (the message carries its own; a mismatch must throw).
inline constexpr std::size_t kDimensions[] = {1, 17, 1000};

/// The top-level compressors (not Compressor<S, Q, C>): PowerSGD over matrix blocks that fit d,
/// and PermK as node 1 of 4. kTopLevel of them; with_top_level(k, d, f) calls f(compressor), set
/// up as the optimizer would (set_matrix_blocks, bind_node).
inline constexpr int kTopLevel = 2;

/// Matrix blocks for dimension d: a 20 × 30 and a 10 × 10 matrix with a gap (d = 1000), a 4 × 4
/// (d = 17), a 1 × 1 that no rank shrinks (d = 1).
inline std::vector<MatrixBlock> fuzz_matrix_blocks(std::size_t d) {
  if (d >= 1000) return {{0, 20, 30}, {700, 10, 10}};
  if (d >= 17) return {{1, 4, 4}};
  return {{0, 1, 1}};
}

template <class F>
void with_top_level(int k, std::size_t d, F&& f) {
  if (k % kTopLevel == 0) {
    PowerSGD c(d >= 1000 ? 2 : 1);
    c.set_matrix_blocks(fuzz_matrix_blocks(d));
    c.bind_node(1, 4, 2024);
    f(c);
  } else {
    PermK c;
    c.bind_node(1, 4, 2024);
    f(c);
  }
}

}  // namespace decopt::fuzz
