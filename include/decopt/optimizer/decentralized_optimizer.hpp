// decopt/optimizer/decentralized_optimizer.hpp — one node of compressed decentralized SGD over the
// user's own parameter buffer.
//
// Round of node i (Malcom-PSGD, Campbell et al. arXiv 2311.05760; CHOCO-SGD, Koloskova et al. 2019):
//   1. g = ∇f_i(x; ξ)                    the user's callback
//   2. x = U(x, g, η)                     the local update: SGD, heavy ball, Nesterov, Adam, AdamW
//                                         (optimizer/local_update.hpp); τ local steps
//   3. x = prox_{ηR}(x)                   e.g. soft threshold for R = λ‖·‖₁ (over a ParameterLayout:
//                                         only its prox segments, e.g. not biases): proximal SGD
//   4. q = C(x − x̂)                       compress the residual of the (sparse) model
//   5. post code(q); collect code(q_j) from every neighbour
//   6. x̂ += q;  s += w_ii q + Σ_j w_ij q_j
//   7. x = x + γ (s − x̂)                  consensus
// The StepPolicy orders these (SyncStep: 1–3 then 4–5, 6–7; OverlappedStep: 4–5, then 1–2 in
// flight, 6–7, and the prox last, so that the next round sends the proximal point).
//
// State is O(d) whatever the degree: x (the user's buffer, updated in place, never copied), the
// public copy x̂ (what the neighbours know of x) and s = Σ_j w_ij x̂_j over the node and its
// neighbours, kept incrementally — never one x̂ per neighbour. Scratch for the gradient, residual
// and reconstruction is per thread (shared by every node a thread drives), so a simulation of n
// nodes holds 2·d floats of state per node plus messages and the local update's buffers (none for
// SGD, m for momentum, m and v for Adam).
//
// Exception guarantee. A refused call — bad options, sizes or driving order, a ConfigError from
// the checks at the top of a call — changes nothing. Any exception from inside a round or a
// resynchronisation (the gradient callback's, NonFiniteError, a neighbour's malformed message, a
// TransportError timeout) *poisons* the node: x, x̂, s, momentum, the RNG and the exchange counter
// may be half-way through the round, so from then on begin_round, finish_round, begin_resync,
// finish_resync and save_state throw Error("node i was left inconsistent by an exception in round
// r (<what>); reload a checkpoint with load_state() to continue"), and a successful load_state
// clears the poison. This is the basic guarantee, deliberately not the strong one (a rollback of
// the round): the neighbours have already consumed this node's message, or not, and have posted
// their own, so no local rollback could make the network consistent again — the nodes must all
// restart from one checkpoint round (a ThreadNetwork is reset() for it) — and a rollback would
// copy x, x̂ and s (3·d floats, 4·d with momentum) at the start of every round: at d = 10⁶, 1.5 ms
// at the out-of-cache rate of BM_Memcpy/10·2^20 (7.8 GB/s) beside the 7.5 ms of a Malcom-PSGD round
// per node (BM_MalcomRoundPerNode/1000000/2, CPU time, same run): a fifth of every round, paid
// for a state that is unusable anyway.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <concepts>
#include <cmath>
#include <cstddef>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/finite.hpp"
#include "decopt/core/rng.hpp"
#include "decopt/optimizer/checkpoint.hpp"
#include "decopt/compress/hooks.hpp"
#include "decopt/compress/scale_blocks.hpp"
#include "decopt/optimizer/concepts.hpp"
#include "decopt/optimizer/local_update.hpp"
#include "decopt/optimizer/lost_peer_repair.hpp"
#include "decopt/optimizer/options.hpp"
#include "decopt/optimizer/rejoin.hpp"
#include "decopt/optimizer/residual_coding.hpp"
#include "decopt/optimizer/steps.hpp"
#include "decopt/parameters/layout.hpp"
#include "decopt/parameters/segmented_prox.hpp"
#include "decopt/prox/prox.hpp"
#include "decopt/topology/schedule.hpp"
#include "decopt/topology/topology.hpp"
#include "decopt/transport/transport.hpp"

namespace decopt {

namespace detail {
/// Per-thread scratch buffers, grown on demand and shared by every optimizer a thread drives.
struct RoundScratch {
  std::vector<float> gradient;   // g, then the residual x − x̂
  std::vector<float> reconstruction;  // q
  std::vector<std::span<const std::byte>> inbox;
  static RoundScratch& for_this_thread(std::size_t d) {
    thread_local RoundScratch scratch;
    if (scratch.gradient.size() < d) {
      scratch.gradient.resize(d);
      scratch.reconstruction.resize(d);
    }
    return scratch;
  }
};

/// A contiguous float view of an Eigen dense lvalue (Matrix, Map, Ref, Block of a column-major
/// column...). Throws ConfigError when the expression is not contiguous in memory.
template <class Derived>
std::span<float> contiguous_span(Derived& buffer) {
  static_assert(std::is_same_v<typename Derived::Scalar, float>,
                "decopt: the parameter buffer must hold float (decopt's messages are float32)");
  const auto size = static_cast<std::size_t>(buffer.size());
  const bool contiguous = buffer.innerStride() == 1 &&
                          (buffer.outerSize() <= 1 || buffer.outerStride() == buffer.innerSize());
  require(contiguous, "parameter buffer: the Eigen expression is not contiguous in memory");
  return {buffer.data(), size};
}
}  // namespace detail

/**
 * @brief One node of compressed decentralized optimization over a user-owned parameter buffer.
 *
 * @tparam Compressor  a ResidualCompressor, e.g. Compressor<Dense, DitheredQuantizer, VectorSourceCoder>, or a
 *                     ModelAwareCompressor, e.g. SupportCoded<…> (sparse models cost fewer bits)
 * @tparam Prox        a ProximalPolicy applied after consensus, e.g. L1Prox (NoProx for none)
 * @tparam Step        SyncStep or OverlappedStep
 * @tparam Local       a LocalUpdate run by step() for each local step: SGD (default), HeavyBall,
 *                     Nesterov, Adam, AdamW (exchange() leaves the local step to the user)
 *
 * Drive it with step(grad) in a thread or process of its own, or with begin_round(grad) on every
 * node and then finish_round() on every node in a single-process simulation.
 *
 * Exceptions: a call refused at its checks changes nothing; an exception from inside a round or a
 * resynchronisation poisons the node — every later round, resynchronisation or save_state throws
 * Error naming the node, the round and the cause — until load_state() restores a checkpoint
 * (why poisoning and not rollback: the header comment).
 */
template <class CompressorT, class ProxT = NoProx, class StepT = SyncStep, class LocalT = SGD>
class DecentralizedOptimizer {
  static_assert(RoundCompressor<CompressorT>,
                "decopt: the Compressor policy needs encode(span<const float>, Rng&, vector<byte>&, "
                "span<float>), decode_add(span<const byte>, float, span<float>) const, and the traits "
                "`unbiased` and `lossless` (or, for a ModelAwareCompressor such as SupportCoded, bind_neighbors, "
                "encode_model and decode_add_from: decopt/optimizer/residual_coding.hpp)");
  static_assert(StepT::keeps_public_copy || ResidualCompressor<CompressorT>,
                "decopt: a ModelAwareCompressor (SupportCoded) codes changes of the public copy x̂; this step keeps none "
                "(DirectGossipStep): use SyncStep or OverlappedStep");
  static_assert(ProximalPolicy<ProxT>,
                "decopt: the Prox policy needs apply(span<float>, double step) const and value(span<const float>) const");
  static_assert(LocalUpdate<LocalT>,
                "decopt: the Local policy needs `name`, validate() and state(d) with apply(x, g, lr), save, load "
                "and dimension() (decopt/optimizer/local_update.hpp: SGD, HeavyBall, Nesterov, Adam, AdamW)");
  static_assert(StepPolicy<StepT>, "decopt: the Step policy needs `name`, `overlaps_communication` and `keeps_public_copy`");
  static_assert(converges_with<CompressorT, StepT>,
                "decopt: this step has no error memory (no public copy x̂), so it converges only with an unbiased "
                "compressor; this compressor is biased (TopK, RandTopK, Sign or RandomK without the d/k scale): use "
                "SyncStep or OverlappedStep, whose error memory corrects a biased compressor");

