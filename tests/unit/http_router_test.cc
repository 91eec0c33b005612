// The router as a pure function: every endpoint, the per-node role checks, the error codes, and
// the /status document, against hand-built snapshots and a hand-set clock.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "http/router.h"
#include "metrics/metrics.h"

namespace pgfailover::http {
namespace {

using core::ClusterState;
using core::NodeRole;
using core::NodeSnapshot;
using core::Snapshot;
using Json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

const SteadyTime kTickAt = SteadyTime{} + std::chrono::hours(1);
const WallTime kTickWall = WallTime{} + seconds(1714567890);  // 2024-05-01T12:51:30Z

// A primary pg1 that commits and a replica pg2 streaming from it, 1 kB behind.
Snapshot healthySnapshot() {
  Snapshot snapshot;
  snapshot.ready = true;
  snapshot.tick = 42;
  snapshot.tick_at = kTickAt;
  snapshot.tick_at_wall = kTickWall;
  snapshot.cluster_name = "main";
  snapshot.state = ClusterState::kHealthy;
  snapshot.reason = "primary pg1 commits; replica pg2 streams 1.0 kB behind";
  snapshot.primary = 0;

  NodeSnapshot primary;
  primary.name = "pg1";
  primary.host = "127.0.0.1";
  primary.port = 5432;
  primary.role = NodeRole::kPrimary;
  auto& p = primary.observation;
  p.probed = true;
  p.probed_at = kTickAt - milliseconds(4);
  p.probe_duration = milliseconds(3);
  p.reachable = true;
  p.system_identifier = 7234567890123456789ull;
  p.timeline = 3;
  p.current_lsn = 0x3000548;
  p.replication.push_back({"pg2", "127.0.0.1", "streaming", "async", 0x3000548, 0x3000148});
  p.heartbeat_written = true;
  p.heartbeat_unix_seconds = 1714567889.5;

  NodeSnapshot replica;
  replica.name = "pg2";
  replica.host = "127.0.0.1";
  replica.port = 5433;
  replica.role = NodeRole::kReplica;
  auto& r = replica.observation;
  r.probed = true;
  r.probed_at = kTickAt - milliseconds(5);
  r.probe_duration = milliseconds(2);
  r.reachable = true;
  r.in_recovery = true;
  r.system_identifier = 7234567890123456789ull;
  r.timeline = 3;
  r.receive_lsn = 0x3000148;
  r.replay_lsn = 0x3000100;
  r.wal_receiver = core::WalReceiver{"streaming", "127.0.0.1", 5432, 3, 0.2, {}};
  r.heartbeat_unix_seconds = 1714567889.1;
  replica.lag_bytes = 1024;
  replica.lag_seconds = 0.4;

  snapshot.nodes = {primary, replica};
  return snapshot;
}

RouteContext freshContext() {
  RouteContext context;
  context.now = kTickAt + milliseconds(500);
  context.max_tick_age = milliseconds(10000);
  return context;
}

Request get(std::string path, std::vector<std::pair<std::string, std::string>> query = {}) {
  Request request;
  request.method = "GET";
  request.path = std::move(path);
  request.query = std::move(query);
  return request;
}

Request withMethod(std::string method, std::string path) {
  Request request = get(std::move(path));
  request.method = std::move(method);
  return request;
}

Response routed(const Request& request, const Snapshot& snapshot = healthySnapshot(),
                const RouteContext& context = freshContext()) {
  return route(request, snapshot, context);
}

Json body(const Response& response) {
  return Json::parse(response.body);
}

// --- liveness and readiness ------------------------------------------------------------------

TEST(HttpRouter, HealthzIsOkWhileTheLoopTicks) {
  Response response = routed(get("/healthz"));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.content_type, "application/json");
  EXPECT_EQ(body(response)["status"], "ok");
  EXPECT_EQ(body(response)["tick"], 42);
  EXPECT_EQ(body(response)["tick_age_ms"], 500);
}

TEST(HttpRouter, HealthzTurns503OnceTheLastTickIsOlderThanTheLimit) {
  RouteContext context = freshContext();
  context.now = kTickAt + milliseconds(10000);
  EXPECT_EQ(routed(get("/healthz"), healthySnapshot(), context).status, 200);
  context.now = kTickAt + milliseconds(10001);
  Response stuck = routed(get("/healthz"), healthySnapshot(), context);
  EXPECT_EQ(stuck.status, 503);
  EXPECT_EQ(body(stuck)["status"], "stuck");
  EXPECT_EQ(body(stuck)["max_tick_age_ms"], 10000);
}

TEST(HttpRouter, HealthzTreatsATickNewerThanTheRequestClockAsFresh) {
  RouteContext context = freshContext();
  context.now = kTickAt - milliseconds(3);
  Response response = routed(get("/healthz"), healthySnapshot(), context);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(body(response)["tick_age_ms"], 0);
}

TEST(HttpRouter, LivenessIsPatronisNameForHealthz) {
  RouteContext context = freshContext();
  context.now = kTickAt + seconds(60);
  EXPECT_EQ(routed(get("/liveness")).status, 200);
  EXPECT_EQ(routed(get("/liveness"), healthySnapshot(), context).status, 503);
}

TEST(HttpRouter, ReadyzWaitsUntilEveryNodeWasObserved) {
  Snapshot starting = healthySnapshot();
  starting.ready = false;
  starting.state = ClusterState::kInitializing;
  EXPECT_EQ(routed(get("/readyz"), starting).status, 503);
  EXPECT_EQ(body(routed(get("/readyz"), starting))["state"], "initializing");
  EXPECT_EQ(routed(get("/readyz")).status, 200);
  EXPECT_EQ(routed(get("/readiness"), starting).status, 503);
  EXPECT_EQ(routed(get("/readiness")).status, 200);
}

// --- /status -----------------------------------------------------------------------------------

TEST(HttpRouter, StatusDescribesTheClusterAndEveryNode) {
  Response response = routed(get("/status"));
  ASSERT_EQ(response.status, 200);
  Json status = body(response);
  EXPECT_EQ(status["cluster_name"], "main");
  EXPECT_EQ(status["state"], "healthy");
  EXPECT_EQ(status["reason"], "primary pg1 commits; replica pg2 streams 1.0 kB behind");
  EXPECT_EQ(status["primary"], "pg1");
  EXPECT_TRUE(status["timeout"].is_null());
  EXPECT_TRUE(status["veto"].is_null());
  EXPECT_EQ(status["split_brain"], false);
  EXPECT_TRUE(status["last_failover"].is_null());
  EXPECT_EQ(status["tick"], 42);
  EXPECT_EQ(status["tick_at"], "2024-05-01T12:51:30.000Z");
  EXPECT_EQ(status["ready"], true);
  EXPECT_EQ(status["version"], PGFAILOVER_VERSION);
  ASSERT_EQ(status["nodes"].size(), 2u);

  const Json& pg1 = status["nodes"][0];
  EXPECT_EQ(pg1["name"], "pg1");
  EXPECT_EQ(pg1["host"], "127.0.0.1");
  EXPECT_EQ(pg1["port"], 5432);
  EXPECT_EQ(pg1["role"], "primary");
  EXPECT_EQ(pg1["reachable"], true);
  EXPECT_EQ(pg1["failure"], "none");
  EXPECT_TRUE(pg1["error"].is_null());
  EXPECT_EQ(pg1["in_recovery"], false);
  EXPECT_EQ(pg1["read_only"], false);
  EXPECT_EQ(pg1["system_identifier"], "7234567890123456789");
  EXPECT_EQ(pg1["timeline"], 3);
  EXPECT_EQ(pg1["current_lsn"], "0/3000548");
  EXPECT_TRUE(pg1["receive_lsn"].is_null());
  EXPECT_TRUE(pg1["lag_bytes"].is_null());
  EXPECT_TRUE(pg1["wal_receiver"].is_null());
  ASSERT_EQ(pg1["replication"].size(), 1u);
  EXPECT_EQ(pg1["replication"][0]["application_name"], "pg2");
  EXPECT_EQ(pg1["replication"][0]["state"], "streaming");
  EXPECT_EQ(pg1["replication"][0]["sync_state"], "async");
  EXPECT_EQ(pg1["replication"][0]["sent_lsn"], "0/3000548");
  EXPECT_EQ(pg1["replication"][0]["replay_lsn"], "0/3000148");
  EXPECT_EQ(pg1["heartbeat"]["written"], true);
  EXPECT_DOUBLE_EQ(pg1["heartbeat"]["unix_seconds"].get<double>(), 1714567889.5);
  EXPECT_EQ(pg1["last_probe"]["at"], "2024-05-01T12:51:29.996Z");
  EXPECT_EQ(pg1["last_probe"]["duration_ms"], 3);

  const Json& pg2 = status["nodes"][1];
  EXPECT_EQ(pg2["role"], "replica");
  EXPECT_EQ(pg2["in_recovery"], true);
  EXPECT_EQ(pg2["receive_lsn"], "0/3000148");
  EXPECT_EQ(pg2["replay_lsn"], "0/3000100");
  EXPECT_EQ(pg2["lag_bytes"], 1024);
  EXPECT_DOUBLE_EQ(pg2["lag_seconds"].get<double>(), 0.4);
  EXPECT_EQ(pg2["wal_receiver"]["status"], "streaming");
  EXPECT_EQ(pg2["wal_receiver"]["sender_host"], "127.0.0.1");
  EXPECT_EQ(pg2["wal_receiver"]["sender_port"], 5432);
  EXPECT_DOUBLE_EQ(pg2["wal_receiver"]["seconds_since_last_message"].get<double>(), 0.2);
  EXPECT_TRUE(pg2["replication"].is_array());
  EXPECT_TRUE(pg2["replication"].empty());
}

TEST(HttpRouter, StatusShowsTheRunningTimeoutVetoAndLastFailover) {
  Snapshot snapshot = healthySnapshot();
  snapshot.state = ClusterState::kFailoverVetoed;
  snapshot.timeout = core::RunningTimeout{core::TimeoutKind::kUnresponsive, milliseconds(10000),
                                          milliseconds(4200)};
  snapshot.veto = core::VetoReason::kReplicaLagging;
  core::FailoverRecord record;
  record.started_at = kTickWall - seconds(100);
  record.completed_at = kTickWall - seconds(96) - milliseconds(600);
  record.from = "pg0";
  record.to = "pg1";
  record.duration = milliseconds(3400);
  record.reason = "primary pg0 refused connections for 3.1 s";
  snapshot.last_failover = record;

  Json status = body(routed(get("/status"), snapshot));
  EXPECT_EQ(status["state"], "failover_vetoed");
  EXPECT_EQ(status["timeout"]["kind"], core::toString(core::TimeoutKind::kUnresponsive));
  EXPECT_EQ(status["timeout"]["total_ms"], 10000);
  EXPECT_EQ(status["timeout"]["elapsed_ms"], 4200);
  EXPECT_EQ(status["timeout"]["remaining_ms"], 5800);
  EXPECT_EQ(status["veto"], core::toString(core::VetoReason::kReplicaLagging));
  EXPECT_EQ(status["last_failover"]["started_at"], "2024-05-01T12:49:50.000Z");
  EXPECT_EQ(status["last_failover"]["completed_at"], "2024-05-01T12:49:53.400Z");
  EXPECT_EQ(status["last_failover"]["from"], "pg0");
  EXPECT_EQ(status["last_failover"]["to"], "pg1");
  EXPECT_EQ(status["last_failover"]["duration_ms"], 3400);
  EXPECT_EQ(status["last_failover"]["reason"], "primary pg0 refused connections for 3.1 s");
}

TEST(HttpRouter, StatusShowsSynchronousReplication) {
  Snapshot snapshot = healthySnapshot();
  Json status = body(routed(get("/status"), snapshot));
  EXPECT_EQ(status["synchronous"]["mode"], "off");
  EXPECT_TRUE(status["synchronous"]["standby"].is_null());
  EXPECT_EQ(status["synchronous"]["standalone"], false);

  snapshot.sync_mode = core::SyncMode::kOn;
  snapshot.synchronous_standby = 1;
  status = body(routed(get("/status"), snapshot));
  EXPECT_EQ(status["synchronous"]["mode"], core::toString(core::SyncMode::kOn));
  EXPECT_EQ(status["synchronous"]["standby"], "pg2");

  snapshot.synchronous_standby.reset();
  snapshot.sync_standalone = true;
  status = body(routed(get("/status"), snapshot));
  EXPECT_TRUE(status["synchronous"]["standby"].is_null());
  EXPECT_EQ(status["synchronous"]["standalone"], true);
}

TEST(HttpRouter, StatusShowsEachNodesRejoinRunningAndLast) {
  Snapshot snapshot = healthySnapshot();
  snapshot.operations.resize(2);
  snapshot.operations[0].available = false;
  auto& op = snapshot.operations[1];
  op.available = true;
  op.running = true;
  op.step = "pg_rewind";
  op.started_at = kTickAt - seconds(4);
  op.finished = 2;
  op.last_succeeded = false;
  op.last_method = "clone";
  op.last_error = "pg_basebackup failed: exit 1";
  op.last_finished_at = kTickAt - seconds(60);
  op.last_duration = milliseconds(12500);

  Json status = body(routed(get("/status"), snapshot));
  EXPECT_TRUE(status["nodes"][0]["rejoin"].is_null());
  const Json& rejoin = status["nodes"][1]["rejoin"];
  EXPECT_EQ(rejoin["running"], true);
  EXPECT_EQ(rejoin["step"], "pg_rewind");
  EXPECT_EQ(rejoin["started_at"], "2024-05-01T12:51:26.000Z");
  EXPECT_EQ(rejoin["attempts"], 2);
  EXPECT_EQ(rejoin["last"]["succeeded"], false);
  EXPECT_EQ(rejoin["last"]["method"], "clone");
  EXPECT_EQ(rejoin["last"]["error"], "pg_basebackup failed: exit 1");
  EXPECT_EQ(rejoin["last"]["finished_at"], "2024-05-01T12:50:30.000Z");
  EXPECT_EQ(rejoin["last"]["duration_ms"], 12500);

  op.running = false;
  op.last_succeeded = true;
  status = body(routed(get("/status"), snapshot));
  EXPECT_TRUE(status["nodes"][1]["rejoin"]["step"].is_null());
  EXPECT_TRUE(status["nodes"][1]["rejoin"]["last"]["error"].is_null());
}

TEST(HttpRouter, StatusLeavesServerFactsNullForAnUnreachableNode) {
  Snapshot snapshot = healthySnapshot();
  auto& seen = snapshot.nodes[1].observation;
  seen.reachable = false;
  seen.failure = core::ProbeFailure::kRefused;
  seen.error = "connection refused";
  seen.wal_receiver.reset();
  Json pg2 = body(routed(get("/status"), snapshot))["nodes"][1];
  EXPECT_EQ(pg2["reachable"], false);
  EXPECT_EQ(pg2["failure"], "refused");
  EXPECT_EQ(pg2["error"], "connection refused");
  EXPECT_TRUE(pg2["in_recovery"].is_null());
  EXPECT_TRUE(pg2["read_only"].is_null());
  EXPECT_TRUE(pg2["system_identifier"].is_null());
  EXPECT_TRUE(pg2["timeline"].is_null());
  EXPECT_TRUE(pg2["wal_receiver"].is_null());
}

TEST(HttpRouter, StatusNeverMentionsPasswordsOrSecrets) {
  std::string text = routed(get("/status")).body;
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* word : {"password", "secret", "token", "redacted", "conninfo"})
    EXPECT_EQ(text.find(word), std::string::npos) << word;
}

