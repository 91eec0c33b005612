// Errors as values. No exception crosses a module boundary: a failed operation returns a Status
// whose message names the object ("node 'pg2' (127.0.0.1:5433): timeout expired after 1000 ms").
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace pgfailover {

enum class StatusCode {
  kOk,
  kInvalidArgument,
  kUnavailable,
  kDeadlineExceeded,
  kFailedPrecondition,
  kUnauthenticated,
  kInternal,
};

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }

  bool isOk() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

}  // namespace pgfailover
