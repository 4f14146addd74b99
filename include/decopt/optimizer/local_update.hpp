// decopt/optimizer/local_update.hpp — the local step a node takes with its gradient: SGD,
// heavy-ball, Nesterov, Adam and AdamW, as checkpointable policies.
//
// With g the gradient, η the learning rate of this step (from the caller, so a schedule can change
// it), λ the weight decay and t the 1-based step count, each follows PyTorch's torch.optim
// formula for one parameter tensor (defaults as in PyTorch where PyTorch has them):
//   SGD        torch.optim.SGD(lr, weight_decay):        d = g + λx;  x −= η d
//   HeavyBall  SGD(momentum=μ, dampening=0):              d = g + λx;  m = μm + d;  x −= η m
//   Nesterov   SGD(momentum=μ, nesterov=True):           d = g + λx;  m = μm + d;  x −= η (d + μm)
//   Adam       torch.optim.Adam(betas, eps, weight_decay; amsgrad=False), L2 coupled into g:
//                d = g + λx;  m = β₁m + (1 − β₁)d;  v = β₂v + (1 − β₂)d²
//                x −= (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
//   AdamW      torch.optim.AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization",
//              ICLR 2019): x ← x·(1 − ηλ) first, then the Adam step with d = g.
// (Adam: Kingma & Ba, ICLR 2015. Heavy ball: Polyak 1964. Nesterov in PyTorch's form: Sutskever
// et al., ICML 2013.) m starts at 0, which equals PyTorch's m = d on the first step.
//
// A policy is two levels (STYLE.md): the outer struct holds the hyperparameters, and its nested
// State, made by state(d) for a buffer of d floats, holds one run's buffers (m, v, t) and does
// the steps. The hot loops are float, allocate nothing and throw nothing; the per-step scalars
// (bias corrections) are computed in double. x and g must not overlap (the loops are __restrict).
// save/load write and read a State inside a checkpoint; loading restores the saved
// hyperparameters too, as torch.optim's load_state_dict restores its param_groups, so a resumed
// run continues bit for bit.
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/finite.hpp"
#include "decopt/optimizer/checkpoint.hpp"
#include "decopt/prox/concepts.hpp"

namespace decopt {

/**
 * What the optimizer needs from a local-update policy U: a `name` (stored in checkpoints),
 * `validate()` (ConfigError for a bad hyperparameter) and `state(d)`, a U::State for d floats with
 * `apply(x, g, lr)` (one step of x in place), `save(out) const`, `load(ByteReader&)` and `dimension()`.
 */
template <class U>
concept LocalUpdate = requires(const U& update, std::size_t d) {
  { U::name } -> std::convertible_to<const char*>;
  update.validate();
  { update.state(d) } -> std::same_as<typename U::State>;
}
&&requires(typename U::State& state, const typename U::State& cstate, std::span<float> x,
           std::span<const float> g, double lr, std::vector<std::byte>& out, ByteReader& in) {
  state.apply(x, g, lr);
  cstate.save(out);
  state.load(in);
  { cstate.dimension() } -> std::convertible_to<std::size_t>;
};

namespace detail {
/// ConfigError unless value ∈ [0, 1) (momentum, β); the message names the policy and parameter.
inline void require_unit_interval(double value, const char* policy, const char* parameter) {
  if (std::isfinite(value) && value >= 0.0 && value < 1.0) [[likely]]
    return;
  throw ConfigError(std::string(policy) + ": " + parameter + " must be in [0, 1) (got " +
                    std::to_string(value) + ")");
}

/// ConfigError unless value is finite and > 0 (ε).
inline void require_positive(double value, const char* policy, const char* parameter) {
  if (std::isfinite(value) && value > 0.0) [[likely]]
    return;
  throw ConfigError(std::string(policy) + ": " + parameter + " must be finite and > 0 (got " +
                    std::to_string(value) + ")");
}

/// The checks at the start of every step: x and g of the state's size, lr finite and ≥ 0. The
/// messages are built only on failure (no allocation per step).
inline void require_step(const char* policy, std::size_t d, std::size_t x, std::size_t g, double lr) {
  if (x != d || g != d) [[unlikely]]
    throw ConfigError(std::string(policy) + ": state is for " + std::to_string(d) + " floats, got x of " +
                      std::to_string(x) + " and g of " + std::to_string(g));
  require_non_negative(lr, policy, "lr");
}

/// Reads the policy name a State saved; ConfigError when it is another policy's.
inline void expect_local_update(ByteReader& in, const char* name) {
  const std::string saved = checkpoint::get_string(in);
  if (saved != name)
    throw ConfigError("checkpoint holds the state of local update '" + saved + "', this optimizer uses '" +
                      name + "'");
}

/// DecodeError unless every saved buffer value is finite.
inline void require_finite_state(std::span<const float> v, const char* what) {
  if (!decopt::all_finite(v))
    throw DecodeError(std::string("checkpoint's local-update ") + what + " holds non-finite values");
}
}  // namespace detail

// ---------------------------------------------------------------------------------------------

/// Plain SGD, torch.optim.SGD without momentum: x −= η (g + λx).
struct SGD {
  static constexpr const char* name = "sgd";
  double weight_decay = 0.0;  ///< λ ≥ 0, L2 coupled into the gradient (PyTorch's weight_decay)

