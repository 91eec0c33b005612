// The hand-off point between the loop and the HTTP threads (the loop's publish seam, in core
// because both the runtime and http use it and it does no I/O): the loop publishes an immutable
// snapshot at the end of each tick, request handlers take the current one. A reader keeps its
// shared_ptr for the whole request, so one response is built from one tick even if the loop
// publishes meanwhile.
//
// Deliberately not here: history (only the latest snapshot is kept) and any wait for a new tick.
// The lock is held only to copy a pointer, never while building a snapshot or a response.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <utility>

#include "core/snapshot.h"

namespace pgfailover::core {

// Where the loop publishes each tick's snapshot.
class SnapshotSink {
 public:
  virtual ~SnapshotSink() = default;
  virtual void publish(std::shared_ptr<const Snapshot> snapshot) = 0;
};

class SnapshotStore final : public SnapshotSink {
 public:
  // Starts with an empty, not-ready snapshot stamped "now", so /healthz measures a loop that
  // never ticks from the moment the store was made rather than from the clock's epoch.
  SnapshotStore() : SnapshotStore(std::chrono::steady_clock::now()) {}
  explicit SnapshotStore(SteadyTime created_at) {
    auto initial = std::make_shared<Snapshot>();
    initial->tick_at = created_at;
    current_ = std::move(initial);
  }

  void publish(std::shared_ptr<const Snapshot> snapshot) override {
    if (!snapshot) return;  // keeping the last good snapshot beats serving nothing
    std::lock_guard lock(mutex_);
    current_ = std::move(snapshot);
  }

  // Never null.
  std::shared_ptr<const Snapshot> current() const {
    std::lock_guard lock(mutex_);
    return current_;
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const Snapshot> current_;
};

}  // namespace pgfailover::core
