// common/flags.hpp — the checks every numeric flag of decopt-train and decopt-portfolio goes
// through, and the memory a run may ask for.
//
// Why not CLI11's own validators: CLI::PositiveNumber and CLI::Range compare with < and >, which
// are false for NaN, so `--epochs nan` passed them and ended in an undefined cast; their messages
// print bounds with std::to_string (300 digits for the largest double); and CLI11 converts
// integers with strtoull(text, 0) / strtoll(text, 0), which read "-1" as 2^64 − 1, "2^64" as
// 2^64 − 1 and "010" as 8. The validators here read the text themselves, strictly — a finite
// decimal number; a decimal integer without leading zeros — refuse anything outside the flag's
// bounds with the bounds as a person writes them ("2 is not in (0, 1]"), and only then let CLI11
// convert text that its conversion reads the same way.
#pragma once

#include <CLI/CLI.hpp>
#include <decopt/core/error.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace decopt::examples::flags {

/// `v` in the shortest form that reads back as the same double ("0.001", "1e+06").
inline std::string number(double v) {
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
  return ec == std::errc() ? std::string(buffer, end) : std::to_string(v);
}

/// The real values a flag accepts: an interval, either end open or closed, optionally with 0 as
/// an extra value (the "off" of --bandwidth-mbps 0). contains() is false for NaN.
struct Interval {
  double min = 0;
  double max = 0;
  bool min_open = false;
  bool max_open = false;
  bool zero_too = false;

  static Interval closed(double lo, double hi) { return {lo, hi, false, false, false}; }  ///< [lo, hi]
  static Interval above(double lo, double hi) { return {lo, hi, true, false, false}; }    ///< (lo, hi]
  static Interval below(double lo, double hi) { return {lo, hi, false, true, false}; }    ///< [lo, hi)
  static Interval open(double lo, double hi) { return {lo, hi, true, true, false}; }      ///< (lo, hi)
  /// This interval and 0.
  [[nodiscard]] Interval or_zero() const {
    Interval i = *this;
    i.zero_too = true;
    return i;
  }

  [[nodiscard]] bool contains(double v) const noexcept {
    if (zero_too && v == 0.0) return true;
    const bool above_min = min_open ? v > min : v >= min;
    const bool below_max = max_open ? v < max : v <= max;
    return above_min && below_max;
  }
  /// "(0, 1]", "{0} or [0.001, 1e+12]".
  [[nodiscard]] std::string describe() const {
    const std::string interval =
        (min_open ? "(" : "[") + number(min) + ", " + number(max) + (max_open ? ")" : "]");
    return zero_too ? "{0} or " + interval : interval;
  }
};

/// Why `text` is not a finite number in `range` ("nan is not a finite number", "2 is not in
/// (0, 1]"), or "" when it is one. A value beyond the doubles (1e400) is out of range, not NaN.
inline std::string real_problem(const std::string& text, const Interval& range) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size()) return "'" + text + "' is not a number";
  const bool overflowed = std::isinf(v) && errno == ERANGE;
  if (!std::isfinite(v) && !overflowed) return text + " is not a finite number";
  if (overflowed || !range.contains(v)) return text + " is not in " + range.describe();
  return {};
}

