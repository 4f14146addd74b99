// decopt/core/eigen.hpp — Eigen's dense module, as decopt's headers include it.
//
// Eigen 3.4's AVX-512 kernels (matrix–vector products, reductions, eigensolvers) trip GCC 12's
// false -Wmaybe-uninitialized reports on the intrinsics' undefined pass-through operands
// (decopt/core/diagnostics.hpp) inside Eigen's own out-of-line functions, where no location of
// decopt's is on the inlining chain. Including Eigen inside the quiet region covers those
// locations too, so a program built with -march=native that includes decopt first does not see
// Eigen's false positives through decopt's spectral gaps, private gradients or compositional
// solvers. (A program that includes Eigen itself before decopt gets Eigen as it is.)
#pragma once

#include "decopt/core/diagnostics.hpp"

DECOPT_AVX512_QUIET_BEGIN
#include <Eigen/Dense>
DECOPT_AVX512_QUIET_END
