#include "core/effects.h"

#include "core/describe.h"

namespace pgfailover::core {

namespace {

// synchronous_standby_names for the current primary, or nullopt to leave it as it is.
// The value lists replicas by application_name (the node name, as rejoin writes it).
std::string synchronousNames(const Facts& f, bool healthy_only) {
  std::string names;
  for (std::size_t i = 0; i < f.view->nodes.size(); ++i) {
    if (i == *f.primary || (healthy_only && !f.healthy_replica[i])) continue;
    names += (names.empty() ? "" : ", ") + std::string("\"") + f.node(i).name + "\"";
  }
  return names.empty() ? "" : "FIRST 1 (" + names + ")";
}

void promoteNode(const Facts& f, Decision& d, std::size_t node, const std::string& why) {
  // The old primary, for the fencing hook; a switchover fenced it already and needs no hook.
  // With no primary known (a forced failover), the first node stands for it, as it always has.
  Promote promote;
  if (!f.memory->switchover && f.primary.value_or(0) != node)
    promote.replaces = f.primary.value_or(0);
  d.actions.push_back(Action{.node = node, .detail = why, .op = promote});
  d.next.promoting = node;
  d.next.unconfirmed_promotion = node;
  d.next.promotion_may_land = node;
  d.next.promotion_may_land_start_us = f.node(node).postmaster_start_us;
  d.next.promote_issued_at = f.now.steady;
  d.next.promote_attempts = f.memory->promote_attempts + 1;
  d.next.veto.reset();
}

void fenceNode(Decision& d, std::size_t node, const std::string& why) {
  d.actions.push_back(Action{.node = node, .detail = why, .op = Fence{}});
}

// Slots are kept only for nodes pgfailover manages (a host executor exists), because only
// those are sure to stream from the slot: a rejoin writes primary_slot_name. A slot nobody
// uses would retain WAL until the primary's disk fills.
bool managed(const Facts& f, std::size_t node) {
  const NodeOperation* op = f.view->operation(node);
  return op && op->available;
}

// After a promotion the new primary gets a slot for every other node at once, so a rejoining
// node never waits for one.
void createSlotsFor(const Facts& f, Decision& d, std::size_t primary) {
  if (!f.policy->slots) return;
  for (std::size_t i = 0; i < f.view->nodes.size(); ++i) {
    if (i == primary || i >= f.policy->slot_names.size() || !managed(f, i)) continue;
    d.actions.push_back(Action{.node = primary,
                               .detail = "slot for " + f.nameOf(i) + " on the new primary",
                               .op = CreateSlot{.slot = f.policy->slot_names[i]}});
  }
}

// How often a replica streaming without its slot is asked again to use it.
constexpr Millis kSlotUseRetry{30000};

void startSwitchover(const Facts& f, Decision& d, std::size_t target, std::uint64_t request_id,
                     const std::string& why) {
  Switchover sw;
  sw.from = *f.primary;
  sw.to = target;
  sw.started_at = f.now.steady;
  sw.started_at_wall = f.now.wall;
  sw.request_id = request_id;
  d.next.switchover = sw;
  fenceNode(d, *f.primary,
            "switchover to " + f.nameOf(target) + ": stop writes on " + f.nameOf(*f.primary) +
                " so the target can catch up");
  d.events.push_back(Event{.kind = EventKind::kSwitchover,
                           .node = f.node(target).name,
                           .from = f.node(*f.primary).name,
                           .to = f.node(target).name,
                           .result = EventResult::kStarted,
                           .reason = why});
}

}  // namespace

void maintainSynchronousStandbys(const Facts& f, Decision& d) {
  const auto& policy = *f.policy;
  if (policy.sync_mode == SyncMode::kOff || !f.primary_ok) return;
  const auto& current = f.node(*f.primary).synchronous_standby_names;
  std::string desired;
  if (policy.sync_mode == SyncMode::kStrict) {
    desired = synchronousNames(f, false);
  } else if (f.replica_healthy) {
    desired = synchronousNames(f, true);
  } else if (!current.empty()) {
    // Commits wait for a standby that is gone; let them, for standalone_after.
    std::optional<SteadyTime> gone_since;
    for (std::size_t i = 0; i < f.view->nodes.size(); ++i)
      if (i != *f.primary && f.unhealthy_since[i] &&
          (!gone_since || *f.unhealthy_since[i] > *gone_since))
        gone_since = f.unhealthy_since[i];
    const bool waited = gone_since && elapsed(*gone_since, f.now.steady) >= policy.standalone_after;
    desired = waited ? "" : current;
    if (waited)
      d.events.push_back(Event{.kind = EventKind::kSynchronous,
                               .node = f.node(*f.primary).name,
                               .result = EventResult::kStandalone,
                               .reason = "no replica for " +
                                         formatSeconds(policy.standalone_after) +
                                         "; the primary commits alone"});
  }
  if (desired == current) return;
  d.actions.push_back(Action{.node = *f.primary,
                             .detail = desired.empty()
                                           ? "synchronous replication suspended: no healthy replica"
                                           : "synchronous replication to " + desired,
                             .op = SetSynchronousStandbys{.names = desired}});
}

void issuePromote(const Facts& f, Decision& d) {
  const std::size_t node = f.memory->promoting ? *f.memory->promoting : *f.candidate;
  promoteNode(f, d, node, "pg_promote(wait => true) on " + f.nameOf(node));
}

void maintainSlots(const Facts& f, Decision& d) {
  const auto& policy = *f.policy;
  if (!policy.slots || !f.primary_ok) return;
  const auto& primary = f.node(*f.primary);
  if (!primary.slots_observed) return;
  for (std::size_t i = 0; i < f.view->nodes.size(); ++i) {
    if (i == *f.primary || i >= policy.slot_names.size() || !managed(f, i)) continue;
    const std::string& name = policy.slot_names[i];
    const ReplicationSlot* slot = nullptr;
    for (const auto& s : primary.slots)
      if (s.name == name) slot = &s;
    const bool gone_too_long =
        !f.node(i).reachable && f.unhealthy_since[i] &&
        elapsed(*f.unhealthy_since[i], f.now.steady) >= policy.slot_drop_after;
    if (!slot && !gone_too_long) {
      d.actions.push_back(Action{
          .node = *f.primary, .detail = "slot for " + f.nameOf(i), .op = CreateSlot{.slot = name}});
    } else if (slot && !slot->active && f.healthy_replica[i] && f.node(i).wal_receiver &&
               f.node(i).wal_receiver->slot_name != name) {
      // A replica cloned without the slot (pg_basebackup -R alone, as the usual how-to does)
      // streams around it, and the unused slot would retain WAL until the disk fills. Since
      // PostgreSQL 13 primary_slot_name takes effect on reload: set it on the replica.
      auto& asked = d.next.slot_use_requested_at;
      asked.resize(f.view->nodes.size());
      if (!asked[i] || elapsed(*asked[i], f.now.steady) >= kSlotUseRetry) {
        d.actions.push_back(
            Action{.node = i,
                   .detail = f.nameOf(i) + " streams without its slot '" + name +
                             "', which would retain WAL for nothing: set primary_slot_name on it",
                   .op = UseSlot{.slot = name}});
        asked[i] = f.now.steady;
      }
    } else if (slot && !slot->active && gone_too_long) {
      const std::string why = f.nameOf(i) + " has been unreachable for " +
                              formatSeconds(elapsed(*f.unhealthy_since[i], f.now.steady)) +
                              "; dropping its slot so retained WAL cannot fill the disk";
      d.actions.push_back(Action{.node = *f.primary, .detail = why, .op = DropSlot{.slot = name}});
      d.events.push_back(Event{.kind = EventKind::kSlotDropped,
                               .node = f.node(i).name,
                               .result = EventResult::kSucceeded,
                               .reason = why});
    }
  }
}

void completeFailover(const Facts& f, Decision& d) {
  const std::size_t to = *f.memory->promoting;
  // The record holds plain node names: /status and the state file carry them as data.
  const std::string from = f.memory->primary ? f.node(*f.memory->primary).name : "";
  if (f.memory->switchover) {
    const auto& sw = *f.memory->switchover;
    d.events.push_back(Event{.kind = EventKind::kSwitchover,
                             .node = f.node(to).name,
                             .from = f.node(sw.from).name,
                             .to = f.node(to).name,
                             .result = EventResult::kSucceeded,
                             .reason = "planned switchover",
                             .duration = elapsed(sw.started_at, f.now.steady)});
    d.switchover_completed = true;
    d.next.switchover.reset();
  } else {
    FailoverRecord record;
    record.started_at = f.memory->failing_since_wall.value_or(f.now.wall);
    record.completed_at = f.now.wall;
    record.from = from;
    record.to = f.node(to).name;
    record.duration =
        f.memory->failing_since ? elapsed(*f.memory->failing_since, f.now.steady) : Millis{0};
    record.reason = f.memory->last_failover_reason;
    d.next.last_failover = record;
    d.next.failovers = f.memory->failovers + 1;
    d.failover_completed = true;
    d.events.push_back(Event{.kind = EventKind::kFailover,
                             .node = f.node(to).name,
                             .from = f.memory->primary ? f.node(*f.memory->primary).name : "",
                             .to = f.node(to).name,
                             .result = EventResult::kSucceeded,
                             .reason = record.reason,
                             .duration = record.duration});
  }
  d.next.primary = to;
  d.next.synchronous_standby.reset();
  d.next.promoting.reset();
  d.next.promote_attempts = 0;
  d.next.failing_since.reset();
  d.next.failing_since_wall.reset();
  createSlotsFor(f, d, to);
}

void abandonPromotion(const Facts& f, Decision& d) {
  d.next.promoting.reset();
  d.next.promote_attempts = 0;
  d.next.switchover.reset();
  d.failover_failed = true;
  d.events.push_back(Event{.kind = EventKind::kFailover,
                           .node = f.node(*f.memory->promoting).name,
                           .result = EventResult::kFailed,
                           .reason = "promotion not confirmed; the old primary is healthy again"});
}

void giveUpPromotion(const Facts& f, Decision& d) {
  d.events.push_back(
      Event{.kind = EventKind::kFailover,
            .node = f.node(*f.memory->promoting).name,
            .result = EventResult::kFailed,
            .reason = "promotion failed " + std::to_string(f.memory->promote_attempts) + " times"});
  d.next.promoting.reset();
  d.next.switchover.reset();
  d.next.veto = VetoReason::kPromoteAttemptsExhausted;
  if (f.memory->veto != VetoReason::kPromoteAttemptsExhausted)
    d.new_veto = VetoReason::kPromoteAttemptsExhausted;
  d.failover_failed = true;
}

void fenceStale(const Facts& f, Decision& d) {
  for (auto i : f.stale_writable) {
    const std::string why = f.nameOf(i) + " is writable on timeline " +
                            std::to_string(f.node(i).timeline) + ", the primary " +
                            f.nameOf(*f.primary) + " is on " +
                            std::to_string(f.node(*f.primary).timeline);
    fenceNode(d, i, why);
    if (f.memory->state != ClusterState::kFencingRequired)
      d.events.push_back(Event{.kind = EventKind::kFence,
                               .node = f.node(i).name,
                               .result = EventResult::kStarted,
                               .reason = why});
  }
}

void unfenceSelfFencedPrimary(const Facts& f, Decision& d) {
  const std::string why = f.nameOf(*f.primary) +
                          " fenced itself (its lease ran out while it heard from neither "
                          "pgfailover nor a replica); it is still the primary";
  d.actions.push_back(
      Action{.node = *f.primary, .detail = why + ": let it take writes again", .op = Unfence{}});
  // Its guard gives a node writable again a whole lease, as if a heartbeat had committed now.
  d.next.heartbeat_seen_at = f.now.steady;
  if (f.memory->state != ClusterState::kPrimaryFailing || !f.memory->failing_since)
    d.events.push_back(Event{.kind = EventKind::kUnfence,
                             .node = f.node(*f.primary).name,
                             .result = EventResult::kStarted,
                             .reason = why});
}

void clearFailure(const Facts&, Decision& d) {
  d.next.veto.reset();
  d.next.promote_attempts = 0;
}

void issueRejoin(const Facts& f, Decision& d) {
  d.actions.push_back(Action{.node = *f.rejoin,
                             .detail = "rejoin " + f.nameOf(*f.rejoin) + " as a replica of " +
                                       f.nameOf(*f.primary) +
                                       " (pg_rewind, re-clone as fallback): " + f.rejoin_why,
                             .op = Rejoin{.follow = *f.primary}});
  d.events.push_back(Event{.kind = EventKind::kRejoin,
                           .node = f.node(*f.rejoin).name,
                           .to = f.node(*f.primary).name,
                           .result = EventResult::kStarted,
                           .reason = f.rejoin_why});
}

void beginOperatorSwitchover(const Facts& f, Decision& d) {
  startSwitchover(f, d, *f.request_target, f.view->request->id, "requested by an operator");
}

void beginFailback(const Facts& f, Decision& d) {
  startSwitchover(f, d, *f.policy->preferred, 0,
                  "failback to the preferred node " + f.nameOf(*f.policy->preferred));
}

void promoteSwitchoverTarget(const Facts& f, Decision& d) {
  const auto& sw = *f.memory->switchover;
  // A fenced primary is "failing" by design during a switchover; that is not a failure timer.
  d.next.failing_since.reset();
  d.next.failing_since_wall.reset();
  promoteNode(f, d, sw.to,
              "switchover: " + f.nameOf(sw.to) + " replayed everything " + f.nameOf(sw.from) +
                  " wrote; pg_promote(wait => true)");
}

void abortSwitchover(const Facts& f, Decision& d) {
  const auto& sw = *f.memory->switchover;
  // A target seen out of recovery was promoted (a late pg_promote): its history wins, and the
  // old primary stays fenced.
  if (f.primary == sw.from)
    d.actions.push_back(Action{.node = sw.from,
                               .detail = "switchover aborted (" + f.switchover_problem + "): let " +
                                         f.nameOf(sw.from) + " take writes again",
                               .op = Unfence{}});
  d.next.heartbeat_seen_at = f.now.steady;  // a whole lease for the unfenced node's guard
  d.events.push_back(Event{.kind = EventKind::kSwitchover,
                           .node = f.node(sw.to).name,
                           .from = f.node(sw.from).name,
                           .to = f.node(sw.to).name,
                           .result = EventResult::kFailed,
                           .reason = f.switchover_problem,
                           .duration = elapsed(sw.started_at, f.now.steady)});
  d.next.switchover.reset();
}

void keepSwitchoverFence(const Facts& f, Decision& d) {
  const auto& sw = *f.memory->switchover;
  if (f.node(sw.from).writable())
    fenceNode(d, sw.from, "switchover: " + f.nameOf(sw.from) + " still accepts writes");
}

void beginOperatorFailover(const Facts& f, Decision& d) {
  const std::string old_primary = f.primary ? f.node(*f.primary).name : "";
  if (f.primary && f.node(*f.primary).reachable && f.node(*f.primary).writable())
    fenceNode(d, *f.primary,
              "operator failover: stop writes on " + f.nameOf(*f.primary) + " before promoting " +
                  f.nameOf(*f.request_target));
  d.next.failing_since = f.failing_since.value_or(f.now.steady);
  d.next.failing_since_wall = d.next.failing_since_wall.value_or(f.now.wall);
  d.next.promote_attempts = 0;
  promoteNode(f, d, *f.request_target,
              "operator failover: pg_promote(wait => true) on " + f.nameOf(*f.request_target));
  d.events.push_back(Event{.kind = EventKind::kFailover,
                           .node = f.node(*f.request_target).name,
                           .from = old_primary,
                           .to = f.node(*f.request_target).name,
                           .result = EventResult::kStarted,
                           .reason = std::string("requested by an operator") +
                                     (f.view->request->force ? " (forced)" : "")});
}

void recordUnseenPromotion(const Facts& f, Decision& d) {
  const auto& m = *f.memory;
  FailoverRecord record;
  record.started_at = f.now.wall;
  record.completed_at = f.now.wall;
  record.from = f.nameOf(*m.primary);
  record.to = f.nameOf(*f.primary);
  record.reason = record.to + " is primary on timeline " +
                  std::to_string(f.node(*f.primary).timeline) + ", newer than timeline " +
                  std::to_string(m.last_primary_timeline) + " of " + record.from +
                  ": a promotion pgfailover did not see complete (restarted during a failover, "
                  "or promoted outside pgfailover)";
  d.next.last_failover = record;
  d.next.failovers = m.failovers + 1;
  d.failover_completed = true;
  // A switchover in flight is moot: its target, or another node, is the primary now.
  d.next.switchover.reset();
  d.events.push_back(Event{.kind = EventKind::kFailover,
                           .node = f.node(*f.primary).name,
                           .from = f.node(*m.primary).name,
                           .to = f.node(*f.primary).name,
                           .result = EventResult::kSucceeded,
                           .reason = record.reason});
}

void recordVeto(const Facts& f, Decision& d) {
  d.next.veto = f.veto;
  if (f.memory->veto != f.veto) d.new_veto = f.veto;
}

}  // namespace pgfailover::core
