// torch/node.hpp — one node of decopt-torch-train: its CNN bound zero-copy to decopt's flat
// buffers (decopt/torch.hpp), its share of the training set, and how its round is split between
// LibTorch and decopt.
//
// A round of node i, by --local:
//   decopt's policies (sgd, momentum, ...): optimizer.begin_round(grad) — decopt calls back for
//     the gradient (forward + backward over the flat buffers), takes the local step(s), compresses
//     and posts; finish_round() collects, mixes and proxes.
//   torch-sgd / torch-adam ("bring your own optimizer"): --step sync: τ torch::optim steps, then
//     post_exchange(); --step overlap: post_exchange() first, then the τ torch steps while the
//     messages are in flight; finish_exchange() collects, mixes and proxes either way.
// Both halves are separate calls so that a lockstep driver (the sim transport) can run every
// node's first half before any node's second half; a node on its own thread or rank runs them
// back to back. The work and its order per node are the same on every transport, so are the bits.
//
// A checkpoint of the node (save_state, beside its decopt optimizer's) holds decopt_seconds and,
// for torch-sgd / torch-adam, the torch optimizer's state (momentum buffers; Adam's moments and
// step), as torch::serialize writes it, so that a resumed run continues bit for bit. The model
// itself is in the decopt optimizer's record: the parameters are views of its buffer.
//
// decopt_seconds counts the wall time inside decopt's calls (begin_round, finish_round,
// post_exchange, finish_exchange, the resynchronisations), less the time decopt spends calling
// back into LibTorch for the gradient: compression, coding, posting, waiting for the neighbours,
// decoding, mixing, the prox and, for decopt's policies, the local update itself.
#pragma once

#include <decopt/decopt.hpp>
#include <decopt/torch.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "fashion/batches.hpp"
#include "fashion/dataset.hpp"
#include "torch/cnn.hpp"
#include "torch/config.hpp"

namespace decopt::torch_example {

/// Seconds since `start`.
inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// A CNN whose parameters live in decopt's flat buffer. Every model built with the same seed has
/// the same parameters (LibTorch's default initialisation, drawn after torch::manual_seed).
struct BoundCnn {
  std::shared_ptr<Cnn> net;
  decopt::torch::ModuleBinding binding;

  explicit BoundCnn(std::uint64_t seed, bool layerwise)
      : net(initialised(seed)), binding(decopt::torch::bind(*net, bind_options(layerwise))) {}

  /// The layout: named_parameters() packed (alignment 1: the flat buffer is exactly the P model
  /// parameters, so bits per parameter count no padding); ℓ1 on weights and kernels, not on
  /// biases; with `layerwise`, a quantizer scale of its own for every weight tensor.
  static decopt::torch::BindOptions bind_options(bool layerwise) {
    decopt::torch::BindOptions options;
    options.alignment = 1;
    options.segment_options = [layerwise](const std::string&, const at::Tensor& p) {
      const auto sizes = p.sizes();
      SegmentOptions segment = SegmentOptions::for_shape(std::span<const std::int64_t>(sizes.data(), sizes.size()));
      segment.own_scale = layerwise && segment.prox;
      return segment;
    };
    return options;
  }

 private:
  static std::shared_ptr<Cnn> initialised(std::uint64_t seed) {
    ::torch::manual_seed(seed);
    return std::make_shared<Cnn>();
  }
};

/// One node: its model, its mini-batches and, for torch-sgd / torch-adam, its torch optimizer.
class CnnNode {
 public:
  /// @param train the training set (must outlive the node); `share` its samples this node trains on
  CnnNode(const TorchTrainConfig& c, const examples::Dataset& train, std::vector<int> share, std::uint64_t batch_seed)
      : model_(c.train.seed, c.layerwise), train_(train), sampler_(std::move(share), c.train.batch, batch_seed),
        batch_x_(train.features(), c.train.batch), batch_y_(static_cast<std::size_t>(c.train.batch)),
        overlap_(c.train.step == "overlap"), local_steps_(c.train.local_steps) {
    if (c.local == "torch-sgd")
      torch_optimizer_ = std::make_unique<::torch::optim::SGD>(
          model_.net->parameters(), ::torch::optim::SGDOptions(c.train.lr).momentum(c.train.momentum));
    else if (c.local == "torch-adam")
      torch_optimizer_ =
          std::make_unique<::torch::optim::Adam>(model_.net->parameters(), ::torch::optim::AdamOptions(c.train.lr));
  }

  CnnNode(CnnNode&&) = delete;  // the binding's gradient callback points into this object

  [[nodiscard]] std::span<float> parameters() { return model_.binding.parameters(); }
  [[nodiscard]] const ParameterLayout& layout() const { return model_.binding.layout(); }
  [[nodiscard]] Cnn& net() { return *model_.net; }
  [[nodiscard]] examples::BatchSampler& sampler() { return sampler_; }
  /// Wall time inside decopt's calls so far (header comment).
  [[nodiscard]] double decopt_seconds() const { return decopt_seconds_; }

