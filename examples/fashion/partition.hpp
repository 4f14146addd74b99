// fashion/partition.hpp — how the training samples are split over the nodes of the network.
//
// Two splits, both seeded and reproducible, both covering every sample exactly once:
//
// * Iid: shuffle 0..N−1 with Rng(seed) (Fisher–Yates) and give node i the i-th of n contiguous
//   slices of the shuffled order, [⌊iN/n⌋, ⌊(i+1)N/n⌋): shares differ by at most one sample,
//   and every node sees every class in about the data set's proportions.
//
// * ByLabel (non-IID, the "pathological" split of McMahan et al., "Communication-Efficient
//   Learning of Deep Networks from Decentralized Data", AISTATS 2017, §3): order the samples by
//   label (ties in a seeded random order), cut that order into 2n contiguous shards whose sizes
//   differ by at most one (the first N mod 2n shards are one longer), and give node π(i) the
//   shards i and i + n, where π is a seeded permutation of the nodes. Pairing shard i with
//   shard i + n (instead of McMahan's random pairs) puts the two shards of a node half the
//   label-sorted order apart, so with balanced classes they never share a label: on
//   Fashion-MNIST with 10 nodes every shard is 3000 samples of one class and each node holds
//   exactly 2 classes; with 8 nodes shards are 3750 samples and each node holds 2 to 4 classes.
//   Decentralized methods must then mix information across the graph to learn every class,
//   which is what this split is for.
//
// Each node's list is returned sorted ascending (the batch sampler shuffles it per epoch).
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"

namespace decopt::examples {

/// How samples are assigned to nodes; see the top of this file for the exact rules.
enum class Partition { Iid, ByLabel };

/// "iid" → Iid, "by-label" → ByLabel (the spelling of decopt-train's --partition flag).
/// @throws ConfigError naming the accepted values otherwise.
inline Partition parse_partition(std::string_view name) {
  if (name == "iid") return Partition::Iid;
  if (name == "by-label") return Partition::ByLabel;
  throw ConfigError("unknown partition '" + std::string(name) + "' (expected iid or by-label)");
}

/// The flag spelling of a partition, the inverse of parse_partition.
inline std::string_view to_string(Partition kind) noexcept {
  return kind == Partition::Iid ? std::string_view("iid") : std::string_view("by-label");
}

namespace fashion_detail {
/// Fisher–Yates with Rng::below, so the permutation is the same on every standard library.
template <class T>
void seeded_shuffle(std::vector<T>& values, Rng& rng) noexcept {
  for (std::size_t i = values.size(); i > 1; --i) {
    const auto j = static_cast<std::size_t>(rng.below(i));
    std::swap(values[i - 1], values[j]);
  }
}
}  // namespace fashion_detail

/// Splits the sample indices 0..labels.size()−1 over `nodes` nodes.
/// @param labels one label per sample (only ByLabel looks at the values)
/// @param nodes  number of nodes, 1 ≤ nodes ≤ labels.size()
/// @param kind   Iid or ByLabel
/// @param seed   fixes the shuffles; the same seed gives the same split
/// @return one ascending list of sample indices per node; together they hold every index once,
///         and every list is non-empty.
/// @throws ConfigError if nodes < 1 or nodes > the number of samples.
inline std::vector<std::vector<int>> partition(const std::vector<std::uint8_t>& labels, int nodes,
                                               Partition kind, std::uint64_t seed) {
  const auto samples = labels.size();
  decopt::detail::require(nodes >= 1, "partition: nodes must be at least 1, got " + std::to_string(nodes));
  decopt::detail::require(static_cast<std::size_t>(nodes) <= samples,
                          "partition: " + std::to_string(nodes) + " nodes but only " +
                              std::to_string(samples) + " samples; every node needs at least one");
  const auto n = static_cast<std::size_t>(nodes);
  std::vector<int> order(samples);
  std::iota(order.begin(), order.end(), 0);
  Rng rng = Rng::derive(seed, {kind == Partition::Iid ? 0x11du : 0x1abe1u});
  fashion_detail::seeded_shuffle(order, rng);

  std::vector<std::vector<int>> parts(n);
  if (kind == Partition::Iid) {
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t begin = i * samples / n, end = (i + 1) * samples / n;
      parts[i].assign(order.begin() + std::ptrdiff_t(begin), order.begin() + std::ptrdiff_t(end));
    }
  } else {
    // Stable sort of the shuffled order by label: labels ascending, ties in random order.
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return labels[std::size_t(a)] < labels[std::size_t(b)]; });
    const std::size_t shards = 2 * n, base = samples / shards, longer = samples % shards;
    auto shard_begin = [&](std::size_t k) { return k * base + std::min(k, longer); };
    std::vector<std::size_t> owner(n);
    std::iota(owner.begin(), owner.end(), std::size_t{0});
    fashion_detail::seeded_shuffle(owner, rng);
    for (std::size_t i = 0; i < n; ++i) {
      auto& part = parts[owner[i]];
      for (std::size_t k : {i, i + n}) {
        part.insert(part.end(), order.begin() + std::ptrdiff_t(shard_begin(k)),
                    order.begin() + std::ptrdiff_t(shard_begin(k + 1)));
      }
    }
  }
  for (auto& part : parts) std::sort(part.begin(), part.end());
  return parts;
}

}  // namespace decopt::examples
