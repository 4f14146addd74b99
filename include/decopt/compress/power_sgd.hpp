// decopt/compress/power_sgd.hpp — PowerSGD: rank-r compression of every matrix of the model by
// one warm-started power iteration.
//
// Vogels, Karimireddy & Jaggi, "PowerSGD: Practical Low-Rank Gradient Compression for Distributed
// Optimization", NeurIPS 2019; decentralized, as here, in "Practical Low-Rank Communication
// Compression in Decentralized Deep Learning" (PowerGossip), NeurIPS 2020. For a rows × cols
// matrix M of the vector (the optimizer's residual x − x̂, so SyncStep's error memory is
// PowerSGD's error feedback) and the Q kept from the previous encode:
//
//   P = M Q            rows × r
//   P ← orth(P)        modified Gram–Schmidt (detail::orthonormalize_columns)
//   Q = Mᵀ P           cols × r, sent with P, and kept as the next encode's warm start
//   q = P Qᵀ           = P Pᵀ M, the projection of M on the span of P: what receivers decode
//
// Each node compresses its own residual and sends its own factors (no all-reduce of P and Q as in
// data-parallel PowerSGD), so the warm start is each node's own; it starts from N(0, 1) entries
// drawn from bind_node's seed and rank (deterministic) and is checkpointed (save_state/load_state).
// A column of the new Q that is exactly zero (a zero residual) keeps the previous one, so that a
// round of zero residual does not turn the power iteration off for good.
//
// The matrices come from set_matrix_blocks (the optimizer's layout constructor). Without them
// encode throws ConfigError: there is no shape to compress at low rank, and sending the vector
// dense under the name PowerSGD would be a silent trap. A matrix that rank r would not shrink,
// (rows + cols)·r ≥ rows·cols, is sent dense (this covers r ≥ min(rows, cols): no clamping), as
// are the coordinates in no matrix (biases, norms, padding).
//
// Message (the frame of message.hpp: magic, version, ids, varint d, …, CRC-32C):
//   varint r · varint count of low-rank blocks · u32 fingerprint of (r, blocks) ·
//   per low-rank block in offset order: P (rows·r float32, column-major), Q (cols·r, column-major) ·
//   the dense coordinates' float32 values in ascending order
// The receiver knows the shapes from its own blocks and refuses a message of another r, block
// list (fingerprint) or dimension; the payload length then follows, so decode is O(B + d) and
// allocates only what the message's own length bounds.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "decopt/compress/detail/float_payload.hpp"
#include "decopt/compress/detail/low_rank.hpp"
#include "decopt/compress/detail/pipeline.hpp"
#include "decopt/compress/matrix_blocks.hpp"
#include "decopt/compress/message.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/crc32c.hpp"
#include "decopt/core/eigen.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/finite.hpp"
#include "decopt/core/rng.hpp"

namespace decopt {

namespace message::ids {
/// Header ids of PowerSGD messages (sparsifier byte; quantizer identity, coder raw).
inline constexpr std::uint8_t power_sgd = 16;
}  // namespace message::ids

/**
 * @brief Rank-r PowerSGD over the matrix blocks of the vector; the other coordinates dense.
 *
 * A top-level compressor (a ResidualCompressor with the optional hooks set_matrix_blocks,
 * bind_node, save_state and load_state of decopt/compress/hooks.hpp). Biased (unbiased = false)
 * and lossy: use it with a step that keeps the error memory (SyncStep, OverlappedStep).
 *
 * Thread safety: encode mutates the warm start (one compressor per sender); decode_add is const
 * and uses only local buffers.
 */
class PowerSGD {
 public:
  static constexpr bool unbiased = false;
  static constexpr bool lossless = false;
  static std::string name() { return "PowerSGD"; }

  /// The largest rank accepted (so sizes stay far from overflow).
  static constexpr int max_rank = 1 << 16;

  /**
   * @param rank r, the number of columns of P and Q: in [1, max_rank]
   * @throws ConfigError for a rank outside that range
   */
  explicit PowerSGD(int rank = 1) : rank_(static_cast<std::size_t>(rank)) {
    detail::require(rank >= 1 && rank <= max_rank,
                    "PowerSGD: rank must be in [1, " + std::to_string(max_rank) + "], got " + std::to_string(rank));
    fingerprint_ = detail::low_rank_fingerprint(rank_, {});
  }

