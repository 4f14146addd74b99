// decopt/prox/prox.hpp — the proximal operators in one include: NoProx, L1Prox, ElasticNetProx,
// GroupL1Prox and the ProximalOperator concept they satisfy.
#pragma once

#include "decopt/prox/concepts.hpp"
#include "decopt/prox/elastic_net.hpp"
#include "decopt/prox/group_l1.hpp"
#include "decopt/prox/l1.hpp"
#include "decopt/prox/no_prox.hpp"

namespace decopt {
static_assert(ProximalOperator<NoProx> && ProximalOperator<L1Prox> && ProximalOperator<ElasticNetProx> &&
              ProximalOperator<GroupL1Prox>);
}  // namespace decopt
