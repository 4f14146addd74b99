// train/config.hpp — decopt-train's settings, their command line (CLI11), and the topology they name.
#pragma once

#include <CLI/CLI.hpp>
#include <decopt/decopt.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common/flags.hpp"
#include "fashion/idx.hpp"
#include "fashion/mlp.hpp"
#include "train/privacy.hpp"

namespace decopt::train {

/// Test images of the intermediate evaluations by default: the first 2 000 of Fashion-MNIST's test
/// set (188 to 219 of each class). Their mean accuracy runs about 1 point above the whole set's
/// (README), a fifth of the cost of evaluating all 10 000 images 20 times over.
inline constexpr long kEvalSubset = 2000;

/// Everything one decopt-train invocation does. Flags and JSON fields are part of decopt's contract.
struct TrainConfig {
  std::string algorithm = "malcom";  ///< malcom | choco | dpsgd | gt (gradient tracking: DIGing) | sgp (push-sum)
  /// --gradient-tracking: malcom and choco run compressed gradient tracking (BEER, GradientTracking)
  /// over their dithered pipeline instead of CHOCO's step (run_experiment.cpp, run_gradient_tracking)
  bool gradient_tracking = false;
  std::vector<std::string> compare;  ///< --compare malcom,choco,dpsgd: run each on the same data and seed
  std::string step = "sync";         ///< sync | overlap | async (AsyncGossip: bounded staleness)
  long max_staleness = 1;            ///< --step async: k, rounds a neighbour may lag before a node waits
  long max_gradient_age = -1;        ///< --step async: G, rounds a gradient may age (-1: k)
  int slow_node = -1;                ///< --slow-node: the node made --slow-factor times slower (-1: none)
  double slow_factor = 1;            ///< --slow-factor F: that node's compute takes F times as long
  double slow_reference_ms = 0;      ///< --slow-reference-ms T: its round takes F·T (0: F times its own compute)
  int local_steps = 1;
  int nodes = 8;
  std::string topology = "ring";  ///< also directed-ring | directed-exponential, for sgp only (push_sum_flags.hpp)
  /// static (W = --topology every round) | one-peer-exp | random-matchings: a TopologySchedule,
  /// gossip over per-edge copies with the round's neighbours only (ScheduledSyncStep)
  std::string schedule = "static";
  int schedule_period = 0;  ///< random-matchings: matchings per period (0 = 2·⌈log2 n⌉, at least 2)
  double erdos_renyi_p = 0.5;
  double epochs = 2;
  long rounds = 0;  ///< when > 0, overrides epochs
  std::uint64_t seed = 1;
  std::string transport = "sim";  ///< sim | threads | mpi
  std::string partition = "iid";
  // Defaults measured on Fashion-MNIST, 8 nodes, ring, 2 epochs (README "Results"): with the ℓ2
  // scale and s = 256 most levels are 0 or ±1, which the vector source coder sends in ≈ 1.9 bits
  // per parameter while fixed width needs ⌈log2(2s+1)⌉ = 10; s = 64 is too coarse (diverges at γ = 0.5).
  int levels = 256;
  std::string norm = "l2";
  double lambda = 1e-4;
  /// Malcom's support coding: a weight leaves the sent support after this many rounds at 0
  /// (SupportCoded::set_patience; 1 = at its first zero).
  int support_patience = 4;
  /// Malcom's support coding: "live" scales the quantizer's levels to the live weights, s·√(|L|/d)
  /// (SupportCoded::set_level_scaling), "fixed" keeps s.
  std::string support_levels = "live";
  /// The l1 schedule, in epochs: λ = 0 for the first lambda_warmup, then rising linearly to
  /// --lambda over lambda_ramp (0: at once). Applied as the prox step (lambda_factor).
  double lambda_warmup = 0, lambda_ramp = 0;
  bool support_patience_given = false;  ///< --support-patience was on the command line (a schedule refuses it)
  std::string support_log;  ///< sim only: CSV per round of the support coding (zero fraction, changes, bits)
  double lr = examples::kDefaultLearningRate;
  /// --lr-schedule: constant (η every round) | cosine (η_t = η_min + (η − η_min)(1 + cos(π t / T)) / 2
  /// over the run's T rounds, schedule::Cosine; η_min = --lr-min)
  std::string lr_schedule = "constant";
  double lr_min = 0;
  double gamma = 0.5;  ///< consensus step (D-PSGD always uses 1)
  double momentum = 0.0;
  int batch = examples::kDefaultBatchSize;
  int hidden = examples::kDefaultHidden;
  long eval_every = 0;  ///< rounds between evaluations; 0 = from --evals
  long evals = 20;      ///< evaluations per run (at least; an interval of ⌊rounds / evals⌋)
  /// Test images of the intermediate evaluations: the first N of the test set (0 = all of it);
  /// the last evaluation always uses all of it. -1 (the default): kEvalSubset, or all of it with
  /// --target-accuracy, whose crossing must be that of the accuracy the run reports.
  long eval_samples = -1;
  double target_accuracy = 0;  ///< > 0: report rounds, bytes and simulated seconds to reach it
  std::string coder;           ///< raw | elias | vsc; empty = the algorithm's own (coder_of)
  // --compressor (issue 16): the compression policy and its parameters; empty = the algorithm's own
  // (dithered levels for malcom and choco, the identity for dpsgd). See compressor_help.
  std::string compressor;
  double ratio = 0.01;  ///< the kept fraction of topk, randomk, randtopk
  int rank = 2;         ///< PowerSGD's rank
  long bucket = 0;      ///< dithered and natural: values per scale σ (0 = one σ per message)
  long train_samples = 0;  ///< use only the first N training samples (0 = all), for quick runs
  std::string data_dir = examples::kDefaultFashionMnistDir;
  std::string csv, plot, checkpoint, resume;
  long checkpoint_every = 0;
  double latency_ms = 0, bandwidth_mbps = 0;  ///< link model (0 = instant / unlimited)
  double step_seconds = 0;  ///< > 0: sim clock charges this per gradient evaluation, not measured compute
  bool eval_average = false;  ///< evaluate the average model (1/n) Σ_i x_i, not the mean of the nodes' accuracies
  double timeout_s = 60;
  int fail_node = -1;                 ///< --fail-node: inject a lost peer (-1: none)
  long fail_round = -1;               ///< --fail-round: the round at which it stops
  std::string on_lost_peer = "fail";  ///< --on-lost-peer fail | drop
  long rejoin_round = -1;             ///< --rejoin-round: --fail-node comes back (pulls a neighbour's model)
  bool json = false;
  bool quiet = false;
  DpSettings dp;  ///< --dp-clip, --dp-noise, --dp-epsilon, --clipping

