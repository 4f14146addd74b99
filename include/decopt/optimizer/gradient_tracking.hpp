// decopt/optimizer/gradient_tracking.hpp — compressed gradient tracking: each node tracks the
// network-average gradient, so that on non-IID data the nodes reach the minimiser of the average
// objective (1/n) Σ_i f_i with a constant step size, where D-PSGD / CHOCO-SGD stay biased towards
// their own f_i by a term of order η·(heterogeneity)/(spectral gap).
//
// BEER: Zhao, Li, Li, Richtárik & Chi, "BEER: Fast O(1/T) Rate for Decentralized Nonconvex
// Optimization with Communication Compression", NeurIPS 2022 (Algorithm 1): gradient tracking with
// CHOCO's error memory (Koloskova, Stich & Jaggi, ICML 2019) on both the model and the tracker.
// With the identity compressor and γ = 1 it is exactly DIGing: Nedić, Olshevsky & Shi, "Achieving
// Geometric Convergence for Distributed Optimization over Time-Varying Graphs", SIAM J. Optim. 2017:
//   x^{t+1} = W x^t − η v^t,   v^{t+1} = W v^t + ∇f(x^{t+1}) − ∇f(x^t),   v^0 = ∇f(x^0).
//
// Round t of node i, in BEER's order (x̂, v̂ the public copies the neighbours know; s_x = Σ_j w_ij x̂_j
// and s_v = Σ_j w_ij v̂_j over the node itself and its neighbours, kept incrementally):
//   1. x  ← x + γ(s_x − x̂) − η v               model step: consensus on x̂ and the tracked gradient
//   2. q_x = C(x − x̂);  x̂ += q_x;  s_x += w_ii q_x
//   3. g' = ∇f_i(x; ξ)                          the user's callback, at the new model
//   4. v  ← v + γ(s_v − v̂) + g' − g;  g ← g'    tracker step (uses the v̂, s_v of the last round)
//   5. q_v = C(v − v̂);  v̂ += q_v;  s_v += w_ii q_v
//   6. post [q_x, q_v] in one message; collect the neighbours';  s_x += Σ_j w_ij q_x,j,  s_v likewise
// Start: x̂ = s_x = v = v̂ = s_v = g = 0 (and the same x⁰ on every node), so round 0 is steps 1–6
// with nothing to mix: x stays x⁰, v = g = ∇f_i(x⁰) (v⁰ = g⁰), and q_x = C(x⁰), q_v = C(v⁰) fill
// the public copies. With the identity compressor x̂ = x and v̂ = v after every round, and round
// t ≥ 1 is DIGing's iteration t exactly. One gradient per round, one message per round.
//
// Invariant (any compressor, any γ, W doubly stochastic): Σ_i v_i = Σ_i g_i after every round,
// since Σ_i (s_v,i − v̂_i) = Σ_j (Σ_i w_ij − 1) v̂_j = 0 — the tracker's average is the average
// of the last gradients, so at consensus every v_i is the average gradient.
//
// Numerics: x̂, s_x, v̂ and s_v are kept in double. An error E_i in an incremental sum (s_i ≠
// Σ_j w_ij x̂_j), or a public copy that differs from the sum of the q its neighbours added, is
// not forgotten: it is added again by γ(s − x̂) in every later round, so Σ_i v_i − Σ_i g_i grows by
// γ Σ_i E_i per round and the model drifts. In float that broke the invariant by 1.8e-3 (relative)
// after 3000 rounds of DIGing on the 8-node quadratics of the tests, and left the model 5.7e-3 from
// the minimiser; in double the same run keeps it to float rounding and reaches the minimiser to 1e-5.
// What travels is still float32: q is the float the compressor reconstructs, every receiver
// decodes exactly it, and adds w_ij·q to its double sums. (No resynchronisation is needed or done.)
//
// Message: [u32 LE: byte length of the model part][model part][tracker part], each part one
// self-describing message of the compressor (version, dimension, parameters, payload, checksum),
// so a round sends two compressor messages and 4 bytes; with the identity compressor that is
// 2·(header + 4d) + 4 bytes, twice D-PSGD's. A malformed message is a DecodeError naming the
// peer, the round and the part.
//
// State per node: x̂, s_x, v̂, s_v in double and v, g in float — 40·d bytes, ten floats' worth (the
// user's buffer holds x; the gradient, residual, reconstruction and decoding scratch is per
// thread, shared with DecentralizedOptimizer's nodes).
//
// Node interface: begin_round / finish_round / step, save_state / load_state, mark_inconsistent
// and the inspection calls of DecentralizedOptimizer, and a constructor from decopt::Options, so
// Simulation<GradientTracking<C>> and decopt-train drive it as they drive the other optimizers.
// It has no proximal step, no local update other than SGD, no momentum and no resynchronisation:
// those are ConfigErrors. Exceptions poison the node as in DecentralizedOptimizer (its header).
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "decopt/compress/hooks.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/finite.hpp"
#include "decopt/core/rng.hpp"
#include "decopt/optimizer/checkpoint.hpp"
#include "decopt/optimizer/concepts.hpp"
#include "decopt/optimizer/decentralized_optimizer.hpp"
#include "decopt/optimizer/local_update.hpp"
#include "decopt/optimizer/options.hpp"
#include "decopt/optimizer/steps.hpp"
#include "decopt/parameters/layout.hpp"
#include "decopt/prox/no_prox.hpp"
#include "decopt/topology/topology.hpp"
#include "decopt/transport/transport.hpp"

