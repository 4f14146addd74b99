// decopt/transport/declared_compute.hpp — compute time declared by the driver, for a virtual clock
// that does not depend on the machine.
//
// SimulatedNetwork's virtual clock counts the compute time the optimizer measured (it calls
// advance(measured seconds) after each compute phase), so simulated seconds change with the machine
// and its load. An experiment whose figures must be reproducible — CoCoD-SGD's time to accuracy,
// where what matters is the ratio of one exchange to one local step — declares the compute
// instead: the driver charges a fixed cost per unit of work (decopt-train --step-seconds: per
// gradient evaluation, from its gradient callback) to a DeclaredCompute that the LinkModel points
// to, and the network then ignores the measured time: each advance() of node i adds what node i
// was charged since its previous advance(). The optimizer advances the clock after its local steps,
// before the post (SyncStep) or after it (OverlappedStep), so declared compute lands in the round
// where the measured compute would have, and a node's clock becomes a function of the declared
// costs and the link model alone.
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "decopt/core/error.hpp"

namespace decopt {

/**
 * @brief Per-node seconds of compute charged by the driver and not yet added to a virtual clock.
 *
 * One slot per node. Node i's slot is charged and taken only by node i's own work (its gradient
 * callback and its optimizer's advance(), which run on one thread at a time), so nodes computing on
 * different threads never touch the same slot.
 */
class DeclaredCompute {
 public:
  /// @throws ConfigError when nodes < 1
  explicit DeclaredCompute(int nodes) {
    detail::require(nodes >= 1, "DeclaredCompute needs at least one node, got " + std::to_string(nodes));
    pending_.assign(static_cast<std::size_t>(nodes), 0.0);
  }

  [[nodiscard]] int size() const noexcept { return static_cast<int>(pending_.size()); }

  /**
   * @brief Declares that node `rank` computed for `seconds` (virtual time).
   * @throws ConfigError for a rank outside [0, size()) or seconds that are negative, NaN or ∞
   */
  void charge(int rank, double seconds) {
    detail::require(std::isfinite(seconds) && seconds >= 0,
                    "DeclaredCompute::charge: seconds must be finite and >= 0, got " + detail::format_double(seconds));
    slot(rank) += seconds;
  }

  /// The seconds charged to node `rank` since the previous take; resets them to 0.
  /// @throws ConfigError for a rank outside [0, size())
  double take(int rank) {
    double& pending = slot(rank);
    const double seconds = pending;
    pending = 0;
    return seconds;
  }

 private:
  double& slot(int rank) {
    detail::require(rank >= 0 && rank < size(), "DeclaredCompute: rank " + std::to_string(rank) + " outside [0, " +
                                                    std::to_string(size()) + ")");
    return pending_[static_cast<std::size_t>(rank)];
  }

  std::vector<double> pending_;
};

}  // namespace decopt
