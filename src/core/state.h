// The cluster's states, the decision's memory between ticks, its policy, and the actions it
// asks for. States are named as guarantees: "healthy" means a writable primary that commits
// and a replica streaming from it within the lag limit, not merely "nothing went wrong yet".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/lsn.h"
#include "common/time.h"
#include "core/observation.h"

namespace pgfailover::core {

enum class ClusterState {
  kInitializing,     // not every node has been probed yet
  kHealthy,          // primary commits; replica streams from it within the lag limit
  kDegraded,         // primary commits; the replica is missing, not streaming or lagging
  kPrimaryFailing,   // the primary's probes fail; a failover timeout is running
  kFailoverVetoed,   // the timeout ran out but a safety condition forbids promotion
  kPromoting,        // pg_promote was sent to the replica; waiting to see it writable
  kFencingRequired,  // a node other than the primary is writable (older timeline)
  kNoPrimary,        // no node can be primary: none writable and no safe candidate
  kSplitBrain,       // two writable nodes and nothing tells which one is right
  kSwitchingOver,    // planned switchover: primary fenced, waiting for the target to catch up
};
inline constexpr ClusterState kAllStates[] = {
    ClusterState::kInitializing,    ClusterState::kHealthy,        ClusterState::kDegraded,
    ClusterState::kPrimaryFailing,  ClusterState::kFailoverVetoed, ClusterState::kPromoting,
    ClusterState::kFencingRequired, ClusterState::kNoPrimary,      ClusterState::kSplitBrain,
    ClusterState::kSwitchingOver};
const char* toString(ClusterState state);

// kFenced: not in recovery but read-only (fenced by SQL); kNeedsFencing: writable on an older
// timeline than the primary.
enum class NodeRole { kPrimary, kReplica, kUnknown, kNeedsFencing, kFenced };
const char* toString(NodeRole role);

// Which failover timeout is running, chosen by the strength of the evidence.
enum class TimeoutKind { kConfirmedDown, kUnresponsive, kHostLost, kStartingUp };
const char* toString(TimeoutKind kind);

// Why a failover that was due did not happen.
enum class VetoReason {
  kReplicaUnreachable,
  kReplicaNotInRecovery,
  kSystemIdentifierMismatch,
  kReplicaStillStreaming,
  kReplicaLagging,
  kPromoteAttemptsExhausted,
  kReplicaNotSynchronous,
};
const char* toString(VetoReason reason);

// Synchronous replication managed by pgfailover (synchronous_standby_names on the primary).
enum class SyncMode {
  kOff,     // asynchronous: failover may lose what the replica had not received (bounded by lag)
  kOn,      // commits wait for the replica; alone after `standalone_after` without one
  kStrict,  // commits always wait for a replica; never alone
};
const char* toString(SyncMode mode);

struct Policy {
  Millis confirmed_down_timeout{3000};
  Millis unresponsive_timeout{10000};
  // Silence from a primary whose host does not answer ICMP either, with the lease on (the
  // lease, held back by holdForTheLease, makes sure its guard fenced it if it still runs).
  Millis host_lost_timeout{5000};
  bool icmp = false;  // the probe pings each node's host (probe.icmp)
  Millis starting_up_grace{30000};
  Millis replica_silence{5000};
  std::uint64_t max_lag_bytes = 16ull * 1024 * 1024;
  Millis promote_timeout{10000};
  int promote_attempts = 3;
  bool heartbeat = true;
  // The lease the heartbeat grants the primary (0: none). No promotion before the lease pgfailover
  // last renewed, and the replicas' vouching for the old primary, have run out.
  Millis primary_lease{0};

