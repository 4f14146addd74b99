// Tests for fashion/idx.hpp and fashion/dataset.hpp: IDX files written here with zlib are read
// back exactly; every malformed file gives its one-line message; the installed Fashion-MNIST
// (the project's install script installs dataset-fashion-mnist) loads with the known shape.
#include <unistd.h>
#include <zlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "eigen_checks.hpp"  // before any Eigen header: same Eigen settings in every file
#include "fashion/idx.hpp"
#include "fashion_test_util.hpp"

using namespace decopt::examples;
namespace fs = std::filesystem;

namespace {

/// A fresh directory under the system temp dir, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("decopt-fashion-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  [[nodiscard]] std::string file(const std::string& name) const { return (path / name).string(); }
};

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

std::vector<std::uint8_t> idx_images(std::uint32_t count, std::uint32_t rows, std::uint32_t cols,
                                     const std::vector<std::uint8_t>& pixels, std::uint32_t magic = 0x803) {
  std::vector<std::uint8_t> bytes;
  put_u32(bytes, magic);
  put_u32(bytes, count);
  put_u32(bytes, rows);
  put_u32(bytes, cols);
  bytes.insert(bytes.end(), pixels.begin(), pixels.end());
  return bytes;
}

std::vector<std::uint8_t> idx_labels(const std::vector<std::uint8_t>& labels, std::uint32_t magic = 0x801) {
  std::vector<std::uint8_t> bytes;
  put_u32(bytes, magic);
  put_u32(bytes, static_cast<std::uint32_t>(labels.size()));
  bytes.insert(bytes.end(), labels.begin(), labels.end());
  return bytes;
}

