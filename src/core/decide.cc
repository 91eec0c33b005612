#include "core/decide.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace pgfailover::core {

namespace {

std::string formatSeconds(Millis d) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f s", seconds(d));
  return buffer;
}

std::string formatBytes(std::uint64_t bytes) {
  char buffer[32];
  if (bytes >= 1024ull * 1024 * 1024)
    std::snprintf(buffer, sizeof buffer, "%.1f GB", static_cast<double>(bytes) / (1 << 30));
  else if (bytes >= 1024ull * 1024)
    std::snprintf(buffer, sizeof buffer, "%.1f MB", static_cast<double>(bytes) / (1 << 20));
  else if (bytes >= 1024)
    std::snprintf(buffer, sizeof buffer, "%.1f kB", static_cast<double>(bytes) / 1024);
  else
    std::snprintf(buffer, sizeof buffer, "%llu B", static_cast<unsigned long long>(bytes));
  return buffer;
}

std::string quoted(const std::string& name) {
  return "'" + name + "'";
}

// Why a node is not usable, in a few words, for reasons and vetoes.
std::string describeProblem(const NodeObservation& node) {
  if (!node.reachable) {
    std::string text = std::string(toString(node.failure));
    if (!node.error.empty()) text += ": " + node.error;
    if (node.host_answers_ping)
      text +=
          *node.host_answers_ping ? "; its host answers ping" : "; its host does not answer ping";
    return text;
  }
  if (node.in_recovery) return "in recovery";
  if (node.read_only && node.self_fenced)
    return "read-only: its lease guard fenced it (it heard from neither pgfailover nor a replica)";
  if (node.read_only) return "read-only";
  if (node.failure == ProbeFailure::kCannotCommit)
    return "cannot commit" + (node.error.empty() ? std::string() : ": " + node.error);
  return "not committing";
}

std::string describeReceiver(const NodeObservation& node) {
  if (!node.wal_receiver) return "no WAL receiver running";
  std::string text = "WAL receiver " + node.wal_receiver->status;
  if (node.wal_receiver->seconds_since_last_message) {
    char buffer[48];
    std::snprintf(buffer, sizeof buffer, ", last message %.1f s ago",
                  *node.wal_receiver->seconds_since_last_message);
    text += buffer;
  }
  return text;
}

std::optional<std::uint64_t> lagBehind(std::optional<Lsn> primary, std::optional<Lsn> replica) {
  if (!primary || !replica) return std::nullopt;
  return *primary > *replica ? *primary - *replica : 0;
}

// The candidate still hears the primary: it streams, and its last message is recent.
bool stillHearsPrimary(const Policy& policy, const NodeObservation& candidate) {
  if (!candidate.streaming()) return false;
  const auto& age = candidate.wal_receiver->seconds_since_last_message;
  if (!age) return true;  // streaming with no age known: assume it hears the primary
  return *age * 1000.0 < static_cast<double>(effectiveReplicaSilence(policy, candidate).count());
}

// Silence alone proves nothing: the primary may be hung or only cut off from pgfailover. Its
// host not answering ICMP either says the host (or its whole network) is gone, and with the
// lease on, the old primary's guard has fenced it by the time a promotion may happen if it
// still runs anywhere (holdForTheLease). The replica must have lost it too, as for every kind
// (chooseCandidate). A primary that is only stalled while its host answers keeps the long wait.
TimeoutKind timeoutKindFor(const Policy& policy, const NodeObservation& primary) {
  switch (primary.failure) {
    case ProbeFailure::kRefused:
      return TimeoutKind::kConfirmedDown;
    case ProbeFailure::kStartingUp:
      return TimeoutKind::kStartingUp;
    case ProbeFailure::kTimeout:
      if (policy.icmp && policy.primary_lease > Millis{0} && !primary.reachable &&
          primary.host_answers_ping == false)
        return TimeoutKind::kHostLost;
      return TimeoutKind::kUnresponsive;
    default:
      return TimeoutKind::kUnresponsive;
  }
}

Millis timeoutFor(const Policy& policy, TimeoutKind kind) {
  switch (kind) {
    case TimeoutKind::kConfirmedDown:
      return policy.confirmed_down_timeout;
    case TimeoutKind::kStartingUp:
      return policy.starting_up_grace;
    case TimeoutKind::kUnresponsive:
      return policy.unresponsive_timeout;
    case TimeoutKind::kHostLost:
      return std::min(policy.host_lost_timeout, policy.unresponsive_timeout);
  }
  return policy.unresponsive_timeout;
}

// The old primary's lease guard fences it once the lease of the last heartbeat has run out and
// a replica stopped replying to it for as long. The timeouts are longer than the lease, so this
// only holds a promotion back in the rare case where the primary stopped answering pgfailover
// well after the first failed probe's tick (or a replica kept streaming from it meanwhile).
// Half a second more covers the guard's poll.
constexpr Millis kLeaseGuardMargin{500};

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
      f.split_brain = true;
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
      f.split_brain = true;
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

