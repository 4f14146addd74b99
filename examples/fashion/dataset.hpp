// fashion/dataset.hpp — an in-memory image-classification data set (Fashion-MNIST or synthetic).
//
// Kept apart from idx.hpp so that code which only consumes a data set (the MLP, the batch
// sampler, benchmarks) does not need zlib. Images are stored one column per sample, the layout
// the MLP's matrix products want: a mini-batch is a set of columns, and a contiguous range of
// samples is a block `images.middleCols(first, count)` that Eigen::Ref takes without copying.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <vector>

#include "decopt/core/error.hpp"

namespace decopt::examples {

/// Labelled images, one column per sample.
struct Dataset {
  /// rows·cols × N, pixel values scaled to [0, 1] (or standardised by normalize()).
  Eigen::MatrixXf images;
  /// N class labels.
  std::vector<std::uint8_t> labels;
  /// Image height and width in pixels (28 × 28 for Fashion-MNIST).
  int rows = 0;
  int cols = 0;

  /// Number of samples.
  [[nodiscard]] int size() const noexcept { return static_cast<int>(labels.size()); }
  /// Pixels per image (the MLP's input width).
  [[nodiscard]] int features() const noexcept { return rows * cols; }
};

/// Affine pixel normalisation x ↦ (x − mean) / stddev.
struct Normalization {
  float mean = 0.0f;
  float stddev = 1.0f;
};

/// The mean and standard deviation of every pixel of every image of `data` (computed in double).
/// Compute this on the training set and apply the same values to the test set.
inline Normalization compute_normalization(const Dataset& data) {
  decopt::detail::require(data.images.size() > 0, "compute_normalization: the data set is empty");
  const double n = static_cast<double>(data.images.size());
  const double mean = data.images.cast<double>().sum() / n;
  const double var = (data.images.cast<double>().array() - mean).square().sum() / n;
  decopt::detail::require(var > 0.0, "compute_normalization: every pixel has the same value");
  return {static_cast<float>(mean), static_cast<float>(std::sqrt(var))};
}

/// Standardises `data` in place with `norm` (from compute_normalization on the training set).
/// Zero-mean, unit-variance inputs let plain SGD use a larger learning rate than [0, 1] pixels.
inline void normalize(Dataset& data, Normalization norm) {
  decopt::detail::require(norm.stddev > 0.0f && std::isfinite(norm.stddev) && std::isfinite(norm.mean),
                          "normalize: the standard deviation must be finite and positive");
  data.images.array() = (data.images.array() - norm.mean) * (1.0f / norm.stddev);
}

}  // namespace decopt::examples
