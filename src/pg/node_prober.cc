#include "pg/node_prober.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include "common/lsn.h"

namespace pgfailover::pg {

namespace {

SteadyTime steadyNow() {
  return std::chrono::steady_clock::now();
}

// One round trip for everything but the heartbeat. pg_is_in_recovery() is read once, in a
// subquery that OFFSET 0 keeps from being inlined, and every role-specific function is guarded
// by it: pg_current_wal_lsn() and pg_walfile_name() raise errors during recovery, and a node
// being promoted must not flip between two evaluations within one statement. pg_walfile_name
// is strict, so on a replica it is never called. The LEFT JOINs keep exactly one row when there
// is no WAL receiver and no standby; a primary with standbys returns one row per standby.
// %HEARTBEAT_STATE% is replaced with heartbeatTableState(), or 'absent'. A
// standby's checkpoint timeline lags behind a timeline switch until its next restartpoint; its
// minimum recovery point's timeline moves as soon as it flushes what it replayed, so the newer
// of the two stands for a standby without a WAL receiver.
constexpr const char* kStateQuery = R"sql(SELECT
  s.rec,
  current_setting('default_transaction_read_only'),
  (SELECT system_identifier FROM pg_control_system()),
  (SELECT setting FROM pg_settings WHERE name = 'wal_receiver_timeout'),
  %HEARTBEAT_STATE%,
  GREATEST((SELECT timeline_id FROM pg_control_checkpoint()),
           CASE WHEN s.rec THEN (SELECT min_recovery_end_timeline FROM pg_control_recovery()) END),
  s.cur,
  pg_walfile_name(s.cur),
  CASE WHEN s.rec THEN pg_last_wal_receive_lsn() END,
  CASE WHEN s.rec THEN pg_last_wal_replay_lsn() END,
  w.status,
  w.sender_host,
  w.sender_port,
  w.received_tli,
  extract(epoch FROM clock_timestamp() - w.last_msg_receipt_time),
  w.slot_name,
  (SELECT string_agg(slot_name || ' ' || active || ' ' || coalesce(restart_lsn::text, '-'), ','
                     ORDER BY slot_name)
   FROM pg_replication_slots WHERE slot_type = 'physical'),
  current_setting('synchronous_standby_names'),
  r.pid,
  r.application_name,
  r.client_addr,
  r.state,
  r.sync_state,
  r.sent_lsn,
  r.replay_lsn
FROM (SELECT rec, CASE WHEN rec THEN NULL ELSE pg_current_wal_lsn() END AS cur
      FROM pg_is_in_recovery() AS rec OFFSET 0) AS s
LEFT JOIN pg_stat_wal_receiver AS w ON s.rec
LEFT JOIN pg_stat_replication AS r ON NOT s.rec
ORDER BY r.application_name, r.pid)sql";

enum StateColumn {
  kInRecovery,
  kReadOnly,
  kSystemIdentifier,
  kWalReceiverTimeout,
  kHeartbeatTableState,
  kCheckpointTimeline,
  kCurrentLsn,
  kCurrentWalFile,
  kReceiveLsn,
  kReplayLsn,
  kReceiverStatus,
  kReceiverSenderHost,
  kReceiverSenderPort,
  kReceiverTimeline,
  kReceiverSilenceSeconds,
  kReceiverSlotName,
  kSlots,
  kSynchronousStandbyNames,
  kPeerPid,
  kPeerApplicationName,
  kPeerClientAddr,
  kPeerState,
  kPeerSyncState,
  kPeerSentLsn,
  kPeerReplayLsn,
  kStateColumnCount,
};

// Terminates the other client sessions. A role that is not superuser cannot terminate a
// superuser's session (the whole statement would fail), so those are left alone then; their
// next transaction still starts read-only.
constexpr const char* kTerminateQuery = R"sql(SELECT count(*) FROM (
  SELECT pg_terminate_backend(a.pid) AS terminated
  FROM pg_stat_activity AS a
  WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
    AND (current_setting('is_superuser') = 'on'
         OR NOT coalesce((SELECT r.rolsuper FROM pg_roles AS r WHERE r.oid = a.usesysid),
                         false))
) AS t WHERE t.terminated)sql";

