// train/privacy.hpp — differentially private training in decopt-train: per-sample gradients of the
// MLP, clipped by one of the rules of decopt/privacy (Abadi, NSGD, Auto-S, DP-PSAC), Gaussian
// noise N(0, σ²C²I), and the (ε, δ) of the run from the Rényi-DP accountant.
//
// What a node computes per local step (DP-SGD, Abadi et al. 2016; with --clipping psac, DP-PSAC,
// Xia et al., AAAI 2023):
//
//   g̃ = ( Σ_b f(‖∇ℓ_b‖)·∇ℓ_b + N(0, σ²C²I) ) / B        f: the rule's factor, every term ≤ C
//
// Threat model and accounting. Each node protects its own samples against everything it sends
// (its neighbours, or anyone watching the links): every message is a function of the node's past
// private gradients, so by post-processing the node's guarantee is that of its sequence of noisy
// gradients. A node takes B of its n_i samples per local step, so the accountant runs with sample
// rate q = B/n_i for rounds × local_steps steps; decopt-train reports the weakest node, the one
// with the smallest share (largest q).
//
// An approximation, stated plainly: decopt-train's BatchSampler draws fixed-size batches from a
// shuffled epoch (sampling without replacement, every sample once per epoch), while the
// accountant analyses Poisson subsampling (each sample independently with probability q;
// Mironov, Talwar & Zhang 2019). This is the approximation Opacus makes by default and most DP
// training papers make; the ε printed is the Poisson-subsampling ε at q = B/n_i, not a proof for
// the shuffled sampler.
//
// σ = 0 is not accepted by the command line: clipping without noise gives no privacy, and an ε of
// ∞ in a summary is more likely a mistake than an intent. Nor is C = 0: giving --dp-clip asks for
// privacy, so a C that gives none is an error, not "off". PrivateGradient itself accepts σ = 0
// (the tests use it to check the clipping alone).
#pragma once

#include <CLI/CLI.hpp>
#include <decopt/decopt.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iomanip>
#include <sstream>
#include <span>
#include <string>
#include <variant>

#include "common/flags.hpp"
#include "fashion/mlp.hpp"

namespace decopt::train {

/// The clipping rules --clipping accepts, in the order the help text lists them.
inline constexpr const char* kClippingRules[] = {"abadi", "nsgd", "autos", "psac"};

/// decopt-train's differential-privacy settings (--dp-clip, --dp-noise, --dp-epsilon, --clipping,
/// --dp-r, --dp-delta). Privacy is on when a clip bound is set.
struct DpSettings {
  double clip = 0;            ///< C, the bound on every per-sample term; 0 = differential privacy off
  double noise = 0;           ///< σ, the noise multiplier: noise N(0, σ²C²I) per batch
  double target_epsilon = 0;  ///< > 0: choose σ so that the planned run meets this ε (instead of noise)
  std::string clipping = "psac";  ///< abadi | nsgd | autos | psac
  double r = 0.1;             ///< r of the nsgd and psac rules
  double delta = 1e-5;        ///< δ of the (ε, δ) guarantee

  /// True for any clip bound but the default 0 — NaN and negative ones included, so that an
  /// invalid --dp-clip is refused by validate() instead of being read as "privacy off": a run
  /// asked to be private must never run without privacy.
  [[nodiscard]] bool enabled() const noexcept { return clip != 0; }

