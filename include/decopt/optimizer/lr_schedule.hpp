// decopt/optimizer/lr_schedule.hpp — learning-rate schedules: the η of round t from a base η₀.
//
// With t ≥ 0 the round (0-based, as DecentralizedOptimizer::round() counts) and η₀ the base rate:
//   schedule::Constant                    η_t = η₀
//   schedule::Step{γ, every}              η_t = η₀ · γ^⌊t / every⌋
//                                         (torch.optim.lr_scheduler.StepLR(step_size = every, gamma = γ))
//   schedule::Cosine{T, η_min}            η_t = η_min + (η₀ − η_min)(1 + cos(π t / T)) / 2 for t ≤ T,
//                                         η_min after (CosineAnnealingLR's closed form, Loshchilov &
//                                         Hutter, "SGDR", ICLR 2017, without restarts; PyTorch's
//                                         form would rise again after T)
//   schedule::LinearWarmup{W, then}       η_t = η₀ (t + 1) / W for t < W, then.lr(t − W, η₀) after:
//                                         a linear ramp to η₀ (Goyal et al., "Accurate, Large
//                                         Minibatch SGD", 2017) that never takes a zero step; the
//                                         following schedule counts its rounds from the end of the
//                                         warm-up, as torch's SequentialLR does
// A schedule is a small value type: lr() is a pure function of (t, η₀), so every node that knows
// the round computes the same η without communicating, and nothing needs checkpointing beyond
// the round counter.
#pragma once

#include <cmath>
#include <concepts>
#include <numbers>
#include <string>

#include "decopt/core/error.hpp"
#include "decopt/prox/concepts.hpp"

namespace decopt {

/// A learning-rate schedule: `lr(round, base_lr) const` → the η of that round, and `validate()`
/// (ConfigError for a bad hyperparameter).
template <class S>
concept LrSchedule = requires(const S& schedule, long round, double base_lr) {
  { schedule.lr(round, base_lr) } -> std::convertible_to<double>;
  schedule.validate();
};

namespace detail {
/// ConfigError unless round ≥ 0 and base_lr is finite and ≥ 0.
inline void require_schedule_arguments(const char* schedule, long round, double base_lr) {
  if (round < 0) [[unlikely]]
    throw ConfigError(std::string(schedule) + ": round must be >= 0 (got " + std::to_string(round) + ")");
  require_non_negative(base_lr, schedule, "base_lr");
}

/// ConfigError unless value ≥ minimum (a count of rounds).
inline void require_rounds(long value, long minimum, const char* schedule, const char* parameter) {
  if (value >= minimum) [[likely]]
    return;
  throw ConfigError(std::string(schedule) + ": " + parameter + " must be >= " + std::to_string(minimum) +
                    " (got " + std::to_string(value) + ")");
}
}  // namespace detail

namespace schedule {

/// η_t = η₀.
struct Constant {
  void validate() const noexcept {}
  /// @throws ConfigError for a negative round or a negative or non-finite base_lr
  [[nodiscard]] double lr(long round, double base_lr) const {
    detail::require_schedule_arguments("schedule::Constant", round, base_lr);
    return base_lr;
  }
};

/// η_t = η₀ · γ^⌊t / every⌋: multiply by γ every `every` rounds (PyTorch's StepLR).
struct Step {
  double gamma = 0.1;  ///< γ, finite and > 0 (< 1 decays)
  long every = 1;      ///< ≥ 1 rounds between two multiplications

  /// @throws ConfigError naming a non-finite or non-positive gamma or an every < 1
  void validate() const {
    if (!(std::isfinite(gamma) && gamma > 0.0))
      throw ConfigError("schedule::Step: gamma must be finite and > 0 (got " + std::to_string(gamma) + ")");
    detail::require_rounds(every, 1, "schedule::Step", "every");
  }
  /// @throws ConfigError for bad hyperparameters or arguments
  [[nodiscard]] double lr(long round, double base_lr) const {
    validate();
    detail::require_schedule_arguments("schedule::Step", round, base_lr);
    return base_lr * std::pow(gamma, static_cast<double>(round / every));
  }
};

/// Cosine annealing from η₀ at t = 0 to η_min at t = total_rounds, η_min after.
struct Cosine {
  long total_rounds = 1;  ///< T ≥ 1
  double min_lr = 0.0;    ///< η_min, finite, in [0, η₀]

  /// @throws ConfigError naming a total_rounds < 1 or a negative or non-finite min_lr
  void validate() const {
    detail::require_rounds(total_rounds, 1, "schedule::Cosine", "total_rounds");
    detail::require_non_negative(min_lr, "schedule::Cosine", "min_lr");
  }
  /// @throws ConfigError for bad hyperparameters or arguments, or a min_lr above base_lr
  [[nodiscard]] double lr(long round, double base_lr) const {
    validate();
    detail::require_schedule_arguments("schedule::Cosine", round, base_lr);
    if (min_lr > base_lr)
      throw ConfigError("schedule::Cosine: min_lr " + std::to_string(min_lr) + " is above base_lr " +
                        std::to_string(base_lr));
    if (round >= total_rounds) return min_lr;
    const double progress = static_cast<double>(round) / static_cast<double>(total_rounds);
    return min_lr + (base_lr - min_lr) * (1.0 + std::cos(std::numbers::pi * progress)) / 2.0;
  }
};

/// A linear ramp η₀ (t + 1) / W over the first W rounds, then `then` (counting from 0 again).
template <class Then = Constant>
struct LinearWarmup {
  static_assert(
      LrSchedule<Then>,
      "decopt: LinearWarmup's following schedule needs lr(long round, double base_lr) const and validate()");

  long warmup_rounds = 0;  ///< W ≥ 0 (0: no warm-up)
  Then then{};             ///< the schedule after the warm-up

  /// @throws ConfigError naming a negative warmup_rounds or a bad hyperparameter of `then`
  void validate() const {
    detail::require_rounds(warmup_rounds, 0, "schedule::LinearWarmup", "warmup_rounds");
    then.validate();
  }
  /// @throws ConfigError for bad hyperparameters or arguments
  [[nodiscard]] double lr(long round, double base_lr) const {
    validate();
    detail::require_schedule_arguments("schedule::LinearWarmup", round, base_lr);
    if (round >= warmup_rounds) return then.lr(round - warmup_rounds, base_lr);
    return base_lr * static_cast<double>(round + 1) / static_cast<double>(warmup_rounds);
  }
};

}  // namespace schedule

static_assert(LrSchedule<schedule::Constant> && LrSchedule<schedule::Step> && LrSchedule<schedule::Cosine> &&
                  LrSchedule<schedule::LinearWarmup<schedule::Cosine>>,
              "decopt: a learning-rate schedule needs lr(long round, double base_lr) const and validate()");

}  // namespace decopt
