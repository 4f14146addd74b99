// torch/config.hpp — decopt-torch-train's settings: decopt-train's flags (train/config.hpp, the
// same parser and checks) less those that do not apply to a LibTorch CNN, plus --local (who takes
// the local step) and --torch-threads.
//
// Which of decopt-train's flags are kept is a list (kSharedFlags), not a list of removals: a flag
// added to decopt-train later is refused here ("not expected") until this program honours it,
// never silently ignored.
#pragma once

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "common/flags.hpp"
#include "train/checkpoint.hpp"
#include "train/config.hpp"

namespace decopt::torch_example {

/// Who takes each node's local step, the values of --local.
inline const std::vector<std::string> kLocalUpdates{"sgd",   "momentum",  "nesterov",  "adam",
                                                    "adamw", "torch-sgd", "torch-adam"};

/// Everything one decopt-torch-train invocation does.
struct TorchTrainConfig {
  train::TrainConfig train;  ///< decopt-train's settings (its --hidden and privacy flags unused)
  /// sgd | momentum | nesterov | adam | adamw: decopt's local-update policy, run by step();
  /// torch-sgd | torch-adam: torch::optim over the bound module, then decopt's exchange().
  std::string local = "sgd";
  int torch_threads = 1;  ///< LibTorch's intra-op threads per node (1: deterministic, no oversubscription)
  bool layerwise = false; ///< Malcom/CHOCO: every weight tensor gets its own quantizer scale

