// fashion/mlp.hpp — a one-hidden-layer perceptron (inputs → hidden → classes, ReLU, softmax
// cross-entropy) whose parameters live in ONE flat buffer the caller owns.
//
// Why a flat buffer: the decentralized optimizer updates each node's model in place through a
// std::span<float> (compression, consensus and prox all work on one vector), so the model must
// not own its weights. Every layer matrix here is an Eigen::Map view into the caller's span —
// nothing is copied in or out. Layout of the P = h·n + h + c·h + c parameters (column-major):
//
//   [ W1 : h × n ][ b1 : h ][ W2 : c × h ][ b2 : c ]        n = inputs, h = hidden, c = classes
//
// Forward on a batch X (n × B, one column per sample), all as matrix products:
//   A1 = max(W1 X + b1 1ᵀ, 0),  Z2 = W2 A1 + b2 1ᵀ,
//   ℓ_b = logsumexp(Z2[:, b]) − Z2[y_b, b]          (log-sum-exp shifted by the column max,
//                                                     so large logits do not overflow)
// Backward of the mean loss L = (1/B) Σ_b ℓ_b:
//   D2 = (softmax(Z2) − onehot(y)) / B,  ∇W2 = D2 A1ᵀ,  ∇b2 = D2 1,
//   D1 = (W2ᵀ D2) ⊙ [A1 > 0],            ∇W1 = D1 Xᵀ,   ∇b1 = D1 1.
// Per-sample gradients (for DP-PSAC's clipping) reuse the same batched forward and backward
// (without the 1/B) and write sample b's gradient as the outer products D1[:, b] X[:, b]ᵀ and
// D2[:, b] A1[:, b]ᵀ straight into column b of the caller's P × B matrix.
//
// Scratch matrices are members sized to the largest batch seen so far (mutable workspace), so a
// training step at a fixed batch size allocates nothing of its own (tested with
// EIGEN_RUNTIME_NO_MALLOC). Eigen's matrix product itself takes packing buffers for the 784-wide
// layer (≈ 400 KB) from the heap unless EIGEN_STACK_ALLOCATION_LIMIT is raised: one malloc/free
// pair per product, Eigen's own cost. The mutable workspace makes one Mlp object not safe to
// use from two threads at once: give each node (thread) its own copy — copies are cheap, they
// hold only the sizes and the workspace.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"
#include "fashion/dataset.hpp"

namespace decopt::examples {

/// Defaults of decopt-train, checked with plain SGD on standardised inputs (compute_normalization
/// on the training set, then normalize both sets), hidden 128, Fashion-MNIST test accuracy:
///   centralized, batch 32,  lr 0.1 : 0.852, 0.857, 0.854 after epochs 1, 2, 3;
///   centralized, batch 256, lr 0.1 : 0.834, 0.852, 0.855, …, 0.877 after epoch 10;
///   D-PSGD, ring of 8 nodes, batch 32 per node, lr 0.1, exact gossip, IID split: node 0 at
///                         0.830, 0.848 after epochs 1, 2 and 0.875 after epoch 10;
///                         by-label split: ≈ 0.78–0.80 after 3 epochs (non-IID is harder).
/// On raw [0, 1] pixels the same runs are 1–3 points lower, hence decopt-train standardises.
/// Hidden width 128: 784 → 128 → 10 is P = 101 770 parameters; one pass over the 60 000
/// training samples costs about 1 s of one core for the forward and backward passes.
inline constexpr int kDefaultHidden = 128;
/// Default per-node mini-batch size of decopt-train.
inline constexpr int kDefaultBatchSize = 32;
/// Default SGD learning rate of decopt-train (for standardised inputs and kDefaultBatchSize).
inline constexpr double kDefaultLearningRate = 0.1;

/// Mean loss and accuracy of a model on a set of samples.
struct Evaluation {
  double loss = 0.0;
  double accuracy = 0.0;
};

/// The MLP over a flat parameter buffer of Scalar (float for training, double for exact checks).
/// @tparam Scalar float or double.
template <class Scalar>
class BasicMlp {
 public:
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  using ConstInput = Eigen::Ref<const Matrix>;

