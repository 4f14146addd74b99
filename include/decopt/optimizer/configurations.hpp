// decopt/optimizer/configurations.hpp — the algorithms of the literature as named configurations
// of one DecentralizedOptimizer (not separate code):
//
//   MalcomPSGD — Campbell, Liu, Woldemariam & Scaglione, arXiv 2311.05760: dithered quantizer +
//                vector source coding + ℓ1 proximal step (sparse models, entropy-coded residuals).
//   ChocoSGD   — Koloskova, Stich & Jaggi, ICML 2019: the same quantizer, fixed-width packing, no prox.
//   DPSGD      — Lian et al., NeurIPS 2017: the identity compressor with γ = 1 (exact gossip:
//                x ← W(x − η g)).
#pragma once

#include "decopt/compress/compress.hpp"
#include "decopt/optimizer/decentralized_optimizer.hpp"
#include "decopt/prox/prox.hpp"

namespace decopt {

template <class Step = SyncStep>
using MalcomPSGD = DecentralizedOptimizer<Compressor<Dense, DitheredQuantizer, VectorSourceCoder>, L1Prox, Step>;

template <class Step = SyncStep>
using ChocoSGD = DecentralizedOptimizer<Compressor<Dense, DitheredQuantizer, RawCoder>, NoProx, Step>;

template <class Step = SyncStep>
using DPSGD = DecentralizedOptimizer<Compressor<Dense, Identity, RawCoder>, NoProx, Step>;

/// D-PSGD's options: the given ones with γ = 1 (exact averaging needs the full consensus step).
inline Options dpsgd_options(Options options) {
  options.consensus_step = 1.0;
  return options;
}

}  // namespace decopt
