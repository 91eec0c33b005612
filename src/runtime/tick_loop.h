// The daemon's loop: once per interval, observe every node (concurrently, each probe bounded by
// its deadline), decide (pure), act (promote, fence, slots: bounded SQL; rejoin: handed to the
// node-operation worker), persist what must survive a restart, publish (snapshot for the HTTP
// API, metrics, log lines on change). The loop owns the decision's memory.
//
// Deliberately not here: the decision itself (src/core), SQL (src/pg), HTTP (src/http), host
// commands (src/lifecycle, src/ssh). The loop never reads a clock inside decide(): it reads one
// Now per tick and passes it in.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "common/log.h"
#include "config/config.h"
#include "core/decide.h"
#include "core/snapshot_store.h"
#include "metrics/metrics.h"
#include "pg/node_prober.h"
#include "runtime/action_executor.h"
#include "runtime/admin_queue.h"
#include "runtime/node_operations.h"
#include "runtime/promotion.h"
#include "runtime/state_file.h"

namespace pgfailover::runtime {

core::Policy policyFromConfig(const config::Config& config);

class TickLoop {
 public:
  TickLoop(const config::Config& config, core::SnapshotStore& snapshots, metrics::Metrics& metrics,
           Logger& log, AdminQueue* requests = nullptr);
  ~TickLoop();

  // Loads the state file (if configured). An unreadable or corrupt file is an error: starting
  // without it could forget that a node must be fenced.
  Status restoreState();
  // Ticks until requestStop(); returns within a tick's work after it.
  void run();
  // One tick: observe, decide, act, publish. `scheduled` is when the tick was due; the decision
  // measures time on that schedule so tick-to-tick jitter never delays a timeout by a tick.
  void tickOnce(SteadyTime scheduled);
  void tickOnce() { tickOnce(std::chrono::steady_clock::now()); }
  void requestStop();
  // A promotion attempt ended (the promotion worker calls this): the tick in progress stops
  // waiting for slow probes and the next one runs now, so the promoted node is seen at once.
  void promotionFinished();

  // Called on the loop's thread after every tick (readiness and the service watchdog).
  void setTickObserver(std::function<void()> observer) { tick_observer_ = std::move(observer); }
  // A reload (SIGHUP) changed what the decision reads: the next tick decides with `config`'s
  // policy. Only the policy is taken; the caller checked that nothing else changed.
  void reloadPolicy(const config::Config& config);

  const core::Memory& memory() const { return memory_; }

 private:
  core::ClusterView observe();
  void settleProbe(std::size_t node);
  void logChanges(const core::Decision& decision, const core::ClusterView& view);
  void persist(const core::Decision& decision, WallTime now);

  const config::Config& config_;
  std::vector<std::string> warnings_;  // config::tlsWarnings, published in every snapshot
  core::Policy policy_;
  core::SnapshotStore& snapshots_;
  metrics::Metrics& metrics_;
  Logger& log_;
  AdminQueue* requests_;
  std::vector<std::unique_ptr<pg::NodeProber>> probers_;
  // Per node: a probe (and a ping) that may outlive the tick that started it, and the last
  // finished one. Declared after probers_: a running probe ends before its prober goes.
  std::vector<std::future<core::NodeObservation>> inflight_;
  std::vector<core::NodeObservation> last_seen_;
  std::vector<std::future<bool>> pings_;
  std::vector<std::optional<bool>> last_ping_;
  std::unique_ptr<NodeOperations> operations_;
  std::unique_ptr<PromotionWorker> promotions_;
  std::unique_ptr<ActionExecutor> executor_;
  std::unique_ptr<StateFile> state_file_;
  PersistedState persisted_;
  std::shared_ptr<const std::string> history_json_;

  core::Memory memory_;
  std::shared_ptr<const core::Snapshot> last_snapshot_;
  std::uint64_t tick_ = 0;
  std::string last_rule_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<bool> stop_{false};
  bool tick_now_ = false;  // guarded by mutex_
  std::atomic<bool> promotion_finished_{false};
  std::function<void()> tick_observer_;
  std::optional<core::Policy> pending_policy_;  // guarded by mutex_
};

}  // namespace pgfailover::runtime
