// torch/cnn.hpp — decopt-torch-train's model: a small LibTorch CNN for Fashion-MNIST, and how it
// reads the examples' data sets (fashion/dataset.hpp) without copying them.
//
//   input 1×28×28 → conv 5×5, 8 channels → ReLU → max-pool 2 → 8×12×12
//                 → conv 5×5, 32 channels → ReLU → 32×8×8 = 2048 → linear → 10 logits
// P = (8·25 + 8) + (32·8·25 + 32) + (2048·10 + 10) = 27 130 parameters. Why this shape: the
// brief's range is 20k–100k parameters, and on this 2-core machine the convolutions are the cost
// (one batch of 32 forward + backward ≈ 3 ms on one thread, idle machine); a second pool would
// shrink the head to 5 130 parameters, and widening the convolutions to get back into the range
// costs 2–4× the time. Most parameters are in the head, the two kernels are where the FLOPs are.
//
// A Dataset stores one image per column of a column-major 784 × N matrix, i.e. N consecutive
// blocks of 784 floats: exactly the memory of an N × 1 × 28 × 28 tensor, so images() wraps a
// range of columns with torch::from_blob (no copy). Labels are uint8 there and int64 for
// cross_entropy: the one conversion per batch (B integers).
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <span>

#include "fashion/dataset.hpp"

namespace decopt::torch_example {

/// Fashion-MNIST's classes.
inline constexpr int kClasses = 10;

/// The CNN of the header comment.
struct Cnn : ::torch::nn::Module {
  Cnn() {
    conv1 = register_module("conv1", ::torch::nn::Conv2d(::torch::nn::Conv2dOptions(1, 8, 5)));
    conv2 = register_module("conv2", ::torch::nn::Conv2d(::torch::nn::Conv2dOptions(8, 32, 5)));
    head = register_module("head", ::torch::nn::Linear(32 * 8 * 8, kClasses));
  }

  /// Logits (B × 10) of a batch B × 1 × 28 × 28.
  ::torch::Tensor forward(::torch::Tensor x) {
    x = ::torch::max_pool2d(::torch::relu(conv1(x)), 2);
    x = ::torch::relu(conv2(x));
    return head(x.flatten(1));
  }

  ::torch::nn::Conv2d conv1{nullptr};
  ::torch::nn::Conv2d conv2{nullptr};
  ::torch::nn::Linear head{nullptr};
};

/// Images [first, first + count) of `data` as a count × 1 × rows × cols tensor over its memory.
/// The tensor borrows the data set: it must not outlive it, and is read-only by convention.
inline ::torch::Tensor images(const examples::Dataset& data, int first, int count) {
  const float* start = data.images.data() + static_cast<std::ptrdiff_t>(first) * data.features();
  return ::torch::from_blob(const_cast<float*>(start), {count, 1, data.rows, data.cols},
                            ::torch::TensorOptions().dtype(::torch::kFloat32));
}

/// A batch's images (features × B, one column each) as a B × 1 × rows × cols tensor over its memory.
inline ::torch::Tensor images(const Eigen::MatrixXf& batch, int rows, int cols) {
  return ::torch::from_blob(const_cast<float*>(batch.data()), {static_cast<long>(batch.cols()), 1, rows, cols},
                            ::torch::TensorOptions().dtype(::torch::kFloat32));
}

/// uint8 labels as the int64 tensor cross_entropy wants (a copy: B integers).
inline ::torch::Tensor labels(std::span<const std::uint8_t> values) {
  ::torch::Tensor out = ::torch::empty({static_cast<long>(values.size())}, ::torch::kInt64);
  std::copy(values.begin(), values.end(), out.data_ptr<std::int64_t>());
  return out;
}

/// Test accuracy and mean cross-entropy of a model on a data set.
struct Evaluation {
  double accuracy = 0;
  double loss = 0;
};

/// Evaluates `net` on the first `samples` images of `data` (all of them when `samples` is
/// negative or beyond its size), in chunks of `chunk` images, without autograd.
inline Evaluation evaluate(Cnn& net, const examples::Dataset& data, long samples = -1, int chunk = 1000) {
  ::torch::NoGradGuard no_grad;
  const int size = samples < 0 || samples > data.size() ? data.size() : static_cast<int>(samples);
  long correct = 0;
  double loss_sum = 0;
  const std::span<const std::uint8_t> all(data.labels);
  for (int first = 0; first < size; first += chunk) {
    const int count = std::min(chunk, size - first);
    const ::torch::Tensor logits = net.forward(images(data, first, count));
    const ::torch::Tensor y = labels(all.subspan(static_cast<std::size_t>(first), static_cast<std::size_t>(count)));
    loss_sum += ::torch::nn::functional::cross_entropy(
                    logits, y, ::torch::nn::functional::CrossEntropyFuncOptions().reduction(::torch::kSum))
                    .item<double>();
    correct += logits.argmax(1).eq(y).sum().item<long>();
  }
  const double n = static_cast<double>(size);
  return {static_cast<double>(correct) / n, loss_sum / n};
}

}  // namespace decopt::torch_example
