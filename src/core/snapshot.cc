#include <algorithm>

#include "core/decide.h"
#include "core/describe.h"

namespace pgfailover::core {

using S = ClusterState;

Snapshot buildSnapshot(const Decision& decision, const ClusterView& view, Now now,
                       const Policy& policy, std::uint64_t tick) {
  const Memory& m = decision.next;
  Snapshot s;
  s.tick = tick;
  s.tick_at = now.steady;
  s.tick_at_wall = now.wall;
  s.state = m.state;
  s.reason = decision.reason;
  s.primary = m.primary;
  s.system_identifier = m.last_primary_system_identifier;
  s.newest_timeline = m.last_primary_timeline;
  s.unconfirmed_promotion = m.unconfirmed_promotion;
  s.promotion_may_land = m.promotion_may_land;
  s.veto = m.veto;
  s.last_failover = m.last_failover;
  s.operations = view.operations;
  s.sync_mode = policy.sync_mode;
  s.synchronous_standby = m.synchronous_standby;
  if (policy.sync_mode == SyncMode::kOn && m.primary && *m.primary < view.nodes.size()) {
    const auto& p = view.nodes[*m.primary];
    s.sync_standalone = p.writable() && p.synchronous_standby_names.empty();
  }
  if (m.state == S::kSwitchingOver || m.state == S::kPromoting) s.switchover = m.switchover;
  s.ready = !view.nodes.empty() && std::all_of(view.nodes.begin(), view.nodes.end(),
                                               [](const auto& n) { return n.probed; });
  s.split_brain = isSplitBrain(writableNodes(view));

  if (m.failing_since && m.primary && m.primary < view.nodes.size() &&
      (m.state == S::kPrimaryFailing || m.state == S::kFailoverVetoed)) {
    const auto kind = timeoutKindFor(policy, view.nodes[*m.primary]);
    s.timeout =
        RunningTimeout{kind, timeoutFor(policy, kind), elapsed(*m.failing_since, now.steady)};
  }

  std::optional<Lsn> primary_position = m.last_primary_position;
  std::optional<std::uint32_t> primary_timeline;
  if (m.primary && *m.primary < view.nodes.size()) {
    const auto& p = view.nodes[*m.primary];
    if (p.writable()) {
      primary_position = p.current_lsn;
      primary_timeline = p.timeline;
    }
  }
  for (std::size_t i = 0; i < view.nodes.size(); ++i) {
    const auto& obs = view.nodes[i];
    NodeSnapshot n;
    n.name = obs.name;
    n.observation = obs;
    if (i < m.streamed_timeline.size()) n.streamed_timeline = m.streamed_timeline[i];
    if (m.primary == i && m.state != S::kSplitBrain) {
      n.role = NodeRole::kPrimary;
    } else if (obs.reachable && obs.in_recovery) {
      n.role = NodeRole::kReplica;
      n.lag_bytes = lagBehind(primary_position, obs.position());
      const auto& reference =
          m.previous_primary_heartbeat ? m.previous_primary_heartbeat : m.last_primary_heartbeat;
      if (reference && obs.heartbeat_unix_seconds)
        n.lag_seconds = std::max(0.0, *reference - *obs.heartbeat_unix_seconds);
    } else if (obs.writable() && m.state != S::kSplitBrain && primary_timeline &&
               obs.timeline < *primary_timeline) {
      n.role = NodeRole::kNeedsFencing;
    } else if (obs.reachable && !obs.in_recovery && obs.read_only) {
      n.role = NodeRole::kFenced;
    } else {
      n.role = NodeRole::kUnknown;
    }
    s.nodes.push_back(std::move(n));
  }
  return s;
}

}  // namespace pgfailover::core
