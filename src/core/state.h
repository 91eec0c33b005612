// The cluster's states, the decision's memory between ticks, its policy, and the actions it
// asks for. States are named as guarantees: "healthy" means a writable primary that commits
// and a replica streaming from it within the lag limit, not merely "nothing went wrong yet".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "common/failover_settings.h"
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

using ::pgfailover::SyncMode;
const char* toString(SyncMode mode);

// The failover section's settings (common/failover_settings.h) and what the decision takes
// from the probe, replication and synchronous sections.
struct Policy : FailoverSettings {
  bool icmp = false;  // the probe pings each node's host (probe.icmp)
  bool heartbeat = true;
  // The lease the heartbeat grants the primary (0: none). No promotion before the lease pgfailover
  // last renewed, and the replicas' vouching for the old primary, have run out.
  Millis primary_lease{0};
  bool slots = true;  // keep a physical slot per replica on the primary
  // Drop the slot of a node gone this long.
  Millis slot_drop_after{failover_defaults::kSlotDropAfter};
  std::vector<std::string> slot_names;   // per node: the slot it streams from
  std::optional<std::size_t> preferred;  // failback's node
  SyncMode sync_mode = SyncMode::kOff;
  // kOn: how long commits wait for a replica that is gone.
  Millis standalone_after{failover_defaults::kStandaloneAfter};
};

// What the decision asks the runtime to do, one small struct per kind. The node an action runs
// on is Action::node; these carry only what that kind needs beyond it.
struct Promote {
  // The primary this promotion replaces: the runtime fences it at rest and runs the fencing hook
  // for it. None for a switchover, which fenced the old primary already.
  std::optional<std::size_t> replaces;
};
struct Fence {};
struct Unfence {};
struct Rejoin {
  std::size_t follow = 0;  // the primary to follow
};
struct CreateSlot {
  std::string slot;  // on Action::node, the primary
};
struct DropSlot {
  std::string slot;
};
struct SetSynchronousStandbys {
  std::string names;  // the whole value of synchronous_standby_names; empty: none
};
// Make a replica stream from its slot (primary_slot_name on the replica).
struct UseSlot {
  std::string slot;
};

// One name per alternative of Action::Op, in the same order (logs, metrics and tests count by it).
enum class ActionKind {
  kPromote,
  kFence,
  kUnfence,
  kRejoin,
  kCreateSlot,
  kDropSlot,
  kSetSynchronousStandbys,
  kUseSlot,
};
const char* toString(ActionKind kind);

struct Action {
  using Op = std::variant<Promote, Fence, Unfence, Rejoin, CreateSlot, DropSlot,
                          SetSynchronousStandbys, UseSlot>;
  std::size_t node = 0;  // index into the configured nodes
  std::string detail;    // why, in a sentence for the log
  Op op;

  ActionKind kind() const { return static_cast<ActionKind>(op.index()); }
  template <typename T>
  const T* as() const {
    return std::get_if<T>(&op);
  }
};
static_assert(std::variant_size_v<Action::Op> ==
              static_cast<std::size_t>(ActionKind::kUseSlot) + 1);

enum class EventKind {
  kFailover,
  kSwitchover,
  kFence,
  kUnfence,
  kRejoin,
  kRequest,      // an operator request, refused
  kSynchronous,  // synchronous replication changed mode
  kSlotDropped,
};
const char* toString(EventKind kind);

enum class EventResult { kSucceeded, kFailed, kStarted, kRefused, kStandalone, kHostUnreachable };
const char* toString(EventResult result);

// Something worth remembering that happened this tick, for GET /history and the state file.
// Built with designated initialisers; every member has a default so that only what matters is
// named.
struct Event {
  EventKind kind = EventKind::kFailover;
  std::string node{};
  std::string from{};
  std::string to{};
  EventResult result = EventResult::kStarted;
  std::string reason{};
  Millis duration{0};
  // rejoin: "restart", "follow", "rewind" or "clone" (pgfailover's), "host_start" (came back by
  // itself)
  std::string method{};
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
  // The last node pg_promote was issued to, until it is seen out of recovery (it landed) or its
  // postmaster is seen down or restarted (a start discards a pending promote request). A
  // pg_promote that timed out leaves its request in place, and a standby whose startup process
  // was stuck promotes whenever it gets going again: seeing it in recovery proves nothing, so
  // no other node is promoted meanwhile.
  std::optional<std::size_t> promotion_may_land;
  std::int64_t promotion_may_land_start_us = 0;  // its postmaster's start time at the request
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

// The rows of the transition table (transitionTable()), by name.
enum class Rule {
  kSplitBrain,
  kWaitForFirstProbe,
  kUnseenPromotion,
  kPromotionConfirmed,
  kPromotionAbandoned,
  kPromotionRetry,
  kPromotionGaveUp,
  kPromotionPending,
  kSwitchoverPromote,
  kSwitchoverAborted,
  kSwitchoverWaiting,
  kUnfenceSelfFencedPrimary,
  kFenceStaleWritable,
  kOperatorFailover,
  kOperatorSwitchover,
  kFailback,
  kNoPrimary,
  kRejoinNode,
  kPrimaryAndReplicaHealthy,
  kPrimaryHealthyReplicaNot,
  kPrimaryFailing,
  kFailoverVetoed,
  kPromoteReplica,
  kTimeoutRanOutElsewhere,
};
// The row's id as the document, the logs and GET /status show it ("promote-replica").
const char* toString(Rule rule);

// The next state, what to do, and a sentence a DBA can read.
struct Decision {
  Memory next;
  std::vector<Action> actions;
  std::string reason;
  std::optional<Rule> rule;  // the transition-table row that fired
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
