// decopt/optimizer/residual_coding.hpp — how a round turns x and x̂ into a message, and a
// neighbour's message into s, for the two kinds of compressor.
//
// A ResidualCompressor sees only the residual v = x − x̂ and decodes any message on its own
// (Compressor<S, Q, C>). A ModelAwareCompressor sees x and x̂ themselves and decodes with state it
// keeps per neighbour (SupportCoded: which coordinates of each neighbour's x̂ are exactly zero, so
// that they cost no bits). The optimizer calls only the functions here, whatever the kind.
#pragma once

#include <concepts>
#include <cstddef>
#include <span>
#include <vector>

#include "decopt/core/rng.hpp"
#include "decopt/optimizer/concepts.hpp"

namespace decopt {

/// A compressor that encodes from the model x and its public copy x̂ (not from x − x̂ alone) and
/// decodes each neighbour's messages with state of its own for that neighbour, bound once.
/// encode_model writes into q the exact change of x̂ every receiver will apply.
template <class C>
concept ModelAwareCompressor = requires(C& c, std::span<const float> x, std::span<const float> xhat, Rng& rng,
                                        std::vector<std::byte>& out, std::span<float> q, std::size_t slot,
                                        std::span<const std::byte> message, float weight) {
  c.bind_neighbors(slot, slot);  // (neighbour count, dimension)
  c.encode_model(x, xhat, rng, out, q);
  c.decode_add_from(slot, message, weight, q);
  { C::unbiased } -> std::convertible_to<bool>;
  { C::lossless } -> std::convertible_to<bool>;
};

/// Either kind: what the optimizer's compressor policy must be.
template <class C>
concept RoundCompressor = ResidualCompressor<C> || ModelAwareCompressor<C>;

namespace detail {

/// Gives a ModelAwareCompressor its per-neighbour state; nothing for a ResidualCompressor.
template <RoundCompressor C>
void bind_neighbors(C& c, std::size_t neighbors, std::size_t d) {
  if constexpr (ModelAwareCompressor<C>) c.bind_neighbors(neighbors, d);
}

/// Appends the round's message to `out` and writes the change of x̂ into q; `scratch` (size d) holds
/// the residual x − x̂ for a ResidualCompressor.
template <RoundCompressor C>
void encode_round(C& c, std::span<const float> x, std::span<const float> xhat, std::span<float> scratch, Rng& rng,
                  std::vector<std::byte>& out, std::span<float> q) {
  if constexpr (ModelAwareCompressor<C>) {
    c.encode_model(x, xhat, rng, out, q);
  } else {
    for (std::size_t k = 0; k < x.size(); ++k) scratch[k] = x[k] - xhat[k];
    c.encode(std::span<const float>(scratch), rng, out, q);
  }
}

/// acc += weight · q of the message of the neighbour in slot `slot` (its place in the neighbour list).
template <RoundCompressor C>
void decode_round(C& c, std::size_t slot, std::span<const std::byte> message, float weight, std::span<float> acc) {
  if constexpr (ModelAwareCompressor<C>)
    c.decode_add_from(slot, message, weight, acc);
  else
    c.decode_add(message, weight, acc);
}

/// After every neighbour's message of a round: lets a ModelAwareCompressor that knows where every
/// x̂_j is exactly zero make s exactly zero there (SupportCoded::settle_neighbor_sum).
template <RoundCompressor C>
void settle_round(const C& c, std::span<float> acc) {
  if constexpr (requires { c.settle_neighbor_sum(acc); }) c.settle_neighbor_sum(acc);
}

}  // namespace detail
}  // namespace decopt