namespace detail {
/// True for "0" and for an optional '-' then digits without a leading zero: the integers that
/// CLI11's base-0 conversion reads as decimal.
inline bool is_plain_decimal(const std::string& text) {
  const std::size_t first = !text.empty() && text[0] == '-' ? 1 : 0;
  if (first == text.size()) return false;
  if (!std::all_of(text.begin() + static_cast<std::ptrdiff_t>(first), text.end(),
                   [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  return text[first] != '0' || text.size() == first + 1;
}
}  // namespace detail

/// Why `text` is not a decimal integer in [lo, hi] ("1.5 is not a decimal integer", "-5 is not
/// in [1, 1073741824]"), or "" when it is one.
/// @tparam Int std::int64_t for signed flags, std::uint64_t for unsigned ones (seeds).
template <class Int>
std::string integer_problem(const std::string& text, Int lo, Int hi) {
  static_assert(std::is_same_v<Int, std::int64_t> || std::is_same_v<Int, std::uint64_t>);
  const std::string bounds = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (!detail::is_plain_decimal(text)) {
    const bool leading_zero = text.size() > 1 && (text[0] == '0' || (text[0] == '-' && text[1] == '0'));
    return "'" + text + "' is not a decimal integer" + (leading_zero ? " (leading zero)" : "");
  }
  Int v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  // A syntactically valid integer that does not parse is out of the type's range (or negative
  // for an unsigned flag): out of bounds either way.
  if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi)
    return text + " is not in " + bounds;
  return {};
}

/// A CLI11 check: the text is a finite number in `range`. `->check(flags::real(Interval::above(0, 1)))`.
inline CLI::Validator real(Interval range) {
  return {[range](std::string& text) { return real_problem(text, range); }, range.describe()};
}

/// A CLI11 check: the text is a decimal integer in [lo, hi] (the option's type must hold both).
inline CLI::Validator integer(std::int64_t lo, std::int64_t hi) {
  return {[lo, hi](std::string& text) { return integer_problem<std::int64_t>(text, lo, hi); },
          "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]"};
}

/// A CLI11 check for a seed: an unsigned 64-bit decimal integer, 0 to 2^64 − 1 ("-1", "1e23" and
/// "18446744073709551616" are refused instead of becoming 2^64 − 1).
inline CLI::Validator seed() {
  constexpr auto most = std::numeric_limits<std::uint64_t>::max();
  return {[](std::string& text) { return integer_problem<std::uint64_t>(text, 0, most); },
          "[0, " + std::to_string(most) + "]"};
}

namespace detail {
/// The number after `key` in a "key value kB" line of /proc/meminfo, in bytes.
inline std::optional<double> meminfo_bytes(const char* key) {
  std::ifstream in("/proc/meminfo");
  std::string name;
  double value = 0;
  std::string unit;
  while (in >> name >> value) {
    std::getline(in, unit);
    if (name == key) return value * (unit.find("kB") != std::string::npos ? 1024.0 : 1.0);
  }
  return std::nullopt;
}
/// The first number in `path`, if the file exists and starts with one ("max" does not).
inline std::optional<double> file_number(const char* path) {
  std::ifstream in(path);
  double value = 0;
  if (in >> value) return value;
  return std::nullopt;
}
}  // namespace detail

/// Bytes this process can still allocate: MemAvailable of /proc/meminfo, lowered to what the
/// memory cgroup leaves (limit − usage, cgroup v2 or v1) when one is set. Without either figure,
/// 64 GiB: a run that needs more is refused rather than left to end in std::bad_alloc.
inline double available_memory_bytes() {
  double available = detail::meminfo_bytes("MemAvailable:").value_or(64.0 * (1ull << 30));
  const std::pair<const char*, const char*> cgroups[] = {
      {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
      {"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"}};
  for (const auto& [limit_path, usage_path] : cgroups) {
    const auto limit = detail::file_number(limit_path);
    const auto usage = detail::file_number(usage_path);
    if (limit && usage) available = std::min(available, std::max(0.0, *limit - *usage));
  }
  return available;
}

/// "512 MB", "3.2 GB", "2.5e+04 TB".
inline std::string format_bytes(double bytes) {
  const char* unit = bytes < 1e9 ? "MB" : bytes < 1e12 ? "GB" : "TB";
  const double scaled = bytes / (bytes < 1e9 ? 1e6 : bytes < 1e12 ? 1e9 : 1e12);
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "%.3g %s", scaled, unit);
  return buffer;
}

/// Throws ConfigError when a run estimated to need `bytes` would not fit in available memory:
/// "<what> needs about 25.4 TB of memory, more than the 22.9 GB available". Checked before the
/// allocation, so a run too large for the machine fails at once, with the figure, instead of
/// ending in a bare std::bad_alloc after minutes.
/// @param bytes the estimate (a double: a product of flags may exceed 2^64)
/// @param what the flags that make the run this large, e.g. "--nodes 8 x --hidden 100000000 (…)"
inline void require_memory(double bytes, const std::string& what,
                           double available = available_memory_bytes()) {
  if (bytes <= available) return;
  throw ConfigError(what + " needs about " + format_bytes(bytes) + " of memory, more than the " +
                    format_bytes(available) + " available");
}

}  // namespace decopt::examples::flags
