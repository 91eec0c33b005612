#include "runtime/tick_loop.h"

#include <chrono>
#include <exception>
#include <future>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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
      clock_(seams.clock ? std::move(seams.clock) : std::make_unique<SystemClock>()),
      coordinator_(seams.coordinator ? std::move(seams.coordinator)
                                     : std::make_unique<SingleInstanceCoordinator>()) {
  if (probes_.size() != config.nodes.size() || !executor_)
    throw std::invalid_argument("the tick loop needs one probe per configured node (" +
                                std::to_string(config.nodes.size()) + ", got " +
                                std::to_string(probes_.size()) + ") and an action executor");
  inflight_.resize(probes_.size());
  inflight_since_.resize(probes_.size());
  last_seen_.resize(probes_.size());
  pings_.resize(probes_.size());
  last_ping_.resize(probes_.size());
  heartbeat_value_.resize(probes_.size());
  heartbeat_changed_at_.resize(probes_.size());
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
  if (persisted_.promotion_intent && persisted_.primary == persisted_.promotion_intent) {
    // Stopped between recording the promotion as done and clearing the intent (the next
    // tick's write): nothing to wait for.
    persisted_.promotion_intent.reset();
  } else if (persisted_.promotion_intent) {
    for (std::size_t i = 0; i < config_.nodes.size(); ++i)
      if (config_.nodes[i].name == *persisted_.promotion_intent) {
        // Stopped between writing the intent and seeing the promotion land: it may still land,
        // so it is waited for (confirmed, retried on that node, or given up), never doubled.
        memory_.state = core::ClusterState::kPromoting;
        memory_.promoting = i;
        memory_.unconfirmed_promotion = i;
        memory_.promotion_may_land = i;  // its postmaster's start time is learnt when seen
        memory_.promotion_may_land_start_us = 0;
        memory_.promote_issued_at = clock_->steady();
        memory_.promote_attempts = 1;
        intent_outstanding_ = true;
        log_.warn("promotion_intent_found",
                  "state file " + state_file_->path() + ": a promotion of '" +
                      config_.nodes[i].name +
                      "' was issued before the stop and not confirmed; waiting for it");
      }
    if (!intent_outstanding_) persisted_.promotion_intent.reset();
  }
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

bool TickLoop::coordinate(SteadyTime now) {
  coordination_ = coordinator_->step(now);
  if (!coordinator_->shared()) return true;
  // Judged after the step, which may have waited out a deadline on every endpoint: judged at
  // the tick's start, an instance cut off from etcd went on writing the heartbeat and acting
  // seconds after its window had closed and another instance had taken over.
  const SteadyTime stepped = clock_->steady();
  bool acting = coordinator_->acting(stepped);
  if (acting && !was_acting_ && !takeOver(stepped)) acting = false;
  if (was_acting_ && !acting)
    log_.warn("acting_stopped", "this instance stops acting: " +
                                    std::string(coordination_.etcd_reachable
                                                    ? "another instance holds the leader key"
                                                    : "its etcd lease was not renewed in time"));
  was_acting_ = acting;
  coordination_.acting = acting;
  return acting;
}

bool TickLoop::takeOver(SteadyTime now) {
  // What this instance decided while another one acted was never acted on: the action memory
  // (a promotion issued, a switchover in flight, a slot requested) comes from the shared memory
  // instead, exactly as a restart takes it from the state file. What it observed itself (how
  // long the primary has been failing, when its heartbeat was last seen, per-node timers) is
  // kept, so a takeover does not restart a failover countdown from zero.
  std::optional<nlohmann::json> state_document;
  std::optional<nlohmann::json> intent;
  Status read = coordinator_->read(kSharedStateDocument, state_document);
  if (read.isOk()) read = coordinator_->read(kPromotionIntentDocument, intent);
  if (!read.isOk()) {
    log_.warn("takeover_delayed",
              "holds the leader key but cannot read the shared state yet: " + read.message());
    return false;
  }
  std::optional<PersistedState> state;
  if (state_document) {
    std::string error;
    state = parseState(state_document->dump(), error);
    if (!state) {
      log_.error("takeover_refused", "the shared state in etcd is not valid (" + error +
                                         "); this instance does not act until it is repaired");
      return false;
    }
  }
  core::Memory seeded = memory_;
  seeded.promoting.reset();
  seeded.promote_request_id = 0;
  seeded.unconfirmed_promotion.reset();
  seeded.promotion_may_land.reset();
  seeded.promotion_may_land_start_us = 0;
  seeded.promote_issued_at = {};
  seeded.promote_attempts = 0;
  seeded.switchover.reset();
  // A give-up of promotions it never issued (attempts "exhausted" while nobody acted) is not
  // carried over either; vetoes that come from observations are found again this tick.
  seeded.veto.reset();
  // The transition table is keyed by the state: one that only an issued action leads to is left
  // for what the observations say (a failing primary keeps its countdown).
  if (seeded.state == core::ClusterState::kPromoting ||
      seeded.state == core::ClusterState::kSwitchingOver)
    seeded.state =
        seeded.failing_since ? core::ClusterState::kPrimaryFailing : core::ClusterState::kDegraded;
  for (auto& at : seeded.slot_use_requested_at) at.reset();
  if (state) {
    std::optional<std::size_t> primary;
    if (state->primary)
      for (std::size_t i = 0; i < config_.nodes.size(); ++i)
        if (config_.nodes[i].name == *state->primary) primary = i;
    if (primary) {
      seeded.primary = primary;
      seeded.last_primary_timeline = state->primary_timeline;
      seeded.last_primary_system_identifier = state->system_identifier;
    }
    seeded.failovers = state->failovers;
    persisted_ = *state;
    history_json_ = std::make_shared<const std::string>(historyToJson(persisted_.history));
  }
  intent_outstanding_ = false;
  // The first instance ever to act shares its state at once, whether or not it changes.
  share_state_ = !state;
  std::string found;
  if (intent && intent->is_object() && (*intent)["node"].is_string() && state &&
      state->primary == (*intent)["node"].get<std::string>() &&
      state->primary_timeline > intent->value("timeline", std::uint32_t{0})) {
    // The acting instance died between recording the promotion as done and deleting its
    // intent (the next tick's write): done already, not to be waited for, counted or recorded
    // again. The intent goes with this instance's first state write.
    intent_outstanding_ = true;
    found = ", the promotion of '" + *state->primary + "' already recorded";
  } else if (intent && intent->is_object() && (*intent)["node"].is_string()) {
    const std::string node = (*intent)["node"].get<std::string>();
    for (std::size_t i = 0; i < config_.nodes.size(); ++i)
      if (config_.nodes[i].name == node) {
        // The promotion may have landed or may still land: waited for like one this instance
        // issued itself (confirmed, retried on the same node, or given up), never a second one
        // elsewhere.
        seeded.state = core::ClusterState::kPromoting;
        seeded.promoting = i;
        seeded.unconfirmed_promotion = i;
        seeded.promotion_may_land = i;
        seeded.promote_issued_at = now;
        seeded.promote_attempts = 1;
        intent_outstanding_ = true;
        found = ", a promotion of '" + node + "' possibly under way (intent of instance '" +
                intent->value("instance", std::string("?")) + "', term " +
                std::to_string(intent->value("term", std::int64_t{0})) + ")";
      }
  }
  memory_ = std::move(seeded);
  log_.warn("acting", "this instance ('" + coordinator_->instance() + "') acts now, term " +
                          std::to_string(coordinator_->term()) + "; shared state: " +
                          (state && state->primary ? "primary '" + *state->primary + "'"
                                                   : std::string("none yet")) +
                          found);
  return true;
}

void TickLoop::vouchForHeartbeat(core::ClusterView& view, SteadyTime now) {
  const Millis window = config_.etcd.lease_ttl + 2 * config_.probe.interval;
  const bool nobody_acts = coordination_.acting_instance.empty() || !coordination_.etcd_reachable;
  for (std::size_t i = 0; i < view.nodes.size() && i < heartbeat_value_.size(); ++i) {
    auto& node = view.nodes[i];
    if (node.heartbeat_unix_seconds && heartbeat_value_[i] != node.heartbeat_unix_seconds) {
      heartbeat_value_[i] = node.heartbeat_unix_seconds;
      heartbeat_changed_at_[i] = now;
    }
    if (!node.writable() || node.failure != core::ProbeFailure::kNone || node.heartbeat_written)
      continue;
    const bool advancing =
        heartbeat_changed_at_[i] && elapsed(*heartbeat_changed_at_[i], now) <= window;
    if (advancing || nobody_acts) node.heartbeat_written = true;
  }
}

core::ClusterView TickLoop::observe(bool acting) {
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
    bool write_heartbeat =
        acting && (!memory_.primary || *memory_.primary == i || memory_.promoting == i);
    if (last_snapshot_ && i < last_snapshot_->nodes.size() &&
        last_snapshot_->nodes[i].role == core::NodeRole::kNeedsFencing)
      write_heartbeat = false;
    auto* probe = probes_[i].get();
    if (coordinator_->shared() && write_heartbeat)
      probe->setHeartbeatWriter(coordinator_->instance(), coordinator_->term());
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
  const bool acting = coordinate(started);
  core::ClusterView view = observe(acting);
  if (!acting) vouchForHeartbeat(view, started);
  core::Decision decision = core::decide(memory_, view, now, policy_);

  logChanges(decision, view);
  // From here on actions may have run: the decision's memory is kept whatever fails below, so
  // that the next tick does not take them again.
  acted_ = true;
  act(decision, acting, now);
  if (decision.request_refused) log_.warn("request_refused", *decision.request_refused);
  memory_ = decision.next;
  persist(decision, now.wall, acting);
  publish(decision, view, now, started);
}

void TickLoop::act(const core::Decision& decision, bool acting, Now now) {
  if (decision.actions.empty()) return;
  std::string kinds;
  for (const auto& action : decision.actions)
    kinds += (kinds.empty() ? "" : ", ") + std::string(core::toString(action.kind())) + " on '" +
             config_.nodes[action.node].name + "'";
  if (!acting) {
    log_.info("not_acting", "decided " + kinds + "; not taken: " +
                                (coordination_.acting_instance.empty()
                                     ? std::string("no instance acts (etcd unreachable or no "
                                                   "leader yet)")
                                     : "instance '" + coordination_.acting_instance + "' acts"));
    return;
  }
  if (coordinator_->shared()) {
    // One guarded write before the batch: etcd applies it only while this instance still
    // leads, and a promotion's intent is in it, so a successor knows the promotion may land.
    std::vector<DocumentWrite> writes;
    bool promoting = false;
    for (const auto& action : decision.actions) {
      const auto* promote = action.as<core::Promote>();
      if (!promote) continue;
      promoting = true;
      nlohmann::json intent = {
          {"node", config_.nodes[action.node].name},
          {"replaces", promote->replaces && *promote->replaces < config_.nodes.size()
                           ? nlohmann::json(config_.nodes[*promote->replaces].name)
                           : nlohmann::json(nullptr)},
          {"timeline", memory_.last_primary_timeline},
          {"term", coordinator_->term()},
          {"instance", coordinator_->instance()},
          {"at_unix_seconds", std::chrono::duration<double>(now.wall.time_since_epoch()).count()}};
      writes.emplace_back(kPromotionIntentDocument, std::move(intent));
    }
    if (Status guarded = coordinator_->guard(clock_->steady(), writes); !guarded.isOk()) {
      log_.error("not_acting", "decided " + kinds + "; not taken: " + guarded.message());
      // Whatever this tick decided is not what happened: the next acting tick takes the shared
      // memory over again.
      was_acting_ = false;
      coordination_.acting = false;
      return;
    }
    if (promoting) intent_outstanding_ = true;
  } else if (state_file_) {
    // A single instance records its intent in the state file before pg_promote is called, so
    // that a restart in between knows the promotion may land.
    for (const auto& action : decision.actions)
      if (action.as<core::Promote>()) {
        persisted_.promotion_intent = config_.nodes[action.node].name;
        intent_outstanding_ = true;
        if (Status saved = state_file_->save(persisted_); !saved.isOk())
          log_.error("state_save_failed",
                     "promotion intent not written (" + saved.message() +
                         "); promoting anyway: a restart before it is confirmed sees it by the "
                         "node's timeline");
      }
  }
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
  snapshot->coordination = coordination_;
  // Events and their counters belong to the instance that acted: the others decide the same
  // transitions without taking them, and a failover summed over the instances counts once.
  if (coordination_.acting) metrics_.recordDecision(decision);
  metrics_.observeTick(*snapshot);
  metrics_.recordTickDuration(elapsed(started, clock_->steady()));
  last_snapshot_ = snapshot;
  snapshots_.publish(std::move(snapshot));
}

void TickLoop::persist(const core::Decision& decision, WallTime now, bool acting) {
  const auto& next = decision.next;
  // The promotion whose intent is shared was confirmed or abandoned: the intent goes in the
  // same guarded write as the state that records it.
  const bool clear_intent = intent_outstanding_ && !next.promoting && !next.unconfirmed_promotion;
  std::optional<std::string> primary;
  if (next.primary) primary = config_.nodes[*next.primary].name;
  const bool changed = primary != persisted_.primary ||
                       next.last_primary_timeline != persisted_.primary_timeline ||
                       next.last_primary_system_identifier != persisted_.system_identifier ||
                       next.failovers != persisted_.failovers || !decision.events.empty();
  if (!changed && !clear_intent && !share_state_) return;
  persisted_.primary = primary;
  persisted_.primary_timeline = next.last_primary_timeline;
  persisted_.system_identifier = next.last_primary_system_identifier;
  persisted_.failovers = next.failovers;
  if (clear_intent && !coordinator_->shared()) {
    persisted_.promotion_intent.reset();
    intent_outstanding_ = false;
  }
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
  if (coordinator_->shared() && acting && was_acting_) {
    std::vector<DocumentWrite> writes;
    writes.emplace_back(kSharedStateDocument, nlohmann::json::parse(toJson(persisted_)));
    if (clear_intent) writes.emplace_back(kPromotionIntentDocument, std::nullopt);
    if (Status status = coordinator_->guard(clock_->steady(), writes); status.isOk()) {
      if (clear_intent) intent_outstanding_ = false;
      share_state_ = false;
    } else {
      log_.error("state_save_failed", "shared state not written to etcd: " + status.message());
    }
  }
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
  // Only the acting instance writes the heartbeat, so only it releases the lease.
  const bool acting =
      !coordinator_->shared() || (was_acting_ && coordinator_->acting(clock_->steady()));
  if (acting && config_.probe.primary_lease > Millis{0} && memory_.primary) {
    const auto& name = config_.nodes[*memory_.primary].name;
    if (Status released = probes_[*memory_.primary]->releaseLease(); released.isOk())
      log_.info("lease_released", "lease of primary " + name + " released: its guard stands down");
    else
      log_.warn("lease_not_released", "could not release the lease of primary " + name + ": " +
                                          released.message() +
                                          "; its guard fences it if its replica is gone too");
  }
  coordinator_->resign();
}

}  // namespace pgfailover::runtime