  /// Throws ConfigError naming the flag at fault. Without --dp-clip, the other privacy flags must
  /// keep their defaults (a noise level or a δ with nothing to apply it to is a forgotten
  /// --dp-clip, not a request). Every comparison is written to fail on NaN.
  void validate() const {
    if (!enabled()) {
      const DpSettings defaults;
      decopt::detail::require(noise == 0 && target_epsilon == 0, "--dp-noise/--dp-epsilon need --dp-clip C > 0");
      decopt::detail::require(clipping == defaults.clipping && r == defaults.r && delta == defaults.delta,
                              "--clipping/--dp-r/--dp-delta need --dp-clip C > 0");
      return;
    }
    decopt::detail::require(std::isfinite(clip) && clip > 0, "--dp-clip must be a finite number > 0, got " + examples::flags::number(clip));
    decopt::detail::require(std::isfinite(noise) && noise >= 0 && std::isfinite(target_epsilon) && target_epsilon >= 0,
                            "--dp-noise and --dp-epsilon must be finite numbers >= 0");
    decopt::detail::require(noise > 0 || target_epsilon > 0,
                            "differential privacy needs --dp-noise > 0 or --dp-epsilon > 0 (clipping alone gives no privacy)");
    decopt::detail::require(!(noise > 0 && target_epsilon > 0),
                            "give either --dp-noise or --dp-epsilon, not both (--dp-epsilon chooses the noise)");
    decopt::detail::require(std::find_if(std::begin(kClippingRules), std::end(kClippingRules),
                                         [&](const char* name) { return clipping == name; }) != std::end(kClippingRules),
                            "unknown --clipping '" + clipping + "' (abadi, nsgd, autos or psac)");
    decopt::detail::require(std::isfinite(r) && r > 0, "--dp-r must be a finite number > 0");
    decopt::detail::require(delta > 0 && delta < 1, "--dp-delta must be in (0, 1)");
  }
};

/// Registers the privacy flags on `app`. Each value is checked when parsed (finite and in range,
/// common/flags.hpp: `--dp-clip nan` is an error, never "privacy off"); the combinations are
/// checked by DpSettings::validate.
inline void add_dp_flags(CLI::App& app, DpSettings& dp) {
  using examples::flags::Interval;
  namespace flags = examples::flags;
  app.add_option("--dp-clip", dp.clip, "per-sample clip bound C (enables differential privacy)")
      ->check(flags::real(Interval::above(0, 1e6)));
  auto* noise = app.add_option("--dp-noise", dp.noise, "noise multiplier sigma: noise N(0, sigma^2 C^2 I) per batch")
                    ->check(flags::real(Interval::above(0, 1e6)));
  app.add_option("--dp-epsilon", dp.target_epsilon, "choose sigma so that the run is (epsilon, delta)-DP")
      ->check(flags::real(Interval::above(0, 1e6)))
      ->excludes(noise);
  app.add_option("--clipping", dp.clipping, "per-sample clipping rule (psac: DP-PSAC, abadi: DP-SGD)")
      ->check(CLI::IsMember({"abadi", "nsgd", "autos", "psac"}));
  app.add_option("--dp-r", dp.r, "r of the nsgd and psac rules")->check(flags::real(Interval::above(0, 1e6)));
  app.add_option("--dp-delta", dp.delta, "delta of the (epsilon, delta) guarantee, in (0, 1)")
      ->check(flags::real(Interval::open(0, 1)));
}

/// q = B/n for a node with n samples and batch B (1 when the batch takes the whole share).
inline double dp_sample_rate(int batch, std::size_t samples) {
  decopt::detail::require(batch >= 1 && samples >= 1, "dp_sample_rate: batch and samples must be >= 1");
  return std::min(1.0, static_cast<double>(batch) / static_cast<double>(samples));
}

/// The privacy spent by one node taking `steps` private steps at sample rate q with noise σ:
/// the ε of its (ε, δ) guarantee, from RdpAccountant (Poisson subsampling, see the top of the file).
inline double epsilon_for_run(const DpSettings& dp, double noise, double sample_rate, long steps) {
  privacy::RdpAccountant accountant;
  accountant.step(noise, sample_rate, steps);
  return accountant.epsilon(dp.delta);
}

/// σ for the run: --dp-noise, or the smallest σ meeting --dp-epsilon over `steps` steps at rate q.
inline double noise_for_run(const DpSettings& dp, double sample_rate, long steps) {
  if (dp.target_epsilon > 0) return privacy::find_noise_multiplier(dp.target_epsilon, dp.delta, sample_rate, steps);
  return dp.noise;
}

/// ε of the run with the σ the settings choose (noise_for_run), so with --dp-epsilon E it is ≤ E.
inline double epsilon_for_run(const DpSettings& dp, double sample_rate, long steps) {
  return epsilon_for_run(dp, noise_for_run(dp, sample_rate, steps), sample_rate, steps);
}

/// Everything the run's privacy is: computed once before training, reported after.
struct DpPlan {
  double sample_rate = 0;  ///< q = B/n of the node with the smallest share
  long steps = 0;          ///< private gradient steps per node (rounds × local steps)
  double noise = 0;        ///< σ actually used
  double epsilon = 0;      ///< ε of each node's (ε, δ) guarantee
};

/// Validates the settings and plans a run of `steps` steps per node at batch B, where the node
/// with the fewest samples has `smallest_share` of them.
inline DpPlan plan_dp_run(const DpSettings& dp, int batch, std::size_t smallest_share, long steps) {
  dp.validate();
  DpPlan plan;
  plan.sample_rate = dp_sample_rate(batch, smallest_share);
  plan.steps = steps;
  plan.noise = noise_for_run(dp, plan.sample_rate, steps);
  plan.epsilon = epsilon_for_run(dp, plan.noise, plan.sample_rate, steps);
  return plan;
}

/// The privacy fields of the JSON summary, each preceded by a comma, e.g.
/// `,"dp_clip":1,"dp_noise":1.1,"clipping":"psac","epsilon":3.2,"delta":1e-05`; empty when
/// privacy is off. Numbers with 10 significant digits, as the rest of the summary.
inline std::string dp_json_fields(const DpSettings& dp, double noise, double epsilon) {
  if (!dp.enabled()) return {};
  std::ostringstream o;
  o.precision(10);
  o << ",\"dp_clip\":" << dp.clip << ",\"dp_noise\":" << noise << ",\"clipping\":\"" << dp.clipping
    << "\",\"epsilon\":" << epsilon << ",\"delta\":" << dp.delta;
  return o.str();
}
/// dp_json_fields with σ = dp.noise (when the noise was given, not chosen by --dp-epsilon).
inline std::string dp_json_fields(const DpSettings& dp, double epsilon) { return dp_json_fields(dp, dp.noise, epsilon); }

/// One line for people, e.g. "differential privacy: psac clipping, C = 1, sigma = 1.1: each node
/// is (3.2, 1e-05)-DP"; empty when privacy is off.
inline std::string dp_summary(const DpSettings& dp, double noise, double epsilon) {
  if (!dp.enabled()) return {};
  std::ostringstream o;
  o << "differential privacy: " << dp.clipping << " clipping, C = " << dp.clip << ", sigma = " << noise
    << ": each node is (" << std::setprecision(3) << epsilon << ", " << dp.delta << ")-DP";
  return o.str();
}

/// One node's private gradient: per-sample gradients of the batch, clipped by the chosen rule,
/// summed, noised with N(0, σ²C²I), divided by B.
///
/// Holds the P × B per-sample workspace and its own noise stream, so a step allocates no P × B
/// matrix, and two objects built with the same seed produce the same noise. Not thread-safe (one
/// per node, like the Mlp it copies).
class PrivateGradient {
 public:
  using Rule = std::variant<privacy::AbadiClipping, privacy::NsgdClipping, privacy::AutoSClipping, privacy::PsacClipping>;