TEST(HttpRouter, StatusSurvivesAnErrorMessageThatIsNotUtf8) {
  Snapshot snapshot = healthySnapshot();
  snapshot.nodes[1].observation.error =
      "FATAL: base de donn\xe9"
      "es";
  Response response = routed(get("/status"), snapshot);
  EXPECT_EQ(response.status, 200);
  EXPECT_NO_THROW(Json::parse(response.body));
}

// --- /primary ---------------------------------------------------------------------------------

TEST(HttpRouter, PrimaryAnswers200ForTheClusterAndItsPrimaryOnly) {
  EXPECT_EQ(routed(get("/primary")).status, 200);
  EXPECT_EQ(routed(get("/primary/pg1")).status, 200);
  Response replica = routed(get("/primary/pg2"));
  EXPECT_EQ(replica.status, 503);
  EXPECT_EQ(body(replica)["ok"], false);
  EXPECT_EQ(body(replica)["node"], "pg2");
  EXPECT_EQ(body(replica)["role"], "replica");
  EXPECT_NE(body(replica)["reason"].get<std::string>().find("not the primary"), std::string::npos);
}

TEST(HttpRouter, PrimaryBodyNamesTheNodeRoleAndState) {
  Json answer = body(routed(get("/primary/pg1")));
  EXPECT_EQ(answer["check"], "primary");
  EXPECT_EQ(answer["ok"], true);
  EXPECT_EQ(answer["node"], "pg1");
  EXPECT_EQ(answer["role"], "primary");
  EXPECT_EQ(answer["state"], "healthy");
  EXPECT_EQ(answer["primary"], "pg1");
  EXPECT_EQ(answer["reachable"], true);
  EXPECT_EQ(answer["in_recovery"], false);
  EXPECT_EQ(answer["timeline"], 3);
}

