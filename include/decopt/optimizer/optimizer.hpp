// decopt/optimizer/optimizer.hpp — aggregate: the optimizer, its step policies, the lockstep
// simulation driver, the named configurations, the per-edge copies of time-varying schedules and
// asynchronous gossip (AsyncGossip, AsyncSimulation).
#pragma once

#include "decopt/optimizer/async_gossip.hpp"
#include "decopt/optimizer/async_simulation.hpp"
#include "decopt/optimizer/concepts.hpp"
#include "decopt/optimizer/configurations.hpp"
#include "decopt/optimizer/decentralized_optimizer.hpp"
#include "decopt/optimizer/edge_copies.hpp"
#include "decopt/optimizer/edge_exchange.hpp"
#include "decopt/optimizer/gradient_tracking.hpp"
#include "decopt/optimizer/options.hpp"
#include "decopt/optimizer/push_sum.hpp"
#include "decopt/optimizer/simulation.hpp"
#include "decopt/optimizer/steps.hpp"
#include "decopt/transport/simulated_network.hpp"
#include "decopt/transport/transport.hpp"
