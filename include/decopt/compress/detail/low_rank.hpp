// decopt/compress/detail/low_rank.hpp — the kernels of PowerSGD (decopt/compress/power_sgd.hpp):
// the plan of which matrices are sent as factors, Gram–Schmidt orthogonalisation, and the
// reconstruction P Qᵀ that sender and receivers compute with the same float operations.
// Internal: include "decopt/compress/compress.hpp" instead.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "decopt/compress/matrix_blocks.hpp"
#include "decopt/compress/message.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/crc32c.hpp"
#include "decopt/core/error.hpp"

namespace decopt::detail {

/// A matrix block sent as rank-`rank` factors P (rows × rank) and Q (cols × rank), and where its
/// warm-start Q lives in the compressor's state.
struct LowRankPlan {
  MatrixBlock block;
  std::size_t rank = 0;
  std::size_t warm_offset = 0;  ///< first float of this block's Q in the warm-start array
  [[nodiscard]] std::size_t factor_floats() const noexcept { return (block.rows + block.cols) * rank; }
};

/// Whether rank-r factors are smaller than the block itself: (rows + cols)·r < rows·cols. A block
/// they would not shrink is sent dense (exactly, and never larger); this also covers every
/// r ≥ min(rows, cols), so the rank never needs clamping.
inline bool low_rank_pays(const MatrixBlock& b, std::size_t r) noexcept {
  __extension__ using u128 = unsigned __int128;
  return static_cast<u128>(b.rows + b.cols) * r < static_cast<u128>(b.rows) * b.cols;
}

/// The blocks sorted by offset; ConfigError for an empty list, an empty block, overlapping
/// blocks or one whose end overflows.
inline std::vector<MatrixBlock> sorted_matrix_blocks(std::span<const MatrixBlock> blocks, const char* who) {
  const std::string prefix = std::string(who) + "::set_matrix_blocks: ";
  require(!blocks.empty(), prefix + "no matrix block (a layout of 1-D segments only has nothing to compress at low rank)");
  std::vector<MatrixBlock> sorted(blocks.begin(), blocks.end());
  std::sort(sorted.begin(), sorted.end(), [](const MatrixBlock& a, const MatrixBlock& b) { return a.offset < b.offset; });
  constexpr auto message_limit = static_cast<std::size_t>(message::max_dimension);
  std::size_t end = 0;
  for (const MatrixBlock& b : sorted) {
    require(b.rows >= 1 && b.cols >= 1, prefix + "a block has zero rows or columns");
    require(b.rows <= message_limit / b.cols && b.offset <= message_limit - b.rows * b.cols,
            prefix + "a block ends beyond the largest message dimension");
    require(b.offset >= end, prefix + "blocks overlap (block at offset " + std::to_string(b.offset) + ")");
    end = b.offset + b.rows * b.cols;
  }
  return sorted;
}

/// A 32-bit fingerprint of (rank, blocks): sender and receiver must have the same, or the factors
/// would be read as matrices of other shapes.
inline std::uint32_t low_rank_fingerprint(std::size_t rank, std::span<const MatrixBlock> sorted) {
  std::vector<std::byte> bytes;
  put_le<std::uint64_t>(bytes, rank);
  for (const MatrixBlock& b : sorted) {
    put_le<std::uint64_t>(bytes, b.offset);
    put_le<std::uint64_t>(bytes, b.rows);
    put_le<std::uint64_t>(bytes, b.cols);
  }
  return decopt::crc32c(std::span<const std::byte>(bytes));
}

/// Calls f(begin, end) for every maximal range of [0, d) outside the low-rank blocks (ascending).
template <class F>
void for_each_dense_range(std::span<const LowRankPlan> plans, std::size_t d, F&& f) {
  std::size_t at = 0;
  for (const LowRankPlan& p : plans) {
    if (p.block.offset > at) f(at, p.block.offset);
    at = p.block.offset + p.block.size();
  }
  if (d > at) f(at, d);
}

/// Orthonormalises the `rank` columns of the column-major rows × rank matrix p in place by
/// modified Gram–Schmidt (as PyTorch's powerSGD_hook), with norms and dot products accumulated
/// in double. A column that is exactly zero after the projections stays zero: the reconstruction
/// then has no component along it, where PyTorch's ε would divide noise by ε.
inline void orthonormalize_columns(float* p, std::size_t rows, std::size_t rank) noexcept {
  for (std::size_t c = 0; c < rank; ++c) {
    float* col = p + c * rows;
    double norm2 = 0.0;
    for (std::size_t i = 0; i < rows; ++i) norm2 += static_cast<double>(col[i]) * col[i];
    if (norm2 == 0.0) continue;
    const auto inv = static_cast<float>(1.0 / std::sqrt(norm2));
    for (std::size_t i = 0; i < rows; ++i) col[i] *= inv;
    for (std::size_t c2 = c + 1; c2 < rank; ++c2) {
      float* other = p + c2 * rows;
      double dot = 0.0;
      for (std::size_t i = 0; i < rows; ++i) dot += static_cast<double>(col[i]) * other[i];
      const auto proj = static_cast<float>(dot);
      for (std::size_t i = 0; i < rows; ++i) other[i] -= proj * col[i];
    }
  }
}

/// out[j] = Σ_c coeff[c · stride] · q[c · cols + j] for j < cols, the c-sum in ascending order
/// from c = 0: row i of P Qᵀ for P column-major (coeff = &P[i], stride = rows) and Q column-major
/// cols × rank. Ranks up to 4 are one pass over the row (measured 2.5× faster at rank 4 than a
/// pass per column), larger ones a pass per column; the sum is the same either way.
template <std::size_t R>
void low_rank_row_fixed(const float* coeff, std::size_t stride, const float* q, std::size_t cols, float* out) noexcept {
  float c[R];
  for (std::size_t k = 0; k < R; ++k) c[k] = coeff[k * stride];
  for (std::size_t j = 0; j < cols; ++j) {
    float sum = c[0] * q[j];
    for (std::size_t k = 1; k < R; ++k) sum += c[k] * q[k * cols + j];
    out[j] = sum;
  }
}

/// Out of line on purpose: the sender's reconstruction and every receiver's run this same machine
/// code, so no inlining context can contract or reorder the operations differently — that is what
/// makes decode bit-exact with the sender's q.
[[gnu::noinline]] inline void low_rank_row(const float* coeff, std::size_t stride, const float* q, std::size_t cols,
                                           std::size_t rank, float* out) noexcept {
  switch (rank) {
    case 1: low_rank_row_fixed<1>(coeff, stride, q, cols, out); return;
    case 2: low_rank_row_fixed<2>(coeff, stride, q, cols, out); return;
    case 3: low_rank_row_fixed<3>(coeff, stride, q, cols, out); return;
    case 4: low_rank_row_fixed<4>(coeff, stride, q, cols, out); return;
    default: break;
  }
  low_rank_row_fixed<4>(coeff, stride, q, cols, out);
  for (std::size_t c = 4; c < rank; ++c) {
    const float cc = coeff[c * stride];
    const float* qc = q + c * cols;
    for (std::size_t j = 0; j < cols; ++j) out[j] += cc * qc[j];
  }
}

/// Whether weight · P Qᵀ stays finite with room to spare: rank · max|P| · max|Q| · |weight| below
/// FLT_MAX / 4 (in double, so the bound itself cannot overflow). Encode refuses factors outside it
/// (ConfigError), decode refuses them (DecodeError), so every accepted message adds finite values.
inline bool low_rank_bounded(std::size_t rank, float max_p, float max_q, float weight) noexcept {
  const double bound = static_cast<double>(rank) * max_p * max_q * std::fabs(static_cast<double>(weight));
  return bound < 0x1.fffffep+127 / 4.0;
}

}  // namespace decopt::detail
