// decopt/transport/link_model.hpp — latency and bandwidth of one directed link.
//
// A message of b bytes sent at time t over a link that is free at time f arrives at
//   max(t, f) + b / bandwidth + latency,
// and the link is busy until max(t, f) + b / bandwidth (messages on one link queue up; links are
// independent of each other). ThreadNetwork applies this as real delay; SimulatedNetwork as a
// virtual clock, so communication cost can be studied on one machine. Latency is at most a day and
// bandwidth at least 1 B/s; the arrival of a long queue can still exceed any clock, so
// ThreadNetwork saturates its conversion to clock time (and waits no longer than its timeout).
// A LinkModel may also point to a DeclaredCompute (declared_compute.hpp): SimulatedNetwork's clock
// then counts the compute the driver declared instead of the time it measured; ThreadNetwork, which
// runs in real time, refuses it.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <string>

#include "decopt/core/error.hpp"
#include "decopt/transport/declared_compute.hpp"

namespace decopt {

struct LinkModel {
  /// The longest latency accepted: a day. Beyond it a model is a typo (milliseconds given as
  /// seconds), not a network, and ThreadNetwork could no longer time its arrival.
  static constexpr double kMaxLatencySeconds = 86400.0;
  /// The smallest finite bandwidth accepted: one byte per second.
  static constexpr double kMinBandwidthBytesPerSecond = 1.0;

  double latency_seconds = 0.0;                                             ///< per message, in [0, 1 day]
  double bandwidth_bytes_per_second = std::numeric_limits<double>::infinity();  ///< ≥ 1 B/s, ∞ = unlimited
  /// Not owned; non-null: SimulatedNetwork's clocks count this declared compute, not the measured time.
  DeclaredCompute* declared_compute = nullptr;

  /// Time the link is busy with `bytes` bytes.
  [[nodiscard]] double transfer_seconds(std::size_t bytes) const noexcept {
    return std::isinf(bandwidth_bytes_per_second) ? 0.0 : static_cast<double>(bytes) / bandwidth_bytes_per_second;
  }
  [[nodiscard]] bool is_instant() const noexcept {
    return latency_seconds == 0.0 && std::isinf(bandwidth_bytes_per_second);
  }
  /// Throws ConfigError naming the latency or bandwidth that is NaN, negative or out of range.
  void validate() const {
    detail::require(std::isfinite(latency_seconds) && latency_seconds >= 0 && latency_seconds <= kMaxLatencySeconds,
                    "link latency must be a number of seconds in [0, 86400] (one day), got " +
                        detail::format_double(latency_seconds));
    detail::require(bandwidth_bytes_per_second >= kMinBandwidthBytesPerSecond,  // false for NaN
                    "link bandwidth must be >= 1 byte/s (or infinite: unlimited), got " +
                        detail::format_double(bandwidth_bytes_per_second) + " bytes/s");
  }
};

/// The state of one directed link under a LinkModel: when it is free again.
class LinkClock {
 public:
  /// Sends `bytes` at time `now`; returns the arrival time at the receiver.
  double send(double now, std::size_t bytes, const LinkModel& model) noexcept {
    const double start = now > free_at_ ? now : free_at_;
    free_at_ = start + model.transfer_seconds(bytes);
    return free_at_ + model.latency_seconds;
  }
  [[nodiscard]] double free_at() const noexcept { return free_at_; }

 private:
  double free_at_ = 0.0;
};

}  // namespace decopt