 public:
  using Compressor = CompressorT;
  using Prox = ProxT;
  using Step = StepT;
  using Local = LocalT;

  /**
   * @param params    the user's parameters x, updated in place (never copied); every node must
   *                  start from the same x⁰
   * @param topology  the mixing matrix W; this node's row is copied, the topology need not outlive
   * @param transport this node's endpoint; its rank() selects the row of W; must outlive the optimizer
   * @param local     the local update step() runs (its state is sized here and checkpointed)
   * @throws ConfigError for bad options, sizes or hyperparameters, a transport that does not match
   *         the topology, or Options::momentum > 0 with a Local other than SGD (set the momentum
   *         in the HeavyBall / Nesterov policy instead)
   */
  DecentralizedOptimizer(std::span<float> params, const Topology& topology, TransportRef transport,
                         Options options = {}, Compressor compressor = {}, Prox prox = {}, Local local = {})
      : x_(params), transport_(transport), options_(options), compressor_(std::move(compressor)),
        prox_(std::move(prox)), rank_(transport.rank()), local_(local.state(params.size())) {
    options_.validate();
    detail::require(!params.empty(), "parameter buffer is empty");
    detail::require(rank_ >= 0 && rank_ < topology.size(),
                    "transport rank " + std::to_string(rank_) + " is not a node of " + topology.name());
    if constexpr (requires { Compressor::mixes_exactly; })
      detail::require(!Compressor::mixes_exactly || options_.consensus_step == 1.0,
                      "option consensus_step (gamma) = " + detail::format_double(options_.consensus_step) +
                          ": D-PSGD averages exactly, with gamma = 1 (for a damped consensus step use "
                          "Compressor<Dense, Identity, RawCoder> with CHOCO's error memory)");
    const auto neighbors = topology.neighbors(rank_);
    detail::require(transport.degree() == static_cast<int>(neighbors.size()),
                    "transport of rank " + std::to_string(rank_) + " has " + std::to_string(transport.degree()) +
                        " neighbours but the topology gives it " + std::to_string(neighbors.size()));
    neighbors_.assign(neighbors.begin(), neighbors.end());
    require_same_neighbors(transport);
    self_weight_ = topology.self_weight(rank_);
    topology_fingerprint_ = topology.fingerprint();
    graph_name_ = topology.name();
    const std::size_t d = params.size();
    if constexpr (Step::keeps_public_copy) {
      public_copy_.assign(d, 0.0f);
      neighbor_sum_.assign(d, 0.0f);
    }
    if (options_.momentum > 0) {
      detail::require(std::is_same_v<Local, SGD>,
                      std::string("Options::momentum is heavy-ball momentum for the default SGD local update; "
                                  "the local update here is '") +
                          Local::name + "': set the momentum in its policy (HeavyBall, Nesterov) and leave "
                                        "Options::momentum at 0");
      if constexpr (std::is_same_v<Local, SGD>)
        options_momentum_.emplace(HeavyBall{.momentum = options_.momentum, .weight_decay = local.weight_decay}.state(d));
    }
    if (transport.drops_lost_peers()) {
      detail::require(Step::keeps_public_copy, std::string("on_lost_peer = drop repairs the neighbour sum s of a step "
                                                           "with a public copy x̂; step '") + Step::name + "' keeps none");
      lost_peers_.emplace(topology, rank_);
    }
    rng_ = Rng::derive(options_.seed, {static_cast<std::uint64_t>(rank_), 0x6f707469ULL /* "opti" */});
    hooks::bind_node(compressor_, rank_, topology.size(), options_.seed);
    detail::bind_neighbors(compressor_, neighbors_.size(), d);
  }

  /**
   * Over a buffer of named tensors (FSDP's FlatParameter convention): as the constructor above,
   * and the prox applies only to the layout's prox segments (ℓ1 on weights, not on biases and
   * norms; padding is kept at zero), segments with SegmentOptions::own_scale get a quantizer norm
   * of their own, and checkpoints record the layout and refuse another one.
   * @param layout  the tensors of `params` (layout.size() == params.size()); copied
   * @param topology a Topology, or a TopologySchedule (as the schedule constructor)
   * @throws ConfigError as above; for a buffer of another size than the layout's; when a segment
   *         asks for own_scale and the compressor cannot scale blocks of its own (set_scale_blocks)
   */
  template <class Graph>
    requires std::same_as<Graph, Topology> || std::same_as<Graph, TopologySchedule>
  DecentralizedOptimizer(std::span<float> params, const ParameterLayout& layout, const Graph& topology,
                         TransportRef transport, Options options = {}, Compressor compressor = {}, Prox prox = {},
                         Local local = {})
      : DecentralizedOptimizer(params, topology, transport, options, std::move(compressor), std::move(prox),
                               std::move(local)) {
    detail::require(layout.size() == params.size(),
                    "parameter buffer of " + std::to_string(params.size()) + " floats, the layout has " +
                        std::to_string(layout.size()));
    use_scale_blocks(layout);
    hooks::set_matrix_blocks(compressor_, std::span<const MatrixBlock>(matrix_blocks_of(layout)));
    if constexpr (!Prox::is_identity) segmented_prox_.emplace(layout, prox_);
    layout_.emplace(layout);
  }

  /// Over any contiguous Eigen dense lvalue of float (VectorXf, Map, Ref, MatrixXf...).
  template <class Derived>
    requires requires(Derived& b) { { b.data() } -> std::convertible_to<float*>; b.innerStride(); }
  DecentralizedOptimizer(Derived& params, const Topology& topology, TransportRef transport, Options options = {},
                         Compressor compressor = {}, Prox prox = {}, Local local = {})
      : DecentralizedOptimizer(detail::contiguous_span(params), topology, transport, options,
                               std::move(compressor), std::move(prox), std::move(local)) {}

  /**
   * Over a TopologySchedule: round t mixes with W(t) (decopt/topology/schedule.hpp). Needs a step
   * whose exchange follows a schedule (ScheduledSyncStep, ScheduledOverlappedStep:
   * decopt/optimizer/edge_exchange.hpp). A static schedule (period 1) runs exactly the round over
   * its one Topology; a time-varying one keeps per-edge copies (2·d·deg∪ floats) instead of x̂ and
   * s, sends only to the round's peers and needs no resynchronisation. Checkpoints record the
   * schedule's fingerprint and refuse another schedule.
   * @param transport built on schedule.transport_graph(); a time-varying schedule needs per-peer
   *                  delivery (SimulatedNetwork, ThreadNetwork, MpiTransport)
   * @throws ConfigError as the Topology constructor, and for a transport without per-peer delivery
   */
  DecentralizedOptimizer(std::span<float> params, const TopologySchedule& schedule, TransportRef transport,
                         Options options = {}, Compressor compressor = {}, Prox prox = {}, Local local = {})
      : DecentralizedOptimizer(params, schedule.transport_graph(), transport, options, std::move(compressor),
                               std::move(prox), std::move(local)) {
    static_assert(!std::is_same_v<exchange_state_t<Step, Compressor>, detail::NoExchangeState>,
                  "decopt: this step mixes with one fixed W; over a TopologySchedule use ScheduledSyncStep or "
                  "ScheduledOverlappedStep (decopt/optimizer/edge_exchange.hpp)");
    detail::require(!lost_peers_, "on_lost_peer = drop is not supported over a TopologySchedule (" + schedule.name() + ")");
    exchange_state_.bind(schedule, rank_, dimension(), transport);
    topology_fingerprint_ = schedule.fingerprint();
    graph_name_ = schedule.name();
    if (exchange_state_.time_varying()) {  // the edge copies replace x̂ and s
      public_copy_ = {};
      neighbor_sum_ = {};
    }
  }

  DecentralizedOptimizer(const DecentralizedOptimizer&) = delete;
  DecentralizedOptimizer& operator=(const DecentralizedOptimizer&) = delete;
  DecentralizedOptimizer(DecentralizedOptimizer&&) noexcept = default;

