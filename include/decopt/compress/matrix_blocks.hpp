// decopt/compress/matrix_blocks.hpp — where the matrices are inside a flat parameter vector, for
// compressors that work on matrices (low rank: PowerSGD's P Qᵀ).
//
// The optimizer's layout constructor hands a compressor that has set_matrix_blocks(blocks) one
// block per tensor of two or more dimensions, viewed as PyTorch's `tensor.view(shape[0], -1)`:
// rows = shape[0], cols = the product of the other dimensions, row-major at `offset`. Vectors,
// scalars and padding are in no block.
#pragma once

#include <cstddef>

namespace decopt {

/// A rows × cols row-major matrix of the flat vector, starting at `offset` (in floats).
struct MatrixBlock {
  std::size_t offset = 0;
  std::size_t rows = 0;
  std::size_t cols = 0;
  [[nodiscard]] std::size_t size() const noexcept { return rows * cols; }
  friend bool operator==(const MatrixBlock&, const MatrixBlock&) = default;
};

}  // namespace decopt
