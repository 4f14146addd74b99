// decopt/optimizer/rejoin.hpp — what a lost node pulls from its neighbours when it rejoins
// (NodeRejoin; the protocol: optimizer/lost_peer_repair.hpp).
//
// At the boundary before exchange e = R2 + 2 every surviving neighbour j of the rejoiner N sends
// it one pull message, raw:
//   [u32 "PULL"][i64 round][i64 last_resync][x̂_j: u64 d, d × f32][x_j: u64 d, d × f32][support]
// where round and last_resync are j's optimizer counters, and [support] is what N's decoder needs
// for j's next messages (SupportCoded: j's announced support, d/8 bytes; nothing for a plain
// Compressor<S, Q, C>). N takes x := x_p from the lowest-ranked such neighbour p, sets x̂_N := x_N,
// and restarts its own coding state (SupportCoded: a full support, under which any x̂ is valid);
// its neighbours restart their copy of N's (a full support too). Then x̂_N is the same number on
// N and in every neighbour's s, and the compressed rounds continue from there with error memory.
//
// Compressors whose encoder keeps other state (PowerSGD's warm start, another StatefulCompressor)
// cannot rejoin: the neighbours' state for N would not match N's restart.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "decopt/compress/hooks.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"
#include "decopt/optimizer/checkpoint.hpp"
#include "decopt/optimizer/residual_coding.hpp"

namespace decopt {

/// A compressor a lost node can rejoin with: a ResidualCompressor that keeps no state, or a
/// support coder (SupportCoded) over one that keeps none.
template <class C>
concept RejoinableCompressor =
    (ResidualCompressor<C> && !StatefulCompressor<C>) ||
    (requires(C& c, const C& cc, std::size_t slot, std::vector<std::byte>& out, ByteReader& in) {
      c.restart_support();
      c.restart_neighbor_support(slot);
      cc.put_support(out);
      c.take_neighbor_support(slot, in);
      cc.inner();
    } && !StatefulCompressor<std::remove_cvref_t<decltype(std::declval<const C&>().inner())>>);

namespace detail {

inline constexpr std::uint32_t kPullMagic = 0x4c4c5550;  // "PULL"

/// A neighbour's pull message, parsed (views into the message).
struct PulledModel {
  long round = 0;
  long last_resync = 0;
  std::span<const std::byte> public_copy;  // d floats, little-endian
  std::span<const std::byte> model;        // d floats, little-endian
  std::span<const std::byte> coding;       // the compressor's part
};

/// Appends the pull message of a node with counters (round, last_resync), x̂ and x.
template <class C>
void put_pull_message(const C& compressor, long round, long last_resync, std::span<const float> xhat,
                      std::span<const float> x, std::vector<std::byte>& out) {
  put_le<std::uint32_t>(out, kPullMagic);
  put_le<std::int64_t>(out, round);
  put_le<std::int64_t>(out, last_resync);
  checkpoint::put_floats(out, xhat);
  checkpoint::put_floats(out, x);
  if constexpr (requires { compressor.put_support(out); }) compressor.put_support(out);
}

/// Whether `message` is a pull message (rather than a plain resynchronisation message).
inline bool is_pull_message(std::span<const std::byte> message) {
  ByteReader in(message);
  return message.size() >= 4 && in.get_le<std::uint32_t>() == kPullMagic;
}

/// Splits a pull message of dimension d. @throws DecodeError when it is malformed
inline PulledModel parse_pull_message(std::span<const std::byte> message, std::size_t d) {
  ByteReader in(message);
  require_decodable(in.get_le<std::uint32_t>() == kPullMagic, "pull message expected");
  PulledModel pulled;
  pulled.round = static_cast<long>(in.get_le<std::int64_t>());
  pulled.last_resync = static_cast<long>(in.get_le<std::int64_t>());
  const std::size_t floats = d * sizeof(float);
  auto take_floats = [&](const char* what) {
    if (in.get_le<std::uint64_t>() != d) throw DecodeError(std::string("pull message: ") + what + " of another dimension");
    if (in.remaining() < floats) throw DecodeError(std::string("pull message: ") + what + " truncated");
    const std::size_t at = message.size() - in.remaining();
    in.skip(floats);
    return message.subspan(at, floats);
  };
  pulled.public_copy = take_floats("public copy");
  pulled.model = take_floats("model");
  pulled.coding = message.subspan(message.size() - in.remaining());
  require_decodable(pulled.round >= 0 && pulled.last_resync >= 0 && pulled.last_resync <= pulled.round,
                    "pull message: implausible round counters");
  return pulled;
}

/// Reads d little-endian floats into dest.
inline void read_floats(std::span<const std::byte> bytes, std::span<float> dest) {
  ByteReader in(bytes);
  for (float& v : dest) v = in.get_le<float>();
}

/// The rejoiner restarts its own coding state.
template <class C>
void restart_coding(C& c) {
  if constexpr (requires { c.restart_support(); }) c.restart_support();
}
/// A neighbour restarts its copy of the rejoiner's coding state (slot: the rejoiner's place in
/// its neighbour list).
template <class C>
void restart_neighbor_coding(C& c, std::size_t slot) {
  if constexpr (requires { c.restart_neighbor_support(slot); }) c.restart_neighbor_support(slot);
}
/// The rejoiner reads neighbour `slot`'s coding state from its pull message.
/// @throws DecodeError when it is malformed or has trailing bytes
template <class C>
void take_neighbor_coding(C& c, std::size_t slot, std::span<const std::byte> coding) {
  ByteReader in(coding);
  if constexpr (requires { c.take_neighbor_support(slot, in); }) c.take_neighbor_support(slot, in);
  require_decodable(in.remaining() == 0, "pull message has trailing bytes");
}

}  // namespace detail
}  // namespace decopt