  // Lifecycle: rejoin a node that is not a healthy replica (needs a host executor).
  bool rejoin = true;
  Millis rejoin_grace{5000};            // a replica may be down or not streaming this long first
  Millis rejoin_retry_interval{30000};  // after a failed rejoin
  Millis switchover_timeout{30000};     // for the target to catch up with the fenced primary
  bool slots = true;                    // keep a physical slot per replica on the primary
  Millis slot_drop_after{3600000};      // drop the slot of a node gone this long
  std::vector<std::string> slot_names;  // per node: the slot it streams from
  bool failback = false;                // return the primary role to `preferred`
  std::optional<std::size_t> preferred;
  Millis failback_delay{30000};  // healthy and caught up this long before failing back
  SyncMode sync_mode = SyncMode::kOff;
  Millis standalone_after{10000};  // kOn: how long commits wait for a replica that is gone
};

enum class ActionKind {
  kPromote,
  kFence,
  kUnfence,
  kRejoin,
  kCreateSlot,
  kDropSlot,
  kSetSynchronousStandbys,
  kUseSlot,  // make a replica stream from its slot (primary_slot_name on the replica)
};
const char* toString(ActionKind kind);

struct Action {
  Action(ActionKind kind_, std::size_t node_, std::string detail_)
      : kind(kind_), node(node_), detail(std::move(detail_)) {}
  ActionKind kind;
  std::size_t node;  // index into the configured nodes
  std::string detail;
  std::string argument;  // kCreateSlot / kDropSlot: the slot; kRejoin: the primary's index
  std::size_t peer = 0;  // kRejoin: the node to follow
};

// Something worth remembering that happened this tick, for GET /history and the state file.
struct Event {
  Event(std::string kind_, std::string node_, std::string from_, std::string to_,
        std::string result_, std::string reason_, Millis duration_ = {}, std::string method_ = {})
      : kind(std::move(kind_)),
        node(std::move(node_)),
        from(std::move(from_)),
        to(std::move(to_)),
        result(std::move(result_)),
        reason(std::move(reason_)),
        duration(duration_),
        method(std::move(method_)) {}
  std::string kind;  // "failover", "switchover", "fence", "rejoin", "promote", "request"
  std::string node;
  std::string from;
  std::string to;
  std::string result;  // "succeeded", "failed", "started", "refused"
  std::string reason;
  Millis duration{0};
  // rejoin: "restart", "follow", "rewind" or "clone" (pgfailover's), "host_start" (came back by
  // itself)
  std::string method;
  // The operator request (AdminRequest::id) this event carries out or refuses; 0 for none.
  std::uint64_t request_id = 0;
};

// A planned switchover in flight.
struct Switchover {
  std::size_t from = 0;
  std::size_t to = 0;
  SteadyTime started_at{};
  WallTime started_at_wall{};
  std::uint64_t request_id = 0;  // 0 for a failback
};

struct FailoverRecord {
  WallTime started_at{};    // when the primary was first seen failing
  WallTime completed_at{};  // when the new primary was seen writable
  std::string from;
  std::string to;
  Millis duration{0};  // first failed probe to new primary confirmed
  std::string reason;
};

// What the decision remembers between ticks. Only decide() writes it.
struct Memory {
  ClusterState state = ClusterState::kInitializing;
  SteadyTime state_since{};
  std::optional<std::size_t> primary;  // index of the node believed primary

  // While the primary fails: since when, and the last position it was seen at.
  std::optional<SteadyTime> failing_since;
  std::optional<WallTime> failing_since_wall;
  std::optional<Lsn> last_primary_position;
  std::uint32_t last_primary_timeline = 0;
  std::uint64_t last_primary_system_identifier = 0;
  std::optional<double> last_primary_heartbeat;  // primary's clock, unix seconds
  // The heartbeat written one tick earlier: replicas are probed while this tick's is being
  // written, so lag is measured against the one they had a whole interval to replay.
  std::optional<double> previous_primary_heartbeat;
  std::optional<VetoReason> veto;

  // An issued promotion, and the operator request behind it (0: pgfailover's own decision).
  std::optional<std::size_t> promoting;
  std::uint64_t promote_request_id = 0;
  // The last node pg_promote was issued to, until it is seen again: in recovery (it did not
  // happen) or as the primary. While it is unknown, no self-fenced node is unfenced: the
  // promotion may have happened out of sight.
  std::optional<std::size_t> unconfirmed_promotion;
  SteadyTime promote_issued_at{};
  int promote_attempts = 0;

  std::optional<FailoverRecord> last_failover;
  std::string last_failover_reason;  // the sentence of the tick that decided to promote
  std::uint64_t failovers = 0;

  // Lifecycle.
  std::optional<Switchover> switchover;  // in flight (phase kSwitchingOver or kPromoting)
  std::vector<std::optional<SteadyTime>> unhealthy_since;    // per node: not a healthy replica
  std::vector<std::optional<SteadyTime>> starting_up_since;  // per node: answers "starting up"
  // For the lease: the last tick the primary's heartbeat committed, and per node the last tick
  // it was seen streaming (its replies vouch for the primary with the node's lease guard).
  std::optional<SteadyTime> heartbeat_seen_at;
  std::vector<std::optional<SteadyTime>> streaming_seen_at;
  // Per node: the timeline it last streamed on (0: none, or it left recovery since).
  std::vector<std::uint32_t> streamed_timeline;
  std::vector<std::uint64_t> operations_seen;  // per node: finished operations already reported
  // Per node: the last tick it was seen down (unreachable, not starting up) while not the
  // primary, until it streams again. A node that comes back by itself (its host's start guard,
  // systemd, an operator) is a rejoin too; pgfailover's own rejoins report themselves.
  std::vector<std::optional<SteadyTime>> away_seen_at;
  // Per node: when a replica streaming without its slot was last told to use it.
  std::vector<std::optional<SteadyTime>> slot_use_requested_at;

  // Synchronous mode: the node the healthy primary last reported as its synchronous standby
  // (only that node may be promoted without losing acknowledged commits).
  std::optional<std::size_t> synchronous_standby;
};

// The next state, what to do, and a sentence a DBA can read.
struct Decision {
  Memory next;
  std::vector<Action> actions;
  std::string reason;
  std::string rule;  // id of the transition-table row that fired
  // Set when this tick started a veto (counted once per veto, not once per tick).
  std::optional<VetoReason> new_veto;
  // Set on the tick a failover completes.
  bool failover_completed = false;
  bool failover_failed = false;
  bool switchover_completed = false;
  std::vector<Event> events;
  // The answer to this tick's admin request, if there was one.
  std::optional<std::string> request_refused;
};

}  // namespace pgfailover::core