  /// One whole round: begin_round then finish_round. For a node that runs in its own thread/process.
  template <GradientFunction Grad>
  RoundStats step(Grad&& grad) {
    begin_round(grad);
    const RoundStats stats = finish_round();
    run_due_phases();
    return stats;
  }

  /// The first half of a round: local steps, compression and post (in the Step policy's order).
  /// @throws Error when the node is poisoned by an earlier exception (see the header comment);
  ///         ConfigError for a call out of order (nothing changes); and whatever the gradient
  ///         callback or the transport throws, which poisons the node.
  template <GradientFunction Grad>
  void begin_round(Grad&& grad) {
    open_round("begin_round", options_.prox_step.value_or(options_.lr), [&] { Step::begin(*this, grad); });
  }

  // ---- bring your own optimizer (DDP communication-hook style) ----
  // The user's optimizer (torch::optim::Adam, a hand-written update...) has already updated x in
  // place; decopt only communicates: compress x − x̂, post, collect, mix, prox. Round counter,
  // totals, resynchronisation, poisoning and checkpoints are exactly those of step().

  /// A communication-only round, synchronous: post_exchange() then finish_exchange(), then a
  /// resynchronisation when one is due (as step()).
  /// @throws ConfigError when the prox is not the identity and Options::prox_step is unset
  RoundStats exchange() {
    post_exchange();
    const RoundStats stats = finish_exchange();
    run_due_phases();
    return stats;
  }

  /// Starts a communication-only round: compresses x − x̂ and posts it. The user may take local
  /// steps on x until finish_exchange() (the overlapped form: CoCoD-style, Shen et al. 2019).
  /// @throws ConfigError when the prox is not the identity and Options::prox_step is unset;
  ///         otherwise as begin_round
  void post_exchange() {
    if constexpr (!Prox::is_identity)
      detail::require(options_.prox_step.has_value(),
                      "exchange() on node " + std::to_string(rank_) + " needs Options::prox_step: the prox step " +
                          "size cannot be taken from lr when your own optimizer takes the local step");
    open_round("post_exchange", options_.prox_step.value_or(0.0), [&] { Step::post(*this); });
  }

  /// Collects the neighbours' messages, mixes and applies the prox: the end of post_exchange()'s round.
  RoundStats finish_exchange() { return finish_round(); }

  /// The second half: collect the neighbours' messages, consensus and prox. Returns the round's stats.
  /// @throws as begin_round; a DecodeError or TransportError from the exchange poisons the node.
  RoundStats finish_round() {
    require_consistent();
    detail::require(in_round_, "finish_round called before begin_round (node " + std::to_string(rank_) + ")");
    poison_on_exception("round " + std::to_string(round_), [&] { Step::finish(*this); });
    in_round_ = false;
    if (loss_count_ > 0) current_.loss = loss_sum_ / loss_count_;
    totals_.add(current_);
    ++round_;
    return current_;
  }

  // ---- the primitives the Step policies order ----

  /// x = prox_{ηR}(x) with the round's prox step: over the layout's prox segments when there is a
  /// layout. (Timed by the phase that calls it.)
  void apply_prox() {
    if constexpr (!Prox::is_identity) {
      if (segmented_prox_)
        segmented_prox_->apply(x_, prox_step_);
      else
        prox_.apply(x_, prox_step_);
    }
  }

  /// τ steps of the local update on x in place. Checks each gradient for NaN/∞.
  template <class Grad>
  void run_local_steps(Grad& grad) {
    auto& scratch = detail::RoundScratch::for_this_thread(dimension());
    const std::span<float> g(scratch.gradient.data(), dimension());
    const double lr = options_.lr;
    for (int t = 0; t < options_.local_steps; ++t) {
      const double loss = call_gradient(grad, std::span<const float>(x_), g);
      if (!decopt::all_finite(std::span<const float>(g))) {
        if (options_.non_finite == NonFinitePolicy::Skip) {
          current_.skipped = true;
          return;
        }
        throw NonFiniteError("gradient of node " + std::to_string(rank_) + " in round " + std::to_string(round_));
      }
      if (std::isfinite(loss)) {
        loss_sum_ += loss;
        ++loss_count_;
      }
      if (options_momentum_)
        options_momentum_->apply(x_, g, lr);
      else
        local_.apply(x_, g, lr);
    }
  }

  /// q = C(x − x̂) (a ModelAwareCompressor: from x and x̂); x̂ += q; s += w_ii q; post the message.
  void compress_and_post() {
    require_finite_model();
    auto& scratch = detail::RoundScratch::for_this_thread(dimension());
    const std::span<float> residual(scratch.gradient.data(), dimension());
    const std::span<float> q(scratch.reconstruction.data(), dimension());
    auto& message = next_message_buffer();
    detail::encode_round(compressor_, x_, public_copy_, residual, rng_, message, q);
    const float w_self = static_cast<float>(self_weight_);
    for (std::size_t k = 0; k < x_.size(); ++k) {
      public_copy_[k] += q[k];
      neighbor_sum_[k] += w_self * q[k];
    }
    advance_clock_to_post();
    transport_.post(exchange_, message);
    count_broadcast(message.size());
  }

  /// s += Σ_j w_ij q_j (in neighbour order, for determinism); x += γ(s − x̂).
  void collect_and_mix() {
    auto& inbox = detail::RoundScratch::for_this_thread(dimension()).inbox;
    const auto wait_start = Clock::now();
    transport_.collect(exchange_++, inbox);
    current_.wait_seconds += seconds_since(wait_start);
    const auto start = Clock::now();
    detail::require(inbox.size() == neighbors_.size(), "transport delivered a wrong number of messages");
    for (std::size_t k = 0; k < neighbors_.size(); ++k) {
      if (inbox[k].empty()) continue;  // a lost peer (LostPeerPolicy::drop): repaired at a later boundary
      detail::decode_round(compressor_, k, inbox[k], static_cast<float>(neighbors_[k].weight), std::span<float>(neighbor_sum_));
      current_.bytes_received += inbox[k].size();
    }
    detail::settle_round(compressor_, std::span<float>(neighbor_sum_));
    const float gamma = static_cast<float>(options_.consensus_step);
    for (std::size_t k = 0; k < x_.size(); ++k) x_[k] += gamma * (neighbor_sum_[k] - public_copy_[k]);
    account_mixing(seconds_since(start));
  }

  /// DirectGossipStep: q = C(x); post. (No public copy: the compression error is not remembered.)
  void compress_model_and_post() {
    require_finite_model();
    auto& scratch = detail::RoundScratch::for_this_thread(dimension());
    const std::span<float> q(scratch.reconstruction.data(), dimension());
    auto& message = next_message_buffer();
    compressor_.encode(std::span<const float>(x_), rng_, message, q);
    advance_clock_to_post();
    transport_.post(exchange_, message);
    count_broadcast(message.size());
  }

  /// DirectGossipStep: x = (1 − γ(1 − w_ii)) x + γ Σ_j w_ij q_j.
  void collect_and_mix_direct() {
    auto& scratch = detail::RoundScratch::for_this_thread(dimension());
    const auto wait_start = Clock::now();
    transport_.collect(exchange_++, scratch.inbox);
    current_.wait_seconds += seconds_since(wait_start);
    const auto start = Clock::now();
    const std::span<float> mixed(scratch.reconstruction.data(), dimension());
    std::fill(mixed.begin(), mixed.end(), 0.0f);
    for (std::size_t k = 0; k < neighbors_.size(); ++k) {
      compressor_.decode_add(scratch.inbox[k], static_cast<float>(neighbors_[k].weight), mixed);
      current_.bytes_received += scratch.inbox[k].size();
    }
    const float gamma = static_cast<float>(options_.consensus_step);
    const float keep = 1.0f - gamma * (1.0f - static_cast<float>(self_weight_));
    for (std::size_t k = 0; k < x_.size(); ++k) x_[k] = keep * x_[k] + gamma * mixed[k];
    account_mixing(seconds_since(start));
  }

  // ---- resynchronisation of s (every Options::resync_every rounds) ----
  // A phase of its own between two rounds: every node posts x̂ uncompressed, then every node
  // collects its neighbours' and recomputes s = w_ii x̂_i + Σ_j w_ij x̂_j from scratch, in
  // neighbour order (so every transport gives the same bits). step() runs it by itself; a
  // lockstep driver (Simulation) calls begin_resync() on every node, then finish_resync().