std::optional<std::size_t> bestHealthyReplica(const Facts& f) {
  std::optional<std::size_t> best;
  for (std::size_t i = 0; i < f.view->nodes.size(); ++i)
    if (f.healthy_replica[i] &&
        (!best || f.node(i).position().value_or(0) > f.node(*best).position().value_or(0)))
      best = i;
  return best;
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
  if (f.split_brain) {
    f.request_refusal = "more than one node accepts writes; resolve the split brain first";
    return;
  }
  if (!f.primary) {
    // Nobody to move away from (pgfailover started after the primary died, or both nodes came
    // back without a history): only the operator can say which node holds the data to keep,
    // so a failover needs an explicit target and force, and no other node may take writes.
    if (request.kind == RequestKind::kSwitchover || !request.force || !request.target) {
      f.request_refusal = std::string("the cluster is ") + toString(state) +
                          " and no primary is known: a switchover is impossible, and a failover "
                          "needs an explicit target and force";
      return;
    }
    for (std::size_t i = 0; i < f.view->nodes.size(); ++i)
      if (i != *request.target && f.node(i).writable()) {
        f.request_refusal = f.nameOf(i) + " accepts writes; it would be a second primary";
        return;
      }
  }
  if (request.target && f.primary && *request.target == *f.primary) {
    f.request_refusal = f.nameOf(*f.primary) + " is already the primary";
    return;
  }
  if (request.kind == RequestKind::kSwitchover) {
    if (!f.primary_ok) {
      f.request_refusal = "primary " + f.nameOf(*f.primary) +
                          " is not healthy; a switchover needs a working primary (use failover)";
      return;
    }
    auto target = request.target ? request.target : bestHealthyReplica(f);
    if (!target) {
      f.request_refusal = "no replica streams within the lag limit: " + f.replica_problem;
      return;
    }
    if (!f.healthy_replica[*target]) {
      f.request_refusal = replicaProblem(f, *target).value_or("target is not a healthy replica");
      return;
    }
    f.request_target = target;
    f.switchover_requested = true;
    return;
  }
  // Failover: promote now, without waiting for a timeout or the replica's confirmation.
  if (f.primary_ok && !request.force) {
    f.request_refusal =
        "primary " + f.nameOf(*f.primary) + " is healthy; use a switchover, or force the failover";
    return;
  }
  auto target = request.target ? request.target : f.candidate;
  if (!target) {
    for (std::size_t i = 0; i < f.view->nodes.size(); ++i)
      if (i != f.primary && f.node(i).reachable && f.node(i).in_recovery) target = i;
  }
  if (!target || !f.node(*target).reachable || !f.node(*target).in_recovery) {
    f.request_refusal = "no reachable replica in recovery to promote";
    return;
  }
  const auto known_id = f.memory->last_primary_system_identifier;
  if (known_id != 0 && f.node(*target).system_identifier != known_id) {
    f.request_refusal = f.nameOf(*target) + " belongs to another cluster (system identifier)";
    return;
  }
  f.request_target = target;
  f.failover_requested = true;
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

// ---- conditions (one per row) ----

bool isSplitBrain(const Facts& f) {
  return f.split_brain;
}
bool notAllProbed(const Facts& f) {
  return !f.all_probed;
}
bool promotionConfirmed(const Facts& f) {
  return f.promotion_confirmed;
}
bool promotionFailedPrimaryBack(const Facts& f) {
  return !f.promotion_confirmed && f.primary_ok && f.promotion_overdue;
}
bool promotionRetry(const Facts& f) {
  // The checks behind f.veto are the candidate's: only a retry of that node passed them.
  return !f.promotion_confirmed && f.promotion_overdue &&
         f.memory->promote_attempts < f.policy->promote_attempts && !f.veto &&
         f.candidate == f.memory->promoting;
}
bool promotionOverdue(const Facts& f) {
  return !f.promotion_confirmed && f.promotion_overdue;
}
bool always(const Facts&) {
  return true;
}
bool primarySelfFenced(const Facts& f) {
  return f.primary_self_fenced;
}
bool hasStaleWritable(const Facts& f) {
  return !f.stale_writable.empty();
}
bool noPrimary(const Facts& f) {
  return !f.primary.has_value();
}
bool primaryOkReplicaOk(const Facts& f) {
  return f.primary_ok && f.replica_healthy;
}
bool primaryOkReplicaNotOk(const Facts& f) {
  return f.primary_ok && !f.replica_healthy;
}
bool failingWithinTimeout(const Facts& f) {
  return !f.primary_ok && !f.timeout_elapsed;
}
bool timeoutElapsedVetoed(const Facts& f) {
  return f.timeout_elapsed && f.veto.has_value();
}
bool switchoverCaughtUp(const Facts& f) {
  return f.switchover_caught_up;
}
bool switchoverFailed(const Facts& f) {
  return f.switchover_failed;
}
bool operatorFailover(const Facts& f) {
  return f.failover_requested;
}
bool operatorSwitchover(const Facts& f) {
  return f.switchover_requested;
}
bool failbackDue(const Facts& f) {
  return f.failback_due;
}
bool rejoinDue(const Facts& f) {
  return f.primary_ok && f.rejoin.has_value();
}
bool timeoutElapsedClear(const Facts& f) {
  return f.timeout_elapsed && !f.veto;
}

// ---- effects ----

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
      d.events.push_back(Event{"synchronous",
                               f.node(*f.primary).name,
                               "",
                               "",
                               "standalone",
                               "no replica for " + formatSeconds(policy.standalone_after) +
                                   "; the primary commits alone",
                               {}});
  }
  if (desired == current) return;
  Action a{ActionKind::kSetSynchronousStandbys, *f.primary,
           desired.empty() ? "synchronous replication suspended: no healthy replica"
                           : "synchronous replication to " + desired};
  a.argument = desired;
  d.actions.push_back(a);
}

