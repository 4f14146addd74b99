// decopt/core/error.hpp — the exceptions decopt throws.
//
// Three kinds, so callers can tell a bug in their configuration from a bad message on the wire:
//   * ConfigError — a bad option, a size mismatch, an invalid mixing matrix, a non-finite input.
//     Thrown from constructors and from the start of a round, never from per-element hot loops.
//   * DecodeError — a malformed, truncated or foreign message or checkpoint.
//   * Error       — the common base; catch it to catch everything decopt throws.
#pragma once

#include <charconv>
#include <stdexcept>
#include <string>
#include <system_error>

namespace decopt {

/// Base class of every exception thrown by decopt.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A message or saved state that cannot be decoded: malformed, truncated, of another version or
/// dimension. Decoders throw this instead of reading past the end or producing non-finite values.
struct DecodeError : Error {
  explicit DecodeError(const std::string& what) : Error("decopt: decode error: " + what) {}
};

/// A configuration the library cannot run: bad option values, mismatched sizes, an invalid
/// topology. The message names the offending option.
struct ConfigError : Error {
  explicit ConfigError(const std::string& what) : Error("decopt: configuration error: " + what) {}
};

namespace detail {
/// The shortest decimal string that reads back as exactly `value` (std::to_chars), for error
/// messages that must show e.g. "1.2" and not "1.19999999999999996", and 1e-46 not "0.000000".
inline std::string format_double(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  if (result.ec != std::errc{}) return "?";
  return std::string(buffer, result.ptr);
}

/// Throws ConfigError(message) when `condition` is false. Used at API boundaries only.
inline void require(bool condition, const std::string& message) {
  if (!condition) throw ConfigError(message);
}
/// Throws DecodeError(message) when `condition` is false.
inline void require_decodable(bool condition, const char* message) {
  if (!condition) throw DecodeError(message);
}
}  // namespace detail

}  // namespace decopt
