// fashion/idx.hpp — reads gzip-compressed IDX files (the MNIST / Fashion-MNIST format) with zlib.
//
// IDX (LeCun et al., http://yann.lecun.com/exdb/mnist/): a big-endian header, then raw bytes.
//   images (idx3): magic 0x00000803, count, rows, cols (4 × u32), then count·rows·cols pixels u8
//   labels (idx1): magic 0x00000801, count (2 × u32), then count labels u8
// Every way a file can be wrong — missing, not IDX, truncated, with trailing bytes, with counts
// that disagree between images and labels — is a DatasetError whose message is one line that
// names the file and says what to do, because the first thing a new user of decopt-train meets
// is usually a data set that is not where the program looks.
//
// Needs zlib (link ZLIB::ZLIB). Files that are not gzip-compressed are read as they are (zlib's
// gzread passes plain files through), so an uncompressed IDX file works too.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "decopt/core/error.hpp"
#include "fashion/dataset.hpp"

namespace decopt::examples {

/// A data set that cannot be read: missing, malformed, truncated or inconsistent.
struct DatasetError : decopt::Error {
  using decopt::Error::Error;
};

/// Where the Debian package dataset-fashion-mnist installs the four files.
inline constexpr const char* kDefaultFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// The raw contents of an idx3 image file.
struct IdxImages {
  int count = 0;
  int rows = 0;
  int cols = 0;
  /// count·rows·cols bytes, image after image, each row-major (row after row of pixels).
  std::vector<std::uint8_t> pixels;
};

namespace fashion_detail {

inline constexpr std::uint32_t kIdxImagesMagic = 0x00000803;  // unsigned byte, 3 dimensions
inline constexpr std::uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned byte, 1 dimension

/// An open gzFile that closes itself.
struct GzCloser {
  void operator()(gzFile_s* f) const noexcept { gzclose(f); }
};
using GzHandle = std::unique_ptr<gzFile_s, GzCloser>;

inline GzHandle open_gz(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw DatasetError(path + " does not exist");
  if (std::filesystem::is_directory(path, ec)) throw DatasetError(path + " is a directory, not an IDX file");
  errno = 0;
  GzHandle f(gzopen(path.c_str(), "rb"));
  if (!f) {
    throw DatasetError("cannot open " + path + ": " +
                       (errno != 0 ? std::string(std::strerror(errno)) : std::string("out of memory")));
  }
  gzbuffer(f.get(), 1 << 17);
  return f;
}

/// Reads up to `n` bytes; returns how many were read before the end of the (decompressed) stream.
/// A gzip stream cut short reads as a short count (zlib reports Z_BUF_ERROR), which the caller
/// turns into a "truncated" message; any other zlib error is reported as it is.
inline std::size_t read_up_to(gzFile f, const std::string& path, std::uint8_t* out, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    const auto chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, 1u << 30));
    const int r = gzread(f, out + got, chunk);
    if (r < 0) {
      int code = 0;
      const char* message = gzerror(f, &code);
      if (code == Z_BUF_ERROR) break;  // unexpected end of a compressed stream: truncated
      throw DatasetError("cannot read " + path + ": zlib error: " + (message ? message : "unknown"));
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  return got;
}

/// Reads exactly `n` bytes of the part called `what`, or throws "<path> is truncated: ...".
inline void read_exactly(gzFile f, const std::string& path, std::uint8_t* out, std::size_t n,
                         const char* what) {
  const std::size_t got = read_up_to(f, path, out, n);
  if (got != n) {
    throw DatasetError(path + " is truncated: expected " + std::to_string(n) + " bytes of " + what +
                       ", got " + std::to_string(got));
  }
}

/// Throws when anything follows the declared content: a file with extra data is not what the
/// header says it is (e.g. two files concatenated), and silently ignoring it hides the mistake.
inline void require_end(gzFile f, const std::string& path) {
  std::array<std::uint8_t, 4096> extra{};
  std::size_t total = 0;
  for (;;) {
    const std::size_t got = read_up_to(f, path, extra.data(), extra.size());
    total += got;
    if (got < extra.size()) break;
  }
  if (total > 0) {
    throw DatasetError(path + " has " + std::to_string(total) +
                       " unexpected bytes after the data its header declares");
  }
}

inline std::uint32_t big_endian_u32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

inline std::string hex32(std::uint32_t v) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s = "0x";
  for (int shift = 28; shift >= 0; shift -= 4) s += digits[(v >> shift) & 0xf];
  return s;
}

inline void require_magic(std::uint32_t magic, std::uint32_t expected, const std::string& path,
                          const char* kind) {
  if (magic != expected) {
    throw DatasetError(path + " is not an IDX " + kind + " file: magic number " + hex32(magic) +
                       ", expected " + hex32(expected));
  }
}

}  // namespace fashion_detail

