// decopt/compress/perm_k.hpp — PermK: node i of n sends the i-th block of a random permutation of
// the coordinates that every node draws alike, scaled by n.
//
// Szlendak, Tyurin & Richtárik, "Permutation Compressors for Provably Faster Distributed Nonconvex
// Optimization", ICLR 2022. The blocks of the n nodes partition the coordinates, so for the same
// input on every node (1/n) Σ_i C_i(v) = v: the compressors' errors cancel exactly in the mean
// instead of adding up, as independent RandomK's do. Each C_i is unbiased, E C_i(v) = v.
//
// Blocks when n does not divide d: the permutation is of d' = n·m positions, m = ⌈d/n⌉, where the
// d' − d positions ≥ d are dummies; node i takes positions π[i·m … (i+1)·m) and sends those < d.
// Every coordinate is then in block i with probability exactly m/d' = 1/n, so C_i(v) = n·v on its
// block stays unbiased, and the blocks still partition [0, d) (the paper takes n | d or d | n).
//
// Shared randomness: the permutation of round t is a Fisher–Yates shuffle drawn from
// Rng::derive(seed, {"PERM", t}), seed from bind_node (Options::seed, the same on every node) and t
// the compressor's encode counter (state: save_state / load_state), equal on every node of a
// lockstep run. The message carries the sender's rank and t, so any receiver regenerates the
// sender's block (O(d) time and 4d' bytes of per-thread scratch; the values are O(d/n)).
//
// With error memory (SyncStep's x̂ += C(x − x̂)) the scaled compressor diverges: it is not a
// contraction, E‖C(v) − v‖² = (n − 1)‖v‖². ContractivePermK sends the block unscaled: biased,
// ‖C(v) − v‖² = ‖v‖² − ‖v_block‖², E = (1 − 1/n)‖v‖² (a δ = 1/n contraction, as CHOCO-SGD needs,
// Koloskova et al. 2019), and the nodes' messages of identical inputs sum to v bit for bit.
//
// Message (the frame of message.hpp): varint n · varint sender rank · u8 scaled · u64 t ·
//   the block's values (n·v[π_j] scaled, v[π_j] not) as float32, in permutation order (dummies skipped).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "decopt/compress/detail/float_payload.hpp"
#include "decopt/compress/detail/pipeline.hpp"
#include "decopt/compress/message.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"

namespace decopt {

namespace message::ids {
/// Header id of PermK messages (sparsifier byte; quantizer identity, coder raw).
inline constexpr std::uint8_t perm_k = 17;
}  // namespace message::ids

/**
 * @brief PermK: this node's block of a permutation shared by all nodes, scaled by the node count
 * (ScaledByNodes: PermK, unbiased) or not (ContractivePermK, for steps with error memory).
 *
 * A top-level compressor (a ResidualCompressor with the hooks bind_node, save_state, load_state of
 * decopt/compress/hooks.hpp). Unbiased. It needs bind_node (the optimizer calls it): without it,
 * encode and decode_add throw ConfigError.
 *
 * Thread safety: encode advances the counter (one compressor per sender); decode_add is const and
 * uses per-thread scratch.
 */
template <bool ScaledByNodes>
class PermKCompressor {
 public:
  static constexpr bool unbiased = ScaledByNodes;
  static constexpr bool lossless = false;
  static std::string name() { return ScaledByNodes ? "PermK" : "ContractivePermK"; }

  PermKCompressor() = default;

  /**
   * This node's rank among `nodes`, and the network-wide seed of the permutations.
   * @throws ConfigError for nodes < 1 or a rank outside [0, nodes)
   */
  void bind_node(int rank, int nodes, std::uint64_t seed) {
    detail::require(nodes >= 1, "PermK::bind_node: nodes must be >= 1");
    detail::require(rank >= 0 && rank < nodes, "PermK::bind_node: rank " + std::to_string(rank) + " is not in [0, " +
                                                   std::to_string(nodes) + ")");
    rank_ = static_cast<std::uint64_t>(rank);
    nodes_ = static_cast<std::uint64_t>(nodes);
    seed_ = seed;
  }

