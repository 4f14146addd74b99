// common/gnuplot.hpp — a PNG drawn by gnuplot, without a user's string ever reaching gnuplot's
// parser or a shell.
//
// The programs used to write `set output '<--plot path>'` into the script and run it with
// system("gnuplot '…'"): a path holding a quote and a newline ran any gnuplot command, system()
// included. Here gnuplot runs in a private temporary folder (mkdtemp, mode 0700) on a script
// that names only that folder's files — kOutput and data files whose names the program chooses —
// started by posix_spawn (no shell); the PNG is then moved to the user's path by
// output::write_file_atomically. Whatever the --plot path holds, gnuplot never reads it. Program
// text that does enter the script (titles) goes through quoted().
//
// A missing gnuplot is named as such (find_program: "gnuplot not found (apt-get install
// gnuplot-nox)"; the programs call it before their run starts), and a failing one is reported
// with its own last message, not as a raw wait status.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <decopt/core/error.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/output.hpp"

extern char** environ;

namespace decopt::examples::gnuplot {

/// The file the script must draw into (`set output` + quoted(kOutput)), in the work folder.
inline constexpr const char* kOutput = "plot.png";

/// The gnuplot executable on PATH.
/// @param flag the option that asks for a plot, for the message ("--plot")
/// @throws ConfigError "--plot: gnuplot not found (apt-get install gnuplot-nox)" when PATH has none.
inline std::string find_program(const std::string& flag = "--plot") {
  const char* path = std::getenv("PATH");
  std::stringstream folders(path ? path : "/usr/bin:/bin");
  std::string folder;
  while (std::getline(folders, folder, ':')) {
    const std::string candidate = (folder.empty() ? std::string(".") : folder) + "/gnuplot";
    std::error_code ec;
    if (std::filesystem::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  throw ConfigError(flag + ": gnuplot not found (apt-get install gnuplot-nox)");
}

/// `text` as a gnuplot single-quoted string: 'it''s'. Inside single quotes gnuplot gives no
/// character a meaning but the quote itself (doubled), so only a line break could end the command.
/// @throws ConfigError on a control character.
inline std::string quoted(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    decopt::detail::require(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f,
                            "gnuplot::quoted: a control character in '" + std::string(text) + "'");
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

/// One plot: the script and its data files, by file name in the work folder.
struct Plot {
  /// gnuplot commands drawing into kOutput.
  std::string script;
  /// (file name, contents) of each data file the script reads, e.g. ("run0.dat", "1 0.5\n").
  std::vector<std::pair<std::string, std::string>> data;
};

namespace detail {

/// The last non-empty line of `file` (gnuplot's error message), at most 300 characters.
inline std::string last_line(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line, last;
  while (std::getline(in, line))
    if (line.find_first_not_of(" \t^") != std::string::npos) last = line;
  return last.size() > 300 ? last.substr(0, 300) + "..." : last;
}

/// Runs `program script` with `folder` as working directory, stdin from /dev/null, stdout and
/// stderr into `log` (in the folder); returns the wait status.
inline int run_in(const std::string& program, const std::filesystem::path& folder, const char* script,
                  const char* log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, folder.c_str());
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::string arg0 = program, arg1 = script;
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, program.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) throw Error("cannot start " + program + ": " + output::describe(spawned));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw Error("waiting for gnuplot: " + output::describe(errno));
  return status;
}

inline std::string read_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace detail

/// Draws `plot` with gnuplot and writes the PNG to `png_path` (atomically).
/// @param flag the option that named the path, for messages ("--plot")
/// @throws ConfigError when gnuplot is not installed; Error with gnuplot's last message when it
///   fails; Error naming the path when the PNG cannot be written there.
inline void draw(const Plot& plot, const std::string& png_path, const std::string& flag = "--plot") {
  const std::string program = find_program(flag);
  const output::TemporaryFolder folder("decopt-plot");
  std::ofstream(folder.path() / "plot.gp") << plot.script;
  for (const auto& [name, contents] : plot.data) std::ofstream(folder.path() / name) << contents;
  const int status = detail::run_in(program, folder.path(), "plot.gp", "gnuplot.log");
  const std::string said = detail::last_line(folder.path() / "gnuplot.log");
  if (WIFSIGNALED(status))
    throw Error(flag + ": gnuplot was killed by signal " + std::to_string(WTERMSIG(status)));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error(flag + ": gnuplot failed (exit status " + std::to_string(WEXITSTATUS(status)) + ")" +
                (said.empty() ? "" : ": " + said));
  const std::string png = detail::read_bytes(folder.path() / kOutput);
  if (png.empty()) throw Error(flag + ": gnuplot drew nothing" + (said.empty() ? "" : ": " + said));
  output::write_file_atomically(png_path, png, flag);
}

}  // namespace decopt::examples::gnuplot
