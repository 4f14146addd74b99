// decopt/torch.hpp — a LibTorch module as a decopt node, zero-copy (target decopt::torch).
//
// bind(module) moves every parameter of a torch::nn::Module, and its gradient, into decopt's two
// flat buffers (decopt::FlatParameters, the convention of PyTorch FSDP's FlatParameter): each
// parameter's data and grad become tensors over a slice of those buffers, so
//   * the optimizer compresses, exchanges, mixes and proxes the very memory the module computes
//     with (no copy per round: binding.parameters() is what DecentralizedOptimizer is built over);
//   * loss.backward() accumulates into the flat gradient buffer in place (autograd's
//     AccumulateGrad adds into a defined .grad), and module->zero_grad() / optimizer.zero_grad()
//     keep working (the slices are tensors of their own over borrowed memory, not autograd views,
//     so detach_() is allowed);
//   * a torch::optim optimizer built over module->parameters() steps the same memory, which is
//     how "bring your own optimizer" works with DecentralizedOptimizer::exchange().
// The layout comes from named_parameters() in registration order; by default ℓ1 (the prox) applies
// to tensors of two or more dimensions (weights, conv kernels) and not to biases or norm scales
// (SegmentOptions::for_shape). The flat buffers must outlive the module's use of its parameters:
// keep the ModuleBinding alive as long as the module.
//
// Requirements: CPU float32 parameters (the messages are float32). Not in the umbrella header:
// include it explicitly and link decopt::torch.
//
// The callback from gradient() and the binding refer to each other: do not move a ModuleBinding
// after taking a callback from it (moving before is fine: the buffers stay where they are).
#pragma once

#include <torch/torch.h>

#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/parameters/parameters.hpp"

namespace decopt::torch {

/// How bind() lays a module out.
struct BindOptions {
  /// Per tensor: whether the prox applies and whether it gets its own quantizer scale.
  std::function<SegmentOptions(const std::string& name, const at::Tensor& parameter)> segment_options =
      [](const std::string&, const at::Tensor& p) {
        const auto sizes = p.sizes();
        return SegmentOptions::for_shape(std::span<const std::int64_t>(sizes.data(), sizes.size()));
      };
  std::size_t alignment = ParameterLayout::kDefaultAlignment;  ///< floats between segment starts
};

/**
 * @brief A torch::nn::Module whose parameters and gradients live in decopt's flat buffers.
 *
 * Move-only; the module's tensors point into buffers this object owns, so it must outlive every
 * use of the module's parameters.
 */
class ModuleBinding {
 public:
  /// @throws ConfigError for a module without parameters or with a parameter that is not a
  ///         CPU float32 tensor
  explicit ModuleBinding(::torch::nn::Module& module, const BindOptions& options = {})
      : flat_(layout_of(module, options)) {
    for (auto& item : module.named_parameters(/*recurse=*/true)) parameters_.push_back(item.value());
    ::torch::NoGradGuard no_grad;
    const auto segments = flat_.layout().segments();
    for (std::size_t k = 0; k < parameters_.size(); ++k) {
      at::Tensor& p = parameters_[k];
      const Segment& segment = segments[k];
      const at::Tensor values = p.detach().contiguous();
      std::memcpy(flat_.span().data() + segment.offset, values.data_ptr<float>(), segment.size * sizeof(float));
      p.set_data(borrow(flat_.span().data() + segment.offset, p.sizes()));
    }
    bind_gradients();
  }

  ModuleBinding(ModuleBinding&&) noexcept = default;
  ModuleBinding& operator=(ModuleBinding&&) noexcept = default;

  [[nodiscard]] const ParameterLayout& layout() const noexcept { return flat_.layout(); }
  /// The flat parameter buffer x, which the module's parameters alias: build the optimizer over it.
  [[nodiscard]] std::span<float> parameters() noexcept { return flat_.span(); }
  /// The flat gradient buffer, which the module's .grad tensors alias.
  [[nodiscard]] std::span<float> gradients() noexcept { return flat_.gradients().span(); }
  [[nodiscard]] FlatParameters& flat() noexcept { return flat_; }