  /// @throws ConfigError naming a non-finite or negative weight_decay
  void validate() const { detail::require_non_negative(weight_decay, "SGD", "weight_decay"); }

  class State;
  /// The state of a run over d floats. @throws ConfigError for bad hyperparameters
  [[nodiscard]] State state(std::size_t d) const;
};

/// SGD keeps no buffers; its state only knows its dimension.
class SGD::State {
 public:
  /// @throws ConfigError for bad hyperparameters
  State(const SGD& hyper, std::size_t d) : hyper_(hyper), d_(d) { hyper_.validate(); }

  /// x −= η (g + λx), in place. @throws ConfigError for sizes other than d or a bad lr
  void apply(std::span<float> x, std::span<const float> g, double lr) {
    detail::require_step("SGD", d_, x.size(), g.size(), lr);
    const float eta = static_cast<float>(lr);
    const float lambda = static_cast<float>(hyper_.weight_decay);
    float* __restrict px = x.data();
    const float* __restrict pg = g.data();
    if (lambda == 0.0f) {
      for (std::size_t k = 0; k < d_; ++k) px[k] -= eta * pg[k];
    } else {
      for (std::size_t k = 0; k < d_; ++k) px[k] -= eta * (pg[k] + lambda * px[k]);
    }
  }

  void save(std::vector<std::byte>& out) const {
    checkpoint::put_string(out, name);
    put_le<double>(out, hyper_.weight_decay);
    put_le<std::uint64_t>(out, d_);
  }
  /// @throws DecodeError for truncated bytes; ConfigError for another policy, dimension or bad
  /// hyperparameters
  void load(ByteReader& in) {
    detail::expect_local_update(in, name);
    SGD hyper;
    hyper.weight_decay = in.get_le<double>();
    hyper.validate();
    const auto d = in.get_le<std::uint64_t>();
    if (d != d_)
      throw ConfigError("checkpoint's sgd state is for " + std::to_string(d) + " floats, this one has " +
                        std::to_string(d_));
    hyper_ = hyper;
  }

  [[nodiscard]] std::size_t dimension() const noexcept { return d_; }
  [[nodiscard]] const SGD& hyperparameters() const noexcept { return hyper_; }

 private:
  SGD hyper_;
  std::size_t d_;
};

inline SGD::State SGD::state(std::size_t d) const { return State(*this, d); }

// ---------------------------------------------------------------------------------------------

/// Where the momentum buffer enters the step: x −= η m (heavy ball) or x −= η (d + μm) (Nesterov).
enum class MomentumKind { HeavyBall, Nesterov };

/// SGD with momentum, torch.optim.SGD(momentum = μ, dampening = 0, nesterov = Kind == Nesterov).
template <MomentumKind Kind>
struct MomentumUpdate {
  static constexpr const char* name = Kind == MomentumKind::HeavyBall ? "heavy-ball" : "nesterov";
  static constexpr const char* title = Kind == MomentumKind::HeavyBall ? "HeavyBall" : "Nesterov";
  double momentum = 0.9;      ///< μ ∈ [0, 1)
  double weight_decay = 0.0;  ///< λ ≥ 0, L2 coupled into the gradient

  /// @throws ConfigError naming a momentum outside [0, 1) or a non-finite or negative weight_decay
  void validate() const {
    detail::require_unit_interval(momentum, title, "momentum");
    detail::require_non_negative(weight_decay, title, "weight_decay");
  }

  class State;
  /// The state of a run over d floats. @throws ConfigError for bad hyperparameters
  [[nodiscard]] State state(std::size_t d) const;
};

/// The momentum buffer m (d floats, starting at 0).
template <MomentumKind Kind>
class MomentumUpdate<Kind>::State {
 public:
  /// @throws ConfigError for bad hyperparameters
  State(const MomentumUpdate& hyper, std::size_t d) : hyper_(hyper), m_(d, 0.0f) { hyper_.validate(); }

