// decopt/optimizer/push_sum.hpp — Stochastic Gradient Push: decentralized SGD on a directed
// graph, de-biased by push-sum weights.
//
// Assran, Loizou, Ballas & Rabbat, "Stochastic Gradient Push for Distributed Deep Learning",
// ICML 2019 (Algorithm 1, SGP); Nedić & Olshevsky, "Stochastic Gradient-Push for Strongly Convex
// Functions on Time-Varying Directed Graphs", IEEE TAC 2016. Node i holds a numerator z_i and a
// push-sum weight w_i (w_i = 1 at the start, z_i = x_i); its model is the de-biased x_i = z_i / w_i.
// A round, with A the column-stochastic matrix of topology/directed.hpp (share a_i = 1/(d_i + 1)):
//   1. g = ∇f_i(x_i; ξ)                the user's callback, at the de-biased model
//   2. z_i += U(x_i, g, η) − x_i       the local update's step (SGD: z_i −= η g, SGP's update)
//   3. send (a_i z_i, a_i w_i) to every out-neighbour; keep a_i z_i, a_i w_i
//   4. z_i = own share + Σ_{j ∈ in(i)} received z;  w_i likewise
//   5. x_i = z_i / w_i                 written into the user's buffer
// Σ_i z_i and Σ_i w_i = n are conserved by every round (A's columns sum to 1), and A^t → π 1ᵀ, so
// without gradients every x_i → (Σ_j z_j) / (Σ_j w_j) = the average of the initial models: the
// weights undo the bias of a matrix whose rows do not sum to 1.
//
// Numerics. z and w are kept in double, and the shares are sent as float32 values (plus w's share
// as a float64): the sender keeps z − d_i·share with share the float actually sent, so the mass
// the network holds is conserved to double rounding, not float rounding — consensus is reached to
// ~1e-7 relative rather than drifting with the round count. A message is 8 + 4d bytes, sent to
// each out-neighbour; state is 2·d doubles + d floats of scratch (the user's buffer holds x).
//
// Transport: a PeerTransport (post_to / collect_from) built over graph.undirected(); the node
// posts to out-neighbours only and sums in-neighbours in ascending order, so the same seed gives
// the same bits on the simulated network, ThreadNetwork and MPI. Messages are uncompressed:
// SGP's bytes are D-PSGD's on the same out-degree.
//
// Checkpoints: save_state / load_state write and read one record (optimizer/checkpoint.hpp's
// framing, checked before anything is read) of z, w, the round, lr and the local update's state,
// bound to the graph's fingerprint; a run resumed from every node's record continues bit for bit.
#pragma once

#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"
#include "decopt/optimizer/checkpoint.hpp"
#include "decopt/optimizer/concepts.hpp"
#include "decopt/optimizer/local_update.hpp"
#include "decopt/optimizer/options.hpp"
#include "decopt/topology/directed.hpp"
#include "decopt/transport/transport.hpp"

namespace decopt {

/// Options of StochasticGradientPush.
struct PushSumOptions {
  double lr = 0.1;  ///< η > 0, finite
  void validate() const {
    detail::require(std::isfinite(lr) && lr > 0, "StochasticGradientPush: lr must be finite and > 0, got " +
                                                      std::to_string(lr));
  }
};

/// One node of Stochastic Gradient Push over a user-owned float buffer (its de-biased model).
template <LocalUpdate Local = SGD>
class StochasticGradientPush {
 public:
  /// @param x the node's model, updated in place each round (its initial value is z_0)
  /// @param graph a strongly connected directed graph; @param transport a PeerTransport over
  ///        graph.undirected() whose rank is this node
  /// @throws ConfigError for bad options, non-finite x, a transport without per-peer delivery or
  ///         whose degree is not this node's degree in graph.undirected()
  StochasticGradientPush(std::span<float> x, const DirectedGraph& graph, TransportRef transport,
                         PushSumOptions options = {}, Local local = {})
      : x_(x),
        graph_(graph),
        transport_(transport),
        options_(options),
        rank_(transport.rank()),
        local_(local.state(x.size())),
        z_(x.begin(), x.end()),
        stepped_(x.size()),
        gradient_(x.size()) {
    options_.validate();
    detail::require(rank_ >= 0 && rank_ < graph_.size(), "StochasticGradientPush: transport rank " +
                                                             std::to_string(rank_) + " is not a node of " + graph_.name());
    detail::require(transport_.delivers_per_peer(),
                    "StochasticGradientPush: the transport must deliver per peer (post_to / collect_from)");
    const auto undirected_degree = graph_.undirected().neighbors(rank_).size();
    detail::require(static_cast<std::size_t>(transport_.degree()) == undirected_degree,
                    "StochasticGradientPush: node " + std::to_string(rank_) + "'s transport has " +
                        std::to_string(transport_.degree()) + " neighbours but " + graph_.name() +
                        ".undirected() gives it " + std::to_string(undirected_degree) +
                        ": build the transport over graph.undirected()");
    for (std::size_t k = 0; k < x_.size(); ++k)
      detail::require(std::isfinite(x_[k]), "StochasticGradientPush: initial model of node " +
                                                std::to_string(rank_) + " is not finite at " + std::to_string(k));
  }