std::string replaceAll(std::string text, std::string_view from, std::string_view to) {
  for (std::size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

std::optional<Lsn> lsnAt(const QueryResult& result, int row, int column) {
  if (result.isNull(row, column)) return std::nullopt;
  return parseLsn(result.value(row, column));
}

std::string textAt(const QueryResult& result, int row, int column) {
  return std::string(result.value(row, column));
}

StatusCode statusCodeFor(const PgError& error) {
  if (error.deadline_expired) return StatusCode::kDeadlineExceeded;
  if (error.sqlstate == "28P01" || error.sqlstate == "28000") return StatusCode::kUnauthenticated;
  if (error.sqlstate == "55000" || error.sqlstate == "42501") {
    return StatusCode::kFailedPrecondition;
  }
  return StatusCode::kUnavailable;
}

// Node names hold [A-Za-z0-9_.-] only (config), so a comma separates them unambiguously.
std::string joinPeers(const std::vector<std::string>& peers) {
  std::string out;
  for (const auto& peer : peers) out += (out.empty() ? "" : ",") + peer;
  return out;
}

// What the heartbeat table at `table` (quoted, validated) is, as one text value: 'absent';
// 'ok' (a plain table owned by the role pgfailover connects as, or by a superuser, with exactly
// the columns this version writes); 'old' (the same without the lease columns, which an older
// version did not create); or a refusal: 'kind <relkind>' (a view, a partitioned or foreign
// table...), 'owner <role>', 'columns <what is wrong>'. A table another role owns could carry
// triggers, rules or policies that run with pgfailover's privileges on every heartbeat; only its
// owner or a superuser can add them to one of ours.
std::string heartbeatTableState(const std::string& table) {
  return R"sql((SELECT CASE
     WHEN c.oid IS NULL THEN 'absent'
     WHEN c.relkind <> 'r' THEN 'kind ' || c.relkind::text
     WHEN c.relowner <> me.oid AND NOT r.rolsuper THEN 'owner ' || r.rolname::text
     WHEN x.unexpected IS NOT NULL THEN 'columns unexpected: ' || x.unexpected
     WHEN x.core < 3 THEN 'columns missing: it needs id integer, ts timestamptz, node text'
     WHEN x.lease < 6 THEN 'old'
     ELSE 'ok' END
   FROM (SELECT to_regclass(')sql" +
         table + R"sql(')::oid AS oid) AS t
   CROSS JOIN (SELECT oid FROM pg_roles WHERE rolname = current_user) AS me
   LEFT JOIN pg_class AS c ON c.oid = t.oid
   LEFT JOIN pg_roles AS r ON r.oid = c.relowner
   LEFT JOIN LATERAL (
     SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', '
                       ORDER BY a.attnum)
              FILTER (WHERE (a.attname::text, format_type(a.atttypid, a.atttypmod)) NOT IN (
                VALUES ('id', 'integer'), ('ts', 'timestamp with time zone'), ('node', 'text'),
                       ('lease_ms', 'integer'), ('self_fenced_at', 'timestamp with time zone'),
                       ('peers', 'text'), ('timeline', 'bigint'), ('instance', 'text'),
                       ('term', 'bigint'))) AS unexpected,
            count(*) FILTER (WHERE a.attname IN ('id', 'ts', 'node')) AS core,
            count(*) FILTER (WHERE a.attname IN ('lease_ms', 'self_fenced_at', 'peers',
                                                 'timeline', 'instance', 'term')) AS lease
     FROM pg_attribute AS a
     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS x ON true))sql";
}

// Why pgfailover must not use the heartbeat table in `state` (heartbeatTableState), or "".
std::string heartbeatTableRefusal(const std::string& table, std::string_view state) {
  auto rest = [&](std::size_t prefix) { return std::string(state.substr(prefix)); };
  if (state.rfind("owner ", 0) == 0)
    return table + " exists and is owned by " + rest(6) +
           ", not by the role pgfailover connects as: pgfailover does not use a table another "
           "role controls; drop it, or give it to this role (ALTER TABLE " +
           table + " OWNER TO ...)";
  if (state.rfind("kind ", 0) == 0)
    return table + " exists but is not a plain table (relkind " + rest(5) +
           "): drop it or choose another probe.heartbeat_table";
  if (state.rfind("columns ", 0) == 0)
    return table + " exists with other columns than pgfailover's (" + rest(8) +
           "): drop it or choose another probe.heartbeat_table";
  if (state != "ok" && state != "old" && state != "absent")
    return table + ": unexpected state '" + std::string(state) + "'";
  return "";
}

}  // namespace

NodeProber::NodeProber(config::NodeConfig node, config::ProbeConfig probe,
                       std::vector<std::string> peers)
    : node_(std::move(node)),
      probe_(std::move(probe)),
      description_(describeNode(node_.name, node_.host, node_.port)),
      heartbeat_table_(parseTableName(probe_.heartbeat_table)),
      connection_(cancel_slot_) {
  peers_ = joinPeers(peers);
  // The validated name holds only [a-z0-9_] and double quotes, so it is safe inside a literal.
  if (heartbeat_table_) heartbeat_state_ = heartbeatTableState(heartbeat_table_->quoted());
  const std::string state = probe_.heartbeat && heartbeat_table_ ? heartbeat_state_ : "'absent'";
  state_query_ = replaceAll(kStateQuery, "%HEARTBEAT_STATE%", state);
  if (heartbeat_table_) {
    const std::string table = heartbeat_table_->quoted();
    // lease_ms: how long this heartbeat keeps the node writable if no other one follows
    // (`pgfailover lease-guard` reads it); peers: the other nodes, whose replies alone vouch
    // for the node with the guard (the ones pgfailover could promote); self_fenced_at: set by that
    // guard, in the same statement that checks the lease ran out, just before it fences the node;
    // cleared by unfence() once the fence is lifted. The heartbeat never touches it: a heartbeat
    // that lands between the guard's mark and its fence would otherwise leave a fence without a
    // mark, which pgfailover must take for an operator's.
    // Created without IF NOT EXISTS: a table someone made since the state query is never
    // adopted (the next probe looks at its owner). One this version's role created without the
    // lease columns (an older version) is completed.
    heartbeat_create_ = "CREATE SCHEMA IF NOT EXISTS " + quoteIdentifier(heartbeat_table_->schema) +
                        "; CREATE TABLE " + table +
                        " (id int PRIMARY KEY, ts timestamptz NOT NULL, node text NOT NULL,"
                        " lease_ms integer NOT NULL DEFAULT 0, self_fenced_at timestamptz,"
                        " peers text NOT NULL DEFAULT '', timeline bigint NOT NULL DEFAULT 0,"
                        " instance text NOT NULL DEFAULT '', term bigint NOT NULL DEFAULT 0)";
    heartbeat_upgrade_ = "ALTER TABLE " + table +
                         " ADD COLUMN IF NOT EXISTS lease_ms integer NOT NULL DEFAULT 0,"
                         " ADD COLUMN IF NOT EXISTS self_fenced_at timestamptz,"
                         " ADD COLUMN IF NOT EXISTS peers text NOT NULL DEFAULT '',"
                         " ADD COLUMN IF NOT EXISTS timeline bigint NOT NULL DEFAULT 0,"
                         " ADD COLUMN IF NOT EXISTS instance text NOT NULL DEFAULT '',"
                         " ADD COLUMN IF NOT EXISTS term bigint NOT NULL DEFAULT 0";
    heartbeat_write_ =
        "INSERT INTO " + table +
        " (id, ts, node, lease_ms, peers, timeline, instance, term) VALUES (1, now(), $1, $2, $3,"
        " ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint, $4, $5)"
        " ON CONFLICT (id) DO"
        " UPDATE SET ts = excluded.ts, node = excluded.node, lease_ms = excluded.lease_ms,"
        " peers = excluded.peers, timeline = excluded.timeline, instance = excluded.instance,"
        " term = excluded.term"
        " RETURNING extract(epoch FROM ts)";
    heartbeat_read_ =
        "SELECT extract(epoch FROM ts), self_fenced_at IS NOT NULL FROM " + table + " WHERE id = 1";
    lease_release_ = "UPDATE " + table + " SET lease_ms = 0 WHERE id = 1 AND lease_ms <> 0";
    // synchronous_commit = local: a primary that fenced itself may have lost its synchronous
    // standby, and the mark must not wait for it.
    self_fence_clear_ = "BEGIN; SET LOCAL synchronous_commit = local; UPDATE " + table +
                        " SET self_fenced_at = NULL WHERE id = 1 AND self_fenced_at IS NOT NULL;"
                        " COMMIT";
  }
}

ConnectOptions NodeProber::connectOptions(bool for_action) const {
  ConnectOptions options;
  options.host = node_.host;
  options.port = node_.port;
  options.dbname = node_.dbname;
  options.user = node_.user;
  options.password = node_.password;
  options.sslmode = node_.sslmode;
  options.sslrootcert = node_.sslrootcert;
  options.sslcert = node_.sslcert;
  options.sslkey = node_.sslkey;
  options.connect_timeout = probe_.connect_timeout;
  if (for_action) {
    options.application_name = "pgfailover-action";
    // Our own deadline bounds an action; a role's statement_timeout must not cut pg_promote's
    // wait short.
    options.statement_timeout = Millis{0};
  } else {
    options.application_name = "pgfailover";
    options.statement_timeout = probe_.query_timeout;
  }
  return options;
}

void NodeProber::fail(core::NodeObservation& observation, const PgError& error) {
  observation.reachable = false;
  observation.heartbeat_written = false;
  observation.failure = classifyFailure(error);
  observation.error = nodeMessage(description_, error.message, node_.password);
}

bool NodeProber::ensureConnected(core::NodeObservation& observation, SteadyTime budget_end) {
  if (connection_.connected()) return true;
  SteadyTime deadline = std::min(steadyNow() + probe_.connect_timeout, budget_end);
  if (auto error = connection_.connect(connectOptions(false), deadline)) {
    fail(observation, *error);
    return false;
  }
  return true;
}

core::NodeObservation NodeProber::probe(bool write_heartbeat) {
  core::NodeObservation observation;
  observation.name = node_.name;
  observation.probed = true;
  const SteadyTime started = steadyNow();
  observation.probed_at = started;
  const SteadyTime budget_end = started + probe_.connect_timeout + probe_.query_timeout;
  auto finish = [&]() {
    observation.probe_duration = elapsed(started, steadyNow());
    return std::move(observation);
  };

  const bool reused = connection_.connected();
  if (!ensureConnected(observation, budget_end)) return finish();
  SteadyTime query_deadline = std::min(steadyNow() + probe_.query_timeout, budget_end);
  ExecOutcome state = connection_.exec(state_query_, query_deadline);
  if (!state.ok() && reused && state.error->connection_lost && !state.error->deadline_expired) {
    // A connection that idled since the last tick may have been closed by a restart, by
    // pg_terminate_backend or by a fence; only a fresh attempt tells whether the node is down.
    if (!ensureConnected(observation, budget_end)) return finish();
    query_deadline = std::min(steadyNow() + probe_.query_timeout, budget_end);
    state = connection_.exec(state_query_, query_deadline);
  }
  if (!state.ok()) {
    fail(observation, *state.error);
    return finish();
  }

  std::string heartbeat_table_state;
  if (!readState(observation, state.result, &heartbeat_table_state)) return finish();
  observation.reachable = true;
  observation.failure = core::ProbeFailure::kNone;
  if (probe_.heartbeat) {
    heartbeat(observation, write_heartbeat, heartbeat_table_state, query_deadline);
  }
  return finish();
}

bool NodeProber::readState(core::NodeObservation& observation, const QueryResult& result,
                           std::string* heartbeat_table_state) {
  auto malformed = [&](std::string_view what) {
    PgError error{"unexpected probe result: " + std::string(what), ""};
    fail(observation, error);
    observation.failure = core::ProbeFailure::kRejected;
    return false;
  };
  if (result.rows() < 1 || result.columns() != kStateColumnCount) {
    return malformed("wrong shape");
  }
  auto in_recovery = parseBool(result.value(0, kInRecovery));
  auto read_only = parseBool(result.value(0, kReadOnly));
  auto system_identifier = parseInt64(result.value(0, kSystemIdentifier));
  if (!in_recovery || !read_only || !system_identifier) return malformed("missing node state");
  observation.in_recovery = *in_recovery;
  observation.read_only = *read_only;
  observation.system_identifier = static_cast<std::uint64_t>(*system_identifier);
  if (auto timeout = parseInt64(result.value(0, kWalReceiverTimeout))) {
    observation.wal_receiver_timeout = Millis{*timeout};
  }
  *heartbeat_table_state = std::string(result.value(0, kHeartbeatTableState));
  if (auto slots = parseSlotList(result.value(0, kSlots))) {
    observation.slots = std::move(*slots);
    observation.slots_observed = true;
  }
  observation.synchronous_standby_names = std::string(result.value(0, kSynchronousStandbyNames));

  auto checkpoint_timeline = parseInt64(result.value(0, kCheckpointTimeline));
  if (!observation.in_recovery) {
    observation.current_lsn = lsnAt(result, 0, kCurrentLsn);
    // The WAL file being written carries the timeline the primary writes on right now; the
    // checkpoint's timeline lags behind a promotion until the next checkpoint.
    auto timeline = timelineFromWalFileName(result.value(0, kCurrentWalFile));
    if (timeline) {
      observation.timeline = *timeline;
    } else if (checkpoint_timeline) {
      observation.timeline = static_cast<std::uint32_t>(*checkpoint_timeline);
    }
    for (int row = 0; row < result.rows(); ++row) {
      if (result.isNull(row, kPeerPid)) continue;
      core::ReplicationPeer peer;
      peer.application_name = textAt(result, row, kPeerApplicationName);
      peer.client_addr = textAt(result, row, kPeerClientAddr);
      peer.state = textAt(result, row, kPeerState);
      peer.sync_state = textAt(result, row, kPeerSyncState);
      peer.sent_lsn = lsnAt(result, row, kPeerSentLsn);
      peer.replay_lsn = lsnAt(result, row, kPeerReplayLsn);
      observation.replication.push_back(std::move(peer));
    }
    return true;
  }

  observation.receive_lsn = lsnAt(result, 0, kReceiveLsn);
  observation.replay_lsn = lsnAt(result, 0, kReplayLsn);
  if (!result.isNull(0, kReceiverStatus)) {
    core::WalReceiver receiver;
    receiver.status = textAt(result, 0, kReceiverStatus);
    receiver.sender_host = textAt(result, 0, kReceiverSenderHost);
    receiver.sender_port =
        static_cast<int>(parseInt64(result.value(0, kReceiverSenderPort)).value_or(0));
    receiver.received_timeline =
        static_cast<std::uint32_t>(parseInt64(result.value(0, kReceiverTimeline)).value_or(0));
    receiver.seconds_since_last_message = parseDouble(result.value(0, kReceiverSilenceSeconds));
    receiver.slot_name = textAt(result, 0, kReceiverSlotName);
    observation.wal_receiver = std::move(receiver);
  }
  if (observation.wal_receiver && observation.wal_receiver->received_timeline != 0) {
    observation.timeline = observation.wal_receiver->received_timeline;
  } else if (checkpoint_timeline) {
    observation.timeline = static_cast<std::uint32_t>(*checkpoint_timeline);
  }
  return true;
}

void NodeProber::heartbeat(core::NodeObservation& observation, bool write,
                           const std::string& table_state, SteadyTime deadline) {
  const bool primary = !observation.in_recovery;
  // Only a table this version would have made is read or written.
  const bool table_exists = table_state == "ok";
  const std::string refusal = heartbeatTableRefusal(probe_.heartbeat_table, table_state);
  auto cannot_commit = [&](std::string_view why) {
    observation.reachable = true;
    observation.failure = core::ProbeFailure::kCannotCommit;
    observation.heartbeat_written = false;
    observation.error = nodeMessage(
        description_,
        "cannot commit the heartbeat to " + probe_.heartbeat_table + ": " + std::string(why),
        node_.password);
  };

  if (primary && write) {
    if (!heartbeat_table_) {
      cannot_commit("the table name is not a valid schema.table name");
      return;
    }
    if (observation.read_only) {
      readHeartbeat(observation, table_exists, deadline);
      cannot_commit(observation.self_fenced
                        ? "default_transaction_read_only is on (its lease guard fenced it)"
                        : "default_transaction_read_only is on (the node is fenced)");
      return;
    }
    if (!refusal.empty()) {
      cannot_commit(refusal);
      return;
    }
    auto failed = [&](const PgError& error) {
      // The server going away mid-write says the node is down, not that its disk is stuck.
      if (error.connection_lost && !error.deadline_expired) {
        fail(observation, error);
      } else {
        cannot_commit(error.message);
      }
    };
    if (!table_exists) {
      ExecOutcome setup =
          connection_.exec(table_state == "old" ? heartbeat_upgrade_ : heartbeat_create_, deadline);
      if (!setup.ok()) return failed(*setup.error);
    }
    ExecOutcome written =
        connection_.exec(heartbeat_write_,
                         {node_.name, std::to_string(probe_.primary_lease.count()), peers_,
                          writer_instance_, std::to_string(writer_term_)},
                         deadline);
    if (!written.ok()) return failed(*written.error);
    observation.heartbeat_written = true;
    observation.heartbeat_unix_seconds = parseDouble(written.result.value(0, 0));
    return;
  }

  readHeartbeat(observation, table_exists, deadline);
}

void NodeProber::readHeartbeat(core::NodeObservation& observation, bool table_exists,
                               SteadyTime deadline) {
  if (!heartbeat_table_ || !table_exists) return;
  ExecOutcome read = connection_.exec(heartbeat_read_, deadline);
  if (!read.ok()) {
    // Silence or a closed connection within the probe's budget fails the probe; a plain query
    // error (a missing privilege) only leaves the value unknown.
    if (read.error->deadline_expired || read.error->connection_lost) fail(observation, *read.error);
    return;
  }
  if (read.result.rows() > 0) {
    observation.heartbeat_unix_seconds = parseDouble(read.result.value(0, 0));
    // Only a node that is read-only out of recovery can be self-fenced: on a replica the
    // column is whatever the primary last wrote.
    observation.self_fenced = !observation.in_recovery && observation.read_only &&
                              parseBool(read.result.value(0, 1)).value_or(false);
  }
}

Status NodeProber::releaseLease() {
  if (!heartbeat_table_ || lease_release_.empty() || heartbeat_state_.empty()) return Status::ok();
  Connection connection(cancel_slot_);
  if (Status connected = connectForAction(connection); !connected.isOk()) return connected;
  // Never written to a table this version did not make: no lease there to release.
  ExecOutcome state =
      connection.exec("SELECT " + heartbeat_state_, steadyNow() + probe_.query_timeout);
  if (!state.ok()) return actionError("looking at the heartbeat table failed", *state.error);
  if (state.result.rows() == 0 || state.result.value(0, 0) != "ok") return Status::ok();
  ExecOutcome released = connection.exec(lease_release_, steadyNow() + probe_.query_timeout);
  if (!released.ok()) return actionError("releasing the primary's lease failed", *released.error);
  return Status::ok();
}

Status NodeProber::actionError(std::string_view doing, const PgError& error) const {
  return Status(
      statusCodeFor(error),
      nodeMessage(description_, std::string(doing) + ": " + error.message, node_.password));
}

Status NodeProber::connectForAction(Connection& connection) {
  SteadyTime deadline = steadyNow() + probe_.connect_timeout;
  if (auto error = connection.connect(connectOptions(true), deadline)) {
    return actionError("unable to connect", *error);
  }
  return Status::ok();
}

Status NodeProber::promote(Millis wait) {
  Connection connection(cancel_slot_);
  if (Status connected = connectForAction(connection); !connected.isOk()) return connected;

  auto wait_seconds =
      std::max<std::int64_t>(1, std::chrono::ceil<std::chrono::seconds>(wait).count());
  // pg_promote polls every 100 ms up to wait_seconds; the margin covers the round trip.
  SteadyTime deadline = steadyNow() + std::chrono::seconds(wait_seconds) + probe_.query_timeout;
  ExecOutcome promoted =
      connection.exec("SELECT pg_promote(true, " + std::to_string(wait_seconds) + ")", deadline);
  if (!promoted.ok()) return actionError("pg_promote failed", *promoted.error);
  if (parseBool(promoted.result.value(0, 0)) != true) {
    return Status(StatusCode::kDeadlineExceeded,
                  description_ + ": pg_promote did not finish promoting within " +
                      std::to_string(wait_seconds) + " s");
  }

  ExecOutcome check =
      connection.exec("SELECT pg_is_in_recovery()", steadyNow() + probe_.query_timeout);
  if (!check.ok()) return actionError("checking the promotion failed", *check.error);
  if (parseBool(check.result.value(0, 0)) != false) {
    return Status(StatusCode::kInternal,
                  description_ + ": pg_promote returned true but the node is still in recovery");
  }
  return Status::ok();
}

Status NodeProber::waitForReadOnlySetting(Connection& connection, bool on) {
  const SteadyTime deadline = steadyNow() + probe_.query_timeout;
  for (;;) {
    ExecOutcome setting =
        connection.exec("SELECT current_setting('default_transaction_read_only')", deadline);
    if (!setting.ok()) return actionError("reading the setting failed", *setting.error);
    if (parseBool(setting.result.value(0, 0)) == on) return Status::ok();
    if (steadyNow() + Millis{10} >= deadline) {
      return Status(StatusCode::kDeadlineExceeded,
                    description_ + ": default_transaction_read_only is still " +
                        (on ? "off" : "on (is it set in postgresql.conf?)") +
                        " after pg_reload_conf");
    }
    std::this_thread::sleep_for(Millis{10});
  }
}

Status NodeProber::fenceReadOnly() {
  Connection connection(cancel_slot_);
  if (Status connected = connectForAction(connection); !connected.isOk()) return connected;
  auto deadline = [&]() { return steadyNow() + probe_.query_timeout; };

  ExecOutcome altered =
      connection.exec("ALTER SYSTEM SET default_transaction_read_only = on", deadline());
  if (!altered.ok()) return actionError("ALTER SYSTEM failed", *altered.error);
  ExecOutcome reloaded = connection.exec("SELECT pg_reload_conf()", deadline());
  if (!reloaded.ok()) return actionError("pg_reload_conf failed", *reloaded.error);

  // The postmaster rereads the configuration and then signals every backend, ours included;
  // once our session sees the new value, the postmaster has it too, so sessions started after
  // the terminations below come up read-only.
  if (Status settled = waitForReadOnlySetting(connection, true); !settled.isOk()) return settled;

  ExecOutcome terminated = connection.exec(kTerminateQuery, deadline());
  if (!terminated.ok()) {
    return actionError("terminating client sessions failed", *terminated.error);
  }
  return Status::ok();
}

Status NodeProber::unfence() {
  Connection connection(cancel_slot_);
  if (Status connected = connectForAction(connection); !connected.isOk()) return connected;
  ExecOutcome reset = connection.exec("ALTER SYSTEM RESET default_transaction_read_only",
                                      steadyNow() + probe_.query_timeout);
  if (!reset.ok()) return actionError("ALTER SYSTEM failed", *reset.error);
  ExecOutcome reloaded =
      connection.exec("SELECT pg_reload_conf()", steadyNow() + probe_.query_timeout);
  if (!reloaded.ok()) return actionError("pg_reload_conf failed", *reloaded.error);
  if (Status settled = waitForReadOnlySetting(connection, false); !settled.isOk()) return settled;
  if (!heartbeat_table_ || self_fence_clear_.empty()) return Status::ok();
  // The node takes writes again; only now may its lease guard's mark go. A table without the
  // column (never written by this version) is no error: there is no mark to clear; nor is one
  // this version would not use (another role's): the mark is never its to clear.
  if (heartbeat_state_.empty()) return Status::ok();
  ExecOutcome cleared =
      connection.exec("SELECT " + heartbeat_state_, steadyNow() + probe_.query_timeout);
  if (!cleared.ok() || cleared.result.rows() == 0 || cleared.result.value(0, 0) != "ok")
    return Status::ok();
  cleared = connection.exec(self_fence_clear_, steadyNow() + probe_.query_timeout);
  if (!cleared.ok())
    return actionError("unfenced, but clearing self_fenced_at failed", *cleared.error);
  return Status::ok();
}

Status NodeProber::setSynchronousStandbyNames(const std::string& value) {
  Connection connection(cancel_slot_);
  if (Status connected = connectForAction(connection); !connected.isOk()) return connected;
  // ALTER SYSTEM takes no parameters; the value is a quoted literal built by quoteLiteral.
  ExecOutcome set =
      connection.exec("ALTER SYSTEM SET synchronous_standby_names = " + quoteLiteral(value),
                      steadyNow() + probe_.query_timeout);
  if (!set.ok())
    return actionError("ALTER SYSTEM SET synchronous_standby_names failed", *set.error);
  ExecOutcome reloaded =
      connection.exec("SELECT pg_reload_conf()", steadyNow() + probe_.query_timeout);
  if (!reloaded.ok()) return actionError("pg_reload_conf failed", *reloaded.error);
  return Status::ok();
}

Status NodeProber::useReplicationSlot(const std::string& slot) {
  if (!isValidSlotName(slot)) {
    return Status(StatusCode::kInvalidArgument,
                  description_ + ": '" + slot + "' is not a valid replication slot name");
  }
  Connection connection(cancel_slot_);
  if (Status connected = connectForAction(connection); !connected.isOk()) return connected;
  // ALTER SYSTEM takes no parameters; a valid slot name is [a-z0-9_] only, quoted anyway.
  ExecOutcome set = connection.exec("ALTER SYSTEM SET primary_slot_name = " + quoteLiteral(slot),
                                    steadyNow() + probe_.query_timeout);
  if (!set.ok()) return actionError("ALTER SYSTEM SET primary_slot_name failed", *set.error);
  ExecOutcome reloaded =
      connection.exec("SELECT pg_reload_conf()", steadyNow() + probe_.query_timeout);
  if (!reloaded.ok()) return actionError("pg_reload_conf failed", *reloaded.error);
  return Status::ok();
}

Status NodeProber::createReplicationSlot(const std::string& slot) {
  if (!isValidSlotName(slot)) {
    return Status(StatusCode::kInvalidArgument,
                  description_ + ": '" + slot + "' is not a valid replication slot name");
  }
  Connection connection(cancel_slot_);
  if (Status connected = connectForAction(connection); !connected.isOk()) return connected;
  // immediately_reserve: the slot holds WAL from now on, before its replica first connects.
  ExecOutcome created = connection.exec(
      "SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS "
      "(SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
      {slot}, steadyNow() + probe_.query_timeout);
  // 42710 duplicate_object: created meanwhile by someone else, which is what we wanted.
  if (!created.ok() && created.error->sqlstate != "42710") {
    return actionError("creating replication slot '" + slot + "' failed", *created.error);
  }
  return Status::ok();
}

Status NodeProber::dropReplicationSlot(const std::string& slot) {
  if (!isValidSlotName(slot)) {
    return Status(StatusCode::kInvalidArgument,
                  description_ + ": '" + slot + "' is not a valid replication slot name");
  }
  Connection connection(cancel_slot_);
  if (Status connected = connectForAction(connection); !connected.isOk()) return connected;
  ExecOutcome found =
      connection.exec("SELECT active FROM pg_replication_slots WHERE slot_name = $1", {slot},
                      steadyNow() + probe_.query_timeout);
  if (!found.ok()) return actionError("reading pg_replication_slots failed", *found.error);
  if (found.result.rows() == 0) return Status::ok();
  if (parseBool(found.result.value(0, 0)) == true) {
    return Status(StatusCode::kFailedPrecondition,
                  description_ + ": replication slot '" + slot +
                      "' is in use by a connected replica; not dropping it");
  }
  ExecOutcome dropped = connection.exec("SELECT pg_drop_replication_slot($1)", {slot},
                                        steadyNow() + probe_.query_timeout);
  // 42704 undefined_object: dropped meanwhile.
  if (!dropped.ok() && dropped.error->sqlstate != "42704") {
    return actionError("dropping replication slot '" + slot + "' failed", *dropped.error);
  }
  return Status::ok();
}

}  // namespace pgfailover::pg
