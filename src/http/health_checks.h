// The answers behind the Patroni-style role checks (/primary, /replica, /read-only, /health):
// may a load balancer send writes, or reads, to this node or this cluster right now? Pure
// functions of one published snapshot, so the rules are tested without a network and the same
// rules can serve a future start-up guard.
//
// Deliberately not here: staleness of the snapshot (the router knows "now"), HTTP status codes
// and bodies (the router renders a CheckResult), and any look at PostgreSQL itself.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/snapshot.h"

namespace pgfailover::http {

struct CheckResult {
  bool ok = false;
  // One sentence for the operator reading the body: why the answer is yes or no.
  std::string reason;
  // The node the answer is about: the checked node, or for a cluster check the node that
  // satisfied it (absent when none did).
  const core::NodeSnapshot* node = nullptr;
};

// Writes may go to `node`: it is the snapshot's primary, reachable, not in recovery, not
// read-only, its heartbeat commits, and the cluster is not initializing, split-brain, promoting,
// switching over, or asking to fence this node.
CheckResult checkPrimary(const core::Snapshot& snapshot, const core::NodeSnapshot& node);

// Reads may go to `node` as a replica: reachable, in recovery, its WAL receiver streaming, role
// replica, and (when `max_lag_bytes` is given) a known lag within it.
CheckResult checkReplica(const core::Snapshot& snapshot, const core::NodeSnapshot& node,
                         std::optional<std::uint64_t> max_lag_bytes);

// Reads may go to `node`: it passes checkPrimary or checkReplica.
CheckResult checkReadOnly(const core::Snapshot& snapshot, const core::NodeSnapshot& node,
                          std::optional<std::uint64_t> max_lag_bytes);

// PostgreSQL on `node` answers (it may be a primary, a replica, or fenced).
CheckResult checkHealth(const core::Snapshot& snapshot, const core::NodeSnapshot& node);

// Cluster forms: some node passes the per-node check. /health for the cluster means "has a
// writable primary", the thing an application health check wants to know.
CheckResult checkClusterPrimary(const core::Snapshot& snapshot);
CheckResult checkClusterReplica(const core::Snapshot& snapshot,
                                std::optional<std::uint64_t> max_lag_bytes);
CheckResult checkClusterReadOnly(const core::Snapshot& snapshot,
                                 std::optional<std::uint64_t> max_lag_bytes);
CheckResult checkClusterHealth(const core::Snapshot& snapshot);

// "16.0 MB", "512 B": byte counts in the unit the `lag` parameter uses (1024-based).
std::string formatBytes(std::uint64_t bytes);

}  // namespace pgfailover::http
