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
    return text;
  }
  if (node.in_recovery) return "in recovery";
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

TimeoutKind timeoutKindFor(const NodeObservation& primary) {
  switch (primary.failure) {
    case ProbeFailure::kRefused:
      return TimeoutKind::kConfirmedDown;
    case ProbeFailure::kStartingUp:
      return TimeoutKind::kStartingUp;
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
  }
  return policy.unresponsive_timeout;
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
  } else if (f.memory->promote_attempts >= policy.promote_attempts) {
    f.veto = VetoReason::kPromoteAttemptsExhausted;
    f.veto_detail =
        "promotion of " + name + " failed " + std::to_string(f.memory->promote_attempts) + " times";
  }
}

void assessReplicas(Facts& f) {
  if (!f.primary) return;
  const auto& nodes = f.view->nodes;
  const auto& primary = nodes[*f.primary];
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (i == *f.primary) continue;
    const auto& node = nodes[i];
    std::string problem;
    if (!node.reachable) {
      problem = "replica " + f.nameOf(i) + " is unreachable (" + describeProblem(node) + ")";
    } else if (!node.in_recovery) {
      problem = "node " + f.nameOf(i) + " is not in recovery";
    } else if (!node.streaming()) {
      problem = "replica " + f.nameOf(i) + " is not streaming (" + describeReceiver(node) + ")";
    } else if (node.wal_receiver->received_timeline != 0 && primary.timeline != 0 &&
               node.wal_receiver->received_timeline != primary.timeline) {
      problem = "replica " + f.nameOf(i) + " streams timeline " +
                std::to_string(node.wal_receiver->received_timeline) + ", the primary is on " +
                std::to_string(primary.timeline);
    } else if (auto lag = lagBehind(primary.current_lsn, node.position());
               lag && *lag > f.policy->max_lag_bytes) {
      problem = "replica " + f.nameOf(i) + " lags " + formatBytes(*lag) + " (limit " +
                formatBytes(f.policy->max_lag_bytes) + ")";
    } else {
      f.replica_healthy = true;
      f.replica_problem.clear();
      return;
    }
    if (f.replica_problem.empty()) f.replica_problem = problem;
  }
  if (f.replica_problem.empty()) f.replica_problem = "no replica is configured";
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
  return !f.promotion_confirmed && f.promotion_overdue &&
         f.memory->promote_attempts < f.policy->promote_attempts && !f.veto;
}
bool promotionOverdue(const Facts& f) {
  return !f.promotion_confirmed && f.promotion_overdue;
}
bool always(const Facts&) {
  return true;
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
bool timeoutElapsedClear(const Facts& f) {
  return f.timeout_elapsed && !f.veto;
}

// ---- effects ----

void issuePromote(const Facts& f, Decision& d) {
  d.actions.push_back(Action{ActionKind::kPromote, *f.candidate,
                             "pg_promote(wait => true) on " + f.nameOf(*f.candidate)});
  d.next.promoting = f.candidate;
  d.next.promote_issued_at = f.now.steady;
  d.next.promote_attempts = f.memory->promote_attempts + 1;
  d.next.veto.reset();
}

void completeFailover(const Facts& f, Decision& d) {
  const std::size_t to = *f.memory->promoting;
  FailoverRecord record;
  record.started_at = f.memory->failing_since_wall.value_or(f.now.wall);
  record.completed_at = f.now.wall;
  record.from = f.memory->primary ? f.nameOf(*f.memory->primary) : "";
  record.to = f.nameOf(to);
  record.duration =
      f.memory->failing_since ? elapsed(*f.memory->failing_since, f.now.steady) : Millis{0};
  record.reason = f.memory->last_failover_reason;
  d.next.last_failover = record;
  d.next.failovers = f.memory->failovers + 1;
  d.next.primary = to;
  d.next.promoting.reset();
  d.next.promote_attempts = 0;
  d.next.failing_since.reset();
  d.next.failing_since_wall.reset();
  d.failover_completed = true;
}

void abandonPromotion(const Facts&, Decision& d) {
  d.next.promoting.reset();
  d.next.promote_attempts = 0;
  d.failover_failed = true;
}

void giveUpPromotion(const Facts& f, Decision& d) {
  d.next.promoting.reset();
  d.next.veto = VetoReason::kPromoteAttemptsExhausted;
  if (f.memory->veto != VetoReason::kPromoteAttemptsExhausted)
    d.new_veto = VetoReason::kPromoteAttemptsExhausted;
  d.failover_failed = true;
}

void fenceStale(const Facts& f, Decision& d) {
  for (auto i : f.stale_writable)
    d.actions.push_back(Action{ActionKind::kFence, i,
                               f.nameOf(i) + " is writable on timeline " +
                                   std::to_string(f.node(i).timeline) + ", the primary " +
                                   f.nameOf(*f.primary) + " is on " +
                                   std::to_string(f.node(*f.primary).timeline)});
}

void clearFailure(const Facts&, Decision& d) {
  d.next.veto.reset();
  d.next.promote_attempts = 0;
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
  return "primary " + f.nameOf(*f.primary) + " commits, but " + f.replica_problem;
}
std::string explainFailing(const Facts& f) {
  std::string text = failingSentence(f) + ", " + formatSeconds(f.timeout - f.failing_for) + " left";
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

  resolvePrimary(f);

  if (f.primary && !f.split_brain) {
    const auto& primary = nodes[*f.primary];
    f.primary_ok = primary.writable() && (!policy.heartbeat || primary.heartbeat_written);
    if (!f.primary_ok) {
      // The timer survives ticks only while the same node is the one failing.
      const bool same_primary = memory.primary == f.primary;
      f.failing_since = same_primary && memory.failing_since ? *memory.failing_since : now.steady;
      f.timeout_kind = timeoutKindFor(primary);
      f.timeout = timeoutFor(policy, *f.timeout_kind);
      f.failing_for = elapsed(*f.failing_since, now.steady);
      f.timeout_elapsed = f.failing_for >= f.timeout;
      chooseCandidate(f);
    } else {
      assessReplicas(f);
    }
  }

  if (memory.promoting && *memory.promoting < nodes.size()) {
    f.promotion_confirmed = nodes[*memory.promoting].writable();
    f.promotion_overdue = elapsed(memory.promote_issued_at, now.steady) >= policy.promote_timeout;
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

Decision decide(const Memory& memory, const ClusterView& view, Now now, const Policy& policy) {
  const Facts f = evaluateFacts(memory, view, now, policy);
  Decision d;
  d.next = memory;

  // Bookkeeping shared by every row: who the primary is and what it was last seen at.
  if (!f.split_brain) d.next.primary = f.primary;
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
      if (primary.heartbeat_written && primary.heartbeat_unix_seconds) {
        d.next.previous_primary_heartbeat = memory.last_primary_heartbeat;
        d.next.last_primary_heartbeat = primary.heartbeat_unix_seconds;
      }
    }
  }

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
    break;
  }
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
  s.ready = !view.nodes.empty() && std::all_of(view.nodes.begin(), view.nodes.end(),
                                               [](const auto& n) { return n.probed; });
  std::size_t writable = 0;
  for (const auto& n : view.nodes) writable += n.writable() ? 1 : 0;
  s.split_brain = writable > 1;

  if (m.failing_since && m.primary && m.primary < view.nodes.size() &&
      (m.state == S::kPrimaryFailing || m.state == S::kFailoverVetoed)) {
    const auto kind = timeoutKindFor(view.nodes[*m.primary]);
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
      << "| split_brain | two writable nodes and nothing tells which history is right |\n\n"
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
      << "| \"the database system is starting up / shutting down / in recovery\" | "
         "`failover.starting_up_grace_ms` | 30000 |\n\n"
      << "The timer starts at the first failed probe and runs while every probe fails; the "
         "timeout that applies is the one for the latest evidence. The replica confirms it "
         "lost the primary when its WAL receiver is not streaming, or it heard nothing for "
         "`failover.replica_silence_ms` (never less than half its `wal_receiver_timeout` plus "
         "1 s).\n";
  return out.str();
}

}  // namespace pgfailover::core