  [[nodiscard]] int rank() const noexcept { return static_cast<int>(rank_); }

  /**
   * The matrices of the vector: each rows × cols row-major at its offset (PyTorch's
   * view(shape[0], -1)); resets the warm start.
   * @throws ConfigError for an empty list, an empty block, overlapping blocks
   */
  void set_matrix_blocks(std::span<const MatrixBlock> blocks) {
    std::vector<MatrixBlock> sorted = detail::sorted_matrix_blocks(blocks, "PowerSGD");
    std::vector<detail::LowRankPlan> plans;
    std::size_t warm = 0;
    for (const MatrixBlock& b : sorted) {
      if (!detail::low_rank_pays(b, rank_)) continue;
      plans.push_back({b, rank_, warm});
      warm += b.cols * rank_;
    }
    fingerprint_ = detail::low_rank_fingerprint(rank_, sorted);
    blocks_ = std::move(sorted);
    plans_ = std::move(plans);
    warm_floats_ = warm;
    warm_start_.clear();
  }

  /// This node's rank and the network seed: the warm start's first draw (resets it).
  void bind_node(int rank, int /*nodes*/, std::uint64_t seed) {
    node_ = static_cast<std::uint64_t>(rank);
    seed_ = seed;
    warm_start_.clear();
  }

  /// The blocks sent as factors, in offset order (those that rank r shrinks).
  [[nodiscard]] std::span<const detail::LowRankPlan> low_rank_blocks() const noexcept { return plans_; }

  /**
   * Compresses v and appends one message; q receives the exact reconstruction receivers decode.
   * Advances the warm start. On a throw, `out`, q's meaning and the warm start are unchanged.
   * @throws ConfigError without matrix blocks, for q.size() != v.size(), a dimension outside
   *         [1, 2^32 − 2] or smaller than the blocks' end, a non-finite value in v, or factors
   *         too large for float (|q| near FLT_MAX)
   */
  void encode(std::span<const float> v, Rng& /*rng*/, std::vector<std::byte>& out, std::span<float> q) {
    detail::require(!blocks_.empty(),
                    "PowerSGD: no matrix blocks; construct the optimizer with a ParameterLayout (or call "
                    "set_matrix_blocks) so that PowerSGD knows the shapes it compresses");
    detail::require(q.size() == v.size(), "PowerSGD::encode: q.size() must equal v.size()");
    check_dimension_for_encode(v.size());
    detail::for_each_dense_range(plans_, v.size(), [&](std::size_t b, std::size_t e) {
      detail::require(all_finite(v.subspan(b, e - b)), detail::non_finite_input);
    });
    if (warm_start_.empty()) initialise_warm_start();
    factors_.resize(total_factor_floats());
    std::size_t at = 0;
    for (const detail::LowRankPlan& p : plans_) {
      power_iteration(p, v, std::span<float>(factors_).subspan(at, p.factor_floats()));
      at += p.factor_floats();
    }
    write_message(v, out);
    at = 0;
    for (const detail::LowRankPlan& p : plans_) {
      const float* pf = factors_.data() + at;
      reconstruct(p, pf, pf + p.block.rows * p.rank, q.data() + p.block.offset);
      keep_warm_start(p, pf + p.block.rows * p.rank);
      at += p.factor_floats();
    }
    detail::for_each_dense_range(plans_, v.size(),
                                 [&](std::size_t b, std::size_t e) { std::copy(v.begin() + b, v.begin() + e, q.begin() + b); });
  }

