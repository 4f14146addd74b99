// decopt/compress/scale_blocks.hpp — blocks of a message's coordinates that a quantizer scales
// by a norm of their own (layer-wise compression: one σ per tensor instead of one per model).
#pragma once

#include <cstddef>

namespace decopt {

/// Coordinates [offset, offset + size) of a message, quantized with a scale σ of their own.
struct ScaleBlock {
  std::size_t offset = 0;
  std::size_t size = 0;
};

}  // namespace decopt