TEST(HttpRouter, PatroniAliasesOfPrimaryAnswerTheSame) {
  for (const char* alias : {"/read-write", "/master", "/leader"}) {
    EXPECT_EQ(routed(get(alias)).status, 200) << alias;
    EXPECT_EQ(routed(get(std::string(alias) + "/pg1")).status, 200) << alias;
    EXPECT_EQ(routed(get(std::string(alias) + "/pg2")).status, 503) << alias;
  }
}

TEST(HttpRouter, UnknownNodeIs404) {
  for (const char* path : {"/primary/pg9", "/replica/pg9", "/read-only/pg9", "/health/pg9"}) {
    Response response = routed(get(path));
    EXPECT_EQ(response.status, 404) << path;
    EXPECT_NE(body(response)["message"].get<std::string>().find("pg9"), std::string::npos);
  }
}

TEST(HttpRouter, TrailingSlashIsIgnored) {
  EXPECT_EQ(routed(get("/primary/")).status, 200);
  EXPECT_EQ(routed(get("/primary/pg1/")).status, 200);
}

TEST(HttpRouter, PathsBelowANodeAreUnknown) {
  EXPECT_EQ(routed(get("/primary/pg1/extra")).status, 404);
  EXPECT_EQ(routed(get("/status/pg1")).status, 404);
}

