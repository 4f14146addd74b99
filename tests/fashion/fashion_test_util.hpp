// Shared by the fashion tests: the installed Fashion-MNIST, loaded once per test run.
#pragma once

#include "fashion/idx.hpp"

namespace fashion_test {

/// The training set from kDefaultFashionMnistDir (throws the install message if it is missing).
inline const decopt::examples::Dataset& train_set() {
  static const decopt::examples::Dataset data =
      decopt::examples::load_fashion_mnist(decopt::examples::kDefaultFashionMnistDir, true);
  return data;
}

/// The test set from kDefaultFashionMnistDir.
inline const decopt::examples::Dataset& test_set() {
  static const decopt::examples::Dataset data =
      decopt::examples::load_fashion_mnist(decopt::examples::kDefaultFashionMnistDir, false);
  return data;
}

}  // namespace fashion_test
