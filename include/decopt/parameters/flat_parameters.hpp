// decopt/parameters/flat_parameters.hpp — one aligned flat buffer for a model of many tensors,
// and a second one for its gradients, with a span and an Eigen::Map view of every tensor.
//
// For users whose tensors live apart: copy each tensor in once (assign), then use the views as the
// model's parameters and gradients from then on. The model sees views, the optimizer and the
// network see one span (PyTorch FSDP's FlatParameter: torch/distributed/fsdp/_flat_param.py), so
// nothing is copied per round.
//
// Matrices are ROW-MAJOR, like a contiguous PyTorch tensor: a 2-D segment of shape [rows, cols]
// (a torch::nn::Linear weight is [out_features, in_features]) holds element (i, j) at
// offset + i·cols + j, and matrix() is an Eigen::Map of a RowMajor matrix over exactly those floats.
// vector() views any segment as its flattened, row-major (outermost dimension first) floats.
//
// Both buffers are aligned to max(64 bytes, the layout's alignment), so with the default
// alignment of 16 floats every tensor starts on a cache line. They start zero, padding included.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "decopt/core/error.hpp"
#include "decopt/parameters/layout.hpp"

namespace decopt {

/// A row-major float matrix: the element order of a contiguous PyTorch tensor.
using RowMajorMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/**
 * @brief A buffer of a ParameterLayout seen tensor by tensor: a span, an Eigen vector and (for
 * 2-D segments) a row-major Eigen matrix over each segment, all aliasing the buffer.
 *
 * A non-owning view (cheap to copy): the layout and the buffer must outlive it.
 * @tparam T  float, or const float for a read-only view
 */
template <class T>
requires std::is_same_v < std::remove_const_t<T>,
float > class FlatView {
 public:
  using VectorMap =
      Eigen::Map<std::conditional_t<std::is_const_v<T>, const Eigen::VectorXf, Eigen::VectorXf>>;
  using MatrixMap =
      Eigen::Map<std::conditional_t<std::is_const_v<T>, const RowMajorMatrixXf, RowMajorMatrixXf>>;

  /// @throws ConfigError unless the buffer has exactly layout.size() floats
  FlatView(const ParameterLayout& layout, std::span<T> buffer) : layout_(&layout), buffer_(buffer) {
    layout.require_buffer(buffer.size());
  }
  /// A read-only view of a writable one.
  operator FlatView<const float>() const noexcept requires(!std::is_const_v<T>) {
    return FlatView<const float>(*layout_, buffer_);
  }

  [[nodiscard]] const ParameterLayout& layout() const noexcept { return *layout_; }
  /// The whole buffer, padding included.
  [[nodiscard]] std::span<T> span() const noexcept { return buffer_; }
  /// The floats of segment `name`. @throws ConfigError for an unknown name
  [[nodiscard]] std::span<T> view(std::string_view name) const {
    return layout_->segment(name).slice(buffer_);
  }
  /// Segment `name` as a column vector of its flattened floats. @throws ConfigError for an unknown name
  [[nodiscard]] VectorMap vector(std::string_view name) const {
    const std::span<T> s = view(name);
    return VectorMap(s.data(), static_cast<Eigen::Index>(s.size()));
  }
  /// The 2-D segment `name` as a row-major [rows, cols] matrix.
  /// @throws ConfigError for an unknown name or a segment that is not 2-D
  [[nodiscard]] MatrixMap matrix(std::string_view name) const {
    const Segment& segment = layout_->segment(name);
    if (segment.shape.size() != 2)
      throw ConfigError("segment '" + segment.name + "' has " + std::to_string(segment.shape.size()) +
                        " dimensions, matrix() needs 2 (use vector() or view())");
    return MatrixMap(segment.slice(buffer_).data(), static_cast<Eigen::Index>(segment.shape[0]),
                     static_cast<Eigen::Index>(segment.shape[1]));
  }
  /// Copies `values` (row-major, as a contiguous PyTorch tensor holds them) into segment `name`.
  /// @throws ConfigError for an unknown name or a size other than the segment's
  void assign(std::string_view name, std::span<const float> values) const requires(!std::is_const_v<T>) {
    const std::span<float> s = view(name);
    if (values.size() != s.size())
      throw ConfigError("segment '" + std::string(name) + "' has " + std::to_string(s.size()) +
                        " floats, got " + std::to_string(values.size()));
    std::copy(values.begin(), values.end(), s.begin());
  }

 private:
  const ParameterLayout* layout_;
  std::span<T> buffer_;
};

/**
 * @brief Owns a model's parameters and gradients as two aligned flat buffers of one layout.
 *
 * Move-only (a copy would silently leave the model's views on the old buffers). Moving keeps every
 * span, Map and FlatView valid: the buffers and the layout are on the heap and move with it.
 */
class FlatParameters {
 public:
  /// @throws ConfigError for a layout without segments
  explicit FlatParameters(ParameterLayout layout)
      : layout_(std::make_unique<const ParameterLayout>(std::move(layout))),
        alignment_bytes_(std::max<std::size_t>(kMinAlignmentBytes, layout_->alignment() * sizeof(float))),
        parameters_(allocate_zeroed(layout_->size(), alignment_bytes_)),
        gradients_(allocate_zeroed(layout_->size(), alignment_bytes_)) {}