void write_gz(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  if (!bytes.empty())
    REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == int(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

void write_plain(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::vector<std::uint8_t> read_plain(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Pixel p of image s: a pattern where every byte value differs between neighbours.
std::vector<std::uint8_t> pattern(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>((i * 37 + 11) % 256);
  return v;
}

}  // namespace

TEST_CASE("IDX image and label files written with zlib read back exactly", "[fashion][idx]") {
  TempDir dir;
  const auto pixels = pattern(3 * 2 * 4);
  write_gz(dir.file("img.gz"), idx_images(3, 2, 4, pixels));
  write_gz(dir.file("lab.gz"), idx_labels({7, 0, 9}));

  const IdxImages raw = read_idx_images(dir.file("img.gz"));
  REQUIRE(raw.count == 3);
  REQUIRE(raw.rows == 2);
  REQUIRE(raw.cols == 4);
  REQUIRE(raw.pixels == pixels);
  REQUIRE(read_idx_labels(dir.file("lab.gz")) == std::vector<std::uint8_t>{7, 0, 9});

  const Dataset data = load_idx_dataset(dir.file("img.gz"), dir.file("lab.gz"), 10);
  REQUIRE(data.size() == 3);
  REQUIRE(data.rows == 2);
  REQUIRE(data.cols == 4);
  REQUIRE(data.features() == 8);
  REQUIRE(data.images.rows() == 8);
  REQUIRE(data.images.cols() == 3);
  REQUIRE(data.labels == std::vector<std::uint8_t>{7, 0, 9});
  // Column s is image s, pixels in row-major order, scaled by 1/255.
  for (int s = 0; s < 3; ++s)
    for (int r = 0; r < 2; ++r)
      for (int c = 0; c < 4; ++c) {
        const std::uint8_t p = pixels[std::size_t(s * 8 + r * 4 + c)];
        REQUIRE(data.images(r * 4 + c, s) == static_cast<float>(p) * (1.0f / 255.0f));
      }
  REQUIRE(data.images.minCoeff() >= 0.0f);
  REQUIRE(data.images.maxCoeff() <= 1.0f);
}

TEST_CASE("Uncompressed IDX files are read too", "[fashion][idx]") {
  TempDir dir;
  const auto pixels = pattern(5 * 3 * 3);
  write_plain(dir.file("img"), idx_images(5, 3, 3, pixels));
  const IdxImages raw = read_idx_images(dir.file("img"));
  REQUIRE(raw.count == 5);
  REQUIRE(raw.pixels == pixels);
}

TEST_CASE("A file with the wrong magic number is rejected with a clear message", "[fashion][idx]") {
  TempDir dir;
  write_gz(dir.file("img.gz"), idx_images(1, 2, 2, pattern(4), /*magic=*/0x801));
  write_gz(dir.file("lab.gz"), idx_labels({1}, /*magic=*/0x803));
  REQUIRE_THROWS_AS(read_idx_images(dir.file("img.gz")), DatasetError);
  REQUIRE_THROWS_WITH(
      read_idx_images(dir.file("img.gz")),
      dir.file("img.gz") + " is not an IDX images (idx3) file: magic number 0x00000801, expected 0x00000803");
  REQUIRE_THROWS_WITH(
      read_idx_labels(dir.file("lab.gz")),
      dir.file("lab.gz") + " is not an IDX labels (idx1) file: magic number 0x00000803, expected 0x00000801");
}

TEST_CASE("Truncated files say how many bytes were expected and found", "[fashion][idx]") {
  TempDir dir;
  SECTION("pixels cut short inside a complete gzip stream") {
    const auto full = idx_images(3, 2, 4, pattern(24));
    write_gz(dir.file("img.gz"), std::vector<std::uint8_t>(full.begin(), full.end() - 4));
    REQUIRE_THROWS_WITH(read_idx_images(dir.file("img.gz")),
                        dir.file("img.gz") + " is truncated: expected 24 bytes of images, got 20");
  }
  SECTION("labels cut short") {
    auto bytes = idx_labels({1, 2, 3, 4, 5});
    bytes.pop_back();
    write_gz(dir.file("lab.gz"), bytes);
    REQUIRE_THROWS_WITH(read_idx_labels(dir.file("lab.gz")),
                        dir.file("lab.gz") + " is truncated: expected 5 bytes of labels, got 4");
  }
  SECTION("header cut short") {
    write_gz(dir.file("img.gz"), {0, 0, 8, 3, 0, 0});
    REQUIRE_THROWS_WITH(read_idx_images(dir.file("img.gz")),
                        dir.file("img.gz") + " is truncated: expected 16 bytes of header, got 6");
  }
  SECTION("a gzip file cut in the middle of its compressed stream") {
    // Pseudo-random pixels do not compress, so half the .gz file holds about half the pixels.
    std::vector<std::uint8_t> pixels(64 * 64 * 8);
    std::uint64_t state = 12345;
    for (auto& p : pixels) p = static_cast<std::uint8_t>((state = state * 6364136223846793005ULL + 1) >> 56);
    write_gz(dir.file("full.gz"), idx_images(8, 64, 64, pixels));
    const auto gz = read_plain(dir.file("full.gz"));
    write_plain(dir.file("cut.gz"),
                std::vector<std::uint8_t>(gz.begin(), gz.begin() + std::ptrdiff_t(gz.size() / 2)));
    REQUIRE_THROWS_AS(read_idx_images(dir.file("cut.gz")), DatasetError);
    REQUIRE_THROWS_WITH(
        read_idx_images(dir.file("cut.gz")),
        Catch::Contains(dir.file("cut.gz") + " is truncated: expected 32768 bytes of images, got"));
  }
}

TEST_CASE("Bytes after the declared content are reported", "[fashion][idx]") {
  TempDir dir;
  auto bytes = idx_labels({1, 2});
  bytes.push_back(3);
  bytes.push_back(4);
  write_gz(dir.file("lab.gz"), bytes);
  REQUIRE_THROWS_WITH(read_idx_labels(dir.file("lab.gz")),
                      dir.file("lab.gz") + " has 2 unexpected bytes after the data its header declares");
}

TEST_CASE("Zero-sized image dimensions are rejected", "[fashion][idx]") {
  TempDir dir;
  write_gz(dir.file("img.gz"), idx_images(2, 0, 28, {}));
  REQUIRE_THROWS_WITH(read_idx_images(dir.file("img.gz")),
                      Catch::Contains("each side must be between 1 and"));
}

TEST_CASE("Missing files name the path and how to install the data set", "[fashion][idx]") {
  TempDir dir;
  const std::string missing_dir = dir.file("nowhere");
  REQUIRE_THROWS_AS(load_fashion_mnist(missing_dir, true), DatasetError);
  REQUIRE_THROWS_WITH(load_fashion_mnist(missing_dir, true),
                      "Fashion-MNIST not found at " + missing_dir +
                          "/train-images-idx3-ubyte.gz: install it with `sudo apt-get install "
                          "dataset-fashion-mnist` or pass --data DIR");
  REQUIRE_THROWS_WITH(
      load_fashion_mnist(missing_dir, false),
      Catch::Contains("Fashion-MNIST not found at " + missing_dir + "/t10k-images-idx3-ubyte.gz"));
  // Images present, labels missing: the message names the labels file.
  write_gz(dir.file("train-images-idx3-ubyte.gz"), idx_images(1, 1, 1, {5}));
  REQUIRE_THROWS_WITH(load_fashion_mnist(dir.path.string(), true),
                      Catch::Contains("not found at " + dir.file("train-labels-idx1-ubyte.gz")));
  REQUIRE_THROWS_WITH(read_idx_images(dir.file("absent.gz")), dir.file("absent.gz") + " does not exist");
  // DatasetError is a decopt::Error, so `catch (const decopt::Error&)` in a program catches it.
  REQUIRE_THROWS_AS(read_idx_labels(dir.file("absent.gz")), decopt::Error);
}

TEST_CASE("Image and label counts must agree, labels must be classes", "[fashion][idx]") {
  TempDir dir;
  write_gz(dir.file("img.gz"), idx_images(3, 1, 2, pattern(6)));
  write_gz(dir.file("lab2.gz"), idx_labels({1, 2}));
  REQUIRE_THROWS_WITH(load_idx_dataset(dir.file("img.gz"), dir.file("lab2.gz")),
                      dir.file("img.gz") + " has 3 images but " + dir.file("lab2.gz") + " has 2 labels");
  // A Fashion-MNIST directory whose labels go beyond 0..9.
  write_gz(dir.file("t10k-images-idx3-ubyte.gz"), idx_images(3, 1, 2, pattern(6)));
  write_gz(dir.file("t10k-labels-idx1-ubyte.gz"), idx_labels({1, 10, 2}));
  REQUIRE_THROWS_WITH(load_fashion_mnist(dir.path.string(), false),
                      dir.file("t10k-labels-idx1-ubyte.gz") + " has label 10 at index 1, outside 0..9");
  write_gz(dir.file("t10k-labels-idx1-ubyte.gz"), idx_labels({1, 9, 2}));
  REQUIRE(load_fashion_mnist(dir.path.string(), false).labels == std::vector<std::uint8_t>{1, 9, 2});
}

TEST_CASE("Normalization standardises pixels to mean 0 and deviation 1", "[fashion][idx]") {
  Dataset data;
  data.rows = 1;
  data.cols = 2;
  data.images.resize(2, 2);
  data.images << 0.0f, 1.0f, 1.0f, 0.0f;  // mean 0.5, deviation 0.5
  data.labels = {0, 1};
  const Normalization norm = compute_normalization(data);
  REQUIRE(norm.mean == Approx(0.5f));
  REQUIRE(norm.stddev == Approx(0.5f));
  normalize(data, norm);
  REQUIRE(data.images(0, 0) == Approx(-1.0f));
  REQUIRE(data.images(1, 0) == Approx(1.0f));
  data.images.setConstant(0.25f);
  REQUIRE_THROWS_AS(compute_normalization(data), decopt::ConfigError);
}

TEST_CASE("The installed Fashion-MNIST has 60000 + 10000 images of 28 x 28 and balanced classes",
          "[fashion][idx][dataset]") {
  // No skip: the install script installs dataset-fashion-mnist, and a missing data set must fail
  // here with the install message rather than pass silently.
  const Dataset& train = fashion_test::train_set();
  const Dataset& test = fashion_test::test_set();
  REQUIRE(train.size() == 60000);
  REQUIRE(test.size() == 10000);
  for (const Dataset* d : {&train, &test}) {
    REQUIRE(d->rows == 28);
    REQUIRE(d->cols == 28);
    REQUIRE(d->images.rows() == 784);
    REQUIRE(d->images.cols() == d->size());
    REQUIRE(d->images.minCoeff() == 0.0f);
    REQUIRE(d->images.maxCoeff() == 1.0f);
  }
  std::vector<int> train_counts(10, 0), test_counts(10, 0);
  for (auto label : train.labels) {
    REQUIRE(label < 10);
    ++train_counts[label];
  }
  for (auto label : test.labels) {
    REQUIRE(label < 10);
    ++test_counts[label];
  }
  REQUIRE(train_counts == std::vector<int>(10, 6000));
  REQUIRE(test_counts == std::vector<int>(10, 1000));
  // The published pixel statistics of the training set (mean 0.2860, deviation 0.3530).
  const Normalization norm = compute_normalization(train);
  REQUIRE(norm.mean == Approx(0.2860).margin(5e-4));
  REQUIRE(norm.stddev == Approx(0.3530).margin(5e-4));
}