/// Reads an idx3-ubyte image file (gzip-compressed or plain).
/// @throws DatasetError if the file is missing, has the wrong magic number, declares zero-sized
///         or absurdly large dimensions, is truncated, or has bytes after its declared content.
inline IdxImages read_idx_images(const std::string& path) {
  auto f = fashion_detail::open_gz(path);
  std::array<std::uint8_t, 16> header{};
  fashion_detail::read_exactly(f.get(), path, header.data(), header.size(), "header");
  fashion_detail::require_magic(fashion_detail::big_endian_u32(header.data()),
                                fashion_detail::kIdxImagesMagic, path, "images (idx3)");
  const std::uint32_t count = fashion_detail::big_endian_u32(header.data() + 4);
  const std::uint32_t rows = fashion_detail::big_endian_u32(header.data() + 8);
  const std::uint32_t cols = fashion_detail::big_endian_u32(header.data() + 12);
  // Limits that keep every product below in range and reject headers from garbage files.
  constexpr std::uint32_t kMaxSide = 1u << 14;
  constexpr std::uint64_t kMaxBytes = std::uint64_t{1} << 36;
  if (rows == 0 || cols == 0 || rows > kMaxSide || cols > kMaxSide) {
    throw DatasetError(path + " declares images of " + std::to_string(rows) + " × " + std::to_string(cols) +
                       " pixels; each side must be between 1 and " + std::to_string(kMaxSide));
  }
  const std::uint64_t bytes = std::uint64_t{count} * rows * cols;
  if (count > static_cast<std::uint32_t>(std::numeric_limits<int>::max()) || bytes > kMaxBytes) {
    throw DatasetError(path + " declares " + std::to_string(count) + " images of " + std::to_string(rows) +
                       " × " + std::to_string(cols) + " pixels, more than this reader accepts");
  }
  IdxImages out;
  out.count = static_cast<int>(count);
  out.rows = static_cast<int>(rows);
  out.cols = static_cast<int>(cols);
  out.pixels.resize(static_cast<std::size_t>(bytes));
  fashion_detail::read_exactly(f.get(), path, out.pixels.data(), out.pixels.size(), "images");
  fashion_detail::require_end(f.get(), path);
  return out;
}

/// Reads an idx1-ubyte label file (gzip-compressed or plain).
/// @throws DatasetError as read_idx_images does.
inline std::vector<std::uint8_t> read_idx_labels(const std::string& path) {
  auto f = fashion_detail::open_gz(path);
  std::array<std::uint8_t, 8> header{};
  fashion_detail::read_exactly(f.get(), path, header.data(), header.size(), "header");
  fashion_detail::require_magic(fashion_detail::big_endian_u32(header.data()),
                                fashion_detail::kIdxLabelsMagic, path, "labels (idx1)");
  const std::uint32_t count = fashion_detail::big_endian_u32(header.data() + 4);
  if (count > static_cast<std::uint32_t>(std::numeric_limits<int>::max())) {
    throw DatasetError(path + " declares " + std::to_string(count) +
                       " labels, more than this reader accepts");
  }
  std::vector<std::uint8_t> labels(count);
  fashion_detail::read_exactly(f.get(), path, labels.data(), labels.size(), "labels");
  fashion_detail::require_end(f.get(), path);
  return labels;
}

/// Pairs an image file with a label file into a Dataset: pixels become floats in [0, 1]
/// (p / 255), one column per image in row-major pixel order.
/// @param classes labels must lie in [0, classes); 0 skips the check.
/// @throws DatasetError if either file cannot be read, the counts differ, or a label is out of range.
inline Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                                int classes = 0) {
  IdxImages raw = read_idx_images(images_path);
  std::vector<std::uint8_t> labels = read_idx_labels(labels_path);
  if (labels.size() != static_cast<std::size_t>(raw.count)) {
    throw DatasetError(images_path + " has " + std::to_string(raw.count) + " images but " + labels_path +
                       " has " + std::to_string(labels.size()) + " labels");
  }
  if (classes > 0) {
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (labels[i] >= classes) {
        throw DatasetError(labels_path + " has label " + std::to_string(labels[i]) + " at index " +
                           std::to_string(i) + ", outside 0.." + std::to_string(classes - 1));
      }
    }
  }
  Dataset data;
  data.rows = raw.rows;
  data.cols = raw.cols;
  const Eigen::Index features = Eigen::Index{raw.rows} * raw.cols;
  const Eigen::Map<const Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic>> bytes(
      raw.pixels.data(), features, raw.count);
  data.images = bytes.cast<float>() * (1.0f / 255.0f);
  data.labels = std::move(labels);
  return data;
}

/// Loads the Fashion-MNIST training set (60000 images) or test set (10000 images) from `dir`,
/// which holds {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz as the Debian package
/// dataset-fashion-mnist installs them (kDefaultFashionMnistDir).
/// @throws DatasetError "Fashion-MNIST not found at <path>: install it with ..." if a file is
///         missing, and the messages of load_idx_dataset otherwise (labels must be 0..9).
inline Dataset load_fashion_mnist(const std::string& dir, bool train) {
  const std::string prefix = dir + "/" + (train ? "train" : "t10k");
  const std::string images_path = prefix + "-images-idx3-ubyte.gz";
  const std::string labels_path = prefix + "-labels-idx1-ubyte.gz";
  for (const std::string& path : {images_path, labels_path}) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      throw DatasetError("Fashion-MNIST not found at " + path +
                         ": install it with `sudo apt-get install dataset-fashion-mnist` or pass --data DIR");
    }
  }
  return load_idx_dataset(images_path, labels_path, 10);
}

}  // namespace decopt::examples
