// decopt/optimizer/configurations.hpp — the algorithms of the literature as named configurations
// of one DecentralizedOptimizer (not separate code), whose default-constructed policies train:
//
//   MalcomPSGD — Campbell, Liu, Woldemariam & Scaglione, arXiv 2311.05760: dithered quantizer +
//                vector source coding + ℓ1 proximal step (sparse models, entropy-coded residuals),
//                over the model's support (SupportCoded: the zeros the prox makes cost no bits).
//                Defaults: 256 levels with the ℓ2 scale (4 levels made the CNN of the LibTorch
//                issue diverge in round 8) and λ = 1e-4 (λ = 0 would be CHOCO-SGD with VSC).
//   ChocoSGD   — Koloskova, Stich & Jaggi, ICML 2019: the same quantizer, fixed-width packing, no prox.
//   DPSGD      — Lian et al., NeurIPS 2017: the identity compressor with γ = 1 (exact gossip:
//                x ← W(x − η g)); any other consensus step is refused at construction.
//
// Over a TopologySchedule (time-varying gossip, decopt/optimizer/edge_exchange.hpp), the same three
// with ScheduledSyncStep: ScheduledMalcomPSGD runs Malcom-PSGD's plain pipeline (dithered 256
// levels, ℓ2 scale, VSC, ℓ1 prox) without SupportCoded, whose per-neighbour support state does not
// fit per-edge copies (a compile-time error there); ScheduledChocoSGD and ScheduledDPSGD as above.
#pragma once

#include "decopt/compress/compress.hpp"
#include "decopt/optimizer/decentralized_optimizer.hpp"
#include "decopt/optimizer/edge_exchange.hpp"
#include "decopt/prox/prox.hpp"

namespace decopt {

/// Malcom-PSGD's compressor: Dense + DitheredQuantizer + VectorSourceCoder over the model's
/// support (SupportCoded), by default with 256 levels and the ℓ2 scale.
struct MalcomCompressor : SupportCoded<Compressor<Dense, DitheredQuantizer, VectorSourceCoder>> {
  using Pipeline = Compressor<Dense, DitheredQuantizer, VectorSourceCoder>;
  static constexpr int default_levels = 256;
  MalcomCompressor() : MalcomCompressor(Pipeline(Dense{}, DitheredQuantizer{default_levels, Norm::L2}, VectorSourceCoder{})) {}
  MalcomCompressor(const Pipeline& pipeline) : SupportCoded(pipeline) {}  // NOLINT: a configured pipeline converts
  MalcomCompressor(Dense sparsifier, DitheredQuantizer quantizer, VectorSourceCoder coder)
      : MalcomCompressor(Pipeline(sparsifier, quantizer, coder)) {}
};

/// Malcom-PSGD's pipeline without SupportCoded, for per-edge copies: Dense + DitheredQuantizer (256
/// levels, ℓ2 scale by default) + VectorSourceCoder.
struct MalcomPipeline : MalcomCompressor::Pipeline {
  using Base = MalcomCompressor::Pipeline;
  MalcomPipeline() : Base(Dense{}, DitheredQuantizer{MalcomCompressor::default_levels, Norm::L2}, VectorSourceCoder{}) {}
  MalcomPipeline(const Base& pipeline) : Base(pipeline) {}  // NOLINT: a configured pipeline converts
};

/// Malcom-PSGD's regulariser: ℓ1 with λ = 1e-4 by default (L1Prox{λ} for another).
struct MalcomL1Prox : L1Prox {
  static constexpr double default_lambda = 1e-4;
  MalcomL1Prox() : L1Prox(default_lambda) {}
  explicit MalcomL1Prox(double lambda_) : L1Prox(lambda_) {}
  MalcomL1Prox(const L1Prox& prox) : L1Prox(prox) {}  // NOLINT: L1Prox{λ} converts
};

/// D-PSGD's exact gossip: the identity compressor sent as raw float32, and the trait
/// `mixes_exactly` with which DecentralizedOptimizer refuses a consensus step other than 1.
struct ExactGossipCompressor : Compressor<Dense, Identity, RawCoder> {
  using Base = Compressor<Dense, Identity, RawCoder>;
  using Base::Base;
  static constexpr bool mixes_exactly = true;
  ExactGossipCompressor() = default;
  ExactGossipCompressor(const Base& compressor) : Base(compressor) {}  // NOLINT: converts
};

template <class Step = SyncStep, class Local = SGD>
using MalcomPSGD = DecentralizedOptimizer<MalcomCompressor, MalcomL1Prox, Step, Local>;

template <class Step = SyncStep, class Local = SGD>
using ChocoSGD = DecentralizedOptimizer<Compressor<Dense, DitheredQuantizer, RawCoder>, NoProx, Step, Local>;

template <class Step = SyncStep, class Local = SGD>
using DPSGD = DecentralizedOptimizer<ExactGossipCompressor, NoProx, Step, Local>;

template <class Step = ScheduledSyncStep, class Local = SGD>
using ScheduledMalcomPSGD = DecentralizedOptimizer<MalcomPipeline, MalcomL1Prox, Step, Local>;

template <class Step = ScheduledSyncStep, class Local = SGD>
using ScheduledChocoSGD = ChocoSGD<Step, Local>;

template <class Step = ScheduledSyncStep, class Local = SGD>
using ScheduledDPSGD = DPSGD<Step, Local>;

/// D-PSGD's options: the given ones with γ = 1 (exact averaging needs the full consensus step).
inline Options dpsgd_options(Options options) {
  options.consensus_step = 1.0;
  return options;
}

}  // namespace decopt
