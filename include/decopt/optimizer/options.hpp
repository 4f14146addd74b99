// decopt/optimizer/options.hpp — the hyperparameters of a decentralized optimizer and what one
// round reports.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <limits>
#include <string>

#include "decopt/core/error.hpp"

namespace decopt {

/// What to do when a gradient or the model holds a NaN or an infinity at the start of a round.
enum class NonFinitePolicy {
  Throw,  ///< throw NonFiniteError naming the node and round (default)
  Skip,   ///< drop this round's local step (the exchange still runs) and count it in RoundStats
};

/// A NaN or infinity in a gradient or in the model.
struct NonFiniteError : Error {
  explicit NonFiniteError(const std::string& what) : Error("decopt: non-finite value: " + what) {}
};

namespace detail {
/// Whether `value` is a normal float32 (neither 0, denormal, ∞ nor NaN once rounded to float):
/// the optimizer computes in float, so an option it casts to float must survive the cast.
/// Compared in double, before any cast (casting an out-of-range double to float is undefined).
inline bool is_normal_float(double value) noexcept {
  const double magnitude = std::abs(value);
  return magnitude >= static_cast<double>(std::numeric_limits<float>::min()) &&
         magnitude <= static_cast<double>(std::numeric_limits<float>::max());
}

/// Throws ConfigError unless `value`, used as a float by the optimizer, is a normal float.
inline void require_normal_float(double value, const char* option) {
  require(is_normal_float(value), std::string("option ") + option + " = " + format_double(value) +
                                      " is not a normal float32 (the optimizer computes in float, where it would be " +
                                      (std::abs(value) < 1.0 ? "0 or denormal" : "infinite") +
                                      "): use a magnitude in [1.2e-38, 3.4e38]");
}
}  // namespace detail

/// Hyperparameters shared by every step policy. The optimizer computes in float32, so lr,
/// consensus_step and a non-zero momentum must also be normal floats (1e-46 is 0 as a float).
struct Options {
  double lr = 0.1;              ///< η, the local step size (> 0)
  double consensus_step = 1.0;  ///< γ ∈ (0, 1], the consensus step of CHOCO-SGD / Malcom-PSGD
  double momentum = 0.0;        ///< heavy-ball momentum μ ∈ [0, 1): m = μ m + g; x −= η m
  int local_steps = 1;          ///< τ ≥ 1 local steps per round (τ > 1 is local SGD)
  std::uint64_t seed = 0;       ///< every random stream (dither, RandomK) derives from it
  NonFinitePolicy non_finite = NonFinitePolicy::Throw;
  /// Every this many rounds the nodes exchange x̂ uncompressed (32 bits per parameter, once) and
  /// recompute s = Σ_j w_ij x̂_j exactly, removing the float drift of its incremental updates
  /// (measured: ≈7e-4 relative after 10⁴ rounds without it). 0 = never.
  long resync_every = 1000;
  /// The step t of the proximal operator prox_{tR} applied after consensus. Unset, step() uses
  /// the local step size lr (the algorithm's prox_{ηR}); exchange() — where the user's own
  /// optimizer took the local step and decopt does not know its step size — needs it set
  /// whenever the prox is not the identity (a ConfigError says so), never silently lr.
  std::optional<double> prox_step{};

  /// The transport round (exchange) of optimizer round r: one per round plus one per
  /// resynchronisation before it (r + ⌊r / resync_every⌋). Transport failures and lost peers
  /// (decopt/transport/lost_peers.hpp) count exchanges.
  [[nodiscard]] long exchange_of_round(long r) const noexcept { return resync_every > 0 ? r + r / resync_every : r; }
  /// The optimizer round of exchange e (the round a resynchronisation's exchange precedes).
  [[nodiscard]] long round_of_exchange(long e) const noexcept { return resync_every > 0 ? e - e / (resync_every + 1) : e; }

  /// Throws ConfigError naming the first option out of range.
  void validate() const {
    detail::require(std::isfinite(lr) && lr > 0, "option lr must be > 0, got " + detail::format_double(lr));
    detail::require_normal_float(lr, "lr");
    detail::require(std::isfinite(consensus_step) && consensus_step > 0 && consensus_step <= 1,
                    "option consensus_step (gamma) must be in (0, 1], got " + detail::format_double(consensus_step));
    detail::require_normal_float(consensus_step, "consensus_step (gamma)");
    detail::require(std::isfinite(momentum) && momentum >= 0 && momentum < 1,
                    "option momentum must be in [0, 1), got " + detail::format_double(momentum));
    if (momentum > 0) {
      detail::require_normal_float(momentum, "momentum");
      detail::require(static_cast<float>(momentum) < 1.0f,
                      "option momentum = " + detail::format_double(momentum) +
                          " rounds to 1 as a float32 (no decay): use at most 0.99999994");
    }
    detail::require(local_steps >= 1, "option local_steps must be >= 1, got " + std::to_string(local_steps));
    detail::require(resync_every >= 0, "option resync_every must be >= 0, got " + std::to_string(resync_every));
    if (prox_step)
      detail::require(std::isfinite(*prox_step) && *prox_step >= 0,
                      "option prox_step must be finite and >= 0, got " + detail::format_double(*prox_step));
  }
};

/// How DecentralizedOptimizer::load_state treats the learning rate stored in a checkpoint.
struct LoadOptions {
  /// false (default): keep this optimizer's lr (Options::lr or the last set_learning_rate), so a
  /// resumed run uses the lr it was configured with — the saved one is only validated;
  /// true: take the saved lr (a schedule's value at the saved round), as save_state recorded it.
  bool restore_learning_rate = false;
};

/// What one round of one node did.
struct RoundStats {
  long round = 0;                    ///< index of the round just finished (0-based)
  std::uint64_t bytes_sent = 0;      ///< bytes of every message posted (message bytes × neighbours)
  std::uint64_t bytes_received = 0;  ///< sum of the neighbours' message sizes
  std::uint64_t message_bytes = 0;   ///< size of this node's message (the largest, when each peer gets its own)
  long messages_sent = 0;            ///< messages this node posted: one per neighbour of the round
  double wait_seconds = 0;           ///< time blocked in the transport waiting for neighbours
  double compute_seconds = 0;        ///< time in gradients, local steps, coding and consensus
  double loss = std::nan("");        ///< mean of the gradient callback's returned losses, if it returns one
  bool skipped = false;              ///< the local step was dropped (NonFinitePolicy::Skip)
};

/// Running totals over a node's rounds.
struct RunningTotals {
  long rounds = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  double wait_seconds = 0;
  double compute_seconds = 0;
  long skipped_rounds = 0;
  std::uint64_t resync_bytes_sent = 0;  ///< the part of bytes_sent spent on resynchronisations

  void add(const RoundStats& s) noexcept {
    ++rounds;
    bytes_sent += s.bytes_sent;
    bytes_received += s.bytes_received;
    wait_seconds += s.wait_seconds;
    compute_seconds += s.compute_seconds;
    skipped_rounds += s.skipped ? 1 : 0;
  }
};

}  // namespace decopt
