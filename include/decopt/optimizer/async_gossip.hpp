// decopt/optimizer/async_gossip.hpp — asynchronous compressed gossip with bounded staleness: one
// slow node no longer slows every node.
//
// AD-PSGD (Lian, Zhang, Zhang & Liu, "Asynchronous Decentralized Parallel Stochastic Gradient
// Descent", ICML 2018) with CHOCO-SGD's error memory (Koloskova, Stich & Jaggi, ICML 2019). The
// synchronous step (SyncStep) waits every round for every neighbour, so a node 3× slower to
// compute holds the whole network to its pace. Bounding the staleness in *rounds* alone would not
// help: in the long run the slow node's round rate would still bound everyone's. So the gossip
// rounds are decoupled from the gradients. Node i's gossip round r:
//   1. if a gradient g (computed on x at round r₀) is ready — or r − r₀ = G (max_gradient_age, by
//      default k), when the node must wait for it — apply it: x = x − η g; x = prox_{ηR}(x). If none is pending, the driver may
//      start the next one on the current x (start_gradient) first.
//   2. q = C(x − x̂);  x̂ += q;  s += w_ii q;  post code(q) tagged with round r (one broadcast)
//   3. apply the neighbours' messages that have arrived, s += w_ij q_j, in the canonical order
//      (round ρ = 0, 1, …; within a round, neighbour order) and never beyond round r; wait only
//      while some neighbour's round r − k has not been applied (it is more than k rounds behind)
//   4. x = x + γ (s − x̂)                 consensus
// A node slow to compute keeps gossiping at its neighbours' pace and contributes fewer gradient
// steps (each at most G rounds stale); the others never wait for its gradients. Two bounds, not
// one: measured on the MLP (8-node ring, threads), mixing public copies k = 4 rounds old cost 154
// rounds to 0.80 instead of 112 at k = 1 even with no slow node, so k stays small and G ≥ F − 1
// lets an F times slower node keep pace.
//
// Invariants. Messages are increments of x̂_j, so once every posted message has been applied (the
// run drained: drain()), s = w_ii x̂_i + Σ_j w_ij x̂_j, up to the float rounding of the order the
// increments were summed in (the same order as SyncStep's on every node: round by round,
// neighbours in order; only where a node stops before mixing depends on timing). At every mix the
// oldest neighbour round applied is ≥ r − k (staleness ≤ k), every gradient applied was computed
// at most G rounds earlier, and a neighbour's queue holds at most 2k + 1 messages (it may finish
// round r + k and post r + k + 1 while this node's oldest applied round is r − k); stats() reports
// the largest of each seen.
//
// k = 0 with a gradient every round is exactly SyncStep's round (the same bits as
// DecentralizedOptimizer<C, P, SyncStep> with resync_every = 0): in round r every node applies
// exactly its neighbours' round-r messages, in neighbour order.
//
// Determinism. On SimulatedNetwork, driven by AsyncSimulation (async_simulation.hpp: an
// event-driven virtual clock under a seeded per-node speed model, ties broken by rank), the same
// seed gives the same bits every run. On ThreadNetwork and MPI, what a node has received when it
// mixes depends on timing, so for k > 0 the bits may differ from run to run (k = 0 does not).
//
// State per node: x (the user's buffer), x̂, s and the pending gradient: 3·d floats beside x, plus
// the compressor's scratch and the neighbours' queued messages (≤ 2k + 1 each). No periodic
// resynchronisation of s (Options::resync_every is not used): a run of 10⁴ rounds drifts ≈ 7e-4
// relative (options.hpp).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "decopt/compress/hooks.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/finite.hpp"
#include "decopt/core/rng.hpp"
#include "decopt/optimizer/concepts.hpp"
#include "decopt/optimizer/local_update.hpp"
#include "decopt/optimizer/options.hpp"
#include "decopt/optimizer/residual_coding.hpp"
#include "decopt/prox/prox.hpp"
#include "decopt/topology/topology.hpp"
#include "decopt/transport/queued_receive.hpp"

