// tests/topology/mixing_checks.hpp — the mixing-matrix property the topology tests share: W is
// square n×n, exactly symmetric, non-negative and doubly stochastic with a positive diagonal.
#pragma once

#include <catch2/catch.hpp>

#include <decopt/core/eigen.hpp>

namespace decopt::test {

inline void check_doubly_stochastic(const Eigen::MatrixXd& W, int n) {
  REQUIRE(W.rows() == n);
  REQUIRE(W.cols() == n);
  REQUIRE((W - W.transpose()).cwiseAbs().maxCoeff() == 0.0);
  REQUIRE(W.minCoeff() >= 0.0);
  for (int i = 0; i < n; ++i) {
    REQUIRE(W.row(i).sum() == Approx(1.0).margin(1e-14));
    REQUIRE(W.col(i).sum() == Approx(1.0).margin(1e-14));
    REQUIRE(W(i, i) > 0.0);
  }
}

}  // namespace decopt::test