  /// Changes η from the next round on (a learning-rate schedule, e.g. decopt-train --lr-schedule);
  /// checkpoints record the current η.
  /// @throws ConfigError for an lr PushSumOptions::validate refuses, or inside a round (nothing changes)
  void set_learning_rate(double lr) {
    detail::require(!open_, "StochasticGradientPush: set_learning_rate inside a round (node " + std::to_string(rank_) + ")");
    PushSumOptions next = options_;
    next.lr = lr;
    next.validate();
    options_ = next;
  }

  /// One round: begin_round then finish_round (a node in a thread or process of its own).
  template <GradientFunction Grad>
  RoundStats step(Grad&& grad) {
    begin_round(grad);
    return finish_round();
  }

  /// Steps 1–3: gradient, local step on z, post the shares to the out-neighbours.
  /// @throws ConfigError when called twice without finish_round; whatever the callback throws
  template <GradientFunction Grad>
  void begin_round(Grad&& grad) {
    detail::require(!open_, "StochasticGradientPush: begin_round twice without finish_round");
    const auto start = std::chrono::steady_clock::now();
    stats_ = RoundStats{};
    stats_.round = round_;
    stats_.loss = call_gradient(grad, std::span<const float>(x_), std::span<float>(gradient_));
    std::copy(x_.begin(), x_.end(), stepped_.begin());
    local_.apply(std::span<float>(stepped_), std::span<const float>(gradient_), options_.lr);
    for (std::size_t k = 0; k < z_.size(); ++k)
      z_[k] += static_cast<double>(stepped_[k]) - static_cast<double>(x_[k]);
    auto& message = messages_[static_cast<std::size_t>(round_ % 2)];
    encode_shares(message);
    const auto out = graph_.out_neighbors(rank_);
    for (const int peer : out) transport_.post_to(round_, peer, message);
    stats_.message_bytes = message.size();
    stats_.bytes_sent = message.size() * out.size();
    stats_.compute_seconds = seconds_since(start);
    open_ = true;
  }

  /// Steps 4–5: add the in-neighbours' shares and de-bias into the user's buffer.
  /// @throws ConfigError without begin_round; DecodeError for a malformed share (naming the peer
  ///         and the round; the share is checked whole before any of it is added, but the shares
  ///         of the peers before it are in: the node's round is incomplete, as after a timeout);
  ///         the transport's timeout error for a silent in-neighbour
  RoundStats finish_round() {
    detail::require(open_, "StochasticGradientPush: finish_round without begin_round");
    open_ = false;
    for (const int peer : graph_.in_neighbors(rank_)) {
      const auto wait_start = std::chrono::steady_clock::now();
      const auto bytes = transport_.collect_from(round_, peer);
      stats_.wait_seconds += seconds_since(wait_start);
      add_share(bytes, peer);
      stats_.bytes_received += bytes.size();
    }
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t k = 0; k < z_.size(); ++k) x_[k] = static_cast<float>(z_[k] / weight_);
    stats_.compute_seconds += seconds_since(start);
    ++round_;
    return stats_;
  }

  /// Appends the node's state as one checkpoint record (optimizer/checkpoint.hpp framing): its
  /// dimension, rank, the graph's fingerprint, the round, lr, w_i, z_i (float64) and the local
  /// update's state. x is not stored: it is z/w, rebuilt on load.
  /// @throws ConfigError inside a round (between begin_round and finish_round)
  void save_state(std::vector<std::byte>& out) const {
    detail::require(!open_, "StochasticGradientPush: save_state inside a round (node " + std::to_string(rank_) + ")");
    const std::size_t start = checkpoint::begin_record(out);
    checkpoint::put_string(out, kStateName);
    put_le<std::uint64_t>(out, z_.size());
    put_le<std::int32_t>(out, rank_);
    put_le<std::uint64_t>(out, graph_.fingerprint());
    put_le<std::int64_t>(out, round_);
    put_le<double>(out, options_.lr);
    put_le<double>(out, weight_);
    for (const double zk : z_) put_le<double>(out, zk);
    local_.save(out);
    checkpoint::end_record(out, start);
  }