namespace decopt {

/// Options of AsyncGossip: the synchronous step's lr, γ and seed, and the staleness bound k.
struct AsyncOptions {
  /// The largest k accepted: beyond it the bound means nothing (queues of 2k + 1 messages of d
  /// floats per neighbour) and is a typo.
  static constexpr long kMaxStaleness = 1 << 16;

  double lr = 0.1;              ///< η > 0
  double consensus_step = 1.0;  ///< γ ∈ (0, 1]
  std::uint64_t seed = 0;       ///< the compressor's random streams derive from it, as Options::seed
  long max_staleness = 1;       ///< k ∈ [0, kMaxStaleness]: rounds a neighbour may lag before a node waits
  /// G ∈ [0, kMaxStaleness], or −1 for k: rounds a gradient may age before the node waits for it.
  /// A node F times slower to compute keeps pace when G ≥ F − 1, while k can stay small (the
  /// neighbours' public copies a node mixes are then at most k rounds old).
  long max_gradient_age = -1;

  /// G, with −1 meaning k.
  [[nodiscard]] long gradient_age_bound() const noexcept { return max_gradient_age < 0 ? max_staleness : max_gradient_age; }

  /// The synchronous step's options with the same lr, γ and seed (no resynchronisation).
  [[nodiscard]] Options synchronous() const {
    Options o;
    o.lr = lr;
    o.consensus_step = consensus_step;
    o.seed = seed;
    o.resync_every = 0;
    return o;
  }
  /// @throws ConfigError naming the option out of range
  void validate() const {
    synchronous().validate();
    detail::require(max_staleness >= 0 && max_staleness <= kMaxStaleness,
                    "option max_staleness (k) must be in [0, " + std::to_string(kMaxStaleness) + "] rounds, got " +
                        std::to_string(max_staleness));
    detail::require(max_gradient_age >= -1 && max_gradient_age <= kMaxStaleness,
                    "option max_gradient_age (G) must be -1 (= max_staleness) or in [0, " + std::to_string(kMaxStaleness) +
                        "] rounds, got " + std::to_string(max_gradient_age));
  }
};

/// What an AsyncGossip node did so far.
struct AsyncStats {
  long rounds = 0;               ///< gossip rounds finished
  long gradient_steps = 0;       ///< gradients applied (a slow node: fewer than rounds)
  long max_gradient_age = 0;     ///< rounds between computing and applying a gradient, the largest (≤ G)
  long max_neighbor_lag = 0;     ///< r − (oldest neighbour round applied) at a mix, the largest (≤ k)
  std::size_t max_queued = 0;    ///< messages waiting in one neighbour's queue, the most (≤ 2k + 1)
  std::uint64_t bytes_sent = 0;  ///< message bytes × neighbours
  std::uint64_t bytes_received = 0;
  double wait_seconds = 0;       ///< blocked in receive() (real-time transports)
};

/**
 * @brief One node of asynchronous compressed gossip (AD-PSGD with CHOCO's error memory).
 * @tparam CompressorT a ResidualCompressor (Compressor<S, Q, C>): it decodes any message on its own
 * @tparam ProxT       a ProximalPolicy applied with each gradient step (NoProx for none)
 *
 * Drive it with step(grad) in a thread of its own (a gradient every round), or with the primitives
 * (start_gradient, apply_gradient, post, try_finish / finish) when gradients take their own time
 * (a slow device: decopt-train --slow-node, AsyncSimulation's speed model).
 */
template <class CompressorT, class ProxT = NoProx>
class AsyncGossip {
  static_assert(ResidualCompressor<CompressorT>,
                "decopt: AsyncGossip needs a ResidualCompressor (encode / decode_add of the residual alone, e.g. "
                "Compressor<Dense, DitheredQuantizer, RawCoder>); a ModelAwareCompressor (SupportCoded) decodes with "
                "per-round state the asynchronous order does not keep");
  static_assert(ProximalPolicy<ProxT>,
                "decopt: the Prox policy needs apply(span<float>, double step) const and value(span<const float>) const");

