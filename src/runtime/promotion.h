// A promotion runs beside the loop, never on the tick thread: the fencing hook (which may wait
// on a power switch or a cloud API) and then pg_promote on the chosen replica. The loop keeps
// ticking meanwhile (the heartbeat, the API's snapshot and the old primary's probes go on), and
// the decision confirms the promotion by observing the node writable, as it always has. When
// pg_promote returns, the worker wakes the loop so that the promoted node is probed, gets its
// first heartbeat and is published at once instead of on the next scheduled tick.
//
// Deliberately not here: choosing whom to promote or when (src/core), the fencing at rest of the
// old primary (NodeOperations, on that node's host).
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "common/log.h"
#include "common/status.h"
#include "config/config.h"

namespace pgfailover::runtime {

class PromotionWorker {
 public:
  // `promoted` is called on the worker's thread after every attempt, whatever its result.
  PromotionWorker(const config::Config& config, Logger& log, std::function<void()> finished);
  ~PromotionWorker();
  PromotionWorker(const PromotionWorker&) = delete;
  PromotionWorker& operator=(const PromotionWorker&) = delete;

  // Starts promoting `node`; `old_primary` is the node being replaced (the fencing hook's
  // PGFAILOVER_OLD_PRIMARY), unset for a planned switchover, which runs no hook. Refused while
  // an earlier attempt still runs: the decision re-issues the promotion after its timeout.
  Status start(std::size_t node, std::optional<std::size_t> old_primary);
  bool running() const { return running_; }
  // Waits for a running attempt to end (pg_promote and the hook are bounded by their timeouts).
  void shutdown();

 private:
  void run(std::size_t node, std::optional<std::size_t> old_primary);
  Status runFencingHook(std::size_t node, std::size_t old_primary);

  const config::Config& config_;
  Logger& log_;
  std::function<void()> finished_;
  std::mutex mutex_;
  std::thread thread_;
  std::atomic<bool> running_{false};
};

}  // namespace pgfailover::runtime
