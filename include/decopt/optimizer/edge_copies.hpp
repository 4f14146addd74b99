// decopt/optimizer/edge_copies.hpp — EdgeCopies<C>: exact error memory when the neighbour set
// changes from round to round (a TopologySchedule).
//
// CHOCO-SGD (Koloskova, Stich & Jaggi, "Decentralized stochastic optimization and gossip algorithms
// with compressed communication", ICML 2019) keeps one public copy x̂_i that every neighbour
// tracks, and s_i = Σ_j w_ij x̂_j. Under a time-varying W(t) that breaks: a neighbour that was
// silent for some rounds missed the increments of x̂_i sent meanwhile, and s_i would have to be
// rebuilt from weights that change every round. EdgeCopies keeps instead, for each edge {i, j} of
// the schedule's union graph, the pair of copies node i holds:
//
//     x̂_{i→j}  what i has sent j so far (i's error memory towards j), and
//     x̂_{j→i}  what i has received from j so far (j's copy, exactly as j holds x̂_{j→i}).
//
// A round with peers N_t(i) = the neighbours of i in W(t):
//
//     for j ∈ N_t(i):  q_ij = C(x_i − x̂_{i→j});  x̂_{i→j} += q_ij;  send q_ij to j
//     for j ∈ N_t(i):  x̂_{j→i} += q_ji
//     x_i += γ Σ_{j ∈ N_t(i)} w_ij(t) (x̂_{j→i} − x̂_{i→j})
//
// Both ends apply the same decoded q, so x̂_{i→j} at i equals x̂_{i→j} at j bit for bit, however
// many rounds the edge was idle; and since W(t) is symmetric, Σ_i of the mixing terms is 0, so
// (with the identity compressor and γ = 1) one round is exactly x ← W(t)x and the node average is
// kept. There is no s: the mixing term is computed from the round's weights over the copies.
// The cost is 2·d·deg∪(i) floats per node, deg∪ the union-graph degree — log2 n for the one-peer
// exponential schedule (its union is the hypercube), so O(d log n) there — and one message per peer
// of the round instead of one broadcast.
//
// The copies are per edge, so a compressor that keeps state per neighbour of ONE public copy
// (a ModelAwareCompressor, SupportCoded) does not fit: that is a compile-time error.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/finite.hpp"
#include "decopt/core/rng.hpp"
#include "decopt/optimizer/checkpoint.hpp"
#include "decopt/optimizer/residual_coding.hpp"
#include "decopt/topology/topology.hpp"

namespace decopt {

/// Node `rank`'s per-edge public copies over a union graph (see the header comment).
/// @tparam C a ResidualCompressor (Compressor<S, Q, Coder>)
template <class C>
class EdgeCopies {
  static_assert(!ModelAwareCompressor<C>,
                "EdgeCopies: a ModelAwareCompressor (SupportCoded) keeps its state per neighbour of one public copy "
                "x̂, not per edge copy; over edge copies use its plain pipeline (a Compressor<S, Q, Coder>)");
  static_assert(ModelAwareCompressor<C> || ResidualCompressor<C>,
                "EdgeCopies: C must be a ResidualCompressor (encode / decode_add)");

 public:
  /// @param union_graph the schedule's union graph (TopologySchedule::union_graph())
  /// @throws ConfigError for a rank outside the graph
  EdgeCopies(const Topology& union_graph, int rank, std::size_t d)
      : rank_(rank), d_(d), peers_(union_graph.neighbors(rank).begin(), union_graph.neighbors(rank).end()),
        sent_(peers_.size() * d, 0.0f), received_(peers_.size() * d, 0.0f), mixing_(d, 0.0f) {}

  /// deg∪: the potential peers.
  [[nodiscard]] std::size_t peers() const noexcept { return peers_.size(); }
  [[nodiscard]] std::size_t dimension() const noexcept { return d_; }
  /// Floats of state: 2·d·deg∪.
  [[nodiscard]] std::size_t state_floats() const noexcept { return sent_.size() + received_.size(); }
  /// The union-graph neighbour in slot k.
  [[nodiscard]] int peer(std::size_t slot) const { return peers_.at(slot).node; }