void promoteNode(const Facts& f, Decision& d, std::size_t node, const std::string& why) {
  Action promote{ActionKind::kPromote, node, why};
  // The old primary, for the fencing hook; a switchover fenced it already and needs no hook.
  if (f.primary) promote.peer = *f.primary;
  if (f.memory->switchover) promote.argument = "switchover";
  d.actions.push_back(promote);
  d.next.promoting = node;
  d.next.unconfirmed_promotion = node;
  d.next.promote_issued_at = f.now.steady;
  d.next.promote_attempts = f.memory->promote_attempts + 1;
  d.next.veto.reset();
}

void issuePromote(const Facts& f, Decision& d) {
  const std::size_t node = f.memory->promoting ? *f.memory->promoting : *f.candidate;
  promoteNode(f, d, node, "pg_promote(wait => true) on " + f.nameOf(node));
}

void fenceNode(Decision& d, std::size_t node, const std::string& why) {
  d.actions.push_back(Action{ActionKind::kFence, node, why});
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
    Action a{ActionKind::kCreateSlot, primary, "slot for " + f.nameOf(i) + " on the new primary"};
    a.argument = f.policy->slot_names[i];
    d.actions.push_back(a);
  }
}

// How often a replica streaming without its slot is asked again to use it.
constexpr Millis kSlotUseRetry{30000};

// Keeps one physical slot per replica on a healthy primary; drops the slot of a node that has
// been unreachable for slot_drop_after so retained WAL cannot fill the disk.
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
      Action a{ActionKind::kCreateSlot, *f.primary, "slot for " + f.nameOf(i)};
      a.argument = name;
      d.actions.push_back(a);
    } else if (slot && !slot->active && f.healthy_replica[i] && f.node(i).wal_receiver &&
               f.node(i).wal_receiver->slot_name != name) {
      // A replica cloned without the slot (pg_basebackup -R alone, as the usual how-to does)
      // streams around it, and the unused slot would retain WAL until the disk fills. Since
      // PostgreSQL 13 primary_slot_name takes effect on reload: set it on the replica.
      auto& asked = d.next.slot_use_requested_at;
      asked.resize(f.view->nodes.size());
      if (!asked[i] || elapsed(*asked[i], f.now.steady) >= kSlotUseRetry) {
        Action a{ActionKind::kUseSlot, i,
                 f.nameOf(i) + " streams without its slot '" + name +
                     "', which would retain WAL for nothing: set primary_slot_name on it"};
        a.argument = name;
        d.actions.push_back(a);
        asked[i] = f.now.steady;
      }
    } else if (slot && !slot->active && gone_too_long) {
      Action a{ActionKind::kDropSlot, *f.primary,
               f.nameOf(i) + " has been unreachable for " +
                   formatSeconds(elapsed(*f.unhealthy_since[i], f.now.steady)) +
                   "; dropping its slot so retained WAL cannot fill the disk"};
      a.argument = name;
      d.actions.push_back(a);
      d.events.push_back(Event{"slot_dropped", f.node(i).name, "", "", "succeeded", a.detail, {}});
    }
  }
}

void completeFailover(const Facts& f, Decision& d) {
  const std::size_t to = *f.memory->promoting;
  // The record holds plain node names: /status and the state file carry them as data.
  const std::string from = f.memory->primary ? f.node(*f.memory->primary).name : "";
  if (f.memory->switchover) {
    const auto& sw = *f.memory->switchover;
    d.events.push_back(Event{"switchover", f.node(to).name, f.node(sw.from).name, f.node(to).name,
                             "succeeded", "planned switchover",
                             elapsed(sw.started_at, f.now.steady)});
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
    d.events.push_back(Event{"failover", f.node(to).name,
                             f.memory->primary ? f.node(*f.memory->primary).name : "",
                             f.node(to).name, "succeeded", record.reason, record.duration});
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
  d.events.push_back(Event{"failover",
                           f.node(*f.memory->promoting).name,
                           "",
                           "",
                           "failed",
                           "promotion not confirmed; the old primary is healthy again",
                           {}});
}

void giveUpPromotion(const Facts& f, Decision& d) {
  d.events.push_back(
      Event{"failover",
            f.node(*f.memory->promoting).name,
            "",
            "",
            "failed",
            "promotion failed " + std::to_string(f.memory->promote_attempts) + " times",
            {}});
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
      d.events.push_back(Event{"fence", f.node(i).name, "", "", "started", why, {}});
  }
}

void unfenceSelfFencedPrimary(const Facts& f, Decision& d) {
  const std::string why = f.nameOf(*f.primary) +
                          " fenced itself (its lease ran out while it heard from neither "
                          "pgfailover nor a replica); it is still the primary";
  d.actions.push_back(Action{ActionKind::kUnfence, *f.primary, why + ": let it take writes again"});
  // Its guard gives a node writable again a whole lease, as if a heartbeat had committed now.
  d.next.heartbeat_seen_at = f.now.steady;
  if (f.memory->state != ClusterState::kPrimaryFailing || !f.memory->failing_since)
    d.events.push_back(Event{"unfence", f.node(*f.primary).name, "", "", "started", why, {}});
}

void clearFailure(const Facts& f, Decision& d) {
  d.next.veto.reset();
  d.next.promote_attempts = 0;
  maintainSlots(f, d);
  maintainSynchronousStandbys(f, d);
}