TEST(HttpRouter, PrimaryRefusesWritesDuringSplitBrain) {
  Snapshot snapshot = healthySnapshot();
  snapshot.split_brain = true;
  snapshot.state = ClusterState::kSplitBrain;
  EXPECT_EQ(routed(get("/primary/pg1"), snapshot).status, 503);
  EXPECT_EQ(routed(get("/primary"), snapshot).status, 503);
  // The flag alone is enough, whatever state the decision settled on.
  snapshot.state = ClusterState::kHealthy;
  EXPECT_EQ(routed(get("/primary/pg1"), snapshot).status, 503);
}

TEST(HttpRouter, PrimaryRefusesWritesWhilePromoting) {
  Snapshot snapshot = healthySnapshot();
  snapshot.state = ClusterState::kPromoting;
  Response response = routed(get("/primary/pg1"), snapshot);
  EXPECT_EQ(response.status, 503);
  EXPECT_NE(body(response)["reason"].get<std::string>().find("promotion"), std::string::npos);
}

TEST(HttpRouter, PrimaryDrainsDuringASwitchover) {
  Snapshot snapshot = healthySnapshot();
  snapshot.state = ClusterState::kSwitchingOver;
  Response response = routed(get("/primary/pg1"), snapshot);
  EXPECT_EQ(response.status, 503);
  EXPECT_NE(body(response)["reason"].get<std::string>().find("switchover"), std::string::npos);
  // Reads from the streaming replica go on.
  EXPECT_EQ(routed(get("/replica/pg2"), snapshot).status, 200);
}

