// decopt/optimizer/edge_exchange.hpp — EdgeCopyExchange: the exchange of a round over a
// TopologySchedule, and the steps ScheduledSyncStep / ScheduledOverlappedStep built on it.
//
// Round t of node i with peers N_t(i) (the neighbours of i in W(t)), over EdgeCopies<C>
// (decopt/optimizer/edge_copies.hpp; CHOCO-SGD's error memory, Koloskova, Stich & Jaggi, ICML
// 2019, kept per edge so it stays exact when the neighbour set changes — Koloskova et al., "A
// unified theory of decentralized SGD with changing topology and local updates", ICML 2020):
//
//     post:    for j ∈ N_t(i):  q_ij = C(x_i − x̂_{i→j});  x̂_{i→j} += q_ij;  post_to(j, code(q_ij))
//     finish:  for j ∈ N_t(i):  x̂_{j→i} += q_ji  (collect_from(j))
//              x_i += γ Σ_{j ∈ N_t(i)} w_ij(t) (x̂_{j→i} − x̂_{i→j})
//
// One message per peer of the round — one per round on the one-peer exponential schedule (Ying et
// al., NeurIPS 2021) instead of log2 n on the static exponential graph — at 2·d·deg∪ floats of
// state per node (deg∪ = log2 n there). The peers are visited in W(t)'s neighbour order, so the
// RNG draws and the float sums are the same on every transport and thread count.
//
// A static schedule (period 1) needs none of this: its neighbour set never changes, so the one
// public copy x̂ and s of PublicCopyExchange are exact at O(d) state; the exchange then runs
// exactly today's round (same bits as SyncStep / OverlappedStep on that topology).
//
// The edge copies are per edge, so a compressor that keeps state per neighbour of ONE public
// copy (a ModelAwareCompressor: SupportCoded, Malcom-PSGD's default) is a compile-time error:
// use its plain pipeline (ScheduledMalcomPSGD does).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"
#include "decopt/optimizer/decentralized_optimizer.hpp"
#include "decopt/optimizer/edge_copies.hpp"
#include "decopt/optimizer/steps.hpp"
#include "decopt/topology/schedule.hpp"
#include "decopt/transport/transport.hpp"

namespace decopt {

/// The exchange over a TopologySchedule (see the header comment).
struct EdgeCopyExchange {
  static constexpr const char* sync_name = "scheduled-sync";
  static constexpr const char* overlap_name = "scheduled-overlap";

  /// Node i's per-edge state: the schedule, the edge copies and one double-buffered message per
  /// potential peer (a posted buffer stays untouched until the next post_to to that peer returns).
  /// Unbound (the optimizer built over a Topology) or bound to a static schedule, it holds nothing.
  template <class C>
  class State {
   public:
    /// @throws ConfigError for a time-varying schedule over a transport without per-peer delivery
    void bind(const TopologySchedule& schedule, int rank, std::size_t d, const TransportRef& transport) {
      if (schedule.period() == 1) return;  // static: the public copy is exact (header comment)
      if (!transport.delivers_per_peer()) throw_not_per_peer(rank);
      schedule_.emplace(schedule);
      copies_.emplace(schedule.union_graph(), rank, d);
      messages_.assign(copies_->peers(), {});
      parity_.assign(copies_->peers(), 0);
    }
    /// Whether the round runs over edge copies (a schedule of period > 1).
    [[nodiscard]] bool time_varying() const noexcept { return copies_.has_value(); }
    [[nodiscard]] const EdgeCopies<C>* copies() const noexcept { return copies_ ? &*copies_ : nullptr; }

    /// Checkpoint part: a flag and, when bound, the copies.
    void save(std::vector<std::byte>& out) const {
      put_le<std::uint8_t>(out, copies_ ? 1 : 0);
      if (copies_) copies_->save(out);
    }
    /// @throws DecodeError for a bad flag or bad copies; ConfigError for a record of a
    ///         time-varying schedule loaded into a static one or the converse
    void load(ByteReader& in) {
      const auto saved = in.get_le<std::uint8_t>();
      detail::require_decodable(saved <= 1, "checkpoint's edge-copy flag is not 0 or 1");
      detail::require((saved == 1) == time_varying(),
                      saved ? "checkpoint was written over per-edge copies (a time-varying schedule), this optimizer "
                              "keeps one public copy"
                            : "checkpoint was written with one public copy, this optimizer keeps per-edge copies "
                              "(a time-varying schedule)");
      if (copies_) copies_->load(in);
    }

   private:
    friend struct EdgeCopyExchange;
    std::vector<std::byte>& next_message(std::size_t slot) {
      parity_[slot] ^= 1;
      auto& m = messages_[slot][parity_[slot]];
      m.clear();
      return m;
    }
    std::optional<TopologySchedule> schedule_;
    std::optional<EdgeCopies<C>> copies_;
    std::vector<std::array<std::vector<std::byte>, 2>> messages_;
    std::vector<unsigned char> parity_;
  };

  /// q_ij = C(x − x̂_{i→j}); x̂_{i→j} += q_ij; post_to(j) for every peer j of the round.
  template <class Node>
  static void post(Node& node) {
    auto& state = node.exchange_state_;
    if (!state.time_varying()) {
      PublicCopyExchange::post(node);
      return;
    }
    node.require_finite_model();
    auto& scratch = detail::RoundScratch::for_this_thread(node.dimension());
    const std::span<float> residual(scratch.gradient.data(), node.dimension());
    const std::span<float> q(scratch.reconstruction.data(), node.dimension());
    for (const Edge& e : state.schedule_->at(node.round_).neighbors(node.rank_)) {
      const std::size_t slot = state.copies_->slot_of(e.node);
      auto& message = state.next_message(slot);
      state.copies_->encode_to(slot, node.compressor_, node.x_, residual, node.rng_, message, q);
      node.advance_clock_to_post();
      node.transport_.post_to(node.exchange_, e.node, message);
      node.current_.bytes_sent += message.size();
      node.current_.message_bytes = std::max<std::uint64_t>(node.current_.message_bytes, message.size());
      ++node.current_.messages_sent;
    }
  }

  /// x̂_{j→i} += q_ji for every peer j of the round; x += γ Σ_j w_ij(t) (x̂_{j→i} − x̂_{i→j}).
  template <class Node>
  static void finish(Node& node) {
    auto& state = node.exchange_state_;
    if (!state.time_varying()) {
      PublicCopyExchange::finish(node);
      return;
    }
    const Topology& round = state.schedule_->at(node.round_);
    const long exchange = node.exchange_++;
    const auto start = Node::Clock::now();
    double waited = 0;
    for (const Edge& e : round.neighbors(node.rank_)) {
      const auto wait_start = Node::Clock::now();
      const std::span<const std::byte> message = node.transport_.collect_from(exchange, e.node);
      waited += Node::seconds_since(wait_start);
      state.copies_->decode_from(state.copies_->slot_of(e.node), node.compressor_, message);
      node.current_.bytes_received += message.size();
    }
    state.copies_->mix(round, node.x_, static_cast<float>(node.options_.consensus_step));
    node.current_.wait_seconds += waited;
    node.account_mixing(Node::seconds_since(start) - waited);
  }
};

/// Synchronous round over a TopologySchedule (per-edge copies; same bits as SyncStep on a static one).
using ScheduledSyncStep = SyncOrder<EdgeCopyExchange>;
/// Overlapped (CoCoD-style) round over a TopologySchedule.
using ScheduledOverlappedStep = OverlappedOrder<EdgeCopyExchange>;

}  // namespace decopt