void issueRejoin(const Facts& f, Decision& d) {
  Action a{ActionKind::kRejoin, *f.rejoin,
           "rejoin " + f.nameOf(*f.rejoin) + " as a replica of " + f.nameOf(*f.primary) +
               " (pg_rewind, re-clone as fallback): " + f.rejoin_why};
  a.peer = *f.primary;
  d.actions.push_back(a);
  d.events.push_back(Event{
      "rejoin", f.node(*f.rejoin).name, "", f.node(*f.primary).name, "started", f.rejoin_why, {}});
  maintainSlots(f, d);
}

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
  d.events.push_back(Event{"switchover",
                           f.node(target).name,
                           f.node(*f.primary).name,
                           f.node(target).name,
                           "started",
                           why,
                           {}});
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
  Action a{ActionKind::kUnfence, sw.from,
           "switchover aborted (" + f.switchover_problem + "): let " + f.nameOf(sw.from) +
               " take writes again"};
  // A target seen out of recovery was promoted (a late pg_promote): its history wins, and the
  // old primary stays fenced.
  if (f.primary == sw.from) d.actions.push_back(a);
  d.next.heartbeat_seen_at = f.now.steady;  // a whole lease for the unfenced node's guard
  d.events.push_back(Event{"switchover", f.node(sw.to).name, f.node(sw.from).name,
                           f.node(sw.to).name, "failed", f.switchover_problem,
                           elapsed(sw.started_at, f.now.steady)});
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
  d.events.push_back(
      Event{"failover",
            f.node(*f.request_target).name,
            old_primary,
            f.node(*f.request_target).name,
            "started",
            std::string("requested by an operator") + (f.view->request->force ? " (forced)" : ""),
            {}});
}

// Each event of an operator's request carries the request's id, from the refusal or the start
// to the outcome ticks later, so a client waits for its own request and nothing else.
void tagRequestEvents(const Memory& memory, const ClusterView& view, Decision& d) {
  const std::uint64_t asked = view.request ? view.request->id : 0;
  if (d.rule == "operator-failover") d.next.promote_request_id = asked;
  if (!d.next.promoting) d.next.promote_request_id = 0;
  for (auto& e : d.events) {
    if (e.kind == "request") {
      e.request_id = asked;
    } else if (e.kind == "switchover") {
      const auto& sw = d.next.switchover ? d.next.switchover : memory.switchover;
      e.request_id = sw ? sw->request_id : 0;
    } else if (e.kind == "failover") {
      e.request_id = d.rule == "operator-failover" ? asked : memory.promote_request_id;
    }
  }
}

void recordVeto(const Facts& f, Decision& d) {
  d.next.veto = f.veto;
  if (f.memory->veto != f.veto) d.new_veto = f.veto;
}

// ---- explanations ----

std::string failingSentence(const Facts& f) {
  const auto& primary = f.node(*f.primary);
  std::string text = "primary " + f.nameOf(*f.primary) + " failing for " +
                     formatSeconds(f.failing_for) + " (" + describeProblem(primary) + "); " +
                     toString(*f.timeout_kind) + " timeout " + formatSeconds(f.timeout);
  return text;
}