TEST(HttpRouter, AFencedOldPrimaryIsNeitherPrimaryNorReplica) {
  Snapshot snapshot = healthySnapshot();
  snapshot.state = ClusterState::kDegraded;
  snapshot.nodes[0].role = NodeRole::kFenced;
  snapshot.nodes[0].observation.read_only = true;
  EXPECT_EQ(routed(get("/primary/pg1"), snapshot).status, 503);
  EXPECT_EQ(routed(get("/replica/pg1"), snapshot).status, 503);
  EXPECT_EQ(routed(get("/read-only/pg1"), snapshot).status, 503);
  EXPECT_EQ(routed(get("/health/pg1"), snapshot).status, 200);
}

TEST(HttpRouter, PrimaryRefusesANodeThatMustBeFenced) {
  Snapshot snapshot = healthySnapshot();
  snapshot.state = ClusterState::kFencingRequired;
  // pg1 came back writable on an old timeline; pg2 was promoted.
  snapshot.primary = 1;
  snapshot.nodes[0].role = NodeRole::kNeedsFencing;
  auto& promoted = snapshot.nodes[1];
  promoted.role = NodeRole::kPrimary;
  promoted.observation.in_recovery = false;
  promoted.observation.wal_receiver.reset();
  promoted.lag_bytes.reset();
  EXPECT_EQ(routed(get("/primary/pg1"), snapshot).status, 503);
  EXPECT_EQ(routed(get("/primary/pg2"), snapshot).status, 200);
  EXPECT_EQ(routed(get("/primary"), snapshot).status, 200);
  EXPECT_EQ(body(routed(get("/primary"), snapshot))["node"], "pg2");
}

