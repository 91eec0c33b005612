// The first phase of a tick: what the observations establish (evaluateFacts), before any row
// of the table is chosen.
#include <algorithm>

#include "core/admission.h"
#include "core/decide.h"
#include "core/describe.h"

namespace pgfailover::core {

namespace {

// The candidate still hears the primary: it streams, and its last message is recent.
bool stillHearsPrimary(const Policy& policy, const NodeObservation& candidate) {
  if (!candidate.streaming()) return false;
  const auto& age = candidate.wal_receiver->seconds_since_last_message;
  if (!age) return true;  // streaming with no age known: assume it hears the primary
  return *age * 1000.0 < static_cast<double>(effectiveReplicaSilence(policy, candidate).count());
}

// The old primary's lease guard fences it once the lease of the last heartbeat has run out and
// a replica stopped replying to it for as long. The timeouts are longer than the lease, so this
// only holds a promotion back in the rare case where the primary stopped answering pgfailover
// well after the first failed probe's tick (or a replica kept streaming from it meanwhile).
// Half a second more covers the guard's poll.
constexpr Millis kLeaseGuardMargin{500};

// A tick's time is when its probes started, but nothing is decided before every probe it
// started has ended, and a silent node's probe runs its whole deadline first. The latest end of
// a probe in the view is a lower bound on the real time at which the decision is taken.
SteadyTime decidedAt(const ClusterView& view, const Now& now) {
  SteadyTime at = now.steady;
  for (const auto& node : view.nodes)
    if (node.probed) at = std::max(at, node.probed_at + node.probe_duration);
  return at;
}

// When the old primary's lease guard has fenced it at the latest, or nullopt with no lease.
std::optional<SteadyTime> leaseEnd(const Facts& f) {
  const auto& m = *f.memory;
  if (f.policy->primary_lease <= Millis{0}) return std::nullopt;
  std::optional<SteadyTime> until;
  auto later = [&](const std::optional<SteadyTime>& seen) {
    if (seen && (!until || *seen > *until)) until = seen;
  };
  later(m.heartbeat_seen_at);
  for (std::size_t i = 0; i < m.streaming_seen_at.size(); ++i)
    if (i != f.primary) later(m.streaming_seen_at[i]);
  // A standby pgfailover could not see meanwhile may have replied to the primary until lately:
  // its WAL receiver tells when it last heard from it.
  for (std::size_t i = 0; i < f.view->nodes.size(); ++i) {
    const auto& node = f.view->nodes[i];
    if (i == f.primary || !node.reachable || !node.wal_receiver ||
        !node.wal_receiver->seconds_since_last_message)
      continue;
    const auto age = std::chrono::duration_cast<Millis>(
        std::chrono::duration<double>(*node.wal_receiver->seconds_since_last_message));
    later(f.now.steady - age);
  }
  if (!until) return std::nullopt;
  return *until + f.policy->primary_lease + kLeaseGuardMargin;
}

void holdForTheLease(Facts& f) {
  if (!f.timeout_elapsed) return;
  const auto end = leaseEnd(f);
  if (!end) return;
  // Compared with the tick's start, not with when it decides: a replica seen streaming may
  // still reply (renewing the lease) until just before the next probe finds its WAL receiver
  // stopped, and that probe interval stays in hand this way.
  const SteadyTime lease_end = *end;
  if (f.now.steady >= lease_end) return;
  f.timeout_elapsed = false;
  f.lease_wait = std::chrono::duration_cast<Millis>(lease_end - f.now.steady);
}

void resolvePrimary(Facts& f) {
  const auto& nodes = f.view->nodes;
  const auto& remembered = f.memory->primary;
  if (f.writable.size() >= 2) {
    std::uint32_t newest = 0;
    for (auto i : f.writable) newest = std::max(newest, nodes[i].timeline);
    std::vector<std::size_t> on_newest;
    for (auto i : f.writable)
      if (nodes[i].timeline == newest) on_newest.push_back(i);
    if (on_newest.size() > 1) {
      f.contested = true;
      f.primary = remembered;
      f.primary_basis = "contested";
      return;
    }
    f.primary = on_newest.front();
    f.primary_basis = "newest timeline among writable nodes";
    for (auto i : f.writable)
      if (i != *f.primary) f.stale_writable.push_back(i);
    return;
  }
  if (f.writable.size() == 1) {
    const std::size_t w = f.writable.front();
    if (!remembered) {
      f.primary = w;
      f.primary_basis = "only writable node";
    } else if (*remembered == w) {
      f.primary = w;
      f.primary_basis = "remembered";
    } else if (f.memory->last_primary_timeline == 0 ||
               nodes[w].timeline > f.memory->last_primary_timeline) {
      // The remembered primary is not writable and another node is, on a newer timeline: the
      // cluster moved on (our promotion, or an operator's). Follow the cluster.
      f.primary = w;
      f.primary_basis = "newer timeline than the remembered primary";
    } else if (nodes[w].timeline < f.memory->last_primary_timeline) {
      f.primary = remembered;
      f.primary_basis = "remembered";
      f.stale_writable.push_back(w);
    } else {
      // Same timeline as the remembered primary, which we cannot see writable: nothing tells
      // which history is right.
      f.contested = true;
      f.primary = remembered;
      f.primary_basis = "contested";
    }
    return;
  }
  f.primary = remembered;
  f.primary_basis = remembered ? "remembered" : "";
  // No node takes writes, but one left recovery and then fenced itself (its lease guard): it is
  // the primary if it is the one remembered, if it is on a newer timeline (promoted, then cut
  // off from pgfailover before its first heartbeat), or, with nothing remembered, if every
  // other node that answers is in recovery.
  // Of several self-fenced nodes, only one on a strictly newer timeline than the others counts.
  // With nothing remembered, every other node must answer, in recovery: an unreachable one
  // could be a primary nobody here knows of.
  std::optional<std::size_t> self_fenced;
  bool contested = false, all_others_standby = true;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (!nodes[i].reachable || nodes[i].in_recovery) continue;
    if (!nodes[i].self_fenced) {
      contested = true;
      break;
    }
    if (!self_fenced || nodes[i].timeline > nodes[*self_fenced].timeline) {
      self_fenced = i;
      contested = false;
    } else if (nodes[i].timeline == nodes[*self_fenced].timeline) {
      contested = true;
    }
  }
  if (self_fenced && !contested) {
    for (std::size_t i = 0; i < nodes.size(); ++i)
      if (i != *self_fenced &&
          (!nodes[i].reachable ||
           (nodes[i].in_recovery && nodes[i].timeline > nodes[*self_fenced].timeline)))
        all_others_standby = false;
  }
  if (self_fenced && !contested) {
    const auto& node = nodes[*self_fenced];
    if ((!remembered && all_others_standby) || (remembered && *remembered == *self_fenced) ||
        (remembered && (f.memory->last_primary_timeline == 0 ||
                        node.timeline > f.memory->last_primary_timeline))) {
      f.primary = self_fenced;
      f.primary_basis = "out of recovery, fenced by its own lease guard";
      return;
    }
  }
  if (!remembered && nodes.size() == 2 && f.all_probed) {
    // Started while the primary was already down: a two-node cluster whose only reachable node
    // is a replica had the other node as its primary.
    for (std::size_t i = 0; i < 2; ++i) {
      if (nodes[i].reachable && nodes[i].in_recovery && !nodes[1 - i].reachable) {
        f.primary = 1 - i;
        f.primary_basis = "inferred: peer of the only reachable replica";
      }
    }
  }
}

void chooseCandidate(Facts& f) {
  if (!f.primary) return;
  const auto& nodes = f.view->nodes;
  const auto& policy = *f.policy;
  bool any_reachable = false;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (i == *f.primary || !nodes[i].reachable || !nodes[i].in_recovery) continue;
    if (!f.candidate ||
        nodes[i].position().value_or(0) > nodes[*f.candidate].position().value_or(0))
      f.candidate = i;
  }
  for (std::size_t i = 0; i < nodes.size(); ++i)
    if (i != *f.primary && nodes[i].reachable) any_reachable = true;

