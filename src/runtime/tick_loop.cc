#include "runtime/tick_loop.h"

#include <future>
#include <type_traits>
#include <variant>

#include "ssh/local_runner.h"
#include "ssh/shell.h"

namespace pgfailover::runtime {

core::Policy policyFromConfig(const config::Config& config) {
  const auto& f = config.failover;
  core::Policy policy;
  policy.confirmed_down_timeout = f.confirmed_down_timeout;
  policy.unresponsive_timeout = f.unresponsive_timeout;
  policy.host_lost_timeout = f.host_lost_timeout;
  policy.icmp = config.probe.icmp;
  policy.starting_up_grace = f.starting_up_grace;
  policy.replica_silence = f.replica_silence;
  policy.max_lag_bytes = f.max_lag_bytes;
  policy.promote_timeout = f.promote_timeout;
  policy.promote_attempts = f.promote_attempts;
  policy.heartbeat = config.probe.heartbeat;
  policy.primary_lease = config.probe.primary_lease;
  policy.rejoin = f.rejoin;
  policy.rejoin_grace = f.rejoin_grace;
  policy.rejoin_retry_interval = f.rejoin_retry_interval;
  policy.switchover_timeout = f.switchover_timeout;
  policy.slots = config.replication.slots;
  policy.slot_drop_after = config.replication.slot_drop_after;
  for (const auto& node : config.nodes) policy.slot_names.push_back(replicationSlotName(node.name));
  policy.failback = f.failback;
  policy.failback_delay = f.failback_delay;
  for (std::size_t i = 0; i < config.nodes.size(); ++i)
    if (config.nodes[i].name == f.preferred_node) policy.preferred = i;
  if (!policy.preferred && !config.nodes.empty()) policy.preferred = 0;
  policy.sync_mode = config.synchronous.mode;
  policy.standalone_after = config.synchronous.standalone_after;
  return policy;
}

Status ClusterActionExecutor::execute(const core::Action& action) {
  if (action.node >= probers_.size())
    return {StatusCode::kInvalidArgument, "action names node index " + std::to_string(action.node)};
  auto& prober = *probers_[action.node];
  return std::visit(
      [&](const auto& op) -> Status {
        using Op = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<Op, core::Promote>) {
          // Nothing here waits on a host: the old primary's host is often the one that is gone.
          // Fence at rest runs on its host through the node-operation worker (bounded there), the
          // fencing hook and pg_promote on the promotion worker; the decision confirms the
          // promotion by observation.
          const bool replaces_old = op.replaces && *op.replaces < config_.nodes.size();
          if (replaces_old) operations_.startFenceAtRest(*op.replaces);
          return promotions_.start(action.node, replaces_old ? op.replaces : std::nullopt);
        } else if constexpr (std::is_same_v<Op, core::Fence>) {
          return prober.fenceReadOnly();
        } else if constexpr (std::is_same_v<Op, core::Unfence>) {
          return prober.unfence();
        } else if constexpr (std::is_same_v<Op, core::UseSlot>) {
          return prober.useReplicationSlot(op.slot);
        } else if constexpr (std::is_same_v<Op, core::CreateSlot>) {
          return prober.createReplicationSlot(op.slot);
        } else if constexpr (std::is_same_v<Op, core::DropSlot>) {
          return prober.dropReplicationSlot(op.slot);
        } else if constexpr (std::is_same_v<Op, core::SetSynchronousStandbys>) {
          return prober.setSynchronousStandbyNames(op.names);
        } else {
          static_assert(std::is_same_v<Op, core::Rejoin>, "every action kind is handled");
          if (!operations_.available(action.node))
            return {StatusCode::kFailedPrecondition, "no ssh or local executor for this node"};
          operations_.startRejoin(action.node, op.follow);
          return Status::ok();
        }
      },
      action.op);
}