TEST(HttpRouter, PrimaryRefusesAnUnreachableReadOnlyOrRecoveringPrimary) {
  Snapshot unreachable = healthySnapshot();
  unreachable.state = ClusterState::kPrimaryFailing;
  unreachable.nodes[0].observation.reachable = false;
  unreachable.nodes[0].observation.failure = core::ProbeFailure::kTimeout;
  EXPECT_EQ(routed(get("/primary/pg1"), unreachable).status, 503);
  EXPECT_EQ(routed(get("/primary"), unreachable).status, 503);

  Snapshot fenced = healthySnapshot();
  fenced.nodes[0].observation.read_only = true;
  EXPECT_EQ(routed(get("/primary/pg1"), fenced).status, 503);

  Snapshot recovering = healthySnapshot();
  recovering.nodes[0].observation.in_recovery = true;
  EXPECT_EQ(routed(get("/primary/pg1"), recovering).status, 503);

  Snapshot cannot_commit = healthySnapshot();
  cannot_commit.nodes[0].observation.failure = core::ProbeFailure::kCannotCommit;
  EXPECT_EQ(routed(get("/primary/pg1"), cannot_commit).status, 503);
}

TEST(HttpRouter, PrimaryIs503WithoutAPrimaryOrBeforeTheFirstObservation) {
  Snapshot none = healthySnapshot();
  none.primary.reset();
  none.state = ClusterState::kNoPrimary;
  EXPECT_EQ(routed(get("/primary")).status, 200);
  EXPECT_EQ(routed(get("/primary"), none).status, 503);
  EXPECT_EQ(routed(get("/primary/pg1"), none).status, 503);

  Snapshot starting = healthySnapshot();
  starting.ready = false;
  starting.state = ClusterState::kInitializing;
  EXPECT_EQ(routed(get("/primary/pg1"), starting).status, 503);
}

TEST(HttpRouter, RoleChecksFailWhileTheSnapshotIsStale) {
  RouteContext context = freshContext();
  context.now = kTickAt + seconds(30);
  for (const char* path :
       {"/primary", "/primary/pg1", "/replica/pg2", "/read-only/pg1", "/health/pg1", "/health"}) {
    Response response = routed(get(path), healthySnapshot(), context);
    EXPECT_EQ(response.status, 503) << path;
    EXPECT_NE(body(response)["reason"].get<std::string>().find("stale"), std::string::npos);
  }
}

// --- /replica and /read-only ------------------------------------------------------------------

TEST(HttpRouter, ReplicaAnswers200ForAStreamingReplica) {
  EXPECT_EQ(routed(get("/replica")).status, 200);
  EXPECT_EQ(body(routed(get("/replica")))["node"], "pg2");
  EXPECT_EQ(routed(get("/replica/pg2")).status, 200);
  EXPECT_EQ(routed(get("/replica/pg1")).status, 503);
}

TEST(HttpRouter, ReplicaHonoursTheLagLimitInBytesOrUnits) {
  // pg2 is 1024 bytes behind.
  EXPECT_EQ(routed(get("/replica/pg2", {{"lag", "1024"}})).status, 200);
  EXPECT_EQ(routed(get("/replica/pg2", {{"lag", "1023"}})).status, 503);
  EXPECT_EQ(routed(get("/replica/pg2", {{"lag", "1kB"}})).status, 200);
  EXPECT_EQ(routed(get("/replica/pg2", {{"lag", "16MB"}})).status, 200);
  EXPECT_EQ(routed(get("/replica/pg2", {{"lag", "1GB"}})).status, 200);
  EXPECT_EQ(routed(get("/replica", {{"lag", "16MB"}})).status, 200);
  EXPECT_EQ(routed(get("/replica", {{"lag", "100"}})).status, 503);

  Snapshot lagging = healthySnapshot();
  lagging.nodes[1].lag_bytes = 20ull * 1024 * 1024;
  Response response = routed(get("/replica/pg2", {{"lag", "16MB"}}), lagging);
  EXPECT_EQ(response.status, 503);
  EXPECT_NE(body(response)["reason"].get<std::string>().find("20.0 MB"), std::string::npos);
  EXPECT_EQ(routed(get("/replica/pg2"), lagging).status, 200);  // no limit asked
}

TEST(HttpRouter, ReplicaWithALagLimitRefusesAnUnknownLag) {
  Snapshot snapshot = healthySnapshot();
  snapshot.nodes[1].lag_bytes.reset();
  EXPECT_EQ(routed(get("/replica/pg2"), snapshot).status, 200);
  EXPECT_EQ(routed(get("/replica/pg2", {{"lag", "16MB"}}), snapshot).status, 503);
}