  /// d = g + λx; m = μm + d; x −= η m (heavy ball) or x −= η (d + μm) (Nesterov).
  /// @throws ConfigError for sizes other than d or a bad lr
  void apply(std::span<float> x, std::span<const float> g, double lr) {
    detail::require_step(title, m_.size(), x.size(), g.size(), lr);
    const float eta = static_cast<float>(lr);
    const float mu = static_cast<float>(hyper_.momentum);
    const float lambda = static_cast<float>(hyper_.weight_decay);
    float* __restrict px = x.data();
    const float* __restrict pg = g.data();
    float* __restrict pm = m_.data();
    const std::size_t n = m_.size();
    for (std::size_t k = 0; k < n; ++k) {
      const float d = lambda == 0.0f ? pg[k] : pg[k] + lambda * px[k];
      pm[k] = mu * pm[k] + d;
      if constexpr (Kind == MomentumKind::HeavyBall) {
        px[k] -= eta * pm[k];
      } else {
        px[k] -= eta * (d + mu * pm[k]);
      }
    }
  }

  void save(std::vector<std::byte>& out) const {
    checkpoint::put_string(out, name);
    put_le<double>(out, hyper_.momentum);
    put_le<double>(out, hyper_.weight_decay);
    checkpoint::put_floats(out, m_);
  }
  /// @throws DecodeError for truncated bytes or a non-finite buffer; ConfigError for another
  ///         policy, dimension or bad hyperparameters. Nothing changes unless it succeeds.
  void load(ByteReader& in) {
    detail::expect_local_update(in, name);
    MomentumUpdate hyper;
    hyper.momentum = in.get_le<double>();
    hyper.weight_decay = in.get_le<double>();
    hyper.validate();
    std::vector<float> m(m_.size());
    checkpoint::get_floats(in, m, "momentum buffer");
    detail::require_finite_state(m, "momentum buffer");
    hyper_ = hyper;
    m_ = std::move(m);
  }

  [[nodiscard]] std::size_t dimension() const noexcept { return m_.size(); }
  [[nodiscard]] const MomentumUpdate& hyperparameters() const noexcept { return hyper_; }
  /// m, the momentum buffer.
  [[nodiscard]] std::span<const float> momentum() const noexcept { return m_; }

 private:
  MomentumUpdate hyper_;
  std::vector<float> m_;
};

template <MomentumKind Kind>
auto MomentumUpdate<Kind>::state(std::size_t d) const -> State {
  return State(*this, d);
}

/// Heavy-ball momentum (Polyak 1964): m = μm + g; x −= η m.
using HeavyBall = MomentumUpdate<MomentumKind::HeavyBall>;
/// Nesterov momentum in PyTorch's form: m = μm + g; x −= η (g + μm).
using Nesterov = MomentumUpdate<MomentumKind::Nesterov>;

// ---------------------------------------------------------------------------------------------

/// How Adam applies weight decay: as L2 in the gradient (Adam) or to x directly (AdamW).
enum class WeightDecay { Coupled, Decoupled };

/// Adam (Decay = Coupled, torch.optim.Adam) or AdamW (Decoupled, torch.optim.AdamW), amsgrad off.
template <WeightDecay Decay>
struct AdamUpdate {
  static constexpr const char* name = Decay == WeightDecay::Coupled ? "adam" : "adamw";
  static constexpr const char* title = Decay == WeightDecay::Coupled ? "Adam" : "AdamW";
  double beta1 = 0.9;                                                ///< β₁ ∈ [0, 1)
  double beta2 = 0.999;                                              ///< β₂ ∈ [0, 1)
  double eps = 1e-8;                                                 ///< ε > 0
  double weight_decay = Decay == WeightDecay::Coupled ? 0.0 : 1e-2;  ///< λ ≥ 0 (PyTorch's defaults)

  /// @throws ConfigError naming a β outside [0, 1), an ε ≤ 0, a negative weight_decay or any NaN/∞
  void validate() const {
    detail::require_unit_interval(beta1, title, "beta1");
    detail::require_unit_interval(beta2, title, "beta2");
    detail::require_positive(eps, title, "eps");
    detail::require_non_negative(weight_decay, title, "weight_decay");
  }

  class State;
  /// The state of a run over d floats. @throws ConfigError for bad hyperparameters
  [[nodiscard]] State state(std::size_t d) const;
};

/// The moments m, v (d floats each, starting at 0) and the step count t.
template <WeightDecay Decay>
class AdamUpdate<Decay>::State {
 public:
  /// @throws ConfigError for bad hyperparameters
  State(const AdamUpdate& hyper, std::size_t d) : hyper_(hyper), m_(d, 0.0f), v_(d, 0.0f) {
    hyper_.validate();
  }

