#include "runtime/tick_loop.h"

#include <exception>
#include <future>
#include <stdexcept>

namespace pgfailover::runtime {

namespace {

// How much longer than its own deadline the loop waits for a probe, a ping, or (before an action
// on its node) a running probe: libpq's deadlines are kept to a few milliseconds, so this only
// ever ends the wait for a prober that does not keep its deadline.
constexpr Millis kProbeGrace{1000};
// A ping is bounded at 1.5 s by its runner.
constexpr Millis kPingWait{1500 + kProbeGrace.count()};

template <typename T>
bool ready(const std::future<T>& f) {
  return f.valid() && f.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

std::string describe(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

}  // namespace

core::Policy policyFromConfig(const config::Config& config) {
  const auto& f = config.failover;
  core::Policy policy;
  static_cast<FailoverSettings&>(policy) = f;
  policy.icmp = config.probe.icmp;
  policy.heartbeat = config.probe.heartbeat;
  policy.primary_lease = config.probe.primary_lease;
  policy.slots = config.replication.slots;
  policy.slot_drop_after = config.replication.slot_drop_after;
  for (const auto& node : config.nodes) policy.slot_names.push_back(replicationSlotName(node.name));
  for (std::size_t i = 0; i < config.nodes.size(); ++i)
    if (config.nodes[i].name == f.preferred_node) policy.preferred = i;
  if (!policy.preferred && !config.nodes.empty()) policy.preferred = 0;
  policy.sync_mode = config.synchronous.mode;
  policy.standalone_after = config.synchronous.standalone_after;
  return policy;
}

TickLoop::TickLoop(const config::Config& config, core::SnapshotSink& snapshots,
                   metrics::Metrics& metrics, Logger& log, AdminQueue* requests)
    : TickLoop(config, clusterSeams(config, log, [this] { promotionFinished(); }), snapshots,
               metrics, log, requests) {}

TickLoop::TickLoop(const config::Config& config, TickSeams seams, core::SnapshotSink& snapshots,
                   metrics::Metrics& metrics, Logger& log, AdminQueue* requests)
    : config_(config),
      warnings_(config::tlsWarnings(config)),
      policy_(policyFromConfig(config)),
      snapshots_(snapshots),
      metrics_(metrics),
      log_(log),
      requests_(requests),
      probe_wait_(config.probe.connect_timeout + config.probe.query_timeout + kProbeGrace),
      probes_(std::move(seams.probes)),
      executor_(std::move(seams.executor)),
      clock_(seams.clock ? std::move(seams.clock) : std::make_unique<SystemClock>()) {
  if (probes_.size() != config.nodes.size() || !executor_)
    throw std::invalid_argument("the tick loop needs one probe per configured node (" +
                                std::to_string(config.nodes.size()) + ", got " +
                                std::to_string(probes_.size()) + ") and an action executor");
  inflight_.resize(probes_.size());
  inflight_since_.resize(probes_.size());
  last_seen_.resize(probes_.size());
  pings_.resize(probes_.size());
  last_ping_.resize(probes_.size());
  if (!config.state_file.empty()) state_file_ = std::make_unique<StateFile>(config.state_file);
  history_json_ = std::make_shared<const std::string>("[]");
}

TickLoop::~TickLoop() {
  // The workers end while the loop they call back (promotionFinished) is still whole.
  executor_.reset();
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

core::ClusterView TickLoop::observe() {
  // Probe every node at once: a hung node costs one deadline, not one per node. A probe still
  // running from an earlier tick (which ended early, see below) is not started again nor waited
  // for: its node's last observation stands in until it ends.
  const std::size_t count = probes_.size();
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
    auto* probe = probes_[i].get();
    inflight_since_[i] = std::chrono::steady_clock::now();
    inflight_[i] = std::async(std::launch::async,
                              [probe, write_heartbeat] { return probe->probe(write_heartbeat); });
    started[i] = true;
  }
  // The seed's ICMP check, concurrently with the probes and bounded like them.
  std::vector<bool> pinging(count, false);
  if (config_.probe.icmp) {
    for (std::size_t i = 0; i < count; ++i) {
      if (ready(pings_[i])) last_ping_[i] = pings_[i].get();
      if (pings_[i].valid()) continue;
      auto* probe = probes_[i].get();
      pings_[i] = std::async(std::launch::async, [probe] { return probe->pingHost(); });
      pinging[i] = true;
    }
  }
  // Wait for what this tick started. A promotion that finishes meanwhile ends the wait: the
  // promoted node is probed again on the tick that follows at once, instead of after a silent
  // old primary's connect deadline; the probes still running carry over. So does a probe that
  // outlives its deadline, and its node counts as silent meanwhile.
  enum class Waited { kReady, kPromotionFinished, kPastDeadline };
  auto wait = [this](auto& future, SteadyTime until) {
    while (future.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready) {
      if (promotion_finished_) return Waited::kPromotionFinished;
      if (std::chrono::steady_clock::now() >= until) return Waited::kPastDeadline;
    }
    return Waited::kReady;
  };
  for (std::size_t i = 0; i < count; ++i) {
    if (!started[i]) continue;
    const Waited waited = wait(inflight_[i], inflight_since_[i] + probe_wait_);
    if (waited == Waited::kReady) {
      last_seen_[i] = inflight_[i].get();
    } else if (waited == Waited::kPastDeadline) {
      core::NodeObservation silent;
      silent.probed = true;
      silent.probed_at = clock_->steady() - probe_wait_;
      silent.probe_duration = probe_wait_;
      silent.failure = core::ProbeFailure::kTimeout;
      silent.error = "node '" + config_.nodes[i].name + "': probe still running " +
                     std::to_string(probe_wait_.count()) +
                     " ms after it started, past its deadline";
      last_seen_[i] = std::move(silent);
    }
  }
  const auto pings_until = std::chrono::steady_clock::now() + kPingWait;
  for (std::size_t i = 0; i < count; ++i)
    if (pinging[i] && wait(pings_[i], pings_until) == Waited::kReady)
      last_ping_[i] = pings_[i].get();

  core::ClusterView view;
  for (std::size_t i = 0; i < count; ++i) {
    auto observation = last_seen_[i];
    observation.name = config_.nodes[i].name;
    if (config_.probe.icmp) observation.host_answers_ping = last_ping_[i];
    view.nodes.push_back(std::move(observation));
  }
  view.operations = executor_->operationReports();
  if (requests_) view.request = requests_->take();
  return view;
}

bool TickLoop::settleProbe(std::size_t node) {
  // Actions use the node's prober, which never runs two things at once: a probe still running on
  // it ends first (within its deadline), or the action is not taken.
  if (node >= inflight_.size() || !inflight_[node].valid()) return true;
  if (inflight_[node].wait_until(inflight_since_[node] + probe_wait_) != std::future_status::ready)
    return false;
  last_seen_[node] = inflight_[node].get();
  return true;
}

void TickLoop::reloadPolicy(const config::Config& config) {
  auto policy = policyFromConfig(config);
  std::lock_guard lock(mutex_);
  pending_policy_ = std::move(policy);
}

bool TickLoop::tickOnce(SteadyTime scheduled) {
  acted_ = false;
  try {
    tick(scheduled);
    return true;
  } catch (...) {
    const std::string what = describe(std::current_exception());
    metrics_.recordTickFailure();
    log_.error("tick_failed", "tick failed (" + what + "); " +
                                  (acted_ ? "its actions started and its decision is kept"
                                          : "nothing was acted on; the next tick decides again") +
                                  ", the loop goes on");
    return false;
  }
}

void TickLoop::tick(SteadyTime scheduled) {
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
  const auto started = clock_->steady();
  const Now now{scheduled, clock_->wall() - (started - scheduled)};
  core::ClusterView view = observe();
  core::Decision decision = core::decide(memory_, view, now, policy_);

  logChanges(decision, view);
  // From here on actions may have run: the decision's memory is kept whatever fails below, so
  // that the next tick does not take them again.
  acted_ = true;
  act(decision);
  if (decision.request_refused) log_.warn("request_refused", *decision.request_refused);
  memory_ = decision.next;
  persist(decision, now.wall);
  publish(decision, view, now, started);
}

void TickLoop::act(const core::Decision& decision) {
  for (const auto& action : decision.actions) {
    const std::string node = config_.nodes[action.node].name;
    const bool routine = action.kind() == core::ActionKind::kCreateSlot;
    log_.log(routine ? LogLevel::kInfo : LogLevel::kWarn, core::toString(action.kind()),
             action.detail, {{"node", node}});
    const auto action_started = clock_->steady();
    Status status;
    if (!settleProbe(action.node)) {
      status = {StatusCode::kDeadlineExceeded,
                "not taken: the probe of '" + node + "' is still running past its deadline"};
    } else {
      // An action that throws failed, like one that returns an error; the tick goes on.
      try {
        status = executor_->execute(action);
      } catch (...) {
        status = {StatusCode::kInternal, "threw: " + describe(std::current_exception())};
      }
    }
    const auto took = elapsed(action_started, clock_->steady());
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
}

void TickLoop::publish(const core::Decision& decision, const core::ClusterView& view, Now now,
                       SteadyTime started) {
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
  metrics_.recordTickDuration(elapsed(started, clock_->steady()));
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
    if (tickOnce(next) && tick_observer_) tick_observer_();
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
    if (Status released = probes_[*memory_.primary]->releaseLease(); released.isOk())
      log_.info("lease_released", "lease of primary " + name + " released: its guard stands down");
    else
      log_.warn("lease_not_released", "could not release the lease of primary " + name + ": " +
                                          released.message() +
                                          "; its guard fences it if its replica is gone too");
  }
}

}  // namespace pgfailover::runtime
