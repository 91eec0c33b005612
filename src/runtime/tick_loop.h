// The daemon's loop: once per interval, observe every node (concurrently, each probe bounded by
// its deadline), decide (pure), act (promote, fence, slots: bounded SQL; rejoin: handed to the
// node-operation worker), persist what must survive a restart, publish (snapshot for the HTTP
// API, metrics, log lines on change). The loop owns the decision's memory.
//
// Every side effect goes through a seam (runtime/tick_seams.h): the node probes, the action
// executor, the clock, the snapshot sink. The production wiring is the default; tests replace the
// seams and keep the real decision.
//
// A failed tick (an exception anywhere in it) is logged (`tick_failed`), counted
// (pgfailover_tick_failures_total) and the loop goes on at the next interval. Before any action
// ran, nothing of it is kept: the next tick decides again from the same memory. Once actions start,
// the decision's memory is kept whatever fails after (persisting, publishing), so that an action
// is never taken twice for one decision. An action that throws is a failed action (logged like
// one), not a failed tick. The tick observer (readiness, systemd's watchdog) runs only after a
// tick that completed: a daemon whose every tick fails stops feeding the watchdog and systemd
// restarts it after WatchdogSec, while a failure now and then costs nothing.
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
#include "runtime/action_executor.h"
#include "runtime/admin_queue.h"
#include "runtime/state_file.h"
#include "runtime/tick_seams.h"

namespace pgfailover::runtime {

core::Policy policyFromConfig(const config::Config& config);

class TickLoop {
 public:
  // The production wiring (clusterSeams).
  TickLoop(const config::Config& config, core::SnapshotSink& snapshots, metrics::Metrics& metrics,
           Logger& log, AdminQueue* requests = nullptr);
  // `seams` has one probe per configured node and an executor (std::invalid_argument if not);
  // no clock means the system clocks.
  TickLoop(const config::Config& config, TickSeams seams, core::SnapshotSink& snapshots,
           metrics::Metrics& metrics, Logger& log, AdminQueue* requests = nullptr);
  ~TickLoop();
  TickLoop(const TickLoop&) = delete;
  TickLoop& operator=(const TickLoop&) = delete;

  // Loads the state file (if configured). An unreadable or corrupt file is an error: starting
  // without it could forget that a node must be fenced.
  Status restoreState();
  // Ticks until requestStop(); returns within a tick's work after it. Schedules on the steady
  // clock itself (it waits between ticks), whatever the clock seam says.
  void run();
  // One tick: observe, decide, act, persist, publish. `scheduled` is when the tick was due; the
  // decision measures time on that schedule so tick-to-tick jitter never delays a timeout by a
  // tick. False when the tick failed (see above).
  bool tickOnce(SteadyTime scheduled);
  bool tickOnce() { return tickOnce(clock_->steady()); }
  void requestStop();
  // A promotion attempt ended (the promotion worker calls this): the tick in progress stops
  // waiting for slow probes and the next one runs now, so the promoted node is seen at once.
  void promotionFinished();

  // Called on the loop's thread after every tick that completed (readiness and the watchdog).
  void setTickObserver(std::function<void()> observer) { tick_observer_ = std::move(observer); }
  // A reload (SIGHUP) changed what the decision reads: the next tick decides with `config`'s
  // policy. Only the policy is taken; the caller checked that nothing else changed.
  void reloadPolicy(const config::Config& config);

  const core::Memory& memory() const { return memory_; }

 private:
  void tick(SteadyTime scheduled);
  // Steps the election; true when this instance may act this tick. On becoming acting it takes
  // the shared memory over first (takeOver); when that cannot be read it does not act yet.
  bool coordinate(SteadyTime now);
  bool takeOver(SteadyTime now);
  core::ClusterView observe(bool acting);
  // A non-acting instance writes no heartbeat: it takes the primary as committing when the
  // acting instance's heartbeat keeps advancing there, or when no instance acts at all.
  void vouchForHeartbeat(core::ClusterView& view, SteadyTime now);
  bool settleProbe(std::size_t node);
  void act(const core::Decision& decision, bool acting, Now now);
  void publish(const core::Decision& decision, const core::ClusterView& view, Now now,
               SteadyTime started);
  void logChanges(const core::Decision& decision, const core::ClusterView& view);
  void persist(const core::Decision& decision, WallTime now, bool acting);

  const config::Config& config_;
  std::vector<std::string> warnings_;  // config::tlsWarnings, published in every snapshot
  core::Policy policy_;
  core::SnapshotSink& snapshots_;
  metrics::Metrics& metrics_;
  Logger& log_;
  AdminQueue* requests_;
  // The longest the loop waits for a probe (its deadline and a grace) before it takes a probe
  // still running for a silent node: a prober that does not keep its deadline must not stop the
  // loop.
  Millis probe_wait_;
  std::vector<std::unique_ptr<NodeProbe>> probes_;
  // Per node: a probe (and a ping) that may outlive the tick that started it, and the last
  // finished one. Declared after probes_: a running probe ends before its prober goes.
  std::vector<std::future<core::NodeObservation>> inflight_;
  std::vector<SteadyTime> inflight_since_;
  std::vector<core::NodeObservation> last_seen_;
  std::vector<std::future<bool>> pings_;
  std::vector<std::optional<bool>> last_ping_;
  // Declared after probes_: the executor (and its workers) may use the probes' connections.
  std::unique_ptr<ActionExecutor> executor_;
  std::unique_ptr<Clock> clock_;
  std::unique_ptr<Coordinator> coordinator_;
  core::CoordinationView coordination_;  // as of this tick
  bool was_acting_ = false;              // acted (or could have) on the previous tick
  // A promotion intent is in the shared memory and must be cleared once the promotion is
  // confirmed or abandoned.
  bool intent_outstanding_ = false;
  bool share_state_ = false;  // the shared state is written at the next persist
  // Per node: the last heartbeat value seen and when it last changed (vouchForHeartbeat).
  std::vector<std::optional<double>> heartbeat_value_;
  std::vector<std::optional<SteadyTime>> heartbeat_changed_at_;
  std::unique_ptr<StateFile> state_file_;
  PersistedState persisted_;
  std::shared_ptr<const std::string> history_json_;

  core::Memory memory_;
  std::shared_ptr<const core::Snapshot> last_snapshot_;
  std::uint64_t tick_ = 0;
  bool acted_ = false;  // this tick ran its actions: its decision's memory is kept
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