  /**
   * acc += weight · q for the q the message encodes.
   * @throws DecodeError for a truncated, corrupted or foreign message (another pipeline, rank,
   *         block list or dimension than this compressor's and acc.size()), a non-finite value, or
   *         factors whose product with weight would not be finite; acc is then unchanged
   * @throws ConfigError for a non-finite weight, or a compressor without matrix blocks
   */
  void decode_add(std::span<const std::byte> msg, float weight, std::span<float> acc) const {
    detail::require(std::isfinite(weight), "PowerSGD::decode_add: weight must be finite");
    detail::require(!blocks_.empty(), "PowerSGD::decode_add: no matrix blocks (set_matrix_blocks) to decode into");
    const message::Envelope envelope = message::open(msg);
    message::verify(envelope);
    ByteReader in(envelope.body);
    const std::uint64_t d = message::read_header(in, message::ids::power_sgd, message::ids::identity, message::ids::raw);
    if (d != acc.size()) throw DecodeError("PowerSGD: message dimension does not match the accumulator");
    if (blocks_end() > d) throw DecodeError("PowerSGD: message dimension is smaller than this compressor's matrix blocks");
    if (in.get_varint() != rank_) throw DecodeError("PowerSGD: message rank is not this compressor's");
    if (in.get_varint() != plans_.size()) throw DecodeError("PowerSGD: message's count of low-rank blocks is not this compressor's");
    if (in.get_le<std::uint32_t>() != fingerprint_) throw DecodeError("PowerSGD: message's matrix blocks are not this compressor's");
    const std::size_t floats = total_factor_floats() + dense_count(static_cast<std::size_t>(d));
    if (in.remaining() != floats * sizeof(float)) throw DecodeError("PowerSGD: payload has the wrong size");
    std::vector<float> values(floats);
    detail::read_floats_le(in.rest().data(), values);
    check_decodable(values, weight);
    add_decoded(values, weight, acc);
  }

  /// Appends the warm start (and what it belongs to): tag, rank, fingerprint, flag, floats.
  void save_state(std::vector<std::byte>& out) const {
    put_le<std::uint32_t>(out, state_tag);
    put_varint(out, rank_);
    put_le<std::uint32_t>(out, fingerprint_);
    put_le<std::uint8_t>(out, warm_start_.empty() ? 0 : 1);
    if (!warm_start_.empty()) {
      put_varint(out, warm_start_.size());
      detail::append_floats_le(out, warm_start_);
    }
  }

  /**
   * Reads what save_state wrote. Changes nothing when it throws.
   * @throws DecodeError for malformed bytes (tag, flag, truncation, a non-finite value)
   * @throws ConfigError for the state of another rank or block list
   */
  void load_state(ByteReader& in) {
    detail::require_decodable(in.get_le<std::uint32_t>() == state_tag, "PowerSGD state: bad tag");
    const std::uint64_t rank = in.get_varint();
    const std::uint32_t fingerprint = in.get_le<std::uint32_t>();
    detail::require(rank == rank_, "PowerSGD state: saved with rank " + std::to_string(rank) + ", this compressor has rank " +
                                       std::to_string(rank_));
    detail::require(fingerprint == fingerprint_, "PowerSGD state: saved over other matrix blocks than this compressor's");
    const auto flag = in.get_le<std::uint8_t>();
    detail::require_decodable(flag <= 1, "PowerSGD state: warm-start flag is not 0 or 1");
    std::vector<float> warm;
    if (flag == 1) {
      const std::uint64_t n = in.get_varint();
      detail::require(n == warm_floats_, "PowerSGD state: warm start of " + std::to_string(n) + " floats, expected " +
                                             std::to_string(warm_floats_));
      detail::require_decodable(n <= in.remaining() / sizeof(float), "PowerSGD state truncated");
      warm.resize(static_cast<std::size_t>(n));
      detail::read_floats_le(in.get_bytes(warm.size() * sizeof(float)).data(), warm);
      detail::require_decodable(detail::max_abs_bits(warm) < detail::infinity_bits, "PowerSGD state: non-finite warm start");
      detail::require_decodable(!warm.empty(), "PowerSGD state: empty warm start");
    }
    warm_start_ = std::move(warm);
  }

  /// The warm-start Q of every low-rank block, concatenated (cols × r column-major each); empty
  /// before the first encode.
  [[nodiscard]] std::span<const float> warm_start() const noexcept { return warm_start_; }

 private:
  static constexpr std::uint32_t state_tag = 0x44475350;  // "PSGD"
  using RowMajorMap = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
  using ColMajorMap = Eigen::Map<Eigen::MatrixXf>;
  using ConstColMajorMap = Eigen::Map<const Eigen::MatrixXf>;

