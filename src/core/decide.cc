// The driver: evaluates the facts, keeps the memory's bookkeeping, fires the first row of the
// table that applies and the maintenance after it, and answers the operator's request.
#include "core/decide.h"

#include <algorithm>

namespace pgfailover::core {

namespace {

// When a probe's answer was in hand: what it saw (a heartbeat commit, a streaming replica) may
// have happened as late as that, so a lease is counted from there.
SteadyTime answeredAt(const NodeObservation& node, const Now& now) {
  return std::max(now.steady, node.probed_at + node.probe_duration);
}

// Each event of an operator's request carries the request's id, from the refusal or the start
// to the outcome ticks later, so a client waits for its own request and nothing else.
void tagRequestEvents(const Memory& memory, const ClusterView& view, Decision& d) {
  const std::uint64_t asked = view.request ? view.request->id : 0;
  if (d.rule == Rule::kOperatorFailover) d.next.promote_request_id = asked;
  if (!d.next.promoting) d.next.promote_request_id = 0;
  for (auto& e : d.events) {
    if (e.kind == EventKind::kRequest) {
      e.request_id = asked;
    } else if (e.kind == EventKind::kSwitchover) {
      const auto& sw = d.next.switchover ? d.next.switchover : memory.switchover;
      e.request_id = sw ? sw->request_id : 0;
    } else if (e.kind == EventKind::kFailover) {
      e.request_id = d.rule == Rule::kOperatorFailover ? asked : memory.promote_request_id;
    }
  }
}

// A node that was down and streams again without a rejoin of pgfailover's came back by
// itself: its host's start guard, systemd or an operator started it as a standby. That is a
// rejoin too, recorded with its duration from the last tick it was seen down, so that /history
// and pgfailover_rejoins_total show how every node came back, not only pgfailover's attempts
// (which may all have failed on a host that was still gone).
void trackReturns(const Facts& f, const std::vector<bool>& rejoined_by_us, Decision& d) {
  const auto& nodes = f.view->nodes;
  auto& away = d.next.away_seen_at;
  away.resize(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const NodeObservation& node = nodes[i];
    const NodeOperation* op = f.view->operation(i);
    if ((f.primary == i && !f.contested) || rejoined_by_us[i]) {
      away[i].reset();
    } else if (!node.reachable && node.failure != ProbeFailure::kStartingUp) {
      away[i] = f.now.steady;
    } else if (away[i] && f.healthy_replica[i] && !(op && op->running)) {
      const Millis took = elapsed(*away[i], f.now.steady);
      d.events.push_back(Event{
          .kind = EventKind::kRejoin,
          .node = node.name,
          .result = EventResult::kSucceeded,
          .reason = node.name +
                    " came back as a standby started by its host (its start guard, systemd or an "
                    "operator) and streams from " +
                    f.nameOf(*f.primary) + " on timeline " + std::to_string(node.timeline) +
                    "; pgfailover ran nothing on it",
          .duration = took,
          .method = "host_start"});
      away[i].reset();
    }
  }
}

}  // namespace

Decision decide(const Memory& memory, const ClusterView& view, Now now, const Policy& policy) {
  const Facts f = evaluateFacts(memory, view, now, policy);
  Decision d;
  d.next = memory;

  // Bookkeeping shared by every row: who the primary is and what it was last seen at.
  // Who the primary is, and its position, are remembered from a full view only: a partial one
  // could hide the remembered primary and make a promotion nobody saw go unrecorded.
  const bool settled = f.all_probed && !f.contested;
  if (settled) d.next.primary = f.primary;
  if (f.primary_ok) d.next.heartbeat_seen_at = answeredAt(view.nodes[*f.primary], now);
  d.next.streaming_seen_at.resize(view.nodes.size());
  for (std::size_t i = 0; i < view.nodes.size(); ++i)
    if (view.nodes[i].streaming()) d.next.streaming_seen_at[i] = answeredAt(view.nodes[i], now);
  // The timeline each standby last streamed on: a standby cut off from the primary keeps it (it
  // cannot diverge), while the timeline its probe reads without a WAL receiver comes from its
  // last checkpoint and lags behind every failover until the next restartpoint.
  d.next.streamed_timeline.resize(view.nodes.size(), 0);
  for (std::size_t i = 0; i < view.nodes.size(); ++i) {
    const auto& node = view.nodes[i];
    if (node.streaming() && node.wal_receiver->received_timeline != 0)
      d.next.streamed_timeline[i] = node.wal_receiver->received_timeline;
    else if (node.reachable && !node.in_recovery)
      d.next.streamed_timeline[i] = 0;
  }
  // A promoted node seen again, in recovery or out of it, is no longer an unknown: whatever
  // happened to the promotion is now in plain sight (a rule below may issue a new one).
  if (memory.unconfirmed_promotion && memory.promoting != memory.unconfirmed_promotion &&
      *memory.unconfirmed_promotion < view.nodes.size() &&
      view.nodes[*memory.unconfirmed_promotion].reachable)
    d.next.unconfirmed_promotion.reset();
  if (const auto& pending = memory.promotion_may_land; pending && *pending < view.nodes.size()) {
    const auto& node = view.nodes[*pending];
    const bool landed = node.reachable && !node.in_recovery;
    const bool postmaster_down = node.failure == ProbeFailure::kRefused;
    const bool restarted = node.reachable && node.postmaster_start_us != 0 &&
                           memory.promotion_may_land_start_us != 0 &&
                           node.postmaster_start_us != memory.promotion_may_land_start_us;
    if (landed || postmaster_down || restarted)
      d.next.promotion_may_land.reset();
    else if (memory.promotion_may_land_start_us == 0 && node.reachable)
      // Taken over from a state file or another instance: the first start time seen is the
      // one to compare later ones with.
      d.next.promotion_may_land_start_us = node.postmaster_start_us;
  }
  d.next.failing_since = f.failing_since;
  if (f.failing_since) {
    d.next.failing_since_wall =
        (memory.failing_since == f.failing_since && memory.failing_since_wall)
            ? *memory.failing_since_wall
            : now.wall;
  } else {
    d.next.failing_since_wall.reset();
  }
  if (f.primary && settled) {
    const auto& primary = view.nodes[*f.primary];
    if (primary.writable()) {
      if (primary.current_lsn) d.next.last_primary_position = primary.current_lsn;
      d.next.last_primary_timeline = primary.timeline;
      d.next.last_primary_system_identifier = primary.system_identifier;
      if (f.primary_ok) {
        d.next.synchronous_standby.reset();
        for (const auto& peer : primary.replication)
          for (std::size_t i = 0; i < view.nodes.size(); ++i)
            if (peer.sync_state == "sync" && peer.application_name == view.nodes[i].name &&
                i != *f.primary)
              d.next.synchronous_standby = i;
      }
      if (primary.heartbeat_written && primary.heartbeat_unix_seconds) {
        d.next.previous_primary_heartbeat = memory.last_primary_heartbeat;
        d.next.last_primary_heartbeat = primary.heartbeat_unix_seconds;
      }
    }
  }

  d.next.unhealthy_since = f.unhealthy_since;
  d.next.starting_up_since = f.starting_up_since;
  // Each finished node operation is reported once.
  d.next.operations_seen.resize(view.operations.size(), 0);
  std::vector<bool> rejoined_by_us(view.nodes.size(), false);
  for (std::size_t i = 0; i < view.operations.size(); ++i) {
    const auto& op = view.operations[i];
    if (op.finished > d.next.operations_seen[i]) {
      d.next.operations_seen[i] = op.finished;
      if (i < rejoined_by_us.size()) rejoined_by_us[i] = op.last_succeeded;
      d.events.push_back(
          Event{.kind = EventKind::kRejoin,
                .node = view.nodes[i].name,
                .result = op.last_succeeded          ? EventResult::kSucceeded
                          : op.last_host_unreachable ? EventResult::kHostUnreachable
                                                     : EventResult::kFailed,
                .reason = op.last_succeeded
                              ? "rejoined by " + op.last_method +
                                    (op.last_why.empty() ? std::string() : ": " + op.last_why)
                              : op.last_error,
                .duration = op.last_duration,
                .method = op.last_method});
    }
  }
  trackReturns(f, rejoined_by_us, d);

  for (const auto& row : transitionTable()) {
    if (!row.from.empty() &&
        std::find(row.from.begin(), row.from.end(), memory.state) == row.from.end())
      continue;
    if (!row.applies(f)) continue;
    d.rule = row.rule;
    d.reason = row.explain(f);
    if (row.to == ClusterState::kPromoting && memory.state != ClusterState::kPromoting)
      d.next.last_failover_reason = d.reason;
    if (row.effect) row.effect(f, d);
    for (const auto& step : maintenanceSteps())
      if (std::find(step.after.begin(), step.after.end(), row.rule) != step.after.end())
        step.run(f, d);
    d.next.state = row.to;
    // A promotion is awaited only while promoting; left any other way (a split brain), it
    // would be retried, and block the unfence of a self-fenced primary, ever after.
    if (row.to != ClusterState::kPromoting) d.next.promoting.reset();
    break;
  }
  if (view.request) {
    const bool carried_out =
        d.rule == Rule::kOperatorFailover || d.rule == Rule::kOperatorSwitchover;
    if (!carried_out) {
      d.request_refused = !f.request_refusal.empty()
                              ? f.request_refusal
                              : std::string("the cluster is ") + toString(memory.state) +
                                    " and cannot carry it out now: " + d.reason;
      d.events.push_back(Event{
          .kind = EventKind::kRequest,
          .result = EventResult::kRefused,
          .reason = std::string(toString(view.request->kind)) + " refused: " + *d.request_refused});
    }
  }
  tagRequestEvents(memory, view, d);
  if (d.next.state != memory.state || memory.state_since == SteadyTime{})
    d.next.state_since = now.steady;
  return d;
}

}  // namespace pgfailover::core
