// Typed reads of one field of an API answer, for the command-line clients: a field that is
// missing or of another type reads as empty, never as an exception, so a reply from another
// pgfailover version prints what it can.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace pgfailover::cli {

inline std::string text(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return {};
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

inline std::optional<double> number(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return std::nullopt;
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

inline std::optional<bool> boolean(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return std::nullopt;
  auto it = object.find(key);
  if (it == object.end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

}  // namespace pgfailover::cli