namespace decopt {

/// Options of GradientTracking.
struct GradientTrackingOptions {
  double lr = 0.1;              ///< η > 0, a normal float32
  double consensus_step = 1.0;  ///< γ ∈ (0, 1]; 1 with the identity compressor is DIGing
  std::uint64_t seed = 0;       ///< the compressor's random streams (dither) derive from it

  /// @throws ConfigError naming the first option out of range
  void validate() const {
    detail::require(std::isfinite(lr) && lr > 0, "GradientTracking: option lr must be > 0, got " + detail::format_double(lr));
    detail::require_normal_float(lr, "lr");
    detail::require(std::isfinite(consensus_step) && consensus_step > 0 && consensus_step <= 1,
                    "GradientTracking: option consensus_step (gamma) must be in (0, 1], got " +
                        detail::format_double(consensus_step));
    detail::require_normal_float(consensus_step, "consensus_step (gamma)");
  }

  /// lr, consensus_step and seed of `o`. @throws ConfigError for what gradient tracking does not run:
  /// momentum, local steps, a prox step, NonFinitePolicy::Skip (a skipped gradient would break the
  /// tracker's invariant) — resync_every is ignored (no resynchronisation).
  static GradientTrackingOptions from(const Options& o) {
    o.validate();
    detail::require(o.momentum == 0, "GradientTracking: option momentum must be 0 (the tracker replaces the gradient), got " +
                                         detail::format_double(o.momentum));
    detail::require(o.local_steps == 1, "GradientTracking: option local_steps must be 1, got " + std::to_string(o.local_steps));
    detail::require(!o.prox_step.has_value(), "GradientTracking: option prox_step does not apply (no proximal step)");
    detail::require(o.non_finite == NonFinitePolicy::Throw,
                    "GradientTracking: option non_finite must be Throw (skipping a gradient breaks the tracker)");
    return {o.lr, o.consensus_step, o.seed};
  }
};

/**
 * @brief One node of compressed gradient tracking (BEER; DIGing with the identity compressor and
 *        γ = 1) over a user-owned float buffer. Formulas and message format: the header comment.
 *
 * @tparam CompressorT a ResidualCompressor, e.g. Compressor<Dense, Identity, RawCoder> (DIGing) or
 *                     Compressor<Dense, DitheredQuantizer, VectorSourceCoder>; biased ones (TopK)
 *                     too, since both x̂ and v̂ are error memories
 */
template <class CompressorT>
class GradientTracking {
  static_assert(ResidualCompressor<CompressorT>,
                "decopt: GradientTracking needs a ResidualCompressor (encode, decode_add, unbiased, lossless): a "
                "ModelAwareCompressor such as SupportCoded codes the model's x̂ and does not apply to the tracker");

 public:
  using Compressor = CompressorT;
  using Prox = NoProx;   ///< none (Simulation's and decopt-train's node interface)
  using Local = SGD;     ///< the model step is x − η v
  using Step = SyncStep;  ///< one synchronous exchange per round

