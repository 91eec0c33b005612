#include "http/status_json.h"

#include <cstdio>
#include <ctime>

namespace pgfailover::http {

namespace {

using core::NodeSnapshot;
using core::Snapshot;

template <typename T>
Json orNull(const std::optional<T>& value) {
  return value ? Json(*value) : Json(nullptr);
}

Json lsnOrNull(const std::optional<Lsn>& lsn) {
  return lsn ? Json(formatLsn(*lsn)) : Json(nullptr);
}

Json stringOrNull(const std::string& text) {
  return text.empty() ? Json(nullptr) : Json(text);
}

// A wall-clock time the snapshot never set stays null rather than claiming 1970.
Json timeOrNull(WallTime time) {
  return time == WallTime{} ? Json(nullptr) : Json(formatIso8601(time));
}

// The steady clock cannot be printed as a date; a probe's wall time is derived from the tick's
// pair of clocks, which were read at the same moment.
WallTime wallTimeOf(SteadyTime at, const Snapshot& snapshot) {
  return snapshot.tick_at_wall -
         std::chrono::duration_cast<WallTime::duration>(snapshot.tick_at - at);
}

Json walReceiverJson(const std::optional<core::WalReceiver>& receiver) {
  if (!receiver) return nullptr;
  Json json;
  json["status"] = receiver->status;
  json["sender_host"] = stringOrNull(receiver->sender_host);
  json["sender_port"] = receiver->sender_port > 0 ? Json(receiver->sender_port) : Json(nullptr);
  json["received_timeline"] =
      receiver->received_timeline > 0 ? Json(receiver->received_timeline) : Json(nullptr);
  json["seconds_since_last_message"] = orNull(receiver->seconds_since_last_message);
  return json;
}

Json replicationJson(const std::vector<core::ReplicationPeer>& peers) {
  Json list = Json::array();
  for (const auto& peer : peers) {
    Json json;
    json["application_name"] = peer.application_name;
    json["client_addr"] = stringOrNull(peer.client_addr);
    json["state"] = peer.state;
    json["sync_state"] = peer.sync_state;
    json["sent_lsn"] = lsnOrNull(peer.sent_lsn);
    json["replay_lsn"] = lsnOrNull(peer.replay_lsn);
    list.push_back(std::move(json));
  }
  return list;
}

// The node's rejoin, running and last finished; null when the node has no host executor.
Json rejoinJson(const Snapshot& snapshot, const NodeSnapshot& node) {
  const auto index = static_cast<std::size_t>(&node - snapshot.nodes.data());
  if (index >= snapshot.operations.size() || !snapshot.operations[index].available) return nullptr;
  const auto& op = snapshot.operations[index];
  Json json;
  const bool rejoining = op.running && op.kind == core::OperationKind::kRejoin;
  json["running"] = rejoining;
  // At a failover, the old primary's host is fenced at rest first (standby.signal); no rejoin
  // of it starts until that ends.
  json["fencing_at_rest"] = op.running && op.kind == core::OperationKind::kFenceAtRest;
  json["step"] = rejoining ? Json(op.step) : Json(nullptr);
  json["started_at"] =
      rejoining ? Json(formatIso8601(wallTimeOf(op.started_at, snapshot))) : Json(nullptr);
  if (op.finished > 0) {
    Json last;
    last["succeeded"] = op.last_succeeded;
    last["host_unreachable"] = !op.last_succeeded && op.last_host_unreachable;
    last["method"] = op.last_method;
    last["error"] = op.last_succeeded ? Json(nullptr) : Json(op.last_error);
    last["finished_at"] = formatIso8601(wallTimeOf(op.last_finished_at, snapshot));
    last["duration_ms"] = op.last_duration.count();
    json["last"] = std::move(last);
  } else {
    json["last"] = nullptr;
  }
  json["attempts"] = op.finished;
  return json;
}

Json nodeJson(const Snapshot& snapshot, const NodeSnapshot& node) {
  const auto& seen = node.observation;
  // Fields a probe reads from the server mean nothing when it did not answer; null says so
  // instead of a misleading `false` or `0`.
  const bool answered = seen.probed && seen.reachable;
  Json json;
  json["name"] = node.name;
  json["host"] = node.host;
  json["port"] = node.port;
  json["role"] = core::toString(node.role);
  json["reachable"] = answered;
  json["failure"] = seen.probed ? Json(core::toString(seen.failure)) : Json(nullptr);
  json["error"] = stringOrNull(seen.error);
  json["in_recovery"] = answered ? Json(seen.in_recovery) : Json(nullptr);
  json["read_only"] = answered ? Json(seen.read_only) : Json(nullptr);
  json["self_fenced"] = answered ? Json(seen.self_fenced) : Json(nullptr);
  // As a string: a 64-bit identifier does not survive a JavaScript number.
  json["system_identifier"] = answered && seen.system_identifier != 0
                                  ? Json(std::to_string(seen.system_identifier))
                                  : Json(nullptr);
  json["timeline"] = answered && seen.timeline != 0 ? Json(seen.timeline) : Json(nullptr);
  json["current_lsn"] = lsnOrNull(seen.current_lsn);
  json["receive_lsn"] = lsnOrNull(seen.receive_lsn);
  json["replay_lsn"] = lsnOrNull(seen.replay_lsn);
  json["lag_bytes"] = orNull(node.lag_bytes);
  json["lag_seconds"] = orNull(node.lag_seconds);
  json["wal_receiver"] = walReceiverJson(seen.wal_receiver);
  json["replication"] = replicationJson(seen.replication);
  Json heartbeat;
  heartbeat["written"] = seen.heartbeat_written;
  heartbeat["unix_seconds"] = orNull(seen.heartbeat_unix_seconds);
  json["heartbeat"] = std::move(heartbeat);
  Json tls;
  tls["sslmode"] = stringOrNull(node.sslmode);
  tls["verifies_server"] = node.verifies_server;
  json["tls"] = std::move(tls);
  json["rejoin"] = rejoinJson(snapshot, node);
  if (seen.probed) {
    Json probe;
    probe["at"] = formatIso8601(wallTimeOf(seen.probed_at, snapshot));
    probe["duration_ms"] = seen.probe_duration.count();
    json["last_probe"] = std::move(probe);
  } else {
    json["last_probe"] = nullptr;
  }
  return json;
}

// Who acts among several instances (docs/coordination.md). Without etcd this instance acts alone
// and has no name there: the etcd fields are null rather than a misleading false or 0.
Json coordinationJson(const core::CoordinationView& view) {
  Json json;
  json["enabled"] = view.enabled;
  json["acting"] = view.enabled ? stringOrNull(view.acting_instance) : Json(nullptr);
  json["acting_here"] = view.acting;
  json["acting_api_url"] = view.enabled ? stringOrNull(view.acting_api_url) : Json(nullptr);
  json["term"] = view.enabled && view.term > 0 ? Json(view.term) : Json(nullptr);
  json["instances"] = view.enabled ? Json(view.instances) : Json::array();
  json["etcd_reachable"] = view.enabled ? Json(view.etcd_reachable) : Json(nullptr);
  json["since_last_renewal_ms"] = view.enabled && view.since_last_renewal
                                      ? Json(view.since_last_renewal->count())
                                      : Json(nullptr);
  return json;
}

}  // namespace

std::string formatIso8601(WallTime time) {
  const auto since_epoch = time.time_since_epoch();
  auto whole = std::chrono::floor<std::chrono::seconds>(since_epoch);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - whole);
  const std::time_t seconds = static_cast<std::time_t>(whole.count());
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  // Sized for any int fields, which the compiler cannot rule out.
  char buffer[96];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(millis.count()));
  return buffer;
}

