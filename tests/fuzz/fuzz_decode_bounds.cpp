// libFuzzer target: crafted messages with a valid frame and checksum whose header fields and
// declared counts are chosen by the input (tests/fuzz/forge.hpp): the selected count, the levels
// and options, and for the vector source coder the number of symbols, their counts, Golomb
// parameters and stream lengths (the stream contents are the rest of the input). Every decode
// must end in a DecodeError or a finite accumulator, and allocate at most
// fuzz::decode_allocation_bound: 16 bytes per position, 12 per level of the receiver, 256 KiB
// (tests/fuzz/allocation_meter.hpp counts; libFuzzer's -timeout bounds the time).
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <type_traits>
#include <vector>

#include "allocation_meter.hpp"
#include "forge.hpp"
#include "pipelines.hpp"

namespace {

using namespace decopt;
using decopt::fuzz::Fields;
using decopt::fuzz::VscRank;

constexpr std::size_t kBoundDimensions[] = {1, 17, 1000, 65536};
constexpr std::uint64_t kMaxStreamBytes = std::uint64_t{1} << 22;  // keeps one input's message below ~5 MB

// A rank list chosen by the input, in the encoder's order unless the input says otherwise.
std::vector<VscRank> vsc_ranks(FuzzedDataProvider& in, std::uint64_t n, std::uint64_t s) {
  const std::uint64_t m = in.ConsumeIntegralInRange<std::uint64_t>(0, std::min<std::uint64_t>(2 * s, 65534));
  const int count_mode = in.ConsumeIntegralInRange(0, 3);
  const int golomb_mode = in.ConsumeIntegralInRange(0, 4);
  const int length_mode = in.ConsumeIntegralInRange(0, 3);
  const bool ordered = in.ConsumeBool();
  std::vector<VscRank> ranks;
  std::uint64_t remaining = n, streams = 0;
  for (std::uint64_t r = 0; r < m; ++r) {
    VscRank rank;
    rank.zigzag = ordered ? r + 1 : in.ConsumeIntegralInRange<std::uint64_t>(1, 2 * s + 2);
    switch (count_mode) {
      case 0: rank.count = 1; break;
      case 1: rank.count = std::max<std::uint64_t>(1, n / std::max<std::uint64_t>(1, m)); break;
      case 2: rank.count = std::max<std::uint64_t>(1, remaining / 2); break;
      default: rank.count = in.ConsumeIntegralInRange<std::uint64_t>(1, n + 1); break;
    }
    switch (golomb_mode) {
      case 0: rank.golomb = 1; break;
      case 1: rank.golomb = 2; break;
      case 2:
        rank.golomb = codes::optimal_golomb_parameter(remaining == 0 ? 1.0 : static_cast<double>(rank.count) / static_cast<double>(remaining));
        break;
      case 3: rank.golomb = in.ConsumeIntegralInRange<std::uint64_t>(1, n + 2); break;
      default: rank.golomb = std::uint64_t{1} << 40; break;
    }
    switch (length_mode) {
      case 0: rank.stream_bytes = (rank.count + 7) / 8; break;
      case 1: rank.stream_bytes = rank.count; break;
      case 2: rank.stream_bytes = 0; break;
      default: rank.stream_bytes = in.ConsumeIntegralInRange<std::uint64_t>(0, 4096); break;
    }
    if (streams + rank.stream_bytes > kMaxStreamBytes) break;
    streams += rank.stream_bytes;
    remaining -= std::min(remaining, rank.count);
    ranks.push_back(rank);
  }
  return ranks;
}

// Stream bytes: the rest of the input, repeated (0x01 — a hit — if there is none).
void put_streams(std::vector<std::byte>& out, std::span<const VscRank> ranks, std::span<const std::byte> content) {
  std::uint64_t total = 0;
  for (const VscRank& r : ranks) total += r.stream_bytes;
  fuzz::put_vsc(out, ranks, std::byte{0x01}, std::byte{0x01});
  if (content.empty()) return;
  const std::size_t start = out.size() - static_cast<std::size_t>(total);
  for (std::size_t i = start; i < out.size(); ++i) out[i] = content[(i - start) % content.size()];
}

template <class P>
std::vector<std::byte> craft(const P& receiver, std::size_t d, FuzzedDataProvider& in) {
  using S = typename P::sparsifier_type;
  using Q = typename P::quantizer_type;
  using C = typename P::coder_type;
  Fields f = fuzz::fields_of(receiver, d);
  // each field the receiver's, or what the input says
  if constexpr (!std::is_same_v<S, Dense>) {
    if (in.ConsumeBool()) f.k = in.ConsumeBool() ? d : in.ConsumeIntegral<std::uint64_t>();
  }
  if constexpr (std::is_same_v<S, RandomK>) {
    f.seed = in.ConsumeIntegral<std::uint64_t>();
    if (in.ConsumeBool()) f.unbiased = in.ConsumeIntegral<std::uint8_t>();
  }
  if constexpr (std::is_same_v<Q, DitheredQuantizer>) {
    if (in.ConsumeBool()) f.levels = in.ConsumeBool() ? DitheredQuantizer::max_levels : in.ConsumeIntegralInRange<std::uint64_t>(0, 1u << 20);
    if (in.ConsumeBool()) f.options = in.ConsumeIntegral<std::uint8_t>();
  }
  if constexpr (std::is_same_v<Q, HalfFloat>) {
    if (in.ConsumeBool()) f.levels = in.ConsumeIntegralInRange<std::uint64_t>(0, 0xFFFF);
    if (in.ConsumeBool()) f.options = in.ConsumeIntegral<std::uint8_t>();
  }
  if constexpr (!std::is_same_v<Q, Identity> && !std::is_same_v<Q, HalfFloat>) {
    if (in.ConsumeBool()) f.scale = in.ConsumeFloatingPoint<float>();
  }
  std::vector<std::byte> msg = fuzz::header<P>(f);
  const std::uint64_t k = std::min<std::uint64_t>(f.k, d);
  const bool positions = S::sparse && !std::is_same_v<S, RandomK>;
  const std::uint64_t n = std::is_same_v<S, RandomK> ? k : d;  // the coded vector's length
  std::uint64_t s = 1;
  if constexpr (std::is_same_v<Q, DitheredQuantizer>) s = std::clamp<std::uint64_t>(f.levels, 1, DitheredQuantizer::max_levels);
  if constexpr (std::is_same_v<Q, HalfFloat>) s = std::clamp<std::uint64_t>(f.levels, 1, 0x7F7F);
  const auto tail = in.ConsumeRemainingBytes<std::uint8_t>();
  const std::span<const std::byte> rest(reinterpret_cast<const std::byte*>(tail.data()), tail.size());
  if constexpr (Q::float_values) {
    if (positions) {
      if constexpr (std::is_same_v<C, VectorSourceCoder>) {
        const VscRank all{1, std::max<std::uint64_t>(1, k), 1, k / 8 + 1};
        put_streams(msg, std::span(&all, 1), rest);
      } else if constexpr (std::is_same_v<C, EliasCoder>) {
        fuzz::put_elias_positions(msg, k);
      } else {
        BitWriter w(msg);
        w.write(1, 1);
        fuzz::put_fixed(w, n, 1, 1, 1);
        w.finish();
      }
    }
    fuzz::put_floats(msg, positions ? k : n, 1.0f, rest.empty() ? 1.0f : static_cast<float>(std::to_integer<int>(rest[0])));
  } else if constexpr (std::is_same_v<C, VectorSourceCoder>) {
    FuzzedDataProvider ranks_in(tail.data(), tail.size());
    const auto ranks = vsc_ranks(ranks_in, n, s);
    put_streams(msg, ranks, rest);
  } else if constexpr (std::is_same_v<C, EliasCoder>) {
    FuzzedDataProvider counts(tail.data(), tail.size());
    fuzz::put_elias_levels(msg, counts.ConsumeIntegralInRange<std::uint64_t>(0, n + 1), counts.ConsumeIntegralInRange<std::uint64_t>(1, s + 1));
  } else {
    BitWriter w(msg);
    if (positions) {
      w.write(1, 1);
      fuzz::put_fixed(w, n, 1, 1, 1);
    }
    const int width = RawCoder::level_bits(static_cast<int>(s));
    fuzz::put_fixed(w, positions ? k : n, width, s + 1, rest.empty() ? s : std::to_integer<std::uint64_t>(rest[0]));
    w.finish();
  }
  return fuzz::seal(std::move(msg));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const int pipeline = in.ConsumeIntegralInRange(0, decopt::fuzz::kPipelines - 1);
  const std::size_t d = kBoundDimensions[in.ConsumeIntegralInRange<std::size_t>(0, std::size(kBoundDimensions) - 1)];
  decopt::fuzz::with_pipeline(pipeline, [&](const auto& receiver) {
    const std::vector<std::byte> msg = craft(receiver, d, in);
    std::vector<float> acc(d, 0.25f);
    const long long bound = decopt::fuzz::decode_allocation_bound(receiver, d);
    bool accepted = false, bomb = false;
    decopt::fuzz::meter::start(bound);
    try {
      receiver.decode_add(msg, 0.5f, std::span<float>(acc));
      accepted = true;
    } catch (const decopt::DecodeError&) {
    } catch (const std::bad_alloc&) {
      bomb = true;
    }
    const auto reading = decopt::fuzz::meter::stop();
    if (bomb || reading.peak > bound) {
      std::fprintf(stderr, "decode of a %zu-byte message for d = %zu allocated more than %lld bytes\n", msg.size(), d, bound);
      std::abort();
    }
    if (accepted)
      for (float v : acc)
        if (!std::isfinite(v)) std::abort();
  });
  return 0;
}