  /**
   * @param x the node's model, updated in place (every node must start from the same x⁰)
   * @param topology the mixing matrix W (this node's row is copied)
   * @param transport this node's endpoint; its rank() selects the row of W; must outlive the node
   * @throws ConfigError for bad options, an empty or non-finite x, a transport that does not match W
   */
  GradientTracking(std::span<float> x, const Topology& topology, TransportRef transport,
                   GradientTrackingOptions options = {}, Compressor compressor = {})
      : x_(x), transport_(transport), options_(options), compressor_(std::move(compressor)), rank_(transport.rank()) {
    options_.validate();
    detail::require(!x.empty(), "GradientTracking: parameter buffer is empty");
    detail::require(rank_ >= 0 && rank_ < topology.size(),
                    "GradientTracking: transport rank " + std::to_string(rank_) + " is not a node of " + topology.name());
    const auto neighbors = topology.neighbors(rank_);
    detail::require(transport.degree() == static_cast<int>(neighbors.size()),
                    "GradientTracking: transport of rank " + std::to_string(rank_) + " has " +
                        std::to_string(transport.degree()) + " neighbours but the topology gives it " +
                        std::to_string(neighbors.size()));
    neighbors_.assign(neighbors.begin(), neighbors.end());
    if (const auto ranks = transport.neighbor_ranks()) {
      std::vector<int> expected;
      for (const Edge& e : neighbors_) expected.push_back(e.node);
      detail::require(*ranks == expected, "GradientTracking: transport of rank " + std::to_string(rank_) +
                                              " exchanges with other neighbours than the topology gives it");
    }
    detail::require(decopt::all_finite(std::span<const float>(x_)),
                    "GradientTracking: initial model of node " + std::to_string(rank_) + " is not finite");
    self_weight_ = topology.self_weight(rank_);
    topology_fingerprint_ = topology.fingerprint();
    graph_name_ = topology.name();
    const std::size_t d = x.size();
    for (auto* state : {&xhat_, &sx_, &vhat_, &sv_}) state->assign(d, 0.0);
    for (auto* state : {&v_, &g_}) state->assign(d, 0.0f);
    rng_ = Rng::derive(options_.seed, {static_cast<std::uint64_t>(rank_), 0x67726b74ULL /* "grkt" */});
    hooks::bind_node(compressor_, rank_, topology.size(), options_.seed);
  }

  /// The node interface of Simulation and decopt-train: Options (GradientTrackingOptions::from),
  /// no prox, SGD as the local update.
  GradientTracking(std::span<float> x, const Topology& topology, TransportRef transport, const Options& options,
                   Compressor compressor, NoProx /*prox*/, SGD local = {})
      : GradientTracking(x, topology, transport, GradientTrackingOptions::from(options), std::move(compressor)) {
    local.validate();
    detail::require(local.weight_decay == 0, "GradientTracking: the SGD local update's weight_decay must be 0");
  }

  /// Over a ParameterLayout: refused (no prox segments, one quantizer scale). Exists so that a
  /// driver written for DecentralizedOptimizer's layout constructor compiles with this node.
  /// @throws ConfigError always
  GradientTracking(std::span<float> x, const ParameterLayout& /*layout*/, const Topology& topology,
                   TransportRef transport, const Options& options, Compressor compressor, NoProx /*prox*/,
                   SGD /*local*/ = {})
      : GradientTracking(x, topology, transport, GradientTrackingOptions::from(options), std::move(compressor)) {
    throw ConfigError("GradientTracking takes no ParameterLayout (it has no prox and one quantizer scale)");
  }

  GradientTracking(const GradientTracking&) = delete;
  GradientTracking& operator=(const GradientTracking&) = delete;
  GradientTracking(GradientTracking&&) noexcept = default;

  /// One whole round: begin_round then finish_round (a node in a thread or process of its own).
  template <GradientFunction Grad>
  RoundStats step(Grad&& grad) {
    begin_round(grad);
    return finish_round();
  }