  /// Encodes done so far: the next encode draws the permutation of this round.
  [[nodiscard]] std::uint64_t counter() const noexcept { return counter_; }

  /**
   * Appends one message with this node's block of the current permutation; q = n·v on the block,
   * 0 elsewhere (what receivers decode). Advances the counter; on a throw, nothing changes.
   * @throws ConfigError before bind_node, for q.size() != v.size(), a dimension outside
   *         [1, 2^32 − 1 − n], or a sent value n·v_k that is not finite
   */
  void encode(std::span<const float> v, Rng& /*rng*/, std::vector<std::byte>& out, std::span<float> q) {
    require_bound("encode");
    detail::require(q.size() == v.size(), "PermK::encode: q.size() must equal v.size()");
    require_dimension(v.size());
    const std::span<const std::uint32_t> block = block_positions(v.size(), rank_, counter_, positions_);
    const auto n = static_cast<float>(nodes_);
    values_.resize(block.size());
    for (std::size_t j = 0; j < block.size(); ++j) values_[j] = ScaledByNodes ? n * v[block[j]] : v[block[j]];
    detail::require(detail::max_abs_bits(values_) < detail::infinity_bits,
                    "PermK::encode: a value it sends, times the node count, is not finite");
    const std::size_t start = out.size();
    message::write_header(out, message::ids::perm_k, message::ids::identity, message::ids::raw, v.size());
    put_varint(out, nodes_);
    put_varint(out, rank_);
    put_le<std::uint8_t>(out, ScaledByNodes ? 1 : 0);
    put_le<std::uint64_t>(out, counter_);
    detail::append_floats_le(out, values_);
    message::append_checksum(out, start);
    std::fill(q.begin(), q.end(), 0.0f);
    for (std::size_t j = 0; j < block.size(); ++j) q[block[j]] = values_[j];
    ++counter_;
  }

  /**
   * acc += weight · q for the q the message encodes (the sender's block).
   * @throws DecodeError for a truncated, corrupted or foreign message (another pipeline, node
   *         count or dimension, a sender rank ≥ n, a payload not of the block's size), a
   *         non-finite value or weight · value; acc is then unchanged
   * @throws ConfigError for a non-finite weight, or before bind_node
   */
  void decode_add(std::span<const std::byte> msg, float weight, std::span<float> acc) const {
    detail::require(std::isfinite(weight), "PermK::decode_add: weight must be finite");
    require_bound("decode_add");
    const message::Envelope envelope = message::open(msg);
    message::verify(envelope);
    ByteReader in(envelope.body);
    const std::uint64_t d = message::read_header(in, message::ids::perm_k, message::ids::identity, message::ids::raw);
    if (d != acc.size()) throw DecodeError("PermK: message dimension does not match the accumulator");
    if (in.get_varint() != nodes_) throw DecodeError("PermK: message's node count is not this network's");
    const std::uint64_t sender = in.get_varint();
    if (sender >= nodes_) throw DecodeError("PermK: message's sender rank is not a node of this network");
    if (in.get_le<std::uint8_t>() != (ScaledByNodes ? 1 : 0))
      throw DecodeError("PermK: message's scaling is not this compressor's (PermK against ContractivePermK)");
    const auto round = in.get_le<std::uint64_t>();
    if (padded_dimension(d) > message::max_dimension) throw DecodeError("PermK: dimension too large for this node count");
    // the block's size, before any O(d) work
    if (in.remaining() % sizeof(float) != 0 || in.remaining() / sizeof(float) > block_floats(d))
      throw DecodeError("PermK: payload is not a block of float32 values");
    thread_local std::vector<std::uint32_t> scratch;
    const std::span<const std::uint32_t> block = block_positions(static_cast<std::size_t>(d), sender, round, scratch);
    if (in.remaining() != block.size() * sizeof(float)) throw DecodeError("PermK: payload is not the sender's block");
    std::vector<float> values(block.size());
    detail::read_floats_le(in.rest().data(), values);
    const std::uint32_t max_bits = detail::max_abs_bits(values);
    if (max_bits >= detail::infinity_bits || !std::isfinite(std::bit_cast<float>(max_bits) * weight))
      throw DecodeError("PermK: message holds or yields a non-finite value");
    for (std::size_t j = 0; j < block.size(); ++j) acc[block[j]] += weight * values[j];
  }