std::string explainSplitBrain(const Facts& f) {
  std::string names;
  for (auto i : f.writable) names += (names.empty() ? "" : " and ") + f.nameOf(i);
  if (f.writable.size() >= 2)
    return "nodes " + names + " both accept writes on timeline " +
           std::to_string(f.node(f.writable.front()).timeline) +
           "; refusing to choose between them";
  return "node " + names + " is writable on the same timeline as the remembered primary " +
         (f.memory->primary ? f.nameOf(*f.memory->primary) : std::string("?")) +
         ", which is not writable; refusing to choose";
}
std::string explainWaiting(const Facts&) {
  return "waiting for the first probe of every node";
}
std::string explainConfirmed(const Facts& f) {
  return "replica " + f.nameOf(*f.memory->promoting) +
         " was promoted and accepts writes on timeline " +
         std::to_string(f.node(*f.memory->promoting).timeline) + "; failover complete";
}
std::string explainAbandoned(const Facts& f) {
  return "promotion of " + f.nameOf(*f.memory->promoting) + " was not confirmed and primary " +
         f.nameOf(*f.primary) + " is healthy again; keeping it";
}
std::string explainRetry(const Facts& f) {
  return "promotion of " + f.nameOf(*f.memory->promoting) + " not confirmed after " +
         formatSeconds(elapsed(f.memory->promote_issued_at, f.now.steady)) + "; attempt " +
         std::to_string(f.memory->promote_attempts + 1) + " of " +
         std::to_string(f.policy->promote_attempts);
}
std::string explainGiveUp(const Facts& f) {
  return "promotion of " + f.nameOf(*f.memory->promoting) + " failed " +
         std::to_string(f.memory->promote_attempts) + " times; giving up until an operator acts";
}
std::string explainPending(const Facts& f) {
  return "waiting for " + f.nameOf(*f.memory->promoting) + " to finish promotion (" +
         describeProblem(f.node(*f.memory->promoting)) + ")";
}
std::string explainFence(const Facts& f) {
  std::string text;
  for (auto i : f.stale_writable)
    text += (text.empty() ? "" : "; ") + f.nameOf(i) + " accepts writes on timeline " +
            std::to_string(f.node(i).timeline);
  return text + " while " + f.nameOf(*f.primary) + " is primary on timeline " +
         std::to_string(f.node(*f.primary).timeline) + "; it must be fenced";
}
std::string explainSelfFenced(const Facts& f) {
  return "primary " + f.nameOf(*f.primary) + " on timeline " +
         std::to_string(f.node(*f.primary).timeline) +
         " made itself read-only when its lease ran out, and no other node took over; "
         "pgfailover lifts the fence";
}
std::string explainNoPrimary(const Facts& f) {
  std::string text = "no node accepts writes and no primary is known";
  for (std::size_t i = 0; i < f.view->nodes.size(); ++i)
    text += "; " + f.nameOf(i) + ": " +
            (f.node(i).reachable
                 ? (f.node(i).in_recovery ? std::string("replica") : describeProblem(f.node(i)))
                 : describeProblem(f.node(i)));
  return text;
}
std::string explainHealthy(const Facts& f) {
  return "primary " + f.nameOf(*f.primary) + " commits on timeline " +
         std::to_string(f.node(*f.primary).timeline) + "; replicas stream within the lag limit";
}
std::string explainDegraded(const Facts& f) {
  return "primary " + f.nameOf(*f.primary) + " commits, but " + f.replica_problem +
         f.operations_note;
}
std::string explainFailing(const Facts& f) {
  std::string text =
      f.lease_wait ? failingSentence(f) + " ran out; waiting " + formatSeconds(*f.lease_wait) +
                         " more for the old primary's lease to run out (its guard fences it first)"
                   : failingSentence(f) + ", " + formatSeconds(f.timeout - f.failing_for) + " left";
  if (f.veto) text += "; would be vetoed now: " + f.veto_detail;
  return text;
}
std::string explainVetoed(const Facts& f) {
  return "failover due (" + failingSentence(f) + " ran out) but vetoed: " + f.veto_detail;
}
std::string explainPromote(const Facts& f) {
  const auto& candidate = f.node(*f.candidate);
  std::string text = failingSentence(f) + " ran out, and replica " + f.nameOf(*f.candidate) +
                     " lost it too (" + describeReceiver(candidate) + "); promoting " +
                     f.nameOf(*f.candidate);
  if (auto pos = candidate.position()) text += " at " + formatLsn(*pos);
  if (f.candidate_lag_bytes) text += " (" + formatBytes(*f.candidate_lag_bytes) + " behind)";
  return text;
}
std::string explainSwitchoverPromote(const Facts& f) {
  const auto& sw = *f.memory->switchover;
  return "switchover: " + f.nameOf(sw.to) + " replayed up to " +
         formatLsn(*f.node(sw.to).replay_lsn) + ", everything the fenced primary " +
         f.nameOf(sw.from) + " wrote; promoting " + f.nameOf(sw.to);
}
std::string explainSwitchoverAbort(const Facts& f) {
  return "switchover aborted: " + f.switchover_problem + "; unfencing " +
         f.nameOf(f.memory->switchover->from);
}
std::string explainSwitchoverWait(const Facts& f) {
  const auto& sw = *f.memory->switchover;
  const auto& target = f.node(sw.to);
  const auto& old = f.node(sw.from);
  return "switchover to " + f.nameOf(sw.to) + ": waiting for it to replay " +
         (old.current_lsn ? formatLsn(*old.current_lsn) : std::string("the primary's last WAL")) +
         " (at " + (target.replay_lsn ? formatLsn(*target.replay_lsn) : std::string("?")) + "), " +
         formatSeconds(f.policy->switchover_timeout - elapsed(sw.started_at, f.now.steady)) +
         " left";
}
std::string explainOperatorFailover(const Facts& f) {
  return "operator requested a failover" + std::string(f.view->request->force ? " (forced)" : "") +
         ": promoting " + f.nameOf(*f.request_target) +
         (f.primary ? " instead of " + f.nameOf(*f.primary) : std::string(", no primary known"));
}
std::string explainOperatorSwitchover(const Facts& f) {
  return "operator requested a switchover to " + f.nameOf(*f.request_target) + ": fencing " +
         f.nameOf(*f.primary) + " and waiting for the target to catch up";
}
std::string explainFailback(const Facts& f) {
  return "failback: the preferred node " + f.nameOf(*f.policy->preferred) +
         " is caught up; switching the primary role back to it";
}
std::string explainRejoin(const Facts& f) {
  return "primary " + f.nameOf(*f.primary) + " commits; rejoining " + f.nameOf(*f.rejoin) + ": " +
         f.rejoin_why;
}
std::string explainPassThrough(const Facts& f) {
  return failingSentence(f) + " ran out; re-checking the candidate before promoting";
}

using S = ClusterState;

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
  for (std::size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].writable()) f.writable.push_back(i);
  f.healthy_replica.assign(nodes.size(), false);

  resolvePrimary(f);

  if (f.primary && !f.split_brain) {
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
      f.failing_for = elapsed(*f.failing_since, now.steady);
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
    if (!f.primary_ok || (f.primary == i && !f.split_brain) || f.healthy_replica[i]) continue;
    f.unhealthy_since[i] = i < memory.unhealthy_since.size() && memory.unhealthy_since[i]
                               ? memory.unhealthy_since[i]
                               : now.steady;
  }
  if (f.primary && !f.split_brain) {
    chooseRejoin(f);
    judgeSwitchover(f);
    judgeRequest(f);
    judgeFailback(f);
  } else if (view.request) {
    judgeRequest(f);
  }
  return f;
}

