// A string that must never be printed: passwords, tokens. It has no stream operator and its
// only accessor is named so that every use is visible in review.
#pragma once

#include <string>
#include <utility>

namespace pgfailover {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}

  bool empty() const { return value_.empty(); }
  const std::string& revealForUse() const { return value_; }
  static constexpr const char* kRedacted = "<redacted>";

 private:
  std::string value_;
};

}  // namespace pgfailover