  [[nodiscard]] std::size_t blocks_end() const noexcept { return blocks_.back().offset + blocks_.back().size(); }
  [[nodiscard]] std::size_t total_factor_floats() const noexcept {
    std::size_t n = 0;
    for (const detail::LowRankPlan& p : plans_) n += p.factor_floats();
    return n;
  }
  [[nodiscard]] std::size_t dense_count(std::size_t d) const noexcept {
    std::size_t n = 0;
    detail::for_each_dense_range(plans_, d, [&](std::size_t b, std::size_t e) { n += e - b; });
    return n;
  }

  void check_dimension_for_encode(std::size_t d) const {
    detail::require(d >= 1 && d <= message::max_dimension, "PowerSGD::encode: the dimension must be in [1, 2^32 - 2]");
    detail::require(d >= blocks_end(), "PowerSGD::encode: the vector (" + std::to_string(d) +
                                           " floats) ends before its matrix blocks (" + std::to_string(blocks_end()) + ")");
  }

  // N(0, 1) entries from (seed, node, block): the same on every run.
  void initialise_warm_start() {
    warm_start_.assign(warm_floats_, 0.0f);
    for (std::size_t b = 0; b < plans_.size(); ++b) {
      const detail::LowRankPlan& p = plans_[b];
      Rng rng = Rng::derive(seed_, {state_tag, node_, b});
      rng.fill_normal(std::span<float>(warm_start_).subspan(p.warm_offset, p.block.cols * p.rank), 1.0);
    }
  }

  // P = M Q_warm, orthonormalised; Q = Mᵀ P; both into `factors` (P then Q, column-major).
  // ConfigError when M holds a non-finite value (it reaches every column of P) or the factors
  // overflow what receivers accept.
  void power_iteration(const detail::LowRankPlan& p, std::span<const float> v, std::span<float> factors) const {
    const auto rows = static_cast<Eigen::Index>(p.block.rows);
    const auto cols = static_cast<Eigen::Index>(p.block.cols);
    const auto r = static_cast<Eigen::Index>(p.rank);
    const RowMajorMap m(v.data() + p.block.offset, rows, cols);
    const ConstColMajorMap warm(warm_start_.data() + p.warm_offset, cols, r);
    ColMajorMap pm(factors.data(), rows, r);
    ColMajorMap qm(factors.data() + p.block.rows * p.rank, cols, r);
    // Both products in one pass over M each, a row at a time (the row stays in L1 while it is
    // used r times). Eigen's GEMM would pack all of M first: measured 7× slower at r = 2 on a
    // 1024 × 1024 block.
    for (Eigen::Index row = 0; row < rows; ++row)  // P = M Q
      for (Eigen::Index c = 0; c < r; ++c) pm(row, c) = m.row(row).dot(warm.col(c).transpose());
    const std::span<const float> pf(factors.data(), p.block.rows * p.rank);
    detail::require(detail::max_abs_bits(pf) < detail::infinity_bits, detail::non_finite_input);
    detail::orthonormalize_columns(factors.data(), p.block.rows, p.rank);
    // Q = Mᵀ P = Σ_i M_iᵀ P_i, four rows per update of Q (one load and store of Q per four rows
    // of M instead of per row: the stores bounded the loop)
    qm.setZero();
    Eigen::Index i = 0;
    for (; i + 4 <= rows; i += 4)
      for (Eigen::Index c = 0; c < r; ++c)
        qm.col(c).noalias() += pm(i, c) * m.row(i).transpose() + pm(i + 1, c) * m.row(i + 1).transpose() +
                               pm(i + 2, c) * m.row(i + 2).transpose() + pm(i + 3, c) * m.row(i + 3).transpose();
    for (; i < rows; ++i)
      for (Eigen::Index c = 0; c < r; ++c) qm.col(c).noalias() += pm(i, c) * m.row(i).transpose();
    const std::span<const float> qf(factors.data() + pf.size(), p.block.cols * p.rank);
    const std::uint32_t max_q = detail::max_abs_bits(qf);
    detail::require(max_q < detail::infinity_bits &&
                        detail::low_rank_bounded(p.rank, std::bit_cast<float>(detail::max_abs_bits(pf)),
                                                 std::bit_cast<float>(max_q), 1.0f),
                    "PowerSGD::encode: the residual's low-rank factors are too large for float32");
  }

