// decopt/optimizer/steps.hpp — step policies: in which order a round does its local work and its
// exchange. Both keep the public copy x̂ (error memory), so any contractive compressor converges.
//
// A step is an ordering of the round (SyncOrder, OverlappedOrder) over an Exchange policy, which
// says how the message reaches the neighbours and is mixed: PublicCopyExchange (one x̂ and s,
// below: SyncStep, OverlappedStep) or EdgeCopyExchange (per-edge copies over a TopologySchedule,
// decopt/optimizer/edge_exchange.hpp: ScheduledSyncStep, ScheduledOverlappedStep).
//
// SyncStep — Malcom-PSGD / CHOCO-SGD (Campbell, Liu, Woldemariam & Scaglione, arXiv 2311.05760;
//   Koloskova, Stich & Jaggi, ICML 2019): x −= η g (τ times); x = prox_{ηR}(x) (proximal SGD);
//   q = C(x − x̂); exchange; x̂ += q; s += Σ_j w_ij q_j; x += γ(s − x̂). The prox comes before the
//   compression, so the model sent is the sparse one (with SupportCoded its zeros cost no bits).
// OverlappedStep — CoCoD-style (Shen et al., IJCAI 2019, arXiv 1906.12043), decentralized:
//   q_t = C(x_t − x̂_t); start the exchange; y = x_t − η Σ local gradients (τ steps) while it is in
//   flight; wait; x̂ += q_t; s += Σ_j w_ij q_j; x_{t+1} = prox(y + γ(s − x̂)) — so x_t, the model
//   sent, is the sparse one here too.
// With the identity compressor, W = 11ᵀ/n and γ = 1 the overlapped step is exactly CoCoD-SGD:
// x_{t+1} = mean_j x_t^j + (y − x_t).
// DirectGossipStep — QDGD (Reisizadeh, Mokhtari, Hassani & Pedarsani, IEEE TSP 2019): no public
//   copy; each node sends C(x) itself: x −= η g; q = C(x); x = (1 − γ(1 − w_ii)) x + γ Σ_j w_ij q_j.
//   Half the state (no x̂, no s), but with no error memory the compression error is never
//   corrected, so it needs an unbiased compressor: the optimizer rejects a biased one (TopK,
//   RandTopK, Sign) at compile time.
#pragma once

#include <concepts>

namespace decopt {

struct EdgeCopyExchange;  // decopt/optimizer/edge_exchange.hpp

/// How a round's message reaches the neighbours and is mixed: the public copy x̂ (one broadcast
/// message per round) and s = Σ_j w_ij x̂_j, over a fixed W. (EdgeCopyExchange, in
/// decopt/optimizer/edge_exchange.hpp, is the per-edge form for a TopologySchedule.)
struct PublicCopyExchange {
  static constexpr const char* sync_name = "sync";
  static constexpr const char* overlap_name = "overlap";
  template <class Node>
  static void post(Node& node) {
    node.compress_and_post();
  }
  template <class Node>
  static void finish(Node& node) {
    node.collect_and_mix();
  }
};

/// Communicate after the local steps; the exchange waits for them (synchronous round).
/// @tparam ExchangeT how the round's messages reach the neighbours and are mixed:
///         PublicCopyExchange (static W, one x̂ and s) or EdgeCopyExchange (a TopologySchedule)
template <class ExchangeT>
struct SyncOrder {
  using Exchange = ExchangeT;
  static constexpr const char* name = Exchange::sync_name;
  static constexpr bool overlaps_communication = false;
  static constexpr bool keeps_public_copy = true;  ///< error memory: x̂ and s, or per-edge copies
  template <class Node, class Grad>
  static void begin(Node& node, Grad& grad) {
    node.run_local_steps(grad);
    post(node);
  }
  /// The communication half alone (exchange(): the user's optimizer took the local step).
  template <class Node>
  static void post(Node& node) {
    node.apply_prox();
    Exchange::post(node);
  }
  template <class Node>
  static void finish(Node& node) {
    Exchange::finish(node);
  }
};

/// Post the residual of x_t first, then compute the τ local steps while the exchange is in flight.
template <class ExchangeT>
struct OverlappedOrder {
  using Exchange = ExchangeT;
  static constexpr const char* name = Exchange::overlap_name;
  static constexpr bool overlaps_communication = true;
  static constexpr bool keeps_public_copy = true;
  template <class Node, class Grad>
  static void begin(Node& node, Grad& grad) {
    post(node);
    node.run_local_steps(grad);
  }
  template <class Node>
  static void post(Node& node) {
    Exchange::post(node);
  }
  template <class Node>
  static void finish(Node& node) {
    Exchange::finish(node);
    node.apply_prox();
  }
};

/// Static gossip (Malcom-PSGD / CHOCO-SGD / D-PSGD), synchronous and overlapped. The same orderings
/// over a TopologySchedule are ScheduledSyncStep / ScheduledOverlappedStep (edge_exchange.hpp).
using SyncStep = SyncOrder<PublicCopyExchange>;
using OverlappedStep = OverlappedOrder<PublicCopyExchange>;

/// Send the compressed model itself and mix it directly (QDGD); no error memory.
struct DirectGossipStep {
  static constexpr const char* name = "direct";
  static constexpr bool overlaps_communication = false;
  static constexpr bool keeps_public_copy = false;
  template <class Node, class Grad>
  static void begin(Node& node, Grad& grad) {
    node.run_local_steps(grad);
    post(node);
  }
  template <class Node>
  static void post(Node& node) {
    node.compress_model_and_post();
  }
  template <class Node>
  static void finish(Node& node) {
    node.collect_and_mix_direct();
    node.apply_prox();
  }
};

/// A step policy: begin(node, grad) does the local work and posts; finish(node) collects and mixes.
template <class S>
concept StepPolicy = requires {
  { S::name } -> std::convertible_to<const char*>;
  { S::overlaps_communication } -> std::convertible_to<bool>;
  { S::keeps_public_copy } -> std::convertible_to<bool>;
};

namespace detail {
/// The per-node state of a step whose exchange keeps none beyond the optimizer's x̂ and s.
struct NoExchangeState {
  [[nodiscard]] static constexpr bool time_varying() noexcept { return false; }
  template <class Out>
  void save(Out&) const {}
  template <class In>
  void load(In&) {}
};
template <class Step, class C>
struct exchange_state {
  using type = NoExchangeState;
};
template <class Step, class C>
  requires requires { typename Step::Exchange::template State<C>; }
struct exchange_state<Step, C> {
  using type = typename Step::Exchange::template State<C>;
};
}  // namespace detail

/// The state Step's exchange keeps per node over compressor C (EdgeCopyExchange: the edge copies).
template <class Step, class C>
using exchange_state_t = typename detail::exchange_state<Step, C>::type;

/// Whether Step with compressor C can converge: a step without error memory (no public copy)
/// needs an unbiased compressor, since nothing corrects a biased one's error.
template <class C, class S>
inline constexpr bool converges_with = S::keeps_public_copy || C::unbiased;

}  // namespace decopt
