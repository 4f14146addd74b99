// Tests for fashion/partition.hpp and fashion/batches.hpp: every sample assigned exactly once,
// IID shares equal, by-label nodes see few classes, and the batch sampler is a reproducible,
// seekable sampling without replacement.
#include <algorithm>
#include <catch2/catch.hpp>
#include <numeric>
#include <set>
#include <vector>

#include "eigen_checks.hpp"  // before any Eigen header: same Eigen settings in every file
#include "fashion/batches.hpp"
#include "fashion/partition.hpp"
#include "fashion_test_util.hpp"

using namespace decopt::examples;

namespace {

/// `per_class` samples of each of `classes` labels, interleaved (label = index mod classes).
std::vector<std::uint8_t> balanced_labels(int classes, int per_class) {
  std::vector<std::uint8_t> labels(std::size_t(classes * per_class));
  for (std::size_t i = 0; i < labels.size(); ++i)
    labels[i] = static_cast<std::uint8_t>(i % std::size_t(classes));
  return labels;
}

/// Every index 0..n−1 appears in exactly one part, each part ascending and non-empty.
void require_exact_cover(const std::vector<std::vector<int>>& parts, std::size_t n) {
  std::vector<int> seen(n, 0);
  for (const auto& part : parts) {
    REQUIRE(!part.empty());
    REQUIRE(std::is_sorted(part.begin(), part.end()));
    for (int i : part) {
      REQUIRE(i >= 0);
      REQUIRE(std::size_t(i) < n);
      ++seen[std::size_t(i)];
    }
  }
  REQUIRE(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
}

std::size_t distinct_labels(const std::vector<int>& part, const std::vector<std::uint8_t>& labels) {
  std::set<int> s;
  for (int i : part) s.insert(labels[std::size_t(i)]);
  return s.size();
}

}  // namespace

TEST_CASE("parse_partition accepts the flag spellings and names them on error", "[fashion][partition]") {
  REQUIRE(parse_partition("iid") == Partition::Iid);
  REQUIRE(parse_partition("by-label") == Partition::ByLabel);
  REQUIRE(parse_partition(to_string(Partition::ByLabel)) == Partition::ByLabel);
  REQUIRE_THROWS_AS(parse_partition("IID"), decopt::ConfigError);
  REQUIRE_THROWS_WITH(parse_partition("dirichlet"),
                      Catch::Contains("unknown partition 'dirichlet' (expected iid or by-label)"));
}

TEST_CASE("IID partition: exact cover, equal shares, all classes everywhere, seeded",
          "[fashion][partition]") {
  const auto labels = balanced_labels(10, 103);  // 1030 samples: not a multiple of 8
  const auto parts = partition(labels, 8, Partition::Iid, 42);
  REQUIRE(parts.size() == 8);
  require_exact_cover(parts, labels.size());
  for (const auto& part : parts) {
    REQUIRE((part.size() == 128 || part.size() == 129));
    REQUIRE(distinct_labels(part, labels) == 10);
  }
  REQUIRE(partition(labels, 8, Partition::Iid, 42) == parts);
  REQUIRE(partition(labels, 8, Partition::Iid, 43) != parts);
  // Not just contiguous slices of 0..N−1.
  REQUIRE(parts[0].back() - parts[0].front() > 500);
}

TEST_CASE("By-label partition: exact cover, two classes per node when shards are pure",
          "[fashion][partition]") {
  const auto labels = balanced_labels(10, 600);
  SECTION("10 nodes: 20 shards of 300 samples, one class each, two different classes per node") {
    const auto parts = partition(labels, 10, Partition::ByLabel, 1);
    require_exact_cover(parts, labels.size());
    for (const auto& part : parts) {
      REQUIRE(part.size() == 600);
      REQUIRE(distinct_labels(part, labels) == 2);
    }
    REQUIRE(partition(labels, 10, Partition::ByLabel, 1) == parts);
    REQUIRE(partition(labels, 10, Partition::ByLabel, 2) != parts);
  }
  SECTION("8 nodes: shards of 375 samples, at most 4 classes per node") {
    const auto parts = partition(labels, 8, Partition::ByLabel, 1);
    require_exact_cover(parts, labels.size());
    for (const auto& part : parts) {
      REQUIRE(part.size() == 750);
      REQUIRE(distinct_labels(part, labels) >= 2);
      REQUIRE(distinct_labels(part, labels) <= 4);
    }
  }
  SECTION("sizes that do not divide: shares differ by at most two") {
    const auto odd = balanced_labels(3, 37);  // 111 samples over 7 nodes
    const auto parts = partition(odd, 7, Partition::ByLabel, 5);
    require_exact_cover(parts, odd.size());
    std::size_t smallest = odd.size(), largest = 0;
    for (const auto& part : parts) {
      smallest = std::min(smallest, part.size());
      largest = std::max(largest, part.size());
    }
    REQUIRE(largest - smallest <= 2);
  }
}

TEST_CASE("Partition limits: 1 node, as many nodes as samples, and the errors", "[fashion][partition]") {
  const auto labels = balanced_labels(3, 4);  // 12 samples
  for (Partition kind : {Partition::Iid, Partition::ByLabel}) {
    const auto one = partition(labels, 1, kind, 0);
    REQUIRE(one.size() == 1);
    require_exact_cover(one, 12);
    const auto each = partition(labels, 12, kind, 0);
    require_exact_cover(each, 12);
    for (const auto& part : each) REQUIRE(part.size() == 1);
    REQUIRE_THROWS_AS(partition(labels, 0, kind, 0), decopt::ConfigError);
    REQUIRE_THROWS_WITH(partition(labels, 13, kind, 0), Catch::Contains("13 nodes but only 12 samples"));
  }
}

TEST_CASE("By-label on the real Fashion-MNIST gives each of 10 nodes two classes",
          "[fashion][partition][dataset]") {
  const auto& labels = fashion_test::train_set().labels;
  const auto parts = partition(labels, 10, Partition::ByLabel, 17);
  require_exact_cover(parts, labels.size());
  for (const auto& part : parts) {
    REQUIRE(part.size() == 6000);
    REQUIRE(distinct_labels(part, labels) == 2);
  }
  const auto iid = partition(labels, 8, Partition::Iid, 17);
  for (const auto& part : iid) REQUIRE(part.size() == 7500);
}

TEST_CASE("BatchSampler: one epoch is a permutation of the node's samples, reshuffled each epoch",
          "[fashion][batches]") {
  const std::vector<int> indices{3, 9, 14, 20, 21, 40, 41, 55, 60, 77};
  BatchSampler sampler(indices, 4, 99);  // 4 does not divide 10: batches straddle epochs
  REQUIRE(sampler.epoch_size() == 10);
  REQUIRE(sampler.batches_per_epoch() == 3);
  std::vector<int> drawn;
  std::vector<int> batch(4);
  for (int b = 0; b < 10; ++b) {  // 40 draws = 4 epochs
    sampler.next_indices(batch);
    drawn.insert(drawn.end(), batch.begin(), batch.end());
  }
  REQUIRE(sampler.epoch() == 4);
  REQUIRE(sampler.position() == 0);
  std::vector<std::vector<int>> epochs;
  for (int e = 0; e < 4; ++e) {
    std::vector<int> order(drawn.begin() + e * 10, drawn.begin() + (e + 1) * 10);
    epochs.push_back(order);
    std::sort(order.begin(), order.end());
    REQUIRE(order == indices);
  }
  REQUIRE(epochs[0] != epochs[1]);
  REQUIRE(epochs[1] != epochs[2]);
  REQUIRE(epochs[0] != indices);  // shuffled, not in the given order
}

TEST_CASE("BatchSampler is reproducible for a seed and seekable", "[fashion][batches]") {
  std::vector<int> indices(50);
  std::iota(indices.begin(), indices.end(), 100);
  BatchSampler a(indices, 8, 7), b(indices, 8, 7), c(indices, 8, 8);
  std::vector<int> ba(8), bb(8), bc(8);
  bool any_difference = false;
  for (int i = 0; i < 7; ++i) {
    a.next_indices(ba);
    b.next_indices(bb);
    c.next_indices(bc);
    REQUIRE(ba == bb);
    any_difference = any_difference || ba != bc;
  }
  REQUIRE(any_difference);
  // A checkpoint is (epoch, position): a new sampler seeked there continues identically.
  REQUIRE(a.epoch() == 1);
  REQUIRE(a.position() == 6);
  BatchSampler resumed(indices, 8, 7);
  resumed.seek(a.epoch(), a.position());
  for (int i = 0; i < 10; ++i) {
    a.next_indices(ba);
    resumed.next_indices(bb);
    REQUIRE(ba == bb);
  }
  REQUIRE_THROWS_AS(resumed.seek(0, 50), decopt::ConfigError);
  REQUIRE_THROWS_AS(resumed.seek(-1, 0), decopt::ConfigError);
}

TEST_CASE("BatchSampler::next copies the chosen columns and labels", "[fashion][batches]") {
  Dataset data;
  data.rows = 1;
  data.cols = 3;
  data.images.resize(3, 12);
  for (int s = 0; s < 12; ++s)
    for (int f = 0; f < 3; ++f) data.images(f, s) = float(100 * s + f);
  data.labels.resize(12);
  for (int s = 0; s < 12; ++s) data.labels[std::size_t(s)] = static_cast<std::uint8_t>(s % 5);
  const std::vector<int> indices{1, 4, 5, 11};
  BatchSampler filler(indices, 6, 3), reference(indices, 6, 3);  // batch larger than the share
  Eigen::MatrixXf x(3, 6);
  std::vector<std::uint8_t> y(6);
  std::vector<int> expected(6);
  for (int round = 0; round < 3; ++round) {
    filler.next(data, x, y);
    reference.next_indices(expected);
    for (int j = 0; j < 6; ++j) {
      const int s = expected[std::size_t(j)];
      REQUIRE(x.col(j) == data.images.col(s));
      REQUIRE(y[std::size_t(j)] == data.labels[std::size_t(s)]);
    }
  }
  Eigen::MatrixXf wrong(3, 5);
  REQUIRE_THROWS_AS(filler.next(data, wrong, std::span<std::uint8_t>(y).first(5)), decopt::ConfigError);
  BatchSampler beyond(std::vector<int>{2, 12}, 2, 0);
  REQUIRE_THROWS_WITH(beyond.next(data, x.leftCols(2), std::span<std::uint8_t>(y).first(2)),
                      Catch::Contains("beyond the data set"));
  REQUIRE_THROWS_AS(BatchSampler({}, 4, 0), decopt::ConfigError);
  REQUIRE_THROWS_AS(BatchSampler({1, 2}, 0, 0), decopt::ConfigError);
  REQUIRE_THROWS_AS(BatchSampler({1, -2}, 1, 0), decopt::ConfigError);
}