TickLoop::TickLoop(const config::Config& config, http::SnapshotStore& snapshots,
                   metrics::Metrics& metrics, Logger& log, AdminQueue* requests)
    : config_(config),
      warnings_(config::tlsWarnings(config)),
      policy_(policyFromConfig(config)),
      snapshots_(snapshots),
      metrics_(metrics),
      log_(log),
      requests_(requests) {
  std::vector<pg::NodeProber*> raw;
  for (const auto& node : config.nodes) {
    std::vector<std::string> peers;
    for (const auto& other : config.nodes)
      if (other.name != node.name) peers.push_back(other.name);
    probers_.push_back(std::make_unique<pg::NodeProber>(node, config.probe, std::move(peers)));
    raw.push_back(probers_.back().get());
  }
  inflight_.resize(probers_.size());
  last_seen_.resize(probers_.size());
  pings_.resize(probers_.size());
  last_ping_.resize(probers_.size());
  operations_ = std::make_unique<NodeOperations>(config, log);
  promotions_ = std::make_unique<PromotionWorker>(config, log, [this] { promotionFinished(); });
  executor_ = std::make_unique<ClusterActionExecutor>(config, std::move(raw), *operations_,
                                                      *promotions_, log);
  if (!config.state_file.empty()) state_file_ = std::make_unique<StateFile>(config.state_file);
  history_json_ = std::make_shared<const std::string>("[]");
}

TickLoop::~TickLoop() {
  promotions_->shutdown();
  operations_->shutdown();
}

Status TickLoop::restoreState() {
  if (!state_file_) return Status::ok();
  Status status;
  auto loaded = state_file_->load(status);
  if (!loaded) return status;
  persisted_ = std::move(*loaded);
  if (persisted_.primary) {
    for (std::size_t i = 0; i < config_.nodes.size(); ++i)
      if (config_.nodes[i].name == *persisted_.primary) memory_.primary = i;
    if (!memory_.primary)
      log_.warn("state_ignored", "the state file names primary '" + *persisted_.primary +
                                     "', which is not configured; deriving it from the cluster");
  }
  if (memory_.primary) {
    memory_.last_primary_timeline = persisted_.primary_timeline;
    memory_.last_primary_system_identifier = persisted_.system_identifier;
  }
  memory_.failovers = persisted_.failovers;
  history_json_ = std::make_shared<const std::string>(historyToJson(persisted_.history));
  log_.info("state_restored",
            "state file " + state_file_->path() + ": primary " +
                (persisted_.primary ? "'" + *persisted_.primary + "'" : std::string("unknown")) +
                ", timeline " + std::to_string(persisted_.primary_timeline) + ", " +
                std::to_string(persisted_.history.size()) + " past events");
  return Status::ok();
}

void TickLoop::promotionFinished() {
  {
    std::lock_guard lock(mutex_);
    tick_now_ = true;
    promotion_finished_ = true;
  }
  wake_.notify_all();
}

void TickLoop::requestStop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
}

namespace {
template <typename T>
bool ready(const std::future<T>& f) {
  return f.valid() && f.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}
}  // namespace

core::ClusterView TickLoop::observe() {
  // Probe every node at once: a hung node costs one deadline, not one per node. A probe still
  // running from an earlier tick (which ended early, see below) is not started again nor waited
  // for: its node's last observation stands in until it ends.
  const std::size_t count = probers_.size();
  std::vector<bool> started(count, false);
  for (std::size_t i = 0; i < count; ++i) {
    if (ready(inflight_[i])) last_seen_[i] = inflight_[i].get();
    if (inflight_[i].valid()) continue;
    // The heartbeat goes to the primary pgfailover knows (and to a node being promoted), never
    // to any other node that happens to be writable: an old primary coming back must not take
    // a single write, not even pgfailover's own. With no primary known yet (first start), every
    // writable node gets it, so that the primary can be adopted.
    bool write_heartbeat = !memory_.primary || *memory_.primary == i || memory_.promoting == i;
    if (last_snapshot_ && i < last_snapshot_->nodes.size() &&
        last_snapshot_->nodes[i].role == core::NodeRole::kNeedsFencing)
      write_heartbeat = false;
    auto* prober = probers_[i].get();
    inflight_[i] = std::async(std::launch::async,
                              [prober, write_heartbeat] { return prober->probe(write_heartbeat); });
    started[i] = true;
  }
  // The seed's ICMP check, concurrently with the probes and bounded like them.
  std::vector<bool> pinging(count, false);
  if (config_.probe.icmp) {
    for (std::size_t i = 0; i < count; ++i) {
      if (ready(pings_[i])) last_ping_[i] = pings_[i].get();
      if (pings_[i].valid()) continue;
      const std::string host = config_.nodes[i].host;
      pings_[i] = std::async(std::launch::async, [host] {
        ssh::LocalRunner runner;
        return runner.run("ping -n -q -c 1 -W 1 " + ssh::shellQuote(host), Millis{1500})
            .succeeded();
      });
      pinging[i] = true;
    }
  }
  // Wait for what this tick started. A promotion that finishes meanwhile ends the wait: the
  // promoted node is probed again on the tick that follows at once, instead of after a silent
  // old primary's connect deadline; the probes still running carry over.
  auto wait = [this](auto& future) {
    while (future.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready)
      if (promotion_finished_) return false;
    return true;
  };
  for (std::size_t i = 0; i < count; ++i)
    if (started[i] && wait(inflight_[i])) last_seen_[i] = inflight_[i].get();
  for (std::size_t i = 0; i < count; ++i)
    if (pinging[i] && wait(pings_[i])) last_ping_[i] = pings_[i].get();

  core::ClusterView view;
  for (std::size_t i = 0; i < count; ++i) {
    auto observation = last_seen_[i];
    observation.name = config_.nodes[i].name;
    if (config_.probe.icmp) observation.host_answers_ping = last_ping_[i];
    view.nodes.push_back(std::move(observation));
  }
  view.operations = operations_->reports();
  if (requests_) view.request = requests_->take();
  return view;
}