TEST(HttpRouter, ReplicaRefusesANodeThatDoesNotStream) {
  Snapshot snapshot = healthySnapshot();
  snapshot.state = ClusterState::kDegraded;
  snapshot.nodes[1].observation.wal_receiver->status = "waiting";
  Response response = routed(get("/replica/pg2"), snapshot);
  EXPECT_EQ(response.status, 503);
  EXPECT_NE(body(response)["reason"].get<std::string>().find("waiting"), std::string::npos);
  EXPECT_EQ(routed(get("/replica"), snapshot).status, 503);

  snapshot.nodes[1].observation.wal_receiver.reset();
  EXPECT_EQ(routed(get("/replica/pg2"), snapshot).status, 503);
}

TEST(HttpRouter, ReplicaRefusesANodeWhoseRoleIsUnknown) {
  Snapshot snapshot = healthySnapshot();
  snapshot.nodes[1].role = NodeRole::kUnknown;
  EXPECT_EQ(routed(get("/replica/pg2"), snapshot).status, 503);
}

TEST(HttpRouter, MalformedLagIs400NamingTheParameter) {
  for (const char* bad : {"abc", "", "-1", "16 MB", "16XB", "1.5GB"}) {
    Response response = routed(get("/replica/pg2", {{"lag", bad}}));
    EXPECT_EQ(response.status, 400) << bad;
    EXPECT_NE(body(response)["message"].get<std::string>().find("'lag'"), std::string::npos);
  }
}

TEST(HttpRouter, UnknownOrRepeatedQueryParameterIs400) {
  Response unknown = routed(get("/replica/pg2", {{"max_lag", "1MB"}}));
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(body(unknown)["message"].get<std::string>().find("'max_lag'"), std::string::npos);
  EXPECT_EQ(routed(get("/primary", {{"lag", "1MB"}})).status, 400);
  EXPECT_EQ(routed(get("/status", {{"pretty", "1"}})).status, 400);
  EXPECT_EQ(routed(get("/replica", {{"lag", "1MB"}, {"lag", "2MB"}})).status, 400);
}

TEST(HttpRouter, ReadOnlyAcceptsThePrimaryOrAReplicaWithinLag) {
  EXPECT_EQ(routed(get("/read-only")).status, 200);
  EXPECT_EQ(routed(get("/read-only/pg1")).status, 200);
  EXPECT_EQ(routed(get("/read-only/pg2")).status, 200);
  EXPECT_EQ(routed(get("/read-only/pg2", {{"lag", "100"}})).status, 503);
  // The lag limit is about replicas; the primary is never behind itself.
  EXPECT_EQ(routed(get("/read-only/pg1", {{"lag", "100"}})).status, 200);

  Snapshot replica_down = healthySnapshot();
  replica_down.nodes[1].observation.reachable = false;
  replica_down.nodes[1].observation.failure = core::ProbeFailure::kRefused;
  EXPECT_EQ(routed(get("/read-only/pg2"), replica_down).status, 503);
  EXPECT_EQ(routed(get("/read-only"), replica_down).status, 200);
}

// --- /health ----------------------------------------------------------------------------------

TEST(HttpRouter, HealthPerNodeMeansPostgresAnswers) {
  EXPECT_EQ(routed(get("/health/pg1")).status, 200);
  EXPECT_EQ(routed(get("/health/pg2")).status, 200);
  Snapshot snapshot = healthySnapshot();
  snapshot.nodes[1].observation.reachable = false;
  snapshot.nodes[1].observation.failure = core::ProbeFailure::kRefused;
  EXPECT_EQ(routed(get("/health/pg2"), snapshot).status, 503);
}

TEST(HttpRouter, HealthForTheClusterMeansSomeNodeAcceptsWrites) {
  EXPECT_EQ(routed(get("/health")).status, 200);
  Snapshot snapshot = healthySnapshot();
  snapshot.state = ClusterState::kPrimaryFailing;
  snapshot.nodes[0].observation.reachable = false;
  snapshot.nodes[0].observation.failure = core::ProbeFailure::kRefused;
  EXPECT_EQ(routed(get("/health"), snapshot).status, 503);
}

// --- methods, unknown paths, metrics ----------------------------------------------------------

