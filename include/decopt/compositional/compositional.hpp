// decopt/compositional/compositional.hpp — compositional optimisation: the problem concept, the
// mean–variance portfolio reference problem, and the variance-reduced solvers VRSC (sequential),
// AsyVRSCShared (lock-free threads) and AsyVRSCDistributed (master–worker, bounded staleness).
//
//   min_x f(x) = (1/n) Σ_i F_i((1/m) Σ_j G_j(x))
//
// The names live in decopt::compositional and are also available as decopt::VRSC etc.
#pragma once

#include "decopt/compositional/asyvrsc_distributed.hpp"
#include "decopt/compositional/asyvrsc_shared.hpp"
#include "decopt/compositional/master_worker.hpp"
#include "decopt/compositional/portfolio.hpp"
#include "decopt/compositional/problem.hpp"
#include "decopt/compositional/vrsc.hpp"
#include "decopt/compositional/vrsc_estimator.hpp"

namespace decopt {
using compositional::AsyVRSCDistributed;
using compositional::AsyVrscDistributedOptions;
using compositional::AsyVRSCShared;
using compositional::AsyVrscSharedOptions;
using compositional::CompositionalProblem;
using compositional::CompositionalResult;
using compositional::DivergenceError;
using compositional::InProcessChannel;
using compositional::MasterWorkerChannel;
using compositional::PortfolioOptions;
using compositional::PortfolioProblem;
using compositional::VRSC;
using compositional::VrscEstimator;
using compositional::VrscOptions;
}  // namespace decopt