const std::vector<Transition>& transitionTable() {
  static const std::vector<Transition> table = {
      {"split-brain",
       {},
       S::kSplitBrain,
       "two writable nodes on the same newest timeline, or a writable node on the remembered "
       "primary's timeline while that primary is not writable",
       "none; alert (split-brain gauge)",
       "Nothing tells which history is right: fencing the wrong node loses data and promoting "
       "makes it worse, so an operator decides.",
       isSplitBrain,
       nullptr,
       explainSplitBrain},
      {"wait-for-first-probe",
       {S::kInitializing},
       S::kInitializing,
       "some node has not been probed yet",
       "none",
       "A decision needs a full view; /readyz stays 503 until then.",
       notAllProbed,
       nullptr,
       explainWaiting},
      {"promotion-confirmed",
       {S::kPromoting},
       S::kDegraded,
       "the promoted replica is seen writable",
       "record the failover",
       "Promotion is confirmed by observation, never assumed; the old primary is gone or must "
       "be fenced, so the cluster is degraded until a replica streams again.",
       promotionConfirmed,
       completeFailover,
       explainConfirmed},
      {"promotion-abandoned",
       {S::kPromoting},
       S::kDegraded,
       "promotion not confirmed by its deadline and the old primary commits again",
       "count a failed failover",
       "Keeping a primary that works beats a promotion that did not happen; a late promotion "
       "shows up as a newer timeline and the old primary gets fenced.",
       promotionFailedPrimaryBack,
       abandonPromotion,
       explainAbandoned},
      {"promotion-retry",
       {S::kPromoting},
       S::kPromoting,
       "promotion not confirmed by its deadline, attempts remain, no veto",
       "promote again",
       "pg_promote can time out on a busy replica; asking again is harmless.",
       promotionRetry,
       issuePromote,
       explainRetry},
      {"promotion-gave-up",
       {S::kPromoting},
       S::kFailoverVetoed,
       "promotion not confirmed by its deadline and no attempt or candidate remains",
       "count a failed failover; veto",
       "Retrying forever hides a broken replica; the veto and the metric call an operator.",
       promotionOverdue,
       giveUpPromotion,
       explainGiveUp},
      {"promotion-pending",
       {S::kPromoting},
       S::kPromoting,
       "promotion not yet confirmed, deadline not passed",
       "none",
       "Promotion takes a moment (end-of-recovery checkpoint).",
       always,
       nullptr,
       explainPending},
      {"switchover-promote",
       {S::kSwitchingOver},
       S::kPromoting,
       "the fenced primary accepts no writes and the target replayed everything it wrote",
       "promote the target",
       "A planned switchover loses nothing: writes stopped first, and the target has every "
       "byte of WAL the old primary produced.",
       switchoverCaughtUp,
       promoteSwitchoverTarget,
       explainSwitchoverPromote},
      {"switchover-aborted",
       {S::kSwitchingOver},
       S::kDegraded,
       "the target stopped being a reachable replica, the primary became unreachable, or the "
       "target did not catch up within failover.switchover_timeout_ms",
       "unfence the primary; record the failed switchover",
       "A switchover that cannot finish safely must give the cluster its primary back.",
       switchoverFailed,
       abortSwitchover,
       explainSwitchoverAbort},
      {"switchover-waiting",
       {S::kSwitchingOver},
       S::kSwitchingOver,
       "the target is still catching up",
       "keep the primary fenced",
       "Promotion waits for the last byte.",
       always,
       keepSwitchoverFence,
       explainSwitchoverWait},
      {"unfence-self-fenced-primary",
       {},
       S::kPrimaryFailing,
       "the primary is reachable and read-only because its lease guard fenced it, no other "
       "node is out of recovery on its timeline or a newer one, and no promotion or switchover "
       "is in flight",
       "unfence it (every tick until it commits again)",
       "The guard fences a primary that hears from neither pgfailover nor its replica, because "
       "pgfailover may be promoting the replica; once pgfailover sees it again and nothing "
       "was promoted, the fence only costs writes.",
       primarySelfFenced,
       unfenceSelfFencedPrimary,
       explainSelfFenced},
      {"fence-stale-writable",
       {},
       S::kFencingRequired,
       "a node other than the primary accepts writes on an older timeline",
       "fence that node (every tick until it holds)",
       "The node on the newer timeline is the primary; a writable old primary must never take "
       "writes that the new history will throw away.",
       hasStaleWritable,
       fenceStale,
       explainFence},
      {"operator-failover",
       {},
       S::kPromoting,
       "an operator asked for a failover (POST /failover) and the target is a reachable "
       "replica of this cluster; unless forced, only when the primary is not healthy",
       "fence the old primary if it is reachable; promote the target",
       "The operator knows something pgfailover cannot see; the timeout and the replica's "
       "confirmation are skipped, nothing else.",
       operatorFailover,
       beginOperatorFailover,
       explainOperatorFailover},
      {"operator-switchover",
       {},
       S::kSwitchingOver,
       "an operator asked for a switchover (POST /switchover), the primary commits and the "
       "target streams within the lag limit",
       "fence the primary (read-only, sessions ended)",
       "Stop writes first, then wait for the target to replay the last byte.",
       operatorSwitchover,
       beginOperatorSwitchover,
       explainOperatorSwitchover},
      {"failback",
       {S::kHealthy},
       S::kSwitchingOver,
       "failback is on, the preferred node streams with no lag and the cluster has been "
       "healthy for failover.failback_delay_ms",
       "start a switchover to the preferred node",
       "The seed's behaviour, made safe: the primary role returns through a planned "
       "switchover, never through a second failover.",
       failbackDue,
       beginFailback,
       explainFailback},
      {"no-primary",
       {},
       S::kNoPrimary,
       "no writable node and no primary known or inferable",
       "none",
       "Promoting a replica with no known primary could pick a stale node; an operator "
       "decides (POST /failover).",
       noPrimary,
       nullptr,
       explainNoPrimary},
      {"rejoin-node",
       {},
       S::kDegraded,
       "the primary commits and a node with a host executor is not in recovery (fenced), or "
       "has not been a healthy replica for failover.rejoin_grace_ms (at least 60 s for a "
       "reachable standby on the primary's timeline, or that last streamed on it, whose WAL "
       "receiver reconnects by itself)",
       "rejoin it: stop, pg_rewind (re-clone if that fails), follow the primary, start",
       "The cluster heals itself back to a primary and a streaming replica; one operation per "
       "node at a time, retried after failover.rejoin_retry_interval_ms.",
       rejoinDue,
       issueRejoin,
       explainRejoin},
      {"primary-and-replica-healthy",
       {},
       S::kHealthy,
       "the primary commits and a replica streams from it within the lag limit",
       "clear any failure timer and veto",
       "The guarantee the cluster exists for.",
       primaryOkReplicaOk,
       clearFailure,
       explainHealthy},
      {"primary-healthy-replica-not",
       {},
       S::kDegraded,
       "the primary commits but no replica streams within the lag limit",
       "clear any failure timer and veto",
       "Writes work, but a failover now would have no safe target.",
       primaryOkReplicaNotOk,
       clearFailure,
       explainDegraded},
      {"primary-failing",
       {},
       S::kPrimaryFailing,
       "the primary's probe or heartbeat fails and the applicable timeout has not run out",
       "keep the timer running",
       "One lost probe is never enough: the timer runs while every probe fails, and the "
       "timeout depends on the evidence (refused 3 s, silent 10 s, starting up 30 s).",
       failingWithinTimeout,
       nullptr,
       explainFailing},
      {"failover-vetoed",
       {},
       S::kFailoverVetoed,
       "the timeout ran out but the replica is unreachable, not a replica, of another "
       "cluster, still hears the primary, lags too much, or promotion kept failing",
       "count the veto once; re-check every tick",
       "pgfailover's own view is not enough: the replica must confirm it lost the primary "
       "too, which is what prevents a failover when only pgfailover's link broke.",
       timeoutElapsedVetoed,
       recordVeto,
       explainVetoed},
      {"promote-replica",
       {S::kPrimaryFailing, S::kFailoverVetoed},
       S::kPromoting,
       "the timeout ran out, and the replica is reachable, in recovery, of the same cluster, "
       "lost the primary too, and is within the lag limit",
       "promote the replica (pg_promote)",
       "Every condition a careful DBA checks before promoting holds.",
       timeoutElapsedClear,
       issuePromote,
       explainPromote},
      {"timeout-ran-out-elsewhere",
       {},
       S::kPrimaryFailing,
       "the timeout ran out while in another state (for example after fencing)",
       "none; the next tick may promote",
       "Every promotion is preceded by a tick that reports the failing primary.",
       timeoutElapsedClear,
       nullptr,
       explainPassThrough},
  };
  return table;
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
    if ((f.primary == i && !f.split_brain) || rejoined_by_us[i]) {
      away[i].reset();
    } else if (!node.reachable && node.failure != ProbeFailure::kStartingUp) {
      away[i] = f.now.steady;
    } else if (away[i] && f.healthy_replica[i] && !(op && op->running)) {
      const Millis took = elapsed(*away[i], f.now.steady);
      d.events.push_back(Event{"rejoin", node.name, "", "", "succeeded",
                               node.name +
                                   " came back as a standby started by its host (its "
                                   "start guard, systemd or an operator) and streams from " +
                                   f.nameOf(*f.primary) + " on timeline " +
                                   std::to_string(node.timeline) + "; pgfailover ran nothing on it",
                               took, "host_start"});
      away[i].reset();
    }
  }
}