  /// The slot of `node` among the union-graph neighbours.
  /// @throws ConfigError when node is not one (the round's W is not a subgraph of the union)
  [[nodiscard]] std::size_t slot_of(int node) const {
    for (std::size_t k = 0; k < peers_.size(); ++k)
      if (peers_[k].node == node) return k;
    throw ConfigError("EdgeCopies: node " + std::to_string(node) + " is not a neighbour of node " +
                      std::to_string(rank_) + " in the schedule's union graph");
  }

  /// x̂_{i→j} of slot k (what this node has sent that peer).
  [[nodiscard]] std::span<const float> sent(std::size_t slot) const { return {sent_.data() + slot * d_, d_}; }
  /// x̂_{j→i} of slot k (what this node has received from that peer).
  [[nodiscard]] std::span<const float> received(std::size_t slot) const {
    return {received_.data() + slot * d_, d_};
  }

  /// q = C(x − x̂_{i→j}); x̂_{i→j} += q; appends the message for that peer to `out`.
  /// `scratch` and `q` hold d floats each.
  void encode_to(std::size_t slot, C& c, std::span<const float> x, std::span<float> scratch, Rng& rng,
                 std::vector<std::byte>& out, std::span<float> q) {
    const std::span<float> copy(sent_.data() + slot * d_, d_);
    detail::encode_round(c, x, std::span<const float>(copy), scratch, rng, out, q);
    for (std::size_t k = 0; k < d_; ++k) copy[k] += q[k];
  }

  /// x̂_{j→i} += q_ji, the peer's message of this round.
  void decode_from(std::size_t slot, C& c, std::span<const std::byte> message) {
    detail::decode_round(c, slot, message, 1.0f, std::span<float>(received_.data() + slot * d_, d_));
  }

  /// x += γ Σ_{j ∈ N_t(i)} w_ij(t) (x̂_{j→i} − x̂_{i→j}), summed in the round's neighbour order.
  void mix(const Topology& round, std::span<float> x, float gamma) {
    std::fill(mixing_.begin(), mixing_.end(), 0.0f);
    for (const Edge& e : round.neighbors(rank_)) {
      const std::size_t slot = slot_of(e.node);
      const float w = static_cast<float>(e.weight);
      const float* in = received_.data() + slot * d_;
      const float* mine = sent_.data() + slot * d_;
      for (std::size_t k = 0; k < d_; ++k) mixing_[k] += w * (in[k] - mine[k]);
    }
    for (std::size_t k = 0; k < d_; ++k) x[k] += gamma * mixing_[k];
  }

  /// Appends the copies for a checkpoint: x̂_{i→j} then x̂_{j→i}, slot-major, length-prefixed.
  void save(std::vector<std::byte>& out) const {
    checkpoint::put_floats(out, sent_);
    checkpoint::put_floats(out, received_);
  }

  /// Reads what save() wrote (read into temporaries: a failure changes nothing).
  /// @throws ConfigError for copies of another size (another union graph or dimension);
  ///         DecodeError for a truncated record or non-finite values
  void load(ByteReader& in) {
    std::vector<float> sent(sent_.size()), received(received_.size());
    checkpoint::get_floats(in, sent, "edge copies x̂_{i→j}");
    checkpoint::get_floats(in, received, "edge copies x̂_{j→i}");
    detail::require_decodable(decopt::all_finite(std::span<const float>(sent)) &&
                                  decopt::all_finite(std::span<const float>(received)),
                              "checkpoint holds non-finite edge copies");
    sent_ = std::move(sent);
    received_ = std::move(received);
  }

 private:
  int rank_;
  std::size_t d_;
  std::vector<Edge> peers_;
  std::vector<float> sent_;      // x̂_{i→j}, slot-major
  std::vector<float> received_;  // x̂_{j→i}, slot-major
  std::vector<float> mixing_;    // the round's Σ_j w_ij (x̂_{j→i} − x̂_{i→j})
};

}  // namespace decopt