  /// One Adam / AdamW step of x in place (formulas in the header comment).
  /// @throws ConfigError for sizes other than d or a bad lr
  void apply(std::span<float> x, std::span<const float> g, double lr) {
    detail::require_step(title, m_.size(), x.size(), g.size(), lr);
    ++t_;
    const double t = static_cast<double>(t_);
    const float step_size = static_cast<float>(lr / (1.0 - std::pow(hyper_.beta1, t)));
    const float bias_correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(hyper_.beta2, t)));
    const float one_minus_beta1 = static_cast<float>(1.0 - hyper_.beta1);
    const float beta2 = static_cast<float>(hyper_.beta2);
    const float one_minus_beta2 = static_cast<float>(1.0 - hyper_.beta2);
    const float eps = static_cast<float>(hyper_.eps);
    const float coupled = Decay == WeightDecay::Coupled ? static_cast<float>(hyper_.weight_decay) : 0.0f;
    const float shrink =
        Decay == WeightDecay::Decoupled ? static_cast<float>(1.0 - lr * hyper_.weight_decay) : 1.0f;
    float* __restrict px = x.data();
    const float* __restrict pg = g.data();
    float* __restrict pm = m_.data();
    float* __restrict pv = v_.data();
    const std::size_t n = m_.size();
    for (std::size_t k = 0; k < n; ++k) {
      const float xk = px[k] * shrink;
      const float d = coupled == 0.0f ? pg[k] : pg[k] + coupled * xk;
      pm[k] += one_minus_beta1 * (d - pm[k]);  // PyTorch's exp_avg.lerp_(d, 1 − β₁)
      pv[k] = beta2 * pv[k] + one_minus_beta2 * d * d;
      px[k] = xk - step_size * (pm[k] / (std::sqrt(pv[k]) / bias_correction2_sqrt + eps));  // addcdiv_
    }
  }

  void save(std::vector<std::byte>& out) const {
    checkpoint::put_string(out, name);
    put_le<double>(out, hyper_.beta1);
    put_le<double>(out, hyper_.beta2);
    put_le<double>(out, hyper_.eps);
    put_le<double>(out, hyper_.weight_decay);
    put_le<std::int64_t>(out, t_);
    checkpoint::put_floats(out, m_);
    checkpoint::put_floats(out, v_);
  }
  /// @throws DecodeError for truncated bytes, a negative step count, non-finite moments or a
  ///         negative v; ConfigError for another policy, dimension or bad hyperparameters.
  ///         Nothing changes unless it succeeds.
  void load(ByteReader& in) {
    detail::expect_local_update(in, name);
    AdamUpdate hyper;
    hyper.beta1 = in.get_le<double>();
    hyper.beta2 = in.get_le<double>();
    hyper.eps = in.get_le<double>();
    hyper.weight_decay = in.get_le<double>();
    hyper.validate();
    const auto t = in.get_le<std::int64_t>();
    detail::require_decodable(t >= 0, "checkpoint's Adam step count is negative");
    std::vector<float> m(m_.size()), v(v_.size());
    checkpoint::get_floats(in, m, "first moment");
    checkpoint::get_floats(in, v, "second moment");
    detail::require_finite_state(m, "first moment");
    detail::require_finite_state(v, "second moment");
    for (float vk : v) detail::require_decodable(vk >= 0.0f, "checkpoint's Adam second moment is negative");
    hyper_ = hyper;
    t_ = t;
    m_ = std::move(m);
    v_ = std::move(v);
  }

  [[nodiscard]] std::size_t dimension() const noexcept { return m_.size(); }
  [[nodiscard]] const AdamUpdate& hyperparameters() const noexcept { return hyper_; }
  /// t, the steps taken so far.
  [[nodiscard]] std::int64_t steps() const noexcept { return t_; }
  [[nodiscard]] std::span<const float> first_moment() const noexcept { return m_; }
  [[nodiscard]] std::span<const float> second_moment() const noexcept { return v_; }

 private:
  AdamUpdate hyper_;
  std::vector<float> m_;
  std::vector<float> v_;
  std::int64_t t_ = 0;
};

template <WeightDecay Decay>
auto AdamUpdate<Decay>::state(std::size_t d) const -> State {
  return State(*this, d);
}

/// Adam (Kingma & Ba 2015) as torch.optim.Adam: weight decay as L2 in the gradient.
using Adam = AdamUpdate<WeightDecay::Coupled>;
/// AdamW (Loshchilov & Hutter 2019) as torch.optim.AdamW: x ← x(1 − ηλ), then Adam with λ = 0.
using AdamW = AdamUpdate<WeightDecay::Decoupled>;

static_assert(
    LocalUpdate<SGD> && LocalUpdate<HeavyBall> && LocalUpdate<Nesterov> && LocalUpdate<Adam> &&
        LocalUpdate<AdamW>,
    "decopt: a LocalUpdate needs `name`, validate() and state(d) returning its State, which needs "
    "apply(span<float> x, span<const float> g, double lr), save(vector<byte>&) const, load(ByteReader&) "
    "and dimension()");

}  // namespace decopt
