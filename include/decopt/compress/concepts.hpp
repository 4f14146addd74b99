// decopt/compress/concepts.hpp — the contracts of the three policies of Compressor<S, Q, C>.
//
// A policy is a small value type holding hyperparameters (STYLE.md, lesson 2). Compressor checks
// each with a static_assert that names what is missing in one sentence.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "decopt/compress/detail/pipeline.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/rng.hpp"

namespace decopt {

namespace detail {
/// A sink that accepts what coders emit; used only to check the Coder concept.
struct ConceptLevelSink {
  void operator()(std::size_t, int) const noexcept {}
};
struct ConceptPositionSink {
  void operator()(std::size_t) const noexcept {}
};
}  // namespace detail

/// Chooses which coordinates are sent: fills a detail::Selection, writes and reads its parameters
/// (read_params refuses parameters this configuration would not have written: DecodeError).
template <class S>
concept Sparsifier = std::copy_constructible<S> &&
    requires(const S cs, std::span<const float> v, Rng& rng, detail::Selection& sel, std::vector<std::byte>& out,
             ByteReader& in, std::size_t d) {
      { S::id } -> std::convertible_to<std::uint8_t>;
      { S::always_unbiased } -> std::convertible_to<bool>;
      { S::sparse } -> std::convertible_to<bool>;
      { S::uses_seed } -> std::convertible_to<bool>;
      { S::name() } -> std::convertible_to<std::string>;
      { cs.is_unbiased() } -> std::convertible_to<bool>;
      cs.validate();
      cs.select(v, rng, sel);
      cs.write_params(std::as_const(sel), out);
      cs.read_params(in, d, sel);
    };

/// Maps the selected values to integer levels (or keeps floats), writes and reads its parameters
/// (read_params refuses parameters this configuration would not have written: DecodeError).
template <class Q>
concept Quantizer = std::copy_constructible<Q> &&
    requires(Q q, const Q cq, std::span<const float> x, float scale, Rng& rng, detail::LevelBlock& blk,
             std::span<float> recon, std::vector<std::byte>& out, ByteReader& in) {
      { Q::id } -> std::convertible_to<std::uint8_t>;
      { Q::always_unbiased } -> std::convertible_to<bool>;
      { Q::uses_seed } -> std::convertible_to<bool>;
      { Q::float_values } -> std::convertible_to<bool>;
      { Q::name() } -> std::convertible_to<std::string>;
      { cq.is_unbiased() } -> std::convertible_to<bool>;
      cq.validate();
      q.quantize(x, scale, rng, blk, recon);
      cq.write_params(std::as_const(blk), out);
      cq.read_params(in, scale, blk);
    };

/// Turns levels (or the positions of float values) into bits and back.
template <class C>
concept Coder = std::copy_constructible<C> &&
    requires(C c, const C cc, const detail::CodeShape& shape, std::span<const std::int16_t> levels, int s,
             std::vector<std::byte>& out, std::span<const std::byte> bytes) {
      { C::id } -> std::convertible_to<std::uint8_t>;
      { C::name() } -> std::convertible_to<std::string>;
      c.encode_levels(shape, levels, s, out);
      c.encode_positions(shape, out);
      { cc.decode_levels(bytes, shape, s, detail::ConceptLevelSink{}) } -> std::convertible_to<std::size_t>;
      { cc.decode_positions(bytes, shape, detail::ConceptPositionSink{}) } -> std::convertible_to<std::size_t>;
    };

}  // namespace decopt
