// libFuzzer target: arbitrary bytes into decode_add of every pipeline. The only acceptable
// outcomes are a DecodeError or a finite accumulator; anything else (a crash, a read past the
// end under ASan, UB under UBSan, a NaN/∞ in the output) is a bug.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "pipelines.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const int pipeline = data[0] % decopt::fuzz::kPipelines;
  const std::size_t d = decopt::fuzz::kDimensions[(data[0] / decopt::fuzz::kPipelines) % 3];
  const std::span<const std::byte> message(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  decopt::fuzz::with_pipeline(pipeline, [&](const auto& compressor) {
    std::vector<float> acc(d, 0.25f);
    try {
      compressor.decode_add(message, 0.5f, std::span<float>(acc));
    } catch (const decopt::DecodeError&) {
      return;  // refused: fine
    }
    for (float v : acc)
      if (!std::isfinite(v)) std::abort();  // accepted bytes must decode to finite values
  });
  return 0;
}