  if (!f.candidate) {
    if (!any_reachable) {
      f.veto = VetoReason::kReplicaUnreachable;
      std::string detail;
      for (std::size_t i = 0; i < nodes.size(); ++i)
        if (i != *f.primary)
          detail += (detail.empty() ? "" : "; ") + f.nameOf(i) + " is unreachable (" +
                    describeProblem(nodes[i]) + ")";
      f.veto_detail = detail;
    } else {
      f.veto = VetoReason::kReplicaNotInRecovery;
      f.veto_detail = "no reachable node other than the primary is a replica in recovery";
    }
    return;
  }
  const auto& candidate = nodes[*f.candidate];
  const std::string name = f.nameOf(*f.candidate);
  f.candidate_lag_bytes = lagBehind(f.memory->last_primary_position, candidate.position());
  const auto known_id = f.memory->last_primary_system_identifier;
  if (known_id != 0 && candidate.system_identifier != known_id) {
    f.veto = VetoReason::kSystemIdentifierMismatch;
    f.veto_detail = "replica " + name + " has system identifier " +
                    std::to_string(candidate.system_identifier) + ", the primary had " +
                    std::to_string(known_id);
  } else if (const auto streamed = *f.candidate < f.memory->streamed_timeline.size()
                                       ? f.memory->streamed_timeline[*f.candidate]
                                       : 0;
             std::max(candidate.timeline, streamed) < f.memory->last_primary_timeline) {
    // It never followed the primary's promotion: promoting it forks a second history, which
    // PostgreSQL numbers like the primary's (the next timeline after its own).
    f.veto = VetoReason::kReplicaLagging;
    f.veto_detail = "replica " + name + " is on timeline " + std::to_string(candidate.timeline) +
                    ", the primary was on " + std::to_string(f.memory->last_primary_timeline) +
                    ": it never followed the primary's promotion";
  } else if (stillHearsPrimary(policy, candidate)) {
    f.veto = VetoReason::kReplicaStillStreaming;
    f.veto_detail = "replica " + name + " still hears the primary (" + describeReceiver(candidate) +
                    ", silence threshold " +
                    formatSeconds(effectiveReplicaSilence(policy, candidate)) + ")";
  } else if (f.candidate_lag_bytes && *f.candidate_lag_bytes > policy.max_lag_bytes) {
    f.veto = VetoReason::kReplicaLagging;
    f.veto_detail = "replica " + name + " is " + formatBytes(*f.candidate_lag_bytes) +
                    " behind the primary's last known position (limit " +
                    formatBytes(policy.max_lag_bytes) + ")";
  } else if (policy.sync_mode != SyncMode::kOff && f.memory->synchronous_standby != f.candidate) {
    f.veto = VetoReason::kReplicaNotSynchronous;
    f.veto_detail = "synchronous mode is " + std::string(toString(policy.sync_mode)) +
                    " and replica " + name +
                    " was not the primary's synchronous standby when it was last seen healthy; "
                    "promoting it could lose acknowledged commits";
  } else if (f.memory->promote_attempts >= policy.promote_attempts) {
    f.veto = VetoReason::kPromoteAttemptsExhausted;
    f.veto_detail =
        "promotion of " + name + " failed " + std::to_string(f.memory->promote_attempts) + " times";
  } else if (const auto& earlier = f.memory->unconfirmed_promotion;
             earlier && *earlier != *f.candidate) {
    // The node promoted before has not been seen since: its promotion may still land, and a
    // second one would make two primaries.
    f.veto = VetoReason::kPromoteAttemptsExhausted;
    f.veto_detail = "the promotion of " + f.nameOf(*earlier) +
                    " may have happened out of sight; promoting " + name +
                    " too could make two primaries";
  } else if (const auto& pending = f.memory->promotion_may_land;
             pending && *pending != *f.candidate) {
    // Seen in recovery, but its promote request may still be pending (a pg_promote that timed
    // out leaves it): it lands when the standby's startup process gets going again.
    f.veto = VetoReason::kPromoteAttemptsExhausted;
    f.veto_detail = "the promote request sent to " + f.nameOf(*pending) +
                    " may still land (it was neither seen promoted nor restarted since); "
                    "promoting " +
                    name + " too could make two primaries; restart " + f.nameOf(*pending) +
                    " to cancel it";
  }
}