  /// The algorithms this run trains: the --compare list, or the one --algorithm.
  [[nodiscard]] std::vector<std::string> algorithms() const { return compare.empty() ? std::vector{algorithm} : compare; }

  /// The compression policy `run_algorithm` runs with: identity for dpsgd (it sends its values
  /// uncompressed and refuses --compressor, run_experiment.cpp); for malcom and choco --compressor,
  /// else dithered.
  [[nodiscard]] std::string compressor_of(const std::string& run_algorithm) const {
    if (run_algorithm == "dpsgd" || run_algorithm == "gt" || run_algorithm == "sgp") return "identity";
    return compressor.empty() ? "dithered" : compressor;
  }

  /// The coder `run_algorithm` really runs with. With a --compressor other than dithered (malcom and
  /// choco) it is that compressor's own (run_other_compressor; --coder is refused there): vsc for
  /// natural, topk, randtopk and sign, raw for randomk, powersgd, permk, fp16 and bf16. Otherwise
  /// --coder, else the algorithm's own — vsc for malcom, raw for choco (fixed ⌈log2(2s+1)⌉-bit
  /// levels, CHOCO-SGD's accounting) and raw for dpsgd (float32 values: the identity compressor has
  /// no levels to code, and with Dense no positions).
  [[nodiscard]] std::string coder_of(const std::string& run_algorithm) const {
    const std::string policy = compressor_of(run_algorithm);
    if (policy != "identity" && policy != "dithered")
      return policy == "natural" || policy == "topk" || policy == "randtopk" || policy == "sign" ? "vsc" : "raw";
    if (!coder.empty()) return coder;
    return run_algorithm == "malcom" ? "vsc" : "raw";  // gt and sgp, like dpsgd, send raw float32
  }

  /// Test images of an intermediate evaluation (0 = the whole test set): --eval-samples, else
  /// kEvalSubset, or the whole set with --target-accuracy.
  [[nodiscard]] long intermediate_eval_samples() const {
    if (eval_samples >= 0) return eval_samples;
    return target_accuracy > 0 ? 0 : kEvalSubset;
  }