  /// Whether torch::optim takes the local step (and decopt only communicates).
  [[nodiscard]] bool torch_optimizer() const { return local.rfind("torch-", 0) == 0; }
  /// Whether the local update has a momentum μ (--momentum).
  [[nodiscard]] bool has_momentum() const { return local == "momentum" || local == "nesterov" || local == "torch-sgd"; }
  /// Whether the local update is Adam's (its learning rates are 100× smaller than SGD's).
  [[nodiscard]] bool adaptive() const { return local == "adam" || local == "adamw" || local == "torch-adam"; }
};

/// Default learning rates when --lr is not given: decopt-train's SGD rate, and Adam's usual 1e-3.
inline constexpr double kDefaultAdamLearningRate = 1e-3;
/// Default μ of --local momentum / nesterov when --momentum is not given (PyTorch has none).
inline constexpr double kDefaultMomentum = 0.9;

/// decopt-train's flags that mean the same here (every other one of its flags is removed).
inline constexpr std::array<std::string_view, 41> kSharedFlags{
    "--help",         "--algorithm",    "--compare",      "--step",           "--local-steps", "--nodes",
    "--topology",     "--erdos-renyi-p", "--epochs",      "--rounds",         "--seed",        "--transport",
    "--partition",    "--levels",       "--norm",         "--bucket",         "--lambda",      "--support-patience",
    "--lr",           "--gamma",
    "--momentum",     "--batch",        "--eval-every",   "--evals",          "--eval-samples", "--target-accuracy",
    "--coder",        "--train-samples", "--data",        "--csv",            "--plot",        "--checkpoint",
    "--checkpoint-every", "--resume",   "--latency-ms",   "--bandwidth-mbps", "--timeout",     "--json",
    "--quiet",        "--compressor",   "--ratio"};

/// The values of --compressor this program runs (decopt-train has more; each is one optimizer type
/// per local update here, so only the one the README's CNN table needs beside dithered).
inline const std::vector<std::string> kTorchCompressors{"dithered", "topk"};

/// Registers decopt-torch-train's flags on `app`: kSharedFlags from decopt-train, then --local,
/// --torch-threads and --layerwise.
inline void add_flags(CLI::App& app, TorchTrainConfig& c) {
  train::add_flags(app, c.train);
  std::vector<CLI::Option*> unused;
  for (CLI::Option* option : app.get_options()) {
    const std::string name = option->get_name();
    const bool shared = std::find(kSharedFlags.begin(), kSharedFlags.end(), name) != kSharedFlags.end();
    if (!shared) unused.push_back(option);
  }
  for (CLI::Option* option : unused) app.remove_option(option);
  app.add_option("--local", c.local,
                 "local step: sgd, momentum, nesterov, adam, adamw (decopt's, in step()) or torch-sgd, torch-adam "
                 "(torch::optim, then decopt's exchange())")
      ->check(CLI::IsMember(kLocalUpdates));
  app.add_option("--torch-threads", c.torch_threads, "LibTorch intra-op threads per node (results depend on it)")
      ->check(examples::flags::integer(1, 256));
  app.add_flag("--layerwise", c.layerwise, "malcom/choco: a quantizer scale of its own for every weight tensor");
}

/// Refuses a --compressor this program does not run, or topk with what it does not combine with:
/// the overlapped step (one optimizer type per local update is compiled), --coder (top-k's values
/// are float32 and its positions VSC-coded), --layerwise (one quantizer scale per tensor: top-k has
/// no scale) and dpsgd only (it sends its values uncompressed).
/// @throws ConfigError naming the flag
inline void check_compressor(const TorchTrainConfig& c, const std::vector<std::string>& algorithms) {
  const std::string& name = c.train.compressor;
  if (name.empty() || name == "dithered") return;
  if (std::find(kTorchCompressors.begin(), kTorchCompressors.end(), name) == kTorchCompressors.end())
    throw ConfigError("decopt-torch-train runs --compressor dithered or topk, not " + name + " (decopt-train runs the others)");
  if (c.train.step != "sync") throw ConfigError("--compressor topk runs with --step sync only");
  if (!c.train.coder.empty()) throw ConfigError("--coder does not apply to --compressor topk (float32 values, vsc-coded positions)");
  if (c.layerwise) throw ConfigError("--layerwise gives each tensor a quantizer scale; --compressor topk has none");
  if (std::none_of(algorithms.begin(), algorithms.end(), [](const std::string& a) { return a != "dpsgd"; }))
    throw ConfigError("--compressor topk applies to --algorithm malcom or choco (dpsgd sends floats)");
}

/// Settles what depends on several flags once they are parsed: Adam's default learning rate,
/// the default momentum of --local momentum/nesterov, the default evaluations, and the refusals.
/// Without --evals or --eval-every the CNN is evaluated once per epoch (and at the end), not
/// decopt-train's 20 times per run: evaluating every node's CNN on the 10 000 test images costs
/// about a tenth of an epoch of training on one core.
/// @throws ConfigError for --momentum with a local update that has none, --layerwise with dpsgd
///   only or with --bucket, a --compressor other than dithered or topk, topk with --step overlap,
///   --coder, --layerwise or dpsgd only, or --checkpoint/--resume with --compare or mpi
///   (train::check_checkpoint_flags)
/// @throws CLI::ValidationError for --coder elias/vsc with dpsgd (train::check_coder)
inline void resolve(TorchTrainConfig& c, const CLI::App& app) {
  const bool lr_given = app.get_option("--lr")->count() > 0;
  const bool momentum_given = app.get_option("--momentum")->count() > 0;
  if (!lr_given && c.adaptive()) c.train.lr = kDefaultAdamLearningRate;
  if (momentum_given && c.train.momentum > 0 && !c.has_momentum())
    throw ConfigError("--momentum is for --local momentum, nesterov or torch-sgd, not --local " + c.local);
  if (!momentum_given && (c.local == "momentum" || c.local == "nesterov")) c.train.momentum = kDefaultMomentum;
  if (app.get_option("--evals")->count() == 0 && app.get_option("--eval-every")->count() == 0)
    c.train.evals = c.train.rounds > 0 ? 1 : std::max(1L, static_cast<long>(std::ceil(c.train.epochs)));
  train::check_coder(c.train);
  train::check_checkpoint_flags(c.train);
  const auto algorithms = c.train.algorithms();
  if (c.layerwise && std::none_of(algorithms.begin(), algorithms.end(), [](const std::string& a) { return a != "dpsgd"; }))
    throw ConfigError("--layerwise sets the quantizer's scales: it needs --algorithm malcom or choco (dpsgd sends floats)");
  if (c.layerwise && c.train.bucket > 0)
    throw ConfigError("--bucket gives every " + std::to_string(c.train.bucket) +
                      " values their own scale and --layerwise every weight tensor: choose one");
  check_compressor(c, algorithms);
  for (const auto& a : algorithms)
    if (a != "malcom" && a != "choco" && a != "dpsgd")
      throw ConfigError("--algorithm " + a + " runs in decopt-train (the MLP); decopt-torch-train runs malcom, choco or dpsgd");
}

}  // namespace decopt::torch_example