 public:
  using Compressor = CompressorT;
  using Prox = ProxT;

  /**
   * @param params    the node's model x, updated in place; every node starts from the same x⁰
   * @param topology  W; this node's row is copied
   * @param transport this node's QueuedTransport (ThreadNetwork or SimulatedNetwork endpoint)
   * @throws ConfigError for bad options, an empty buffer, or a transport wired to other neighbours
   */
  AsyncGossip(std::span<float> params, const Topology& topology, QueuedTransportRef transport, AsyncOptions options = {},
              Compressor compressor = {}, Prox prox = {})
      : x_(params), transport_(transport), options_(options), compressor_(std::move(compressor)),
        prox_(std::move(prox)), rank_(transport.rank()), local_(SGD{}.state(params.size())) {
    options_.validate();
    detail::require(!params.empty(), "parameter buffer is empty");
    detail::require(rank_ >= 0 && rank_ < topology.size(),
                    "transport rank " + std::to_string(rank_) + " is not a node of " + topology.name());
    const auto neighbors = topology.neighbors(rank_);
    neighbors_.assign(neighbors.begin(), neighbors.end());
    std::vector<int> expected;
    for (const Edge& e : neighbors_) expected.push_back(e.node);
    detail::require(transport.neighbor_ranks() == expected,
                    "transport of rank " + std::to_string(rank_) + " is not wired to its neighbours in " + topology.name());
    self_weight_ = topology.self_weight(rank_);
    const std::size_t d = params.size();
    public_copy_.assign(d, 0.0f);
    neighbor_sum_.assign(d, 0.0f);
    gradient_.assign(d, 0.0f);
    residual_.assign(d, 0.0f);
    reconstruction_.assign(d, 0.0f);
    // The same stream and compressor binding as DecentralizedOptimizer's (k = 0 gives its bits).
    rng_ = Rng::derive(options_.seed, {static_cast<std::uint64_t>(rank_), 0x6f707469ULL /* "opti" */});
    hooks::bind_node(compressor_, rank_, topology.size(), options_.seed);
  }

  AsyncGossip(const AsyncGossip&) = delete;
  AsyncGossip& operator=(const AsyncGossip&) = delete;
  AsyncGossip(AsyncGossip&&) noexcept = default;

  /// One gossip round with a gradient computed and applied at its start (no slow device), waiting
  /// only for neighbours more than k rounds behind. For a node in a thread of its own.
  /// @returns the gradient callback's loss (NaN when it returns none)
  template <GradientFunction Grad>
  double step(Grad&& grad) {
    const double loss = start_gradient(grad);
    apply_gradient();
    post();
    finish();
    return loss;
  }

  // ---- the primitives of a round (header comment, steps 1–4) ----

  /// Computes g = ∇f(x) on the current x and keeps it pending. @returns the callback's loss
  /// @throws ConfigError when a gradient is already pending; NonFiniteError for a NaN/∞ in g
  template <GradientFunction Grad>
  double start_gradient(Grad&& grad) {
    detail::require(!pending_, "start_gradient: node " + std::to_string(rank_) + " already has a gradient pending");
    const double loss = call_gradient(grad, std::span<const float>(x_), std::span<float>(gradient_));
    if (!decopt::all_finite(std::span<const float>(gradient_)))
      throw NonFiniteError("gradient of node " + std::to_string(rank_) + " in round " + std::to_string(round_));
    pending_ = true;
    pending_round_ = round_;
    return loss;
  }
  [[nodiscard]] bool gradient_pending() const noexcept { return pending_; }
  /// Rounds since the pending gradient was computed (0 when none is pending).
  [[nodiscard]] long gradient_age() const noexcept { return pending_ ? round_ - pending_round_ : 0; }
  /// Whether the pending gradient must be applied before this round's post (its age is G).
  [[nodiscard]] bool gradient_due() const noexcept { return pending_ && gradient_age() >= options_.gradient_age_bound(); }