void TickLoop::settleProbe(std::size_t node) {
  // Actions use the node's prober; a probe still running on it ends first.
  if (node < inflight_.size() && inflight_[node].valid()) last_seen_[node] = inflight_[node].get();
}

void TickLoop::reloadPolicy(const config::Config& config) {
  auto policy = policyFromConfig(config);
  std::lock_guard lock(mutex_);
  pending_policy_ = std::move(policy);
}

void TickLoop::tickOnce(SteadyTime scheduled) {
  {
    // A reload lands between ticks, so one decision never mixes two policies.
    std::lock_guard lock(mutex_);
    if (pending_policy_) {
      policy_ = std::move(*pending_policy_);
      pending_policy_.reset();
    }
  }
  // A promotion that finished before this tick started is seen by its fresh probes.
  promotion_finished_ = false;
  const auto started = std::chrono::steady_clock::now();
  const Now now{scheduled, std::chrono::system_clock::now() - (started - scheduled)};
  core::ClusterView view = observe();
  core::Decision decision = core::decide(memory_, view, now, policy_);

  logChanges(decision, view);
  for (const auto& action : decision.actions) {
    const std::string node = config_.nodes[action.node].name;
    const bool routine = action.kind() == core::ActionKind::kCreateSlot;
    log_.log(routine ? LogLevel::kInfo : LogLevel::kWarn, core::toString(action.kind()),
             action.detail, {{"node", node}});
    settleProbe(action.node);
    const auto action_started = std::chrono::steady_clock::now();
    Status status = executor_->execute(action);
    const auto took = elapsed(action_started, std::chrono::steady_clock::now());
    const std::string kind = core::toString(action.kind());
    // A rejoin or a promotion only starts here; its worker logs how it ends.
    if (status.isOk() &&
        (action.kind() == core::ActionKind::kRejoin || action.kind() == core::ActionKind::kPromote))
      continue;
    if (status.isOk())
      log_.log(routine ? LogLevel::kInfo : LogLevel::kWarn, kind + "_done",
               kind + " on '" + node + "' succeeded",
               {{"node", node}, {"took_ms", std::to_string(took.count())}});
    else
      log_.error(kind + "_failed", status.message(),
                 {{"node", node}, {"took_ms", std::to_string(took.count())}});
  }
  if (decision.request_refused) log_.warn("request_refused", *decision.request_refused);
  persist(decision, now.wall);
  memory_ = decision.next;

  auto snapshot =
      std::make_shared<core::Snapshot>(core::buildSnapshot(decision, view, now, policy_, ++tick_));
  snapshot->cluster_name = config_.cluster_name;
  for (std::size_t i = 0; i < snapshot->nodes.size(); ++i) {
    snapshot->nodes[i].host = config_.nodes[i].host;
    snapshot->nodes[i].port = config_.nodes[i].port;
    snapshot->nodes[i].sslmode = config_.nodes[i].sslmode;
    snapshot->nodes[i].verifies_server = config::verifiesServer(config_.nodes[i].sslmode);
  }
  snapshot->warnings = warnings_;
  snapshot->history_json = history_json_;
  metrics_.recordDecision(decision);
  metrics_.observeTick(*snapshot);
  metrics_.recordTickDuration(elapsed(started, std::chrono::steady_clock::now()));
  last_snapshot_ = snapshot;
  snapshots_.publish(std::move(snapshot));
}

