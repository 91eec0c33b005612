// What a configuration test needs to read a LoadResult: its errors as one text (one per line),
// and a lookup of an environment without any variable.
#pragma once

#include <optional>
#include <string>

#include "config/config.h"

namespace pgfailover::testing {

inline std::string joinedErrors(const config::LoadResult& result) {
  std::string text;
  for (const auto& error : result.errors) text += error + "\n";
  return text;
}

inline std::optional<std::string> noEnv(const std::string&) {
  return std::nullopt;
}

}  // namespace pgfailover::testing
