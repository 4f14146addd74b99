// decopt/parameters/layout.hpp — named tensors over one node's contiguous float buffer.
//
// A model of many tensors is exchanged as ONE flat buffer, so one round still encodes one message
// over one span: the convention of PyTorch FSDP's FlatParameter (torch/distributed/fsdp/
// _flat_param.py) and of Horovod / DDP fusion buffers. The layout is the metadata that travels
// beside the buffer: for every tensor its name, shape, offset and size, and two settings —
//   * prox      whether the regulariser's prox applies (ℓ1 should hit weights, not biases or norms);
//   * own_scale whether the quantizer gives the segment a norm of its own (layer-wise compression).
// Shapes are kept so that shape-aware compressors (low rank) can use them.
//
// Offsets: segment k starts at the first multiple of alignment() at or after the end of segment
// k − 1 (alignment in floats, default 16 floats = 64 bytes, so that in a 64-byte aligned buffer
// every tensor starts on a cache line; alignment 1 packs the segments). The floats between two
// segments are padding: they are part of the buffer (size() counts them, the message carries
// them) and are always zero — FlatParameters creates them zero, SegmentedProx keeps them zero,
// and every decopt compressor maps an exact zero to an exact zero. There is no padding after the
// last segment: size() is where it ends.
//
// Checkpoints record the layout (save / load) and refuse a different one (require_same), naming
// the first segment that differs. Binary form, little-endian (decopt/core/bytes.hpp):
//   u32 magic "PLAY" · varint alignment · varint segment count · per segment:
//   varint name length, name bytes · varint rank · rank × i64 dimensions · u64 offset ·
//   u8 flags (bit 0 prox, bit 1 own_scale)
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"
#include "decopt/optimizer/checkpoint.hpp"

namespace decopt {

/// Per-segment settings of a ParameterLayout.
struct SegmentOptions {
  bool prox = true;        ///< the regulariser's prox applies to this segment (false for biases, norms)
  bool own_scale = false;  ///< the quantizer scales this segment by its own norm (layer-wise compression)

  /// The options an adapter gives a tensor it knows only by shape: the prox for matrices and
  /// kernels (≥ 2 dimensions), none for biases, norm scales (1-D) and scalars — the rule minGPT
  /// and nanoGPT use to exclude tensors from weight decay (`p.dim() >= 2`).
  static SegmentOptions for_shape(std::span<const std::int64_t> shape) noexcept {
    return {.prox = shape.size() >= 2};
  }

  friend bool operator==(const SegmentOptions&, const SegmentOptions&) = default;
};

/// One named tensor inside the flat buffer: floats [offset, offset + size).
struct Segment {
  std::string name;
  std::size_t offset = 0;           ///< in floats, from the start of the buffer
  std::size_t size = 0;             ///< in floats: the product of the dimensions (1 for a scalar)
  std::vector<std::int64_t> shape;  ///< dimensions, outermost first (PyTorch's order); {} is a scalar
  SegmentOptions options;

  [[nodiscard]] std::size_t end() const noexcept { return offset + size; }

  /// This segment's part of a buffer of the layout (x, x̂, a gradient...). ConfigError when the
  /// buffer is too short to hold it.
  template <class T>
  [[nodiscard]] std::span<T> slice(std::span<T> buffer) const {
    if (buffer.size() < end()) [[unlikely]]
      throw ConfigError("segment '" + name + "' ends at float " + std::to_string(end()) +
                        " but the buffer has " + std::to_string(buffer.size()));
    return buffer.subspan(offset, size);
  }

  friend bool operator==(const Segment&, const Segment&) = default;
};

/**
 * @brief Named segments (name, offset, size, shape, options) over one contiguous float buffer.
 *
 * A value type: build it once with add(), give copies to FlatParameters, SegmentedProx and the
 * optimizer. Segments are laid out in the order they are added.
 */
class ParameterLayout {
 public:
  /// 16 floats = 64 bytes: one cache line.
  static constexpr std::size_t kDefaultAlignment = 16;
  /// The largest alignment accepted (1024 floats = 4 KiB, a page).
  static constexpr std::size_t kMaxAlignment = 1024;
  /// The largest buffer a layout may describe, in floats (so byte sizes and Eigen indices fit).
  static constexpr std::size_t kMaxFloats =
      static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max()) / sizeof(float) / 2;