  /// Steps 1–5 and the post of step 6 (header comment).
  /// @throws Error when poisoned; ConfigError when called twice without finish_round (nothing
  ///         changes); NonFiniteError for a non-finite gradient, model or tracker, and whatever the
  ///         callback or the transport throws — which poison the node
  template <GradientFunction Grad>
  void begin_round(Grad&& grad) {
    require_consistent();
    detail::require(!in_round_, "GradientTracking: begin_round called twice without finish_round (node " +
                                    std::to_string(rank_) + ")");
    poison_on_exception([&] {
      in_round_ = true;
      current_ = RoundStats{};
      current_.round = round_;
      const auto start = Clock::now();
      auto& scratch = detail::RoundScratch::for_this_thread(dimension());
      const std::span<float> work(scratch.gradient.data(), dimension());
      const std::span<float> q(scratch.reconstruction.data(), dimension());
      const auto d = dimension();
      const double gamma = options_.consensus_step;
      const float lr = static_cast<float>(options_.lr);
      for (std::size_t k = 0; k < d; ++k)  // 1
        x_[k] += static_cast<float>(gamma * (sx_[k] - xhat_[k])) - lr * v_[k];
      require_finite(std::span<const float>(x_), "model");
      auto& message = messages_[static_cast<std::size_t>(round_ % 2)];
      message.clear();
      put_le<std::uint32_t>(message, 0);  // the model part's length, patched below
      compress_into(std::span<const float>(x_), xhat_, sx_, work, q, message);  // 2
      const auto model_bytes = message.size() - sizeof(std::uint32_t);
      detail::require(model_bytes <= UINT32_MAX, "GradientTracking: model message over 4 GiB");
      std::vector<std::byte> length;
      put_le<std::uint32_t>(length, static_cast<std::uint32_t>(model_bytes));
      std::copy(length.begin(), length.end(), message.begin());
      current_.loss = call_gradient(grad, std::span<const float>(x_), work);  // 3
      require_finite(std::span<const float>(work), "gradient");
      for (std::size_t k = 0; k < d; ++k) {  // 4
        v_[k] += static_cast<float>(gamma * (sv_[k] - vhat_[k])) + (work[k] - g_[k]);
        g_[k] = work[k];
      }
      require_finite(std::span<const float>(v_), "tracker");
      compress_into(std::span<const float>(v_), vhat_, sv_, work, q, message);  // 5
      transport_.advance(seconds_since(start));
      transport_.post(round_, message);  // 6
      current_.message_bytes = message.size();
      current_.bytes_sent = message.size() * neighbors_.size();
      current_.messages_sent = static_cast<long>(neighbors_.size());
      current_.compute_seconds += seconds_since(start);
    });
  }

  /// Step 6's collection: s_x += Σ_j w_ij q_x,j and s_v += Σ_j w_ij q_v,j in neighbour order.
  /// @throws Error when poisoned; ConfigError without begin_round; DecodeError for a malformed
  ///         message, the transport's error for a silent neighbour — which poison the node
  RoundStats finish_round() {
    require_consistent();
    detail::require(in_round_, "GradientTracking: finish_round called before begin_round (node " + std::to_string(rank_) + ")");
    poison_on_exception([&] {
      auto& inbox = detail::RoundScratch::for_this_thread(dimension()).inbox;
      const auto wait_start = Clock::now();
      transport_.collect(round_, inbox);
      current_.wait_seconds += seconds_since(wait_start);
      const auto start = Clock::now();
      detail::require(inbox.size() == neighbors_.size(), "GradientTracking: transport delivered a wrong number of messages");
      for (std::size_t j = 0; j < neighbors_.size(); ++j) {
        add_neighbor(inbox[j], neighbors_[j]);
        current_.bytes_received += inbox[j].size();
      }
      const double mixing = seconds_since(start);
      transport_.advance(mixing);
      current_.compute_seconds += mixing;
    });
    in_round_ = false;
    totals_.add(current_);
    ++round_;
    return current_;
  }

  // ---- inspection ----
  [[nodiscard]] int rank() const noexcept { return rank_; }
  [[nodiscard]] std::size_t dimension() const noexcept { return x_.size(); }
  [[nodiscard]] long round() const noexcept { return round_; }
  [[nodiscard]] std::span<float> parameters() const noexcept { return x_; }
  /// x̂ and s_x = w_ii x̂_i + Σ_j w_ij x̂_j, in double (Simulation::neighbor_sum_error checks s_x).
  [[nodiscard]] std::span<const double> public_copy() const noexcept { return xhat_; }
  [[nodiscard]] std::span<const double> neighbor_sum() const noexcept { return sx_; }
  /// v, the tracked average gradient; v̂ and s_v its public copy and neighbour sum; g the last gradient.
  [[nodiscard]] std::span<const float> tracker() const noexcept { return v_; }
  [[nodiscard]] std::span<const double> tracker_public_copy() const noexcept { return vhat_; }
  [[nodiscard]] std::span<const double> tracker_neighbor_sum() const noexcept { return sv_; }
  [[nodiscard]] std::span<const float> last_gradient() const noexcept { return g_; }
  [[nodiscard]] const RunningTotals& totals() const noexcept { return totals_; }
  [[nodiscard]] const GradientTrackingOptions& options() const noexcept { return options_; }
  [[nodiscard]] const Compressor& compressor() const noexcept { return compressor_; }
  [[nodiscard]] std::span<const Edge> neighbors() const noexcept { return neighbors_; }
  [[nodiscard]] double self_weight() const noexcept { return self_weight_; }

