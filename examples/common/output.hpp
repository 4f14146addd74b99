// common/output.hpp — the files decopt's programs write (--csv, --plot, --checkpoint): checked
// before the run starts, written atomically after it.
//
// A finished run must not be lost to a mistake in an output path found only at the end: every
// output path is checked before the work starts (a folder? a folder that does not exist? one the
// program may not write?) by creating the very temporary file the final write will use. The final
// write goes to "<path>.tmp", is flushed to the disk (fsync), renamed over <path> and the folder
// synced: readers — and a machine that loses power — see the old file or the new one, never half
// of one; a failure removes the temporary and says what went wrong in words.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <decopt/core/error.hpp>
#include <filesystem>
#include <span>
#include <string>
#include <system_error>

namespace decopt::examples::output {

/// The message of errno value `code`, e.g. "Permission denied".
inline std::string describe(int code) { return std::generic_category().message(code); }

/// Where a write to `path` lands: the file a symbolic link points to (so that the rename replaces
/// the file, not the link), else `path` itself.
inline std::string destination_of(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_symlink(path, ec)) {
    const auto target = std::filesystem::canonical(path, ec);
    if (!ec) return target.string();
  }
  return path;
}

/// The temporary beside `destination` (same folder, so the rename stays on one file system).
inline std::string temporary_for(const std::string& destination) { return destination + ".tmp"; }

/// The folder holding `path` ("." for a bare file name).
inline std::filesystem::path folder_of(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::filesystem::path(".") : parent;
}

/// Throws ConfigError naming `flag` unless write_file_atomically can write `path`: it is not a
/// folder or another non-regular file, its folder exists, and the temporary can be created there
/// (tried for real and removed again, so the answer also holds for root and read-only mounts).
/// @param path the output path as given; @param flag the flag that gave it, e.g. "--csv".
inline void require_writable(const std::string& path, const std::string& flag) {
  namespace fs = std::filesystem;
  decopt::detail::require(!path.empty(), flag + " needs a file name");
  const std::string destination = destination_of(path);
  const std::string named = flag + " " + path;
  std::error_code ec;
  const auto status = fs::status(destination, ec);
  decopt::detail::require(!fs::is_directory(status), named + " is a folder, not a file");
  decopt::detail::require(!fs::exists(status) || fs::is_regular_file(status),
                          named + " exists and is not a regular file");
  const auto folder = folder_of(destination);
  const auto folder_status = fs::status(folder, ec);
  decopt::detail::require(fs::is_directory(folder_status),
                          named + ": the folder " + folder.string() +
                              (fs::exists(folder_status) ? " is not a folder" : " does not exist"));
  const std::string temporary = temporary_for(destination);
  const bool existed = fs::exists(fs::symlink_status(temporary, ec));
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0644);
  if (fd < 0) throw ConfigError("cannot write " + named + ": " + describe(errno));
  ::close(fd);
  if (!existed) ::unlink(temporary.c_str());
}

/// A fresh private folder (mkdtemp: mode 0700, a name no other process has) under the temporary
/// directory ($TMPDIR, else /tmp), removed with everything in it when the object goes.
class TemporaryFolder {
 public:
  /// @param prefix the start of the folder's name, e.g. "decopt-plot"
  /// @throws Error when the folder cannot be created.
  explicit TemporaryFolder(const std::string& prefix) {
    std::error_code ec;
    auto base = std::filesystem::temp_directory_path(ec);
    if (ec) base = "/tmp";
    std::string name = (base / (prefix + "-XXXXXX")).string();
    if (!::mkdtemp(name.data()))
      throw Error("cannot create a temporary folder in " + base.string() + ": " + describe(errno));
    path_ = name;
  }
  TemporaryFolder(const TemporaryFolder&) = delete;
  TemporaryFolder& operator=(const TemporaryFolder&) = delete;
  ~TemporaryFolder() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  /// path() / name, as a string.
  [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

namespace detail {
/// Writes all of `bytes` to `fd`; false with errno set on failure.
inline bool write_all(int fd, std::span<const std::byte> bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}
/// fsync of the folder holding `path`, so that a rename inside it survives a power loss. File
/// systems that cannot sync a folder (EINVAL) count as synced.
inline bool sync_folder(const std::string& path) {
  const int fd = ::open(folder_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool synced = ::fsync(fd) == 0 || errno == EINVAL;
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return synced;
}
}  // namespace detail

/// Replaces `path` with `bytes` atomically: writes "<path>.tmp", fsyncs it, renames it over
/// `path`, fsyncs the folder. A symbolic link at `path` is written through (its target replaced).
/// @param what the file's role in messages, e.g. "--csv" or "checkpoint"
/// @throws Error "cannot write checkpoint run.ckpt: No space left on device" (in words, with the
///   step that failed); the temporary is removed, and `path` keeps its previous contents.
inline void write_file_atomically(const std::string& path, std::span<const std::byte> bytes,
                                  const std::string& what) {
  const std::string destination = destination_of(path);
  const std::string temporary = temporary_for(destination);
  const auto fail = [&](const std::string& step, int code, bool remove_temporary) {
    if (remove_temporary) ::unlink(temporary.c_str());
    throw Error("cannot write " + what + " " + path + ": " + step + describe(code));
  };
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("creating " + temporary + ": ", errno, false);
  if (!detail::write_all(fd, bytes) || ::fsync(fd) != 0) {
    const int code = errno;
    ::close(fd);
    fail("", code, true);
  }
  if (::close(fd) != 0) fail("", errno, true);
  if (::rename(temporary.c_str(), destination.c_str()) != 0) fail("", errno, true);
  if (!detail::sync_folder(destination)) fail("syncing its folder: ", errno, false);
}

/// write_file_atomically of text.
inline void write_file_atomically(const std::string& path, const std::string& text, const std::string& what) {
  write_file_atomically(path, std::as_bytes(std::span<const char>(text.data(), text.size())), what);
}

}  // namespace decopt::examples::output