  /**
   * @param alignment  segment offsets are multiples of this many floats: a power of two in
   *                   [1, kMaxAlignment]; 1 packs the segments without padding
   * @throws ConfigError for any other alignment
   */
  explicit ParameterLayout(std::size_t alignment = kDefaultAlignment) : alignment_(alignment) {
    const std::string problem = alignment_problem(alignment);
    if (!problem.empty()) throw ConfigError(problem);
  }

  /**
   * Appends a segment at the next aligned offset.
   * @param name   unique, non-empty (e.g. PyTorch's "conv1.weight")
   * @param shape  dimensions, each ≥ 1; {} is a scalar of one float
   * @param opts   prox / own_scale (default: prox applies, shared scale)
   * @return *this, so calls chain
   * @throws ConfigError for an empty or duplicate name, a dimension ≤ 0, or a buffer that would
   *         exceed kMaxFloats
   */
  ParameterLayout& add(std::string name, std::vector<std::int64_t> shape, SegmentOptions opts = {}) {
    Segment segment;
    const std::string problem = place(name, shape, segment);
    if (!problem.empty()) throw ConfigError(problem);
    segment.name = std::move(name);
    segment.shape = std::move(shape);
    segment.options = opts;
    append(std::move(segment));
    return *this;
  }

  /// Total floats of the buffer, padding between segments included.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// Floats that belong to segments (size() minus padding).
  [[nodiscard]] std::size_t parameter_count() const noexcept { return parameter_count_; }
  [[nodiscard]] std::size_t alignment() const noexcept { return alignment_; }
  [[nodiscard]] bool empty() const noexcept { return segments_.empty(); }
  [[nodiscard]] std::span<const Segment> segments() const noexcept { return segments_; }

  /// The segment called `name`, or nullptr.
  [[nodiscard]] const Segment* find(std::string_view name) const noexcept {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &segments_[it->second];
  }

  /// The segment called `name`. @throws ConfigError when there is none.
  [[nodiscard]] const Segment& segment(std::string_view name) const {
    if (const Segment* s = find(name)) return *s;
    throw ConfigError("parameter layout has no segment named '" + std::string(name) + "'");
  }

  /// Appends the binary form (see the header comment).
  void save(std::vector<std::byte>& out) const {
    put_le<std::uint32_t>(out, kMagic);
    put_varint(out, alignment_);
    put_varint(out, segments_.size());
    for (const Segment& s : segments_) {
      checkpoint::put_string(out, s.name);
      put_varint(out, s.shape.size());
      for (std::int64_t dim : s.shape) put_le<std::int64_t>(out, dim);
      put_le<std::uint64_t>(out, s.offset);
      put_le<std::uint8_t>(out, flags_of(s.options));
    }
  }

  /**
   * Reads a layout written by save(). Every count is checked against the bytes that remain before
   * anything is allocated, and the recorded offsets against the ones the shapes imply.
   * @throws DecodeError for truncated or malformed bytes (bad magic, empty or duplicate names,
   *         bad dimensions, unknown flags, offsets that do not follow from the shapes)
   */
  [[nodiscard]] static ParameterLayout load(ByteReader& in) {
    detail::require_decodable(in.get_le<std::uint32_t>() == kMagic, "parameter layout expected (bad magic)");
    const std::uint64_t alignment = in.get_varint();
    const std::string alignment_error = alignment_problem(alignment);
    if (!alignment_error.empty()) throw DecodeError(alignment_error);
    ParameterLayout layout(static_cast<std::size_t>(alignment));
    const std::uint64_t count = in.get_varint();
    detail::require_decodable(count <= in.remaining() / kMinSegmentBytes,
                              "parameter layout truncated: too many segments");
    for (std::uint64_t k = 0; k < count; ++k) layout.append(read_segment(in, layout));
    return layout;
  }