  [[nodiscard]] LinkModel link_model() const {
    LinkModel link;
    link.latency_seconds = latency_ms / 1000.0;
    if (bandwidth_mbps > 0) link.bandwidth_bytes_per_second = bandwidth_mbps * 1e6 / 8.0;
    return link;
  }
};

/// Round `round`'s learning rate in a run of `total_rounds` rounds: --lr, or under --lr-schedule
/// cosine schedule::Cosine{total_rounds, --lr-min}'s (> 0 for every round < total_rounds).
[[nodiscard]] inline double learning_rate_at(const TrainConfig& c, long round, long total_rounds) {
  if (c.lr_schedule == "constant") return c.lr;
  return schedule::Cosine{total_rounds, c.lr_min}.lr(round, c.lr);
}

/// Whether the run follows a time-varying TopologySchedule (--schedule other than static).
[[nodiscard]] inline bool time_varying(const TrainConfig& c) { return c.schedule != "static"; }

/// Most rounds one run may have (--rounds, or --epochs × rounds per epoch): far beyond any real
/// run, and small enough that every count derived from it (rounds × local steps, evaluation rows)
/// fits its integer type.
inline constexpr long kMaxRounds = 1'000'000'000;
/// Most evaluations a run may record: what a checkpoint holds (decode_checkpoint refuses more).
inline constexpr long kMaxEvaluations = 1L << 24;

/// The values of --compressor.
inline const std::vector<std::string> kCompressors{"dithered", "natural", "topk", "randomk", "randtopk",
                                                   "sign", "powersgd", "permk", "fp16", "bf16"};
/// --compressor's help: what each one runs with. To keep decopt-train's compile time (and CI's) in
/// bounds, only dithered composes with every --step and --coder; the others run with --step sync
/// and a coder of their own.
inline constexpr const char* compressor_help =
    "compression of malcom and choco (default: dithered): dithered (--levels, --norm, --bucket; any --coder "
    "and --step), natural (power-of-two levels, vsc), topk | randtopk (--ratio, float32 values, vsc-coded "
    "positions), randomk (--ratio, raw), sign (scaled sign, vsc), powersgd (--rank, over the MLP's W1 and W2), "
    "permk (this node's block of a shared permutation, unscaled: ContractivePermK, as error memory needs), fp16 | bf16 (raw half precision). All but "
    "dithered run with --step sync only; malcom's l1 prox applies to the weights (not the biases) with powersgd";

/// Registers every flag of decopt-train on `app`. Every numeric flag is checked by
/// common/flags.hpp (finite, in range, integers in plain decimal) before CLI11 converts it.
inline void add_flags(CLI::App& app, TrainConfig& c) {
  using examples::flags::Interval;
  namespace flags = examples::flags;
  const std::vector<std::string> algorithms{"malcom", "choco", "dpsgd", "gt", "sgp"};
  app.add_option("--algorithm", c.algorithm,
                 "malcom (dithered + vector source coding + l1 prox), choco, dpsgd, gt (gradient tracking, DIGing: "
                 "the identity compressor, gamma 1, a model and a tracker per message), sgp (Stochastic Gradient Push: "
                 "push-sum on --topology directed-ring or directed-exponential, float32 shares to out-neighbours)")
      ->check(CLI::IsMember(algorithms));
  app.add_flag("--gradient-tracking", c.gradient_tracking,
               "malcom and choco: compressed gradient tracking (BEER: error memory on the model and the tracker) "
               "over the dithered pipeline, --coder raw or vsc (malcom: vsc, no support coding, no l1 prox); "
               "--step sync, static topology");
  app.add_option("--compare", c.compare, "run several algorithms on the same data and seed, e.g. malcom,choco,dpsgd")
      ->delimiter(',')
      ->check(CLI::IsMember(algorithms));
  app.add_option("--step", c.step,
                 "sync, overlap (CoCoD-style: local steps while the exchange is in flight) or async (AD-PSGD with "
                 "CHOCO's error memory: gossip rounds decoupled from gradients, waiting only for neighbours more than "
                 "--max-staleness rounds behind; sim and threads)")
      ->check(CLI::IsMember({"sync", "overlap", "async"}));
  app.add_option("--max-staleness", c.max_staleness,
                 "--step async: rounds k a neighbour may lag before a node waits (default 1)")
      ->check(flags::integer(0, AsyncOptions::kMaxStaleness));
  app.add_option("--max-gradient-age", c.max_gradient_age,
                 "--step async: rounds G a gradient may age before its node waits for it (-1, the default: k); a node F "
                 "times slower keeps pace with G >= F - 1")
      ->check(flags::integer(-1, AsyncOptions::kMaxStaleness));
  app.add_option("--slow-node", c.slow_node,
                 "make this node --slow-factor times slower to compute (an injected delay per gradient: a sleep on "
                 "threads, declared time on sim with --step-seconds); -1 = none")
      ->check(flags::integer(-1, 4095));
  app.add_option("--slow-factor", c.slow_factor,
                 "--slow-node's compute (gradient, coding and mixing of a round) takes this many times as long (>= 1): "
                 "as its own measured compute, or as --slow-reference-ms")
      ->check(flags::real(Interval::closed(1, 1000)));
  app.add_option("--slow-reference-ms", c.slow_reference_ms,
                 "threads: the others' round time under this load (measure it in a run without --slow-node: training "
                 "seconds / rounds); --slow-node's round then takes --slow-factor times it (0: times its own compute)")
      ->check(flags::real(Interval::closed(0, 1e6)));
  app.add_option("--local-steps", c.local_steps, "local SGD steps per round")->check(flags::integer(1, 1'000'000));
  app.add_option("--nodes", c.nodes, "number of nodes")->check(flags::integer(1, 4096));
  app.add_option("--topology", c.topology,
                 "ring|torus|complete|star|hypercube|exponential|erdos-renyi, or, for --algorithm sgp only, a directed "
                 "graph: directed-ring (i -> i+1) | directed-exponential (i -> i + 2^k)")
      ->check(CLI::IsMember({"ring", "torus", "complete", "star", "hypercube", "exponential", "erdos-renyi",
                             "directed-ring", "directed-exponential"}));
  app.add_option("--schedule", c.schedule,
                 "static (--topology every round), one-peer-exp (one-peer exponential graph: one neighbour per round, "
                 "power-of-two --nodes), random-matchings (seeded random matchings, --schedule-period of them): "
                 "time-varying gossip over per-edge copies with --step sync; malcom then runs its plain pipeline "
                 "(dithered + vsc + l1 prox, no support coding)")
      ->check(CLI::IsMember({"static", "one-peer-exp", "random-matchings"}));
  app.add_option("--schedule-period", c.schedule_period,
                 "random-matchings: matchings per period (0 = 2 ceil(log2 n), at least 2)")
      ->check(flags::integer(0, 1 << 20));
  app.add_option("--erdos-renyi-p", c.erdos_renyi_p, "edge probability of the erdos-renyi topology")
      ->check(flags::real(Interval::above(0, 1)));
  auto* epochs = app.add_option("--epochs", c.epochs, "passes over each node's share of the data")
                     ->check(flags::real(Interval::above(0, 1e6)));
  app.add_option("--rounds", c.rounds, "communication rounds (instead of --epochs)")
      ->check(flags::integer(1, kMaxRounds))
      ->excludes(epochs);
  app.add_option("--seed", c.seed, "seed of the initial model, partition, batches and compression")->check(flags::seed());
  app.add_option("--transport", c.transport, "sim (one process, lockstep), threads (a thread per node), mpi")
      ->check(CLI::IsMember({"sim", "threads", "mpi"}));
  app.add_option("--partition", c.partition, "iid or by-label (non-IID: two label shards per node)")
      ->check(CLI::IsMember({"iid", "by-label"}));
  app.add_option("--levels", c.levels, "quantization levels s per sign")->check(flags::integer(1, 32767));
  app.add_option("--norm", c.norm, "scale of the dithered quantizer: l2 or linf")->check(CLI::IsMember({"l2", "linf"}));
  app.add_option("--lambda", c.lambda, "l1 weight of Malcom-PSGD's proximal step")->check(flags::real(Interval::closed(0, 1e6)));
  app.add_option("--support-patience", c.support_patience,
                 "malcom: rounds a weight must stay 0 before it leaves the sent support (1 = at once; default 4: "
                 "fewer changes of weights the prox zeroes and the next step revives)")
      ->check(flags::integer(1, 65535));
  app.add_option("--support-levels", c.support_levels,
                 "malcom: live (default) scales the quantizer's levels to the weights still sent, s*sqrt(live/d), so a "
                 "sparse model's live weights cost what a dense model's do; fixed keeps s")
      ->check(CLI::IsMember({"live", "fixed"}));
  app.add_option("--lambda-warmup", c.lambda_warmup, "malcom: epochs of training with lambda = 0 before the l1 prox starts")
      ->check(flags::real(Interval::closed(0, 1e6)));
  app.add_option("--lambda-ramp", c.lambda_ramp,
                 "malcom: epochs over which lambda rises linearly from 0 to --lambda after the warm-up (0: at once)")
      ->check(flags::real(Interval::closed(0, 1e6)));
  app.add_option("--support-log", c.support_log,
                 "malcom, sim only: write per round the zero fraction of the models, of the sent supports, the "
                 "support changes and the bits per parameter to this CSV file");
  // The optimizer steps in float: the smallest normal float is the smallest rate that is not 0 (or
  // a denormal) there.
  app.add_option("--lr", c.lr, "learning rate")
      ->check(flags::real(Interval::closed(std::numeric_limits<float>::min(), 1e6)));
  app.add_option("--lr-schedule", c.lr_schedule,
                 "constant (default) or cosine: the learning rate falls from --lr at round 0 to --lr-min at the last "
                 "round, lr_t = lr_min + (lr - lr_min)(1 + cos(pi t / T)) / 2 over the run's T rounds (every node, every "
                 "transport; a smaller step at the end also brings the nodes' models together)")
      ->check(CLI::IsMember({"constant", "cosine"}));
  app.add_option("--lr-min", c.lr_min, "the learning rate --lr-schedule cosine ends at (default 0; below --lr)")
      ->check(flags::real(Interval::closed(0, 1e6)));
  app.add_option("--gamma", c.gamma, "consensus step in (0, 1] (D-PSGD uses 1)")->check(flags::real(Interval::above(0, 1)));
  app.add_option("--momentum", c.momentum, "heavy-ball momentum in [0, 1)")->check(flags::real(Interval::below(0, 1)));
  app.add_option("--batch", c.batch, "mini-batch size per node")->check(flags::integer(1, 1 << 20));
  app.add_option("--hidden", c.hidden, "hidden units of the MLP")->check(flags::integer(1, 1 << 24));
  auto* eval_every = app.add_option("--eval-every", c.eval_every, "rounds between evaluations (default: from --evals)")
                         ->check(flags::integer(0, kMaxRounds));
  app.add_option("--evals", c.evals, "evaluations per run, evenly spaced in rounds (at least this many; default 20)")
      ->check(flags::integer(1, kMaxEvaluations))
      ->excludes(eval_every);
  app.add_option("--eval-samples", c.eval_samples,
                 "test images of the intermediate evaluations (the first N; 0 = all; default 2000, or all with "
                 "--target-accuracy); the last one uses all")
      ->check(flags::integer(0, 1'000'000'000));
  app.add_option("--target-accuracy", c.target_accuracy,
                 "report rounds, bytes and simulated seconds until the mean test accuracy first reaches this")
      ->check(flags::real(Interval::above(0, 1)));
  app.add_option("--coder", c.coder,
                 "level coder: raw (fixed width), elias (QSGD's), vsc (vector source coding); default: vsc for "
                 "malcom, raw for choco and dpsgd (which sends float32 values, so only raw applies)")
      ->check(CLI::IsMember({"raw", "elias", "vsc"}));
  app.add_option("--compressor", c.compressor, compressor_help)->check(CLI::IsMember(kCompressors));
  app.add_option("--ratio", c.ratio, "kept fraction of --compressor topk, randomk, randtopk (default 0.01)")
      ->check(flags::real(Interval::above(0, 1)));
  app.add_option("--rank", c.rank, "rank of --compressor powersgd (default 2)")->check(flags::integer(1, PowerSGD::max_rank));
  app.add_option("--bucket", c.bucket, "values per scale of --compressor dithered and natural (0 = one per message)")
      ->check(flags::integer(0, 1L << 32));
  app.add_option("--train-samples", c.train_samples, "use only the first N training samples (quick runs)")
      ->check(flags::integer(0, 1'000'000'000));
  app.add_option("--data", c.data_dir, "folder with the Fashion-MNIST .gz files");
  app.add_option("--csv", c.csv, "write one row per evaluation to this CSV file");
  app.add_option("--plot", c.plot, "draw test accuracy against megabytes sent to this PNG (gnuplot)");
  app.add_option("--checkpoint", c.checkpoint, "write the whole training state here (atomically)");
  app.add_option("--checkpoint-every", c.checkpoint_every, "rounds between checkpoints (default: only at the end)")
      ->check(flags::integer(0, kMaxRounds));
  app.add_option("--resume", c.resume, "continue from a checkpoint written by --checkpoint");
  // Link delays are waited for in nanoseconds: 10^9 ms of latency, and a message of gigabytes at
  // 0.001 Mbit/s, stay far inside the 292 years an int64 count of nanoseconds holds.
  app.add_option("--latency-ms", c.latency_ms, "link latency in milliseconds")->check(flags::real(Interval::closed(0, 1e9)));
  app.add_option("--bandwidth-mbps", c.bandwidth_mbps, "link bandwidth in megabits per second (0 = unlimited)")
      ->check(flags::real(Interval::closed(1e-3, 1e12).or_zero()));
  app.add_option("--step-seconds", c.step_seconds,
                 "sim only: charge this many virtual seconds per gradient evaluation instead of the measured compute "
                 "time (a simulated clock that does not depend on the machine); 0 = measured")
      ->check(flags::real(Interval::closed(0, 1e6)));
  app.add_flag("--eval-average", c.eval_average,
               "test accuracy/loss/sparsity of the nodes' average model (the model a run deploys) instead of the "
               "mean over the nodes' own models");
  app.add_option("--timeout", c.timeout_s, "seconds a node waits for a neighbour before failing")
      ->check(flags::real(Interval::closed(1e-3, 1e6)));
  app.add_option("--fail-node", c.fail_node,
                 "inject a lost peer: this node stops at --fail-round (posts nothing more; under threads its thread ends)")
      ->check(flags::integer(0, 4095));
  app.add_option("--fail-round", c.fail_round, "the round at which --fail-node stops")->check(flags::integer(0, kMaxRounds));
  app.add_option("--on-lost-peer", c.on_lost_peer,
                 "fail: a neighbour that stops answering ends the run naming rank and round; drop: the survivors remove it, "
                 "recompute Metropolis-Hastings weights, repair their neighbour sums and go on")
      ->check(CLI::IsMember({"fail", "drop"}));
  app.add_option("--rejoin-round", c.rejoin_round,
                 "--fail-node rejoins: its neighbours see it at this round (after --fail-round; needs --on-lost-peer "
                 "drop), it pulls a neighbour's model and mixes again two rounds later")
      ->check(flags::integer(0, kMaxRounds));
  app.add_flag("--json", c.json, "print a JSON summary as the last line of stdout");
  app.add_flag("--quiet", c.quiet, "no progress bar or table");
  add_dp_flags(app, c.dp);
}

/// Refuses a --coder that means nothing for one of the run's algorithms: D-PSGD's identity
/// compressor sends every value as a float32 (and Dense sends no positions), so there are no
/// integers for Elias or vector source coding to code; only raw applies. Called after parsing,
/// as a usage error (decopt-train exits 2).
/// @throws CLI::ValidationError "--coder: elias does not apply to dpsgd ..."
inline void check_coder(const TrainConfig& c) {
  for (const auto& algorithm : c.algorithms())
    if ((algorithm == "dpsgd" || algorithm == "gt" || algorithm == "sgp") && c.coder_of(algorithm) != "raw")
      throw CLI::ValidationError("--coder", c.coder + " does not apply to " + algorithm + ": " +
                                            (algorithm == "gt"    ? "gradient tracking (DIGing)"
                                             : algorithm == "sgp" ? "Stochastic Gradient Push"
                                                                  : "D-PSGD") +
                                            " sends its values as raw float32 "
                                            "(the identity compressor has no levels to code); use --coder raw or leave it out");
}

/// --rejoin-round needs --fail-node, --on-lost-peer drop and a round after --fail-round (usage errors).
inline void check_rejoin(const TrainConfig& c) {
  if (c.rejoin_round < 0) return;
  if (c.fail_node < 0 || c.on_lost_peer != "drop")
    throw CLI::ValidationError("--rejoin-round", "needs --fail-node, --fail-round and --on-lost-peer drop");
  if (c.rejoin_round <= c.fail_round)
    throw CLI::ValidationError("--rejoin-round", std::to_string(c.rejoin_round) + " is not after --fail-round " +
                                                     std::to_string(c.fail_round));
}

/// The --topology graph on --nodes nodes; ConfigError when the node count does not fit it.
inline Topology make_topology(const TrainConfig& c) {
  const int n = c.nodes;
  if (c.topology == "ring") return Topology::ring(n);
  if (c.topology == "complete") return Topology::complete(n);
  if (c.topology == "star") return Topology::star(n);
  if (c.topology == "exponential") return Topology::exponential(n);
  if (c.topology == "erdos-renyi") return Topology::erdos_renyi(n, c.erdos_renyi_p, c.seed);
  if (c.topology == "hypercube") {
    const int dim = static_cast<int>(std::lround(std::log2(n)));
    detail::require(n >= 1 && (1 << dim) == n, "topology hypercube needs a power-of-two node count, got --nodes " + std::to_string(n));
    return Topology::hypercube(dim);
  }
  if (c.topology == "torus") {
    // The most square factorisation rows × cols = n with rows ≥ 2.
    int rows = static_cast<int>(std::sqrt(static_cast<double>(n)));
    while (rows >= 2 && n % rows != 0) --rows;
    detail::require(rows >= 2, "topology torus needs a node count with a factorisation rows x cols, rows and cols >= 2; got --nodes " + std::to_string(n));
    return Topology::torus(rows, n / rows);
  }
  throw ConfigError("unknown topology '" + c.topology + "'");
}

/// Matchings per period of --schedule random-matchings: --schedule-period, else 2·⌈log2 n⌉ (at
/// least 2), which is jointly connected for every seed tried and leaves n − 1 ≤ period·⌊n/2⌋.
inline int matchings_period(const TrainConfig& c) {
  if (c.schedule_period > 0) return c.schedule_period;
  int log2n = 0;
  while ((1 << log2n) < c.nodes) ++log2n;
  return std::max(2, 2 * log2n);
}

/// The --schedule on --nodes nodes: fixed(--topology), one-peer exponential or seeded random
/// matchings (decopt/topology/schedule.hpp).
/// @throws ConfigError for a node count the schedule does not fit, --schedule-period without
///         random-matchings, or a schedule with flags it cannot run with (check_schedule)
inline TopologySchedule make_schedule(const TrainConfig& c) {
  detail::require(c.schedule_period == 0 || c.schedule == "random-matchings",
                  "--schedule-period applies to --schedule random-matchings, not " + c.schedule);
  if (c.schedule == "static") return TopologySchedule::fixed(make_topology(c));
  if (c.schedule == "one-peer-exp") {
    const int n = c.nodes;
    detail::require(n >= 2 && (n & (n - 1)) == 0,
                    "--schedule one-peer-exp needs a power-of-two node count >= 2, got --nodes " + std::to_string(n));
    return TopologySchedule::one_peer_exponential(n);
  }
  if (c.schedule == "random-matchings") return TopologySchedule::random_matchings(c.nodes, matchings_period(c), c.seed);
  throw ConfigError("unknown schedule '" + c.schedule + "'");
}

/// Refuses what a time-varying schedule cannot run with: SupportCoded keeps its support state per
/// neighbour of one public copy, which per-edge copies do not have (malcom runs its plain
/// pipeline instead, and the JSON says so: "support_coding":false), so --support-log and
/// --support-patience mean nothing; and, to keep decopt-train's compile time (and CI's) in bounds,
/// only --step sync, the algorithm's own coder and the dithered compressor are built for schedules.
/// @throws ConfigError naming the flag
inline void check_schedule(const TrainConfig& c) {
  (void)make_schedule(c);
  if (!time_varying(c)) return;
  const std::string with = "--schedule " + c.schedule;
  detail::require(c.step == "sync", with + " runs with --step sync only, not " + c.step + " (compile time; see --help)");
  detail::require(c.compressor.empty() || c.compressor == "dithered",
                  with + " runs with the dithered compressor only, not --compressor " + c.compressor);
  detail::require(c.coder.empty(), with + " runs with each algorithm's own coder (vsc for malcom, raw for choco and dpsgd); "
                                          "leave --coder out");
  detail::require(c.support_log.empty() && !c.support_patience_given,
                  with + ": malcom runs its plain pipeline over per-edge copies (no support coding: SupportCoded keeps "
                         "its state per neighbour of one public copy), so --support-log and --support-patience do not apply");
}

}  // namespace decopt::train
