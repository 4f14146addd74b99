// libFuzzer target: arbitrary bytes into decode_add of every pipeline and of the top-level
// compressors (PowerSGD, PermK; the first byte selects one and the dimension). The input's last four
// bytes are first replaced by the checksum of the rest, so that mutations reach the decoders
// behind it (as a forged message would); the only acceptable outcomes are then a DecodeError or
// a finite accumulator — anything else (a crash, a read past the end under ASan, UB under UBSan,
// a NaN/∞ in the output) is a bug. The same bytes with a wrong checksum must be refused.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "pipelines.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  constexpr int kAll = decopt::fuzz::kPipelines + decopt::fuzz::kTopLevel;
  const int pipeline = data[0] % kAll;
  const std::size_t d = decopt::fuzz::kDimensions[(data[0] / kAll) % 3];
  std::vector<std::byte> message(reinterpret_cast<const std::byte*>(data + 1), reinterpret_cast<const std::byte*>(data + size));
  const std::size_t body = message.size() >= decopt::message::checksum_bytes ? message.size() - decopt::message::checksum_bytes : 0;
  if (message.size() >= decopt::message::checksum_bytes)
    decopt::message::store_checksum(message.data() + body, decopt::crc32c(std::span<const std::byte>(message).first(body)));
  auto check = [&](const auto& compressor) {
    std::vector<float> acc(d, 0.25f);
    try {
      compressor.decode_add(message, 0.5f, std::span<float>(acc));
      for (float v : acc)
        if (!std::isfinite(v)) std::abort();  // accepted bytes must decode to finite values
    } catch (const decopt::DecodeError&) {
      // refused: fine
    }
    if (message.size() < decopt::message::checksum_bytes) return;
    message[body] ^= std::byte{1};  // a wrong checksum: refused, whatever the rest
    try {
      compressor.decode_add(message, 0.5f, std::span<float>(acc));
      std::abort();
    } catch (const decopt::DecodeError&) {
    }
  };
  if (pipeline < decopt::fuzz::kPipelines)
    decopt::fuzz::with_pipeline(pipeline, check);
  else
    decopt::fuzz::with_top_level(pipeline - decopt::fuzz::kPipelines, d, check);
  return 0;
}