// Why node i is not a healthy replica of the primary, or nullopt when it is.
std::optional<std::string> replicaProblem(const Facts& f, std::size_t i) {
  const auto& primary = f.node(*f.primary);
  const auto& node = f.node(i);
  if (!node.reachable)
    return "replica " + f.nameOf(i) + " is unreachable (" + describeProblem(node) + ")";
  if (!node.in_recovery)
    return "node " + f.nameOf(i) + " is not in recovery (" + describeProblem(node) + ")";
  if (!node.streaming())
    return "replica " + f.nameOf(i) + " is not streaming (" + describeReceiver(node) + ")";
  if (node.wal_receiver->received_timeline != 0 && primary.timeline != 0 &&
      node.wal_receiver->received_timeline != primary.timeline)
    return "replica " + f.nameOf(i) + " streams timeline " +
           std::to_string(node.wal_receiver->received_timeline) + ", the primary is on " +
           std::to_string(primary.timeline);
  if (auto lag = lagBehind(primary.current_lsn, node.position());
      lag && *lag > f.policy->max_lag_bytes)
    return "replica " + f.nameOf(i) + " lags " + formatBytes(*lag) + " (limit " +
           formatBytes(f.policy->max_lag_bytes) + ")";
  return std::nullopt;
}

void assessReplicas(Facts& f) {
  if (!f.primary) return;
  for (std::size_t i = 0; i < f.view->nodes.size(); ++i) {
    if (i == *f.primary) continue;
    auto problem = replicaProblem(f, i);
    if (!problem) {
      f.healthy_replica[i] = true;
      f.replica_healthy = true;
    } else if (f.replica_problem.empty()) {
      f.replica_problem = *problem;
    }
  }
  if (f.replica_healthy) f.replica_problem.clear();
  if (!f.replica_healthy && f.replica_problem.empty())
    f.replica_problem = "no replica is configured";
}