  FlatParameters(FlatParameters&&) noexcept = default;
  FlatParameters& operator=(FlatParameters&&) noexcept = default;
  FlatParameters(const FlatParameters&) = delete;
  FlatParameters& operator=(const FlatParameters&) = delete;

  [[nodiscard]] const ParameterLayout& layout() const noexcept { return *layout_; }
  /// Floats per buffer, padding included.
  [[nodiscard]] std::size_t size() const noexcept { return layout_->size(); }
  /// Bytes both buffers are aligned to: max(64, 4 · layout().alignment()).
  [[nodiscard]] std::size_t alignment_bytes() const noexcept { return alignment_bytes_; }

  /// The parameter buffer x, tensor by tensor.
  [[nodiscard]] FlatView<float> parameters() { return {*layout_, {parameters_.get(), size()}}; }
  [[nodiscard]] FlatView<const float> parameters() const { return {*layout_, {parameters_.get(), size()}}; }
  /// The gradient buffer (same layout), tensor by tensor.
  [[nodiscard]] FlatView<float> gradients() { return {*layout_, {gradients_.get(), size()}}; }
  [[nodiscard]] FlatView<const float> gradients() const { return {*layout_, {gradients_.get(), size()}}; }

  // Shorthands for the parameter buffer.
  /// The whole parameter buffer: what the optimizer is built over.
  [[nodiscard]] std::span<float> span() noexcept { return {parameters_.get(), size()}; }
  [[nodiscard]] std::span<const float> span() const noexcept { return {parameters_.get(), size()}; }
  [[nodiscard]] std::span<float> view(std::string_view name) { return parameters().view(name); }
  [[nodiscard]] std::span<const float> view(std::string_view name) const { return parameters().view(name); }
  [[nodiscard]] FlatView<float>::VectorMap vector(std::string_view name) { return parameters().vector(name); }
  [[nodiscard]] FlatView<const float>::VectorMap vector(std::string_view name) const {
    return parameters().vector(name);
  }
  [[nodiscard]] FlatView<float>::MatrixMap matrix(std::string_view name) { return parameters().matrix(name); }
  [[nodiscard]] FlatView<const float>::MatrixMap matrix(std::string_view name) const {
    return parameters().matrix(name);
  }
  /// Copies one tensor's values into the parameter buffer (once, at set-up).
  void assign(std::string_view name, std::span<const float> values) { parameters().assign(name, values); }

  /// Sets the whole gradient buffer to zero (padding included).
  void zero_gradients() noexcept { std::fill_n(gradients_.get(), size(), 0.0f); }

 private:
  static constexpr std::size_t kMinAlignmentBytes = 64;  // a cache line

  struct AlignedDelete {
    std::size_t alignment;
    void operator()(float* p) const noexcept { ::operator delete[](p, std::align_val_t{alignment}); }
  };
  using Buffer = std::unique_ptr<float[], AlignedDelete>;

  static Buffer allocate_zeroed(std::size_t floats, std::size_t alignment) {
    detail::require(floats > 0, "FlatParameters: the parameter layout has no segments");
    auto* p = static_cast<float*>(::operator new[](floats * sizeof(float), std::align_val_t{alignment}));
    std::fill_n(p, floats, 0.0f);
    return Buffer(p, AlignedDelete{alignment});
  }

  std::unique_ptr<const ParameterLayout> layout_;
  std::size_t alignment_bytes_;
  Buffer parameters_;
  Buffer gradients_;
};

}  // namespace decopt
