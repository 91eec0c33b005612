#include "http/health_checks.h"

#include <cstdio>

namespace pgfailover::http {

namespace {

using core::ClusterState;
using core::NodeRole;
using core::NodeSnapshot;
using core::Snapshot;

CheckResult fail(std::string reason, const NodeSnapshot* node = nullptr) {
  return {false, std::move(reason), node};
}

CheckResult pass(std::string reason, const NodeSnapshot* node) {
  return {true, std::move(reason), node};
}

std::string quoted(const std::string& name) {
  return "'" + name + "'";
}

// Why a node cannot be used at all, or nullopt when PostgreSQL on it answered this tick.
std::optional<std::string> unreachableReason(const NodeSnapshot& node) {
  const auto& seen = node.observation;
  if (!seen.probed) return "node " + quoted(node.name) + " has not been probed yet";
  if (seen.reachable) return std::nullopt;
  std::string reason =
      "node " + quoted(node.name) + " is unreachable (" + core::toString(seen.failure) + ")";
  if (!seen.error.empty()) reason += ": " + seen.error;
  return reason;
}

// Conditions under which no node may take writes, whatever it looks like on its own: routing
// writes while two nodes accept them, or while a promotion is half done, is how data forks.
std::optional<std::string> clusterWriteBlocker(const Snapshot& snapshot) {
  if (!snapshot.ready || snapshot.state == ClusterState::kInitializing)
    return "the cluster is initializing: not every node has been probed yet";
  if (snapshot.split_brain || snapshot.state == ClusterState::kSplitBrain)
    return "the cluster is split-brain: more than one node accepts writes";
  if (snapshot.state == ClusterState::kPromoting) return "a promotion is in progress";
  // The old primary is fenced while the target catches up; saying so drains the balancer
  // before the role moves, instead of after writes start failing.
  if (snapshot.state == ClusterState::kSwitchingOver) return "a switchover is in progress";
  return std::nullopt;
}

const NodeSnapshot* primaryOf(const Snapshot& snapshot) {
  if (!snapshot.primary || *snapshot.primary >= snapshot.nodes.size()) return nullptr;
  return &snapshot.nodes[*snapshot.primary];
}

}  // namespace

std::string formatBytes(std::uint64_t bytes) {
  constexpr double kKiB = 1024.0;
  char buffer[32];
  const auto value = static_cast<double>(bytes);
  if (bytes < 1024) {
    std::snprintf(buffer, sizeof buffer, "%llu B", static_cast<unsigned long long>(bytes));
  } else if (value < kKiB * kKiB) {
    std::snprintf(buffer, sizeof buffer, "%.1f kB", value / kKiB);
  } else if (value < kKiB * kKiB * kKiB) {
    std::snprintf(buffer, sizeof buffer, "%.1f MB", value / (kKiB * kKiB));
  } else {
    std::snprintf(buffer, sizeof buffer, "%.1f GB", value / (kKiB * kKiB * kKiB));
  }
  return buffer;
}

CheckResult checkPrimary(const Snapshot& snapshot, const NodeSnapshot& node) {
  if (auto blocker = clusterWriteBlocker(snapshot)) return fail(*blocker, &node);
  if (node.role == NodeRole::kNeedsFencing)
    return fail("node " + quoted(node.name) + " must be fenced: it is writable but not the primary",
                &node);
  const NodeSnapshot* primary = primaryOf(snapshot);
  if (primary == nullptr)
    return fail(
        std::string("the cluster has no primary (state ") + core::toString(snapshot.state) + ")",
        &node);
  if (primary->name != node.name)
    return fail("node " + quoted(node.name) + " is not the primary (the primary is " +
                    quoted(primary->name) + ")",
                &node);
  if (auto reason = unreachableReason(node)) return fail(*reason, &node);
  const auto& seen = node.observation;
  if (seen.in_recovery) return fail("node " + quoted(node.name) + " is in recovery", &node);
  if (seen.read_only) return fail("node " + quoted(node.name) + " is read-only (fenced)", &node);
  // A primary whose heartbeat cannot commit (full or hung disk) takes no writes either.
  if (seen.failure == core::ProbeFailure::kCannotCommit) {
    std::string reason = "node " + quoted(node.name) + " cannot commit";
    if (!seen.error.empty()) reason += ": " + seen.error;
    return fail(reason, &node);
  }
  return pass("node " + quoted(node.name) + " is the writable primary", &node);
}

CheckResult checkReplica(const Snapshot& snapshot, const NodeSnapshot& node,
                         std::optional<std::uint64_t> max_lag_bytes) {
  if (!snapshot.ready || snapshot.state == ClusterState::kInitializing)
    return fail("the cluster is initializing: not every node has been probed yet", &node);
  if (auto reason = unreachableReason(node)) return fail(*reason, &node);
  const auto& seen = node.observation;
  if (!seen.in_recovery)
    return fail("node " + quoted(node.name) + " is not in recovery (it is not a replica)", &node);
  if (node.role != NodeRole::kReplica)
    return fail(
        "node " + quoted(node.name) + " has role " + core::toString(node.role) + ", not replica",
        &node);
  if (!seen.streaming()) {
    std::string receiver =
        seen.wal_receiver ? "'" + seen.wal_receiver->status + "'" : "not running";
    return fail(
        "replica " + quoted(node.name) + " is not streaming (WAL receiver " + receiver + ")",
        &node);
  }
  if (max_lag_bytes) {
    if (!node.lag_bytes)
      return fail("replica " + quoted(node.name) + " has an unknown lag (limit " +
                      formatBytes(*max_lag_bytes) + ")",
                  &node);
    if (*node.lag_bytes > *max_lag_bytes)
      return fail("replica " + quoted(node.name) + " lags " + formatBytes(*node.lag_bytes) +
                      " (limit " + formatBytes(*max_lag_bytes) + ")",
                  &node);
  }
  std::string reason = "replica " + quoted(node.name) + " is streaming";
  if (node.lag_bytes) reason += ", " + formatBytes(*node.lag_bytes) + " behind";
  return pass(reason, &node);
}

CheckResult checkReadOnly(const Snapshot& snapshot, const NodeSnapshot& node,
                          std::optional<std::uint64_t> max_lag_bytes) {
  CheckResult as_primary = checkPrimary(snapshot, node);
  if (as_primary.ok) return as_primary;
  CheckResult as_replica = checkReplica(snapshot, node, max_lag_bytes);
  if (as_replica.ok) return as_replica;
  return fail("neither a writable primary (" + as_primary.reason + ") nor a streaming replica (" +
                  as_replica.reason + ")",
              &node);
}

CheckResult checkHealth(const Snapshot&, const NodeSnapshot& node) {
  if (auto reason = unreachableReason(node)) return fail(*reason, &node);
  return pass("PostgreSQL on node " + quoted(node.name) + " answers", &node);
}

CheckResult checkClusterPrimary(const Snapshot& snapshot) {
  if (auto blocker = clusterWriteBlocker(snapshot)) return fail(*blocker);
  const NodeSnapshot* primary = primaryOf(snapshot);
  if (primary == nullptr)
    return fail(std::string("the cluster has no primary (state ") + core::toString(snapshot.state) +
                ")");
  return checkPrimary(snapshot, *primary);
}

CheckResult checkClusterReplica(const Snapshot& snapshot,
                                std::optional<std::uint64_t> max_lag_bytes) {
  std::string reasons;
  for (const auto& node : snapshot.nodes) {
    CheckResult result = checkReplica(snapshot, node, max_lag_bytes);
    if (result.ok) return result;
    // A primary failing the replica check is expected; only the candidates explain the answer.
    if (node.role == NodeRole::kPrimary) continue;
    if (!reasons.empty()) reasons += "; ";
    reasons += result.reason;
  }
  if (reasons.empty()) return fail("no node is a replica");
  return fail("no replica is streaming within the limit: " + reasons);
}

CheckResult checkClusterReadOnly(const Snapshot& snapshot,
                                 std::optional<std::uint64_t> max_lag_bytes) {
  CheckResult as_primary = checkClusterPrimary(snapshot);
  if (as_primary.ok) return as_primary;
  CheckResult as_replica = checkClusterReplica(snapshot, max_lag_bytes);
  if (as_replica.ok) return as_replica;
  return fail(as_primary.reason + "; " + as_replica.reason);
}

CheckResult checkClusterHealth(const Snapshot& snapshot) {
  // Less strict than /primary on purpose: "is there a database taking writes", even while the
  // cluster is degraded or split; /primary is the one that decides where writes are routed.
  for (const auto& node : snapshot.nodes)
    if (node.observation.probed && node.observation.writable())
      return pass("node " + quoted(node.name) + " accepts writes", &node);
  return fail(std::string("no node accepts writes (state ") + core::toString(snapshot.state) + ")");
}

}  // namespace pgfailover::http