  /// True after the round that completes a resynchronisation period, until finish_resync().
  [[nodiscard]] bool resync_due() const noexcept {
    return !public_copy_.empty() && options_.resync_every > 0 && round_ > 0 && round_ % options_.resync_every == 0 && last_resync_ != round_;
  }

  /// Posts x̂ uncompressed to every neighbour. An exception from the transport poisons the node.
  void begin_resync() {
    require_consistent();
    detail::require(resync_due() && !resync_posted_, "begin_resync called when no resynchronisation is due");
    poison_on_exception(resync_phase(), [&] {
      auto& message = next_message_buffer();
      put_resync_message(message);
      transport_.post(exchange_, message);
      totals_.bytes_sent += message.size() * neighbors_.size();
      totals_.resync_bytes_sent += message.size() * neighbors_.size();
      resync_posted_ = true;
    });
  }

  /// Collects the neighbours' x̂ and recomputes s exactly. An exception (a malformed message, a
  /// timeout) poisons the node.
  void finish_resync() {
    require_consistent();
    detail::require(resync_posted_, "finish_resync called before begin_resync");
    poison_on_exception(resync_phase(), [&] { collect_and_recompute_neighbor_sum(); });
    resync_posted_ = false;
    last_resync_ = round_;
  }

  // ---- lost peers (LostPeerPolicy::drop; decopt/optimizer/lost_peer_repair.hpp) ----
  // At the first boundary after a loss or a rejoin has reached every node it concerns, the node
  // switches to Metropolis–Hastings weights on the graph without the nodes still lost and repairs
  // s over the edges that changed. step() runs it by itself; a lockstep driver calls begin_repair()
  // on every node whose repair_due(), then finish_repair() on the same nodes. A node that an
  // injected failure stopped and that has a rejoin (NodeRejoin) comes back through the same two
  // calls, made at its rejoin's boundary (Simulation) or by rejoin() on its own thread: it pulls a
  // neighbour's model and mixes again from rejoin_round() on.

  /// Whether a repair is due before the next round: a loss or a rejoin to apply — or, for a node
  /// stopped by its injected failure, its own rejoin, if it has one.
  [[nodiscard]] bool repair_due() const {
    if (!lost_peers_ || repair_plan_ || rejoin_) return false;
    if (crashed_) return rejoin_exchange() >= 0;
    return lost_peers_->due(transport_.lost_peers(), exchange_);
  }

  /// Computes W' and posts x̂ uncompressed to the neighbours whose edge the repair touches (to a
  /// neighbour that comes back: x̂ and x, its pull message). On a rejoining node: pulls the model of
  /// its lowest-ranked running neighbour and posts its new x̂ to every running neighbour.
  /// @throws Error (poisoning the node) when the remaining graph is disconnected; ConfigError for
  ///         a rejoin with a compressor that cannot rejoin (rejoin.hpp) or at a resynchronisation
  void begin_repair() {
    if (!crashed_) require_consistent();
    detail::require(repair_due(), "begin_repair called when no lost-peer repair is due (node " + std::to_string(rank_) + ")");
    if (crashed_) return begin_rejoin();
    poison_on_exception(resync_phase(), [&] {
      repair_plan_.emplace(lost_peers_->plan(transport_.lost_peers(), exchange_));
      if (repair_plan_->peers.empty()) return;
      auto& message = next_message_buffer();
      put_resync_message(message);
      std::vector<std::byte>* pull = nullptr;  // the other buffer: x̂ and x for a neighbour coming back
      for (int peer : repair_plan_->peers) {
        if (repair_plan_->brings_back(peer) && pull == nullptr) {
          require_rejoinable();
          pull = &next_message_buffer();
          detail::put_pull_message(compressor_, round_, last_resync_, public_copy_, x_, *pull);
        }
        const auto& bytes = repair_plan_->brings_back(peer) ? *pull : message;
        transport_.post_to(exchange_, peer, bytes);
        totals_.bytes_sent += bytes.size();
        totals_.resync_bytes_sent += bytes.size();
      }
    });
  }

  /// Collects the peers' x̂ and makes s = w'_ii x̂_i + Σ_j w'_ij x̂_j hold for the new weights.
  void finish_repair() {
    if (rejoin_) return finish_rejoin();
    require_consistent();
    detail::require(repair_plan_.has_value(), "finish_repair called before begin_repair (node " + std::to_string(rank_) + ")");
    poison_on_exception(resync_phase(), [&] { collect_and_repair_neighbor_sum(*repair_plan_); });
    lost_peers_->commit(std::move(*repair_plan_));
    repair_plan_.reset();
  }

  /**
   * Brings back this node after its injected failure stopped it (its step() threw NodeCrashed),
   * when its transport has a rejoin for it (NodeRejoin): begin_repair() then finish_repair(), on
   * the node's own thread. Waits for the neighbours' pull messages of the rejoin's boundary (at
   * most the transport's timeout: call it within that time of the neighbours getting there); then
   * x, x̂ and s are the rejoin's (lost_peer_repair.hpp) and step() continues from rejoin_round().
   * @throws ConfigError when this node did not crash or has no rejoin
   */
  void rejoin() {
    detail::require(crashed_ && rejoin_exchange() >= 0, "rejoin() on node " + std::to_string(rank_) +
                                                            ", which was not stopped by an injected failure with a rejoin");
    begin_repair();
    finish_repair();
  }

  /// The optimizer round from which this node, stopped by its injected failure, mixes again after
  /// its rejoin (NodeRejoin at transport round R2: the round of exchange R2 + 2); -1 when it runs
  /// or has no rejoin.
  [[nodiscard]] long rejoin_round() const {
    const long e = crashed_ ? rejoin_exchange() : -1;
    return e < 0 ? -1 : options_.round_of_exchange(e);
  }

  /// Whether a node of this type can rejoin: its compressor keeps no state a restart would break
  /// (rejoin.hpp) and its step keeps a public copy x̂.
  static constexpr bool supports_rejoin = RejoinableCompressor<Compressor> && Step::keeps_public_copy;

  /// The lost peers this node has dropped, sorted by node, each with the transport round it was
  /// first missed and, once it is back, the round its rejoin was seen (Options::round_of_exchange
  /// gives the optimizer rounds); empty under the fail policy.
  [[nodiscard]] std::span<const LostPeer> lost_peers() const noexcept {
    return lost_peers_ ? lost_peers_->applied() : std::span<const LostPeer>{};
  }

  /**
   * Poisons this node for a failure elsewhere, as an exception from its own round would (header
   * comment). For a lockstep driver whose other node threw mid-round: this node is then mid-round
   * too, or its neighbours are, so it must reload the same checkpoint as they do. A node already
   * poisoned keeps its first cause.
   * @param cause what failed, e.g. the other node's exception message
   */
  void mark_inconsistent(const std::string& cause) {
    if (failure_.empty()) poison(resync_posted_ ? resync_phase() : "round " + std::to_string(round_), cause);
  }
  /// Whether the node is poisoned (header comment): only load_state() makes it usable again.
  [[nodiscard]] bool inconsistent() const noexcept { return !failure_.empty(); }

  // ---- inspection ----
  [[nodiscard]] int rank() const noexcept { return rank_; }
  [[nodiscard]] std::size_t dimension() const noexcept { return x_.size(); }
  [[nodiscard]] long round() const noexcept { return round_; }
  [[nodiscard]] std::span<float> parameters() const noexcept { return x_; }
  /// x̂: what the neighbours know of this node's model.
  [[nodiscard]] std::span<const float> public_copy() const noexcept { return public_copy_; }
  /// s = w_ii x̂_i + Σ_j w_ij x̂_j, kept incrementally.
  [[nodiscard]] std::span<const float> neighbor_sum() const noexcept { return neighbor_sum_; }
  [[nodiscard]] const RunningTotals& totals() const noexcept { return totals_; }
  [[nodiscard]] const Options& options() const noexcept { return options_; }
  [[nodiscard]] const Compressor& compressor() const noexcept { return compressor_; }
  [[nodiscard]] const Prox& prox() const noexcept { return prox_; }
  [[nodiscard]] std::span<const Edge> neighbors() const noexcept { return neighbors_; }
  [[nodiscard]] double self_weight() const noexcept { return self_weight_; }
  /// The regularised objective's regulariser R(x) at the current model.
  [[nodiscard]] double regularizer_value() const {
    return segmented_prox_ ? segmented_prox_->value(std::span<const float>(x_)) : prox_.value(std::span<const float>(x_));
  }
  /// The parameter layout of the layout constructor, or none.
  [[nodiscard]] const ParameterLayout* layout() const noexcept { return layout_ ? &*layout_ : nullptr; }
  /// The local update's state (its buffers and hyperparameters).
  [[nodiscard]] const typename Local::State& local_update() const noexcept { return local_; }

