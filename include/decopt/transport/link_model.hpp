// decopt/transport/link_model.hpp — latency and bandwidth of one directed link.
//
// A message of b bytes sent at time t over a link that is free at time f arrives at
//   max(t, f) + b / bandwidth + latency,
// and the link is busy until max(t, f) + b / bandwidth (messages on one link queue up; links are
// independent of each other). ThreadNetwork applies this as real delay; SimulatedNetwork as a
// virtual clock, so communication cost can be studied on one machine.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <string>

#include "decopt/core/error.hpp"

namespace decopt {

struct LinkModel {
  double latency_seconds = 0.0;                                             ///< per message, ≥ 0
  double bandwidth_bytes_per_second = std::numeric_limits<double>::infinity();  ///< > 0

  /// Time the link is busy with `bytes` bytes.
  [[nodiscard]] double transfer_seconds(std::size_t bytes) const noexcept {
    return std::isinf(bandwidth_bytes_per_second) ? 0.0 : static_cast<double>(bytes) / bandwidth_bytes_per_second;
  }
  [[nodiscard]] bool is_instant() const noexcept {
    return latency_seconds == 0.0 && std::isinf(bandwidth_bytes_per_second);
  }
  void validate() const {
    detail::require(std::isfinite(latency_seconds) && latency_seconds >= 0,
                    "link latency must be a finite number of seconds >= 0, got " + std::to_string(latency_seconds));
    detail::require(bandwidth_bytes_per_second > 0 && !std::isnan(bandwidth_bytes_per_second),
                    "link bandwidth must be > 0 bytes/s, got " + std::to_string(bandwidth_bytes_per_second));
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