Decision decide(const Memory& memory, const ClusterView& view, Now now, const Policy& policy) {
  const Facts f = evaluateFacts(memory, view, now, policy);
  Decision d;
  d.next = memory;

  // Bookkeeping shared by every row: who the primary is and what it was last seen at.
  if (!f.split_brain) d.next.primary = f.primary;
  if (f.primary_ok) d.next.heartbeat_seen_at = now.steady;
  d.next.streaming_seen_at.resize(view.nodes.size());
  for (std::size_t i = 0; i < view.nodes.size(); ++i)
    if (view.nodes[i].streaming()) d.next.streaming_seen_at[i] = now.steady;
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
  d.next.failing_since = f.failing_since;
  if (f.failing_since) {
    d.next.failing_since_wall =
        (memory.failing_since == f.failing_since && memory.failing_since_wall)
            ? *memory.failing_since_wall
            : now.wall;
  } else {
    d.next.failing_since_wall.reset();
  }
  if (f.primary && !f.split_brain) {
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

  // A promotion this process did not see complete: pgfailover was restarted between pg_promote
  // and the tick that confirms it (or a replica was promoted by hand). The cluster moved to a
  // newer timeline; record that failover once, so /history and the failover count stay true.
  if (f.primary && !f.split_brain && memory.primary && *memory.primary < view.nodes.size() &&
      *f.primary != *memory.primary && !memory.promoting && memory.last_primary_timeline != 0 &&
      view.nodes[*f.primary].reachable && !view.nodes[*f.primary].in_recovery &&
      view.nodes[*f.primary].timeline > memory.last_primary_timeline) {
    FailoverRecord record;
    record.started_at = now.wall;
    record.completed_at = now.wall;
    record.from = f.nameOf(*memory.primary);
    record.to = f.nameOf(*f.primary);
    record.reason = record.to + " is primary on timeline " +
                    std::to_string(view.nodes[*f.primary].timeline) + ", newer than timeline " +
                    std::to_string(memory.last_primary_timeline) + " of " + record.from +
                    ": a promotion pgfailover did not see complete (restarted during a failover, "
                    "or promoted outside pgfailover)";
    d.next.last_failover = record;
    d.next.failovers = memory.failovers + 1;
    d.failover_completed = true;
    d.events.push_back(Event{"failover",
                             view.nodes[*f.primary].name,
                             view.nodes[*memory.primary].name,
                             view.nodes[*f.primary].name,
                             "succeeded",
                             record.reason,
                             {}});
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
      d.events.push_back(Event{"rejoin", view.nodes[i].name, "", "",
                               op.last_succeeded          ? "succeeded"
                               : op.last_host_unreachable ? "host_unreachable"
                                                          : "failed",
                               op.last_succeeded ? "rejoined by " + op.last_method : op.last_error,
                               op.last_duration, op.last_method});
    }
  }
  trackReturns(f, rejoined_by_us, d);

  for (const auto& row : transitionTable()) {
    if (!row.from.empty() &&
        std::find(row.from.begin(), row.from.end(), memory.state) == row.from.end())
      continue;
    if (!row.applies(f)) continue;
    d.rule = std::string(row.id);
    d.reason = row.explain(f);
    if (row.to == S::kPromoting && memory.state != S::kPromoting)
      d.next.last_failover_reason = d.reason;
    if (row.effect) row.effect(f, d);
    d.next.state = row.to;
    // A promotion is awaited only while promoting; left any other way (a split brain), it
    // would be retried, and block the unfence of a self-fenced primary, ever after.
    if (row.to != S::kPromoting) d.next.promoting.reset();
    break;
  }
  if (view.request) {
    const bool carried_out = d.rule == "operator-failover" || d.rule == "operator-switchover";
    if (!carried_out) {
      d.request_refused = !f.request_refusal.empty()
                              ? f.request_refusal
                              : std::string("the cluster is ") + toString(memory.state) +
                                    " and cannot carry it out now: " + d.reason;
      d.events.push_back(
          Event{"request",
                "",
                "",
                "",
                "refused",
                std::string(toString(view.request->kind)) + " refused: " + *d.request_refused,
                {}});
    }
  }
  tagRequestEvents(memory, view, d);
  if (d.next.state != memory.state || memory.state_since == SteadyTime{})
    d.next.state_since = now.steady;
  return d;
}

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
  std::size_t writable = 0;
  for (const auto& n : view.nodes) writable += n.writable() ? 1 : 0;
  s.split_brain = writable > 1;

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