  // ---- checkpoints (format: decopt/optimizer/checkpoint.hpp) ----

  /// Appends one framed record with the whole state: x, x̂, s, the local update's state (momentum,
  /// Adam's moments), RNG, round, totals, lr, the parameter layout when there is one and the
  /// compressor's state when it keeps one (a StatefulCompressor: warm starts, supports). Call between rounds. Loading it into an optimizer over a buffer of the same size on the
  /// same topology, rank and pipeline continues the run bit for bit.
  /// @throws ConfigError inside a round or a resynchronisation; Error when the node is poisoned
  ///         (its state is not one to save)
  void save_state(std::vector<std::byte>& out) const {
    require_consistent();
    detail::require(lost_peers().empty(), "save_state after a lost peer was dropped (node " + std::to_string(rank_) +
                                              "): checkpoints of a repaired network are not supported");
    detail::require(!in_round_ && !resync_posted_, "save_state called inside a round (node " + std::to_string(rank_) + ")");
    const std::size_t start = checkpoint::begin_record(out);
    put_le<std::uint64_t>(out, dimension());
    put_le<std::int32_t>(out, rank_);
    put_le<std::uint64_t>(out, topology_fingerprint_);
    checkpoint::put_string(out, pipeline_name());
    put_le<std::int64_t>(out, round_);
    put_le<std::int64_t>(out, exchange_);
    put_le<std::int64_t>(out, last_resync_);
    put_le<std::int64_t>(out, totals_.rounds);
    put_le<std::uint64_t>(out, totals_.bytes_sent);
    put_le<std::uint64_t>(out, totals_.bytes_received);
    put_le<double>(out, totals_.wait_seconds);
    put_le<double>(out, totals_.compute_seconds);
    put_le<std::int64_t>(out, totals_.skipped_rounds);
    put_le<std::uint64_t>(out, totals_.resync_bytes_sent);
    for (std::uint64_t word : rng_.state()) put_le<std::uint64_t>(out, word);
    put_le<double>(out, options_.lr);
    checkpoint::put_floats(out, x_);
    checkpoint::put_floats(out, public_copy_);
    checkpoint::put_floats(out, neighbor_sum_);
    local_.save(out);
    put_le<std::uint8_t>(out, options_momentum_ ? 1 : 0);
    if (options_momentum_) options_momentum_->save(out);
    put_le<std::uint8_t>(out, layout_ ? 1 : 0);
    if (layout_) layout_->save(out);
    hooks::save_state(compressor_, out);
    exchange_state_.save(out);
    checkpoint::end_record(out, start);
  }

  /**
   * Restores a state written by save_state; returns the bytes consumed (records can be concatenated).
   * Every field is checked before anything changes; a success clears a poisoned node (header
   * comment). The learning rate stays this optimizer's unless `load.restore_learning_rate`.
   * @param load what to take from the record beyond the state proper (LoadOptions)
   * @throws DecodeError for a truncated, corrupted, foreign or implausible record (a negative
   *         round, an all-zero RNG state …; nothing is changed); ConfigError when it belongs to
   *         another dimension, rank, topology, pipeline, local update or parameter layout, or when
   *         called inside a round or between begin_resync and finish_resync.
   */
  std::size_t load_state(std::span<const std::byte> bytes, LoadOptions load = {}) {
    detail::require(!in_round_ && !resync_posted_,
                    "load_state called inside a round or between begin_resync and finish_resync (node " +
                        std::to_string(rank_) + ")");
    std::size_t consumed = 0;
    ByteReader in(checkpoint::open_record(bytes, consumed));
    const auto d = in.get_le<std::uint64_t>();
    detail::require(d == dimension(), "checkpoint is for dimension " + std::to_string(d) + ", this optimizer has " +
                                          std::to_string(dimension()));
    const auto rank = in.get_le<std::int32_t>();
    detail::require(rank == rank_, "checkpoint is of node " + std::to_string(rank) + ", this optimizer is node " +
                                       std::to_string(rank_));
    const auto fingerprint = in.get_le<std::uint64_t>();
    detail::require(fingerprint == topology_fingerprint_,
                    "checkpoint was written on another topology or schedule (fingerprint " + hex64(fingerprint) +
                        ") than this optimizer's " + graph_name_ + " (fingerprint " + hex64(topology_fingerprint_) + ")");
    const std::string pipeline = checkpoint::get_string(in);
    detail::require(pipeline == pipeline_name(),
                    "checkpoint was written by pipeline " + pipeline + ", this optimizer runs " + pipeline_name());
    // Read everything into temporaries first: a failure leaves this optimizer untouched.
    SavedCounters saved;
    saved.round = static_cast<long>(in.get_le<std::int64_t>());
    saved.exchange = static_cast<long>(in.get_le<std::int64_t>());
    saved.last_resync = static_cast<long>(in.get_le<std::int64_t>());
    RunningTotals& totals = saved.totals;
    totals.rounds = static_cast<long>(in.get_le<std::int64_t>());
    totals.bytes_sent = in.get_le<std::uint64_t>();
    totals.bytes_received = in.get_le<std::uint64_t>();
    totals.wait_seconds = in.get_le<double>();
    totals.compute_seconds = in.get_le<double>();
    totals.skipped_rounds = static_cast<long>(in.get_le<std::int64_t>());
    totals.resync_bytes_sent = in.get_le<std::uint64_t>();
    for (auto& word : saved.rng) word = in.get_le<std::uint64_t>();
    saved.lr = in.get_le<double>();
    std::vector<float> x(dimension()), xhat(public_copy_.size()), s(neighbor_sum_.size());
    checkpoint::get_floats(in, x, "model");
    checkpoint::get_floats(in, xhat, "public copy");
    checkpoint::get_floats(in, s, "neighbour sum");
    typename Local::State local = local_;  // loaded into copies: a failure changes nothing
    local.load(in);
    std::optional<HeavyBall::State> momentum = options_momentum_;
    load_options_momentum(in, momentum);
    require_same_layout(in);
    std::optional<Compressor> compressor;  // a copy only when there is a state to load into it
    if constexpr (StatefulCompressor<Compressor>) compressor.emplace(compressor_);
    hooks::load_state(compressor ? *compressor : compressor_, in);
    auto exchange_state = exchange_state_;
    exchange_state.load(in);
    detail::require_decodable(in.remaining() == 0, "checkpoint record has trailing bytes");
    detail::require_decodable(decopt::all_finite(std::span<const float>(x)) && decopt::all_finite(std::span<const float>(xhat)) &&
                                  decopt::all_finite(std::span<const float>(s)),
                              "checkpoint holds non-finite values");
    require_plausible(saved);
    if (load.restore_learning_rate) options_.lr = saved.lr;  // validated by require_plausible
    round_ = saved.round;
    exchange_ = saved.exchange;
    last_resync_ = saved.last_resync;
    totals_ = saved.totals;
    rng_.set_state(saved.rng);
    std::copy(x.begin(), x.end(), x_.begin());
    public_copy_ = std::move(xhat);
    neighbor_sum_ = std::move(s);
    local_ = std::move(local);
    options_momentum_ = std::move(momentum);
    if (compressor) compressor_ = std::move(*compressor);
    exchange_state_ = std::move(exchange_state);
    failure_.clear();
    return consumed;
  }

