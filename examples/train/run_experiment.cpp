// train/run_experiment.cpp — run_experiment (declared in train/experiment.hpp): the choice of
// optimizer type from the flags. Compiled once per build into decopt_train_runs (decopt-train and
// the train tests link it), so the 29 optimizer types and their drivers are compiled once, not in
// every file that calls run_experiment.
#include "train/experiment.hpp"
#include "train/push_sum_run.hpp"

#include <string>

namespace decopt::train {

namespace {
/// Runs malcom or choco with --compressor other than dithered: SyncStep, L1Prox (λ = --lambda for
/// malcom, 0 for choco, the identity: one optimizer type for both) and a coder chosen per
/// compressor — one optimizer instantiation per compressor, not one per compressor × step × coder ×
/// prox (decopt-train's compile time, compressor_help).
/// @throws ConfigError with dpsgd (the identity compressor), --step overlap or --coder
RunResult run_other_compressor(const TrainConfig& c, const std::string& algorithm, const TrainingData& data,
                               const Options& options, const ProgressFn& progress) {
  const std::string& name = c.compressor;
  decopt::detail::require(algorithm == "malcom" || algorithm == "choco",
                          "--compressor " + name + " applies to malcom and choco, not " + algorithm);
  decopt::detail::require(c.step == "sync", "--compressor " + name + " runs with --step sync only (compile time; see --help)");
  decopt::detail::require(c.coder.empty(), "--coder does not apply to --compressor " + name + " (it has its own coding)");
  const L1Prox prox{algorithm == "malcom" ? c.lambda : 0.0};
  auto run = [&]<class C>(C compressor, bool with_layout = false) {
    return detail::run_with<DecentralizedOptimizer<C, L1Prox, SyncStep>>(c, algorithm, data, options, std::move(compressor),
                                                                          prox, progress, with_layout);
  };
  const DitheredQuantizer natural{c.levels, c.norm == "l2" ? Norm::L2 : Norm::Linf, true, static_cast<std::size_t>(c.bucket)};
  if (name == "natural") return run(Compressor<Dense, DitheredQuantizer, VectorSourceCoder>({}, natural, {}));
  if (name == "topk") return run(Compressor<TopK, Identity, VectorSourceCoder>(TopK{c.ratio}, {}, {}));
  if (name == "randomk") return run(Compressor<RandomK, Identity, RawCoder>(RandomK{c.ratio}, {}, {}));
  if (name == "randtopk") return run(Compressor<RandTopK, Identity, VectorSourceCoder>(RandTopK{c.ratio, 4.0}, {}, {}));
  if (name == "sign") return run(Compressor<Dense, Sign, VectorSourceCoder>{});
  if (name == "powersgd") return run(PowerSGD(c.rank), true);
  // unscaled: SyncStep's error memory needs a contraction (decopt/compress/perm_k.hpp)
  if (name == "permk") return run(ContractivePermK{});
  if (name == "fp16" || name == "bf16")
    return run(Compressor<Dense, HalfFloat, RawCoder>(
        {}, HalfFloat{name == "fp16" ? HalfFormat::Float16 : HalfFormat::BFloat16, HalfRounding::NearestEven}, {}));
  throw ConfigError("unknown compressor '" + name + "'");
}

/// Runs malcom, choco or dpsgd over --schedule (time-varying gossip, ScheduledSyncStep over per-edge
/// copies): three optimizer types, the dithered quantizer and each algorithm's own coder
/// (check_schedule refuses the rest). Malcom-PSGD runs its plain pipeline (dithered + VSC + ℓ1
/// prox) since SupportCoded does not fit per-edge copies; the JSON says "support_coding":false.
/// @throws ConfigError for an unknown algorithm
RunResult run_scheduled(const TrainConfig& c, const std::string& algorithm, const TrainingData& data,
                        const Options& options, const DitheredQuantizer& quantizer, const ProgressFn& progress) {
  if (algorithm == "dpsgd")
    return detail::run_with<ScheduledDPSGD<>>(c, algorithm, data, dpsgd_options(options), {}, NoProx{}, progress);
  if (algorithm == "choco")
    return detail::run_with<ScheduledChocoSGD<>>(c, algorithm, data, options, {Dense{}, quantizer, RawCoder{}}, NoProx{},
                                                 progress);
  if (algorithm == "malcom")
    return detail::run_with<ScheduledMalcomPSGD<>>(
        c, algorithm, data, options, MalcomPipeline(MalcomPipeline::Base(Dense{}, quantizer, VectorSourceCoder{})),
        MalcomL1Prox(c.lambda), progress);
  throw ConfigError("unknown algorithm '" + algorithm + "'");
}

/// Runs gradient tracking (GradientTracking, decopt/optimizer/gradient_tracking.hpp): `gt` is DIGing
/// (the identity compressor, raw float32, γ = 1: a model and a tracker per message, twice D-PSGD's
/// bytes); malcom or choco with --gradient-tracking is BEER over the dithered quantizer with --coder
/// raw or vsc (the default: vsc for malcom, raw for choco). Malcom's SupportCoded codes the model's
/// x̂ from its support and does not apply to the tracker, and gradient tracking has no prox: malcom
/// then runs its plain dithered + vsc pipeline without the l1 prox (the JSON says so). Three optimizer
/// types, whatever the algorithm.
/// @throws ConfigError for a flag gradient tracking does not run with (naming it)
RunResult run_gradient_tracking(const TrainConfig& c, const std::string& algorithm, const TrainingData& data,
                                const Options& options, const DitheredQuantizer& quantizer, const ProgressFn& progress) {
  const std::string with = algorithm == "gt" ? std::string("--algorithm gt") : "--gradient-tracking";
  decopt::detail::require(algorithm != "dpsgd", "--gradient-tracking on dpsgd is --algorithm gt (DIGing)");
  decopt::detail::require(c.step == "sync", with + " runs with --step sync only, not " + c.step);
  decopt::detail::require(!time_varying(c), with + " runs on a static --topology, not --schedule " + c.schedule);
  decopt::detail::require(c.compressor.empty() || (algorithm != "gt" && c.compressor == "dithered"),
                          with + " runs with " + (algorithm == "gt" ? "the identity compressor" : "the dithered compressor") +
                              ", not --compressor " + c.compressor);
  decopt::detail::require(c.local_steps == 1 && c.momentum == 0,
                          with + ": the model step is x - lr v with the tracked gradient v; --local-steps and --momentum do not apply");
  decopt::detail::require(c.lambda_warmup == 0 && c.lambda_ramp == 0, with + " has no l1 prox: --lambda-warmup and --lambda-ramp do not apply");
  auto tracked = [&]<class C>(C compressor, const Options& o) {
    RunResult r = detail::run_with<GradientTracking<C>>(c, algorithm, data, o, std::move(compressor), NoProx{}, progress);
    r.gradient_tracking = true;
    return r;
  };
  if (algorithm == "gt") return tracked(Compressor<Dense, Identity, RawCoder>{}, dpsgd_options(options));
  const std::string coder = c.coder_of(algorithm);
  if (coder == "raw") return tracked(Compressor<Dense, DitheredQuantizer, RawCoder>({}, quantizer, {}), options);
  if (coder == "vsc") return tracked(Compressor<Dense, DitheredQuantizer, VectorSourceCoder>({}, quantizer, {}), options);
  throw ConfigError(with + " runs with --coder raw or vsc, not " + coder);
}

/// Runs malcom, choco or dpsgd with --step async (AsyncGossip: bounded staleness, train/async_run.hpp):
/// three optimizer types, the dithered quantizer and each algorithm's own coder — malcom its plain
/// pipeline (dithered + VSC + l1 prox: AsyncGossip takes a ResidualCompressor, not SupportCoded).
/// @throws ConfigError for an unknown algorithm
RunResult run_async(const TrainConfig& c, const std::string& algorithm, const TrainingData& data, const Options& options,
                    const DitheredQuantizer& quantizer, const ProgressFn& progress) {
  if (algorithm == "dpsgd")
    return detail::run_with<AsyncGossip<ExactGossipCompressor>>(c, algorithm, data, dpsgd_options(options), {}, NoProx{},
                                                                progress);
  if (algorithm == "choco")
    return detail::run_with<AsyncGossip<Compressor<Dense, DitheredQuantizer, RawCoder>>>(
        c, algorithm, data, options, {Dense{}, quantizer, RawCoder{}}, NoProx{}, progress);
  if (algorithm == "malcom")
    return detail::run_with<AsyncGossip<MalcomPipeline, L1Prox>>(
        c, algorithm, data, options, MalcomPipeline(MalcomPipeline::Base(Dense{}, quantizer, VectorSourceCoder{})),
        L1Prox{c.lambda}, progress);
  throw ConfigError("unknown algorithm '" + algorithm + "'");
}

}  // namespace

/// Runs `algorithm` (malcom | choco | dpsgd) with the config's step policy and coder
/// (TrainConfig::coder_of). Instantiated: malcom and choco with each of the three coders, dpsgd
/// with RawCoder only (check_coder refuses the others), each for both steps — 14 optimizers; one per
/// --compressor other than dithered (run_other_compressor) — 9 more; over --schedule one per
/// algorithm (run_scheduled) — 3 more; gradient tracking (run_gradient_tracking) — 3 more; and with
/// --step async one per algorithm (run_async) — 3 more. sgp has a driver of its own (run_push_sum).
/// @throws ConfigError for an unknown algorithm, coder or compressor, or elias/vsc with dpsgd.
RunResult run_experiment(const TrainConfig& c, const std::string& algorithm, const TrainingData& data,
                         const ProgressFn& progress) {
  Options options;
  options.lr = c.lr;
  options.consensus_step = c.gamma;
  options.momentum = c.momentum;
  options.local_steps = c.local_steps;
  options.seed = c.seed;
  const DitheredQuantizer quantizer{c.levels, c.norm == "l2" ? Norm::L2 : Norm::Linf, false, static_cast<std::size_t>(c.bucket)};
  if (algorithm == "sgp") return run_push_sum(c, data, progress);  // push_sum_run.hpp: its own driver
  if (algorithm == "gt" || c.gradient_tracking) return run_gradient_tracking(c, algorithm, data, options, quantizer, progress);
  if (!c.compressor.empty() && c.compressor != "dithered") return run_other_compressor(c, algorithm, data, options, progress);
  if (time_varying(c)) return run_scheduled(c, algorithm, data, options, quantizer, progress);
  if (asynchronous(c)) return run_async(c, algorithm, data, options, quantizer, progress);
  const std::string coder = c.coder_of(algorithm);
  // Malcom-PSGD or CHOCO-SGD (the same quantizer; ℓ1 prox or none) with the level coder Coder.
  auto quantized = [&]<class Step, class Coder>(Step, Coder) -> RunResult {
    using Pipeline = Compressor<Dense, DitheredQuantizer, Coder>;
    if (algorithm == "malcom") {  // over the model's support: the zeros of the l1 prox cost no bits
      SupportCoded<Pipeline> support(Pipeline{Dense{}, quantizer, Coder{}});
      support.set_patience(static_cast<unsigned>(c.support_patience));
      support.set_level_scaling(c.support_levels == "live");
      return detail::run_with<DecentralizedOptimizer<SupportCoded<Pipeline>, L1Prox, Step>>(c, algorithm, data, options, support,
                                                                                            L1Prox{c.lambda}, progress);
    }
    return detail::run_with<DecentralizedOptimizer<Pipeline, NoProx, Step>>(c, algorithm, data, options,
                                                                             {Dense{}, quantizer, Coder{}}, NoProx{}, progress);
  };
  auto dispatch = [&]<class Step>(Step step) -> RunResult {
    if (algorithm == "dpsgd") {
      decopt::detail::require(coder == "raw", "--coder " + coder + " does not apply to dpsgd (it sends raw float32 values)");
      return detail::run_with<DPSGD<Step>>(c, algorithm, data, dpsgd_options(options), {}, NoProx{}, progress);
    }
    if (algorithm != "malcom" && algorithm != "choco") throw ConfigError("unknown algorithm '" + algorithm + "'");
    return examples::with_level_coder(coder, [&](auto level_coder) { return quantized(step, level_coder); });
  };
  return c.step == "overlap" ? dispatch(OverlappedStep{}) : dispatch(SyncStep{});
}

}  // namespace decopt::train