  /// @param inputs features per sample (784 for 28 × 28 images)
  /// @param hidden width of the ReLU layer
  /// @param classes number of classes (≤ 256, labels are bytes)
  /// @throws ConfigError if a size is < 1 or classes > 256.
  BasicMlp(int inputs, int hidden, int classes) : inputs_(inputs), hidden_(hidden), classes_(classes) {
    decopt::detail::require(inputs >= 1, "Mlp: inputs must be at least 1, got " + std::to_string(inputs));
    decopt::detail::require(hidden >= 1, "Mlp: hidden must be at least 1, got " + std::to_string(hidden));
    decopt::detail::require(classes >= 2 && classes <= 256,
                            "Mlp: classes must be between 2 and 256, got " + std::to_string(classes));
  }

  [[nodiscard]] int inputs() const noexcept { return inputs_; }
  [[nodiscard]] int hidden() const noexcept { return hidden_; }
  [[nodiscard]] int classes() const noexcept { return classes_; }

  /// P = h·n + h + c·h + c, the length of every parameter and gradient buffer.
  [[nodiscard]] std::size_t parameter_count() const noexcept {
    const auto n = static_cast<std::size_t>(inputs_), h = static_cast<std::size_t>(hidden_),
               c = static_cast<std::size_t>(classes_);
    return h * n + h + c * h + c;
  }

  /// Offsets of the four blocks in the flat buffer (see the layout at the top of this file).
  [[nodiscard]] std::size_t w1_offset() const noexcept { return 0; }
  [[nodiscard]] std::size_t b1_offset() const noexcept { return std::size_t(hidden_) * std::size_t(inputs_); }
  [[nodiscard]] std::size_t w2_offset() const noexcept { return b1_offset() + std::size_t(hidden_); }
  [[nodiscard]] std::size_t b2_offset() const noexcept {
    return w2_offset() + std::size_t(classes_) * hidden_;
  }

  /// He initialisation for the ReLU layer (W1 ~ N(0, 2/n), He et al. 2015), Glorot for the
  /// softmax layer (W2 ~ N(0, 2/(h + c)), Glorot & Bengio 2010), zero biases. Every node that
  /// seeds `rng` the same way gets the same x⁰, as the decentralized algorithms assume.
  void initialize(std::span<Scalar> params, Rng& rng) const {
    check_size(params.size(), "initialize: params");
    std::fill(params.begin(), params.end(), Scalar(0));
    rng.fill_normal(params.subspan(w1_offset(), b1_offset()), std::sqrt(2.0 / inputs_));
    rng.fill_normal(params.subspan(w2_offset(), std::size_t(classes_) * hidden_),
                    std::sqrt(2.0 / (hidden_ + classes_)));
  }

  /// Mean softmax cross-entropy over the batch and its gradient, written to `grad`.
  /// @param params P parameters (read only)
  /// @param x      inputs × B batch, one column per sample (any Eigen block with unit inner stride)
  /// @param labels B labels in [0, classes)
  /// @param grad   P outputs, overwritten with ∇ of the mean loss
  /// @return the mean loss (1/B) Σ_b ℓ_b
  /// @throws ConfigError on mismatched sizes or a label out of range.
  double loss_and_gradient(std::span<const Scalar> params, const ConstInput& x,
                           std::span<const std::uint8_t> labels, std::span<Scalar> grad) const {
    check_batch(params, x, labels);
    check_size(grad.size(), "loss_and_gradient: grad");
    const Eigen::Index batch = x.cols();
    const double loss = forward(params, x, labels, /*keep_probabilities=*/true);
    auto d2 = ws_.z2.leftCols(batch);  // softmax probabilities, turned into ∂L/∂Z2 in place
    for (Eigen::Index b = 0; b < batch; ++b) d2(labels[std::size_t(b)], b) -= Scalar(1);
    d2 *= Scalar(1) / static_cast<Scalar>(batch);
    auto a1 = ws_.a1.leftCols(batch);
    auto d1 = ws_.d1.leftCols(batch);
    d1.noalias() = w2(params).transpose() * d2;
    d1 = (a1.array() > Scalar(0)).select(d1, Scalar(0));
    mut_w1(grad).noalias() = d1 * x.transpose();
    mut_b1(grad) = d1.rowwise().sum();
    mut_w2(grad).noalias() = d2 * a1.transpose();
    mut_b2(grad) = d2.rowwise().sum();
    return loss;
  }

