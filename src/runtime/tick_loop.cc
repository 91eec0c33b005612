#include "runtime/tick_loop.h"

#include <future>

namespace pgfailover::runtime {

core::Policy policyFromConfig(const config::Config& config) {
  const auto& f = config.failover;
  core::Policy policy;
  policy.confirmed_down_timeout = f.confirmed_down_timeout;
  policy.unresponsive_timeout = f.unresponsive_timeout;
  policy.starting_up_grace = f.starting_up_grace;
  policy.replica_silence = f.replica_silence;
  policy.max_lag_bytes = f.max_lag_bytes;
  policy.promote_timeout = f.promote_timeout;
  policy.promote_attempts = f.promote_attempts;
  policy.heartbeat = config.probe.heartbeat;
  return policy;
}

Status SqlActionExecutor::execute(const core::Action& action) {
  if (action.node >= probers_.size())
    return {StatusCode::kInvalidArgument, "action names node index " + std::to_string(action.node)};
  auto& prober = *probers_[action.node];
  switch (action.kind) {
    case core::ActionKind::kPromote:
      return prober.promote(promote_timeout_);
    case core::ActionKind::kFence:
      return prober.fenceReadOnly();
    case core::ActionKind::kUnfence:
    case core::ActionKind::kRejoin:
    case core::ActionKind::kCreateSlot:
    case core::ActionKind::kDropSlot:
      return {StatusCode::kFailedPrecondition,
              std::string(core::toString(action.kind)) + " is not available in this build"};
  }
  return {StatusCode::kInternal, "unknown action"};
}

TickLoop::TickLoop(const config::Config& config, http::SnapshotStore& snapshots,
                   metrics::Metrics& metrics, Logger& log)
    : config_(config),
      policy_(policyFromConfig(config)),
      snapshots_(snapshots),
      metrics_(metrics),
      log_(log) {
  std::vector<pg::NodeProber*> raw;
  for (const auto& node : config.nodes) {
    probers_.push_back(std::make_unique<pg::NodeProber>(node, config.probe));
    raw.push_back(probers_.back().get());
  }
  executor_ = std::make_unique<SqlActionExecutor>(std::move(raw), config.failover.promote_timeout);
}

TickLoop::~TickLoop() = default;

void TickLoop::requestStop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
}

core::ClusterView TickLoop::observe() {
  // Probe every node at once: a hung node costs one deadline, not one per node.
  std::vector<std::future<core::NodeObservation>> pending;
  for (std::size_t i = 0; i < probers_.size(); ++i) {
    bool write_heartbeat = true;
    if (last_snapshot_ && i < last_snapshot_->nodes.size()) {
      auto role = last_snapshot_->nodes[i].role;
      // Never write to a node that is about to be fenced: its writes are thrown away.
      write_heartbeat = role != core::NodeRole::kNeedsFencing;
    }
    auto* prober = probers_[i].get();
    pending.push_back(std::async(
        std::launch::async, [prober, write_heartbeat] { return prober->probe(write_heartbeat); }));
  }
  core::ClusterView view;
  for (std::size_t i = 0; i < pending.size(); ++i) {
    auto observation = pending[i].get();
    observation.name = config_.nodes[i].name;
    view.nodes.push_back(std::move(observation));
  }
  return view;
}

void TickLoop::tickOnce(SteadyTime scheduled) {
  const auto started = std::chrono::steady_clock::now();
  const Now now{scheduled, std::chrono::system_clock::now() - (started - scheduled)};
  core::ClusterView view = observe();
  core::Decision decision = core::decide(memory_, view, now, policy_);

  logChanges(decision, view);
  for (const auto& action : decision.actions) {
    const std::string node = config_.nodes[action.node].name;
    log_.warn(toString(action.kind), action.detail, {{"node", node}});
    const auto action_started = std::chrono::steady_clock::now();
    Status status = executor_->execute(action);
    const auto took = elapsed(action_started, std::chrono::steady_clock::now());
    if (status.isOk())
      log_.warn(std::string(toString(action.kind)) + "_done",
                std::string(toString(action.kind)) + " of '" + node + "' succeeded",
                {{"node", node}, {"took_ms", std::to_string(took.count())}});
    else
      log_.error(std::string(toString(action.kind)) + "_failed", status.message(),
                 {{"node", node}, {"took_ms", std::to_string(took.count())}});
  }
  memory_ = decision.next;

  auto snapshot =
      std::make_shared<core::Snapshot>(core::buildSnapshot(decision, view, now, policy_, ++tick_));
  snapshot->cluster_name = config_.cluster_name;
  for (std::size_t i = 0; i < snapshot->nodes.size(); ++i) {
    snapshot->nodes[i].host = config_.nodes[i].host;
    snapshot->nodes[i].port = config_.nodes[i].port;
  }
  metrics_.recordDecision(decision);
  metrics_.observeTick(*snapshot);
  metrics_.recordTickDuration(elapsed(started, std::chrono::steady_clock::now()));
  last_snapshot_ = snapshot;
  snapshots_.publish(std::move(snapshot));
}

void TickLoop::logChanges(const core::Decision& decision, const core::ClusterView& view) {
  const auto& previous = memory_;
  for (std::size_t i = 0; i < view.nodes.size(); ++i) {
    const auto& now = view.nodes[i];
    const bool was_reachable = last_snapshot_ && i < last_snapshot_->nodes.size()
                                   ? last_snapshot_->nodes[i].observation.reachable
                                   : true;
    const auto was_failure = last_snapshot_ && i < last_snapshot_->nodes.size()
                                 ? last_snapshot_->nodes[i].observation.failure
                                 : core::ProbeFailure::kNone;
    if (now.failure != was_failure && now.failure != core::ProbeFailure::kNone)
      log_.warn("probe_failed", now.error,
                {{"node", now.name}, {"failure", core::toString(now.failure)}});
    else if (now.reachable && !was_reachable)
      log_.info("probe_recovered", "node '" + now.name + "' answers again", {{"node", now.name}});
  }
  if (decision.next.state != previous.state || decision.rule != last_rule_) {
    const auto level =
        decision.next.state == core::ClusterState::kHealthy ? LogLevel::kInfo : LogLevel::kWarn;
    log_.log(level, "decision", decision.reason,
             {{"state", core::toString(decision.next.state)}, {"rule", decision.rule}});
  }
  last_rule_ = decision.rule;
  if (decision.new_veto)
    log_.warn("failover_vetoed", decision.reason, {{"veto", core::toString(*decision.new_veto)}});
  if (decision.failover_completed && decision.next.last_failover) {
    const auto& f = *decision.next.last_failover;
    log_.warn("failover_completed", "failover from " + f.from + " to " + f.to + " completed",
              {{"duration_ms", std::to_string(f.duration.count())}});
  }
}

void TickLoop::run() {
  auto next = std::chrono::steady_clock::now();
  while (!stop_) {
    tickOnce(next);
    next += config_.probe.interval;
    const auto now = std::chrono::steady_clock::now();
    // After a long tick (a promotion), start again from now instead of ticking in a burst.
    if (next < now) next = now;
    std::unique_lock lock(mutex_);
    wake_.wait_until(lock, next, [this] { return stop_.load(); });
  }
}

}  // namespace pgfailover::runtime