void TickLoop::persist(const core::Decision& decision, WallTime now) {
  const auto& next = decision.next;
  std::optional<std::string> primary;
  if (next.primary) primary = config_.nodes[*next.primary].name;
  const bool changed = primary != persisted_.primary ||
                       next.last_primary_timeline != persisted_.primary_timeline ||
                       next.last_primary_system_identifier != persisted_.system_identifier ||
                       next.failovers != persisted_.failovers || !decision.events.empty();
  if (!changed) return;
  persisted_.primary = primary;
  persisted_.primary_timeline = next.last_primary_timeline;
  persisted_.system_identifier = next.last_primary_system_identifier;
  persisted_.failovers = next.failovers;
  for (const auto& e : decision.events) {
    HistoryEvent event{now,         core::toString(e.kind),   e.node,   e.from,
                       e.to,        core::toString(e.result), e.reason, e.duration,
                       e.request_id};
    persisted_.addEvent(std::move(event));
    log_.info("event", std::string(core::toString(e.kind)) + " " + core::toString(e.result) +
                           (e.node.empty() ? "" : " on '" + e.node + "'") + ": " + e.reason);
  }
  if (!decision.events.empty())
    history_json_ = std::make_shared<const std::string>(historyToJson(persisted_.history));
  if (state_file_) {
    // Written before the tick's snapshot is published; a failure is loud but not fatal: the
    // cluster itself still tells the truth at the next start (newest timeline wins).
    if (Status status = state_file_->save(persisted_); !status.isOk())
      log_.error("state_save_failed", status.message());
  }
}

void TickLoop::logChanges(const core::Decision& decision, const core::ClusterView& view) {
  const auto& previous = memory_;
  for (std::size_t i = 0; i < view.nodes.size(); ++i) {
    const auto& now = view.nodes[i];
    const bool known = last_snapshot_ && i < last_snapshot_->nodes.size();
    const bool was_reachable = known ? last_snapshot_->nodes[i].observation.reachable : true;
    const auto was_failure =
        known ? last_snapshot_->nodes[i].observation.failure : core::ProbeFailure::kNone;
    if (now.failure != was_failure && now.failure != core::ProbeFailure::kNone)
      log_.warn("probe_failed", now.error,
                {{"node", now.name}, {"failure", core::toString(now.failure)}});
    else if (now.reachable && !was_reachable)
      log_.info("probe_recovered", "node '" + now.name + "' answers again", {{"node", now.name}});
  }
  const std::string rule = decision.rule ? core::toString(*decision.rule) : "";
  if (decision.next.state != previous.state || rule != last_rule_) {
    const auto level =
        decision.next.state == core::ClusterState::kHealthy ? LogLevel::kInfo : LogLevel::kWarn;
    log_.log(level, "decision", decision.reason,
             {{"state", core::toString(decision.next.state)}, {"rule", rule}});
  }
  last_rule_ = rule;
  if (decision.new_veto)
    log_.warn("failover_vetoed", decision.reason, {{"veto", core::toString(*decision.new_veto)}});
  if (decision.failover_completed && decision.next.last_failover) {
    const auto& f = *decision.next.last_failover;
    log_.warn("failover_completed", "failover from '" + f.from + "' to '" + f.to + "' completed",
              {{"duration_ms", std::to_string(f.duration.count())}});
  }
}

void TickLoop::run() {
  auto next = std::chrono::steady_clock::now();
  while (!stop_) {
    tickOnce(next);
    if (tick_observer_) tick_observer_();
    next += config_.probe.interval;
    const auto now = std::chrono::steady_clock::now();
    // After a long tick (a promotion), start again from now instead of ticking in a burst.
    if (next < now) next = now;
    std::unique_lock lock(mutex_);
    wake_.wait_until(lock, next, [this] { return stop_.load() || tick_now_; });
    // Woken early (pg_promote returned): tick now, and keep the interval from here.
    if (tick_now_) {
      tick_now_ = false;
      next = std::min(next, std::chrono::steady_clock::now());
    }
  }
  // A clean stop (an upgrade, maintenance) is not a reason for the primary to fence itself.
  if (config_.probe.primary_lease > Millis{0} && memory_.primary) {
    const auto& name = config_.nodes[*memory_.primary].name;
    if (Status released = probers_[*memory_.primary]->releaseLease(); released.isOk())
      log_.info("lease_released", "lease of primary " + name + " released: its guard stands down");
    else
      log_.warn("lease_not_released", "could not release the lease of primary " + name + ": " +
                                          released.message() +
                                          "; its guard fences it if its replica is gone too");
  }
}

}  // namespace pgfailover::runtime
