// train/checkpoint.hpp — decopt-train's checkpoint file: the run's identity, its progress and every
// node's optimizer state. experiment.hpp writes it with output::write_file_atomically (temporary
// file, fsync, rename), so a crash or a power loss mid-write never leaves a half-written
// checkpoint in place of the previous one.
//
// Layout: one framed record (decopt/optimizer/checkpoint.hpp: magic, version, length, checksum)
// holding the run: the settings that must match to resume, the completed rounds, each node's
// batch-sampler position, the evaluation rows so far; then one record per node from
// DecentralizedOptimizer::save_state.
#pragma once

#include <decopt/decopt.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "common/output.hpp"
#include "train/config.hpp"

namespace decopt::train {

/// Everything that must be the same for a checkpoint to continue this run (not the run length).
inline std::string run_identity(const TrainConfig& c, const std::string& algorithm) {
  std::ostringstream o;
  o.precision(17);
  o << "algorithm=" << algorithm << " coder=" << c.coder_of(algorithm) << " step=" << c.step << " nodes=" << c.nodes << " topology=" << c.topology
    << " p=" << c.erdos_renyi_p << " seed=" << c.seed << " partition=" << c.partition << " levels=" << c.levels
    << " norm=" << c.norm << " lambda=" << c.lambda << " support_patience=" << c.support_patience
    << " support_levels=" << c.support_levels << " lambda_warmup=" << c.lambda_warmup << " lambda_ramp=" << c.lambda_ramp << " lr=" << c.lr << " gamma=" << c.gamma
    << " momentum=" << c.momentum << " batch=" << c.batch << " hidden=" << c.hidden << " local_steps=" << c.local_steps
    << " train_samples=" << c.train_samples << " compressor=" << c.compressor << " ratio=" << c.ratio << " rank=" << c.rank
    << " bucket=" << c.bucket;
  if (time_varying(c)) o << " schedule=" << c.schedule << " schedule_period=" << c.schedule_period;  // static: as before
  if (c.gradient_tracking) o << " gradient_tracking=1";  // without it: as before
  if (c.lr_schedule != "constant") o << " lr_schedule=" << c.lr_schedule << " lr_min=" << c.lr_min;  // constant: as before
  if (c.dp.enabled())
    o << " dp_clip=" << c.dp.clip << " dp_noise=" << c.dp.noise << " dp_epsilon=" << c.dp.target_epsilon
      << " clipping=" << c.dp.clipping << " dp_r=" << c.dp.r << " dp_delta=" << c.dp.delta;
  return o.str();
}

/// The progress part of a checkpoint (the optimizers' states follow it in the file).
struct RunProgress {
  long rounds_done = 0;
  double seconds = 0;
  double loss_sum = 0;
  long loss_count = 0;
  std::vector<std::pair<long, std::size_t>> samplers;  ///< (epoch, position) per node
  std::vector<Rng::State> noise_states;                ///< DP noise stream per node (empty without DP)
  std::vector<std::vector<double>> rows;               ///< evaluation rows, as numbers
};

inline std::vector<std::byte> read_file(const std::string& path) {
  std::error_code ec;
  detail::require(!std::filesystem::is_directory(path, ec), "--resume " + path + " is a folder, not a checkpoint");
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError("cannot open checkpoint " + path + (errno ? ": " + examples::output::describe(errno) : ""));
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(chars.size());
  std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

/// Serialises the run's identity and progress, then each node's state (save_state of every node).
template <class NodeAt>
std::vector<std::byte> encode_checkpoint(const std::string& identity, const RunProgress& p, int nodes, NodeAt&& node_at) {
  std::vector<std::byte> out;
  const std::size_t start = checkpoint::begin_record(out);
  checkpoint::put_string(out, identity);
  put_le<std::int64_t>(out, p.rounds_done);
  put_le<double>(out, p.seconds);
  put_le<double>(out, p.loss_sum);
  put_le<std::int64_t>(out, p.loss_count);
  put_le<std::uint32_t>(out, static_cast<std::uint32_t>(p.samplers.size()));
  for (auto [epoch, position] : p.samplers) {
    put_le<std::int64_t>(out, epoch);
    put_le<std::uint64_t>(out, position);
  }
  // A resumed private run must continue each node's noise stream: replayed noise would cancel
  // between released gradients and void the (ε, δ) guarantee.
  put_le<std::uint32_t>(out, static_cast<std::uint32_t>(p.noise_states.size()));
  for (const auto& state : p.noise_states)
    for (std::uint64_t word : state) put_le<std::uint64_t>(out, word);
  put_le<std::uint32_t>(out, static_cast<std::uint32_t>(p.rows.size()));
  for (const auto& row : p.rows) {
    put_le<std::uint32_t>(out, static_cast<std::uint32_t>(row.size()));
    for (double v : row) put_le<double>(out, v);
  }
  checkpoint::end_record(out, start);
  for (int i = 0; i < nodes; ++i) node_at(i).save_state(out);
  return out;
}

/// Reads a checkpoint written by encode_checkpoint for the run `identity`, restoring every node
/// (load_state of node_at(i)). Throws DecodeError for a damaged file, ConfigError for another run.
template <class NodeAt>
RunProgress decode_checkpoint(std::span<const std::byte> bytes, const std::string& identity, int nodes, NodeAt&& node_at) {
  std::size_t used = 0;
  ByteReader in(checkpoint::open_record(bytes, used));
  const std::string saved = checkpoint::get_string(in);
  detail::require(saved == identity, "the checkpoint belongs to another run (saved: " + saved + "; this run: " + identity + ")");
  RunProgress p;
  p.rounds_done = static_cast<long>(in.get_le<std::int64_t>());
  p.seconds = in.get_le<double>();
  p.loss_sum = in.get_le<double>();
  p.loss_count = static_cast<long>(in.get_le<std::int64_t>());
  // A record can be forged with a valid checksum: every field is checked, not only the frame.
  detail::require_decodable(p.rounds_done >= 0 && p.rounds_done <= kMaxRounds, "checkpoint round out of range");
  detail::require_decodable(std::isfinite(p.seconds) && p.seconds >= 0 && p.loss_count >= 0 && p.loss_count <= p.rounds_done,
                            "checkpoint progress out of range");
  const auto samplers = in.get_le<std::uint32_t>();
  detail::require_decodable(samplers == static_cast<std::uint32_t>(nodes), "checkpoint holds another number of nodes");
  for (std::uint32_t i = 0; i < samplers; ++i) {
    const auto epoch = static_cast<long>(in.get_le<std::int64_t>());
    const auto position = static_cast<std::size_t>(in.get_le<std::uint64_t>());
    detail::require_decodable(epoch >= 0, "checkpoint sampler epoch out of range");
    p.samplers.emplace_back(epoch, position);
  }
  const auto noise_states = in.get_le<std::uint32_t>();
  detail::require_decodable(noise_states == 0 || noise_states == static_cast<std::uint32_t>(nodes),
                            "checkpoint holds another number of noise streams");
  for (std::uint32_t i = 0; i < noise_states; ++i) {
    Rng::State state;
    for (auto& word : state) word = in.get_le<std::uint64_t>();
    // xoshiro's all-zero state is a fixed point: a stream of zeros, noise that protects nothing.
    detail::require_decodable(std::any_of(state.begin(), state.end(), [](std::uint64_t w) { return w != 0; }),
                              "checkpoint noise generator state is all zero");
    p.noise_states.push_back(state);
  }
  const auto rows = in.get_le<std::uint32_t>();
  detail::require_decodable(rows <= static_cast<std::uint32_t>(kMaxEvaluations), "checkpoint row count out of range");
  for (std::uint32_t r = 0; r < rows; ++r) {
    const auto width = in.get_le<std::uint32_t>();
    detail::require_decodable(width <= 64, "checkpoint row width out of range");
    auto& row = p.rows.emplace_back();
    for (std::uint32_t k = 0; k < width; ++k) row.push_back(in.get_le<double>());
  }
  for (int i = 0; i < nodes; ++i) used += node_at(i).load_state(bytes.subspan(used));
  detail::require_decodable(used == bytes.size(), "checkpoint has trailing bytes");
  return p;
}

/// Refuses checkpoint flags the run cannot honour: --checkpoint or --resume with --compare (one
/// file holds one run), or with --transport mpi (each rank would need a file of its own).
/// @throws ConfigError naming the flags
inline void check_checkpoint_flags(const TrainConfig& c) {
  if (c.resume.empty() && c.checkpoint.empty()) return;
  detail::require(c.algorithms().size() == 1, "--checkpoint and --resume work with one --algorithm, not with --compare");
  detail::require(c.transport != "mpi", "--checkpoint/--resume are not supported with --transport mpi");
}

/// Whether the run writes its checkpoint after `round` (of `total_rounds`): at the end, and every
/// --checkpoint-every rounds when that is set.
inline bool checkpoint_due(const TrainConfig& c, long round, long total_rounds) {
  return !c.checkpoint.empty() && (round == total_rounds || (c.checkpoint_every > 0 && round % c.checkpoint_every == 0));
}

/// The first round after `round` at which checkpoint_due holds (total_rounds when none is before).
inline long next_checkpoint(const TrainConfig& c, long round, long total_rounds) {
  if (c.checkpoint.empty() || c.checkpoint_every <= 0) return total_rounds;
  return std::min(total_rounds, (round / c.checkpoint_every + 1) * c.checkpoint_every);
}

/// Writes the checkpoint of the run `identity` to --checkpoint `path`, atomically (header comment).
template <class NodeAt>
void write_checkpoint(const std::string& path, const std::string& identity, const RunProgress& p, int nodes,
                      NodeAt&& node_at) {
  examples::output::write_file_atomically(path, encode_checkpoint(identity, p, nodes, node_at), "checkpoint");
}

/// Reads the --resume file `path` of the run `identity`, restoring every node (decode_checkpoint).
/// @throws DecodeError for a damaged file; ConfigError for another run's, or one beyond `total_rounds`
template <class NodeAt>
RunProgress read_checkpoint(const std::string& path, const std::string& identity, int nodes, long total_rounds,
                            NodeAt&& node_at) {
  const auto bytes = read_file(path);
  RunProgress p = decode_checkpoint(bytes, identity, nodes, node_at);
  detail::require(p.rounds_done <= total_rounds, "the checkpoint is at round " + std::to_string(p.rounds_done) +
                                                     ", beyond this run's " + std::to_string(total_rounds) + " rounds");
  return p;
}

}  // namespace decopt::train
