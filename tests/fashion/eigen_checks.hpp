// Included FIRST by every test file of test_fashion, so that all its translation units see Eigen
// configured the same way (different settings in different files would break the one-definition
// rule for Eigen's inline functions).
//
// * eigen_assert throws instead of aborting and stays on in Release, so Eigen's own checks
//   (sizes, Ref strides, …) are tested too, and a failed check is a test failure with a message.
// * EIGEN_RUNTIME_NO_MALLOC lets a test forbid heap allocation around a training step
//   (Eigen::internal::set_is_malloc_allowed(false)): any Eigen allocation then throws.
// * EIGEN_STACK_ALLOCATION_LIMIT is raised so that the packing buffers of Eigen's matrix product
//   (up to ~1.6 MB for the evaluation chunk) live on the stack: the check then sees allocations
//   made by decopt's code, which are the ones the headers promise to avoid. With Eigen's default
//   128 KB limit those packing buffers come from the heap in every product of the 784-wide layer.
#pragma once

#ifdef EIGEN_CORE_MODULE_H
#error "eigen_checks.hpp must be included before any Eigen header"
#endif

#include <stdexcept>
#include <string>

namespace fashion_test {
/// What eigen_assert throws: a failed Eigen check, e.g. a forbidden heap allocation.
struct EigenAssertion : std::logic_error {
  using std::logic_error::logic_error;
};
[[noreturn]] inline void eigen_assertion_failed(const char* condition, const char* file, int line) {
  throw EigenAssertion(std::string("Eigen assertion failed: ") + condition + " at " + file + ":" +
                       std::to_string(line));
}
}  // namespace fashion_test

#define EIGEN_RUNTIME_NO_MALLOC
#define EIGEN_STACK_ALLOCATION_LIMIT (4 << 20)
#define eigen_assert(x) \
  ((x) ? static_cast<void>(0) : ::fashion_test::eigen_assertion_failed(#x, __FILE__, __LINE__))
