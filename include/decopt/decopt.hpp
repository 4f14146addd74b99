// decopt/decopt.hpp — the umbrella header: everything in decopt that needs only the standard
// library and Eigen. The MPI transport is separate: #include <decopt/mpi.hpp>.
#pragma once

#include "decopt/core/bit_stream.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/codes.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"
#include "decopt/compress/compress.hpp"
#include "decopt/prox/prox.hpp"
#include "decopt/topology/topology_all.hpp"
#include "decopt/privacy/privacy.hpp"
#include "decopt/compositional/compositional.hpp"
#include "decopt/optimizer/optimizer.hpp"
#include "decopt/optimizer/local_update.hpp"
#include "decopt/optimizer/lr_schedule.hpp"
#include "decopt/parameters/parameters.hpp"
#include "decopt/transport/link_model.hpp"
#include "decopt/transport/thread_network.hpp"