  /// A name for the pipeline and step, stored in checkpoints to refuse loading a foreign one.
  [[nodiscard]] static std::string pipeline_name() {
    std::string name = std::string(Step::name) + "/";
    if constexpr (requires { Compressor::name(); }) name += Compressor::name();
    return name;
  }

  /// Changes the local step size (for schedules); validated like Options::lr.
  void set_learning_rate(double lr) {
    update_options([lr](Options& o) { o.lr = lr; });
  }
  /// Changes the prox step size (Options::prox_step) from the next round on: the ℓ1 prox shrinks
  /// by step·λ, so a schedule of λ is a schedule of this step (decopt-train --lambda-warmup,
  /// --lambda-ramp); validated like Options::prox_step.
  void set_prox_step(double step) {
    update_options([step](Options& o) { o.prox_step = step; });
  }

 private:
  friend struct EdgeCopyExchange;  // the per-edge exchange of a TopologySchedule (edge_exchange.hpp)

  using Clock = std::chrono::steady_clock;
  static double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  }

  /// @throws NonFiniteError when the model to be sent holds a NaN or an infinity
  void require_finite_model() const {
    if (!decopt::all_finite(std::span<const float>(x_)))
      throw NonFiniteError("model of node " + std::to_string(rank_) + " at round " + std::to_string(round_));
  }
  /// Before a post: the compute since the phase started moves the virtual clock.
  void advance_clock_to_post() {
    transport_.advance(seconds_since(phase_start_));
    phase_start_ = Clock::now();
  }
  /// One message of `bytes` posted to every neighbour.
  void count_broadcast(std::size_t bytes) {
    current_.message_bytes = bytes;
    current_.bytes_sent = bytes * neighbors_.size();
    current_.messages_sent = static_cast<long>(neighbors_.size());
  }
  /// `seconds` of decoding and mixing after the wait: compute time, and the virtual clock.
  void account_mixing(double seconds) {
    transport_.advance(seconds);
    current_.compute_seconds += seconds;
  }

  /// Applies `change` to a copy of the options and keeps it if it validates (strong guarantee).
  template <class Change>
  void update_options(Change&& change) {
    Options o = options_;
    change(o);
    o.validate();
    options_ = o;
  }

  /// Gives every own_scale segment of the layout a quantizer norm of its own.
  void use_scale_blocks(const ParameterLayout& layout) {
    std::vector<ScaleBlock> blocks;
    std::string first;
    for (const Segment& segment : layout.segments())
      if (segment.options.own_scale) {
        blocks.push_back({segment.offset, segment.size});
        if (first.empty()) first = segment.name;
      }
    if (blocks.empty()) return;
    if constexpr (hooks::has_scale_blocks<Compressor>)
      compressor_.set_scale_blocks(std::span<const ScaleBlock>(blocks));
    else
      throw ConfigError("segment '" + first + "' asks for a quantizer scale of its own (SegmentOptions::own_scale), " +
                        "but compressor " + pipeline_name() + " has one scale for the whole message (no set_scale_blocks)");
  }

  /// The layout's tensors of two or more dimensions as matrices shape[0] × (the product of the
  /// others), PyTorch's view(shape[0], -1): what a low-rank compressor factorises.
  static std::vector<MatrixBlock> matrix_blocks_of(const ParameterLayout& layout) {
    std::vector<MatrixBlock> blocks;
    for (const Segment& segment : layout.segments())
      if (segment.shape.size() >= 2) {
        const auto rows = static_cast<std::size_t>(segment.shape.front());
        blocks.push_back({segment.offset, rows, segment.size / rows});
      }
    return blocks;
  }

