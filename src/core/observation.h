// What one probe of one node saw, as plain data. Filled by src/pg (the only code that talks to
// PostgreSQL), consumed by the pure decision in src/core and by the reports in src/http.
// Nothing here performs I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/lsn.h"
#include "common/time.h"

namespace pgfailover::core {

// Why a probe failed, by the strength of evidence it gives that the node is really down.
enum class ProbeFailure {
  kNone,
  // Proof: the server's TCP port refused us, or the server closed / reset an established
  // connection. The postmaster is gone (crash, kill -9, stopped).
  kRefused,
  // Silence: a deadline expired, or the network said "no route". The node may be hung or
  // merely cut off from pgfailover; this alone proves nothing.
  kTimeout,
  // The server answered that it is starting up, shutting down or in crash recovery: it is
  // restarting, not dead.
  kStartingUp,
  // The server answered but refused us (authentication, too many connections, a query error):
  // it is alive, and something else is wrong.
  kRejected,
  // The node answered every query but could not commit the heartbeat write (hung disk, full
  // disk, read-only): alive, but not a healthy primary.
  kCannotCommit,
};

const char* toString(ProbeFailure failure);

// One row of pg_stat_replication on a primary.
struct ReplicationPeer {
  std::string application_name;
  std::string client_addr;
  std::string state;       // "streaming", "catchup", ...
  std::string sync_state;  // "async", "sync", "potential", "quorum"
  std::optional<Lsn> sent_lsn;
  std::optional<Lsn> replay_lsn;
};

// pg_stat_wal_receiver on a replica. Absent when the replica has no WAL receiver running
// (for example right after its primary crashed).
struct WalReceiver {
  std::string status;  // "streaming", "starting", "waiting", "stopping", ...
  std::string sender_host;
  int sender_port = 0;
  std::uint32_t received_timeline = 0;
  // Seconds since the replica last heard anything from its primary, by the replica's own clock.
  std::optional<double> seconds_since_last_message;
  std::string slot_name;  // the slot it streams from; empty when none
};

// A physical replication slot seen on a node (pg_replication_slots).
struct ReplicationSlot {
  std::string name;
  bool active = false;
  std::optional<Lsn> restart_lsn;
};

struct NodeObservation {
  std::string name;  // the configured node name (set by the runtime)
  // False until the first probe of this node finishes; a never-probed node says nothing.
  bool probed = false;
  SteadyTime probed_at{};
  Millis probe_duration{0};

  bool reachable = false;
  ProbeFailure failure = ProbeFailure::kNone;
  std::string error;  // libpq's message or ours, one line, never contains a secret

  // Valid when reachable.
  bool in_recovery = false;
  bool read_only = false;  // default_transaction_read_only = on (a fenced primary)
  // Read-only because its lease guard fenced it (the heartbeat row's self_fenced_at is set):
  // the node lost pgfailover and its replica at once, and stopped taking writes by itself.
  bool self_fenced = false;
  std::uint64_t system_identifier = 0;
  // pg_postmaster_start_time() in microseconds since the epoch (0: not known). It changes when
  // the postmaster restarts, which discards a pending promote request (see promotion_may_land).
  std::int64_t postmaster_start_us = 0;
  std::uint32_t timeline = 0;
  std::optional<Lsn> current_lsn;            // primary: pg_current_wal_lsn()
  std::optional<Lsn> receive_lsn;            // replica: pg_last_wal_receive_lsn()
  std::optional<Lsn> replay_lsn;             // replica: pg_last_wal_replay_lsn()
  std::optional<WalReceiver> wal_receiver;   // replica only
  std::vector<ReplicationPeer> replication;  // primary only
  std::vector<ReplicationSlot> slots;        // physical slots on this node
  std::string synchronous_standby_names;     // current_setting('synchronous_standby_names')
  bool slots_observed = false;
  // The replica's wal_receiver_timeout, which bounds how stale its last message can be on a
  // healthy link.
  std::optional<Millis> wal_receiver_timeout;

  // The seed's ICMP check of the node's host, when probe.icmp is on: an extra signal shown in
  // /status and reasons, never a reason to fail over by itself.
  std::optional<bool> host_answers_ping;

  // Heartbeat. On the primary: whether this tick's write committed, and the primary's clock
  // value it stored. On a replica: the last stored value it has replayed.
  bool heartbeat_written = false;
  std::optional<double> heartbeat_unix_seconds;

  // The best known WAL position of this node: current on a primary, otherwise the furthest of
  // received and replayed.
  std::optional<Lsn> position() const;
  bool writable() const { return reachable && !in_recovery && !read_only; }
  bool streaming() const {
    return reachable && in_recovery && wal_receiver && wal_receiver->status == "streaming";
  }
};

// What the node-operation worker (src/runtime) reports about long operations run on a node's
// host (rejoin: stop, pg_rewind or re-clone, start). They run off the tick thread; their
// progress and results come back here, as observations.
enum class OperationKind { kRejoin, kFenceAtRest };

struct NodeOperation {
  bool available = false;  // the node has a host executor (ssh or local) configured
  bool running = false;
  OperationKind kind = OperationKind::kRejoin;  // of the running one
  std::string step;                             // what the running operation is doing
  SteadyTime started_at{};                      // when the running (or last) operation started
  std::uint64_t finished = 0;  // count of finished operations; a new value is a new result
  bool last_succeeded = false;
  // The last one failed only because the node's host could not be reached (ssh did not
  // connect): nothing on the node was touched. A host behind a partition is not a broken rejoin.
  bool last_host_unreachable = false;
  std::string last_method;  // "restart", "follow", "rewind", "clone"
  std::string last_why;     // why that method (lifecycle::RejoinResult::why)
  std::string last_error;
  SteadyTime last_finished_at{};
  Millis last_duration{0};
};

enum class RequestKind { kSwitchover, kFailover };
const char* toString(RequestKind kind);

// An operator's request from the admin API, validated for syntax and authentication by the HTTP
// layer; the decision checks it against the cluster.
struct AdminRequest {
  RequestKind kind = RequestKind::kSwitchover;
  std::optional<std::size_t> target;  // the node to promote; nullopt = the best replica
  bool force = false;                 // failover: even though the primary looks healthy
  std::uint64_t id = 0;
};

// Everything seen in one tick: one observation per configured node, in configuration order.
struct ClusterView {
  ClusterView() = default;
  explicit ClusterView(std::vector<NodeObservation> observed) : nodes(std::move(observed)) {}

  std::vector<NodeObservation> nodes;
  std::vector<NodeOperation> operations;  // empty, or one per node
  std::optional<AdminRequest> request;

  const NodeOperation* operation(std::size_t i) const {
    return i < operations.size() ? &operations[i] : nullptr;
  }
};

// The nodes that accept writes (reachable, out of recovery, not read-only), in configuration
// order.
std::vector<std::size_t> writableNodes(const ClusterView& view);

// Split brain: more than one node accepts writes. The one definition, for the decision, /status,
// the health checks and the metric; whether the timelines tell which node is the primary (the
// other is fenced) is the decision's (Facts::contested).
inline bool isSplitBrain(const std::vector<std::size_t>& writable) {
  return writable.size() > 1;
}

}  // namespace pgfailover::core
