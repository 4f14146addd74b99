// decopt/parameters/parameters.hpp — models of many tensors in one include: ParameterLayout (named
// segments over one flat buffer), FlatParameters (owned aligned parameter and gradient buffers with
// span and Eigen views per tensor) and SegmentedProx (a prox applied to some segments only).
#pragma once

#include "decopt/parameters/flat_parameters.hpp"
#include "decopt/parameters/layout.hpp"
#include "decopt/parameters/segmented_prox.hpp"
#include "decopt/prox/prox.hpp"

namespace decopt {
static_assert(ProximalOperator<SegmentedProx<L1Prox>> && ProximalOperator<SegmentedProx<NoProx>>);
}  // namespace decopt
