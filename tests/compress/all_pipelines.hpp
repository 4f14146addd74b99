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