  /// Changes η from the next round on (schedules); validated like GradientTrackingOptions::lr.
  void set_learning_rate(double lr) {
    GradientTrackingOptions o = options_;
    o.lr = lr;
    o.validate();
    options_ = o;
  }
  /// @throws ConfigError always: gradient tracking runs no proximal step.
  void set_prox_step(double /*step*/) { throw ConfigError("GradientTracking has no proximal step (no l1 prox)"); }

  // No resynchronisation (the header comment): the node interface's calls, never due.
  [[nodiscard]] bool resync_due() const noexcept { return false; }
  void begin_resync() { throw ConfigError("GradientTracking does not resynchronise"); }
  void finish_resync() { throw ConfigError("GradientTracking does not resynchronise"); }

  /// Poisons this node for a failure elsewhere (a lockstep driver whose other node threw).
  void mark_inconsistent(const std::string& cause) {
    if (failure_.empty()) poison(cause);
  }
  [[nodiscard]] bool inconsistent() const noexcept { return !failure_.empty(); }

  /// "gradient-tracking/" and the compressor's name, stored in checkpoints.
  [[nodiscard]] static std::string pipeline_name() {
    std::string name = "gradient-tracking/";
    if constexpr (requires { Compressor::name(); }) name += Compressor::name();
    return name;
  }

  // ---- checkpoints (framing and conventions: decopt/optimizer/checkpoint.hpp) ----

  /// Appends one framed record: dimension, rank, topology fingerprint, pipeline, round, totals,
  /// RNG, lr, x, x̂, s_x, v, v̂, s_v, g and the compressor's state. Call between rounds.
  /// @throws ConfigError inside a round; Error when poisoned
  void save_state(std::vector<std::byte>& out) const {
    require_consistent();
    detail::require(!in_round_, "GradientTracking: save_state called inside a round (node " + std::to_string(rank_) + ")");
    const std::size_t start = checkpoint::begin_record(out);
    put_le<std::uint64_t>(out, dimension());
    put_le<std::int32_t>(out, rank_);
    put_le<std::uint64_t>(out, topology_fingerprint_);
    checkpoint::put_string(out, pipeline_name());
    put_le<std::int64_t>(out, round_);
    put_le<std::int64_t>(out, totals_.rounds);
    put_le<std::uint64_t>(out, totals_.bytes_sent);
    put_le<std::uint64_t>(out, totals_.bytes_received);
    put_le<double>(out, totals_.wait_seconds);
    put_le<double>(out, totals_.compute_seconds);
    for (std::uint64_t word : rng_.state()) put_le<std::uint64_t>(out, word);
    put_le<double>(out, options_.lr);
    checkpoint::put_floats(out, x_);
    checkpoint::put_doubles(out, xhat_);
    checkpoint::put_doubles(out, sx_);
    checkpoint::put_floats(out, v_);
    checkpoint::put_doubles(out, vhat_);
    checkpoint::put_doubles(out, sv_);
    checkpoint::put_floats(out, g_);
    hooks::save_state(compressor_, out);
    checkpoint::end_record(out, start);
  }