  /// The seed of node `node`'s noise stream in a run seeded `run_seed`: independent of the
  /// streams of the sampler, the initial model and the compressors.
  [[nodiscard]] static std::uint64_t stream_seed(std::uint64_t run_seed, int node) noexcept {
    return Rng::derive(run_seed, {0x6470ULL /* "dp" */, static_cast<std::uint64_t>(node)}).next();
  }

  /// @param dp the settings (clip bound, rule, r); dp.noise is ignored in favour of `noise`
  /// @param noise σ ≥ 0 actually used (noise_for_run's answer; 0 = clipping only, for tests)
  /// @param mlp the model (copied: the copy's workspace is this object's)
  /// @param batch the largest batch B this object will see
  /// @param seed the noise stream's seed, e.g. stream_seed(run seed, node)
  /// @throws ConfigError on an unknown rule, C ≤ 0, r ≤ 0, σ < 0 or B < 1.
  PrivateGradient(const DpSettings& dp, double noise, const examples::Mlp& mlp, int batch, std::uint64_t seed)
      : rule_(make_rule(dp)), noise_(noise), mlp_(mlp), per_sample_(), rng_(seed) {
    decopt::detail::require(batch >= 1, "PrivateGradient: batch must be >= 1, got " + std::to_string(batch));
    privacy::GaussianMechanism{noise, dp.clip}.validate();
    per_sample_.resize(static_cast<Eigen::Index>(mlp.parameter_count()), batch);
  }

