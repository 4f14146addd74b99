// decopt/compress/hooks.hpp — the optional members of a compressor, called only where it has them.
//
// A compressor is a ResidualCompressor (encode, decode_add, the traits unbiased and lossless); it
// may also have any of these, and whoever drives it (the optimizer, a wrapper such as
// SupportCoded) calls them through the functions below, so that one place says what each means:
//   bind_node(rank, nodes, seed)    this node's rank, the node count, a seed identical on every node
//                                   (network-wide shared randomness: PermK's permutation)
//   set_matrix_blocks(blocks)       the matrices of the flat vector (low rank: PowerSGD)
//   set_scale_blocks(blocks)        layer-wise quantizer scales (decopt/compress/scale_blocks.hpp)
//   save_state(out) / load_state(in)  state that encode() changes (warm starts, counters, a
//                                   support): saved in checkpoints; load_state reads exactly what
//                                   save_state wrote, throws DecodeError for malformed bytes and
//                                   changes nothing when it throws
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "decopt/compress/matrix_blocks.hpp"
#include "decopt/compress/scale_blocks.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"

namespace decopt {

/// A compressor whose encode() changes state that a checkpoint must keep.
template <class C>
concept StatefulCompressor = requires(const C& cc, C& c, std::vector<std::byte>& out, ByteReader& in) {
  cc.save_state(out);
  c.load_state(in);
};

namespace hooks {

/// Tells the compressor which node of how many it serves, and the network-wide seed.
template <class C>
void bind_node(C& c, int rank, int nodes, std::uint64_t seed) {
  if constexpr (requires { c.bind_node(rank, nodes, seed); }) c.bind_node(rank, nodes, seed);
}

/// Hands the compressor the matrices of the vector, if it uses them (a compressor without
/// set_matrix_blocks compresses the flat vector and needs no shapes).
template <class C>
void set_matrix_blocks(C& c, std::span<const MatrixBlock> blocks) {
  if constexpr (requires { c.set_matrix_blocks(blocks); }) c.set_matrix_blocks(blocks);
}

/// Whether the compressor can give listed blocks a quantizer scale of their own.
template <class C>
inline constexpr bool has_scale_blocks = requires(C& c, std::span<const ScaleBlock> b) { c.set_scale_blocks(b); };

/// Appends a flag byte and, for a StatefulCompressor, its state.
template <class C>
void save_state(const C& c, std::vector<std::byte>& out) {
  put_le<std::uint8_t>(out, StatefulCompressor<C> ? 1 : 0);
  if constexpr (StatefulCompressor<C>) c.save_state(out);
}

/// Reads what save_state wrote into `c` (pass a copy for the strong guarantee). DecodeError for a
/// bad flag, ConfigError for a record of a compressor with state into one without, or the reverse.
template <class C>
void load_state(C& c, ByteReader& in) {
  const auto saved = in.get_le<std::uint8_t>();
  detail::require_decodable(saved <= 1, "checkpoint's compressor-state flag is not 0 or 1");
  detail::require((saved == 1) == StatefulCompressor<C>,
                  saved ? "checkpoint holds a compressor state, this optimizer's compressor has none"
                        : "checkpoint holds no compressor state, this optimizer's compressor keeps one");
  if constexpr (StatefulCompressor<C>) c.load_state(in);
}

}  // namespace hooks
}  // namespace decopt