// Which node, if any, must be rejoined now: a non-primary that is not in recovery (fenced or an
// old primary), or one that has not been a healthy replica for the grace period. Only while the
// primary is healthy, only where a host executor exists, one operation at a time per node, and
// not again right after an operation on it finished (it needs a moment to start streaming).
// How long a standby that only lost its connection to the primary may try to reconnect by
// itself before it is restarted (see chooseRejoin).
constexpr Millis kReconnectGrace{60000};

void chooseRejoin(Facts& f) {
  const auto& policy = *f.policy;
  if (!policy.rejoin || !f.primary_ok) return;
  for (std::size_t i = 0; i < f.view->nodes.size(); ++i) {
    if (i == *f.primary || f.healthy_replica[i]) continue;
    const NodeOperation* op = f.view->operation(i);
    if (!op || !op->available) continue;
    if (op->running) {
      f.operations_note +=
          "; " + f.nameOf(i) +
          (op->kind == OperationKind::kFenceAtRest ? ": fencing at rest (old primary)"
                                                   : ": rejoin running (" + op->step + ")");
      continue;
    }
    if (op->finished > 0) {
      const Millis since = elapsed(op->last_finished_at, f.now.steady);
      const Millis wait = op->last_succeeded ? policy.rejoin_grace : policy.rejoin_retry_interval;
      if (since < wait) {
        f.operations_note +=
            "; last rejoin of " + f.nameOf(i) +
            (op->last_succeeded          ? " succeeded "
             : op->last_host_unreachable ? " could not reach the host (" + op->last_error + ") "
                                         : " failed (" + op->last_error + ") ") +
            formatSeconds(since) + " ago";
        continue;
      }
    }
    const auto& node = f.node(i);
    if (node.reachable && !node.in_recovery) {
      f.rejoin = i;
      f.rejoin_why = f.nameOf(i) + " is not in recovery (" + describeProblem(node) + ")";
      return;
    }
    if (f.starting_up_since[i] &&
        elapsed(*f.starting_up_since[i], f.now.steady) < policy.starting_up_grace) {
      f.operations_note += "; " + f.nameOf(i) + " is starting up";
      continue;
    }
    // A reachable standby of this cluster on the primary's timeline has no history to repair:
    // if it does not stream, the network between it and the primary is the likely cause, and
    // a restart cannot fix that; its WAL receiver retries by itself. It gets a longer grace.
    const auto& primary = f.node(*f.primary);
    const std::uint32_t streamed =
        i < f.memory->streamed_timeline.size() ? f.memory->streamed_timeline[i] : 0;
    const bool only_disconnected =
        node.reachable && node.in_recovery && primary.timeline != 0 &&
        (node.timeline == primary.timeline || streamed == primary.timeline) &&
        node.system_identifier == primary.system_identifier;
    const Millis grace =
        only_disconnected ? std::max(policy.rejoin_grace, kReconnectGrace) : policy.rejoin_grace;
    if (f.unhealthy_since[i] && elapsed(*f.unhealthy_since[i], f.now.steady) >= grace) {
      f.rejoin = i;
      f.rejoin_why = replicaProblem(f, i).value_or(f.nameOf(i) + " is not a healthy replica") +
                     " for " + formatSeconds(elapsed(*f.unhealthy_since[i], f.now.steady));
      return;
    }
  }
}

