// The failover decision: a pure function of (memory, observations, time, policy) returning the
// next memory, the actions to run and a sentence explaining why. No I/O and no clock reads
// happen here, so every transition is unit-tested with a fake clock.
//
// The behaviour is one ordered table of transitions (transitionTable()); decide() evaluates the
// facts of the tick once, then fires the first row whose source state and condition match, then
// the maintenance steps that follow that row. docs/state-machine.md is generated from the same
// table (`pgfailover print-states`). One file per phase: facts.cc (what the tick establishes),
// table.cc (the rows, their conditions and sentences) with effects.cc (what the rows do),
// decide.cc (the driver), snapshot.cc (what is published), state_machine_doc.cc (the document);
// an operator's request is admitted by admission.cc, which the HTTP router uses too.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/observation.h"
#include "core/snapshot.h"
#include "core/state.h"

namespace pgfailover::core {

// What one tick establishes, before any row is chosen. Computed by evaluateFacts(); exposed so
// that tests and the snapshot builder read the same conclusions the table acted on.
struct Facts {
  const Memory* memory = nullptr;
  const ClusterView* view = nullptr;
  const Policy* policy = nullptr;
  Now now{};

  bool all_probed = false;
  std::vector<std::size_t> writable;  // reachable, not in recovery, not read-only

  // The node believed primary after this tick's evidence, and how it was concluded.
  std::optional<std::size_t> primary;
  std::string primary_basis;  // "remembered", "only writable node", "newest timeline", ...
  bool split_brain = false;   // isSplitBrain(writable)
  // Nothing tells which node is the primary: two writable nodes on the same newest timeline, or
  // a writable node on the timeline of the remembered primary, which is not writable. The
  // split-brain row; a split brain the timelines resolve is fenced instead.
  bool contested = false;
  std::vector<std::size_t> stale_writable;  // writable nodes on an older timeline than primary

  bool primary_ok = false;  // reachable, writable, and (heartbeat on) committed this tick
  // The primary made itself read-only (its lease guard), and nothing says another node took
  // over: it gets its writes back.
  bool primary_self_fenced = false;
  std::optional<SteadyTime> failing_since;
  std::optional<TimeoutKind> timeout_kind;
  Millis failing_for{0};
  Millis timeout{0};
  bool timeout_elapsed = false;
  // The timeout ran out, but the old primary's lease (or a replica's vouching for it) has not:
  // its lease guard may not have fenced it yet. How long until it has.
  std::optional<Millis> lease_wait;

  // The replica that would be promoted, and why it may not be.
  std::optional<std::size_t> candidate;
  std::optional<VetoReason> veto;
  std::string veto_detail;
  std::optional<std::uint64_t> candidate_lag_bytes;

  // Some non-primary node streams from the primary within the lag limit.
  bool replica_healthy = false;
  std::string replica_problem;

  // An issued promotion.
  bool promotion_confirmed = false;  // the candidate is now writable
  bool promotion_overdue = false;    // the promote deadline passed without confirmation
  // A node other than the remembered primary left recovery on a newer timeline, and no
  // promotion of pgfailover's is in flight: a promotion it did not see.
  bool unseen_promotion = false;

  // Lifecycle.
  std::vector<bool> healthy_replica;  // per node: streams from the primary within the lag limit
  std::vector<std::optional<SteadyTime>> unhealthy_since;    // per node, carried in memory
  std::vector<std::optional<SteadyTime>> starting_up_since;  // per node, carried in memory
  std::optional<std::size_t> rejoin;                         // a node to rejoin now
  std::string rejoin_why;
  std::string operations_note;  // running operations, for reasons

  // A switchover in flight.
  bool switchover_caught_up = false;
  bool switchover_failed = false;
  std::string switchover_problem;

  // This tick's admin request, judged.
  bool switchover_requested = false;  // valid switchover request
  bool failover_requested = false;    // valid failover request
  std::optional<std::size_t> request_target;
  std::string request_refusal;  // set when the request cannot be carried out
  bool failback_due = false;

  const NodeObservation& node(std::size_t i) const { return view->nodes.at(i); }
  std::string nameOf(std::size_t i) const;
};

Facts evaluateFacts(const Memory& memory, const ClusterView& view, Now now, const Policy& policy);

// One row of the table. `from` lists the states the row applies in (empty = every state).
struct Transition {
  Rule rule;
  std::vector<ClusterState> from;
  ClusterState to;
  std::string_view when;     // the condition, in words (for the document)
  std::string_view actions;  // what is done, in words (for the document)
  std::string_view why;      // the reasoning behind the row
  bool (*applies)(const Facts&);
  // Adds actions and memory changes beyond the state change; may be null.
  void (*effect)(const Facts&, Decision&);
  std::string (*explain)(const Facts&);
};

const std::vector<Transition>& transitionTable();

// Upkeep that runs after the row that fired, for the rows it lists: replication slots and
// synchronous_standby_names follow the cluster while it is healthy, apart from any transition.
struct MaintenanceStep {
  std::string_view id;
  std::vector<Rule> after;  // the rows it follows
  std::string_view when;
  std::string_view actions;
  std::string_view why;
  void (*run)(const Facts&, Decision&);
};

const std::vector<MaintenanceStep>& maintenanceSteps();

Decision decide(const Memory& memory, const ClusterView& view, Now now, const Policy& policy);

// The snapshot published after a tick: roles, lags, the running timeout. Pure.
Snapshot buildSnapshot(const Decision& decision, const ClusterView& view, Now now,
                       const Policy& policy, std::uint64_t tick);

// docs/state-machine.md, generated from the table.
std::string renderStateMachineDoc();

// Effective silence threshold for the candidate: the configured value, but never below half the
// replica's wal_receiver_timeout plus one second, since a healthy idle stream can be that quiet.
Millis effectiveReplicaSilence(const Policy& policy, const NodeObservation& replica);

}  // namespace pgfailover::core