  void write_message(std::span<const float> v, std::vector<std::byte>& out) const {
    const std::size_t start = out.size();
    message::write_header(out, message::ids::power_sgd, message::ids::identity, message::ids::raw, v.size());
    put_varint(out, rank_);
    put_varint(out, plans_.size());
    put_le<std::uint32_t>(out, fingerprint_);
    detail::append_floats_le(out, factors_);
    detail::for_each_dense_range(plans_, v.size(),
                                 [&](std::size_t b, std::size_t e) { detail::append_floats_le(out, v.subspan(b, e - b)); });
    message::append_checksum(out, start);
  }

  // The block's q = P Qᵀ, row by row through the one out-of-line kernel receivers use too.
  static void reconstruct(const detail::LowRankPlan& p, const float* pf, const float* qf, float* dst) noexcept {
    for (std::size_t i = 0; i < p.block.rows; ++i)
      detail::low_rank_row(pf + i, p.block.rows, qf, p.block.cols, p.rank, dst + i * p.block.cols);
  }

  // The new Q is the next warm start, but for columns that are exactly zero (keep the old ones).
  void keep_warm_start(const detail::LowRankPlan& p, const float* qf) {
    float* warm = warm_start_.data() + p.warm_offset;
    const std::size_t cols = p.block.cols;
    for (std::size_t c = 0; c < p.rank; ++c) {
      const float* col = qf + c * cols;
      if (std::all_of(col, col + cols, [](float x) { return x == 0.0f; })) continue;
      std::copy(col, col + cols, warm + c * cols);
    }
  }

  // Every value finite, and every block's weight · P Qᵀ bounded (detail::low_rank_bounded).
  void check_decodable(std::span<const float> values, float weight) const {
    std::size_t at = 0;
    for (const detail::LowRankPlan& p : plans_) {
      const std::uint32_t max_p = detail::max_abs_bits(values.subspan(at, p.block.rows * p.rank));
      const std::uint32_t max_q = detail::max_abs_bits(values.subspan(at + p.block.rows * p.rank, p.block.cols * p.rank));
      if (max_p >= detail::infinity_bits || max_q >= detail::infinity_bits ||
          !detail::low_rank_bounded(p.rank, std::bit_cast<float>(max_p), std::bit_cast<float>(max_q), weight))
        throw DecodeError("PowerSGD: message's factors are not finite or their product would overflow");
      at += p.factor_floats();
    }
    const std::uint32_t max_dense = detail::max_abs_bits(values.subspan(at));
    if (max_dense >= detail::infinity_bits || !std::isfinite(std::bit_cast<float>(max_dense) * weight))
      throw DecodeError("PowerSGD: message holds or yields a non-finite value");
  }

  void add_decoded(std::span<const float> values, float weight, std::span<float> acc) const {
    std::size_t at = 0;
    std::vector<float> row;
    for (const detail::LowRankPlan& p : plans_) {
      row.resize(p.block.cols);
      const float* pf = values.data() + at;
      const float* qf = pf + p.block.rows * p.rank;
      float* a = acc.data() + p.block.offset;
      for (std::size_t i = 0; i < p.block.rows; ++i, a += p.block.cols) {
        detail::low_rank_row(pf + i, p.block.rows, qf, p.block.cols, p.rank, row.data());
        for (std::size_t j = 0; j < p.block.cols; ++j) a[j] += weight * row[j];
      }
      at += p.factor_floats();
    }
    const float* dense = values.data() + at;
    detail::for_each_dense_range(plans_, acc.size(), [&](std::size_t b, std::size_t e) {
      for (std::size_t k = b; k < e; ++k) acc[k] += weight * *dense++;
    });
  }

  std::size_t rank_;
  std::vector<MatrixBlock> blocks_;          // sorted by offset
  std::vector<detail::LowRankPlan> plans_;   // the blocks sent as factors
  std::size_t warm_floats_ = 0;              // Σ cols · r over plans_
  std::uint32_t fingerprint_ = 0;
  std::uint64_t node_ = 0;
  std::uint64_t seed_ = 0;
  std::vector<float> warm_start_;  // empty until the first encode
  std::vector<float> factors_;     // encode scratch: P, Q of every low-rank block
};

}  // namespace decopt