  /// x = prox_{ηR}(x − η g) with the pending gradient. @throws ConfigError when none is pending
  /// or the round is already posted
  void apply_gradient() {
    detail::require(pending_ && !posted_, "apply_gradient: node " + std::to_string(rank_) +
                                              (posted_ ? " already posted this round" : " has no gradient pending"));
    local_.apply(x_, std::span<const float>(gradient_), options_.lr);
    if constexpr (!Prox::is_identity) prox_.apply(x_, options_.lr);
    stats_.max_gradient_age = std::max(stats_.max_gradient_age, round_ - pending_round_);
    ++stats_.gradient_steps;
    pending_ = false;
  }

  /// q = C(x − x̂); x̂ += q; s += w_ii q; posts the message of this round.
  /// @throws ConfigError when a due gradient was not applied first, or posted twice;
  ///         NonFiniteError for a NaN/∞ in x
  void post() {
    detail::require(!posted_, "post: node " + std::to_string(rank_) + " posted round " + std::to_string(round_) + " already");
    detail::require(!gradient_due(), "post: node " + std::to_string(rank_) + "'s gradient is " +
                                         std::to_string(gradient_age()) + " rounds old (max_gradient_age " +
                                         std::to_string(options_.gradient_age_bound()) + "): apply_gradient() first");
    if (!decopt::all_finite(std::span<const float>(x_)))
      throw NonFiniteError("model of node " + std::to_string(rank_) + " at round " + std::to_string(round_));
    message_.clear();
    detail::encode_round(compressor_, x_, public_copy_, std::span<float>(residual_), rng_, message_,
                         std::span<float>(reconstruction_));
    const float w_self = static_cast<float>(self_weight_);
    for (std::size_t k = 0; k < x_.size(); ++k) {
      public_copy_[k] += reconstruction_[k];
      neighbor_sum_[k] += w_self * reconstruction_[k];
    }
    transport_.post_queued(round_, message_);
    stats_.bytes_sent += message_.size() * neighbors_.size();
    posted_ = true;
  }

  /// Applies what has arrived (never beyond this round) and, when no neighbour is more than k
  /// rounds behind, mixes and ends the round. Never waits. @returns whether the round ended
  /// @throws ConfigError before post(); DecodeError for a malformed or out-of-order message
  bool try_finish() {
    detail::require(posted_, "try_finish: node " + std::to_string(rank_) + " has not posted round " + std::to_string(round_));
    apply_arrived(round_, false);
    if (!neighbors_caught_up()) return false;
    mix();
    return true;
  }

  /// As try_finish, waiting (receive()) for the messages of neighbours more than k rounds behind.
  /// @throws TransportError after the transport's timeout; ConfigError on a transport that cannot wait
  void finish() {
    detail::require(posted_, "finish: node " + std::to_string(rank_) + " has not posted round " + std::to_string(round_));
    apply_arrived(round_, true);
    mix();
  }

  /// Applies every neighbour's messages up to round `last` (waiting for them when `wait`), after
  /// which s = Σ_j w_ij x̂_j once the neighbours have posted nothing beyond `last`.
  /// @returns whether every message up to `last` was applied (always, when waiting)
  bool drain(long last, bool wait) {
    detail::require(!posted_, "drain: node " + std::to_string(rank_) + " is inside round " + std::to_string(round_));
    apply_arrived(last, wait, last);
    return neighbors_.empty() || next_round_ > last;
  }

  /// The oldest neighbour round not yet fully applied: rounds below it are in s.
  [[nodiscard]] long applied_through() const noexcept { return next_round_ - 1; }
  /// The neighbour slot whose round next_round_ message is applied next (in the canonical order).
  [[nodiscard]] std::size_t next_slot() const noexcept { return next_slot_; }
  /// Whether this round's post is done and the mix is not.
  [[nodiscard]] bool posted() const noexcept { return posted_; }