void judgeSwitchover(Facts& f) {
  const auto& m = *f.memory;
  if (!m.switchover || m.state != ClusterState::kSwitchingOver) return;
  const auto& sw = *m.switchover;
  const auto& target = f.node(sw.to);
  const auto& old = f.node(sw.from);
  if (!target.reachable || !target.in_recovery) {
    f.switchover_failed = true;
    f.switchover_problem = "target " + f.nameOf(sw.to) + " is no longer a reachable replica";
  } else if (!old.reachable) {
    f.switchover_failed = true;
    f.switchover_problem = "primary " + f.nameOf(sw.from) + " became unreachable (" +
                           describeProblem(old) + "); its last position cannot be confirmed";
  } else if (!old.in_recovery && !old.writable() && old.current_lsn && target.replay_lsn &&
             *target.replay_lsn >= *old.current_lsn) {
    f.switchover_caught_up = true;
  } else if (elapsed(sw.started_at, f.now.steady) >= f.policy->switchover_timeout) {
    f.switchover_failed = true;
    f.switchover_problem = "target " + f.nameOf(sw.to) + " did not catch up within " +
                           formatSeconds(f.policy->switchover_timeout) + " (replayed " +
                           (target.replay_lsn ? formatLsn(*target.replay_lsn) : std::string("?")) +
                           ", primary at " +
                           (old.current_lsn ? formatLsn(*old.current_lsn) : std::string("?")) + ")";
  }
}

// The words of a refusal in the request's event and the decision's reason.
std::string refusalText(const Facts& f, const AdmissionInput& input, const Admission& a) {
  const auto about = a.about ? f.nameOf(*a.about) : std::string();
  const auto& m = *f.memory;
  switch (*a.refusal) {
    case Refusal::kNoPrimaryKnown:
      return std::string("the cluster is ") + toString(m.state) +
             " and no primary is known: a switchover is impossible, and a failover needs an "
             "explicit target and force";
    case Refusal::kSecondWritable:
      return about + " accepts writes; it would be a second primary";
    case Refusal::kAlreadyPrimary:
      return about + " is already the primary";
    case Refusal::kPrimaryNotHealthy:
      return "primary " + about +
             " is not healthy; a switchover needs a working primary (use "
             "failover)";
    case Refusal::kPrimaryHealthy:
      return "primary " + about + " is healthy; use a switchover, or force the failover";
    case Refusal::kNotAHealthyReplica:
      return replicaProblem(f, *a.about).value_or("target is not a healthy replica");
    case Refusal::kNotPromotable:
      return "no reachable replica in recovery to promote";
    case Refusal::kOtherCluster:
      return about + " belongs to another cluster (system identifier)";
    case Refusal::kOlderTimeline:
      return about + " is on timeline " + std::to_string(input.nodes[*a.about].timeline) +
             ", the cluster's newest is " + std::to_string(input.newest_timeline) +
             ": promoting it would fork a second history under one timeline number";
    case Refusal::kPromotionMayLand:
      return "the promotion of " + about +
             " was issued and has been neither seen to land nor cancelled by a restart of " +
             about +
             ": it may still land, and a second promotion would make two primaries (force does "
             "not override this)";
    case Refusal::kNoTarget:
      if (input.kind == RequestKind::kSwitchover)
        return "no replica streams within the lag limit: " + f.replica_problem;
      return "no reachable replica in recovery to promote";
  }
  return "refused";
}