  static std::string hex64(std::uint64_t v) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string text = "0x";
    for (int shift = 60; shift >= 0; shift -= 4) text += digits[(v >> shift) & 0xF];
    return text;
  }

  /// Reads the heavy-ball state of Options::momentum, if the record has one, into `momentum`.
  static void load_options_momentum(ByteReader& in, std::optional<HeavyBall::State>& momentum) {
    const auto saved = in.get_le<std::uint8_t>();
    detail::require_decodable(saved <= 1, "checkpoint's momentum flag is not 0 or 1");
    detail::require((saved == 1) == momentum.has_value(),
                    saved ? "checkpoint was written with Options::momentum > 0 (heavy-ball momentum), this optimizer has none"
                          : "checkpoint was written without momentum, this optimizer has Options::momentum > 0");
    if (momentum) momentum->load(in);
  }

  /// Reads the record's parameter layout and refuses one other than this optimizer's.
  void require_same_layout(ByteReader& in) const {
    const auto saved = in.get_le<std::uint8_t>();
    detail::require_decodable(saved <= 1, "checkpoint's layout flag is not 0 or 1");
    detail::require((saved == 1) == layout_.has_value(),
                    saved ? "checkpoint was written over a parameter layout, this optimizer has none"
                          : "checkpoint was written without a parameter layout, this optimizer has one");
    if (saved) ParameterLayout::load(in).require_same(*layout_, "checkpoint");
  }

  /// finish_resync's work: s = w_ii x̂_i + Σ_j w_ij x̂_j from the neighbours' posted x̂.
  void collect_and_recompute_neighbor_sum() {
    auto& inbox = detail::RoundScratch::for_this_thread(dimension()).inbox;
    const auto wait_start = Clock::now();
    transport_.collect(exchange_++, inbox);
    totals_.wait_seconds += seconds_since(wait_start);
    const float w_self = static_cast<float>(self_weight_);
    for (std::size_t k = 0; k < x_.size(); ++k) neighbor_sum_[k] = w_self * public_copy_[k];
    for (std::size_t j = 0; j < neighbors_.size(); ++j) {
      if (inbox[j].empty()) continue;  // a lost peer (LostPeerPolicy::drop)
      add_public_copy(inbox[j], static_cast<float>(neighbors_[j].weight));
    }
  }

  /// x̂ uncompressed: the message of a resynchronisation and of a lost-peer repair.
  void put_resync_message(std::vector<std::byte>& message) const {
    put_le<std::uint32_t>(message, kResyncMagic);
    checkpoint::put_floats(message, public_copy_);
  }
  /// s += w x̂_j from a neighbour's resynchronisation message.
  void add_public_copy(std::span<const std::byte> message, float w) {
    ByteReader in(message);
    detail::require_decodable(in.get_le<std::uint32_t>() == kResyncMagic, "resynchronisation message expected");
    detail::require_decodable(in.get_le<std::uint64_t>() == dimension(), "resynchronisation message of another dimension");
    detail::require_decodable(in.remaining() == dimension() * sizeof(float), "resynchronisation message truncated");
    for (std::size_t k = 0; k < x_.size(); ++k) neighbor_sum_[k] += w * in.get_le<float>();
    totals_.bytes_received += message.size();
  }

  /// finish_repair's work (lost_peer_repair.hpp): next to a lost node, s = w'_ii x̂_i + Σ_j w'_ij x̂_j
  /// over the surviving neighbours; elsewhere s += (w'_ii − w_ii) x̂_i + Σ_j (w'_ij − w_ij) x̂_j over
  /// the changed edges. Then the node mixes with W'.
  void collect_and_repair_neighbor_sum(const detail::LostPeerRepair::Plan& plan) {
    const Topology& next = plan.next;
    const float self_change = static_cast<float>(plan.full ? next.self_weight(rank_) : next.self_weight(rank_) - self_weight_);
    for (std::size_t k = 0; k < x_.size(); ++k)
      neighbor_sum_[k] = plan.full ? self_change * public_copy_[k] : neighbor_sum_[k] + self_change * public_copy_[k];
    for (int peer : plan.peers) {
      const std::span<const std::byte> message = transport_.collect_from(exchange_, peer);
      detail::require(!message.empty(), "neighbour " + std::to_string(peer) + " of node " + std::to_string(rank_) +
                                            " was lost during the repair for an earlier lost peer; the run cannot continue");
      const double old_weight = plan.full ? 0.0 : lost_peers_->topology().weight(rank_, peer);
      add_public_copy(message, static_cast<float>(next.weight(rank_, peer) - old_weight));
    }
    self_weight_ = next.self_weight(rank_);
    for (Edge& e : neighbors_) e.weight = next.weight(rank_, e.node);
    for (int peer : plan.back)  // a neighbour that comes back restarts its coding (rejoin.hpp)
      if (std::any_of(neighbors_.begin(), neighbors_.end(), [peer](const Edge& e) { return e.node == peer; }))
        detail::restart_neighbor_coding(compressor_, slot_of(peer));
  }

  /// This node's rejoin exchange (its transport lists it with the rejoin round seen), or -1.
  [[nodiscard]] long rejoin_exchange() const {
    for (const LostPeer& p : transport_.lost_peers())
      if (p.node == rank_ && p.rejoin_round >= 0) return p.rejoin_round + kRepairDelay;
    return -1;
  }
  /// @throws ConfigError when the compressor or step cannot rejoin (rejoin.hpp)
  void require_rejoinable() const {
    if constexpr (!supports_rejoin)
      throw ConfigError("node " + std::to_string(rank_) + ": a lost node cannot rejoin with compressor " + pipeline_name() +
                        " (it keeps encoder state a restart would break; rejoin.hpp)");
  }
  /// The index of neighbour `peer` in neighbors_.
  [[nodiscard]] std::size_t slot_of(int peer) const {
    for (std::size_t k = 0; k < neighbors_.size(); ++k)
      if (neighbors_[k].node == peer) return k;
    throw Error("decopt: node " + std::to_string(peer) + " is not a neighbour of node " + std::to_string(rank_));
  }

  /// begin_repair on the rejoining node (lost_peer_repair.hpp): its handshake, the pull from its
  /// lowest-ranked running neighbour p (x := x_p, x̂ := x, counters p's, local update and RNG
  /// restarted), then x̂ raw to every running neighbour.
  void begin_rejoin() {
    require_rejoinable();
    const long e = rejoin_exchange();
    detail::require(options_.exchange_of_round(options_.round_of_exchange(e)) == e,
                    "node " + std::to_string(rank_) + " would rejoin at exchange " + std::to_string(e) +
                        ", a resynchronisation's; move its rejoin by one round");
    poison_on_exception("its rejoin before exchange " + std::to_string(e), [&] {
      transport_.rejoin(e);
      const auto known = transport_.lost_peers();
      auto lost_entry = [&](int node) -> const LostPeer* {
        const auto it = std::find_if(known.begin(), known.end(), [node](const LostPeer& p) { return p.node == node; });
        return it == known.end() ? nullptr : &*it;
      };
      PendingRejoin r{e, -1, {}, {}};
      for (const Edge& n : lost_peers_->original().neighbors(rank_)) {
        const LostPeer* lost = lost_entry(n.node);
        if (lost && !lost->back_by(e)) continue;  // still lost
        r.peers.push_back(n.node);
        const bool back_now = lost && lost->rejoin_round + kRepairDelay == e;  // rejoins at this boundary too
        if (!back_now && (r.pulled_from < 0 || n.node < r.pulled_from)) r.pulled_from = n.node;
      }
      detail::require(r.pulled_from >= 0, "node " + std::to_string(rank_) + " cannot rejoin at exchange " + std::to_string(e) +
                                              ": none of its neighbours runs to pull a model from");
      r.pulled = transport_.collect_from(e, r.pulled_from);
      detail::require(!r.pulled.empty(), "node " + std::to_string(rank_) + " could not pull a model from neighbour " +
                                             std::to_string(r.pulled_from) + " (lost during the rejoin)");
      const detail::PulledModel pulled = detail::parse_pull_message(r.pulled, dimension());
      if (pulled.round != options_.round_of_exchange(e))
        throw DecodeError("pull message of round " + std::to_string(pulled.round) + " for a rejoin at round " +
                          std::to_string(options_.round_of_exchange(e)));
      detail::read_floats(pulled.model, x_);
      std::copy(x_.begin(), x_.end(), public_copy_.begin());
      if constexpr (requires { local_.hyperparameters().state(dimension()); })
        local_ = local_.hyperparameters().state(dimension());  // the local update restarts
      if (options_momentum_) options_momentum_ = options_momentum_->hyperparameters().state(dimension());
      rng_ = Rng::derive(options_.seed, {static_cast<std::uint64_t>(rank_), 0x726a6f69ULL /* "rjoi" */, static_cast<std::uint64_t>(e)});
      detail::restart_coding(compressor_);
      round_ = pulled.round;
      last_resync_ = pulled.last_resync;
      exchange_ = e;
      in_round_ = false;
      resync_posted_ = false;
      auto& message = next_message_buffer();
      put_resync_message(message);
      for (int peer : r.peers) transport_.post_to(e, peer, message);
      totals_.bytes_sent += message.size() * r.peers.size();
      totals_.resync_bytes_sent += message.size() * r.peers.size();
      totals_.bytes_received += r.pulled.size();
      rejoin_ = std::move(r);
    });
  }

  /// finish_repair on the rejoining node: every running neighbour's x̂ (and its coding state), then
  /// W'' from what their messages told, s = w''_ii x̂_i + Σ_j w''_ij x̂_j from scratch.
  void finish_rejoin() {
    poison_on_exception("its rejoin before exchange " + std::to_string(rejoin_->exchange), [&] {
      const PendingRejoin& r = *rejoin_;
      std::vector<std::span<const std::byte>> messages(r.peers.size());
      for (std::size_t k = 0; k < r.peers.size(); ++k) {
        messages[k] = r.peers[k] == r.pulled_from ? r.pulled : transport_.collect_from(r.exchange, r.peers[k]);
        detail::require(!messages[k].empty(), "neighbour " + std::to_string(r.peers[k]) + " of node " + std::to_string(rank_) +
                                                  " was lost during its rejoin; the run cannot continue");
      }
      detail::LostPeerRepair::Plan plan = lost_peers_->rejoin_plan(transport_.lost_peers(), r.exchange);
      detail::require(plan.peers == r.peers, "node " + std::to_string(rank_) + " rejoins, but its neighbours' lost sets "
                                             "disagree with its own on which of its neighbours run");
      const Topology& next = plan.next;
      const float w_self = static_cast<float>(next.self_weight(rank_));
      for (std::size_t k = 0; k < x_.size(); ++k) neighbor_sum_[k] = w_self * public_copy_[k];
      for (std::size_t k = 0; k < r.peers.size(); ++k) {
        const float w = static_cast<float>(next.weight(rank_, r.peers[k]));
        const std::size_t slot = slot_of(r.peers[k]);
        if (detail::is_pull_message(messages[k])) {
          const detail::PulledModel pulled = detail::parse_pull_message(messages[k], dimension());
          ByteReader in(pulled.public_copy);
          for (std::size_t i = 0; i < x_.size(); ++i) neighbor_sum_[i] += w * in.get_le<float>();
          detail::take_neighbor_coding(compressor_, slot, pulled.coding);
          if (r.peers[k] != r.pulled_from) totals_.bytes_received += messages[k].size();  // that one: in begin
        } else {  // a neighbour that rejoins at this boundary too: its x̂ plain, its coding restarted
          add_public_copy(messages[k], w);
          detail::restart_neighbor_coding(compressor_, slot);
        }
      }
      self_weight_ = next.self_weight(rank_);
      for (Edge& e : neighbors_) e.weight = next.weight(rank_, e.node);
      lost_peers_->commit(std::move(plan));
    });
    rejoin_.reset();
    crashed_ = false;
    failure_.clear();
  }

  /// The phases due between two rounds, in order: a resynchronisation, a lost-peer repair.
  void run_due_phases() {
    if (resync_due()) {
      begin_resync();
      finish_resync();
    }
    if (repair_due()) {
      begin_repair();
      finish_repair();
    }
  }

  // ---- the exception guarantee (header comment) ----

  /// The start of every round (begin_round, post_exchange): the order checks, then `phase`, timed,
  /// with a prox of step `prox_step` at its end; an exception out of it poisons the node.
  template <class Phase>
  void open_round(const char* call, double prox_step, Phase&& phase) {
    require_consistent();
    detail::require(!in_round_, std::string(call) + " called twice without finish_round (node " + std::to_string(rank_) + ")");
    detail::require(!resync_due(), "node " + std::to_string(rank_) + " must resynchronise before round " +
                                       std::to_string(round_) + ": call begin_resync() on every node, then finish_resync()");
    detail::require(!repair_due(), "node " + std::to_string(rank_) + " must repair its weights for a lost peer before round " +
                                       std::to_string(round_) + ": call begin_repair(), then finish_repair()");
    poison_on_exception("round " + std::to_string(round_), [&] {
      in_round_ = true;
      prox_step_ = prox_step;
      current_ = RoundStats{};
      current_.round = round_;
      loss_sum_ = 0;
      loss_count_ = 0;
      const auto start = Clock::now();
      phase_start_ = start;
      phase();
      transport_.advance(seconds_since(phase_start_));  // compute after the post (overlapped steps)
      current_.compute_seconds += seconds_since(start);
    });
  }

  /// Runs `phase`, which changes the node's state; an exception out of it poisons the node.
  template <class Phase>
  void poison_on_exception(const std::string& where, Phase&& phase) {
    try {
      phase();
    } catch (const NodeCrashed& e) {  // its injected failure: the node is dead until a rejoin
      crashed_ = true;
      poison(where, e.what());
      throw;
    } catch (const std::exception& e) {
      poison(where, e.what());
      throw;
    } catch (...) {
      poison(where, "an exception not derived from std::exception");
      throw;
    }
  }
  void poison(const std::string& where, const std::string& what) {
    in_round_ = false;
    resync_posted_ = false;
    failure_ = "node " + std::to_string(rank_) + " was left inconsistent by an exception in " + where + " (" + what +
               "); reload a checkpoint with load_state() to continue";
  }
  /// Throws the poison's Error, if any.
  void require_consistent() const {
    if (!failure_.empty()) throw Error("decopt: " + failure_);
  }
  [[nodiscard]] std::string resync_phase() const {
    return "the resynchronisation before round " + std::to_string(round_);
  }

  /// Refuses a transport wired to other neighbours than this node's row of W (same degree or not):
  /// it would deliver their messages in the slots of ours. Transports that cannot list their
  /// neighbours (not NeighborListTransport) are trusted.
  void require_same_neighbors(const TransportRef& transport) const {
    const auto ranks = transport.neighbor_ranks();
    if (!ranks) return;
    std::vector<int> expected;
    for (const Edge& e : neighbors_) expected.push_back(e.node);
    auto list = [](const std::vector<int>& v) {
      std::string text = "[";
      for (std::size_t k = 0; k < v.size(); ++k) text += (k ? ", " : "") + std::to_string(v[k]);
      return text + "]";
    };
    detail::require(*ranks == expected, "transport of rank " + std::to_string(rank_) + " exchanges with neighbours " +
                                            list(*ranks) + " but the topology gives it neighbours " + list(expected) +
                                            " (in this order)");
  }

  // ---- checkpoint fields ----

  /// The scalar part of a saved state, read before anything is changed.
  struct SavedCounters {
    long round = 0;
    long exchange = 0;
    long last_resync = 0;
    RunningTotals totals;
    Rng::State rng{};
    double lr = 0;
  };

  /// Refuses fields that no save_state could have written, even under a valid checksum (a forged
  /// or hand-edited record): each would make a node that fails later, far from the cause — a
  /// negative round, a resynchronisation in the future, an all-zero xoshiro state (its one fixed
  /// point: every draw would be 0), an lr that validate() refuses.
  /// @throws DecodeError naming the field
  void require_plausible(const SavedCounters& c) const {
    auto field = [](bool ok, const std::string& what) {
      if (!ok) throw DecodeError("checkpoint field " + what);
    };
    const auto& t = c.totals;
    field(c.round >= 0, "round = " + std::to_string(c.round) + " is negative");
    field(c.exchange >= c.round && c.exchange - c.round <= c.round,
          "exchange = " + std::to_string(c.exchange) + " is outside [round, 2 x round] for round = " +
              std::to_string(c.round) + " (one exchange per round and at most one resynchronisation per round)");
    field(c.last_resync >= 0 && c.last_resync <= c.round,
          "last_resync = " + std::to_string(c.last_resync) + " is outside [0, round = " + std::to_string(c.round) + "]");
    field(t.rounds == c.round,
          "totals.rounds = " + std::to_string(t.rounds) + " differs from round = " + std::to_string(c.round));
    field(t.skipped_rounds >= 0 && t.skipped_rounds <= t.rounds,
          "totals.skipped_rounds = " + std::to_string(t.skipped_rounds) + " is outside [0, rounds]");
    field(t.resync_bytes_sent <= t.bytes_sent, "totals.resync_bytes_sent exceeds totals.bytes_sent");
    field(std::isfinite(t.wait_seconds) && t.wait_seconds >= 0,
          "totals.wait_seconds = " + detail::format_double(t.wait_seconds) + " is not a finite time >= 0");
    field(std::isfinite(t.compute_seconds) && t.compute_seconds >= 0,
          "totals.compute_seconds = " + detail::format_double(t.compute_seconds) + " is not a finite time >= 0");
    field(std::any_of(c.rng.begin(), c.rng.end(), [](std::uint64_t w) { return w != 0; }),
          "rng state is all zero (the one state xoshiro256 never leaves)");
    Options saved = options_;
    saved.lr = c.lr;
    try {
      saved.validate();
    } catch (const ConfigError& e) {
      throw DecodeError(std::string("checkpoint field lr is invalid: ") + e.what());
    }
  }

  std::span<float> x_;
  TransportRef transport_;
  Options options_;
  Compressor compressor_;
  Prox prox_;
  int rank_;
  std::vector<Edge> neighbors_;
  double self_weight_ = 1;
  std::uint64_t topology_fingerprint_ = 0;
  std::string graph_name_;           // the topology's or schedule's name, for error messages
  exchange_state_t<Step, Compressor> exchange_state_;
  std::optional<detail::LostPeerRepair> lost_peers_;          // on_lost_peer = drop: the weights in use, the losses applied
  std::optional<detail::LostPeerRepair::Plan> repair_plan_;  // between begin_repair and finish_repair
  struct PendingRejoin {      // a rejoining node between begin_repair and finish_repair
    long exchange = 0;        // the exchange it mixes again at
    int pulled_from = -1;     // the neighbour whose model it took
    std::vector<int> peers;   // its running neighbours, in neighbour order
    std::span<const std::byte> pulled;  // that neighbour's pull message
  };
  std::optional<PendingRejoin> rejoin_;
  bool crashed_ = false;  // stopped by its injected failure (NodeCrashed), not yet back
  std::vector<float> public_copy_;   // x̂
  std::vector<float> neighbor_sum_;  // s
  typename Local::State local_;      // the local update's buffers (m, v …) and hyperparameters
  std::optional<HeavyBall::State> options_momentum_;  // Options::momentum > 0 with Local = SGD
  std::optional<ParameterLayout> layout_;             // the layout constructor's
  std::optional<SegmentedProx<Prox>> segmented_prox_;  // the prox over the layout's prox segments
  // Outgoing messages, double-buffered: a posted buffer must stay untouched until the next post
  // returns (an MPI send of it may still be in flight while the next one is being encoded).
  std::array<std::vector<std::byte>, 2> messages_;
  int current_message_ = 0;
  Clock::time_point phase_start_{};  // start of the compute phase being timed for the virtual clock
  long exchange_ = 0;  // transport exchanges so far: one per round, plus one per resynchronisation
  long last_resync_ = 0;      // the round at which s was last recomputed
  bool resync_posted_ = false;
  static constexpr std::uint32_t kResyncMagic = 0x4e595352;  // "RSYN"

  std::vector<std::byte>& next_message_buffer() {
    current_message_ ^= 1;
    auto& m = messages_[static_cast<std::size_t>(current_message_)];
    m.clear();
    return m;
  }
  Rng rng_;
  long round_ = 0;
  bool in_round_ = false;
  double prox_step_ = 0;  // the prox step of the round in progress (Options::prox_step or lr)
  std::string failure_;  // the poison: why the node is inconsistent; empty while it is not
  RoundStats current_;
  RunningTotals totals_;
  double loss_sum_ = 0;
  int loss_count_ = 0;
};

}  // namespace decopt