  /// Restores a state written by save_state and writes x = z/w into the user's buffer; returns the
  /// bytes consumed. Every node of the network must load the same round's states.
  /// @throws DecodeError for truncated or corrupted bytes, or a weight or numerator that is not
  ///         finite (a weight not > 0); ConfigError for a state of another kind, dimension, node,
  ///         graph or local update, or inside a round. Nothing changes when it throws.
  std::size_t load_state(std::span<const std::byte> bytes) {
    detail::require(!open_, "StochasticGradientPush: load_state inside a round (node " + std::to_string(rank_) + ")");
    std::size_t consumed = 0;
    ByteReader in(checkpoint::open_record(bytes, consumed));
    const std::string kind = checkpoint::get_string(in);
    detail::require(kind == kStateName, "checkpoint holds a " + kind + " state, not a " + kStateName + " one");
    const auto d = in.get_le<std::uint64_t>();
    detail::require(d == z_.size(), "checkpoint is for dimension " + std::to_string(d) + ", this node has " +
                                        std::to_string(z_.size()));
    const auto rank = in.get_le<std::int32_t>();
    detail::require(rank == rank_, "checkpoint is of node " + std::to_string(rank) + ", this is node " + std::to_string(rank_));
    detail::require(in.get_le<std::uint64_t>() == graph_.fingerprint(),
                    "checkpoint was saved on another directed graph than " + graph_.name());
    const auto round = in.get_le<std::int64_t>();
    if (round < 0) throw DecodeError("push-sum checkpoint: negative round");
    const double lr = in.get_le<double>();
    PushSumOptions options = options_;
    options.lr = lr;
    options.validate();
    const double weight = in.get_le<double>();
    if (!(std::isfinite(weight) && weight > 0)) throw DecodeError("push-sum checkpoint: weight is not finite and positive");
    std::vector<double> z(z_.size());
    for (double& zk : z) {
      zk = in.get_le<double>();
      if (!std::isfinite(zk)) throw DecodeError("push-sum checkpoint: a non-finite numerator");
    }
    typename Local::State local = local_;
    local.load(in);
    round_ = static_cast<long>(round);
    options_ = options;
    weight_ = weight;
    z_ = std::move(z);
    local_ = std::move(local);
    for (std::size_t k = 0; k < z_.size(); ++k) x_[k] = static_cast<float>(z_[k] / weight_);
    return consumed;
  }

  [[nodiscard]] double weight() const noexcept { return weight_; }           ///< w_i
  [[nodiscard]] std::span<const double> numerator() const noexcept { return z_; }  ///< z_i
  [[nodiscard]] long round() const noexcept { return round_; }
  [[nodiscard]] int rank() const noexcept { return rank_; }

 private:
  static constexpr const char* kStateName = "StochasticGradientPush";

  static double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  /// message = [w share: f64][z shares: d × f32]; keeps z − d_i·(sent share), w likewise.
  void encode_shares(std::vector<std::byte>& message) {
    const double a = graph_.share(rank_);
    const double degree = graph_.out_degree(rank_);
    message.clear();
    message.reserve(sizeof(double) + sizeof(float) * z_.size());
    const double w_share = weight_ * a;
    put_le(message, w_share);
    weight_ -= degree * w_share;
    for (double& zk : z_) {
      const float sent = static_cast<float>(zk * a);
      put_le(message, sent);
      zk -= degree * static_cast<double>(sent);
    }
  }

  void add_share(std::span<const std::byte> bytes, int peer) {
    const std::size_t expected = sizeof(double) + sizeof(float) * z_.size();
    // The message names the share only when it is refused (not built for every accepted one).
    auto refuse = [&](const std::string& why) {
      return DecodeError("push-sum share from node " + std::to_string(peer) + " to node " + std::to_string(rank_) +
                         " in round " + std::to_string(round_) + ": " + why);
    };
    if (bytes.size() != expected)
      throw refuse(std::to_string(bytes.size()) + " bytes, expected " + std::to_string(expected));
    ByteReader in(bytes);
    const double w_share = in.get_le<double>();
    if (!(std::isfinite(w_share) && w_share > 0))
      throw refuse("weight " + std::to_string(w_share) + " is not finite and positive");
    scratch_.resize(z_.size());
    for (float& v : scratch_) {
      v = in.get_le<float>();
      if (!std::isfinite(v)) throw refuse("a non-finite value");
    }
    weight_ += w_share;
    for (std::size_t k = 0; k < z_.size(); ++k) z_[k] += static_cast<double>(scratch_[k]);
  }

  std::span<float> x_;
  DirectedGraph graph_;
  TransportRef transport_;
  PushSumOptions options_;
  int rank_;
  typename Local::State local_;
  std::vector<double> z_;
  double weight_ = 1.0;
  std::vector<float> stepped_;
  std::vector<float> gradient_;
  std::vector<float> scratch_;
  // Two message buffers, alternating by round: a posted message stays unchanged until the next
  // post_to to the same peer (the PeerTransport contract; an MPI send may still be reading it).
  std::array<std::vector<std::byte>, 2> messages_;
  RoundStats stats_{};
  long round_ = 0;
  bool open_ = false;
};

}  // namespace decopt