  /// Writes the private gradient of the batch into `grad`; returns the batch's mean loss.
  /// @param params P parameters; @param batch_x inputs × B' (B' ≤ B) batch; @param labels B' labels;
  /// @param grad P outputs, overwritten.
  double operator()(std::span<const float> params, const Eigen::Ref<const Eigen::MatrixXf>& batch_x,
                    std::span<const std::uint8_t> labels, std::span<float> grad) {
    decopt::detail::require(batch_x.cols() <= per_sample_.cols(),
                            "PrivateGradient: a batch of " + std::to_string(batch_x.cols()) +
                                " samples exceeds the workspace of " + std::to_string(per_sample_.cols()));
    last_batch_ = batch_x.cols();
    auto per_sample = per_sample_.leftCols(last_batch_);
    const double loss = mlp_.per_sample_gradients(params, batch_x, labels, per_sample);
    stats_ = std::visit(
        [&](const auto& rule) { return privacy::private_gradient_with_stats(per_sample, rule, noise_, rng_, grad); },
        rule_);
    return loss;
  }

  /// Clipping statistics of the last batch (fraction clipped, mean and largest per-sample norm):
  /// what to look at when tuning C.
  [[nodiscard]] const privacy::ClippingStats& last_stats() const noexcept { return stats_; }
  /// The per-sample gradients of the last batch, before clipping (P × B' block of the workspace).
  [[nodiscard]] auto last_per_sample() const { return per_sample_.leftCols(last_batch_); }
  /// The noise stream's state. A checkpoint must store it and a resume restore it: a resumed run
  /// that restarted the stream from its seed would add the same noise draws a second time, and
  /// noise reused across released gradients cancels in their difference (no privacy left).
  [[nodiscard]] const Rng::State& noise_state() const noexcept { return rng_.state(); }
  void set_noise_state(const Rng::State& state) noexcept { rng_.set_state(state); }
  [[nodiscard]] double noise() const noexcept { return noise_; }
  [[nodiscard]] double clip_bound() const {
    return std::visit([](const auto& rule) { return rule.clip_bound(); }, rule_);
  }
  [[nodiscard]] const Rule& rule() const noexcept { return rule_; }

  /// The rule --clipping names, with C and r from the settings.
  /// @throws ConfigError on an unknown name or out-of-range C or r.
  static Rule make_rule(const DpSettings& dp) {
    if (dp.clipping == "abadi") return privacy::AbadiClipping(dp.clip);
    if (dp.clipping == "nsgd") return privacy::NsgdClipping(dp.clip, dp.r);
    if (dp.clipping == "autos") return privacy::AutoSClipping(dp.clip);
    if (dp.clipping == "psac") return privacy::PsacClipping(dp.clip, dp.r);
    throw ConfigError("unknown clipping rule '" + dp.clipping + "' (abadi, nsgd, autos or psac)");
  }

 private:
  Rule rule_;
  double noise_;
  examples::Mlp mlp_;
  Eigen::MatrixXf per_sample_;
  Rng rng_;
  privacy::ClippingStats stats_{};
  Eigen::Index last_batch_ = 0;
};

}  // namespace decopt::train