  /// The gradient of each sample's own loss ℓ_b, one column each; their mean is the gradient
  /// loss_and_gradient returns. Used by the privacy layer to clip samples one by one.
  /// @param out P × B, column b overwritten with ∇ℓ_b (any Eigen matrix or block with unit inner stride)
  /// @return the mean loss over the batch
  double per_sample_gradients(std::span<const Scalar> params, const ConstInput& x,
                              std::span<const std::uint8_t> labels, Eigen::Ref<Matrix> out) const {
    check_batch(params, x, labels);
    decopt::detail::require(
        out.rows() == static_cast<Eigen::Index>(parameter_count()) && out.cols() == x.cols(),
        "per_sample_gradients: out must be " + std::to_string(parameter_count()) + " × " +
            std::to_string(x.cols()) + ", got " + std::to_string(out.rows()) + " × " +
            std::to_string(out.cols()));
    const Eigen::Index batch = x.cols();
    const double loss = forward(params, x, labels, /*keep_probabilities=*/true);
    auto d2 = ws_.z2.leftCols(batch);
    for (Eigen::Index b = 0; b < batch; ++b) d2(labels[std::size_t(b)], b) -= Scalar(1);
    auto a1 = ws_.a1.leftCols(batch);
    auto d1 = ws_.d1.leftCols(batch);
    d1.noalias() = w2(params).transpose() * d2;
    d1 = (a1.array() > Scalar(0)).select(d1, Scalar(0));
    const Eigen::Index h = hidden_, n = inputs_, c = classes_;
    for (Eigen::Index b = 0; b < batch; ++b) {
      Scalar* g = out.col(b).data();
      Eigen::Map<Matrix>(g + w1_offset(), h, n).noalias() = d1.col(b) * x.col(b).transpose();
      Eigen::Map<Vector>(g + b1_offset(), h) = d1.col(b);
      Eigen::Map<Matrix>(g + w2_offset(), c, h).noalias() = d2.col(b) * a1.col(b).transpose();
      Eigen::Map<Vector>(g + b2_offset(), c) = d2.col(b);
    }
    return loss;
  }

  /// Mean loss and fraction of correct argmax predictions over all columns of x, evaluated in
  /// chunks of kEvalChunk samples so a 10 000-sample test set needs no 10 000-column workspace.
  Evaluation evaluate(std::span<const Scalar> params, const ConstInput& x,
                      std::span<const std::uint8_t> labels) const {
    check_batch(params, x, labels);
    double loss_sum = 0.0;
    long correct = 0;
    const Eigen::Index total = x.cols();
    for (Eigen::Index first = 0; first < total; first += kEvalChunk) {
      const Eigen::Index count = std::min<Eigen::Index>(kEvalChunk, total - first);
      const auto chunk_labels = labels.subspan(std::size_t(first), std::size_t(count));
      loss_sum += static_cast<double>(count) *
                  forward(params, x.middleCols(first, count), chunk_labels, /*keep_probabilities=*/false);
      const auto logits = ws_.z2.leftCols(count);
      for (Eigen::Index b = 0; b < count; ++b) {
        Eigen::Index best = 0;
        logits.col(b).maxCoeff(&best);
        correct += best == chunk_labels[std::size_t(b)];
      }
    }
    return {loss_sum / static_cast<double>(total), static_cast<double>(correct) / static_cast<double>(total)};
  }

  /// Mean loss over all columns of x.
  double loss(std::span<const Scalar> params, const ConstInput& x,
              std::span<const std::uint8_t> labels) const {
    return evaluate(params, x, labels).loss;
  }
  /// Fraction of samples whose largest logit is the true class.
  double accuracy(std::span<const Scalar> params, const ConstInput& x,
                  std::span<const std::uint8_t> labels) const {
    return evaluate(params, x, labels).accuracy;
  }
  /// evaluate() over a whole data set (float models only, as Dataset stores floats).
  Evaluation evaluate(std::span<const Scalar> params, const Dataset& data) const {
    return evaluate(params, data.images, data.labels);
  }
  double accuracy(std::span<const Scalar> params, const Dataset& data) const {
    return evaluate(params, data).accuracy;
  }
  double loss(std::span<const Scalar> params, const Dataset& data) const {
    return evaluate(params, data).loss;
  }

  /// Samples per forward pass in evaluate().
  static constexpr Eigen::Index kEvalChunk = 512;

