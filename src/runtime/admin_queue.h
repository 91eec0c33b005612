// Operator requests (switchover, failover) travel from the HTTP threads to the tick loop
// through this queue; the loop takes at most one per tick and the decision judges it against
// what that tick observed. Ids let a client find the outcome in GET /history.
#pragma once

#include <deque>
#include <mutex>
#include <optional>

#include "core/observation.h"

namespace pgfailover::runtime {

class AdminQueue {
 public:
  // Returns the id given to the request. At most a few requests wait: a burst of retries from
  // a client is refused rather than replayed one by one later.
  std::optional<std::uint64_t> submit(core::AdminRequest request) {
    std::lock_guard lock(mutex_);
    if (pending_.size() >= kMaxPending) return std::nullopt;
    request.id = ++last_id_;
    pending_.push_back(request);
    return request.id;
  }

  std::optional<core::AdminRequest> take() {
    std::lock_guard lock(mutex_);
    if (pending_.empty()) return std::nullopt;
    auto request = pending_.front();
    pending_.pop_front();
    return request;
  }

 private:
  static constexpr std::size_t kMaxPending = 4;
  std::mutex mutex_;
  std::deque<core::AdminRequest> pending_;
  std::uint64_t last_id_ = 0;
};

}  // namespace pgfailover::runtime