  /// Appends the counter: tag "PERM", u64 counter.
  void save_state(std::vector<std::byte>& out) const {
    put_le<std::uint32_t>(out, state_tag);
    put_le<std::uint64_t>(out, counter_);
  }
  /// Reads what save_state wrote; DecodeError for a bad tag or truncation (nothing changes then).
  void load_state(ByteReader& in) {
    detail::require_decodable(in.get_le<std::uint32_t>() == state_tag, "PermK state: bad tag");
    counter_ = in.get_le<std::uint64_t>();
  }

  /// The coordinates node `rank` sends in round `round` for dimension d, in permutation order.
  /// @throws ConfigError before bind_node, for rank ≥ nodes or a dimension out of range
  [[nodiscard]] std::vector<std::uint32_t> block_of(std::size_t d, int rank, std::uint64_t round) const {
    require_bound("block_of");
    require_dimension(d);
    detail::require(rank >= 0 && static_cast<std::uint64_t>(rank) < nodes_, "PermK::block_of: rank out of range");
    std::vector<std::uint32_t> scratch;
    const auto block = block_positions(d, static_cast<std::uint64_t>(rank), round, scratch);
    return {block.begin(), block.end()};
  }

 private:
  static constexpr std::uint32_t state_tag = 0x4d524550;  // "PERM"

  void require_bound(const char* what) const {
    detail::require(nodes_ != 0, std::string("PermK::") + what +
                                     ": the compressor is not bound to a node (bind_node(rank, nodes, seed); the optimizer "
                                     "calls it)");
  }
  void require_dimension(std::size_t d) const {
    detail::require(d >= 1 && padded_dimension(d) <= message::max_dimension,
                    "PermK: the dimension must be in [1, 2^32 - 2 - nodes]");
  }
  // m = ⌈d/n⌉ positions per node.
  [[nodiscard]] std::uint64_t block_floats(std::uint64_t d) const noexcept { return (d + nodes_ - 1) / nodes_; }
  [[nodiscard]] std::uint64_t padded_dimension(std::uint64_t d) const noexcept { return block_floats(d) * nodes_; }

  // Node `rank`'s block of round `round`: the first (rank + 1)·m steps of a Fisher–Yates shuffle of
  // [0, d'), positions ≥ d dropped. `scratch` ends up holding them at its front.
  std::span<const std::uint32_t> block_positions(std::size_t d, std::uint64_t rank, std::uint64_t round,
                                                 std::vector<std::uint32_t>& scratch) const {
    const std::uint64_t m = block_floats(d);
    const auto padded = static_cast<std::size_t>(padded_dimension(d));
    scratch.resize(padded);
    std::iota(scratch.begin(), scratch.end(), std::uint32_t{0});
    Rng rng = Rng::derive(seed_, {state_tag, round});
    const auto lo = static_cast<std::size_t>(rank * m);
    const auto hi = static_cast<std::size_t>(lo + m);
    for (std::size_t j = 0; j < hi && j + 1 < padded; ++j)
      std::swap(scratch[j], scratch[j + static_cast<std::size_t>(rng.below(padded - j))]);
    std::size_t kept = 0;
    for (std::size_t j = lo; j < hi; ++j)
      if (scratch[j] < d) scratch[kept++] = scratch[j];
    return {scratch.data(), kept};
  }

  std::uint64_t rank_ = 0;
  std::uint64_t nodes_ = 0;  // 0 until bind_node
  std::uint64_t seed_ = 0;
  std::uint64_t counter_ = 0;
  std::vector<std::uint32_t> positions_;  // encode scratch
  std::vector<float> values_;
};

/// PermK as in the paper: the block scaled by n, unbiased (for steps without error memory, and
/// for the exact mean of identical inputs).
using PermK = PermKCompressor<true>;
/// The block unscaled: a δ = 1/n contraction, for SyncStep and OverlappedStep (error memory).
using ContractivePermK = PermKCompressor<false>;

}  // namespace decopt