void judgeRequest(Facts& f) {
  if (!f.view->request) return;
  const auto& request = *f.view->request;
  const auto state = f.memory->state;
  if (state == ClusterState::kPromoting || state == ClusterState::kSwitchingOver) {
    f.request_refusal = "a promotion or switchover is already in progress";
    return;
  }
  if (request.target && *request.target >= f.view->nodes.size()) {
    f.request_refusal = "unknown target node";
    return;
  }
  if (f.contested) {
    f.request_refusal = "more than one node accepts writes; resolve the split brain first";
    return;
  }
  const auto& m = *f.memory;
  AdmissionInput input;
  input.kind = request.kind;
  input.target = request.target;
  input.force = request.force;
  for (std::size_t i = 0; i < f.view->nodes.size(); ++i)
    input.nodes.push_back(admissionNode(f.node(i),
                                        i < m.streamed_timeline.size() ? m.streamed_timeline[i] : 0,
                                        f.healthy_replica[i]));
  input.primary = f.primary;
  input.primary_ok = f.primary_ok;
  input.system_identifier = m.last_primary_system_identifier;
  input.newest_timeline = m.last_primary_timeline;
  input.unconfirmed_promotion = m.unconfirmed_promotion;
  input.promotion_may_land = m.promotion_may_land;
  const Admission admitted = admit(input);
  if (admitted.refusal) {
    f.request_refusal = refusalText(f, input, admitted);
    return;
  }
  f.request_target = admitted.target;
  if (request.kind == RequestKind::kSwitchover)
    f.switchover_requested = true;
  else
    f.failover_requested = true;  // promote now, without a timeout or the replica's confirmation
}

void judgeFailback(Facts& f) {
  const auto& policy = *f.policy;
  if (!policy.failback || !policy.preferred || !f.primary_ok) return;
  const std::size_t preferred = *policy.preferred;
  if (preferred == *f.primary || preferred >= f.view->nodes.size()) return;
  if (f.memory->state != ClusterState::kHealthy || !f.healthy_replica[preferred]) return;
  const auto& primary = f.node(*f.primary);
  const auto lag = lagBehind(primary.current_lsn, f.node(preferred).position());
  if (!lag || *lag > 0) return;
  if (elapsed(f.memory->state_since, f.now.steady) < policy.failback_delay) return;
  f.failback_due = true;
}

}  // namespace

std::string Facts::nameOf(std::size_t i) const {
  const auto& name = view->nodes.at(i).name;
  return quoted(name.empty() ? "node" + std::to_string(i) : name);
}

Millis effectiveReplicaSilence(const Policy& policy, const NodeObservation& replica) {
  Millis floor{0};
  if (replica.wal_receiver_timeout) floor = *replica.wal_receiver_timeout / 2 + Millis{1000};
  return std::max(policy.replica_silence, floor);
}