TEST(HttpRouter, HealthChecksAnswerHeadAndOptionsLikeGet) {
  for (const char* method : {"GET", "HEAD", "OPTIONS"}) {
    EXPECT_EQ(routed(withMethod(method, "/primary/pg1")).status, 200) << method;
    EXPECT_EQ(routed(withMethod(method, "/primary/pg2")).status, 503) << method;
    EXPECT_EQ(routed(withMethod(method, "/replica/pg2")).status, 200) << method;
    EXPECT_EQ(routed(withMethod(method, "/healthz")).status, 200) << method;
  }
}

TEST(HttpRouter, WrongMethodIs405WithAllow) {
  Response response = routed(withMethod("POST", "/status"));
  EXPECT_EQ(response.status, 405);
  EXPECT_EQ(response.header("Allow"), "GET, HEAD, OPTIONS");
  EXPECT_EQ(body(response)["error"], "method not allowed");

  Response check = routed(withMethod("DELETE", "/primary/pg1"));
  EXPECT_EQ(check.status, 405);
  EXPECT_EQ(check.header("allow"), "GET, HEAD, OPTIONS");
  EXPECT_EQ(routed(withMethod("BREW", "/primary")).status, 405);
  EXPECT_EQ(routed(withMethod("PUT", "/metrics")).status, 405);
}

TEST(HttpRouter, OptionsOnADataEndpointListsTheMethods) {
  Response response = routed(withMethod("OPTIONS", "/status"));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.header("Allow"), "GET, HEAD, OPTIONS");
  EXPECT_TRUE(response.body.empty());
}

TEST(HttpRouter, UnknownPathIs404Json) {
  Response response = routed(get("/nope"));
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(response.content_type, "application/json");
  EXPECT_EQ(body(response)["error"], "not found");
  EXPECT_EQ(routed(get("/")).status, 404);
  EXPECT_EQ(routed(withMethod("POST", "/restart")).status, 404);
}

TEST(HttpRouter, MetricsRendersThePrometheusTextFormat) {
  metrics::Metrics metrics;
  metrics.observeTick(healthySnapshot());
  RouteContext context = freshContext();
  context.metrics = &metrics;
  Response response = routed(get("/metrics"), healthySnapshot(), context);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(response.body.find("pgfailover_build_info"), std::string::npos);
  EXPECT_NE(response.body.find("pgfailover_node_up{node=\"pg1\"} 1"), std::string::npos);
}

TEST(HttpRouter, MetricsWithoutARegistryIs503) {
  EXPECT_EQ(routed(get("/metrics")).status, 503);
}

// --- the admin gate ---------------------------------------------------------------------------

TEST(HttpRouter, AdminAccessIsForbiddenWithoutAConfiguredToken) {
  Request request = withMethod("POST", "/switchover");
  request.headers.emplace_back("Authorization", "Bearer anything");
  RouteContext context = freshContext();
  auto refusal = checkAdminAccess(request, context);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->status, 403);
  Secret empty;
  context.admin_token = &empty;
  EXPECT_EQ(checkAdminAccess(request, context)->status, 403);
}

TEST(HttpRouter, AdminAccessNeedsTheExactBearerToken) {
  Secret token("s3cret-token");
  RouteContext context = freshContext();
  context.admin_token = &token;
  Request request = withMethod("POST", "/switchover");

  auto missing = checkAdminAccess(request, context);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 401);
  EXPECT_EQ(missing->header("WWW-Authenticate"), "Bearer realm=\"pgfailover\"");

  for (const char* wrong :
       {"Bearer s3cret", "Bearer s3cret-token2", "Basic s3cret-token", "Bearer ", "s3cret-token"}) {
    Request attempt = request;
    attempt.headers = {{"Authorization", wrong}};
    auto refusal = checkAdminAccess(attempt, context);
    ASSERT_TRUE(refusal) << wrong;
    EXPECT_EQ(refusal->status, 401) << wrong;
    EXPECT_EQ(refusal->body.find("s3cret"), std::string::npos);
  }

  request.headers = {{"authorization", "bearer s3cret-token"}};
  EXPECT_FALSE(checkAdminAccess(request, context));
}

TEST(HttpRouter, AllowHeaderListsMethodsInAFixedOrder) {
  EXPECT_EQ(allowHeader(kPost | kGet), "GET, POST");
  EXPECT_EQ(allowHeader(kCheckMethods), "GET, HEAD, OPTIONS");
  EXPECT_EQ(parseMethod("PATCH"), kPatch);
  EXPECT_EQ(parseMethod("get"), kNoMethod);
}

}  // namespace
}  // namespace pgfailover::http