  /// The first half of a round (header comment): the local work and the post.
  template <class Optimizer>
  void begin_round(Optimizer& optimizer) {
    if (!torch_optimizer_) {
      auto gradient = model_.binding.gradient([this] { return loss(); });
      double gradient_seconds = 0;
      const auto start = std::chrono::steady_clock::now();
      optimizer.begin_round([&](std::span<const float> x, std::span<float> g) {
        const auto called = std::chrono::steady_clock::now();
        const double value = gradient(x, g);
        gradient_seconds += seconds_since(called);
        return value;
      });
      decopt_seconds_ += seconds_since(start) - gradient_seconds;
      return;
    }
    if (overlap_) timed([&] { optimizer.post_exchange(); });
    torch_loss_ = 0;
    for (int s = 0; s < local_steps_; ++s) torch_loss_ += torch_step() / local_steps_;
    if (!overlap_) timed([&] { optimizer.post_exchange(); });
  }

  /// The second half: collect, mix, prox. Returns the round's mean training loss.
  template <class Optimizer>
  double finish_round(Optimizer& optimizer) {
    double loss = 0;
    timed([&] { loss = optimizer.finish_round().loss; });
    return torch_optimizer_ ? torch_loss_ : loss;
  }

  /// Appends the node's own state (header comment) as one framed record (decopt/optimizer/checkpoint.hpp).
  void save_state(std::vector<std::byte>& out) const {
    const std::size_t start = checkpoint::begin_record(out);
    put_le<double>(out, decopt_seconds_);
    checkpoint::put_string(out, torch_optimizer_state());
    checkpoint::end_record(out, start);
  }

  /// Restores a record written by save_state; returns the bytes it took.
  /// @throws DecodeError for a damaged record or torch optimizer state, or one that does not fit
  ///   this node's --local (a torch optimizer's state for none, or none for one)
  std::size_t load_state(std::span<const std::byte> bytes) {
    std::size_t used = 0;
    ByteReader in(checkpoint::open_record(bytes, used));
    const double seconds = in.get_le<double>();
    detail::require_decodable(std::isfinite(seconds) && seconds >= 0, "checkpoint decopt_seconds out of range");
    const std::string state = checkpoint::get_string(in);
    detail::require_decodable(in.remaining() == 0, "checkpoint node record has trailing bytes");
    detail::require_decodable(state.empty() == !torch_optimizer_,
                              torch_optimizer_ ? "checkpoint holds no torch optimizer state for this --local"
                                               : "checkpoint holds a torch optimizer state this --local does not use");
    if (torch_optimizer_) load_torch_optimizer_state(state);
    decopt_seconds_ = seconds;
    return used;
  }

  /// Runs `call` (a call into decopt: a resynchronisation phase) and counts its time as decopt's.
  template <class Call>
  void timed(Call&& call) {
    const auto start = std::chrono::steady_clock::now();
    call();
    decopt_seconds_ += seconds_since(start);
  }

 private:
  /// The next mini-batch's mean cross-entropy (a scalar tensor with its graph).
  ::torch::Tensor loss() {
    sampler_.next(train_, batch_x_, batch_y_);
    return ::torch::nn::functional::cross_entropy(model_.net->forward(images(batch_x_, train_.rows, train_.cols)),
                                                  labels(batch_y_));
  }

  /// One torch::optim step: zero the gradients, forward, backward, update. Returns the loss.
  double torch_step() {
    torch_optimizer_->zero_grad();
    const ::torch::Tensor value = loss();
    value.backward();
    torch_optimizer_->step();
    return value.item<double>();
  }

  /// The torch optimizer's state as torch::serialize writes it (empty without one).
  [[nodiscard]] std::string torch_optimizer_state() const {
    if (!torch_optimizer_) return {};
    ::torch::serialize::OutputArchive archive;
    torch_optimizer_->save(archive);
    std::ostringstream stream;
    archive.save_to(stream);
    return std::move(stream).str();
  }

  /// Loads a torch_optimizer_state() into the torch optimizer. LibTorch reports a damaged archive
  /// with its own exceptions (c10::Error); they become a DecodeError.
  void load_torch_optimizer_state(const std::string& state) {
    try {
      ::torch::serialize::InputArchive archive;
      std::istringstream stream(state);
      archive.load_from(stream);
      torch_optimizer_->load(archive);
    } catch (const std::exception& e) {
      const std::string what = e.what();
      throw DecodeError("checkpoint's torch optimizer state is malformed: " + what.substr(0, what.find('\n')));
    }
  }

  BoundCnn model_;
  const examples::Dataset& train_;
  examples::BatchSampler sampler_;
  Eigen::MatrixXf batch_x_;
  std::vector<std::uint8_t> batch_y_;
  std::unique_ptr<::torch::optim::Optimizer> torch_optimizer_;
  bool overlap_;
  int local_steps_;
  double torch_loss_ = 0;
  double decopt_seconds_ = 0;
};

}  // namespace decopt::torch_example
