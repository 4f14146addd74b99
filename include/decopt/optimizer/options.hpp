// decopt/optimizer/options.hpp — the hyperparameters of a decentralized optimizer and what one
// round reports.
#pragma once

#include <cmath>
#include <cstdint>
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

/// Hyperparameters shared by every step policy.
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

  /// Throws ConfigError naming the first option out of range.
  void validate() const {
    detail::require(std::isfinite(lr) && lr > 0, "option lr must be > 0, got " + std::to_string(lr));
    detail::require(std::isfinite(consensus_step) && consensus_step > 0 && consensus_step <= 1,
                    "option consensus_step (gamma) must be in (0, 1], got " + std::to_string(consensus_step));
    detail::require(std::isfinite(momentum) && momentum >= 0 && momentum < 1,
                    "option momentum must be in [0, 1), got " + std::to_string(momentum));
    detail::require(local_steps >= 1, "option local_steps must be >= 1, got " + std::to_string(local_steps));
    detail::require(resync_every >= 0, "option resync_every must be >= 0, got " + std::to_string(resync_every));
  }
};

/// What one round of one node did.
struct RoundStats {
  long round = 0;                    ///< index of the round just finished (0-based)
  std::uint64_t bytes_sent = 0;      ///< message bytes × number of neighbours
  std::uint64_t bytes_received = 0;  ///< sum of the neighbours' message sizes
  std::uint64_t message_bytes = 0;   ///< size of this node's one message
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