  /// A 64-bit hash (FNV-1a) of the binary form: alignment, names, shapes, offsets and options.
  [[nodiscard]] std::uint64_t fingerprint() const {
    std::vector<std::byte> bytes;
    save(bytes);
    return checkpoint::fnv1a64(bytes);
  }

  /// "" when `other` is the same layout; otherwise where they first differ, this layout's side first.
  [[nodiscard]] std::string difference(const ParameterLayout& other) const {
    if (alignment_ != other.alignment_)
      return "alignment " + std::to_string(alignment_) + " floats vs " + std::to_string(other.alignment_);
    const std::size_t common = std::min(segments_.size(), other.segments_.size());
    for (std::size_t k = 0; k < common; ++k)
      if (!(segments_[k] == other.segments_[k]))
        return "segment " + std::to_string(k) + ": " + describe(segments_[k]) + " vs " +
               describe(other.segments_[k]);
    if (segments_.size() > common)
      return "segment " + std::to_string(common) + ": " + describe(segments_[common]) + " vs none";
    if (other.segments_.size() > common)
      return "segment " + std::to_string(common) + ": none vs " + describe(other.segments_[common]);
    return {};
  }

  /**
   * Refuses a different layout, e.g. the one a checkpoint recorded.
   * @param what  what this layout belongs to, for the message ("checkpoint")
   * @throws ConfigError naming the first differing segment (this layout's side first)
   */
  void require_same(const ParameterLayout& expected, std::string_view what) const {
    const std::string diff = difference(expected);
    if (!diff.empty())
      throw ConfigError(std::string(what) + " has another parameter layout than expected, at " + diff);
  }

  friend bool operator==(const ParameterLayout& a, const ParameterLayout& b) {
    return a.alignment_ == b.alignment_ && a.segments_ == b.segments_;
  }

  /// True when every padding float of `buffer` (a buffer of this layout) is +0 or −0.
  [[nodiscard]] bool padding_is_zero(std::span<const float> buffer) const {
    require_buffer(buffer.size());
    bool zero = true;
    for_each_padding([&](std::size_t begin, std::size_t end) {
      for (std::size_t k = begin; k < end; ++k) zero = zero && buffer[k] == 0.0f;
    });
    return zero;
  }

  /// Sets every padding float of `buffer` (a buffer of this layout) to +0.
  void zero_padding(std::span<float> buffer) const {
    require_buffer(buffer.size());
    for_each_padding([&](std::size_t begin, std::size_t end) {
      for (std::size_t k = begin; k < end; ++k) buffer[k] = 0.0f;
    });
  }

  /// Calls f(begin, end) for every run of padding floats [begin, end), in order.
  template <class F>
  void for_each_padding(F&& f) const {
    std::size_t previous_end = 0;
    for (const Segment& s : segments_) {
      if (s.offset > previous_end) f(previous_end, s.offset);
      previous_end = s.end();
    }
  }

  /// ConfigError unless a buffer of `floats` floats has exactly this layout's size.
  void require_buffer(std::size_t floats) const {
    if (floats != size_) [[unlikely]]
      throw ConfigError("buffer of " + std::to_string(floats) +
                        " floats does not match the parameter layout's " + std::to_string(size_));
  }

 private:
  static constexpr std::uint32_t kMagic = 0x59414c50;  // "PLAY" little-endian
  // name (≥ 1 length byte + ≥ 1 char), rank (≥ 1 byte), offset (8), flags (1)
  static constexpr std::size_t kMinSegmentBytes = 12;

  static std::string alignment_problem(std::uint64_t alignment) {
    if (alignment >= 1 && alignment <= kMaxAlignment && (alignment & (alignment - 1)) == 0) return {};
    return "parameter layout: alignment must be a power of two in [1, " + std::to_string(kMaxAlignment) +
           "] floats, got " + std::to_string(alignment);
  }

