// The pipelines the compress tests run over: every Sparsifier × Quantizer × Coder, as a tuple of
// Compressor types for TEMPLATE_LIST_TEST_CASE, and helpers to configure them and make inputs.
#pragma once

#include <decopt/compress/compress.hpp>

#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace decopt::test {

// ---- every Sparsifier × Quantizer × Coder as a std::tuple of Compressor types ----
using Sparsifiers = std::tuple<Dense, TopK, RandomK, RandTopK>;
using Quantizers = std::tuple<Identity, DitheredQuantizer, Sign>;
using Coders = std::tuple<RawCoder, EliasCoder, VectorSourceCoder>;

template <class S, class Q, class CoderTuple>
struct WithCoders;
template <class S, class Q, class... C>
struct WithCoders<S, Q, std::tuple<C...>> {
  using type = std::tuple<Compressor<S, Q, C>...>;
};
template <class S, class QuantizerTuple>
struct WithQuantizers;
template <class S, class... Q>
struct WithQuantizers<S, std::tuple<Q...>> {
  using type = decltype(std::tuple_cat(std::declval<typename WithCoders<S, Q, Coders>::type>()...));
};
template <class SparsifierTuple>
struct AllOf;
template <class... S>
struct AllOf<std::tuple<S...>> {
  using type = decltype(std::tuple_cat(std::declval<typename WithQuantizers<S, Quantizers>::type>()...));
};
using AllPipelines = AllOf<Sparsifiers>::type;
static_assert(std::tuple_size_v<AllPipelines> == 36);

/// Pipeline P with the sparsifiers at 10% and the dithered quantizer's options as given.
template <class P>
P make_pipeline(int levels = 4, Norm norm = Norm::Linf, bool natural = false) {
  using S = typename P::sparsifier_type;
  using Q = typename P::quantizer_type;
  S s{};
  if constexpr (std::is_same_v<S, TopK>) s = TopK{0.1};
  if constexpr (std::is_same_v<S, RandomK>) s = RandomK{0.1, true};
  if constexpr (std::is_same_v<S, RandTopK>) s = RandTopK{0.1, 3.0};
  Q q{};
  if constexpr (std::is_same_v<Q, DitheredQuantizer>) q = DitheredQuantizer{levels, norm, natural};
  return P(s, q, typename P::coder_type{});
}

/// Dithering at s = 4, ℓ2, one σ per `bucket` values sent in `format`.
inline DitheredQuantizer bucketed(std::size_t bucket, ScaleFormat format) {
  DitheredQuantizer q{4, Norm::L2};
  q.bucket = bucket;
  q.scale_format = format;
  return q;
}

/// The pipelines beside AllPipelines whose options are not their types (issue 16): bucketed
/// dithering with float32 and float16 scales, and HalfFloat (float16 and bfloat16, both
/// roundings) through every sparsifier and coder family. Each configured as it is sent.
inline auto configured_pipelines() {
  using F = HalfFormat;
  using R = HalfRounding;
  return std::make_tuple(Compressor<Dense, DitheredQuantizer, VectorSourceCoder>({}, bucketed(16, ScaleFormat::Float32), {}),
                         Compressor<Dense, DitheredQuantizer, RawCoder>({}, bucketed(8, ScaleFormat::Float16), {}),
                         Compressor<Dense, DitheredQuantizer, EliasCoder>({}, bucketed(32, ScaleFormat::Float16), {}),
                         Compressor<Dense, HalfFloat, RawCoder>({}, {F::Float16, R::NearestEven}, {}),
                         Compressor<Dense, HalfFloat, VectorSourceCoder>({}, {F::BFloat16, R::Stochastic}, {}),
                         Compressor<TopK, HalfFloat, EliasCoder>(TopK{0.1}, {F::Float16, R::Stochastic}, {}),
                         Compressor<RandomK, HalfFloat, RawCoder>(RandomK{0.1, true}, {F::BFloat16, R::NearestEven}, {}),
                         Compressor<RandTopK, HalfFloat, VectorSourceCoder>(RandTopK{0.1, 3.0}, {F::Float16, R::NearestEven}, {}));
}

inline std::vector<float> gaussian(std::size_t d, std::uint64_t seed, double scale = 1.0) {
  std::vector<float> v(d);
  Rng rng(seed);
  rng.fill_normal(std::span<float>(v), scale);
  return v;
}

/// Rewrites the checksum trailer (the last message::checksum_bytes bytes) of a possibly damaged
/// message to match the rest, so that a test reaches the decoders behind the checksum.
inline void reseal(std::vector<std::byte>& msg) {
  if (msg.size() < message::checksum_bytes) return;
  const std::size_t body = msg.size() - message::checksum_bytes;
  message::store_checksum(msg.data() + body, crc32c(std::span<const std::byte>(msg.data(), body)));
}

}  // namespace decopt::test
