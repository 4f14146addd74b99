// The problems, option sets and checks the AsyVRSC tests run, shared by the in-process tests
// (tests/compositional) and the MPI tests (tests/mpi), so both check the same runs.
#pragma once

#include <catch2/catch.hpp>
#include <decopt/compositional/compositional.hpp>

#include <cmath>
#include <cstdint>

namespace decopt::compositional::testing {

/// A small seeded portfolio problem (d assets, n periods): quick enough for exact comparisons.
inline PortfolioProblem small_problem(Eigen::Index d = 20, Eigen::Index n = 200, std::uint64_t seed = 7) {
  PortfolioOptions o;
  o.assets = d;
  o.periods = n;
  o.seed = seed;
  return PortfolioProblem(o);
}

/// A short VRSC run on small_problem() that an exact reproduction is checked against.
inline VrscOptions short_vrsc_options() {
  VrscOptions o;
  o.step_size = 1e-3;
  o.inner_steps = 200;
  o.epochs = 5;
  o.batch_b = 2;
  return o;
}

/// AsyVRSCDistributed with one worker and no staleness: must reproduce VRSC(vrsc) bit for bit.
inline AsyVrscDistributedOptions one_worker_options(const VrscOptions& vrsc) {
  AsyVrscDistributedOptions o;
  static_cast<VrscOptions&>(o) = vrsc;
  o.workers = 1;
  o.max_staleness = 0;
  return o;
}

/// AsyVRSCDistributed on the default PortfolioProblem, to relative suboptimality 1e-6.
inline AsyVrscDistributedOptions converging_options(int workers) {
  AsyVrscDistributedOptions o;
  o.workers = workers;
  o.max_staleness = 4;
  o.tolerance = 1e-6;
  return o;
}

/// The checks of a converging_options() run on the default PortfolioProblem ending at x.
inline void check_converged(const PortfolioProblem& problem, const Vector& x, const CompositionalResult& r,
                            const AsyVrscDistributedOptions& o) {
  INFO("epochs " << r.epochs << ", dropped " << r.dropped_updates);
  REQUIRE(r.converged);
  CHECK(r.suboptimality <= o.tolerance);
  CHECK(r.epochs <= 80);
  CHECK(r.max_staleness <= static_cast<std::uint64_t>(o.max_staleness));
  CHECK(r.updates == static_cast<std::uint64_t>(r.epochs) * static_cast<std::uint64_t>(o.inner_steps));
  CHECK(r.history.size() == static_cast<std::size_t>(r.epochs) + 1);
  CHECK((problem.objective(x) - problem.optimal_value()) / std::abs(problem.optimal_value()) <= o.tolerance);
}

}  // namespace decopt::compositional::testing