std::string renderStateMachineDoc() {
  std::ostringstream out;
  out << "# pgfailover state machine\n\n"
      << "<!-- Generated by `pgfailover print-states` from src/core/decide.cc; "
         "do not edit by hand. A unit test fails when this file is stale. -->\n\n"
      << "Each tick pgfailover probes every node, evaluates the facts below once, then fires "
         "the **first** row, in order, whose *from* column contains the current state (empty: "
         "any state) and whose condition holds. The decision is a pure function of the "
         "previous state, the observations, the time and the configuration; no I/O happens "
         "inside it.\n\n"
      << "## States\n\n| state | guarantee |\n|---|---|\n"
      << "| initializing | not every node has been probed yet; nothing is decided |\n"
      << "| healthy | the primary commits (heartbeat) and a replica streams from it within the "
         "lag limit |\n"
      << "| degraded | the primary commits; no replica streams within the lag limit |\n"
      << "| primary_failing | every probe of the primary fails; a failover timeout is running |\n"
      << "| failover_vetoed | the timeout ran out but a safety condition forbids promotion |\n"
      << "| promoting | pg_promote was sent to the replica; waiting to see it writable |\n"
      << "| fencing_required | a node other than the primary accepts writes (older timeline) |\n"
      << "| no_primary | no node accepts writes and none can safely be promoted |\n"
      << "| split_brain | two writable nodes and nothing tells which history is right |\n"
      << "| switching_over | planned switchover: the primary is fenced, the target catches up |\n\n"
      << "## Transitions\n\n| # | rule | from | condition | to | actions | why |\n"
      << "|---|---|---|---|---|---|---|\n";
  int index = 1;
  for (const auto& row : transitionTable()) {
    std::string from;
    for (auto state : row.from) from += (from.empty() ? "" : ", ") + std::string(toString(state));
    if (from.empty()) from = "any";
    out << "| " << index++ << " | `" << row.id << "` | " << from << " | " << row.when << " | "
        << toString(row.to) << " | " << row.actions << " | " << row.why << " |\n";
  }
  out << "\n## Failover timeouts\n\n"
      << "| evidence from the primary's probe | timeout key | default |\n|---|---|---|\n"
      << "| connection refused, reset or closed by the server (proof it is down) | "
         "`failover.confirmed_down_timeout_ms` | 3000 |\n"
      << "| silence: probe deadline expired, no route, rejected, cannot commit | "
         "`failover.unresponsive_timeout_ms` | 10000 |\n"
      << "| a lost host: silence (deadline expired, no route), and the host does not answer "
         "ICMP either (`probe.icmp` on), with the lease on (`probe.primary_lease_ms` > 0) | "
         "`failover.host_lost_timeout_ms` | 5000 |\n"
      << "| \"the database system is starting up / shutting down / in recovery\" | "
         "`failover.starting_up_grace_ms` | 30000 |\n\n"
      << "The timer starts at the first failed probe and runs while every probe fails; the "
         "timeout that applies is the one for the latest evidence. The replica confirms it "
         "lost the primary when its WAL receiver is not streaming, or it heard nothing for "
         "`failover.replica_silence_ms` (never less than half its `wal_receiver_timeout` plus "
         "1 s). With the lease on, no promotion happens before the old primary's last lease "
         "(and its replica's vouching for it) ran out, plus 0.5 s: a lost host is failed over "
         "faster only because that evidence is as strong as a refused connection.\n";
  return out.str();
}

}  // namespace pgfailover::core