 private:
  /// Scratch matrices with capacity for the largest batch so far; blocks of them are used.
  struct Workspace {
    Matrix a1;  // h × cap: hidden activations (ReLU applied in place)
    Matrix z2;  // c × cap: logits, then probabilities, then ∂ℓ/∂Z2
    Matrix d1;  // h × cap: ∂ℓ/∂Z1
  };

  void reserve(Eigen::Index batch) const {
    if (ws_.a1.cols() >= batch) return;
    ws_.a1.resize(hidden_, batch);
    ws_.z2.resize(classes_, batch);
    ws_.d1.resize(hidden_, batch);
  }

  /// Fills a1 and z2 for the batch and returns the mean loss. With keep_probabilities, z2 ends
  /// as softmax(Z2) (what backward needs); otherwise z2 keeps the logits (what argmax needs).
  double forward(std::span<const Scalar> params, const ConstInput& x, std::span<const std::uint8_t> labels,
                 bool keep_probabilities) const {
    const Eigen::Index batch = x.cols();
    reserve(batch);
    auto a1 = ws_.a1.leftCols(batch);
    a1.noalias() = w1(params) * x;
    a1.colwise() += b1(params);
    a1 = a1.cwiseMax(Scalar(0));
    auto z2 = ws_.z2.leftCols(batch);
    z2.noalias() = w2(params) * a1;
    z2.colwise() += b2(params);
    double loss_sum = 0.0;
    for (Eigen::Index b = 0; b < batch; ++b) {
      auto z = z2.col(b);
      const Scalar shift = z.maxCoeff();
      const Scalar sum = (z.array() - shift).exp().sum();
      const Scalar log_sum_exp = shift + std::log(sum);
      loss_sum += static_cast<double>(log_sum_exp - z(labels[std::size_t(b)]));
      if (keep_probabilities) z = (z.array() - log_sum_exp).exp().matrix();
    }
    return loss_sum / static_cast<double>(batch);
  }

  void check_size(std::size_t size, const char* what) const {
    decopt::detail::require(size == parameter_count(), std::string("Mlp::") + what + " has " +
                                                           std::to_string(size) + " elements, expected " +
                                                           std::to_string(parameter_count()));
  }

  void check_batch(std::span<const Scalar> params, const ConstInput& x,
                   std::span<const std::uint8_t> labels) const {
    check_size(params.size(), "params");
    decopt::detail::require(x.rows() == inputs_, "Mlp: the batch has " + std::to_string(x.rows()) +
                                                     " rows, expected one per input (" +
                                                     std::to_string(inputs_) + ")");
    decopt::detail::require(x.cols() >= 1, "Mlp: the batch is empty");
    decopt::detail::require(
        labels.size() == static_cast<std::size_t>(x.cols()),
        "Mlp: " + std::to_string(labels.size()) + " labels for a batch of " + std::to_string(x.cols()));
    for (std::uint8_t label : labels) {
      decopt::detail::require(label < classes_, "Mlp: label " + std::to_string(label) +
                                                    " is not below classes = " + std::to_string(classes_));
    }
  }

  using ConstMap = Eigen::Map<const Matrix>;
  using ConstVecMap = Eigen::Map<const Vector>;
  ConstMap w1(std::span<const Scalar> p) const { return ConstMap(p.data() + w1_offset(), hidden_, inputs_); }
  ConstVecMap b1(std::span<const Scalar> p) const { return ConstVecMap(p.data() + b1_offset(), hidden_); }
  ConstMap w2(std::span<const Scalar> p) const { return ConstMap(p.data() + w2_offset(), classes_, hidden_); }
  ConstVecMap b2(std::span<const Scalar> p) const { return ConstVecMap(p.data() + b2_offset(), classes_); }
  Eigen::Map<Matrix> mut_w1(std::span<Scalar> p) const { return {p.data() + w1_offset(), hidden_, inputs_}; }
  Eigen::Map<Vector> mut_b1(std::span<Scalar> p) const { return {p.data() + b1_offset(), hidden_}; }
  Eigen::Map<Matrix> mut_w2(std::span<Scalar> p) const { return {p.data() + w2_offset(), classes_, hidden_}; }
  Eigen::Map<Vector> mut_b2(std::span<Scalar> p) const { return {p.data() + b2_offset(), classes_}; }

  int inputs_;
  int hidden_;
  int classes_;
  mutable Workspace ws_;
};

/// The model decopt-train uses: float parameters.
using Mlp = BasicMlp<float>;

}  // namespace decopt::examples