Facts evaluateFacts(const Memory& memory, const ClusterView& view, Now now, const Policy& policy) {
  Facts f;
  f.memory = &memory;
  f.view = &view;
  f.policy = &policy;
  f.now = now;
  const auto& nodes = view.nodes;
  f.all_probed = !nodes.empty() &&
                 std::all_of(nodes.begin(), nodes.end(), [](const auto& n) { return n.probed; });
  f.writable = writableNodes(view);
  f.split_brain = isSplitBrain(f.writable);
  f.healthy_replica.assign(nodes.size(), false);

  resolvePrimary(f);

  if (f.primary && !f.contested) {
    const auto& primary = nodes[*f.primary];
    f.primary_ok = primary.writable() && (!policy.heartbeat || primary.heartbeat_written);
    f.primary_self_fenced =
        primary.reachable && !primary.in_recovery && primary.read_only && primary.self_fenced &&
        f.writable.empty() && !memory.promoting && !memory.switchover &&
        (!memory.unconfirmed_promotion || *memory.unconfirmed_promotion == *f.primary) &&
        primary.timeline >= memory.last_primary_timeline;
    for (std::size_t i = 0; i < nodes.size() && f.primary_self_fenced; ++i)
      if (i != *f.primary && nodes[i].reachable && !nodes[i].in_recovery &&
          nodes[i].timeline >= primary.timeline)
        f.primary_self_fenced = false;  // another node left recovery: not ours to undo
    if (!f.primary_ok) {
      // The timer survives ticks only while the same node is the one failing.
      const bool same_primary = memory.primary == f.primary;
      f.failing_since = same_primary && memory.failing_since ? *memory.failing_since : now.steady;
      f.timeout_kind = timeoutKindFor(policy, primary);
      f.timeout = timeoutFor(policy, *f.timeout_kind);
      // From the start of the first failed probe to the end of the last one: a silent node's
      // probes run their whole deadline before this tick decides.
      f.failing_for = elapsed(*f.failing_since, decidedAt(view, now));
      f.timeout_elapsed = f.failing_for >= f.timeout;
      chooseCandidate(f);
      // A veto says more than a wait: only a promotion that would happen waits for the lease.
      if (!f.veto) holdForTheLease(f);
    } else {
      assessReplicas(f);
    }
  }

  if (memory.promoting && *memory.promoting < nodes.size()) {
    // Out of recovery is promoted, even if its lease guard fenced it before pgfailover's first
    // heartbeat reached it (unfenced next).
    const auto& promoted = nodes[*memory.promoting];
    f.promotion_confirmed = promoted.writable() ||
                            (promoted.reachable && !promoted.in_recovery && promoted.self_fenced);
    // A primary seen committing while the promotion was pending renewed its lease: a retry
    // waits it out, as the first promotion did.
    const auto lease_end = leaseEnd(f);
    f.promotion_overdue = elapsed(memory.promote_issued_at, now.steady) >= policy.promote_timeout &&
                          (f.primary_ok || !lease_end || now.steady >= *lease_end);
  }
  f.unseen_promotion = f.primary && !f.contested && memory.primary &&
                       *memory.primary < nodes.size() && *f.primary != *memory.primary &&
                       !memory.promoting && memory.last_primary_timeline != 0 &&
                       nodes[*f.primary].reachable && !nodes[*f.primary].in_recovery &&
                       nodes[*f.primary].timeline > memory.last_primary_timeline;

  // A node that answers "starting up" is coming back by itself (an operator, systemd or a
  // container restarted it): a rejoin now would stop it half-way. It gets the starting-up grace.
  f.starting_up_since.assign(nodes.size(), std::nullopt);
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].reachable || nodes[i].failure != ProbeFailure::kStartingUp) continue;
    f.starting_up_since[i] = i < memory.starting_up_since.size() && memory.starting_up_since[i]
                                 ? memory.starting_up_since[i]
                                 : now.steady;
  }
  // A replica can only be healthy while a primary commits, so its clock starts (again) when one
  // does: after both nodes were down, the replica being started by its host gets the whole
  // rejoin grace from the moment the primary is back, instead of being stopped for a rejoin
  // because it was down while there was nothing to follow.
  f.unhealthy_since.assign(nodes.size(), std::nullopt);
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (!f.primary_ok || (f.primary == i && !f.contested) || f.healthy_replica[i]) continue;
    f.unhealthy_since[i] = i < memory.unhealthy_since.size() && memory.unhealthy_since[i]
                               ? memory.unhealthy_since[i]
                               : now.steady;
  }
  if (f.primary && !f.contested) {
    chooseRejoin(f);
    judgeSwitchover(f);
    judgeRequest(f);
    judgeFailback(f);
  } else if (view.request) {
    judgeRequest(f);
  }
  return f;
}

}  // namespace pgfailover::core