  /**
   * Restores a record of save_state; returns the bytes consumed. Everything is read and checked
   * before anything changes; a success clears a poisoned node. The lr stays this node's unless
   * `load.restore_learning_rate`.
   * @throws DecodeError for a truncated, corrupted or implausible record; ConfigError for another
   *         dimension, rank, topology or pipeline, or inside a round
   */
  std::size_t load_state(std::span<const std::byte> bytes, LoadOptions load = {}) {
    detail::require(!in_round_, "GradientTracking: load_state called inside a round (node " + std::to_string(rank_) + ")");
    std::size_t consumed = 0;
    ByteReader in(checkpoint::open_record(bytes, consumed));
    const auto d = in.get_le<std::uint64_t>();
    detail::require(d == dimension(), "GradientTracking: checkpoint is for dimension " + std::to_string(d) +
                                          ", this node has " + std::to_string(dimension()));
    const auto rank = in.get_le<std::int32_t>();
    detail::require(rank == rank_, "GradientTracking: checkpoint is of node " + std::to_string(rank) + ", this is node " +
                                       std::to_string(rank_));
    detail::require(in.get_le<std::uint64_t>() == topology_fingerprint_,
                    "GradientTracking: checkpoint was written on another topology than " + graph_name_);
    const std::string pipeline = checkpoint::get_string(in);
    detail::require(pipeline == pipeline_name(), "GradientTracking: checkpoint was written by pipeline " + pipeline +
                                                     ", this node runs " + pipeline_name());
    const auto round = static_cast<long>(in.get_le<std::int64_t>());
    RunningTotals totals;
    totals.rounds = static_cast<long>(in.get_le<std::int64_t>());
    totals.bytes_sent = in.get_le<std::uint64_t>();
    totals.bytes_received = in.get_le<std::uint64_t>();
    totals.wait_seconds = in.get_le<double>();
    totals.compute_seconds = in.get_le<double>();
    Rng::State rng{};
    for (auto& word : rng) word = in.get_le<std::uint64_t>();
    const double lr = in.get_le<double>();
    std::vector<float> x(dimension()), v(dimension()), g(dimension());
    std::vector<double> xhat(dimension()), sx(dimension()), vhat(dimension()), sv(dimension());
    checkpoint::get_floats(in, x, "model");
    checkpoint::get_doubles(in, xhat, "public copy");
    checkpoint::get_doubles(in, sx, "neighbour sum");
    checkpoint::get_floats(in, v, "tracker");
    checkpoint::get_doubles(in, vhat, "tracker public copy");
    checkpoint::get_doubles(in, sv, "tracker neighbour sum");
    checkpoint::get_floats(in, g, "gradient");
    std::optional<Compressor> compressor;
    if constexpr (StatefulCompressor<Compressor>) compressor.emplace(compressor_);
    hooks::load_state(compressor ? *compressor : compressor_, in);
    detail::require_decodable(in.remaining() == 0, "checkpoint record has trailing bytes");
    auto field = [](bool ok, const std::string& what) {
      if (!ok) throw DecodeError("checkpoint field " + what);
    };
    field(round >= 0 && totals.rounds == round, "round = " + std::to_string(round) + " is negative or differs from totals.rounds");
    field(std::isfinite(totals.wait_seconds) && totals.wait_seconds >= 0 && std::isfinite(totals.compute_seconds) &&
              totals.compute_seconds >= 0,
          "totals' seconds are not finite times >= 0");
    field(std::any_of(rng.begin(), rng.end(), [](std::uint64_t w) { return w != 0; }), "rng state is all zero");
    GradientTrackingOptions saved = options_;
    saved.lr = lr;
    try {
      saved.validate();
    } catch (const ConfigError& e) {
      throw DecodeError(std::string("checkpoint field lr is invalid: ") + e.what());
    }
    auto finite = [](const auto& values) {
      return std::all_of(values.begin(), values.end(), [](auto value) { return std::isfinite(value); });
    };
    field(finite(x) && finite(v) && finite(g) && finite(xhat) && finite(sx) && finite(vhat) && finite(sv),
          "holds non-finite values");
    if (load.restore_learning_rate) options_.lr = lr;
    round_ = round;
    totals_ = totals;
    rng_.set_state(rng);
    std::copy(x.begin(), x.end(), x_.begin());
    xhat_ = std::move(xhat);
    sx_ = std::move(sx);
    v_ = std::move(v);
    vhat_ = std::move(vhat);
    sv_ = std::move(sv);
    g_ = std::move(g);
    if (compressor) compressor_ = std::move(*compressor);
    failure_.clear();
    return consumed;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

  void require_finite(std::span<const float> values, const char* what) const {
    if (!decopt::all_finite(values))
      throw NonFiniteError(std::string(what) + " of node " + std::to_string(rank_) + " in round " + std::to_string(round_));
  }

  /// q = C(value − public); public += q; sum += w_ii q; the message appended to `out` (the
  /// public-copy update of DecentralizedOptimizer::compress_and_post, in double, for either copy).
  void compress_into(std::span<const float> value, std::vector<double>& public_copy, std::vector<double>& sum,
                     std::span<float> residual, std::span<float> q, std::vector<std::byte>& out) {
    for (std::size_t k = 0; k < value.size(); ++k) residual[k] = static_cast<float>(value[k] - public_copy[k]);
    compressor_.encode(std::span<const float>(residual), rng_, out, q);
    for (std::size_t k = 0; k < value.size(); ++k) {
      public_copy[k] += q[k];
      sum[k] += self_weight_ * q[k];
    }
  }

  /// sum += weight · q of one compressor message: q decoded exactly (as float, into zeroed
  /// scratch), the product and the sum in double.
  void decode_into(std::span<const std::byte> message, double weight, std::vector<double>& sum) {
    auto& scratch = detail::RoundScratch::for_this_thread(dimension());
    const std::span<float> q(scratch.reconstruction.data(), dimension());
    std::fill(q.begin(), q.end(), 0.0f);
    compressor_.decode_add(message, 1.0f, q);
    for (std::size_t k = 0; k < q.size(); ++k) sum[k] += weight * q[k];
  }

  /// Splits a neighbour's message into its two parts and adds w_ij q of each to s_x and s_v.
  void add_neighbor(std::span<const std::byte> bytes, const Edge& edge) {
    auto refuse = [&](const std::string& why) {
      return DecodeError("gradient-tracking message from node " + std::to_string(edge.node) + " to node " +
                         std::to_string(rank_) + " in round " + std::to_string(round_) + ": " + why);
    };
    if (bytes.size() < sizeof(std::uint32_t)) throw refuse(std::to_string(bytes.size()) + " bytes, no length field");
    ByteReader in(bytes);
    const std::size_t model_bytes = in.get_le<std::uint32_t>();
    if (model_bytes > in.remaining())
      throw refuse("model part of " + std::to_string(model_bytes) + " bytes, only " + std::to_string(in.remaining()) + " follow");
    const auto model = bytes.subspan(sizeof(std::uint32_t), model_bytes);
    const auto tracker = bytes.subspan(sizeof(std::uint32_t) + model_bytes);
    try {
      decode_into(model, edge.weight, sx_);
    } catch (const DecodeError& e) {
      throw refuse(std::string("model part: ") + e.what());
    }
    try {
      decode_into(tracker, edge.weight, sv_);
    } catch (const DecodeError& e) {
      throw refuse(std::string("tracker part: ") + e.what());
    }
  }

  // ---- the exception guarantee of DecentralizedOptimizer (its header comment) ----
  template <class Phase>
  void poison_on_exception(Phase&& phase) {
    try {
      phase();
    } catch (const std::exception& e) {
      poison(e.what());
      throw;
    } catch (...) {
      poison("an exception not derived from std::exception");
      throw;
    }
  }
  void poison(const std::string& what) {
    in_round_ = false;
    failure_ = "node " + std::to_string(rank_) + " was left inconsistent by an exception in round " + std::to_string(round_) +
               " (" + what + "); reload a checkpoint with load_state() to continue";
  }
  void require_consistent() const {
    if (!failure_.empty()) throw Error("decopt: " + failure_);
  }

  std::span<float> x_;
  TransportRef transport_;
  GradientTrackingOptions options_;
  Compressor compressor_;
  int rank_ = 0;
  std::vector<Edge> neighbors_;
  double self_weight_ = 1;
  std::uint64_t topology_fingerprint_ = 0;
  std::string graph_name_;
  std::vector<double> xhat_, sx_;      // x̂, s_x
  std::vector<float> v_;               // v
  std::vector<double> vhat_, sv_;      // v̂, s_v
  std::vector<float> g_;               // the gradient of the last round
  // Double-buffered: a posted message stays untouched until the next post (an MPI send may read it).
  std::array<std::vector<std::byte>, 2> messages_;
  Rng rng_{0};
  long round_ = 0;
  bool in_round_ = false;
  std::string failure_;
  RoundStats current_;
  RunningTotals totals_;
};

}  // namespace decopt