  // ---- inspection ----
  [[nodiscard]] int rank() const noexcept { return rank_; }
  [[nodiscard]] long round() const noexcept { return round_; }
  [[nodiscard]] std::size_t dimension() const noexcept { return x_.size(); }
  [[nodiscard]] std::span<float> parameters() const noexcept { return x_; }
  [[nodiscard]] std::span<const float> public_copy() const noexcept { return public_copy_; }
  [[nodiscard]] std::span<const float> neighbor_sum() const noexcept { return neighbor_sum_; }
  [[nodiscard]] std::span<const Edge> neighbors() const noexcept { return neighbors_; }
  [[nodiscard]] double self_weight() const noexcept { return self_weight_; }
  [[nodiscard]] const AsyncStats& stats() const noexcept { return stats_; }
  [[nodiscard]] const AsyncOptions& options() const noexcept { return options_; }

 private:
  using Clock = std::chrono::steady_clock;

  /// Whether every neighbour's round r − k is in s.
  [[nodiscard]] bool neighbors_caught_up() const noexcept {
    return neighbors_.empty() || next_round_ > round_ - options_.max_staleness;
  }

  /// Applies arrived messages in the canonical order (round, slot) up to round `limit`; when
  /// `wait`, waits for those of rounds ≤ wait_through (default: this round − k).
  void apply_arrived(long limit, bool wait, std::optional<long> wait_through = std::nullopt) {
    if (neighbors_.empty()) return;
    const long must = wait_through.value_or(round_ - options_.max_staleness);
    while (next_round_ <= limit) {
      std::optional<ArrivedMessage> m;
      if (wait && next_round_ <= must) {
        const auto start = Clock::now();
        m = transport_.receive(next_slot_);
        stats_.wait_seconds += std::chrono::duration<double>(Clock::now() - start).count();
      } else {
        m = transport_.try_receive(next_slot_);
      }
      if (!m) break;
      const Edge& from = neighbors_[next_slot_];
      if (m->round != next_round_)
        throw DecodeError("async gossip: node " + std::to_string(rank_) + " expected round " + std::to_string(next_round_) +
                          " from neighbour " + std::to_string(from.node) + " but got round " + std::to_string(m->round));
      compressor_.decode_add(m->bytes, static_cast<float>(from.weight), std::span<float>(neighbor_sum_));
      stats_.bytes_received += m->bytes.size();
      if (++next_slot_ == neighbors_.size()) {
        next_slot_ = 0;
        ++next_round_;
      }
    }
    for (std::size_t k = 0; k < neighbors_.size(); ++k) stats_.max_queued = std::max(stats_.max_queued, transport_.queued(k));
  }

  /// x += γ(s − x̂); the round ends.
  void mix() {
    const float gamma = static_cast<float>(options_.consensus_step);
    for (std::size_t k = 0; k < x_.size(); ++k) x_[k] += gamma * (neighbor_sum_[k] - public_copy_[k]);
    if (!neighbors_.empty()) stats_.max_neighbor_lag = std::max(stats_.max_neighbor_lag, round_ - (next_round_ - 1));
    posted_ = false;
    ++round_;
    stats_.rounds = round_;
  }

  std::span<float> x_;
  QueuedTransportRef transport_;
  AsyncOptions options_;
  Compressor compressor_;
  Prox prox_;
  int rank_;
  SGD::State local_;
  std::vector<Edge> neighbors_;
  double self_weight_ = 1;
  std::vector<float> public_copy_;     // x̂
  std::vector<float> neighbor_sum_;    // s
  std::vector<float> gradient_;        // the pending g
  std::vector<float> residual_;        // scratch: x − x̂
  std::vector<float> reconstruction_;  // scratch: q
  std::vector<std::byte> message_;     // this round's message (the transports copy it)
  Rng rng_{0};
  long round_ = 0;
  bool posted_ = false;
  bool pending_ = false;
  long pending_round_ = 0;
  long next_round_ = 0;       // the canonical cursor: the next message to apply is round next_round_
  std::size_t next_slot_ = 0;  //   from neighbour slot next_slot_
  AsyncStats stats_;
};

}  // namespace decopt
