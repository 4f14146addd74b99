// train/privacy.hpp — differentially private training in decopt-train: per-sample gradients of the
// MLP, clipped by one of the rules of decopt/privacy (Abadi, NSGD, Auto-S, DP-PSAC), Gaussian
// noise N(0, σ²C²I), and the (ε, δ) of the run from the Rényi-DP accountant.
//
// Accounting: each node protects its own samples. A node takes B of its n_i samples per local step,
// so the accountant runs with sample rate q = B/n_i for rounds × local_steps steps. decopt-train's
// sampler draws fixed-size batches from a shuffled epoch, while the accountant analyses Poisson
// subsampling (Mironov et al. 2019) — the same approximation Opacus makes by default.
#pragma once

#include <CLI/CLI.hpp>
#include <decopt/decopt.hpp>

#include <string>
#include <variant>

#include "fashion/mlp.hpp"

namespace decopt::train {

struct DpSettings {
  double clip = 0;              ///< C; 0 = differential privacy off
  double noise = 0;             ///< σ, the noise multiplier
  double target_epsilon = 0;    ///< > 0: choose σ so the run meets this ε
  std::string clipping = "psac";
  double r = 0.1;               ///< NSGD's r / PSAC's r
  double delta = 1e-5;

  [[nodiscard]] bool enabled() const noexcept { return clip > 0; }
  void validate() const {
    if (!enabled()) {
      detail::require(noise == 0 && target_epsilon == 0, "--dp-noise/--dp-epsilon need --dp-clip C > 0");
      return;
    }
    detail::require(noise > 0 || target_epsilon > 0, "differential privacy needs --dp-noise > 0 or --dp-epsilon > 0");
    detail::require(delta > 0 && delta < 1, "--dp-delta must be in (0, 1)");
  }
};

inline void add_dp_flags(CLI::App& app, DpSettings& dp) {
  app.add_option("--dp-clip", dp.clip, "per-sample clip bound C (enables differential privacy)")->check(CLI::NonNegativeNumber);
  app.add_option("--dp-noise", dp.noise, "noise multiplier sigma: noise N(0, sigma^2 C^2 I) per batch")->check(CLI::NonNegativeNumber);
  app.add_option("--dp-epsilon", dp.target_epsilon, "choose sigma so that the run is (epsilon, delta)-DP")->check(CLI::NonNegativeNumber);
  app.add_option("--clipping", dp.clipping, "per-sample clipping rule")->check(CLI::IsMember({"abadi", "nsgd", "autos", "psac"}));
  app.add_option("--dp-r", dp.r, "r of the nsgd and psac rules")->check(CLI::PositiveNumber);
  app.add_option("--dp-delta", dp.delta, "delta of the (epsilon, delta) guarantee");
}

/// The privacy spent by one node over `steps` steps at sample rate q.
inline double epsilon_for_run(const DpSettings& dp, double noise, double sample_rate, long steps) {
  privacy::RdpAccountant accountant;
  accountant.step(noise, sample_rate, steps);
  return accountant.epsilon(dp.delta);
}

/// σ for the run: --dp-noise, or the smallest σ meeting --dp-epsilon.
inline double noise_for_run(const DpSettings& dp, double sample_rate, long steps) {
  if (dp.target_epsilon > 0) return privacy::find_noise_multiplier(dp.target_epsilon, dp.delta, sample_rate, steps);
  return dp.noise;
}

/// One node's private gradient: per-sample gradients of the batch, clipped, summed, noised, / B.
class PrivateGradient {
 public:
  using Rule = std::variant<privacy::AbadiClipping, privacy::NsgdClipping, privacy::AutoSClipping, privacy::PsacClipping>;

  PrivateGradient(const DpSettings& dp, double noise, const examples::Mlp& mlp, int batch, std::uint64_t seed)
      : rule_(make_rule(dp)), noise_(noise), mlp_(mlp),
        per_sample_(static_cast<Eigen::Index>(mlp.parameter_count()), batch), rng_(seed) {}

  /// Writes the private gradient of the batch into g; returns the batch's mean loss.
  double operator()(std::span<const float> params, const Eigen::Ref<const Eigen::MatrixXf>& x,
                    std::span<const std::uint8_t> labels, std::span<float> g) {
    const double loss = mlp_.per_sample_gradients(params, x, labels, per_sample_);
    std::visit([&](const auto& rule) { privacy::private_gradient(per_sample_, rule, noise_, rng_, g); }, rule_);
    return loss;
  }

 private:
  static Rule make_rule(const DpSettings& dp) {
    if (dp.clipping == "abadi") return privacy::AbadiClipping(dp.clip);
    if (dp.clipping == "nsgd") return privacy::NsgdClipping(dp.clip, dp.r);
    if (dp.clipping == "autos") return privacy::AutoSClipping(dp.clip);
    if (dp.clipping == "psac") return privacy::PsacClipping(dp.clip, dp.r);
    throw ConfigError("unknown clipping rule '" + dp.clipping + "' (abadi, nsgd, autos or psac)");
  }
  Rule rule_;
  double noise_;
  examples::Mlp mlp_;
  Eigen::MatrixXf per_sample_;
  Rng rng_;
};

}  // namespace decopt::train
