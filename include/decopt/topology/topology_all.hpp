// decopt/topology/topology_all.hpp — the topology family in one include: Topology with its named
// graphs, weight rules, validation and spectral gap (topology.hpp, which pulls in edge.hpp,
// generators.hpp, weights.hpp and spectral.hpp), the time-varying sequences (time_varying.hpp) and the
// per-round schedules built from them (schedule.hpp), and directed graphs for push-sum (directed.hpp).
// Every header of the family also compiles on its own.
#pragma once

#include "decopt/topology/directed.hpp"
#include "decopt/topology/edge.hpp"
#include "decopt/topology/generators.hpp"
#include "decopt/topology/schedule.hpp"
#include "decopt/topology/spectral.hpp"
#include "decopt/topology/time_varying.hpp"
#include "decopt/topology/topology.hpp"
#include "decopt/topology/weights.hpp"
