// common/coders.hpp — the level coder a program's --coder flag names, as a type: raw (fixed-width
// packing), elias (QSGD's Elias codes) or vsc (vector source coding, Malcom-PSGD's). One place maps
// the names to decopt's coders, for decopt-train and decopt-torch-train alike.
#pragma once

#include <decopt/decopt.hpp>

#include <string>

namespace decopt::examples {

/// Calls `run(coder)` with the coder named `name` (RawCoder, EliasCoder or VectorSourceCoder) and
/// returns its result; every branch instantiates `run` once, so call it only where the coder matters.
/// @throws ConfigError for another name
template <class Run>
auto with_level_coder(const std::string& name, Run&& run) {
  if (name == "raw") return run(RawCoder{});
  if (name == "elias") return run(EliasCoder{});
  if (name == "vsc") return run(VectorSourceCoder{});
  throw ConfigError("unknown coder '" + name + "' (raw, elias or vsc)");
}

}  // namespace decopt::examples
