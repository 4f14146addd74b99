// The compressor pipelines the fuzz targets and the corpus generator cover: every sparsifier,
// quantizer and coder family, and receivers with the most levels. kPipelines of them;
// with_pipeline(k, f) calls f(compressor).
#pragma once

#include <decopt/decopt.hpp>

namespace decopt::fuzz {

inline constexpr int kPipelines = 14;

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
    default: f(Compressor<TopK, DitheredQuantizer, EliasCoder>(TopK{0.5}, widest, {})); break;
  }
}

/// Dimensions the targets decode into (the message carries its own; a mismatch must throw).
inline constexpr std::size_t kDimensions[] = {1, 17, 1000};

}  // namespace decopt::fuzz
