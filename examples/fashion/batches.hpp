// fashion/batches.hpp — one node's mini-batch sampler: sampling without replacement, reshuffled
// every epoch, every batch full.
//
// Epoch e visits the node's indices in the order shuffle(sorted indices, Rng::derive(seed, {e})).
// Deriving each epoch's order from (seed, e) alone, rather than reshuffling the previous order,
// makes the sampler's whole state two integers (epoch, position): a checkpoint stores them and
// seek() restores the exact stream of batches. A batch that runs past the end of an epoch takes
// its remaining samples from the start of the next epoch, so every batch has exactly B samples
// and every sample is used once per epoch.
//
// next() copies the chosen columns into a caller-owned inputs × B matrix and B labels; it
// allocates nothing (the epoch order lives in a vector sized at construction).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"
#include "fashion/dataset.hpp"
#include "fashion/partition.hpp"

namespace decopt::examples {

/// Mini-batches from a fixed list of sample indices (one node's share of a data set).
class BatchSampler {
 public:
  /// @param indices    the node's sample indices (e.g. from partition()); must be non-empty
  /// @param batch_size samples per batch, ≥ 1 (may exceed the number of indices: the batch
  ///                   then spans several epochs)
  /// @param seed       fixes every epoch's order; give each node its own, e.g. derive(seed, {node})
  /// @throws ConfigError on an empty index list, a negative index, or batch_size < 1.
  BatchSampler(std::vector<int> indices, int batch_size, std::uint64_t seed)
      : sorted_(std::move(indices)), order_(sorted_.size()), batch_size_(batch_size), seed_(seed) {
    decopt::detail::require(!sorted_.empty(), "BatchSampler: the node has no samples");
    decopt::detail::require(batch_size >= 1,
                            "BatchSampler: batch_size must be at least 1, got " + std::to_string(batch_size));
    decopt::detail::require(std::all_of(sorted_.begin(), sorted_.end(), [](int i) { return i >= 0; }),
                            "BatchSampler: sample indices must be non-negative");
    std::sort(sorted_.begin(), sorted_.end());
    shuffle_epoch();
  }

  [[nodiscard]] int batch_size() const noexcept { return batch_size_; }
  /// Samples per epoch (the node's share).
  [[nodiscard]] std::size_t epoch_size() const noexcept { return sorted_.size(); }
  /// Whole epochs completed so far.
  [[nodiscard]] long epoch() const noexcept { return epoch_; }
  /// Samples of the current epoch already used.
  [[nodiscard]] std::size_t position() const noexcept { return position_; }
  /// Batches per epoch, rounded up (the number of rounds an "epoch" of decopt-train takes).
  [[nodiscard]] long batches_per_epoch() const noexcept {
    return static_cast<long>((sorted_.size() + std::size_t(batch_size_) - 1) / std::size_t(batch_size_));
  }

  /// Jumps to sample `position` of epoch `epoch` (restoring a checkpoint of epoch(), position()).
  /// @throws ConfigError if epoch < 0 or position ≥ epoch_size().
  void seek(long epoch, std::size_t position) {
    decopt::detail::require(epoch >= 0 && position < sorted_.size(),
                            "BatchSampler::seek: position out of range");
    epoch_ = epoch;
    position_ = position;
    shuffle_epoch();
  }

  /// The indices of the next batch, written to `out` (size batch_size()); advances the sampler.
  void next_indices(std::span<int> out) {
    decopt::detail::require(out.size() == std::size_t(batch_size_),
                            "BatchSampler: the index buffer must hold batch_size");
    for (int& index : out) {
      index = order_[position_];
      if (++position_ == order_.size()) {
        position_ = 0;
        ++epoch_;
        shuffle_epoch();
      }
    }
  }

  /// Fills the next batch: column j of `x` = column idx_j of `images`, labels_out[j] = labels[idx_j].
  /// @param images     features × N, one column per sample
  /// @param labels     N labels
  /// @param x          features × batch_size() output (a matrix or any block with unit inner stride)
  /// @param labels_out batch_size() output labels
  /// @throws ConfigError on mismatched sizes or an index ≥ N (checked before anything is copied).
  void next(const Eigen::Ref<const Eigen::MatrixXf>& images, std::span<const std::uint8_t> labels,
            Eigen::Ref<Eigen::MatrixXf> x, std::span<std::uint8_t> labels_out) {
    decopt::detail::require(labels.size() == static_cast<std::size_t>(images.cols()),
                            "BatchSampler::next: images and labels disagree on the number of samples");
    decopt::detail::require(
        x.rows() == images.rows() && x.cols() == batch_size_ && labels_out.size() == std::size_t(batch_size_),
        "BatchSampler::next: the output must be " + std::to_string(images.rows()) + " × " +
            std::to_string(batch_size_) + " with " + std::to_string(batch_size_) + " labels");
    decopt::detail::require(sorted_.back() < images.cols(),
                            "BatchSampler::next: a sample index is beyond the data set");
    for (Eigen::Index j = 0; j < x.cols(); ++j) {
      const int index = order_[position_];
      x.col(j) = images.col(index);
      labels_out[std::size_t(j)] = labels[std::size_t(index)];
      if (++position_ == order_.size()) {
        position_ = 0;
        ++epoch_;
        shuffle_epoch();
      }
    }
  }

  /// next() from a Dataset.
  void next(const Dataset& data, Eigen::Ref<Eigen::MatrixXf> x, std::span<std::uint8_t> labels_out) {
    next(data.images, data.labels, x, labels_out);
  }

 private:
  void shuffle_epoch() noexcept {
    std::copy(sorted_.begin(), sorted_.end(), order_.begin());
    Rng rng = Rng::derive(seed_, {static_cast<std::uint64_t>(epoch_)});
    fashion_detail::seeded_shuffle(order_, rng);
  }

  std::vector<int> sorted_;  // the node's indices, ascending
  std::vector<int> order_;   // this epoch's visiting order
  int batch_size_;
  std::uint64_t seed_;
  long epoch_ = 0;
  std::size_t position_ = 0;
};

}  // namespace decopt::examples