  static std::uint8_t flags_of(SegmentOptions o) noexcept {
    return static_cast<std::uint8_t>((o.prox ? 1u : 0u) | (o.own_scale ? 2u : 0u));
  }

  static std::string shape_text(std::span<const std::int64_t> shape) {
    std::string text = "[";
    for (std::size_t k = 0; k < shape.size(); ++k) text += (k ? ", " : "") + std::to_string(shape[k]);
    return text + "]";
  }

  static std::string describe(const Segment& s) {
    std::string text = "'" + s.name + "' " + shape_text(s.shape) + " at offset " + std::to_string(s.offset);
    text += s.options.prox ? " (prox" : " (no prox";
    text += s.options.own_scale ? ", own scale)" : ")";
    return text;
  }

  /// Checks a new segment and computes its offset and size into `segment`; returns the problem,
  /// or "" when it fits (shared by add, which throws ConfigError, and load, which throws DecodeError).
  std::string place(std::string_view name, std::span<const std::int64_t> shape, Segment& segment) const {
    if (name.empty()) return "parameter layout: a segment name is empty";
    if (index_.contains(name)) return "parameter layout: duplicate segment name '" + std::string(name) + "'";
    std::size_t size = 1;
    for (std::size_t k = 0; k < shape.size(); ++k) {
      if (shape[k] < 1)
        return "parameter layout: segment '" + std::string(name) + "' " + shape_text(shape) +
               " has dimension " + std::to_string(k) + " = " + std::to_string(shape[k]) +
               "; every dimension must be >= 1";
      if (static_cast<std::uint64_t>(shape[k]) > kMaxFloats / size) return too_large(name, shape);
      size *= static_cast<std::size_t>(shape[k]);
    }
    const std::size_t offset =
        (size_ + alignment_ - 1) / alignment_ * alignment_;  // size_ ≤ kMaxFloats: no overflow
    if (offset > kMaxFloats || size > kMaxFloats - offset) return too_large(name, shape);
    segment.offset = offset;
    segment.size = size;
    return {};
  }

  static std::string too_large(std::string_view name, std::span<const std::int64_t> shape) {
    return "parameter layout: segment '" + std::string(name) + "' " + shape_text(shape) +
           " makes the buffer larger than " + std::to_string(kMaxFloats) + " floats";
  }

  /// One segment of a saved layout, placed after the segments `layout` already has.
  static Segment read_segment(ByteReader& in, const ParameterLayout& layout) {
    Segment segment;
    std::string name = checkpoint::get_string(in);
    const std::uint64_t rank = in.get_varint();
    detail::require_decodable(rank <= in.remaining() / sizeof(std::int64_t),
                              "parameter layout truncated inside a shape");
    std::vector<std::int64_t> shape(static_cast<std::size_t>(rank));
    for (auto& dim : shape) dim = in.get_le<std::int64_t>();
    const std::string problem = layout.place(name, shape, segment);
    if (!problem.empty()) throw DecodeError(problem);
    detail::require_decodable(in.get_le<std::uint64_t>() == segment.offset,
                              "parameter layout: a recorded offset does not follow from the shapes");
    const auto flags = in.get_le<std::uint8_t>();
    detail::require_decodable(flags <= 3, "parameter layout: unknown segment flags");
    segment.name = std::move(name);
    segment.shape = std::move(shape);
    segment.options = {.prox = (flags & 1u) != 0, .own_scale = (flags & 2u) != 0};
    return segment;
  }

  void append(Segment segment) {
    size_ = segment.end();
    parameter_count_ += segment.size;
    index_.emplace(segment.name, segments_.size());
    segments_.push_back(std::move(segment));
  }

  std::size_t alignment_;
  std::size_t size_ = 0;
  std::size_t parameter_count_ = 0;
  std::vector<Segment> segments_;
  std::map<std::string, std::size_t, std::less<>> index_;  // name → position in segments_
};

}  // namespace decopt