std::string dumpJson(const Json& json, int indent) {
  return json.dump(indent, ' ', false, Json::error_handler_t::replace);
}

Json statusJson(const Snapshot& snapshot) {
  Json json;
  json["cluster_name"] = snapshot.cluster_name;
  json["version"] = PGFAILOVER_VERSION;
  json["instance"] =
      snapshot.coordination.enabled ? stringOrNull(snapshot.coordination.instance) : Json(nullptr);
  json["ready"] = snapshot.ready;
  json["state"] = core::toString(snapshot.state);
  json["reason"] = snapshot.reason;
  json["primary"] = snapshot.primary && *snapshot.primary < snapshot.nodes.size()
                        ? Json(snapshot.nodes[*snapshot.primary].name)
                        : Json(nullptr);
  if (snapshot.timeout) {
    Json timeout;
    timeout["kind"] = core::toString(snapshot.timeout->kind);
    timeout["total_ms"] = snapshot.timeout->total.count();
    timeout["elapsed_ms"] = snapshot.timeout->elapsed.count();
    timeout["remaining_ms"] = snapshot.timeout->remaining().count();
    json["timeout"] = std::move(timeout);
  } else {
    json["timeout"] = nullptr;
  }
  json["veto"] = snapshot.veto ? Json(core::toString(*snapshot.veto)) : Json(nullptr);
  json["split_brain"] = snapshot.split_brain;
  {
    Json sync;
    sync["mode"] = core::toString(snapshot.sync_mode);
    sync["standby"] =
        snapshot.synchronous_standby && *snapshot.synchronous_standby < snapshot.nodes.size()
            ? Json(snapshot.nodes[*snapshot.synchronous_standby].name)
            : Json(nullptr);
    sync["standalone"] = snapshot.sync_standalone;
    json["synchronous"] = std::move(sync);
  }
  if (snapshot.last_failover) {
    const auto& record = *snapshot.last_failover;
    Json failover;
    failover["started_at"] = timeOrNull(record.started_at);
    failover["completed_at"] = timeOrNull(record.completed_at);
    failover["from"] = record.from;
    failover["to"] = record.to;
    failover["duration_ms"] = record.duration.count();
    failover["reason"] = record.reason;
    json["last_failover"] = std::move(failover);
  } else {
    json["last_failover"] = nullptr;
  }
  json["coordination"] = coordinationJson(snapshot.coordination);
  json["warnings"] = snapshot.warnings;
  json["tick"] = snapshot.tick;
  json["tick_at"] = timeOrNull(snapshot.tick_at_wall);
  Json nodes = Json::array();
  for (const auto& node : snapshot.nodes) nodes.push_back(nodeJson(snapshot, node));
  json["nodes"] = std::move(nodes);
  return json;
}

Json checkJson(const Snapshot& snapshot, std::string_view check, const CheckResult& result) {
  Json json;
  json["check"] = check;
  json["ok"] = result.ok;
  json["reason"] = result.reason;
  json["state"] = core::toString(snapshot.state);
  json["primary"] = snapshot.primary && *snapshot.primary < snapshot.nodes.size()
                        ? Json(snapshot.nodes[*snapshot.primary].name)
                        : Json(nullptr);
  if (result.node != nullptr) {
    const auto& node = *result.node;
    const auto& seen = node.observation;
    const bool answered = seen.probed && seen.reachable;
    json["node"] = node.name;
    json["role"] = core::toString(node.role);
    json["reachable"] = answered;
    json["in_recovery"] = answered ? Json(seen.in_recovery) : Json(nullptr);
    json["read_only"] = answered ? Json(seen.read_only) : Json(nullptr);
    json["timeline"] = answered && seen.timeline != 0 ? Json(seen.timeline) : Json(nullptr);
    json["lag_bytes"] = orNull(node.lag_bytes);
  } else {
    json["node"] = nullptr;
  }
  return json;
}

}  // namespace pgfailover::http
