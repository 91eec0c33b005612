// Everything pgfailover asks of one PostgreSQL node: the per-tick probe that fills a
// core::NodeObservation (with the heartbeat write on the primary), and the SQL actions that
// change a node: promote(), fenceReadOnly() / unfence(), and replication slots. The probe keeps one
// connection per node and reuses it across ticks; a failed or timed-out probe drops it and the next
// one reconnects. Every call is bounded: a probe by connect_timeout + query_timeout, an action by
// its own deadline. See docs/probing.md for the queries and the privileges they need.
//
// What it deliberately does not do: decide anything (a failed probe is reported, never acted
// on), retry beyond one reconnect of a stale connection, or run commands on the node's host
// (ssh, pg_rewind and the data directory belong to src/ssh).
//
// Threads: probe() must not run concurrently with itself. The actions open a short-lived
// connection of their own each, so an executor thread may run them while the tick thread probes
// the same node.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "common/status.h"
#include "common/time.h"
#include "config/config.h"
#include "core/observation.h"
#include "pg/connection.h"
#include "pg/sql.h"

namespace pgfailover::pg {

class NodeProber {
 public:
  // `peers`: the names of the other nodes, written into the heartbeat row for the lease guard.
  NodeProber(config::NodeConfig node, config::ProbeConfig probe,
             std::vector<std::string> peers = {});
  NodeProber(const NodeProber&) = delete;
  NodeProber& operator=(const NodeProber&) = delete;

  const std::string& name() const { return node_.name; }
  // "node 'pg1' (127.0.0.1:5433)": the prefix of every message about this node.
  const std::string& description() const { return description_; }

  // Probes the node once and returns a complete observation; never throws and never blocks
  // past connect_timeout + query_timeout. `write_heartbeat` asks for the heartbeat write when the
  // node turns out to be a writable primary (the caller passes false for a node it does not
  // want written to, e.g. one it is about to fence).
  core::NodeObservation probe(bool write_heartbeat);
  // Who writes the heartbeat row (the acting pgfailover instance's etcd.name and term; "" and 0
  // for a single instance). Set between probes, never while one runs.
  void setHeartbeatWriter(std::string instance, std::int64_t term) {
    writer_instance_ = std::move(instance);
    writer_term_ = term;
  }

  // pg_promote(wait => true, wait_seconds => ceil(wait)), bounded by `wait` + query_timeout.
  // Ok only when pg_promote returned true and the node then reports it is out of recovery.
  Status promote(Millis wait);

  // Makes the node refuse writes and keeps it so across restarts: ALTER SYSTEM SET
  // default_transaction_read_only = on, reload, wait until the setting is in effect, then
  // terminate every other client session so none keeps writing under the old default.
  // Idempotent. Each statement is bounded by query_timeout.
  Status fenceReadOnly();

  // Undoes fenceReadOnly(): ALTER SYSTEM RESET default_transaction_read_only, reload, and wait
  // until the setting is off. Fails when it stays on (set in postgresql.conf itself).
  // Idempotent.
  Status unfence();
  // On a clean stop: sets the lease in the heartbeat row to 0, so the node's lease guard does
  // not fence a primary only because pgfailover is not running.
  Status releaseLease();

  // A physical replication slot that reserves WAL at once, so a replica that follows later
  // finds its WAL kept. Ok when the slot exists already. InvalidArgument for a name PostgreSQL
  // would refuse (see isValidSlotName).
  Status createReplicationSlot(const std::string& slot);
  // On a replica: stream from `slot` (ALTER SYSTEM SET primary_slot_name, reload).
  Status useReplicationSlot(const std::string& slot);
  // ALTER SYSTEM SET synchronous_standby_names and reload: synchronous replication on ("FIRST 1
  // (...)") or off (""). Commits waiting on a standby that is gone are released by the reload.
  Status setSynchronousStandbyNames(const std::string& value);
  // Drops the slot unless a replica is using it (FailedPrecondition then). Ok when it does not
  // exist.
  Status dropReplicationSlot(const std::string& slot);

  // The backend PID of the probe's persistent connection, 0 when none is open.
  int probeBackendPid() const { return connection_.backendPid(); }

 private:
  ConnectOptions connectOptions(bool for_action) const;
  // Opens the persistent connection when needed; on failure fills `observation`.
  bool ensureConnected(core::NodeObservation& observation, SteadyTime budget_end);
  void fail(core::NodeObservation& observation, const PgError& error);
  bool readState(core::NodeObservation& observation, const QueryResult& result,
                 std::string* heartbeat_table_state);
  void readHeartbeat(core::NodeObservation& observation, bool table_exists, SteadyTime deadline);
  void heartbeat(core::NodeObservation& observation, bool write, const std::string& table_state,
                 SteadyTime deadline);
  // Opens a connection for an action, or returns the error as a Status.
  Status connectForAction(Connection& connection);
  Status actionError(std::string_view doing, const PgError& error) const;
  // Polls our session's default_transaction_read_only (within query_timeout) until it is `on`:
  // proof that a reload reached the backends.
  Status waitForReadOnlySetting(Connection& connection, bool on);

  config::NodeConfig node_;
  config::ProbeConfig probe_;
  std::string description_;
  std::optional<QualifiedName> heartbeat_table_;  // nullopt when heartbeat_table is invalid
  std::string state_query_;
  // A scalar subquery: what the heartbeat table is ('ok', 'absent', 'owner <role>'...); empty
  // when the table name is invalid.
  std::string heartbeat_state_;
  std::string heartbeat_create_;
  std::string heartbeat_upgrade_;
  std::string heartbeat_write_;
  std::string heartbeat_read_;
  std::string lease_release_;
  std::string peers_;  // the other nodes' names, comma-separated, for the heartbeat row
  std::string writer_instance_;
  std::int64_t writer_term_ = 0;
  std::string self_fence_clear_;
  CancelSlot cancel_slot_;
  Connection connection_;
};

}  // namespace pgfailover::pg