  /**
   * A decopt gradient callback over this module: `loss()` runs the forward pass on the node's
   * next mini-batch and returns the scalar loss tensor; the callback zeroes the gradients, runs
   * backward and hands the flat gradient to decopt, returning the loss value.
   * The optimizer must be built over parameters() (checked: ConfigError otherwise).
   */
  template <class LossFn>
  [[nodiscard]] auto gradient(LossFn loss) {
    return [this, loss = std::move(loss)](std::span<const float> x, std::span<float> g) mutable -> double {
      detail::require(x.data() == flat_.span().data() && x.size() == flat_.size(),
                      "torch binding: the optimizer must be built over ModuleBinding::parameters()");
      const double value = backward(loss);
      const auto grad = gradients();
      if (g.data() != grad.data()) std::memcpy(g.data(), grad.data(), grad.size() * sizeof(float));
      return value;
    };
  }

  /// Zeroes the flat gradients, runs backward on loss() and leaves the gradient in gradients().
  template <class LossFn>
  double backward(LossFn& loss) {
    bind_gradients();
    flat_.zero_gradients();
    const at::Tensor value = loss();
    detail::require(value.numel() == 1, "torch binding: the loss closure must return a scalar tensor");
    value.backward();
    gather_stray_gradients();
    return value.item<double>();
  }

  /// Points every parameter's .grad at its slice of the flat gradient buffer again (after a
  /// zero_grad(set_to_none = true) or anything else that replaced it). Cheap: a few tensor headers.
  void bind_gradients() {
    const auto segments = flat_.layout().segments();
    float* base = flat_.gradients().span().data();
    for (std::size_t k = 0; k < parameters_.size(); ++k) {
      at::Tensor& grad = parameters_[k].mutable_grad();
      float* slice = base + segments[k].offset;
      if (!grad.defined() || grad.data_ptr() != slice) grad = borrow(slice, parameters_[k].sizes());
    }
  }

 private:
  static ParameterLayout layout_of(::torch::nn::Module& module, const BindOptions& options) {
    ParameterLayout layout(options.alignment);
    for (const auto& item : module.named_parameters(/*recurse=*/true)) {
      const at::Tensor& p = item.value();
      detail::require(p.device().is_cpu() && p.scalar_type() == at::kFloat,
                      "torch binding: parameter '" + item.key() + "' is not a CPU float32 tensor");
      const auto sizes = p.sizes();
      layout.add(item.key(), std::vector<std::int64_t>(sizes.begin(), sizes.end()), options.segment_options(item.key(), p));
    }
    detail::require(!layout.empty(), "torch binding: the module has no parameters");
    return layout;
  }

  /// A tensor over borrowed floats (decopt owns them); not an autograd view.
  static at::Tensor borrow(float* data, at::IntArrayRef sizes) {
    return ::torch::from_blob(data, sizes, ::torch::TensorOptions().dtype(::torch::kFloat32));
  }

  /// If autograd replaced a .grad instead of accumulating into it, copy it into the flat buffer.
  void gather_stray_gradients() {
    const auto segments = flat_.layout().segments();
    float* base = flat_.gradients().span().data();
    for (std::size_t k = 0; k < parameters_.size(); ++k) {
      at::Tensor& grad = parameters_[k].mutable_grad();
      float* slice = base + segments[k].offset;
      if (!grad.defined() || grad.data_ptr() == slice) continue;
      const at::Tensor dense = grad.detach().contiguous();
      std::memcpy(slice, dense.data_ptr<float>(), segments[k].size * sizeof(float));
      grad = borrow(slice, parameters_[k].sizes());
    }
  }

  FlatParameters flat_;
  std::vector<at::Tensor> parameters_;  // the module's parameter tensors, in layout order
};

/// Binds `module` (see ModuleBinding).
inline ModuleBinding bind(::torch::nn::Module& module, const BindOptions& options = {}) {
  return ModuleBinding(module, options);
}

}  // namespace decopt::torch
