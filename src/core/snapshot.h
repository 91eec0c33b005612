// What the loop publishes at the end of each tick for the HTTP API, the metrics and the logs.
// Immutable once published; HTTP handlers read it and never touch libpq.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/observation.h"
#include "core/state.h"

namespace pgfailover::core {

struct NodeSnapshot {
  std::string name;
  std::string host;
  int port = 0;
  // How pgfailover's connections to it are secured (nodes[].sslmode), and whether that
  // checks the server's certificate.
  std::string sslmode;
  bool verifies_server = false;
  NodeRole role = NodeRole::kUnknown;
  NodeObservation observation;
  // The timeline it last streamed on (Memory::streamed_timeline), 0 when unknown.
  std::uint32_t streamed_timeline = 0;
  std::optional<std::uint64_t> lag_bytes;  // replica: bytes behind the primary
  std::optional<double> lag_seconds;       // replica: heartbeat age against the primary's clock
};

struct RunningTimeout {
  TimeoutKind kind;
  Millis total{0};
  Millis elapsed{0};
  Millis remaining() const { return total > elapsed ? total - elapsed : Millis{0}; }
};

// Several instances, one acting (docs/coordination.md): who this instance is and who acts, as
// the loop last learnt it from etcd. Without etcd, `enabled` is false and this instance acts.
struct CoordinationView {
  bool enabled = false;
  std::string instance;         // this instance's etcd.name
  bool acting = true;           // this instance may act now (always, without etcd)
  std::string acting_instance;  // the leader key's holder; empty: nobody known to act
  // Where the acting instance serves its API, as it registered it; admin requests sent to
  // another instance point there. Empty when unknown.
  std::string acting_api_url;
  std::int64_t term = 0;  // the acting instance's term (its leader key's create_revision)
  bool etcd_reachable = false;
  // Since this instance's last successful lease renewal, when it holds the leader key.
  std::optional<Millis> since_last_renewal;
  std::vector<std::string> instances;  // the instances registered in etcd, by name
  // Totals since start, for metrics: leadership gained or lost by this instance, etcd calls
  // made and failed (no answer, or an error answer) and their summed duration.
  std::uint64_t leadership_changes = 0;
  std::uint64_t etcd_requests = 0;
  std::uint64_t etcd_errors = 0;
  double etcd_request_seconds = 0;
};

struct Snapshot {
  bool ready = false;  // every node observed at least once
  std::uint64_t tick = 0;
  SteadyTime tick_at{};
  WallTime tick_at_wall{};
  std::string cluster_name;
  ClusterState state = ClusterState::kInitializing;
  std::string reason;
  std::optional<std::size_t> primary;
  // The decision's memory, which an operator request is admitted against (core/admission.h):
  // the cluster's system identifier and newest timeline as last seen on its primary (0 when
  // not known yet), and a node whose promotion was issued and that has not been seen since.
  std::uint64_t system_identifier = 0;
  std::uint32_t newest_timeline = 0;
  std::optional<std::size_t> unconfirmed_promotion;
  std::optional<std::size_t> promotion_may_land;  // Memory::promotion_may_land
  std::optional<RunningTimeout> timeout;
  std::optional<VetoReason> veto;
  std::optional<FailoverRecord> last_failover;
  bool split_brain = false;  // isSplitBrain: more than one writable node seen this tick
  std::vector<NodeSnapshot> nodes;
  // Running node operations (rejoin), one per node; empty when none is configured.
  std::vector<NodeOperation> operations;
  std::optional<Switchover> switchover;
  // Synchronous replication as managed by pgfailover.
  SyncMode sync_mode = SyncMode::kOff;
  std::optional<std::size_t> synchronous_standby;
  bool sync_standalone = false;  // sync mode on, but the primary commits without a standby
  // Configuration that exposes a secret (config::tlsWarnings), shown in /status.
  std::vector<std::string> warnings;
  // GET /history's body, rebuilt only when an event happens.
  std::shared_ptr<const std::string> history_json;
  CoordinationView coordination;

  const NodeSnapshot* node(const std::string& name) const {
    for (const auto& n : nodes)
      if (n.name == name) return &n;
    return nullptr;
  }
};

}  // namespace pgfailover::core
